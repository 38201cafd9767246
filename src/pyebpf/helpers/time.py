"""Time helpers, answered from the run's deterministic :class:`~pyebpf.clock.Clock`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import register_helper

if TYPE_CHECKING:
    from ..engine.interpreter import Vm


@register_helper(5, "ktime_get_ns")
def ktime_get_ns(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return vm.clock.monotonic_ns()


@register_helper(125, "ktime_get_boot_ns")
def ktime_get_boot_ns(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return vm.clock.boottime_ns()


@register_helper(160, "ktime_get_coarse_ns")
def ktime_get_coarse_ns(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return vm.clock.monotonic_ns()
