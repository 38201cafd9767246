"""Socket map helpers (net/core/sock_map.c): the sk_skb / sk_msg redirects and the
sock_ops updates of SOCKMAP and SOCKHASH.

A redirect looks the socket up in the map (``pyebpf.links.inet`` sockets):
flags other than BPF_F_INGRESS, an empty slot, a socket that can't be
redirected to (a listening TCP socket, an unconnected UDP one), or an sk_msg
egress redirect to a UDP socket return SK_DROP; otherwise the target is
recorded on the sk_msg (``msg->sk_redir``, ``msg->flags``) or the skb
(skb_bpf_set_redir) and the helper returns SK_PASS, which the program returns
for the redirect to happen (``pyebpf.links.sockmap`` carries it out). An
update from sock_ops (a cgroup's program on ``socket_pair(rt, cgroup=...)``,
or ``run_sock_ops`` on an InetSocket's ``sock``) inserts that socket from the
established and listen callbacks; other callbacks, and sockets that are no
InetSocket, get -EOPNOTSUPP. The prototypes are the kernel's, so programs
using them verify as on the kernel.
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
SK_DROP, SK_PASS = 0, 1
BPF_F_INGRESS = 1
_BY_INDEX = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING,
                                        A.ARG_ANYTHING))
_BY_KEY = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR,
                                      A.ARG_PTR_TO_MAP_KEY, A.ARG_ANYTHING))


def _redirect(vm: Vm, ctx: int, map_addr: int, key: bytes | int, flags: int, helper: str,
              map_type: MapType) -> int:
    """bpf_{sk,msg}_redirect_{map,hash}: ``key`` is the u32 index (an int) or the
    address of the hash key."""
    from ..links.sockmap import msg_from_ctx, redirect_allowed, skb_set_redirect
    from ..progs.skb import skb_from_ctx

    m = map_at(vm, map_addr, helper)
    if m.map_type is not map_type:
        raise BpfFault(f"bpf_{helper} with a {m.map_type.name} map (it needs a "
                       f"{map_type.name})")
    if flags & ~BPF_F_INGRESS:
        return SK_DROP
    raw = (key & 0xFFFF_FFFF).to_bytes(4, "little") if isinstance(key, int) else key
    sk = m.sock_at(raw)
    if sk is None or not redirect_allowed(sk):
        return SK_DROP
    if helper.startswith("msg"):
        if not flags & BPF_F_INGRESS and not sk.is_tcp:
            return SK_DROP  # sk_msg egress goes out of TCP sockets only
        msg = msg_from_ctx(vm.memory, ctx)
        if msg is None:
            raise BpfFault(f"bpf_{helper}: r1 is not an sk_msg ctx")
        msg.flags = flags
        msg.sk_redir = sk
    else:
        skb = skb_from_ctx(vm.memory, ctx)
        if skb is None:
            raise BpfFault(f"bpf_{helper}: r1 is not an skb ctx")
        skb_set_redirect(skb, sk, bool(flags & BPF_F_INGRESS))
    return SK_PASS


def _hash_key(vm: Vm, addr: int, map_addr: int, helper: str) -> bytes:
    m = map_at(vm, map_addr, helper)
    return bytes(vm.memory.read(addr, m.key_size))


#: sock_map_op_okay: the sock_ops callbacks a socket may be added from.
BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB = 4, 5
BPF_SOCK_OPS_TCP_LISTEN_CB = 11
_OP_OKAY = (BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB,
            BPF_SOCK_OPS_TCP_LISTEN_CB)


def _update(vm: Vm, ctx: int, map_addr: int, key_addr: int, flags: int, helper: str,
            map_type: MapType) -> int:
    """bpf_sock_map_update / bpf_sock_hash_update: the sock_ops ctx's socket goes
    in the map (sock_map_update_common, without the syscall's state check) when
    it is a simulated socket (pyebpf.links.inet) and the callback is an
    established or listen one; else -EOPNOTSUPP."""
    from ..errors import BpfError
    from ..links.inet import inet_socket_of
    from ..memory import PAGE_SHIFT

    m = map_at(vm, map_addr, helper)
    if m.map_type is not map_type:
        raise BpfFault(f"bpf_{helper} with a {m.map_type.name} map (it needs a "
                       f"{map_type.name})")
    entry = vm.memory.devices.get((ctx & ((1 << 64) - 1)) >> PAGE_SHIFT)
    kern = getattr(entry[2], "obj", None) if entry is not None else None
    sk = inet_socket_of(getattr(kern, "sock", None))
    if sk is None or getattr(kern, "op", None) not in _OP_OKAY:
        return neg(errno.EOPNOTSUPP)
    try:
        m.insert(vm.memory.read(key_addr, m.key_size), sk, flags)
    except BpfError as e:
        return neg(e.errno)
    return 0


@register_helper(52, "sk_redirect_map", _BY_INDEX, prog_types={P.SK_SKB})
def sk_redirect_map(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _redirect(vm, r1, r2, r3, r4, "sk_redirect_map", MapType.SOCKMAP)


@register_helper(72, "sk_redirect_hash", _BY_KEY, prog_types={P.SK_SKB})
def sk_redirect_hash(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    key = _hash_key(vm, r3, r2, "sk_redirect_hash")
    return _redirect(vm, r1, r2, key, r4, "sk_redirect_hash", MapType.SOCKHASH)


@register_helper(60, "msg_redirect_map", _BY_INDEX, prog_types={P.SK_MSG})
def msg_redirect_map(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _redirect(vm, r1, r2, r3, r4, "msg_redirect_map", MapType.SOCKMAP)


@register_helper(71, "msg_redirect_hash", _BY_KEY, prog_types={P.SK_MSG})
def msg_redirect_hash(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    key = _hash_key(vm, r3, r2, "msg_redirect_hash")
    return _redirect(vm, r1, r2, key, r4, "msg_redirect_hash", MapType.SOCKHASH)


@register_helper(53, "sock_map_update", _BY_KEY, prog_types={P.SOCK_OPS})
def sock_map_update(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _update(vm, r1, r2, r3, r4, "sock_map_update", MapType.SOCKMAP)


@register_helper(70, "sock_hash_update", _BY_KEY, prog_types={P.SOCK_OPS})
def sock_hash_update(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _update(vm, r1, r2, r3, r4, "sock_hash_update", MapType.SOCKHASH)
