"""Task kfuncs (kernel/bpf/helpers.c): ``bpf_task_acquire``, ``bpf_task_release``,
``bpf_task_from_pid``.

They show the reference-counting contract of kfuncs: an acquire kfunc
(KF_ACQUIRE) returns a pointer the program holds a reference on until it
passes it to the release kfunc (KF_RELEASE); both are checked by the verifier
("Unreleased reference", "release kernel function ... expects refcounted
PTR_TO_BTF_ID"). KF_RET_NULL makes the result maybe-NULL; KF_RCU lets
bpf_task_acquire take an RCU-protected (not only a trusted) pointer.

The tasks are the runtime's simulated ones (:func:`pyebpf.links.iter.set_tasks`,
by default the current task), each laid out once as a ``struct task_struct``
in the runtime's memory; the reference counts themselves aren't simulated (a
task lives as long as the runtime).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..helpers._util import runtime_of
from ..helpers.proto import RetType
from ..uapi import ProgType
from . import KF, KfArg, KfArgKind, register_kfunc

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..runtime import Runtime

#: BTF ids of the reference 6.18 vmlinux.
BTF_ID_ACQUIRE = 65895
BTF_ID_RELEASE = 65910
BTF_ID_FROM_PID = 65900

#: The kernel's generic kfunc set: the program types it is registered for.
GENERIC_PROG_TYPES = (ProgType.TRACING, ProgType.SCHED_CLS, ProgType.XDP,
                      ProgType.STRUCT_OPS, ProgType.SYSCALL)

_TASK = KfArg(KfArgKind.PTR_TO_BTF_ID, "p", struct="task_struct")


def task_object(rt: Runtime, pid: int, tgid: int, comm: str) -> int:
    """The address of the ``struct task_struct`` of task ``pid`` (made on first use;
    its fields refreshed from the arguments)."""
    from ..kernel_btf import KernelObject

    objects = rt.hooks.setdefault("task_structs", {})
    obj = objects.get(pid)
    if obj is None:
        obj = KernelObject(rt, "task_struct")
        objects[pid] = obj
    obj.pid = pid
    obj.tgid = tgid
    off = obj._btf.offsetof(obj.type_id, "comm")
    obj.region.buf[off:off + 16] = comm.encode()[:15].ljust(16, b"\0")
    return int(obj.addr)


@register_kfunc("bpf_task_acquire", BTF_ID_ACQUIRE, (_TASK,), RetType.RET_PTR_TO_BTF_ID,
                KF.ACQUIRE | KF.RCU | KF.RET_NULL, prog_types=GENERIC_PROG_TYPES,
                ret_btf="task_struct")
def bpf_task_acquire(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A new reference on the task (never NULL here: simulated tasks don't exit)."""
    return r1


@register_kfunc("bpf_task_release", BTF_ID_RELEASE, (_TASK,), RetType.RET_VOID, KF.RELEASE,
                prog_types=GENERIC_PROG_TYPES)
def bpf_task_release(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    """Drop the reference (the verifier made sure the program held one)."""


@register_kfunc("bpf_task_from_pid", BTF_ID_FROM_PID, (KfArg(KfArgKind.SCALAR, "pid"),),
                RetType.RET_PTR_TO_BTF_ID, KF.ACQUIRE | KF.RET_NULL,
                prog_types=GENERIC_PROG_TYPES, ret_btf="task_struct")
def bpf_task_from_pid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The task with this pid, referenced; NULL when there is none."""
    from ..links.iter import all_tasks

    rt = runtime_of(vm, "task_from_pid")
    pid = r1 & 0xFFFF_FFFF
    pid = pid - (1 << 32) if pid >> 31 else pid
    for t in all_tasks(rt):
        if t.pid == pid:
            return task_object(rt, t.pid, t.tgid, t.comm)
    return 0
