"""BPF_MAP_TYPE_RINGBUF: creation, the syscall side, the helpers' side, the consumer."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, MapBatchAttr, MapCreateAttr, MapElemAttr, MapType, bpf
from pyebpf.attr import MapFdAttr
from pyebpf.errors import ENOTSUPP, BpfFault
from pyebpf.maps.ringbuf import (
    RINGBUF_MAX_DATA_SZ,
    RingBufferConsumer,
    RingBufMap,
    ringbuf_discard,
    ringbuf_submit,
)
from pyebpf.objects import Map
from pyebpf.runtime import Runtime
from pyebpf.uapi import (
    BPF_RB_AVAIL_DATA,
    BPF_RB_CONS_POS,
    BPF_RB_FORCE_WAKEUP,
    BPF_RB_NO_WAKEUP,
    BPF_RB_PROD_POS,
    BPF_RB_RING_SIZE,
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    MapFlags,
)

PAGE = 4096


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def call(rt: Runtime, cmd: Cmd, attr: Any) -> Any:
    return bpf(cmd, attr, runtime=rt)


def create_fd(rt: Runtime, size: int = PAGE, **kw: Any) -> int:
    return call(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.RINGBUF, max_entries=size,
                                                  **kw))


def ringbuf(rt: Runtime, size: int = PAGE) -> RingBufMap:
    m = rt.fds[create_fd(rt, size)].obj
    assert isinstance(m, RingBufMap)
    return m


def err(rt: Runtime, cmd: Cmd, attr: Any) -> int:
    with pytest.raises(BpfError) as info:
        call(rt, cmd, attr)
    return int(info.value.errno)


# -- creation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fields", [
    dict(max_entries=PAGE, key_size=4), dict(max_entries=PAGE, value_size=4),
    dict(max_entries=0), dict(max_entries=PAGE - 1), dict(max_entries=PAGE // 2),
    dict(max_entries=3 * PAGE),
    *[dict(max_entries=PAGE, map_flags=f) for f in (MapFlags.RDONLY, MapFlags.WRONLY,
                                                     MapFlags.RDONLY_PROG, MapFlags.MMAPABLE,
                                                     MapFlags.NO_PREALLOC, MapFlags.ZERO_SEED,
                                                     MapFlags.INNER_MAP, 1 << 19)],
])
def test_create_rejects_bad_sizes_and_flags(rt: Runtime, fields: dict[str, int]) -> None:
    attr = MapCreateAttr(map_type=MapType.RINGBUF, **fields)
    assert err(rt, Cmd.MAP_CREATE, attr) == errno.EINVAL


def test_create_takes_power_of_2_pages_and_the_numa_flag(rt: Runtime) -> None:
    create_fd(rt, PAGE)
    create_fd(rt, 4 * PAGE, map_flags=MapFlags.NUMA_NODE)


def test_create_past_the_largest_data_area_is_e2big(rt: Runtime) -> None:
    size = 1 << (RINGBUF_MAX_DATA_SZ.bit_length())
    assert err(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.RINGBUF, max_entries=size)
               ) == errno.E2BIG


# -- the syscall side ------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", [Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_DELETE_ELEM,
                                 Cmd.MAP_GET_NEXT_KEY, Cmd.MAP_LOOKUP_AND_DELETE_ELEM])
def test_element_commands_are_enotsupp_with_a_null_key(rt: Runtime, cmd: Cmd) -> None:
    fd = create_fd(rt)
    value = None if cmd is Cmd.MAP_DELETE_ELEM else b""
    assert err(rt, cmd, MapElemAttr(map_fd=fd, value=value)) == ENOTSUPP


@pytest.mark.parametrize("cmd", [Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_DELETE_ELEM,
                                 Cmd.MAP_GET_NEXT_KEY, Cmd.MAP_LOOKUP_AND_DELETE_ELEM])
def test_element_commands_with_a_key_are_einval(rt: Runtime, cmd: Cmd) -> None:
    fd = create_fd(rt)
    value = None if cmd is Cmd.MAP_DELETE_ELEM else b""
    assert err(rt, cmd, MapElemAttr(map_fd=fd, key=b"\0" * 4, value=value)) == errno.EINVAL


def test_frozen_ring_buffer_refuses_writes_with_eperm(rt: Runtime) -> None:
    fd = create_fd(rt)
    call(rt, Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd))
    assert err(rt, Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd)) == errno.EPERM
    assert err(rt, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd)) == errno.EPERM
    assert err(rt, Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd)) == ENOTSUPP


def test_ring_buffers_have_no_batches(rt: Runtime) -> None:
    fd = create_fd(rt)
    assert err(rt, Cmd.MAP_LOOKUP_BATCH, MapBatchAttr(map_fd=fd, count=1)) == ENOTSUPP


# -- records -------------------------------------------------------------------------------------
def header(rb: RingBufMap, pos: int) -> tuple[int, int]:
    return struct.unpack_from("<II", rb.region.buf, pos & rb.mask)


def test_reserve_writes_a_busy_header_and_submit_clears_it(rt: Runtime) -> None:
    rb = ringbuf(rt)
    addr = rb.reserve(5)
    assert addr == rb.region.base + 8
    assert header(rb, 0) == (5 | BPF_RINGBUF_BUSY_BIT, 3)  # 3 meta pages before the data
    assert rb.producer_pos == 16  # round_up(5 + 8, 8)
    rt.memory.write(addr, b"hello")
    rb.submit(addr)
    assert header(rb, 0) == (5, 3)
    assert RingBufferConsumer(rb).poll() == [b"hello"]
    assert rb.consumer_pos == 16


def test_record_page_offset_counts_pages_from_the_ring_struct(rt: Runtime) -> None:
    rb = ringbuf(rt, 4 * PAGE)
    for _ in range(3):
        assert rb.reserve(2000) is not None
    assert header(rb, 4016)[1] == 3 + (4016 >> 12)


def test_discarded_records_are_skipped_and_busy_ones_stop_the_consumer(rt: Runtime) -> None:
    rb = ringbuf(rt)
    a, b, c = rb.reserve(1), rb.reserve(1), rb.reserve(1)
    assert a and b and c
    rt.memory.write(a, b"A")
    rt.memory.write(c, b"C")
    rb.submit(a)
    rb.submit(c)
    consumer = RingBufferConsumer(rb)
    assert consumer.poll() == [b"A"]  # b is still reserved
    ringbuf_discard(rt, b)
    assert header(rb, 16)[0] == 1 | BPF_RINGBUF_DISCARD_BIT
    assert consumer.poll() == [b"C"]
    assert rb.consumer_pos == rb.producer_pos == 48


def test_output_copies_a_sample(rt: Runtime) -> None:
    rb = ringbuf(rt)
    rb.output(b"x" * 13)
    rb.output(b"")
    assert RingBufferConsumer(rb).poll() == [b"x" * 13, b""]


def test_output_rejects_unknown_flags_and_says_eagain_when_full(rt: Runtime) -> None:
    rb = ringbuf(rt)
    with pytest.raises(BpfError) as info:
        rb.output(b"x", 4)
    assert info.value.errno == errno.EINVAL
    rb.output(b"x" * 4000)
    with pytest.raises(BpfError) as info:
        rb.output(b"x" * 100)
    assert info.value.errno == errno.EAGAIN


def test_reserve_fails_for_flags_and_sizes_that_cannot_fit(rt: Runtime) -> None:
    rb = ringbuf(rt)
    assert rb.reserve(8, 1) is None
    assert rb.reserve(PAGE - 8 + 1) is None  # the record would exceed the ring
    assert rb.reserve(1 << 31) is None
    # A record may not make the producer a whole ring ahead of the consumer.
    assert rb.reserve(PAGE - 16) is not None
    assert rb.reserve(1) is None
    assert rb.query(BPF_RB_AVAIL_DATA) == PAGE - 8


def test_reserve_may_not_get_a_ring_ahead_of_an_uncommitted_record(rt: Runtime) -> None:
    rb = ringbuf(rt)
    busy = rb.reserve(8)
    assert busy is not None
    rb.output(b"y" * 2000)
    # A misbehaving consumer moves past the busy record (it owns consumer_pos)...
    rb.consumer_pos = rb.producer_pos
    # ...but the pending record still bounds the producer (the 6.10 overrun fix).
    assert rb.reserve(PAGE - 16 - 2008 - 16 + 8) is None
    assert rb.pending_pos == 0
    rb.submit(busy)
    assert rb.reserve(2000) is not None
    assert rb.pending_pos == 16 + 2008


def test_a_record_wrapping_past_the_end_is_contiguous_and_read_whole(rt: Runtime) -> None:
    rb = ringbuf(rt)
    consumer = RingBufferConsumer(rb)
    rb.output(b"a" * 4000)
    assert consumer.poll() == [b"a" * 4000]
    addr = rb.reserve(200)  # header at 4008, sample spills 112 bytes past the end
    assert addr == rb.region.base + 4016
    rt.memory.write(addr, bytes(range(200)))
    ringbuf_submit(rt, addr)
    assert consumer.poll() == [bytes(range(200))]
    assert bytes(rb.region.buf[:120]) == bytes(range(80, 200))


def test_query_reports_positions_and_size(rt: Runtime) -> None:
    rb = ringbuf(rt, 2 * PAGE)
    rb.output(b"12345678")
    assert rb.query(BPF_RB_RING_SIZE) == 2 * PAGE
    assert rb.query(BPF_RB_PROD_POS) == 16
    assert rb.query(BPF_RB_CONS_POS) == 0
    assert rb.query(BPF_RB_AVAIL_DATA) == 16
    assert rb.query(99) == 0
    RingBufferConsumer(rb).poll()
    assert rb.query(BPF_RB_CONS_POS) == 16 and rb.query(BPF_RB_AVAIL_DATA) == 0


def test_wakeups_follow_the_commit_flags(rt: Runtime) -> None:
    rb = ringbuf(rt)
    rb.output(b"a")  # the consumer waits at this record: wake
    rb.output(b"b")  # the consumer is behind: no wake
    assert rb.wakeups == 1
    rb.output(b"c", BPF_RB_FORCE_WAKEUP)
    assert rb.wakeups == 2
    RingBufferConsumer(rb).poll()
    rb.output(b"d", BPF_RB_NO_WAKEUP)
    assert rb.wakeups == 2


def test_submitting_twice_or_elsewhere_faults(rt: Runtime) -> None:
    rb = ringbuf(rt)
    addr = rb.reserve(4)
    assert addr is not None
    rb.submit(addr)
    with pytest.raises(BpfFault):
        rb.submit(addr)
    with pytest.raises(BpfFault):
        ringbuf_submit(rt, 0x1000)
    with pytest.raises(BpfFault):
        rb.submit(addr + 1)


# -- the consumer ------------------------------------------------------------------------------
def test_consume_stops_on_a_negative_callback_result(rt: Runtime) -> None:
    rb = ringbuf(rt)
    for s in (b"1", b"2", b"3"):
        rb.output(s)
    seen: list[bytes] = []

    def cb(sample: bytes) -> int:
        seen.append(sample)
        return -7 if sample == b"2" else 0

    consumer = RingBufferConsumer(rb)
    assert consumer.consume(cb) == -7
    assert seen == [b"1", b"2"]
    assert consumer.poll() == [b"3"]


def test_poll_takes_at_most_max_records(rt: Runtime) -> None:
    rb = ringbuf(rt)
    for s in (b"1", b"2", b"3"):
        rb.output(s)
    consumer = RingBufferConsumer(rb)
    assert consumer.poll(2) == [b"1", b"2"]
    assert consumer.available() == 16
    assert consumer.poll() == [b"3"]


def test_consumer_from_a_friendly_map_or_fd(rt: Runtime) -> None:
    m = Map.create(MapType.RINGBUF, max_entries=PAGE, runtime=rt)
    rb = rt.fds[m.fd].obj
    rb.output(b"hi")
    assert RingBufferConsumer(m).poll() == [b"hi"]
    rb.output(b"there")
    assert RingBufferConsumer.from_fd(m.fd, rt).poll() == [b"there"]


def test_many_records_around_the_ring_keep_their_order(rt: Runtime) -> None:
    rb = ringbuf(rt)
    consumer = RingBufferConsumer(rb)
    sent: list[bytes] = []
    got: list[bytes] = []
    for i in range(300):
        sample = bytes([i % 256]) * (i % 37)
        try:
            rb.output(sample)
        except BpfError:
            got += consumer.poll()
            rb.output(sample)
        sent.append(sample)
    got += consumer.poll()
    assert got == sent
    assert rb.producer_pos > 2 * PAGE
