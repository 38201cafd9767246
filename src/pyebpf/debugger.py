"""A step debugger for BPF programs: ``Debugger(prog).step() / .cont() / .regs / .stack``.

A BPF run is deterministic given its inputs (packet, ctx, maps, the
runtime's clock and seed), so the debugger records the run once with
:mod:`pyebpf.trace` and then moves a cursor over the recording. That gives
everything ``pdb`` gives (step, continue to a breakpoint on an instruction or
a source line, inspect registers, the stack and any memory the run touched)
and what a live debugger can't: stepping *backwards* (:meth:`Debugger.back`).
Memory at the cursor is rebuilt from the regions' final bytes by undoing,
newest first, the writes made after the cursor.

What it can't do: change a register mid-run and go on from there (the
recording is fixed), and a callback run by a helper (``bpf_loop``) is
recorded as steps after the helper call's own step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .engine import Vm
from .errors import BpfFault
from .isa.opcodes import MAX_BPF_STACK
from .trace import Step, Trace, format_step

__all__ = ["Breakpoint", "Debugger"]


class Breakpoint:
    """Where :meth:`Debugger.cont` stops: an instruction (``pc``, in the program
    run) or the first instruction of a source line (``line``, in ``file`` or any)."""

    def __init__(self, pc: int | None = None, line: int | None = None,
                 file: str | None = None) -> None:
        self.pc = pc
        self.line = line
        self.file = os.path.basename(file) if file else None

    def hits(self, trace: Trace, i: int) -> bool:
        st = trace.steps[i]
        if self.pc is not None:
            return st.prog == 0 and st.pc == self.pc
        loc = trace.location(st)
        if loc is None or loc[1] != self.line or (
                self.file is not None and os.path.basename(loc[0]) != self.file):
            return False
        # A line is entered once per arrival, not at each of its instructions.
        return i == 0 or trace.location(trace.steps[i - 1]) != loc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Breakpoint) and (self.pc, self.line, self.file) == (
            other.pc, other.line, other.file)

    def __hash__(self) -> int:
        return hash((self.pc, self.line, self.file))

    def __repr__(self) -> str:
        if self.pc is not None:
            return f"<Breakpoint pc {self.pc}>"
        return f"<Breakpoint {self.file or '*'}:{self.line}>"


class Debugger:
    """Step through one run of ``prog``.

    ``prog`` is an :class:`~pyebpf.objects.Program` (run with ``data``/``ctx``
    as ``test_run`` takes them, or as ``Program.run`` for types without a
    test run), a :class:`~pyebpf.engine.Vm`, or what a Vm accepts (bytes,
    assembly text, instructions; ``mem`` and ``r1``..``r5`` as ``Vm.run``).

    The cursor stands *before* an instruction, as pdb's current line does:
    :attr:`regs` are the registers that instruction will see, :attr:`step`
    executes it. The run is recorded on first use.
    """

    def __init__(self, prog: Any, data: bytes | None = None, *, ctx: bytes | None = None,
                 mem: bytes | None = None, **regs: int) -> None:
        self.prog = prog
        self.data = data
        self.ctx = ctx
        self.mem = mem
        self.run_regs = regs
        self.breakpoints: list[Breakpoint] = []
        self.cursor = 0
        self._trace: Trace | None = None

    @classmethod
    def of_trace(cls, trace: Trace) -> Debugger:
        """A debugger over a run already recorded."""
        d = cls(None)
        d._trace = trace
        return d

    # -- the recording ------------------------------------------------------------------------
    @property
    def trace(self) -> Trace:
        """The recorded run (recorded now if not yet)."""
        if self._trace is None:
            self._trace = self._record()
        return self._trace

    def _record(self) -> Trace:
        prog = self.prog
        try:
            if isinstance(prog, Vm) or not hasattr(prog, "test_run"):
                vm = prog if isinstance(prog, Vm) else Vm(prog)
                return vm.run(self.mem, trace=True, **self.run_regs)
            from .progs import prog_type_ops

            ops = prog_type_ops(prog.prog_type)
            if ops is not None and ops.test_run is not None:
                return prog.test_run(self.data, ctx=self.ctx, trace=True).trace
            return prog.run(self.ctx, trace=True)
        except BpfFault as fault:
            recorded = getattr(fault, "trace", None)
            if recorded is None:
                raise
            return recorded

    # -- position -----------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether the cursor is past the last recorded step."""
        return self.cursor >= len(self.trace.steps)

    @property
    def current(self) -> Step | None:
        """The step about to execute (None when finished)."""
        return None if self.finished else self.trace.steps[self.cursor]

    @property
    def pc(self) -> int | None:
        cur = self.current
        return None if cur is None else cur.pc

    @property
    def depth(self) -> int:
        """The BPF-to-BPF call depth at the cursor."""
        cur = self.current
        if cur is not None:
            return cur.depth
        steps = self.trace.steps
        return steps[-1].depth if steps else 0

    def location(self) -> tuple[str, int] | None:
        """(source file, line) at the cursor, from BTF line info."""
        cur = self.current
        return None if cur is None else self.trace.location(cur)

    # -- moving --------------------------------------------------------------------------------
    def step(self, n: int = 1) -> Step | None:
        """Execute ``n`` instructions; return the one now current (None at the end)."""
        self.cursor = min(self.cursor + max(n, 0), len(self.trace.steps))
        return self.current

    def back(self, n: int = 1) -> Step | None:
        """Undo ``n`` instructions (the recording makes time travel cheap)."""
        self.cursor = max(self.cursor - max(n, 0), 0)
        return self.current

    def next_line(self) -> Step | None:
        """pdb's ``next`` at source level: run to the next source line in this
        function or a caller (instructions of called BPF functions run through)."""
        trace = self.trace
        start = self.location()
        depth = self.depth
        i = self.cursor + 1
        while i < len(trace.steps):
            st = trace.steps[i]
            if st.depth <= depth and trace.location(st) not in (None, start):
                break
            i += 1
        self.cursor = i
        return self.current

    def cont(self) -> Step | None:
        """Run to the next breakpoint (or the end); return the step stopped at."""
        trace = self.trace
        i = self.cursor + 1
        while i < len(trace.steps):
            if any(bp.hits(trace, i) for bp in self.breakpoints):
                break
            i += 1
        self.cursor = min(i, len(trace.steps))
        return self.current

    def restart(self) -> Step | None:
        """Back to the first instruction (breakpoints are kept)."""
        self.cursor = 0
        return self.current

    def break_at(self, where: int | str | None = None, *, line: int | None = None,
                 file: str | None = None) -> Breakpoint:
        """Stop ``cont`` at an instruction (``break_at(12)``) or a source line
        (``break_at("xdp.c:35")``, ``break_at(line=35)``)."""
        if isinstance(where, str):
            fname, _, num = where.rpartition(":")
            bp = Breakpoint(line=int(num), file=fname or None)
        elif where is not None:
            bp = Breakpoint(pc=int(where))
        elif line is not None:
            bp = Breakpoint(line=line, file=file)
        else:
            raise ValueError("break_at needs a pc, 'file:line' or line=")
        if bp.line is not None and not any(
                p.source.find_pcs(bp.line, bp.file) for p in self.trace.programs):
            raise ValueError(f"no instruction belongs to line {bp.line}"
                             + (f" of {bp.file}" if bp.file else "")
                             + " (is the object built with -g?)")
        if bp not in self.breakpoints:
            self.breakpoints.append(bp)
        return bp

    def clear(self, bp: Breakpoint | None = None) -> None:
        """Remove one breakpoint, or all."""
        if bp is None:
            self.breakpoints.clear()
        elif bp in self.breakpoints:
            self.breakpoints.remove(bp)

    # -- inspecting ----------------------------------------------------------------------------
    @property
    def regs(self) -> tuple[int, ...]:
        """r0..r10 as the current instruction will see them."""
        trace = self.trace
        if self.cursor == 0:
            return trace.initial_regs
        return trace.steps[self.cursor - 1].regs

    def reg(self, n: int) -> int:
        return self.regs[n]

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes at ``addr`` as they were at the cursor. The address must
        lie in a region the run touched (or a stack frame)."""
        snap = next((r for r in self.trace.regions.values()
                     if r.base <= addr and addr + size <= r.end), None)
        if snap is None:
            raise ValueError(f"{addr:#x}+{size} is not in a region this run touched")
        buf = bytearray(snap.data)
        for st in reversed(self.trace.steps[self.cursor:]):
            for w in reversed(st.writes):
                if w.old is not None and snap.base <= w.addr < snap.end:
                    o = w.addr - snap.base
                    buf[o:o + len(w.old)] = w.old
        o = addr - snap.base
        return bytes(buf[o:o + size])

    @property
    def stack(self) -> bytes:
        """The current function's 512-byte stack frame at the cursor (fp-512 .. fp-1)."""
        bases = self.trace.stack_bases
        if not bases:
            return bytes(MAX_BPF_STACK)
        return self.read(bases[min(self.depth, len(bases) - 1)], MAX_BPF_STACK)

    def stack_at(self, fp_off: int, size: int = 8) -> bytes:
        """Bytes at ``fp + fp_off`` (``fp_off`` negative, as in ``*(u64 *)(r10 -8)``)."""
        if not -MAX_BPF_STACK <= fp_off <= -size:
            raise ValueError(f"fp{fp_off:+d} with {size} bytes is outside the stack frame")
        frame = self.stack
        return frame[MAX_BPF_STACK + fp_off:MAX_BPF_STACK + fp_off + size]

    @property
    def retval(self) -> int | None:
        return self.trace.retval

    @property
    def fault(self) -> BpfFault | None:
        return self.trace.fault

    def listing(self, context: int = 3) -> str:
        """The instructions around the cursor, the current one marked ``->``."""
        trace = self.trace
        cur = self.current
        prog = trace.programs[cur.prog if cur is not None else 0]
        insns: Sequence[Any] = prog.insns
        pc = cur.pc if cur is not None else len(insns)
        from .isa.disasm import format_insn

        out = []
        loc = self.location()
        if loc is not None:
            out.append(f"> {os.path.basename(loc[0])}:{loc[1]} ({prog.name})")
            text = prog.source.source_text(pc).strip()
            if text:
                out.append(f"  {text}")
        for p in range(max(pc - context, 0), min(pc + context + 1, len(insns))):
            try:
                text = format_insn(insns, p, allow_ptr_leaks=True)
            except Exception:  # a printer gap must not break a listing
                text = "?"
            if text.startswith("<second slot"):
                continue
            mark = "->" if p == pc else "  "
            out.append(f"{mark} {p:4d}: {text}")
        if cur is None:
            out.append(f"(finished: {'fault ' + str(self.fault) if self.fault else self.retval})")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.listing()

    def __repr__(self) -> str:
        where = "not started" if self._trace is None else (
            "finished" if self.finished else f"at pc {self.pc}, step {self.cursor}")
        return f"<Debugger {where}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else self.listing())

    def _repr_html_(self) -> str:
        from .views import debugger_html

        return debugger_html(self)

    def history(self, last: int = 10) -> str:
        """The last ``last`` executed steps, as a trace prints them."""
        steps = self.trace.steps[max(self.cursor - last, 0):self.cursor]
        return "\n".join(format_step(st, stack_bases=self.trace.stack_bases) for st in steps)
