"""bpf_skb_load_bytes in a flow dissector: bpf_flow_dissector_load_bytes
(net/core/filter.c). It reads the sk_buff being dissected, at offsets from its
data; with no skb (a test run) or an offset past 0xffff it zeroes the buffer
and fails with -EFAULT."""

from __future__ import annotations

import errno

import pytest

from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.progs.flow_dissector import BPF_FLOW_KEYS, bpf_flow_dissect
from pyebpf.progs.skb import build_skb, release_skb
from pyebpf.runtime import ObjKind, Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import Cmd, ProgType

#: Loads 8 bytes at OFFSET into a buffer pre-filled with ones, stores the buffer
#: in flow_keys->ipv4_src/ipv4_dst and returns the helper's result.
LOAD8 = """mov %r6, %r1
ldxdw %r7, [%r1+144]
stdw [%r10-8], -1
mov %r2, {offset}
mov %r3, %r10
add %r3, -8
mov %r4, 8
call 26
ldxdw %r3, [%r10-8]
stxdw [%r7+{out}], %r3
exit"""
FRAME = bytes(12) + b"\x08\x00" + bytes(range(1, 41))
EFAULT = (-errno.EFAULT) & 0xFFFF_FFFF
_OUT = BPF_FLOW_KEYS["ipv4_src"].offset


def _insns(offset: int) -> bytes:
    return encode(asm(LOAD8.format(offset=offset, out=_OUT)))


def _load(rt: Runtime, offset: int) -> int:
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.FLOW_DISSECTOR,
                                           insns=_insns(offset), license="GPL"), runtime=rt)


def _dissect_skb(offset: int) -> tuple[int, bytes]:
    """Dissect FRAME as the receive path does: an skb whose data is the network header."""
    rt = Runtime()
    fd = _load(rt, offset)
    prog, _ = rt.get_object(fd, ObjKind.PROG)
    skb = build_skb(rt, FRAME, ProgType.FLOW_DISSECTOR)
    try:
        packet = bytes(skb.buf[skb.data_off:skb.data_off + skb.len])
        r0, keys = bpf_flow_dissect(rt, prog, packet, proto=skb.protocol, nhoff=0, skb=skb)
    finally:
        release_skb(rt, skb)
    return r0, keys[_OUT:_OUT + 8]


@pytest.mark.parametrize("offset", [0, 14, 30, 0x10000])
def test_test_run_has_no_skb_so_load_bytes_is_efault_and_zeroes(offset: int) -> None:
    rt = Runtime()
    fd = _load(rt, offset)
    run = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=FRAME), runtime=rt)
    assert run.retval == EFAULT
    assert run.data_out[_OUT:_OUT + 8] == bytes(8)


def test_load_bytes_reads_the_dissected_skb_from_its_data() -> None:
    assert _dissect_skb(4) == (0, FRAME[14 + 4:14 + 12])


def test_load_bytes_up_to_the_end_of_the_skb_succeeds() -> None:
    assert _dissect_skb(len(FRAME) - 14 - 8) == (0, FRAME[-8:])


def test_load_bytes_past_the_end_of_the_skb_is_efault_and_zeroes() -> None:
    assert _dissect_skb(len(FRAME) - 14 - 7) == (EFAULT, bytes(8))


def test_load_bytes_offset_past_0xffff_is_efault_even_with_an_skb() -> None:
    assert _dissect_skb(0x10000) == (EFAULT, bytes(8))
