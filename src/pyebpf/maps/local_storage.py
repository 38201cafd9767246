"""Object-local storage: SK_STORAGE, TASK_STORAGE, INODE_STORAGE, CGRP_STORAGE
(kernel/bpf/bpf_local_storage.c and its users: net/core/bpf_sk_storage.c,
kernel/bpf/bpf_task_storage.c, bpf_inode_storage.c, bpf_cgrp_storage.c).

Creation (``bpf_local_storage_map_alloc_check``): BPF_F_NO_PREALLOC is
required and only it and BPF_F_CLONE are allowed, max_entries must be 0,
key_size 4 (an fd), value_size non-zero, and BTF key and value type ids are
required (for user-space dumps): EINVAL otherwise; a value_size above
``BPF_LOCAL_STORAGE_MAX_VALUE_SIZE`` (65407) is E2BIG.

Each object (socket, task, inode, cgroup) has at most one value per map. The
syscall side names the object by an fd in the key: a socket fd (SK_STORAGE:
a closed fd EBADF, any other file ENOTSOCK, and pyebpf has no sockets), a
pidfd (TASK_STORAGE: pyebpf has none, so EBADF), any open file (INODE_STORAGE:
its inode, here the object behind the fd) or a cgroup directory
(CGRP_STORAGE; any other fd EBADF). MAP_UPDATE_ELEM then checks the flags
(above BPF_EXIST, or BPF_F_LOCK without a spin lock: EINVAL; BPF_NOEXIST on
an existing value EEXIST, BPF_EXIST on a missing one ENOENT); lookup and
delete of a missing value are ENOENT; GET_NEXT_KEY is ENOTSUPP. Checked on
Linux 6.18.

The program side (``bpf_*_storage_get/delete``) names the object by the
pointer the program holds (a ``struct sock *``, ``task_struct *``...): those
values are keyed by that address, apart from the fd-named ones (pyebpf has
no kernel objects to tie the two together).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import ENOTSUPP, BpfError
from ..memory import Region
from ..runtime import ObjKind
from ..uapi import BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, MapFlags, MapType
from . import register_map
from .base import BpfMap, round_up
from .cgroup_storage import BPF_LOCAL_STORAGE_MAX_VALUE_SIZE
from .xskmap import sockfd_lookup

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["BPF_LOCAL_STORAGE_GET_F_CREATE", "LocalStorageMap"]

BPF_LOCAL_STORAGE_CREATE_FLAG_MASK = int(MapFlags.NO_PREALLOC | MapFlags.CLONE)
BPF_LOCAL_STORAGE_GET_F_CREATE = 1
_TYPES = (MapType.SK_STORAGE, MapType.TASK_STORAGE, MapType.INODE_STORAGE,
          MapType.CGRP_STORAGE)


@register_map(*_TYPES)
class LocalStorageMap(BpfMap):
    """The four object-local storage map types (``bpf_local_storage_map``)."""

    map_types = _TYPES

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        if (attr.map_flags & ~BPF_LOCAL_STORAGE_CREATE_FLAG_MASK
                or not attr.map_flags & MapFlags.NO_PREALLOC or attr.max_entries
                or attr.key_size != 4 or not attr.value_size
                or not attr.btf_key_type_id or not attr.btf_value_type_id):
            raise BpfError(errno.EINVAL, "local storage needs BPF_F_NO_PREALLOC, max_entries "
                           "0, key_size 4, a value and BTF key/value types")
        if attr.value_size > BPF_LOCAL_STORAGE_MAX_VALUE_SIZE:
            raise BpfError(errno.E2BIG, f"value_size {attr.value_size} is above "
                           f"{BPF_LOCAL_STORAGE_MAX_VALUE_SIZE}")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        #: owner (a pointer a program holds, or the object behind an fd) -> value.
        self.storages: dict[Any, Region] = {}
        #: Pointer owners that live in a region (a test run's socket): their value
        #: goes when the region does.
        self.owner_regions: dict[int, Region] = {}

    # -- the storage ------------------------------------------------------------------
    def _drop_dead_owners(self) -> None:
        """Free the values of objects that are gone (the kernel frees a socket's or
        task's storage with it): pointer owners whose memory is no longer mapped."""
        memory = self.runtime.memory
        for owner, region in list(self.owner_regions.items()):
            if memory.region_at(owner) is not region:
                self.storage_delete(owner)

    def _new(self, owner: Any, value: bytes | None) -> Region:
        self._drop_dead_owners()
        if isinstance(owner, int):
            mapped = self.runtime.memory.region_at(owner)
            if mapped is not None:
                self.owner_regions[owner] = mapped
        self.charge(round_up(self.value_size, 8))
        region = self.runtime.memory.map(round_up(self.value_size, 8), kind="map_value",
                                         name=self.name or "local_storage")
        if value is not None:
            region.buf[:self.value_size] = value
            self.clear_kptrs(region.buf)  # a new value's kptr fields start NULL
        self.storages[owner] = region
        return region

    def storage_get(self, owner: Any, value: bytes | None, create: bool) -> int | None:
        """bpf_*_storage_get: the value's address; created (from ``value``, or
        zeroed) with ``create``; None when absent."""
        region = self.storages.get(owner)
        if region is None:
            if not create:
                return None
            region = self._new(owner, value)
        return region.base

    def storage_delete(self, owner: Any) -> None:
        region = self.storages.pop(owner, None)
        if region is None:
            raise BpfError(errno.ENOENT, "no storage for this object")
        self.owner_regions.pop(owner, None)
        self.runtime.uncharge(round_up(self.value_size, 8))
        self.charged -= round_up(self.value_size, 8)
        self.free_kptrs(region.buf)  # bpf_obj_free_fields: what the value owned goes
        self.runtime.unmap_later(region)

    def storage_update(self, owner: Any, value: bytes, flags: int) -> None:
        """bpf_local_storage_update."""
        if (flags & ~BPF_F_LOCK) > BPF_EXIST or flags & BPF_F_LOCK:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        region = self.storages.get(owner)
        if region is not None and flags == BPF_NOEXIST:
            raise BpfError(errno.EEXIST, "the object has a value (BPF_NOEXIST)")
        if region is None and flags == BPF_EXIST:
            raise BpfError(errno.ENOENT, "the object has no value (BPF_EXIST)")
        if region is None:
            self._new(owner, value)
        else:  # the old value is replaced: its kptrs released, the new ones NULL
            self.free_kptrs(region.buf)
            region.buf[:self.value_size] = value
            self.clear_kptrs(region.buf)

    # -- the syscall side: the key is an fd ------------------------------------------
    def _owner_of_fd(self, key: bytes) -> Any:
        fd = int.from_bytes(key, "little", signed=True)
        rt = self.runtime
        if self.map_type is MapType.SK_STORAGE:
            return sockfd_lookup(rt, fd)
        f = rt.fds.get(fd)
        if self.map_type is MapType.TASK_STORAGE or f is None:
            raise BpfError(errno.EBADF, f"fd {fd} is not a " + (
                "pidfd" if self.map_type is MapType.TASK_STORAGE else "open file"))
        if self.map_type is MapType.CGRP_STORAGE and f.obj.kind is not ObjKind.CGROUP:
            raise BpfError(errno.EBADF, f"fd {fd} is not a cgroup directory")
        return f.obj

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        region = self.storages.get(self._owner_of_fd(key))
        if region is None:
            raise BpfError(errno.ENOENT, "no storage for this object")
        value = bytearray(region.buf[:self.value_size])
        self.clear_kptrs(value)  # check_and_init_map_value: user space sees NULL
        return bytes(value)

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        self.storage_update(self._owner_of_fd(key), value, flags)

    def delete_elem(self, key: bytes) -> None:
        self.storage_delete(self._owner_of_fd(key))

    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EOPNOTSUPP, "programs use the bpf_*_storage_get helpers")

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, "programs use the bpf_*_storage_get helpers")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(ENOTSUPP, "local storage has no keys to walk")

    def free(self) -> None:
        storages, self.storages = self.storages, {}
        for region in storages.values():
            self.free_kptrs(region.buf)
            self.runtime.unmap_later(region)
        super().free()
