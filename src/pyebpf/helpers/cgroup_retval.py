"""``bpf_get_retval`` / ``bpf_set_retval`` and the cgroup run ctx they act on
(kernel/bpf/cgroup.c, Linux 6.18).

A cgroup hook runs its effective programs with ``bpf_prog_run_array_cg``: one
``struct bpf_cg_run_ctx`` for the whole array, whose ``retval`` starts at what
the hook passes (0, or the kernel getsockopt's own result) and is what the hook
returns. After each program, a return value of 0 (bit 0 clear) turns a
``retval`` that is not already an error (``IS_ERR_VALUE``: -4095..-1) into
-EPERM; a program that called ``bpf_set_retval(-EACCES)`` and returned 0
makes the hook fail with EACCES, one that set -EACCES and returned 1 too (the
retval is the answer, the return value only a veto). ``bpf_set_retval(0)`` in a
later program clears an earlier program's -EPERM.

:func:`prog_run_array_cg` is that loop; :func:`cg_run_ctx` the run ctx it
installs (a stack on the runtime, as ``current->bpf_ctx`` nests).

Where the helpers are offered (``cgroup_common_func_proto``): the cgroup
program types (sock, sock_addr, sock_ops, device, sysctl, sockopt, skb) and
BPF_LSM_CGROUP programs (whose cgroup links pyebpf doesn't run yet), except
programs whose expected_attach_type is one of :data:`NO_RETVAL_ATTACH_TYPES`
(their hooks ignore a verdict, or, for cgroup_skb, return it otherwise).
Checked against the 6.18 kernel by loading: tests/kernel/test_cgroup_helpers_differential.py.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs

from ..errors import BpfFault
from ..uapi import AttachType, ProgType
from . import register_helper
from ._util import M32, M64, runtime_of
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..prog import BpfProg
    from ..runtime import Runtime

__all__ = ["NO_RETVAL_ATTACH_TYPES", "CgRunCtx", "CgRunResult", "cg_run_ctx",
           "is_err_value", "prog_run_array_cg"]

A = AttachType
#: The expected_attach_types cgroup_common_func_proto refuses get/set_retval to
#: (and BPF_LSM_MAC: bpf_lsm_func_proto asks cgroup_common_func_proto only for
#: BPF_LSM_CGROUP programs).
NO_RETVAL_ATTACH_TYPES = frozenset(int(a) for a in (
    A.LSM_MAC, A.CGROUP_INET_INGRESS, A.CGROUP_INET_EGRESS, A.CGROUP_SOCK_OPS,
    A.CGROUP_UDP4_RECVMSG, A.CGROUP_UDP6_RECVMSG, A.CGROUP_UNIX_RECVMSG,
    A.CGROUP_INET4_GETPEERNAME, A.CGROUP_INET6_GETPEERNAME, A.CGROUP_UNIX_GETPEERNAME,
    A.CGROUP_INET4_GETSOCKNAME, A.CGROUP_INET6_GETSOCKNAME, A.CGROUP_UNIX_GETSOCKNAME))
#: The program types whose get_func_proto starts with cgroup_common_func_proto
#: (LSM: for BPF_LSM_CGROUP programs).
CGROUP_COMMON_TYPES = frozenset(int(p) for p in (
    ProgType.CGROUP_SKB, ProgType.CGROUP_SOCK, ProgType.CGROUP_SOCK_ADDR, ProgType.SOCK_OPS,
    ProgType.CGROUP_DEVICE, ProgType.CGROUP_SYSCTL, ProgType.CGROUP_SOCKOPT, ProgType.LSM))
#: MAX_ERRNO: IS_ERR_VALUE(x) is x >= (unsigned long)-MAX_ERRNO.
MAX_ERRNO = 4095


def is_err_value(retval: int) -> bool:
    """IS_ERR_VALUE((long)retval) for the int a run ctx holds: -4095..-1."""
    return -MAX_ERRNO <= retval < 0


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


@attrs.define
class CgRunCtx:
    """``struct bpf_cg_run_ctx``: the retval the hook will return."""

    retval: int = 0


@attrs.frozen
class CgRunResult:
    """What bpf_prog_run_array_cg gave: the retval (0 or a negative errno, or
    whatever bpf_set_retval left), the OR of the programs' return values shifted
    right by one where the hook asks for them (``ret_flags``: egress's congestion
    bit, bind's flags), and each program's own return value in run order."""

    retval: int
    flags: int
    verdicts: tuple[int, ...]


@contextmanager
def cg_run_ctx(rt: Runtime, retval: int = 0) -> Iterator[CgRunCtx]:
    """Install a run ctx (bpf_set_run_ctx) for the programs run inside."""
    stack: list[CgRunCtx] = rt.hooks.setdefault("bpf_cg_run_ctx", [])
    ctx = CgRunCtx(retval)
    stack.append(ctx)
    try:
        yield ctx
    finally:
        stack.pop()


def current_cg_run_ctx(rt: Runtime) -> CgRunCtx | None:
    """The innermost run ctx, None outside any cgroup hook run."""
    stack: list[CgRunCtx] = rt.hooks.get("bpf_cg_run_ctx", [])
    return stack[-1] if stack else None


def prog_run_array_cg(rt: Runtime, progs: Iterable[BpfProg],
                      run_prog: Callable[[BpfProg], int], retval: int = 0,
                      ret_flags: bool = False) -> CgRunResult:
    """bpf_prog_run_array_cg: run every program (``run_prog`` maps the ctx and
    returns the program's u32 result), folding a 0 into -EPERM unless the retval
    is already an error."""
    flags = 0
    verdicts = []
    with cg_run_ctx(rt, retval) as run_ctx:
        for prog in progs:
            func_ret = run_prog(prog) & M32
            verdicts.append(func_ret)
            if ret_flags:
                flags |= func_ret >> 1
                func_ret &= 1
            if not func_ret and not is_err_value(run_ctx.retval):
                run_ctx.retval = -errno.EPERM
        return CgRunResult(run_ctx.retval, flags, tuple(verdicts))


def _run_ctx(vm: Vm, helper: str) -> CgRunCtx:
    got = current_cg_run_ctx(runtime_of(vm, helper))
    if got is None:
        raise BpfFault(f"bpf_{helper} called outside a cgroup hook run (no bpf_cg_run_ctx)")
    return got


@register_helper(186, "get_retval", Proto(RetType.RET_INTEGER, ()),
                 prog_types=CGROUP_COMMON_TYPES, denied_attach_types=NO_RETVAL_ATTACH_TYPES)
def get_retval(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The hook's retval so far (an int, sign-extended into r0)."""
    return _run_ctx(vm, "get_retval").retval & M64


@register_helper(187, "set_retval", Proto(RetType.RET_INTEGER, (ArgType.ARG_ANYTHING,)),
                 prog_types=CGROUP_COMMON_TYPES, denied_attach_types=NO_RETVAL_ATTACH_TYPES)
def set_retval(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Set the hook's retval (the low 32 bits of r1, as an int); always 0."""
    _run_ctx(vm, "set_retval").retval = _s32(r1)
    return 0
