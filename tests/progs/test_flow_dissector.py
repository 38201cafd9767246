"""FLOW_DISSECTOR programs: the ctx they may read and bpf_prog_test_run_flow_dissector
(results pinned from tests/kernel/test_flow_dissector_differential.py)."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.errors import BpfError, VerifierError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.progs.flow_dissector import BPF_FLOW_KEYS
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import Cmd, ProgType

IPV4 = bytes(12) + b"\x08\x00" + bytes(20)


def _run(text: str, frame: bytes = IPV4, ctx: bytes | None = None) -> tuple[int, bytes]:
    rt = Runtime()
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.FLOW_DISSECTOR,
                                         insns=encode(asm(text)), license="GPL"), runtime=rt)
    got = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=frame, ctx_in=ctx),
              runtime=rt)
    return got.retval, got.data_out


def test_flow_keys_struct_is_56_bytes() -> None:
    assert BPF_FLOW_KEYS.size == 56 and BPF_FLOW_KEYS["flags"].offset == 48


def test_keys_start_with_nhoff_thoff_at_the_network_header_and_n_proto() -> None:
    retval, keys = _run("mov %r0, 0\nexit")
    nhoff, thoff = struct.unpack_from("<HH", keys)
    assert (retval, nhoff, thoff, keys[10:12]) == (0, 14, 14, b"\x08\x00")


def test_thoff_is_clamped_to_the_frame() -> None:
    _, keys = _run("ldxdw %r2, [%r1+144]\nsth [%r2+2], 999\nmov %r0, 0\nexit")
    assert struct.unpack_from("<H", keys, 2)[0] == len(IPV4)


def test_nhoff_is_clamped_up_to_its_start() -> None:
    _, keys = _run("ldxdw %r2, [%r1+144]\nsth [%r2+0], 3\nsth [%r2+2], 3\nmov %r0, 0\nexit")
    assert struct.unpack_from("<HH", keys) == (14, 14)


def test_ctx_in_flags_reach_the_program() -> None:
    ctx = bytes(48) + (5).to_bytes(4, "little") + bytes(4)
    _, keys = _run("ldxdw %r2, [%r1+144]\nldxw %r3, [%r2+48]\nstxw [%r2+52], %r3\n"
                   "mov %r0, 0\nexit", ctx=ctx)
    assert struct.unpack_from("<I", keys, 52)[0] == 5


def test_ctx_in_may_set_only_flags() -> None:
    with pytest.raises(BpfError) as exc:
        _run("mov %r0, 0\nexit", ctx=b"\x01" + bytes(55))
    assert exc.value.errno == errno.EINVAL


def test_frame_shorter_than_an_ethernet_header_is_einval() -> None:
    with pytest.raises(BpfError) as exc:
        _run("mov %r0, 0\nexit", frame=bytes(13))
    assert exc.value.errno == errno.EINVAL


def test_flow_dissector_ctx_is_read_only_and_limited() -> None:
    with pytest.raises(VerifierError):
        _run("ldxw %r0, [%r1+8]\nexit")  # __sk_buff->mark: not for flow dissectors
