"""ALU instructions: ``check_alu_op``, and pointer arithmetic's rules.

Scalars go through :func:`.scalar.adjust_scalar_min_max_vals` (the kernel's
bounds arithmetic); a pointer plus or minus a scalar through
:func:`adjust_ptr_min_max_vals`, which is where most "prohibited" messages
come from.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..isa.insn import Insn
from . import scalar as S
from ._ints import S64_MAX, S64_MIN, U64_MAX
from .precision import mark_chain_precision
from .state import BPF_MAX_VAR_OFF, DST_OP, DST_OP_NO_MARK, MAX_BPF_STACK, SRC_OP, RegState
from .tnum import tnum_add, tnum_is_const, tnum_sub
from .types import PTR_MAYBE_NULL, PTR_UNTRUSTED, RegType, base_type, reg_type_str

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["adjust_ptr_min_max_vals", "check_alu_op"]

BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50
BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH, BPF_END = (
    0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0)
ALU_OP_STR = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=",
              0x60: "<<=", 0x70: ">>=", 0x80: "neg", 0x90: "%=", 0xA0: "^=", 0xB0: "=",
              0xC0: "s>>=", 0xD0: "endian"}
_PTR_ARITH_OK = {RegType.PTR_TO_CTX, RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_KEY,
                 RegType.PTR_TO_STACK, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET,
                 RegType.PTR_TO_TP_BUFFER, RegType.PTR_TO_BTF_ID, RegType.PTR_TO_MEM,
                 RegType.PTR_TO_BUF, RegType.PTR_TO_FUNC, RegType.CONST_PTR_TO_DYNPTR}


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def check_alu_op(v: Verifier, insn: Insn) -> None:
    code = insn.code
    op = code & 0xF0
    is64 = code & 0x07 == 0x07
    src_x = bool(code & 0x08)
    regs = v.cur.regs
    if op in (BPF_END, BPF_NEG):
        if op == BPF_NEG:
            if src_x or insn.src or insn.off or insn.imm:
                v.fail(errno.EINVAL, "BPF_NEG uses reserved fields")
        elif insn.src or insn.off or insn.imm not in (16, 32, 64) or (is64 and src_x):
            v.fail(errno.EINVAL, "BPF_END uses reserved fields")
        v.check_reg_arg(insn.dst, SRC_OP)
        if v.is_pointer_value(insn.dst):
            v.fail(errno.EACCES, f"R{insn.dst} pointer arithmetic prohibited")
        dst = regs[insn.dst]
        if op == BPF_NEG and dst.type == RegType.SCALAR_VALUE:
            v.check_reg_arg(insn.dst, DST_OP_NO_MARK)
            dst.scalar = S.adjust_scalar_min_max_vals(dst.scalar, dst.scalar, BPF_NEG, not is64)
            dst.id = 0
        else:
            v.check_reg_arg(insn.dst, DST_OP)
    elif op == BPF_MOV:
        _check_mov(v, insn, is64, src_x)
    elif op > BPF_END:
        v.fail(errno.EINVAL, f"invalid BPF_ALU opcode {op:x}")
    else:
        if src_x:
            if insn.imm or insn.off not in (0, 1) or (insn.off == 1 and op not in (BPF_MOD,
                                                                                    BPF_DIV)):
                v.fail(errno.EINVAL, "BPF_ALU uses reserved fields")
            v.check_reg_arg(insn.src, SRC_OP)
        elif insn.src or insn.off not in (0, 1) or (insn.off == 1 and op not in (BPF_MOD,
                                                                                  BPF_DIV)):
            v.fail(errno.EINVAL, "BPF_ALU uses reserved fields")
        v.check_reg_arg(insn.dst, SRC_OP)
        if op in (BPF_MOD, BPF_DIV) and not src_x and insn.imm == 0:
            v.fail(errno.EINVAL, "div by zero")
        if op in (BPF_LSH, BPF_RSH, BPF_ARSH) and not src_x:
            size = 64 if is64 else 32
            if insn.imm < 0 or insn.imm >= size:
                v.fail(errno.EINVAL, f"invalid shift {insn.imm}")
        v.check_reg_arg(insn.dst, DST_OP_NO_MARK)
        adjust_reg_min_max_vals(v, insn, is64, src_x)
    dst = regs[insn.dst]
    if dst.type == RegType.SCALAR_VALUE:
        fixed, _ = S.reg_bounds_sanity_check(dst.scalar, "alu")
        dst.scalar = fixed


def _check_mov(v: Verifier, insn: Insn, is64: bool, src_x: bool) -> None:
    regs = v.cur.regs
    if src_x:
        if not is64:
            if insn.off not in (0, 8, 16) or insn.imm:
                v.fail(errno.EINVAL, "BPF_MOV uses reserved fields")
        elif insn.off == 1:  # BPF_ADDR_SPACE_CAST
            if insn.imm not in (1, 1 << 16):
                v.fail(errno.EINVAL, "addr_space_cast insn can only convert between address "
                       "space 1 and 0")
            v.fail(errno.EINVAL, "addr_space_cast insn can only be used in a program that has "
                   "an associated arena")
        elif insn.off not in (0, 8, 16, 32) or insn.imm:
            v.fail(errno.EINVAL, "BPF_MOV uses reserved fields")
        v.check_reg_arg(insn.src, SRC_OP)
    elif insn.src or insn.off:
        v.fail(errno.EINVAL, "BPF_MOV uses reserved fields")
    v.check_reg_arg(insn.dst, DST_OP_NO_MARK)
    dst = regs[insn.dst]
    if not src_x:
        dst.mark_known(insn.imm if is64 else insn.imm & 0xFFFF_FFFF)
        return
    src = regs[insn.src]
    if is64:
        if insn.off == 0:
            assign_scalar_id_before_mov(v, src)
            dst.assign(src)
            dst.subreg_def = 0
            return
        if v.is_pointer_value(insn.src):
            v.fail(errno.EACCES, f"R{insn.src} sign-extension part of pointer")
        if src.type == RegType.SCALAR_VALUE:
            no_sext = src.scalar.umax < (1 << (insn.off - 1))
            if no_sext:
                assign_scalar_id_before_mov(v, src)
            dst.assign(src)
            if not no_sext:
                dst.id = 0
            dst.scalar = S.coerce_reg_to_size_sx(dst.scalar, insn.off >> 3)
            dst.subreg_def = 0
        else:
            dst.mark_unknown()
        return
    # w1 = w2 (zero-extending), or the sign-extending 32-bit forms
    if v.is_pointer_value(insn.src):
        v.fail(errno.EACCES, f"R{insn.src} partial copy of pointer")
    if src.type == RegType.SCALAR_VALUE:
        if insn.off == 0:
            is_u32 = src.scalar.umax <= 0xFFFF_FFFF
            if is_u32:
                assign_scalar_id_before_mov(v, src)
            dst.assign(src)
            if not is_u32:
                dst.id = 0
        else:
            no_sext = src.scalar.umax < (1 << (insn.off - 1))
            if no_sext:
                assign_scalar_id_before_mov(v, src)
            dst.assign(src)
            if not no_sext:
                dst.id = 0
            dst.scalar = S.coerce_subreg_to_size_sx(dst.scalar, insn.off >> 3)
    else:
        dst.mark_unknown()
    dst.scalar = S.reg_bounds_sync(S.zext_32_to_64(dst.scalar))


def assign_scalar_id_before_mov(v: Verifier, src: RegState) -> None:
    """Give a scalar an id before copying it, so the copies stay linked."""
    if src.type == RegType.SCALAR_VALUE and not src.id and not tnum_is_const(src.scalar.var_off):
        src.id = v.new_id()


def adjust_reg_min_max_vals(v: Verifier, insn: Insn, is64: bool, src_x: bool) -> None:
    regs = v.cur.regs
    op = insn.code & 0xF0
    dst = regs[insn.dst]
    ptr = dst if dst.type != RegType.SCALAR_VALUE else None
    if src_x:
        src = regs[insn.src]
        if src.type != RegType.SCALAR_VALUE:
            if dst.type != RegType.SCALAR_VALUE:
                if op == BPF_SUB and v.allow_ptr_leaks:
                    dst.mark_unknown()
                    return
                v.fail(errno.EACCES, f"R{insn.dst} pointer {ALU_OP_STR[op]} pointer prohibited")
            mark_chain_precision(v, insn.dst)  # scalar += pointer: the offset matters
            adjust_ptr_min_max_vals(v, insn, src, dst, is64)
            return
        if ptr is not None:
            mark_chain_precision(v, insn.src)  # pointer += scalar
            adjust_ptr_min_max_vals(v, insn, ptr, src, is64)
            return
        if dst.precise:
            mark_chain_precision(v, insn.src)
        src_scalar = src.scalar
    else:
        off = RegState()
        off.mark_known(insn.imm)
        if ptr is not None:
            adjust_ptr_min_max_vals(v, insn, ptr, off, is64)
            return
        src_scalar = off.scalar
    if op in (BPF_ADD, BPF_SUB) and not _can_skip_alu_sanitation(v, insn):
        # sanitize_val_alu: this insn must not also do masked pointer arithmetic.
        reason = _update_alu_sanitation_state(v, BPF_ALU_NON_POINTER, 0)
        if reason:
            _sanitize_err(v, insn, reason, None, dst)
    dst.scalar = S.adjust_scalar_min_max_vals(dst.scalar, src_scalar, op, not is64)
    # `r1 = r2; r1 += K`: r1 stays linked to r2 at a known delta (BPF_ADD_CONST),
    # so a later bound learned for r2 also bounds r1 (sync_linked_regs).
    if v.bpf_capable and op == BPF_ADD and is64 and dst.id and tnum_is_const(src_scalar.var_off):
        val = src_scalar.var_off.value
        if dst.id & S.BPF_ADD_CONST or val > 0x7FFF_FFFF:
            dst.off = 0  # a second delta can't be accumulated
            dst.id = 0
        else:
            dst.id |= S.BPF_ADD_CONST
            dst.off = val
    else:
        dst.id = 0
        dst.off = 0


def check_reg_sane_offset(reg: RegState, t: int) -> str | None:
    """check_reg_sane_offset: why the offset makes the pointer insane, or None."""
    s = reg.scalar
    known = tnum_is_const(s.var_off)
    val = S.s64(s.var_off.value)
    name = reg_type_str(t)
    if known and (val >= BPF_MAX_VAR_OFF or val <= -BPF_MAX_VAR_OFF):
        return f"math between {name} pointer and {val} is not allowed"
    if reg.off >= BPF_MAX_VAR_OFF or reg.off <= -BPF_MAX_VAR_OFF:
        return f"{name} pointer offset {reg.off} is not allowed"
    if s.smin == S64_MIN:
        return (f"math between {name} pointer and register with unbounded min value is not "
                "allowed")
    if s.smin >= BPF_MAX_VAR_OFF or s.smin <= -BPF_MAX_VAR_OFF:
        return f"value {s.smin} makes {name} pointer be out of bounds"
    return None


def _insane(v: Verifier, reg: RegState, t: int) -> None:
    """adjust_ptr_min_max_vals answers a failed check_reg_sane_offset with -EINVAL."""
    reason = check_reg_sane_offset(reg, t)
    if reason is not None:
        v.fail(errno.EINVAL, reason)


def adjust_ptr_min_max_vals(v: Verifier, insn: Insn, ptr: RegState, off: RegState,
                            is64: bool) -> None:
    """Pointer arithmetic: ``dst = ptr <op> off`` (dst is insn.dst, maybe ``off``)."""
    regs = v.cur.regs
    dno = insn.dst
    dst = regs[dno]
    op = insn.code & 0xF0
    o = off.scalar
    p = ptr.scalar
    known = tnum_is_const(o.var_off)
    smin_val, smax_val, umin_val, umax_val = o.smin, o.smax, o.umin, o.umax
    if (known and (smin_val != smax_val or umin_val != umax_val)) or smin_val > smax_val \
            or umin_val > umax_val:
        dst.mark_unknown()
        return
    if not is64:
        if op == BPF_SUB and v.allow_ptr_leaks:
            dst.mark_unknown()
            return
        v.fail(errno.EACCES, f"R{dno} 32-bit pointer arithmetic prohibited")
    if ptr.type & PTR_MAYBE_NULL:
        v.fail(errno.EACCES, f"R{dno} pointer arithmetic on {reg_type_str(ptr.type)} "
               "prohibited, null-check it first")
    base = base_type(ptr.type)
    if base == RegType.PTR_TO_MEM and ptr.type & PTR_UNTRUSTED:
        return  # its loads are probes: the kernel doesn't track its offset (dst unchanged)
    if base not in _PTR_ARITH_OK:
        # Flow keys take any known offset; a map pointer only "+= 0".
        ok = known and (base == RegType.PTR_TO_FLOW_KEYS or (
            base == RegType.CONST_PTR_TO_MAP and smin_val == 0 and op == BPF_ADD))
        if not ok:
            v.fail(errno.EACCES, f"R{dno} pointer arithmetic on {reg_type_str(ptr.type)} "
                   "prohibited")
    t = ptr.type
    _insane(v, off, t)
    _insane(v, ptr, t)
    info = _SanitizeInfo()
    if op in (BPF_ADD, BPF_SUB):
        reason = _sanitize_ptr_alu(v, insn, ptr, off, ptr is dst, info, commit=False)
        if reason:
            _sanitize_err(v, insn, reason, off, dst)
    new = ptr.copy()
    new.type = t
    if op == BPF_ADD:
        if known and ptr.off + smin_val == _s32(ptr.off + smin_val):
            new.off = ptr.off + smin_val
            new.scalar = _ptr32_unbounded(p)
        else:
            smin, smax = p.smin + smin_val, p.smax + smax_val
            if not (S64_MIN <= smin <= S64_MAX and S64_MIN <= smax <= S64_MAX):
                smin, smax = S64_MIN, S64_MAX
            umin, umax = p.umin + umin_val, p.umax + umax_val
            if umin > U64_MAX or umax > U64_MAX:
                umin, umax = 0, U64_MAX
            new.scalar = _ptr_bounds(tnum_add(p.var_off, o.var_off), smin, smax, umin, umax)
            if base in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
                new.id = v.new_id()
                new.range = 0
    elif op == BPF_SUB:
        if dst is off:
            v.fail(errno.EACCES, f"R{dno} tried to subtract pointer from scalar")
        if ptr.type == RegType.PTR_TO_STACK:
            v.fail(errno.EACCES, f"R{dno} subtraction from stack pointer prohibited")
        if known and ptr.off - smin_val == _s32(ptr.off - smin_val):
            new.off = ptr.off - smin_val
            new.scalar = _ptr32_unbounded(p)
        else:
            smin, smax = p.smin - smax_val, p.smax - smin_val
            if not (S64_MIN <= smin <= S64_MAX and S64_MIN <= smax <= S64_MAX):
                smin, smax = S64_MIN, S64_MAX
            if p.umin < umax_val:
                umin, umax = 0, U64_MAX
            else:
                umin, umax = p.umin - umax_val, p.umax - umin_val
            new.scalar = _ptr_bounds(tnum_sub(p.var_off, o.var_off), smin, smax, umin, umax)
            if base in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
                new.id = v.new_id()
                if smin_val < 0:
                    new.range = 0
    elif op in (BPF_AND, BPF_OR, BPF_XOR):
        v.fail(errno.EACCES, f"R{dno} bitwise operator {ALU_OP_STR[op]} on pointer prohibited")
    else:
        v.fail(errno.EACCES, f"R{dno} pointer arithmetic with {ALU_OP_STR[op]} operator "
               "prohibited")
    _insane(v, new, t)
    new.scalar = S.reg_bounds_sync(new.scalar)
    off_was_dst = off is dst
    dst.assign(new)
    if not v.bypass_spec_v1:
        _sanitize_check_bounds(v, dno, dst)
    if op in (BPF_ADD, BPF_SUB):
        reason = _sanitize_ptr_alu(v, insn, dst, off, True, info, commit=True)
        if reason:
            _sanitize_err(v, insn, reason, dst if off_was_dst else off, dst)


def _ptr32_unbounded(s: S.Scalar) -> S.Scalar:
    """A pointer's variable part keeps its 64-bit bounds; 32-bit ones are unbounded."""
    return S.Scalar(s.var_off, s.smin, s.smax, s.umin, s.umax, -(1 << 31), (1 << 31) - 1, 0,
                    0xFFFF_FFFF)


def _ptr_bounds(var_off: S.Tnum, smin: int, smax: int, umin: int, umax: int) -> S.Scalar:
    return S.Scalar(var_off, smin, smax, umin, umax, -(1 << 31), (1 << 31) - 1, 0, 0xFFFF_FFFF)


def _sanitize_check_bounds(v: Verifier, dno: int, dst: RegState) -> None:
    """For unprivileged programs the result must stay in bounds (no speculation)."""
    from .mem import check_map_access, check_stack_access_for_ptr_arithmetic

    if dst.type == RegType.PTR_TO_STACK:
        check_stack_access_for_ptr_arithmetic(v, dno, dst, dst.off + dst.scalar.var_off.value)
    elif dst.type == RegType.PTR_TO_MAP_VALUE:
        from .log import VerifierAbort

        try:
            # The kernel logs why (check_map_access's own lines), then refuses.
            check_map_access(v, dno, dst.off, 1, False, helper=True)
        except VerifierAbort:
            v.fail(errno.EACCES, f"R{dno} pointer arithmetic of map value goes out of range, "
                   "prohibited for !root")


# -- Spectre v1: masking of pointer arithmetic (sanitize_ptr_alu & co) ------------------------
#: insn_aux_data.alu_state bits.
BPF_ALU_SANITIZE_SRC = 1 << 0
BPF_ALU_SANITIZE_DST = 1 << 1
BPF_ALU_NEG_VALUE = 1 << 2
BPF_ALU_NON_POINTER = 1 << 3
BPF_ALU_IMMEDIATE = 1 << 4
#: Why sanitation refused an operation (the kernel's REASON_*).
REASON_BOUNDS, REASON_TYPE, REASON_PATHS, REASON_LIMIT = 1, 2, 3, 4
_U32 = 0xFFFF_FFFF


class _SanitizeInfo:
    """struct bpf_sanitize_info: the first phase's state and masking direction."""

    __slots__ = ("alu_limit", "alu_state", "mask_to_left")

    def __init__(self) -> None:
        self.alu_state = 0
        self.alu_limit = 0
        self.mask_to_left = False


def _can_skip_alu_sanitation(v: Verifier, insn: Insn) -> bool:
    """Privileged programs, and immediates (rewritten, never masked), need no masking."""
    return v.bypass_spec_v1 or not insn.code & 0x08


def _retrieve_ptr_limit(ptr: RegState, mask_to_left: bool) -> tuple[int, int]:
    """retrieve_ptr_limit: (reason, limit) of the masking window from the pointer's
    position to the end of its object (or its start, masking to the left)."""
    if ptr.type == RegType.PTR_TO_STACK:
        # Offset 0 is out of bounds but a fine start leftwards (see the frame pointer).
        limit_max = MAX_BPF_STACK + mask_to_left
        limit = -(ptr.scalar.var_off.value + ptr.off) & _U32
    elif ptr.type == RegType.PTR_TO_MAP_VALUE:
        limit_max = ptr.map.value_size
        s = ptr.scalar
        limit = ((s.smin if mask_to_left else s.umax) + ptr.off) & _U32
    else:
        return REASON_TYPE, 0
    if limit >= limit_max:
        return REASON_LIMIT, 0
    return 0, limit


def _update_alu_sanitation_state(v: Verifier, alu_state: int, alu_limit: int) -> int:
    """One insn masks one way: reached again needing another mask, it is refused."""
    idx = v.insn_idx
    prev = v.alu_sanitation.get(idx)
    if prev is not None and prev[0] and prev != (alu_state, alu_limit):
        return REASON_PATHS
    v.alu_sanitation[idx] = (alu_state, alu_limit)
    return 0


def _sanitize_ptr_alu(v: Verifier, insn: Insn, ptr: RegState, off: RegState, ptr_is_dst: bool,
                      info: _SanitizeInfo, commit: bool) -> int:
    """sanitize_ptr_alu: record how the JIT must mask ``ptr +/- off`` under speculation.

    Called before the operation (``commit`` False: the window from the old
    pointer) and after it (``commit`` True: the window narrowed by where the
    pointer moved, stored per instruction). Paths needing different masks
    for one instruction are refused. A variable offset the mask may truncate
    to 0 is simulated: the next instruction is also checked, speculatively,
    with the pointer unmoved.
    """
    if _can_skip_alu_sanitation(v, insn) or v.insn_idx in v.nospec:
        return 0
    o = off.scalar
    off_is_imm = tnum_is_const(o.var_off)
    if v.cur.speculative:
        # Masks were recorded on the real paths; only explore bad accesses here.
        if not commit and not off_is_imm:
            _simulate_truncated_offset(v, insn, ptr, ptr_is_dst)
        return 0
    off_is_neg = o.smin < 0
    op = insn.code & 0xF0
    if not commit:
        if not off_is_imm and (o.smin < 0) != (o.smax < 0):
            return REASON_BOUNDS
        info.mask_to_left = (op == BPF_ADD and off_is_neg) or (op == BPF_SUB and not off_is_neg)
    reason, limit = _retrieve_ptr_limit(ptr, info.mask_to_left)
    if reason:
        return reason
    if commit:
        diff = (info.alu_limit - limit) & _U32
        return _update_alu_sanitation_state(v, info.alu_state,
                                            (1 << 32) - diff if diff >> 31 else diff)
    info.alu_state = ((BPF_ALU_NEG_VALUE if off_is_neg else 0)
                      | (BPF_ALU_IMMEDIATE if off_is_imm else 0)
                      | (BPF_ALU_SANITIZE_SRC if ptr_is_dst else BPF_ALU_SANITIZE_DST))
    info.alu_limit = limit
    if not off_is_imm:
        v.explore_alu_limits = True
        _simulate_truncated_offset(v, insn, ptr, ptr_is_dst)
    return 0


def _simulate_truncated_offset(v: Verifier, insn: Insn, ptr: RegState, ptr_is_dst: bool) -> None:
    """sanitize_ptr_alu's do_sim: push insn+1 as a speculative path where the
    destination is still the unmoved pointer (the masked offset became 0)."""
    from .check import push_speculative

    dst = v.cur.regs[insn.dst]
    saved = None if ptr_is_dst else dst.copy()
    if saved is not None:
        dst.assign(ptr)
    push_speculative(v, v.insn_idx + 1, v.insn_idx, None)
    if saved is not None:
        dst.assign(saved)


def _sanitize_err(v: Verifier, insn: Insn, reason: int, off: RegState | None,
                  dst: RegState) -> None:
    """sanitize_err: the kernel's words for each reason."""
    err = "pointer arithmetic with it prohibited for !root"
    op = "add" if insn.code & 0xF0 == BPF_ADD else "sub"
    d, s = insn.dst, insn.src
    if reason == REASON_BOUNDS:
        msg = f"R{d if off is dst else s} has unknown scalar with mixed signed bounds, {err}"
    elif reason == REASON_TYPE:
        msg = f"R{s if off is dst else d} has pointer with unsupported alu operation, {err}"
    elif reason == REASON_PATHS:
        msg = f"R{d} tried to {op} from different maps, paths or scalars, {err}"
    else:
        msg = f"R{d} tried to {op} beyond pointer bounds, {err}"
    v.fail(errno.EACCES, msg)
