"""PERF_EVENT_ARRAY: creation, the element commands, simulated perf events, PerfBuffer."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import BpfError, Cmd, MapElemAttr, MapType, Runtime, bpf
from pyebpf.errors import ENOTSUPP
from pyebpf.maps.perf_event_array import (
    PERF_RECORD_LOST,
    PERF_RECORD_SAMPLE,
    PerfBuffer,
    PerfEventArrayMap,
    PerfEventAttr,
    PerfEventReader,
    perf_event_of,
    perf_event_open,
)

from ._mapops import create, create_errno, k


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def _map(rt: Runtime, max_entries: int = 2) -> tuple[int, PerfEventArrayMap]:
    fd = create(rt, MapType.PERF_EVENT_ARRAY, key_size=4, value_size=4, max_entries=max_entries)
    m = rt.fds[fd].obj
    assert isinstance(m, PerfEventArrayMap)
    return fd, m


def _errno(rt: Runtime, cmd: Cmd, **kw: object) -> int:
    with pytest.raises(BpfError) as e:
        bpf(cmd, MapElemAttr(**kw), runtime=rt)
    return int(e.value.errno or 0)


@pytest.mark.parametrize("kw", [dict(value_size=8), dict(key_size=8), dict(max_entries=0),
                                dict(map_flags=1 << 7), dict(map_flags=1 << 10)])
def test_create_needs_u32_keys_and_fd_values_and_array_flags(rt: Runtime, kw: dict) -> None:
    attr = dict(key_size=4, value_size=4, max_entries=1) | kw
    assert create_errno(rt, MapType.PERF_EVENT_ARRAY, **attr) == errno.EINVAL


def test_preserve_elems_is_allowed(rt: Runtime) -> None:
    create(rt, MapType.PERF_EVENT_ARRAY, key_size=4, value_size=4, max_entries=1,
           map_flags=1 << 11)


def test_update_with_a_non_perf_fd_is_ebadf_and_lookup_is_enotsupp(rt: Runtime) -> None:
    fd, _ = _map(rt)
    assert _errno(rt, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=k(0), value=k(fd)) == errno.EBADF
    assert _errno(rt, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=k(0), value=k(999)) == errno.EBADF
    assert _errno(rt, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=k(2), value=k(fd)) == errno.E2BIG
    assert _errno(rt, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=k(0), value=k(fd),
                  flags=1) == errno.EINVAL
    assert _errno(rt, Cmd.MAP_LOOKUP_ELEM, map_fd=fd, key=k(0)) == ENOTSUPP
    assert _errno(rt, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=k(0)) == errno.ENOENT
    assert _errno(rt, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=k(2)) == errno.E2BIG


def test_inherited_event_update_is_eopnotsupp(rt: Runtime) -> None:
    fd, _ = _map(rt)
    ev = perf_event_open(rt, PerfEventAttr(inherit=True), cpu=-1, pid=1)
    assert _errno(rt, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=k(0), value=k(ev)) == errno.EOPNOTSUPP


def test_slot_keeps_the_event_alive_after_its_fd_closes(rt: Runtime) -> None:
    fd, m = _map(rt)
    ev = perf_event_open(rt, cpu=0)
    event = perf_event_of(rt, ev)
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=k(0), value=k(ev)), runtime=rt)
    rt.close(ev)
    assert m.event_at(0) is event and event.refcnt == 1
    bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=k(0)), runtime=rt)
    assert event.refcnt == 0


def test_output_writes_raw_samples_with_kernel_padding(rt: Runtime) -> None:
    _, m = _map(rt)
    pb = PerfBuffer(m, page_cnt=1)
    rt.cpu = 1
    m.output(0xFFFF_FFFF, b"hello")
    samples = pb.poll()
    # raw size: round_up(4 + 5, 8) - 4 = 12 (a fresh ring's padding reads as zeros)
    assert [(s.cpu, s.data) for s in samples] == [(1, b"hello" + bytes(7))]
    pb.close()
    assert not m.slots


def test_output_errors(rt: Runtime) -> None:
    _, m = _map(rt)
    with pytest.raises(BpfError) as e:
        m.output(0, b"x")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(BpfError) as e:
        m.output(5, b"x")
    assert e.value.errno == errno.E2BIG


def test_a_full_ring_loses_records_and_reports_them(rt: Runtime) -> None:
    _, m = _map(rt)
    lost: list[tuple[int, int]] = []
    pb = PerfBuffer(m, page_cnt=1, lost_cb=lambda cpu, n: lost.append((cpu, n)))
    fits = 0
    while True:
        try:
            m.output(0, bytes(100))
        except BpfError as e:
            assert e.errno == errno.ENOSPC
            break
        fits += 1
    assert fits == 4095 // 112
    for _ in range(3):
        with pytest.raises(BpfError):
            m.output(0, bytes(100))
    assert len(pb.poll()) == fits
    m.output(0, b"after")
    reader = pb.readers[0]
    records = reader.read()
    assert [r.type for r in records] == [PERF_RECORD_LOST, PERF_RECORD_SAMPLE]
    assert records[0].lost == 4 and records[1].raw[:5] == b"after"


def test_disabled_event_is_not_on_any_cpu(rt: Runtime) -> None:
    fd, m = _map(rt)
    ev = perf_event_open(rt, PerfEventAttr(disabled=True), cpu=0)
    perf_event_of(rt, ev).mmap(1)
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=k(0), value=k(ev)), runtime=rt)
    with pytest.raises(BpfError) as e:
        m.output(0, b"x")
    assert e.value.errno == errno.EOPNOTSUPP
    perf_event_of(rt, ev).enable()
    m.output(0, b"x")
    rec = PerfEventReader(perf_event_of(rt, ev)).read()
    assert len(rec) == 1 and struct.unpack_from("<I", rec[0].body)[0] == 4
