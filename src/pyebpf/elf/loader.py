"""From ELF bytes to an :class:`ObjectSpec`, following libbpf's rules.

The steps are libbpf's (``bpf_object__open``): collect sections (license,
version, BTF, maps, global data, programs), find one program per function
symbol of each executable section, record each instruction relocation
(``bpf_program__record_reloc``), apply CO-RE relocations, then link every
entry program: append the ``.text`` sub-programs it calls (transitively),
fix the call offsets, and note which 64-bit immediate loads name which map.
Map fds are filled in only when the Spec is loaded.

Additions for objects libbpf 1.x no longer opens (documented, not guessed):
legacy ``maps`` sections (see :mod:`.maps`), program sections of old
objects whose symbols are NOTYPE, older section-name prefixes (see
:mod:`.sections`), and ``.text`` functions offered as programs when an object
has no other program section (as PREVAIL-style verifier test objects are
used).
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Mapping
from typing import Any

import attrs

from ..btf import Btf, BtfExt, BtfKind, FuncInfo, LineInfo, VarLinkage
from ..errors import BpfError
from ..kfuncs import kfunc_by_name
from ..uapi import MapFlags, MapType, ProgLoadFlags
from .core import apply_core_relos
from .errors import CoreRelocError, ElfError
from .maps import is_legacy_maps_section, parse_btf_maps, parse_legacy_maps
from .reader import (
    SHN_LORESERVE,
    SHT_NOBITS,
    SHT_PROGBITS,
    SHT_REL,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    STT_NOTYPE,
    STT_SECTION,
    ElfObject,
    Section,
    Symbol,
)
from .sections import IPROUTE2_TAIL_CALL, NUMBERED_SECTION, SecFlags, section_prog_type
from .spec import MapRef, MapSpec, ObjectSpec, ProgramSpec

__all__ = ["KERNEL_VERSION", "load_spec"]

#: LINUX_KERNEL_VERSION as pyebpf reports it: KERNEL_VERSION(6, 18, 0).
KERNEL_VERSION = (6 << 16) + (18 << 8)
#: Kconfig values libbpf provides itself (the rest come from the kernel config).
_BUILTIN_KCONFIG: dict[str, int] = {
    "LINUX_KERNEL_VERSION": KERNEL_VERSION,
    "LINUX_HAS_BPF_COOKIE": 1,
    "LINUX_HAS_SYSCALL_WRAPPER": 1,
}
BPF_OBJ_NAME_LEN = 16


@attrs.define
class _Relo:
    kind: str  # "map", "data", "call", "subprog_addr", "extern"
    sym_name: str
    map: str = ""
    sym_off: int = 0
    sec: int = 0  # target section (calls, subprog addresses)
    ext: str = ""


@attrs.define(eq=False)
class _Func:
    name: str
    sec: Section
    off: int  # first instruction, within the section
    cnt: int  # instructions
    raw: bytearray
    is_global: bool
    relos: dict[int, _Relo] = attrs.field(factory=dict)

    def contains(self, sec_idx: int) -> bool:
        return self.off <= sec_idx < self.off + self.cnt


@attrs.define
class _Extern:
    name: str
    weak: bool
    kind: str  # "kconfig", "ksym", "unknown"
    size: int = 0
    align: int = 1
    data_off: int = 0
    is_func: bool = False
    error: str = ""
    #: A kfunc resolved by name: its BTF id in pyebpf's kernel BTF (pyebpf.kfuncs).
    kfunc_id: int = 0


def load_spec(source: str | os.PathLike[str] | bytes | bytearray | memoryview, *,
              name: str | None = None, target_btf: Btf | None = None,
              kconfig: Mapping[str, Any] | None = None) -> ObjectSpec:
    """Parse a BPF ELF object (a path or its bytes) into an :class:`ObjectSpec`.

    ``target_btf`` is the BTF CO-RE relocations are resolved against (default:
    the object's own); ``kconfig`` gives values for ``__kconfig`` externs
    (``{"CONFIG_HZ": 250}``). Raises :class:`ElfError` (a BpfError) for files
    that are not little-endian BPF ELF objects or are corrupt.
    """
    path: str | None = None
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ElfError(f"can't read {path}: {e.strerror}", e.errno or errno.EIO) from None
    if name is None:
        if path is not None:
            name = os.path.basename(path)[: BPF_OBJ_NAME_LEN - 1].split(".", 1)[0]
        else:
            name = "obj"
    try:
        return _Loader(data, name, path, target_btf, kconfig or {}).spec
    except BpfError:
        raise
    except Exception as e:
        # A corrupt object that slipped past the checks: still a clean error.
        raise ElfError(f"corrupt BPF object: {type(e).__name__}: {e}") from None


def internal_map_name(obj_name: str, real_name: str) -> str:
    """libbpf's internal_map_name: what MAP_CREATE gets for ``.data``, ``.rodata``..."""
    sfx_len = min(max(7, len(real_name)), BPF_OBJ_NAME_LEN - 1)
    # Two or more dots: a custom .rodata.*/.data.* map, named without the prefix.
    pfx_len = 0 if "." in real_name[1:] else min(BPF_OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    raw = obj_name[:pfx_len] + real_name[:sfx_len]
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in raw)


def kernel_object_name(name: str) -> str:
    """A map/program name as libbpf passes it: at most 15 characters."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_"
                   for c in name[: BPF_OBJ_NAME_LEN - 1])


class _Loader:
    def __init__(self, data: bytes, name: str, path: str | None, target_btf: Btf | None,
                 kconfig: Mapping[str, Any]) -> None:
        self.elf = ElfObject(data)
        self.spec = ObjectSpec(name=name, path=path)
        self.target_btf = target_btf
        self.kconfig = kconfig
        self.warnings = self.spec.warnings
        self.funcs: dict[int, list[_Func]] = {}  # section index -> functions
        self.map_at: dict[tuple[int, int], str] = {}  # (section, offset) -> map name
        self.data_map: dict[int, str] = {}  # data section index -> map name
        self.externs: dict[str, _Extern] = {}
        self.text: Section | None = None
        self._collect()

    # -- sections ------------------------------------------------------------------------
    def _collect(self) -> None:
        elf = self.elf
        spec = self.spec
        exec_secs: list[Section] = []
        legacy_map_secs: list[Section] = []
        data_secs: list[tuple[Section, str]] = []
        struct_ops_secs: list[tuple[Section, bool]] = []  # (section, is .struct_ops.link)
        btf_maps: Section | None = None
        btf_sec = ext_sec = None
        for s in elf.sections[1:]:
            n = s.name
            if n == "license":
                spec.license = s.data.split(b"\0", 1)[0][:127].decode("latin-1")
            elif n == "version":
                if s.size != 4:
                    raise ElfError(f"invalid version section of {s.size} bytes (want 4)")
                (spec.kern_version,) = struct.unpack("<I", s.data)
            elif n == ".BTF":
                btf_sec = s
            elif n == ".BTF.ext":
                ext_sec = s
            elif n == ".maps":
                btf_maps = s
            elif is_legacy_maps_section(n) and s.type == SHT_PROGBITS:
                legacy_map_secs.append(s)
            elif s.is_exec:
                if n == ".text":
                    self.text = s
                if s.size:
                    if s.size % 8:
                        raise ElfError(f"section '{n}': size {s.size} is not a whole "
                                       "number of instructions")
                    exec_secs.append(s)
            elif s.type == SHT_PROGBITS and s.size and (
                    n == ".data" or n.startswith(".data.")):
                data_secs.append((s, "data"))
            elif s.type == SHT_PROGBITS and s.size and (
                    n == ".rodata" or n.startswith(".rodata.")):
                data_secs.append((s, "rodata"))
            elif s.type == SHT_NOBITS and s.size and (n == ".bss" or n.startswith(".bss.")):
                data_secs.append((s, "bss"))
            elif n in (".struct_ops", ".struct_ops.link") and s.size:
                struct_ops_secs.append((s, n == ".struct_ops.link"))
        self._init_btf(btf_sec, ext_sec, needed=btf_maps is not None or bool(struct_ops_secs))
        # Maps: BTF-defined, legacy, then global data (libbpf's order).
        if btf_maps is not None:
            for m in parse_btf_maps(elf, spec.btf, btf_maps):
                self._add_map(m)
                self.map_at[(btf_maps.index, m.offset)] = m.name
        for m in parse_legacy_maps(elf, legacy_map_secs):
            self._add_map(m)
            sec = next(s for s in legacy_map_secs if s.name == m.section)
            self.map_at[(sec.index, m.offset)] = m.name
        for s, kind in data_secs:
            self._add_data_map(s, kind)
        self._collect_externs()
        for s in exec_secs:
            self.funcs[s.index] = self._functions(s)
        for rel in elf.sections[1:]:
            if rel.type != SHT_REL:
                continue
            if not 0 < rel.info < len(elf.sections):
                raise ElfError(f"relocation section '{rel.name}' targets a missing section")
            target = elf.sections[rel.info]
            if target.index in self.funcs:
                self._record_relos(rel, target)
        self._apply_core()
        self._build_programs(exec_secs)
        if btf_maps is not None:
            self._collect_map_relos(btf_maps)
        if struct_ops_secs:
            from .struct_ops import collect_struct_ops

            for m in collect_struct_ops(self.elf, spec, struct_ops_secs):
                self._add_map(m)
        self._tail_call_conventions()

    def _init_btf(self, btf_sec: Section | None, ext_sec: Section | None, *,
                  needed: bool) -> None:
        spec = self.spec
        if btf_sec is not None:
            try:
                spec.btf = Btf.parse(btf_sec.data)
            except BpfError as e:
                if needed:
                    raise ElfError(f"invalid .BTF section: {e.strerror}") from None
                self.warnings.append(f"invalid .BTF section ignored: {e.strerror}")
                return
            self._fixup_datasecs()
        if ext_sec is not None and spec.btf is not None:
            try:
                spec.btf_ext = BtfExt.parse(ext_sec.data, spec.btf)
            except BpfError as e:
                self.warnings.append(f"invalid .BTF.ext section ignored: {e.strerror}")

    def _fixup_datasecs(self) -> None:
        """Give DATASECs their section's size and variables their symbol's offset
        (clang leaves both 0; libbpf's btf_fixup_datasec)."""
        btf = self.spec.btf
        assert btf is not None
        syms: dict[tuple[int, str], int] = {}
        for s in self.elf.symbols:
            if 0 < s.shndx < SHN_LORESERVE and s.name:
                syms[(s.shndx, s.name)] = s.value
        for i, t in enumerate(btf.types):
            if t.kind is not BtfKind.DATASEC:
                continue
            sec = self.elf.section(t.name)
            if sec is None:
                continue
            infos = []
            for vi in t.secinfos:
                var = btf.type(vi.type)
                off = syms.get((sec.index, var.name), vi.offset)
                infos.append(attrs.evolve(vi, offset=off))
            btf.types[i] = attrs.evolve(t, size_or_type=t.size or sec.size,
                                        secinfos=tuple(infos))

    # -- maps ------------------------------------------------------------------------------
    def _add_map(self, m: MapSpec) -> None:
        if m.name in self.spec.maps:
            raise ElfError(f"two maps named '{m.name}'")
        m.kernel_name = m.kernel_name or kernel_object_name(m.name)
        if m.inner is not None:
            m.inner.kernel_name = kernel_object_name(m.inner.name)
        self.spec.maps[m.name] = m

    def _add_data_map(self, s: Section, kind: str) -> None:
        """A global data section as a one-element array (bpf_object__init_internal_map)."""
        flags = MapFlags.RDONLY_PROG if kind == "rodata" else 0
        btf = self.spec.btf
        value_type = 0
        if btf is not None:
            ds = btf.find(s.name, BtfKind.DATASEC)
            if ds is not None:
                value_type = ds.id
                if any(btf.type(v.type).kind is BtfKind.VAR and
                       btf.type(v.type).linkage != VarLinkage.STATIC for v in ds.secinfos):
                    flags |= MapFlags.MMAPABLE
        m = MapSpec(name=s.name, type=MapType.ARRAY, key_size=4, value_size=s.size,
                    max_entries=1, flags=int(flags), source="data", section=s.name,
                    kernel_name=internal_map_name(self.spec.name, s.name),
                    data=bytes(s.data) if kind != "bss" else bytes(s.size),
                    freeze=kind == "rodata", btf_value_type_id=value_type)
        self._add_map(m)
        self.data_map[s.index] = m.name

    # -- externs (__kconfig, __ksym) ----------------------------------------------------------
    def _collect_externs(self) -> None:
        btf = self.spec.btf
        kcfg: list[_Extern] = []
        for sym in self.elf.symbols:
            if not sym.is_extern:
                continue
            ext = _Extern(sym.name, sym.bind == STB_WEAK, "unknown")
            self.externs[sym.name] = ext
            if btf is None:
                ext.error = f"unresolved extern '{sym.name}': the object has no BTF"
                continue
            t = next((t for t in btf.find_all(sym.name)
                      if t.kind in (BtfKind.VAR, BtfKind.FUNC)), None)
            if t is None:
                ext.error = f"failed to find BTF for extern '{sym.name}'"
                continue
            ext.is_func = t.kind is BtfKind.FUNC
            sec = next((d for d in btf if d.kind is BtfKind.DATASEC and
                        any(v.type == t.id for v in d.secinfos)), None)
            if sec is None:
                ext.error = f"failed to find BTF for extern '{sym.name}' [{t.id}] section"
                continue
            if sec.name == ".kconfig":
                if ext.is_func:
                    ext.error = f"extern function {sym.name} is unsupported under .kconfig"
                    continue
                ext.kind = "kconfig"
                ext.size = btf.sizeof(t.type)
                ext.align = btf.alignof(t.type)
                kcfg.append(ext)
            elif sec.name == ".ksyms":
                ext.kind = "ksym"
                kf = kfunc_by_name(sym.name) if ext.is_func else None
                if kf is not None:  # bpf_object__resolve_ksym_func_btf_id
                    ext.kfunc_id = kf.btf_id
                elif ext.is_func and not ext.weak:
                    ext.error = (f"extern (func ksym) '{sym.name}': not found in kernel or "
                                 "module BTFs (pyebpf's kfunc table, pyebpf.kfuncs)")
                elif not ext.is_func and not ext.weak:
                    ext.error = (f"__ksym extern '{sym.name}' (kernel symbol): resolving "
                                 "kernel variables is not supported yet")
            else:
                ext.error = f"unrecognized extern section '{sec.name}' for '{sym.name}'"
        if kcfg:
            self._kconfig_map(kcfg)

    def _kconfig_map(self, kcfg: list[_Extern]) -> None:
        kcfg.sort(key=lambda e: (-e.align, e.size, e.name))
        off = 0
        for e in kcfg:
            e.data_off = -(-off // e.align) * e.align
            off = e.data_off + e.size
        data = bytearray(off)
        for e in kcfg:
            val = self.kconfig.get(e.name, _BUILTIN_KCONFIG.get(e.name))
            if val is None:
                if not e.weak:
                    e.error = (f"extern (kcfg) '{e.name}' (strong) is not set: pass "
                               f"kconfig={{'{e.name}': ...}}")
                continue
            if isinstance(val, str) and val in ("y", "n", "m"):
                val = {"y": 1, "n": 0, "m": 2}[val]
            if isinstance(val, str):
                raw = val.encode()[: e.size - 1]
                data[e.data_off:e.data_off + len(raw)] = raw
                continue
            if isinstance(val, bool):
                val = int(val)
            try:
                data[e.data_off:e.data_off + e.size] = int(val).to_bytes(
                    e.size, "little", signed=int(val) < 0)
            except OverflowError:
                e.error = f"extern (kcfg) '{e.name}': value {val} doesn't fit in {e.size} bytes"
        m = MapSpec(name=".kconfig", type=MapType.ARRAY, key_size=4, value_size=off,
                    max_entries=1, flags=int(MapFlags.RDONLY_PROG), source="kconfig",
                    section=".kconfig",
                    kernel_name=internal_map_name(self.spec.name, ".kconfig"),
                    data=bytes(data), freeze=True)
        self._add_map(m)

    # -- programs -----------------------------------------------------------------------------
    def _functions(self, sec: Section) -> list[_Func]:
        """One function per STT_FUNC symbol (libbpf); for old objects without
        them, per global symbol, or the whole section."""
        syms = [s for s in self.elf.symbols if s.shndx == sec.index]
        funcs = sorted((s for s in syms if s.type == STT_FUNC), key=lambda s: s.value)
        if not funcs:
            funcs = sorted((s for s in syms if s.type == STT_NOTYPE and s.name and
                            s.bind in (STB_GLOBAL, STB_WEAK)), key=lambda s: s.value)
        out: list[_Func] = []
        if not funcs:
            name = sec.name
            out.append(_Func(name, sec, 0, sec.size // 8, bytearray(sec.data), True))
            return out
        starts = sorted({s.value for s in funcs} | {sec.size})
        for s in funcs:
            if s.value % 8 or s.value >= sec.size:
                raise ElfError(f"sec '{sec.name}': function '{s.name}' at offset {s.value} "
                               "is misaligned or outside the section")
            size = s.size if s.type == STT_FUNC and s.size else \
                next(x for x in starts if x > s.value) - s.value
            if size % 8 or s.value + size > sec.size:
                raise ElfError(f"sec '{sec.name}': program '{s.name}' at offset {s.value} "
                               "crosses section boundary")
            if sec is not self.text and s.bind == STB_LOCAL and s.type == STT_FUNC:
                raise ElfError(f"sec '{sec.name}': program '{s.name}' is static and not "
                               "supported", errno.EOPNOTSUPP)
            if any(f.off == s.value // 8 for f in out):
                continue  # an alias of a function already found
            out.append(_Func(s.name, sec, s.value // 8, size // 8,
                             bytearray(sec.data[s.value:s.value + size]),
                             s.bind != STB_LOCAL))
        return out

    def _func_at(self, sec_idx: int, insn: int) -> _Func | None:
        for f in self.funcs.get(sec_idx, ()):
            if f.contains(insn):
                return f
        return None

    def _record_relos(self, rel: Section, sec: Section) -> None:
        """bpf_object__collect_prog_relos + bpf_program__record_reloc."""
        elf = self.elf
        for i, r in enumerate(elf.relocations(rel)):
            if r.type == 0:  # R_BPF_NONE
                continue
            if r.type not in (1, 2, 3, 4, 10):
                raise ElfError(f"sec '{rel.name}': relo #{i} has unknown type {r.type}")
            sym = elf.symbols[r.sym]
            if 0 < sym.shndx < SHN_LORESERVE and sym.shndx >= len(elf.sections):
                raise ElfError(f"sec '{rel.name}': corrupted symbol #{r.sym} for relo #{i}")
            if r.offset % 8 or r.offset >= sec.size:
                raise ElfError(f"sec '{rel.name}': invalid offset {r.offset:#x} for relo #{i}")
            idx = r.offset // 8
            f = self._func_at(sec.index, idx)
            if f is None:
                continue  # libbpf: an overridden weak function, skipped
            local = idx - f.off
            sym_name = elf.symbol_name(sym) or "<?>"
            f.relos[local] = self._reloc(f, local, sym, sym_name)

    def _reloc(self, f: _Func, local: int, sym: Symbol, sym_name: str) -> _Relo:
        code = f.raw[local * 8]
        is_call = code == 0x85
        is_ld = code == 0x18
        if not (is_call or is_ld):
            raise ElfError(f"prog '{f.name}': invalid relo against '{sym_name}' for "
                           f"insns[{local}].code {code:#x}")
        if sym.is_extern:
            return _Relo("extern", sym_name, ext=sym.name)
        if is_call:
            src = f.raw[local * 8 + 1] >> 4
            if src != 1:
                raise ElfError(f"prog '{f.name}': incorrect bpf_call opcode (a call of "
                               f"'{sym_name}' that is neither a helper nor a BPF function)")
            if not 0 < sym.shndx < len(self.elf.sections) or \
                    not self.elf.sections[sym.shndx].is_exec:
                raise ElfError(f"prog '{f.name}': bad call relo against '{sym_name}'")
            if sym.value % 8:
                raise ElfError(f"prog '{f.name}': bad call relo against '{sym_name}' at "
                               f"offset {sym.value}")
            return _Relo("call", sym_name, sym_off=sym.value, sec=sym.shndx)
        if sym.shndx == 0 or sym.shndx >= SHN_LORESERVE:
            raise ElfError(f"prog '{f.name}': invalid relo against '{sym_name}' in special "
                           f"section {sym.shndx:#x}; forgot to initialize global var?..")
        target = self.elf.sections[sym.shndx]
        if target.is_exec and sym.type in (STT_FUNC, STT_SECTION):
            return _Relo("subprog_addr", sym_name, sym_off=sym.value, sec=sym.shndx)
        imm = struct.unpack_from("<i", f.raw, local * 8 + 4)[0]
        if sym.shndx in self.data_map:
            return _Relo("data", sym_name, map=self.data_map[sym.shndx], sym_off=sym.value)
        off = sym.value + (imm if sym.type == STT_SECTION else 0)
        name = self.map_at.get((sym.shndx, off))
        if name is not None:
            return _Relo("map", sym_name, map=name)
        if target.name == ".maps" or is_legacy_maps_section(target.name):
            raise ElfError(f"prog '{f.name}': map relo failed to find map for section "
                           f"'{target.name}', off {off}")
        raise ElfError(f"prog '{f.name}': bad data relo against section '{target.name}' "
                       f"(symbol '{sym_name}')")

    def _apply_core(self) -> None:
        btf, ext = self.spec.btf, self.spec.btf_ext
        if btf is None or ext is None:
            return
        self.core_results: dict[int, list[Any]] = {}
        for sec_name, relos in ext.core_relos.items():
            sec = self.elf.section(sec_name)
            if sec is None or sec.index not in self.funcs:
                raise CoreRelocError(f"CO-RE relocations for unknown section '{sec_name}'")
            by_func: dict[int, list[Any]] = {}
            for r in relos:
                f = self._func_at(sec.index, r.insn_off)
                if f is None:
                    continue
                by_func.setdefault(id(f), []).append((r.insn_off - f.off, r))
            for f in self.funcs[sec.index]:
                todo = by_func.get(id(f))
                if todo:
                    self.core_results[id(f)] = apply_core_relos(
                        btf, todo, f.raw, target=self.target_btf, prog=f.name)

    def _build_programs(self, exec_secs: list[Section]) -> None:
        text_idx = self.text.index if self.text is not None else -1
        others = [s for s in exec_secs if s.index != text_idx and self.funcs.get(s.index)]
        entries: list[_Func] = []
        if others:
            for s in others:
                entries.extend(self.funcs[s.index])
        elif text_idx in self.funcs:
            entries = list(self.funcs[text_idx])
        for f in entries:
            if f.name in self.spec.programs:
                raise ElfError(f"two programs named '{f.name}'")
            self.spec.programs[f.name] = self._link(f, from_text=f.sec.index == text_idx)

    def _link(self, main: _Func, *, from_text: bool) -> ProgramSpec:
        """Append called sub-programs, fix call offsets, collect map references."""
        sec_name = main.sec.name
        # libbpf: a leading "?" only says "don't load unless asked for".
        autoload = not sec_name.startswith("?")
        sec_name = sec_name.removeprefix("?")
        match = None if from_text else section_prog_type(sec_name)
        prog = ProgramSpec(name=main.name, section=sec_name,
                           prog_type=match.prog_type if match else None,
                           expected_attach_type=match.expected_attach_type if match else 0,
                           type_source=match.source if match else None,
                           license=self.spec.license, kern_version=self.spec.kern_version,
                           own_insn_cnt=main.cnt, from_text=from_text, autoload=autoload)
        if match is not None and match.sec_def is not None:
            flags = match.sec_def.flags
            if flags & SecFlags.SLEEPABLE:
                prog.prog_flags |= ProgLoadFlags.SLEEPABLE
            if flags & SecFlags.XDP_FRAGS:
                prog.prog_flags |= ProgLoadFlags.XDP_HAS_FRAGS
            base = match.sec_def.sec.rstrip("+/")
            if sec_name.startswith(base + "/"):
                prog.attach_to = sec_name[len(base) + 1:]
        out = bytearray(main.raw)
        segments: list[tuple[int, _Func]] = [(0, main)]
        placed: dict[int, int] = {id(main): 0}
        refs: list[MapRef] = []
        errors: list[str] = []
        i = 0
        while i < len(out) // 8:
            seg_start, f = next((s, g) for s, g in reversed(segments) if s <= i)
            local = i - seg_start
            code, regs, _off, imm = struct.unpack_from("<BBhi", out, i * 8)
            relo = f.relos.get(local)
            is_ld = code == 0x18
            if relo is not None and relo.kind in ("map", "data"):
                if relo.kind == "map":
                    out[i * 8 + 1] = (regs & 0x0F) | (1 << 4)  # BPF_PSEUDO_MAP_FD
                    refs.append(MapRef(i, relo.map, "fd"))
                else:
                    out[i * 8 + 1] = (regs & 0x0F) | (2 << 4)  # BPF_PSEUDO_MAP_VALUE
                    refs.append(MapRef(i, relo.map, "value", imm + relo.sym_off))
                struct.pack_into("<i", out, i * 8 + 4, 0)
                if i + 1 < len(out) // 8:
                    struct.pack_into("<i", out, i * 8 + 12, 0)
            elif relo is not None and relo.kind == "extern":
                self._link_extern(out, i, relo, refs, errors, main.name)
            elif (code == 0x85 and regs >> 4 == 1) or (is_ld and regs >> 4 == 4) or (
                    relo is not None and relo.kind in ("call", "subprog_addr")):
                err = self._link_call(out, i, f, local, relo, segments, placed, prog)
                if err:
                    errors.append(err)
            i += 2 if is_ld else 1
        prog.insns = bytes(out)
        prog.map_refs = refs
        self._ext_info(prog, segments)
        for _start, g in segments:
            prog.core_relos.extend(getattr(self, "core_results", {}).get(id(g), ()))
        if errors:
            prog.link_error = "; ".join(dict.fromkeys(errors))
            self.warnings.append(f"program '{prog.name}': {prog.link_error}")
        return prog

    def _link_call(self, out: bytearray, i: int, f: _Func, local: int, relo: _Relo | None,
                   segments: list[tuple[int, _Func]], placed: dict[int, int],
                   prog: ProgramSpec) -> str | None:
        code, regs, _off, imm = struct.unpack_from("<BBhi", out, i * 8)
        if relo is not None and relo.kind == "call":
            sec_idx = relo.sec
            target = relo.sym_off // 8 + imm + 1
        elif relo is not None and relo.kind == "subprog_addr":
            sec_idx = relo.sec
            if imm % 8:
                return f"bad subprog addr relo against '{relo.sym_name}'"
            target = relo.sym_off // 8 + imm // 8
        elif code == 0x18:
            return f"missing relocation for the function pointer at insn #{i}"
        else:
            # A call within the same section needs no relocation.
            sec_idx = f.sec.index
            target = f.off + local + imm + 1
        sub = self._func_at(sec_idx, target)
        if sub is None:
            return (f"call at insn #{i} to instruction {target} of section "
                    f"'{self.elf.sections[sec_idx].name}', which is not in a function")
        if id(sub) not in placed:
            start = len(out) // 8
            placed[id(sub)] = start
            segments.append((start, sub))
            out.extend(sub.raw)
            if sub is not segments[0][1]:
                prog.subprograms.append(sub.name)
        dest = placed[id(sub)] + (target - sub.off)
        struct.pack_into("<i", out, i * 8 + 4, dest - i - 1)
        if code == 0x18:
            out[i * 8 + 1] = (regs & 0x0F) | (4 << 4)  # BPF_PSEUDO_FUNC
            struct.pack_into("<i", out, i * 8 + 12, 0)
        return None

    def _link_extern(self, out: bytearray, i: int, relo: _Relo, refs: list[MapRef],
                     errors: list[str], prog_name: str) -> None:
        ext = self.externs.get(relo.ext)
        code, regs, _off, _imm = struct.unpack_from("<BBhi", out, i * 8)
        what = "call" if code == 0x85 else "variable"
        if ext is None:
            errors.append(f"unresolved extern '{relo.ext}' ({what})")
            return
        if ext.error:
            errors.append(ext.error)
            return
        if ext.kind == "kconfig" and code == 0x18:
            out[i * 8 + 1] = (regs & 0x0F) | (2 << 4)
            struct.pack_into("<i", out, i * 8 + 4, 0)
            struct.pack_into("<i", out, i * 8 + 12, 0)
            refs.append(MapRef(i, ".kconfig", "value", ext.data_off))
        elif ext.kind == "ksym" and ext.kfunc_id and code == 0x85:
            # A kfunc call: src_reg BPF_PSEUDO_KFUNC_CALL, imm the BTF id, off the
            # fd_array slot of its module BTF (0: vmlinux).
            struct.pack_into("<BBhi", out, i * 8, 0x85, (2 << 4), 0, ext.kfunc_id)
        elif ext.kind == "ksym" and ext.weak:
            if code == 0x18:  # an unresolved weak ksym reads as 0
                out[i * 8 + 1] = regs & 0x0F
                struct.pack_into("<i", out, i * 8 + 4, 0)
                struct.pack_into("<i", out, i * 8 + 12, 0)
            else:  # an unresolved weak kfunc: poisoned (fails only if reachable)
                struct.pack_into("<BBhi", out, i * 8, 0x85, 0, 0, 2002000000)
            self.warnings.append(f"program '{prog_name}': weak __ksym '{ext.name}' left "
                                 "unresolved")
        else:
            errors.append(f"unresolved extern '{relo.ext}' ({what})")

    def _ext_info(self, prog: ProgramSpec, segments: list[tuple[int, _Func]]) -> None:
        ext = self.spec.btf_ext
        if ext is None:
            return
        fis: list[FuncInfo] = []
        lis: list[LineInfo] = []
        for start, f in segments:
            for fi in ext.func_info.get(f.sec.name, ()):
                if f.contains(fi.insn_off):
                    fis.append(attrs.evolve(fi, insn_off=start + fi.insn_off - f.off))
            for li in ext.line_info.get(f.sec.name, ()):
                if f.contains(li.insn_off):
                    lis.append(attrs.evolve(li, insn_off=start + li.insn_off - f.off))
        prog.func_info = fis
        prog.line_info = lis

    # -- map relocations (.rel.maps): initial slots of prog arrays and maps of maps ---------
    def _collect_map_relos(self, maps_sec: Section) -> None:
        elf = self.elf
        btf = self.spec.btf
        assert btf is not None
        rel = next((s for s in elf.sections if s.type == SHT_REL and s.info == maps_sec.index),
                   None)
        if rel is None:
            return
        specs = [m for m in self.spec.maps.values() if m.source == "btf"]
        sizes = {s.name: s.size for s in elf.symbols if s.shndx == maps_sec.index}
        for i, r in enumerate(elf.relocations(rel)):
            if r.type == 0:
                continue
            sym = elf.symbols[r.sym]
            sym_name = elf.symbol_name(sym)
            owner = next((m for m in specs if m.offset <= r.offset < m.offset + max(
                sizes.get(m.name, 0), self._def_size(m, btf))), None)
            if owner is None:
                raise ElfError(f".maps relo #{i}: no map at offset {r.offset}")
            if owner.type not in (MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS,
                                  MapType.HASH_OF_MAPS):
                raise ElfError(f".maps relo #{i}: map '{owner.name}' has no initial values "
                               "(not a prog array or map of maps)")
            def_t = self._def_type(owner, btf)
            values = next((m for m in def_t.members if m.name == "values"), None)
            if values is None:
                raise ElfError(f".maps relo #{i}: map '{owner.name}' has no 'values' member")
            moff = r.offset - owner.offset - values.bit_offset // 8
            if moff < 0 or moff % 8:
                raise ElfError(f".maps relo #{i}: misaligned slot for map '{owner.name}'")
            slot = moff // 8
            if owner.type == MapType.PROG_ARRAY:
                if sym.type != STT_FUNC or sym_name not in self.spec.programs:
                    raise ElfError(f".maps relo #{i}: '{sym_name}' is not a program of this "
                                   "object")
            elif sym_name not in self.spec.maps or sym.shndx != maps_sec.index:
                raise ElfError(f".maps relo #{i}: '{sym_name}' is not a map of this object")
            owner.init_slots[slot] = sym_name

    @staticmethod
    def _def_type(m: MapSpec, btf: Btf) -> Any:
        var = btf.find(m.name, BtfKind.VAR)
        if var is None:
            raise ElfError(f"map '{m.name}': its BTF variable is missing")
        return btf.skip_mods_and_typedefs(var.type)

    def _def_size(self, m: MapSpec, btf: Btf) -> int:
        return self._def_type(m, btf).size

    def _tail_call_conventions(self) -> None:
        """Slots older loaders filled by section name: iproute2's "<id>/<key>" and
        samples/bpf's "<type>/<n>" (the object's one program array)."""
        arrays = [m for m in self.spec.maps.values() if m.type == MapType.PROG_ARRAY]
        by_id = {m.elf_id: m for m in arrays if m.elf_id}
        for p in self.spec.programs.values():
            mt = IPROUTE2_TAIL_CALL.match(p.section)
            if mt and int(mt.group(1)) in by_id:
                p.tail_call_slot = (by_id[int(mt.group(1))].name, int(mt.group(2)))
                continue
            mn = NUMBERED_SECTION.match(p.section)
            if mn and len(arrays) == 1 and p.prog_type is not None and \
                    not any(p.name in m.init_slots.values() for m in arrays):
                p.tail_call_slot = (arrays[0].name, int(mn.group(2)))
        # iproute2 tail-call sections carry no type: they share the object's.
        types = {(p.prog_type, p.expected_attach_type) for p in self.spec.programs.values()
                 if p.prog_type is not None}
        if len(types) == 1:
            (ptype, eat) = next(iter(types))
            for p in self.spec.programs.values():
                if p.prog_type is None and IPROUTE2_TAIL_CALL.match(p.section):
                    p.prog_type = ptype
                    p.expected_attach_type = eat
                    p.type_source = "convention"

