"""Tracked numbers ("tnums"): the verifier's knowledge of the bits of a value.

A :class:`Tnum` is a pair ``(value, mask)`` of 64-bit words. A bit set in
``mask`` is unknown; every other bit is known and equal to the same bit of
``value`` (``value & mask`` is always 0). The set of concrete numbers a tnum
stands for is ``{value | s : s a submask of mask}``.

This module is the behaviour of Linux 6.18's ``kernel/bpf/tnum.c`` (and the
inline helpers of ``include/linux/tnum.h``), operation for operation, with the
same names, so that the verifier reaches the very same tnums as the kernel and
prints the same ``var_off``. 6.18 specifics: ``tnum_arshift`` takes the
instruction's bitness, ``tnum_neg`` exists (BPF_NEG range tracking),
``tnum_mul`` is the long multiplication that takes a :func:`tnum_union` of the
two partial products when a multiplier bit is unknown, and ``tnum_overlap``
serves JEQ/JNE branch prediction. (``tnum_step`` and the ``tnum_bswap*``
functions came after 6.18 and are deliberately absent.)

Every function masks its results to 64 bits, because Python ints don't wrap.
"""

from __future__ import annotations

import attrs

from ._ints import U32_MAX, U64_MAX, fls64

__all__ = [
    "TNUM_UNKNOWN",
    "Tnum",
    "tnum_add",
    "tnum_and",
    "tnum_arshift",
    "tnum_cast",
    "tnum_clear_subreg",
    "tnum_const",
    "tnum_const_subreg",
    "tnum_equals_const",
    "tnum_in",
    "tnum_intersect",
    "tnum_is_aligned",
    "tnum_is_const",
    "tnum_is_unknown",
    "tnum_lshift",
    "tnum_mul",
    "tnum_neg",
    "tnum_or",
    "tnum_overlap",
    "tnum_range",
    "tnum_rshift",
    "tnum_sbin",
    "tnum_strn",
    "tnum_sub",
    "tnum_subreg",
    "tnum_subreg_is_const",
    "tnum_union",
    "tnum_with_subreg",
    "tnum_xor",
]

_M = U64_MAX


@attrs.frozen(cache_hash=True)
class Tnum:
    """``struct tnum``: 64-bit ``value`` and ``mask`` (a set bit of mask is unknown).

    Frozen and slotted: tnums are small values shared freely between register
    states of different branches, exactly like the C struct passed by value.
    """

    value: int
    mask: int

    def __str__(self) -> str:
        # The "(%#llx; %#llx)" of the verifier log; the kernel's printf writes 0 as 0x0.
        return f"({self.value:#x}; {self.mask:#x})"

    def contains(self, x: int) -> bool:
        """True if the concrete 64-bit number ``x`` is one of this tnum's members."""
        return (x & _M & ~self.mask) == self.value


#: ``tnum_unknown``: nothing is known about any bit.
TNUM_UNKNOWN = Tnum(0, _M)


def tnum_const(value: int) -> Tnum:
    """A fully known number (``value`` is taken as a u64)."""
    return Tnum(value & _M, 0)


def tnum_range(min_: int, max_: int) -> Tnum:
    """A tnum covering every number in ``[min_, max_]`` (and possibly more).

    The bits above the highest bit where ``min_`` and ``max_`` differ are known;
    everything below is unknown. E.g. ``tnum_range(0, 2)`` also contains 3.
    """
    min_ &= _M
    chi = min_ ^ (max_ & _M)
    bits = fls64(chi)
    if bits > 63:
        return TNUM_UNKNOWN
    delta = (1 << bits) - 1
    return Tnum(min_ & ~delta, delta)


def tnum_lshift(a: Tnum, shift: int) -> Tnum:
    """``a << shift`` (new low bits known 0; bits shifted out of 64 are lost)."""
    return Tnum((a.value << shift) & _M, (a.mask << shift) & _M)


def tnum_rshift(a: Tnum, shift: int) -> Tnum:
    """Logical ``a >> shift`` (new high bits known 0)."""
    return Tnum(a.value >> shift, a.mask >> shift)


def tnum_arshift(a: Tnum, min_shift: int, insn_bitness: int) -> Tnum:
    """Arithmetic ``a >> min_shift`` on the instruction's width (32 or 64).

    Value and mask are each shifted as signed numbers: an unknown sign bit
    spreads as unknown bits, a known one as known bits. With ``insn_bitness``
    32 the low word is shifted as an s32 and the result zero-extended.
    """
    if insn_bitness == 32:
        v = a.value & U32_MAX
        m = a.mask & U32_MAX
        if v & 0x8000_0000:
            v -= 0x1_0000_0000
        if m & 0x8000_0000:
            m -= 0x1_0000_0000
        return Tnum((v >> min_shift) & U32_MAX, (m >> min_shift) & U32_MAX)
    v = a.value
    m = a.mask
    if v & 0x8000_0000_0000_0000:
        v -= 0x1_0000_0000_0000_0000
    if m & 0x8000_0000_0000_0000:
        m -= 0x1_0000_0000_0000_0000
    return Tnum((v >> min_shift) & _M, (m >> min_shift) & _M)


def _add(av: int, am: int, bv: int, bm: int) -> tuple[int, int]:
    sm = am + bm
    sv = (av + bv) & _M
    sigma = (sm + sv) & _M
    chi = sigma ^ sv
    mu = chi | am | bm
    return sv & ~mu & _M, mu


def tnum_add(a: Tnum, b: Tnum) -> Tnum:
    """``a + b``: a carry that may differ between members makes its bits unknown."""
    v, m = _add(a.value, a.mask, b.value, b.mask)
    return Tnum(v, m)


def tnum_sub(a: Tnum, b: Tnum) -> Tnum:
    """``a - b``, by the same borrow reasoning as :func:`tnum_add`."""
    dv = (a.value - b.value) & _M
    alpha = (dv + a.mask) & _M
    beta = (dv - b.mask) & _M
    chi = alpha ^ beta
    mu = chi | a.mask | b.mask
    return Tnum(dv & ~mu & _M, mu)


def tnum_neg(a: Tnum) -> Tnum:
    """``-a``, i.e. ``0 - a`` (added in 6.17 for BPF_NEG range tracking)."""
    return tnum_sub(Tnum(0, 0), a)


def tnum_and(a: Tnum, b: Tnum) -> Tnum:
    """``a & b``: known 1 only where both are known 1, unknown where either may be 1."""
    alpha = a.value | a.mask
    beta = b.value | b.mask
    v = a.value & b.value
    return Tnum(v, alpha & beta & ~v & _M)


def tnum_or(a: Tnum, b: Tnum) -> Tnum:
    """``a | b``."""
    v = a.value | b.value
    mu = a.mask | b.mask
    return Tnum(v, mu & ~v & _M)


def tnum_xor(a: Tnum, b: Tnum) -> Tnum:
    """``a ^ b``: every bit unknown in either operand is unknown."""
    v = a.value ^ b.value
    mu = a.mask | b.mask
    return Tnum(v & ~mu & _M, mu)


def tnum_mul(a: Tnum, b: Tnum) -> Tnum:
    """``a * b`` by long multiplication over the bits of ``a`` (6.18 algorithm).

    For each bit of ``a`` from the lowest: a known 1 adds ``b`` (shifted) to
    the accumulator; an unknown bit replaces the accumulator by the union of
    "not added" and "added"; a known 0 adds nothing.
    """
    av, am = a.value, a.mask
    bv, bm = b.value, b.mask
    accv = accm = 0
    while av or am:
        if av & 1:
            accv, accm = _add(accv, accm, bv, bm)
        elif am & 1:
            sv, sm = _add(accv, accm, bv, bm)
            # tnum_union(acc, acc + b); acc is never tnum_bottom here
            mu = (accv ^ sv) | accm | sm
            accv, accm = accv & sv & ~mu & _M, mu
        av >>= 1
        am >>= 1
        bv = (bv << 1) & _M
        bm = (bm << 1) & _M
    return Tnum(accv, accm)


def tnum_overlap(a: Tnum, b: Tnum) -> bool:
    """True if ``a`` and ``b`` agree on the bits both know (they may share a member)."""
    mu = ~a.mask & ~b.mask & _M
    return (a.value & mu) == (b.value & mu)


def tnum_intersect(a: Tnum, b: Tnum) -> Tnum:
    """Numbers satisfying both ``a`` and ``b``.

    Where the two disagree (known 1 against known 0) the result says known 1,
    as the kernel's does; callers only intersect compatible knowledge.
    """
    v = a.value | b.value
    mu = a.mask & b.mask
    return Tnum(v & ~mu & _M, mu)


def tnum_union(a: Tnum, b: Tnum) -> Tnum:
    """Smallest tnum containing every member of ``a`` and of ``b``."""
    v = a.value & b.value
    mu = (a.value ^ b.value) | a.mask | b.mask
    return Tnum(v & ~mu & _M, mu)


def tnum_cast(a: Tnum, size: int) -> Tnum:
    """``a`` with all but its lowest ``size`` bytes cleared (known 0)."""
    m = (1 << (size * 8)) - 1
    return Tnum(a.value & m, a.mask & m)


def tnum_is_aligned(a: Tnum, size: int) -> bool:
    """True if every member of ``a`` is a multiple of ``size`` (a power of two)."""
    if not size:
        return True
    return not ((a.value | a.mask) & (size - 1))


def tnum_in(a: Tnum, b: Tnum) -> bool:
    """True if ``b`` is a subset of ``a`` (mind that tnum_range over-approximates)."""
    if b.mask & ~a.mask:
        return False
    return a.value == (b.value & ~a.mask)


def tnum_is_const(a: Tnum) -> bool:
    """True if every bit of ``a`` is known."""
    return not a.mask


def tnum_equals_const(a: Tnum, b: int) -> bool:
    """True if ``a`` is exactly the constant ``b``."""
    return not a.mask and a.value == (b & _M)


def tnum_is_unknown(a: Tnum) -> bool:
    """True if no bit of ``a`` is known."""
    return a.mask == _M


def tnum_subreg(a: Tnum) -> Tnum:
    """The low 32 bits of ``a`` (upper bits known 0)."""
    return Tnum(a.value & U32_MAX, a.mask & U32_MAX)


def tnum_clear_subreg(a: Tnum) -> Tnum:
    """``a`` with its low 32 bits known 0."""
    return Tnum(a.value & ~U32_MAX & _M, a.mask & ~U32_MAX & _M)


def tnum_with_subreg(reg: Tnum, subreg: Tnum) -> Tnum:
    """The upper 32 bits of ``reg`` with the lower 32 bits of ``subreg``."""
    return tnum_or(tnum_clear_subreg(reg), tnum_subreg(subreg))


def tnum_const_subreg(a: Tnum, value: int) -> Tnum:
    """``a`` with its low 32 bits set to the known ``(u32)value``."""
    return tnum_with_subreg(a, tnum_const(value & U32_MAX))


def tnum_subreg_is_const(a: Tnum) -> bool:
    """True if the low 32 bits of ``a`` are all known."""
    return not (a.mask & U32_MAX)


def tnum_strn(a: Tnum) -> str:
    """The verifier's text for a tnum in messages (``tnum_strn`` of 6.18's log.c).

    A constant prints as a number (decimal up to 65535, else hex); anything
    else as ``(value; mask)`` in hex.
    """
    if a.mask == 0:
        return str(a.value) if a.value <= 0xFFFF else f"{a.value:#x}"
    return f"({a.value:#x}; {a.mask:#x})"


def tnum_sbin(a: Tnum) -> str:
    """The 64 trits of ``a``, most significant first: ``0``, ``1`` or ``x``."""
    out = []
    for bit in range(63, -1, -1):
        if (a.mask >> bit) & 1:
            out.append("x")
        else:
            out.append("1" if (a.value >> bit) & 1 else "0")
    return "".join(out)
