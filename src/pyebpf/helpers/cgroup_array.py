"""Cgroup array helpers: bpf_skb_under_cgroup and bpf_current_task_under_cgroup
(net/core/filter.c, kernel/trace/bpf_trace.c), over
:class:`~pyebpf.maps.cgroup_array.CgroupArrayMap`.

Both return 1 when the current task (bpf_current_task_under_cgroup) or the
skb's socket (bpf_skb_under_cgroup; -ENOENT for an skb without a full socket)
is in the cgroup of slot ``index`` or below it, 0 when not, -E2BIG for an
index past the end and -EAGAIN for an empty slot.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfError, BpfFault
from ..uapi import ProgType
from . import register_helper
from ._util import M32, map_at, neg
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..maps.cgroup_array import CgroupArrayMap

A = ArgType
P = ProgType
#: Program types whose get_func_proto offers bpf_skb_under_cgroup (asked of Linux 6.18).
_SKB_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.LWT_IN, P.LWT_OUT, P.LWT_XMIT,
                        P.LWT_SEG6LOCAL})


def _cgroup_map(vm: Vm, addr: int, helper: str) -> CgroupArrayMap:
    from ..maps.cgroup_array import CgroupArrayMap

    m = map_at(vm, addr, helper)
    if not isinstance(m, CgroupArrayMap):
        raise BpfFault(f"bpf_{helper} with a {m.map_type.name} map (it needs a CGROUP_ARRAY)")
    return m


@register_helper(33, "skb_under_cgroup", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING)), prog_types=_SKB_TYPES)
def skb_under_cgroup(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..progs.skb import skb_from_ctx

    m = _cgroup_map(vm, r2, "skb_under_cgroup")
    skb = skb_from_ctx(vm.memory, r1)
    if skb is None or skb.sk is None:
        return neg(errno.ENOENT)
    try:
        return m.under(r3 & M32)
    except BpfError as e:
        return neg(e.errno)


@register_helper(37, "current_task_under_cgroup", Proto(RetType.RET_INTEGER, (
    A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING)), tier="perfmon")
def current_task_under_cgroup(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = _cgroup_map(vm, r1, "current_task_under_cgroup")
    try:
        return m.under(r2 & M32)
    except BpfError as e:
        return neg(e.errno)
