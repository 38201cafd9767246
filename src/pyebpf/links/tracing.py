"""Tracing hooks: raw tracepoints, tracepoints, kprobes and perf events
(kernel/bpf/syscall.c bpf_raw_tp_link_attach / bpf_perf_link_attach,
kernel/trace/bpf_trace.c, kernel/events/core.c perf_event_set_bpf_prog).

Raw tracepoints: the runtime knows a table of tracepoints by name with their
argument counts (:data:`RAW_TRACEPOINTS`; :func:`register_tracepoint` adds
more). BPF_RAW_TRACEPOINT_OPEN (a RAW_TRACEPOINT program and a name) gives a
link of type RAW_TRACEPOINT: an unknown name is ENOENT, a NULL name EFAULT,
another program type EINVAL, and a program reading past the tracepoint's
arguments EINVAL (bpf_probe_register: the ``max_ctx_offset`` the verifier
recorded is more than 8 bytes per argument), as is a RAW_TRACEPOINT_WRITABLE
program reaching further into args[0]'s buffer (``max_tp_access``) than the
tracepoint's writable size (0 unless it was declared with
DECLARE_TRACE_WRITABLE: :func:`register_tracepoint`'s ``writable_size``).
:func:`fire_raw_tracepoint` calls every attached program with the u64
arguments as its ctx.

Perf events: :func:`open_tracepoint` / :func:`open_kprobe` are what
``perf_event_open`` with PERF_TYPE_TRACEPOINT or the kprobe PMU gives: an fd
of a :class:`TraceEvent`-backed perf event. A program goes on it with
BPF_LINK_CREATE (attach_type BPF_PERF_EVENT, ``bpf_cookie``; a link of type
PERF_EVENT) or with :func:`perf_event_set_bpf` (ioctl PERF_EVENT_IOC_SET_BPF,
until the event is closed). The rules of perf_event_set_bpf_prog: a kprobe
takes KPROBE programs, a tracepoint TRACEPOINT ones (else EINVAL); one program
per perf event (EEXIST); a trace event runs at most 64 programs (E2BIG), all
perf events on it sharing one array. Software/hardware events (opened with
pyebpf.maps.perf_event_array.perf_event_open) take one PERF_EVENT program,
run on :func:`perf_event_overflow`.

Firing: :func:`fire_tracepoint` (the raw record bytes as the ctx),
:func:`fire_kprobe` (a ``pt_regs``: a dict of register names or the 168
bytes). Each returns the programs' return values in order.
"""

from __future__ import annotations

import errno
import struct
import weakref
from typing import Any

import attrs

from ..attr import LinkCreateAttr, RawTracepointOpenAttr, UserPtr
from ..errors import BpfError
from ..maps.perf_event_array import PerfEvent, PerfEventAttr
from ..prog import BpfProg
from ..progs.tracing import BPF_PERF_EVENT_DATA, PT_REGS, PT_REGS_NAMES
from ..runtime import Runtime
from ..syscall import _copy_out, copy_from_user, register_command
from ..uapi import AttachType, Cmd, LinkType, ProgType
from .base import BpfLink, prog_get, register_link_kind, settle_link

__all__ = ["RAW_TRACEPOINTS", "PerfLink", "RawTracepointLink", "TraceEvent",
           "fire_kprobe", "fire_raw_tracepoint", "fire_tracepoint", "open_kprobe",
           "open_tracepoint", "perf_event_overflow", "perf_event_set_bpf",
           "register_tracepoint"]

#: BPF_TRACE_MAX_PROGS: programs one trace event runs.
BPF_TRACE_MAX_PROGS = 64
PERF_TYPE_TRACEPOINT = 2
#: The kprobe PMU's type (dynamic on a real system: /sys/bus/event_source/devices/kprobe/type).
PERF_TYPE_KPROBE = 6
#: Some of the kernel's tracepoints and their argument counts (TP_PROTO, as of Linux
#: 6.18: tests/kernel/test_raw_tp_access_differential.py checks them).
RAW_TRACEPOINTS: dict[str, int] = {
    "sched_switch": 4, "sched_wakeup": 1, "sched_wakeup_new": 1, "sched_process_exec": 3,
    "sched_process_fork": 2, "sched_process_exit": 2, "sched_process_free": 1,
    "sys_enter": 2, "sys_exit": 2, "task_newtask": 2, "task_rename": 2,
    "netif_receive_skb": 1, "net_dev_queue": 1, "net_dev_xmit": 4, "kfree_skb": 4,
    "consume_skb": 2, "inet_sock_set_state": 3, "tcp_retransmit_skb": 3,
    "block_rq_issue": 1, "block_rq_complete": 3, "irq_handler_entry": 2,
    "irq_handler_exit": 3, "softirq_entry": 1, "softirq_exit": 1, "cpu_idle": 2,
    "mm_page_alloc": 4, "kmalloc": 6, "kfree": 2,
}
_MAX_TP_NAME = 128


@attrs.define(eq=False)
class TraceEvent:
    """struct trace_event_call: a tracepoint or a kprobe, with the program array
    every perf event opened on it shares."""

    name: str
    kind: str  # "tracepoint" | "kprobe"
    id: int
    progs: list[tuple[BpfProg, int]] = attrs.Factory(list)


def _state(rt: Runtime) -> dict[str, Any]:
    got: dict[str, Any] | None = rt.hooks.get("tracing")
    if got is None:
        got = rt.hooks["tracing"] = {"raw_tp": dict(RAW_TRACEPOINTS), "raw_links": {},
                                     "tp_writable_size": {}, "events": {}, "next_id": 1}
    return got


def register_tracepoint(rt: Runtime, name: str, num_args: int, writable_size: int = 0) -> None:
    """Make a raw tracepoint ``name`` with ``num_args`` u64 arguments known;
    ``writable_size``: the bytes of args[0] a RAW_TRACEPOINT_WRITABLE program may
    reach (struct bpf_raw_event_map's writable_size)."""
    st = _state(rt)
    st["raw_tp"][name] = num_args
    st["tp_writable_size"][name] = writable_size


def _trace_event(rt: Runtime, name: str, kind: str) -> TraceEvent:
    events: dict[tuple[str, str], TraceEvent] = _state(rt)["events"]
    ev = events.get((kind, name))
    if ev is None:
        st = _state(rt)
        ev = events[(kind, name)] = TraceEvent(name, kind, st["next_id"])
        st["next_id"] += 1
    return ev


# -- raw tracepoints ------------------------------------------------------------------------
class RawTracepointLink(BpfLink):
    """struct bpf_raw_tp_link."""

    link_type = LinkType.RAW_TRACEPOINT

    def __init__(self, runtime: Runtime, prog: BpfProg, tp_name: str, cookie: int) -> None:
        super().__init__(runtime, prog, prog.expected_attach_type)
        self.tp_name = tp_name
        self.cookie = cookie

    def attach(self) -> None:
        """__bpf_probe_register: the program reads no argument past the tracepoint's,
        and no further into a writable tracepoint's buffer than it offers."""
        st = _state(self.runtime)
        num_args = st["raw_tp"][self.tp_name]
        writable_size = st["tp_writable_size"].get(self.tp_name, 0)
        assert self.prog is not None
        if self.prog.max_ctx_offset > num_args * 8:
            raise BpfError(errno.EINVAL, f"the program reads {self.prog.max_ctx_offset} "
                           f"ctx bytes, past the {num_args} arguments of {self.tp_name}")
        if self.prog.max_tp_access > writable_size:
            raise BpfError(errno.EINVAL, f"the program reaches {self.prog.max_tp_access} "
                           f"bytes into the buffer of {self.tp_name}, which offers "
                           f"{writable_size}")
        _state(self.runtime)["raw_links"].setdefault(self.tp_name, []).append(self)
        self.attached = True

    def release_hook(self) -> None:
        links = _state(self.runtime)["raw_links"].get(self.tp_name, [])
        if self in links:
            links.remove(self)
        self.attached = False

    def fill_info(self, info: dict[str, int]) -> None:
        """bpf_raw_tp_link_fill_link_info: the name goes to the caller's buffer."""
        ubuf, ulen = info.get("tp_name", 0), info.get("tp_name_len", 0)
        if bool(ulen) != bool(ubuf):
            raise BpfError(errno.EINVAL, "tp_name and tp_name_len go together")
        name = self.tp_name.encode()
        info["tp_name_len"] = len(name) + 1
        info["cookie"] = self.cookie
        if ubuf:
            _copy_name(self.runtime, ubuf, ulen, name)


def _copy_name(rt: Runtime, addr: int, ulen: int, name: bytes) -> None:
    """bpf_copy_to_user: the name and its NUL, cut (ENOSPC) when it doesn't fit."""
    if ulen >= len(name) + 1:
        _copy_out(rt, UserPtr(addr), name + b"\0")
        return
    _copy_out(rt, UserPtr(addr), name[:ulen - 1] + b"\0")
    raise BpfError(errno.ENOSPC, "tp_name_len is too small for the name")


def _user_string(rt: Runtime, name: str | bytes | UserPtr | None) -> str:
    """strncpy_from_user of at most 127 bytes (EFAULT for NULL or a bad address)."""
    if name is None:
        raise BpfError(errno.EFAULT, "NULL tracepoint name")
    if isinstance(name, UserPtr):
        out = bytearray()
        while len(out) < _MAX_TP_NAME - 1:
            (b,) = copy_from_user(rt, UserPtr(name.addr + len(out)), 1)
            if not b:
                break
            out.append(b)
        return out.decode("latin-1")
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return text.split("\0", 1)[0][:_MAX_TP_NAME - 1]


def raw_tracepoint_open(rt: Runtime, attr: RawTracepointOpenAttr) -> int:
    """bpf_raw_tracepoint_open / bpf_raw_tp_link_attach."""
    prog = prog_get(rt, attr.prog_fd)
    if prog.prog_type in (ProgType.TRACING, ProgType.EXT, ProgType.LSM):
        if attr.name is not None:
            raise BpfError(errno.EINVAL, "this program's attach point comes from its BTF id")
        if prog.prog_type == ProgType.EXT:  # bpf_tracing_prog_attach(prog, 0, 0, 0)
            from ..progs.ext import ext_tracing_prog_attach

            return settle_link(rt, ext_tracing_prog_attach(rt, prog, 0, 0, 0))
        from ..progs.tracing_btf import tracing_raw_tp_open

        return settle_link(rt, tracing_raw_tp_open(rt, prog, attr.cookie))
    if prog.prog_type not in (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE):
        raise BpfError(errno.EINVAL, f"{prog.prog_type.name} programs don't go on raw "
                       "tracepoints")
    name = _user_string(rt, attr.name)
    if name not in _state(rt)["raw_tp"]:
        raise BpfError(errno.ENOENT, f"no raw tracepoint {name!r}")
    return settle_link(rt, RawTracepointLink(rt, prog, name, attr.cookie))


def fire_raw_tracepoint(rt: Runtime, name: str, *args: int) -> list[int]:
    """The tracepoint fires with ``args``: every attached program runs with
    ``u64 args[]`` as its ctx (__bpf_trace_run). Returns their r0s."""
    if name not in _state(rt)["raw_tp"]:
        raise KeyError(f"no raw tracepoint {name!r}")
    from ..progs.tracing_btf import bpf_run_ctx

    ctx = b"".join(struct.pack("<Q", a & 0xFFFF_FFFF_FFFF_FFFF) for a in args)
    out = []
    for link in list(_state(rt)["raw_links"].get(name, [])):
        with bpf_run_ctx(rt, link.cookie):  # bpf_trace_run_ctx: bpf_get_attach_cookie
            out.append(_run_with(rt, link.prog, bytearray(ctx.ljust(8, b"\0")),
                                 "raw_tp_args"))
    return out


def _run_with(rt: Runtime, prog: BpfProg | None, ctx: bytearray, name: str) -> int:
    assert prog is not None
    region = rt.memory.map(ctx, kind="ctx", name=name)
    try:
        return prog.run(region.base)
    finally:
        rt.unmap_later(region)


# -- perf events ---------------------------------------------------------------------------------
class TracePerfEvent(PerfEvent):
    """A perf event on a tracepoint or kprobe (perf_event_is_tracing)."""

    def __init__(self, runtime: Runtime, attr: PerfEventAttr, cpu: int,
                 tp_event: TraceEvent) -> None:
        super().__init__(runtime, attr, cpu)
        self.tp_event = tp_event

    def free(self) -> None:
        """perf_event_free_bpf_prog: a program set with the ioctl goes with the event."""
        _detach_event_prog(self)
        super().free()


def _event_state(event: PerfEvent) -> dict[str, Any]:
    """event->prog and event->bpf_cookie."""
    table: weakref.WeakKeyDictionary[PerfEvent, dict[str, Any]] = _state(
        event.runtime).setdefault("event_progs", weakref.WeakKeyDictionary())
    got = table.get(event)
    if got is None:
        got = table[event] = {"prog": None, "cookie": 0}
    return got


def _detach_event_prog(event: PerfEvent) -> None:
    """perf_event_detach_bpf_prog."""
    st = _event_state(event)
    prog = st["prog"]
    if prog is None:
        return
    if isinstance(event, TracePerfEvent):
        event.tp_event.progs = [(p, c) for p, c in event.tp_event.progs if p is not prog]
    st["prog"] = None
    prog.release()


def _open(rt: Runtime, name: str, kind: str, ptype: int, cpu: int, pid: int) -> int:
    if cpu == -1 and pid == -1:
        raise BpfError(errno.EINVAL, "a perf event needs a task or a CPU")
    if cpu < -1 or cpu >= rt.nr_cpus:
        raise BpfError(errno.EINVAL, f"CPU {cpu} is not online")
    ev = _trace_event(rt, name, kind)
    attr = PerfEventAttr(type=ptype, config=ev.id, sample_type=0)
    return rt.install_fd(TracePerfEvent(rt, attr, cpu, ev))


def open_tracepoint(rt: Runtime, name: str, *, cpu: int = 0, pid: int = -1) -> int:
    """perf_event_open(PERF_TYPE_TRACEPOINT, config = the tracepoint's id)."""
    return _open(rt, name, "tracepoint", PERF_TYPE_TRACEPOINT, cpu, pid)


def open_kprobe(rt: Runtime, func: str, *, cpu: int = 0, pid: int = -1) -> int:
    """perf_event_open on the kprobe PMU for ``func``."""
    return _open(rt, func, "kprobe", PERF_TYPE_KPROBE, cpu, pid)


def _perf_event_get(rt: Runtime, fd: int) -> PerfEvent:
    f = rt.file(fd)
    if not isinstance(f.obj, PerfEvent):
        raise BpfError(errno.EBADF, f"fd {fd} is not a perf event")
    return f.obj


def perf_event_set_bpf_prog(event: PerfEvent, prog: BpfProg, cookie: int) -> None:
    """perf_event_set_bpf_prog (the program reference passes to the event)."""
    st = _event_state(event)
    if not isinstance(event, TracePerfEvent):
        # perf_event_set_bpf_handler: an occupied event first, then the type
        if st["prog"] is not None:
            raise BpfError(errno.EEXIST, "the event has a program")
        if prog.prog_type != ProgType.PERF_EVENT:
            raise BpfError(errno.EINVAL, "a software/hardware event takes PERF_EVENT programs")
        prog.hold()
        st["prog"], st["cookie"] = prog, cookie
        return
    tp = event.tp_event
    want = ProgType.KPROBE if tp.kind == "kprobe" else ProgType.TRACEPOINT
    if prog.prog_type != want:
        raise BpfError(errno.EINVAL, f"a {tp.kind} takes {want.name} programs")
    if st["prog"] is not None:
        raise BpfError(errno.EEXIST, "the event has a program")
    if len(tp.progs) >= BPF_TRACE_MAX_PROGS:
        raise BpfError(errno.E2BIG, f"{BPF_TRACE_MAX_PROGS} programs on {tp.name} already")
    if any(p is prog for p, _ in tp.progs):
        raise BpfError(errno.EEXIST, "the program already runs on this trace event")
    prog.hold()
    tp.progs.append((prog, cookie))
    st["prog"], st["cookie"] = prog, cookie


def perf_event_set_bpf(rt: Runtime, event_fd: int, prog_fd: int) -> None:
    """ioctl(event_fd, PERF_EVENT_IOC_SET_BPF, prog_fd)."""
    event = _perf_event_get(rt, event_fd)
    perf_event_set_bpf_prog(event, prog_get(rt, prog_fd), 0)


class PerfLink(BpfLink):
    """struct bpf_perf_link: holds the perf event; releasing detaches the program."""

    link_type = LinkType.PERF_EVENT

    def __init__(self, runtime: Runtime, prog: BpfProg, event: PerfEvent, cookie: int) -> None:
        super().__init__(runtime, prog, AttachType.PERF_EVENT)
        self.event = event
        self.cookie = cookie
        event.hold()

    def attach(self) -> None:
        assert self.prog is not None
        perf_event_set_bpf_prog(self.event, self.prog, self.cookie)
        self.attached = True

    def release_hook(self) -> None:
        _detach_event_prog(self.event)
        self.attached = False

    def free(self) -> None:
        super().free()
        self.event.release()

    def fill_info(self, info: dict[str, int]) -> None:
        ev = self.event
        kind = ev.tp_event.kind if isinstance(ev, TracePerfEvent) else "event"
        #: enum bpf_perf_event_type: KPROBE 3, TRACEPOINT 5, EVENT 6.
        info["perf_event_type"] = {"kprobe": 3, "tracepoint": 5}.get(kind, 6)
        if kind == "event":
            info["config"] = ev.attr.config
            info["event_type"] = ev.attr.type
            info["cookie"] = self.cookie
        elif kind == "tracepoint":
            # the tracepoint's own name, without its "category/" (tp->name)
            info["name_len"] = len(ev.tp_event.name.rpartition("/")[2]) + 1
            info["cookie"] = self.cookie
        else:
            info["name_len"] = len(ev.tp_event.name) + 1
            info["kprobe_cookie"] = self.cookie


def perf_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """bpf_perf_link_attach."""
    if attr.flags:
        raise BpfError(errno.EINVAL, "perf event links take no flags")
    return PerfLink(rt, prog, _perf_event_get(rt, attr.target_fd), attr.bpf_cookie)


def _regs_bytes(regs: dict[str, int] | bytes | None) -> bytearray:
    if isinstance(regs, (bytes, bytearray)):
        return bytearray(bytes(regs).ljust(PT_REGS.size, b"\0")[:PT_REGS.size])
    out = bytearray(PT_REGS.size)
    for name, value in (regs or {}).items():
        if name not in PT_REGS_NAMES:
            raise KeyError(f"pt_regs has no {name!r}")
        f = PT_REGS[name]
        out[f.offset:f.end] = (value & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little")
    return out


def _fire(rt: Runtime, ev: TraceEvent, ctx: bytes, name: str) -> list[int]:
    """trace_call_bpf: each program with its attachment's cookie in the run ctx
    (bpf_get_attach_cookie) and, on a kprobe, the kprobe running (bpf_get_func_ip)."""
    from contextlib import nullcontext

    from ..helpers.kprobe import kprobe_running
    from ..progs.tracing_btf import bpf_run_ctx

    out = []
    for prog, cookie in list(ev.progs):
        probe = kprobe_running(rt, ev.name) if ev.kind == "kprobe" else nullcontext()
        with bpf_run_ctx(rt, cookie), probe:
            out.append(_run_with(rt, prog, bytearray(ctx), name))
    return out


def fire_tracepoint(rt: Runtime, name: str, record: bytes) -> list[int]:
    """The tracepoint fires: every program on it runs with the raw ``record``
    (common fields first, as the tracepoint's format says) as its ctx."""
    return _fire(rt, _trace_event(rt, name, "tracepoint"), record, "trace_record")


def fire_kprobe(rt: Runtime, func: str, regs: dict[str, int] | bytes | None = None) -> list[int]:
    """``func`` is entered: every KPROBE program on it runs with ``regs`` (by
    pt_regs name, e.g. ``{"di": 1, "si": 2}``, or raw bytes) as its ctx."""
    return _fire(rt, _trace_event(rt, func, "kprobe"), bytes(_regs_bytes(regs)), "pt_regs")


def perf_event_overflow(rt: Runtime, event_fd: int, *, regs: dict[str, int] | None = None,
                        addr: int = 0) -> int | None:
    """A software/hardware event overflows: its PERF_EVENT program runs with a
    struct bpf_perf_event_data (None: no program)."""
    event = _perf_event_get(rt, event_fd)
    prog = _event_state(event)["prog"]
    if prog is None:
        return None
    ctx = _regs_bytes(regs) + struct.pack("<QQ", event.attr.sample_period, addr)
    assert len(ctx) == BPF_PERF_EVENT_DATA.size
    from ..progs.tracing_btf import bpf_run_ctx

    with bpf_run_ctx(rt, _event_state(event)["cookie"]):  # bpf_get_attach_cookie_pe
        return _run_with(rt, prog, ctx, "bpf_perf_event_data")


for _pt in (ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.PERF_EVENT):
    register_link_kind(_pt, perf_link_create, attach_type=AttachType.PERF_EVENT)
register_command(Cmd.RAW_TRACEPOINT_OPEN, raw_tracepoint_open)
