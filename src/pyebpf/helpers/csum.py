"""Checksum helpers: ``bpf_csum_diff``, ``bpf_csum_update``, ``bpf_csum_level``,
``bpf_l3_csum_replace`` and ``bpf_l4_csum_replace``.

The Internet checksum is a ones'-complement sum, and the kernel's helpers
return intermediate sums (``__wsum``) whose exact bits depend on how the
architecture adds: x86-64's ``csum_partial`` adds 64-bit little-endian words
with end-around carry and folds to 32 bits as ``(x + ror64(x, 32)) >> 32``.
The functions below do the same arithmetic, so results are bit-identical to
the x86-64 kernel (checked against Linux 6.18 with random buffers and seeds),
not just congruent. ``bpf_csum_diff`` folds its result to 16 bits with
``csum_from32to16`` since Linux 6.12, which makes it arch-independent.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..uapi import ProgType
from . import register_helper
from ._util import M32, M64, neg, skb_arg
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..progs.skb import SkBuff

__all__ = [
    "csum_add",
    "csum_fold",
    "csum_from32to16",
    "csum_partial",
    "csum_sub",
]

A = ArgType
P = ProgType
ENOTSUPP = 524

# -- the arithmetic (include/net/checksum.h, arch/x86/lib/csum-partial_64.c) ----------------


def _add64(total: int, word: int) -> int:
    """addq + adcq $0: a 64-bit add with end-around carry."""
    total += word
    return (total & M64) + 1 if total > M64 else total


def csum_partial(buf: bytes | bytearray | memoryview, wsum: int) -> int:
    """x86-64 ``csum_partial``: the 32-bit unfolded sum of ``buf`` plus ``wsum``."""
    total = wsum & M32
    n = len(buf)
    whole = n - n % 8
    for i in range(0, whole, 8):
        total = _add64(total, int.from_bytes(buf[i:i + 8], "little"))
    if n % 8:
        total = _add64(total, int.from_bytes(buf[whole:], "little"))
    ror = ((total >> 32) | (total << 32)) & M64
    return ((total + ror) & M64) >> 32


def csum_add(csum: int, addend: int) -> int:
    res = (csum + addend) & M32
    return (res + (res < (addend & M32))) & M32


def csum_sub(csum: int, addend: int) -> int:
    return csum_add(csum, ~addend & M32)


def csum_fold(csum: int) -> int:
    """x86-64 ``csum_fold``: the complemented 16-bit fold of a 32-bit sum."""
    hi = csum & 0xFFFF_0000
    total = hi + ((csum << 16) & M32)  # addl (sets CF)
    carry = total >> 32
    total = (total & M32) + 0xFFFF + carry  # adcl $0xffff
    return (~total & M32) >> 16


def csum_from32to16(csum: int) -> int:
    csum = (csum + (((csum >> 16) | (csum << 16)) & M32)) & M32
    return csum >> 16


def _csum16_add(csum: int, addend: int) -> int:
    res = (csum + addend) & 0xFFFF
    return (res + (res < addend)) & 0xFFFF


def csum_replace4(old: int, frm: int, to: int) -> int:
    """The new 16-bit checksum field after a 32-bit word changed from ``frm`` to ``to``."""
    tmp = csum_sub(~(old & 0xFFFF) & M32, frm & M32)  # ~csum_unfold(*sum): 32-bit complement
    return csum_fold(csum_add(tmp, to & M32))


def csum_replace2(old: int, frm: int, to: int) -> int:
    return ~_csum16_add(_csum16_add(~old & 0xFFFF, ~frm & 0xFFFF), to & 0xFFFF) & 0xFFFF


def csum_replace_by_diff(old: int, diff: int) -> int:
    return csum_fold(csum_add(diff & M32, ~(old & 0xFFFF) & M32))


# -- bpf_csum_diff ---------------------------------------------------------------------------

_MAYBE_NULL_MEM = A.ARG_PTR_TO_MEM | TypeFlag.PTR_MAYBE_NULL | TypeFlag.MEM_RDONLY
#: Program types whose get_func_proto offers bpf_csum_diff (Linux 6.18).
_CSUM_DIFF_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.XDP, P.LWT_IN, P.LWT_OUT, P.LWT_XMIT,
                              P.LWT_SEG6LOCAL})
#: ... and the skb checksum helpers (tc and lwt_xmit).
_SKB_CSUM_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.LWT_XMIT})


@register_helper(28, "csum_diff",
                 Proto(RetType.RET_INTEGER, (_MAYBE_NULL_MEM, A.ARG_CONST_SIZE_OR_ZERO,
                                             _MAYBE_NULL_MEM, A.ARG_CONST_SIZE_OR_ZERO,
                                             A.ARG_ANYTHING), pkt_access=True),
                 prog_types=_CSUM_DIFF_TYPES)
def csum_diff(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The checksum difference of replacing ``from`` by ``to``, folded to 16 bits."""
    from_size, to_size = r2 & M32, r4 & M32
    if (from_size | to_size) & 3:
        return neg(errno.EINVAL)
    ret = r5 & M32
    frm = vm.memory.read(r1, from_size) if from_size else b""
    to = vm.memory.read(r3, to_size) if to_size else b""
    if from_size and to_size:
        ret = csum_sub(csum_partial(to, ret), csum_partial(frm, 0))
    elif to_size:
        ret = csum_partial(to, ret)
    elif from_size:
        ret = ~csum_partial(frm, ~ret & M32) & M32
    return csum_from32to16(ret)


# -- checksums kept in the skb ----------------------------------------------------------------

CHECKSUM_NONE, CHECKSUM_UNNECESSARY, CHECKSUM_COMPLETE, CHECKSUM_PARTIAL = 0, 1, 2, 3
SKB_MAX_CSUM_LEVEL = 3
BPF_CSUM_LEVEL_QUERY, BPF_CSUM_LEVEL_INC, BPF_CSUM_LEVEL_DEC, BPF_CSUM_LEVEL_RESET = 0, 1, 2, 3
BPF_F_HDR_FIELD_MASK = 0xF
BPF_F_PSEUDO_HDR = 1 << 4
BPF_F_MARK_MANGLED_0 = 1 << 5
BPF_F_MARK_ENFORCE = 1 << 6
BPF_F_IPV6 = 1 << 7
CSUM_MANGLED_0 = 0xFFFF


_CTX_ANY = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING))


@register_helper(40, "csum_update", _CTX_ANY, prog_types=_SKB_CSUM_TYPES)
def csum_update(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Add ``csum`` to skb->csum when the device gave a full checksum (CHECKSUM_COMPLETE)."""
    skb = skb_arg(vm, r1)
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = csum_add(skb.csum, r2 & M32)
        return skb.csum
    return neg(ENOTSUPP)


@register_helper(135, "csum_level", _CTX_ANY, prog_types=_SKB_CSUM_TYPES)
def csum_level(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    skb = skb_arg(vm, r1)
    if r2 == BPF_CSUM_LEVEL_INC:
        if skb.ip_summed == CHECKSUM_UNNECESSARY and skb.csum_level < SKB_MAX_CSUM_LEVEL:
            skb.csum_level += 1
        elif skb.ip_summed == CHECKSUM_NONE:
            skb.ip_summed = CHECKSUM_UNNECESSARY
            skb.csum_level = 0
    elif r2 == BPF_CSUM_LEVEL_DEC:
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            if skb.csum_level == 0:
                skb.ip_summed = CHECKSUM_NONE
            else:
                skb.csum_level -= 1
    elif r2 == BPF_CSUM_LEVEL_RESET:
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            skb.csum_level = 0
    elif r2 == BPF_CSUM_LEVEL_QUERY:
        return skb.csum_level if skb.ip_summed == CHECKSUM_UNNECESSARY else neg(errno.EACCES)
    else:
        return neg(errno.EINVAL)
    return 0


_REPLACE = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING,
                                       A.ARG_ANYTHING, A.ARG_ANYTHING))


def _sum_field(vm: Vm, skb: SkBuff, offset: int) -> int | None:
    """The byte offset of the __sum16 at ``offset`` from skb->data, made writable
    (bpf_try_make_writable), or None: -EFAULT."""
    from ..progs.skb import try_make_writable

    if offset > 0xFFFF or offset & 1 or try_make_writable(skb, offset + 2):
        return None
    return skb.data_off + offset


@register_helper(10, "l3_csum_replace", _REPLACE, prog_types=_SKB_CSUM_TYPES)
def l3_csum_replace(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Fix an IP header checksum at ``offset`` for a field changed from ``from`` to ``to``."""
    skb = skb_arg(vm, r1)
    if r5 & ~BPF_F_HDR_FIELD_MASK:
        return neg(errno.EINVAL)
    at = _sum_field(vm, skb, r2 & M32)
    if at is None:
        return neg(errno.EFAULT)
    old = int.from_bytes(skb.buf[at:at + 2], "little")
    size = r5 & BPF_F_HDR_FIELD_MASK
    if size == 0:
        if r3:
            return neg(errno.EINVAL)
        new = csum_replace_by_diff(old, r4)
    elif size == 2:
        new = csum_replace2(old, r3 & 0xFFFF, r4 & 0xFFFF)
    elif size == 4:
        new = csum_replace4(old, r3 & M32, r4 & M32)
    else:
        return neg(errno.EINVAL)
    skb.buf[at:at + 2] = new.to_bytes(2, "little")
    return 0


def _proto_replace4(skb: SkBuff, old: int, frm: int, to: int, pseudo: bool) -> int:
    """inet_proto_csum_replace4: the new field (skb->csum kept in step)."""
    if skb.ip_summed != CHECKSUM_PARTIAL:
        new = csum_replace4(old, frm, to)
        if skb.ip_summed == CHECKSUM_COMPLETE and pseudo:
            skb.csum = ~csum_add(csum_sub(~skb.csum & M32, frm), to) & M32
        return new
    if pseudo:
        return ~csum_fold(csum_add(csum_sub(old, frm), to)) & 0xFFFF
    return old


def _proto_replace_by_diff(skb: SkBuff, old: int, diff: int, pseudo: bool,
                           ipv6: bool) -> int:
    if skb.ip_summed != CHECKSUM_PARTIAL:
        new = csum_replace_by_diff(old, diff)
        if skb.ip_summed == CHECKSUM_COMPLETE and pseudo and not ipv6:
            skb.csum = ~csum_sub(diff & M32, skb.csum) & M32
        return new
    if pseudo:
        return ~csum_fold(csum_add(old, diff & M32)) & 0xFFFF
    return old


@register_helper(11, "l4_csum_replace", _REPLACE, prog_types=_SKB_CSUM_TYPES)
def l4_csum_replace(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Fix a TCP/UDP checksum at ``offset`` (with the pseudo-header when asked)."""
    skb = skb_arg(vm, r1)
    flags = r5
    pseudo = bool(flags & BPF_F_PSEUDO_HDR)
    mmzero = bool(flags & BPF_F_MARK_MANGLED_0)
    mforce = bool(flags & BPF_F_MARK_ENFORCE)
    if flags & ~(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR | BPF_F_IPV6
                 | BPF_F_HDR_FIELD_MASK):
        return neg(errno.EINVAL)
    at = _sum_field(vm, skb, r2 & M32)
    if at is None:
        return neg(errno.EFAULT)
    old = int.from_bytes(skb.buf[at:at + 2], "little")
    if mmzero and not mforce and not old:
        return 0
    size = flags & BPF_F_HDR_FIELD_MASK
    if size == 0:
        if r3:
            return neg(errno.EINVAL)
        new = _proto_replace_by_diff(skb, old, r4, pseudo, bool(flags & BPF_F_IPV6))
    elif size == 2:
        new = _proto_replace4(skb, old, r3 & 0xFFFF, r4 & 0xFFFF, pseudo)
    elif size == 4:
        new = _proto_replace4(skb, old, r3 & M32, r4 & M32, pseudo)
    else:
        return neg(errno.EINVAL)
    if mmzero and not new:
        new = CSUM_MANGLED_0
    skb.buf[at:at + 2] = new.to_bytes(2, "little")
    return 0
