"""Perf event helpers: bpf_perf_event_output and its skb/xdp variants,
bpf_perf_event_read and bpf_perf_event_read_value (kernel/trace/bpf_trace.c,
net/core/filter.c), over :class:`~pyebpf.maps.perf_event_array.PerfEventArrayMap`.

``bpf_perf_event_output(ctx, map, flags, data, size)`` writes ``data`` as one
PERF_SAMPLE_RAW sample to the event in slot ``flags & BPF_F_INDEX_MASK``
(BPF_F_CURRENT_CPU: the slot of the CPU the program runs on). The kernel
gives the helper id three implementations chosen by program type; here the
ctx decides, which comes to the same:

- an skb ctx (socket filter, tc, cgroup skb, lwt, sk_skb:
  ``bpf_skb_event_output``): the upper 32 bits of ``flags``
  (BPF_F_CTXLEN_MASK) ask for that many packet bytes appended to the sample
  (-EFAULT when more than the packet has); other bits are -EINVAL;
- an xdp ctx (``bpf_xdp_event_output``): the same with the XDP frame;
- any other ctx (tracing, sock_ops... ``bpf_perf_event_output``,
  ``bpf_event_output_data``): only index bits (-EINVAL).

Then, as ``__bpf_perf_event_output``: -E2BIG past max_entries, -ENOENT for an
empty slot, -EINVAL for an event that is not PERF_COUNT_SW_BPF_OUTPUT,
-EOPNOTSUPP for an event on another CPU, -ENOSPC when its ring has no room.

``bpf_skb_output``/``bpf_xdp_output`` are the BTF-typed variants for tracing
programs (their arg 1 is a ``struct sk_buff``/``xdp_buff`` pointer).

``bpf_perf_event_read(map, flags)`` returns the counter of the slot's event
(or the negative errno: -EINVAL for unknown flag bits or an event counting on
another CPU); ``bpf_perf_event_read_value(map, flags, buf, size)`` writes
``struct bpf_perf_event_value {counter, enabled, running}`` (size must be
24, else -EINVAL) and zeroes ``buf`` on any error.

Every variant is gpl_only (a non-GPL program can't call them: asked of the
kernel for each program type).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from ..errors import BpfError, BpfFault
from ..memory import PAGE_SHIFT
from ..uapi import ProgType
from . import register_helper
from ._util import M32, check_writable, map_at, neg
from .proto import ArgType, Proto, RetType, TypeFlag, btf_ids

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..maps.perf_event_array import PerfEventArrayMap

A = ArgType
P = ProgType
_RDONLY_MEM = A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY
#: ``struct bpf_perf_event_value``: counter, enabled, running.
_VALUE = struct.Struct("<QQQ")

#: Program types whose get_func_proto offers BPF_FUNC_perf_event_output (Linux 6.18,
#: asked of the kernel: all but SK_REUSEPORT, FLOW_DISSECTOR and NETFILTER).
_OUTPUT_TYPES = frozenset({
    P.SOCKET_FILTER, P.KPROBE, P.SCHED_CLS, P.SCHED_ACT, P.TRACEPOINT, P.XDP, P.PERF_EVENT,
    P.CGROUP_SKB, P.CGROUP_SOCK, P.LWT_IN, P.LWT_OUT, P.LWT_XMIT, P.SOCK_OPS, P.SK_SKB,
    P.CGROUP_DEVICE, P.SK_MSG, P.RAW_TRACEPOINT, P.CGROUP_SOCK_ADDR, P.LWT_SEG6LOCAL,
    P.CGROUP_SYSCTL, P.RAW_TRACEPOINT_WRITABLE, P.CGROUP_SOCKOPT, P.SK_LOOKUP, P.TRACING,
    P.LSM, P.SYSCALL,
})


def _perf_map(vm: Vm, addr: int, helper: str) -> PerfEventArrayMap:
    from ..maps.perf_event_array import PerfEventArrayMap

    m = map_at(vm, addr, helper)
    if not isinstance(m, PerfEventArrayMap):
        raise BpfFault(f"bpf_{helper} with a {m.map_type.name} map (it needs a "
                       "PERF_EVENT_ARRAY)")
    return m


def _ctx_object(vm: Vm, addr: int) -> Any:
    """The object behind a ctx pointer (an SkBuff, an XdpBuff...), or None."""
    entry = vm.memory.devices.get((addr & ((1 << 64) - 1)) >> PAGE_SHIFT)
    return getattr(entry[2], "obj", None) if entry is not None else None


def _ctx_bytes(vm: Vm, ctx: int, flags: int) -> bytes:
    """The ctx bytes BPF_F_CTXLEN_MASK asks for (skb/xdp ctx), after the flag checks."""
    from ..maps.perf_event_array import BPF_F_CTXLEN_MASK, BPF_F_INDEX_MASK
    from ..progs.skb import SkBuff
    from ..progs.xdp import XdpBuff

    obj = _ctx_object(vm, ctx)
    if isinstance(obj, (SkBuff, XdpBuff)):
        if flags & ~(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK):
            raise BpfError(errno.EINVAL, f"invalid flags {flags:#x}")
        want = (flags & BPF_F_CTXLEN_MASK) >> 32
        if isinstance(obj, SkBuff):
            if want > obj.len:
                raise BpfError(errno.EFAULT, f"{want} bytes asked of a {obj.len}-byte packet")
            return bytes(obj.buf[obj.data_off:obj.data_off + want])
        if want > obj.data_end - obj.data:
            raise BpfError(errno.EFAULT, f"{want} bytes asked of a "
                           f"{obj.data_end - obj.data}-byte frame")
        return vm.memory.read(obj.data, want) if want else b""
    if flags & ~BPF_F_INDEX_MASK:
        raise BpfError(errno.EINVAL, f"invalid flags {flags:#x}")
    return b""


_OUTPUT = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING,
                                      _RDONLY_MEM, A.ARG_CONST_SIZE_OR_ZERO), gpl_only=True)


@register_helper(25, "perf_event_output", _OUTPUT, prog_types=_OUTPUT_TYPES)
def perf_event_output(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = _perf_map(vm, r2, "perf_event_output")
    meta = vm.memory.read(r4, r5) if r5 else b""
    try:
        extra = _ctx_bytes(vm, r1, r3)
        m.output(r3, meta + extra)
    except BpfError as e:
        return neg(e.errno)
    return 0


def _btf_output(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int, helper: str) -> int:
    m = _perf_map(vm, r2, helper)
    meta = vm.memory.read(r4, r5) if r5 else b""
    obj = _ctx_object(vm, r1)
    try:
        if obj is None:  # not an skb/xdp_buff we know: the helper's NULL check
            raise BpfError(errno.EFAULT, f"bpf_{helper}: no packet at {r1:#x}")
        extra = _ctx_bytes(vm, r1, r3)
        m.output(r3, meta + extra)
    except BpfError as e:
        return neg(e.errno)
    return 0


@register_helper(111, "skb_output", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_BTF_ID, A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING, _RDONLY_MEM,
    A.ARG_CONST_SIZE_OR_ZERO), gpl_only=True, arg_btf_id=btf_ids(arg1="sk_buff")),
    prog_types={P.TRACING})
def skb_output(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _btf_output(vm, r1, r2, r3, r4, r5, "skb_output")


@register_helper(121, "xdp_output", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_BTF_ID, A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING, _RDONLY_MEM,
    A.ARG_CONST_SIZE_OR_ZERO), gpl_only=True, arg_btf_id=btf_ids(arg1="xdp_buff")),
    prog_types={P.TRACING})
def xdp_output(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _btf_output(vm, r1, r2, r3, r4, r5, "xdp_output")


@register_helper(22, "perf_event_read", Proto(RetType.RET_INTEGER, (
    A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING), gpl_only=True), tier="perfmon")
def perf_event_read(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = _perf_map(vm, r1, "perf_event_read")
    try:
        value, _, _ = m.read_counter(r2)
    except BpfError as e:
        return neg(e.errno)
    return value & ((1 << 64) - 1)


@register_helper(55, "perf_event_read_value", Proto(RetType.RET_INTEGER, (
    A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING, A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE),
    gpl_only=True), tier="perfmon")
def perf_event_read_value(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = _perf_map(vm, r1, "perf_event_read_value")
    size = r4 & M32
    check_writable(vm.memory, r3, size)
    try:
        if size != _VALUE.size:
            raise BpfError(errno.EINVAL, f"size {size} is not sizeof(struct "
                           "bpf_perf_event_value)")
        vm.memory.write(r3, _VALUE.pack(*m.read_counter(r2)))
    except BpfError as e:
        vm.memory.write(r3, bytes(size))
        return neg(e.errno)
    return 0


@register_helper(56, "perf_prog_read_value", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE), gpl_only=True),
    prog_types={P.PERF_EVENT})
def perf_prog_read_value(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """bpf_perf_prog_read_value(ctx, buf, size): the counter of the perf event the
    PERF_EVENT program runs for (the ctx object's ``event``); -EINVAL for a size
    other than 24, and ``buf`` zeroed on error."""
    from ..maps.perf_event_array import PerfEvent

    size = r3 & M32
    check_writable(vm.memory, r2, size)
    event = getattr(_ctx_object(vm, r1), "event", None)
    if not isinstance(event, PerfEvent):
        raise BpfFault("bpf_perf_prog_read_value: no perf event behind the ctx")
    try:
        if size != _VALUE.size:
            raise BpfError(errno.EINVAL, f"size {size} is not sizeof(struct "
                           "bpf_perf_event_value)")
        vm.memory.write(r2, _VALUE.pack(*event.read_local()))
    except BpfError as e:
        vm.memory.write(r2, bytes(size))
        return neg(e.errno)
    return 0
