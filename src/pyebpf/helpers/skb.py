"""Packet and socket helpers for skb programs.

``bpf_skb_load_bytes`` copies packet bytes as ``skb_header_pointer`` allows.
The socket lookups search the runtime's sockets: a Runtime has none, so they
find nothing and return NULL, which is also what the kernel's test runs find
(no socket matches a synthetic packet). ``bpf_sk_release`` drops the
reference; ``bpf_sk_fullsock`` and ``bpf_tcp_sock`` cast the socket a program
got from ``skb->sk`` (the test-run socket is a full socket, not TCP).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..uapi import ProgType
from . import register_helper
from ._util import M32, check_writable, neg
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType
P = ProgType
INT_MAX = 0x7FFF_FFFF
#: Program types whose get_func_proto offers bpf_skb_load_bytes.
_LOAD_BYTES_TYPES = frozenset({P.SOCKET_FILTER, P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB,
                               P.LWT_IN, P.LWT_OUT, P.LWT_XMIT, P.LWT_SEG6LOCAL, P.SK_SKB,
                               P.SK_REUSEPORT})
#: ... and the socket lookups (bpf_sk_lookup_tcp and friends).
_LOOKUP_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.XDP, P.SK_SKB, P.CGROUP_SOCK_ADDR,
                           P.CGROUP_SKB, P.SK_LOOKUP})
#: ... and the socket casts of skb->sk.
_CAST_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB, P.SK_SKB})
_RDONLY_MEM = A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY


@register_helper(26, "skb_load_bytes",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING,
                                             A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE)),
                 prog_types=_LOAD_BYTES_TYPES)
def skb_load_bytes(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy ``len`` packet bytes from ``offset``; out of the packet: zero the buffer, -EFAULT."""
    from ..progs.skb import skb_from_ctx

    length = r4 & M32
    check_writable(vm.memory, r3, length)
    skb = skb_from_ctx(vm.memory, r1)
    offset = r2 & M32
    if skb is None or offset > INT_MAX or offset + length > skb.len:
        vm.memory.write(r3, bytes(length))
        return neg(errno.EFAULT)
    start = skb.data_off + offset
    vm.memory.write(r3, bytes(skb.buf[start:start + length]))
    return 0


_LOOKUP = Proto(RetType.RET_PTR_TO_SOCKET_OR_NULL,
                (A.ARG_PTR_TO_CTX, _RDONLY_MEM, A.ARG_CONST_SIZE, A.ARG_ANYTHING,
                 A.ARG_ANYTHING))


def _lookup(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """No socket in the runtime matches any tuple: NULL."""
    return 0


register_helper(84, "sk_lookup_tcp", _LOOKUP, prog_types=_LOOKUP_TYPES)(_lookup)
register_helper(85, "sk_lookup_udp", _LOOKUP, prog_types=_LOOKUP_TYPES)(_lookup)
register_helper(99, "skc_lookup_tcp",
                Proto(RetType.RET_PTR_TO_SOCK_COMMON_OR_NULL, _LOOKUP.args),
                prog_types=_LOOKUP_TYPES)(_lookup)


@register_helper(86, "sk_release",
                 Proto(RetType.RET_INTEGER,
                       (A.ARG_PTR_TO_BTF_ID_SOCK_COMMON | TypeFlag.OBJ_RELEASE,)),
                 prog_types=_LOOKUP_TYPES)
def sk_release(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return 0


@register_helper(95, "sk_fullsock",
                 Proto(RetType.RET_PTR_TO_SOCKET_OR_NULL, (A.ARG_PTR_TO_SOCK_COMMON,)),
                 prog_types=_CAST_TYPES)
def sk_fullsock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The test-run socket is a full socket: the same pointer."""
    return r1


@register_helper(96, "tcp_sock",
                 Proto(RetType.RET_PTR_TO_TCP_SOCK_OR_NULL, (A.ARG_PTR_TO_SOCK_COMMON,)),
                 prog_types=_CAST_TYPES)
def tcp_sock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Only TCP sockets cast; the test-run socket is not one: NULL."""
    return 0
