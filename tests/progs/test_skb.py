"""skb program types: struct __sk_buff access rules, the ctx rewrite, and
BPF_PROG_TEST_RUN as net/bpf/test_run.c bpf_prog_test_run_skb does it (Linux 6.18;
the kernel's own answers are in tests/kernel/test_skb_differential.py)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

import pyebpf.prog  # noqa: F401  (registers PROG_LOAD / PROG_TEST_RUN)
from pyebpf import AttachType, BpfError, BpfFault, Cmd, ProgType, Runtime, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.errors import ENOTSUPP
from pyebpf.isa.asm import asm
from pyebpf.progs import prog_type_ops
from pyebpf.progs.skb import (
    SK_BUFF,
    SK_BUFF_SIZE,
    skb_access,
    skb_access_ok,
    skb_ctx_layout,
    skb_from_ctx,
)

OFF = {f.name: f.offset for f in SK_BUFF.fields}
MAC_A = bytes.fromhex("020000000001")


def eth(dst: bytes = bytes(6), ethertype: int = 0x0800, payload: bytes = bytes(46)) -> bytes:
    return dst + MAC_A + ethertype.to_bytes(2, "big") + payload


def ipv4(src: str = "10.1.2.3", dst: str = "192.168.7.9", extra: bytes = bytes(26)) -> bytes:
    hdr = bytes.fromhex("4500002800000000400600 00".replace(" ", ""))
    return eth(payload=hdr + socket.inet_aton(src) + socket.inet_aton(dst) + extra)


def ipv6(src: bytes = bytes(range(16)), dst: bytes = bytes(range(100, 116))) -> bytes:
    return eth(ethertype=0x86DD, payload=bytes.fromhex("6000000000081140") + src + dst + bytes(8))


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime()
    runtime.verifier = "structural"  # these tests also run programs the verifier would reject
    return runtime


def load(rt: Runtime, prog_type: int, text: str, **kw: object) -> int:
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=prog_type, insns=asm(text), license="GPL",
                                           **kw), runtime=rt)


def run(rt: Runtime, fd: int, data: bytes, **kw: object):  # type: ignore[no-untyped-def]
    return bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=data, **kw), runtime=rt)


def read_field(rt: Runtime, prog_type: int, off: int, data: bytes, size: str = "w",
               **kw: object) -> int:
    fd = load(rt, prog_type, f"ldx{size} %r0, [%r1+{off}]\nexit")
    return run(rt, fd, data, **kw).retval


def ctx_with(**fields: int | bytes) -> bytes:
    ctx = bytearray(SK_BUFF_SIZE)
    for name, value in fields.items():
        f = SK_BUFF[name]
        ctx[f.offset:f.end] = value if isinstance(value, bytes) else value.to_bytes(f.size,
                                                                                   "little")
    return bytes(ctx)


def field(ctx: bytes, name: str) -> int:
    f = SK_BUFF[name]
    return int.from_bytes(ctx[f.offset:f.end], "little")


# -- where the program sees the packet --------------------------------------------------------

def test_socket_filter_sees_packet_from_network_header(rt: Runtime) -> None:
    pkt = bytes(range(1, 61))
    fd = load(rt, ProgType.SOCKET_FILTER, "ldabsb 0\nexit")
    assert run(rt, fd, pkt).retval == pkt[14]
    fd = load(rt, ProgType.SOCKET_FILTER, "ldabsw 42\nexit")
    assert run(rt, fd, pkt).retval == int.from_bytes(pkt[56:60], "big")
    fd = load(rt, ProgType.SOCKET_FILTER, "ldabsw 43\nexit")
    assert run(rt, fd, pkt).retval == 0  # past the end: r0 = 0, the program ends


def test_skb_len_excludes_ethernet_header_for_socket_filter(rt: Runtime) -> None:
    assert read_field(rt, ProgType.SOCKET_FILTER, OFF["len"], bytes(60)) == 46
    assert read_field(rt, ProgType.CGROUP_SKB, OFF["len"], ipv4()) == 46
    assert read_field(rt, ProgType.LWT_IN, OFF["len"], bytes(60)) == 46


def test_sched_cls_sees_ethernet_header(rt: Runtime) -> None:
    pkt = bytes(range(1, 61))
    assert read_field(rt, ProgType.SCHED_CLS, OFF["len"], pkt) == 60
    assert read_field(rt, ProgType.SCHED_ACT, OFF["len"], pkt) == 60
    fd = load(rt, ProgType.SCHED_CLS, "ldabsh 12\nexit")
    assert run(rt, fd, pkt).retval == int.from_bytes(pkt[12:14], "big")


@pytest.mark.parametrize(("prog_type", "headlen"), [
    (ProgType.SCHED_CLS, 60), (ProgType.SCHED_ACT, 60), (ProgType.CGROUP_SKB, 46),
    (ProgType.LWT_IN, 46), (ProgType.LWT_OUT, 46), (ProgType.LWT_XMIT, 46)])
def test_data_end_minus_data_is_the_linear_length(rt: Runtime, prog_type: ProgType,
                                                  headlen: int) -> None:
    fd = load(rt, prog_type, f"""
        ldxw %r2, [%r1+{OFF['data']}]
        ldxw %r3, [%r1+{OFF['data_end']}]
        sub %r3, %r2
        mov %r0, %r3
        exit""")
    assert run(rt, fd, ipv4()).retval == headlen


def test_tc_data_meta_is_data_without_metadata(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, f"""
        ldxw %r2, [%r1+{OFF['data']}]
        ldxw %r3, [%r1+{OFF['data_meta']}]
        sub %r2, %r3
        mov %r0, %r2
        exit""")
    assert run(rt, fd, ipv4()).retval == 0


def test_l3_data_out_gets_zeroed_ethernet_header(rt: Runtime) -> None:
    pkt = bytes(range(1, 61))
    for prog_type in (ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB, ProgType.LWT_XMIT):
        r = run(rt, load(rt, prog_type, "mov %r0, 1\nexit"), pkt)
        assert r.data_out == bytes(14) + pkt[14:]
        assert r.data_size_out == 60


def test_l2_data_out_is_the_packet_the_program_left(rt: Runtime) -> None:
    pkt = bytes(range(1, 61))
    fd = load(rt, ProgType.SCHED_CLS, f"""
        ldxw %r2, [%r1+{OFF['data']}]
        mov %r3, 0xaa
        stxb [%r2+0], %r3
        ldabsb 0
        exit""")
    r = run(rt, fd, pkt)
    assert r.data_out == b"\xaa" + pkt[1:]
    assert r.retval == 0xAA  # LD_ABS reads the live packet


def test_lwt_xmit_packet_writes_show_after_the_zeroed_ethernet_header(rt: Runtime) -> None:
    pkt = bytes(range(1, 61))
    fd = load(rt, ProgType.LWT_XMIT, f"""
        ldxw %r2, [%r1+{OFF['data']}]
        mov %r3, 0xbb
        stxb [%r2+0], %r3
        mov %r0, 0
        exit""")
    assert run(rt, fd, pkt).data_out == bytes(14) + b"\xbb" + pkt[15:]


# -- eth_type_trans on the loopback device ----------------------------------------------------

@pytest.mark.parametrize(("dst", "pkt_type"), [
    ("000000000000", 0),   # the loopback address: PACKET_HOST
    ("ffffffffffff", 2),   # lo's broadcast address is all zeros: MULTICAST, not BROADCAST
    ("01005e000001", 2),   # multicast bit: PACKET_MULTICAST
    ("020000000000", 3),   # anyone else: PACKET_OTHERHOST
])
def test_pkt_type_from_destination_mac_on_loopback(rt: Runtime, dst: str, pkt_type: int) -> None:
    for prog_type in (ProgType.SCHED_CLS, ProgType.SOCKET_FILTER):
        got = read_field(rt, prog_type, OFF["pkt_type"], eth(bytes.fromhex(dst)))
        assert got == pkt_type


@pytest.mark.parametrize(("ethertype", "payload", "protocol"), [
    (0x0800, bytes(46), 0x0008),
    (0x86DD, bytes(46), 0xDD86),
    (0x0600, bytes(46), 0x0006),           # ETH_P_802_3_MIN and above: the ethertype
    (0x05FF, bytes(46), 0x0400),           # a length: 802.2 LLC
    (0x0010, b"\xff\xff" + bytes(44), 0x0100),  # raw 802.3 (Novell): ETH_P_802_3
    (0x0010, b"", 0x0400),                 # no payload to look at: 802.2
    (0x8100, bytes(46), 0x0081),           # VLAN tags are not taken apart
])
def test_protocol_from_ethertype(rt: Runtime, ethertype: int, payload: bytes,
                                 protocol: int) -> None:
    got = read_field(rt, ProgType.SCHED_CLS, OFF["protocol"], eth(ethertype=ethertype,
                                                                  payload=payload))
    assert got == protocol


def test_short_ipv4_and_ipv6_packets_are_einval(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    with pytest.raises(BpfError) as e:
        run(rt, fd, eth(ethertype=0x0800, payload=bytes(19)))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(BpfError) as e:
        run(rt, fd, eth(ethertype=0x86DD, payload=bytes(39)))
    assert e.value.errno == errno.EINVAL
    run(rt, fd, eth(ethertype=0x0800, payload=bytes(20)))
    run(rt, fd, eth(ethertype=0x86DD, payload=bytes(40)))
    run(rt, fd, eth(ethertype=0x0806, payload=b""))  # other protocols: any length


# -- the socket bpf_prog_test_run_skb makes ---------------------------------------------------

def test_cgroup_skb_sees_socket_addresses_from_ip_header(rt: Runtime) -> None:
    def sk_field(name: str, data: bytes, word: int = 0) -> int:
        fd = load(rt, ProgType.CGROUP_SKB, f"""
            ldxw %r2, [%r1+{OFF[name] + 4 * word}]
            stxw [%r1+{OFF['cb']}], %r2
            mov %r0, 1
            exit""")
        return field(run(rt, fd, data, ctx_out=bytearray(SK_BUFF_SIZE),
                         ctx_size_out=SK_BUFF_SIZE).ctx_out, "cb")

    v4 = ipv4("10.1.2.3", "192.168.7.9")
    assert sk_field("family", v4) == socket.AF_INET
    assert sk_field("local_ip4", v4) == int.from_bytes(socket.inet_aton("10.1.2.3"), "little")
    assert sk_field("remote_ip4", v4) == int.from_bytes(socket.inet_aton("192.168.7.9"), "little")
    assert sk_field("remote_ip6", v4) == 0
    v6 = ipv6(bytes(range(16)), bytes(range(100, 116)))
    assert sk_field("family", v6) == socket.AF_INET6
    assert sk_field("local_ip6", v6, 1) == int.from_bytes(bytes(range(4, 8)), "little")
    assert sk_field("remote_ip6", v6, 3) == int.from_bytes(bytes(range(112, 116)), "little")
    assert sk_field("local_ip4", v6) == 0
    assert sk_field("remote_port", v4) == 0 and sk_field("local_port", v4) == 0
    assert sk_field("family", eth(ethertype=0x0806)) == 0


def test_skb_sk_points_at_a_bpf_sock_view(rt: Runtime) -> None:
    fd = load(rt, ProgType.CGROUP_SKB, f"""
        ldxdw %r2, [%r1+{OFF['sk']}]
        jeq %r2, 0, +6
        ldxw %r3, [%r2+4]
        stxw [%r1+{OFF['cb']}], %r3
        ldxw %r3, [%r2+72]
        stxw [%r1+{OFF['cb'] + 4}], %r3
        ldxw %r3, [%r2+76]
        stxw [%r1+{OFF['cb'] + 8}], %r3
        mov %r0, 1
        exit""")
    cb = run(rt, fd, ipv4(), ctx_out=bytearray(SK_BUFF_SIZE),
             ctx_size_out=SK_BUFF_SIZE).ctx_out[48:60]
    assert struct.unpack("<IIi", cb) == (socket.AF_INET, 7, -1)  # TCP_CLOSE, no rx queue


# -- ctx_in / ctx_out ---------------------------------------------------------------------------

def test_sched_cls_can_write_mark_and_ctx_out_reports_it(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, f"""
        mov %r2, 0x1234
        stxw [%r1+{OFF['mark']}], %r2
        mov %r0, 0
        exit""")
    r = run(rt, fd, ipv4(), ctx_in=ctx_with(mark=7), ctx_out=bytearray(SK_BUFF_SIZE),
            ctx_size_out=SK_BUFF_SIZE)
    assert field(r.ctx_out, "mark") == 0x1234
    assert r.ctx_size_out == SK_BUFF_SIZE


def test_ctx_out_reports_only_what_convert_skb_to___skb_writes(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, f"""
        mov %r2, 0x11223344
        stxw [%r1+{OFF['tc_index']}], %r2
        stxw [%r1+{OFF['tc_classid']}], %r2
        stxw [%r1+{OFF['priority']}], %r2
        stxdw [%r1+{OFF['tstamp']}], %r2
        ldxw %r0, [%r1+{OFF['tc_classid']}]
        exit""")
    r = run(rt, fd, ipv4(), ctx_out=bytearray(SK_BUFF_SIZE), ctx_size_out=SK_BUFF_SIZE)
    assert r.retval == 0x3344  # tc_classid is a u16 in qdisc_skb_cb
    out = r.ctx_out
    assert field(out, "priority") == 0x11223344 and field(out, "tstamp") == 0x11223344
    assert field(out, "tc_index") == 0 and field(out, "tc_classid") == 0
    assert field(out, "ifindex") == 1 and field(out, "wire_len") == len(ipv4())


def test_ctx_in_allowed_fields_are_applied_and_reported(rt: Runtime) -> None:
    cb = bytes(range(1, 21))
    ctx = ctx_with(mark=0xDEADBEEF, priority=7, ingress_ifindex=99, ifindex=1, cb=cb,
                   tstamp=0x1122334455667788, wire_len=100, gso_segs=5, gso_size=0x12345678,
                   hwtstamp=0xAABBCCDD11223344)
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    r = run(rt, fd, ipv4(), ctx_in=ctx, ctx_out=bytearray(SK_BUFF_SIZE),
            ctx_size_out=SK_BUFF_SIZE)
    assert r.ctx_out == ctx  # gso_size comes back as given, not as the u16 the skb keeps
    assert read_field(rt, ProgType.SCHED_CLS, OFF["gso_size"], ipv4(), ctx_in=ctx) == 0x5678
    assert read_field(rt, ProgType.SCHED_CLS, OFF["ingress_ifindex"], ipv4(), ctx_in=ctx) == 99
    assert read_field(rt, ProgType.SOCKET_FILTER, OFF["cb"] + 4, ipv4(), ctx_in=ctx) == \
        int.from_bytes(cb[4:8], "little")
    # retval is r0's low 32 bits
    assert read_field(rt, ProgType.SCHED_CLS, OFF["hwtstamp"], ipv4(), "dw", ctx_in=ctx) == \
        0x11223344


@pytest.mark.parametrize("name", ["len", "pkt_type", "queue_mapping", "protocol",
                                  "vlan_present", "vlan_tci", "tc_index", "hash", "tc_classid",
                                  "data", "data_end", "napi_id", "family", "remote_port",
                                  "data_meta", "flow_keys", "sk", "tstamp_type"])
def test_ctx_in_with_nonzero_field_is_einval(rt: Runtime, name: str) -> None:
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    with pytest.raises(BpfError) as e:
        run(rt, fd, ipv4(), ctx_in=ctx_with(**{name: 1}))
    assert e.value.errno == errno.EINVAL


def test_ctx_in_with_nonzero_len_is_einval(rt: Runtime) -> None:
    fd = load(rt, ProgType.SOCKET_FILTER, "mov %r0, 0\nexit")
    with pytest.raises(BpfError) as e:
        run(rt, fd, ipv4(), ctx_in=ctx_with(len=60))
    assert e.value.errno == errno.EINVAL


def test_ctx_in_wire_len_must_cover_the_packet_and_fit_64k(rt: Runtime) -> None:
    tc = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    sf = load(rt, ProgType.SOCKET_FILTER, "mov %r0, 0\nexit")
    pkt = bytes(60)
    for fd, ok, bad in ((tc, 60, 59), (sf, 46, 45)):
        run(rt, fd, pkt, ctx_in=ctx_with(wire_len=ok))
        run(rt, fd, pkt, ctx_in=ctx_with(wire_len=65536))
        for wire_len in (bad, 65537):
            with pytest.raises(BpfError) as e:
                run(rt, fd, pkt, ctx_in=ctx_with(wire_len=wire_len))
            assert e.value.errno == errno.EINVAL


def test_wire_len_is_skb_len_with_a_ctx_and_zero_without(rt: Runtime) -> None:
    assert read_field(rt, ProgType.SCHED_CLS, OFF["wire_len"], bytes(60)) == 0
    assert read_field(rt, ProgType.SCHED_CLS, OFF["wire_len"], bytes(60),
                      ctx_out=bytearray(SK_BUFF_SIZE), ctx_size_out=SK_BUFF_SIZE) == 60
    r = run(rt, load(rt, ProgType.SOCKET_FILTER, "mov %r0, 0\nexit"), bytes(60),
            ctx_out=bytearray(SK_BUFF_SIZE), ctx_size_out=SK_BUFF_SIZE)
    assert field(r.ctx_out, "wire_len") == 46


def test_gso_segs_above_max_is_einval(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    run(rt, fd, bytes(60), ctx_in=ctx_with(gso_segs=65535))
    with pytest.raises(BpfError) as e:
        run(rt, fd, bytes(60), ctx_in=ctx_with(gso_segs=65536))
    assert e.value.errno == errno.EINVAL


def test_ctx_in_ifindex_other_than_loopback_is_enodev(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    run(rt, fd, bytes(60), ctx_in=ctx_with(ifindex=1))
    with pytest.raises(BpfError) as e:
        run(rt, fd, bytes(60), ctx_in=ctx_with(ifindex=99))
    assert e.value.errno == errno.ENODEV
    # The device is looked up before the ctx fields are checked.
    with pytest.raises(BpfError) as e:
        run(rt, fd, bytes(60), ctx_in=ctx_with(ifindex=99, len=1))
    assert e.value.errno == errno.ENODEV


def test_ctx_in_nonzero_past_the_struct_is_e2big(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    run(rt, fd, bytes(60), ctx_in=bytes(200))
    with pytest.raises(BpfError) as e:
        run(rt, fd, bytes(60), ctx_in=bytes(199) + b"\x01")
    assert e.value.errno == errno.E2BIG


def test_data_size_out_too_small_is_enospc_with_full_size(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 3\nexit")
    ctx_out = bytearray(SK_BUFF_SIZE)
    with pytest.raises(BpfError) as e:
        run(rt, fd, bytes(range(60)), data_size_out=10, ctx_out=ctx_out,
            ctx_size_out=SK_BUFF_SIZE)
    assert e.value.errno == errno.ENOSPC
    result = e.value.result  # type: ignore[attr-defined]
    assert result.data_out == bytes(range(10))
    assert result.data_size_out == 60 and result.retval == 3
    assert ctx_out == bytes(SK_BUFF_SIZE)  # bpf_ctx_finish never ran


def test_ctx_size_out_too_small_is_enospc(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    with pytest.raises(BpfError) as e:
        run(rt, fd, bytes(60), ctx_out=bytearray(100), ctx_size_out=100)
    assert e.value.errno == errno.ENOSPC


@pytest.mark.parametrize(("size", "ok"), [(13, False), (14, True), (3712, True), (3713, False)])
def test_packet_size_limits(rt: Runtime, size: int, ok: bool) -> None:
    fd = load(rt, ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    if ok:
        assert run(rt, fd, bytes(size)).data_size_out == size
    else:
        with pytest.raises(BpfError) as e:
            run(rt, fd, bytes(size))
        assert e.value.errno == errno.EINVAL


@pytest.mark.parametrize("kw", [{"flags": 1}, {"cpu": 1}, {"batch_size": 1}])
def test_flags_cpu_and_batch_size_are_einval(rt: Runtime, kw: dict[str, int]) -> None:
    fd = load(rt, ProgType.SOCKET_FILTER, "mov %r0, 0\nexit")
    with pytest.raises(BpfError) as e:
        run(rt, fd, bytes(60), **kw)
    assert e.value.errno == errno.EINVAL


def test_repeat_runs_on_the_same_skb(rt: Runtime) -> None:
    fd = load(rt, ProgType.SCHED_CLS, f"""
        ldxw %r2, [%r1+{OFF['mark']}]
        add %r2, 1
        stxw [%r1+{OFF['mark']}], %r2
        mov %r0, %r2
        exit""")
    r = run(rt, fd, bytes(60), repeat=5, ctx_out=bytearray(SK_BUFF_SIZE),
            ctx_size_out=SK_BUFF_SIZE)
    assert r.retval == 5 and field(r.ctx_out, "mark") == 5


def test_queue_mapping_write_of_ffff_or_more_is_ignored(rt: Runtime) -> None:
    def after(value: int) -> int:
        fd = load(rt, ProgType.SCHED_CLS, f"""
            mov %r2, 3
            stxw [%r1+{OFF['queue_mapping']}], %r2
            mov %r2, {value}
            stxw [%r1+{OFF['queue_mapping']}], %r2
            ldxw %r0, [%r1+{OFF['queue_mapping']}]
            exit""")
        return run(rt, fd, bytes(60)).retval

    assert after(0xFFFE) == 0xFFFE
    assert after(0xFFFF) == 3
    assert after(0x1FFFE) == 3


def test_narrow_loads_read_the_bytes_of_the_field(rt: Runtime) -> None:
    assert read_field(rt, ProgType.SCHED_CLS, OFF["len"] + 1, bytes(300), "b") == 300 >> 8
    assert read_field(rt, ProgType.SCHED_CLS, OFF["protocol"], eth(), "h") == 0x0008
    assert read_field(rt, ProgType.SCHED_CLS, OFF["protocol"] + 2, eth(), "h") == 0


# -- program types ------------------------------------------------------------------------------

def test_cgroup_skb_expected_attach_type_must_be_ingress_or_egress(rt: Runtime) -> None:
    for eat in (AttachType.CGROUP_INET_INGRESS, AttachType.CGROUP_INET_EGRESS):
        load(rt, ProgType.CGROUP_SKB, "mov %r0, 1\nexit", expected_attach_type=eat)
    with pytest.raises(BpfError) as e:
        load(rt, ProgType.CGROUP_SKB, "mov %r0, 1\nexit", expected_attach_type=2)
    assert e.value.errno == errno.EINVAL
    load(rt, ProgType.SCHED_CLS, "mov %r0, 1\nexit", expected_attach_type=2)  # not checked


@pytest.mark.parametrize("prog_type", [ProgType.LWT_SEG6LOCAL, ProgType.SK_SKB])
def test_types_without_a_test_run_are_enotsupp(rt: Runtime, prog_type: ProgType) -> None:
    fd = load(rt, prog_type, "mov %r0, 0\nexit")
    with pytest.raises(BpfError) as e:
        run(rt, fd, bytes(60))
    assert e.value.errno == ENOTSUPP


def test_every_skb_type_has_the___sk_buff_ctx() -> None:
    for t in (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT,
              ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT,
              ProgType.LWT_SEG6LOCAL, ProgType.SK_SKB):
        ops = prog_type_ops(t)
        assert ops is not None and ops.ctx is not None
        assert ops.ctx.name == "__sk_buff" and ops.ctx.size == 192


# -- the access rules ---------------------------------------------------------------------------

@pytest.mark.parametrize(("prog_type", "name", "size", "write", "ok"), [
    (ProgType.SOCKET_FILTER, "data", 4, False, False),
    (ProgType.SOCKET_FILTER, "len", 4, False, True),
    (ProgType.SOCKET_FILTER, "len", 1, False, True),     # narrow loads
    (ProgType.SOCKET_FILTER, "len", 8, False, False),
    (ProgType.SOCKET_FILTER, "mark", 4, True, False),
    (ProgType.SOCKET_FILTER, "cb", 8, True, True),
    (ProgType.SOCKET_FILTER, "family", 4, False, False),
    (ProgType.SOCKET_FILTER, "sk", 8, False, True),
    (ProgType.SCHED_CLS, "tc_classid", 4, True, True),
    (ProgType.SCHED_CLS, "queue_mapping", 4, True, True),
    (ProgType.SCHED_CLS, "queue_mapping", 2, True, False),  # writes are u32 only
    (ProgType.SCHED_CLS, "family", 4, False, False),
    (ProgType.SCHED_CLS, "tstamp_type", 1, False, True),
    (ProgType.SCHED_CLS, "tstamp_type", 4, False, False),
    (ProgType.SCHED_CLS, "tstamp", 8, True, True),
    (ProgType.SCHED_CLS, "tstamp", 4, False, False),
    (ProgType.SCHED_CLS, "hwtstamp", 8, False, True),
    (ProgType.SCHED_CLS, "hwtstamp", 8, True, False),
    (ProgType.SCHED_CLS, "data_meta", 4, False, True),
    (ProgType.SCHED_CLS, "flow_keys", 8, False, False),
    (ProgType.CGROUP_SKB, "data", 4, False, True),
    (ProgType.CGROUP_SKB, "data_meta", 4, False, False),
    (ProgType.CGROUP_SKB, "mark", 4, True, True),
    (ProgType.CGROUP_SKB, "family", 4, False, True),
    (ProgType.LWT_XMIT, "tstamp", 8, False, False),
    (ProgType.LWT_IN, "priority", 4, True, True),
    (ProgType.SK_SKB, "mark", 4, False, False),
    (ProgType.SK_SKB, "tc_index", 4, True, True),
    (ProgType.SK_SKB, "cb", 4, True, False),
    (ProgType.FLOW_DISSECTOR, "flow_keys", 8, False, True),
    (ProgType.FLOW_DISSECTOR, "len", 4, False, False),
])
def test_skb_access_ok_follows_the_kernel_rules(prog_type: ProgType, name: str, size: int,
                                                write: bool, ok: bool) -> None:
    assert skb_access_ok(prog_type, OFF[name], size, write) is ok


def test_cb_accesses_must_stay_inside_cb() -> None:
    assert skb_access_ok(ProgType.SOCKET_FILTER, OFF["cb"], 8, False)
    assert skb_access_ok(ProgType.SOCKET_FILTER, OFF["cb"] + 19, 1, True)
    assert not skb_access_ok(ProgType.SOCKET_FILTER, OFF["cb"] + 16, 8, False)
    assert not skb_access_ok(ProgType.SOCKET_FILTER, OFF["cb"] + 2, 4, False)  # misaligned


def test_cgroup_skb_packet_pointers_need_bpf_capable() -> None:
    assert skb_access_ok(ProgType.CGROUP_SKB, OFF["data"], 4, False, capable=True)
    assert not skb_access_ok(ProgType.CGROUP_SKB, OFF["data"], 4, False, capable=False)
    assert not skb_access_ok(ProgType.CGROUP_SKB, OFF["tstamp"], 8, True, capable=False)


def test_skb_access_says_what_a_load_yields() -> None:
    assert skb_access(ProgType.SCHED_CLS, OFF["data"], 4, False).reg_type == "pkt"
    assert skb_access(ProgType.SCHED_CLS, OFF["data_end"], 4, False).reg_type == "pkt_end"
    assert skb_access(ProgType.SCHED_CLS, OFF["data_meta"], 4, False).reg_type == "pkt_meta"
    assert skb_access(ProgType.CGROUP_SKB, OFF["sk"], 8, False).reg_type == \
        "sock_common_or_null"
    got = skb_access(ProgType.SCHED_CLS, OFF["mark"], 2, False)
    assert got.reg_type is None and got.field_size == 4


def test_ctx_layout_per_type_marks_readable_and_writable_fields() -> None:
    sf = skb_ctx_layout(ProgType.SOCKET_FILTER)
    assert not sf["data"].readable and sf["cb"].writable and not sf["mark"].writable
    tc = skb_ctx_layout(ProgType.SCHED_CLS)
    assert tc["data"].readable and tc["data"].pointer and tc["tc_classid"].writable
    assert not tc["family"].readable


def test_unverified_forbidden_ctx_access_faults_at_run_time(rt: Runtime) -> None:
    fd = load(rt, ProgType.SOCKET_FILTER, f"ldxw %r0, [%r1+{OFF['data']}]\nexit")
    with pytest.raises(BpfFault):
        run(rt, fd, bytes(60))
    fd = load(rt, ProgType.SOCKET_FILTER, f"mov %r2, 1\nstxw [%r1+{OFF['mark']}], %r2\nexit")
    with pytest.raises(BpfFault):
        run(rt, fd, bytes(60))
    run(rt, load(rt, ProgType.SOCKET_FILTER, "mov %r0, 0\nexit"), bytes(60))  # still usable


def test_helpers_find_the_skb_behind_the_ctx_pointer(rt: Runtime) -> None:
    seen = []

    def helper(vm, r1, r2, r3, r4, r5):  # type: ignore[no-untyped-def]
        skb = skb_from_ctx(vm.memory, r1)
        seen.append(skb)
        return skb.len

    rt.helpers[0x7000] = helper
    fd = load(rt, ProgType.SCHED_CLS, "call 0x7000\nexit")
    assert run(rt, fd, bytes(77)).retval == 77
    assert skb_from_ctx(rt.memory, 0x1234) is None
