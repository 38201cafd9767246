"""Ring buffer helpers (kernel/bpf/ringbuf.c), over :class:`~pyebpf.maps.ringbuf.RingBufMap`.

``bpf_ringbuf_reserve`` gives the sample's address or NULL (flags, size or no
room), ``bpf_ringbuf_submit``/``discard`` commit a sample found by its address,
``bpf_ringbuf_output`` copies a buffer in (-EINVAL for unknown flags, -EAGAIN
when full) and ``bpf_ringbuf_query`` reads the positions. Records are read in
Python with :class:`~pyebpf.maps.ringbuf.RingBufferConsumer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BpfError, BpfFault
from . import register_helper
from ._util import map_at, neg, runtime_of
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..maps.ringbuf import RingBufMap

A = ArgType


def _ringbuf(vm: Vm, addr: int, helper: str) -> RingBufMap:
    from ..maps.ringbuf import RingBufMap

    m = map_at(vm, addr, helper)
    if not isinstance(m, RingBufMap):
        raise BpfFault(f"bpf_{helper} with a {m.map_type.name} map (it needs a RINGBUF)")
    return m


@register_helper(131, "ringbuf_reserve", Proto(RetType.RET_PTR_TO_RINGBUF_MEM_OR_NULL, (
    A.ARG_CONST_MAP_PTR, A.ARG_CONST_ALLOC_SIZE_OR_ZERO, A.ARG_ANYTHING)), tier="base")
def ringbuf_reserve(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    addr = _ringbuf(vm, r1, "ringbuf_reserve").reserve(r2, r3)
    return 0 if addr is None else addr


_COMMIT = Proto(RetType.RET_VOID, (A.ARG_PTR_TO_RINGBUF_MEM | TypeFlag.OBJ_RELEASE,
                                   A.ARG_ANYTHING))


@register_helper(132, "ringbuf_submit", _COMMIT, tier="base")
def ringbuf_submit(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..maps.ringbuf import ringbuf_submit as submit

    submit(runtime_of(vm, "ringbuf_submit"), r1, r2)
    return 0


@register_helper(133, "ringbuf_discard", _COMMIT, tier="base")
def ringbuf_discard(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..maps.ringbuf import ringbuf_discard as discard

    discard(runtime_of(vm, "ringbuf_discard"), r1, r2)
    return 0


@register_helper(130, "ringbuf_output", Proto(RetType.RET_INTEGER, (
    A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE_OR_ZERO,
    A.ARG_ANYTHING)), tier="base")
def ringbuf_output(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    rb = _ringbuf(vm, r1, "ringbuf_output")
    data = vm.memory.read(r2, r3)
    try:
        rb.output(data, r4)
    except BpfError as e:
        return neg(e.errno)
    return 0


@register_helper(134, "ringbuf_query", Proto(RetType.RET_INTEGER, (
    A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING)), tier="base")
def ringbuf_query(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _ringbuf(vm, r1, "ringbuf_query").query(r2)
