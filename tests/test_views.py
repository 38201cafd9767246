"""Notebook and REPL views (pyebpf.views): HTML tables and pretty text, escaped."""

from __future__ import annotations

import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pyebpf import BpfFault, Program, ProgType, Runtime, VerifierError, asm, load_object
from pyebpf.engine import Vm
from pyebpf.explain import explain_load

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAIL_ROW = '<tr style="background:#fdd">'


class _Balance(HTMLParser):
    """Counts open elements (void ones aside) and collects the text."""

    VOID = frozenset({"br"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"</{tag}> closes nothing open"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def well_formed(html: str) -> str:
    """Assert every element is closed in order; return the text a reader sees."""
    p = _Balance()
    p.feed(html)
    p.close()
    assert p.stack == []
    return "".join(p.text)


@pytest.fixture
def xdp_filter():  # type: ignore[no-untyped-def]
    with load_object(EXAMPLES / "xdp_filter.o", runtime=Runtime()) as coll:
        yield coll


def test_program_html_interleaves_source_lines_escaped(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    html = xdp_filter.programs["xdp_filter"]._repr_html_()
    text = well_formed(html)
    assert "if ((void *)(tcp + 1) &gt; data_end)" in html  # escaped in the markup
    assert "xdp_filter.c:37  if ((void *)(tcp + 1) > data_end)" in text
    assert "r2 += 54" in text and "xdp_filter (XDP): 39 insns" in text
    assert text.index("xdp_filter.c:44") < text.index("call bpf_map_lookup_elem#1")


def test_program_pretty_text_is_the_annotated_disassembly(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    from pyebpf.views import program_text

    text = program_text(xdp_filter.programs["xdp_filter"])
    lines = text.splitlines()
    assert lines[0] == "xdp_filter: 39 insns"
    assert lines[1] == "; xdp_filter.c:27  int xdp_filter(struct xdp_md *ctx)"
    assert lines[2] == "    0: (b4) w6 = 2"


def test_map_html_is_a_table_of_entries(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    m = xdp_filter.maps["blocked"]
    m[struct.pack("<H", 22)] = (3).to_bytes(8, "little")
    m[struct.pack("<H", 80)] = bytes(8)
    text = well_formed(m._repr_html_())
    assert "blocked (HASH): 2 of 64 entries, key 2 B, value 8 B" in text
    assert "16 00  (22)" in text and "03 00 00 00 00 00 00 00  (3)" in text


def test_trace_html_has_a_row_per_step_and_marks_the_fault() -> None:
    with pytest.raises(BpfFault) as exc:
        Vm("mov %r1, 0\nldxdw %r0, [%r1+0]\nexit").run(trace=True)
    html = exc.value.trace._repr_html_()  # type: ignore[attr-defined]
    text = well_formed(html)
    assert html.count("<tr") == 1 + 2  # the header and two steps
    assert FAIL_ROW in html and "fault: invalid read of 8 bytes at 0x0" in text


def test_trace_html_shows_printk_and_source(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    xdp_filter.maps["blocked"][struct.pack("<H", 22)] = bytes(8)
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]) + bytes(8)
    tcp = struct.pack(">HHIIBBHHH", 1234, 22, 0, 0, 0x50, 0, 0, 0, 0)
    t = xdp_filter.programs["xdp_filter"].test_run(bytes(12) + b"\x08\x00" + ip + tcp,
                                                  trace=True).trace
    text = well_formed(t._repr_html_())
    assert "bpf_trace_printk:drop port 22" in text
    assert "xdp_filter.c:48  bpf_printk(\"drop port %d\", port);" in text


def test_rejection_html_is_the_path_table_with_the_failing_row_highlighted() -> None:
    with pytest.raises(VerifierError) as exc:
        load_object(EXAMPLES / "xdp_buggy.o", runtime=Runtime())
    html = exc.value._repr_html_()
    text = well_formed(html)
    assert html.count(FAIL_ROW) == 1
    failing = html[html.index(FAIL_ROW):]
    assert failing.split("</tr>")[0].count("r1 = *(u8 *)(r1 +23)") == 1
    assert "R1 offset is outside of the packet" in text
    assert "registers (before)" in text and "not taken" in text


def test_rejection_pretty_text_ends_with_the_log_and_a_hint() -> None:
    from pyebpf.views import verifier_error_text

    with pytest.raises(VerifierError) as exc:
        Program.load(ProgType.XDP, asm("ldxw %r2, [%r1+0]\nldxb %r0, [%r2+20]\nexit"),
                     runtime=Runtime(), log_level=1)
    lines = verifier_error_text(exc.value).splitlines()
    assert lines[0] == "[EACCES] R2 offset is outside of the packet"
    assert lines[1] == "verifier log (end):"
    assert lines[2:4] == ["  0: R1=ctx() R10=fp0", "  0: (61) r2 = *(u32 *)(r1 +0)          "
                          "; R1=ctx() R2=pkt(r=0)"]
    assert lines[-1].startswith("err.explain() shows the path")


def test_explanation_html_shows_the_counterexample() -> None:
    e = explain_load(ProgType.XDP, "ldxw %r2, [%r1+0]\nldxb %r0, [%r2+20]\nexit",
                     runtime=Runtime())
    assert e is not None
    text = well_formed(e._repr_html_())
    assert "counterexample (packet out of bounds)" in text
    assert "packet (14 bytes): 00 00" in text


def test_loaded_fd_html_is_the_verifier_log_as_a_table() -> None:
    from pyebpf.attr import ProgLoadAttr
    from pyebpf.syscall import bpf
    from pyebpf.uapi import Cmd

    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.XDP, insns=asm("mov %r0, 2\nexit"),
                                         license="GPL", log_level=2, log_size=1 << 16),
             runtime=Runtime())
    text = well_formed(fd._repr_html_())
    assert "program fd" in text and "r0 = 2R0=2" in text and "processed 2 insns" in text


def test_ipython_pretty_printer_uses_the_text_views(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    pretty = pytest.importorskip("IPython.lib.pretty")
    assert pretty.pretty(xdp_filter.programs["xdp_filter"]).startswith("xdp_filter: 39 insns")
    assert pretty.pretty(xdp_filter.maps["blocked"]).startswith("<Map fd=")
    t = Vm("mov %r0, 1\nexit").run(trace=True)
    assert "exit: r0 = 1" in pretty.pretty(t)


def test_debugger_html_highlights_the_current_instruction_beside_the_registers() -> None:
    from pyebpf.debugger import Debugger

    d = Debugger("mov %r0, 7\nmov %r1, 1\nexit")
    d.step()
    html = d._repr_html_()
    text = well_formed(html)
    assert "prog: step 1 of 3, pc 1" in text and "r00x7" in text
    current = html[html.index('<tr style="background:#eef6ff">'):].split("</tr>")[0]
    assert "r1 = 1" in current
    d.step(5)
    assert "finished: r0 = 7" in well_formed(d._repr_html_())
