"""bpf_link: the object that keeps a program on a hook (kernel/bpf/syscall.c).

A link is an fd-backed object with an id in the link idr, a type
(:class:`~pyebpf.uapi.LinkType`), the program it runs, and the hook it sits
on. Closing the last reference (fd, pin) takes it off the hook; BPF_LINK_DETACH
takes it off while the fd lives on (the link is then *defunct*: its info
reports no target, LINK_UPDATE says ENOLINK). BPF_LINK_UPDATE swaps the
program in place.

This module has the commands that are the same for every kind of link:

- BPF_LINK_CREATE (``link_create``): CHECK_ATTR, the attach-type-first kinds
  (struct_ops: no program), the program fd, ``bpf_prog_attach_check_attach_type``,
  TRACING/LSM's ``attach_type == expected_attach_type``, then the kind's
  constructor chosen by program type (and attach type);
- BPF_LINK_UPDATE, BPF_LINK_DETACH, OBJ_GET_INFO_BY_FD on a link (struct
  bpf_link_info), and the dispatch of BPF_PROG_ATTACH / PROG_DETACH / PROG_QUERY
  to the attach point families (cgroup, netns, tcx).

Adding a kind of link (how the other link modules, and struct_ops / iterator
links, plug in)::

    from pyebpf.links.base import BpfLink, register_link_kind, settle_link

    class IterLink(BpfLink):
        link_type = LinkType.ITER
        def attach(self) -> None: ...          # put it on the hook; raise BpfError
        def release_hook(self) -> None: ...    # take it off (detach / last close)
        def fill_info(self, info: dict) -> None: info["target_name_len"] = ...

    def iter_link_create(rt, attr, prog) -> BpfLink:
        ...checks that come before the link exists (EINVAL, ENOENT ...)...
        return IterLink(rt, prog, attr.attach_type)

    register_link_kind(ProgType.TRACING, iter_link_create, attach_type=AttachType.TRACE_ITER)

``create(rt, attr, prog)`` returns the new, not yet attached link; the base
gives it its id (``bpf_link_prime``: an id is consumed even when attaching
then fails, as in the kernel), calls ``attach()``, and installs the fd
(``bpf_link_settle``). A kind that needs no program (struct_ops) registers
with :func:`register_link_attach_type` a ``create(rt, attr) -> int`` that
returns the fd itself (build the link with ``prog=None`` and call
:func:`settle_link`). A link whose kind updates a map instead of a program
overrides :meth:`BpfLink.update_map`.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from ..attr import (
    Buffer,
    InfoByFdAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    LinkUpdateAttr,
    ProgAttachAttr,
    ProgQueryAttr,
    UserPtr,
)
from ..errors import BpfError
from ..prog import BpfProg
from ..runtime import BpfObject, ObjKind, Runtime
from ..syscall import (
    _copy_out,
    _map_from_fd,
    check_zeroed_user,
    copy_from_user,
    register_command,
)
from ..uapi import BPF_F_QUERY_EFFECTIVE, AttachFlags, AttachType, Cmd, LinkType, ProgType

__all__ = [
    "BPF_LINK_INFO_SIZE",
    "BpfLink",
    "LinkInfo",
    "ProgQueryResult",
    "attach_type_to_prog_type",
    "deliver_query",
    "prog_attach_check_attach_type",
    "prog_get",
    "prog_get_type",
    "register_link_attach_type",
    "register_link_kind",
    "register_prog_attach",
    "register_prog_query",
    "settle_link",
    "write_query_ids",
]

PAGE_SIZE = 4096
#: sizeof(struct bpf_link_info): type, id, prog_id, then a 48-byte union at 16.
BPF_LINK_INFO_SIZE = 64
_UNION_OFF = 16

#: BPF_F_ATTACH_MASK_BASE / BPF_F_ATTACH_MASK_MPROG (kernel/bpf/syscall.c), as ints.
ATTACH_MASK_BASE = int(AttachFlags.ALLOW_OVERRIDE | AttachFlags.ALLOW_MULTI
                       | AttachFlags.REPLACE | AttachFlags.PREORDER)
ATTACH_MASK_MPROG = int(AttachFlags.REPLACE | AttachFlags.BEFORE | AttachFlags.AFTER
                        | AttachFlags.ID | AttachFlags.LINK)

A = AttachType
P = ProgType

#: attach_type_to_prog_type (kernel/bpf/syscall.c).
_ATTACH_PROG_TYPE: dict[int, ProgType] = {
    **dict.fromkeys((A.CGROUP_INET_INGRESS, A.CGROUP_INET_EGRESS), P.CGROUP_SKB),
    **dict.fromkeys((A.CGROUP_INET_SOCK_CREATE, A.CGROUP_INET_SOCK_RELEASE,
                     A.CGROUP_INET4_POST_BIND, A.CGROUP_INET6_POST_BIND), P.CGROUP_SOCK),
    **dict.fromkeys((A.CGROUP_INET4_BIND, A.CGROUP_INET6_BIND, A.CGROUP_INET4_CONNECT,
                     A.CGROUP_INET6_CONNECT, A.CGROUP_UNIX_CONNECT,
                     A.CGROUP_INET4_GETPEERNAME, A.CGROUP_INET6_GETPEERNAME,
                     A.CGROUP_UNIX_GETPEERNAME, A.CGROUP_INET4_GETSOCKNAME,
                     A.CGROUP_INET6_GETSOCKNAME, A.CGROUP_UNIX_GETSOCKNAME,
                     A.CGROUP_UDP4_SENDMSG, A.CGROUP_UDP6_SENDMSG, A.CGROUP_UNIX_SENDMSG,
                     A.CGROUP_UDP4_RECVMSG, A.CGROUP_UDP6_RECVMSG, A.CGROUP_UNIX_RECVMSG),
                    P.CGROUP_SOCK_ADDR),
    A.CGROUP_SOCK_OPS: P.SOCK_OPS,
    A.CGROUP_DEVICE: P.CGROUP_DEVICE,
    A.SK_MSG_VERDICT: P.SK_MSG,
    **dict.fromkeys((A.SK_SKB_STREAM_PARSER, A.SK_SKB_STREAM_VERDICT, A.SK_SKB_VERDICT),
                    P.SK_SKB),
    A.LIRC_MODE2: P.LIRC_MODE2,
    A.FLOW_DISSECTOR: P.FLOW_DISSECTOR,
    A.CGROUP_SYSCTL: P.CGROUP_SYSCTL,
    **dict.fromkeys((A.CGROUP_GETSOCKOPT, A.CGROUP_SETSOCKOPT), P.CGROUP_SOCKOPT),
    **dict.fromkeys((A.TRACE_ITER, A.TRACE_RAW_TP, A.TRACE_FENTRY, A.TRACE_FEXIT,
                     A.MODIFY_RETURN), P.TRACING),
    A.LSM_MAC: P.LSM,
    A.LSM_CGROUP: P.LSM,
    A.SK_LOOKUP: P.SK_LOOKUP,
    A.XDP: P.XDP,
    **dict.fromkeys((A.TCX_INGRESS, A.TCX_EGRESS, A.NETKIT_PRIMARY, A.NETKIT_PEER),
                    P.SCHED_CLS),
}

#: Program types whose PROG_ATTACH takes the mprog flags (bpf_mprog_supported).
MPROG_PROG_TYPES = frozenset({P.SCHED_CLS})
#: is_cgroup_prog_type(ptype, 0, false).
CGROUP_PROG_TYPES = frozenset({P.CGROUP_DEVICE, P.CGROUP_SKB, P.CGROUP_SOCK,
                               P.CGROUP_SOCK_ADDR, P.CGROUP_SOCKOPT, P.CGROUP_SYSCTL,
                               P.SOCK_OPS})
_KPROBE_LINK_ATTACH = (A.PERF_EVENT, A.TRACE_KPROBE_MULTI, A.TRACE_KPROBE_SESSION,
                       A.TRACE_UPROBE_MULTI, A.TRACE_UPROBE_SESSION)


def attach_type_to_prog_type(attach_type: int) -> ProgType:
    """The program type an attach type belongs to (UNSPEC when none)."""
    return _ATTACH_PROG_TYPE.get(attach_type, P.UNSPEC)


def prog_attach_check_attach_type(prog: BpfProg, attach_type: int) -> None:
    """bpf_prog_attach_check_attach_type: EINVAL (EPERM for an unprivileged
    CGROUP_SKB attach) when ``prog`` can't go on ``attach_type``."""
    pt = prog.prog_type
    eat = prog.expected_attach_type
    if pt in (P.CGROUP_SOCK, P.CGROUP_SOCK_ADDR, P.CGROUP_SOCKOPT, P.SK_LOOKUP):
        ok = attach_type == eat
    elif pt == P.CGROUP_SKB:
        if not prog.runtime.privileged:
            raise BpfError(errno.EPERM, "attaching CGROUP_SKB programs needs CAP_NET_ADMIN")
        # Either direction, unless the verifier set enforce_expected_attach_type
        # (an egress program returning 2 or 3, the congestion bits): then egress only.
        ok = attach_type_to_prog_type(attach_type) == pt and not (
            prog.enforce_expected_attach_type and attach_type != eat)
    elif pt == P.EXT:
        ok = True
    elif pt == P.NETFILTER:
        ok = attach_type == A.NETFILTER
    elif pt in (P.PERF_EVENT, P.TRACEPOINT):
        ok = attach_type == A.PERF_EVENT
    elif pt == P.KPROBE:
        multi = (A.TRACE_KPROBE_MULTI, A.TRACE_KPROBE_SESSION, A.TRACE_UPROBE_MULTI,
                 A.TRACE_UPROBE_SESSION)
        ok = (eat not in multi or attach_type == eat) and attach_type in _KPROBE_LINK_ATTACH
    elif pt == P.SCHED_CLS:
        ok = attach_type in (A.TCX_INGRESS, A.TCX_EGRESS, A.NETKIT_PRIMARY, A.NETKIT_PEER)
    else:
        ptype = attach_type_to_prog_type(attach_type)
        ok = ptype != P.UNSPEC and ptype == pt
    if not ok:
        raise BpfError(errno.EINVAL, f"a {pt.name} program (expected_attach_type {eat}) "
                       f"can't be attached as attach_type {attach_type}")


def prog_get(rt: Runtime, fd: int) -> BpfProg:
    """bpf_prog_get: the program behind ``fd`` (EBADF: no fd; EINVAL: not a program)."""
    obj, _ = rt.get_object(fd, ObjKind.PROG)
    assert isinstance(obj, BpfProg)
    return obj


def prog_get_type(rt: Runtime, fd: int, prog_type: int) -> BpfProg:
    """bpf_prog_get_type: as :func:`prog_get`, and EINVAL for another program type."""
    prog = prog_get(rt, fd)
    if prog.prog_type != prog_type:
        raise BpfError(errno.EINVAL, f"fd {fd} is a {prog.prog_type.name} program, not "
                       f"{ProgType(prog_type).name}")
    return prog


def link_get(rt: Runtime, fd: int) -> BpfLink:
    """bpf_link_get_from_fd (EBADF: no fd; EINVAL: not a link)."""
    obj, _ = rt.get_object(fd, ObjKind.LINK)
    assert isinstance(obj, BpfLink)
    return obj


# -- struct bpf_link_info ----------------------------------------------------------------------
#: The union of struct bpf_link_info per link type: (field, offset in the union, format).
LINK_INFO_FIELDS: dict[LinkType, tuple[tuple[str, int, str], ...]] = {
    LinkType.RAW_TRACEPOINT: (("tp_name", 0, "Q"), ("tp_name_len", 8, "I"),
                              ("cookie", 16, "Q")),
    LinkType.TRACING: (("attach_type", 0, "I"), ("target_obj_id", 4, "I"),
                       ("target_btf_id", 8, "I"), ("cookie", 16, "Q")),
    LinkType.CGROUP: (("cgroup_id", 0, "Q"), ("attach_type", 8, "I")),
    LinkType.ITER: (("target_name", 0, "Q"), ("target_name_len", 8, "I"),
                    ("map_id", 16, "I"), ("cgroup_id", 16, "Q"), ("order", 24, "I"),
                    ("tid", 16, "I"), ("pid", 20, "I")),
    LinkType.NETNS: (("netns_ino", 0, "I"), ("attach_type", 4, "I")),
    LinkType.XDP: (("ifindex", 0, "I"),),
    LinkType.PERF_EVENT: (("perf_event_type", 0, "I"), ("name", 8, "Q"),
                          ("name_len", 16, "I"), ("offset", 20, "I"), ("addr", 24, "Q"),
                          ("missed", 32, "Q"), ("kprobe_cookie", 40, "Q"),
                          ("cookie", 24, "Q"), ("config", 8, "Q"), ("event_type", 16, "I")),
    LinkType.KPROBE_MULTI: (("addrs", 0, "Q"), ("count", 8, "I"), ("flags", 12, "I"),
                            ("missed", 16, "Q"), ("cookies", 24, "Q")),
    LinkType.STRUCT_OPS: (("map_id", 0, "I"),),
    LinkType.NETFILTER: (("pf", 0, "I"), ("hooknum", 4, "I"), ("priority", 8, "i"),
                         ("flags", 12, "I")),
    LinkType.TCX: (("ifindex", 0, "I"), ("attach_type", 4, "I")),
    LinkType.UPROBE_MULTI: (("path", 0, "Q"), ("offsets", 8, "Q"), ("ref_ctr_offsets", 16, "Q"),
                            ("cookies", 24, "Q"), ("path_size", 32, "I"), ("count", 36, "I"),
                            ("flags", 40, "I"), ("pid", 44, "I")),
    LinkType.NETKIT: (("ifindex", 0, "I"), ("attach_type", 4, "I")),
    LinkType.SOCKMAP: (("map_id", 0, "I"), ("attach_type", 4, "I")),
}


@attrs.frozen
class LinkInfo:
    """struct bpf_link_info: the common head and the link type's union members
    (``details``, also readable as attributes: ``info.ifindex``)."""

    type: int
    id: int
    prog_id: int
    details: Mapping[str, int] = attrs.field(factory=dict)

    def __getattr__(self, name: str) -> int:
        details = object.__getattribute__(self, "details")
        if name in details:
            return int(details[name])
        raise AttributeError(name)

    @staticmethod
    def _fields(link_type: int) -> tuple[tuple[str, int, str], ...]:
        try:
            return LINK_INFO_FIELDS.get(LinkType(link_type), ())
        except ValueError:
            return ()

    @classmethod
    def unpack(cls, raw: bytes, link_type: int | None = None) -> LinkInfo:
        """From the struct's bytes; the union is read as ``link_type``'s (default:
        the type the bytes say)."""
        raw = bytes(raw[:BPF_LINK_INFO_SIZE]).ljust(BPF_LINK_INFO_SIZE, b"\0")
        ltype, lid, prog_id = struct.unpack_from("<3I", raw)
        union_type = ltype if link_type is None else link_type
        details = {name: struct.unpack_from("<" + fmt, raw, _UNION_OFF + off)[0]
                   for name, off, fmt in cls._fields(union_type)}
        return cls(type=ltype, id=lid, prog_id=prog_id, details=details)

    def pack(self, base: bytes = b"") -> bytes:
        """The struct's bytes; union members not in ``details`` keep ``base``'s bytes."""
        out = bytearray(bytes(base[:BPF_LINK_INFO_SIZE]).ljust(BPF_LINK_INFO_SIZE, b"\0"))
        struct.pack_into("<3I", out, 0, self.type, self.id, self.prog_id)
        for name, off, fmt in self._fields(self.type):
            if name in self.details:
                struct.pack_into("<" + fmt, out, _UNION_OFF + off, self.details[name])
        return bytes(out)


# -- the link object ---------------------------------------------------------------------------
class BpfLink(BpfObject):
    """struct bpf_link: one program on one hook, for as long as a reference lives.

    Subclasses say where the hook is: :meth:`attach` (called once, after the
    link got its id), :meth:`release_hook` (detach and last close), and what
    their info reports (:meth:`fill_info`). ``prog`` is held by the link.
    """

    kind = ObjKind.LINK
    link_type: ClassVar[LinkType] = LinkType.UNSPEC
    #: Whether BPF_LINK_DETACH works on this kind (else EOPNOTSUPP).
    supports_detach: ClassVar[bool] = False
    #: Whether BPF_LINK_UPDATE works on this kind (else EINVAL: no update_prog op).
    supports_update: ClassVar[bool] = False

    def __init__(self, runtime: Runtime, prog: BpfProg | None, attach_type: int) -> None:
        super().__init__(runtime)
        self.prog = prog
        if prog is not None:
            prog.hold()
        self.attach_type = attach_type
        #: On the hook (False before attach, after detach, and once the hook went away).
        self.attached = False

    def __repr__(self) -> str:
        prog = f" prog {self.prog.id}" if self.prog is not None else ""
        state = "" if self.attached else " defunct"
        return f"<{type(self).__name__} id {self.id}{prog}{state}>"

    # -- what a kind provides ------------------------------------------------------------------
    def attach(self) -> None:
        """Put the link on its hook (raise BpfError when the hook refuses)."""
        self.attached = True

    def release_hook(self) -> None:
        """Take the link off its hook (bpf_link_ops.release)."""
        self.attached = False

    def fill_info(self, info: dict[str, int]) -> None:
        """bpf_link_ops.fill_link_info: set the union members of this link type."""

    def check_update_prog(self, new: BpfProg) -> None:
        """The kind's rule for a replacement program (xdp's: same type and
        expected attach type; EINVAL otherwise)."""
        old = self.prog
        assert old is not None
        if new.prog_type != old.prog_type or new.expected_attach_type != \
                old.expected_attach_type:
            raise BpfError(errno.EINVAL, "the new program's type or expected attach type "
                           "differs from the link's")

    def replace_prog(self, new: BpfProg) -> None:
        """Swap the program (the hook reads ``self.prog``; kinds with their own
        arrays override this and call it)."""
        old = self.prog
        new.hold()
        self.prog = new
        if old is not None:
            old.release()

    # -- the generic operations ------------------------------------------------------------------
    def update_prog(self, new: BpfProg, old: BpfProg | None) -> None:
        """bpf_link_ops.update_prog, in the order most kinds check: a defunct link
        (ENOLINK), a BPF_F_REPLACE mismatch (EPERM), the kind's type rule (EINVAL);
        the same program again is a no-op."""
        if not self.supports_update:
            raise BpfError(errno.EINVAL, f"{self.link_type.name} links can't be updated")
        if not self.attached:
            raise BpfError(errno.ENOLINK, "the link is detached")
        if old is not None and old is not self.prog:
            raise BpfError(errno.EPERM, "old_prog_fd is not the link's program")
        self.check_update_prog(new)
        if new is self.prog:
            return
        self.replace_prog(new)

    def update_map(self, new_map: Any, old_map: Any) -> None:
        """bpf_link_ops.update_map (struct_ops links override it)."""
        raise NotImplementedError

    @property
    def updates_map(self) -> bool:
        return type(self).update_map is not BpfLink.update_map

    def detach(self) -> None:
        """BPF_LINK_DETACH: off the hook now; the fd stays, defunct."""
        if not self.supports_detach:
            raise BpfError(errno.EOPNOTSUPP, f"{self.link_type.name} links can't be detached")
        if self.attached:
            self.release_hook()

    def info(self) -> LinkInfo:
        """struct bpf_link_info of this link."""
        details: dict[str, int] = {}
        self.fill_info(details)
        return LinkInfo(type=int(self.link_type), id=self.id,
                        prog_id=self.prog.id if self.prog is not None else 0, details=details)

    def get_info_by_fd(self, attr: InfoByFdAttr) -> LinkInfo | int:
        """bpf_link_get_info_by_fd: the caller's struct comes in first (fields a
        kind doesn't set keep what the caller put there), ``info_len`` bytes of it
        go back out. Python callers: ``info`` None is a zeroed struct and the
        result comes back as a LinkInfo; a UserPtr gets the bytes written."""
        rt = self.runtime
        python_caller = attr.info is None
        info_len = attr.info_len or (BPF_LINK_INFO_SIZE if python_caller else 0)
        if info_len > PAGE_SIZE:
            raise BpfError(errno.E2BIG, f"info_len {info_len} is larger than a page")
        if info_len > BPF_LINK_INFO_SIZE and not python_caller and not check_zeroed_user(
                rt, _offset(attr.info, BPF_LINK_INFO_SIZE), info_len - BPF_LINK_INFO_SIZE):
            raise BpfError(errno.E2BIG, "non-zero bytes past the end of struct bpf_link_info")
        n = min(info_len, BPF_LINK_INFO_SIZE)
        user = bytes(n) if python_caller else copy_from_user(rt, attr.info, n)
        given = LinkInfo.unpack(user, int(self.link_type))  # the caller's union, as ours
        details = dict(given.details)
        self.fill_info(details)
        # Union members share bytes: write only what the kind changed over the
        # caller's bytes, then read every member back from the result.
        changed = {k: v for k, v in details.items() if given.details.get(k) != v}
        info = LinkInfo(type=int(self.link_type), id=self.id,
                        prog_id=self.prog.id if self.prog is not None else 0, details=changed)
        out = info.pack(user)[:n]
        if isinstance(attr.info, UserPtr):
            _copy_out(rt, attr.info, out)
            return 0
        if isinstance(attr.info, bytearray):
            attr.info[:n] = out
        return LinkInfo.unpack(out, int(self.link_type))

    def free(self) -> None:
        """bpf_link_free: off the hook, then the program reference goes."""
        if self.attached:
            self.release_hook()
        if self.prog is not None:
            self.prog.release()
            self.prog = None


def _offset(buf: Buffer, off: int) -> Buffer:
    if isinstance(buf, UserPtr):
        return UserPtr(buf.addr + off)
    return None if buf is None else bytes(buf)[off:]


# -- BPF_LINK_CREATE ---------------------------------------------------------------------------
LinkCreate = Callable[[Runtime, LinkCreateAttr, BpfProg], BpfLink]
#: (prog_type, attach_type or None for any) -> the kind's constructor.
_LINK_KINDS: dict[tuple[ProgType, int | None], LinkCreate] = {}
#: Kinds chosen by attach type before a program is looked up (struct_ops).
_LINK_ATTACH_TYPES: dict[int, Callable[[Runtime, LinkCreateAttr], int]] = {}


def register_link_kind(prog_type: ProgType, create: LinkCreate, *,
                       attach_type: int | None = None) -> None:
    """Make BPF_LINK_CREATE build ``create(rt, attr, prog)`` links for programs of
    ``prog_type`` (only for ``attach_type`` if given; that entry wins over an
    any-attach-type one)."""
    _LINK_KINDS[(ProgType(prog_type), attach_type)] = create


def register_link_attach_type(attach_type: int,
                              create: Callable[[Runtime, LinkCreateAttr], int]) -> None:
    """Make BPF_LINK_CREATE with ``attach_type`` call ``create(rt, attr) -> fd``
    before any program is looked up (the kernel's BPF_STRUCT_OPS branch)."""
    _LINK_ATTACH_TYPES[attach_type] = create


def settle_link(rt: Runtime, link: BpfLink) -> int:
    """bpf_link_prime + attach + bpf_link_settle: the id, the hook, the fd.

    A refused attach gives the id back (it stays consumed: ids are cyclic) and
    drops the link's program reference; nothing else changed."""
    if sum(1 for fd in range(3, rt.fd_limit) if fd not in rt.fds) == 0:
        link.free()
        raise BpfError(errno.EMFILE, f"too many open files (limit {rt.fd_limit})")
    rt.register(link)
    try:
        link.attach()
    except BpfError:
        rt._forget(link)
        link.attached = False
        link.free()
        raise
    return rt.install_fd(link)


def link_create(rt: Runtime, attr: LinkCreateAttr) -> int:
    """link_create (kernel/bpf/syscall.c)."""
    at = attr.attach_type
    pre = _LINK_ATTACH_TYPES.get(at)
    if pre is not None:
        return pre(rt, attr)
    prog = prog_get(rt, attr.prog_fd)
    prog_attach_check_attach_type(prog, at)
    pt = prog.prog_type
    if pt in (P.TRACING, P.LSM) and at != prog.expected_attach_type:
        raise BpfError(errno.EINVAL, f"attach_type {at} is not the program's expected "
                       f"attach type {prog.expected_attach_type}")
    create = _LINK_KINDS.get((pt, at)) or _LINK_KINDS.get((pt, None))
    if create is None:
        raise BpfError(errno.EINVAL, f"no link for {pt.name} programs with attach_type {at}")
    return settle_link(rt, create(rt, attr, prog))


# -- BPF_LINK_UPDATE / BPF_LINK_DETACH ---------------------------------------------------------
def link_update(rt: Runtime, attr: LinkUpdateAttr) -> int:
    """link_update: flags first, then the link, then the programs (or maps)."""
    if attr.flags & ~int(AttachFlags.REPLACE):
        raise BpfError(errno.EINVAL, f"invalid LINK_UPDATE flags {attr.flags:#x}")
    link = link_get(rt, attr.link_fd)
    replace = bool(attr.flags & AttachFlags.REPLACE)
    if link.updates_map:
        new_map, _ = _map_from_fd(rt, attr.new_map_fd)
        old_map = None
        if replace:
            old_map, _ = _map_from_fd(rt, attr.old_map_fd)
        elif attr.old_map_fd:
            raise BpfError(errno.EINVAL, "old_map_fd without BPF_F_REPLACE")
        link.update_map(new_map, old_map)
        return 0
    new = prog_get(rt, attr.new_prog_fd)
    old = None
    if replace:
        old = prog_get(rt, attr.old_prog_fd)
    elif attr.old_prog_fd:
        raise BpfError(errno.EINVAL, "old_prog_fd without BPF_F_REPLACE")
    link.update_prog(new, old)
    return 0


def link_detach(rt: Runtime, attr: LinkDetachAttr) -> int:
    link_get(rt, attr.link_fd).detach()
    return 0


# -- BPF_PROG_ATTACH / PROG_DETACH / PROG_QUERY ------------------------------------------------
ProgAttach = Callable[[Runtime, ProgAttachAttr, BpfProg], None]
ProgDetach = Callable[[Runtime, ProgAttachAttr, BpfProg | None], None]
#: (prog_type, attach_type or None) -> (attach, detach).
_PROG_ATTACH: dict[tuple[ProgType, int | None], tuple[ProgAttach, ProgDetach]] = {}
#: attach_type -> query.
_PROG_QUERY: dict[int, Callable[[Runtime, ProgQueryAttr], ProgQueryResult]] = {}


def register_prog_attach(prog_type: ProgType, attach: ProgAttach, detach: ProgDetach, *,
                         attach_types: tuple[int, ...] | None = None) -> None:
    """Route BPF_PROG_ATTACH/DETACH of ``prog_type`` (optionally only these attach
    types) to a family. ``attach(rt, attr, prog)``; ``detach(rt, attr, prog)``
    where ``prog`` is the program named by attach_bpf_fd, if any."""
    for at in attach_types or (None,):
        _PROG_ATTACH[(ProgType(prog_type), at)] = (attach, detach)


def register_prog_query(attach_types: tuple[int, ...],
                        query: Callable[[Runtime, ProgQueryAttr], ProgQueryResult]) -> None:
    for at in attach_types:
        _PROG_QUERY[at] = query


def _family(ptype: ProgType, at: int) -> tuple[ProgAttach, ProgDetach] | None:
    return _PROG_ATTACH.get((ptype, at)) or _PROG_ATTACH.get((ptype, None))


def prog_attach(rt: Runtime, attr: ProgAttachAttr) -> int:
    """bpf_prog_attach."""
    ptype = attach_type_to_prog_type(attr.attach_type)
    if ptype == P.UNSPEC:
        raise BpfError(errno.EINVAL, f"attach_type {attr.attach_type} has no program type")
    flags = attr.attach_flags
    if ptype in MPROG_PROG_TYPES:
        if flags & ~ATTACH_MASK_MPROG:
            raise BpfError(errno.EINVAL, f"invalid attach_flags {flags:#x}")
    elif ptype in CGROUP_PROG_TYPES or ptype == P.LSM:
        if flags & ~(ATTACH_MASK_BASE | ATTACH_MASK_MPROG):
            raise BpfError(errno.EINVAL, f"invalid attach_flags {flags:#x}")
    else:
        if flags & ~ATTACH_MASK_BASE:
            raise BpfError(errno.EINVAL, f"invalid attach_flags {flags:#x}")
        if attr.relative_fd or attr.expected_revision:
            raise BpfError(errno.EINVAL, "relative_fd/expected_revision are for mprog hooks")
    prog = prog_get_type(rt, attr.attach_bpf_fd, ptype)
    try:
        prog_attach_check_attach_type(prog, attr.attach_type)
    except BpfError:
        raise BpfError(errno.EINVAL, "the program can't go on this attach type") from None
    if ptype == P.LSM and prog.expected_attach_type != A.LSM_CGROUP:
        raise BpfError(errno.EINVAL, "only BPF_LSM_CGROUP programs attach to cgroups")
    family = _family(ptype, attr.attach_type)
    if family is None:
        raise BpfError(errno.EINVAL, f"{ptype.name} programs have no PROG_ATTACH in pyebpf")
    family[0](rt, attr, prog)
    return 0


def prog_detach(rt: Runtime, attr: ProgAttachAttr) -> int:
    """bpf_prog_detach."""
    ptype = attach_type_to_prog_type(attr.attach_type)
    prog: BpfProg | None = None
    if ptype in MPROG_PROG_TYPES:
        if attr.attach_flags & ~ATTACH_MASK_MPROG:
            raise BpfError(errno.EINVAL, f"invalid attach_flags {attr.attach_flags:#x}")
        if attr.attach_bpf_fd:
            prog = prog_get_type(rt, attr.attach_bpf_fd, ptype)
    elif ptype in CGROUP_PROG_TYPES or ptype == P.LSM:
        if attr.attach_flags or attr.relative_fd:
            raise BpfError(errno.EINVAL, "cgroup detach takes no attach_flags/relative_fd")
    elif attr.attach_flags or attr.relative_fd or attr.expected_revision:
        raise BpfError(errno.EINVAL, "PROG_DETACH takes no attach_flags, relative_fd or "
                       "expected_revision here")
    family = _family(ptype, attr.attach_type)
    if family is None:
        raise BpfError(errno.EINVAL, f"attach_type {attr.attach_type} has no PROG_DETACH")
    family[1](rt, attr, prog)
    return 0


@attrs.frozen
class ProgQueryResult:
    """What BPF_PROG_QUERY reports: every id (a Python caller gets them all; a
    user buffer gets at most ``prog_cnt``), the hook's flags and revision."""

    attach_flags: int = 0
    prog_ids: tuple[int, ...] = ()
    prog_attach_flags: tuple[int, ...] = ()
    link_ids: tuple[int, ...] = ()
    link_attach_flags: tuple[int, ...] = ()
    revision: int = 0

    @property
    def prog_cnt(self) -> int:
        return len(self.prog_ids)


def _write_u32s(rt: Runtime, dst: Buffer, values: tuple[int, ...]) -> None:
    data = struct.pack(f"<{len(values)}I", *values)
    if isinstance(dst, bytearray):
        dst[: len(data)] = data
    elif isinstance(dst, UserPtr):
        _copy_out(rt, dst, data)


def write_query_ids(rt: Runtime, dst: Buffer, ids: tuple[int, ...]) -> None:
    """Copy ``ids`` (u32s, all of them) to a caller's array: for families that copy
    without deliver_query's prog_cnt cap (lirc_prog_query)."""
    _write_u32s(rt, dst, ids)


def deliver_query(rt: Runtime, attr: ProgQueryAttr, result: ProgQueryResult, *,
                  arrays: tuple[str, ...] = ("prog_ids",)) -> ProgQueryResult:
    """Copy a query's ids to the caller's arrays (``arrays`` names which ones the
    family fills), at most ``prog_cnt`` of them: more programs than that is
    ENOSPC after the copy (bpf_prog_array_copy_to_user), with ``.result``."""
    if not attr.prog_cnt or attr.prog_ids is None or not result.prog_ids:
        return result
    cnt = min(attr.prog_cnt, len(result.prog_ids))
    for name in arrays:
        dst = getattr(attr, name)
        if dst is not None:
            _write_u32s(rt, dst, getattr(result, name)[:cnt])
    if len(result.prog_ids) > attr.prog_cnt:
        exc = BpfError(errno.ENOSPC, f"{len(result.prog_ids)} programs, room for "
                       f"{attr.prog_cnt}")
        exc.result = result  # type: ignore[attr-defined]
        raise exc
    return result


def prog_query(rt: Runtime, attr: ProgQueryAttr) -> ProgQueryResult:
    """bpf_prog_query."""
    if not rt.privileged:
        raise BpfError(errno.EPERM, "PROG_QUERY needs CAP_NET_ADMIN")
    if attr.query_flags & ~BPF_F_QUERY_EFFECTIVE:
        raise BpfError(errno.EINVAL, f"invalid query_flags {attr.query_flags:#x}")
    query = _PROG_QUERY.get(attr.attach_type)
    if query is None:
        raise BpfError(errno.EINVAL, f"attach_type {attr.attach_type} can't be queried")
    return query(rt, attr)


register_command(Cmd.LINK_CREATE, link_create)
register_command(Cmd.LINK_UPDATE, link_update)
register_command(Cmd.LINK_DETACH, link_detach)
register_command(Cmd.PROG_ATTACH, prog_attach)
register_command(Cmd.PROG_DETACH, prog_detach)
register_command(Cmd.PROG_QUERY, prog_query)
