"""C fixed-width integer helpers for the verifier's abstract domain.

Python ints never overflow, while the kernel's bounds arithmetic is done in
``u64``/``s64``/``u32``/``s32`` C variables that wrap (the kernel is built with
``-fno-strict-overflow``, so signed overflow wraps as two's complement too).
Every value the verifier stores goes through one of these conversions, so that
a result is bit-for-bit what the C code would hold. They are defined once here
and used everywhere; keep them tiny, they are on the hot path.
"""

from __future__ import annotations

__all__ = [
    "S8_MAX",
    "S8_MIN",
    "S16_MAX",
    "S16_MIN",
    "S32_MAX",
    "S32_MIN",
    "S64_MAX",
    "S64_MIN",
    "U32_MAX",
    "U64_MAX",
    "fls64",
    "s8",
    "s16",
    "s32",
    "s64",
    "u32",
    "u64",
]

U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
U32_MAX = 0xFFFF_FFFF
S64_MAX = 0x7FFF_FFFF_FFFF_FFFF
S64_MIN = -0x8000_0000_0000_0000
S32_MAX = 0x7FFF_FFFF
S32_MIN = -0x8000_0000
S16_MAX = 0x7FFF
S16_MIN = -0x8000
S8_MAX = 0x7F
S8_MIN = -0x80


def u64(x: int) -> int:
    """``(u64)x``: keep the low 64 bits."""
    return x & 0xFFFF_FFFF_FFFF_FFFF


def u32(x: int) -> int:
    """``(u32)x``: keep the low 32 bits."""
    return x & 0xFFFF_FFFF


def s64(x: int) -> int:
    """``(s64)x``: the low 64 bits read as two's complement."""
    x &= 0xFFFF_FFFF_FFFF_FFFF
    return x - 0x1_0000_0000_0000_0000 if x & 0x8000_0000_0000_0000 else x


def s32(x: int) -> int:
    """``(s32)x``: the low 32 bits read as two's complement."""
    x &= 0xFFFF_FFFF
    return x - 0x1_0000_0000 if x & 0x8000_0000 else x


def s16(x: int) -> int:
    """``(s16)x``: the low 16 bits read as two's complement."""
    x &= 0xFFFF
    return x - 0x1_0000 if x & 0x8000 else x


def s8(x: int) -> int:
    """``(s8)x``: the low 8 bits read as two's complement."""
    x &= 0xFF
    return x - 0x100 if x & 0x80 else x


def fls64(x: int) -> int:
    """The kernel's ``fls64``: 1-based index of the highest set bit, 0 for 0."""
    return (x & 0xFFFF_FFFF_FFFF_FFFF).bit_length()
