"""pyebpf.testing.rejection: assert_rejected and its explanations."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyebpf import ProgType
from pyebpf.testing.kernel import kernel_available
from pyebpf.testing.rejection import assert_rejected, failing_insn, log_excerpt

REJECTED = Path(__file__).resolve().parent.parent / "data" / "testing" / "rejected.o"
NULL_LOAD = "mov %r0, 0\nmov %r1, 0\nldxw %r0, [%r1+0]\nexit"


def test_rejection_of_instructions_reports_the_failing_insn() -> None:
    r = assert_rejected(NULL_LOAD, "R1 invalid mem access", prog_type=ProgType.XDP)
    assert r.errno == 13 and r.insn == 2 and "invalid mem access" in r.message


def test_rejection_of_an_object_program_names_its_source_line() -> None:
    r = assert_rejected(REJECTED, "outside of the packet", program="xdp_unchecked")
    assert r.insn == 1 and "rejected.c:12" in r.message


def test_accepted_program_fails_the_assertion() -> None:
    with pytest.raises(AssertionError, match=r"accepted the program \(2 insns\)"):
        assert_rejected("mov %r0, 2\nexit", prog_type=ProgType.XDP)


def test_mismatch_shows_the_log_and_disassembly_around_the_failing_insn() -> None:
    with pytest.raises(AssertionError) as info:
        assert_rejected(NULL_LOAD, "R9 !read_ok", prog_type=ProgType.XDP)
    text = str(info.value)
    assert "no match for 'R9 !read_ok'" in text
    assert ">> 2: (61) r0 = *(u32 *)(r1 +0)" in text
    assert ">> 2: r0 = *(u32 *)(r1 +0)" in text


def test_wrong_errno_fails_the_assertion() -> None:
    with pytest.raises(AssertionError, match="expected errno EINVAL"):
        assert_rejected(NULL_LOAD, prog_type=ProgType.XDP, errno=22)


def test_instructions_need_a_program_type() -> None:
    with pytest.raises(TypeError, match="prog_type"):
        assert_rejected(NULL_LOAD)


def test_log_excerpt_marks_the_last_instruction_line() -> None:
    log = "0: (b7) r0 = 0\n1: (95) exit\nR0 !read_ok\nprocessed 2 insns\n"
    assert failing_insn(log) == 1
    assert log_excerpt(log, context=1).splitlines() == [
        "   0: (b7) r0 = 0", ">> 1: (95) exit", "   R0 !read_ok", "   processed 2 insns"]


@pytest.mark.skipif(not kernel_available(), reason="the kernel's bpf() is not available here")
def test_kernel_mode_checks_the_kernel_rejects_alike() -> None:
    r = assert_rejected(NULL_LOAD, "R1 invalid mem access", prog_type=ProgType.XDP, kernel=True)
    assert r.kernel is not None and r.kernel.insn == 2 and r.kernel.errno == r.errno
