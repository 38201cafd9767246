"""Reading an ELF relocatable object (on pyelftools), checked before it is trusted.

:class:`ElfObject` is the part of an ELF file a BPF loader needs: the
sections with their bytes, the symbol table, and the relocations of a
section. Everything is validated up front (header, machine, byte order,
section bounds, symbol and relocation tables), so later stages work on plain
Python records and corrupt input ends here, as an :class:`ElfError`.
"""

from __future__ import annotations

import errno
import io
import struct

import attrs

from .errors import ElfError

__all__ = ["EM_BPF", "ElfObject", "Reloc", "Section", "Symbol"]

EM_NONE = 0
EM_BPF = 247
ET_REL = 1

SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_REL = 9
SHT_NOBITS = 8
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STV_DEFAULT = 0
STV_INTERNAL = 1
STV_HIDDEN = 2

SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF

#: A rough cap on what is worth parsing (the kernel limits programs to 1M insns).
MAX_OBJECT_SIZE = 1 << 30


@attrs.frozen
class Section:
    index: int
    name: str
    type: int
    flags: int
    size: int
    link: int
    info: int
    entsize: int
    #: The section's bytes (zeros for NOBITS sections such as .bss).
    data: bytes

    @property
    def is_exec(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


@attrs.frozen
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    visibility: int
    shndx: int

    @property
    def is_extern(self) -> bool:
        """libbpf's sym_is_extern: an undefined global/weak NOTYPE symbol."""
        return (self.shndx == SHN_UNDEF and self.bind in (STB_GLOBAL, STB_WEAK)
                and self.type == STT_NOTYPE and bool(self.name))


@attrs.frozen
class Reloc:
    offset: int
    sym: int
    type: int


class ElfObject:
    """A validated little-endian 64-bit ELF relocatable object for EM_BPF."""

    def __init__(self, data: bytes) -> None:
        self.raw = data
        self.sections: list[Section] = []
        self.symbols: list[Symbol] = []
        self.symtab_index = 0
        self.machine = 0
        self._check_header(data)
        try:
            self._read(data)
        except ElfError:
            raise
        except Exception as e:  # pyelftools' own errors on corrupt input
            raise ElfError(f"corrupt ELF object: {type(e).__name__}: {e}") from None

    # -- header ---------------------------------------------------------------------
    @staticmethod
    def _check_header(data: bytes) -> None:
        if len(data) > MAX_OBJECT_SIZE:
            raise ElfError(f"object of {len(data)} bytes is too large", errno.EFBIG)
        if len(data) < 16 or data[:4] != b"\x7fELF":
            raise ElfError("not an ELF file (bad magic)")
        if data[4] != 2:
            raise ElfError("not a 64-bit ELF object (BPF objects are ELF64)")
        if data[5] == 2:
            raise ElfError("big-endian ELF object: pyebpf loads little-endian BPF objects "
                           "only (as the x86-64 and arm64 kernels do); build with "
                           "-target bpfel or -target bpf on a little-endian host")
        if data[5] != 1:
            raise ElfError(f"invalid ELF byte order {data[5]}")
        if len(data) < 64:
            raise ElfError(f"truncated ELF header ({len(data)} of 64 bytes)")
        (e_type, e_machine, _ver, _entry, _phoff, e_shoff, _flags, _ehsize, _phentsize,
         _phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH",
                                                                         data, 16)
        if e_machine not in (EM_BPF, EM_NONE):  # old LLVM wrote EM_NONE
            raise ElfError(f"ELF machine is {e_machine}, not EM_BPF ({EM_BPF}): not a BPF "
                           "object")
        if e_type != ET_REL:
            raise ElfError(f"ELF type is {e_type}, not a relocatable object (ET_REL)")
        if e_shentsize != 64:
            raise ElfError(f"invalid ELF section header size {e_shentsize}")
        if e_shoff == 0 or e_shoff + 64 > len(data):
            raise ElfError("truncated ELF object: section headers past the end of the file")
        if e_shnum == 0:
            # Extended numbering: the count is in section 0's sh_size.
            (e_shnum,) = struct.unpack_from("<Q", data, e_shoff + 32)
        if e_shoff + e_shnum * 64 > len(data):
            raise ElfError("truncated ELF object: section headers past the end of the file")
        if e_shstrndx == SHN_XINDEX:
            (e_shstrndx,) = struct.unpack_from("<I", data, e_shoff + 40)
        if not 0 < e_shstrndx < e_shnum:
            raise ElfError("invalid ELF section name table index")

    # -- sections and symbols --------------------------------------------------------------
    def _read(self, data: bytes) -> None:
        from elftools.elf.elffile import ELFFile

        elf = ELFFile(io.BytesIO(data))
        self.machine = elf["e_machine"]
        n = elf.num_sections()
        # Raw headers first, bounds-checked, so pyelftools only sees sane sections.
        shoff = elf["e_shoff"]
        hdrs = []
        for i in range(n):
            (sh_name, sh_type, sh_flags, _addr, sh_offset, sh_size, sh_link, sh_info,
             _align, sh_entsize) = struct.unpack_from("<IIQQQQIIQQ", data, shoff + 64 * i)
            if i and sh_type != SHT_NOBITS and sh_offset + sh_size > len(data):
                raise ElfError(f"truncated ELF object: section #{i} ({sh_size} bytes at "
                               f"{sh_offset}) runs past the end of the file")
            if sh_type == SHT_NOBITS and sh_size > MAX_OBJECT_SIZE:
                raise ElfError(f"section #{i}: NOBITS size {sh_size} is too large")
            hdrs.append((sh_name, sh_type, sh_flags, sh_offset, sh_size, sh_link, sh_info,
                         sh_entsize))
        strndx = elf["e_shstrndx"]
        if strndx == SHN_XINDEX:
            strndx = hdrs[0][5]
        if hdrs[strndx][1] != SHT_STRTAB:
            raise ElfError("the section name table is not a string table")
        shstr = self._bytes(data, hdrs[strndx])
        for i, (sh_name, sh_type, sh_flags, sh_offset, sh_size, sh_link, sh_info,
                sh_entsize) in enumerate(hdrs):
            name = _cstr(shstr, sh_name, f"section #{i} name") if i else ""
            if i == 0:
                body = b""
            elif sh_type == SHT_NOBITS:
                body = bytes(sh_size)
            else:
                body = data[sh_offset:sh_offset + sh_size]
            self.sections.append(Section(i, name, sh_type, sh_flags, sh_size, sh_link,
                                         sh_info, sh_entsize, body))
        symtabs = [s for s in self.sections if s.type == SHT_SYMTAB]
        if len(symtabs) > 1:
            raise ElfError("multiple symbol tables")
        if not symtabs:
            raise ElfError("no symbol table (a stripped object?)", errno.ENOENT)
        symtab = symtabs[0]
        self.symtab_index = symtab.index
        if symtab.entsize != 24 or symtab.size % 24:
            raise ElfError("invalid symbol table entry size")
        if not 0 < symtab.link < n or self.sections[symtab.link].type != SHT_STRTAB:
            raise ElfError("symbol table's string table is missing or invalid")
        strtab = self.sections[symtab.link].data
        for i in range(symtab.size // 24):
            st_name, st_info, st_other, st_shndx, st_value, st_size = struct.unpack_from(
                "<IBBHQQ", symtab.data, 24 * i)
            if st_shndx >= n and st_shndx < SHN_LORESERVE:
                raise ElfError(f"symbol #{i} refers to a missing section #{st_shndx}")
            name = _cstr(strtab, st_name, f"symbol #{i} name") if st_name else ""
            self.symbols.append(Symbol(i, name, st_value, st_size, st_info & 0xF, st_info >> 4,
                                       st_other & 0x3, st_shndx))

    @staticmethod
    def _bytes(data: bytes, hdr: tuple[int, ...]) -> bytes:
        return data[hdr[3]:hdr[3] + hdr[4]]

    def section(self, name: str) -> Section | None:
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def symbol_name(self, sym: Symbol) -> str:
        """A symbol's name, or for a nameless section symbol the section's name."""
        if sym.type == STT_SECTION and not sym.name and 0 < sym.shndx < len(self.sections):
            return self.sections[sym.shndx].name
        return sym.name

    def relocations(self, rel: Section) -> list[Reloc]:
        """The entries of an SHT_REL section, checked against the symbol table."""
        if rel.entsize != 16 or rel.size % 16:
            raise ElfError(f"relocation section {rel.name}: invalid entry size {rel.entsize}")
        if not 0 < rel.info < len(self.sections):
            raise ElfError(f"relocation section {rel.name} targets a missing section")
        out = []
        for i in range(rel.size // 16):
            r_offset, r_info = struct.unpack_from("<QQ", rel.data, 16 * i)
            sym = r_info >> 32
            if sym >= len(self.symbols):
                raise ElfError(f"{rel.name}: relocation #{i} refers to missing symbol #{sym}")
            out.append(Reloc(r_offset, sym, r_info & 0xFFFF_FFFF))
        return out


def _cstr(table: bytes, off: int, what: str) -> str:
    if off >= len(table):
        raise ElfError(f"{what}: string offset {off} is outside its string table")
    end = table.find(b"\0", off)
    if end < 0:
        raise ElfError(f"{what}: string at offset {off} is not NUL-terminated")
    return table[off:end].decode("utf-8", "replace")
