"""The object ``pyebpf demo`` loads: ``examples/xdp_counter.c``, compiled by clang.

Shipped inside the package so the demo runs after a plain ``pip install``;
``examples/build.sh`` rebuilds it from the C source.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["XDP_COUNTER"]

#: Path of the compiled XDP packet counter (maps ``counts`` and ``bytes``).
XDP_COUNTER = Path(__file__).resolve().parent / "xdp_counter.o"
