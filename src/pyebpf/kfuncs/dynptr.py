"""The dynptr kfuncs (kernel/bpf/helpers.c, net/core/filter.c).

``bpf_dynptr_from_skb`` / ``bpf_dynptr_from_xdp`` make a dynptr over a
program's packet (``bpf_dynptr_from_skb_meta`` over the skb's metadata);
``bpf_dynptr_slice`` / ``bpf_dynptr_slice_rdwr`` give a pointer to
``buffer__szk`` bytes of any dynptr (into the packet where they are
contiguous, else copied into the optional buffer, else NULL);
``bpf_dynptr_adjust`` narrows a dynptr to ``[start, end)``;
``bpf_dynptr_is_null`` / ``bpf_dynptr_is_rdonly`` / ``bpf_dynptr_size``
inspect one; ``bpf_dynptr_clone`` copies one (the verifier makes the clone
share the parent's reference); ``bpf_dynptr_copy`` and ``bpf_dynptr_memset``
move and fill bytes through dynptrs of any type.

The 16 bytes of a dynptr are ``struct bpf_dynptr_kern`` (:class:`DynptrKern`,
the layout of :mod:`pyebpf.helpers.dynptr`). As in the kernel, ``data`` of an
skb or xdp dynptr is the packet's owner (here the ctx pointer, behind which
sit the SkBuff / XdpBuff), not the bytes: reads and writes go through the
packet helpers' code (``__bpf_skb_load_bytes``, ``__bpf_xdp_store_bytes``
...), so they see the packet as it is now, after any helper moved it. An skb
dynptr is read-only in program types that may not write packets
(``bpf_dynptr_from_skb_rdonly``). pyebpf's skbs and XDP buffers are linear, so
a slice inside the dynptr is a pointer into the packet, unless the packet
shrank since the dynptr was made.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

import attrs

from ..helpers._util import M32, neg, s64
from ..helpers.dynptr import DYNPTR_RDONLY_BIT, DYNPTR_SIZE_MASK, DYNPTR_TYPE_SHIFT
from ..helpers.proto import RetType
from ..uapi import ProgType
from ..verifier.dynptr import BpfDynptrType
from . import KF, KfArg, KfArgKind, register_kfunc

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..progs.skb import SkBuff

#: BTF ids of the reference 6.18 vmlinux.
BTF_ID_FROM_SKB = 63866
BTF_ID_FROM_XDP = 63874
BTF_ID_FROM_SKB_META = 63869
BTF_ID_SLICE = 63895
BTF_ID_SLICE_RDWR = 63897
BTF_ID_ADJUST = 63851
BTF_ID_IS_NULL = 63879
BTF_ID_IS_RDONLY = 63881
BTF_ID_SIZE = 63892
BTF_ID_CLONE = 63856
BTF_ID_COPY = 63859
BTF_ID_MEMSET = 63884

P = ProgType
#: net/core/filter.c bpf_kfunc_init: the program types bpf_kfunc_set_skb is registered for.
SKB_PROG_TYPES = (P.SCHED_CLS, P.SCHED_ACT, P.SK_SKB, P.SOCKET_FILTER, P.CGROUP_SKB, P.LWT_OUT,
                  P.LWT_IN, P.LWT_XMIT, P.LWT_SEG6LOCAL, P.NETFILTER, P.TRACING)
XDP_PROG_TYPES = (P.XDP,)
#: ... bpf_kfunc_set_skb_meta.
SKB_META_PROG_TYPES = (P.SCHED_CLS, P.SCHED_ACT)
#: The chunk bpf_dynptr_copy / bpf_dynptr_memset go through when no slice is contiguous.
CHUNK = 256

_KERN = struct.Struct("<QII")
_P = KfArg(KfArgKind.PTR_TO_DYNPTR, "p")


@attrs.define
class DynptrKern:
    """``struct bpf_dynptr_kern``: ``data``, the size word (size, type, read-only
    bit) and ``offset``, as a program's 16 stack bytes hold them."""

    data: int = 0
    size: int = 0
    type: int = BpfDynptrType.INVALID
    rdonly: bool = False
    offset: int = 0

    @classmethod
    def load(cls, vm: Vm, addr: int) -> DynptrKern:
        data, word, offset = _KERN.unpack(vm.memory.read(addr, _KERN.size))
        return cls(data, word & DYNPTR_SIZE_MASK, (word >> DYNPTR_TYPE_SHIFT) & 7,
                   bool(word & DYNPTR_RDONLY_BIT), offset)

    def store(self, vm: Vm, addr: int) -> None:
        word = (self.size & DYNPTR_SIZE_MASK) | (self.type & 7) << DYNPTR_TYPE_SHIFT \
            | (DYNPTR_RDONLY_BIT if self.rdonly else 0)
        vm.memory.write(addr, _KERN.pack(self.data, word, self.offset & M32))

    def range_ok(self, offset: int, length: int) -> bool:
        """bpf_dynptr_check_off_len (0 or -E2BIG)."""
        return length <= self.size and offset <= self.size - length


def _set_null(vm: Vm, addr: int) -> None:
    """bpf_dynptr_set_null: all 16 bytes zero."""
    DynptrKern().store(vm, addr)


def _pkt_at(p: DynptrKern, offset: int) -> int:
    """Where in the packet a dynptr offset lies (the kernel's u32 sum)."""
    return (p.offset + offset) & M32


def _meta_len(skb: SkBuff) -> int:
    """skb_metadata_len: the bytes before the MAC header (none in pyebpf's skbs)."""
    return skb.data - skb.cb_data_meta


def _meta_pointer(vm: Vm, p: DynptrKern, offset: int) -> int:
    """bpf_skb_meta_pointer: the metadata starts skb_metadata_len bytes before the
    MAC header."""
    from ..helpers.skb import skb_arg

    skb = skb_arg(vm, p.data)
    return skb.base + skb.mac_off - _meta_len(skb) + _pkt_at(p, offset)


# -- bytes through a dynptr of any type (__bpf_dynptr_read / __bpf_dynptr_write) ---------------

def dynptr_read_bytes(vm: Vm, dst: int, length: int, src: DynptrKern, offset: int,
                      flags: int) -> int:
    """__bpf_dynptr_read: 0 or a negative errno."""
    from ..helpers.packet import xdp_load_bytes
    from ..helpers.skb import skb_load_bytes

    if not src.data or flags:
        return -errno.EINVAL
    if not src.range_ok(offset, length):
        return -errno.E2BIG
    if src.type == BpfDynptrType.SKB:
        return s64(skb_load_bytes(vm, src.data, _pkt_at(src, offset), dst, length, 0))
    if src.type == BpfDynptrType.XDP:
        return s64(xdp_load_bytes(vm, src.data, _pkt_at(src, offset), dst, length, 0))
    at = _meta_pointer(vm, src, offset) if src.type == BpfDynptrType.SKB_META else \
        src.data + src.offset + offset
    vm.memory.write(dst, vm.memory.read(at, length))
    return 0


def dynptr_write_bytes(vm: Vm, dst: DynptrKern, offset: int, src: int, length: int,
                       flags: int) -> int:
    """__bpf_dynptr_write: 0 or a negative errno. An skb dynptr takes
    bpf_skb_store_bytes's flags; the others none."""
    from ..helpers.packet import skb_store_bytes, xdp_store_bytes

    if not dst.data or dst.rdonly:
        return -errno.EINVAL
    if not dst.range_ok(offset, length):
        return -errno.E2BIG
    if dst.type == BpfDynptrType.SKB:
        return s64(skb_store_bytes(vm, dst.data, _pkt_at(dst, offset), src, length, flags))
    if flags:
        return -errno.EINVAL
    if dst.type == BpfDynptrType.XDP:
        return s64(xdp_store_bytes(vm, dst.data, _pkt_at(dst, offset), src, length, 0))
    at = _meta_pointer(vm, dst, offset) if dst.type == BpfDynptrType.SKB_META else \
        dst.data + dst.offset + offset
    vm.memory.write(at, vm.memory.read(src, length))
    return 0


def dynptr_slice(vm: Vm, p: DynptrKern, offset: int, buffer: int, length: int) -> int:
    """bpf_dynptr_slice: the address of ``length`` bytes at ``offset``, or 0."""
    from ..helpers._util import ctx_object
    from ..progs.skb import skb_from_ctx
    from ..progs.xdp import XdpBuff

    if not p.data or not p.range_ok(offset, length):
        return 0
    if p.type == BpfDynptrType.SKB:
        skb = skb_from_ctx(vm.memory, p.data)
        at = _pkt_at(p, offset)
        # skb_header_pointer (with a buffer) / skb_pointer_if_linear (without): the
        # linear part, else skb_copy_bits, which finds nothing past a linear skb.
        if skb is None or at > skb.len or skb.len - at < length:
            return 0
        return skb.base + skb.data_off + at
    if p.type == BpfDynptrType.XDP:
        xdp = ctx_object(vm, p.data, XdpBuff, "xdp_md")
        at = _pkt_at(p, offset)
        linear = xdp.data_end - xdp.data
        # bpf_xdp_pointer; else bpf_xdp_copy_buf copies what the linear part has
        # (a test-run buffer has no fragments) into the buffer, if there is one.
        if at <= 0xFFFF and length <= 0xFFFF and at + length <= linear:
            return xdp.data + at
        if buffer and at < linear:
            vm.memory.write(buffer, vm.memory.read(xdp.data + at, min(length, linear - at)))
        return buffer
    if p.type == BpfDynptrType.SKB_META:
        return _meta_pointer(vm, p, offset)
    return p.data + p.offset + offset


# -- making dynptrs -----------------------------------------------------------------------------

def _from_packet(vm: Vm, ctx: int, flags: int, ptr: int, dtype: BpfDynptrType) -> int:
    from ..helpers.packet import xdp_get_buff_len
    from ..helpers.skb import skb_arg
    from ..verifier.mem import prog_may_write_packet

    if flags:
        _set_null(vm, ptr)
        return neg(errno.EINVAL)
    if dtype in (BpfDynptrType.SKB, BpfDynptrType.SKB_META):
        skb = skb_arg(vm, ctx)
        size = skb.len if dtype == BpfDynptrType.SKB else _meta_len(skb)
        prog_type = getattr(vm.owner, "prog_type", None)
        rdonly = prog_type is not None and not prog_may_write_packet(prog_type)
    else:
        size = xdp_get_buff_len(vm, ctx, 0, 0, 0, 0)
        rdonly = False
    DynptrKern(ctx, size, dtype, rdonly).store(vm, ptr)
    return 0


_UNINIT = KfArg(KfArgKind.PTR_TO_DYNPTR, "ptr__uninit", uninit=True)


@register_kfunc("bpf_dynptr_from_skb", BTF_ID_FROM_SKB,
                (KfArg(KfArgKind.PTR_TO_CTX, "s"), KfArg(KfArgKind.SCALAR, "flags"), _UNINIT),
                RetType.RET_INTEGER, KF.TRUSTED_ARGS, prog_types=SKB_PROG_TYPES)
def bpf_dynptr_from_skb(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A dynptr over the skb's packet (``skb->len`` bytes); flags must be 0."""
    return _from_packet(vm, r1, r2, r3, BpfDynptrType.SKB)


@register_kfunc("bpf_dynptr_from_xdp", BTF_ID_FROM_XDP,
                (KfArg(KfArgKind.PTR_TO_CTX, "x"), KfArg(KfArgKind.SCALAR, "flags"), _UNINIT),
                RetType.RET_INTEGER, prog_types=XDP_PROG_TYPES)
def bpf_dynptr_from_xdp(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A dynptr over the XDP buffer (xdp_get_buff_len bytes); flags must be 0."""
    return _from_packet(vm, r1, r2, r3, BpfDynptrType.XDP)


@register_kfunc("bpf_dynptr_from_skb_meta", BTF_ID_FROM_SKB_META,
                (KfArg(KfArgKind.PTR_TO_CTX, "skb_"), KfArg(KfArgKind.SCALAR, "flags"), _UNINIT),
                RetType.RET_INTEGER, KF.TRUSTED_ARGS, prog_types=SKB_META_PROG_TYPES)
def bpf_dynptr_from_skb_meta(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A dynptr over the skb's metadata (skb_metadata_len bytes: none in the skbs
    pyebpf builds, and none in the kernel's tc test runs); flags must be 0."""
    return _from_packet(vm, r1, r2, r3, BpfDynptrType.SKB_META)


# -- slices -------------------------------------------------------------------------------------

_SLICE_ARGS = (_P, KfArg(KfArgKind.SCALAR, "offset"),
               KfArg(KfArgKind.PTR_TO_MEM_SIZE, "buffer__opt", optional=True),
               KfArg(KfArgKind.MEM_SIZE, "buffer__szk", const=True))


@register_kfunc("bpf_dynptr_slice", BTF_ID_SLICE, _SLICE_ARGS, RetType.RET_PTR_TO_MEM,
                KF.RET_NULL)
def bpf_dynptr_slice(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A read-only pointer to ``buffer__szk`` bytes at ``offset``, or NULL."""
    return dynptr_slice(vm, DynptrKern.load(vm, r1), r2 & M32, r3, r4 & M32)


@register_kfunc("bpf_dynptr_slice_rdwr", BTF_ID_SLICE_RDWR, _SLICE_ARGS, RetType.RET_PTR_TO_MEM,
                KF.RET_NULL)
def bpf_dynptr_slice_rdwr(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """As bpf_dynptr_slice, writable; NULL for a read-only dynptr."""
    p = DynptrKern.load(vm, r1)
    if not p.data or p.rdonly:
        return 0
    return dynptr_slice(vm, p, r2 & M32, r3, r4 & M32)


# -- inspecting and adjusting -------------------------------------------------------------------

@register_kfunc("bpf_dynptr_adjust", BTF_ID_ADJUST,
                (_P, KfArg(KfArgKind.SCALAR, "start"), KfArg(KfArgKind.SCALAR, "end")))
def bpf_dynptr_adjust(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Narrow the dynptr to its bytes ``[start, end)``."""
    p = DynptrKern.load(vm, r1)
    start, end = r2 & M32, r3 & M32
    if not p.data or start > end:
        return neg(errno.EINVAL)
    if start > p.size or end > p.size:
        return neg(errno.ERANGE)
    p.offset = (p.offset + start) & M32
    p.size = end - start
    p.store(vm, r1)
    return 0


@register_kfunc("bpf_dynptr_is_null", BTF_ID_IS_NULL, (_P,))
def bpf_dynptr_is_null(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return int(not DynptrKern.load(vm, r1).data)


@register_kfunc("bpf_dynptr_is_rdonly", BTF_ID_IS_RDONLY, (_P,))
def bpf_dynptr_is_rdonly(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    p = DynptrKern.load(vm, r1)
    return int(bool(p.data) and p.rdonly)


@register_kfunc("bpf_dynptr_size", BTF_ID_SIZE, (_P,))
def bpf_dynptr_size(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The size; -EINVAL as a u32 for a NULL dynptr."""
    p = DynptrKern.load(vm, r1)
    return p.size if p.data else neg(errno.EINVAL) & M32


@register_kfunc("bpf_dynptr_clone", BTF_ID_CLONE,
                (_P, KfArg(KfArgKind.PTR_TO_DYNPTR, "clone__uninit", uninit=True)))
def bpf_dynptr_clone(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The clone is the same 16 bytes (a NULL parent gives a NULL clone, -EINVAL)."""
    p = DynptrKern.load(vm, r1)
    if not p.data:
        _set_null(vm, r2)
        return neg(errno.EINVAL)
    p.store(vm, r2)
    return 0


# -- moving bytes -------------------------------------------------------------------------------

@register_kfunc("bpf_dynptr_copy", BTF_ID_COPY,
                (KfArg(KfArgKind.PTR_TO_DYNPTR, "dst_ptr"), KfArg(KfArgKind.SCALAR, "dst_off"),
                 KfArg(KfArgKind.PTR_TO_DYNPTR, "src_ptr"), KfArg(KfArgKind.SCALAR, "src_off"),
                 KfArg(KfArgKind.SCALAR, "size")))
def bpf_dynptr_copy(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy ``size`` bytes from ``src`` at ``src_off`` to ``dst`` at ``dst_off``
    (overlap allowed): slices where both are contiguous, else through 256-byte chunks."""
    dst, src = DynptrKern.load(vm, r1), DynptrKern.load(vm, r3)
    dst_off, src_off, size = r2 & M32, r4 & M32, r5 & M32
    src_slice = dynptr_slice(vm, src, src_off, 0, size)
    dst_slice = dynptr_slice(vm, dst, dst_off, 0, size) if not dst.rdonly else 0
    if src_slice and dst_slice:
        vm.memory.write(dst_slice, vm.memory.read(src_slice, size))
        return 0
    if src_slice:
        return neg(-dynptr_write_bytes(vm, dst, dst_off, src_slice, size, 0))
    if dst_slice:
        return neg(-dynptr_read_bytes(vm, dst_slice, size, src, src_off, 0))
    if not dst.range_ok(dst_off, size) or not src.range_ok(src_off, size):
        return neg(errno.E2BIG)
    buf = vm.memory.map(bytearray(CHUNK), kind="kfunc", name="bpf_dynptr_copy buffer")
    try:
        off = 0
        while off < size:
            chunk = min(CHUNK, size - off)
            err = dynptr_read_bytes(vm, buf.base, chunk, src, src_off + off, 0) or \
                dynptr_write_bytes(vm, dst, dst_off + off, buf.base, chunk, 0)
            if err:
                return neg(-err)
            off += chunk
    finally:
        vm.memory.unmap(buf)
    return 0


@register_kfunc("bpf_dynptr_memset", BTF_ID_MEMSET,
                (_P, KfArg(KfArgKind.SCALAR, "offset"), KfArg(KfArgKind.SCALAR, "size"),
                 KfArg(KfArgKind.SCALAR, "val")))
def bpf_dynptr_memset(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Fill ``size`` bytes at ``offset`` with ``val``."""
    p = DynptrKern.load(vm, r1)
    offset, size, val = r2 & M32, r3 & M32, r4 & 0xFF
    at = dynptr_slice(vm, p, offset, 0, size) if p.data and not p.rdonly else 0
    if at:
        vm.memory.write(at, bytes([val]) * size)
        return 0
    if p.rdonly:
        return neg(errno.EINVAL)
    if not p.range_ok(offset, size):
        return neg(errno.E2BIG)
    buf = vm.memory.map(bytearray([val]) * CHUNK, kind="kfunc", name="bpf_dynptr_memset buffer")
    try:
        for off in range(0, size, CHUNK):
            err = dynptr_write_bytes(vm, p, offset + off, buf.base, min(CHUNK, size - off), 0)
            if err:
                return neg(-err)
    finally:
        vm.memory.unmap(buf)
    return 0
