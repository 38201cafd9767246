"""The slots of fd arrays: what program arrays and arrays of maps share.

The kernel's ``fd_array_map_*`` ops: each slot holds a reference on an
object (a program, an inner map) or is empty; deleting empties a slot,
freeing the map drops every reference; keys walk like an array's.
"""

from __future__ import annotations

import errno
from typing import Any

from ..errors import BpfError
from .array import array_get_next_key

__all__ = ["FdArraySlots"]


def _index(key: bytes) -> int:
    return int.from_bytes(key, "little")


class FdArraySlots:
    """Mixin for a BpfMap whose values are references held in ``self.slots``."""

    slots: dict[int, Any]
    max_entries: int

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
