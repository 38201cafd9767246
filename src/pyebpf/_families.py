"""Lazy loading of the modules that fill a registry (map, program-type and helper families).

Each family module registers what it implements when imported; a registry's
lookup imports them on first use, which keeps ``import pyebpf`` cheap and free
of import cycles.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

__all__ = ["import_families"]

_done: set[str] = set()


def import_families(package: str, families: Iterable[str]) -> None:
    """Import ``package.<family>`` for each family, once per package."""
    if package in _done:
        return
    for family in families:
        importlib.import_module(f"{package}.{family}")
    _done.add(package)
