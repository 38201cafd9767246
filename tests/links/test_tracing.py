"""Tracing hooks: raw tracepoints, tracepoints, kprobes and perf events fired from Python."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf.attr import InfoByFdAttr, LinkCreateAttr, LinkDetachAttr, RawTracepointOpenAttr
from pyebpf.errors import BpfError
from pyebpf.links import (
    fire_kprobe,
    fire_raw_tracepoint,
    fire_tracepoint,
    open_kprobe,
    open_tracepoint,
    perf_event_overflow,
    perf_event_set_bpf,
    register_tracepoint,
)
from pyebpf.maps.perf_event_array import perf_event_open
from pyebpf.runtime import ObjKind, Runtime
from pyebpf.uapi import AttachType, Cmd, LinkType, ProgType

A = AttachType
#: r0 = args[1] (a raw tracepoint's second argument).
RAW_ARG1 = "ldxdw %r0, [%r1+8]\nexit"


def _err(fn: Any) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return exc.value.errno


def _raw_open(sys_bpf: Any, prog: int, name: Any = "sched_switch", cookie: int = 0) -> int:
    return int(sys_bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(
        name=name, prog_fd=prog, cookie=cookie)))


def test_raw_tracepoint_open_runs_the_program_with_the_arguments(rt: Runtime, load: Any,
                                                                 sys_bpf: Any) -> None:
    _raw_open(sys_bpf, load(ProgType.RAW_TRACEPOINT, RAW_ARG1))
    assert fire_raw_tracepoint(rt, "sched_switch", 0, 1234, 0, 0) == [1234]


def test_raw_tracepoint_link_reports_its_name_length_and_cookie(rt: Runtime, load: Any,
                                                                sys_bpf: Any) -> None:
    fd = _raw_open(sys_bpf, load(ProgType.RAW_TRACEPOINT, RAW_ARG1), cookie=77)
    info = sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd))
    assert (info.type, info.tp_name_len, info.cookie) == (LinkType.RAW_TRACEPOINT,
                                                           len("sched_switch") + 1, 77)


def test_raw_tracepoint_name_to_a_short_user_buffer_is_enospc(rt: Runtime, load: Any,
                                                              sys_bpf: Any) -> None:
    import struct

    fd = _raw_open(sys_bpf, load(ProgType.RAW_TRACEPOINT, RAW_ARG1))
    name_buf = rt.user_memory.map(bytearray(8), kind="user")
    info = bytearray(64)
    struct.pack_into("<QI", info, 16, name_buf.base, 6)
    with pytest.raises(BpfError) as exc:
        sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd, info_len=64,
                                                     info=bytes(info)))
    assert exc.value.errno == errno.ENOSPC
    assert rt.user_memory.read(name_buf.base, 6) == b"sched\0"


def test_raw_tracepoint_open_errors(load: Any, sys_bpf: Any) -> None:
    raw = load(ProgType.RAW_TRACEPOINT, RAW_ARG1)
    assert _err(lambda: _raw_open(sys_bpf, raw, "no_such_tp")) == errno.ENOENT
    assert _err(lambda: _raw_open(sys_bpf, raw, None)) == errno.EFAULT
    assert _err(lambda: _raw_open(sys_bpf, 99)) == errno.EBADF
    xdp = load(ProgType.XDP, "mov %r0, 2\nexit")
    assert _err(lambda: _raw_open(sys_bpf, xdp)) == errno.EINVAL


def test_raw_tracepoint_link_has_no_detach_or_update(load: Any, sys_bpf: Any) -> None:
    from pyebpf.attr import LinkUpdateAttr

    raw = load(ProgType.RAW_TRACEPOINT, RAW_ARG1)
    fd = _raw_open(sys_bpf, raw)
    assert _err(lambda: sys_bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=fd))) \
        == errno.EOPNOTSUPP
    assert _err(lambda: sys_bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=fd,
                                                                new_prog_fd=raw))) \
        == errno.EINVAL


def test_closing_a_raw_tracepoint_link_stops_it(rt: Runtime, load: Any, sys_bpf: Any) -> None:
    register_tracepoint(rt, "my_tp", 2)
    fd = _raw_open(sys_bpf, load(ProgType.RAW_TRACEPOINT, RAW_ARG1), "my_tp")
    assert fire_raw_tracepoint(rt, "my_tp", 1, 2) == [2]
    rt.close(fd)
    assert fire_raw_tracepoint(rt, "my_tp", 1, 2) == []


def test_raw_tracepoint_program_reading_past_the_arguments_is_einval(
        rt: Runtime, load: Any, sys_bpf: Any) -> None:
    register_tracepoint(rt, "one_arg", 1)
    prog = load(ProgType.RAW_TRACEPOINT, RAW_ARG1)  # the verifier records 16 for args[1]
    assert _err(lambda: _raw_open(sys_bpf, prog, "one_arg")) == errno.EINVAL


def test_kprobe_perf_link_runs_with_pt_regs(rt: Runtime, load: Any, link: Any) -> None:
    ev = open_kprobe(rt, "do_sys_openat2")
    link(load(ProgType.KPROBE, "ldxdw %r0, [%r1+112]\nexit"), ev, A.PERF_EVENT)  # regs->di
    assert fire_kprobe(rt, "do_sys_openat2", {"di": 42}) == [42]


def test_tracepoint_perf_link_runs_with_the_record(rt: Runtime, load: Any, link: Any,
                                                   sys_bpf: Any) -> None:
    ev = open_tracepoint(rt, "syscalls/sys_enter_openat")
    lfd = link(load(ProgType.TRACEPOINT, "ldxdw %r0, [%r1+8]\nexit"), ev, A.PERF_EVENT,
               bpf_cookie=5)
    assert fire_tracepoint(rt, "syscalls/sys_enter_openat", bytes(8) + (99).to_bytes(8,
                                                                                 "little")) \
        == [99]
    info = sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=lfd))
    assert (info.type, info.perf_event_type, info.cookie) == (LinkType.PERF_EVENT, 5, 5)


def test_perf_event_takes_programs_of_its_kind_only(rt: Runtime, load: Any,
                                                   link: Any) -> None:
    kp = open_kprobe(rt, "f")
    tp_prog = load(ProgType.TRACEPOINT, "mov %r0, 0\nexit")
    assert _err(lambda: link(tp_prog, kp, A.PERF_EVENT)) == errno.EINVAL
    assert _err(lambda: link(tp_prog, open_tracepoint(rt, "t"), A.PERF_EVENT,
                             flags=1)) == errno.EINVAL
    assert _err(lambda: link(tp_prog, 999, A.PERF_EVENT)) == errno.EBADF
    xdp = load(ProgType.XDP, "mov %r0, 2\nexit")
    assert _err(lambda: link(tp_prog, xdp, A.PERF_EVENT)) == errno.EBADF


def test_one_program_per_perf_event_but_events_share_the_trace_event(
        rt: Runtime, load: Any, link: Any) -> None:
    a, b = open_kprobe(rt, "f"), open_kprobe(rt, "f")
    p1 = load(ProgType.KPROBE, "mov %r0, 1\nexit")
    p2 = load(ProgType.KPROBE, "mov %r0, 2\nexit")
    link(p1, a, A.PERF_EVENT)
    assert _err(lambda: link(p2, a, A.PERF_EVENT)) == errno.EEXIST
    assert _err(lambda: link(p1, b, A.PERF_EVENT)) == errno.EEXIST  # already on "f"
    link(p2, b, A.PERF_EVENT)
    assert fire_kprobe(rt, "f") == [1, 2]


def test_ioctl_set_bpf_lasts_until_the_event_is_closed(rt: Runtime, load: Any) -> None:
    ev = open_tracepoint(rt, "t")
    prog = load(ProgType.TRACEPOINT, "mov %r0, 7\nexit")
    pid = rt.fds[prog].obj.id
    perf_event_set_bpf(rt, ev, prog)
    rt.close(prog)
    assert fire_tracepoint(rt, "t", bytes(16)) == [7]
    rt.close(ev)
    assert fire_tracepoint(rt, "t", bytes(16)) == []
    assert pid not in rt.objects(ObjKind.PROG)


def test_perf_link_keeps_the_event_open(rt: Runtime, load: Any, link: Any) -> None:
    ev = open_kprobe(rt, "g")
    lfd = link(load(ProgType.KPROBE, "mov %r0, 3\nexit"), ev, A.PERF_EVENT)
    rt.close(ev)
    assert fire_kprobe(rt, "g") == [3]
    rt.close(lfd)
    assert fire_kprobe(rt, "g") == []


def test_software_event_runs_its_perf_event_program_on_overflow(rt: Runtime, load: Any,
                                                                sys_bpf: Any) -> None:
    ev = perf_event_open(rt)
    prog = load(ProgType.PERF_EVENT, "ldxdw %r0, [%r1+176]\nexit")  # ctx->addr
    sys_bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=prog, target_fd=ev,
                                            attach_type=A.PERF_EVENT))
    assert perf_event_overflow(rt, ev, addr=0xABC) == 0xABC
    kp = load(ProgType.KPROBE, "mov %r0, 0\nexit")
    assert _err(lambda: sys_bpf(Cmd.LINK_CREATE, LinkCreateAttr(
        prog_fd=kp, target_fd=perf_event_open(rt), attach_type=A.PERF_EVENT))) == errno.EINVAL
