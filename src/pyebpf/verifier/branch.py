"""Conditional jumps: ``check_cond_jmp_op``.

Each jump either has a known outcome (``is_branch_taken``: follow one side
only) or forks: the jump target's state is pushed for later and both states
are refined by what the comparison proves (scalar bounds through
:func:`.scalar.reg_set_min_max`, NULL checks of ``_or_null`` pointers, and
packet ranges from comparisons with ``data_end``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..isa.insn import Insn
from ..uapi import MapType
from . import scalar as S
from .cfg import map_btf_field
from .precision import mark_chain_precision
from .state import AT_PKT_END, BEYOND_PKT_END, MAX_PACKET_OFF, SRC_OP, RegState, VerifierState
from .types import PTR_MAYBE_NULL, RegType, base_type

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["check_cond_jmp_op"]

JEQ, JGT, JGE, JSET, JNE, JLT, JLE = 0x10, 0x20, 0x30, 0x40, 0x50, 0xA0, 0xB0
JCOND = 0xE0
_NOT_NULL_TYPES = {RegType.PTR_TO_SOCKET, RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_MAP_VALUE,
                   RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_MEM,
                   RegType.CONST_PTR_TO_MAP}
_PKT_ANY = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET_END)


def reg_not_null(r: RegState) -> bool:
    if r.type & PTR_MAYBE_NULL:
        return False
    return base_type(r.type) in _NOT_NULL_TYPES


def is_branch_taken(r1: RegState, r2: RegState, opcode: int, is_jmp32: bool) -> int:
    if r1.type in _PKT_ANY and r2.type in _PKT_ANY and not is_jmp32:
        return _is_pkt_ptr_branch_taken(r1, r2, opcode)
    if r1.is_pointer or r2.is_pointer:
        if not (r2.type == RegType.SCALAR_VALUE and S.is_reg_const(r2.scalar, is_jmp32)):
            opcode = S.flip_opcode(opcode)
            r1, r2 = r2, r1
        if not (r2.type == RegType.SCALAR_VALUE and S.is_reg_const(r2.scalar, is_jmp32)):
            return -1
        if not reg_not_null(r1):
            return -1
        if S.reg_const_value(r2.scalar, is_jmp32) != 0:
            return -1
        return {JEQ: 0, JNE: 1}.get(opcode, -1)
    return S.is_scalar_branch_taken(r1.scalar, r2.scalar, opcode, is_jmp32)


def _is_pkt_ptr_branch_taken(dst: RegState, src: RegState, opcode: int) -> int:
    if src.type == RegType.PTR_TO_PACKET_END:
        pkt = dst
    elif dst.type == RegType.PTR_TO_PACKET_END:
        pkt = src
        opcode = S.flip_opcode(opcode)
    else:
        return -1
    if pkt.range >= 0:
        return -1
    if opcode == JLE:
        if pkt.range == BEYOND_PKT_END:
            return 0  # pkt has at least one extra byte beyond pkt_end
        return -1
    if opcode == JGT:
        if pkt.range == BEYOND_PKT_END:
            return 1
        return -1
    if opcode == JLT:
        if pkt.range == BEYOND_PKT_END or pkt.range == AT_PKT_END:
            return 0
        return -1
    if opcode == JGE:
        if pkt.range == BEYOND_PKT_END or pkt.range == AT_PKT_END:
            return 1
        return -1
    return -1


def check_cond_jmp_op(v: Verifier, insn: Insn, idx: int) -> None:
    op = insn.code & 0xF0
    is_jmp32 = insn.code & 0x07 == 0x06
    if op == JCOND:
        _check_may_goto(v, insn, idx)
        return
    if op == 0x00 or op > JCOND:
        v.fail(errno.EINVAL, f"invalid BPF_JMP/JMP32 opcode {op:x}")
    regs = v.cur.regs
    v.check_reg_arg(insn.dst, SRC_OP)
    dst = regs[insn.dst]
    if insn.code & 0x08:
        if insn.imm:
            v.fail(errno.EINVAL, "BPF_JMP/JMP32 uses reserved fields")
        v.check_reg_arg(insn.src, SRC_OP)
        src = regs[insn.src]
        if not (dst.type in _PKT_ANY and src.type in _PKT_ANY) and v.is_pointer_value(insn.src):
            v.fail(errno.EACCES, f"R{insn.src} pointer comparison prohibited")
    else:
        if insn.src:
            v.fail(errno.EINVAL, "BPF_JMP/JMP32 uses reserved fields")
        src = RegState()
        src.mark_known(insn.imm)
    pred = is_branch_taken(dst, src, op, is_jmp32)
    if pred >= 0:
        # The outcome was decided by the values: they must be precise.
        if dst.type == RegType.SCALAR_VALUE:
            mark_chain_precision(v, insn.dst)
        if insn.code & 0x08 and src.type == RegType.SCALAR_VALUE:
            mark_chain_precision(v, insn.src)
        if not v.bypass_spec_v1:
            # The way not taken is simulated under speculation.
            from .check import push_speculative

            push_speculative(v, idx + 1 if pred == 1 else idx + insn.off + 1, idx, insn)
        if v.log.level:
            v.print_insn_state(idx)
        v.insn_idx += insn.off + 1 if pred == 1 else 1
        return
    linked = _linked_regs(v.cur, dst, src if insn.code & 0x08 else None)
    if linked:
        v.set_hist(linked=linked)  # before the push: both branches share the entry
    other = v.push_stack(idx + insn.off + 1, idx)
    oregs = other.regs
    if insn.code & 0x08:
        _reg_set_min_max(oregs[insn.dst], oregs[insn.src], dst, src, op, is_jmp32,
                         insn.dst == insn.src)
        if src.type == RegType.SCALAR_VALUE and src.id:
            _sync_linked_regs(v.cur, src)
            _sync_linked_regs(other, oregs[insn.src])
    else:
        fake_other = src.copy()
        _reg_set_min_max(oregs[insn.dst], fake_other, dst, src, op, is_jmp32, False)
    if dst.type == RegType.SCALAR_VALUE and dst.id:
        _sync_linked_regs(v.cur, dst)
        _sync_linked_regs(other, oregs[insn.dst])
    if (not is_jmp32 and insn.code & 0x08 and src.is_pointer and dst.is_pointer
            and bool(src.type & PTR_MAYBE_NULL) != bool(dst.type & PTR_MAYBE_NULL)
            and base_type(src.type) != RegType.PTR_TO_BTF_ID
            and base_type(dst.type) != RegType.PTR_TO_BTF_ID):
        eq_branch = other if op == JEQ else (v.cur if op == JNE else None)
        if eq_branch is not None:
            nullable = insn.dst if dst.type & PTR_MAYBE_NULL else insn.src
            _mark_ptr_not_null_reg(eq_branch.regs[nullable])
    if (not is_jmp32 and not insn.code & 0x08 and insn.imm == 0 and op in (JEQ, JNE)
            and dst.type & PTR_MAYBE_NULL):
        _mark_ptr_or_null_regs(v, v.cur, insn.dst, op == JNE)
        _mark_ptr_or_null_regs(v, other, insn.dst, op == JEQ)
    elif not _try_match_pkt_pointers(insn, dst, regs[insn.src], v.cur, other) \
            and v.is_pointer_value(insn.dst):
        v.fail(errno.EACCES, f"R{insn.dst} pointer comparison prohibited")
    if v.log.level:
        v.print_insn_state(idx)
    v.insn_idx += 1


def _check_may_goto(v: Verifier, insn: Insn, idx: int) -> None:
    if insn.code != 0xE5 or insn.src or insn.dst or insn.imm:
        v.fail(errno.EINVAL, f"invalid may_goto imm {insn.imm}")
    # Both ways are possible: the loop budget may or may not be exhausted.
    other = v.push_stack(idx + insn.off + 1, idx)
    other.may_goto_depth += 1
    v.insn_idx += 1


def _reg_set_min_max(true1: RegState, true2: RegState, false1: RegState, false2: RegState,
                     op: int, is_jmp32: bool, same_reg: bool) -> None:
    """reg_set_min_max: refine both successors' registers (scalars only)."""
    if false1.type != RegType.SCALAR_VALUE or false2.type != RegType.SCALAR_VALUE:
        return
    (t1, t2), (f1, f2) = S.reg_set_min_max(false1.scalar, false2.scalar, op, is_jmp32,
                                           same_reg=same_reg)
    true1.scalar, true2.scalar = t1, t2
    false1.scalar, false2.scalar = f1, f2
    for r in (true1, true2, false1, false2):
        r.scalar, _ = S.reg_bounds_sanity_check(r.scalar, "cond_jmp")


def _linked_regs(st: VerifierState, dst: RegState, src: RegState | None
                 ) -> tuple[tuple[int, int, int], ...]:
    """collect_linked_regs: the scalars sharing an id with a compared register,
    as (frame, 0, regno) and (frame, 1, spi); empty when none is shared."""
    ids = {r.id & ~S.BPF_ADD_CONST for r in (dst, src)
           if r is not None and r.type == RegType.SCALAR_VALUE and r.id}
    if not ids:
        return ()
    out: list[tuple[int, int, int]] = []
    for fr, frame in enumerate(st.frames):
        for n, r in enumerate(frame.regs):
            if r.type == RegType.SCALAR_VALUE and r.id & ~S.BPF_ADD_CONST in ids:
                out.append((fr, 0, n))
        for spi, slot in enumerate(frame.stack):
            r = slot.spilled
            if slot.is_spill and r is not None and r.type == RegType.SCALAR_VALUE \
                    and r.id & ~S.BPF_ADD_CONST in ids:
                out.append((fr, 1, spi))
    return tuple(out) if len(out) > 1 else ()


def _sync_linked_regs(st: VerifierState, known: RegState) -> None:
    """sync_linked_regs: give every scalar linked to ``known`` (same id, maybe at a
    constant delta: BPF_ADD_CONST) the bounds just learned for ``known``."""
    add_const = S.BPF_ADD_CONST
    base = known.id & ~add_const
    for frame in st.frames:
        regs = list(frame.regs) + [s.spilled for s in frame.stack
                                   if s.is_spill and s.spilled is not None]
        for r in regs:
            if r is known or r.type != RegType.SCALAR_VALUE or (r.id & ~add_const) != base:
                continue
            if (not r.id & add_const and not known.id & add_const) or r.off == known.off:
                r.scalar = known.scalar
                r.id = known.id
                r.off = known.off
            else:
                # r = known + (r.off - known.off); r keeps its own id and delta.
                delta = _s32(r.off) - _s32(known.off)
                r.scalar = S.linked_reg_add(known.scalar, delta)


def _s32(x: int) -> int:
    x &= 0xFFFF_FFFF
    return x - (1 << 32) if x >> 31 else x


#: mark_ptr_or_null_reg: what a non-NULL lookup result of these maps points to.
_MAP_LOOKUP_RESULT = {MapType.XSKMAP: RegType.PTR_TO_XDP_SOCK,
                      MapType.SOCKMAP: RegType.PTR_TO_SOCKET,
                      MapType.SOCKHASH: RegType.PTR_TO_SOCKET}


def _mark_ptr_not_null_reg(r: RegState) -> None:
    t = r.type & ~PTR_MAYBE_NULL
    if base_type(r.type) == RegType.PTR_TO_MAP_VALUE and r.map is not None:
        if getattr(r.map, "inner_meta", None) is not None:
            # A map of maps' lookup gives the inner map (its template's shape).
            t = RegType.CONST_PTR_TO_MAP
            r.map = r.map.inner_meta
        elif r.type == RegType.PTR_TO_MAP_VALUE | PTR_MAYBE_NULL:
            t = _MAP_LOOKUP_RESULT.get(r.map.map_type, t)
    r.type = t


def _mark_ptr_or_null_regs(v: Verifier, st: VerifierState, regno: int, is_null: bool) -> None:
    regs = st.regs
    reg = regs[regno]
    rid = reg.id
    ref_obj_id = reg.ref_obj_id
    if ref_obj_id and ref_obj_id == rid and is_null:
        st.refs = [r for r in st.refs if r[0] != rid]
    for frame in st.frames:
        regs_all = list(frame.regs) + [s.spilled for s in frame.stack
                                       if s.is_spill and s.spilled is not None]
        for r in regs_all:
            if not (r.type & PTR_MAYBE_NULL and r.id == rid):
                continue
            if is_null:
                r.mark_known(0)
                continue
            _mark_ptr_not_null_reg(r)
            if map_btf_field(r.map, "bpf_spin_lock") is None:
                r.id = 0  # reg_may_point_to_spin_lock keeps it: unlock must match lock


def _try_match_pkt_pointers(insn: Insn, dst: RegState, src: RegState, this: VerifierState,
                            other: VerifierState) -> bool:
    """try_match_pkt_pointers: ``pkt' <op> pkt_end`` or ``pkt_meta' <op> pkt``.

    The packet start bounds the metadata the way the end bounds the packet,
    as long as it is the start itself (reg_is_init_pkt_pointer: no variable
    part, no id; a range proven earlier doesn't matter).
    """
    if not insn.code & 0x08 or insn.code & 0x07 == 0x06:
        return False
    op = insn.code & 0xF0
    dst_regno = insn.dst
    if dst.type == RegType.PTR_TO_PACKET_END or src.type == RegType.PTR_TO_PACKET_META:
        dst, src = src, dst
        dst_regno = insn.src
        op = S.flip_opcode(op)
    if not ((dst.type == RegType.PTR_TO_PACKET and src.type == RegType.PTR_TO_PACKET_END) or (
            dst.type == RegType.PTR_TO_PACKET_META and src.type == RegType.PTR_TO_PACKET
            and src.off == 0 and src.id == 0 and S.tnum_is_const(src.scalar.var_off)
            and src.scalar.var_off.value == 0)):
        return False
    if op == JGT:
        _find_good_pkt_pointers(this, dst, dst.type, False)
        _mark_pkt_end(other, dst_regno, True)
    elif op == JLT:
        _find_good_pkt_pointers(other, dst, dst.type, True)
        _mark_pkt_end(this, dst_regno, False)
    elif op == JGE:
        _find_good_pkt_pointers(this, dst, dst.type, True)
        _mark_pkt_end(other, dst_regno, False)
    elif op == JLE:
        _find_good_pkt_pointers(other, dst, dst.type, False)
        _mark_pkt_end(this, dst_regno, True)
    else:
        return False
    return True


def _find_good_pkt_pointers(st: VerifierState, dst: RegState, t: int,
                            range_right_open: bool) -> None:
    if dst.off < 0 or (dst.off == 0 and range_right_open):
        return
    if dst.scalar.umax > MAX_PACKET_OFF or dst.scalar.umax + dst.off > MAX_PACKET_OFF:
        return
    new_range = dst.off + (1 if range_right_open else 0)
    for frame in st.frames:
        regs_all = list(frame.regs) + [s.spilled for s in frame.stack
                                       if s.is_spill and s.spilled is not None]
        for r in regs_all:
            if r.type == t and r.id == dst.id:
                r.range = max(r.range, new_range)


def _mark_pkt_end(st: VerifierState, regno: int, range_open: bool) -> None:
    r = st.regs[regno]
    if r.type != RegType.PTR_TO_PACKET:
        return
    r.range = BEYOND_PKT_END if range_open else AT_PKT_END
