"""Helpers called from loaded programs, pinned to what Linux 6.18 answers.

Every expectation here was checked on the kernel: the same scenarios run on
both in tests/kernel/test_helpers_differential.py.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from pyebpf import MapType

from . import scenarios as S
from ._build import PyBackend


@pytest.fixture
def be() -> Iterator[PyBackend]:
    backend = PyBackend()
    yield backend
    backend.close()


# -- maps -----------------------------------------------------------------------------------------
def test_hash_update_delete_lookup_return_the_kernels_errnos(be: PyBackend) -> None:
    assert S.hash_update_delete(be) == S.HASH_UPDATE_DELETE


def test_array_update_delete_lookup(be: PyBackend) -> None:
    assert S.array_update_delete(be) == S.ARRAY_UPDATE_DELETE


@pytest.mark.parametrize(("map_type", "expected"), [(MapType.QUEUE, S.QUEUE),
                                                    (MapType.STACK, S.STACK)])
def test_push_pop_peek(be: PyBackend, map_type: MapType, expected: list[int]) -> None:
    assert S.queue_stack(be, map_type) == expected


def test_lookup_percpu_elem_reads_the_given_cpu(be: PyBackend) -> None:
    assert S.percpu_lookup(be, be.nr_cpus) == S.percpu_lookup_expected(be.nr_cpus)


# -- callbacks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", S.LOOP_CASES)
def test_bpf_loop(be: PyBackend, case: str) -> None:
    args, expected = S.LOOP_CASES[case]
    assert S.loop(be, *args) == expected


@pytest.mark.parametrize("case", S.FOR_EACH_CASES)
def test_for_each_map_elem(be: PyBackend, case: str) -> None:
    args, expected = S.FOR_EACH_CASES[case]
    assert S.for_each(be, *args) == expected


# -- printf ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", S.SNPRINTF_CASES)
def test_snprintf_formats(be: PyBackend, case: str) -> None:
    fmt, args, expected = S.SNPRINTF_CASES[case]
    ret, buf = S.snprintf(be, fmt, args)
    assert (ret, buf[: len(expected) + 1]) == (len(expected) + 1, expected + b"\0")


@pytest.mark.parametrize("case", S.INVALID_FORMATS)
def test_snprintf_invalid_formats_are_refused_at_load(be: PyBackend, case: str) -> None:
    """check_bpf_snprintf_call: the constant format is checked by the verifier."""
    from pyebpf.errors import VerifierError
    from pyebpf.helpers.printf import check_format

    fmt, args = S.INVALID_FORMATS[case]
    assert check_format(fmt, len(args)) == -errno.EINVAL
    with pytest.raises(VerifierError) as exc:
        S.snprintf(be, fmt, args)
    assert (exc.value.errno, exc.value.strerror) == (errno.EINVAL, "Invalid format string")


@pytest.mark.parametrize("case", S.INVALID_FORMATS)
def test_snprintf_invalid_formats_are_einval_at_run_time_unverified(case: str) -> None:
    """Without the verifier's check (the structural verifier) the helper's own
    bpf_bprintf_prepare refuses the format: -EINVAL, nothing written."""
    unverified = PyBackend()
    unverified.rt.verifier = "structural"
    try:
        fmt, args = S.INVALID_FORMATS[case]
        ret, buf = S.snprintf(unverified, fmt, args)
    finally:
        unverified.close()
    assert ret == -errno.EINVAL
    assert buf == b"\xaa" * S.OUT_VS  # nothing written


def test_check_format_accepts_the_valid_ones() -> None:
    from pyebpf.helpers.printf import check_format

    for fmt, args, _ in S.SNPRINTF_CASES.values():
        assert check_format(fmt, len(args)) == 0, fmt


def test_snprintf_truncates_and_returns_the_full_length(be: PyBackend) -> None:
    assert S.snprintf_truncation(be) == S.SNPRINTF_TRUNCATION


@pytest.mark.parametrize("case", S.TRACE_PRINTK_CASES)
@pytest.mark.parametrize("vprintk", [False, True], ids=["trace_printk", "trace_vprintk"])
def test_trace_printk_return_values(be: PyBackend, case: str, vprintk: bool) -> None:
    fmt, args, size, expected = S.TRACE_PRINTK_CASES[case]
    assert S.trace_printk(be, fmt, args, size, vprintk=vprintk) == expected


def test_trace_printk_output_is_captured_per_runtime(be: PyBackend) -> None:
    S.trace_printk(be, b"pid %d says %s\n", [7, S.S(128)])
    S.trace_printk(be, b"%d %d %d %d\n", [1, 2, 3])  # -EINVAL: nothing printed
    S.trace_printk(be, "→ %x".encode(), [255], vprintk=True)
    assert be.rt.trace_output == ["pid 7 says hello\n", "→ ff"]
    other = PyBackend()
    assert other.rt.trace_output == []
    other.close()


# -- strings --------------------------------------------------------------------------------------
def test_strtol(be: PyBackend) -> None:
    cases = [c for c, _ in S.STRTOL_CASES]
    assert S.strtox(be, cases, unsigned=False) == [e for _, e in S.STRTOL_CASES]


def test_strtoul(be: PyBackend) -> None:
    cases = [c for c, _ in S.STRTOUL_CASES]
    assert S.strtox(be, cases, unsigned=True) == [e for _, e in S.STRTOUL_CASES]


def test_strncmp(be: PyBackend) -> None:
    cases = [c for c, _ in S.STRNCMP_CASES]
    assert S.strncmp(be, S.STRNCMP_S2, cases) == [e for _, e in S.STRNCMP_CASES]


# -- probe reads ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", S.PROBE_CASES)
def test_probe_read(be: PyBackend, case: str) -> None:
    args, expected = S.PROBE_CASES[case]
    assert S.probe_read(be, *args) == expected


def test_ringbuf_helpers(be: PyBackend) -> None:
    assert S.ringbuf_query(be) == S.RINGBUF_QUERY
