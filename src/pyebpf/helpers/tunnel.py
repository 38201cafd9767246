"""Tunnel metadata helpers: ``bpf_skb_set_tunnel_key`` / ``bpf_skb_get_tunnel_key``
and the options beside the key, ``bpf_skb_set_tunnel_opt`` / ``bpf_skb_get_tunnel_opt``.

A tc program encapsulating through a collect-metadata tunnel device sets the
outer header's fields as tunnel metadata on the skb (a ``metadata_dst``); a
program on the receiving side reads them back. pyebpf keeps that metadata as
a :class:`TunnelInfo` on the :class:`~pyebpf.progs.skb.SkBuff`. The field
mapping follows net/core/filter.c: setting stores ``remote`` as the outer
destination and ``local`` as its source; getting (the receive view) reports
the source as ``remote``, so a get after a set swaps them, as in the kernel.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

import attrs

from ..uapi import ProgType
from . import register_helper
from ._util import M32, check_writable, neg, skb_arg
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

__all__ = ["BPF_TUNNEL_KEY_SIZE", "TunnelInfo"]

A = ArgType
P = ProgType
_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.LWT_XMIT})

BPF_F_TUNINFO_IPV6 = 1 << 0
BPF_F_ZERO_CSUM_TX = 1 << 1
BPF_F_DONT_FRAGMENT = 1 << 2
BPF_F_SEQ_NUMBER = 1 << 3
BPF_F_NO_TUNNEL_KEY = 1 << 4
#: bpf_skb_get_tunnel_key: report tunnel_flags in place of tunnel_ext.
BPF_F_TUNINFO_FLAGS = 1 << 4
#: struct bpf_tunnel_key: tunnel_id, remote (16), tos, ttl, ext/flags, label, local (16).
BPF_TUNNEL_KEY_SIZE = 44
_OFF_REMOTE_V6_1, _OFF_EXT, _OFF_LABEL, _OFF_LOCAL = 8, 22, 24, 28
#: Older, shorter layouts of struct bpf_tunnel_key the kernel still takes.
_COMPAT_SIZES = (_OFF_LOCAL, _OFF_LABEL, _OFF_EXT)
IPV6_FLOWLABEL_MASK = 0x000F_FFFF
#: The tunnel flag bits ip_tunnel_flags_to_be16 reports (the old __be16 TUNNEL_* values).
TUNNEL_CSUM, TUNNEL_KEY, TUNNEL_SEQ = 0x01, 0x04, 0x08
TUNNEL_DONT_FRAGMENT, TUNNEL_NOCACHE = 0x0100, 0x2000
#: TUNNEL_OPTIONS_PRESENT: the GENEVE, VXLAN, ERSPAN and GTP option bits
#: ip_tunnel_set_options_present sets (the PFCP one lies past the 16 bits
#: ip_tunnel_flags_to_be16 reports, so it is left out).
TUNNEL_GENEVE_OPT, TUNNEL_VXLAN_OPT, TUNNEL_ERSPAN_OPT, TUNNEL_GTP_OPT = (
    0x0800, 0x1000, 0x4000, 0x8000)
TUNNEL_OPTIONS_PRESENT = TUNNEL_GENEVE_OPT | TUNNEL_VXLAN_OPT | TUNNEL_ERSPAN_OPT | TUNNEL_GTP_OPT
#: IP_TUNNEL_OPTS_MAX: what ip_tunnel_info's u8 options_len can hold.
IP_TUNNEL_OPTS_MAX = 255


@attrs.define
class TunnelInfo:
    """``struct ip_tunnel_info`` of a metadata dst (addresses as network-order bytes)."""

    ipv6: bool
    tun_id: int
    tos: int
    ttl: int
    flags: int
    src: bytes
    dst: bytes
    label: int = 0
    #: The tunnel options (geneve TLVs, a vxlan GBP ...) bpf_skb_set_tunnel_opt set.
    options: bytes = b""


def _addr(key: bytes, off: int, ipv6: bool) -> bytes:
    """An address field of bpf_tunnel_key (u32s in host order) as network-order bytes."""
    if ipv6:
        return key[off:off + 16]
    return struct.unpack_from("<I", key, off)[0].to_bytes(4, "big")


@register_helper(21, "skb_set_tunnel_key",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,
                                             A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY,
                                             A.ARG_CONST_SIZE, A.ARG_ANYTHING)),
                 prog_types=_TYPES)
def skb_set_tunnel_key(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Attach tunnel metadata (the outer header's id, addresses, tos, ttl) to the skb."""
    skb = skb_arg(vm, r1)
    size, flags = r3 & M32, r4
    if flags & ~(BPF_F_TUNINFO_IPV6 | BPF_F_ZERO_CSUM_TX | BPF_F_DONT_FRAGMENT
                 | BPF_F_SEQ_NUMBER | BPF_F_NO_TUNNEL_KEY):
        return neg(errno.EINVAL)
    if size != BPF_TUNNEL_KEY_SIZE and size not in (*_COMPAT_SIZES, _OFF_REMOTE_V6_1):
        return neg(errno.EINVAL)
    key = vm.memory.read(r2, size).ljust(BPF_TUNNEL_KEY_SIZE, b"\0")
    tun_id, = struct.unpack_from("<I", key, 0)
    tos, ttl = key[20], key[21]
    ext, = struct.unpack_from("<H", key, _OFF_EXT)
    label, = struct.unpack_from("<I", key, _OFF_LABEL)
    ipv6 = bool(flags & BPF_F_TUNINFO_IPV6)
    if (not ipv6 and label) or ext:
        return neg(errno.EINVAL)
    tun_flags = TUNNEL_NOCACHE
    tun_flags |= TUNNEL_DONT_FRAGMENT if flags & BPF_F_DONT_FRAGMENT else 0
    tun_flags |= 0 if flags & BPF_F_ZERO_CSUM_TX else TUNNEL_CSUM
    tun_flags |= TUNNEL_SEQ if flags & BPF_F_SEQ_NUMBER else 0
    tun_flags |= 0 if flags & BPF_F_NO_TUNNEL_KEY else TUNNEL_KEY
    skb.tunnel = TunnelInfo(ipv6=ipv6, tun_id=tun_id, tos=tos, ttl=ttl, flags=tun_flags,
                            dst=_addr(key, 4, ipv6), src=_addr(key, _OFF_LOCAL, ipv6),
                            label=label & IPV6_FLOWLABEL_MASK if ipv6 else 0)
    return 0


@register_helper(20, "skb_get_tunnel_key",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_UNINIT_MEM,
                                             A.ARG_CONST_SIZE, A.ARG_ANYTHING)),
                 prog_types=_TYPES)
def skb_get_tunnel_key(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Read the skb's tunnel metadata; none (as in every test run): -EINVAL, zeroed."""
    size, flags = r3 & M32, r4
    check_writable(vm.memory, r2, size)
    info = skb_arg(vm, r1).tunnel
    err = 0
    if info is None or flags & ~(BPF_F_TUNINFO_IPV6 | BPF_F_TUNINFO_FLAGS):
        err = errno.EINVAL
    elif info.ipv6 != bool(flags & BPF_F_TUNINFO_IPV6):
        err = errno.EPROTO
    elif size != BPF_TUNNEL_KEY_SIZE and not (
            size in _COMPAT_SIZES or (size == _OFF_REMOTE_V6_1 and not info.ipv6)):
        err = errno.EINVAL
    if err or info is None:
        vm.memory.write(r2, bytes(size))
        return neg(err)
    out = bytearray(BPF_TUNNEL_KEY_SIZE)
    struct.pack_into("<I", out, 0, info.tun_id & M32)
    out[20], out[21] = info.tos, info.ttl
    if flags & BPF_F_TUNINFO_FLAGS:
        struct.pack_into(">H", out, _OFF_EXT, info.flags & 0xFFFF)
    if info.ipv6:
        out[4:20], out[_OFF_LOCAL:_OFF_LOCAL + 16] = info.src, info.dst
        struct.pack_into("<I", out, _OFF_LABEL, info.label)
    else:
        struct.pack_into("<I", out, 4, int.from_bytes(info.src, "big"))
        struct.pack_into("<I", out, _OFF_LOCAL, int.from_bytes(info.dst, "big"))
    vm.memory.write(r2, bytes(out[:size]))
    return 0


@register_helper(30, "skb_set_tunnel_opt",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,
                                             A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY,
                                             A.ARG_CONST_SIZE)),
                 prog_types=_TYPES)
def skb_set_tunnel_opt(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Attach tunnel options (geneve TLVs ...: ``size`` bytes, whole u32s) to the
    tunnel metadata bpf_skb_set_tunnel_key set; without that metadata -EINVAL,
    more than IP_TUNNEL_OPTS_MAX bytes -ENOMEM."""
    info = skb_arg(vm, r1).tunnel
    size = r3 & M32
    if info is None or size & 3:
        return neg(errno.EINVAL)
    if size > IP_TUNNEL_OPTS_MAX:
        return neg(errno.ENOMEM)
    info.options = vm.memory.read(r2, size)
    if size:  # ip_tunnel_info_opts_set
        info.flags |= TUNNEL_OPTIONS_PRESENT
    return 0


@register_helper(29, "skb_get_tunnel_opt",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_UNINIT_MEM,
                                             A.ARG_CONST_SIZE)),
                 prog_types=_TYPES)
def skb_get_tunnel_opt(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy the tunnel options into ``to`` (zero-padded to ``size``) and return
    their length; no options -ENOENT, a buffer too small -ENOMEM (both zero
    the buffer)."""
    size = r3 & M32
    check_writable(vm.memory, r2, size)
    info = skb_arg(vm, r1).tunnel
    err = 0
    if info is None or not info.flags & TUNNEL_OPTIONS_PRESENT:
        err = errno.ENOENT
    elif size < len(info.options):
        err = errno.ENOMEM
    if err or info is None:
        vm.memory.write(r2, bytes(size))
        return neg(err)
    vm.memory.write(r2, info.options.ljust(size, b"\0"))
    return len(info.options)
