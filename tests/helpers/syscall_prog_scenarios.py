"""SYSCALL programs calling bpf_sys_bpf, bpf_btf_find_by_name_kind and
bpf_kallsyms_lookup_name, as assembler text: run on pyebpf
(tests/helpers/test_syscall_prog_helpers.py) and on the kernel
(tests/kernel/test_syscall_prog_differential.py).

Helpers take no ctx pointer for a buffer (the kernel refuses ``R2 type=ctx``),
so each program builds its buffers on the stack and copies results to its ctx:
[0:8] the helper's r0, then what the test reads back.
"""

from __future__ import annotations


def to_stack(data: bytes, at: int) -> str:
    """Store ``data`` (a multiple of 8 bytes) on the stack at fp+``at`` (negative)."""
    return "".join(f"lddw %r2, {int.from_bytes(data[i:i + 8], 'little')}\n"
                   f"stxdw [%r10{at + i:+d}], %r2\n" for i in range(0, len(data), 8))


def sys_bpf_text(cmd: int, attr: bytes, setup: str = "") -> tuple[str, int]:
    """A program that builds ``attr`` at fp-len (``setup`` may then patch it), calls
    bpf_sys_bpf(cmd, attr, len) and copies r0 and the attr afterwards to its ctx;
    (the text, the ctx size it needs)."""
    attr = attr + bytes(-len(attr) % 8)
    n = len(attr)
    copy_back = "".join(f"ldxdw %r2, [%r10{-n + i:+d}]\nstxdw [%r6+{8 + i}], %r2\n"
                        for i in range(0, n, 8))
    text = (f"mov %r6, %r1\n{to_stack(attr, -n)}{setup}mov %r1, {cmd}\nmov %r2, %r10\n"
            f"add %r2, {-n}\nmov %r3, {n}\ncall 166\nstxdw [%r6+0], %r0\n{copy_back}"
            "mov %r0, 0\nexit")
    return text, 8 + n


def lookup_text(func: int, name: bytes, arg3: int, arg4: str, size: int | None = None) -> str:
    """``func(name at fp-64, size, arg3, arg4)``; the ctx (16 bytes) after: [0:8] r0,
    [8:16] the u64 at fp-72 (kallsyms' result slot, all ones before the call)."""
    size = len(name) if size is None else size
    return (f"mov %r6, %r1\n{to_stack(name.ljust(64, bytes(1))[:64], -64)}"
            "lddw %r2, -1\nstxdw [%r10-72], %r2\n"
            f"mov %r1, %r10\nadd %r1, -64\nmov %r2, {size}\nmov %r3, {arg3}\n{arg4}"
            f"call {func}\nstxdw [%r6+0], %r0\nldxdw %r2, [%r10-72]\nstxdw [%r6+8], %r2\n"
            "mov %r0, 0\nexit")
