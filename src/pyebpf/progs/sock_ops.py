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

from typing import TYPE_CHECKING

import attrs

from ..memory import Perm
from .ctx import map_ctx
from .skb import AF_INET, Sock
from .sock import BPF_SOCK_OPS

if TYPE_CHECKING:
    from ..prog import BpfProg
    from ..runtime import Runtime

__all__ = ["BPF_SOCK_OPS_WRITE_HDR_OPT_CB", "SockOpsKern", "TcpSock", "run_sock_ops"]

#: The last op called with the socket locked (is_locked_tcp_sock_ops).
BPF_SOCK_OPS_WRITE_HDR_OPT_CB = 15
TCP_ESTABLISHED = 1


@attrs.define(eq=False)
class TcpSock(Sock):
    """A TCP socket: :class:`~.skb.Sock` plus the options bpf_setsockopt sets."""

    type: int = 1  # SOCK_STREAM
    protocol: int = 6  # IPPROTO_TCP
    state: int = TCP_ESTABLISHED
    family: int = AF_INET
    #: (level, optname) -> value, for every option a program (or test) set.
    sockopts: dict[tuple[int, int], int | bytes] = attrs.Factory(dict)
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
        # socket's; the ones a model socket doesn't keep read as 0.
        if name.startswith("__") or name == "sock":
            raise AttributeError(name)
        return getattr(self.sock, name, 0)

    @property
    def sk(self) -> int:
        """The ``sk`` ctx field: the socket's address."""
        return self.sk_addr

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
        return 1

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
