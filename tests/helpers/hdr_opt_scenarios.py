"""A sock_ops program that writes a TCP header option on every segment it sends and
reads it back from every segment it receives, run on pyebpf's callbacks
(:mod:`pyebpf.helpers.hdr_opt`) or on real loopback TCP connections
(tests/kernel/test_hdr_opt_differential.py).

The program (one for both ends) asks for the header-option callbacks when the
connection is established, reserves 12 bytes in HDR_OPT_LEN_CB, stores the
experimental option ``fe 06 eb 9f 01 02`` in WRITE_HDR_OPT_CB and loads it in
PARSE_HDR_OPT_CB; it records in an array map (key 0): [0] the last store's
result, [1] the last load's result, [2] the option loaded (8 bytes), [3]
bpf_reserve_hdr_opt's result, [4] a second store's result (the same kind
and magic again, with room left: -EEXIST).
"""

from __future__ import annotations

from pyebpf.helpers.hdr_opt import (
    BPF_SOCK_OPS_HDR_OPT_LEN_CB,
    BPF_SOCK_OPS_PARSE_HDR_OPT_CB,
    BPF_SOCK_OPS_WRITE_HDR_OPT_CB,
)

from ._build import JEQ, JNE, Asm, Insn, call, exit_, ld_map_fd, lddw, mov, movr, st, stx

EXP_OPT = bytes([0xFE, 6, 0xEB, 0x9F, 0x01, 0x02])
ACTIVE_ESTABLISHED_CB, PASSIVE_ESTABLISHED_CB = 4, 5
#: BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG
HDR_OPT_CB_FLAGS = (1 << 4) | (1 << 6)
SLOTS = 6


def _u64(data: bytes) -> int:
    return int.from_bytes(data.ljust(8, b"\0"), "little")


def hdr_opt_prog(map_fd: int) -> list[Insn]:
    p = Asm()
    p(movr(6, 1), st(4, 10, -4, 0), ld_map_fd(1, map_fd), movr(2, 10),
      Insn(0x07, 2, 0, 0, -4), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(movr(7, 0), Insn(0x61, 2, 6, 0, 0))  # r2 = ctx->op
    p.jmp(JEQ, 2, ACTIVE_ESTABLISHED_CB, "flags")
    p.jmp(JEQ, 2, PASSIVE_ESTABLISHED_CB, "flags")
    p.jmp(JEQ, 2, BPF_SOCK_OPS_HDR_OPT_LEN_CB, "len")
    p.jmp(JEQ, 2, BPF_SOCK_OPS_WRITE_HDR_OPT_CB, "write")
    p.jmp(JNE, 2, BPF_SOCK_OPS_PARSE_HDR_OPT_CB, "out")
    # parse: search for kind 254 with magic eb9f
    p(lddw(2, _u64(bytes([0xFE, 4, 0xEB, 0x9F]))), stx(8, 10, 2, -16), movr(1, 6),
      movr(2, 10), Insn(0x07, 2, 0, 0, -16), mov(3, 8), mov(4, 0), call(142),
      stx(8, 7, 0, 8), Insn(0x79, 2, 10, -16, 0), stx(8, 7, 2, 16))
    p.ja("out")
    p.label("flags")
    p(movr(1, 6), mov(2, HDR_OPT_CB_FLAGS), call(59))
    p.ja("out")
    p.label("len")
    p(movr(1, 6), mov(2, 2 * len(EXP_OPT)), mov(3, 0), call(144), stx(8, 7, 0, 24))
    p.ja("out")
    p.label("write")
    p(lddw(2, _u64(EXP_OPT)), stx(8, 10, 2, -16), movr(1, 6), movr(2, 10),
      Insn(0x07, 2, 0, 0, -16), mov(3, len(EXP_OPT)), mov(4, 0), call(143), stx(8, 7, 0, 0),
      movr(1, 6), movr(2, 10), Insn(0x07, 2, 0, 0, -16), mov(3, len(EXP_OPT)), mov(4, 0),
      call(143), stx(8, 7, 0, 32))
    p.label("out")
    p(mov(0, 1), exit_())
    return p.build()


def record(value: bytes) -> tuple[int, int, bytes, int, int]:
    """The map value as (store result, load result, option loaded, reserve
    result, second store result)."""
    def s64(i: int) -> int:
        return int.from_bytes(value[8 * i:8 * i + 8], "little", signed=True)

    return s64(0), s64(1), value[16:24], s64(3), s64(4)
