"""The yardstick: a straightforward pure-Python BPF interpreter.

The issue's speed target is stated against "one that decodes the program once
into tuples and dispatches each through a dict of small functions". This is
that design, kept deliberately plain, covering what the bench programs use
(64/32-bit ALU, conditional jumps, loads, lddw, exit). It is measured beside
pyebpf's interpreter on the same machine by ``benchmarks/interp.py --baseline``
so the ratio, not a remembered figure, is what gets reported.
"""

from __future__ import annotations

import struct

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


_ALU = {
    0x00: lambda a, b: a + b, 0x10: lambda a, b: a - b, 0x20: lambda a, b: a * b,
    0x30: lambda a, b: a // b if b else 0, 0x40: lambda a, b: a | b, 0x50: lambda a, b: a & b,
    0x60: lambda a, b: a << (b & 63), 0x70: lambda a, b: a >> (b & 63),
    0x90: lambda a, b: a % b if b else a, 0xA0: lambda a, b: a ^ b, 0xB0: lambda a, b: b,
    0xC0: lambda a, b: _s64(a) >> (b & 63),
}
_ALU32 = dict(_ALU)
_ALU32[0x60] = lambda a, b: a << (b & 31)
_ALU32[0x70] = lambda a, b: a >> (b & 31)
_ALU32[0xC0] = lambda a, b: _s32(a) >> (b & 31)
_JMP = {
    0x10: lambda a, b: a == b, 0x20: lambda a, b: a > b, 0x30: lambda a, b: a >= b,
    0x40: lambda a, b: a & b, 0x50: lambda a, b: a != b, 0xA0: lambda a, b: a < b,
    0xB0: lambda a, b: a <= b, 0x60: lambda a, b: _s64(a) > _s64(b),
    0x70: lambda a, b: _s64(a) >= _s64(b), 0xC0: lambda a, b: _s64(a) < _s64(b),
    0xD0: lambda a, b: _s64(a) <= _s64(b),
}
_SIZES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}


class Exit(Exception):
    pass


def _alu64(regs, mem, d, s, off, imm, pc):
    op = _ALU[imm[0]]
    b = regs[s] if imm[1] else imm[2]
    regs[d] = op(regs[d], b) & M64
    return pc + 1


def _alu32(regs, mem, d, s, off, imm, pc):
    op = _ALU32[imm[0]]
    b = (regs[s] if imm[1] else imm[2]) & M32
    regs[d] = op(regs[d] & M32, b) & M32
    return pc + 1


def _jmp(regs, mem, d, s, off, imm, pc):
    b = regs[s] if imm[1] else imm[2]
    return pc + 1 + off if _JMP[imm[0]](regs[d], b) else pc + 1


def _ja(regs, mem, d, s, off, imm, pc):
    return pc + 1 + off


def _ldx(regs, mem, d, s, off, imm, pc):
    base, buf = mem
    addr = regs[s] + off - base
    size = imm
    if addr < 0 or addr + size > len(buf):
        raise IndexError("out of bounds")
    regs[d] = int.from_bytes(buf[addr:addr + size], "little")
    return pc + 1


def _lddw(regs, mem, d, s, off, imm, pc):
    regs[d] = imm
    return pc + 2


def _exit(regs, mem, d, s, off, imm, pc):
    raise Exit


def decode(prog: bytes) -> list[tuple]:
    """Decode once into (handler, dst, src, off, imm-ish) tuples."""
    out = []
    for i in range(0, len(prog), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", prog, i)
        d, s, cls = regs & 15, regs >> 4, code & 7
        if code == 0x18:
            hi = struct.unpack_from("<i", prog, i + 12)[0]
            out.append((_lddw, d, s, off, (imm & M32) | ((hi & M32) << 32)))
        elif code == 0x95:
            out.append((_exit, d, s, off, imm))
        elif code == 0x05:
            out.append((_ja, d, s, off, imm))
        elif cls in (4, 7):
            k = imm & (M64 if cls == 7 else M32)
            out.append((_alu64 if cls == 7 else _alu32, d, s, off, (code & 0xF0, code & 8, k)))
        elif cls == 5:
            out.append((_jmp, d, s, off, (code & 0xF0, code & 8, imm & M64)))
        elif cls == 1:
            out.append((_ldx, d, s, off, _SIZES[code & 0x18]))
        elif code == 0:
            out.append((None, 0, 0, 0, 0))
        else:
            raise ValueError(f"naive interpreter does not handle opcode {code:#x}")
    return out


def run(prog: bytes, mem: bytes) -> tuple[int, int]:
    """Run to exit; return (r0, instructions executed)."""
    code = decode(prog)
    base = 0x10000
    regs = [0] * 11
    regs[1], regs[2] = (base if mem else 0), len(mem)
    memory = (base, bytearray(mem))
    dispatch = {i: t for i, t in enumerate(code)}
    pc = 0
    n = 0
    try:
        while True:
            fn, d, s, off, imm = dispatch[pc]
            n += 1
            pc = fn(regs, memory, d, s, off, imm, pc)
    except Exit:
        return regs[0], n
