"""``bpf_rcu_read_lock`` / ``bpf_rcu_read_unlock`` (kernel/bpf/helpers.c).

Common kfuncs (every program type) that bracket an RCU read section. The
verifier tracks the section (``active_rcu_lock``): no nesting ("nested rcu
read lock"), no unlock without lock ("unmatched rcu read unlock"), no
sleepable helper or kfunc inside, and no exit or tail call while it is open;
at the unlock, RCU-protected pointers (MEM_RCU) become untrusted. pyebpf's
programs don't run concurrently with writers, so the engine has nothing to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..helpers.proto import RetType
from . import register_kfunc

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

#: BTF ids of the reference 6.18 vmlinux.
BTF_ID_LOCK = 65481
BTF_ID_UNLOCK = 65483


@register_kfunc("bpf_rcu_read_lock", BTF_ID_LOCK, (), RetType.RET_VOID)
def bpf_rcu_read_lock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    """Enter an RCU read section (nothing to do for a single-threaded run)."""


@register_kfunc("bpf_rcu_read_unlock", BTF_ID_UNLOCK, (), RetType.RET_VOID)
def bpf_rcu_read_unlock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    """Leave the RCU read section."""
