"""BTF show (kernel/bpf/btf.c btf_type_show) as bpf_snprintf_btf renders it:
the text of each kind under each flag, and the helper's errors and truncation."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import Cmd, MapCreateAttr, MapType, ProgType, Runtime, asm, bpf
from pyebpf.attr import MapElemAttr, ProgLoadAttr, TestRunAttr
from pyebpf.btf import Btf, BtfKind
from pyebpf.btf_build import BtfBuilder
from pyebpf.helpers.btf_show import (
    BTF_F_COMPACT,
    BTF_F_NONAME,
    BTF_F_PTR_RAW,
    BTF_F_ZERO,
    btf_type_show,
)
from pyebpf.isa import Insn, encode
from pyebpf.kernel_btf import kernel_btf

C, N, R, Z = BTF_F_COMPACT, BTF_F_NONAME, BTF_F_PTR_RAW, BTF_F_ZERO


def _btf() -> tuple[Btf, dict[str, int]]:
    b = BtfBuilder()
    ids: dict[str, int] = {}
    ids["int"] = i = b.int_("int", 4, signed=True)
    ids["u8"] = u8 = b.typedef("u8", b.int_("unsigned char", 1))
    ids["u64"] = u64 = b.int_("long long unsigned int", 8)
    ids["__int128"] = b.int_("__int128 unsigned", 16)
    ids["enum color"] = color = b.enum("color", [("RED", 0), ("GREEN", 1), ("NEG", -1)],
                                       signed=True)
    inner = b.struct("inner", [("a", i), ("b", i)])
    ids["struct inner"] = inner
    ids["union u"] = un = b.struct("u", [("x", i), ("y", u64)], union=True)
    ids["struct outer"] = b.struct("outer", [
        ("n", i), ("c", color), ("in", inner), ("tag", b.array(u8, 4)),
        ("p", b.ptr(inner)), ("vals", b.array(i, 3)), ("uu", un)])
    # struct bits { unsigned int lo:3, hi:5; int rest; } (kflag: bitfield sizes)
    uint = b.int_("unsigned int", 4)
    ids["struct bits"] = b.raw_type("bits", BtfKind.STRUCT, 3, 8, [
        b.string("lo"), uint, (3 << 24) | 0, b.string("hi"), uint, (5 << 24) | 3,
        b.string("rest"), i, 32], kflag=True)
    ids["const int"] = b.const(i)
    return Btf.parse(b.encode()), ids


BTF, IDS = _btf()


def _show(spec: str, data: bytes, flags: int = 0) -> str:
    out = bytearray()
    btf_type_show(BTF, IDS[spec], data, flags, out.extend, lambda p: p & 0xFFFF_FFFF)
    return out.decode("latin-1")


def _outer(**kw: object) -> bytes:
    f = {"n": 0, "c": 0, "a": 0, "b": 0, "tag": b"\0" * 4, "p": 0, "vals": (0, 0, 0),
         "x": 0, **kw}
    return struct.pack("<iiii4sxxxxQiiixxxxQ", f["n"], f["c"], f["a"], f["b"], f["tag"],
                       f["p"], *f["vals"], f["x"])  # type: ignore[arg-type]


def test_top_level_int_shows_even_when_zero() -> None:
    assert _show("int", struct.pack("<i", 0), C) == "(int)0"
    assert _show("int", struct.pack("<i", -3)) == "(int)-3\n"


def test_typedef_shows_its_own_name() -> None:
    assert _show("u8", b"\x07", C) == "(u8)7"


def test_128_bit_int_is_hex() -> None:
    assert _show("__int128", (1 << 64 | 5).to_bytes(16, "little"), C) == \
        "(__int128 unsigned)0x10000000000000005"


def test_enum_shows_the_enumerator_or_the_signed_number() -> None:
    assert _show("enum color", struct.pack("<i", 1), C) == "(enum color)GREEN"
    assert _show("enum color", struct.pack("<i", -1), C) == "(enum color)NEG"
    assert _show("enum color", struct.pack("<i", -7), C) == "(enum color)-7"


def test_struct_members_skip_zeros_and_end_with_commas() -> None:
    assert _show("struct outer", _outer(n=5, a=2), C) == \
        "(struct outer){.n = (int)5,.c = (enum color)RED,.in = (struct inner){.a = (int)2,},}"


def test_zero_flag_shows_every_member() -> None:
    text = _show("struct inner", bytes(8), C | Z)
    assert text == "(struct inner){.a = (int)0,.b = (int)0,}"


def test_non_compact_output_indents_one_space_per_level() -> None:
    assert _show("struct inner", struct.pack("<ii", 1, 2)) == \
        "(struct inner){\n .a = (int)1,\n .b = (int)2,\n}\n"


def test_noname_keeps_only_the_braces() -> None:
    assert _show("struct inner", struct.pack("<ii", 1, 2), C | N) == "{1,2,}"


def test_byte_array_prints_printable_chars_up_to_the_nul() -> None:
    text = _show("struct outer", _outer(tag=b"ab\x01\0"), C)
    assert ".tag = (u8[])['a','b',1,]" in text


def test_pointer_is_hashed_unless_raw() -> None:
    raw = _show("struct outer", _outer(p=0xFFFF_8880_0000_1234), C | R)
    assert ".p = (struct inner *)0xffff888000001234," in raw
    hashed = _show("struct outer", _outer(p=0xFFFF_8880_0000_1234), C)
    assert ".p = (struct inner *)0x0000000000001234," in hashed


def test_int_array_drops_zero_elements() -> None:
    assert ".vals = (int[])[4,6,]" in _show("struct outer", _outer(vals=(4, 0, 6)), C)


def test_union_members_overlap_and_take_commas_too() -> None:
    """btf_show_delim gives "|" only while the current type is a union, and each
    member's end clears it: a closing union brace is followed by a comma."""
    text = _show("struct outer", _outer(x=3), C)
    assert text.endswith(".uu = (union u){.x = (int)3,.y = (long long unsigned int)3,},}")


def test_bitfields_are_hex() -> None:
    data = struct.pack("<Ii", 0b10110_101, -1)
    assert _show("struct bits", data, C) == \
        "(struct bits){.lo = (unsigned int)0x5,.hi = (unsigned int)0x16,.rest = (int)-1,}"


def test_qualified_member_type_name_is_empty_as_the_kernel_prints_it() -> None:
    """btf_show_name stops at a CONST (its name is "")."""
    assert _show("const int", struct.pack("<i", 9), C) == "()9"


# -- the helper ---------------------------------------------------------------------------
def _run(type_id: int, data: bytes, flags: int, out_size: int = 256, *,
         obj: int | None = None, ptr_size: int = 16) -> tuple[int, bytes]:
    """A socket filter rendering map value 0 of a data map into an output map."""
    rt = Runtime()
    rt.verifier = "kernel"
    fds = [bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                             value_size=size, max_entries=1), runtime=rt)
           for size in (64, 256)]
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fds[0], key=bytes(4),
                                         value=data.ljust(64, b"\0")), runtime=rt)
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fds[1], key=bytes(4), value=b"\xaa" * 256),
        runtime=rt)
    lookup = [Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4), Insn(0x18, 1, 1, 0, 0), Insn(0),
              Insn(0x85, 0, 0, 0, 1), Insn(0x55, 0, 0, 2, 0), Insn(0xB7, 0, 0, 0, 99),
              Insn(0x95)]
    insns = [Insn(0x62, 10, 0, -4, 0)]
    for reg, fd in ((6, fds[0]), (7, fds[1])):
        insns += [*lookup[:2], Insn(0x18, 1, 1, 0, fd), *lookup[3:], Insn(0xBF, reg, 0)]
    ptr = "stxdw [%r10-24], %r6" if obj is None else f"lddw %r1, {obj}\nstxdw [%r10-24], %r1"
    insns += asm(f"{ptr}\nstw [%r10-16], {type_id}\nstw [%r10-12], 0\nmov %r1, %r7\n"
                 f"mov %r2, {out_size}\nmov %r3, %r10\nadd %r3, -24\nmov %r4, {ptr_size}\n"
                 f"mov %r5, {flags}\ncall 149\nexit")
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insns=encode(insns),
                                         license="GPL"), runtime=rt)
    retval = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(64)),
                 runtime=rt).retval
    out = bytes(bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fds[1], key=bytes(4)),
                    runtime=rt))
    return retval - (1 << 32) if retval >> 31 else retval, out


def _kid(name: str) -> int:
    t = kernel_btf().find(name)
    assert t is not None
    return t.id


def test_helper_writes_the_text_and_returns_its_length() -> None:
    retval, out = _run(_kid("ack_sample"), struct.pack("<IiI", 1, -2, 3), C)
    text = b"(struct ack_sample){.pkts_acked = (u32)1,.rtt_us = (s32)-2,.in_flight = (u32)3,}"
    assert (retval, out[:len(text) + 1]) == (len(text), text + b"\0")
    assert out[len(text) + 1:] == b"\xaa" * (256 - len(text) - 1)


def test_helper_cuts_the_text_to_the_buffer_and_still_returns_the_full_length() -> None:
    retval, out = _run(_kid("ack_sample"), struct.pack("<IiI", 1, -2, 3), C, out_size=10)
    assert retval == len("(struct ack_sample){.pkts_acked = (u32)1,.rtt_us = (s32)-2,"
                         ".in_flight = (u32)3,}")
    assert out[:11] == b"(struct a\0\xaa"


@pytest.mark.parametrize(("kwargs", "err"), [
    ({"flags": 16}, errno.EINVAL), ({"ptr_size": 8}, errno.EINVAL),
    ({"type_id": 0}, errno.EINVAL), ({"type_id": 1 << 30}, errno.ENOENT),
    ({"type_id": -1}, errno.ENOENT), ({"obj": 0x10}, errno.EFAULT)])
def test_helper_errors(kwargs: dict[str, int], err: int) -> None:
    args = {"type_id": _kid("ack_sample"), "flags": C, **kwargs}
    retval, out = _run(args.pop("type_id"), bytes(12), args.pop("flags"), **args)
    assert retval == -err
    assert out == b"\xaa" * 256
