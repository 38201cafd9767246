"""Packet and socket helpers for skb programs.

``bpf_skb_load_bytes`` copies packet bytes as ``skb_header_pointer`` allows.
The socket lookups search the runtime's sockets: a Runtime has none, so they
find nothing and return NULL, which is also what the kernel's test runs find
(no socket matches a synthetic packet). ``bpf_sk_release`` drops the
reference; ``bpf_sk_fullsock`` and ``bpf_tcp_sock`` cast the socket a program
got from ``skb->sk`` (the test-run socket is a full socket, not TCP),
``skops->sk`` or ``sockopt->sk``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfFault
from ..uapi import ProgType
from . import register_helper
from ._util import M32, check_writable, ctx_object, neg, runtime_of, skb_arg
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..progs.skb import SkBuff
    from ..runtime import Runtime

A = ArgType
P = ProgType
INT_MAX = 0x7FFF_FFFF
#: Program types whose get_func_proto offers bpf_skb_load_bytes.
_LOAD_BYTES_TYPES = frozenset({P.SOCKET_FILTER, P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB,
                               P.LWT_IN, P.LWT_OUT, P.LWT_XMIT, P.LWT_SEG6LOCAL, P.SK_SKB,
                               P.SK_REUSEPORT, P.FLOW_DISSECTOR})
#: bpf_flow_dissector_load_bytes: offsets past this fail before the skb is looked at.
_FLOW_DISSECTOR_MAX_OFFSET = 0xFFFF
#: ... and the socket lookups (bpf_sk_lookup_tcp and friends).
_LOOKUP_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.XDP, P.SK_SKB, P.CGROUP_SOCK_ADDR,
                           P.CGROUP_SKB, P.SK_LOOKUP})
#: ... and the socket casts of skb->sk (sk_skb programs get only some of them).
_CAST_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB, P.SK_SKB})
_RDONLY_MEM = A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY


@register_helper(26, "skb_load_bytes",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING,
                                             A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE)),
                 prog_types=_LOAD_BYTES_TYPES)
def skb_load_bytes(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy ``len`` packet bytes from ``offset``; out of the packet: zero the buffer, -EFAULT.

    A flow dissector's ctx is a struct bpf_flow_dissector: the helper is then
    bpf_flow_dissector_load_bytes, which reads its ``skb`` (offsets up to 0xffff
    only) and fails with -EFAULT when there is none, as in a test run.
    """
    from ..progs.flow_dissector import flow_dissector_from_ctx
    from ..progs.skb import skb_from_ctx

    length = r4 & M32
    check_writable(vm.memory, r3, length)
    offset = r2 & M32
    dissector = flow_dissector_from_ctx(vm.memory, r1)
    if dissector is not None:
        skb = dissector.skb if offset <= _FLOW_DISSECTOR_MAX_OFFSET else None
    else:
        skb = skb_from_ctx(vm.memory, r1)
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


#: sk_lookup programs select a socket but can't look one up (sk_lookup_func_proto
#: offers sk_assign and sk_release only).
_TUPLE_LOOKUP_TYPES = _LOOKUP_TYPES - {P.SK_LOOKUP}
register_helper(84, "sk_lookup_tcp", _LOOKUP, prog_types=_TUPLE_LOOKUP_TYPES)(_lookup)
register_helper(85, "sk_lookup_udp", _LOOKUP, prog_types=_TUPLE_LOOKUP_TYPES)(_lookup)
register_helper(99, "skc_lookup_tcp",
                Proto(RetType.RET_PTR_TO_SOCK_COMMON_OR_NULL, _LOOKUP.args, pkt_access=True),
                prog_types=_TUPLE_LOOKUP_TYPES)(_lookup)


@register_helper(86, "sk_release",
                 Proto(RetType.RET_INTEGER,
                       (A.ARG_PTR_TO_BTF_ID_SOCK_COMMON | TypeFlag.OBJ_RELEASE,)),
                 prog_types=_LOOKUP_TYPES)
def sk_release(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return 0


@register_helper(95, "sk_fullsock",
                 Proto(RetType.RET_PTR_TO_SOCKET_OR_NULL, (A.ARG_PTR_TO_SOCK_COMMON,)),
                 prog_types=_CAST_TYPES - {P.SK_SKB})
def sk_fullsock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The test-run socket is a full socket: the same pointer."""
    return r1


@register_helper(96, "tcp_sock",
                 Proto(RetType.RET_PTR_TO_TCP_SOCK_OR_NULL, (A.ARG_PTR_TO_SOCK_COMMON,)),
                 prog_types=(_CAST_TYPES - {P.SK_SKB}) | {P.SOCK_OPS, P.CGROUP_SOCKOPT})
def tcp_sock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """bpf_tcp_sock: a full socket whose sk_protocol is TCP as a struct
    bpf_tcp_sock (progs.sock_ops.map_tcp_sock; the same view on every call, and
    a tcp_sock given back is itself); NULL for the rest: UDP, the request and
    timewait mini-sockets, the test run's dummy socket (protocol 0)."""
    from ..progs.sock_ops import map_tcp_sock
    from .skc import IPPROTO_TCP, noted_sock, sock_facts_at

    found = sock_facts_at(vm, r1) if r1 else None
    if found is None:
        return 0
    view, facts = found
    if view.kind != "sock" or not facts.fullsock or facts.protocol != IPPROTO_TCP:
        return 0
    return map_tcp_sock(runtime_of(vm, "tcp_sock"), view, noted_sock(view))


# -- identities and hashes ----------------------------------------------------------------------

_SKB_TYPES = frozenset({P.SOCKET_FILTER, P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB, P.SK_SKB})
_TC = frozenset({P.SCHED_CLS, P.SCHED_ACT})
_TC_LWT = _TC | {P.LWT_IN, P.LWT_OUT, P.LWT_XMIT, P.LWT_SEG6LOCAL}
_CTX = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,))
#: from_kuid_munged's answer for a socket that isn't a full socket.
OVERFLOWUID = 65534


#: The sock hooks whose ctx stands for a socket (bpf_sock, bpf_sock_addr, sock_ops):
#: get_socket_cookie's _sock, _sock_addr and _sock_ops prototypes.
_SOCK_CTX_TYPES = frozenset({P.CGROUP_SOCK, P.CGROUP_SOCK_ADDR, P.SOCK_OPS})


@register_helper(46, "get_socket_cookie", _CTX, prog_types=_SKB_TYPES | _SOCK_CTX_TYPES)
def get_socket_cookie(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The cookie of the ctx's socket (handed out from the runtime's counter on
    first use, as sock_gen_cookie does); 0 for an skb without a socket. In the
    sock hooks the ctx is the socket itself (a bpf_sock or bpf_sock_addr run
    stands for one socket) or, for sock_ops, the socket of the call."""
    from ..progs.skb import SkBuff

    obj = ctx_object(vm, r1, object, "socket")
    sk = obj.sk if isinstance(obj, SkBuff) else getattr(obj, "sock", obj)
    if sk is None:
        return 0
    if not getattr(sk, "cookie", 0):
        rt = runtime_of(vm, "get_socket_cookie")
        rt.last_socket_cookie += 1
        sk.cookie = rt.last_socket_cookie
    return int(sk.cookie)


@register_helper(47, "get_socket_uid", _CTX, prog_types=_SKB_TYPES)
def get_socket_uid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    sk = skb_arg(vm, r1).sk
    return OVERFLOWUID if sk is None else sk.uid


@register_helper(79, "skb_cgroup_id", _CTX, prog_types=_TC | {P.CGROUP_SKB})
def skb_cgroup_id(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The cgroup v2 id of the skb's socket (the runtime's ``cgroup_id``), 0 without one."""
    return 0 if skb_arg(vm, r1).sk is None else runtime_of(vm, "skb_cgroup_id").cgroup_id


@register_helper(122, "get_netns_cookie", Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX_OR_NULL,)),
                 prog_types=_SKB_TYPES - {P.SK_SKB} | {P.CGROUP_SOCK, P.SOCK_OPS, P.SK_MSG,
                                                      P.CGROUP_SOCK_ADDR, P.CGROUP_SOCKOPT})
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


# -- ECN, timestamps, classid ------------------------------------------------------------------

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
INET_ECN_MASK = INET_ECN_CE = 3
CHECKSUM_COMPLETE = 2


def _proto(skb: SkBuff) -> int:
    """skb->protocol in host order."""
    return ((skb.protocol & 0xFF) << 8) | (skb.protocol >> 8)


ETH_HLEN, VLAN_HLEN, VLAN_MAX_DEPTH = 14, 4, 8
_VLAN_TYPES = (0x8100, 0x88A8)


def _proto_skip_vlan(skb: SkBuff) -> int:
    """skb_protocol(skb, true): skb->protocol, or for a VLAN-tagged packet the
    type under its tags (__vlan_get_protocol: the first tag's header is read
    from mac_len - VLAN_HLEN, at most VLAN_MAX_DEPTH headers read; 0 past that
    or past the packet)."""
    proto = _proto(skb)
    if proto not in _VLAN_TYPES:
        return proto
    mac_len = skb.network_off - skb.mac_off
    if mac_len and mac_len < VLAN_HLEN:
        return 0
    depth, parse_depth = (mac_len - VLAN_HLEN) if mac_len else ETH_HLEN, VLAN_MAX_DEPTH
    while proto in _VLAN_TYPES:
        if parse_depth == 0:
            return 0
        parse_depth -= 1
        if depth + VLAN_HLEN > skb.len:  # skb_header_pointer fails
            return 0
        at = skb.data_off + depth + 2
        proto = int.from_bytes(skb.buf[at:at + 2], "big")
        depth += VLAN_HLEN
    return proto


def _csum16_add(csum: int, addend: int) -> int:
    """csum16_add: one's-complement add of two 16-bit values (as they lie in memory)."""
    res = (csum + addend) & 0xFFFF
    return (res + (res < addend)) & 0xFFFF


def _ip_ecn_set_ce(skb: SkBuff, at: int) -> int:
    """IP_ECN_set_ce: mark CE in an ECN-capable IPv4 header, fixing its checksum
    incrementally; 1 if the header is now CE, 0 for a not-ECT one."""
    tos = skb.buf[at + 1]
    ecn = (tos + 1) & INET_ECN_MASK
    if not ecn & 2:
        return int(not ecn)
    # htons(0xFFFB) + htons(ecn), in a little-endian u16's view of the bytes
    check_add = (0xFBFF + (ecn << 8)) & 0xFFFF
    check = int.from_bytes(skb.buf[at + 10:at + 12], "little")
    skb.buf[at + 10:at + 12] = _csum16_add(check, check_add).to_bytes(2, "little")
    skb.buf[at + 1] = tos | INET_ECN_CE
    return 1


def _ip6_ecn_set_ce(skb: SkBuff, at: int) -> int:
    """IP6_ECN_set_ce: mark CE in the traffic class of an ECN-capable IPv6 header
    (and follow the change in a CHECKSUM_COMPLETE sum)."""
    first = int.from_bytes(skb.buf[at:at + 4], "big")
    if not (first >> 20) & INET_ECN_MASK:  # INET_ECN_is_not_ect(ipv6_get_dsfield)
        return 0
    to = first | (INET_ECN_CE << 20)
    skb.buf[at:at + 4] = to.to_bytes(4, "big")
    if skb.ip_summed == CHECKSUM_COMPLETE:
        from .csum import csum_add, csum_sub

        frm_w = int.from_bytes(first.to_bytes(4, "big"), "little")
        to_w = int.from_bytes(to.to_bytes(4, "big"), "little")
        skb.csum = csum_add(csum_sub(skb.csum, frm_w), to_w)
    return 1


@register_helper(97, "skb_ecn_set_ce", _CTX, prog_types=_TC | {P.CGROUP_SKB})
def skb_ecn_set_ce(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Mark Congestion Experienced in the packet's IP header (the way an AQM
    does): 1 if the packet now carries CE, 0 if it can't (not ECN-capable,
    not IP, or a header shorter than the linear data holds)."""
    skb = skb_arg(vm, r1)
    proto = _proto_skip_vlan(skb)
    iphdr_len = {ETH_P_IP: 20, ETH_P_IPV6: 40}.get(proto)
    if iphdr_len is None or skb.headlen < iphdr_len:
        return 0
    at = skb.network_off  # ip_hdr(skb): where the tags, if any, begin
    if at + iphdr_len > skb.data_off + skb.headlen:  # past skb_tail_pointer
        return 0
    return _ip_ecn_set_ce(skb, at) if proto == ETH_P_IP else _ip6_ecn_set_ce(skb, at)


#: enum bpf_skb_tstamp_type (BPF_SKB_TSTAMP_DELIVERY_MONO is CLOCK_MONOTONIC's old name).
BPF_SKB_CLOCK_REALTIME, BPF_SKB_CLOCK_MONOTONIC, BPF_SKB_CLOCK_TAI = 0, 1, 2


@register_helper(192, "skb_set_tstamp",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING)),
                 prog_types=_TC)
def skb_set_tstamp(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Set skb->tstamp and what clock it is on (REALTIME: a receive time, which
    may be 0 to clear it; MONOTONIC / TAI: a delivery time for the qdisc,
    never 0). Only IPv4 and IPv6 packets: -EOPNOTSUPP for others."""
    skb = skb_arg(vm, r1)
    tstamp, tstamp_type = r2, r3 & M32
    if _proto(skb) not in (ETH_P_IP, ETH_P_IPV6):
        return neg(errno.EOPNOTSUPP)
    if tstamp_type not in (BPF_SKB_CLOCK_REALTIME, BPF_SKB_CLOCK_MONOTONIC,
                           BPF_SKB_CLOCK_TAI):
        return neg(errno.EINVAL)
    if tstamp_type != BPF_SKB_CLOCK_REALTIME and not tstamp:
        return neg(errno.EINVAL)
    skb.tstamp, skb.tstamp_type = tstamp, tstamp_type  # SKB_CLOCK_* have the same values
    return 0


@register_helper(151, "skb_cgroup_classid", _CTX, prog_types=_TC)
def skb_cgroup_classid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The net_cls classid of the skb's (full) socket; 0 without a socket.
    sk_alloc gives a socket its creator's classid (sock_update_classid): a
    test-run skb's socket is the caller's, the runtime's ``net_cls_classid``."""
    skb = skb_arg(vm, r1)
    if skb.sk is None:
        return 0
    return runtime_of(vm, "skb_cgroup_classid").net_cls_classid


# -- cgroup ancestors of a socket ---------------------------------------------------------------

TCP_TIME_WAIT = 6
_CTX_ANY = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING))


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def ancestor_cgroup_id(rt: Runtime, cgroup_id: int, level: int) -> int:
    """cgroup_id(cgroup_ancestor(cgrp, level)): the id of the ancestor at
    ``level`` (0: the root), 0 for a negative level or one below the cgroup."""
    from ..maps.cgroup_array import cgroup_ancestors

    chain = cgroup_ancestors(rt, cgroup_id)
    return chain[level] if 0 <= level < len(chain) else 0


@register_helper(83, "skb_ancestor_cgroup_id", _CTX_ANY, prog_types=_TC | {P.CGROUP_SKB})
def skb_ancestor_cgroup_id(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The id of the ancestor at ``ancestor_level`` of the cgroup of the skb's
    socket (the runtime's ``cgroup_id``): what a program asks to tell apart
    traffic of containers below one cgroup. 0 without a socket."""
    skb = skb_arg(vm, r1)
    if skb.sk is None:
        return 0
    rt = runtime_of(vm, "skb_ancestor_cgroup_id")
    return ancestor_cgroup_id(rt, rt.cgroup_id, _s32(r2))


def _full_sock_cgroup(vm: Vm, addr: int, helper: str) -> int | None:
    """The cgroup id of the full socket behind ``addr`` (sk_to_full_sk: a request
    socket stands for its listener); None for a timewait socket, which has no
    cgroup. pyebpf's sockets are all in the runtime's ``cgroup_id``."""
    from .skc import sock_facts_at

    found = sock_facts_at(vm, addr)
    if found is None:
        raise BpfFault(f"bpf_{helper}: no socket at {addr:#x}")
    facts = found[1]
    if facts.tcp_prot and facts.state == TCP_TIME_WAIT:
        return None
    return runtime_of(vm, helper).cgroup_id


_SK = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_BTF_ID_SOCK_COMMON,))
_SK_ANY = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_BTF_ID_SOCK_COMMON, A.ARG_ANYTHING))


@register_helper(128, "sk_cgroup_id", _SK, prog_types={P.CGROUP_SKB})
def sk_cgroup_id(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The cgroup v2 id of socket ``sk`` (0 for a socket without one)."""
    cgroup = _full_sock_cgroup(vm, r1, "sk_cgroup_id")
    return 0 if cgroup is None else cgroup


@register_helper(129, "sk_ancestor_cgroup_id", _SK_ANY, prog_types={P.CGROUP_SKB})
def sk_ancestor_cgroup_id(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The id of the ancestor at ``ancestor_level`` of socket ``sk``'s cgroup."""
    cgroup = _full_sock_cgroup(vm, r1, "sk_ancestor_cgroup_id")
    if cgroup is None:
        return 0
    return ancestor_cgroup_id(runtime_of(vm, "sk_ancestor_cgroup_id"), cgroup, _s32(r2))
