"""Stack trace maps: STACK_TRACE (kernel/bpf/stackmap.c).

Creation (``stack_map_alloc``): flags other than BPF_F_NUMA_NODE, RDONLY,
WRONLY and BPF_F_STACK_BUILD_ID are EINVAL; key_size must be 4, max_entries
non-zero, value_size a non-zero multiple of 8 (of 32, ``struct
bpf_stack_build_id``, with BPF_F_STACK_BUILD_ID) holding at most
``sysctl_perf_event_max_stack`` (127) entries; more than 2**31 entries is
E2BIG. The table has ``roundup_pow_of_two(max_entries)`` buckets and
``max_entries`` preallocated elements.

``bpf_get_stackid`` (:meth:`StackTraceMap.get_stackid`) hashes the trace
(``jhash2`` over the u64 addresses as u32 words, seed 0); the bucket is
``hash & (n_buckets - 1)`` and is the stack id. A bucket holding the same
trace gives its id; BPF_F_FAST_STACK_CMP trusts an equal hash; a different
trace there is -EEXIST unless BPF_F_REUSE_STACKID replaces it; no free
element is -ENOMEM.

Syscall side: MAP_LOOKUP_ELEM copies the trace and zero-fills the rest of the
value (ENOENT for an empty bucket or an id past the buckets); update is
EINVAL; delete E2BIG past the buckets, ENOENT for an empty one;
GET_NEXT_KEY walks the non-empty buckets (an unknown key restarts at 0);
lookup-and-delete copies and empties a bucket. Program-side lookup is
EOPNOTSUPP (the verifier forbids it). Checked on Linux 6.18.

With BPF_F_STACK_BUILD_ID, each entry is ``struct bpf_stack_build_id``;
pyebpf has no ELF build ids to find, so every entry is the kernel's
fallback, ``status = BPF_STACK_BUILD_ID_IP`` with the address.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from ..errors import BpfError
from ..uapi import MapFlags, MapType
from . import register_map
from .base import BpfMap
from .jhash import jhash2

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["BPF_F_FAST_STACK_CMP", "BPF_F_REUSE_STACKID", "BPF_F_SKIP_FIELD_MASK",
           "BPF_F_USER_BUILD_ID", "BPF_F_USER_STACK", "StackTraceMap",
           "stack_build_id_entries"]

#: sysctl kernel.perf_event_max_stack (its default).
PERF_EVENT_MAX_STACK = 127
STACK_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY
                             | MapFlags.STACK_BUILD_ID)
#: sizeof(struct bpf_stack_build_id): s32 status, u8 build_id[20], u64 offset/ip.
BUILD_ID_SIZE = 32
BPF_STACK_BUILD_ID_IP = 2
#: bpf_get_stackid / bpf_get_stack flags (include/uapi/linux/bpf.h).
BPF_F_SKIP_FIELD_MASK = 0xFF
BPF_F_USER_STACK = 1 << 8
BPF_F_FAST_STACK_CMP = 1 << 9
BPF_F_REUSE_STACKID = 1 << 10
BPF_F_USER_BUILD_ID = 1 << 11


def _roundup_pow_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def stack_build_id_entries(ips: list[int]) -> bytes:
    """``struct bpf_stack_build_id`` entries for ``ips`` (the IP fallback)."""
    return b"".join(struct.pack("<i20sQ", BPF_STACK_BUILD_ID_IP, bytes(20), ip) for ip in ips)


def current_trace(runtime: Runtime, flags: int, max_depth: int) -> list[int]:
    """get_perf_callchain: the user or the kernel stack, at most ``max_depth`` deep."""
    stack = runtime.user_stack if flags & BPF_F_USER_STACK else runtime.kernel_stack
    return list(stack[:min(max_depth, PERF_EVENT_MAX_STACK)])


@register_map(MapType.STACK_TRACE)
class StackTraceMap(BpfMap):
    """BPF_MAP_TYPE_STACK_TRACE."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        vs = attr.value_size
        if attr.map_flags & ~STACK_CREATE_FLAG_MASK:
            raise BpfError(errno.EINVAL, f"invalid flags {attr.map_flags:#x} for a stack map")
        if attr.max_entries == 0 or attr.key_size != 4 or vs < 8 or vs % 8:
            raise BpfError(errno.EINVAL, "a stack map needs key_size 4, max_entries > 0 and a "
                           "value_size that is a multiple of 8")
        if attr.map_flags & MapFlags.STACK_BUILD_ID:
            if vs % BUILD_ID_SIZE or vs // BUILD_ID_SIZE > PERF_EVENT_MAX_STACK:
                raise BpfError(errno.EINVAL, "build-id stack values are up to 127 entries of "
                               "32 bytes")
        elif vs // 8 > PERF_EVENT_MAX_STACK:
            raise BpfError(errno.EINVAL, "stack values hold at most 127 addresses")
        if attr.max_entries > 1 << 31:
            raise BpfError(errno.E2BIG, "too many entries")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.n_buckets = _roundup_pow_of_two(self.max_entries)
        self.elem_size = BUILD_ID_SIZE if self.map_flags & MapFlags.STACK_BUILD_ID else 8
        self.charge(self.n_buckets * 8 + self.max_entries * (16 + self.value_size))
        #: id -> (hash, trace addresses).
        self.buckets: dict[int, tuple[int, tuple[int, ...]]] = {}

    @property
    def use_build_id(self) -> bool:
        return bool(self.map_flags & MapFlags.STACK_BUILD_ID)

    def _data(self, ips: tuple[int, ...]) -> bytes:
        if self.use_build_id:
            return stack_build_id_entries(list(ips))
        return b"".join(struct.pack("<Q", ip) for ip in ips)

    # -- bpf_get_stackid -----------------------------------------------------------------
    def get_stackid(self, trace: list[int], flags: int) -> int:
        """__bpf_get_stackid: the id of ``trace`` (``skip`` entries dropped first)."""
        skip = flags & BPF_F_SKIP_FIELD_MASK
        if len(trace) <= skip:
            raise BpfError(errno.EFAULT, "the stack is not deeper than skip")
        ips = tuple(trace[skip:])
        words: list[int] = []
        for ip in ips:
            words += (ip & 0xFFFF_FFFF, ip >> 32 & 0xFFFF_FFFF)
        h = jhash2(words, 0)
        sid = h & (self.n_buckets - 1)
        bucket = self.buckets.get(sid)
        hash_matches = bucket is not None and bucket[0] == h
        if hash_matches and flags & BPF_F_FAST_STACK_CMP:
            return sid
        if hash_matches and bucket is not None and bucket[1] == ips:
            return sid
        if bucket is not None and not flags & BPF_F_REUSE_STACKID:
            raise BpfError(errno.EEXIST, f"stack id {sid} holds another trace")
        if len(self.buckets) >= self.max_entries:  # the new element comes first
            raise BpfError(errno.ENOMEM, "no free stack map element")
        self.buckets[sid] = (h, ips)
        return sid

    # -- the ops -------------------------------------------------------------------------
    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EOPNOTSUPP, "stack maps can't be looked up by a program")

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        """bpf_stackmap_copy."""
        bucket = self.buckets.get(int.from_bytes(key, "little"))
        if bucket is None:
            raise BpfError(errno.ENOENT, "no stack with this id")
        return self._data(bucket[1]).ljust(self.value_size, b"\0")

    def syscall_lookup_and_delete(self, key: bytes | None, flags: int) -> bytes:
        if key is None:
            raise BpfError(errno.EFAULT, "NULL key")
        value = self.syscall_lookup(key, flags)
        del self.buckets[int.from_bytes(key, "little")]
        return value

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EINVAL, "stack maps are filled by bpf_get_stackid only")

    def delete_elem(self, key: bytes) -> None:
        sid = int.from_bytes(key, "little")
        if sid >= self.n_buckets:
            raise BpfError(errno.E2BIG, f"id {sid} is past the {self.n_buckets} buckets")
        if self.buckets.pop(sid, None) is None:
            raise BpfError(errno.ENOENT, f"no stack with id {sid}")

    def get_next_key(self, key: bytes | None) -> bytes:
        sid = 0
        if key is not None:
            cur = int.from_bytes(key, "little")
            sid = cur + 1 if cur < self.n_buckets and cur in self.buckets else 0
        later = [i for i in self.buckets if i >= sid]
        if not later:
            raise BpfError(errno.ENOENT, "no more stacks")
        return min(later).to_bytes(4, "little")
