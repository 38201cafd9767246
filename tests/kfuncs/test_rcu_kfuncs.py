"""bpf_rcu_read_lock / bpf_rcu_read_unlock: the verifier's RCU read section rules.

Expected lines are Linux 6.18's for the same bytes (XDP programs); the
``kernel`` test checks them against the running kernel.
"""

from __future__ import annotations

import pytest

from pyebpf.isa.insn import Insn as I
from pyebpf.kfuncs.rcu import BTF_ID_LOCK, BTF_ID_UNLOCK
from pyebpf.uapi import ProgType

from ._load import load

X = [I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)]
LOCK, UNLOCK = I(0x85, 0, 2, 0, BTF_ID_LOCK), I(0x85, 0, 2, 0, BTF_ID_UNLOCK)

CASES: dict[str, tuple[list[I], str | None]] = {
    "lock_unlock": ([LOCK, UNLOCK, *X], None),
    "nested": ([LOCK, LOCK, UNLOCK, UNLOCK, *X],
               "nested rcu read lock (kernel function bpf_rcu_read_lock)"),
    "unmatched_unlock": ([UNLOCK, *X],
                         "unmatched rcu read unlock (kernel function bpf_rcu_read_unlock)"),
    "exit_inside": ([LOCK, *X], "BPF_EXIT instruction in main prog cannot be used inside "
                    "bpf_rcu_read_lock-ed region"),
    "helper_inside": ([LOCK, I(0x85, 0, 0, 0, 5), UNLOCK, *X], None),
    "subprogram_inside": ([LOCK, I(0x85, 0, 1, 0, 3), UNLOCK, *X, *X], None),
    "unlock_on_one_path_only": ([I(0x85, 0, 0, 0, 7), I(0xBF, 6, 0, 0, 0), LOCK,
                                 I(0x15, 6, 0, 1, 0), UNLOCK, *X],
                                "BPF_EXIT instruction in main prog cannot be used inside "
                                "bpf_rcu_read_lock-ed region"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_and_message(name: str) -> None:
    prog, expected = CASES[name]
    r = load(prog, prog_type=ProgType.XDP)
    assert (None if r.accepted else r.error_line) == expected


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_agrees(name: str) -> None:
    from ._kprog import kernel_kfunc_id, kernel_load

    if kernel_kfunc_id("bpf_rcu_read_lock") is None:
        pytest.skip("no vmlinux BTF")
    prog, expected = CASES[name]
    r = kernel_load(prog, prog_type=ProgType.XDP)
    assert (None if r.accepted else r.error_line) == expected
