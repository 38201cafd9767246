"""Differential tests against the real kernel's bpf().

Every test marked ``@pytest.mark.kernel`` is skipped cleanly where bpf() is not
permitted (not Linux, no privileges, seccomp...): :func:`kernel_available`
decides once per session.
"""

from __future__ import annotations

import pytest

from pyebpf.testing.kernel import kernel_available


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if kernel_available():
        return
    skip = pytest.mark.skip(reason="the kernel's bpf() is not available here (needs Linux "
                            "and the privilege to create BPF maps)")
    for item in items:
        if item.get_closest_marker("kernel") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _kernel_or_skip(request: pytest.FixtureRequest) -> None:
    """Belt and braces: a kernel test that escaped collection-time skipping skips here."""
    if request.node.get_closest_marker("kernel") is not None and not kernel_available():
        pytest.skip("the kernel's bpf() is not available here")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .harness import STEPS

    if STEPS[0]:
        terminalreporter.write_line(f"kernel differential steps compared: {STEPS[0]}")
