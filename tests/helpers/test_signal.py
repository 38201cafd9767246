"""bpf_send_signal / bpf_send_signal_thread (pyebpf.helpers.signal): recorded on the
runtime's current task."""

from __future__ import annotations

import errno

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.helpers.signal import SentSignal, sent_signals
from pyebpf.isa import encode
from pyebpf.isa.asm import asm

from ._build import PyBackend

SEND, SEND_THREAD = 109, 117


def _run(rt: Runtime, func_id: int, sig: int) -> int:
    """Load a raw_tp program calling ``func_id(sig)`` and test-run it: its r0 as s32."""
    insns = encode(asm(f"mov %r1, {sig}\ncall {func_id}\nexit"))
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.RAW_TRACEPOINT, insns=insns,
                                         license="GPL"), runtime=rt)
    retval = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd), runtime=rt).retval
    return retval - (1 << 32) if retval >> 31 else retval


def test_send_signal_is_recorded_for_the_process() -> None:
    rt = Runtime()
    assert _run(rt, SEND, 10) == 0
    assert sent_signals(rt) == [SentSignal(10, rt.tgid, None)]


def test_send_signal_thread_names_the_thread() -> None:
    rt = Runtime()
    rt.pid, rt.tgid = 101, 100
    assert _run(rt, SEND_THREAD, 12) == 0
    assert sent_signals(rt) == [SentSignal(12, 100, 101)]


@pytest.mark.parametrize("sig", [65, -1, 1000])
def test_a_signal_past_nsig_is_einval(sig: int) -> None:
    rt = Runtime()
    assert _run(rt, SEND, sig) == -errno.EINVAL
    assert sent_signals(rt) == []


def test_signal_zero_sends_nothing() -> None:
    rt = Runtime()
    assert (_run(rt, SEND, 0), sent_signals(rt)) == (0, [])


@pytest.mark.parametrize(("pid", "tgid"), [(1, 1), (0, 0)], ids=["init", "kernel_thread"])
def test_init_and_kernel_threads_get_no_signal(pid: int, tgid: int) -> None:
    rt = Runtime()
    rt.pid, rt.tgid = pid, tgid
    assert _run(rt, SEND, 10) == -errno.EPERM


def test_send_signal_needs_cap_perfmon_outside_tracing() -> None:
    prog = asm("mov %r1, 0\ncall 109\nmov %r0, 0\nexit")
    with pytest.raises(BpfError) as e:
        PyBackend(privileged=False).load(prog, ProgType.SOCKET_FILTER)
    assert e.value.errno == errno.EINVAL
    assert "cannot use helper bpf_send_signal#109" in str(e.value)
    assert PyBackend().load(prog, ProgType.SOCKET_FILTER) >= 0
