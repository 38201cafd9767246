"""Execution traces: what every executed instruction did, for people reading a run.

``Vm(prog).run(..., trace=True)``, ``Program.test_run(..., trace=True)`` and
``Program.run(..., trace=True)`` record, per executed instruction, the
program counter, the instruction as the verifier log prints it, the
registers it wrote (old -> new), the memory bytes it changed (old -> new, in
which region) and the memory it read, plus what ``bpf_trace_printk`` printed
during the run. ``print(trace)`` reads like ``bpftool prog tracelog`` meets
``pdb``: each source line (from BTF line info) followed by its instructions
and their effects.

Why a separate interpreter, not a flag in the fast one
------------------------------------------------------
The interpreter (:mod:`pyebpf.engine.interpreter`) is closure-threaded: each
slot's handler is built once and the run loop only calls ``code[pc]()``. A
"tracing?" test in every handler would slow every untraced run.
:class:`TracingVm` is instead a subclass whose handler builder wraps each
normal handler in a recording one; it is built only when a trace is asked
for, so the normal Vm is byte-for-byte the same code as before. Writes that
bypass the instructions (helpers filling a buffer) are seen by shadowing
``store``/``write`` on the address space instance for the duration of the
traced run only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import attrs

from .engine.alu import M64
from .engine.interpreter import DEFAULT_BUDGET, Handler, Vm, _Exit, _Switch
from .errors import BpfFault
from .isa.disasm import format_insn
from .isa.insn import Insn
from .isa.opcodes import MAX_BPF_STACK, OPCODES, AtomicOp, Kind
from .lineinfo import SourceMap, source_map_of

__all__ = [
    "DEFAULT_MAX_STEPS",
    "MemRead",
    "MemWrite",
    "RegWrite",
    "RegionSnapshot",
    "Step",
    "Trace",
    "TraceLog",
    "TracedProgram",
    "TracingVm",
    "trace_run",
    "traced",
]

#: Steps a trace keeps before it stops recording (the run itself goes on).
DEFAULT_MAX_STEPS = 1_000_000


# Effects are named tuples: a trace makes one per effect, and a tuple is made
# several times faster than a frozen attrs instance.
class RegWrite(NamedTuple):
    """Register ``reg`` changed from ``old`` to ``new`` (u64 values)."""

    reg: int
    old: int
    new: int


class MemWrite(NamedTuple):
    """Bytes at ``addr`` changed (``old`` is None where they could not be read first)."""

    addr: int
    old: bytes | None
    new: bytes | None
    region: str


class MemRead(NamedTuple):
    """``size`` bytes read at ``addr`` (by a load instruction)."""

    addr: int
    size: int
    region: str


@attrs.frozen
class RegionSnapshot:
    """A region's bytes at the end of a run (what a debugger reconstructs from)."""

    base: int
    kind: str
    name: str
    data: bytes

    @property
    def end(self) -> int:
        return self.base + len(self.data)


@attrs.define(eq=False)
class TracedProgram:
    """One program a trace went through (the traced one, or a tail-call target)."""

    name: str
    insns: Sequence[Insn]
    source: SourceMap
    #: The loaded program object (a BpfProg), when the run was of one.
    owner: Any = attrs.field(default=None, repr=False)


@attrs.define(eq=False)
class Step:
    """One executed instruction and its effects."""

    seq: int
    #: Index into :attr:`Trace.programs` (0: the program run; others: tail-call targets).
    prog: int
    pc: int
    insn: Insn
    #: The instruction as the verifier log prints it (``r0 = *(u32 *)(r1 +4)``).
    text: str
    #: BPF-to-BPF call depth when it ran (0: the main function).
    depth: int
    #: All eleven registers after it ran.
    regs: tuple[int, ...] = ()
    reg_writes: tuple[RegWrite, ...] = ()
    writes: list[MemWrite] = attrs.field(factory=list)
    reads: tuple[MemRead, ...] = ()
    #: The next pc (None when the step ended the run, faulted or switched program).
    next_pc: int | None = None
    #: For a conditional jump: whether it was taken.
    branch: bool | None = None
    #: "exit", "tail call", "return", or "fault: <message>".
    event: str | None = None


@attrs.define(eq=False)
class Trace:
    """The record of one run. Iterate it for :class:`Step` objects; print it to read it."""

    programs: list[TracedProgram]
    steps: list[Step] = attrs.field(factory=list)
    #: Registers as the run started (r1 the ctx, r10 the frame pointer).
    initial_regs: tuple[int, ...] = ()
    #: r0 at exit (u64), or None when the run faulted.
    retval: int | None = None
    fault: BpfFault | None = None
    #: What bpf_trace_printk printed during the run.
    printk: list[str] = attrs.field(factory=list)
    #: Final bytes of every region the run read or wrote, and of the stack frames.
    regions: dict[int, RegionSnapshot] = attrs.field(factory=dict)
    #: The stack frame regions (base of frame 0, 1, ...), each MAX_BPF_STACK long.
    stack_bases: tuple[int, ...] = ()
    #: True when more than max_steps instructions ran (the rest are not recorded).
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __getitem__(self, i: int) -> Step:
        return self.steps[i]

    def location(self, step: Step) -> tuple[str, int] | None:
        """(source file, line) of a step, from BTF line info."""
        return self.programs[step.prog].source.location(step.pc)

    def pcs(self, prog: int = 0) -> list[int]:
        """The pcs executed in program ``prog``, in order."""
        return [s.pc for s in self.steps if s.prog == prog]

    def lines_executed(self) -> list[tuple[str, int]]:
        """The distinct source lines executed, in first-execution order."""
        seen: dict[tuple[str, int], None] = {}
        for s in self.steps:
            loc = self.location(s)
            if loc is not None:
                seen.setdefault(loc, None)
        return list(seen)

    def format(self, *, source: bool = True, memory: bool = True, limit: int | None = None
               ) -> str:
        """The trace as text: source lines (``> file:line``, ``-> text``) then their
        instructions, each with its register and memory effects."""
        out: list[str] = []
        last: tuple[int, tuple[str, int]] | None = None
        steps = self.steps if limit is None else self.steps[:limit]
        in_prog = 0
        for st in steps:
            prog = self.programs[st.prog]
            if st.prog != in_prog:  # a tail call moved on to another program
                in_prog = st.prog
                out.append(f"== {prog.name} ==")
            if source:
                loc = prog.source.location(st.pc)
                if loc is not None and (st.prog, loc) != last:
                    last = (st.prog, loc)
                    out.append(f"> {os.path.basename(loc[0])}:{loc[1]} ({prog.name})")
                    text = prog.source.source_text(st.pc).strip()
                    if text:
                        out.append(f"-> {text}")
            out.append(format_step(st, memory=memory, stack_bases=self.stack_bases))
        if limit is not None and len(self.steps) > limit:
            out.append(f"... {len(self.steps) - limit} more steps")
        if self.truncated:
            out.append("... (trace truncated: max_steps reached)")
        out.extend(f"printk: {line.rstrip()}" for line in self.printk)
        if self.fault is not None:
            out.append(f"FAULT {self.fault}")
        elif self.retval is not None:
            out.append(f"exit: r0 = {self.retval} ({self.retval:#x}), {len(self.steps)} insns")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        end = f"fault at pc {self.fault.pc}" if self.fault is not None else f"r0={self.retval}"
        return f"<Trace {self.programs[0].name}: {len(self.steps)} steps, {end}>"

    def _repr_html_(self) -> str:
        from .views import trace_html

        return trace_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else self.format(limit=500))


def _hex(data: bytes | None) -> str:
    return "??" if data is None else data.hex(" ")


def _place(addr: int, region: str, stack_bases: Sequence[int]) -> str:
    """Where an access went: ``fp-8`` in a stack frame (``fp-8 (frame 1)`` in a
    callee's), else the address and the region."""
    if region.startswith("stack frame#"):
        k = int(region.rsplit("#", 1)[1])
        if k < len(stack_bases):
            fp = f"fp{addr - (stack_bases[k] + MAX_BPF_STACK):+d}"
            return fp if k == 0 else f"{fp} (frame {k})"
    return f"{addr:#x} {region}"


def format_step(st: Step, *, memory: bool = True, stack_bases: Sequence[int] = ()) -> str:
    """One step as a line: ``  12: (07) r1 += 4     ; r1 0x10 -> 0x14``.
    With the trace's ``stack_bases``, stack accesses read as ``fp-8``."""
    head = f"{'  ' * st.depth}{st.pc:4d}: ({st.insn.code:02x}) {st.text}"
    notes = [f"r{w.reg} {w.old:#x} -> {w.new:#x}" for w in st.reg_writes]
    if st.branch is not None:
        notes.append("taken" if st.branch else "not taken")
    if memory:
        notes += [f"[{_place(w.addr, w.region, stack_bases)}] {_hex(w.old)} -> {_hex(w.new)}"
                  for w in st.writes]
        notes += [f"read {r.size} @ {_place(r.addr, r.region, stack_bases)}" for r in st.reads]
    if st.event is not None and st.event != "exit":
        notes.append(st.event)
    return head if not notes else f"{head:<44} ; " + ", ".join(notes)


# -- recording ---------------------------------------------------------------------------


@attrs.frozen
class _Slot:
    """What a recording handler knows about its slot (fixed at build time)."""

    prog: int
    pc: int
    insn: Insn
    text: str
    #: The register holding the memory operand's base (-1: no memory operand).
    mem_reg: int = -1
    off: int = 0
    width: int = 0
    store: bool = False
    load: bool = False
    #: A conditional jump's target pc (-1: not a conditional jump).
    jcc_target: int = -1


def _slot_of(prog: int, insns: Sequence[Insn], pc: int, n: int) -> _Slot:
    insn = insns[pc]
    try:
        text = format_insn(insns, pc, allow_ptr_leaks=True)
    except Exception:  # a printer gap must not break a trace
        text = f"<code {insn.code:#04x}>"
    spec = OPCODES.get(insn.code)
    if spec is None:
        return _Slot(prog, pc, insn, text)
    kind = spec.kind
    if kind in (Kind.LDX, Kind.LDX_SX):
        return _Slot(prog, pc, insn, text, insn.src, insn.off, spec.width, load=True)
    if kind in (Kind.ST, Kind.STX):
        return _Slot(prog, pc, insn, text, insn.dst, insn.off, spec.width, store=True)
    if kind is Kind.ATOMIC:
        if insn.imm == AtomicOp.LOAD_ACQ:
            return _Slot(prog, pc, insn, text, insn.src, insn.off, spec.width, load=True)
        return _Slot(prog, pc, insn, text, insn.dst, insn.off, spec.width, store=True,
                     load=insn.imm != AtomicOp.STORE_REL)
    if kind is Kind.JCC:
        t = pc + 1 + insn.off
        return _Slot(prog, pc, insn, text, jcc_target=t if 0 <= t < n else n)
    return _Slot(prog, pc, insn, text)


class _Recorder:
    """Collects the steps of one run of a TracingVm."""

    def __init__(self, vm: TracingVm, max_steps: int) -> None:
        self.vm = vm
        self.regs = vm.regs
        self.mem = vm.memory
        self.max_steps = max_steps
        self.steps: list[Step] = []
        self.active: list[tuple[Step, _Slot]] = []
        self.initial: tuple[int, ...] | None = None
        self.truncated = False
        self.touched: set[int] = set()

    def region(self, addr: int) -> str:
        r = self.mem.region_at(addr)
        if r is None:
            return "unmapped"
        self.touched.add(r.base)
        return f"{r.kind} {r.name}".strip()

    def peek(self, addr: int, size: int) -> bytes | None:
        """The bytes at ``addr`` now, without faulting (None where unreadable)."""
        try:
            if size in (1, 2, 4, 8):
                return self.mem.load(addr, size).to_bytes(size, "little")
            return self.mem.read(addr, size)
        except Exception:  # a fault, a device that refuses: unreadable
            return None

    def step(self, slot: _Slot, inner: Handler) -> int:
        regs = self.regs
        before = tuple(regs)
        if self.initial is None:
            self.initial = before
        if len(self.steps) >= self.max_steps:
            self.truncated = True
            return inner()
        st = Step(len(self.steps), slot.prog, slot.pc, slot.insn, slot.text,
                  len(self.vm.frames))
        self.steps.append(st)
        addr = -1
        old = None
        if slot.mem_reg >= 0:
            addr = (before[slot.mem_reg] + slot.off) & M64
            if slot.store:
                old = self.peek(addr, slot.width)
        self.active.append((st, slot))
        try:
            nxt = inner()
        except _Exit:
            st.event = "exit"
            raise
        except _Switch:
            st.event = "tail call" if slot.insn.code == 0x85 else "return"
            raise
        except BpfFault as fault:
            st.event = f"fault: {fault.message}"
            raise
        else:
            st.next_pc = nxt
            if slot.jcc_target >= 0:
                st.branch = nxt == slot.jcc_target and nxt != slot.pc + 1
            return nxt
        finally:
            self.active.pop()
            after = tuple(regs)
            st.regs = after
            if after != before:
                st.reg_writes = tuple([RegWrite(i, before[i], after[i]) for i in range(11)
                                       if before[i] != after[i]])
            if addr >= 0:
                where = self.region(addr)
                if slot.load:
                    st.reads = (MemRead(addr, slot.width, where),)
                if slot.store:
                    new = self.peek(addr, slot.width)
                    if new is not None or old is not None:
                        st.writes.append(MemWrite(addr, old, new, where))

    def helper_write(self, addr: int, old: bytes | None, new: bytes | None) -> None:
        """A write through the address space (a helper's, or a store's slow path)."""
        if not self.active:
            return
        st, slot = self.active[-1]
        if slot.store:  # the store step records its own access
            return
        st.writes.append(MemWrite(addr & M64, old, new, self.region(addr & M64)))


class TracingVm(Vm):
    """A Vm whose handlers record every step (see the module docstring).

    Built only when a trace is asked for; ``run`` returns r0 as Vm.run does
    and leaves the :class:`Trace` in :attr:`last_trace` (and appends it to
    :attr:`sink` when one is set). A fault is raised as usual, carrying the
    trace up to the fault as ``fault.trace``.
    """

    def __init__(self, *args: Any, max_steps: int = DEFAULT_MAX_STEPS, name: str | None = None,
                 line_info: Any = None, **kwargs: Any) -> None:
        self.max_steps = max_steps
        self._rec: _Recorder | None = None
        self._programs: list[TracedProgram] = []
        self._prog_of_code: dict[int, int] = {}
        self._building: Any = None
        self._main_name = name
        self._main_lines = line_info
        self.last_trace: Trace | None = None
        self.sink: list[Trace] | None = None
        super().__init__(*args, **kwargs)

    # -- building -------------------------------------------------------------------------
    def _code_for(self, insns: Sequence[Insn]) -> list[Handler]:
        self._building = insns
        return super()._code_for(insns)

    def _program_index(self, code: list[Handler], insns: Sequence[Insn]) -> int:
        ix = self._prog_of_code.get(id(code))
        if ix is None:
            ix = self._prog_of_code[id(code)] = len(self._programs)
            self._programs.append(self._describe(self._building, insns))
        return ix

    def _describe(self, key: Any, insns: Sequence[Insn]) -> TracedProgram:
        owner = self.owner if key is self.insns or not self._programs else None
        if owner is None and self.runtime is not None:  # a tail-call target: find it
            from .runtime import ObjKind

            owner = next((p for p in self.runtime.objects(ObjKind.PROG).values()
                          if getattr(p, "insns", None) is key), None)
        if owner is None and not self._programs:
            name = self._main_name or "prog"
            return TracedProgram(name, insns, SourceMap(self._main_lines or (), len(insns)))
        name = getattr(owner, "name", "") or (
            f"prog#{len(self._programs)}" if self._programs else "prog")
        if not self._programs and self._main_name:
            name = self._main_name
        return TracedProgram(name, insns, source_map_of(owner, insns), owner)

    def _build(self, insn: Insn, pc: int, n: int, insns: Sequence[Insn],
               code: list[Handler]) -> Handler:
        inner = super()._build(insn, pc, n, insns, code)
        slot = _slot_of(self._program_index(code, insns), insns, pc, n)
        vm = self

        def recording() -> int:
            rec = vm._rec
            if rec is None:
                return inner()
            return rec.step(slot, inner)

        return recording

    # -- running ---------------------------------------------------------------------------
    def run(self, mem: bytes | bytearray | None = None, *, r1: int | None = None,
            r2: int | None = None, r3: int = 0, r4: int = 0, r5: int = 0,
            budget: int | None = None, trace: bool = False) -> Any:
        rec = self._rec = _Recorder(self, self.max_steps)
        memory = self.memory
        orig_store, orig_write = memory.store, memory.write

        def store(addr: int, size: int, value: int) -> None:
            old = rec.peek(addr, size)
            orig_store(addr, size, value)
            rec.helper_write(addr, old, rec.peek(addr, size))

        def write(addr: int, data: bytes | bytearray) -> None:
            old = rec.peek(addr, len(data)) if data else None
            orig_write(addr, data)
            if data:
                rec.helper_write(addr, old, bytes(data))

        shadowed = {k: memory.__dict__[k] for k in ("store", "write") if k in memory.__dict__}
        memory.store, memory.write = store, write  # type: ignore[method-assign]
        rt = self.runtime
        printed = len(rt.trace_output) if rt is not None else 0
        result = Trace(self._programs)
        try:
            r0 = Vm.run(self, mem, r1=r1, r2=r2, r3=r3, r4=r4, r5=r5, budget=budget)
            result.retval = r0
        except BpfFault as fault:
            result.fault = fault
            fault.trace = result  # type: ignore[attr-defined]
            raise
        finally:
            del memory.store, memory.write
            memory.__dict__.update(shadowed)  # a hook that was there before ours
            self._rec = None
            result.steps = rec.steps
            result.initial_regs = rec.initial or tuple(self.regs)
            result.truncated = rec.truncated
            if rt is not None:
                result.printk = list(rt.trace_output[printed:])
            result.stack_bases = tuple(s.base for s in self.stacks)
            for region in memory.regions():
                if region.base in rec.touched or region in self.stacks:
                    result.regions[region.base] = RegionSnapshot(
                        region.base, region.kind, region.name, bytes(region.buf))
            self.last_trace = result
            if self.sink is not None:
                self.sink.append(result)
        return result if trace else r0


def _twin(vm: Vm) -> TracingVm:
    """The TracingVm that runs what ``vm`` runs (cached on it: each Vm maps stack frames)."""
    twin = getattr(vm, "_tracing_twin", None)
    if twin is None:
        owner = vm.owner
        twin = TracingVm(vm.insns, helpers=vm.helpers, kfuncs=vm.kfuncs, memory=vm.memory,
                         clock=vm.clock, budget=vm.budget, runtime=vm.runtime, owner=owner,
                         name=getattr(owner, "name", None) or None)
        vm._tracing_twin = twin  # type: ignore[attr-defined]
    return twin


def trace_run(vm: Vm, mem: bytes | bytearray | None = None, **kwargs: Any) -> Trace:
    """Run what ``vm`` runs once, recorded; return the :class:`Trace` (Vm.run(trace=True))."""
    twin = vm if isinstance(vm, TracingVm) else _twin(vm)
    twin.skb_data = vm.skb_data
    twin.budget = vm.budget
    twin.run(mem, **kwargs)
    assert twin.last_trace is not None
    return twin.last_trace


@attrs.define(eq=False)
class TraceLog:
    """The traces of the runs made inside a :func:`traced` block (one per run)."""

    traces: list[Trace] = attrs.field(factory=list)

    @property
    def first(self) -> Trace | None:
        return self.traces[0] if self.traces else None


def _bpf_prog(prog: Any) -> Any:
    """The loaded program object (BpfProg) behind an objects.Program, or itself."""
    from .prog import BpfProg
    from .runtime import ObjKind

    if isinstance(prog, BpfProg):
        return prog
    obj, _ = prog.runtime.get_object(prog.fd, ObjKind.PROG)
    return obj


@contextmanager
def traced(prog: Any, *, max_steps: int = DEFAULT_MAX_STEPS, budget: int | None = None,
           count: bool = True) -> Iterator[TraceLog]:
    """Record every run of ``prog`` (an objects.Program or BpfProg) inside the block.

    Runs started by PROG_TEST_RUN, by ``Program.run`` or by an attached hook all
    go through :meth:`BpfProg.vm`, which the block points at a TracingVm (whose
    instruction budget is ``budget``, default the interpreter's). The runs count
    in open coverage collections (:func:`pyebpf.coverage.collect`) unless
    ``count`` is false::

        with traced(prog) as log:
            prog.test_run(packet)
        print(log.first)
    """
    from .prog import VM_HOOKS

    bprog = _bpf_prog(prog)
    tvm = getattr(bprog, "_tracing_vm", None)
    if tvm is None:
        rt = bprog.runtime
        tvm = TracingVm(bprog.insns, helpers=rt.helpers, memory=rt.memory, clock=rt.clock,
                        runtime=rt, owner=bprog, name=getattr(prog, "name", None) or None)
        bprog._tracing_vm = tvm
    tvm.max_steps = max_steps
    tvm.budget = budget if budget is not None else DEFAULT_BUDGET
    log = TraceLog()
    tvm.sink = log.traces

    def hook(p: Any) -> Vm | None:
        return tvm if p is bprog else None

    VM_HOOKS.insert(0, hook)  # a trace asked for wins over a coverage collection...
    try:
        yield log
    finally:
        VM_HOOKS.remove(hook)
        tvm.sink = None
        if count:
            from .coverage import add_to_collections

            add_to_collections(log.traces)  # ...which still counts the traced runs

