"""The verifier's abstract value of a scalar: a tnum plus eight integer bounds.

This is the numeric part of the kernel's ``struct bpf_reg_state`` (``var_off``,
``smin/smax/umin/umax_value``, ``s32/u32_min/max_value``) and the functions of
Linux 6.18's ``kernel/bpf/verifier.c`` that compute with it: bounds sync and
deduction, the ALU transfer functions (``scalar_min_max_*``), zero/sign
extension, and conditional-jump prediction and refinement. The arithmetic is
the kernel's own, C wrap-around included, because the aim is to reach the very
same bounds as the kernel (and so print the same verifier log), not merely
sound ones.

Design: the public record :class:`Scalar` is **frozen** (attrs, slots). States
are copied at every branch and kept per instruction for traces; with immutable
records a copy is a reference, and no state can be changed behind another
branch's back. The kernel's functions, however, are written as a sequence of
in-place updates to one struct (``reg_bounds_sync`` alone is six steps). They
are ported here one-to-one, with their kernel names prefixed by ``_``, as
functions mutating a private scratch object :class:`_Reg`; the public
functions (kernel names without the underscore) copy their input into one
scratch object, run the kernel's steps on it and freeze the result once. So an
operation costs one scratch object and one new record, whatever its number of
steps, and the code reads line by line against the kernel's.

Public functions take and return :class:`Scalar` and never mutate. Those the
kernel applies to a pair of registers that may be the same register
(``regs_refine_cond_op`` for ``if r1 < r1``) take a ``same_reg`` flag so that
the kernel's aliasing is reproduced.

What is *not* here: register type, ``id``, ``precise``, ``off`` and the other
non-numeric fields of ``bpf_reg_state`` belong to the register state (the
walker). Where the kernel's function also clears ``id`` (``__mark_reg_known``)
the docstring says so. ``__reg_combine_32_into_64``/``_64_into_32`` no longer
exist in 6.18 (the 6.8 rework of ``reg_set_min_max`` replaced them); the
32-to-64 step that remains is ``__reg_assign_32_into_64`` inside
:func:`zext_32_to_64`.

Version notes (what distinguishes 6.18 from older kernels here): BPF_NEG is
range-tracked; add/sub keep unsigned bounds when all or none of the sums wrap;
signed mul uses the four corner products; ``reg_bounds_sync`` runs three
rounds of deduction; ``__reg64_deduce_bounds`` handles an s64 range crossing
the sign boundary; "not JSET" forgets the ranges before narrowing the tnum;
JEQ/JNE prediction also compares known tnum bits (``tnum_overlap``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from ..isa.opcodes import AluOp, JmpOp
from ._ints import (
    S8_MAX,
    S8_MIN,
    S16_MAX,
    S16_MIN,
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
from .tnum import (
    TNUM_UNKNOWN,
    Tnum,
    tnum_add,
    tnum_and,
    tnum_arshift,
    tnum_cast,
    tnum_const,
    tnum_const_subreg,
    tnum_intersect,
    tnum_is_const,
    tnum_is_unknown,
    tnum_lshift,
    tnum_mul,
    tnum_neg,
    tnum_or,
    tnum_overlap,
    tnum_range,
    tnum_rshift,
    tnum_sub,
    tnum_subreg,
    tnum_subreg_is_const,
    tnum_with_subreg,
    tnum_xor,
)

__all__ = [
    "BPF_ADD_CONST",
    "JSET_REV",
    "SCALAR_UNKNOWN",
    "ParsedScalar",
    "Scalar",
    "adjust_scalar_min_max_vals",
    "coerce_reg_to_size",
    "coerce_reg_to_size_sx",
    "coerce_subreg_to_size_sx",
    "flip_opcode",
    "format_scalar",
    "format_scalar_ranges",
    "is_reg_const",
    "is_safe_to_compute_dst_reg_range",
    "is_scalar_branch_taken",
    "linked_reg_add",
    "mark_reg_known",
    "mark_reg_s32_range",
    "mark_reg_unknown",
    "parse_scalar",
    "reg_bounds_sanity_check",
    "reg_bounds_sync",
    "reg_const_value",
    "reg_set_min_max",
    "regs_refine_cond_op",
    "rev_opcode",
    "scalar32_min_max_add",
    "scalar32_min_max_and",
    "scalar32_min_max_arsh",
    "scalar32_min_max_lsh",
    "scalar32_min_max_mul",
    "scalar32_min_max_or",
    "scalar32_min_max_rsh",
    "scalar32_min_max_sub",
    "scalar32_min_max_xor",
    "scalar_min_max_add",
    "scalar_min_max_and",
    "scalar_min_max_arsh",
    "scalar_min_max_lsh",
    "scalar_min_max_mul",
    "scalar_min_max_or",
    "scalar_min_max_rsh",
    "scalar_min_max_sub",
    "scalar_min_max_xor",
    "scalar_mov",
    "update_reg_bounds",
    "zext_32_to_64",
]

_M = U64_MAX
_S64_SIGN = 0x8000_0000_0000_0000

#: The flag bit of ``reg->id`` marking "this register is (linked reg) + off".
BPF_ADD_CONST = 1 << 31
#: ``BPF_JSET | BPF_X``: the kernel's encoding of "not JSET" (see rev_opcode).
JSET_REV = JmpOp.JSET | 0x08

# Plain ints for the hot paths (IntEnum members hash and compare a bit slower).
_ADD, _SUB, _MUL, _OR, _AND = int(AluOp.ADD), int(AluOp.SUB), int(AluOp.MUL), 0x40, 0x50
_LSH, _RSH, _NEG, _XOR, _ARSH = 0x60, 0x70, 0x80, 0xA0, 0xC0
_JEQ, _JGT, _JGE, _JSET, _JNE = 0x10, 0x20, 0x30, 0x40, 0x50
_JSGT, _JSGE, _JLT, _JLE, _JSLT, _JSLE = 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0
_JSET_REV = 0x48


@attrs.frozen(cache_hash=True)
class Scalar:
    """The numeric state of a scalar register (``bpf_reg_state`` bounds part).

    ``smin``/``smax``/``s32_min``/``s32_max`` are signed Python ints in their
    C range; ``umin``/``umax``/``u32_min``/``u32_max`` are unsigned. Every
    member of the abstract value lies in all four intervals and in ``var_off``.
    """

    var_off: Tnum
    smin: int
    smax: int
    umin: int
    umax: int
    s32_min: int
    s32_max: int
    u32_min: int
    u32_max: int

    @classmethod
    def const(cls, value: int) -> Scalar:
        """A known constant (``__mark_reg_known``; ``value`` taken as a u64)."""
        return mark_reg_known(value)

    @property
    def is_const(self) -> bool:
        return not self.var_off.mask

    def contains(self, x: int) -> bool:
        """True if the concrete 64-bit number ``x`` is allowed by every bound."""
        x &= _M
        lo = x & U32_MAX
        return (
            self.var_off.contains(x)
            and self.smin <= s64(x) <= self.smax
            and self.umin <= x <= self.umax
            and self.s32_min <= s32(lo) <= self.s32_max
            and self.u32_min <= lo <= self.u32_max
        )

    def __str__(self) -> str:
        return format_scalar(self)


#: A completely unknown scalar (``__mark_reg_unknown``).
SCALAR_UNKNOWN = Scalar(TNUM_UNKNOWN, S64_MIN, S64_MAX, 0, _M, S32_MIN, S32_MAX, 0, U32_MAX)


class _Reg:
    """Scratch copy of a :class:`Scalar` that the ported kernel steps mutate."""

    __slots__ = (
        "s32_max",
        "s32_min",
        "smax",
        "smin",
        "u32_max",
        "u32_min",
        "umax",
        "umin",
        "var_off",
    )

    var_off: Tnum
    smin: int
    smax: int
    umin: int
    umax: int
    s32_min: int
    s32_max: int
    u32_min: int
    u32_max: int

    def __init__(self, s: Scalar) -> None:
        self.var_off = s.var_off
        self.smin = s.smin
        self.smax = s.smax
        self.umin = s.umin
        self.umax = s.umax
        self.s32_min = s.s32_min
        self.s32_max = s.s32_max
        self.u32_min = s.u32_min
        self.u32_max = s.u32_max

    def freeze(self) -> Scalar:
        return Scalar(
            self.var_off,
            self.smin,
            self.smax,
            self.umin,
            self.umax,
            self.s32_min,
            self.s32_max,
            self.u32_min,
            self.u32_max,
        )


# ---------------------------------------------------------------------------
# Marking (verifier.c: ___mark_reg_known, __mark_reg32_known, __mark_reg_unbounded...)


def _mark_reg_known(r: _Reg, imm: int) -> None:
    imm &= _M
    r.var_off = Tnum(imm, 0)
    r.smin = r.smax = s64(imm)
    r.umin = r.umax = imm
    r.s32_min = r.s32_max = s32(imm)
    r.u32_min = r.u32_max = imm & U32_MAX


def _mark_reg32_known(r: _Reg, imm: int) -> None:
    r.var_off = tnum_const_subreg(r.var_off, imm)
    r.s32_min = r.s32_max = s32(imm)
    r.u32_min = r.u32_max = imm & U32_MAX


def _mark_reg_unbounded(r: _Reg) -> None:
    r.smin, r.smax, r.umin, r.umax = S64_MIN, S64_MAX, 0, _M
    r.s32_min, r.s32_max, r.u32_min, r.u32_max = S32_MIN, S32_MAX, 0, U32_MAX


def _mark_reg64_unbounded(r: _Reg) -> None:
    r.smin, r.smax, r.umin, r.umax = S64_MIN, S64_MAX, 0, _M


def _mark_reg32_unbounded(r: _Reg) -> None:
    r.s32_min, r.s32_max, r.u32_min, r.u32_max = S32_MIN, S32_MAX, 0, U32_MAX


def mark_reg_known(imm: int) -> Scalar:
    """``__mark_reg_known``: the constant ``imm`` (taken as a u64).

    The kernel's function also clears ``id``, ``ref_obj_id`` and ``off`` of the
    register; that is for the caller holding the register state.
    """
    imm &= _M
    lo = imm & U32_MAX
    return Scalar(Tnum(imm, 0), s64(imm), s64(imm), imm, imm, s32(lo), s32(lo), lo, lo)


def mark_reg_unknown() -> Scalar:
    """``__mark_reg_unknown``: nothing known (the caller resets id/precise)."""
    return SCALAR_UNKNOWN


# ---------------------------------------------------------------------------
# Bounds from the tnum, and between the four domains


# These run several times per instruction, so they are written for CPython:
# fields read into locals, ``(x ^ SIGN) - SIGN`` for the C signed casts and
# conditional expressions for min/max (both much cheaper than calls). Each
# line still corresponds to a line of the kernel's function.


def _update_reg32_bounds(r: _Reg) -> None:
    v = r.var_off.value & 0xFFFF_FFFF
    m = r.var_off.mask & 0xFFFF_FFFF
    # min signed is max(sign bit) | min(other bits); max signed the converse
    x = ((v | (m & 0x8000_0000)) ^ 0x8000_0000) - 0x8000_0000
    if x > r.s32_min:
        r.s32_min = x
    x = ((v | (m & 0x7FFF_FFFF)) ^ 0x8000_0000) - 0x8000_0000
    if x < r.s32_max:
        r.s32_max = x
    if v > r.u32_min:
        r.u32_min = v
    x = v | m
    if x < r.u32_max:
        r.u32_max = x


def _update_reg64_bounds(r: _Reg) -> None:
    v = r.var_off.value
    m = r.var_off.mask
    x = ((v | (m & _S64_SIGN)) ^ _S64_SIGN) - _S64_SIGN
    if x > r.smin:
        r.smin = x
    x = ((v | (m & S64_MAX)) ^ _S64_SIGN) - _S64_SIGN
    if x < r.smax:
        r.smax = x
    if v > r.umin:
        r.umin = v
    x = v | m
    if x < r.umax:
        r.umax = x


def _update_reg_bounds(r: _Reg) -> None:
    _update_reg32_bounds(r)
    _update_reg64_bounds(r)


_W = 0xFFFF_FFFF
_SB = 0x8000_0000


def _reg32_deduce_bounds(r: _Reg) -> None:
    umin, umax, smin, smax = r.umin, r.umax, r.smin, r.smax
    s32_min, s32_max, u32_min, u32_max = r.s32_min, r.s32_max, r.u32_min, r.u32_max
    # If the upper 32 bits of the u64 (or s64) range don't change, the lower
    # 32 bits form a valid u32 range (and an s32 one if it doesn't wrap).
    if (umin >> 32) == (umax >> 32):
        lo, hi = umin & _W, umax & _W
        u32_min = u32_min if u32_min > lo else lo
        u32_max = u32_max if u32_max < hi else hi
        lo, hi = (lo ^ _SB) - _SB, (hi ^ _SB) - _SB
        if lo <= hi:
            s32_min = s32_min if s32_min > lo else lo
            s32_max = s32_max if s32_max < hi else hi
    if (smin >> 32) == (smax >> 32):
        lo, hi = smin & _W, smax & _W
        if lo <= hi:
            u32_min = u32_min if u32_min > lo else lo
            u32_max = u32_max if u32_max < hi else hi
        lo, hi = (lo ^ _SB) - _SB, (hi ^ _SB) - _SB
        if lo <= hi:
            s32_min = s32_min if s32_min > lo else lo
            s32_max = s32_max if s32_max < hi else hi
    # Upper halves two consecutive numbers (u32 arithmetic: 0xffffffff + 1 == 0)
    # while the low halves go from negative to non-negative: a valid s32 range.
    if (((umin >> 32) + 1) & _W) == ((umax >> 32) & _W):
        lo, hi = ((umin & _W) ^ _SB) - _SB, ((umax & _W) ^ _SB) - _SB
        if lo < 0 and hi >= 0:
            s32_min = s32_min if s32_min > lo else lo
            s32_max = s32_max if s32_max < hi else hi
    if (((smin >> 32) + 1) & _W) == ((smax >> 32) & _W):
        lo, hi = ((smin & _W) ^ _SB) - _SB, ((smax & _W) ^ _SB) - _SB
        if lo < 0 and hi >= 0:
            s32_min = s32_min if s32_min > lo else lo
            s32_max = s32_max if s32_max < hi else hi
    # A u32 range that doesn't cross the sign boundary is also an s32 range...
    lo, hi = (u32_min ^ _SB) - _SB, (u32_max ^ _SB) - _SB
    if lo <= hi:
        s32_min = s32_min if s32_min > lo else lo
        s32_max = s32_max if s32_max < hi else hi
    # ...and the converse.
    lo, hi = s32_min & _W, s32_max & _W
    if lo <= hi:
        u32_min = lo if lo > u32_min else u32_min
        u32_max = hi if hi < u32_max else u32_max
    r.s32_min, r.s32_max, r.u32_min, r.u32_max = s32_min, s32_max, u32_min, u32_max


def _reg64_deduce_bounds(r: _Reg) -> None:
    umin, umax, smin, smax = r.umin, r.umax, r.smin, r.smax
    # A u64 range within one half of the number line is also an s64 range.
    lo, hi = (umin ^ _S64_SIGN) - _S64_SIGN, (umax ^ _S64_SIGN) - _S64_SIGN
    if lo <= hi:
        smin = smin if smin > lo else lo
        smax = smax if smax < hi else hi
    lo, hi = smin & _M, smax & _M
    if lo <= hi:
        # s64 range within one half: also a u64 range
        umin = lo if lo > umin else umin
        umax = hi if hi < umax else umax
    # The s64 range crosses the sign boundary; if the u64 range meets only
    # one end of it, both can be narrowed to that end.
    elif umax < lo:
        smin = (umin ^ _S64_SIGN) - _S64_SIGN
        umax = umax if umax < hi else hi
    elif hi < umin:
        smax = (umax ^ _S64_SIGN) - _S64_SIGN
        umin = umin if umin > lo else lo
    r.umin, r.umax, r.smin, r.smax = umin, umax, smin, smax


def _reg_deduce_mixed_bounds(r: _Reg) -> None:
    umin, umax, smin, smax = r.umin, r.umax, r.smin, r.smax
    u32_min, u32_max = r.u32_min, r.u32_max
    # Tighten 64-bit bounds with the 32-bit ones substituted as low halves.
    x = (umin & ~_W) | u32_min
    if x > umin:
        umin = x
    x = (umax & ~_W) | u32_max
    if x < umax:
        umax = x
    x = ((((smin & _M) & ~_W) | u32_min) ^ _S64_SIGN) - _S64_SIGN
    if x > smin:
        smin = x
    x = ((((smax & _M) & ~_W) | u32_max) ^ _S64_SIGN) - _S64_SIGN
    if x < smax:
        smax = x
    # After a sign-extending load: a 64-bit range within [S32_MIN, S32_MAX]
    # whose low half is non-negative cannot have its upper half all ones.
    if r.s32_min >= 0 and smin >= S32_MIN and smax <= S32_MAX:
        smin, smax = r.s32_min, r.s32_max
        umin, umax = smin & _M, smax & _M
        # var_off = tnum_intersect(var_off, tnum_range(smin, smax)), on ints
        lo, hi = smin & _M, smax & _M
        bits = (lo ^ hi).bit_length()
        rm = _M if bits > 63 else (1 << bits) - 1
        rv = 0 if bits > 63 else lo & ~rm
        old = r.var_off
        m = old.mask & rm
        v = (old.value | rv) & ~m
        if v != old.value or m != old.mask:
            r.var_off = Tnum(v, m)
    r.umin, r.umax, r.smin, r.smax = umin, umax, smin, smax


def _reg_deduce_bounds(r: _Reg) -> None:
    _reg32_deduce_bounds(r)
    _reg64_deduce_bounds(r)
    _reg_deduce_mixed_bounds(r)


def _reg_bound_offset(r: _Reg) -> None:
    # Learn tnum bits from the unsigned bounds (64 and 32 separately):
    #   var64 = tnum_intersect(var_off, tnum_range(umin, umax))
    #   var32 = tnum_intersect(tnum_subreg(var64), tnum_range(u32_min, u32_max))
    #   var_off = tnum_or(tnum_clear_subreg(var64), var32)
    # computed on ints, allocating a Tnum only if something was learned.
    old = r.var_off
    lo, hi = r.umin, r.umax
    bits = (lo ^ hi).bit_length()
    if bits > 63:
        rv, rm = 0, _M
    else:
        rm = (1 << bits) - 1
        rv = lo & ~rm
    m64 = old.mask & rm
    v64 = (old.value | rv) & ~m64
    lo, hi = r.u32_min, r.u32_max
    rm = (1 << (lo ^ hi).bit_length()) - 1
    rv = lo & ~rm
    m32 = m64 & rm & _W
    v32 = ((v64 & _W) | rv) & ~m32
    v = (v64 & ~_W & _M) | v32
    m = ((m64 & ~_W & _M) | m32) & ~v
    if v != old.value or m != old.mask:
        r.var_off = Tnum(v, m)


def _reg_bounds_sync(r: _Reg) -> None:
    _update_reg_bounds(r)
    # 6.17+: three rounds of deduction (each may enable the next). A round is
    # a function of the state alone, so once one changes nothing the rest
    # would not either and are skipped.
    for _ in range(3):
        before = (r.smin, r.smax, r.umin, r.umax, r.s32_min, r.s32_max, r.u32_min, r.u32_max)
        var_off = r.var_off
        _reg_deduce_bounds(r)
        if var_off is r.var_off and before == (
            r.smin,
            r.smax,
            r.umin,
            r.umax,
            r.s32_min,
            r.s32_max,
            r.u32_min,
            r.u32_max,
        ):
            break
    _reg_bound_offset(r)
    _update_reg_bounds(r)


def update_reg_bounds(s: Scalar) -> Scalar:
    """``__update_reg_bounds``: narrow the 32- and 64-bit bounds by ``var_off``."""
    r = _Reg(s)
    _update_reg_bounds(r)
    return r.freeze()


def reg_bounds_sync(s: Scalar) -> Scalar:
    """``reg_bounds_sync``: propagate knowledge between tnum and all bounds.

    Bounds from the tnum, three rounds of ``__reg_deduce_bounds`` (32-bit,
    64-bit, mixed), tnum bits from the bounds, bounds from the tnum again.
    """
    r = _Reg(s)
    _reg_bounds_sync(r)
    return r.freeze()


def reg_bounds_sanity_check(s: Scalar, ctx: str) -> tuple[Scalar, str | None]:
    """``reg_bounds_sanity_check``: detect contradictory bounds.

    Returns ``(s, None)`` when consistent. Otherwise returns the register made
    unbounded (what the kernel does unless testing invariants; ``var_off`` is
    kept) and the text the kernel reports through ``verifier_bug``.
    """
    msg = None
    if s.umin > s.umax or s.smin > s.smax or s.u32_min > s.u32_max or s.s32_min > s.s32_max:
        msg = "range bounds violation"
    elif tnum_is_const(s.var_off) and (
        s.umin != s.var_off.value
        or s.umax != s.var_off.value
        or s.smin != s64(s.var_off.value)
        or s.smax != s64(s.var_off.value)
    ):
        msg = "const tnum out of sync with range bounds"
    elif tnum_subreg_is_const(s.var_off):
        uval32 = s.var_off.value & U32_MAX
        if (
            s.u32_min != uval32
            or s.u32_max != uval32
            or s.s32_min != s32(uval32)
            or s.s32_max != s32(uval32)
        ):
            msg = "const subreg tnum out of sync with range bounds"
    if msg is None:
        return s, None
    text = (
        f"REG INVARIANTS VIOLATION ({ctx}): {msg} u64=[{s.umin:#x}, {s.umax:#x}] "
        f"s64=[{s.smin & _M:#x}, {s.smax & _M:#x}] "
        f"u32=[{s.u32_min:#x}, {s.u32_max:#x}] "
        f"s32=[{s.s32_min & U32_MAX:#x}, {s.s32_max & U32_MAX:#x}] "
        f"var_off=({s.var_off.value:#x}, {s.var_off.mask:#x})"
    )
    r = _Reg(s)
    _mark_reg_unbounded(r)
    return r.freeze(), text


def mark_reg_s32_range(s: Scalar, s32_min: int, s32_max: int) -> Scalar:
    """``__mark_reg_s32_range`` (without its sanity check): clamp to an s32 range."""
    r = _Reg(s)
    r.s32_min = max(r.s32_min, s32_min)
    r.s32_max = min(r.s32_max, s32_max)
    r.smin = max(r.smin, s32_min)
    r.smax = min(r.smax, s32_max)
    _reg_bounds_sync(r)
    return r.freeze()


# ---------------------------------------------------------------------------
# Zero and sign extension (zext_32_to_64, coerce_reg_to_size[_sx], ...)


def _reg_assign_32_into_64(r: _Reg) -> None:
    r.umin = r.u32_min
    r.umax = r.u32_max
    # 32-bit signed bounds carry over only if non-negative
    if r.s32_min >= 0 and r.s32_max >= 0:
        r.smin = r.s32_min
        r.smax = r.s32_max
    else:
        r.smin = 0
        r.smax = U32_MAX


def _zext_32_to_64(r: _Reg) -> None:
    r.var_off = tnum_subreg(r.var_off)
    _reg_assign_32_into_64(r)


def zext_32_to_64(s: Scalar) -> Scalar:
    """``zext_32_to_64``: an ALU32 result zero-extended into the 64-bit register.

    Only the tnum and 64-bit bounds change; the kernel follows it with
    ``reg_bounds_sync``.
    """
    r = _Reg(s)
    _zext_32_to_64(r)
    return r.freeze()


def _coerce_reg_to_size(r: _Reg, size: int) -> None:
    r.var_off = tnum_cast(r.var_off, size)
    mask = (1 << (size * 8)) - 1
    if (r.umin & ~mask) == (r.umax & ~mask):
        r.umin &= mask
        r.umax &= mask
    else:
        r.umin = 0
        r.umax = mask
    r.smin = s64(r.umin)
    r.smax = s64(r.umax)
    # below 32 bits the subregister is truncated too: relearn it from the tnum
    if size < 4:
        _mark_reg32_unbounded(r)
    _reg_bounds_sync(r)


def coerce_reg_to_size(s: Scalar, size: int) -> Scalar:
    """``coerce_reg_to_size``: truncate to ``size`` bytes (1, 2 or 4), zero-extended.

    What a narrow load (``ldx``) of a known scalar yields.
    """
    r = _Reg(s)
    _coerce_reg_to_size(r, size)
    return r.freeze()


_SEXT = {1: s8, 2: s16, 4: s32}


def _set_sext64_default_val(r: _Reg, size: int) -> None:
    if size == 1:
        r.smin = r.s32_min = S8_MIN
        r.smax = r.s32_max = S8_MAX
    elif size == 2:
        r.smin = r.s32_min = S16_MIN
        r.smax = r.s32_max = S16_MAX
    else:
        r.smin = r.s32_min = S32_MIN
        r.smax = r.s32_max = S32_MAX
    r.umin = r.u32_min = 0
    r.umax = _M
    r.u32_max = U32_MAX
    r.var_off = TNUM_UNKNOWN


def _coerce_reg_to_size_sx(r: _Reg, size: int) -> None:
    sext = _SEXT[size]
    if tnum_is_const(r.var_off):
        cval = sext(r.var_off.value) & _M
        r.var_off = Tnum(cval, 0)
        r.smax = r.smin = s64(cval)
        r.umax = r.umin = cval
        r.s32_max = r.s32_min = s32(cval)
        r.u32_max = r.u32_min = cval & U32_MAX
        return
    num_bits = size * 8
    top_smax = ((r.smax & _M) >> num_bits) << num_bits
    top_smin = ((r.smin & _M) >> num_bits) << num_bits
    if top_smax == top_smin:
        init_max = sext(r.smax)
        init_min = sext(r.smin)
        smax = max(init_max, init_min)
        smin = min(init_max, init_min)
        # both of s64_max/s64_min positive or both negative
        if (smax >= 0) == (smin >= 0):
            r.smin = smin
            r.s32_min = s32(smin)
            r.smax = smax
            r.s32_max = s32(smax)
            r.umin = smin & _M
            r.u32_min = smin & U32_MAX
            r.umax = smax & _M
            r.u32_max = smax & U32_MAX
            r.var_off = tnum_range(smin, smax)
            return
    _set_sext64_default_val(r, size)


def coerce_reg_to_size_sx(s: Scalar, size: int) -> Scalar:
    """``coerce_reg_to_size_sx``: sign-extend the low ``size`` bytes to 64 bits.

    For ``movsx`` (ALU64) and ``ldsx``. Note the kernel does not run
    ``reg_bounds_sync`` afterwards, and neither does this.
    """
    r = _Reg(s)
    _coerce_reg_to_size_sx(r, size)
    return r.freeze()


def _set_sext32_default_val(r: _Reg, size: int) -> None:
    if size == 1:
        r.s32_min, r.s32_max = S8_MIN, S8_MAX
    else:
        r.s32_min, r.s32_max = S16_MIN, S16_MAX
    r.u32_min = 0
    r.u32_max = U32_MAX
    r.var_off = Tnum(0, U32_MAX)


def _coerce_subreg_to_size_sx(r: _Reg, size: int) -> None:
    sext = _SEXT[size]
    if tnum_is_const(r.var_off):
        # (s8/s16) of the low word, then tnum_const() of that *s64*: the
        # upper half becomes the sign extension until zext_32_to_64 clears it
        val = sext(r.var_off.value) & _M
        r.var_off = Tnum(val, 0)
        v32 = s32(val)
        r.s32_min = r.s32_max = v32
        r.u32_min = r.u32_max = v32 & U32_MAX
        return
    num_bits = size * 8
    top_smax = ((r.s32_max & U32_MAX) >> num_bits) << num_bits
    top_smin = ((r.s32_min & U32_MAX) >> num_bits) << num_bits
    if top_smax == top_smin:
        init_max = sext(r.s32_max)
        init_min = sext(r.s32_min)
        smax = max(init_max, init_min)
        smin = min(init_max, init_min)
        if (smin >= 0) == (smax >= 0):
            r.s32_min = smin
            r.s32_max = smax
            r.u32_min = smin & U32_MAX
            r.u32_max = smax & U32_MAX
            r.var_off = tnum_subreg(tnum_range(smin, smax))
            return
    _set_sext32_default_val(r, size)


def coerce_subreg_to_size_sx(s: Scalar, size: int) -> Scalar:
    """``coerce_subreg_to_size_sx``: ``w = (s8/s16)w`` on the 32-bit subregister.

    The kernel then applies ``zext_32_to_64`` and ``reg_bounds_sync`` (see
    :func:`scalar_mov`).
    """
    r = _Reg(s)
    _coerce_subreg_to_size_sx(r, size)
    return r.freeze()


def scalar_mov(src: Scalar, *, alu64: bool, off: int = 0) -> Scalar:
    """The scalar result of ``check_alu_op``'s BPF_MOV from a scalar register.

    ``off`` is the instruction's ``off`` (0, or 8/16/32 for ``movsx``). A
    BPF_K move is just :func:`mark_reg_known` of the immediate (sign-extended
    for ALU64, ``(u32)imm`` for ALU32).
    """
    r = _Reg(src)
    if alu64:
        if off:
            _coerce_reg_to_size_sx(r, off >> 3)
        return r.freeze()
    if off:
        _coerce_subreg_to_size_sx(r, off >> 3)
    _zext_32_to_64(r)
    _reg_bounds_sync(r)
    return r.freeze()


# ---------------------------------------------------------------------------
# ALU transfer functions (adjust_scalar_min_max_vals and its helpers)


def _scalar32_min_max_add(d: _Reg, s: _Reg | Scalar) -> None:
    smin = d.s32_min + s.s32_min
    smax = d.s32_max + s.s32_max
    if not (S32_MIN <= smin <= S32_MAX and S32_MIN <= smax <= S32_MAX):
        d.s32_min, d.s32_max = S32_MIN, S32_MAX
    else:
        d.s32_min, d.s32_max = smin, smax
    # If all additions overflow or none do, [umin+umin', umax+umax'] (wrapped)
    # is right; if only some do, nothing is known.
    umin = d.u32_min + s.u32_min
    umax = d.u32_max + s.u32_max
    if umin <= U32_MAX < umax:
        d.u32_min, d.u32_max = 0, U32_MAX
    else:
        d.u32_min, d.u32_max = umin & U32_MAX, umax & U32_MAX


def _scalar_min_max_add(d: _Reg, s: _Reg | Scalar) -> None:
    smin = d.smin + s.smin
    smax = d.smax + s.smax
    if not (S64_MIN <= smin <= S64_MAX and S64_MIN <= smax <= S64_MAX):
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = smin, smax
    umin = d.umin + s.umin
    umax = d.umax + s.umax
    if umin <= _M < umax:
        d.umin, d.umax = 0, _M
    else:
        d.umin, d.umax = umin & _M, umax & _M


def _scalar32_min_max_sub(d: _Reg, s: _Reg | Scalar) -> None:
    smin = d.s32_min - s.s32_max
    smax = d.s32_max - s.s32_min
    if not (S32_MIN <= smin <= S32_MAX and S32_MIN <= smax <= S32_MAX):
        d.s32_min, d.s32_max = S32_MIN, S32_MAX
    else:
        d.s32_min, d.s32_max = smin, smax
    umin = d.u32_min - s.u32_max
    umax = d.u32_max - s.u32_min
    if umin < 0 <= umax:
        d.u32_min, d.u32_max = 0, U32_MAX
    else:
        d.u32_min, d.u32_max = umin & U32_MAX, umax & U32_MAX


def _scalar_min_max_sub(d: _Reg, s: _Reg | Scalar) -> None:
    smin = d.smin - s.smax
    smax = d.smax - s.smin
    if not (S64_MIN <= smin <= S64_MAX and S64_MIN <= smax <= S64_MAX):
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = smin, smax
    umin = d.umin - s.umax
    umax = d.umax - s.umin
    if umin < 0 <= umax:
        d.umin, d.umax = 0, _M
    else:
        d.umin, d.umax = umin & _M, umax & _M


def _scalar32_min_max_mul(d: _Reg, s: _Reg | Scalar) -> None:
    umax = d.u32_max * s.u32_max
    umin = d.u32_min * s.u32_min
    if umax > U32_MAX or umin > U32_MAX:
        d.u32_min, d.u32_max = 0, U32_MAX
    else:
        d.u32_min, d.u32_max = umin, umax
    prods = (
        d.s32_min * s.s32_min,
        d.s32_min * s.s32_max,
        d.s32_max * s.s32_min,
        d.s32_max * s.s32_max,
    )
    lo, hi = min(prods), max(prods)
    if lo < S32_MIN or hi > S32_MAX:
        d.s32_min, d.s32_max = S32_MIN, S32_MAX
    else:
        d.s32_min, d.s32_max = lo, hi


def _scalar_min_max_mul(d: _Reg, s: _Reg | Scalar) -> None:
    umax = d.umax * s.umax
    umin = d.umin * s.umin
    if umax > _M or umin > _M:
        d.umin, d.umax = 0, _M
    else:
        d.umin, d.umax = umin, umax
    prods = (d.smin * s.smin, d.smin * s.smax, d.smax * s.smin, d.smax * s.smax)
    lo, hi = min(prods), max(prods)
    if lo < S64_MIN or hi > S64_MAX:
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = lo, hi


def _s32_from_u32_range(d: _Reg) -> None:
    # Safe to cast the u32 range to s32 only if it doesn't cross the sign boundary.
    if s32(d.u32_min) <= s32(d.u32_max):
        d.s32_min, d.s32_max = s32(d.u32_min), s32(d.u32_max)
    else:
        d.s32_min, d.s32_max = S32_MIN, S32_MAX


def _s64_from_u64_range(d: _Reg) -> None:
    if s64(d.umin) <= s64(d.umax):
        d.smin, d.smax = s64(d.umin), s64(d.umax)
    else:
        d.smin, d.smax = S64_MIN, S64_MAX


def _scalar32_min_max_and(d: _Reg, s: _Reg | Scalar) -> None:
    var32 = tnum_subreg(d.var_off)
    if tnum_subreg_is_const(s.var_off) and tnum_subreg_is_const(d.var_off):
        _mark_reg32_known(d, var32.value)
        return
    # minimum from the (already and-ed) tnum, maximum the smaller operand maximum
    d.u32_min = var32.value
    d.u32_max = min(d.u32_max, s.u32_max)
    _s32_from_u32_range(d)


def _scalar_min_max_and(d: _Reg, s: _Reg | Scalar) -> None:
    if tnum_is_const(s.var_off) and tnum_is_const(d.var_off):
        _mark_reg_known(d, d.var_off.value)
        return
    d.umin = d.var_off.value
    d.umax = min(d.umax, s.umax)
    _s64_from_u64_range(d)
    _update_reg_bounds(d)


def _scalar32_min_max_or(d: _Reg, s: _Reg | Scalar) -> None:
    var32 = tnum_subreg(d.var_off)
    if tnum_subreg_is_const(s.var_off) and tnum_subreg_is_const(d.var_off):
        _mark_reg32_known(d, var32.value)
        return
    # maximum from the tnum, minimum the larger operand minimum
    d.u32_min = max(d.u32_min, s.u32_min)
    d.u32_max = var32.value | var32.mask
    _s32_from_u32_range(d)


def _scalar_min_max_or(d: _Reg, s: _Reg | Scalar) -> None:
    if tnum_is_const(s.var_off) and tnum_is_const(d.var_off):
        _mark_reg_known(d, d.var_off.value)
        return
    d.umin = max(d.umin, s.umin)
    d.umax = d.var_off.value | d.var_off.mask
    _s64_from_u64_range(d)
    _update_reg_bounds(d)


def _scalar32_min_max_xor(d: _Reg, s: _Reg | Scalar) -> None:
    var32 = tnum_subreg(d.var_off)
    if tnum_subreg_is_const(s.var_off) and tnum_subreg_is_const(d.var_off):
        _mark_reg32_known(d, var32.value)
        return
    d.u32_min = var32.value
    d.u32_max = var32.value | var32.mask
    _s32_from_u32_range(d)


def _scalar_min_max_xor(d: _Reg, s: _Reg | Scalar) -> None:
    if tnum_is_const(s.var_off) and tnum_is_const(d.var_off):
        _mark_reg_known(d, d.var_off.value)
        return
    d.umin = d.var_off.value
    d.umax = d.var_off.value | d.var_off.mask
    _s64_from_u64_range(d)
    _update_reg_bounds(d)


def __scalar32_min_max_lsh(d: _Reg, umin_val: int, umax_val: int) -> None:
    # all sign information is lost (except what var_off keeps)
    d.s32_min, d.s32_max = S32_MIN, S32_MAX
    # if the top bit may be shifted out, nothing is known
    if umax_val > 31 or d.u32_max > (1 << (31 - umax_val)):
        d.u32_min, d.u32_max = 0, U32_MAX
    else:
        d.u32_min = (d.u32_min << umin_val) & U32_MAX
        d.u32_max = (d.u32_max << umax_val) & U32_MAX


def _scalar32_min_max_lsh(d: _Reg, s: _Reg | Scalar) -> None:
    umax_val = s.u32_max
    umin_val = s.u32_min
    subreg = tnum_subreg(d.var_off)  # u32 alu zero-extends
    __scalar32_min_max_lsh(d, umin_val, umax_val)
    d.var_off = tnum_subreg(tnum_lshift(subreg, umin_val))
    _mark_reg64_unbounded(d)
    _update_reg32_bounds(d)


def __scalar64_min_max_lsh(d: _Reg, umin_val: int, umax_val: int) -> None:
    # <<32 is how compilers sign-extend a subregister (<<32 s>>32): keep the
    # signed bounds when the 32-bit ones are non-negative.
    if umin_val == 32 and umax_val == 32 and d.s32_max >= 0:
        d.smax = d.s32_max << 32
    else:
        d.smax = S64_MAX
    if umin_val == 32 and umax_val == 32 and d.s32_min >= 0:
        d.smin = d.s32_min << 32
    else:
        d.smin = S64_MIN
    if d.umax > (1 << (63 - umax_val)):
        d.umin, d.umax = 0, _M
    else:
        d.umin = (d.umin << umin_val) & _M
        d.umax = (d.umax << umax_val) & _M


def _scalar_min_max_lsh(d: _Reg, s: _Reg | Scalar) -> None:
    umax_val = s.umax
    umin_val = s.umin
    # the 64-bit part reads the unshifted 32-bit bounds, so goes first
    __scalar64_min_max_lsh(d, umin_val, umax_val)
    __scalar32_min_max_lsh(d, umin_val, umax_val)
    d.var_off = tnum_lshift(d.var_off, umin_val)
    _update_reg_bounds(d)


def _scalar32_min_max_rsh(d: _Reg, s: _Reg | Scalar) -> None:
    subreg = tnum_subreg(d.var_off)
    umax_val = s.u32_max
    umin_val = s.u32_min
    # an unsigned shift: signed bounds are relearned from the result
    d.s32_min, d.s32_max = S32_MIN, S32_MAX
    d.var_off = tnum_rshift(subreg, umin_val)
    d.u32_min >>= umax_val
    d.u32_max >>= umin_val
    _mark_reg64_unbounded(d)
    _update_reg32_bounds(d)


def _scalar_min_max_rsh(d: _Reg, s: _Reg | Scalar) -> None:
    umax_val = s.umax
    umin_val = s.umin
    d.smin, d.smax = S64_MIN, S64_MAX
    d.var_off = tnum_rshift(d.var_off, umin_val)
    d.umin >>= umax_val
    d.umax >>= umin_val
    # bits shifted in from the upper half make the 32-bit bounds hard; relearn
    _mark_reg32_unbounded(d)
    _update_reg_bounds(d)


def _scalar32_min_max_arsh(d: _Reg, s: _Reg | Scalar) -> None:
    umin_val = s.u32_min  # the shift is a known constant here
    d.s32_min >>= umin_val
    d.s32_max >>= umin_val
    d.var_off = tnum_arshift(tnum_subreg(d.var_off), umin_val, 32)
    d.u32_min, d.u32_max = 0, U32_MAX
    _mark_reg64_unbounded(d)
    _update_reg32_bounds(d)


def _scalar_min_max_arsh(d: _Reg, s: _Reg | Scalar) -> None:
    umin_val = s.umin
    d.smin >>= umin_val
    d.smax >>= umin_val
    d.var_off = tnum_arshift(d.var_off, umin_val, 64)
    d.umin, d.umax = 0, _M
    _mark_reg32_unbounded(d)
    _update_reg_bounds(d)


def _pure(fn: Callable[[_Reg, Scalar], None]) -> Callable[[Scalar, Scalar], Scalar]:
    """Wrap a ported in-place step as a pure function on :class:`Scalar`."""

    def wrapper(dst: Scalar, src: Scalar) -> Scalar:
        r = _Reg(dst)
        fn(r, src)
        return r.freeze()

    wrapper.__name__ = fn.__name__.lstrip("_")
    wrapper.__qualname__ = wrapper.__name__
    wrapper.__doc__ = (
        f"``{wrapper.__name__}`` of verifier.c, exactly: only the parts of ``dst`` the "
        "kernel's function updates change (no tnum update unless the kernel's function "
        "does it, no zext, no reg_bounds_sync; see adjust_scalar_min_max_vals)."
    )
    return wrapper


scalar32_min_max_add = _pure(_scalar32_min_max_add)
scalar_min_max_add = _pure(_scalar_min_max_add)
scalar32_min_max_sub = _pure(_scalar32_min_max_sub)
scalar_min_max_sub = _pure(_scalar_min_max_sub)
scalar32_min_max_mul = _pure(_scalar32_min_max_mul)
scalar_min_max_mul = _pure(_scalar_min_max_mul)
scalar32_min_max_and = _pure(_scalar32_min_max_and)
scalar_min_max_and = _pure(_scalar_min_max_and)
scalar32_min_max_or = _pure(_scalar32_min_max_or)
scalar_min_max_or = _pure(_scalar_min_max_or)
scalar32_min_max_xor = _pure(_scalar32_min_max_xor)
scalar_min_max_xor = _pure(_scalar_min_max_xor)
scalar32_min_max_lsh = _pure(_scalar32_min_max_lsh)
scalar_min_max_lsh = _pure(_scalar_min_max_lsh)
scalar32_min_max_rsh = _pure(_scalar32_min_max_rsh)
scalar_min_max_rsh = _pure(_scalar_min_max_rsh)
scalar32_min_max_arsh = _pure(_scalar32_min_max_arsh)
scalar_min_max_arsh = _pure(_scalar_min_max_arsh)


def linked_reg_add(known: Scalar, delta: int) -> Scalar:
    """The ``reg = known_reg; reg += delta`` step of ``sync_linked_regs``.

    ``delta`` is ``(s32)reg->off - (s32)known_reg->off``; as in the kernel it
    is applied with ``scalar32_min_max_add``, ``scalar_min_max_add`` and
    ``tnum_add`` only (no ``reg_bounds_sync``).
    """
    d = _Reg(known)
    k = mark_reg_known(delta)
    _scalar32_min_max_add(d, k)
    _scalar_min_max_add(d, k)
    d.var_off = tnum_add(d.var_off, k.var_off)
    return d.freeze()


def is_safe_to_compute_dst_reg_range(opcode: int, alu64: bool, src: Scalar) -> bool:
    """``is_safe_to_compute_dst_reg_range``: does the verifier track this op's result?

    ``opcode`` is ``BPF_OP(code)``. ADD, SUB, NEG, AND, XOR, OR and MUL always;
    shifts only by a known constant below the width (checked on the 64-bit
    ``umax`` even for ALU32, as the kernel does); anything else (DIV, MOD...)
    gives an unknown scalar.
    """
    if opcode in (_ADD, _SUB, _NEG, _AND, _XOR, _OR, _MUL):
        return True
    if opcode in (_LSH, _RSH, _ARSH):
        if alu64:
            const = tnum_is_const(src.var_off) and src.smin == src.smax and src.umin == src.umax
        else:
            const = (
                tnum_subreg_is_const(src.var_off)
                and src.s32_min == src.s32_max
                and src.u32_min == src.u32_max
            )
        return const and src.umax < (64 if alu64 else 32)
    return False


def adjust_scalar_min_max_vals(dst: Scalar, src: Scalar, opcode: int, alu32: bool) -> Scalar:
    """``adjust_scalar_min_max_vals``: the scalar result of ``dst = dst <op> src``.

    ``opcode`` is ``BPF_OP(code)`` (an :class:`~pyebpf.isa.opcodes.AluOp`),
    ``alu32`` true for the BPF_ALU class. For BPF_K the caller passes
    ``mark_reg_known(imm)`` with ``imm`` sign-extended (as the kernel's
    ``__mark_reg_known(&off_reg, insn->imm)``); for BPF_NEG ``src`` is ``dst``.
    Unsupported operations (and unsafe shifts) give :data:`SCALAR_UNKNOWN`.
    The kernel also clears or sets ``id`` around this; that is the caller's.
    """
    if not is_safe_to_compute_dst_reg_range(opcode, not alu32, src):
        return SCALAR_UNKNOWN
    d = _Reg(dst)
    if opcode == _ADD:
        _scalar32_min_max_add(d, src)
        _scalar_min_max_add(d, src)
        d.var_off = tnum_add(d.var_off, src.var_off)
    elif opcode == _SUB:
        _scalar32_min_max_sub(d, src)
        _scalar_min_max_sub(d, src)
        d.var_off = tnum_sub(d.var_off, src.var_off)
    elif opcode == _NEG:
        # dst = 0 - dst, computed as a subtraction from a known 0
        _mark_reg_known(d, 0)
        _scalar32_min_max_sub(d, dst)
        _scalar_min_max_sub(d, dst)
        d.var_off = tnum_neg(dst.var_off)
    elif opcode == _MUL:
        d.var_off = tnum_mul(d.var_off, src.var_off)
        _scalar32_min_max_mul(d, src)
        _scalar_min_max_mul(d, src)
    elif opcode == _AND:
        d.var_off = tnum_and(d.var_off, src.var_off)
        _scalar32_min_max_and(d, src)
        _scalar_min_max_and(d, src)
    elif opcode == _OR:
        d.var_off = tnum_or(d.var_off, src.var_off)
        _scalar32_min_max_or(d, src)
        _scalar_min_max_or(d, src)
    elif opcode == _XOR:
        d.var_off = tnum_xor(d.var_off, src.var_off)
        _scalar32_min_max_xor(d, src)
        _scalar_min_max_xor(d, src)
    elif opcode == _LSH:
        if alu32:
            _scalar32_min_max_lsh(d, src)
        else:
            _scalar_min_max_lsh(d, src)
    elif opcode == _RSH:
        if alu32:
            _scalar32_min_max_rsh(d, src)
        else:
            _scalar_min_max_rsh(d, src)
    elif opcode == _ARSH:
        if alu32:
            _scalar32_min_max_arsh(d, src)
        else:
            _scalar_min_max_arsh(d, src)
    if alu32:
        _zext_32_to_64(d)
    _reg_bounds_sync(d)
    return d.freeze()


# ---------------------------------------------------------------------------
# Conditional jumps: prediction and refinement


def is_reg_const(s: Scalar, subreg32: bool) -> bool:
    """``is_reg_const`` for a scalar: is its (32-bit) value known?"""
    return not (s.var_off.mask & U32_MAX if subreg32 else s.var_off.mask)


def reg_const_value(s: Scalar, subreg32: bool) -> int:
    """``reg_const_value``: the known value (low 32 bits for ``subreg32``)."""
    return s.var_off.value & U32_MAX if subreg32 else s.var_off.value


def is_scalar_branch_taken(r1: Scalar, r2: Scalar, opcode: int, is_jmp32: bool) -> int:
    """``is_scalar_branch_taken``: will ``if (r1 <op> r2)`` jump? 1 yes, 0 no, -1 unknown.

    ``opcode`` is ``BPF_OP(code)`` (a :class:`~pyebpf.isa.opcodes.JmpOp`). The
    6.18 version: JEQ/JNE also decide by disagreeing known tnum bits.
    """
    if is_jmp32:
        t1, t2 = tnum_subreg(r1.var_off), tnum_subreg(r2.var_off)
        umin1, umax1, smin1, smax1 = r1.u32_min, r1.u32_max, r1.s32_min, r1.s32_max
        umin2, umax2, smin2, smax2 = r2.u32_min, r2.u32_max, r2.s32_min, r2.s32_max
    else:
        t1, t2 = r1.var_off, r2.var_off
        umin1, umax1, smin1, smax1 = r1.umin, r1.umax, r1.smin, r1.smax
        umin2, umax2, smin2, smax2 = r2.umin, r2.umax, r2.smin, r2.smax

    if opcode in (_JEQ, _JNE):
        # answer for "they differ": 0 for JEQ, 1 for JNE
        differ = 1 if opcode == _JNE else 0
        if not t1.mask and not t2.mask:
            return int(t1.value == t2.value) ^ differ
        if not tnum_overlap(t1, t2):
            return differ
        if umin1 > umax2 or umax1 < umin2:
            return differ
        if smin1 > smax2 or smax1 < smin2:
            return differ
        if not is_jmp32:
            # 64-bit ranges inconclusive: the 32-bit subranges may still be disjoint
            if r1.u32_min > r2.u32_max or r1.u32_max < r2.u32_min:
                return differ
            if r1.s32_min > r2.s32_max or r1.s32_max < r2.s32_min:
                return differ
        return -1
    if opcode == _JSET:
        if not is_reg_const(r2, is_jmp32):
            r1, r2 = r2, r1
            t1, t2 = t2, t1
        if not is_reg_const(r2, is_jmp32):
            return -1
        if (~t1.mask & t1.value) & t2.value:
            return 1
        if not ((t1.mask | t1.value) & t2.value):
            return 0
        return -1
    if opcode == _JGT:
        if umin1 > umax2:
            return 1
        if umax1 <= umin2:
            return 0
    elif opcode == _JSGT:
        if smin1 > smax2:
            return 1
        if smax1 <= smin2:
            return 0
    elif opcode == _JLT:
        if umax1 < umin2:
            return 1
        if umin1 >= umax2:
            return 0
    elif opcode == _JSLT:
        if smax1 < smin2:
            return 1
        if smin1 >= smax2:
            return 0
    elif opcode == _JGE:
        if umin1 >= umax2:
            return 1
        if umax1 < umin2:
            return 0
    elif opcode == _JSGE:
        if smin1 >= smax2:
            return 1
        if smax1 < smin2:
            return 0
    elif opcode == _JLE:
        if umax1 <= umin2:
            return 1
        if umin1 > umax2:
            return 0
    elif opcode == _JSLE:
        if smax1 <= smin2:
            return 1
        if smin1 > smax2:
            return 0
    return -1


_FLIP = {
    _JEQ: _JEQ, _JNE: _JNE, _JSET: _JSET,
    _JGE: _JLE, _JGT: _JLT, _JLE: _JGE, _JLT: _JGT,
    _JSGE: _JSLE, _JSGT: _JSLT, _JSLE: _JSGE, _JSLT: _JSGT,
}  # fmt: skip


def flip_opcode(opcode: int) -> int:
    """``flip_opcode``: the op for ``b <op'> a`` equivalent to ``a <op> b``.

    Looked up by ``opcode >> 4`` like the kernel's table, so ``JSET | X``
    gives JSET and ops without an entry give 0.
    """
    return _FLIP.get(opcode & 0xF0, 0)


_REV = {
    _JEQ: _JNE, _JNE: _JEQ, _JSET: _JSET_REV, _JSET_REV: _JSET,
    _JGE: _JLT, _JGT: _JLE, _JLE: _JGT, _JLT: _JGE,
    _JSGE: _JSLT, _JSGT: _JSLE, _JSLE: _JSGT, _JSLT: _JSGE,
}  # fmt: skip


def rev_opcode(opcode: int) -> int:
    """``rev_opcode``: the condition of the fall-through branch (JSET -> JSET|X)."""
    return _REV.get(opcode, 0)


def _is_const(r: _Reg, subreg32: bool) -> bool:
    return not (r.var_off.mask & U32_MAX if subreg32 else r.var_off.mask)


def _regs_refine_cond_op(r1: _Reg, r2: _Reg, opcode: int, is_jmp32: bool) -> None:
    # GE/GT/SGE/SGT reuse the LE/LT/SLE/SLT logic with the operands swapped
    if opcode in (_JGE, _JGT, _JSGE, _JSGT):
        opcode = _FLIP[opcode]
        r1, r2 = r2, r1

    if opcode == _JEQ:
        if is_jmp32:
            r1.u32_min = max(r1.u32_min, r2.u32_min)
            r1.u32_max = min(r1.u32_max, r2.u32_max)
            r1.s32_min = max(r1.s32_min, r2.s32_min)
            r1.s32_max = min(r1.s32_max, r2.s32_max)
            r2.u32_min, r2.u32_max = r1.u32_min, r1.u32_max
            r2.s32_min, r2.s32_max = r1.s32_min, r1.s32_max
            t = tnum_intersect(tnum_subreg(r1.var_off), tnum_subreg(r2.var_off))
            r1.var_off = tnum_with_subreg(r1.var_off, t)
            r2.var_off = tnum_with_subreg(r2.var_off, t)
        else:
            r1.umin = max(r1.umin, r2.umin)
            r1.umax = min(r1.umax, r2.umax)
            r1.smin = max(r1.smin, r2.smin)
            r1.smax = min(r1.smax, r2.smax)
            r2.umin, r2.umax = r1.umin, r1.umax
            r2.smin, r2.smax = r1.smin, r1.smax
            r1.var_off = tnum_intersect(r1.var_off, r2.var_off)
            r2.var_off = r1.var_off
    elif opcode == _JNE:
        if not _is_const(r2, is_jmp32):
            r1, r2 = r2, r1
        if not _is_const(r2, is_jmp32):
            return
        # a constant at an edge of r1's range moves that edge by one
        val = r2.var_off.value
        if is_jmp32:
            if r1.u32_min == val & U32_MAX:
                r1.u32_min = (r1.u32_min + 1) & U32_MAX
            if r1.u32_max == val & U32_MAX:
                r1.u32_max = (r1.u32_max - 1) & U32_MAX
            if r1.s32_min == s32(val):
                r1.s32_min = s32(r1.s32_min + 1)
            if r1.s32_max == s32(val):
                r1.s32_max = s32(r1.s32_max - 1)
        else:
            if r1.umin == val:
                r1.umin = (r1.umin + 1) & _M
            if r1.umax == val:
                r1.umax = (r1.umax - 1) & _M
            if r1.smin == s64(val):
                r1.smin = s64(r1.smin + 1)
            if r1.smax == s64(val):
                r1.smax = s64(r1.smax - 1)
    elif opcode == _JSET:
        if not _is_const(r2, is_jmp32):
            r1, r2 = r2, r1
        if not _is_const(r2, is_jmp32):
            return
        val = r2.var_off.value & U32_MAX if is_jmp32 else r2.var_off.value
        # only a single tested bit tells which bit is set
        if not val or val & (val - 1):
            return
        if is_jmp32:
            t = tnum_or(tnum_subreg(r1.var_off), tnum_const(val))
            r1.var_off = tnum_with_subreg(r1.var_off, t)
        else:
            r1.var_off = tnum_or(r1.var_off, tnum_const(val))
    elif opcode == _JSET_REV:
        if not _is_const(r2, is_jmp32):
            r1, r2 = r2, r1
        if not _is_const(r2, is_jmp32):
            return
        val = r2.var_off.value & U32_MAX if is_jmp32 else r2.var_off.value
        # forget the ranges before narrowing the tnum (dead branches stay consistent)
        _mark_reg_unbounded(r1)
        if is_jmp32:
            t = tnum_and(tnum_subreg(r1.var_off), tnum_const(~val))
            r1.var_off = tnum_with_subreg(r1.var_off, t)
        else:
            r1.var_off = tnum_and(r1.var_off, tnum_const(~val))
    elif opcode == _JLE:
        if is_jmp32:
            r1.u32_max = min(r1.u32_max, r2.u32_max)
            r2.u32_min = max(r1.u32_min, r2.u32_min)
        else:
            r1.umax = min(r1.umax, r2.umax)
            r2.umin = max(r1.umin, r2.umin)
    elif opcode == _JLT:
        if is_jmp32:
            r1.u32_max = min(r1.u32_max, (r2.u32_max - 1) & U32_MAX)
            r2.u32_min = max((r1.u32_min + 1) & U32_MAX, r2.u32_min)
        else:
            r1.umax = min(r1.umax, (r2.umax - 1) & _M)
            r2.umin = max((r1.umin + 1) & _M, r2.umin)
    elif opcode == _JSLE:
        if is_jmp32:
            r1.s32_max = min(r1.s32_max, r2.s32_max)
            r2.s32_min = max(r1.s32_min, r2.s32_min)
        else:
            r1.smax = min(r1.smax, r2.smax)
            r2.smin = max(r1.smin, r2.smin)
    elif opcode == _JSLT:
        if is_jmp32:
            r1.s32_max = min(r1.s32_max, s32(r2.s32_max - 1))
            r2.s32_min = max(s32(r1.s32_min + 1), r2.s32_min)
        else:
            r1.smax = min(r1.smax, s64(r2.smax - 1))
            r2.smin = max(s64(r1.smin + 1), r2.smin)


def regs_refine_cond_op(
    r1: Scalar, r2: Scalar, opcode: int, is_jmp32: bool, *, same_reg: bool = False
) -> tuple[Scalar, Scalar]:
    """``regs_refine_cond_op``: narrow ``r1`` and ``r2`` assuming ``r1 <op> r2`` holds.

    ``opcode`` may also be :data:`JSET_REV` ("not JSET"). No bounds sync (see
    :func:`reg_set_min_max`). With ``same_reg`` (``if rX <op> rX``) both are
    one register, updated through both roles as in the kernel.
    """
    a = _Reg(r1)
    b = a if same_reg else _Reg(r2)
    _regs_refine_cond_op(a, b, opcode, is_jmp32)
    fa = a.freeze()
    return fa, (fa if same_reg else b.freeze())


def reg_set_min_max(
    dst: Scalar, src: Scalar, opcode: int, is_jmp32: bool, *, same_reg: bool = False
) -> tuple[tuple[Scalar, Scalar], tuple[Scalar, Scalar]]:
    """``reg_set_min_max`` for two scalars: their states in each successor.

    Returns ``((true_dst, true_src), (false_dst, false_src))``: the jump
    branch refined by ``opcode``, the fall-through by ``rev_opcode(opcode)``,
    each followed by ``reg_bounds_sync`` of both registers. For BPF_K pass
    ``mark_reg_known(imm)`` (imm sign-extended) as ``src``. The kernel then
    runs :func:`reg_bounds_sanity_check` on all four.
    """
    out = []
    for op in (opcode, rev_opcode(opcode)):
        a = _Reg(dst)
        b = a if same_reg else _Reg(src)
        _regs_refine_cond_op(a, b, op, is_jmp32)
        _reg_bounds_sync(a)
        _reg_bounds_sync(b)
        fa = a.freeze()
        out.append((fa, fa if same_reg else b.freeze()))
    return out[0], out[1]


# ---------------------------------------------------------------------------
# Log format (kernel/bpf/log.c: print_scalar_ranges, print_reg_state)


def _unum(v: int) -> str:
    # verbose_unum: decimal up to U16_MAX, else %#llx
    return str(v) if v <= 0xFFFF else f"{v:#x}"


def _snum(v: int) -> str:
    # verbose_snum: decimal in [S16_MIN, S16_MAX], else %#llx of the 64-bit pattern
    return str(v) if -0x8000 <= v <= 0x7FFF else f"{v & _M:#x}"


_NAMES = ("smin", "smax", "umin", "umax", "smin32", "smax32", "umin32", "umax32")


def format_scalar_ranges(s: Scalar) -> list[str]:
    """``print_scalar_ranges``: the non-default bounds, equal ones merged.

    Returns the comma-separated items, e.g. ``["smin=smin32=0",
    "smax=umax=smax32=umax32=1"]``. A bound at its type's extreme is
    omitted; a later bound of the same kind (min or max) with the same value
    and sign joins the first one's item. 32-bit signed bounds that print in
    hex print as u32 (no sign extension), as the kernel does.
    """
    smin32 = s.s32_min if -0x8000 <= s.s32_min <= 0x7FFF else s.s32_min & U32_MAX
    smax32 = s.s32_max if -0x8000 <= s.s32_max <= 0x7FFF else s.s32_max & U32_MAX
    vals = (s.smin, s.smax, s.umin, s.umax, smin32, smax32, s.u32_min, s.u32_max)
    omit = [
        s.smin == S64_MIN,
        s.smax == S64_MAX,
        s.umin == 0,
        s.umax == _M,
        s.s32_min == S32_MIN,
        s.s32_max == S32_MAX,
        s.u32_min == 0,
        s.u32_max == U32_MAX,
    ]
    items = []
    for i in range(8):
        if omit[i]:
            continue
        v1 = vals[i] & _M
        neg1 = i in (0, 1, 4, 5) and vals[i] < 0
        names = [_NAMES[i]]
        for j in range(i + 2, 8, 2):
            if omit[j] or (vals[j] & _M) != v1:
                continue
            if (j in (4, 5) and vals[j] < 0) != neg1:  # don't mix negatives with positives
                continue
            omit[j] = True
            names.append(_NAMES[j])
        text = _snum(s64(v1)) if i in (0, 1, 4, 5) else _unum(v1)
        items.append("=".join(names) + "=" + text)
    return items


def format_scalar(s: Scalar, *, id: int = 0, off: int = 0, precise: bool = False) -> str:
    """The kernel's ``print_reg_state`` text for a SCALAR_VALUE register.

    A known constant prints as a bare number (``1``, ``-5``,
    ``0xffffffffcafe4a11``); otherwise ``scalar(...)`` with ``id=``, the
    ranges and ``var_off`` (omitted when unknown). ``precise`` prefixes ``P``.
    ``id`` may carry :data:`BPF_ADD_CONST`, in which case ``off`` follows it
    as ``%+d`` (``id=3+4``).
    """
    head = "P" if precise else ""
    if not s.var_off.mask:
        return head + _snum(s64(s.var_off.value))
    items = []
    if id:
        item = f"id={id & ~BPF_ADD_CONST}"
        if id & BPF_ADD_CONST:
            item += f"{off:+d}"
        items.append(item)
    items.extend(format_scalar_ranges(s))
    if not tnum_is_unknown(s.var_off):
        items.append(f"var_off=({s.var_off.value:#x}; {s.var_off.mask:#x})")
    return head + "scalar(" + ",".join(items) + ")"


@attrs.frozen
class ParsedScalar:
    """A scalar register state read back from a verifier log."""

    scalar: Scalar
    id: int = 0
    off: int = 0
    precise: bool = False


_NUM = r"(?:-?\d+|0x[0-9a-f]+)"
_CONST_RE = re.compile(rf"(P?)({_NUM})")
_SCALAR_RE = re.compile(r"(P?)scalar\(([^()]*(?:\([^()]*\))?[^()]*)\)")
_VAR_OFF_RE = re.compile(r"^var_off=\((0x[0-9a-f]+); (0x[0-9a-f]+)\)$")
_ID_RE = re.compile(r"^id=(\d+)([+-]\d+)?$")


def _num(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def parse_scalar(text: str) -> ParsedScalar:
    """Read a scalar state as :func:`format_scalar` (and the kernel) writes it.

    Accepts ``P``-prefixed, constant (``-5``, ``0x100000000``) and
    ``scalar(...)`` forms; omitted bounds take their unbounded defaults.
    Raises ValueError on anything else.
    """
    m = _CONST_RE.fullmatch(text)
    if m:
        return ParsedScalar(mark_reg_known(_num(m.group(2))), precise=bool(m.group(1)))
    m = _SCALAR_RE.fullmatch(text)
    if not m:
        raise ValueError(f"not a scalar state: {text!r}")
    vals: dict[str, int] = {}
    var_off = TNUM_UNKNOWN
    reg_id = off = 0
    body = m.group(2)
    for item in body.split(",") if body else ():
        if item.startswith("var_off="):
            vm = _VAR_OFF_RE.match(item)
            if not vm:
                raise ValueError(f"bad var_off in {text!r}")
            var_off = Tnum(int(vm.group(1), 16), int(vm.group(2), 16))
            continue
        if item.startswith("id="):
            im = _ID_RE.match(item)
            if not im:
                raise ValueError(f"bad id in {text!r}")
            reg_id = int(im.group(1))
            if im.group(2):
                reg_id |= BPF_ADD_CONST
                off = int(im.group(2))
            continue
        *names, value = item.split("=")
        if not names or not re.fullmatch(_NUM, value):
            raise ValueError(f"bad bound {item!r} in {text!r}")
        v = _num(value)
        for name in names:
            if name not in _NAMES or name in vals:
                raise ValueError(f"bad bound name {name!r} in {text!r}")
            vals[name] = v
    smin32 = vals.get("smin32", S32_MIN)
    smax32 = vals.get("smax32", S32_MAX)
    scalar = Scalar(
        var_off,
        s64(vals.get("smin", S64_MIN)),
        s64(vals.get("smax", S64_MAX)),
        vals.get("umin", 0),
        vals.get("umax", _M),
        s32(smin32) if smin32 >= 0 else smin32,
        s32(smax32) if smax32 >= 0 else smax32,
        vals.get("umin32", 0),
        vals.get("umax32", U32_MAX),
    )
    return ParsedScalar(scalar, reg_id, off, bool(m.group(1)))
