"""bpf_get_func_ip and bpf_get_attach_cookie beyond trampolines, on pyebpf and on
the kernel: kprobes get both; tracepoint, perf_event and raw_tp programs get the
cookie; bpf_get_func_ip is refused (ENOTSUPP, check_get_func_ip) wherever there is
no kprobe or trampoline to name a function, and is GPL-only."""

from __future__ import annotations

import pytest

from helpers._build import KernelBackend, PyBackend, call, exit_, mov
from pyebpf import BpfError, ProgType
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.uapi import AttachType as A

from .harness import STEPS
from .test_fentry_differential import need_trampolines, sides  # noqa: F401 (fixture)

pytestmark = pytest.mark.kernel

P = ProgType


def _load(backend: PyBackend | KernelBackend, func_id: int, ptype: int,
          lic: str) -> str | tuple[int, str]:
    try:
        backend.load([call(func_id), mov(0, 0), exit_()], ptype, license=lic)
        return "ok"
    except BpfError as e:
        return e.errno, str(e.strerror)


@pytest.mark.parametrize("lic", ["GPL", "MIT"])
@pytest.mark.parametrize("func_id", [173, 174], ids=["get_func_ip", "get_attach_cookie"])
@pytest.mark.parametrize("ptype", [P.KPROBE, P.TRACEPOINT, P.PERF_EVENT, P.RAW_TRACEPOINT,
                                   P.XDP, P.SCHED_CLS], ids=lambda p: p.name)
def test_offered_alike(func_id: int, ptype: int, lic: str) -> None:
    k, py = KernelBackend(), PyBackend()
    try:
        theirs, ours = _load(k, func_id, ptype, lic), _load(py, func_id, ptype, lic)
    finally:
        k.close()
        py.close()
    STEPS[0] += 1
    if "ok" in (theirs, ours):
        assert ours == theirs
        return
    assert ours[0] == theirs[0]
    assert ours[1] in theirs[1].splitlines()


@pytest.mark.parametrize(("prog_type", "eat", "target"), [
    (P.TRACING, A.TRACE_FENTRY, "bpf_fentry_test1"),
    (P.TRACING, A.TRACE_RAW_TP, "btf_trace_task_newtask"),  # tp_btf: no trampoline
    (P.LSM, A.LSM_MAC, "bpf_lsm_file_open"),
])
def test_func_ip_on_btf_programs(sides, prog_type: int, eat: int,  # noqa: F811
                                 target: str) -> None:
    need_trampolines()
    k, p = sides
    insns = encode(asm("call 173\nmov %r0, 0\nexit"))
    got = [s.load(insns, eat, target, prog_type=prog_type) for s in (k, p)]
    STEPS[0] += 1
    assert (got[1].errno, got[1].reason) == (got[0].errno, got[0].reason)
