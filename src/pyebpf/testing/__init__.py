"""Helpers for testing BPF code and pyebpf itself.

- :mod:`pyebpf.testing.kernel`: the real kernel's ``bpf()`` as a test oracle,
  taking the same attr records as :func:`pyebpf.bpf` (Linux, privileged).
"""

from __future__ import annotations

__all__: list[str] = []
