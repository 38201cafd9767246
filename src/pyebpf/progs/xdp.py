"""XDP programs: ``struct xdp_md`` and test-run (bpf_prog_test_run_xdp).

The packet sits in one buffer with XDP_PACKET_HEADROOM (256 bytes) before it
and room for ``struct skb_shared_info`` after, as in the kernel, so
``bpf_xdp_adjust_head/meta/tail`` move ``data``/``data_meta``/``data_end``
inside the same region. ``xdp_md`` is read-only to the program.
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
    if attr.flags & ~TestRunFlags.XDP_LIVE_FRAMES:
        raise BpfError(errno.EINVAL, f"invalid test-run flags {attr.flags:#x}")
    if attr.flags & TestRunFlags.XDP_LIVE_FRAMES:
        raise BpfError(errno.EOPNOTSUPP, "live-frames mode needs a real netdev")
    if attr.batch_size:
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
                or meta > XDP_PACKET_HEADROOM - XDP_FRAME_SIZE or size - meta < ETH_HLEN:
            raise BpfError(errno.EINVAL, "invalid xdp_md in ctx_in")
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
    max_data = PAGE_SIZE - headroom - XDP_TAILROOM
    if size < ETH_HLEN or size > PAGE_SIZE - headroom - XDP_TAILROOM:
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
