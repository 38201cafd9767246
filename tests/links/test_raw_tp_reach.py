"""bpf_probe_register's reach checks on BPF_RAW_TRACEPOINT_OPEN: a program may
read no argument past the tracepoint's (max_ctx_offset <= 8 * num_args), and a
RAW_TRACEPOINT_WRITABLE program may reach no further into args[0]'s buffer than
the tracepoint's writable size (max_tp_access)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf.attr import RawTracepointOpenAttr
from pyebpf.errors import BpfError
from pyebpf.links import fire_raw_tracepoint, register_tracepoint
from pyebpf.runtime import Runtime
from pyebpf.uapi import Cmd, ProgType

#: r0 = ((u32 *)args[0])[3]: reads bytes 12..16 of a writable tracepoint's buffer.
READ_BUFFER_12 = "ldxdw %r1, [%r1+0]\nldxw %r0, [%r1+12]\nexit"


def _open(sys_bpf: Any, prog: int, name: str) -> int:
    return int(sys_bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(name=name,
                                                                      prog_fd=prog)))


def _errno(fn: Any) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return exc.value.errno


def test_reading_the_last_argument_attaches(rt: Runtime, load: Any, sys_bpf: Any) -> None:
    register_tracepoint(rt, "two_args", 2)
    _open(sys_bpf, load(ProgType.RAW_TRACEPOINT, "ldxdw %r0, [%r1+8]\nexit"), "two_args")
    assert fire_raw_tracepoint(rt, "two_args", 5, 6) == [6]


def test_reading_one_argument_too_far_is_einval(rt: Runtime, load: Any,
                                                sys_bpf: Any) -> None:
    register_tracepoint(rt, "two_args", 2)
    prog = load(ProgType.RAW_TRACEPOINT, "ldxdw %r0, [%r1+16]\nexit")
    assert _errno(lambda: _open(sys_bpf, prog, "two_args")) == errno.EINVAL


def test_a_narrow_read_ending_inside_the_arguments_attaches(rt: Runtime, load: Any,
                                                            sys_bpf: Any) -> None:
    register_tracepoint(rt, "two_args", 2)
    _open(sys_bpf, load(ProgType.RAW_TRACEPOINT, "ldxb %r0, [%r1+15]\nexit"), "two_args")
    assert fire_raw_tracepoint(rt, "two_args", 0, 0xAB << 56) == [0xAB]


def test_a_refused_attach_leaves_nothing_attached(rt: Runtime, load: Any,
                                                  sys_bpf: Any) -> None:
    register_tracepoint(rt, "one_arg", 1)
    prog = load(ProgType.RAW_TRACEPOINT, "ldxdw %r0, [%r1+8]\nexit")
    _errno(lambda: _open(sys_bpf, prog, "one_arg"))
    assert fire_raw_tracepoint(rt, "one_arg", 1) == []
    assert rt.fds[prog].obj.refcnt == 1


def test_writable_program_touching_the_buffer_is_einval_on_a_plain_tracepoint(
        rt: Runtime, load: Any, sys_bpf: Any) -> None:
    prog = load(ProgType.RAW_TRACEPOINT_WRITABLE, READ_BUFFER_12)
    assert _errno(lambda: _open(sys_bpf, prog, "sched_switch")) == errno.EINVAL


def test_writable_program_leaving_the_buffer_alone_attaches_anywhere(
        load: Any, sys_bpf: Any) -> None:
    prog = load(ProgType.RAW_TRACEPOINT_WRITABLE, "ldxdw %r0, [%r1+8]\nexit")
    _open(sys_bpf, prog, "sched_switch")


def test_writable_tracepoint_takes_programs_within_its_writable_size(
        rt: Runtime, load: Any, sys_bpf: Any) -> None:
    register_tracepoint(rt, "wr16", 1, writable_size=16)
    register_tracepoint(rt, "wr12", 1, writable_size=12)
    prog = load(ProgType.RAW_TRACEPOINT_WRITABLE, READ_BUFFER_12)
    _open(sys_bpf, prog, "wr16")
    assert _errno(lambda: _open(sys_bpf, prog, "wr12")) == errno.EINVAL


def test_writable_tracepoint_program_writes_into_the_buffer_args0_points_at(
        rt: Runtime, load: Any, sys_bpf: Any) -> None:
    """args[0] of a writable tracepoint is its buffer (PTR_TO_TP_BUFFER): what the
    program stores there is what the tracepoint's caller finds afterwards."""
    register_tracepoint(rt, "wr8", 1, writable_size=8)
    prog = load(ProgType.RAW_TRACEPOINT_WRITABLE,
                "ldxdw %r1, [%r1+0]\nldxw %r0, [%r1+0]\nadd %r0, 1\nstxw [%r1+4], %r0\nexit")
    _open(sys_bpf, prog, "wr8")
    buf = bytearray((41).to_bytes(4, "little") + bytes(4))
    region = rt.memory.map(buf, kind="kernel", name="tp_buffer")
    assert fire_raw_tracepoint(rt, "wr8", region.base) == [42]
    assert buf[4:8] == (42).to_bytes(4, "little")
