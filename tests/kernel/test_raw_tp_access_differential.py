"""The ctx reach the verifier records, against the real kernel: max_ctx_offset
and max_tp_access decide whether BPF_RAW_TRACEPOINT_OPEN accepts a program
(bpf_probe_register: EINVAL past the tracepoint's arguments, or past its
writable buffer), and max_ctx_offset is the smallest ctx_size_in a raw
tracepoint or syscall program's test run takes."""

from __future__ import annotations

import ctypes
import struct

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgLoadAttr, RawTracepointOpenAttr, TestRunAttr
from pyebpf.isa import encode
from pyebpf.testing.kernel import _syscall, kernel_bpf, kernel_close
from pyebpf.testing.kernel_prog import kernel_prog_load

pytestmark = pytest.mark.kernel

RAW, WRITABLE = ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE
#: (program, type, tracepoint): sched_switch has 4 arguments, sched_wakeup 1,
#: sys_enter 2 (include/trace/events/sched.h, syscalls.h); none is writable.
CASES = [
    ("ldxdw %r0, [%r1+24]\nexit", RAW, "sched_switch"),
    ("ldxdw %r0, [%r1+32]\nexit", RAW, "sched_switch"),
    ("ldxw %r0, [%r1+28]\nexit", RAW, "sched_switch"),
    ("ldxb %r0, [%r1+31]\nexit", RAW, "sched_switch"),
    ("ldxdw %r0, [%r1+0]\nexit", RAW, "sched_wakeup"),
    ("ldxdw %r0, [%r1+8]\nexit", RAW, "sched_wakeup"),
    ("ldxdw %r0, [%r1+8]\nexit", RAW, "sys_enter"),
    ("ldxdw %r0, [%r1+88]\nexit", RAW, "sys_enter"),
    ("mov %r0, 0\nexit", RAW, "sched_wakeup"),
    ("ldxdw %r0, [%r1+8]\nexit", WRITABLE, "sched_switch"),
    ("ldxdw %r0, [%r1+32]\nexit", WRITABLE, "sched_switch"),
    ("ldxdw %r1, [%r1+0]\nmov %r0, 0\nexit", WRITABLE, "sched_switch"),
    ("ldxdw %r1, [%r1+0]\nldxw %r0, [%r1+12]\nexit", WRITABLE, "sched_switch"),
    ("ldxdw %r1, [%r1+0]\nstw [%r1+0], 1\nmov %r0, 0\nexit", WRITABLE, "sched_switch"),
    ("ldxdw %r1, [%r1+0]\nldxw %r0, [%r1-4]\nexit", WRITABLE, "sched_switch"),
    ("ldxdw %r2, [%r1+8]\nand %r2, 8\nldxdw %r1, [%r1+0]\nadd %r1, %r2\n"
     "ldxb %r0, [%r1+0]\nexit", WRITABLE, "sched_switch"),
]


def _outcome(load: object, open_: object, close: object) -> str:
    try:
        fd = load()  # type: ignore[operator]
    except BpfError as e:
        return f"load {e.errno}: {e.strerror}"
    try:
        link = open_(fd)  # type: ignore[operator]
    except BpfError as e:
        return f"open {e.errno}"
    else:
        close(link)  # type: ignore[operator]
        return "attached"
    finally:
        close(fd)  # type: ignore[operator]


@pytest.mark.parametrize(("text", "ptype", "tp"), CASES)
def test_raw_tracepoint_open_matches_kernel(text: str, ptype: ProgType, tp: str) -> None:
    insns = encode(asm(text))
    name = tp.encode() + b"\0"
    kernel = _outcome(lambda: kernel_prog_load(ptype, insns),
                      lambda fd: kernel_bpf(Cmd.RAW_TRACEPOINT_OPEN,
                                            RawTracepointOpenAttr(name=name, prog_fd=fd)),
                      kernel_close)
    rt = Runtime()
    rt.verifier = "kernel"
    ours = _outcome(lambda: bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=insns,
                                                            license="GPL"), runtime=rt),
                    lambda fd: bpf(Cmd.RAW_TRACEPOINT_OPEN,
                                   RawTracepointOpenAttr(name=name, prog_fd=fd), runtime=rt),
                    rt.close)
    assert ours == kernel


def _kernel_test_run_ctx(fd: int, ctx: bytes) -> int:
    """PROG_TEST_RUN with only ctx_in (no data buffers): retval, or -errno."""
    buf = ctypes.create_string_buffer(ctx, max(len(ctx), 1))
    attr = bytearray(80)
    struct.pack_into("<I", attr, 0, fd)
    struct.pack_into("<IxxxxQ", attr, 40, len(ctx), ctypes.addressof(buf) if ctx else 0)
    raw = ctypes.create_string_buffer(bytes(attr), len(attr))
    _, err = _syscall(Cmd.PROG_TEST_RUN, raw, len(attr))
    return -err if err else int(struct.unpack_from("<I", raw.raw, 4)[0])


@pytest.mark.parametrize("size", [0, 8, 20, 23, 24, 32, 104])
@pytest.mark.parametrize(("ptype", "flags", "text"), [
    (RAW, 0, "ldxdw %r0, [%r1+16]\nexit"),
    (ProgType.SYSCALL, 1 << 4, "ldxw %r0, [%r1+20]\nexit"),
], ids=["raw_tp_args2", "syscall_u32_at_20"])
def test_test_run_ctx_size_against_max_ctx_offset_matches_kernel(
        ptype: ProgType, flags: int, text: str, size: int) -> None:
    insns = encode(asm(text))
    ctx = bytes(range(1, size + 1))
    kfd = kernel_prog_load(ptype, insns, prog_flags=flags)
    try:
        kernel = _kernel_test_run_ctx(kfd, ctx)
    finally:
        kernel_close(kfd)
    rt = Runtime()
    rt.verifier = "kernel"
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=insns, license="GPL",
                                         prog_flags=flags), runtime=rt)
    try:
        ours = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, ctx_in=ctx or None,
                                                  ctx_size_in=size), runtime=rt).retval
    except BpfError as e:
        ours = -e.errno
    assert ours == kernel


def test_known_tracepoints_take_the_kernels_argument_counts() -> None:
    """Each tracepoint of links.tracing.RAW_TRACEPOINTS takes a program reading its
    last argument and refuses one reading the next, on the kernel as its count says."""
    from pyebpf.links.tracing import RAW_TRACEPOINTS

    readers = {n: kernel_prog_load(RAW, encode(asm(f"ldxdw %r0, [%r1+{8 * (n - 1)}]\nexit")))
               for n in range(1, max(RAW_TRACEPOINTS.values()) + 2)}
    try:
        counts = {}
        for name, num_args in RAW_TRACEPOINTS.items():
            outcome = []
            for n in (num_args, num_args + 1):
                try:
                    kernel_close(int(kernel_bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(
                        name=name.encode() + b"\0", prog_fd=readers[n]))))
                    outcome.append(True)
                except BpfError:
                    outcome.append(False)
            counts[name] = num_args if outcome == [True, False] else outcome
    finally:
        for fd in readers.values():
            kernel_close(fd)
    assert counts == RAW_TRACEPOINTS
