"""BPF_PROG_TYPE_TRACING and BPF_PROG_TYPE_LSM: programs typed by the kernel BTF.

The kernel has one program type for fentry/fexit/fmod_ret, BTF raw tracepoints
and BPF iterators, and one for LSM hooks; what the ctx is depends on the
expected attach type and the BTF object ``attach_btf_id`` names. The attach
types pyebpf simulates are in :data:`TRACING_ATTACH`:

- BPF_TRACE_FENTRY / BPF_TRACE_FEXIT / BPF_MODIFY_RETURN (``SEC("fentry/f")``,
  ``fexit/f``, ``fmod_ret/f``) and BPF_LSM_MAC (``SEC("lsm/hook")``):
  ``attach_btf_id`` is a kernel function (pyebpf.kernel_funcs); the ctx is its
  arguments as u64 slots (btf_ctx_access: integers read as scalars, pointers to
  structs as PTR_TO_BTF_ID of the struct), fexit's and fmod_ret's extra slot
  after the arguments holds the return value. bpf_check_attach_target's rules
  and messages apply (fmod_ret only on fmod_ret-set / error-injectable
  functions, LSM only on ``bpf_lsm_*`` hooks, the sleepable rules). They are
  attached (BPF_RAW_TRACEPOINT_OPEN, or BPF_LINK_CREATE) to the function's
  trampoline, a TRACING link, and run when Python calls the function
  (``Runtime.kernel_call``): fentry programs first, then fmod_ret programs (the
  first nonzero return skips the function and is its result), the function,
  then fexit programs. Programs of one kind run newest first (the trampoline's
  hlist_add_head). An LSM program on an int hook is an fmod_ret program (its
  nonzero return, an -errno, denies), on a void hook an fexit one.
- BPF_TRACE_RAW_TP (``SEC("tp_btf/<tp>")``): ``attach_btf_id`` is the typedef
  ``btf_trace_<tp>``; the ctx is the tracepoint's arguments (without the
  ``__data`` first parameter), pointers trusted. Attaching gives a
  RAW_TRACEPOINT link on the tracepoint (pyebpf.links.tracing), which fires
  with :func:`pyebpf.links.tracing.fire_raw_tracepoint`.
- BPF_TRACE_ITER (``SEC("iter/<target>")``): ``attach_btf_id`` is the kernel
  BTF function ``bpf_iter_<target>``; the ctx is ``struct bpf_iter__<target>``
  (``meta``, then the target's object pointers, see :mod:`pyebpf.links.iter`);
  programs return 0 or 1 and run when an iterator fd is read.

BPF_PROG_TEST_RUN of a TRACING program is bpf_prog_test_run_tracing: for
fentry/fexit it calls ``bpf_fentry_test1`` .. ``bpf_fentry_test9`` (EFAULT when
one of them returns what it should not, e.g. an fmod_ret program changed it),
for fmod_ret ``bpf_modify_return_test`` and ``bpf_modify_return_test2``, and
reports ``(side_effect << 16) | ret`` as the kernel does; other attach types
are EFAULT. Whatever programs are attached to those functions run. LSM
programs can't be test-run (ENOTSUPP). fentry/fexit arguments are plain
PTR_TO_BTF_IDs: loads through them are BPF_PROBE_MEM (``bpf_fentry_test7(NULL)``'s
``arg->a`` reads 0). Not simulated: fentry/fexit on BPF programs
(``attach_prog_fd``), BPF_LSM_CGROUP links.
"""

from __future__ import annotations

import enum
import errno
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..btf import Btf, BtfKind, BtfType
from ..errors import BpfError
from ..links.base import BpfLink, register_link_kind
from ..uapi import AttachType, LinkType, ProgType
from . import ProgTypeOps, register_prog_type

if TYPE_CHECKING:
    from ..attr import LinkCreateAttr, TestRunAttr
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["BPF_MAX_TRAMP_LINKS", "TRACING_ATTACH", "CtxDenied", "TrampKind", "Trampoline",
           "TracingLink", "attach_cookie", "bpf_run_ctx", "check_lsm_return_code",
           "check_tracing_btf_id", "func_ip", "lsm_return_unchecked", "lsm_retval_range",
           "tracing_is_valid_access", "tracing_prog_attach", "tracing_raw_tp_open",
           "trampoline_call"]

A = AttachType
#: BPF_MAX_TRAMP_LINKS on x86-64: programs one trampoline runs, all kinds together.
BPF_MAX_TRAMP_LINKS = 38
#: MAX_BPF_FUNC_ARGS: the most arguments a traced function may have.
MAX_BPF_FUNC_ARGS = 12
#: MAX_ERRNO: LSM int hooks return 0 or -errno down to this.
MAX_ERRNO = 4095
#: The prefix a fmod_ret target may have besides the fmod_ret sets (check_attach_modify_return).
SECURITY_PREFIX = "security_"


class TrampKind(enum.Enum):
    """enum bpf_tramp_prog_type: the trampoline's program lists, in the order they run."""

    FENTRY = "fentry"
    MODIFY_RETURN = "fmod_ret"
    FEXIT = "fexit"


#: The trampoline's stack frame region, and the slot of it the programs' ctx starts at.
TRAMP_FRAME = "trampoline_frame"
TRAMP_CTX_SLOT = 2
#: Where pyebpf's simulated kernel text would be: function addresses (bpf_get_func_ip).
KERNEL_TEXT = 0xFFFF_FFFF_8100_0000


def _abort(err: int, message: str) -> None:
    """A refusal the kernel returns without writing to the log."""
    from ..verifier.log import VerifierAbort

    raise VerifierAbort(err, message)


# -- bpf_check_attach_target ---------------------------------------------------------------------
def _iter_check(v: Any) -> None:
    """bpf_check_attach_target for iterators: attach_btf_id names a ``bpf_iter_<target>``
    function whose target pyebpf simulates (bpf_iter_prog_supported)."""
    from ..links.iter import target_of_btf_id

    _, t = _attach_target(v)
    btf_id = v.prog.attach_btf_id
    if t.kind is not BtfKind.FUNC:
        v.fail(errno.EINVAL, f"attach_btf_id {btf_id} is not a function")
    if target_of_btf_id(btf_id) is None:  # bpf_iter_prog_supported: no log line
        _abort(errno.EINVAL, f"attach_btf_id {btf_id} is not an iterator target function "
               "(bpf_iter_<target>) pyebpf simulates")


def _iter_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    from ..links.iter import target_of_btf_id

    target = target_of_btf_id(prog.attach_btf_id)
    if target is None:
        return None
    return target.ctx_access(off, size, write)


def _attach_type_name(t: BtfType) -> str:
    return t.kind.name if t.kind is not BtfKind.UNKN else "UNKN"


def _distill_func_proto(v: Any, btf: Btf, proto: BtfType, tname: str) -> None:
    """btf_distill_func_proto: the argument and return shapes a trampoline handles."""
    if len(proto.params) > MAX_BPF_FUNC_ARGS:
        v.fail(errno.EINVAL, f"The function {tname} has {len(proto.params)} arguments. "
               "Too many.")
    ret = btf.skip_mods_and_typedefs(proto.type) if proto.type else None
    if ret is not None and ret.kind in (BtfKind.STRUCT, BtfKind.UNION):
        v.fail(errno.EINVAL, f"The function {tname} return type {_attach_type_name(ret)} is "
               "unsupported.")
    for i, p in enumerate(proto.params):
        if i == len(proto.params) - 1 and p.type == 0:
            v.fail(errno.EINVAL, f"The function {tname} with variable args is unsupported.")
        size = btf.sizeof(p.type) if p.type else 0
        if size > 16:
            t = btf.skip_mods_and_typedefs(p.type)
            v.fail(errno.EINVAL, f"The function {tname} arg{i} type {_attach_type_name(t)} is "
                   "unsupported.")


def _func_check(v: Any) -> None:
    """bpf_check_attach_target for fentry/fexit/fmod_ret/LSM (a kernel function), then
    the rest of check_attach_btf_id (bpf_lsm_verify_prog for LSM programs)."""
    from ..kernel_funcs import BPF_LSM_PREFIX, kernel_func

    prog = v.prog
    btf, t = _attach_target(v)
    btf_id = prog.attach_btf_id
    if t.kind is not BtfKind.FUNC:
        v.fail(errno.EINVAL, f"attach_btf_id {btf_id} is not a function")
    proto = btf.type(t.type)
    if proto.kind is not BtfKind.FUNC_PROTO:
        _abort(errno.EINVAL, f"attach_btf_id {btf_id} has no prototype")
    tname = t.name
    _distill_func_proto(v, btf, proto, tname)
    f = kernel_func(tname)
    if f is None:  # kallsyms_lookup_name: pyebpf has no code for it to trampoline
        v.fail(errno.ENOENT, f"The address of function {tname} cannot be found")
    assert f is not None
    eat = prog.expected_attach_type
    if prog.prog_flags & 16:  # BPF_F_SLEEPABLE
        if prog.prog_type == ProgType.TRACING:
            ok = f.error_injection or f.fmodret_sleepable
        else:
            ok = f.lsm_sleepable
        if not ok:
            v.fail(errno.EINVAL, f"{tname} is not sleepable")
    elif eat == A.MODIFY_RETURN and not (
            f.fmodret or f.error_injection or tname.startswith(SECURITY_PREFIX)):
        v.fail(errno.EINVAL, f"{tname}() is not modifiable")
    prog.attach_func_proto = proto
    prog.attach_func_name = tname
    if prog.prog_type == ProgType.LSM:  # bpf_lsm_verify_prog
        if not prog.gpl_compatible:
            v.fail(errno.EINVAL, "LSM programs must have a GPL compatible license")
        if not tname.startswith(BPF_LSM_PREFIX):
            v.fail(errno.EINVAL, f"attach_btf_id {btf_id} points to wrong type name {tname}")


def _raw_tp_check(v: Any) -> None:
    """bpf_check_attach_target for BPF_TRACE_RAW_TP: a ``btf_trace_<tp>`` typedef of a
    tracepoint the runtime knows; its FUNC_PROTO (``void *__data`` first)."""
    from ..kernel_funcs import BTF_TRACE_PREFIX
    from ..links.tracing import _state as tracing_state

    prog = v.prog
    btf, t = _attach_target(v)
    btf_id = prog.attach_btf_id
    if t.kind is not BtfKind.TYPEDEF:
        v.fail(errno.EINVAL, f"attach_btf_id {btf_id} is not a typedef")
    if not t.name.startswith(BTF_TRACE_PREFIX):
        v.fail(errno.EINVAL, f"attach_btf_id {btf_id} points to wrong type name {t.name}")
    tname = t.name[len(BTF_TRACE_PREFIX):]
    if tname not in tracing_state(prog.runtime)["raw_tp"]:  # bpf_get_raw_tracepoint
        _abort(errno.EINVAL, f"no raw tracepoint {tname!r}")
    ptr = btf.type(t.type)
    proto = btf.type(ptr.type) if ptr.kind is BtfKind.PTR else ptr
    if proto.kind is not BtfKind.FUNC_PROTO:
        _abort(errno.EINVAL, f"{t.name} is not a pointer to a function prototype")
    prog.attach_func_proto = proto
    prog.attach_func_name = tname
    prog.attach_btf_trace = True


def _attach_target(v: Any) -> tuple[Btf, BtfType]:
    """The common head of bpf_check_attach_target: the BTF and the named type."""
    prog = v.prog
    btf_id = prog.attach_btf_id
    if getattr(prog, "dst_prog", None) is not None:
        v.fail(errno.EINVAL, "pyebpf doesn't simulate fentry/fexit on BPF programs")
    btf: Btf | None = prog.attach_btf
    if btf is None:
        v.fail(errno.EINVAL, "FENTRY/FEXIT program can only be attached to another program "
               "annotated with BTF")
    assert btf is not None
    if btf_id >= len(btf.types):
        v.fail(errno.EINVAL, f"attach_btf_id {btf_id} is invalid")
    t = btf.type(btf_id)
    if not t.name:
        v.fail(errno.EINVAL, f"attach_btf_id {btf_id} doesn't have a name")
    return btf, t


# -- btf_ctx_access ------------------------------------------------------------------------------
class CtxDenied:
    """is_valid_access's refusal, with what btf_ctx_access logged first."""

    denied = True

    def __init__(self, log: str) -> None:
        self.log = log


class _Scalar(int):
    """A scalar ctx load; ``s32_range`` (the LSM return value slot) bounds it."""

    s32_range: tuple[int, int] | None

    def __new__(cls, s32_range: tuple[int, int] | None = None) -> _Scalar:
        from ..verifier.types import RegType

        obj = super().__new__(cls, int(RegType.SCALAR_VALUE))
        obj.s32_range = s32_range
        return obj


def btf_ctx_arg_idx(btf: Btf, proto: BtfType, off: int) -> int:
    """btf_ctx_arg_idx: the argument slot ``off`` falls in (structs take several);
    ``len(params)`` is the return value's slot, one more is past it."""
    end = 0
    for i, p in enumerate(proto.params):
        t = btf.skip_mods_and_typedefs(p.type) if p.type else None
        end += 8 if t is None or t.kind is BtfKind.PTR else -(-btf.sizeof(p.type) // 8) * 8
        if off < end:
            return i
    if proto.type:
        t = btf.skip_mods_and_typedefs(proto.type)
        end += 8 if t.kind is BtfKind.PTR else -(-btf.sizeof(proto.type) // 8) * 8
    if off < end:
        return len(proto.params)
    return len(proto.params) + 1


def _is_small_int(t: BtfType) -> bool:
    return t.kind is BtfKind.INT and t.size <= 8


def btf_ctx_access(off: int, size: int, write: bool, prog: Any) -> int | CtxDenied | None:
    """bpf_tracing_btf_ctx_access (bounds, read only, aligned) + btf_ctx_access for
    fentry/fexit/fmod_ret/tp_btf/LSM programs, with the kernel's log lines."""
    from ..kernel_btf import kernel_btf
    from ..verifier.btf_attach import BtfPtr
    from ..verifier.types import PTR_TRUSTED, RegType

    if off < 0 or off >= 8 * MAX_BPF_FUNC_ARGS or write or off % size:
        return None
    proto: BtfType | None = getattr(prog, "attach_func_proto", None)
    if proto is None:
        return None
    btf = kernel_btf()
    tname = prog.attach_func_name
    if off % 8:
        return CtxDenied(f"func '{tname}' offset {off} is not multiple of 8")
    arg = btf_ctx_arg_idx(btf, proto, off)
    params = list(proto.params)
    raw_tp = getattr(prog, "attach_btf_trace", False)
    if raw_tp:  # skip the first 'void *__data' argument of btf_trace_<tp>
        params = params[1:]
    nr_args = len(params)
    eat = prog.expected_attach_type
    s32_range = None
    if arg > nr_args:
        return CtxDenied(f"func '{tname}' doesn't have {arg + 1}-th argument")
    if arg == nr_args:
        if eat in (A.LSM_MAC, A.LSM_CGROUP, A.TRACE_FEXIT):
            if eat == A.LSM_MAC:  # the return value slot: is_retval
                s32_range = lsm_retval_range(prog)
            tid = proto.type
        elif eat == A.MODIFY_RETURN:
            tid = proto.type
            t = btf.skip_mods_and_typedefs(tid) if tid else None
            if t is None or not _is_small_int(t):
                kind = "UNKN" if t is None else _attach_type_name(t)
                return CtxDenied(f"ret type {kind} not allowed for fmod_ret")
        else:
            return CtxDenied(f"func '{tname}' doesn't have {arg + 1}-th argument")
    else:
        tid = params[arg].type
    if not tid:  # void
        return CtxDenied(f"func '{tname}' arg{arg} '' has type UNKN. Only pointer access is "
                         "allowed")
    t = btf.skip_mods_and_typedefs(tid)
    if _is_small_int(t) or t.kind in (BtfKind.ENUM, BtfKind.ENUM64, BtfKind.STRUCT,
                                      BtfKind.UNION):
        return _Scalar(s32_range)
    if t.kind is not BtfKind.PTR:
        return CtxDenied(f"func '{tname}' arg{arg} '{t.name}' has type "
                         f"{_attach_type_name(t)}. Only pointer access is allowed")
    if size != 8:
        return CtxDenied(f"func '{tname}' size {size} must be 8")
    if t.type == 0:  # void *: a scalar as far as safety goes
        return _Scalar()
    target = btf.skip_mods_and_typedefs(t.type)
    if target.kind is BtfKind.INT:  # is_int_ptr
        return _Scalar()
    reg_type = int(RegType.PTR_TO_BTF_ID)
    if _prog_args_trusted(prog):
        reg_type |= PTR_TRUSTED
    if target.kind not in (BtfKind.STRUCT, BtfKind.UNION):
        return CtxDenied(f"func '{tname}' arg{arg} type {_attach_type_name(target)} is not "
                         "a struct")
    loaded = BtfPtr(reg_type, target.id)
    loaded.log = (f"func '{tname}' arg{arg} has btf_id {target.id} type "  # type: ignore[attr-defined]
                  f"{_attach_type_name(target)} '{target.name}'")
    return loaded


def _prog_args_trusted(prog: Any) -> bool:
    """prog_args_trusted: tp_btf and iterator arguments, LSM hooks' (those pyebpf
    has are none of the untrusted_lsm_hooks); fentry/fexit's are not."""
    if prog.prog_type == ProgType.LSM:
        return True
    return prog.expected_attach_type in (A.TRACE_RAW_TP, A.TRACE_ITER)


# -- return values ---------------------------------------------------------------------------------
def lsm_retval_range(prog: Any) -> tuple[int, int] | None:
    """bpf_lsm_get_retval_range: int hooks return 0 or -errno; void hooks have none."""
    proto = getattr(prog, "attach_func_proto", None)
    if proto is None or not proto.type:
        return None
    return (-MAX_ERRNO, 0)


def lsm_return_unchecked(prog: Any) -> bool:
    """check_return_code's first case: an LSM_MAC program on a void hook returns
    nothing anyone reads, so R0 is not even checked for being set."""
    proto = getattr(prog, "attach_func_proto", None)
    return prog.expected_attach_type != A.LSM_CGROUP and (proto is None or not proto.type)


def check_lsm_return_code(v: Any, describe: Callable[[Any, int, int, str, str], str]) -> None:
    """check_return_code for LSM programs: an LSM_MAC program on an int hook returns
    0 or -errno (compared as s32); BPF_LSM_CGROUP returns [0, 1] ([1, 1] on a void
    hook); an LSM_MAC program on a void hook may return anything."""
    from ..verifier.precision import mark_chain_precision
    from ..verifier.types import RegType, reg_type_str

    prog = v.prog
    void = not getattr(prog, "attach_func_proto", None) or not prog.attach_func_proto.type
    return_32bit = False
    if prog.expected_attach_type != A.LSM_CGROUP:
        rng = lsm_retval_range(prog)
        if rng is None:
            return
        return_32bit = True
    else:
        rng = (1, 1) if void else (0, 1)
    r0 = v.cur.regs[0]
    if r0.type != RegType.SCALAR_VALUE:
        v.fail(errno.EINVAL, f"At program exit the register R0 is not a known value "
               f"({reg_type_str(r0.type)})")
    mark_chain_precision(v, 0)
    lo, hi = rng
    s = r0.scalar
    smin, smax = (s.s32_min, s.s32_max) if return_32bit else (s.smin, s.smax)
    if not (lo <= smin and smax <= hi):
        message = describe(r0, lo, hi, "At program exit", "R0")
        if prog.expected_attach_type == A.LSM_CGROUP and void:
            message += ("\nNote, BPF_LSM_CGROUP that attach to void LSM hooks can't modify "
                        "return value!")
        v.fail(errno.EINVAL, message)


#: expected_attach_type -> (the verifier's attach check, ctx access).
TRACING_ATTACH: dict[int, tuple[Callable[[Any], None],
                                Callable[[int, int, bool, Any], Any]]] = {
    A.TRACE_ITER: (_iter_check, _iter_access),
    A.TRACE_FENTRY: (_func_check, btf_ctx_access),
    A.TRACE_FEXIT: (_func_check, btf_ctx_access),
    A.MODIFY_RETURN: (_func_check, btf_ctx_access),
    A.TRACE_RAW_TP: (_raw_tp_check, btf_ctx_access),
}
#: The same for LSM programs (BPF_LSM_CGROUP verifies; its cgroup links are not simulated).
LSM_ATTACH: dict[int, tuple[Callable[[Any], None], Callable[[int, int, bool, Any], Any]]] = {
    A.LSM_MAC: (_func_check, btf_ctx_access),
    A.LSM_CGROUP: (_func_check, btf_ctx_access),
}


def _attach_table(prog: Any) -> dict[int, Any]:
    return LSM_ATTACH if prog.prog_type == ProgType.LSM else TRACING_ATTACH


def check_tracing_btf_id(v: Any) -> None:
    """check_attach_btf_id for TRACING and LSM, after the sleepable rule: a btf_id is
    required, then the attach type's own check; another attach type is the
    kernel's silent EINVAL (bpf_check_attach_target's default case)."""
    if not v.prog.attach_btf_id:
        v.fail(errno.EINVAL, "Tracing programs must provide btf_id")
    entry = _attach_table(v.prog).get(v.prog.expected_attach_type)
    if entry is None:
        _abort(errno.EINVAL, f"expected_attach_type {v.prog.expected_attach_type} can't "
               f"attach by BTF id for {v.prog.prog_type.name} programs")
        return
    entry[0](v)


def tracing_is_valid_access(off: int, size: int, write: bool, prog: Any) -> Any:
    entry = _attach_table(prog).get(prog.expected_attach_type)
    return entry[1](off, size, write, prog) if entry is not None else None


# -- the trampoline ------------------------------------------------------------------------------
def _tramp_kind(prog: BpfProg) -> TrampKind:
    """bpf_attach_type_to_tramp."""
    eat = prog.expected_attach_type
    if eat == A.TRACE_FENTRY:
        return TrampKind.FENTRY
    if eat == A.MODIFY_RETURN:
        return TrampKind.MODIFY_RETURN
    if eat == A.LSM_MAC:
        proto = prog.attach_func_proto
        return TrampKind.FEXIT if proto is None or not proto.type else TrampKind.MODIFY_RETURN
    return TrampKind.FEXIT


class Trampoline:
    """struct bpf_trampoline of one kernel function: its programs by kind."""

    def __init__(self, btf_id: int) -> None:
        self.btf_id = btf_id
        self.progs: dict[TrampKind, list[TracingLink]] = {kind: [] for kind in TrampKind}

    def link(self, link: TracingLink) -> None:
        """bpf_trampoline_link_prog / bpf_trampoline_add_prog."""
        assert link.prog is not None
        kind = _tramp_kind(link.prog)
        if sum(len(ls) for ls in self.progs.values()) >= BPF_MAX_TRAMP_LINKS:
            raise BpfError(errno.E2BIG, f"{BPF_MAX_TRAMP_LINKS} programs on the trampoline "
                           "already")
        if any(other.prog is link.prog for other in self.progs[kind]):
            raise BpfError(errno.EBUSY, "the program is already linked to this function")
        self.progs[kind].insert(0, link)  # hlist_add_head

    def unlink(self, link: TracingLink) -> None:
        for links in self.progs.values():
            if link in links:
                links.remove(link)


def _trampolines(rt: Runtime) -> dict[int, Trampoline]:
    got: dict[int, Trampoline] | None = rt.hooks.get("trampolines")
    if got is None:
        got = rt.hooks["trampolines"] = {}
    return got


def trampoline_call(rt: Runtime, btf_id: int, regs: list[int],
                    body: Callable[[list[int]], int]) -> int:
    """Run the function with vmlinux BTF id ``btf_id`` through its trampoline (as
    arch_prepare_bpf_trampoline lays it out): ``regs`` are the argument registers,
    ``body`` the function; returns the return register. The programs' ctx is the
    u64 args array with the return value's slot after it; below it, the argument
    count (ctx[-1]) and the function's address (ctx[-2]), which
    bpf_get_func_arg/_ret/_arg_cnt read (pyebpf.helpers.trampoline)."""
    tr = _trampolines(rt).get(btf_id)
    if tr is None or not any(tr.progs.values()):
        return body(regs)
    nr = len(regs)
    frame = bytearray(8 * (TRAMP_CTX_SLOT + nr + 1))
    struct.pack_into(f"<QQ{nr}Q", frame, 0, func_ip(btf_id), nr, *regs)
    region = rt.memory.map(frame, kind="ctx", name=TRAMP_FRAME)
    ctx = region.base + 8 * TRAMP_CTX_SLOT
    ret_off = 8 * (TRAMP_CTX_SLOT + nr)
    try:
        for link in list(tr.progs[TrampKind.FENTRY]):
            _run(link, ctx)
        skip = False
        if tr.progs[TrampKind.MODIFY_RETURN]:
            struct.pack_into("<Q", frame, ret_off, 0)
            for link in list(tr.progs[TrampKind.MODIFY_RETURN]):
                r0 = _run(link, ctx)
                struct.pack_into("<Q", frame, ret_off, r0)
                if r0:  # a nonzero return skips the function (goto do_fexit)
                    skip = True
                    break
        if not skip:
            args = list(struct.unpack_from(f"<{nr}Q", frame, 8 * TRAMP_CTX_SLOT))
            struct.pack_into("<Q", frame, ret_off, body(args) & 0xFFFF_FFFF_FFFF_FFFF)
        for link in list(tr.progs[TrampKind.FEXIT]):
            _run(link, ctx)
        return int(struct.unpack_from("<Q", frame, ret_off)[0])
    finally:
        rt.unmap_later(region)


def func_ip(btf_id: int) -> int:
    """The address of the simulated function with this vmlinux BTF id (16-byte
    aligned, as function entries are)."""
    return KERNEL_TEXT + 16 * btf_id


def _run(link: TracingLink, ctx_addr: int) -> int:
    prog = link.prog
    assert prog is not None
    with bpf_run_ctx(link.runtime, link.cookie):
        return prog.run(ctx_addr) & 0xFFFF_FFFF_FFFF_FFFF


@contextmanager
def bpf_run_ctx(rt: Runtime, cookie: int) -> Iterator[None]:
    """struct bpf_tramp_run_ctx / bpf_trace_run_ctx: the attach cookie of the link a
    program runs for, which bpf_get_attach_cookie reads (:func:`attach_cookie`)."""
    stack: list[int] = rt.hooks.setdefault("bpf_run_ctx", [])
    stack.append(cookie)
    try:
        yield
    finally:
        stack.pop()


def attach_cookie(rt: Runtime) -> int:
    """The cookie of the innermost program run with a :func:`bpf_run_ctx` (0: none)."""
    stack: list[int] = rt.hooks.get("bpf_run_ctx", [])
    return stack[-1] if stack else 0


class TracingLink(BpfLink):
    """struct bpf_tracing_link: a program on a kernel function's trampoline."""

    link_type = LinkType.TRACING

    def __init__(self, rt: Runtime, prog: BpfProg, btf_id: int, cookie: int) -> None:
        super().__init__(rt, prog, prog.expected_attach_type)
        self.target_btf_id = btf_id
        self.cookie = cookie

    @property
    def trampoline(self) -> Trampoline:
        table = _trampolines(self.runtime)
        tr = table.get(self.target_btf_id)
        if tr is None:
            tr = table[self.target_btf_id] = Trampoline(self.target_btf_id)
        return tr

    def attach(self) -> None:
        self.trampoline.link(self)
        self.attached = True

    def release_hook(self) -> None:
        self.trampoline.unlink(self)
        self.attached = False

    def fill_info(self, info: dict[str, int]) -> None:
        """bpf_tracing_link_fill_link_info: the trampoline key is the BTF object's
        id and the function's BTF id."""
        info.update(attach_type=self.attach_type, target_obj_id=self.runtime.btf_vmlinux.id,
                    target_btf_id=self.target_btf_id, cookie=self.cookie)


def tracing_prog_attach(rt: Runtime, prog: BpfProg, tgt_fd: int, btf_id: int,
                        cookie: int) -> TracingLink:
    """bpf_tracing_prog_attach for TRACING and LSM programs: the link, not yet attached.
    A program may be attached again after its link went (the re-attach path)."""
    eat = prog.expected_attach_type
    if prog.prog_type == ProgType.TRACING:
        if eat not in (A.TRACE_FENTRY, A.TRACE_FEXIT, A.MODIFY_RETURN):
            raise BpfError(errno.EINVAL, "only fentry/fexit/fmod_ret programs go on a "
                           "trampoline")
    elif prog.prog_type != ProgType.LSM or eat != A.LSM_MAC:
        raise BpfError(errno.EINVAL, "only BPF_LSM_MAC programs go on an LSM hook")
    if bool(tgt_fd) != bool(btf_id):
        raise BpfError(errno.EINVAL, "target_fd and target_btf_id come together")
    if tgt_fd:
        raise BpfError(errno.EINVAL, "only extensions take a new target at attach")
    return TracingLink(rt, prog, prog.attach_btf_id, cookie)


def tracing_raw_tp_open(rt: Runtime, prog: BpfProg, cookie: int) -> BpfLink:
    """bpf_raw_tp_link_attach for TRACING/LSM programs (no tracepoint name given):
    tp_btf programs go on their tracepoint, the others on their trampoline."""
    if prog.prog_type == ProgType.TRACING and prog.expected_attach_type == A.TRACE_RAW_TP:
        return _raw_tp_link(rt, prog, cookie)
    return tracing_prog_attach(rt, prog, 0, 0, cookie)


def _raw_tp_link(rt: Runtime, prog: BpfProg, cookie: int) -> BpfLink:
    from ..links.tracing import RawTracepointLink
    from ..links.tracing import _state as tracing_state

    name = prog.attach_func_name  # type: ignore[attr-defined]
    if name not in tracing_state(rt)["raw_tp"]:
        raise BpfError(errno.ENOENT, f"no raw tracepoint {name!r}")
    return RawTracepointLink(rt, prog, name, cookie)


def _link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> BpfLink:
    """link_create for TRACING (fentry/fexit/fmod_ret/tp_btf) and LSM_MAC programs."""
    if prog.expected_attach_type == A.TRACE_RAW_TP:
        return _raw_tp_link(rt, prog, attr.tracing_cookie)
    return tracing_prog_attach(rt, prog, attr.target_fd, attr.target_btf_id,
                               attr.tracing_cookie)


# -- BPF_PROG_TEST_RUN ----------------------------------------------------------------------------
def tracing_test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    """bpf_prog_test_run_tracing (net/bpf/test_run.c)."""
    from ..kernel_btf import KernelObject
    from ..kernel_funcs import kernel_call
    from ..prog import TestRunResult

    if attr.flags or attr.cpu or attr.batch_size:
        raise BpfError(errno.EINVAL, "tracing test runs take no flags, cpu or batch_size")
    eat = prog.expected_attach_type
    efault = BpfError(errno.EFAULT, "bpf_prog_test_run_tracing: the test functions "
                      "misbehaved (or the attach type has no test run)")
    ints = rt.memory.map(bytearray(8), kind="kernel", name="test_run_ints")
    arg = KernelObject(rt, "bpf_fentry_test_t")
    try:
        retval_addr, b_addr = ints.base, ints.base + 4  # u32 retval; int b
        if eat in (A.TRACE_FENTRY, A.TRACE_FEXIT):
            calls: tuple[tuple[str, tuple[int, ...], int], ...] = (
                ("bpf_fentry_test1", (1,), 2), ("bpf_fentry_test2", (2, 3), 5),
                ("bpf_fentry_test3", (4, 5, 6), 15), ("bpf_fentry_test4", (7, 8, 9, 10), 34),
                ("bpf_fentry_test5", (11, 12, 13, 14, 15), 65),
                ("bpf_fentry_test6", (16, 17, 18, 19, 20, 21), 111),
                ("bpf_fentry_test7", (0,), 0), ("bpf_fentry_test8", (arg.addr,), 0),
                ("bpf_fentry_test9", (retval_addr,), 0))
            for name, args, want in calls:
                if kernel_call(rt, name, *args) != want:
                    raise efault
            retval = 0
        elif eat == A.MODIFY_RETURN:
            side_effect = 0
            rt.memory.store(b_addr, 4, 2)
            ret = int(kernel_call(rt, "bpf_modify_return_test", 1, b_addr) or 0) & 0xFFFF
            if rt.memory.load(b_addr, 4) != 2:
                side_effect += 1
            rt.memory.store(b_addr, 4, 2)
            ret = (ret + int(kernel_call(rt, "bpf_modify_return_test2", 1, b_addr, 3, 4, 5,
                                         6, 7) or 0)) & 0xFFFF
            if rt.memory.load(b_addr, 4) != 2:
                side_effect += 1
            retval = (side_effect << 16) | ret
        else:
            raise efault
    finally:
        arg.free()
        rt.unmap_later(ints)
    return TestRunResult(retval=retval, duration=0)


register_prog_type(ProgTypeOps(ProgType.TRACING, is_valid_access=tracing_is_valid_access,
                               test_run=tracing_test_run))
register_prog_type(ProgTypeOps(ProgType.LSM, is_valid_access=tracing_is_valid_access))
for _at in (A.TRACE_FENTRY, A.TRACE_FEXIT, A.MODIFY_RETURN, A.TRACE_RAW_TP):
    register_link_kind(ProgType.TRACING, _link_create, attach_type=_at)
register_link_kind(ProgType.LSM, _link_create, attach_type=A.LSM_MAC)
