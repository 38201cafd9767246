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
from .types import PTR_MAYBE_NULL, PTR_TRUSTED, PTR_UNTRUSTED, RegType, reg_type_str

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
}


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
    """check_ptr_to_btf_access over the kernel BTF."""
    from ..kernel_btf import kernel_btf

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
        v.fail(errno.EACCES, f"R{regno} is ptr_{tname} invalid variable offset: off={off}")
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
    kind, target = _struct_walk(v, btf, t, off, size)
    if value_regno < 0:
        return
    dst = v.cur.regs[value_regno]
    if kind == "scalar":
        dst.mark_unknown()
    else:
        trusted = bool(reg.type & PTR_TRUSTED) and any(
            btf.member(t.id, field).bit_offset // 8 == off
            for field in BTF_TYPE_SAFE_TRUSTED.get(t.name, ()))
        dst.set_ptr(int(RegType.PTR_TO_BTF_ID) | (PTR_TRUSTED if trusted else PTR_UNTRUSTED))
        dst.btf_id = target


#: BTF_TYPE_SAFE_TRUSTED: pointer members a trusted pointer's load keeps trusted.
BTF_TYPE_SAFE_TRUSTED: dict[str, tuple[str, ...]] = {
    "bpf_iter_meta": ("seq",),
}


def _struct_walk(v: Verifier, btf: Btf, t: BtfType, off: int, size: int) -> tuple[str, int]:
    """btf_struct_walk: find the member an access of ``size`` at ``off`` lands in."""
    for _ in range(32):
        if off + size > t.size:
            v.fail(errno.EACCES, f"access beyond struct {t.name} at off {off} size {size}")
        for m in t.members:
            if m.bitfield_size:
                moff, mend = m.bit_offset // 8, (m.bit_offset + m.bitfield_size + 7) // 8
            else:
                moff = m.bit_offset // 8
                mend = moff + btf.sizeof(m.type)
            if not moff <= off < mend:
                continue
            mt = btf.skip_mods_and_typedefs(m.type)
            while mt.kind is BtfKind.ARRAY and mt.array is not None:
                elem = btf.sizeof(mt.array.type)
                off = moff + (off - moff) % elem if elem else moff
                mend = moff + elem
                mt = btf.skip_mods_and_typedefs(mt.array.type)
            if mt.kind in (BtfKind.STRUCT, BtfKind.UNION):
                t, off = mt, off - moff
                break
            if off + size > mend:
                v.fail(errno.EACCES, f"access beyond the end of member {m.name} (mend:{mend}) "
                       f"in struct {t.name} with off {off} size {size}")
            if mt.kind is BtfKind.PTR:
                if off != moff or size != 8:
                    v.fail(errno.EACCES, f"access of pointer member {m.name} of struct "
                           f"{t.name} must be 8 bytes at its start")
                target = btf.skip_mods_and_typedefs(mt.type)
                if target.kind is BtfKind.STRUCT:
                    return "ptr", target.id
            return "scalar", 0
        else:
            return "scalar", 0  # padding between members reads as a scalar
    v.fail(errno.EACCES, f"struct {t.name} nests too deeply")
    return "scalar", 0


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
