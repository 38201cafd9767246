"""Constant strings in read-only maps, and bpf_snprintf's format checked at load
(kernel/bpf/verifier.c ``check_reg_const_str``, ``check_bpf_snprintf_call``).

An ``ARG_PTR_TO_CONST_STR`` argument (bpf_snprintf's format, bpf_strncmp's
string, a kfunc's ``__str``) must point at a constant offset into a frozen map
the program can't write (BPF_F_RDONLY_PROG), of a type whose value has a direct
address (a single-element array), with a NUL before the value ends: the
verifier reads the string itself.

For ``bpf_snprintf`` the verifier then reads the format out of that map and
runs the helper's own format check over it (bpf_bprintf_prepare with no
arguments copied), for as many arguments as ``data_len`` holds u64s: a bad
conversion, a ``%`` too many, a non-printable byte is "Invalid format string"
at load, not -EINVAL at run time. A ``data_len`` that is no multiple of 8 is
refused with EINVAL without a word in the log, as the kernel does.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import ENOTSUPP
from ..uapi import MapType
from .log import VerifierAbort
from .mem import check_map_access
from .tnum import tnum_is_const

if TYPE_CHECKING:
    from .check import Verifier
    from .state import RegState

__all__ = ["check_bpf_snprintf_call", "check_reg_const_str"]

#: BPF_F_RDONLY_PROG.
_RDONLY_PROG = 1 << 7


def _direct_value(reg: RegState) -> bytes:
    """The bytes of the (single) value of the map ``reg`` points into."""
    m = reg.map
    return bytes(m.runtime.memory.read(m.direct_value_addr(), m.value_size))


def check_reg_const_str(v: Verifier, regno: int) -> None:
    """check_reg_const_str: a NUL-terminated string in a read-only map value."""
    reg = v.cur.regs[regno]
    m = reg.map
    if m is None or not (getattr(m, "frozen", False) and m.map_flags & _RDONLY_PROG):
        v.fail(errno.EACCES, f"R{regno} does not point to a readonly map'")
    if not tnum_is_const(reg.scalar.var_off):
        v.fail(errno.EACCES, f"R{regno} is not a constant address'")
    if m.map_type != MapType.ARRAY or not hasattr(m, "direct_value_addr"):
        v.fail(errno.EACCES, "no direct value access support for this map type")
    check_map_access(v, regno, reg.off, m.value_size - reg.off, False, helper=True)
    map_off = reg.off + reg.scalar.var_off.value
    if m.max_entries != 1:
        v.fail(ENOTSUPP, "direct value access on string failed")
    if map_off >= m.value_size:
        v.fail(errno.EINVAL, "direct value access on string failed")
    if b"\0" not in _direct_value(reg)[map_off:]:
        v.fail(errno.EINVAL, "string is not zero-terminated")


def check_bpf_snprintf_call(v: Verifier) -> None:
    """check_bpf_snprintf_call: bpf_snprintf's constant format, checked for the
    number of u64 arguments ``data_len`` (R5) holds."""
    from ..helpers.printf import check_format

    regs = v.cur.regs
    fmt_reg, data_len = regs[3], regs[5].scalar.var_off.value
    if data_len % 8:  # refused without a log line, as the kernel does
        raise VerifierAbort(errno.EINVAL, "bpf_snprintf's data_len is not a multiple of 8")
    fmt_off = fmt_reg.off + fmt_reg.scalar.var_off.value
    fmt = _direct_value(fmt_reg)[fmt_off:]
    if check_format(fmt, data_len // 8) < 0:
        v.fail(errno.EINVAL, "Invalid format string")
