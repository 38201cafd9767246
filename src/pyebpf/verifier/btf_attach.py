"""Programs typed by BTF: struct_ops members, extensions, and PTR_TO_BTF_ID loads.

The parts of kernel/bpf/verifier.c and kernel/bpf/btf.c that depend on what a
program attaches to by BTF id:

- :func:`check_attach_btf_id` (struct_ops): ``check_struct_ops_btf_id``, the
  struct and member a STRUCT_OPS program implements (``attach_btf_id``, and
  the member index in ``expected_attach_type``), recorded on the program as
  ``attach_func_proto``/``struct_ops_type``/``attach_member``;
- (extensions): ``bpf_check_attach_target``'s EXT rules and
  ``btf_check_type_match``, then the program is verified as its target's type
  (``resolve_prog_type``) with its arguments typed from BTF
  (``btf_prepare_func_args``: :func:`pyebpf.verifier.global_func.init_arg_regs`);
- :func:`check_ptr_to_btf_access`: loads through a ``PTR_TO_BTF_ID`` walk the
  kernel struct (``btf_struct_walk``: a scalar member gives a scalar, a
  pointer to a struct gives another PTR_TO_BTF_ID); stores are the struct_ops
  type's ``btf_struct_access`` to allow (tcp_sock's congestion fields).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import attrs

from ..btf import Btf, BtfKind, BtfType, FuncLinkage
from ..uapi import AttachType, ProgType
from .types import (
    MEM_ALLOC,
    MEM_PERCPU,
    MEM_RCU,
    MEM_RDONLY,
    MEM_USER,
    PTR_MAYBE_NULL,
    PTR_TRUSTED,
    PTR_UNTRUSTED,
    RegType,
    reg_type_str,
)

if TYPE_CHECKING:
    from .check import Verifier
    from .state import RegState

__all__ = ["CTX_STRUCT_NAMES", "BtfPtr", "check_attach_btf_id", "check_ptr_to_btf_access"]


class BtfPtr(int):
    """What a ctx load of a pointer argument gives: the register type (an int, as
    every ``is_valid_access`` returns) carrying the BTF id it points at."""

    btf_id: int

    def __new__(cls, reg_type: int, btf_id: int) -> BtfPtr:
        obj = super().__new__(cls, reg_type)
        obj.btf_id = btf_id
        return obj


#: The uapi ctx struct of each program type (bpf_ctx_convert): what a global
#: function's ``struct X *`` argument must be to be the context.
CTX_STRUCT_NAMES: dict[ProgType, str] = {
    **dict.fromkeys((ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT,
                     ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT,
                     ProgType.LWT_XMIT, ProgType.LWT_SEG6LOCAL, ProgType.SK_SKB,
                     ProgType.FLOW_DISSECTOR), "__sk_buff"),
    ProgType.XDP: "xdp_md",
    ProgType.CGROUP_SOCK: "bpf_sock",
    ProgType.CGROUP_SOCK_ADDR: "bpf_sock_addr",
    ProgType.SOCK_OPS: "bpf_sock_ops",
    ProgType.SK_MSG: "sk_msg_md",
    ProgType.CGROUP_DEVICE: "bpf_cgroup_dev_ctx",
    ProgType.CGROUP_SYSCTL: "bpf_sysctl",
    ProgType.CGROUP_SOCKOPT: "bpf_sockopt",
    ProgType.SK_REUSEPORT: "sk_reuseport_md",
    ProgType.SK_LOOKUP: "bpf_sk_lookup",
    ProgType.KPROBE: "pt_regs",
    ProgType.PERF_EVENT: "bpf_perf_event_data",
    ProgType.RAW_TRACEPOINT: "bpf_raw_tracepoint_args",
    ProgType.RAW_TRACEPOINT_WRITABLE: "bpf_raw_tracepoint_args",
    ProgType.NETFILTER: "bpf_nf_ctx",
}


#: The kernel's ctx of each program type (bpf_ctx_convert, the second type of each
#: BPF_PROG_TYPE() in bpf_types.h): what bpf_cast_to_kern_ctx returns a trusted
#: pointer to. Types whose kernel ctx is no struct (u64, void *) can't cast.
KERN_CTX_TYPES: dict[ProgType, str] = {
    **dict.fromkeys((ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT,
                     ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT,
                     ProgType.LWT_XMIT, ProgType.LWT_SEG6LOCAL, ProgType.SK_SKB),
                    "struct sk_buff"),
    ProgType.XDP: "struct xdp_buff",
    ProgType.CGROUP_SOCK: "struct sock",
    ProgType.CGROUP_SOCK_ADDR: "struct bpf_sock_addr_kern",
    ProgType.SOCK_OPS: "struct bpf_sock_ops_kern",
    ProgType.SK_MSG: "struct sk_msg",
    ProgType.FLOW_DISSECTOR: "struct bpf_flow_dissector",
    ProgType.KPROBE: "struct pt_regs",
    ProgType.PERF_EVENT: "struct bpf_perf_event_data_kern",
    ProgType.CGROUP_DEVICE: "struct bpf_cgroup_dev_ctx",
    ProgType.CGROUP_SYSCTL: "struct bpf_sysctl_kern",
    ProgType.CGROUP_SOCKOPT: "struct bpf_sockopt_kern",
    ProgType.SK_REUSEPORT: "struct sk_reuseport_kern",
    ProgType.SK_LOOKUP: "struct bpf_sk_lookup_kern",
    ProgType.NETFILTER: "struct bpf_nf_ctx",
    **dict.fromkeys((ProgType.TRACEPOINT, ProgType.RAW_TRACEPOINT,
                     ProgType.RAW_TRACEPOINT_WRITABLE), "u64"),
    ProgType.LIRC_MODE2: "u32",
    **dict.fromkeys((ProgType.TRACING, ProgType.STRUCT_OPS, ProgType.EXT, ProgType.LSM,
                     ProgType.SYSCALL), "void *"),
}


def get_kern_ctx_btf_id(v: Verifier) -> int:
    """get_kern_ctx_btf_id: the BTF id of the program type's kernel ctx struct (of the
    extended program's type for an extension: resolve_prog_type).

    pyebpf refuses (ENOTSUPP) the kernel ctx structs it doesn't lay out at run
    time (pyebpf.kfuncs.cast.KERN_CTX_STRUCTS), rather than hand the program a
    pointer to memory that isn't the struct."""
    from ..errors import ENOTSUPP
    from ..kernel_btf import kernel_btf, kernel_type_ids
    from ..kfuncs.cast import KERN_CTX_STRUCTS

    spelling = KERN_CTX_TYPES.get(v.prog_type, "void *")
    tid = kernel_type_ids().get(spelling, 0)
    if not spelling.startswith("struct "):
        v.fail(errno.EINVAL, f"kern ctx type id {tid} is not a struct")
    if not tid or spelling[len("struct "):] not in KERN_CTX_STRUCTS:
        v.fail(ENOTSUPP, f"pyebpf does not simulate {spelling}, the kernel ctx of "
               f"{v.prog_type.name} programs (bpf_cast_to_kern_ctx)")
    assert kernel_btf().type(tid).kind is BtfKind.STRUCT
    return tid


def mark_cast_ret(v: Verifier, kern_ctx: bool, meta: dict[str, Any], r0: RegState) -> None:
    """check_special_kfunc for bpf_cast_to_kern_ctx (a trusted pointer to the kernel
    ctx) and bpf_rdonly_cast (an untrusted pointer to the vmlinux struct whose id
    is the constant second argument; type id 0, void, gives untrusted read-only
    memory of size 0, whose loads are all probes)."""
    from ..kernel_btf import kernel_btf

    if kern_ctx:
        r0.set_ptr(int(RegType.PTR_TO_BTF_ID) | PTR_TRUSTED)
        r0.btf_id = meta["ret_btf_id"]
        return
    value = meta["arg_constant"] & ((1 << 64) - 1)
    tid = value & 0xFFFF_FFFF  # btf_type_by_id takes a u32
    btf = kernel_btf()
    if tid >= len(btf.types):
        signed = value - (1 << 64) if value >> 63 else value
        v.fail(errno.EINVAL, f"Unknown type ID {signed} passed to kfunc bpf_rdonly_cast")
    t = btf.type(tid)
    if tid and t.kind in (BtfKind.STRUCT, BtfKind.UNION):
        r0.set_ptr(int(RegType.PTR_TO_BTF_ID) | PTR_UNTRUSTED)
        r0.btf_id = tid
    elif not tid:
        r0.set_ptr(int(RegType.PTR_TO_MEM) | MEM_RDONLY | PTR_UNTRUSTED)
        r0.mem_size = 0
    else:
        v.fail(errno.EINVAL, "kfunc bpf_rdonly_cast type ID argument must be of a struct or "
               "void")


def check_attach_btf_id(v: Verifier) -> None:
    """The BTF half of check_attach_btf_id (after the sleepable rules)."""
    pt = v.prog.prog_type
    if pt == ProgType.STRUCT_OPS:
        check_struct_ops_btf_id(v)
    elif pt == ProgType.EXT:
        check_ext_target(v)


# -- struct_ops -------------------------------------------------------------------------------
def check_struct_ops_btf_id(v: Verifier) -> None:
    from ..errors import ENOTSUPP
    from ..struct_ops import struct_ops_types

    prog = v.prog
    if not prog.gpl_compatible:
        v.fail(errno.EINVAL, "struct ops programs must have a GPL compatible license")
    btf_id = prog.attach_btf_id
    if not btf_id:
        v.fail(ENOTSUPP, "struct_ops programs need attach_btf_id")
    st = next((s for s in struct_ops_types().values() if s.type_id == btf_id), None)
    if st is None:
        v.fail(ENOTSUPP, f"attach_btf_id {btf_id} is not a supported struct")
    assert st is not None
    members = st.members()
    idx = prog.expected_attach_type
    if idx >= len(members):
        v.fail(errno.EINVAL, f"attach to invalid member idx {idx} of struct {st.name}")
    member = members[idx]
    proto = st.func_proto(member)
    if proto is None:
        v.fail(errno.EINVAL, f"attach to invalid member {member.name}(@idx {idx}) of struct "
               f"{st.name}")
    if member.name in st.unsupported:
        v.fail(ENOTSUPP, f"attach to unsupported member {member.name} of struct {st.name}")
    try:
        st.check_member(member, prog)
    except Exception as err:  # the subsystem's refusal, with its errno
        v.fail(getattr(err, "errno", errno.EINVAL), f"attach to unsupported member "
               f"{member.name} of struct {st.name}")
    prog.attach_func_proto = proto
    prog.struct_ops_type = st
    prog.attach_member = member.name


def btf_ctx_access(btf: Btf, proto: BtfType, func: str, off: int, size: int, write: bool,
                   promote: Any = None, nullable: frozenset[int] = frozenset()) -> int | None:
    """bpf_tracing_ctx_access + btf_ctx_access: the u64 args array of a function
    typed by ``proto``. Scalars (ints, enums, pointers to ints) read as scalars;
    pointers to structs as PTR_TO_BTF_ID of the struct (``promote`` may change
    the id, as bpf_tcp_ca does for ``struct sock``), or-NULL for the argument
    indexes in ``nullable``."""
    from ..progs.tracing import MAX_BPF_FUNC_ARGS

    if off < 0 or off >= 8 * MAX_BPF_FUNC_ARGS or write or off % size:
        return None
    arg = off // 8
    if arg >= len(proto.params):
        return None
    t = btf.skip_mods_and_typedefs(proto.params[arg].type)
    if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.STRUCT):
        return int(RegType.SCALAR_VALUE)
    if t.kind is not BtfKind.PTR:
        return None
    target = btf.skip_mods_and_typedefs(t.type)
    if target.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64) or t.type == 0:
        return int(RegType.SCALAR_VALUE)  # is_int_ptr / void *
    if target.kind is not BtfKind.STRUCT:
        return None
    btf_id = promote(target.id) if promote is not None else target.id
    flags = PTR_TRUSTED | (PTR_MAYBE_NULL if arg in nullable else 0)
    return BtfPtr(int(RegType.PTR_TO_BTF_ID) | flags, btf_id)


# -- PTR_TO_BTF_ID loads and stores ------------------------------------------------------------
def check_ptr_to_btf_access(v: Verifier, regno: int, reg: RegState, off: int, size: int,
                            write: bool, value_regno: int) -> None:
    """check_ptr_to_btf_access over the kernel BTF (a program's own types: .alloc)."""
    from ..kernel_btf import kernel_btf
    from .tnum import tnum_strn

    if isinstance(reg.extra, Btf):
        from .alloc import check_local_btf_access

        check_local_btf_access(v, regno, reg, off, size, write, value_regno)
        return
    btf = kernel_btf()
    t = btf.type(reg.btf_id) if reg.btf_id else None
    tname = t.name if t is not None else "?"
    if not v.allow_ptr_leaks:
        v.fail(errno.EPERM, f"'struct {tname}' access is allowed only to CAP_PERFMON and "
               "CAP_SYS_ADMIN")
    if not v.prog.gpl_compatible:
        v.fail(errno.EINVAL, f"Cannot access kernel 'struct {tname}' from non-GPL compatible "
               "program")
    if off < 0:
        v.fail(errno.EACCES, f"R{regno} is ptr_{tname} invalid negative access: off={off}")
    vo = reg.scalar.var_off
    if vo.mask or vo.value:
        v.fail(errno.EACCES, f"R{regno} is ptr_{tname} invalid variable offset: off={off}, "
               f"var_off={tnum_strn(vo)}")
    if reg.type & MEM_USER:
        v.fail(errno.EACCES, f"R{regno} is ptr_{tname} access user memory: off={off}")
    if reg.type & MEM_PERCPU:
        v.fail(errno.EACCES, f"R{regno} is ptr_{tname} access percpu memory: off={off}")
    if t is None:
        v.fail(errno.EACCES, f"R{regno} invalid mem access '{reg_type_str(reg.type)}'")
    assert t is not None
    if write:
        st = getattr(v.prog, "struct_ops_type", None)
        message = st.btf_struct_access(t.id, off, size) if st is not None else \
            "only read is supported"
        if message is not None:
            v.fail(errno.EACCES, message)
        return
    walk = btf_struct_walk(v, btf, t, off, size)
    if value_regno < 0:
        return
    dst = v.cur.regs[value_regno]
    if walk.kind == "scalar":
        dst.mark_unknown()
    elif walk.kind == "mem":  # a pointer to anything but a struct (WALK_PTR_UNTRUSTED)
        dst.set_ptr(int(RegType.PTR_TO_MEM) | MEM_RDONLY | PTR_UNTRUSTED)
        dst.mem_size = 0
    else:
        flag = _btf_ld_flag(v, reg, t.name, walk)
        dst.set_ptr(int(RegType.PTR_TO_BTF_ID) | flag)
        dst.btf_id = walk.target
        if flag & PTR_MAYBE_NULL:
            dst.id = v.new_id()


#: The kernel's BTF_TYPE_SAFE_* lists: pointer members that keep (or gain) trust
#: when loaded through a trusted or RCU-protected pointer. TRUSTED: trusted even
#: outside an RCU section, never NULL; TRUSTED_OR_NULL: the same, maybe NULL;
#: RCU: trusted inside an RCU section (MEM_RCU), never NULL; RCU_OR_NULL: the
#: same, maybe NULL (skb->sk: sockets a program reaches are SOCK_RCU_FREE).
BTF_TYPE_SAFE_TRUSTED: dict[str, tuple[str, ...]] = {
    "bpf_iter_meta": ("seq",), "bpf_iter__task": ("task",), "linux_binprm": ("file",),
    "file": ("f_inode",),
}
BTF_TYPE_SAFE_TRUSTED_OR_NULL: dict[str, tuple[str, ...]] = {
    "dentry": ("d_inode",), "socket": ("sk",), "vm_area_struct": ("vm_mm", "vm_file"),
}
BTF_TYPE_SAFE_RCU: dict[str, tuple[str, ...]] = {
    "task_struct": ("cpus_ptr", "cgroups", "real_parent", "group_leader"),
    "cgroup": ("kn",), "css_set": ("dfl_cgrp",), "cgroup_subsys_state": ("cgroup",),
}
BTF_TYPE_SAFE_RCU_OR_NULL: dict[str, tuple[str, ...]] = {
    "mm_struct": ("exe_file",), "sk_buff": ("sk",), "request_sock": ("sk",),
}
#: BPF_REG_TRUSTED_MODIFIERS (NON_OWN_REF aside): the flags a trusted pointer may carry.
_TRUSTED_MODIFIERS = MEM_ALLOC | PTR_TRUSTED


def _is_trusted_reg(reg: RegState) -> bool:
    """is_trusted_reg: referenced, or only MEM_ALLOC/PTR_TRUSTED among its flags."""
    flags = reg.type & ~0xFF
    return bool(reg.ref_obj_id) or bool(flags & _TRUSTED_MODIFIERS
                                        and not flags & ~_TRUSTED_MODIFIERS)


def _btf_ld_flag(v: Verifier, reg: RegState, tname: str, walk: StructWalk) -> int:
    """check_ptr_to_btf_access: the flags of a pointer loaded through ``reg``.

    An untrusted base makes everything it reaches untrusted. From a trusted or
    RCU base only the BTF_TYPE_SAFE_* members keep trust; inside an RCU section
    (any non-sleepable program is in one) other members become plain
    PTR_TO_BTF_ID, as do pointers loaded through a plain (old-style) pointer;
    outside, they become untrusted. ``walk.flag`` already carries PTR_UNTRUSTED
    when the walk crossed a union."""
    flag = walk.flag
    field = walk.field

    def listed(table: dict[str, tuple[str, ...]]) -> bool:
        return field in table.get(tname, ())

    if reg.type & PTR_UNTRUSTED:
        return PTR_UNTRUSTED
    if not (_is_trusted_reg(reg) or reg.type & MEM_RCU):
        return flag & ~(_TRUSTED_MODIFIERS | MEM_RCU)  # old compat: clear_trusted_flags
    if listed(BTF_TYPE_SAFE_TRUSTED):
        return flag | PTR_TRUSTED
    if listed(BTF_TYPE_SAFE_TRUSTED_OR_NULL):
        return flag | PTR_TRUSTED | PTR_MAYBE_NULL
    st = v.cur
    in_rcu_cs = st.active_rcu_lock or st.active_locks or not v.prog.prog_flags & 16
    if not in_rcu_cs or reg.type & PTR_MAYBE_NULL:
        return PTR_UNTRUSTED
    if listed(BTF_TYPE_SAFE_RCU):
        return flag | MEM_RCU
    if flag & MEM_RCU or listed(BTF_TYPE_SAFE_RCU_OR_NULL):
        flag |= MEM_RCU | PTR_MAYBE_NULL
        if listed(BTF_TYPE_SAFE_RCU_OR_NULL):
            flag &= ~PTR_UNTRUSTED  # "we always trust them"
        return flag
    if flag & (MEM_PERCPU | MEM_USER):
        return flag
    return flag & ~(_TRUSTED_MODIFIERS | MEM_RCU)  # clear_trusted_flags


@attrs.frozen
class StructWalk:
    """What btf_struct_access found at an offset: ``kind`` "scalar", "ptr" (to the
    struct ``target``, loaded from member ``field``) or "mem" (a pointer to
    anything else); ``flag`` is PTR_UNTRUSTED when the walk went through a union."""

    kind: str
    target: int = 0
    flag: int = 0
    field: str = ""


#: How many nested structs btf_struct_access follows (the kernel loops until done;
#: BTF nesting is finite, this only guards against a malformed BTF cycle).
_MAX_WALK_DEPTH = 64


def btf_struct_walk(v: Verifier, btf: Btf, t: BtfType, off: int, size: int) -> StructWalk:
    """btf_struct_access + btf_struct_walk: find the member an access of ``size`` at
    ``off`` lands in, descending into nested structs and unions (and arrays of them)."""
    flag = 0
    for _ in range(_MAX_WALK_DEPTH):
        t = btf.skip_mods_and_typedefs(t.id)
        tname = t.name or "(anon)"
        if t.kind not in (BtfKind.STRUCT, BtfKind.UNION):
            v.fail(errno.EINVAL, f"Type '{tname}' is not a struct")
        members = t.members
        if t.kind is BtfKind.UNION and len(members) != 1:
            flag |= PTR_UNTRUSTED  # walking unions yields untrusted pointers
        if off + size > t.size:
            nested = _flexible_array_elem(btf, t, off)
            if nested is None:
                v.fail(errno.EACCES, f"access beyond struct {tname} at off {off} size {size}")
            assert nested is not None
            if nested.kind is BtfKind.INT:
                return StructWalk("scalar")
            moff = members[-1].bit_offset // 8
            off = (off - moff) % nested.size
            t = nested
            continue
        inner: tuple[BtfType, int] | None = None
        for m in members:
            moff = m.bit_offset // 8
            if off + size <= moff:
                break  # won't find anything, the field is already too far
            if m.bitfield_size:
                end = -(-(m.bit_offset + m.bitfield_size) // 8)
                if off <= moff and end <= off + size:
                    return StructWalk("scalar")
                continue
            if off < moff:
                break  # a hole in the struct
            mname = m.name or "(anon)"
            mtype, msize, nelems = _resolve_size(btf, m.type)
            mtrue_end = moff + msize
            if off >= mtrue_end:
                continue
            if nelems:  # an array: as if its elements were members of their own
                if moff == mtrue_end:
                    continue
                msize //= nelems
                moff += (off - moff) // msize * msize
            if mtype.kind in (BtfKind.STRUCT, BtfKind.UNION):
                inner = (mtype, off - moff)  # the field is inside this struct or union
                break
            if mtype.kind is BtfKind.PTR:
                if msize != size or off != moff:
                    v.fail(errno.EACCES, f"cannot access ptr member {mname} with moff {moff} "
                           f"in struct {tname} with off {off} size {size}")
                target = btf.skip_mods_and_typedefs(mtype.type) if mtype.type else None
                if target is not None and target.kind in (BtfKind.STRUCT, BtfKind.UNION):
                    return StructWalk("ptr", target.id, flag, m.name)
                return StructWalk("mem")
            if off + size > mtrue_end and not flag & PTR_UNTRUSTED:
                v.fail(errno.EACCES, f"access beyond the end of member {mname} "
                       f"(mend:{mtrue_end}) in struct {tname} with off {off} size {size}")
            return StructWalk("scalar")
        if inner is None:
            v.fail(errno.EINVAL, f"struct {tname} doesn't have field at offset {off}")
        assert inner is not None
        t, off = inner
    v.fail(errno.EACCES, f"struct {t.name} nests too deeply")
    return StructWalk("scalar")


def _resolve_size(btf: Btf, tid: int) -> tuple[BtfType, int, int]:
    """__btf_resolve_size: a member's type (an array's innermost element type), its
    size in bytes, and for an array its element count (multi-dimensional arrays
    linearized), else 0."""
    t = btf.skip_mods_and_typedefs(tid)
    if t.kind is not BtfKind.ARRAY:
        return t, btf.sizeof(tid), 0
    nelems = 1
    while t.kind is BtfKind.ARRAY and t.array is not None:
        nelems *= t.array.nelems
        t = btf.skip_mods_and_typedefs(t.array.type)
    return t, nelems * btf.sizeof(t.id), nelems


def _flexible_array_elem(btf: Btf, t: BtfType, off: int) -> BtfType | None:
    """Past a struct's end: the element type of its trailing flexible array member
    (``T x[]``), when ``off`` lies in it and it is an int or a struct."""
    if not t.members:
        return None
    last = t.members[-1]
    arr = btf.skip_mods_and_typedefs(last.type)
    if arr.kind is not BtfKind.ARRAY or arr.array is None or arr.array.nelems:
        return None
    if off < last.bit_offset // 8:
        return None
    elem = btf.skip_mods_and_typedefs(arr.array.type)
    return elem if elem.kind in (BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION) else None


def _struct_walk(v: Verifier, btf: Btf, t: BtfType, off: int, size: int) -> tuple[str, int]:
    """btf_struct_walk for callers that only tell a struct pointer ("ptr", its id)
    from anything else ("scalar", 0)."""
    walk = btf_struct_walk(v, btf, t, off, size)
    return ("ptr", walk.target) if walk.kind == "ptr" else ("scalar", 0)


# -- program extensions ---------------------------------------------------------------------------
def check_ext_target(v: Verifier) -> None:
    """bpf_check_attach_target for BPF_PROG_TYPE_EXT, then resolve_prog_type."""
    from ..errors import BpfError
    from ..progs import prog_type_ops

    prog = v.prog
    try:
        proto, subprog = ext_attach_target(prog, prog.dst_prog, prog.attach_btf_id)
    except BpfError as err:
        v.fail(err.errno, err.strerror)
    tgt = prog.dst_prog
    prog.attach_func_proto = proto
    prog.attach_insn_off = tgt.func_info[subprog].insn_off
    # resolve_prog_type: an extension is verified as the program it extends.
    v.prog_type = ProgType(tgt.prog_type)
    v.ops = _as_target_type(prog_type_ops(tgt.prog_type), v.prog_type)


class _ResolvedProg:
    """The extension as its target's type sees it (resolve_prog_type): what the
    target type's is_valid_access, which may look at ``prog.prog_type``, gets."""

    def __init__(self, prog: Any, prog_type: ProgType) -> None:
        self._prog = prog
        self.prog_type = prog_type

    def __getattr__(self, name: str) -> Any:
        return getattr(self._prog, name)


def _as_target_type(ops: Any, prog_type: ProgType) -> Any:
    if ops is None or ops.is_valid_access is None:
        return ops
    check = ops.is_valid_access

    def is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
        return check(off, size, write, _ResolvedProg(prog, prog_type))  # type: ignore[no-any-return]

    return attrs.evolve(ops, is_valid_access=is_valid_access)


def ext_attach_target(prog: Any, tgt: Any, btf_id: int) -> tuple[BtfType, int]:
    """bpf_check_attach_target's rules for an extension of ``tgt``'s function
    ``btf_id``: its FUNC_PROTO and subprogram index, or BpfError (EINVAL) with the
    kernel's message. Used at load (with the log) and when a link retargets."""
    from ..errors import BpfError

    def fail(message: str) -> BpfError:
        return BpfError(errno.EINVAL, message)

    if not btf_id:
        raise fail("Tracing programs must provide btf_id")
    btf = tgt.btf if tgt is not None else prog.attach_btf
    if btf is None:
        raise fail("FENTRY/FEXIT program can only be attached to another program annotated "
                   "with BTF")
    if btf_id >= len(btf.types):
        raise fail(f"attach_btf_id {btf_id} is invalid")
    t = btf.type(btf_id)
    if not t.name:
        raise fail(f"attach_btf_id {btf_id} doesn't have a name")
    if tgt is None:
        raise fail("Cannot replace kernel functions")
    subprog = next((i for i, r in enumerate(tgt.func_info) if r.type_id == btf_id), None)
    if subprog is None:
        raise fail(f"Subprog {t.name} doesn't exist")
    if t.kind is BtfKind.FUNC and t.linkage != FuncLinkage.GLOBAL:
        raise fail("Cannot replace static functions")
    if tgt.prog_type == ProgType.EXT:
        raise fail("Cannot recursively attach")
    if tgt.prog_type == ProgType.TRACING and tgt.expected_attach_type in (
            AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT):
        raise fail("Cannot extend fentry/fexit")
    if t.kind is not BtfKind.FUNC:
        raise fail(f"attach_btf_id {btf_id} is not a function")
    message = btf_check_type_match(prog, btf, t)
    if message is not None:
        raise fail(message)
    proto = btf.type(t.type)
    if proto.kind is not BtfKind.FUNC_PROTO:
        raise fail(f"attach_btf_id {btf_id} has no prototype")
    return proto, subprog


def _type_str(t: BtfType) -> str:
    return t.kind.name if t.kind is not BtfKind.UNKN else "UNKN"


def btf_check_type_match(prog: Any, btf2: Btf, t2: BtfType) -> str | None:
    """btf_check_type_match / btf_check_func_type_match: the extension's own function
    (its func_info[0]) against the one it replaces; the mismatch, or None."""
    if not prog.func_info or prog.btf is None:
        return "Program extension requires BTF"
    btf1: Btf = prog.btf
    t1 = btf1.type(prog.func_info[0].type_id)
    fn1, fn2 = t1.name, t2.name
    if t1.linkage != FuncLinkage.GLOBAL:
        return f"{fn1}() is not a global function"
    if t2.linkage != FuncLinkage.GLOBAL:
        return f"{fn2}() is not a global function"
    p1, p2 = btf1.type(t1.type), btf2.type(t2.type)
    if len(p1.params) != len(p2.params):
        return f"{fn1}() has {len(p1.params)} args while {fn2}() has {len(p2.params)} args"
    r1, r2 = btf1.skip_mods(p1.type), btf2.skip_mods(p2.type)
    if _info(r1) != _info(r2):
        return f"Return type {_type_str(r1)} doesn't match {_type_str(r2)}"
    for i, (a1, a2) in enumerate(zip(p1.params, p2.params, strict=True)):
        x1, x2 = btf1.skip_mods(a1.type), btf2.skip_mods(a2.type)
        if _info(x1) != _info(x2):
            return f"arg{i} in {fn1}() is {_type_str(x1)} while {fn2}() has {_type_str(x2)}"
        if x1.kind in _SIZED and x1.size != x2.size:
            return f"arg{i} in {fn1}() has size {x1.size} while {fn2}() has {x2.size}"
        if x1.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
            continue
        if x1.kind is not BtfKind.PTR:
            return f"arg{i} in {fn1}() has unrecognized type"
        s1, s2 = btf1.skip_mods(x1.type), btf2.skip_mods(x2.type)
        if s1.kind is not BtfKind.STRUCT:
            return f"arg{i} in {fn1}() is not a pointer to context"
        if s2.kind is not BtfKind.STRUCT:
            return f"arg{i} in {fn2}() is not a pointer to context"
        if s1.name != s2.name:
            return f"arg{i} {fn1}(struct {s1.name} *) doesn't match {fn2}(struct {s2.name} *)"
    return None


_SIZED = (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.STRUCT, BtfKind.UNION,
          BtfKind.FLOAT, BtfKind.DATASEC)


def _info(t: BtfType) -> tuple[int, int, bool]:
    """A btf_type's ``info`` word (kind, vlen, kflag): what the kernel compares."""
    return (int(t.kind), t.vlen, t.kflag)
