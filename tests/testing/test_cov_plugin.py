"""The ``--bpf-cov`` pytest option (pyebpf.testing.cov_plugin), run with pytester."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

TESTS = """
import struct
from pyebpf import Runtime, load_object

def packet(dport):
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]) + bytes(8)
    tcp = struct.pack(">HHIIBBHHH", 1234, dport, 0, 0, 0x50, 0, 0, 0, 0)
    return bytes(12) + b"\\x08\\x00" + ip + tcp

def run(dport):
    with load_object("xdp_filter.o", runtime=Runtime()) as coll:
        coll.maps["blocked"][struct.pack("<H", 22)] = bytes(8)
        return coll.programs["xdp_filter"].test_run(packet(dport)).retval

def test_blocked():
    assert run(22) == 1

def test_passed():
    assert run(80) == 2
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copy(EXAMPLES / "xdp_filter.o", pytester.path / "xdp_filter.o")
    shutil.copy(EXAMPLES / "xdp_filter.c", pytester.path / "xdp_filter.c")
    pytester.makepyfile(test_filter=TESTS)
    return pytester


def test_option_is_registered_by_its_own_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--bpf-cov*PATH*"])


def test_bpf_cov_sums_lines_over_the_session_into_lcov(project: pytest.Pytester) -> None:
    result = project.runpytest("--bpf-cov", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*BPF coverage*", "*xdp_filter.c*13*13*100.0%*10*6*",
                                 "lcov report written to*bpf-coverage.lcov"])
    text = (project.path / "bpf-coverage.lcov").read_text()
    assert text.startswith("TN:\nSF:/") and "/xdp_filter.c\n" in text
    assert "DA:47,1\n" in text and "DA:27,2\n" in text and "LH:13\n" in text


def test_bpf_cov_with_an_xml_path_writes_cobertura(project: pytest.Pytester) -> None:
    result = project.runpytest("--bpf-cov=out/cov.xml", "-k", "passed")
    result.assert_outcomes(passed=1, deselected=1)
    report = project.path / "out" / "cov.xml"
    assert report.read_text().startswith('<?xml version="1.0" ?>\n<coverage line-rate="0.8462"')


def test_without_the_option_nothing_is_collected(project: pytest.Pytester) -> None:
    result = project.runpytest()
    result.assert_outcomes(passed=2)
    assert "BPF coverage" not in result.stdout.str()
    assert not (project.path / "bpf-coverage.lcov").exists()


def test_bpf_cov_under_xdist_merges_the_workers(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = project.runpytest("--bpf-cov", "-n", "2")
    result.assert_outcomes(passed=2)
    text = (project.path / "bpf-coverage.lcov").read_text()
    assert "DA:47,1\n" in text and "DA:27,2\n" in text
