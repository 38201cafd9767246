"""Allocated objects and kptrs in the verifier (kernel/bpf/verifier.c).

- ``bpf_obj_new`` / ``bpf_percpu_obj_new`` (check_kfunc_call's special kfuncs):
  the constant argument names a struct of the *program's* BTF; r0 becomes
  ``PTR_TO_BTF_ID | MEM_ALLOC`` (``| MEM_PERCPU``) of that type, maybe-NULL
  and referenced (:func:`mark_obj_new_ret`).
- ``bpf_obj_drop`` / ``bpf_refcount_acquire`` arguments
  (KF_ARG_PTR_TO_ALLOC_BTF_ID, KF_ARG_PTR_TO_REFCOUNTED_KPTR:
  :func:`check_alloc_arg`).
- Loads and stores through an allocated object walk its program-BTF struct
  (btf_struct_access over a local type: :func:`check_local_btf_access`); its
  special members (kptrs, bpf_refcount, locks) are off limits.
- ``bpf_kptr_xchg``: the destination must be a referenced kptr field of a map
  value at a constant offset (process_kptr_func), the new pointer must match
  the field's type (map_kptr_match_type), and r0 is the old pointer, with a
  reference the program now owns (:func:`kptr_xchg_ret`).

A register's BTF: a ``PTR_TO_BTF_ID`` whose ``extra`` is a :class:`~pyebpf.btf.Btf`
points at a struct of that (program or map) BTF, ``btf_id`` being its id
there; otherwise ``btf_id`` is an id of the simulated kernel's BTF
(:func:`reg_btf`).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..btf import Btf, BtfKind
from ..helpers.proto import TypeFlag
from ..kfuncs.obj import OBJ_DROP_KFUNCS, PERCPU_MAX_SIZE, FieldRecord, local_record
from .tnum import tnum_is_const, tnum_strn
from .types import (
    MEM_ALLOC,
    MEM_PERCPU,
    MEM_RCU,
    PTR_MAYBE_NULL,
    PTR_TRUSTED,
    PTR_UNTRUSTED,
    RegType,
    base_type,
    reg_type_str,
)

if TYPE_CHECKING:
    from ..kfuncs import KfArg, Kfunc
    from .check import Verifier
    from .state import RegState

__all__ = ["check_alloc_arg", "check_local_btf_access", "kptr_xchg_ret", "map_kptr_field",
           "mark_obj_new_ret", "process_kptr_func", "reg_btf"]


def reg_btf(reg: RegState) -> Btf:
    """The BTF a PTR_TO_BTF_ID register's ``btf_id`` belongs to."""
    if isinstance(reg.extra, Btf):
        return reg.extra
    from ..kernel_btf import kernel_btf

    return kernel_btf()


def reg_type_name(reg: RegState) -> str:
    """btf_type_name(reg->btf, reg->btf_id), "" when it has none."""
    if not reg.btf_id:
        return ""
    try:
        return reg_btf(reg).type(reg.btf_id).name
    except Exception:
        return ""


def is_local(reg: RegState) -> bool:
    return isinstance(reg.extra, Btf)


def _record(reg: RegState) -> FieldRecord:
    """reg_btf_record: the special members of the object's struct."""
    return local_record(reg_btf(reg), reg.btf_id) if is_local(reg) else FieldRecord()


# -- bpf_obj_new / bpf_percpu_obj_new -------------------------------------------------------------
def mark_obj_new_ret(v: Verifier, kf: Kfunc, meta: dict[str, Any], r0: RegState) -> None:
    """check_kfunc_call, KF_bpf_obj_new_impl / KF_bpf_percpu_obj_new_impl."""
    value = meta.get("arg_constant", 0)
    if value >> 32:
        v.fail(errno.EINVAL, "local type ID argument must be in range [0, U32_MAX]")
    btf: Btf | None = getattr(v.prog, "btf", None)
    if btf is None:
        v.fail(errno.EINVAL, "bpf_obj_new/bpf_percpu_obj_new requires prog BTF")
    assert btf is not None
    t = btf.type(value) if 0 < value < len(btf.types) else None
    if t is None or t.kind is not BtfKind.STRUCT:
        v.fail(errno.EINVAL, "bpf_obj_new/bpf_percpu_obj_new type ID argument must be of a "
               "struct")
    assert t is not None
    percpu = kf.name == "bpf_percpu_obj_new_impl"
    if percpu:
        if t.size > PERCPU_MAX_SIZE:
            v.fail(errno.EINVAL, f"bpf_percpu_obj_new type size ({t.size}) is greater than "
                   f"{PERCPU_MAX_SIZE}")
        if not _is_scalar_struct(btf, t.id, 0):
            v.fail(errno.EINVAL, "bpf_percpu_obj_new type ID argument must be of a struct of "
                   "scalars")
        if local_record(btf, t.id).fields:
            v.fail(errno.EINVAL, "bpf_percpu_obj_new type ID argument must not contain "
                   "special fields")
    r0.set_ptr(int(RegType.PTR_TO_BTF_ID) | MEM_ALLOC | (MEM_PERCPU if percpu else 0))
    r0.btf_id = t.id
    r0.extra = btf


def _is_scalar_struct(btf: Btf, tid: int, depth: int) -> bool:
    """__btf_type_is_scalar_struct: only integers, enums and arrays/structs of them."""
    t = btf.skip_mods_and_typedefs(tid)
    for m in t.members:
        mt = btf.skip_mods_and_typedefs(m.type)
        while mt.kind is BtfKind.ARRAY and mt.array is not None:
            mt = btf.skip_mods_and_typedefs(mt.array.type)
        if mt.kind is BtfKind.STRUCT:
            if depth >= 2 or not _is_scalar_struct(btf, mt.id, depth + 1):
                return False
        elif mt.kind not in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
            return False
    return True


# -- KF_ARG_PTR_TO_ALLOC_BTF_ID / KF_ARG_PTR_TO_REFCOUNTED_KPTR -----------------------------------
def check_alloc_arg(v: Verifier, kf: Kfunc, i: int, regno: int, arg: KfArg,
                    meta: dict[str, Any]) -> None:
    from ..kfuncs import KfArgKind

    reg = v.cur.regs[regno]
    if arg.kind is KfArgKind.PTR_TO_ALLOC:
        if not is_trusted_reg(reg):  # a release kfunc's arguments are trusted ones
            v.fail(errno.EINVAL, f"R{regno} must be referenced or trusted")
        if reg.type == int(RegType.PTR_TO_BTF_ID) | MEM_ALLOC:
            if OBJ_DROP_KFUNCS.get(kf.name) is not False:
                v.fail(errno.EINVAL, f"arg#{i} expected for bpf_obj_drop_impl()")
        elif reg.type == int(RegType.PTR_TO_BTF_ID) | MEM_ALLOC | MEM_PERCPU:
            if OBJ_DROP_KFUNCS.get(kf.name) is not True:
                v.fail(errno.EINVAL, f"arg#{i} expected for bpf_percpu_obj_drop_impl()")
        else:
            v.fail(errno.EINVAL, f"arg#{i} expected pointer to allocated object")
        if not reg.ref_obj_id:
            v.fail(errno.EINVAL, "allocated object must be referenced")
    else:
        if not (base_type(reg.type) == RegType.PTR_TO_BTF_ID and reg.type & MEM_ALLOC):
            v.fail(errno.EINVAL, f"arg#{i} is neither owning or non-owning ref")
        record = _record(reg)
        if not record.fields:  # no btf_struct_meta: the kernel reports its own bug
            v.fail(errno.EFAULT, "verifier bug: Couldn't find btf_record")
        if record.refcount_off < 0:
            v.fail(errno.EINVAL, f"arg#{i} doesn't point to a type with bpf_refcount field")
    if reg.off:
        v.fail(errno.EINVAL, f"R{regno} must have zero offset when passed to release func or "
               "trusted arg to kfunc")
    meta["arg_btf"] = (reg.extra, reg.btf_id)


#: BPF_REG_TRUSTED_MODIFIERS.
TRUSTED_MODIFIERS = MEM_ALLOC | PTR_TRUSTED | int(TypeFlag.NON_OWN_REF)


def is_trusted_reg(reg: RegState) -> bool:
    """is_trusted_reg: referenced, a socket-ish type, or a PTR_TO_BTF_ID with a trusted
    modifier and no unsafe one."""
    if reg.ref_obj_id:
        return True
    base = base_type(reg.type)
    if base in (RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK,
                RegType.PTR_TO_XDP_SOCK):
        return not reg.type & PTR_UNTRUSTED
    return bool(reg.type & TRUSTED_MODIFIERS) and not reg.type & PTR_UNTRUSTED


def mark_refcount_acquire_ret(v: Verifier, meta: dict[str, Any], r0: RegState) -> None:
    """KF_bpf_refcount_acquire_impl: another owning reference of the argument's type."""
    btf, btf_id = meta["arg_btf"]
    r0.set_ptr(int(RegType.PTR_TO_BTF_ID) | MEM_ALLOC)
    r0.btf_id = btf_id
    r0.extra = btf


# -- direct access to an object of a local type ---------------------------------------------------
def check_local_btf_access(v: Verifier, regno: int, reg: RegState, off: int, size: int,
                           write: bool, value_regno: int) -> None:
    """check_ptr_to_btf_access + btf_struct_access for a struct of a program's BTF."""
    from .btf_attach import _struct_walk

    btf = reg_btf(reg)
    t = btf.type(reg.btf_id)
    if not v.allow_ptr_leaks:
        v.fail(errno.EPERM, f"'struct {t.name}' access is allowed only to CAP_PERFMON and "
               "CAP_SYS_ADMIN")
    if off < 0:
        v.fail(errno.EACCES, f"R{regno} is ptr_{t.name} invalid negative access: off={off}")
    vo = reg.scalar.var_off
    if not tnum_is_const(vo) or vo.value:
        v.fail(errno.EACCES, f"R{regno} is ptr_{t.name} invalid variable offset: off={off}, "
               f"var_off={tnum_strn(vo)}")
    if reg.type & MEM_PERCPU:
        v.fail(errno.EACCES, f"R{regno} is ptr_{t.name} access percpu memory: off={off}")
    if write and not reg.type & MEM_ALLOC:
        v.fail(errno.EACCES, "only read is supported")
    field = _record(reg).overlapping(off, size)
    if field is not None:
        v.fail(errno.EACCES, f"direct access to {field.name} is disallowed")
    kind, target = _struct_walk(v, btf, t, off, size)
    if write or value_regno < 0:
        return
    dst = v.cur.regs[value_regno]
    if kind == "scalar":
        dst.mark_unknown()
        return
    dst.set_ptr(int(RegType.PTR_TO_BTF_ID) | PTR_UNTRUSTED)
    dst.btf_id = target
    dst.extra = btf


# -- bpf_kptr_xchg --------------------------------------------------------------------------------
def map_kptr_field(m: Any, off: int) -> tuple[str, Btf, int, str] | None:
    """The map value's kptr field at ``off``: (kind, pointee BTF, pointee id, name).

    btf_parse_kptr: a pointee the kernel's BTF has is a kernel type; one only
    the map's BTF has is a local type (an object of bpf_obj_new).
    """
    from ..kernel_btf import kernel_btf, kernel_type_ids
    from .mem import map_kptr_fields

    k = map_kptr_fields(m).get(off)
    if k is None:
        return None
    kind, name = k
    kid = kernel_type_ids().get(f"struct {name}", 0)
    if kid:
        return kind, kernel_btf(), kid, name
    btf: Btf = m.btf_obj.btf
    t = btf.find(name, BtfKind.STRUCT)
    return kind, btf, t.id if t is not None else 0, name


def process_kptr_func(v: Verifier, regno: int, meta: dict[str, Any]) -> None:
    """process_kptr_func: ARG_KPTR_XCHG_DEST, a referenced kptr field at a constant offset."""
    reg = v.cur.regs[regno]
    if base_type(reg.type) == RegType.PTR_TO_BTF_ID and reg.type & MEM_ALLOC:
        fields = {f.off: f for f in _record(reg).kptrs}
        if not tnum_is_const(reg.scalar.var_off):
            v.fail(errno.EINVAL, f"R{regno} doesn't have constant offset. kptr has to be at "
                   "the constant offset")
        if not fields:
            v.fail(errno.EINVAL, f"R{regno} has no valid kptr")
        off = reg.off + reg.scalar.var_off.value
        f = fields.get(off)
        if f is None:
            v.fail(errno.EACCES, f"off={off} doesn't point to kptr")
        assert f is not None
        btf = reg_btf(reg)
        t = btf.find(f.target, BtfKind.STRUCT)
        field: tuple[str, Btf, int, str] = (f.kind, btf, t.id if t is not None else 0, f.target)
    else:
        m = reg.map
        if getattr(m, "btf_obj", None) is None:
            v.fail(errno.EINVAL, f"map '{getattr(m, 'name', '')}' has to have BTF in order to "
                   "use bpf_kptr_xchg")
        meta["map"] = m
        if not tnum_is_const(reg.scalar.var_off):
            v.fail(errno.EINVAL, f"R{regno} doesn't have constant offset. kptr has to be at "
                   "the constant offset")
        from .mem import map_kptr_fields

        if not map_kptr_fields(m):
            v.fail(errno.EINVAL, f"R{regno} has no valid kptr")
        off = reg.off + reg.scalar.var_off.value
        found = map_kptr_field(m, off)
        if found is None:
            v.fail(errno.EACCES, f"off={off} doesn't point to kptr")
        assert found is not None
        field = found
    if field[0] not in ("ref", "percpu"):
        v.fail(errno.EACCES, f"off={off} kptr isn't referenced kptr")
    meta["kptr_field"] = field


def map_kptr_match_type(v: Verifier, field: tuple[str, Btf, int, str], reg: RegState,
                        regno: int) -> None:
    """map_kptr_match_type: the pointer stored must be of the field's own struct (a
    kernel pointer for a kernel type, an allocated object for a local one)."""
    kind, btf, btf_id, name = field
    if is_kernel_btf(reg_btf(reg)):
        perm = PTR_MAYBE_NULL | PTR_TRUSTED | MEM_RCU | (PTR_UNTRUSTED if kind == "unref" else 0)
    else:
        perm = PTR_MAYBE_NULL | MEM_ALLOC | (MEM_PERCPU if kind == "percpu" else 0)
    reg_name = ""
    ok = base_type(reg.type) == RegType.PTR_TO_BTF_ID and not reg.type & ~0xFF & ~perm
    if ok:
        reg_name = reg_type_name(reg)
        vo = reg.scalar.var_off
        if reg.off < 0:
            v.fail(errno.EACCES, f"negative offset {reg_type_str(reg.type)} ptr R{regno} "
                   f"off={reg.off} disallowed")
        if not tnum_is_const(vo) or vo.value:
            v.fail(errno.EACCES, f"variable {reg_type_str(reg.type)} access var_off="
                   f"{tnum_strn(vo)} disallowed")
        ok = reg_btf(reg) is btf and _ids_match(btf, reg.btf_id, reg.off, btf_id,
                                                strict=kind != "unref")
    if ok:
        return
    msg = (f"invalid kptr access, R{regno} type={reg_type_str(reg.type)}{reg_name} "
           f"expected={reg_type_str(RegType.PTR_TO_BTF_ID)}{name}")
    if kind == "unref":
        msg += f" or {reg_type_str(RegType.PTR_TO_BTF_ID | PTR_UNTRUSTED)}{name}"
    v.fail(errno.EACCES, msg)  # both callers turn the -EINVAL into -EACCES


def _ids_match(btf: Btf, tid: int, off: int, want: int, *, strict: bool) -> bool:
    """btf_struct_ids_match: the struct itself, or (not strict) a struct nested at
    ``off`` as a first member of a first member..."""
    if off == 0 and tid == want:
        return True
    if strict:
        return False
    for _ in range(8):
        t = btf.skip_mods_and_typedefs(tid)
        if t.kind is not BtfKind.STRUCT:
            return False
        inner = next((m for m in t.members if m.bit_offset // 8 <= off
                      < m.bit_offset // 8 + btf.sizeof(m.type)), None)
        if inner is None:
            return False
        off -= inner.bit_offset // 8
        tid = btf.skip_mods_and_typedefs(inner.type).id
        if off == 0 and tid == want:
            return True
    return False


def is_kernel_btf(btf: Btf) -> bool:
    from ..kernel_btf import kernel_btf

    return btf is kernel_btf()


def btf_ld_kptr_type(v: Verifier, field: tuple[str, Btf, int, str]) -> int:
    """btf_ld_kptr_type: what loading a kptr field gives. Inside an RCU read section
    (every non-sleepable program is in one) an RCU-safe kptr (a referenced one of an
    RCU-protected type: the kernel's, or a local type with a bpf_refcount; or a
    per-CPU one) reads as an RCU pointer, anything else as untrusted; maybe NULL."""
    kind, btf, btf_id, _name = field
    st = v.cur
    in_rcu = st.active_rcu_lock or bool(st.active_locks) or not v.prog.prog_flags & 16
    if is_kernel_btf(btf):
        rcu_safe = kind in ("ref", "percpu")
    else:
        rcu_safe = kind == "percpu" or (
            kind == "ref" and btf_id and local_record(btf, btf_id).refcount_off >= 0)
    t = int(RegType.PTR_TO_BTF_ID) | PTR_MAYBE_NULL
    if rcu_safe and in_rcu:
        t |= MEM_RCU
        if kind == "percpu":
            t |= MEM_PERCPU
        elif not is_kernel_btf(btf):
            t |= MEM_ALLOC
    else:
        t |= PTR_UNTRUSTED
    return t


def kptr_xchg_ret(v: Verifier, meta: dict[str, Any], r0: RegState) -> None:
    """check_helper_call's bpf_kptr_xchg return: the old pointer, of the field's type
    (a local type's object is MEM_ALLOC, a per-CPU kptr's MEM_PERCPU), maybe NULL."""
    kind, btf, btf_id, _name = meta["kptr_field"]
    t = int(RegType.PTR_TO_BTF_ID) | PTR_MAYBE_NULL
    if not is_kernel_btf(btf):
        t |= MEM_ALLOC
        if kind == "percpu":
            t |= MEM_PERCPU
    r0.set_ptr(t)
    r0.btf_id = btf_id
    r0.extra = None if is_kernel_btf(btf) else btf


def release_kptr_xchg_arg(v: Verifier, ref_obj_id: int) -> None:
    """The reference bpf_kptr_xchg's new pointer carried moves into the map: the
    program's copies become invalid (in an RCU section a per-CPU object's stay
    readable as RCU pointers)."""
    from .calls import mark_reg_invalid

    st = v.cur
    before = len(st.refs)
    st.refs = [r for r in st.refs if r[0] != ref_obj_id]
    if len(st.refs) == before:
        v.fail(errno.EINVAL, f"verifier internal error: reference {ref_obj_id} not found")
    in_rcu = st.active_rcu_lock or not v.prog.prog_flags & 16
    for reg in v.iter_regs(st):
        if reg.ref_obj_id != ref_obj_id:
            continue
        if in_rcu and reg.type & MEM_ALLOC and reg.type & MEM_PERCPU:
            reg.ref_obj_id = 0
            reg.type = (reg.type & ~MEM_ALLOC) | MEM_RCU
        else:
            mark_reg_invalid(v, reg)


#: The register types ARG_KPTR_XCHG_DEST takes (kptr_xchg_dest_types).
KPTR_XCHG_DEST_TYPES = (int(RegType.PTR_TO_MAP_VALUE), int(RegType.PTR_TO_BTF_ID) | MEM_ALLOC)
#: ARG_PTR_TO_PERCPU_BTF_ID (percpu_btf_ptr_types).
PERCPU_BTF_PTR_TYPES = (int(RegType.PTR_TO_BTF_ID) | MEM_PERCPU,
                        int(RegType.PTR_TO_BTF_ID) | MEM_PERCPU | MEM_RCU,
                        int(RegType.PTR_TO_BTF_ID) | MEM_PERCPU | PTR_TRUSTED)
