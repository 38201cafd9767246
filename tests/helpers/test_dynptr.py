"""bpf_dynptr_read/write/data over local dynptrs (user ring buffer samples)."""

from __future__ import annotations

import errno
import struct

from helpers._build import (
    ADD,
    JEQ,
    JNE,
    Asm,
    PyBackend,
    alu,
    call,
    exit_,
    ld_map_fd,
    ldx,
    mov,
    movr,
    st,
    stx,
)
from pyebpf import MapType, ProgType
from pyebpf.maps.user_ringbuf import UserRingBufferProducer

U32 = 0xFFFF_FFFF


def _prog(map_fd: int, cb_body: list) -> list:
    """r0 = the callback's last return value stored at fp-8 (it writes *ctx)."""
    a = Asm()
    a(st(8, 10, -8, 0), *ld_map_fd(1, map_fd))
    a.ld_func(2, "cb")
    a(movr(3, 10), alu(ADD, 3, -8), mov(4, 0), call(209), ldx(8, 0, 10, -8), exit_())
    a.label("cb")
    a(*cb_body)
    return a.build()


def _run(cb_body: list, sample: bytes) -> int:
    be = PyBackend()
    m = be.map_create(MapType.USER_RINGBUF, 0, 0, 4096)
    UserRingBufferProducer(be.rt.fds[m].obj).push(sample)
    return be.run(be.load(_prog(m, cb_body), ProgType.XDP))


def _read(offset: int, length: int) -> list:
    """*ctx = bpf_dynptr_read(fp - 16, length, dynptr, offset, 0) ?: *(u32 *)(fp - 16)."""
    a = Asm()
    a(movr(6, 2), movr(3, 1), st(8, 10, -16, 0), movr(1, 10), alu(ADD, 1, -16),
      mov(2, length), mov(4, offset), mov(5, 0), call(201))
    a.jmp(JNE, 0, 0, "err")
    a(ldx(4, 0, 10, -16))
    a.label("err")
    a(stx(8, 6, 0, 0), mov(0, 0), exit_())
    return a.build()


def test_dynptr_read_reads_the_sample() -> None:
    assert _run(_read(2, 4), struct.pack("<HI", 7, 0xABCD)) == 0xABCD


def test_dynptr_read_past_the_end_is_e2big() -> None:
    assert _run(_read(4, 4), bytes(6)) == -errno.E2BIG & U32


def test_dynptr_data_gives_a_pointer_or_null() -> None:
    a = Asm()
    a(movr(6, 2), mov(2, 1), mov(3, 2), call(203), mov(1, 0xFFFF))
    a.jmp(JEQ, 0, 0, "null")
    a(ldx(2, 1, 0, 0))
    a.label("null")
    a(stx(8, 6, 1, 0), mov(0, 0), exit_())
    assert _run(a.build(), b"\x01\x34\x12") == 0x1234
    assert _run(a.build(), b"\x01\x34") == 0xFFFF
