"""bpf_redirect_neigh, bpf_redirect_peer and bpf_check_mtu: their returns in a
test run (the values the kernel gives, tests/kernel/test_tc_redirect_differential.py)
and what the simulated tcx hook does with the redirects they ask for."""

from __future__ import annotations

import pytest

from helpers import tc_redirect_scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from helpers._build import PyBackend
from helpers.packet_scenarios import ipv4_udp_packet
from pyebpf.attr import LinkCreateAttr, ProgLoadAttr
from pyebpf.errors import VerifierError
from pyebpf.helpers import func_proto
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.links import Netdev, init_net
from pyebpf.links.netns import Netns
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, ProgType

P = ProgType
PKT = ipv4_udp_packet()
L = len(PKT)
#: lo: mtu 65536 + hard_header_len 14 is the largest frame that fits.
DEV_LEN = 65536 + 14


# -- availability and prototypes --------------------------------------------------------------
@pytest.mark.parametrize(("func_id", "types"), [
    (152, {P.SCHED_CLS, P.SCHED_ACT}), (155, {P.SCHED_CLS, P.SCHED_ACT}),
    (163, {P.SCHED_CLS, P.SCHED_ACT, P.XDP})])
def test_offered_to_the_program_types_the_kernel_offers_them_to(func_id: int,
                                                                types: set[int]) -> None:
    for prog_type in (P.SOCKET_FILTER, P.SCHED_CLS, P.SCHED_ACT, P.XDP, P.CGROUP_SKB,
                      P.LWT_XMIT, P.SK_SKB, P.KPROBE):
        assert (func_proto(func_id, prog_type) is not None) == (prog_type in types)


def test_check_mtu_is_gpl_only(py: PyBackend) -> None:
    assert func_proto(163, P.SCHED_CLS).proto.gpl_only  # type: ignore[union-attr]
    prog = asm("stw [%r10-8], 0\nmov %r3, %r10\nadd %r3, -8\nmov %r2, 0\nmov %r4, 0\n"
               "mov %r5, 0\ncall 163\nexit")
    with pytest.raises(VerifierError, match="cannot call GPL-restricted function"):
        py.load(prog, P.SCHED_CLS, license="MIT")


# -- returns ----------------------------------------------------------------------------------
def test_redirect_neigh_refuses_flags_and_a_short_params(py: PyBackend) -> None:
    assert S.redirect_neigh(py, [(1, None, 0, 0), (1, None, 0, 1),
                                 (1, S.REDIR_NEIGH_V4, 20, 0), (1, S.REDIR_NEIGH_V4[:16], 16, 0),
                                 (1, S.REDIR_NEIGH_V4 + bytes(4), 24, 0),
                                 (99, None, 0, 0)]) == [7, 2, 7, 2, 7, 7]


def test_redirect_peer_refuses_any_flag(py: PyBackend) -> None:
    assert S.redirect_peer(py, [(1, 0), (1, 1), (99, 0), (2, 4)]) == [7, 2, 7, 2]


@pytest.mark.parametrize("prog_type", [P.SCHED_CLS, P.XDP])
def test_check_mtu_compares_with_mtu_plus_the_l2_header(py: PyBackend, prog_type: int) -> None:
    assert S.check_mtu(py, [(0, 0, 0, 0), (1, 0, 0, 0), (0, 0, DEV_LEN - L, 0),
                            (0, 0, DEV_LEN - L + 1, 0), (0, 65536, 0, 0), (0, 65537, 0, 0),
                            (0, 0, -100, 0), (0, 0xFFFF_FFFF, 0, 0)], prog_type) == [
        (0, 65536), (0, 65536), (0, 65536), (1, 65536), (0, 65536), (1, 65536), (0, 65536),
        (0, 65536)]


def test_check_mtu_errors_leave_mtu_len_alone(py: PyBackend) -> None:
    # ENODEV for an unknown device; SEGS with len_diff or mtu_len, unknown flags: EINVAL
    assert S.check_mtu(py, [(99, 0, 0, 0), (0, 0, 4, 1), (0, 100, 0, 1), (0, 0, 0, 2),
                            (0, 0, 0, 1)]) == [(-19, 0), (-22, 0), (-22, 100), (-22, 0),
                                               (0, 65536)]
    # the XDP form takes no flag at all
    assert S.check_mtu(py, [(0, 0, 0, 1)], P.XDP) == [(-22, 0)]


# -- the tcx hook carries the redirects out ---------------------------------------------------
@pytest.fixture
def rt() -> Runtime:
    return Runtime()


def _tc(rt: Runtime, dev: Netdev, text: str, attach_type: int) -> None:
    fd = int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=P.SCHED_CLS, insns=encode(asm(text)),
                                             license="GPL"), runtime=rt))
    bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd, target_fd=dev.ifindex,
                                        attach_type=attach_type), runtime=rt)


def _capture(dev: Netdev) -> list[bytes]:
    dev.xmit_log = []
    return dev.xmit_log


def _peer_redirect_prog(ifindex: int) -> str:
    return f"mov %r1, {ifindex}\nmov %r2, 0\ncall 155\nexit"


def _taps(dev: Netdev) -> list[bytes]:
    """The frames that reach ``dev``'s receive path past XDP (an ETH_P_ALL tap)."""
    seen: list[bytes] = []

    class Tap:
        def receive(self, frame: bytes) -> None:
            seen.append(frame)

    dev.taps.append(Tap())  # type: ignore[arg-type]
    return seen


def test_redirect_peer_from_ingress_enters_the_peer_in_another_namespace(rt: Runtime) -> None:
    host = init_net(rt)
    other = Netns(rt)
    veth0, veth1 = Netdev.veth_pair(host, "veth0", "veth1", peer_net=other)
    eth0, _ = Netdev.veth_pair(host, "eth0", "eth0p")
    seen = _taps(veth1)
    _tc(rt, eth0, _peer_redirect_prog(veth0.ifindex), AttachType.TCX_INGRESS)
    got = eth0.receive(PKT)
    assert (got.verdict, got.redirect_ifindex) == ("redirect", veth0.ifindex)
    assert seen == [PKT]


def test_redirect_peer_is_lost_from_egress_or_into_the_same_namespace(rt: Runtime) -> None:
    host = init_net(rt)
    veth0, veth1 = Netdev.veth_pair(host, "veth0", "veth1")  # both in the host namespace
    eth0, _ = Netdev.veth_pair(host, "eth0", "eth0p")
    seen = _taps(veth1)
    _tc(rt, eth0, _peer_redirect_prog(veth0.ifindex), AttachType.TCX_INGRESS)
    eth0.receive(PKT)
    assert seen == []
    other = Netns(rt)
    veth2, veth3 = Netdev.veth_pair(host, "veth2", "veth3", peer_net=other)
    seen = _taps(veth3)
    _tc(rt, eth0, _peer_redirect_prog(veth2.ifindex), AttachType.TCX_EGRESS)
    eth0.transmit(PKT)
    assert seen == []


def test_redirect_peer_of_a_device_without_peer_is_lost(rt: Runtime) -> None:
    eth0, _ = Netdev.veth_pair(init_net(rt), "eth0", "eth0p")
    lo = init_net(rt).device(1)
    assert lo is not None
    seen = _taps(lo)
    _tc(rt, eth0, _peer_redirect_prog(1), AttachType.TCX_INGRESS)
    eth0.receive(PKT)
    assert seen == []


NEIGH_MAC = bytes.fromhex("020000000abc")
_NEIGH_NO_PARAMS = "mov %r1, {}\nmov %r2, 0\nmov %r3, 0\nmov %r4, 0\ncall 152\nexit"


def _neigh_setup(rt: Runtime) -> tuple[Netdev, Netdev]:
    host = init_net(rt)
    eth0, _ = Netdev.veth_pair(host, "eth0", "eth0p")
    out, _ = Netdev.veth_pair(host, "out0", "out0p")
    return eth0, out


def test_redirect_neigh_rewrites_l2_for_the_routes_gateway(rt: Runtime) -> None:
    eth0, out = _neigh_setup(rt)
    rt.fib.add_route("10.0.0.0/24", ifindex=out.ifindex, gateway="192.168.1.1")
    rt.fib.add_neighbour(out.ifindex, "192.168.1.1", NEIGH_MAC)
    sent = _capture(out)
    _tc(rt, eth0, _NEIGH_NO_PARAMS.format(out.ifindex),
        AttachType.TCX_INGRESS)
    eth0.receive(PKT)
    assert sent == [NEIGH_MAC + out.dev_addr + b"\x08\x00" + PKT[14:]]


def test_redirect_neigh_with_params_uses_their_next_hop(rt: Runtime) -> None:
    eth0, out = _neigh_setup(rt)  # no route needed with an explicit next hop
    rt.fib.add_neighbour(out.ifindex, "10.0.0.254", NEIGH_MAC)
    sent = _capture(out)
    # struct bpf_redir_neigh {AF_INET, 10.0.0.254} at r10-24
    prog = ("stw [%r10-24], 2\nstw [%r10-20], -0x1fffff6\nstdw [%r10-16], 0\n"
            "stw [%r10-8], 0\n"
            f"mov %r1, {out.ifindex}\nmov %r2, %r10\nadd %r2, -24\nmov %r3, 20\nmov %r4, 0\n"
            "call 152\nexit")
    _tc(rt, eth0, prog, AttachType.TCX_INGRESS)
    eth0.receive(PKT)
    assert sent == [NEIGH_MAC + out.dev_addr + b"\x08\x00" + PKT[14:]]


def test_redirect_neigh_without_route_or_neighbour_is_lost(rt: Runtime) -> None:
    eth0, out = _neigh_setup(rt)
    sent = _capture(out)
    _tc(rt, eth0, _NEIGH_NO_PARAMS.format(out.ifindex),
        AttachType.TCX_INGRESS)
    eth0.receive(PKT)  # no route
    rt.fib.add_route("10.0.0.0/24", ifindex=out.ifindex, gateway="192.168.1.1")
    eth0.receive(PKT)  # a route, but no neighbour entry for its gateway
    eth0.receive(b"\x01" + PKT[1:])  # a multicast destination
    assert sent == []


@pytest.mark.parametrize(("diff", "verdict"), [(0, "pass"), (1, "drop")])
def test_check_mtu_reads_the_devices_mtu(rt: Runtime, diff: int, verdict: str) -> None:
    """The frame just fits an MTU of its L3 length; one byte more does not. The
    program passes the frame when the check succeeded and *mtu_len came back
    as the device's MTU, else drops it."""
    eth0, _ = Netdev.veth_pair(init_net(rt), "eth0", "eth0p")
    eth0.mtu = L - 14
    _tc(rt, eth0, f"stw [%r10-4], 0\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -4\nmov %r4, {diff}\n"
        f"mov %r5, 0\ncall 163\nldxw %r1, [%r10-4]\njne %r1, {L - 14}, +1\njeq %r0, 0, +2\n"
        "mov %r0, 2\nexit\nmov %r0, 0\nexit", AttachType.TCX_INGRESS)
    assert eth0.receive(PKT).verdict == verdict


def _gso_run(py: PyBackend, flags: int, gso_size: int) -> int:
    """check_mtu(ctx, 0, ...) on a test-run skb 100 bytes over its device's MTU
    (a 1400-byte device as ctx ifindex): the retval."""
    import struct

    from pyebpf.attr import TestRunAttr

    dev, _ = Netdev.veth_pair(init_net(py.rt), "eth0", "eth0p")
    dev.mtu = 1400
    prog = asm("stw [%r10-4], 0\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 0\n"
               f"mov %r5, {flags}\ncall 163\nexit")
    fd = py.load(prog, P.SCHED_CLS)
    ctx = bytearray(192)
    struct.pack_into("<I", ctx, 40, dev.ifindex)
    struct.pack_into("<I", ctx, 176, gso_size)
    got = py.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=ipv4_udp_packet(b"x" * 1500),
                                              ctx_in=bytes(ctx), repeat=1))
    return int(got.retval)


def test_check_mtu_lets_a_gso_skb_over_the_mtu_pass_unless_segs_are_asked(
        py: PyBackend) -> None:
    assert _gso_run(py, 0, 0) == 1  # FRAG_NEEDED
    assert _gso_run(py, 0, 100) == 0  # GSO: the segments will fit
    # BPF_MTU_CHK_SEGS: the test-run skb has no transport header to size segments by
    assert _gso_run(py, 1, 100) == (-22) & 0xFFFF_FFFF


def test_redirect_neigh_of_an_ipv6_packet_uses_the_ipv6_route(rt: Runtime) -> None:
    from helpers.skb_helper_scenarios import ipv6_udp_packet

    eth0, out = _neigh_setup(rt)
    rt.fib.add_route("::/0", ifindex=out.ifindex, gateway="fe80::1")
    rt.fib.add_neighbour(out.ifindex, "fe80::1", NEIGH_MAC)
    sent = _capture(out)
    _tc(rt, eth0, _NEIGH_NO_PARAMS.format(out.ifindex), AttachType.TCX_INGRESS)
    pkt = ipv6_udp_packet()
    eth0.receive(pkt)
    assert sent == [NEIGH_MAC + out.dev_addr + b"\x86\xdd" + pkt[14:]]


@pytest.mark.parametrize(("family", "delivered"), [(10, True), (7, False)])
def test_redirect_neigh_params_family_decides_the_next_hop(rt: Runtime, family: int,
                                                           delivered: bool) -> None:
    """AF_INET6 next hop for an IPv4 packet (is_v6gw), an unknown family drops."""
    eth0, out = _neigh_setup(rt)
    rt.fib.add_neighbour(out.ifindex, "fe80::1", NEIGH_MAC)
    sent = _capture(out)
    # struct bpf_redir_neigh {family, fe80::1} at r10-24
    prog = (f"stw [%r10-24], {family}\nstw [%r10-20], 0x80fe\nstw [%r10-16], 0\n"
            "stw [%r10-12], 0\nstw [%r10-8], 0x1000000\n"
            f"mov %r1, {out.ifindex}\nmov %r2, %r10\nadd %r2, -24\nmov %r3, 20\nmov %r4, 0\n"
            "call 152\nexit")
    _tc(rt, eth0, prog, AttachType.TCX_INGRESS)
    eth0.receive(PKT)
    assert sent == ([NEIGH_MAC + out.dev_addr + b"\x08\x00" + PKT[14:]] if delivered else [])


@pytest.mark.parametrize(("diff", "verdict"), [(0, "pass"), (1, "drop")])
def test_xdp_check_mtu_reads_the_receiving_devices_mtu(rt: Runtime, diff: int,
                                                       verdict: str) -> None:
    """xdp->rxq->dev is the device the frame arrived on (XDP_PASS if it fits)."""
    eth0, _ = Netdev.veth_pair(init_net(rt), "eth0", "eth0p")
    eth0.mtu = L - 14
    fd = int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=P.XDP, insns=encode(asm(
        f"stw [%r10-4], 0\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -4\nmov %r4, {diff}\n"
        "mov %r5, 0\ncall 163\nmov %r1, 2\njeq %r0, 0, +1\nmov %r1, 1\nmov %r0, %r1\nexit")),
        license="GPL"), runtime=rt))
    bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd, target_fd=eth0.ifindex,
                                        attach_type=AttachType.XDP), runtime=rt)
    assert eth0.receive(PKT).verdict == verdict
