"""bpf_iter_num_{new,next,destroy}: the engine side of the iterator contract."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Vm
from pyebpf.isa.insn import Insn as I
from pyebpf.kfuncs import KF, default_kfuncs, kfunc_by_id, kfunc_by_name
from pyebpf.kfuncs.iter_num import BPF_MAX_LOOPS, BTF_ID_NEW, BTF_ID_NEXT

from ._progs import EXIT0, destroy, new, nxt, repeat, sum_range


def run(prog: list[I]) -> int:
    return Vm(prog, kfuncs=default_kfuncs()).run() & 0xFFFF_FFFF


def test_table_has_the_kernel_flags_and_ids() -> None:
    new_ = kfunc_by_name("bpf_iter_num_new")
    next_ = kfunc_by_name("bpf_iter_num_next")
    assert new_ is not None and next_ is not None
    assert new_.btf_id == BTF_ID_NEW and kfunc_by_id(BTF_ID_NEXT) is next_
    assert new_.flags == KF.ITER_NEW
    assert next_.flags == KF.ITER_NEXT | KF.RET_NULL and next_.ret_size == 4
    assert new_.prog_types is None  # a common kfunc: every program type


@pytest.mark.parametrize(("start", "end", "total"), [(0, 10, 45), (-3, 3, -3), (5, 5, 0)])
def test_next_yields_start_to_end_exclusive(start: int, end: int, total: int) -> None:
    assert run(sum_range(start, end)) == total & 0xFFFF_FFFF


@pytest.mark.parametrize("n", [0, 1, 7])
def test_repeat_runs_the_body_n_times(n: int) -> None:
    assert run(repeat(n)) == 2 * n


def test_new_with_start_after_end_is_einval_and_empty() -> None:
    # r0 of new(5, 2) is returned; the iterator then yields nothing.
    prog = [*new(5, 2), I(0xBF, 6, 0, 0, 0), *nxt(), I(0xBF, 7, 0, 0, 0), *destroy(),
            I(0x4F, 6, 7, 0, 0), I(0xBF, 0, 6, 0, 0), I(0x95, 0, 0, 0, 0)]
    assert run(prog) == -errno.EINVAL & 0xFFFF_FFFF


def test_new_with_too_many_elements_is_e2big() -> None:
    prog = [*new(0, BPF_MAX_LOOPS + 1), I(0xBF, 6, 0, 0, 0), *destroy(), I(0xBF, 0, 6, 0, 0),
            I(0x95, 0, 0, 0, 0)]
    assert run(prog) == -errno.E2BIG & 0xFFFF_FFFF


def test_next_keeps_returning_null_after_the_end() -> None:
    # new(0, 1); next -> &cur; next -> NULL; next -> NULL: r0 = the three results OR-ed
    # as booleans (1, 0, 0) -> 0b100.
    def flag(bit: int) -> list[I]:
        return [I(0x15, 0, 0, 1, 0), I(0x47, 6, 0, 0, bit)]

    prog = [*new(0, 1), I(0xB7, 6, 0, 0, 0), *nxt(), *flag(4), *nxt(), *flag(2), *nxt(),
            *flag(1), *destroy(), I(0xBF, 0, 6, 0, 0), I(0x95, 0, 0, 0, 0)]
    assert run(prog) == 4


def test_next_points_at_the_current_value_inside_the_iterator() -> None:
    # The pointer next returns is the iterator's own first word (fp-8).
    prog = [*new(7, 9), *nxt(), I(0xBF, 6, 0, 0, 0), I(0xBF, 7, 10, 0, 0), I(0x07, 7, 0, 0, -8),
            *destroy(), I(0xBF, 0, 6, 0, 0), I(0x1F, 0, 7, 0, 0), I(0x95, 0, 0, 0, 0)]
    assert run(prog) == 0


def test_destroy_clears_the_iterator() -> None:
    prog = [*new(1, 9), *nxt(), *destroy(), I(0x79, 0, 10, -8, 0), I(0x95, 0, 0, 0, 0)]
    assert run(prog) == 0


def test_exit_constant_program_needs_no_kfuncs() -> None:
    assert run(EXIT0) == 0
