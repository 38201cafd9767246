"""Cgroup arrays: CGROUP_ARRAY (kernel/bpf/arraymap.c ``cgroup_array_map_ops``).

Creation is a program array's: ``fd_array_map_alloc_check`` (value_size 4,
no BPF_F_RDONLY_PROG/WRONLY_PROG) then the array checks. MAP_UPDATE_ELEM
takes the fd of a cgroup v2 directory (``cgroup_get_from_fd``): flags other
than BPF_ANY are EINVAL, an index past the end E2BIG, an fd that is not a
cgroup directory EBADF. The slot holds a reference on the cgroup.
MAP_LOOKUP_ELEM and lookup-and-delete are ENOTSUPP, delete is E2BIG past the
end and ENOENT for an empty slot, GET_NEXT_KEY walks every index. Checked on
Linux 6.18.

A cgroup is any object of kind :attr:`~pyebpf.runtime.ObjKind.CGROUP` behind
an fd, with a ``cgroup_id`` (or ``id``) and a ``parent`` (None for the root,
id 1). :func:`cgroup_open` makes a simple one when a test needs a cgroup and
the hierarchy of :mod:`pyebpf.links` isn't used. The current task (and the
socket of a test-run skb, which the kernel charges to the task's cgroup) is
in the cgroup ``Runtime.cgroup_id``: :func:`under_cgroup` answers
``task_under_cgroup_hierarchy`` from that id, the ancestors it can find
through the objects the runtime's fds reach, and the root, which contains
every cgroup.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import ENOTSUPP, BpfError
from ..runtime import BpfObject, ObjKind
from ..uapi import BPF_ANY, MapType
from . import register_map
from .base import BpfMap
from .fd_array import FdArraySlots

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["CGROUP_ROOT_ID", "CgroupArrayMap", "SimpleCgroup", "cgroup_ancestors", "cgroup_id_of",
           "cgroup_open", "under_cgroup"]

#: The cgroup v2 root's id (its kernfs node id).
CGROUP_ROOT_ID = 1


def _index(key: bytes) -> int:
    return int.from_bytes(key[:4], "little")


class SimpleCgroup(BpfObject):
    """A cgroup v2 directory, reduced to what cgroup arrays and their helpers read."""

    kind = ObjKind.CGROUP

    def __init__(self, runtime: Runtime, cgroup_id: int, parent: Any = None) -> None:
        super().__init__(runtime)
        self.cgroup_id = cgroup_id
        self.parent = parent


def cgroup_open(runtime: Runtime, cgroup_id: int, parent: Any = None) -> int:
    """An fd on a new :class:`SimpleCgroup` with ``cgroup_id`` under ``parent``."""
    return runtime.install_fd(SimpleCgroup(runtime, cgroup_id, parent))


def cgroup_id_of(cg: Any) -> int:
    cid = getattr(cg, "cgroup_id", None)
    return int(cid if cid is not None else cg.id)


def _ancestor_ids(runtime: Runtime, cgroup_id: int) -> set[int]:
    """The id and the ancestors' ids of the cgroup ``cgroup_id``, as far as the
    cgroup objects the runtime's fds reach tell."""
    ids = {cgroup_id, CGROUP_ROOT_ID}
    for f in list(runtime.fds.values()):
        cg = f.obj
        if cg.kind is ObjKind.CGROUP and cgroup_id_of(cg) == cgroup_id:
            parent = getattr(cg, "parent", None)
            while parent is not None:
                ids.add(cgroup_id_of(parent))
                parent = getattr(parent, "parent", None)
    return ids


def cgroup_ancestors(runtime: Runtime, cgroup_id: int) -> list[int]:
    """cgrp->ancestors of the cgroup ``cgroup_id``: the root's id first, the
    cgroup's own last (its level is the index). Found in the runtime's cgroup
    hierarchy (:mod:`pyebpf.links.cgroup`), else through the cgroup objects its
    fds reach; a cgroup known nowhere is taken for a child of the root."""
    if cgroup_id == CGROUP_ROOT_ID:
        return [CGROUP_ROOT_ID]
    found: Any = None
    state = runtime.hooks.get("cgroup")
    if state is not None:  # the hierarchy exists: walk it
        todo = [state["root"]]
        while todo and found is None:
            cg = todo.pop()
            found = cg if cgroup_id_of(cg) == cgroup_id else None
            todo.extend(cg.children.values())
    if found is None:
        found = next((f.obj for f in list(runtime.fds.values())
                      if f.obj.kind is ObjKind.CGROUP and cgroup_id_of(f.obj) == cgroup_id), None)
    if found is None:
        return [CGROUP_ROOT_ID, cgroup_id]
    chain = []
    while found is not None:
        chain.append(cgroup_id_of(found))
        found = getattr(found, "parent", None)
    if chain[-1] != CGROUP_ROOT_ID:
        chain.append(CGROUP_ROOT_ID)
    return chain[::-1]


def under_cgroup(runtime: Runtime, cg: Any) -> bool:
    """task_under_cgroup_hierarchy(current, cg)."""
    return cgroup_id_of(cg) in _ancestor_ids(runtime, runtime.cgroup_id)


@register_map(MapType.CGROUP_ARRAY)
class CgroupArrayMap(FdArraySlots, BpfMap):
    """BPF_MAP_TYPE_CGROUP_ARRAY: slots of cgroups, empty at creation."""

    percpu = False

    stores = ("cgroup array", "cgroup")

    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EOPNOTSUPP, "cgroup arrays can't be looked up by a program")

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        raise BpfError(ENOTSUPP, "cgroup arrays have no syscall lookup")

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        if flags != BPF_ANY:
            raise BpfError(errno.EINVAL, "cgroup array updates take only BPF_ANY")
        index = _index(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        fd = _index(value)
        f = self.runtime.fds.get(fd)
        if f is None or f.obj.kind is not ObjKind.CGROUP:
            raise BpfError(errno.EBADF, f"fd {fd} is not a cgroup v2 directory")
        self._store_slot(index, f.obj)

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, "cgroup arrays are updated with cgroup fds from "
                       "user space")

    def under(self, index: int) -> int:
        """What the helpers return for slot ``index``: 1/0, or -E2BIG / -EAGAIN as errors."""
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        cg = self.slots.get(index)
        if cg is None:
            raise BpfError(errno.EAGAIN, f"slot {index} is empty")
        return int(under_cgroup(self.runtime, cg))
