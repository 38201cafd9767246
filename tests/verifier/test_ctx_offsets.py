"""What the verifier records about a program's reach: the furthest ctx byte
(prog->aux->max_ctx_offset, check_ctx_access) and the furthest byte of a
writable raw tracepoint's buffer (max_tp_access, check_tp_buffer_access)."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Cmd, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgLoadAttr
from pyebpf.errors import VerifierError
from pyebpf.prog import BpfProg


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime()
    runtime.verifier = "kernel"
    return runtime


def _load(rt: Runtime, text: str, ptype: ProgType) -> BpfProg:
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=asm(text), license="GPL",
                                         log_level=1, log_size=1 << 20), runtime=rt)
    prog = rt.fds[fd].obj
    assert isinstance(prog, BpfProg)
    return prog


def test_raw_tp_max_ctx_offset_is_the_end_of_the_furthest_argument_read(rt: Runtime) -> None:
    prog = _load(rt, "ldxdw %r0, [%r1+24]\nldxdw %r2, [%r1+8]\nexit", ProgType.RAW_TRACEPOINT)
    assert prog.max_ctx_offset == 32


def test_narrow_ctx_load_counts_its_own_size(rt: Runtime) -> None:
    prog = _load(rt, "ldxw %r0, [%r1+16]\nexit", ProgType.RAW_TRACEPOINT)
    assert prog.max_ctx_offset == 20


def test_program_not_touching_its_ctx_records_zero(rt: Runtime) -> None:
    prog = _load(rt, "mov %r0, 0\nexit", ProgType.RAW_TRACEPOINT)
    assert (prog.max_ctx_offset, prog.max_tp_access) == (0, 0)


def test_ctx_read_on_a_branch_not_taken_at_run_time_still_counts(rt: Runtime) -> None:
    """The verifier walks both sides of a branch: the offset is a load-time fact."""
    prog = _load(rt, "ldxdw %r2, [%r1+0]\nmov %r0, 0\njeq %r2, 0, +1\n"
                 "ldxdw %r0, [%r1+40]\nexit", ProgType.RAW_TRACEPOINT)
    assert prog.max_ctx_offset == 48


def test_max_ctx_offset_is_recorded_for_every_program_type(rt: Runtime) -> None:
    prog = _load(rt, "ldxw %r0, [%r1+0]\nexit", ProgType.SOCKET_FILTER)  # skb->len
    assert prog.max_ctx_offset == 4


def test_writable_raw_tp_buffer_reach_goes_to_max_tp_access(rt: Runtime) -> None:
    prog = _load(rt, "ldxdw %r1, [%r1+0]\nldxw %r0, [%r1+12]\nstw [%r1+20], 1\nexit",
                 ProgType.RAW_TRACEPOINT_WRITABLE)
    assert (prog.max_ctx_offset, prog.max_tp_access) == (8, 24)


def test_tp_buffer_negative_offset_is_rejected(rt: Runtime) -> None:
    with pytest.raises(VerifierError) as exc:
        _load(rt, "ldxdw %r1, [%r1+0]\nldxw %r0, [%r1-4]\nexit",
              ProgType.RAW_TRACEPOINT_WRITABLE)
    assert exc.value.errno == errno.EACCES
    assert exc.value.strerror == "R1 invalid tracepoint buffer access: off=-4, size=4"


def test_tp_buffer_variable_offset_is_rejected(rt: Runtime) -> None:
    with pytest.raises(VerifierError) as exc:
        _load(rt, "ldxdw %r2, [%r1+8]\nand %r2, 8\nldxdw %r1, [%r1+0]\nadd %r1, %r2\n"
              "ldxb %r0, [%r1+0]\nexit", ProgType.RAW_TRACEPOINT_WRITABLE)
    assert exc.value.strerror == ("R1 invalid variable buffer offset: off=0, "
                                  "var_off=(0x0; 0x8)")
