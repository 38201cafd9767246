"""User ring buffers: USER_RINGBUF (kernel/bpf/ringbuf.c), where user space
produces and a program consumes with ``bpf_user_ringbuf_drain``.

Creation is a ring buffer's (``ringbuf_map_alloc``: key_size and value_size 0,
a power-of-2, page-aligned max_entries, only BPF_F_NUMA_NODE); the element
commands are all ENOTSUPP. Checked on Linux 6.18.

User space writes with :class:`UserRingBufferProducer`, as libbpf's
``user_ring_buffer__reserve/submit/discard`` do: a record is an 8-byte header
(``len | BPF_RINGBUF_BUSY_BIT`` while reserved) and the sample, taking
``round_up(len + 8, 8)`` bytes; reserve fails with E2BIG for a record larger
than the ring and ENOSPC when there is no room; submit clears BUSY, discard
sets DISCARD.

The program side (:meth:`UserRingBufMap.drain`, ``bpf_user_ringbuf_drain``):
samples are taken from ``consumer_pos`` in order (``__bpf_user_ringbuf_peek``):
a ``producer_pos`` not a multiple of 8 or a record claiming more than was
produced is -EINVAL, one larger than the ring -E2BIG (larger than a dynptr
may be, 2**24 - 1 bytes, too), a discarded record is skipped, a busy one ends
the drain. Each sample is handed to the callback as a read-only
``BPF_DYNPTR_TYPE_LOCAL`` dynptr; at most 128 Ki samples per call; a callback
returning 1 stops the drain. The result is the number of samples drained
(discarded ones not counted), or the error.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..runtime import ObjKind
from ..uapi import (
    BPF_RB_FORCE_WAKEUP,
    BPF_RB_NO_WAKEUP,
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    BPF_RINGBUF_HDR_SZ,
    MapType,
)
from . import register_map
from .base import round_up
from .ringbuf import RingBufMap

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["BPF_MAX_USER_RINGBUF_SAMPLES", "UserRingBufMap", "UserRingBufferProducer"]

#: The most samples one bpf_user_ringbuf_drain call takes.
BPF_MAX_USER_RINGBUF_SAMPLES = 128 * 1024
#: DYNPTR_MAX_SIZE: the largest sample a dynptr can describe.
DYNPTR_MAX_SIZE = (1 << 24) - 1
_U32 = struct.Struct("<I")


@register_map(MapType.USER_RINGBUF)
class UserRingBufMap(RingBufMap):
    """BPF_MAP_TYPE_USER_RINGBUF: a ring buffer written by user space."""

    #: A drain is running (the kernel's ``rb->busy``): a nested one is -EBUSY.
    draining = False

    def _put(self, pos: int, data: bytes) -> None:
        """Write ``data`` at ring position ``pos`` (wrapping, as through the mapping)."""
        off = pos & self.mask
        first = min(len(data), self.size - off)
        buf = self.region.buf
        buf[off:off + first] = data[:first]
        buf[:len(data) - first] = data[first:]

    def _peek(self) -> tuple[int, int] | int:
        """__bpf_user_ringbuf_peek: (data offset, length) of the next sample, or an
        errno (ENODATA: nothing ready, EAGAIN: a discarded sample was skipped)."""
        prod_pos, cons_pos = self.producer_pos, self.consumer_pos
        if prod_pos % 8:
            return errno.EINVAL
        if cons_pos >= prod_pos:
            return errno.ENODATA
        hdr_len = self._hdr_len(cons_pos & self.mask)
        flags = hdr_len & (BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
        sample_len = hdr_len & ~flags
        total_len = round_up(sample_len + BPF_RINGBUF_HDR_SZ, 8)
        if total_len > prod_pos - cons_pos:
            return errno.EINVAL
        if total_len > self.size or sample_len > DYNPTR_MAX_SIZE:
            return errno.E2BIG
        if flags & BPF_RINGBUF_DISCARD_BIT:
            self.consumer_pos = cons_pos + total_len
            return errno.EAGAIN
        if flags & BPF_RINGBUF_BUSY_BIT:
            return errno.ENODATA
        off = (cons_pos + BPF_RINGBUF_HDR_SZ) & self.mask
        self._mirror_in(off, sample_len)  # the double mapping: the sample is contiguous
        return off, sample_len

    def drain(self, callback: Callable[[int, int], int], flags: int) -> int:
        """bpf_user_ringbuf_drain: ``callback(address, length)`` per sample (its
        return value 1 stops); the samples drained, or a negative errno."""
        if flags & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP):
            return -errno.EINVAL
        if self.draining:
            return -errno.EBUSY
        self.draining = True
        samples = discarded = 0
        ret = 0
        try:
            while samples < BPF_MAX_USER_RINGBUF_SAMPLES and ret == 0:
                got = self._peek()
                samples += 1
                if isinstance(got, int):
                    if got == errno.ENODATA:
                        samples -= 1
                        break
                    if got == errno.EAGAIN:
                        discarded += 1
                        continue
                    return -got
                off, length = got
                ret = callback(self.region.base + off, length)
                self.consumer_pos += round_up(length + BPF_RINGBUF_HDR_SZ, 8)
            return samples - discarded
        finally:
            self.draining = False
            if flags & BPF_RB_FORCE_WAKEUP or (not flags & BPF_RB_NO_WAKEUP and samples):
                self.wakeups += 1


class UserRingBufferProducer:
    """Write samples into a user ring buffer, as libbpf's ``user_ring_buffer``.

    ``reserve(size)`` returns a position to ``write`` the sample at, then
    ``submit`` or ``discard`` it; ``push(data)`` does all three.
    """

    def __init__(self, rb: UserRingBufMap | Any) -> None:
        if not isinstance(rb, UserRingBufMap):
            obj, _ = rb.runtime.get_object(rb.fd, ObjKind.MAP)
            rb = obj
        if not isinstance(rb, UserRingBufMap):
            raise BpfError(errno.EINVAL, "not a user ring buffer")
        self.rb = rb

    @classmethod
    def from_fd(cls, fd: int, runtime: Runtime) -> UserRingBufferProducer:
        obj, _ = runtime.get_object(fd, ObjKind.MAP)
        return cls(obj)

    def reserve(self, size: int) -> int:
        """user_ring_buffer__reserve: the sample's ring position."""
        rb = self.rb
        total = round_up(size + BPF_RINGBUF_HDR_SZ, 8)
        if size > 0xFFFF_FFFF or total > rb.size:
            raise BpfError(errno.E2BIG, f"a {size}-byte sample does not fit the ring")
        if rb.size - (rb.producer_pos - rb.consumer_pos) < total:
            raise BpfError(errno.ENOSPC, "no room in the user ring buffer")
        pos = rb.producer_pos
        rb._put(pos, struct.pack("<II", size | BPF_RINGBUF_BUSY_BIT, 0))
        rb.producer_pos = pos + total
        return pos + BPF_RINGBUF_HDR_SZ

    def write(self, pos: int, data: bytes) -> None:
        self.rb._put(pos, data)

    def _commit(self, pos: int, discard: bool) -> None:
        rb = self.rb
        off = (pos - BPF_RINGBUF_HDR_SZ) & rb.mask
        hdr_len = rb._hdr_len(off)
        if not hdr_len & BPF_RINGBUF_BUSY_BIT:
            raise BpfError(errno.EINVAL, "the sample was already submitted or discarded")
        new = hdr_len & ~BPF_RINGBUF_BUSY_BIT
        if discard:
            new |= BPF_RINGBUF_DISCARD_BIT
        _U32.pack_into(rb.region.buf, off, new)

    def submit(self, pos: int) -> None:
        self._commit(pos, discard=False)

    def discard(self, pos: int) -> None:
        self._commit(pos, discard=True)

    def push(self, data: bytes) -> None:
        pos = self.reserve(len(data))
        self.write(pos, data)
        self.submit(pos)
