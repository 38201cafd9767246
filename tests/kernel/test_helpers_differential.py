"""Helpers and tail calls on pyebpf and on the real kernel: the same programs, the
same answers.

Each scenario of tests/helpers/scenarios.py loads XDP programs that call
helpers, runs them with BPF_PROG_TEST_RUN and returns plain data (retvals, map
contents); here it runs on a fresh pyebpf Runtime and on the kernel, and the
results must be equal. The unit tests (tests/helpers, tests/maps) pin the same
values without a kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from helpers._build import KernelBackend, PyBackend
from pyebpf import BpfError, MapType
from pyebpf.testing.kernel import possible_cpus

pytestmark = pytest.mark.kernel


@pytest.fixture
def pair() -> Iterator[tuple[PyBackend, KernelBackend]]:
    py, k = PyBackend(nr_cpus=possible_cpus()), KernelBackend()
    try:
        yield py, k
    finally:
        py.close()
        k.close()


def same(pair: tuple[PyBackend, KernelBackend], scenario: Callable[..., Any],
         *args: Any) -> Any:
    py, k = pair
    kernel = scenario(k, *args)
    ours = scenario(py, *args)
    assert ours == kernel, f"pyebpf {ours!r} != kernel {kernel!r}"
    return kernel


# -- maps -----------------------------------------------------------------------------------------
def test_hash_update_delete(pair: Any) -> None:
    same(pair, S.hash_update_delete)


def test_array_update_delete(pair: Any) -> None:
    same(pair, S.array_update_delete)


@pytest.mark.parametrize("map_type", [MapType.QUEUE, MapType.STACK])
def test_push_pop_peek(pair: Any, map_type: MapType) -> None:
    same(pair, S.queue_stack, map_type)


def test_lookup_percpu_elem(pair: Any) -> None:
    same(pair, S.percpu_lookup, possible_cpus())


# -- callbacks (the kernel needs BTF func_info for them: KernelBackend provides it) ---------------
@pytest.mark.parametrize("case", S.LOOP_CASES)
def test_bpf_loop(pair: Any, case: str) -> None:
    same(pair, S.loop, *S.LOOP_CASES[case][0])


@pytest.mark.parametrize("case", S.FOR_EACH_CASES)
def test_for_each_map_elem(pair: Any, case: str) -> None:
    same(pair, S.for_each, *S.FOR_EACH_CASES[case][0])


# -- tail calls and program arrays ----------------------------------------------------------------
@pytest.mark.parametrize("length", [34, 35])
def test_tail_call_chain(pair: Any, length: int) -> None:
    assert same(pair, S.tail_chain, length) == (1, 34)


def test_tail_call_misses(pair: Any) -> None:
    same(pair, S.tail_call_misses)


def test_prog_array_syscalls(pair: Any) -> None:
    same(pair, S.prog_array_syscalls)


def test_prog_array_owner_at_load(pair: Any) -> None:
    same(pair, S.prog_array_owner_at_load)


# -- printf ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", S.SNPRINTF_CASES)
def test_snprintf(pair: Any, case: str) -> None:
    fmt, args, _ = S.SNPRINTF_CASES[case]
    same(pair, S.snprintf, fmt, args)


@pytest.mark.parametrize("case", S.INVALID_FORMATS)
def test_snprintf_invalid_format(pair: Any, case: str) -> None:
    """Both refuse these at load (the format is a constant the verifier checks:
    check_bpf_snprintf_call), with the same errno and reason."""
    py, k = pair
    fmt, args = S.INVALID_FORMATS[case]
    with pytest.raises(BpfError) as theirs:
        S.snprintf(k, fmt, args)
    with pytest.raises(BpfError) as ours:
        S.snprintf(py, fmt, args)
    assert ours.value.errno == theirs.value.errno
    assert ours.value.strerror in str(theirs.value.strerror).splitlines()  # the kernel's log


def test_snprintf_truncation(pair: Any) -> None:
    same(pair, S.snprintf_truncation)


@pytest.mark.parametrize("case", S.TRACE_PRINTK_CASES)
@pytest.mark.parametrize("vprintk", [False, True], ids=["trace_printk", "trace_vprintk"])
def test_trace_printk(pair: Any, case: str, vprintk: bool) -> None:
    fmt, args, size, _ = S.TRACE_PRINTK_CASES[case]
    same(pair, S.trace_printk, fmt, args, size, vprintk)


# -- strings and probe reads ----------------------------------------------------------------------
def test_strtol(pair: Any) -> None:
    same(pair, S.strtox, [c for c, _ in S.STRTOL_CASES], False)


def test_strtoul(pair: Any) -> None:
    same(pair, S.strtox, [c for c, _ in S.STRTOUL_CASES], True)


def test_strncmp(pair: Any) -> None:
    same(pair, S.strncmp, S.STRNCMP_S2, [c for c, _ in S.STRNCMP_CASES])


@pytest.mark.parametrize("case", S.PROBE_CASES)
def test_probe_read(pair: Any, case: str) -> None:
    same(pair, S.probe_read, *S.PROBE_CASES[case][0])


# -- ring buffers ---------------------------------------------------------------------------------
def test_ringbuf_helpers(pair: Any) -> None:
    same(pair, S.ringbuf_query)
