"""Fixtures of the helper tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers._build import PyBackend  # tests/ is on sys.path


@pytest.fixture
def py() -> Iterator[PyBackend]:
    """A pyebpf backend (a fresh Runtime) for one test, closed afterwards."""
    be = PyBackend()
    try:
        yield be
    finally:
        be.close()
