"""The kernel's test kfuncs built into vmlinux (net/bpf/test_run.c):
``bpf_kfunc_call_test_release`` and ``bpf_kfunc_call_memb_release``.

They release a ``struct prog_test_ref_kfunc`` (or its ``prog_test_member``) the
program holds a reference on; ``prog_test_ref_kfunc`` is the type of the
referenced ``__kptr`` fields of the kernel's map_kptr selftests, and these are
the destructors the kernel knows for it. The acquiring kfuncs live in the
bpf_testmod module, which the simulated kernel (like the reference one) does
not load, so a program gets such a reference only from ``bpf_kptr_xchg`` on a
map field (always NULL here: nothing can put one there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..helpers.proto import RetType
from ..uapi import ProgType
from . import KF, KfArg, KfArgKind, register_kfunc

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

#: BTF ids of the reference 6.18 vmlinux.
BTF_ID_TEST_RELEASE = 64389
BTF_ID_MEMB_RELEASE = 64384

#: bpf_prog_test_kfunc_set's program types (register_btf_kfunc_id_set in test_run.c).
TEST_RUN_PROG_TYPES = (ProgType.SCHED_CLS, ProgType.TRACING, ProgType.SYSCALL)


@register_kfunc("bpf_kfunc_call_test_release", BTF_ID_TEST_RELEASE,
                (KfArg(KfArgKind.PTR_TO_BTF_ID, "p", struct="prog_test_ref_kfunc"),),
                RetType.RET_VOID, KF.RELEASE, prog_types=TEST_RUN_PROG_TYPES)
def bpf_kfunc_call_test_release(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    """Drop the reference (refcount_dec on the test object: nothing is freed)."""


@register_kfunc("bpf_kfunc_call_memb_release", BTF_ID_MEMB_RELEASE,
                (KfArg(KfArgKind.PTR_TO_BTF_ID, "p", struct="prog_test_member"),),
                RetType.RET_VOID, KF.RELEASE, prog_types=TEST_RUN_PROG_TYPES)
def bpf_kfunc_call_memb_release(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    """Release a reference on the member object (a no-op in the kernel too)."""
