"""Carrying out XDP_REDIRECT (net/core/filter.c xdp_do_redirect, kernel/bpf/devmap.c,
kernel/bpf/cpumap.c, net/xdp/xsk.c).

A program returning XDP_REDIRECT leaves its wish in ``bpf_redirect_info``
(pyebpf.helpers.packet.RedirectInfo); the hook that ran it calls
:func:`xdp_do_redirect` with the frame, inside one :class:`XdpNetContext` (the
kernel's ``bpf_net_context``: the flush lists of one NAPI poll), and
:meth:`XdpNetContext.flush` at the end of the poll (``xdp_do_flush``).
By the redirect info's map type:

- ``UNSPEC`` with map_id INT_MAX (``bpf_redirect``): the device with that
  ifindex (EINVAL if none), as a device map entry without a program.
- DEVMAP / DEVMAP_HASH: native XDP queues the frame on the target device's
  bulk queue (``bq_enqueue``; 16 frames, then it is sent at once) if the device
  can take XDP frames (``NETDEV_XDP_ACT_NDO_XMIT``, else EOPNOTSUPP); the
  queue's program is the one of the entry that opened it. At the flush, queues
  go out newest first (``list_add`` on the flush list); the entry's program
  (BPF_XDP_DEVMAP) runs on each frame with ``egress_ifindex`` set: XDP_PASS
  keeps the frame, anything else drops it; then ``ndo_xdp_xmit``. Generic XDP
  (``dev_map_generic_redirect``) runs the program at once and sends the frame
  with ``generic_xdp_tx``. BPF_F_BROADCAST sends a copy to every entry the
  device can take (``is_valid_dst``) in the map's order, BPF_F_EXCLUDE_INGRESS
  skipping the receiving device.
- CPUMAP: the frame goes on the CPU entry's bulk queue (8 frames), then into
  its ring of ``qsize`` frames (a full ring drops); the CPU's kthread, woken by
  the flush, runs the entry's program (BPF_XDP_CPUMAP): XDP_PASS builds an skb
  that enters the receiving device's stack (``netif_receive_skb``: generic XDP,
  packet taps, tc ingress), XDP_REDIRECT redirects again (and flushes),
  anything else drops.
- XSKMAP: the AF_XDP socket takes the frame at once (``xsk_rcv``, see
  pyebpf.links.xsk); a socket bound to another device or queue is EINVAL.

Anything else is EBADRQC. A failed redirect drops the frame; the result says
why (:attr:`RedirectResult.err`).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ..uapi import MapType, XdpAction

if TYPE_CHECKING:
    from ..prog import BpfProg
    from ..runtime import Runtime
    from .netdev import Netdev

__all__ = ["RedirectResult", "XdpFrame", "XdpNetContext", "XdpRun", "run_xdp",
           "xdp_do_redirect"]

INT_MAX = 0x7FFF_FFFF
#: DEV_MAP_BULK_SIZE (XDP_BULK_QUEUE_SIZE) and CPU_MAP_BULK_SIZE.
DEV_MAP_BULK_SIZE = 16
CPU_MAP_BULK_SIZE = 8
#: sizeof(struct xdp_frame): xdp_convert_buff_to_frame keeps it in the headroom.
XDP_FRAME_SIZE = 40
ETH_HLEN, VLAN_HLEN = 14, 4
#: How deep CPU map kthread runs may nest in one another (XMIT_RECURSION_LIMIT).
KTHREAD_NESTING_LIMIT = 8
BPF_F_BROADCAST = 1 << 3
BPF_F_EXCLUDE_INGRESS = 1 << 4


@attrs.frozen
class XdpFrame:
    """struct xdp_frame: a frame with its metadata, the headroom before them and
    the device and rx queue it arrived on."""

    data: bytes
    dev_rx: Netdev
    meta: bytes = b""
    headroom: int = 256
    rx_queue: int = 0


@attrs.frozen
class XdpRun:
    """One program run on a frame: the action, the frame as the program left it,
    and the redirect info it set (None if it called no redirect helper)."""

    action: int
    frame: XdpFrame
    info: Any


def run_xdp(rt: Runtime, prog: BpfProg, frame: XdpFrame, *, ingress_ifindex: int,
            rx_queue_index: int = 0, egress_ifindex: int = 0) -> XdpRun:
    """bpf_prog_run_xdp on ``frame`` with the given xdp_rxq/xdp_txq view."""
    from ..progs.xdp import run_on_xdp, xdp_frame

    xdp, region, buf = xdp_frame(rt, frame.meta + frame.data, headroom=frame.headroom,
                                 meta_len=len(frame.meta))
    xdp.ingress_ifindex = ingress_ifindex
    xdp.rx_queue_index = rx_queue_index
    xdp.egress_ifindex = egress_ifindex
    vm = prog.vm()
    vm.redirect_info = None
    try:
        action, _ = run_on_xdp(rt, prog, xdp)
    finally:
        rt.unmap_later(region)
    base = region.base
    meta_start = min(xdp.data_meta, xdp.data)
    out = XdpFrame(bytes(buf[xdp.data - base:xdp.data_end - base]), frame.dev_rx,
                   bytes(buf[meta_start - base:xdp.data - base]), meta_start - base,
                   frame.rx_queue)
    info, vm.redirect_info = vm.redirect_info, None
    return XdpRun(action, out, info)


@attrs.define
class RedirectResult:
    """What xdp_do_redirect did: ``err`` 0 (the frame is on its way) or the errno
    the kernel's xdp_redirect_err tracepoint would show (the frame is dropped)."""

    err: int = 0
    map_type: int = 0
    key: int = 0
    ifindex: int = 0
    flags: int = 0


@attrs.define(eq=False)
class _DevBulkQueue:
    """struct xdp_dev_bulk_queue of one target device."""

    dev: Netdev
    dev_rx: Netdev
    prog: BpfProg | None
    frames: list[XdpFrame] = attrs.Factory(list)


@attrs.define(eq=False)
class _CpuQueue:
    """A CPU map entry's bulk queue and ring (struct xdp_bulk_queue, ptr_ring)."""

    qsize: int
    prog: BpfProg | None
    bulk: list[XdpFrame] = attrs.Factory(list)
    ring: list[XdpFrame] = attrs.Factory(list)
    drops: int = 0


class XdpNetContext:
    """struct bpf_net_context of one NAPI poll: the device and CPU map queues
    waiting for xdp_do_flush, and whether the frames came by generic XDP."""

    def __init__(self, rt: Runtime, *, generic: bool = False) -> None:
        self.runtime = rt
        self.generic = generic
        self.dev_flush: list[_DevBulkQueue] = []
        self.cpu_flush: list[_CpuQueue] = []
        self._cpu_queues: dict[tuple[int, int], _CpuQueue] = {}

    # -- device maps (and bpf_redirect) --------------------------------------------------------
    def dev_enqueue(self, dev: Netdev, frame: XdpFrame, prog: BpfProg | None) -> int:
        """__xdp_enqueue / dev_map_generic_redirect: 0 or an errno."""
        if not dev.registered:
            return errno.ENODEV
        if not self.generic and not dev.has_ndo_xdp_xmit():
            return errno.EOPNOTSUPP
        if not xdp_ok_fwd_dev(dev, len(frame.data)):
            return errno.EMSGSIZE
        if self.generic:
            self._xmit(dev, frame, prog, generic=True)
            return 0
        bq = next((q for q in self.dev_flush if q.dev is dev), None)
        if bq is not None and len(bq.frames) == DEV_MAP_BULK_SIZE:
            self._bq_xmit_all(bq)
        if bq is None:
            bq = _DevBulkQueue(dev, frame.dev_rx, prog)
            self.dev_flush.insert(0, bq)  # list_add: the newest queue is flushed first
        bq.frames.append(frame)
        return 0

    def dev_enqueue_multi(self, m: Any, frame: XdpFrame, exclude_ingress: bool) -> int:
        """dev_map_enqueue_multi / dev_map_redirect_multi: a copy for every entry."""
        excluded = frame.dev_rx.ifindex if exclude_ingress else None
        for _, dev, prog in m.broadcast_entries():
            if dev.ifindex == excluded:
                continue
            if self.generic:  # a copy that can't go out ends the broadcast
                err = self.dev_enqueue(dev, frame, prog)
                if err:
                    return err
            elif dev.has_ndo_xdp_xmit() and xdp_ok_fwd_dev(dev, len(frame.data)):
                self.dev_enqueue(dev, frame, prog)  # is_valid_dst
        return 0

    def _bq_xmit_all(self, bq: _DevBulkQueue) -> None:
        frames, bq.frames = bq.frames, []
        for frame in frames:
            self._xmit(bq.dev, frame, bq.prog, generic=False, dev_rx=bq.dev_rx)

    def _xmit(self, dev: Netdev, frame: XdpFrame, prog: BpfProg | None, *, generic: bool,
              dev_rx: Netdev | None = None) -> None:
        """dev_map_bpf_prog_run(_skb), then ndo_xdp_xmit or generic_xdp_tx."""
        if prog is not None:
            rx = dev_rx or frame.dev_rx
            # the native path's xdp_rxq_info is a bare one: queue 0
            run = run_xdp(self.runtime, prog, frame, ingress_ifindex=rx.ifindex,
                          rx_queue_index=frame.rx_queue if generic else 0,
                          egress_ifindex=dev.ifindex)
            if run.action != XdpAction.PASS:
                return  # XDP_DROP, XDP_ABORTED and any other action drop the frame
            frame = run.frame
        if generic:
            dev.wire(frame.data)
        else:
            dev.xdp_xmit(frame.data)

    # -- CPU maps ------------------------------------------------------------------------------
    def cpu_enqueue(self, map_id: int, entry: tuple[int, int, Any], frame: XdpFrame) -> int:
        """cpu_map_enqueue / cpu_map_generic_redirect onto CPU ``entry`` of map ``map_id``."""
        cpu, qsize, prog = entry
        q = self._cpu_queues.get((map_id, cpu))
        if q is None:
            q = self._cpu_queues[(map_id, cpu)] = _CpuQueue(qsize, prog)
            self.cpu_flush.insert(0, q)
        if self.generic:
            self._to_ring(q, [frame])
            return 0
        if len(q.bulk) == CPU_MAP_BULK_SIZE:
            self._to_ring(q, q.bulk)
            q.bulk = []
        q.bulk.append(frame)
        return 0

    @staticmethod
    def _to_ring(q: _CpuQueue, frames: list[XdpFrame]) -> None:
        """bq_flush_to_queue: what doesn't fit in the ring is dropped."""
        for frame in frames:
            if len(q.ring) < q.qsize:
                q.ring.append(frame)
            else:
                q.drops += 1

    def _cpu_map_kthread(self, q: _CpuQueue) -> None:
        """cpu_map_kthread_run: the entry's program, then the stack.

        The kthread runs here, nested in the poll that woke it. A frame the stack
        sends back into a CPU map (generic XDP redirecting what the CPU map
        passed) would circle forever, as it does on the kernel; past
        KTHREAD_NESTING_LIMIT nested runs the frames are dropped instead."""
        frames, q.ring = q.ring, []
        depth = self.runtime.hooks.get("cpumap_kthread_depth", 0)
        if depth >= KTHREAD_NESTING_LIMIT:
            q.drops += len(frames)
            return
        self.runtime.hooks["cpumap_kthread_depth"] = depth + 1
        try:
            self._cpu_map_run(q, frames)
        finally:
            self.runtime.hooks["cpumap_kthread_depth"] = depth

    def _cpu_map_run(self, q: _CpuQueue, frames: list[XdpFrame]) -> None:
        ctx = XdpNetContext(self.runtime, generic=self.generic)
        passed: list[XdpFrame] = []
        for frame in frames:
            if q.prog is None:
                passed.append(frame)
                continue
            # the kthread's xdp_rxq_info names the device only ("TODO: report
            # queue_index"): queue 0, also for what the program redirects
            if not self.generic:
                frame = attrs.evolve(frame, rx_queue=0)
            run = run_xdp(self.runtime, q.prog, frame, ingress_ifindex=frame.dev_rx.ifindex,
                          rx_queue_index=frame.rx_queue)
            if run.action == XdpAction.PASS:
                passed.append(run.frame)
            elif run.action == XdpAction.REDIRECT:
                xdp_do_redirect(ctx, run.frame, run.info)
        ctx.flush()
        for frame in passed:  # netif_receive_skb_list on the receiving device
            frame.dev_rx.receive(frame.data, from_stack=True)

    # -- the flush -----------------------------------------------------------------------------
    def flush(self) -> None:
        """xdp_do_flush: device queues, then CPU map queues (their kthreads run)."""
        dev_flush, self.dev_flush = self.dev_flush, []
        for bq in dev_flush:
            self._bq_xmit_all(bq)
        cpu_flush, self.cpu_flush = self.cpu_flush, []
        self._cpu_queues = {}
        for q in cpu_flush:
            self._to_ring(q, q.bulk)
            q.bulk = []
        for q in cpu_flush:
            self._cpu_map_kthread(q)


def _dev_target(ctx: XdpNetContext, frame: XdpFrame, ri: Any, res: RedirectResult) -> int:
    _, dev, prog = ri.tgt_value
    res.ifindex = dev.ifindex
    return ctx.dev_enqueue(dev, frame, prog)


def _broadcast(ctx: XdpNetContext, frame: XdpFrame, ri: Any, res: RedirectResult) -> int:
    return ctx.dev_enqueue_multi(ri.map, frame, bool(ri.flags & BPF_F_EXCLUDE_INGRESS))


def _cpu_target(ctx: XdpNetContext, frame: XdpFrame, ri: Any, res: RedirectResult) -> int:
    return ctx.cpu_enqueue(ri.map_id, ri.tgt_value, frame)


def _xsk_target(ctx: XdpNetContext, frame: XdpFrame, ri: Any, res: RedirectResult) -> int:
    return int(ri.tgt_value.rcv(frame.dev_rx, frame.rx_queue, frame.data, frame.meta))


_Handler = Callable[[XdpNetContext, XdpFrame, Any, RedirectResult], int]
#: map type -> how xdp_do_redirect sends the frame there.
_BY_MAP_TYPE: dict[int, _Handler] = {
    MapType.DEVMAP: _dev_target,
    MapType.DEVMAP_HASH: _dev_target,
    MapType.CPUMAP: _cpu_target,
    MapType.XSKMAP: _xsk_target,
}


def xdp_ok_fwd_dev(dev: Netdev, length: int) -> bool:
    """xdp_ok_fwd_dev: the frame fits the device's MTU (plus Ethernet and VLAN
    headers)."""
    return length <= dev.mtu + ETH_HLEN + VLAN_HLEN


def frame_fits(frame: XdpFrame) -> bool:
    """xdp_convert_buff_to_frame: the headroom must still hold a struct xdp_frame."""
    return frame.headroom >= XDP_FRAME_SIZE


def xdp_do_redirect(ctx: XdpNetContext, frame: XdpFrame, ri: Any) -> RedirectResult:
    """xdp_do_redirect / xdp_do_generic_redirect for ``frame`` as ``ri`` (the
    program's RedirectInfo, or None) says."""
    if ri is None:
        return RedirectResult(err=errno.EBADRQC)
    map_type, map_id = ri.map_type, ri.map_id
    res = RedirectResult(map_type=map_type, key=ri.tgt_index, flags=ri.flags)
    if not ctx.generic and not frame_fits(frame) and map_type != MapType.XSKMAP:
        res.err = errno.EOVERFLOW
        return res
    if map_type == MapType.UNSPEC and map_id == INT_MAX:
        res.ifindex = ri.tgt_index
        dev = frame.dev_rx.net.device(ri.tgt_index)
        res.err = errno.EINVAL if dev is None else ctx.dev_enqueue(dev, frame, None)
        return res
    if map_type in (MapType.DEVMAP, MapType.DEVMAP_HASH) and ri.flags & BPF_F_BROADCAST:
        res.err = errno.ENOENT if ri.map is None else _broadcast(ctx, frame, ri, res)
        return res
    handler = _BY_MAP_TYPE.get(map_type)
    res.err = errno.EBADRQC if handler is None else handler(ctx, frame, ri, res)
    return res
