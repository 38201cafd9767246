"""The helper table: one entry per kernel helper id, read by engine and verifier.

A helper implementation is called as ``impl(vm, r1, r2, r3, r4, r5)`` with the
argument registers as unsigned 64-bit integers and the running :class:`Vm` (its
memory, clock, tail-call counter). It returns the new r0, or ``None`` to leave
r0 as it was (what the kernel's interpreter does for a failed tail call).
Helper families live in submodules that register into :data:`HELPERS` when
imported; :func:`default_helpers` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

__all__ = ["HELPERS", "Helper", "HelperImpl", "default_helpers", "register_helper"]

HelperImpl = Callable[["Vm", int, int, int, int, int], "int | None"]


@attrs.frozen
class Helper:
    """A helper's identity and implementation (prototypes join it with the verifier)."""

    func_id: int
    name: str
    impl: HelperImpl


#: func_id -> Helper, filled by the helper modules as they are imported.
HELPERS: dict[int, Helper] = {}


def register_helper(func_id: int, name: str) -> Callable[[HelperImpl], HelperImpl]:
    """Decorator adding an implementation to :data:`HELPERS` under ``func_id``."""

    def deco(impl: HelperImpl) -> HelperImpl:
        HELPERS[func_id] = Helper(func_id, name, impl)
        return impl

    return deco


def default_helpers() -> dict[int, Any]:
    """``func_id -> impl`` for every helper pyebpf implements."""
    from . import time as _time  # noqa: F401  (registers on import)

    return {h.func_id: h.impl for h in HELPERS.values()}
