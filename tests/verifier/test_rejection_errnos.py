"""The errno of a rejection where the kernel's differs by cause (Linux 6.18):
check_stack_access_within_bounds (a range starting outside the stack EACCES,
one starting inside but running past its top EINVAL), pointer arithmetic
with an insane offset (EINVAL), a packet access through a pointer known to be
past the end (EINVAL) against a plain miss of the checked range (EACCES)."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Cmd, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgLoadAttr
from pyebpf.errors import VerifierError


def _skb_load_bytes_to(stack_off: int) -> str:
    """bpf_skb_load_bytes(ctx, 0, r10 + stack_off, 8)."""
    return (f"mov %r2, 0\nmov %r3, %r10\nadd %r3, {stack_off}\nmov %r4, 8\ncall 26\n"
            "mov %r0, 0\nexit")


@pytest.mark.parametrize(("stack_off", "err", "text"), [
    (-4, errno.EINVAL, "invalid write to stack R3 off=-4 size=8"),
    (-513, errno.EACCES, "invalid write to stack R3 off=-513 size=8"),
])
def test_helper_range_off_the_stack(stack_off: int, err: int, text: str) -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(VerifierError) as exc:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, license="GPL",
                                        insns=asm(_skb_load_bytes_to(stack_off))), runtime=rt)
    assert (exc.value.errno, exc.value.strerror) == (err, text)


def test_store_above_the_stack_top_is_eacces() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(VerifierError) as exc:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, license="GPL",
                                        insns=asm("stdw [%r10+0], 0\nmov %r0, 0\nexit")),
            runtime=rt)
    assert (exc.value.errno, exc.value.strerror) == (
        errno.EACCES, "invalid write to stack R10 off=0 size=8")


def _reject(text: str, ptype: ProgType = ProgType.SOCKET_FILTER) -> VerifierError:
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(VerifierError) as exc:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, license="GPL", insns=asm(text)),
            runtime=rt)
    return exc.value


def test_insane_pointer_offset_is_einval() -> None:
    """adjust_ptr_min_max_vals returns -EINVAL when check_reg_sane_offset fails."""
    err = _reject("mov %r0, %r10\nadd %r0, 0x7fffffff\nmov %r0, 0\nexit")
    assert (err.errno, err.strerror) == (
        errno.EINVAL, "math between fp pointer and 2147483647 is not allowed")


def test_packet_pointer_known_past_the_end_is_einval() -> None:
    """After `if pkt + 8 > pkt_end` falls through, pkt's range is BEYOND_PKT_END:
    a load through it is -EINVAL (a plain miss of the checked range is -EACCES)."""
    err = _reject("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r1, %r2\nadd %r1, 8\n"
                  "jgt %r1, %r3, +2\nmov %r0, 0\nexit\nldxb %r0, [%r1+0]\nmov %r0, 0\nexit",
                  ProgType.XDP)
    assert (err.errno, err.strerror) == (errno.EINVAL, "R1 offset is outside of the packet")


def test_load_past_the_checked_packet_range_is_eacces() -> None:
    err = _reject("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r1, %r2\nadd %r1, 8\n"
                  "jgt %r1, %r3, +2\nldxw %r0, [%r2+8]\nexit\nmov %r0, 0\nexit", ProgType.XDP)
    assert (err.errno, err.strerror) == (errno.EACCES, "R2 offset is outside of the packet")
