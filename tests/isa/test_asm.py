"""The bpf_conformance-dialect assembler: exact encodings, errors, and the corpora."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf.conformance import load_data_file
from pyebpf.errors import BpfError, InvalidInsn
from pyebpf.isa.asm import _LOCK_OPS, _MNEMONICS, AsmError, asm, assemble
from pyebpf.isa.insn import Insn, decode, encode, validate
from pyebpf.isa.opcodes import OPCODES

PROJECT = Path(__file__).resolve().parents[2]
SHARED = (PROJECT / ".." / "shared").resolve()
LOCAL_DATA = PROJECT / "tests" / "data" / "conformance"


def _data_files() -> list[Path]:
    files = sorted((SHARED / "conformance" / "tests").glob("*.data"))
    files += sorted((SHARED / "bench").glob("*.data"))
    return files


def one(line: str) -> Insn:
    """The single slot a one-instruction line assembles to."""
    (insn,) = assemble(line)
    return insn


# --- exact encodings, one construct at a time ----------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("mov %r0, 1", Insn(0xB7, 0, 0, 0, 1)),
        ("mov64 %r0, 1", Insn(0xB7, 0, 0, 0, 1)),
        ("mov32 %r0, %r1", Insn(0xBC, 0, 1)),
        ("add %r1, 2", Insn(0x07, 1, 0, 0, 2)),
        ("add32 %r0, -3", Insn(0x04, 0, 0, 0, -3)),
        ("sub %r4, %r3", Insn(0x1F, 4, 3)),
        ("mul32 %r0, 7", Insn(0x24, 0, 0, 0, 7)),
        ("div %r3, %r2", Insn(0x3F, 3, 2)),
        ("or %r1, 0x0f", Insn(0x47, 1, 0, 0, 0x0F)),
        ("and32 %r1, 0x0f0f0f0f", Insn(0x54, 1, 0, 0, 0x0F0F0F0F)),
        ("lsh %r0, 63", Insn(0x67, 0, 0, 0, 63)),
        ("rsh32 %r0, %r7", Insn(0x7C, 0, 7)),
        ("mod %r0, %r1", Insn(0x9F, 0, 1)),
        ("xor32 %r1, 0x00ff00ff", Insn(0xA4, 1, 0, 0, 0x00FF00FF)),
        ("arsh32 %r0, %r1", Insn(0xCC, 0, 1)),
        ("arsh %r1, 63", Insn(0xC7, 1, 0, 0, 63)),
        ("neg %r3", Insn(0x87, 3)),
        ("neg32 %r3", Insn(0x84, 3)),
    ],
)
def test_alu_encodings(line: str, expected: Insn) -> None:
    assert one(line) == expected


def test_sdiv_smod_are_div_mod_with_offset_one() -> None:
    assert one("sdiv %r0, -4") == Insn(0x37, 0, 0, 1, -4)
    assert one("sdiv32 %r0, %r1") == Insn(0x3C, 0, 1, 1)
    assert one("smod %r0, %r1") == Insn(0x9F, 0, 1, 1)
    assert one("smod32 %r0, 3") == Insn(0x94, 0, 0, 1, 3)


def test_movsx_offset_is_source_width_and_class_is_destination_width() -> None:
    assert one("movsx832 %r2, %r1") == Insn(0xBC, 2, 1, 8)
    assert one("movsx1632 %r4, %r3") == Insn(0xBC, 4, 3, 16)
    assert one("movsx864 %r6, %r5") == Insn(0xBF, 6, 5, 8)
    assert one("movsx1664 %r8, %r7") == Insn(0xBF, 8, 7, 16)
    assert one("movsx3264 %r0, %r9") == Insn(0xBF, 0, 9, 32)


def test_movsx_rejects_immediate_and_32_to_32() -> None:
    with pytest.raises(AsmError, match="register source"):
        assemble("movsx864 %r0, 5")
    with pytest.raises(AsmError, match="unknown mnemonic"):
        assemble("movsx3232 %r0, %r1")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("le16 %r0", Insn(0xD4, 0, 0, 0, 16)),
        ("le32 %r1", Insn(0xD4, 1, 0, 0, 32)),
        ("le64 %r0", Insn(0xD4, 0, 0, 0, 64)),
        ("be16 %r0", Insn(0xDC, 0, 0, 0, 16)),
        ("be32 %r2", Insn(0xDC, 2, 0, 0, 32)),
        ("be64 %r0", Insn(0xDC, 0, 0, 0, 64)),
        ("swap16 %r0", Insn(0xD7, 0, 0, 0, 16)),
        ("bswap32 %r3", Insn(0xD7, 3, 0, 0, 32)),
        ("swap64 %r0", Insn(0xD7, 0, 0, 0, 64)),
    ],
)
def test_byte_swaps_put_width_in_imm(line: str, expected: Insn) -> None:
    assert one(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ldxb %r0, [%r1+0x2]", Insn(0x71, 0, 1, 2)),
        ("ldxh %r0, [%r1+2]", Insn(0x69, 0, 1, 2)),
        ("ldxw %r0, [%r1]", Insn(0x61, 0, 1, 0)),
        ("ldxdw %r0, [%r2-16]", Insn(0x79, 0, 2, -16)),
        ("ldxsb %r0, [%r10-1]", Insn(0x91, 0, 10, -1)),
        ("ldxsh %r0, [%r10-2]", Insn(0x89, 0, 10, -2)),
        ("ldxsw %r0, [%r10-4]", Insn(0x81, 0, 10, -4)),
        ("stb [%r10-1], 0x80", Insn(0x72, 10, 0, -1, 0x80)),
        ("sth [%r10-2], 0x8001", Insn(0x6A, 10, 0, -2, 0x8001)),
        ("stw [%r10-4], 0xaa", Insn(0x62, 10, 0, -4, 0xAA)),
        ("stdw [%r10-16], 0xab", Insn(0x7A, 10, 0, -16, 0xAB)),
        ("stxb [%r0+1], %r9", Insn(0x73, 0, 9, 1)),
        ("stxh [%r1+2], %r2", Insn(0x6B, 1, 2, 2)),
        ("stxw [%r10-4], %r1", Insn(0x63, 10, 1, -4)),
        ("stxdw [%r10-8], %r0", Insn(0x7B, 10, 0, -8)),
        ("ldxw %r0, [ %r1 + 4 ]", Insn(0x61, 0, 1, 4)),
    ],
)
def test_load_store_encodings(line: str, expected: Insn) -> None:
    assert one(line) == expected


def test_no_sign_extending_doubleword_load() -> None:
    with pytest.raises(AsmError, match="unknown mnemonic"):
        assemble("ldxsdw %r0, [%r1]")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("lock add [%r10-8], %r1", Insn(0xDB, 10, 1, -8, 0x00)),
        ("lock add32 [%r10-4], %r1", Insn(0xC3, 10, 1, -4, 0x00)),
        ("lock fetch add [%r10-8], %r1", Insn(0xDB, 10, 1, -8, 0x01)),
        ("lock fetch add32 [%r10-4], %r1", Insn(0xC3, 10, 1, -4, 0x01)),
        ("lock or [%r10-8], %r1", Insn(0xDB, 10, 1, -8, 0x40)),
        ("lock fetch or32 [%r10-8], %r1", Insn(0xC3, 10, 1, -8, 0x41)),
        ("lock and [%r10-8], %r1", Insn(0xDB, 10, 1, -8, 0x50)),
        ("lock fetch and [%r10-8], %r3", Insn(0xDB, 10, 3, -8, 0x51)),
        ("lock xor32 [%r10-4], %r1", Insn(0xC3, 10, 1, -4, 0xA0)),
        ("lock fetch xor [%r10-8], %r1", Insn(0xDB, 10, 1, -8, 0xA1)),
        ("lock xchg [%r10-8], %r1", Insn(0xDB, 10, 1, -8, 0xE1)),
        ("lock xchg32 [%r10-8], %r1", Insn(0xC3, 10, 1, -8, 0xE1)),
        ("lock cmpxchg [%r10-8], %r1", Insn(0xDB, 10, 1, -8, 0xF1)),
        ("lock cmpxchg32 [%r10-8], %r1", Insn(0xC3, 10, 1, -8, 0xF1)),
    ],
)
def test_atomic_encodings(line: str, expected: Insn) -> None:
    assert one(line) == expected


def test_xchg_and_cmpxchg_fetch_is_implicit() -> None:
    assert one("lock fetch xchg [%r1], %r2") == one("lock xchg [%r1], %r2")
    assert one("lock fetch cmpxchg32 [%r1], %r2") == one("lock cmpxchg32 [%r1], %r2")


@pytest.mark.parametrize(
    "line",
    ["lock", "lock fetch", "lock nand [%r1], %r2", "lock add", "lock add [%r1]", "lock fetch %r1"],
)
def test_malformed_lock_is_error(line: str) -> None:
    with pytest.raises(AsmError):
        assemble(line)


def test_lddw_takes_two_slots_upper_half_in_second() -> None:
    assert assemble("lddw %r0, 0x1122334455667788") == [
        Insn(0x18, 0, 0, 0, 0x55667788),
        Insn(0x00, 0, 0, 0, 0x11223344),
    ]


def test_lddw_halves_are_stored_as_s32() -> None:
    assert assemble("lddw %r1, 0xFFFFFFFF80000000") == [
        Insn(0x18, 1, 0, 0, -0x8000_0000),
        Insn(0, 0, 0, 0, -1),
    ]
    assert assemble("lddw %r1, -1") == [Insn(0x18, 1, 0, 0, -1), Insn(0, 0, 0, 0, -1)]


def test_lddw_beyond_64_bits_is_error() -> None:
    with pytest.raises(AsmError, match="64 bits"):
        assemble("lddw %r1, 0x10000000000000000")


def test_lddw_counts_two_slots_for_jumps() -> None:
    insns = assemble("ja done\nlddw %r0, 1\ndone:\nexit")
    assert insns[0].off == 2
    assert len(insns) == 4


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("jeq %r1, 0xb, +1", Insn(0x15, 1, 0, 1, 0xB)),
        ("jeq %r1, %r2, +1", Insn(0x1D, 1, 2, 1)),
        ("jgt %r1, 6, +2", Insn(0x25, 1, 0, 2, 6)),
        ("jge %r2, %r1, -1", Insn(0x3D, 2, 1, -1)),
        ("jset %r1, 0x8, +0", Insn(0x45, 1, 0, 0, 8)),
        ("jne %r1, 3, +1", Insn(0x55, 1, 0, 1, 3)),
        ("jsgt %r1, %r2, +1", Insn(0x6D, 1, 2, 1)),
        ("jsge %r1, -1, +1", Insn(0x75, 1, 0, 1, -1)),
        ("jlt %r1, 2, +1", Insn(0xA5, 1, 0, 1, 2)),
        ("jle %r1, %r2, +1", Insn(0xBD, 1, 2, 1)),
        ("jslt %r1, -1, +1", Insn(0xC5, 1, 0, 1, -1)),
        ("jsle %r1, 0xfffffffd, +1", Insn(0xD5, 1, 0, 1, -3)),
        ("jeq32 %r1, 0xb, +1", Insn(0x16, 1, 0, 1, 0xB)),
        ("jne32 %r1, %r2, -1", Insn(0x5E, 1, 2, -1)),
        ("jsle32 %r4, 0, +3", Insn(0xD6, 4, 0, 3, 0)),
        ("ja +1", Insn(0x05, 0, 0, 1)),
        ("ja -1", Insn(0x05, 0, 0, -1)),
        ("ja32 +5", Insn(0x06, 0, 0, 0, 5)),
        ("exit", Insn(0x95)),
    ],
)
def test_jump_encodings(line: str, expected: Insn) -> None:
    assert one(line) == expected


def test_label_offset_is_relative_to_next_insn() -> None:
    insns = assemble("back:\nmov %r0, 0\njne %r0, 1, back\nja fwd\nmov %r0, 2\nfwd:\nexit")
    assert insns[1].off == -2
    assert insns[2].off == 1


def test_ja32_label_distance_goes_in_imm() -> None:
    insns = assemble("ja32 L2\nL1:\nexit\nL2:\nja32 L1")
    assert insns[0] == Insn(0x06, 0, 0, 0, 1)
    assert insns[2] == Insn(0x06, 0, 0, 0, -2)


def test_exit_target_names_first_exit() -> None:
    insns = assemble("jeq %r1, 0, exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit\njne %r1, 0, exit")
    assert insns[0].off == 1
    assert insns[5].off == -4


def test_explicit_exit_label_wins_over_first_exit() -> None:
    insns = assemble("ja exit\nexit\nmov %r0, 1\nexit:\nexit")
    assert insns[0].off == 2


def test_exit_target_without_exit_is_error() -> None:
    with pytest.raises(AsmError, match="undefined label 'exit'"):
        assemble("ja exit\nmov %r0, 0")


def test_call_helper_puts_id_in_imm() -> None:
    assert one("call 5") == Insn(0x85, 0, 0, 0, 5)
    assert one("call helper 12") == Insn(0x85, 0, 0, 0, 12)


def test_call_local_offset_is_relative_to_next_insn() -> None:
    insns = assemble("call local func1\nexit\nfunc1:\nmov %r0, 1\nexit")
    assert insns[0] == Insn(0x85, 0, 1, 0, 1)
    back = assemble("f:\nexit\ncall local f")
    assert back[1] == Insn(0x85, 0, 1, 0, -2)
    assert one("call local +3") == Insn(0x85, 0, 1, 0, 3)


def test_callx_puts_register_in_dst() -> None:
    assert one("call %r2") == Insn(0x8D, 2, 0)
    assert OPCODES[0x8D].kind.value == "callx"


def test_call_runtime_is_kfunc() -> None:
    assert one("call runtime 7") == Insn(0x85, 0, 2, 0, 7)


@pytest.mark.parametrize("line", ["call", "call local", "call remote 1", "call local f g"])
def test_malformed_call_is_error(line: str) -> None:
    with pytest.raises(AsmError):
        assemble(line)


def test_ld_abs_and_ld_ind() -> None:
    assert one("ldabsw 4") == Insn(0x20, 0, 0, 0, 4)
    assert one("ldabsh 2") == Insn(0x28, 0, 0, 0, 2)
    assert one("ldabsb 1") == Insn(0x30, 0, 0, 0, 1)
    assert one("ldindw %r1, 4") == Insn(0x40, 0, 1, 0, 4)
    assert one("ldindh %r2, -2") == Insn(0x48, 0, 2, 0, -2)
    assert one("ldindb %r3, 0") == Insn(0x50, 0, 3, 0, 0)
    with pytest.raises(AsmError):
        assemble("ldabsdw 0")


# --- immediates -----------------------------------------------------------------


def test_unsigned_hex_imm_wraps_to_s32() -> None:
    assert one("mov %r0, 0xffffffff").imm == -1
    assert one("jeq %r1, 0x80000000, +1").imm == -0x8000_0000
    assert one("mov32 %r0, 4294967295").imm == -1
    assert one("mov %r0, 0x7fffffff").imm == 0x7FFF_FFFF


def test_negative_and_hex_imm() -> None:
    assert one("mov %r0, -10").imm == -10
    assert one("mov %r0, -0x10").imm == -16
    assert one("mov %r0, +7").imm == 7
    assert one("mov %r0, -2147483648").imm == -0x8000_0000


@pytest.mark.parametrize(
    "line",
    [
        "mov32 %r0, 0x100000000",
        "mov %r0, 4294967296",
        "mov %r0, -2147483649",
        "stw [%r1], 0x1ffffffff",
        "jeq %r1, 0x100000000, +1",
        "call 0x100000000",
    ],
)
def test_imm_too_wide_is_error(line: str) -> None:
    with pytest.raises(AsmError, match="does not fit in 32 bits"):
        assemble(line)


def test_offset_wraps_at_16_bits_and_wider_is_error() -> None:
    assert one("ldxb %r0, [%r1+0xffff]").off == -1
    assert one("ldxb %r0, [%r1-0x8000]").off == -0x8000
    with pytest.raises(AsmError, match="16 bits"):
        assemble("ldxb %r0, [%r1+0x10000]")
    with pytest.raises(AsmError, match="16 bits"):
        assemble("ldxb %r0, [%r1-0x8001]")


def test_relative_jump_beyond_s16_is_error() -> None:
    assert one("ja +32767").off == 32767
    with pytest.raises(AsmError, match="signed 16-bit"):
        assemble("ja +32768")
    assert one("ja32 +32768").imm == 32768


def test_label_distance_beyond_s16_is_error_but_fits_ja32() -> None:
    body = "exit\n" * 32768
    with pytest.raises(AsmError, match="does not fit in a signed 16-bit off") as info:
        assemble("ja far\n" + body + "far:\nexit")
    assert info.value.lineno == 1
    assert assemble("ja32 far\n" + body + "far:\nexit")[0].imm == 32768


def test_huge_literal_is_error_not_crash() -> None:
    with pytest.raises(AsmError, match="too wide"):
        assemble("mov %r0, " + "9" * 5000)


# --- lines, comments, labels, errors ----------------------------------------------


def test_comments_and_blank_lines_are_ignored() -> None:
    text = "# header\n\n  mov %r0, 1 # trailing\n; semicolon comment\nexit ; too\n"
    assert assemble(text) == [Insn(0xB7, 0, 0, 0, 1), Insn(0x95)]


def test_label_may_share_a_line_with_an_insn() -> None:
    assert assemble("ja l\nl: exit") == [Insn(0x05, 0, 0, 0), Insn(0x95)]


def test_whitespace_and_crlf_tolerated() -> None:
    assert assemble("\tmov\t%r0 ,  1\r\nexit\r\n") == [Insn(0xB7, 0, 0, 0, 1), Insn(0x95)]


def test_registers_up_to_r15_are_encodable_for_negative_tests() -> None:
    assert one("mov %r11, 1").dst == 11
    with pytest.raises(AsmError, match="register"):
        assemble("mov %r16, 1")
    with pytest.raises(AsmError, match="register"):
        assemble("mov r1, 1")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("frob %r0", "unknown mnemonic"),
        ("MOV %r0, 1", "unknown mnemonic"),
        ("mov %r0", "takes 2 operand"),
        ("mov %r0, 1, 2", "takes 2 operand"),
        ("exit %r0", "takes 0 operand"),
        ("neg %r0, 1", "takes 1 operand"),
        ("mov %r0,, 1", "empty operand"),
        ("mov %r0, abc", "expected a number"),
        ("mov %r0, 0x", "expected a number"),
        ("mov %r0, 1.5", "expected a number"),
        ("ldxw %r0, %r1", "memory operand"),
        ("ldxw %r0, [%r1+]", "memory operand"),
        ("stxw [%rx+1], %r1", "register"),
        ("ja 3", "expected a label"),
        ("ja nowhere", "undefined label"),
        ("jeq %r1, 1", "takes 3 operand"),
        ("x:\nx:\nexit", "duplicate label"),
    ],
)
def test_malformed_lines_raise_asm_error(text: str, reason: str) -> None:
    with pytest.raises(AsmError, match=reason):
        assemble(text)


def test_asm_error_carries_line_number_and_text() -> None:
    with pytest.raises(AsmError) as info:
        assemble("mov %r0, 1\n\n  frob %r1  # what\nexit", first_line=10, source="t.data")
    err = info.value
    assert err.lineno == 12
    assert err.text == "  frob %r1  # what"
    assert err.reason == "unknown mnemonic 'frob'"
    assert "t.data line 12" in str(err)
    assert isinstance(err, InvalidInsn)
    assert isinstance(err, BpfError)
    assert err.errno == errno.EINVAL


def test_asm_alias() -> None:
    assert asm is assemble


def test_every_mnemonic_assembles_to_a_valid_opcode() -> None:
    """The tables only produce opcodes the ISA table knows, with valid fields."""
    samples = {
        "ALU": "%r1, %r2",
        "MOVSX": "%r1, %r2",
        "UNARY": "%r1",
        "LDX": "%r1, [%r2+4]",
        "ST": "[%r1+4], 1",
        "STX": "[%r1+8], %r2",
        "ATOMIC": "[%r1+8], %r2",
        "LDDW": "%r1, 1",
        "LD_ABS": "1",
        "LD_IND": "%r1, 1",
        "JA": "+0",
        "JA32": "+0",
        "JCC": "%r1, 1, +0",
        "CALL": "1",
        "EXIT": "",
    }
    names = list(_MNEMONICS.items())
    names += [(f"lock {m}", op) for m, op in _LOCK_OPS.items()]
    for name, op in names:
        insns = assemble(f"{name} {samples[op.form.name]}")
        validate(insns)
        assert insns[0].code in OPCODES


# --- the corpora ------------------------------------------------------------------


@pytest.mark.parametrize("path", _data_files(), ids=lambda p: p.name)
def test_shared_file_assembles_to_valid_program(path: Path) -> None:
    case = load_data_file(path)
    insns = assemble(case.asm, first_line=case.asm_line, source=path.name)
    assert insns
    assert decode(encode(insns)) == insns  # strict: every slot valid
    assert any(i.code == 0x95 for i in insns)


def test_shared_corpus_size() -> None:
    files = _data_files()
    if not files:
        pytest.skip(f"shared corpus not found at {SHARED}")
    names = {p.name for p in files}
    assert len(files) >= 321
    assert {"lddw.data", "call_local.data", "callx.data", "ja32.data"} <= names


@pytest.mark.parametrize("path", sorted(LOCAL_DATA.glob("*.data")), ids=lambda p: p.name)
def test_local_copy_assembles(path: Path) -> None:
    case = load_data_file(path)
    validate(assemble(case.asm))


def test_lddw_file_asm_equals_raw() -> None:
    case = load_data_file(LOCAL_DATA / "lddw.data")
    assert case.raw is not None
    assert encode(assemble(case.asm)) == case.raw


def test_call_local_file_targets_func1() -> None:
    insns = assemble(load_data_file(LOCAL_DATA / "call_local.data").asm)
    call = next(i for i in insns if i.code == 0x85)
    pc = insns.index(call)
    # func1 starts after the two "failed:" instructions: mov %r0, -1; exit.
    assert call.src == 1
    assert pc + 1 + call.imm == 20


# --- robustness -------------------------------------------------------------------

_TOKENS = st.sampled_from(
    [
        *sorted(_MNEMONICS),
        "lock",
        "fetch",
        "local",
        "helper",
        "runtime",
        *[f"%r{n}" for n in range(18)],
        "[%r1+8]",
        "[%r10-0x8000]",
        "[%r1]",
        "[",
        "]",
        "+",
        "-",
        ",",
        ":",
        "#",
        ";",
        "exit",
        "l1",
        "l1:",
        "+1",
        "-1",
        "+40000",
        "0x",
        "0xffffffff",
        "0x100000000",
        "-2147483649",
        "18446744073709551615",
        "0x10000000000000000",
        "%",
        "%r",
        "\t",
        " ",
    ]
)


def _check_total(text: str) -> None:
    try:
        insns = assemble(text)
    except AsmError:
        return
    assert len(encode(insns)) == 8 * len(insns)  # every produced slot packs


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_TOKENS, max_size=6).map(" ".join), max_size=6).map("\n".join))
def test_token_soup_only_raises_asm_error(text: str) -> None:
    _check_total(text)


_WIDE_INTS = st.integers(min_value=-(2**66), max_value=2**66)
_OPERAND = st.one_of(
    st.integers(min_value=0, max_value=16).map(lambda n: f"%r{n}"),
    _WIDE_INTS.map(str),
    _WIDE_INTS.map(lambda v: f"-{-v:#x}" if v < 0 else f"{v:#x}"),
    st.tuples(st.integers(0, 16), _WIDE_INTS).map(lambda t: f"[%r{t[0]}{t[1]:+d}]"),
    st.integers(-(2**33), 2**33).map(lambda v: f"{v:+d}"),
    st.sampled_from(["exit", "l1", "local l1", "local +1", "helper 1", "runtime 2"]),
)
_MNEMONIC = st.sampled_from(
    sorted(_MNEMONICS) + [f"lock {m}" for m in _LOCK_OPS] + [f"lock fetch {m}" for m in _LOCK_OPS]
)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.tuples(_MNEMONIC, st.lists(_OPERAND, max_size=4)).map(
            lambda t: f"{t[0]} {', '.join(t[1])}"
        ),
        max_size=4,
    ).map(lambda lines: "\n".join(["l1:", *lines, "exit"]))
)
def test_shaped_lines_only_raise_asm_error(text: str) -> None:
    """Well-shaped lines with values of any width: encodable slots or AsmError."""
    _check_total(text)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_random_text_only_raises_asm_error(text: str) -> None:
    _check_total(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**31), max_value=2**32 - 1))
def test_any_32_bit_spelling_round_trips_as_s32(value: int) -> None:
    expected = value - 2**32 if value >= 2**31 else value
    assert one(f"mov %r0, {value}").imm == expected
    spelled = f"-{-value:#x}" if value < 0 else f"{value:#x}"
    assert one(f"mov %r0, {spelled}").imm == expected
