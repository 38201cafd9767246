"""Network namespaces: the flow dissector and sk_lookup hooks (kernel/bpf/net_namespace.c).

A :class:`Netns` is what ``/proc/self/ns/net`` names: an fd-able object
(``netns.open()``) holding the namespace's network devices and its two BPF
hooks. The runtime has an initial namespace (:func:`init_net`) and a current
one (:func:`current_net`, changed with :func:`set_current_net`, as ``setns``).

The rules of net_namespace.c, in its order:

- BPF_PROG_ATTACH (flow dissector only; sk_lookup is link-only, so EINVAL):
  ``target_fd``/``attach_flags``/``replace_bpf_fd`` must be 0 (the current
  namespace is the target), a namespace with links is EEXIST, the root-vs-child
  flow dissector rule is EEXIST, the program already attached is EINVAL, else
  it replaces the attached one.
- BPF_PROG_DETACH: ``target_fd`` 0, the program fd, then: links present is
  EINVAL, not the attached program ENOENT.
- BPF_LINK_CREATE (``target_fd`` a netns fd): flags are EINVAL, a non-netns fd
  EINVAL (EBADF when closed); then, with the link's id taken: as many links as
  the hook allows (flow dissector 1, sk_lookup 64) is E2BIG, a prog-attached
  hook EEXIST, the root-vs-child rule EEXIST.
- BPF_LINK_UPDATE: old program mismatch EPERM, another program type EINVAL,
  the namespace gone ENOLINK. BPF_LINK_DETACH or the namespace going away
  leave the link defunct (``netns_ino`` 0 in its info).
- BPF_PROG_QUERY: query_flags EINVAL, the netns fd, then the ids.

Firing: :meth:`Netns.dissect` runs the flow dissector as the kernel's
``__skb_flow_dissect`` does (the root namespace's program wins), and
:meth:`Netns.sk_lookup` runs the sk_lookup programs in order as
BPF_PROG_SK_LOOKUP_RUN_ARRAY folds them.
"""

from __future__ import annotations

import enum
import errno
from typing import TYPE_CHECKING, Any

import attrs

from ..attr import LinkCreateAttr, ProgAttachAttr, ProgQueryAttr
from ..errors import BpfError
from ..prog import BpfProg
from ..runtime import BpfObject, ObjKind, Runtime
from ..uapi import AttachType, LinkType, ProgType
from .base import (
    BpfLink,
    ProgQueryResult,
    deliver_query,
    prog_get_type,
    register_link_kind,
    register_prog_attach,
    register_prog_query,
)

if TYPE_CHECKING:
    from .netdev import Netdev

__all__ = ["NetnsAttach", "Netns", "NetnsLink", "SkLookupResult", "current_net", "init_net",
           "set_current_net"]

#: The inode number of the first namespace (proc_ns inums start at 0xF0000000).
_INUM_BASE = 0xF000_0000


class NetnsAttach(enum.IntEnum):
    """enum netns_bpf_attach_type."""

    FLOW_DISSECTOR = 0
    SK_LOOKUP = 1


#: to_netns_bpf_attach_type.
_NETNS_TYPE = {AttachType.FLOW_DISSECTOR: NetnsAttach.FLOW_DISSECTOR,
               AttachType.SK_LOOKUP: NetnsAttach.SK_LOOKUP}
#: netns_bpf_max_progs.
MAX_PROGS = {NetnsAttach.FLOW_DISSECTOR: 1, NetnsAttach.SK_LOOKUP: 64}


def _netns_type(attach_type: int) -> NetnsAttach:
    got = _NETNS_TYPE.get(attach_type)  # type: ignore[call-overload]
    if got is None:
        raise BpfError(errno.EINVAL, f"attach_type {attach_type} is no netns hook")
    return got


class Netns(BpfObject):
    """A network namespace: its devices and its flow dissector / sk_lookup hooks.

    The namespace lives while its "process reference" (taken at creation,
    dropped by :meth:`exit`) or any fd on it does; when it goes, links on it
    become defunct (netns_bpf_pernet_pre_exit) and prog attachments are dropped.
    """

    kind = ObjKind.NETNS

    def __init__(self, runtime: Runtime, name: str = "") -> None:
        super().__init__(runtime)
        nets = _nets(runtime)
        self.name = name
        self.inum = _INUM_BASE + len(nets["all"])
        nets["all"].append(self)
        self.alive = True
        #: Programs attached with BPF_PROG_ATTACH (net->bpf.progs).
        self.progs: dict[NetnsAttach, BpfProg | None] = dict.fromkeys(NetnsAttach)
        #: Links, in attach order (net->bpf.links).
        self.links: dict[NetnsAttach, list[NetnsLink]] = {t: [] for t in NetnsAttach}
        self.devices: dict[int, Netdev] = {}
        self._next_ifindex = 1
        #: Netfilter hooks (pyebpf.links.netfilter): (pf, hooknum) -> the registered
        #: hook ops in priority order; and the users of each family's defrag hooks.
        self.nf_hooks: dict[tuple[int, int], list[Any]] = {}
        self.nf_defrag_users: dict[int, int] = {}
        self.hold()  # the process living in it
        from .netdev import Netdev

        Netdev(self, "lo", loopback=True)

    def __repr__(self) -> str:
        return f"<Netns {self.name or hex(self.inum)}{'' if self.alive else ' (gone)'}>"

    @property
    def is_init(self) -> bool:
        return _nets(self.runtime)["init"] is self

    def open(self) -> int:
        """An fd on the namespace (open("/proc/<pid>/ns/net"))."""
        return self.runtime.install_fd(self)

    def exit(self) -> None:
        """The last process leaves; the namespace goes when no fd holds it either."""
        self.release()

    def device(self, ifindex: int) -> Netdev | None:
        """dev_get_by_index."""
        return self.devices.get(ifindex)

    def device_by_name(self, name: str) -> Netdev | None:
        return next((d for d in self.devices.values() if d.name == name), None)

    @property
    def last_ifindex(self) -> int:
        """net->ifindex: the last ifindex handed out in this namespace."""
        return self._next_ifindex - 1

    def nf_hook(self, pf: int, hooknum: int, packet: bytes, **kwargs: Any) -> Any:
        """Fire the netfilter hook (pf, hooknum) with an IP packet: the hooks run in
        priority order until one drops it (see :func:`pyebpf.links.netfilter.nf_hook_slow`)."""
        from .netfilter import nf_hook_slow

        return nf_hook_slow(self, pf, hooknum, packet, **kwargs)

    def alloc_ifindex(self) -> int:
        ifindex = self._next_ifindex
        self._next_ifindex += 1
        return ifindex

    def run_array(self, t: NetnsAttach) -> list[BpfProg]:
        """net->bpf.run_array[type]: the programs that run, in order."""
        prog = self.progs[t]
        if prog is not None:
            return [prog]
        return [link.prog for link in self.links[t] if link.prog is not None]

    def free(self) -> None:
        """netns_bpf_pernet_pre_exit: auto-detach links, drop attached programs."""
        self.alive = False
        for t in NetnsAttach:
            for link in self.links[t]:
                link.net = None
                link.attached = False
            self.links[t].clear()
            prog = self.progs[t]
            self.progs[t] = None
            if prog is not None:
                prog.release()
        for dev in list(self.devices.values()):
            dev.unregister()
        nets = _nets(self.runtime)
        if nets["current"] is self:
            nets["current"] = nets["init"]
            _publish_devices(self.runtime)

    # -- firing ---------------------------------------------------------------------------------
    def flow_dissector_prog(self) -> BpfProg | None:
        """The program __skb_flow_dissect runs: the root namespace's if it has one."""
        root = init_net(self.runtime)
        for net in (root, self):
            progs = net.run_array(NetnsAttach.FLOW_DISSECTOR)
            if progs:
                return progs[0]
        return None

    def dissect(self, packet: bytes, *, flags: int = 0) -> tuple[int, bytes] | None:
        """Dissect an Ethernet frame with the BPF flow dissector; None when no
        program is attached (the kernel's C dissector would run). Returns the
        program's verdict (BPF_OK, BPF_DROP, BPF_FLOW_DISSECTOR_CONTINUE) and
        the struct bpf_flow_keys it filled."""
        from ..progs.flow_dissector import bpf_flow_dissect
        from ..progs.testrun import ETH_HLEN

        prog = self.flow_dissector_prog()
        if prog is None:
            return None
        proto = int.from_bytes(packet[12:14], "little")
        return bpf_flow_dissect(self.runtime, prog, packet, proto=proto, nhoff=ETH_HLEN,
                                flags=flags)

    def sk_lookup(self, *, family: int, protocol: int, local_ip: int | bytes,
                  local_port: int, remote_ip: int | bytes = 0, remote_port: int = 0,
                  ingress_ifindex: int = 0) -> SkLookupResult:
        """Run the sk_lookup programs for one incoming connection, in attach order,
        folded as BPF_PROG_SK_LOOKUP_RUN_ARRAY: any SK_DROP without a selected
        socket drops; a selected socket wins. IPv4 addresses are host ints as the
        ctx reads them (network-order bytes read little-endian); IPv6 are bytes."""
        from ..progs.ctx import map_ctx
        from ..progs.sock import AF_INET, BPF_SK_LOOKUP, SK_DROP, SkLookupKern

        kern = SkLookupKern(family=family, protocol=protocol, local_port=local_port,
                            remote_port=remote_port, ingress_ifindex=ingress_ifindex)
        if family == AF_INET:
            if isinstance(local_ip, bytes) or isinstance(remote_ip, bytes):
                raise TypeError("IPv4 addresses are ints (as the ctx reads them)")
            kern.local_ip4, kern.remote_ip4 = local_ip, remote_ip
        else:
            kern.local_ip6 = local_ip if isinstance(local_ip, bytes) else bytes(16)
            kern.remote_ip6 = remote_ip if isinstance(remote_ip, bytes) else bytes(16)
        rt = self.runtime
        verdicts = []
        dropped = False
        for prog in self.run_array(NetnsAttach.SK_LOOKUP):
            region = map_ctx(rt.memory, BPF_SK_LOOKUP, kern)
            try:
                r0 = prog.run(region.base) & 0xFFFF_FFFF
            finally:
                rt.memory.unmap(region)
            verdicts.append(r0)
            if r0 == SK_DROP:
                dropped = True
        return SkLookupResult(verdicts=tuple(verdicts), selected_sk=kern.sk,
                              dropped=dropped and not kern.sk)


@attrs.frozen
class SkLookupResult:
    """What an sk_lookup run decided: each program's verdict, the selected socket
    (0: none, the regular lookup happens), and whether the packet is dropped."""

    verdicts: tuple[int, ...]
    selected_sk: int
    dropped: bool


def _nets(rt: Runtime) -> dict[str, Any]:
    """The runtime's namespaces: all of them, the initial and the current one."""
    got: dict[str, Any] | None = rt.hooks.get("netns")
    if got is None:
        got = rt.hooks["netns"] = {"all": [], "init": None, "current": None}
        net = Netns(rt, "init_net")
        got["init"] = got["current"] = net
        _publish_devices(rt)
    return got


def _publish_devices(rt: Runtime) -> None:
    """The test-run's dev_get_by_index (pyebpf.progs.skb) reads ``rt.netdevs``."""
    rt.netdevs = _nets(rt)["current"].devices  # type: ignore[attr-defined]


def init_net(rt: Runtime) -> Netns:
    """The runtime's initial network namespace."""
    net: Netns = _nets(rt)["init"]
    return net


def current_net(rt: Runtime) -> Netns:
    """current->nsproxy->net_ns."""
    net: Netns = _nets(rt)["current"]
    return net


def set_current_net(rt: Runtime, net: Netns) -> None:
    """setns(): run the caller in ``net`` from now on."""
    if not net.alive:
        raise BpfError(errno.EINVAL, "that namespace is gone")
    _nets(rt)["current"] = net
    _publish_devices(rt)


def net_from_fd(rt: Runtime, fd: int) -> Netns:
    """get_net_ns_by_fd: EBADF for a closed fd, EINVAL for anything but a netns."""
    f = rt.file(fd)
    if not isinstance(f.obj, Netns):
        raise BpfError(errno.EINVAL, f"fd {fd} is not a network namespace")
    return f.obj


def _flow_dissector_attach_check(net: Netns) -> None:
    """flow_dissector_bpf_prog_attach_check: root and child namespaces exclude
    each other's flow dissectors (EEXIST)."""
    t = NetnsAttach.FLOW_DISSECTOR
    if net.is_init:
        for other in _nets(net.runtime)["all"]:
            if other is not net and other.alive and other.run_array(t):
                raise BpfError(errno.EEXIST, "a child namespace has a flow dissector")
    elif init_net(net.runtime).run_array(t):
        raise BpfError(errno.EEXIST, "the root namespace has a flow dissector")


# -- links -------------------------------------------------------------------------------------
class NetnsLink(BpfLink):
    """struct bpf_netns_link."""

    link_type = LinkType.NETNS
    supports_detach = True
    supports_update = True

    def __init__(self, runtime: Runtime, prog: BpfProg, attach_type: int, net: Netns) -> None:
        super().__init__(runtime, prog, attach_type)
        self.net: Netns | None = net
        self.netns_type = _netns_type(attach_type)

    def attach(self) -> None:
        """netns_bpf_link_attach."""
        net = self.net
        assert net is not None
        t = self.netns_type
        if len(net.links[t]) >= MAX_PROGS[t]:
            raise BpfError(errno.E2BIG, f"the namespace's {t.name} hook is full "
                           f"({MAX_PROGS[t]} links)")
        if net.progs[t] is not None:
            raise BpfError(errno.EEXIST, "a program is attached with BPF_PROG_ATTACH")
        if t == NetnsAttach.FLOW_DISSECTOR:
            _flow_dissector_attach_check(net)
        net.links[t].append(self)
        self.attached = True

    def release_hook(self) -> None:
        """bpf_netns_link_release."""
        net = self.net
        if net is not None and self in net.links[self.netns_type]:
            net.links[self.netns_type].remove(self)
        self.net = None
        self.attached = False

    def update_prog(self, new: BpfProg, old: BpfProg | None) -> None:
        """bpf_netns_link_update_prog: EPERM, EINVAL, then ENOLINK (this kind's order)."""
        if old is not None and old is not self.prog:
            raise BpfError(errno.EPERM, "old_prog_fd is not the link's program")
        assert self.prog is not None
        if new.prog_type != self.prog.prog_type:
            raise BpfError(errno.EINVAL, "the new program's type differs from the link's")
        if self.net is None or not self.net.alive:
            raise BpfError(errno.ENOLINK, "the link's namespace is gone or it was detached")
        if new is not self.prog:
            self.replace_prog(new)

    def fill_info(self, info: dict[str, int]) -> None:
        net = self.net
        info["netns_ino"] = net.inum if net is not None and net.alive else 0
        info["attach_type"] = self.attach_type


def netns_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """netns_bpf_link_create (up to the prime; the rest is NetnsLink.attach)."""
    if attr.flags:
        raise BpfError(errno.EINVAL, "netns links take no flags")
    _netns_type(attr.attach_type)
    net = net_from_fd(rt, attr.target_fd)
    return NetnsLink(rt, prog, attr.attach_type, net)


# -- BPF_PROG_ATTACH / DETACH / QUERY ----------------------------------------------------------
def netns_prog_attach(rt: Runtime, attr: ProgAttachAttr, prog: BpfProg) -> None:
    """netns_bpf_prog_attach (the current namespace; target_fd must be 0)."""
    if attr.target_fd or attr.attach_flags or attr.replace_bpf_fd:
        raise BpfError(errno.EINVAL, "netns PROG_ATTACH takes no target_fd, attach_flags "
                       "or replace_bpf_fd")
    t = _netns_type(attr.attach_type)
    net = current_net(rt)
    if net.links[t]:
        raise BpfError(errno.EEXIST, "the hook has links; BPF_PROG_ATTACH can't join them")
    if t != NetnsAttach.FLOW_DISSECTOR:
        raise BpfError(errno.EINVAL, f"{t.name} has no BPF_PROG_ATTACH")
    _flow_dissector_attach_check(net)
    attached = net.progs[t]
    if attached is prog:
        raise BpfError(errno.EINVAL, "the program is already attached")
    prog.hold()
    net.progs[t] = prog
    if attached is not None:
        attached.release()


def netns_prog_detach(rt: Runtime, attr: ProgAttachAttr, _prog: BpfProg | None) -> None:
    """netns_bpf_prog_detach."""
    if attr.target_fd:
        raise BpfError(errno.EINVAL, "netns PROG_DETACH takes no target_fd")
    t = _netns_type(attr.attach_type)
    prog = prog_get_type(rt, attr.attach_bpf_fd, ProgType.FLOW_DISSECTOR
                         if t == NetnsAttach.FLOW_DISSECTOR else ProgType.SK_LOOKUP)
    net = current_net(rt)
    if net.links[t]:
        raise BpfError(errno.EINVAL, "programs attached by links can't be detached")
    if net.progs[t] is None or net.progs[t] is not prog:
        raise BpfError(errno.ENOENT, "that program is not attached here")
    net.progs[t] = None
    prog.release()


def netns_prog_query(rt: Runtime, attr: ProgQueryAttr) -> ProgQueryResult:
    """netns_bpf_prog_query."""
    if attr.query_flags:
        raise BpfError(errno.EINVAL, "netns queries take no query_flags")
    t = _netns_type(attr.attach_type)
    net = net_from_fd(rt, attr.target_fd)
    ids = tuple(p.id for p in net.run_array(t))
    return deliver_query(rt, attr, ProgQueryResult(attach_flags=0, prog_ids=ids))


for _pt in (ProgType.FLOW_DISSECTOR, ProgType.SK_LOOKUP):
    register_link_kind(_pt, netns_link_create)
register_prog_attach(ProgType.FLOW_DISSECTOR, netns_prog_attach, netns_prog_detach)
register_prog_query((AttachType.FLOW_DISSECTOR, AttachType.SK_LOOKUP), netns_prog_query)
