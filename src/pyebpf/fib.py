"""A forwarding table for ``bpf_fib_lookup``: routes, neighbours, forwarding.

An XDP or tc program that forwards packets asks the kernel's FIB where a
destination goes (``bpf_fib_lookup``): the egress device, the next hop's MAC
(from the neighbour table) and the device's own. A test sets up the answers
it wants on ``runtime.fib``::

    rt.fib.forwarding[1] = True                       # accept forwarding on ifindex 1
    rt.fib.add_route("10.0.0.0/8", ifindex=2, gateway="192.168.1.1")
    rt.fib.add_neighbour(2, "192.168.1.1", "02:00:00:00:00:01")
    rt.fib.devices[2] = FibDevice(mac="02:00:00:00:00:02", mtu=1500)

Routes are matched longest-prefix first, then by metric, per table (the
main table, 254, unless BPF_FIB_LOOKUP_DIRECT|TBID names another), as
``fib_table_lookup`` does.
"""

from __future__ import annotations

import enum
import ipaddress

import attrs

__all__ = ["Fib", "FibDevice", "Route", "RouteType"]

RT_TABLE_MAIN = 254
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RouteType(enum.IntEnum):
    """The RTN_* types a lookup can find (the ones bpf_fib_lookup tells apart)."""

    UNICAST = 1
    LOCAL = 2
    BLACKHOLE = 6
    UNREACHABLE = 7
    PROHIBIT = 8


@attrs.frozen
class Route:
    network: Network
    ifindex: int = 0
    gateway: Address | None = None
    type: RouteType = RouteType.UNICAST
    metric: int = 0
    table: int = RT_TABLE_MAIN
    #: The preferred source address (BPF_FIB_LOOKUP_SRC), None: none.
    prefsrc: Address | None = None
    #: The route's MTU metric (0: the device's).
    mtu: int = 0


@attrs.define
class FibDevice:
    """What a lookup reports about an egress device."""

    mac: bytes = bytes(6)
    mtu: int = 1500

    def __attrs_post_init__(self) -> None:
        if isinstance(self.mac, str):
            self.mac = bytes.fromhex(self.mac.replace(":", ""))


def _mac(mac: bytes | str) -> bytes:
    return bytes.fromhex(mac.replace(":", "")) if isinstance(mac, str) else bytes(mac)


@attrs.define
class Fib:
    """One network namespace's routing state, as bpf_fib_lookup consults it."""

    routes: list[Route] = attrs.Factory(list)
    #: (ifindex, next-hop address) -> MAC address (NUD_VALID entries).
    neighbours: dict[tuple[int, Address], bytes] = attrs.Factory(dict)
    #: ifindex -> net.ipv4/ipv6.conf.<dev>.forwarding (off unless set, as on a host).
    forwarding: dict[int, bool] = attrs.Factory(dict)
    #: ifindex -> MAC and MTU of the device (the loopback: no MAC, MTU 65536).
    devices: dict[int, FibDevice] = attrs.Factory(lambda: {1: FibDevice(bytes(6), 65536)})

    def add_route(self, network: str, *, ifindex: int = 0, gateway: str | None = None,
                  type: RouteType = RouteType.UNICAST, metric: int = 0,
                  table: int = RT_TABLE_MAIN, prefsrc: str | None = None, mtu: int = 0) -> Route:
        route = Route(ipaddress.ip_network(network), ifindex,
                      ipaddress.ip_address(gateway) if gateway else None, type, metric, table,
                      ipaddress.ip_address(prefsrc) if prefsrc else None, mtu)
        self.routes.append(route)
        return route

    def add_neighbour(self, ifindex: int, address: str, mac: bytes | str) -> None:
        self.neighbours[(ifindex, ipaddress.ip_address(address))] = _mac(mac)

    def lookup(self, dst: Address, table: int | None = None) -> Route | None:
        """The best matching route (any table when ``table`` is None: the
        local table first, then main, as the default rules order them)."""
        found = [r for r in self.routes
                 if r.network.version == dst.version and dst in r.network
                 and (table is None or r.table == table)]
        if not found:
            return None
        return max(found, key=lambda r: (r.type == RouteType.LOCAL and table is None,
                                         r.network.prefixlen, -r.metric))

    def tables(self) -> set[int]:
        return {RT_TABLE_MAIN} | {r.table for r in self.routes}
