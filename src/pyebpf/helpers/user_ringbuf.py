"""``bpf_user_ringbuf_drain(map, callback, ctx, flags)`` (kernel/bpf/ringbuf.c):
call ``callback(dynptr, ctx)`` for each sample user space committed to a
USER_RINGBUF map (see :meth:`~pyebpf.maps.user_ringbuf.UserRingBufMap.drain`).

The callback runs through :meth:`~pyebpf.engine.interpreter.Vm.call_function`
with r1 pointing to a ``BPF_DYNPTR_TYPE_LOCAL`` dynptr over the sample (read
it with bpf_dynptr_read / bpf_dynptr_data) and r2 = ``ctx``; returning 1
stops the drain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BpfFault
from . import register_helper
from ._util import map_at, neg
from .dynptr import make_dynptr
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType


@register_helper(209, "user_ringbuf_drain", Proto(RetType.RET_INTEGER, (
    A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_FUNC, A.ARG_PTR_TO_STACK_OR_NULL, A.ARG_ANYTHING)),
    tier="cap_bpf")
def user_ringbuf_drain(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..maps.user_ringbuf import UserRingBufMap

    m = map_at(vm, r1, "user_ringbuf_drain")
    if not isinstance(m, UserRingBufMap):
        raise BpfFault(f"bpf_user_ringbuf_drain with a {m.map_type.name} map (it needs a "
                       "USER_RINGBUF)")
    mem = vm.memory
    # The dynptr lives on the helper's (kernel) stack. Programs can't store into it
    # (a CONST_PTR_TO_DYNPTR is no memory pointer), but kfuncs may change it
    # (bpf_dynptr_adjust takes a const dynptr): writable, renewed for each sample.
    region = mem.map(bytearray(16), kind="dynptr", name="user_ringbuf sample")

    def callback(addr: int, length: int) -> int:
        region.buf[:] = make_dynptr(addr, length)
        return vm.call_function(r2, region.base, r3, 0, 0, 0) & 0xFFFF_FFFF_FFFF_FFFF

    try:
        ret = m.drain(callback, r4)
    finally:
        mem.unmap(region)
    return neg(-ret) if ret < 0 else ret
