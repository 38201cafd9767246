"""bpf_skb_change_proto, bpf_skb_ecn_set_ce, bpf_skb_set_tstamp and
bpf_skb_cgroup_classid: pyebpf and the kernel give the same returns and the
same packets (and __sk_buff fields) out (tests/helpers/skb_helper_scenarios.py)."""

from __future__ import annotations

import pytest

from helpers import skb_helper_scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from pyebpf import ProgType

from .harness import Pair, agree, backend_pair

pytestmark = pytest.mark.kernel
V4, V6 = S.ipv4_udp_packet(), S.ipv6_udp_packet()


pair = pytest.fixture(scope="module", name="pair")(backend_pair)


def test_change_proto(pair: Pair) -> None:
    agree(pair, S.change_proto, [(S.BE_IPV6, 0), (S.BE_IP, 0), (S.BE_IPV6, 1), (0x1234, 0),
                                (0x10000 | S.BE_IPV6, 0), (S.BE_IPV6, 1 << 63)], V4)
    agree(pair, S.change_proto, [(S.BE_IP, 0), (S.BE_IPV6, 0), (0, 0)], V6)
    agree(pair, S.change_proto, [(S.BE_IP, 0)], S.ipv6_udp_packet(b""))


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.SCHED_ACT,
                                       ProgType.CGROUP_SKB])
def test_ecn_set_ce(pair: Pair, prog_type: ProgType) -> None:
    packets = [S.ipv4_with_tos(t) for t in (0, 1, 2, 3, 0xFC, 0xFD, 0xFE, 0xFF, 0xB8, 0xBA)]
    packets += [S.ipv6_udp_packet(tclass=t) for t in (0, 1, 2, 3, 0xB8, 0xB9, 0xBA, 0xFF)]
    agree(pair, S.ecn_set_ce, packets, prog_type)


def test_ecn_set_ce_on_vlan_tagged_packets(pair: Pair) -> None:
    """skb_protocol(skb, true) looks under the tags, but the header marked is the
    one at the network header, i.e. where the tags begin, as in the kernel."""
    v4, v6 = S.ipv4_with_tos(1), S.ipv6_udp_packet(tclass=2)
    tag, qinq = b"\x81\x00\x00\x05", b"\x88\xa8\x00\x07\x81\x00\x00\x05"
    agree(pair, S.ecn_set_ce, [v4[:12] + tag + v4[12:], v4[:12] + qinq + v4[12:],
                              v6[:12] + tag + v6[12:], v4[:12] + tag + b"\x81\x00" + v4[16:],
                              v4[:12] + tag * 9 + v4[12:], v4[:12] + tag * 8 + v4[12:],
                              v4[:12] + tag * 7 + v4[12:]])


def test_set_tstamp(pair: Pair) -> None:
    cases = [(0, 0), (5, 0), (0, 1), (7, 1), (0, 2), (9, 2), (9, 3), (9, 1 << 32),
             ((1 << 64) - 1, 1), (1 << 40, 2), (9, 0xFFFF_FFFF)]
    agree(pair, S.set_tstamp, cases)
    agree(pair, S.set_tstamp, cases[:4], V6)
    agree(pair, S.set_tstamp, [(7, 1), (0, 0)], bytes(12) + b"\x12\x34" + bytes(40))


def test_cgroup_classid(pair: Pair) -> None:
    agree(pair, S.cgroup_classid)
    agree(pair, S.cgroup_classid, ProgType.SCHED_ACT)


OPT = bytes(range(1, 13))
TUNNEL_OPT_CASES = {
    "no key": (False, None, 0, 8), "key, no options": (True, None, 0, 8),
    "options without key": (False, OPT, 12, 16), "roundtrip": (True, OPT, 12, 16),
    "exact buffer": (True, OPT, 12, 12), "small buffer": (True, OPT, 12, 8),
    "not u32s": (True, OPT, 10, 16), "256 bytes": (True, bytes(256), 256, 8),
    "252 bytes": (True, bytes(range(252)), 252, 4), "253 bytes": (True, bytes(253), 253, 4),
    "one byte buffer": (True, OPT, 8, 1)}


@pytest.mark.parametrize("case", TUNNEL_OPT_CASES)
def test_tunnel_opt(pair: Pair, case: str) -> None:
    agree(pair, S.tunnel_opt, *TUNNEL_OPT_CASES[case])


def test_tunnel_options_show_in_the_tunnel_flags(pair: Pair) -> None:
    agree(pair, S.tunnel_key_flags, None)
    agree(pair, S.tunnel_key_flags, bytes(range(8)))
