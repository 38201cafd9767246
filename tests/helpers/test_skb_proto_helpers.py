"""bpf_skb_change_proto, bpf_skb_ecn_set_ce, bpf_skb_set_tstamp and
bpf_skb_cgroup_classid in test runs: returns, packets out and the __sk_buff
fields they set (the kernel's values: tests/kernel/test_skb_proto_differential.py)."""

from __future__ import annotations

import pytest

from helpers import skb_helper_scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from helpers._build import PyBackend
from pyebpf.helpers import func_proto
from pyebpf.uapi import ProgType

P = ProgType
V4, V6 = S.ipv4_udp_packet(), S.ipv6_udp_packet()
ENOTSUPP = 524


@pytest.mark.parametrize(("func_id", "types"), [
    (31, {P.SCHED_CLS, P.SCHED_ACT}), (97, {P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB}),
    (192, {P.SCHED_CLS, P.SCHED_ACT}), (151, {P.SCHED_CLS, P.SCHED_ACT})])
def test_offered_where_the_kernel_offers_them(func_id: int, types: set[int]) -> None:
    for prog_type in (P.SOCKET_FILTER, P.SCHED_CLS, P.SCHED_ACT, P.XDP, P.CGROUP_SKB,
                      P.LWT_XMIT, P.SK_SKB):
        assert (func_proto(func_id, prog_type) is not None) == (prog_type in types)


def test_change_proto_4_to_6_makes_20_zeroed_bytes_after_the_mac_header(py: PyBackend) -> None:
    (ret, out), = S.change_proto(py, [(S.BE_IPV6, 0)], V4)
    assert ret == 0
    assert out == V4[:14] + bytes(20) + V4[14:]


def test_change_proto_6_to_4_drops_20_bytes_after_the_mac_header(py: PyBackend) -> None:
    (ret, out), = S.change_proto(py, [(S.BE_IP, 0)], V6)
    assert ret == 0
    assert out == V6[:14] + V6[34:]


def test_change_proto_refuses_flags_and_other_changes(py: PyBackend) -> None:
    got = S.change_proto(py, [(S.BE_IPV6, 1), (S.BE_IP, 0), (0x1234, 0)], V4)
    assert [r for r, _ in got] == [-22, -ENOTSUPP, -ENOTSUPP]
    assert all(out == V4 for _, out in got)


def test_ecn_set_ce_marks_ect_ipv4_and_fixes_the_checksum(py: PyBackend) -> None:
    from pyebpf.helpers.csum import csum_fold, csum_partial

    got = S.ecn_set_ce(py, [S.ipv4_with_tos(t) for t in (0, 1, 2, 3)])
    assert [r for r, _ in got] == [0, 1, 1, 1]
    assert got[0][1] == S.ipv4_with_tos(0)  # not ECN-capable: untouched
    for _, out in got[1:]:
        assert out == S.ipv4_with_tos(3)
        assert csum_fold(csum_partial(out[14:34], 0)) == 0  # still a valid header


def test_ecn_set_ce_marks_ect_ipv6_traffic_class(py: PyBackend) -> None:
    got = S.ecn_set_ce(py, [S.ipv6_udp_packet(tclass=t) for t in (0xB8, 0xB9, 0xBB)])
    assert [r for r, _ in got] == [0, 1, 1]
    assert got[1][1] == got[2][1] == S.ipv6_udp_packet(tclass=0xBB)


def test_set_tstamp_sets_time_and_clock(py: PyBackend) -> None:
    assert S.set_tstamp(py, [(5, 0), (0, 0), (7, 1), (9, 2)]) == [
        (0, 5, 0), (0, 0, 0), (0, 7, 1), (0, 9, 2)]


def test_set_tstamp_refuses_zero_delivery_times_and_unknown_clocks(py: PyBackend) -> None:
    assert S.set_tstamp(py, [(0, 1), (0, 2), (9, 3)]) == [(-22, 0, 0)] * 3


def test_set_tstamp_is_only_for_ip_packets(py: PyBackend) -> None:
    assert S.set_tstamp(py, [(7, 1)], bytes(12) + b"\x12\x34" + bytes(40)) == [(-95, 0, 0)]


def test_cgroup_classid_is_the_sockets_creators(py: PyBackend) -> None:
    assert S.cgroup_classid(py) == 0
    py.rt.net_cls_classid = 0x10001
    assert S.cgroup_classid(py) == 0x10001


OPT = bytes(range(1, 13))


def test_tunnel_opt_roundtrip_pads_the_buffer(py: PyBackend) -> None:
    assert S.tunnel_opt(py, True, OPT, 12, 16) == (0, 12, OPT + bytes(4))


def test_tunnel_opt_needs_the_key_set_first(py: PyBackend) -> None:
    assert S.tunnel_opt(py, False, OPT, 12, 16) == (-22, -2, bytes(16))
    assert S.tunnel_opt(py, True, None, 0, 8) == (0, -2, bytes(8))  # no options: ENOENT


def test_tunnel_opt_sizes(py: PyBackend) -> None:
    assert S.tunnel_opt(py, True, OPT, 10, 4)[0] == -22  # not whole u32s
    assert S.tunnel_opt(py, True, bytes(256), 256, 4)[0] == -12  # over IP_TUNNEL_OPTS_MAX
    assert S.tunnel_opt(py, True, OPT, 12, 8) == (0, -12, bytes(8))  # buffer too small


@pytest.mark.parametrize("func_id", [29, 30])
def test_tunnel_opt_offered_to_tc_and_lwt_xmit(func_id: int) -> None:
    for prog_type in (P.SCHED_CLS, P.SCHED_ACT, P.LWT_XMIT):
        assert func_proto(func_id, prog_type) is not None
    for prog_type in (P.XDP, P.CGROUP_SKB, P.LWT_IN):
        assert func_proto(func_id, prog_type) is None


def test_tunnel_options_set_the_option_flags(py: PyBackend) -> None:
    without = S.tunnel_key_flags(py, None)
    with_opts = S.tunnel_key_flags(py, bytes(range(8)))
    # __be16 read little-endian: GENEVE|VXLAN|ERSPAN|GTP_OPT (0xd800) in the high byte
    assert with_opts == without | 0xD8


def test_ecn_set_ce_looks_under_vlan_tags_but_marks_at_the_network_header(
        py: PyBackend) -> None:
    v4 = S.ipv4_with_tos(1)
    tagged = v4[:12] + b"\x81\x00\x00\x05" + v4[12:]
    (ret, out), = S.ecn_set_ce(py, [tagged])
    # the inner type is IPv4, but the "header" changed is the one at the network
    # header, which starts with the tag's TCI: the kernel's (mis)behaviour
    assert ret == 1
    assert out[14:16] == b"\x00\x07" and out[18:] != tagged[18:]
    assert S.ecn_set_ce(py, [v4[:12] + b"\x81\x00\x00\x05" * 9 + v4[12:]])[0][0] == 0
