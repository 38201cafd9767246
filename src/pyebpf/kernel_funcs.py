"""Kernel functions pyebpf simulates, for fentry/fexit/fmod_ret and LSM programs.

A BTF-attached tracing program names a kernel *function* by its vmlinux BTF
id; the kernel then patches a trampoline into that function (kernel/bpf/
trampoline.c). pyebpf's kernel has no machine code to patch, so the functions
a program may attach to are listed here, each with its C prototype (added to
pyebpf's vmlinux BTF by :func:`add_kernel_func_btf`) and its body as Python:

- the functions net/bpf/test_run.c provides for exactly this purpose
  (``bpf_fentry_test1`` .. ``bpf_fentry_test9``, ``bpf_fentry_test_sinfo``,
  ``bpf_modify_return_test``/``bpf_modify_return_test2``), whose bodies are
  the kernel's (``bpf_fentry_test1(a)`` returns ``a + 1`` ...). BPF_PROG_TEST_RUN
  of a fentry/fexit/fmod_ret program calls them as bpf_prog_test_run_tracing
  does (pyebpf.progs.tracing_btf);
- a few LSM hooks (``bpf_lsm_file_open``, ``bpf_lsm_bprm_check_security``,
  ``bpf_lsm_socket_connect``, the void ``bpf_lsm_file_free_security``): the
  BPF LSM's default hook bodies, returning 0 (LSM_RET_DEFAULT), which programs
  override;
- ``btf_trace_<tracepoint>`` typedefs for BTF raw tracepoints (``tp_btf``) of
  tracepoints pyebpf knows (pyebpf.links.tracing.RAW_TRACEPOINTS).

:func:`kernel_call` (``Runtime.kernel_call``) calls one as the kernel would:
through its trampoline, so attached programs run around the Python body.

Which rules a function satisfies are fields of its :class:`KernelFunc`: whether
it is in an fmod_ret BTF id set (``register_btf_fmodret_id_set``), whether that
set marks it KF_SLEEPABLE, whether it is on the error-injection list
(ALLOW_ERROR_INJECTION), whether an LSM hook is sleepable.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .btf import BtfKind
from .errors import BpfError

if TYPE_CHECKING:
    from .btf_build import BtfBuilder
    from .runtime import Runtime

__all__ = ["BPF_LSM_PREFIX", "KERNEL_FUNCS", "TP_BTF_PROTOS", "KernelCall", "KernelFunc",
           "add_kernel_func_btf", "kernel_call", "kernel_func"]

#: BPF_LSM_SYM_PREFX: the BPF LSM's hook functions are ``bpf_lsm_<hook>``.
BPF_LSM_PREFIX = "bpf_lsm_"
#: The prefix of a raw tracepoint's BTF typedef (bpf_check_attach_target).
BTF_TRACE_PREFIX = "btf_trace_"
_M64 = (1 << 64) - 1


class KernelCall:
    """What a simulated function's body sees: the runtime (its memory, for
    pointer arguments) and small accessors that fault as the kernel would oops."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def load(self, addr: int, size: int, *, signed: bool = False) -> int:
        value = self.rt.memory.load(addr, size)
        if signed and value >> (8 * size - 1):
            value -= 1 << (8 * size)
        return value

    def store(self, addr: int, size: int, value: int) -> None:
        self.rt.memory.store(addr, size, value)


#: A body: (call context, the arguments as C values) -> the C return value (None: void).
Body = Callable[..., int | None]


@attrs.frozen
class KernelFunc:
    """One simulated kernel function: prototype (C spellings, see
    :func:`_ctype`), body, and the attach rules it satisfies."""

    name: str
    #: The return type's C spelling; None: void.
    ret: str | None
    #: (name, C spelling) per parameter.
    params: tuple[tuple[str, str], ...]
    body: Body
    #: In an fmod_ret BTF id set (btf_kfunc_is_modify_return): fmod_ret may attach.
    fmodret: bool = False
    #: That set gives it KF_SLEEPABLE: sleepable fentry/fexit/fmod_ret may attach.
    fmodret_sleepable: bool = False
    #: On the error-injection list (ALLOW_ERROR_INJECTION): fmod_ret and sleepable.
    error_injection: bool = False
    #: An LSM hook in sleepable_lsm_hooks (bpf_lsm_is_sleepable_hook).
    lsm_sleepable: bool = False

    @property
    def is_lsm_hook(self) -> bool:
        return self.name.startswith(BPF_LSM_PREFIX)


def _c(size: int, signed: bool, value: int) -> int:
    """``value`` as a C integer of ``size`` bytes."""
    value &= (1 << (8 * size)) - 1
    if signed and value >> (8 * size - 1):
        value -= 1 << (8 * size)
    return value


def _int(value: int) -> int:
    return _c(4, True, value)


# -- net/bpf/test_run.c ---------------------------------------------------------------------
def _test8(k: KernelCall, arg: int) -> int:
    return _int(k.load(arg, 8))  # (long)arg->a


def _test9(k: KernelCall, a: int) -> int:
    return k.load(a, 4)  # *a


def _modify_return_test(k: KernelCall, a: int, b: int) -> int:
    k.store(b, 4, k.load(b, 4, signed=True) + 1)  # *b += 1
    return _int(a + k.load(b, 4, signed=True))


def _modify_return_test2(k: KernelCall, a: int, b: int, c: int, d: int, e: int, f: int,
                         g: int) -> int:
    k.store(b, 4, k.load(b, 4, signed=True) + 1)
    return _int(a + k.load(b, 4, signed=True) + c + d + e + f + g)


def _lsm_default(k: KernelCall, *args: int) -> int:
    """LSM_RET_DEFAULT of the int hooks: allow (0)."""
    return 0


def _void(k: KernelCall, *args: int) -> None:
    return None


_FT = "struct bpf_fentry_test_t *"
#: The simulated functions, by name.
KERNEL_FUNCS: dict[str, KernelFunc] = {f.name: f for f in (
    KernelFunc("bpf_fentry_test1", "int", (("a", "int"),), lambda k, a: _int(a + 1),
               fmodret=True, fmodret_sleepable=True),
    KernelFunc("bpf_fentry_test2", "int", (("a", "int"), ("b", "u64")),
               lambda k, a, b: _int(a + b)),
    KernelFunc("bpf_fentry_test3", "int", (("a", "char"), ("b", "int"), ("c", "u64")),
               lambda k, a, b, c: _int(a + b + c)),
    KernelFunc("bpf_fentry_test4", "int", (("a", "void *"), ("b", "char"), ("c", "int"),
                                           ("d", "u64")),
               lambda k, a, b, c, d: _int(a + b + c + d)),
    KernelFunc("bpf_fentry_test5", "int", (("a", "u64"), ("b", "void *"), ("c", "short"),
                                           ("d", "int"), ("e", "u64")),
               lambda k, a, b, c, d, e: _int(a + b + c + d + e)),
    KernelFunc("bpf_fentry_test6", "int", (("a", "u64"), ("b", "void *"), ("c", "short"),
                                           ("d", "int"), ("e", "void *"), ("f", "u64")),
               lambda k, a, b, c, d, e, f: _int(a + b + c + d + e + f)),
    KernelFunc("bpf_fentry_test7", "int", (("arg", _FT),), lambda k, arg: _int(arg)),
    KernelFunc("bpf_fentry_test8", "int", (("arg", _FT),), _test8),
    KernelFunc("bpf_fentry_test9", "u32", (("a", "u32 *"),), _test9),
    KernelFunc("bpf_fentry_test_sinfo", None, (("sinfo", "struct skb_shared_info *"),),
               _void),
    KernelFunc("bpf_modify_return_test", "int", (("a", "int"), ("b", "int *")),
               _modify_return_test, fmodret=True),
    KernelFunc("bpf_modify_return_test2", "int", (
        ("a", "int"), ("b", "int *"), ("c", "short"), ("d", "int"), ("e", "void *"),
        ("f", "char"), ("g", "int")), _modify_return_test2, fmodret=True),
    # -- the BPF LSM's hooks (kernel/bpf/bpf_lsm.c: LSM_HOOK -> bpf_lsm_<hook>)
    KernelFunc("bpf_lsm_file_open", "int", (("file", "struct file *"),), _lsm_default,
               lsm_sleepable=True),
    KernelFunc("bpf_lsm_file_free_security", None, (("file", "struct file *"),), _void),
    KernelFunc("bpf_lsm_bprm_check_security", "int",
               (("bprm", "struct linux_binprm *"),), _lsm_default, lsm_sleepable=True),
    KernelFunc("bpf_lsm_socket_connect", "int", (
        ("sock", "struct socket *"), ("address", "struct sockaddr *"), ("addrlen", "int")),
        _lsm_default, lsm_sleepable=True),
)}

#: BTF raw tracepoints: tracepoint -> its TP_PROTO (name, C spelling), as 6.18 has it.
TP_BTF_PROTOS: dict[str, tuple[tuple[str, str], ...]] = {
    "task_newtask": (("task", "struct task_struct *"), ("clone_flags", "u64")),
    "task_rename": (("task", "struct task_struct *"), ("comm", "const char *")),
    "sched_process_exec": (("p", "struct task_struct *"), ("old_pid", "pid_t"),
                           ("bprm", "struct linux_binprm *")),
    "sched_process_fork": (("parent", "struct task_struct *"),
                           ("child", "struct task_struct *")),
    "sched_switch": (("preempt", "bool"), ("prev", "struct task_struct *"),
                     ("next", "struct task_struct *"), ("prev_state", "unsigned int")),
    "sched_wakeup": (("p", "struct task_struct *"),),
}


def kernel_func(name: str) -> KernelFunc | None:
    return KERNEL_FUNCS.get(name)


# -- BTF ----------------------------------------------------------------------------------------
def _ctype(b: BtfBuilder, ids: dict[str, int], spelling: str) -> int:
    """The BTF id of a C spelling: a name in ``ids`` (``"int"``, ``"struct file"``),
    ``const T``, or a pointer ``T *`` (``void *`` is the pointer to void)."""
    if spelling in ids:
        return ids[spelling]
    if spelling.endswith("*"):
        target = spelling[:-1].strip()
        tid = b.ptr(0 if target == "void" else _ctype(b, ids, target))
    elif spelling.startswith("const "):
        tid = b.const(_ctype(b, ids, spelling[len("const "):]))
    else:
        raise KeyError(f"no C type {spelling!r} in the kernel BTF")
    ids[spelling] = tid
    return tid


def _structs(b: BtfBuilder, ids: dict[str, int]) -> None:
    """The structs the simulated functions take, with the members programs read
    (simplified layouts with the kernel's names)."""
    uint, ulong, int_ = ids["unsigned int"], ids["unsigned long"], ids["int"]
    if "pid_t" not in ids:
        ids["pid_t"] = b.typedef("pid_t", b.typedef("__kernel_pid_t", int_))
    ft = b.declare()
    ids["struct bpf_fentry_test_t"] = b.define(ft, "bpf_fentry_test_t", [("a", b.ptr(ft))])
    if "struct skb_shared_info" not in ids:
        ids["struct skb_shared_info"] = b.struct("skb_shared_info", [
            ("flags", ids["__u8"]), ("meta_len", ids["__u8"]), ("nr_frags", ids["__u8"]),
            ("tx_flags", ids["__u8"]), ("gso_size", ids["unsigned short"]),
            ("gso_segs", ids["unsigned short"]), ("xdp_frags_size", uint)])
    ids["struct inode"] = b.struct("inode", [
        ("i_mode", b.typedef("umode_t", ids["unsigned short"])), ("i_uid", uint),
        ("i_gid", uint), ("i_flags", uint), ("i_ino", ulong),
        ("i_size", b.typedef("loff_t", ids["long long"]))])
    ids["struct file"] = b.struct("file", [
        ("f_mode", b.typedef("fmode_t", uint)), ("f_flags", uint),
        ("f_inode", b.ptr(ids["struct inode"])), ("f_pos", ids["long long"])])
    ids["struct linux_binprm"] = b.struct("linux_binprm", [
        ("file", b.ptr(ids["struct file"])), ("argc", int_), ("envc", int_),
        ("filename", _ctype(b, ids, "const char *")),
        ("interp", _ctype(b, ids, "const char *"))])
    ids["struct sockaddr"] = b.struct("sockaddr", [
        ("sa_family", b.typedef("sa_family_t", ids["unsigned short"])),
        ("sa_data", b.array(ids["char"], 14))])
    ids["struct socket"] = b.struct("socket", [
        ("state", int_), ("type", ids["short"]), ("flags", ulong),
        ("sk", b.ptr(ids["struct sock"]))])


def add_kernel_func_btf(b: BtfBuilder, ids: dict[str, int]) -> None:
    """Add the simulated functions (FUNC + FUNC_PROTO with parameter names), the
    structs they take, and the ``btf_trace_<tp>`` typedefs of BTF raw tracepoints
    (a pointer to a FUNC_PROTO whose first parameter is ``void *__data``)."""
    _structs(b, ids)
    for f in KERNEL_FUNCS.values():
        ret = 0 if f.ret is None else _ctype(b, ids, f.ret)
        proto = b.func_proto(ret, [(n, _ctype(b, ids, t)) for n, t in f.params])
        ids[f"func {f.name}"] = b.func(f.name, proto)
    for tp, params in TP_BTF_PROTOS.items():
        proto = b.func_proto(0, [("", ids["void *"])] + [
            ("", _ctype(b, ids, t)) for _, t in params])
        ids[f"typedef {BTF_TRACE_PREFIX}{tp}"] = b.typedef(BTF_TRACE_PREFIX + tp,
                                                          b.ptr(proto))


# -- calling ---------------------------------------------------------------------------------------
def _arg_register(btf: Any, tid: int, value: Any) -> int:
    """An argument as the caller's register holds it (what the trampoline saves in
    the u64 args array): 32-bit and smaller values zero-extended from 32 bits,
    pointers and 64-bit values whole. Objects with an ``addr`` pass their address."""
    value = int(getattr(value, "addr", value))
    t = btf.skip_mods_and_typedefs(tid)
    if t.kind is BtfKind.PTR:
        return value & _M64
    return value & (_M64 if btf.sizeof(tid) > 4 else 0xFFFF_FFFF)


def _c_value(btf: Any, tid: int, register: int) -> int:
    """A register as the C value of type ``tid`` (what the body computes with)."""
    t = btf.skip_mods_and_typedefs(tid)
    if t.kind is BtfKind.PTR:
        return register
    return _c(btf.sizeof(tid), bool(t.is_signed), register)


def kernel_call(rt: Runtime, name: str, *args: Any) -> int | None:
    """Call the simulated kernel function ``name`` with ``args`` (ints, or objects
    with an ``addr`` such as :class:`~pyebpf.kernel_btf.KernelObject`), through
    its trampoline: fentry programs, then fmod_ret programs (a nonzero return
    skips the body and is the result), the body, then fexit programs. Returns
    the function's C return value (None for void). ENOENT: no such function."""
    from .kernel_btf import kernel_btf
    from .progs.tracing_btf import trampoline_call

    f = KERNEL_FUNCS.get(name)
    if f is None:
        raise BpfError(errno.ENOENT, f"pyebpf simulates no kernel function {name!r}")
    if len(args) != len(f.params):
        raise TypeError(f"{name}() takes {len(f.params)} arguments, got {len(args)}")
    btf = kernel_btf()
    func = btf.find(name, BtfKind.FUNC)
    assert func is not None
    proto = btf.type(func.type)
    regs = [_arg_register(btf, p.type, a) for p, a in zip(proto.params, args, strict=True)]

    def body(regs: list[int]) -> int:
        """The function itself: C values in, the return register out."""
        values = [_c_value(btf, p.type, r) for p, r in zip(proto.params, regs, strict=True)]
        ret = f.body(KernelCall(rt), *values)
        return 0 if ret is None else _arg_register(btf, proto.type, ret)

    ret_reg = trampoline_call(rt, func.id, regs, body)
    if f.ret is None:
        return None
    return _c_value(btf, proto.type, ret_reg)
