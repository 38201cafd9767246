"""pyebpf.testing.layout: C structs from BTF as Python values, both ways."""

from __future__ import annotations

import ctypes
from pathlib import Path

import attrs
import pytest

from pyebpf import load_spec
from pyebpf.testing.layout import (
    ArrayLayout,
    BytesLayout,
    IntLayout,
    PerCpuLayout,
    StructLayout,
    btf_layout,
    default_layout,
)

FLOWS = Path(__file__).resolve().parent.parent / "data" / "testing" / "flows.o"


@pytest.fixture(scope="module")
def spec():
    return load_spec(FLOWS)


@pytest.fixture(scope="module")
def flow(spec) -> StructLayout:
    lay = btf_layout(spec.btf, spec.maps["flows"].btf_key_type_id)
    assert isinstance(lay, StructLayout)
    return lay


@pytest.fixture(scope="module")
def stats(spec) -> StructLayout:
    lay = btf_layout(spec.btf, spec.maps["flows"].btf_value_type_id)
    assert isinstance(lay, StructLayout)
    return lay


def test_struct_layout_follows_the_btf_member_offsets(flow: StructLayout) -> None:
    assert flow.name == "flow" and flow.size == 16
    assert flow.field_names == ("saddr", "daddr", "sport", "dport", "proto", "pad")
    raw = flow.encode({"saddr": 0x01020304, "dport": 0xABCD, "proto": 6})
    assert raw == bytes.fromhex("04030201 00000000 0000 cdab 06 000000".replace(" ", ""))


def test_every_input_form_encodes_to_the_same_bytes(flow: StructLayout) -> None:
    fields = {"saddr": 1, "daddr": 2, "sport": 3, "dport": 4, "proto": 17}

    class CFlow(ctypes.Structure):
        _fields_ = [("saddr", ctypes.c_uint32), ("daddr", ctypes.c_uint32),
                    ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16),
                    ("proto", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3)]

    @attrs.define
    class AFlow:
        saddr: int
        daddr: int
        sport: int
        dport: int
        proto: int

    want = flow.encode(fields)
    assert flow.encode((1, 2, 3, 4, 17)) == want
    assert flow.encode(flow.make(**fields)) == want
    assert flow.encode(AFlow(**fields)) == want
    assert flow.encode(CFlow(1, 2, 3, 4, 17)) == want
    assert flow.encode(want) == want


def test_bitfields_are_packed_into_their_storage_unit(stats: StructLayout) -> None:
    raw = stats.encode({"seen_tcp": 1, "last_ttl": 0xFF, "spare": 1})
    word = int.from_bytes(raw[20:24], "little")
    assert word == 1 | (0xFF << 1) | (1 << 9)
    back = stats.decode(raw)
    assert (back.seen_tcp, back.last_ttl, back.spare) == (1, 0xFF, 1)


def test_records_are_hashable_and_equal_to_what_encodes_the_same(flow: StructLayout) -> None:
    rec = flow.make(saddr=9, proto=6)
    assert rec == {"saddr": 9, "proto": 6} == rec
    assert rec == (9, 0, 0, 0, 6)
    assert rec != {"saddr": 9, "proto": 17}
    assert {rec: "x"}[flow.make(proto=6, saddr=9)] == "x"
    assert rec.saddr == 9 and rec.to_dict()["proto"] == 6
    assert bytes(rec) == flow.encode({"saddr": 9, "proto": 6})


def test_unknown_member_and_wrong_size_are_errors(flow: StructLayout) -> None:
    with pytest.raises(KeyError, match="has no member sprot"):
        flow.encode({"sprot": 1})
    with pytest.raises(ValueError, match="5 bytes given for a 16-byte"):
        flow.encode(b"12345")
    with pytest.raises(ValueError, match="does not fit"):
        flow.encode({"proto": 256})


def test_char_arrays_are_bytes_and_other_arrays_tuples() -> None:
    assert BytesLayout(4).encode("ab") == b"ab\0\0"
    arr = ArrayLayout(IntLayout(2), 3)
    assert arr.encode([1, 2]) == b"\x01\0\x02\0\0\0" and arr.decode(b"\x01\0\x02\0\x03\0") \
        == (1, 2, 3)


def test_signed_integers_round_trip_negative_values() -> None:
    s32 = IntLayout(4, signed=True)
    assert s32.encode(-2) == b"\xfe\xff\xff\xff" and s32.decode(b"\xfe\xff\xff\xff") == -2
    assert IntLayout(4).encode(-1) == b"\xff" * 4  # either reading fills the bytes


def test_per_cpu_values_have_one_rounded_slot_per_cpu() -> None:
    pc = PerCpuLayout(IntLayout(4), 3)
    assert pc.size == 24
    assert pc.encode(7) == (b"\x07\0\0\0" + bytes(4)) * 3
    assert pc.decode(pc.encode([1, 2, 3])) == (1, 2, 3)
    with pytest.raises(ValueError, match="2 per-CPU values given for 3 CPUs"):
        pc.encode([1, 2])


def test_default_layout_without_btf() -> None:
    assert default_layout(4) == IntLayout(4)
    assert default_layout(6) == BytesLayout(6)
