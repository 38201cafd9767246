"""USER_RINGBUF: the user-space producer and the program-side drain."""

from __future__ import annotations

import errno

import pytest

from pyebpf import BpfError, MapType, Runtime
from pyebpf.maps.user_ringbuf import UserRingBufferProducer, UserRingBufMap

from ._mapops import create


@pytest.fixture
def rb() -> UserRingBufMap:
    rt = Runtime()
    m = rt.fds[create(rt, MapType.USER_RINGBUF, max_entries=4096)].obj
    assert isinstance(m, UserRingBufMap)
    return m


def _drain(rb: UserRingBufMap, stop_after: int | None = None) -> tuple[int, list[bytes]]:
    seen: list[bytes] = []

    def cb(addr: int, length: int) -> int:
        seen.append(rb.runtime.memory.read(addr, length))
        return int(stop_after is not None and len(seen) >= stop_after)

    return rb.drain(cb, 0), seen


def test_samples_drain_in_order_skipping_discarded_ones(rb: UserRingBufMap) -> None:
    p = UserRingBufferProducer(rb)
    p.push(b"one")
    pos = p.reserve(5)
    p.write(pos, b"two!!")
    p.discard(pos)
    p.push(b"three")
    assert _drain(rb) == (2, [b"one", b"three"])
    assert rb.consumer_pos == rb.producer_pos


def test_a_reserved_sample_blocks_the_drain(rb: UserRingBufMap) -> None:
    p = UserRingBufferProducer(rb)
    p.push(b"a")
    held = p.reserve(4)
    p.push(b"b")
    assert _drain(rb) == (1, [b"a"])
    p.submit(held)
    assert _drain(rb)[0] == 2


def test_callback_returning_1_stops(rb: UserRingBufMap) -> None:
    p = UserRingBufferProducer(rb)
    for i in range(4):
        p.push(bytes([i]))
    assert _drain(rb, stop_after=2) == (2, [b"\0", b"\1"])


def test_wrapping_samples_are_contiguous(rb: UserRingBufMap) -> None:
    p = UserRingBufferProducer(rb)
    for i in range(40):
        data = bytes([i]) * 150
        p.push(data)
        assert _drain(rb) == (1, [data])


def test_reserve_errors_and_bad_flags(rb: UserRingBufMap) -> None:
    p = UserRingBufferProducer(rb)
    with pytest.raises(BpfError) as e:
        p.reserve(4096)
    assert e.value.errno == errno.E2BIG
    p.reserve(4000)
    with pytest.raises(BpfError) as e:
        p.reserve(100)
    assert e.value.errno == errno.ENOSPC
    assert rb.drain(lambda a, n: 0, 4) == -errno.EINVAL
    assert rb.drain(lambda a, n: 0, 0) == 0  # the reserved sample blocks


def test_a_torn_producer_position_is_einval(rb: UserRingBufMap) -> None:
    UserRingBufferProducer(rb).push(b"x")
    rb.producer_pos += 4
    assert rb.drain(lambda a, n: 0, 0) == -errno.EINVAL
