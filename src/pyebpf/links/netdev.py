"""Network devices: the XDP and tcx hooks (net/core/dev.c, kernel/bpf/tcx.c, mprog.c).

A :class:`Netdev` lives in a :class:`~.netns.Netns` and is found by ifindex the
way the kernel's ``dev_get_by_index`` finds it in the caller's namespace.
``dev.receive(frame)`` runs the receive path a test cares about: XDP (the
program of the device's active mode) and, if it passed, tcx ingress; the
result says what happened and carries the packet as the programs left it.
``dev.transmit(frame)`` runs tcx egress.

XDP (dev_xdp_attach): one program per mode (generic "skb", native "drv",
offload "hw"). Devices without a driver XDP hook (``native_xdp=False``, the
loopback device) default to generic mode and refuse native/offload
(EOPNOTSUPP); a link's flags may name only a mode; generic and native exclude
each other (EEXIST); an active link can't be replaced (EBUSY), nor a
netlink-attached program by a link (EBUSY). :meth:`Netdev.set_xdp_fd` is the
netlink path (``ip link set dev X xdp fd N``). Actions: XDP_PASS continues to
the packet taps and tcx, XDP_DROP and XDP_ABORTED drop, XDP_TX sends the frame
back out and XDP_REDIRECT goes where bpf_redirect or bpf_redirect_map said:
a device (generic XDP: generic_xdp_tx onto the wire; native: the target's
ndo_xdp_xmit, which a veth has only while its peer runs native XDP), a device
map entry (with its program, or a broadcast), a CPU map entry or an AF_XDP
socket (pyebpf.links.xdp_redirect); a redirect that fails drops the frame.

tcx (bpf_mprog): up to 64 programs per direction in an ordered list with a
revision; BPF_F_BEFORE/AFTER position relative to a program or link (by fd,
or by id with BPF_F_ID; BPF_F_LINK names a link), BPF_F_REPLACE swaps,
``expected_revision`` must match (ESTALE). Programs run in order until one
returns TCX_PASS (0), TCX_DROP (2) or TCX_REDIRECT (7); any other value is
TCX_NEXT, and a list ending in NEXT lets the packet through. A redirect goes
out of the target device, or into it with BPF_F_INGRESS (skb_do_redirect);
bpf_redirect_peer's into the receive path of the target's peer, bpf_redirect_neigh's
out of the target with the next hop's L2 header (pyebpf.links.neigh).
"""

from __future__ import annotations

import enum
import errno
from typing import TYPE_CHECKING

import attrs

from ..attr import LinkCreateAttr, ProgAttachAttr, ProgQueryAttr
from ..errors import BpfError
from ..prog import BpfProg
from ..progs.skb import NetDevice
from ..runtime import ObjKind, Runtime
from ..uapi import AttachFlags, AttachType, LinkType, ProgType, XdpAction
from .base import (
    BpfLink,
    ProgQueryResult,
    deliver_query,
    link_get,
    prog_get,
    prog_get_type,
    register_link_kind,
    register_prog_attach,
    register_prog_query,
)
from .netns import Netns, current_net

if TYPE_CHECKING:
    from ..runtime import BpfObject
    from .sock import Socket

__all__ = ["MprogEntry", "Netdev", "RxResult", "TcxAction", "TcxLink", "XdpFlags", "XdpLink",
           "XdpMode"]

#: BPF_MPROG_MAX: programs per tcx direction.
BPF_MPROG_MAX = 64
#: bpf_redirect's flag: into the target's receive path instead of out of it.
BPF_F_INGRESS = 1


class XdpFlags(enum.IntFlag):
    """XDP_FLAGS_* (include/uapi/linux/if_link.h)."""

    UPDATE_IF_NOEXIST = 1 << 0
    SKB_MODE = 1 << 1
    DRV_MODE = 1 << 2
    HW_MODE = 1 << 3
    REPLACE = 1 << 4


XDP_FLAGS_MODES = int(XdpFlags.SKB_MODE | XdpFlags.DRV_MODE | XdpFlags.HW_MODE)
XDP_FLAGS_MASK = XDP_FLAGS_MODES | int(XdpFlags.UPDATE_IF_NOEXIST | XdpFlags.REPLACE)


class XdpMode(enum.IntEnum):
    """enum bpf_xdp_mode."""

    SKB = 0
    DRV = 1
    HW = 2


class TcxAction(enum.IntEnum):
    """enum tcx_action_base."""

    NEXT = -1
    PASS = 0
    DROP = 2
    REDIRECT = 7


_TCX_TERMINAL = {TcxAction.PASS, TcxAction.DROP, TcxAction.REDIRECT}


@attrs.frozen
class RxResult:
    """What the receive (or transmit) path did with a frame.

    ``verdict`` is "pass" (up the stack / onto the wire), "drop", "tx" (XDP_TX:
    back out of the device), or "redirect" (to ``redirect_ifindex``, or for
    an XDP map redirect to key ``redirect_key`` of a ``redirect_map_type`` map);
    ``packet`` is the frame as the programs left it; ``xdp_action`` and
    ``tc_action`` are the raw program results (None where no program ran).
    An XDP redirect that failed is a "drop" whose ``redirect_err`` is the
    errno xdp_do_redirect returned."""

    verdict: str
    packet: bytes
    xdp_action: int | None = None
    tc_action: int | None = None
    redirect_ifindex: int = 0
    redirect_flags: int = 0
    redirect_map_type: int = 0
    redirect_key: int = 0
    redirect_err: int = 0


# -- mprog -------------------------------------------------------------------------------------
@attrs.define(eq=False)
class MprogSlot:
    prog: BpfProg
    link: BpfLink | None = None


class MprogEntry:
    """struct bpf_mprog_entry with its bundle's revision: the ordered programs of
    one tcx direction."""

    def __init__(self) -> None:
        self.slots: list[MprogSlot] = []
        self.revision = 1

    def __len__(self) -> int:
        return len(self.slots)

    def _exists(self, prog: BpfProg) -> bool:
        return any(s.prog is prog for s in self.slots)

    def _match(self, slot: MprogSlot, prog: BpfProg | None, link: BpfLink | None) -> bool:
        return slot.prog is prog and (link is None or slot.link is link)

    def _pos_exact(self, prog: BpfProg | None, link: BpfLink | None) -> int:
        """bpf_mprog_pos_exact: the program's index; a program that a link other
        than ``link`` (or a link, for none) put there is EBUSY."""
        for i, s in enumerate(self.slots):
            if s.prog is prog:
                return i if s.link is link else -errno.EBUSY
        return -errno.ENOENT

    def _pos_before(self, prog: BpfProg | None, link: BpfLink | None) -> int:
        for i, s in enumerate(self.slots):
            if self._match(s, prog, link):
                return i - 1
        return -errno.ENOENT if prog is not None else -1

    def _pos_after(self, prog: BpfProg | None, link: BpfLink | None) -> int:
        for i, s in enumerate(self.slots):
            if self._match(s, prog, link):
                return i + 1
        return -errno.ENOENT if prog is not None else len(self.slots)

    def _position(self, flags: int, idx: int, rprog: BpfProg | None,
                  rlink: BpfLink | None) -> tuple[int, int]:
        """The BEFORE/AFTER part shared by attach and detach: (index, flags)."""
        if flags & AttachFlags.BEFORE:
            tidx = self._pos_before(rprog, rlink)
            if tidx < -1 or (idx >= -1 and tidx != idx):
                _fail(tidx if tidx < -1 else -errno.ERANGE)
            idx = tidx
        if flags & AttachFlags.AFTER:
            tidx = self._pos_after(rprog, rlink)
            if tidx < -1 or (idx >= -1 and tidx != idx):
                _fail(tidx if tidx < 0 else -errno.ERANGE)
            idx = tidx
        if idx < -1:
            if rprog is not None or flags:
                raise BpfError(errno.EINVAL, "a relative program needs BPF_F_BEFORE/AFTER")
            idx = len(self.slots)
            flags = int(AttachFlags.AFTER)
        if idx >= BPF_MPROG_MAX:
            _fail(-errno.ERANGE)
        return idx, flags

    def attach(self, rt: Runtime, prog: BpfProg, link: BpfLink | None, old: BpfProg | None,
               flags: int, id_or_fd: int, revision: int) -> None:
        """bpf_mprog_attach (then bpf_mprog_commit: the revision moves on)."""
        if revision and revision != self.revision:
            raise BpfError(errno.ESTALE, f"expected_revision {revision}, the hook is at "
                           f"{self.revision}")
        if self._exists(prog):
            raise BpfError(errno.EEXIST, "the program is already on this hook")
        idx = -errno.ERANGE
        rprog, rlink = _tuple_relative(rt, id_or_fd, flags & ~int(AttachFlags.REPLACE),
                                       prog.prog_type)
        if flags & AttachFlags.REPLACE:
            tidx = self._pos_exact(old, link)
            if tidx < 0:
                _fail(tidx)
            idx = tidx
        elif len(self.slots) == BPF_MPROG_MAX:
            _fail(-errno.ERANGE)
        idx, flags = self._position(flags, idx, rprog, rlink)
        if link is None:  # a link holds its program; a slot of its own holds a reference
            prog.hold()
        slot = MprogSlot(prog, link)
        if flags & AttachFlags.REPLACE:
            replaced = self.slots[idx]
            self.slots[idx] = slot
            if replaced.link is None:
                replaced.prog.release()
        else:
            if idx != len(self.slots) and flags & AttachFlags.BEFORE:
                idx += 1
            self.slots.insert(idx, slot)
        self.revision += 1

    def detach(self, rt: Runtime, prog: BpfProg | None, link: BpfLink | None, flags: int,
               id_or_fd: int, revision: int) -> None:
        """bpf_mprog_detach."""
        if flags & AttachFlags.REPLACE:
            raise BpfError(errno.EINVAL, "BPF_F_REPLACE is not for detaching")
        if revision and revision != self.revision:
            raise BpfError(errno.ESTALE, f"expected_revision {revision}, the hook is at "
                           f"{self.revision}")
        if not self.slots:
            raise BpfError(errno.ENOENT, "nothing is attached")
        idx = -errno.ERANGE
        ptype = prog.prog_type if prog is not None else ProgType.UNSPEC
        rprog, rlink = _tuple_relative(rt, id_or_fd, flags, ptype)
        if prog is not None:
            tidx = self._pos_exact(prog, link)
            if tidx < 0:
                _fail(tidx)
            idx = tidx
        idx, flags = self._position(flags, idx, rprog, rlink)
        # bpf_mprog_delete / bpf_mprog_fetch
        if idx == -1:
            idx = 0
        elif idx == len(self.slots):
            idx = len(self.slots) - 1
        slot = self.slots[idx]
        if slot.link is not None and link is None:
            raise BpfError(errno.EBUSY, "a program attached by a link is detached by the link")
        del self.slots[idx]
        if slot.link is None:
            slot.prog.release()
        self.revision += 1

    def replace_link_prog(self, link: BpfLink, new: BpfProg) -> None:
        """tcx_link_update's bpf_mprog_attach(REPLACE | ID, the link's program)."""
        if self._exists(new):
            raise BpfError(errno.EEXIST, "the program is already on this hook")
        assert link.prog is not None
        if new.prog_type != link.prog.prog_type:
            raise BpfError(errno.EINVAL, "the new program's type differs from the link's")
        idx = self._pos_exact(link.prog, link)
        if idx < 0:
            _fail(idx)
        self.slots[idx] = MprogSlot(new, link)
        self.revision += 1

    def query(self, rt: Runtime, attr: ProgQueryAttr) -> ProgQueryResult:
        """bpf_mprog_query."""
        if attr.query_flags or attr.attach_flags:
            raise BpfError(errno.EINVAL, "mprog queries take no query_flags/attach_flags")
        result = ProgQueryResult(
            prog_ids=tuple(s.prog.id for s in self.slots),
            prog_attach_flags=tuple(0 for _ in self.slots),
            link_ids=tuple(s.link.id if s.link is not None else 0 for s in self.slots),
            link_attach_flags=tuple(0 for _ in self.slots), revision=self.revision)
        return deliver_query(rt, attr, result, arrays=("prog_ids", "prog_attach_flags",
                                                       "link_ids", "link_attach_flags"))


def _fail(neg_errno: int) -> None:
    raise BpfError(-neg_errno, f"mprog position: {errno.errorcode.get(-neg_errno, neg_errno)}")


def _tuple_relative(rt: Runtime, id_or_fd: int, flags: int,
                    ptype: int) -> tuple[BpfProg | None, BpfLink | None]:
    """bpf_mprog_tuple_relative: the program (or link) BEFORE/AFTER refer to."""
    by_id = bool(flags & AttachFlags.ID)
    if flags & AttachFlags.LINK:
        link: BpfObject | None
        if by_id:
            link = rt.objects(ObjKind.LINK).get(id_or_fd)
            if link is None:
                raise BpfError(errno.ENOENT, f"no link with id {id_or_fd}")
        elif id_or_fd:
            link = link_get(rt, id_or_fd)
        else:
            raise BpfError(errno.EINVAL, "BPF_F_LINK without a link fd or id")
        assert isinstance(link, BpfLink) and link.prog is not None
        if ptype and link.prog.prog_type != ptype:
            raise BpfError(errno.EINVAL, "the relative link runs another program type")
        return link.prog, link
    if not by_id and not id_or_fd:
        return None, None
    if by_id:
        prog = rt.objects(ObjKind.PROG).get(id_or_fd)
        if prog is None:
            raise BpfError(errno.ENOENT, f"no program with id {id_or_fd}")
        assert isinstance(prog, BpfProg)
    else:
        prog = prog_get(rt, id_or_fd)
    if ptype and prog.prog_type != ptype:
        raise BpfError(errno.EINVAL, "the relative program is of another type")
    return prog, None


# -- the device --------------------------------------------------------------------------------
class Netdev(NetDevice):
    """A network device in a namespace, with its XDP and tcx hooks.

    ``native_xdp`` says whether the driver has an XDP hook (ndo_bpf): veth does,
    the loopback device doesn't (generic XDP only). :meth:`veth_pair` makes two
    devices whose transmits arrive at each other."""

    def __init__(self, net: Netns, name: str, *, loopback: bool = False,
                 native_xdp: bool | None = None, dev_addr: bytes | None = None,
                 num_queues: int = 1) -> None:
        ifindex = net.alloc_ifindex()
        if dev_addr is None:
            dev_addr = bytes(6) if loopback else bytes([0x02, 0, 0, 0, 0, ifindex & 0xFF])
        super().__init__(ifindex, name, dev_addr, bytes(6) if loopback else b"\xff" * 6)
        self.net = net
        self.loopback = loopback
        self.native_xdp = (not loopback) if native_xdp is None else native_xdp
        self.peer: Netdev | None = None
        self.registered = True
        #: real_num_rx_queues (= tx queues): what an AF_XDP socket may bind to.
        self.num_queues = num_queues
        #: dev->mtu (lo's default 65536, Ethernet's 1500): the largest frame an XDP
        #: redirect may send is mtu + hard_header_len + VLAN_HLEN (xdp_ok_fwd_dev).
        self.mtu = 65536 if loopback else 1500
        #: Set to a list to capture the frames that leave the device (ndo_start_xmit,
        #: ndo_xdp_xmit), in order.
        self.xmit_log: list[bytes] | None = None
        #: Packet sockets bound to the device (ETH_P_ALL taps): they see every frame
        #: XDP let through, before tc ingress (__netif_receive_skb_core).
        self.taps: list[Socket] = []
        #: dev->xdp_state[mode]: the program and the link that put it there.
        self.xdp_prog: dict[XdpMode, BpfProg | None] = dict.fromkeys(XdpMode)
        self.xdp_link: dict[XdpMode, XdpLink | None] = dict.fromkeys(XdpMode)
        #: tcx entries (None until the first attach; freed when emptied).
        self.tcx: dict[int, MprogEntry | None] = {AttachType.TCX_INGRESS: None,
                                                  AttachType.TCX_EGRESS: None}
        net.devices[ifindex] = self

    def __repr__(self) -> str:
        return f"<Netdev {self.name} ifindex {self.ifindex}>"

    @classmethod
    def veth_pair(cls, net: Netns, name: str, peer_name: str,
                  peer_net: Netns | None = None) -> tuple[Netdev, Netdev]:
        b = cls(peer_net or net, peer_name)  # veth_newlink registers the peer first
        a = cls(net, name)
        a.peer, b.peer = b, a
        return a, b

    @property
    def runtime(self) -> Runtime:
        return self.net.runtime

    def unregister(self) -> None:
        """unregister_netdevice: XDP and tcx links on it go defunct, programs go."""
        if not self.registered:
            return
        self.registered = False
        for mode in XdpMode:
            link = self.xdp_link[mode]
            if link is not None:
                link.dev = None
                link.attached = False
            prog = self.xdp_prog[mode]
            if prog is not None and link is None:
                prog.release()
            self.xdp_prog[mode] = None
            self.xdp_link[mode] = None
        for at, entry in self.tcx.items():
            if entry is None:
                continue
            for slot in entry.slots:
                if slot.link is not None:
                    assert isinstance(slot.link, TcxLink)
                    slot.link.dev = None
                    slot.link.attached = False
                else:
                    slot.prog.release()
            self.tcx[at] = None
        self.net.devices.pop(self.ifindex, None)
        if self.peer is not None:
            peer, self.peer = self.peer, None
            peer.peer = None
            peer.unregister()

    # -- XDP attach (dev_xdp_attach) -----------------------------------------------------------
    def xdp_mode(self, flags: int) -> XdpMode:
        """dev_xdp_mode: the mode named by flags, else native if the driver has it."""
        if flags & XdpFlags.SKB_MODE:
            return XdpMode.SKB
        if flags & XdpFlags.DRV_MODE:
            return XdpMode.DRV
        if flags & XdpFlags.HW_MODE:
            return XdpMode.HW
        return XdpMode.DRV if self.native_xdp else XdpMode.SKB

    def _has_bpf_op(self, mode: XdpMode) -> bool:
        """dev_xdp_bpf_op: generic always; native and offload need the driver's
        ndo_bpf."""
        return mode == XdpMode.SKB or self.native_xdp

    def xdp_attach(self, link: XdpLink | None, new_prog: BpfProg | None,
                   old_prog: BpfProg | None, flags: int) -> None:
        """dev_xdp_attach, check by check."""
        num_modes = bin(flags & XDP_FLAGS_MODES).count("1")
        if link is not None and (new_prog is not None or old_prog is not None):
            raise BpfError(errno.EINVAL, "either a link or a program")
        if link is not None and flags & ~XDP_FLAGS_MODES:
            raise BpfError(errno.EINVAL, "Invalid XDP flags for BPF link attachment")
        if num_modes > 1:
            raise BpfError(errno.EINVAL, "Only one XDP mode flag can be set")
        if not num_modes and sum(p is not None for p in self.xdp_prog.values()) > 1:
            raise BpfError(errno.EINVAL, "More than one program loaded, unset mode is ambiguous")
        if old_prog is not None and not flags & XdpFlags.REPLACE:
            raise BpfError(errno.EINVAL, "XDP_FLAGS_REPLACE is not specified")
        mode = self.xdp_mode(flags)
        if self.xdp_link[mode] is not None:
            raise BpfError(errno.EBUSY, "Can't replace active BPF XDP link")
        cur = self.xdp_prog[mode]
        if link is not None and cur is not None:
            raise BpfError(errno.EBUSY, "Can't replace active XDP program with BPF link")
        if flags & XdpFlags.REPLACE and cur is not old_prog:
            raise BpfError(errno.EEXIST, "Active program does not match expected")
        if link is not None:
            new_prog = link.prog
        if new_prog is not None:
            other = XdpMode.DRV if mode == XdpMode.SKB else XdpMode.SKB
            if flags & XdpFlags.UPDATE_IF_NOEXIST and cur is not None:
                raise BpfError(errno.EBUSY, "XDP program already attached")
            if mode != XdpMode.HW and self.xdp_prog[other] is not None:
                raise BpfError(errno.EEXIST, "Native and generic XDP can't be active at the "
                               "same time")
            if new_prog.expected_attach_type in (AttachType.XDP_DEVMAP, AttachType.XDP_CPUMAP):
                raise BpfError(errno.EINVAL, "devmap/cpumap programs can not be attached to "
                               "a device")
        if new_prog is not cur:
            if not self._has_bpf_op(mode):
                raise BpfError(errno.EOPNOTSUPP, "Underlying driver does not support XDP in "
                               f"{mode.name.lower()} mode")
            if mode == XdpMode.HW:  # dev_xdp_install: no simulated driver offloads
                raise BpfError(errno.EINVAL, "the driver refuses XDP_SETUP_PROG_HW")
        if link is not None:
            self.xdp_link[mode] = link  # the link holds its program
        elif new_prog is not None:
            new_prog.hold()
        self.xdp_prog[mode] = new_prog
        if cur is not None:  # only a netlink-attached program can be replaced here
            cur.release()

    def set_xdp_fd(self, fd: int, *, flags: int = 0, expected_fd: int = -1) -> None:
        """dev_change_xdp_fd (netlink IFLA_XDP): ``fd`` -1 removes the program."""
        rt = self.runtime
        if flags & ~XDP_FLAGS_MASK:
            raise BpfError(errno.EINVAL, f"invalid XDP flags {flags:#x}")
        new = prog_get_type(rt, fd, ProgType.XDP) if fd >= 0 else None
        old = prog_get_type(rt, expected_fd, ProgType.XDP) if expected_fd >= 0 else None
        self.xdp_attach(None, new, old, flags)

    def xdp_program(self) -> BpfProg | None:
        """The program the receive path runs (generic or native; offload is the NIC's)."""
        return self.xdp_prog[XdpMode.DRV] or self.xdp_prog[XdpMode.SKB]

    # -- tcx -----------------------------------------------------------------------------------
    def tcx_entry(self, attach_type: int, create: bool = False) -> MprogEntry | None:
        entry = self.tcx[attach_type]
        if entry is None and create:
            entry = MprogEntry()
        return entry

    def tcx_commit(self, attach_type: int, entry: MprogEntry) -> None:
        """tcx_entry_update: an emptied entry is freed (its revision starts over)."""
        self.tcx[attach_type] = entry if entry.slots else None

    # -- the data path -------------------------------------------------------------------------
    def receive(self, frame: bytes, *, rx_queue_index: int = 0,
                from_stack: bool = False) -> RxResult:
        """A frame arrives on the device: XDP, then (if it passed) the packet taps
        and tcx ingress. ``from_stack``: handed over by the stack (a tc redirect
        to ingress), which only generic XDP sees."""
        rt = self.runtime
        xdp_action = None
        prog = self.xdp_program()
        native = self.xdp_prog[XdpMode.DRV] is not None
        if from_stack and native:
            prog = None
        if prog is not None:
            from .xdp_redirect import XdpFrame, XdpNetContext, run_xdp, xdp_do_redirect

            run = run_xdp(rt, prog, XdpFrame(frame, self, rx_queue=rx_queue_index),
                          ingress_ifindex=self.ifindex, rx_queue_index=rx_queue_index)
            xdp_action, frame = run.action, run.frame.data
            if xdp_action == XdpAction.PASS:
                pass
            elif xdp_action == XdpAction.TX:
                if self.peer is not None:
                    self.xdp_xmit(frame)
                return RxResult("tx", frame, xdp_action=xdp_action)
            elif xdp_action == XdpAction.REDIRECT:
                # one NAPI poll: the redirect, then xdp_do_flush
                ctx = XdpNetContext(rt, generic=not native)
                res = xdp_do_redirect(ctx, run.frame, run.info)
                ctx.flush()
                return RxResult("drop" if res.err else "redirect", frame,
                                xdp_action=xdp_action, redirect_ifindex=res.ifindex,
                                redirect_flags=res.flags, redirect_map_type=res.map_type,
                                redirect_key=res.key, redirect_err=res.err)
            else:  # DROP, ABORTED or an unknown action (bpf_warn_invalid_xdp_action)
                return RxResult("drop", frame, xdp_action=xdp_action)
        for tap in list(self.taps):
            tap.receive(frame)
        return self._tcx(AttachType.TCX_INGRESS, frame, xdp_action)

    def transmit(self, frame: bytes, *, sender: Socket | None = None) -> RxResult:
        """A frame leaves through the device (dev_queue_xmit): tcx egress, then the
        packet taps (dev_queue_xmit_nit: all but the sending socket) and the wire."""
        result = self._tcx(AttachType.TCX_EGRESS, frame, None)
        if result.verdict == "pass":
            for tap in list(self.taps):
                if tap is not sender:
                    tap.receive(result.packet)
            self.wire(result.packet)
        return result

    def wire(self, frame: bytes) -> None:
        """ndo_start_xmit: a veth hands the frame to its peer, lo to itself."""
        if self.xmit_log is not None:
            self.xmit_log.append(frame)
        if self.peer is not None:
            self.peer.receive(frame)
        elif self.loopback:
            self.receive(frame)

    def has_ndo_xdp_xmit(self) -> bool:
        """NETDEV_XDP_ACT_NDO_XMIT: whether native XDP may send frames out of the
        device. A veth may while its peer's NAPI runs, i.e. the peer has a native
        XDP program (veth_set_xdp_features); lo has no ndo_xdp_xmit."""
        return (self.native_xdp and self.peer is not None
                and self.peer.xdp_prog[XdpMode.DRV] is not None)

    def xdp_xmit(self, frame: bytes) -> None:
        """ndo_xdp_xmit (XDP_TX, native XDP redirects): veth_xdp_xmit hands the
        frame to the peer only if the peer's NAPI runs (else it is dropped);
        devices without the op (lo) drop it."""
        if self.has_ndo_xdp_xmit():
            assert self.peer is not None
            if self.xmit_log is not None:
                self.xmit_log.append(frame)
            self.peer.receive(frame)

    def peer_dev(self) -> Netdev | None:
        """ndo_get_peer_dev: the other end of a veth or netkit pair (None for lo)."""
        return self.peer

    def _redirect(self, result: RxResult, *, nh: bytes | None = None,
                  at_ingress: bool = False) -> None:
        """skb_do_redirect: out of the target (dev_queue_xmit), or into it with
        BPF_F_INGRESS (dev_forward_skb); an unknown ifindex loses the frame.
        bpf_redirect_peer's (only from tc ingress): into the receive path of the
        target's peer, which must be up and in another namespace, else the frame
        is lost. bpf_redirect_neigh's: out of the target with a new L2 header."""
        from ..helpers.packet import BPF_F_NEIGH, BPF_F_PEER

        target = self.net.device(result.redirect_ifindex)
        if target is None:
            return
        if result.redirect_flags & BPF_F_PEER:
            peer = target.peer_dev()
            if at_ingress and peer is not None and peer.registered and peer.net is not self.net:
                peer.receive(result.packet, from_stack=True)  # another_round, skb->dev = peer
            return
        if result.redirect_flags & BPF_F_NEIGH:
            from .neigh import neigh_output

            frame = neigh_output(self.runtime, target, result.packet, nh)
            if frame is not None:
                target.transmit(frame)
            return
        if result.redirect_flags & BPF_F_INGRESS:
            target.receive(result.packet, from_stack=True)
        else:
            target.transmit(result.packet)

    def _tcx(self, attach_type: int, frame: bytes, xdp_action: int | None) -> RxResult:
        """tcx_run: programs in order until one is terminal (tcx_action_code)."""
        entry = self.tcx[attach_type]
        if entry is None or not entry.slots:
            return RxResult("pass", frame, xdp_action=xdp_action)
        from ..progs.skb import build_skb, release_skb, run_on_skb

        rt = self.runtime
        skb = build_skb(rt, frame, ProgType.SCHED_CLS, dev=self)
        skb.skb_iif = self.ifindex if attach_type == AttachType.TCX_INGRESS else 0
        skb.pkt_len = skb.len
        ret = int(TcxAction.NEXT)
        info = None
        try:
            for slot in list(entry.slots):
                skb.compute_data_pointers()
                vm = slot.prog.vm()
                vm.redirect_info = None
                r0, _ = run_on_skb(rt, slot.prog, skb)
                ret = r0 - (1 << 32) if r0 & 0x8000_0000 else r0
                info = vm.redirect_info
                if ret in _TCX_TERMINAL:
                    break
            else:
                ret = int(TcxAction.NEXT)
            if ret == TcxAction.PASS:
                skb.tc_index_ = skb.tc_classid_
            frame = skb.packet()
        finally:
            release_skb(rt, skb)
        if ret == TcxAction.DROP:
            return RxResult("drop", frame, xdp_action=xdp_action, tc_action=ret)
        if ret == TcxAction.REDIRECT and info is not None:
            result = RxResult("redirect", frame, xdp_action=xdp_action, tc_action=ret,
                              redirect_ifindex=info.tgt_index, redirect_flags=info.flags)
            self._redirect(result, nh=info.nh,
                           at_ingress=attach_type == AttachType.TCX_INGRESS)
            return result
        if ret == TcxAction.REDIRECT:
            return RxResult("drop", frame, xdp_action=xdp_action, tc_action=ret)
        return RxResult("pass", frame, xdp_action=xdp_action, tc_action=ret)


def dev_get_by_index(rt: Runtime, ifindex: int) -> Netdev | None:
    """__dev_get_by_index in the caller's namespace."""
    return current_net(rt).device(ifindex)


# -- XDP links ---------------------------------------------------------------------------------
class XdpLink(BpfLink):
    """struct bpf_xdp_link."""

    link_type = LinkType.XDP
    supports_detach = True
    supports_update = True

    def __init__(self, runtime: Runtime, prog: BpfProg, attach_type: int, dev: Netdev,
                 flags: int) -> None:
        super().__init__(runtime, prog, attach_type)
        self.dev: Netdev | None = dev
        self.flags = flags

    def attach(self) -> None:
        assert self.dev is not None
        try:
            self.dev.xdp_attach(self, None, None, self.flags)
        except BpfError:
            self.dev = None
            raise
        self.attached = True

    def release_hook(self) -> None:
        """bpf_xdp_link_release / dev_xdp_detach_link."""
        dev = self.dev
        if dev is not None:
            mode = dev.xdp_mode(self.flags)
            if dev.xdp_link[mode] is self:
                dev.xdp_link[mode] = None
                dev.xdp_prog[mode] = None
        self.dev = None
        self.attached = False

    def replace_prog(self, new: BpfProg) -> None:
        assert self.dev is not None
        mode = self.dev.xdp_mode(self.flags)
        super().replace_prog(new)
        self.dev.xdp_prog[mode] = new

    def fill_info(self, info: dict[str, int]) -> None:
        info["ifindex"] = self.dev.ifindex if self.dev is not None else 0


def xdp_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """bpf_xdp_link_attach (the device; flags are checked by the attach)."""
    dev = dev_get_by_index(rt, attr.target_ifindex)
    if dev is None:
        raise BpfError(errno.EINVAL, f"no device with ifindex {attr.target_ifindex}")
    return XdpLink(rt, prog, attr.attach_type, dev, attr.flags)


# -- tcx links and prog attach -----------------------------------------------------------------
class TcxLink(BpfLink):
    """struct tcx_link."""

    link_type = LinkType.TCX
    supports_detach = True
    supports_update = True

    def __init__(self, runtime: Runtime, prog: BpfProg, attr: LinkCreateAttr,
                 dev: Netdev) -> None:
        super().__init__(runtime, prog, attr.attach_type)
        self.dev: Netdev | None = dev
        self._flags = attr.flags
        self._relative = attr.relative_fd
        self._revision = attr.expected_revision

    def attach(self) -> None:
        """tcx_link_prog_attach."""
        dev = self.dev
        assert dev is not None and self.prog is not None
        entry = dev.tcx_entry(self.attach_type, create=True)
        assert entry is not None
        try:
            entry.attach(self.runtime, self.prog, self, None, self._flags, self._relative,
                         self._revision)
        except BpfError:
            self.dev = None
            raise
        dev.tcx_commit(self.attach_type, entry)
        self.attached = True

    def release_hook(self) -> None:
        """tcx_link_release."""
        dev = self.dev
        if dev is not None:
            entry = dev.tcx_entry(self.attach_type)
            if entry is not None and self.prog is not None:
                entry.detach(self.runtime, self.prog, self, 0, 0, 0)
                dev.tcx_commit(self.attach_type, entry)
        self.dev = None
        self.attached = False

    def update_prog(self, new: BpfProg, old: BpfProg | None) -> None:
        """tcx_link_update: ENOLINK, EPERM, the same program is a no-op, then the
        mprog replace (EEXIST if the new one is already on the hook)."""
        dev = self.dev
        if dev is None:
            raise BpfError(errno.ENOLINK, "the link is detached")
        if old is not None and old is not self.prog:
            raise BpfError(errno.EPERM, "old_prog_fd is not the link's program")
        if new is self.prog:
            return
        entry = dev.tcx_entry(self.attach_type)
        assert entry is not None
        entry.replace_link_prog(self, new)
        super().replace_prog(new)

    def fill_info(self, info: dict[str, int]) -> None:
        info["ifindex"] = self.dev.ifindex if self.dev is not None else 0
        info["attach_type"] = self.attach_type


def tcx_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """tcx_link_attach."""
    dev = dev_get_by_index(rt, attr.target_ifindex)
    if dev is None:
        raise BpfError(errno.ENODEV, f"no device with ifindex {attr.target_ifindex}")
    return TcxLink(rt, prog, attr, dev)


def tcx_prog_attach(rt: Runtime, attr: ProgAttachAttr, prog: BpfProg) -> None:
    """tcx_prog_attach."""
    dev = dev_get_by_index(rt, attr.target_ifindex)
    if dev is None:
        raise BpfError(errno.ENODEV, f"no device with ifindex {attr.target_ifindex}")
    replace = None
    if attr.attach_flags & AttachFlags.REPLACE:
        replace = prog_get_type(rt, attr.replace_bpf_fd, prog.prog_type)
    entry = dev.tcx_entry(attr.attach_type, create=True)
    assert entry is not None
    entry.attach(rt, prog, None, replace, attr.attach_flags, attr.relative_fd,
                 attr.expected_revision)
    dev.tcx_commit(attr.attach_type, entry)


def tcx_prog_detach(rt: Runtime, attr: ProgAttachAttr, prog: BpfProg | None) -> None:
    """tcx_prog_detach."""
    dev = dev_get_by_index(rt, attr.target_ifindex)
    if dev is None:
        raise BpfError(errno.ENODEV, f"no device with ifindex {attr.target_ifindex}")
    entry = dev.tcx_entry(attr.attach_type)
    if entry is None:
        raise BpfError(errno.ENOENT, "nothing is attached")
    entry.detach(rt, prog, None, attr.attach_flags, attr.relative_fd, attr.expected_revision)
    dev.tcx_commit(attr.attach_type, entry)


def tcx_prog_query(rt: Runtime, attr: ProgQueryAttr) -> ProgQueryResult:
    """tcx_prog_query."""
    dev = dev_get_by_index(rt, attr.target_fd)
    if dev is None:
        raise BpfError(errno.ENODEV, f"no device with ifindex {attr.target_fd}")
    entry = dev.tcx_entry(attr.attach_type) or MprogEntry()
    return entry.query(rt, attr)


register_link_kind(ProgType.XDP, xdp_link_create)
for _at in (AttachType.TCX_INGRESS, AttachType.TCX_EGRESS):
    register_link_kind(ProgType.SCHED_CLS, tcx_link_create, attach_type=_at)
register_prog_attach(ProgType.SCHED_CLS, tcx_prog_attach, tcx_prog_detach,
                     attach_types=(AttachType.TCX_INGRESS, AttachType.TCX_EGRESS))
register_prog_query((AttachType.TCX_INGRESS, AttachType.TCX_EGRESS), tcx_prog_query)
