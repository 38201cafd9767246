"""Dynptr helpers over ``struct bpf_dynptr_kern`` (kernel/bpf/helpers.c), for the
local dynptrs pyebpf hands out (bpf_user_ringbuf_drain's samples).

A dynptr is 16 bytes: u64 ``data``, u32 ``size`` (the low 24 bits are the
size, bits 28-30 the ``enum bpf_dynptr_type``, bit 31 read-only), u32
``offset``. ``bpf_dynptr_read(dst, len, src, offset, flags)`` copies out
(-EINVAL for a NULL dynptr or non-zero flags, -E2BIG past its end; ``dst``
zeroed on error), ``bpf_dynptr_write(dst, offset, src, len, flags)`` copies
in (-EINVAL also for a read-only dynptr), ``bpf_dynptr_data(ptr, offset,
len)`` gives a pointer to the bytes or NULL.

Only LOCAL and RINGBUF dynptrs are modelled (skb/xdp ones are not made by
anything in pyebpf).
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
_RDONLY_DYNPTR = A.ARG_PTR_TO_DYNPTR | TypeFlag.MEM_RDONLY


def make_dynptr(data: int, size: int, dtype: int = BPF_DYNPTR_TYPE_LOCAL,
                rdonly: bool = False) -> bytes:
    """bpf_dynptr_init: the 16 bytes of a dynptr to ``size`` bytes at ``data``."""
    word = size | dtype << DYNPTR_TYPE_SHIFT | (DYNPTR_RDONLY_BIT if rdonly else 0)
    return _DYNPTR.pack(data, word, 0)


def _load(vm: Vm, addr: int) -> tuple[int, int, int, bool]:
    data, word, offset = _DYNPTR.unpack(vm.memory.read(addr, _DYNPTR.size))
    return data, word & DYNPTR_SIZE_MASK, offset, bool(word & DYNPTR_RDONLY_BIT)


def _range_ok(size: int, offset: int, length: int) -> bool:
    """bpf_dynptr_check_off_len."""
    return length <= size and offset <= size - length


@register_helper(201, "dynptr_read", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE_OR_ZERO, _RDONLY_DYNPTR, A.ARG_ANYTHING,
    A.ARG_ANYTHING)), tier="cap_bpf")
def dynptr_read(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    length = r2 & M32
    check_writable(vm.memory, r1, length)
    data, size, offset, _ = _load(vm, r3)
    off = r4 & M32
    err = 0
    if not data or r5:
        err = errno.EINVAL
    elif not _range_ok(size, off, length):
        err = errno.E2BIG
    if err:
        vm.memory.write(r1, bytes(length))
        return neg(err)
    vm.memory.write(r1, vm.memory.read(data + offset + off, length))
    return 0


@register_helper(202, "dynptr_write", Proto(RetType.RET_INTEGER, (
    _RDONLY_DYNPTR, A.ARG_ANYTHING, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY,
    A.ARG_CONST_SIZE_OR_ZERO, A.ARG_ANYTHING)), tier="cap_bpf")
def dynptr_write(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    data, size, offset, rdonly = _load(vm, r1)
    off, length = r2 & M32, r4 & M32
    if not data or rdonly:
        return neg(errno.EINVAL)
    if not _range_ok(size, off, length):
        return neg(errno.E2BIG)
    if r5:
        return neg(errno.EINVAL)
    vm.memory.write(data + offset + off, vm.memory.read(r3, length))
    return 0


@register_helper(203, "dynptr_data", Proto(RetType.RET_PTR_TO_DYNPTR_MEM_OR_NULL, (
    _RDONLY_DYNPTR, A.ARG_ANYTHING, A.ARG_CONST_ALLOC_SIZE_OR_ZERO)), tier="cap_bpf")
def dynptr_data(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    data, size, offset, rdonly = _load(vm, r1)
    off, length = r2 & M32, r3 & M32
    if not data or not _range_ok(size, off, length) or rdonly:
        return 0
    return data + offset + off
