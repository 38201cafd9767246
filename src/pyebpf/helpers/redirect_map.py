"""``bpf_redirect_map`` (net/core/filter.c ``__bpf_xdp_redirect_map``) for XDP
programs, over the device, CPU and AF_XDP socket maps.

``bpf_redirect_map(map, key, flags)``: the low two bits of ``flags`` are the
action to return when ``key`` (truncated to u32) has no entry (XDP_ABORTED,
XDP_DROP, XDP_PASS or XDP_TX); device maps also take BPF_F_BROADCAST (which
redirects even without an entry) and BPF_F_EXCLUDE_INGRESS; any other bit
makes the helper return XDP_ABORTED. A found entry returns XDP_REDIRECT and
records the target in the run's ``bpf_redirect_info`` (``vm.redirect_info``:
``tgt_index``, ``tgt_value`` (the entry the map's ``redirect_lookup`` found),
``map_id``/``map_type``, and ``map``/``flags`` for a broadcast; also
``vm.redirect_map`` = (map id, map type), INT_MAX and UNSPEC after a failed
lookup). The hook that ran the program carries the redirect out
(pyebpf.links.xdp_redirect); a plain test run only returns the action, as the
kernel's BPF_PROG_TEST_RUN does without BPF_F_TEST_XDP_LIVE_FRAMES.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BpfFault
from ..uapi import MapType, ProgType
from . import register_helper
from ._util import M32, map_at
from .packet import redirect_info
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
_ACTION_MASK = XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX
BPF_F_BROADCAST = 1 << 3
BPF_F_EXCLUDE_INGRESS = 1 << 4
INT_MAX = 0x7FFF_FFFF
#: The flags each map type's map_redirect accepts besides the fallback action.
_FLAG_MASK = {
    MapType.DEVMAP: BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
    MapType.DEVMAP_HASH: BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
    MapType.CPUMAP: 0,
    MapType.XSKMAP: 0,
}


@register_helper(51, "redirect_map", Proto(RetType.RET_INTEGER, (
    A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING, A.ARG_ANYTHING)), prog_types={ProgType.XDP})
def redirect_map(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = map_at(vm, r1, "redirect_map")
    flag_mask = _FLAG_MASK.get(m.map_type)
    if flag_mask is None:
        raise BpfFault(f"bpf_redirect_map with a {m.map_type.name} map (it has no "
                       "map_redirect)")
    flags = r3
    if flags & ~(_ACTION_MASK | flag_mask):
        return XDP_ABORTED
    key = r2 & M32
    info = redirect_info(vm)
    info.tgt_value = m.redirect_lookup(key)  # type: ignore[attr-defined]
    if info.tgt_value is None and not flags & BPF_F_BROADCAST:
        # the last lookup wins: a failed one leaves an ifindex redirect to the old
        # tgt_index behind, should the program return XDP_REDIRECT anyway
        info.map_id, info.map_type = INT_MAX, int(MapType.UNSPEC)
        vm.redirect_map = (INT_MAX, int(MapType.UNSPEC))  # type: ignore[attr-defined]
        return flags & _ACTION_MASK
    info.tgt_index = key
    info.map_id, info.map_type = m.id, int(m.map_type)
    if flags & BPF_F_BROADCAST:
        info.map, info.flags = m, flags
    else:
        info.map, info.flags = None, 0
    vm.redirect_map = (m.id, int(m.map_type))  # type: ignore[attr-defined]
    return XDP_REDIRECT
