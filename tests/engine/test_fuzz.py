"""Fuzzing the decoder and the interpreter: only pyebpf errors may come out.

Whatever bytes or instructions a caller hands over, decoding raises
:class:`~pyebpf.errors.InvalidInsn` (a ``BpfError``) and running raises
:class:`~pyebpf.errors.BpfFault` (``BudgetExhausted`` included): never an
IndexError, KeyError, struct.error, ZeroDivisionError, RecursionError... Random
bytes mostly fail to decode early, so a second strategy builds *valid*
instructions from :data:`pyebpf.isa.opcodes.OPCODES` that decode and run.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyebpf.engine import Vm
from pyebpf.errors import BpfError, BpfFault, InvalidInsn
from pyebpf.isa import OPCODES, AluOp, Class, Insn, Kind, decode, encode
from pyebpf.isa.opcodes import ATOMIC_OPS_BY_SIZE

M64 = (1 << 64) - 1
BUDGET = 10_000
FUZZ = settings(max_examples=600, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROGRAMS = settings(FUZZ, max_examples=400)


def _tail_call_self(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    vm.tail_call(vm.insns if r3 & 1 else None)


def _helpers() -> dict[int, Any]:
    from pyebpf.helpers import default_helpers

    helpers = default_helpers()
    helpers[12] = _tail_call_self
    return helpers


HELPERS = _helpers()
HELPER_IDS = [*sorted(HELPERS), 0, 1, 9999]


def run_any(prog: Any) -> int | None:
    """Build and run ``prog``; the only exceptions allowed out are pyebpf's."""
    try:
        vm = Vm(prog, helpers=HELPERS)
    except InvalidInsn:
        return None
    vm.skb_data = bytes(range(64))
    try:
        r0 = vm.run(bytes(range(64)), budget=BUDGET)
    except BpfFault as fault:
        assert fault.pc is not None
        assert vm.insns_executed <= BUDGET
        return None
    assert 0 <= r0 <= M64
    assert 0 < vm.insns_executed <= BUDGET
    return r0


# -- raw bytes ----------------------------------------------------------------------

_CODES = sorted(OPCODES)

#: 8-byte slots that at least carry a known opcode and in-range registers often.
_SLOT = st.one_of(
    st.binary(min_size=8, max_size=8),
    st.tuples(
        st.sampled_from(_CODES),
        st.integers(0, 10),
        st.integers(0, 10),
        st.binary(min_size=6, max_size=6),
    ).map(lambda t: bytes([t[0], t[1] | (t[2] << 4)]) + t[3]),
)
ALIGNED = st.lists(_SLOT, min_size=0, max_size=12).map(b"".join)
ANY_BYTES = st.binary(max_size=100)


@FUZZ
@given(data=st.one_of(ANY_BYTES, ALIGNED))
def test_decode_random_bytes_raises_only_invalid_insn(data: bytes) -> None:
    try:
        insns = decode(data)
    except InvalidInsn as e:
        assert isinstance(e, BpfError)
        return
    assert len(insns) * 8 == len(data)
    assert encode(insns) == data  # valid bytes round-trip


@FUZZ
@given(data=ALIGNED)
def test_non_strict_decode_of_aligned_bytes_always_round_trips(data: bytes) -> None:
    assert encode(decode(data, strict=False)) == data


@FUZZ
@given(data=st.one_of(ANY_BYTES, ALIGNED))
def test_running_random_bytes_raises_only_pyebpf_errors(data: bytes) -> None:
    run_any(data)


@FUZZ
@given(data=st.binary(max_size=200).filter(lambda b: len(b) % 8))
def test_unaligned_length_is_invalid_insn(data: bytes) -> None:
    try:
        decode(data)
    except InvalidInsn as e:
        assert e.index is None
    else:
        raise AssertionError("decoded a buffer whose length is not a multiple of 8")


# -- valid instructions -------------------------------------------------------------

REG = st.integers(0, 10)
IMM = st.one_of(st.sampled_from([0, 1, -1, 7, 8, 31, 32, 63, 64, -(1 << 31), (1 << 31) - 1]),
                st.integers(-(1 << 31), (1 << 31) - 1))
OFF = st.integers(-(1 << 15), (1 << 15) - 1)
#: (base register, offset): mostly in r10's stack frame or r1's 64-byte mem, where
#: accesses succeed, sometimes anywhere.
MEM = st.one_of(
    st.tuples(st.just(10), st.integers(-512, -1)),
    st.tuples(st.just(1), st.integers(0, 63)),
    st.tuples(REG, st.one_of(st.integers(-520, 72), OFF)),
)


@st.composite
def valid_unit(draw: st.DrawFn, n: int, ahead: int = 0, code: int | None = None) -> list[Insn]:
    """One instruction (two slots for lddw) with field values its opcode accepts.

    ``n`` bounds jump distances and ``ahead`` (units left after this one) forward
    ones, so that most targets lie in the program and some just outside it.
    """
    if code is None:
        code = draw(st.sampled_from(_CODES))
    spec = OPCODES[code]
    kind = spec.kind
    jump = st.one_of(st.integers(0, ahead), st.integers(-n - 2, n + 2))
    if kind is Kind.ALU:
        off = 0
        if spec.op is AluOp.MOV and spec.src is not None and spec.src.name == "X":
            off = draw(st.sampled_from((0, 8, 16, 32) if spec.cls is Class.ALU64 else (0, 8, 16)))
        elif spec.op in (AluOp.DIV, AluOp.MOD):
            off = draw(st.sampled_from((0, 1)))
        return [Insn(code, draw(REG), draw(REG), off, draw(IMM))]
    if kind is Kind.NEG:
        return [Insn(code, draw(REG))]
    if kind is Kind.END:
        return [Insn(code, draw(REG), 0, 0, draw(st.sampled_from((16, 32, 64))))]
    if kind is Kind.JA:
        if spec.cls is Class.JMP:
            return [Insn(code, 0, 0, draw(jump))]
        return [Insn(code, 0, 0, 0, draw(jump))]
    if kind is Kind.JCOND:
        return [Insn(code, 0, 0, draw(jump))]
    if kind is Kind.JCC:
        return [Insn(code, draw(REG), draw(REG), draw(jump), draw(IMM))]
    if kind is Kind.CALL:
        src = draw(st.sampled_from((0, 0, 1, 2)))
        imm = draw(st.sampled_from(HELPER_IDS)) if src == 0 else draw(jump) if src == 1 \
            else draw(st.integers(0, 5))
        return [Insn(code, 0, src, 0, imm)]
    if kind is Kind.CALLX:
        return [Insn(code, draw(REG))]
    if kind is Kind.EXIT:
        return [Insn(code)]
    if kind is Kind.LD_IMM64:
        return [Insn(code, draw(REG), draw(st.integers(0, 6)), 0, draw(IMM)),
                Insn(0, 0, 0, 0, draw(IMM))]
    if kind in (Kind.LD_ABS, Kind.LD_IND):
        return [Insn(code, 0, draw(REG), 0, draw(st.one_of(st.integers(-8, 72), IMM)))]
    if kind in (Kind.LDX, Kind.LDX_SX):
        base, off = draw(MEM)
        return [Insn(code, draw(REG), base, off)]
    if kind in (Kind.ST, Kind.STX):
        base, off = draw(MEM)
        return [Insn(code, base, draw(REG), off, draw(IMM))]
    if kind is Kind.ATOMIC:
        assert spec.size is not None
        op = draw(st.sampled_from(sorted(ATOMIC_OPS_BY_SIZE[spec.size])))
        base, off = draw(MEM)
        return [Insn(code, base, draw(REG), off, op)]
    raise AssertionError(f"no strategy for {kind}")  # a new Kind needs one


@st.composite
def valid_program(draw: st.DrawFn) -> list[Insn]:
    units = draw(st.integers(1, 16))
    prog: list[Insn] = []
    for i in range(units):
        prog += draw(valid_unit(units, units - i - 1))
    if draw(st.integers(0, 7)):
        prog.append(Insn(0x95))  # usually end with exit; sometimes fall off the end
    return prog


@PROGRAMS
@given(prog=valid_program())
def test_valid_programs_decode_round_trip_and_run_without_crashing(prog: list[Insn]) -> None:
    raw = encode(prog)
    assert decode(raw) == prog
    assert encode(decode(raw)) == raw
    vm = Vm(prog, helpers=HELPERS)  # valid: no InvalidInsn
    vm.skb_data = bytes(range(64))
    try:
        r0 = vm.run(bytes(range(64)), budget=BUDGET)
    except BpfFault as fault:
        assert fault.pc is not None
    else:
        assert 0 <= r0 <= M64


@settings(max_examples=1500, deadline=None)
@given(unit=valid_unit(4))
def test_every_valid_insn_round_trips(unit: list[Insn]) -> None:
    raw = encode(unit)
    assert len(raw) == 8 * len(unit)
    assert decode(raw) == unit
    assert encode(decode(raw)) == raw


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_opcode_gets_valid_insns_that_round_trip_and_run(data: st.DataObject) -> None:
    for code in _CODES:
        unit = data.draw(valid_unit(4, 0, code), label=f"opcode {code:#04x}")
        assert unit[0].code == code
        raw = encode(unit)
        assert decode(raw) == unit
        run_any([*unit, Insn(0x95)])


@PROGRAMS
@given(prog=valid_program(), regs=st.lists(st.integers(0, M64), min_size=5, max_size=5))
def test_valid_programs_with_random_arguments(prog: list[Insn], regs: list[int]) -> None:
    vm = Vm(prog, helpers=HELPERS)
    vm.skb_data = b""
    with contextlib.suppress(BpfFault):
        vm.run(r1=regs[0], r2=regs[1], r3=regs[2], r4=regs[3], r5=regs[4], budget=BUDGET)
