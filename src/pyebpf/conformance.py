"""The bpf_conformance ``.data`` test format.

The public BPF conformance suite (github.com/Alan-Jowett/bpf_conformance,
used by uBPF, rbpf, PREVAIL, eBPF-for-Windows and the kernel via libbpf)
stores one test per file: a program, an optional input memory and the
expected 64-bit ``r0`` or error. Reading that format lets pyebpf run the
suite as is, and lets its own tests (and the benchmark programs) be written
in the same small files.

The format, as ``shared/conformance/README.md`` documents it: ``#`` starts a
comment, a line starting with ``--`` opens a section, and the lines up to the
next such line belong to it:

``-- asm``
    the program in the bpf_conformance assembly dialect (:mod:`pyebpf.isa.asm`)
``-- raw``
    optional, the program as instruction words: one 64-bit number per line
    (``0x``-hex, or decimal as upstream also reads it) whose little-endian
    bytes are the instruction, or eight hex bytes per line (the spelling of
    upstream's newer negative tests); when present it is the program
``-- mem``
    optional input memory, whitespace-separated hex bytes
``-- result``
    the expected ``r0`` as an unsigned 64-bit number (``0x`` hex or decimal)
``-- error``
    the expected error text instead of a result
``-- c``, ``-- no register offset``
    informational, ignored
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path

import attrs

from .isa.asm import assemble
from .isa.insn import encode

__all__ = [
    "ConformanceCase",
    "DataFileError",
    "load_data_file",
    "parse_data_file",
    "program_bytes",
]

_U64 = 1 << 64
_HEX_BYTE_RE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{1,2}", re.ASCII)
#: Bounded digit counts keep int() cheap; the 64-bit range is checked after.
_NUMBER_RE = re.compile(r"(-?)(?:0[xX]([0-9a-fA-F]{1,40})|([0-9]{1,40}))", re.ASCII)
#: Sections whose text is informational only.
_IGNORED_SECTIONS = frozenset({"c", "no register offset"})
_SECTIONS = frozenset({"asm", "raw", "mem", "result", "error"}) | _IGNORED_SECTIONS


class DataFileError(ValueError):
    """A ``.data`` file that does not follow the format (not a failing test)."""

    def __init__(self, reason: str, name: str = "", lineno: int | None = None) -> None:
        where = name or "<data>"
        if lineno is not None:
            where += f" line {lineno}"
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.name = name
        self.lineno = lineno


@attrs.frozen
class ConformanceCase:
    """One test: the program (assembly and/or raw bytes), input and expectation.

    ``asm`` is the ``-- asm`` section verbatim (comments included; the
    assembler strips them), ``""`` when the file has none. ``raw`` is the
    ``-- raw`` program bytes or None. ``mem`` is the input memory (empty when
    absent). ``result`` is the expected r0 (0 <= result < 2**64) or None;
    ``error`` the expected error text or None (``""`` for an ``-- error``
    section with no text). ``asm_line`` is the file line number of the first
    line of ``asm``, so assembler errors can point into the file.
    """

    name: str
    asm: str
    raw: bytes | None
    mem: bytes
    result: int | None
    error: str | None
    asm_line: int = 1


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _parse_number(token: str, what: str) -> int:
    """An unsigned 64-bit number, ``0x`` hex or decimal; a negative one (>= -2**63) wraps."""
    m = _NUMBER_RE.fullmatch(token)
    if m is None:
        raise ValueError(f"{what} {token!r} is not a 0x-hex or decimal number")
    sign, hexd, decd = m.groups()
    value = int(hexd, 16) if hexd is not None else int(decd)
    if sign:
        if value > 1 << 63:
            raise ValueError(f"{what} {token!r} is below -2**63")
        value = -value % _U64
    if value >= _U64:
        raise ValueError(f"{what} {token!r} does not fit in 64 bits")
    return value


def _parse_hex_bytes(tokens: list[str], what: str) -> bytes:
    out = bytearray()
    for tok in tokens:
        if not _HEX_BYTE_RE.fullmatch(tok):
            raise ValueError(f"{what} {tok!r} is not a hex byte")
        out.append(int(tok, 16))
    return bytes(out)


def _parse_raw_line(tokens: list[str]) -> bytes:
    if len(tokens) == 1:
        return _parse_number(tokens[0], "instruction word").to_bytes(8, "little")
    if len(tokens) == 8:
        return _parse_hex_bytes(tokens, "instruction byte")
    raise ValueError("expected one 64-bit instruction word or eight hex bytes per line")


def parse_data_file(text: str, name: str = "") -> ConformanceCase:
    """Parse the text of a ``.data`` file. Raises :class:`DataFileError`.

    A file must hold a program (``-- asm`` or ``-- raw``); it may not expect
    both a result and an error. Unknown and repeated sections are errors, as
    are non-comment lines before the first section.
    """
    sections: dict[str, list[tuple[int, str]]] = {}
    starts: dict[str, int] = {}
    current: list[tuple[int, str]] | None = None
    for lineno, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.removesuffix("\r")
        if line.startswith("--"):
            section = line[2:].strip()
            if section not in _SECTIONS:
                raise DataFileError(f"unknown section {line.strip()!r}", name, lineno)
            if section in sections:
                raise DataFileError(f"repeated section {line.strip()!r}", name, lineno)
            current = sections[section] = []
            starts[section] = lineno + 1
            continue
        if current is None:
            if _strip_comment(line):
                raise DataFileError("text before the first -- section", name, lineno)
            continue
        current.append((lineno, line))

    if "asm" not in sections and "raw" not in sections:
        raise DataFileError("no program (neither -- asm nor -- raw)", name)
    if "result" in sections and "error" in sections:
        raise DataFileError("a case expects a result or an error, not both", name)

    def data_lines(section: str) -> list[tuple[int, list[str]]]:
        return [
            (n, _strip_comment(line).split())
            for n, line in sections.get(section, [])
            if _strip_comment(line)
        ]

    asm_lines = [line for _, line in sections.get("asm", [])]
    while asm_lines and not asm_lines[-1].strip():
        asm_lines.pop()

    raw: bytes | None = None
    mem = b""
    result: int | None = None
    where = 0  # the line being read, for error messages
    try:
        if "raw" in sections:
            chunks = []
            for n, tokens in data_lines("raw"):
                where = n
                chunks.append(_parse_raw_line(tokens))
            raw = b"".join(chunks)
        chunks = []
        for n, tokens in data_lines("mem"):
            where = n
            chunks.append(_parse_hex_bytes(tokens, "memory byte"))
        mem = b"".join(chunks)
        if "result" in sections:
            values = data_lines("result")
            where = values[0][0] if values else starts["result"] - 1
            if len(values) != 1 or len(values[0][1]) != 1:
                raise ValueError("-- result must hold exactly one number")
            result = _parse_number(values[0][1][0], "result")
    except ValueError as e:
        raise DataFileError(str(e), name, where or None) from None

    error: str | None = None
    if "error" in sections:
        error = "\n".join(s for s in (line.strip() for _, line in sections["error"]) if s)

    return ConformanceCase(
        name=name,
        asm="\n".join(asm_lines),
        raw=raw,
        mem=mem,
        result=result,
        error=error,
        asm_line=starts.get("asm", 1),
    )


def load_data_file(path: str | PathLike[str]) -> ConformanceCase:
    """Read and parse one ``.data`` file; the case is named after the file's stem."""
    p = Path(path)
    return parse_data_file(p.read_text(encoding="utf-8"), name=p.stem)


def program_bytes(case: ConformanceCase) -> bytes:
    """The program to run: the ``-- raw`` bytes if present, else the assembled asm.

    Raises :class:`~pyebpf.isa.asm.AsmError` (with the file's line numbers)
    when the assembly is malformed.
    """
    if case.raw is not None:
        return case.raw
    return encode(assemble(case.asm, first_line=case.asm_line, source=case.name))


def _hex_bytes(text: str, what: str) -> bytes:
    compact = "".join(text.split())
    try:
        return bytes.fromhex(compact)
    except ValueError:
        raise DataFileError(f"{what} is not hex bytes: {compact[:40]!r}") from None


def main(argv: list[str] | None = None) -> int:
    """The bpf_conformance plugin protocol, as uBPF, rbpf and PREVAIL speak it.

    The program arrives as hex bytes on stdin, the input memory as hex bytes in
    the first argument (absent or empty: no memory). The program runs with r1 =
    the memory's address and r2 = its length; r0 is printed in hex. Any error
    prints a message on stderr and exits 1.
    """
    import argparse
    import sys

    from .engine import Vm
    from .errors import BpfError, BpfFault

    parser = argparse.ArgumentParser(
        prog="python -m pyebpf.conformance",
        description="bpf_conformance plugin: program hex on stdin, memory hex as argument.",
    )
    parser.add_argument("memory", nargs="?", default="", help="input memory as hex bytes")
    parser.add_argument("--budget", type=int, default=10_000_000, help="instruction budget")
    args = parser.parse_args(argv)
    try:
        program = _hex_bytes(sys.stdin.read(), "the program")
        memory = _hex_bytes(args.memory, "the memory")
        r0 = Vm(program, budget=args.budget).run(memory)
    except (BpfError, BpfFault, DataFileError) as exc:
        print(f"pyebpf: {exc}", file=sys.stderr)
        return 1
    print(f"{r0:x}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
