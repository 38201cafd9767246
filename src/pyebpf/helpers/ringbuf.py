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


# -- ringbuf dynptrs (bpf_ringbuf_reserve_dynptr / submit_dynptr / discard_dynptr) --------------
# The sample is a RINGBUF dynptr the program must submit or discard (the verifier
# tracks it as a reference), even when the reservation failed (a NULL dynptr).

#: DYNPTR_MAX_SIZE: the largest size a dynptr describes (24 bits).
DYNPTR_MAX_SIZE = (1 << 24) - 1
_RINGBUF_DYNPTR = A.ARG_PTR_TO_DYNPTR | TypeFlag.DYNPTR_TYPE_RINGBUF


@register_helper(198, "ringbuf_reserve_dynptr", Proto(RetType.RET_INTEGER, (
    A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING, A.ARG_ANYTHING,
    _RINGBUF_DYNPTR | TypeFlag.MEM_UNINIT)), tier="cap_bpf")
def ringbuf_reserve_dynptr(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Reserve ``size`` bytes as a dynptr: -EINVAL for flags or no room, -E2BIG
    past DYNPTR_MAX_SIZE (the dynptr is NULL then)."""
    import errno

    from .dynptr import BPF_DYNPTR_TYPE_RINGBUF, make_dynptr

    size = r2 & 0xFFFF_FFFF
    err = errno.EINVAL if r3 else errno.E2BIG if size > DYNPTR_MAX_SIZE else 0
    addr = None if err else _ringbuf(vm, r1, "ringbuf_reserve_dynptr").reserve(size, 0)
    if addr is None:
        vm.memory.write(r4, bytes(16))  # bpf_dynptr_set_null
        return neg(err or errno.EINVAL)
    vm.memory.write(r4, make_dynptr(addr, size, BPF_DYNPTR_TYPE_RINGBUF))
    return 0


def _commit_dynptr(vm: Vm, ptr: int, flags: int, discard: bool) -> int:
    from ..maps.ringbuf import ringbuf_discard as discard_sample
    from ..maps.ringbuf import ringbuf_submit as submit_sample

    data = int.from_bytes(vm.memory.read(ptr, 8), "little")
    if data:  # a NULL dynptr (a failed reservation) has nothing to commit
        rt = runtime_of(vm, "ringbuf_discard_dynptr" if discard else "ringbuf_submit_dynptr")
        (discard_sample if discard else submit_sample)(rt, data, flags)
        vm.memory.write(ptr, bytes(16))
    return 0


_COMMIT_DYNPTR = Proto(RetType.RET_VOID, (_RINGBUF_DYNPTR | TypeFlag.OBJ_RELEASE,
                                          A.ARG_ANYTHING))


@register_helper(199, "ringbuf_submit_dynptr", _COMMIT_DYNPTR, tier="cap_bpf")
def ringbuf_submit_dynptr(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _commit_dynptr(vm, r1, r2, discard=False)


@register_helper(200, "ringbuf_discard_dynptr", _COMMIT_DYNPTR, tier="cap_bpf")
def ringbuf_discard_dynptr(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _commit_dynptr(vm, r1, r2, discard=True)
