"""Running SOCK_OPS programs: the kernel's ``struct bpf_sock_ops_kern`` and a
TCP socket for them to act on.

The kernel calls a cgroup's sock_ops program at points of a TCP connection's
life (``op``: BPF_SOCK_OPS_TCP_CONNECT_CB, ..._ACTIVE_ESTABLISHED_CB,
..._RTO_CB ...) with the socket locked; the program reads the connection's
state through ``struct bpf_sock_ops``, answers in ``reply`` and may set
socket options (bpf_setsockopt) or ask for more callbacks
(bpf_sock_ops_cb_flags_set). There is no BPF_PROG_TEST_RUN for it, so
:func:`run_sock_ops` is how a test fires one: it maps a :class:`SockOpsKern`
as the ctx and returns the program's result and the ctx after the run.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import attrs

from ..memory import Perm, Region
from .access import layout
from .ctx import CtxDevice, map_ctx
from .skb import AF_INET, Sock
from .sock import BPF_SOCK_OPS

if TYPE_CHECKING:
    from ..prog import BpfProg
    from ..runtime import Runtime

__all__ = ["BPF_SOCK_OPS_WRITE_HDR_OPT_CB", "BPF_TCP_SOCK", "SockOpsKern", "TcpSock",
           "map_tcp_sock", "run_sock_ops", "sock_view_of_tcp_sock"]

#: The last op called with the socket locked (is_locked_tcp_sock_ops).
BPF_SOCK_OPS_WRITE_HDR_OPT_CB = 15
TCP_ESTABLISHED = 1
#: The states of a socket that is not a full socket (sk_fullsock): the
#: timewait and request mini-sockets.
TCP_TIME_WAIT, TCP_NEW_SYN_RECV = 6, 12

#: ``struct bpf_tcp_sock``: the tcp_sock fields a PTR_TO_TCP_SOCK reads
#: (bpf_tcp_sock_convert_ctx_access), all read-only; the verifier's
#: bpf_tcp_sock_is_valid_access (verifier.mem) allows whole-field loads only.
BPF_TCP_SOCK = layout("bpf_tcp_sock", [
    ("snd_cwnd", 4), ("srtt_us", 4), ("rtt_min", 4), ("snd_ssthresh", 4), ("rcv_nxt", 4),
    ("snd_nxt", 4), ("snd_una", 4), ("mss_cache", 4), ("ecn_flags", 4),
    ("rate_delivered", 4), ("rate_interval_us", 4), ("packets_out", 4), ("retrans_out", 4),
    ("total_retrans", 4), ("segs_in", 4), ("data_segs_in", 4), ("segs_out", 4),
    ("data_segs_out", 4), ("lost_out", 4), ("sacked_out", 4), ("bytes_received", 8),
    ("bytes_acked", 8), ("dsack_dups", 4), ("delivered", 4), ("delivered_ce", 4),
    ("icsk_retransmits", 4),
])


@attrs.define(eq=False)
class TcpSock(Sock):
    """A TCP socket: :class:`~.skb.Sock` plus the tcp_sock state programs read."""

    type: int = 1  # SOCK_STREAM
    protocol: int = 6  # IPPROTO_TCP
    state: int = TCP_ESTABLISHED
    family: int = AF_INET
    #: tcp_sk(sk)->bpf_sock_ops_cb_flags: the extra callbacks asked for.
    bpf_sock_ops_cb_flags: int = 0
    snd_cwnd: int = 10
    srtt_us: int = 0
    mss_cache: int = 536


@attrs.define(eq=False)
class SockOpsKern:
    """``struct bpf_sock_ops_kern``: what one sock_ops call sees (the ctx fields
    are read from here, by their uapi names)."""

    sock: TcpSock
    op: int
    #: args[0..3]; ``reply`` is args[0] (they share memory in the kernel's union).
    args: list[int] = attrs.Factory(lambda: [0, 0, 0, 0])
    sk_txhash: int = 0
    #: Where the socket is mapped for the program (its struct bpf_sock view).
    sk_addr: int = 0
    #: The TCP segment of a header-option callback (bpf_sock_ops_kern.skb), from
    #: its TCP header on (pyebpf.helpers.hdr_opt); None in the other callbacks.
    skb: bytearray | None = None
    #: skb_data_end - skb->data: the bytes of ``skb`` the program sees.
    skb_end: int = 0
    #: Payload bytes after the header (skb->len counts them).
    skb_payload_len: int = 0
    #: Option space left to reserve (HDR_OPT_LEN_CB) or to write (WRITE_HDR_OPT_CB).
    remaining_opt_len: int = 0
    #: The SYN's TCP header, options included (syn_skb, or the saved SYN), for
    #: bpf_load_hdr_opt(BPF_LOAD_HDR_OPT_TCP_SYN); None: there is none (ENOENT).
    syn: bytes | None = None
    #: Where ``skb`` is mapped for the program.
    skb_addr: int = 0

    def __getattr__(self, name: str) -> int:
        # The remaining ctx fields (snd_cwnd, srtt_us, state ...) are the
        # socket's; the ones a model socket doesn't keep read as 0, and so do
        # the tcp_sock ones without a full socket (SOCK_OPS_GET_FIELD).
        if name.startswith("__") or name == "sock":
            raise AttributeError(name)
        if name in _TCP_SOCK_CTX_FIELDS and not self.is_fullsock:
            return 0
        return getattr(self.sock, name, 0)

    @property
    def sk(self) -> int:
        """The ``sk`` ctx field: the socket's address, NULL when the socket is not
        a full one (SOCK_OPS_GET_SK tests is_fullsock first)."""
        return self.sk_addr if self.is_fullsock else 0

    @property
    def reply(self) -> int:
        return self.args[0]

    @reply.setter
    def reply(self, value: int) -> None:
        self.args[0] = value & 0xFFFF_FFFF

    @property
    def args1(self) -> int:
        return self.args[1]

    @property
    def args2(self) -> int:
        return self.args[2]

    @property
    def args3(self) -> int:
        return self.args[3]

    @property
    def is_fullsock(self) -> int:
        """0 for the request sock's callbacks (RWND_INIT, TIMEOUT_INIT ... in
        TCP_NEW_SYN_RECV): tcp_call_bpf sets it only for a full socket."""
        return int(self.sock.state not in (TCP_TIME_WAIT, TCP_NEW_SYN_RECV))

    @property
    def skb_data(self) -> int:
        return self.skb_addr if self.skb is not None else 0

    @property
    def skb_data_end(self) -> int:
        return self.skb_addr + self.skb_end if self.skb is not None else 0

    @property
    def skb_len(self) -> int:
        return len(self.skb) + self.skb_payload_len if self.skb is not None else 0

    @property
    def skb_tcp_flags(self) -> int:
        return self.skb[13] if self.skb is not None and len(self.skb) > 13 else 0

    @property
    def remote_ip4(self) -> int:
        return int.from_bytes(self.sock.daddr, "little")

    @property
    def local_ip4(self) -> int:
        return int.from_bytes(self.sock.rcv_saddr, "little")

    @property
    def remote_ip6(self) -> bytes:
        return self.sock.v6_daddr

    @property
    def local_ip6(self) -> bytes:
        return self.sock.v6_rcv_saddr

    @property
    def remote_port(self) -> int:
        # skc_dport (__be16) loaded, then shifted up 16 as sock_ops_convert_ctx_access
        # does on little endian: bpf_ntohl() of it is the port (checked on 6.18).
        return (int.from_bytes(self.sock.dport.to_bytes(2, "big"), "little") << 16) \
            & 0xFFFF_FFFF

    @property
    def local_port(self) -> int:
        return self.sock.num


#: The bpf_sock_ops fields read from the tcp_sock, only of a full socket
#: (sock_ops_convert_ctx_access's SOCK_OPS_GET_FIELD: 0 when !is_fullsock).
_TCP_SOCK_CTX_FIELDS = frozenset({
    "snd_cwnd", "srtt_us", "bpf_sock_ops_cb_flags", "rtt_min", "snd_ssthresh", "rcv_nxt",
    "snd_nxt", "snd_una", "mss_cache", "ecn_flags", "rate_delivered", "rate_interval_us",
    "packets_out", "retrans_out", "total_retrans", "segs_in", "data_segs_in", "segs_out",
    "data_segs_out", "lost_out", "sacked_out", "bytes_received", "bytes_acked"})


class _TcpSockFields:
    """A socket's tcp_sock fields, read live: the ones a model socket doesn't keep
    (rtt_min, segs_in ...) read as 0."""

    def __init__(self, sock: object) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> int:
        if name.startswith("_"):
            raise AttributeError(name)
        return int(getattr(self._sock, name, 0))


#: A socket's struct bpf_sock view -> its struct bpf_tcp_sock view, and back.
_TCP_VIEWS: weakref.WeakKeyDictionary[Region, Region] = weakref.WeakKeyDictionary()
_SOCK_VIEWS: weakref.WeakKeyDictionary[Region, Region] = weakref.WeakKeyDictionary()


def map_tcp_sock(rt: Runtime, sk_view: Region, sock: object) -> int:
    """The address of the ``struct bpf_tcp_sock`` view of the socket whose
    struct bpf_sock view is ``sk_view`` (what bpf_tcp_sock returns), mapped on
    first use. The kernel returns the socket pointer itself; pyebpf's socket
    pointers point at a struct bpf_sock view, so the tcp_sock view is a region
    of its own, answering loads from ``sock`` (the model, None: fields read 0)
    as they happen. It is unmapped once the running program ends, as the
    socket objects the casts make are."""
    region = _TCP_VIEWS.get(sk_view)
    if region is not None and rt.memory.region_at(region.base) is region:
        return region.base
    region = rt.memory.map_device(CtxDevice(BPF_TCP_SOCK, _TcpSockFields(sock)),
                                  BPF_TCP_SOCK.size, kind="tcp_sock", name="tcp_sock")
    _TCP_VIEWS[sk_view] = region
    _SOCK_VIEWS[region] = sk_view
    rt.unmap_later(region)
    return region.base


def sock_view_of_tcp_sock(region: Region) -> Region | None:
    """The struct bpf_sock view of the socket a tcp_sock view shows, or None."""
    return _SOCK_VIEWS.get(region)


def run_sock_ops(rt: Runtime, prog: BpfProg, op: int, sk: TcpSock | None = None,
                 args: tuple[int, int, int, int] = (0, 0, 0, 0), *,
                 kern: SockOpsKern | None = None) -> tuple[int, SockOpsKern]:
    """Call a SOCK_OPS program for ``op`` on ``sk`` (a fresh established TCP
    socket by default); (its return value, the ctx after the call: ``reply``,
    and ``sock`` with the options it set). A prepared ``kern`` (a header-option
    callback's, with its segment) is used as it is."""
    from ..helpers.skc import note_sock_view

    if kern is None:
        kern = SockOpsKern(sock=sk if sk is not None else TcpSock(), op=op, args=list(args))
    skb_region = None
    if kern.skb is not None:
        skb_region = rt.memory.map(kern.skb, kind="packet", name="skb", perms=Perm.R)
        kern.skb_addr = skb_region.base
    sk_region = rt.memory.map(bytearray(kern.sock.bpf_sock()), kind="sock", name="sk",
                              perms=Perm.R)
    note_sock_view(sk_region, kern.sock)  # what bpf_skc_to_tcp_sock(skops->sk) finds
    kern.sk_addr = sk_region.base
    ctx_region = map_ctx(rt.memory, BPF_SOCK_OPS, kern)
    try:
        retval = prog.run(ctx_region.base) & 0xFFFF_FFFF
    finally:
        rt.memory.unmap(ctx_region)
        rt.unmap_later(sk_region)
        if skb_region is not None:
            rt.unmap_later(skb_region)
    return retval, kern
