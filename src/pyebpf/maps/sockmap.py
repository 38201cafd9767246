"""Socket maps: SOCKMAP and SOCKHASH (net/core/sock_map.c), as far as they go
without sockets.

Creation (``sock_map_alloc`` / ``sock_hash_alloc``): max_entries > 0, value_size
4 or 8 (a u32 or u64 socket fd in, a u64 socket cookie out), only
BPF_F_NUMA_NODE / RDONLY / WRONLY, else EINVAL; SOCKMAP needs key_size 4,
SOCKHASH a key_size of 1 to 512 (MAX_BPF_STACK; above: E2BIG) and at most
2**28 buckets (``U32_MAX / sizeof(struct bpf_shtab_bucket)``; more: EINVAL).

MAP_UPDATE_ELEM (``sock_map_update_elem_sys``) reads the fd first: above
S32_MAX EINVAL, then ``sockfd_lookup``: a closed fd EBADF, any other file
ENOTSOCK. pyebpf has no socket files, so updates fail there and the maps
stay empty. MAP_LOOKUP_ELEM: ENOSPC unless value_size is 8 (the cookie is a
u64), then ENOENT. Delete: SOCKMAP EINVAL (past the end or empty), SOCKHASH
ENOENT. GET_NEXT_KEY: SOCKMAP walks every index, SOCKHASH has no keys
(ENOENT). A program's lookup finds no socket (NULL). Checked on Linux 6.18.

Not modelled: the socket-carrying side (sk_msg/sk_skb redirects, sockops
updates), which needs simulated TCP/UDP sockets.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfError
from ..uapi import MapFlags, MapType
from . import register_map
from .array import array_get_next_key
from .base import BpfMap
from .xskmap import sockfd_lookup

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["SockHash", "SockMap"]

SOCK_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY)
MAX_BPF_STACK = 512
S32_MAX = 0x7FFF_FFFF
#: U32_MAX / sizeof(struct bpf_shtab_bucket): the most buckets a socket hash may have.
_MAX_BUCKETS = 0xFFFF_FFFF // 16


def _roundup_pow_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


class _SockMapBase(BpfMap):
    """What both socket maps answer while they hold no sockets."""

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        ufd = int.from_bytes(value[:self.value_size], "little")
        if ufd > S32_MAX:
            raise BpfError(errno.EINVAL, f"fd {ufd} is out of range")
        sockfd_lookup(self.runtime, ufd)

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        # bpf_sock_map_update / bpf_sock_hash_update take a socket from sock_ops.
        raise BpfError(errno.EOPNOTSUPP, "socket maps are filled with sockets")

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        if self.value_size != 8:
            raise BpfError(errno.ENOSPC, "the socket cookie needs a u64 value")
        raise BpfError(errno.ENOENT, "no socket at this key")

    def lookup_elem(self, key: bytes) -> int | None:
        return None


@register_map(MapType.SOCKMAP)
class SockMap(_SockMapBase):
    """BPF_MAP_TYPE_SOCKMAP."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~SOCK_CREATE_FLAG_MASK):
            raise BpfError(errno.EINVAL, "a sockmap needs key_size 4, value_size 4 or 8, "
                           "max_entries > 0 and only NUMA_NODE/RDONLY/WRONLY flags")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.charge(self.max_entries * 8)

    def delete_elem(self, key: bytes) -> None:
        index = int.from_bytes(key, "little")
        raise BpfError(errno.EINVAL, f"no socket at index {index}" if index < self.max_entries
                       else f"index {index} is past max_entries {self.max_entries}")

    def get_next_key(self, key: bytes | None) -> bytes:
        return array_get_next_key(key, self.max_entries)


@register_map(MapType.SOCKHASH)
class SockHash(_SockMapBase):
    """BPF_MAP_TYPE_SOCKHASH."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        if (attr.max_entries == 0 or attr.key_size == 0 or attr.value_size not in (4, 8)
                or attr.map_flags & ~SOCK_CREATE_FLAG_MASK):
            raise BpfError(errno.EINVAL, "a sockhash needs a key, value_size 4 or 8, "
                           "max_entries > 0 and only NUMA_NODE/RDONLY/WRONLY flags")
        if attr.key_size > MAX_BPF_STACK:
            raise BpfError(errno.E2BIG, f"key_size {attr.key_size} is above {MAX_BPF_STACK}")
        buckets = _roundup_pow_of_two(attr.max_entries) & 0xFFFF_FFFF
        if buckets == 0 or buckets > _MAX_BUCKETS:
            raise BpfError(errno.EINVAL, "too many buckets")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.charge(_roundup_pow_of_two(self.max_entries) * 16)

    def delete_elem(self, key: bytes) -> None:
        raise BpfError(errno.ENOENT, "no socket at this key")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.ENOENT, "the socket hash is empty")
