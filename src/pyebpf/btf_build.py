"""Writing BTF: :class:`BtfBuilder` makes the raw bytes :class:`~pyebpf.btf.Btf` parses.

The kernel side of pyebpf needs BTF it did not get from a compiler: the
"vmlinux" BTF describing the structs pyebpf simulates (``kernel_btf``), the
value types of struct_ops maps, and tests that hand BPF_BTF_LOAD a blob. The
builder adds types one at a time (ids from 1, in order, as in the encoding),
lays out structs as the C compiler does when asked to (:meth:`BtfBuilder.struct`
with ``members`` given as ``(name, type)``), and :meth:`BtfBuilder.encode` emits
the ``.BTF`` section: the 24-byte header, the type section, the string section.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from .btf import BTF_INT_SIGNED, BTF_MAGIC, Btf, BtfKind, FuncLinkage

__all__ = ["BtfBuilder"]

#: (name, type id) for a member laid out by the builder, or (name, type id, bit offset).
#: (name, type), (name, type, bit offset) or, for a bitfield, (name, type, bit offset,
#: bits): a struct with bitfields gets kind_flag (offset words bits << 24 | offset).
Member = tuple[str, int] | tuple[str, int, int] | tuple[str, int, int, int]


class BtfBuilder:
    """Raw BTF built type by type; each ``add`` method returns the new type's id."""

    def __init__(self) -> None:
        self._strings = bytearray(b"\0")
        self._str_offs: dict[str, int] = {"": 0}
        #: Per type: (name offset, info word, size_or_type, trailing u32 words).
        self._types: list[tuple[int, int, int, list[int]]] = []
        #: Size and alignment of every type added, for laying out structs.
        self._layout: dict[int, tuple[int, int]] = {0: (0, 1)}
        self._array_index: int | None = None

    # -- strings and raw types ---------------------------------------------------------
    def string(self, name: str) -> int:
        """The offset of ``name`` in the string section (added once)."""
        off = self._str_offs.get(name)
        if off is None:
            off = len(self._strings)
            self._strings += name.encode() + b"\0"
            self._str_offs[name] = off
        return off

    def raw_type(self, name: str, kind: BtfKind, vlen: int, size_or_type: int,
                 extra: Iterable[int] = (), *, kflag: bool = False) -> int:
        """Append one type record as given (no checks: tests use this for bad BTF)."""
        info = (int(kind) << 24) | (vlen & 0xFFFF) | (int(kflag) << 31)
        self._types.append((self.string(name), info, size_or_type & 0xFFFF_FFFF,
                            [e & 0xFFFF_FFFF for e in extra]))
        return len(self._types)

    @property
    def next_id(self) -> int:
        return len(self._types) + 1

    # -- kinds -----------------------------------------------------------------------------
    def int_(self, name: str, size: int, *, signed: bool = False, bits: int | None = None,
             encoding: int = 0) -> int:
        enc = encoding | (BTF_INT_SIGNED if signed else 0)
        nbits = 8 * size if bits is None else bits
        tid = self.raw_type(name, BtfKind.INT, 0, size, [(enc << 24) | nbits])
        self._layout[tid] = (size, min(size, 8))
        return tid

    def ptr(self, target: int) -> int:
        tid = self.raw_type("", BtfKind.PTR, 0, target)
        self._layout[tid] = (8, 8)
        return tid

    def _alias(self, kind: BtfKind, name: str, target: int) -> int:
        tid = self.raw_type(name, kind, 0, target)
        self._layout[tid] = self._layout.get(target, (0, 1))
        return tid

    def typedef(self, name: str, target: int) -> int:
        return self._alias(BtfKind.TYPEDEF, name, target)

    def const(self, target: int) -> int:
        return self._alias(BtfKind.CONST, "", target)

    def volatile(self, target: int) -> int:
        return self._alias(BtfKind.VOLATILE, "", target)

    def array(self, elem: int, nelems: int, index_type: int | None = None) -> int:
        if index_type is None:
            index_type = self._index_type()
        tid = self.raw_type("", BtfKind.ARRAY, 0, 0, [elem, index_type, nelems])
        size, align = self._layout.get(elem, (0, 1))
        self._layout[tid] = (size * nelems, align)
        return tid

    def _index_type(self) -> int:
        """An ``unsigned int`` for array indexes (``__ARRAY_SIZE_TYPE__``), added once."""
        if self._array_index is None:
            self._array_index = self.int_("__ARRAY_SIZE_TYPE__", 4)
        return self._array_index

    def fwd(self, name: str, *, union: bool = False) -> int:
        return self.raw_type(name, BtfKind.FWD, 0, 0, kflag=union)

    def enum(self, name: str, values: Sequence[tuple[str, int]], size: int = 4, *,
             signed: bool = False) -> int:
        extra: list[int] = []
        for vname, value in values:
            extra += [self.string(vname), value]
        tid = self.raw_type(name, BtfKind.ENUM, len(values), size, extra, kflag=signed)
        self._layout[tid] = (size, size)
        return tid

    def struct(self, name: str, members: Sequence[Member], size: int | None = None, *,
               union: bool = False, align: int | None = None) -> int:
        """A struct (or union). Members without a bit offset are placed as C places
        them (after the previous one, aligned to their type); ``size`` defaults to
        the end of the last member rounded up to the struct's alignment, which is
        its widest member's unless ``align`` says more (``____cacheline_aligned``)."""
        return self._fill(self.declare(), name, members, size, union=union, align=align)

    def declare(self) -> int:
        """Reserve an id for a struct defined later by :meth:`define` (self-references)."""
        self._types.append((0, int(BtfKind.STRUCT) << 24, 0, []))
        return len(self._types)

    def define(self, tid: int, name: str, members: Sequence[Member], size: int | None = None,
               *, union: bool = False, align: int | None = None) -> int:
        return self._fill(tid, name, members, size, union=union, align=align)

    def _fill(self, tid: int, name: str, members: Sequence[Member], size: int | None, *,
              union: bool, align: int | None) -> int:
        off = 0
        biggest = align or 1
        extra: list[int] = []
        end = 0
        kflag = any(len(m) > 3 and m[3] for m in members)  # type: ignore[misc]
        for m in members:
            mname, mtype = m[0], m[1]
            msize, malign = self._layout.get(mtype, (0, 1))
            biggest = max(biggest, malign)
            if len(m) > 2:
                bit_off = m[2]  # type: ignore[misc]
            else:
                off = 0 if union else (off + malign - 1) // malign * malign
                bit_off = 8 * off
            nbits = m[3] if len(m) > 3 else 0  # type: ignore[misc]
            extra += [self.string(mname), mtype, nbits << 24 | bit_off if kflag else bit_off]
            mend = -(-(bit_off + nbits) // 8) if nbits else bit_off // 8 + msize
            off = 0 if union else mend
            end = max(end, mend)
        total = size if size is not None else (end + biggest - 1) // biggest * biggest
        kind = BtfKind.UNION if union else BtfKind.STRUCT
        info = (int(kind) << 24) | len(members) | (int(kflag) << 31)
        self._types[tid - 1] = (self.string(name), info, total, extra)
        self._layout[tid] = (total, biggest)
        return tid

    def func_proto(self, ret: int, params: Sequence[tuple[str, int]]) -> int:
        extra: list[int] = []
        for pname, ptype in params:
            extra += [self.string(pname), ptype]
        return self.raw_type("", BtfKind.FUNC_PROTO, len(params), ret, extra)

    def func(self, name: str, proto: int,
             linkage: FuncLinkage = FuncLinkage.GLOBAL) -> int:
        return self.raw_type(name, BtfKind.FUNC, int(linkage), proto)

    # -- output ------------------------------------------------------------------------------
    def sizeof(self, tid: int) -> int:
        return self._layout[tid][0]

    def encode(self) -> bytes:
        """The raw ``.BTF`` bytes: header, types, strings."""
        types = bytearray()
        for name_off, info, size_or_type, extra in self._types:
            types += struct.pack("<III", name_off, info, size_or_type)
            types += struct.pack(f"<{len(extra)}I", *extra)
        hdr = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types),
                          len(self._strings))
        return hdr + bytes(types) + bytes(self._strings)

    def build(self) -> Btf:
        """The types as parsed BTF."""
        return Btf.parse(self.encode())
