"""``bpf_send_signal`` and ``bpf_send_signal_thread`` (kernel/trace/bpf_trace.c,
Linux 6.18): a signal to the current task's process (PIDTYPE_TGID) or to the
current thread alone (PIDTYPE_PID).

pyebpf's current task is the runtime's (``rt.pid``/``rt.tgid``); a signal sent is
recorded on it as a :class:`SentSignal` (:func:`sent_signals` lists them, in
order), where a test reads what its program did. As bpf_send_signal_common:
a kernel thread (pid 0, the idle task here) or init (tgid 1) gets none
(-EPERM); a signal number past _NSIG (64) is -EINVAL; 0 sends nothing and
succeeds (the kernel's permission check alone). The helpers sit in
``bpf_base_func_proto``'s CAP_PERFMON part, so every program type loaded with
CAP_PERFMON may call them (checked on 6.18 by loading, and by sending
SIGUSR1 to the test process from a raw_tp test run).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import attrs

from . import register_helper
from ._util import M32, TRACING_TYPES, neg, runtime_of
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..runtime import Runtime

__all__ = ["NSIG", "SentSignal", "sent_signals"]

#: _NSIG: valid_signal(sig) is sig <= 64.
NSIG = 64


@attrs.frozen
class SentSignal:
    """One signal a program sent: the number, the receiving process (tgid) and,
    for bpf_send_signal_thread, the thread (pid; None: the whole process)."""

    sig: int
    tgid: int
    pid: int | None


def sent_signals(rt: Runtime) -> list[SentSignal]:
    """The signals programs sent to the runtime's current task, in order."""
    got: list[SentSignal] = rt.hooks.setdefault("sent_signals", [])
    return got


def _send(vm: Vm, sig: int, thread: bool, helper: str) -> int:
    rt = runtime_of(vm, helper)
    sig &= M32
    if rt.pid == 0 or rt.tgid == 1:  # PF_KTHREAD, or is_global_init
        return neg(errno.EPERM)
    if sig > NSIG:  # valid_signal (check_kill_permission, or the irq_work path)
        return neg(errno.EINVAL)
    if sig:
        sent_signals(rt).append(SentSignal(sig, rt.tgid, rt.pid if thread else None))
    return 0


_PROTO = Proto(RetType.RET_INTEGER, (ArgType.ARG_ANYTHING,))


@register_helper(109, "send_signal", _PROTO, tier="perfmon", prog_types=TRACING_TYPES)
def send_signal(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _send(vm, r1, False, "send_signal")


@register_helper(117, "send_signal_thread", _PROTO, tier="perfmon", prog_types=TRACING_TYPES)
def send_signal_thread(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _send(vm, r1, True, "send_signal_thread")
