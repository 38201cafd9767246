"""Map keys and values as Python values, laid out by the map's BTF.

A map created from ``struct { __type(key, struct flow); __type(value, struct
stats); } flows SEC(".maps")`` holds bytes; a test wants to write
``{"saddr": 0x0a000001, "proto": 6}`` and read back ``stats.packets``. A
:class:`Layout` converts both ways, derived from the BTF type the ELF loader
kept for the map (``MapSpec.btf_key_type_id``/``btf_value_type_id``), the way
a C compiler lays the struct out: members at their BTF bit offsets, bitfields
packed into their storage unit, padding zero.

Encoding is forgiving about the shape it is given (every form gives the same
bytes): ``bytes`` of the right size are taken as they are; an ``int`` for an
integer, enum or pointer; a ``Mapping`` of member names (members not named
are zero), a tuple in member order, an attrs instance or a decoded
:class:`Record` for a struct; a sequence (or ``bytes``/``str`` for ``char``
arrays) for an array; any buffer-protocol object (a ``ctypes.Structure``) of
the right size as its bytes. Decoding gives ints, tuples for arrays (``bytes``
for ``char``/``u8`` arrays) and :class:`Record` instances for structs: frozen,
hashable (they can be dict keys), attribute access by member name, and equal
to a mapping or tuple that encodes to the same bytes.
"""

from __future__ import annotations

import struct as _struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from ..btf import Btf, BtfKind

__all__ = [
    "ArrayLayout",
    "BytesLayout",
    "FloatLayout",
    "IntLayout",
    "Layout",
    "PerCpuLayout",
    "Record",
    "StructLayout",
    "btf_layout",
    "default_layout",
]


class Layout:
    """How one C type is laid out in ``size`` bytes."""

    size: int

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def zero(self) -> Any:
        """The decoded value of all-zero bytes."""
        return self.decode(bytes(self.size))

    def _raw(self, value: Any) -> bytes | None:
        """``value`` as bytes when it is a buffer of exactly this size, else None."""
        if isinstance(value, str | int | Mapping | Record):
            return None
        try:
            raw = bytes(memoryview(value).cast("B"))
        except TypeError:
            return None
        if len(raw) != self.size:
            raise ValueError(f"{len(raw)} bytes given for a {self.size}-byte {self.describe()}")
        return raw

    def describe(self) -> str:
        return f"{self.size}-byte value"


@attrs.frozen
class IntLayout(Layout):
    """An integer (also enums, bool, char, pointers): little-endian, two's complement."""

    size: int
    signed: bool = False
    name: str = ""

    def encode(self, value: Any) -> bytes:
        raw = self._raw(value)
        if raw is not None:
            return raw
        if isinstance(value, bool | int):
            v = int(value)
            # Either reading is accepted: -1 and 0xff both fill a u8 or an s8.
            if not -(1 << (8 * self.size - 1)) <= v < (1 << (8 * self.size)):
                raise ValueError(f"{v} does not fit in {self.describe()}")
            return (v & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "little")
        raise TypeError(f"{self.describe()} takes an int, not {type(value).__name__}")

    def decode(self, data: bytes) -> int:
        return int.from_bytes(data[: self.size], "little", signed=self.signed)

    def describe(self) -> str:
        return self.name or f"{'s' if self.signed else 'u'}{8 * self.size}"


@attrs.frozen
class FloatLayout(Layout):
    size: int

    def encode(self, value: Any) -> bytes:
        raw = self._raw(value)
        if raw is not None:
            return raw
        return _struct.pack("<f" if self.size == 4 else "<d", float(value))

    def decode(self, data: bytes) -> float:
        return float(_struct.unpack("<f" if self.size == 4 else "<d", data[: self.size])[0])


@attrs.frozen
class BytesLayout(Layout):
    """Opaque bytes (no BTF, a union, a char array): ``bytes``/``str`` in, ``bytes`` out.
    Shorter input is zero-padded, as a C string initialiser is."""

    size: int

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):
            value = value.encode()
        raw = bytes(memoryview(value).cast("B")) if not isinstance(value, bytes) else value
        if len(raw) > self.size:
            raise ValueError(f"{len(raw)} bytes given for a {self.size}-byte buffer")
        return raw.ljust(self.size, b"\0")

    def decode(self, data: bytes) -> bytes:
        return bytes(data[: self.size])

    def describe(self) -> str:
        return f"char[{self.size}]"


@attrs.frozen
class ArrayLayout(Layout):
    """``elem[n]``: a sequence of ``n`` elements in, a tuple out."""

    elem: Layout
    n: int

    @property
    def size(self) -> int:  # type: ignore[override]
        return self.elem.size * self.n

    def encode(self, value: Any) -> bytes:
        raw = self._raw(value)
        if raw is not None:
            return raw
        items = list(value)
        if len(items) > self.n:
            raise ValueError(f"{len(items)} elements given for {self.describe()}")
        items += [None] * (self.n - len(items))
        return b"".join(bytes(self.elem.size) if v is None else self.elem.encode(v)
                        for v in items)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        es = self.elem.size
        return tuple(self.elem.decode(data[i * es:(i + 1) * es]) for i in range(self.n))

    def describe(self) -> str:
        return f"{self.elem.describe()}[{self.n}]"


@attrs.frozen
class PerCpuLayout(Layout):
    """A per-CPU map's value as the syscall sees it: one slot per possible CPU, each
    rounded up to 8 bytes. A list (one value per CPU) or a single value (every
    CPU gets it) in; a tuple out."""

    elem: Layout
    nr_cpus: int

    @property
    def stride(self) -> int:
        return (self.elem.size + 7) // 8 * 8

    @property
    def size(self) -> int:  # type: ignore[override]
        return self.stride * self.nr_cpus

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray) and len(value) == self.size:
            return bytes(value)
        # A list is one value per CPU; so is a tuple, unless a tuple is what one
        # CPU's value (a struct or an array) is written as.
        if isinstance(value, list) or (isinstance(value, tuple)
                                       and isinstance(self.elem, IntLayout | FloatLayout)):
            items = list(value)
        else:
            items = [value] * self.nr_cpus
        if len(items) != self.nr_cpus:
            raise ValueError(f"{len(items)} per-CPU values given for {self.nr_cpus} CPUs")
        return b"".join(self.elem.encode(v).ljust(self.stride, b"\0") for v in items)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        s = self.stride
        return tuple(self.elem.decode(data[i * s:i * s + self.elem.size])
                     for i in range(self.nr_cpus))


class Record:
    """A decoded struct: frozen attrs fields, equal to any value encoding the same."""

    _layout: ClassVar[StructLayout]

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self._layout.field_names}

    def __bytes__(self) -> bytes:
        return self._layout.encode(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            # Records of the same C struct compare by bytes, whichever layout decoded them.
            a, b = self._layout, other._layout
            return (a.name, a.size, a.field_names) == (b.name, b.size, b.field_names) \
                and a.encode(self) == b.encode(other)
        try:
            return self._layout.encode(self) == self._layout.encode(other)
        except (TypeError, ValueError, KeyError):
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self._layout.encode(self))


@attrs.frozen
class Member:
    name: str
    bit_offset: int
    bitfield_size: int
    layout: Layout


@attrs.frozen(eq=False)
class StructLayout(Layout):
    """A struct: members at their bit offsets (bitfields included), padding zero."""

    size: int
    name: str
    members: tuple[Member, ...]
    record: type[Record] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        cls = attrs.make_class(self.name or "anon", list(self.field_names), frozen=True,
                               eq=False, bases=(Record,), repr_ns=None)
        cls._layout = self
        object.__setattr__(self, "record", cls)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def make(self, **fields: Any) -> Record:
        """A record with these members (others zero), as :meth:`decode` would give it."""
        return self.decode(self.encode(fields))

    def encode(self, value: Any) -> bytes:
        raw = self._raw(value)
        if raw is not None:
            return raw
        if isinstance(value, Record):
            fields = value.to_dict()
        elif isinstance(value, Mapping):
            fields = dict(value)
        elif attrs.has(type(value)):
            fields = attrs.asdict(value, recurse=False)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            if len(value) > len(self.members):
                raise ValueError(f"{len(value)} values given for {self.describe()} "
                                 f"({len(self.members)} members)")
            fields = dict(zip(self.field_names, value, strict=False))
        else:
            raise TypeError(f"{self.describe()} takes a mapping, tuple, record or bytes, "
                            f"not {type(value).__name__}")
        unknown = set(fields) - set(self.field_names)
        if unknown:
            raise KeyError(f"{self.describe()} has no member {', '.join(sorted(unknown))} "
                           f"(members: {', '.join(self.field_names)})")
        out = bytearray(self.size)
        for m in self.members:
            v = fields.get(m.name)
            if v is None:
                continue
            if m.bitfield_size:
                _put_bits(out, m.bit_offset, m.bitfield_size, int(v))
            else:
                start = m.bit_offset // 8
                out[start:start + m.layout.size] = m.layout.encode(v)
        return bytes(out)

    def decode(self, data: bytes) -> Record:
        values = {}
        for m in self.members:
            if m.bitfield_size:
                v = _get_bits(data, m.bit_offset, m.bitfield_size)
                if isinstance(m.layout, IntLayout) and m.layout.signed \
                        and v >> (m.bitfield_size - 1):
                    v -= 1 << m.bitfield_size
                values[m.name] = v
            else:
                start = m.bit_offset // 8
                values[m.name] = m.layout.decode(data[start:start + m.layout.size])
        return self.record(**values)

    def describe(self) -> str:
        return f"struct {self.name}" if self.name else "anonymous struct"


def _put_bits(buf: bytearray, bit_off: int, nbits: int, value: int) -> None:
    lo, hi = bit_off // 8, (bit_off + nbits + 7) // 8
    word = int.from_bytes(buf[lo:hi], "little")
    shift = bit_off - 8 * lo
    mask = ((1 << nbits) - 1) << shift
    word = (word & ~mask) | ((value << shift) & mask)
    buf[lo:hi] = word.to_bytes(hi - lo, "little")


def _get_bits(data: bytes, bit_off: int, nbits: int) -> int:
    lo, hi = bit_off // 8, (bit_off + nbits + 7) // 8
    return (int.from_bytes(data[lo:hi], "little") >> (bit_off - 8 * lo)) & ((1 << nbits) - 1)


def default_layout(size: int) -> Layout:
    """Without BTF: an unsigned integer for 1/2/4/8 bytes, else opaque bytes."""
    return IntLayout(size) if size in (1, 2, 4, 8) else BytesLayout(size)


def btf_layout(btf: Btf, type_id: int) -> Layout:
    """The layout of BTF type ``type_id`` (typedefs and qualifiers looked through)."""
    return _btf_layout(btf, type_id, 0)


def _btf_layout(btf: Btf, type_id: int, depth: int) -> Layout:
    if depth > 32:
        raise ValueError(f"BTF type [{type_id}] nests too deeply")
    t = btf.skip_mods_and_typedefs(type_id)
    k = t.kind
    if k is BtfKind.INT:
        return IntLayout(t.size, t.is_signed, t.name)
    if k in (BtfKind.ENUM, BtfKind.ENUM64):
        return IntLayout(t.size, t.is_signed, f"enum {t.name}" if t.name else "enum")
    if k is BtfKind.PTR:
        return IntLayout(8, False, "pointer")
    if k is BtfKind.FLOAT and t.size in (4, 8):
        return FloatLayout(t.size)
    if k is BtfKind.ARRAY:
        assert t.array is not None
        elem = _btf_layout(btf, t.array.type, depth + 1)
        if isinstance(elem, IntLayout) and elem.size == 1:
            return BytesLayout(t.array.nelems)
        return ArrayLayout(elem, t.array.nelems)
    if k is BtfKind.STRUCT:
        members = []
        for i, m in enumerate(t.members):
            name = m.name or f"_anon{i}"
            members.append(Member(name, m.bit_offset, m.bitfield_size,
                                  _btf_layout(btf, m.type, depth + 1)))
        return StructLayout(t.size, t.name, tuple(members))
    if k is BtfKind.DATASEC:
        return _datasec_layout(btf, t, depth) or BytesLayout(t.size)
    return BytesLayout(btf.sizeof(t.id))


def _datasec_layout(btf: Btf, sec: Any, depth: int) -> StructLayout | None:
    """Global data (.data, .bss, .rodata, .kconfig): a record of the section's
    variables at their offsets (None when a variable has no usable name)."""
    members = []
    for vi in sorted(sec.secinfos, key=lambda v: v.offset):
        var = btf.type(vi.type)
        if not var.name or not var.name.isidentifier():
            return None
        lay = _btf_layout(btf, var.type, depth + 1)
        if lay.size != vi.size:
            lay = default_layout(vi.size)
        members.append(Member(var.name, 8 * vi.offset, 0, lay))
    if not members:
        return None
    return StructLayout(sec.size, sec.name.lstrip(".").replace(".", "_") or "data",
                        tuple(members))


def member_layouts(layout: Layout) -> Iterable[tuple[str, Layout]]:
    """(name, layout) of a struct's members, for strategies that fill each one."""
    if isinstance(layout, StructLayout):
        for m in layout.members:
            yield m.name, m.layout
