"""The instruction set: opcode tables, instruction records, assembler, disassembler."""

from .insn import INSN_SIZE, Insn, decode, encode, validate
from .opcodes import (
    OPCODES,
    AluOp,
    AtomicOp,
    CallSrc,
    Class,
    JmpOp,
    Kind,
    Mode,
    PseudoSrc,
    Size,
    Source,
)

__all__ = [
    "INSN_SIZE",
    "OPCODES",
    "AluOp",
    "AtomicOp",
    "CallSrc",
    "Class",
    "Insn",
    "JmpOp",
    "Kind",
    "Mode",
    "PseudoSrc",
    "Size",
    "Source",
    "decode",
    "encode",
    "validate",
]
