"""bpf_task_pt_regs (pyebpf.helpers.task_regs): the current task's user registers."""

from __future__ import annotations

import errno

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.helpers.task_regs import task_regs
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import member_span
from pyebpf.kfuncs.task import task_object


def _load(rt: Runtime, text: str, ptype: int = ProgType.RAW_TRACEPOINT) -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=encode(asm(text)),
                                               license="GPL"), runtime=rt))


def test_program_reads_the_current_tasks_ip() -> None:
    rt = Runtime()
    ip_off = member_span(task_regs(rt, 0).type_id, "ip")[0]
    task_regs(rt, task_object(rt, rt.pid, rt.tgid, rt.comm)).ip = 0x401000
    fd = _load(rt, f"call 158\nmov %r1, %r0\ncall 175\nldxdw %r0, [%r0+{ip_off}]\nexit")
    assert bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd), runtime=rt).retval == 0x401000


def test_the_same_task_has_the_same_regs() -> None:
    rt = Runtime()
    task = task_object(rt, rt.pid, rt.tgid, rt.comm)
    assert task_regs(rt, task) is task_regs(rt, task)
    assert task_regs(rt, task) is not task_regs(rt, task_object(rt, 1, 1, "init"))


@pytest.mark.parametrize(("text", "message"), [
    ("mov %r1, 0\ncall 175\nmov %r0, 0\nexit", "R1 type=scalar expected=ptr_"),
    ("call 158\nmov %r1, %r0\ncall 175\nmov %r1, 5\nstxdw [%r0+128], %r1\nmov %r0, 0\nexit",
     "only read is supported"),
])
def test_verifier_rules(text: str, message: str) -> None:
    with pytest.raises(BpfError) as e:
        _load(Runtime(), text)
    assert e.value.errno == errno.EACCES
    assert message in str(e.value)
