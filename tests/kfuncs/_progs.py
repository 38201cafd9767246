"""Small programs around the numeric iterator, shared by the kfunc tests.

Each is a list of instructions in the shapes clang gives ``bpf_for`` and
``bpf_repeat`` (the iterator at fp-8), so the same bytes can be loaded by
pyebpf and, in the kernel tests, by the real kernel: pyebpf's kfunc ids are
the reference kernel's.
"""

from __future__ import annotations

from pyebpf.isa.insn import Insn as I
from pyebpf.kfuncs.iter_num import BTF_ID_DESTROY, BTF_ID_NEW, BTF_ID_NEXT

EXIT0 = [I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)]


def kcall(btf_id: int) -> I:
    return I(0x85, 0, 2, 0, btf_id)


def fp(reg: int = 1, off: int = -8) -> list[I]:
    """r<reg> = r10 + off."""
    return [I(0xBF, reg, 10, 0, 0), I(0x07, reg, 0, 0, off)]


def new(start: int = 0, end: int = 3) -> list[I]:
    return [*fp(), I(0xB4, 2, 0, 0, start), I(0xB4, 3, 0, 0, end), kcall(BTF_ID_NEW)]


def nxt() -> list[I]:
    return [*fp(), kcall(BTF_ID_NEXT)]


def destroy() -> list[I]:
    return [*fp(), kcall(BTF_ID_DESTROY)]


def repeat(n: int) -> list[I]:
    """count = 0; bpf_repeat(n) count += 2; return count (clang's loop shape)."""
    return [*new(0, n), I(0xB4, 6, 0, 0, -2), *nxt(), I(0x04, 6, 0, 0, 2),
            I(0x55, 0, 0, -5, 0), *destroy(), I(0xBC, 0, 6, 0, 0), I(0x95, 0, 0, 0, 0)]


def sum_range(start: int, end: int) -> list[I]:
    """sum = 0; bpf_for(i, start, end) sum += i; return sum (without the bounds re-check)."""
    return [*new(start, end), I(0xB4, 6, 0, 0, 0),
            *nxt(),                 # 6-8
            I(0x15, 0, 0, 3, 0),    # 9: if r0 == 0 goto 13
            I(0x61, 1, 0, 0, 0),    # 10: w1 = *(u32 *)(r0 + 0)
            I(0x0C, 6, 1, 0, 0),    # 11: w6 += w1
            I(0x05, 0, 0, -7, 0),   # 12: goto 6
            *destroy(), I(0xBC, 0, 6, 0, 0), I(0x95, 0, 0, 0, 0)]
