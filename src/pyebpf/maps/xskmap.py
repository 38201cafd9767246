"""AF_XDP socket maps: XSKMAP (net/xdp/xskmap.c).

Creation (``xsk_map_alloc``): key_size 4, value_size 4, max_entries > 0 and
only BPF_F_NUMA_NODE / RDONLY / WRONLY, else EINVAL. MAP_UPDATE_ELEM takes
an AF_XDP socket fd: flags above BPF_EXIST EINVAL, a key past the end
E2BIG, then ``sockfd_lookup``: a closed fd EBADF, any other file ENOTSOCK.
pyebpf has no AF_XDP sockets, so no update can succeed and the map stays
empty: a program's lookup finds nothing (NULL), bpf_redirect_map falls back
to the action in its flags. MAP_LOOKUP_ELEM from user space is EOPNOTSUPP,
delete is EINVAL past the end and succeeds otherwise, GET_NEXT_KEY walks
every index. Checked on Linux 6.18.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..uapi import BPF_EXIST, MapFlags, MapType
from . import register_map
from .array import array_get_next_key
from .base import BpfMap

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["XskMap", "sockfd_lookup"]

_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY)


def _u32(b: bytes) -> int:
    return int.from_bytes(b[:4], "little")


def sockfd_lookup(runtime: Runtime, fd: int) -> Any:
    """sockfd_lookup: EBADF for a closed fd, ENOTSOCK for one that is no socket
    (every fd a Runtime holds: pyebpf has no socket files)."""
    if fd not in runtime.fds:
        raise BpfError(errno.EBADF, f"fd {fd} is not open")
    raise BpfError(errno.ENOTSOCK, f"fd {fd} is not a socket")


@register_map(MapType.XSKMAP)
class XskMap(BpfMap):
    """BPF_MAP_TYPE_XSKMAP."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size != 4
                or attr.map_flags & ~_CREATE_FLAG_MASK):
            raise BpfError(errno.EINVAL, "an XSK map needs key_size 4, value_size 4, "
                           "max_entries > 0 and only NUMA_NODE/RDONLY/WRONLY flags")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.charge(self.max_entries * 8)
        #: index -> AF_XDP socket (always empty: pyebpf has none).
        self.sockets: dict[int, Any] = {}

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        index = _u32(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        sockfd_lookup(self.runtime, _u32(value))

    def lookup_elem(self, key: bytes) -> int | None:
        return None  # __xsk_map_lookup_elem: no socket in the slot

    def target(self, key: int) -> Any:
        return self.sockets.get(key & 0xFFFF_FFFF)

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, "XSK maps can't be looked up from user space")

    def delete_elem(self, key: bytes) -> None:
        index = _u32(key)
        if index >= self.max_entries:
            raise BpfError(errno.EINVAL, f"index {index} is past max_entries {self.max_entries}")
        self.sockets.pop(index, None)

    def get_next_key(self, key: bytes | None) -> bytes:
        return array_get_next_key(key, self.max_entries)
