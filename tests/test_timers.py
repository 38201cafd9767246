"""BPF timers fired by the runtime's clock (pyebpf.timers, helpers/timer.py)."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from pyebpf import Runtime, load_object
from pyebpf.timers import CLOCK_BOOTTIME, CLOCK_MONOTONIC, TimerQueue

EXAMPLE = Path(__file__).parent.parent / "examples" / "timer_count.o"
MS = 1_000_000


@pytest.fixture
def counter():  # type: ignore[no-untyped-def]
    rt = Runtime()
    coll = load_object(EXAMPLE, runtime=rt)
    yield rt, coll
    coll.close()


def fired(coll) -> int:  # type: ignore[no-untyped-def]
    return struct.unpack_from("<Q", coll.maps["timers"][0], 16)[0]


def test_a_timer_fires_when_the_clock_reaches_it(counter) -> None:  # type: ignore[no-untyped-def]
    rt, coll = counter
    assert coll.programs["arm"].test_run(bytes(64)).retval == 2
    assert rt.advance_clock(MS - 1) == 0 and fired(coll) == 0
    assert rt.advance_clock(1) == 1 and fired(coll) == 1


def test_a_callback_rearming_its_timer_counts_from_its_own_expiry(counter) -> None:  # type: ignore[no-untyped-def]
    rt, coll = counter
    coll.programs["arm"].test_run(bytes(64))
    # One long step: the callback at 1 ms re-arms for 2 ms, that one for 3 ms.
    assert rt.advance_clock(10 * MS) == 3 and fired(coll) == 3
    assert rt.advance_clock(10 * MS) == 0


def test_timers_go_with_their_map(counter) -> None:  # type: ignore[no-untyped-def]
    rt, coll = counter
    coll.programs["arm"].test_run(bytes(64))
    assert rt.timers.timers
    coll.close()
    assert not rt.timers.timers and rt.advance_clock(10 * MS) == 0


class _Map:
    addr = 0x1000


def test_init_start_cancel_rules() -> None:
    rt, q, m = Runtime(), TimerQueue(), _Map()
    assert q.init(8, m, 5) == -errno.EINVAL            # not a clock timers take
    assert q.start(rt, 8, MS, False) == -errno.EINVAL  # not initialised
    assert q.cancel(8) == -errno.EINVAL
    assert q.init(8, m, CLOCK_MONOTONIC) == 0
    assert q.init(8, m, CLOCK_BOOTTIME) == -errno.EBUSY
    assert q.start(rt, 8, MS, False) == -errno.EINVAL  # no callback yet
    assert q.set_callback(8, object(), 0x40) == 0
    assert q.start(rt, 8, MS, False) == 0
    assert q.cancel(8) == 1 and q.cancel(8) == 0


def test_absolute_expiry_is_on_the_timers_clock() -> None:
    rt, q = Runtime(), TimerQueue()
    q.init(8, _Map(), CLOCK_BOOTTIME)
    q.set_callback(8, object(), 0x40)
    rt.clock.suspended_ns = 5 * MS
    q.start(rt, 8, rt.clock.ns + 6 * MS, True)
    assert q._monotonic_expiry(rt, q.timers[8]) == rt.clock.ns + MS


def test_updating_an_array_element_frees_its_timer(counter) -> None:  # type: ignore[no-untyped-def]
    # array_map_update_elem: bpf_obj_free_fields cancels and frees the old value's
    # timer, so nothing fires and the next bpf_timer_init starts afresh.
    rt, coll = counter
    coll.programs["arm"].test_run(bytes(64))
    coll.maps["timers"][0] = bytes(24)
    assert not rt.timers.timers
    assert rt.advance_clock(10 * MS) == 0 and fired(coll) == 0
    coll.programs["arm"].test_run(bytes(64))  # bpf_timer_init succeeds again
    assert rt.advance_clock(10 * MS) == 3 and fired(coll) == 3
