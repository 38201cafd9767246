"""Checksum and packet-changing helpers: pyebpf and the kernel give the same
return values and the same packets out (tests/helpers/packet_scenarios.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import packet_scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from pyebpf import ProgType

from .harness import Pair, agree, backend_pair

pytestmark = pytest.mark.kernel


pair = pytest.fixture(scope="module", name="pair")(backend_pair)


words = st.integers(0, 16).map(lambda n: n * 4).flatmap(lambda n: st.binary(min_size=n,
                                                                            max_size=n))
seeds = st.one_of(st.just(0), st.just(0xFFFF_FFFF), st.integers(0, (1 << 64) - 1))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(words, words, seeds), min_size=1, max_size=4))
def test_csum_diff(pair: Pair, cases: list[tuple[bytes, bytes, int]]) -> None:
    agree(pair, S.csum_diff, cases)


REPLACE_CASES = [(24, 0x1234, 0x4321, 2), (24, 0x01020304, 0x0A0B0C0D, 4), (24, 0, 0x1234, 0),
                 (24, 1, 2, 0), (25, 1, 2, 2), (24, 1, 2, 8), (24, 1, 2, 0x10), (2000, 1, 2, 2)]
L4_CASES = [(40, 0x1234, 0x4321, 2 | 0x10), (40, 0x01020304, 0x0A0B0C0D, 4 | 0x10),
            (40, 0, 0x1234, 0x10), (40, 1, 2, 0x20 | 2), (40, 1, 2, 0x60 | 2),
            (40, 1, 2, 0x80 | 2), (40, 1, 2, 0x100 | 2)]


@pytest.mark.parametrize("func_id", [10, 11])
def test_csum_replace(pair: Pair, func_id: int) -> None:
    agree(pair, S.csum_replace, func_id, REPLACE_CASES)


def test_l4_csum_replace_flags(pair: Pair) -> None:
    agree(pair, S.csum_replace, 11, L4_CASES)


def test_csum_level_and_update(pair: Pair) -> None:
    agree(pair, S.csum_level, [0, 1, 2, 3, 4])
    agree(pair, S.csum_update, [0, 1])


def test_store_and_pull(pair: Pair) -> None:
    agree(pair, S.store_bytes, [(0, b"abcd", 0), (10, b"x" * 8, 1), (10, b"x" * 8, 2),
                               (10, b"x" * 8, 4), (60, b"y" * 8, 0), (0x8000_0000, b"z", 0),
                               (46, b"q" * 8, 0)])
    agree(pair, S.pull_data, [0, 1, 58, 59, 100, 0xFFFF_FFFF])


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.LWT_XMIT])
def test_change_tail_and_head(pair: Pair, prog_type: ProgType) -> None:
    agree(pair, S.change_tail, [(58, 0), (100, 0), (10, 0), (14, 0), (13, 0), (0, 0), (5000, 0),
                               (16064, 0), (16065, 0), (20, 1)], prog_type)
    agree(pair, S.change_head, [(0, 0), (4, 0), (64, 0), (100, 0), (1000, 0), (16064, 0),
                               (4, 1)], prog_type)


_PKT = S.ipv4_udp_packet()
VLAN_PACKETS = {
    "plain": _PKT,
    "vlan": _PKT[:12] + b"\x81\x00\x00\x05" + _PKT[12:],
    "qinq": _PKT[:12] + b"\x88\xa8\x00\x07\x81\x00\x00\x05" + _PKT[12:],
}
VLAN_OPS = [[(0x0081, 5)], [(0x0081, 5), (0x0081, 6)], [(0x0081, 5), (0xA888, 6), (0x1234, 7)],
            [None], [(0x0081, 5), None], [(0x0081, 5), (0x0081, 6), None],
            [(0x0081, 5), (0x0081, 6), None, None]]


@pytest.mark.parametrize("packet", list(VLAN_PACKETS))
@pytest.mark.parametrize("ops", VLAN_OPS, ids=str)
def test_vlan_push_pop(pair: Pair, ops: list[Any], packet: str) -> None:
    agree(pair, S.vlan_ops, ops, VLAN_PACKETS[packet])


XDP_OPS = [[(44, -14)], [(44, 14)], [(44, -216)], [(44, -217)], [(44, 100)],
           [(54, -4), (44, -8)], [(54, -4)], [(54, -36)], [(54, -252)], [(54, -256)],
           [(54, -3)], [(54, 4)], [(65, 100)], [(65, -30)], [(65, -59)], [(65, 3400)],
           [(65, 3500)], [(54, -8), (44, 10), (65, -10)], [(54, -200), (44, -16)]]


@pytest.mark.parametrize("ops", XDP_OPS, ids=str)
def test_xdp_adjust(pair: Pair, ops: list[tuple[int, int]]) -> None:
    agree(pair, S.xdp_adjust, ops, _PKT)


def test_redirect(pair: Pair) -> None:
    agree(pair, S.redirect, ProgType.SCHED_CLS, [(1, 0), (1, 1), (1, 2), (99, 0)])
    agree(pair, S.redirect, ProgType.XDP, [(1, 0), (1, 1), (99, 0)])


def test_skb_queries(pair: Pair) -> None:
    agree(pair, S.skb_queries, [24, 47, 79])
    agree(pair, S.skb_queries, [47], ProgType.SOCKET_FILTER)
    agree(pair, S.skb_queries, [188], ProgType.XDP)


def test_set_hash_and_change_type(pair: Pair) -> None:
    agree(pair, S.hash_ops, 77, False)
    agree(pair, S.hash_ops, 0, False)
    agree(pair, S.change_type, [0, 1, 3, 4, 0xFFFF_FFFF])


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.SOCKET_FILTER])
def test_skb_load_bytes_relative(pair: Pair, prog_type: ProgType) -> None:
    agree(pair, S.load_bytes_relative, [(0, 8, 0), (0, 8, 1), (40, 8, 1), (50, 8, 0), (51, 8, 0),
                                       (0x10000, 4, 0), (0, 4, 2), (36, 8, 1), (37, 8, 1),
                                       (44, 8, 1), (45, 8, 1)], prog_type)


@pytest.mark.parametrize("func_id", [189, 190])
def test_xdp_load_store_bytes(pair: Pair, func_id: int) -> None:
    agree(pair, S.xdp_bytes, func_id, [(0, 8), (50, 8), (51, 8), (0x10000, 1)])


def _tunnel_key(remote: bytes, local: bytes, tun_id: int, label: int = 0) -> bytes:
    import struct

    return struct.pack("<I16sBBHI16s", tun_id, remote, 3, 64, 0, label, local)


_V4_KEY = _tunnel_key((0x0A000001).to_bytes(4, "little").ljust(16, b"\0"),
                      (0x0A000002).to_bytes(4, "little").ljust(16, b"\0"), 42)
_V6_KEY = _tunnel_key(bytes(range(16)), bytes(range(16, 32)), 7, 0xFFFFF5)
_GETS = [(44, 0), (44, 1), (44, 16), (28, 0), (24, 0), (22, 0), (8, 0), (12, 0), (44, 2)]


@pytest.mark.parametrize(("key", "flags"), [(None, 0), (_V4_KEY, 0), (_V4_KEY, 2), (_V4_KEY, 4),
                                            (_V4_KEY, 8), (_V4_KEY, 16), (_V4_KEY, 32),
                                            (_V6_KEY, 1), (_V6_KEY, 5), (_V4_KEY[:28], 0),
                                            (_V4_KEY[:30], 0)])
def test_tunnel_key(pair: Pair, key: bytes | None, flags: int) -> None:
    agree(pair, S.tunnel_key, None if key is None else (key, flags), _GETS)


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.LWT_XMIT])
def test_clone_redirect(pair: Pair, prog_type: ProgType) -> None:
    agree(pair, S.clone_redirect, [(1, 0), (1, 1), (99, 0), (1, 2), (1, 8)], prog_type)


ADJUST_ROOM_CASES = [
    (8, 0, 0), (8, 1, 0), (-8, 0, 0), (-8, 1, 0), (-24, 1, 0), (-4, 1, 0), (0x1000, 0, 0),
    (8, 2, 0), (20, 1, 2), (20, 1, 6), (28, 1, 2 | 16), (28, 1, 2 | 8 | 16),
    (34, 1, 2 | 64 | (14 << 56)), (34, 1, 2 | 64 | (10 << 56)), (20, 1, 4), (-20, 0, 0),
    (-20, 1, 128), (-20, 1, 256), (-20, 1, 384), (8, 0, 128), (8, 0, 32), (8, 0, 1),
    (200, 0, 0), (-10, 0, 1 << 9), (-30, 0, 0), (-31, 0, 0)]
_V6_PKT = bytes(12) + b"\x86\xdd" + bytes(40) + _PKT[34:]


@pytest.mark.parametrize("packet", [_PKT, _V6_PKT, bytes(12) + b"\x08\x06" + bytes(40)],
                         ids=["ipv4", "ipv6", "arp"])
def test_adjust_room(pair: Pair, packet: bytes) -> None:
    agree(pair, S.adjust_room, ADJUST_ROOM_CASES, packet)


@pytest.mark.parametrize(("func_id", "args"), [(50, [20, 1, 2]), (50, [8, 1, 0]),
                                               (38, [100, 0]), (50, [-20 & 0xFFFF_FFFF, 1, 0])])
def test_adjust_room_after_encap(pair: Pair, func_id: int, args: list[int]) -> None:
    agree(pair, S.adjust_room_then, (20, 1, 2), func_id, args)


@pytest.mark.parametrize("prog_type", [ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.XDP,
                                       ProgType.LWT_XMIT])
@pytest.mark.parametrize("r1_zero", [False, True])
def test_get_cgroup_classid(pair: Pair, prog_type: ProgType, r1_zero: bool) -> None:
    agree(pair, S.cgroup_classid, prog_type, r1_zero)


def test_get_listener_sock(pair: Pair) -> None:
    agree(pair, S.listener_sock)


_V6_DOC = bytes([0x20, 1, 0xD, 0xB8]) + bytes(11) + b"\1"


@pytest.mark.parametrize(("params", "flags", "plen"), [
    (S.fib_params(), 0, 64), (S.fib_params(family=10, dst=bytes(15) + b"\1"), 0, 64),
    (S.fib_params(family=10, dst=_V6_DOC), 0, 64),
    (S.fib_params(family=10, dst=bytes([0xFE, 0x80]) + bytes(13) + b"\1"), 0, 64),
    (S.fib_params(family=7), 0, 64), (S.fib_params(), 0, 60), (S.fib_params(), 64, 64),
    (S.fib_params(ifindex=999), 0, 64), (S.fib_params(family=10, ifindex=999), 0, 64),
    (S.fib_params(tbid=77), 9, 64)])
@pytest.mark.parametrize("prog_type", [ProgType.XDP, ProgType.SCHED_CLS])
def test_fib_lookup_on_the_loopback(pair: Pair, params: bytes, flags: int, plen: int,
                                    prog_type: ProgType) -> None:
    """The host's loopback doesn't forward (net.ipv4.conf.lo.forwarding is 0 on a
    host, and in a fresh runtime): both say FWD_DISABLED or fail the same way."""
    agree(pair, S.fib_lookup, params, flags, plen, prog_type)
