"""Network devices: XDP and tcx fired from Python (dev.receive / dev.transmit).

The attach-rule errno tables are pinned in test_scenarios.py (measured on the
kernel's loopback device); these tests pin the data path and the rules the
loopback can't show (native mode, netlink attachment, device removal)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf.attr import LinkUpdateAttr, ProgAttachAttr, ProgQueryAttr
from pyebpf.errors import BpfError
from pyebpf.links import Netdev, XdpFlags, init_net
from pyebpf.runtime import ObjKind, Runtime
from pyebpf.uapi import AttachFlags, AttachType, Cmd, ProgType

A = AttachType
FRAME = bytes(range(60))
#: Writes 0xff into the first byte of the frame (bounds-checked), then passes.
XDP_MARK = """ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 1
jgt %r4, %r3, +1
stb [%r2+0], 0xff
mov %r0, 2
exit"""


def _err(fn: Any) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return exc.value.errno


@pytest.mark.parametrize(("ret", "verdict"), [(0, "drop"), (1, "drop"), (2, "pass"),
                                              (3, "tx"), (4, "drop"), (9, "drop")])
def test_xdp_action_decides_the_frames_fate(rt: Runtime, load: Any, link: Any, ret: int,
                                            verdict: str) -> None:
    link(load(ProgType.XDP, f"mov %r0, {ret}\nexit"), 1, A.XDP)
    got = init_net(rt).device(1).receive(FRAME)
    assert (got.verdict, got.xdp_action) == (verdict, ret)


def test_xdp_program_writes_are_in_the_frame_that_passes(rt: Runtime, load: Any,
                                                         link: Any) -> None:
    link(load(ProgType.XDP, XDP_MARK), 1, A.XDP)
    got = init_net(rt).device(1).receive(FRAME)
    assert got.packet == b"\xff" + FRAME[1:]


def test_xdp_redirect_reports_the_target_of_bpf_redirect(rt: Runtime, load: Any,
                                                         link: Any) -> None:
    a, _ = Netdev.veth_pair(init_net(rt), "veth0", "veth1")
    link(load(ProgType.XDP, f"mov %r1, {a.ifindex}\nmov %r2, 0\ncall 23\nexit"), 1, A.XDP)
    got = init_net(rt).device(1).receive(FRAME)
    assert (got.verdict, got.redirect_ifindex) == ("redirect", a.ifindex)
    # no device 7: xdp_do_generic_redirect fails (EINVAL) and the frame is dropped
    link(load(ProgType.XDP, "mov %r1, 7\nmov %r2, 0\ncall 23\nexit"), a.ifindex, A.XDP)
    got = a.receive(FRAME)
    assert (got.verdict, got.redirect_ifindex, got.redirect_err) == ("drop", 7, errno.EINVAL)


def test_xdp_sees_ingress_ifindex_and_rx_queue(rt: Runtime, load: Any, link: Any) -> None:
    a, _ = Netdev.veth_pair(init_net(rt), "veth0", "veth1")
    # return ingress_ifindex * 16 + rx_queue_index as the action: out of range, so dropped
    link(load(ProgType.XDP, "ldxw %r2, [%r1+12]\nldxw %r3, [%r1+16]\nlsh %r2, 4\n"
              "mov %r0, %r2\nadd %r0, %r3\nexit"), a.ifindex, A.XDP)
    assert a.receive(FRAME, rx_queue_index=3).xdp_action == a.ifindex * 16 + 3


def test_xdp_tx_on_a_veth_arrives_at_a_peer_running_xdp(rt: Runtime, load: Any,
                                                        link: Any) -> None:
    a, b = Netdev.veth_pair(init_net(rt), "veth0", "veth1")
    link(load(ProgType.XDP, "mov %r0, 3\nexit"), a.ifindex, A.XDP)
    link(load(ProgType.XDP, XDP_MARK), b.ifindex, A.XDP)
    seen = []
    b_receive = b.receive

    def spy(frame: bytes, **kw: Any) -> Any:
        got = b_receive(frame, **kw)
        seen.append(got)
        return got

    b.receive = spy  # type: ignore[method-assign]
    assert a.receive(FRAME).verdict == "tx"
    assert [r.packet[:1] for r in seen] == [b"\xff"]


def test_veth_defaults_to_native_mode_and_lo_to_generic(rt: Runtime) -> None:
    a, _ = Netdev.veth_pair(init_net(rt), "veth0", "veth1")
    assert a.xdp_mode(0).name == "DRV"
    assert init_net(rt).device(1).xdp_mode(0).name == "SKB"


def test_netlink_program_then_link_is_ebusy_and_link_then_netlink_too(
        rt: Runtime, load: Any, link: Any) -> None:
    lo = init_net(rt).device(1)
    p1, p2 = load(ProgType.XDP, "mov %r0, 1\nexit"), load(ProgType.XDP, "mov %r0, 2\nexit")
    lo.set_xdp_fd(p1)
    assert _err(lambda: link(p2, 1, A.XDP)) == errno.EBUSY  # can't replace a program by a link
    lo.set_xdp_fd(p2)                                        # netlink replaces netlink
    assert lo.receive(FRAME).verdict == "pass"
    assert _err(lambda: lo.set_xdp_fd(p1, expected_fd=p1, flags=XdpFlags.REPLACE)) \
        == errno.EEXIST
    assert _err(lambda: lo.set_xdp_fd(p1, flags=XdpFlags.UPDATE_IF_NOEXIST)) == errno.EBUSY
    lo.set_xdp_fd(-1)
    link(p1, 1, A.XDP)
    assert _err(lambda: lo.set_xdp_fd(p2)) == errno.EBUSY    # can't replace an active link
    assert _err(lambda: lo.set_xdp_fd(p2, flags=0x100)) == errno.EINVAL


def test_netlink_removal_releases_the_program(rt: Runtime, load: Any) -> None:
    lo = init_net(rt).device(1)
    p = load(ProgType.XDP, "mov %r0, 1\nexit")
    pid = rt.fds[p].obj.id
    lo.set_xdp_fd(p)
    rt.close(p)
    assert pid in rt.objects(ObjKind.PROG)
    lo.set_xdp_fd(-1)
    assert pid not in rt.objects(ObjKind.PROG)


def test_unregistered_device_leaves_its_links_defunct(rt: Runtime, load: Any, link: Any,
                                                      sys_bpf: Any) -> None:
    a, b = Netdev.veth_pair(init_net(rt), "veth0", "veth1")
    xdp = link(load(ProgType.XDP, "mov %r0, 2\nexit"), a.ifindex, A.XDP)
    tcx = link(load(ProgType.SCHED_CLS, "mov %r0, 0\nexit"), b.ifindex, A.TCX_EGRESS)
    a.unregister()  # a veth takes its peer along
    assert init_net(rt).device(b.ifindex) is None
    for lfd in (xdp, tcx):
        assert sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, _info(lfd)).ifindex == 0
    with pytest.raises(BpfError) as exc:
        sys_bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=xdp, new_prog_fd=load(
            ProgType.XDP, "mov %r0, 2\nexit")))
    assert exc.value.errno == errno.ENOLINK


def _info(fd: int) -> Any:
    from pyebpf.attr import InfoByFdAttr

    return InfoByFdAttr(bpf_fd=fd)


def test_tcx_runs_programs_in_order_until_a_terminal_verdict(rt: Runtime, load: Any,
                                                             sys_bpf: Any) -> None:
    lo = init_net(rt).device(1)
    nxt = load(ProgType.SCHED_CLS, "mov %r0, 1\nexit")    # TC_ACT_RECLASSIFY: next
    drop = load(ProgType.SCHED_CLS, "mov %r0, 2\nexit")   # TCX_DROP
    for prog in (nxt, drop):
        sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=1, attach_bpf_fd=prog,
                                                attach_type=A.TCX_INGRESS))
    got = lo.receive(FRAME)
    assert (got.verdict, got.tc_action) == ("drop", 2)
    # a pass in front short-cuts the drop
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=1, attach_bpf_fd=load(
        ProgType.SCHED_CLS, "mov %r0, 0\nexit"), attach_type=A.TCX_INGRESS,
        attach_flags=AttachFlags.BEFORE))
    assert lo.receive(FRAME).verdict == "pass"


def test_tcx_list_ending_in_next_passes(rt: Runtime, load: Any, link: Any) -> None:
    link(load(ProgType.SCHED_CLS, "mov %r0, -1\nexit"), 1, A.TCX_INGRESS)
    got = init_net(rt).device(1).receive(FRAME)
    assert (got.verdict, got.tc_action) == ("pass", -1)


def test_tcx_sees_the_frame_from_its_ethernet_header(rt: Runtime, load: Any,
                                                     link: Any) -> None:
    # skb->len (offset 0) of a tc program includes the Ethernet header: pass if 60
    link(load(ProgType.SCHED_CLS, "ldxw %r2, [%r1+0]\nmov %r0, 2\njne %r2, 60, +1\n"
              "mov %r0, 0\nexit"), 1, A.TCX_INGRESS)
    assert init_net(rt).device(1).receive(FRAME).verdict == "pass"


def test_tcx_redirect_reports_the_target(rt: Runtime, load: Any, link: Any) -> None:
    link(load(ProgType.SCHED_CLS, "mov %r1, 5\nmov %r2, 0\ncall 23\nexit"), 1, A.TCX_EGRESS)
    got = init_net(rt).device(1).transmit(FRAME)
    assert (got.verdict, got.redirect_ifindex) == ("redirect", 5)


def test_xdp_drop_keeps_the_frame_from_tcx(rt: Runtime, load: Any, link: Any) -> None:
    link(load(ProgType.XDP, "mov %r0, 1\nexit"), 1, A.XDP)
    link(load(ProgType.SCHED_CLS, "mov %r0, 0\nexit"), 1, A.TCX_INGRESS)
    got = init_net(rt).device(1).receive(FRAME)
    assert (got.verdict, got.tc_action) == ("drop", None)


def test_tcx_hook_holds_64_programs_then_erange(rt: Runtime, load: Any,
                                                sys_bpf: Any) -> None:
    for i in range(64):
        sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=1, attach_bpf_fd=load(
            ProgType.SCHED_CLS, f"mov %r0, {i}\nexit"), attach_type=A.TCX_INGRESS))
    extra = load(ProgType.SCHED_CLS, "mov %r0, 0\nexit")
    with pytest.raises(BpfError) as exc:
        sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=1, attach_bpf_fd=extra,
                                                attach_type=A.TCX_INGRESS))
    assert exc.value.errno == errno.ERANGE


def test_tcx_relative_by_id_and_by_link(rt: Runtime, load: Any, link: Any,
                                        sys_bpf: Any) -> None:
    a = load(ProgType.SCHED_CLS, "mov %r0, -1\nexit")
    b = load(ProgType.SCHED_CLS, "mov %r0, -1\nexit")
    c = load(ProgType.SCHED_CLS, "mov %r0, -1\nexit")
    la = link(a, 1, A.TCX_INGRESS)
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(
        target_fd=1, attach_bpf_fd=b, attach_type=A.TCX_INGRESS,
        attach_flags=AttachFlags.BEFORE | AttachFlags.ID, relative_fd=rt.fds[a].obj.id))
    link(c, 1, A.TCX_INGRESS, flags=AttachFlags.AFTER | AttachFlags.LINK, relative_fd=la)
    got = sys_bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=1, attach_type=A.TCX_INGRESS))
    ids = {rt.fds[fd].obj.id: name for name, fd in (("a", a), ("b", b), ("c", c))}
    assert [ids[i] for i in got.prog_ids] == ["b", "a", "c"]
    assert got.link_ids[0] == 0 and got.link_ids[1] == rt.fds[la].obj.id


def test_xdp_tx_on_a_veth_is_lost_when_the_peer_runs_no_xdp(rt: Runtime, load: Any,
                                                            link: Any) -> None:
    from pyebpf.links import Socket

    a, b = Netdev.veth_pair(init_net(rt), "veth0", "veth1")
    tap = Socket(rt, "packet", dev=a)
    link(load(ProgType.XDP, "mov %r0, 3\nexit"), b.ifindex, A.XDP)
    assert b.receive(FRAME).verdict == "tx"
    assert tap.queue == []  # veth_xdp_xmit: the peer's NAPI isn't running


def test_tc_egress_drop_is_enobufs_for_the_sending_socket(rt: Runtime, load: Any,
                                                          link: Any) -> None:
    from pyebpf.links import Socket

    a, b = Netdev.veth_pair(init_net(rt), "veth0", "veth1")
    sender, tap = Socket(rt, "packet", dev=a), Socket(rt, "packet", dev=b)
    link(load(ProgType.SCHED_CLS, "mov %r0, 2\nexit"), a.ifindex, A.TCX_EGRESS)
    assert _err(lambda: sender.send(FRAME)) == errno.ENOBUFS
    assert tap.queue == []


def test_xdp_test_run_takes_the_ifindex_of_an_existing_device(rt: Runtime, load: Any,
                                                              sys_bpf: Any) -> None:
    import struct

    from pyebpf.attr import TestRunAttr

    a, _ = Netdev.veth_pair(init_net(rt), "veth0", "veth1")
    prog = load(ProgType.XDP, "ldxw %r0, [%r1+12]\nexit")
    ctx = struct.pack("<6I", 0, 60, 0, a.ifindex, 0, 0)
    got = sys_bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog, data_in=FRAME, ctx_in=ctx))
    assert (got.retval, got.ctx_out) == (a.ifindex, ctx)
    bad = struct.pack("<6I", 0, 60, 0, a.ifindex, 1, 0)  # one rx queue only
    assert _err(lambda: sys_bpf(Cmd.PROG_TEST_RUN, TestRunAttr(
        prog_fd=prog, data_in=FRAME, ctx_in=bad))) == errno.EINVAL
