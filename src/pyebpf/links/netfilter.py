"""Netfilter hooks and BPF netfilter links (net/netfilter/nf_bpf_link.c, core.c).

Every :class:`~.netns.Netns` has a chain of hook ops per (protocol family,
hook): ``net.nf_hooks[(pf, hooknum)]``, ordered by priority (a new op goes
after those of equal priority, before the first with a higher one, as
nf_hook_entries_grow inserts it). :meth:`Netns.nf_hook` fires one with a
packet (:func:`nf_hook_slow`): the ops run in order until one does not
accept; a BPF op runs its link's program on a ``struct bpf_nf_ctx``
(:class:`~pyebpf.progs.netfilter.NfHookCall`).

BPF_LINK_CREATE of a NETFILTER program (bpf_nf_link_attach), in the kernel's
order: ``flags`` EINVAL; ``netfilter.pf`` neither IPv4 nor IPv6 EAFNOSUPPORT;
``hooknum`` past NF_INET_POST_ROUTING EPROTO; ``netfilter.flags`` other than
BPF_F_NETFILTER_IP_DEFRAG EOPNOTSUPP; priority NF_IP_PRI_FIRST or
NF_IP_PRI_LAST, or (with the defrag flag) not above
NF_IP_PRI_CONNTRACK_DEFRAG, ERANGE. Then the link takes its id and the hook
is registered in the caller's namespace: a BPF op may not share its priority
with any op already on that hook (EBUSY), and a hook has room for
MAX_HOOK_COUNT ops (E2BIG). The defrag flag first enables the family's
defragmentation hooks in the namespace (ops at NF_IP_PRI_CONNTRACK_DEFRAG on
PRE_ROUTING and LOCAL_OUT, counted by users; they accept every packet here:
fragments are not reassembled).

The link holds its namespace. It can be detached (its info still reports pf,
hooknum, priority and flags), never updated (EOPNOTSUPP).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import attrs

from ..attr import LinkCreateAttr
from ..errors import BpfError
from ..prog import BpfProg
from ..progs.netfilter import (
    NF_ACCEPT,
    NF_INET_NUMHOOKS,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
    NfHookCall,
    NfInetHook,
)
from ..runtime import Runtime
from ..uapi import LinkType, ProgType
from .base import BpfLink, register_link_kind
from .netns import Netns, current_net

if TYPE_CHECKING:
    from .netdev import Netdev

__all__ = ["BPF_F_NETFILTER_IP_DEFRAG", "NetfilterLink", "NfHookOps", "NfResult",
           "nf_hook_slow"]

#: link_create.netfilter.flags: run after (and enable) IP defragmentation.
BPF_F_NETFILTER_IP_DEFRAG = 1 << 0
#: enum nf_ip_hook_priorities (the IPv6 ones have the same values).
NF_IP_PRI_FIRST = -(1 << 31)
NF_IP_PRI_CONNTRACK_DEFRAG = -400
NF_IP_PRI_LAST = (1 << 31) - 1
#: MAX_HOOK_COUNT (net/netfilter/core.c): ops one hook holds.
MAX_HOOK_COUNT = 1024
#: The hooks nf_defrag_ipv4/ipv6 register their ops on.
DEFRAG_HOOKS = (NfInetHook.PRE_ROUTING, NfInetHook.LOCAL_OUT)


@attrs.define(eq=False)
class NfHookOps:
    """struct nf_hook_ops: where an op sits and what runs (a BPF link's program,
    or a native op of the simulated kernel: ``kind`` "defrag")."""

    pf: int
    hooknum: int
    priority: int
    kind: str = "bpf"
    link: NetfilterLink | None = None


@attrs.frozen
class NfResult:
    """What a hook did with a packet: ``verdict`` NF_ACCEPT (1) if every op
    accepted it, else the verdict that stopped it (NF_DROP, 0); the BPF
    programs that ran, with their verdicts, in order."""

    verdict: int
    prog_ids: tuple[int, ...] = ()
    verdicts: tuple[int, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.verdict == NF_ACCEPT


# -- the hook chain -----------------------------------------------------------------------------
def nf_register_net_hook(net: Netns, ops: NfHookOps) -> None:
    """nf_register_net_hook / nf_hook_entries_grow."""
    entries = net.nf_hooks.get((ops.pf, ops.hooknum), [])
    if ops.kind == "bpf" and any(e.priority == ops.priority for e in entries):
        raise BpfError(errno.EBUSY, f"a hook op already has priority {ops.priority} "
                       "(BPF ops need a priority of their own)")
    if len(entries) + 1 > MAX_HOOK_COUNT:
        raise BpfError(errno.E2BIG, f"hook {ops.hooknum} of family {ops.pf} is full "
                       f"({MAX_HOOK_COUNT} ops)")
    at = next((i for i, e in enumerate(entries) if ops.priority < e.priority), len(entries))
    net.nf_hooks[(ops.pf, ops.hooknum)] = [*entries[:at], ops, *entries[at:]]


def nf_unregister_net_hook(net: Netns, ops: NfHookOps) -> None:
    key = (ops.pf, ops.hooknum)
    entries = [e for e in net.nf_hooks.get(key, []) if e is not ops]
    if entries:
        net.nf_hooks[key] = entries
    else:
        net.nf_hooks.pop(key, None)


def nf_defrag_enable(net: Netns, pf: int) -> None:
    """nf_defrag_ipv4_enable / nf_defrag_ipv6_enable: the first user registers the
    family's defrag ops in the namespace."""
    users = net.nf_defrag_users.get(pf, 0)
    if not users:
        for hook in DEFRAG_HOOKS:
            nf_register_net_hook(net, NfHookOps(pf, int(hook), NF_IP_PRI_CONNTRACK_DEFRAG,
                                                kind="defrag"))
    net.nf_defrag_users[pf] = users + 1


def nf_defrag_disable(net: Netns, pf: int) -> None:
    users = net.nf_defrag_users.get(pf, 0) - 1
    net.nf_defrag_users[pf] = max(users, 0)
    if users == 0:
        for key in [(pf, int(hook)) for hook in DEFRAG_HOOKS]:
            for ops in [e for e in net.nf_hooks.get(key, []) if e.kind == "defrag"]:
                nf_unregister_net_hook(net, ops)


def nf_hook_slow(net: Netns, pf: int, hooknum: int, packet: bytes, *, mac: bytes = b"",
                 in_dev: Netdev | None = None, out_dev: Netdev | None = None) -> NfResult:
    """Run the ops of (pf, hooknum) on an IP ``packet`` in priority order, until
    one does not accept it. ``mac`` is the link-layer header a received packet
    still has in front (``skb->mac_header``); ``in_dev``/``out_dev`` are the
    hook state's devices (``skb->dev`` is the in device, else the out one).
    The BPF programs all see the same ``sk_buff`` and ``nf_hook_state``."""
    if pf not in (NFPROTO_IPV4, NFPROTO_IPV6) or not 0 <= hooknum < NF_INET_NUMHOOKS:
        raise ValueError(f"no BPF-capable netfilter hook ({pf}, {hooknum})")
    entries = list(net.nf_hooks.get((pf, hooknum), ()))
    bpf_ops = [e for e in entries if e.kind == "bpf"]
    if not bpf_ops:
        return NfResult(NF_ACCEPT)
    proto = 0x0800 if pf == NFPROTO_IPV4 else 0x86DD
    call = NfHookCall(net.runtime, pf=pf, hook=hooknum, buf=mac + packet, data_off=len(mac),
                      protocol=proto, in_dev=in_dev, out_dev=out_dev,
                      skb_dev=in_dev if in_dev is not None else out_dev,
                      net_ifindex=net.last_ifindex)
    ids: list[int] = []
    verdicts: list[int] = []
    verdict = NF_ACCEPT
    try:
        for ops in entries:
            if ops.kind != "bpf":
                continue  # the defrag ops accept whole packets (NF_ACCEPT)
            assert ops.link is not None and ops.link.prog is not None
            prog = ops.link.prog
            verdict = call.run(prog)
            ids.append(prog.id)
            verdicts.append(verdict)
            if verdict & 0xFF != NF_ACCEPT:  # NF_VERDICT_MASK: drop (or anything else) stops
                break
    finally:
        call.free()
    return NfResult(verdict, tuple(ids), tuple(verdicts))


# -- links ----------------------------------------------------------------------------------------
class NetfilterLink(BpfLink):
    """struct bpf_nf_link."""

    link_type = LinkType.NETFILTER
    supports_detach = True
    supports_update = True  # it has an update_prog op: one that always says EOPNOTSUPP

    def __init__(self, runtime: Runtime, prog: BpfProg, attach_type: int, net: Netns,
                 pf: int, hooknum: int, priority: int, flags: int) -> None:
        super().__init__(runtime, prog, attach_type)
        self.net = net
        self.ops = NfHookOps(pf, hooknum, priority, link=self)
        self.flags = flags
        self.dead = False
        self.defrag = False

    def attach(self) -> None:
        """bpf_nf_link_attach after the prime: defrag, then the hook."""
        net = self.net
        if self.flags & BPF_F_NETFILTER_IP_DEFRAG:
            nf_defrag_enable(net, self.ops.pf)
            self.defrag = True
        try:
            nf_register_net_hook(net, self.ops)
        except BpfError:
            self._disable_defrag()
            self.dead = True
            raise
        net.hold()  # get_net_track: the link keeps its namespace
        self.attached = True

    def _disable_defrag(self) -> None:
        if self.defrag:
            nf_defrag_disable(self.net, self.ops.pf)
            self.defrag = False

    def release_hook(self) -> None:
        """bpf_nf_link_release (detach and the last close; only once)."""
        if not self.dead:
            self.dead = True
            nf_unregister_net_hook(self.net, self.ops)
            self._disable_defrag()
            self.net.release()
        self.attached = False

    def update_prog(self, new: BpfProg, old: BpfProg | None) -> None:
        """bpf_nf_link_update."""
        raise BpfError(errno.EOPNOTSUPP, "netfilter links can't be updated")

    def fill_info(self, info: dict[str, int]) -> None:
        info["pf"] = self.ops.pf
        info["hooknum"] = self.ops.hooknum
        info["priority"] = self.ops.priority
        info["flags"] = self.flags


def _s32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


def bpf_nf_check_pf_and_hooks(attr: LinkCreateAttr) -> None:
    """bpf_nf_check_pf_and_hooks."""
    if attr.netfilter_pf not in (NFPROTO_IPV4, NFPROTO_IPV6):
        raise BpfError(errno.EAFNOSUPPORT, f"netfilter.pf {attr.netfilter_pf} is neither "
                       "NFPROTO_IPV4 nor NFPROTO_IPV6")
    if attr.netfilter_hooknum >= NF_INET_NUMHOOKS:
        raise BpfError(errno.EPROTO, f"netfilter.hooknum {attr.netfilter_hooknum} is no "
                       "inet hook")
    if attr.netfilter_flags & ~BPF_F_NETFILTER_IP_DEFRAG:
        raise BpfError(errno.EOPNOTSUPP, f"netfilter.flags {attr.netfilter_flags:#x}")
    prio = _s32(attr.netfilter_priority)
    if prio in (NF_IP_PRI_FIRST, NF_IP_PRI_LAST):
        raise BpfError(errno.ERANGE, "priorities NF_IP_PRI_FIRST and NF_IP_PRI_LAST are "
                       "reserved")
    if attr.netfilter_flags & BPF_F_NETFILTER_IP_DEFRAG and prio <= NF_IP_PRI_CONNTRACK_DEFRAG:
        raise BpfError(errno.ERANGE, "a program that wants defragmented packets must run "
                       "after NF_IP_PRI_CONNTRACK_DEFRAG")


def nf_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """bpf_nf_link_attach up to the prime (the caller's namespace is the target)."""
    if attr.flags:
        raise BpfError(errno.EINVAL, "netfilter links take no link_create.flags")
    bpf_nf_check_pf_and_hooks(attr)
    return NetfilterLink(rt, prog, attr.attach_type, current_net(rt), attr.netfilter_pf,
                         attr.netfilter_hooknum, _s32(attr.netfilter_priority),
                         attr.netfilter_flags)


register_link_kind(ProgType.NETFILTER, nf_link_create)
