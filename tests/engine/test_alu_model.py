"""Every ALU, ALU64, JMP and JMP32 operation, held to a small independent model.

The model below is written from the kernel's ``___bpf_prog_run`` (kernel/bpf/
core.c, Linux 6.18) plus the rewrites the verifier applies before a program
runs (do_misc_fixups: division by zero gives 0, modulo by zero keeps the
dividend, zero-extended for 32-bit ops; signed division by -1 is a negation,
signed modulo by -1 gives 0). It masks explicitly and converts to signed by
two's complement by hand; it deliberately does not use :mod:`pyebpf.engine.alu`,
which is checked against it at the end of this file.

Each operation runs in the Vm as ``lddw r1, a; lddw r2, b; <op> r1, r2|imm;
mov r0, r1; exit``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf.engine import Vm, alu
from pyebpf.isa import AluOp, Class, Insn, JmpOp, Source

M64 = 0xFFFF_FFFF_FFFF_FFFF
M32 = 0xFFFF_FFFF
INT64_MIN = 0x8000_0000_0000_0000
INT32_MIN = 0x8000_0000

# -- the model -------------------------------------------------------------------


def signed(value: int, bits: int) -> int:
    """Two's complement reading of the low ``bits`` of ``value``."""
    value &= (1 << bits) - 1
    if value >= 1 << (bits - 1):
        return value - (1 << bits)
    return value


def trunc_div(a: int, b: int) -> int:
    """C division (truncates toward zero) of two Python ints, b != 0."""
    q = a // b  # floors
    if q < 0 and q * b != a:
        q += 1
    return q


def byte_reverse(value: int, nbytes: int) -> int:
    out = 0
    for i in range(nbytes):
        out |= ((value >> (8 * i)) & 0xFF) << (8 * (nbytes - 1 - i))
    return out


def operand(cls: Class, src: Source, b: int, imm: int) -> int:
    """The source operand as the kernel sees it: a register, or the s32 immediate
    sign-extended to 64 bits (ALU64) / taken as u32 (ALU)."""
    if src is Source.X:
        return b
    return imm & M64 if cls is Class.ALU64 else imm & M32


def model_alu(cls: Class, op: AluOp, off: int, dst: int, b: int) -> int:
    """The new value of the 64-bit destination register."""
    bits = 64 if cls is Class.ALU64 else 32
    mask = (1 << bits) - 1
    x, y = dst & mask, b & mask
    sx, sy = signed(x, bits), signed(y, bits)
    if op is AluOp.ADD:
        r = x + y
    elif op is AluOp.SUB:
        r = x - y
    elif op is AluOp.MUL:
        r = x * y
    elif op is AluOp.DIV and off == 0:
        r = 0 if y == 0 else x // y
    elif op is AluOp.DIV:
        r = 0 if sy == 0 else trunc_div(sx, sy)
    elif op is AluOp.MOD and off == 0:
        r = x if y == 0 else x % y
    elif op is AluOp.MOD:
        r = x if sy == 0 else sx - trunc_div(sx, sy) * sy
    elif op is AluOp.OR:
        r = x | y
    elif op is AluOp.AND:
        r = x & y
    elif op is AluOp.XOR:
        r = x ^ y
    elif op is AluOp.LSH:
        r = x << (y % bits)
    elif op is AluOp.RSH:
        r = x >> (y % bits)
    elif op is AluOp.ARSH:
        r = sx >> (y % bits)
    elif op is AluOp.MOV and off == 0:
        r = y
    elif op is AluOp.MOV:
        r = signed(b, off)  # movsx: sign-extend the low `off` bits of the source
    else:  # pragma: no cover
        raise AssertionError(op)
    return r & mask  # a 32-bit result is zero-extended into the 64-bit register


def model_neg(cls: Class, dst: int) -> int:
    return -dst & (M64 if cls is Class.ALU64 else M32)


def model_end(cls: Class, src: Source, width: int, dst: int) -> int:
    low = dst & ((1 << width) - 1)
    if cls is Class.ALU and src is Source.K:  # le16/32/64 on a little-endian machine
        return low
    return byte_reverse(low, width // 8)  # be (ALU, X) and bswap (ALU64)


def model_jcc(cls: Class, op: JmpOp, a: int, b: int) -> bool:
    bits = 64 if cls is Class.JMP else 32
    mask = (1 << bits) - 1
    x, y = a & mask, b & mask
    sx, sy = signed(x, bits), signed(y, bits)
    return {
        JmpOp.JEQ: x == y,
        JmpOp.JNE: x != y,
        JmpOp.JGT: x > y,
        JmpOp.JGE: x >= y,
        JmpOp.JLT: x < y,
        JmpOp.JLE: x <= y,
        JmpOp.JSET: (x & y) != 0,
        JmpOp.JSGT: sx > sy,
        JmpOp.JSGE: sx >= sy,
        JmpOp.JSLT: sx < sy,
        JmpOp.JSLE: sx <= sy,
    }[op]


# -- running one instruction in the Vm ---------------------------------------------


def lddw(reg: int, value: int) -> list[Insn]:
    value &= M64
    return [Insn(0x18, reg, 0, 0, signed(value, 32)), Insn(0, 0, 0, 0, signed(value >> 32, 32))]


MOV64_R0_R1 = Insn(Class.ALU64 | AluOp.MOV | Source.X, 0, 1)
EXIT = Insn(Class.JMP | JmpOp.EXIT)


def run_op(insn: Insn, a: int, b: int = 0) -> int:
    """r1 = a; r2 = b; insn (on r1 with r2 or imm); return r1."""
    prog = [*lddw(1, a), *lddw(2, b), insn, MOV64_R0_R1, EXIT]
    return Vm(prog, helpers={}).run()


def alu_insn(cls: Class, op: AluOp, src: Source, off: int = 0, imm: int = 0) -> Insn:
    return Insn(cls | op | src, 1, 2 if src is Source.X else 0, off, imm)


def run_jcc(cls: Class, op: JmpOp, src: Source, a: int, b: int, imm: int = 0) -> bool:
    """Whether ``j<op> r1, r2|imm, +1`` is taken (r0 = 1 if so, 0 if not)."""
    jump = Insn(cls | op | src, 1, 2 if src is Source.X else 0, 1, imm)
    mov = Class.ALU64 | AluOp.MOV | Source.K
    prog = [*lddw(1, a), *lddw(2, b), Insn(mov, 0, 0, 0, 1), jump, Insn(mov, 0, 0, 0, 0), EXIT]
    r0 = Vm(prog, helpers={}).run()
    assert r0 in (0, 1)
    return r0 == 1


# -- strategies -------------------------------------------------------------------

_EDGES = [
    0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF,
    0x8000, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, INT32_MIN, 0x8000_0001, M32 - 1, M32, 1 << 32,
    (1 << 32) + 1, 0x7FFF_FFFF_FFFF_FFFF, INT64_MIN, INT64_MIN + 1, M64 - 1, M64,
    0xFFFF_FFFF_0000_0000, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210,
]
U64 = st.one_of(
    st.sampled_from(_EDGES),
    st.integers(0, M64),
    st.integers(0, M32),
    st.integers(-(1 << 31), (1 << 31) - 1).map(lambda v: v & M64),  # sign-extended s32
)
_IMM_EDGES = [0, 1, -1, 2, -2, 7, 31, 32, 33, 63, 64, 65, 0x7FFF_FFFF, -(1 << 31), 0xFF, -128]
IMM = st.one_of(st.sampled_from(_IMM_EDGES), st.integers(-(1 << 31), (1 << 31) - 1))

_BINARY = [
    AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.DIV, AluOp.MOD, AluOp.OR, AluOp.AND, AluOp.XOR,
    AluOp.LSH, AluOp.RSH, AluOp.ARSH, AluOp.MOV,
]
#: (class, op, off): every two-operand ALU variant, K and X (movsx is X only).
ALU_VARIANTS = [
    *((cls, op, 0) for cls in (Class.ALU64, Class.ALU) for op in _BINARY),
    *((cls, op, 1) for cls in (Class.ALU64, Class.ALU) for op in (AluOp.DIV, AluOp.MOD)),
]
MOVSX_VARIANTS = [(Class.ALU64, 8), (Class.ALU64, 16), (Class.ALU64, 32), (Class.ALU, 8),
                  (Class.ALU, 16)]
JCC_OPS = [op for op in JmpOp if op not in (JmpOp.JA, JmpOp.CALL, JmpOp.EXIT, JmpOp.JCOND)]


def _variant_id(v: tuple[Class, AluOp, int]) -> str:
    cls, op, off = v
    name = ("s" if off else "") + op.name.lower()
    return name + ("32" if cls is Class.ALU else "64")


FAST = settings(max_examples=30, deadline=None)


# -- property tests: the Vm agrees with the model ------------------------------------


@pytest.mark.parametrize("variant", ALU_VARIANTS, ids=_variant_id)
@FAST
@given(a=U64, b=U64)
def test_alu_register_source_matches_model(variant: tuple[Class, AluOp, int], a: int,
                                           b: int) -> None:
    cls, op, off = variant
    got = run_op(alu_insn(cls, op, Source.X, off), a, b)
    assert got == model_alu(cls, op, off, a, b)


@pytest.mark.parametrize("variant", ALU_VARIANTS, ids=_variant_id)
@FAST
@given(a=U64, imm=IMM)
def test_alu_immediate_source_matches_model(variant: tuple[Class, AluOp, int], a: int,
                                            imm: int) -> None:
    cls, op, off = variant
    got = run_op(alu_insn(cls, op, Source.K, off, imm), a, 0xDEAD_BEEF)
    assert got == model_alu(cls, op, off, a, operand(cls, Source.K, 0, imm))


@pytest.mark.parametrize(("cls", "width"), MOVSX_VARIANTS,
                         ids=[f"movsx{w}{64 if c is Class.ALU64 else 32}"
                              for c, w in MOVSX_VARIANTS])
@FAST
@given(a=U64, b=U64)
def test_movsx_matches_model(cls: Class, width: int, a: int, b: int) -> None:
    got = run_op(alu_insn(cls, AluOp.MOV, Source.X, width), a, b)
    assert got == model_alu(cls, AluOp.MOV, width, a, b)


@pytest.mark.parametrize("cls", [Class.ALU64, Class.ALU], ids=["neg64", "neg32"])
@FAST
@given(a=U64)
def test_neg_matches_model(cls: Class, a: int) -> None:
    assert run_op(Insn(cls | AluOp.NEG, 1), a) == model_neg(cls, a)


END_VARIANTS = [(cls, src, w) for cls, src in ((Class.ALU, Source.K), (Class.ALU, Source.X),
                                               (Class.ALU64, Source.K)) for w in (16, 32, 64)]


def _end_id(v: tuple[Class, Source, int]) -> str:
    cls, src, w = v
    name = "bswap" if cls is Class.ALU64 else "be" if src is Source.X else "le"
    return f"{name}{w}"


@pytest.mark.parametrize("variant", END_VARIANTS, ids=_end_id)
@FAST
@given(a=U64)
def test_byte_swaps_match_model(variant: tuple[Class, Source, int], a: int) -> None:
    cls, src, width = variant
    got = run_op(Insn(cls | AluOp.END | src, 1, 0, 0, width), a)
    assert got == model_end(cls, src, width, a)


@pytest.mark.parametrize("cls", [Class.JMP, Class.JMP32], ids=["jmp64", "jmp32"])
@pytest.mark.parametrize("op", JCC_OPS, ids=lambda op: op.name.lower())
@settings(max_examples=20, deadline=None)
@given(a=U64, b=U64, imm=IMM)
def test_conditional_jumps_match_model(cls: Class, op: JmpOp, a: int, b: int,
                                       imm: int) -> None:
    assert run_jcc(cls, op, Source.X, a, b) == model_jcc(cls, op, a, b)
    k = imm & M64 if cls is Class.JMP else imm & M32
    assert run_jcc(cls, op, Source.K, a, b, imm) == model_jcc(cls, op, a, k)


@pytest.mark.parametrize("cls", [Class.JMP, Class.JMP32], ids=["jmp64", "jmp32"])
@pytest.mark.parametrize("op", JCC_OPS, ids=lambda op: op.name.lower())
def test_conditional_jumps_on_equal_operands(cls: Class, op: JmpOp) -> None:
    for v in (0, 1, M32, INT32_MIN, INT64_MIN, M64):
        assert run_jcc(cls, op, Source.X, v, v) == model_jcc(cls, op, v, v)


# -- the edge cases, spelled out --------------------------------------------------

A64, A32 = Class.ALU64, Class.ALU
X, K = Source.X, Source.K

#: (id, class, op, source, off, dst, src register value or imm, expected r1)
EDGE_CASES = [
    # division and modulo by zero (verifier rewrite): div -> 0, mod -> dst kept
    ("div64_by_zero_gives_zero", A64, AluOp.DIV, X, 0, 12345, 0, 0),
    ("div32_by_zero_gives_zero", A32, AluOp.DIV, X, 0, M64, 0, 0),
    ("div32_by_reg_with_zero_low_half_gives_zero", A32, AluOp.DIV, X, 0, 7, 1 << 32, 0),
    ("div64_by_zero_imm_gives_zero", A64, AluOp.DIV, K, 0, 99, 0, 0),
    ("div32_by_zero_imm_gives_zero", A32, AluOp.DIV, K, 0, 99, 0, 0),
    ("mod64_by_zero_keeps_dst", A64, AluOp.MOD, X, 0, M64 - 5, 0, M64 - 5),
    ("mod32_by_zero_keeps_low_half_zero_extended", A32, AluOp.MOD, X, 0,
     0x1234_5678_9ABC_DEF0, 0, 0x9ABC_DEF0),
    ("mod64_by_zero_imm_keeps_dst", A64, AluOp.MOD, K, 0, 0xAAAA_BBBB_CCCC_DDDD, 0,
     0xAAAA_BBBB_CCCC_DDDD),
    ("mod32_by_zero_imm_zero_extends", A32, AluOp.MOD, K, 0, 0xFFFF_0000_0000_0009, 0, 9),
    ("sdiv64_by_zero_gives_zero", A64, AluOp.DIV, X, 1, M64, 0, 0),
    ("sdiv32_by_zero_gives_zero", A32, AluOp.DIV, X, 1, M64, 0, 0),
    ("smod64_by_zero_keeps_dst", A64, AluOp.MOD, X, 1, INT64_MIN, 0, INT64_MIN),
    ("smod32_by_zero_keeps_low_half", A32, AluOp.MOD, X, 1, 0xFFFF_FFFF_8000_0000, 0,
     INT32_MIN),
    # INT_MIN / -1 wraps to INT_MIN; INT_MIN % -1 is 0
    ("sdiv64_int_min_by_minus_one_is_int_min", A64, AluOp.DIV, X, 1, INT64_MIN, M64, INT64_MIN),
    ("sdiv64_int_min_by_minus_one_imm_is_int_min", A64, AluOp.DIV, K, 1, INT64_MIN, -1,
     INT64_MIN),
    ("sdiv32_int_min_by_minus_one_is_int_min", A32, AluOp.DIV, X, 1, INT32_MIN, M32, INT32_MIN),
    ("sdiv32_int_min_by_minus_one_imm_is_int_min", A32, AluOp.DIV, K, 1, INT32_MIN, -1,
     INT32_MIN),
    ("smod64_int_min_by_minus_one_is_zero", A64, AluOp.MOD, X, 1, INT64_MIN, M64, 0),
    ("smod32_int_min_by_minus_one_is_zero", A32, AluOp.MOD, X, 1, INT32_MIN, M32, 0),
    ("smod32_int_min_by_minus_one_imm_is_zero", A32, AluOp.MOD, K, 1, INT32_MIN, -1, 0),
    # signed division truncates toward zero; the remainder takes the dividend's sign
    ("sdiv64_truncates_toward_zero", A64, AluOp.DIV, K, 1, (-7) & M64, 2, (-3) & M64),
    ("smod64_has_dividends_sign", A64, AluOp.MOD, K, 1, (-7) & M64, 2, (-1) & M64),
    ("smod64_positive_dividend_negative_divisor", A64, AluOp.MOD, K, 1, 7, -2, 1),
    ("sdiv32_truncates_toward_zero", A32, AluOp.DIV, K, 1, (-7) & M32, 2, (-3) & M32),
    ("smod32_int_min_by_three", A32, AluOp.MOD, K, 1, INT32_MIN, 3, (-2) & M32),
    ("sdiv32_ignores_upper_half", A32, AluOp.DIV, X, 1, 0x7_FFFF_FFF6, 0xF_0000_0002,
     (-5) & M32),
    ("div64_unsigned_of_negative", A64, AluOp.DIV, K, 0, M64, 2, M64 >> 1),
    # unsigned division by a negative immediate: sign-extended (64) or u32 (32)
    ("div64_by_minus_one_imm_divides_by_u64_max", A64, AluOp.DIV, K, 0, M64 - 1, -1, 0),
    ("div32_by_minus_one_imm_divides_by_u32_max", A32, AluOp.DIV, K, 0, M32, -1, 1),
    # 32-bit operations zero-extend into the 64-bit register
    ("add32_zero_extends", A32, AluOp.ADD, K, 0, M64, 1, 0),
    ("sub32_zero_extends", A32, AluOp.SUB, K, 0, 0, 1, M32),
    ("mul32_zero_extends", A32, AluOp.MUL, X, 0, 0xFFFF_FFFF_0001_0000, 0x1_0000, 0),
    ("or32_clears_upper_half", A32, AluOp.OR, K, 0, 0xFFFF_FFFF_0000_0000, 1, 1),
    ("and32_clears_upper_half", A32, AluOp.AND, K, 0, M64, -1, M32),
    ("xor32_clears_upper_half", A32, AluOp.XOR, X, 0, M64, M64, 0),
    ("mov32_reg_clears_upper_half", A32, AluOp.MOV, X, 0, 0, 0x1234_5678_9ABC_DEF0,
     0x9ABC_DEF0),
    ("lsh32_zero_extends", A32, AluOp.LSH, K, 0, 0x8000_0001, 1, 2),
    ("rsh32_ignores_upper_half", A32, AluOp.RSH, K, 0, 0xFFFF_FFFF_0000_0000, 4, 0),
    ("arsh32_sign_bit_is_bit_31", A32, AluOp.ARSH, K, 0, 0x8000_0000, 4, 0xF800_0000),
    ("arsh32_ignores_bit_63", A32, AluOp.ARSH, K, 0, 0x8000_0000_4000_0000, 4, 0x0400_0000),
    # negative immediates: sign-extended for 64-bit ops, not for 32-bit ones
    ("mov64_minus_one_imm_sign_extends", A64, AluOp.MOV, K, 0, 0, -1, M64),
    ("mov32_minus_one_imm_does_not", A32, AluOp.MOV, K, 0, 0, -1, M32),
    ("add64_minus_one_imm_sign_extends", A64, AluOp.ADD, K, 0, 0, -1, M64),
    ("add32_minus_one_imm_does_not", A32, AluOp.ADD, K, 0, 0, -1, M32),
    ("and64_negative_imm_keeps_upper_half", A64, AluOp.AND, K, 0, M64, -2, M64 - 1),
    ("xor64_int_min_imm_sign_extends", A64, AluOp.XOR, K, 0, 0, -(1 << 31),
     0xFFFF_FFFF_8000_0000),
    ("mov64_int32_min_imm", A64, AluOp.MOV, K, 0, 0, -(1 << 31), 0xFFFF_FFFF_8000_0000),
    ("mov32_int32_min_imm", A32, AluOp.MOV, K, 0, 0, -(1 << 31), INT32_MIN),
    # shift counts are masked to the operand width (register source, and the
    # interpreter masks an immediate too; the verifier rejects such constants)
    ("lsh64_by_64_is_by_0", A64, AluOp.LSH, X, 0, 3, 64, 3),
    ("lsh64_by_65_is_by_1", A64, AluOp.LSH, X, 0, 3, 65, 6),
    ("rsh64_by_minus_one_is_by_63", A64, AluOp.RSH, X, 0, M64, M64, 1),
    ("arsh64_by_127_is_by_63", A64, AluOp.ARSH, X, 0, INT64_MIN, 127, M64),
    ("lsh32_by_32_is_by_0", A32, AluOp.LSH, X, 0, 3, 32, 3),
    ("rsh32_by_33_is_by_1", A32, AluOp.RSH, X, 0, 0xF0, 33, 0x78),
    ("arsh32_by_63_is_by_31", A32, AluOp.ARSH, X, 0, 0x8000_0000, 63, M32),
    ("lsh32_count_uses_low_bits_of_reg", A32, AluOp.LSH, X, 0, 1, 0x1_0000_0004, 0x10),
    ("lsh64_imm_64_is_by_0", A64, AluOp.LSH, K, 0, 5, 64, 5),
    ("rsh64_imm_minus_one_is_by_63", A64, AluOp.RSH, K, 0, M64, -1, 1),
    ("lsh32_imm_32_is_by_0", A32, AluOp.LSH, K, 0, 5, 32, 5),
    ("arsh32_imm_minus_one_is_by_31", A32, AluOp.ARSH, K, 0, 0x8000_0000, -1, M32),
    ("lsh64_drops_bits_past_63", A64, AluOp.LSH, K, 0, M64, 63, INT64_MIN),
    ("arsh64_sign_extends", A64, AluOp.ARSH, K, 0, INT64_MIN, 63, M64),
    ("rsh64_does_not_sign_extend", A64, AluOp.RSH, K, 0, INT64_MIN, 63, 1),
    # multiplication wraps
    ("mul64_wraps", A64, AluOp.MUL, X, 0, 1 << 63, 2, 0),
    ("mul64_by_minus_one_imm_negates", A64, AluOp.MUL, K, 0, 5, -1, (-5) & M64),
    ("mul32_by_minus_one_imm", A32, AluOp.MUL, K, 0, 5, -1, (-5) & M32),
    # movsx
    ("movsx8_64_sign_extends", A64, AluOp.MOV, X, 8, 0, 0x80, 0xFFFF_FFFF_FFFF_FF80),
    ("movsx16_64_sign_extends", A64, AluOp.MOV, X, 16, 0, 0x1_8000, 0xFFFF_FFFF_FFFF_8000),
    ("movsx32_64_sign_extends", A64, AluOp.MOV, X, 32, 0, 0x1_8000_0000,
     0xFFFF_FFFF_8000_0000),
    ("movsx8_64_positive", A64, AluOp.MOV, X, 8, M64, 0x17F, 0x7F),
    ("movsx8_32_zero_extends_after_sign_extending", A32, AluOp.MOV, X, 8, 0, 0xFF, M32),
    ("movsx16_32_zero_extends_after_sign_extending", A32, AluOp.MOV, X, 16, 0, 0x8000,
     0xFFFF_8000),
]


@pytest.mark.parametrize(("cls", "op", "src", "off", "dst", "b", "expected"),
                         [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES])
def test_alu_edge_case(cls: Class, op: AluOp, src: Source, off: int, dst: int, b: int,
                       expected: int) -> None:
    if src is Source.X:
        insn, breg = alu_insn(cls, op, X, off), b
    else:
        insn, breg = alu_insn(cls, op, K, off, b), 0
    assert run_op(insn, dst, breg) == expected
    # ... and the model says the same, so the properties above test what these pin.
    assert model_alu(cls, op, off, dst, operand(cls, src, breg, b)) == expected


#: (id, insn, dst, expected)
UNARY_EDGES = [
    ("neg64_of_int_min_is_int_min", Insn(A64 | AluOp.NEG, 1), INT64_MIN, INT64_MIN),
    ("neg64_of_one", Insn(A64 | AluOp.NEG, 1), 1, M64),
    ("neg32_zero_extends", Insn(A32 | AluOp.NEG, 1), 1, M32),
    ("neg32_ignores_upper_half", Insn(A32 | AluOp.NEG, 1), 0xFFFF_FFFF_0000_0000, 0),
    ("le16_truncates", Insn(A32 | AluOp.END | K, 1, 0, 0, 16), 0x1122_3344_5566_7788, 0x7788),
    ("le32_truncates", Insn(A32 | AluOp.END | K, 1, 0, 0, 32), 0x1122_3344_5566_7788,
     0x5566_7788),
    ("le64_is_identity", Insn(A32 | AluOp.END | K, 1, 0, 0, 64), 0x1122_3344_5566_7788,
     0x1122_3344_5566_7788),
    ("be16_swaps_and_zero_extends", Insn(A32 | AluOp.END | X, 1, 0, 0, 16),
     0x1122_3344_5566_7788, 0x8877),
    ("be32_swaps_and_zero_extends", Insn(A32 | AluOp.END | X, 1, 0, 0, 32),
     0x1122_3344_5566_7788, 0x8877_6655),
    ("be64_swaps", Insn(A32 | AluOp.END | X, 1, 0, 0, 64), 0x1122_3344_5566_7788,
     0x8877_6655_4433_2211),
    ("bswap16", Insn(A64 | AluOp.END | K, 1, 0, 0, 16), 0x1122_3344_5566_7788, 0x8877),
    ("bswap32", Insn(A64 | AluOp.END | K, 1, 0, 0, 32), 0x1122_3344_5566_7788, 0x8877_6655),
    ("bswap64", Insn(A64 | AluOp.END | K, 1, 0, 0, 64), 0x1122_3344_5566_7788,
     0x8877_6655_4433_2211),
]


@pytest.mark.parametrize(("insn", "dst", "expected"), [c[1:] for c in UNARY_EDGES],
                         ids=[c[0] for c in UNARY_EDGES])
def test_unary_edge_case(insn: Insn, dst: int, expected: int) -> None:
    assert run_op(insn, dst) == expected


J64, J32 = Class.JMP, Class.JMP32

#: (id, class, op, source, a, b or imm, taken)
JCC_EDGES = [
    ("jeq64_minus_one_imm_sign_extends", J64, JmpOp.JEQ, K, M64, -1, True),
    ("jeq64_minus_one_imm_is_not_u32_max", J64, JmpOp.JEQ, K, M32, -1, False),
    ("jeq32_minus_one_imm_is_u32_max", J32, JmpOp.JEQ, K, M32, -1, True),
    ("jeq32_ignores_upper_half", J32, JmpOp.JEQ, X, 0xAAAA_0000_0005, 0xBBBB_0000_0005, True),
    ("jgt64_unsigned_minus_one_is_largest", J64, JmpOp.JGT, K, M64 - 1, -1, False),
    ("jgt64_unsigned_of_negative_reg", J64, JmpOp.JGT, X, M64, 1, True),
    ("jsgt64_signed_of_negative_reg", J64, JmpOp.JSGT, X, M64, 1, False),
    ("jsgt32_sign_is_bit_31", J32, JmpOp.JSGT, X, 0x8000_0000, 1, False),
    ("jsgt64_bit_31_is_not_the_sign", J64, JmpOp.JSGT, X, 0x8000_0000, 1, True),
    ("jslt64_int_min_imm", J64, JmpOp.JSLT, K, INT64_MIN, -(1 << 31), True),
    ("jslt32_int_min_imm", J32, JmpOp.JSLT, K, INT32_MIN, -(1 << 31), False),
    ("jsle32_int_min_imm", J32, JmpOp.JSLE, K, INT32_MIN, -(1 << 31), True),
    ("jge64_equal", J64, JmpOp.JGE, X, 7, 7, True),
    ("jlt32_upper_half_ignored", J32, JmpOp.JLT, X, 0xFFFF_0000_0001, 2, True),
    ("jset64_upper_bits", J64, JmpOp.JSET, X, 1 << 40, 1 << 40, True),
    ("jset32_upper_bits_ignored", J32, JmpOp.JSET, X, 1 << 40, 1 << 40, False),
    ("jset64_negative_imm_tests_upper_bits", J64, JmpOp.JSET, K, 1 << 63, -(1 << 31), True),
    ("jne32_equal_low_halves", J32, JmpOp.JNE, X, 0x1_0000_0000, 0, False),
]


@pytest.mark.parametrize(("cls", "op", "src", "a", "b", "taken"), [c[1:] for c in JCC_EDGES],
                         ids=[c[0] for c in JCC_EDGES])
def test_jump_edge_case(cls: Class, op: JmpOp, src: Source, a: int, b: int,
                        taken: bool) -> None:
    if src is Source.X:
        assert run_jcc(cls, op, X, a, b) is taken
        assert model_jcc(cls, op, a, b) is taken
    else:
        assert run_jcc(cls, op, K, a, 0, b) is taken
        k = b & (M64 if cls is Class.JMP else M32)
        assert model_jcc(cls, op, a, k) is taken


# -- engine/alu.py, the reference functions, against the same model -----------------


@settings(max_examples=300, deadline=None)
@given(v=st.one_of(U64, st.integers(-(1 << 70), 1 << 70)),
       bits=st.sampled_from([8, 16, 32, 64]))
def test_alu_sext_matches_model(v: int, bits: int) -> None:
    assert alu.sext(v, bits) == signed(v, bits)
    assert alu.s64(v) == signed(v, 64)
    assert alu.s32(v) == signed(v, 32)


@settings(max_examples=300, deadline=None)
@given(a=U64, b=U64, bits=st.sampled_from([32, 64]))
def test_alu_sdiv_smod_match_model(a: int, b: int, bits: int) -> None:
    cls = Class.ALU64 if bits == 64 else Class.ALU
    assert alu.sdiv(a, b, bits) == model_alu(cls, AluOp.DIV, 1, a, b)
    assert alu.smod(a, b, bits) == model_alu(cls, AluOp.MOD, 1, a, b)


@settings(max_examples=200, deadline=None)
@given(v=U64, bits=st.sampled_from([16, 32, 64]))
def test_alu_bswap_matches_model(v: int, bits: int) -> None:
    assert alu.bswap(v, bits) == model_end(Class.ALU64, Source.K, bits, v)


@pytest.mark.parametrize(("bits", "a", "b", "q", "r"), [
    (64, INT64_MIN, M64, INT64_MIN, 0),
    (32, INT32_MIN, M32, INT32_MIN, 0),
    (64, 5, 0, 0, 5),
    (32, 0x1_0000_0005, 0, 0, 5),
    (64, (-7) & M64, 2, (-3) & M64, (-1) & M64),
    (32, (-7) & M32, (-2) & M32, 3, (-1) & M32),
])
def test_alu_sdiv_smod_edges(bits: int, a: int, b: int, q: int, r: int) -> None:
    assert alu.sdiv(a, b, bits) == q
    assert alu.smod(a, b, bits) == r
