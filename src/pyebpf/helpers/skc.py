"""The ``bpf_skc_to_*`` socket casts (net/core/filter.c).

Each takes any socket pointer (``ARG_PTR_TO_BTF_ID_SOCK_COMMON``: a
``sock_common``-led socket, full or not; ``bpf_skc_to_mptcp_sock`` only the
non-BTF socket types, ``ARG_PTR_TO_SOCK_COMMON``) and returns it as a pointer to a more
specific kernel struct when the socket is of that kind, else NULL
(``RET_PTR_TO_BTF_ID_OR_NULL`` of the struct named by ``ret_btf_id``):

====================================  ===============================================
``bpf_skc_to_tcp6_sock`` (136)        a full TCP socket of family AF_INET6
``bpf_skc_to_tcp_sock`` (137)         a full TCP socket
``bpf_skc_to_tcp_timewait_sock`` (138) a TCP socket (tcp_prot/tcpv6_prot) in TIME_WAIT
``bpf_skc_to_tcp_request_sock`` (139)  a TCP socket in NEW_SYN_RECV (a request sock)
``bpf_skc_to_udp6_sock`` (140)        a full UDP datagram socket of family AF_INET6
``bpf_skc_to_unix_sock`` (178)        a full AF_UNIX socket
``bpf_skc_to_mptcp_sock`` (196)       the MPTCP socket of a TCP subflow
====================================  ===============================================

Where they are offered: tracing programs (fentry/fexit, LSM, syscall:
``tracing_prog_func_proto``) always; the networking program types through
``bpf_sk_base_func_proto`` (socket filters, tc, XDP, cgroup skb and sock_addr,
sock_ops, sk_msg, sk_skb, flow dissector, lwt, sk_lookup) only with
CAP_PERFMON; nowhere else (``unknown func``).

At run time a socket pointer is one of two things in pyebpf's memory:

- a socket's ``struct bpf_sock`` view (``skb->sk`` of a test run: the dummy
  socket, ``bpf_dummy_proto``, protocol 0, so every cast is NULL as on the
  kernel; ``skops->sk``: a TCP socket). A cast that matches gives the socket's
  kernel object, laid out by the kernel BTF as its most specific struct
  (``tcp_sock`` or ``tcp6_sock`` ...), made on first use for this mapping of
  the socket (one object per mapping, so every matching cast of one socket
  gives the same pointer) and filled from the socket's fields;
- a :class:`~pyebpf.kernel_btf.KernelObject` of a socket struct: it matches
  when the kernel's test holds (family and state are its ``sock_common``
  fields, the protocol is its struct's: ``tcp_sock`` is TCP ...) and the object
  is of the cast's struct or begins with it; the result is the object itself.

No modelled socket is an MPTCP subflow: ``bpf_skc_to_mptcp_sock`` is NULL.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ..uapi import ProgType
from . import register_helper
from ._util import TRACING_TYPES, runtime_of
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..btf_build import BtfBuilder
    from ..engine.interpreter import Vm
    from ..memory import Region
    from ..runtime import Runtime

__all__ = ["SKC_CASTS", "SockFacts", "add_sock_cast_btf", "note_sock_view", "noted_sock",
           "sock_facts_at"]

P = ProgType
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
IPPROTO_TCP, IPPROTO_UDP = 6, 17
#: include/net/tcp_states.h.
TCP_TIME_WAIT, TCP_NEW_SYN_RECV = 6, 12

#: The program types whose get_func_proto falls back to bpf_sk_base_func_proto.
SK_BASE_TYPES = frozenset({
    P.SOCKET_FILTER, P.CGROUP_SKB, P.SCHED_CLS, P.SCHED_ACT, P.XDP, P.CGROUP_SOCK_ADDR,
    P.SOCK_OPS, P.SK_MSG, P.SK_SKB, P.FLOW_DISSECTOR, P.LWT_IN, P.LWT_OUT, P.LWT_XMIT,
    P.LWT_SEG6LOCAL, P.SK_LOOKUP})
#: The program types whose table is tracing_prog_func_proto's (fentry/fexit/iter,
#: LSM and syscall programs fall back to it), which offers the casts outright.
TRACING_PROG_TYPES = frozenset({P.TRACING, P.LSM, P.SYSCALL}) & TRACING_TYPES


@attrs.frozen
class SockFacts:
    """What the casts test of a socket: ``sk_family``, ``sk_type``,
    ``sk_protocol``, ``sk_state``, and whether ``sk_prot`` is TCP's
    (``tcp_prot``/``tcpv6_prot``)."""

    family: int
    type: int
    protocol: int
    state: int
    tcp_prot: bool

    @property
    def fullsock(self) -> bool:
        """sk_fullsock: not a timewait or request mini-socket."""
        return self.state not in (TCP_TIME_WAIT, TCP_NEW_SYN_RECV)


@attrs.frozen
class SkcCast:
    """One bpf_skc_to_* helper: its id, name, result struct and the kernel's test."""

    func_id: int
    name: str
    struct: str
    test: Callable[[SockFacts], bool]
    #: arg1_type: any socket pointer, BTF-typed ones included (but for mptcp_sock).
    arg: int = ArgType.ARG_PTR_TO_BTF_ID_SOCK_COMMON


#: The casts, with the tests of net/core/filter.c.
SKC_CASTS: tuple[SkcCast, ...] = (
    SkcCast(136, "skc_to_tcp6_sock", "tcp6_sock",
            lambda s: s.fullsock and s.protocol == IPPROTO_TCP and s.family == AF_INET6),
    SkcCast(137, "skc_to_tcp_sock", "tcp_sock",
            lambda s: s.fullsock and s.protocol == IPPROTO_TCP),
    SkcCast(138, "skc_to_tcp_timewait_sock", "tcp_timewait_sock",
            lambda s: s.tcp_prot and s.state == TCP_TIME_WAIT),
    SkcCast(139, "skc_to_tcp_request_sock", "tcp_request_sock",
            lambda s: s.tcp_prot and s.state == TCP_NEW_SYN_RECV),
    SkcCast(140, "skc_to_udp6_sock", "udp6_sock",
            lambda s: s.fullsock and s.protocol == IPPROTO_UDP and s.type == SOCK_DGRAM
            and s.family == AF_INET6),
    SkcCast(178, "skc_to_unix_sock", "unix_sock",
            lambda s: s.fullsock and s.family == AF_UNIX),
    # bpf_mptcp_sock_from_subflow: only a TCP subflow of an MPTCP connection
    SkcCast(196, "skc_to_mptcp_sock", "mptcp_sock", lambda s: False,
            ArgType.ARG_PTR_TO_SOCK_COMMON),
)


# -- the kernel structs -----------------------------------------------------------------------
def add_sock_cast_btf(b: BtfBuilder, ids: dict[str, int]) -> None:
    """The structs the casts return, simplified but with the kernel's names and
    nesting: each begins with the socket struct it extends (``tcp6_sock`` with
    ``tcp_sock``, ``udp6_sock`` with ``udp_sock``/``inet_sock``/``sock``, the
    timewait and request mini-sockets with ``sock_common``)."""
    u8, u32, u64 = ids["u8"], ids["u32"], ids["u64"]
    uint, ushort = ids["unsigned int"], ids["unsigned short"]
    in6 = ids.get("struct in6_addr")
    if in6 is None:
        be16 = ids.get("__be16") or b.typedef("__be16", ids["__u16"])
        be32 = ids.get("__be32") or b.typedef("__be32", ids["__u32"])
        ids["__be16"], ids["__be32"] = be16, be32
        in6_u = b.struct("", [("u6_addr8", b.array(ids["__u8"], 16)),
                              ("u6_addr16", b.array(be16, 8)), ("u6_addr32", b.array(be32, 4))],
                         union=True)
        in6 = ids["struct in6_addr"] = b.struct("in6_addr", [("in6_u", in6_u)])
    ids["struct ipv6_pinfo"] = pinfo = b.struct("ipv6_pinfo", [
        ("saddr", in6), ("flow_label", ids["__u32"]), ("dst_cookie", u32)])
    sock_ptr = b.ptr(ids["struct sock"])
    ids["struct tcp6_sock"] = b.struct("tcp6_sock", [
        ("tcp", ids["struct tcp_sock"]), ("inet6", pinfo)])
    ids["struct inet_sock"] = inet = b.struct("inet_sock", [
        ("sk", ids["struct sock"]), ("pinet6", b.ptr(pinfo)), ("inet_saddr", ids["__u32"]),
        ("inet_sport", ids["__u16"])])
    ids["struct udp_sock"] = udp = b.struct("udp_sock", [
        ("inet", inet), ("udp_flags", ids["unsigned long"]), ("pending", ids["int"]),
        ("encap_type", u8), ("len", ushort), ("gso_size", ushort)])
    ids["struct udp6_sock"] = b.struct("udp6_sock", [("udp", udp), ("inet6", pinfo)])
    ids["struct unix_sock"] = b.struct("unix_sock", [
        ("sk", ids["struct sock"]), ("addr", ids["void *"]), ("peer", sock_ptr),
        ("listener", sock_ptr), ("inq_len", ids["int"])])
    ids["struct inet_timewait_sock"] = itw = b.struct("inet_timewait_sock", [
        ("__tw_common", ids["struct sock_common"]), ("tw_mark", uint), ("tw_substate", u8),
        ("tw_rcv_wscale", u8), ("tw_sport", ids["__u16"])])
    ids["struct tcp_timewait_sock"] = b.struct("tcp_timewait_sock", [
        ("tw_sk", itw), ("tw_rcv_wnd", u32), ("tw_ts_offset", u32), ("tw_ts_recent", u32)])
    ids["struct request_sock"] = req = b.struct("request_sock", [
        ("__req_common", ids["struct sock_common"]), ("mss", ushort), ("num_retrans", u8),
        ("ts_recent", u32), ("sk", sock_ptr)])
    ids["struct inet_request_sock"] = ireq = b.struct("inet_request_sock", [
        ("req", req), ("ir_mark", u32)])
    ids["struct tcp_request_sock"] = b.struct("tcp_request_sock", [
        ("req", ireq), ("snt_synack", u64), ("rcv_isn", u32), ("snt_isn", u32)])
    ids["struct mptcp_sock"] = b.struct("mptcp_sock", [
        ("sk", ids["struct inet_connection_sock"]), ("local_key", u64), ("remote_key", u64),
        ("write_seq", u64), ("snd_nxt", u64), ("ack_seq", u64), ("token", u32)])


def _leading_path(struct: str, prefix: str) -> str | None:
    """The member path by which kernel struct ``struct`` begins with struct
    ``prefix`` (its first member, at offset 0, recursively: ``"tcp."`` for
    tcp6_sock and tcp_sock, ``""`` for the struct itself), or None when it doesn't:
    a pointer to one is a pointer to the other exactly when it does."""
    from ..btf import BtfKind
    from ..kernel_btf import kernel_btf

    btf = kernel_btf()
    t = btf.find(struct, BtfKind.STRUCT)
    path = ""
    while t is not None and t.kind == BtfKind.STRUCT:
        if t.name == prefix:
            return path
        if not t.members or t.members[0].bit_offset:
            return None
        path += t.members[0].name + "."
        t = btf.skip_mods_and_typedefs(t.members[0].type)
    return None


def _begins_with(struct: str, prefix: str) -> bool:
    return _leading_path(struct, prefix) is not None


# -- which socket a pointer designates ----------------------------------------------------------
#: A mapped bpf_sock view -> the socket object it shows (progs.skb.Sock and kin).
_VIEWS: weakref.WeakKeyDictionary[Region, Any] = weakref.WeakKeyDictionary()
#: A mapped bpf_sock view -> the kernel object made for it by a matching cast.
_VIEW_OBJECTS: weakref.WeakKeyDictionary[Region, Any] = weakref.WeakKeyDictionary()


def note_sock_view(region: Region, sock: Any) -> None:
    """Record that ``region`` is ``sock``'s ``struct bpf_sock`` view, so that a cast
    of a pointer to it builds the kernel object from the socket's own fields."""
    _VIEWS[region] = sock


def noted_sock(region: Region) -> Any:
    """The socket model ``region`` is the bpf_sock view of (None: not recorded)."""
    return _VIEWS.get(region)


def _view_facts(buf: bytes | bytearray) -> SockFacts:
    """A bpf_sock view's family (4), type (8), protocol (12) and state (72); TCP's
    sk_prot when the protocol is TCP in an inet family (the test-run's dummy socket
    has protocol 0: bpf_dummy_proto)."""
    def u32(off: int) -> int:
        return int.from_bytes(buf[off:off + 4], "little")

    family, protocol = u32(4), u32(12)
    return SockFacts(family, u32(8), protocol, u32(72),
                     protocol == IPPROTO_TCP and family in (AF_INET, AF_INET6))


#: Kernel socket structs -> (sk_type, sk_protocol) their objects stand for.
_STRUCT_PROTOCOL: dict[str, tuple[int, int]] = {
    "tcp_sock": (SOCK_STREAM, IPPROTO_TCP), "tcp_timewait_sock": (SOCK_STREAM, IPPROTO_TCP),
    "tcp_request_sock": (SOCK_STREAM, IPPROTO_TCP), "udp_sock": (SOCK_DGRAM, IPPROTO_UDP),
    "mptcp_sock": (SOCK_STREAM, 262),  # IPPROTO_MPTCP
}


def _object_facts(region: Region) -> SockFacts | None:
    """The facts of a KernelObject socket: family and state from its sock_common,
    type and protocol from its struct (None: not a socket struct)."""
    from ..btf import BtfKind
    from ..kernel_btf import kernel_btf

    if not _begins_with(region.name, "sock_common"):
        return None
    btf = kernel_btf()
    common = btf.find("sock_common", BtfKind.STRUCT)
    assert common is not None
    family_off = btf.offsetof(common.id, "skc_family")
    state_off = btf.offsetof(common.id, "skc_state")
    family = int.from_bytes(region.buf[family_off:family_off + 2], "little")
    state = region.buf[state_off]
    stype, protocol = next((tp for name, tp in _STRUCT_PROTOCOL.items()
                            if _begins_with(region.name, name)), (0, 0))
    return SockFacts(family, stype, protocol, state,
                     protocol == IPPROTO_TCP and family in (AF_INET, AF_INET6))


def sock_facts_at(vm: Vm, addr: int) -> tuple[Region, SockFacts] | None:
    """The socket ``addr`` points at (its start): its region and facts, or None."""
    region = vm.memory.region_at(addr)
    if region is None or region.base != addr:
        return None
    if region.kind == "sock":
        return region, _view_facts(region.buf)
    if region.kind == "tcp_sock":  # bpf_tcp_sock's view: the socket it shows
        from ..progs.sock_ops import sock_view_of_tcp_sock

        view = sock_view_of_tcp_sock(region)
        return None if view is None else (view, _view_facts(view.buf))
    if region.kind == "kernel":
        facts = _object_facts(region)
        return None if facts is None else (region, facts)
    return None


def _most_specific_struct(s: SockFacts) -> str:
    """The kernel struct a socket of these facts is allocated as."""
    if s.tcp_prot and s.state == TCP_TIME_WAIT:
        return "tcp_timewait_sock"
    if s.tcp_prot and s.state == TCP_NEW_SYN_RECV:
        return "tcp_request_sock"
    if s.protocol == IPPROTO_TCP:
        return "tcp6_sock" if s.family == AF_INET6 else "tcp_sock"
    if s.protocol == IPPROTO_UDP and s.type == SOCK_DGRAM:
        return "udp6_sock" if s.family == AF_INET6 else "udp_sock"
    if s.family == AF_UNIX:
        return "unix_sock"
    return "sock"


#: tcp_sock members a TCP socket model (progs.sock_ops.TcpSock) keeps.
_TCP_SOCK_FIELDS = ("snd_cwnd", "srtt_us", "mss_cache")


def _view_object(rt: Runtime, view: Region, facts: SockFacts) -> Any:
    """The kernel object of the socket ``view`` shows (made once per view, for as
    long as the running program runs)."""
    from ..btf import BtfKind
    from ..kernel_btf import KernelObject, kernel_btf

    obj = _VIEW_OBJECTS.get(view)
    # a view mapped for longer than a run (an InetSocket's) outlives the object
    # an earlier run got: that one is unmapped, make another
    if obj is not None and rt.memory.region_at(obj.addr) is obj.region:
        return obj
    struct = _most_specific_struct(facts)
    obj = KernelObject(rt, struct)
    btf = kernel_btf()
    common = btf.find("sock_common", BtfKind.STRUCT)
    assert common is not None
    buf = view.buf
    for member, value in (("skc_family", facts.family), ("skc_state", facts.state),
                          ("skc_rcv_saddr", int.from_bytes(buf[24:28], "little")),
                          ("skc_daddr", int.from_bytes(buf[52:56], "little")),
                          ("skc_dport", int.from_bytes(buf[48:50], "little")),
                          ("skc_num", int.from_bytes(buf[44:46], "little"))):
        off = btf.offsetof(common.id, member)
        size = btf.sizeof(btf.member(common.id, member).type)
        obj.region.buf[off:off + size] = value.to_bytes(size, "little")
    sock = _VIEWS.get(view)
    tcp = _leading_path(struct, "tcp_sock")
    if sock is not None and tcp is not None:
        for member in _TCP_SOCK_FIELDS:
            if hasattr(sock, member):
                obj[tcp + member] = getattr(sock, member)
    _VIEW_OBJECTS[view] = obj
    obj.free()  # unmapped with the view, once the running program is done
    return obj


def _cast(cast: SkcCast) -> Callable[..., int]:
    def impl(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        found = sock_facts_at(vm, r1) if r1 else None
        if found is None:
            return 0
        region, facts = found
        if not cast.test(facts):
            return 0
        if region.kind == "kernel":
            return region.base if _begins_with(region.name, cast.struct) else 0
        obj = _view_object(runtime_of(vm, cast.name), region, facts)
        return obj.addr if _begins_with(obj.struct_name, cast.struct) else 0

    impl.__name__ = cast.name
    impl.__doc__ = f"bpf_{cast.name}: the socket as a struct {cast.struct}, or NULL."
    return impl


for _cast_def in SKC_CASTS:
    register_helper(
        _cast_def.func_id, _cast_def.name,
        Proto(RetType.RET_PTR_TO_BTF_ID_OR_NULL, (_cast_def.arg,), ret_btf_id=_cast_def.struct),
        prog_types=TRACING_PROG_TYPES, perfmon_types=SK_BASE_TYPES)(_cast(_cast_def))
