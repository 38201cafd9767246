"""State equivalence for pruning: ``states_equal``, ``regsafe``, ``stacksafe``.

A path reaching a prune point in a state at least as constrained as one
already proven safe there needs no further exploration. The kernel knows,
through liveness and precision marks, which registers and slots the rest of
the program actually reads and how precisely; this first version doesn't
track those, so it compares every register and slot and treats every scalar
as precise. That never prunes a path the kernel would explore (it is sound),
but may explore some the kernel would prune.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .liveness import frame_insn_idx
from .scalar import BPF_ADD_CONST
from .state import BPF_REG_SIZE, FuncState, RegState, SlotType, VerifierState
from .tnum import tnum_in
from .types import PTR_MAYBE_NULL, RegType, base_type

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["states_equal"]


class _IdMap:
    """check_ids: ids in the old state must map one-to-one onto ids in the new."""

    def __init__(self) -> None:
        self.old_to_cur: dict[int, int] = {}
        self.cur_to_old: dict[int, int] = {}

    def check(self, old_id: int, cur_id: int) -> bool:
        if not old_id and not cur_id:
            return True
        if not old_id or not cur_id:
            return False
        a = self.old_to_cur.setdefault(old_id, cur_id)
        b = self.cur_to_old.setdefault(cur_id, old_id)
        return a == cur_id and b == old_id


def _range_within(old: RegState, cur: RegState) -> bool:
    o, c = old.scalar, cur.scalar
    return (o.umin <= c.umin and c.umax <= o.umax and o.smin <= c.smin and c.smax <= o.smax
            and o.u32_min <= c.u32_min and c.u32_max <= o.u32_max
            and o.s32_min <= c.s32_min and c.s32_max <= o.s32_max)


def _regs_exact(old: RegState, cur: RegState, idmap: _IdMap) -> bool:
    return (old.type == cur.type and old.off == cur.off and old.scalar == cur.scalar
            and old.map is cur.map and old.range == cur.range and old.frameno == cur.frameno
            and old.btf_id == cur.btf_id  # PTR_TO_BTF_ID: which struct, of which BTF
            and (base_type(old.type) != RegType.PTR_TO_BTF_ID or _same_btf(old, cur))
            and idmap.check(old.id, cur.id) and idmap.check(old.ref_obj_id, cur.ref_obj_id))


def _same_btf(old: RegState, cur: RegState) -> bool:
    """Both point into the same BTF (the kernel's, or one program's: reg->btf)."""
    from .alloc import reg_btf

    return reg_btf(old) is reg_btf(cur)


def regsafe(old: RegState, cur: RegState, idmap: _IdMap, exact: bool,
            explore_alu_limits: bool = False, track_precision: bool = False) -> bool:
    """Is ``cur`` as safe as the explored ``old``? ``explore_alu_limits``: an
    unprivileged program masked a variable pointer offset somewhere, so scalars
    must match exactly (a looser one could need another mask)."""
    if old.type == RegType.NOT_INIT:
        return not exact or cur.type == RegType.NOT_INIT
    if cur.type == RegType.NOT_INIT:
        return False
    if exact:
        return _regs_exact(old, cur, idmap)
    if old.type != cur.type:
        return False
    t = base_type(old.type)
    if t == RegType.SCALAR_VALUE:
        if explore_alu_limits:
            return (old.scalar == cur.scalar and old.off == cur.off
                    and (not old.id or idmap.check(old.id, cur.id)))
        if track_precision and not old.precise:
            return True  # no path from old relied on this value
        if (old.id & BPF_ADD_CONST) != (cur.id & BPF_ADD_CONST):
            return False
        if old.id & BPF_ADD_CONST and old.off != cur.off:
            return False
        return (_range_within(old, cur) and tnum_in(old.scalar.var_off, cur.scalar.var_off)
                and (not old.id or idmap.check(old.id, cur.id)))
    if t in (RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MEM,
             RegType.PTR_TO_BUF, RegType.PTR_TO_TP_BUFFER):
        return (old.map is cur.map and old.off == cur.off and old.mem_size == cur.mem_size
                and _range_within(old, cur) and tnum_in(old.scalar.var_off, cur.scalar.var_off)
                and (not old.type & PTR_MAYBE_NULL or idmap.check(old.id, cur.id))
                and idmap.check(old.ref_obj_id, cur.ref_obj_id)
                # the memcmp covers a slice's dynptr_id (kept in ``extra``)
                and (t != RegType.PTR_TO_MEM or old.extra == cur.extra))
    if t in (RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET):
        if old.range < 0 or cur.range < 0:
            if old.range != cur.range:
                return False
        elif old.range > cur.range:
            return False
        return (old.off == cur.off and idmap.check(old.id, cur.id) and _range_within(old, cur)
                and tnum_in(old.scalar.var_off, cur.scalar.var_off))
    if t == RegType.PTR_TO_STACK:
        return old.frameno == cur.frameno and old.off == cur.off and old.scalar == cur.scalar
    return _regs_exact(old, cur, idmap)


def stacksafe(old: FuncState, cur: FuncState, idmap: _IdMap, exact: bool,
              allow_uninit_stack: bool, explore_alu_limits: bool = False,
              track_precision: bool = False) -> bool:
    for spi, oslot in enumerate(old.stack):
        cslot = cur.stack[spi] if spi < len(cur.stack) else None
        for b in range(BPF_REG_SIZE):
            ot = oslot.slot_type[b]
            if exact:
                if cslot is None or cslot.slot_type[b] != ot:
                    return False
                continue
            if ot == SlotType.INVALID:
                continue
            if allow_uninit_stack and ot == SlotType.MISC:
                continue
            if cslot is None:
                return False
            ct = cslot.slot_type[b]
            if ot == SlotType.MISC and ct == SlotType.ZERO:
                continue
            if ot != ct:
                return False
        if oslot.slot_type[0] == SlotType.ITER:
            from .iters import iter_slots_equal

            if cslot is None or not iter_slots_equal(oslot.spilled, cslot.spilled, idmap):
                return False
            continue
        if oslot.slot_type[0] == SlotType.DYNPTR:
            from .dynptr import dynptr_slots_equal

            if cslot is None or not dynptr_slots_equal(oslot.spilled, cslot.spilled, idmap):
                return False
            continue
        if oslot.is_spill and oslot.spilled is not None:
            if cslot is None or cslot.spilled is None:
                return False
            if not regsafe(oslot.spilled, cslot.spilled, idmap, exact, explore_alu_limits,
                           track_precision):
                return False
    return True


def func_states_equal(v: Verifier, old: FuncState, cur: FuncState, insn_idx: int,
                      idmap: _IdMap, exact: bool, range_within: bool = False) -> bool:
    """Only registers live at ``insn_idx`` matter (insn_aux.live_regs_before)."""
    if old.callsite != cur.callsite:
        return False
    live = v.live_regs_before[insn_idx] if v.live_regs_before else 0xFFFF
    alu = v.explore_alu_limits
    prec = v.bpf_capable and not range_within  # unprivileged: every scalar is precise
    for i, (o, c) in enumerate(zip(old.regs, cur.regs, strict=True)):
        if live >> i & 1 and not regsafe(o, c, idmap, exact, alu, prec):
            return False
    return stacksafe(old, cur, idmap, exact, v.allow_uninit_stack, alu, prec)


def states_equal(v: Verifier, old: VerifierState, cur: VerifierState, exact: bool,
                 range_within: bool = False) -> bool:
    """``range_within`` (the kernel's RANGE_WITHIN, for states whose precision
    marks may still grow: loop checkpoints still on the path) compares every
    scalar's range, precise or not."""
    if old.curframe != cur.curframe:
        return False
    # A state from speculative simulation never prunes a real one (the reverse is fine).
    if old.speculative and not cur.speculative:
        return False
    if old.active_locks != cur.active_locks or len(old.refs) != len(cur.refs):
        return False
    if old.active_rcu_lock != cur.active_rcu_lock:
        return False
    idmap = _IdMap()
    if not idmap.check(old.active_lock_id, cur.active_lock_id) or \
            old.active_lock_ptr is not cur.active_lock_ptr:
        return False
    for (oid, _, _), (cid, _, _) in zip(old.refs, cur.refs, strict=True):
        if not idmap.check(oid, cid):
            return False
    return all(func_states_equal(v, old.frames[i], cur.frames[i], frame_insn_idx(old, i),
                                 idmap, exact, range_within)
               for i in range(old.curframe + 1))
