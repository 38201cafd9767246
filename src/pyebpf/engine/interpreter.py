"""The interpreter: a switch over the opcode, decoded once, run by a tight loop.

How it is fast enough in CPython
--------------------------------
At load time every instruction slot is turned into a *handler*: a closure with
its operands (registers, offset, immediate, next and target pc) already bound,
that executes the instruction and returns the next pc. The switch over the
opcode happens once per slot, when the handler is built (the kernel's
``jumptable[256]`` indexed by opcode, here :data:`_BUILDERS`), not once per
executed instruction. The run loop is then only::

    for i in range(budget):
        pc = code[pc]()

The bodies of the arithmetic, compare and memory handlers come from the
statement tables below (:data:`_ALU64`, :data:`_JCC_COND`, ...), turned into
closure factories with ``exec`` the first time an opcode variant is needed.
That keeps the semantics tabular (one line per operation, easy to compare
with the kernel's ``___bpf_prog_run``) while each handler pays for exactly
its own work: no per-instruction allocation, no decoding, no dispatch on
operand kinds. :mod:`pyebpf.engine.alu` states the same semantics as plain
functions; the tests hold the two to each other.

Rare control transfers (program exit, a tail call, returning into another
program) leave the loop by exception, so the common path pays nothing for
them. The loads the verifier made BPF_PROBE_MEM (through BTF pointers it can't
vouch for: ``prog.probe_mem_insns``) get a handler of their own, whose fault
reads 0 as the kernel's exception table makes it; other loads are unchanged.
Faults (:class:`~pyebpf.errors.BpfFault`) get the faulting pc attached by
the loop.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..clock import Clock
from ..errors import BpfFault, BudgetExhausted, InvalidInsn
from ..isa.insn import Insn, decode, validate
from ..isa.opcodes import (
    MAX_BPF_STACK,
    MAX_CALL_FRAMES,
    MAX_TAIL_CALL_CNT,
    OPCODES,
    AluOp,
    AtomicOp,
    CallSrc,
    Class,
    JmpOp,
    Kind,
    OpSpec,
    PseudoSrc,
    Source,
)
from ..memory import AddressSpace, Region
from .alu import M32, M64, bswap, sdiv, sext, smod

__all__ = ["DEFAULT_BUDGET", "BPF_MAX_LOOPS", "Program", "Vm", "as_insns"]

#: Instructions a run may execute before it is stopped (settable per Vm/run).
DEFAULT_BUDGET = 100_000_000
#: Iterations ``may_goto`` grants before it takes its branch (kernel BPF_MAX_LOOPS).
BPF_MAX_LOOPS = 8 * 1024 * 1024
#: Where the addresses of BPF functions (what an lddw of a BPF_PSEUDO_FUNC
#: yields) live: never mapped in an address space, so a program can't load
#: from them; each built program gets a 2**28-byte window (8 bytes per insn).
FUNC_BASE = 0xFFFF_F000_0000_0000
_FUNC_WINDOW = 1 << 28

Handler = Callable[[], int]
Program = Sequence[Insn]

# ---------------------------------------------------------------------------
# Statement tables. In every body: ``regs`` is the register file (u64 values),
# ``d``/``s`` the register numbers, ``B`` the source operand (``regs[s]``, or
# the constant ``k``), ``nxt`` the next pc and ``tgt`` the jump target.
# ---------------------------------------------------------------------------

#: 64-bit ALU: (op, off) -> statement. off selects sdiv/smod (1) or movsx (8/16/32).
_ALU64: dict[tuple[AluOp, int], str] = {
    (AluOp.ADD, 0): "regs[d] = (regs[d] + B) & M64",
    (AluOp.SUB, 0): "regs[d] = (regs[d] - B) & M64",
    (AluOp.MUL, 0): "regs[d] = (regs[d] * B) & M64",
    (AluOp.DIV, 0): "b = B\nregs[d] = regs[d] // b if b else 0",
    (AluOp.DIV, 1): "regs[d] = sdiv(regs[d], B, 64)",
    (AluOp.MOD, 0): "b = B\nif b: regs[d] %= b",
    (AluOp.MOD, 1): "regs[d] = smod(regs[d], B, 64)",
    (AluOp.OR, 0): "regs[d] |= B",
    (AluOp.AND, 0): "regs[d] &= B",
    (AluOp.XOR, 0): "regs[d] ^= B",
    (AluOp.LSH, 0): "regs[d] = (regs[d] << (B & 63)) & M64",
    (AluOp.RSH, 0): "regs[d] >>= B & 63",
    (AluOp.ARSH, 0): "regs[d] = (((regs[d] ^ SIGN64) - SIGN64) >> (B & 63)) & M64",
    (AluOp.MOV, 0): "regs[d] = B",
    (AluOp.MOV, 8): "regs[d] = (((B & 0xFF) ^ 0x80) - 0x80) & M64",
    (AluOp.MOV, 16): "regs[d] = (((B & 0xFFFF) ^ 0x8000) - 0x8000) & M64",
    (AluOp.MOV, 32): "regs[d] = (((B & M32) ^ SIGN32) - SIGN32) & M64",
}

#: 32-bit ALU: results are zero-extended into the 64-bit register. The low 32
#: bits of +, -, *, |, &, ^ and << depend only on the operands' low 32 bits, so
#: those mask once at the end; division, modulo and right shifts mask first.
_ALU32: dict[tuple[AluOp, int], str] = {
    (AluOp.ADD, 0): "regs[d] = (regs[d] + B) & M32",
    (AluOp.SUB, 0): "regs[d] = (regs[d] - B) & M32",
    (AluOp.MUL, 0): "regs[d] = (regs[d] * B) & M32",
    (AluOp.DIV, 0): "b = B & M32\nregs[d] = (regs[d] & M32) // b if b else 0",
    (AluOp.DIV, 1): "regs[d] = sdiv(regs[d], B, 32)",
    (AluOp.MOD, 0): "b = B & M32\nregs[d] = (regs[d] & M32) % b if b else regs[d] & M32",
    (AluOp.MOD, 1): "regs[d] = smod(regs[d], B, 32)",
    (AluOp.OR, 0): "regs[d] = (regs[d] | B) & M32",
    (AluOp.AND, 0): "regs[d] = regs[d] & B & M32",
    (AluOp.XOR, 0): "regs[d] = (regs[d] ^ B) & M32",
    (AluOp.LSH, 0): "regs[d] = (regs[d] << (B & 31)) & M32",
    (AluOp.RSH, 0): "regs[d] = (regs[d] & M32) >> (B & 31)",
    (AluOp.ARSH, 0): "regs[d] = ((((regs[d] & M32) ^ SIGN32) - SIGN32) >> (B & 31)) & M32",
    (AluOp.MOV, 0): "regs[d] = B & M32",
    (AluOp.MOV, 8): "regs[d] = (((B & 0xFF) ^ 0x80) - 0x80) & M32",
    (AluOp.MOV, 16): "regs[d] = (((B & 0xFFFF) ^ 0x8000) - 0x8000) & M32",
}

#: Immediate forms that can skip a run-time step: the shift count is masked at
#: build time, and a division by a non-zero constant needs no zero test (a zero
#: constant keeps the general statement above).
_ALU64_K: dict[tuple[AluOp, int], str] = {
    (AluOp.DIV, 0): "regs[d] //= k",
    (AluOp.MOD, 0): "regs[d] %= k",
    (AluOp.LSH, 0): "regs[d] = (regs[d] << k) & M64",
    (AluOp.RSH, 0): "regs[d] >>= k",
    (AluOp.ARSH, 0): "regs[d] = (((regs[d] ^ SIGN64) - SIGN64) >> k) & M64",
}
_ALU32_K: dict[tuple[AluOp, int], str] = {
    (AluOp.DIV, 0): "regs[d] = (regs[d] & M32) // k",
    (AluOp.MOD, 0): "regs[d] = (regs[d] & M32) % k",
    (AluOp.LSH, 0): "regs[d] = (regs[d] << k) & M32",
    (AluOp.RSH, 0): "regs[d] = (regs[d] & M32) >> k",
    (AluOp.ARSH, 0): "regs[d] = ((((regs[d] & M32) ^ SIGN32) - SIGN32) >> k) & M32",
}
_SHIFTS = (AluOp.LSH, AluOp.RSH, AluOp.ARSH)

#: Conditional jumps: op -> condition. ``A``/``B`` are the operands (masked to
#: 32 bits for JMP32); ``AS``/``BS`` the same with the sign bit flipped, which
#: turns a signed comparison into an unsigned one.
_JCC_COND: dict[JmpOp, str] = {
    JmpOp.JEQ: "A == B",
    JmpOp.JNE: "A != B",
    JmpOp.JGT: "A > B",
    JmpOp.JGE: "A >= B",
    JmpOp.JLT: "A < B",
    JmpOp.JLE: "A <= B",
    JmpOp.JSET: "A & B",
    JmpOp.JSGT: "AS > BS",
    JmpOp.JSGE: "AS >= BS",
    JmpOp.JSLT: "AS < BS",
    JmpOp.JSLE: "AS <= BS",
}

#: Loads: width -> expression reading ``buf`` at ``o`` (zero- or sign-extending).
_LOAD = {1: "buf[o]", 2: "U16(buf, o)[0]", 4: "U32(buf, o)[0]", 8: "U64(buf, o)[0]"}
_LOAD_SX = {
    1: "((buf[o] ^ 0x80) - 0x80) & M64",
    2: "S16(buf, o)[0] & M64",
    4: "S32(buf, o)[0] & M64",
}
#: Stores: width -> statement writing ``v`` (already masked to the width).
_STORE = {1: "buf[o] = v", 2: "P16(buf, o, v)", 4: "P32(buf, o, v)", 8: "P64(buf, o, v)"}

# The fast path skips masking the address to 64 bits: a sum outside [0, 2**64)
# has no page, so it takes the slow path, which masks and looks again (a
# wrapped address is legal BPF) before it faults.
_MEM_LOAD_FAST = """\
a = regs[s] + off
try:
    e = rpages[a >> 12]
except KeyError:
    regs[d] = {slow}
    return nxt
o = a - e[0]
if o + {n} <= e[1]:
    buf = e[2]
    regs[d] = {load}
    return nxt
"""
_MEM_LOAD = _MEM_LOAD_FAST + "raise fault(a & M64, {n}, False)"

# BPF_PROBE_MEM / BPF_PROBE_MEMSX: the loads the verifier marked as going through a
# BTF pointer it can't vouch for. The fast path is an ordinary load's; anything it
# can't serve (a device page, a missing page, a load past its region's end) goes
# to probe_load, which reads 0 where the kernel's exception table would.
_MEM_LOAD_PROBE = _MEM_LOAD_FAST + "regs[d] = {slow}\nreturn nxt"

_MEM_STORE = """\
a = regs[d] + off
v = {value}
try:
    e = wpages[a >> 12]
except KeyError:
    mem.store(a, {n}, v)
    return nxt
o = a - e[0]
if o + {n} <= e[1]:
    buf = e[2]
    {store}
    return nxt
raise fault(a & M64, {n}, True)"""

_FACTORY = """\
def factory(regs, mem, rpages, wpages, fault, d, s, off, k, ks, nxt, tgt):
    def handler():
{body}
    return handler
"""

def _probe_load(mem: AddressSpace, addr: int, size: int) -> int:
    """A BPF_PROBE_MEM load's slow path: what ``mem.load`` reads, or 0 where it would
    fault (the kernel's exception-table fixup zeroes the destination register)."""
    try:
        return mem.load(addr & M64, size)
    except BpfFault:
        return 0


_NAMESPACE: dict[str, Any] = {
    "M64": M64,
    "M32": M32,
    "SIGN64": 1 << 63,
    "SIGN32": 1 << 31,
    "sdiv": sdiv,
    "sext": sext,
    "probe_load": _probe_load,
    "smod": smod,
    "U16": struct.Struct("<H").unpack_from,
    "U32": struct.Struct("<I").unpack_from,
    "U64": struct.Struct("<Q").unpack_from,
    "S16": struct.Struct("<h").unpack_from,
    "S32": struct.Struct("<i").unpack_from,
    "P16": struct.Struct("<H").pack_into,
    "P32": struct.Struct("<I").pack_into,
    "P64": struct.Struct("<Q").pack_into,
}

_factories: dict[str, Callable[..., Handler]] = {}


#: Names spelled out as literals in handler source: a constant load is cheaper
#: than a global one on the hot path.
_LITERALS = {"M64": hex(M64), "M32": hex(M32), "SIGN64": hex(1 << 63), "SIGN32": hex(1 << 31)}
_LITERAL_RE = re.compile(r"\b(" + "|".join(_LITERALS) + r")\b")


def _factory(body: str) -> Callable[..., Handler]:
    """The closure factory for a handler body, compiled once per distinct body."""
    fn = _factories.get(body)
    if fn is None:
        text = _LITERAL_RE.sub(lambda m: _LITERALS[m.group(1)], body)
        src = _FACTORY.format(body="\n".join("        " + line for line in text.splitlines()))
        ns = dict(_NAMESPACE)
        exec(compile(src, f"<pyebpf handler: {body.splitlines()[0]}>", "exec"), ns)
        fn = _factories[body] = ns["factory"]
    return fn


def _alu_body(spec: OpSpec, insn: Insn, k: int) -> tuple[str, int]:
    """The statement for an ALU slot, and the constant ``k`` it expects bound."""
    assert isinstance(spec.op, AluOp)
    is64 = spec.cls is Class.ALU64
    off = insn.off if spec.op in (AluOp.DIV, AluOp.MOD, AluOp.MOV) else 0
    if spec.src is Source.X:
        return (_ALU64 if is64 else _ALU32)[(spec.op, off)].replace("B", "regs[s]"), k
    if spec.op is AluOp.MOV:
        off = 0  # movsx exists only with a register source
    special = (_ALU64_K if is64 else _ALU32_K).get((spec.op, off))
    if special is not None and (spec.op in _SHIFTS or k):
        return special, k & (63 if is64 else 31) if spec.op in _SHIFTS else k
    return (_ALU64 if is64 else _ALU32)[(spec.op, off)].replace("B", "k"), k


def _jcc_body(spec: OpSpec) -> str:
    cond = _JCC_COND[spec.op]  # type: ignore[index]
    if spec.cls is Class.JMP:
        a, b = "regs[d]", "regs[s]" if spec.src is Source.X else "k"
        a_s, b_s = "(regs[d] ^ SIGN64)", "(regs[s] ^ SIGN64)" if spec.src is Source.X else "ks"
    else:
        a, b = "(regs[d] & M32)", "(regs[s] & M32)" if spec.src is Source.X else "k"
        a_s = "((regs[d] & M32) ^ SIGN32)"
        b_s = "((regs[s] & M32) ^ SIGN32)" if spec.src is Source.X else "ks"
    cond = cond.replace("AS", a_s).replace("BS", b_s).replace("A", a).replace("B", b)
    return f"return tgt if {cond} else nxt"


class _Exit(Exception):
    """The top-level ``exit`` ran: the program is done."""


class _Switch(Exception):
    """Continue in another program's code (a tail call, or returning into a caller
    whose code differs from the current one after a tail call in a subprogram)."""

    def __init__(self, code: list[Handler], pc: int) -> None:
        self.code = code
        self.pc = pc


_EXIT = _Exit()


def _return_to_helper() -> int:
    raise _EXIT


#: The code a callback "returns into": it ends the nested run of call_function.
_RETURN_TO_HELPER: list[Handler] = [_return_to_helper]


def as_insns(prog: Program | bytes | bytearray | memoryview | str) -> list[Insn]:
    """A program given as bytes, assembly text or instructions, as a validated list."""
    if isinstance(prog, (bytes, bytearray, memoryview)):
        return decode(prog)
    if isinstance(prog, str):
        from ..isa.asm import assemble

        return assemble(prog)
    insns = list(prog)
    if not all(isinstance(i, Insn) for i in insns):
        raise InvalidInsn("a program is bytes, assembly text, or a sequence of Insn")
    validate(insns)
    return insns


class Vm:
    """Runs one BPF program (and the programs it tail-calls) over an address space.

    ``Vm(prog).run(r1=41)`` runs ``prog`` with r1 = 41 and returns r0. ``prog``
    is bytes, assembly text or a list of :class:`~pyebpf.isa.Insn`. The program
    is not verified here: every memory access is still checked, so a bad one
    raises :class:`~pyebpf.errors.BpfFault`, and a run stops after ``budget``
    instructions with :class:`~pyebpf.errors.BudgetExhausted`.

    Helpers come from ``helpers`` (``func_id -> impl``, default: every helper
    pyebpf implements), kfuncs from ``kfuncs`` (BTF id -> impl, default: every
    kfunc). A program
    loaded through ``bpf()`` runs in a Vm bound to its ``runtime`` (whose maps
    the helpers reach) and its ``owner`` program object.
    """

    def __init__(
        self,
        prog: Program | bytes | bytearray | memoryview | str,
        *,
        helpers: Mapping[int, Any] | None = None,
        kfuncs: Mapping[int, Any] | None = None,
        memory: AddressSpace | None = None,
        clock: Clock | None = None,
        budget: int = DEFAULT_BUDGET,
        runtime: Any = None,
        owner: Any = None,
    ) -> None:
        if helpers is None:
            from ..helpers import default_helpers

            helpers = default_helpers()
        self.insns = as_insns(prog)
        self.helpers: dict[int, Any] = dict(helpers)
        if kfuncs is None:  # every kfunc pyebpf implements, as for helpers
            from ..kfuncs import default_kfuncs

            kfuncs = default_kfuncs()
        self.kfuncs: dict[int, Any] = dict(kfuncs)
        self.memory = memory if memory is not None else AddressSpace()
        self.clock = clock if clock is not None else Clock()
        self.budget = budget
        #: The Runtime (maps, fds, settings) helpers act on, and the loaded
        #: program this Vm runs for (None when a bare Vm runs raw instructions).
        self.runtime = runtime
        self.owner = owner
        self.regs = [0] * 11
        #: One stack region per call depth; r10 points one past the end of its frame's.
        self.stacks: list[Region] = [
            self.memory.map(MAX_BPF_STACK, kind="stack", name=f"frame#{i}")
            for i in range(MAX_CALL_FRAMES)
        ]
        #: Saved caller state of each active BPF-to-BPF call.
        #: (code, return pc, r6-r9, r10, the caller's may_goto budget).
        self.frames: list[tuple[list[Handler], int, int, int, int, int, int, int]] = []
        self.tail_call_cnt = 0
        self.may_goto_budget = BPF_MAX_LOOPS
        self.insns_executed = 0
        #: Packet bytes for LD_ABS/LD_IND (set by whoever runs a socket-filter-like program).
        self.skb_data: bytes | bytearray | None = None
        #: The kernel's per-CPU bpf_redirect_info: where bpf_redirect/bpf_redirect_map
        #: asked the packet to go (pyebpf.helpers.packet.RedirectInfo), for the hook.
        self.redirect_info: Any = None
        #: The region mapped from ``run(mem=...)``, kept for inspection after the run.
        self.mem_region: Region | None = None
        self._codes: dict[int, tuple[Sequence[Insn], list[Handler]]] = {}
        #: BPF function address -> (code, pc), for callbacks (see call_function).
        self._functions: dict[int, tuple[list[Handler], int]] = {}
        self._code_windows: dict[int, int] = {}
        #: Instructions run inside callbacks during the current run.
        self._callback_insns = 0
        self._run_budget = budget
        #: Functions replaced by program extensions (freplace): the pc where a
        #: function starts -> the instructions that run instead. A loaded
        #: program's Vms share the program's table (``owner.replaced_functions``),
        #: so an attach or detach reaches every interpreter running it.
        shared = getattr(owner, "replaced_functions", None)
        self.replaced: dict[int, Sequence[Insn]] = shared if isinstance(shared, dict) else {}
        #: The loads the verifier made BPF_PROBE_MEM (``owner.probe_mem_insns``), and
        #: those of the instructions being built (a tail-call target has its own).
        self.probe_mem: frozenset[int] = frozenset(getattr(owner, "probe_mem_insns", ()))
        self._probe_building: frozenset[int] = frozenset()
        self.code = self._code_for(self.insns)

    # -- running ---------------------------------------------------------------
    def run(
        self,
        mem: bytes | bytearray | None = None,
        *,
        r1: int | None = None,
        r2: int | None = None,
        r3: int = 0,
        r4: int = 0,
        r5: int = 0,
        budget: int | None = None,
        trace: bool = False,
    ) -> Any:
        """Run from the first instruction and return r0 (u64).

        With ``mem``, a copy of it is mapped and, by the bpf_conformance
        convention, r1 defaults to its address and r2 to its length. With
        ``trace``, the run is made by a recording twin of this Vm and the
        :class:`pyebpf.trace.Trace` is returned instead (r0 is its ``retval``).
        """
        if trace:
            from ..trace import trace_run

            return trace_run(self, mem, r1=r1, r2=r2, r3=r3, r4=r4, r5=r5, budget=budget)
        regs = self.regs
        regs[:] = [0] * 11
        if self.mem_region is not None:
            self.memory.unmap(self.mem_region)
            self.mem_region = None
        if mem is not None:
            self.mem_region = self.memory.map(bytearray(mem), kind="mem", name="input")
            if r1 is None:
                r1 = self.mem_region.base if mem else 0
            if r2 is None:
                r2 = len(mem)
        for i, value in enumerate((r1 or 0, r2 or 0, r3, r4, r5), start=1):
            regs[i] = value & M64
        for stack in self.stacks:
            stack.buf[:] = bytes(MAX_BPF_STACK)
        regs[10] = self.stacks[0].end
        self.frames.clear()
        self.tail_call_cnt = 0
        self.may_goto_budget = BPF_MAX_LOOPS
        self.insns_executed = 0
        self._callback_insns = 0
        self._run_budget = self.budget if budget is None else budget
        try:
            code = self._code_for(self.replaced[0]) if 0 in self.replaced else self.code
            self._loop(code, 0, self._run_budget)
        finally:
            self.insns_executed += self._callback_insns
        return regs[0]

    def _loop(self, code: list[Handler], pc: int, budget: int) -> None:
        """Run handlers until the program exits, faults or spends ``budget``.

        Unrolled by four (that saves a fifth of the loop's own cost); the
        intermediate pcs go to ``p1``-``p3``, reset to -1 before each group, so
        when a handler raises, the ones assigned tell exactly how many
        instructions completed and which one raised.
        """
        executed = 0
        while True:
            remaining = budget - executed
            groups = remaining >> 2
            g = tail = p1 = p2 = p3 = -1
            try:
                for g in range(groups):  # noqa: B007  (g is read after the loop)
                    p1 = p2 = p3 = -1
                    p1 = code[pc]()
                    p2 = code[p1]()
                    p3 = code[p2]()
                    pc = code[p3]()
                g = groups
                p1 = p2 = p3 = -1
                for tail in range(remaining & 3):  # noqa: B007
                    pc = code[pc]()
            except (_Exit, _Switch, BpfFault) as stop:
                done = 4 * g + (p1 >= 0) + (p2 >= 0) + (p3 >= 0) + max(tail, 0) + 1
                if isinstance(stop, _Switch):
                    executed += done
                    code, pc = stop.code, stop.pc
                    continue
                self.insns_executed = executed + done
                if isinstance(stop, _Exit):
                    return
                at = p3 if p3 >= 0 else p2 if p2 >= 0 else p1 if p1 >= 0 else pc
                raise stop.at(at) from None
            self.insns_executed = budget
            raise BudgetExhausted(f"instruction budget of {budget} exhausted").at(pc)

    def tail_call(self, target: Sequence[Insn] | None) -> None:
        """Called by the ``bpf_tail_call`` helper once the index is in range.

        As in the kernel (interpreter and x86 JIT alike): give up when the
        counter has reached MAX_TAIL_CALL_CNT, otherwise count the attempt, and
        then give up if the slot is empty. On success this does not return:
        execution continues at the target's first instruction, in the same frame.
        """
        if self.tail_call_cnt >= MAX_TAIL_CALL_CNT:
            return
        self.tail_call_cnt += 1
        if target is None:
            return
        code = self._code_for(target)
        self.may_goto_budget = BPF_MAX_LOOPS  # the target's prologue sets its own counter
        raise _Switch(code, 0)

    def call_function(self, fn: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0,
                      r5: int = 0) -> int:
        """Call the BPF function at address ``fn`` from a helper and return its r0.

        This is how helpers run callbacks (``bpf_loop``, ``bpf_for_each_map_elem``):
        ``fn`` is what the program's ``lddw rX, <subprog>`` (BPF_PSEUDO_FUNC)
        put in the register. As in the kernel, the callback runs in a new call
        frame one level deeper than the helper's caller, with r1-r5 as given;
        the caller's registers are intact afterwards. Its instructions are
        added to ``insns_executed``; each callback may run what the run's budget
        leaves after the callbacks before it (the caller's own instructions are
        budgeted separately). A fault inside it is reported as a fault of the
        helper call, naming the callback's pc.
        """
        entry = self._functions.get(fn & M64)
        if entry is None:
            raise BpfFault(f"{fn & M64:#x} is not the address of a BPF function")
        code, pc = entry
        depth = len(self.frames) + 1
        if depth >= MAX_CALL_FRAMES:
            raise BpfFault(f"the call stack is too deep: {depth + 1} frames (max "
                           f"{MAX_CALL_FRAMES})")
        regs = self.regs
        saved = regs[:]
        saved_executed = self.insns_executed
        # The callee's exit pops this frame and switches to _RETURN_TO_HELPER,
        # whose only instruction leaves the nested loop.
        self.frames.append((_RETURN_TO_HELPER, 0, regs[6], regs[7], regs[8], regs[9], regs[10],
                            self.may_goto_budget))
        for i, value in enumerate((r1, r2, r3, r4, r5), start=1):
            regs[i] = value & M64
        regs[10] = self.stacks[depth].end
        self.may_goto_budget = BPF_MAX_LOOPS
        budget = max(self._run_budget - self._callback_insns, 0)
        try:
            self._loop(code, pc, budget)
        except BpfFault as fault:
            self._callback_insns += self.insns_executed
            raise type(fault)(f"in a callback, pc {fault.pc}: {fault.message}",
                              addr=fault.addr, size=fault.size) from None
        finally:
            executed = self.insns_executed
            self.insns_executed = saved_executed
        self._callback_insns += executed - 1  # not counting _RETURN_TO_HELPER's step
        r0 = regs[0]
        regs[:] = saved
        return r0

    def run_function(self, fn: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0,
                     r5: int = 0) -> int:
        """Run the BPF function at ``fn`` as an invocation of its own (a timer's
        callback, which the kernel calls from softirq context): a fresh budget."""
        self._callback_insns = 0
        self._run_budget = self.budget
        return self.call_function(fn, r1, r2, r3, r4, r5)

    def replace_function(self, pc: int, insns: Sequence[Insn] | None) -> None:
        """Run ``insns`` whenever the function starting at ``pc`` is called (or, for
        pc 0, whenever the program runs), as the kernel's freplace trampoline
        patches the function's entry; None puts the original back. The
        replacement runs in the callee's frame and returns to the caller."""
        if insns is None:
            self.replaced.pop(pc, None)
        else:
            self._code_for(insns)  # validated and built now, not at the first call
            self.replaced[pc] = insns

    def _function_address(self, code: list[Handler], pc: int) -> int:
        """The address standing for the BPF function at ``pc`` of ``code``."""
        window = self._code_windows.setdefault(id(code), len(self._code_windows))
        addr = FUNC_BASE + window * _FUNC_WINDOW + pc * 8
        self._functions[addr] = (code, pc)
        return addr

    # -- building handlers -------------------------------------------------------
    def _code_for(self, insns: Sequence[Insn]) -> list[Handler]:
        key = insns  # cache by the object given (a list, bytes...), validated once
        cached = self._codes.get(id(key))
        if cached is not None and cached[0] is key:
            return cached[1]
        if insns is not self.insns:
            insns = as_insns(insns)  # a tail-call target list is validated too
        code: list[Handler] = []
        n = len(insns)
        outer, self._probe_building = self._probe_building, self._probe_mem_of(key)
        try:
            for pc, insn in enumerate(insns):
                if pc and insns[pc - 1].code == 0x18:
                    code.append(self._fault_handler(f"jump into the middle of lddw at insn "
                                                    f"{pc}"))
                    continue
                code.append(self._build(insn, pc, n, insns, code))
        finally:
            self._probe_building = outer
        # Falling off the end, or a jump out of the program, lands here.
        code.append(self._fault_handler("control left the program (past its last instruction)"))
        self._codes[id(key)] = (key, code)
        return code

    def _fault_handler(self, message: str) -> Handler:
        def handler() -> int:
            raise BpfFault(message)

        return handler

    def _build(self, insn: Insn, pc: int, n: int, insns: Sequence[Insn],
               code: list[Handler]) -> Handler:
        spec = OPCODES[insn.code]
        if pc in self._probe_building and spec.kind in (Kind.LDX, Kind.LDX_SX):
            return _build_probe_mem(self, spec, insn, pc)
        return _BUILDERS[spec.kind](self, spec, insn, pc, n, insns, code)

    def _probe_mem_of(self, insns: Sequence[Insn]) -> frozenset[int]:
        """The BPF_PROBE_MEM loads of ``insns``: this Vm's program's, or those of the
        loaded program (a tail-call target, an extension) whose instructions they are."""
        if insns is self.insns:
            return self.probe_mem
        if self.runtime is not None:
            from ..runtime import ObjKind

            for prog in self.runtime.objects(ObjKind.PROG).values():
                if getattr(prog, "insns", None) is insns:
                    return frozenset(getattr(prog, "probe_mem_insns", ()))
        return frozenset()

    def _target(self, pc: int, delta: int, n: int) -> int:
        """A jump target, or the past-the-end slot when it lies outside the program."""
        t = pc + 1 + delta
        return t if 0 <= t < n else n

    def _make(self, body: str, insn: Insn, *, k: int = 0, ks: int = 0, nxt: int = 0,
              tgt: int = 0) -> Handler:
        mem = self.memory
        return _factory(body)(self.regs, mem, mem.rpages, mem.wpages, mem.fault, insn.dst,
                              insn.src, insn.off, k, ks, nxt, tgt)


# -- one builder per Kind: the switch, run once per slot ------------------------


def _build_alu(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    if spec.op is AluOp.MOV and spec.src is Source.X and insn.off == 1:
        return vm._fault_handler("addr_space_cast needs an arena map, which pyebpf lacks yet")
    body, k = _alu_body(spec, insn, insn.imm & (M64 if spec.cls is Class.ALU64 else M32))
    return vm._make(body + "\nreturn nxt", insn, k=k, nxt=pc + 1)


def _build_neg(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    mask = "M64" if spec.cls is Class.ALU64 else "M32"
    return vm._make(f"regs[d] = -regs[d] & {mask}\nreturn nxt", insn, nxt=pc + 1)


def _build_end(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    bits = insn.imm
    regs, d, nxt = vm.regs, insn.dst, pc + 1
    if spec.cls is Class.ALU and spec.src is Source.K:  # to little-endian: truncate only
        mask = (1 << bits) - 1

        def to_le() -> int:
            regs[d] &= mask
            return nxt

        return to_le

    def swap() -> int:  # to big-endian (ALU) or bswap (ALU64): reverse the bytes
        regs[d] = bswap(regs[d], bits)
        return nxt

    return swap


def _build_jcc(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    if spec.cls is Class.JMP:
        k = insn.imm & M64
        ks = k ^ (1 << 63)
    else:
        k = insn.imm & M32
        ks = k ^ (1 << 31)
    return vm._make(_jcc_body(spec), insn, k=k, ks=ks, nxt=pc + 1,
                    tgt=vm._target(pc, insn.off, n))


def _build_ja(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    # JMP|JA jumps by off; JMP32|JA ("gotol") by imm, for targets beyond s16.
    tgt = vm._target(pc, insn.off if spec.cls is Class.JMP else insn.imm, n)

    def ja() -> int:
        return tgt

    return ja


def _build_jcond(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    tgt, nxt = vm._target(pc, insn.off, n), pc + 1

    def may_goto() -> int:
        # Falls through while the loop budget lasts, then takes the branch.
        if vm.may_goto_budget:
            vm.may_goto_budget -= 1
            return nxt
        return tgt

    return may_goto


def _build_mem(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    width = spec.width
    if spec.kind is Kind.LDX:
        body = _MEM_LOAD.format(n=width, load=_LOAD[width], slow=f"mem.load(a, {width})")
    elif spec.kind is Kind.LDX_SX:
        slow = f"sext(mem.load(a, {width}), {8 * width}) & M64"
        body = _MEM_LOAD.format(n=width, load=_LOAD_SX[width], slow=slow)
    else:
        mask = (1 << (8 * width)) - 1
        value = "k" if spec.kind is Kind.ST else "regs[s]" if width == 8 else f"regs[s] & {mask:#x}"
        body = _MEM_STORE.format(n=width, value=value, store=_STORE[width])
        return vm._make(body, insn, k=insn.imm & mask, nxt=pc + 1)
    return vm._make(body, insn, nxt=pc + 1)


def _build_probe_mem(vm: Vm, spec: OpSpec, insn: Insn, pc: int) -> Handler:
    """BPF_LDX | BPF_PROBE_MEM(SX): a load whose fault reads 0 (see _MEM_LOAD_PROBE)."""
    width = spec.width
    if spec.kind is Kind.LDX:
        body = _MEM_LOAD_PROBE.format(n=width, load=_LOAD[width],
                                      slow=f"probe_load(mem, a, {width})")
    else:
        body = _MEM_LOAD_PROBE.format(n=width, load=_LOAD_SX[width],
                                      slow=f"sext(probe_load(mem, a, {width}), {8 * width}) & M64")
    return vm._make(body, insn, nxt=pc + 1)


def _build_atomic(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    regs, mem, width = vm.regs, vm.memory, spec.width
    d, s, off, op, nxt = insn.dst, insn.src, insn.off, insn.imm, pc + 1
    mask = (1 << (8 * width)) - 1

    if op == AtomicOp.LOAD_ACQ:  # dst = *(src + off)

        def load_acquire() -> int:
            regs[d] = mem.load(regs[s] + off, width)
            return nxt

        return load_acquire
    if op == AtomicOp.STORE_REL:  # *(dst + off) = src

        def store_release() -> int:
            mem.store(regs[d] + off, width, regs[s])
            return nxt

        return store_release

    combine = _ATOMIC_COMBINE[op & ~0x01]

    def atomic() -> int:
        addr = regs[d] + off
        old = mem.load(addr, width)
        if op == AtomicOp.CMPXCHG:
            if old == regs[0] & mask:
                mem.store(addr, width, regs[s])
            regs[0] = old
            return nxt
        mem.store(addr, width, combine(old, regs[s]) & mask)
        if op & 0x01:  # BPF_FETCH (xchg and cmpxchg always fetch)
            regs[s] = old
        return nxt

    return atomic


_ATOMIC_COMBINE: dict[int, Callable[[int, int], int]] = {
    AtomicOp.ADD: lambda old, v: old + v,
    AtomicOp.OR: lambda old, v: old | v,
    AtomicOp.AND: lambda old, v: old & v,
    AtomicOp.XOR: lambda old, v: old ^ v,
    AtomicOp.XCHG & ~0x01: lambda old, v: v,
    AtomicOp.CMPXCHG & ~0x01: lambda old, v: v,
}


def _build_ld_imm64(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int,
                    insns: Sequence[Insn], code: list[Handler]) -> Handler:
    regs, d, nxt = vm.regs, insn.dst, pc + 2
    value = (insn.imm & M32) | ((insns[pc + 1].imm & M32) << 32)
    target = pc + 1 + insn.imm
    if insn.src == PseudoSrc.FUNC and 0 <= target < n and not insns[pc + 1].imm:
        # The address of the subprogram at pc + imm + 1 (the verifier's rewrite);
        # a reference the verifier would refuse loads its raw 64 bits, as before.
        value = vm._function_address(code, target)

    def lddw() -> int:
        regs[d] = value
        return nxt

    return lddw


def _build_ld_abs(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int,
                  insns: Sequence[Insn], code: list[Handler]) -> Handler:
    """Legacy packet loads: r0 = ntoh(*(size *)(skb->data + off)); off = imm (+ src).

    As the kernel's rewrite (bpf_gen_ld_abs: ``r0 = 0; exit``) does: an offset
    outside the packet returns r0 = 0 from the current function (in a
    subprogram, to its caller; in the main program, ending the run).
    """
    regs, width, nxt = vm.regs, spec.width, pc + 1
    leave = _build_exit(vm, spec, insn, pc, n, insns, code)
    s, imm, indirect = insn.src, insn.imm, spec.kind is Kind.LD_IND

    def ld_abs() -> int:
        data = vm.skb_data
        if data is None:
            raise BpfFault("LD_ABS/LD_IND with no packet (only skb programs have one)")
        off = imm
        if indirect:
            off = ((regs[s] + imm) & M32 ^ (1 << 31)) - (1 << 31)
        if off < 0:
            # SKF_NET_OFF / SKF_LL_OFF relative loads (bpf_internal_load_pointer_neg_helper)
            load_negative = getattr(data, "load_negative", None)
            got = load_negative(off, width) if load_negative is not None else None
            if got is None:
                regs[0] = 0
                return leave()
            regs[0] = int.from_bytes(got, "big")
            return nxt
        if off + width > len(data):
            regs[0] = 0
            return leave()
        regs[0] = int.from_bytes(data[off:off + width], "big")
        return nxt

    return ld_abs


def _call_helper(vm: Vm, fn: Any) -> Any:
    regs = vm.regs
    r = fn(vm, regs[1], regs[2], regs[3], regs[4], regs[5])
    if r is not None:
        regs[0] = r & M64


def _build_call(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int,
                insns: Sequence[Insn], code: list[Handler]) -> Handler:
    regs, nxt = vm.regs, pc + 1
    if insn.src == CallSrc.PSEUDO_CALL:
        return _build_pseudo_call(vm, vm._target(pc, insn.imm, n), nxt, code,
                                  main=insns is vm.insns)
    table, what = (vm.kfuncs, "kfunc") if insn.src == CallSrc.KFUNC else (vm.helpers, "helper")
    fn = table.get(insn.imm)
    if fn is None:
        return vm._fault_handler(f"call to unknown {what} {insn.imm}")

    def call() -> int:
        r = fn(vm, regs[1], regs[2], regs[3], regs[4], regs[5])
        if r is not None:
            regs[0] = r & M64
        return nxt

    return call


def _build_callx(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int, *_: Any) -> Handler:
    """``call %rN``: call the helper whose id is in the register (as PREVAIL reads it)."""
    regs, d, nxt, helpers = vm.regs, insn.dst, pc + 1, vm.helpers

    def callx() -> int:
        fn = helpers.get(regs[d])
        if fn is None:
            raise BpfFault(f"callx to unknown helper {regs[d]}")
        _call_helper(vm, fn)
        return nxt

    return callx


def _build_pseudo_call(vm: Vm, target: int, nxt: int, code: list[Handler], *,
                       main: bool = False) -> Handler:
    """BPF-to-BPF call: save the caller's r6-r9 and frame, give the callee a fresh frame.
    In the Vm's own program (``main``) a callee an extension replaced runs that instead."""
    regs, frames, tops = vm.regs, vm.frames, [s.end for s in vm.stacks]
    replaced = vm.replaced if main else None

    def call_local() -> int:
        depth = len(frames) + 1
        if depth >= MAX_CALL_FRAMES:
            raise BpfFault(f"the call stack is too deep: {depth + 1} frames (max "
                           f"{MAX_CALL_FRAMES})")
        frames.append((code, nxt, regs[6], regs[7], regs[8], regs[9], regs[10],
                       vm.may_goto_budget))
        regs[10] = tops[depth]
        # Each function has its own may_goto counter, set in its prologue (the
        # kernel keeps it in the function's stack frame: do_misc_fixups).
        vm.may_goto_budget = BPF_MAX_LOOPS
        if replaced and target in replaced:  # an extension replaced the callee
            raise _Switch(vm._code_for(replaced[target]), 0)
        return target

    return call_local


def _build_exit(vm: Vm, spec: OpSpec, insn: Insn, pc: int, n: int,
                insns: Sequence[Insn], code: list[Handler]) -> Handler:
    regs, frames = vm.regs, vm.frames

    def exit_() -> int:
        if not frames:
            raise _EXIT
        caller, ret, regs[6], regs[7], regs[8], regs[9], regs[10], vm.may_goto_budget = (
            frames.pop())
        if caller is not code:
            raise _Switch(caller, ret)
        return ret

    return exit_


_BUILDERS: dict[Kind, Callable[..., Handler]] = {
    Kind.ALU: _build_alu,
    Kind.NEG: _build_neg,
    Kind.END: _build_end,
    Kind.JA: _build_ja,
    Kind.JCOND: _build_jcond,
    Kind.JCC: _build_jcc,
    Kind.CALL: _build_call,
    Kind.CALLX: _build_callx,
    Kind.EXIT: _build_exit,
    Kind.LD_IMM64: _build_ld_imm64,
    Kind.LD_ABS: _build_ld_abs,
    Kind.LD_IND: _build_ld_abs,
    Kind.LDX: _build_mem,
    Kind.LDX_SX: _build_mem,
    Kind.ST: _build_mem,
    Kind.STX: _build_mem,
    Kind.ATOMIC: _build_atomic,
}
