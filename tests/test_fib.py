"""The simulated FIB's route selection (pyebpf.fib)."""

from __future__ import annotations

import ipaddress

from pyebpf.fib import Fib, RouteType


def test_longest_prefix_then_lowest_metric() -> None:
    fib = Fib()
    wide = fib.add_route("10.0.0.0/8", ifindex=2)
    narrow_slow = fib.add_route("10.1.0.0/16", ifindex=3, metric=10)
    narrow_fast = fib.add_route("10.1.0.0/16", ifindex=4, metric=1)
    assert fib.lookup(ipaddress.ip_address("10.1.2.3")) is narrow_fast
    assert fib.lookup(ipaddress.ip_address("10.2.0.1")) is wide
    assert narrow_slow in fib.routes


def test_local_routes_come_first_in_a_full_lookup() -> None:
    fib = Fib()
    fib.add_route("10.1.2.0/24", ifindex=2)
    local = fib.add_route("10.0.0.0/8", type=RouteType.LOCAL)
    assert fib.lookup(ipaddress.ip_address("10.1.2.3")) is local
    assert fib.lookup(ipaddress.ip_address("10.1.2.3"), table=254).ifindex == 2


def test_families_do_not_mix() -> None:
    fib = Fib()
    fib.add_route("::/0", ifindex=2)
    assert fib.lookup(ipaddress.ip_address("10.0.0.1")) is None
    assert fib.lookup(ipaddress.ip_address("2001:db8::1")).ifindex == 2
