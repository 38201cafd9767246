"""Cgroups: BPF_PROG_ATTACH/DETACH/QUERY and cgroup links (kernel/bpf/cgroup.c).

A :class:`Cgroup` is a directory of the cgroup v2 hierarchy (``cgroup_root(rt)``
is the root; ``mkdir``/``mkdir_p``/``rmdir``; ``open()`` gives the fd BPF
commands take as ``target_fd``). Each cgroup has, per attach type, a list of
attached programs (``bpf.progs``), the list's mode (``bpf.flags``: none,
BPF_F_ALLOW_OVERRIDE or BPF_F_ALLOW_MULTI) and a revision; the programs that
run for a cgroup are its *effective* array, computed from the cgroup up to the
root as compute_effective_progs does: the cgroup's own programs, then each
ancestor's if that ancestor is ALLOW_MULTI, or if nothing was collected yet
(an ancestor's program is overridden by a descendant's). BPF_F_PREORDER
programs run before the others, outermost cgroup first.

The rules of __cgroup_bpf_attach, in order: OVERRIDE with MULTI, or REPLACE
without MULTI, or REPLACE with BEFORE/AFTER is EINVAL; a stale
expected_revision ESTALE; an ancestor with a non-overridable program EPERM
(hierarchy_allows_attach); a list attached in another mode EPERM; 64 programs
E2BIG; the same program (or link) twice in a MULTI list EINVAL, a program to
replace that isn't there ENOENT. Without MULTI a second attach replaces the
first. Detach: MULTI needs the program (EINVAL without one, ENOENT if absent);
NONE/OVERRIDE detach whatever is attached, even with a bad fd (ENOENT only if
nothing is). Links attach as ALLOW_MULTI.

Firing: :meth:`Cgroup.run_skb` runs the effective CGROUP_SKB programs on a
packet as __cgroup_bpf_run_filter_skb does: every program runs; the packet
passes only if all return 1 (bit 0), and on egress bit 1 asks for congestion
notification. :meth:`Cgroup.run` fires the hooks whose ctx is a plain struct
(socket creation, bind/connect/sendmsg, sock_ops, device, sysctl).
"""

from __future__ import annotations

import errno
from typing import Any

import attrs

from ..attr import LinkCreateAttr, ProgAttachAttr, ProgQueryAttr
from ..errors import BpfError, BpfFault
from ..prog import BpfProg
from ..progs.ctx import CtxDevice
from ..runtime import BpfObject, ObjKind, Runtime
from ..uapi import BPF_F_QUERY_EFFECTIVE, AttachFlags, AttachType, LinkType, ProgType
from .base import (
    CGROUP_PROG_TYPES,
    BpfLink,
    ProgQueryResult,
    _write_u32s,
    attach_type_to_prog_type,
    link_get,
    prog_get,
    register_link_kind,
    register_prog_attach,
    register_prog_query,
)

__all__ = ["Cgroup", "CgroupLink", "CgroupSkbVerdict", "CgroupVerdict", "cgroup_root"]

F = AttachFlags
#: BPF_CGROUP_MAX_PROGS.
BPF_CGROUP_MAX_PROGS = 64
#: BPF_F_LINK_ATTACH_MASK: the flags a cgroup link may carry.
LINK_ATTACH_MASK = int(F.ID | F.BEFORE | F.AFTER | F.PREORDER | F.LINK)
_MODE_FLAGS = int(F.ALLOW_OVERRIDE | F.ALLOW_MULTI)
#: The attach types of the cgroup hooks (to_cgroup_bpf_attach_type).
CGROUP_ATTACH_TYPES = tuple(at for at in AttachType
                            if attach_type_to_prog_type(at) in CGROUP_PROG_TYPES)


@attrs.define(eq=False)
class ProgListEntry:
    """struct bpf_prog_list: one attached program, or a link."""

    prog: BpfProg | None
    link: CgroupLink | None
    flags: int

    @property
    def effective_prog(self) -> BpfProg | None:
        """prog_list_prog."""
        if self.link is not None:
            return self.link.prog
        return self.prog


@attrs.frozen
class CgroupSkbVerdict:
    """What the cgroup_skb programs decided: ``allow`` (all returned 1 in bit 0),
    ``cn`` (egress: some program set bit 1, congestion notification), and each
    program's return value in run order."""

    allow: bool
    cn: bool
    verdicts: tuple[int, ...]


class Cgroup(BpfObject):
    """A cgroup v2 directory with its BPF hooks."""

    kind = ObjKind.CGROUP

    def __init__(self, runtime: Runtime, name: str, parent: Cgroup | None) -> None:
        super().__init__(runtime)
        state = _state(runtime) if parent is not None else None
        self.name = name
        self.parent = parent
        self.children: dict[str, Cgroup] = {}
        self.online = True
        #: cgroup_id (the kernfs node id): the root is 1.
        self.cgroup_id = 1 if state is None else state["next_id"]
        if state is not None:
            state["next_id"] += 1
        self.progs: dict[int, list[ProgListEntry]] = {at: [] for at in CGROUP_ATTACH_TYPES}
        self.flags: dict[int, int] = dict.fromkeys(CGROUP_ATTACH_TYPES, 0)
        self.revisions: dict[int, int] = dict.fromkeys(CGROUP_ATTACH_TYPES, 1)
        self.hold()  # the directory itself; rmdir drops it

    def __repr__(self) -> str:
        return f"<Cgroup {self.path}>"

    @property
    def path(self) -> str:
        if self.parent is None:
            return "/"
        parent = self.parent.path
        return f"{parent.rstrip('/')}/{self.name}"

    def mkdir(self, name: str) -> Cgroup:
        if name in self.children:
            raise FileExistsError(f"{self.path}/{name}")
        child = Cgroup(self.runtime, name, self)
        self.children[name] = child
        return child

    def mkdir_p(self, path: str) -> Cgroup:
        cg = self
        for part in [p for p in path.split("/") if p]:
            cg = cg.children.get(part) or cg.mkdir(part)
        return cg

    def rmdir(self) -> None:
        """Remove an empty cgroup: its links go defunct, its programs are released
        (cgroup_bpf_offline / cgroup_bpf_release)."""
        if self.parent is None:
            raise PermissionError("the root cgroup can't be removed")
        if self.children:
            raise OSError(errno.EBUSY, f"{self.path} has children")
        self.online = False
        del self.parent.children[self.name]
        for at, entries in self.progs.items():
            for pl in entries:
                if pl.link is not None:
                    pl.link.cgroup = None
                    pl.link.attached = False
                elif pl.prog is not None:
                    pl.prog.release()
            entries.clear()
            self.flags[at] = 0
        self.release()

    def open(self) -> int:
        """An fd on the directory (open(path, O_RDONLY | O_DIRECTORY))."""
        if not self.online:
            raise BpfError(errno.ENOENT, f"{self.path} was removed")
        return self.runtime.install_fd(self)

    def ancestors(self) -> list[Cgroup]:
        """This cgroup, its parent, ... up to the root."""
        out: list[Cgroup] = []
        cg: Cgroup | None = self
        while cg is not None:
            out.append(cg)
            cg = cg.parent
        return out

    # -- effective programs --------------------------------------------------------------------
    def effective(self, attach_type: int) -> list[BpfProg]:
        """compute_effective_progs: the programs that run, in order."""
        pre: list[list[BpfProg]] = []
        post: list[BpfProg] = []
        cnt = 0
        for cg in self.ancestors():
            if cnt and not cg.flags[attach_type] & F.ALLOW_MULTI:
                continue
            level_pre: list[BpfProg] = []
            for pl in cg.progs[attach_type]:
                prog = pl.effective_prog
                if prog is None:
                    continue
                (level_pre if pl.flags & F.PREORDER else post).append(prog)
                cnt += 1
            pre.append(level_pre)
        return [p for level in reversed(pre) for p in level] + post

    def hierarchy_allows_attach(self, attach_type: int) -> bool:
        """An ancestor with a program not marked ALLOW_OVERRIDE/MULTI forbids it."""
        for p in self.ancestors()[1:]:
            flags = p.flags[attach_type]
            if flags & F.ALLOW_MULTI:
                return True
            if len(p.progs[attach_type]) == 1:
                return bool(flags & F.ALLOW_OVERRIDE)
        return True

    # -- attach / detach (__cgroup_bpf_attach / __cgroup_bpf_detach) ----------------------------
    def bpf_attach(self, prog: BpfProg | None, replace: BpfProg | None,
                   link: CgroupLink | None, attach_type: int, flags: int, id_or_fd: int,
                   revision: int) -> None:
        saved = flags & _MODE_FLAGS
        if (flags & F.ALLOW_OVERRIDE and flags & F.ALLOW_MULTI) or \
                (flags & F.REPLACE and not flags & F.ALLOW_MULTI):
            raise BpfError(errno.EINVAL, "invalid combination of attach flags")
        if flags & F.REPLACE and flags & (F.BEFORE | F.AFTER):
            raise BpfError(errno.EINVAL, "BPF_F_REPLACE with BPF_F_BEFORE/AFTER")
        if link is not None and (prog is not None or replace is not None):
            raise BpfError(errno.EINVAL, "either a link or a program")
        if (replace is not None) != bool(flags & F.REPLACE):
            raise BpfError(errno.EINVAL, "replace_bpf_fd and BPF_F_REPLACE go together")
        if revision and revision != self.revisions[attach_type]:
            raise BpfError(errno.ESTALE, f"expected_revision {revision}, the hook is at "
                           f"{self.revisions[attach_type]}")
        progs = self.progs[attach_type]
        if not self.hierarchy_allows_attach(attach_type):
            raise BpfError(errno.EPERM, "an ancestor has a program that can't be overridden")
        if progs and self.flags[attach_type] != saved:
            raise BpfError(errno.EPERM, "the hook's programs were attached in another mode")
        if len(progs) >= BPF_CGROUP_MAX_PROGS:
            raise BpfError(errno.E2BIG, f"{BPF_CGROUP_MAX_PROGS} programs already")
        pl = self._find_attach_entry(progs, prog, link, replace, bool(flags & F.ALLOW_MULTI))
        old: BpfProg | None = None
        if pl is not None:
            old = pl.prog
            pl.prog, pl.link, pl.flags = prog, link, flags
        else:
            pl = ProgListEntry(prog, link, flags)
            self._insert(progs, pl, flags, id_or_fd)
        if prog is not None:
            prog.hold()
        self.flags[attach_type] = saved
        self.revisions[attach_type] += 1
        if old is not None:
            old.release()

    @staticmethod
    def _find_attach_entry(progs: list[ProgListEntry], prog: BpfProg | None,
                           link: CgroupLink | None, replace: BpfProg | None,
                           allow_multi: bool) -> ProgListEntry | None:
        if not allow_multi:
            return progs[0] if progs else None
        for pl in progs:
            if prog is not None and pl.prog is prog and prog is not replace:
                raise BpfError(errno.EINVAL, "the program is already attached here")
            if link is not None and pl.link is link:
                raise BpfError(errno.EINVAL, "the link is already attached here")
        if replace is not None:
            for pl in progs:
                if pl.prog is replace:
                    return pl
            raise BpfError(errno.ENOENT, "the program to replace is not attached here")
        return None

    def _insert(self, progs: list[ProgListEntry], pl: ProgListEntry, flags: int,
                id_or_fd: int) -> None:
        """insert_pl_to_hlist: BEFORE/AFTER a program or link of this list (none:
        first/last); without them, at the end."""
        anchor = self._relative(progs, flags, id_or_fd)
        if not flags & (F.BEFORE | F.AFTER):
            if anchor is not None:
                raise BpfError(errno.EINVAL, "a relative program needs BPF_F_BEFORE/AFTER")
            progs.append(pl)
        elif flags & F.BEFORE:
            progs.insert(progs.index(anchor) if anchor is not None else 0, pl)
        else:
            progs.insert(progs.index(anchor) + 1 if anchor is not None else len(progs), pl)

    def _relative(self, progs: list[ProgListEntry], flags: int,
                  id_or_fd: int) -> ProgListEntry | None:
        rt = self.runtime
        by_id = bool(flags & F.ID)
        if flags & F.LINK:
            link = rt.objects(ObjKind.LINK).get(id_or_fd) if by_id else (
                link_get(rt, id_or_fd) if id_or_fd else None)
            if link is None:
                raise BpfError(errno.ENOENT if by_id else errno.EINVAL, "no such link")
            found = next((pl for pl in progs if pl.link is link), None)
        elif by_id or id_or_fd:
            prog = rt.objects(ObjKind.PROG).get(id_or_fd) if by_id else prog_get(rt, id_or_fd)
            if prog is None:
                raise BpfError(errno.ENOENT, f"no program with id {id_or_fd}")
            found = next((pl for pl in progs if pl.link is None and pl.prog is prog), None)
        else:
            return None
        if found is None:
            raise BpfError(errno.ENOENT, "the relative program is not attached here")
        return found

    def bpf_detach(self, prog: BpfProg | None, link: CgroupLink | None, attach_type: int,
                   revision: int) -> None:
        if revision and revision != self.revisions[attach_type]:
            raise BpfError(errno.ESTALE, f"expected_revision {revision}, the hook is at "
                           f"{self.revisions[attach_type]}")
        progs = self.progs[attach_type]
        if not self.flags[attach_type] & F.ALLOW_MULTI:
            if not progs:
                raise BpfError(errno.ENOENT, "nothing is attached")
            pl = progs[0]  # legacy: NONE/OVERRIDE detach whatever is there
        else:
            if prog is None and link is None:
                raise BpfError(errno.EINVAL, "detaching from a MULTI hook needs the program")
            pl = next((p for p in progs if p.prog is prog and p.link is link), None)
            if pl is None:
                raise BpfError(errno.ENOENT, "that program is not attached here")
        progs.remove(pl)
        self.revisions[attach_type] += 1
        if not progs:
            self.flags[attach_type] = 0
        if pl.prog is not None:
            pl.prog.release()

    # -- firing -----------------------------------------------------------------------------------
    def run_skb(self, packet: bytes, *, egress: bool = False) -> CgroupSkbVerdict:
        """Run the effective CGROUP_SKB programs on an IP packet (an Ethernet
        frame, whose header the programs don't see: they start at the network
        header, as for a socket's skb)."""
        from ..progs.skb import build_skb, release_skb, run_on_skb

        at = AttachType.CGROUP_INET_EGRESS if egress else AttachType.CGROUP_INET_INGRESS
        rt = self.runtime
        verdicts = []
        allow = True
        cn = False
        for prog in self.effective(at):
            skb = build_skb(rt, packet, ProgType.CGROUP_SKB)
            try:
                saved_cb = bytes(skb.cb)
                r0, _ = run_on_skb(rt, prog, skb)
                skb.cb[:] = saved_cb  # __bpf_prog_run_save_cb
            finally:
                release_skb(rt, skb)
            verdicts.append(r0)
            if egress:
                cn |= bool(r0 >> 1 & 1)
                r0 &= 1
            if not r0:
                allow = False
        return CgroupSkbVerdict(allow=allow, cn=cn, verdicts=tuple(verdicts))

    def sysctl(self, name: str, *, write: bool = False, value: bytes = b"",
               current: bytes | None = b"", file_pos: int = 0) -> Any:
        """A task of this cgroup reads (or writes ``value`` to) ``/proc/sys/<name>``:
        the effective CGROUP_SYSCTL programs run as __cgroup_bpf_run_filter_sysctl
        runs them; a :class:`~pyebpf.helpers.sysctl.SysctlResult` (``retval`` 0 or
        the errno the access fails with, the value the sysctl gets)."""
        from ..helpers.sysctl import run_filter_sysctl

        return run_filter_sysctl(self, name, write=write, value=value, current=current,
                                 file_pos=file_pos)


    def run(self, attach_type: int, **fields: int | bytes) -> CgroupVerdict:
        """Run the effective programs of a hook whose ctx is a plain struct: the
        sock hooks (``bpf_sock``: sock_create, post_bind ...), the sock_addr
        hooks (``bpf_sock_addr``: bind, connect, sendmsg ...), sock_ops,
        device and sysctl. ``fields`` set the ctx struct's fields by name (the
        rest are 0); what the programs wrote is in the result's ``ctx``. As
        bpf_prog_run_array_cg: every program runs, a 0 turns the hook's retval
        into -EPERM unless it already is an error, and bpf_set_retval sets it;
        the operation is allowed only if the retval ends 0 (bpf_sockopt's
        ``retval`` field is that retval; give it to set where the kernel's
        getsockopt left it)."""
        from ..helpers.cgroup_retval import prog_run_array_cg
        from ..progs import prog_type_ops

        ops = prog_type_ops(attach_type_to_prog_type(attach_type))
        if ops is None or ops.ctx is None:
            raise ValueError(f"attach type {attach_type} has no plain ctx struct")
        layout = ops.ctx
        rt = self.runtime
        initial = 0
        obj: _CtxFields
        if any(f.name == "retval" for f in layout.fields):
            initial = int(fields.pop("retval", 0))
            obj = _CgRetvalFields(layout, fields, rt)
        else:
            obj = _CtxFields(layout, fields)

        def run_prog(prog: BpfProg) -> int:
            device = _AccessCheckedDevice(layout, obj, ops.is_valid_access, prog)
            region = rt.memory.map_device(device, layout.size, kind="ctx", name=layout.name)
            try:
                return int(prog.run(region.base))
            finally:
                rt.memory.unmap(region)

        res = prog_run_array_cg(rt, self.effective(attach_type), run_prog, initial,
                                ret_flags=attach_type in _RET_FLAGS_ATTACH_TYPES)
        ctx = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        if isinstance(obj, _CgRetvalFields):
            ctx["retval"] = res.retval & 0xFFFF_FFFF
        return CgroupVerdict(allow=res.retval == 0, verdicts=res.verdicts, ctx=ctx,
                             retval=res.retval, flags=res.flags)


#: Hooks that take the programs' return values above bit 0 as flags (ret_flags of
#: bpf_prog_run_array_cg): bind's BPF_RET_BIND_NO_CAP_NET_BIND_SERVICE.
_RET_FLAGS_ATTACH_TYPES = (AttachType.CGROUP_INET4_BIND, AttachType.CGROUP_INET6_BIND)


class _CtxFields:
    """A ctx struct's fields as attributes (ints; bytearrays for fields over 8 bytes)."""

    def __init__(self, layout: Any, given: dict[str, int | bytes]) -> None:
        for f in layout.fields:
            if f.name:
                setattr(self, f.source, bytearray(f.size) if f.size > 8 else 0)
        for name, value in given.items():
            current = getattr(self, name, None)
            if current is None:
                raise KeyError(f"{layout.name} has no field {name!r}")
            setattr(self, name, bytearray(value) if isinstance(value, bytes) else value)


class _CgRetvalFields(_CtxFields):
    """bpf_sockopt's fields, whose ``retval`` is the run ctx's retval
    (cg_sockopt_convert_ctx_access reads and writes bpf_cg_run_ctx.retval
    through current->bpf_ctx), so ctx->retval and bpf_get/set_retval agree."""

    def __init__(self, layout: Any, given: dict[str, int | bytes], rt: Runtime) -> None:
        self._rt = rt
        super().__init__(layout, given)

    @property
    def retval(self) -> int:
        from ..helpers.cgroup_retval import current_cg_run_ctx

        ctx = current_cg_run_ctx(self._rt)
        return ctx.retval & 0xFFFF_FFFF if ctx is not None else 0

    @retval.setter
    def retval(self, value: int) -> None:
        from ..helpers.cgroup_retval import current_cg_run_ctx

        ctx = current_cg_run_ctx(self._rt)
        if ctx is not None:  # outside a run (the initial zeroing) there is none
            value &= 0xFFFF_FFFF
            ctx.retval = value - (1 << 32) if value >> 31 else value


class _AccessCheckedDevice(CtxDevice):
    """A ctx device whose loads and stores the program type's is_valid_access
    allows (the layout alone doesn't say which fields a hook may write)."""

    def __init__(self, layout: Any, obj: Any, is_valid_access: Any, prog: BpfProg) -> None:
        super().__init__(layout, obj)
        self._valid = is_valid_access
        self._prog = prog

    def _field(self, off: int, size: int, write: bool) -> Any:
        f = self.layout.field_at(off, size)
        if f is None or (self._valid is not None
                         and self._valid(off, size, write, self._prog) is None):
            what = "write" if write else "read"
            raise BpfFault(f"invalid {self.layout.name} {what} of {size} bytes at offset {off}")
        return f


@attrs.frozen
class CgroupVerdict:
    """What a cgroup hook's programs decided: allowed (the retval is 0: all
    returned 1 and none set another retval), each program's return value, the
    ctx fields after the run, the retval the hook returns (0 or a negative
    errno, or what bpf_set_retval left) and, for bind, the flags (bits above
    bit 0 of the return values, ORed)."""

    allow: bool
    verdicts: tuple[int, ...]
    ctx: dict[str, Any]
    retval: int = 0
    flags: int = 0


def _state(rt: Runtime) -> dict[str, Any]:
    got: dict[str, Any] | None = rt.hooks.get("cgroup")
    if got is None:
        got = rt.hooks["cgroup"] = {"next_id": 2, "root": None}
        got["root"] = Cgroup(rt, "", None)
    return got


def cgroup_root(rt: Runtime) -> Cgroup:
    """The root of the runtime's cgroup v2 hierarchy."""
    root: Cgroup = _state(rt)["root"]
    return root


def cgroup_from_fd(rt: Runtime, fd: int) -> Cgroup:
    """cgroup_get_from_fd: EBADF for a closed fd or anything but a cgroup directory."""
    f = rt.fds.get(fd)
    if f is None or not isinstance(f.obj, Cgroup):
        raise BpfError(errno.EBADF, f"fd {fd} is not a cgroup directory")
    return f.obj


# -- links --------------------------------------------------------------------------------------
class CgroupLink(BpfLink):
    """struct bpf_cgroup_link."""

    link_type = LinkType.CGROUP
    supports_detach = True
    supports_update = True

    def __init__(self, runtime: Runtime, prog: BpfProg, attr: LinkCreateAttr,
                 cgroup: Cgroup) -> None:
        super().__init__(runtime, prog, attr.attach_type)
        self.cgroup: Cgroup | None = cgroup
        self._flags = attr.flags
        self._relative = attr.relative_fd
        self._revision = attr.expected_revision

    def attach(self) -> None:
        assert self.cgroup is not None
        self.cgroup.bpf_attach(None, None, self, self.attach_type,
                               int(F.ALLOW_MULTI) | self._flags, self._relative, self._revision)
        self.attached = True

    def release_hook(self) -> None:
        """bpf_cgroup_link_release."""
        cg = self.cgroup
        if cg is not None:
            cg.bpf_detach(None, self, self.attach_type, 0)
        self.cgroup = None
        self.attached = False

    def update_prog(self, new: BpfProg, old: BpfProg | None) -> None:
        """cgroup_bpf_replace: ENOLINK, EPERM, then __cgroup_bpf_replace (type EINVAL)."""
        cg = self.cgroup
        if cg is None:
            raise BpfError(errno.ENOLINK, "the link's cgroup is gone or it was detached")
        if old is not None and old is not self.prog:
            raise BpfError(errno.EPERM, "old_prog_fd is not the link's program")
        assert self.prog is not None
        if new.prog_type != self.prog.prog_type:
            raise BpfError(errno.EINVAL, "the new program's type differs from the link's")
        cg.revisions[self.attach_type] += 1
        self.replace_prog(new)

    def fill_info(self, info: dict[str, int]) -> None:
        info["cgroup_id"] = self.cgroup.cgroup_id if self.cgroup is not None else 0
        info["attach_type"] = self.attach_type


def cgroup_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """cgroup_bpf_link_attach."""
    if attr.flags & ~LINK_ATTACH_MASK:
        raise BpfError(errno.EINVAL, f"invalid cgroup link flags {attr.flags:#x}")
    return CgroupLink(rt, prog, attr, cgroup_from_fd(rt, attr.target_fd))


# -- BPF_PROG_ATTACH / DETACH / QUERY ---------------------------------------------------------
def cgroup_prog_attach(rt: Runtime, attr: ProgAttachAttr, prog: BpfProg) -> None:
    """cgroup_bpf_prog_attach."""
    cg = cgroup_from_fd(rt, attr.target_fd)
    replace = None
    if attr.attach_flags & F.ALLOW_MULTI and attr.attach_flags & F.REPLACE:
        replace = prog_get(rt, attr.replace_bpf_fd)
        if replace.prog_type != prog.prog_type:
            raise BpfError(errno.EINVAL, "the program to replace is of another type")
    cg.bpf_attach(prog, replace, None, attr.attach_type, attr.attach_flags, attr.relative_fd,
                  attr.expected_revision)


def cgroup_prog_detach(rt: Runtime, attr: ProgAttachAttr, _prog: BpfProg | None) -> None:
    """cgroup_bpf_prog_detach: a bad program fd detaches as "no program"."""
    cg = cgroup_from_fd(rt, attr.target_fd)
    ptype = attach_type_to_prog_type(attr.attach_type)
    f = rt.fds.get(attr.attach_bpf_fd)
    prog = f.obj if f is not None and isinstance(f.obj, BpfProg) and \
        f.obj.prog_type == ptype else None
    cg.bpf_detach(prog, None, attr.attach_type, attr.expected_revision)


def cgroup_prog_query(rt: Runtime, attr: ProgQueryAttr) -> ProgQueryResult:
    """__cgroup_bpf_query."""
    cg = cgroup_from_fd(rt, attr.target_fd)
    effective = bool(attr.query_flags & BPF_F_QUERY_EFFECTIVE)
    if effective and attr.prog_attach_flags is not None:
        raise BpfError(errno.EINVAL, "prog_attach_flags with BPF_F_QUERY_EFFECTIVE")
    at = attr.attach_type
    if effective:
        ids = tuple(p.id for p in cg.effective(at))
        result = ProgQueryResult(attach_flags=0, prog_ids=ids)
    else:
        progs = [pl.effective_prog for pl in cg.progs[at]]
        ids = tuple(p.id for p in progs if p is not None)
        result = ProgQueryResult(attach_flags=cg.flags[at], prog_ids=ids,
                                 prog_attach_flags=(cg.flags[at],) * len(ids),
                                 revision=cg.revisions[at])
    if not attr.prog_cnt or attr.prog_ids is None or not ids:
        return result
    cnt = min(attr.prog_cnt, len(ids))
    _write_u32s(rt, attr.prog_ids, ids[:cnt])
    if attr.prog_attach_flags is not None:
        _write_u32s(rt, attr.prog_attach_flags, result.prog_attach_flags[:cnt])
    if len(ids) > attr.prog_cnt:
        exc = BpfError(errno.ENOSPC, f"{len(ids)} programs, room for {attr.prog_cnt}")
        exc.result = result  # type: ignore[attr-defined]
        raise exc
    return result


for _pt in CGROUP_PROG_TYPES:
    register_link_kind(_pt, cgroup_link_create)
    register_prog_attach(_pt, cgroup_prog_attach, cgroup_prog_detach)
register_prog_query(CGROUP_ATTACH_TYPES, cgroup_prog_query)
