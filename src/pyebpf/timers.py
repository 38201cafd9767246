"""BPF timers (``struct bpf_timer`` in a map value), driven by the runtime's clock.

In the kernel a ``bpf_timer`` is an hrtimer: ``bpf_timer_start`` arms it and,
when it expires, softirq context calls the callback the program set with
``bpf_timer_set_callback`` as ``callback(map, key, value)``. Time in pyebpf
moves only when a test moves it, so timers fire when the test says so::

    rt.advance_clock(5_000_000)     # 5 ms later: every timer due by then fires
    rt.run_timers()                 # or fire what is due now

Timers fire in expiry order; a callback may re-arm its timer (or others),
which then fire in the same call if they are due. A timer whose map element
is gone (deleted, or its map freed) never fires, as the kernel cancels it.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import attrs

from .errors import BpfFault
from .memory import Perm

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["BpfTimer", "TimerQueue"]

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
MAX_CLOCKS = 16
#: A callback re-arming its timer for "now" forever would never let time pass.
MAX_FIRES_PER_RUN = 100_000


@attrs.define(eq=False)
class BpfTimer:
    """The kernel's ``struct bpf_hrtimer``: the timer of one map element."""

    addr: int
    map: Any
    clock_id: int
    #: The Vm of the program that set the callback, and the callback's address.
    vm: Any = None
    callback: int = 0
    #: When it fires, on its clock (None: not armed).
    expires: int | None = None
    #: Arming order, to fire timers due at the same time in the order they were armed.
    seq: int = 0


@attrs.define
class TimerQueue:
    """Every initialised timer of a runtime, by the address of its bpf_timer."""

    timers: dict[int, BpfTimer] = attrs.Factory(dict)
    #: The timer whose callback is running (bpf_timer_cancel of it is EDEADLK).
    running: BpfTimer | None = None
    _seq: int = 0

    def now(self, rt: Runtime, clock_id: int) -> int:
        clock = rt.clock
        if clock_id == CLOCK_BOOTTIME:
            return clock.ns + clock.suspended_ns
        if clock_id == CLOCK_REALTIME:
            return clock.ns + clock.tai_offset_ns - 37_000_000_000
        return clock.ns

    def init(self, addr: int, m: Any, flags: int) -> int:
        """bpf_timer_init: 0, -EINVAL for a clock other than monotonic, realtime or
        boottime, -EBUSY for a timer initialised before."""
        if flags >= MAX_CLOCKS or flags not in (CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME):
            return -errno.EINVAL
        if addr in self.timers:
            return -errno.EBUSY
        self.timers[addr] = BpfTimer(addr, m, flags)
        return 0

    def set_callback(self, addr: int, vm: Any, callback: int) -> int:
        t = self.timers.get(addr)
        if t is None:
            return -errno.EINVAL
        t.vm, t.callback = vm, callback
        return 0

    def start(self, rt: Runtime, addr: int, nsecs: int, absolute: bool) -> int:
        t = self.timers.get(addr)
        if t is None or not t.callback:
            return -errno.EINVAL
        t.expires = nsecs if absolute else self.now(rt, t.clock_id) + nsecs
        self._seq += 1
        t.seq = self._seq
        return 0

    def cancel(self, addr: int) -> int:
        """1 if the timer was armed, 0 if not; -EINVAL uninitialised, -EDEADLK from
        its own callback."""
        t = self.timers.get(addr)
        if t is None:
            return -errno.EINVAL
        if t is self.running:
            return -errno.EDEADLK
        armed = t.expires is not None
        t.expires = None
        return int(armed)

    def cancel_and_free(self, addr: int) -> None:
        """bpf_timer_cancel_and_free: the value holding the timer at ``addr`` was
        overwritten or freed; the timer stops and is uninitialised (a later
        bpf_timer_init starts afresh)."""
        self.timers.pop(addr, None)

    def forget_map(self, m: Any) -> None:
        """The map is gone: its timers with it (bpf_obj_free_timer)."""
        for addr in [a for a, t in self.timers.items() if t.map is m]:
            del self.timers[addr]

    def _monotonic_expiry(self, rt: Runtime, t: BpfTimer) -> int:
        """When ``t`` fires, on CLOCK_MONOTONIC (the clocks differ by constant offsets)."""
        assert t.expires is not None
        return t.expires - (self.now(rt, t.clock_id) - rt.clock.ns)

    def _next(self, rt: Runtime, until: int) -> BpfTimer | None:
        """The armed timer that fires first, if it fires by monotonic time ``until``."""
        due = [(self._monotonic_expiry(rt, t), t.seq, t) for t in self.timers.values()
               if t.expires is not None]
        due = [d for d in due if d[0] <= until]
        return min(due, key=lambda d: d[:2])[2] if due else None

    def advance(self, rt: Runtime, ns: int) -> int:
        """Move the clock ``ns`` forward, stopping at each expiry to fire that timer
        with the clock reading its expiry (so a callback re-arming its timer counts
        from then); the number of callbacks run."""
        target = rt.clock.ns + ns
        fired = self.run_due(rt, until=target)
        rt.clock.ns = max(rt.clock.ns, target)
        return fired

    def run_due(self, rt: Runtime, until: int | None = None) -> int:
        """Fire every timer due by monotonic time ``until`` (default: now), in expiry
        order; the number fired."""
        fired = 0
        while (t := self._next(rt, rt.clock.ns if until is None else until)) is not None:
            rt.clock.ns = max(rt.clock.ns, self._monotonic_expiry(rt, t))
            if fired >= MAX_FIRES_PER_RUN:
                raise BpfFault(f"timers fired {fired} times without time passing: a "
                               "callback keeps re-arming a timer for now")
            t.expires = None
            located = _element_of(rt, t)
            if located is None:  # its element is gone: cancelled with it
                del self.timers[t.addr]
                continue
            key, value_addr = located
            # The callback gets a pointer to the key, read-only, as the kernel's does.
            key_region = rt.memory.map(bytearray(key), kind="map_key", name="timer key",
                                       perms=Perm.R)
            fired += 1
            self.running = t
            rt.enter_run()
            try:
                t.vm.run_function(t.callback, t.map.addr, key_region.base, value_addr)
            finally:
                self.running = None
                rt.exit_run()
                rt.memory.unmap(key_region)
        return fired


def _element_of(rt: Runtime, t: BpfTimer) -> tuple[bytes, int] | None:
    """(key, value address) of the map element holding the timer, or None."""
    m = t.map
    offset = (getattr(m, "btf_fields", None) or {}).get("bpf_timer")
    if offset is None or m.addr not in rt.maps_by_addr:
        return None
    value_addr = t.addr - offset
    for key in m.iter_keys():
        if m.lookup_elem(key) == value_addr:
            return key, value_addr
    return None
