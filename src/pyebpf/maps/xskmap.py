"""AF_XDP socket maps: XSKMAP (net/xdp/xskmap.c).

Creation (``xsk_map_alloc``): key_size 4, value_size 4, max_entries > 0 and
only BPF_F_NUMA_NODE / RDONLY / WRONLY, else EINVAL. MAP_UPDATE_ELEM takes
an AF_XDP socket fd: flags above BPF_EXIST EINVAL, a key past the end
E2BIG, then ``sockfd_lookup``: a closed fd EBADF, any other file ENOTSOCK, a
socket of another family EOPNOTSUPP; then the same socket again is a no-op,
BPF_NOEXIST on a filled slot EEXIST, BPF_EXIST on an empty one ENOENT. The
sockets are AF_XDP sockets (pyebpf.links.xsk.XskSocket); the map holds no
reference on them (closing one takes it out of the map), each slot holding
one holds a reference on the map (xsk_map_node_alloc). A program's lookup
gets the socket's ``struct bpf_xdp_sock`` (NULL for an empty slot);
bpf_redirect_map hands the frame to the socket (pyebpf.links.xdp_redirect).
MAP_LOOKUP_ELEM from user space is EOPNOTSUPP, delete is EINVAL past the end
and succeeds otherwise, GET_NEXT_KEY walks every index. Checked on Linux 6.18.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..runtime import ObjKind
from ..uapi import BPF_EXIST, BPF_NOEXIST, MapFlags, MapType
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
    """sockfd_lookup: the socket behind ``fd``; EBADF for a closed fd, ENOTSOCK
    for one that is no socket (the simulated sockets with files are AF_XDP)."""
    f = runtime.fds.get(fd)
    if f is None:
        raise BpfError(errno.EBADF, f"fd {fd} is not open")
    if f.obj.kind is not ObjKind.SOCKET:
        raise BpfError(errno.ENOTSOCK, f"fd {fd} is not a socket")
    return f.obj


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
        #: index -> AF_XDP socket (pyebpf.links.xsk.XskSocket).
        self.sockets: dict[int, Any] = {}

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        """xsk_map_update_elem."""
        from ..links.xsk import XskSocket

        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        index = _u32(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        xs = sockfd_lookup(self.runtime, _u32(value))
        if not isinstance(xs, XskSocket):
            raise BpfError(errno.EOPNOTSUPP, "only AF_XDP sockets go in an XSK map")
        old = self.sockets.get(index)
        if old is xs:
            return
        if old is not None and flags == BPF_NOEXIST:
            raise BpfError(errno.EEXIST, f"slot {index} holds a socket (BPF_NOEXIST)")
        if old is None and flags == BPF_EXIST:
            raise BpfError(errno.ENOENT, f"slot {index} is empty (BPF_EXIST)")
        self.hold()  # the socket's map node holds the map
        xs.map_list.append((self, index))
        self.sockets[index] = xs
        if old is not None:
            self._unlink(old, index)

    def _unlink(self, xs: Any, index: int) -> None:
        """xsk_map_sock_delete: the socket's node for this slot goes, with its
        reference on the map."""
        xs.map_list.remove((self, index))
        self.release()

    def remove_socket(self, index: int, xs: Any) -> None:
        """xsk_map_try_sock_delete: a closing socket leaves the slot it holds."""
        if self.sockets.get(index) is xs:
            del self.sockets[index]
            self._unlink(xs, index)

    def lookup_elem(self, key: bytes) -> int | None:
        """__xsk_map_lookup_elem: the socket's struct bpf_xdp_sock, or NULL."""
        xs = self.sockets.get(_u32(key))
        return xs.region.base if xs is not None else None

    def target(self, key: int) -> Any:
        return self.sockets.get(key & 0xFFFF_FFFF)

    def redirect_lookup(self, key: int) -> Any:
        """What bpf_redirect_map sends the frame to: the socket, or None."""
        return self.sockets.get(key & 0xFFFF_FFFF)

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, "XSK maps can't be looked up from user space")

    def delete_elem(self, key: bytes) -> None:
        index = _u32(key)
        if index >= self.max_entries:
            raise BpfError(errno.EINVAL, f"index {index} is past max_entries {self.max_entries}")
        old = self.sockets.pop(index, None)
        if old is not None:
            self._unlink(old, index)

    def get_next_key(self, key: bytes | None) -> bytes:
        return array_get_next_key(key, self.max_entries)
