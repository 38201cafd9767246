"""Sockets with a BPF filter (SO_ATTACH_BPF, net/core/filter.c and net/packet/af_packet.c).

A :class:`Socket` stands for a socket a test receives frames on. Its filter is
a SOCKET_FILTER program set with :meth:`Socket.attach_bpf` (setsockopt
SO_ATTACH_BPF: another program type is EINVAL, a closed fd EBADF, a locked
filter EPERM) and removed with :meth:`Socket.detach_filter` (SO_DETACH_FILTER:
ENOENT without one). The program's return value is the number of bytes of
the packet to keep: 0 drops it, a value above the length keeps it whole.

``kind="packet"`` is an AF_PACKET SOCK_RAW socket: the filter sees the frame
from its Ethernet header (packet_rcv pushes it back) and the result cuts the
snapshot length. Bound to a :class:`~.netdev.Netdev` (``dev=``), it receives
every frame that arrives on the device after XDP, as an ETH_P_ALL tap does.
``kind="inet"`` is an IP socket (sk_filter_trim_cap): the
filter sees the packet from its IP header and the skb is trimmed to what it
kept (never below ``cap`` bytes: 1, as for TCP and UDP).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..prog import BpfProg
from ..runtime import BpfObject, ObjKind, Runtime
from ..uapi import ProgType
from .base import prog_get_type
from .netns import current_net

if TYPE_CHECKING:
    from .netdev import Netdev

__all__ = ["Socket"]


class Socket(BpfObject):
    """A socket receiving frames, with an optional socket filter. It is a file:
    :meth:`open` gives an fd on it (what socket maps and sk storage take)."""

    kind = ObjKind.SOCKET

    def __init__(self, rt: Runtime, kind: str = "packet", *, cap: int = 1,
                 dev: Netdev | None = None) -> None:
        if kind not in ("packet", "inet"):
            raise ValueError("kind is 'packet' or 'inet'")
        super().__init__(rt)
        #: A packet socket bound to a device receives what arrives on it (after XDP).
        self.dev = dev
        if dev is not None:
            if kind != "packet":
                raise ValueError("only packet sockets bind to a device")
            dev.taps.append(self)
        #: "packet" or "inet" (``kind`` is the fd table's ObjKind.SOCKET).
        self.sock_kind = kind
        self.cap = cap
        self.filter: BpfProg | None = None
        #: SO_LOCK_FILTER: the filter can't be changed any more.
        self.filter_locked = False
        #: What the socket received: the packets the filter kept, cut as it said.
        self.queue: list[bytes] = []

    def attach_bpf(self, prog_fd: int) -> None:
        """setsockopt(SO_ATTACH_BPF) / sk_attach_bpf: replaces the old filter."""
        if self.filter_locked:
            raise BpfError(errno.EPERM, "the socket's filter is locked")
        prog = prog_get_type(self.runtime, prog_fd, ProgType.SOCKET_FILTER)
        prog.hold()
        old, self.filter = self.filter, prog
        if old is not None:
            old.release()

    def detach_filter(self) -> None:
        """setsockopt(SO_DETACH_FILTER) / sk_detach_filter."""
        if self.filter_locked:
            raise BpfError(errno.EPERM, "the socket's filter is locked")
        if self.filter is None:
            raise BpfError(errno.ENOENT, "the socket has no filter")
        old, self.filter = self.filter, None
        old.release()

    def open(self) -> int:
        """A new fd on the socket (the last fd closed closes the socket)."""
        return self.runtime.install_fd(self)

    def free(self) -> None:
        self.close()

    def lock_filter(self) -> None:
        """setsockopt(SO_LOCK_FILTER, 1)."""
        self.filter_locked = True

    def send(self, frame: bytes) -> Any:
        """sendto() on a packet socket bound to a device: the frame leaves through
        the device (tcx egress, then the wire). A frame dropped on the way is
        ENOBUFS for the sender (net_xmit_errno of NET_XMIT_DROP)."""
        if self.dev is None:
            raise BpfError(errno.ENXIO, "the socket is bound to no device")
        result = self.dev.transmit(frame, sender=self)
        if result.verdict == "drop":
            raise BpfError(errno.ENOBUFS, "the frame was dropped on its way out")
        return result

    def close(self) -> None:
        """The socket goes, and with it its reference on the filter."""
        if self.dev is not None and self in self.dev.taps:
            self.dev.taps.remove(self)
        if self.filter is not None:
            self.filter.release()
            self.filter = None

    def receive(self, frame: bytes) -> bytes | None:
        """A frame arrives for the socket: the filter decides what of it is kept
        (None: dropped). Kept packets are also appended to :attr:`queue`."""
        rt = self.runtime
        packet = frame if self.sock_kind == "packet" else frame[14:]
        prog = self.filter
        if prog is not None:
            from ..progs.skb import build_skb, release_skb, run_on_skb

            dev = self.dev or current_net(rt).device(1)
            skb = build_skb(rt, frame, ProgType.SOCKET_FILTER, dev=dev)
            if self.sock_kind == "packet":
                skb.push(skb.data_off - skb.mac_off)  # packet_rcv: from the MAC header
                skb.compute_data_pointers()
            try:
                saved_cb = bytes(skb.cb)
                kept, _ = run_on_skb(rt, prog, skb)
                skb.cb[:] = saved_cb  # bpf_prog_run_save_cb
            finally:
                release_skb(rt, skb)
            if not kept:
                return None
            # a packet socket's snaplen; an IP socket's pskb_trim(max(cap, kept))
            packet = packet[:kept] if self.sock_kind == "packet" else packet[:max(self.cap, kept)]
        self.queue.append(packet)
        return packet
