"""``bpf_kptr_xchg``, ``bpf_per_cpu_ptr``, ``bpf_this_cpu_ptr`` (kernel/bpf/helpers.c).

``bpf_kptr_xchg(dst, ptr)`` swaps the pointer in a referenced ``__kptr`` field
(of a map value, or of an allocated object) for ``ptr`` and returns the old
one: the reference the program held on ``ptr`` moves into the field, the one
the field held on the old pointer moves to the program (the verifier tracks
both; :mod:`pyebpf.verifier.alloc`). The map releases what its fields still
hold when the element goes away (:func:`pyebpf.kfuncs.obj.map_free_kptrs`).

``bpf_this_cpu_ptr(p)`` / ``bpf_per_cpu_ptr(p, cpu)`` turn a per-CPU pointer
(a ``bpf_percpu_obj_new`` object) into the address of the running CPU's (or
``cpu``'s) copy; ``bpf_per_cpu_ptr`` returns NULL for a CPU that doesn't exist.
All three need CAP_BPF (bpf_base_func_proto).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BpfFault
from . import register_helper
from ._util import runtime_of
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType
#: The kernel's marker for "the BTF type comes from the kptr field" (arg2_btf_id,
#: ret_btf_id of bpf_kptr_xchg).
BPF_PTR_POISON = "BPF_PTR_POISON"


@register_helper(194, "kptr_xchg",
                 Proto(RetType.RET_PTR_TO_BTF_ID_OR_NULL,
                       (A.ARG_KPTR_XCHG_DEST, A.ARG_PTR_TO_BTF_ID_OR_NULL | TypeFlag.OBJ_RELEASE),
                       arg_btf_id=(None, BPF_PTR_POISON, None, None, None),
                       ret_btf_id=BPF_PTR_POISON),
                 tier="cap_bpf")
def kptr_xchg(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """xchg(dst, ptr): the old pointer."""
    old = vm.memory.load(r1, 8)
    vm.memory.store(r1, 8, r2)
    return int(old)


def _copy(vm: Vm, ptr: int, cpu: int, helper: str) -> int | None:
    from ..kfuncs.obj import objects, percpu_copy

    rt = runtime_of(vm, helper)
    obj = objects(rt).get(ptr)
    if obj is None or not obj.percpu:
        raise BpfFault(f"bpf_{helper}: {ptr:#x} is not a per-CPU pointer", addr=ptr)
    return percpu_copy(rt, ptr, cpu)


_RET = RetType.RET_PTR_TO_MEM_OR_BTF_ID | TypeFlag.MEM_RDONLY


@register_helper(153, "per_cpu_ptr",
                 Proto(_RET | TypeFlag.PTR_MAYBE_NULL, (A.ARG_PTR_TO_PERCPU_BTF_ID,
                                                        A.ARG_ANYTHING)),
                 tier="cap_bpf")
def per_cpu_ptr(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """CPU ``cpu``'s copy of the per-CPU object (NULL past nr_cpu_ids)."""
    addr = _copy(vm, r1, r2 & 0xFFFF_FFFF, "per_cpu_ptr")
    return addr or 0


@register_helper(154, "this_cpu_ptr", Proto(_RET, (A.ARG_PTR_TO_PERCPU_BTF_ID,)),
                 tier="cap_bpf")
def this_cpu_ptr(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The running CPU's copy of the per-CPU object."""
    addr = _copy(vm, r1, runtime_of(vm, "this_cpu_ptr").cpu, "this_cpu_ptr")
    if addr is None:
        raise BpfFault(f"bpf_this_cpu_ptr: no copy of {r1:#x} for this CPU", addr=r1)
    return addr
