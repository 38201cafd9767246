"""Helpers of BPF_PROG_TYPE_SYSCALL programs (kernel/bpf/syscall.c, kernel/bpf/btf.c,
Linux 6.18): a syscall program, test-run from user space, may itself call bpf().

- ``bpf_sys_bpf(cmd, attr, attr_size)``: the commands a loader program needs
  (MAP_CREATE, MAP_UPDATE/DELETE_ELEM, MAP_FREEZE, MAP_GET_FD_BY_ID,
  PROG_LOAD, BTF_LOAD, LINK_CREATE, RAW_TRACEPOINT_OPEN) run as pyebpf's own
  bpf() on the attr in the program's memory: the attr's pointers (a map key,
  the instructions, the license ...) are addresses in the program's memory
  too (KERNEL_BPFPTR). Every other command, PROG_TEST_RUN included, is
  -EINVAL. Errors come back as the command's negative errno. CAP_PERFMON
  only.
- ``bpf_sys_close(fd)``: close_fd: 0, or -EBADF.
- ``bpf_btf_find_by_name_kind(name, name_sz, kind, flags)``: the id of the type
  of that name and kind in the vmlinux BTF (pyebpf's: the ids its verifier and
  kfuncs use), -ENOENT when there is none ("void" and kind 0 included); the name
  must be NUL-terminated at ``name_sz - 1`` and flags 0 (-EINVAL).
- ``bpf_kallsyms_lookup_name(name, name_sz, flags, &res)``: the address of a
  kernel function (pyebpf's simulated text: the address bpf_get_func_ip gives
  in a program traced on it), -ENOENT (and 0) when there is none; the same
  name and flags rules. ``res`` is zeroed first.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import BpfError
from ..uapi import Cmd, ProgType
from . import register_helper
from ._util import M32, neg, runtime_of
from .proto import ArgType as A
from .proto import Proto, RetType, TypeFlag, sized

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..runtime import Runtime

__all__ = ["SYS_BPF_CMDS"]

#: The commands bpf_sys_bpf passes to __sys_bpf (kern_sys_bpf, for loaders run from
#: the kernel, also test-runs; a program's bpf_sys_bpf does not: checked on 6.18).
SYS_BPF_CMDS = frozenset({
    Cmd.MAP_CREATE, Cmd.MAP_DELETE_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_FREEZE,
    Cmd.MAP_GET_FD_BY_ID, Cmd.PROG_LOAD, Cmd.BTF_LOAD, Cmd.LINK_CREATE,
    Cmd.RAW_TRACEPOINT_OPEN})
_SYSCALL = (int(ProgType.SYSCALL),)


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


@contextmanager
def _kernel_bpfptr(rt: Runtime) -> Iterator[None]:
    """KERNEL_BPFPTR: the attr's pointers are kernel addresses, so the command
    reads and writes its buffers in the program's memory, not user memory."""
    saved = rt.user_memory
    rt.user_memory = rt.memory
    try:
        yield
    finally:
        rt.user_memory = saved


@register_helper(166, "sys_bpf", Proto(RetType.RET_INTEGER, (
    A.ARG_ANYTHING, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE)),
    perfmon_types=_SYSCALL)
def sys_bpf(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..syscall import bpf

    rt = runtime_of(vm, "sys_bpf")
    cmd = _s32(r1)
    raw = vm.memory.read(r2, r3)
    if cmd not in SYS_BPF_CMDS:
        return neg(errno.EINVAL)
    try:
        with _kernel_bpfptr(rt):
            result = bpf(cmd, raw, runtime=rt)
    except BpfError as e:
        return neg(e.errno or errno.EINVAL)
    return int(result) & ((1 << 64) - 1) if isinstance(result, int) else 0


@register_helper(168, "sys_close", Proto(RetType.RET_INTEGER, (A.ARG_ANYTHING,)),
                 prog_types=_SYSCALL)
def sys_close(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    rt = runtime_of(vm, "sys_close")
    try:
        rt.close(r1 & M32)
    except BpfError:
        return neg(errno.EBADF)
    return 0


def _c_name(vm: Vm, ptr: int, size: int) -> str | None:
    """A name argument: ``size`` bytes ending in its NUL (None: -EINVAL)."""
    if size <= 1:
        return None
    raw = vm.memory.read(ptr, size)
    if raw[-1]:
        return None
    return raw.split(b"\0", 1)[0].decode("latin-1")


@register_helper(167, "btf_find_by_name_kind", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE, A.ARG_ANYTHING, A.ARG_ANYTHING)),
    prog_types=_SYSCALL)
def btf_find_by_name_kind(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..btf import BtfKind
    from ..kernel_btf import kernel_btf

    if _s32(r4):
        return neg(errno.EINVAL)
    name = _c_name(vm, r1, _s32(r2))
    if name is None:
        return neg(errno.EINVAL)
    kind = r3 & M32
    try:
        want = BtfKind(kind)
    except ValueError:
        return neg(errno.ENOENT)
    found = kernel_btf().find(name, want)
    return found.id if found is not None else neg(errno.ENOENT)


@register_helper(179, "kallsyms_lookup_name", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_MEM, A.ARG_CONST_SIZE_OR_ZERO, A.ARG_ANYTHING,
    A.ARG_PTR_TO_FIXED_SIZE_MEM | TypeFlag.MEM_UNINIT | TypeFlag.MEM_WRITE
    | TypeFlag.MEM_ALIGNED), arg_size=sized(8, 4)), prog_types=_SYSCALL)
def kallsyms_lookup_name(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from .kprobe import ksym_addr

    vm.memory.store(r4, 8, 0)
    if _s32(r3):
        return neg(errno.EINVAL)
    name = _c_name(vm, r1, _s32(r2))
    if name is None:
        return neg(errno.EINVAL)
    addr = ksym_addr(name)
    if addr is None:
        return neg(errno.ENOENT)
    vm.memory.store(r4, 8, addr)
    return 0
