"""Helper prototypes: the kernel's ``struct bpf_func_proto`` vocabulary.

An argument or return type is a *base type* or-ed with *type flags*, exactly
as in include/linux/bpf.h: ``ARG_PTR_TO_MEM | MEM_RDONLY`` is the int
``4 | 512``. The numbers are the ones of the Linux 6.18 kernel (read from its
BTF: ``enum bpf_arg_type``, ``enum bpf_return_type``, ``enum bpf_type_flag``),
so a verifier written against the kernel's code can compare them as the
kernel does::

    base_type(t) == ArgType.ARG_PTR_TO_MEM and t & TypeFlag.MEM_UNINIT

:class:`ArgType` and :class:`RetType` name the base types and the kernel's
own composite aliases (``ARG_PTR_TO_MAP_VALUE_OR_NULL``...); other
combinations are plain ints, printed by :func:`arg_type_str` /
:func:`ret_type_str` the way the kernel source writes them.

:class:`Proto` is one ``bpf_func_proto``: return type, up to five argument
types, ``gpl_only``, ``pkt_access``, ``might_sleep``, ``allow_fastcall``, and
the per-argument size (``argN_size``, for MEM_FIXED_SIZE arguments) or BTF
type (``argN_btf_id``, by type name) where the kernel has one.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "BPF_BASE_TYPE_MASK",
    "ArgType",
    "Proto",
    "RetType",
    "TypeFlag",
    "arg_type_str",
    "base_type",
    "ret_type_str",
    "type_flag",
    "type_may_be_null",
]

#: BPF_BASE_TYPE_BITS = 8: the low byte is the base type, the rest are flags.
BPF_BASE_TYPE_MASK = 0xFF


class TypeFlag(enum.IntFlag):
    """``enum bpf_type_flag`` (shared by register, argument and return types)."""

    PTR_MAYBE_NULL = 1 << 8
    MEM_RDONLY = 1 << 9
    MEM_RINGBUF = 1 << 10
    MEM_USER = 1 << 11
    MEM_PERCPU = 1 << 12
    OBJ_RELEASE = 1 << 13
    PTR_UNTRUSTED = 1 << 14
    MEM_UNINIT = 1 << 15
    DYNPTR_TYPE_LOCAL = 1 << 16
    DYNPTR_TYPE_RINGBUF = 1 << 17
    MEM_FIXED_SIZE = 1 << 18
    MEM_ALLOC = 1 << 19
    PTR_TRUSTED = 1 << 20
    MEM_RCU = 1 << 21
    NON_OWN_REF = 1 << 22
    DYNPTR_TYPE_SKB = 1 << 23
    DYNPTR_TYPE_XDP = 1 << 24
    MEM_ALIGNED = 1 << 25
    MEM_WRITE = 1 << 26
    DYNPTR_TYPE_SKB_META = 1 << 27


PTR_MAYBE_NULL = TypeFlag.PTR_MAYBE_NULL
MEM_RDONLY = TypeFlag.MEM_RDONLY
MEM_RINGBUF = TypeFlag.MEM_RINGBUF
MEM_UNINIT = TypeFlag.MEM_UNINIT
MEM_FIXED_SIZE = TypeFlag.MEM_FIXED_SIZE
MEM_ALIGNED = TypeFlag.MEM_ALIGNED
MEM_WRITE = TypeFlag.MEM_WRITE
OBJ_RELEASE = TypeFlag.OBJ_RELEASE
PTR_TRUSTED = TypeFlag.PTR_TRUSTED


class ArgType(enum.IntEnum):
    """``enum bpf_arg_type``: the base types, then the kernel's named combinations."""

    ARG_DONTCARE = 0
    ARG_CONST_MAP_PTR = 1
    ARG_PTR_TO_MAP_KEY = 2
    ARG_PTR_TO_MAP_VALUE = 3
    ARG_PTR_TO_MEM = 4
    ARG_PTR_TO_ARENA = 5
    ARG_CONST_SIZE = 6
    ARG_CONST_SIZE_OR_ZERO = 7
    ARG_PTR_TO_CTX = 8
    ARG_ANYTHING = 9
    ARG_PTR_TO_SPIN_LOCK = 10
    ARG_PTR_TO_SOCK_COMMON = 11
    ARG_PTR_TO_SOCKET = 12
    ARG_PTR_TO_BTF_ID = 13
    ARG_PTR_TO_RINGBUF_MEM = 14
    ARG_CONST_ALLOC_SIZE_OR_ZERO = 15
    ARG_PTR_TO_BTF_ID_SOCK_COMMON = 16
    ARG_PTR_TO_PERCPU_BTF_ID = 17
    ARG_PTR_TO_FUNC = 18
    ARG_PTR_TO_STACK = 19
    ARG_PTR_TO_CONST_STR = 20
    ARG_PTR_TO_TIMER = 21
    ARG_KPTR_XCHG_DEST = 22
    ARG_PTR_TO_DYNPTR = 23
    # The aliases include/linux/bpf.h defines.
    ARG_PTR_TO_MAP_VALUE_OR_NULL = 3 | PTR_MAYBE_NULL
    ARG_PTR_TO_MEM_OR_NULL = 4 | PTR_MAYBE_NULL
    ARG_PTR_TO_CTX_OR_NULL = 8 | PTR_MAYBE_NULL
    ARG_PTR_TO_SOCKET_OR_NULL = 12 | PTR_MAYBE_NULL
    ARG_PTR_TO_BTF_ID_OR_NULL = 13 | PTR_MAYBE_NULL
    ARG_PTR_TO_STACK_OR_NULL = 19 | PTR_MAYBE_NULL
    #: Pointer to memory the helper writes without reading (may be uninitialized).
    ARG_PTR_TO_UNINIT_MEM = 4 | MEM_UNINIT | MEM_WRITE
    #: Pointer to memory of the size given by ``argN_size``.
    ARG_PTR_TO_FIXED_SIZE_MEM = 4 | MEM_FIXED_SIZE


class RetType(enum.IntEnum):
    """``enum bpf_return_type``: the base types, then the kernel's named combinations."""

    RET_INTEGER = 0
    RET_VOID = 1
    RET_PTR_TO_MAP_VALUE = 2
    RET_PTR_TO_SOCKET = 3
    RET_PTR_TO_TCP_SOCK = 4
    RET_PTR_TO_SOCK_COMMON = 5
    RET_PTR_TO_MEM = 6
    RET_PTR_TO_MEM_OR_BTF_ID = 7
    RET_PTR_TO_BTF_ID = 8
    RET_PTR_TO_MAP_VALUE_OR_NULL = 2 | PTR_MAYBE_NULL
    RET_PTR_TO_SOCKET_OR_NULL = 3 | PTR_MAYBE_NULL
    RET_PTR_TO_TCP_SOCK_OR_NULL = 4 | PTR_MAYBE_NULL
    RET_PTR_TO_SOCK_COMMON_OR_NULL = 5 | PTR_MAYBE_NULL
    RET_PTR_TO_RINGBUF_MEM_OR_NULL = 6 | PTR_MAYBE_NULL | MEM_RINGBUF
    RET_PTR_TO_DYNPTR_MEM_OR_NULL = 6 | PTR_MAYBE_NULL
    RET_PTR_TO_BTF_ID_OR_NULL = 8 | PTR_MAYBE_NULL
    RET_PTR_TO_BTF_ID_TRUSTED = 8 | PTR_TRUSTED


def base_type(t: int) -> int:
    """The base type of an argument, return or register type (``base_type()``)."""
    return t & BPF_BASE_TYPE_MASK


def type_flag(t: int) -> TypeFlag:
    """The flag bits of a type (``type_flag()``)."""
    return TypeFlag(t & ~BPF_BASE_TYPE_MASK)


def type_may_be_null(t: int) -> bool:
    return bool(t & PTR_MAYBE_NULL)


def _type_str(t: int, enum_cls: type[enum.IntEnum]) -> str:
    try:
        return enum_cls(t).name
    except ValueError:
        pass
    flags = t & ~BPF_BASE_TYPE_MASK
    # Prefer a named alias that covers part of the flags (ARG_PTR_TO_UNINIT_MEM | MEM_ALIGNED).
    best = enum_cls(base_type(t))
    for member in enum_cls:
        extra = member & ~BPF_BASE_TYPE_MASK
        if base_type(member) == base_type(t) and extra and extra & flags == extra and (
                bin(extra).count("1") > bin(best & ~BPF_BASE_TYPE_MASK).count("1")):
            best = member
    rest = flags & ~(best & ~BPF_BASE_TYPE_MASK)
    names = [best.name] + [f.name for f in TypeFlag if rest & f]  # type: ignore[misc]
    return " | ".join(n for n in names if n)


def arg_type_str(t: int) -> str:
    """An argument type as the kernel source spells it: ``ARG_PTR_TO_MEM | MEM_RDONLY``."""
    return _type_str(t, ArgType)


def ret_type_str(t: int) -> str:
    """A return type as the kernel source spells it: ``RET_PTR_TO_MAP_VALUE_OR_NULL``."""
    return _type_str(t, RetType)


@attrs.frozen
class Proto:
    """One ``struct bpf_func_proto``.

    ``args`` lists the argument types in order (trailing ARG_DONTCARE may be
    omitted); :attr:`arg_types` gives all five. ``arg_size[i]`` is the kernel's
    ``arg{i+1}_size`` (0: none), ``arg_btf_id[i]`` the name of the BTF type of
    ``arg{i+1}_btf_id`` (None: none; ``"BPF_PTR_POISON"`` where the kernel puts
    that marker, as for bpf_spin_lock). ``ret_btf_id`` likewise for the return.
    """

    ret: int = RetType.RET_INTEGER
    args: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    gpl_only: bool = False
    pkt_access: bool = False
    might_sleep: bool = False
    allow_fastcall: bool = False
    arg_size: tuple[int, ...] = attrs.field(default=(0, 0, 0, 0, 0), converter=tuple)
    arg_btf_id: tuple[str | None, ...] = attrs.field(default=(None,) * 5, converter=tuple)
    ret_btf_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if len(self.args) > 5:
            raise ValueError("a helper takes at most 5 arguments")
        if len(self.arg_size) != 5 or len(self.arg_btf_id) != 5:
            raise ValueError("arg_size and arg_btf_id have one entry per argument (5)")

    @property
    def arg_types(self) -> tuple[int, int, int, int, int]:
        """All five argument types, ARG_DONTCARE past the last one given."""
        padded = tuple(self.args) + (ArgType.ARG_DONTCARE,) * (5 - len(self.args))
        return padded  # type: ignore[return-value]

    @property
    def nargs(self) -> int:
        """How many arguments the helper reads (the last non-DONTCARE one)."""
        n = 0
        for i, t in enumerate(self.args, start=1):
            if t != ArgType.ARG_DONTCARE:
                n = i
        return n

    def describe(self) -> str:
        """The prototype as text, e.g. ``RET_INTEGER (ARG_CONST_MAP_PTR, ...)``."""
        args = ", ".join(arg_type_str(t) for t in self.args[: self.nargs])
        extra = " gpl_only" if self.gpl_only else ""
        return f"{ret_type_str(self.ret)} ({args}){extra}"


def sized(size: int, index: int) -> tuple[int, ...]:
    """An ``arg_size`` tuple with ``size`` for argument ``index`` (1-based)."""
    out = [0] * 5
    out[index - 1] = size
    return tuple(out)


def btf_ids(**by_arg: str) -> tuple[str | None, ...]:
    """An ``arg_btf_id`` tuple: ``btf_ids(arg1="task_struct")``."""
    out: list[str | None] = [None] * 5
    for name, value in by_arg.items():
        out[int(name.removeprefix("arg")) - 1] = value
    return tuple(out)
