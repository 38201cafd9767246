"""Stack helpers: bpf_get_stackid and bpf_get_stack (kernel/bpf/stackmap.c).

The stack a program sees is the Runtime's simulated one: ``kernel_stack`` or,
with BPF_F_USER_STACK, ``user_stack`` (instruction addresses, innermost
first), which tests set. The low 8 bits of ``flags`` skip that many frames.

``bpf_get_stackid(ctx, map, flags)`` stores the trace in a STACK_TRACE map and
returns its id (see :meth:`~pyebpf.maps.stack_trace.StackTraceMap.get_stackid`);
unknown flag bits are -EINVAL, a stack not deeper than ``skip`` -EFAULT.

``bpf_get_stack(ctx, buf, size, flags)`` (and ``bpf_get_task_stack(task, ...)``,
for which a task other than the Runtime's ``current_task`` has an empty
kernel stack and a user stack it can't walk: -EOPNOTSUPP) copies up to ``size / 8`` addresses
(``size / 32`` ``struct bpf_stack_build_id`` with BPF_F_USER_BUILD_ID, which
needs BPF_F_USER_STACK) into ``buf``, zero-fills the rest and returns the
bytes copied; -EINVAL for unknown flags or a size that is no multiple of the
entry, -EFAULT for a stack shallower than ``skip``; on error ``buf`` is
zeroed.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from ..errors import BpfError, BpfFault
from . import register_helper
from ._util import M32, TRACING_TYPES, check_writable, map_at, neg, runtime_of
from .proto import ArgType, Proto, RetType, btf_ids

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType


@register_helper(27, "get_stackid", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING), gpl_only=True),
    prog_types=TRACING_TYPES)
def get_stackid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..maps.stack_trace import (
        BPF_F_FAST_STACK_CMP,
        BPF_F_REUSE_STACKID,
        BPF_F_SKIP_FIELD_MASK,
        BPF_F_USER_STACK,
        StackTraceMap,
        current_trace,
    )

    m = map_at(vm, r2, "get_stackid")
    if not isinstance(m, StackTraceMap):
        raise BpfFault(f"bpf_get_stackid with a {m.map_type.name} map (it needs a STACK_TRACE)")
    flags = r3
    if flags & ~(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP
                 | BPF_F_REUSE_STACKID):
        return neg(errno.EINVAL)
    max_depth = m.value_size // m.elem_size + (flags & BPF_F_SKIP_FIELD_MASK)
    trace = current_trace(m.runtime, flags, max_depth)
    try:
        return m.get_stackid(trace, flags)
    except BpfError as e:
        return neg(e.errno)


def _is_current(rt: Any, task: int) -> bool:
    """Whether ``task`` is the current task: ``Runtime.current_task``, or the
    task_struct bpf_get_current_task_btf made for the current pid."""
    obj = rt.hooks.get("task_structs", {}).get(rt.pid)
    return task == rt.current_task or (obj is not None and task == obj.addr)


def _get_stack(vm: Vm, r2: int, r3: int, r4: int, helper: str, task: int | None) -> int:
    """__bpf_get_stack: the current task's stack, or (``task`` not current) another
    task's, whose kernel stack pyebpf doesn't know (empty) and whose user stack
    can't be walked (-EOPNOTSUPP)."""
    from ..maps.stack_trace import (
        BPF_F_SKIP_FIELD_MASK,
        BPF_F_USER_BUILD_ID,
        BPF_F_USER_STACK,
        BUILD_ID_SIZE,
        current_trace,
        stack_build_id_entries,
    )

    rt = runtime_of(vm, helper)
    size = r3 & M32
    check_writable(vm.memory, r2, size)
    flags = r4
    skip = flags & BPF_F_SKIP_FIELD_MASK
    user = bool(flags & BPF_F_USER_STACK)
    build_id = bool(flags & BPF_F_USER_BUILD_ID)
    crosstask = task is not None and not _is_current(rt, task)
    err = errno.EINVAL
    if not flags & ~(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_USER_BUILD_ID) and not (
            build_id and not user):
        elem = BUILD_ID_SIZE if build_id else 8
        if size % elem == 0:
            if crosstask and user:
                err = errno.EOPNOTSUPP
            else:
                num = size // elem
                trace = [] if crosstask else current_trace(rt, flags, num + skip)
                if len(trace) >= skip:
                    ips = trace[skip:skip + num]
                    data = (stack_build_id_entries(ips) if build_id
                            else b"".join(struct.pack("<Q", ip) for ip in ips))
                    vm.memory.write(r2, data + bytes(size - len(data)))
                    return len(data)
                err = errno.EFAULT
    if size:
        vm.memory.write(r2, bytes(size))
    return neg(err)


_STACK_ARGS = (A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE_OR_ZERO, A.ARG_ANYTHING)


@register_helper(67, "get_stack", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, *_STACK_ARGS),
                                        gpl_only=True), prog_types=TRACING_TYPES)
def get_stack(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _get_stack(vm, r2, r3, r4, "get_stack", None)


@register_helper(141, "get_task_stack", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_BTF_ID, *_STACK_ARGS), arg_btf_id=btf_ids(arg1="task_struct")),
    prog_types=TRACING_TYPES, tier="perfmon")
def get_task_stack(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """bpf_get_task_stack(task, buf, size, flags)."""
    return _get_stack(vm, r2, r3, r4, "get_task_stack", r1)
