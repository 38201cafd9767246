"""Typed data as text: ``bpf_snprintf_btf`` and ``bpf_seq_printf_btf``
(kernel/bpf/btf.c ``btf_type_show``, kernel/trace/bpf_trace.c).

A program hands a ``struct btf_ptr {void *ptr; __u32 type_id; __u32 flags;}``
naming an object and its type in the kernel's BTF (vmlinux: pyebpf's own
:func:`pyebpf.kernel_btf.kernel_btf`, whose ids are pyebpf's), and gets it
rendered as the kernel's BTF show code renders it, e.g. with
``BTF_F_COMPACT``::

    (struct list_head){.next = (struct list_head *)0x...,.prev = ...,}

The format, as btf_show_name / btf_show_type_value build it:

- every value is ``[indent][.member = ](type name)value[delimiter][newline]``;
  the type name is ``(struct foo)``, ``(u32)``, ``(char[])``, ``(struct foo *)``
  (a typedef's own name, not what it stands for; ``enum``/``union`` prefixes);
- structs and unions open with ``{`` and close with ``}``, arrays with ``[``
  and ``]``; array elements carry no name; members and elements end with ``,``
  (``|`` between the members of a union when compact); one space of indent per
  level and a newline after each item unless ``BTF_F_COMPACT``;
- ints in decimal (signed by their encoding), bitfields and 128-bit ints in
  hex, enums by enumerator name (the number when none matches), pointers as
  ``0x`` and 16 hex digits of a hash unless ``BTF_F_PTR_RAW`` (pyebpf's hash is
  keyed by the runtime's seed, as for ``%p``);
- the elements of an array of 1-byte ints print as ``'c'`` when printable and
  stop at the first NUL;
- zero-valued members (and structs/arrays with nothing non-zero inside) are
  left out unless ``BTF_F_ZERO`` (the top-level value is always shown);
- ``BTF_F_NONAME`` drops the names and types, keeping ``{``/``[``;
- kinds without a show (functions, prototypes, forward declarations, floats)
  print ``<unsupported kind:N>`` with the BTF kind's number.

The object is read through the program's address space; an address that
isn't readable for the type's whole size is -EFAULT (the kernel's
copy_from_kernel_nofault), with nothing written.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ..btf import BTF_INT_CHAR, BTF_INT_SIGNED, Btf, BtfKind, BtfMember, BtfType
from ..uapi import ProgType
from . import register_helper
from ._util import M32, M64, TRACING_TYPES, check_writable, neg, readable, runtime_of
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

__all__ = ["BTF_F_ALL", "BTF_F_COMPACT", "BTF_F_NONAME", "BTF_F_PTR_RAW", "BTF_F_ZERO",
           "btf_type_show"]

#: enum { BTF_F_COMPACT = 1, BTF_F_NONAME = 2, BTF_F_PTR_RAW = 4, BTF_F_ZERO = 8 }.
BTF_F_COMPACT, BTF_F_NONAME, BTF_F_PTR_RAW, BTF_F_ZERO = 1, 2, 4, 8
BTF_F_ALL = BTF_F_COMPACT | BTF_F_NONAME | BTF_F_PTR_RAW | BTF_F_ZERO
#: sizeof(struct btf_ptr).
BTF_PTR_SIZE = 16
#: BTF_SHOW_MAX_ITER: pointer/array/typedef nesting btf_show_name follows.
BTF_SHOW_MAX_ITER = 10
_INDENTS = 32
_AGGREGATES = (BtfKind.STRUCT, BtfKind.UNION)
_QUALIFIERS = (BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG)
_MODIFIERS = (*_QUALIFIERS, BtfKind.TYPEDEF)


def _isprint(c: int) -> bool:
    """The kernel's isprint (lib/ctype.c): ASCII 0x20-0x7e and Latin-1 0xa0-0xff."""
    return 0x20 <= c <= 0x7E or c >= 0xA0


@attrs.define
class _State:
    """struct btf_show's ``state``."""

    depth: int = 0
    depth_to_show: int = 0
    depth_check: int = 0
    array_member: bool = False
    array_terminated: bool = False
    array_encoding: int = 0
    type_id: int = 0
    type: BtfType | None = None
    member: BtfMember | None = None
    status: int = 0


class BtfShow:
    """One show operation (struct btf_show): the flags, the output callback and
    the walk's state. ``data`` is the object's bytes (offsets are into it)."""

    def __init__(self, btf: Btf, flags: int, emit: Callable[[bytes], None],
                 hash_pointer: Callable[[int], int]) -> None:
        self.btf = btf
        self.flags = flags
        self.emit = emit
        self.hash_pointer = hash_pointer
        self.state = _State()

    # -- output pieces (btf_show_indent/newline/delim/name) --------------------------------
    def _show(self, text: bytes) -> None:
        if not self.state.depth_check:
            self.emit(text)

    def _indent(self) -> bytes:
        if self.flags & BTF_F_COMPACT:
            return b""
        return b" " * min(self.state.depth, _INDENTS)

    def _newline(self) -> bytes:
        return b"" if self.flags & BTF_F_COMPACT else b"\n"

    def _delim(self) -> bytes:
        if self.state.depth == 0:
            return b""
        t = self.state.type
        if self.flags & BTF_F_COMPACT and t is not None and t.kind is BtfKind.UNION:
            return b"|"
        return b","

    def _name(self) -> bytes:
        """btf_show_name: ``[.member = ](type name)``, or just the parens when NONAME."""
        st = self.state
        if st.array_member:
            return b""
        btf = self.btf
        member = ""
        tid = st.type_id
        if st.member is not None:
            member = st.member.name
            tid = st.member.type
        t = btf.type(tid)
        name: str | None = None
        kinds: set[BtfKind] = set()
        parens = ""
        ptrs = arrays = 0
        for _ in range(BTF_SHOW_MAX_ITER):
            if t.kind is BtfKind.TYPEDEF:
                if name is None:
                    name = t.name
                kinds.add(BtfKind.TYPEDEF)
                tid = t.type
            elif t.kind is BtfKind.ARRAY:
                assert t.array is not None
                kinds.add(BtfKind.ARRAY)
                parens = "["
                arrays = min(arrays + 1, BTF_SHOW_MAX_ITER)
                tid = t.array.type
            elif t.kind is BtfKind.PTR:
                kinds.add(BtfKind.PTR)
                ptrs = min(ptrs + 1, BTF_SHOW_MAX_ITER)
                tid = t.type
            else:
                tid = 0
            if not tid:
                break
            t = self._skip_qualifiers(tid)
        else:
            return b""
        if name is None:
            name = t.name
        prefix = ""
        if t.kind in _AGGREGATES:
            prefix = "struct" if t.kind is BtfKind.STRUCT else "union"
            if BtfKind.ARRAY not in kinds:
                parens = "{"
        elif t.kind in (BtfKind.ENUM, BtfKind.ENUM64):
            prefix = "enum"
        if BtfKind.PTR in kinds:
            parens = ""
        if BtfKind.TYPEDEF in kinds:
            prefix = ""
        if self.flags & BTF_F_NONAME:
            return parens.encode()
        head = f".{member} = " if member else ""
        space = " " if prefix and name else ""
        ptr = "*" * ptrs
        text = (f"{head}({prefix}{space}{name}{' ' if ptr else ''}{ptr}{'[]' * arrays})"
                f"{parens}")
        return text.encode("latin-1")

    def _skip_qualifiers(self, tid: int) -> BtfType:
        """btf_type_skip_qualifiers: modifiers other than typedef."""
        t = self.btf.type(tid)
        while t.kind in _QUALIFIERS:
            t = self.btf.type(t.type)
        return t

    def _value(self, text: bytes, nonzero: bool) -> None:
        """btf_show_type_value: shown when non-zero, with ZERO, or at the top."""
        st = self.state
        if nonzero or self.flags & BTF_F_ZERO or st.depth == 0:
            self._show(self._indent() + self._name() + text + self._delim() + self._newline())
            if st.depth > st.depth_to_show:
                st.depth_to_show = st.depth

    def _values(self, text: bytes) -> None:
        """btf_show_type_values: always shown."""
        st = self.state
        self._show(self._indent() + self._name() + text + self._delim() + self._newline())
        if st.depth > st.depth_to_show:
            st.depth_to_show = st.depth

    # -- start/end -----------------------------------------------------------------------------
    def _start_type(self, t: BtfType, type_id: int) -> None:
        self.state.type = t
        self.state.type_id = type_id

    def _end_type(self) -> None:
        self.state.type = None
        self.state.type_id = 0

    def _start_aggr(self, t: BtfType, type_id: int) -> None:
        self._start_type(t, type_id)
        self._show(self._indent() + self._name() + self._newline())
        self.state.depth += 1

    def _end_aggr(self, suffix: bytes) -> None:
        self.state.depth -= 1
        self._show(self._indent() + suffix + self._delim() + self._newline())
        self._end_type()

    # -- the kinds -----------------------------------------------------------------------------
    def show(self, t: BtfType, type_id: int, data: bytes, off: int, bits_offset: int) -> None:
        """The kind's ``show`` op."""
        kind = t.kind
        if kind is BtfKind.INT:
            self._int(t, type_id, data, off, bits_offset)
        elif kind in _MODIFIERS:
            resolved = self.btf.skip_mods_and_typedefs(type_id)
            self.show(resolved, type_id, data, off, bits_offset)
        elif kind is BtfKind.PTR:
            self._ptr(t, type_id, data, off)
        elif kind is BtfKind.ARRAY:
            self._check_then(self._array, t, type_id, data, off, bits_offset)
        elif kind in _AGGREGATES:
            self._check_then(self._struct, t, type_id, data, off, bits_offset)
        elif kind in (BtfKind.ENUM, BtfKind.ENUM64):
            self._enum(t, type_id, data, off)
        elif kind is BtfKind.VAR:
            resolved = self.btf.skip_mods_and_typedefs(t.type)
            self.show(resolved, resolved.id, data, off, bits_offset)
        elif kind is BtfKind.DATASEC:
            self._datasec(t, type_id, data, off, bits_offset)
        else:  # btf_df_show: FWD, FUNC, FUNC_PROTO, FLOAT, DECL_TAG
            self._show(f"<unsupported kind:{int(kind)}>".encode())

    def _int(self, t: BtfType, type_id: int, data: bytes, off: int, bits_offset: int) -> None:
        self._start_type(t, type_id)
        nr_bits = t.int_bits
        sign = bool(t.int_encoding & BTF_INT_SIGNED)
        if bits_offset or t.int_offset or nr_bits not in (8, 16, 32, 64, 128):
            self._int_bits(t, data, off, bits_offset)
        elif nr_bits == 128:
            self._int128(int.from_bytes(data[off:off + 16], "little"))
        elif nr_bits != 8 or not self._char_member(data, off):
            size = nr_bits // 8
            raw = int.from_bytes(data[off:off + size], "little")
            value = raw - (1 << nr_bits) if sign and raw >> (nr_bits - 1) else raw
            self._value(str(value).encode(), value != 0)
        self._end_type()

    def _char_member(self, data: bytes, off: int) -> bool:
        """The 1-byte element of a char-like array: shown as 'c' when printable,
        ending the array at a NUL. True when handled here."""
        st = self.state
        if st.array_encoding != BTF_INT_CHAR:
            return False
        if st.array_terminated:
            return True
        c = data[off]
        if c == 0:
            st.array_terminated = True
            return True
        if _isprint(c):
            self._value(b"'" + bytes([c]) + b"'", True)
            return True
        return False

    def _int_bits(self, t: BtfType, data: bytes, off: int, bits_offset: int) -> None:
        """btf_int_bits_show: the bits at the int's bit offset, in hex."""
        total = bits_offset + t.int_offset
        self._bitfield(data, off + total // 8, total % 8, t.int_bits)

    def _bitfield(self, data: bytes, off: int, bits_offset: int, nr_bits: int) -> None:
        nbytes = -(-(nr_bits + bits_offset) // 8)
        raw = int.from_bytes(data[off:off + nbytes], "little")
        self._int128((raw >> bits_offset) & ((1 << nr_bits) - 1))

    def _int128(self, value: int) -> None:
        upper, lower = value >> 64, value & M64
        if upper == 0:
            self._value(f"0x{lower:x}".encode(), lower != 0)
        else:
            self._values(f"0x{upper:x}{lower:016x}".encode())

    def _ptr(self, t: BtfType, type_id: int, data: bytes, off: int) -> None:
        self._start_type(t, type_id)
        ptr = int.from_bytes(data[off:off + 8], "little")
        shown = ptr
        if not self.flags & BTF_F_PTR_RAW and ptr and ptr < M64 - 4094:
            shown = self.hash_pointer(ptr)  # %p: hashed unless NULL or an error pointer
        self._value(f"0x{shown:016x}".encode(), ptr != 0)
        self._end_type()

    def _enum(self, t: BtfType, type_id: int, data: bytes, off: int) -> None:
        self._start_type(t, type_id)
        wide = t.kind is BtfKind.ENUM64
        size = 8 if wide else 4
        raw = int.from_bytes(data[off:off + size], "little")
        mask = M64 if wide else M32
        match = next((e.name for e in t.enum_values if (e.value & mask) == raw), None)
        if match is not None:
            self._value(match.encode("latin-1"), True)
        else:
            bits = 8 * size
            value = raw - (1 << bits) if t.kflag and raw >> (bits - 1) else raw
            self._value(str(value).encode(), value != 0)
        self._end_type()

    def _check_then(self, body: Callable[[BtfType, int, bytes, int, int], None], t: BtfType,
                    type_id: int, data: bytes, off: int, bits_offset: int) -> None:
        """btf_struct_show / btf_array_show: below the top, without ZERO, a silent
        first pass finds whether anything inside is non-zero; only then the second
        pass prints."""
        st = self.state
        m = st.member
        if st.depth > 0 and not self.flags & BTF_F_ZERO:
            if not st.depth_check:
                st.depth_check = st.depth + 1
                st.depth_to_show = 0
            body(t, type_id, data, off, bits_offset)
            st.member = m
            if st.depth_check != st.depth + 1:
                return
            st.depth_check = 0
            if st.depth_to_show <= st.depth:
                return
        body(t, type_id, data, off, bits_offset)

    def _array(self, t: BtfType, type_id: int, data: bytes, off: int, bits_offset: int) -> None:
        assert t.array is not None
        btf = self.btf
        elem_id = t.array.type
        elem = btf.skip_mods_and_typedefs(elem_id)
        elem_size = elem.size if elem.kind in (BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION,
                                               BtfKind.ENUM, BtfKind.ENUM64, BtfKind.DATASEC,
                                               BtfKind.FLOAT) else 0
        encoding = 0
        if elem.kind is BtfKind.INT:
            encoding = BTF_INT_CHAR if elem_size == 1 else elem.int_encoding
        st = self.state
        st.array_encoding = encoding
        st.array_terminated = False
        self._start_aggr(t, type_id)
        for _ in range(t.array.nelems):
            st.array_member = True
            st.member = None
            self.show(elem, elem_id, data, off, bits_offset)
            off += elem_size
            st.array_member = False
            st.member = None
            if st.array_terminated:
                break
        st.array_encoding = 0
        st.array_terminated = False
        self._end_aggr(b"]")

    def _struct(self, t: BtfType, type_id: int, data: bytes, off: int, bits_offset: int) -> None:
        btf = self.btf
        self._start_aggr(t, type_id)
        for m in t.members:
            self.state.member = m
            member_type = btf.type(m.type)
            at = off + m.bit_offset // 8
            bits8 = m.bit_offset % 8
            if m.bitfield_size:
                self._start_type(member_type, m.type)
                self._bitfield(data, at, bits8, m.bitfield_size)
                self._end_type()
            else:
                self.show(member_type, m.type, data, at, bits8)
            self.state.member = None
        self._end_aggr(b"}")

    def _datasec(self, t: BtfType, type_id: int, data: bytes, off: int,
                 bits_offset: int) -> None:
        self._start_type(t, type_id)
        self._value(f'section ("{t.name}") = {{'.encode("latin-1"), True)
        for i, vsi in enumerate(t.secinfos):
            if i:
                self._show(b",")
            var = self.btf.type(vsi.type)
            self.show(var, vsi.type, data, off + vsi.offset, bits_offset)
        self._end_type()


def btf_type_show(btf: Btf, type_id: int, data: bytes, flags: int,
                  emit: Callable[[bytes], None], hash_pointer: Callable[[int], int]) -> None:
    """btf_type_show: render ``data`` (the object's bytes) as BTF type ``type_id``,
    handing each piece of text to ``emit``."""
    show = BtfShow(btf, flags, emit, hash_pointer)
    show.show(btf.type(type_id), type_id, data, 0, 0)


# -- the helpers ---------------------------------------------------------------------------
def _prepare(vm: Vm, ptr_addr: int, ptr_size: int, flags: int) -> tuple[Btf, int, bytes] | int:
    """bpf_btf_printf_prepare, then the object's bytes: (btf, type id, data) or a
    negative errno."""
    from ..kernel_btf import kernel_btf

    if flags & ~BTF_F_ALL or ptr_size != BTF_PTR_SIZE:
        return -errno.EINVAL
    raw = vm.memory.read(ptr_addr, BTF_PTR_SIZE)
    obj = int.from_bytes(raw[0:8], "little")
    type_id = int.from_bytes(raw[8:12], "little")
    btf = kernel_btf()
    if not type_id:
        return -errno.EINVAL
    if type_id >= min(len(btf.types), 1 << 31):  # an s32 btf_id: "negative" ids too
        return -errno.ENOENT
    t = btf.type(type_id)
    if t.kind in (BtfKind.FWD, BtfKind.FUNC, BtfKind.FUNC_PROTO, BtfKind.FLOAT,
                  BtfKind.DECL_TAG):
        return btf, type_id, b""  # btf_df_show reads nothing
    try:
        size = btf.sizeof(type_id)
    except Exception:
        return -errno.EINVAL
    if not readable(vm.memory, obj, size):
        return -errno.EFAULT
    return btf, type_id, vm.memory.read(obj, size) if size else b""


def _hasher(vm: Vm) -> Callable[[int], int]:
    from .printf import _hash_pointer

    key = (getattr(vm.runtime, "seed", 0) & M64).to_bytes(8, "little")
    return lambda ptr: _hash_pointer(ptr, key)


@register_helper(149, "snprintf_btf", Proto(RetType.RET_INTEGER, (
    ArgType.ARG_PTR_TO_MEM | TypeFlag.MEM_WRITE, ArgType.ARG_CONST_SIZE,
    ArgType.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, ArgType.ARG_CONST_SIZE, ArgType.ARG_ANYTHING)),
    tier="perfmon", prog_types=TRACING_TYPES)
def snprintf_btf(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Render the object into ``str`` (cut to ``str_size`` with a NUL, as
    snprintf); the length of the whole text, or a negative errno."""
    size = r2 & M32
    prepared = _prepare(vm, r3, r4 & M32, r5)
    if isinstance(prepared, int):
        return neg(-prepared)
    btf, type_id, data = prepared
    out = bytearray()
    btf_type_show(btf, type_id, data, r5, out.extend, _hasher(vm))
    if size:
        check_writable(vm.memory, r1, size)
        text = bytes(out[:size - 1]) + b"\0"
        vm.memory.write(r1, text)
    return len(out)


@register_helper(150, "seq_printf_btf", Proto(RetType.RET_INTEGER, (
    ArgType.ARG_PTR_TO_BTF_ID, ArgType.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY,
    ArgType.ARG_CONST_SIZE_OR_ZERO, ArgType.ARG_ANYTHING),
    arg_btf_id=("seq_file", None, None, None, None)), prog_types=(ProgType.TRACING,))
def seq_printf_btf(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Render the object into the iterator's seq_file (seq_vprintf per piece:
    a piece that doesn't fit marks the seq overflowed); 0, or a negative errno."""
    from ..links.iter import seq_session_at

    s = seq_session_at(runtime_of(vm, "seq_printf_btf"), r1)
    if s is None:
        from ..errors import BpfFault

        raise BpfFault(f"bpf_seq_printf_btf: {r1:#x} is not an iterator's seq_file", addr=r1)
    prepared = _prepare(vm, r2, r3 & M32, r4)
    if isinstance(prepared, int):
        return neg(-prepared)
    btf, type_id, data = prepared

    def seq_vprintf(piece: bytes) -> None:
        if s.count < s.size and s.count + len(piece) < s.size:
            s.buf[s.count:s.count + len(piece)] = piece
            s.count += len(piece)
        else:
            s.count = s.size  # seq_set_overflow

    btf_type_show(btf, type_id, data, r4, seq_vprintf, _hasher(vm))
    return 0

