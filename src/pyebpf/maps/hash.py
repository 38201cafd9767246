"""Hash maps: HASH and PERCPU_HASH (kernel/bpf/hashtab.c).

Elements live in ``n_buckets = roundup_pow_of_two(max_entries)`` buckets
chosen by the kernel's jhash of the key, a new element going to the head of
its bucket, so ``get_next_key`` walks them in the kernel's order: buckets in
index order, each from its head. With BPF_F_ZERO_SEED (seed 0) that order is
the kernel's exactly; otherwise the seed comes from the runtime's seeded RNG,
deterministic for a test but not the kernel's random one.

Each element's value is its own region, so a program's pointer to it stays
valid while the element lives; an updated element is replaced (new region at
the bucket's head, as the kernel does without BPF_F_LOCK), and the old region
is unmapped once no program is running (the kernel's RCU grace period).
Per-CPU values are updated in place, as the kernel does.
"""

from __future__ import annotations

import bisect
import errno
from typing import TYPE_CHECKING

from ..errors import ENOTSUPP, BpfError
from ..memory import Region
from ..uapi import BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, MapFlags, MapType
from . import register_map
from .base import (
    KMALLOC_MAX_SIZE,
    NUMA_NO_NODE,
    BpfMap,
    attr_numa_node,
    check_update_flags,
    map_flags_access_ok,
    round_up,
)
from .jhash import htab_map_hash

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["HashMap", "PercpuHashMap"]

#: sizeof(struct htab_elem) on x86-64: the per-element header before the key.
HTAB_ELEM_SIZE = 48
#: PCPU_MIN_UNIT_SIZE: the largest per-CPU allocation.
PCPU_MIN_UNIT_SIZE = 32 << 10
#: sizeof(struct bucket): bounds n_buckets so the bucket array fits in u32 bytes.
BUCKET_SIZE = 16
#: A plain int: ``~`` of an IntFlag keeps only the defined bits.
HTAB_CREATE_FLAG_MASK = int(
    MapFlags.NO_PREALLOC
    | MapFlags.NO_COMMON_LRU
    | MapFlags.NUMA_NODE
    | MapFlags.RDONLY
    | MapFlags.WRONLY
    | MapFlags.RDONLY_PROG
    | MapFlags.WRONLY_PROG
    | MapFlags.ZERO_SEED
)


def roundup_pow_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


class _Elem:
    """One element: its key, hash, and value region(s) (one per CPU when per-CPU)."""

    __slots__ = ("hash", "key", "regions")

    def __init__(self, key: bytes, hash_: int, regions: list[Region]) -> None:
        self.key = key
        self.hash = hash_
        self.regions = regions


@register_map(MapType.HASH)
class HashMap(BpfMap):
    percpu = False
    lru = False

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        flags = attr.map_flags
        percpu_lru = bool(flags & MapFlags.NO_COMMON_LRU)
        prealloc = not flags & MapFlags.NO_PREALLOC
        if flags & MapFlags.ZERO_SEED and not runtime.privileged:
            raise BpfError(errno.EPERM, "BPF_F_ZERO_SEED needs CAP_SYS_ADMIN")
        if flags & ~HTAB_CREATE_FLAG_MASK or not map_flags_access_ok(flags):
            raise BpfError(errno.EINVAL, f"invalid flags {flags:#x} for a hash map")
        if not cls.lru and percpu_lru:
            raise BpfError(errno.EINVAL, "BPF_F_NO_COMMON_LRU is only for LRU maps")
        if cls.lru and not prealloc:
            raise BpfError(ENOTSUPP, "LRU maps must be preallocated")
        if attr_numa_node(attr) != NUMA_NO_NODE and (cls.percpu or percpu_lru):
            raise BpfError(errno.EINVAL, "per-CPU maps take no NUMA node")
        if attr.max_entries == 0 or attr.key_size == 0 or attr.value_size == 0:
            raise BpfError(errno.EINVAL, "max_entries, key_size and value_size must be non-zero")
        if attr.key_size + attr.value_size >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE:
            raise BpfError(errno.E2BIG, "key_size + value_size is too large")
        if cls.percpu and round_up(attr.value_size, 8) > PCPU_MIN_UNIT_SIZE:
            raise BpfError(errno.E2BIG, "per-CPU value_size is too large")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        if self.max_entries > 1 << 31:
            raise BpfError(errno.E2BIG, "max_entries is too large for a hash map")
        self.n_buckets = roundup_pow_of_two(self.max_entries)
        if self.n_buckets > 0xFFFF_FFFF // BUCKET_SIZE:
            raise BpfError(errno.E2BIG, "too many buckets")
        self.hashrnd = 0 if attr.map_flags & MapFlags.ZERO_SEED else runtime.random.getrandbits(32)
        self.elems: dict[bytes, _Elem] = {}
        #: bucket index -> keys, head first; and the sorted non-empty bucket indices.
        self.buckets: dict[int, list[bytes]] = {}
        self.nonempty: list[int] = []

    # -- bucket bookkeeping ---------------------------------------------------------
    def _bucket_of(self, h: int) -> int:
        return h & (self.n_buckets - 1)

    def _link_head(self, elem: _Elem) -> None:
        b = self._bucket_of(elem.hash)
        chain = self.buckets.get(b)
        if chain is None:
            chain = self.buckets[b] = []
            bisect.insort(self.nonempty, b)
        chain.insert(0, elem.key)

    def _unlink(self, elem: _Elem) -> None:
        b = self._bucket_of(elem.hash)
        chain = self.buckets[b]
        chain.remove(elem.key)
        if not chain:
            del self.buckets[b]
            self.nonempty.pop(bisect.bisect_left(self.nonempty, b))

    def _new_regions(self, key: bytes, values: list[bytes]) -> list[Region]:
        mem = self.runtime.memory
        regions = [mem.map(bytearray(v), kind="map_value", name=f"{self.name or self.id}")
                   for v in values]
        if self.has_kptrs:  # a new element's kptr fields start NULL (copy_map_value)
            for region in regions:
                self.clear_kptrs(region.buf)
        return regions

    def _drop(self, elem: _Elem) -> None:
        for region in elem.regions:
            self.free_kptrs(region.buf)
            self.runtime.unmap_later(region)

    # -- ops --------------------------------------------------------------------------
    def lookup_elem(self, key: bytes) -> int | None:
        elem = self.elems.get(key)
        if elem is None:
            return None
        return elem.regions[self.runtime.cpu if self.percpu else 0].base

    def _check_update(self, key: bytes, flags: int) -> _Elem | None:
        mode = check_update_flags(flags)
        if flags & BPF_F_LOCK:
            raise BpfError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the value")
        old = self.elems.get(key)
        if mode == BPF_NOEXIST and old is not None:
            raise BpfError(errno.EEXIST, "key exists (BPF_NOEXIST)")
        if mode == BPF_EXIST and old is None:
            raise BpfError(errno.ENOENT, "no such key (BPF_EXIST)")
        if old is None and len(self.elems) >= self.max_entries:
            self._make_room(key)
        return old

    def _make_room(self, key: bytes) -> None:
        """A full map refuses a new key (LRU maps evict instead)."""
        raise BpfError(errno.E2BIG, f"map is full ({self.max_entries} elements)")

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        """Update from a program (per-CPU: this CPU's value; others start zeroed)."""
        old = self._check_update(key, flags)
        if self.percpu:
            # Each CPU's value is a round_up(value_size, 8) slot; a program writes
            # value_size bytes of its own CPU's (the padding is zero here, stale in the
            # kernel's preallocated elements).
            cpu = self.runtime.cpu
            if old is not None:
                old.regions[cpu].buf[:self.value_size] = value
                return
            slot = round_up(self.value_size, 8)
            values = [value.ljust(slot, b"\0") if c == cpu else bytes(slot)
                      for c in range(self.runtime.nr_cpus)]
        else:
            values = [value]
        self._replace(key, old, values)

    def _replace(self, key: bytes, old: _Elem | None, values: list[bytes]) -> None:
        elem = _Elem(key, old.hash if old else htab_map_hash(key, self.hashrnd),
                     self._new_regions(key, values))
        self._link_head(elem)
        if old is not None:
            self._unlink_keep_new(old, elem)
            self._drop(old)
        self.elems[key] = elem

    def _unlink_keep_new(self, old: _Elem, new: _Elem) -> None:
        """Remove the old element of the same key from its chain, keeping the new head."""
        chain = self.buckets[self._bucket_of(old.hash)]
        # The new element was inserted at index 0; the old one is further down.
        idx = chain.index(old.key, 1)
        del chain[idx]

    def delete_elem(self, key: bytes) -> None:
        elem = self.elems.pop(key, None)
        if elem is None:
            raise BpfError(errno.ENOENT, "no such key")
        self._unlink(elem)
        self._drop(elem)

    def get_next_key(self, key: bytes | None) -> bytes:
        start = 0
        if key is not None:
            elem = self.elems.get(key)
            if elem is not None:
                b = self._bucket_of(elem.hash)
                chain = self.buckets[b]
                pos = chain.index(key)
                if pos + 1 < len(chain):
                    return chain[pos + 1]
                start = b + 1
        i = bisect.bisect_left(self.nonempty, start)
        if i == len(self.nonempty):
            raise BpfError(errno.ENOENT, "no more keys")
        return self.buckets[self.nonempty[i]][0]

    def lookup_and_delete_elem(self, key: bytes, flags: int) -> bytes:
        if flags & BPF_F_LOCK:
            raise BpfError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the value")
        value = self.syscall_lookup(key, flags)
        self.delete_elem(key)
        return value

    # -- syscall side: per-CPU values are copied for every CPU ---------------------------
    @property
    def syscall_value_size(self) -> int:
        if self.percpu:
            return round_up(self.value_size, 8) * self.runtime.nr_cpus
        return self.value_size

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        elem = self.elems.get(key)
        if elem is None:
            raise BpfError(errno.ENOENT, "no such key")
        if not self.percpu:
            value = bytearray(elem.regions[0].buf)
            self.clear_kptrs(value)  # check_and_init_map_value: user space sees NULL
            return bytes(value)
        slot = round_up(self.value_size, 8)
        return b"".join(bytes(r.buf).ljust(slot, b"\0") for r in elem.regions)

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        if not self.percpu:
            self.update_elem(key, value, flags)
            return
        old = self._check_update(key, flags)
        # pcpu_copy_value(onallcpus): copy_map_value_long copies whole 8-byte-rounded
        # slots, so the padding the caller wrote is kept and read back.
        slot = round_up(self.value_size, 8)
        values = [value[c * slot:(c + 1) * slot] for c in range(self.runtime.nr_cpus)]
        if old is not None:
            for region, v in zip(old.regions, values, strict=True):
                region.buf[:len(v)] = v
            return
        self._replace(key, None, values)

    def free(self) -> None:
        for elem in self.elems.values():
            self._drop(elem)
        self.elems.clear()
        self.buckets.clear()
        self.nonempty.clear()
        super().free()

    supports_batch = True
    supports_lookup_and_delete_batch = True


@register_map(MapType.PERCPU_HASH)
class PercpuHashMap(HashMap):
    percpu = True
