"""The map subsystem: one module per map family, registered by MapType.

Each family subclasses :class:`~pyebpf.maps.base.BpfMap` (the kernel's
``bpf_map_ops``) and registers itself for the types it implements with
:func:`register_map`; MAP_CREATE looks the type up in :data:`MAP_TYPES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .._families import import_families
from ..uapi import MapType

if TYPE_CHECKING:
    from .base import BpfMap

__all__ = ["MAP_TYPES", "map_class", "register_map"]

#: MapType -> the class implementing it.
MAP_TYPES: dict[MapType, type[BpfMap]] = {}

_C = TypeVar("_C", bound="type[BpfMap]")


def register_map(*types: MapType) -> Callable[[_C], _C]:
    """Class decorator: implement ``types`` with the decorated class."""

    def deco(cls: _C) -> _C:
        for t in types:
            MAP_TYPES[t] = cls
        return cls

    return deco


#: The modules implementing map families (each registers its types on import).
_FAMILIES = ("array", "hash", "lru", "lpm_trie", "queue_stack", "bloom_filter", "of_maps",
             "ringbuf", "prog_array", "perf_event_array", "stack_trace", "cgroup_array",
             "struct_ops", "devmap", "cpumap", "xskmap", "sockmap",
             "cgroup_storage", "user_ringbuf", "local_storage",
             "reuseport_array")


def map_class(map_type: int) -> type[BpfMap] | None:
    """The class for a map type number, or None if pyebpf has none."""
    import_families(__name__, _FAMILIES)
    try:
        return MAP_TYPES.get(MapType(map_type))
    except ValueError:
        return None
