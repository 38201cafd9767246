"""bpf_skb_load_bytes in FLOW_DISSECTOR test runs on pyebpf and the kernel: a
test run dissects bytes without an skb, so bpf_flow_dissector_load_bytes
zeroes the buffer and returns -EFAULT at every offset."""

from __future__ import annotations

import pytest

from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.testing.kernel import kernel_close
from pyebpf.testing.kernel_prog import kernel_prog_load, kernel_test_run
from pyebpf.uapi import Cmd, ProgType

pytestmark = pytest.mark.kernel

#: Loads LEN bytes at OFFSET into a buffer of ones, stores the buffer in
#: flow_keys->ipv4_src/ipv4_dst and returns the helper's result.
PROGRAM = """ldxdw %r7, [%r1+144]
stdw [%r10-8], -1
mov %r2, {offset}
mov %r3, %r10
add %r3, -8
mov %r4, {length}
call 26
ldxdw %r3, [%r10-8]
stxdw [%r7+24], %r3
exit"""
FRAME = bytes(12) + b"\x08\x00" + bytes(range(1, 41))


@pytest.mark.parametrize(("offset", "length"),
                         [(0, 8), (14, 8), (46, 8), (47, 8), (0xFFFF, 1), (0x10000, 1), (0, 1)])
def test_flow_dissector_load_bytes_test_run_matches_kernel(offset: int, length: int) -> None:
    insns = encode(asm(PROGRAM.format(offset=offset, length=length)))
    kfd = kernel_prog_load(ProgType.FLOW_DISSECTOR, insns)
    try:
        krun = kernel_test_run(kfd, FRAME)
    finally:
        kernel_close(kfd)
    rt = Runtime()
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.FLOW_DISSECTOR, insns=insns,
                                         license="GPL"), runtime=rt)
    mine = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=FRAME), runtime=rt)
    assert (mine.retval, mine.data_out) == (krun.retval, krun.data_out)
