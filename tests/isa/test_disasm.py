"""The disassembler prints what the kernel's print_bpf_insn prints.

Three parts: the real kernel's verifier logs from the shared verifier cases,
replayed line by line; unit tests, one per behaviour of disasm.c; and a
property test that no byte string makes the disassembler fail.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyebpf.errors import BpfError, InvalidInsn
from pyebpf.isa.disasm import disasm, format_insn, format_line, func_id_name
from pyebpf.isa.insn import Insn, decode, encode
from pyebpf.isa.opcodes import PseudoSrc
from pyebpf.uapi import FUNC_MAX_ID, FuncId

# --------------------------------------------------------------------------
# The kernel's own logs
# --------------------------------------------------------------------------

DEV = Path(__file__).parents[2].parent / "shared" / "verifier-cases" / "dev.jsonl"

_LOG_INSN = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*)$")
# What the kernel appends to an instruction's line, on the same line (it takes
# back the newline and writes on): the register state after padding and ";",
# the state of the other branch of a conditional jump as " <pc>: R...", or a
# message about the jump. No instruction text contains ";" or "<digits>: ",
# so cutting at them never cuts instruction text.
_TRAILERS = (
    re.compile(r"\s*;.*$"),
    re.compile(r" \d+: .*$"),
    re.compile(r" infinite loop detected at insn \d+$"),
)
_LDDW = 0x18
#: lddw kinds whose imm the verifier replaces by a kernel address before it
#: logs (resolve_pseudo_ldimm64): a map, a map value, a kernel symbol.
_PATCHED = {
    PseudoSrc.MAP_FD,
    PseudoSrc.MAP_VALUE,
    PseudoSrc.BTF_ID,
    PseudoSrc.MAP_IDX,
    PseudoSrc.MAP_IDX_VALUE,
}
#: ... of which print_bpf_insn hides these two from unprivileged logs (as 0).
_MASKED = {PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE}


@attrs.frozen
class LogLine:
    case: str
    privileged: bool
    pc: int
    opcode: int
    expected: str


def _strip(text: str) -> str:
    for trailer in _TRAILERS:
        text = trailer.sub("", text)
    return text


def _exclusion(insns: list[Insn], line: LogLine) -> str | None:
    """Why this line cannot be rebuilt from the raw program bytes, or None."""
    insn = insns[line.pc]
    shows_address = line.privileged or insn.src not in _MASKED
    if insn.code == _LDDW and insn.src in _PATCHED and shows_address:
        # The address of the kernel's map/symbol object, which only existed
        # on the labelling machine.
        return "lddw of a kernel address (map, map value, ksym)"
    if insn.code == 0x85 and insn.src == 2:
        # The name and the id come from the labelling kernel's vmlinux BTF.
        return "kfunc call"
    return None


def _cases() -> list[dict]:
    if not DEV.exists():
        return []
    with DEV.open() as fh:
        return [json.loads(row) for row in fh if row.strip()]


def _log_lines(case: dict) -> Iterator[LogLine]:
    unpriv = case.get("kernel_unpriv") or {}
    logs = [(True, case.get("kernel_log_tail") or []), (False, unpriv.get("log_tail") or [])]
    for privileged, log in logs:
        for raw in log:
            m = _LOG_INSN.match(raw)
            if m:
                pc, opcode, text = int(m[1]), int(m[2], 16), _strip(m[3])
                yield LogLine(case["id"], privileged, pc, opcode, text)


CASES = _cases()
CASES_WITH_LINES = [c for c in CASES if any(True for _ in _log_lines(c))]


def _program(case: dict) -> list[Insn]:
    return decode(bytes.fromhex("".join(case["insns"])), strict=False)


def _check(insns: list[Insn], line: LogLine) -> str | None:
    """The mismatch for one compared line, or None when it matches."""
    got = format_insn(insns, line.pc, allow_ptr_leaks=line.privileged)
    if insns[line.pc].code != line.opcode or got != line.expected:
        mode = "priv" if line.privileged else "unpriv"
        return f"{line.case} [{mode}] {line.pc}: ({line.opcode:02x}) {line.expected!r} != {got!r}"
    return None


@pytest.mark.parametrize("case", CASES_WITH_LINES, ids=[c["id"] for c in CASES_WITH_LINES])
def test_kernel_log_lines_of_case(case: dict) -> None:
    insns = _program(case)
    lines = [ln for ln in _log_lines(case) if _exclusion(insns, ln) is None]
    mismatches = [m for m in (_check(insns, ln) for ln in lines) if m]
    assert not mismatches


def test_kernel_log_match_rate(capsys: pytest.CaptureFixture[str]) -> None:
    """Every instruction line of the kernel's logs that the raw bytes determine matches."""
    if not CASES:
        pytest.skip(f"{DEV} not present")
    compared = matched = 0
    excluded: Counter[str] = Counter()
    mismatches: list[str] = []
    for case in CASES:
        insns = _program(case)
        for line in _log_lines(case):
            why = _exclusion(insns, line)
            if why:
                excluded[why] += 1
                continue
            compared += 1
            problem = _check(insns, line)
            if problem:
                mismatches.append(problem)
            else:
                matched += 1
    with capsys.disabled():
        print(f"\nkernel log lines: {compared} compared, {matched} matched,", end=" ")
        print(f"excluded {dict(excluded)}")
    assert compared > 0
    assert mismatches == []


# --------------------------------------------------------------------------
# One behaviour of disasm.c each
# --------------------------------------------------------------------------


def text(*insns: Insn, pc: int = 0, **kw: object) -> str:
    return format_insn(list(insns), pc, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("insn", "expected"),
    [
        (Insn(0xB7, dst=0, imm=1), "r0 = 1"),
        (Insn(0x07, dst=2, imm=-8), "r2 += -8"),
        (Insn(0xBF, dst=1, src=10), "r1 = r10"),
        (Insn(0x0F, dst=0, src=3), "r0 += r3"),
        (Insn(0xC7, dst=1, imm=3), "r1 s>>= 3"),
        (Insn(0x67, dst=3, imm=3), "r3 <<= 3"),
    ],
)
def test_alu64_uses_r_registers_and_signed_decimal_imm(insn: Insn, expected: str) -> None:
    assert text(insn) == expected


@pytest.mark.parametrize(
    ("insn", "expected"),
    [
        (Insn(0xB4, dst=3, imm=1), "w3 = 1"),
        (Insn(0x1C, dst=3, src=9), "w3 -= w9"),
        (Insn(0x24, dst=3, imm=268435456), "w3 *= 268435456"),
        (Insn(0xBC, dst=1, src=2), "w1 = w2"),
    ],
)
def test_alu32_uses_w_registers(insn: Insn, expected: str) -> None:
    assert text(insn) == expected


def test_neg_negates_in_place() -> None:
    assert text(Insn(0x87, dst=1)) == "r1 = -r1"
    assert text(Insn(0x84, dst=4)) == "w4 = -w4"


def test_sdiv_smod_print_signed_operators() -> None:
    assert text(Insn(0x3F, dst=1, src=2, off=1)) == "r1 s/= r2"
    assert text(Insn(0x94, dst=1, off=1, imm=3)) == "w1 s%= 3"
    assert text(Insn(0x3F, dst=1, src=2, off=0)) == "r1 /= r2"


def test_signed_operators_need_off_exactly_one() -> None:
    # The kernel prints the unsigned operator for any other offset.
    assert text(Insn(0x9F, dst=1, src=2, off=2)) == "r1 %= r2"


@pytest.mark.parametrize(
    ("insn", "expected"),
    [
        (Insn(0xBF, dst=1, src=2, off=8), "r1 = (s8)r2"),
        (Insn(0xBF, dst=1, src=2, off=16), "r1 = (s16)r2"),
        (Insn(0xBF, dst=1, src=2, off=32), "r1 = (s32)r2"),
        (Insn(0xBC, dst=1, src=2, off=8), "w1 = (s8)w2"),
    ],
)
def test_movsx_prints_signed_cast(insn: Insn, expected: str) -> None:
    assert text(insn) == expected


def test_addr_space_cast_and_percpu_mov() -> None:
    assert text(Insn(0xBF, dst=1, src=2, off=1, imm=1 << 16)) == "r1 = addr_space_cast(r2, 1, 0)"
    assert text(Insn(0xBF, dst=0, src=0, off=-1)) == "r0 = &(void __percpu *)(r0)"


def test_end_and_bswap_print_width_and_direction() -> None:
    assert text(Insn(0xDC, dst=0, imm=64)) == "r0 = be64 r0"
    assert text(Insn(0xD4, dst=1, imm=16)) == "r1 = le16 r1"
    assert text(Insn(0xD7, dst=1, imm=32)) == "r1 = bswap32 r1"


@pytest.mark.parametrize(
    ("insn", "expected"),
    [
        (Insn(0x61, dst=0, src=1, off=4), "r0 = *(u32 *)(r1 +4)"),
        (Insn(0x79, dst=6, src=10, off=-8), "r6 = *(u64 *)(r10 -8)"),
        (Insn(0x71, dst=1, src=2), "r1 = *(u8 *)(r2 +0)"),
        (Insn(0x7B, dst=10, src=1, off=-8), "*(u64 *)(r10 -8) = r1"),
        (Insn(0x6A, dst=10, off=-2, imm=-7), "*(u16 *)(r10 -2) = -7"),
    ],
)
def test_loads_and_stores(insn: Insn, expected: str) -> None:
    assert text(insn) == expected


def test_ldsx_prints_signed_cast() -> None:
    assert text(Insn(0x91, dst=1, src=2)) == "r1 = *(s8 *)(r2 +0)"
    assert text(Insn(0x89, dst=1, src=2, off=-2)) == "r1 = *(s16 *)(r2 -2)"
    assert text(Insn(0x81, dst=1, src=2, off=4)) == "r1 = *(s32 *)(r2 +4)"


def test_ld_abs_and_ind_address_the_packet() -> None:
    assert text(Insn(0x30, imm=0)) == "r0 = *(u8 *)skb[0]"
    assert text(Insn(0x20, imm=-2097152)) == "r0 = *(u32 *)skb[-2097152]"
    assert text(Insn(0x40, src=2, imm=-2097152)) == "r0 = *(u32 *)skb[r2 + -2097152]"


@pytest.mark.parametrize(
    ("code", "imm", "expected"),
    [
        (0xDB, 0x00, "lock *(u64 *)(r1 -8) += r2"),
        (0xC3, 0x50, "lock *(u32 *)(r1 -8) &= r2"),
        (0xDB, 0x40, "lock *(u64 *)(r1 -8) |= r2"),
        (0xDB, 0xA0, "lock *(u64 *)(r1 -8) ^= r2"),
        (0xDB, 0x01, "r2 = atomic64_fetch_add((u64 *)(r1 -8), r2)"),
        (0xC3, 0x51, "r2 = atomic_fetch_and((u32 *)(r1 -8), r2)"),
        (0xDB, 0x41, "r2 = atomic64_fetch_or((u64 *)(r1 -8), r2)"),
        (0xDB, 0xA1, "r2 = atomic64_fetch_xor((u64 *)(r1 -8), r2)"),
        (0xDB, 0xE1, "r2 = atomic64_xchg((u64 *)(r1 -8), r2)"),
        (0xC3, 0xF1, "r0 = atomic_cmpxchg((u32 *)(r1 -8), r0, r2)"),
        (0xD3, 0x100, "r1 = load_acquire((u8 *)(r2 -8))"),
        (0xCB, 0x110, "store_release((u16 *)(r1 -8), r2)"),
    ],
)
def test_atomics(code: int, imm: int, expected: str) -> None:
    assert text(Insn(code, dst=1, src=2, off=-8, imm=imm)) == expected


def test_atomic_with_undefined_op_is_a_kernel_bug_line() -> None:
    insns = [Insn(0xDB, dst=1, src=2, imm=0x02)]
    assert format_insn(insns, 0) == "BUG_db"
    assert format_line(insns, 0) == "BUG_db"


@pytest.mark.parametrize(
    ("insn", "expected"),
    [
        (Insn(0x25, dst=1, off=2, imm=5), "if r1 > 0x5 goto pc+2"),
        (Insn(0xCE, dst=1, src=2, off=-1), "if w1 s< w2 goto pc-1"),
        (Insn(0x15, dst=0, off=0, imm=-1), "if r0 == 0xffffffff goto pc+0"),
        (Insn(0x4D, dst=3, src=4, off=7), "if r3 & r4 goto pc+7"),
    ],
)
def test_conditional_jumps_print_hex_imm_and_signed_offset(insn: Insn, expected: str) -> None:
    assert text(insn) == expected


def test_goto_uses_off() -> None:
    assert text(Insn(0x05, off=-7, imm=99)) == "goto pc-7"


def test_gotol_uses_imm() -> None:
    assert text(Insn(0x06, off=99, imm=-70000)) == "gotol pc-70000"


def test_may_goto() -> None:
    assert text(Insn(0xE5, off=3)) == "may_goto pc+3"


def test_exit() -> None:
    assert text(Insn(0x95)) == "exit"


def test_helper_call_named_like_verifier_log() -> None:
    assert text(Insn(0x85, imm=1)) == "call bpf_map_lookup_elem#1"
    assert text(Insn(0x85, imm=0)) == "call bpf_unspec#0"
    assert text(Insn(0x85, imm=211)) == "call bpf_cgrp_storage_delete#211"


def test_unknown_helper_id_prints_unknown() -> None:
    assert text(Insn(0x85, imm=212)) == "call unknown#212"
    assert text(Insn(0x85, imm=-1)) == "call unknown#-1"
    assert text(Insn(0x85, src=5, imm=1)) == "call unknown#1"


def test_pseudo_call_prints_relative_target() -> None:
    assert text(Insn(0x85, src=1, imm=2)) == "call pc+2"
    assert text(Insn(0x85, src=1, imm=-3)) == "call pc-3"


def test_kfunc_call_without_a_name_is_kernel_function() -> None:
    assert text(Insn(0x85, src=2, imm=1234)) == "call kernel-function#1234"


def test_helper_name_callback_names_kfuncs_but_not_known_helpers() -> None:
    def names(insn: Insn) -> str | None:
        return "bpf_obj_new_impl" if insn.src == 2 else "never"

    assert text(Insn(0x85, src=2, imm=77), helper_name=names) == "call bpf_obj_new_impl#77"
    assert text(Insn(0x85, imm=1), helper_name=names) == "call bpf_map_lookup_elem#1"


def test_callx_prints_as_the_kernels_printer_would() -> None:
    # print_bpf_insn looks only at BPF_OP for calls, not at the X bit.
    assert text(Insn(0x8D, dst=2)) == "call bpf_unspec#0"


def test_lddw_prints_the_full_64bit_value_in_hex() -> None:
    assert text(Insn(0x18, imm=1), Insn(0, imm=1)) == "r0 = 0x100000001"
    assert text(Insn(0x18, dst=3, imm=-1), Insn(0, imm=-1)) == "r3 = 0xffffffffffffffff"
    assert text(Insn(0x18, dst=3), Insn(0)) == "r3 = 0x0"


def test_lddw_map_pointer_hidden_without_ptr_leaks() -> None:
    for src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
        prog = (Insn(0x18, dst=1, src=src, imm=5), Insn(0, imm=1))
        assert text(*prog) == "r1 = 0x0"
        assert text(*prog, allow_ptr_leaks=True) == "r1 = 0x100000005"


def test_lddw_other_pseudo_sources_print_their_value() -> None:
    assert text(Insn(0x18, dst=2, src=PseudoSrc.FUNC, imm=6), Insn(0)) == "r2 = 0x6"
    assert text(Insn(0x18, dst=2, src=PseudoSrc.MAP_IDX, imm=1), Insn(0)) == "r2 = 0x1"


def test_lddw_imm_name_callback_renders_the_value() -> None:
    def name(insn: Insn, value: int) -> str:
        return f"map[fd:{insn.imm}]" if insn.src == PseudoSrc.MAP_FD else hex(value)

    prog = (Insn(0x18, dst=1, src=1, imm=4), Insn(0))
    assert text(*prog, imm_name=name) == "r1 = map[fd:4]"


def test_second_lddw_slot_has_no_line_but_keeps_its_number() -> None:
    prog = [Insn(0x18, dst=1, imm=7), Insn(0), Insn(0xB7, imm=1), Insn(0x95)]
    assert disasm(prog) == "0: (18) r1 = 0x7\n2: (b7) r0 = 1\n3: (95) exit\n"
    assert format_insn(prog, 1) == "<second slot of lddw>"
    assert format_line(prog, 1) == "(00) <second slot of lddw>"


def test_lddw_pairing_runs_from_the_start() -> None:
    # Slot 1 is the (malformed) upper half of slot 0, so slot 2 starts an lddw.
    prog = [Insn(0x18), Insn(0x18), Insn(0x18, dst=2, imm=3), Insn(0)]
    assert [format_insn(prog, pc) for pc in range(4)] == [
        "r0 = 0x0",
        "<second slot of lddw>",
        "r2 = 0x3",
        "<second slot of lddw>",
    ]
    assert disasm(prog).splitlines() == ["0: (18) r0 = 0x0", "2: (18) r2 = 0x3"]


def test_truncated_lddw_is_a_kernel_bug_line() -> None:
    assert disasm([Insn(0xB7), Insn(0x18, dst=1, imm=1)]) == "0: (b7) r0 = 0\n1: BUG_ld_18\n"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0x60, "BUG_ld_60"),  # LD with mode MEM
        (0x00, "BUG_ld_00"),  # LD IMM of word size
        (0x21, "BUG_ldx_21"),  # LDX with mode ABS
        (0x22, "BUG_st_22"),
        (0x23, "BUG_23"),  # STX with mode ABS
    ],
)
def test_unprintable_load_store_modes_are_kernel_bug_lines(code: int, expected: str) -> None:
    prog = [Insn(code)]
    assert format_insn(prog, 0) == expected
    assert disasm(prog) == f"0: {expected}\n"


def test_undefined_operations_print_null_as_the_kernels_printf_does() -> None:
    assert text(Insn(0xF4, dst=1, imm=2)) == "w1 (null) 2"
    assert text(Insn(0xF5, dst=1)) == "if r1 (null) 0x0 goto pc+0"
    assert text(Insn(0x99, dst=1, src=2)) == "r1 = *((null) *)(r2 +0)"


def test_undefined_jumps_read_as_compares() -> None:
    # Only the exact codes the kernel tests for print specially; the rest of
    # the JMP/JMP32 classes print as a compare with the op table's word.
    assert text(Insn(0x96, dst=1)) == "if w1 exit 0x0 goto pc+0"  # JMP32 | EXIT
    assert text(Insn(0x0D, dst=1, src=2, off=1)) == "if r1 jmp r2 goto pc+1"  # JA | X
    assert text(Insn(0xE5, src=1, off=1)) == "if r0 (null) 0x0 goto pc+1"  # JCOND, not may_goto


def test_kernel_internal_nospec_keeps_its_name() -> None:
    assert text(Insn(0xC2)) == "nospec"  # ST | BPF_NOSPEC


@pytest.mark.parametrize("code", range(256))
def test_unknown_opcode_never_raises(code: int) -> None:
    for fields in ({}, {"dst": 15, "src": 15, "off": -32768, "imm": -(2**31)}, {"imm": 2**31 - 1}):
        prog = [Insn(code, **fields), Insn(code, **fields)]
        assert isinstance(format_insn(prog, 0), str)
        assert isinstance(format_line(prog, 1), str)
        assert disasm(prog)


def test_fields_outside_their_c_range_wrap_as_in_c() -> None:
    assert text(Insn(0xB7, imm=0xFFFF_FFFF)) == "r0 = -1"
    assert text(Insn(0x05, off=0xFFFF)) == "goto pc-1"


def test_format_insn_rejects_pc_outside_the_program() -> None:
    with pytest.raises(IndexError):
        format_insn([Insn(0x95)], 1)
    with pytest.raises(IndexError):
        format_insn([Insn(0x95)], -1)


def test_disasm_of_bytes_matches_disasm_of_slots() -> None:
    prog = [Insn(0xB7, imm=1), Insn(0x18, dst=1, src=1), Insn(0), Insn(0x95)]
    listing = "0: (b7) r0 = 1\n1: (18) r1 = 0x0\n3: (95) exit\n"
    assert disasm(prog) == listing
    assert disasm(encode(prog)) == listing
    assert disasm(bytearray(encode(prog))) == listing
    assert disasm(b"") == ""


def test_disasm_opcodes_shows_the_bytes_as_bpftool() -> None:
    prog = [Insn(0xB7, imm=1), Insn(0x18, dst=1, imm=2), Insn(0, imm=3)]
    assert disasm(prog, opcodes=True) == (
        "0: (b7) r0 = 1\n"
        "       b7 00 00 00 01 00 00 00\n"
        "1: (18) r1 = 0x300000002\n"
        "       18 01 00 00 02 00 00 00  00 00 00 00 03 00 00 00\n"
    )


def test_disasm_rejects_a_partial_slot() -> None:
    with pytest.raises(InvalidInsn):
        disasm(b"\x95" * 9)


def test_func_id_name() -> None:
    assert func_id_name(FuncId.map_lookup_elem) == "bpf_map_lookup_elem"
    assert func_id_name(FUNC_MAX_ID) == "unknown"
    assert func_id_name(-1) == "unknown"


def test_func_ids_are_the_kernels() -> None:
    assert len(FuncId) == FUNC_MAX_ID == 212
    assert [m.value for m in FuncId] == list(range(212))
    spot = {"unspec": 0, "tail_call": 12, "probe_read_kernel": 113, "kptr_xchg": 194}
    assert {name: FuncId[name].value for name in spot} == spot
    assert FuncId.user_ringbuf_drain == 209
    assert FuncId.cgrp_storage_get == 210


# --------------------------------------------------------------------------
# Any bytes
# --------------------------------------------------------------------------


def _line_count(data: bytes) -> int:
    codes = data[::8]
    count = pc = 0
    while pc < len(codes):
        count += 1
        pc += 2 if codes[pc] == _LDDW and pc + 1 < len(codes) else 1
    return count


@given(st.integers(0, 24).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n)))
def test_disasm_of_any_bytes_prints_one_line_per_instruction(data: bytes) -> None:
    listing = disasm(data)
    assert len(listing.splitlines()) == _line_count(data)
    assert len(disasm(data, opcodes=True).splitlines()) == 2 * _line_count(data)
    insns = decode(data, strict=False)
    for pc in range(len(insns)):
        format_insn(insns, pc)


@given(st.binary(max_size=64).filter(lambda b: len(b) % 8))
def test_disasm_of_a_partial_slot_raises_only_pyebpf_errors(data: bytes) -> None:
    with pytest.raises(BpfError):
        disasm(data)
