"""XDP programs: ``struct xdp_md`` and test-run (bpf_prog_test_run_xdp).

The packet sits in one buffer with XDP_PACKET_HEADROOM (256 bytes) before it
and room for ``struct skb_shared_info`` after, as in the kernel, so
``bpf_xdp_adjust_head/meta/tail`` move ``data``/``data_meta``/``data_end``
inside the same region. ``xdp_md`` is read-only to the program.

A plain test run returns the action and the packet. With
BPF_F_TEST_XDP_LIVE_FRAMES (:func:`test_run_xdp_live`) the frames really go
where the program sends them: XDP_TX, redirects (pyebpf.links.xdp_redirect)
and XDP_PASS into the stack of the ingress device; retval is 0 and the packet
returned is the one passed in. Device and CPU map programs can't be test-run.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import BpfError
from ..uapi import AttachType, ProgType, TestRunFlags
from . import ProgTypeOps, register_prog_type
from .ctx import CtxField, CtxLayout, map_ctx
from .testrun import (
    ETH_HLEN,
    PAGE_SIZE,
    check_test_attr,
    ctx_finish,
    ctx_init,
    data_in,
    run_repeat,
    test_finish,
)

if TYPE_CHECKING:
    from ..attr import TestRunAttr
    from ..memory import Region
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["XDP_MD", "XdpBuff", "run_on_xdp", "xdp_frame"]

XDP_PACKET_HEADROOM = 256
#: sizeof(struct xdp_frame), kept at the head of the buffer; metadata at most
#: what skb_shared_info's u8 meta_len holds.
XDP_FRAME_SIZE = 40
XDP_META_MAX = 255
LOOPBACK_IFINDEX = 1
#: SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64.
XDP_TAILROOM = 320
#: sizeof(struct xdp_page_head): two struct xdp_buff before a live frame's data.
XDP_PAGE_HEAD_SIZE = 112
#: NAPI_POLL_WEIGHT (live frames' default batch) and TEST_XDP_MAX_BATCH.
NAPI_POLL_WEIGHT = 64
TEST_XDP_MAX_BATCH = 256
#: Program returns the kernel treats as actions (others are "invalid" but returned as is).
XDP_MD = CtxLayout("xdp_md", 24, [
    CtxField("data", 0, 4, pointer=True),
    CtxField("data_end", 4, 4, pointer=True),
    CtxField("data_meta", 8, 4, pointer=True),
    CtxField("ingress_ifindex", 12, 4),
    CtxField("rx_queue_index", 16, 4),
    CtxField("egress_ifindex", 20, 4),
])


@attrs.define
class XdpBuff:
    """The kernel's ``struct xdp_buff``: pointers into the packet region."""

    data_hard_start: int
    data: int
    data_end: int
    data_meta: int
    frame_end: int
    ingress_ifindex: int = 0
    rx_queue_index: int = 0
    egress_ifindex: int = 0


def xdp_frame(rt: Runtime, packet: bytes, *, headroom: int = XDP_PACKET_HEADROOM,
              meta_len: int = 0) -> tuple[XdpBuff, Region, bytearray]:
    """The frame a packet arrives in: a whole page (frame_sz = headroom + data +
    tailroom, so bpf_xdp_adjust_tail may grow the packet up to the shared-info
    tailroom), mapped; ``meta_len`` bytes of metadata sit before ``data``.
    The caller unmaps the region (``rt.unmap_later``)."""
    size = len(packet)
    max_data = PAGE_SIZE - headroom - XDP_TAILROOM
    buf = bytearray(headroom + max_data + XDP_TAILROOM)
    buf[headroom:headroom + size] = packet
    region = rt.memory.map(buf, kind="packet", name="xdp")
    base = region.base
    xdp = XdpBuff(data_hard_start=base, data=base + headroom + meta_len,
                  data_end=base + headroom + size, data_meta=base + headroom,
                  frame_end=base + len(buf) - XDP_TAILROOM)
    return xdp, region, buf


def run_on_xdp(rt: Runtime, prog: BpfProg, xdp: XdpBuff, repeat: int = 1) -> tuple[int, int]:
    """Run ``prog`` with ``xdp`` as its xdp_md: (r0 as u32, mean ns per run). The
    test run and the simulated netdev hook (pyebpf.links.netdev) both run here."""
    ctx_region = map_ctx(rt.memory, XDP_MD, xdp)
    try:
        return run_repeat(rt, prog, ctx_region.base, repeat)
    finally:
        rt.memory.unmap(ctx_region)


def _test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    from ..prog import TestRunResult

    check_test_attr(attr)
    if prog.expected_attach_type in (AttachType.XDP_DEVMAP, AttachType.XDP_CPUMAP):
        raise BpfError(errno.EINVAL, "devmap/cpumap programs can't be test-run")
    if attr.flags & ~TestRunFlags.XDP_LIVE_FRAMES:
        raise BpfError(errno.EINVAL, f"invalid test-run flags {attr.flags:#x}")
    live = bool(attr.flags & TestRunFlags.XDP_LIVE_FRAMES)
    batch_size = attr.batch_size
    if live:
        if not batch_size:
            batch_size = NAPI_POLL_WEIGHT
        elif batch_size > TEST_XDP_MAX_BATCH:
            raise BpfError(errno.E2BIG, f"batch_size {batch_size} is above "
                           f"{TEST_XDP_MAX_BATCH}")
    elif batch_size:
        raise BpfError(errno.EINVAL, "batch_size is for live-frames mode only")
    if attr.cpu:
        raise BpfError(errno.EINVAL, "XDP test runs take no cpu")
    ctx = ctx_init(rt, attr, XDP_MD.size)
    headroom = XDP_PACKET_HEADROOM
    packet = data_in(rt, attr)
    size = len(packet)
    meta_len = 0
    if ctx is not None:
        md = {f.name: int.from_bytes(ctx[f.offset:f.end], "little") for f in XDP_MD.fields}
        # There can't be user data before the metadata; metadata is whole u32s
        # (at most a u8's worth, xdp_metalen_invalid) taken from the headroom,
        # which must still hold a struct xdp_frame, and leaves an Ethernet header.
        meta = md["data"]
        if md["data_meta"] or md["data_end"] != size or meta > md["data_end"] \
                or meta % 4 or meta > XDP_META_MAX \
                or meta > XDP_PACKET_HEADROOM - XDP_FRAME_SIZE or size - meta < ETH_HLEN \
                or (live and (_out_given(attr.data_out) or _out_given(attr.ctx_out))):
            raise BpfError(errno.EINVAL, "invalid xdp_md in ctx_in (live frames take no "
                           "data_out/ctx_out with it)")
        if md["egress_ifindex"]:
            raise BpfError(errno.EINVAL, "egress_ifindex must be 0")
        if md["rx_queue_index"] and not md["ingress_ifindex"]:
            raise BpfError(errno.EINVAL, "rx_queue_index needs ingress_ifindex")
        if md["ingress_ifindex"]:
            # xdp_convert_md_to_buff: a device of the caller's namespace, and one of
            # its rx queues (simulated devices have one)
            from .skb import _netdev

            if _netdev(rt, md["ingress_ifindex"]) is None:
                raise BpfError(errno.ENODEV, f"no device with ifindex {md['ingress_ifindex']}")
            if md["rx_queue_index"] >= 1:
                raise BpfError(errno.EINVAL, f"the device has no rx queue "
                               f"{md['rx_queue_index']}")
        meta_len = md["data"]
        headroom -= meta_len
    # live frames: each page starts with a struct xdp_page_head
    max_data = PAGE_SIZE - headroom - XDP_TAILROOM - (XDP_PAGE_HEAD_SIZE if live else 0)
    if size < ETH_HLEN or size > max_data:
        raise BpfError(errno.EINVAL, f"packet of {size} bytes: XDP test runs take "
                       f"{ETH_HLEN}..{max_data}")
    xdp, region, buf = xdp_frame(rt, packet, headroom=headroom, meta_len=meta_len)
    # The frame arrives on the loopback device's first rx queue unless ctx_in
    # names another device.
    xdp.ingress_ifindex = LOOPBACK_IFINDEX
    if ctx is not None and int.from_bytes(ctx[12:16], "little"):
        xdp.ingress_ifindex = int.from_bytes(ctx[12:16], "little")
        xdp.rx_queue_index = int.from_bytes(ctx[16:20], "little")
    base = region.base
    if live:
        out = bytes(buf[xdp.data_meta - base:xdp.data_end - base])
        rt.unmap_later(region)
        retval, duration = 0, test_run_xdp_live(rt, prog, xdp, out, attr.repeat, batch_size)
    else:
        try:
            retval, duration = run_on_xdp(rt, prog, xdp, attr.repeat)
        finally:
            rt.unmap_later(region)
        out = bytes(buf[xdp.data_meta - base:xdp.data_end - base])
    ctx_out = None
    if ctx is not None:
        md_out = bytearray(ctx)  # xdp_convert_buff_to_md: only data/data_end change
        md_out[0:4] = (xdp.data - xdp.data_meta).to_bytes(4, "little")
        md_out[4:8] = (xdp.data_end - xdp.data_meta).to_bytes(4, "little")
        ctx_out = bytes(md_out)
    result = TestRunResult(retval=retval, duration=duration, data_out=out)
    ctx_bytes, ctx_size = ctx_finish(rt, attr, ctx_out)
    result = attrs.evolve(result, ctx_out=ctx_bytes, ctx_size_out=ctx_size)
    return test_finish(rt, attr, result)


def _out_given(buf: Any) -> bool:
    """Whether the caller passes a data_out/ctx_out buffer (LOG_BUF_AUTO, the
    default, is a buffer pyebpf allocates: only None is the NULL pointer)."""
    return buf is not None


def test_run_xdp_live(rt: Runtime, prog: BpfProg, xdp: XdpBuff, packet: bytes, repeat: int,
                      batch_size: int) -> int:
    """bpf_test_run_xdp_live: ``repeat`` copies of the frame (metadata first) run
    in batches of ``batch_size``, as NAPI polls of the ingress device: XDP_TX
    becomes a redirect back out of that device, XDP_REDIRECT is carried out
    (pyebpf.links.xdp_redirect), both flushed at the end of the batch, then
    XDP_PASS frames enter the device's stack; the rest are dropped. The
    program's rx queue is the test's own (queue 0). Returns the mean ns per frame."""
    from ..helpers.packet import RedirectInfo
    from ..links.netns import current_net
    from ..links.xdp_redirect import INT_MAX, XdpFrame, XdpNetContext, run_xdp, xdp_do_redirect
    from ..uapi import XdpAction

    dev = current_net(rt).device(xdp.ingress_ifindex)
    assert dev is not None  # the ctx check found it
    meta_len = xdp.data - xdp.data_meta
    frame = XdpFrame(packet[meta_len:], dev, packet[:meta_len],
                     xdp.data_meta - xdp.data_hard_start)
    repeat = max(repeat, 1)
    start = rt.clock.ns
    done = 0
    while done < repeat:
        batch = min(repeat - done, batch_size)
        ctx = XdpNetContext(rt)
        passed: list[bytes] = []
        for _ in range(batch):
            run = run_xdp(rt, prog, frame, ingress_ifindex=dev.ifindex)
            if run.action == XdpAction.TX:
                xdp_do_redirect(ctx, run.frame, RedirectInfo(
                    tgt_index=dev.ifindex, map_id=INT_MAX, map_type=0))
            elif run.action == XdpAction.REDIRECT:
                xdp_do_redirect(ctx, run.frame, run.info)
            elif run.action == XdpAction.PASS:
                passed.append(run.frame.data)
        ctx.flush()
        for data in passed:  # xdp_recv_frames: netif_receive_skb_list
            dev.receive(data, from_stack=True)
        done += batch
    return (rt.clock.ns - start) // repeat


# RegType values (pyebpf.verifier.types), spelled here to keep progs free of the verifier.
_SCALAR, _PTR_TO_PACKET_META, _PTR_TO_PACKET, _PTR_TO_PACKET_END = 1, 7, 8, 9
_PACKET_REGS = {XDP_MD["data"].offset: _PTR_TO_PACKET,
                XDP_MD["data_meta"].offset: _PTR_TO_PACKET_META,
                XDP_MD["data_end"].offset: _PTR_TO_PACKET_END}


def xdp_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """xdp_is_valid_access: aligned u32 reads only; egress_ifindex only for
    programs run from a devmap (BPF_XDP_DEVMAP)."""
    if off == XDP_MD["egress_ifindex"].offset and \
            getattr(prog, "expected_attach_type", 0) != AttachType.XDP_DEVMAP:
        return None
    if write or off < 0 or off >= XDP_MD.size or off % size or size != 4:
        return None
    return _PACKET_REGS.get(off, _SCALAR)


def _check_attach(attr: object) -> None:
    eat = getattr(attr, "expected_attach_type", 0)
    allowed = (0, AttachType.XDP, AttachType.XDP_DEVMAP, AttachType.XDP_CPUMAP)
    if eat not in allowed:
        raise BpfError(errno.EINVAL, f"expected_attach_type {eat} is not an XDP attach type")


register_prog_type(ProgTypeOps(ProgType.XDP, ctx=XDP_MD, test_run=_test_run,
                               check_attach=_check_attach,
                               is_valid_access=xdp_is_valid_access))
