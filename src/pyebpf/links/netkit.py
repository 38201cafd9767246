"""netkit devices: a BPF-programmable device pair (drivers/net/netkit.c).

``ip link add nk0 type netkit peer name nk1`` makes two devices, a *primary*
(usually in the host namespace) and its *peer* (usually moved into a
container's). Whatever one transmits arrives at the other
(:meth:`NetkitDev.transmit`): on the way, ``netkit_xmit`` runs the programs
of the transmitting device's own bpf_mprog list on the skb (``skb->dev``
already the receiving peer), in order until one returns something other than
NETKIT_NEXT (-1). NETKIT_PASS (0), or NEXT from the last program, hands the
packet to the peer (``__netif_rx``: the peer's receive path, its generic XDP
and tcx ingress); NETKIT_REDIRECT (7) redirects it (bpf_redirect's target);
NETKIT_DROP (2) and every other value drop it. With no program at all, the
device's default policy decides: NETKIT_PASS or NETKIT_DROP (``policy`` and
``peer_policy`` of :meth:`NetkitDev.pair`). The devices' tcx hooks run too,
egress before the netkit programs.

Programs are SCHED_CLS programs attached through the *primary* device only:
attach type BPF_NETKIT_PRIMARY puts them on the primary's list,
BPF_NETKIT_PEER on the peer's, with LINK_CREATE (``target_ifindex`` the
primary) or PROG_ATTACH/DETACH/QUERY, ordered as tcx's bpf_mprog
(:class:`~.netdev.MprogEntry`: BEFORE/AFTER/REPLACE/ID/LINK, revisions).
netkit_dev_fetch says, in order: no device with that ifindex in the caller's
namespace ENODEV, not a netkit device ENXIO, the peer's ifindex EACCES, a
peer that is gone ENODEV. A detach or query with nothing attached sees no
list (ENOENT; a query reports revision 1), while the revision
``expected_revision`` is compared with lives on in the device (its
bpf_mprog_bundle), unlike tcx's, which starts over.

Modes: NETKIT_L3 (the default: no hardware addresses; asking for one is
EOPNOTSUPP) and NETKIT_L2 (random addresses, or given ones).
"""

from __future__ import annotations

import enum
import errno
import random

from ..attr import LinkCreateAttr, ProgAttachAttr, ProgQueryAttr
from ..errors import BpfError
from ..prog import BpfProg
from ..runtime import Runtime
from ..uapi import AttachFlags, AttachType, LinkType, ProgType
from .base import (
    BpfLink,
    ProgQueryResult,
    prog_get_type,
    register_link_kind,
    register_prog_attach,
    register_prog_query,
)
from .netdev import MprogEntry, Netdev, RxResult, TcxLink, dev_get_by_index
from .netns import Netns

__all__ = ["NetkitAction", "NetkitDev", "NetkitLink", "NetkitMode"]

NETKIT_ATTACH = (AttachType.NETKIT_PRIMARY, AttachType.NETKIT_PEER)


class NetkitAction(enum.IntEnum):
    """enum netkit_action (the same values as tcx's)."""

    NEXT = -1
    PASS = 0
    DROP = 2
    REDIRECT = 7


class NetkitMode(enum.IntEnum):
    """enum netkit_mode."""

    L2 = 0
    L3 = 1


class NetkitDev(Netdev):
    """One device of a netkit pair (struct netkit): primary or peer, its default
    policy, its mode and its bpf_mprog bundle (``bundle``; the active list is the
    bundle while it has programs, else none)."""

    def __init__(self, net: Netns, name: str, *, primary: bool, mode: NetkitMode,
                 policy: NetkitAction, dev_addr: bytes | None) -> None:
        super().__init__(net, name, native_xdp=False,  # netkit has no ndo_bpf
                         dev_addr=dev_addr if dev_addr is not None else bytes(6))
        self.primary = primary
        self.mode = mode
        self.policy = policy
        self.bundle = MprogEntry()

    def __repr__(self) -> str:
        role = "primary" if self.primary else "peer"
        return f"<NetkitDev {self.name} ({role}) ifindex {self.ifindex}>"

    @classmethod
    def pair(cls, net: Netns, name: str = "nk0", peer_name: str = "nk1", *,
             peer_net: Netns | None = None, mode: NetkitMode = NetkitMode.L3,
             policy: NetkitAction = NetkitAction.PASS,
             peer_policy: NetkitAction = NetkitAction.PASS, address: bytes | None = None,
             peer_address: bytes | None = None) -> tuple[NetkitDev, NetkitDev]:
        """netkit_new_link: (primary, peer). The peer is registered first (its
        ifindex comes first); it may live in another namespace."""
        for p in (policy, peer_policy):
            if p not in (NetkitAction.PASS, NetkitAction.DROP):
                raise BpfError(errno.EINVAL, "Provided default xmit policy not supported")
        if mode not in (NetkitMode.L2, NetkitMode.L3):
            raise BpfError(errno.EINVAL, "Provided device mode can only be L2 or L3")
        if mode != NetkitMode.L2 and (address is not None or peer_address is not None):
            raise BpfError(errno.EOPNOTSUPP, "L3 netkit devices have no hardware address")
        rnd = random.Random(f"{name}/{peer_name}")

        def addr(given: bytes | None) -> bytes | None:
            if mode != NetkitMode.L2:
                return None
            if given is not None:
                return given
            raw = bytearray(rnd.randbytes(6))  # eth_hw_addr_random: local, unicast
            raw[0] = (raw[0] & 0xFE) | 0x02
            return bytes(raw)

        peer = cls(peer_net or net, peer_name, primary=False, mode=mode,
                   policy=NetkitAction(peer_policy), dev_addr=addr(peer_address))
        primary = cls(net, name, primary=True, mode=mode, policy=NetkitAction(policy),
                      dev_addr=addr(address))
        primary.peer, peer.peer = peer, primary
        return primary, peer

    # -- the bpf_mprog list ----------------------------------------------------------------------
    def tcx_entry(self, attach_type: int, create: bool = False) -> MprogEntry | None:
        """netkit_entry_fetch for the netkit attach types (the bundle when
        ``create``, else the active list or None); tcx's otherwise."""
        if attach_type in NETKIT_ATTACH:
            return self.bundle if create or self.bundle.slots else None
        return super().tcx_entry(attach_type, create)

    def tcx_commit(self, attach_type: int, entry: MprogEntry) -> None:
        """netkit_entry_update: the bundle stays; only tcx entries are freed."""
        if attach_type not in NETKIT_ATTACH:
            super().tcx_commit(attach_type, entry)

    def unregister(self) -> None:
        """netkit_uninit (netkit_release_all), then the pair goes (netkit_del_link)."""
        if self.registered:
            for slot in self.bundle.slots:
                if slot.link is not None:
                    assert isinstance(slot.link, NetkitLink)
                    slot.link.dev = None
                    slot.link.attached = False
                else:
                    slot.prog.release()
            self.bundle.slots.clear()
        super().unregister()

    # -- the data path ---------------------------------------------------------------------------
    def transmit(self, frame: bytes, *, sender: object = None) -> RxResult:
        """dev_queue_xmit: tcx egress, the packet taps, then netkit_xmit."""
        result = self._tcx(AttachType.TCX_EGRESS, frame, None)
        if result.verdict != "pass":
            return result
        for tap in list(self.taps):
            if tap is not sender:
                tap.receive(result.packet)
        return self.netkit_xmit(result.packet)

    def wire(self, frame: bytes) -> None:
        """ndo_start_xmit is netkit_xmit."""
        self.netkit_xmit(frame)

    def netkit_xmit(self, frame: bytes) -> RxResult:
        """netkit_xmit: the programs (or the policy), then the peer's receive path,
        a redirect, or a drop."""
        peer = self.peer
        if peer is None or len(frame) < 14:  # no peer, or !pskb_may_pull(ETH_HLEN)
            return RxResult("drop", frame)
        ret = int(self.policy)
        info = None
        if self.bundle.slots:
            ret, frame, info = self._netkit_run(peer, frame)
        if ret in (NetkitAction.NEXT, NetkitAction.PASS):
            peer.receive(frame, from_stack=True)  # __netif_rx: no native XDP
            return RxResult("pass", frame, tc_action=ret)
        if ret == NetkitAction.REDIRECT and info is not None:
            result = RxResult("redirect", frame, tc_action=ret,
                              redirect_ifindex=info.tgt_index, redirect_flags=info.flags)
            peer._redirect(result)  # skb_do_redirect, from the peer's namespace
            return result
        return RxResult("drop", frame, tc_action=ret)

    def _netkit_run(self, peer: Netdev, frame: bytes) -> tuple[int, bytes, object]:
        """netkit_run: every program in order while they return NETKIT_NEXT; the
        skb is already the peer's (``skb->dev``, ``ifindex``)."""
        from ..progs.skb import build_skb, release_skb, run_on_skb

        rt = self.runtime
        skb = build_skb(rt, frame, ProgType.SCHED_CLS, dev=peer)
        skb.pkt_len = skb.len
        ret = int(NetkitAction.NEXT)
        info = None
        try:
            for slot in list(self.bundle.slots):
                skb.compute_data_pointers()
                vm = slot.prog.vm()
                vm.redirect_info = None
                r0, _ = run_on_skb(rt, slot.prog, skb)
                ret = r0 - (1 << 32) if r0 & 0x8000_0000 else r0
                info = vm.redirect_info
                if ret != NetkitAction.NEXT:
                    break
            frame = skb.packet()
        finally:
            release_skb(rt, skb)
        return ret, frame, info


def netkit_dev_fetch(rt: Runtime, ifindex: int, which: int) -> NetkitDev:
    """netkit_dev_fetch: the device whose list ``which`` names."""
    if which not in NETKIT_ATTACH:
        raise BpfError(errno.EINVAL, f"attach_type {which} is not a netkit one")
    dev = dev_get_by_index(rt, ifindex)
    if dev is None:
        raise BpfError(errno.ENODEV, f"no device with ifindex {ifindex}")
    if not isinstance(dev, NetkitDev):
        raise BpfError(errno.ENXIO, f"{dev.name} is not a netkit device")
    if not dev.primary:
        raise BpfError(errno.EACCES, f"{dev.name} is a netkit peer: attach through the "
                       "primary device")
    if which == AttachType.NETKIT_PEER:
        peer = dev.peer
        if not isinstance(peer, NetkitDev):
            raise BpfError(errno.ENODEV, f"{dev.name} has no peer")
        return peer
    return dev


class NetkitLink(TcxLink):
    """struct netkit_link: a tcx-like mprog link on a netkit device's list."""

    link_type = LinkType.NETKIT


def netkit_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """netkit_link_attach (the device first; the mprog attach is the link's attach)."""
    dev = netkit_dev_fetch(rt, attr.target_ifindex, attr.attach_type)
    return NetkitLink(rt, prog, attr, dev)


def netkit_prog_attach(rt: Runtime, attr: ProgAttachAttr, prog: BpfProg) -> None:
    """netkit_prog_attach."""
    dev = netkit_dev_fetch(rt, attr.target_ifindex, attr.attach_type)
    replace = None
    if attr.attach_flags & AttachFlags.REPLACE:
        replace = prog_get_type(rt, attr.replace_bpf_fd, prog.prog_type)
    dev.bundle.attach(rt, prog, None, replace, attr.attach_flags, attr.relative_fd,
                      attr.expected_revision)


def netkit_prog_detach(rt: Runtime, attr: ProgAttachAttr, prog: BpfProg | None) -> None:
    """netkit_prog_detach."""
    dev = netkit_dev_fetch(rt, attr.target_ifindex, attr.attach_type)
    if not dev.bundle.slots:
        raise BpfError(errno.ENOENT, "nothing is attached")
    dev.bundle.detach(rt, prog, None, attr.attach_flags, attr.relative_fd,
                      attr.expected_revision)


def netkit_prog_query(rt: Runtime, attr: ProgQueryAttr) -> ProgQueryResult:
    """netkit_prog_query (bpf_mprog_query of the active list, or of none)."""
    dev = netkit_dev_fetch(rt, attr.target_fd, attr.attach_type)
    entry = dev.bundle if dev.bundle.slots else MprogEntry()
    return entry.query(rt, attr)


for _at in NETKIT_ATTACH:
    register_link_kind(ProgType.SCHED_CLS, netkit_link_create, attach_type=_at)
register_prog_attach(ProgType.SCHED_CLS, netkit_prog_attach, netkit_prog_detach,
                     attach_types=NETKIT_ATTACH)
register_prog_query(NETKIT_ATTACH, netkit_prog_query)
