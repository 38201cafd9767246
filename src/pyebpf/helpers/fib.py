"""``bpf_fib_lookup``: where does this packet go? Answered from ``runtime.fib``
(:class:`pyebpf.fib.Fib`) the way net/core/filter.c's bpf_ipv4_fib_lookup /
bpf_ipv6_fib_lookup answer from the kernel's FIB, in the same order of
checks: the input device, its forwarding setting, the route (and its type),
the MTU, the next hop's neighbour entry.

``struct bpf_fib_lookup`` (64 bytes) is read from and written back to the
program's buffer; every field the kernel sets on success is set here.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from typing import TYPE_CHECKING

from ..fib import RouteType
from ..uapi import ProgType
from . import register_helper
from ._util import M32, neg, runtime_of
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..fib import Fib

__all__ = ["BPF_FIB_LOOKUP_SIZE", "FibResult"]

A = ArgType
AF_INET, AF_INET6 = 2, 10
BPF_FIB_LOOKUP_SIZE = 64
BPF_FIB_LOOKUP_DIRECT, BPF_FIB_LOOKUP_OUTPUT, BPF_FIB_LOOKUP_SKIP_NEIGH = 1, 2, 4
BPF_FIB_LOOKUP_TBID, BPF_FIB_LOOKUP_SRC, BPF_FIB_LOOKUP_MARK = 8, 16, 32
_FLAGS = 63
ETH_HLEN, VLAN_HLEN = 14, 4


class FibResult:
    """BPF_FIB_LKUP_RET_* (the helper's non-negative returns)."""

    SUCCESS, BLACKHOLE, UNREACHABLE, PROHIBIT, NOT_FWDED = 0, 1, 2, 3, 4
    FWD_DISABLED, UNSUPP_LWT, NO_NEIGH, FRAG_NEEDED, NO_SRC_ADDR = 5, 6, 7, 8, 9


_REJECT = {RouteType.BLACKHOLE: FibResult.BLACKHOLE,
           RouteType.UNREACHABLE: FibResult.UNREACHABLE,
           RouteType.PROHIBIT: FibResult.PROHIBIT}


def _device_exists(vm: Vm, ifindex: int) -> bool:
    from ..progs.skb import _netdev

    return _netdev(vm.runtime, ifindex) is not None or ifindex in vm.runtime.fib.devices


def fib_lookup_params(vm: Vm, fib: Fib, params: bytearray, flags: int,
                      check_mtu: bool) -> int:
    """bpf_ipv4/ipv6_fib_lookup on the 64-byte ``params`` (updated in place)."""
    family = params[0]
    v6 = family == AF_INET6
    ifindex, = struct.unpack_from("<I", params, 8)
    dst = ipaddress.ip_address(bytes(params[32:48] if v6 else params[32:36]))
    # IPv6 refuses strict-scope addresses (rt6_need_strict) before it looks at the device.
    if v6 and any(a.is_multicast or a.is_link_local or a.is_loopback
                  for a in (dst, ipaddress.ip_address(bytes(params[16:32])))):
        return FibResult.NOT_FWDED
    if not _device_exists(vm, ifindex):
        return -errno.ENODEV
    if not fib.forwarding.get(ifindex, False):
        return FibResult.FWD_DISABLED
    table = None
    if flags & BPF_FIB_LOOKUP_DIRECT:
        table = 254
        if flags & BPF_FIB_LOOKUP_TBID:
            table, = struct.unpack_from("<I", params, 48)
            params[48:52] = bytes(4)
        if table not in fib.tables():
            return FibResult.NOT_FWDED
    route = fib.lookup(dst, table)
    if route is None:
        return FibResult.NOT_FWDED
    if route.type in _REJECT:
        return _REJECT[route.type]
    if route.type != RouteType.UNICAST:
        return FibResult.NOT_FWDED
    dev = fib.devices.get(route.ifindex)
    mtu = 0
    if check_mtu:
        mtu = route.mtu or (dev.mtu if dev is not None else 1500)
        tot_len, = struct.unpack_from("<H", params, 6)
        if tot_len > mtu:
            struct.pack_into("<H", params, 6, mtu)
            return FibResult.FRAG_NEEDED
    struct.pack_into("<I", params, 12, route.metric)  # rt_metric
    struct.pack_into("<I", params, 8, route.ifindex)
    if flags & BPF_FIB_LOOKUP_SRC:
        # The route's preferred source; without one an IPv6 lookup fails and an
        # IPv4 one reports the device's address (0.0.0.0: a model device has none).
        if route.prefsrc is None and v6:
            return FibResult.NO_SRC_ADDR
        src = route.prefsrc.packed if route.prefsrc is not None else bytes(4)
        params[16:16 + len(src)] = src
    next_hop = dst
    if route.gateway is not None:
        if route.gateway.version == 6 and not v6:
            params[0] = AF_INET6
        params[32:32 + len(route.gateway.packed)] = route.gateway.packed
        next_hop = route.gateway
    if not flags & BPF_FIB_LOOKUP_SKIP_NEIGH:
        mac = fib.neighbours.get((route.ifindex, next_hop))
        if mac is None:
            return FibResult.NO_NEIGH
        params[58:64] = mac
        params[52:58] = dev.mac if dev is not None else bytes(6)
    params[48:52] = bytes(4)  # h_vlan_proto, h_vlan_TCI
    if mtu:
        struct.pack_into("<H", params, 6, mtu)
    return FibResult.SUCCESS


_PROTO = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_MEM, A.ARG_CONST_SIZE,
                                     A.ARG_ANYTHING))


@register_helper(69, "fib_lookup", _PROTO,
                 prog_types={ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT})
def fib_lookup(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Look ``params`` up in the runtime's FIB; writes the answer into ``params``."""
    plen = r3 & M32
    plen = plen - (1 << 32) if plen >> 31 else plen
    flags = r4 & M32
    if plen < BPF_FIB_LOOKUP_SIZE or flags & ~_FLAGS:
        return neg(errno.EINVAL)
    params = bytearray(vm.memory.read(r2, BPF_FIB_LOOKUP_SIZE))
    if params[0] not in (AF_INET, AF_INET6):
        return neg(errno.EAFNOSUPPORT)
    fib = runtime_of(vm, "fib_lookup").fib
    is_xdp = getattr(vm.owner, "prog_type", None) == ProgType.XDP
    check_mtu = is_xdp or bool(struct.unpack_from("<H", params, 6)[0])
    rc = fib_lookup_params(vm, fib, params, flags, check_mtu)
    if rc == FibResult.SUCCESS and not check_mtu:
        # is_skb_forwardable against the egress device's MTU, which is reported.
        from ._util import skb_arg

        skb = skb_arg(vm, r1)
        ifindex, = struct.unpack_from("<I", params, 8)
        dev = fib.devices.get(ifindex)
        mtu = dev.mtu if dev is not None else 1500
        if skb.len > mtu + ETH_HLEN + VLAN_HLEN:
            rc = FibResult.FRAG_NEEDED
        struct.pack_into("<H", params, 6, mtu & 0xFFFF)
    vm.memory.write(r2, bytes(params))
    return neg(-rc) if rc < 0 else rc
