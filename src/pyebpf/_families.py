"""Lazy loading of the modules that fill a registry (map, program-type and helper families).

Each family module registers what it implements when imported; a registry's
lookup imports them on first use, which keeps ``import pyebpf`` cheap and free
of import cycles.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

__all__ = ["import_families"]

#: Package name -> the package module whose registry was filled. Keyed by the module
#: object, not only the name: a package imported afresh (pytester's in-process runs
#: restore sys.modules, importlib.reload) has an empty registry to fill again.
_done: dict[str, object] = {}


def import_families(package: str, families: Iterable[str]) -> None:
    """Import ``package.<family>`` for each family, once per package module."""
    module = sys.modules.get(package)
    if module is not None and _done.get(package) is module:
        return
    for family in families:
        importlib.import_module(f"{package}.{family}")
    _done[package] = sys.modules.get(package)
