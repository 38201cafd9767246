"""Loading an object file: :func:`load_object` and the :class:`Collection` it returns.

``load_object("prog.o")`` parses the object (:func:`pyebpf.elf.load_spec`),
creates its maps and loads its programs, the way libbpf's
``bpf_object__load`` does, and only through ``bpf()``: MAP_CREATE for every
map (inner-map templates first), MAP_UPDATE_ELEM + MAP_FREEZE for global
data (``.rodata`` and ``.kconfig`` are created with BPF_F_RDONLY_PROG and
frozen once written), OBJ_GET/OBJ_PIN for maps pinned by name, PROG_LOAD for
every program (retried with a verifier log on failure, as libbpf does), and
MAP_UPDATE_ELEM for the initial slots of program arrays and maps of maps.

The Spec (what the file declares) and the Collection (what was created) are
kept apart, as cilium/ebpf's CollectionSpec and Collection are.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .attr import MapCreateAttr, MapElemAttr, MapFdAttr, ObjPinAttr, ProgLoadAttr
from .btf import Btf, BtfKind
from .elf.core import POISON_HELPER
from .elf.errors import ElfError
from .elf.loader import kernel_object_name, load_spec
from .elf.spec import MapSpec, ObjectSpec, ProgramSpec
from .errors import BpfError, VerifierError
from .objects import Map, Program
from .runtime import Runtime, default_runtime
from .syscall import bpf
from .uapi import Cmd, MapFlags, MapType, ProgType

__all__ = ["Collection", "load_object"]

#: The log buffer used when a failed load is retried for its log (libbpf uses 16 MiB).
RETRY_LOG_SIZE = 1 << 24
_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)

ProgTypes = Mapping[str, "ProgType | int | tuple[ProgType | int, int]"]


def load_object(source: str | os.PathLike[str] | bytes | ObjectSpec, *,
                runtime: Runtime | None = None, verifier: str | None = None,
                programs: Iterable[str] | None = None, prog_types: ProgTypes | None = None,
                log_level: int = 0, target_btf: Btf | None = None,
                kconfig: Mapping[str, Any] | None = None, pin_root: str = "/sys/fs/bpf",
                tail_calls: bool = True, maps: str = "all",
                name: str | None = None) -> Collection:
    """Load a BPF ELF object: create its maps, load its programs.

    ``source`` is a path, the object's bytes, or an already parsed ObjectSpec.
    ``runtime``: the Runtime to load into (default: pyebpf's default runtime).
    ``verifier``: "kernel" or "structural" for these loads (default: the
    runtime's setting). ``programs``: load only these (by name; default: all
    but those in ``SEC("?...")`` sections, as libbpf; maps are all
    created). ``prog_types``: types for programs whose section name doesn't say
    (``{"my_prog": ProgType.SCHED_CLS}``, or a (type, expected attach type)
    pair), keyed by program or section name. ``log_level``: keep the verifier
    log of every load (on ``Program.log``). ``tail_calls``: fill program
    arrays by the section-name conventions of iproute2 ("1/0") and
    samples/bpf ("socket/1"). ``maps``: "all" creates every map the object
    declares (as libbpf does); "used" only those the loaded programs refer to
    (with their inner maps and initial slots).
    """
    spec = source if isinstance(source, ObjectSpec) else load_spec(
        source, name=name, target_btf=target_btf, kconfig=kconfig)
    return Collection.from_spec(spec, runtime=runtime, verifier=verifier, programs=programs,
                                prog_types=prog_types, log_level=log_level, pin_root=pin_root,
                                tail_calls=tail_calls, maps=maps)


def map_create_attr(ms: MapSpec, inner_fd: int = 0) -> MapCreateAttr:
    """The MAP_CREATE record libbpf makes of a map definition."""
    return MapCreateAttr(
        map_type=ms.type, key_size=ms.key_size, value_size=ms.value_size,
        max_entries=ms.max_entries, map_flags=ms.flags, inner_map_fd=inner_fd,
        numa_node=ms.numa_node if ms.flags & MapFlags.NUMA_NODE else 0,
        map_name=ms.kernel_name or kernel_object_name(ms.name), map_extra=ms.map_extra)


def program_type(ps: ProgramSpec, prog_types: ProgTypes) -> tuple[Any, int]:
    """(program type, expected attach type) to load ``ps`` as: ``prog_types`` by
    program or section name (a type, or a (type, attach type) pair) over what the
    section says; a type other than the section's drops the section's attach type.
    The type is None when neither says."""
    ptype: Any = prog_types.get(ps.name, prog_types.get(ps.section))
    eat = ps.expected_attach_type
    if ptype is None:
        return ps.prog_type, eat
    if isinstance(ptype, tuple):
        return ptype
    return ptype, 0 if ps.prog_type is None or ProgType(ptype) != ps.prog_type else eat


def patch_map_refs(ps: ProgramSpec, fds: Mapping[str, int]) -> bytes:
    """The program's instructions with each map reference's ``lddw`` given the
    map's fd (and, for a value reference, the offset in its second half)."""
    insns = bytearray(ps.insns)
    for ref in ps.map_refs:
        struct.pack_into("<I", insns, ref.insn * 8 + 4, fds[ref.map] & 0xFFFF_FFFF)
        if ref.kind == "value":
            struct.pack_into("<I", insns, ref.insn * 8 + 12, ref.offset & 0xFFFF_FFFF)
    return bytes(insns)


def prog_btf_attrs(ps: ProgramSpec, btf_fd: int | None) -> dict[str, Any]:
    """The PROG_LOAD fields libbpf fills from the object's BTF: ``prog_btf_fd`` and the
    program's func_info and line_info records (what bpf_obj_new's local types and
    global functions need). Empty without BTF or func_info."""
    if btf_fd is None or not ps.func_info:
        return {}
    out: dict[str, Any] = {
        "prog_btf_fd": btf_fd, "func_info_rec_size": FUNC_INFO_REC_SIZE,
        "func_info_cnt": len(ps.func_info),
        "func_info": b"".join(struct.pack("<II", f.insn_off, f.type_id) for f in ps.func_info)}
    if ps.line_info:
        out.update(line_info_rec_size=LINE_INFO_REC_SIZE, line_info_cnt=len(ps.line_info),
                   line_info=b"".join(struct.pack("<IIII", li.insn_off, li.file_name_off,
                                                  li.line_off, li.line_col)
                                      for li in ps.line_info))
    return out


#: sizeof(struct bpf_func_info), sizeof(struct bpf_line_info).
FUNC_INFO_REC_SIZE, LINE_INFO_REC_SIZE = 8, 16


#: Bytes after the 12-byte ``struct btf_type`` of each kind: fixed, and per vlen entry.
_BTF_TAIL = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8),
             14: (4, 0), 15: (0, 12), 17: (4, 0), 19: (0, 12)}
_BTF_KIND_FUNC, _BTF_KIND_VAR, _BTF_KIND_DATASEC = 12, 14, 15
_BTF_FUNC_GLOBAL, _BTF_FUNC_EXTERN, _BTF_VAR_GLOBAL_ALLOCATED = 1, 2, 1


def kernel_ready_btf(btf: Btf) -> bytes:
    """The object's BTF as libbpf hands it to the kernel: DATASECs with their sizes and
    variable offsets (the loader's fixed-up types), and ``.ksyms`` externs turned into
    4-byte allocated variables, kfunc FUNCs made global and pointed at by a dummy
    ``dummy_ksym`` int variable (bpf_object__collect_externs), since the kernel
    refuses extern linkage."""
    raw = btf.raw
    _magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = \
        struct.unpack_from("<HBBIIIII", raw, 0)
    body = raw[hdr_len:]
    tdata = bytearray(body[type_off:type_off + type_len])
    strings = bytearray(body[str_off:str_off + str_len])
    offsets: list[int] = [0]  # type id -> its record's offset in tdata (void: none)
    off = 0
    while off < len(tdata):
        offsets.append(off)
        info = struct.unpack_from("<I", tdata, off + 4)[0]
        fixed, per = _BTF_TAIL.get((info >> 24) & 0x1F, (0, 0))
        off += 12 + fixed + per * (info & 0xFFFF)
    ksyms = btf.find(".ksyms", BtfKind.DATASEC)
    dummy_id = 0
    if ksyms is not None and any(btf.type(v.type).kind is BtfKind.FUNC
                                 for v in ksyms.secinfos):
        dummy_name = len(strings)
        strings += b"dummy_ksym\0"
        int_id = next((t.id for t in btf.types if t.kind is BtfKind.INT and t.int_bits == 32),
                      0)
        dummy_id = len(btf.types)
        tdata += struct.pack("<IIII", dummy_name, _BTF_KIND_VAR << 24, int_id,
                             _BTF_VAR_GLOBAL_ALLOCATED)
    for t in btf.types[1:]:
        o = offsets[t.id]
        if t.kind is BtfKind.DATASEC:
            infos = list(t.secinfos)
            size = t.size
            if ksyms is not None and t.id == ksyms.id:
                for i, vi in enumerate(infos):
                    target = btf.type(vi.type)
                    if target.kind is BtfKind.FUNC:
                        _ksym_func(btf, tdata, offsets, target, dummy_name)
                        vi = attrs.evolve(vi, type=dummy_id)
                    else:  # a typed ksym variable: a 4-byte int, allocated
                        struct.pack_into("<I", tdata, offsets[target.id] + 8, int_id)
                        struct.pack_into("<I", tdata, offsets[target.id] + 12,
                                         _BTF_VAR_GLOBAL_ALLOCATED)
                    infos[i] = attrs.evolve(vi, offset=4 * i, size=4)
                size = 4 * len(infos)
            struct.pack_into("<I", tdata, o + 8, size)
            for i, vi in enumerate(infos):
                struct.pack_into("<III", tdata, o + 12 + 12 * i, vi.type, vi.offset, vi.size)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(tdata), len(tdata), len(strings))
    return hdr + bytes(tdata) + bytes(strings)


def _ksym_func(btf: Btf, tdata: bytearray, offsets: list[int], func: Any,
               dummy_name: int) -> None:
    """A kfunc's FUNC: global linkage, and names for its unnamed parameters."""
    o = offsets[func.id]
    info = struct.unpack_from("<I", tdata, o + 4)[0]
    if info & 0xFFFF == _BTF_FUNC_EXTERN:
        struct.pack_into("<I", tdata, o + 4, (info & ~0xFFFF) | _BTF_FUNC_GLOBAL)
    proto = btf.type(func.type)
    po = offsets[proto.id]
    for i, p in enumerate(proto.params):
        if p.type and not p.name:
            struct.pack_into("<I", tdata, po + 12 + 8 * i, dummy_name)


class Collection:
    """The maps and programs of a loaded object. ``maps`` by the object's names
    (".data", ".rodata"... for global data), ``programs`` by function name."""

    def __init__(self, spec: ObjectSpec, runtime: Runtime) -> None:
        self.spec = spec
        self.runtime = runtime
        self.maps: dict[str, Map] = {}
        self.programs: dict[str, Program] = {}

    @classmethod
    def from_spec(cls, spec: ObjectSpec, *, runtime: Runtime | None = None,
                  verifier: str | None = None, programs: Iterable[str] | None = None,
                  prog_types: ProgTypes | None = None, log_level: int = 0,
                  pin_root: str = "/sys/fs/bpf", tail_calls: bool = True,
                  maps: str = "all") -> Collection:
        rt = runtime if runtime is not None else default_runtime()
        coll = cls(spec, rt)
        wanted = ([n for n, ps in spec.programs.items() if ps.autoload] if programs is None
                  else list(programs))
        for n in wanted:
            spec.program(n)  # KeyError with the list of programs
        saved = rt.verifier
        if verifier is not None:
            from .prog import VERIFIERS

            if verifier not in VERIFIERS:
                raise ValueError(f"unknown verifier {verifier!r} (one of {', '.join(VERIFIERS)})")
            rt.verifier = verifier
        if maps not in ("all", "used"):
            raise ValueError(f"maps must be 'all' or 'used', not {maps!r}")
        try:
            coll._create_maps(pin_root, None if maps == "all" else _used_maps(spec, wanted))
            for n in wanted:
                coll.programs[n] = coll._load_program(spec.programs[n], prog_types or {},
                                                      log_level)
            coll._fill_slots(tail_calls)
        except BaseException:
            coll.close()
            raise
        finally:
            rt.verifier = saved
        return coll

    # -- maps ---------------------------------------------------------------------------------
    def _bpf(self, cmd: Cmd, attr: Any) -> Any:
        return bpf(cmd, attr, runtime=self.runtime)

    def _create_maps(self, pin_root: str, only: set[str] | None) -> None:
        specs = self.spec.maps
        creating: set[str] = set()

        def create(name: str) -> Map:
            if name in self.maps:
                return self.maps[name]
            if name in creating:
                raise ElfError(f"map '{name}': inner map definitions form a loop")
            creating.add(name)
            ms = specs[name]
            inner_fd = 0
            if ms.inner_map_name is not None:
                if ms.inner_map_name not in specs:
                    raise ElfError(f"map '{name}': inner map '{ms.inner_map_name}' is missing")
                inner_fd = create(ms.inner_map_name).fd
            self.maps[name] = self._create_map(ms, inner_fd, pin_root)
            return self.maps[name]

        for name in specs:
            if only is None or name in only:
                create(name)

    def _create_map(self, ms: MapSpec, inner_fd: int, pin_root: str) -> Map:
        rt = self.runtime
        pin_path = f"{pin_root.rstrip('/')}/{ms.name}" if ms.pinning and ms.source == "btf" \
            else None
        if pin_path is not None and pin_path in rt.bpffs:
            m = Map.from_pin(pin_path, runtime=rt)
            if (m.map_type, m.key_size, m.value_size, m.max_entries) != (
                    ms.type, ms.key_size, ms.value_size, ms.max_entries):
                m.close()
                raise BpfError(errno.EINVAL, f"couldn't reuse pinned map at '{pin_path}': "
                               f"parameter mismatch with {ms.describe()}")
            return m
        template: Map | None = None
        try:
            if ms.inner is not None:
                template = self._create_map(ms.inner, 0, pin_root)
                inner_fd = template.fd
            attr = map_create_attr(ms, inner_fd)
            try:
                if ms.struct_ops is not None:
                    from .elf.struct_ops import create_struct_ops_map

                    fd = create_struct_ops_map(self, ms, attr)
                else:
                    fd = self._create_with_btf(ms, attr)
            except BpfError as e:
                raise BpfError(e.errno or errno.EINVAL,
                               f"{ms.describe()}: create failed: {e.strerror}") from None
        finally:
            if template is not None:
                template.close()  # the outer map keeps what it needs of the template
        m = Map(fd, rt)
        m.name = ms.name
        try:
            if ms.data is not None:
                m.update(0, ms.data)
                if ms.freeze:
                    self._bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd))
            if pin_path is not None:
                self._bpf(Cmd.OBJ_PIN, ObjPinAttr(pathname=pin_path, bpf_fd=fd))
        except BaseException:
            m.close()
            raise
        return m

    def _object_btf_fd(self) -> int | None:
        """The object's BTF loaded into the runtime once (libbpf's bpf_object__load_vmlinux
        counterpart for the object itself), or None when there is none or it won't load."""
        if not hasattr(self, "_btf_fd"):
            self._btf_fd: int | None = None
            if self.spec.btf is not None:
                from .attr import BtfLoadAttr

                try:
                    self._btf_fd = int(self._bpf(Cmd.BTF_LOAD, BtfLoadAttr(
                        btf=kernel_ready_btf(self.spec.btf))))
                except BpfError:
                    self._btf_fd = None
        return self._btf_fd

    def _create_with_btf(self, ms: MapSpec, attr: MapCreateAttr) -> int:
        """MAP_CREATE with the map's key and value types from the object's BTF (what
        bpf_timer, bpf_spin_lock and kptr fields need), retrying without BTF when
        the types are refused, as libbpf does."""
        btf_fd = self._object_btf_fd() if ms.btf_value_type_id else None
        if btf_fd is not None:
            try:
                return int(self._bpf(Cmd.MAP_CREATE, attrs.evolve(
                    attr, btf_fd=btf_fd, btf_key_type_id=ms.btf_key_type_id,
                    btf_value_type_id=ms.btf_value_type_id)))
            except BpfError:
                pass
        return int(self._bpf(Cmd.MAP_CREATE, attr))

    def attach_struct_ops(self, name: str) -> int | None:
        """Register the struct_ops map ``name`` with its subsystem (libbpf's
        bpf_map__attach_struct_ops): its value goes in; a ``.struct_ops.link`` map
        also gets its struct_ops link, whose fd is returned."""
        from .elf.struct_ops import attach_struct_ops

        return attach_struct_ops(self, name)

    # -- programs -------------------------------------------------------------------------------
    def _load_program(self, ps: ProgramSpec, prog_types: ProgTypes,
                      log_level: int) -> Program:
        if ps.link_error:
            raise ElfError(f"program '{ps.name}' ({ps.section}): {ps.link_error}",
                           errno.EOPNOTSUPP if "not supported" in ps.link_error
                           else errno.EINVAL)
        ptype, eat = program_type(ps, prog_types)
        if ptype is None:
            raise ElfError(f"program '{ps.name}': section '{ps.section}' doesn't say which "
                           f"program type it is; pass prog_types={{'{ps.name}': ProgType.X}}")
        missing = [ref.map for ref in ps.map_refs if ref.map not in self.maps]
        if missing:
            raise ElfError(f"program '{ps.name}': map '{missing[0]}' was not created")
        insns = patch_map_refs(ps, {name: m.fd for name, m in self.maps.items()})
        attr = ProgLoadAttr(prog_type=int(ptype), insns=insns, license=ps.license,
                            prog_name=kernel_object_name(ps.name), expected_attach_type=eat,
                            kern_version=ps.kern_version, prog_flags=ps.prog_flags,
                            log_level=log_level, log_size=RETRY_LOG_SIZE if log_level else 0,
                            attach_btf_id=_attach_btf_id(self.runtime, ptype, eat, ps.attach_to))
        try:
            fd = self._load_with_btf(ps, attr)
        except BpfError as e:
            log = getattr(e, "log", "")
            if not log_level and isinstance(e, VerifierError):
                try:  # libbpf: retry with a log to say why
                    self._load_with_btf(ps, _with_log(attr))
                except VerifierError as e2:
                    log = e2.log
                except BpfError:
                    pass
            err = _load_error(ps, e, log)
            err.object_spec = self.spec  # type: ignore[attr-defined]  # for pyebpf.explain
            raise err from None
        # Carry the BTF line info into the loaded program (the kernel keeps it in
        # prog->aux->linfo): traces, coverage and views name source lines with it.
        from .runtime import ObjKind

        loaded, _ = self.runtime.get_object(fd, ObjKind.PROG)
        loaded.line_info, loaded.obj_path = list(ps.line_info), self.spec.path  # type: ignore[attr-defined]
        return Program(fd, self.runtime, name=ps.name, spec=ps, log=getattr(fd, "log", ""))

    def _load_with_btf(self, ps: ProgramSpec, attr: ProgLoadAttr) -> Any:
        """PROG_LOAD with the program's BTF and func/line info (:func:`prog_btf_attrs`),
        again without them when the kernel refuses the records themselves (an
        edited program whose subprograms no longer match), as for maps' BTF."""
        extra = prog_btf_attrs(ps, self._object_btf_fd())
        if not extra:
            return self._bpf(Cmd.PROG_LOAD, attr)
        try:
            return self._bpf(Cmd.PROG_LOAD, attrs.evolve(attr, **extra))
        except VerifierError:
            raise
        except BpfError:
            return self._bpf(Cmd.PROG_LOAD, attr)

    def _fill_slots(self, tail_calls: bool) -> None:
        for ms in self.spec.maps.values():
            if ms.name not in self.maps:
                continue
            for slot, target in sorted(ms.init_slots.items()):
                if ms.type == MapType.PROG_ARRAY:
                    prog = self.programs.get(target)
                    if prog is None:
                        continue  # not loaded (a subset was asked for)
                    fd = prog.fd
                else:
                    fd = self.maps[target].fd
                self._set_slot(ms, slot, fd)
        if not tail_calls:
            return
        for name, prog in self.programs.items():
            slot = self.spec.programs[name].tail_call_slot
            if slot is not None and slot[0] in self.maps:
                self._set_slot(self.spec.maps[slot[0]], slot[1], prog.fd)

    def _set_slot(self, ms: MapSpec, slot: int, fd: int) -> None:
        m = self.maps[ms.name]
        self._bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(
            map_fd=m.fd, key=slot.to_bytes(ms.key_size or 4, "little"),
            value=struct.pack("<I", fd)))

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every fd the collection holds (pinned objects stay pinned)."""
        for p in self.programs.values():
            if p.fd >= 0:
                p.close()
        for m in self.maps.values():
            if m.fd >= 0:
                m.close()
        btf_fd = getattr(self, "_btf_fd", None)
        if btf_fd is not None:
            self.runtime.close(btf_fd)
            self._btf_fd = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Collection {self.spec.name!r} maps={list(self.maps)} "
                f"programs={list(self.programs)}>")


def _used_maps(spec: ObjectSpec, programs: list[str]) -> set[str]:
    """The maps the programs refer to, with what those maps need."""
    todo = [ref.map for n in programs for ref in spec.programs[n].map_refs]
    todo += [spec.programs[n].tail_call_slot[0] for n in programs
             if spec.programs[n].tail_call_slot is not None]
    used: set[str] = set()
    while todo:
        name = todo.pop()
        if name in used or name not in spec.maps:
            continue
        used.add(name)
        ms = spec.maps[name]
        if ms.inner_map_name:
            todo.append(ms.inner_map_name)
        if ms.type in _MAP_IN_MAP:
            todo.extend(ms.init_slots.values())
    return used


def _with_log(attr: ProgLoadAttr) -> ProgLoadAttr:
    import attrs

    return attrs.evolve(attr, log_level=1, log_size=RETRY_LOG_SIZE)


#: libbpf's find_attach_btf_id: what an attach-by-BTF section names in the kernel
#: BTF, by attach type: the prefix the kernel gives it, and whether it is a typedef
#: (tp_btf's btf_trace_<tp>) rather than a function.
_ATTACH_BTF_PREFIXES = {
    28: ("bpf_iter_", False),  # BPF_TRACE_ITER
    23: ("btf_trace_", True),  # BPF_TRACE_RAW_TP
    24: ("", False), 25: ("", False), 26: ("", False),  # fentry, fexit, fmod_ret
    27: ("bpf_lsm_", False), 43: ("bpf_lsm_", False),  # BPF_LSM_MAC, BPF_LSM_CGROUP
}


def _attach_btf_id(rt: Runtime, ptype: Any, eat: int, target: str) -> int:
    """The vmlinux BTF id of what an attach-by-BTF section names (``iter/<target>``,
    ``fentry/<func>``, ``tp_btf/<tp>``, ``lsm/<hook>`` ...), or of the struct a
    struct_ops program implements a member of (0: none applies)."""
    if ptype == ProgType.STRUCT_OPS and target:
        from .btf import BtfKind

        st = rt.btf_vmlinux.btf.find(target, BtfKind.STRUCT)
        return st.id if st is not None else 0
    entry = _ATTACH_BTF_PREFIXES.get(eat)
    if ptype not in (ProgType.TRACING, ProgType.LSM) or entry is None or not target:
        return 0
    from .btf import BtfKind

    prefix, typedef = entry
    t = rt.btf_vmlinux.btf.find(prefix + target, BtfKind.TYPEDEF if typedef else BtfKind.FUNC)
    return t.id if t is not None else 0


def _load_error(ps: ProgramSpec, err: BpfError, log: str) -> BpfError:
    """The error of a failed PROG_LOAD, naming the program and the verifier's reason."""
    lines = [ln for ln in log.splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if not ln.startswith(
        ("processed ", "verification time", "stack depth", "pyebpf:"))), err.strerror or "")
    msg = f"program '{ps.name}' ({ps.section}): {reason}"
    at = next((int(m.group(1)) for ln in reversed(lines)
               if (m := re.match(r"(\d+): \(", ln)) is not None), None)
    li = ps.line_for(at) if at is not None else None
    if li is not None and li.line_num:
        src = f" {li.line.strip()!r}" if li.line.strip() else ""
        msg += f" (insn {at}, {os.path.basename(li.file_name)}:{li.line_num}{src})"
    if f"#{POISON_HELPER}" in log or f"unknown#{POISON_HELPER}" in log:
        bad = [r for r in ps.core_relos if not r.ok]
        if bad:
            msg += "; CO-RE relocation failed: " + "; ".join(r.message for r in bad)
    if isinstance(err, VerifierError):
        out_v = VerifierError(err.errno or errno.EINVAL, msg, log)
        for extra in ("load_attr", "runtime"):  # for pyebpf.explain
            if hasattr(err, extra):
                setattr(out_v, extra, getattr(err, extra))
        out_v.program_spec = ps  # type: ignore[attr-defined]
        return out_v
    out = BpfError(err.errno or errno.EINVAL, msg)
    out.log = log  # type: ignore[attr-defined]
    return out
