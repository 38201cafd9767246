"""``bpf_timer_init``, ``bpf_timer_set_callback``, ``bpf_timer_start``,
``bpf_timer_cancel``: timers in map values, fired by the runtime's clock
(:mod:`pyebpf.timers`). All four are GPL-only and need CAP_BPF, as in the
kernel's bpf_base_func_proto."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from . import register_helper
from ._util import map_at, neg, runtime_of
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType
BPF_F_TIMER_ABS, BPF_F_TIMER_CPU_PIN = 1 << 0, 1 << 1


def _result(rc: int) -> int:
    return neg(-rc) if rc < 0 else rc


@register_helper(169, "timer_init",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_TIMER, A.ARG_CONST_MAP_PTR,
                                             A.ARG_ANYTHING), gpl_only=True),
                 tier="cap_bpf")
def timer_init(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Initialise the timer at ``timer`` (in a value of ``map``) on clock ``flags``."""
    rt = runtime_of(vm, "timer_init")
    return _result(rt.timers.init(r1, map_at(vm, r2, "timer_init"), r3))


@register_helper(170, "timer_set_callback",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_TIMER, A.ARG_PTR_TO_FUNC),
                       gpl_only=True),
                 tier="cap_bpf")
def timer_set_callback(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The function called, as ``callback(map, key, value)``, when the timer fires."""
    return _result(runtime_of(vm, "timer_set_callback").timers.set_callback(r1, vm, r2))


@register_helper(171, "timer_start",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_TIMER, A.ARG_ANYTHING, A.ARG_ANYTHING),
                       gpl_only=True),
                 tier="cap_bpf")
def timer_start(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Arm the timer ``nsecs`` from now (BPF_F_TIMER_ABS: at ``nsecs`` on its clock)."""
    rt = runtime_of(vm, "timer_start")
    if r3 & ~(BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN):
        return neg(errno.EINVAL)
    return _result(rt.timers.start(rt, r1, r2, bool(r3 & BPF_F_TIMER_ABS)))


@register_helper(172, "timer_cancel",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_TIMER,), gpl_only=True),
                 tier="cap_bpf")
def timer_cancel(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Disarm the timer: 1 if it was armed, 0 if not."""
    return _result(runtime_of(vm, "timer_cancel").timers.cancel(r1))
