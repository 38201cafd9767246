"""kfunc calls: ``add_kfunc_call`` (before the walk), ``check_kfunc_call`` (during it),
``fixup_kfunc_call`` (after it), from kernel/bpf/verifier.c.

A kfunc call is ``call`` with src_reg BPF_PSEUDO_KFUNC_CALL, imm the
function's BTF id and off the fd_array slot of a module BTF (0: vmlinux).
Before the walk every call must name a function ("kernel btf_id %u is not a
function"), except ``imm == 0 && off == 0``, which the kernel lets through
until dead code is removed: reached, it fails after the walk ("invalid kernel
function call not eliminated in verifier pass"). During the walk the program
type must be allowed the kfunc ("calling kernel function %s is not allowed"),
its arguments are checked from the table's prototype (:mod:`pyebpf.kfuncs`),
r0-r5 are clobbered and r0 takes the return type. Iterator kfuncs go
through :mod:`.iters`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..helpers.proto import RetType
from ..isa.insn import Insn
from ..kfuncs import KF, KfArgKind, Kfunc, kfunc_allowed, kfunc_by_id
from .iters import process_iter_arg, process_iter_next_call
from .state import SRC_OP, RegState
from .tnum import tnum_is_const
from .types import (
    MEM_ALLOC,
    MEM_RCU,
    MEM_RDONLY,
    PTR_MAYBE_NULL,
    PTR_TRUSTED,
    PTR_UNTRUSTED,
    RegType,
    base_type,
    reg_type_str,
)

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["add_kfunc_calls", "check_kfunc_call", "fixup_kfunc_calls", "kfunc_call_name"]

BPF_PSEUDO_KFUNC_CALL = 2
CALLER_SAVED_REGS = 6


def add_kfunc_calls(v: Verifier) -> None:
    """add_kfunc_call for every kfunc call add_subprogs found (v.kfunc_calls).

    Also marks each iterator _next() call a prune point and a forced
    checkpoint (the kernel's visit_insn), which the iterator loop rules need.
    """
    for idx in v.kfunc_calls:
        insn = v.insns[idx]
        if not v.prog.gpl_compatible:
            v.fail(errno.EINVAL, "cannot call kernel function from non-GPL compatible program")
        if not insn.imm and not insn.off:
            continue  # refused later if reachable (fixup_kfunc_calls)
        if insn.off:
            v.fail(errno.EPROTO, "kfunc offset > 0 without fd_array is invalid")
        kf = kfunc_by_id(insn.imm)
        if kf is None:
            v.fail(errno.EINVAL, f"kernel btf_id {insn.imm & 0xFFFF_FFFF} is not a function")
            return
        if kf.is_iter_next:
            v.prune_points.add(idx)
            v.force_checkpoints.add(idx)


def kfunc_call_name(insn: Insn) -> str | None:
    """The disassembler's name for a kfunc call (the kernel's cb_call: the BTF name)."""
    if insn.code != 0x85 or insn.src != BPF_PSEUDO_KFUNC_CALL:
        return None
    kf = kfunc_by_id(insn.imm)
    return kf.name if kf is not None else None


def check_kfunc_call(v: Verifier, insn: Insn, idx: int) -> None:
    if not insn.imm:
        # fetch_kfunc_meta skips it now; fixup_kfunc_call refuses it if it stays.
        v.reached_null_kfunc_calls.add(idx)
        v.insn_idx += 1
        return
    kf = kfunc_by_id(insn.imm)
    if kf is None:  # add_kfunc_calls refused it already
        v.fail(errno.EINVAL, f"kernel btf_id {insn.imm & 0xFFFF_FFFF} is not a function")
        return
    if not kfunc_allowed(kf, v.prog_type):
        v.fail(errno.EACCES, f"calling kernel function {kf.name} is not allowed")
    if kf.flags & KF.SLEEPABLE and not v.prog.prog_flags & 16:
        v.fail(errno.EACCES, f"program must be sleepable to call sleepable kfunc {kf.name}")
    meta: dict[str, Any] = {"ref_obj_id": 0, "release_regno": 0}
    check_kfunc_args(v, kf, idx, meta)
    _rcu_section(v, kf)
    regs = v.cur.regs
    if meta["release_regno"]:
        from .calls import _release_reference

        _release_reference(v, regs[meta["release_regno"]].ref_obj_id)
    for r in range(CALLER_SAVED_REGS):
        regs[r].mark_not_init()
        v.scratch(r)
    r0 = regs[0]
    base = kf.ret & 0xFF
    if base == RetType.RET_INTEGER:
        r0.mark_unknown()
    elif base == RetType.RET_VOID:
        r0.mark_not_init()
    elif kf.name in DYNPTR_SLICE_KFUNCS:
        from .dynptr import mark_dynptr_slice_ret

        mark_dynptr_slice_ret(v, kf, meta, r0)
    elif base == RetType.RET_PTR_TO_MEM:
        # A pointer to scalar memory: PTR_TO_MEM of the pointee's size, read only.
        r0.set_ptr(RegType.PTR_TO_MEM | MEM_RDONLY)
        r0.mem_size = kf.ret_size
        r0.ref_obj_id = meta["ref_obj_id"]
    elif kf.name in OBJ_NEW_KFUNCS:
        from .alloc import mark_obj_new_ret

        mark_obj_new_ret(v, kf, meta, r0)
    elif kf.name == REFCOUNT_ACQUIRE:
        from .alloc import mark_refcount_acquire_ret

        mark_refcount_acquire_ret(v, meta, r0)
    elif kf.name in (CAST_TO_KERN_CTX, RDONLY_CAST):
        from .btf_attach import mark_cast_ret

        mark_cast_ret(v, kf.name == CAST_TO_KERN_CTX, meta, r0)
    else:
        from ..kernel_btf import kernel_struct_id

        r0.set_ptr(RegType.PTR_TO_BTF_ID)
        r0.btf_id = kernel_struct_id(kf.ret_btf) if kf.ret_btf else 0
    if r0.is_pointer and kf.flags & KF.RET_NULL:
        r0.type |= PTR_MAYBE_NULL
        r0.id = v.new_id()
    if r0.is_pointer and kf.flags & KF.ACQUIRE:
        rid = v.new_id()  # acquire_reference
        v.cur.refs.append((rid, idx, "ptr"))
        if kf.flags & KF.RET_NULL:
            r0.id = rid
        r0.ref_obj_id = rid
    if kf.is_iter_next:
        process_iter_next_call(v, idx, meta)
    v.insn_idx += 1


#: The kfuncs the verifier treats specially (the kernel's special_kfunc_list).
RCU_READ_LOCK, RCU_READ_UNLOCK = "bpf_rcu_read_lock", "bpf_rcu_read_unlock"
DYNPTR_SLICE_KFUNCS = frozenset({"bpf_dynptr_slice", "bpf_dynptr_slice_rdwr"})
OBJ_NEW_KFUNCS = frozenset({"bpf_obj_new_impl", "bpf_percpu_obj_new_impl"})
REFCOUNT_ACQUIRE = "bpf_refcount_acquire_impl"
CAST_TO_KERN_CTX, RDONLY_CAST = "bpf_cast_to_kern_ctx", "bpf_rdonly_cast"


def _rcu_section(v: Verifier, kf: Kfunc) -> None:
    """check_kfunc_call's RCU read section rules."""
    st = v.cur
    if st.active_rcu_lock:
        if kf.name == RCU_READ_LOCK:
            v.fail(errno.EINVAL, f"nested rcu read lock (kernel function {kf.name})")
        elif kf.name == RCU_READ_UNLOCK:
            for reg in v.iter_regs():  # RCU-protected pointers lose their protection
                if reg.type & MEM_RCU:
                    reg.type = (reg.type & ~(MEM_RCU | PTR_MAYBE_NULL)) | PTR_UNTRUSTED
            st.active_rcu_lock = False
        elif kf.flags & KF.SLEEPABLE:
            v.fail(errno.EACCES, f"kernel func {kf.name} is sleepable within rcu_read_lock "
                   "region")
    elif kf.name == RCU_READ_LOCK:
        st.active_rcu_lock = True
    elif kf.name == RCU_READ_UNLOCK:
        v.fail(errno.EINVAL, f"unmatched rcu read unlock (kernel function {kf.name})")


def check_kfunc_args(v: Verifier, kf: Kfunc, idx: int, meta: dict[str, Any]) -> None:
    """check_kfunc_args, for the argument kinds the table uses."""
    for i, arg in enumerate(kf.args):
        regno = i + 1
        if arg.kind in (KfArgKind.IGNORED, KfArgKind.PROG_AUX, KfArgKind.MEM_SIZE):
            continue  # a MEM_SIZE is checked with the memory argument before it
        reg = v.check_reg_arg(regno, SRC_OP)
        if arg.kind in (KfArgKind.SCALAR, KfArgKind.SCALAR_CONST):
            if reg.type != RegType.SCALAR_VALUE:
                v.fail(errno.EINVAL, f"R{regno} is not a scalar")
            if arg.kind == KfArgKind.SCALAR_CONST:
                if not tnum_is_const(reg.scalar.var_off):
                    v.fail(errno.EINVAL, f"R{regno} must be a known constant")
                from .precision import mark_chain_precision

                mark_chain_precision(v, regno)
                meta["arg_constant"] = reg.const_value  # meta->arg_constant
            continue
        trusted_args = bool(kf.flags & (KF.TRUSTED_ARGS | KF.RELEASE))
        if (trusted_args or kf.flags & KF.RCU) and (_is_null(reg) or reg.type & PTR_MAYBE_NULL):
            v.fail(errno.EACCES, f"Possibly NULL pointer passed to trusted arg{i}")
        if reg.ref_obj_id:
            meta["ref_obj_id"] = reg.ref_obj_id
            if kf.flags & KF.RELEASE:
                meta["release_regno"] = regno
        if arg.kind == KfArgKind.PTR_TO_BTF_ID:
            _check_btf_id_arg(v, kf, i, regno, arg.struct, trusted_args)
        elif arg.kind == KfArgKind.PTR_TO_CTX:
            if reg.type == RegType.PTR_TO_CTX:
                from .mem import check_ptr_off_reg

                check_ptr_off_reg(v, reg, regno)  # check_func_arg_reg_off
            if reg.type != RegType.PTR_TO_CTX:
                v.fail(errno.EINVAL, f"arg#{i} expected pointer to ctx, but got "
                       f"{reg_type_str(reg.type)}")
            if kf.name == CAST_TO_KERN_CTX:
                from .btf_attach import get_kern_ctx_btf_id

                meta["ret_btf_id"] = get_kern_ctx_btf_id(v)
        elif arg.kind == KfArgKind.PTR_TO_ITER:
            process_iter_arg(v, regno, idx, kf, arg, meta)
        elif arg.kind == KfArgKind.PTR_TO_DYNPTR:
            from .dynptr import process_kfunc_dynptr_arg

            process_kfunc_dynptr_arg(v, kf, regno, idx, arg, meta)
        elif arg.kind == KfArgKind.PTR_TO_MEM_SIZE:
            _check_mem_size_args(v, i, regno, arg, kf.args[i + 1], meta)
        elif arg.kind in (KfArgKind.PTR_TO_ALLOC, KfArgKind.PTR_TO_REFCOUNTED_KPTR):
            from .alloc import check_alloc_arg

            check_alloc_arg(v, kf, i, regno, arg, meta)
    if kf.flags & KF.RELEASE and not meta["release_regno"]:
        v.fail(errno.EINVAL, f"release kernel function {kf.name} expects refcounted "
               "PTR_TO_BTF_ID")


def _is_null(reg: RegState) -> bool:
    """register_is_null: a known-zero scalar."""
    return reg.type == RegType.SCALAR_VALUE and reg.is_const and reg.const_value == 0


def _check_mem_size_args(v: Verifier, i: int, regno: int, arg: Any, size_arg: Any,
                         meta: dict[str, Any]) -> None:
    """KF_ARG_PTR_TO_MEM_SIZE: memory and its size (``__sz``, ``__szk``), checked
    as a helper's memory both read and written (stack memory is read: it must be
    initialized unless the program may read uninitialized stack); an ``__opt``
    NULL needs no memory. A ``__szk`` size must be a
    known constant, remembered as ``meta["arg_constant"]`` (a slice's size)."""
    from .calls import check_mem_size_reg
    from .log import VerifierAbort

    size_reg = v.check_reg_arg(regno + 1, SRC_OP)
    if size_reg.type != RegType.SCALAR_VALUE:
        v.fail(errno.EINVAL, f"R{regno + 1} is not a scalar")
    if not (_is_null(v.cur.regs[regno]) and arg.optional):
        try:  # check_kfunc_mem_size_reg
            check_mem_size_reg(v, size_reg, regno + 1, False, True, {"raw_mode": False})
            check_mem_size_reg(v, size_reg, regno + 1, True, True, {"raw_mode": False})
        except VerifierAbort as e:
            v.fail(e.errno, f"arg#{i} arg#{i + 1} memory, len pair leads to invalid memory "
                   "access")
    if size_arg.const:
        if not tnum_is_const(size_reg.scalar.var_off):
            v.fail(errno.EINVAL, f"R{regno + 1} must be a known constant")
        meta["arg_constant"] = size_reg.const_value


def _check_btf_id_arg(v: Verifier, kf: Kfunc, i: int, regno: int, struct: str,
                      trusted_args: bool) -> None:
    """KF_ARG_PTR_TO_BTF_ID: a (trusted, or RCU for KF_RCU) pointer to the struct."""
    reg = v.cur.regs[regno]
    if base_type(reg.type) != RegType.PTR_TO_BTF_ID:
        # get_kfunc_ptr_arg_type makes it a memory argument, which a struct holding
        # pointers can't be.
        v.fail(errno.EINVAL, f"arg#{i} pointer type STRUCT {struct} must point to scalar, "
               "or struct with scalar")
    unsafe = bool(reg.type & PTR_UNTRUSTED)
    trusted = bool(reg.ref_obj_id) or (bool(reg.type & (MEM_ALLOC | PTR_TRUSTED))
                                       and not unsafe)
    if (trusted_args or kf.flags & KF.RCU) and not trusted:
        if not kf.flags & KF.RCU:
            v.fail(errno.EINVAL, f"R{regno} must be referenced or trusted")
        if not reg.type & MEM_RCU:
            v.fail(errno.EINVAL, f"R{regno} must be a rcu pointer")
    if (trusted_args or reg.ref_obj_id) and reg.off:
        v.fail(errno.EINVAL, f"R{regno} must have zero offset when passed to release func or "
               "trusted arg to kfunc")
    if unsafe and not reg.type & MEM_RCU:
        expected = reg_type_str(int(RegType.PTR_TO_BTF_ID)
                                | (reg.type & (MEM_ALLOC | PTR_TRUSTED)))
        v.fail(errno.EINVAL, f"arg#{i} is {reg_type_str(reg.type)} expected {expected} "
               "or socket")
    from .alloc import is_local, reg_type_name

    have = reg_type_name(reg) or "?"
    if have != struct or is_local(reg):
        v.fail(errno.EINVAL, f"kernel function {kf.name} args#{i} expected pointer to STRUCT "
               f"{struct} but R{regno} has a pointer to STRUCT {have}")


def fixup_kfunc_calls(v: Verifier) -> None:
    """fixup_kfunc_call: a reached call with imm 0 was never a function."""
    if v.reached_null_kfunc_calls:
        v.fail(errno.EINVAL, "invalid kernel function call not eliminated in verifier pass")
