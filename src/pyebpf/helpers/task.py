"""``bpf_get_current_task_btf`` (kernel/trace/bpf_trace.c): the current task as a
trusted ``struct task_struct *`` that the program may read (``task->pid``) and
pass to task kfuncs (:mod:`pyebpf.kfuncs.task`).

The current task is the runtime's (``pid``/``tgid``/``comm`` settings), laid
out in the runtime's memory as the kernel BTF's ``struct task_struct``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import register_helper
from ._util import TRACING_TYPES, runtime_of
from .proto import Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm


@register_helper(158, "get_current_task_btf", Proto(
    RetType.RET_PTR_TO_BTF_ID_TRUSTED, (), ret_btf_id="task_struct"),
    tier="perfmon", prog_types=TRACING_TYPES)
def get_current_task_btf(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..kfuncs.task import task_object

    rt = runtime_of(vm, "get_current_task_btf")
    return task_object(rt, rt.pid, rt.tgid, rt.comm)
