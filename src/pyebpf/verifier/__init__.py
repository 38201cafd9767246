"""The BPF verifier: abstract domain (tnums, scalar bounds), state, and the walk.

Modules so far: :mod:`.tnum` (kernel/bpf/tnum.c) and :mod:`.scalar` (the
scalar bounds of ``bpf_reg_state`` and their transfer functions from
kernel/bpf/verifier.c, with the log's text form).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import VerifierError
from .log import VerifierAbort

__all__ = ["structural", "verify"]


def verify(runtime: Any, prog: Any, log: Any) -> None:
    """bpf_check: verify ``prog`` for ``runtime``, writing ``log``.

    On success the program's lddw map references are rewritten to the maps'
    addresses and the program holds its maps. On rejection raises
    :class:`~pyebpf.errors.VerifierError` with the kernel's errno, the
    reason (the log's last line) as message, and the log.
    """
    from .check import Verifier

    v = Verifier(runtime, prog, log)
    with _rejections(log):
        v.run()
    _finish(v, prog, v.insn_processed)


def structural(runtime: Any, prog: Any, log: Any) -> None:
    """Only the passes the interpreter needs: subprograms, jumps inside them,
    map references, and slots that decode to something. No walk: the program
    may be unsafe, and runs with every memory access still checked."""
    from ..errors import InvalidInsn
    from ..isa.insn import validate
    from .cfg import add_subprogs, check_subprogs, resolve_pseudo_ldimm64
    from .check import Verifier

    v = Verifier(runtime, prog, log)
    with _rejections(log):
        add_subprogs(v)
        check_subprogs(v)
        resolve_pseudo_ldimm64(v)
        try:
            validate(v.insns)
        except InvalidInsn as err:
            v.fail(errno.EINVAL, str(err.strerror))
    log.write("pyebpf: structural checks only (the verifier was not run)\n")
    _finish(v, prog, len(v.insns))


@contextmanager
def _rejections(log: Any) -> Iterator[None]:
    try:
        yield
    except VerifierAbort as abort:
        raise VerifierError(abort.errno, abort.message, log.text) from None
    except RecursionError:  # pragma: no cover - deep recursion is not expected
        raise VerifierError(errno.E2BIG, "program too complex", log.text) from None


def _finish(v: Any, prog: Any, processed: int) -> None:
    """A load passed: keep the rewritten instructions and hold the maps used."""
    prog.verified_insns = processed
    prog.insns = list(v.insns)  # lddw map references rewritten to addresses
    from .mem import probe_mem_insns

    prog.probe_mem_insns = probe_mem_insns(v)  # convert_ctx_accesses' BPF_PROBE_MEM loads
    for m in v.used_maps:
        if m not in prog.used_maps:
            m.hold()
            prog.used_maps.append(m)
