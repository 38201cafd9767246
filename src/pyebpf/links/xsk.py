"""AF_XDP sockets (net/xdp/xsk.c, xdp_umem.c, xskmap.c): where an XSKMAP redirect delivers.

An :class:`XskSocket` is what ``socket(AF_XDP)`` plus the usual setup
(XDP_UMEM_REG with ``frame_size`` chunks and ``frame_headroom``, XDP_RX_RING
and XDP_UMEM_FILL_RING of ``rx_size``/``fill_size`` entries, the fill ring
populated with every chunk, as ``xsk_socket__create`` and
``xsk_populate_fill_ring`` leave it) gives: an fd (:attr:`fd`) that
BPF_MAP_UPDATE_ELEM puts in an XSKMAP, and :meth:`bind` to a device's queue.

Receiving (``xsk_rcv``): the socket must be bound (ENXIO), to the device and
rx queue the frame arrived on (``xsk_rcv_check``: EINVAL); a frame longer
than a chunk holds after its headroom is ENOSPC, an empty fill ring ENOMEM
(both count in ``rx_dropped``), a full rx ring ENOBUFS (``rx_ring_full``).
A failed delivery drops the frame. Delivered frames wait in :attr:`rx` (the rx
ring: :class:`XdpDesc` with the chunk address, length, data and metadata)
until :meth:`recv` takes the oldest and gives its chunk back to the fill ring.

A program's ``bpf_map_lookup_elem`` on an XSKMAP gets the socket's
``struct bpf_xdp_sock`` (its ``queue_id``). Closing the socket (its last fd)
unbinds it and takes it out of every XSKMAP (``xsk_delete_from_maps``).
"""

from __future__ import annotations

import collections
import enum
import errno
import weakref
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import BpfError
from ..memory import Perm
from ..runtime import BpfObject, ObjKind, Runtime

if TYPE_CHECKING:
    from .netdev import Netdev

__all__ = ["XdpDesc", "XdpStatistics", "XskSocket", "XskState"]

PAGE_SIZE = 4096
XDP_PACKET_HEADROOM = 256
#: XDP_UMEM_MIN_CHUNK_SIZE: the smallest chunk a UMEM may have.
XDP_UMEM_MIN_CHUNK_SIZE = 2048


class XskState(enum.IntEnum):
    """enum xsk state (XSK_READY, XSK_BOUND, XSK_UNBOUND)."""

    READY = 0
    BOUND = 1
    UNBOUND = 2


@attrs.frozen
class XdpDesc:
    """struct xdp_desc of the rx ring, with the bytes its chunk holds."""

    addr: int
    len: int
    data: bytes
    meta: bytes = b""


@attrs.define
class XdpStatistics:
    """struct xdp_statistics (getsockopt XDP_STATISTICS), the receive side."""

    rx_dropped: int = 0
    rx_ring_full: int = 0
    rx_fill_ring_empty_descs: int = 0


#: device -> {queue id: the socket whose buffer pool is registered there}.
_POOLS: weakref.WeakKeyDictionary[Any, dict[int, XskSocket]] = weakref.WeakKeyDictionary()


def _pow2(n: int) -> bool:
    return n > 0 and not n & (n - 1)


class XskSocket(BpfObject):
    """An AF_XDP socket with its UMEM, fill ring and rx ring."""

    kind = ObjKind.SOCKET

    def __init__(self, rt: Runtime, *, rx_size: int = 2048, fill_size: int = 2048,
                 frame_size: int = PAGE_SIZE, frame_headroom: int = 0,
                 num_frames: int | None = None) -> None:
        # xsk_init_queue: ring sizes are powers of two; xdp_umem_reg: aligned chunks
        # are powers of two from 2048 to a page, with room after the headroom.
        if not _pow2(rx_size) or not _pow2(fill_size):
            raise BpfError(errno.EINVAL, "ring sizes must be powers of two")
        if not _pow2(frame_size) or not XDP_UMEM_MIN_CHUNK_SIZE <= frame_size <= PAGE_SIZE:
            raise BpfError(errno.EINVAL, f"chunk size {frame_size} is not a power of two "
                           f"in {XDP_UMEM_MIN_CHUNK_SIZE}..{PAGE_SIZE}")
        if frame_headroom >= frame_size - XDP_PACKET_HEADROOM:
            raise BpfError(errno.EINVAL, "the UMEM headroom leaves no room for a frame")
        super().__init__(rt)
        self.rx_size = rx_size
        self.fill_size = fill_size
        self.frame_size = frame_size
        self.frame_headroom = frame_headroom
        n = fill_size if num_frames is None else num_frames
        #: The fill ring: chunk addresses the kernel may receive into.
        self.fill: collections.deque[int] = collections.deque(
            i * frame_size for i in range(min(n, fill_size)))
        #: The rx ring: frames delivered and not yet taken by :meth:`recv`.
        self.rx: collections.deque[XdpDesc] = collections.deque()
        self.stats = XdpStatistics()
        self.state = XskState.READY
        self.dev: Netdev | None = None
        self.queue_id = 0
        #: XSKMAP slots holding the socket (xs->map_list): (map, index).
        self.map_list: list[tuple[Any, int]] = []
        #: struct bpf_xdp_sock, what a program's XSKMAP lookup points at.
        self.region = rt.memory.map(4, kind="xdp_sock", name="xdp_sock", perms=Perm.R)
        self.fd = rt.install_fd(self)

    def __repr__(self) -> str:
        where = f" {self.dev.name} queue {self.queue_id}" if self.dev is not None else ""
        return f"<XskSocket fd {self.fd}{where} {self.state.name.lower()}>"

    @property
    def rx_frame_size(self) -> int:
        """xsk_pool_get_rx_frame_size: what a chunk holds after the headrooms."""
        return self.frame_size - self.frame_headroom - XDP_PACKET_HEADROOM

    def bind(self, dev: Netdev, queue_id: int = 0) -> None:
        """bind(sockaddr_xdp): a socket binds once (EINVAL), to a registered device
        (ENODEV) and one of its queues (EINVAL); a queue takes one UMEM (EBUSY)."""
        if self.state != XskState.READY:
            raise BpfError(errno.EINVAL, "the socket is already bound")
        if not getattr(dev, "registered", True):
            raise BpfError(errno.ENODEV, f"{dev.name} is gone")
        if not 0 <= queue_id < getattr(dev, "num_queues", 1):
            raise BpfError(errno.EINVAL, f"{dev.name} has no queue {queue_id}")
        pools = _POOLS.setdefault(dev, {})
        if queue_id in pools:
            raise BpfError(errno.EBUSY, f"queue {queue_id} of {dev.name} has a UMEM already")
        pools[queue_id] = self
        self.dev, self.queue_id = dev, queue_id
        self.region.buf[0:4] = queue_id.to_bytes(4, "little")
        self.state = XskState.BOUND

    def rcv_check(self, dev: Any, queue_index: int) -> int:
        """xsk_rcv_check: 0, or the errno that keeps the frame out."""
        if self.state != XskState.BOUND or not getattr(self.dev, "registered", False):
            return errno.ENXIO
        if self.dev is not dev or self.queue_id != queue_index:
            return errno.EINVAL
        return 0

    def rcv(self, dev: Any, queue_index: int, data: bytes, meta: bytes = b"") -> int:
        """xsk_rcv / xsk_generic_rcv: copy the frame into a chunk from the fill ring
        and post its descriptor on the rx ring; 0 or the errno of the drop."""
        err = self.rcv_check(dev, queue_index)
        if err:
            return err
        if len(data) > self.rx_frame_size:
            self.stats.rx_dropped += 1
            return errno.ENOSPC
        if not self.fill:
            self.stats.rx_dropped += 1
            self.stats.rx_fill_ring_empty_descs += 1
            return errno.ENOMEM
        if len(self.rx) >= self.rx_size:
            self.stats.rx_ring_full += 1
            return errno.ENOBUFS
        chunk = self.fill.popleft()
        self.rx.append(XdpDesc(chunk + self.frame_headroom + XDP_PACKET_HEADROOM, len(data),
                               bytes(data), bytes(meta)))
        return 0

    def recv(self) -> XdpDesc | None:
        """Take the oldest received frame (None when the ring is empty) and give
        its chunk back to the fill ring, as an application's rx loop does."""
        if not self.rx:
            return None
        desc = self.rx.popleft()
        self.fill.append(desc.addr - self.frame_headroom - XDP_PACKET_HEADROOM)
        return desc

    def close(self) -> None:
        """close(fd): the socket goes when no other reference holds it."""
        self.runtime.close(self.fd)

    def _unbind(self) -> None:
        dev = self.dev
        if dev is not None:
            pools = _POOLS.get(dev)
            if pools is not None and pools.get(self.queue_id) is self:
                del pools[self.queue_id]
        self.dev = None
        if self.state == XskState.BOUND:
            self.state = XskState.UNBOUND

    def free(self) -> None:
        """xsk_release: out of every XSKMAP, unbound, its memory gone."""
        for m, index in list(self.map_list):
            m.remove_socket(index, self)
        self._unbind()
        self.runtime.unmap_later(self.region)
