"""The numeric open-coded iterator, kernel/bpf/bpf_iter.c: ``bpf_iter_num_{new,next,destroy}``.

``struct bpf_iter_num`` is 8 opaque bytes on the program's stack; the kernel
keeps ``struct bpf_iter_num_kern { int cur; int end; }`` there. The contract
the verifier relies on (and libbpf's ``bpf_for``/``bpf_repeat`` use):

- ``new(it, start, end)`` makes an iterator over ``[start, end)``. A bad range
  (``start > end``: -EINVAL; more than BPF_MAX_LOOPS elements: -E2BIG) still
  leaves a valid, *empty* iterator, so the program may always go on calling
  next and destroy.
- ``next(it)`` returns a pointer to the current value (the ``cur`` field
  inside the iterator), or NULL once the range is done; after the first NULL it
  returns NULL forever.
- ``destroy(it)`` is called exactly once (the verifier checks that).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..helpers._util import neg
from ..helpers.proto import RetType
from . import KF, KfArg, KfArgKind, register_kfunc

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

#: include/linux/bpf.h: the most iterations bpf_loop and numeric iterators allow.
BPF_MAX_LOOPS = 8 * 1024 * 1024
BPF_ITER_NUM_SIZE = 8

#: BTF ids of the reference 6.18 vmlinux.
BTF_ID_NEW = 64242
BTF_ID_NEXT = 64245
BTF_ID_DESTROY = 64239

_IT = KfArg(KfArgKind.PTR_TO_ITER, "it", iter_type="num", iter_size=BPF_ITER_NUM_SIZE)


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def _state(vm: Vm, it: int) -> tuple[int, int]:
    raw = vm.memory.read(it, BPF_ITER_NUM_SIZE)
    return _s32(int.from_bytes(raw[:4], "little")), _s32(int.from_bytes(raw[4:], "little"))


def _set(vm: Vm, it: int, cur: int, end: int) -> None:
    vm.memory.write(it, (cur & 0xFFFF_FFFF).to_bytes(4, "little")
                    + (end & 0xFFFF_FFFF).to_bytes(4, "little"))


@register_kfunc("bpf_iter_num_new", BTF_ID_NEW,
                (_IT, KfArg(KfArgKind.SCALAR, "start"), KfArg(KfArgKind.SCALAR, "end")),
                RetType.RET_INTEGER, KF.ITER_NEW)
def bpf_iter_num_new(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    start, end = _s32(r2), _s32(r3)
    if start > end:
        _set(vm, r1, 0, 0)
        return neg(errno.EINVAL)
    if end - start > BPF_MAX_LOOPS:
        _set(vm, r1, 0, 0)
        return neg(errno.E2BIG)
    # next() comes first and moves cur to exactly start (underflow is harmless).
    _set(vm, r1, start - 1, end)
    return 0


@register_kfunc("bpf_iter_num_next", BTF_ID_NEXT, (_IT,), RetType.RET_PTR_TO_MEM,
                KF.ITER_NEXT | KF.RET_NULL, ret_size=4)
def bpf_iter_num_next(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    cur, end = _state(vm, r1)
    # (s64)(s->cur + 1) >= s->end: the increment wraps as the kernel's int does.
    if _s32(cur + 1) >= end:
        _set(vm, r1, 0, 0)
        return 0
    _set(vm, r1, cur + 1, end)
    return r1  # &s->cur: the first field of the iterator itself


@register_kfunc("bpf_iter_num_destroy", BTF_ID_DESTROY, (_IT,), RetType.RET_VOID,
                KF.ITER_DESTROY)
def bpf_iter_num_destroy(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    _set(vm, r1, 0, 0)
