"""Coverage of BPF C code (pyebpf.coverage) on examples/xdp_filter.c, whose lines we know.

The line table of xdp_filter.o (clang-19 -O2 -g -mcpu=v3): the function's
record at line 27, the loads of data/data_end (29, 30), one record per
condition (37, 39, 41 and is_tcp's 23), the port (43), the lookup (44), its
check (45), the drop (47, 48) and the common exit (50). Every ``return
XDP_PASS`` shares the exit, so those lines carry no code of their own.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyebpf import Runtime, load_object
from pyebpf.coverage import Coverage, collect

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SOURCE = str(EXAMPLES / "xdp_filter.c")
ALL_LINES = {23, 27, 29, 30, 37, 39, 41, 43, 44, 45, 47, 48, 50}


def tcp_packet(dport: int, *, eth_type: int = 0x0800) -> bytes:
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]) + bytes(8)
    tcp = struct.pack(">HHIIBBHHH", 1234, dport, 0, 0, 0x50, 0, 0, 0, 0)
    return bytes(12) + struct.pack(">H", eth_type) + ip + tcp


@pytest.fixture
def xdp_filter():  # type: ignore[no-untyped-def]
    rt = Runtime()
    with load_object(EXAMPLES / "xdp_filter.o", runtime=rt) as coll:
        coll.maps["blocked"][struct.pack("<H", 22)] = bytes(8)
        yield coll


def covered(cov: Coverage) -> set[int]:
    return {ln for ln, hits in cov.files()[SOURCE].lines.items() if hits}


def test_a_short_packet_covers_only_the_bounds_check(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    with collect() as cov:
        assert xdp_filter.programs["xdp_filter"].test_run(bytes(20)).retval == 2
    fc = cov.files()[SOURCE]
    assert set(fc.lines) == ALL_LINES
    assert covered(cov) == {27, 29, 30, 37, 50}
    assert fc.branches[37] == [(5, 0, 0), (5, 1, 1)]  # the bounds check jumped out
    assert fc.branches[39] == [(10, 0, None), (10, 1, None)]  # never reached


def test_a_blocked_and_a_passed_port_cover_every_line(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    prog = xdp_filter.programs["xdp_filter"]
    with collect() as cov:
        prog.test_run(tcp_packet(22))
        prog.test_run(tcp_packet(80))
    fc = cov.files()[SOURCE]
    assert covered(cov) == ALL_LINES
    assert fc.lines[47] == 1 and fc.lines[27] == 2
    assert fc.branches[45] == [(23, 0, 1), (23, 1, 1)]  # found once, missed once
    assert fc.branches_total == 10 and fc.branches_hit == 6
    assert fc.functions == {"xdp_filter": (27, 2)}


def test_runs_of_the_same_program_loaded_twice_add_up() -> None:
    with collect() as cov:
        for _ in range(2):
            with load_object(EXAMPLES / "xdp_filter.o", runtime=Runtime()) as coll:
                coll.programs["xdp_filter"].test_run(tcp_packet(80, eth_type=0x86DD))
    assert len(cov.programs) == 1
    assert cov.files()[SOURCE].lines[39] == 2 and cov.files()[SOURCE].lines[41] == 0


def test_lcov_tracefile_records(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    with collect() as cov:
        xdp_filter.programs["xdp_filter"].test_run(bytes(20))
    text = cov.to_lcov()
    assert text.startswith("TN:\nSF:" + SOURCE + "\n")
    assert "FN:27,xdp_filter\nFNDA:1,xdp_filter\n" in text
    assert "DA:37,1\nDA:39,0\n" in text
    assert "BRDA:37,5,1,1\n" in text and "BRDA:39,10,0,-\n" in text
    assert text.endswith("BRF:10\nBRH:1\nLF:13\nLH:5\nend_of_record\n")


def test_cobertura_report_counts_lines_and_conditions(xdp_filter, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with collect() as cov:
        xdp_filter.programs["xdp_filter"].test_run(tcp_packet(80))
    out = tmp_path / "cov.xml"
    assert cov.write(out) == "cobertura"
    root = ET.parse(out).getroot()
    assert root.get("lines-valid") == "13" and root.get("lines-covered") == "11"
    (cls,) = root.iter("class")
    assert cls.get("filename") == "xdp_filter.c"
    line45 = next(e for e in cls.iter("line") if e.get("number") == "45")
    assert line45.get("branch") == "true" and line45.get("condition-coverage") == "50% (1/2)"


def test_coverage_of_a_trace_equals_coverage_collected(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    prog = xdp_filter.programs["xdp_filter"]
    with collect() as live:
        prog.test_run(tcp_packet(22))
    from_trace = Coverage()
    from_trace.add_trace(prog.test_run(tcp_packet(22), trace=True).trace)
    assert from_trace.files()[SOURCE].lines == live.files()[SOURCE].lines
    assert from_trace.files()[SOURCE].branches == live.files()[SOURCE].branches


def test_plain_data_round_trip_and_merge(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    prog = xdp_filter.programs["xdp_filter"]
    with collect() as a:
        prog.test_run(bytes(20))
    with collect() as b:
        prog.test_run(tcp_packet(22))
    merged = Coverage.from_dict(a.to_dict())
    merged.merge(Coverage.from_dict(b.to_dict()))
    assert merged.files()[SOURCE].lines[37] == 2 and merged.files()[SOURCE].lines[47] == 1


def test_coverage_py_data_file_needs_coverage_installed(xdp_filter, tmp_path) -> None:  # type: ignore[no-untyped-def]
    coverage = pytest.importorskip("coverage")
    with collect() as cov:
        xdp_filter.programs["xdp_filter"].test_run(bytes(20))
    cov.write_coverage_py(tmp_path / ".coverage")
    data = coverage.CoverageData(basename=str(tmp_path / ".coverage"))
    data.read()
    assert sorted(data.lines(SOURCE) or []) == [27, 29, 30, 37, 50]


def test_a_source_recorded_on_another_machine_is_found_next_to_the_object(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pyebpf.btf import LineInfo
    from pyebpf.lineinfo import SourceMap

    (tmp_path / "prog.c").write_text("int x;\n")
    li = LineInfo(0, 0, 0, 1 << 10, "/build/elsewhere/prog.c", "int x;")
    src = SourceMap([li], 1, str(tmp_path / "prog.o"))
    assert src.resolve(li.file_name) == str(tmp_path / "prog.c")
    assert SourceMap([li], 1, None).resolve(li.file_name) == li.file_name


def test_coverage_page_runs_as_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mdrun = pytest.importorskip("docs.mdrun")  # tests/docs: the pages' runner
    assert mdrun.run_page(EXAMPLES.parent / "docs" / "coverage.md", tmp_path) >= 3


def test_tail_call_targets_are_counted_as_their_own_program() -> None:
    from pyebpf import Map, MapType, Program, ProgType, asm
    from pyebpf.isa.asm import assemble
    from pyebpf.isa.insn import Insn

    rt = Runtime()
    target = Program.load(ProgType.XDP, asm("mov %r0, 1\nexit"), name="target", runtime=rt)
    slots = Map.create(MapType.PROG_ARRAY, key_size=4, value_size=4, max_entries=2, runtime=rt)
    slots[0] = int(target.fd).to_bytes(4, "little")
    insns = assemble(f"lddw %r2, {slots.fd}\nmov %r3, 0\ncall 12\nmov %r0, 2\nexit")
    insns[0] = Insn(insns[0].code, insns[0].dst, 1, insns[0].off, insns[0].imm)  # map fd
    main = Program.load(ProgType.XDP, insns, name="main", runtime=rt)
    with collect() as cov:
        main.test_run(bytes(20))
        main.test_run(bytes(20))
    hits = {name: p.hits for (name, _), p in cov.programs.items()}
    assert hits == {"main": [2, 0, 2, 2, 0, 0], "target": [2, 2]}
    assert cov.files() == {}  # no BTF: nothing to report by line


def test_traced_runs_inside_a_collection_are_counted_once(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    prog = xdp_filter.programs["xdp_filter"]
    with collect() as cov:
        prog.test_run(tcp_packet(22), trace=True)  # the recording interpreter ran it
        prog.test_run(tcp_packet(22))
    assert len(cov.programs) == 1
    assert cov.files()[SOURCE].lines[47] == 2


def test_explaining_a_rejection_does_not_count_as_coverage() -> None:
    from pyebpf import VerifierError

    with collect() as cov:
        with pytest.raises(VerifierError) as exc:
            load_object(EXAMPLES / "xdp_buggy.o", runtime=Runtime())
        assert exc.value.explain().counterexample is not None
    assert cov.programs == {}


@pytest.mark.kernel
def test_the_kernel_runs_the_example_as_pyebpf_does(xdp_filter) -> None:  # type: ignore[no-untyped-def]
    """The example whose coverage we check behaves the same on the kernel."""
    from pyebpf.elf import load_spec
    from pyebpf.testing.kernel import kernel_available
    from pyebpf.testing.kernel_prog import KernelCollection, kernel_test_run

    if not kernel_available():
        pytest.skip("the kernel's bpf() is not available here")
    packets = [bytes(20), tcp_packet(22), tcp_packet(80), tcp_packet(22, eth_type=0x86DD)]
    with KernelCollection.from_spec(load_spec(EXAMPLES / "xdp_filter.o")) as kcoll:
        kcoll.maps["blocked"].update(struct.pack("<H", 22), bytes(8))
        for pkt in packets:
            ours = xdp_filter.programs["xdp_filter"].test_run(pkt)
            theirs = kernel_test_run(kcoll.programs["xdp_filter"], pkt)
            assert (ours.retval, ours.data_out) == (theirs.retval, theirs.data_out)
        assert kcoll.maps["blocked"].lookup(struct.pack("<H", 22)) == (1).to_bytes(8, "little")
    assert xdp_filter.maps["blocked"][struct.pack("<H", 22)] == (1).to_bytes(8, "little")
