"""The verifier on the kernel's own selftests (../shared/verifier-cases/dev.jsonl).

Each case is loaded with pyebpf's verifier through the real PROG_LOAD path
(pyebpf.testing.kernel_cases) and compared with the 6.18 kernel's verdict
and error line. The floors are what this verifier reaches today; a change
that lowers them is a regression. Raise them as the verifier improves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyebpf.runtime import Runtime
from pyebpf.testing.kernel_cases import verify_case

DEV = Path(__file__).resolve().parents[2].parent / "shared" / "verifier-cases" / "dev.jsonl"
INPUT_FIELDS = ("id", "name", "source_file", "prog_type", "prog_type_id", "expected_attach_type",
                "expected_attach_type_id", "kfunc", "attach_btf_name", "prog_flags", "insns",
                "insn_count", "fixups", "map_specs", "kfunc_fixups", "func_info", "btf",
                "runs_count", "fill_helper")
#: Measured: 940/941 privileged verdicts, 410/421 kernel error lines, 439/439 unprivileged.
VERDICT_FLOOR = 0.99
MESSAGE_FLOOR = 0.96
UNPRIV_VERDICT_FLOOR = 0.995


def _cases() -> list[dict[str, Any]]:
    if not DEV.is_file():
        return []
    return [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]


def _input(case: dict[str, Any], unpriv: bool) -> dict[str, Any]:
    x = {k: case.get(k) for k in INPUT_FIELDS}
    x["runs"] = [{"data": r["data"]} for r in case.get("runs", [])]
    x["unpriv"] = unpriv
    return x


@pytest.fixture
def kernel_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Runtime, "default_verifier", "kernel")


@pytest.mark.skipif(not DEV.is_file(), reason="../shared/verifier-cases is not present")
def test_privileged_verdicts_and_messages_match_the_kernel(kernel_verifier: None) -> None:
    cases = _cases()
    agree = message = rejects = 0
    for case in cases:
        answer = verify_case(_input(case, False))
        agree += answer["verdict"] == case["kernel_verdict"]
        if case["kernel_verdict"] == "reject":
            rejects += 1
            message += bool(case["kernel_error_line"]) and \
                case["kernel_error_line"] in answer["message"]
    assert agree / len(cases) >= VERDICT_FLOOR, f"verdicts {agree}/{len(cases)}"
    assert message / rejects >= MESSAGE_FLOOR, f"error lines {message}/{rejects}"


@pytest.mark.skipif(not DEV.is_file(), reason="../shared/verifier-cases is not present")
def test_unprivileged_verdicts_match_the_kernel(kernel_verifier: None) -> None:
    agree = total = 0
    for case in _cases():
        labels = case.get("kernel_unpriv")
        if not labels or "verdict" not in labels:
            continue
        total += 1
        agree += verify_case(_input(case, True))["verdict"] == labels["verdict"]
    assert agree / total >= UNPRIV_VERDICT_FLOOR, f"verdicts {agree}/{total}"


@pytest.mark.skipif(not DEV.is_file(), reason="../shared/verifier-cases is not present")
def test_no_case_crashes_the_verifier(kernel_verifier: None) -> None:
    crashes = [c["id"] for c in _cases()
               if verify_case(_input(c, False))["message"].startswith("pyebpf internal error")]
    assert crashes == []
