"""Perf event arrays: PERF_EVENT_ARRAY (kernel/bpf/arraymap.c), simulated perf
events, and a Python reader in the spirit of libbpf's ``perf_buffer``.

The map (``perf_event_array_map_ops``): a program array's cousin. Creation is
``fd_array_map_alloc_check`` (value_size 4; BPF_F_RDONLY_PROG/WRONLY_PROG are
EINVAL) then the array checks (key_size 4, max_entries > 0, the array flags;
BPF_F_PRESERVE_ELEMS is for this type only). MAP_UPDATE_ELEM
(``bpf_fd_array_map_update_elem`` with ``perf_event_fd_array_get_ptr``): flags
other than BPF_ANY are EINVAL, an index past the end E2BIG, then the u32 fd in
the value: an fd that is not a perf event (closed, or any other kind of file)
is EBADF, as ``perf_event_get`` answers; an event that can't be read
(``inherit``) is EOPNOTSUPP. The slot holds a reference on the event (closing
the event's fd keeps it alive). MAP_LOOKUP_ELEM and lookup-and-delete are
ENOTSUPP (the type has no ``map_fd_sys_lookup_elem``); MAP_DELETE_ELEM is E2BIG
past the end and ENOENT for an empty slot; GET_NEXT_KEY walks every index.
Checked on Linux 6.18.

Perf events (:func:`perf_event_open`): an fd of kind PERF_EVENT holding a
:class:`PerfEvent`: ``type``/``config`` (PERF_TYPE_SOFTWARE /
PERF_COUNT_SW_BPF_OUTPUT is the one bpf_perf_event_output writes to), the CPU
it counts on, a counter a test may set (``count``, what bpf_perf_event_read
returns) and, once :meth:`PerfEvent.mmap` gave it one, a :class:`PerfRing`.
Records are written as the kernel's perf ring buffer writes them: a
``struct perf_event_header`` (type, misc, size), then per ``sample_type`` bit
the sample fields (TID, TIME, CPU, RAW are modelled), the raw data as a u32
size and the bytes, then padding so that the size word plus data is a
multiple of 8 (skipped, not written: it keeps what the ring held, as the
kernel's ``perf_output_skip`` does). A record that doesn't fit (``CIRC_SPACE(head, tail, size)``: at
most size-1 bytes in flight) is lost: the helper returns -ENOSPC and the next
record that fits is preceded by a PERF_RECORD_LOST carrying the count.

User space reads with :class:`PerfBuffer` (one BPF_OUTPUT event per CPU put in
the map at key = cpu, as ``perf_buffer__new`` does) or :class:`PerfEventReader`
for one ring.

Not modelled: the kernel removes the entries a map fd stored when that fd's
file is released, unless BPF_F_PRESERVE_ELEMS (``perf_event_fd_array_release``);
pyebpf keeps them until deleted or the map is freed.
"""

from __future__ import annotations

import errno
import struct
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import ENOTSUPP, BpfError
from ..runtime import BpfObject, ObjKind
from ..uapi import BPF_ANY, MapType
from . import register_map
from .base import BpfMap
from .fd_array import FdArraySlots

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = [
    "PERF_COUNT_SW_BPF_OUTPUT",
    "PERF_RECORD_LOST",
    "PERF_RECORD_SAMPLE",
    "PERF_SAMPLE_RAW",
    "PERF_TYPE_SOFTWARE",
    "PerfBuffer",
    "PerfEvent",
    "PerfEventArrayMap",
    "PerfEventAttr",
    "PerfEventReader",
    "PerfRecord",
    "PerfRing",
    "perf_event_open",
]

PAGE_SIZE = 4096
#: ``enum perf_type_id`` / ``perf_sw_ids``: the output-only software event.
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_BPF_OUTPUT = 10
#: ``enum perf_event_sample_format`` bits pyebpf writes (in the kernel's field order).
PERF_SAMPLE_TID = 1 << 1
PERF_SAMPLE_TIME = 1 << 2
PERF_SAMPLE_CPU = 1 << 7
PERF_SAMPLE_RAW = 1 << 10
_SAMPLE_MODELLED = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_RAW
#: ``enum perf_event_type``.
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
#: ``perf_event_header.misc``: the sample was taken in kernel mode (a BPF program).
PERF_RECORD_MISC_KERNEL = 1

_HDR = struct.Struct("<IHH")
_LOST = struct.Struct("<IHHQQ")


def _index(key: bytes) -> int:
    return int.from_bytes(key[:4], "little")


@attrs.frozen(kw_only=True)
class PerfEventAttr:
    """The ``struct perf_event_attr`` fields the simulation uses."""

    type: int = PERF_TYPE_SOFTWARE
    config: int = PERF_COUNT_SW_BPF_OUTPUT
    sample_type: int = PERF_SAMPLE_RAW
    sample_period: int = 1
    wakeup_events: int = 1
    #: Inherited (per-task, inherit=1) events can't be read from BPF: EOPNOTSUPP.
    inherit: bool = False
    #: Opened disabled: not scheduled on its CPU until :meth:`PerfEvent.enable`.
    disabled: bool = False


class PerfRing:
    """The data pages of an mmap()ed perf event: ``2**n`` pages, a free-running
    ``head`` (the kernel's) and ``tail`` (the reader's, ``data_tail``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data = bytearray(size)
        self.head = 0
        self.tail = 0
        #: Records dropped since the last PERF_RECORD_LOST (the kernel's ``rb->lost``).
        self.lost = 0

    def space(self) -> int:
        """CIRC_SPACE(head, tail, size): bytes a new record may take."""
        return (self.tail - (self.head + 1)) & (self.size - 1)

    def put(self, parts: list[bytes | int]) -> None:
        """Write a record: bytes are copied, an int skips that many bytes (the
        kernel's ``perf_output_skip`` for raw padding leaves what the ring held)."""
        for part in parts:
            if isinstance(part, int):
                self.head += part
                continue
            off = self.head & (self.size - 1)
            first = min(len(part), self.size - off)
            self.data[off:off + first] = part[:first]
            self.data[:len(part) - first] = part[first:]
            self.head += len(part)

    def read(self, pos: int, length: int) -> bytes:
        off = pos & (self.size - 1)
        if off + length <= self.size:
            return bytes(self.data[off:off + length])
        return bytes(self.data[off:]) + bytes(self.data[:off + length - self.size])


_EVENT_IDS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class PerfEvent(BpfObject):
    """A perf event, as far as BPF programs see one."""

    kind = ObjKind.PERF_EVENT

    def __init__(self, runtime: Runtime, attr: PerfEventAttr, cpu: int) -> None:
        super().__init__(runtime)
        self.attr = attr
        self.cpu = cpu
        #: The counter value (bpf_perf_event_read); enabled/running times in ns.
        self.count = 0
        self.enabled_time = 0
        self.running_time = 0
        self.ring: PerfRing | None = None
        #: Whether the event is enabled (PERF_EVENT_IOC_ENABLE / _DISABLE).
        self.enabled = not attr.disabled
        nid = _EVENT_IDS.get(runtime, 0) + 1
        _EVENT_IDS[runtime] = nid
        #: The event's id (``event->id``, which PERF_RECORD_LOST carries).
        self.event_id = nid

    def enable(self) -> None:
        """ioctl(PERF_EVENT_IOC_ENABLE)."""
        self.enabled = True

    def disable(self) -> None:
        """ioctl(PERF_EVENT_IOC_DISABLE)."""
        self.enabled = False

    @property
    def oncpu(self) -> int:
        """The CPU the event is scheduled on (``event->oncpu``), -1 when it isn't:
        a per-CPU event runs on its CPU while enabled; a per-task one on the
        CPU the task (the running program) is on."""
        if not self.enabled:
            return -1
        return self.cpu if self.cpu != -1 else self.runtime.cpu

    @property
    def is_bpf_output(self) -> bool:
        return (self.attr.type == PERF_TYPE_SOFTWARE
                and self.attr.config == PERF_COUNT_SW_BPF_OUTPUT)

    def mmap(self, data_pages: int) -> PerfRing:
        """mmap() the event's ring: ``data_pages`` (a power of 2) data pages."""
        if data_pages <= 0 or data_pages & (data_pages - 1):
            raise BpfError(errno.EINVAL, "a perf ring takes a power-of-2 number of data pages")
        if self.ring is not None:
            raise BpfError(errno.EINVAL, "the event is already mapped")
        self.ring = PerfRing(data_pages * PAGE_SIZE)
        return self.ring

    def read_local(self) -> tuple[int, int, int]:
        """perf_event_read_local: (count, enabled, running); errors as the kernel's."""
        if self.attr.inherit:
            raise BpfError(errno.EOPNOTSUPP, "inherited events can't be read here")
        if self.cpu != -1 and self.cpu != self.runtime.cpu:
            raise BpfError(errno.EINVAL, f"the event counts on CPU {self.cpu}, not on "
                           f"CPU {self.runtime.cpu}")
        return self.count, self.enabled_time, self.running_time

    def output(self, raw: bytes) -> None:
        """perf_event_output of one sample with ``raw`` as PERF_SAMPLE_RAW (ENOSPC
        when the ring has no room, or the event has none)."""
        rb = self.ring
        if rb is None:
            raise BpfError(errno.ENOSPC, "the perf event has no ring buffer")
        st = self.attr.sample_type
        body = b""
        pad = 0
        if st & PERF_SAMPLE_TID:
            body += struct.pack("<II", self.runtime.tgid, self.runtime.pid)
        if st & PERF_SAMPLE_TIME:
            body += struct.pack("<Q", self.runtime.clock.monotonic_ns())
        if st & PERF_SAMPLE_CPU:
            body += struct.pack("<II", self.runtime.cpu, 0)
        if st & PERF_SAMPLE_RAW:
            raw_size = (len(raw) + 4 + 7) // 8 * 8 - 4
            body += struct.pack("<I", raw_size) + raw
            pad = raw_size - len(raw)
        sample = _HDR.pack(PERF_RECORD_SAMPLE, PERF_RECORD_MISC_KERNEL,
                           _HDR.size + len(body) + pad) + body
        lost = b""
        if rb.lost:
            lost = _LOST.pack(PERF_RECORD_LOST, 0, _LOST.size, self.event_id, rb.lost)
        if rb.space() < len(lost) + len(sample) + pad:
            rb.lost += 1
            raise BpfError(errno.ENOSPC, "no room in the perf ring buffer")
        rb.lost = 0
        rb.put([lost + sample, pad])


def perf_event_open(runtime: Runtime, attr: PerfEventAttr | None = None, *, cpu: int = 0,
                    pid: int = -1) -> int:
    """Open a simulated perf event and return its fd (the perf_event_open syscall).

    ``cpu`` -1 with a ``pid`` makes a per-task event (readable on any CPU);
    a per-CPU event needs ``0 <= cpu < runtime.nr_cpus``.
    """
    attr = attr if attr is not None else PerfEventAttr()
    if cpu == -1 and pid == -1:
        raise BpfError(errno.EINVAL, "a perf event needs a task or a CPU")
    if cpu < -1 or cpu >= runtime.nr_cpus:
        raise BpfError(errno.EINVAL, f"CPU {cpu} is not online")
    if attr.sample_type & ~_SAMPLE_MODELLED:
        raise BpfError(errno.EOPNOTSUPP, f"sample_type {attr.sample_type:#x}: pyebpf "
                       "writes only TID, TIME, CPU and RAW samples")
    return runtime.install_fd(PerfEvent(runtime, attr, cpu))


def perf_event_of(runtime: Runtime, fd: int) -> PerfEvent:
    """The perf event behind ``fd`` (EBADF otherwise, as perf_event_get says)."""
    f = runtime.fds.get(fd)
    if f is None or not isinstance(f.obj, PerfEvent):
        raise BpfError(errno.EBADF, f"fd {fd} is not a perf event")
    return f.obj


@register_map(MapType.PERF_EVENT_ARRAY)
class PerfEventArrayMap(FdArraySlots, BpfMap):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY: slots of perf events, empty at creation."""

    percpu = False

    stores = ("perf event array", "perf event")

    def event_at(self, index: int) -> PerfEvent | None:
        return self.slots.get(index)

    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EOPNOTSUPP, "perf event arrays can't be looked up by a program")

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        raise BpfError(ENOTSUPP, "perf event arrays have no syscall lookup")

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        if flags != BPF_ANY:
            raise BpfError(errno.EINVAL, "perf event array updates take only BPF_ANY")
        index = _index(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        event = perf_event_of(self.runtime, _index(value))
        if event.attr.inherit:
            raise BpfError(errno.EOPNOTSUPP, "an inherited perf event can't be read from BPF")
        self._store_slot(index, event)

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, "perf event arrays are updated with perf event fds "
                       "from user space")

    # -- what the helpers do (kernel/trace/bpf_trace.c) ----------------------------------
    def _event(self, flags: int) -> PerfEvent:
        """The slot ``flags & BPF_F_INDEX_MASK`` names (BPF_F_CURRENT_CPU: this CPU's)."""
        index = flags & BPF_F_INDEX_MASK
        if index == BPF_F_CURRENT_CPU:
            index = self.runtime.cpu
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        event = self.slots.get(index)
        if event is None:
            raise BpfError(errno.ENOENT, f"slot {index} is empty")
        return event

    def output(self, flags: int, raw: bytes) -> None:
        """__bpf_perf_event_output: E2BIG, ENOENT, EINVAL (not a BPF_OUTPUT event),
        EOPNOTSUPP (the event is on another CPU), ENOSPC (no room)."""
        event = self._event(flags)
        if not event.is_bpf_output:
            raise BpfError(errno.EINVAL, "bpf_perf_event_output needs a "
                           "PERF_COUNT_SW_BPF_OUTPUT event")
        if event.oncpu != self.runtime.cpu:
            raise BpfError(errno.EOPNOTSUPP, f"the event is on CPU {event.oncpu}, the "
                           f"program runs on CPU {self.runtime.cpu}")
        event.output(raw)

    def read_counter(self, flags: int) -> tuple[int, int, int]:
        """get_map_perf_counter: (value, enabled, running) of the slot's event."""
        if flags & ~BPF_F_INDEX_MASK:
            raise BpfError(errno.EINVAL, f"invalid flags {flags:#x}")
        return self._event(flags).read_local()


#: ``BPF_F_INDEX_MASK`` / ``BPF_F_CURRENT_CPU`` / ``BPF_F_CTXLEN_MASK`` (include/uapi/linux/bpf.h).
BPF_F_INDEX_MASK = 0xFFFF_FFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK
BPF_F_CTXLEN_MASK = 0xFFFFF << 32


@attrs.frozen
class PerfRecord:
    """One record read from a perf ring: its header type and misc, and its body."""

    type: int
    misc: int
    body: bytes

    @property
    def raw(self) -> bytes:
        """The PERF_SAMPLE_RAW bytes of a sample with only RAW (padding included)."""
        size = struct.unpack_from("<I", self.body, 0)[0]
        return self.body[4:4 + size]

    @property
    def lost(self) -> int:
        """The count of a PERF_RECORD_LOST."""
        return int(struct.unpack_from("<Q", self.body, 8)[0])


class PerfEventReader:
    """Read one perf event's ring as ``perf_event_read_simple`` does: records from
    ``tail`` to ``head``, advancing ``tail`` (the reader's ``data_tail``)."""

    def __init__(self, event: PerfEvent) -> None:
        if event.ring is None:
            raise BpfError(errno.EINVAL, "the perf event is not mmap()ed")
        self.event = event
        self.ring = event.ring

    def read(self) -> list[PerfRecord]:
        ring = self.ring
        out: list[PerfRecord] = []
        pos = ring.tail
        while pos < ring.head:
            rtype, misc, size = _HDR.unpack(ring.read(pos, _HDR.size))
            out.append(PerfRecord(rtype, misc, ring.read(pos + _HDR.size, size - _HDR.size)))
            pos += size
        ring.tail = pos
        return out


@attrs.frozen
class PerfSample:
    """A sample as PerfBuffer hands it out: the CPU's ring it came from, and its data."""

    cpu: int
    data: bytes


class PerfBuffer:
    """libbpf's ``perf_buffer``: one BPF_OUTPUT event per CPU, stored in the map.

    ``PerfBuffer(map, page_cnt)`` takes a :class:`PerfEventArrayMap` or a friendly
    :class:`~pyebpf.objects.Map`; for each CPU (up to ``max_entries``) it opens a
    PERF_COUNT_SW_BPF_OUTPUT event with PERF_SAMPLE_RAW on that CPU, mmap()s
    ``page_cnt`` data pages and stores the event's fd in the map at key = cpu
    through MAP_UPDATE_ELEM. :meth:`poll` returns the samples (the raw bytes,
    padding included, as libbpf's ``sample_cb`` gets them), CPU by CPU;
    :meth:`consume` hands them to ``sample_cb(cpu, data)`` and lost counts to
    ``lost_cb(cpu, count)``.
    """

    def __init__(self, m: PerfEventArrayMap | Any, page_cnt: int = 8, *,
                 sample_cb: Callable[[int, bytes], None] | None = None,
                 lost_cb: Callable[[int, int], None] | None = None) -> None:
        from ..attr import MapElemAttr
        from ..syscall import bpf
        from ..uapi import Cmd

        if not isinstance(m, PerfEventArrayMap):
            obj, _ = m.runtime.get_object(m.fd, ObjKind.MAP)
            m = obj
        if not isinstance(m, PerfEventArrayMap):
            raise BpfError(errno.EINVAL, "not a perf event array")
        if page_cnt <= 0 or page_cnt & (page_cnt - 1):
            raise BpfError(errno.EINVAL, "page_cnt must be a power of 2")
        self.map = m
        self.sample_cb = sample_cb
        self.lost_cb = lost_cb
        rt = m.runtime
        self.runtime = rt
        map_fd = rt.install_fd(m)
        self.fds: dict[int, int] = {}
        self.readers: dict[int, PerfEventReader] = {}
        try:
            for cpu in range(min(rt.nr_cpus, m.max_entries)):
                fd = perf_event_open(rt, PerfEventAttr(), cpu=cpu)
                self.fds[cpu] = fd
                event = perf_event_of(rt, fd)
                event.mmap(page_cnt)
                self.readers[cpu] = PerfEventReader(event)
                bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=map_fd, key=cpu.to_bytes(4, "little"),
                                                     value=fd.to_bytes(4, "little")), runtime=rt)
        except BaseException:
            self.close()
            raise
        finally:
            rt.close(map_fd)

    def consume(self) -> int:
        """Hand every pending record to the callbacks; return the samples handled."""
        n = 0
        for cpu, reader in self.readers.items():
            for rec in reader.read():
                if rec.type == PERF_RECORD_SAMPLE:
                    n += 1
                    if self.sample_cb is not None:
                        self.sample_cb(cpu, rec.raw)
                elif rec.type == PERF_RECORD_LOST and self.lost_cb is not None:
                    self.lost_cb(cpu, rec.lost)
        return n

    def poll(self) -> list[PerfSample]:
        """The pending samples (consuming them); lost records go to ``lost_cb``."""
        out: list[PerfSample] = []
        saved = self.sample_cb
        self.sample_cb = lambda cpu, data: out.append(PerfSample(cpu, data))
        try:
            self.consume()
        finally:
            self.sample_cb = saved
        return out

    def close(self) -> None:
        """Empty the map slots this buffer filled and close the events' fds, as
        libbpf's ``perf_buffer__free`` does."""
        for cpu, fd in self.fds.items():
            event = self.runtime.fds[fd].obj
            if self.map.slots.get(cpu) is event:
                self.map.delete_elem(cpu.to_bytes(4, "little"))
            self.runtime.close(fd)
        self.fds.clear()
        self.readers.clear()
