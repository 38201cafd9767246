"""The pyebpf pytest plugin (entry point ``pytest11``: loaded once pyebpf is installed).

Fixtures:

``bpf_runtime``
    A fresh :class:`~pyebpf.Runtime` per test with fixed settings (clock,
    prandom seed, pid/tgid/uid/gid/comm, CPU count and current CPU: see
    :data:`pyebpf.testing.cases.DEFAULT_SETTINGS`), every fd closed after the
    test. ``@pytest.mark.bpf_runtime(seed=7, nr_cpus=4, pid=1)`` overrides.
``load_bpf_object``
    ``load_bpf_object("prog.o", **load_object_options)`` loads an object into
    ``bpf_runtime`` and closes it after the test. A relative path is looked up
    next to the test file first.
``run_case``
    ``run_case(collection, packet, maps={...}, ctx={...}, program=None)`` ->
    :class:`~pyebpf.testing.cases.CaseResult` (retval, packet, maps):
    seeds the maps, test-runs the program, reads every map back.
``assert_rejected``
    :func:`pyebpf.testing.assert_rejected` on ``bpf_runtime``.

Differential mode: with ``--bpf-kernel``, tests marked ``@pytest.mark.bpf_kernel``
also run every ``run_case`` and ``assert_rejected`` on the real kernel (where
this process may call ``bpf()``) and fail on any difference. Their runtime
then has as many CPUs as the kernel (per-CPU map values must line up). Where
``bpf()`` is not permitted they run on pyebpf alone; the session header says so.

This module is imported into every pytest session of an environment with
pyebpf installed, so it imports nothing of pyebpf until a fixture is used, and
keeps no state outside the test that uses a fixture: one runtime per test and
per worker under pytest-xdist, nothing shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["assert_rejected", "bpf_kernel_mode", "bpf_runtime", "load_bpf_object", "run_case"]

KERNEL_OPTION = "--bpf-kernel"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyebpf", "pyebpf: BPF programs under test")
    group.addoption(KERNEL_OPTION, action="store_true", default=False,
                    help="differential mode: run tests marked bpf_kernel on the real kernel "
                         "too (where bpf() is permitted) and fail on any difference")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bpf_kernel: with --bpf-kernel, run_case and assert_rejected also run on "
                   "the real kernel and must agree with pyebpf")
    config.addinivalue_line(
        "markers", "bpf_runtime(**settings): settings of the bpf_runtime fixture (nr_cpus, cpu, "
                   "seed, clock_ns, clock_step_ns, pid, tgid, uid, gid, comm, privileged, "
                   "verifier)")


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption(KERNEL_OPTION):
        return None
    from .kernel import kernel_available

    if kernel_available():
        return "pyebpf: --bpf-kernel: bpf_kernel tests also run on the kernel"
    return ("pyebpf: --bpf-kernel: the kernel's bpf() is not available here; bpf_kernel "
            "tests run on pyebpf only")


@pytest.fixture
def bpf_kernel_mode(request: pytest.FixtureRequest) -> bool:
    """Whether this test runs on the kernel too (``--bpf-kernel``, the ``bpf_kernel``
    marker, and a kernel that permits ``bpf()``)."""
    if not request.config.getoption(KERNEL_OPTION):
        return False
    if request.node.get_closest_marker("bpf_kernel") is None:
        return False
    from .kernel import kernel_available

    return kernel_available()


@pytest.fixture
def bpf_runtime(request: pytest.FixtureRequest, bpf_kernel_mode: bool) -> Iterator[Any]:
    """A fresh deterministic Runtime for this test (settings: the bpf_runtime marker)."""
    from .cases import make_runtime

    settings: dict[str, Any] = {}
    if bpf_kernel_mode:
        from .kernel import possible_cpus

        settings["nr_cpus"] = possible_cpus()
    for mark in reversed(list(request.node.iter_markers("bpf_runtime"))):
        if mark.args:
            raise pytest.UsageError("@pytest.mark.bpf_runtime takes keyword settings only")
        settings.update(mark.kwargs)
    try:
        rt = make_runtime(**settings)
    except (TypeError, ValueError) as e:
        raise pytest.UsageError(f"{request.node.nodeid}: bpf_runtime: {e}") from None
    yield rt
    rt.close_all()


@pytest.fixture
def load_bpf_object(request: pytest.FixtureRequest, bpf_runtime: Any) -> Iterator[
        Callable[..., Any]]:
    """``load_bpf_object(path, **options)`` -> a Collection in ``bpf_runtime``,
    closed after the test (options as :func:`pyebpf.load_object`)."""
    from ..collection import load_object

    loaded: list[Any] = []
    here = os.path.dirname(str(request.node.path))

    def load(source: Any, **options: Any) -> Any:
        if isinstance(source, str | os.PathLike) and not os.path.isabs(source):
            beside = os.path.join(here, source)
            if os.path.exists(beside):
                source = beside
        coll = load_object(source, runtime=bpf_runtime, **options)
        loaded.append(coll)
        return coll

    yield load
    for coll in reversed(loaded):
        coll.close()


@pytest.fixture
def run_case(bpf_kernel_mode: bool) -> Iterator[Callable[..., Any]]:
    """``run_case(target, packet, maps=..., ctx=..., program=...)`` -> CaseResult;
    in differential mode also on the kernel, failing on any difference."""
    from .cases import CaseRunner

    runner = CaseRunner(kernel=bpf_kernel_mode)
    try:
        yield runner.run
    finally:
        runner.close()


@pytest.fixture
def assert_rejected(bpf_kernel_mode: bool, bpf_runtime: Any) -> Callable[..., Any]:
    """:func:`pyebpf.testing.assert_rejected`, on ``bpf_runtime`` and, in differential
    mode, on the kernel too."""
    from .rejection import assert_rejected as check

    def run(prog: Any, match: Any = None, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        kwargs.setdefault("runtime", bpf_runtime)
        kwargs.setdefault("kernel", bpf_kernel_mode)
        return check(prog, match, **kwargs)

    return run
