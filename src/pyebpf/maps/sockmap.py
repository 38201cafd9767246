"""Socket maps: SOCKMAP and SOCKHASH (net/core/sock_map.c), as far as they go
without sockets.

Creation (``sock_map_alloc`` / ``sock_hash_alloc``): max_entries > 0, value_size
4 or 8 (a u32 or u64 socket fd in, a u64 socket cookie out), only
BPF_F_NUMA_NODE / RDONLY / WRONLY, else EINVAL; SOCKMAP needs key_size 4,
SOCKHASH a key_size of 1 to 512 (MAX_BPF_STACK; above: E2BIG) and at most
2**28 buckets (``U32_MAX / sizeof(struct bpf_shtab_bucket)``; more: EINVAL).

MAP_UPDATE_ELEM (``sock_map_update_elem_sys``) reads the fd first: above
S32_MAX EINVAL, then ``sockfd_lookup``: a closed fd EBADF, any other file
ENOTSOCK; a socket sockmap can't take (a packet socket, a TCP socket neither
established nor listening) EOPNOTSUPP. Then (``sock_map_update_common`` /
``sock_hash_update_common``): flags above BPF_EXIST EINVAL, SOCKMAP index past
the end E2BIG, the socket's psock taking the map's programs (EBUSY, see
:mod:`pyebpf.links.sockmap`), EEXIST/ENOENT for NOEXIST/EXIST, a full
SOCKHASH E2BIG. The sockets are :class:`pyebpf.links.inet.InetSocket`
(``sock.open()`` gives the fd). MAP_LOOKUP_ELEM: ENOSPC unless value_size is
8, ENOENT for no socket, else the socket cookie (u64). Delete: SOCKMAP EINVAL
(past the end or empty), SOCKHASH ENOENT. GET_NEXT_KEY: SOCKMAP walks every
index, SOCKHASH its buckets (jhash of the key) as the kernel does, newest
first within a bucket. A program's lookup yields the socket (its struct
bpf_sock) or NULL. The map's SK_MSG/SK_SKB programs (``progs``) go when the
map does. Checked on Linux 6.18.

bpf_sock_map_update / bpf_sock_hash_update from a sock_ops program insert the
ctx's socket (pyebpf.helpers.sockmap).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..uapi import BPF_EXIST, BPF_NOEXIST, MapFlags, MapType
from . import register_map
from .array import array_get_next_key
from .base import BpfMap
from .jhash import jhash

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
    """What both socket maps share: the fd update, the cookie lookup, the programs."""

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        from ..links.sockmap import PsockProgs

        super().__init__(runtime, attr)
        #: The map's SK_MSG / SK_SKB programs (struct sk_psock_progs).
        self.progs = PsockProgs()

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        from ..links.sockmap import sock_from_fd

        ufd = int.from_bytes(value[:self.value_size], "little")
        if ufd > S32_MAX:
            raise BpfError(errno.EINVAL, f"fd {ufd} is out of range")
        self.insert(key, sock_from_fd(self.runtime, ufd), flags)

    def insert(self, key: bytes, sk: Any, flags: int) -> None:
        """sock_map_update_common / sock_hash_update_common."""
        raise NotImplementedError

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        # bpf_sock_map_update / bpf_sock_hash_update take a socket from sock_ops.
        raise BpfError(errno.EOPNOTSUPP, "socket maps are filled with sockets")

    def sock_at(self, key: bytes) -> Any:
        """__sock_map_lookup_elem / __sock_hash_lookup_elem: the socket or None."""
        raise NotImplementedError

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        if self.value_size != 8:
            raise BpfError(errno.ENOSPC, "the socket cookie needs a u64 value")
        sk = self.sock_at(key)
        if sk is None:
            raise BpfError(errno.ENOENT, "no socket at this key")
        return int(sk.cookie()).to_bytes(8, "little")

    def lookup_elem(self, key: bytes) -> int | None:
        sk = self.sock_at(key)
        return None if sk is None else int(sk.sk_addr)

    def remove_socket(self, key: Any, sk: Any) -> None:
        """sock_map_delete_from_link / sock_hash_delete_from_link: the element at
        ``key`` goes if it still holds ``sk``."""
        raise NotImplementedError

    def free(self) -> None:
        """sock_map_free / sock_hash_free and map_release_uref: sockets and programs go."""
        for key, sk in list(self.elements()):
            self.remove_socket(key, sk)
        self.progs.drop()
        super().free()

    def elements(self) -> list[tuple[Any, Any]]:
        raise NotImplementedError

    def _link(self, sk: Any) -> Any:
        from ..links.sockmap import sock_map_link

        return sock_map_link(self, sk)


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
        #: stab->sks: index -> socket.
        self.sks: dict[int, Any] = {}

    def sock_at(self, key: bytes) -> Any:
        return self.sks.get(int.from_bytes(key[:4], "little"))

    def elements(self) -> list[tuple[Any, Any]]:
        return list(self.sks.items())

    def insert(self, key: bytes, sk: Any, flags: int) -> None:
        from ..links.sockmap import link_failed

        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        index = int.from_bytes(key[:4], "little")
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        psock = self._link(sk)
        osk = self.sks.get(index)
        if (osk is not None and flags == BPF_NOEXIST) or (osk is None and flags == BPF_EXIST):
            link_failed(psock)
            raise BpfError(errno.EEXIST if osk is not None else errno.ENOENT,
                           f"index {index} {'holds' if osk is not None else 'has no'} socket")
        psock.links.append((self, index))
        self.sks[index] = sk
        if osk is not None:
            osk.psock.unlink(self, index)

    def remove_socket(self, key: Any, sk: Any) -> None:
        if self.sks.get(key) is sk:
            del self.sks[key]
            sk.psock.unlink(self, key)

    def delete_elem(self, key: bytes) -> None:
        index = int.from_bytes(key, "little")
        sk = self.sks.get(index)
        if sk is None:
            raise BpfError(errno.EINVAL, f"no socket at index {index}"
                           if index < self.max_entries
                           else f"index {index} is past max_entries {self.max_entries}")
        self.remove_socket(index, sk)

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
        self.n_buckets = _roundup_pow_of_two(self.max_entries)
        self.charge(self.n_buckets * 16)
        #: htab->buckets: per bucket, (key, socket) newest first.
        self.buckets: dict[int, list[tuple[bytes, Any]]] = {}
        self.count = 0

    def _bucket(self, key: bytes) -> list[tuple[bytes, Any]]:
        return self.buckets.setdefault(jhash(bytes(key), 0) & (self.n_buckets - 1), [])

    def sock_at(self, key: bytes) -> Any:
        return next((sk for k, sk in self._bucket(key[:self.key_size]) if k == key), None)

    def elements(self) -> list[tuple[Any, Any]]:
        return [item for b in self.buckets.values() for item in b]

    def insert(self, key: bytes, sk: Any, flags: int) -> None:
        from ..links.sockmap import link_failed

        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        key = bytes(key[:self.key_size])
        psock = self._link(sk)
        bucket = self._bucket(key)
        old = next(((k, s) for k, s in bucket if k == key), None)
        err = 0
        if old is not None and flags == BPF_NOEXIST:
            err = errno.EEXIST
        elif old is None and flags == BPF_EXIST:
            err = errno.ENOENT
        elif old is None and self.count + 1 > self.max_entries:
            err = errno.E2BIG
        if err:
            link_failed(psock)
            raise BpfError(err, "the socket hash refused the element")
        psock.links.append((self, key))
        bucket.insert(0, (key, sk))
        self.count += 1
        if old is not None:
            bucket.remove(old)
            self.count -= 1
            old[1].psock.unlink(self, key)

    def remove_socket(self, key: Any, sk: Any) -> None:
        bucket = self._bucket(key)
        for item in bucket:
            if item[0] == key and item[1] is sk:
                bucket.remove(item)
                self.count -= 1
                sk.psock.unlink(self, key)
                return

    def delete_elem(self, key: bytes) -> None:
        sk = self.sock_at(bytes(key[:self.key_size]))
        if sk is None:
            raise BpfError(errno.ENOENT, "no socket at this key")
        self.remove_socket(bytes(key[:self.key_size]), sk)

    def get_next_key(self, key: bytes | None) -> bytes:
        """sock_hash_get_next_key: the next in the key's bucket, else the first of the
        following buckets (the first of all for a missing key)."""
        start = 0
        if key is not None:
            key = bytes(key[:self.key_size])
            h = jhash(key, 0) & (self.n_buckets - 1)
            bucket = self.buckets.get(h, [])
            pos = next((i for i, (k, _) in enumerate(bucket) if k == key), None)
            if pos is not None:
                if pos + 1 < len(bucket):
                    return bucket[pos + 1][0]
                start = h + 1
        for h in sorted(b for b in self.buckets if b >= start):
            if self.buckets[h]:
                return self.buckets[h][0][0]
        raise BpfError(errno.ENOENT, "no more keys")
