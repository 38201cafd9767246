"""Map definitions in an object file: BTF ``.maps``, legacy ``maps`` sections.

Two declaration styles exist:

- BTF-defined maps (libbpf 1.x): a variable in section ``.maps`` whose BTF
  type is a struct of "fields" encoded in types (``__uint(type, N)`` is a
  pointer to an array of N elements, ``__type(key, T)`` a pointer to T,
  ``__array(values, struct inner)`` a zero-length array of pointers to the
  inner map's definition or, for program arrays, to a function prototype).
  :func:`parse_btf_map_def` is libbpf's ``parse_btf_map_def``.
- Legacy definitions: ``struct bpf_map_def`` records in a ``maps`` section
  (libbpf 0.x: 20 bytes, extra bytes must be zero; samples/bpf: 28 bytes with
  ``inner_map_idx`` and ``numa_node``; iproute2's ``struct bpf_elf_map``: 36
  bytes with ``id``, ``pinning``, ``inner_id``, ``inner_idx``), one per symbol.
"""

from __future__ import annotations

import errno
import struct

from ..btf import Btf, BtfKind, BtfType, VarLinkage
from ..errors import BpfError
from ..uapi import MapFlags, MapType
from .errors import ElfError
from .reader import STT_FILE, STT_SECTION, ElfObject, Section
from .spec import MapSpec

__all__ = ["adjust_ringbuf_size", "parse_btf_maps", "parse_legacy_maps"]

PAGE_SIZE = 4096
LIBBPF_PIN_NONE = 0
LIBBPF_PIN_BY_NAME = 1

_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


def adjust_ringbuf_size(sz: int) -> int:
    """libbpf's adjust_ringbuf_sz: round up to a power-of-2 number of pages."""
    if sz == 0:
        return 0
    if sz % PAGE_SIZE == 0 and (sz // PAGE_SIZE) & (sz // PAGE_SIZE - 1) == 0:
        return sz
    mul = 1
    while mul * PAGE_SIZE <= 0xFFFF_FFFF:
        if mul * PAGE_SIZE > sz:
            return mul * PAGE_SIZE
        mul <<= 1
    return sz


def _fix_ringbuf(spec: MapSpec) -> None:
    if spec.type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        spec.max_entries = adjust_ringbuf_size(spec.max_entries)


# -- BTF-defined maps ------------------------------------------------------------------------
def _field_int(btf: Btf, map_name: str, member_name: str, tid: int) -> int:
    """get_map_field_int: the element count of the array a pointer member points to."""
    t = btf.skip_mods_and_typedefs(tid)
    if t.kind is not BtfKind.PTR:
        raise ElfError(f"map '{map_name}': attr '{member_name}': expected PTR, got "
                       f"{t.kind_name}")
    arr = btf.type(t.type)
    if arr.kind is not BtfKind.ARRAY or arr.array is None:
        raise ElfError(f"map '{map_name}': attr '{member_name}': expected ARRAY, got "
                       f"{arr.kind_name}")
    return arr.array.nelems


def parse_btf_map_def(btf: Btf, map_name: str, def_t: BtfType, *, is_inner: bool = False,
                      strict: bool = True) -> MapSpec:
    """The fields of one BTF map definition struct."""
    spec = MapSpec(name=map_name, type=0, source="btf")
    members = def_t.members
    for i, m in enumerate(members):
        name = m.name
        if not name:
            raise ElfError(f"map '{map_name}': invalid field #{i}")
        if name == "type":
            spec.type = _field_int(btf, map_name, name, m.type)
        elif name == "max_entries":
            spec.max_entries = _field_int(btf, map_name, name, m.type)
        elif name == "map_flags":
            spec.flags = _field_int(btf, map_name, name, m.type)
        elif name == "numa_node":
            spec.numa_node = _field_int(btf, map_name, name, m.type)
        elif name in ("key_size", "value_size"):
            sz = _field_int(btf, map_name, name, m.type)
            cur = getattr(spec, name)
            if cur and cur != sz:
                raise ElfError(f"map '{map_name}': conflicting {name.replace('_', ' ')} "
                               f"{cur} != {sz}")
            setattr(spec, name, sz)
        elif name in ("key", "value"):
            t = btf.type(m.type)
            if t.kind is not BtfKind.PTR:
                raise ElfError(f"map '{map_name}': {name} spec is not PTR: {t.kind_name}")
            try:
                sz = btf.sizeof(t.type)
            except BpfError as e:
                raise ElfError(f"map '{map_name}': can't determine {name} size for type "
                               f"[{t.type}]: {e.strerror}") from None
            attr = f"{name}_size"
            cur = getattr(spec, attr)
            if cur and cur != sz:
                raise ElfError(f"map '{map_name}': conflicting {name} size {cur} != {sz}")
            setattr(spec, attr, sz)
            setattr(spec, f"btf_{name}_type_id", t.type)
        elif name == "values":
            is_mim = spec.type in _MAP_IN_MAP
            is_prog_array = spec.type == MapType.PROG_ARRAY
            desc = "map-in-map inner" if is_mim else "prog-array value"
            if is_inner:
                raise ElfError(f"map '{map_name}': multi-level inner maps not supported",
                               errno.EOPNOTSUPP)
            if i != len(members) - 1:
                raise ElfError(f"map '{map_name}': '{name}' member should be last")
            if not is_mim and not is_prog_array:
                raise ElfError(f"map '{map_name}': should be map-in-map or prog-array",
                               errno.EOPNOTSUPP)
            if spec.value_size and spec.value_size != 4:
                raise ElfError(f"map '{map_name}': conflicting value size "
                               f"{spec.value_size} != 4")
            spec.value_size = 4
            t = btf.type(m.type)
            if t.kind is not BtfKind.ARRAY or t.array is None or t.array.nelems:
                raise ElfError(f"map '{map_name}': {desc} spec is not a zero-sized array")
            t = btf.skip_mods_and_typedefs(t.array.type)
            if t.kind is not BtfKind.PTR:
                raise ElfError(f"map '{map_name}': {desc} def is of unexpected kind "
                               f"{t.kind_name}")
            t = btf.skip_mods_and_typedefs(t.type)
            if is_prog_array:
                if t.kind is not BtfKind.FUNC_PROTO:
                    raise ElfError(f"map '{map_name}': prog-array value def is of unexpected "
                                   f"kind {t.kind_name}")
                continue
            if t.kind is not BtfKind.STRUCT:
                raise ElfError(f"map '{map_name}': map-in-map inner def is of unexpected "
                               f"kind {t.kind_name}")
            inner = parse_btf_map_def(btf, f"{map_name}.inner", t, is_inner=True,
                                      strict=strict)
            spec.inner = inner
        elif name == "pinning":
            if is_inner:
                raise ElfError(f"map '{map_name}': inner def can't be pinned")
            val = _field_int(btf, map_name, name, m.type)
            if val not in (LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME):
                raise ElfError(f"map '{map_name}': invalid pinning value {val}")
            spec.pinning = val
        elif name == "map_extra":
            spec.map_extra = _field_int(btf, map_name, name, m.type)
        elif strict:
            raise ElfError(f"map '{map_name}': unknown field '{name}'", errno.EOPNOTSUPP)
    if spec.type == MapType.UNSPEC:
        raise ElfError(f"map '{map_name}': map type isn't specified")
    _fix_ringbuf(spec)
    return spec


def parse_btf_maps(elf: ElfObject, btf: Btf | None, sec: Section) -> list[MapSpec]:
    """Every map of the ``.maps`` section (libbpf's bpf_object__init_user_btf_maps)."""
    if btf is None:
        raise ElfError("the object has a .maps section but no BTF to describe it "
                       "(compile with -g)")
    datasec = btf.find(".maps", BtfKind.DATASEC)
    if datasec is None:
        raise ElfError("DATASEC '.maps' not found in the object's BTF", errno.ENOENT)
    offsets = {s.name: s.value for s in elf.symbols if s.shndx == sec.index and s.name}
    out = []
    for i, vi in enumerate(datasec.secinfos):
        var = btf.type(vi.type)
        name = var.name
        if not name:
            raise ElfError(f"map #{i}: empty name")
        if var.kind is not BtfKind.VAR:
            raise ElfError(f"map '{name}': unexpected var kind {var.kind_name}")
        if var.linkage != VarLinkage.GLOBAL_ALLOCATED:
            link = {0: "static", 2: "extern"}.get(var.linkage, "unknown")
            raise ElfError(f"map '{name}': unsupported map linkage {link}", errno.EOPNOTSUPP)
        offset = offsets.get(name, vi.offset)
        def_t = btf.skip_mods_and_typedefs(var.type)
        if def_t.kind is not BtfKind.STRUCT:
            raise ElfError(f"map '{name}': unexpected def kind {def_t.kind_name}")
        size = vi.size or def_t.size
        if def_t.size > size or offset + size > sec.size:
            raise ElfError(f"map '{name}': BTF data is corrupted (definition past the end "
                           "of .maps)")
        spec = parse_btf_map_def(btf, name, def_t)
        spec.section = sec.name
        spec.offset = offset
        out.append(spec)
    return out


# -- legacy maps sections ---------------------------------------------------------------------
_LEGACY_FIELDS = struct.Struct("<5I")


def is_legacy_maps_section(name: str) -> bool:
    return name == "maps" or name.startswith("maps/")


def parse_legacy_maps(elf: ElfObject, secs: list[Section]) -> list[MapSpec]:
    """Map definitions from ``maps`` (and PREVAIL-style ``maps/<name>``) sections."""
    out: list[MapSpec] = []
    by_id: dict[int, MapSpec] = {}
    inner_refs: list[tuple[MapSpec, str, int]] = []
    for sec in secs:
        syms = sorted((s for s in elf.symbols if s.shndx == sec.index and s.name
                       and s.type not in (STT_SECTION, STT_FILE)), key=lambda s: s.value)
        if not syms:
            if sec.size:
                raise ElfError(f"section '{sec.name}': map definitions without symbols")
            continue
        sizes = {s.size for s in syms}
        if len(sizes) == 1 and 0 not in sizes:
            def_size = sizes.pop()
        else:
            if sec.size % len(syms):
                raise ElfError(f"section '{sec.name}' of {sec.size} bytes doesn't hold "
                               f"{len(syms)} map definitions of one size")
            def_size = sec.size // len(syms)
        if def_size < _LEGACY_FIELDS.size:
            raise ElfError(f"section '{sec.name}': map definitions of {def_size} bytes are "
                           f"shorter than struct bpf_map_def ({_LEGACY_FIELDS.size})")
        for s in syms:
            if s.value + def_size > sec.size:
                raise ElfError(f"map '{s.name}': definition runs past the end of "
                               f"'{sec.name}'")
            raw = sec.data[s.value:s.value + def_size]
            mtype, key, value, max_entries, flags = _LEGACY_FIELDS.unpack_from(raw, 0)
            spec = MapSpec(name=s.name, type=mtype, key_size=key, value_size=value,
                           max_entries=max_entries, flags=flags, source="legacy",
                           section=sec.name, offset=s.value)
            extra = raw[20:]
            if def_size == 36:  # iproute2's struct bpf_elf_map
                elf_id, pinning, inner_id, inner_idx = struct.unpack_from("<4I", raw, 20)
                spec.elf_id = elf_id
                spec.pinning = pinning
                if elf_id:
                    by_id[elf_id] = spec
                if inner_id:
                    inner_refs.append((spec, "id", inner_id))
                del inner_idx  # the slot index of iproute2's own map-in-map setup
            elif def_size >= 28 and not any(raw[28:]):  # samples/bpf's bpf_map_def
                inner_idx, numa = struct.unpack_from("<2I", raw, 20)
                if flags & MapFlags.NUMA_NODE:
                    spec.numa_node = numa
                if mtype in _MAP_IN_MAP:
                    inner_refs.append((spec, "idx", inner_idx))
            elif any(extra):
                raise ElfError(f"map '{s.name}' in '{sec.name}' has unrecognized, non-zero "
                               f"options in its {def_size}-byte definition",
                               errno.EOPNOTSUPP)
            _fix_ringbuf(spec)
            out.append(spec)
    for spec, how, ref in inner_refs:
        target = by_id.get(ref) if how == "id" else (out[ref] if ref < len(out) else None)
        if target is None or target is spec:
            raise ElfError(f"map '{spec.name}': inner map {how} {ref} does not exist")
        spec.inner_map_name = target.name
        # samples/bpf's bpf_create_map_in_map_node: the outer value is an fd (4 bytes).
        if spec.type in _MAP_IN_MAP and spec.value_size == 0:
            spec.value_size = 4
    return out
