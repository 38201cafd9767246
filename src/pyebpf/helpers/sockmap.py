"""Socket map helpers (net/core/sock_map.c): the sk_skb / sk_msg redirects and the
sock_ops updates of SOCKMAP and SOCKHASH.

pyebpf's socket maps hold no sockets (it has no socket files to put in
them), so a redirect finds no socket and returns SK_DROP, as the kernel does
for an empty slot or flags other than BPF_F_INGRESS; an update from sock_ops
has no suitable socket in its ctx and returns -EOPNOTSUPP. The prototypes
are the kernel's, so programs using them verify as on the kernel.
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
P = ProgType
SK_DROP = 0
BPF_F_INGRESS = 1
_BY_INDEX = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING,
                                        A.ARG_ANYTHING))
_BY_KEY = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR,
                                      A.ARG_PTR_TO_MAP_KEY, A.ARG_ANYTHING))


def _redirect(vm: Vm, map_addr: int, flags: int, helper: str, map_type: MapType) -> int:
    """No socket to redirect to (and flags beyond BPF_F_INGRESS): SK_DROP."""
    m = map_at(vm, map_addr, helper)
    if m.map_type is not map_type:
        raise BpfFault(f"bpf_{helper} with a {m.map_type.name} map (it needs a "
                       f"{map_type.name})")
    return SK_DROP


def _update(vm: Vm, map_addr: int, helper: str, map_type: MapType) -> int:
    """sock_map_sk_is_suitable fails: the sock_ops ctx has no TCP socket here."""
    m = map_at(vm, map_addr, helper)
    if m.map_type is not map_type:
        raise BpfFault(f"bpf_{helper} with a {m.map_type.name} map (it needs a "
                       f"{map_type.name})")
    return neg(errno.EOPNOTSUPP)


@register_helper(52, "sk_redirect_map", _BY_INDEX, prog_types={P.SK_SKB})
def sk_redirect_map(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _redirect(vm, r2, r4, "sk_redirect_map", MapType.SOCKMAP)


@register_helper(72, "sk_redirect_hash", _BY_KEY, prog_types={P.SK_SKB})
def sk_redirect_hash(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _redirect(vm, r2, r4, "sk_redirect_hash", MapType.SOCKHASH)


@register_helper(60, "msg_redirect_map", _BY_INDEX, prog_types={P.SK_MSG})
def msg_redirect_map(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _redirect(vm, r2, r4, "msg_redirect_map", MapType.SOCKMAP)


@register_helper(71, "msg_redirect_hash", _BY_KEY, prog_types={P.SK_MSG})
def msg_redirect_hash(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _redirect(vm, r2, r4, "msg_redirect_hash", MapType.SOCKHASH)


@register_helper(53, "sock_map_update", _BY_KEY, prog_types={P.SOCK_OPS})
def sock_map_update(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _update(vm, r2, "sock_map_update", MapType.SOCKMAP)


@register_helper(70, "sock_hash_update", _BY_KEY, prog_types={P.SOCK_OPS})
def sock_hash_update(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _update(vm, r2, "sock_hash_update", MapType.SOCKHASH)
