"""Execution traces (pyebpf.trace): what each executed instruction did."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pyebpf import BpfFault, Program, ProgType, Runtime, asm, load_object
from pyebpf.engine import Vm
from pyebpf.engine.interpreter import Vm as PlainVm
from pyebpf.isa.insn import Insn
from pyebpf.trace import MemWrite, RegWrite, TracingVm, traced

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

STORE_LOAD_BRANCH = """
mov %r0, 0
stxdw [%r10-8], %r1
ldxdw %r2, [%r10-8]
jgt %r2, 3, +1
mov %r0, 1
add %r0, %r2
exit
"""


def tcp_packet(dport: int, *, proto: int = 6, eth_type: int = 0x0800) -> bytes:
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0]) + bytes(8)
    tcp = struct.pack(">HHIIBBHHH", 1234, dport, 0, 0, 0x50, 0, 0, 0, 0)
    return bytes(12) + struct.pack(">H", eth_type) + ip + tcp


def test_vm_run_trace_records_pc_text_and_register_writes() -> None:
    vm = Vm(STORE_LOAD_BRANCH)
    t = vm.run(r1=5, trace=True)
    assert t.retval == 5 and t.fault is None
    assert [s.pc for s in t] == [0, 1, 2, 3, 5, 6]
    assert t[2].text == "r2 = *(u64 *)(r10 -8)"
    assert t[2].reg_writes == (RegWrite(2, 0, 5),)
    assert t[4].reg_writes == (RegWrite(0, 0, 5),)
    assert t.initial_regs[1] == 5


def test_trace_records_stack_bytes_changed_and_loads() -> None:
    t = Vm(STORE_LOAD_BRANCH).run(r1=0x0102, trace=True)
    (w,) = t[1].writes
    assert isinstance(w, MemWrite) and w.region.startswith("stack")
    assert w.old == bytes(8) and w.new == (0x0102).to_bytes(8, "little")
    (r,) = t[2].reads
    assert r.addr == w.addr and r.size == 8


def test_trace_marks_conditional_jumps_taken_or_not() -> None:
    vm = Vm(STORE_LOAD_BRANCH)
    assert vm.run(r1=5, trace=True)[3].branch is True
    t = vm.run(r1=2, trace=True)
    assert t[3].branch is False and t[4].pc == 4 and t.retval == 3


def test_untraced_runs_keep_the_plain_interpreter_and_its_result() -> None:
    vm = Vm(STORE_LOAD_BRANCH)
    vm.run(r1=5, trace=True)
    assert type(vm) is PlainVm and vm.run(r1=5) == 5
    assert all(h.__name__ != "recording" for h in vm.code)


def test_traced_fault_carries_the_trace_up_to_the_fault() -> None:
    vm = Vm("mov %r1, 0\nldxdw %r0, [%r1+0]\nexit")
    with pytest.raises(BpfFault) as exc:
        vm.run(trace=True)
    t = exc.value.trace  # type: ignore[attr-defined]
    assert t.fault is exc.value and t.retval is None
    assert t[-1].pc == 1 and t[-1].event is not None and t[-1].event.startswith("fault")
    assert "FAULT" in str(t)


def test_bpf_to_bpf_call_steps_carry_their_depth() -> None:
    prog = "mov %r1, 4\ncall local f\nexit\nf:\nmov %r0, %r1\nadd %r0, 1\nexit"
    t = Vm(prog).run(trace=True)
    assert t.retval == 5
    assert [(s.pc, s.depth) for s in t] == [(0, 0), (1, 0), (3, 1), (4, 1), (5, 1), (2, 0)]


def test_helper_memory_writes_are_recorded_on_the_call_step() -> None:
    rt = Runtime()
    rt.comm = "abc"
    prog = Program.load(ProgType.KPROBE, asm(
        "mov %r1, %r10\nadd %r1, -16\nmov %r2, 16\ncall 16\nmov %r0, 0\nexit"), runtime=rt)
    t = prog.run(trace=True)
    call = t[3]
    assert call.text == "call bpf_get_current_comm#16"
    (w,) = call.writes
    assert w.new == b"abc".ljust(16, b"\0") and w.old == bytes(16)


def test_trace_printk_output_is_kept_per_run() -> None:
    rt = Runtime()
    coll = load_object(EXAMPLES / "xdp_filter.o", runtime=rt)
    prog = coll.programs["xdp_filter"]
    coll.maps["blocked"][struct.pack("<H", 22)] = bytes(8)
    dropped = prog.test_run(tcp_packet(22))
    passed = prog.test_run(tcp_packet(80))
    assert dropped.retval == 1 and dropped.printk == ("drop port 22",)
    assert passed.retval == 2 and passed.printk == ()
    assert prog.test_run(tcp_packet(22), trace=True).trace.printk == ["drop port 22"]


def test_test_run_trace_names_source_lines_from_btf() -> None:
    rt = Runtime()
    coll = load_object(EXAMPLES / "xdp_filter.o", runtime=rt)
    prog = coll.programs["xdp_filter"]
    result = prog.test_run(tcp_packet(80), trace=True)
    t = result.trace
    assert t.retval == result.retval == 2
    lines = [ln for _, ln in t.lines_executed()]
    assert lines[:4] == [27, 29, 30, 37]
    assert 23 in lines and 47 not in lines  # is_tcp ran; no drop
    text = str(t)
    assert "> xdp_filter.c:43 (xdp_filter)" in text
    assert "-> port = bpf_ntohs(tcp->dest);" in text


def test_traced_block_records_every_run_then_stops() -> None:
    rt = Runtime()
    prog = Program.load(ProgType.XDP, asm("mov %r0, 2\nexit"), runtime=rt)
    with traced(prog) as log:
        prog.test_run(bytes(20))
        prog.test_run(bytes(20), repeat=2)
    assert len(log.traces) == 3 and all(t.retval == 2 for t in log.traces)
    prog.test_run(bytes(20))
    assert len(log.traces) == 3


def test_max_steps_truncates_the_record_not_the_run() -> None:
    loop = "mov %r0, 0\nadd %r0, 1\njlt %r0, 100, -2\nexit"
    vm = TracingVm(loop, max_steps=10)
    assert vm.run() == 100
    assert vm.last_trace is not None
    assert len(vm.last_trace) == 10 and vm.last_trace.truncated


def test_a_tail_call_target_is_traced_as_its_own_program() -> None:
    from pyebpf import Map, MapType
    from pyebpf.isa.asm import assemble

    rt = Runtime()
    target = Program.load(ProgType.XDP, asm("mov %r0, 1\nexit"), name="target", runtime=rt)
    slots = Map.create(MapType.PROG_ARRAY, key_size=4, value_size=4, max_entries=2, runtime=rt)
    slots[0] = int(target.fd).to_bytes(4, "little")
    insns = assemble(f"lddw %r2, {slots.fd}\nmov %r3, 0\ncall 12\nmov %r0, 2\nexit")
    insns[0] = Insn(insns[0].code, insns[0].dst, 1, insns[0].off, insns[0].imm)  # map fd
    main = Program.load(ProgType.XDP, insns, name="main", runtime=rt)
    t = main.test_run(bytes(20), trace=True).trace
    assert t.retval == 1 and [p.name for p in t.programs] == ["main", "target"]
    assert [(s.prog, s.pc) for s in t] == [(0, 0), (0, 2), (0, 3), (1, 0), (1, 1)]
    assert t[2].event == "tail call"
    assert "== target ==\n   0: (b7) r0 = 1" in str(t)


def test_stack_accesses_print_relative_to_the_frame_pointer() -> None:
    prog = ("stdw [%r10-8], 1\ncall local f\nexit\n"
            "f:\nstw [%r10-4], 2\nldxw %r0, [%r10-4]\nexit")
    text = str(Vm(prog).run(trace=True))
    assert "; [fp-8] 00 00 00 00 00 00 00 00 -> 01 00 00 00 00 00 00 00" in text
    assert "; [fp-4 (frame 1)] 00 00 00 00 -> 02 00 00 00" in text
    assert "read 4 @ fp-4 (frame 1)" in text
