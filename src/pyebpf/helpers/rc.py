"""Remote-control helpers of LIRC_MODE2 decoders (drivers/media/rc/bpf-lirc.c).

``bpf_rc_keydown(ctx, protocol, scancode, toggle)``, ``bpf_rc_repeat(ctx)`` and
``bpf_rc_pointer_rel(ctx, rel_x, rel_y)`` report what a decoder made of the
samples: the device is found from the ctx pointer (the kernel's container_of
from ``&raw->bpf_sample``) and records the event
(:class:`pyebpf.progs.lirc.RcEvent`). All three are GPL-only, take the ctx
first, return 0.

LIRC_MODE2's get_func_proto is a closed list (lirc_mode2_func_proto): these
three, the map helpers (lookup, update, delete, push, pop, peek),
ktime_get_ns, ktime_get_boot_ns, tail_call, get_prandom_u32, and trace_printk
for CAP_PERFMON; nothing else of bpf_base_func_proto. :data:`LIRC_MODE2_HELPERS`
records the list in :data:`pyebpf.helpers.CLOSED_TABLES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..uapi import FuncId, ProgType
from . import CLOSED_TABLES, register_helper
from ._util import M32, ctx_object
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..progs.lirc import LircDevice

A = ArgType
_LIRC = (int(ProgType.LIRC_MODE2),)

#: Every helper lirc_mode2_func_proto offers.
LIRC_MODE2_HELPERS = frozenset(int(f) for f in (
    FuncId.rc_repeat, FuncId.rc_keydown, FuncId.rc_pointer_rel, FuncId.map_lookup_elem,
    FuncId.map_update_elem, FuncId.map_delete_elem,
    FuncId.map_push_elem, FuncId.map_pop_elem, FuncId.map_peek_elem, FuncId.ktime_get_ns,
    FuncId.ktime_get_boot_ns, FuncId.tail_call, FuncId.get_prandom_u32,
    FuncId.trace_printk))
CLOSED_TABLES[int(ProgType.LIRC_MODE2)] = LIRC_MODE2_HELPERS


def _device(vm: Vm, ctx: int) -> LircDevice:
    from ..progs.lirc import LircDevice

    return ctx_object(vm, ctx, LircDevice, "lirc_mode2 sample")


def _s32(value: int) -> int:
    value &= M32
    return value - (1 << 32) if value & 0x8000_0000 else value


@register_helper(FuncId.rc_repeat, "rc_repeat",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX,), gpl_only=True),
                 prog_types=_LIRC)
def rc_repeat(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    _device(vm, r1).repeat()
    return 0


@register_helper(FuncId.rc_keydown, "rc_keydown",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING,
                                             A.ARG_ANYTHING), gpl_only=True),
                 prog_types=_LIRC)
def rc_keydown(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """rc_keydown(dev, protocol (u32), scancode (u64), toggle (u32) != 0)."""
    _device(vm, r1).keydown(r2 & M32, r3, r4 & M32)
    return 0


@register_helper(FuncId.rc_pointer_rel, "rc_pointer_rel",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING),
                       gpl_only=True),
                 prog_types=_LIRC)
def rc_pointer_rel(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """input_report_rel(REL_X, rel_x), (REL_Y, rel_y), input_sync: s32 moves."""
    _device(vm, r1).pointer_rel(_s32(r2), _s32(r3))
    return 0
