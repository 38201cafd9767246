"""User ring buffers on pyebpf and on the real kernel.

MAP_CREATE and the element commands fail alike. Then user space writes the
same records on both sides (libbpf's user_ring_buffer protocol on the
kernel's mmap()ed pages, UserRingBufferProducer on pyebpf's), discarded and
still-reserved ones included, and an XDP program drains them with
bpf_user_ringbuf_drain, its callback reading each sample's first u32 through
bpf_dynptr_read: the drained count, the sum read and the consumer position
must match after every run, through records that wrap past the end.
"""

from __future__ import annotations

import mmap
import os
import struct

import pytest

from helpers._build import (
    ADD,
    AND,
    LSH,
    OR,
    Asm,
    KernelBackend,
    PyBackend,
    alu,
    alur,
    call,
    exit_,
    ld_map_fd,
    ldx,
    mov,
    movr,
    st,
    stx,
)
from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapType, ProgType
from pyebpf.maps.user_ringbuf import UserRingBufferProducer, UserRingBufMap

from .harness import MapPair, info_fields, same_errno

pytestmark = pytest.mark.kernel

PAGE = 4096
BUSY, DISCARD = 1 << 31, 1 << 30


@pytest.mark.parametrize("kw", [
    dict(max_entries=PAGE), dict(max_entries=PAGE * 3), dict(max_entries=100),
    dict(max_entries=PAGE, key_size=4), dict(max_entries=PAGE, map_flags=1),
    dict(max_entries=PAGE, map_flags=4), dict(max_entries=0),
], ids=str)
def test_create_and_element_commands_match_the_kernel(kw: dict) -> None:
    with MapPair(MapCreateAttr(map_type=MapType.USER_RINGBUF, **kw)) as pair:
        py, k = pair.created
        same_errno(py, k, f"MAP_CREATE {kw}")
        if not py.ok:
            return
        _same_info(pair)
        for cmd in (Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_DELETE_ELEM, Cmd.MAP_GET_NEXT_KEY,
                    Cmd.MAP_LOOKUP_AND_DELETE_ELEM):
            py, k = pair.elem(cmd, key=None)
            same_errno(py, k, cmd.name)
        py, k = pair.elem(Cmd.MAP_UPDATE_ELEM, key=None, value=None)
        same_errno(py, k, "MAP_UPDATE_ELEM")


def _drain_prog(map_fd: int) -> Asm:
    """r0 = drained << 16 | (sum of each sample's first u32) & 0xffff."""
    a = Asm()
    a(st(8, 10, -8, 0), *ld_map_fd(1, map_fd))
    a.ld_func(2, "cb")
    a(movr(3, 10), alu(ADD, 3, -8), mov(4, 0), call(209), movr(7, 0), ldx(8, 0, 10, -8),
      alu(AND, 0, 0xFFFF), alu(LSH, 7, 16), alur(OR, 0, 7), exit_())
    a.label("cb")
    a(movr(6, 2), movr(3, 1), movr(1, 10), alu(ADD, 1, -8), mov(2, 4), mov(4, 0), mov(5, 0),
      call(201), ldx(4, 1, 10, -8), ldx(8, 2, 6, 0), alur(ADD, 2, 1), stx(8, 6, 2, 0),
      mov(0, 0), exit_())
    return a


class KernelProducer:
    """libbpf's user_ring_buffer over the kernel map's pages."""

    def __init__(self, fd: int, size: int) -> None:
        self.size = size
        self.cons = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ, offset=0)
        self.prod = mmap.mmap(fd, PAGE + 2 * size, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE, offset=PAGE)

    @property
    def consumer_pos(self) -> int:
        return int(struct.unpack_from("<Q", self.cons, 0)[0])

    def reserve(self, size: int) -> int | None:
        prod_pos = struct.unpack_from("<Q", self.prod, 0)[0]
        total = (size + 8 + 7) // 8 * 8
        if self.size - (prod_pos - self.consumer_pos) < total:
            return None
        struct.pack_into("<II", self.prod, PAGE + (prod_pos & (self.size - 1)), size | BUSY, 0)
        struct.pack_into("<Q", self.prod, 0, prod_pos + total)
        return prod_pos + 8

    def write(self, pos: int, data: bytes) -> None:
        off = PAGE + (pos & (self.size - 1))  # the data pages are mapped twice
        self.prod[off:off + len(data)] = data

    def commit(self, pos: int, discard: bool) -> None:
        off = PAGE + ((pos - 8) & (self.size - 1))
        hdr = struct.unpack_from("<I", self.prod, off)[0] & ~BUSY
        struct.pack_into("<I", self.prod, off, hdr | (DISCARD if discard else 0))

    def close(self) -> None:
        self.cons.close()
        self.prod.close()


def test_drain_matches_the_kernel() -> None:
    size = PAGE
    kb, pb = KernelBackend(), PyBackend()
    try:
        k_map = kb.map_create(MapType.USER_RINGBUF, 0, 0, size)
        p_map = pb.map_create(MapType.USER_RINGBUF, 0, 0, size)
        rb = pb.rt.fds[p_map].obj
        assert isinstance(rb, UserRingBufMap)
        kp, pp = KernelProducer(k_map, size), UserRingBufferProducer(rb)
        a_k, a_p = _drain_prog(k_map), _drain_prog(p_map)
        cb = a_k.labels["cb"]
        k_prog = kb.load(a_k.build(), ProgType.XDP, funcs=[(0, "main", 1), (cb, "cb", 0)])
        p_prog = pb.load(a_p.build(), ProgType.XDP)
        held: list[tuple[int, int]] = []
        drained = 0
        for run in range(40):
            # A few records per run, of growing sizes; every 7th is discarded, and now
            # and then one stays reserved across a drain (it blocks the ones behind).
            for i in range(3):
                n = (run * 3 + i) * 13 % 300
                data = struct.pack("<I", run * 10 + i) + bytes(j & 0xFF for j in range(n))
                k_pos = kp.reserve(len(data))
                try:
                    p_pos = pp.reserve(len(data))
                except OSError:
                    p_pos = None
                assert (k_pos is None) == (p_pos is None), f"run {run}: reserve"
                if k_pos is None or p_pos is None:
                    continue
                kp.write(k_pos, data)
                pp.write(p_pos, data)
                if run % 5 == 4 and i == 2:
                    held.append((k_pos, p_pos))
                    continue
                discard = (run + i) % 7 == 0
                kp.commit(k_pos, discard)
                (pp.discard if discard else pp.submit)(p_pos)
            k = kb.run(k_prog)
            p = pb.run(p_prog)
            assert p == k, f"run {run}: pyebpf {p:#x}, kernel {k:#x}"
            drained += k >> 16
            assert rb.consumer_pos == kp.consumer_pos, f"run {run}"
            if run % 5 == 0 and held:
                k_pos, p_pos = held.pop()
                kp.commit(k_pos, False)
                pp.submit(p_pos)
        assert rb.consumer_pos > size and drained > 60  # wrapped, most samples drained
        kp.close()
    finally:
        for fd in kb.fds:
            os.close(fd)
        pb.close()


def _same_info(pair: MapPair) -> None:
    """OBJ_GET_INFO_BY_FD gives the same bpf_map_info on both sides (ids aside)."""
    py, k = pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
    same_errno(py, k, "OBJ_GET_INFO_BY_FD")
    assert info_fields(py.value) == info_fields(k.value)
