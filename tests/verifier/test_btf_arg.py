"""A BTF-typed pointer given to a helper must point at the struct the argument
takes (btf_struct_ids_match): the struct itself, or one it begins with."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Cmd, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgLoadAttr
from pyebpf.errors import VerifierError
from pyebpf.kernel_btf import kernel_btf, kernel_struct_id
from pyebpf.verifier.btf_arg import btf_struct_ids_match

BPF_F_SLEEPABLE = 1 << 4


def _match(struct: str, off: int, want: str, strict: bool = False) -> bool:
    return btf_struct_ids_match(kernel_btf(), kernel_struct_id(struct), off,
                                kernel_struct_id(want), strict=strict)


def test_a_struct_matches_itself() -> None:
    assert _match("tcp_sock", 0, "tcp_sock", strict=True)


def test_a_struct_matches_the_structs_it_begins_with() -> None:
    assert _match("tcp_sock", 0, "sock_common")
    assert _match("tcp6_sock", 0, "tcp_sock")
    assert _match("udp6_sock", 0, "sock")


def test_strict_matching_wants_the_very_struct() -> None:
    assert not _match("tcp_sock", 0, "sock_common", strict=True)


def test_another_struct_or_another_offset_does_not_match() -> None:
    assert not _match("task_struct", 0, "sock_common")
    assert not _match("tcp_sock", 8, "sock_common")


def test_a_nested_struct_at_its_offset_matches() -> None:
    btf = kernel_btf()
    off = btf.offsetof(kernel_struct_id("tcp6_sock"), "inet6")
    assert _match("tcp6_sock", off, "ipv6_pinfo")


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime()
    runtime.verifier = "kernel"
    return runtime


def test_task_struct_given_to_a_socket_cast_is_refused(rt: Runtime) -> None:
    with pytest.raises(VerifierError) as exc:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=ProgType.SYSCALL, prog_flags=BPF_F_SLEEPABLE, license="GPL",
            insns=asm("call 158\nmov %r1, %r0\ncall 137\nmov %r0, 0\nexit")), runtime=rt)
    assert (exc.value.errno, exc.value.strerror) == (
        errno.EACCES, "R1 is of type task_struct but sock_common is expected")


def test_tcp_sock_given_to_another_socket_cast_loads(rt: Runtime) -> None:
    bpf(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.SCHED_CLS, license="GPL",
        insns=asm("ldxdw %r1, [%r1+168]\njeq %r1, 0, +4\ncall 137\njeq %r0, 0, +2\n"
                  "mov %r1, %r0\ncall 136\nmov %r0, 0\nexit")), runtime=rt)
