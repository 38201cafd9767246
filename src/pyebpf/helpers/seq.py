"""seq_file helpers of BPF iterator programs (kernel/trace/bpf_trace.c):
``bpf_seq_printf``, ``bpf_seq_write``.

Their first argument is ``meta->seq``, the session's ``struct seq_file`` (a
trusted PTR_TO_BTF_ID): the output goes to that iterator session's buffer
(:class:`pyebpf.links.iter.IterSession`). Both return -EOVERFLOW once the
buffer is full (the kernel's seq_has_overflowed), which makes the read that
ran the program stop before this object, or fail with E2BIG if it was the
first. They are offered to TRACING programs (the kernel offers them only
with expected_attach_type BPF_TRACE_ITER).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfFault
from ..uapi import ProgType
from . import register_helper
from ._util import M32, neg, runtime_of
from .printf import MAX_BPRINTF_VARARGS, bprintf_prepare, bstr_printf
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..links.iter import IterSession

A = ArgType
_SEQ = A.ARG_PTR_TO_BTF_ID


def _session(vm: Vm, addr: int, helper: str) -> IterSession:
    from ..links.iter import seq_session_at

    s = seq_session_at(runtime_of(vm, helper), addr)
    if s is None:
        raise BpfFault(f"bpf_{helper}: {addr:#x} is not an iterator's seq_file", addr=addr)
    return s


@register_helper(126, "seq_printf", Proto(RetType.RET_INTEGER, (
    _SEQ, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE,
    A.ARG_PTR_TO_MEM | TypeFlag.PTR_MAYBE_NULL | TypeFlag.MEM_RDONLY,
    A.ARG_CONST_SIZE_OR_ZERO), gpl_only=True, arg_btf_id=("seq_file", None, None, None, None)),
    prog_types=(ProgType.TRACING,))
def seq_printf(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """seq_bprintf of ``fmt`` with the u64 arguments at ``data`` (up to 12)."""
    s = _session(vm, r1, "seq_printf")
    data_len = r5 & M32
    if data_len & 7 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not r4):
        return neg(errno.EINVAL)
    raw = vm.memory.read(r4, data_len) if data_len else b""
    args = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, data_len, 8)]
    fmt = vm.memory.read(r2, r3 & M32)
    nul = fmt.find(b"\0")
    if nul < 0:
        return neg(errno.EINVAL)
    bin_args = bprintf_prepare(vm, fmt[:nul], args, len(args))
    if isinstance(bin_args, int):
        return neg(-bin_args)
    room = s.size - s.count
    if room > 0:
        key = (getattr(vm.runtime, "seed", 0) & ((1 << 64) - 1)).to_bytes(8, "little")
        _, total = bstr_printf(fmt[:nul], bin_args, room, hash_key=key)
        if s.count + total < s.size:
            text, _ = bstr_printf(fmt[:nul], bin_args, total + 1, hash_key=key)
            s.buf[s.count:s.count + total] = text[:total]
            s.count += total
            return 0
    s.count = s.size  # seq_set_overflow
    return neg(errno.EOVERFLOW)


@register_helper(127, "seq_write", Proto(RetType.RET_INTEGER, (
    _SEQ, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE_OR_ZERO), gpl_only=True,
    arg_btf_id=("seq_file", None, None, None, None)), prog_types=(ProgType.TRACING,))
def seq_write(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """seq_write of ``len`` bytes: 0, or -EOVERFLOW when they don't fit."""
    s = _session(vm, r1, "seq_write")
    n = r3 & M32
    data = vm.memory.read(r2, n) if n else b""
    return 0 if s.seq_write(data) else neg(errno.EOVERFLOW)
