"""SO_REUSEPORT socket arrays: REUSEPORT_SOCKARRAY (kernel/bpf/reuseport_array.c),
the table ``bpf_sk_select_reuseport`` picks a listening socket from.

Creation (``reuseport_array_alloc_check``): value_size 4 or 8 (a socket fd in,
a u64 socket cookie out), then the array checks. MAP_UPDATE_ELEM: flags
above BPF_EXIST EINVAL, an index past the end E2BIG, a u64 fd above S32_MAX
EINVAL, then ``sockfd_lookup`` (a closed fd EBADF, any other file ENOTSOCK),
then ``reuseport_array_update_check``: BPF_EXIST on an empty slot ENOENT, a
socket that is not TCP/UDP (AF_XDP, packet) ENOTSUPP, and, pyebpf having no
SO_REUSEPORT groups, any other EINVAL: the array stays empty. MAP_LOOKUP_ELEM: ENOSPC
unless value_size is 8, then ENOENT; delete: E2BIG past the end, ENOENT for
an empty slot; GET_NEXT_KEY walks every index. Checked on Linux 6.18.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import ENOTSUPP, BpfError
from ..uapi import BPF_EXIST, MapType
from . import register_map
from .array import ArrayMap, array_get_next_key
from .base import BpfMap
from .xskmap import sockfd_lookup

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["ReuseportArrayMap"]

IPPROTO_TCP, IPPROTO_UDP = 6, 17

S32_MAX = 0x7FFF_FFFF


def _u32(b: bytes) -> int:
    return int.from_bytes(b[:4], "little")


@register_map(MapType.REUSEPORT_SOCKARRAY)
class ReuseportArrayMap(BpfMap):
    """BPF_MAP_TYPE_REUSEPORT_SOCKARRAY."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        if attr.value_size not in (4, 8):
            raise BpfError(errno.EINVAL, "a reuseport array stores socket fds: value_size "
                           "must be 4 or 8")
        ArrayMap.alloc_check(attr, runtime)

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.charge(self.max_entries * 8)
        #: index -> socket (always empty: pyebpf has no sockets).
        self.sockets: dict[int, Any] = {}

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        index = _u32(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        if self.value_size == 8:
            fd = int.from_bytes(value, "little")
            if fd > S32_MAX:
                raise BpfError(errno.EINVAL, f"fd {fd} is out of range")
        else:
            fd = int.from_bytes(value, "little", signed=True)
        sk = sockfd_lookup(self.runtime, fd)
        # reuseport_array_update_check (every slot is empty): pyebpf's sockets are
        # no TCP/UDP sockets (AF_XDP, packet: ENOTSUPP) or TCP/UDP sockets in no
        # SO_REUSEPORT group (EINVAL)
        if flags == BPF_EXIST:
            raise BpfError(errno.ENOENT, f"slot {index} is empty (BPF_EXIST)")
        if getattr(sk, "protocol", 0) not in (IPPROTO_TCP, IPPROTO_UDP):
            raise BpfError(ENOTSUPP, "only TCP and UDP sockets go in a reuseport array")
        raise BpfError(errno.EINVAL, "the socket is in no SO_REUSEPORT group")

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, "reuseport arrays are filled from user space")

    def lookup_elem(self, key: bytes) -> int | None:
        return None  # reuseport_array_lookup_elem: no socket

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        if self.value_size != 8:
            raise BpfError(errno.ENOSPC, "the socket cookie needs a u64 value")
        raise BpfError(errno.ENOENT, "no socket at this index")

    def delete_elem(self, key: bytes) -> None:
        index = _u32(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        if self.sockets.pop(index, None) is None:
            raise BpfError(errno.ENOENT, f"slot {index} is empty")

    def get_next_key(self, key: bytes | None) -> bytes:
        return array_get_next_key(key, self.max_entries)
