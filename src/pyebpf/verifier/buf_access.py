"""Loads and stores through ``PTR_TO_BUF`` (``check_buffer_access``, kernel/bpf/verifier.c).

A buffer register (a BPF iterator's key or value) points to memory whose size
the verifier doesn't know when it checks the program. So it only requires a
constant, non-negative offset (and no writes to a read-only buffer), and
records the furthest byte reached: ``max_rdonly_access`` for read-only buffers,
``max_rdwr_access`` for writable ones, on the program. The iterator link
compares them with the map's key and value size when it is created
(``bpf_iter_attach_map``: EACCES if the program reads further).

A writable raw tracepoint's buffer (``PTR_TO_TP_BUFFER``, its args[0]) follows
the same offset rules; its furthest byte goes to ``max_tp_access``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .state import RegState
from .tnum import tnum_is_const, tnum_strn
from .types import MEM_RDONLY, reg_type_str

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["check_buffer_access", "check_tp_buffer_access"]


def _check_constant_offset(v: Verifier, reg: RegState, regno: int, off: int, size: int,
                           info: str) -> None:
    """__check_buffer_access: a constant, non-negative offset."""
    if off < 0:
        v.fail(errno.EACCES, f"R{regno} invalid {info} buffer access: off={off}, size={size}")
    vo = reg.scalar.var_off
    if not tnum_is_const(vo) or vo.value:
        v.fail(errno.EACCES, f"R{regno} invalid variable buffer offset: off={off}, "
               f"var_off={tnum_strn(vo)}")


def check_tp_buffer_access(v: Verifier, reg: RegState, regno: int, off: int,
                           size: int) -> None:
    """check_tp_buffer_access: a writable raw tracepoint's buffer (args[0]); the
    furthest byte reached goes to ``max_tp_access``, which bpf_probe_register
    compares with the tracepoint's writable size."""
    _check_constant_offset(v, reg, regno, off, size, "tracepoint")
    if off + size > v.prog.max_tp_access:
        v.prog.max_tp_access = off + size


def check_buffer_access(v: Verifier, reg: RegState, regno: int, off: int, size: int,
                        write: bool) -> None:
    """check_buffer_access (with check_mem_access's read-only test before it)."""
    rdonly = bool(reg.type & MEM_RDONLY)
    if rdonly and write:
        v.fail(errno.EACCES, f"R{regno} cannot write into {reg_type_str(reg.type)}")
    info = "rdonly" if rdonly else "rdwr"
    _check_constant_offset(v, reg, regno, off, size, info)
    attr = "max_rdonly_access" if rdonly else "max_rdwr_access"
    prog = v.prog
    if off + size > getattr(prog, attr, 0):
        setattr(prog, attr, off + size)
