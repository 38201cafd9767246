"""Cgroup local storage: CGROUP_STORAGE and PERCPU_CGROUP_STORAGE
(kernel/bpf/local_storage.c), what ``bpf_get_local_storage`` returns.

Creation (``cgroup_storage_map_alloc``): key_size 16 (``struct
bpf_cgroup_storage_key``: u64 cgroup_inode_id, u32 attach_type, padding) or 8
(the cgroup id alone: one storage per cgroup, shared by attach types), a
non-zero value_size of at most ``BPF_LOCAL_STORAGE_MAX_VALUE_SIZE`` (65407;
per-CPU: PCPU_MIN_UNIT_SIZE, 32768; above: E2BIG), max_entries 0, and only
BPF_F_NUMA_NODE and the access flags (not both RDONLY_PROG and WRONLY_PROG),
else EINVAL.

A storage exists per (cgroup, attach type) a program using the map is
attached to: :meth:`CgroupStorageMap.link` makes one visible to the syscall
side (the kernel's ``bpf_cgroup_storage_link``). MAP_LOOKUP_ELEM gives its
value (per-CPU: every CPU's, each rounded up to 8 bytes), ENOENT without one;
MAP_UPDATE_ELEM: flags other than ANY/EXIST EINVAL, ENOENT without a
storage; delete is EINVAL; GET_NEXT_KEY walks the storages in the order they
were linked. Checked on Linux 6.18.

BPF_PROG_TEST_RUN (``bpf_test_run``) gives the program a fresh, zeroed,
unlinked storage of each type it uses for the duration of the command
(every repetition shares it): :func:`test_run_storages`. A program run
outside a test run gets one lazily, kept on the program.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..memory import Region
from ..uapi import BPF_ANY, BPF_EXIST, MapFlags, MapType
from . import register_map
from .base import BpfMap, map_flags_access_ok, round_up
from .hash import PCPU_MIN_UNIT_SIZE

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["BPF_LOCAL_STORAGE_MAX_VALUE_SIZE", "CgroupStorageMap", "local_storage",
           "test_run_storages"]

#: U16_MAX - sizeof(struct bpf_local_storage_elem) on x86-64.
BPF_LOCAL_STORAGE_MAX_VALUE_SIZE = 0xFFFF - 128
LOCAL_STORAGE_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY
                                     | MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG)
_TYPES = (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE)


class CgroupStorage:
    """One ``struct bpf_cgroup_storage``: a value region, or one per CPU."""

    def __init__(self, m: CgroupStorageMap) -> None:
        rt = m.runtime
        self.runtime = rt
        copies = rt.nr_cpus if m.percpu else 1
        self.regions: list[Region] = [
            rt.memory.map(round_up(m.value_size, 8), kind="map_value",
                          name=m.name or "cgroup_storage") for _ in range(copies)]

    def addr(self) -> int:
        """The pointer bpf_get_local_storage returns (this CPU's, for per-CPU)."""
        cpu = self.runtime.cpu if len(self.regions) > 1 else 0
        return self.regions[cpu].base

    def free(self) -> None:
        for region in self.regions:
            self.runtime.unmap_later(region)


@register_map(*_TYPES)
class CgroupStorageMap(BpfMap):
    """BPF_MAP_TYPE_CGROUP_STORAGE and BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE."""

    map_types = _TYPES

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        percpu = attr.map_type == MapType.PERCPU_CGROUP_STORAGE
        limit = min(BPF_LOCAL_STORAGE_MAX_VALUE_SIZE, PCPU_MIN_UNIT_SIZE) if percpu \
            else BPF_LOCAL_STORAGE_MAX_VALUE_SIZE
        if attr.key_size not in (16, 8) or attr.value_size == 0:
            raise BpfError(errno.EINVAL, "cgroup storage needs key_size 16 (struct "
                           "bpf_cgroup_storage_key) or 8 and a value")
        if attr.value_size > limit:
            raise BpfError(errno.E2BIG, f"value_size {attr.value_size} is above {limit}")
        if (attr.map_flags & ~LOCAL_STORAGE_CREATE_FLAG_MASK
                or not map_flags_access_ok(attr.map_flags)):
            raise BpfError(errno.EINVAL, f"invalid flags {attr.map_flags:#x} for cgroup "
                           "storage")
        if attr.max_entries:
            raise BpfError(errno.EINVAL, "cgroup storage has no max_entries (one per cgroup)")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.percpu = self.map_type is MapType.PERCPU_CGROUP_STORAGE
        #: The linked storages by key bytes, in link order.
        self.storages: dict[bytes, CgroupStorage] = {}

    def _key(self, cgroup_id: int, attach_type: int) -> bytes:
        if self.key_size == 8:
            return struct.pack("<Q", cgroup_id)
        return struct.pack("<QI4x", cgroup_id, attach_type)

    def link(self, cgroup_id: int, attach_type: int) -> CgroupStorage:
        """The storage of (cgroup, attach type), made and linked if it is new."""
        key = self._key(cgroup_id, attach_type)
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = CgroupStorage(self)
        return storage

    def unlink(self, cgroup_id: int, attach_type: int) -> None:
        storage = self.storages.pop(self._key(cgroup_id, attach_type), None)
        if storage is not None:
            storage.free()

    def _lookup(self, key: bytes) -> CgroupStorage:
        # cgroup_storage_lookup compares the whole struct (padding masked) or the u64.
        k = key[:8] + key[8:12] + bytes(4) if self.key_size == 16 else key
        storage = self.storages.get(k)
        if storage is None:
            raise BpfError(errno.ENOENT, "no storage for this cgroup and attach type")
        return storage

    # -- the syscall side -------------------------------------------------------------
    @property
    def syscall_value_size(self) -> int:
        return round_up(self.value_size, 8) * self.runtime.nr_cpus if self.percpu \
            else self.value_size

    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EOPNOTSUPP, "programs get cgroup storage with "
                       "bpf_get_local_storage")

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        storage = self._lookup(key)
        if not self.percpu:
            return bytes(storage.regions[0].buf[:self.value_size])
        return b"".join(bytes(r.buf) for r in storage.regions)

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        # BPF_NOEXIST is EINVAL too: a storage exists exactly while it is attached.
        if flags not in (BPF_ANY, BPF_EXIST):
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        storage = self._lookup(key)
        if not self.percpu:
            storage.regions[0].buf[:self.value_size] = value
            return
        size = round_up(self.value_size, 8)
        for cpu, region in enumerate(storage.regions):
            region.buf[:] = value[cpu * size:(cpu + 1) * size]

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, "programs write cgroup storage through its pointer")

    def delete_elem(self, key: bytes) -> None:
        raise BpfError(errno.EINVAL, "cgroup storage can't be deleted")

    def get_next_key(self, key: bytes | None) -> bytes:
        keys = list(self.storages)
        if key is None:
            if not keys:
                raise BpfError(errno.ENOENT, "no storage")
            return keys[0]
        self._lookup(key)
        k = key[:8] + key[8:12] + bytes(4) if self.key_size == 16 else key
        i = keys.index(k) + 1
        if i >= len(keys):
            raise BpfError(errno.ENOENT, "no more storages")
        return keys[i]

    def free(self) -> None:
        storages, self.storages = self.storages, {}
        for storage in storages.values():
            storage.free()
        super().free()


def _storage_maps(prog: Any) -> list[CgroupStorageMap]:
    return [m for m in getattr(prog, "used_maps", ()) if isinstance(m, CgroupStorageMap)]


@contextmanager
def test_run_storages(prog: Any) -> Iterator[None]:
    """bpf_test_run's storages: fresh ones for each type the program uses, freed after."""
    maps = _storage_maps(prog)
    if not maps:
        yield
        return
    saved = getattr(prog, "cgroup_storage", None)
    fresh = {m.percpu: CgroupStorage(m) for m in maps}
    prog.cgroup_storage = fresh
    try:
        yield
    finally:
        prog.cgroup_storage = saved
        for storage in fresh.values():
            storage.free()


def local_storage(prog: Any, m: CgroupStorageMap) -> CgroupStorage:
    """The storage of ``m``'s type the running program has (bpf_cg_run_ctx)."""
    storages = getattr(prog, "cgroup_storage", None)
    if storages is None:
        storages = prog.cgroup_storage = {}
    storage = storages.get(m.percpu)
    if storage is None:
        storage = storages[m.percpu] = CgroupStorage(m)
    return storage  # type: ignore[no-any-return]
