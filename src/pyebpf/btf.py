"""BTF, the BPF Type Format: the ``.BTF`` and ``.BTF.ext`` sections of an object.

:class:`Btf` parses raw BTF (``include/uapi/linux/btf.h``): the header, the type
section (every kind up to ENUM64, Linux 6.18) and the string section, and
answers what a loader asks of it: a type by id, by name, its size and
alignment, a struct member's offset, modifiers and typedefs skipped.

:class:`BtfExt` parses ``.BTF.ext``: per ELF section, the func_info,
line_info and CO-RE relocation records clang emits.

Malformed input raises :class:`BtfError` (a :class:`~pyebpf.errors.BpfError`
with EINVAL), never ``IndexError`` or ``struct.error``. Only little-endian BTF is
read: BPF objects for the x86-64/arm64 kernels are little-endian.
"""

from __future__ import annotations

import enum
import errno
import struct
from collections.abc import Iterator
from typing import Any

import attrs

from .errors import ENOTSUPP, BpfError

__all__ = [
    "BTF_MAGIC",
    "Btf",
    "BtfArray",
    "BtfEnumValue",
    "BtfError",
    "BtfExt",
    "BtfKind",
    "BtfMember",
    "BtfParam",
    "BtfType",
    "BtfVarSecinfo",
    "CoreRelo",
    "CoreReloKind",
    "FuncInfo",
    "LineInfo",
    "VarLinkage",
    "FuncLinkage",
]

BTF_MAGIC = 0xEB9F
#: The largest type id (BTF_MAX_TYPE) and name offset the kernel accepts.
BTF_MAX_TYPE = 0x000F_FFFF
BTF_MAX_NAME_OFFSET = 0x00FF_FFFF
BTF_MAX_VLEN = 0xFFFF
#: Nesting of modifiers/typedefs/arrays followed before giving up (MAX_RESOLVE_DEPTH).
MAX_RESOLVE_DEPTH = 32


class BtfError(BpfError):
    """Malformed or unusable BTF (EINVAL unless said otherwise)."""

    def __init__(self, message: str, err: int = errno.EINVAL) -> None:
        super().__init__(err, message)


class BtfKind(enum.IntEnum):
    """``BTF_KIND_*``."""

    UNKN = 0  # void
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class VarLinkage(enum.IntEnum):
    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


class FuncLinkage(enum.IntEnum):
    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


#: BTF_INT_* encoding bits.
BTF_INT_SIGNED = 1 << 0
BTF_INT_CHAR = 1 << 1
BTF_INT_BOOL = 1 << 2

_MODIFIERS = (BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG)
_KIND_NAMES = {k: k.name.lower() for k in BtfKind}
_KIND_NAMES[BtfKind.UNKN] = "void"


@attrs.frozen
class BtfMember:
    """A struct/union member: name, type id, offset in bits, bitfield size (0: none)."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0


@attrs.frozen
class BtfParam:
    name: str
    type: int


@attrs.frozen
class BtfEnumValue:
    name: str
    value: int


@attrs.frozen
class BtfArray:
    type: int
    index_type: int
    nelems: int


@attrs.frozen
class BtfVarSecinfo:
    type: int
    offset: int
    size: int


@attrs.frozen
class BtfType:
    """One type. ``size_or_type`` is the raw union: a size for INT, ENUM,
    STRUCT, UNION, DATASEC, FLOAT, ENUM64; a type id for the others."""

    id: int
    kind: BtfKind
    name: str
    name_off: int
    vlen: int
    kflag: bool
    size_or_type: int
    #: INT: (encoding, bit offset, bits)
    int_encoding: int = 0
    int_offset: int = 0
    int_bits: int = 0
    array: BtfArray | None = None
    members: tuple[BtfMember, ...] = ()
    enum_values: tuple[BtfEnumValue, ...] = ()
    params: tuple[BtfParam, ...] = ()
    #: VAR: its linkage; FUNC: its linkage (the vlen field).
    linkage: int = 0
    secinfos: tuple[BtfVarSecinfo, ...] = ()
    #: DECL_TAG: -1 for the whole declaration, else the member/param index.
    component_idx: int = -1

    @property
    def size(self) -> int:
        return self.size_or_type

    @property
    def type(self) -> int:
        return self.size_or_type

    @property
    def kind_name(self) -> str:
        return _KIND_NAMES[self.kind]

    @property
    def is_signed(self) -> bool:
        if self.kind is BtfKind.INT:
            return bool(self.int_encoding & BTF_INT_SIGNED)
        if self.kind in (BtfKind.ENUM, BtfKind.ENUM64):
            return self.kflag
        return False

    def __str__(self) -> str:
        name = f" '{self.name}'" if self.name else ""
        return f"[{self.id}] {self.kind.name}{name}"


_VOID = BtfType(id=0, kind=BtfKind.UNKN, name="", name_off=0, vlen=0, kflag=False,
                size_or_type=0)

_HDR = struct.Struct("<HBBIIIII")


def _u32s(data: bytes, off: int, n: int, what: str) -> tuple[int, ...]:
    if off < 0 or off + 4 * n > len(data):
        raise BtfError(f"BTF {what} at offset {off} runs past the end of the type section")
    return struct.unpack_from(f"<{n}I", data, off)


class Btf:
    """Parsed BTF. ``types[0]`` is void; ids index ``types``."""

    def __init__(self, types: list[BtfType], strings: bytes, raw: bytes = b"") -> None:
        self.types = types
        self.strings = strings
        self.raw = raw
        self._by_name: dict[str, list[int]] | None = None

    # -- parsing ------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Btf:
        """Parse a raw ``.BTF`` blob."""
        data = bytes(data)
        if len(data) < _HDR.size:
            raise BtfError(f"BTF is {len(data)} bytes, shorter than its header")
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = \
            _HDR.unpack_from(data, 0)
        # btf_parse_hdr's order and errnos (ENOTSUPP for a version or flags it
        # doesn't know, E2BIG for header fields past the ones it knows).
        if hdr_len > len(data):
            raise BtfError(f"invalid BTF header length {hdr_len}")
        if hdr_len > _HDR.size and any(data[_HDR.size:hdr_len]):
            raise BtfError("unsupported BTF header fields (non-zero bytes past the known "
                           "header)", errno.E2BIG)
        if hdr_len < _HDR.size:
            raise BtfError(f"invalid BTF header length {hdr_len}")
        if magic != BTF_MAGIC:
            if magic == 0x9FEB:
                raise BtfError("big-endian BTF is not supported (the object is big-endian)")
            raise BtfError(f"invalid BTF magic {magic:#06x}")
        if version != 1:
            raise BtfError(f"unsupported BTF version {version}", ENOTSUPP)
        if flags:
            raise BtfError(f"unsupported BTF flags {flags:#x}", ENOTSUPP)
        body = data[hdr_len:]
        if type_off % 4:
            raise BtfError("BTF type section is not 4-byte aligned")
        if type_off + type_len > len(body) or str_off + str_len > len(body):
            raise BtfError("BTF section offsets run past the end of the data")
        if type_off < str_off < type_off + type_len or str_off < type_off < str_off + str_len:
            raise BtfError("BTF type and string sections overlap")
        strings = body[str_off:str_off + str_len]
        if str_len and strings[0] != 0:
            raise BtfError("BTF string section does not start with an empty string")
        if str_len and strings[-1] != 0:
            raise BtfError("BTF string section is not NUL-terminated")
        if str_len > BTF_MAX_NAME_OFFSET:
            raise BtfError("BTF string section is too large")
        tdata = body[type_off:type_off + type_len]
        btf = cls([_VOID], strings, data)
        btf._parse_types(tdata)
        btf._check_refs()
        return btf

    def _str(self, off: int) -> str:
        if off == 0:
            return ""
        if off < 0 or off >= len(self.strings):
            raise BtfError(f"BTF name offset {off} is outside the string section")
        end = self.strings.find(b"\0", off)
        if end < 0:
            raise BtfError(f"BTF string at offset {off} is not NUL-terminated")
        return self.strings[off:end].decode("utf-8", "replace")

    def _parse_types(self, t: bytes) -> None:
        off = 0
        n = len(t)
        while off < n:
            tid = len(self.types)
            if tid > BTF_MAX_TYPE:
                raise BtfError("too many BTF types")
            name_off, info, size_or_type = _u32s(t, off, 3, f"type [{tid}]")
            off += 12
            vlen = info & 0xFFFF
            kind_no = (info >> 24) & 0x1F
            kflag = bool(info >> 31)
            if info & 0x60FF_0000:
                raise BtfError(f"BTF type [{tid}]: unused bits of info are set ({info:#x})")
            try:
                kind = BtfKind(kind_no)
            except ValueError:
                raise BtfError(f"BTF type [{tid}]: unknown kind {kind_no}") from None
            if kind is BtfKind.UNKN:
                raise BtfError(f"BTF type [{tid}]: kind UNKN")
            name = self._str(name_off)
            extra: dict[str, Any] = {}
            if kind is BtfKind.INT:
                (word,) = _u32s(t, off, 1, f"INT [{tid}]")
                off += 4
                extra.update(int_encoding=(word >> 24) & 0xF, int_offset=(word >> 16) & 0xFF,
                             int_bits=word & 0xFF)
                if extra["int_bits"] > 128 or extra["int_offset"] + extra["int_bits"] > \
                        size_or_type * 8 or size_or_type not in (1, 2, 4, 8, 16):
                    raise BtfError(f"BTF INT [{tid}] '{name}': invalid size/bits")
            elif kind is BtfKind.ARRAY:
                etype, itype, nelems = _u32s(t, off, 3, f"ARRAY [{tid}]")
                off += 12
                extra["array"] = BtfArray(etype, itype, nelems)
            elif kind in (BtfKind.STRUCT, BtfKind.UNION):
                vals = _u32s(t, off, 3 * vlen, f"members of [{tid}]")
                off += 12 * vlen
                members = []
                for i in range(vlen):
                    m_name, m_type, m_off = vals[3 * i:3 * i + 3]
                    if kflag:
                        members.append(BtfMember(self._str(m_name), m_type, m_off & 0xFFFFFF,
                                                 m_off >> 24))
                    else:
                        members.append(BtfMember(self._str(m_name), m_type, m_off))
                extra["members"] = tuple(members)
            elif kind is BtfKind.ENUM:
                vals = _u32s(t, off, 2 * vlen, f"enumerators of [{tid}]")
                off += 8 * vlen
                evs = []
                for i in range(vlen):
                    v = vals[2 * i + 1]
                    if kflag and v & 0x8000_0000:
                        v -= 1 << 32
                    evs.append(BtfEnumValue(self._str(vals[2 * i]), v))
                extra["enum_values"] = tuple(evs)
            elif kind is BtfKind.ENUM64:
                vals = _u32s(t, off, 3 * vlen, f"enumerators of [{tid}]")
                off += 12 * vlen
                evs = []
                for i in range(vlen):
                    v = vals[3 * i + 1] | (vals[3 * i + 2] << 32)
                    if kflag and v >> 63:
                        v -= 1 << 64
                    evs.append(BtfEnumValue(self._str(vals[3 * i]), v))
                extra["enum_values"] = tuple(evs)
            elif kind is BtfKind.FUNC_PROTO:
                vals = _u32s(t, off, 2 * vlen, f"params of [{tid}]")
                off += 8 * vlen
                extra["params"] = tuple(BtfParam(self._str(vals[2 * i]), vals[2 * i + 1])
                                        for i in range(vlen))
            elif kind is BtfKind.VAR:
                (linkage,) = _u32s(t, off, 1, f"VAR [{tid}]")
                off += 4
                extra["linkage"] = linkage
            elif kind is BtfKind.DATASEC:
                vals = _u32s(t, off, 3 * vlen, f"secinfos of [{tid}]")
                off += 12 * vlen
                extra["secinfos"] = tuple(BtfVarSecinfo(*vals[3 * i:3 * i + 3])
                                          for i in range(vlen))
            elif kind is BtfKind.DECL_TAG:
                (comp,) = _u32s(t, off, 1, f"DECL_TAG [{tid}]")
                off += 4
                extra["component_idx"] = comp - (1 << 32) if comp & 0x8000_0000 else comp
            elif kind is BtfKind.FUNC:
                extra["linkage"] = vlen
            self.types.append(BtfType(id=tid, kind=kind, name=name, name_off=name_off,
                                      vlen=vlen, kflag=kflag, size_or_type=size_or_type,
                                      **extra))

    def _check_refs(self) -> None:
        """Every type id a type names must exist (the kernel's btf_check_all_types)."""
        n = len(self.types)

        def ok(tid: int, t: BtfType, what: str) -> None:
            if tid >= n:
                raise BtfError(f"BTF type {t}: {what} refers to missing type [{tid}]")

        for t in self.types[1:]:
            if t.kind in (BtfKind.PTR, BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST,
                          BtfKind.RESTRICT, BtfKind.FUNC, BtfKind.VAR, BtfKind.DECL_TAG,
                          BtfKind.TYPE_TAG):
                ok(t.type, t, "its type")
            if t.array is not None:
                ok(t.array.type, t, "element type")
                ok(t.array.index_type, t, "index type")
            for m in t.members:
                ok(m.type, t, f"member '{m.name}'")
            for p in t.params:
                ok(p.type, t, f"param '{p.name}'")
            if t.kind is BtfKind.FUNC_PROTO:
                ok(t.type, t, "return type")
            for s in t.secinfos:
                ok(s.type, t, "a variable")

    # -- lookups -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.types)

    def __iter__(self) -> Iterator[BtfType]:
        return iter(self.types[1:])

    def type(self, tid: int) -> BtfType:
        """The type with id ``tid`` (0 is void)."""
        if not 0 <= tid < len(self.types):
            raise BtfError(f"BTF type id {tid} does not exist (there are {len(self.types)})")
        return self.types[tid]

    __getitem__ = type

    def name_by_offset(self, off: int) -> str:
        return self._str(off)

    def find(self, name: str, kind: BtfKind | None = None) -> BtfType | None:
        """The first type named ``name`` (of ``kind`` when given), or None."""
        for t in self.find_all(name, kind):
            return t
        return None

    def find_all(self, name: str, kind: BtfKind | None = None) -> list[BtfType]:
        if self._by_name is None:
            idx: dict[str, list[int]] = {}
            for t in self.types[1:]:
                if t.name:
                    idx.setdefault(t.name, []).append(t.id)
            self._by_name = idx
        return [self.types[i] for i in self._by_name.get(name, ())
                if kind is None or self.types[i].kind is kind]

    def skip_mods_and_typedefs(self, tid: int) -> BtfType:
        """Follow CONST/VOLATILE/RESTRICT/TYPE_TAG and TYPEDEF to the underlying type."""
        t = self.type(tid)
        for _ in range(MAX_RESOLVE_DEPTH):
            if t.kind not in _MODIFIERS and t.kind is not BtfKind.TYPEDEF:
                return t
            t = self.type(t.type)
        raise BtfError(f"BTF type [{tid}]: modifier/typedef chain too long (a loop?)")

    def skip_mods(self, tid: int) -> BtfType:
        """Follow modifiers only (not typedefs)."""
        t = self.type(tid)
        for _ in range(MAX_RESOLVE_DEPTH):
            if t.kind not in _MODIFIERS:
                return t
            t = self.type(t.type)
        raise BtfError(f"BTF type [{tid}]: modifier chain too long (a loop?)")

    def sizeof(self, tid: int) -> int:
        """``btf__resolve_size``: the size in bytes of a type (pointers are 8)."""
        t = self.type(tid)
        nelems = 1
        for _ in range(MAX_RESOLVE_DEPTH):
            k = t.kind
            if k in (BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM,
                     BtfKind.ENUM64, BtfKind.DATASEC, BtfKind.FLOAT):
                return nelems * t.size
            if k is BtfKind.PTR:
                return nelems * 8
            if k in _MODIFIERS or k in (BtfKind.TYPEDEF, BtfKind.VAR, BtfKind.DECL_TAG):
                t = self.type(t.type)
                continue
            if k is BtfKind.ARRAY:
                assert t.array is not None
                nelems *= t.array.nelems
                if nelems > 0xFFFF_FFFF:
                    raise BtfError(f"BTF type [{tid}]: array too large")
                t = self.type(t.array.type)
                continue
            raise BtfError(f"BTF type [{tid}]: the size of a {t.kind_name} is not defined")
        raise BtfError(f"BTF type [{tid}]: type chain too long (a loop?)")

    def alignof(self, tid: int) -> int:
        """``btf__align_of``."""
        t = self.skip_mods_and_typedefs(tid)
        k = t.kind
        if k in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FLOAT):
            return min(8, max(1, t.size))
        if k is BtfKind.PTR:
            return 8
        if k is BtfKind.ARRAY:
            assert t.array is not None
            return self.alignof(t.array.type)
        if k in (BtfKind.STRUCT, BtfKind.UNION):
            align = 1
            for m in t.members:
                a = self.alignof(m.type)
                if m.bitfield_size == 0 and m.bit_offset % (8 * a):
                    return 1  # packed
                align = max(align, a)
            if t.size % align:
                return 1
            return align
        raise BtfError(f"BTF type [{tid}]: the alignment of a {t.kind_name} is not defined")

    def member(self, struct_id: int, name: str) -> BtfMember:
        """A member of a struct/union by name (searching anonymous members too); its
        ``bit_offset`` is relative to the outer struct."""
        t = self.skip_mods_and_typedefs(struct_id)
        if t.kind not in (BtfKind.STRUCT, BtfKind.UNION):
            raise BtfError(f"BTF type {t} is not a struct or union")
        found = self._find_member(t, name, 0, 0)
        if found is None:
            raise BtfError(f"BTF type {t} has no member '{name}'", errno.ENOENT)
        return found

    def _find_member(self, t: BtfType, name: str, base: int, depth: int) -> BtfMember | None:
        if depth > MAX_RESOLVE_DEPTH:
            return None
        for m in t.members:
            if m.name == name:
                return attrs.evolve(m, bit_offset=base + m.bit_offset)
        for m in t.members:
            if not m.name:
                inner = self.skip_mods_and_typedefs(m.type)
                if inner.kind in (BtfKind.STRUCT, BtfKind.UNION):
                    r = self._find_member(inner, name, base + m.bit_offset, depth + 1)
                    if r is not None:
                        return r
        return None

    def offsetof(self, struct_id: int, path: str) -> int:
        """Byte offset of a member path like ``"a.b[2].c"`` inside a struct."""
        off_bits = 0
        tid = struct_id
        for part in path.replace("]", "").split("."):
            name, *indexes = part.split("[")
            if name:
                m = self.member(tid, name)
                if m.bitfield_size:
                    raise BtfError(f"'{path}' is a bitfield, it has no byte offset")
                off_bits += m.bit_offset
                tid = m.type
            for ix in indexes:
                arr = self.skip_mods_and_typedefs(tid)
                if arr.kind is not BtfKind.ARRAY or arr.array is None:
                    raise BtfError(f"'{path}': {arr} is not an array")
                tid = arr.array.type
                off_bits += int(ix) * self.sizeof(tid) * 8
        if off_bits % 8:
            raise BtfError(f"'{path}' is a bitfield, it has no byte offset")
        return off_bits // 8

    def type_name(self, tid: int, depth: int = 0) -> str:
        """A C-like spelling of a type, for messages."""
        t = self.type(tid)
        if depth > 8:
            return "..."
        k = t.kind
        if k is BtfKind.UNKN:
            return "void"
        if k is BtfKind.PTR:
            return self.type_name(t.type, depth + 1) + " *"
        if k in (BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT):
            return f"{k.name.lower()} {self.type_name(t.type, depth + 1)}"
        if k is BtfKind.ARRAY and t.array is not None:
            return f"{self.type_name(t.array.type, depth + 1)}[{t.array.nelems}]"
        if k in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64):
            tag = {BtfKind.STRUCT: "struct", BtfKind.UNION: "union"}.get(k, "enum")
            return f"{tag} {t.name or '(anon)'}"
        if k is BtfKind.FWD:
            return f"{'union' if t.kflag else 'struct'} {t.name}"
        if k is BtfKind.FUNC_PROTO:
            return "func_proto"
        return t.name or k.name.lower()


# -- .BTF.ext --------------------------------------------------------------------------
class CoreReloKind(enum.IntEnum):
    """``enum bpf_core_relo_kind``."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


@attrs.frozen
class FuncInfo:
    """``struct bpf_func_info``; ``insn_off`` in instructions (the kernel's unit)."""

    insn_off: int
    type_id: int


@attrs.frozen
class LineInfo:
    """``struct bpf_line_info`` with its strings resolved; ``insn_off`` in instructions."""

    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int
    file_name: str = ""
    line: str = ""

    @property
    def line_num(self) -> int:
        return self.line_col >> 10

    @property
    def line_column(self) -> int:
        return self.line_col & 0x3FF


@attrs.frozen
class CoreRelo:
    """``struct bpf_core_relo``; ``insn_off`` in instructions."""

    insn_off: int
    type_id: int
    access_str_off: int
    kind: int
    access_str: str = ""


_EXT_HDR = struct.Struct("<HBBI")


class BtfExt:
    """Parsed ``.BTF.ext``: per ELF section name, lists of records.

    Record offsets are converted from the bytes clang writes to instruction
    indexes within the section."""

    def __init__(self) -> None:
        self.func_info: dict[str, list[FuncInfo]] = {}
        self.line_info: dict[str, list[LineInfo]] = {}
        self.core_relos: dict[str, list[CoreRelo]] = {}
        self.func_info_rec_size = 8
        self.line_info_rec_size = 16
        self.core_relo_rec_size = 16

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, btf: Btf) -> BtfExt:
        data = bytes(data)
        if len(data) < _EXT_HDR.size:
            raise BtfError(".BTF.ext is shorter than its header")
        magic, version, _flags, hdr_len = _EXT_HDR.unpack_from(data, 0)
        if magic != BTF_MAGIC:
            if magic == 0x9FEB:
                raise BtfError("big-endian .BTF.ext is not supported")
            raise BtfError(f"invalid .BTF.ext magic {magic:#06x}")
        if version != 1:
            raise BtfError(f"unsupported .BTF.ext version {version}")
        if hdr_len < 24 or hdr_len > len(data):
            raise BtfError(f"invalid .BTF.ext header length {hdr_len}")
        fi_off, fi_len, li_off, li_len = struct.unpack_from("<4I", data, 8)
        cr_off = cr_len = 0
        if hdr_len >= 32:
            cr_off, cr_len = struct.unpack_from("<2I", data, 24)
        ext = cls()
        body = data[hdr_len:]

        def segment(off: int, length: int, min_rec: int, what: str) -> Iterator[
                tuple[str, int, list[tuple[int, ...]]]]:
            if not length:
                return
            if off + length > len(body) or length < 4:
                raise BtfError(f".BTF.ext {what} runs past the end of the section")
            seg = body[off:off + length]
            (rec_size,) = struct.unpack_from("<I", seg, 0)
            if rec_size < min_rec or rec_size % 4:
                raise BtfError(f".BTF.ext {what}: invalid record size {rec_size}")
            pos = 4
            while pos < len(seg):
                if pos + 8 > len(seg):
                    raise BtfError(f".BTF.ext {what}: truncated section header")
                sec_name_off, num = struct.unpack_from("<2I", seg, pos)
                pos += 8
                if num == 0:
                    raise BtfError(f".BTF.ext {what}: a section with no records")
                if pos + num * rec_size > len(seg):
                    raise BtfError(f".BTF.ext {what}: records run past the end")
                recs = [struct.unpack_from(f"<{min_rec // 4}I", seg, pos + i * rec_size)
                        for i in range(num)]
                pos += num * rec_size
                yield btf.name_by_offset(sec_name_off), rec_size, recs

        for sec, size, recs in segment(fi_off, fi_len, 8, "func_info"):
            ext.func_info_rec_size = size
            ext.func_info.setdefault(sec, []).extend(
                FuncInfo(_insn(off, "func_info"), tid) for off, tid in recs)
        for sec, size, recs in segment(li_off, li_len, 16, "line_info"):
            ext.line_info_rec_size = size
            ext.line_info.setdefault(sec, []).extend(
                LineInfo(_insn(off, "line_info"), fno, lno, col, btf.name_by_offset(fno),
                         btf.name_by_offset(lno))
                for off, fno, lno, col in recs)
        for sec, size, recs in segment(cr_off, cr_len, 16, "core_relo"):
            ext.core_relo_rec_size = size
            ext.core_relos.setdefault(sec, []).extend(
                CoreRelo(_insn(off, "core_relo"), tid, aoff, kind, btf.name_by_offset(aoff))
                for off, tid, aoff, kind in recs)
        return ext


def _insn(byte_off: int, what: str) -> int:
    if byte_off % 8:
        raise BtfError(f".BTF.ext {what}: instruction offset {byte_off} is not a multiple of 8")
    return byte_off // 8
