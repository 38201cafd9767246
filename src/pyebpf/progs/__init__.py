"""Program types: one module per family, each registering :class:`ProgTypeOps`.

A program type is what the kernel's ``bpf_verifier_ops`` and ``bpf_prog_ops``
say about it: the ctx struct the program sees (a :class:`~.ctx.CtxLayout`),
which expected attach types it may be loaded with, and how BPF_PROG_TEST_RUN
runs it (None: the kernel can't test-run it, ENOTSUPP). The verifier reads the
same records.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .._families import import_families
from ..errors import BpfError
from ..uapi import ProgType

if TYPE_CHECKING:
    from .ctx import CtxLayout

__all__ = ["PROG_TYPES", "ProgTypeOps", "prog_type_ops", "register_prog_type"]


def _no_attach_rules(attr: Any) -> None:
    """Most types ignore expected_attach_type (bpf_prog_load_check_attach's default)."""


@attrs.frozen
class ProgTypeOps:
    prog_type: ProgType
    #: The user-visible ctx struct (None: the type's ctx is not a fixed struct).
    ctx: CtxLayout | None = None
    #: (runtime, prog, TestRunAttr) -> TestRunResult; None: ENOTSUPP.
    test_run: Callable[..., Any] | None = None
    #: Checks expected_attach_type at load (EINVAL when not allowed).
    check_attach: Callable[[Any], None] = _no_attach_rules
    #: The kernel's ``is_valid_access``: ``(off, size, write, prog) -> type``
    #: of the value a load gives (a RegType value, possibly with
    #: PTR_MAYBE_NULL), or None when the access is invalid. None here: derive
    #: it from ``ctx`` (readable/writable fields; pointer fields by name).
    is_valid_access: Callable[[int, int, bool, Any], int | None] | None = None
    #: Allowed return values of the program (check_return_code), or None.
    retval_range: tuple[int, int] | None = None


#: ProgType -> its ops.
PROG_TYPES: dict[ProgType, ProgTypeOps] = {}

#: Modules defining program type families (each registers its types on import).
_FAMILIES = ("xdp", "skb", "tracing", "sock", "cgroup", "syscall_prog", "flow_dissector",
             "struct_ops", "ext", "tracing_btf", "netfilter", "lirc")


def register_prog_type(ops: ProgTypeOps) -> ProgTypeOps:
    PROG_TYPES[ops.prog_type] = ops
    return ops


def prog_type_ops(prog_type: int) -> ProgTypeOps | None:
    """The ops of a program type, or None if pyebpf doesn't know it."""
    import_families(__name__, _FAMILIES)
    try:
        return PROG_TYPES.get(ProgType(prog_type))
    except ValueError:
        return None


def attach_types_only(*allowed: int) -> Callable[[Any], None]:
    """A check_attach accepting only the listed expected_attach_type values."""

    def check(attr: Any) -> None:
        if attr.expected_attach_type not in allowed:
            raise BpfError(errno.EINVAL, f"expected_attach_type {attr.expected_attach_type} "
                           "is not valid for this program type")

    return check
