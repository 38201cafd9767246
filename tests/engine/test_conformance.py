"""The public bpf_conformance suite: every file gives its expected r0.

Runs all of ``../shared/conformance/tests`` when that folder exists (313
files), and always the handful copied into ``tests/data/conformance``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyebpf.conformance import load_data_file, program_bytes
from pyebpf.engine import Vm

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "conformance" / "tests"
LOCAL = ROOT / "tests" / "data" / "conformance"


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.data")) if folder.is_dir() else []


def _run(path: Path) -> None:
    case = load_data_file(path)
    vm = Vm(program_bytes(case))
    r0 = vm.run(case.mem)
    assert case.result is not None, "every suite file states a result"
    assert r0 == case.result, f"{path.name}: r0 = {r0:#x}, expected {case.result:#x}"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/conformance is not present")
@pytest.mark.parametrize("path", _files(SHARED), ids=lambda p: p.stem)
def test_shared_conformance_file(path: Path) -> None:
    _run(path)


def test_shared_suite_is_complete_when_present() -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared/conformance is not present")
    assert len(_files(SHARED)) == 313


@pytest.mark.parametrize("path", _files(LOCAL), ids=lambda p: p.stem)
def test_local_conformance_file(path: Path) -> None:
    _run(path)
