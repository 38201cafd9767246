"""Context structs: the layout a program sees, and the device that answers it.

The kernel never lets a program read the ``struct __sk_buff`` it declares: the
verifier rewrites every ctx access into an access to the real kernel object
(``convert_ctx_access``). pyebpf keeps that split. A :class:`CtxLayout` is the
user-visible struct as a table of fields; a :class:`CtxDevice` maps such a
region into the address space and answers each load or store from a Python
object standing for the kernel's (``SkBuff``, ``XdpBuff``...). A load of a
pointer field (``data``, ``data_end``) yields the full 64-bit address even
though the uapi field is 32 bits wide, exactly as the rewrite does.

The device sits outside the interpreter's fast page tables, so ordinary memory
pays nothing for it; a ctx access takes the slow path and lands here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ..errors import BpfFault
from ..memory import AddressSpace, Region

__all__ = ["CtxDevice", "CtxField", "CtxLayout", "map_ctx"]


@attrs.frozen
class CtxField:
    """One field of a ctx struct: where it is, and what a program may do with it."""

    name: str
    offset: int
    size: int
    #: Loads allowed (the type's is_valid_access may still narrow this).
    readable: bool = True
    #: Stores allowed.
    writable: bool = False
    #: A load yields a 64-bit pointer (the kernel's ctx rewrite), not the bytes.
    pointer: bool = False
    #: Attribute of the backing object holding the value (default: the name).
    attr: str | None = None

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def source(self) -> str:
        return self.attr or self.name


class CtxLayout:
    """A ctx struct as a table of fields (the uapi struct, offset by offset)."""

    def __init__(self, name: str, size: int, fields: Iterable[CtxField]) -> None:
        self.name = name
        self.size = size
        self.fields = tuple(fields)
        self._by_byte: dict[int, CtxField] = {}
        for f in self.fields:
            for b in range(f.offset, f.end):
                self._by_byte[b] = f

    def field_at(self, off: int, size: int) -> CtxField | None:
        """The field an access of ``size`` bytes at ``off`` falls in (wholly), or None."""
        f = self._by_byte.get(off)
        if f is None or off + size > f.end:
            return None
        return f

    def __getitem__(self, name: str) -> CtxField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def pack(self, obj: Any) -> bytes:
        """The struct's bytes as a user reads them back (ctx_out), pointers excluded."""
        out = bytearray(self.size)
        for f in self.fields:
            if f.pointer:
                continue
            value = _get(obj, f)
            out[f.offset:f.end] = (value & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")
        return bytes(out)


def _get(obj: Any, f: CtxField) -> int:
    value = getattr(obj, f.source)
    if isinstance(value, (bytes, bytearray)):
        return int.from_bytes(value[: f.size], "little")
    return int(value)


class CtxDevice:
    """Answers loads and stores of a mapped ctx struct from a backing object."""

    def __init__(self, layout: CtxLayout, obj: Any) -> None:
        self.layout = layout
        self.obj = obj

    def _field(self, off: int, size: int, write: bool) -> CtxField:
        f = self.layout.field_at(off, size)
        if f is None or not (f.writable if write else f.readable):
            what = "write" if write else "read"
            raise BpfFault(f"invalid {self.layout.name} {what} of {size} bytes at offset {off}")
        return f

    def load(self, off: int, size: int) -> int:
        f = self._field(off, size, False)
        value = _get(self.obj, f)
        if f.pointer and off == f.offset:
            return value  # the whole 64-bit pointer, whatever the load width
        shift = 8 * (off - f.offset)
        return (value >> shift) & ((1 << (8 * size)) - 1)

    def store(self, off: int, size: int, value: int) -> None:
        f = self._field(off, size, True)
        current = getattr(self.obj, f.source)
        if isinstance(current, bytearray):
            current[off - f.offset:off - f.offset + size] = value.to_bytes(size, "little")
            return
        shift = 8 * (off - f.offset)
        mask = ((1 << (8 * size)) - 1) << shift
        setattr(self.obj, f.source, (int(current) & ~mask) | ((value << shift) & mask))


def map_ctx(memory: AddressSpace, layout: CtxLayout, obj: Any) -> Region:
    """Map ``obj`` as a ctx region laid out as ``layout``; r1 gets its base."""
    return memory.map_device(CtxDevice(layout, obj), layout.size, kind="ctx", name=layout.name)
