"""Array maps: ARRAY and PERCPU_ARRAY (kernel/bpf/arraymap.c).

All elements are allocated and zeroed at creation, laid end to end with
``elem_size = round_up(value_size, 8)`` in one region (one per CPU for the
per-CPU type), so a program's pointer to element ``i`` is
``base + i * elem_size``, as in the kernel. Elements can't be deleted.
"""

from __future__ import annotations

import errno
import hashlib
from typing import TYPE_CHECKING

from ..errors import BpfError
from ..memory import Region
from ..uapi import BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, MapFlags, MapType
from . import register_map
from .base import (
    NUMA_NO_NODE,
    BpfMap,
    attr_numa_node,
    check_update_flags,
    map_flags_access_ok,
    round_up,
)
from .hash import PCPU_MIN_UNIT_SIZE

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["ArrayMap", "PercpuArrayMap"]

INT_MAX = 0x7FFF_FFFF
#: sizeof(struct bpf_timer).
BPF_TIMER_SIZE = 16
#: A plain int: ``~`` of an IntFlag keeps only the defined bits.
ARRAY_CREATE_FLAG_MASK = int(
    MapFlags.NUMA_NODE
    | MapFlags.MMAPABLE
    | MapFlags.RDONLY
    | MapFlags.WRONLY
    | MapFlags.RDONLY_PROG
    | MapFlags.WRONLY_PROG
    | MapFlags.PRESERVE_ELEMS
    | MapFlags.INNER_MAP
)


def _index(key: bytes) -> int:
    return int.from_bytes(key, "little")


def array_get_next_key(key: bytes | None, max_entries: int) -> bytes:
    """array_map_get_next_key: a missing or out-of-range key gives index 0; the
    last index has no next (ENOENT)."""
    index = _index(key) if key is not None else max_entries
    if index >= max_entries:
        return (0).to_bytes(4, "little")
    if index == max_entries - 1:
        raise BpfError(errno.ENOENT, "no more keys")
    return (index + 1).to_bytes(4, "little")


@register_map(MapType.ARRAY)
class ArrayMap(BpfMap):
    percpu = False

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        flags = attr.map_flags
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size == 0
                or flags & ~ARRAY_CREATE_FLAG_MASK or not map_flags_access_ok(flags)
                or (cls.percpu and attr_numa_node(attr) != NUMA_NO_NODE)):
            raise BpfError(errno.EINVAL, "an array needs key_size 4, a non-zero value_size and "
                           "max_entries, and only array flags")
        if attr.map_type != MapType.ARRAY and flags & (MapFlags.MMAPABLE | MapFlags.INNER_MAP):
            raise BpfError(errno.EINVAL, "BPF_F_MMAPABLE and BPF_F_INNER_MAP are for arrays only")
        if attr.map_type != MapType.PERF_EVENT_ARRAY and flags & MapFlags.PRESERVE_ELEMS:
            raise BpfError(errno.EINVAL, "BPF_F_PRESERVE_ELEMS is for perf event arrays only")
        if attr.value_size > INT_MAX:
            raise BpfError(errno.E2BIG, "value_size is too large")
        if cls.percpu and round_up(attr.value_size, 8) > PCPU_MIN_UNIT_SIZE:
            raise BpfError(errno.E2BIG, "per-CPU value_size is too large")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.elem_size = round_up(self.value_size, 8)
        copies = runtime.nr_cpus if self.percpu else 1
        self.charge(self.max_entries * self.elem_size * copies)
        self.regions: list[Region] = [
            runtime.memory.map(self.max_entries * self.elem_size, kind="map_value",
                               name=self.name or f"array#{cpu}")
            for cpu in range(copies)
        ]

    def direct_value_addr(self) -> int:
        """map_direct_value_addr: where element 0's value starts (global data,
        BPF_PSEUDO_MAP_VALUE). The verifier allows it for single-element arrays."""
        return self.regions[0].base

    def _addr(self, index: int, cpu: int = 0) -> int:
        return self.regions[cpu].base + index * self.elem_size

    def lookup_elem(self, key: bytes) -> int | None:
        index = _index(key)
        if index >= self.max_entries:
            return None
        return self._addr(index, self.runtime.cpu if self.percpu else 0)

    def _check_update(self, key: bytes, flags: int) -> int:
        check_update_flags(flags)
        index = _index(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        if flags & BPF_NOEXIST:
            raise BpfError(errno.EEXIST, "array elements always exist (BPF_NOEXIST)")
        if flags & BPF_F_LOCK:
            raise BpfError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the value")
        return index

    def _write(self, index: int, cpu: int, value: bytes) -> None:
        off = index * self.elem_size
        buf = self.regions[cpu].buf
        kptrs = self.has_kptrs
        if kptrs:  # bpf_obj_free_fields: the old value's kptrs are released
            self.free_kptrs(buf, off)
        buf[off:off + self.value_size] = value
        if kptrs:  # copy_map_value leaves the (now NULL) kptr fields alone
            self.clear_kptrs(buf, off)
        timer = self.btf_fields.get("bpf_timer")
        if timer is not None:  # bpf_obj_free_fields: the old value's timer goes
            self.runtime.timers.cancel_and_free(self.regions[cpu].base + off + timer)
            buf[off + timer:off + timer + BPF_TIMER_SIZE] = bytes(BPF_TIMER_SIZE)

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        index = self._check_update(key, flags)
        self._write(index, self.runtime.cpu if self.percpu else 0, value)

    def delete_elem(self, key: bytes) -> None:
        raise BpfError(errno.EINVAL, "array elements can't be deleted")

    def get_next_key(self, key: bytes | None) -> bytes:
        return array_get_next_key(key, self.max_entries)

    @property
    def syscall_value_size(self) -> int:
        return self.elem_size * self.runtime.nr_cpus if self.percpu else self.value_size

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        index = _index(key)
        if index >= self.max_entries:
            raise BpfError(errno.ENOENT, f"index {index} is past max_entries {self.max_entries}")
        off = index * self.elem_size
        if not self.percpu:
            value = self.regions[0].buf[off:off + self.value_size]
            if self.has_kptrs:  # check_and_init_map_value: user space sees NULL
                self.clear_kptrs(value)
            return bytes(value)
        return b"".join(bytes(r.buf[off:off + self.elem_size]) for r in self.regions)

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        if not self.percpu:
            self.update_elem(key, value, flags)
            return
        if flags > BPF_EXIST:  # bpf_percpu_array_update: BPF_F_LOCK is no mode here
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        index = self._check_update(key, flags)
        # copy_map_value_long: whole elem_size slots, padding included (read back too).
        off = index * self.elem_size
        for cpu in range(self.runtime.nr_cpus):
            self.regions[cpu].buf[off:off + self.elem_size] = \
                value[cpu * self.elem_size:(cpu + 1) * self.elem_size]

    def map_get_hash(self) -> bytes:
        """array_map_get_hash: SHA-256 of the whole value area (OBJ_GET_INFO_BY_FD
        with ``hash``, frozen maps only; per-CPU arrays have none)."""
        return hashlib.sha256(bytes(self.regions[0].buf)).digest()

    def free(self) -> None:
        kptrs = self.has_kptrs
        for region in self.regions:
            if kptrs:
                for index in range(self.max_entries):
                    self.free_kptrs(region.buf, index * self.elem_size)
            self.runtime.unmap_later(region)
        super().free()

    supports_batch = True


@register_map(MapType.PERCPU_ARRAY)
class PercpuArrayMap(ArrayMap):
    percpu = True
    direct_value_addr = None  # type: ignore[assignment]  (per-CPU values have no single address)
    map_get_hash = None  # type: ignore[assignment]  # no map_get_hash op
