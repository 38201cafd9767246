"""Dynptrs on the stack: ``struct bpf_dynptr`` slots (kernel/bpf/verifier.c).

A ``struct bpf_dynptr`` is 16 bytes, two stack slots of type STACK_DYNPTR.
A function that makes one (``bpf_dynptr_from_skb``, ``bpf_dynptr_from_xdp``,
``bpf_dynptr_clone``: an argument ``__uninit``, a helper's ``MEM_UNINIT``)
turns the slots into a dynptr of its type; the others take an initialized
one ("Expected an initialized dynptr as arg #0"), of the right type where the
argument names one. As in the kernel the state sits in the slots' spilled
registers: type CONST_PTR_TO_DYNPTR, ``id`` (the dynptr's id, which slices
carry as their ``dynptr_id``), ``ref_obj_id`` for a refcounted (ringbuf)
dynptr and its clones, and a :class:`DynptrState` in ``extra`` (the kernel's
``reg->dynptr``: its type and whether this is the first slot).

A callback's dynptr argument (``bpf_user_ringbuf_drain``) is a register of
type CONST_PTR_TO_DYNPTR itself, initialized and read-only.

Writing over either slot of an unreferenced dynptr destroys it, and with it
the slices taken from it (``destroy_if_dynptr_stack_slot``); a referenced
dynptr can't be overwritten. Reading its bytes is an invalid stack read.
"""

from __future__ import annotations

import enum
import errno
from typing import TYPE_CHECKING, Any

import attrs

from ..helpers.proto import ArgType, TypeFlag
from .iters import _iter_get_spi
from .log import VerifierAbort
from .state import BPF_REG_SIZE, FuncState, RegState, SlotType
from .types import MEM_RDONLY, MEM_UNINIT, PTR_MAYBE_NULL, RegType, base_type

if TYPE_CHECKING:
    from ..kfuncs import KfArg, Kfunc
    from .check import Verifier

__all__ = [
    "BPF_DYNPTR_NR_SLOTS",
    "DYNPTR_TYPE_FLAG_MASK",
    "BpfDynptrType",
    "DynptrState",
    "destroy_if_dynptr_stack_slot",
    "dynptr_reg",
    "dynptr_slots_equal",
    "dynptr_type_of",
    "format_dynptr_slot",
    "get_dynptr_type_flag",
    "mark_dynptr_cb_reg",
    "mark_dynptr_slice_ret",
    "process_dynptr_func",
    "process_kfunc_dynptr_arg",
    "reg_is_dynptr_slice_pkt",
]

BPF_DYNPTR_SIZE = 16
BPF_DYNPTR_NR_SLOTS = BPF_DYNPTR_SIZE // BPF_REG_SIZE


class BpfDynptrType(enum.IntEnum):
    """``enum bpf_dynptr_type`` (include/linux/bpf.h); the same numbers go into
    the type bits of ``struct bpf_dynptr_kern`` at run time."""

    INVALID = 0
    LOCAL = 1
    RINGBUF = 2
    SKB = 3
    XDP = 4
    SKB_META = 5


#: get_dynptr_type_flag / arg_to_dynptr_type: each dynptr type's type flag.
_TYPE_FLAGS: dict[BpfDynptrType, int] = {
    BpfDynptrType.LOCAL: int(TypeFlag.DYNPTR_TYPE_LOCAL),
    BpfDynptrType.RINGBUF: int(TypeFlag.DYNPTR_TYPE_RINGBUF),
    BpfDynptrType.SKB: int(TypeFlag.DYNPTR_TYPE_SKB),
    BpfDynptrType.XDP: int(TypeFlag.DYNPTR_TYPE_XDP),
    BpfDynptrType.SKB_META: int(TypeFlag.DYNPTR_TYPE_SKB_META),
}
DYNPTR_TYPE_FLAG_MASK = sum(_TYPE_FLAGS.values())
#: dynptr_type_str.
_TYPE_STR = {BpfDynptrType.INVALID: "<invalid>", BpfDynptrType.LOCAL: "local",
             BpfDynptrType.RINGBUF: "ringbuf", BpfDynptrType.SKB: "skb",
             BpfDynptrType.XDP: "xdp", BpfDynptrType.SKB_META: "skb_meta"}
#: Slices of these dynptrs point into the packet (reg_is_dynptr_slice_pkt).
_PKT_SLICE_FLAGS = (int(TypeFlag.DYNPTR_TYPE_SKB) | int(TypeFlag.DYNPTR_TYPE_XDP)
                    | int(TypeFlag.DYNPTR_TYPE_SKB_META))


@attrs.frozen
class DynptrState:
    """``bpf_reg_state.dynptr``: the dynptr's type, and whether this register is
    its first (lower-addressed, higher spi) slot."""

    type: BpfDynptrType
    first_slot: bool = True


def get_dynptr_type_flag(t: int) -> int:
    """The DYNPTR_TYPE_* flag of a dynptr type (a slice's register type carries it)."""
    return _TYPE_FLAGS.get(t, 0)  # type: ignore[call-overload]


def arg_to_dynptr_type(arg_type: int) -> BpfDynptrType:
    for t, flag in _TYPE_FLAGS.items():
        if arg_type & DYNPTR_TYPE_FLAG_MASK == flag:
            return t
    return BpfDynptrType.INVALID


def dynptr_type_refcounted(t: int) -> bool:
    """A ringbuf dynptr holds the reservation: it must be submitted or discarded."""
    return t == BpfDynptrType.RINGBUF


def reg_is_dynptr_slice_pkt(reg: RegState) -> bool:
    """A slice of an skb/xdp dynptr: a packet pointer for clear_all_pkt_pointers."""
    return base_type(reg.type) == RegType.PTR_TO_MEM and bool(reg.type & _PKT_SLICE_FLAGS)


def _get_spi(v: Verifier, reg: RegState) -> int:
    """dynptr_get_spi."""
    return _iter_get_spi(v, reg, BPF_DYNPTR_NR_SLOTS, "dynptr")


def _info(reg: RegState | None) -> DynptrState | None:
    return reg.extra if reg is not None and isinstance(reg.extra, DynptrState) else None


def dynptr_reg(v: Verifier, reg: RegState) -> RegState:
    """The register holding an initialized dynptr's state: a callback's
    CONST_PTR_TO_DYNPTR itself, else the first stack slot's spilled register
    (dynptr_id / dynptr_ref_obj_id / dynptr_get_type read it)."""
    if reg.type == RegType.CONST_PTR_TO_DYNPTR:
        return reg
    spi = _get_spi(v, reg)
    if spi < 0:
        raise VerifierAbort(errno.EFAULT, "verifier bug: invalid spi when querying dynptr")
    slot = v.func(reg).stack[spi].spilled
    if slot is None:
        raise VerifierAbort(errno.EFAULT, "verifier bug: no dynptr in the stack slot")
    return slot


def dynptr_type_of(v: Verifier, reg: RegState) -> BpfDynptrType:
    """dynptr_get_type."""
    info = _info(dynptr_reg(v, reg))
    return info.type if info is not None else BpfDynptrType.INVALID


def _is_dynptr_reg_valid_uninit(v: Verifier, reg: RegState) -> bool:
    """Slots a dynptr may be made in: any (an unreferenced dynptr there is
    destroyed); only a bad offset refuses, and -ERANGE (not allocated yet) is fine."""
    if reg.type == RegType.CONST_PTR_TO_DYNPTR:
        return False
    spi = _get_spi(v, reg)
    return not (spi < 0 and spi != -errno.ERANGE)


def _is_dynptr_reg_valid_init(v: Verifier, reg: RegState) -> bool:
    if reg.type == RegType.CONST_PTR_TO_DYNPTR:
        return True
    spi = _get_spi(v, reg)
    if spi < 0:
        return False
    state = v.func(reg)
    info = _info(state.stack[spi].spilled)
    if info is None or not info.first_slot:
        return False
    return all(t == SlotType.DYNPTR for t in state.stack[spi].slot_type) and \
        all(t == SlotType.DYNPTR for t in state.stack[spi - 1].slot_type)


def _is_dynptr_type_expected(v: Verifier, reg: RegState, arg_type: int) -> bool:
    if not arg_type & DYNPTR_TYPE_FLAG_MASK:
        return True  # ARG_PTR_TO_DYNPTR takes any type of dynptr
    return dynptr_type_of(v, reg) == arg_to_dynptr_type(arg_type)


def _mark_dynptr_reg(reg: RegState, t: BpfDynptrType, first_slot: bool, dynptr_id: int) -> None:
    """__mark_dynptr_reg: the type is CONST_PTR_TO_DYNPTR even in a stack slot
    (it only matters for callback arguments)."""
    reg.set_ptr(RegType.CONST_PTR_TO_DYNPTR)
    reg.id = dynptr_id
    reg.extra = DynptrState(t, first_slot)


def mark_dynptr_cb_reg(v: Verifier, reg: RegState, t: BpfDynptrType) -> None:
    """A callback's dynptr argument (set_user_ringbuf_callback_state)."""
    _mark_dynptr_reg(reg, t, True, v.new_id())


def _slots_mask(spi: int) -> int:
    return (1 << spi) | (1 << (spi - 1))


def _invalidate_slices(v: Verifier, dynptr_id: int) -> None:
    from .calls import mark_reg_invalid

    for r in v.iter_regs():
        # Dynptr slices are only PTR_TO_MEM_OR_NULL and PTR_TO_MEM (as the kernel
        # checks it: a read-only slice keeps its type).
        if r.type not in (RegType.PTR_TO_MEM | PTR_MAYBE_NULL, RegType.PTR_TO_MEM):
            continue
        if r.extra == dynptr_id:
            mark_reg_invalid(v, r)


def destroy_if_dynptr_stack_slot(v: Verifier, state: FuncState, spi: int) -> None:
    """A write into a slot of a dynptr ends it, and the slices taken from it;
    a referenced (ringbuf) dynptr may not be overwritten."""
    if spi >= len(state.stack) or state.stack[spi].slot_type[0] != SlotType.DYNPTR:
        return
    info = _info(state.stack[spi].spilled)
    if info is not None and not info.first_slot:
        spi += 1  # reposition to the first slot
    first = state.stack[spi].spilled
    info = _info(first)
    if info is not None and dynptr_type_refcounted(info.type):
        v.fail(errno.EINVAL, "cannot overwrite referenced dynptr")
    v.scratch(-(spi + 1))
    v.scratch(-spi)
    for s in (spi, spi - 1):
        state.stack[s].slot_type = [SlotType.INVALID] * BPF_REG_SIZE
    if first is not None:
        _invalidate_slices(v, first.id)
    # The reference (if any) stays: the dynptr is gone, not released.
    state.stack[spi].spilled = None
    state.stack[spi - 1].spilled = None
    v.liveness.mark_write(state.frameno, _slots_mask(spi))


def _mark_stack_slots_dynptr(v: Verifier, reg: RegState, arg_type: int, idx: int,
                             clone_ref_obj_id: int) -> None:
    spi = _get_spi(v, reg)
    if spi < 0:
        raise VerifierAbort(-spi, "invalid dynptr stack slot")
    state = v.func(reg)
    # Both slots may belong to different dynptrs: [d1][d1][d2][d2] marked at the
    # middle ends both.
    destroy_if_dynptr_stack_slot(v, state, spi)
    destroy_if_dynptr_stack_slot(v, state, spi - 1)
    t = arg_to_dynptr_type(arg_type)
    if t == BpfDynptrType.INVALID:
        raise VerifierAbort(errno.EINVAL, "invalid dynptr type")
    dynptr_id = v.new_id()
    ref_obj_id = 0
    if dynptr_type_refcounted(t):
        if clone_ref_obj_id:
            ref_obj_id = clone_ref_obj_id
        else:
            ref_obj_id = v.new_id()  # acquire_reference
            v.cur.refs.append((ref_obj_id, idx, "ptr"))
    for s, first_slot in ((spi, True), (spi - 1, False)):
        slot = state.stack[s]
        slot.slot_type = [SlotType.DYNPTR] * BPF_REG_SIZE
        slot.spilled = RegState()
        _mark_dynptr_reg(slot.spilled, t, first_slot, dynptr_id)
        slot.spilled.ref_obj_id = ref_obj_id
        v.scratch(-(s + 1))
    v.liveness.mark_write(state.frameno, _slots_mask(spi))


def process_dynptr_func(v: Verifier, regno: int, idx: int, arg_type: int,
                        clone_ref_obj_id: int = 0) -> None:
    """A dynptr argument of a helper or kfunc.

    ``arg_type`` is ARG_PTR_TO_DYNPTR with flags: MEM_UNINIT (the function makes
    the dynptr: the slots must take one), MEM_RDONLY (it only reads an
    initialized one, which may then be a callback's const dynptr), none (it
    may change the dynptr), and DYNPTR_TYPE_* when it takes one type only.
    """
    from .mem import check_mem_access

    reg = v.cur.regs[regno]
    if reg.type not in (RegType.PTR_TO_STACK, RegType.CONST_PTR_TO_DYNPTR):
        v.fail(errno.EINVAL, f"arg#{regno - 1} expected pointer to stack or const struct "
               "bpf_dynptr")
    if arg_type & MEM_UNINIT and arg_type & MEM_RDONLY:
        v.fail(errno.EFAULT, "verifier bug: misconfigured dynptr helper type flags")
    if arg_type & MEM_UNINIT:
        if not _is_dynptr_reg_valid_uninit(v, reg):
            v.fail(errno.EINVAL, "Dynptr has to be an uninitialized dynptr")
        for i in range(0, BPF_DYNPTR_SIZE, BPF_REG_SIZE):  # the function writes 8 bytes at a time
            check_mem_access(v, idx, regno, i, BPF_REG_SIZE, True, -1)
        _mark_stack_slots_dynptr(v, reg, arg_type, idx, clone_ref_obj_id)
        return
    if reg.type == RegType.CONST_PTR_TO_DYNPTR and not arg_type & MEM_RDONLY:
        v.fail(errno.EINVAL, "cannot pass pointer to const bpf_dynptr, the helper mutates it")
    if not _is_dynptr_reg_valid_init(v, reg):
        v.fail(errno.EINVAL, f"Expected an initialized dynptr as arg #{regno - 1}")
    if not _is_dynptr_type_expected(v, reg, arg_type & ~MEM_RDONLY):
        v.fail(errno.EINVAL, f"Expected a dynptr of type "
               f"{_TYPE_STR[arg_to_dynptr_type(arg_type)]} as arg #{regno - 1}")
    if reg.type == RegType.PTR_TO_STACK:  # mark_dynptr_read
        spi = _get_spi(v, reg)
        v.liveness.mark_read(reg.frameno, v.insn_idx, _slots_mask(spi))
        v.scratch(-(spi + 1))
        v.scratch(-spi)


def dynptr_slots_equal(old: RegState | None, cur: RegState | None, idmap: Any) -> bool:
    """stacksafe's STACK_DYNPTR case: same type and slot, matching reference ids."""
    oi, ci = _info(old), _info(cur)
    if oi is None or ci is None or old is None or cur is None:
        return oi is ci
    return (oi.type == ci.type and oi.first_slot == ci.first_slot
            and bool(idmap.check(old.ref_obj_id, cur.ref_obj_id)))


def format_dynptr_slot(off: int, reg: RegState | None) -> str:
    """print_verifier_state's STACK_DYNPTR case, printed at the first slot:
    ``fp-16=dynptr_skb(id=2,dynptr_id=1)``. The kernel's ``dynptr_id`` shares a
    union with ``reg->dynptr`` in which ``first_slot`` overlays it: the first
    slot always prints ``dynptr_id=1``."""
    info = _info(reg)
    if reg is None or info is None or not info.first_slot:
        return ""
    items = []
    if reg.id:
        items.append(f"id={reg.id}")
    if reg.ref_obj_id:
        items.append(f"ref_id={reg.ref_obj_id}")
    items.append("dynptr_id=1")
    return f" fp{off}=dynptr_{_TYPE_STR[info.type]}({','.join(items)})"


# -- kfuncs (check_kfunc_args' KF_ARG_PTR_TO_DYNPTR, check_kfunc_call's slices) ---------------

#: special_kfunc_list: the kfuncs whose ``__uninit`` dynptr is of a fixed type...
KFUNC_DYNPTR_TYPES = {"bpf_dynptr_from_skb": BpfDynptrType.SKB,
                      "bpf_dynptr_from_xdp": BpfDynptrType.XDP,
                      "bpf_dynptr_from_skb_meta": BpfDynptrType.SKB_META}
#: ... the one whose ``__uninit`` dynptr takes its parent's type and reference ...
DYNPTR_CLONE = "bpf_dynptr_clone"
#: ... and the ones returning a slice of the dynptr (a read-only one, a writable one).
DYNPTR_SLICE, DYNPTR_SLICE_RDWR = "bpf_dynptr_slice", "bpf_dynptr_slice_rdwr"


def process_kfunc_dynptr_arg(v: Verifier, kf: Kfunc, regno: int, idx: int, arg: KfArg,
                             meta: dict[str, Any]) -> None:
    """KF_ARG_PTR_TO_DYNPTR. An initialized dynptr argument is remembered as
    ``meta["initialized_dynptr"]`` = (id, type, ref_obj_id): a clone made later in
    the same call, and a slice, take it from there."""
    reg = v.cur.regs[regno]
    arg_type = int(ArgType.ARG_PTR_TO_DYNPTR)
    clone_ref_obj_id = 0
    if reg.type == RegType.CONST_PTR_TO_DYNPTR:
        arg_type |= MEM_RDONLY
    if arg.uninit:
        arg_type |= MEM_UNINIT
    if kf.name in KFUNC_DYNPTR_TYPES:
        arg_type |= get_dynptr_type_flag(KFUNC_DYNPTR_TYPES[kf.name])
    elif kf.name == DYNPTR_CLONE and arg_type & MEM_UNINIT:
        parent = meta.get("initialized_dynptr")
        if parent is None or parent[1] == BpfDynptrType.INVALID:
            v.fail(errno.EFAULT, "verifier bug: no dynptr type for parent of clone")
        arg_type |= get_dynptr_type_flag(parent[1])
        clone_ref_obj_id = parent[2]
        if dynptr_type_refcounted(parent[1]) and not clone_ref_obj_id:
            v.fail(errno.EFAULT, "verifier bug: missing ref obj id for parent of clone")
    process_dynptr_func(v, regno, idx, arg_type, clone_ref_obj_id)
    if not arg_type & MEM_UNINIT:
        d = dynptr_reg(v, reg)
        meta["initialized_dynptr"] = (d.id, dynptr_type_of(v, reg), d.ref_obj_id)


def mark_dynptr_slice_ret(v: Verifier, kf: Kfunc, meta: dict[str, Any], r0: RegState) -> None:
    """r0 of bpf_dynptr_slice(_rdwr): PTR_TO_MEM of the constant size, tagged with the
    dynptr's type (a packet slice dies with the packet pointers) and id (it dies
    with the dynptr); read-only for bpf_dynptr_slice, and bpf_dynptr_slice_rdwr
    needs a program type that may write packets. (KF_RET_NULL adds the NULL.)"""
    from .mem import may_access_direct_pkt_data

    if "arg_constant" not in meta:
        v.fail(errno.EFAULT, "verifier bug: bpf_dynptr_slice(_rdwr) no constant size")
    dynptr_id, t, _ref = meta["initialized_dynptr"]
    r0.set_ptr(RegType.PTR_TO_MEM | get_dynptr_type_flag(t))
    r0.mem_size = meta["arg_constant"]
    if kf.name == DYNPTR_SLICE:
        r0.type |= MEM_RDONLY
    elif not may_access_direct_pkt_data(v, True):
        v.fail(errno.EINVAL, "the prog does not allow writes to packet data")
    if not dynptr_id:
        v.fail(errno.EFAULT, "verifier bug: no dynptr id")
    r0.extra = dynptr_id  # reg->dynptr_id


def dynptr_helper_meta(v: Verifier, func_id: int, meta: dict[str, Any]) -> None:
    """check_helper_call's dynptr cases: bpf_dynptr_from_mem takes map values only;
    the memory bpf_dynptr_data returns takes the dynptr's id and reference (it
    dies with the dynptr); bpf_dynptr_write into an skb dynptr may move the
    packet (changes_data: packet pointers and packet slices die)."""
    from ..uapi import FuncId
    from .types import reg_type_str

    reg = v.cur.regs[1]
    if func_id == FuncId.dynptr_from_mem:
        if reg.type != RegType.PTR_TO_MAP_VALUE:
            v.fail(errno.EACCES, f"Unsupported reg type {reg_type_str(reg.type)} for "
                   "bpf_dynptr_from_mem data")
    elif func_id == FuncId.dynptr_data:
        d = dynptr_reg(v, reg)
        meta["dynptr_id"] = d.id
        meta["ref_obj_id"] = d.ref_obj_id
    elif dynptr_type_of(v, reg) in (BpfDynptrType.SKB, BpfDynptrType.SKB_META):
        meta["changes_data"] = True


# -- releasing (bpf_ringbuf_submit_dynptr / bpf_ringbuf_discard_dynptr) ------------------------

def check_dynptr_release_arg(v: Verifier, regno: int) -> None:
    """check_func_arg's OBJ_RELEASE for a dynptr: a referenced dynptr on the stack."""
    reg = v.cur.regs[regno]
    if reg.type != RegType.PTR_TO_STACK:
        v.fail(errno.EINVAL, "cannot release unowned const bpf_dynptr")
    spi = _get_spi(v, reg)
    first = v.func(reg).stack[spi].spilled if spi >= 0 else None
    if first is None or not first.ref_obj_id:
        v.fail(errno.EINVAL, f"arg {regno} is an unacquired reference")


def _invalidate_dynptr(v: Verifier, state: FuncState, spi: int) -> None:
    for s in (spi, spi - 1):
        state.stack[s].slot_type = [SlotType.INVALID] * BPF_REG_SIZE
        state.stack[s].spilled = None
        v.scratch(-(s + 1))
    v.liveness.mark_write(state.frameno, _slots_mask(spi))


def unmark_stack_slots_dynptr(v: Verifier, reg: RegState) -> None:
    """The helper released the dynptr: its slots, its clones' (same reference) and
    the memory taken from it (release_reference: same ref_obj_id) are gone."""
    from .calls import _release_reference

    spi = _get_spi(v, reg)
    if spi < 0:
        raise VerifierAbort(-spi, "invalid dynptr stack slot")
    state = v.func(reg)
    first = state.stack[spi].spilled
    info = _info(first)
    if first is None or info is None or not dynptr_type_refcounted(info.type):
        _invalidate_dynptr(v, state, spi)
        return
    ref_obj_id = first.ref_obj_id
    _release_reference(v, ref_obj_id)
    for i in range(1, len(state.stack)):
        slot = state.stack[i]
        if slot.spilled is None or slot.spilled.ref_obj_id != ref_obj_id:
            continue
        if slot.slot_type[0] != SlotType.DYNPTR:
            v.fail(errno.EFAULT, "verifier bug: misconfigured ref_obj_id")
        if _info(slot.spilled) is not None and slot.spilled.extra.first_slot:
            _invalidate_dynptr(v, state, i)
