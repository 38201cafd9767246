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
from ._util import M32, check_writable, neg, runtime_of, skb_arg
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..progs.skb import SkBuff

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


#: The tuple may point into the packet (the kernel's lookup protos set pkt_access).
_LOOKUP = Proto(RetType.RET_PTR_TO_SOCKET_OR_NULL,
                (A.ARG_PTR_TO_CTX, _RDONLY_MEM, A.ARG_CONST_SIZE, A.ARG_ANYTHING,
                 A.ARG_ANYTHING), pkt_access=True)


def _lookup(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """No socket in the runtime matches any tuple: NULL."""
    return 0


register_helper(84, "sk_lookup_tcp", _LOOKUP, prog_types=_LOOKUP_TYPES)(_lookup)
register_helper(85, "sk_lookup_udp", _LOOKUP, prog_types=_LOOKUP_TYPES)(_lookup)
register_helper(99, "skc_lookup_tcp",
                Proto(RetType.RET_PTR_TO_SOCK_COMMON_OR_NULL, _LOOKUP.args, pkt_access=True),
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


# -- identities and hashes ----------------------------------------------------------------------

_SKB_TYPES = frozenset({P.SOCKET_FILTER, P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB, P.SK_SKB})
_TC = frozenset({P.SCHED_CLS, P.SCHED_ACT})
_TC_LWT = _TC | {P.LWT_IN, P.LWT_OUT, P.LWT_XMIT, P.LWT_SEG6LOCAL}
_CTX = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,))
#: from_kuid_munged's answer for a socket that isn't a full socket.
OVERFLOWUID = 65534


@register_helper(46, "get_socket_cookie", _CTX, prog_types=_SKB_TYPES)
def get_socket_cookie(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The skb's socket's cookie (handed out from the runtime's counter on first
    use, as sock_gen_cookie does), 0 without a socket."""
    sk = skb_arg(vm, r1).sk
    if sk is None:
        return 0
    if not sk.cookie:
        rt = runtime_of(vm, "get_socket_cookie")
        rt.last_socket_cookie += 1
        sk.cookie = rt.last_socket_cookie
    return sk.cookie


@register_helper(47, "get_socket_uid", _CTX, prog_types=_SKB_TYPES)
def get_socket_uid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    sk = skb_arg(vm, r1).sk
    return OVERFLOWUID if sk is None else sk.uid


@register_helper(79, "skb_cgroup_id", _CTX, prog_types=_TC | {P.CGROUP_SKB})
def skb_cgroup_id(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The cgroup v2 id of the skb's socket (the runtime's ``cgroup_id``), 0 without one."""
    return 0 if skb_arg(vm, r1).sk is None else runtime_of(vm, "skb_cgroup_id").cgroup_id


@register_helper(122, "get_netns_cookie", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX_OR_NULL,)),
                 prog_types=_SKB_TYPES - {P.SK_SKB} | {P.CGROUP_SOCK, P.SOCK_OPS, P.SK_MSG})
def get_netns_cookie(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The cookie of the ctx's network namespace (NULL: init_net's); pyebpf
    runs everything in one namespace, the runtime's ``netns_cookie``."""
    return runtime_of(vm, "get_netns_cookie").netns_cookie


@register_helper(80, "get_current_cgroup_id", Proto(), tier="cap_bpf")
def get_current_cgroup_id(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return runtime_of(vm, "get_current_cgroup_id").cgroup_id


@register_helper(24, "get_route_realm", _CTX, prog_types=_TC_LWT)
def get_route_realm(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The realm (tclassid) of the skb's route: a test-run skb has no route, 0."""
    skb_arg(vm, r1)
    return 0


@register_helper(41, "set_hash_invalid", Proto(RetType.RET_VOID, (A.ARG_PTR_TO_CTX,)),
                 prog_types=_TC | {P.LWT_XMIT})
def set_hash_invalid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    skb = skb_arg(vm, r1)
    skb.hash = skb.sw_hash = skb.l4_hash = 0
    return 0


@register_helper(48, "set_hash", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING)),
                 prog_types=_TC)
def set_hash(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Set a software L4 hash (__skb_set_sw_hash(skb, hash, true))."""
    skb = skb_arg(vm, r1)
    skb.hash, skb.sw_hash, skb.l4_hash = r2 & M32, 1, 1
    return 0


def flow_hash(skb: SkBuff, seed: int) -> int:
    """A flow hash over the IPv4/IPv6 addresses, protocol and ports.

    The kernel hashes the dissected flow keys with siphash under a key drawn
    at boot, so no two kernels give the same value; pyebpf hashes the same
    keys with jhash under the runtime's seed, so one runtime's answers are
    stable and packets of one flow (either direction) hash alike.
    """
    from ..maps.jhash import jhash

    pkt = bytes(skb.buf[skb.network_off:skb.data_off + skb.len])
    proto = int.from_bytes(skb.protocol.to_bytes(2, "little"), "big")
    if proto == 0x0800 and len(pkt) >= 20:
        ihl = (pkt[0] & 0xF) * 4
        l4, src, dst, ports_at = pkt[9], pkt[12:16], pkt[16:20], ihl
    elif proto == 0x86DD and len(pkt) >= 40:
        l4, src, dst, ports_at = pkt[6], pkt[8:24], pkt[24:40], 40
    else:
        return jhash(proto.to_bytes(4, "little"), seed) or 1
    ports = pkt[ports_at:ports_at + 4] if l4 in (6, 17, 132) else b""
    a, b = sorted(((src, ports[:2]), (dst, ports[2:])))  # __flow_hash_consistentify
    return jhash(a[0] + b[0] + a[1] + b[1] + bytes([l4]), seed) or 1


@register_helper(34, "get_hash_recalc", _CTX, prog_types=_TC_LWT)
def get_hash_recalc(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """skb_get_hash: the hash set before, else a flow hash computed and kept."""
    skb = skb_arg(vm, r1)
    if not skb.l4_hash and not skb.sw_hash:
        skb.hash = flow_hash(skb, runtime_of(vm, "get_hash_recalc").seed)
        skb.sw_hash = 1
    return skb.hash


@register_helper(32, "skb_change_type",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING)), prog_types=_TC)
def skb_change_type(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Set pkt_type (PACKET_HOST .. PACKET_OTHERHOST only)."""
    skb = skb_arg(vm, r1)
    pkt_type = r2 & M32
    if skb.pkt_type > 3 or pkt_type > 3:
        return neg(errno.EINVAL)
    skb.pkt_type = pkt_type
    return 0


BPF_HDR_START_MAC, BPF_HDR_START_NET = 0, 1


@register_helper(68, "skb_load_bytes_relative",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING,
                                             A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE,
                                             A.ARG_ANYTHING)),
                 prog_types=_TC | {P.SOCKET_FILTER, P.CGROUP_SKB})
def skb_load_bytes_relative(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy bytes from ``offset`` past the MAC or the network header."""
    length = r4 & M32
    check_writable(vm.memory, r3, length)
    skb = skb_arg(vm, r1)
    offset, start_header = r2 & M32, r5 & M32
    start = {BPF_HDR_START_MAC: skb.mac_off, BPF_HDR_START_NET: skb.network_off}.get(start_header)
    if offset > 0xFFFF or start is None or start + offset + length > skb.data_off + skb.len:
        vm.memory.write(r3, bytes(length))
        return neg(errno.EFAULT)
    vm.memory.write(r3, bytes(skb.buf[start + offset:start + offset + length]))
    return 0


@register_helper(17, "get_cgroup_classid", Proto(), tier="cap_bpf",
                 type_protos=dict.fromkeys(_TC_LWT, _CTX))
def get_cgroup_classid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The net_cls classid of the current task's cgroup (the runtime's
    ``net_cls_classid``). tc and lwt programs pass the skb: their packets are
    handled in softirq context, where the kernel uses the skb's socket's
    classid instead, which a test-run socket doesn't have (0)."""
    prog_type = getattr(vm.owner, "prog_type", None)
    if prog_type in _TC_LWT:
        skb_arg(vm, r1)
        return 0
    return runtime_of(vm, "get_cgroup_classid").net_cls_classid


TCP_LISTEN = 10
#: Offset of ``state`` in struct bpf_sock (what a PTR_TO_SOCK_COMMON points at).
_BPF_SOCK_STATE = 72


@register_helper(98, "get_listener_sock",
                 Proto(RetType.RET_PTR_TO_SOCKET_OR_NULL, (A.ARG_PTR_TO_SOCK_COMMON,)),
                 prog_types=_CAST_TYPES - {P.SK_SKB})
def get_listener_sock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The socket itself if it is a listening TCP socket, else NULL (a test-run
    socket is closed)."""
    state = int.from_bytes(vm.memory.read(r1 + _BPF_SOCK_STATE, 4), "little")
    return r1 if state == TCP_LISTEN else 0
