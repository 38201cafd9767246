"""Precision tracking: which scalars' exact values a path's safety relied on.

A privileged program's scalars start *imprecise*: an explored state whose
scalar was never used in a way that matters (as a pointer offset, a helper's
size, a branch decided by its value, a return code...) prunes states with any
value there. When a value matters, :func:`mark_chain_precision` walks the
instructions back (``backtrack_insn``) to find the registers and spilled stack
slots it came from and marks them precise in every earlier checkpoint state,
as kernel/bpf/verifier.c ``__mark_chain_precision`` does. Each state keeps
the instructions it ran since its checkpoint (``hist``, a chain shared by
copies: index, frame, stack access, linked registers of a conditional jump).

Where the kernel's backtracking crosses call frames or gives up (LD_ABS, a
call with arguments still wanted...), this falls back to what the kernel
falls back to: every scalar of the chain becomes precise (always sound).
Unprivileged programs treat every scalar as precise (no tracking).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .state import VerifierState
from .types import RegType

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["mark_all_scalars_imprecise", "mark_chain_precision", "propagate_precision"]

#: hist entry flag: the instruction spilled or filled stack slot ``spi`` of ``frame``.
STACK_ACCESS = 1 << 16


def stack_access_flags(frameno: int, spi: int) -> int:
    return STACK_ACCESS | frameno << 8 | spi


class _Unsupported(Exception):
    """Backtracking can't follow this: fall back to all scalars precise."""


class _Bt:
    """backtrack_state: registers and stack slots (per frame) still wanted."""

    __slots__ = ("regs", "slots")

    def __init__(self) -> None:
        self.regs: dict[int, int] = {}
        self.slots: dict[int, int] = {}

    def empty(self) -> bool:
        return not any(self.regs.values()) and not any(self.slots.values())

    def has_reg(self, fr: int, r: int) -> bool:
        return bool(self.regs.get(fr, 0) >> r & 1)

    def set_reg(self, fr: int, r: int) -> None:
        self.regs[fr] = self.regs.get(fr, 0) | 1 << r

    def clear_reg(self, fr: int, r: int) -> None:
        self.regs[fr] = self.regs.get(fr, 0) & ~(1 << r)

    def has_slot(self, fr: int, spi: int) -> bool:
        return bool(self.slots.get(fr, 0) >> spi & 1)


def _backtrack_insn(v: Verifier, entry: tuple[Any, ...], bt: _Bt) -> None:
    """backtrack_insn: from what is wanted after the instruction, what is wanted before.

    ``entry``: (older entry, insn index, frame, stack access flags, linked registers)."""
    _, idx, fr, flags, linked = entry
    insn = v.insns[idx]
    code = insn.code
    cls = code & 0x07
    dreg, sreg = insn.dst, insn.src
    if linked:
        _sync_linked(bt, linked)
    if cls in (0x04, 0x07):  # ALU
        if not bt.has_reg(fr, dreg):
            return
        op = code & 0xF0
        if op in (0xD0, 0x80):  # end, neg
            return
        if op == 0xB0:  # mov
            bt.clear_reg(fr, dreg)
            if code & 0x08 and sreg != 10:
                bt.set_reg(fr, sreg)
        elif code & 0x08 and sreg != 10:
            bt.set_reg(fr, sreg)
    elif cls == 0x01:  # LDX
        if not bt.has_reg(fr, dreg):
            return
        bt.clear_reg(fr, dreg)
        if not flags & STACK_ACCESS:
            return  # loaded from memory: nothing before it decides the value
        sfr, spi = flags >> 8 & 0xFF, flags & 0xFF
        bt.slots[sfr] = bt.slots.get(sfr, 0) | 1 << spi
    elif cls in (0x02, 0x03):  # ST, STX
        if bt.has_reg(fr, dreg):
            raise _Unsupported  # a scalar used as a store's base
        if not flags & STACK_ACCESS:
            return
        sfr, spi = flags >> 8 & 0xFF, flags & 0xFF
        if not bt.has_slot(sfr, spi):
            return
        bt.slots[sfr] &= ~(1 << spi)
        if cls == 0x02:
            return
        bt.set_reg(fr, sreg)
    elif cls == 0x00:  # LD_IMM64, LD_ABS/IND
        if not bt.has_reg(fr, dreg if code == 0x18 else 0):
            return
        if code != 0x18:
            raise _Unsupported
        bt.clear_reg(fr, dreg)
    else:  # JMP / JMP32
        op = code & 0xF0
        if op == 0x80:
            if insn.src == 1:
                raise _Unsupported  # a BPF-to-BPF call: other frames
            bt.clear_reg(fr, 0)
            if bt.regs.get(fr, 0) & 0x3E:
                raise _Unsupported  # an argument wanted past the call
        elif op == 0x90:
            raise _Unsupported
        elif op != 0x00 and code & 0x08 and (bt.has_reg(fr, dreg) or bt.has_reg(fr, sreg)):
            bt.set_reg(fr, dreg)  # dreg <cond> sreg: both decided the branch
            bt.set_reg(fr, sreg)
    if linked:
        _sync_linked(bt, linked)


def _sync_linked(bt: _Bt, linked: tuple[tuple[int, int, int], ...]) -> None:
    """bt_sync_linked_regs: registers (kind 0) and spilled slots (kind 1) a
    branch bounded together are wanted together."""
    if any(bt.has_slot(fr, n) if kind else bt.has_reg(fr, n) for fr, kind, n in linked):
        for fr, kind, n in linked:
            if kind:
                bt.slots[fr] = bt.slots.get(fr, 0) | 1 << n
            else:
                bt.set_reg(fr, n)


def _mark_in_state(st: VerifierState, bt: _Bt) -> bool:
    """At a checkpoint: mark what's wanted precise; stop wanting what already is
    (or isn't a scalar). True if anything changed."""
    changed = False
    for fr, mask in list(bt.regs.items()):
        if fr > st.curframe:
            raise _Unsupported
        regs = st.frames[fr].regs
        for r in range(11):
            if not mask >> r & 1:
                continue
            reg = regs[r]
            if reg.type != RegType.SCALAR_VALUE or reg.precise:
                bt.clear_reg(fr, r)
            else:
                reg.precise = True
                changed = True
    for fr, mask in list(bt.slots.items()):
        if fr > st.curframe:
            raise _Unsupported
        stack = st.frames[fr].stack
        for spi in range(len(stack)):
            if not mask >> spi & 1:
                continue
            slot = stack[spi]
            sp = slot.spilled
            if not slot.is_spill or sp is None or sp.type != RegType.SCALAR_VALUE or sp.precise:
                bt.slots[fr] &= ~(1 << spi)
            else:
                sp.precise = True
                changed = True
        if mask >> len(stack):
            bt.slots[fr] &= (1 << len(stack)) - 1
    return changed


def _backtrack(v: Verifier, start: VerifierState, bt: _Bt) -> None:
    st: VerifierState | None = start
    prev_frame = start.curframe
    insns = v.insns
    regs = bt.regs
    while st is not None:
        entry = st.hist
        while entry is not None:
            _, idx, fr, flags, linked = entry
            if fr != prev_frame:
                raise _Unsupported  # crossed a call or a return
            insn = insns[idx]
            code = insn.code
            cls = code & 0x07
            wanted = regs.get(fr, 0)
            # Fast paths: an ALU op or load into a register nobody wants, and a
            # conditional jump on such registers, change nothing.
            if cls in (0x05, 0x06):
                op = code & 0xF0
                skip = op not in (0x80, 0x90) and not linked and (
                    not code & 0x08 or not (wanted >> insn.dst & 1 or wanted >> insn.src & 1))
            else:
                skip = (not linked and not flags and cls in (0x01, 0x04, 0x07)
                        and not wanted >> insn.dst & 1)
            if not skip:
                _backtrack_insn(v, entry, bt)
                if bt.empty():
                    return
            entry = entry[0]
        st = st.parent
        if st is None:
            break
        if st.curframe != prev_frame:
            raise _Unsupported
        _mark_in_state(st, bt)
        if bt.empty():
            return
    if not bt.empty():
        raise _Unsupported  # wanted something the walk never produced: be safe


def mark_all_scalars_precise(start: VerifierState) -> None:
    """The fallback: every scalar in ``start`` and its checkpoints is precise."""
    st: VerifierState | None = start
    while st is not None:
        for f in st.frames:
            for r in f.regs:
                if r.type == RegType.SCALAR_VALUE:
                    r.precise = True
            for slot in f.stack:
                if slot.is_spill and slot.spilled is not None and \
                        slot.spilled.type == RegType.SCALAR_VALUE:
                    slot.spilled.precise = True
        st = st.parent


def mark_all_scalars_imprecise(st: VerifierState) -> None:
    """A new checkpoint starts with no precision inherited (it is earned again)."""
    for f in st.frames:
        for r in f.regs:
            if r.type == RegType.SCALAR_VALUE:
                r.precise = False
        for slot in f.stack:
            if slot.spilled is not None and slot.spilled.type == RegType.SCALAR_VALUE:
                slot.spilled.precise = False


def _run(v: Verifier, start: VerifierState, bt: _Bt) -> None:
    try:
        _backtrack(v, start, bt)
    except _Unsupported:
        mark_all_scalars_precise(start)


def mark_chain_precision(v: Verifier, regno: int) -> None:
    """The value of register ``regno`` (current frame) matters from here on."""
    if not v.bpf_capable or regno < 0:
        return
    st = v.cur
    reg = st.regs[regno]
    if reg.type != RegType.SCALAR_VALUE:
        return
    bt = _Bt()
    bt.set_reg(st.curframe, regno)
    _run(v, st, bt)


def mark_chain_precision_stack(v: Verifier, frameno: int, spi: int) -> None:
    """The value spilled in stack slot ``spi`` of frame ``frameno`` matters."""
    if not v.bpf_capable:
        return
    bt = _Bt()
    bt.slots[frameno] = 1 << spi
    _run(v, v.cur, bt)


def propagate_precision(v: Verifier, old: VerifierState, cur: VerifierState) -> None:
    """A path pruned by ``old`` relies on what ``old`` needed precise: so does
    every checkpoint of ``cur``."""
    if not v.bpf_capable:
        return
    bt = _Bt()
    for fr in range(old.curframe + 1):
        f = old.frames[fr]
        for r, reg in enumerate(f.regs[:10]):
            if reg.type == RegType.SCALAR_VALUE and reg.precise:
                bt.set_reg(fr, r)
        for spi, slot in enumerate(f.stack):
            sp = slot.spilled
            if slot.is_spill and sp is not None and sp.type == RegType.SCALAR_VALUE \
                    and sp.precise:
                bt.slots[fr] = bt.slots.get(fr, 0) | 1 << spi
    if not bt.empty():
        _run(v, cur, bt)

