"""Source lines of a program's instructions, from its BTF line info.

clang's ``-g`` puts a ``bpf_line_info`` record (file, line, column, the
line's text) at every instruction where the source line changes; an
instruction belongs to the last record at or before it. :class:`SourceMap`
answers "which line is pc N" and "which pcs make line L", the question every
trace, coverage report and notebook view asks. Programs loaded without BTF
have an empty map, and every answer is None.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["SourceMap", "source_map_of"]


class SourceMap:
    """pc -> line-info record for one program (records sorted by ``insn_off``)."""

    def __init__(self, line_info: Iterable[Any], n_insns: int, obj_path: str | None = None
                 ) -> None:
        self.records = sorted(line_info, key=lambda li: li.insn_off)
        self._offs = [li.insn_off for li in self.records]
        self.n_insns = n_insns
        #: The object file the program came from (to find relative source files).
        self.obj_path = obj_path

    def __bool__(self) -> bool:
        return bool(self.records)

    def record(self, pc: int) -> Any:
        """The line-info record covering ``pc`` (None before the first record or without BTF)."""
        i = bisect.bisect_right(self._offs, pc) - 1
        return self.records[i] if i >= 0 else None

    def location(self, pc: int) -> tuple[str, int] | None:
        """(file name as compiled, line number) of ``pc``, or None."""
        li = self.record(pc)
        if li is None or not li.line_num:
            return None
        return li.file_name, li.line_num

    def source_text(self, pc: int) -> str:
        """The source line's text as BTF stores it ('' when unknown)."""
        li = self.record(pc)
        return li.line if li is not None else ""

    def lines(self) -> dict[tuple[str, int], list[int]]:
        """Every (file, line) with the pcs that belong to it, in program order."""
        out: dict[tuple[str, int], list[int]] = {}
        for pc in range(self.n_insns):
            loc = self.location(pc)
            if loc is not None:
                out.setdefault(loc, []).append(pc)
        return out

    def starts(self) -> dict[tuple[str, int], list[int]]:
        """Every (file, line) with the pcs where its line-info records start: the
        instructions that begin the line's code (what coverage counts, since the
        instructions after a start may be shared set-up for the next statement)."""
        out: dict[tuple[str, int], list[int]] = {}
        for li in self.records:
            if li.line_num and 0 <= li.insn_off < self.n_insns:
                out.setdefault((li.file_name, li.line_num), []).append(li.insn_off)
        return out

    def resolve(self, file_name: str) -> str:
        """A path for ``file_name`` a reader can open: the file of that name next to
        the object file when there is one (clang records the path on the machine
        that built the object, which may be another checkout or another machine
        altogether), else the recorded path."""
        if self.obj_path:
            near = os.path.join(os.path.dirname(os.path.abspath(self.obj_path)),
                                os.path.basename(file_name))
            if os.path.exists(near):
                return near
        return file_name

    def find_pcs(self, line: int, file_name: str | None = None) -> list[int]:
        """The pcs of source line ``line`` (of ``file_name``: matched by base name, any
        file when None)."""
        want = os.path.basename(file_name) if file_name else None
        return [pc for (f, ln), pcs in self.lines().items() for pc in pcs
                if ln == line and (want is None or os.path.basename(f) == want)]


def source_map_of(prog: Any, insns: Sequence[Any] | None = None) -> SourceMap:
    """The SourceMap of a loaded program (a BpfProg, an objects.Program or a
    ProgramSpec); empty when it carries no line info."""
    line_info = getattr(prog, "line_info", None)
    obj_path = getattr(prog, "obj_path", None)
    spec = getattr(prog, "spec", None)
    if not line_info and spec is not None:
        line_info = getattr(spec, "line_info", None)
    if insns is None:
        insns = getattr(prog, "insns", None) or ()
        if isinstance(insns, bytes | bytearray):
            insns = range(len(insns) // 8)  # type: ignore[assignment]
    return SourceMap(line_info or (), len(insns), obj_path)
