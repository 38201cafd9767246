"""What an object file declares, parsed but not yet created: the Specs.

Like cilium/ebpf's CollectionSpec, an :class:`ObjectSpec` is plain data: the
maps to create (:class:`MapSpec`) and the programs to load
(:class:`ProgramSpec`), with their instructions already linked (sub-programs
appended, calls and CO-RE relocations resolved) and their map references
recorded symbolically. Nothing in a Spec touches a Runtime; a user may edit a
Spec (a program's type, a map's size) before loading it.
:meth:`ObjectSpec.load` (or :func:`pyebpf.load_object`) turns it into a
:class:`~pyebpf.collection.Collection` through ``bpf()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..isa import Insn, decode
from ..uapi import MapType, ProgType

if TYPE_CHECKING:
    from ..btf import Btf, BtfExt, FuncInfo, LineInfo
    from ..collection import Collection
    from ..runtime import Runtime

__all__ = ["CoreReloResult", "MapRef", "MapSpec", "ObjectSpec", "ProgramSpec"]


@attrs.define
class MapSpec:
    """A map the object declares."""

    #: The name the object uses for it (a variable name, or an ELF section name
    #: for global data: ".data", ".rodata", ".bss", ".kconfig", ".rodata.str1.1").
    name: str
    type: int
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    flags: int = 0
    numa_node: int = 0
    map_extra: int = 0
    #: The name given to MAP_CREATE (at most 15 characters, as libbpf makes it).
    kernel_name: str = ""
    #: Where it was declared: "btf" (.maps), "legacy" (a maps section), "data"
    #: (global data), "kconfig".
    source: str = "btf"
    section: str = ""
    offset: int = 0
    #: 0 none; libbpf: 1 pin by name. iproute2's bpf_elf_map: 1 object, 2 global ns.
    pinning: int = 0
    #: The template of an inner map (map-in-map), from ``__array(values, ...)``.
    inner: MapSpec | None = None
    #: Legacy map-in-map: the name of the map whose definition is the template.
    inner_map_name: str | None = None
    #: Initial slots (prog arrays: program names; maps of maps: map names).
    init_slots: dict[int, str] = attrs.field(factory=dict)
    #: Global data: the initial value of the single element (key 0).
    data: bytes | None = None
    #: Freeze after writing ``data`` (.rodata, .kconfig).
    freeze: bool = False
    #: iproute2's bpf_elf_map id (tail-call sections "<id>/<key>" refer to it).
    elf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    #: A struct_ops map: the kernel struct, the object's bytes, the programs of its
    #: members (pyebpf.elf.struct_ops.StructOpsSpec), else None.
    struct_ops: Any = None

    @property
    def map_type(self) -> MapType | int:
        try:
            return MapType(self.type)
        except ValueError:
            return self.type

    def describe(self) -> str:
        t = self.map_type
        tname = t.name if isinstance(t, MapType) else str(t)
        return (f"map '{self.name}' ({tname} key={self.key_size} value={self.value_size} "
                f"max_entries={self.max_entries} flags={self.flags:#x})")


@attrs.frozen
class MapRef:
    """A 64-bit immediate load that names a map: ``kind`` "fd" (BPF_PSEUDO_MAP_FD)
    or "value" (BPF_PSEUDO_MAP_VALUE, ``offset`` into the value)."""

    insn: int
    map: str
    kind: str = "fd"
    offset: int = 0


@attrs.frozen
class CoreReloResult:
    """One CO-RE relocation as applied: where, what, and the values."""

    insn: int
    kind: str
    type_name: str
    access: str
    local_value: int
    target_value: int | None
    ok: bool
    message: str = ""


@attrs.define
class ProgramSpec:
    """A program the object declares, linked and ready to load."""

    name: str
    section: str
    #: None when the section name says nothing pyebpf (or libbpf) recognizes.
    prog_type: ProgType | None
    expected_attach_type: int = 0
    #: How the type was found: "libbpf" (libbpf's SEC table), "legacy" (an older
    #: loader's prefix), "convention", "user", or None (unknown).
    type_source: str | None = None
    prog_flags: int = 0
    #: The linked instructions (raw bytes); map references hold 0 until loaded.
    insns: bytes = b""
    map_refs: list[MapRef] = attrs.field(factory=list)
    license: str = ""
    kern_version: int = 0
    #: The instruction count of the function itself (before sub-programs).
    own_insn_cnt: int = 0
    subprograms: list[str] = attrs.field(factory=list)
    func_info: list[FuncInfo] = attrs.field(factory=list)
    line_info: list[LineInfo] = attrs.field(factory=list)
    core_relos: list[CoreReloResult] = attrs.field(factory=list)
    #: What follows the type prefix in the section name ("kprobe/sys_write" ->
    #: "sys_write"): the attach target, for whatever attaches the program.
    attach_to: str = ""
    #: A prog-array slot the program belongs in by convention: (map name, key).
    tail_call_slot: tuple[str, int] | None = None
    #: Whether it is a ``.text`` function offered as a program (the object has no
    #: other program section; libbpf would treat it as a sub-program).
    from_text: bool = False
    #: Why the program can't be loaded (an unresolved extern...), or None.
    link_error: str | None = None
    #: False for ``SEC("?...")``: libbpf loads it only when asked for by name.
    autoload: bool = True

    @property
    def insn_cnt(self) -> int:
        return len(self.insns) // 8

    @property
    def instructions(self) -> list[Insn]:
        return decode(self.insns, strict=False)

    def line_for(self, insn: int) -> Any:
        """The line_info record covering instruction ``insn`` (None without BTF)."""
        best = None
        for li in self.line_info:
            if li.insn_off <= insn and (best is None or li.insn_off >= best.insn_off):
                best = li
        return best


@attrs.define
class ObjectSpec:
    """A parsed BPF object file."""

    name: str
    path: str | None = None
    license: str = ""
    kern_version: int = 0
    maps: dict[str, MapSpec] = attrs.field(factory=dict)
    programs: dict[str, ProgramSpec] = attrs.field(factory=dict)
    btf: Btf | None = None
    btf_ext: BtfExt | None = None
    #: Things the loader ignored or worked around (unrecognized sections...).
    warnings: list[str] = attrs.field(factory=list)

    def load(self, *, runtime: Runtime | None = None, verifier: str | None = None,
             **options: Any) -> Collection:
        """Create the maps and load the programs (see :func:`pyebpf.load_object`)."""
        from ..collection import Collection

        return Collection.from_spec(self, runtime=runtime, verifier=verifier, **options)

    def program(self, name: str) -> ProgramSpec:
        try:
            return self.programs[name]
        except KeyError:
            raise KeyError(f"no program '{name}' in {self.name} (programs: "
                           f"{', '.join(self.programs) or 'none'})") from None
