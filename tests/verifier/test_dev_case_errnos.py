"""The errno of every rejection in the kernel's own selftests
(../shared/verifier-cases/dev.jsonl) against the 6.18 kernel's: the verdicts
and messages are scored elsewhere (test_dev_cases.py); this pins the errno
PROG_LOAD fails with, which differs by cause (EACCES, EINVAL, E2BIG ...)."""

from __future__ import annotations

import re

import pytest

from pyebpf.runtime import Runtime
from pyebpf.testing.kernel_cases import verify_case

from .test_dev_cases import DEV, _cases, _input

#: Cases whose errno differs for a reason outside the verifier: the selftests
#: use fd 0 and 1 as "not a map", which in the kernel's test process are
#: stdin/stdout (EINVAL: not a map) and in a pyebpf Runtime are no fd (EBADF).
NOT_A_MAP_FDS = {"cgroup_storage/invalid cgroup storage access 2", "ld_imm64/test12 ld_imm64",
                 "map_ret_val/invalid map_fd for function call"}
#: Known disagreements of other parts (the message differs too).
KNOWN = {"ctx/pass ctx or null check, 3: 1", "ctx/pass ctx or null check, 8: null (bind)"}


@pytest.mark.skipif(not DEV.is_file(), reason="../shared/verifier-cases is not present")
def test_rejections_fail_with_the_kernels_errno(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Runtime, "default_verifier", "kernel")
    wrong = []
    for case in _cases():
        if case["kernel_verdict"] != "reject" or case["id"] in NOT_A_MAP_FDS | KNOWN:
            continue
        answer = verify_case(_input(case, False))
        got = re.findall(r"\[(E[A-Z0-9]+)\]", answer["message"])
        if answer["verdict"] == "reject" and got and got[-1] != case["kernel_errno"]:
            wrong.append((case["id"], got[-1], case["kernel_errno"]))
    assert not wrong
