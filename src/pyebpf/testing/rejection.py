"""Asserting that the verifier rejects a program, and showing why when it doesn't.

``assert_rejected(insns, match="R1 invalid mem access", prog_type=ProgType.XDP)``
loads the program with a verifier log and passes when the load fails with a
:class:`~pyebpf.errors.VerifierError` whose message or log matches. When the
program is accepted, or rejected for another reason, the assertion message
shows the verifier log around the failing instruction (marked ``>>``) and the
disassembly there, which is what one reads first when a rejection test breaks.

With ``kernel=True`` the same program is loaded on the real kernel too: it
must be rejected there as well, with the same errno, and ``match`` must hold
for the kernel's log. A program from an object file is given as the object
(a path, bytes or ObjectSpec) and ``program=`` its name; the object's maps are
created for the load (on both sides in kernel mode).
"""

from __future__ import annotations

import errno as _errno
import os
import re
from collections.abc import Sequence
from typing import Any

import attrs

from ..elf.spec import ObjectSpec
from ..errors import BpfError, VerifierError
from ..isa import Insn, decode
from ..isa.disasm import format_insn
from ..runtime import Runtime
from ..uapi import ProgType

__all__ = ["Rejection", "assert_rejected", "log_excerpt"]

_INSN_LINE = re.compile(r"^(\d+): \(")


@attrs.frozen
class Rejection:
    """What the verifier said: errno, its reason, the log, and the failing insn."""

    errno: int
    message: str
    log: str
    #: The instruction the walk stopped at (the last one the log shows), or None.
    insn: int | None
    #: The kernel's rejection (``kernel=True``), else None.
    kernel: Rejection | None = None


def failing_insn(log: str) -> int | None:
    """The index of the last instruction the verifier log shows."""
    at = None
    for line in log.splitlines():
        m = _INSN_LINE.match(line)
        if m:
            at = int(m.group(1))
    return at


def log_excerpt(log: str, *, context: int = 8) -> str:
    """The end of a verifier log: ``context`` lines before the last instruction line
    (marked ``>>``) and everything after it (the error and the statistics)."""
    lines = log.splitlines()
    last = max((i for i, ln in enumerate(lines) if _INSN_LINE.match(ln)), default=None)
    if last is None:
        return "\n".join("   " + ln for ln in lines[-context:])
    start = max(0, last - context)
    out = [("   ..." if start else None)]
    for i in range(start, len(lines)):
        out.append((">> " if i == last else "   ") + lines[i])
    return "\n".join(ln for ln in out if ln is not None)


def _disasm_around(insns: Sequence[Insn], at: int | None, context: int = 4) -> str:
    if at is None or not insns:
        return ""
    lo, hi = max(0, at - context), min(len(insns), at + 2)
    rows = []
    for i in range(lo, hi):
        if i > 0 and insns[i - 1].is_lddw:
            continue
        mark = ">> " if i == at else "   "
        rows.append(f"{mark}{i}: {format_insn(insns, i)}")
    return "\n".join(rows)


def _as_insns(prog: Any) -> list[Insn]:
    if isinstance(prog, str):
        from ..isa.asm import asm

        return list(asm(prog))
    if isinstance(prog, bytes | bytearray):
        return decode(bytes(prog), strict=False)
    return list(prog)


def _load_pyebpf(prog: Any, prog_type: Any, program: str | None, runtime: Runtime | None,
                 load_kw: dict[str, Any]) -> tuple[list[Insn], BpfError | None]:
    from ..collection import load_object
    from ..objects import Program

    rt = runtime if runtime is not None else Runtime()
    if program is not None:
        spec = _spec(prog)
        insns = decode(spec.program(program).insns, strict=False)
        try:
            coll = load_object(spec, runtime=rt, programs=[program], log_level=1,
                               prog_types={program: prog_type} if prog_type is not None
                               else None, **load_kw)
        except BpfError as e:
            return insns, e
        coll.close()
        return insns, None
    if prog_type is None:
        raise TypeError("assert_rejected needs prog_type= for a program given as instructions")
    insns = _as_insns(prog)
    try:
        p = Program.load(prog_type, insns, log_level=1, runtime=rt, **load_kw)
    except BpfError as e:
        return insns, e
    p.close()
    return insns, None


def _spec(obj: Any) -> ObjectSpec:
    if isinstance(obj, ObjectSpec):
        return obj
    from ..elf.loader import load_spec

    return load_spec(os.fspath(obj) if not isinstance(obj, bytes) else obj)


def _load_kernel(prog: Any, prog_type: Any, program: str | None,
                 insns: list[Insn], load_kw: dict[str, Any]) -> BpfError | None:
    from ..isa import encode
    from .kernel_prog import KernelCollection, kernel_prog_load

    try:
        if program is not None:
            kc = KernelCollection.from_spec(
                _spec(prog), programs=[program],
                prog_types={program: prog_type} if prog_type is not None else None)
            kc.close()
        else:
            fd = kernel_prog_load(int(prog_type), encode(insns),
                                  license=load_kw.get("license", "GPL"),
                                  expected_attach_type=load_kw.get("expected_attach_type", 0),
                                  prog_flags=load_kw.get("prog_flags", 0))
            os.close(fd)
    except BpfError as e:
        return e
    return None


def _rejection(err: BpfError) -> Rejection:
    log = getattr(err, "log", "") or ""
    return Rejection(errno=err.errno or 0, message=err.strerror or "", log=log,
                     insn=failing_insn(log))


def _matches(pattern: str | re.Pattern[str] | None, r: Rejection) -> bool:
    if pattern is None:
        return True
    return re.search(pattern, r.message) is not None or re.search(pattern, r.log,
                                                                  re.MULTILINE) is not None


def _explain(side: str, r: Rejection, insns: list[Insn], context: int) -> str:
    parts = [f"{side} rejected it with {_errno.errorcode.get(r.errno, r.errno)}: {r.message}"]
    if r.log:
        parts.append("verifier log (end):\n" + log_excerpt(r.log, context=context))
    around = _disasm_around(insns, r.insn)
    if around:
        parts.append(f"program around insn {r.insn}:\n{around}")
    return "\n".join(parts)


def assert_rejected(prog: Any, match: str | re.Pattern[str] | None = None, *,
                    prog_type: ProgType | int | None = None, program: str | None = None,
                    errno: int | None = None, runtime: Runtime | None = None,
                    kernel: bool = False, context: int = 8, **load_kw: Any) -> Rejection:
    """Assert the verifier rejects ``prog`` (pyebpf's; with ``kernel=True`` also the
    kernel's) with a message or log matching the regex ``match`` and, when given,
    errno ``errno``. ``prog``: assembly text, instruction bytes or Insn records
    (with ``prog_type``), or an object (path, bytes, ObjectSpec) with
    ``program=``. Returns the :class:`Rejection` for further checks."""
    __tracebackhide__ = True
    insns, err = _load_pyebpf(prog, prog_type, program, runtime, load_kw)
    if err is None:
        raise AssertionError(f"the verifier accepted the program ({len(insns)} insns); "
                             f"expected a rejection{f' matching {match!r}' if match else ''}")
    if not isinstance(err, VerifierError):
        raise AssertionError(f"the load failed before verification: {err}")
    ours = _rejection(err)
    if errno is not None and ours.errno != errno:
        raise AssertionError(f"expected errno {_errno.errorcode.get(errno, errno)}\n"
                             + _explain("pyebpf", ours, insns, context))
    if not _matches(match, ours):
        raise AssertionError(f"no match for {match!r}\n" + _explain("pyebpf", ours, insns,
                                                                    context))
    if not kernel:
        return ours
    kerr = _load_kernel(prog, prog_type, program, insns, load_kw)
    if kerr is None:
        raise AssertionError("pyebpf rejected the program but the kernel accepted it\n"
                             + _explain("pyebpf", ours, insns, context))
    theirs = _rejection(kerr)
    if theirs.errno != ours.errno:
        raise AssertionError(f"pyebpf rejected with {_errno.errorcode.get(ours.errno)}, the "
                             f"kernel with {_errno.errorcode.get(theirs.errno)}\n"
                             + _explain("the kernel", theirs, insns, context))
    if not _matches(match, theirs):
        raise AssertionError(f"the kernel's rejection does not match {match!r}\n"
                             + _explain("the kernel", theirs, insns, context))
    return attrs.evolve(ours, kernel=theirs)
