"""A deterministic, settable clock for ``bpf_ktime_get_*_ns`` and test-run durations.

The kernel's clocks move on their own; a unit test wants the same answer on
every run. So time here only moves when told to: by :meth:`Clock.advance`,
:meth:`Clock.set`, or a fixed ``step_ns`` added after every read.
"""

from __future__ import annotations

import attrs

__all__ = ["Clock"]


@attrs.define
class Clock:
    #: Current CLOCK_MONOTONIC time in ns. Starts past zero, like a booted machine.
    ns: int = 1_000_000_000
    #: Added after every read, so consecutive reads differ when a test wants that.
    step_ns: int = 0
    #: CLOCK_BOOTTIME - CLOCK_MONOTONIC (time spent suspended).
    suspended_ns: int = 0
    #: CLOCK_TAI - CLOCK_MONOTONIC: boot at 2026-01-01T00:00:00Z, plus TAI's 37 s.
    tai_offset_ns: int = (1_767_225_600 + 37) * 1_000_000_000

    def monotonic_ns(self) -> int:
        now = self.ns
        self.ns += self.step_ns
        return now

    def boottime_ns(self) -> int:
        return self.monotonic_ns() + self.suspended_ns

    def tai_ns(self) -> int:
        return self.monotonic_ns() + self.tai_offset_ns

    def advance(self, ns: int) -> None:
        self.ns += ns

    def set(self, ns: int) -> None:
        self.ns = ns
