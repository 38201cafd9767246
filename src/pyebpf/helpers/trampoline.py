"""Helpers of programs run by a BPF trampoline (fentry/fexit/fmod_ret, LSM).

The trampoline keeps the traced function's argument count just below the
programs' ctx (``((u64 *)ctx)[-1]``, and its address at ``[-2]``); the
kernel's verifier inlines these helpers as loads from there (do_misc_fixups),
pyebpf reads the same slots (pyebpf.progs.tracing_btf lays the frame out):

- ``bpf_get_func_arg(ctx, n, &value)``: argument ``n``, -EINVAL past the last;
- ``bpf_get_func_ret(ctx, &value)``: the return value slot, for fexit and
  fmod_ret programs (other TRACING programs get -EOPNOTSUPP, as the inlined
  code says; LSM programs call the real helper, which reads it);
- ``bpf_get_func_arg_cnt(ctx)``: the argument count;
- ``bpf_get_func_ip(ctx)``: the traced function's address (ctx[-2]);
- ``bpf_get_attach_cookie(ctx)``: the cookie of the link the program runs for
  (LINK_CREATE's ``tracing_cookie``, RAW_TRACEPOINT_OPEN's ``cookie``); tp_btf
  programs have it too.

The kernel offers them only to programs with a trampoline
(bpf_prog_has_trampoline); pyebpf offers them to TRACING and LSM programs
and faults when one runs on another kind of ctx.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfFault
from ..uapi import AttachType, ProgType
from . import register_helper
from ._util import TRACING_TYPES, neg
from .proto import ArgType as A
from .proto import Proto, RetType, TypeFlag, sized

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

_OUT_U64 = A.ARG_PTR_TO_FIXED_SIZE_MEM | TypeFlag.MEM_UNINIT | TypeFlag.MEM_WRITE | \
    TypeFlag.MEM_ALIGNED
_TRAMPOLINE_TYPES = (int(ProgType.TRACING), int(ProgType.LSM))


def _nr_args(vm: Vm, ctx: int) -> int:
    """ctx[-1], after checking ``ctx`` is a trampoline's (an unverified program's
    other ctx faults rather than reading a neighbour)."""
    from ..progs.tracing_btf import TRAMP_CTX_SLOT, TRAMP_FRAME

    region = vm.memory.region_at(ctx)
    if region is None or region.name != TRAMP_FRAME or ctx != region.base + 8 * TRAMP_CTX_SLOT:
        raise BpfFault(f"{ctx:#x} is not a BPF trampoline's ctx", addr=ctx)
    return vm.memory.load(ctx - 8, 8)


@register_helper(183, "get_func_arg", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, _OUT_U64), gpl_only=True, arg_size=sized(8, 3)),
    prog_types=_TRAMPOLINE_TYPES)
def get_func_arg(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    if r2 >= _nr_args(vm, r1):
        return neg(errno.EINVAL)
    vm.memory.store(r3, 8, vm.memory.load(r1 + 8 * r2, 8))
    return 0


@register_helper(184, "get_func_ret", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, _OUT_U64), gpl_only=True, arg_size=sized(8, 2)),
    prog_types=_TRAMPOLINE_TYPES)
def get_func_ret(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    nr = _nr_args(vm, r1)
    prog = vm.owner
    if prog is not None and prog.prog_type == ProgType.TRACING and \
            prog.expected_attach_type not in (AttachType.TRACE_FEXIT, AttachType.MODIFY_RETURN):
        return neg(errno.EOPNOTSUPP)
    vm.memory.store(r2, 8, vm.memory.load(r1 + 8 * nr, 8))
    return 0


@register_helper(185, "get_func_arg_cnt", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,),
                                                gpl_only=True), prog_types=_TRAMPOLINE_TYPES)
def get_func_arg_cnt(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _nr_args(vm, r1)


@register_helper(173, "get_func_ip", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,),
                                           gpl_only=True), prog_types=TRACING_TYPES)
def get_func_ip(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Every type of bpf_tracing_func_proto gets a prototype; the verifier
    (check_get_func_ip) keeps it to kprobes and trampolines. A kprobe's is
    bpf_get_func_ip_kprobe: the probed function's address (pyebpf's kprobes
    fire at function entry), 0 for a function pyebpf's kernel doesn't have."""
    prog = vm.owner
    if prog is not None and prog.prog_type == ProgType.KPROBE:
        from .kprobe import kprobe_running_ip

        return kprobe_running_ip(vm.runtime) if vm.runtime is not None else 0
    _nr_args(vm, r1)
    return vm.memory.load(r1 - 16, 8)


#: Where bpf_get_attach_cookie exists: the trampoline types, and the perf-event
#: hooks (kprobe, tracepoint, perf_event) and raw tracepoints with their links'
#: cookies (checked on 6.18 by loading).
_COOKIE_TYPES = (*_TRAMPOLINE_TYPES, int(ProgType.KPROBE), int(ProgType.TRACEPOINT),
                 int(ProgType.PERF_EVENT), int(ProgType.RAW_TRACEPOINT),
                 int(ProgType.RAW_TRACEPOINT_WRITABLE))


@register_helper(174, "get_attach_cookie", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,)),
                 prog_types=_COOKIE_TYPES)
def get_attach_cookie(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..progs.tracing_btf import attach_cookie

    return attach_cookie(vm.runtime) if vm.runtime is not None else 0
