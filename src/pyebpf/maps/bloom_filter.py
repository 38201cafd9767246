"""Bloom filter maps: BLOOM_FILTER (kernel/bpf/bloom_filter.c).

A keyless map answering "maybe present" or "certainly absent" for values:
push (MAP_UPDATE_ELEM with a NULL key, bpf_map_push_elem) adds a value by
setting ``nr_hash_funcs`` bits, peek (MAP_LOOKUP_ELEM with the value as the
input buffer, bpf_map_peek_elem) tests them all and fails with ENOENT when
one is clear. Nothing is ever removed: pop and delete are EOPNOTSUPP.

Everything that decides which bits are set is the kernel's, so with
BPF_F_ZERO_SEED (seed 0) the answers, false positives included, are the
kernel's exactly: ``map_extra & 0xF`` hash functions (5 when 0), a bitset of
``roundup_pow_of_two(max_entries * nr_hash_funcs / 5 * 7)`` bits (at least 64,
2**32 when that overflows), bit ``jhash(value, seed + i) & mask`` for the i-th
hash (``jhash2`` over 32-bit words when value_size is a multiple of 4).
Without BPF_F_ZERO_SEED the seed comes from the runtime's seeded RNG, so the
set bits differ from the kernel's random ones (only false positives differ).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfError
from ..uapi import BPF_ANY, MapFlags, MapType
from . import register_map
from .base import KMALLOC_MAX_SIZE, BpfMap, map_flags_access_ok, round_up
from .jhash import jhash, jhash2

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["BloomFilterMap", "bloom_bitset_size"]

BLOOM_CREATE_FLAG_MASK = (MapFlags.NUMA_NODE | MapFlags.ZERO_SEED | MapFlags.RDONLY
                          | MapFlags.WRONLY | MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG)
_U32 = 0xFFFF_FFFF
BITS_PER_LONG = 64
#: sizeof(struct bpf_bloom_filter) without the bitset (struct bpf_map is cache-line aligned).
BLOOM_HEADER = 320


def bloom_bitset_size(max_entries: int, nr_hash_funcs: int) -> tuple[int, int]:
    """bloom_map_alloc's sizing: ``(bitset bytes, bitset mask)``."""
    nr_bits = max_entries * nr_hash_funcs
    overflow = nr_bits > _U32
    if not overflow:
        nr_bits = (nr_bits // 5) * 7
        overflow = nr_bits > _U32
    if overflow or nr_bits > 1 << 31:
        # 2**32 bits, with U32_MAX standing in for the count to stay within a u32.
        bitset_bytes = (_U32 + 7) // 8
        bitset_mask = _U32
    else:
        nr_bits = BITS_PER_LONG if nr_bits <= BITS_PER_LONG else 1 << (nr_bits - 1).bit_length()
        bitset_bytes = (nr_bits + 7) // 8
        bitset_mask = nr_bits - 1
    return round_up(bitset_bytes, 8), bitset_mask


@register_map(MapType.BLOOM_FILTER)
class BloomFilterMap(BpfMap):
    """BPF_MAP_TYPE_BLOOM_FILTER."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        """bloom_map_alloc_check."""
        if attr.value_size > KMALLOC_MAX_SIZE:
            raise BpfError(errno.E2BIG, "value_size is too large")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        # bloom_map_alloc's checks (after map_create's permission checks).
        flags = attr.map_flags
        if (attr.key_size != 0 or attr.value_size == 0 or attr.max_entries == 0
                or flags & ~BLOOM_CREATE_FLAG_MASK or not map_flags_access_ok(flags)
                or attr.map_extra & ~0xF):
            raise BpfError(errno.EINVAL, "bloom filters need key_size 0, a value_size, "
                           "max_entries, map_extra < 16 and only NUMA/seed/access flags")
        super().__init__(runtime, attr)
        self.nr_hash_funcs = attr.map_extra or 5
        bitset_bytes, self.bitset_mask = bloom_bitset_size(attr.max_entries, self.nr_hash_funcs)
        try:
            self.charge(BLOOM_HEADER + bitset_bytes)
        except BpfError:
            super().free()
            raise
        self.aligned_u32_count = attr.value_size // 4 if attr.value_size % 4 == 0 else 0
        self.hash_seed = 0 if flags & MapFlags.ZERO_SEED else runtime.random.getrandbits(32)
        #: The set bits (the kernel's bitset, sparse).
        self.bits: set[int] = set()

    def _hash(self, value: bytes, index: int) -> int:
        seed = (self.hash_seed + index) & _U32
        if self.aligned_u32_count:
            words = [int.from_bytes(value[i:i + 4], "little")
                     for i in range(0, self.aligned_u32_count * 4, 4)]
            h = jhash2(words, seed)
        else:
            h = jhash(value, seed)
        return h & self.bitset_mask

    def bit_indices(self, value: bytes) -> list[int]:
        """The bits ``value`` sets, one per hash function."""
        value = bytes(value)
        return [self._hash(value, i) for i in range(self.nr_hash_funcs)]

    # -- push (add) / peek (test) ------------------------------------------------------------
    def push_elem(self, value: bytes, flags: int) -> None:
        """bloom_map_push_elem: add ``value``; only BPF_ANY is a valid flag."""
        if flags != BPF_ANY:
            raise BpfError(errno.EINVAL, f"invalid push flags {flags:#x} (only BPF_ANY)")
        self.bits.update(self.bit_indices(value))

    def syscall_peek_value(self, value: bytes) -> None:
        """bloom_map_peek_elem: return if ``value`` may be present, else ENOENT."""
        for i in range(self.nr_hash_funcs):
            if self._hash(bytes(value), i) not in self.bits:
                raise BpfError(errno.ENOENT, "value not in the bloom filter")

    def peek_elem(self, value: bytes | None = None) -> bytes:  # type: ignore[override]
        """A program's bpf_map_peek_elem: ``value`` is the input (ENOENT when absent)."""
        if value is None:
            raise BpfError(errno.EINVAL, "a bloom filter peek tests a value")
        self.syscall_peek_value(value)
        return bytes(value)

    def pop_elem(self) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, "bloom filters can't pop")

    # -- keyed operations ---------------------------------------------------------------------
    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EINVAL, "bloom filters are tested with peek")

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EINVAL, "bloom filters are added to with push")

    def delete_elem(self, key: bytes | None) -> None:  # type: ignore[override]
        raise BpfError(errno.EOPNOTSUPP, "bloom filters can't delete")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, "bloom filters have no keys")

    def iter_keys(self):  # type: ignore[no-untyped-def]
        return iter(())

    def free(self) -> None:
        self.bits.clear()
        super().free()
