"""skb_load_bytes and the socket helpers, through PROG_LOAD (verified) and TEST_RUN."""

from __future__ import annotations

import pytest

from pyebpf import Cmd, ProgLoadAttr, ProgType, Runtime, TestRunAttr, bpf
from pyebpf.errors import VerifierError
from pyebpf.isa import Insn


def _load(rt: Runtime, insns: list[Insn], ptype: ProgType = ProgType.SCHED_CLS) -> int:
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=insns, license="GPL",
                                           log_level=1, log_size=1 << 20), runtime=rt)


def _run(rt: Runtime, fd: int, data: bytes) -> int:
    return bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=data), runtime=rt).retval


def _load_bytes_prog(offset: int, length: int) -> list[Insn]:
    """r0 = skb_load_bytes(skb, offset, fp-8, length) < 0 ? 0xff : *(u8 *)(fp-8)."""
    return [
        Insn(0xB7, 2, 0, 0, offset), Insn(0xBF, 3, 10), Insn(0x07, 3, 0, 0, -8),
        Insn(0xB7, 4, 0, 0, length), Insn(0x85, 0, 0, 0, 26),
        Insn(0x65, 0, 0, 2, -1),  # if r0 s> -1 goto +2
        Insn(0xB7, 0, 0, 0, 0xFF), Insn(0x95),
        Insn(0x71, 0, 10, -8, 0), Insn(0x95),
    ]


def test_skb_load_bytes_copies_packet_bytes() -> None:
    rt = Runtime()
    fd = _load(rt, _load_bytes_prog(14, 4))
    assert _run(rt, fd, bytes(range(64))) == 14


def test_skb_load_bytes_past_the_packet_is_efault() -> None:
    rt = Runtime()
    fd = _load(rt, _load_bytes_prog(62, 4))
    assert _run(rt, fd, bytes(range(64))) == 0xFF


def test_skb_load_bytes_into_uninitialized_stack_is_accepted() -> None:
    # The buffer is ARG_PTR_TO_UNINIT_MEM: the helper writes it.
    assert _load(Runtime(), _load_bytes_prog(0, 8)) >= 3


def _lookup_prog(release: bool) -> list[Insn]:
    """sk = bpf_sk_lookup_tcp(skb, &tuple(zeroed), 12, 0, 0); [if (sk) sk_release(sk)]."""
    prog = [
        Insn(0x7A, 10, 0, -16, 0), Insn(0x7A, 10, 0, -8, 0),  # zero the tuple
        Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -16), Insn(0xB7, 3, 0, 0, 12),
        Insn(0xB7, 4, 0, 0, 0), Insn(0xB7, 5, 0, 0, 0), Insn(0x85, 0, 0, 0, 84),
    ]
    if release:
        prog += [Insn(0x15, 0, 0, 2, 0), Insn(0xBF, 1, 0), Insn(0x85, 0, 0, 0, 86)]
    return [*prog, Insn(0xB7, 0, 0, 0, 0), Insn(0x95)]


def test_sk_lookup_without_release_is_a_reference_leak() -> None:
    with pytest.raises(VerifierError) as err:
        _load(Runtime(), _lookup_prog(release=False))
    assert err.value.strerror == "BPF_EXIT instruction in main prog would lead to reference leak"
    assert "Unreleased reference id=" in err.value.log


def test_sk_lookup_finds_no_socket_in_a_runtime() -> None:
    rt = Runtime()
    fd = _load(rt, _lookup_prog(release=True))
    assert _run(rt, fd, bytes(64)) == 0
