"""Queue and stack maps: QUEUE and STACK (kernel/bpf/queue_stack_maps.c).

Keyless maps of ``max_entries`` values: push (MAP_UPDATE_ELEM with a NULL key,
or bpf_map_push_elem), pop (MAP_LOOKUP_AND_DELETE_ELEM, bpf_map_pop_elem) and
peek (MAP_LOOKUP_ELEM, bpf_map_peek_elem). A queue gives back its oldest
value, a stack its newest. Pushing onto a full map fails with E2BIG unless
the flags are BPF_EXIST, which drops the oldest value to make room (for a
stack too: the bottom one). Popping or peeking an empty map is ENOENT.

Element commands that take a key don't apply: update and delete are EINVAL,
get_next_key is EINVAL, and a program's lookup finds nothing.
"""

from __future__ import annotations

import errno
from collections import deque
from typing import TYPE_CHECKING

from ..errors import BpfError
from ..uapi import BPF_EXIST, BPF_NOEXIST, MapFlags, MapType
from . import register_map
from .base import KMALLOC_MAX_SIZE, BpfMap, map_flags_access_ok

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["QueueMap", "StackMap"]

QUEUE_STACK_CREATE_FLAG_MASK = (MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY
                                | MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG)
#: sizeof(struct bpf_queue_stack) on x86-64 (struct bpf_map is cache-line aligned).
QUEUE_STACK_HEADER = 320


class _QueueStackBase(BpfMap):
    """What queue and stack maps share; they differ in which end pop/peek take."""

    lifo = False

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        """queue_stack_map_alloc_check (the CAP_BPF check is map_create's since 6.5)."""
        flags = attr.map_flags
        if (attr.max_entries == 0 or attr.key_size != 0 or attr.value_size == 0
                or flags & ~QUEUE_STACK_CREATE_FLAG_MASK or not map_flags_access_ok(flags)):
            raise BpfError(errno.EINVAL, "queue/stack maps need key_size 0, a value_size, "
                           "max_entries, and only NUMA/access flags")
        if attr.value_size > KMALLOC_MAX_SIZE:
            raise BpfError(errno.E2BIG, "value_size is too large")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        # queue_stack_map_alloc: one slot more than max_entries, in one allocation.
        try:
            self.charge(QUEUE_STACK_HEADER + (self.max_entries + 1) * self.value_size)
        except BpfError:
            super().free()
            raise
        self.values: deque[bytes] = deque()

    # -- push / pop / peek ----------------------------------------------------------------
    def push_elem(self, value: bytes, flags: int) -> None:
        """queue_stack_map_push_elem: E2BIG when full, unless BPF_EXIST drops the oldest."""
        if flags & BPF_NOEXIST or flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid push flags {flags:#x}")
        if len(self.values) >= self.max_entries:
            if not flags & BPF_EXIST:
                raise BpfError(errno.E2BIG, f"map is full ({self.max_entries} values)")
            self.values.popleft()
        self.values.append(bytes(value))

    def _get(self, delete: bool) -> bytes:
        if not self.values:
            raise BpfError(errno.ENOENT, "map is empty")
        if self.lifo:
            return self.values.pop() if delete else self.values[-1]
        return self.values.popleft() if delete else self.values[0]

    def pop_elem(self) -> bytes:
        return self._get(delete=True)

    def peek_elem(self) -> bytes:
        return self._get(delete=False)

    # -- keyed operations: not for these maps ------------------------------------------------
    def lookup_elem(self, key: bytes) -> int | None:
        return None

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        return self.peek_elem()

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EINVAL, "queue/stack maps are updated by push")

    def delete_elem(self, key: bytes | None) -> None:  # type: ignore[override]
        raise BpfError(errno.EINVAL, "queue/stack maps have no keys to delete")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.EINVAL, "queue/stack maps have no keys")

    def iter_keys(self):  # type: ignore[no-untyped-def]
        return iter(())

    def free(self) -> None:
        self.values.clear()
        super().free()


@register_map(MapType.QUEUE)
class QueueMap(_QueueStackBase):
    """BPF_MAP_TYPE_QUEUE: first in, first out."""

    lifo = False


@register_map(MapType.STACK)
class StackMap(_QueueStackBase):
    """BPF_MAP_TYPE_STACK: last in, first out."""

    lifo = True
