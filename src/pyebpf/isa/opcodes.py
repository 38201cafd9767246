"""The BPF instruction set as data: opcode fields and the table of valid opcodes.

The opcode byte packs a class (low 3 bits) with either an operation and a
source bit (ALU and JMP classes) or a mode and a size (load/store classes), as
RFC 9669 and include/uapi/linux/bpf.h lay it out. :data:`OPCODES` lists every
opcode the kernel accepts (the kernel's ``BPF_INSN_MAP`` plus the 64-bit
immediate load) with a :class:`Kind` telling which family of semantics it has;
the decoder, assembler, disassembler, interpreter and verifier all read it.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "MAX_BPF_STACK",
    "MAX_CALL_FRAMES",
    "MAX_TAIL_CALL_CNT",
    "ATOMIC_OPS_BY_SIZE",
    "BPF_FETCH",
    "OPCODES",
    "AluOp",
    "AtomicOp",
    "CallSrc",
    "Class",
    "JmpOp",
    "Kind",
    "Mode",
    "OpSpec",
    "PseudoSrc",
    "Size",
    "Source",
    "SIZE_BYTES",
]

#: Bytes of stack per frame (include/linux/filter.h).
MAX_BPF_STACK = 512
#: Call frames a program may nest, the main program included (bpf_verifier.h).
MAX_CALL_FRAMES = 8
#: Tail calls one run may chain; checked ``>= 33`` before incrementing (since 5.17).
MAX_TAIL_CALL_CNT = 33


class Class(enum.IntEnum):
    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


class Size(enum.IntEnum):
    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18


#: Width in bytes of each size code.
SIZE_BYTES = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}


class Mode(enum.IntEnum):
    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


class Source(enum.IntEnum):
    K = 0x00  # immediate operand (for END: to little-endian)
    X = 0x08  # register operand (for END: to big-endian)


class AluOp(enum.IntEnum):
    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


class JmpOp(enum.IntEnum):
    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # may_goto (src_reg BPF_MAY_GOTO = 0)


class AtomicOp(enum.IntEnum):
    """The ``imm`` of an atomic instruction (BPF_FETCH = 0x01 is or-ed in)."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


BPF_FETCH = 0x01


class PseudoSrc(enum.IntEnum):
    """``src_reg`` of a 64-bit immediate load: what the immediate names."""

    IMM = 0
    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


class CallSrc(enum.IntEnum):
    """``src_reg`` of a call: a helper id, a relative BPF-to-BPF call, a kfunc."""

    HELPER = 0
    PSEUDO_CALL = 1
    KFUNC = 2


class Kind(enum.Enum):
    """The semantic family of an opcode (what the engine and verifier switch on)."""

    ALU = "alu"  # two-operand arithmetic and mov, 32 or 64 bit
    NEG = "neg"
    END = "end"  # byte swaps: le/be (ALU class), bswap (ALU64 class)
    JA = "ja"  # unconditional jump (JMP: off; JMP32: imm, "gotol")
    JCOND = "jcond"  # may_goto
    JCC = "jcc"  # conditional jump, 32 or 64 bit compare
    CALL = "call"
    CALLX = "callx"
    EXIT = "exit"
    LD_IMM64 = "ld_imm64"
    LD_ABS = "ld_abs"
    LD_IND = "ld_ind"
    LDX = "ldx"
    LDX_SX = "ldsx"
    ST = "st"
    STX = "stx"
    ATOMIC = "atomic"


@attrs.frozen
class OpSpec:
    """One valid opcode byte and what it means."""

    code: int
    kind: Kind
    cls: Class
    #: ALU/JMP operation, or None for loads/stores.
    op: AluOp | JmpOp | None = None
    src: Source | None = None
    size: Size | None = None
    mode: Mode | None = None
    #: False for pyebpf's extensions the kernel rejects as "unknown opcode"
    #: (callx, 0x8d, which the conformance suite uses and PREVAIL accepts).
    in_kernel: bool = True

    @property
    def is64(self) -> bool:
        """True for 64-bit ALU ops and 64-bit compares."""
        return self.cls in (Class.ALU64, Class.JMP)

    @property
    def width(self) -> int:
        """Access width in bytes of a load/store opcode."""
        assert self.size is not None
        return SIZE_BYTES[self.size]


def _build_table() -> dict[int, OpSpec]:
    table: dict[int, OpSpec] = {}

    def add(spec: OpSpec) -> None:
        table[spec.code] = spec

    for cls in (Class.ALU, Class.ALU64):
        for op in AluOp:
            if op is AluOp.NEG:
                add(OpSpec(cls | op | Source.K, Kind.NEG, cls, op, Source.K))
            elif op is AluOp.END:
                # ALU: TO_LE (K) and TO_BE (X); ALU64: only the K form (bswap).
                srcs = (Source.K, Source.X) if cls is Class.ALU else (Source.K,)
                for s in srcs:
                    add(OpSpec(cls | op | s, Kind.END, cls, op, s))
            else:
                for s in Source:
                    add(OpSpec(cls | op | s, Kind.ALU, cls, op, s))
    for cls in (Class.JMP, Class.JMP32):
        for op in JmpOp:
            if op is JmpOp.JA:
                add(OpSpec(cls | op, Kind.JA, cls, op, Source.K))
            elif op is JmpOp.CALL:
                if cls is Class.JMP:
                    add(OpSpec(cls | op | Source.K, Kind.CALL, cls, op, Source.K))
                    add(OpSpec(cls | op | Source.X, Kind.CALLX, cls, op, Source.X, in_kernel=False))
            elif op is JmpOp.EXIT:
                if cls is Class.JMP:
                    add(OpSpec(cls | op, Kind.EXIT, cls, op, Source.K))
            elif op is JmpOp.JCOND:
                if cls is Class.JMP:
                    add(OpSpec(cls | op, Kind.JCOND, cls, op, Source.K))
            else:
                for s in Source:
                    add(OpSpec(cls | op | s, Kind.JCC, cls, op, s))
    add(OpSpec(Class.LD | Mode.IMM | Size.DW, Kind.LD_IMM64, Class.LD, size=Size.DW, mode=Mode.IMM))
    for size in (Size.B, Size.H, Size.W):
        add(OpSpec(Class.LD | Mode.ABS | size, Kind.LD_ABS, Class.LD, size=size, mode=Mode.ABS))
        add(OpSpec(Class.LD | Mode.IND | size, Kind.LD_IND, Class.LD, size=size, mode=Mode.IND))
        add(OpSpec(Class.LDX | Mode.MEMSX | size, Kind.LDX_SX, Class.LDX, size=size,
                   mode=Mode.MEMSX))
    for size in Size:
        add(OpSpec(Class.LDX | Mode.MEM | size, Kind.LDX, Class.LDX, size=size, mode=Mode.MEM))
        add(OpSpec(Class.ST | Mode.MEM | size, Kind.ST, Class.ST, size=size, mode=Mode.MEM))
        add(OpSpec(Class.STX | Mode.MEM | size, Kind.STX, Class.STX, size=size, mode=Mode.MEM))
        # W and DW carry every atomic op; B and H only load-acquire/store-release.
        add(OpSpec(Class.STX | Mode.ATOMIC | size, Kind.ATOMIC, Class.STX, size=size,
                   mode=Mode.ATOMIC))
    return table


#: Every opcode byte the ISA defines, keyed by the byte (see OpSpec.in_kernel).
OPCODES: dict[int, OpSpec] = _build_table()

#: Which atomic ``imm`` values are valid at each size.
ATOMIC_OPS_BY_SIZE: dict[Size, frozenset[int]] = {
    Size.W: frozenset(AtomicOp),
    Size.DW: frozenset(AtomicOp),
    Size.B: frozenset({AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL}),
    Size.H: frozenset({AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL}),
}
