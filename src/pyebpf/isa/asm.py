"""Assembler for the bpf_conformance assembly dialect.

The public conformance suite (and uBPF's test suite before it) writes its
programs in a small AT&T-flavoured dialect: ``mov32 %r0, -10``,
``ldxdw %r0, [%r1+8]``, ``lock fetch add [%r10-8], %r1``, ``jne %r1, 3, label``.
:func:`assemble` turns such text into :class:`~pyebpf.isa.insn.Insn` slots,
one per 8-byte instruction as the kernel counts them (``lddw`` takes two), so
that tests can be written and read as assembly rather than as hex words.

The dialect, in brief (see ``shared/conformance/README.md``):

* ``#`` (or ``;``) starts a comment; blank lines are ignored.
* ``name:`` defines a label at the next instruction.
* Registers are ``%r0`` .. ``%r10``; ``%r11`` .. ``%r15`` are accepted too, as
  upstream does, so that negative tests can encode an invalid register.
* Immediates are signed decimal or hex. A 32-bit field takes any value in
  ``[-2**31, 2**32 - 1]`` and stores its low 32 bits as a signed number, so
  ``0xffffffff`` is ``-1``; wider values are an error. Offsets (16 bits) and
  the ``lddw`` immediate (64 bits) follow the same rule at their width.
* Jump targets are a label, ``+N`` / ``-N`` (relative to the next
  instruction), or ``exit``, which names the first ``exit`` instruction unless
  a label called ``exit`` is defined.

Every mnemonic is an entry in a table built from the opcode enums, so the
assembler can only produce opcodes that :data:`~pyebpf.isa.opcodes.OPCODES`
knows. Any malformed line raises :class:`AsmError` with its line number.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

import attrs

from ..errors import InvalidInsn
from .insn import Insn
from .opcodes import (
    BPF_FETCH,
    OPCODES,
    AluOp,
    AtomicOp,
    CallSrc,
    Class,
    JmpOp,
    Kind,
    Mode,
    Size,
    Source,
)

__all__ = ["AsmError", "asm", "assemble"]


class AsmError(InvalidInsn):
    """A line of assembly that cannot be assembled.

    A subclass of :class:`~pyebpf.errors.InvalidInsn` (so of ``BpfError``,
    ``EINVAL``): assembling is how tests build instructions, and a caller that
    handles bad instructions handles bad assembly the same way. ``lineno`` is
    the 1-based line (counted from ``first_line``), ``text`` the line as
    written, ``reason`` what is wrong with it.
    """

    def __init__(
        self, reason: str, lineno: int | None = None, text: str = "", source: str = ""
    ) -> None:
        where = source
        if lineno is not None:
            where = f"{where} line {lineno}" if where else f"line {lineno}"
        shown = text.strip()
        message = f"{where}: {reason}" if where else reason
        if shown:
            message += f": {shown!r}"
        super().__init__(message)
        self.reason = reason
        self.lineno = lineno
        self.text = text
        self.source = source


class _Bad(Exception):
    """Internal: what is wrong with the current line (becomes an AsmError)."""


class _Form(enum.Enum):
    """The operand shape of a mnemonic; the value is the syntax shown in errors."""

    ALU = "%rD, %rS|imm"
    MOVSX = "%rD, %rS"
    UNARY = "%rD"
    LDX = "%rD, [%rS+off]"
    ST = "[%rD+off], imm"
    STX = "[%rD+off], %rS"
    ATOMIC = "[%rD+off], %rS"
    LDDW = "%rD, imm64"
    LD_ABS = "imm"
    LD_IND = "%rS, imm"
    JA = "target"
    JA32 = "target"
    JCC = "%rD, %rS|imm, target"
    CALL = "N | local target | %rN"
    EXIT = ""

    @property
    def arity(self) -> int:
        return len(self.value.split(",")) if self.value else 0


@attrs.frozen
class _Op:
    """One mnemonic: its operand form and the fixed fields it encodes.

    For forms whose source may be a register or an immediate, ``code`` is the
    immediate (``BPF_K``) variant; the encoder ors in ``BPF_X``.
    """

    form: _Form
    code: int
    off: int = 0
    imm: int = 0


# --- the mnemonic tables ------------------------------------------------------

#: Suffixes naming the 64-bit and 32-bit variant of an ALU mnemonic.
_ALU_SUFFIXES: dict[Class, tuple[str, ...]] = {Class.ALU64: ("", "64"), Class.ALU: ("32",)}
#: Source widths ``movsx`` may sign-extend from, per class (ISA v4).
_MOVSX_WIDTHS: dict[Class, tuple[int, ...]] = {Class.ALU64: (8, 16, 32), Class.ALU: (8, 16)}
_SIZE_SUFFIXES: dict[str, Size] = {"b": Size.B, "h": Size.H, "w": Size.W, "dw": Size.DW}
#: The atomic operations ``lock`` names; xchg and cmpxchg carry BPF_FETCH already.
_ATOMIC_OPS: tuple[AtomicOp, ...] = (
    AtomicOp.ADD,
    AtomicOp.AND,
    AtomicOp.OR,
    AtomicOp.XOR,
    AtomicOp.XCHG,
    AtomicOp.CMPXCHG,
)
_ATOMIC_SIZES: dict[str, Size] = {"": Size.DW, "32": Size.W}


def _build_mnemonics() -> dict[str, _Op]:
    table: dict[str, _Op] = {}

    def add(name: str, op: _Op) -> None:
        # Only opcodes the ISA table knows; both source variants for ALU/JCC.
        codes = (
            [op.code | Source.K, op.code | Source.X]
            if op.form in (_Form.ALU, _Form.JCC)
            else [op.code]
        )
        assert all(c in OPCODES for c in codes), name
        assert name not in table, name
        table[name] = op

    for cls, suffixes in _ALU_SUFFIXES.items():
        for sfx in suffixes:
            for aop in AluOp:
                if aop is AluOp.NEG:
                    add(f"neg{sfx}", _Op(_Form.UNARY, cls | aop | Source.K))
                elif aop is not AluOp.END:
                    add(aop.name.lower() + sfx, _Op(_Form.ALU, cls | aop))
            # Signed division and modulo are DIV/MOD with off = 1 (ISA v4).
            add(f"sdiv{sfx}", _Op(_Form.ALU, cls | AluOp.DIV, off=1))
            add(f"smod{sfx}", _Op(_Form.ALU, cls | AluOp.MOD, off=1))
        bits = 64 if cls is Class.ALU64 else 32
        for width in _MOVSX_WIDTHS[cls]:
            add(f"movsx{width}{bits}", _Op(_Form.MOVSX, cls | AluOp.MOV | Source.X, off=width))

    for width in (16, 32, 64):
        # BPF_ALU | BPF_END: K = to little-endian, X = to big-endian; ALU64 = bswap.
        add(f"le{width}", _Op(_Form.UNARY, Class.ALU | AluOp.END | Source.K, imm=width))
        add(f"be{width}", _Op(_Form.UNARY, Class.ALU | AluOp.END | Source.X, imm=width))
        for name in (f"swap{width}", f"bswap{width}"):
            add(name, _Op(_Form.UNARY, Class.ALU64 | AluOp.END | Source.K, imm=width))

    for sfx, size in _SIZE_SUFFIXES.items():
        candidates = {
            f"ldx{sfx}": (_Form.LDX, Class.LDX | Mode.MEM | size),
            f"ldxs{sfx}": (_Form.LDX, Class.LDX | Mode.MEMSX | size),
            f"st{sfx}": (_Form.ST, Class.ST | Mode.MEM | size),
            f"stx{sfx}": (_Form.STX, Class.STX | Mode.MEM | size),
            f"ldabs{sfx}": (_Form.LD_ABS, Class.LD | Mode.ABS | size),
            f"ldind{sfx}": (_Form.LD_IND, Class.LD | Mode.IND | size),
        }
        for name, (form, code) in candidates.items():
            if code in OPCODES:  # e.g. no ldxsdw, no ldabsdw
                add(name, _Op(form, code))
    add("lddw", _Op(_Form.LDDW, Class.LD | Mode.IMM | Size.DW))

    for jop in JmpOp:
        spec = OPCODES.get(Class.JMP | jop | Source.K)
        if spec is not None and spec.kind is Kind.JCC:
            add(jop.name.lower(), _Op(_Form.JCC, Class.JMP | jop))
            add(jop.name.lower() + "32", _Op(_Form.JCC, Class.JMP32 | jop))
    add("ja", _Op(_Form.JA, Class.JMP | JmpOp.JA))
    add("ja32", _Op(_Form.JA32, Class.JMP32 | JmpOp.JA))
    add("call", _Op(_Form.CALL, Class.JMP | JmpOp.CALL))
    add("exit", _Op(_Form.EXIT, Class.JMP | JmpOp.EXIT))
    return table


def _build_lock_ops() -> dict[str, _Op]:
    """``lock`` operations keyed by ``op[32]``; ``imm`` holds the non-fetch form."""
    table: dict[str, _Op] = {}
    for aop in _ATOMIC_OPS:
        for sfx, size in _ATOMIC_SIZES.items():
            code = Class.STX | Mode.ATOMIC | size
            assert code in OPCODES
            table[aop.name.lower() + sfx] = _Op(_Form.ATOMIC, code, imm=int(aop))
    return table


#: Every mnemonic but ``lock``, mapped to its form and fixed fields.
_MNEMONICS: dict[str, _Op] = _build_mnemonics()
#: The operations after ``lock [fetch]``.
_LOCK_OPS: dict[str, _Op] = _build_lock_ops()


# --- operands -------------------------------------------------------------------

_REG_RE = re.compile(r"%r([0-9]|1[0-5])", re.ASCII)
_INT_RE = re.compile(r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|([0-9]+))", re.ASCII)
_MEM_RE = re.compile(r"\[\s*([^\s+\-\]]+)\s*(?:([+-])\s*([0-9A-Za-z]+)\s*)?\]", re.ASCII)
_LABEL_RE = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$]*", re.ASCII)
_LABEL_DEF_RE = re.compile(r"([A-Za-z_.$][A-Za-z0-9_.$]*)\s*:(.*)", re.ASCII | re.DOTALL)
_REL_RE = re.compile(r"[+-]\s*(?:0[xX][0-9a-fA-F]+|[0-9]+)", re.ASCII)
#: More digits than any 64-bit number needs (and far below int()'s digit limit).
_MAX_DIGITS = 24
_COMMENT_CHARS = "#;"


def _reg(text: str) -> int:
    m = _REG_RE.fullmatch(text)
    if m is None:
        raise _Bad(f"expected a register %r0..%r10, got {text!r}")
    return int(m.group(1))


def _int(text: str) -> int:
    """A signed decimal or hex literal, unbounded (range checks are the caller's)."""
    m = _INT_RE.fullmatch(text.strip())
    if m is None:
        raise _Bad(f"expected a number, got {text!r}")
    sign, hexd, decd = m.groups()
    digits = hexd if hexd is not None else decd
    if len(digits.lstrip("0")) > _MAX_DIGITS:
        raise _Bad(f"number {text!r} is too wide")
    value = int(hexd, 16) if hexd is not None else int(decd)
    return -value if sign == "-" else value


def _fit(value: int, bits: int, what: str) -> int:
    """``value`` stored in a signed ``bits``-wide field.

    Accepts ``[-2**(bits-1), 2**bits - 1]``: an unsigned spelling of the bit
    pattern (``0xffffffff`` for a 32-bit ``-1``) is as good as the signed one.
    """
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise _Bad(f"{what} {value:#x} does not fit in {bits} bits")
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _imm32(text: str) -> int:
    return _fit(_int(text), 32, "immediate")


def _mem(text: str) -> tuple[int, int]:
    """``[%rN]``, ``[%rN+off]`` or ``[%rN-off]`` as (register, signed 16-bit offset)."""
    m = _MEM_RE.fullmatch(text)
    if m is None:
        raise _Bad(f"expected a memory operand [%rN+off], got {text!r}")
    reg_text, sign, off_text = m.groups()
    reg = _reg(reg_text)
    if sign is None:
        return reg, 0
    return reg, _fit(_int(sign + off_text), 16, "offset")


def _is_reg(text: str) -> bool:
    return text.startswith("%")


@attrs.frozen
class _Target:
    """A jump or call target still to resolve: a label, in field ``off`` or ``imm``."""

    label: str
    field: str


def _target(text: str, field: str) -> int | _Target:
    """``+N`` / ``-N`` (a relative count of slots) or a label name."""
    if _REL_RE.fullmatch(text):
        value = _int(re.sub(r"\s", "", text))
        bits = 16 if field == "off" else 32
        if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            raise _Bad(f"jump offset {value} does not fit in a signed {bits}-bit {field}")
        return value
    if _LABEL_RE.fullmatch(text):
        return _Target(text, field)
    raise _Bad(f"expected a label, +N or -N as target, got {text!r}")


# --- encoders, one per form -------------------------------------------------------

_Encoded = tuple[list[Insn], _Target | None]


def _with_target(insn: Insn, target: int | _Target) -> _Encoded:
    if isinstance(target, _Target):
        return [insn], target
    return [attrs.evolve(insn, **{_field_of(insn): target})], None


def _field_of(insn: Insn) -> str:
    """Where a jump's distance goes: ``imm`` for ja32 and calls, else ``off``."""
    is_ja32 = insn.code == Class.JMP32 | JmpOp.JA
    return "imm" if is_ja32 or insn.code == Class.JMP | JmpOp.CALL else "off"


def _enc_alu(op: _Op, a: list[str]) -> _Encoded:
    dst = _reg(a[0])
    if _is_reg(a[1]):
        return [Insn(op.code | Source.X, dst, _reg(a[1]), op.off)], None
    return [Insn(op.code | Source.K, dst, 0, op.off, _imm32(a[1]))], None


def _enc_movsx(op: _Op, a: list[str]) -> _Encoded:
    if not _is_reg(a[1]):
        raise _Bad("movsx takes a register source, not an immediate")
    return [Insn(op.code, _reg(a[0]), _reg(a[1]), op.off)], None


def _enc_unary(op: _Op, a: list[str]) -> _Encoded:
    return [Insn(op.code, _reg(a[0]), 0, op.off, op.imm)], None


def _enc_ldx(op: _Op, a: list[str]) -> _Encoded:
    base, off = _mem(a[1])
    return [Insn(op.code, _reg(a[0]), base, off)], None


def _enc_st(op: _Op, a: list[str]) -> _Encoded:
    base, off = _mem(a[0])
    return [Insn(op.code, base, 0, off, _imm32(a[1]))], None


def _enc_stx(op: _Op, a: list[str]) -> _Encoded:
    base, off = _mem(a[0])
    return [Insn(op.code, base, _reg(a[1]), off, op.imm)], None


def _enc_lddw(op: _Op, a: list[str]) -> _Encoded:
    value = _fit(_int(a[1]), 64, "immediate") & 0xFFFF_FFFF_FFFF_FFFF
    lo = _fit(value & 0xFFFF_FFFF, 32, "immediate")
    hi = _fit(value >> 32, 32, "immediate")
    # The second slot carries only the upper half (opcode 0), as the kernel wants.
    return [Insn(op.code, _reg(a[0]), 0, 0, lo), Insn(0, 0, 0, 0, hi)], None


def _enc_ld_abs(op: _Op, a: list[str]) -> _Encoded:
    return [Insn(op.code, 0, 0, 0, _imm32(a[0]))], None


def _enc_ld_ind(op: _Op, a: list[str]) -> _Encoded:
    return [Insn(op.code, 0, _reg(a[0]), 0, _imm32(a[1]))], None


def _enc_ja(op: _Op, a: list[str]) -> _Encoded:
    insn = Insn(op.code)
    return _with_target(insn, _target(a[0], _field_of(insn)))


def _enc_jcc(op: _Op, a: list[str]) -> _Encoded:
    dst = _reg(a[0])
    if _is_reg(a[1]):
        insn = Insn(op.code | Source.X, dst, _reg(a[1]))
    else:
        insn = Insn(op.code | Source.K, dst, 0, 0, _imm32(a[1]))
    return _with_target(insn, _target(a[2], "off"))


def _enc_call(op: _Op, a: list[str]) -> _Encoded:
    """``call N``, ``call helper N|%rN``, ``call local target``, ``call runtime N``, ``call %rN``.

    ``call %rN`` is callx (``BPF_JMP | BPF_CALL | BPF_X``) with the register in
    dst_reg, as LLVM and bpf_conformance encode it. ``runtime`` is upstream's
    name for a kfunc call (src_reg 2).
    """
    words = a[0].split()
    if len(words) == 1:
        words = ["helper", words[0]]
    if len(words) != 2:
        raise _Bad("expected call N, call local target or call %rN")
    mode, arg = words
    if mode == "helper":
        if _is_reg(arg):
            return [Insn(op.code | Source.X, _reg(arg))], None
        return [Insn(op.code, 0, int(CallSrc.HELPER), 0, _imm32(arg))], None
    if mode == "runtime":
        return [Insn(op.code, 0, int(CallSrc.KFUNC), 0, _imm32(arg))], None
    if mode == "local":
        return _with_target(Insn(op.code, 0, int(CallSrc.PSEUDO_CALL)), _target(arg, "imm"))
    raise _Bad(f"unknown call kind {mode!r} (expected helper, local or runtime)")


def _enc_exit(op: _Op, a: list[str]) -> _Encoded:
    return [Insn(op.code)], None


_ENCODERS: dict[_Form, Callable[[_Op, list[str]], _Encoded]] = {
    _Form.ALU: _enc_alu,
    _Form.MOVSX: _enc_movsx,
    _Form.UNARY: _enc_unary,
    _Form.LDX: _enc_ldx,
    _Form.ST: _enc_st,
    _Form.STX: _enc_stx,
    _Form.ATOMIC: _enc_stx,
    _Form.LDDW: _enc_lddw,
    _Form.LD_ABS: _enc_ld_abs,
    _Form.LD_IND: _enc_ld_ind,
    _Form.JA: _enc_ja,
    _Form.JA32: _enc_ja,
    _Form.JCC: _enc_jcc,
    _Form.CALL: _enc_call,
    _Form.EXIT: _enc_exit,
}
assert set(_ENCODERS) == set(_Form)


# --- lines ----------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    cut = min((i for i in (line.find(c) for c in _COMMENT_CHARS) if i >= 0), default=len(line))
    return line[:cut]


def _split_operands(text: str) -> list[str]:
    if not text.strip():
        return []
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise _Bad("empty operand")
    return parts


def _lookup(line: str) -> tuple[str, _Op, list[str]]:
    """Split an instruction line into (mnemonic, table entry, operands)."""
    parts = line.split(None, 1)
    head, rest = (parts[0], parts[1]) if len(parts) == 2 else (line, "")
    if head == "lock":
        words = rest.split(None, 1)
        fetch = bool(words) and words[0] == "fetch"
        if fetch:
            words = words[1].split(None, 1) if len(words) == 2 else []
        if not words or words[0] not in _LOCK_OPS:
            raise _Bad("expected lock [fetch] add|and|or|xor|xchg|cmpxchg[32]")
        op = _LOCK_OPS[words[0]]
        if fetch:
            op = attrs.evolve(op, imm=op.imm | BPF_FETCH)
        return f"lock {words[0]}", op, _split_operands(words[1] if len(words) == 2 else "")
    op = _MNEMONICS.get(head)
    if op is None:
        raise _Bad(f"unknown mnemonic {head!r}")
    return head, op, _split_operands(rest)


def _encode_line(line: str) -> _Encoded:
    name, op, operands = _lookup(line)
    if len(operands) != op.form.arity:
        syntax = f" {op.form.value}" if op.form.value else ""
        raise _Bad(f"{name} takes {op.form.arity} operand(s): {name}{syntax}")
    return _ENCODERS[op.form](op, operands)


@attrs.frozen
class _Fixup:
    pc: int
    target: _Target
    lineno: int
    text: str


def assemble(text: str, *, first_line: int = 1, source: str = "") -> list[Insn]:
    """Assemble bpf_conformance-dialect text into instruction slots.

    ``first_line`` is the number given to the first line of ``text`` and
    ``source`` a name for error messages, so that a caller assembling one
    section of a file (the ``-- asm`` of a ``.data`` file) gets errors that
    point into that file. Raises :class:`AsmError` for any malformed line,
    unknown or duplicate label, or out-of-range value.
    """
    slots: list[Insn] = []
    labels: dict[str, int] = {}
    first_exit: int | None = None
    fixups: list[_Fixup] = []
    for lineno, raw in enumerate(text.split("\n"), start=first_line):
        line = _strip_comment(raw).strip()
        try:
            m = _LABEL_DEF_RE.fullmatch(line)
            if m is not None:
                name, line = m.group(1), m.group(2).strip()
                if name in labels:
                    raise _Bad(f"duplicate label {name!r}")
                labels[name] = len(slots)
            if not line:
                continue
            insns, target = _encode_line(line)
        except _Bad as e:
            raise AsmError(str(e), lineno, raw, source) from None
        if first_exit is None and insns[0].code == Class.JMP | JmpOp.EXIT:
            first_exit = len(slots)
        if target is not None:
            fixups.append(_Fixup(len(slots), target, lineno, raw))
        slots.extend(insns)

    for fx in fixups:
        dest = labels.get(fx.target.label)
        if dest is None and fx.target.label == "exit":
            dest = first_exit
        if dest is None:
            raise AsmError(f"undefined label {fx.target.label!r}", fx.lineno, fx.text, source)
        distance = dest - (fx.pc + 1)
        bits = 16 if fx.target.field == "off" else 32
        if not -(1 << (bits - 1)) <= distance < (1 << (bits - 1)):
            raise AsmError(
                f"jump to {fx.target.label!r} ({distance:+d}) does not fit in a signed "
                f"{bits}-bit {fx.target.field}",
                fx.lineno,
                fx.text,
                source,
            )
        slots[fx.pc] = attrs.evolve(slots[fx.pc], **{fx.target.field: distance})
    return slots


#: Short alias: ``asm("mov %r0, 1\nexit")``.
asm = assemble
