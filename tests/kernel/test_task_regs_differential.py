"""bpf_task_pt_regs as the 6.18 verifier sees it, on pyebpf and on the kernel: a
task from bpf_get_current_task_btf gives a read-only struct pt_regs; a scalar
is refused; so is a store through the result. Raw tracepoint, kprobe and (via
bpf_base_func_proto's CAP_PERFMON part) XDP programs alike."""

from __future__ import annotations

import pytest

from helpers._build import KernelBackend, PyBackend
from pyebpf import BpfError, ProgType
from pyebpf.isa.asm import asm

from .harness import STEPS

pytestmark = pytest.mark.kernel

CASES = {
    "read_ip": "call 158\nmov %r1, %r0\ncall 175\nldxdw %r0, [%r0+128]\nexit",
    "returned": "call 158\nmov %r1, %r0\ncall 175\nexit",
    "scalar_task": "mov %r1, 0\ncall 175\nmov %r0, 0\nexit",
    "store": "call 158\nmov %r1, %r0\ncall 175\nmov %r1, 5\nstxdw [%r0+128], %r1\n"
             "mov %r0, 0\nexit",
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ptype", [ProgType.RAW_TRACEPOINT, ProgType.KPROBE, ProgType.XDP],
                         ids=lambda p: p.name)
def test_task_pt_regs_verdicts(case: str, ptype: int) -> None:
    got = []
    for backend in (KernelBackend(), PyBackend()):
        try:
            backend.load(asm(CASES[case]), ptype)
            got.append(("ok", ""))
        except BpfError as e:
            lines = [ln for ln in str(e.strerror).splitlines()
                     if ln and not ln.startswith(("processed", "verification time"))]
            got.append((e.errno, lines[-1] if lines else ""))
        finally:
            backend.close()
    STEPS[0] += 1
    assert got[1][0] == got[0][0]
    assert got[1][1] in got[0][1] or got[0][1].endswith(got[1][1])
