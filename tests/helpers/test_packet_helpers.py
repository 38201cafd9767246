"""Checksum and packet-changing helpers on pyebpf (the kernel's answers are
required to be the same in tests/kernel/test_packet_helpers_differential.py)."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyebpf import ProgType
from pyebpf.helpers.csum import csum_fold, csum_partial

from . import packet_scenarios as S
from ._build import PyBackend

ENOTSUPP = 524
ETH, IP_CSUM, IP_DST, UDP_CSUM = 14, 14 + 10, 14 + 16, 14 + 20 + 6


@pytest.fixture
def py() -> Iterator[PyBackend]:
    be = PyBackend()
    yield be
    be.close()


def ip_header_ok(packet: bytes) -> bool:
    return csum_fold(csum_partial(packet[ETH:ETH + 20], 0)) == 0


def udp_ok(packet: bytes) -> bool:
    ip, udp = packet[ETH:ETH + 20], packet[ETH + 20:]
    pseudo = ip[12:20] + b"\x00\x11" + len(udp).to_bytes(2, "big")
    return csum_fold(csum_partial(pseudo + udp, 0)) == 0


def rfc1071(data: bytes) -> int:
    """The folded ones'-complement sum of big-endian 16-bit words, in memory order."""
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int.from_bytes(total.to_bytes(2, "big"), "little")


@given(st.binary(min_size=4, max_size=64).filter(lambda b: len(b) % 4 == 0 and any(b)))
def test_csum_partial_is_the_internet_checksum_sum(data: bytes) -> None:
    folded = ~csum_fold(csum_partial(data, 0)) & 0xFFFF
    assert folded % 0xFFFF == rfc1071(data) % 0xFFFF


def test_csum_diff_rejects_sizes_not_multiple_of_four(py: PyBackend) -> None:
    assert S.csum_diff(py, [(b"abc", b"", 0)]) == [-errno.EINVAL]


def test_csum_diff_with_nothing_returns_the_seed(py: PyBackend) -> None:
    assert S.csum_diff(py, [(b"", b"", 0x1234)]) == [0x1234]


def test_l3_csum_replace_by_diff_keeps_the_ip_header_valid(py: PyBackend) -> None:
    new_dst = bytes([192, 168, 1, 1])
    pkt = S.ipv4_udp_packet()
    diff = S.csum_diff(py, [(pkt[IP_DST:IP_DST + 4], new_dst, 0)])[0]
    changed = pkt[:IP_DST] + new_dst + pkt[IP_DST + 4:]
    rc, out = S.csum_replace(py, 10, [(IP_CSUM, 0, diff, 0)], packet=changed)[0]
    assert rc == 0 and not ip_header_ok(changed) and ip_header_ok(out)


@pytest.mark.parametrize("size", [2, 4])
def test_l3_csum_replace_of_a_field_keeps_the_ip_header_valid(py: PyBackend, size: int) -> None:
    pkt = S.ipv4_udp_packet()
    # The TTL/protocol word (offset 8) as it lies in memory, and a new TTL of 1.
    old = int.from_bytes(pkt[ETH + 8:ETH + 8 + size], "little")
    new = (old & ~0xFF) | 1
    changed = pkt[:ETH + 8] + new.to_bytes(size, "little") + pkt[ETH + 8 + size:]
    rc, out = S.csum_replace(py, 10, [(IP_CSUM, old, new, size)], packet=changed)[0]
    assert rc == 0 and ip_header_ok(out)


def test_l4_csum_replace_pseudo_header_follows_an_address_change(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    old = int.from_bytes(pkt[IP_DST:IP_DST + 4], "little")
    new = int.from_bytes(bytes([172, 16, 0, 9]), "little")
    changed = pkt[:IP_DST] + new.to_bytes(4, "little") + pkt[IP_DST + 4:]
    rc, out = S.csum_replace(py, 11, [(UDP_CSUM, old, new, 4 | 0x10)], packet=changed)[0]
    assert rc == 0 and not udp_ok(changed) and udp_ok(out)


@pytest.mark.parametrize(("case", "rc"), [
    ((25, 1, 2, 2), -errno.EFAULT),        # odd offset
    ((0x10000, 1, 2, 2), -errno.EFAULT),   # offset above 0xffff
    ((2000, 1, 2, 2), -errno.EFAULT),      # past the packet
    ((24, 1, 2, 8), -errno.EINVAL),        # field size 8
    ((24, 1, 2, 0), -errno.EINVAL),        # by-diff with a non-zero from
    ((24, 1, 2, 0x20), -errno.EINVAL),     # l4 flag on l3
])
def test_l3_csum_replace_rejects(py: PyBackend, case: tuple[int, int, int, int], rc: int) -> None:
    got, out = S.csum_replace(py, 10, [case])[0]
    assert got == rc and out == S.ipv4_udp_packet()


def test_l4_csum_replace_mangled_zero_leaves_a_zero_checksum(py: PyBackend) -> None:
    pkt = bytearray(S.ipv4_udp_packet())
    pkt[UDP_CSUM:UDP_CSUM + 2] = b"\0\0"  # UDP over IPv4: no checksum
    rc, out = S.csum_replace(py, 11, [(UDP_CSUM, 1, 2, 0x20 | 2)], packet=bytes(pkt))[0]
    assert rc == 0 and out == bytes(pkt)


def test_csum_level_query_without_checksum_unnecessary_is_eacces(py: PyBackend) -> None:
    # One test run per call: a test-run skb starts as CHECKSUM_NONE each time.
    assert S.csum_level(py, [0, 1, 2, 3, 4]) == [-errno.EACCES, 0, 0, 0, -errno.EINVAL]


def test_csum_update_without_a_full_checksum_is_enotsupp(py: PyBackend) -> None:
    assert S.csum_update(py, [1]) == [-ENOTSUPP]


def test_store_bytes_writes_and_checks_flags_and_bounds(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    got = S.store_bytes(py, [(0, b"abcd", 0), (0, b"abcd", 4), (len(pkt) - 2, b"abcd", 0)])
    assert got[0] == (0, b"abcd" + pkt[4:])
    assert got[1] == (-errno.EINVAL, pkt)
    assert got[2] == (-errno.EFAULT, pkt)


def test_pull_data_past_the_packet_is_enomem(py: PyBackend) -> None:
    n = len(S.ipv4_udp_packet())
    assert S.pull_data(py, [0, n, n + 1]) == [0, 0, -errno.ENOMEM]


def test_change_tail_grows_zero_filled_and_shrinks(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    grown, shrunk, too_short, flags = S.change_tail(py, [(5000, 0), (20, 0), (13, 0), (20, 1)])
    assert grown == (0, pkt + bytes(5000 - len(pkt)))
    assert shrunk == (0, pkt[:20])
    assert too_short[0] == flags[0] == -errno.EINVAL  # below the network header / flags


def test_change_tail_above_skb_max_alloc_is_einval(py: PyBackend) -> None:
    assert [rc for rc, _ in S.change_tail(py, [(16064, 0), (16065, 0)])] == [0, -errno.EINVAL]


def test_change_head_pushes_zeroed_bytes_reallocating_when_needed(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    small, big = S.change_head(py, [(4, 0), (1000, 0)])
    assert small == (0, bytes(4) + pkt)
    assert big == (0, bytes(1000) + pkt)


def test_first_vlan_push_only_sets_the_offloaded_tag(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    tags, protos, out = S.vlan_ops(py, [(0x0081, 5)], pkt)
    assert (tags, out) == (5 | 1 << 16, pkt)
    assert protos >> 16 == 0x0081


def test_second_vlan_push_moves_the_first_tag_into_the_packet(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    tags, protos, out = S.vlan_ops(py, [(0x0081, 5), (0xA888, 6)], pkt)
    assert tags == 6 | 1 << 16
    assert out == pkt[:12] + b"\x81\x00\x00\x05" + pkt[12:]
    assert protos == 0x0081 | 0xA888 << 16  # skb->protocol is now 802.1Q


def test_vlan_pop_of_an_in_packet_tag(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    tagged = pkt[:12] + b"\x81\x00\x00\x05" + pkt[12:]
    tags, protos, out = S.vlan_ops(py, [None], tagged)
    assert (tags, out) == (0, pkt)
    assert protos & 0xFFFF == 0x0008  # ETH_P_IP as it lies in memory


@pytest.mark.parametrize(("ops", "failed", "length"), [
    ([(44, -216)], 0, 58 + 216),  # down to the xdp_frame at the buffer's head
    ([(44, -217)], 1, 58),
    ([(44, 44)], 0, 14),
    ([(44, 45)], 1, 58),          # less than an Ethernet header left
    ([(54, -4)], 0, 58),
    ([(54, -3)], 1, 58),          # metadata not in whole u32s: EACCES
    ([(54, -256)], 1, 58),        # more than a u8 of metadata
    ([(65, 100)], 0, 158),
    ([(65, -45)], 1, 58),
])
def test_xdp_adjust_bounds(py: PyBackend, ops: list[tuple[int, int]], failed: int,
                           length: int) -> None:
    got, _ = S.xdp_adjust(py, ops, S.ipv4_udp_packet())
    assert (got & 0xFF, got >> 8) == (failed, length)


def test_xdp_adjust_tail_growth_is_zero_filled(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    _, out = S.xdp_adjust(py, [(65, 10)], pkt)
    assert out == pkt + bytes(10)


def test_xdp_adjust_meta_then_head_moves_the_metadata(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    got, out = S.xdp_adjust(py, [(54, -8), (44, -4)], pkt)
    assert got == (62 << 8) and len(out) == 8 + 4 + len(pkt)


@pytest.mark.parametrize(("prog_type", "cases", "want"), [
    (ProgType.SCHED_CLS, [(1, 0), (1, 1), (1, 2)], [7, 7, 2]),  # REDIRECT, INGRESS, SHOT
    (ProgType.XDP, [(1, 0), (1, 1)], [4, 0]),                   # XDP_REDIRECT, ABORTED
])
def test_redirect_actions(py: PyBackend, prog_type: ProgType, cases: list[tuple[int, int]],
                          want: list[int]) -> None:
    assert S.redirect(py, prog_type, cases) == want


def test_skb_identity_queries(py: PyBackend) -> None:
    realm, uid, cgroup = S.skb_queries(py, [24, 47, 79])
    assert (realm, uid, cgroup) == (0, 0, py.rt.cgroup_id)


def test_socket_cookie_is_stable_per_socket_and_counts_up(py: PyBackend) -> None:
    first = S.skb_queries(py, [46])[0]
    second = S.skb_queries(py, [46])[0]  # a new test run: a new socket
    assert (first, second) == (1, 2)


def test_set_hash_is_what_get_hash_recalc_returns(py: PyBackend) -> None:
    assert S.hash_ops(py, 77, False) == 77


def test_get_hash_recalc_is_a_stable_nonzero_flow_hash(py: PyBackend) -> None:
    h = S.hash_ops(py, None, False)
    assert h != 0 and S.hash_ops(py, None, False) == h
    assert S.hash_ops(py, 77, True) == h  # invalidated: computed again


def test_skb_change_type_takes_host_to_otherhost(py: PyBackend) -> None:
    assert S.change_type(py, [0, 3, 4]) == [0, 0, -errno.EINVAL]


def test_skb_load_bytes_relative_from_mac_and_network_headers(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    mac, net, past, bad_start = S.load_bytes_relative(py, [(0, 8, 0), (0, 8, 1), (51, 8, 0),
                                                           (0, 4, 2)])
    assert mac == (0, pkt[0:8]) and net == (0, pkt[14:22])
    assert past == (-errno.EFAULT, bytes(8))  # cleared on error
    assert bad_start[0] == -errno.EFAULT


def test_xdp_load_and_store_bytes(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    (ok, out), (bad, _), (far, _) = S.xdp_bytes(py, 190, [(50, 8), (51, 8), (0x10000, 1)])
    assert (ok, out) == (0, pkt[:50] + b"A" * 8)
    assert (bad, far) == (-errno.EINVAL, -errno.EFAULT)
    assert S.skb_queries(py, [188], ProgType.XDP) == [len(pkt)]


def _key(remote: int, local: int, tun_id: int = 42, label: int = 0) -> bytes:
    import struct

    return struct.pack("<I16sBBHI16s", tun_id, remote.to_bytes(4, "little").ljust(16, b"\0"),
                       3, 64, 0, label, local.to_bytes(4, "little").ljust(16, b"\0"))


def test_get_tunnel_key_without_metadata_is_einval_and_zeroed(py: PyBackend) -> None:
    assert S.tunnel_key(py, None, [(44, 0)]) == [(-errno.EINVAL, bytes(44))]


def test_tunnel_key_read_back_swaps_remote_and_local(py: PyBackend) -> None:
    (rc, got), = S.tunnel_key(py, (_key(0x0A000001, 0x0A000002), 0), [(44, 0)])
    assert rc == 0
    assert got == _key(0x0A000002, 0x0A000001)


@pytest.mark.parametrize(("set_flags", "get", "rc"), [
    (0, (44, 1), -errno.EPROTO),   # IPv4 metadata read as IPv6
    (0, (30, 0), -errno.EINVAL),   # not one of the struct's sizes
    (0, (28, 0), 0),               # the layout before local_ipv4 existed
])
def test_get_tunnel_key_checks(py: PyBackend, set_flags: int, get: tuple[int, int],
                               rc: int) -> None:
    (got, _), = S.tunnel_key(py, (_key(1, 2), set_flags), [get])
    assert got == rc


def test_set_tunnel_key_rejects_a_label_on_ipv4(py: PyBackend) -> None:
    (rc, _), = S.tunnel_key(py, (_key(1, 2, label=1), 0), [(44, 0)])
    assert rc == 0x1000 - errno.EINVAL  # the set failed; the program added 0x1000


def test_tunnel_flags_report_csum_key_and_nocache(py: PyBackend) -> None:
    (rc, got), = S.tunnel_key(py, (_key(1, 2), 0), [(44, 16)])
    assert rc == 0 and got[22:24] == (0x2000 | 0x04 | 0x01).to_bytes(2, "big")


def test_clone_redirect_sends_a_copy_and_checks_device_and_flags(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    got = S.clone_redirect(py, [(1, 1), (99, 0), (1, 2)])
    assert [rc for rc, _ in got] == [0, -errno.EINVAL, -errno.EINVAL]
    assert got[0][1] == pkt  # the original goes on unchanged
    sent, = py.rt.transmitted
    assert (sent.ifindex, sent.ingress, sent.packet) == (1, True, pkt)


def test_adjust_room_mac_inserts_zeroed_room_after_the_mac_header(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    (rc, out), = S.adjust_room(py, [(8, 1, 0)])
    assert rc == 0 and out == pkt[:14] + bytes(8) + pkt[14:]


def test_adjust_room_net_removes_room_after_the_ip_header(py: PyBackend) -> None:
    pkt = S.ipv4_udp_packet()
    (rc, out), = S.adjust_room(py, [(-8, 0, 0)])
    assert rc == 0 and out == pkt[:34] + pkt[42:]


@pytest.mark.parametrize(("case", "rc"), [
    ((0x1000, 0, 0), -errno.EFAULT),   # more than 0xfff bytes
    ((8, 2, 0), -ENOTSUPP),            # unknown mode
    ((-30, 0, 0), -ENOTSUPP),          # would leave less than an IP header
    ((8, 0, 1 << 9), -errno.EINVAL),   # unknown flag
    ((20, 1, 6), -errno.EINVAL),       # encap as IPv4 and IPv6 at once
    ((8, 0, 128), -errno.EINVAL),      # decap flags on a grow
])
def test_adjust_room_rejects(py: PyBackend, case: tuple[int, int, int], rc: int) -> None:
    (got, out), = S.adjust_room(py, [case])
    assert got == rc and out == S.ipv4_udp_packet()


def test_adjust_room_encapsulates_once(py: PyBackend) -> None:
    assert S.adjust_room_then(py, (20, 1, 2), 50, [20, 1, 2])[0] == -errno.EALREADY
    assert S.adjust_room_then(py, (20, 1, 2), 38, [100, 0])[0] == -ENOTSUPP  # change_tail


@pytest.mark.parametrize(("prog_type", "takes_skb"), [
    (ProgType.SCHED_CLS, True), (ProgType.LWT_XMIT, True),
    (ProgType.SOCKET_FILTER, False), (ProgType.XDP, False)])
def test_get_cgroup_classid_takes_the_skb_only_in_tc_and_lwt(
        py: PyBackend, prog_type: ProgType, takes_skb: bool) -> None:
    assert S.cgroup_classid(py, prog_type, False) == 0
    with_null = S.cgroup_classid(py, prog_type, True)
    assert with_null == (f"errno {errno.EACCES}" if takes_skb else 0)


def test_get_listener_sock_of_a_closed_test_run_socket_is_null(py: PyBackend) -> None:
    assert S.listener_sock(py) == 1
