"""The BTF reader: every kind, sizes and offsets, .BTF.ext, and malformed input."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf.btf import (
    Btf,
    BtfError,
    BtfExt,
    BtfKind,
    CoreReloKind,
    FuncLinkage,
    VarLinkage,
)
from pyebpf.elf.reader import ElfObject

DATA = Path(__file__).resolve().parent / "data" / "elf"


class Builder:
    """Raw BTF, one type at a time (ids from 1, in order)."""

    def __init__(self) -> None:
        self.strs = bytearray(b"\0")
        self.types = bytearray()

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strs)
        self.strs += name.encode() + b"\0"
        return off

    def t(self, name: str, kind: int, vlen: int, size_or_type: int, *extra: int,
          kflag: bool = False) -> None:
        info = (kind << 24) | vlen | (int(kflag) << 31)
        self.types += struct.pack("<III", self.s(name), info, size_or_type)
        self.types += struct.pack(f"<{len(extra)}I", *[e & 0xFFFF_FFFF for e in extra])

    def raw(self, *, magic: int = 0xEB9F, version: int = 1) -> bytes:
        hdr = struct.pack("<HBBIIIII", magic, version, 0, 24, 0, len(self.types),
                          len(self.types), len(self.strs))
        return hdr + bytes(self.types) + bytes(self.strs)


def sample() -> bytes:
    b = Builder()
    b.t("int", 1, 0, 4, (1 << 24) | 32)  # [1] int, signed
    b.t("", 2, 0, 1)  # [2] int *
    b.t("", 3, 0, 0, 1, 1, 4)  # [3] int[4]
    # [4] struct s { int a; int *p; int arr[4]; unsigned int bf:3 (kflag) }
    b.t("s", 4, 4, 40, b.s("a"), 1, 0, b.s("p"), 2, 64, b.s("arr"), 3, 128,
        b.s("bf"), 1, (3 << 24) | 256, kflag=True)
    b.t("u", 5, 2, 8, b.s("x"), 1, 0, b.s("y"), 2, 0)  # [5] union u
    b.t("e", 6, 2, 4, b.s("A"), 1, b.s("B"), -1, kflag=True)  # [6] enum e (signed)
    b.t("fwd", 7, 0, 0, kflag=True)  # [7] union fwd;
    b.t("s_t", 8, 0, 4)  # [8] typedef struct s s_t
    b.t("", 9, 0, 8)  # [9] volatile s_t
    b.t("", 10, 0, 9)  # [10] const volatile s_t
    b.t("", 11, 0, 2)  # [11] restrict int *
    b.t("", 13, 2, 1, b.s("a"), 1, b.s("b"), 2)  # [12] int (int a, int *b)
    b.t("f", 12, FuncLinkage.GLOBAL, 12)  # [13] func f
    b.t("v", 14, 0, 1, VarLinkage.GLOBAL_ALLOCATED)  # [14] int v
    b.t(".data", 15, 1, 4, 14, 0, 4)  # [15] datasec .data
    b.t("float", 16, 0, 4)  # [16] float
    b.t("tag", 17, 0, 4, 1)  # [17] decl_tag on member 1 of s
    b.t("user", 18, 0, 2)  # [18] type_tag
    b.t("e64", 19, 1, 8, b.s("BIG"), 0x1, 0x1)  # [19] enum64 e64 { BIG = 1<<32 | 1 }
    b.t("", 3, 0, 0, 10, 1, 2)  # [20] const volatile s_t[2]
    return b.raw()


def test_every_kind() -> None:
    btf = Btf.parse(sample())
    assert len(btf) == 21
    kinds = [t.kind for t in btf]
    assert set(kinds) == set(BtfKind) - {BtfKind.UNKN}
    i = btf[1]
    assert (i.name, i.size, i.int_bits, i.is_signed) == ("int", 4, 32, True)
    s = btf.find("s", BtfKind.STRUCT)
    assert s is not None and [m.name for m in s.members] == ["a", "p", "arr", "bf"]
    assert s.members[3].bitfield_size == 3 and s.members[3].bit_offset == 256
    assert btf[6].enum_values[1].value == -1
    assert btf[7].kflag  # a union forward declaration
    assert btf[12].params[1].type == 2 and btf[12].type == 1
    assert btf[13].linkage == FuncLinkage.GLOBAL
    assert btf[14].linkage == VarLinkage.GLOBAL_ALLOCATED
    assert btf[15].secinfos[0].size == 4
    assert btf[17].component_idx == 1
    assert btf[19].enum_values[0].value == (1 << 32) | 1
    assert btf.type_name(10) == "const volatile s_t"
    assert btf.type_name(11) == "restrict int *"


def test_sizes_and_offsets() -> None:
    btf = Btf.parse(sample())
    assert btf.sizeof(1) == 4 and btf.sizeof(2) == 8 and btf.sizeof(3) == 16
    assert btf.sizeof(10) == 40  # modifiers and typedefs followed
    assert btf.sizeof(20) == 80
    assert btf.sizeof(14) == 4  # a variable's type
    assert btf.alignof(4) == 8 and btf.alignof(1) == 4
    assert btf.offsetof(4, "arr[2]") == 16 + 8
    assert btf.offsetof(10, "p") == 8
    assert btf.member(4, "a").type == 1
    assert btf.skip_mods_and_typedefs(10).name == "s"
    with pytest.raises(BtfError, match="bitfield"):
        btf.offsetof(4, "bf")
    with pytest.raises(BtfError):
        btf.sizeof(13)  # a function has no size
    with pytest.raises(BtfError):
        btf.member(4, "nope")
    with pytest.raises(BtfError, match="does not exist"):
        btf.type(99)


def test_anonymous_members_are_searched() -> None:
    b = Builder()
    b.t("int", 1, 0, 4, 32)  # [1]
    b.t("", 4, 1, 4, b.s("inner"), 1, 0)  # [2] struct { int inner; }
    b.t("o", 4, 2, 8, b.s("x"), 1, 0, 0, 2, 32)  # [3] struct o { int x; struct {...}; }
    btf = Btf.parse(b.raw())
    assert btf.member(3, "inner").bit_offset == 32
    assert btf.offsetof(3, "inner") == 4


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d[:10], "shorter than its header"),
    (lambda d: b"\xeb\x9f" + d[2:], "big-endian"),
    (lambda d: b"\x00\x00" + d[2:], "magic"),
    (lambda d: d[:2] + b"\x02" + d[3:], "version"),
    (lambda d: d[:-3], "past the end|NUL"),
])
def test_malformed_headers(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BtfError, match=match):
        Btf.parse(mutate(sample()))


def test_malformed_types() -> None:
    b = Builder()
    b.t("", 2, 0, 7)  # a pointer to a missing type
    with pytest.raises(BtfError, match="missing type"):
        Btf.parse(b.raw())
    b = Builder()
    b.t("", 25, 0, 0)  # kind 25 does not exist
    with pytest.raises(BtfError, match="unknown kind"):
        Btf.parse(b.raw())
    b = Builder()
    b.t("s", 4, 3, 8, 0, 1, 0)  # a struct claiming 3 members, holding 1
    with pytest.raises(BtfError, match="past the end"):
        Btf.parse(b.raw())
    b = Builder()
    b.types += struct.pack("<III", 999, 1 << 24, 4) + struct.pack("<I", 32)
    with pytest.raises(BtfError, match="outside the string section"):
        Btf.parse(b.raw())


def test_modifier_loop() -> None:
    b = Builder()
    b.t("", 10, 0, 2)  # [1] const -> [2]
    b.t("", 9, 0, 1)  # [2] volatile -> [1]
    btf = Btf.parse(b.raw())
    with pytest.raises(BtfError, match="loop"):
        btf.sizeof(1)


@settings(max_examples=300)
@given(st.data())
def test_mutated_btf(data: st.DataObject) -> None:
    raw = bytearray(sample())
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        btf = Btf.parse(bytes(raw))
    except BtfError:
        return
    for t in btf:
        for op in (btf.sizeof, btf.alignof, btf.type_name):
            with contextlib.suppress(BtfError):
                op(t.id)


def _object_btf(name: str) -> tuple[bytes, bytes]:
    elf = ElfObject((DATA / name).read_bytes())
    btf, ext = elf.section(".BTF"), elf.section(".BTF.ext")
    assert btf is not None and ext is not None
    return btf.data, ext.data


def test_btf_ext_from_clang() -> None:
    raw, ext_raw = _object_btf("calls.o")
    btf = Btf.parse(raw)
    ext = BtfExt.parse(ext_raw, btf)
    assert set(ext.func_info) == {".text", "socket"}
    names = {btf[f.type_id].name for recs in ext.func_info.values() for f in recs}
    assert names == {"square", "sum_squares", "add_index", "use_calls", "use_loop"}
    lines = ext.line_info["socket"]
    assert lines[0].insn_off == 0 and lines[0].line_num > 0
    assert "use_calls" in lines[0].line or lines[0].line
    assert ext.func_info_rec_size == 8 and ext.line_info_rec_size == 16


def test_core_relos_from_clang() -> None:
    raw, ext_raw = _object_btf("core.o")
    btf = Btf.parse(raw)
    relos = BtfExt.parse(ext_raw, btf).core_relos["socket"]
    assert [CoreReloKind(r.kind) for r in relos] == [
        CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_BYTE_SIZE, CoreReloKind.FIELD_EXISTS,
        CoreReloKind.TYPE_SIZE, CoreReloKind.ENUMVAL_VALUE]
    assert relos[0].access_str == "0:2" and btf[relos[0].type_id].name == "pair"


def test_btf_ext_malformed() -> None:
    raw, ext_raw = _object_btf("calls.o")
    btf = Btf.parse(raw)
    with pytest.raises(BtfError):
        BtfExt.parse(ext_raw[:20], btf)
    with pytest.raises(BtfError, match=r"runs past|records"):
        BtfExt.parse(ext_raw[:-9], btf)
    bad = bytearray(ext_raw)
    struct.pack_into("<H", bad, 0, 0x1234)
    with pytest.raises(BtfError, match="magic"):
        BtfExt.parse(bytes(bad), btf)
