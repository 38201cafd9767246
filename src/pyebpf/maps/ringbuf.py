"""BPF ring buffers: RINGBUF (kernel/bpf/ringbuf.c), and a Python consumer.

Creation (``ringbuf_map_alloc``): map_flags other than BPF_F_NUMA_NODE,
a non-zero key_size or value_size, or a max_entries that is not a power of 2
and a multiple of the page size are EINVAL; more than
:data:`RINGBUF_MAX_DATA_SZ` bytes is E2BIG. ``max_entries`` is the size of
the data area in bytes.

The data area is one region of twice that size: the kernel maps the data
pages twice in a row so that a record wrapping past the end is contiguous in
memory, and programs rely on that. pyebpf keeps the two halves in step for
the bytes a record spills past the end: the mirror is filled from the ring at
reserve time and copied back at submit/discard time, which is when the
consumer may first look at them.

Records: an 8-byte header (u32 ``len`` with BPF_RINGBUF_BUSY_BIT while
reserved and BPF_RINGBUF_DISCARD_BIT once discarded; u32 ``pg_off``, the
record's page offset from the start of the kernel's ``struct bpf_ringbuf``,
whose three meta pages precede the data) followed by the sample, each record
taking ``round_up(len + 8, 8)`` bytes. Positions are free-running byte
counters: ``producer_pos`` (advanced by reserve), ``consumer_pos`` (advanced
by the consumer) and ``pending_pos`` (the oldest record not yet committed; a
reservation may not get a whole ring ahead of it, the 6.10+ overrun rule).

Program side (the helpers): :meth:`RingBufMap.reserve` (address or None, as
``bpf_ringbuf_reserve`` returns NULL: non-zero flags, too big, no room),
:func:`ringbuf_submit` / :func:`ringbuf_discard` (by address, as the helpers
take no map), :meth:`RingBufMap.output` (EINVAL for unknown flags, EAGAIN
when there is no room) and :meth:`RingBufMap.query`. Wake-ups the kernel
would send to a waiting consumer are counted in ``wakeups``.

Syscall side: the ring buffer has no elements. Lookup, update, delete and
get_next_key with a NULL key are ENOTSUPP (524); a non-NULL key is EINVAL
(key_size is 0); batches are ENOTSUPP. Checked on Linux 6.18.

User space reads records with :class:`RingBufferConsumer`, which walks them
as libbpf's ``ring_buffer__poll`` does: in order, skipping discarded ones,
stopping at the first record still busy.
"""

from __future__ import annotations

import errno
import struct
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ENOTSUPP, BpfError, BpfFault
from ..memory import PAGE_SHIFT, PAGE_SIZE, Region
from ..runtime import ObjKind
from ..uapi import (
    BPF_RB_AVAIL_DATA,
    BPF_RB_CONS_POS,
    BPF_RB_FORCE_WAKEUP,
    BPF_RB_NO_WAKEUP,
    BPF_RB_PROD_POS,
    BPF_RB_RING_SIZE,
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    BPF_RINGBUF_HDR_SZ,
    MapFlags,
    MapType,
)
from . import register_map
from .base import BpfMap, round_up

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = [
    "RINGBUF_MAX_DATA_SZ",
    "RINGBUF_MAX_RECORD_SZ",
    "RingBufMap",
    "RingBufferConsumer",
    "ringbuf_discard",
    "ringbuf_submit",
]

#: (A plain int: ~ of an IntFlag keeps only the defined bits.)
RINGBUF_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE)
#: Pages of ``struct bpf_ringbuf`` before the data: the non-mmap()able part (1
#: page), then the consumer and the producer position pages.
RINGBUF_PGOFF = 1
RINGBUF_POS_PAGES = 2
RINGBUF_NR_META_PAGES = RINGBUF_PGOFF + RINGBUF_POS_PAGES
#: The largest sample a reservation may ask for (UINT_MAX / 4).
RINGBUF_MAX_RECORD_SZ = 0xFFFF_FFFF // 4
#: The largest data area (the record header's page offset is 24 bits of pages).
RINGBUF_MAX_DATA_SZ = ((1 << 24) - RINGBUF_POS_PAGES - RINGBUF_PGOFF) * PAGE_SIZE

_U32 = struct.Struct("<I")
_HDR = struct.Struct("<II")

#: The ring buffer owning each data region (the helpers get only a record address).
_OWNERS: weakref.WeakKeyDictionary[Region, RingBufMap] = weakref.WeakKeyDictionary()


def _record_len(hdr_len: int) -> int:
    """The bytes a record takes, from its header's length word (flags masked)."""
    return round_up((hdr_len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT))
                    + BPF_RINGBUF_HDR_SZ, 8)


@register_map(MapType.RINGBUF)
class RingBufMap(BpfMap):
    """BPF_MAP_TYPE_RINGBUF."""

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        # ringbuf_map_alloc (the type has no map_alloc_check: these run after the
        # generic MAP_CREATE checks).
        if attr.map_flags & ~RINGBUF_CREATE_FLAG_MASK:
            raise BpfError(errno.EINVAL, f"invalid flags {attr.map_flags:#x} for a ring buffer")
        size = attr.max_entries
        if (attr.key_size or attr.value_size or size == 0 or size & (size - 1)
                or size % PAGE_SIZE):
            raise BpfError(errno.EINVAL, "a ring buffer needs key_size 0, value_size 0 and a "
                           "power-of-2, page-aligned max_entries")
        if size > RINGBUF_MAX_DATA_SZ:
            raise BpfError(errno.E2BIG, f"a ring buffer holds at most {RINGBUF_MAX_DATA_SZ} "
                           "bytes")
        runtime.charge(size + RINGBUF_NR_META_PAGES * PAGE_SIZE)
        try:
            super().__init__(runtime, attr)
        except BaseException:
            runtime.uncharge(size + RINGBUF_NR_META_PAGES * PAGE_SIZE)
            raise
        self.charged += size + RINGBUF_NR_META_PAGES * PAGE_SIZE
        self.size = size
        self.mask = size - 1
        self.consumer_pos = 0
        self.producer_pos = 0
        self.pending_pos = 0
        #: Wake-ups of a waiting consumer the kernel would have queued.
        self.wakeups = 0
        #: The data pages, twice (see the module doc).
        self.region = runtime.memory.map(2 * size, kind="ringbuf", name=self.name)
        _OWNERS[self.region] = self

    # -- the data area -------------------------------------------------------------
    def _hdr_len(self, off: int) -> int:
        return int(_U32.unpack_from(self.region.buf, off)[0])

    def _mirror_in(self, off: int, length: int) -> None:
        """Before the program sees a record: its spill past the end mirrors the ring's start."""
        spill = off + length - self.size
        if spill > 0:
            buf = self.region.buf
            buf[self.size:self.size + spill] = buf[:spill]

    def _mirror_out(self, off: int, length: int) -> None:
        """At commit: what the program wrote past the end goes to the ring's start."""
        spill = off + length - self.size
        if spill > 0:
            buf = self.region.buf
            buf[:spill] = buf[self.size:self.size + spill]

    def data_at(self, pos: int, length: int) -> bytes:
        """``length`` bytes of the ring from position ``pos`` (wrapping)."""
        off = pos & self.mask
        buf = self.region.buf
        if off + length <= self.size:
            return bytes(buf[off:off + length])
        return bytes(buf[off:self.size]) + bytes(buf[:off + length - self.size])

    # -- program side --------------------------------------------------------------------
    def reserve(self, size: int, flags: int = 0) -> int | None:
        """bpf_ringbuf_reserve: the sample's address, or None (the helper's NULL)."""
        if flags or size > RINGBUF_MAX_RECORD_SZ:
            return None
        length = round_up(size + BPF_RINGBUF_HDR_SZ, 8)
        if length > self.size:
            return None
        cons_pos = self.consumer_pos
        pend_pos, prod_pos = self.pending_pos, self.producer_pos
        new_prod_pos = prod_pos + length
        while pend_pos < prod_pos:  # skip records committed since the last reservation
            hdr_len = self._hdr_len(pend_pos & self.mask)
            if hdr_len & BPF_RINGBUF_BUSY_BIT:
                break
            pend_pos += _record_len(hdr_len)
        self.pending_pos = pend_pos
        if new_prod_pos - cons_pos > self.mask or new_prod_pos - pend_pos > self.mask:
            return None
        off = prod_pos & self.mask
        pg_off = RINGBUF_NR_META_PAGES + (off >> PAGE_SHIFT)
        _HDR.pack_into(self.region.buf, off, size | BPF_RINGBUF_BUSY_BIT, pg_off)
        self._mirror_in(off, length)
        self.producer_pos = new_prod_pos
        return self.region.base + off + BPF_RINGBUF_HDR_SZ

    def _commit(self, addr: int, flags: int, discard: bool) -> None:
        """bpf_ringbuf_commit: clear BUSY (set DISCARD), and wake the consumer if due."""
        off = addr - BPF_RINGBUF_HDR_SZ - self.region.base
        if not 0 <= off < self.size or off % 8:
            raise BpfFault(f"{addr:#x} is not a ring buffer sample", addr=addr)
        hdr_len = self._hdr_len(off)
        if not hdr_len & BPF_RINGBUF_BUSY_BIT:
            raise BpfFault(f"the ring buffer sample at {addr:#x} was already submitted or "
                           "discarded", addr=addr)
        self._mirror_out(off, _record_len(hdr_len))
        new_len = hdr_len ^ BPF_RINGBUF_BUSY_BIT
        if discard:
            new_len |= BPF_RINGBUF_DISCARD_BIT
        _U32.pack_into(self.region.buf, off, new_len)
        if flags & BPF_RB_FORCE_WAKEUP or (
                (self.consumer_pos & self.mask) == off and not flags & BPF_RB_NO_WAKEUP):
            self.wakeups += 1

    def submit(self, addr: int, flags: int = 0) -> None:
        """bpf_ringbuf_submit."""
        self._commit(addr, flags, discard=False)

    def discard(self, addr: int, flags: int = 0) -> None:
        """bpf_ringbuf_discard."""
        self._commit(addr, flags, discard=True)

    def output(self, data: bytes, flags: int = 0) -> None:
        """bpf_ringbuf_output: EINVAL for unknown flags, EAGAIN when there is no room."""
        if flags & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP):
            raise BpfError(errno.EINVAL, f"invalid ring buffer output flags {flags:#x}")
        addr = self.reserve(len(data))
        if addr is None:
            raise BpfError(errno.EAGAIN, "no room in the ring buffer")
        off = addr - self.region.base
        self.region.buf[off:off + len(data)] = data
        self._commit(addr, flags, discard=False)

    def query(self, flags: int) -> int:
        """bpf_ringbuf_query (an unknown selector gives 0)."""
        if flags == BPF_RB_AVAIL_DATA:
            return self.producer_pos - self.consumer_pos
        if flags == BPF_RB_RING_SIZE:
            return self.size
        if flags == BPF_RB_CONS_POS:
            return self.consumer_pos
        if flags == BPF_RB_PROD_POS:
            return self.producer_pos
        return 0

    # -- the element ops: a ring buffer has none ---------------------------------------------
    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(ENOTSUPP, "ring buffers have no elements to look up")

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        raise BpfError(ENOTSUPP, "ring buffers have no elements to look up")

    def peek_elem(self) -> bytes:  # MAP_LOOKUP_ELEM with the NULL key
        raise BpfError(ENOTSUPP, "ring buffers have no elements to look up")

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(ENOTSUPP, "ring buffers have no elements to update")

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(ENOTSUPP, "ring buffers have no elements to update")

    def push_elem(self, value: bytes, flags: int) -> None:  # MAP_UPDATE_ELEM, NULL key
        raise BpfError(ENOTSUPP, "ring buffers have no elements to update")

    def delete_elem(self, key: bytes | None) -> None:  # type: ignore[override]
        raise BpfError(ENOTSUPP, "ring buffers have no elements to delete")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(ENOTSUPP, "ring buffers have no keys")

    def free(self) -> None:
        _OWNERS.pop(self.region, None)
        self.runtime.unmap_later(self.region)
        super().free()


def _owner(runtime: Runtime, addr: int) -> RingBufMap:
    region = runtime.memory.region_at(addr)
    owner = _OWNERS.get(region) if region is not None else None
    if owner is None:
        raise BpfFault(f"{addr:#x} is not in a ring buffer", addr=addr)
    return owner


def ringbuf_submit(runtime: Runtime, addr: int, flags: int = 0) -> None:
    """bpf_ringbuf_submit(sample, flags): the ring buffer is found from the address."""
    _owner(runtime, addr).submit(addr, flags)


def ringbuf_discard(runtime: Runtime, addr: int, flags: int = 0) -> None:
    """bpf_ringbuf_discard(sample, flags)."""
    _owner(runtime, addr).discard(addr, flags)


class RingBufferConsumer:
    """Read a ring buffer's records from user space, as libbpf's ``ring_buffer`` does.

    ``RingBufferConsumer(rb)`` takes a :class:`RingBufMap`, a friendly
    :class:`~pyebpf.objects.Map`, or use :meth:`from_fd`. :meth:`poll` returns
    the committed samples in order; :meth:`consume` hands each to a callback.
    Both advance the consumer position past every record they pass (discarded
    ones included) and stop at a record still reserved (BUSY), exactly as
    ``ring_buffer__poll``/``ring_buffer__consume`` (there is no waiting: a
    simulated producer never runs concurrently).
    """

    def __init__(self, rb: RingBufMap | Any) -> None:
        if not isinstance(rb, RingBufMap):
            fd, runtime = rb.fd, rb.runtime
            obj, _ = runtime.get_object(fd, ObjKind.MAP)
            rb = obj
        if not isinstance(rb, RingBufMap):
            raise BpfError(errno.EINVAL, "not a ring buffer")
        self.rb = rb

    @classmethod
    def from_fd(cls, fd: int, runtime: Runtime | None = None) -> RingBufferConsumer:
        from ..runtime import default_runtime

        rt = runtime if runtime is not None else default_runtime()
        obj, _ = rt.get_object(fd, ObjKind.MAP)
        return cls(obj)

    def available(self) -> int:
        """Bytes between the consumer and producer positions."""
        return self.rb.producer_pos - self.rb.consumer_pos

    def consume(self, callback: Callable[[bytes], int | None],
                max_records: int | None = None) -> int:
        """Hand each committed sample to ``callback``; return how many were handled.

        A negative return from ``callback`` stops the walk (after moving past that
        record) and is returned, as libbpf's ``ringbuf_process_ring`` does.
        """
        rb = self.rb
        count = 0
        cons_pos = rb.consumer_pos
        got_new_data = True
        while got_new_data:
            got_new_data = False
            prod_pos = rb.producer_pos
            while cons_pos < prod_pos:
                off = cons_pos & rb.mask
                hdr_len = rb._hdr_len(off)
                if hdr_len & BPF_RINGBUF_BUSY_BIT:
                    return count
                got_new_data = True
                cons_pos += _record_len(hdr_len)
                if not hdr_len & BPF_RINGBUF_DISCARD_BIT:
                    sample_len = hdr_len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
                    sample = rb.data_at(off + BPF_RINGBUF_HDR_SZ, sample_len)
                    err = callback(sample)
                    if err is not None and err < 0:
                        rb.consumer_pos = cons_pos
                        return err
                    count += 1
                rb.consumer_pos = cons_pos
                if max_records is not None and count >= max_records:
                    return count
        return count

    def poll(self, max_records: int | None = None) -> list[bytes]:
        """The committed samples, oldest first (consuming them)."""
        out: list[bytes] = []

        def keep(sample: bytes) -> None:
            out.append(sample)

        self.consume(keep, max_records)
        return out
