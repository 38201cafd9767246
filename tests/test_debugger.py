"""The step debugger (pyebpf.debugger): a cursor over a recorded run."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pyebpf import Runtime, load_object
from pyebpf.debugger import Debugger

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PROG = """
mov %r0, 0
stxdw [%r10-8], %r1
ldxdw %r2, [%r10-8]
jgt %r2, 3, +1
mov %r0, 1
add %r0, %r2
exit
"""


def tcp_packet(dport: int) -> bytes:
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]) + bytes(8)
    tcp = struct.pack(">HHIIBBHHH", 1234, dport, 0, 0, 0x50, 0, 0, 0, 0)
    return bytes(12) + b"\x08\x00" + ip + tcp


def test_step_shows_registers_the_next_instruction_sees() -> None:
    d = Debugger(PROG, r1=7)
    assert d.pc == 0 and d.regs[1] == 7 and d.regs[0] == 0
    d.step(3)
    assert d.pc == 3 and d.regs[2] == 7
    d.step(10)
    assert d.finished and d.retval == 7 and d.pc is None


def test_stack_at_the_cursor_is_rebuilt_from_the_recorded_writes() -> None:
    d = Debugger(PROG, r1=0x1122)
    assert d.stack_at(-8) == bytes(8)  # before the store
    d.step(2)
    assert d.stack_at(-8) == (0x1122).to_bytes(8, "little")
    assert len(d.stack) == 512 and d.stack[-8:] == (0x1122).to_bytes(8, "little")
    d.back()
    assert d.pc == 1 and d.stack_at(-8) == bytes(8)


def test_cont_stops_at_instruction_breakpoints() -> None:
    d = Debugger(PROG, r1=2)
    d.break_at(5)
    assert d.cont() is not None and d.pc == 5 and d.regs[0] == 1
    assert d.cont() is None and d.finished and d.retval == 3


def test_break_at_source_line_stops_where_the_line_starts() -> None:
    rt = Runtime()
    coll = load_object(EXAMPLES / "xdp_filter.o", runtime=rt)
    prog = coll.programs["xdp_filter"]
    coll.maps["blocked"][struct.pack("<H", 22)] = bytes(8)
    d = Debugger(prog, tcp_packet(22))
    d.break_at("xdp_filter.c:47")
    d.cont()
    assert d.location() is not None and d.location()[1] == 47  # type: ignore[index]
    assert d.pc == 25
    port = d.stack_at(-2, 2)
    assert int.from_bytes(port, "little") == 22
    assert "-> " in d.listing() and "__sync_fetch_and_add" in d.listing()


def test_next_line_steps_over_a_bpf_to_bpf_call() -> None:
    rt = Runtime()
    coll = load_object(EXAMPLES / "xdp_filter.o", runtime=rt)
    d = Debugger(coll.programs["xdp_filter"], tcp_packet(80))
    d.break_at(line=41)
    d.cont()
    assert d.pc == 13  # call is_tcp
    d.next_line()  # over is_tcp (line 23) and the rest of line 41
    assert d.depth == 0 and d.location()[1] == 43 and d.pc == 15  # type: ignore[index]
    d.back(2)
    assert d.depth == 1 and d.pc == 38  # the callee's exit


def test_break_at_a_line_without_code_is_refused() -> None:
    rt = Runtime()
    coll = load_object(EXAMPLES / "xdp_filter.o", runtime=rt)
    d = Debugger(coll.programs["xdp_filter"], tcp_packet(80))
    with pytest.raises(ValueError, match="no instruction belongs to line 2"):
        d.break_at("xdp_filter.c:2")


def test_a_faulting_run_is_debugged_up_to_the_fault() -> None:
    d = Debugger("mov %r1, 0\nldxdw %r0, [%r1+0]\nexit")
    d.step(5)
    assert d.finished and d.fault is not None and d.fault.pc == 1
    d.back()
    assert d.pc == 1 and d.current is not None and d.current.event is not None


def test_debugging_page_runs_as_written(tmp_path: Path) -> None:
    mdrun = pytest.importorskip("docs.mdrun")  # tests/docs: the pages' runner
    page = Path(__file__).resolve().parent.parent / "docs" / "debugging.md"
    assert mdrun.run_page(page, tmp_path) >= 7
