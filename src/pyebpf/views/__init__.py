"""Notebook and REPL views: HTML (``_repr_html_``) and text (``_repr_pretty_``).

Jupyter shows an object through its ``_repr_html_``; IPython's terminal
through ``_repr_pretty_``. pyebpf's objects delegate both to the functions
here, so the rendering lives in one place and the classes stay small:

- a program: its disassembly, each source line (BTF line info) above its
  instructions;
- a map: its entries as a table;
- a trace: one row per executed instruction, with its effects;
- a verifier rejection: the path to the rejected instruction as a table
  (instruction, registers, stack, branch taken), the rejected row
  highlighted, and the counterexample when one was found (the idea of
  bpfvv, the BPF verifier visualizer);
- a successful load's verifier log as the same kind of table.

Plain Python, every text escaped with :func:`html.escape`, styles inline (no
stylesheet, so the HTML survives notebook renderers that strip ``<style>``).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "debugger_html",
    "explanation_html",
    "loaded_log_html",
    "map_html",
    "map_text",
    "program_html",
    "program_text",
    "trace_html",
    "verifier_error_html",
    "verifier_error_text",
    "verifier_log_html",
]

#: Rows a table shows before it says how many more there are.
MAX_ROWS = 1000

_TABLE = ('<table style="border-collapse:collapse;font-family:monospace;font-size:12px;'
          'text-align:left">')
_TH = '<th style="border-bottom:1px solid #888;padding:2px 8px;text-align:left">'
_TD = '<td style="padding:1px 8px;vertical-align:top;text-align:left;white-space:pre">'
_SRC_ROW = ('<tr><td colspan="{n}" style="padding:4px 8px 1px;color:#2a6;text-align:left;'
            'white-space:pre;font-style:italic">{text}</td></tr>')
_FAIL = ' style="background:#fdd"'
_TAKEN = ' style="background:#eef6ff"'


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(headers: Sequence[str], rows: Iterable[str], caption: str = "") -> str:
    head = "".join(f"{_TH}{_e(h)}</th>" for h in headers)
    cap = (f'<div style="font-family:monospace;font-weight:bold;margin:4px 0">{caption}</div>'
           if caption else "")
    return f"{cap}{_TABLE}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _row(cells: Sequence[str], attrs: str = "") -> str:
    return f"<tr{attrs}>" + "".join(f"{_TD}{c}</td>" for c in cells) + "</tr>"


def _more(n: int, cols: int) -> str:
    return _row([f"<i>... {n} more</i>"] + [""] * (cols - 1))


# -- programs ---------------------------------------------------------------------------------


def _program_parts(prog: Any) -> tuple[str, Sequence[Any], Any]:
    """(name, instructions, SourceMap) of an objects.Program, BpfProg or ProgramSpec."""
    from ..lineinfo import source_map_of

    if hasattr(prog, "fd") and hasattr(prog, "runtime"):
        from ..trace import _bpf_prog

        obj = _bpf_prog(prog)
        insns = obj.orig_insns
        src = source_map_of(obj, insns)
        if not src and getattr(prog, "spec", None) is not None:
            src = source_map_of(prog.spec, insns)
        return prog.name, insns, src
    insns = prog.instructions if hasattr(prog, "instructions") else prog.insns
    return getattr(prog, "name", ""), insns, source_map_of(prog, insns)


def _listing(insns: Sequence[Any], src: Any) -> list[tuple[str | None, int, str]]:
    """(source text when a new line starts, pc, instruction text) per slot."""
    from ..isa.disasm import format_line

    out = []
    last = None
    for pc in range(len(insns)):
        if pc and insns[pc - 1].code == 0x18:
            continue  # the second slot of an lddw
        loc = src.location(pc) if src else None
        label = None
        if loc is not None and loc != last:
            last = loc
            text = src.source_text(pc).strip()
            label = f"{os.path.basename(loc[0])}:{loc[1]}" + (f"  {text}" if text else "")
        try:
            text = format_line(insns, pc, allow_ptr_leaks=True)
        except Exception:  # a printer gap must not break a view
            text = f"<code {insns[pc].code:#04x}>"
        out.append((label, pc, text))
    return out


def program_text(prog: Any) -> str:
    """The disassembly with source lines, as text."""
    name, insns, src = _program_parts(prog)
    out = [f"{name or 'program'}: {len(insns)} insns"]
    for label, pc, text in _listing(insns, src):
        if label is not None:
            out.append(f"; {label}")
        out.append(f"{pc:5d}: {text}")
    return "\n".join(out)


def program_html(prog: Any) -> str:
    name, insns, src = _program_parts(prog)
    kind = getattr(getattr(prog, "prog_type", None), "name", "")
    rows = []
    for i, (label, pc, text) in enumerate(_listing(insns, src)):
        if i >= MAX_ROWS:
            rows.append(_more(len(insns) - pc, 2))
            break
        if label is not None:
            rows.append(_SRC_ROW.format(n=2, text=_e(label)))
        rows.append(_row([str(pc), _e(text)]))
    caption = _e(f"{name or 'program'}" + (f" ({kind})" if kind else "")
                 + f": {len(insns)} insns")
    return _table(["pc", "instruction"], rows, caption)


# -- maps -----------------------------------------------------------------------------------


def _entries(m: Any, limit: int) -> tuple[list[tuple[bytes, bytes]], int]:
    out = []
    total = 0
    for k, v in m.items():
        total += 1
        if len(out) < limit:
            out.append((k, v))
    return out, total


def _show(data: bytes) -> str:
    """Bytes as hex, with the little-endian integer for sizes 1..8."""
    if 0 < len(data) <= 8:
        return f"{data.hex(' ')}  ({int.from_bytes(data, 'little')})"
    return data.hex(" ")


def map_text(m: Any, limit: int = 50) -> str:
    entries, total = _entries(m, limit)
    out = [repr(m)]
    out += [f"  {_show(k)}: {_show(v)}" for k, v in entries]
    if total > len(entries):
        out.append(f"  ... {total - len(entries)} more")
    return "\n".join(out)


def map_html(m: Any, limit: int = MAX_ROWS) -> str:
    entries, total = _entries(m, limit)
    rows = [_row([_e(_show(k)), _e(_show(v))]) for k, v in entries]
    if total > len(entries):
        rows.append(_more(total - len(entries), 2))
    caption = _e(f"{m.name or 'map'} ({m.map_type.name}): {total} of {m.max_entries} entries, "
                 f"key {m.key_size} B, value {m.value_size} B")
    return _table(["key", "value"], rows, caption)


# -- traces ---------------------------------------------------------------------------------


def _effects(st: Any, stack_bases: Sequence[int]) -> tuple[str, str]:
    from ..trace import _place

    regs = ", ".join(f"r{w.reg} = {w.new:#x}" for w in st.reg_writes)
    mem = "; ".join(f"{_place(w.addr, w.region, stack_bases)}: "
                    f"{'??' if w.old is None else w.old.hex(' ')} → "
                    f"{'??' if w.new is None else w.new.hex(' ')}" for w in st.writes)
    return regs, mem


def trace_html(trace: Any) -> str:
    rows = []
    last = None
    for st in trace.steps[:MAX_ROWS]:
        prog = trace.programs[st.prog]
        loc = prog.source.location(st.pc)
        if loc is not None and (st.prog, loc) != last:
            last = (st.prog, loc)
            text = prog.source.source_text(st.pc).strip()
            rows.append(_SRC_ROW.format(n=6, text=_e(
                f"{os.path.basename(loc[0])}:{loc[1]}  {text}")))
        regs, mem = _effects(st, trace.stack_bases)
        way = "" if st.branch is None else ("taken" if st.branch else "not taken")
        event = st.event if st.event not in (None, "exit") else ""
        attrs = _FAIL if event.startswith("fault") else ""
        rows.append(_row([str(st.seq), str(st.pc), _e("  " * st.depth + st.text), _e(regs),
                          _e(mem), _e(" ".join(x for x in (way, event) if x))], attrs))
    if len(trace.steps) > MAX_ROWS:
        rows.append(_more(len(trace.steps) - MAX_ROWS, 6))
    end = (f"fault: {trace.fault}" if trace.fault is not None
           else f"r0 = {trace.retval}")
    caption = _e(f"trace of {trace.programs[0].name}: {len(trace.steps)} steps, {end}")
    out = _table(["#", "pc", "instruction", "registers written", "memory written", ""],
                 rows, caption)
    if trace.printk:
        out += ('<div style="font-family:monospace;margin-top:4px">bpf_trace_printk:<br>'
                + "<br>".join(_e(line.rstrip()) for line in trace.printk) + "</div>")
    return out


# -- the verifier -----------------------------------------------------------------------------


def _stack_cell(stack: Sequence[tuple[int, str]]) -> str:
    return "\n".join(f"fp{off}={text}" for off, text in stack)


def explanation_html(exp: Any) -> str:
    """The path to a rejection as a table; the rejected instruction highlighted."""
    rows = []
    last = None
    src = exp.source
    for p in exp.path[:MAX_ROWS]:
        loc = src.location(p.idx) if src else None
        if loc is not None and loc != last:
            last = loc
            text = src.source_text(p.idx).strip()
            rows.append(_SRC_ROW.format(n=5, text=_e(
                f"{os.path.basename(loc[0])}:{loc[1]}  {text}")))
        failing = p is exp.path[-1]
        way = "" if p.branch is None else ("taken" if p.branch else "not taken")
        regs = "\n".join(f"R{r}={text}" for r, text in p.regs)
        attrs = _FAIL if failing else (_TAKEN if p.branch is not None else "")
        rows.append(_row([str(p.idx), _e("  " * p.frame + p.text), _e(regs),
                          _e(_stack_cell(p.stack)), _e(way)], attrs))
    if len(exp.path) > MAX_ROWS:
        rows.append(_more(len(exp.path) - MAX_ROWS, 5))
    where = exp.location()
    head = (f'<div style="font-family:monospace;color:#b00;font-weight:bold;margin:4px 0">'
            f"{_e(exp.message)}</div><div style=\"font-family:monospace\">"
            f"{_e(exp.prog_name or 'program')}{_e(' at ' + where if where else '')}</div>")
    out = head + _table(["insn", "instruction", "registers (before)", "stack (before)",
                         "branch"], rows, _e(f"verifier path: {len(exp.path)} instructions"))
    cx = exp.counterexample
    if cx is not None:
        out += (f'<div style="font-family:monospace;margin-top:6px"><b>counterexample '
                f"({_e(cx.kind)})</b>: {_e(cx.detail)}</div>")
        out += f"<pre>{_e(cx.format())}</pre>"
    elif exp.note:
        out += f'<div style="font-family:monospace;margin-top:6px">{_e(exp.note)}</div>'
    return out


_LOG_LINE = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*?)(?:\s+; (.*))?$")


def verifier_log_html(log: str, failing_message: str = "") -> str:
    """A verifier log (level 1 or 2) as a table: insn, instruction, state after it.
    Other lines (branch states, statistics) span the row; the rejection is red."""
    rows = []
    lines = log.splitlines()
    for line in lines[:MAX_ROWS]:
        m = _LOG_LINE.match(line)
        if m:
            rows.append(_row([m.group(1), _e(m.group(3)), _e(m.group(4) or "")]))
            continue
        failing = bool(failing_message.strip()) and failing_message.strip() in line
        attrs = _FAIL if failing else ""
        rows.append(f"<tr{attrs}><td colspan=\"3\" style=\"padding:1px 8px;text-align:left;"
                    f"white-space:pre;color:#555\">{_e(line)}</td></tr>")
    if len(lines) > MAX_ROWS:
        rows.append(_more(len(lines) - MAX_ROWS, 3))
    return _table(["insn", "instruction", "state"], rows)


def verifier_error_text(err: Any) -> str:
    """The error and the end of the log, the rejection last."""
    out = [str(err)]
    tail = [ln for ln in (err.log or "").splitlines() if ln.strip()][-15:]
    if tail:
        out.append("verifier log (end):")
        out += [f"  {ln}" for ln in tail]
    if getattr(err, "load_attr", None) is not None or getattr(err, "object_spec", None):
        out.append("err.explain() shows the path to the rejection and a counterexample")
    return "\n".join(out)


def verifier_error_html(err: Any) -> str:
    """The path table (from a recorded walk) when the error can be explained; else the log."""
    if getattr(err, "load_attr", None) is not None or getattr(err, "object_spec", None):
        try:
            exp = err.explain(counterexample=False)
        except Exception:  # a walk that can't be redone: the log below still says why
            exp = None
        if exp is not None:
            return explanation_html(exp)
    head = (f'<div style="font-family:monospace;color:#b00;font-weight:bold">{_e(err)}</div>')
    return head + verifier_log_html(err.log or "", str(err.strerror or ""))


def loaded_log_html(fd: Any) -> str:
    """A successful PROG_LOAD: the fd and its verifier log as a table."""
    head = f'<div style="font-family:monospace">program fd {int(fd)}</div>'
    return head + (verifier_log_html(fd.log) if fd.log else "")


# -- the debugger ----------------------------------------------------------------------------


def debugger_html(d: Any, context: int = 6) -> str:
    """The instructions around the debugger's cursor (the current one highlighted)
    beside the registers it will see."""
    from ..isa.disasm import format_insn

    trace = d.trace
    cur = d.current
    prog = trace.programs[cur.prog if cur is not None else 0]
    insns = prog.insns
    pc = cur.pc if cur is not None else len(insns)
    rows = []
    last = None
    for p in range(max(pc - context, 0), min(pc + context + 1, len(insns))):
        try:
            text = format_insn(insns, p, allow_ptr_leaks=True)
        except Exception:  # a printer gap must not break a view
            text = "?"
        if text.startswith("<second slot"):
            continue
        loc = prog.source.location(p)
        if loc is not None and loc != last:
            last = loc
            rows.append(_SRC_ROW.format(n=2, text=_e(
                f"{os.path.basename(loc[0])}:{loc[1]}  {prog.source.source_text(p).strip()}")))
        rows.append(_row([str(p), _e(text)], _TAKEN if p == pc else ""))
    where = (f"step {d.cursor} of {len(trace.steps)}, pc {pc}" if cur is not None
             else f"finished: {'fault ' + str(d.fault) if d.fault else f'r0 = {d.retval}'}")
    listing = _table(["pc", "instruction"], rows, _e(f"{prog.name}: {where}"))
    regs = _table(["reg", "value"], [_row([f"r{i}", f"{v:#x}"]) for i, v in enumerate(d.regs)])
    return ('<div style="display:flex;gap:24px;align-items:flex-start">'
            f"<div>{listing}</div><div>{regs}</div></div>")
