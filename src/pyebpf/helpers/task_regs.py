"""``bpf_task_pt_regs`` (kernel/trace/bpf_trace.c, Linux 6.18): a task's user-mode
registers, the ``struct pt_regs`` at the top of its kernel stack
(task_pt_regs(task)), as a trusted-less ``PTR_TO_BTF_ID`` the program may read
(``regs->ip``, ``regs->sp`` ...).

Each simulated task gets one ``struct pt_regs`` object on first use
(:func:`task_regs`): a test sets the registers a program should find, e.g.
``task_regs(rt, task_object(rt, rt.pid, rt.tgid, rt.comm)).ip = 0x401000``.
Offered where bpf_base_func_proto offers it, behind CAP_PERFMON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import register_helper
from ._util import TRACING_TYPES, runtime_of
from .proto import ArgType, Proto, RetType, btf_ids

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..kernel_btf import KernelObject
    from ..runtime import Runtime

__all__ = ["task_regs"]


def task_regs(rt: Runtime, task_addr: int) -> KernelObject:
    """The ``struct pt_regs`` of the task whose task_struct is at ``task_addr``."""
    from ..kernel_btf import KernelObject

    objects: dict[int, KernelObject] = rt.hooks.setdefault("task_pt_regs", {})
    obj = objects.get(task_addr)
    if obj is None:
        obj = objects[task_addr] = KernelObject(rt, "pt_regs")
    return obj


@register_helper(175, "task_pt_regs", Proto(
    RetType.RET_PTR_TO_BTF_ID, (ArgType.ARG_PTR_TO_BTF_ID,),
    arg_btf_id=btf_ids(arg1="task_struct"), ret_btf_id="pt_regs"),
    tier="perfmon", prog_types=TRACING_TYPES)
def task_pt_regs(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return int(task_regs(runtime_of(vm, "task_pt_regs"), r1).addr)
