"""The bpf_conformance ``.data`` file parser."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf.conformance import (
    ConformanceCase,
    DataFileError,
    load_data_file,
    parse_data_file,
    program_bytes,
)
from pyebpf.isa.asm import AsmError, assemble
from pyebpf.isa.insn import decode, encode

PROJECT = Path(__file__).resolve().parents[1]
SHARED = (PROJECT / ".." / "shared").resolve()
LOCAL_DATA = PROJECT / "tests" / "data" / "conformance"


def _shared_files() -> list[Path]:
    files = sorted((SHARED / "conformance" / "tests").glob("*.data"))
    files += sorted((SHARED / "bench").glob("*.data"))
    return files


# --- the local copies ---------------------------------------------------------------


def test_add_file() -> None:
    case = load_data_file(LOCAL_DATA / "add.data")
    assert case == ConformanceCase(
        name="add",
        asm="mov32 %r0, 0\nmov32 %r1, 2\nadd32 %r0, 1\nadd32 %r0, %r1\nadd32 %r0, %r0\n"
        "add32 %r0, -3\nexit",
        raw=None,
        mem=b"",
        result=3,
        error=None,
        asm_line=4,
    )


def test_mem_section_is_hex_bytes() -> None:
    case = load_data_file(LOCAL_DATA / "ldxh.data")
    assert case.mem == bytes([0xAA, 0xBB, 0x11, 0x22, 0xCC, 0xDD])
    assert case.result == 0x2211


def test_raw_section_words_are_little_endian_insns() -> None:
    case = load_data_file(LOCAL_DATA / "lddw.data")
    assert case.raw is not None
    assert decode(case.raw)[0].code == 0x18
    assert case.raw[:8] == bytes.fromhex("1800000088776655")
    assert case.result == 0x1122334455667788


def test_lddw_assembled_asm_equals_raw() -> None:
    case = load_data_file(LOCAL_DATA / "lddw.data")
    assert encode(assemble(case.asm)) == case.raw


def test_result_above_s64_is_kept_unsigned() -> None:
    assert load_data_file(LOCAL_DATA / "sdiv64-imm.data").result == 0xFFFFFFFD00000000


def test_c_section_is_ignored() -> None:
    case = load_data_file(LOCAL_DATA / "prime.data")
    assert "#include" not in case.asm
    assert case.asm.startswith("mov %r1, 67")
    assert case.result == 1


def test_asm_keeps_comments_for_the_assembler() -> None:
    case = load_data_file(LOCAL_DATA / "lock_cmpxchg.data")
    assert "# Atomically compare" in case.asm
    assert program_bytes(case) == encode(assemble(case.asm))


@pytest.mark.parametrize("path", sorted(LOCAL_DATA.glob("*.data")), ids=lambda p: p.name)
def test_local_copies_parse_and_decode(path: Path) -> None:
    case = load_data_file(path)
    assert case.result is not None
    decode(program_bytes(case))


# --- the format, from strings ----------------------------------------------------------


def test_program_bytes_prefers_raw() -> None:
    case = parse_data_file("-- asm\nmov %r0, 1\nexit\n-- raw\n0x95\n-- result\n0\n")
    assert program_bytes(case) == bytes.fromhex("9500000000000000")


def test_raw_accepts_eight_hex_bytes_per_line() -> None:
    text = "# upstream negative style\n-- raw\n04 00 01 00 01 00 00 00\n95 00 00 00 00 00 00 00\n"
    case = parse_data_file(text + "-- error\n")
    assert case.raw == bytes.fromhex("04000100010000009500000000000000")
    assert case.error == ""
    assert case.result is None
    assert case.asm == ""


def test_raw_decimal_word_as_upstream_reads_it() -> None:
    case = parse_data_file("-- raw\n149\n-- result\n0")
    assert case.raw == bytes.fromhex("9500000000000000")


def test_error_section_text() -> None:
    case = parse_data_file("-- asm\nexit\n-- error\n\n  division by zero  \n")
    assert case.error == "division by zero"
    assert case.result is None


def test_result_decimal_hex_and_negative() -> None:
    assert parse_data_file("-- asm\nexit\n-- result\n42\n").result == 42
    assert parse_data_file("-- asm\nexit\n-- result\n0x2a # c\n").result == 42
    assert parse_data_file("-- asm\nexit\n-- result\n-1\n").result == 2**64 - 1
    assert parse_data_file("-- asm\nexit\n-- result\n-0x2\n").result == 2**64 - 2
    assert parse_data_file("-- asm\nexit\n-- result\n0xffffffffffffffff").result == 2**64 - 1


def test_no_register_offset_section_is_ignored() -> None:
    case = parse_data_file(
        "-- asm\nexit\n-- result\n0x2\n-- no register offset\ncall instruction\n"
    )
    assert case.result == 2


def test_crlf_line_endings() -> None:
    case = parse_data_file("# x\r\n-- asm\r\nmov %r0, 1\r\nexit\r\n-- result\r\n0x1\r\n")
    assert case.result == 1
    assert assemble(case.asm) == assemble("mov %r0, 1\nexit")


def test_mem_spans_lines_and_accepts_0x() -> None:
    case = parse_data_file("-- asm\nexit\n-- mem\n00 01\n0x02 ff # tail\n-- result\n0")
    assert case.mem == b"\x00\x01\x02\xff"


def test_asm_errors_point_into_the_file() -> None:
    text = "# header\n# more\n-- asm\nmov %r0, 1\nfrob %r0\nexit\n-- result\n0\n"
    case = parse_data_file(text, name="bad")
    with pytest.raises(AsmError) as info:
        program_bytes(case)
    assert info.value.lineno == 5
    assert "bad line 5" in str(info.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-- asm\nexit\n-- frob\n", "unknown section"),
        ("-- asm\nexit\n-- asm\nexit\n", "repeated section"),
        ("mov %r0, 1\n-- asm\nexit\n", "text before"),
        ("# only a comment\n-- result\n0\n", "no program"),
        ("-- asm\nexit\n-- result\n0\n-- error\nx\n", "not both"),
        ("-- asm\nexit\n-- result\n0x1\n0x2\n", "exactly one"),
        ("-- asm\nexit\n-- result\n", "exactly one"),
        ("-- asm\nexit\n-- result\n0x10000000000000000\n", "64 bits"),
        ("-- asm\nexit\n-- result\n12abc\n", "not a 0x-hex"),
        ("-- asm\nexit\n-- mem\n00 1g\n-- result\n0", "hex byte"),
        ("-- asm\nexit\n-- mem\n100\n-- result\n0", "hex byte"),
        ("-- raw\n95 00 00\n-- result\n0", "eight hex bytes"),
        ("-- raw\n0x1ffffffffffffffff\n-- result\n0", "64 bits"),
        ("-- asm\nexit\n-- result\n-0x8000000000000001\n", "below"),
    ],
)
def test_malformed_files_raise_data_file_error(text: str, reason: str) -> None:
    with pytest.raises(DataFileError, match=reason):
        parse_data_file(text, name="t")


def test_data_file_error_has_line_number() -> None:
    with pytest.raises(DataFileError) as info:
        parse_data_file("-- asm\nexit\n-- mem\n00\nzz\n-- result\n0", name="m")
    assert info.value.lineno == 5
    assert str(info.value).startswith("m line 5:")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                ["-- asm", "-- raw", "-- mem", "-- result", "-- error", "-- c", "exit", "0x95"]
            ),
            st.text(max_size=20),
        ),
        max_size=8,
    ).map("\n".join)
)
def test_random_files_only_raise_data_file_error(text: str) -> None:
    with contextlib.suppress(DataFileError):
        parse_data_file(text)


# --- the shared corpora -------------------------------------------------------------


@pytest.mark.parametrize("path", _shared_files(), ids=lambda p: p.name)
def test_shared_file_parses(path: Path) -> None:
    case = load_data_file(path)
    assert case.name == path.stem
    assert case.error is None
    assert case.result is not None and 0 <= case.result < 2**64
    program = program_bytes(case)
    assert len(program) % 8 == 0 and program
    decode(program)  # strict


def test_shared_lddw_asm_equals_raw() -> None:
    path = SHARED / "conformance" / "tests" / "lddw.data"
    if not path.exists():
        pytest.skip(f"shared corpus not found at {SHARED}")
    case = load_data_file(path)
    assert encode(assemble(case.asm)) == case.raw


def test_shared_mem_sections() -> None:
    path = SHARED / "bench" / "memsum.data"
    if not path.exists():
        pytest.skip(f"shared bench not found at {SHARED}")
    case = load_data_file(path)
    assert len(case.mem) == 4096
    assert case.mem[:4] == bytes([3, 10, 17, 24])  # (i * 7 + 3) mod 256
