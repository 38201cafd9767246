"""bpf_send_signal / bpf_send_signal_thread on pyebpf and on the kernel: a raw_tp
program test-run on the kernel signals this very process (SIGUSR1, caught by a
handler installed for the test); pyebpf records the signal on its current task.
Both return the same value and both deliver (or not) the same signal; and both
offer the helpers to the same program types (bpf_base_func_proto's CAP_PERFMON
part)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from helpers._build import KernelBackend, PyBackend, call, exit_, mov
from pyebpf import BpfError, Cmd, ProgType
from pyebpf.attr import TestRunAttr
from pyebpf.helpers.signal import sent_signals

from .harness import STEPS
from .test_raw_tp_access_differential import _kernel_test_run_ctx

pytestmark = pytest.mark.kernel


@pytest.fixture
def caught() -> Iterator[list[int]]:
    got: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    try:
        yield got
    finally:
        signal.signal(signal.SIGUSR1, old)


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


# 64 (SIGRTMAX) is valid but would kill the test process: not sent.
@pytest.mark.parametrize("sig", [0, signal.SIGUSR1, 65, -1, 1000])
@pytest.mark.parametrize("func_id", [109, 117], ids=["send_signal", "send_signal_thread"])
def test_send_signal_from_a_raw_tp_test_run(caught: list[int], func_id: int, sig: int) -> None:
    insns = [mov(1, sig), call(func_id), exit_()]
    k = KernelBackend()
    try:
        theirs = _s32(_kernel_test_run_ctx(k.load(insns, ProgType.RAW_TRACEPOINT), b""))
    finally:
        k.close()
    delivered = list(caught)
    py = PyBackend()
    try:
        fd = py.load(insns, ProgType.RAW_TRACEPOINT)
        ours = _s32(py.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd)).retval)
        recorded = [s.sig for s in sent_signals(py.rt)]
    finally:
        py.close()
    STEPS[0] += 1
    assert (ours, recorded) == (theirs, delivered)


@pytest.mark.parametrize("func_id", [109, 117])
@pytest.mark.parametrize("ptype", [ProgType.XDP, ProgType.SCHED_CLS, ProgType.SOCKET_FILTER,
                                   ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.PERF_EVENT,
                                   ProgType.SK_MSG, ProgType.LWT_IN, ProgType.FLOW_DISSECTOR],
                         ids=lambda p: p.name)
def test_send_signal_offered_alike(func_id: int, ptype: int) -> None:
    insns = [mov(1, 0), call(func_id), mov(0, 0), exit_()]
    answers = []
    for backend in (KernelBackend(), PyBackend()):
        try:
            backend.load(insns, ptype)
            answers.append("ok")
        except BpfError as e:
            answers.append(e.errno)
        finally:
            backend.close()
    STEPS[0] += 1
    assert answers[0] == answers[1]
