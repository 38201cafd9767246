"""Device maps: DEVMAP and DEVMAP_HASH (kernel/bpf/devmap.c), the targets of
XDP's ``bpf_redirect_map``.

Creation (``dev_map_init_map``): key_size 4, max_entries > 0, value_size 4
(``struct bpf_devmap_val``'s ifindex) or 8 (ifindex and a program fd), and
only BPF_F_NUMA_NODE / RDONLY / WRONLY, else EINVAL; a hash with more than
2**31 entries is EINVAL. The map gets BPF_F_RDONLY_PROG (programs read the
value a lookup returns, never write it), which OBJ_GET_INFO shows.

MAP_UPDATE_ELEM (``__dev_map_update_elem``): flags above BPF_EXIST EINVAL, a
key past the end E2BIG, BPF_NOEXIST EEXIST (the array's elements always
exist); ifindex 0 empties the slot (with a program fd > 0: EINVAL); otherwise
the device must exist in the runtime's network namespace and the program, if
given, be an XDP program loaded for BPF_XDP_DEVMAP that matches the map's
owner, else EINVAL. The hash (``__dev_map_hash_update_elem``): ifindex 0 is
EINVAL, BPF_NOEXIST on an existing key EEXIST, a new key in a full map E2BIG.

MAP_LOOKUP_ELEM gives ``bpf_devmap_val`` with the program's id in place of its
fd (ENOENT for an empty slot); delete is EINVAL past the end of an array and
succeeds on an empty slot; a hash's delete of a missing key is ENOENT.
GET_NEXT_KEY: an array walks every index; a hash walks its buckets
(``key & (n_buckets - 1)``) in order, newest first within a bucket.
A program's bpf_map_lookup_elem gets a read-only pointer to the value.
Checked on Linux 6.18.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..memory import Perm, Region
from ..uapi import BPF_EXIST, BPF_NOEXIST, AttachType, MapFlags, MapType, ProgType
from . import register_map
from .array import array_get_next_key
from .base import BpfMap

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["DevMap", "DevMapHash", "dev_get_by_index", "xdp_map_prog"]

DEV_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY)
#: offsetofend(struct bpf_devmap_val, ifindex) / (..., bpf_prog.fd).
_VAL_IFINDEX, _VAL_PROG = 4, 8


def _u32(b: bytes, off: int = 0) -> int:
    return int.from_bytes(b[off:off + 4], "little")


def _s32(b: bytes, off: int) -> int:
    return int.from_bytes(b[off:off + 4], "little", signed=True)


def dev_get_by_index(runtime: Runtime, ifindex: int) -> Any:
    """The runtime's network device ``ifindex`` in the current namespace, or None."""
    from ..progs.skb import _netdev

    return _netdev(runtime, ifindex)


def xdp_map_prog(m: BpfMap, fd: int, attach_type: int) -> Any:
    """The XDP program ``fd`` for a devmap/cpumap entry: an XDP program loaded for
    ``attach_type`` that the map's owner accepts (BpfError EINVAL, or the fd's
    own EBADF, otherwise)."""
    from ..prog import BpfProg
    from .prog_array import prog_map_compatible

    f = m.runtime.fds.get(fd)
    if f is None:
        raise BpfError(errno.EBADF, f"fd {fd} is not open")
    prog = f.obj
    if not isinstance(prog, BpfProg) or prog.prog_type is not ProgType.XDP:
        raise BpfError(errno.EINVAL, f"fd {fd} is not an XDP program")
    if prog.expected_attach_type != attach_type or not prog_map_compatible(m, prog):
        raise BpfError(errno.EINVAL, f"program {prog.id} was not loaded for "
                       f"{AttachType(attach_type).name} or doesn't match the map's owner")
    return prog


class _DevMapBase(BpfMap):
    """What both device maps share: value checks, entries as read-only regions."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        if (attr.max_entries == 0 or attr.key_size != 4
                or attr.value_size not in (_VAL_IFINDEX, _VAL_PROG)
                or attr.map_flags & ~DEV_CREATE_FLAG_MASK):
            raise BpfError(errno.EINVAL, "a device map needs key_size 4, value_size 4 or 8, "
                           "max_entries > 0 and only NUMA_NODE/RDONLY/WRONLY flags")
        if attr.map_type == MapType.DEVMAP_HASH and attr.max_entries > 1 << 31:
            raise BpfError(errno.EINVAL, "too many entries for a device hash")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        # dev_map_init_map: lookups return a pointer into the entry; programs only read it.
        self.map_flags |= int(MapFlags.RDONLY_PROG)
        #: key -> (region holding the bpf_devmap_val, the device, the program or None).
        self.entries: dict[int, tuple[Region, Any, Any]] = {}
        self.owner = None

    def _new_entry(self, key: int, value: bytes) -> tuple[Region, Any, Any]:
        """__dev_map_alloc_node: EINVAL for an unknown device or an unfit program."""
        ifindex = _u32(value)
        dev = dev_get_by_index(self.runtime, ifindex)
        if dev is None:
            raise BpfError(errno.EINVAL, f"no network device with ifindex {ifindex}")
        prog = None
        if self.value_size >= _VAL_PROG and _s32(value, 4) > 0:
            try:
                prog = xdp_map_prog(self, _s32(value, 4), AttachType.XDP_DEVMAP)
            except BpfError as e:
                raise BpfError(errno.EINVAL, str(e)) from None
        val = bytearray(self.value_size)
        val[0:4] = value[0:4]
        if self.value_size >= _VAL_PROG:
            val[4:8] = struct.pack("<I", prog.id if prog is not None else 0)
        self.charge(64)
        region = self.runtime.memory.map(val, kind="map_value", name=self.name or "devmap",
                                         perms=Perm.R)
        if prog is not None:
            prog.hold()
        return region, dev, prog

    def _drop(self, entry: tuple[Region, Any, Any]) -> None:
        region, _, prog = entry
        self.runtime.uncharge(64)
        self.charged -= 64
        self.runtime.unmap_later(region)
        if prog is not None:
            prog.release()

    def target(self, key: int) -> Any:
        """The device of entry ``key`` (what bpf_redirect_map looks up), or None."""
        entry = self.entries.get(key & 0xFFFF_FFFF)
        return entry[1] if entry is not None else None

    def redirect_lookup(self, key: int) -> tuple[Region, Any, Any] | None:
        """__dev_map_(hash_)lookup_elem for bpf_redirect_map: the entry (its value
        region, device and program) the frame goes to, or None."""
        return self.entries.get(key & 0xFFFF_FFFF)

    def broadcast_entries(self) -> list[tuple[Region, Any, Any]]:
        """The entries dev_map_enqueue_multi walks, in its order."""
        return [self.entries[k] for k in sorted(self.entries)]

    def lookup_elem(self, key: bytes) -> int | None:
        entry = self.entries.get(_u32(key))
        return entry[0].base if entry is not None else None

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        entry = self.entries.get(_u32(key))
        if entry is None:
            raise BpfError(errno.ENOENT, "no device at this key")
        return bytes(entry[0].buf)

    def free(self) -> None:
        entries, self.entries = self.entries, {}
        for entry in entries.values():
            self._drop(entry)
        super().free()


@register_map(MapType.DEVMAP)
class DevMap(_DevMapBase):
    """BPF_MAP_TYPE_DEVMAP: an array of devices."""

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        index = _u32(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        if flags == BPF_NOEXIST:
            raise BpfError(errno.EEXIST, "device map elements always exist (BPF_NOEXIST)")
        if _u32(value) == 0:
            if self.value_size >= _VAL_PROG and _s32(value, 4) > 0:
                raise BpfError(errno.EINVAL, "a program needs a device (ifindex 0)")
            new = None
        else:
            new = self._new_entry(index, value)
        old = self.entries.pop(index, None)
        if new is not None:
            self.entries[index] = new
        if old is not None:
            self._drop(old)

    def delete_elem(self, key: bytes) -> None:
        index = _u32(key)
        if index >= self.max_entries:
            raise BpfError(errno.EINVAL, f"index {index} is past max_entries {self.max_entries}")
        old = self.entries.pop(index, None)
        if old is not None:
            self._drop(old)

    def get_next_key(self, key: bytes | None) -> bytes:
        return array_get_next_key(key, self.max_entries)


def _roundup_pow_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


@register_map(MapType.DEVMAP_HASH)
class DevMapHash(_DevMapBase):
    """BPF_MAP_TYPE_DEVMAP_HASH: devices by any u32 key, in hash buckets."""

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.n_buckets = _roundup_pow_of_two(self.max_entries)
        #: bucket -> keys, newest first (hlist_add_head_rcu).
        self.buckets: dict[int, list[int]] = {}

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        idx = _u32(key)
        if flags > BPF_EXIST or _u32(value) == 0:
            raise BpfError(errno.EINVAL, "invalid update flags, or ifindex 0")
        old = self.entries.get(idx)
        if old is not None and flags & BPF_NOEXIST:
            raise BpfError(errno.EEXIST, f"key {idx} exists (BPF_NOEXIST)")
        new = self._new_entry(idx, value)
        bucket = self.buckets.setdefault(idx & (self.n_buckets - 1), [])
        if old is not None:
            bucket.remove(idx)
        elif len(self.entries) >= self.max_entries:
            self._drop(new)
            raise BpfError(errno.E2BIG, "the device hash is full")
        bucket.insert(0, idx)
        self.entries[idx] = new
        if old is not None:
            self._drop(old)

    def delete_elem(self, key: bytes) -> None:
        idx = _u32(key)
        old = self.entries.pop(idx, None)
        if old is None:
            raise BpfError(errno.ENOENT, f"no device at key {idx}")
        self.buckets[idx & (self.n_buckets - 1)].remove(idx)
        self._drop(old)

    def broadcast_entries(self) -> list[tuple[Region, Any, Any]]:
        """dev_map_enqueue_multi walks the buckets in order, each newest first."""
        return [self.entries[k] for b in sorted(self.buckets) for k in self.buckets[b]]

    def get_next_key(self, key: bytes | None) -> bytes:
        """dev_map_hash_get_next_key."""
        start = 0
        if key is not None:
            idx = _u32(key)
            if idx in self.entries:
                b = idx & (self.n_buckets - 1)
                chain = self.buckets[b]
                pos = chain.index(idx)
                if pos + 1 < len(chain):
                    return chain[pos + 1].to_bytes(4, "little")
                start = b + 1
        for b in sorted(i for i in self.buckets if i >= start):
            if self.buckets[b]:
                return self.buckets[b][0].to_bytes(4, "little")
        raise BpfError(errno.ENOENT, "no more keys")
