"""Ring buffer records, byte for byte, on pyebpf and on the real kernel.

A small socket-filter program, run with BPF_PROG_TEST_RUN on the kernel, calls
bpf_ringbuf_output (a sample of ``n`` bytes), then bpf_ringbuf_reserve +
bpf_ringbuf_discard (20 bytes), then bpf_ringbuf_reserve + bpf_ringbuf_submit
(6 bytes). The same calls are made on a pyebpf RingBufMap. After every run the
kernel's mmap()ed data area and positions must equal pyebpf's (headers with
their BUSY/DISCARD bits and page offset, padding, samples), including records
that wrap past the end of the ring; a consumer advancing ``consumer_pos`` as
libbpf does reads the same samples on both sides.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import struct

import pytest

from pyebpf import Cmd, MapCreateAttr, MapType, bpf
from pyebpf.maps.ringbuf import RingBufferConsumer, RingBufMap
from pyebpf.runtime import Runtime
from pyebpf.testing.kernel import kernel_bpf, kernel_bpf_raw

pytestmark = pytest.mark.kernel

PAGE = 4096
BUSY, DISCARD = 1 << 31, 1 << 30


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def ld_map(reg: int, fd: int) -> bytes:
    return insn(0x18, reg, 1, 0, fd) + insn(0)


def program(rb_fd: int, out_size: int) -> bytes:
    mov = lambda dst, imm: insn(0xB7, dst, 0, 0, imm)  # noqa: E731
    call = lambda n: insn(0x85, 0, 0, 0, n)  # noqa: E731
    p = insn(0x7A, 10, 0, -16, 0x04030201) + insn(0x7A, 10, 0, -8, 0x08070605)
    # bpf_ringbuf_output(rb, fp - 16, out_size, 0)
    p += ld_map(1, rb_fd) + insn(0xBF, 2, 10) + insn(0x07, 2, 0, 0, -16) + mov(3, out_size)
    p += mov(4, 0) + call(130)
    # s = bpf_ringbuf_reserve(rb, 20, 0); *(u32 *)s = 0x11223344; bpf_ringbuf_discard(s, 0)
    p += ld_map(1, rb_fd) + mov(2, 20) + mov(3, 0) + call(131)
    p += insn(0x15, 0, 0, 4, 0) + insn(0x62, 0, 0, 0, 0x11223344) + insn(0xBF, 1, 0)
    p += mov(2, 0) + call(133)
    # s = bpf_ringbuf_reserve(rb, 6, 0); *(u32 *)s = 0xaabbcc; bpf_ringbuf_submit(s, 0)
    p += ld_map(1, rb_fd) + mov(2, 6) + mov(3, 0) + call(131)
    p += insn(0x15, 0, 0, 4, 0) + insn(0x62, 0, 0, 0, 0xAABBCC) + insn(0xBF, 1, 0)
    p += mov(2, 0) + call(132)
    return p + mov(0, 0) + insn(0x95)


def load(prog: bytes) -> int:
    insns = ctypes.create_string_buffer(prog, len(prog))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("<IIQQIIQ", 1, len(prog) // 8, ctypes.addressof(insns),
                       ctypes.addressof(lic), 0, 0, 0)
    fd, err = kernel_bpf_raw(Cmd.PROG_LOAD, attr.ljust(160, b"\0"))
    assert fd >= 0, os.strerror(err)
    return fd


def run_prog(prog_fd: int) -> None:
    data = ctypes.create_string_buffer(64)
    attr = struct.pack("<IIIIQQI", prog_fd, 0, 64, 0, ctypes.addressof(data), 0, 1)
    ret, err = kernel_bpf_raw(Cmd.PROG_TEST_RUN, attr.ljust(160, b"\0"))
    assert ret == 0, os.strerror(err)


def pyebpf_run(rt: Runtime, rb: RingBufMap, out_size: int) -> None:
    """The program's calls, made on pyebpf's ring buffer."""
    stack = struct.pack("<QQ", 0x04030201, 0x08070605)
    with contextlib.suppress(OSError):  # the program ignores bpf_ringbuf_output's -EAGAIN
        rb.output(stack[:out_size])
    s = rb.reserve(20)
    if s is not None:
        rt.memory.store(s, 4, 0x11223344)
        rb.discard(s)
    s = rb.reserve(6)
    if s is not None:
        rt.memory.store(s, 4, 0xAABBCC)
        rb.submit(s)


def kernel_samples(cons: mmap.mmap, prod: mmap.mmap, size: int) -> list[bytes]:
    """libbpf's ringbuf_process_ring over the mmap()ed pages."""
    out = []
    cons_pos = struct.unpack_from("<Q", cons, 0)[0]
    prod_pos = struct.unpack_from("<Q", prod, 0)[0]
    while cons_pos < prod_pos:
        off = PAGE + (cons_pos & (size - 1))
        hdr_len = struct.unpack_from("<I", prod, off)[0]
        if hdr_len & BUSY:
            break
        length = hdr_len & ~(BUSY | DISCARD)
        cons_pos += (length + 8 + 7) // 8 * 8
        if not hdr_len & DISCARD:
            out.append(bytes(prod[off + 8:off + 8 + length]))
        struct.pack_into("<Q", cons, 0, cons_pos)
    return out


@pytest.mark.parametrize("out_size", [5, 9, 16])
def test_ring_buffer_records_match_the_kernel_byte_for_byte(out_size: int) -> None:
    size = PAGE
    attr = MapCreateAttr(map_type=MapType.RINGBUF, max_entries=size)
    kfd = kernel_bpf(Cmd.MAP_CREATE, attr)
    rt = Runtime()
    rb = rt.fds[bpf(Cmd.MAP_CREATE, attr, runtime=rt)].obj
    assert isinstance(rb, RingBufMap)
    consumer = RingBufferConsumer(rb)
    prog_fd = load(program(kfd, out_size))
    cons = mmap.mmap(kfd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
    prod = mmap.mmap(kfd, PAGE + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
    try:
        for i in range(3 * size // 64):
            run_prog(prog_fd)
            pyebpf_run(rt, rb, out_size)
            assert struct.unpack_from("<Q", prod, 0)[0] == rb.producer_pos, f"run {i}"
            assert bytes(prod[PAGE:PAGE + size]) == bytes(rb.region.buf[:size]), f"run {i}"
            if i % 3 != 2:  # let the ring fill up now and then: reservations fail alike
                assert kernel_samples(cons, prod, size) == consumer.poll(), f"run {i}"
                assert struct.unpack_from("<Q", cons, 0)[0] == rb.consumer_pos
        assert rb.producer_pos > 2 * size  # wrapped around, twice
    finally:
        cons.close()
        prod.close()
        os.close(prog_fd)
        os.close(kfd)
