"""Reference semantics of every ALU operation, as small pure functions.

The interpreter inlines these same formulas into its generated handlers for
speed (see :mod:`pyebpf.engine.interpreter`); these functions are the readable
statement of the kernel's semantics, used by the tests as the model and by
slow paths. All values are unsigned integers (u64, or u32 for 32-bit ops).
"""

from __future__ import annotations

__all__ = [
    "M32",
    "M64",
    "bswap",
    "s32",
    "s64",
    "sdiv",
    "sext",
    "smod",
]

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def sext(value: int, bits: int) -> int:
    """The low ``bits`` of ``value`` read as a signed integer."""
    sign = 1 << (bits - 1)
    return ((value & ((1 << bits) - 1)) ^ sign) - sign


def s64(value: int) -> int:
    return sext(value, 64)


def s32(value: int) -> int:
    return sext(value, 32)


def sdiv(a: int, b: int, bits: int) -> int:
    """Signed division truncating toward zero; by zero gives 0; INT_MIN / -1 wraps."""
    mask = (1 << bits) - 1
    sa, sb = sext(a, bits), sext(b, bits)
    if sb == 0:
        return 0
    q = abs(sa) // abs(sb)
    return (-q if (sa < 0) != (sb < 0) else q) & mask


def smod(a: int, b: int, bits: int) -> int:
    """Signed remainder with the dividend's sign; by zero keeps the dividend."""
    mask = (1 << bits) - 1
    sa, sb = sext(a, bits), sext(b, bits)
    if sb == 0:
        return a & mask
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & mask


def bswap(value: int, bits: int) -> int:
    """Reverse the bytes of the low ``bits`` of ``value`` (zero-extended result)."""
    n = bits // 8
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(n, "little"), "big")
