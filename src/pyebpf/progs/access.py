"""Small pieces the program types' ``is_valid_access`` functions share.

The kernel's ctx access checks (``*_is_valid_access`` in net/core/filter.c,
kernel/trace/bpf_trace.c, kernel/bpf/cgroup.c) are written with a few macros;
these are their Python forms, plus a builder that lays out a uapi struct's
fields one after another as the C compiler does.
"""

from __future__ import annotations

from collections.abc import Iterable

from .ctx import CtxField, CtxLayout

__all__ = ["SCALAR", "layout", "narrow_access_ok", "wide_access_ok"]

#: What a valid scalar ctx access yields (RegType.SCALAR_VALUE).
SCALAR = 1


def narrow_access_ok(off: int, size: int, size_default: int) -> bool:
    """bpf_ctx_narrow_access_ok: a power-of-two size no wider than the field."""
    return size <= size_default and (size & (size - 1)) == 0


def wide_access_ok(off: int, size: int, start: int, end: int) -> bool:
    """bpf_ctx_wide_access_ok: an aligned 8-byte access inside [start, end)."""
    return size == 8 and off >= start and off + 8 <= end and off % 8 == 0


def layout(name: str, spec: Iterable[tuple[str, int] | tuple[str, int, dict]],
           size: int | None = None) -> CtxLayout:
    """A CtxLayout from ``(field, size[, CtxField options])`` in declaration order.

    Fields are placed at the next offset aligned to their size (at most 8), as
    C does for the integer members of these structs; ``("", n)`` is padding.
    The struct's size is rounded up to its largest member unless given.
    """
    off = 0
    biggest = 1
    fields = []
    for entry in spec:
        fname, fsize = entry[0], entry[1]
        opts = dict(entry[2]) if len(entry) > 2 else {}  # type: ignore[misc]
        align = opts.pop("align", min(fsize, 8) if fname else 1)
        off = (off + align - 1) // align * align
        biggest = max(biggest, align)
        if fname:
            fields.append(CtxField(fname, off, fsize, **opts))
        off += fsize
    total = size if size is not None else (off + biggest - 1) // biggest * biggest
    return CtxLayout(name, total, fields)
