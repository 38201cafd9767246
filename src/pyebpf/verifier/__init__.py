"""The BPF verifier: abstract domain (tnums, scalar bounds), state, and the walk.

Modules so far: :mod:`.tnum` (kernel/bpf/tnum.c) and :mod:`.scalar` (the
scalar bounds of ``bpf_reg_state`` and their transfer functions from
kernel/bpf/verifier.c, with the log's text form).
"""

from __future__ import annotations

import errno
from typing import Any

from ..errors import VerifierError
from .log import VerifierAbort

__all__ = ["verify"]


def verify(runtime: Any, prog: Any, log: Any) -> None:
    """bpf_check: verify ``prog`` for ``runtime``, writing ``log``.

    On success the program's lddw map references are rewritten to the maps'
    addresses and the program holds its maps. On rejection raises
    :class:`~pyebpf.errors.VerifierError` with the kernel's errno, the
    reason (the log's last line) as message, and the log.
    """
    from .check import Verifier

    v = Verifier(runtime, prog, log)
    try:
        v.run()
    except VerifierAbort as abort:
        raise VerifierError(abort.errno, abort.message, log.text) from None
    except RecursionError:  # pragma: no cover - deep recursion is not expected
        raise VerifierError(errno.E2BIG, "program too complex", log.text) from None
    prog.verified_insns = v.insn_processed
    prog.insns = list(v.insns)  # lddw map references rewritten to addresses
    for m in v.used_maps:
        if m not in prog.used_maps:
            m.hold()
            prog.used_maps.append(m)
