"""Liveness: which registers and stack slots the rest of the program may read.

State pruning only needs to compare what is still going to be read. Linux
6.18 knows this two ways, both re-made here:

* **Registers** (``compute_live_registers``): a static backward data-flow
  pass over the whole program before the walk. Each instruction uses and
  defines registers (:func:`insn_use_def`); a call uses the helper's
  arguments and clobbers r0-r5; ``exit`` uses r0. ``live_regs_before[i]`` is
  the set of registers possibly read at or after ``i``.
* **Stack slots** (kernel/bpf/liveness.c): marks gathered *during* the walk,
  per call chain and instruction: the slots an instruction may read
  (``may_read``, a union over every visit) and the 8-byte slots it surely
  overwrites (``must_write``, an intersection over every visit). Whenever a
  path ends (and when a subprogram returns) the textbook live-variable
  equations are solved for the call chains of that path::

      live_after[i]  = U live_before[s]  for s in successors(i)
      live_before[i] = (live_after[i] - must_write[i]) | may_read[i]

  and what a subprogram reads or surely writes of its callers' frames is
  handed to the call instruction in the caller's call chain. A finished
  explored state (all its paths done) has complete marks, so its dead
  registers and slots can be forgotten (:func:`clean_verifier_state`)
  before it is compared with new states.

Slots holding an iterator, dynptr or IRQ flag are always treated as alive:
their owners' checks read them without going through the stack-read paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .state import BPF_REG_FP, BPF_REG_SIZE, SlotType, VerifierState

if TYPE_CHECKING:
    from .check import Verifier

__all__ = [
    "StackLiveness",
    "clean_verifier_state",
    "compute_live_registers",
    "frame_insn_idx",
    "insn_successors",
    "insn_use_def",
]

ALL_CALLER_SAVED_REGS = (1 << 6) - 1
_ALL_REGS = 0xFFFF
_ARG_DONTCARE = 0
BPF_CMPXCHG, BPF_FETCH = 0xF1, 0x01
BPF_LOAD_ACQ, BPF_STORE_REL = 0x100, 0x110
#: Slots whose contents are objects checked by their own rules (never cleaned).
_SPECIAL = (SlotType.DYNPTR, SlotType.ITER, SlotType.IRQ_FLAG)


# -- the control-flow graph -------------------------------------------------------------------
def insn_successors(insns: list[Any], idx: int) -> tuple[int, ...]:
    """bpf_insn_successors: where control may go after ``idx`` within its
    subprogram (a call returns to the next instruction; exit goes nowhere)."""
    insn = insns[idx]
    code = insn.code
    cls = code & 0x07
    nxt = idx + (2 if code == 0x18 else 1)
    if cls not in (0x05, 0x06):
        return (nxt,)
    op = code & 0xF0
    if op == 0x90:  # exit
        return ()
    if op == 0x80:  # call
        return (nxt,)
    target = idx + (insn.imm if (cls == 0x06 and op == 0x00) else insn.off) + 1
    if op == 0x00:  # ja
        return (target,)
    return (nxt, target) if target != nxt else (nxt,)


def _postorder(insns: list[Any], start: int) -> list[int]:
    """Instructions reachable from ``start`` in depth-first postorder (compute_postorder)."""
    order: list[int] = []
    state: dict[int, int] = {start: 1}
    stack = [start]
    n = len(insns)
    while stack:
        top = stack[-1]
        if state[top] == 2:
            order.append(top)
            stack.pop()
            continue
        for s in insn_successors(insns, top):
            if s not in state and 0 <= s < n:
                state[s] = 1
                stack.append(s)
        state[top] = 2
    return order


# -- registers -------------------------------------------------------------------------------
def _call_num_params(v: Verifier, insn: Any) -> int | None:
    """get_call_summary: a helper's or kfunc's argument count from its prototype (None:
    unknown)."""
    if insn.src == 2:  # BPF_PSEUDO_KFUNC_CALL: the parameters of its BTF prototype
        from ..kfuncs import kfunc_by_id

        kf = kfunc_by_id(insn.imm)
        return len(kf.args) if kf is not None else None
    if insn.src != 0:
        return None
    from ..helpers import func_proto

    try:
        helper = func_proto(insn.imm, v.prog_type, cap_bpf=v.bpf_capable,
                            cap_perfmon=v.bpf_capable,
                            expected_attach_type=v.prog.expected_attach_type)
    except Exception:  # an invalid id: the walk reports it
        return None
    if helper is None:
        return None
    n = 0
    for arg in helper.proto.args:
        if arg == _ARG_DONTCARE:
            break
        n += 1
    return n


def insn_use_def(v: Verifier, insn: Any) -> tuple[int, int]:
    """compute_insn_live_regs: (registers read, registers written) as bit masks."""
    code = insn.code
    cls = code & 0x07
    op = code & 0xF0
    mode = code & 0xE0
    src, dst = 1 << insn.src, 1 << insn.dst
    use, df = _ALL_REGS, 0
    if cls == 0x00:  # BPF_LD
        if mode == 0x00 and code & 0x18 == 0x18:  # lddw
            use, df = 0, dst
    elif cls == 0x01:  # BPF_LDX
        if mode in (0x60, 0x80):
            use, df = src, dst
    elif cls == 0x02:  # BPF_ST
        if mode == 0x60:
            use, df = dst, 0
    elif cls == 0x03:  # BPF_STX
        if mode == 0x60:
            use, df = dst | src, 0
        elif mode == 0xC0:
            if insn.imm == BPF_CMPXCHG:
                use, df = 1 | dst | src, 1
            elif insn.imm == BPF_LOAD_ACQ:
                use, df = src, dst
            elif insn.imm == BPF_STORE_REL:
                use, df = dst | src, 0
            else:
                use, df = dst | src, (src if insn.imm & BPF_FETCH else 0)
    elif cls in (0x04, 0x07):  # ALU
        k = not code & 0x08
        if op == 0xD0:  # end
            use, df = dst, dst
        elif op == 0xB0:  # mov
            use, df = (0 if k else src), dst
        else:
            use, df = (dst if k else dst | src), dst
    else:  # JMP / JMP32
        k = not code & 0x08
        if op == 0x00:
            use, df = (0 if k else dst), 0
        elif op == 0xE0:  # jcond (may_goto)
            use, df = 0, 0
        elif op == 0x90:
            use, df = 1, 0
        elif op == 0x80:
            df = ALL_CALLER_SAVED_REGS
            n = _call_num_params(v, insn)
            use = df & ~1 if n is None else ((1 << (n + 1)) - 2)
        else:
            use, df = (dst if k else dst | src), 0
    return use, df


def compute_live_registers(v: Verifier) -> list[int]:
    """live_regs_before for every instruction (a fixed point over postorder)."""
    insns = v.insns
    n = len(insns)
    use = [0] * n
    defs = [0] * n
    for i in range(n):
        use[i], defs[i] = insn_use_def(v, insns[i])
    order: list[int] = []
    for start in v.subprog_starts[:-1]:
        order.extend(_postorder(insns, start))
    succs = {i: insn_successors(insns, i) for i in order}
    live_in = [0] * n
    changed = True
    while changed:
        changed = False
        for i in order:
            out = 0
            for s in succs[i]:
                if s < n:
                    out |= live_in[s]
            new_in = (out & ~defs[i]) | use[i]
            if new_in != live_in[i]:
                live_in[i] = new_in
                changed = True
    return live_in


# -- stack slots ---------------------------------------------------------------------------------
class _Masks:
    """per_frame_masks of one frame over a function instance's instructions."""

    __slots__ = ("live_before", "may_read", "must_write", "must_write_acc")

    def __init__(self, n: int) -> None:
        self.may_read = [0] * n
        self.must_write = [0] * n
        self.must_write_acc = [0] * n
        self.live_before = [0] * n


class FuncInstance:
    """A subprogram as entered through one call chain, with its marks per frame."""

    __slots__ = ("callsites", "frames", "must_write_dropped", "must_write_set", "start",
                 "updated")

    def __init__(self, callsites: tuple[int, ...], start: int, depth: int, n: int) -> None:
        #: Call instruction of each outer frame, then the subprogram's start.
        self.callsites = callsites
        self.start = start
        self.frames: list[_Masks | None] = [None] * (depth + 1)
        self.must_write_set = [False] * n
        self.updated = False
        self.must_write_dropped = False

    @property
    def curframe(self) -> int:
        return len(self.callsites) - 1


class StackLiveness:
    """The call-chain sensitive live stack slot analysis (kernel/bpf/liveness.c)."""

    def __init__(self, v: Verifier) -> None:
        self.v = v
        self.instances: dict[tuple[int, ...], FuncInstance] = {}
        self.cur_instance: FuncInstance | None = None
        self.write_masks = [0] * 8
        self.write_insn_idx = -1
        self._postorders: dict[int, list[int]] = {}
        self._succs: dict[int, tuple[int, ...]] = {}
        self.query: list[FuncInstance] = []
        self.query_insn = 0
        self._cur_owner: tuple[Any, Any] | None = None
        #: A mark didn't fit its call chain (a frame set up outside the usual
        #: call paths): stack slots are then never treated as dead.
        self.unreliable = False
        self._write_owner: FuncInstance | None = None

    # -- call chains -------------------------------------------------------------------------
    def _sub_range(self, start: int) -> tuple[int, int]:
        import bisect

        starts = self.v.subprog_starts
        i = bisect.bisect_right(starts, start) - 1
        return starts[i], starts[i + 1]

    def lookup(self, st: VerifierState, frameno: int) -> FuncInstance:
        starts = self.v.subprog_starts
        start = starts[st.frames[frameno].subprogno]
        key = (*(st.frames[i + 1].callsite for i in range(frameno)), start)
        return self._instance(key)

    def _instance(self, key: tuple[int, ...]) -> FuncInstance:
        inst = self.instances.get(key)
        if inst is None:
            lo, hi = self._sub_range(key[-1])
            inst = FuncInstance(key, lo, len(key) - 1, hi - lo)
            self.instances[key] = inst
        return inst

    def _masks(self, inst: FuncInstance, frame: int) -> _Masks:
        m = inst.frames[frame]
        if m is None:
            lo, hi = self._sub_range(inst.start)
            m = inst.frames[frame] = _Masks(hi - lo)
        return m

    def reset_cur(self) -> None:
        """bpf_reset_live_stack_callchain: the current state changed call chain."""
        self.cur_instance = None

    def _cur(self) -> FuncInstance:
        st = self.v.cur
        top = st.frames[st.curframe]
        # The cached instance belongs to one state and frame (calls, returns and
        # popped branches change it).
        owner = (st, top)
        if self.cur_instance is None or self._cur_owner != owner:
            self.cur_instance = self.lookup(st, st.curframe)
            self._cur_owner = owner
        return self.cur_instance

    # -- marks -----------------------------------------------------------------------------
    def mark_read(self, frame: int, insn_idx: int, mask: int) -> None:
        """bpf_mark_stack_read: at ``insn_idx`` the slots in ``mask`` of ``frame`` may be read."""
        self._mark_read(self._cur(), frame, insn_idx, mask)

    def _mark_read(self, inst: FuncInstance, frame: int, insn_idx: int, mask: int) -> None:
        i = insn_idx - inst.start
        if not 0 <= i < len(inst.must_write_set) or frame >= len(inst.frames):
            self.unreliable = True  # a frame the call chain doesn't explain
            return
        m = self._masks(inst, frame)
        old = m.may_read[i]
        new = old | mask
        if new != old:
            m.may_read[i] = new
            if new & ~m.live_before[i]:
                inst.updated = True

    def reset_write_marks(self, insn_idx: int) -> None:
        """bpf_reset_stack_write_marks: start collecting one instruction's writes."""
        self.write_insn_idx = insn_idx
        self._write_owner = self._cur()
        for i in range(len(self.write_masks)):
            self.write_masks[i] = 0

    def mark_write(self, frame: int, mask: int) -> None:
        """bpf_mark_stack_write: the slots in ``mask`` of ``frame`` are wholly overwritten."""
        self.write_masks[frame] |= mask

    def commit_write_marks(self) -> None:
        """bpf_commit_stack_write_marks: intersect with what earlier visits wrote."""
        inst = self.cur_instance
        if inst is None or inst is not self._write_owner or self.write_insn_idx < 0:
            return  # a call or return in between: the kernel drops these marks too
        self._commit(inst, self.write_insn_idx)

    def _commit(self, inst: FuncInstance, insn_idx: int) -> None:
        i = insn_idx - inst.start
        if not 0 <= i < len(inst.must_write_set):
            self.unreliable = True
            return
        seen = inst.must_write_set[i]
        for frame in range(inst.curframe + 1):
            mask = self.write_masks[frame]
            if mask == 0 and not seen:
                continue
            m = self._masks(inst, frame)
            old = m.must_write[i]
            if seen:
                mask &= old
            if old != mask:
                m.must_write[i] = mask
                inst.updated = True
            if old & ~mask:
                inst.must_write_dropped = True
        inst.must_write_set[i] = True
        self.write_insn_idx = -1

    # -- propagation ------------------------------------------------------------------------
    def _order(self, start: int) -> list[int]:
        order = self._postorders.get(start)
        if order is None:
            insns = self.v.insns
            order = self._postorders[start] = _postorder(insns, start)
            for i in order:
                self._succs[i] = insn_successors(insns, i)
        return order

    def _update_instance(self, inst: FuncInstance) -> None:
        if inst.must_write_dropped:
            for m in inst.frames:
                if m is not None:
                    m.must_write_acc = [0] * len(m.must_write_acc)
        order = self._order(inst.start)
        succs = self._succs
        base = inst.start
        changed = True
        while changed:
            changed = False
            for m in inst.frames:
                if m is None:
                    continue
                live, acc_l = m.live_before, m.must_write_acc
                may, must = m.may_read, m.must_write
                for idx in order:
                    ss = succs[idx]
                    if not ss:
                        continue
                    i = idx - base
                    after = 0
                    acc = -1
                    for s in ss:
                        after |= live[s - base]
                        acc &= acc_l[s - base]
                    acc |= must[i]
                    before = (after & ~must[i]) | may[i]
                    if before != live[i] or acc != acc_l[i]:
                        live[i] = before
                        acc_l[i] = acc
                        changed = True
        if inst.curframe > 0:
            self._propagate_to_outer(inst)

    def _propagate_to_outer(self, inst: FuncInstance) -> None:
        """What a subprogram reads of, or surely writes to, its callers' frames
        happens at the call instruction of the caller's call chain."""
        outer_key = (*inst.callsites[:-2], self._sub_range(inst.callsites[-2])[0])
        outer = self._instance(outer_key)
        callsite = inst.callsites[-2]
        saved = self.write_masks[:]
        for i in range(len(self.write_masks)):
            self.write_masks[i] = 0
        for frame in range(inst.curframe):
            m = inst.frames[frame]
            if m is None:
                continue
            self.write_masks[frame] |= m.must_write_acc[0] & ((1 << 64) - 1)
            self._mark_read(outer, frame, callsite, m.live_before[0])
        self._commit(outer, callsite)
        self.write_masks[:] = saved

    def update(self, st: VerifierState) -> None:
        """bpf_update_live_stack: solve the equations for every call chain of ``st``."""
        self.reset_cur()
        for frame in range(st.curframe, -1, -1):
            inst = self.lookup(st, frame)
            if inst.updated:
                self._update_instance(inst)
                inst.updated = False
                inst.must_write_dropped = False

    # -- queries ------------------------------------------------------------------------------
    def query_init(self, st: VerifierState) -> None:
        self.query = [self.lookup(st, f) for f in range(st.curframe + 1)]
        self.query_insn = st.insn_idx

    def _live_before(self, inst: FuncInstance, insn_idx: int, frameno: int, spi: int) -> bool:
        m = inst.frames[frameno] if frameno < len(inst.frames) else None
        if m is None:
            return False
        i = insn_idx - inst.start
        return 0 <= i < len(m.live_before) and bool(m.live_before[i] >> spi & 1)

    def slot_alive(self, frameno: int, spi: int) -> bool:
        """bpf_stack_slot_alive: read at or after the query state's instruction, or
        after the call (before it, for a callback-calling helper) in a caller."""
        cur = self.query[-1]
        if self._live_before(cur, self.query_insn, frameno, spi):
            return True
        insns = self.v.insns
        for i in range(frameno, len(self.query) - 1):
            callsite = cur.callsites[i]
            calls_callback = insns[callsite].src != 1  # a helper/kfunc running a callback
            at = callsite if calls_callback else callsite + 1
            if self._live_before(self.query[i], at, frameno, spi):
                return True
        return False


# -- cleaning explored states ----------------------------------------------------------------------
def frame_insn_idx(st: VerifierState, frame: int) -> int:
    """Where frame ``frame`` of ``st`` is: its instruction, or the call it made."""
    return st.insn_idx if frame == st.curframe else st.frames[frame + 1].callsite


def clean_verifier_state(v: Verifier, st: VerifierState) -> None:
    """clean_verifier_state: forget the registers and slots no path from ``st`` reads."""
    live_regs = v.live_regs_before
    lv = v.liveness
    lv.query_init(st)
    st.cleaned = True
    for i, frame in enumerate(st.frames[:st.curframe + 1]):
        live = live_regs[frame_insn_idx(st, i)]
        regs = frame.regs
        for r in range(BPF_REG_FP):
            if not live >> r & 1 and regs[r].type:
                regs[r].mark_not_init()
        if lv.unreliable:
            continue
        for spi, slot in enumerate(frame.stack):
            types = slot.slot_type
            if types[BPF_REG_SIZE - 1] in _SPECIAL or lv.slot_alive(frame.frameno, spi):
                continue
            slot.spilled = None
            slot.slot_type = [SlotType.INVALID] * BPF_REG_SIZE
