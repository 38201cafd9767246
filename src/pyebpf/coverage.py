"""Coverage of BPF C code: which source lines and branches runs executed.

With BTF line info in the object (clang ``-g``), every instruction belongs
to a source line (:mod:`pyebpf.lineinfo`). A :class:`Coverage` counts, per
loaded program, how often each instruction ran and, per conditional jump,
how often each way was taken; :meth:`Coverage.files` folds that into lines
and branches per source file, written as an lcov tracefile
(:meth:`Coverage.to_lcov`, for genhtml and most CI services) or a Cobertura
XML report (:meth:`Coverage.to_cobertura`), and, when coverage.py is
installed, a coverage.py data file of the executed lines.

Collecting::

    with pyebpf.coverage.collect() as cov:
        prog.test_run(packet)           # any run of any program, any number
    cov.write_lcov("bpf.lcov")

While :func:`collect` is active, programs run in a :class:`CoverageVm`: the
interpreter's handlers wrapped in counting ones (the fast interpreter is
untouched and pays nothing when no collection is active). Runs of the same
program (same name and tag) loaded several times add up, which is what a
test session wants (the pytest option ``--bpf-cov`` does exactly that:
:mod:`pyebpf.testing.cov_plugin`).
"""

from __future__ import annotations

import hashlib
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from .engine.interpreter import Handler, Vm
from .isa.insn import Insn, encode
from .isa.opcodes import OPCODES, Kind
from .lineinfo import SourceMap, source_map_of

__all__ = ["Coverage", "CoverageVm", "FileCoverage", "ProgramCoverage", "collect"]


@attrs.define(eq=False)
class ProgramCoverage:
    """Counts for one program: executions per pc, and per conditional jump
    [fall-through, taken] counts."""

    name: str
    source: SourceMap
    hits: list[int]
    branches: dict[int, list[int]] = attrs.field(factory=dict)

    @property
    def insns_covered(self) -> int:
        return sum(1 for h in self.hits if h)


@attrs.define(eq=False)
class FileCoverage:
    """One source file: hits per line, and per line its branches
    ``(block, branch, taken count or None when the jump never ran)``."""

    path: str
    lines: dict[int, int] = attrs.field(factory=dict)
    branches: dict[int, list[tuple[int, int, int | None]]] = attrs.field(factory=dict)
    #: Program name -> (first line, times entered).
    functions: dict[str, tuple[int, int]] = attrs.field(factory=dict)

    @property
    def lines_hit(self) -> int:
        return sum(1 for h in self.lines.values() if h)

    @property
    def branches_total(self) -> int:
        return sum(len(b) for b in self.branches.values())

    @property
    def branches_hit(self) -> int:
        return sum(1 for b in self.branches.values() for _, _, n in b if n)

    @property
    def line_rate(self) -> float:
        return self.lines_hit / len(self.lines) if self.lines else 0.0

    @property
    def branch_rate(self) -> float:
        total = self.branches_total
        return self.branches_hit / total if total else 0.0


def _key(name: str, insns: Sequence[Insn], prog: Any = None) -> tuple[str, bytes]:
    """Runs of "the same program" add up: same name and same instructions (the
    kernel's tag, which ignores map fds, for loaded programs)."""
    tag = getattr(prog, "tag", None)
    if not isinstance(tag, bytes):
        tag = hashlib.sha1(encode(list(insns))).digest()[:8]
    return name, tag


class Coverage:
    """Execution counts of programs, and their reports by source file."""

    def __init__(self) -> None:
        self.programs: dict[tuple[str, bytes], ProgramCoverage] = {}

    def program(self, name: str, insns: Sequence[Insn], source: SourceMap,
                prog: Any = None) -> ProgramCoverage:
        """The counts of a program (created empty on first sight)."""
        key = _key(name, insns, prog)
        pc = self.programs.get(key)
        if pc is None:
            pc = self.programs[key] = ProgramCoverage(name, source, [0] * len(insns))
        return pc

    def add_trace(self, trace: Any) -> None:
        """Count the steps of a :class:`pyebpf.trace.Trace`."""
        counts = [self.program(p.name, p.insns, p.source, getattr(p, "owner", None))
                  for p in trace.programs]
        for st in trace.steps:
            pcov = counts[st.prog]
            pcov.hits[st.pc] += 1
            if st.branch is not None:
                pcov.branches.setdefault(st.pc, [0, 0])[1 if st.branch else 0] += 1
        for p, pcov in zip(trace.programs, counts, strict=True):
            for pc, insn in enumerate(p.insns):
                spec = OPCODES.get(insn.code)
                if spec is not None and spec.kind is Kind.JCC:
                    pcov.branches.setdefault(pc, [0, 0])

    def merge(self, other: Coverage) -> None:
        """Add another collection's counts to this one."""
        for key, theirs in other.programs.items():
            mine = self.programs.get(key)
            if mine is None:
                self.programs[key] = ProgramCoverage(theirs.name, theirs.source,
                                                     list(theirs.hits),
                                                     {k: list(v) for k, v in
                                                      theirs.branches.items()})
                continue
            mine.hits = [a + b for a, b in zip(mine.hits, theirs.hits, strict=True)]
            for pc, (nt, t) in theirs.branches.items():
                row = mine.branches.setdefault(pc, [0, 0])
                row[0] += nt
                row[1] += t

    # -- as plain data (what pytest-xdist workers send to the controller) ------------------
    def to_dict(self) -> dict[str, Any]:
        """The counts and line tables as JSON-able data (see :meth:`from_dict`)."""
        progs = []
        for (name, tag), pcov in self.programs.items():
            src = pcov.source
            progs.append({
                "name": name, "tag": tag.hex(), "hits": list(pcov.hits),
                "branches": {str(pc): list(row) for pc, row in pcov.branches.items()},
                "obj_path": src.obj_path, "n_insns": src.n_insns,
                "line_info": [[li.insn_off, li.file_name_off, li.line_off, li.line_col,
                               li.file_name, li.line] for li in src.records],
            })
        return {"version": 1, "programs": progs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Coverage:
        from .btf import LineInfo

        cov = cls()
        for p in data["programs"]:
            records = [LineInfo(*row) for row in p["line_info"]]
            src = SourceMap(records, p["n_insns"], p["obj_path"])
            cov.programs[(p["name"], bytes.fromhex(p["tag"]))] = ProgramCoverage(
                p["name"], src, list(p["hits"]),
                {int(pc): list(row) for pc, row in p["branches"].items()})
        return cov

    # -- by source file --------------------------------------------------------------------
    def files(self) -> dict[str, FileCoverage]:
        """Line and branch coverage per source file (programs without line info are
        left out: they have no lines to report)."""
        out: dict[str, FileCoverage] = {}
        for pcov in self.programs.values():
            src = pcov.source
            if not src:
                continue
            starts = src.starts()
            for (fname, line), pcs in src.lines().items():
                path = src.resolve(fname)
                fc = out.setdefault(path, FileCoverage(path))
                hit = max(pcov.hits[pc] for pc in starts.get((fname, line), pcs))
                fc.lines[line] = fc.lines.get(line, 0) + hit
                for pc in pcs:
                    row = pcov.branches.get(pc)
                    if row is None:
                        continue
                    ran = pcov.hits[pc] > 0
                    br = fc.branches.setdefault(line, [])
                    for b in (0, 1):
                        _add_branch(br, pc, b, row[b] if ran else None)
            entry = src.location(0)
            if entry is not None:  # the program as a function: its first line in its file
                fc = out[src.resolve(entry[0])]
                line0 = entry[1]  # clang's record at pc 0: the function's declaration
                _, entered = fc.functions.get(pcov.name, (line0, 0))
                fc.functions[pcov.name] = (line0, entered + pcov.hits[0])
        return dict(sorted(out.items()))

    # -- reports -----------------------------------------------------------------------------
    def to_lcov(self, test_name: str = "") -> str:
        """An lcov tracefile (geninfo format: SF/FN/FNDA/DA/BRDA records)."""
        out: list[str] = []
        for path, fc in self.files().items():
            shown = os.path.abspath(path) if os.path.exists(path) else path
            out += [f"TN:{test_name}", f"SF:{shown}"]
            for name, (line, _) in sorted(fc.functions.items()):
                out.append(f"FN:{line},{name}")
            for name, (_, entered) in sorted(fc.functions.items()):
                out.append(f"FNDA:{entered},{name}")
            out.append(f"FNF:{len(fc.functions)}")
            out.append(f"FNH:{sum(1 for _, n in fc.functions.values() if n)}")
            for line, hits in sorted(fc.lines.items()):
                out.append(f"DA:{line},{hits}")
            for line, brs in sorted(fc.branches.items()):
                for block, branch, taken in brs:
                    out.append(f"BRDA:{line},{block},{branch},{'-' if taken is None else taken}")
            out += [f"BRF:{fc.branches_total}", f"BRH:{fc.branches_hit}",
                    f"LF:{len(fc.lines)}", f"LH:{fc.lines_hit}", "end_of_record"]
        return "".join(line + "\n" for line in out)

    def to_cobertura(self) -> str:
        """A Cobertura XML report (the format GitLab and Jenkins read)."""
        files = self.files()
        lines_valid = sum(len(f.lines) for f in files.values())
        lines_covered = sum(f.lines_hit for f in files.values())
        br_valid = sum(f.branches_total for f in files.values())
        br_covered = sum(f.branches_hit for f in files.values())
        from . import __version__

        root = ET.Element("coverage", {
            "line-rate": _rate(lines_covered, lines_valid),
            "branch-rate": _rate(br_covered, br_valid),
            "lines-covered": str(lines_covered), "lines-valid": str(lines_valid),
            "branches-covered": str(br_covered), "branches-valid": str(br_valid),
            "complexity": "0", "version": f"pyebpf {__version__}",
            "timestamp": str(int(time.time() * 1000)),
        })
        sources = ET.SubElement(root, "sources")
        dirs = sorted({os.path.dirname(os.path.abspath(p)) for p in files})
        for d in dirs:
            ET.SubElement(sources, "source").text = d
        packages = ET.SubElement(root, "packages")
        by_dir: dict[str, list[FileCoverage]] = {}
        for path, fc in files.items():
            by_dir.setdefault(os.path.dirname(os.path.abspath(path)), []).append(fc)
        for d, fcs in by_dir.items():
            pkg = ET.SubElement(packages, "package", {
                "name": os.path.basename(d) or d,
                "line-rate": _rate(sum(f.lines_hit for f in fcs), sum(len(f.lines) for f in fcs)),
                "branch-rate": _rate(sum(f.branches_hit for f in fcs),
                                     sum(f.branches_total for f in fcs)),
                "complexity": "0"})
            classes = ET.SubElement(pkg, "classes")
            for fc in fcs:
                cls = ET.SubElement(classes, "class", {
                    "name": os.path.basename(fc.path), "filename": os.path.basename(fc.path),
                    "line-rate": _rate(fc.lines_hit, len(fc.lines)),
                    "branch-rate": _rate(fc.branches_hit, fc.branches_total),
                    "complexity": "0"})
                methods = ET.SubElement(cls, "methods")
                for name, (line, entered) in sorted(fc.functions.items()):
                    m = ET.SubElement(methods, "method", {
                        "name": name, "signature": "", "line-rate": "1" if entered else "0",
                        "branch-rate": "0", "complexity": "0"})
                    ml = ET.SubElement(m, "lines")
                    ET.SubElement(ml, "line", {"number": str(line), "hits": str(entered)})
                lines_el = ET.SubElement(cls, "lines")
                for line, hits in sorted(fc.lines.items()):
                    attrs_ = {"number": str(line), "hits": str(hits), "branch": "false"}
                    brs = fc.branches.get(line)
                    if brs:
                        hit = sum(1 for _, _, n in brs if n)
                        attrs_["branch"] = "true"
                        attrs_["condition-coverage"] = (
                            f"{100 * hit // len(brs)}% ({hit}/{len(brs)})")
                    ET.SubElement(lines_el, "line", attrs_)
        ET.indent(root)
        return '<?xml version="1.0" ?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def write_lcov(self, path: str | os.PathLike[str], test_name: str = "") -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_lcov(test_name))

    def write_cobertura(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_cobertura())

    def write_coverage_py(self, path: str | os.PathLike[str]) -> None:
        """A coverage.py data file with the executed lines (needs coverage.py
        installed; reporting on C sources also needs a file reporter for them)."""
        try:
            from coverage import CoverageData
        except ImportError as err:
            raise RuntimeError("writing a coverage.py data file needs coverage.py "
                               "(pip install coverage)") from err
        data = CoverageData(basename=os.fspath(path))
        data.add_lines({os.path.abspath(p): [ln for ln, h in fc.lines.items() if h]
                        for p, fc in self.files().items()})
        data.write()

    def write(self, path: str | os.PathLike[str]) -> str:
        """Write the report the file name asks for: ``.xml`` Cobertura, ``.coverage``
        (or a name starting with it) a coverage.py data file, anything else lcov.
        Returns the format written. Missing directories are created."""
        name = os.path.basename(os.fspath(path))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if name.endswith(".xml"):
            self.write_cobertura(path)
            return "cobertura"
        if name.startswith(".coverage"):
            self.write_coverage_py(path)
            return "coverage.py"
        self.write_lcov(path)
        return "lcov"

    def summary(self) -> str:
        """A text table: per file, lines and branches covered."""
        files = self.files()
        rows = [("File", "Lines", "Hit", "Cover", "Branches", "Taken")]
        for path, fc in files.items():
            rel = os.path.relpath(path) if os.path.isabs(path) else path
            rows.append((path if rel.startswith("..") else rel,
                         str(len(fc.lines)), str(fc.lines_hit), f"{100 * fc.line_rate:.1f}%",
                         str(fc.branches_total), str(fc.branches_hit)))
        if len(files) > 1:
            lv = sum(len(f.lines) for f in files.values())
            lh = sum(f.lines_hit for f in files.values())
            rows.append(("TOTAL", str(lv), str(lh), f"{100 * lh / lv if lv else 0:.1f}%",
                         str(sum(f.branches_total for f in files.values())),
                         str(sum(f.branches_hit for f in files.values()))))
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        return "\n".join(r[0].ljust(widths[0]) + "".join(
            c.rjust(w + 2) for c, w in zip(r[1:], widths[1:], strict=True)) for r in rows)

    def __repr__(self) -> str:
        return f"<Coverage of {len(self.programs)} programs>"


def _add_branch(br: list[tuple[int, int, int | None]], block: int, branch: int,
                taken: int | None) -> None:
    for i, (b, k, n) in enumerate(br):
        if (b, k) == (block, branch):
            if taken is not None:
                br[i] = (b, k, (n or 0) + taken)
            return
    br.append((block, branch, taken))


def _rate(hit: int, total: int) -> str:
    return f"{hit / total:.4f}" if total else "0"


# -- collecting -----------------------------------------------------------------------------


def _owner_of(runtime: Any, insns: Any) -> Any:
    """The loaded program whose instruction list is ``insns`` (a tail-call target)."""
    if runtime is None:
        return None
    from .runtime import ObjKind

    return next((p for p in runtime.objects(ObjKind.PROG).values()
                 if getattr(p, "insns", None) is insns), None)


class CoverageVm(Vm):
    """A Vm whose handlers count their executions into a :class:`Coverage`."""

    def __init__(self, *args: Any, coverage: Coverage, **kwargs: Any) -> None:
        self.coverage = coverage
        self._counts: dict[int, ProgramCoverage] = {}
        self._building: Any = None
        super().__init__(*args, **kwargs)

    def _code_for(self, insns: Sequence[Insn]) -> list[Handler]:
        self._building = insns
        return super()._code_for(insns)

    def _program_counts(self, code: list[Handler], insns: Sequence[Insn]) -> ProgramCoverage:
        pcov = self._counts.get(id(code))
        if pcov is None:
            key = self._building
            owner = self.owner if key is self.insns else _owner_of(self.runtime, key)
            name = getattr(owner, "name", "") or "prog"
            pcov = self._counts[id(code)] = self.coverage.program(
                name, insns, source_map_of(owner, insns), owner)
        return pcov

    def _build(self, insn: Insn, pc: int, n: int, insns: Sequence[Insn],
               code: list[Handler]) -> Handler:
        inner = super()._build(insn, pc, n, insns, code)
        pcov = self._program_counts(code, insns)
        hits = pcov.hits
        spec = OPCODES.get(insn.code)
        if spec is not None and spec.kind is Kind.JCC:
            row = pcov.branches.setdefault(pc, [0, 0])
            nxt = pc + 1

            def branch() -> int:
                hits[pc] += 1
                to = inner()
                row[to != nxt] += 1
                return to

            return branch

        def counted() -> int:
            hits[pc] += 1
            return inner()

        return counted


#: The collections open now (innermost last).
_ACTIVE: list[Coverage] = []


def add_to_collections(traces: Iterable[Any]) -> None:
    """Count traced runs in the open collections (a traced run is made by the
    recording interpreter, not the counting one)."""
    if _ACTIVE:
        for trace in traces:
            for cov in _ACTIVE:
                cov.add_trace(trace)


@contextmanager
def collect(coverage: Coverage | None = None) -> Iterator[Coverage]:
    """Count every program run inside the block (any runtime) into ``coverage``
    (a new :class:`Coverage` when None), and yield it."""
    from .prog import VM_HOOKS

    cov = coverage if coverage is not None else Coverage()

    def hook(prog: Any) -> Vm:
        cached = getattr(prog, "_coverage_vm", None)
        if cached is not None and cached[0] is cov:
            return cached[1]
        rt = prog.runtime
        vm = CoverageVm(prog.insns, helpers=rt.helpers, memory=rt.memory, clock=rt.clock,
                        runtime=rt, owner=prog, coverage=cov)
        prog._coverage_vm = (cov, vm)
        return vm

    VM_HOOKS.append(hook)
    _ACTIVE.append(cov)
    try:
        yield cov
    finally:
        VM_HOOKS.remove(hook)
        _ACTIVE.remove(cov)
