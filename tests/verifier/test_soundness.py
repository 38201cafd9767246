"""Soundness: a program pyebpf's verifier accepts never faults when it runs.

Random programs of :mod:`verifier.grammar` (many invalid) are loaded;
every accepted one is test-run on random packets (and with its map holding
an element, so lookups succeed) and must finish without a BpfFault: the
verifier proved each memory access safe, the interpreter checks them all.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyebpf import BpfError, Cmd, MapCreateAttr, MapType, ProgType, Runtime, bpf, disasm
from pyebpf.attr import MapElemAttr, ProgLoadAttr, TestRunAttr
from pyebpf.errors import BpfFault
from pyebpf.isa import Insn
from verifier.grammar import VALUE_SIZE, patched, programs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs(), packet=st.binary(min_size=14, max_size=64), fill=st.booleans())
def test_accepted_programs_never_fault(prog: list[Insn], packet: bytes, fill: bool) -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    mfd = int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.HASH, key_size=8,
                                                 value_size=VALUE_SIZE, max_entries=4),
                  runtime=rt))
    if fill:  # the key programs use is fp-8: mostly 0 or an early constant
        for key in (0, 7):
            bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=mfd, key=key.to_bytes(8, "little"),
                                                 value=bytes(VALUE_SIZE)), runtime=rt)
    try:
        fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SCHED_CLS,
                                             insns=patched(prog, mfd), license="GPL"),
                 runtime=rt)
    except BpfError:
        return  # refused: nothing to run
    try:
        bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=int(fd), data_in=packet, repeat=1),
            runtime=rt)
    except BpfFault as fault:
        raise AssertionError(f"accepted program faulted: {fault}\n{disasm(prog)}") from None
