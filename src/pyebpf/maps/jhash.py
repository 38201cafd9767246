"""Bob Jenkins' lookup3 hash as include/linux/jhash.h has it.

Hash maps place a key in bucket ``jhash(key) & (n_buckets - 1)`` and
``get_next_key`` walks buckets in index order, so computing the kernel's hash
is what makes iteration order match the kernel's (exactly so when the map was
created with BPF_F_ZERO_SEED, whose seed is 0).
"""

from __future__ import annotations

__all__ = ["JHASH_INITVAL", "jhash", "jhash2", "htab_map_hash"]

JHASH_INITVAL = 0xDEADBEEF
_M = 0xFFFF_FFFF


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _M; a ^= _rol(c, 4); c = (c + b) & _M  # noqa: E702
    b = (b - a) & _M; b ^= _rol(a, 6); a = (a + c) & _M  # noqa: E702
    c = (c - b) & _M; c ^= _rol(b, 8); b = (b + a) & _M  # noqa: E702
    a = (a - c) & _M; a ^= _rol(c, 16); c = (c + b) & _M  # noqa: E702
    b = (b - a) & _M; b ^= _rol(a, 19); a = (a + c) & _M  # noqa: E702
    c = (c - b) & _M; c ^= _rol(b, 4); b = (b + a) & _M  # noqa: E702
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c ^= b; c = (c - _rol(b, 14)) & _M  # noqa: E702
    a ^= c; a = (a - _rol(c, 11)) & _M  # noqa: E702
    b ^= a; b = (b - _rol(a, 25)) & _M  # noqa: E702
    c ^= b; c = (c - _rol(b, 16)) & _M  # noqa: E702
    a ^= c; a = (a - _rol(c, 4)) & _M  # noqa: E702
    b ^= a; b = (b - _rol(a, 14)) & _M  # noqa: E702
    c ^= b; c = (c - _rol(b, 24)) & _M  # noqa: E702
    return c


def jhash(key: bytes, initval: int) -> int:
    """jhash() over arbitrary bytes (little-endian words, as on x86)."""
    length = len(key)
    a = b = c = (JHASH_INITVAL + length + initval) & _M
    k = 0
    while length > 12:
        a = (a + int.from_bytes(key[k:k + 4], "little")) & _M
        b = (b + int.from_bytes(key[k + 4:k + 8], "little")) & _M
        c = (c + int.from_bytes(key[k + 8:k + 12], "little")) & _M
        a, b, c = _mix(a, b, c)
        length -= 12
        k += 12
    if length == 0:
        return c
    # The tail: up to 12 bytes, added byte by byte into a, b, c.
    tail = key[k:k + length]
    words = [0, 0, 0]
    for i, byte in enumerate(tail):
        words[i // 4] += byte << (8 * (i % 4))
    a = (a + words[0]) & _M
    b = (b + words[1]) & _M
    c = (c + words[2]) & _M
    return _final(a, b, c)


def jhash2(words: list[int], initval: int) -> int:
    """jhash2() over 32-bit words."""
    length = len(words)
    a = b = c = (JHASH_INITVAL + (length << 2) + initval) & _M
    k = 0
    while length > 3:
        a = (a + words[k]) & _M
        b = (b + words[k + 1]) & _M
        c = (c + words[k + 2]) & _M
        a, b, c = _mix(a, b, c)
        length -= 3
        k += 3
    if length == 0:
        return c
    if length == 3:
        c = (c + words[k + 2]) & _M
    if length >= 2:
        b = (b + words[k + 1]) & _M
    a = (a + words[k]) & _M
    return _final(a, b, c)


def htab_map_hash(key: bytes, hashrnd: int) -> int:
    """The hash map's hash: jhash2 when the key is whole 32-bit words, else jhash."""
    if len(key) % 4 == 0:
        n = len(key) // 4
        return jhash2([int.from_bytes(key[i * 4:i * 4 + 4], "little") for i in range(n)], hashrnd)
    return jhash(key, hashrnd)
