"""A grammar of small, often invalid, SCHED_CLS programs for verifier tests.

Blocks: scalar moves and ALU ops, stack stores and loads at fixed slots,
packet reads behind a data_end check with random offsets, map lookups (key
fp-8, maybe unwritten) with or without a NULL check and a value access, and
forward conditional jumps over the next blocks. Map lddw's carry
:data:`MAP_FD`; :func:`patched` puts a real fd in.
"""

from __future__ import annotations

from hypothesis import strategies as st

from pyebpf.isa import Insn

__all__ = ["MAP_FD", "VALUE_SIZE", "patched", "programs"]

#: The placeholder of a map fd in a generated lddw (patched per side).
MAP_FD = -1
#: The value size of the (hash, 8-byte key) map the programs look up.
VALUE_SIZE = 16

regs = st.integers(0, 5)
imms = st.sampled_from([0, 1, 2, 4, 7, 8, 15, 16, 63, 255, -1, -8, 1 << 20])
alu_ops = st.sampled_from([0x00, 0x10, 0x20, 0x40, 0x50, 0x60, 0x70, 0xA0])  # add..xor
slots = st.sampled_from([-8, -16, -24, -32, -4])


@st.composite
def _block(draw: st.DrawFn) -> list[Insn]:
    kind = draw(st.sampled_from(["mov", "alu", "alu_x", "st", "stx", "ldx", "pkt", "map"]))
    r, s = draw(regs), draw(regs)
    if kind == "mov":
        return [Insn(0xB7, r, 0, 0, draw(imms))]
    if kind == "alu":
        op = draw(alu_ops)
        imm = draw(st.integers(0, 31)) if op in (0x60, 0x70) else draw(imms)
        cls = draw(st.sampled_from([0x07, 0x04]))
        return [Insn(cls | op, r, 0, 0, imm)]
    if kind == "alu_x":
        op = draw(st.sampled_from([0x00, 0x10, 0x50, 0x40, 0xA0]))
        return [Insn(0x0F | op, r, s)]
    if kind == "st":
        return [Insn(0x7A, 10, 0, draw(slots), draw(imms))]
    if kind == "stx":
        return [Insn(0x7B, 10, r, draw(slots), 0)]
    if kind == "ldx":
        return [Insn(0x79, r, 10, draw(slots), 0)]
    if kind == "pkt":
        # r9 = data + n; if r9 > data_end skip; r = *(u8 *)(data + k)
        n, k = draw(st.integers(0, 20)), draw(st.integers(-2, 24))
        return [Insn(0xBF, 9, 7), Insn(0x07, 9, 0, 0, n), Insn(0x2D, 9, 8, 1, 0),
                Insn(0x71, r, 7, k, 0)]
    # map lookup of key fp-8 (maybe unwritten), maybe NULL-checked, value access
    checked = draw(st.booleans())
    off = draw(st.sampled_from([0, 4, 8, 12, 16, -4]))
    body = [Insn(0x79, r, 0, off, 0)] if draw(st.booleans()) else [Insn(0x7A, 0, 0, off, 7)]
    block = [Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -8),
             Insn(0x18, 1, 1, 0, MAP_FD), Insn(0), Insn(0x85, 0, 0, 0, 1)]
    if checked:
        block.append(Insn(0x15, 0, 0, len(body), 0))  # if r0 == 0 goto past the access
    return block + body


@st.composite
def programs(draw: st.DrawFn) -> list[Insn]:
    blocks = draw(st.lists(_block(), min_size=1, max_size=8))
    # Forward conditional jumps between blocks: over the next 1-2 blocks.
    out: list[list[Insn]] = []
    for i, b in enumerate(blocks):
        if draw(st.booleans()) and i + 1 < len(blocks):
            skip = draw(st.integers(1, min(2, len(blocks) - i - 1)))
            length = sum(len(x) for x in blocks[i + 1:i + 1 + skip])
            op = draw(st.sampled_from([0x15, 0x55, 0x25, 0xA5, 0x65]))
            b = [*b, Insn(op, draw(regs), 0, length, draw(imms))]
        out.append(b)
    prologue = [Insn(0x61, 7, 1, 76, 0), Insn(0x61, 8, 1, 80, 0)]  # r7 = data, r8 = end
    init = [Insn(0xB7, r, 0, 0, 0) for r in draw(st.sets(regs, max_size=6))]
    return [*prologue, *init, *(i for b in out for i in b), Insn(0xB7, 0), Insn(0x95)]


def patched(insns: list[Insn], fd: int) -> bytes:
    return b"".join(Insn(i.code, i.dst, i.src, i.off, fd).pack()
                    if i.code == 0x18 and i.imm == MAP_FD else i.pack() for i in insns)
