"""Time helpers, answered from the run's deterministic :class:`~pyebpf.clock.Clock`.

``bpf_ktime_get_ns`` and ``bpf_ktime_get_coarse_ns`` read CLOCK_MONOTONIC,
``bpf_ktime_get_boot_ns`` CLOCK_BOOTTIME (monotonic plus the time suspended),
``bpf_ktime_get_tai_ns`` CLOCK_TAI (monotonic plus a settable offset),
and ``bpf_jiffies64`` the jiffies counter derived from the same clock, as the
kernel's tick would have counted it since boot (HZ = 1000, the jiffies count
starting at INITIAL_JIFFIES, five minutes before its 32-bit wrap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import register_helper
from ._util import TRACING_TYPES
from .proto import Proto

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

#: CONFIG_HZ of the kernels pyebpf follows (Fedora and most distributions).
HZ = 1000
#: INITIAL_JIFFIES on 64-bit: (unsigned long)(unsigned int)(-300 * HZ).
INITIAL_JIFFIES = (-300 * HZ) & 0xFFFF_FFFF

_INT = Proto()


@register_helper(5, "ktime_get_ns", _INT, tier="base")
def ktime_get_ns(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return vm.clock.monotonic_ns()


@register_helper(125, "ktime_get_boot_ns", _INT, tier="base")
def ktime_get_boot_ns(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return vm.clock.boottime_ns()


def _coarse_clock_types() -> frozenset[int]:
    """bpf_base_func_proto offers bpf_ktime_get_coarse_ns, but bpf_tracing_func_proto
    (kprobe, tracepoint, perf_event, raw tracepoints, fentry/fexit, LSM) withholds
    it: the coarse clock's seqlock isn't safe from NMI context. 6.18 doesn't offer it
    to cgroup device, sockopt and netfilter programs either (measured)."""
    from ..uapi import ProgType

    withheld = TRACING_TYPES - {int(ProgType.SYSCALL)} | {
        int(ProgType.CGROUP_DEVICE), int(ProgType.CGROUP_SOCKOPT), int(ProgType.NETFILTER)}
    return frozenset(int(t) for t in ProgType if int(t) not in withheld)


@register_helper(160, "ktime_get_coarse_ns", _INT, prog_types=_coarse_clock_types())
def ktime_get_coarse_ns(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return vm.clock.monotonic_ns()


@register_helper(118, "jiffies64", _INT, tier="cap_bpf")
def jiffies64(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return INITIAL_JIFFIES + vm.clock.monotonic_ns() * HZ // 1_000_000_000


@register_helper(208, "ktime_get_tai_ns", _INT, tier="cap_bpf")
def ktime_get_tai_ns(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return vm.clock.tai_ns()
