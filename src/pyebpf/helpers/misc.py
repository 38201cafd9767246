"""Everyday helpers: randomness, CPU and task identity, strings, probe reads, loops, locks.

Identity comes from the Runtime's settings, so a test can fix them:
``runtime.cpu`` (bpf_get_smp_processor_id), ``runtime.random`` (seeded by
``runtime.seed``: bpf_get_prandom_u32), ``runtime.pid``/``tgid``/``uid``/
``gid``/``comm`` (the "current" task), ``runtime.current_task`` (the task
pointer bpf_get_current_task gives; no task_struct is mapped there, so probe
reads of it fail with -EFAULT).

Probe reads follow mm/maccess.c on x86-64: bpf_probe_read_kernel* refuse user
addresses and non-canonical ones (-ERANGE) and read the runtime's address
space (an unmapped or guard page: -EFAULT); bpf_probe_read_user* read the
runtime's user memory (``runtime.user_memory``, where user buffers live) and
refuse kernel addresses (-EFAULT). On failure the destination is zeroed, as
the kernel does. The *_str variants copy up to a NUL (strncpy_from_*_nofault)
and return the length including it.

bpf_strtol/strtoul/strncmp follow kernel/bpf/helpers.c and lib/kstrtox.c;
bpf_loop (kernel/bpf/bpf_iter.c) calls the program's callback through
:meth:`~pyebpf.engine.interpreter.Vm.call_function`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfFault
from ..memory import PAGE_SHIFT, AddressSpace
from ..uapi import ProgType
from . import register_helper
from ._util import (
    M32,
    M64,
    TASK_SIZE_MAX,
    TRACING_TYPES,
    check_writable,
    is_kernel_address,
    neg,
    readable,
    runtime_of,
    strncpy_nofault,
    user_access_ok,
)
from .proto import ArgType, Proto, RetType, TypeFlag, btf_ids, sized

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

A = ArgType
_INT = Proto()
#: TASK_COMM_LEN.
TASK_COMM_LEN = 16
#: BPF_MAX_LOOPS: the most iterations bpf_loop runs.
BPF_MAX_LOOPS = 8 * 1024 * 1024
#: Program types whose get_func_proto includes cgroup_current_func_proto.
_CGROUP_CURRENT = frozenset(int(t) for t in (
    ProgType.CGROUP_DEVICE, ProgType.CGROUP_SYSCTL, ProgType.CGROUP_SOCKOPT,
    ProgType.CGROUP_SOCK, ProgType.CGROUP_SOCK_ADDR))


# -- identity ---------------------------------------------------------------------------------
@register_helper(7, "get_prandom_u32", _INT, tier="base")
def get_prandom_u32(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return runtime_of(vm, "get_prandom_u32").random.getrandbits(32)


@register_helper(8, "get_smp_processor_id", _INT, tier="base")
def get_smp_processor_id(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return int(runtime_of(vm, "get_smp_processor_id").cpu)


@register_helper(42, "get_numa_node_id", _INT, tier="base")
def get_numa_node_id(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return int(getattr(runtime_of(vm, "get_numa_node_id"), "numa_node", 0))


@register_helper(14, "get_current_pid_tgid", _INT, tier="base")
def get_current_pid_tgid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    rt = runtime_of(vm, "get_current_pid_tgid")
    return ((rt.tgid & M32) << 32) | (rt.pid & M32)


@register_helper(15, "get_current_uid_gid", _INT, tier="perfmon",
                 prog_types=TRACING_TYPES | _CGROUP_CURRENT)
def get_current_uid_gid(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    rt = runtime_of(vm, "get_current_uid_gid")
    return ((rt.gid & M32) << 32) | (rt.uid & M32)


@register_helper(16, "get_current_comm", Proto(RetType.RET_INTEGER,
                 (A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE)), tier="perfmon",
                 prog_types=TRACING_TYPES | _CGROUP_CURRENT)
def get_current_comm(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """strscpy_pad(buf, comm, size): the name, cut to size - 1, NUL-padded to size."""
    rt = runtime_of(vm, "get_current_comm")
    size = r2 & M32
    check_writable(vm.memory, r1, size)
    if size:
        comm = _comm_bytes(rt.comm)
        vm.memory.write(r1, comm[: size - 1].ljust(size, b"\0"))
    return 0


def _comm_bytes(comm: str | bytes) -> bytes:
    raw = comm.encode() if isinstance(comm, str) else bytes(comm)
    return raw.split(b"\0", 1)[0][: TASK_COMM_LEN - 1]


@register_helper(35, "get_current_task", Proto(RetType.RET_INTEGER, gpl_only=True),
                 tier="perfmon", prog_types=TRACING_TYPES)
def get_current_task(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return int(runtime_of(vm, "get_current_task").current_task) & M64


# -- strings ----------------------------------------------------------------------------------
_SPACE = frozenset(b" \t\n\v\f\r\xa0")  # the kernel's isspace (lib/ctype.c: 0xA0 too)
BPF_STRTOX_BASE_MASK = 0x1F
KSTRTOX_OVERFLOW = 1 << 31


def _fixup_radix(s: bytes, base: int) -> tuple[bytes, int]:
    """_parse_integer_fixup_radix."""
    def at(i: int) -> int:
        return s[i] if i < len(s) else 0

    if base == 0:
        if at(0) == ord("0"):
            if at(1) | 0x20 == ord("x") and chr(at(2)) in "0123456789abcdefABCDEF" and at(2):
                base = 16
            else:
                base = 8
        else:
            base = 10
    if base == 16 and at(0) == ord("0") and at(1) | 0x20 == ord("x"):
        s = s[2:]
    return s, base


def _parse_integer(s: bytes, base: int) -> tuple[int, int]:
    """_parse_integer_limit: (digits consumed | KSTRTOX_OVERFLOW, value mod 2**64)."""
    res = 0
    rv = 0
    for c in s:
        lc = c | 0x20
        if 0x30 <= c <= 0x39:
            val = c - 0x30
        elif 0x61 <= lc <= 0x66:
            val = lc - 0x61 + 10
        else:
            break
        if val >= base:
            break
        if res & (M64 << 60 & M64) and res > (M64 - val) // base:
            rv |= KSTRTOX_OVERFLOW
        res = (res * base + val) & M64
        rv += 1
    return rv, res


def bpf_strtoull(buf: bytes, flags: int) -> tuple[int, int, bool]:
    """__bpf_strtoull: (consumed or -errno, value, negative)."""
    base = flags & BPF_STRTOX_BASE_MASK
    if not buf:
        return -errno.EINVAL, 0, False
    if base not in (0, 8, 10, 16) or flags & ~BPF_STRTOX_BASE_MASK:
        return -errno.EINVAL, 0, False
    i = 0
    while i < len(buf) and buf[i] in _SPACE:
        i += 1
    negative = i < len(buf) and buf[i] == ord("-")
    if negative:
        i += 1
    consumed = i
    cur_len = len(buf) - consumed
    if not cur_len:
        return -errno.EINVAL, 0, negative
    s = buf[consumed:consumed + min(cur_len, 63)].split(b"\0", 1)[0]
    digits, base = _fixup_radix(s, base)
    val_len, res = _parse_integer(digits, base)
    if val_len & KSTRTOX_OVERFLOW:
        return -errno.ERANGE, 0, negative
    if val_len == 0:
        return -errno.EINVAL, 0, negative
    consumed += (len(s) - len(digits)) + val_len
    return consumed, res, negative


_STRTOX = Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE, A.ARG_ANYTHING,
    A.ARG_PTR_TO_FIXED_SIZE_MEM | TypeFlag.MEM_UNINIT | TypeFlag.MEM_WRITE | TypeFlag.MEM_ALIGNED),
    arg_size=sized(8, 4))


@register_helper(105, "strtol", _STRTOX, tier="base")
def strtol(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    buf = vm.memory.read(r1, r2)
    vm.memory.store(r4, 8, 0)
    err, res, negative = bpf_strtoull(buf, r3)
    if err < 0:
        return neg(-err)
    if negative:
        if res > 1 << 63:  # (long long)-res > 0
            return neg(errno.ERANGE)
        value = -res & M64
    else:
        if res >> 63:  # (long long)res < 0
            return neg(errno.ERANGE)
        value = res
    vm.memory.store(r4, 8, value)
    return err


@register_helper(106, "strtoul", _STRTOX, tier="base")
def strtoul(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    buf = vm.memory.read(r1, r2)
    vm.memory.store(r4, 8, 0)
    err, res, negative = bpf_strtoull(buf, r3)
    if err < 0:
        return neg(-err)
    if negative:
        return neg(errno.EINVAL)
    vm.memory.store(r4, 8, res)
    return err


@register_helper(182, "strncmp", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE, A.ARG_PTR_TO_CONST_STR)),
    tier="base")
def strncmp(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """strncmp(s1, s2, s1_sz): -1, 0 or 1 (lib/string.c)."""
    count = r2 & M32
    s1 = vm.memory.read(r1, count)
    for i in range(count):
        c1 = s1[i]
        c2 = vm.memory.load(r3 + i, 1)
        if c1 != c2:
            return neg(1) if c1 < c2 else 1
        if not c1:
            break
    return 0


# -- probe reads --------------------------------------------------------------------------------
def _read_any(mem: AddressSpace, addr: int, size: int) -> bytes | None:
    """``size`` bytes at ``addr`` (ctx devices included), or None where the read faults."""
    if readable(mem, addr, size):
        return mem.read(addr, size)
    if (addr & M64) >> PAGE_SHIFT not in mem.devices:
        return None
    out = bytearray()
    try:
        for i in range(size):
            out.append(mem.load(addr + i, 1))
    except BpfFault:
        return None
    return bytes(out)


def _kernel_read(vm: Vm, src: int, size: int) -> bytes | int:
    """copy_from_kernel_nofault: the bytes, or a negative errno."""
    if not is_kernel_address(src, size):
        return -errno.ERANGE
    data = _read_any(vm.memory, src, size) if size else b""
    return -errno.EFAULT if data is None else data


def _user_read(vm: Vm, src: int, size: int) -> bytes | int:
    """copy_from_user_nofault over the runtime's user memory."""
    if not user_access_ok(src, size):
        return -errno.EFAULT
    if not size:
        return b""
    mem = vm.runtime.user_memory if vm.runtime is not None else None
    if mem is None or not readable(mem, src, size):
        return -errno.EFAULT
    return mem.read(src, size)


def _probe(vm: Vm, dst: int, size: int, data: bytes | int) -> int:
    if isinstance(data, int):
        vm.memory.write(dst, bytes(size))
        return neg(-data)
    vm.memory.write(dst, data)
    return 0


def _kernel_str(vm: Vm, src: int, size: int) -> bytes | int:
    """strncpy_from_kernel_nofault: the bytes copied (NUL included) or -errno."""
    if size <= 0:
        return b""
    if not is_kernel_address(src, size):
        return -errno.ERANGE
    got = strncpy_nofault(vm.memory, src, size)
    return -errno.EFAULT if got is None else got


def _user_str(vm: Vm, src: int, size: int) -> bytes | int:
    """strncpy_from_user_nofault over the runtime's user memory."""
    if size <= 0:
        return b""
    src &= M64
    if src >= TASK_SIZE_MAX:
        return -errno.EFAULT
    mem = vm.runtime.user_memory if vm.runtime is not None else None
    if mem is None:
        return -errno.EFAULT
    got = strncpy_nofault(mem, src, size)
    return -errno.EFAULT if got is None else got


def _probe_str(vm: Vm, dst: int, size: int, got: bytes | int) -> int:
    if isinstance(got, int):
        vm.memory.write(dst, bytes(size))
        return neg(-got)
    vm.memory.write(dst, got)  # the rest of dst is left as it was
    return len(got)


_PROBE = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE_OR_ZERO,
                                     A.ARG_ANYTHING), gpl_only=True)


@register_helper(113, "probe_read_kernel", _PROBE, tier="perfmon", prog_types=TRACING_TYPES)
def probe_read_kernel(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    size = r2 & M32
    check_writable(vm.memory, r1, size)
    return _probe(vm, r1, size, _kernel_read(vm, r3, size))


@register_helper(112, "probe_read_user", _PROBE, tier="perfmon", prog_types=TRACING_TYPES)
def probe_read_user(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    size = r2 & M32
    check_writable(vm.memory, r1, size)
    return _probe(vm, r1, size, _user_read(vm, r3, size))


@register_helper(115, "probe_read_kernel_str", _PROBE, tier="perfmon", prog_types=TRACING_TYPES)
def probe_read_kernel_str(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    size = r2 & M32
    check_writable(vm.memory, r1, size)
    return _probe_str(vm, r1, size, _kernel_str(vm, r3, size))


@register_helper(114, "probe_read_user_str", _PROBE, tier="perfmon", prog_types=TRACING_TYPES)
def probe_read_user_str(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    size = r2 & M32
    check_writable(vm.memory, r1, size)
    return _probe_str(vm, r1, size, _user_str(vm, r3, size))


@register_helper(4, "probe_read", _PROBE, prog_types=TRACING_TYPES)
def probe_read(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """bpf_probe_read_compat: user memory below TASK_SIZE, kernel memory above."""
    size = r2 & M32
    check_writable(vm.memory, r1, size)
    if (r3 & M64) < TASK_SIZE_MAX:
        return _probe(vm, r1, size, _user_read(vm, r3, size))
    return _probe(vm, r1, size, _kernel_read(vm, r3, size))


@register_helper(45, "probe_read_str", _PROBE, prog_types=TRACING_TYPES)
def probe_read_str(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """bpf_probe_read_compat_str."""
    size = r2 & M32
    check_writable(vm.memory, r1, size)
    if (r3 & M64) < TASK_SIZE_MAX:
        return _probe_str(vm, r1, size, _user_str(vm, r3, size))
    return _probe_str(vm, r1, size, _kernel_str(vm, r3, size))


# -- bpf_loop -------------------------------------------------------------------------------------
@register_helper(181, "loop", Proto(RetType.RET_INTEGER, (
    A.ARG_ANYTHING, A.ARG_PTR_TO_FUNC, A.ARG_PTR_TO_STACK_OR_NULL, A.ARG_ANYTHING)),
    tier="cap_bpf")
def loop(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Call ``callback(i, ctx)`` for i < nr_loops until it returns non-zero; return
    the number of calls made (-EINVAL for flags, -E2BIG past BPF_MAX_LOOPS).

    The kernel's verifier inlines every bpf_loop call whose flags are a known
    zero (inline_bpf_loop), which is how programs call it, and the inlined code
    differs from the helper: it compares all 64 bits of nr_loops with
    BPF_MAX_LOOPS, and its -E2BIG is a 32-bit move (0x00000000fffffff9). With
    flags 0 this follows the inlined code (checked on Linux 6.18); non-zero
    flags can only come from the helper, which says -EINVAL.
    """
    if r4:
        return neg(errno.EINVAL)
    nr_loops = r1 & M64
    if nr_loops > BPF_MAX_LOOPS:
        return -errno.E2BIG & M32
    call = vm.call_function
    for i in range(nr_loops):
        if call(r2, i, r3):
            return i + 1
    return nr_loops


# -- spin locks ---------------------------------------------------------------------------------
_LOCK = Proto(RetType.RET_VOID, (A.ARG_PTR_TO_SPIN_LOCK,),
              arg_btf_id=btf_ids(arg1="BPF_PTR_POISON"))


@register_helper(93, "spin_lock", _LOCK, tier="cap_bpf")
def spin_lock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Take the lock (its u32 becomes 1, as the kernel's queued spinlock's locked byte).
    Programs run one at a time here, so a held lock means the program would deadlock."""
    if vm.memory.load(r1, 4):
        raise BpfFault(f"bpf_spin_lock on the lock at {r1 & M64:#x}, which is already held: "
                       "the kernel would deadlock here", addr=r1)
    vm.memory.store(r1, 4, 1)
    return 0


@register_helper(94, "spin_unlock", _LOCK, tier="cap_bpf")
def spin_unlock(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    vm.memory.store(r1, 4, 0)
    return 0
