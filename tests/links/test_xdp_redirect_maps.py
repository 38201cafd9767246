"""XDP redirects through device, CPU and AF_XDP socket maps, carried out
(pyebpf.links.xdp_redirect): fired with Netdev.receive and with
BPF_PROG_TEST_RUN's live-frames mode, observed on the devices' transmit logs,
packet taps, counting programs and the sockets' rx rings."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from helpers._build import call, exit_, mov
from links.xdp_programs import (
    EGRESS_IFINDEX,
    FRAME,
    INGRESS_IFINDEX,
    RX_QUEUE_INDEX,
    XDP_DROP,
    XDP_PASS,
    XDP_REDIRECT,
    XDP_TX,
    count,
    count_then_redirect_map,
    redirect,
    redirect_map,
    ret,
    xsk_queue_id,
)
from pyebpf import Insn
from pyebpf.attr import LinkCreateAttr, MapCreateAttr, MapElemAttr, ProgLoadAttr, TestRunAttr
from pyebpf.errors import ENOTSUPP, BpfError
from pyebpf.links import Netdev, Socket, XdpFlags, init_net
from pyebpf.links.xsk import XskSocket
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, MapType, ProgType, TestRunFlags

A = AttachType
T = MapType
BROADCAST, EXCLUDE_INGRESS = 1 << 3, 1 << 4


class Net:
    """A runtime with veth pairs (a, b), (c, d), (e, f) and a counter array."""

    def __init__(self) -> None:
        self.rt = Runtime()
        net = init_net(self.rt)
        self.a, self.b = Netdev.veth_pair(net, "a", "b")
        self.c, self.d = Netdev.veth_pair(net, "c", "d")
        self.e, self.f = Netdev.veth_pair(net, "e", "f")
        for dev in (self.a, self.c, self.e):
            dev.xmit_log = []
        self.counters = self.map(T.ARRAY, 8, 8)

    def bpf(self, cmd: int, attr: Any) -> Any:
        return bpf(cmd, attr, runtime=self.rt)

    def map(self, map_type: int, value_size: int, max_entries: int) -> int:
        return int(self.bpf(Cmd.MAP_CREATE, MapCreateAttr(
            map_type=map_type, key_size=4, value_size=value_size, max_entries=max_entries)))

    def put(self, fd: int, key: int, *fields: int, flags: int = 0) -> None:
        self.bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(
            map_fd=fd, key=struct.pack("<I", key), value=struct.pack(f"<{len(fields)}I", *fields),
            flags=flags))

    def load(self, insns: list[Insn], eat: int = 0, prog_type: int = ProgType.XDP) -> int:
        return int(self.bpf(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=prog_type, insns=insns, license="GPL", expected_attach_type=eat)))

    def xdp(self, dev: Netdev, insns: list[Insn], flags: int = 0) -> int:
        """Attach an XDP program (native on a veth unless ``flags`` says otherwise)."""
        return int(self.bpf(Cmd.LINK_CREATE, LinkCreateAttr(
            prog_fd=self.load(insns), target_fd=dev.ifindex, attach_type=A.XDP, flags=flags)))

    def tc_ingress(self, dev: Netdev, insns: list[Insn]) -> None:
        self.bpf(Cmd.LINK_CREATE, LinkCreateAttr(
            prog_fd=self.load(insns, prog_type=ProgType.SCHED_CLS), target_fd=dev.ifindex,
            attach_type=A.TCX_INGRESS))

    def counter(self, slot: int) -> int:
        got = self.bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(
            map_fd=self.counters, key=struct.pack("<I", slot)))
        return int.from_bytes(bytes(got), "little")

    def peers_count(self) -> None:
        """b, d and f run native XDP counting in slots 0, 1, 2 (so a, c and e can
        send XDP frames: their peers' NAPI runs)."""
        for slot, dev in enumerate((self.b, self.d, self.f)):
            self.xdp(dev, count(self.counters, slot, XDP_DROP))


@pytest.fixture
def n() -> Net:
    return Net()


def _err(fn: Any) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return int(exc.value.errno or 0)


# -- device maps ---------------------------------------------------------------------------------
@pytest.mark.parametrize("map_type", [T.DEVMAP, T.DEVMAP_HASH])
def test_devmap_redirect_transmits_on_the_target_device(n: Net, map_type: MapType) -> None:
    n.peers_count()
    dm = n.map(map_type, 4, 4)
    n.put(dm, 3, n.c.ifindex)
    n.xdp(n.a, redirect_map(dm, 3))
    got = n.a.receive(FRAME)
    assert (got.verdict, got.redirect_ifindex, got.redirect_map_type, got.redirect_key) == \
        ("redirect", n.c.ifindex, map_type, 3)
    assert n.c.xmit_log == [FRAME]
    assert [n.counter(i) for i in range(3)] == [0, 1, 0]


def test_devmap_redirect_to_a_device_whose_peer_runs_no_xdp_is_eopnotsupp(n: Net) -> None:
    dm = n.map(T.DEVMAP, 4, 4)
    n.put(dm, 0, n.c.ifindex)
    n.xdp(n.a, redirect_map(dm, 0))
    got = n.a.receive(FRAME)
    assert (got.verdict, got.redirect_err) == ("drop", errno.EOPNOTSUPP)
    assert n.c.xmit_log == []


def test_generic_xdp_devmap_redirect_goes_out_without_the_peer_running_xdp(n: Net) -> None:
    dm = n.map(T.DEVMAP, 4, 4)
    n.put(dm, 0, n.c.ifindex)
    tap = Socket(n.rt, "packet", dev=n.d)
    n.xdp(n.a, redirect_map(dm, 0), flags=XdpFlags.SKB_MODE)
    assert n.a.receive(FRAME).verdict == "redirect"
    assert n.c.xmit_log == [FRAME]
    assert tap.queue == [FRAME]  # generic_xdp_tx: the peer's ordinary receive path


def test_devmap_lookup_failure_returns_the_flags_action_in_the_helper(n: Net) -> None:
    dm = n.map(T.DEVMAP, 4, 4)
    tap = Socket(n.rt, "packet", dev=n.a)
    n.xdp(n.a, redirect_map(dm, 1, XDP_PASS))
    got = n.a.receive(FRAME)
    assert (got.verdict, got.xdp_action) == ("pass", XDP_PASS)
    assert tap.queue == [FRAME]


@pytest.mark.parametrize(("field", "dev"), [(EGRESS_IFINDEX, "c"), (INGRESS_IFINDEX, "a"),
                                            (RX_QUEUE_INDEX, None)])
def test_devmap_entry_program_runs_first_and_sees_both_devices(n: Net, field: int,
                                                               dev: str | None) -> None:
    n.peers_count()
    n.a.num_queues = 2
    dm = n.map(T.DEVMAP, 8, 4)
    n.put(n.counters, 5, 77, 0)
    n.put(dm, 0, n.c.ifindex, n.load(count(n.counters, 5, XDP_PASS, record=field),
                                     A.XDP_DEVMAP))
    n.xdp(n.a, redirect_map(dm, 0))
    assert n.a.receive(FRAME, rx_queue_index=1).verdict == "redirect"
    # a native devmap program's rxq is a bare one: queue 0
    assert n.counter(5) == (getattr(n, dev).ifindex if dev else 0)
    assert n.c.xmit_log == [FRAME]


@pytest.mark.parametrize("action", [0, XDP_DROP, XDP_TX, XDP_REDIRECT, 7])
def test_devmap_entry_program_verdict_other_than_pass_drops(n: Net, action: int) -> None:
    n.peers_count()
    dm = n.map(T.DEVMAP, 8, 4)
    n.put(dm, 0, n.c.ifindex, n.load(ret(action), A.XDP_DEVMAP))
    n.xdp(n.a, redirect_map(dm, 0))
    assert n.a.receive(FRAME).verdict == "redirect"  # the redirect itself succeeded
    assert (n.c.xmit_log, n.counter(1)) == ([], 0)


def test_devmap_entry_program_changes_the_frame_sent(n: Net) -> None:
    n.peers_count()
    dm = n.map(T.DEVMAP, 8, 4)
    # bpf_xdp_adjust_head(ctx, 14): strip the Ethernet header, then pass
    strip = n.load([mov(2, 14), call(44), *ret(XDP_PASS)], A.XDP_DEVMAP)
    n.put(dm, 0, n.c.ifindex, strip)
    n.xdp(n.a, redirect_map(dm, 0))
    n.a.receive(FRAME)
    assert n.c.xmit_log == [FRAME[14:]]


@pytest.mark.parametrize(("map_type", "flags", "sent"), [
    (T.DEVMAP, BROADCAST, ["a", "c", "e"]),
    (T.DEVMAP, BROADCAST | EXCLUDE_INGRESS, ["c", "e"]),
    (T.DEVMAP_HASH, BROADCAST, ["a", "c", "e"]),
    (T.DEVMAP_HASH, BROADCAST | EXCLUDE_INGRESS, ["c", "e"]),
])
def test_broadcast_sends_a_copy_to_every_entry(n: Net, map_type: MapType, flags: int,
                                               sent: list[str]) -> None:
    n.peers_count()
    dm = n.map(map_type, 4, 8)
    for key, dev in ((1, n.a), (4, n.c), (6, n.e)):
        n.put(dm, key, dev.ifindex)
    n.xdp(n.a, redirect_map(dm, 99, flags))  # the key doesn't matter
    got = n.a.receive(FRAME)
    assert (got.verdict, got.redirect_flags) == ("redirect", flags)
    assert [name for name in "ace" if getattr(n, name).xmit_log == [FRAME]] == sent


def test_broadcast_skips_devices_that_cant_take_xdp_frames(n: Net) -> None:
    n.xdp(n.b, ret(XDP_DROP))
    n.xdp(n.f, ret(XDP_DROP))  # d runs no XDP: c is no valid destination
    dm = n.map(T.DEVMAP, 4, 8)
    for key, dev in enumerate((n.a, n.c, n.e)):
        n.put(dm, key, dev.ifindex)
    n.xdp(n.a, redirect_map(dm, 0, BROADCAST))
    assert n.a.receive(FRAME).verdict == "redirect"
    assert (n.a.xmit_log, n.c.xmit_log, n.e.xmit_log) == ([FRAME], [], [FRAME])


def test_one_bulk_queue_per_device_runs_the_first_entrys_program(n: Net) -> None:
    """bq_enqueue keeps the program of the entry that opened the device's queue for
    every frame queued there in the poll (as the kernel does)."""
    n.peers_count()
    dm = n.map(T.DEVMAP, 8, 4)
    n.put(dm, 0, n.c.ifindex, n.load(count(n.counters, 4, XDP_PASS), A.XDP_DEVMAP))
    n.put(dm, 1, n.c.ifindex, n.load(count(n.counters, 5, XDP_PASS), A.XDP_DEVMAP))
    n.xdp(n.a, redirect_map(dm, 0, BROADCAST))
    n.a.receive(FRAME)
    assert (n.counter(4), n.counter(5), n.c.xmit_log) == (2, 0, [FRAME, FRAME])


def test_generic_xdp_broadcast_needs_no_xdp_on_the_peers(n: Net) -> None:
    dm = n.map(T.DEVMAP, 4, 8)
    for key, dev in enumerate((n.a, n.c, n.e)):
        n.put(dm, key, dev.ifindex)
    n.xdp(n.a, redirect_map(dm, 0, BROADCAST | EXCLUDE_INGRESS), flags=XdpFlags.SKB_MODE)
    assert n.a.receive(FRAME).verdict == "redirect"
    assert (n.a.xmit_log, n.c.xmit_log, n.e.xmit_log) == ([], [FRAME], [FRAME])


@pytest.mark.parametrize(("size", "err"), [(1518, 0), (1519, errno.EMSGSIZE)])
def test_devmap_redirect_of_a_frame_over_the_mtu_is_emsgsize(n: Net, size: int,
                                                             err: int) -> None:
    n.peers_count()
    dm = n.map(T.DEVMAP, 4, 4)
    n.put(dm, 0, n.c.ifindex)
    n.xdp(n.a, redirect_map(dm, 0))
    got = n.a.receive(FRAME + bytes(size - len(FRAME)))
    assert (got.redirect_err, len(n.c.xmit_log)) == (err, 0 if err else 1)


def test_broadcast_on_an_empty_map_redirects_nowhere(n: Net) -> None:
    dm = n.map(T.DEVMAP_HASH, 4, 8)
    n.xdp(n.a, redirect_map(dm, 0, BROADCAST))
    got = n.a.receive(FRAME)
    assert (got.verdict, got.redirect_err) == ("redirect", 0)


def test_bpf_redirect_to_a_missing_device_drops_with_einval(n: Net) -> None:
    n.xdp(n.a, redirect(4242))
    got = n.a.receive(FRAME)
    assert (got.verdict, got.redirect_ifindex, got.redirect_err) == ("drop", 4242, errno.EINVAL)


def test_bpf_redirect_after_a_failed_map_lookup_uses_the_old_ifindex(n: Net) -> None:
    """A failed lookup makes the redirect info an ifindex redirect (map_id INT_MAX)
    to whatever tgt_index was: a program returning XDP_REDIRECT anyway goes there."""
    n.peers_count()
    dm = n.map(T.DEVMAP, 4, 4)
    n.xdp(n.a, [mov(1, n.c.ifindex), mov(2, 0), call(23),  # bpf_redirect
                *redirect_map(dm, 0)[:-1], mov(0, XDP_REDIRECT), exit_()])
    got = n.a.receive(FRAME)
    assert (got.verdict, got.redirect_ifindex, n.c.xmit_log) == ("redirect", n.c.ifindex,
                                                                  [FRAME])


# -- CPU maps ------------------------------------------------------------------------------------
def _cpumap(n: Net, prog: list[Insn] | None, qsize: int = 16) -> int:
    cm = n.map(T.CPUMAP, 8, 4)
    fd = n.load(prog, A.XDP_CPUMAP) if prog is not None else 0
    n.put(cm, 2, qsize, fd)
    return cm


def test_cpumap_pass_enters_the_receiving_devices_stack(n: Net) -> None:
    cm = _cpumap(n, count(n.counters, 3, XDP_PASS))
    tap = Socket(n.rt, "packet", dev=n.a)
    n.tc_ingress(n.a, count(n.counters, 4, 0, skb=True))
    n.xdp(n.a, redirect_map(cm, 2))
    got = n.a.receive(FRAME)
    assert (got.verdict, got.redirect_map_type, got.redirect_key) == ("redirect", T.CPUMAP, 2)
    assert (n.counter(3), n.counter(4), tap.queue) == (1, 1, [FRAME])


@pytest.mark.parametrize(("field", "want"), [(INGRESS_IFINDEX, "a"), (RX_QUEUE_INDEX, None)])
def test_cpumap_program_sees_the_receiving_device_and_queue_zero(n: Net, field: int,
                                                                 want: str | None) -> None:
    n.a.num_queues = 4
    n.put(n.counters, 3, 77, 0)
    cm = _cpumap(n, count(n.counters, 3, XDP_DROP, record=field))
    n.xdp(n.a, redirect_map(cm, 2))
    n.a.receive(FRAME, rx_queue_index=3)
    assert n.counter(3) == (getattr(n, want).ifindex if want else 0)


@pytest.mark.parametrize("action", [XDP_DROP, 0, XDP_TX, 9])
def test_cpumap_program_drop_and_other_actions_drop(n: Net, action: int) -> None:
    cm = _cpumap(n, ret(action))
    tap = Socket(n.rt, "packet", dev=n.a)
    n.xdp(n.a, redirect_map(cm, 2))
    assert n.a.receive(FRAME).verdict == "redirect"
    assert tap.queue == []


def test_cpumap_without_a_program_passes_to_the_stack(n: Net) -> None:
    cm = _cpumap(n, None)
    tap = Socket(n.rt, "packet", dev=n.a)
    n.xdp(n.a, redirect_map(cm, 2))
    n.a.receive(FRAME)
    assert tap.queue == [FRAME]


def test_cpumap_program_redirects_again(n: Net) -> None:
    n.peers_count()
    dm = n.map(T.DEVMAP, 4, 4)
    n.put(dm, 0, n.e.ifindex)
    cm = _cpumap(n, count_then_redirect_map(n.counters, 3, dm, 0))
    n.xdp(n.a, redirect_map(cm, 2))
    assert n.a.receive(FRAME).verdict == "redirect"
    assert (n.counter(3), n.e.xmit_log, n.counter(2)) == (1, [FRAME], 1)


def test_generic_xdp_sending_cpumap_passes_back_to_the_cpumap_is_cut(n: Net) -> None:
    """Generic XDP sees what a CPU map passes up the stack: a program redirecting
    every frame to the CPU map loops (endlessly on the kernel); pyebpf stops
    after KTHREAD_NESTING_LIMIT rounds."""
    from pyebpf.links.xdp_redirect import KTHREAD_NESTING_LIMIT

    cm = _cpumap(n, None)
    n.xdp(n.a, count_then_redirect_map(n.counters, 3, cm, 2), flags=XdpFlags.SKB_MODE)
    assert n.a.receive(FRAME).verdict == "redirect"
    assert n.counter(3) == KTHREAD_NESTING_LIMIT + 1


def test_cpumap_missing_cpu_entry_returns_the_flags_action(n: Net) -> None:
    cm = _cpumap(n, None)
    n.xdp(n.a, redirect_map(cm, 1, XDP_DROP))
    assert (n.a.receive(FRAME).xdp_action, n.a.receive(FRAME).verdict) == (XDP_DROP, "drop")


def test_cpumap_ring_of_qsize_drops_what_doesnt_fit_in_one_poll(n: Net) -> None:
    """Live frames run in NAPI batches: 20 frames into a ring of 8 in one poll."""
    cm = _cpumap(n, count(n.counters, 3, XDP_DROP), qsize=8)
    prog = n.load(redirect_map(cm, 2))
    n.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog, data_in=FRAME, repeat=20,
                                         flags=TestRunFlags.XDP_LIVE_FRAMES))
    assert n.counter(3) == 8


# -- AF_XDP sockets ------------------------------------------------------------------------------
def _xsk(n: Net, dev: Netdev, queue: int, **kw: Any) -> tuple[XskSocket, int]:
    xs = XskSocket(n.rt, **kw)
    xs.bind(dev, queue)
    xm = n.map(T.XSKMAP, 4, 4)
    n.put(xm, 0, xs.fd)
    return xs, xm


def test_xskmap_redirect_delivers_to_the_socket_bound_to_the_rx_queue(n: Net) -> None:
    n.a.num_queues = 2
    xs, xm = _xsk(n, n.a, 1)
    n.xdp(n.a, redirect_map(xm, 0))
    got = n.a.receive(FRAME, rx_queue_index=1)
    assert (got.verdict, got.redirect_map_type) == ("redirect", T.XSKMAP)
    desc = xs.recv()
    assert desc is not None and (desc.data, desc.len, desc.addr) == (FRAME, len(FRAME), 256)
    assert xs.recv() is None


def test_xskmap_redirect_to_a_socket_of_another_queue_drops_einval(n: Net) -> None:
    n.a.num_queues = 2
    xs, xm = _xsk(n, n.a, 1)
    n.xdp(n.a, redirect_map(xm, 0))
    got = n.a.receive(FRAME, rx_queue_index=0)
    assert (got.verdict, got.redirect_err, list(xs.rx)) == ("drop", errno.EINVAL, [])


def test_xskmap_redirect_to_a_socket_of_another_device_drops_einval(n: Net) -> None:
    _xs, xm = _xsk(n, n.c, 0)
    n.xdp(n.a, redirect_map(xm, 0))
    assert n.a.receive(FRAME).redirect_err == errno.EINVAL


def test_xsk_full_rx_ring_drops_enobufs_until_the_application_reads(n: Net) -> None:
    xs, xm = _xsk(n, n.a, 0, rx_size=2)
    n.xdp(n.a, redirect_map(xm, 0))
    errs = [n.a.receive(FRAME).redirect_err for _ in range(3)]
    assert (errs, xs.stats.rx_ring_full) == ([0, 0, errno.ENOBUFS], 1)
    xs.recv()
    assert n.a.receive(FRAME).redirect_err == 0


def test_xsk_empty_fill_ring_and_oversized_frames_drop(n: Net) -> None:
    xs, xm = _xsk(n, n.a, 0, num_frames=1, frame_size=2048)
    n.xdp(n.a, redirect_map(xm, 0))
    assert n.a.receive(FRAME).redirect_err == 0
    assert n.a.receive(FRAME).redirect_err == errno.ENOMEM  # the only chunk is in use
    xs.recv()
    assert n.a.receive(bytes(2048 - 256 + 1)).redirect_err == errno.ENOSPC
    assert xs.stats.rx_dropped == 2


def test_xskmap_program_lookup_reads_the_queue_id(n: Net) -> None:
    n.a.num_queues = 4
    xs, xm = _xsk(n, n.a, 3)
    prog = n.load(xsk_queue_id(xm, 0))
    assert n.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog, data_in=FRAME)).retval == 3
    xs.close()  # closing the socket takes it out of the map
    assert n.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog, data_in=FRAME)).retval == 99


def test_xskmap_update_rules(n: Net) -> None:
    xm = n.map(T.XSKMAP, 4, 4)
    xs1, xs2 = XskSocket(n.rt), XskSocket(n.rt)
    assert _err(lambda: n.put(xm, 0, xs1.fd, flags=2)) == errno.ENOENT  # BPF_EXIST, empty
    n.put(xm, 0, xs1.fd)
    n.put(xm, 0, xs1.fd, flags=1)  # the same socket again: fine even with BPF_NOEXIST
    assert _err(lambda: n.put(xm, 0, xs2.fd, flags=1)) == errno.EEXIST
    n.put(xm, 0, xs2.fd, flags=2)
    assert _err(lambda: n.put(xm, 1, n.counters)) == errno.ENOTSOCK
    packet = Socket(n.rt, "packet")
    assert _err(lambda: n.put(xm, 1, n.rt.install_fd(packet))) == errno.EOPNOTSUPP
    assert xs1.map_list == [] and xs2.map_list == [(n.rt.fds[xm].obj, 0)]


@pytest.mark.parametrize(("map_type", "flags", "err"), [
    (T.REUSEPORT_SOCKARRAY, 0, ENOTSUPP), (T.REUSEPORT_SOCKARRAY, 2, errno.ENOENT),
    (T.SOCKMAP, 0, errno.EOPNOTSUPP), (T.SOCKHASH, 0, errno.EOPNOTSUPP),
])
def test_an_af_xdp_socket_goes_in_no_other_socket_map(n: Net, map_type: MapType, flags: int,
                                                      err: int) -> None:
    """As the kernel answers (checked on 6.18): reuseport arrays take TCP/UDP
    sockets only, socket maps refuse the family."""
    m = n.map(map_type, 4, 4)
    xs = XskSocket(n.rt)
    assert _err(lambda: n.put(m, 0, xs.fd, flags=flags)) == err


def test_xsk_map_slot_keeps_the_map_alive(n: Net) -> None:
    xm = n.map(T.XSKMAP, 4, 4)
    m = n.rt.fds[xm].obj
    xs = XskSocket(n.rt)
    n.put(xm, 0, xs.fd)
    n.rt.close(xm)
    assert m.refcnt == 1 and m.sockets == {0: xs}
    xs.close()
    assert m.refcnt == 0


def test_xsk_unbound_socket_drops_enxio(n: Net) -> None:
    xs = XskSocket(n.rt)
    xm = n.map(T.XSKMAP, 4, 4)
    n.put(xm, 0, xs.fd)
    n.xdp(n.a, redirect_map(xm, 0))
    assert n.a.receive(FRAME).redirect_err == errno.ENXIO


@pytest.mark.parametrize(("kw", "queue", "err"), [
    (dict(rx_size=3), 0, errno.EINVAL), (dict(frame_size=1024), 0, errno.EINVAL),
    (dict(frame_headroom=4096 - 256), 0, errno.EINVAL), ({}, 1, errno.EINVAL),
])
def test_xsk_setup_and_bind_errors(n: Net, kw: dict[str, int], queue: int, err: int) -> None:
    assert _err(lambda: XskSocket(n.rt, **kw).bind(n.a, queue)) == err


def test_xsk_second_socket_on_a_queue_is_ebusy(n: Net) -> None:
    XskSocket(n.rt).bind(n.a, 0)
    xs = XskSocket(n.rt)
    assert _err(lambda: xs.bind(n.a, 0)) == errno.EBUSY
    assert _err(lambda: (xs.bind(n.c, 0), xs.bind(n.e, 0))) == errno.EINVAL


# -- BPF_F_TEST_XDP_LIVE_FRAMES ------------------------------------------------------------------
def _live(n: Net, prog: int, repeat: int = 1, **kw: Any) -> Any:
    return n.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog, data_in=FRAME, repeat=repeat,
                                                flags=TestRunFlags.XDP_LIVE_FRAMES, **kw))


def _ctx(ifindex: int) -> bytes:
    return struct.pack("<6I", 0, len(FRAME), 0, ifindex, 0, 0)


def test_live_frames_redirect_through_a_devmap(n: Net) -> None:
    n.peers_count()
    dm = n.map(T.DEVMAP, 4, 4)
    n.put(dm, 0, n.c.ifindex)
    got = _live(n, n.load(redirect_map(dm, 0)), repeat=5)
    assert (got.retval, got.data_out) == (0, FRAME)
    assert (len(n.c.xmit_log), n.counter(1)) == (5, 5)


def test_live_frames_tx_goes_back_out_of_the_ingress_device(n: Net) -> None:
    n.peers_count()
    _live(n, n.load(ret(XDP_TX)), repeat=3, ctx_in=_ctx(n.a.ifindex), data_out=None,
          ctx_out=None)
    assert (n.a.xmit_log, n.counter(0)) == ([FRAME] * 3, 3)


def test_live_frames_tx_on_lo_is_dropped(n: Net) -> None:
    lo = init_net(n.rt).device(1)
    lo.xmit_log = []
    _live(n, n.load(ret(XDP_TX)), repeat=2)
    assert lo.xmit_log == []


def test_live_frames_pass_enters_the_stack_of_the_ingress_device(n: Net) -> None:
    n.tc_ingress(n.a, count(n.counters, 4, 0, skb=True))
    _live(n, n.load(ret(XDP_PASS)), repeat=70, batch_size=8, ctx_in=_ctx(n.a.ifindex),
          data_out=None, ctx_out=None)
    assert n.counter(4) == 70


def test_live_frames_xsk_gets_queue_zero_frames(n: Net) -> None:
    xs, xm = _xsk(n, n.a, 0)
    _live(n, n.load(redirect_map(xm, 0)), repeat=4, ctx_in=_ctx(n.a.ifindex), data_out=None,
          ctx_out=None)
    assert len(xs.rx) == 4


@pytest.mark.parametrize(("kw", "err"), [
    (dict(batch_size=257), errno.E2BIG),
    (dict(ctx_in=_ctx(1)), errno.EINVAL),  # ctx with data_out (returned by default)
    (dict(ctx_in=_ctx(1), data_out=None), errno.EINVAL),  # ... or ctx_out
    (dict(data_in=bytes(4096 - 256 - 320 - 112 + 1)), errno.EINVAL),
])
def test_live_frames_argument_errors(n: Net, kw: dict[str, Any], err: int) -> None:
    prog = n.load(ret(XDP_PASS))
    args = dict(prog_fd=prog, data_in=FRAME, flags=TestRunFlags.XDP_LIVE_FRAMES) | kw
    assert _err(lambda: n.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(**args))) == err


def test_batch_size_without_live_frames_is_einval(n: Net) -> None:
    prog = n.load(ret(XDP_PASS))
    assert _err(lambda: n.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(
        prog_fd=prog, data_in=FRAME, batch_size=1))) == errno.EINVAL


def test_devmap_programs_cant_be_test_run(n: Net) -> None:
    prog = n.load(ret(XDP_PASS), A.XDP_DEVMAP)
    assert _err(lambda: n.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog, data_in=FRAME))) \
        == errno.EINVAL
