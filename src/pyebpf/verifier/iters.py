"""Open-coded iterators: iterator stack slots and the iterator loop (kernel/bpf/verifier.c).

An iterator (``struct bpf_iter_num`` ...) lives in ``size / 8`` stack slots
of type STACK_ITER. ``bpf_iter_<type>_new()`` turns uninitialized slots into
an *active* iterator holding a reference (so a path leaving it undestroyed
leaks: "Unreleased reference"); ``_next()`` and ``_destroy()`` take only an
initialized one ("expected an initialized iter_num as arg #0"); ``_destroy()``
releases the reference and the slots. The state of the iterator sits in the
first slot's ``spilled`` register (type PTR_TO_STACK, its ``ref_obj_id``, and
an :class:`IterState` in ``extra``), as the kernel keeps it in
``spilled_ptr.iter``.

The loop (process_iter_next_call): each ``_next()`` call forks the path. The
current path continues with the iterator *drained* and r0 = NULL; the queued
one with the iterator *active* one level deeper and r0 non-NULL, its imprecise
scalars widened against the previous iteration's checkpoint
(widen_imprecise_scalars) so that the loop body converges. ``_next()`` is a
forced checkpoint; reaching it in a state equivalent to one still on the
current path, with the iterator active, proves the loop converged and the
path is pruned (the special case of is_state_visited). Depth is not compared
by state equivalence, only by the infinite-loop check.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import attrs

from .log import VerifierAbort
from .state import BPF_REG_SIZE, FuncState, RegState, SlotType, VerifierState
from .tnum import tnum_is_const
from .types import PTR_MAYBE_NULL, PTR_UNTRUSTED, RegType

if TYPE_CHECKING:
    from ..kfuncs import KfArg, Kfunc
    from .check import Verifier

__all__ = [
    "ITER_ACTIVE",
    "ITER_DRAINED",
    "IterState",
    "format_iter_slot",
    "iter_active_depths_differ",
    "iter_loop_converged",
    "iter_slots_equal",
    "process_iter_arg",
    "process_iter_next_call",
]

#: enum bpf_iter_state, and iter_state_str's names.
ITER_INVALID, ITER_ACTIVE, ITER_DRAINED = 0, 1, 2
_STATE_STR = {ITER_INVALID: "<invalid>", ITER_ACTIVE: "active", ITER_DRAINED: "drained"}


@attrs.frozen
class IterState:
    """``bpf_reg_state.iter``: which iterator type, its state, its loop depth."""

    type_name: str
    state: int = ITER_ACTIVE
    depth: int = 0


def _iter_get_spi(v: Verifier, reg: RegState, nr_slots: int, obj_kind: str = "iter") -> int:
    """stack_slot_obj_get_spi(..., obj_kind, nr_slots): the first slot's index, or a
    negative errno (-EINVAL, said in the log; -ERANGE: past the allocated stack).
    Dynptrs (:mod:`.dynptr`) use it too, with ``obj_kind`` "dynptr"."""
    if not tnum_is_const(reg.scalar.var_off):
        v.verbose(f"{obj_kind} has to be at a constant offset\n")
        return -errno.EINVAL
    off = reg.off + _s64(reg.scalar.var_off.value)
    if off % BPF_REG_SIZE:
        v.verbose(f"cannot pass in {obj_kind} at an offset={off}\n")
        return -errno.EINVAL
    spi = (-off - 1) // BPF_REG_SIZE
    if spi + 1 < nr_slots:
        v.verbose(f"cannot pass in {obj_kind} at an offset={off}\n")
        return -errno.EINVAL
    if not (spi - nr_slots + 1 >= 0 and spi < len(v.func(reg).stack)):
        return -errno.ERANGE
    return spi


def _spi_or_fail(v: Verifier, reg: RegState, nr_slots: int) -> int:
    spi = _iter_get_spi(v, reg, nr_slots)
    if spi < 0:
        raise VerifierAbort(-spi, "invalid iterator stack slot")
    return spi


def _s64(x: int) -> int:
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >> 63 else x


def _is_iter_reg_valid_uninit(v: Verifier, reg: RegState, nr_slots: int) -> bool:
    spi = _iter_get_spi(v, reg, nr_slots)
    if spi == -errno.ERANGE:
        return True  # not allocated yet: uninitialized
    if spi < 0:
        return False
    state = v.func(reg)
    return all(SlotType.ITER not in state.stack[spi - i].slot_type for i in range(nr_slots))


def _is_iter_reg_valid_init(v: Verifier, reg: RegState, type_name: str, nr_slots: int) -> int:
    """0, or -EINVAL (not an initialized iterator of this type) / -EPROTO (untrusted)."""
    spi = _iter_get_spi(v, reg, nr_slots)
    if spi < 0:
        return -errno.EINVAL
    state = v.func(reg)
    for i in range(nr_slots):
        slot = state.stack[spi - i]
        st = slot.spilled
        if st is None:
            return -errno.EINVAL
        if st.type & PTR_UNTRUSTED:
            return -errno.EPROTO
        # Only the first slot holds the reference.
        if (i == 0) != bool(st.ref_obj_id):
            return -errno.EINVAL
        if not isinstance(st.extra, IterState) or st.extra.type_name != type_name:
            return -errno.EINVAL
        if any(t != SlotType.ITER for t in slot.slot_type):
            return -errno.EINVAL
    return 0


def _mark_stack_slots_iter(v: Verifier, reg: RegState, idx: int, type_name: str,
                           nr_slots: int) -> None:
    spi = _spi_or_fail(v, reg, nr_slots)
    state = v.func(reg)
    rid = v.new_id()
    v.cur.refs.append((rid, idx, "iter"))  # acquire_reference
    for i in range(nr_slots):
        slot = state.stack[spi - i]
        st = RegState()
        st.set_ptr(RegType.PTR_TO_STACK)  # the kernel has no dedicated register type
        st.ref_obj_id = rid if i == 0 else 0
        st.extra = IterState(type_name)
        slot.spilled = st
        slot.slot_type = [SlotType.ITER] * BPF_REG_SIZE
        v.scratched.add(-(spi - i + 1))


def _unmark_stack_slots_iter(v: Verifier, reg: RegState, nr_slots: int) -> None:
    from .calls import _release_reference

    spi = _spi_or_fail(v, reg, nr_slots)
    state = v.func(reg)
    for i in range(nr_slots):
        slot = state.stack[spi - i]
        if i == 0 and slot.spilled is not None:
            _release_reference(v, slot.spilled.ref_obj_id)
        slot.spilled = None
        slot.slot_type = [SlotType.INVALID] * BPF_REG_SIZE
        v.scratched.add(-(spi - i + 1))


def process_iter_arg(v: Verifier, regno: int, idx: int, kf: Kfunc, arg: KfArg,
                     meta: dict[str, Any]) -> None:
    """process_iter_arg: the iterator argument of a _new(), _next() or _destroy() call."""
    from .mem import check_mem_access

    reg = v.cur.regs[regno]
    if reg.type != RegType.PTR_TO_STACK:
        v.fail(errno.EINVAL, f"arg#{regno - 1} expected pointer to an iterator on stack")
    nr_slots = arg.iter_size // BPF_REG_SIZE
    if kf.is_iter_new:
        if not _is_iter_reg_valid_uninit(v, reg, nr_slots):
            v.fail(errno.EINVAL, f"expected uninitialized iter_{arg.iter_type} as arg "
                   f"#{regno - 1}")
        for i in range(0, nr_slots * BPF_REG_SIZE, BPF_REG_SIZE):
            check_mem_access(v, idx, regno, i, BPF_REG_SIZE, True, -1)
        _mark_stack_slots_iter(v, reg, idx, arg.iter_type, nr_slots)
        return
    err = _is_iter_reg_valid_init(v, reg, arg.iter_type, nr_slots)
    if err == -errno.EINVAL:
        v.fail(errno.EINVAL, f"expected an initialized iter_{arg.iter_type} as arg "
               f"#{regno - 1}")
    if err == -errno.EPROTO:
        v.fail(errno.EPROTO, f"expected an RCU CS when using {kf.name}")
    spi = _spi_or_fail(v, reg, nr_slots)
    meta["iter_spi"] = spi
    meta["iter_frameno"] = reg.frameno
    first = v.func(reg).stack[spi].spilled
    meta["ref_obj_id"] = first.ref_obj_id if first is not None else 0
    v.scratched.add(-(spi + 1))  # the log shows the iterator after the call
    if kf.is_iter_destroy:
        _unmark_stack_slots_iter(v, reg, nr_slots)


def _iter_reg(st: VerifierState, meta: dict[str, Any]) -> RegState:
    """get_iter_from_state: the first slot's register of the iterator of this call."""
    slot = st.frames[meta["iter_frameno"]].stack[meta["iter_spi"]]
    assert slot.spilled is not None
    return slot.spilled


def _find_prev_entry(v: Verifier, cur: VerifierState, idx: int) -> VerifierState | None:
    """find_prev_entry: the latest checkpoint at ``idx`` still on the current path,
    other than ``cur`` itself (the previous iteration's)."""
    for st in reversed(v.explored.get(idx, ())):
        if st is cur:
            continue
        if st.branches and _same_callsites(st, cur) and _on_path(st, cur):
            return st
    return None


def _on_path(st: VerifierState, cur: VerifierState) -> bool:
    p: VerifierState | None = cur.parent
    while p is not None:
        if p is st:
            return True
        p = p.parent
    return False


def _same_callsites(a: VerifierState, b: VerifierState) -> bool:
    if a.curframe != b.curframe:
        return False
    return all(x.callsite == y.callsite for x, y in zip(a.frames, b.frames, strict=False))


def _maybe_widen_reg(old: RegState, cur: RegState) -> None:
    """maybe_widen_reg: a scalar that changed and isn't known to need precision
    becomes unknown (pyebpf tracks no precision marks: only ``precise`` ones stay)."""
    if old.type != RegType.SCALAR_VALUE or cur.type != old.type:
        return
    if old.precise or cur.precise:
        return
    if old.scalar == cur.scalar and old.off == cur.off:
        return
    cur.mark_unknown()


def _widen_imprecise_scalars(old: VerifierState, cur: VerifierState) -> None:
    for fr in range(old.curframe, -1, -1):
        fold: FuncState = old.frames[fr]
        fcur: FuncState = cur.frames[fr]
        for o, c in zip(fold.regs, fcur.regs, strict=True):
            _maybe_widen_reg(o, c)
        for os_, cs in zip(fold.stack, fcur.stack, strict=False):
            if not (os_.is_spill and cs.is_spill) or os_.spilled is None or cs.spilled is None:
                continue
            _maybe_widen_reg(os_.spilled, cs.spilled)


def process_iter_next_call(v: Verifier, idx: int, meta: dict[str, Any]) -> None:
    """process_iter_next_call: fork into "one more element" (queued) and "drained" (current)."""
    cur = v.cur
    it = _iter_reg(cur, meta)
    info: IterState = it.extra
    if info.state not in (ITER_ACTIVE, ITER_DRAINED):
        v.fail(errno.EFAULT, f"verifier bug: unexpected iterator state {info.state} "
               f"({_STATE_STR.get(info.state, '?')})")
    if info.state == ITER_ACTIVE:
        parent = cur.parent
        if parent is None or parent.insn_idx != idx or not _same_callsites(parent, cur):
            v.fail(errno.EFAULT, "verifier bug: bad parent state for iter next call")
        prev = _find_prev_entry(v, parent, idx) if parent is not None else None
        queued = v.push_stack(idx + 1, idx)
        q_it = _iter_reg(queued, meta)
        q_it.extra = attrs.evolve(info, state=ITER_ACTIVE, depth=info.depth + 1)
        if prev is not None:
            _widen_imprecise_scalars(prev, queued)
        r0 = queued.frames[queued.curframe].regs[0]
        r0.type &= ~PTR_MAYBE_NULL  # mark_ptr_not_null_reg
    it.extra = attrs.evolve(info, state=ITER_DRAINED)
    r0 = cur.regs[0]
    r0.mark_known_zero()  # __mark_reg_const_zero: NULL


def iter_loop_converged(v: Verifier, idx: int) -> bool:
    """is_state_visited at an iter_next() call: a state still on this path
    (branches > 0) that covers the current one, with the iterator active,
    proves the loop converged: prune."""
    from .prune import states_equal

    cur = v.cur
    r1 = cur.regs[1]
    if r1.type != RegType.PTR_TO_STACK or not tnum_is_const(r1.scalar.var_off):
        return False
    for old in v.explored.get(idx, ()):
        if not old.branches or old.insn_idx != idx:
            continue
        if not states_equal(v, old, cur, exact=False, range_within=True):
            continue
        off = r1.off + _s64(r1.scalar.var_off.value)
        spi = (-off - 1) // BPF_REG_SIZE
        frame = cur.frames[r1.frameno]
        if 0 <= spi < len(frame.stack):
            st = frame.stack[spi].spilled
            if st is not None and isinstance(st.extra, IterState) and \
                    st.extra.state == ITER_ACTIVE:
                return True
    return False


def iter_active_depths_differ(old: VerifierState, cur: VerifierState) -> bool:
    """iter_active_depths_differ: an active iterator one loop level apart means the
    loop is progressing (the infinite-loop check must not fire)."""
    for fr in range(old.curframe, -1, -1):
        ostack = old.frames[fr].stack
        cstack = cur.frames[fr].stack
        for i, slot in enumerate(ostack):
            if slot.slot_type[0] != SlotType.ITER or slot.spilled is None:
                continue
            info = slot.spilled.extra
            if not isinstance(info, IterState) or info.state != ITER_ACTIVE:
                continue
            cslot = cstack[i].spilled if i < len(cstack) else None
            cinfo = cslot.extra if cslot is not None else None
            if not isinstance(cinfo, IterState) or cinfo.depth != info.depth:
                return True
    return False


def iter_slots_equal(old: RegState | None, cur: RegState | None, idmap: Any) -> bool:
    """stacksafe's STACK_ITER case: same type and state, matching reference ids
    (the depth is ignored: it would prevent convergence)."""
    if old is None or cur is None:
        return old is cur
    oi, ci = old.extra, cur.extra
    if not isinstance(oi, IterState) or not isinstance(ci, IterState):
        return oi == ci
    return (oi.type_name == ci.type_name and oi.state == ci.state
            and bool(idmap.check(old.ref_obj_id, cur.ref_obj_id)))


def format_iter_slot(off: int, reg: RegState | None) -> str:
    """print_verifier_state's STACK_ITER case (only the first slot prints)."""
    if reg is None or not reg.ref_obj_id or not isinstance(reg.extra, IterState):
        return ""
    it = reg.extra
    return (f" fp{off}=iter_{it.type_name}(ref_id={reg.ref_obj_id},"
            f"state={_STATE_STR.get(it.state, '?')},depth={it.depth})")
