"""CGROUP_SYSCTL programs: ``struct bpf_sysctl_kern``, the hook that runs them, and
their helpers (kernel/bpf/cgroup.c, Linux 6.18).

When a task reads or writes a file under /proc/sys, ``proc_sys_call_handler``
runs its cgroup's BPF_CGROUP_SYSCTL programs (``__cgroup_bpf_run_filter_sysctl``)
on a :class:`SysctlKern`: the sysctl's name (its directories and the table
entry's ``procname``), whether it is a write, the file position, the current
value as the sysctl's ``proc_handler`` prints it (``"1\\n"``; none if that
failed) and, for a write, the first page of what the task writes. The
programs may replace the value written (``bpf_sysctl_set_new_value``); the
replacement is used only when the run's retval is 0 (every program returned 1
and none set another retval); with any other retval the read or write returns
that instead and the sysctl's handler is not called (a positive retval: the
syscall "succeeds" with it as its count and changes nothing; checked on 6.18).
:func:`run_filter_sysctl` is that hook; :meth:`pyebpf.links.cgroup.Cgroup.sysctl`
fires it on a cgroup.

The helpers:

- ``bpf_sysctl_get_name(ctx, buf, len, flags)``: ``"net/ipv4/tcp_mem"``
  (``BPF_F_SYSCTL_BASE_NAME``: ``"tcp_mem"``), copied piece by piece with
  strscpy as sysctl_cpy_dir does: the length without the NUL, or -E2BIG with
  what fitted NUL-terminated (strscpy's word-at-a-time stores zero the rest
  of the word after the NUL). Other flag bits are ignored.
- ``bpf_sysctl_get_current_value`` / ``bpf_sysctl_get_new_value(ctx, buf, len)``
  (copy_sysctl_value): the value and zeros after it, its length; -E2BIG if
  ``len`` doesn't exceed it (the copy truncated, the last byte NUL); -EINVAL and
  ``buf`` zeroed when there is no value (the handler failed, an empty write, a
  read for get_new_value).
- ``bpf_sysctl_set_new_value(ctx, buf, len)``: -EINVAL on a read or when
  nothing was written; -E2BIG past PAGE_SIZE - 1 bytes; else the new value is
  those ``len`` bytes exactly (a NUL in them is kept).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import attrs

from ..uapi import ProgType
from . import register_helper
from ._util import check_writable, ctx_object, neg
from .proto import ArgType as A
from .proto import Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..links.cgroup import Cgroup

__all__ = ["BPF_F_SYSCTL_BASE_NAME", "SysctlKern", "SysctlResult", "run_filter_sysctl"]

BPF_F_SYSCTL_BASE_NAME = 1
PAGE_SIZE = 4096
#: sizeof(unsigned long): strscpy's word.
WORD = 8


@attrs.define(eq=False)
class SysctlKern:
    """``struct bpf_sysctl_kern`` for one access to ``/proc/sys/<name>``. ``write``
    and ``file_pos`` are the ctx fields (``file_pos`` is ``*ppos``; a program may
    move it)."""

    #: The sysctl's path under /proc/sys: "net/ipv4/tcp_mem".
    name: str
    write: int
    file_pos: int = 0
    #: cur_val[:cur_len]: empty when the proc_handler failed.
    cur_val: bytes = b""
    #: new_val[:new_len]: what is written (its first page).
    new_val: bytes = b""
    new_updated: bool = False

    @property
    def dirs(self) -> list[str]:
        """The directories from /proc/sys down: ["net", "ipv4"]."""
        return [p for p in self.name.split("/")[:-1] if p]

    @property
    def procname(self) -> str:
        return self.name.rstrip("/").rsplit("/", 1)[-1]


@attrs.frozen
class SysctlResult:
    """What the hook decided: ``retval`` (0: go on; anything else is what the
    read or write returns instead, -EPERM or what bpf_set_retval left, and the
    sysctl's handler isn't called), the value the handler gets (the new one if
    a program replaced it, else what was written; None for a read or when the
    handler isn't called), ``file_pos`` after the run, each program's return
    value."""

    retval: int
    value: bytes | None
    file_pos: int
    verdicts: tuple[int, ...]


def run_filter_sysctl(cgroup: Cgroup, name: str, *, write: bool = False,
                      value: bytes = b"", current: bytes | None = b"",
                      file_pos: int = 0) -> SysctlResult:
    """__cgroup_bpf_run_filter_sysctl: run ``cgroup``'s effective sysctl programs
    for a read (``write=False``) or a write of ``value`` to ``name``; ``current``
    is what reading the sysctl gives (None: its handler failed)."""
    from ..links.cgroup import _AccessCheckedDevice
    from ..progs.cgroup import BPF_SYSCTL, sysctl_is_valid_access
    from ..uapi import AttachType
    from .cgroup_retval import prog_run_array_cg

    kern = SysctlKern(name=name, write=int(write), file_pos=file_pos,
                      cur_val=(current or b"")[:PAGE_SIZE],
                      new_val=value[:PAGE_SIZE] if write else b"")
    rt = cgroup.runtime

    def run_prog(prog: object) -> int:
        device = _AccessCheckedDevice(BPF_SYSCTL, kern, sysctl_is_valid_access, prog)
        region = rt.memory.map_device(device, BPF_SYSCTL.size, kind="ctx",
                                      name=BPF_SYSCTL.name)
        try:
            return int(prog.run(region.base))  # type: ignore[attr-defined]
        finally:
            rt.memory.unmap(region)

    result = prog_run_array_cg(rt, cgroup.effective(AttachType.CGROUP_SYSCTL), run_prog)
    new: bytes | None = None
    if write and result.retval == 0:  # any other retval: the handler isn't called
        new = kern.new_val if kern.new_updated else value
    return SysctlResult(result.retval, new, kern.file_pos, result.verdicts)


# -- the helpers ----------------------------------------------------------------------------------
def _kern(vm: Vm, ctx: int) -> SysctlKern:
    return ctx_object(vm, ctx, SysctlKern, "bpf_sysctl")


def _strscpy(buf: bytearray, pos: int, src: bytes) -> int:
    """sized_strscpy(buf + pos, src, len(buf) - pos) as x86-64 runs it (word at a
    time, CONFIG_DCACHE_WORD_ACCESS): the length copied, or -E2BIG with what
    fitted NUL-terminated. The word holding the NUL is stored whole, so up to
    seven bytes after the NUL are zeroed too (the kernel's bytes, checked on
    6.18); no room at all writes nothing."""
    count = len(buf) - pos
    if count <= 0:
        return -errno.E2BIG
    s = src + b"\0"
    res = 0
    while count >= WORD:  # max == count: the word loop runs while a word fits
        word = s[res:res + WORD]
        if b"\0" in word:
            nul = word.index(0)
            buf[pos + res:pos + res + WORD] = word[:nul].ljust(WORD, b"\0")
            return res + nul
        count -= WORD
        if not count:
            buf[pos + res:pos + res + WORD] = word[:WORD - 1] + b"\0"
            return -errno.E2BIG
        buf[pos + res:pos + res + WORD] = word
        res += WORD
    while count:
        c = s[res] if res < len(s) else 0
        buf[pos + res] = c
        if not c:
            return res
        res += 1
        count -= 1
    buf[pos + res - 1] = 0
    return -errno.E2BIG


def sysctl_name(kern: SysctlKern, buf: bytearray, flags: int) -> int:
    """bpf_sysctl_get_name into ``buf`` (the program's buffer, changed in place
    as the kernel's copies change it); the length, or -E2BIG."""
    pos = 0
    if not flags & BPF_F_SYSCTL_BASE_NAME:
        for d in kern.dirs:  # sysctl_cpy_dir: "dir" then "/", from the top
            for piece in (d.encode(), b"/"):
                n = _strscpy(buf, pos, piece)
                if n < 0:
                    return n
                pos += n
    n = _strscpy(buf, pos, kern.procname.encode())
    return n if n < 0 else pos + n


@register_helper(101, "sysctl_get_name", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_MEM | TypeFlag.MEM_WRITE, A.ARG_CONST_SIZE,
    A.ARG_ANYTHING)),
    prog_types={ProgType.CGROUP_SYSCTL})
def sysctl_get_name(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    kern = _kern(vm, r1)
    if not r2:
        return neg(errno.EINVAL)
    check_writable(vm.memory, r2, r3)
    buf = bytearray(vm.memory.read(r2, r3))
    ret = sysctl_name(kern, buf, r4)
    vm.memory.write(r2, bytes(buf))
    return neg(-ret) if ret < 0 else ret


def copy_sysctl_value(size: int, src: bytes) -> tuple[int, bytes]:
    """copy_sysctl_value: (the result, the ``size`` bytes the buffer holds after)."""
    if not src:
        return -errno.EINVAL, bytes(size)
    if size > len(src):
        return len(src), src + bytes(size - len(src))
    return -errno.E2BIG, src[:size - 1] + b"\0"


def _copy_out(vm: Vm, buf: int, size: int, src: bytes) -> int:
    if not buf:
        return neg(errno.EINVAL)
    if not size:
        return neg(errno.E2BIG)
    check_writable(vm.memory, buf, size)
    ret, out = copy_sysctl_value(size, src)
    vm.memory.write(buf, out)
    return neg(-ret) if ret < 0 else ret


_UNINIT_OUT = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_UNINIT_MEM,
                                          A.ARG_CONST_SIZE))


@register_helper(102, "sysctl_get_current_value", _UNINIT_OUT,
                 prog_types={ProgType.CGROUP_SYSCTL})
def sysctl_get_current_value(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _copy_out(vm, r2, r3, _kern(vm, r1).cur_val)


@register_helper(103, "sysctl_get_new_value", _UNINIT_OUT,
                 prog_types={ProgType.CGROUP_SYSCTL})
def sysctl_get_new_value(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    kern = _kern(vm, r1)
    if not kern.write:
        if r2 and r3:
            check_writable(vm.memory, r2, r3)
            vm.memory.write(r2, bytes(r3))
        return neg(errno.EINVAL)
    return _copy_out(vm, r2, r3, kern.new_val)


@register_helper(104, "sysctl_set_new_value", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE)),
    prog_types={ProgType.CGROUP_SYSCTL})
def sysctl_set_new_value(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    kern = _kern(vm, r1)
    if not kern.write or not kern.new_val or not r2 or not r3:
        return neg(errno.EINVAL)
    if r3 > PAGE_SIZE - 1:
        return neg(errno.E2BIG)
    kern.new_val = vm.memory.read(r2, r3)
    kern.new_updated = True
    return 0
