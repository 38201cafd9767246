"""BtfBuilder: BTF written from Python parses back to the same types and layouts."""

from __future__ import annotations

from pyebpf.btf import Btf, BtfKind, FuncLinkage
from pyebpf.btf_build import BtfBuilder


def test_struct_members_are_laid_out_as_c_does() -> None:
    b = BtfBuilder()
    u8, u32, u64 = b.int_("u8", 1), b.int_("u32", 4), b.int_("u64", 8)
    s = b.struct("s", [("a", u8), ("b", u32), ("c", u8), ("d", u64)])
    btf = b.build()
    assert [m.bit_offset // 8 for m in btf.type(s).members] == [0, 4, 8, 16]
    assert btf.sizeof(s) == 24 and btf.alignof(s) == 8


def test_union_explicit_offsets_and_cacheline_alignment() -> None:
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    u = b.struct("u", [("x", u32), ("y", b.array(u32, 3))], union=True)
    head = b.struct("head", [("n", u32)])
    v = b.struct("v", [("h", head), ("data", u, 8 * 64)], align=64)
    btf = b.build()
    assert btf.sizeof(u) == 12 and btf.type(u).kind is BtfKind.UNION
    assert btf.offsetof(v, "data") == 64 and btf.sizeof(v) == 128


def test_self_referencing_struct_via_declare() -> None:
    b = BtfBuilder()
    node = b.declare()
    b.define(node, "node", [("next", b.ptr(node)), ("val", b.int_("int", 4, signed=True))])
    btf = b.build()
    nxt = btf.type(btf.member(node, "next").type)
    assert nxt.kind is BtfKind.PTR and nxt.type == node and btf.sizeof(node) == 16


def test_funcs_enums_typedefs_round_trip() -> None:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    e = b.enum("color", [("RED", 0), ("BLUE", 7)])
    t = b.typedef("color_t", e)
    f = b.func("paint", b.func_proto(i, [("c", t), ("p", b.ptr(b.const(i)))]),
               FuncLinkage.STATIC)
    raw = b.encode()
    btf = Btf.parse(raw)
    assert btf.raw == raw
    fn = btf.type(f)
    assert fn.kind is BtfKind.FUNC and fn.linkage == FuncLinkage.STATIC
    proto = btf.type(fn.type)
    assert [p.name for p in proto.params] == ["c", "p"]
    assert btf.skip_mods_and_typedefs(proto.params[0].type).enum_values[1].value == 7
    assert btf.type(i).is_signed and btf.sizeof(t) == 4


def test_strings_are_shared() -> None:
    b = BtfBuilder()
    assert b.string("x") == b.string("x") != b.string("y")
    assert b.string("") == 0
