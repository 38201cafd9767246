"""Helpers that change the packet: skb stores, pulls, head/tail changes, VLAN
tags, XDP head/meta/tail adjustment, and redirects.

They follow net/core/filter.c and the skb functions it calls
(net/core/skbuff.c, include/linux/if_vlan.h) for the linear skbs and XDP
buffers a test run builds: the same checks in the same order, the same
errno, the same bytes moved. A packet that must grow past its buffer is
reallocated (as ``pskb_expand_head`` does) at a new address; the verifier
has already invalidated every packet pointer a program held across the call
(``bpf_helper_changes_pkt_data``), so nothing can reach the old buffer.

Redirect helpers record their target as the kernel's per-CPU
``bpf_redirect_info`` and return TC_ACT_REDIRECT / XDP_REDIRECT; a simulated
hook that runs the program acts on it (``vm.redirect_info``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import attrs

from ..progs.xdp import XDP_FRAME_SIZE, XDP_META_MAX
from ..uapi import ProgType
from . import register_helper
from ._util import M32, ctx_object, neg, skb_arg
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..progs.skb import SkBuff
    from ..progs.xdp import XdpBuff

A = ArgType
P = ProgType
ENOTSUPP = 524
ETH_HLEN, ETH_ALEN, VLAN_HLEN = 14, 6, 4
ETH_P_8021Q, ETH_P_8021AD = 0x8100, 0x88A8
ETH_P_802_3, ETH_P_802_2, ETH_P_802_3_MIN = 0x0001, 0x0004, 0x0600
NET_SKB_PAD = 64
#: BPF_SKB_MAX_LEN = SKB_MAX_ALLOC: four pages less skb_shared_info.
BPF_SKB_MAX_LEN = (4096 << 2) - 320
BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH = 1 << 0, 1 << 1
BPF_F_INGRESS = 1 << 0
TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7
XDP_ABORTED, XDP_REDIRECT = 0, 4

_CTX_ANY = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING))
_CTX_ANY_ANY = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING))
_TC = frozenset({P.SCHED_CLS, P.SCHED_ACT})


def _be16(v: int) -> int:
    """A __be16 as a register holds it (its memory bytes read little-endian) -> host order."""
    return ((v & 0xFF) << 8) | ((v >> 8) & 0xFF)


def _xdp(vm: Vm, ctx: int) -> XdpBuff:
    from ..progs.xdp import XdpBuff

    return ctx_object(vm, ctx, XdpBuff, "xdp_md")


# -- growing and shrinking an skb ---------------------------------------------------------------

def expand_head(vm: Vm, skb: SkBuff, nhead: int, ntail: int) -> None:
    """pskb_expand_head: a new buffer with ``nhead`` more bytes of headroom and
    ``ntail`` more of tailroom (kmalloc may give more tailroom), the old one freed."""
    from ..progs.skb import SKB_TAILROOM, _kmalloc_size

    old_size = skb.end_off
    total = _kmalloc_size(nhead + old_size + ntail + SKB_TAILROOM)
    buf = bytearray(total)
    buf[nhead:nhead + old_size] = skb.buf[:old_size]
    rt = vm.runtime
    region = rt.memory.map(buf, kind="packet", name="skb")
    old = next((r for r in skb.regions if r.base == skb.base), None)
    if old is not None:
        skb.regions.remove(old)
        rt.unmap_later(old)
    skb.regions.append(region)
    skb.buf, skb.base = buf, region.base
    skb.data_off += nhead
    skb.mac_off += nhead
    skb.network_off += nhead
    skb.end_off = total - SKB_TAILROOM


def _tailroom(skb: SkBuff) -> int:
    return skb.end_off - (skb.data_off + skb.len)


@register_helper(9, "skb_store_bytes",
                 Proto(RetType.RET_INTEGER,
                       (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY,
                        A.ARG_CONST_SIZE, A.ARG_ANYTHING)),
                 prog_types=_TC | {P.LWT_XMIT, P.SK_SKB})
def skb_store_bytes(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy ``len`` bytes from ``from`` into the packet at ``offset``."""
    from ..progs.skb import try_make_writable

    skb = skb_arg(vm, r1)
    offset, length = r2 & M32, r4 & M32
    if r5 & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
        return neg(errno.EINVAL)
    if offset > 0x7FFF_FFFF or try_make_writable(skb, offset + length):
        return neg(errno.EFAULT)
    data = vm.memory.read(r3, length)
    at = skb.data_off + offset
    skb.buf[at:at + length] = data
    if r5 & BPF_F_INVALIDATE_HASH:
        skb.hash = 0
    return 0


@register_helper(39, "skb_pull_data", _CTX_ANY,
                 prog_types=_TC | {P.LWT_IN, P.LWT_OUT, P.LWT_XMIT, P.LWT_SEG6LOCAL, P.SK_SKB})
def skb_pull_data(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Make the first ``len`` bytes (0: the linear part) directly accessible."""
    from ..progs.skb import try_make_writable

    skb = skb_arg(vm, r1)
    err = try_make_writable(skb, (r2 & M32) or skb.headlen)
    return neg(-err) if err else 0


def _min_len(skb: SkBuff) -> int:
    """__bpf_skb_min_len: the packet may not shrink into its network header
    (the transport header is never set in a test run)."""
    offset = skb.network_off - skb.data_off
    return offset if offset > 0 else 0


@register_helper(38, "skb_change_tail", _CTX_ANY_ANY,
                 prog_types=_TC | {P.LWT_XMIT, P.SK_SKB})
def skb_change_tail(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Grow (zero-filled) or trim the packet to ``len`` bytes."""
    skb = skb_arg(vm, r1)
    new_len = r2 & M32
    try:
        if r3 or new_len > BPF_SKB_MAX_LEN or new_len < _min_len(skb):
            return neg(errno.EINVAL)
        if skb.encapsulation:
            return neg(ENOTSUPP)
        if new_len > skb.len:
            grow = new_len - skb.len
            if _tailroom(skb) < grow:
                expand_head(vm, skb, 0, grow - _tailroom(skb))
            start = skb.data_off + skb.len
            skb.buf[start:start + grow] = bytes(grow)
        skb.len = new_len
        return 0
    finally:
        skb.compute_data_pointers()


@register_helper(43, "skb_change_head", _CTX_ANY_ANY,
                 prog_types=_TC | {P.LWT_XMIT, P.SK_SKB})
def skb_change_head(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Push ``head_room`` zeroed bytes in front of the packet (a new mac header)."""
    skb = skb_arg(vm, r1)
    head_room = r2 & M32
    new_len = (skb.len + head_room) & M32
    try:
        if r3 or new_len > BPF_SKB_MAX_LEN or new_len < skb.len:
            return neg(errno.EINVAL)
        if head_room > skb.headroom:  # skb_cow
            delta = head_room - skb.headroom
            expand_head(vm, skb, (delta + NET_SKB_PAD - 1) // NET_SKB_PAD * NET_SKB_PAD, 0)
        skb.push(head_room)
        skb.buf[skb.data_off:skb.data_off + head_room] = bytes(head_room)
        skb.mac_off = skb.data_off
        return 0
    finally:
        skb.compute_data_pointers()


# -- VLAN tags ----------------------------------------------------------------------------------

def _eth_type_vlan(proto_be: int) -> bool:
    return _be16(proto_be) in (ETH_P_8021Q, ETH_P_8021AD)


def _insert_tag(vm: Vm, skb: SkBuff, proto_be: int, tci: int) -> None:
    """__vlan_insert_tag: a 4-byte tag between the MAC addresses and the ethertype."""
    if skb.headroom < VLAN_HLEN:  # skb_cow_head
        delta = VLAN_HLEN - skb.headroom
        expand_head(vm, skb, (delta + NET_SKB_PAD - 1) // NET_SKB_PAD * NET_SKB_PAD, 0)
    skb.push(VLAN_HLEN)
    d = skb.data_off
    skb.buf[d:d + 2 * ETH_ALEN] = skb.buf[d + VLAN_HLEN:d + VLAN_HLEN + 2 * ETH_ALEN]
    skb.mac_off -= VLAN_HLEN
    skb.buf[d + 12:d + 14] = proto_be.to_bytes(2, "little")
    skb.buf[d + 14:d + 16] = tci.to_bytes(2, "big")


def _vlan_pop_one(skb: SkBuff) -> tuple[int, int]:
    """__skb_vlan_pop: remove the tag in the packet; (0, tci) or (-errno, 0)."""
    if skb.data_off != skb.mac_off:
        return -errno.EINVAL, 0
    if skb.len < VLAN_HLEN + ETH_HLEN:  # skb_ensure_writable(skb, VLAN_ETH_HLEN)
        return -errno.ENOMEM, 0
    d = skb.data_off
    tci = int.from_bytes(skb.buf[d + 14:d + 16], "big")
    encap = int.from_bytes(skb.buf[d + 16:d + 18], "big")
    skb.buf[d + VLAN_HLEN:d + VLAN_HLEN + 2 * ETH_ALEN] = skb.buf[d:d + 2 * ETH_ALEN]
    if encap >= ETH_P_802_3_MIN:  # vlan_set_encap_proto
        proto = encap
    elif skb.buf[d + 18:d + 20] == b"\xff\xff":
        proto = ETH_P_802_3
    else:
        proto = ETH_P_802_2
    skb.protocol = _be16(proto)
    skb.pull(VLAN_HLEN)
    skb.mac_off += VLAN_HLEN
    if skb.network_off - skb.data_off < ETH_HLEN:
        skb.network_off = skb.data_off + ETH_HLEN
    return 0, tci


@register_helper(18, "skb_vlan_push",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING)),
                 prog_types=_TC)
def skb_vlan_push(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Set the skb's (offloaded) VLAN tag; a tag already there moves into the packet."""
    skb = skb_arg(vm, r1)
    proto_be, tci = r2 & 0xFFFF, r3 & 0xFFFF
    if not _eth_type_vlan(proto_be):
        proto_be = _be16(ETH_P_8021Q)
    try:
        if skb.vlan_present:
            if skb.data_off != skb.mac_off:
                return neg(errno.EINVAL)
            _insert_tag(vm, skb, skb.vlan_proto, skb.vlan_tci)
            skb.protocol = skb.vlan_proto
            skb.network_off -= VLAN_HLEN
        skb.vlan_present, skb.vlan_proto, skb.vlan_tci = 1, proto_be, tci
        return 0
    finally:
        skb.compute_data_pointers()


@register_helper(19, "skb_vlan_pop", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,)),
                 prog_types=_TC)
def skb_vlan_pop(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Drop the outer VLAN tag; the next tag in the packet becomes the offloaded one."""
    skb = skb_arg(vm, r1)
    try:
        if skb.vlan_present:
            skb.vlan_present, skb.vlan_proto, skb.vlan_tci = 0, 0, 0
        else:
            if not _eth_type_vlan(skb.protocol):
                return 0
            err, _ = _vlan_pop_one(skb)
            if err:
                return neg(-err)
        if not _eth_type_vlan(skb.protocol):
            return 0
        proto_be = skb.protocol
        err, tci = _vlan_pop_one(skb)
        if err:
            return neg(-err)
        skb.vlan_present, skb.vlan_proto, skb.vlan_tci = 1, proto_be, tci
        return 0
    finally:
        skb.compute_data_pointers()


# -- XDP ----------------------------------------------------------------------------------------

def _metalen(xdp: XdpBuff) -> int:
    return 0 if xdp.data_meta > xdp.data else xdp.data - xdp.data_meta


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


@register_helper(44, "xdp_adjust_head", _CTX_ANY, prog_types={P.XDP})
def xdp_adjust_head(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Move the packet's start by ``offset`` (negative: grow into the headroom)."""
    xdp = _xdp(vm, r1)
    offset = _s32(r2)
    metalen = _metalen(xdp)
    data = xdp.data + offset
    if data < xdp.data_hard_start + XDP_FRAME_SIZE + metalen or data > xdp.data_end - ETH_HLEN:
        return neg(errno.EINVAL)
    if metalen:
        vm.memory.write(xdp.data_meta + offset, vm.memory.read(xdp.data_meta, metalen))
    xdp.data_meta += offset
    xdp.data = data
    return 0


@register_helper(54, "xdp_adjust_meta", _CTX_ANY, prog_types={P.XDP})
def xdp_adjust_meta(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Move the metadata's start by ``offset``; metadata is whole u32s, at most
    what skb_shared_info's u8 meta_len holds (xdp_metalen_invalid)."""
    xdp = _xdp(vm, r1)
    meta = xdp.data_meta + _s32(r2)
    if xdp.data_meta > xdp.data:
        return neg(ENOTSUPP)
    if meta < xdp.data_hard_start + XDP_FRAME_SIZE or meta > xdp.data:
        return neg(errno.EINVAL)
    metalen = xdp.data - meta
    if metalen & 3 or metalen > XDP_META_MAX:
        return neg(errno.EACCES)
    xdp.data_meta = meta
    return 0


@register_helper(65, "xdp_adjust_tail", _CTX_ANY, prog_types={P.XDP})
def xdp_adjust_tail(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Move the packet's end by ``offset`` (growth is zero-filled)."""
    xdp = _xdp(vm, r1)
    offset = _s32(r2)
    data_end = xdp.data_end + offset
    if data_end > xdp.frame_end or data_end < xdp.data + ETH_HLEN:
        return neg(errno.EINVAL)
    if offset > 0:
        vm.memory.write(xdp.data_end, bytes(offset))
    xdp.data_end = data_end
    return 0


# -- redirect -----------------------------------------------------------------------------------

@attrs.define
class RedirectInfo:
    """The kernel's per-CPU ``bpf_redirect_info``: where the last redirect asked to go.

    ``map_id``/``map_type`` say how XDP's xdp_do_redirect reads it: INT_MAX and
    UNSPEC for bpf_redirect (``tgt_index`` is an ifindex), a map's id and type
    for bpf_redirect_map (``tgt_value`` is the entry the lookup found, ``map``
    the map of a BPF_F_BROADCAST redirect)."""

    tgt_index: int = 0
    flags: int = 0
    map_id: int = 0
    map_type: int = 0
    tgt_value: Any = None
    map: Any = None
    #: bpf_redirect_neigh's next hop (``struct bpf_nh_params``, 20 bytes), None
    #: without one (BPF_F_NEXTHOP unset: the route's gateway is the next hop).
    nh: bytes | None = None


def redirect_info(vm: Vm) -> RedirectInfo:
    if vm.redirect_info is None:
        vm.redirect_info = RedirectInfo()
    return vm.redirect_info  # type: ignore[no-any-return]


@register_helper(23, "redirect",
                 Proto(RetType.RET_INTEGER, (A.ARG_ANYTHING, A.ARG_ANYTHING)),
                 prog_types=_TC | {P.XDP, P.LWT_XMIT})
def redirect(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Ask the hook to send the packet out of (or, BPF_F_INGRESS, into) ``ifindex``.
    tc: TC_ACT_REDIRECT, or TC_ACT_SHOT for unknown flags; XDP: XDP_REDIRECT, or
    XDP_ABORTED for any flag."""
    is_xdp = getattr(vm.owner, "prog_type", None) == P.XDP
    if (r2 if is_xdp else r2 & ~BPF_F_INGRESS):
        return XDP_ABORTED if is_xdp else TC_ACT_SHOT
    info = redirect_info(vm)
    info.tgt_index, info.flags, info.nh = r1 & M32, r2, None
    # ifindex-based XDP redirects: map type UNSPEC with map_id INT_MAX
    info.map_id, info.map_type, info.tgt_value, info.map = 0x7FFF_FFFF, 0, None, None
    return XDP_REDIRECT if is_xdp else TC_ACT_REDIRECT


#: The internal redirect flags skb_do_redirect reads (net/core/filter.c): never
#: user-visible, so bpf_redirect refuses them as unknown flags.
BPF_F_NEIGH, BPF_F_PEER, BPF_F_NEXTHOP = 1 << 1, 1 << 2, 1 << 3
#: struct bpf_redir_neigh / struct bpf_nh_params: u32 nh_family, then a 16-byte
#: union of the IPv4 or IPv6 next-hop address.
BPF_REDIR_NEIGH_SIZE = 20


@register_helper(155, "redirect_peer", Proto(RetType.RET_INTEGER, (A.ARG_ANYTHING,
                                                                   A.ARG_ANYTHING)),
                 prog_types=_TC)
def redirect_peer(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Ask tc ingress to hand the packet to the peer of device ``ifindex`` (a veth or
    netkit in another namespace) without a trip through the backlog queue. Any
    flag: TC_ACT_SHOT. Whether the peer exists is only checked when the hook acts
    (skb_do_redirect), so the return is TC_ACT_REDIRECT whatever ``ifindex`` is."""
    if r2:
        return TC_ACT_SHOT
    info = redirect_info(vm)
    info.tgt_index, info.flags, info.nh = r1 & M32, BPF_F_PEER, None
    return TC_ACT_REDIRECT


@register_helper(152, "redirect_neigh",
                 Proto(RetType.RET_INTEGER,
                       (A.ARG_ANYTHING, A.ARG_PTR_TO_MEM | TypeFlag.PTR_MAYBE_NULL
                        | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE_OR_ZERO, A.ARG_ANYTHING)),
                 prog_types=_TC)
def redirect_neigh(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Ask the hook to send the packet out of ``ifindex`` with a fresh L2 header
    for the next hop's neighbour: the route's gateway, or the address in
    ``params`` (``plen`` bytes of struct bpf_redir_neigh). A ``plen`` that is
    neither 0 nor the struct's size, or any flag: TC_ACT_SHOT."""
    plen = _s32(r3)
    if (plen and plen < BPF_REDIR_NEIGH_SIZE) or r4:
        return TC_ACT_SHOT
    info = redirect_info(vm)
    info.tgt_index = r1 & M32
    info.flags = BPF_F_NEIGH | (BPF_F_NEXTHOP if plen else 0)
    info.nh = vm.memory.read(r2, BPF_REDIR_NEIGH_SIZE) if plen else None
    return TC_ACT_REDIRECT


# -- bpf_check_mtu ------------------------------------------------------------------------------

BPF_MTU_CHK_SEGS = 1 << 0
BPF_MTU_CHK_RET_SUCCESS, BPF_MTU_CHK_RET_FRAG_NEEDED, BPF_MTU_CHK_RET_SEGS_TOOBIG = 0, 1, 2
#: dev->hard_header_len of the devices pyebpf simulates (all Ethernet-like: lo, veth).
HARD_HEADER_LEN = ETH_HLEN


def _dev_via_ifindex(vm: Vm, dev: Any, ifindex: int) -> Any:
    """__dev_via_ifindex: the program's own device for 0, else dev_get_by_index."""
    from ..progs.skb import _netdev

    return dev if ifindex == 0 else _netdev(vm.runtime, ifindex)


def _xdp_check_mtu(vm: Vm, ctx: int, ifindex: int, mtu_len: int, len_diff: int,
                   flags: int) -> tuple[int, int | None]:
    """bpf_xdp_check_mtu: (the return, the MTU to store in *mtu_len or None)."""
    from ..progs.skb import _netdev

    xdp = _xdp(vm, ctx)
    if flags:  # no multi-buffer segment check
        return -errno.EINVAL, None
    own = _netdev(vm.runtime, xdp.ingress_ifindex or 1)  # xdp->rxq->dev
    dev = _dev_via_ifindex(vm, own, ifindex)
    if dev is None:
        return -errno.ENODEV, None
    xdp_len = (mtu_len + HARD_HEADER_LEN) if mtu_len else xdp.data_end - xdp.data
    fits = _s32(xdp_len + len_diff) <= dev.mtu + HARD_HEADER_LEN
    return (BPF_MTU_CHK_RET_SUCCESS if fits else BPF_MTU_CHK_RET_FRAG_NEEDED), dev.mtu


def _skb_check_mtu(vm: Vm, ctx: int, ifindex: int, mtu_len: int, len_diff: int,
                   flags: int) -> tuple[int, int | None]:
    """bpf_skb_check_mtu: (the return, the MTU to store in *mtu_len or None)."""
    skb = skb_arg(vm, ctx)
    if flags & ~BPF_MTU_CHK_SEGS:
        return -errno.EINVAL, None
    if flags & BPF_MTU_CHK_SEGS and (len_diff or mtu_len):
        return -errno.EINVAL, None
    dev = _dev_via_ifindex(vm, skb.dev, ifindex)
    if dev is None:
        return -errno.ENODEV, None
    skb_len = (mtu_len + HARD_HEADER_LEN) if mtu_len else skb.len
    if _s32(skb_len + len_diff) <= dev.mtu + HARD_HEADER_LEN:
        return BPF_MTU_CHK_RET_SUCCESS, dev.mtu
    if not skb.gso_size_:  # !skb_is_gso
        return BPF_MTU_CHK_RET_FRAG_NEEDED, dev.mtu
    if flags & BPF_MTU_CHK_SEGS:
        # Sizing the segments needs the transport header, which a pyebpf skb never
        # has set (a GSO skb comes only from a test run's ctx): EINVAL, as the
        # kernel answers for such an skb, so BPF_MTU_CHK_RET_SEGS_TOOBIG never is.
        return -errno.EINVAL, None
    return BPF_MTU_CHK_RET_SUCCESS, dev.mtu  # the segments may each fit


@register_helper(163, "check_mtu",
                 Proto(RetType.RET_INTEGER,
                       (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING,
                        A.ARG_PTR_TO_FIXED_SIZE_MEM | TypeFlag.MEM_WRITE | TypeFlag.MEM_ALIGNED,
                        A.ARG_ANYTHING, A.ARG_ANYTHING),
                       gpl_only=True, arg_size=(0, 0, 4, 0, 0)),
                 prog_types=_TC | {P.XDP})
def check_mtu(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Would the packet, grown by ``len_diff`` (or an L3 length of ``*mtu_len``
    when that is non-zero), fit the MTU of device ``ifindex`` (0: the program's
    own)? BPF_MTU_CHK_RET_SUCCESS or _FRAG_NEEDED (a GSO skb over the MTU
    succeeds: its segments are checked only with BPF_MTU_CHK_SEGS), and
    ``*mtu_len`` is set to the MTU; an error leaves it alone. The XDP form
    (bpf_xdp_check_mtu) takes no flags."""
    mtu_len = int.from_bytes(vm.memory.read(r3, 4), "little")
    check = _xdp_check_mtu if getattr(vm.owner, "prog_type", None) == P.XDP else _skb_check_mtu
    ret, mtu = check(vm, r1, r2 & M32, mtu_len, _s32(r4), r5)
    if mtu is not None:
        vm.memory.write(r3, mtu.to_bytes(4, "little"))
    return neg(-ret) if ret < 0 else ret


@register_helper(188, "xdp_get_buff_len", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,)),
                 prog_types={P.XDP})
def xdp_get_buff_len(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The packet's length (a test-run buffer has no fragments)."""
    xdp = _xdp(vm, r1)
    return xdp.data_end - xdp.data


def _xdp_range(xdp: XdpBuff, offset: int, length: int) -> int:
    """bpf_xdp_pointer's checks: 0, -EFAULT (offset or len above 0xffff) or -EINVAL."""
    if offset > 0xFFFF or length > 0xFFFF:
        return -errno.EFAULT
    if offset + length > xdp.data_end - xdp.data:
        return -errno.EINVAL
    return 0


_XDP_BYTES = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING,
                                         A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE))


@register_helper(189, "xdp_load_bytes", _XDP_BYTES, prog_types={P.XDP})
def xdp_load_bytes(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy packet bytes at ``offset`` into ``buf`` (left as it was on error)."""
    xdp = _xdp(vm, r1)
    offset, length = r2 & M32, r4 & M32
    err = _xdp_range(xdp, offset, length)
    if err:
        return neg(-err)
    vm.memory.write(r3, vm.memory.read(xdp.data + offset, length))
    return 0


@register_helper(190, "xdp_store_bytes", _XDP_BYTES, prog_types={P.XDP})
def xdp_store_bytes(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy ``buf`` into the packet at ``offset``."""
    xdp = _xdp(vm, r1)
    offset, length = r2 & M32, r4 & M32
    err = _xdp_range(xdp, offset, length)
    if err:
        return neg(-err)
    vm.memory.write(xdp.data + offset, vm.memory.read(r3, length))
    return 0


@attrs.frozen
class Transmit:
    """A packet a program sent to a device itself (bpf_clone_redirect)."""

    ifindex: int
    #: BPF_F_INGRESS: into the device's receive path, else out of it.
    ingress: bool
    packet: bytes


@register_helper(13, "clone_redirect", _CTX_ANY_ANY, prog_types=_TC | {P.LWT_XMIT})
def clone_redirect(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Send a copy of the packet to ``ifindex`` now (the runtime's ``transmitted``);
    the program goes on with the original."""
    from ..progs.skb import _netdev

    skb = skb_arg(vm, r1)
    if r3 & ~BPF_F_INGRESS:
        return neg(errno.EINVAL)
    rt = vm.runtime
    dev = _netdev(rt, r2 & M32)
    if dev is None:
        return neg(errno.EINVAL)
    if skb.mac_off >= skb.network_off:  # no link-layer header to send
        return neg(errno.ERANGE)
    rt.transmitted.append(Transmit(dev.ifindex, bool(r3 & BPF_F_INGRESS), skb.packet()))
    return 0


# -- bpf_skb_adjust_room ------------------------------------------------------------------------

BPF_ADJ_ROOM_NET, BPF_ADJ_ROOM_MAC = 0, 1
BPF_F_ADJ_ROOM_FIXED_GSO = 1 << 0
BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 = 1 << 1
BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 = 1 << 2
BPF_F_ADJ_ROOM_ENCAP_L4_GRE = 1 << 3
BPF_F_ADJ_ROOM_ENCAP_L4_UDP = 1 << 4
BPF_F_ADJ_ROOM_NO_CSUM_RESET = 1 << 5
BPF_F_ADJ_ROOM_ENCAP_L2_ETH = 1 << 6
BPF_F_ADJ_ROOM_DECAP_L3_IPV4 = 1 << 7
BPF_F_ADJ_ROOM_DECAP_L3_IPV6 = 1 << 8
BPF_ADJ_ROOM_ENCAP_L2_SHIFT = 56
_ENCAP_L3 = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L3_IPV6
_DECAP_L3 = BPF_F_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_DECAP_L3_IPV6
_ADJ_ROOM_MASK = (BPF_F_ADJ_ROOM_FIXED_GSO | _ENCAP_L3 | BPF_F_ADJ_ROOM_ENCAP_L4_GRE
                  | BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH
                  | (0xFF << BPF_ADJ_ROOM_ENCAP_L2_SHIFT) | _DECAP_L3)
ETH_P_IP, ETH_P_IPV6, ETH_P_TEB = 0x0800, 0x86DD, 0x6558
_NET_BASE_LEN = {ETH_P_IP: 20, ETH_P_IPV6: 40}


def _net_hdr_push(skb: SkBuff, off: int, length: int) -> None:
    """bpf_skb_net_hdr_push: ``length`` zeroed bytes at ``off`` from the MAC header."""
    skb.push(length)
    d = skb.data_off
    skb.buf[d:d + off] = skb.buf[d + length:d + length + off]
    skb.buf[d + off:d + off + length] = bytes(length)
    skb.mac_off -= length
    skb.network_off -= length


def _net_hdr_pop(skb: SkBuff, off: int, length: int) -> int:
    if off + length > skb.len:  # pskb_may_pull
        return -errno.ENOMEM
    d = skb.data_off
    head = bytes(skb.buf[d:d + off])
    skb.pull(length)
    skb.buf[skb.data_off:skb.data_off + off] = head
    skb.mac_off += length
    skb.network_off += length
    return 0


def _net_grow(vm: Vm, skb: SkBuff, off: int, length: int, flags: int) -> int:
    inner_mac_len = (flags >> BPF_ADJ_ROOM_ENCAP_L2_SHIFT) & 0xFF
    encap = bool(flags & _ENCAP_L3)
    if flags & _DECAP_L3:
        return -errno.EINVAL
    if skb.headroom < length:  # skb_cow_head
        delta = length - skb.headroom
        expand_head(vm, skb, (delta + NET_SKB_PAD - 1) // NET_SKB_PAD * NET_SKB_PAD, 0)
    mac_len = inner_net = 0
    if encap:
        if flags & _ENCAP_L3 == _ENCAP_L3:
            return -errno.EINVAL
        if flags & BPF_F_ADJ_ROOM_ENCAP_L4_GRE and flags & BPF_F_ADJ_ROOM_ENCAP_L4_UDP:
            return -errno.EINVAL
        if flags & BPF_F_ADJ_ROOM_ENCAP_L2_ETH and inner_mac_len < ETH_HLEN:
            return -errno.EINVAL
        if skb.encapsulation:
            return -errno.EALREADY
        mac_len = skb.network_off - skb.mac_off
        if inner_mac_len > length:
            return -errno.EINVAL
        inner_net = skb.network_off
    _net_hdr_push(skb, off, length)
    if encap:
        # Offsets here are from the buffer's start, which the push left in place.
        skb.inner_mac_off = inner_net - inner_mac_len
        skb.inner_network_off = inner_net
        skb.inner_protocol = _be16(ETH_P_TEB) if flags & BPF_F_ADJ_ROOM_ENCAP_L2_ETH \
            else skb.protocol
        skb.encapsulation = 1
        skb.network_off = skb.data_off + mac_len
        proto = _be16(skb.protocol)
        if proto == ETH_P_IP and flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV6:
            skb.protocol = _be16(ETH_P_IPV6)
        elif proto == ETH_P_IPV6 and flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV4:
            skb.protocol = _be16(ETH_P_IP)
    return 0


def _net_shrink(skb: SkBuff, off: int, length: int, flags: int) -> int:
    if flags & ~(BPF_F_ADJ_ROOM_FIXED_GSO | _DECAP_L3 | BPF_F_ADJ_ROOM_NO_CSUM_RESET):
        return -errno.EINVAL
    err = _net_hdr_pop(skb, off, length)
    if err:
        return err
    proto = _be16(skb.protocol)
    if proto == ETH_P_IP and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV6:
        skb.protocol = _be16(ETH_P_IPV6)
    elif proto == ETH_P_IPV6 and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV4:
        skb.protocol = _be16(ETH_P_IP)
    return 0


def _sk_skb_adjust_room(vm: Vm, skb: SkBuff, len_diff: int, mode: int, flags: int) -> int:
    """sk_skb_adjust_room: an SK_SKB program's skb starts at its payload, so the
    room is made or removed at skb->data (only mode BPF_ADJ_ROOM_NET, no
    flags): grown room is zeroed head bytes, shrinking pulls what it drops
    into the head first (pskb_may_pull). The headers' offsets stay put."""
    diff = abs(len_diff)
    try:
        if flags or mode != BPF_ADJ_ROOM_NET:
            return neg(errno.EINVAL)
        if diff > 0xFFF:
            return neg(errno.EFAULT)
        if len_diff >= 0:
            if diff > skb.headroom:  # skb_cow
                delta = diff - skb.headroom
                expand_head(vm, skb, (delta + NET_SKB_PAD - 1) // NET_SKB_PAD * NET_SKB_PAD, 0)
            skb.push(diff)
            skb.buf[skb.data_off:skb.data_off + diff] = bytes(diff)
            return 0
        if diff > skb.len:  # pskb_may_pull
            return neg(errno.ENOMEM)
        if diff > skb.headlen:
            skb.data_len = skb.len - diff  # __pskb_pull_tail
        skb.pull(diff)
        return 0
    finally:
        skb.compute_data_pointers()


@register_helper(50, "skb_adjust_room",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING,
                                             A.ARG_ANYTHING)),
                 prog_types=_TC | {P.SK_SKB})
def skb_adjust_room(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Insert (``len_diff`` > 0) or remove room after the MAC header
    (BPF_ADJ_ROOM_MAC) or after the L3 header (BPF_ADJ_ROOM_NET): the way a tc
    program pushes or pops an encapsulation header. An SK_SKB program gets
    sk_skb_adjust_room instead."""
    skb = skb_arg(vm, r1)
    if getattr(vm.owner, "prog_type", None) == P.SK_SKB:
        return _sk_skb_adjust_room(vm, skb, _s32(r2), r3 & M32, r4)
    len_diff, mode, flags = _s32(r2), r3 & M32, r4
    shrink = len_diff < 0
    diff = abs(len_diff)
    proto = _be16(skb.protocol)
    try:
        if flags & ~(_ADJ_ROOM_MASK | BPF_F_ADJ_ROOM_NO_CSUM_RESET):
            return neg(errno.EINVAL)
        if diff > 0xFFF:
            return neg(errno.EFAULT)
        if proto not in _NET_BASE_LEN:
            return neg(ENOTSUPP)
        if shrink and flags & _DECAP_L3 == _DECAP_L3:
            return neg(errno.EINVAL)
        off = skb.network_off - skb.mac_off
        if mode == BPF_ADJ_ROOM_NET:
            off += _NET_BASE_LEN[proto]
        elif mode != BPF_ADJ_ROOM_MAC:
            return neg(ENOTSUPP)
        len_min = _NET_BASE_LEN[proto]
        if shrink and proto == ETH_P_IP and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV6:
            len_min = _NET_BASE_LEN[ETH_P_IPV6]
        elif shrink and proto == ETH_P_IPV6 and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV4:
            len_min = _NET_BASE_LEN[ETH_P_IP]
        len_cur = skb.len - (skb.network_off - skb.data_off)
        if (shrink and (diff >= len_cur or len_cur - diff < len_min)) or \
                (not shrink and skb.len + diff > BPF_SKB_MAX_LEN):
            return neg(ENOTSUPP)
        err = _net_shrink(skb, off, diff, flags) if shrink else \
            _net_grow(vm, skb, off, diff, flags)
        if err:
            return neg(-err)
        if not flags & BPF_F_ADJ_ROOM_NO_CSUM_RESET and skb.ip_summed == 1:
            skb.ip_summed = 0  # __skb_reset_checksum_unnecessary
        return 0
    finally:
        skb.compute_data_pointers()


# -- bpf_skb_change_proto -----------------------------------------------------------------------

#: sizeof(struct ipv6hdr) - sizeof(struct iphdr): the room an IPv4 <-> IPv6 change makes.
_IP_XLAT_DIFF = _NET_BASE_LEN[ETH_P_IPV6] - _NET_BASE_LEN[ETH_P_IP]


def _proto_4_to_6(vm: Vm, skb: SkBuff) -> int:
    """bpf_skb_proto_4_to_6: 20 zeroed bytes after the MAC header (skb_cow first)."""
    if skb.headroom < _IP_XLAT_DIFF:
        delta = _IP_XLAT_DIFF - skb.headroom
        expand_head(vm, skb, (delta + NET_SKB_PAD - 1) // NET_SKB_PAD * NET_SKB_PAD, 0)
    _net_hdr_push(skb, skb.network_off - skb.mac_off, _IP_XLAT_DIFF)
    skb.protocol = _be16(ETH_P_IPV6)
    return 0


def _proto_6_to_4(skb: SkBuff) -> int:
    """bpf_skb_proto_6_to_4: drop 20 bytes after the MAC header."""
    err = _net_hdr_pop(skb, skb.network_off - skb.mac_off, _IP_XLAT_DIFF)
    if err:
        return err
    skb.protocol = _be16(ETH_P_IP)
    return 0


@register_helper(31, "skb_change_proto", _CTX_ANY_ANY, prog_types=_TC)
def skb_change_proto(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Turn an IPv4 packet into an IPv6 one or back (NAT64): only the room for the
    new L3 header is made (zeroed, right after the MAC header) and
    skb->protocol set; the program writes the header itself. ``proto`` is
    the __be16 ETH_P_IPV6 / ETH_P_IP; any other change: -ENOTSUPP."""
    skb = skb_arg(vm, r1)
    to_proto = _be16(r2 & 0xFFFF)
    try:
        if r3:
            return neg(errno.EINVAL)
        from_proto = _be16(skb.protocol)
        if from_proto == ETH_P_IP and to_proto == ETH_P_IPV6:
            err = _proto_4_to_6(vm, skb)
        elif from_proto == ETH_P_IPV6 and to_proto == ETH_P_IP:
            err = _proto_6_to_4(skb)
        else:
            return neg(ENOTSUPP)
        if err:
            return neg(-err)
        skb.hash = skb.sw_hash = skb.l4_hash = 0  # skb_clear_hash
        return 0
    finally:
        skb.compute_data_pointers()
