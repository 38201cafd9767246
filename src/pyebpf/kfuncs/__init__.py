"""The kfunc table: kernel functions a program calls by BTF id (``call`` with src_reg 2).

A kfunc differs from a helper in three ways the table records:

- It is named by a BTF id, not a helper number. pyebpf's ids are those of the
  ``FUNC`` entries in the vmlinux BTF of the reference kernel (Linux 6.18 as
  built for the project's machines), fixed here in the table rather than read
  from a running kernel, so that programs, verifier logs and the kernel
  verifier cases (whose ``kfunc_fixups`` carry those ids) agree with the
  kernel they were labelled on. The ELF loader resolves ``extern ... __ksym``
  functions to these ids by name (as libbpf does against vmlinux BTF).
- Its prototype is BTF (argument names with suffixes such as ``__k``, ``__sz``,
  ``__ign``, ``__prog``); here each argument is a :class:`KfArg` naming what
  the kernel derives from that BTF (``get_kfunc_ptr_arg_type``).
- Its behaviour flags (``KF_ACQUIRE``, ``KF_ITER_NEXT`` ...) come from the
  ``BTF_ID_FLAGS`` sets of kernel/bpf/helpers.c: :class:`KF`, same bits.

Where a kfunc may be called is the kernel's kfunc hook sets: ``"common"``
kfuncs (``BPF_PROG_TYPE_UNSPEC``, every program type) or an explicit set of
program types (:attr:`Kfunc.prog_types`).

Implementations are called like helpers, ``impl(vm, r1, r2, r3, r4, r5)``,
returning r0 (None for a void kfunc). Families register on import
(:func:`register_kfunc`); lookups import them lazily.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from .._families import import_families
from ..helpers.proto import RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

__all__ = [
    "KF",
    "KFUNCS",
    "KfArg",
    "KfArgKind",
    "Kfunc",
    "KfuncImpl",
    "default_kfuncs",
    "kfunc_allowed",
    "kfunc_by_id",
    "kfunc_by_name",
    "register_kfunc",
]

KfuncImpl = Callable[["Vm", int, int, int, int, int], "int | None"]


class KF(enum.IntFlag):
    """include/linux/btf.h: kfunc flags (``BTF_ID_FLAGS(func, name, ...)``)."""

    NONE = 0
    ACQUIRE = 1 << 0
    RELEASE = 1 << 1
    RET_NULL = 1 << 2
    TRUSTED_ARGS = 1 << 4
    SLEEPABLE = 1 << 5
    DESTRUCTIVE = 1 << 6
    RCU = 1 << 7
    ITER_NEW = 1 << 8
    ITER_NEXT = 1 << 9
    ITER_DESTROY = 1 << 10
    RCU_PROTECTED = 1 << 11
    FASTCALL = 1 << 12


class KfArgKind(enum.Enum):
    """What one kfunc argument is, as check_kfunc_args derives it from BTF."""

    #: A plain scalar (``int start``).
    SCALAR = "scalar"
    #: A scalar that must be a known constant (``__k`` suffix).
    SCALAR_CONST = "scalar_const"
    #: A pointer to the program's ctx (KF_ARG_PTR_TO_CTX).
    PTR_TO_CTX = "ctx"
    #: A pointer to an iterator on the stack (KF_ARG_PTR_TO_ITER, ``struct bpf_iter_*``).
    PTR_TO_ITER = "iter"
    #: Anything: the argument is not checked (``__ign`` suffix).
    IGNORED = "ign"
    #: Hidden: the verifier passes the calling program's aux (``__prog`` suffix);
    #: the program passes NULL (the kernel rewrites the call to fill it). The
    #: implementation finds the calling program as ``vm.owner``.
    PROG_AUX = "prog"
    #: A pointer to a kernel struct (KF_ARG_PTR_TO_BTF_ID), named by ``struct``.
    PTR_TO_BTF_ID = "btf_id"
    #: A ``struct bpf_dynptr *`` (KF_ARG_PTR_TO_DYNPTR): an initialized dynptr on
    #: the stack or a callback's const one; with ``uninit`` (``__uninit`` suffix)
    #: stack slots the kfunc makes a dynptr in.
    PTR_TO_DYNPTR = "dynptr"
    #: Memory whose size is the next argument (KF_ARG_PTR_TO_MEM_SIZE); with
    #: ``optional`` (``__opt`` suffix) NULL is allowed.
    PTR_TO_MEM_SIZE = "mem_size"
    #: The size of the memory argument before it (``__sz``); with ``const``
    #: (``__szk``) a known constant the verifier remembers (meta.arg_constant).
    MEM_SIZE = "size"
    #: A program-allocated object (KF_ARG_PTR_TO_ALLOC_BTF_ID, ``__alloc`` suffix).
    PTR_TO_ALLOC = "alloc"
    #: An owning or non-owning reference to an object with a ``bpf_refcount``
    #: (KF_ARG_PTR_TO_REFCOUNTED_KPTR, ``__refcounted_kptr`` suffix).
    PTR_TO_REFCOUNTED_KPTR = "refcounted_kptr"


@attrs.frozen
class KfArg:
    """One argument: its kind, its BTF name, and for iterators the iterator type."""

    kind: KfArgKind
    name: str
    #: PTR_TO_ITER: the iterator struct's name without ``bpf_iter_`` ("num").
    iter_type: str = ""
    #: PTR_TO_ITER: the iterator struct's size in bytes (a multiple of 8).
    iter_size: int = 0
    #: PTR_TO_BTF_ID: the kernel struct pointed to ("task_struct").
    struct: str = ""
    #: PTR_TO_DYNPTR: ``__uninit``, the kfunc initializes the dynptr.
    uninit: bool = False
    #: PTR_TO_MEM_SIZE: ``__opt``, NULL is allowed.
    optional: bool = False
    #: MEM_SIZE: ``__szk``, the size must be a known constant.
    const: bool = False


@attrs.frozen
class Kfunc:
    """One kernel function a program may call.

    ``ret`` is a :class:`~pyebpf.helpers.proto.RetType` base (RET_INTEGER,
    RET_VOID, RET_PTR_TO_MEM for a pointer to ``ret_size`` bytes of scalar
    memory, RET_PTR_TO_BTF_ID for a pointer to the kernel struct
    ``ret_btf``); ``KF.RET_NULL`` in ``flags`` makes a pointer maybe-NULL.
    """

    name: str
    btf_id: int
    args: tuple[KfArg, ...]
    ret: int
    flags: KF
    impl: KfuncImpl
    #: None: a "common" kfunc every program type may call.
    prog_types: frozenset[int] | None = None
    ret_size: int = 0
    ret_btf: str = ""

    @property
    def is_iter_new(self) -> bool:
        return bool(self.flags & KF.ITER_NEW)

    @property
    def is_iter_next(self) -> bool:
        return bool(self.flags & KF.ITER_NEXT)

    @property
    def is_iter_destroy(self) -> bool:
        return bool(self.flags & KF.ITER_DESTROY)

    @property
    def is_iter_kfunc(self) -> bool:
        return bool(self.flags & (KF.ITER_NEW | KF.ITER_NEXT | KF.ITER_DESTROY))


#: BTF id -> kfunc.
KFUNCS: dict[int, Kfunc] = {}
_BY_NAME: dict[str, Kfunc] = {}

_FAMILIES = ("iter_num", "task", "rcu", "dynptr", "obj", "testmod", "cast")


def register_kfunc(name: str, btf_id: int, args: Iterable[KfArg], ret: int = RetType.RET_INTEGER,
                   flags: KF = KF.NONE, *, prog_types: Iterable[int] | None = None,
                   ret_size: int = 0, ret_btf: str = "") -> Callable[[KfuncImpl], KfuncImpl]:
    """Decorator adding a kfunc implementation to the table."""

    def deco(impl: KfuncImpl) -> KfuncImpl:
        if btf_id in KFUNCS or name in _BY_NAME:
            raise ValueError(f"kfunc {name} (btf id {btf_id}) registered twice")
        k = Kfunc(name, btf_id, tuple(args), int(ret), flags, impl,
                  None if prog_types is None else frozenset(int(t) for t in prog_types),
                  ret_size, ret_btf)
        KFUNCS[btf_id] = k
        _BY_NAME[name] = k
        return impl

    return deco


def _load() -> None:
    import_families(__name__, _FAMILIES)


def kfunc_by_id(btf_id: int) -> Kfunc | None:
    _load()
    return KFUNCS.get(btf_id)


def kfunc_by_name(name: str) -> Kfunc | None:
    _load()
    return _BY_NAME.get(name)


def kfunc_allowed(k: Kfunc, prog_type: int) -> bool:
    """btf_kfunc_id_set_contains: the common set, or the program type's own hook."""
    return k.prog_types is None or int(prog_type) in k.prog_types


def default_kfuncs() -> dict[int, Any]:
    """BTF id -> implementation, for the engine."""
    _load()
    return {i: k.impl for i, k in KFUNCS.items()}
