"""The address space a program sees: regions of bytes at 64-bit addresses.

Pointers are plain integers (DESIGN.md). Every object a program can point
into (a stack frame, the ctx, a packet, a map value, a ringbuf record) is a
:class:`Region` mapped at a page-aligned base address, with a guard page
after it, so a pointer is an ordinary number that arithmetic can move and a
load or store finds its region by ``addr >> PAGE_SHIFT``.

The page tables hold ``(base, size, buf)`` tuples, not Region objects, so the
interpreter's load/store fast path is one dict lookup, one subtraction and one
comparison; read-only regions are simply absent from the write table. An
access is in bounds when ``0 <= addr - base`` and ``addr - base + size <=
region size``; Python integers don't wrap, so ``addr + size`` overflowing
2**64 (the uBPF and rbpf bug) is caught by the same comparison.
"""

from __future__ import annotations

import enum
import errno
import struct
from collections.abc import Iterator
from typing import Protocol

import attrs

from .errors import BpfError, BpfFault

__all__ = ["PAGE_SHIFT", "PAGE_SIZE", "AddressSpace", "Device", "Perm", "Region"]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
_M64 = (1 << 64) - 1
_PACKERS = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"),
            8: struct.Struct("<Q")}

#: Where the first region is mapped. A fixed base keeps addresses deterministic
#: (the same program gives the same pointer values on every run and machine),
#: and high enough that small integers are never valid pointers.
DEFAULT_BASE = 0xFFFF_8880_0000_0000


class Device(Protocol):
    """A region's behaviour when its bytes are computed rather than stored."""

    def load(self, off: int, size: int) -> int: ...

    def store(self, off: int, size: int, value: int) -> None: ...


class Perm(enum.IntFlag):
    R = 1
    W = 2
    RW = 3


@attrs.define(eq=False)
class Region:
    """A mapped block of bytes. ``buf`` is the live storage (shared, not copied)."""

    base: int
    buf: bytearray
    perms: Perm
    kind: str
    name: str = ""

    @property
    def size(self) -> int:
        return len(self.buf)

    @property
    def end(self) -> int:
        return self.base + len(self.buf)

    def __contains__(self, addr: int) -> bool:
        return self.base <= addr < self.base + len(self.buf)

    def describe(self) -> str:
        label = f"{self.kind} {self.name}".strip()
        return f"{label} [{self.base:#x}, {self.end:#x})"


class AddressSpace:
    """Regions mapped into one flat 64-bit space, with bounds and permission checks."""

    def __init__(self, base: int = DEFAULT_BASE) -> None:
        if base % PAGE_SIZE or not 0 <= base <= _M64:
            raise ValueError(f"base {base:#x} is not a page-aligned 64-bit address")
        #: page number -> (base, size, buf) for readable / writable regions.
        self.rpages: dict[int, tuple[int, int, bytearray]] = {}
        self.wpages: dict[int, tuple[int, int, bytearray]] = {}
        self._regions: dict[int, Region] = {}
        #: page number -> (base, size, device) for regions whose bytes are
        #: computed (a ctx struct whose fields come from a simulated kernel
        #: object): absent from the page tables, so the interpreter's fast path
        #: misses and its slow path lands here.
        self.devices: dict[int, tuple[int, int, Device]] = {}
        self._next = base

    # -- mapping -------------------------------------------------------------
    def map(self, data: bytes | bytearray | int, *, kind: str, name: str = "",
            perms: Perm = Perm.RW) -> Region:
        """Map ``data`` (kept by reference if a bytearray; an int maps that many
        zero bytes) at the next free page-aligned address, and return its Region."""
        buf = bytearray(data) if not isinstance(data, bytearray) else data
        pages = max(1, -(-len(buf) // PAGE_SIZE))
        base = self._next
        if base + pages * PAGE_SIZE > _M64 + 1:  # no region may wrap past 2**64
            raise BpfError(errno.ENOMEM, f"address space exhausted: no room for "
                           f"{len(buf)} bytes at {base:#x}")
        # One guard page after every region: an overrun never lands in a neighbour.
        self._next = base + (pages + 1) * PAGE_SIZE
        region = Region(base, buf, perms, kind, name)
        self._regions[base] = region
        self._install(region)
        return region

    def _install(self, region: Region) -> None:
        entry = (region.base, len(region.buf), region.buf)
        first = region.base >> PAGE_SHIFT
        last = (region.base + max(len(region.buf), 1) - 1) >> PAGE_SHIFT
        for page in range(first, last + 1):
            if region.perms & Perm.R:
                self.rpages[page] = entry
            if region.perms & Perm.W:
                self.wpages[page] = entry

    def map_device(self, device: Device, size: int, *, kind: str, name: str = "") -> Region:
        """Map a region whose loads and stores are answered by ``device``."""
        region = self.map(size, kind=kind, name=name, perms=Perm.R)
        first = region.base >> PAGE_SHIFT
        last = (region.base + max(size, 1) - 1) >> PAGE_SHIFT
        for page in range(first, last + 1):
            self.rpages.pop(page, None)
            self.devices[page] = (region.base, size, device)
        return region

    def unmap(self, region: Region) -> None:
        """Remove a region; later accesses to its addresses fault."""
        if self._regions.get(region.base) is not region:
            return  # not mapped here (already unmapped, or another space's region)
        del self._regions[region.base]
        first = region.base >> PAGE_SHIFT
        last = (region.base + max(len(region.buf), 1) - 1) >> PAGE_SHIFT
        for page in range(first, last + 1):
            self.rpages.pop(page, None)
            self.wpages.pop(page, None)
            self.devices.pop(page, None)

    def protect(self, region: Region, perms: Perm) -> None:
        """Change a region's permissions (e.g. freeze a read-only map)."""
        mapped = self._regions.get(region.base) is region
        self.unmap(region)
        region.perms = perms
        if mapped:  # protecting an unmapped region must not map it again
            self._regions[region.base] = region
            self._install(region)

    def regions(self) -> Iterator[Region]:
        return iter(self._regions.values())

    def region_at(self, addr: int) -> Region | None:
        """The region whose pages contain ``addr`` (a guard page gives None)."""
        page = addr >> PAGE_SHIFT
        entry = self.rpages.get(page) or self.wpages.get(page) or self.devices.get(page)
        if entry is None:
            return None
        region = self._regions.get(entry[0])
        return region if region is not None and addr in region else None

    # -- checked access (the slow path; the interpreter inlines the fast one) -
    def _resolve(self, addr: int, size: int, write: bool) -> tuple[bytearray, int]:
        addr &= _M64
        entry = (self.wpages if write else self.rpages).get(addr >> PAGE_SHIFT)
        if entry is not None:
            off = addr - entry[0]
            if off + size <= entry[1]:
                return entry[2], off
        raise self.fault(addr, size, write)

    def fault(self, addr: int, size: int, write: bool) -> BpfFault:
        """A BpfFault describing why ``size`` bytes at ``addr`` can't be accessed."""
        what = "write" if write else "read"
        region = self.region_at(addr)
        if region is None:
            near = self._nearest(addr)
            where = f"unmapped address (nearest: {near.describe()})" if near else "unmapped address"
        elif not region.perms & (Perm.W if write else Perm.R):
            where = f"{region.describe()}, which is not {'writable' if write else 'readable'}"
        else:
            where = f"{region.describe()}, past its end by {addr + size - region.end} bytes"
        return BpfFault(f"invalid {what} of {size} bytes at {addr:#x}: {where}",
                        addr=addr, size=size)

    def _nearest(self, addr: int) -> Region | None:
        below = [r for r in self._regions.values() if r.base <= addr]
        return max(below, key=lambda r: r.base) if below else None

    def _device(self, addr: int, size: int, write: bool) -> tuple[Device, int]:
        addr &= _M64
        entry = self.devices.get(addr >> PAGE_SHIFT)
        if entry is not None:
            off = addr - entry[0]
            if off + size <= entry[1]:
                return entry[2], off
        raise self.fault(addr, size, write)

    def load(self, addr: int, size: int) -> int:
        """Read an unsigned little-endian integer of ``size`` (1, 2, 4, 8) bytes."""
        addr &= _M64
        if (addr >> PAGE_SHIFT) in self.devices:
            device, off = self._device(addr, size, False)
            return device.load(off, size)
        buf, off = self._resolve(addr, size, False)
        return int(_PACKERS[size].unpack_from(buf, off)[0])

    def store(self, addr: int, size: int, value: int) -> None:
        """Write the low ``size`` bytes of ``value`` little-endian."""
        addr &= _M64
        if (addr >> PAGE_SHIFT) in self.devices:
            device, off = self._device(addr, size, True)
            device.store(off, size, value & ((1 << (size * 8)) - 1))
            return
        buf, off = self._resolve(addr, size, True)
        _PACKERS[size].pack_into(buf, off, value & ((1 << (size * 8)) - 1))

    def read(self, addr: int, size: int) -> bytes:
        """Copy ``size`` bytes out (for helpers); the range must lie in one region."""
        if size == 0:
            return b""
        buf, off = self._resolve(addr, size, False)
        return bytes(buf[off:off + size])

    def write(self, addr: int, data: bytes | bytearray) -> None:
        """Copy bytes in (for helpers); the range must lie in one writable region."""
        if not data:
            return
        buf, off = self._resolve(addr, len(data), True)
        buf[off:off + len(data)] = data
