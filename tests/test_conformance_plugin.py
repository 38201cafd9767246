"""``python -m pyebpf.conformance`` speaks the bpf_conformance plugin protocol."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from pyebpf.conformance import load_data_file, main, program_bytes

LOCAL = Path(__file__).resolve().parent / "data" / "conformance"


def _plugin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            program_hex: str, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(program_hex))
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("path", sorted(LOCAL.glob("*.data")), ids=lambda p: p.stem)
def test_plugin_prints_expected_r0_in_hex(path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    case = load_data_file(path)
    status, out, _ = _plugin(monkeypatch, capsys, program_bytes(case).hex(), case.mem.hex())
    assert status == 0
    assert int(out.strip(), 16) == case.result


def test_plugin_without_memory_runs_with_r1_r2_zero(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # r0 = r1 | r2; exit
    status, out, _ = _plugin(monkeypatch, capsys, "bf10000000000000 4f20000000000000 "
                             "9500000000000000")
    assert (status, out) == (0, "0\n")


def test_plugin_reports_a_fault_with_exit_status_1(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # r0 = *(u64 *)(r1 + 0) with r1 = 0: an unmapped read
    status, out, err = _plugin(monkeypatch, capsys, "7910000000000000 9500000000000000")
    assert status == 1 and out == ""
    assert "invalid read of 8 bytes at 0x0" in err


def test_plugin_rejects_non_hex_program(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _plugin(monkeypatch, capsys, "not hex")
    assert status == 1 and "not hex" in err


def test_plugin_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "pyebpf.conformance", "2a00"],
                          input="bf20000000000000 9500000000000000", capture_output=True,
                          text=True, check=False)
    assert (proc.returncode, proc.stdout) == (0, "2\n")
