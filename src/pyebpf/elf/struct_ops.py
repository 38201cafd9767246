"""struct_ops maps in BPF objects: the ``.struct_ops`` and ``.struct_ops.link`` sections.

libbpf's conventions (bpf_object__init_struct_ops_maps, bpf_object__collect_st_ops_relos,
bpf_map__init_kern_struct_ops, bpf_map__attach_struct_ops):

- every variable of those sections is a struct_ops map; its C type names the
  kernel struct (``struct tcp_congestion_ops``), whose members the object may
  declare only in part: they are matched to the kernel's by name;
- the section's relocations say which program each function-pointer member
  points at; such a program is loaded for that kernel struct and member
  (``attach_btf_id`` and ``expected_attach_type`` = the member's index);
- ``.struct_ops.link`` maps are created with BPF_F_LINK;
- attaching a map (:func:`attach_struct_ops`) writes the kernel's value
  layout (``bpf_struct_ops_<name>``: program fds in the function members, the
  object's bytes in the data members) with MAP_UPDATE_ELEM, then, for a link
  map, creates the struct_ops link.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

import attrs

from ..btf import BtfKind
from ..uapi import MapFlags, MapType, ProgType
from .errors import ElfError
from .spec import MapSpec

if TYPE_CHECKING:
    from ..collection import Collection
    from .reader import ElfObject, Section
    from .spec import ObjectSpec

__all__ = ["StructOpsSpec", "attach_struct_ops", "collect_struct_ops",
           "create_struct_ops_map"]

#: Offset of ``data`` in a struct_ops map value (after the cacheline-aligned head).
DATA_OFF = 64


@attrs.define
class StructOpsSpec:
    """What a struct_ops map's variable says: the kernel struct it fills, the
    object's bytes for it, and the program of each function member."""

    type_name: str
    #: The object's own BTF id of the struct, and its bytes.
    local_type_id: int
    data: bytes
    #: member name -> program name.
    progs: dict[str, str] = attrs.field(factory=dict)


def _kernel_type(type_name: str) -> Any:
    from ..struct_ops import struct_ops_type

    st = struct_ops_type(type_name)
    if st is None:
        raise ElfError(f"struct_ops init_kern: struct {type_name} is not found in kernel BTF",
                       errno.EOPNOTSUPP)
    return st


def collect_struct_ops(elf: ElfObject, spec: ObjectSpec,
                       secs: list[tuple[Section, bool]]) -> list[MapSpec]:
    """The struct_ops maps of the object's ``.struct_ops[.link]`` sections, with the
    member -> program relocations applied to the maps and their programs."""
    btf = spec.btf
    if btf is None:
        raise ElfError("struct_ops maps need the object's BTF")
    out: list[MapSpec] = []
    for sec, link in secs:
        ds = btf.find(sec.name, BtfKind.DATASEC)
        if ds is None:
            raise ElfError(f"struct_ops init: DATASEC {sec.name} not found")
        by_off: list[tuple[int, int, MapSpec]] = []
        for vi in ds.secinfos:
            var = btf.type(vi.type)
            local = btf.skip_mods_and_typedefs(var.type)
            if local.kind is not BtfKind.STRUCT:
                raise ElfError(f"struct_ops init: {var.name} is not a struct")
            st = _kernel_type(local.name)
            ms = MapSpec(name=var.name, type=MapType.STRUCT_OPS, key_size=4,
                         value_size=st.value_type.size, max_entries=1,
                         flags=int(MapFlags.LINK) if link else 0, source="struct_ops",
                         section=sec.name, offset=vi.offset)
            ms.struct_ops = StructOpsSpec(local.name, local.id,
                                          bytes(sec.data[vi.offset:vi.offset + vi.size]))
            by_off.append((vi.offset, vi.offset + vi.size, ms))
            out.append(ms)
        _collect_relos(elf, spec, sec, by_off)
    return out


def _collect_relos(elf: ElfObject, spec: ObjectSpec, sec: Section,
                   by_off: list[tuple[int, int, MapSpec]]) -> None:
    """bpf_object__collect_st_ops_relos."""
    btf = spec.btf
    assert btf is not None
    for rel in elf.sections[1:]:
        if rel.type != 9 or rel.info != sec.index:  # SHT_REL for this section
            continue
        for r in elf.relocations(rel):
            sym = elf.symbols[r.sym]
            name = elf.symbol_name(sym)
            found = next(((lo, ms) for lo, hi, ms in by_off if lo <= r.offset < hi), None)
            if found is None:
                raise ElfError(f"struct_ops reloc {sec.name}: cannot find a map at offset "
                               f"{r.offset}")
            lo, ms = found
            so: StructOpsSpec = ms.struct_ops
            moff = r.offset - lo
            member = next((m for m in btf.type(so.local_type_id).members
                           if m.bit_offset == 8 * moff), None)
            if member is None:
                raise ElfError(f"struct_ops reloc {ms.name}: cannot find member at moff {moff}")
            prog = spec.programs.get(name)
            if prog is None:
                raise ElfError(f"struct_ops reloc {ms.name}: cannot find prog {name}")
            if prog.prog_type != ProgType.STRUCT_OPS:
                raise ElfError(f"struct_ops reloc {ms.name}: prog {name} is not struct_ops")
            st = _kernel_type(so.type_name)
            try:
                idx = st.member_index(member.name)
            except KeyError:
                raise ElfError(f"struct_ops init_kern {ms.name}: Cannot find member "
                               f"{member.name} in kernel BTF", errno.EOPNOTSUPP) from None
            if prog.attach_to == so.type_name and prog.expected_attach_type != idx:
                raise ElfError(f"struct_ops reloc {ms.name}: prog {name} is already used for "
                               "another member")
            prog.expected_attach_type = idx
            prog.attach_to = so.type_name
            so.progs[member.name] = name


def create_struct_ops_map(coll: Collection, ms: MapSpec, attr: Any) -> int:
    """MAP_CREATE for a struct_ops map: the kernel value type, and the object's BTF
    as ``btf_fd`` (loaded for the call; the map keeps its own reference)."""
    from ..attr import BtfLoadAttr
    from ..uapi import Cmd

    so: StructOpsSpec = ms.struct_ops
    st = _kernel_type(so.type_name)
    btf = coll.spec.btf
    assert btf is not None
    btf_fd = int(coll._bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=btf.raw)))
    try:
        return int(coll._bpf(Cmd.MAP_CREATE, attrs.evolve(
            attr, btf_vmlinux_value_type_id=st.value_type_id, btf_fd=btf_fd)))
    finally:
        coll.runtime.close(btf_fd)


def kern_value(coll: Collection, ms: MapSpec) -> bytes:
    """bpf_map__init_kern_struct_ops: the object's struct laid out as the kernel's
    value type, with program fds in the function members."""
    so: StructOpsSpec = ms.struct_ops
    st = _kernel_type(so.type_name)
    btf = coll.spec.btf
    assert btf is not None
    kbtf = st.btf
    out = bytearray(st.value_type.size)
    kmembers = {m.name: m for m in st.members()}
    for m in btf.type(so.local_type_id).members:
        km = kmembers.get(m.name)
        moff = m.bit_offset // 8
        msize = btf.sizeof(m.type)
        if km is None:
            if any(so.data[moff:moff + msize]):
                raise ElfError(f"struct_ops init_kern {ms.name}: Cannot find member {m.name} "
                               "in kernel BTF", errno.EOPNOTSUPP)
            continue
        kmoff = DATA_OFF + km.bit_offset // 8
        if st.func_proto(km) is not None:
            prog_name = so.progs.get(m.name)
            if prog_name is not None:
                struct.pack_into("<Q", out, kmoff, coll.programs[prog_name].fd)
            continue
        ksize = kbtf.sizeof(km.type)
        if ksize != msize:
            raise ElfError(f"struct_ops init_kern {ms.name}: Error in size of member {m.name}: "
                           f"{msize} != {ksize}(kernel)")
        out[kmoff:kmoff + ksize] = so.data[moff:moff + msize]
    return bytes(out)


def attach_struct_ops(coll: Collection, name: str) -> int | None:
    """bpf_map__attach_struct_ops: write the value (registering a plain struct_ops
    map), and for a ``.struct_ops.link`` map create the link; its fd, else None."""
    from ..attr import LinkCreateAttr, MapElemAttr
    from ..uapi import AttachType, Cmd

    ms = coll.spec.maps.get(name)
    if ms is None or getattr(ms, "struct_ops", None) is None:
        raise KeyError(f"no struct_ops map '{name}' in {coll.spec.name}")
    fd = coll.maps[name].fd
    coll._bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4),
                                               value=kern_value(coll, ms)))
    if not ms.flags & MapFlags.LINK:
        return None
    return int(coll._bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd,
                                                         attach_type=AttachType.STRUCT_OPS)))
