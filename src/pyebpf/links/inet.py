"""Simulated TCP and UDP sockets: connected pairs a test drives from Python.

An :class:`InetSocket` is an IP socket (a :class:`~.sock.Socket` of kind
``"inet"``) with the parts of ``struct sock`` BPF sees: family, type,
protocol, state, local/remote address and port (``struct bpf_sock``,
``sk_msg_md``, ``__sk_buff`` read them), the socket cookie, and two queues:
the receive queue (``sk_receive_queue``) and, once the socket is in a socket
map, its sk_psock's ingress queue (see :mod:`.sockmap`).

:func:`socket_pair` makes an established pair (a connect() to a listener and
the accept()ed peer, or two connected UDP sockets), the way tests make
sockets for sockmap: ``a, b = socket_pair(rt)``; ``a.send(b"hi")``;
``b.recv()``. There are no packets on a wire: bytes a socket transmits land
on its peer's receive path, where a stream parser/verdict program may take
them (``tcp_data_queue`` -> ``sk_data_ready``). A socket filter set on an
InetSocket is kept but not run on this path (no IP/TCP headers are built).

:meth:`InetSocket.open` gives an fd, which MAP_UPDATE_ELEM on a SOCKMAP or
SOCKHASH takes as its value. Sends and receives raise
:class:`~pyebpf.errors.BpfError` (an OSError) with the errno send(2)/recv(2)
would set; a receive with nothing queued returns ``b""`` (a non-blocking
recv's EAGAIN).
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import weakref
from typing import Any

from ..errors import BpfError
from ..memory import Perm, Region
from ..progs.skb import BPF_SOCK_SIZE, Sock
from ..progs.sock_ops import TcpSock
from ..runtime import Runtime
from .sock import Socket

__all__ = ["AF_INET", "AF_INET6", "CONNECT_SOCK_OPS", "IPPROTO_TCP", "IPPROTO_UDP",
           "InetSocket", "SockOpsCb", "TcpState", "inet_socket_of", "socket_pair"]

AF_INET, AF_INET6 = 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
IPPROTO_TCP, IPPROTO_UDP = 6, 17
#: ::ffff:0:0/96, the prefix of an IPv4 address seen as IPv6 (ipv6_addr_set_v4mapped).
V4_MAPPED = bytes(10) + b"\xff\xff"
#: The IPv4 address an IPv6 socket shows in its IPv4 fields (127.0.0.6).
LOOPBACK4_IPV6 = bytes([127, 0, 0, 6])
#: The first ephemeral port handed out (net.ipv4.ip_local_port_range's low end).
EPHEMERAL_PORT_BASE = 32768


class SockOpsCb(enum.IntEnum):
    """The BPF_SOCK_OPS_* callbacks a connection's life calls."""

    TIMEOUT_INIT = 1
    RWND_INIT = 2
    TCP_CONNECT_CB = 3
    ACTIVE_ESTABLISHED_CB = 4
    PASSIVE_ESTABLISHED_CB = 5
    NEEDS_ECN = 6
    TCP_LISTEN_CB = 11


class TcpState(enum.IntEnum):
    """The kernel's TCP_* socket states (UDP uses ESTABLISHED and CLOSE too)."""

    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11
    NEW_SYN_RECV = 12


#: proto name -> (sk_type, sk_protocol).
PROTOCOLS = {"tcp": (SOCK_STREAM, IPPROTO_TCP), "udp": (SOCK_DGRAM, IPPROTO_UDP)}


def _addr_bytes(family: int, addr: str | bytes) -> bytes:
    if isinstance(addr, bytes):
        want = 4 if family == AF_INET else 16
        if len(addr) != want:
            raise ValueError(f"an address of family {family} has {want} bytes")
        return addr
    ip = ipaddress.ip_address(addr)
    if (ip.version == 4) != (family == AF_INET):
        raise ValueError(f"{addr} is not an address of family {family}")
    return ip.packed


#: id(struct sock record) -> the InetSocket owning it (the record lives as long as it).
_OWNERS: weakref.WeakValueDictionary[int, InetSocket] = weakref.WeakValueDictionary()


def inet_socket_of(sock: Any) -> InetSocket | None:
    """The InetSocket whose ``struct sock`` record ``sock`` is (a sock_ops ctx's
    ``sk``), or None for a socket made without one (run_sock_ops' default)."""
    owner = _OWNERS.get(id(sock))
    return owner if owner is not None and owner.sock is sock else None


def _next_port(rt: Runtime) -> int:
    state = rt.hooks.setdefault("inet", {"next_port": EPHEMERAL_PORT_BASE})
    port = int(state["next_port"])
    state["next_port"] = port + 1
    return port


class InetSocket(Socket):
    """An AF_INET/AF_INET6 TCP or UDP socket.

    ``psock`` is the socket's ``struct sk_psock`` while it sits in a socket
    map (:class:`~.sockmap.Psock`); it decides what send() and the arrival of
    data do (tcp_bpf's proto: the SK_MSG verdict on send, the SK_SKB
    parser/verdict on receive) and holds the ingress queue recv() reads.
    """

    def __init__(self, rt: Runtime, proto: str = "tcp", *, family: int = AF_INET,
                 cgroup: Any = None) -> None:
        if proto not in PROTOCOLS:
            raise ValueError("proto is 'tcp' or 'udp'")
        if family not in (AF_INET, AF_INET6):
            raise ValueError("family is AF_INET or AF_INET6")
        super().__init__(rt, "inet")
        self.proto = proto
        stype, protocol = PROTOCOLS[proto]
        #: The struct sock fields BPF reads (shared with the skb ctx: skb->sk); a
        #: TCP socket's is the TcpSock sock_ops programs run on (run_sock_ops).
        sock_cls = TcpSock if proto == "tcp" else Sock
        self.sock = sock_cls(family=family, type=stype, protocol=protocol,
                             state=TcpState.CLOSE)
        _OWNERS[id(self.sock)] = self
        #: The connected peer (where transmitted bytes arrive).
        self.peer: InetSocket | None = None
        #: sk_receive_queue: what arrived and no BPF program took (bytes per skb).
        self.rx: list[bytes] = []
        #: struct sk_psock while the socket is in a socket map.
        self.psock: Any = None
        #: sk->sk_err: a stream parser's error (read and cleared by :meth:`so_error`).
        self.err = 0
        self.closed = False
        #: The cgroup the socket belongs to (sk_cgrp_data, a pyebpf.links.Cgroup):
        #: its SOCK_OPS programs see a TCP socket's life (:meth:`sock_ops`).
        self.cgroup = cgroup
        self._sk_region: Region | None = None

    def __repr__(self) -> str:
        return (f"<InetSocket {self.proto} {self.local} -> {self.remote} "
                f"{TcpState(self.state).name}>")

    # -- identity ------------------------------------------------------------------------------
    @property
    def family(self) -> int:
        return self.sock.family

    @property
    def protocol(self) -> int:
        return self.sock.protocol

    @property
    def is_tcp(self) -> bool:
        return self.proto == "tcp"

    @property
    def state(self) -> int:
        return self.sock.state

    @state.setter
    def state(self, value: int) -> None:
        self.sock.state = int(value)
        self._refresh()

    def _addrs(self, local: bool) -> tuple[str, int]:
        s = self.sock
        raw = (s.rcv_saddr if local else s.daddr) if s.family == AF_INET else \
            (s.v6_rcv_saddr if local else s.v6_daddr)
        return str(ipaddress.ip_address(bytes(raw))), (s.num if local else s.dport)

    @property
    def local(self) -> tuple[str, int]:
        """(address, port) the socket is bound to."""
        return self._addrs(True)

    @property
    def remote(self) -> tuple[str, int]:
        """(address, port) of the peer (zeros when not connected)."""
        return self._addrs(False)

    def bind(self, addr: str | bytes, port: int = 0) -> None:
        """bind(): the local address and port (0: an ephemeral one). An IPv4
        socket's IPv6 view is the v4-mapped address (sk_rcv_saddr_set); an IPv6
        socket's IPv4 view is LOOPBACK4_IPV6, 127.0.0.6 (inet6_bind)."""
        s = self.sock
        raw = _addr_bytes(s.family, addr)
        if s.family == AF_INET:
            s.rcv_saddr, s.v6_rcv_saddr = raw, V4_MAPPED + raw
        else:
            s.v6_rcv_saddr = raw
            s.rcv_saddr = raw[12:] if raw.startswith(V4_MAPPED) else LOOPBACK4_IPV6
        s.num = port or _next_port(self.runtime)
        self._refresh()

    def _set_remote(self, addr: bytes, port: int, *, accepted: bool) -> None:
        """The peer's address: sk_daddr_set for IPv4; for IPv6 the IPv4 view is
        LOOPBACK4_IPV6 on an accept()ed socket (tcp_v6_syn_recv_sock) and stays 0
        on a connect()ed one."""
        s = self.sock
        if s.family == AF_INET:
            s.daddr, s.v6_daddr = addr, V4_MAPPED + addr
        else:
            s.v6_daddr = addr
            s.daddr = LOOPBACK4_IPV6 if accepted else bytes(4)
        s.dport = port
        self._refresh()

    def listen(self) -> None:
        """listen(): a TCP socket goes to TCP_LISTEN (what a sockmap also accepts),
        and its cgroup's sock_ops programs get BPF_SOCK_OPS_TCP_LISTEN_CB."""
        if not self.is_tcp:
            raise BpfError(errno.EOPNOTSUPP, "only TCP sockets listen")
        if not self.sock.num:
            self.bind("127.0.0.1" if self.family == AF_INET else "::1")
        self.state = TcpState.LISTEN
        self.sock_ops(SockOpsCb.TCP_LISTEN_CB)

    def sock_ops(self, op: int, state: int | None = None) -> None:
        """BPF_CGROUP_RUN_PROG_SOCK_OPS: the socket's cgroup's effective SOCK_OPS
        programs for callback ``op`` (in TCP state ``state`` if given; the
        socket stays in it)."""
        if self.cgroup is None or not self.is_tcp:
            return
        from ..progs.sock_ops import run_sock_ops
        from ..uapi import AttachType

        if state is not None:
            self.state = state
        for prog in self.cgroup.effective(AttachType.CGROUP_SOCK_OPS):
            run_sock_ops(self.runtime, prog, op, sk=self.sock)

    def cookie(self) -> int:
        """The socket cookie (sock_gen_cookie: handed out on first use)."""
        if not self.sock.cookie:
            self.runtime.last_socket_cookie += 1
            self.sock.cookie = self.runtime.last_socket_cookie
        return self.sock.cookie

    # -- the struct bpf_sock a PTR_TO_SOCKET points at -----------------------------------------
    @property
    def sk_addr(self) -> int:
        """Where the socket's ``struct bpf_sock`` view is mapped (what a sockmap
        lookup or ``sk_msg_md->sk`` yields), mapped on first use."""
        if self._sk_region is None:
            from ..helpers.skc import note_sock_view

            self._sk_region = self.runtime.memory.map(bytearray(self.sock.bpf_sock()),
                                                      kind="sock", name="sk", perms=Perm.R)
            note_sock_view(self._sk_region, self.sock)  # bpf_tcp_sock's fields, the casts'
        return self._sk_region.base

    def _refresh(self) -> None:
        if self._sk_region is not None:
            self._sk_region.buf[:BPF_SOCK_SIZE] = self.sock.bpf_sock()

    # -- data ----------------------------------------------------------------------------------
    def send(self, data: bytes) -> int:  # type: ignore[override]
        """send(): the bytes accepted. Through an SK_MSG verdict when the socket's
        sk_psock has one (tcp_bpf_sendmsg); an SK_DROP verdict is EACCES."""
        data = bytes(data)
        if self.closed:
            raise BpfError(errno.EBADF, "the socket is closed")
        if self.is_tcp and self.state not in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
            raise BpfError(errno.EPIPE, "the TCP socket is not connected")
        if not self.is_tcp and self.peer is None:
            raise BpfError(errno.EDESTADDRREQ, "the UDP socket is not connected")
        psock = self.psock
        if psock is not None and psock.tx and self.is_tcp:
            return int(psock.sendmsg(data))
        self.transmit(data)
        return len(data)

    def transmit(self, data: bytes) -> None:
        """The bytes leave the socket (tcp_push / udp_send_skb) and arrive at the peer."""
        peer = self.peer
        if peer is None or peer.closed or not data:
            return  # the peer is gone: the data is lost (a RST on a real wire)
        peer.data_ready(bytes(data))

    def data_ready(self, data: bytes) -> None:
        """Bytes arrived (one skb): a parser/verdict program takes them, else they
        wait in the receive queue."""
        psock = self.psock
        if psock is not None and psock.rx_mode is not None:
            psock.data_ready(data)
            return
        self.rx.append(data)

    def recv(self, bufsize: int = 65536) -> bytes:
        """recv(MSG_DONTWAIT): up to ``bufsize`` bytes (one datagram for UDP);
        ``b""`` when nothing is queued. In a socket map the sk_psock's ingress
        queue is read as tcp_bpf_recvmsg / udp_bpf_recvmsg do: as a byte
        stream, across messages (and datagrams)."""
        psock = self.psock
        if psock is None:
            return self._read(self.rx, bufsize, self.is_tcp)
        if psock.rx_mode is None and self.rx and not psock.ingress_msg:
            return self._read(self.rx, bufsize, self.is_tcp)
        # sk_msg_recvmsg: across queued messages, for UDP too
        return self._read(psock.ingress_msg, bufsize, True)

    @staticmethod
    def _read(queue: list[bytes], bufsize: int, stream: bool) -> bytes:
        if not queue:
            return b""
        if not stream:
            return queue.pop(0)[:bufsize]
        out = bytearray()
        while queue and len(out) < bufsize:
            chunk = queue[0]
            take = chunk[:bufsize - len(out)]
            out += take
            if len(take) == len(chunk):
                queue.pop(0)
            else:
                queue[0] = chunk[len(take):]
        return bytes(out)

    def so_error(self) -> int:
        """getsockopt(SO_ERROR): the pending error, cleared by reading it. A sockmap
        socket's recv() doesn't report it (tcp_bpf_recvmsg_parser says EAGAIN)."""
        err, self.err = self.err, 0
        return err

    def close(self) -> None:
        """close(): out of every socket map (sock_map_close), the peer sees the
        connection go (CLOSE_WAIT), the filter reference goes."""
        if self.closed:
            return
        self.closed = True
        if self.psock is not None:
            self.psock.sock_close()
        peer = self.peer
        if peer is not None and peer.state == TcpState.ESTABLISHED and self.is_tcp:
            peer.state = TcpState.CLOSE_WAIT
        self.state = TcpState.CLOSE
        if self._sk_region is not None:
            self.runtime.unmap_later(self._sk_region)
            self._sk_region = None
        super().close()


#: The sock_ops callbacks of a loopback connect, in the order Linux 6.18 calls
#: them: (side, callback, the TCP state it sees). "listener" is the listening
#: socket, "request" the server's request sock, "client"/"server" the two ends.
CONNECT_SOCK_OPS: tuple[tuple[str, SockOpsCb, TcpState], ...] = (
    ("listener", SockOpsCb.TCP_LISTEN_CB, TcpState.LISTEN),
    ("client", SockOpsCb.TCP_CONNECT_CB, TcpState.SYN_SENT),
    ("client", SockOpsCb.RWND_INIT, TcpState.SYN_SENT),
    ("client", SockOpsCb.TIMEOUT_INIT, TcpState.SYN_SENT),
    ("client", SockOpsCb.NEEDS_ECN, TcpState.SYN_SENT),
    ("request", SockOpsCb.RWND_INIT, TcpState.NEW_SYN_RECV),
    ("request", SockOpsCb.TIMEOUT_INIT, TcpState.NEW_SYN_RECV),
    ("request", SockOpsCb.NEEDS_ECN, TcpState.NEW_SYN_RECV),
    ("client", SockOpsCb.ACTIVE_ESTABLISHED_CB, TcpState.ESTABLISHED),
    ("server", SockOpsCb.PASSIVE_ESTABLISHED_CB, TcpState.SYN_RECV),
)


def socket_pair(rt: Runtime, proto: str = "tcp", *, family: int = AF_INET,
                client: str | None = None, server: str | None = None,
                server_port: int = 0, cgroup: Any = None) -> tuple[InetSocket, InetSocket]:
    """A connected pair (``client``, ``server``): for TCP, a connect() to a
    listener on ``server``:``server_port`` and the socket accept() returned,
    both ESTABLISHED; for UDP two sockets connect()ed to each other. Addresses
    default to the loopback of the family; ports are ephemeral unless given.

    With ``cgroup`` (a pyebpf.links.Cgroup) the sockets belong to it and a TCP
    connect calls its SOCK_OPS programs as :data:`CONNECT_SOCK_OPS` lists (the
    listener is closed once the pair is made; the request sock's callbacks see
    the server socket in TCP_NEW_SYN_RECV)."""
    loop = "127.0.0.1" if family == AF_INET else "::1"
    a = InetSocket(rt, proto, family=family, cgroup=cgroup)
    b = InetSocket(rt, proto, family=family, cgroup=cgroup)
    b.bind(server or loop, server_port)
    a.bind(client or loop)
    for x, y in ((a, b), (b, a)):
        s = y.sock
        x._set_remote(bytes(s.rcv_saddr if family == AF_INET else s.v6_rcv_saddr), s.num,
                      accepted=x is b)
        x.peer = y
    if cgroup is not None and proto == "tcp":
        listener = InetSocket(rt, proto, family=family, cgroup=cgroup)
        listener.bind(server or loop, b.sock.num)
        sides = {"listener": listener, "client": a, "request": b, "server": b}
        for side, op, state in CONNECT_SOCK_OPS:
            sides[side].sock_ops(op, state)
        listener.close()
    a.state = b.state = TcpState.ESTABLISHED
    return a, b
