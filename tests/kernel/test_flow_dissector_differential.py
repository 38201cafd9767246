"""FLOW_DISSECTOR test runs (bpf_prog_test_run_flow_dissector) on pyebpf and the kernel:
the same verdict and the same struct bpf_flow_keys (nhoff/thoff clamped)."""

from __future__ import annotations

import pytest

from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.errors import BpfError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.testing.kernel import kernel_close
from pyebpf.testing.kernel_prog import kernel_prog_load, kernel_test_run
from pyebpf.uapi import Cmd, ProgType

pytestmark = pytest.mark.kernel

PROGRAMS = {
    "ok": "mov %r0, 0\nexit",
    "drop": "mov %r0, 2\nexit",
    "continue": "mov %r0, 129\nexit",
    # thoff past the end: clamped to the frame's length
    "thoff_far": "ldxdw %r2, [%r1+144]\nsth [%r2+2], 999\nmov %r0, 0\nexit",
    # nhoff below its start: clamped back up to 14
    "nhoff_low": "ldxdw %r2, [%r1+144]\nsth [%r2+0], 3\nsth [%r2+2], 3\nmov %r0, 0\nexit",
    # copy n_proto to sport and the flags to flow_label
    "copy": "ldxdw %r2, [%r1+144]\nldxh %r3, [%r2+10]\nstxh [%r2+12], %r3\n"
            "ldxw %r3, [%r2+48]\nstxw [%r2+52], %r3\nmov %r0, 0\nexit",
    # data_end - data as the verdict
    "length": "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\nmov %r0, %r3\nsub %r0, %r2\nexit",
}
FRAMES = [bytes(12) + b"\x08\x00" + bytes(20), bytes(12) + b"\x86\xdd" + bytes(60), bytes(14)]


def _ctx(flags: int) -> bytes:
    return bytes(48) + flags.to_bytes(4, "little") + bytes(4)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("frame", FRAMES, ids=["ipv4", "ipv6", "eth_only"])
def test_flow_dissector_test_run_matches_kernel(name: str, frame: bytes) -> None:
    insns = encode(asm(PROGRAMS[name]))
    kfd = kernel_prog_load(ProgType.FLOW_DISSECTOR, insns)
    try:
        krun = kernel_test_run(kfd, frame, ctx=_ctx(1))
    finally:
        kernel_close(kfd)
    rt = Runtime()
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.FLOW_DISSECTOR, insns=insns,
                                         license="GPL"), runtime=rt)
    mine = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=frame, ctx_in=_ctx(1)),
               runtime=rt)
    assert (mine.retval, mine.data_out) == (krun.retval, krun.data_out)


@pytest.mark.parametrize(("frame", "ctx"), [(bytes(13), None), (bytes(20), b"\x01" + bytes(55))],
                         ids=["short_frame", "ctx_sets_nhoff"])
def test_flow_dissector_test_run_errors_match_kernel(frame: bytes, ctx: bytes | None) -> None:
    insns = encode(asm(PROGRAMS["ok"]))
    kfd = kernel_prog_load(ProgType.FLOW_DISSECTOR, insns)
    try:
        with pytest.raises(BpfError) as kerr:
            kernel_test_run(kfd, frame, ctx=ctx)
    finally:
        kernel_close(kfd)
    rt = Runtime()
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.FLOW_DISSECTOR, insns=insns,
                                         license="GPL"), runtime=rt)
    with pytest.raises(BpfError) as mine:
        bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=frame, ctx_in=ctx), runtime=rt)
    assert mine.value.errno == kerr.value.errno
