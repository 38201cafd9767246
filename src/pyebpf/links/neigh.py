"""Neighbour output for ``bpf_redirect_neigh`` (net/core/filter.c
__bpf_redirect_neigh, bpf_out_neigh_v4/v6).

A tc program that redirects with bpf_redirect_neigh leaves the L2 header to
the kernel: the Ethernet header is pulled, the next hop found (the address in
``struct bpf_redir_neigh`` when the program gave one, else the route's
gateway or the destination itself, from the runtime's FIB,
:class:`pyebpf.fib.Fib`), and the frame goes out of the target device with
the neighbour's MAC as destination and the device's as source.

What pyebpf does not simulate: neighbour resolution. The kernel creates an
unresolved entry, sends ARP / neighbour solicitations and queues the packet;
here a next hop without a neighbour entry (``fib.add_neighbour``) loses the
frame, as it would be lost if resolution failed.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING

from ..fib import RouteType

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .netdev import Netdev

__all__ = ["neigh_output"]

AF_INET, AF_INET6 = 2, 10
ETH_HLEN = 14
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
#: ip_route_output_flow / ip6_route_output accept these route types for the redirect.
_ROUTABLE = (RouteType.UNICAST, RouteType.LOCAL)


def _next_hop(rt: Runtime, proto: int, l3: bytes,
              nh: bytes | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The neighbour's address: bpf_nh_params' when given (nh_family AF_INET or
    AF_INET6, anything else drops), else rt_nexthop / rt6_nexthop of the route
    to the packet's destination (None: no route, or one of another type)."""
    if nh is not None:
        family, = struct.unpack_from("<I", nh, 0)
        if family == AF_INET:
            return ipaddress.IPv4Address(nh[4:8])
        if family == AF_INET6:
            return ipaddress.IPv6Address(nh[4:20])
        return None
    if proto == ETH_P_IP and len(l3) >= 20:
        daddr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(l3[16:20])
    elif proto == ETH_P_IPV6 and len(l3) >= 40:
        daddr = ipaddress.IPv6Address(l3[24:40])
    else:
        return None
    route = rt.fib.lookup(daddr)
    if route is None or route.type not in _ROUTABLE:
        return None
    return route.gateway or daddr


def neigh_output(rt: Runtime, dev: Netdev, frame: bytes, nh: bytes | None) -> bytes | None:
    """The frame __bpf_redirect_neigh sends out of ``dev``, or None where the
    kernel drops it: no L2 header, a multicast destination, neither IPv4 nor
    IPv6, no next hop, or no neighbour entry for it."""
    if len(frame) < ETH_HLEN or frame[0] & 1:  # is_multicast_ether_addr(h_dest)
        return None
    proto = int.from_bytes(frame[12:14], "big")
    if proto not in (ETH_P_IP, ETH_P_IPV6):
        return None
    l3 = frame[ETH_HLEN:]
    hop = _next_hop(rt, proto, l3, nh)
    if hop is None:
        return None
    mac = rt.fib.neighbours.get((dev.ifindex, hop))
    if mac is None:
        return None
    return mac + dev.dev_addr + proto.to_bytes(2, "big") + l3
