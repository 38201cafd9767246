"""Socket map hooks: SK_MSG and SK_SKB programs on the sockets of a SOCKMAP or
SOCKHASH (net/core/sock_map.c, net/core/skmsg.c, net/ipv4/tcp_bpf.c, Linux 6.18).

Programs attach to a *map* (BPF_PROG_ATTACH with the map fd as target_fd, or a
BPF_LINK_TYPE_SOCKMAP link): BPF_SK_MSG_VERDICT (the map's ``msg_parser``),
BPF_SK_SKB_STREAM_PARSER, BPF_SK_SKB_STREAM_VERDICT and BPF_SK_SKB_VERDICT.
A socket inserted into the map afterwards gets an :class:`Psock` (``struct
sk_psock``) holding its own references to the map's programs *as they are at
insertion* (sock_map_link); a program attached later does not reach sockets
already in the map, as on the kernel. Rules (sock_map_prog_update and
friends): a stream verdict and an skb verdict exclude each other on a map
(EBUSY); a program slot held by a link refuses PROG_ATTACH/DETACH and other
links (EBUSY); PROG_ATTACH replaces a program silently; PROG_DETACH of a
program not in the slot is ENOENT; a map of another type is EOPNOTSUPP
(EINVAL for LINK_CREATE). A socket already carrying a program of a kind the
map also has is EBUSY to insert (even into the same map).

What runs (with the socket's psock):

- send() on a TCP socket whose psock has an SK_MSG program: tcp_bpf_sendmsg.
  Each send is one ``struct sk_msg`` (its bytes one scatterlist element, so
  ``data``/``data_end`` cover the message; bpf_msg_push_data/pop_data split
  it. The kernel's elements are page fragments of up to 32 KiB, so on a large
  send its data_end may stop short of the end, and a send larger than
  MAX_MSG_FRAGS fragments runs the program once per part; not modelled).
  The verdict: SK_PASS transmits to the peer; SK_DROP fails the send with
  EACCES (or returns the bytes already sent), and sticks: later sends drop
  without running the program, as tcp_bpf leaves ``psock->eval``; a redirect
  (bpf_msg_redirect_map/hash) delivers to the target socket's ingress queue
  (BPF_F_INGRESS: read by recv() on the target) or out of the target to
  *its* peer. bpf_msg_apply_bytes makes the verdict cover that many bytes
  (the program runs again for the rest); bpf_msg_cork_bytes holds the data
  back until that many bytes have been sent, then runs the program on them.
- Bytes arriving at a socket whose psock has a stream verdict or skb verdict
  program: without a parser each arrival (skb) is a message; with a stream
  parser (and a stream verdict) the parser's return says the length of the
  next message (0 or more than there is: wait for more; negative: the
  socket's error). The verdict program sees ``__sk_buff`` over the message
  (a TCP payload paged, as loopback delivers it: bpf_skb_pull_data before
  direct reads):
  SK_PASS queues it on the socket's own ingress queue, a redirect
  (bpf_sk_redirect_map/hash) to the target's ingress queue or out of it,
  SK_DROP discards it. A parser error stops the parser and becomes the
  socket's SO_ERROR; recv() then says nothing more (EAGAIN), as on 6.18.

The kernel defers skb redirects to a workqueue; here everything happens
synchronously, before send() returns.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ..errors import BpfError
from ..memory import PAGE_SHIFT, Region
from ..prog import BpfProg
from ..progs.ctx import CtxDevice
from ..progs.sock import SK_MSG_MD
from ..runtime import Runtime
from ..syscall import _map_from_fd
from ..uapi import AttachType, LinkType, MapType, ProgType
from .base import (
    BpfLink,
    ProgQueryResult,
    deliver_query,
    prog_get,
    register_link_kind,
    register_prog_attach,
    register_prog_query,
)
from .inet import InetSocket, TcpState

if TYPE_CHECKING:
    from ..attr import LinkCreateAttr, ProgAttachAttr, ProgQueryAttr
    from ..progs.skb import SkBuff

__all__ = ["PROG_SLOTS", "Psock", "PsockProgs", "SkMsg", "SockMapLink", "msg_from_ctx",
           "sock_map_prog_update", "skb_set_redirect"]

A = AttachType
SK_DROP, SK_PASS = 0, 1
BPF_F_INGRESS = 1
#: MAX_MSG_FRAGS (MAX_SKB_FRAGS): scatterlist elements an sk_msg may use.
MAX_MSG_FRAGS = 17


class SkAction(enum.IntEnum):
    """enum __sk_action: what a verdict becomes (sk_psock_map_verd)."""

    DROP = 0
    PASS = 1
    REDIRECT = 2
    NONE = 3


#: attach type -> the struct sk_psock_progs member it sets.
PROG_SLOTS: dict[int, str] = {
    A.SK_MSG_VERDICT: "msg_parser",
    A.SK_SKB_STREAM_PARSER: "stream_parser",
    A.SK_SKB_STREAM_VERDICT: "stream_verdict",
    A.SK_SKB_VERDICT: "skb_verdict",
}


@attrs.define
class PsockProgs:
    """struct sk_psock_progs: the four programs, and the links holding them (a map's)."""

    msg_parser: BpfProg | None = None
    stream_parser: BpfProg | None = None
    stream_verdict: BpfProg | None = None
    skb_verdict: BpfProg | None = None
    links: dict[str, BpfLink] = attrs.Factory(dict)

    def get(self, slot: str) -> BpfProg | None:
        return getattr(self, slot)  # type: ignore[no-any-return]

    def set(self, slot: str, prog: BpfProg | None) -> None:
        """psock_set_prog: the slot holds a reference on its program."""
        if prog is not None:
            prog.hold()
        old = self.get(slot)
        setattr(self, slot, prog)
        if old is not None:
            old.release()

    def drop(self) -> None:
        """psock_progs_drop."""
        for slot in PROG_SLOTS.values():
            self.set(slot, None)
        self.links.clear()


def _map_progs(m: Any) -> PsockProgs:
    """sock_map_progs: only socket maps have programs (EOPNOTSUPP)."""
    progs = getattr(m, "progs", None)
    if not isinstance(progs, PsockProgs):
        raise BpfError(errno.EOPNOTSUPP, f"a {m.map_type.name} map takes no sk_msg/sk_skb "
                       "programs")
    return progs


def sock_map_prog_link_lookup(m: Any, which: int) -> tuple[PsockProgs, str]:
    """sock_map_prog_link_lookup: the slot ``which`` names (EOPNOTSUPP for other
    attach types; EBUSY when a stream verdict meets an skb verdict)."""
    progs = _map_progs(m)
    slot = PROG_SLOTS.get(which)
    if slot is None:
        raise BpfError(errno.EOPNOTSUPP, f"attach_type {which} is no socket map hook")
    if slot == "stream_verdict" and progs.skb_verdict is not None:
        raise BpfError(errno.EBUSY, "the map has an skb verdict program")
    if slot == "skb_verdict" and progs.stream_verdict is not None:
        raise BpfError(errno.EBUSY, "the map has a stream verdict program")
    return progs, slot


def sock_map_prog_update(m: Any, prog: BpfProg | None, old: BpfProg | None,
                         link: BpfLink | None, which: int) -> None:
    """sock_map_prog_update: prog_attach (prog), prog_detach (old), link_attach
    (prog, link), link_detach (old, link)."""
    progs, slot = sock_map_prog_link_lookup(m, which)
    if (link is None or prog is not None) and slot in progs.links:
        raise BpfError(errno.EBUSY, "a link holds this program slot")
    if old is not None:
        if progs.get(slot) is not old:
            raise BpfError(errno.ENOENT, "that program is not attached here")
        progs.set(slot, prog)
        progs.links.pop(slot, None)
        return
    progs.set(slot, prog)
    if link is not None:
        progs.links[slot] = link


# -- struct sk_msg -------------------------------------------------------------------------------
class SkMsg:
    """struct sk_msg, and the ``sk_msg_md`` a program reads (sk_msg_convert_ctx_access).

    ``elems`` are the scatterlist elements from sg.start to sg.end; ``data`` /
    ``data_end`` the addresses the program's ctx loads yield (the first element,
    or what bpf_msg_pull_data chose)."""

    def __init__(self, sk: InetSocket) -> None:
        self.sock = sk
        self.elems: list[bytearray] = []
        self.apply_bytes = 0
        self.cork_bytes = 0
        self.flags = 0
        self.sk_redir: InetSocket | None = None
        self.data = 0
        self.data_end = 0
        self._regions: dict[int, tuple[bytearray, Region]] = {}

    # -- the message ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """msg->sg.size."""
        return sum(len(e) for e in self.elems)

    def append(self, data: bytes) -> None:
        """sk_msg_alloc + memcopy_from_iter: new bytes coalesce into the last element."""
        if self.elems:
            self.elems[-1] += data
        else:
            self.elems.append(bytearray(data))

    def take(self, n: int) -> bytes:
        """Consume ``n`` bytes from the front (sent, redirected or freed)."""
        out = bytearray()
        while self.elems and len(out) < n:
            first = self.elems[0]
            want = n - len(out)
            out += first[:want]
            if len(first) <= want:
                self.elems.pop(0)
            else:
                self.elems[0] = first[want:]
        return bytes(out)

    def clear(self) -> None:
        self.elems.clear()

    def payload(self) -> bytes:
        return b"".join(bytes(e) for e in self.elems)

    # -- the program's view ----------------------------------------------------------------------
    def elem_addr(self, index: int) -> int:
        """Where element ``index`` is mapped (for the program's data pointers)."""
        rt = self.sock.runtime
        elem = self.elems[index]
        got = self._regions.get(id(elem))
        if got is None or got[0] is not elem:
            region = rt.memory.map(elem, kind="packet", name="sk_msg")
            got = self._regions[id(elem)] = (elem, region)
        return got[1].base

    def compute_data_pointers(self) -> None:
        """sk_msg_compute_data_pointers: the first element."""
        if not self.elems:
            self.data = self.data_end = 0
            return
        self.data = self.elem_addr(0)
        self.data_end = self.data + len(self.elems[0])

    def unmap(self) -> None:
        rt = self.sock.runtime
        for _, region in self._regions.values():
            rt.unmap_later(region)
        self._regions.clear()

    @property
    def sk(self) -> int:
        return self.sock.sk_addr

    @property
    def family(self) -> int:
        return self.sock.sock.family & 0xFFFF

    @property
    def remote_ip4(self) -> int:
        return int.from_bytes(self.sock.sock.daddr, "little")

    @property
    def local_ip4(self) -> int:
        return int.from_bytes(self.sock.sock.rcv_saddr, "little")

    @property
    def remote_ip6(self) -> bytes:
        return bytes(self.sock.sock.v6_daddr)

    @property
    def local_ip6(self) -> bytes:
        return bytes(self.sock.sock.v6_rcv_saddr)

    @property
    def remote_port(self) -> int:
        # skc_dport is __be16; the rewrite loads 16 bits then shifts them up 16.
        port = int.from_bytes(self.sock.sock.dport.to_bytes(2, "big"), "little")
        return (port << 16) & 0xFFFF_FFFF

    @property
    def local_port(self) -> int:
        return self.sock.sock.num & 0xFFFF


def msg_from_ctx(memory: Any, addr: int) -> SkMsg | None:
    """The SkMsg behind an SK_MSG program's ctx pointer, or None."""
    entry = memory.devices.get((addr & ((1 << 64) - 1)) >> PAGE_SHIFT)
    obj = getattr(entry[2], "obj", None) if entry is not None else None
    return obj if isinstance(obj, SkMsg) else None


#: skb -> (target socket, ingress): what bpf_sk_redirect_map/hash set (skb_bpf_set_redir).
_SKB_REDIRECT: weakref.WeakKeyDictionary[Any, tuple[InetSocket, bool]] = \
    weakref.WeakKeyDictionary()


def skb_set_redirect(skb: SkBuff, sk: InetSocket, ingress: bool) -> None:
    """skb_bpf_set_redir."""
    _SKB_REDIRECT[skb] = (sk, ingress)


def redirect_allowed(sk: InetSocket) -> bool:
    """sock_map_redirect_allowed: a TCP socket that isn't listening, a connected UDP one."""
    if sk.is_tcp:
        return sk.state != TcpState.LISTEN
    return sk.state == TcpState.ESTABLISHED


def _map_verd(r0: int, redirected: bool) -> SkAction:
    """sk_psock_map_verd."""
    if r0 == SK_PASS:
        return SkAction.REDIRECT if redirected else SkAction.PASS
    return SkAction.DROP


# -- struct sk_psock -----------------------------------------------------------------------------
class Psock:
    """struct sk_psock: a socket's programs, map links and ingress queue."""

    def __init__(self, sk: InetSocket) -> None:
        self.sk = sk
        self.progs = PsockProgs()
        #: sk_psock_link entries: (map, the slot's identity) per map element holding it.
        self.links: list[tuple[Any, Any]] = []
        #: ingress_msg: messages recv() reads (passed or redirected to this socket).
        self.ingress_msg: list[bytes] = []
        #: The proto tcp_bpf_update_proto chose: whether send() runs the SK_MSG program.
        self.tx = False
        #: What sk_data_ready does: "strp", "verdict", None (plain receive queue) or
        #: "stopped" (a stream parser failed: data stays in the receive queue, which
        #: recv() no longer reads).
        self.rx_mode: str | None = None
        #: The SK_MSG state carried between sends.
        self.eval = SkAction.NONE
        self.apply_bytes = 0
        self.cork_bytes = 0
        self.cork: SkMsg | None = None
        self.sk_redir: InetSocket | None = None
        self.redir_ingress = False
        #: Bytes the stream parser has not made a message of yet.
        self.strp_buf = bytearray()

    # -- linking to maps -------------------------------------------------------------------------
    def update_proto(self) -> None:
        """tcp_bpf_update_proto / udp_bpf_update_proto."""
        self.tx = self.sk.is_tcp and self.progs.msg_parser is not None

    def start(self) -> None:
        """sk_psock_start_strp / sk_psock_start_verdict, once."""
        if self.rx_mode is not None:
            return
        p = self.progs
        if p.stream_parser is not None and p.stream_verdict is not None and self.sk.is_tcp:
            self.rx_mode = "strp"
        elif (p.stream_parser is None and p.stream_verdict is not None) or \
                (p.stream_verdict is None and p.skb_verdict is not None):
            self.rx_mode = "verdict"

    def unlink(self, m: Any, key: Any) -> None:
        """sock_map_unref: one map element lets the socket go; the psock goes with
        the last one (its programs and queued messages with it)."""
        for i, (lm, lk) in enumerate(self.links):
            if lm is m and lk == key:
                del self.links[i]
                break
        if m.progs.stream_parser is not None or m.progs.stream_verdict is not None or \
                m.progs.skb_verdict is not None:
            self.rx_mode = None  # sk_psock_stop_strp / sk_psock_stop_verdict
        if not self.links:
            self.destroy()

    def destroy(self) -> None:
        """sk_psock_drop: the proto is restored, programs and queues go."""
        if self.sk.psock is self:
            self.sk.psock = None
        self.progs.drop()
        self.ingress_msg.clear()
        self.cork = None
        self.strp_buf.clear()

    def sock_close(self) -> None:
        """sock_map_close: the socket leaves every map."""
        for m, key in list(self.links):
            m.remove_socket(key, self.sk)

    # -- SK_MSG: tcp_bpf_sendmsg ------------------------------------------------------------------
    def sendmsg(self, data: bytes) -> int:
        """tcp_bpf_sendmsg: the bytes accepted, or BpfError (EACCES for a drop)."""
        size = len(data)
        if not size:
            return 0
        msg = self.cork if self.cork is not None else SkMsg(self.sk)
        msg.append(data)
        copied = size
        if self.cork_bytes:
            self.cork_bytes = 0 if size > self.cork_bytes else self.cork_bytes - size
            if self.cork_bytes:
                return copied  # still corked
            self.eval = SkAction.NONE
        err, copied = self._send_verdict(msg, copied)
        if copied:
            return copied
        if err < 0:
            raise BpfError(-err, "the SK_MSG verdict dropped the message" if err == -errno.EACCES
                           else "the redirect failed")
        return 0

    def _apply(self, n: int) -> None:
        """sk_msg_apply_bytes."""
        if self.apply_bytes:
            self.apply_bytes = 0 if self.apply_bytes < n else self.apply_bytes - n

    def _send_verdict(self, msg: SkMsg, copied: int) -> tuple[int, int]:
        """tcp_bpf_send_verdict: (0 or -errno, bytes to report as sent)."""
        m: SkMsg | None = msg
        while m is not None:
            delta = 0
            if self.eval == SkAction.NONE:
                delta = m.size
                self.eval = self._msg_verdict(m)
                delta -= m.size
            if m.cork_bytes and m.cork_bytes > m.size:
                self.cork_bytes = m.cork_bytes - m.size
                self.cork = m
                return 0, copied
            tosend = m.size
            if self.apply_bytes and self.apply_bytes < tosend:
                tosend = self.apply_bytes
            ret = 0
            if self.eval == SkAction.PASS:
                self.sk.transmit(m.take(tosend))
                self._apply(tosend)
            elif self.eval == SkAction.REDIRECT:
                target, ingress = self.sk_redir, self.redir_ingress
                self._apply(tosend)
                if not self.apply_bytes:
                    self.eval = SkAction.NONE
                    self.sk_redir = None
                cork = self.cork is not None
                self.cork = None
                assert target is not None
                ret = _sendmsg_redir(target, ingress, m, tosend)
                if ret < 0:
                    freed = m.size
                    m.clear()
                    if not cork:
                        copied -= freed
                if cork:
                    m.clear()
                    m = None
                    ret = 0
            else:
                m.take(tosend)  # sk_msg_free_partial
                self._apply(tosend)
                return -errno.EACCES, copied - (tosend + delta)
            if ret:
                return ret, copied
            if not self.apply_bytes:
                self.eval = SkAction.NONE
                self.sk_redir = None
            if m is None or not m.size:
                break
        return 0, copied

    def _msg_verdict(self, msg: SkMsg) -> SkAction:
        """sk_psock_msg_verdict."""
        prog = self.progs.msg_parser
        if prog is None:
            return SkAction.PASS
        rt = self.sk.runtime
        msg.compute_data_pointers()
        region = rt.memory.map_device(CtxDevice(SK_MSG_MD, msg), SK_MSG_MD.size, kind="ctx",
                                      name="sk_msg_md")
        try:
            r0 = prog.run(region.base) & 0xFFFF_FFFF
        finally:
            rt.memory.unmap(region)
            msg.unmap()
        verdict = _map_verd(r0, msg.sk_redir is not None)
        self.apply_bytes = msg.apply_bytes
        if verdict == SkAction.REDIRECT:
            self.sk_redir = msg.sk_redir
            self.redir_ingress = bool(msg.flags & BPF_F_INGRESS)
        return verdict

    # -- SK_SKB: sk_data_ready ----------------------------------------------------------------
    def data_ready(self, data: bytes) -> None:
        """sk_psock_verdict_data_ready / the strparser's sk_psock_strp_data_ready."""
        if self.rx_mode == "verdict":
            prog = self.progs.stream_verdict or self.progs.skb_verdict
            self._verdict(prog, data)
            return
        if self.rx_mode == "stopped":
            self.sk.rx.append(data)  # no parser reads it any more
            return
        self.strp_buf += data
        while self.strp_buf and self.rx_mode == "strp":
            n = self._run_skb(self.progs.stream_parser, bytes(self.strp_buf))[0]
            n = n - (1 << 32) if n & 0x8000_0000 else n
            if n < 0:  # strp_parser_err -> strp_abort_strp: sk_err, the parser stops
                self.sk.err = -n
                self.strp_buf.clear()
                self.rx_mode = "stopped"
                return
            if n == 0 or n > len(self.strp_buf):
                return  # wait for the rest of the message
            message = bytes(self.strp_buf[:n])
            del self.strp_buf[:n]
            self._verdict(self.progs.stream_verdict, message)

    def _run_skb(self, prog: BpfProg | None, data: bytes) -> tuple[int, bytes,
                                                                    tuple[InetSocket, bool] | None]:
        """Run an SK_SKB program on an skb of ``data``: (r0, the bytes after the
        run, the redirect it set)."""
        from ..progs.skb import release_skb, run_on_skb

        assert prog is not None
        skb = build_sk_skb(self.sk, data)
        try:
            r0, _ = run_on_skb(self.sk.runtime, prog, skb)
            out = skb.packet()
            redir = _SKB_REDIRECT.pop(skb, None)
        finally:
            release_skb(self.sk.runtime, skb)
        return r0, out, redir

    def _verdict(self, prog: BpfProg | None, data: bytes) -> None:
        """sk_psock_verdict_recv / sk_psock_strp_read, then sk_psock_verdict_apply."""
        if prog is None:
            self.ingress_msg.append(data)
            return
        r0, out, redir = self._run_skb(prog, data)
        verdict = _map_verd(r0, redir is not None)
        if verdict == SkAction.PASS:
            self.ingress_msg.append(out)  # sk_psock_skb_ingress_self
        elif verdict == SkAction.REDIRECT:
            assert redir is not None
            target, ingress = redir
            other = target.psock
            if other is None or target.closed:
                return  # sk_psock_skb_redirect: no psock, the skb is dropped
            if ingress:
                other.ingress_msg.append(out)
            else:
                target.transmit(out)  # skb_send_sock: out of the target socket


def _sendmsg_redir(target: InetSocket, ingress: bool, msg: SkMsg, nbytes: int) -> int:
    """tcp_bpf_sendmsg_redir: -EPIPE when the target has no psock any more."""
    psock = target.psock
    if psock is None:
        return -errno.EPIPE
    chunk = msg.take(nbytes)
    if ingress:
        psock.ingress_msg.append(chunk)  # bpf_tcp_ingress
    else:
        target.transmit(chunk)  # tcp_bpf_push_locked on the target
    return 0


def build_sk_skb(sk: InetSocket, data: bytes) -> SkBuff:
    """The skb an SK_SKB program sees for received bytes: ``data`` from skb->data
    (the TCP or UDP payload; the headers before it are zeros), skb->sk the socket.
    A TCP payload is paged, as tcp_sendmsg makes it: data_end == data until the
    program calls bpf_skb_pull_data (bpf_skb_load_bytes reads it regardless); a
    UDP datagram's is in the head."""
    from ..progs.skb import (
        ETH_HLEN,
        LOOPBACK,
        SKB_HEADROOM,
        SKB_TAILROOM,
        SkBuff,
        _be16,
        _data_align,
        _kmalloc_size,
    )
    from .inet import AF_INET

    rt = sk.runtime
    l3 = 20 if sk.family == AF_INET else 40
    headers = ETH_HLEN + l3 + 20
    data_off = SKB_HEADROOM + headers
    total = _kmalloc_size(data_off + _data_align(len(data)) + SKB_TAILROOM)
    buf = bytearray(total)
    buf[data_off:data_off + len(data)] = data
    region = rt.memory.map(buf, kind="packet", name="skb")
    skb = SkBuff(buf=buf, base=region.base, data_off=data_off, len=len(data),
                 end_off=total - SKB_TAILROOM)
    skb.regions.append(region)
    skb.mac_off = SKB_HEADROOM
    skb.network_off = SKB_HEADROOM + ETH_HLEN
    skb.protocol = _be16(0x0800 if sk.family == AF_INET else 0x86DD)
    skb.dev = LOOPBACK
    skb.skb_iif = LOOPBACK.ifindex
    skb.sk = sk.sock
    skb.sk_addr = sk.sk_addr
    skb.pkt_len = len(data)
    if sk.is_tcp:  # tcp_sendmsg puts the payload in page frags (headlen 0); UDP's is linear
        skb.data_len = len(data)
    skb.compute_data_pointers()
    return skb


# -- inserting sockets (sock_map_update_elem_sys -> sock_map_link) --------------------------------
def sock_from_fd(rt: Runtime, ufd: int) -> InetSocket:
    """sockfd_lookup, then the checks of sock_map_update_elem_sys: EBADF, ENOTSOCK,
    EOPNOTSUPP for a socket sockmap can't take or in a state it refuses (TCP
    neither established nor listening, UDP not bound)."""
    from ..maps.xskmap import sockfd_lookup

    sk = sockfd_lookup(rt, ufd)
    if not isinstance(sk, InetSocket):  # sock_map_sk_is_suitable: no psock_update_sk_prot
        raise BpfError(errno.EOPNOTSUPP, "only TCP and UDP sockets go in a socket map")
    if sk.is_tcp and sk.state not in (TcpState.ESTABLISHED, TcpState.LISTEN):
        raise BpfError(errno.EOPNOTSUPP, "only established or listening TCP sockets go in "
                       "a socket map")
    if not sk.is_tcp and not sk.sock.num:  # sock_map_sk_state_allowed: sk_hashed()
        raise BpfError(errno.EOPNOTSUPP, "an unbound UDP socket can't go in a socket map")
    return sk


def sock_map_link(m: Any, sk: InetSocket) -> Psock:
    """sock_map_link: the socket's psock takes the map's programs (EBUSY when it
    already has one of the same kind)."""
    mp = m.progs
    psock = sk.psock
    if psock is not None:
        pp = psock.progs
        if (mp.msg_parser and pp.msg_parser) or (mp.stream_parser and pp.stream_parser) or \
                (mp.skb_verdict and (pp.skb_verdict or pp.stream_verdict)) or \
                (mp.stream_verdict and (pp.skb_verdict or pp.stream_verdict)):
            raise BpfError(errno.EBUSY, "the socket already has a program of this kind")
    else:
        psock = Psock(sk)
        sk.psock = psock
    for slot in PROG_SLOTS.values():
        prog = mp.get(slot)
        if prog is not None:
            psock.progs.set(slot, prog)
    psock.update_proto()
    psock.start()
    return psock


def link_failed(psock: Psock) -> None:
    """The update failed after sock_map_link: sk_psock_put (a new psock goes)."""
    if not psock.links:
        psock.destroy()


# -- BPF_PROG_ATTACH / DETACH / QUERY ------------------------------------------------------------
def _sock_map(rt: Runtime, fd: int) -> Any:
    """__bpf_map_get on target_fd (EBADF / EINVAL)."""
    m, _ = _map_from_fd(rt, fd)
    return m


def sock_map_get_from_fd(rt: Runtime, attr: ProgAttachAttr, prog: BpfProg) -> None:
    """sock_map_get_from_fd (PROG_ATTACH)."""
    if attr.attach_flags or attr.replace_bpf_fd:
        raise BpfError(errno.EINVAL, "socket map attach takes no flags or replace_bpf_fd")
    sock_map_prog_update(_sock_map(rt, attr.target_fd), prog, None, None, attr.attach_type)


def sock_map_prog_detach(rt: Runtime, attr: ProgAttachAttr, _prog: BpfProg | None) -> None:
    """sock_map_prog_detach (PROG_DETACH)."""
    if attr.attach_flags or attr.replace_bpf_fd:
        raise BpfError(errno.EINVAL, "socket map detach takes no flags or replace_bpf_fd")
    m = _sock_map(rt, attr.target_fd)
    prog = prog_get(rt, attr.attach_bpf_fd)
    ptype = ProgType.SK_MSG if attr.attach_type == A.SK_MSG_VERDICT else ProgType.SK_SKB
    if prog.prog_type != ptype:
        raise BpfError(errno.EINVAL, f"fd {attr.attach_bpf_fd} is a {prog.prog_type.name} "
                       "program")
    sock_map_prog_update(m, None, prog, None, attr.attach_type)


def sock_map_bpf_prog_query(rt: Runtime, attr: ProgQueryAttr) -> ProgQueryResult:
    """sock_map_bpf_prog_query: the slot's program (at most one), attach_flags 0."""
    if attr.query_flags:
        raise BpfError(errno.EINVAL, "socket map queries take no query_flags")
    progs, slot = sock_map_prog_link_lookup(_sock_map(rt, attr.target_fd), attr.attach_type)
    prog = progs.get(slot)
    ids = (prog.id,) if prog is not None else ()
    return deliver_query(rt, attr, ProgQueryResult(attach_flags=0, prog_ids=ids))


# -- BPF_LINK_TYPE_SOCKMAP -----------------------------------------------------------------------
class SockMapLink(BpfLink):
    """struct sockmap_link: a program in a map's slot for as long as the link lives."""

    link_type: ClassVar[LinkType] = LinkType.SOCKMAP
    supports_detach = True
    supports_update = True

    def __init__(self, runtime: Runtime, prog: BpfProg, attach_type: int, m: Any) -> None:
        super().__init__(runtime, prog, attach_type)
        m.hold()  # bpf_map_get_with_uref
        self.map: Any = m

    def attach(self) -> None:
        sock_map_prog_update(self.map, self.prog, None, self, self.attach_type)
        self.attached = True

    def release_hook(self) -> None:
        """sock_map_link_release: the slot empties, the map reference goes."""
        m, self.map = self.map, None
        self.attached = False
        if m is None:
            return
        # The kernel WARNs on a failure here: the slot was changed behind the link's back.
        with contextlib.suppress(BpfError):
            sock_map_prog_update(m, None, self.prog, self, self.attach_type)
        m.release()

    def update_prog(self, new: BpfProg, old: BpfProg | None) -> None:
        """sock_map_link_update_prog: EPERM, EINVAL, ENOLINK, then the slot's rules."""
        cur = self.prog
        assert cur is not None
        if old is not None and old is not cur:
            raise BpfError(errno.EPERM, "old_prog_fd is not the link's program")
        if new.prog_type != cur.prog_type or new.expected_attach_type != \
                cur.expected_attach_type:
            raise BpfError(errno.EINVAL, "the new program's type or expected attach type "
                           "differs from the link's")
        if self.map is None:
            raise BpfError(errno.ENOLINK, "the link is detached")
        progs, slot = sock_map_prog_link_lookup(self.map, self.attach_type)
        if progs.links.get(slot) is not self:
            raise BpfError(errno.EBUSY, "the slot is not this link's")
        if old is not None and progs.get(slot) is not old:
            raise BpfError(errno.ENOENT, "the slot's program is not old_prog_fd")
        progs.set(slot, new)
        self.replace_prog(new)

    def fill_info(self, info: dict[str, int]) -> None:
        info["map_id"] = self.map.id if self.map is not None else 0
        info["attach_type"] = self.attach_type

    def free(self) -> None:
        super().free()
        if self.map is not None:  # attach refused: the map reference still goes
            m, self.map = self.map, None
            m.release()


def sock_map_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """sock_map_link_create (up to bpf_link_prime; the slot is taken in attach)."""
    if attr.flags:
        raise BpfError(errno.EINVAL, "sockmap links take no flags")
    m = _sock_map(rt, attr.target_fd)
    if m.map_type not in (MapType.SOCKMAP, MapType.SOCKHASH):
        raise BpfError(errno.EINVAL, f"a {m.map_type.name} map is no socket map")
    return SockMapLink(rt, prog, attr.attach_type, m)


for _pt in (ProgType.SK_MSG, ProgType.SK_SKB):
    register_prog_attach(_pt, sock_map_get_from_fd, sock_map_prog_detach)
    register_link_kind(_pt, sock_map_link_create)
register_prog_query(tuple(PROG_SLOTS), sock_map_bpf_prog_query)
