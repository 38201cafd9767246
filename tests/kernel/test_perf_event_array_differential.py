"""Perf event arrays on pyebpf and on the real kernel.

MAP_CREATE and the element commands must fail with the same errno on both
sides. Then a socket filter calling bpf_perf_event_output is test-run on
both: the kernel's side writes to a real PERF_COUNT_SW_BPF_OUTPUT event
(perf_event_open + mmap), pyebpf's to a simulated one; after every run the
helper's return value, the ring's head and every record (header, size word,
raw data, padding, appended packet bytes) must match, through a ring that
fills up (ENOSPC, then a PERF_RECORD_LOST with the same count). The error
paths of the helper (empty slot, index past the end, an event that is not a
BPF output event, an event on another CPU) must return the same errno.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct

import pytest

from helpers._build import (
    ADD,
    KernelBackend,
    PyBackend,
    alu,
    call,
    exit_,
    ld_map_fd,
    lddw,
    mov,
    movr,
    st,
)
from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapType
from pyebpf.maps.perf_event_array import (
    PERF_COUNT_SW_BPF_OUTPUT,
    PERF_COUNT_SW_CPU_CLOCK,
    PERF_RECORD_LOST,
    PERF_SAMPLE_RAW,
    PERF_TYPE_SOFTWARE,
    PerfEventAttr,
    PerfEventReader,
    perf_event_of,
    perf_event_open,
)
from pyebpf.testing.kernel import possible_cpus
from pyebpf.testing.kernel_prog import on_cpu

from .harness import BAD_FD, MapPair, info_fields, same_errno

pytestmark = pytest.mark.kernel

PAGE = 4096
_NR_PERF_EVENT_OPEN = 298  # x86-64
_PERF_FLAG_FD_CLOEXEC = 8
CURRENT_CPU = 0xFFFF_FFFF


# -- creation and element commands --------------------------------------------------------------
CREATE = [
    dict(key_size=4, value_size=4, max_entries=4),
    dict(key_size=4, value_size=8, max_entries=4),
    dict(key_size=8, value_size=4, max_entries=4),
    dict(key_size=4, value_size=4, max_entries=0),
    dict(key_size=4, value_size=4, max_entries=4, map_flags=1 << 11),  # PRESERVE_ELEMS
    dict(key_size=4, value_size=4, max_entries=4, map_flags=1 << 7),   # RDONLY_PROG
    dict(key_size=4, value_size=4, max_entries=4, map_flags=1 << 10),  # MMAPABLE
    dict(key_size=4, value_size=4, max_entries=4, map_flags=1 << 3),   # RDONLY
    dict(key_size=4, value_size=4, max_entries=4, map_flags=1),        # NO_PREALLOC
]


@pytest.mark.parametrize("kw", CREATE, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_create_matches_the_kernel(kw: dict) -> None:
    with MapPair(MapCreateAttr(map_type=MapType.PERF_EVENT_ARRAY, **kw)) as pair:
        py, k = pair.created
        same_errno(py, k, f"MAP_CREATE {kw}")
        if py.ok:
            _same_info(pair)


def _u32(v: int) -> bytes:
    return (v & 0xFFFF_FFFF).to_bytes(4, "little")


def test_element_commands_match_the_kernel() -> None:
    attr = MapCreateAttr(map_type=MapType.PERF_EVENT_ARRAY, key_size=4, value_size=4,
                         max_entries=4)
    with MapPair(attr) as pair:
        other = MapPair(MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=4,
                                      max_entries=1), rt=pair.rt)
        try:
            assert other.py_fd is not None and other.k_fd is not None
            steps = [
                (Cmd.MAP_LOOKUP_ELEM, dict(key=_u32(0))),
                (Cmd.MAP_LOOKUP_ELEM, dict(key=_u32(9))),
                (Cmd.MAP_DELETE_ELEM, dict(key=_u32(0))),
                (Cmd.MAP_DELETE_ELEM, dict(key=_u32(4))),
                (Cmd.MAP_UPDATE_ELEM, dict(key=_u32(9), value=_u32(BAD_FD))),
                (Cmd.MAP_UPDATE_ELEM, dict(key=_u32(0), value=_u32(BAD_FD))),
                (Cmd.MAP_UPDATE_ELEM, dict(key=_u32(0), value=_u32(BAD_FD), flags=1)),
                (Cmd.MAP_UPDATE_ELEM, dict(key=_u32(0), value=_u32(BAD_FD), flags=2)),
                (Cmd.MAP_LOOKUP_AND_DELETE_ELEM, dict(key=_u32(0))),
                (Cmd.MAP_GET_NEXT_KEY, dict(key=None)),
                (Cmd.MAP_GET_NEXT_KEY, dict(key=_u32(2))),
                (Cmd.MAP_GET_NEXT_KEY, dict(key=_u32(3))),
            ]
            for cmd, fields in steps:
                py, k = pair.elem(cmd, **fields)
                same_errno(py, k, f"{cmd.name} {fields}")
                if py.ok and cmd is Cmd.MAP_GET_NEXT_KEY:
                    assert py.value == k.value
            # An fd that is open but no perf event (an array map's): EBADF on both.
            py, k = pair.run(Cmd.MAP_UPDATE_ELEM, lambda fd: _update_with(
                fd, other.py_fd if fd == pair.py_fd else other.k_fd))
            same_errno(py, k, "MAP_UPDATE_ELEM with a map fd as the value")
        finally:
            other.close()


def _update_with(map_fd: int, value_fd: int | None) -> object:
    from pyebpf import MapElemAttr

    assert value_fd is not None
    return MapElemAttr(map_fd=map_fd, key=_u32(0), value=_u32(value_fd))


# -- the kernel's perf events -------------------------------------------------------------------
def _perf_event_open(config: int, cpu: int, sample_type: int = PERF_SAMPLE_RAW) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    attr = bytearray(128)
    struct.pack_into("<IIQQQ", attr, 0, PERF_TYPE_SOFTWARE, len(attr), config, 1, sample_type)
    struct.pack_into("<I", attr, 48, 1)  # wakeup_events
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    fd = libc.syscall(_NR_PERF_EVENT_OPEN, buf, -1, cpu, -1, _PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        e = ctypes.get_errno()
        pytest.skip(f"perf_event_open failed: {os.strerror(e)}")
    return int(fd)


class KernelRing:
    """A kernel perf event's mmap()ed ring, read as perf_event_read_simple does."""

    def __init__(self, fd: int, data_pages: int) -> None:
        self.size = data_pages * PAGE
        self.mm = mmap.mmap(fd, PAGE + self.size, mmap.MAP_SHARED,
                            mmap.PROT_READ | mmap.PROT_WRITE)

    @property
    def head(self) -> int:
        return int(struct.unpack_from("<Q", self.mm, 1024)[0])

    def records(self) -> list[tuple[int, int, bytes]]:
        tail = struct.unpack_from("<Q", self.mm, 1032)[0]
        head = self.head
        data = bytes(self.mm[PAGE:PAGE + self.size])
        ring = data + data
        out = []
        while tail < head:
            off = tail % self.size
            rtype, misc, size = struct.unpack_from("<IHH", ring, off)
            out.append((rtype, misc, ring[off + 8:off + size]))
            tail += size
        struct.pack_into("<Q", self.mm, 1032, tail)
        return out

    def close(self) -> None:
        self.mm.close()


def _normal(records: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """PERF_RECORD_LOST carries the event's id, which differs: keep only its count."""
    return [(t, m, b[8:] if t == PERF_RECORD_LOST else b) for t, m, b in records]


def _program(map_fd: int, flags: int, size: int) -> list:
    """bpf_perf_event_output(skb, map, flags, fp - 16, size); return its result."""
    return [
        movr(6, 1),
        st(8, 10, -16, 0x04030201), st(8, 10, -8, 0x0D0C0B0A),
        movr(1, 6), *ld_map_fd(2, map_fd), *lddw(3, flags), movr(4, 10),
        alu(ADD, 4, -16), mov(5, size), call(25), exit_(),
    ]



PACKET = bytes(range(60))


#: A socket filter's skb->len for PACKET: the Ethernet header is pulled.
SKB_LEN = len(PACKET) - 14
_FILLS = {0, -errno.ENOSPC & 0xFFFF_FFFF}


@pytest.mark.parametrize(("size", "ctxlen", "rets"), [
    (0, 0, _FILLS), (5, 0, _FILLS), (12, 3, _FILLS), (16, 14, _FILLS), (1, SKB_LEN, _FILLS),
    (1, SKB_LEN + 1, {-errno.EFAULT & 0xFFFF_FFFF}),
])
def test_output_records_match_the_kernel(size: int, ctxlen: int, rets: set[int]) -> None:
    flags = CURRENT_CPU | (ctxlen << 32)
    kb, pb = KernelBackend(), PyBackend(nr_cpus=possible_cpus())
    k_ev = _perf_event_open(PERF_COUNT_SW_BPF_OUTPUT, 0)
    ring = KernelRing(k_ev, 1)
    try:
        k_map = kb.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, possible_cpus())
        p_map = pb.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, possible_cpus())
        kb.update(k_map, _u32(0), _u32(k_ev))
        p_ev = perf_event_open(pb.rt, PerfEventAttr(), cpu=0)
        perf_event_of(pb.rt, p_ev).mmap(1)
        reader = PerfEventReader(perf_event_of(pb.rt, p_ev))
        pb.update(p_map, _u32(0), _u32(p_ev))
        k_prog = kb.load(_program(k_map, flags, size), 1)
        p_prog = pb.load(_program(p_map, flags, size), 1)
        pb.rt.cpu = 0
        k_rets = set()
        for i in range(4096 // 16 + 40):
            with on_cpu(0):
                k_ret = kb.run(k_prog, PACKET)
            p_ret = pb.run(p_prog, PACKET)
            k_rets.add(k_ret)
            assert p_ret == k_ret, f"run {i}: pyebpf {p_ret:#x}, kernel {k_ret:#x}"
            assert reader.ring.head == ring.head, f"run {i}"
            if i in (3, 4096 // 16 + 39):  # read seldom: the ring fills up in between
                got = [(r.type, r.misc, r.body) for r in reader.read()]
                assert _normal(got) == _normal(ring.records()), f"run {i}"
        assert k_rets == rets, "the ring should have filled up (or the helper failed)"
        # The ring was drained: the next sample comes after a PERF_RECORD_LOST.
        with on_cpu(0):
            kb.run(k_prog, PACKET)
        pb.run(p_prog, PACKET)
        got = _normal([(r.type, r.misc, r.body) for r in reader.read()])
        assert got == _normal(ring.records())
        if 0 in rets:
            assert got[0][0] == PERF_RECORD_LOST and len(got) == 2
    finally:
        ring.close()
        os.close(k_ev)
        kb_close(kb)
        pb.close()


def kb_close(kb: KernelBackend) -> None:
    for fd in kb.fds:
        os.close(fd)
    kb.fds.clear()


def test_output_error_paths_match_the_kernel() -> None:
    """Empty slot, past the end, not a BPF output event, an event on another CPU."""
    ncpu = possible_cpus()
    if ncpu < 2:
        pytest.skip("needs two CPUs")
    kb, pb = KernelBackend(), PyBackend(nr_cpus=ncpu)
    k_fds = [_perf_event_open(PERF_COUNT_SW_CPU_CLOCK, 0), _perf_event_open(
        PERF_COUNT_SW_BPF_OUTPUT, 1)]
    try:
        k_map = kb.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, 3)
        p_map = pb.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, 3)
        kb.update(k_map, _u32(0), _u32(k_fds[0]))
        kb.update(k_map, _u32(1), _u32(k_fds[1]))
        p_fds = [perf_event_open(pb.rt, PerfEventAttr(config=PERF_COUNT_SW_CPU_CLOCK), cpu=0),
                 perf_event_open(pb.rt, PerfEventAttr(), cpu=1)]
        perf_event_of(pb.rt, p_fds[1]).mmap(1)
        pb.update(p_map, _u32(0), _u32(p_fds[0]))
        pb.update(p_map, _u32(1), _u32(p_fds[1]))
        pb.rt.cpu = 0
        for index in (0, 1, 2, 3, 1 << 20, CURRENT_CPU):
            for flags in (index, index | (1 << 52) if index != CURRENT_CPU else index | 1 << 60):
                k_prog = kb.load(_program(k_map, flags, 8), 1)
                p_prog = pb.load(_program(p_map, flags, 8), 1)
                with on_cpu(0):
                    k_ret = kb.run(k_prog, PACKET)
                p_ret = pb.run(p_prog, PACKET)
                assert p_ret == k_ret, f"flags {flags:#x}: pyebpf {p_ret:#x}, kernel {k_ret:#x}"
    finally:
        for fd in k_fds:
            os.close(fd)
        kb_close(kb)
        pb.close()


def _same_info(pair: MapPair) -> None:
    """OBJ_GET_INFO_BY_FD gives the same bpf_map_info on both sides (ids aside)."""
    py, k = pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
    same_errno(py, k, "OBJ_GET_INFO_BY_FD")
    assert info_fields(py.value) == info_fields(k.value)
