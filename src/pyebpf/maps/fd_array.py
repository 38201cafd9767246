"""The slots of fd arrays: what program arrays and arrays of maps share.

The kernel's ``fd_array_map_*`` ops: each slot holds a reference on an
object (a program, an inner map) or is empty; deleting empties a slot,
freeing the map drops every reference; keys walk like an array's.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..uapi import MapFlags
from .array import ArrayMap, array_get_next_key

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["FdArraySlots"]


def _index(key: bytes) -> int:
    return int.from_bytes(key, "little")


class FdArraySlots:
    """Mixin for a BpfMap whose values are references held in ``self.slots``."""

    slots: dict[int, Any]
    max_entries: int
    #: What the map stores fds of, for messages ("a program array stores program fds").
    stores: tuple[str, str] = ("fd array", "object")

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        """fd_array_map_alloc_check, then array_map_alloc_check."""
        what, of = cls.stores
        if attr.value_size != 4:
            raise BpfError(errno.EINVAL, f"a {what} stores {of} fds: value_size must be 4")
        if attr.map_flags & (MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG):
            raise BpfError(errno.EINVAL, "BPF_F_RDONLY_PROG/WRONLY_PROG are not for fd arrays")
        ArrayMap.alloc_check(attr, runtime)

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)  # type: ignore[call-arg]
        self.charge(self.max_entries * 8)  # type: ignore[attr-defined]  # a pointer per slot
        #: index -> the object a slot holds, for the non-empty slots.
        self.slots = {}

    def _store_slot(self, index: int, obj: Any) -> None:
        """Put ``obj`` in a slot, holding a reference; drop the one it replaces."""
        obj.hold()
        old = self.slots.get(index)
        self.slots[index] = obj
        if old is not None:
            old.release()

    def delete_elem(self, key: bytes) -> None:
        """fd_array_map_delete_elem."""
        index = _index(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        old = self.slots.pop(index, None)
        if old is None:
            raise BpfError(errno.ENOENT, f"slot {index} is empty")
        old.release()

    def get_next_key(self, key: bytes | None) -> bytes:
        """array_map_get_next_key: every index, empty or not."""
        return array_get_next_key(key, self.max_entries)

    def free(self) -> None:
        slots, self.slots = self.slots, {}
        for obj in slots.values():
            obj.release()
        super().free()  # type: ignore[misc]
