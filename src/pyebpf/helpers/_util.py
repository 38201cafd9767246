"""What helper implementations share: the runtime, maps by pointer, memory access.

Helpers see the program's address space through ``vm.memory``. Reads and
writes go through its checked ``read``/``write``, so a bad pointer from an
unverified program raises :class:`~pyebpf.errors.BpfFault` (the verifier
would have rejected it). Helpers never allocate what a program asks for before
checking it is addressable: a size of 4 GiB on a bad pointer faults, it does
not exhaust memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import BpfFault
from ..memory import PAGE_SHIFT, AddressSpace

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..maps.base import BpfMap
    from ..progs.skb import SkBuff
    from ..runtime import Runtime

T = TypeVar("T")
M32 = 0xFFFF_FFFF
M64 = (1 << 64) - 1

#: x86-64 with 4-level page tables: user addresses end below TASK_SIZE_MAX
#: ((1 << 47) - PAGE_SIZE); copy_from_kernel_nofault refuses anything below
#: TASK_SIZE_MAX + PAGE_SIZE, and non-canonical addresses.
TASK_SIZE_MAX = (1 << 47) - 4096
KERNEL_MIN = TASK_SIZE_MAX + 4096


def neg(err: int) -> int:
    """A negative errno as the u64 a helper returns in r0."""
    return -err & M64


def s64(v: int) -> int:
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def runtime_of(vm: Vm, helper: str) -> Runtime:
    """The Runtime a helper acts on (a bare Vm has none: the helper faults)."""
    rt = vm.runtime
    if rt is None:
        raise BpfFault(f"bpf_{helper} needs a Runtime (load the program with bpf() or "
                       "give Vm(runtime=...))")
    return rt  # type: ignore[no-any-return]


def map_at(vm: Vm, addr: int, helper: str) -> BpfMap:
    """The map a program's CONST_PTR_TO_MAP register designates."""
    m = runtime_of(vm, helper).maps_by_addr.get(addr)
    if m is None:
        raise BpfFault(f"bpf_{helper}: {addr:#x} is not a map pointer", addr=addr)
    return m  # type: ignore[return-value]


def check_writable(mem: AddressSpace, addr: int, size: int) -> None:
    """Fault unless ``size`` bytes at ``addr`` lie in one writable region."""
    if size <= 0:
        return
    addr &= M64
    entry = mem.wpages.get(addr >> PAGE_SHIFT)
    if entry is None or addr - entry[0] + size > entry[1]:
        raise mem.fault(addr, size, True)


def readable(mem: AddressSpace, addr: int, size: int) -> bool:
    """Whether ``size`` bytes at ``addr`` can be read as one range."""
    if size <= 0:
        return True
    addr &= M64
    entry = mem.rpages.get(addr >> PAGE_SHIFT)
    return entry is not None and addr - entry[0] + size <= entry[1]


def read_cstr(mem: AddressSpace, addr: int, count: int) -> tuple[bytes, bool] | None:
    """``strncpy_from_*_nofault`` over ``mem``: up to ``count`` bytes from ``addr``
    stopping after a NUL. Returns (the bytes read, NUL excluded; whether a NUL
    ended them), or None when the read faults before either happens."""
    addr &= M64
    entry = mem.rpages.get(addr >> PAGE_SHIFT)
    if entry is None:
        return None
    base, size, buf = entry
    off = addr - base
    avail = size - off
    want = min(count, avail)
    nul = buf.find(b"\0", off, off + want)
    if nul >= 0:
        return bytes(buf[off:nul]), True
    if count <= avail:
        return bytes(buf[off:off + count]), False
    return None  # ran off the end of the region (into its guard page)


def strncpy_nofault(mem: AddressSpace, addr: int, count: int) -> bytes | None:
    """What ``strncpy_from_kernel_nofault(dst, addr, count)`` leaves in ``dst``
    (NUL included; truncated strings get a NUL in their last byte), or None
    for -EFAULT. ``count`` <= 0 copies nothing (b"")."""
    if count <= 0:
        return b""
    got = read_cstr(mem, addr, count)
    if got is None:
        return None
    data, terminated = got
    if terminated:
        return data + b"\0"
    return data[: count - 1] + b"\0"


def is_kernel_address(addr: int, size: int = 1) -> bool:
    """x86-64 ``copy_from_kernel_nofault_allowed``: not user space, canonical."""
    addr &= M64
    if addr < KERNEL_MIN:
        return False
    return addr >> 47 == (1 << 17) - 1  # canonical upper half (48-bit virtual addresses)


def user_access_ok(addr: int, size: int) -> bool:
    """x86-64 ``__access_ok``: the range lies below TASK_SIZE_MAX."""
    addr &= M64
    return size <= TASK_SIZE_MAX and addr <= TASK_SIZE_MAX - size


def user_memory(vm: Vm) -> AddressSpace | None:
    """The simulated user address space (the Runtime's), if any."""
    rt: Any = vm.runtime
    return None if rt is None else rt.user_memory


def _tracing_types() -> frozenset[int]:
    from ..uapi import ProgType

    return frozenset(int(t) for t in (
        ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.PERF_EVENT, ProgType.RAW_TRACEPOINT,
        ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.TRACING, ProgType.LSM, ProgType.SYSCALL))


#: The program types whose get_func_proto goes through ``bpf_tracing_func_proto``.
TRACING_TYPES = _tracing_types()


def ctx_object(vm: Vm, ctx: int, cls: type[T], what: str) -> T:
    """The kernel-side object (an SkBuff, XdpBuff ...) behind the ctx pointer a
    helper got; a fault if the pointer isn't such a ctx (an unverified program)."""
    entry = vm.memory.devices.get((ctx & M64) >> PAGE_SHIFT)
    obj = getattr(entry[2], "obj", None) if entry is not None else None
    if not isinstance(obj, cls):
        raise BpfFault(f"{ctx:#x} is not a {what} ctx", addr=ctx)
    return obj


def skb_arg(vm: Vm, ctx: int) -> SkBuff:
    """The SkBuff behind the ctx pointer an skb helper got."""
    from ..progs.skb import SkBuff

    return ctx_object(vm, ctx, SkBuff, "__sk_buff")
