"""BPF_PROG_TYPE_TRACING: programs typed by the kernel BTF function they attach to.

The kernel has one program type for fentry/fexit/fmod_ret, BTF raw
tracepoints and BPF iterators; what the ctx is depends on the expected
attach type and the function ``attach_btf_id`` names (btf_ctx_access). The
attach types pyebpf simulates are in :data:`TRACING_ATTACH`:

- BPF_TRACE_ITER (``SEC("iter/<target>")``): ``attach_btf_id`` is the kernel
  BTF function ``bpf_iter_<target>``; the ctx is ``struct bpf_iter__<target>``
  (``meta``, then the target's object pointers, see
  :mod:`pyebpf.links.iter`); programs return 0 or 1 and run when an iterator
  fd is read. Their BPF_PROG_TEST_RUN is ENOTSUPP, as in the kernel.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from ..uapi import AttachType, ProgType
from . import ProgTypeOps, register_prog_type

__all__ = ["TRACING_ATTACH", "check_tracing_btf_id", "tracing_is_valid_access"]


def _iter_check(v: Any) -> None:
    """bpf_check_attach_target for iterators: attach_btf_id names a ``bpf_iter_<target>``
    function whose target pyebpf simulates (bpf_iter_prog_supported)."""
    from ..links.iter import target_of_btf_id

    btf_id = v.prog.attach_btf_id
    if target_of_btf_id(btf_id) is None:
        v.fail(errno.EINVAL, f"attach_btf_id {btf_id} is not an iterator target function "
               "(bpf_iter_<target>) of the kernel BTF")


def _iter_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    from ..links.iter import target_of_btf_id

    target = target_of_btf_id(prog.attach_btf_id)
    if target is None:
        return None
    return target.ctx_access(off, size, write)


#: expected_attach_type -> (the verifier's attach check, ctx access).
TRACING_ATTACH: dict[int, tuple[Callable[[Any], None],
                                Callable[[int, int, bool, Any], int | None]]] = {
    AttachType.TRACE_ITER: (_iter_check, _iter_access),
}


def check_tracing_btf_id(v: Any) -> None:
    """check_attach_btf_id for TRACING, after the sleepable rule: a btf_id is
    required, and the attach type's own check (attach types pyebpf doesn't
    simulate are refused here, EINVAL)."""
    if not v.prog.attach_btf_id:
        v.fail(errno.EINVAL, "Tracing programs must provide btf_id")
    entry = TRACING_ATTACH.get(v.prog.expected_attach_type)
    if entry is None:
        v.fail(errno.EINVAL, f"tracing programs with expected_attach_type "
               f"{v.prog.expected_attach_type} are not simulated by pyebpf")
        return
    entry[0](v)


def tracing_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    entry = TRACING_ATTACH.get(prog.expected_attach_type)
    return entry[1](off, size, write, prog) if entry is not None else None


register_prog_type(ProgTypeOps(ProgType.TRACING, is_valid_access=tracing_is_valid_access))
