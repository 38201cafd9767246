"""pyebpf's verifier against the real kernel's on random, often invalid, programs.

Programs are built from blocks of a small grammar (scalar moves and ALU ops,
stack stores and loads at fixed slots, packet reads behind a data_end check
with random offsets, map lookups with a NULL check and a value access, and
forward conditional jumps over blocks), so many of them are refused: reading
a register or slot never written, an access past the packet's proven range
or the map value, a missing NULL check. Each is loaded by both verifiers;
the verdicts must agree (and a refusal is EACCES/EINVAL on both sides).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from pyebpf import BpfError, Cmd, MapCreateAttr, MapType, ProgType, Runtime, bpf, disasm
from pyebpf.attr import ProgLoadAttr
from pyebpf.isa import Insn
from pyebpf.testing.kernel import kernel_bpf, kernel_close
from pyebpf.testing.kernel_prog import kernel_prog_load
from verifier.grammar import VALUE_SIZE, patched, programs

pytestmark = pytest.mark.kernel

EXAMPLES = 150


@pytest.fixture(scope="module")
def kernel_map_fd() -> object:
    fd = kernel_bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.HASH, key_size=8,
                                                   value_size=VALUE_SIZE, max_entries=4))
    yield int(fd)
    kernel_close(int(fd))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(prog=programs())
def test_random_programs_get_the_kernels_verdict(prog: list[Insn], kernel_map_fd: int) -> None:
    try:
        kfd = kernel_prog_load(ProgType.SCHED_CLS, patched(prog, kernel_map_fd))
        os.close(kfd)
        kernel = "accept"
    except BpfError as e:
        kernel = f"reject: {e.strerror}"
    rt = Runtime()
    rt.verifier = "kernel"
    mfd = int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.HASH, key_size=8,
                                                 value_size=VALUE_SIZE, max_entries=4),
                  runtime=rt))
    try:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SCHED_CLS,
                                        insns=patched(prog, mfd), license="GPL",
                                        log_level=1, log_size=1 << 20), runtime=rt)
        ours = "accept"
    except BpfError as e:
        ours = f"reject: {e.strerror}"
    assert ours.split(":")[0] == kernel.split(":")[0], (
        f"kernel {kernel!r}, pyebpf {ours!r}\n{disasm(prog)}")
