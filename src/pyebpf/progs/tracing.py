"""Tracing program types: KPROBE, TRACEPOINT, PERF_EVENT, RAW_TRACEPOINT(_WRITABLE).

Their contexts (kernel/trace/bpf_trace.c):

- KPROBE: the x86-64 ``struct pt_regs`` (21 unsigned longs, 168 bytes), read
  only, any aligned access inside it (kprobe_prog_is_valid_access).
- TRACEPOINT: the raw trace record, whose layout is the tracepoint's; the
  program may read any aligned offset from 8 (past the common fields) up to
  PERF_MAX_TRACE_SIZE (tp_prog_is_valid_access). No fixed struct.
- PERF_EVENT: ``struct bpf_perf_event_data`` = ``pt_regs regs; u64
  sample_period; u64 addr`` (184 bytes); registers in 8-byte loads only,
  ``sample_period``/``addr`` with narrow loads too (pe_prog_is_valid_access).
- RAW_TRACEPOINT: ``u64 args[MAX_BPF_FUNC_ARGS]``, read only, aligned; the
  writable variant's ``args[0]`` is a PTR_TO_TP_BUFFER.

Only RAW_TRACEPOINT has a kernel test run (bpf_prog_test_run_raw_tp): no
data, no ctx_out, no repeat/duration; ``ctx_in`` is the args array (at most 12
u64s, at least the program's largest ctx offset); BPF_F_TEST_RUN_ON_CPU picks
the CPU. The others' test runs are ENOTSUPP, as in the kernel.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..attr import LOG_BUF_AUTO
from ..errors import BpfError
from ..uapi import ProgType, TestRunFlags
from . import ProgTypeOps, register_prog_type
from .access import SCALAR, layout, narrow_access_ok
from .ctx import CtxLayout

if TYPE_CHECKING:
    from ..attr import TestRunAttr
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["BPF_PERF_EVENT_DATA", "MAX_BPF_FUNC_ARGS", "PERF_MAX_TRACE_SIZE", "PT_REGS",
           "RAW_TP_ARGS", "TRACEPOINT_CTX"]

#: include/linux/trace_events.h.
PERF_MAX_TRACE_SIZE = 8192
#: include/linux/bpf.h: the most arguments a traced function passes.
MAX_BPF_FUNC_ARGS = 12
PTR_TO_TP_BUFFER = 14

#: arch/x86/include/uapi/asm/ptrace.h, x86-64.
PT_REGS_NAMES = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax",
                 "cx", "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss")
PT_REGS = layout("pt_regs", [(n, 8) for n in PT_REGS_NAMES])
PT_REGS_SIZE = PT_REGS.size  # 168

BPF_PERF_EVENT_DATA = layout("bpf_perf_event_data",
                             [(n, 8) for n in PT_REGS_NAMES]
                             + [("sample_period", 8), ("addr", 8)])

RAW_TP_ARGS = layout("bpf_raw_tracepoint_args",
                     [(f"args{i}", 8) for i in range(MAX_BPF_FUNC_ARGS)])

#: The tracepoint record has no fixed fields: the access check is all there is.
TRACEPOINT_CTX = CtxLayout("trace_event_raw", PERF_MAX_TRACE_SIZE, [])


def kprobe_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """kprobe_prog_is_valid_access."""
    if off < 0 or off >= PT_REGS_SIZE or write or off % size or off + size > PT_REGS_SIZE:
        return None
    return SCALAR


def tp_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """tp_prog_is_valid_access: past the 8 bytes of common fields, read only, aligned."""
    if off < 8 or off >= PERF_MAX_TRACE_SIZE or write or off % size:
        return None
    return SCALAR


def pe_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """pe_prog_is_valid_access."""
    if off < 0 or off >= BPF_PERF_EVENT_DATA.size or write or off % size:
        return None
    sp = BPF_PERF_EVENT_DATA["sample_period"]
    addr = BPF_PERF_EVENT_DATA["addr"]
    if sp.offset <= off < sp.end or addr.offset <= off < addr.end:
        return SCALAR if narrow_access_ok(off, size, 8) else None
    return SCALAR if size == 8 else None


def raw_tp_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """raw_tp_prog_is_valid_access (bpf_tracing_ctx_access)."""
    if off < 0 or off >= 8 * MAX_BPF_FUNC_ARGS or write or off % size:
        return None
    return SCALAR


def raw_tp_writable_is_valid_access(off: int, size: int, write: bool,
                                    prog: Any) -> int | None:
    """raw_tp_writable_prog_is_valid_access: args[0] is the writable tracepoint buffer."""
    if off == 0:
        if size != 8 or write:
            return None
        return PTR_TO_TP_BUFFER if raw_tp_is_valid_access(off, size, write, prog) else None
    return raw_tp_is_valid_access(off, size, write, prog)


def _given(buf: Any) -> bool:
    return buf is not None and buf is not LOG_BUF_AUTO


def raw_tp_test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    """bpf_prog_test_run_raw_tp."""
    from ..prog import TestRunResult
    from ..syscall import copy_from_user

    if (_given(attr.data_in) or attr.data_size_in or _given(attr.data_out)
            or _given(attr.ctx_out) or attr.duration or attr.repeat or attr.batch_size):
        raise BpfError(errno.EINVAL, "raw tracepoint test runs take only ctx_in, flags and cpu")
    ctx_size = attr.ctx_size_in if attr.ctx_size_in is not None else (
        len(attr.ctx_in) if isinstance(attr.ctx_in, bytes | bytearray) else 0)
    max_ctx_offset = getattr(prog, "max_ctx_offset", 0)
    if ctx_size < max_ctx_offset or ctx_size > 8 * MAX_BPF_FUNC_ARGS:
        raise BpfError(errno.EINVAL, f"ctx_size_in {ctx_size} must be in "
                       f"{max_ctx_offset}..{8 * MAX_BPF_FUNC_ARGS}")
    on_cpu = bool(attr.flags & TestRunFlags.RUN_ON_CPU)
    if not on_cpu and attr.cpu:
        raise BpfError(errno.EINVAL, "cpu needs BPF_F_TEST_RUN_ON_CPU")
    ctx = bytearray(copy_from_user(rt, attr.ctx_in, ctx_size)) if ctx_size else None
    if on_cpu and attr.cpu != rt.cpu and attr.cpu >= rt.nr_cpus:
        raise BpfError(errno.ENXIO, f"no CPU {attr.cpu}")
    region = rt.memory.map(ctx, kind="ctx", name="raw_tp_args") if ctx is not None else None
    saved_cpu = rt.cpu
    if on_cpu:
        rt.cpu = attr.cpu
    try:
        r0 = prog.run(region.base if region is not None else 0)
    finally:
        rt.cpu = saved_cpu
        if region is not None:
            rt.unmap_later(region)
    return TestRunResult(retval=r0 & 0xFFFF_FFFF, duration=0)


register_prog_type(ProgTypeOps(ProgType.KPROBE, ctx=PT_REGS,
                               is_valid_access=kprobe_is_valid_access))
register_prog_type(ProgTypeOps(ProgType.TRACEPOINT, ctx=TRACEPOINT_CTX,
                               is_valid_access=tp_is_valid_access))
register_prog_type(ProgTypeOps(ProgType.PERF_EVENT, ctx=BPF_PERF_EVENT_DATA,
                               is_valid_access=pe_is_valid_access))
register_prog_type(ProgTypeOps(ProgType.RAW_TRACEPOINT, ctx=RAW_TP_ARGS,
                               test_run=raw_tp_test_run,
                               is_valid_access=raw_tp_is_valid_access))
register_prog_type(ProgTypeOps(ProgType.RAW_TRACEPOINT_WRITABLE, ctx=RAW_TP_ARGS,
                               is_valid_access=raw_tp_writable_is_valid_access))
