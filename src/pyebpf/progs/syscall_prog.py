"""SYSCALL programs (BPF_PROG_TYPE_SYSCALL): run by BPF_PROG_TEST_RUN only.

The ctx is whatever buffer the caller passes (up to U16_MAX bytes), read and
written freely at aligned offsets (syscall_prog_is_valid_access); the program
loads with expected_attach_type 0. The test run (bpf_prog_test_run_syscall)
takes only ``ctx_in``: no packet, no ctx_out, no repeat, duration or flags;
``ctx_size_in`` must cover the program's largest ctx offset. After the run the
ctx is copied back into the caller's ``ctx_in`` buffer (a bytearray or a
UserPtr is updated in place); pyebpf also returns it as ``ctx_out``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..attr import LOG_BUF_AUTO, UserPtr
from ..errors import BpfError
from ..uapi import ProgType
from . import ProgTypeOps, register_prog_type
from .access import SCALAR
from .ctx import CtxLayout

if TYPE_CHECKING:
    from ..attr import TestRunAttr
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["SYSCALL_CTX", "U16_MAX"]

U16_MAX = 0xFFFF
SYSCALL_CTX = CtxLayout("syscall_ctx", U16_MAX, [])


def syscall_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """syscall_prog_is_valid_access."""
    if off < 0 or off >= U16_MAX or off % size:
        return None
    return SCALAR


def _check_attach(attr: Any) -> None:
    if attr.expected_attach_type:
        raise BpfError(errno.EINVAL, "SYSCALL programs take no expected_attach_type")


def _given(buf: Any) -> bool:
    return buf is not None and buf is not LOG_BUF_AUTO


def syscall_test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    """bpf_prog_test_run_syscall."""
    from ..prog import TestRunResult
    from ..syscall import _copy_out, copy_from_user

    if (_given(attr.data_in) or _given(attr.data_out) or _given(attr.ctx_out)
            or attr.duration or attr.repeat or attr.flags or attr.batch_size):
        raise BpfError(errno.EINVAL, "SYSCALL test runs take only ctx_in")
    size = attr.ctx_size_in if attr.ctx_size_in is not None else (
        len(attr.ctx_in) if isinstance(attr.ctx_in, bytes | bytearray) else 0)
    if size < getattr(prog, "max_ctx_offset", 0) or size > U16_MAX:
        raise BpfError(errno.EINVAL, f"ctx_size_in {size} out of range")
    ctx = bytearray(copy_from_user(rt, attr.ctx_in, size)) if size else None
    region = rt.memory.map(ctx, kind="ctx", name="syscall_ctx") if ctx is not None else None
    try:
        r0 = prog.run(region.base if region is not None else 0)
    finally:
        if region is not None:
            rt.unmap_later(region)
    out = None
    if ctx is not None:
        out = bytes(ctx)
        if isinstance(attr.ctx_in, UserPtr):
            _copy_out(rt, attr.ctx_in, out)
        elif isinstance(attr.ctx_in, bytearray):
            attr.ctx_in[:size] = out
    return TestRunResult(retval=r0 & 0xFFFF_FFFF, duration=0, ctx_out=out,
                         ctx_size_out=size if out is not None else 0)


register_prog_type(ProgTypeOps(ProgType.SYSCALL, ctx=SYSCALL_CTX, test_run=syscall_test_run,
                               check_attach=_check_attach,
                               is_valid_access=syscall_is_valid_access))
