"""bpf_fib_lookup against a FIB a test sets up (the kernel's answers for the
host's own loopback-only lookups are compared in tests/kernel)."""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

import pytest

from pyebpf import ProgType
from pyebpf.fib import FibDevice, RouteType
from pyebpf.helpers.fib import FibResult

from . import packet_scenarios as S
from ._build import PyBackend

DST = bytes([10, 1, 2, 3])
SKIP_NEIGH, TBID, SRC, DIRECT = 4, 8, 16, 1


@pytest.fixture
def py() -> Iterator[PyBackend]:
    be = PyBackend()
    fib = be.rt.fib
    fib.forwarding[1] = True
    fib.devices[2] = FibDevice(mac="02:00:00:00:00:02", mtu=1500)
    fib.add_route("10.0.0.0/8", ifindex=2, gateway="192.168.1.1", metric=5)
    fib.add_neighbour(2, "192.168.1.1", "02:00:00:00:00:aa")
    yield be
    be.close()


def fields(params: bytes) -> dict[str, object]:
    return {"ifindex": struct.unpack_from("<I", params, 8)[0],
            "metric": struct.unpack_from("<I", params, 12)[0],
            "mtu": struct.unpack_from("<H", params, 6)[0],
            "src": params[16:20], "dst": params[32:36],
            "smac": params[52:58], "dmac": params[58:64]}


def test_lookup_gives_egress_device_next_hop_and_macs(py: PyBackend) -> None:
    rc, params = S.fib_lookup(py, S.fib_params(dst=DST), 0)
    assert rc == FibResult.SUCCESS
    assert fields(params) == {"ifindex": 2, "metric": 5, "mtu": 1500, "src": bytes(4),
                              "dst": bytes([192, 168, 1, 1]),
                              "smac": bytes.fromhex("020000000002"),
                              "dmac": bytes.fromhex("0200000000aa")}


def test_forwarding_off_on_the_input_device(py: PyBackend) -> None:
    py.rt.fib.forwarding[1] = False
    assert S.fib_lookup(py, S.fib_params(dst=DST), 0)[0] == FibResult.FWD_DISABLED


def test_no_neighbour_entry_unless_skipped(py: PyBackend) -> None:
    py.rt.fib.neighbours.clear()
    assert S.fib_lookup(py, S.fib_params(dst=DST), 0)[0] == FibResult.NO_NEIGH
    assert S.fib_lookup(py, S.fib_params(dst=DST), SKIP_NEIGH)[0] == FibResult.SUCCESS


def test_longest_prefix_wins(py: PyBackend) -> None:
    py.rt.fib.devices[3] = FibDevice(mac="02:00:00:00:00:03")
    py.rt.fib.add_route("10.1.0.0/16", ifindex=3)
    py.rt.fib.add_neighbour(3, "10.1.2.3", "02:00:00:00:00:bb")
    rc, params = S.fib_lookup(py, S.fib_params(dst=DST), 0)
    assert rc == 0 and fields(params)["ifindex"] == 3 and fields(params)["dst"] == DST


@pytest.mark.parametrize(("route_type", "rc"), [
    (RouteType.BLACKHOLE, FibResult.BLACKHOLE), (RouteType.UNREACHABLE, FibResult.UNREACHABLE),
    (RouteType.PROHIBIT, FibResult.PROHIBIT), (RouteType.LOCAL, FibResult.NOT_FWDED)])
def test_route_types(py: PyBackend, route_type: RouteType, rc: int) -> None:
    py.rt.fib.add_route("10.1.2.0/24", type=route_type)
    assert S.fib_lookup(py, S.fib_params(dst=DST), 0)[0] == rc


def test_no_route_is_not_forwarded(py: PyBackend) -> None:
    assert S.fib_lookup(py, S.fib_params(dst=bytes([8, 8, 8, 8])), 0)[0] == FibResult.NOT_FWDED


def test_xdp_checks_tot_len_against_the_mtu(py: PyBackend) -> None:
    rc, params = S.fib_lookup(py, S.fib_params(dst=DST, tot_len=1600), 0)
    assert rc == FibResult.FRAG_NEEDED and fields(params)["mtu"] == 1500


def test_tc_checks_the_packet_when_tot_len_is_zero(py: PyBackend) -> None:
    py.rt.fib.devices[2].mtu = 20  # smaller than the test packet
    rc, params = S.fib_lookup(py, S.fib_params(dst=DST), 0, prog_type=ProgType.SCHED_CLS)
    assert rc == FibResult.FRAG_NEEDED and fields(params)["mtu"] == 20


def test_direct_lookup_in_another_table(py: PyBackend) -> None:
    py.rt.fib.add_route("10.0.0.0/8", type=RouteType.BLACKHOLE, table=100)
    assert S.fib_lookup(py, S.fib_params(dst=DST, tbid=100), DIRECT | TBID)[0] == \
        FibResult.BLACKHOLE
    assert S.fib_lookup(py, S.fib_params(dst=DST, tbid=99), DIRECT | TBID)[0] == \
        FibResult.NOT_FWDED  # no such table


def test_src_flag_reports_the_preferred_source(py: PyBackend) -> None:
    py.rt.fib.routes.clear()
    py.rt.fib.add_route("10.0.0.0/8", ifindex=2, gateway="192.168.1.1", prefsrc="192.168.1.9")
    rc, params = S.fib_lookup(py, S.fib_params(dst=DST), SRC)
    assert rc == 0 and fields(params)["src"] == bytes([192, 168, 1, 9])


@pytest.mark.parametrize(("params", "flags", "plen", "rc"), [
    (S.fib_params(), 0, 60, -errno.EINVAL),
    (S.fib_params(), 64, 64, -errno.EINVAL),
    (S.fib_params(family=7), 0, 64, -errno.EAFNOSUPPORT),
    (S.fib_params(ifindex=999), 0, 64, -errno.ENODEV),
])
def test_bad_arguments(py: PyBackend, params: bytes, flags: int, plen: int, rc: int) -> None:
    assert S.fib_lookup(py, params, flags, plen)[0] == rc
