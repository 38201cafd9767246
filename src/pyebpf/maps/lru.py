"""LRU hash maps: LRU_HASH and LRU_PERCPU_HASH (kernel/bpf/hashtab.c, bpf_lru_list.c).

An LRU map is a preallocated hash map whose full state evicts instead of
refusing: every update takes a node from the LRU's free lists, and when they
are empty the LRU shrinks its lists, deleting the elements it picks from the
hash table. Which elements those are is decided by the kernel's bpf_lru_list
machinery, reproduced here step for step:

- **Common LRU** (the default): one global list set (active, inactive, free)
  shared by all CPUs, plus per-CPU local lists (free, pending). A new node is
  taken from the current CPU's local free list; when that is empty the CPU's
  pending nodes are flushed into the global lists (referenced ones to active,
  the others to inactive), the lists are rotated, and up to ``target_free``
  nodes (``clamp(max_entries / nr_cpus / 2, 1, 128)``, Linux >= 6.16) are
  moved to the local free list, shrinking the inactive list from its tail (at
  most 128 nodes scanned; referenced nodes get a second chance in the active
  list) and, when that frees nothing, force-evicting the tail of the inactive
  (else active) list. When even that finds nothing, free and then pending
  nodes are stolen from the CPUs' local lists, round robin.
- **Per-CPU LRU** (``BPF_F_NO_COMMON_LRU``): each CPU has its own list set
  holding ``max_entries / nr_cpus`` nodes (``max_entries`` is rounded up to a
  multiple of the CPU count, as the kernel does and reports); a CPU only ever
  evicts from its own lists, 4 at a time, scanning at most 4 nodes.

The ref bit of an element is set by a program's lookup (``lookup_elem``), and
by an update that replaces an existing key; the syscall lookup does not set it
(``htab_lru_map_lookup_elem_sys``; per-CPU: ``bpf_percpu_hash_copy``), so that
user space walking the map does not disturb the eviction order.

Kernel quirks kept on purpose (Linux 6.18): an update takes its new node
*before* it looks at the key, so an update of an existing key in a full map,
and even an update that then fails with EEXIST/ENOENT, may evict another
element (or the very key being updated, after which BPF_EXIST fails with
ENOENT). LRU_PERCPU_HASH takes no node for a BPF_EXIST update. When no node
can be found at all the update fails with ENOMEM.

The CPU an operation runs on is ``runtime.cpu``; on the kernel it is the CPU
the calling thread runs on, so a comparison with the kernel must pin the
caller to one CPU. Free nodes are interchangeable, so free lists are counts.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ..errors import BpfError
from ..uapi import BPF_EXIST, BPF_NOEXIST, MapFlags, MapType
from . import register_map
from .base import round_up
from .hash import HashMap, _Elem
from .jhash import htab_map_hash

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..memory import Region
    from ..runtime import Runtime

__all__ = ["BpfLru", "LruHashMap", "LruNode", "LruPercpuHashMap"]

LOCAL_FREE_TARGET = 128
LOCAL_NR_SCANS = LOCAL_FREE_TARGET
PERCPU_FREE_TARGET = 4
PERCPU_NR_SCANS = PERCPU_FREE_TARGET

# enum bpf_lru_list_type
ACTIVE, INACTIVE, FREE, LOCAL_FREE, LOCAL_PENDING = range(5)
_TYPE_NAMES = ("active", "inactive", "free", "local_free", "local_pending")

_U32 = 0xFFFF_FFFF


class _Link:
    """A ``struct list_head``: circular, doubly linked; a list's head is a bare _Link."""

    __slots__ = ("next", "prev")

    def __init__(self) -> None:
        self.next: _Link = self
        self.prev: _Link = self


def _list_del(node: _Link) -> None:
    node.prev.next = node.next
    node.next.prev = node.prev
    node.next = node.prev = node


def _list_add(node: _Link, head: _Link) -> None:
    """list_add: insert right after ``head`` (at the front)."""
    nxt = head.next
    node.prev = head
    node.next = nxt
    nxt.prev = node
    head.next = node


def _list_move(node: _Link, head: _Link) -> None:
    _list_del(node)
    _list_add(node, head)


def _iter(head: _Link) -> list[_Link]:
    out = []
    cur = head.next
    while cur is not head:
        out.append(cur)
        cur = cur.next
    return out


class LruNode(_Link):
    """A ``struct bpf_lru_node``: the LRU bookkeeping of one live element."""

    __slots__ = ("cpu", "elem", "ref", "type")

    def __init__(self, cpu: int, type_: int) -> None:
        super().__init__()
        self.cpu = cpu
        self.type = type_
        self.ref = 0
        self.elem: _LruElem | None = None

    def __repr__(self) -> str:
        key = self.elem.key.hex() if self.elem is not None else "-"
        return f"<LruNode {key} {_TYPE_NAMES[self.type]} cpu={self.cpu} ref={self.ref}>"


class _LruList:
    """A ``struct bpf_lru_list``: active and inactive lists, and a count of free nodes."""

    __slots__ = ("active", "counts", "free", "inactive", "next_inactive_rotation")

    def __init__(self) -> None:
        self.active = _Link()
        self.inactive = _Link()
        self.free = 0
        self.counts = [0, 0]  # ACTIVE, INACTIVE
        self.next_inactive_rotation: _Link = self.inactive

    def head(self, type_: int) -> _Link:
        return self.active if type_ == ACTIVE else self.inactive


class _LocalList:
    """A ``struct bpf_lru_locallist``: one CPU's free count and pending list."""

    __slots__ = ("free", "next_steal", "pending")

    def __init__(self, cpu: int) -> None:
        self.free = 0
        self.pending = _Link()
        self.next_steal = cpu


class _LruElem(_Elem):
    __slots__ = ("node",)

    def __init__(self, key: bytes, hash_: int, regions: list[Region], node: LruNode) -> None:
        super().__init__(key, hash_, regions)
        self.node = node


class BpfLru:
    """``struct bpf_lru``: which element an LRU map evicts, as the kernel decides it.

    ``del_from_htab(node)`` removes the node's element from the hash table (the
    kernel's ``htab_lru_map_delete_node``); it always succeeds here, as it does
    on the kernel when nothing runs concurrently.
    """

    def __init__(self, nr_elems: int, nr_cpus: int, percpu: bool,
                 del_from_htab: Callable[[LruNode], bool]) -> None:
        self.percpu = percpu
        self.nr_cpus = nr_cpus
        self.del_from_htab = del_from_htab
        if percpu:
            self.nr_scans = PERCPU_NR_SCANS
            self.percpu_lru = [_LruList() for _ in range(nr_cpus)]
            # bpf_percpu_lru_populate: nr_elems / nr_cpus nodes on each CPU's free list.
            # (max_entries was rounded to a multiple of nr_cpus, so they all get as many).
            for lst in self.percpu_lru:
                lst.free = nr_elems // nr_cpus
            self.target_free = 0
        else:
            self.nr_scans = LOCAL_NR_SCANS
            self.lru_list = _LruList()
            self.lru_list.free = nr_elems
            self.local = [_LocalList(cpu) for cpu in range(nr_cpus)]
            # bpf_common_lru_populate (Linux >= 6.16: "adjust free target").
            self.target_free = min(max((nr_elems // nr_cpus) // 2, 1), LOCAL_FREE_TARGET)

    # -- list primitives (bpf_lru_list.c) ----------------------------------------------
    @staticmethod
    def _count_inc(lst: _LruList, type_: int) -> None:
        if type_ < 2:
            lst.counts[type_] += 1

    @staticmethod
    def _count_dec(lst: _LruList, type_: int) -> None:
        if type_ < 2:
            lst.counts[type_] -= 1

    def _move_to_free(self, lst: _LruList, node: LruNode, tgt_free_type: int) -> None:
        """__bpf_lru_node_move_to_free; the caller counts the node on its free list."""
        if node is lst.next_inactive_rotation:
            lst.next_inactive_rotation = lst.next_inactive_rotation.prev
        self._count_dec(lst, node.type)
        node.type = tgt_free_type
        _list_del(node)

    def _move_in(self, lst: _LruList, node: LruNode, tgt_type: int) -> None:
        """__bpf_lru_node_move_in: from a local list into the LRU list."""
        self._count_inc(lst, tgt_type)
        node.type = tgt_type
        node.ref = 0
        _list_move(node, lst.head(tgt_type))

    def _move(self, lst: _LruList, node: LruNode, tgt_type: int) -> None:
        """__bpf_lru_node_move: between or within active and inactive (or to free)."""
        if node.type != tgt_type:
            self._count_dec(lst, node.type)
            self._count_inc(lst, tgt_type)
            node.type = tgt_type
        node.ref = 0
        if node is lst.next_inactive_rotation:
            lst.next_inactive_rotation = lst.next_inactive_rotation.prev
        if tgt_type == FREE:
            _list_del(node)
            lst.free += 1
        else:
            _list_move(node, lst.head(tgt_type))

    def _rotate_active(self, lst: _LruList) -> None:
        active = lst.active
        first = active.next
        node = active.prev
        i = 0
        while node is not active:
            tmp = node.prev
            assert isinstance(node, LruNode)
            self._move(lst, node, ACTIVE if node.ref else INACTIVE)
            i += 1
            if i == self.nr_scans or node is first:
                break
            node = tmp

    def _rotate_inactive(self, lst: _LruList) -> None:
        inactive = lst.inactive
        if inactive.next is inactive:
            return
        last = lst.next_inactive_rotation.next
        if last is inactive:
            last = last.next
        cur = lst.next_inactive_rotation
        nxt: _Link = inactive
        i = 0
        while i < self.nr_scans:
            if cur is inactive:
                if inactive.next is inactive:  # pragma: no cover - the kernel would spin
                    break
                cur = cur.prev
                continue
            assert isinstance(cur, LruNode)
            nxt = cur.prev
            if cur.ref:
                self._move(lst, cur, ACTIVE)
            if cur is last:
                break
            cur = nxt
            i += 1
        lst.next_inactive_rotation = nxt

    def _shrink_inactive(self, lst: _LruList, tgt_nshrink: int, tgt_free_type: int) -> int:
        inactive = lst.inactive
        nshrinked = 0
        i = 0
        node = inactive.prev
        while node is not inactive:
            tmp = node.prev
            assert isinstance(node, LruNode)
            if node.ref:
                self._move(lst, node, ACTIVE)
            elif self.del_from_htab(node):
                self._move_to_free(lst, node, tgt_free_type)
                nshrinked += 1
                if nshrinked == tgt_nshrink:
                    break
            i += 1
            if i == self.nr_scans:
                break
            node = tmp
        return nshrinked

    def _rotate(self, lst: _LruList) -> None:
        if lst.counts[INACTIVE] < lst.counts[ACTIVE]:
            self._rotate_active(lst)
        self._rotate_inactive(lst)

    def _shrink(self, lst: _LruList, tgt_nshrink: int, tgt_free_type: int) -> int:
        """__bpf_lru_list_shrink: the number of nodes freed (for the caller to count)."""
        nshrinked = self._shrink_inactive(lst, tgt_nshrink, tgt_free_type)
        if nshrinked:
            return nshrinked
        # Force shrink, ignoring the ref bit: inactive if not empty, else active.
        head = lst.inactive if lst.inactive.next is not lst.inactive else lst.active
        node = head.prev
        while node is not head:
            tmp = node.prev
            assert isinstance(node, LruNode)
            if self.del_from_htab(node):
                self._move_to_free(lst, node, tgt_free_type)
                return 1
            node = tmp
        return 0

    # -- the common LRU ----------------------------------------------------------------
    def _local_flush(self, lst: _LruList, loc: _LocalList) -> None:
        node = loc.pending.prev
        while node is not loc.pending:
            tmp = node.prev
            assert isinstance(node, LruNode)
            self._move_in(lst, node, ACTIVE if node.ref else INACTIVE)
            node = tmp

    def _pop_free_to_local(self, loc: _LocalList) -> None:
        lst = self.lru_list
        self._local_flush(lst, loc)
        self._rotate(lst)
        nfree = min(lst.free, self.target_free)
        lst.free -= nfree
        loc.free += nfree
        if nfree < self.target_free:
            loc.free += self._shrink(lst, self.target_free - nfree, LOCAL_FREE)

    def _add_pending(self, loc: _LocalList, cpu: int) -> LruNode:
        node = LruNode(cpu, LOCAL_PENDING)
        _list_add(node, loc.pending)
        return node

    def _pop_pending(self, loc: _LocalList) -> bool:
        """__local_list_pop_pending: evict the oldest unreferenced (else oldest) pending node."""
        for force in (False, True):
            node = loc.pending.prev
            while node is not loc.pending:
                assert isinstance(node, LruNode)
                if (not node.ref or force) and self.del_from_htab(node):
                    _list_del(node)
                    return True
                node = node.prev
        return False

    def _common_pop_free(self, cpu: int) -> LruNode | None:
        loc = self.local[cpu]
        if not loc.free:
            self._pop_free_to_local(loc)
        if loc.free:
            loc.free -= 1
            return self._add_pending(loc, cpu)
        # Steal from the local free/pending lists of every CPU, round robin.
        first_steal = steal = loc.next_steal
        found = False
        while True:
            sloc = self.local[steal]
            if sloc.free:
                sloc.free -= 1
                found = True
            else:
                found = self._pop_pending(sloc)
            steal = (steal + 1) % self.nr_cpus
            if found or steal == first_steal:
                break
        loc.next_steal = steal
        return self._add_pending(loc, cpu) if found else None

    # -- the per-CPU LRU -----------------------------------------------------------------
    def _percpu_pop_free(self, cpu: int) -> LruNode | None:
        lst = self.percpu_lru[cpu]
        self._rotate(lst)
        if not lst.free:
            lst.free += self._shrink(lst, PERCPU_FREE_TARGET, FREE)
        if not lst.free:
            return None
        lst.free -= 1
        node = LruNode(cpu, INACTIVE)
        self._count_inc(lst, INACTIVE)
        _list_add(node, lst.inactive)
        return node

    # -- the interface hashtab.c uses ------------------------------------------------------
    def pop_free(self, cpu: int) -> LruNode | None:
        """bpf_lru_pop_free: a node for a new element (None: the kernel's ENOMEM)."""
        return self._percpu_pop_free(cpu) if self.percpu else self._common_pop_free(cpu)

    def push_free(self, node: LruNode) -> None:
        """bpf_lru_push_free: give a deleted element's node back."""
        node.elem = None
        if self.percpu:
            self._move(self.percpu_lru[node.cpu], node, FREE)
            return
        if node.type == LOCAL_PENDING:
            _list_del(node)
            node.type = LOCAL_FREE
            node.ref = 0
            self.local[node.cpu].free += 1
            return
        self._move(self.lru_list, node, FREE)

    # -- introspection (tests, debugging) ---------------------------------------------------
    def lists(self) -> dict[str, list[bytes]]:
        """Keys on each list, head first (per-CPU lists suffixed with the CPU)."""
        def keys(head: _Link) -> list[bytes]:
            return [n.elem.key for n in _iter(head) if isinstance(n, LruNode) and n.elem]

        out: dict[str, list[bytes]] = {}
        if self.percpu:
            for cpu, lst in enumerate(self.percpu_lru):
                out[f"active{cpu}"] = keys(lst.active)
                out[f"inactive{cpu}"] = keys(lst.inactive)
        else:
            out["active"] = keys(self.lru_list.active)
            out["inactive"] = keys(self.lru_list.inactive)
            for cpu, loc in enumerate(self.local):
                out[f"pending{cpu}"] = keys(loc.pending)
        return out


def _percpu_lru_max_entries(max_entries: int, nr_cpus: int) -> int:
    """htab_map_alloc: round up to a multiple of the CPU count (down if that overflows)."""
    rounded = ((max_entries + nr_cpus - 1) & _U32) // nr_cpus * nr_cpus & _U32
    if rounded < max_entries:
        rounded = max_entries - max_entries % nr_cpus
    return rounded


@register_map(MapType.LRU_HASH)
class LruHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_HASH: a hash map that evicts the least recently used element."""

    lru = True
    percpu = False

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        percpu_lru = bool(attr.map_flags & MapFlags.NO_COMMON_LRU)
        if percpu_lru:
            attr = attrs.evolve(attr, max_entries=_percpu_lru_max_entries(
                attr.max_entries, runtime.nr_cpus))
        super().__init__(runtime, attr)
        self.lru_state = BpfLru(self.max_entries, runtime.nr_cpus, percpu_lru,
                                self._delete_node)

    # -- the LRU's callback: htab_lru_map_delete_node ------------------------------------
    def _delete_node(self, node: LruNode) -> bool:
        elem = node.elem
        if elem is None or self.elems.get(elem.key) is not elem:
            return False
        del self.elems[elem.key]
        self._unlink(elem)
        self._drop(elem)
        node.elem = None
        return True

    def _pop_node(self) -> LruNode:
        node = self.lru_state.pop_free(self.runtime.cpu)
        if node is None:
            raise BpfError(errno.ENOMEM, "no free LRU node (all are in use)")
        return node

    @staticmethod
    def _check_flags(old: _Elem | None, flags: int) -> None:
        if old is not None and flags == BPF_NOEXIST:
            raise BpfError(errno.EEXIST, "key exists (BPF_NOEXIST)")
        if old is None and flags == BPF_EXIST:
            raise BpfError(errno.ENOENT, "no such key (BPF_EXIST)")

    def _make_room(self, key: bytes) -> None:  # pragma: no cover - LRU maps never call it
        raise AssertionError("LRU maps evict in pop_free")

    # -- ops ------------------------------------------------------------------------------
    def lookup_elem(self, key: bytes) -> int | None:
        """A program's lookup: marks the element referenced (htab_lru_map_lookup_elem)."""
        elem = self.elems.get(key)
        if elem is None:
            return None
        assert isinstance(elem, _LruElem)
        elem.node.ref = 1
        return elem.regions[self.runtime.cpu if self.percpu else 0].base

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        """htab_lru_map_update_elem (a program's update; per-CPU: this CPU's value)."""
        if self.percpu:
            # pcpu_init_value(onallcpus=false): this CPU's value, the others zeroed; each
            # CPU's value is a round_up(value_size, 8) slot.
            cpu = self.runtime.cpu
            slot = round_up(self.value_size, 8)
            self._percpu_update(key, flags, lambda: [
                value.ljust(slot, b"\0") if c == cpu else bytes(slot)
                for c in range(self.runtime.nr_cpus)
            ], in_place={cpu: value})
            return
        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        h = htab_map_hash(key, self.hashrnd)
        node = self._pop_node()
        old = self.elems.get(key)
        try:
            self._check_flags(old, flags)
        except BpfError:
            self.lru_state.push_free(node)
            raise
        elem = _LruElem(key, h, self._new_regions(key, [value]), node)
        node.elem = elem
        self._link_head(elem)
        if old is not None:
            assert isinstance(old, _LruElem)
            node.ref = 1
            self._unlink_keep_new(old, elem)
            self.lru_state.push_free(old.node)
            self._drop(old)
        self.elems[key] = elem

    def _percpu_update(self, key: bytes, flags: int, new_values: Callable[[], list[bytes]],
                       in_place: dict[int, bytes]) -> None:
        """__htab_lru_percpu_map_update_elem: values change in place; no node for BPF_EXIST."""
        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        h = htab_map_hash(key, self.hashrnd)
        node = self._pop_node() if flags != BPF_EXIST else None
        old = self.elems.get(key)
        try:
            self._check_flags(old, flags)
        except BpfError:
            if node is not None:
                self.lru_state.push_free(node)
            raise
        if old is not None:
            assert isinstance(old, _LruElem)
            old.node.ref = 1
            for cpu, v in in_place.items():
                old.regions[cpu].buf[:len(v)] = v
            if node is not None:
                self.lru_state.push_free(node)
            return
        assert node is not None
        elem = _LruElem(key, h, self._new_regions(key, new_values()), node)
        node.elem = elem
        self._link_head(elem)
        self.elems[key] = elem

    def delete_elem(self, key: bytes) -> None:
        elem = self.elems.pop(key, None)
        if elem is None:
            raise BpfError(errno.ENOENT, "no such key")
        assert isinstance(elem, _LruElem)
        self._unlink(elem)
        self.lru_state.push_free(elem.node)
        self._drop(elem)

    # -- syscall side ---------------------------------------------------------------------
    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        if not self.percpu:
            self.update_elem(key, value, flags)
            return
        # pcpu_copy_value(onallcpus): whole 8-byte-rounded slots, the caller's padding kept.
        slot = round_up(self.value_size, 8)
        values = [value[c * slot:(c + 1) * slot] for c in range(self.runtime.nr_cpus)]
        self._percpu_update(key, flags, lambda: values, in_place=dict(enumerate(values)))



@register_map(MapType.LRU_PERCPU_HASH)
class LruPercpuHashMap(LruHashMap):
    """BPF_MAP_TYPE_LRU_PERCPU_HASH: per-CPU values, LRU eviction."""

    percpu = True
