"""Perf event helpers run by programs: output (xdp ctx capture), read, read_value."""

from __future__ import annotations

import errno
import struct

from pyebpf import MapType, ProgType
from pyebpf.maps.perf_event_array import PerfBuffer, PerfEventAttr, perf_event_of, perf_event_open

from ._build import ADD, PyBackend, alu, call, exit_, ld_map_fd, lddw, ldx, mov, movr, st, u32

PACKET = bytes(range(64))
U32 = 0xFFFF_FFFF


def _output_prog(map_fd: int, flags: int) -> list:
    return [movr(6, 1), st(8, 10, -8, 0x44434241), movr(1, 6), *ld_map_fd(2, map_fd),
            *lddw(3, flags), movr(4, 10), alu(ADD, 4, -8), mov(5, 4), call(25), exit_()]


def test_xdp_output_appends_the_frame_bytes_the_flags_ask_for() -> None:
    be = PyBackend(nr_cpus=2)
    fd = be.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, 2)
    pb = PerfBuffer(be.rt.fds[fd].obj, page_cnt=1)
    prog = be.load(_output_prog(fd, U32 | (10 << 32)), ProgType.XDP)
    assert be.run(prog, PACKET) == 0
    [sample] = pb.poll()
    assert sample.cpu == 0 and sample.data[:14] == b"ABCD" + PACKET[:10]


def test_xdp_output_past_the_frame_is_efault_and_unknown_flags_einval() -> None:
    be = PyBackend(nr_cpus=2)
    fd = be.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, 2)
    PerfBuffer(be.rt.fds[fd].obj, page_cnt=1)
    assert be.run(be.load(_output_prog(fd, U32 | (65 << 32)), ProgType.XDP), PACKET) == \
        -errno.EFAULT & U32
    assert be.run(be.load(_output_prog(fd, U32 | (1 << 60)), ProgType.XDP), PACKET) == \
        -errno.EINVAL & U32


def _read_value_prog(map_fd: int, size: int, ret_counter: bool) -> list:
    """bpf_perf_event_read_value(map, 0, fp - 24, size); return its result, or the
    counter it wrote."""
    p = [st(8, 10, -24, -1), *ld_map_fd(1, map_fd), mov(2, 0), movr(3, 10), alu(ADD, 3, -24),
         mov(4, size), call(55)]
    return [*p, ldx(8, 0, 10, -24), exit_()] if ret_counter else [*p, exit_()]


def test_read_value_gives_the_counter_and_rejects_a_wrong_size() -> None:
    be = PyBackend(nr_cpus=2)
    fd = be.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, 2)
    ev = perf_event_open(be.rt, PerfEventAttr(type=0, config=0), cpu=0)
    perf_event_of(be.rt, ev).count = 1234
    be.update(fd, u32(0), u32(ev))
    assert be.run(be.load(_read_value_prog(fd, 24, True), ProgType.XDP)) == 1234
    assert be.run(be.load(_read_value_prog(fd, 16, False), ProgType.XDP)) == -errno.EINVAL & U32
    # ... and the buffer was zeroed.
    assert be.run(be.load(_read_value_prog(fd, 16, True), ProgType.XDP)) == 0


def test_perf_event_read_on_another_cpus_event_is_einval() -> None:
    be = PyBackend(nr_cpus=2)
    fd = be.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, 2)
    ev = perf_event_open(be.rt, PerfEventAttr(type=0, config=0), cpu=1)
    perf_event_of(be.rt, ev).count = 7
    be.update(fd, u32(0), u32(ev))
    prog = be.load([*ld_map_fd(1, fd), mov(2, 0), call(22), exit_()], ProgType.XDP)
    assert be.run(prog) == -errno.EINVAL & U32
    be.rt.cpu = 1
    assert be.run(prog) == 7


def test_perf_prog_read_value_reads_the_programs_event() -> None:
    """A PERF_EVENT program's ctx stands for its event (no test run: called directly)."""
    from types import SimpleNamespace

    from pyebpf.helpers.perf_event import perf_prog_read_value
    from pyebpf.progs.ctx import map_ctx
    from pyebpf.progs.xdp import XDP_MD

    be = PyBackend(nr_cpus=2)
    event = perf_event_of(be.rt, perf_event_open(be.rt, PerfEventAttr(type=0, config=0)))
    event.count, event.enabled_time, event.running_time = 5, 6, 7
    ctx = map_ctx(be.rt.memory, XDP_MD, SimpleNamespace(event=event))
    vm = be.rt.fds[be.load([mov(0, 0), exit_()], ProgType.XDP)].obj.vm()
    buf = be.rt.memory.map(24, kind="stack")
    assert perf_prog_read_value(vm, ctx.base, buf.base, 24, 0, 0) == 0
    assert bytes(buf.buf) == struct.pack("<QQQ", 5, 6, 7)
    assert perf_prog_read_value(vm, ctx.base, buf.base, 16, 0, 0) == -errno.EINVAL & (2**64 - 1)
    assert bytes(buf.buf[:16]) == bytes(16)
