"""SK_MSG helpers (net/core/filter.c): bpf_msg_apply_bytes, bpf_msg_cork_bytes,
bpf_msg_pull_data, bpf_msg_push_data, bpf_msg_pop_data.

They work on the :class:`~pyebpf.links.sockmap.SkMsg` behind the program's
ctx: its scatterlist elements (``elems``) and the ``data``/``data_end`` the
program reads. apply/cork only record a byte count the send path
(``Psock._send_verdict``) then honours. pull_data makes ``[start, end)``
one element and points data/data_end at it (EINVAL for flags, an empty or
out-of-message range); push_data inserts ``len`` bytes at ``start``, which
may be the end of the message (as a new element, splitting the one
``start`` falls in; the kernel leaves the new bytes uninitialised, pyebpf
zeroes them); pop_data removes ``len`` bytes at ``start`` (EINVAL past the
message). Both do nothing (0) for ``len`` 0, checked on Linux 6.18. push and
pop point data/data_end back at the first element. When the ring of
MAX_MSG_FRAGS elements is full they copy into one element, as the kernel does.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfFault
from ..uapi import ProgType
from . import register_helper
from ._util import neg
from .proto import ArgType, Proto, RetType

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..links.sockmap import SkMsg

A = ArgType
_CTX_ANY = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING))
_CTX_3 = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING,
                                     A.ARG_ANYTHING))
_SK_MSG = {ProgType.SK_MSG}
U32 = 0xFFFF_FFFF
#: MAX_MSG_FRAGS (MAX_SKB_FRAGS): the scatterlist elements an sk_msg may use.
MAX_MSG_FRAGS = 17


def _msg(vm: Vm, ctx: int, helper: str) -> SkMsg:
    from ..links.sockmap import msg_from_ctx

    msg = msg_from_ctx(vm.memory, ctx)
    if msg is None:
        raise BpfFault(f"bpf_{helper}: r1 is not an sk_msg ctx")
    return msg


def _find(msg: SkMsg, start: int) -> tuple[int, int] | None:
    """The element ``start`` falls in and the message offset where it begins."""
    offset = 0
    for i, elem in enumerate(msg.elems):
        if start < offset + len(elem):
            return i, offset
        offset += len(elem)
    return None


def _used(msg: SkMsg) -> int:
    return len(msg.elems)


@register_helper(61, "msg_apply_bytes", _CTX_ANY, prog_types=_SK_MSG)
def msg_apply_bytes(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The verdict applies to the next ``bytes`` bytes only."""
    _msg(vm, r1, "msg_apply_bytes").apply_bytes = r2 & U32
    return 0


@register_helper(62, "msg_cork_bytes", _CTX_ANY, prog_types=_SK_MSG)
def msg_cork_bytes(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Hold the data back until ``bytes`` bytes have accumulated."""
    _msg(vm, r1, "msg_cork_bytes").cork_bytes = r2 & U32
    return 0


@register_helper(63, "msg_pull_data", _CTX_3, prog_types=_SK_MSG)
def msg_pull_data(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    msg = _msg(vm, r1, "msg_pull_data")
    start, end, flags = r2 & U32, r3 & U32, r4
    if flags or end <= start:
        return neg(errno.EINVAL)
    found = _find(msg, start)
    if found is None:
        return neg(errno.EINVAL)
    first, offset = found
    nbytes = end - start
    total = start - offset + nbytes
    if total > len(msg.elems[first]):
        copy = 0
        last = first
        while last < len(msg.elems) and copy < total:
            copy += len(msg.elems[last])
            last += 1
        if total > copy:
            return neg(errno.EINVAL)
        merged = bytearray(b"".join(msg.elems[first:last]))
        msg.elems[first:last] = [merged]
    msg.data = msg.elem_addr(first) + start - offset
    msg.data_end = msg.data + nbytes
    return 0


@register_helper(90, "msg_push_data", _CTX_3, prog_types=_SK_MSG)
def msg_push_data(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    msg = _msg(vm, r1, "msg_push_data")
    start, length, flags = r2 & U32, r3 & U32, r4
    if flags:
        return neg(errno.EINVAL)
    if length == 0:
        return 0
    found = _find(msg, start)
    if found is None:
        if not msg.elems or start != msg.size:  # start may be the end of the message
            return neg(errno.EINVAL)
        found = (len(msg.elems) - 1, msg.size - len(msg.elems[-1]))
    i, offset = found
    elem = msg.elems[i]
    front, back = elem[:start - offset], elem[start - offset:]
    space = MAX_MSG_FRAGS - _used(msg)
    if not space or (space == 1 and start != offset):
        msg.elems[i] = bytearray(front + bytes(length) + back)  # the copy path
    else:
        pieces = [bytearray(front)] if front else []
        pieces += [bytearray(length)] + ([bytearray(back)] if back else [])
        msg.elems[i:i + 1] = pieces
    msg.compute_data_pointers()
    return 0


@register_helper(91, "msg_pop_data", _CTX_3, prog_types=_SK_MSG)
def msg_pop_data(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    msg = _msg(vm, r1, "msg_pop_data")
    start, length, flags = r2 & U32, r3 & U32, r4
    if flags:
        return neg(errno.EINVAL)
    if length == 0:
        return 0
    found = _find(msg, start)
    if found is None or start + length > msg.size:
        return neg(errno.EINVAL)
    i, offset = found
    pop = length
    if start != offset:
        elem = msg.elems[i]
        a = start - offset
        if pop < len(elem) - a:
            b = elem[a + pop:]
            if MAX_MSG_FRAGS - _used(msg):
                msg.elems[i:i + 1] = [bytearray(elem[:a]), bytearray(b)]
            else:
                msg.elems[i] = bytearray(elem[:a] + b)
            pop = 0
        else:
            pop -= len(elem) - a
            msg.elems[i] = bytearray(elem[:a])
        i += 1
    while pop and i < len(msg.elems):
        elem = msg.elems[i]
        if pop < len(elem):
            msg.elems[i] = bytearray(elem[pop:])
            pop = 0
        else:
            pop -= len(elem)
            del msg.elems[i]
    msg.compute_data_pointers()
    return 0
