"""check_return_code for CGROUP_SKB: 0..1, or 0..3 for an egress program (bit 1
is the congestion notification); an egress program returning 2 or 3 on some
path is marked enforce_expected_attach_type."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Cmd, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgLoadAttr
from pyebpf.errors import VerifierError
from pyebpf.prog import BpfProg
from pyebpf.uapi import AttachType

INGRESS, EGRESS = AttachType.CGROUP_INET_INGRESS, AttachType.CGROUP_INET_EGRESS


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime()
    runtime.verifier = "kernel"
    return runtime


def _load(rt: Runtime, text: str, eat: int = EGRESS) -> BpfProg:
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.CGROUP_SKB, insns=asm(text),
                                         license="GPL", expected_attach_type=eat),
             runtime=rt)
    prog = rt.fds[fd].obj
    assert isinstance(prog, BpfProg)
    return prog


def _reject(rt: Runtime, text: str, eat: int) -> VerifierError:
    with pytest.raises(VerifierError) as exc:
        _load(rt, text, eat)
    return exc.value


@pytest.mark.parametrize("ret", [2, 3])
def test_egress_program_returning_a_congestion_bit_is_enforced(rt: Runtime, ret: int) -> None:
    assert _load(rt, f"mov %r0, {ret}\nexit").enforce_expected_attach_type


@pytest.mark.parametrize("ret", [0, 1])
def test_egress_program_returning_a_plain_verdict_is_not_enforced(rt: Runtime,
                                                                 ret: int) -> None:
    assert not _load(rt, f"mov %r0, {ret}\nexit").enforce_expected_attach_type


def test_any_two_bit_return_is_not_enforced(rt: Runtime) -> None:
    """tnum_in(tnum_range(2, 3), r0): an r0 that may also be 0 or 1 doesn't count."""
    prog = _load(rt, "ldxw %r0, [%r1+0]\nand %r0, 3\nexit")
    assert not prog.enforce_expected_attach_type


def test_return_known_to_have_the_congestion_bit_is_enforced(rt: Runtime) -> None:
    prog = _load(rt, "ldxw %r0, [%r1+0]\nand %r0, 1\nor %r0, 2\nexit")
    assert prog.enforce_expected_attach_type


def test_one_exit_returning_2_is_enough(rt: Runtime) -> None:
    prog = _load(rt, "ldxw %r0, [%r1+0]\njeq %r0, 0, +2\nmov %r0, 2\nexit\nmov %r0, 0\nexit")
    assert prog.enforce_expected_attach_type


def test_egress_return_of_4_is_out_of_range(rt: Runtime) -> None:
    err = _reject(rt, "mov %r0, 4\nexit", EGRESS)
    assert err.errno == errno.EINVAL
    assert err.strerror == ("At program exit the register R0 has smin=4 smax=4 "
                            "should have been in [0, 3]")


def test_ingress_return_of_2_is_out_of_range(rt: Runtime) -> None:
    err = _reject(rt, "mov %r0, 2\nexit", INGRESS)
    assert err.errno == errno.EINVAL
    assert err.strerror == ("At program exit the register R0 has smin=2 smax=2 "
                            "should have been in [0, 1]")
