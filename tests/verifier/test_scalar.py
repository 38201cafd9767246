"""Scalar bounds: soundness, pinned kernel results, and the real kernel's logs.

Three kinds of test:
- hypothesis soundness: for a concrete value inside an abstract one, the
  concrete result of every operation is inside the abstract result;
- unit tests pinning what Linux 6.18 computes and prints for known cases;
- data-driven tests over the shared corpus of kernel verifier logs: every
  scalar state the kernel printed must parse and re-format byte for byte, and
  where a log shows an ALU op or a conditional jump together with its operands'
  states, our transfer functions must reach the state the kernel printed.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyebpf.verifier._ints import (
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    U32_MAX,
    U64_MAX,
    s8,
    s16,
    s32,
    s64,
)
from pyebpf.verifier.scalar import (
    BPF_ADD_CONST,
    JSET_REV,
    SCALAR_UNKNOWN,
    ParsedScalar,
    Scalar,
    adjust_scalar_min_max_vals,
    coerce_reg_to_size,
    coerce_reg_to_size_sx,
    coerce_subreg_to_size_sx,
    flip_opcode,
    format_scalar,
    format_scalar_ranges,
    is_safe_to_compute_dst_reg_range,
    is_scalar_branch_taken,
    linked_reg_add,
    mark_reg_known,
    mark_reg_s32_range,
    parse_scalar,
    reg_bounds_sanity_check,
    reg_bounds_sync,
    reg_set_min_max,
    regs_refine_cond_op,
    rev_opcode,
    scalar32_min_max_add,
    scalar_min_max_add,
    scalar_min_max_sub,
    scalar_mov,
    update_reg_bounds,
    zext_32_to_64,
)
from pyebpf.verifier.tnum import Tnum, tnum_const

from .kernel_logs import DEV_CASES, decode_insns, iter_log, load_cases, log_tails

ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0,
)  # fmt: skip
JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE = (
    0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0,
)  # fmt: skip
COND_OPS = [JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE]
ALU_OPS = [ADD, SUB, MUL, OR, AND, LSH, RSH, NEG, XOR, ARSH]


# ---------------------------------------------------------------------------
# Strategies

_edges = [0, 1, 2, 7, 8, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000,
          U32_MAX, 0x1_0000_0000, S64_MAX, 1 << 63, U64_MAX, U64_MAX - 1]  # fmt: skip
concrete = st.one_of(
    st.integers(0, U64_MAX),
    st.integers(0, 0x1FF),
    st.integers(0, U32_MAX),
    st.sampled_from(_edges),
    st.integers(-0x200, -1).map(lambda v: v & U64_MAX),
)


def _bound_below(draw: st.DrawFn, x: int, lo: int) -> int:
    near = st.integers(max(lo, x - 300), x)
    return draw(st.one_of(st.just(lo), st.just(x), st.integers(lo, x), near))


def _bound_above(draw: st.DrawFn, x: int, hi: int) -> int:
    near = st.integers(x, min(hi, x + 300))
    return draw(st.one_of(st.just(hi), st.just(x), st.integers(x, hi), near))


@st.composite
def scalar_and_member(draw: st.DrawFn) -> tuple[Scalar, int]:
    """An abstract scalar as the kernel would hold it, and one of its members."""
    x = draw(concrete)
    if draw(st.integers(0, 9)) == 0:
        return mark_reg_known(x), x
    mask = draw(st.one_of(st.integers(0, U64_MAX), st.integers(0, 0xFFF), st.just(U64_MAX),
                          st.just(U32_MAX), st.just(0)))  # fmt: skip
    var_off = Tnum(x & ~mask & U64_MAX, mask)
    sx, lo = s64(x), x & U32_MAX
    raw = Scalar(
        var_off,
        _bound_below(draw, sx, S64_MIN),
        _bound_above(draw, sx, S64_MAX),
        _bound_below(draw, x, 0),
        _bound_above(draw, x, U64_MAX),
        _bound_below(draw, s32(lo), S32_MIN),
        _bound_above(draw, s32(lo), S32_MAX),
        _bound_below(draw, lo, 0),
        _bound_above(draw, lo, U32_MAX),
    )
    assert raw.contains(x)
    return reg_bounds_sync(raw), x


def wellformed(s: Scalar) -> bool:
    return (
        S64_MIN <= s.smin <= S64_MAX
        and S64_MIN <= s.smax <= S64_MAX
        and 0 <= s.umin <= U64_MAX
        and 0 <= s.umax <= U64_MAX
        and S32_MIN <= s.s32_min <= S32_MAX
        and S32_MIN <= s.s32_max <= S32_MAX
        and 0 <= s.u32_min <= U32_MAX
        and 0 <= s.u32_max <= U32_MAX
        and 0 <= s.var_off.value <= U64_MAX
        and 0 <= s.var_off.mask <= U64_MAX
        and not (s.var_off.value & s.var_off.mask)
    )


def consistent(s: Scalar) -> bool:
    return wellformed(s) and reg_bounds_sanity_check(s, "test")[1] is None


# ---------------------------------------------------------------------------
# Concrete semantics (what the interpreter computes)


def alu_concrete(op: int, alu32: bool, x: int, y: int) -> int:
    if alu32:
        a, b, m, sa = x & U32_MAX, y & U32_MAX, U32_MAX, s32(x)
        width = 32
    else:
        a, b, m, sa = x, y, U64_MAX, s64(x)
        width = 64
    k = b % width
    return {
        ADD: lambda: a + b,
        SUB: lambda: a - b,
        MUL: lambda: a * b,
        OR: lambda: a | b,
        AND: lambda: a & b,
        XOR: lambda: a ^ b,
        LSH: lambda: a << k,
        RSH: lambda: a >> k,
        ARSH: lambda: sa >> k,
        NEG: lambda: -a,
    }[op]() & m


def cond_concrete(op: int, jmp32: bool, x: int, y: int) -> bool:
    if jmp32:
        a, b, sa, sb = x & U32_MAX, y & U32_MAX, s32(x), s32(y)
    else:
        a, b, sa, sb = x, y, s64(x), s64(y)
    return {
        JEQ: a == b, JNE: a != b, JSET: bool(a & b), JSET_REV: not (a & b),
        JGT: a > b, JGE: a >= b, JLT: a < b, JLE: a <= b,
        JSGT: sa > sb, JSGE: sa >= sb, JSLT: sa < sb, JSLE: sa <= sb,
    }[op]  # fmt: skip


# ---------------------------------------------------------------------------
# Soundness


@given(a=scalar_and_member())
def test_bounds_sync_sound(a) -> None:  # type: ignore[no-untyped-def]
    s, x = a
    assert wellformed(s) and s.contains(x)
    assert consistent(s)
    again = reg_bounds_sync(s)
    assert again.contains(x)
    assert update_reg_bounds(s).contains(x)


@pytest.mark.parametrize("alu32", [False, True], ids=["alu64", "alu32"])
@pytest.mark.parametrize("op", ALU_OPS, ids=lambda o: f"op{o:#x}")
@given(a=scalar_and_member(), b=scalar_and_member(), shift=st.integers(0, 63))
def test_alu_sound(op, alu32, a, b, shift) -> None:  # type: ignore[no-untyped-def]
    (d, x), (s, y) = a, b
    if op in (LSH, RSH, ARSH) and shift % 2:
        # the verifier tracks shifts by a known amount below the width
        y = shift % (32 if alu32 else 64)
        s = mark_reg_known(y)
    if op == NEG:
        s, y = d, x
    r = adjust_scalar_min_max_vals(d, s, op, alu32)
    expected = alu_concrete(op, alu32, x, y)
    assert wellformed(r)
    assert r.contains(expected), (format_scalar(d), format_scalar(s), format_scalar(r), expected)
    assert consistent(r)
    if alu32 and is_safe_to_compute_dst_reg_range(op, False, s):
        assert r.umax <= U32_MAX  # zero-extended (an untracked op gives unknown 64 bits)


@given(a=scalar_and_member(), b=scalar_and_member())
def test_unsafe_ops_give_unknown(a, b) -> None:  # type: ignore[no-untyped-def]
    (d, _), (s, _) = a, b
    for op in (DIV, MOD, MOV, 0xD0):
        assert not is_safe_to_compute_dst_reg_range(op, True, s)
        assert adjust_scalar_min_max_vals(d, s, op, False) == SCALAR_UNKNOWN
    if not s.is_const:
        assert adjust_scalar_min_max_vals(d, s, LSH, False) == SCALAR_UNKNOWN


@pytest.mark.parametrize("jmp32", [False, True], ids=["jmp64", "jmp32"])
@pytest.mark.parametrize("op", COND_OPS, ids=lambda o: f"op{o:#x}")
@given(a=scalar_and_member(), b=scalar_and_member(), same=st.booleans())
def test_branch_sound(op, jmp32, a, b, same) -> None:  # type: ignore[no-untyped-def]
    (d, x), (s, y) = a, b
    if same:
        s, y = d, x
    taken = cond_concrete(op, jmp32, x, y)
    pred = is_scalar_branch_taken(d, s, op, jmp32)
    assert pred in (-1, 0, 1)
    if pred != -1:
        assert pred == int(taken)
        return  # the kernel only refines undecided branches
    (td, ts), (fd, fs) = reg_set_min_max(d, s, op, jmp32, same_reg=same)
    if same:
        assert td == ts and fd == fs
    rd, rs = (td, ts) if taken else (fd, fs)
    assert rd.contains(x) and rs.contains(y)
    assert consistent(rd) and consistent(rs)


@given(a=scalar_and_member(), b=scalar_and_member(), op=st.sampled_from([*COND_OPS, JSET_REV]))
def test_refine_sound_and_rev(a, b, op) -> None:  # type: ignore[no-untyped-def]
    (d, x), (s, y) = a, b
    for jmp32 in (False, True):
        holds = cond_concrete(op, jmp32, x, y)
        r1, r2 = regs_refine_cond_op(d, s, op if holds else rev_opcode(op), jmp32)
        assert reg_bounds_sync(r1).contains(x) and reg_bounds_sync(r2).contains(y)


@given(a=scalar_and_member(), size=st.sampled_from([1, 2, 4]))
def test_extensions_sound(a, size) -> None:  # type: ignore[no-untyped-def]
    s, x = a
    bits = size * 8
    sext = {1: s8, 2: s16, 4: s32}[size]
    assert coerce_reg_to_size(s, size).contains(x & ((1 << bits) - 1))
    assert coerce_reg_to_size_sx(s, size).contains(sext(x) & U64_MAX)
    assert scalar_mov(s, alu64=True, off=bits).contains(sext(x) & U64_MAX)
    assert scalar_mov(s, alu64=True).contains(x)
    assert scalar_mov(s, alu64=False).contains(x & U32_MAX)
    assert reg_bounds_sync(zext_32_to_64(s)).contains(x & U32_MAX)
    if size < 4:
        assert scalar_mov(s, alu64=False, off=bits).contains(sext(x) & U32_MAX)
        sub = coerce_subreg_to_size_sx(s, size)
        assert s32(sext(x)) in range(sub.s32_min, sub.s32_max + 1)


# ---------------------------------------------------------------------------
# Pinned kernel results


def sc(text: str) -> Scalar:
    return parse_scalar(text).scalar


def test_kernel_example_sub_then_mul() -> None:
    # and/invalid range check, Linux 6.18 log: "14: w3 = 1; 15: w3 -= w9; 16: w3 *= 268435456"
    r9 = sc("scalar(smin=smin32=0,smax=umax=smax32=umax32=1,var_off=(0x0; 0x1))")
    r3 = adjust_scalar_min_max_vals(mark_reg_known(1), r9, SUB, True)
    assert format_scalar(r3) == "scalar(smin=smin32=0,smax=umax=smax32=umax32=1,var_off=(0x0; 0x1))"
    r3 = adjust_scalar_min_max_vals(r3, mark_reg_known(268435456), MUL, True)
    assert format_scalar(r3) == (
        "scalar(smin=smin32=0,smax=umax=smax32=umax32=0x10000000,var_off=(0x0; 0x10000000))"
    )


def test_negative_range_format() -> None:
    # r &= 8; r -= 16 -> the kernel prints negatives in decimal, u64/u32 in hex
    r = adjust_scalar_min_max_vals(SCALAR_UNKNOWN, mark_reg_known(8), AND, False)
    assert format_scalar(r) == "scalar(smin=smin32=0,smax=umax=smax32=umax32=8,var_off=(0x0; 0x8))"
    r = adjust_scalar_min_max_vals(r, mark_reg_known(-16), ADD, False)
    assert format_scalar(r) == (
        "scalar(smin=smin32=-16,smax=smax32=-8,umin=0xfffffffffffffff0,umax=0xfffffffffffffff8,"
        "umin32=0xfffffff0,umax32=0xfffffff8,var_off=(0xfffffffffffffff0; 0x8))"
    )


def test_format_constants_and_flags() -> None:
    assert format_scalar(SCALAR_UNKNOWN) == "scalar()"
    assert format_scalar(mark_reg_known(1)) == "1"
    assert format_scalar(mark_reg_known(-5)) == "-5"
    assert format_scalar(mark_reg_known(32767)) == "32767"
    assert format_scalar(mark_reg_known(32768)) == "0x8000"
    assert format_scalar(mark_reg_known(0xFFFF_FFFF_CAFE_4A11)) == "0xffffffffcafe4a11"
    assert format_scalar(mark_reg_known(0), precise=True) == "P0"
    assert format_scalar(SCALAR_UNKNOWN, id=2) == "scalar(id=2)"
    assert format_scalar(SCALAR_UNKNOWN, id=3 | BPF_ADD_CONST, off=4) == "scalar(id=3+4)"
    assert format_scalar(SCALAR_UNKNOWN, id=3 | BPF_ADD_CONST, off=-2) == "scalar(id=3-2)"
    p = parse_scalar("Pscalar(id=3-2,umax=0xfffffffe00000001)")
    assert p == ParsedScalar(p.scalar, 3 | BPF_ADD_CONST, -2, True)
    assert p.scalar.umax == 0xFFFF_FFFE_0000_0001
    # unsigned decimal up to 65535, signed within s16
    s = Scalar(Tnum(0, U64_MAX), -32768, 32767, 0, 65535, S32_MIN, S32_MAX, 0, 65536)
    assert format_scalar_ranges(s) == ["smin=-32768", "smax=32767", "umax=65535", "umax32=0x10000"]
    # a hex smin32 prints as u32 and merges with an equal umin32
    s = Scalar(Tnum(0, U64_MAX), S64_MIN, S64_MAX, 0, U64_MAX, s32(0x8000_0001), S32_MAX,
               0x8000_0001, U32_MAX)  # fmt: skip
    assert format_scalar_ranges(s) == ["smin32=umin32=0x80000001"]
    # equal values of different sign don't merge; -1 as s64 vs umax
    s = Scalar(Tnum(0, U64_MAX), -1, S64_MAX, 0, U64_MAX, S32_MIN, -1, 0, U32_MAX)
    assert format_scalar_ranges(s) == ["smin=-1", "smax32=-1"]
    bads = ("scalar(smin=)", "scalar(foo=1)", "map_value(ks=8)", "fp-8", "scalar(smin=1,smin=2)")
    for bad in bads:
        with pytest.raises(ValueError):
            parse_scalar(bad)


def test_neg_tracks_range() -> None:
    # 6.17+: BPF_NEG keeps bounds (w0 in [0, 255] -> [-255, 0] in 32 bits)
    r0 = reg_bounds_sync(Scalar(Tnum(0, 0xFF), 0, 255, 0, 255, 0, 255, 0, 255))
    r = adjust_scalar_min_max_vals(r0, r0, NEG, True)
    assert (r.s32_min, r.s32_max) == (-255, 0)
    assert r.umax == U32_MAX and r.umin == 0
    r = adjust_scalar_min_max_vals(r0, r0, NEG, False)
    assert (r.smin, r.smax) == (-255, 0)


def test_tnum_overlap_decides_jne() -> None:
    # Linux 6.18 ("Use tnums for JEQ/JNE is_branch_taken logic"): ranges overlap
    # but the known bits differ, so r1 != r0 is always true
    r0 = reg_bounds_sync(Scalar(Tnum(0, 0xC000_0000), S64_MIN, S64_MAX, 0, U64_MAX,
                                S32_MIN, S32_MAX, 0, U32_MAX))  # fmt: skip
    r1 = adjust_scalar_min_max_vals(r0, mark_reg_known(1024), ADD, False)
    assert r1.var_off == Tnum(0x400, 0xC000_0000)
    assert r0.umax >= r1.umin
    assert is_scalar_branch_taken(r1, r0, JNE, False) == 1
    assert is_scalar_branch_taken(r1, r0, JEQ, False) == 0
    assert is_scalar_branch_taken(r1, r0, JGT, False) == -1


def test_refine_examples() -> None:
    r = sc("scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))")
    (t, _), (f, _) = reg_set_min_max(r, mark_reg_known(10), JGE, False)
    assert format_scalar(t) == (
        "scalar(smin=umin=umin32=10,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))"
    )
    assert format_scalar(f) == "scalar(smin=smin32=0,smax=umax=smax32=umax32=9,var_off=(0x0; 0xf))"
    # JNE against a range edge moves the edge
    (t, _), (f, _) = reg_set_min_max(f, mark_reg_known(0), JNE, False)
    assert (t.umin, t.umax) == (1, 9) and f == mark_reg_known(0)
    # if r1 < r1 refines the one register through both roles (kernel aliasing)
    r = reg_bounds_sync(Scalar(Tnum(0, 0xF), 0, 10, 0, 10, 0, 10, 0, 10))
    (t, t2), _ = reg_set_min_max(r, r, JLT, False, same_reg=True)
    assert t is t2 and (t.umin, t.umax) == (1, 9)
    a, b = regs_refine_cond_op(r, r, JLT, False)
    assert (a.umin, a.umax, b.umin, b.umax) == (0, 9, 1, 10)
    # JSET with a single bit learns it; !JSET clears the tested bits
    (t, _), (f, _) = reg_set_min_max(SCALAR_UNKNOWN, mark_reg_known(4), JSET, False)
    assert t.var_off == Tnum(4, U64_MAX & ~4)
    assert f.var_off == Tnum(0, U64_MAX & ~4)
    assert flip_opcode(JGT) == JLT and flip_opcode(JSET_REV) == JSET
    assert rev_opcode(JSET) == JSET_REV and rev_opcode(JSLE) == JSGT


def test_partial_kernel_functions() -> None:
    a = sc("scalar(smin=smin32=0,smax=umax=smax32=umax32=9,var_off=(0x0; 0xf))")
    b = mark_reg_known(S64_MAX)
    r = scalar_min_max_add(a, b)
    assert (r.smin, r.smax) == (S64_MIN, S64_MAX)  # signed overflow possible
    assert (r.umin, r.umax) == (S64_MAX, S64_MAX + 9)
    assert r.var_off == a.var_off and r.s32_min == 0  # 64-bit part only
    r = scalar32_min_max_add(a, mark_reg_known(U32_MAX))
    assert (r.u32_min, r.u32_max) == (0, U32_MAX)  # some but not all wrap
    r = scalar_min_max_sub(mark_reg_known(5), a)
    assert (r.smin, r.smax, r.umin, r.umax) == (-4, 5, 0, U64_MAX)


@given(a=scalar_and_member(), delta=st.integers(-(2**31), 2**31 - 1))
def test_linked_reg_add_sound(a, delta) -> None:  # type: ignore[no-untyped-def]
    s, x = a
    r = linked_reg_add(s, delta)
    assert r.contains((x + delta) & U64_MAX)
    # an ALU64 add of a constant is the same steps followed by reg_bounds_sync
    assert reg_bounds_sync(r) == adjust_scalar_min_max_vals(s, mark_reg_known(delta), ADD, False)


def test_coerce_examples() -> None:
    assert coerce_reg_to_size_sx(mark_reg_known(0x80), 1) == mark_reg_known(-128)
    assert coerce_reg_to_size_sx(mark_reg_known(0x1_7FFF), 2) == mark_reg_known(0x7FFF)
    r = sc("scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))")
    sx = coerce_reg_to_size_sx(r, 1)  # crosses the sign: the s8 defaults
    assert (sx.smin, sx.smax, sx.umin, sx.umax) == (-128, 127, 0, U64_MAX)
    assert (sx.u32_min, sx.u32_max) == (0, U32_MAX)
    r = sc("scalar(smin=umin=smin32=umin32=0x80,smax=umax=smax32=umax32=0xff,var_off=(0x80; 0x7f))")
    sx = coerce_reg_to_size_sx(r, 1)
    assert (sx.smin, sx.smax, sx.umin, sx.umax) == (-128, -1, U64_MAX - 127, U64_MAX)
    assert coerce_reg_to_size(mark_reg_known(0x1234_5678), 1) == mark_reg_known(0x78)
    w = scalar_mov(mark_reg_known(0xFF), alu64=False, off=8)
    assert w == mark_reg_known(U32_MAX)
    # const subreg sign extension sets the upper half until zext clears it
    assert coerce_subreg_to_size_sx(mark_reg_known(0xFF), 1).var_off == tnum_const(U64_MAX)


def test_sanity_check_and_s32_range() -> None:
    bad = Scalar(tnum_const(5), 5, 5, 6, 6, 5, 5, 5, 5)
    fixed, msg = reg_bounds_sanity_check(bad, "alu")
    assert msg is not None and msg.startswith(
        "REG INVARIANTS VIOLATION (alu): const tnum out of sync with range bounds u64=[0x6, 0x6]"
    )
    assert fixed.umax == U64_MAX and fixed.var_off == bad.var_off
    assert reg_bounds_sanity_check(mark_reg_known(5), "x") == (mark_reg_known(5), None)
    r = mark_reg_s32_range(SCALAR_UNKNOWN, -4095, 0)
    assert (r.smin, r.smax, r.s32_min, r.s32_max) == (-4095, 0, -4095, 0)


# ---------------------------------------------------------------------------
# The real kernel's logs

needs_cases = pytest.mark.skipif(not DEV_CASES.exists(), reason=f"{DEV_CASES} not present")
_SCALAR_TEXT = re.compile(r"^P?(?:scalar\(.*\)|-?\d+|0x[0-9a-f]+)$")
_SPILLED_SCALAR = re.compile(r"^[?mr0id]*?(P?scalar\(.*\))$")


def _scalar_state(text: str | None) -> ParsedScalar | None:
    if text is None or not _SCALAR_TEXT.match(text):
        return None
    return parse_scalar(text)


@needs_cases
def test_kernel_log_states_round_trip() -> None:
    """Every scalar state in the kernel's log tails re-formats byte for byte."""
    seen = Counter[str]()
    failures = []
    for case in load_cases():
        for tail in log_tails(case):
            for line in iter_log(tail):
                for slot, text in line.states.items():
                    if slot.startswith("fp"):
                        m = _SPILLED_SCALAR.match(text)
                        if not m:
                            continue
                        text = m.group(1)
                    elif not _SCALAR_TEXT.match(text):
                        continue
                    seen["scalar(" if "scalar(" in text else "const"] += 1
                    p = parse_scalar(text)
                    out = format_scalar(p.scalar, id=p.id, off=p.off, precise=p.precise)
                    if out != text:
                        failures.append((case["id"], text, out))
                    assert wellformed(p.scalar)
    assert not failures, failures[:10]
    # (766 on the dev corpus: 303 scalar(...), 463 constants)
    assert seen["scalar("] >= 300 and seen["const"] >= 300, seen


_COND_JUMPS = {JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE}


def _replay_case(case: dict, stats: Counter[str], failures: list) -> None:  # type: ignore[type-arg]
    """Re-run the ALU ops and jumps of a log tail whose operand states are known.

    ``known`` holds the latest printed state of each register on the current
    straight-line stretch; it is trusted only while the instruction indices
    follow one another. A register linked to others by an id may be changed by
    a jump without being printed, so such states are dropped at jumps.
    """
    insns = decode_insns(case)
    for tail in log_tails(case):
        known: dict[str, str] = {}
        expect: int | None = None
        jump = None  # (index, insn, operand states) of an undecided jump just seen
        for line in iter_log(tail):
            if line.kind in ("from", "state"):
                if jump is not None:
                    _replay_taken(case["id"], line, *jump, stats, failures)
                jump = None
                known, expect = dict(line.states), line.idx
                continue
            jump = None
            if line.kind != "insn" or line.idx is None or line.idx >= len(insns):
                known, expect = {}, None
                continue
            idx, ins = line.idx, insns[line.idx]
            if idx != expect:
                known = {}
            else:
                _replay_insn(case["id"], line, ins, known, stats, failures)
            cls, op = ins.code & 0x07, ins.code & 0xF0
            if idx == expect and cls in (0x05, 0x06) and op in _COND_JUMPS and not line.states:
                # the log was rewound to this jump: its taken branch may follow
                jump = (idx, ins, dict(known))
            if cls in (0x05, 0x06):
                if op == 0x80:  # call: r0-r5 clobbered
                    for r in range(6):
                        known.pop(f"R{r}", None)
                elif op in _COND_JUMPS:
                    known = {k: v for k, v in known.items() if "id=" not in v}
            known.update(line.states)
            expect = idx + (2 if ins.code == 0x18 else 1)


def _replay_insn(case_id, line, ins, known, stats, failures) -> None:  # type: ignore[no-untyped-def]
    cls, op, is_x = ins.code & 0x07, ins.code & 0xF0, bool(ins.code & 0x08)
    dst_name, src_name = f"R{ins.dst}", f"R{ins.src}"
    if cls in (0x04, 0x07):
        alu32 = cls == 0x04
        out = _scalar_state(line.states.get(dst_name))
        if out is None or op == 0xD0:
            return
        if op == MOV:
            if not is_x:
                expected = mark_reg_known(ins.imm & U32_MAX if alu32 else ins.imm)
            else:
                src = _scalar_state(known.get(src_name))
                if src is None:
                    return
                expected = scalar_mov(src.scalar, alu64=not alu32, off=ins.off)
        else:
            dst = _scalar_state(known.get(dst_name))
            if dst is None:
                return
            if op == NEG:
                src = dst
            elif is_x:
                src = _scalar_state(known.get(src_name) if ins.src == ins.dst else
                                    line.states.get(src_name, known.get(src_name)))  # fmt: skip
            else:
                src = ParsedScalar(mark_reg_known(ins.imm))
            if src is None:
                return
            expected = adjust_scalar_min_max_vals(dst.scalar, src.scalar, op, alu32)
        key = f"{'alu32' if alu32 else 'alu64'}:{op:#04x}{'x' if is_x else 'k'}"
    elif cls in (0x05, 0x06) and op in _COND_JUMPS:
        jmp32 = cls == 0x06
        dst = _scalar_state(known.get(dst_name))
        src = (_scalar_state(known.get(src_name)) if is_x
               else ParsedScalar(mark_reg_known(ins.imm)))  # fmt: skip
        out = _scalar_state(line.states.get(dst_name))
        if dst is None or src is None or out is None:
            return
        same = is_x and ins.src == ins.dst
        pred = is_scalar_branch_taken(dst.scalar, src.scalar, op, jmp32)
        if pred == -1:
            _, (expected, _) = reg_set_min_max(dst.scalar, src.scalar, op, jmp32, same_reg=same)
        elif pred == 0:
            expected = dst.scalar
        else:
            return  # the jump is taken: the next line is its target
        key = f"{'jmp32' if jmp32 else 'jmp'}:{op:#04x}"
    else:
        return
    stats[key] += 1
    if expected != out.scalar:
        failures.append((case_id, line.text, format_scalar(expected), format_scalar(out.scalar)))


_FROM = re.compile(r"^from (\d+) to (\d+):")


def _replay_taken(case_id, line, idx, ins, known, stats, failures) -> None:  # type: ignore[no-untyped-def]
    """A popped branch state right after its jump: check the jump's true branch."""
    target = idx + ins.off + 1
    m = _FROM.match(line.text)
    if line.idx != target or (m and int(m.group(1)) != idx):
        return
    cls, op, is_x = ins.code & 0x07, ins.code & 0xF0, bool(ins.code & 0x08)
    dst_name, src_name = f"R{ins.dst}", f"R{ins.src}"
    dst = _scalar_state(known.get(dst_name))
    src = _scalar_state(known.get(src_name)) if is_x else ParsedScalar(mark_reg_known(ins.imm))
    out = _scalar_state(line.states.get(dst_name))
    if dst is None or src is None or out is None or dst.id or src.id:
        return  # (linked registers may be overwritten by sync_linked_regs)
    jmp32 = cls == 0x06
    same = is_x and ins.src == ins.dst
    if is_scalar_branch_taken(dst.scalar, src.scalar, op, jmp32) != -1:
        return
    (t_dst, t_src), _ = reg_set_min_max(dst.scalar, src.scalar, op, jmp32, same_reg=same)
    stats[f"taken:{op:#04x}"] += 1
    if t_dst != out.scalar:
        failures.append((case_id, line.text, format_scalar(t_dst), format_scalar(out.scalar)))
    out_src = _scalar_state(line.states.get(src_name)) if is_x and not same else None
    if out_src is not None and t_src != out_src.scalar:
        failures.append((case_id, line.text, format_scalar(t_src), format_scalar(out_src.scalar)))


@needs_cases
def test_kernel_log_transfer_functions() -> None:
    """Our ALU and branch transfer functions reach the states the kernel printed."""
    stats = Counter[str]()
    failures: list = []  # type: ignore[type-arg]
    for case in load_cases():
        _replay_case(case, stats, failures)
    assert not failures, failures[:10]
    total = sum(stats.values())
    alu = sum(v for k, v in stats.items() if k.startswith("alu") and "0xb0" not in k)
    taken = sum(v for k, v in stats.items() if k.startswith("taken"))
    # (433 checks on the dev corpus: 79 ALU ops, 295 moves, 42 + 17 jump outcomes)
    assert total >= 400 and alu >= 60 and taken >= 10, stats
