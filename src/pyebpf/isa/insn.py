"""``struct bpf_insn`` as a record, and the decoder/encoder for program bytes.

One :class:`Insn` per 8-byte slot, exactly as the kernel counts instructions:
a 64-bit immediate load (``lddw``) takes two slots, the second with opcode 0
holding the upper 32 bits. Keeping the kernel's slot numbering means jump
offsets, verifier log line numbers and ``pc`` values all agree with the kernel.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import attrs

from ..errors import InvalidInsn
from .opcodes import ATOMIC_OPS_BY_SIZE, OPCODES, AluOp, Class, Kind, OpSpec, Source

__all__ = ["INSN_SIZE", "MAX_REG", "Insn", "decode", "encode", "validate"]

INSN_SIZE = 8
#: r10 (the frame pointer) is the highest register a program may name.
MAX_REG = 10

_STRUCT = struct.Struct("<BBhi")


@attrs.frozen
class Insn:
    """One instruction slot: ``code``, ``dst``, ``src``, ``off`` (s16), ``imm`` (s32)."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> Insn:
        """Decode the 8 bytes at ``offset`` (little-endian, as BPF is on x86-64)."""
        buf = memoryview(buf).cast("B") if isinstance(buf, memoryview) else buf
        if offset < 0 or len(buf) - offset < INSN_SIZE:
            raise InvalidInsn(f"need {INSN_SIZE} bytes for an instruction at offset {offset}")
        code, regs, off, imm = _STRUCT.unpack_from(buf, offset)
        return cls(code, regs & 0xF, regs >> 4, off, imm)

    def pack(self) -> bytes:
        """The 8 bytes of this slot. Fields out of their C range are an error."""
        if not (0 <= self.code <= 0xFF and 0 <= self.dst <= 0xF and 0 <= self.src <= 0xF):
            raise InvalidInsn(f"field out of range in {self!r}")
        if not (-0x8000 <= self.off <= 0x7FFF and -0x8000_0000 <= self.imm <= 0x7FFF_FFFF):
            raise InvalidInsn(f"off or imm out of range in {self!r}")
        return _STRUCT.pack(self.code, self.dst | (self.src << 4), self.off, self.imm)

    @property
    def spec(self) -> OpSpec | None:
        """The opcode's table entry, or None for an opcode the ISA does not have."""
        return OPCODES.get(self.code)

    @property
    def cls(self) -> Class:
        return Class(self.code & 0x07)

    @property
    def is_lddw(self) -> bool:
        return self.code == 0x18


def decode(data: bytes | bytearray | memoryview, *, strict: bool = True) -> list[Insn]:
    """Split program bytes into instruction slots.

    With ``strict`` (the default) the program must also be well-formed enough to
    be given a meaning (see :func:`validate`); the verifier decodes with
    ``strict=False`` so that it can report such problems in the kernel's words.
    """
    mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if len(mv) % INSN_SIZE:
        raise InvalidInsn(f"program length {len(mv)} is not a multiple of {INSN_SIZE}")
    insns = [Insn(*_fields(*_STRUCT.unpack_from(mv, i))) for i in range(0, len(mv), INSN_SIZE)]
    if strict:
        validate(insns)
    return insns


def _fields(code: int, regs: int, off: int, imm: int) -> tuple[int, int, int, int, int]:
    return code, regs & 0xF, regs >> 4, off, imm


def encode(insns: Iterable[Insn]) -> bytes:
    """The bytes of a list of slots (the inverse of :func:`decode`)."""
    return b"".join(i.pack() for i in insns)


#: Valid ``off`` of a register mov: 0 plain, 8/16/32 sign-extending (movsx), and
#: for ALU64 1 = BPF_ADDR_SPACE_CAST (arena pointers).
_MOVSX_OFFS = {Class.ALU: (0, 8, 16), Class.ALU64: (0, 1, 8, 16, 32)}


def _check_fields(insn: Insn, spec: OpSpec) -> str | None:
    """What makes this slot meaningless, or None. Reserved-but-ignored fields pass."""
    if insn.dst > MAX_REG or insn.src > MAX_REG:
        return f"invalid register (dst r{insn.dst}, src r{insn.src})"
    kind = spec.kind
    if kind is Kind.ALU:
        if spec.op is AluOp.MOV and spec.src is Source.X and insn.off not in _MOVSX_OFFS[spec.cls]:
            return f"invalid sign-extension width {insn.off} for mov"
        if spec.op in (AluOp.DIV, AluOp.MOD) and insn.off not in (0, 1):
            return f"invalid offset {insn.off} for div/mod (0 unsigned, 1 signed)"
    elif kind is Kind.END:
        if insn.imm not in (16, 32, 64):
            return f"invalid byte swap width {insn.imm}"
    elif kind is Kind.ATOMIC:
        assert spec.size is not None
        if insn.imm not in ATOMIC_OPS_BY_SIZE[spec.size]:
            return f"invalid atomic operation {insn.imm:#x}"
    elif kind is Kind.CALL:
        if insn.src > 2:
            return f"invalid call kind src_reg={insn.src}"
    elif kind is Kind.LD_IMM64:
        if insn.src > 6:
            return f"invalid pseudo source src_reg={insn.src} for lddw"
    elif kind is Kind.JCOND and insn.src != 0:
        return f"invalid conditional pseudo-jump src_reg={insn.src}"
    return None


def validate(insns: list[Insn]) -> None:
    """Raise :class:`InvalidInsn` unless every slot can be given a meaning.

    Checks the opcode against the ISA table, register numbers, the fields that
    select semantics (sign-extension width, signedness of div/mod, swap width,
    atomic op, call and lddw kinds) and that every ``lddw`` has its second slot.
    Reserved fields that change nothing are left to the verifier.
    """
    i = 0
    n = len(insns)
    while i < n:
        insn = insns[i]
        spec = OPCODES.get(insn.code)
        if spec is None:
            raise InvalidInsn(f"unknown opcode {insn.code:#04x} at insn {i}", i)
        problem = _check_fields(insn, spec)
        if problem:
            raise InvalidInsn(f"{problem} at insn {i}", i)
        if spec.kind is Kind.LD_IMM64:
            if i + 1 >= n:
                raise InvalidInsn(f"lddw at insn {i} lacks its second slot", i)
            nxt = insns[i + 1]
            if nxt.code or nxt.dst or nxt.src or nxt.off:
                raise InvalidInsn(f"invalid second slot of lddw at insn {i + 1}", i + 1)
            i += 2
        else:
            i += 1
