"""What every map type provides: the kernel's ``bpf_map_ops``, as a base class.

A map family subclasses :class:`BpfMap` and fills in the operations it has,
exactly as a kernel map type fills its ``bpf_map_ops`` table; an operation it
lacks answers as the kernel does when the pointer is NULL (EOPNOTSUPP or
ENOTSUPP, per command). One set of operations serves every caller: the
``bpf()`` commands, the helpers a program calls, and the friendly ``Map``.

Conventions:

- Keys and values cross these methods as ``bytes`` of exactly ``key_size`` /
  ``value_size`` (the syscall layer has already copied them in).
- ``lookup_elem`` returns the value's address in the runtime's address space
  (the pointer ``bpf_map_lookup_elem`` gives a program), or None. The syscall
  path copies the bytes out (``syscall_lookup``), per-CPU maps all CPUs' values.
- Failures raise :class:`~pyebpf.errors.BpfError` with the kernel's errno; the
  helper wrappers turn that into the negative return a program sees. A
  failing operation changes nothing.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from ..errors import ENOTSUPP, BpfError
from ..memory import Perm
from ..runtime import BpfObject, ObjKind
from ..uapi import BPF_EXIST, BPF_F_LOCK, MapFlags, MapType

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["BpfMap", "check_update_flags", "round_up"]

#: KMALLOC_MAX_SIZE on x86-64 (order-10 pages): the largest kernel allocation.
KMALLOC_MAX_SIZE = 1 << 22
#: Map flags that choose read/write access from the syscall and program sides.
ACCESS_FLAGS = MapFlags.RDONLY | MapFlags.WRONLY | MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG


def round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def map_flags_access_ok(flags: int) -> bool:
    """The kernel's ``bpf_map_flags_access_ok``: not both RDONLY and WRONLY (prog side)."""
    return (flags & (MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG)) != (
        MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG
    )


#: NUMA_NO_NODE (-1) as the u32 ``numa_node`` field holds it.
NUMA_NO_NODE = 0xFFFF_FFFF


def attr_numa_node(attr: MapCreateAttr) -> int:
    """bpf_map_attr_numa_node: the node asked for, or NUMA_NO_NODE (also when
    BPF_F_NUMA_NODE comes with node -1)."""
    return attr.numa_node if attr.map_flags & MapFlags.NUMA_NODE else NUMA_NO_NODE


def check_update_flags(flags: int) -> int:
    """Reject unknown update flags (EINVAL) and return the mode (ANY/NOEXIST/EXIST)."""
    if (flags & ~BPF_F_LOCK) > BPF_EXIST:
        raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
    return flags & ~BPF_F_LOCK


class BpfMap(BpfObject):
    """A map. Subclasses set ``map_type`` and implement the operations they support."""

    kind = ObjKind.MAP
    map_type: ClassVar[MapType]
    #: Maps whose ops exist for several MapType values list them here.
    map_types: ClassVar[tuple[MapType, ...]] = ()

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime)
        self.map_type = MapType(attr.map_type)  # type: ignore[misc]
        self.key_size = attr.key_size
        self.value_size = attr.value_size
        self.max_entries = attr.max_entries
        # bpf_map_flags_retain_permanent: RDONLY/WRONLY belong to the fd, not the map.
        self.map_flags = int(attr.map_flags) & ~int(MapFlags.RDONLY | MapFlags.WRONLY)
        self.map_extra = attr.map_extra
        # Set properly (validated, Latin-1) by MAP_CREATE's bpf_obj_name_cpy.
        name = attr.map_name
        self.name = bytes(name).split(b"\0", 1)[0].decode("latin-1") \
            if isinstance(name, (bytes, bytearray)) else name
        self.frozen = False
        #: Offsets of the value's special fields by kind ("bpf_timer", "bpf_spin_lock"
        #: ...), from the map's BTF (map_check_btf); empty without BTF.
        self.btf_fields: dict[str, int] = {}
        #: Bytes charged to the runtime for this map (returned on free).
        self.charged = 0
        # The "struct bpf_map" a program's map pointer points at: a small
        # read-only region whose address identifies the map to helpers.
        self.map_region = runtime.memory.map(64, kind="map", name=self.name, perms=Perm.R)
        self.addr = self.map_region.base
        runtime.maps_by_addr[self.addr] = self

    # -- creation ------------------------------------------------------------------
    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        """Validate a MAP_CREATE for this type (the kernel's ``map_alloc_check``)."""

    def charge(self, nbytes: int) -> None:
        self.runtime.charge(nbytes)
        self.charged += nbytes

    # -- referenced kptrs in values (bpf_obj_free_fields) --------------------------------
    @property
    def has_kptrs(self) -> bool:
        """Whether the value type holds ``__kptr`` fields (map->record's BPF_KPTR)."""
        if getattr(self, "btf_obj", None) is None:
            return False
        from ..verifier.mem import map_kptr_fields

        return bool(map_kptr_fields(self))

    def free_kptrs(self, buf: bytearray, base: int = 0) -> None:
        """bpf_obj_free_fields: release the objects the value at ``buf[base:]`` holds in
        its referenced kptr fields (the map owns them) and clear the fields. Called
        when the value is deleted, overwritten, or freed with the map."""
        if self.has_kptrs:
            from ..kfuncs.obj import map_free_kptrs

            map_free_kptrs(self, buf, base)

    def clear_kptrs(self, buf: bytearray, base: int = 0) -> None:
        """check_and_init_map_value: a value written from outside (a program's or the
        user's bytes) never sets a kptr field; the fields start NULL."""
        if self.has_kptrs:
            from ..verifier.mem import map_kptr_fields

            for off in map_kptr_fields(self):
                buf[base + off:base + off + 8] = bytes(8)

    def free(self) -> None:
        btf = getattr(self, "btf_obj", None)  # the BTF MAP_CREATE took (btf_load)
        if btf is not None:
            self.btf_obj = None
            btf.release()
        self.runtime.uncharge(self.charged)
        self.charged = 0
        self.runtime.maps_by_addr.pop(self.addr, None)
        self.runtime.timers.forget_map(self)
        self.runtime.unmap_later(self.map_region)

    # -- the ops table (defaults are the kernel's answer to a missing op) -----------
    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EOPNOTSUPP, f"{self.map_type.name} maps have no lookup")

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, f"{self.map_type.name} maps have no update")

    def delete_elem(self, key: bytes) -> None:
        raise BpfError(errno.EOPNOTSUPP, f"{self.map_type.name} maps have no delete")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, f"{self.map_type.name} maps have no next key")

    def lookup_and_delete_elem(self, key: bytes, flags: int) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, f"{self.map_type.name} maps have no lookup-and-delete")

    def push_elem(self, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, f"{self.map_type.name} maps have no push")

    def pop_elem(self) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, f"{self.map_type.name} maps have no pop")

    def peek_elem(self) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, f"{self.map_type.name} maps have no peek")

    # -- the syscall side ------------------------------------------------------------
    @property
    def syscall_value_size(self) -> int:
        """Bytes of a value in syscall buffers (per-CPU maps: one slot per CPU)."""
        return self.value_size

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        """MAP_LOOKUP_ELEM: the value's bytes (ENOENT when absent)."""
        addr = self.lookup_elem(key)
        if addr is None:
            raise BpfError(errno.ENOENT, "no such key")
        return self.runtime.memory.read(addr, self.value_size)

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        """MAP_UPDATE_ELEM from user space (per-CPU maps take every CPU's value)."""
        self.update_elem(key, value, flags)

    def syscall_lookup_and_delete(self, key: bytes | None, flags: int) -> bytes:
        """MAP_LOOKUP_AND_DELETE_ELEM (queue/stack maps take no key)."""
        if key is None:
            raise BpfError(errno.EFAULT, "NULL key")
        return self.lookup_and_delete_elem(key, flags)

    #: Whether the type supports the batch commands (the kernel's map_*_batch ops).
    supports_batch: ClassVar[bool] = False
    #: Whether lookup-and-delete batch is supported (hash maps only).
    supports_lookup_and_delete_batch: ClassVar[bool] = False

    def iter_keys(self) -> Iterator[bytes]:
        """Keys in get_next_key order (for batches and the friendly layer)."""
        key: bytes | None = None
        while True:
            try:
                key = self.get_next_key(key)
            except BpfError as e:
                if e.errno == errno.ENOENT:
                    return
                raise
            yield key

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} id={self.id} {self.map_type.name} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries}>")


def not_supported(what: str) -> BpfError:
    return BpfError(ENOTSUPP, what)
