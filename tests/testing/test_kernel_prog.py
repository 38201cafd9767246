"""pyebpf.testing.kernel_prog: programs and objects on the real kernel."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyebpf import VerifierError, asm, encode, load_spec
from pyebpf.testing.cases import pack_ctx
from pyebpf.testing.kernel import kernel_available
from pyebpf.testing.kernel_prog import KernelCollection, kernel_prog_load, kernel_test_run
from pyebpf.uapi import ProgType

pytestmark = pytest.mark.skipif(not kernel_available(),
                                reason="the kernel's bpf() is not available here")
DATA = Path(__file__).resolve().parent.parent / "data"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_rejected_load_carries_the_kernels_log() -> None:
    with pytest.raises(VerifierError) as info:
        kernel_prog_load(ProgType.XDP, encode(asm("mov %r1, 0\nldxw %r0, [%r1+0]\nexit")))
    assert info.value.errno == errno.EACCES
    assert str(info.value.strerror) == "R1 invalid mem access 'scalar'"
    assert "1: (61) r0 = *(u32 *)(r1 +0)" in info.value.log


def test_test_run_returns_retval_packet_and_ctx_out() -> None:
    fd = kernel_prog_load(ProgType.SOCKET_FILTER, encode(asm("ldxw %r0, [%r1+8]\nexit")))
    try:
        packet = bytes(12) + b"\x86\xdd" + bytes(46)
        r = kernel_test_run(fd, packet, ctx=pack_ctx(ProgType.SOCKET_FILTER, {"mark": 9}))
        # An l3 program's packet comes back behind a zeroed Ethernet header.
        assert r.retval == 9 and r.data_size_out == len(packet)
        assert r.data_out == bytes(14) + packet[14:]
        assert r.ctx_out is not None and r.ctx_out[8:12] == b"\x09\0\0\0"
    finally:
        os.close(fd)


def test_collection_fills_program_array_slots_and_closes_every_fd() -> None:
    spec = load_spec(DATA / "elf" / "tailcalls.o")
    before = _open_fds()
    with KernelCollection.from_spec(spec) as kc:
        assert set(kc.programs) == {"leaf", "entry"}
        slot = kc.maps["jump"].lookup((2).to_bytes(4, "little"))
        assert int.from_bytes(slot, "little") > 0  # the kernel reports the program's id
        assert _open_fds() > before
    assert _open_fds() == before


def test_collection_writes_and_freezes_global_data() -> None:
    spec = load_spec(DATA / "elf" / "globals.o")
    with KernelCollection.from_spec(spec) as kc:
        assert kc.maps[".data"].lookup(bytes(4)) == (100).to_bytes(8, "little")
        with pytest.raises(OSError) as info:
            kc.maps[".rodata"].update(bytes(4), bytes(4))
        assert info.value.errno == errno.EPERM
