"""The kprobe a KPROBE program runs for (kprobe_running()): which function was
entered, for ``bpf_get_func_ip`` (its address: :func:`ksym_addr`, the address
bpf_kallsyms_lookup_name and a trampoline's bpf_get_func_ip give too).

:func:`kprobe_running` is installed around each program a kprobe fires
(pyebpf.links.tracing.fire_kprobe). This module registers no helper: the
helpers live with their trampoline versions (pyebpf.helpers.trampoline).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["kprobe_running", "kprobe_running_ip", "ksym_addr"]


def ksym_addr(name: str) -> int | None:
    """The address of kernel function ``name`` in pyebpf's kernel (the vmlinux BTF's
    functions, laid out by pyebpf.progs.tracing_btf.func_ip); None if it has none."""
    from ..btf import BtfKind
    from ..kernel_btf import kernel_btf
    from ..progs.tracing_btf import func_ip

    found = kernel_btf().find(name, BtfKind.FUNC) if name else None
    return func_ip(found.id) if found is not None else None


@contextmanager
def kprobe_running(rt: Runtime, func: str) -> Iterator[None]:
    """The kprobe on ``func`` is running (for the programs run inside)."""
    stack: list[str] = rt.hooks.setdefault("kprobe_running", [])
    stack.append(func)
    try:
        yield
    finally:
        stack.pop()


def kprobe_running_ip(rt: Runtime) -> int:
    """bpf_get_func_ip_kprobe: the running kprobe's function address (at entry), 0
    without one."""
    stack: list[str] = rt.hooks.get("kprobe_running", [])
    return (ksym_addr(stack[-1]) or 0) if stack else 0
