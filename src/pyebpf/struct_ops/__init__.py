"""struct_ops: kernel subsystems whose operations BPF programs implement.

A kernel subsystem that takes a table of function pointers (``struct
tcp_congestion_ops``...) can take one written in BPF: user space fills a
``BPF_MAP_TYPE_STRUCT_OPS`` map's value with program fds, one per member, and
registering the map (its update, or a struct_ops link) hands the table to the
subsystem, which then calls the programs as it would call C functions.

This package is the kernel side of that (kernel/bpf/bpf_struct_ops.c and the
``struct bpf_struct_ops`` each subsystem defines). A :class:`StructOpsType`
describes one ops struct: its BTF (added to pyebpf's vmlinux BTF), which
members BPF may implement, and the subsystem's callbacks (``init_member``,
``check_member``, ``validate``, ``reg``, ``unreg``, ``update``). Each
registered table is a :class:`StructOpsData` (the kernel's ``kdata``); Python
plays the subsystem and calls its members:

    >>> cc = struct_ops_lookup(rt, "tcp_congestion_ops", "bpf_cubic")
    >>> cc.ssthresh(sk)        # runs the BPF program with its args, returns u32

Types register themselves with :func:`register_struct_ops`; the families are
imported lazily (:data:`_FAMILIES`).
"""

from __future__ import annotations

import errno
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from .._families import import_families
from ..btf import Btf, BtfKind, BtfMember, BtfType
from ..errors import BpfError

if TYPE_CHECKING:
    from ..btf_build import BtfBuilder
    from ..prog import BpfProg
    from ..runtime import Runtime

__all__ = ["STRUCT_OPS_TYPES", "StructOpsData", "StructOpsType", "register_struct_ops",
           "struct_ops_lookup", "struct_ops_type", "struct_ops_types"]

#: name -> the type (populated by the family modules).
STRUCT_OPS_TYPES: dict[str, StructOpsType] = {}
_FAMILIES = ("tcp_cong", "testmod")
#: Per runtime, per type: the tables registered with the subsystem, by key.
_REGISTERED: weakref.WeakKeyDictionary[Runtime, dict[str, dict[str, StructOpsData]]] = \
    weakref.WeakKeyDictionary()


def register_struct_ops(st: StructOpsType) -> StructOpsType:
    STRUCT_OPS_TYPES[st.name] = st
    return st


def struct_ops_types() -> dict[str, StructOpsType]:
    import_families(__name__, _FAMILIES)
    return STRUCT_OPS_TYPES


def struct_ops_type(name: str) -> StructOpsType | None:
    return struct_ops_types().get(name)


class StructOpsType:
    """One ops struct a subsystem accepts from BPF (the kernel's ``struct bpf_struct_ops``
    plus its ``bpf_struct_ops_desc``). Subclasses define the struct's BTF and the
    subsystem's callbacks; the defaults are the kernel's for a NULL callback."""

    #: The C struct name, e.g. "tcp_congestion_ops".
    name: ClassVar[str]
    #: Members a BPF program may not implement (no CFI stub: ENOTSUPP at load).
    unsupported: ClassVar[frozenset[str]] = frozenset()
    #: Whether BPF_F_LINK maps are possible (the kernel: ``validate`` and ``update`` set).
    supports_link: ClassVar[bool] = True
    #: Pointer arguments that may be NULL, by member: the argument indexes whose
    #: CFI stub parameter is named ``*__nullable`` (PTR_MAYBE_NULL in the program).
    nullable_args: ClassVar[dict[str, frozenset[int]]] = {}

    # -- BTF ---------------------------------------------------------------------------
    def add_btf(self, b: BtfBuilder, ids: dict[str, int]) -> None:
        """Add ``struct <name>`` (and what it needs) to the kernel BTF being built;
        record its id as ``ids["struct <name>"]``."""
        raise NotImplementedError

    @property
    def btf(self) -> Btf:
        from ..kernel_btf import kernel_btf

        return kernel_btf()

    @property
    def type_id(self) -> int:
        from ..kernel_btf import kernel_struct_id

        return kernel_struct_id(self.name)

    @property
    def value_type_id(self) -> int:
        from ..kernel_btf import kernel_struct_id

        return kernel_struct_id(f"bpf_struct_ops_{self.name}")

    @property
    def type(self) -> BtfType:
        return self.btf.type(self.type_id)

    @property
    def value_type(self) -> BtfType:
        return self.btf.type(self.value_type_id)

    def members(self) -> tuple[BtfMember, ...]:
        return self.type.members

    def member_index(self, name: str) -> int:
        for i, m in enumerate(self.members()):
            if m.name == name:
                return i
        raise KeyError(name)

    def func_proto(self, member: BtfMember) -> BtfType | None:
        """The FUNC_PROTO a function-pointer member points at (else None)."""
        btf = self.btf
        t = btf.skip_mods_and_typedefs(member.type)
        if t.kind is not BtfKind.PTR:
            return None
        target = btf.skip_mods_and_typedefs(t.type)
        return target if target.kind is BtfKind.FUNC_PROTO else None

    # -- verifier callbacks --------------------------------------------------------------
    def check_member(self, member: BtfMember, prog: BpfProg) -> None:
        """Refuse a program for a member (raise BpfError); default: accept."""

    def ctx_arg_btf_id(self, arg_struct_id: int) -> int:
        """The BTF id a pointer argument is given (bpf_tcp_ca promotes sock to tcp_sock)."""
        return arg_struct_id

    def btf_struct_access(self, struct_id: int, off: int, size: int) -> str | None:
        """May a program write ``size`` bytes at ``off`` of the struct? None if so,
        else the verifier's message (EACCES). Default: read only."""
        return "only read is supported"

    # -- subsystem callbacks --------------------------------------------------------------
    def init_member(self, member: BtfMember, kdata: StructOpsData, udata: bytes) -> int:
        """1: handled this (non-function) member; 0: leave it to the generic code;
        raise BpfError to refuse the value."""
        return 0

    def validate(self, kdata: StructOpsData) -> None:
        """Check a whole table before it may be registered (raise BpfError)."""

    def reg(self, kdata: StructOpsData) -> None:
        """Hand the table to the subsystem (raise BpfError to refuse it). A second
        table under a key already taken is kept as ``key#<map id>``."""
        reg = self._registry(kdata.runtime)
        key = kdata.key
        if key in reg:
            key = f"{key}#{kdata.map_id}"
        reg[key] = kdata

    def unreg(self, kdata: StructOpsData) -> None:
        reg = self._registry(kdata.runtime)
        for key, registered in list(reg.items()):
            if registered is kdata:
                del reg[key]

    def update(self, new: StructOpsData, old: StructOpsData) -> None:
        """Replace a registered table by another (a struct_ops link's update)."""
        self.validate(new)
        self.unreg(old)
        self.reg(new)

    # -- what is registered ------------------------------------------------------------------
    def _registry(self, rt: Runtime) -> dict[str, StructOpsData]:
        return _REGISTERED.setdefault(rt, {}).setdefault(self.name, {})

    def registered(self, rt: Runtime) -> dict[str, StructOpsData]:
        """The tables registered on ``rt``, by key (the name the subsystem knows them by)."""
        return dict(self._registry(rt))


class StructOpsData:
    """A table of operations as the kernel holds it (``kdata``): the programs by member,
    the bytes of the data members, and the map it came from. Calling a member
    runs its program the way the subsystem's indirect call reaches the
    trampoline: the arguments go in a u64 array that is the program's ctx."""

    def __init__(self, st: StructOpsType, runtime: Runtime, map_name: str,
                 map_id: int = 0) -> None:
        self.st = st
        self.runtime = runtime
        self.map_name = map_name
        self.map_id = map_id
        size = st.type.size
        #: The struct's bytes (data members; function pointers are not kept here).
        self.raw = bytearray(size)
        #: member name -> the program implementing it.
        self.progs: dict[str, BpfProg] = {}

    @property
    def key(self) -> str:
        """How the subsystem names this table: its ``name`` member if the struct has
        one (tcp_congestion_ops), else the map's name."""
        name = self.get_string("name") if _has_member(self.st.type, "name") else ""
        return name or self.map_name

    def get_string(self, member: str) -> str:
        off = self.st.btf.offsetof(self.st.type_id, member)
        size = self.st.btf.sizeof(self.st.btf.member(self.st.type_id, member).type)
        return bytes(self.raw[off:off + size]).split(b"\0", 1)[0].decode("latin-1")

    def get_int(self, member: str) -> int:
        btf = self.st.btf
        m = btf.member(self.st.type_id, member)
        off, size = m.bit_offset // 8, btf.sizeof(m.type)
        value = int.from_bytes(self.raw[off:off + size], "little")
        if btf.skip_mods_and_typedefs(m.type).is_signed and value >> (8 * size - 1):
            value -= 1 << (8 * size)
        return value

    def has(self, member: str) -> bool:
        return member in self.progs

    def call(self, member: str, *args: int | Any) -> int | None:
        """Call ``member`` with ``args`` (ints, or objects with an ``addr``, such as
        :class:`~pyebpf.kernel_btf.KernelObject`). Returns the program's r0 cut to
        the member's return type, or None for a void member."""
        prog = self.progs.get(member)
        if prog is None:
            raise BpfError(errno.ENOENT, f"{self.st.name} {self.key!r} has no {member}")
        proto = self.st.func_proto(self.st.type.members[self.st.member_index(member)])
        assert proto is not None
        if len(args) != len(proto.params):
            raise TypeError(f"{self.st.name}.{member} takes {len(proto.params)} arguments, "
                            f"got {len(args)}")
        r0 = run_with_args(prog, [getattr(a, "addr", a) for a in args])
        if proto.type == 0:
            return None
        btf = self.st.btf
        size = btf.sizeof(proto.type)
        ret = r0 & ((1 << (8 * size)) - 1)
        rt = btf.skip_mods_and_typedefs(proto.type)
        if rt.is_signed and ret >> (8 * size - 1):
            ret -= 1 << (8 * size)
        return ret

    def __getattr__(self, member: str) -> Callable[..., int | None]:
        if member.startswith("_"):
            raise AttributeError(member)
        if not _has_member(self.st.type, member):
            raise AttributeError(f"struct {self.st.name} has no member {member!r}")
        return lambda *args: self.call(member, *args)

    def __iter__(self) -> Iterator[str]:
        return iter(self.progs)

    def __repr__(self) -> str:
        return f"<struct {self.st.name} {self.key!r}: {', '.join(self.progs) or 'no programs'}>"


def _has_member(t: BtfType, name: str) -> bool:
    return any(m.name == name for m in t.members)


def run_with_args(prog: BpfProg, args: list[int]) -> int:
    """Run ``prog`` with a ctx of u64 arguments (the trampoline's args array)."""
    rt = prog.runtime
    ctx = bytearray(8 * max(len(args), 1))
    for i, a in enumerate(args):
        ctx[8 * i:8 * i + 8] = (int(a) & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little")
    region = rt.memory.map(ctx, kind="ctx", name="struct_ops_args")
    try:
        return prog.run(region.base)
    finally:
        rt.unmap_later(region)


def struct_ops_lookup(rt: Runtime, type_name: str, key: str | None = None) -> StructOpsData:
    """A registered table of ``type_name``: the one named ``key``, or the only one."""
    st = struct_ops_type(type_name)
    if st is None:
        raise BpfError(errno.ENOENT, f"the kernel has no struct_ops type {type_name}")
    reg = st._registry(rt)
    if key is None:
        if len(reg) != 1:
            raise BpfError(errno.ENOENT, f"{len(reg)} {type_name} tables are registered; "
                           "name one")
        return next(iter(reg.values()))
    found = reg.get(key)
    if found is None:
        raise BpfError(errno.ENOENT, f"no {type_name} named {key!r} is registered")
    return found
