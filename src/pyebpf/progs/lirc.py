"""BPF_PROG_TYPE_LIRC_MODE2: IR decoders on a lirc device (drivers/media/rc/bpf-lirc.c).

A LIRC_MODE2 program decodes raw infrared: it runs once per sample the
receiver reports, and its context is that one ``u32`` sample
(lirc_mode2_is_valid_access: a 4-byte read at offset 0, nothing else): the
mode in the top byte (LIRC_MODE2_PULSE, SPACE, FREQUENCY, TIMEOUT, OVERFLOW),
the value (microseconds, or Hz) in the low 24 bits. What it decodes it reports
with ``bpf_rc_keydown``, ``bpf_rc_repeat`` and ``bpf_rc_pointer_rel``
(pyebpf.helpers.rc), which become input events of the device. Its helpers are
lirc_mode2_func_proto's short list, not bpf_base_func_proto's; the return
value is ignored and there is no BPF_PROG_TEST_RUN (ENOTSUPP).

Programs go on a device with BPF_PROG_ATTACH (``target_fd`` an fd of the
lirc device, opened for writing; ``attach_flags`` must be 0), up to 64 of
them (E2BIG), each once (EEXIST); BPF_PROG_DETACH names the program
(ENOENT when it isn't there); BPF_PROG_QUERY lists them. A device whose
driver gives scancodes rather than raw IR (``driver_type`` "scancode" or
"ir_raw_tx") refuses all three (EINVAL); an fd that is not a lirc device is
EINVAL, a read-only one EPERM for attach/detach.

A test makes the device with ``rt.lirc_device()`` (:class:`LircDevice`) and
feeds it samples (:meth:`LircDevice.pulse`, :meth:`~LircDevice.space` ...);
the programs run in attach order on each, and :attr:`LircDevice.events` records
what they reported.
"""

from __future__ import annotations

import enum
import errno
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import BpfError
from ..links.base import (
    ProgQueryResult,
    prog_get_type,
    register_prog_attach,
    register_prog_query,
    write_query_ids,
)
from ..runtime import BpfObject, FMode, ObjKind
from ..uapi import AttachType, ProgType
from . import ProgTypeOps, register_prog_type
from .access import SCALAR, layout
from .ctx import CtxDevice

if TYPE_CHECKING:
    from ..attr import ProgAttachAttr, ProgQueryAttr
    from ..memory import Region
    from ..prog import BpfProg
    from ..runtime import Runtime

__all__ = ["LIRC_MODE2_CTX", "LircDevice", "LircMode2", "RcDriverType", "RcEvent",
           "lirc_mode2_is_valid_access"]

#: BPF_MAX_PROGS of bpf-lirc.c: programs one device runs.
BPF_MAX_PROGS = 64
#: include/uapi/linux/lirc.h.
LIRC_VALUE_MASK = 0x00FF_FFFF
LIRC_MODE2_MASK = 0xFF00_0000


class LircMode2(enum.IntEnum):
    """LIRC_MODE2_*: what a sample's top byte says it is."""

    SPACE = 0x0000_0000
    PULSE = 0x0100_0000
    FREQUENCY = 0x0200_0000
    TIMEOUT = 0x0300_0000
    OVERFLOW = 0x0400_0000


class RcDriverType(enum.IntEnum):
    """enum rc_driver_type: only raw IR receivers run BPF decoders."""

    SCANCODE = 0
    IR_RAW = 1
    IR_RAW_TX = 2


LIRC_MODE2_CTX = layout("lirc_mode2_sample", [("sample", 4)])


def lirc_mode2_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """lirc_mode2_is_valid_access: "We have one field of u32"."""
    return SCALAR if not write and off == 0 and size == 4 else None


@attrs.frozen
class RcEvent:
    """One report a decoder made (rc_keydown, rc_repeat, or a relative pointer
    move: input_report_rel of REL_X and REL_Y, then input_sync)."""

    kind: str
    protocol: int = 0
    scancode: int = 0
    toggle: int = 0
    rel_x: int = 0
    rel_y: int = 0


class LircDevice(BpfObject):
    """A remote-control receiver and its ``/dev/lircN`` (struct rc_dev with its
    ir_raw_event_ctrl): the attached programs, the sample they read, the events
    they reported. ``fd`` is open for reading and writing; :meth:`open` makes
    another fd (read-only ones can only query). The device stays until
    :meth:`unregister` and its last fd are gone."""

    kind = ObjKind.LIRC

    def __init__(self, runtime: Runtime, *, name: str = "rc0",
                 driver_type: RcDriverType | int = RcDriverType.IR_RAW) -> None:
        super().__init__(runtime)
        self.name = name
        self.driver_type = RcDriverType(driver_type)
        #: rcdev->raw: None once unregistered (or for scancode devices, never set).
        self.registered = True
        #: raw->progs, in attach order (each holds a program reference).
        self.progs: list[BpfProg] = []
        #: raw->bpf_sample: what the programs' ctx reads.
        self.sample = 0
        #: What the programs reported, in order.
        self.events: list[RcEvent] = []
        self._ctx: Region = runtime.memory.map_device(
            CtxDevice(LIRC_MODE2_CTX, self), LIRC_MODE2_CTX.size, kind="ctx",
            name="lirc_mode2_sample")
        self.hold()  # the driver's reference, dropped by unregister
        self.fd = self.open()

    def __repr__(self) -> str:
        return f"<LircDevice {self.name} {len(self.progs)} progs>"

    def open(self, mode: FMode = FMode.RW) -> int:
        """open("/dev/lircN") with ``mode`` (FMode.READ: O_RDONLY)."""
        return self.runtime.install_fd(self, mode)

    # -- the raw event path (lirc_raw_event -> lirc_bpf_run) -------------------------------------
    def feed(self, sample: int) -> None:
        """lirc_bpf_run: every attached program runs on ``sample``, in order
        (BPF_PROG_RUN_ARRAY; their return values are ignored)."""
        self.sample = sample & 0xFFFF_FFFF
        for prog in list(self.progs):
            prog.run(self._ctx.base)

    def pulse(self, usec: int) -> None:
        self.feed(LircMode2.PULSE | (usec & LIRC_VALUE_MASK))

    def space(self, usec: int) -> None:
        self.feed(LircMode2.SPACE | (usec & LIRC_VALUE_MASK))

    def timeout(self, usec: int) -> None:
        """The end of a packet (ev.timeout)."""
        self.feed(LircMode2.TIMEOUT | (usec & LIRC_VALUE_MASK))

    def frequency(self, hz: int) -> None:
        """A carrier report."""
        self.feed(LircMode2.FREQUENCY | (hz & LIRC_VALUE_MASK))

    def overflow(self) -> None:
        """The receiver overflowed: LIRC_OVERFLOW(LIRC_VALUE_MASK)."""
        self.feed(LircMode2.OVERFLOW | LIRC_VALUE_MASK)

    def send(self, durations: list[int]) -> None:
        """Alternating pulse and space durations (as ``ir-ctl --send`` gives
        them), pulse first."""
        for i, usec in enumerate(durations):
            (self.pulse if i % 2 == 0 else self.space)(usec)

    # -- what the rc helpers report ----------------------------------------------------------------
    def keydown(self, protocol: int, scancode: int, toggle: int) -> None:
        self.events.append(RcEvent("keydown", protocol=protocol, scancode=scancode,
                                   toggle=int(toggle != 0)))

    def repeat(self) -> None:
        self.events.append(RcEvent("repeat"))

    def pointer_rel(self, rel_x: int, rel_y: int) -> None:
        self.events.append(RcEvent("pointer_rel", rel_x=rel_x, rel_y=rel_y))

    # -- lifetime ------------------------------------------------------------------------------
    def unregister(self) -> None:
        """rc_unregister_device: the programs are put (lirc_bpf_free); fds stay
        open but attach/detach/query say ENODEV."""
        if not self.registered:
            return
        self.registered = False
        progs, self.progs = self.progs, []
        for prog in progs:
            prog.release()
        self.release()

    def free(self) -> None:
        self.runtime.memory.unmap(self._ctx)


# -- BPF_PROG_ATTACH / DETACH / QUERY ------------------------------------------------------------
def rc_dev_get_from_fd(rt: Runtime, fd: int, write: bool) -> LircDevice:
    """rc_dev_get_from_fd: EBADF, EINVAL (not a lirc fd), EPERM (read-only, for
    attach and detach)."""
    f = rt.file(fd)
    if not isinstance(f.obj, LircDevice):
        raise BpfError(errno.EINVAL, f"fd {fd} is not a lirc device")
    if write and not f.mode & FMode.WRITE:
        raise BpfError(errno.EPERM, f"fd {fd} is not open for writing")
    return f.obj


def _raw(dev: LircDevice) -> LircDevice:
    """The driver-type and rcdev->raw checks of lirc_bpf_attach/detach."""
    if dev.driver_type != RcDriverType.IR_RAW:
        raise BpfError(errno.EINVAL, f"{dev.name} is not a raw IR receiver")
    if not dev.registered:
        raise BpfError(errno.ENODEV, f"{dev.name} is gone")
    return dev


def lirc_prog_attach(rt: Runtime, attr: ProgAttachAttr, prog: BpfProg) -> None:
    """lirc_prog_attach / lirc_bpf_attach."""
    if attr.attach_flags:
        raise BpfError(errno.EINVAL, "lirc attach takes no attach_flags")
    dev = _raw(rc_dev_get_from_fd(rt, attr.target_fd, True))
    if len(dev.progs) >= BPF_MAX_PROGS:
        raise BpfError(errno.E2BIG, f"{dev.name} runs {BPF_MAX_PROGS} programs already")
    if prog in dev.progs:
        raise BpfError(errno.EEXIST, "the program is already attached to this device")
    prog.hold()
    dev.progs.append(prog)


def lirc_prog_detach(rt: Runtime, attr: ProgAttachAttr, _prog: BpfProg | None) -> None:
    """lirc_prog_detach / lirc_bpf_detach: the program first, then the device."""
    if attr.attach_flags:
        raise BpfError(errno.EINVAL, "lirc detach takes no attach_flags")
    prog = prog_get_type(rt, attr.attach_bpf_fd, ProgType.LIRC_MODE2)
    dev = _raw(rc_dev_get_from_fd(rt, attr.target_fd, True))
    if prog not in dev.progs:
        raise BpfError(errno.ENOENT, "the program is not attached to this device")
    dev.progs.remove(prog)
    prog.release()


def lirc_prog_query(rt: Runtime, attr: ProgQueryAttr) -> ProgQueryResult:
    """lirc_prog_query. Note the kernel copies every id out when ``prog_cnt`` is
    non-zero, however small it is (no ENOSPC): so does this."""
    if attr.query_flags:
        raise BpfError(errno.EINVAL, "lirc queries take no query_flags")
    dev = rc_dev_get_from_fd(rt, attr.target_fd, False)
    if dev.driver_type != RcDriverType.IR_RAW:
        raise BpfError(errno.EINVAL, f"{dev.name} is not a raw IR receiver")
    if not dev.registered:
        raise BpfError(errno.ENODEV, f"{dev.name} is gone")
    ids = tuple(p.id for p in dev.progs)
    if attr.prog_cnt and attr.prog_ids is not None and ids:
        write_query_ids(rt, attr.prog_ids, ids)
    return ProgQueryResult(attach_flags=0, prog_ids=ids)


register_prog_attach(ProgType.LIRC_MODE2, lirc_prog_attach, lirc_prog_detach)
register_prog_query((AttachType.LIRC_MODE2,), lirc_prog_query)
register_prog_type(ProgTypeOps(ProgType.LIRC_MODE2, ctx=LIRC_MODE2_CTX,
                               is_valid_access=lirc_mode2_is_valid_access))
