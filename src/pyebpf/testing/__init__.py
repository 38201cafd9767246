"""Helpers for testing BPF code and pyebpf itself.

- :mod:`pyebpf.testing.kernel`: the real kernel's ``bpf()`` as a test oracle,
  taking the same attr records as :func:`pyebpf.bpf` (Linux, privileged).
- :mod:`pyebpf.testing.plugin`: the pytest plugin (fixtures ``bpf_runtime``,
  ``load_bpf_object``, ``run_case``, ``assert_rejected``; ``--bpf-kernel``).
- :mod:`pyebpf.testing.cases`: (packet, initial maps) -> (retval, packet,
  final maps), on pyebpf and optionally the kernel; :mod:`.layout`: map keys
  and values as Python values by their BTF; :mod:`.rejection`: verifier
  rejection assertions; :mod:`.packets` and :mod:`.strategies`: test inputs.

The names below are imported on first use, so that ``import pyebpf.testing``
(which the pytest plugin's import implies) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule defining it.
_LAZY = {
    "CaseMismatch": "cases",
    "CaseResult": "cases",
    "CaseRunner": "cases",
    "make_runtime": "cases",
    "read_maps": "cases",
    "run_case": "cases",
    "seed_maps": "cases",
    "Rejection": "rejection",
    "assert_rejected": "rejection",
}

__all__: list[str] = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pyebpf.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
