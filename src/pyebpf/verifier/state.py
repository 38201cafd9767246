"""Verifier state: registers, stack slots, frames (``bpf_reg_state`` & co).

Mirrors include/linux/bpf_verifier.h: a :class:`RegState` per register (type,
fixed offset, the scalar bounds of its value or variable offset, ids), a
:class:`FuncState` per call frame (registers and stack), and a
:class:`VerifierState` (the frames and the acquired references) for one path.
States are copied at every branch, so copies are shallow where the parts are
immutable (:class:`~.scalar.Scalar` is).

Printing follows kernel/bpf/log.c (``print_verifier_state``), so the log reads
as the kernel's.
"""

from __future__ import annotations

import enum
import operator
from typing import Any

from .scalar import SCALAR_UNKNOWN, Scalar, format_scalar_ranges, mark_reg_known
from .tnum import tnum_is_const, tnum_is_unknown
from .types import (
    PTR_MAYBE_NULL,
    RegType,
    base_type,
    reg_type_str,
)

__all__ = [
    "BPF_REG_SIZE",
    "MAX_BPF_REG",
    "FuncState",
    "RegState",
    "SlotType",
    "StackSlot",
    "VerifierState",
]

MAX_BPF_REG = 11
BPF_REG_FP = 10
BPF_REG_SIZE = 8
_M = (1 << 64) - 1

# Limits and markers of include/linux/bpf_verifier.h and bpf.h the checks share.
MAX_BPF_STACK = 512
MAX_CALL_FRAMES = 8
MAX_PACKET_OFF = 0xFFFF
BPF_MAX_VAR_OFF = 1 << 29
BPF_MAX_VAR_SIZ = 1 << 29
#: pkt->range markers: the pointer is at, or beyond, pkt_end.
AT_PKT_END, BEYOND_PKT_END = -1, -2
#: How check_reg_arg treats a register: read it, or write it (marking it unknown or not).
SRC_OP, DST_OP, DST_OP_NO_MARK = 0, 1, 2


class SlotType(enum.IntEnum):
    """enum bpf_stack_slot_type; the log prints each as one character."""

    INVALID = 0
    SPILL = 1
    MISC = 2
    ZERO = 3
    DYNPTR = 4
    ITER = 5
    IRQ_FLAG = 6


SLOT_CHARS = {
    SlotType.INVALID: "?",
    SlotType.SPILL: "r",
    SlotType.MISC: "m",
    SlotType.ZERO: "0",
    SlotType.DYNPTR: "d",
    SlotType.ITER: "i",
    SlotType.IRQ_FLAG: "f",
}


class RegState:
    """One register's abstract value.

    For a scalar, ``scalar`` is its value. For a pointer, the pointer is
    ``base + off + x`` with ``off`` fixed and ``x`` described by ``scalar``
    (the kernel's ``var_off`` and min/max of the variable part).
    """

    __slots__ = (
        "btf_id",
        "extra",
        "frameno",
        "id",
        "map",
        "mem_size",
        "off",
        "precise",
        "range",
        "ref_obj_id",
        "scalar",
        "subreg_def",
        "type",
    )

    def __init__(self) -> None:
        self.type: int = RegType.NOT_INIT
        self.off = 0
        self.scalar: Scalar = SCALAR_UNKNOWN
        self.id = 0
        self.ref_obj_id = 0
        self.map: Any = None
        self.range = 0
        self.mem_size = 0
        self.frameno = 0
        self.subreg_def = 0
        self.precise = False
        self.btf_id = 0
        self.extra: Any = None

    def copy(self) -> RegState:
        r = RegState.__new__(RegState)
        r.type = self.type
        r.off = self.off
        r.scalar = self.scalar
        r.id = self.id
        r.ref_obj_id = self.ref_obj_id
        r.map = self.map
        r.range = self.range
        r.mem_size = self.mem_size
        r.frameno = self.frameno
        r.subreg_def = self.subreg_def
        r.precise = self.precise
        r.btf_id = self.btf_id
        r.extra = self.extra
        return r

    def assign(self, other: RegState) -> None:
        """copy_register_state: become a copy of ``other`` (keeping identity)."""
        for name in RegState.__slots__:
            setattr(self, name, getattr(other, name))

    # -- the kernel's mark_* helpers ------------------------------------------------
    def mark_not_init(self) -> None:
        self.__init__()  # type: ignore[misc]

    def mark_unknown(self, precise: bool = False) -> None:
        """__mark_reg_unknown: an unbounded scalar, every id cleared."""
        self.mark_not_init()
        self.type = RegType.SCALAR_VALUE
        self.precise = precise

    def mark_known(self, value: int) -> None:
        """__mark_reg_known on a scalar: the constant ``value`` (u64)."""
        self.mark_not_init()
        self.type = RegType.SCALAR_VALUE
        self.scalar = mark_reg_known(value & _M)

    def mark_known_zero(self) -> None:
        self.mark_known(0)

    def set_ptr(self, t: int, off: int = 0) -> None:
        """A pointer of type ``t`` with a known (zero) variable part."""
        self.mark_not_init()
        self.type = t
        self.off = off
        self.scalar = mark_reg_known(0)

    # -- queries ----------------------------------------------------------------------
    @property
    def is_scalar(self) -> bool:
        return self.type == RegType.SCALAR_VALUE

    @property
    def is_pointer(self) -> bool:
        return self.type not in (RegType.NOT_INIT, RegType.SCALAR_VALUE)

    @property
    def base(self) -> RegType:
        return base_type(self.type)

    @property
    def var_off(self) -> Any:
        return self.scalar.var_off

    @property
    def is_const(self) -> bool:
        return self.type == RegType.SCALAR_VALUE and tnum_is_const(self.scalar.var_off)

    @property
    def const_value(self) -> int:
        return self.scalar.var_off.value

    def __repr__(self) -> str:
        return f"<RegState {reg_type_str(self.type)} {self.format(0)}>"

    def format(self, frameno: int, all_precise: bool = False) -> str:
        """print_reg_state: e.g. ``ctx()``, ``fp-8``, ``map_value(ks=4,vs=8)``, ``1``.
        ``all_precise``: unprivileged, where every scalar is precise (``P``)."""
        t = self.type
        s = self.scalar
        out = ""
        if t == RegType.SCALAR_VALUE:
            from .scalar import format_scalar

            return format_scalar(s, id=self.id, off=self.off,
                                 precise=self.precise or all_precise)
        out += reg_type_str(t)
        base = base_type(t)
        if base == RegType.PTR_TO_ARENA:
            return out
        if base == RegType.PTR_TO_BTF_ID:  # the struct's name: ptr_task_struct(...)
            from .alloc import reg_type_name

            out += reg_type_name(self)
        if base == RegType.PTR_TO_STACK:
            if frameno != self.frameno:
                out += f"[{self.frameno}]"
            if tnum_is_const(s.var_off):
                return out + _snum(_s64(s.var_off.value + self.off))
        items: list[str] = []
        if self.id:
            items.append(f"id={self.id}")
        if self.ref_obj_id:
            items.append(f"ref_obj_id={self.ref_obj_id}")
        if (
            base in (RegType.CONST_PTR_TO_MAP, RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_KEY)
            and self.map is not None
        ):
            name = getattr(self.map, "name", "")
            if name:
                items.append(f"map={name}")
            items.append(f"ks={self.map.key_size},vs={self.map.value_size}")
        if self.off:
            items.append(f"off={_snum(self.off)}")
        if base in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
            items.append(f"r={_unum(self.range)}")
        if base == RegType.PTR_TO_MEM:
            items.append(f"sz={_unum(self.mem_size)}")
        if tnum_is_const(s.var_off):
            if s.var_off.value:
                items.append(f"imm={_snum(_s64(s.var_off.value))}")
        else:
            items.extend(format_scalar_ranges(s))
            if not tnum_is_unknown(s.var_off):
                items.append(f"var_off=({s.var_off.value:#x}; {s.var_off.mask:#x})")
        return out + "(" + ",".join(items) + ")"


def _s64(v: int) -> int:
    v &= _M
    return v - (1 << 64) if v >> 63 else v


def _unum(v: int) -> str:
    return str(v) if 0 <= v <= 0xFFFF else f"{v & _M:#x}"


def _snum(v: int) -> str:
    return str(v) if -0x8000 <= v <= 0x7FFF else f"{v & _M:#x}"


class StackSlot:
    """One 8-byte stack slot: the type of each byte, and a spilled register."""

    __slots__ = ("slot_type", "spilled")

    def __init__(self) -> None:
        self.slot_type = [SlotType.INVALID] * BPF_REG_SIZE
        self.spilled: RegState | None = None

    def copy(self) -> StackSlot:
        s = StackSlot.__new__(StackSlot)
        s.slot_type = list(self.slot_type)
        s.spilled = self.spilled.copy() if self.spilled is not None else None
        return s

    @property
    def is_spill(self) -> bool:
        return self.slot_type[BPF_REG_SIZE - 1] == SlotType.SPILL


class FuncState:
    """One call frame: its registers and its stack (slot 0 is fp-8)."""

    __slots__ = (
        "callback_ret_range",
        "callsite",
        "frameno",
        "in_callback_fn",
        "regs",
        "stack",
        "subprogno",
    )

    def __init__(self, frameno: int = 0, callsite: int = -1, subprogno: int = 0) -> None:
        self.frameno = frameno
        self.callsite = callsite
        self.subprogno = subprogno
        self.regs = [RegState() for _ in range(MAX_BPF_REG)]
        self.stack: list[StackSlot] = []
        self.in_callback_fn = False
        self.callback_ret_range: tuple[int, int] | None = None

    def copy(self) -> FuncState:
        f = FuncState.__new__(FuncState)
        f.frameno = self.frameno
        f.callsite = self.callsite
        f.subprogno = self.subprogno
        f.regs = [r.copy() for r in self.regs]
        f.stack = [s.copy() for s in self.stack]
        f.in_callback_fn = self.in_callback_fn
        f.callback_ret_range = self.callback_ret_range
        return f

    @property
    def allocated_stack(self) -> int:
        return len(self.stack) * BPF_REG_SIZE

    def grow_stack(self, size: int) -> None:
        """grow_stack_state: make room for ``size`` bytes (rounded up to slots)."""
        slots = -(-size // BPF_REG_SIZE)
        while len(self.stack) < slots:
            self.stack.append(StackSlot())

    def slot(self, spi: int) -> StackSlot:
        return self.stack[spi]

    def format(self, scratched: set[int] | None = None, print_all: bool = True,
               all_precise: bool = False) -> str:
        out = ""
        if self.frameno:
            out += f" frame{self.frameno}:"
        for i, r in enumerate(self.regs):
            if r.type == RegType.NOT_INIT:
                continue
            if not print_all and scratched is not None and i not in scratched:
                continue
            out += f" R{i}={r.format(self.frameno, all_precise)}"
        for spi, slot in enumerate(self.stack):
            types = slot.slot_type
            if all(t == SlotType.INVALID for t in types):
                continue
            if not print_all and scratched is not None and -(spi + 1) not in scratched:
                continue
            off = -(spi + 1) * BPF_REG_SIZE
            if types[0] == SlotType.ITER:
                from .iters import format_iter_slot

                out += format_iter_slot(off, slot.spilled)
                continue
            if types[0] == SlotType.DYNPTR:
                from .dynptr import format_dynptr_slot

                out += format_dynptr_slot(off, slot.spilled)
                continue
            # Slot bytes print in slot_type order; a spill prints the bytes before
            # the first spilled one, then the register.
            chars = "".join(SLOT_CHARS[t] for t in types)
            if slot.is_spill and slot.spilled is not None:
                first = next(i for i, t in enumerate(types) if t == SlotType.SPILL)
                spilled = slot.spilled.format(self.frameno, all_precise)
                out += f" fp{off}={chars[:first]}{spilled}"
            else:
                out += f" fp{off}={chars}"
        if self.in_callback_fn:
            out += " cb"
        return out


#: The register fields states_maybe_looping compares (all but liveness and precision).
_LOOP_KEY_FIELDS = operator.attrgetter("type", "off", "scalar", "id", "ref_obj_id", "map",
                                       "range", "mem_size", "btf_id", "extra")


class VerifierState:
    """One path's state: the call frames and the references it holds."""

    __slots__ = (
        "active_lock_id",
        "active_lock_ptr",
        "active_locks",
        "active_rcu_lock",
        "branches",
        "cleaned",
        "curframe",
        "first_insn_idx",
        "fp",
        "frames",
        "hist",
        "hit_cnt",
        "insn_idx",
        "loop_entry",
        "may_goto_depth",
        "miss_cnt",
        "parent",
        "refs",
        "speculative",
    )

    def __init__(self) -> None:
        self.frames: list[FuncState] = []
        self.curframe = 0
        #: Acquired references: (id, insn index, kind).
        self.refs: list[tuple[int, int, str]] = []
        self.active_locks = 0
        #: The held bpf_spin_lock: the id of the map value register and its map.
        self.active_lock_id = 0
        self.active_lock_ptr: Any = None
        #: Inside bpf_rcu_read_lock() .. bpf_rcu_read_unlock() (kfuncs; no nesting).
        self.active_rcu_lock = False
        self.speculative = False
        self.branches = 0
        #: Dead registers and slots were forgotten (liveness.clean_verifier_state).
        self.cleaned = False
        #: An explored state's record (bpf_verifier_state_list): prunes it made,
        #: and visits it failed to prune (it is dropped when it keeps missing).
        self.hit_cnt = 0
        self.miss_cnt = 0
        #: The instructions run since the last checkpoint (precision backtracking),
        #: newest first, as a shared chain: (older, index, frame, stack access
        #: flags, linked registers), None at the checkpoint.
        self.hist: tuple[Any, ...] | None = None
        self.first_insn_idx = 0
        self.insn_idx = 0
        self.parent: VerifierState | None = None
        self.loop_entry = None
        self.may_goto_depth = 0
        #: An explored state's loop_key (set when it is stored).
        self.fp: tuple[object, ...] | None = None

    def copy(self) -> VerifierState:
        v = VerifierState.__new__(VerifierState)
        v.frames = [f.copy() for f in self.frames]
        v.curframe = self.curframe
        v.refs = list(self.refs)
        v.active_locks = self.active_locks
        v.active_lock_id = self.active_lock_id
        v.active_lock_ptr = self.active_lock_ptr
        v.active_rcu_lock = self.active_rcu_lock
        v.speculative = self.speculative
        v.branches = 0
        v.cleaned = False
        v.hit_cnt = 0
        v.miss_cnt = 0
        v.hist = self.hist  # immutable and shared: copies cost nothing
        v.first_insn_idx = self.first_insn_idx
        v.insn_idx = self.insn_idx
        v.parent = self.parent
        v.loop_entry = self.loop_entry
        v.may_goto_depth = self.may_goto_depth
        v.fp = None
        return v

    @property
    def frame(self) -> FuncState:
        return self.frames[self.curframe]

    @property
    def regs(self) -> list[RegState]:
        return self.frames[self.curframe].regs

    def loop_key(self) -> tuple[object, ...]:
        """states_maybe_looping as a key: the call chain and the current frame's
        registers byte for byte (the kernel's memcmp up to ``frameno``). Only
        explored states with the same key can be an exact repeat of this one."""
        regs = tuple(map(_LOOP_KEY_FIELDS, self.frames[self.curframe].regs))
        return (self.curframe, tuple(f.callsite for f in self.frames), regs)

    def format(self, scratched: set[int] | None = None, print_all: bool = True,
               all_precise: bool = False) -> str:
        f = self.frames[self.curframe]
        out = f.format(scratched, print_all, all_precise)
        if self.refs:
            out += " refs=" + ",".join(str(r[0]) for r in self.refs)
        return out


def maybe_null(t: int) -> bool:
    return bool(t & PTR_MAYBE_NULL)
