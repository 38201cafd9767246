"""Global subprograms: verified once, from their BTF prototype, not at each call.

A subprogram whose ``func_info`` names a FUNC of global linkage (a non-static C
function) is, for the kernel, a function with a contract. A call to it checks
the arguments against the prototype (``btf_check_subprog_call``), takes R0 as
an unknown scalar and goes on after the call ("Func#1 ('f') is global and
assumed valid."). Once the main program passed, every global function called
on some path is verified on its own (``do_check_subprogs``), starting from
registers typed by its prototype (``btf_prepare_func_args``): a scalar, the
context, or a maybe-NULL pointer to memory of the pointee's size. A global
function verified this way must return a scalar.

This is what makes the kernel refuse a global function that dereferences a
pointer argument without a NULL check even when every caller passes a valid
pointer; a static function is verified at each call instead, with the
caller's actual values.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import attrs

from ..btf import Btf, BtfKind, FuncLinkage
from .log import VerifierAbort
from .state import BPF_REG_FP, FuncState, RegState, VerifierState
from .types import (
    MEM_RDONLY,
    MEM_RINGBUF,
    PTR_MAYBE_NULL,
    RegType,
    base_type,
    reg_type_str,
)

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["check_global_call", "do_check_subprogs", "init_arg_regs", "subprog_is_global"]

MAX_BPF_FUNC_REG_ARGS = 5


@attrs.frozen
class ArgInfo:
    """bpf_subprog_arg_info: what one argument of a global function is."""

    #: "scalar" (ARG_ANYTHING), "ctx" (ARG_PTR_TO_CTX), "mem" (ARG_PTR_TO_MEM) or
    #: "dynptr" (``struct bpf_dynptr *``: ARG_PTR_TO_DYNPTR | MEM_RDONLY).
    kind: str
    mem_size: int = 0
    maybe_null: bool = False


class ArgsRefused(Exception):
    """btf_prepare_func_args refused the prototype (its log line, if any)."""


def _func(v: Verifier, subprog: int) -> tuple[Btf, object] | None:
    prog = v.prog
    info = getattr(prog, "func_info", None)
    btf = getattr(prog, "btf", None)
    if not info or btf is None or subprog >= len(info):
        return None
    return btf, btf.type(info[subprog].type_id)


def subprog_is_global(v: Verifier, subprog: int) -> bool:
    """subprog_is_global: the subprogram's func_info FUNC has global linkage."""
    found = _func(v, subprog)
    return found is not None and found[1].linkage == FuncLinkage.GLOBAL  # type: ignore[attr-defined]


def subprog_name(v: Verifier, subprog: int) -> str:
    found = _func(v, subprog)
    return found[1].name if found is not None else ""  # type: ignore[attr-defined]


def prepare_func_args(v: Verifier, subprog: int) -> list[ArgInfo]:
    """btf_prepare_func_args: the argument kinds of a global function's prototype;
    ArgsRefused (with the kernel's log line) when it has none pyebpf's kernel takes."""
    cache = v.global_args
    if subprog in cache:
        return cache[subprog]
    found = _func(v, subprog)
    if found is None:
        raise ArgsRefused("")
    btf, func = found
    name = func.name  # type: ignore[attr-defined]
    proto = btf.type(func.type)  # type: ignore[attr-defined]
    ret = btf.skip_mods_and_typedefs(proto.type)
    if proto.type and ret.kind not in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
        raise ArgsRefused(f"Global function {name}() doesn't return scalar. Only those are "
                          "supported.")
    if len(proto.params) > MAX_BPF_FUNC_REG_ARGS:
        raise ArgsRefused(f"Global function {name}() with {len(proto.params)} > 5 args. "
                          "Buggy compiler.")
    from .btf_attach import CTX_STRUCT_NAMES

    ctx_name = CTX_STRUCT_NAMES.get(v.prog_type)
    args: list[ArgInfo] = []
    for i, p in enumerate(proto.params):
        t = btf.skip_mods_and_typedefs(p.type)
        if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
            args.append(ArgInfo("scalar"))
            continue
        if t.kind is BtfKind.PTR:
            target = btf.skip_mods_and_typedefs(t.type)
            if target.kind is BtfKind.STRUCT and target.name == ctx_name:
                args.append(ArgInfo("ctx"))
                continue
            if target.kind is BtfKind.STRUCT and target.name == "bpf_dynptr":
                args.append(ArgInfo("dynptr"))  # btf_is_dynptr_ptr
                continue
            if t.type and target.kind is not BtfKind.FUNC_PROTO:
                try:
                    size = btf.sizeof(t.type)
                except Exception:
                    size = 0
                if size:
                    args.append(ArgInfo("mem", size, maybe_null=True))
                    continue
        raise ArgsRefused(f"Arg#{i} type {t.kind.name} in {name}() is not supported yet.")
    cache[subprog] = args
    return args


def init_arg_regs(v: Verifier, frame: FuncState, subprog: int) -> None:
    """do_check_common for a global function (or an extension): r1-r5 as the
    prototype types them."""
    name = subprog_name(v, subprog)
    if v.log.level:
        v.verbose(f"Validating {name}() func#{subprog}...\n")
    try:
        args = prepare_func_args(v, subprog)
    except ArgsRefused as refused:
        v.fail(errno.EINVAL, str(refused))
        return
    for i, arg in enumerate(args):
        reg = frame.regs[i + 1]
        if arg.kind == "scalar":
            reg.mark_unknown()
        elif arg.kind == "ctx":
            reg.set_ptr(int(RegType.PTR_TO_CTX))
        elif arg.kind == "dynptr":  # assumed a LOCAL dynptr, read only
            from .dynptr import BpfDynptrType, mark_dynptr_cb_reg

            mark_dynptr_cb_reg(v, reg, BpfDynptrType.LOCAL)
        else:
            reg.set_ptr(int(RegType.PTR_TO_MEM) | (PTR_MAYBE_NULL if arg.maybe_null else 0))
            reg.mem_size = arg.mem_size
            if arg.maybe_null:
                reg.id = v.new_id()


def _check_arg_match(v: Verifier, subprog: int, regs: list[RegState]) -> int:
    """btf_check_func_arg_match: 0, or the errno of the first argument the caller
    passes wrong (its reason logged). Raises ArgsRefused for a prototype pyebpf's
    kernel can't take."""
    args = prepare_func_args(v, subprog)
    from .calls import check_helper_mem_access
    from .mem import check_ptr_off_reg

    for i, arg in enumerate(args):
        regno = i + 1
        reg = regs[regno]
        if arg.kind == "scalar":
            if reg.type != RegType.SCALAR_VALUE:
                v.verbose(f"R{regno} is not a scalar\n")
                return errno.EINVAL
            continue
        try:
            _check_func_arg_reg_off(v, reg, regno, check_ptr_off_reg)
            if arg.kind == "ctx":
                if reg.type != RegType.PTR_TO_CTX:
                    v.verbose(f"arg#{i} expects pointer to ctx\n")
                    return errno.EINVAL
                continue
            if arg.kind == "dynptr":
                from ..helpers.proto import ArgType
                from .dynptr import process_dynptr_func

                process_dynptr_func(v, regno, -1, ArgType.ARG_PTR_TO_DYNPTR | MEM_RDONLY)
                continue
            _check_mem_reg(v, reg, regno, arg.mem_size, check_helper_mem_access)
        except VerifierAbort as abort:  # its reason is in the log already
            return abort.errno
        if not arg.maybe_null and reg.type & PTR_MAYBE_NULL:
            v.verbose(f"arg#{i} is expected to be non-NULL\n")
            return errno.EINVAL
    return 0


#: check_func_arg_reg_off: pointers that may carry any offset into an argument.
_ANY_OFFSET = frozenset({
    RegType.PTR_TO_STACK, RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META,
    RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MEM,
    RegType.PTR_TO_MEM | MEM_RDONLY, RegType.PTR_TO_MEM | MEM_RINGBUF, RegType.PTR_TO_BUF,
    RegType.PTR_TO_BUF | MEM_RDONLY, RegType.PTR_TO_ARENA, RegType.SCALAR_VALUE})


def _check_func_arg_reg_off(v: Verifier, reg: RegState, regno: int, check: object) -> None:
    """check_func_arg_reg_off (ARG_DONTCARE): memory pointers may point anywhere
    in their object, BTF pointers at a fixed offset, others only at its start."""
    if reg.type in _ANY_OFFSET:
        return
    fixed_off_ok = base_type(reg.type) == RegType.PTR_TO_BTF_ID
    check(v, reg, regno, fixed_off_ok)  # type: ignore[operator]


def _check_mem_reg(v: Verifier, reg: RegState, regno: int, size: int, check: object) -> None:
    """check_mem_reg: NULL, or memory of ``size`` bytes readable and writable
    (a maybe-NULL pointer is checked as if it weren't NULL)."""
    if reg.type == RegType.SCALAR_VALUE and reg.is_const and reg.const_value == 0:
        return
    saved = None
    if reg.type & PTR_MAYBE_NULL:
        saved = reg.type
        reg.type &= ~PTR_MAYBE_NULL
    try:
        check(v, regno, size, False, True, None)  # type: ignore[operator]
        check(v, regno, size, True, True, None)  # type: ignore[operator]
    finally:
        if saved is not None:
            reg.type = saved


def check_global_call(v: Verifier, subprog: int) -> None:
    """check_func_call for a global callee: the arguments against the prototype,
    then R0 unknown and on to the next instruction."""
    st = v.cur
    caller = st.frames[st.curframe]
    name = subprog_name(v, subprog)
    try:
        err = _check_arg_match(v, subprog, caller.regs)
    except ArgsRefused as refused:
        if str(refused):
            v.verbose(str(refused) + "\n")
        err = errno.EINVAL
    if st.active_locks:
        v.fail(errno.EINVAL, "global function calls are not allowed while holding a lock,\n"
               "use static function instead")
    if err:
        v.fail(err, f"Caller passes invalid args into func#{subprog} ('{name}')")
    if v.log.level:
        v.verbose(f"Func#{subprog} ('{name}') is global and assumed valid.\n")
    if subprog_changes_pkt_data(v, subprog):
        from .calls import _clear_all_pkt_pointers

        _clear_all_pkt_pointers(v)
    v.global_called.add(subprog)
    for r in range(6):
        caller.regs[r].mark_not_init()
    caller.regs[0].mark_unknown()
    v.scratch(0)


def subprog_changes_pkt_data(v: Verifier, subprog: int) -> bool:
    """changes_pkt_data of a subprogram: it, or a function it calls, may move the
    packet (a helper of bpf_helper_changes_pkt_data)."""
    from .calls import CHANGES_PKT_DATA
    from .cfg import pseudo_call

    starts = v.subprog_starts
    seen: set[int] = set()
    todo = [subprog]
    while todo:
        s = todo.pop()
        if s in seen:
            continue
        seen.add(s)
        for i in range(starts[s], starts[s + 1]):
            insn = v.insns[i]
            if insn.code != 0x85:
                continue
            if insn.src == 0 and insn.imm in CHANGES_PKT_DATA:
                return True
            if pseudo_call(insn):
                import bisect

                todo.append(bisect.bisect_right(starts, i + insn.imm + 1) - 1)
    return False


def check_global_return(v: Verifier) -> None:
    """check_return_code at a global function's exit: R0 must be a scalar."""
    r0 = v.cur.regs[0]
    if r0.type != RegType.SCALAR_VALUE:
        v.fail(errno.EINVAL, f"At subprogram exit the register R0 is not a scalar value "
               f"({reg_type_str(r0.type)})")


def do_check_subprogs(v: Verifier) -> None:
    """do_check_subprogs: verify each global function some path called, each on
    its own, until no new one is called."""
    called = v.global_called
    verified: set[int] = set()
    while True:
        new = 0
        for i in range(1, len(v.subprog_starts) - 1):
            if not subprog_is_global(v, i) or i not in called or i in verified:
                continue
            v.do_check_common(i)
            if v.log.level:
                v.verbose(f"Func#{i} ('{subprog_name(v, i)}') is safe for any args that "
                          "match its prototype\n")
            verified.add(i)
            new += 1
        if not new:
            return


def global_entry_state(v: Verifier, subprog: int) -> VerifierState:
    """The state a global function's walk starts from: frame 0 of that subprogram,
    r1-r5 from its prototype, r10 the frame pointer."""
    st = VerifierState()
    frame = FuncState(0, -1, subprog)
    fp = frame.regs[BPF_REG_FP]
    fp.set_ptr(RegType.PTR_TO_STACK)
    fp.frameno = 0
    st.frames = [frame]
    st.branches = 1
    init_arg_regs(v, frame, subprog)
    return st
