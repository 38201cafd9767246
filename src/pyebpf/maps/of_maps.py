"""Maps of maps: ARRAY_OF_MAPS and HASH_OF_MAPS (kernel/bpf/map_in_map.c,
arraymap.c's fd-array ops, hashtab.c's htab_of_maps).

At creation ``inner_map_fd`` names a *template* map (``bpf_map_meta_alloc``):
an fd that isn't open is EBADF, an fd that isn't a map EINVAL, a map of maps
EINVAL (one level only), and a map type without ``map_meta_equal`` ENOTSUPP
(:data:`NO_INNER_MAP_TYPES`). Only the template's type, key_size, value_size,
map_flags and max_entries are kept; the template fd may be closed afterwards.
The outer map's value_size must be 4 (an fd in, an id out): EINVAL otherwise.
An array of maps also refuses BPF_F_RDONLY_PROG/WRONLY_PROG (EINVAL), and
takes the array checks (key_size 4, no MMAPABLE or INNER_MAP flag); a hash
of maps takes the hash checks.

MAP_UPDATE_ELEM takes a map fd as the (u32) value. The map must match the
template (``bpf_map_meta_equal``: same type, key_size, value_size and
map_flags, not counting BPF_F_RDONLY/WRONLY which the kernel does not keep;
for an ARRAY template also the same max_entries, unless the template was
created with BPF_F_INNER_MAP): EINVAL otherwise, EBADF for a closed fd. The
outer map holds a reference on each inner map, so closing the inner map's
last fd keeps it alive while it is stored; replacing or deleting the element,
or freeing the outer map, drops that reference. An array of maps takes only
BPF_ANY (EINVAL) and checks the index (E2BIG) before the fd; a hash of maps
checks the fd first, then the hash update rules (EEXIST, ENOENT, E2BIG,
EINVAL for flags > BPF_EXIST).

MAP_LOOKUP_ELEM (and lookup batches) give the inner map's id as a u32;
ENOENT for an empty slot. Delete empties a slot (array: E2BIG past the end,
ENOENT when empty). Batches: see :mod:`pyebpf.maps.batch` (array of maps:
lookup and update; hash of maps: all four).

Program side: ``lookup_elem`` returns what the kernel's returns, the inner
map's pointer: the address of its ``struct bpf_map`` (``BpfMap.addr``, which
``Runtime.maps_by_addr`` resolves), or None. :meth:`lookup_inner` gives the
map object itself, for the helper layer and for Python callers.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import attrs

from ..errors import ENOTSUPP, BpfError
from ..runtime import ObjKind
from ..uapi import BPF_ANY, MapFlags, MapType
from . import register_map
from .base import BpfMap
from .fd_array import FdArraySlots
from .hash import HashMap

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["NO_INNER_MAP_TYPES", "ArrayOfMaps", "HashOfMaps", "InnerMapMeta", "map_meta_alloc"]

#: Map types whose ops have no ``map_meta_equal`` in 6.18, so they can't be inner
#: maps (ENOTSUPP). PROG_ARRAY was checked on the live kernel; the others are
#: from the source (they can't be created without BTF here).
NO_INNER_MAP_TYPES = frozenset({MapType.PROG_ARRAY, MapType.STRUCT_OPS,
                                MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE})
#: Flags the kernel strips from ``map->map_flags`` (they belong to the fd).
_FD_FLAGS = int(MapFlags.RDONLY | MapFlags.WRONLY)  # an int: ~IntFlag drops unknown bits


def _index(key: bytes) -> int:
    return int.from_bytes(key, "little")


@attrs.frozen
class InnerMapMeta:
    """What a map of maps keeps of its template map (the kernel's ``inner_map_meta``)."""

    map_type: MapType
    key_size: int
    value_size: int
    map_flags: int
    max_entries: int

    @classmethod
    def of(cls, m: BpfMap) -> InnerMapMeta:
        return cls(m.map_type, m.key_size, m.value_size, m.map_flags & ~_FD_FLAGS,
                   m.max_entries)

    def matches(self, m: BpfMap) -> bool:
        """The template's ``map_meta_equal`` applied to ``m``."""
        other = InnerMapMeta.of(m)
        if (self.map_type, self.key_size, self.value_size, self.map_flags) != (
                other.map_type, other.key_size, other.value_size, other.map_flags):
            return False
        if self.map_type is MapType.ARRAY:  # array_map_meta_equal
            return bool(self.map_flags & MapFlags.INNER_MAP) or (
                self.max_entries == other.max_entries)
        return True


def map_meta_alloc(runtime: Runtime, inner_map_fd: int) -> InnerMapMeta:
    """bpf_map_meta_alloc: check the template map behind ``inner_map_fd``."""
    obj, _ = runtime.get_object(inner_map_fd, ObjKind.MAP)  # EBADF, or EINVAL: not a map
    assert isinstance(obj, BpfMap)
    if isinstance(obj, _MapOfMaps):
        raise BpfError(errno.EINVAL, "an inner map can't itself be a map of maps")
    if obj.map_type in NO_INNER_MAP_TYPES:
        raise BpfError(ENOTSUPP, f"{obj.map_type.name} maps can't be inner maps")
    return InnerMapMeta.of(obj)


class _MapOfMaps(BpfMap):
    """What both maps of maps share: the template and the fd -> map step of updates."""

    inner_meta: InnerMapMeta

    def _fd_get_ptr(self, value: bytes) -> BpfMap:
        """bpf_map_fd_get_ptr: the map behind the u32 fd in ``value``, if it fits."""
        ufd = _index(value[:4])
        obj, _ = self.runtime.get_object(ufd, ObjKind.MAP)
        assert isinstance(obj, BpfMap)
        if not self.inner_meta.matches(obj):
            raise BpfError(errno.EINVAL, f"map {obj.id} does not match the inner map template "
                           f"({self.inner_meta})")
        return obj

    def lookup_inner(self, key: bytes) -> BpfMap | None:
        """The inner map stored at ``key``, or None."""
        raise NotImplementedError

    def lookup_elem(self, key: bytes) -> int | None:
        """Program side: the inner map's pointer (its ``struct bpf_map`` address)."""
        inner = self.lookup_inner(key)
        return None if inner is None else inner.addr

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        inner = self.lookup_inner(key)
        if inner is None:
            raise BpfError(errno.ENOENT, "no map at this key")
        return inner.id.to_bytes(4, "little")


@register_map(MapType.ARRAY_OF_MAPS)
class ArrayOfMaps(FdArraySlots, _MapOfMaps):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS: an array of inner-map slots, empty at creation."""

    percpu = False

    stores = ("map of maps", "map")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        # bpf_map_meta_alloc runs before the array is allocated.
        meta = map_meta_alloc(runtime, attr.inner_map_fd)
        super().__init__(runtime, attr)
        self.inner_meta = meta

    def lookup_inner(self, key: bytes) -> BpfMap | None:
        return self.slots.get(_index(key))

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        """bpf_fd_array_map_update_elem."""
        if flags != BPF_ANY:
            raise BpfError(errno.EINVAL, "fd array updates take only BPF_ANY")
        index = _index(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        self._store_slot(index, self._fd_get_ptr(value))



@register_map(MapType.HASH_OF_MAPS)
class HashOfMaps(_MapOfMaps, HashMap):
    """BPF_MAP_TYPE_HASH_OF_MAPS: a hash table whose values are inner maps.

    The table is a :class:`~pyebpf.maps.hash.HashMap` (same buckets, so the same
    get_next_key and batch order as the kernel's) whose value is the inner map's
    id; the map objects themselves are in :attr:`inner`.
    """

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        """fd_htab_map_alloc_check, then htab_map_alloc_check."""
        if attr.value_size != 4:
            raise BpfError(errno.EINVAL, "a map of maps stores map fds: value_size must be 4")
        super().alloc_check(attr, runtime)

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        meta = map_meta_alloc(runtime, attr.inner_map_fd)
        HashMap.__init__(self, runtime, attr)
        self.inner_meta = meta
        #: key -> inner map.
        self.inner: dict[bytes, BpfMap] = {}

    def lookup_inner(self, key: bytes) -> BpfMap | None:
        return self.inner.get(key)

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        """bpf_fd_htab_map_update_elem: the fd first, then the hash update rules."""
        new = self._fd_get_ptr(value)
        HashMap.update_elem(self, key, new.id.to_bytes(4, "little"), flags)
        new.hold()
        old = self.inner.get(key)
        self.inner[key] = new
        if old is not None:
            old.release()

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, "maps of maps are updated with map fds from user space")

    def delete_elem(self, key: bytes) -> None:
        HashMap.delete_elem(self, key)
        self.inner.pop(key).release()

    def lookup_and_delete_elem(self, key: bytes, flags: int) -> bytes:
        raise BpfError(ENOTSUPP, "HASH_OF_MAPS maps have no lookup-and-delete")

    def free(self) -> None:
        inner, self.inner = self.inner, {}
        for m in inner.values():
            m.release()
        HashMap.free(self)
