"""Identity, time, locks, probe reads, ring buffers and callbacks, on a Runtime.

Programs here run on a Vm bound to a Runtime (as a loaded program's is), so a
helper's full 64-bit r0 is visible.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from pyebpf import BpfFault, Insn, MapType, Runtime, Vm
from pyebpf.engine.interpreter import FUNC_BASE
from pyebpf.helpers.time import HZ, INITIAL_JIFFIES
from pyebpf.maps.ringbuf import RingBufferConsumer

from ._build import (
    ADD,
    JEQ,
    Asm,
    alu,
    call,
    exit_,
    ld_map_fd,
    lddw,
    ldx,
    map_create,
    mov,
    movr,
    on,
    st,
    stx,
)

M64 = (1 << 64) - 1


def vm_for(rt: Runtime, insns: list[Insn] | str) -> Vm:
    return Vm(insns, runtime=rt, memory=rt.memory, clock=rt.clock, helpers=rt.helpers)


def run(rt: Runtime, insns: list[Insn] | str, **regs: int) -> int:
    return vm_for(rt, insns).run(**regs)


# -- identity -------------------------------------------------------------------------------------
def test_prandom_is_seeded_by_the_runtime() -> None:
    prog = "call 7\nexit"
    a = [run(Runtime(seed=5), prog) for _ in range(1)] + [run(Runtime(seed=5), prog)]
    assert a[0] == a[1] < 1 << 32
    rt = Runtime(seed=5)
    seq = [run(rt, prog) for _ in range(4)]
    assert seq[0] == a[0] and len(set(seq)) == 4
    assert run(Runtime(seed=6), prog) != a[0]


def test_smp_processor_id_and_numa_node_follow_the_runtime() -> None:
    rt = Runtime(nr_cpus=8)
    rt.cpu = 5
    assert run(rt, "call 8\nexit") == 5
    assert run(rt, "call 42\nexit") == 0
    rt.numa_node = 1
    assert run(rt, "call 42\nexit") == 1


def test_current_task_identity_is_settable() -> None:
    rt = Runtime()
    rt.pid, rt.tgid, rt.uid, rt.gid = 1234, 1200, 1000, 100
    assert run(rt, "call 14\nexit") == (1200 << 32) | 1234
    assert run(rt, "call 15\nexit") == (100 << 32) | 1000
    assert run(rt, "call 35\nexit") == rt.current_task


@pytest.mark.parametrize(("comm", "size", "expected"), [
    ("pyebpf", 16, b"pyebpf".ljust(16, b"\0")),
    ("pyebpf", 4, b"pye\0"),
    ("a-very-long-process-name", 16, b"a-very-long-pro\0"),  # TASK_COMM_LEN
    ("nginx", 1, b"\0"),
])
def test_get_current_comm(comm: str, size: int, expected: bytes) -> None:
    rt = Runtime()
    rt.comm = comm
    buf = rt.memory.map(b"\xff" * 32, kind="test")
    assert run(rt, f"mov %r2, {size}\ncall 16\nexit", r1=buf.base) == 0
    assert bytes(buf.buf[:size]) == expected
    assert buf.buf[size:] == b"\xff" * (32 - size)


def test_identity_helpers_need_a_runtime() -> None:
    with pytest.raises(BpfFault, match="needs a Runtime"):
        Vm("call 14\nexit").run()


# -- time -----------------------------------------------------------------------------------------
def test_time_helpers_read_the_runtime_clock() -> None:
    rt = Runtime()
    rt.clock.set(5_000_000_000)
    rt.clock.suspended_ns = 7
    assert run(rt, "call 5\nexit") == 5_000_000_000
    assert run(rt, "call 125\nexit") == 5_000_000_007
    assert run(rt, "call 160\nexit") == 5_000_000_000
    assert run(rt, "call 118\nexit") == INITIAL_JIFFIES + 5 * HZ
    assert INITIAL_JIFFIES == 0x1_0000_0000 - 300 * HZ


# -- spin locks -----------------------------------------------------------------------------------
def test_spin_lock_and_unlock() -> None:
    rt = Runtime()
    value = rt.memory.map(8, kind="map_value")
    # r0 = (the lock word while held << 8) | the lock word after the unlock
    prog = Asm()(movr(6, 1), call(93), ldx(4, 7, 6, 0), movr(1, 6), call(94), ldx(4, 0, 6, 0),
                 alu(0x60, 7, 8), Insn(0x4F, 0, 7), exit_()).build()
    assert run(rt, prog, r1=value.base) == 1 << 8
    assert value.buf[:4] == bytes(4)


def test_taking_a_held_spin_lock_faults() -> None:
    rt = Runtime()
    value = rt.memory.map(8, kind="map_value")
    with pytest.raises(BpfFault, match="deadlock"):
        run(rt, Asm()(movr(6, 1), call(93), movr(1, 6), call(93), exit_()).build(),
            r1=value.base)


# -- probe reads over the user and kernel address spaces ------------------------------------------
def test_probe_read_user_reads_the_runtimes_user_memory() -> None:
    rt = Runtime()
    user = rt.user_memory.map(b"user data\0more", kind="user")
    dst = rt.memory.map(b"\xaa" * 16, kind="test")
    prog = f"mov %r2, 9\nlddw %r3, {user.base}\ncall 112\nexit"
    assert run(rt, prog, r1=dst.base) == 0
    assert bytes(dst.buf[:10]) == b"user data\xaa"
    prog = f"mov %r2, 16\nlddw %r3, {user.base}\ncall 114\nexit"
    assert run(rt, prog, r1=dst.base) == 10
    assert bytes(dst.buf[:11]) == b"user data\0\xaa"
    # Past the end of the user buffer (into its guard page): -EFAULT, dst zeroed.
    prog = f"mov %r2, 16\nlddw %r3, {user.base + 8}\ncall 112\nexit"
    assert run(rt, prog, r1=dst.base) == -14 & M64
    assert bytes(dst.buf) == bytes(16)


def test_probe_read_kernel_reads_a_ctx() -> None:
    from pyebpf.progs.ctx import map_ctx
    from pyebpf.progs.xdp import XDP_MD, XdpBuff

    rt = Runtime()
    ctx = map_ctx(rt.memory, XDP_MD, XdpBuff(0, 0, 0, 0, 0, ingress_ifindex=0x01020304))
    dst = rt.memory.map(8, kind="test")
    prog = f"mov %r2, 4\nlddw %r3, {ctx.base + 12}\ncall 113\nexit"
    assert run(rt, prog, r1=dst.base) == 0
    assert bytes(dst.buf[:4]) == (0x01020304).to_bytes(4, "little")


def test_probe_read_compat_picks_user_or_kernel_by_address() -> None:
    rt = Runtime()
    user = rt.user_memory.map(b"U" * 8, kind="user")
    kern = rt.memory.map(b"K" * 8, kind="test")
    dst = rt.memory.map(8, kind="test")
    for src, byte in ((user.base, b"U"), (kern.base, b"K")):
        assert run(rt, f"mov %r2, 8\nlddw %r3, {src}\ncall 4\nexit", r1=dst.base) == 0
        assert bytes(dst.buf) == byte * 8


# -- ring buffers ---------------------------------------------------------------------------------
def test_ringbuf_helpers() -> None:
    rt = Runtime()
    # The program keeps a record it got back on a path the verifier calls a
    # leak (the "too big" reservation's non-NULL branch): it pins the helpers
    # as the engine runs them, so load it with the structural checks only.
    rt.verifier = "structural"
    b = on(rt)
    rb = map_create(b, MapType.RINGBUF, 0, 0, 4096)
    p = Asm()
    # output 5 bytes of the stack, reserve 8 and submit, reserve 8 and discard,
    # then return the bytes available (each record: 8-byte header, rounded to 8).
    p(lddw(1, int.from_bytes(b"hello\0\0\0", "little")), stx(8, 10, 1, -8))
    p(ld_map_fd(1, rb), movr(2, 10), alu(ADD, 2, -8), mov(3, 5), mov(4, 0), call(130))
    p.jmp(0x55, 0, 0, "fail")  # JNE r0, 0
    p(ld_map_fd(1, rb), mov(2, 8), mov(3, 0), call(131))
    p.jmp(JEQ, 0, 0, "fail")
    p(st(8, 0, 0, 42), movr(1, 0), mov(2, 0), call(132))
    p(ld_map_fd(1, rb), mov(2, 8), mov(3, 0), call(131))
    p.jmp(JEQ, 0, 0, "fail")
    p(movr(1, 0), mov(2, 0), call(133))
    p(ld_map_fd(1, rb), mov(2, 8192), mov(3, 0), call(131))  # too big: NULL
    p.jmp(0x55, 0, 0, "fail")
    p(ld_map_fd(1, rb), mov(2, 0), call(134), exit_())         # BPF_RB_AVAIL_DATA
    p.label("fail")
    p(mov(0, -1), exit_())
    from ._build import load

    fd = load(b, p.build())
    from pyebpf.prog import BpfProg

    prog = rt.fds[fd].obj
    assert isinstance(prog, BpfProg)
    assert prog.run(0) == 16 + 16 + 16
    ring = rt.fds[rb].obj
    assert RingBufferConsumer(ring).poll() == [b"hello", (42).to_bytes(8, "little")]


# -- callbacks ------------------------------------------------------------------------------------
def _callback_prog(body: list[Insn]) -> list[Insn]:
    """main: r0 = bpf_loop(3, cb, NULL, 0); exit. cb: body."""
    p = Asm()
    p(mov(1, 3))
    p.ld_func(2, "cb")
    p(mov(3, 0), mov(4, 0), call(181), exit_())
    p.label("cb")
    p(*body)
    return p.build()


def test_function_addresses_are_not_memory() -> None:
    p = Asm()
    p.ld_func(0, "f")
    p(exit_())
    p.label("f")
    p(mov(0, 0), exit_())
    vm = Vm(p.build())
    addr = vm.run()
    assert addr >= FUNC_BASE and addr % 8 == 0
    assert vm.memory.region_at(addr) is None


def test_callback_sees_its_args_and_keeps_the_callers_registers() -> None:
    rt = Runtime()
    p = Asm()
    p(mov(6, 66), mov(9, 99), mov(1, 4))
    p.ld_func(2, "cb")
    p(movr(3, 10), mov(4, 0), call(181))
    p(alur_add(0, 6), alur_add(0, 9), exit_())
    p.label("cb")  # clobbers r6-r9 and its own stack
    p(mov(6, 0), mov(9, 0), st(8, 10, -8, 1), mov(0, 0), exit_())
    assert run(rt, p.build()) == 4 + 66 + 99


def alur_add(dst: int, src: int) -> Insn:
    return Insn(0x0F, dst, src)


def test_a_fault_in_a_callback_names_the_callback_pc() -> None:
    rt = Runtime()
    prog = _callback_prog([ldx(8, 0, 1, 0), exit_()])  # *(u64 *)(i): a bad pointer
    with pytest.raises(BpfFault, match=r"in a callback, pc 7:") as info:
        run(rt, prog)
    assert info.value.pc == 5  # the call of bpf_loop


def test_callback_instructions_count() -> None:
    rt = Runtime()
    vm = vm_for(rt, _callback_prog([mov(0, 0), exit_()]))
    assert vm.run() == 3
    assert vm.insns_executed == 6 + 3 * 2


def test_callback_budget() -> None:
    from pyebpf import BudgetExhausted

    rt = Runtime()
    prog = _callback_prog([mov(0, 0), Insn(0x05, 0, 0, -1, 0), exit_()])  # ja -1: forever
    with pytest.raises(BudgetExhausted):
        vm_for(rt, prog).run(budget=1000)


def test_calling_a_non_function_faults() -> None:
    rt = Runtime()
    with pytest.raises(BpfFault, match="not the address of a BPF function"):
        run(rt, "mov %r1, 1\nlddw %r2, 0x1234\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit")


def test_callbacks_nest_up_to_the_call_depth_limit() -> None:
    """Each callback frame is one level deeper; the kernel allows 8 frames."""
    rt = Runtime()
    p = Asm()
    p.label("f")  # main and callback alike: recurse through bpf_loop(1, f) r1 times
    p(mov(1, 1))
    p.ld_func(2, "f")
    p(mov(3, 0), mov(4, 0), call(181), exit_())
    with pytest.raises(BpfFault, match="call stack is too deep"):
        run(rt, p.build())


# -- robustness: any arguments give an r0 or a BpfFault -------------------------------------------
@settings(max_examples=150)
@given(func=hs.sampled_from(sorted(Runtime().helpers)),
       args=hs.lists(hs.one_of(hs.integers(0, M64), hs.sampled_from(["buf", "map", 0, 8, 64])),
                     min_size=5, max_size=5))
def test_helpers_never_raise_python_errors(func: int, args: list[Any]) -> None:
    rt = Runtime()
    buf = rt.memory.map(b"%d %s\0" + bytes(58), kind="test")
    b = on(rt)
    m = map_create(b, MapType.HASH, 4, 8, 4)
    maddr = rt.fds[m].obj.addr
    regs = [buf.base if a == "buf" else maddr if a == "map" else a for a in args]
    vm = vm_for(rt, f"call {func}\nexit")
    try:
        r0 = vm.run(r1=regs[0], r2=regs[1], r3=regs[2], r4=regs[3], r5=regs[4], budget=10_000)
    except BpfFault:
        return
    assert 0 <= r0 <= M64
