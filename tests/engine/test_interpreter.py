"""Unit tests of the interpreter: one behaviour of the VM core per test.

The reference is the Linux 6.18 interpreter (kernel/bpf/core.c,
``___bpf_prog_run``) and the limits the kernel enforces around it
(MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT, BPF_MAX_LOOPS).
"""

from __future__ import annotations

from typing import Any

import pytest

from pyebpf.engine import Vm
from pyebpf.engine import interpreter as interp
from pyebpf.errors import BpfFault, BudgetExhausted, InvalidInsn
from pyebpf.isa import Insn
from pyebpf.isa.asm import assemble
from pyebpf.isa.opcodes import MAX_BPF_STACK, MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def run(text: str, mem: bytes | None = None, **kw: Any) -> int:
    return Vm(text, helpers={}).run(mem, **kw)


def helper_returning(value: Any) -> Any:
    def impl(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> Any:
        return value

    return impl


# -- basics ------------------------------------------------------------------------


def test_add_one_to_r1_returns_42() -> None:
    assert Vm("mov %r0, %r1\nadd %r0, 1\nexit").run(r1=41) == 42


def test_all_argument_registers_are_passed() -> None:
    prog = "mov %r0, %r1\nadd %r0, %r2\nadd %r0, %r3\nadd %r0, %r4\nadd %r0, %r5\nexit"
    assert run(prog, r1=1, r2=10, r3=100, r4=1000, r5=10000) == 11111


def test_arguments_are_masked_to_u64() -> None:
    assert run("mov %r0, %r1\nexit", r1=-1) == M64


def test_r0_starts_at_zero() -> None:
    assert run("exit") == 0


def test_registers_are_reset_between_runs() -> None:
    vm = Vm("add %r6, 1\nmov %r0, %r6\nexit", helpers={})
    assert vm.run() == 1
    assert vm.run() == 1


def test_program_may_be_given_as_bytes_or_insns() -> None:
    insns = assemble("mov %r0, 7\nexit")
    raw = b"".join(i.pack() for i in insns)
    assert Vm(insns).run() == Vm(raw).run() == 7


def test_r10_points_one_past_the_end_of_the_first_stack_frame() -> None:
    vm = Vm("mov %r0, %r10\nexit", helpers={})
    assert vm.run() == vm.stacks[0].end
    assert len(vm.stacks) == MAX_CALL_FRAMES
    assert all(s.size == MAX_BPF_STACK for s in vm.stacks)


def test_mem_is_a_copy_with_r1_its_address_and_r2_its_length() -> None:
    data = bytes([1, 2, 3, 4])
    vm = Vm("stb [%r1+0], 9\nmov %r0, %r2\nexit", helpers={})
    assert vm.run(data) == 4
    assert vm.mem_region is not None
    assert bytes(vm.mem_region.buf) == bytes([9, 2, 3, 4])
    assert data == bytes([1, 2, 3, 4])


def test_empty_mem_gives_null_r1() -> None:
    assert run("mov %r0, %r1\nexit", b"") == 0


# -- loads and stores --------------------------------------------------------------

WIDTHS = [("b", 1), ("h", 2), ("w", 4), ("dw", 8)]


@pytest.mark.parametrize(("sfx", "n"), WIDTHS, ids=[w[0] for w in WIDTHS])
def test_ldx_zero_extends_little_endian(sfx: str, n: int) -> None:
    mem = bytes(range(0xF1, 0xF9))
    assert run(f"ldx{sfx} %r0, [%r1+0]\nexit", mem) == int.from_bytes(mem[:n], "little")


@pytest.mark.parametrize(("sfx", "n"), WIDTHS, ids=[w[0] for w in WIDTHS])
def test_ldx_at_offset(sfx: str, n: int) -> None:
    mem = bytes(range(16))
    assert run(f"ldx{sfx} %r0, [%r1+5]\nexit", mem) == int.from_bytes(mem[5:5 + n], "little")


@pytest.mark.parametrize(("sfx", "n"), WIDTHS, ids=[w[0] for w in WIDTHS])
def test_ldx_with_negative_offset(sfx: str, n: int) -> None:
    mem = bytes(range(16))
    prog = f"add %r1, 16\nldx{sfx} %r0, [%r1-{n}]\nexit"
    assert run(prog, mem) == int.from_bytes(mem[16 - n:], "little")


@pytest.mark.parametrize(("sfx", "n"), WIDTHS, ids=[w[0] for w in WIDTHS])
def test_stx_stores_low_bytes_little_endian(sfx: str, n: int) -> None:
    vm = Vm(f"lddw %r2, 0x1122334455667788\nstx{sfx} [%r1+1], %r2\nexit", helpers={})
    vm.run(bytes(10))
    assert vm.mem_region is not None
    expected = (0x1122334455667788).to_bytes(8, "little")[:n]
    assert bytes(vm.mem_region.buf) == b"\0" + expected + bytes(9 - n)


@pytest.mark.parametrize(("sfx", "n"), WIDTHS, ids=[w[0] for w in WIDTHS])
def test_st_stores_immediate_truncated_to_width(sfx: str, n: int) -> None:
    vm = Vm(f"st{sfx} [%r1+0], -2\nexit", helpers={})
    vm.run(bytes(8))
    assert vm.mem_region is not None
    assert bytes(vm.mem_region.buf) == ((-2) & M64).to_bytes(8, "little")[:n] + bytes(8 - n)


def test_stdw_sign_extends_the_immediate() -> None:
    assert run("stdw [%r10-8], -1\nldxdw %r0, [%r10-8]\nexit") == M64


@pytest.mark.parametrize(("sfx", "n", "value", "expected"), [
    ("b", 1, 0x80, 0xFFFF_FFFF_FFFF_FF80),
    ("b", 1, 0x7F, 0x7F),
    ("h", 2, 0x8001, 0xFFFF_FFFF_FFFF_8001),
    ("h", 2, 0x7FFF, 0x7FFF),
    ("w", 4, 0x8000_0000, 0xFFFF_FFFF_8000_0000),
    ("w", 4, 0x7FFF_FFFF, 0x7FFF_FFFF),
], ids=["sb_neg", "sb_pos", "sh_neg", "sh_pos", "sw_neg", "sw_pos"])
def test_ldxs_sign_extends_to_64_bits(sfx: str, n: int, value: int, expected: int) -> None:
    mem = value.to_bytes(n, "little") + b"\xff" * 4
    assert run(f"ldxs{sfx} %r0, [%r1+0]\nexit", mem) == expected


def test_stack_round_trip_every_width() -> None:
    prog = """
        lddw %r1, 0x0102030405060708
        stxdw [%r10-8], %r1
        stxw [%r10-16], %r1
        stxh [%r10-24], %r1
        stxb [%r10-32], %r1
        ldxdw %r0, [%r10-8]
        ldxw %r2, [%r10-16]
        add %r0, %r2
        ldxh %r2, [%r10-24]
        add %r0, %r2
        ldxb %r2, [%r10-32]
        add %r0, %r2
        exit
    """
    assert run(prog) == 0x0102030405060708 + 0x05060708 + 0x0708 + 0x08


def test_whole_stack_frame_is_usable() -> None:
    prog = "stb [%r10-512], 1\nstb [%r10-1], 2\nldxb %r0, [%r10-512]\nldxb %r1, [%r10-1]\n" \
           "add %r0, %r1\nexit"
    assert run(prog) == 3


def test_stack_is_zeroed_at_each_run() -> None:
    vm = Vm("ldxdw %r0, [%r10-8]\nstdw [%r10-8], 5\nexit", helpers={})
    assert vm.run() == 0
    assert vm.run() == 0


@pytest.mark.parametrize("access", ["ldxb %r0, [%r10-513]", "ldxdw %r0, [%r10+0]",
                                    "ldxdw %r0, [%r10-4]", "stb [%r10+0], 1",
                                    "stxdw [%r10-516], %r1"])
def test_stack_access_outside_the_frame_faults(access: str) -> None:
    with pytest.raises(BpfFault) as e:
        run(f"mov %r1, 0\n{access}\nexit")
    assert e.value.pc == 1


def test_null_pointer_load_faults() -> None:
    with pytest.raises(BpfFault):
        run("mov %r1, 0\nldxw %r0, [%r1+0]\nexit")


# -- atomics -----------------------------------------------------------------------

#: (id, instruction, size, memory before, src, r0 before, memory after, src after, r0 after)
ATOMICS = [
    ("add64", "lock add [%r1+0], %r2", 8, 10, 5, 0, 15, 5, 0),
    ("add64_wraps", "lock add [%r1+0], %r2", 8, M64, 2, 0, 1, 2, 0),
    ("add32", "lock add32 [%r1+0], %r2", 4, 10, 5, 0, 15, 5, 0),
    ("add32_wraps_in_32_bits", "lock add32 [%r1+0], %r2", 4, M32, 2, 0, 1, 2, 0),
    ("or64", "lock or [%r1+0], %r2", 8, 0xF0, 0x0F, 0, 0xFF, 0x0F, 0),
    ("or32", "lock or32 [%r1+0], %r2", 4, 0xF0, 0x1_0000_000F, 0, 0xFF, 0x1_0000_000F, 0),
    ("and64", "lock and [%r1+0], %r2", 8, 0xFF, 0x0F, 0, 0x0F, 0x0F, 0),
    ("and32", "lock and32 [%r1+0], %r2", 4, 0xFF, 0x3C, 0, 0x3C, 0x3C, 0),
    ("xor64", "lock xor [%r1+0], %r2", 8, 0xFF, 0x0F, 0, 0xF0, 0x0F, 0),
    ("xor32", "lock xor32 [%r1+0], %r2", 4, 0xFF, 0x0F, 0, 0xF0, 0x0F, 0),
    ("fetch_add64", "lock fetch add [%r1+0], %r2", 8, 10, 5, 0, 15, 10, 0),
    ("fetch_add32_zero_extends", "lock fetch add32 [%r1+0], %r2", 4, 0xFFFF_FFF0,
     0xFFFF_FFFF_0000_0001, 0, 0xFFFF_FFF1, 0xFFFF_FFF0, 0),
    ("fetch_or64", "lock fetch or [%r1+0], %r2", 8, 0xF0, 0x0F, 0, 0xFF, 0xF0, 0),
    ("fetch_or32", "lock fetch or32 [%r1+0], %r2", 4, 0x8000_0000, M64, 0, M32,
     0x8000_0000, 0),
    ("fetch_and64", "lock fetch and [%r1+0], %r2", 8, 0xFF, 0x0F, 0, 0x0F, 0xFF, 0),
    ("fetch_and32", "lock fetch and32 [%r1+0], %r2", 4, 0xFF, 0x0F, 0, 0x0F, 0xFF, 0),
    ("fetch_xor64", "lock fetch xor [%r1+0], %r2", 8, 0xFF, 0x0F, 0, 0xF0, 0xFF, 0),
    ("fetch_xor32", "lock fetch xor32 [%r1+0], %r2", 4, 0xFF, 0x0F, 0, 0xF0, 0xFF, 0),
    ("xchg64", "lock xchg [%r1+0], %r2", 8, 0x1111, 0x2222, 0, 0x2222, 0x1111, 0),
    ("xchg32_zero_extends", "lock xchg32 [%r1+0], %r2", 4, 0x8000_0000,
     0xFFFF_FFFF_0000_2222, 0, 0x2222, 0x8000_0000, 0),
    ("cmpxchg64_hit_stores", "lock cmpxchg [%r1+0], %r2", 8, 7, 9, 7, 9, 9, 7),
    ("cmpxchg64_miss_keeps", "lock cmpxchg [%r1+0], %r2", 8, 7, 9, 8, 7, 9, 7),
    ("cmpxchg32_hit_stores", "lock cmpxchg32 [%r1+0], %r2", 4, 7, 9, 7, 9, 9, 7),
    ("cmpxchg32_miss_keeps", "lock cmpxchg32 [%r1+0], %r2", 4, 7, 9, 8, 7, 9, 7),
    ("cmpxchg32_compares_low_half_of_r0", "lock cmpxchg32 [%r1+0], %r2", 4, 7, 9,
     0xFFFF_FFFF_0000_0007, 9, 9, 7),
    ("cmpxchg32_zero_extends_r0", "lock cmpxchg32 [%r1+0], %r2", 4, 0x8000_0000, 9,
     0xFFFF_FFFF_8000_0001, 0x8000_0000, 9, 0x8000_0000),
    ("cmpxchg64_compares_all_of_r0", "lock cmpxchg [%r1+0], %r2", 8, 7, 9,
     0x1_0000_0007, 7, 9, 7),
]


@pytest.mark.parametrize(("insn", "size", "mem0", "src0", "r00", "mem1", "src1", "r01"),
                         [a[1:] for a in ATOMICS], ids=[a[0] for a in ATOMICS])
def test_atomic(insn: str, size: int, mem0: int, src0: int, r00: int, mem1: int, src1: int,
                r01: int) -> None:
    sentinel = b"\xee" * 8  # bytes after the operand must not change
    vm = Vm(f"lddw %r2, {src0:#x}\nlddw %r0, {r00:#x}\n{insn}\nexit", helpers={})
    r0 = vm.run(mem0.to_bytes(size, "little") + sentinel)
    assert vm.mem_region is not None
    buf = bytes(vm.mem_region.buf)
    assert int.from_bytes(buf[:size], "little") == mem1
    assert buf[size:] == sentinel
    assert vm.regs[2] == src1
    assert r0 == r01


@pytest.mark.parametrize(("code", "n"), [(0xD3, 1), (0xCB, 2), (0xC3, 4), (0xDB, 8)],
                         ids=["b", "h", "w", "dw"])
def test_load_acquire_zero_extends_and_store_release_truncates(code: int, n: int) -> None:
    prog = [
        *assemble("lddw %r2, -1"),
        Insn(code, 1, 2, 0, 0x110),  # store_release: *(u{n} *)(r1 + 0) = r2
        Insn(code, 0, 1, 0, 0x100),  # load_acquire:  r0 = *(u{n} *)(r1 + 0)
        *assemble("exit"),
    ]
    vm = Vm(prog, helpers={})
    assert vm.run(bytes(16)) == (1 << (8 * n)) - 1
    assert vm.mem_region is not None
    assert bytes(vm.mem_region.buf) == b"\xff" * n + bytes(16 - n)


def test_atomic_out_of_bounds_faults() -> None:
    with pytest.raises(BpfFault) as e:
        run("mov %r2, 1\nlock add [%r1+4], %r2\nexit", bytes(8))
    assert e.value.pc == 1


# -- 64-bit immediate loads ----------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, M32, 1 << 32, 0x8000_0000, 0xFFFF_FFFF_8000_0000,
                                   0x0123_4567_89AB_CDEF, M64])
def test_lddw_loads_the_64_bit_immediate(value: int) -> None:
    assert run(f"lddw %r0, {value:#x}\nexit") == value


@pytest.mark.parametrize("src", range(7), ids=lambda s: f"pseudo_src{s}")
def test_lddw_pseudo_forms_load_the_raw_immediate(src: int) -> None:
    # Unrelocated map/btf/func references: the interpreter loads the 64 bits as is.
    prog = [Insn(0x18, 0, src, 0, -0x1000), Insn(0, 0, 0, 0, 0x7654_3210), Insn(0x95)]
    assert Vm(prog, helpers={}).run() == 0x7654_3210_FFFF_F000


def test_lddw_counts_as_two_slots_for_jumps() -> None:
    assert run("ja +2\nlddw %r0, 5\nmov %r0, 9\nexit") == 9


# -- control flow faults ------------------------------------------------------------


def test_falling_off_the_end_faults_not_index_error() -> None:
    with pytest.raises(BpfFault) as e:
        run("mov %r0, 1")
    assert e.value.pc == 1


def test_jump_past_the_end_faults() -> None:
    with pytest.raises(BpfFault) as e:
        run("ja +5\nexit")
    assert not isinstance(e.value, BudgetExhausted)


def test_jump_before_the_start_faults() -> None:
    with pytest.raises(BpfFault):
        run("mov %r0, 1\nja -5\nexit")


def test_taken_conditional_jump_out_of_the_program_faults() -> None:
    with pytest.raises(BpfFault):
        run("jeq %r1, 0, +100\nexit")


def test_untaken_conditional_jump_out_of_the_program_is_harmless() -> None:
    assert run("mov %r0, 3\njeq %r1, 1, +100\nexit") == 3


def test_gotol_out_of_the_program_faults() -> None:
    with pytest.raises(BpfFault):
        run("ja32 +1000000\nexit")


def test_gotol_jumps_by_imm() -> None:
    assert run("ja32 +1\nmov %r0, 1\nexit") == 0


def test_jump_into_the_middle_of_lddw_faults() -> None:
    with pytest.raises(BpfFault) as e:
        run("ja +1\nlddw %r0, 5\nexit")
    assert e.value.pc == 2


def test_call_to_a_target_outside_the_program_faults() -> None:
    with pytest.raises(BpfFault):
        Vm([Insn(0x85, 0, 1, 0, 50), Insn(0x95)], helpers={}).run()


def test_fault_carries_the_faulting_pc() -> None:
    with pytest.raises(BpfFault) as e:
        run("mov %r0, 0\nmov %r1, 0\nmov %r2, 0\nldxdw %r0, [%r1+0]\nexit")
    assert e.value.pc == 3
    assert str(e.value).startswith("pc 3: ")


# -- budget ----------------------------------------------------------------------


def test_budget_stops_an_infinite_loop_with_its_pc() -> None:
    vm = Vm("ja -1", helpers={})
    with pytest.raises(BudgetExhausted) as e:
        vm.run(budget=1000)
    assert e.value.pc == 0
    assert vm.insns_executed == 1000


def test_budget_exhausted_is_a_bpf_fault() -> None:
    assert issubclass(BudgetExhausted, BpfFault)


def test_budget_set_on_the_vm_applies_to_each_run() -> None:
    vm = Vm("mov %r0, 1\nja -2", helpers={}, budget=51)
    with pytest.raises(BudgetExhausted) as e:
        vm.run()
    assert e.value.pc == 1
    assert vm.insns_executed == 51


def test_budget_equal_to_the_program_length_is_enough() -> None:
    vm = Vm("mov %r0, 1\nmov %r0, 2\nexit", helpers={})
    assert vm.run(budget=3) == 2
    with pytest.raises(BudgetExhausted) as e:
        vm.run(budget=2)
    assert e.value.pc == 2


@pytest.mark.parametrize("n", [1, 2, 10, 100])
def test_insns_executed_is_exact_for_straight_line_programs(n: int) -> None:
    vm = Vm("mov %r0, 1\n" * (n - 1) + "exit", helpers={})
    vm.run()
    assert vm.insns_executed == n


def test_insns_executed_counts_lddw_once_and_loop_iterations() -> None:
    prog = """
        lddw %r1, 5
    loop:
        sub %r1, 1
        jne %r1, 0, loop
        exit
    """
    vm = Vm(prog, helpers={})
    vm.run()
    assert vm.insns_executed == 1 + 5 * 2 + 1


def test_insns_executed_includes_calls_and_returns() -> None:
    vm = Vm("call local f\nexit\nf: mov %r0, 1\nexit", helpers={})
    assert vm.run() == 1
    assert vm.insns_executed == 4


# -- BPF-to-BPF calls ---------------------------------------------------------------


def test_local_call_returns_r0_and_passes_r1_to_r5() -> None:
    prog = """
        mov %r1, 1
        mov %r2, 2
        mov %r3, 3
        mov %r4, 4
        mov %r5, 5
        call local f
        add %r0, 100
        exit
    f:
        mov %r0, %r1
        add %r0, %r2
        add %r0, %r3
        add %r0, %r4
        add %r0, %r5
        exit
    """
    assert run(prog) == 115


def test_local_call_restores_callee_saved_r6_to_r9() -> None:
    prog = """
        mov %r6, 6
        mov %r7, 7
        mov %r8, 8
        mov %r9, 9
        call local f
        mov %r0, %r6
        lsh %r0, 8
        or %r0, %r7
        lsh %r0, 8
        or %r0, %r8
        lsh %r0, 8
        or %r0, %r9
        exit
    f:
        mov %r6, 0x66
        mov %r7, 0x77
        mov %r8, 0x88
        mov %r9, 0x99
        exit
    """
    assert run(prog) == 0x06070809


def test_local_call_clobbers_r1_to_r5_as_the_callee_left_them() -> None:
    # The interpreter leaves the callee's r1-r5 in place (the verifier marks them
    # unreadable after a call, so programs never depend on it either way).
    assert run("mov %r1, 1\ncall local f\nmov %r0, %r1\nexit\nf: mov %r1, 5\nexit") == 5


def test_each_frame_has_its_own_stack_and_r10() -> None:
    prog = """
        stdw [%r10-8], 111
        mov %r6, %r10
        call local f
        mov %r7, %r0
        ldxdw %r0, [%r10-8]
        jne %r6, %r10, bad
        jeq %r7, %r10, bad
        exit
    bad:
        mov %r0, -1
        exit
    f:
        ldxdw %r0, [%r10-8]
        jne %r0, 0, bad2
        stdw [%r10-8], 222
        mov %r0, %r10
        exit
    bad2:
        mov %r0, -2
        exit
    """
    vm = Vm(prog, helpers={})
    assert vm.run() == 111
    assert vm.stacks[1].buf[-8:] == (222).to_bytes(8, "little")


def test_callee_can_use_a_pointer_to_the_callers_stack() -> None:
    prog = """
        stdw [%r10-8], 5
        mov %r1, %r10
        add %r1, -8
        call local f
        ldxdw %r0, [%r10-8]
        exit
    f:
        ldxdw %r2, [%r1+0]
        add %r2, 1
        stxdw [%r1+0], %r2
        exit
    """
    assert run(prog) == 6


def _nested_calls(depth: int) -> str:
    """A program whose call chain reaches ``depth`` calls below the main program."""
    lines = []
    for i in range(depth):
        lines += [f"f{i}:" if i else "", f"call local f{i + 1}", "add %r0, 1", "exit"]
    lines += [f"f{depth}:", "mov %r0, 0", "exit"]
    return "\n".join(lines)


def test_seven_nested_calls_use_all_eight_frames() -> None:
    assert MAX_CALL_FRAMES == 8
    assert run(_nested_calls(MAX_CALL_FRAMES - 1)) == MAX_CALL_FRAMES - 1


def test_a_ninth_frame_faults() -> None:
    with pytest.raises(BpfFault) as e:
        run(_nested_calls(MAX_CALL_FRAMES))
    assert "too deep" in str(e.value)
    assert not isinstance(e.value, BudgetExhausted)


def test_unbounded_recursion_faults_cleanly() -> None:
    with pytest.raises(BpfFault) as e:
        run("call local f\nexit\nf: add %r0, 1\ncall local f\nexit")
    assert e.value.pc == 3
    assert "too deep" in str(e.value)


def test_frames_are_released_after_returning() -> None:
    # 20 sequential calls each one level deep never exceed the frame limit.
    prog = "mov %r6, 20\nloop:\ncall local f\nsub %r6, 1\njne %r6, 0, loop\nexit\n" \
           "f: add %r0, 1\nexit"
    assert run(prog) == 20


# -- helpers ---------------------------------------------------------------------


def test_helper_receives_vm_and_r1_to_r5() -> None:
    seen: list[tuple[Any, ...]] = []

    def record(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        seen.append((vm, r1, r2, r3, r4, r5))
        return 77

    vm = Vm("mov %r1, 1\nmov %r2, -2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 1234\nexit",
            helpers={1234: record})
    assert vm.run() == 77
    assert seen == [(vm, 1, (-2) & M64, 3, 4, 5)]


def test_helper_result_is_masked_to_u64() -> None:
    assert Vm("call 1\nexit", helpers={1: helper_returning(-1)}).run() == M64


def test_helper_returning_none_leaves_r0() -> None:
    assert Vm("mov %r0, 9\ncall 1\nexit", helpers={1: helper_returning(None)}).run() == 9


def test_helper_preserves_r6_to_r9() -> None:
    prog = "mov %r6, 6\nmov %r9, 9\ncall 1\nadd %r0, %r6\nadd %r0, %r9\nexit"
    assert Vm(prog, helpers={1: helper_returning(100)}).run() == 115


def test_calling_an_unknown_helper_faults_at_the_call() -> None:
    vm = Vm("mov %r0, 1\ncall 9999\nexit", helpers={})
    with pytest.raises(BpfFault) as e:
        vm.run()
    assert e.value.pc == 1
    assert "9999" in str(e.value)


def test_unknown_helper_on_an_untaken_path_is_harmless() -> None:
    assert Vm("ja +1\ncall 9999\nmov %r0, 4\nexit", helpers={}).run() == 4


def test_default_helpers_include_ktime_get_ns() -> None:
    vm = Vm("call 5\nexit")
    assert vm.run() == vm.clock.ns


def test_kfunc_call_uses_the_kfunc_table() -> None:
    vm = Vm("call runtime 7\nexit", helpers={}, kfuncs={7: helper_returning(70)})
    assert vm.run() == 70


def test_unknown_kfunc_faults() -> None:
    with pytest.raises(BpfFault):
        Vm("call runtime 7\nexit", helpers={7: helper_returning(1)}).run()


def test_callx_calls_the_helper_whose_id_is_in_the_register() -> None:
    helpers = {3: helper_returning(30), 4: helper_returning(40)}
    vm = Vm("call %r2\nexit", helpers=helpers)
    assert vm.run(r2=3) == 30
    assert vm.run(r2=4) == 40


def test_callx_to_an_unknown_helper_faults() -> None:
    with pytest.raises(BpfFault) as e:
        Vm("mov %r0, 0\ncall %r2\nexit", helpers={}).run(r2=12345)
    assert e.value.pc == 1


# -- tail calls ------------------------------------------------------------------

TAIL_CALL = 12  # BPF_FUNC_tail_call


def tail_caller(slots: dict[int, Any]) -> Any:
    """A bpf_tail_call stand-in: r3 indexes ``slots`` (a missing index is out of range)."""
    calls: list[int] = []

    def impl(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
        calls.append(r3)
        if r3 in slots:
            vm.tail_call(slots[r3])

    impl.calls = calls  # type: ignore[attr-defined]
    return impl


def test_tail_call_continues_in_the_target_with_the_same_registers() -> None:
    target = assemble("mov %r0, %r6\nadd %r0, %r1\nexit")
    vm = Vm("mov %r6, 100\nmov %r3, 0\ncall 12\nmov %r0, -1\nexit",
            helpers={TAIL_CALL: tail_caller({0: target})})
    assert vm.run(r1=5) == 105
    assert vm.tail_call_cnt == 1


def test_tail_call_limit_is_33_then_falls_through_with_r0_unchanged() -> None:
    assert MAX_TAIL_CALL_CNT == 33
    prog = "add %r6, 1\nmov %r0, %r6\nmov %r3, 0\ncall 12\nexit"
    slots: dict[int, Any] = {}
    helper = tail_caller(slots)
    vm = Vm(prog, helpers={TAIL_CALL: helper})
    slots[0] = vm.insns  # the program tail-calls itself
    # 1 entry + 33 successful tail calls; the 34th attempt returns with r0 = 34.
    assert vm.run() == 34
    assert vm.tail_call_cnt == 33
    assert len(helper.calls) == 34


def test_tail_call_counter_is_reset_by_each_run() -> None:
    slots: dict[int, Any] = {}
    vm = Vm("add %r6, 1\nmov %r0, %r6\nmov %r3, 0\ncall 12\nexit",
            helpers={TAIL_CALL: tail_caller(slots)})
    slots[0] = vm.insns
    assert vm.run() == 34
    assert vm.run() == 34


def test_tail_call_chain_across_programs() -> None:
    progs: dict[int, Any] = {}
    for i in range(3):
        progs[i] = assemble(f"add %r0, {10 ** i}\nmov %r3, {i + 1}\ncall 12\nexit")
    vm = Vm("mov %r3, 0\ncall 12\nmov %r0, -1\nexit", helpers={TAIL_CALL: tail_caller(progs)})
    assert vm.run() == 111  # slot 3 is out of range: the last program falls through
    assert vm.tail_call_cnt == 3


@pytest.mark.parametrize(("empty_attempts", "succeeds"), [(32, True), (33, False)])
def test_tail_call_to_an_empty_slot_counts_as_an_attempt(empty_attempts: int,
                                                         succeeds: bool) -> None:
    # Kernel: the counter is incremented before the slot is read, so failed
    # attempts on empty slots use up the budget of 33.
    target = assemble("mov %r0, 1000\nexit")
    prog = f"""
        mov %r6, {empty_attempts}
    loop:
        mov %r3, 0
        call 12
        sub %r6, 1
        jne %r6, 0, loop
        mov %r0, 5
        mov %r3, 1
        call 12
        exit
    """
    vm = Vm(prog, helpers={TAIL_CALL: tail_caller({0: None, 1: target})})
    assert vm.run() == (1000 if succeeds else 5)
    assert vm.tail_call_cnt == 33


def test_tail_call_with_index_out_of_range_does_not_count() -> None:
    vm = Vm("mov %r3, 7\ncall 12\nmov %r0, 1\nexit", helpers={TAIL_CALL: tail_caller({})})
    assert vm.run() == 1
    assert vm.tail_call_cnt == 0


def test_tail_call_from_a_subprogram_returns_to_its_caller() -> None:
    target = assemble("mov %r6, 0\nmov %r0, 40\nexit")
    prog = """
        mov %r6, 2
        call local f
        add %r0, %r6
        exit
    f:
        mov %r6, 99
        mov %r3, 0
        call 12
        mov %r0, -1
        exit
    """
    vm = Vm(prog, helpers={TAIL_CALL: tail_caller({0: target})})
    assert vm.run() == 42


def test_tail_call_target_may_be_bytes() -> None:
    raw = b"".join(i.pack() for i in assemble("mov %r0, 8\nexit"))
    vm = Vm("mov %r3, 0\ncall 12\nexit", helpers={TAIL_CALL: tail_caller({0: raw})})
    assert vm.run() == 8


@pytest.mark.parametrize("bad", [
    [Insn(0xFF)],  # unknown opcode
    [Insn(0x18, 0, 0, 0, 1)],  # lddw without its second slot
    [Insn(0xB7, 11, 0, 0, 1), Insn(0x95)],  # r11
], ids=["unknown_opcode", "truncated_lddw", "bad_register"])
def test_tail_call_to_an_invalid_insn_list_raises_invalid_insn(bad: list[Insn]) -> None:
    # Regression: a list target skipped validation and crashed with KeyError/IndexError.
    vm = Vm("mov %r3, 0\ncall 12\nexit", helpers={TAIL_CALL: tail_caller({0: bad})})
    with pytest.raises(InvalidInsn):
        vm.run()


@pytest.mark.parametrize("kind", ["list", "bytes"])
def test_tail_call_target_is_compiled_once(kind: str) -> None:
    target: Any = assemble("mov %r0, 8\nexit")
    if kind == "bytes":
        target = b"".join(i.pack() for i in target)
    vm = Vm("mov %r3, 0\ncall 12\nexit", helpers={TAIL_CALL: tail_caller({0: target})})
    assert vm.run() == 8
    n = len(vm._codes)
    assert vm.run() == 8
    assert len(vm._codes) == n == 2


# -- may_goto --------------------------------------------------------------------

MAY_GOTO_LOOP = [
    *assemble("add %r0, 1"),
    Insn(0xE5, 0, 0, 1, 0),  # may_goto +1
    *assemble("ja -3\nexit"),
]


def test_may_goto_falls_through_bpf_max_loops_times_then_branches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interp, "BPF_MAX_LOOPS", 5)
    vm = Vm(MAY_GOTO_LOOP, helpers={})
    assert vm.run() == 6
    assert vm.run() == 6  # the loop budget is reset by each run


def test_may_goto_budget_is_the_kernels() -> None:
    assert interp.BPF_MAX_LOOPS == 8 * 1024 * 1024


def test_may_goto_with_zero_offset_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interp, "BPF_MAX_LOOPS", 0)
    prog = [*assemble("mov %r0, 3"), Insn(0xE5, 0, 0, 0, 0), *assemble("exit")]
    assert Vm(prog, helpers={}).run() == 3


def test_may_goto_budget_is_shared_by_all_may_gotos_of_a_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interp, "BPF_MAX_LOOPS", 3)
    may_goto_skip = Insn(0xE5, 0, 0, 1, 0)
    add = assemble("add %r0, 1")
    prog = [may_goto_skip, *add, may_goto_skip, *add, may_goto_skip, *add,
            may_goto_skip, *add, *assemble("exit")]
    assert Vm(prog, helpers={}).run() == 3


def asm_may_goto(text: str) -> list[Insn]:
    """Assemble ``text`` where ``may_goto target`` is allowed (the dialect lacks it)."""
    marker = 0x5EED
    insns = assemble(text.replace("may_goto ", f"jset %r10, {marker}, "))
    return [Insn(0xE5, 0, 0, i.off) if (i.code, i.dst, i.imm) == (0x45, 10, marker) else i
            for i in insns]


COUNT_UNTIL_MAY_GOTO_GIVES_UP = """
    f:
        mov %r0, 0
    floop:
        may_goto fdone
        add %r0, 1
        ja floop
    fdone:
        exit
"""


def test_may_goto_budget_is_per_function_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel keeps the may_goto counter in each function's stack frame and
    # sets it to BPF_MAX_LOOPS in the function's prologue (do_misc_fixups).
    monkeypatch.setattr(interp, "BPF_MAX_LOOPS", 3)
    prog = asm_may_goto("call local f\nmov %r6, %r0\ncall local f\nadd %r0, %r6\nexit\n"
                        + COUNT_UNTIL_MAY_GOTO_GIVES_UP)
    assert Vm(prog, helpers={}).run() == 6


def test_callers_may_goto_budget_survives_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interp, "BPF_MAX_LOOPS", 3)
    prog = asm_may_goto("""
        mov %r6, 0
    loop:
        may_goto done
        call local f
        add %r6, 1
        ja loop
    done:
        mov %r0, %r6
        exit
    """ + COUNT_UNTIL_MAY_GOTO_GIVES_UP)
    assert Vm(prog, helpers={}).run() == 3


def test_tail_called_program_gets_a_fresh_may_goto_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interp, "BPF_MAX_LOOPS", 3)
    counter = asm_may_goto(COUNT_UNTIL_MAY_GOTO_GIVES_UP)
    prog = asm_may_goto("""
    loop:
        may_goto spent
        ja loop
    spent:
        mov %r3, 0
        call 12
        exit
    """)
    vm = Vm(prog, helpers={TAIL_CALL: tail_caller({0: counter})})
    assert vm.run() == 3


# -- LD_ABS / LD_IND ----------------------------------------------------------------

PACKET = bytes(range(0x10, 0x30))


def _skb_vm(text: str, data: bytes | None = PACKET) -> Vm:
    vm = Vm(text, helpers={})
    vm.skb_data = data
    return vm


@pytest.mark.parametrize(("insn", "expected"), [
    ("ldabsb 3", 0x13),
    ("ldabsh 3", 0x1314),
    ("ldabsw 3", 0x13141516),
    ("ldabsw 28", 0x2C2D2E2F),
])
def test_ld_abs_loads_big_endian(insn: str, expected: int) -> None:
    assert _skb_vm(f"{insn}\nexit").run() == expected


@pytest.mark.parametrize(("insn", "expected"), [
    ("ldindb %r6, 1", 0x15),
    ("ldindh %r6, 1", 0x1516),
    ("ldindw %r6, -4", 0x10111213),
])
def test_ld_ind_adds_the_register(insn: str, expected: int) -> None:
    assert _skb_vm(f"mov %r6, 4\n{insn}\nexit").run() == expected


@pytest.mark.parametrize("insn", ["ldabsb 32", "ldabsh 31", "ldabsw 29", "ldabsw -1",
                                  "ldabsw 0x7fffffff"])
def test_ld_abs_out_of_bounds_ends_the_program_with_r0_zero(insn: str) -> None:
    vm = _skb_vm(f"mov %r0, 7\n{insn}\nmov %r0, 9\nexit")
    assert vm.run() == 0
    assert vm.insns_executed == 2


@pytest.mark.parametrize("r6", [-5, 32, 40, 0x7FFF_FFFF, M64])
def test_ld_ind_out_of_bounds_ends_the_program_with_r0_zero(r6: int) -> None:
    vm = _skb_vm(f"lddw %r6, {r6 & M64:#x}\nmov %r0, 7\nldindb %r6, 0\nmov %r0, 9\nexit")
    assert vm.run() == 0
    assert vm.insns_executed == 3


def test_ld_ind_offset_is_32_bit() -> None:
    # (r6 + imm) is taken as a 32-bit value: the upper half of r6 is ignored.
    assert _skb_vm("lddw %r6, 0x100000002\nldindb %r6, 0\nexit").run() == 0x12


def test_ld_abs_without_a_packet_faults() -> None:
    with pytest.raises(BpfFault):
        _skb_vm("ldabsb 0\nexit", None).run()


def test_ld_abs_out_of_bounds_in_a_subprogram_returns_zero_to_its_caller() -> None:
    # Regression: the kernel rewrites LD_ABS to "...; r0 = 0; exit" (bpf_gen_ld_abs),
    # an exit from the *current function*: in a subprogram it returns to the
    # caller (the verifier's "abnormal return"), it does not end the program.
    prog = """
        mov %r6, 7
        call local f
        add %r0, 100
        add %r0, %r6
        exit
    f:
        mov %r6, 1
        ldabsw 100
        mov %r0, 9
        exit
    """
    assert _skb_vm(prog).run() == 107


def test_ld_abs_in_bounds_in_a_subprogram_continues() -> None:
    prog = "call local f\nadd %r0, 1\nexit\nf: ldabsb 0\nexit"
    assert _skb_vm(prog).run() == 0x11
