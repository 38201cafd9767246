"""``bpf_sk_select_reuseport(ctx, map, key, flags)`` (net/core/filter.c) for
SK_REUSEPORT programs: pick the listening socket at ``key`` of a
REUSEPORT_SOCKARRAY, SOCKMAP or SOCKHASH. The maps hold no sockets in pyebpf,
so the lookup finds none: -ENOENT, as the kernel answers for an empty slot.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfFault
from ..uapi import MapType, ProgType
from . import register_helper
from ._util import map_at, neg
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType
_MAPS = frozenset({MapType.REUSEPORT_SOCKARRAY, MapType.SOCKMAP, MapType.SOCKHASH})


@register_helper(82, "sk_select_reuseport", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_MAP_KEY, A.ARG_ANYTHING)),
    prog_types={ProgType.SK_REUSEPORT})
def sk_select_reuseport(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = map_at(vm, r2, "sk_select_reuseport")
    if m.map_type not in _MAPS:
        raise BpfFault(f"bpf_sk_select_reuseport with a {m.map_type.name} map")
    selected = m.lookup_elem(vm.memory.read(r3, m.key_size))
    if selected is None:
        return neg(errno.ENOENT)
    raise BpfFault("bpf_sk_select_reuseport found a socket, which pyebpf can't have")
