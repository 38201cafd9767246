"""``pytest --bpf-cov[=PATH]``: coverage of BPF C code summed over a test session.

Every BPF program any test runs (through PROG_TEST_RUN, ``Program.run`` or an
attached hook, in any runtime) is counted by :func:`pyebpf.coverage.collect`;
at the end of the session the source lines and branches executed are written
to PATH (default ``bpf-coverage.lcov``): an lcov tracefile, or a Cobertura
XML report when PATH ends in ``.xml``, or a coverage.py data file when its
name starts with ``.coverage`` (that needs coverage.py installed). The
terminal summary shows a table per source file. Programs need BTF line info
(objects built with ``clang -g``) to have lines to report.

Under pytest-xdist each worker collects its own counts and sends them to the
controller, which adds them up and writes the one report.

A separate entry point from :mod:`pyebpf.testing.plugin`, and as cheap to
load: nothing of pyebpf is imported unless ``--bpf-cov`` is given.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

import pytest

DEFAULT_PATH = "bpf-coverage.lcov"
_WORKER_KEY = "pyebpf_bpf_cov"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyebpf", "pyebpf: BPF programs in Python")
    group.addoption(
        "--bpf-cov", action="store", nargs="?", const=DEFAULT_PATH, default=None,
        dest="bpf_cov", metavar="PATH",
        help=f"measure coverage of BPF C code run by the tests; write it to PATH "
             f"(default {DEFAULT_PATH}; .xml: Cobertura; .coverage*: coverage.py data)")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("bpf_cov", None)
    if path:
        config.pluginmanager.register(BpfCoverage(config, path), "pyebpf-bpf-cov")


class BpfCoverage:
    """The session's collection: started at session start, written at its end."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        from pyebpf.coverage import Coverage

        self.config = config
        self.path = os.path.abspath(path)
        self.coverage = Coverage()
        self.written: str | None = None
        self._stack = ExitStack()

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from pyebpf.coverage import collect

        self._stack.enter_context(collect(self.coverage))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._stack.close()
        if self.is_worker:  # the controller writes the report
            self.config.workeroutput[_WORKER_KEY] = self.coverage.to_dict()  # type: ignore[attr-defined]
            return
        self.written = self.coverage.write(self.path)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """pytest-xdist: a worker finished; add its counts."""
        data = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
        if data is not None:
            from pyebpf.coverage import Coverage

            self.coverage.merge(Coverage.from_dict(data))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        tr = terminalreporter
        tr.write_sep("-", "BPF coverage")
        if not self.coverage.files():
            tr.write_line("no BPF source lines ran (programs need BTF line info: clang -g)")
        else:
            tr.write_line(self.coverage.summary())
        if self.written is not None:
            tr.write_line(f"{self.written} report written to {self.path}")
