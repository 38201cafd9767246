"""Dynptr helpers over ``struct bpf_dynptr_kern`` (kernel/bpf/helpers.c):
``bpf_dynptr_from_mem`` (a LOCAL dynptr over a map value) and
``bpf_dynptr_read/write/data`` on dynptrs of any type (local ones, ringbuf
reservations, bpf_user_ringbuf_drain's samples, skb and xdp packets).

A dynptr is 16 bytes: u64 ``data``, u32 ``size`` (the low 24 bits are the
size, bits 28-30 the ``enum bpf_dynptr_type``, bit 31 read-only), u32
``offset``. ``bpf_dynptr_read(dst, len, src, offset, flags)`` copies out
(-EINVAL for a NULL dynptr or non-zero flags, -E2BIG past its end; ``dst``
left alone on error), ``bpf_dynptr_write(dst, offset, src, len, flags)`` copies
in (-EINVAL also for a read-only dynptr), ``bpf_dynptr_data(ptr, offset,
len)`` gives a pointer to the bytes or NULL.

LOCAL and RINGBUF dynptrs hold the bytes' address; SKB and XDP ones (made by
the kfuncs ``bpf_dynptr_from_skb`` / ``bpf_dynptr_from_xdp``) go through the
packet, and ``bpf_dynptr_data`` gives NULL for them (programs use
``bpf_dynptr_slice``). The helpers and the kfuncs share one reading of
``struct bpf_dynptr_kern`` and one ``__bpf_dynptr_read``/``__bpf_dynptr_write``
(:mod:`pyebpf.kfuncs.dynptr`).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from . import register_helper
from ._util import M32, check_writable, neg
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType
_DYNPTR = struct.Struct("<QII")
DYNPTR_SIZE_MASK = 0xFFFFFF
DYNPTR_TYPE_SHIFT = 28
DYNPTR_RDONLY_BIT = 1 << 31
BPF_DYNPTR_TYPE_LOCAL, BPF_DYNPTR_TYPE_RINGBUF = 1, 2
#: enum bpf_dynptr_type: the dynptrs over a packet (and an skb's metadata).
BPF_DYNPTR_TYPE_SKB, BPF_DYNPTR_TYPE_XDP, BPF_DYNPTR_TYPE_SKB_META = 3, 4, 5
_PACKET_TYPES = (BPF_DYNPTR_TYPE_SKB, BPF_DYNPTR_TYPE_XDP, BPF_DYNPTR_TYPE_SKB_META)
_RDONLY_DYNPTR = A.ARG_PTR_TO_DYNPTR | TypeFlag.MEM_RDONLY


def make_dynptr(data: int, size: int, dtype: int = BPF_DYNPTR_TYPE_LOCAL,
                rdonly: bool = False) -> bytes:
    """bpf_dynptr_init: the 16 bytes of a dynptr to ``size`` bytes at ``data``."""
    word = size | dtype << DYNPTR_TYPE_SHIFT | (DYNPTR_RDONLY_BIT if rdonly else 0)
    return _DYNPTR.pack(data, word, 0)


@register_helper(197, "dynptr_from_mem", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE_OR_ZERO, A.ARG_ANYTHING,
    A.ARG_PTR_TO_DYNPTR | TypeFlag.DYNPTR_TYPE_LOCAL | TypeFlag.MEM_UNINIT | TypeFlag.MEM_WRITE)),
    tier="cap_bpf")
def dynptr_from_mem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A LOCAL dynptr over ``size`` bytes of a map value (the verifier refuses other
    memory): -E2BIG past DYNPTR_MAX_SIZE, -EINVAL for flags (the dynptr is NULL then)."""
    size = r2 & M32
    err = errno.E2BIG if size > DYNPTR_SIZE_MASK else errno.EINVAL if r3 else 0
    vm.memory.write(r4, bytes(_DYNPTR.size) if err else make_dynptr(r1, size))
    return neg(err) if err else 0


@register_helper(201, "dynptr_read", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE_OR_ZERO, _RDONLY_DYNPTR, A.ARG_ANYTHING,
    A.ARG_ANYTHING)), tier="cap_bpf")
def dynptr_read(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..kfuncs.dynptr import DynptrKern, dynptr_read_bytes

    length = r2 & M32
    check_writable(vm.memory, r1, length)
    return neg(-dynptr_read_bytes(vm, r1, length, DynptrKern.load(vm, r3), r4 & M32, r5))


@register_helper(202, "dynptr_write", Proto(RetType.RET_INTEGER, (
    _RDONLY_DYNPTR, A.ARG_ANYTHING, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY,
    A.ARG_CONST_SIZE_OR_ZERO, A.ARG_ANYTHING)), tier="cap_bpf")
def dynptr_write(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..kfuncs.dynptr import DynptrKern, dynptr_write_bytes

    return neg(-dynptr_write_bytes(vm, DynptrKern.load(vm, r1), r2 & M32, r3, r4 & M32, r5))


@register_helper(203, "dynptr_data", Proto(RetType.RET_PTR_TO_DYNPTR_MEM_OR_NULL, (
    _RDONLY_DYNPTR, A.ARG_ANYTHING, A.ARG_CONST_ALLOC_SIZE_OR_ZERO)), tier="cap_bpf")
def dynptr_data(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..kfuncs.dynptr import DynptrKern

    p = DynptrKern.load(vm, r1)
    off, length = r2 & M32, r3 & M32
    if not p.data or not p.range_ok(off, length) or p.rdonly or p.type in _PACKET_TYPES:
        return 0
    return p.data + p.offset + off
