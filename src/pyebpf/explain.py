"""Explaining a verifier rejection: the path to it, and inputs that make the fear real.

The verifier's log says *where* it gave up and *why* in its own words
(``R0 invalid mem access 'map_value_or_null'``). A learner also wants to see
the path that gets there and, above all, that the fear is founded: a packet,
ctx or map contents with which the program, run without the verifier, does
exactly the bad thing. :func:`explain` gives both:

1. The **path**: the verifier is run again with a recorder
   (:class:`_PathRecorder`, a subclass of the walk that keeps, per
   instruction of the current path, the abstract state it saw; a popped
   branch returns to the recorded prefix). The path ends at the failing
   instruction; each step carries the register and stack state, and the
   branch direction it took.
2. A **counterexample**, where one exists: the program is loaded unverified
   (the "structural" verifier) in a private runtime, and the interpreter runs
   it, traced, on inputs chosen by a small directed search: start from short
   zeroed packets (or a zeroed ctx) and, at the first conditional jump where a
   run leaves the verifier's path, change what that jump compares (the input
   bytes its operands were loaded from, the packet length for a bounds check,
   the map contents for a NULL check), keeping the runs that follow the path
   further. A run that follows the whole path is then checked for the fault
   the verifier feared: a fault of the interpreter, an access past
   ``data_end`` or past the end of a map value, a read of stack bytes nothing
   wrote, a register nothing set. A run that follows the path harmlessly is
   tried again with the bytes feeding the rejected instruction set to the
   constants the path compared with and to the ends of their ranges (an
   off-by-one bound check is harmless for every index but the last).

Maps of the user's runtime are snapshotted and restored around every run of
the search, so explaining changes nothing.
"""

from __future__ import annotations

import errno as _errno
import random
import re
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from .errors import BpfError, BpfFault, BudgetExhausted, VerifierError
from .isa.disasm import format_insn
from .isa.insn import Insn
from .isa.opcodes import BPF_FETCH, OPCODES, AluOp, AtomicOp, Kind, Source
from .lineinfo import SourceMap
from .trace import Trace, traced
from .uapi import ProgType
from .verifier.check import Verifier
from .verifier.log import VerifierAbort
from .verifier.state import VerifierState
from .verifier.types import PTR_MAYBE_NULL, RegType, base_type

__all__ = ["Counterexample", "Explanation", "PathStep", "explain", "explain_load"]

#: Program types whose test run takes a packet (the search varies its bytes and length).
PACKET_TYPES = frozenset({ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT,
                          ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB, ProgType.LWT_IN,
                          ProgType.LWT_OUT, ProgType.LWT_XMIT})
#: The shortest packet a test run accepts (ETH_HLEN), and the lengths tried first.
MIN_PACKET = 14
SEED_LENGTHS = (14, 34, 54, 64, 128)
#: Instructions an unverified run may execute (a rejected program may not terminate).
RUN_BUDGET = 100_000
_PKT_TYPES = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META)
#: Runs still made once one input follows the whole path without visible harm.
REACHED_EXTRA_RUNS = 64


@attrs.frozen
class PathStep:
    """One instruction on the verifier's path, with the state the verifier saw before it."""

    idx: int
    text: str
    #: The call frame (0: the main function).
    frame: int
    #: Initialised registers of the current frame: (regno, the log's text of its state).
    regs: tuple[tuple[int, str], ...]
    #: Stack slots in use: (fp offset, the log's text of the slot).
    stack: tuple[tuple[int, str], ...]
    #: For a conditional jump: whether the path takes it (None for other instructions).
    branch: bool | None
    state: VerifierState = attrs.field(eq=False, repr=False)

    @property
    def state_text(self) -> str:
        """The state as the verifier log at level 2 prints it."""
        return self.state.format(print_all=True).strip()


def _dump(data: bytes, limit: int = 64) -> str:
    """Bytes as hex; past ``limit``, the count of the rest (all zero or not)."""
    if len(data) <= limit:
        return data.hex(" ")
    rest = data[limit:]
    what = "zero " if not any(rest) else ""
    return f"{data[:limit].hex(' ')} ... ({len(rest)} more {what}bytes)"


@attrs.define(eq=False)
class Counterexample:
    """Inputs with which the unverified program does what the verifier feared."""

    #: "fault", "packet out of bounds", "map value out of bounds", "NULL dereference",
    #: "uninitialised stack read", "uninitialised register", "no termination", or
    #: "reached" (the path is followed, but no harm is visible to the interpreter).
    kind: str
    detail: str
    data: bytes | None
    ctx: bytes | None
    #: The contents of the program's maps as the run started (map name -> {key: value}).
    maps: dict[str, dict[bytes, bytes]]
    trace: Trace
    #: Runs the search made to find it.
    runs: int

    @property
    def demonstrated(self) -> bool:
        return self.kind != "reached"

    def format(self) -> str:
        out = [f"Counterexample ({self.kind}, found in {self.runs} runs): {self.detail}"]
        if self.data is not None:
            out.append(f"  packet ({len(self.data)} bytes): {_dump(self.data)}")
        if self.ctx is not None:
            out.append(f"  ctx ({len(self.ctx)} bytes): {_dump(self.ctx)}")
        for name, contents in self.maps.items():
            shown = ", ".join(f"{k.hex()}: {v.hex()}" for k, v in list(contents.items())[:8])
            out.append(f"  map {name}: {{{shown}}}" + (" ..." if len(contents) > 8 else ""))
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


@attrs.define(eq=False)
class Explanation:
    """Why the verifier rejected a program: its message, the path, a counterexample."""

    message: str
    errno: int
    log: str
    prog_name: str
    insns: Sequence[Insn]
    source: SourceMap
    path: list[PathStep]
    counterexample: Counterexample | None = None
    #: Why no counterexample is given (when none is).
    note: str = ""

    @property
    def insn_idx(self) -> int | None:
        """The rejected instruction (None when the rejection came before the walk)."""
        return self.path[-1].idx if self.path else None

    def location(self) -> str:
        idx = self.insn_idx
        if idx is None:
            return ""
        loc = self.source.location(idx)
        if loc is None:
            return f"insn {idx}"
        text = self.source.source_text(idx).strip()
        import os

        return f"insn {idx}, {os.path.basename(loc[0])}:{loc[1]}" + (f" '{text}'" if text else "")

    def format(self, *, states: bool = True) -> str:
        where = self.location()
        out = [f"The verifier rejected {self.prog_name or 'the program'}"
               + (f" at {where}" if where else "") + f": {self.message}"]
        if self.path:
            jumps = sum(1 for p in self.path if p.branch is not None)
            out.append(f"Path to it ({len(self.path)} instructions, {jumps} conditional "
                       f"jumps{'; state before each' if states else ''}):")
            for p in self.path:
                mark = "->" if p is self.path[-1] else "  "
                way = "" if p.branch is None else ("  [taken]" if p.branch else "  [not taken]")
                line = f"{mark}{'  ' * p.frame}{p.idx:4d}: {p.text}{way}"
                if states:
                    line = f"{line:<48} ; {p.state_text}"
                out.append(line)
        if self.counterexample is not None:
            out.append(self.counterexample.format())
        elif self.note:
            out.append(f"No counterexample: {self.note}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        cx = self.counterexample.kind if self.counterexample else "none"
        return (f"<Explanation at insn {self.insn_idx}: {self.message!r}, "
                f"{len(self.path)}-insn path, counterexample: {cx}>")

    def _repr_html_(self) -> str:
        from .views import explanation_html

        return explanation_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else self.format())


# -- the path -------------------------------------------------------------------------------


class _Node:
    """A recorded instruction of the current path (a persistent linked list)."""

    __slots__ = ("idx", "prev", "state")

    def __init__(self, idx: int, state: VerifierState, prev: _Node | None) -> None:
        self.idx = idx
        self.state = state
        self.prev = prev


class _PathRecorder(Verifier):
    """The verifier's walk, keeping the current path's states (see module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.node: _Node | None = None
        self._saved: dict[int, _Node | None] = {}

    def do_insn(self, insn: Insn, idx: int) -> bool:
        self.node = _Node(idx, self.cur.copy(), self.node)
        return super().do_insn(insn, idx)

    def push_stack(self, insn_idx: int, prev_insn_idx: int) -> VerifierState:
        other = super().push_stack(insn_idx, prev_insn_idx)
        self._saved[id(self.stack[-1])] = self.node
        return other

    def finish_path(self) -> bool:
        pending = self.stack[-1] if self.stack else None
        done = super().finish_path()
        if pending is not None:
            self.node = self._saved.pop(id(pending), None)
        return done

    def path(self) -> list[_Node]:
        out = []
        node = self.node
        while node is not None:
            out.append(node)
            node = node.prev
        return out[::-1]


_STATE_SPLIT = re.compile(r" (?=R\d+=|fp-\d+=)")


def _path_steps(nodes: list[_Node], insns: Sequence[Insn]) -> list[PathStep]:
    steps = []
    for i, node in enumerate(nodes):
        insn = insns[node.idx]
        try:
            text = format_insn(insns, node.idx, allow_ptr_leaks=True)
        except Exception:  # a printer gap must not hide the path
            text = f"<code {insn.code:#04x}>"
        spec = OPCODES.get(insn.code)
        branch = None
        if spec is not None and spec.kind is Kind.JCC and i + 1 < len(nodes):
            branch = nodes[i + 1].idx != node.idx + 1
        st = node.state
        f = st.frames[st.curframe]
        regs = tuple((r, reg.format(f.frameno)) for r, reg in enumerate(f.regs)
                     if reg.type != RegType.NOT_INIT)
        parts = _STATE_SPLIT.split(f.format(print_all=True).strip())
        stack = tuple((int(p[2:p.index("=")]), p[p.index("=") + 1:])
                      for p in parts if p.startswith("fp-"))
        steps.append(PathStep(node.idx, text, st.curframe, regs, stack, branch, st))
    return steps


def _walk(runtime: Any, bprog: Any) -> tuple[list[_Node], VerifierAbort | None, str]:
    """Run the recording verifier over a loaded program object; (path, abort, log)."""
    from .prog import VerifierLog

    log = VerifierLog(1, 1 << 26)
    v = _PathRecorder(runtime, bprog, log)
    try:
        v.run()
    except VerifierAbort as abort:
        return v.path(), abort, log.text
    return v.path(), None, log.text


# -- the program, loaded without the verifier -------------------------------------------------


class _Subject:
    """The rejected program loaded unverified, and how to run it on one input."""

    def __init__(self, program: Any, owned: Any = None) -> None:
        from .progs import prog_type_ops
        from .trace import _bpf_prog

        self.program = program
        self.bprog = _bpf_prog(program)
        self.runtime = program.runtime
        self.owned = owned  # a Collection/Program to close afterwards
        ops = prog_type_ops(self.bprog.prog_type)
        self.packet = self.bprog.prog_type in PACKET_TYPES
        self.has_test_run = ops is not None and ops.test_run is not None
        self.ctx_size = ops.ctx.size if ops is not None and ops.ctx is not None else 0
        self.maps = [m for m in self.bprog.used_maps if _snapshotable(m)]
        self.saved = {id(m): _contents(m) for m in self.maps}

    def run(self, inp: _Input, max_steps: int = RUN_BUDGET) -> Trace | None:
        if inp.maps is not None:
            for m in self.maps:
                _restore(m, inp.maps.get(id(m), {}))
        try:
            # Not the user's runs: they don't count in a coverage collection.
            with traced(self.program, budget=RUN_BUDGET, max_steps=max_steps,
                        count=False) as log:
                if self.packet:
                    self.program.test_run(inp.data)
                elif self.has_test_run:
                    self.program.test_run(ctx=inp.ctx or None)
                else:
                    self.program.run(inp.ctx)
            return log.first
        except BpfFault as fault:
            return getattr(fault, "trace", None)
        except BpfError:
            return None  # an input the test run refuses (EINVAL...)
        finally:
            for m in self.maps:
                _restore(m, self.saved[id(m)])

    def contents_for(self, inp: _Input) -> dict[str, dict[bytes, bytes]]:
        out = {}
        for m in self.maps:
            c = inp.maps.get(id(m), {}) if inp.maps is not None else self.saved[id(m)]
            out[m.name or f"map#{m.id}"] = dict(c)
        return out

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()


def _snapshotable(m: Any) -> bool:
    from .uapi import MapType

    return m.map_type not in (MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS,
                              MapType.RINGBUF, MapType.PERF_EVENT_ARRAY)


def _contents(m: Any) -> dict[bytes, bytes]:
    out = {}
    try:
        for k in list(m.iter_keys()):
            out[bytes(k)] = bytes(m.syscall_lookup(k, 0))
    except (BpfError, NotImplementedError):
        pass  # a map without iteration: nothing to snapshot
    return out


def _restore(m: Any, contents: dict[bytes, bytes]) -> None:
    try:
        for k in list(m.iter_keys()):
            if bytes(k) not in contents:
                m.delete_elem(bytes(k))
        for k, v in contents.items():
            m.syscall_update(k, v, 0)
    except (BpfError, NotImplementedError):
        pass  # arrays can't delete; what can be restored is


# -- the search ------------------------------------------------------------------------------


@attrs.frozen
class _Input:
    data: bytes | None = None
    ctx: bytes | None = None
    #: id(map) -> contents to give it before the run (None: as the user left them).
    maps: dict[int, dict[bytes, bytes]] | None = attrs.field(default=None, eq=False)
    maps_tag: str = "as is"

    def key(self) -> tuple[Any, ...]:
        return (self.data, self.ctx, self.maps_tag)


def _aligned(trace: Trace) -> list[int]:
    """Indices of the trace's steps in the main program (the verifier's pc space)."""
    return [i for i, s in enumerate(trace.steps) if s.prog == 0]


def _prefix(trace: Trace, target: list[int]) -> int:
    k = 0
    for i in _aligned(trace):
        if k >= len(target) or trace.steps[i].pc != target[k]:
            break
        k += 1
    return k


def _regs_before(trace: Trace, i: int) -> tuple[int, ...]:
    return trace.steps[i - 1].regs if i else trace.initial_regs


def _slice_reads(trace: Trace, i: int, regs: set[int], window: int = 64) -> list[Any]:
    """The memory reads whose values flow into ``regs`` at step ``i`` (a short
    backward slice through moves and arithmetic)."""
    want = set(regs)
    reads = []
    for j in range(i - 1, max(i - window, 0) - 1, -1):
        if not want:
            break
        st = trace.steps[j]
        hit = _defs(st.insn) & want
        if not hit:
            continue
        want -= hit
        if st.reads:
            reads.extend(st.reads)
            continue
        spec = OPCODES.get(st.insn.code)
        if spec is None or spec.kind in (Kind.CALL, Kind.LD_IMM64):
            continue
        if spec.kind is Kind.ALU:
            if spec.op is not AluOp.MOV:
                want.add(st.insn.dst)
            if spec.src is Source.X:
                want.add(st.insn.src)
        elif spec.kind in (Kind.NEG, Kind.END):
            want.add(st.insn.dst)
    return reads


def _defs(insn: Insn) -> set[int]:
    """The registers an instruction writes (whether or not their value changes)."""
    spec = OPCODES.get(insn.code)
    if spec is None:
        return set()
    if spec.kind in (Kind.ALU, Kind.NEG, Kind.END, Kind.LDX, Kind.LDX_SX, Kind.LD_IMM64):
        return {insn.dst}
    if spec.kind in (Kind.LD_ABS, Kind.LD_IND):
        return {0}
    if spec.kind in (Kind.CALL, Kind.CALLX):
        return {0, 1, 2, 3, 4, 5}
    if spec.kind is Kind.ATOMIC:
        if insn.imm == AtomicOp.LOAD_ACQ:
            return {insn.dst}
        if insn.imm == AtomicOp.CMPXCHG:
            return {0}
        return {insn.src} if insn.imm & BPF_FETCH else set()
    return set()


def _find_value(trace: Trace, path: list[PathStep], pred: Any) -> int | None:
    """The concrete value of a register the verifier typed so that ``pred(reg)``."""
    aligned = _aligned(trace)
    for k, p in enumerate(path):
        if k >= len(aligned):
            break
        for r, reg in enumerate(p.state.regs):
            if pred(reg):
                return _regs_before(trace, aligned[k])[r]
    return None


def _is_data(reg: Any) -> bool:
    return (base_type(reg.type) == RegType.PTR_TO_PACKET and reg.off == 0
            and reg.scalar.var_off.mask == 0 and reg.scalar.var_off.value == 0)


def _packet_start(trace: Trace, path: list[PathStep]) -> int | None:
    return _find_value(trace, path, _is_data)


def _mutations(subject: _Subject, inp: _Input, trace: Trace, path: list[PathStep],
               k: int) -> Iterable[_Input]:
    """Inputs that may follow the path further than ``inp`` (diverged after ``k`` steps)."""
    aligned = _aligned(trace)
    if not 0 < k <= len(aligned) or k >= len(path):
        return
    i = aligned[k - 1]
    st = trace.steps[i]
    spec = OPCODES.get(st.insn.code)
    if spec is None or spec.kind is not Kind.JCC:
        return
    node = path[k - 1]
    regs = _regs_before(trace, i)
    dst = node.state.regs[st.insn.dst]
    src = node.state.regs[st.insn.src] if spec.src is Source.X else None
    types = {base_type(dst.type)} | ({base_type(src.type)} if src is not None else set())
    # A bounds check: grow or shrink the packet by the distance between the pointers.
    if subject.packet and inp.data is not None and RegType.PTR_TO_PACKET_END in types:
        gap = regs[st.insn.dst] - regs[st.insn.src]
        for d in (0, 1, -1, 2, -2):
            for n in (len(inp.data) + gap + d, len(inp.data) - gap + d):
                if MIN_PACKET <= n <= 1500:
                    yield attrs.evolve(inp, data=inp.data[:n].ljust(n, b"\0"))
        return
    # A NULL check of a map value: with the program's maps emptied, or filled.
    if dst.type & PTR_MAYBE_NULL and subject.maps:
        yield attrs.evolve(inp, maps={id(m): {} for m in subject.maps}, maps_tag="empty")
        yield attrs.evolve(inp, maps=_filled(subject, trace, i), maps_tag="filled")
        return
    # A comparison of loaded values: write the constant into the bytes they came from.
    const = st.insn.imm if spec.src is Source.K else regs[st.insn.src]
    reads = _slice_reads(trace, i, {st.insn.dst})
    yield from _written(subject, inp, trace, path, reads, (const, const + 1, const - 1, 0,
                                                           const + 2), every_byte=True)


def _extremes(subject: _Subject, inp: _Input, trace: Trace, path: list[PathStep]
              ) -> Iterable[_Input]:
    """Inputs that follow the path with other values where the rejected
    instruction gets its operands: the constants the path compared with (and
    their neighbours), and the ends of the ranges. A run that reached the
    instruction harmlessly may just have had a harmless value there."""
    aligned = _aligned(trace)
    i = aligned[len(path) - 1]
    insn = trace.steps[i].insn
    consts: list[int] = []
    for k in range(len(path) - 1):
        j_insn = trace.steps[aligned[k]].insn
        spec = OPCODES.get(j_insn.code)
        if spec is not None and spec.kind is Kind.JCC and spec.src is Source.K:
            consts += [j_insn.imm, j_insn.imm - 1, j_insn.imm + 1]
    values = [*dict.fromkeys(consts), 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]
    reads = _slice_reads(trace, i, {insn.src, insn.dst})
    yield from _written(subject, inp, trace, path, reads, values)


def _written(subject: _Subject, inp: _Input, trace: Trace, path: list[PathStep],
             reads: list[Any], values: Iterable[int], *, every_byte: bool = False
             ) -> Iterable[_Input]:
    """``inp`` with each of ``values`` written (little- and big-endian) over the
    input bytes ``reads`` came from (the packet's or the ctx's). With
    ``every_byte``, a one-byte source is then tried with all 256 values (the
    program may compute with it before comparing: ``x * 3 + 7 == 100``)."""
    start = _packet_start(trace, path) if subject.packet else None
    values = list(values)
    for region_kind, buf_name in (("packet", "data"), ("ctx", "ctx")):
        buf = getattr(inp, buf_name)
        if buf is None:
            continue
        offs = []
        for r in reads:
            if not r.region.startswith(region_kind):
                continue
            base = start if region_kind == "packet" else _region_base(trace, r.addr)
            if base is not None and 0 <= r.addr - base <= len(buf) - r.size:
                offs.append((r.addr - base, r.size))
        if not offs:
            continue
        lo = min(o for o, _ in offs)
        hi = max(o + n for o, n in offs)
        width = hi - lo
        tried = list(values) + (list(range(256)) if every_byte and width == 1 else [])
        for value in dict.fromkeys(tried):
            v = value & ((1 << (8 * width)) - 1)
            for order in ("little", "big"):
                new = bytearray(buf)
                new[lo:hi] = v.to_bytes(width, order)  # type: ignore[arg-type]
                yield attrs.evolve(inp, **{buf_name: bytes(new)})


def _region_base(trace: Trace, addr: int) -> int | None:
    for snap in trace.regions.values():
        if snap.base <= addr < snap.end:
            return snap.base
    return None


def _filled(subject: _Subject, trace: Trace, upto: int) -> dict[int, dict[bytes, bytes]]:
    """Each map with the keys the run looked up in it (zero values) added."""
    from .debugger import Debugger

    maps = {id(m): dict(subject.saved[id(m)]) for m in subject.maps}
    by_addr = subject.runtime.maps_by_addr
    dbg = Debugger.of_trace(trace)
    for i in range(upto):
        st = trace.steps[i]
        if st.insn.code != 0x85 or st.insn.src != 0 or st.insn.imm != 1:  # map_lookup_elem
            continue
        regs = _regs_before(trace, i)
        m = by_addr.get(regs[1])
        if m is None or id(m) not in maps:
            continue
        dbg.cursor = i
        try:
            key = dbg.read(regs[2], m.key_size)
        except ValueError:
            continue
        maps[id(m)].setdefault(key, bytes(m.syscall_value_size))
    return maps


def _oracle(subject: _Subject, inp: _Input, trace: Trace, path: list[PathStep],
            message: str) -> tuple[str, str] | None:
    """What the run shows at the rejected instruction (the trace followed the path)."""
    aligned = _aligned(trace)
    i = aligned[len(path) - 1]
    st = trace.steps[i]
    found = _feared(subject, inp, trace, path, message, i)
    faulted = (trace.fault is not None and trace.fault.pc == st.pc
               and i == len(trace.steps) - 1)
    if found is not None:
        if faulted:  # the specific kind, and what the interpreter said
            return found[0], f"{found[1]} (the interpreter faults: {trace.fault.message})"
        return found
    if faulted:
        kind = "NULL dereference" if (trace.fault.addr or 0) < 4096 else "fault"
        return kind, f"run without the verifier, insn {st.pc} faults: {trace.fault.message}"
    return None


def _feared(subject: _Subject, inp: _Input, trace: Trace, path: list[PathStep],
            message: str, i: int) -> tuple[str, str] | None:
    """The specific harm the rejected instruction does in this run, if any."""
    st = trace.steps[i]
    node = path[-1]
    if message.startswith("infinite loop") and isinstance(trace.fault, BudgetExhausted):
        return ("no termination", f"run without the verifier, the loop at insn {st.pc} is "
                f"still running when the budget of {RUN_BUDGET} instructions is spent")
    spec = OPCODES.get(st.insn.code)
    regs = _regs_before(trace, i)
    m = re.match(r"R(\d+) !read_ok", message)
    if m:
        r = int(m.group(1))
        if not any(w.reg == r for s in trace.steps[:i] for w in s.reg_writes):
            return ("uninitialised register",
                    f"insn {st.pc} reads r{r}, which no instruction before it wrote "
                    f"(the interpreter starts it at {regs[r]:#x}; the kernel promises "
                    "nothing)")
    if spec is not None and spec.kind in (Kind.LDX, Kind.LDX_SX, Kind.ST, Kind.STX, Kind.ATOMIC):
        base_reg = st.insn.src if spec.kind in (Kind.LDX, Kind.LDX_SX) else st.insn.dst
        reg = node.state.regs[base_reg]
        addr = (regs[base_reg] + st.insn.off) & ((1 << 64) - 1)
        size = spec.width
        if base_type(reg.type) in _PKT_TYPES and subject.packet and inp.data is not None:
            start = _packet_start(trace, path)
            end = _find_value(trace, path,
                              lambda r: base_type(r.type) == RegType.PTR_TO_PACKET_END)
            if end is None and start is not None:
                end = start + len(inp.data)
            if end is not None and addr + size > end:
                return ("packet out of bounds",
                        f"insn {st.pc} accesses {_bytes(size)} at data_end{addr - end:+d} "
                        f"of a {len(inp.data)}-byte packet: {addr + size - end} past its end")
        if base_type(reg.type) == RegType.PTR_TO_MAP_VALUE and reg.map is not None:
            start = _looked_up(subject, trace, i, reg.map)
            end = start + reg.map.value_size if start is not None else None
            if start is not None and end is not None and not start <= addr <= end - size:
                where = addr - start
                return ("map value out of bounds",
                        f"insn {st.pc} accesses {_bytes(size)} at offset {where} of a "
                        f"value of map {reg.map.name or reg.map.id} "
                        f"({_bytes(reg.map.value_size)}): {addr + size - end} past its end")
        if base_type(reg.type) == RegType.PTR_TO_STACK and st.reads:
            written = _stack_written(trace, i)
            missing = [a for a in range(addr, addr + size) if a not in written]
            if missing:
                fp = _fp_offset(trace, addr, st.depth)
                return ("uninitialised stack read",
                        f"insn {st.pc} reads {_bytes(size)} at fp{fp:+d}, of which "
                        f"{len(missing)} were never written in this run")
    m = re.search(r"invalid (?:indirect )?read from stack R(\d+) off[= ](-?\d+)(?:\+\d+)? "
                  r"size[= ](\d+)", message)
    if m and spec is not None and spec.kind is Kind.CALL:
        r, off, size = int(m.group(1)), int(m.group(2)), int(m.group(3))
        written = _stack_written(trace, i)
        start_addr = regs[r]
        missing = [a for a in range(start_addr, start_addr + size) if a not in written]
        if missing:
            return ("uninitialised stack read",
                    f"insn {st.pc} passes r{r} (fp{off:+d}, {size} bytes) to a helper; "
                    f"{len(missing)} of those bytes were never written in this run")
    return None


def _bytes(n: int) -> str:
    return f"{n} byte" + ("" if n == 1 else "s")


def _looked_up(subject: _Subject, trace: Trace, upto: int, m: Any) -> int | None:
    """The value address the last bpf_map_lookup_elem of map ``m`` before step
    ``upto`` returned (None when there was none, or it found nothing)."""
    for j in range(upto - 1, -1, -1):
        st = trace.steps[j]
        if (st.insn.code == 0x85 and st.insn.src == 0 and st.insn.imm == 1
                and subject.runtime.maps_by_addr.get(_regs_before(trace, j)[1]) is m):
            return st.regs[0] or None
    return None


def _stack_written(trace: Trace, upto: int) -> set[int]:
    out: set[int] = set()
    for st in trace.steps[:upto]:
        for w in st.writes:
            if w.region.startswith("stack") and w.new is not None:
                out.update(range(w.addr, w.addr + len(w.new)))
    return out


def _fp_offset(trace: Trace, addr: int, depth: int) -> int:
    bases = trace.stack_bases
    if depth < len(bases):
        return addr - (bases[depth] + 512)
    return 0


def _seeds(subject: _Subject) -> list[_Input]:
    if subject.packet:
        seeds = [_Input(data=bytes(n)) for n in SEED_LENGTHS]
        seeds.append(_Input(data=b"\xff" * 64))
    else:
        size = subject.ctx_size
        seeds = [_Input(ctx=bytes(size)), _Input(ctx=b"\xff" * size)] if size else [_Input()]
    return seeds


def search_counterexample(subject: _Subject, path: list[PathStep], message: str, *,
                          max_runs: int = 300, seed: int = 0) -> tuple[Counterexample | None,
                                                                       str]:
    """The directed search of the module docstring; (counterexample or None, note)."""
    target = [p.idx for p in path]
    # Recording is what costs; the steps past the path are not needed.
    max_steps = 4 * len(target) + 1024
    rng = random.Random(seed)
    queue: deque[_Input] = deque(_seeds(subject))
    tried: set[tuple[Any, ...]] = set()
    best: tuple[int, _Input, Trace] | None = None
    reached: tuple[_Input, Trace] | None = None
    runs = 0
    while runs < max_runs:
        if not queue:
            if best is None:
                break
            queue.extend(_random_mutations(best[1], rng))
        inp = queue.popleft()
        if inp.key() in tried:
            continue
        tried.add(inp.key())
        trace = subject.run(inp, max_steps)
        runs += 1
        if trace is None:
            continue
        k = _prefix(trace, target)
        if k == len(target):
            found = _oracle(subject, inp, trace, path, message)
            if found is not None:
                return Counterexample(found[0], found[1], inp.data, inp.ctx,
                                      subject.contents_for(inp), trace, runs), ""
            if reached is None:
                reached = (inp, trace)
                max_runs = min(max_runs, runs + REACHED_EXTRA_RUNS)
                queue.extendleft(reversed(list(_extremes(subject, inp, trace, path))))
        if best is None or k > best[0]:
            best = (k, inp, trace)
            queue.extendleft(reversed(list(_mutations(subject, inp, trace, path, k))))
    if reached is not None:
        inp, trace = reached
        return Counterexample("reached", "a run without the verifier follows the path to the "
                              "rejected instruction, but the interpreter sees no harm there",
                              inp.data, inp.ctx, subject.contents_for(inp), trace, runs), ""
    got = best[0] if best is not None else 0
    return None, (f"the search ({runs} runs) followed the verifier's path for {got} of "
                  f"{len(target)} instructions")


def _random_mutations(inp: _Input, rng: random.Random, n: int = 8) -> list[_Input]:
    out = []
    for _ in range(n):
        for name in ("data", "ctx"):
            buf = getattr(inp, name)
            if not buf:
                continue
            new = bytearray(buf)
            for _ in range(rng.randint(1, 4)):
                new[rng.randrange(len(new))] = rng.randrange(256)
            out.append(attrs.evolve(inp, **{name: bytes(new)}))
    return out


# -- entry points ------------------------------------------------------------------------------


def explain(err: VerifierError, *, counterexample: bool = True, max_runs: int = 300
            ) -> Explanation:
    """Explain a rejection raised by PROG_LOAD, ``Program.load`` or ``load_object``.

    The error carries what is needed to walk the verifier again (pyebpf
    attaches it when it raises). ``counterexample=False`` skips the search.
    """
    if not isinstance(err, VerifierError):
        raise TypeError(f"explain() takes a VerifierError, not {type(err).__name__}")
    subject, name = _load_unverified(err)
    try:
        nodes, abort, log = _walk(subject.runtime, subject.bprog)
        insns = subject.bprog.orig_insns
        from .lineinfo import source_map_of

        spec = getattr(err, "program_spec", None)
        source = source_map_of(spec if spec is not None else subject.bprog, insns)
        if abort is None:
            return Explanation(str(err.strerror), err.errno or 0, err.log or log, name, insns,
                               source, [], None,
                               "the verifier accepts this program when run again "
                               "(the rejection came from a check outside its walk)")
        path = _path_steps(nodes, insns)
        exp = Explanation(abort.message, abort.errno, log, name, insns, source, path)
        if not path:
            exp.note = "the rejection came before the walk (no path reaches it)"
        elif counterexample:
            exp.counterexample, exp.note = search_counterexample(
                subject, path, abort.message, max_runs=max_runs)
        return exp
    finally:
        subject.close()


def explain_load(prog_type: ProgType | int, insns: Any, *, runtime: Any = None,
                 counterexample: bool = True, **load_options: Any) -> Explanation | None:
    """Load ``insns`` (bytes, assembly text, Insn list) and explain the rejection;
    None when the verifier accepts the program."""
    from .engine.interpreter import as_insns
    from .objects import Program

    try:
        Program.load(prog_type, as_insns(insns), runtime=runtime, **load_options).close()
    except VerifierError as err:
        return explain(err, counterexample=counterexample)
    return None


def _load_unverified(err: VerifierError) -> tuple[_Subject, str]:
    """The rejected program loaded with the structural checks only, as a _Subject."""
    obj_spec = getattr(err, "object_spec", None)
    prog_spec = getattr(err, "program_spec", None)
    if obj_spec is not None and prog_spec is not None:
        from .collection import load_object
        from .runtime import Runtime

        old = getattr(err, "runtime", None)
        rt = Runtime(privileged=old.privileged if old is not None else True)
        coll = load_object(obj_spec, runtime=rt, verifier="structural",
                           programs=[prog_spec.name])
        return _Subject(coll.programs[prog_spec.name], coll), prog_spec.name
    attr = getattr(err, "load_attr", None)
    rt = getattr(err, "runtime", None)
    if attr is None or rt is None:
        raise ValueError("this VerifierError carries no load context to explain "
                         "(raised by pyebpf's PROG_LOAD or load_object?)")
    from .objects import Program
    from .syscall import bpf
    from .uapi import Cmd

    saved = rt.verifier
    rt.verifier = "structural"
    try:
        fd = bpf(Cmd.PROG_LOAD, attrs.evolve(attr, log_level=0, log_size=0, log_buf=None),
                 runtime=rt)
    except BpfError as e:
        raise VerifierError(e.errno or _errno.EINVAL,
                            f"can't load the program unverified to explain it: {e.strerror}"
                            ) from None
    finally:
        rt.verifier = saved
    prog = Program(fd, rt)
    return _Subject(prog, prog), prog.name
