"""The iterator programs on pyebpf and on the real kernel: same verdict, errno,
error line and return value."""

from __future__ import annotations

import pytest

from pyebpf.isa.insn import Insn as I

from ._kprog import kernel_kfunc_id, kernel_load
from ._load import load
from ._progs import EXIT0, destroy, kcall, new, nxt, repeat, sum_range

pytestmark = pytest.mark.kernel


def _unchecked_sum() -> list[I]:
    prog = sum_range(0, 10)
    prog[9] = I(0x15, 6, 0, 3, 12345)
    return prog


def _readonly_sum() -> list[I]:
    prog = sum_range(0, 10)
    prog[10] = I(0x62, 0, 0, 0, 1)
    return prog


CASES: dict[str, list[I]] = {
    "destroy_uninit": [*destroy(), *EXIT0],
    "next_uninit": [*nxt(), *EXIT0],
    "double_new": [*new(), *new(), *destroy(), *EXIT0],
    "leak": [*new(), *EXIT0],
    "overwrite_slot": [*new(), I(0x7A, 10, 0, -8, 0), *destroy(), *EXIT0],
    "read_slot": [*new(), I(0x79, 2, 10, -8, 0), *destroy(), *EXIT0],
    "not_stack": [I(0xB7, 1, 0, 0, 0), kcall(64239), *EXIT0],
    "unaligned": [*new()[:1], I(0x07, 1, 0, 0, -12), *new()[2:], *destroy(), *EXIT0],
    "new_destroy": [*new(), *destroy(), *EXIT0],
    "repeat_3": repeat(3),
    "repeat_0": repeat(0),
    "sum_0_10": sum_range(0, 10),
    "sum_neg": sum_range(-5, 3),
    "sum_empty": sum_range(4, 1),
    "null_unchecked": _unchecked_sum(),
    "write_element": _readonly_sum(),
    "use_after_destroy": [*new(), *nxt(), I(0x15, 0, 0, 6, 0), I(0xBF, 6, 0, 0, 0), *destroy(),
                          I(0x61, 0, 6, 0, 0), I(0x95, 0, 0, 0, 0), *destroy(), *EXIT0],
    "not_a_function": [kcall(1), *EXIT0],
    "null_call_reached": [kcall(0), *EXIT0],
    "null_call_unreachable": [I(0xB7, 0, 0, 0, 1), I(0x25, 0, 0, 2, 0), kcall(0), *EXIT0],
}


@pytest.fixture(autouse=True)
def _needs_vmlinux_btf() -> None:
    if kernel_kfunc_id("bpf_iter_num_new") is None:
        pytest.skip("no vmlinux BTF with bpf_iter_num_new on this kernel")


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_verdict_message_and_retval_as_the_kernel(name: str) -> None:
    prog = CASES[name]
    ours = load(prog, run=True) if load(prog).accepted else load(prog)
    theirs = kernel_load(prog, run=ours.accepted)
    assert (ours.accepted, ours.errno) == (theirs.accepted, theirs.errno)
    if not theirs.accepted:
        assert ours.error_line == theirs.error_line
    assert ours.retval == theirs.retval


def test_non_gpl_kfunc_call_is_refused_as_the_kernel_does() -> None:
    prog = [*new(), *destroy(), *EXIT0]
    ours, theirs = load(prog, license="MIT"), kernel_load(prog, license="MIT")
    assert (ours.errno, ours.error_line) == (theirs.errno, theirs.error_line)
