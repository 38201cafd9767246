"""CPU maps: CPUMAP (kernel/bpf/cpumap.c), XDP's redirect to another CPU.

Creation (``cpu_map_alloc``): key_size 4, max_entries > 0, value_size 4
(``struct bpf_cpumap_val``'s qsize) or 8 (qsize and a program fd), flags other
than BPF_F_NUMA_NODE EINVAL; more than NR_CPUS entries E2BIG (NR_CPUS is a
kernel build setting: 256 on the kernel these tests were checked against).

MAP_UPDATE_ELEM (``cpu_map_update_elem``): flags above BPF_EXIST EINVAL, a
key past the end E2BIG, BPF_NOEXIST EEXIST, a qsize above 16384 EOVERFLOW, a
CPU that is not possible ENODEV; qsize 0 empties the slot; a program fd > 0
must be an XDP program loaded for BPF_XDP_CPUMAP that the map's owner
accepts, else the entry can't be built: ENOMEM, as the kernel answers.
Lookup gives ``bpf_cpumap_val`` (the program's id in place of its fd; ENOENT
for an empty slot), delete is EINVAL past the end and succeeds on an empty
slot, GET_NEXT_KEY walks every index. Programs can't look it up (only
bpf_redirect_map takes it). Checked on Linux 6.18.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..uapi import BPF_EXIST, BPF_NOEXIST, AttachType, MapFlags, MapType
from . import register_map
from .array import array_get_next_key
from .base import BpfMap
from .devmap import xdp_map_prog

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["NR_CPUS", "CpuMap"]

#: CONFIG_NR_CPUS of the reference kernel (the most entries a CPU map may have).
NR_CPUS = 256
#: The sanity limit on an entry's queue size.
CPU_MAP_MAX_QSIZE = 16384


def _u32(b: bytes, off: int = 0) -> int:
    return int.from_bytes(b[off:off + 4], "little")


@register_map(MapType.CPUMAP)
class CpuMap(BpfMap):
    """BPF_MAP_TYPE_CPUMAP: per-CPU redirect queues (qsize and an optional program)."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~int(MapFlags.NUMA_NODE)):
            raise BpfError(errno.EINVAL, "a CPU map needs key_size 4, value_size 4 or 8, "
                           "max_entries > 0 and no flag but NUMA_NODE")
        if attr.max_entries > NR_CPUS:
            raise BpfError(errno.E2BIG, f"a CPU map has at most NR_CPUS ({NR_CPUS}) entries")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        self.charge(self.max_entries * 8)
        #: cpu -> (qsize, program or None).
        self.entries: dict[int, tuple[int, Any]] = {}
        self.owner = None

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        cpu = _u32(key)
        qsize = _u32(value)
        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        if cpu >= self.max_entries:
            raise BpfError(errno.E2BIG, f"CPU {cpu} is past max_entries {self.max_entries}")
        if flags == BPF_NOEXIST:
            raise BpfError(errno.EEXIST, "CPU map elements always exist (BPF_NOEXIST)")
        if qsize > CPU_MAP_MAX_QSIZE:
            raise BpfError(errno.EOVERFLOW, f"qsize {qsize} is above {CPU_MAP_MAX_QSIZE}")
        if cpu >= self.runtime.nr_cpus:
            raise BpfError(errno.ENODEV, f"CPU {cpu} is not possible")
        new = None
        if qsize:
            prog = None
            fd = int.from_bytes(value[4:8], "little", signed=True) if self.value_size == 8 else 0
            if fd > 0:
                try:
                    prog = xdp_map_prog(self, fd, AttachType.XDP_CPUMAP)
                except BpfError:
                    raise BpfError(errno.ENOMEM, "the CPU map entry's program is unfit "
                                   "(the kernel fails the entry's allocation)") from None
                prog.hold()
            new = (qsize, prog)
        old = self.entries.pop(cpu, None)
        if new is not None:
            self.entries[cpu] = new
        if old is not None and old[1] is not None:
            old[1].release()

    def delete_elem(self, key: bytes) -> None:
        cpu = _u32(key)
        if cpu >= self.max_entries:
            raise BpfError(errno.EINVAL, f"CPU {cpu} is past max_entries {self.max_entries}")
        old = self.entries.pop(cpu, None)
        if old is not None and old[1] is not None:
            old[1].release()

    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EOPNOTSUPP, "programs can't look CPU maps up")

    def target(self, key: int) -> Any:
        """The entry bpf_redirect_map redirects to (its qsize), or None."""
        entry = self.entries.get(key & 0xFFFF_FFFF)
        return entry[0] if entry is not None else None

    def redirect_lookup(self, key: int) -> tuple[int, int, Any] | None:
        """__cpu_map_lookup_elem for bpf_redirect_map: (cpu, qsize, program) of the
        entry the frame is queued on, or None."""
        cpu = key & 0xFFFF_FFFF
        entry = self.entries.get(cpu)
        return (cpu, *entry) if entry is not None else None

    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        entry = self.entries.get(_u32(key))
        if entry is None:
            raise BpfError(errno.ENOENT, "no queue for this CPU")
        qsize, prog = entry
        out = struct.pack("<I", qsize)
        if self.value_size == 8:
            out += struct.pack("<I", prog.id if prog is not None else 0)
        return out

    def get_next_key(self, key: bytes | None) -> bytes:
        return array_get_next_key(key, self.max_entries)

    def free(self) -> None:
        entries, self.entries = self.entries, {}
        for _, prog in entries.values():
            if prog is not None:
                prog.release()
        super().free()
