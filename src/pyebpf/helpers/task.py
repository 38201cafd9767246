"""Helpers about the current task.

``bpf_get_current_task_btf`` (kernel/trace/bpf_trace.c): the current task as a
trusted ``struct task_struct *`` that the program may read (``task->pid``) and
pass to task kfuncs (:mod:`pyebpf.kfuncs.task`).

The current task is the runtime's (``pid``/``tgid``/``comm`` settings), laid
out in the runtime's memory as the kernel BTF's ``struct task_struct``.

``bpf_get_current_ancestor_cgroup_id`` and ``bpf_get_ns_current_pid_tgid``
(kernel/bpf/helpers.c) answer from the runtime's ``cgroup_id`` and its pid
namespace settings.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from . import register_helper
from ._util import TRACING_TYPES, check_writable, neg, runtime_of
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm


@register_helper(158, "get_current_task_btf", Proto(
    RetType.RET_PTR_TO_BTF_ID_TRUSTED, (), ret_btf_id="task_struct"),
    tier="perfmon", prog_types=TRACING_TYPES)
def get_current_task_btf(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..kfuncs.task import task_object

    rt = runtime_of(vm, "get_current_task_btf")
    return task_object(rt, rt.pid, rt.tgid, rt.comm)


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


@register_helper(123, "get_current_ancestor_cgroup_id",
                 Proto(RetType.RET_INTEGER, (ArgType.ARG_ANYTHING,)), tier="cap_bpf")
def get_current_ancestor_cgroup_id(vm: Vm, r1: int, r2: int, r3: int, r4: int,
                                   r5: int) -> int:
    """The id of the ancestor at ``ancestor_level`` (0: the root) of the current
    task's cgroup (the runtime's ``cgroup_id``); 0 past the task's own level."""
    from .skb import ancestor_cgroup_id

    rt = runtime_of(vm, "get_current_ancestor_cgroup_id")
    return ancestor_cgroup_id(rt, rt.cgroup_id, _s32(r1))


#: sizeof(struct bpf_pidns_info): u32 pid, u32 tgid.
BPF_PIDNS_INFO_SIZE = 8


@register_helper(120, "get_ns_current_pid_tgid",
                 Proto(RetType.RET_INTEGER, (ArgType.ARG_ANYTHING, ArgType.ARG_ANYTHING,
                                             ArgType.ARG_PTR_TO_UNINIT_MEM,
                                             ArgType.ARG_CONST_SIZE)), tier="base")
def get_ns_current_pid_tgid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The current task's pid and tgid as seen in the pid namespace (``dev``,
    ``ino``: what stat() of /proc/self/ns/pid says) into struct bpf_pidns_info.
    The task lives in one namespace, the runtime's ``pidns_dev``/``pidns_ino``:
    any other (or a ``dev`` wider than a dev_t, or a size other than the
    struct's) is -EINVAL with the struct zeroed."""
    rt = runtime_of(vm, "get_ns_current_pid_tgid")
    dev, ino, size = r1, r2, r4 & 0xFFFF_FFFF
    check_writable(vm.memory, r3, size)
    if size != BPF_PIDNS_INFO_SIZE or dev >> 32 or (dev, ino) != (rt.pidns_dev, rt.pidns_ino):
        vm.memory.write(r3, bytes(size))
        return neg(errno.EINVAL)
    vm.memory.write(r3, (rt.pid & 0xFFFF_FFFF).to_bytes(4, "little")
                    + (rt.tgid & 0xFFFF_FFFF).to_bytes(4, "little"))
    return 0
