"""The kernel's disassembler: instructions as the verifier log and bpftool print them.

Users meet BPF code as the lines of a verifier log (``12: (85) call
bpf_map_lookup_elem#1``) or of ``bpftool prog dump xlated``; both come from
one function, ``print_bpf_insn`` in kernel/bpf/disasm.c. Printing exactly that
text means messages users search for are the ones they see, and lets tests
compare pyebpf's log with the kernel's line by line. So this module follows
``print_bpf_insn`` branch for branch (Linux 6.18), including for encodings the
ISA does not define: it is a printer, not a validator. The kernel never prints
an unknown opcode (the verifier rejects it first), but the printer's rules
still say what such a slot looks like, and following them means random bytes
print without surprises:

- a field whose table has no entry prints ``(null)``, which is what the
  kernel's printf makes of the NULL string it would pass (``if w1 (null) 0x0
  goto pc+0`` for the undefined jump op 0xf0);
- a load/store class with a mode it cannot print gives ``BUG_ld_60``-style
  text, with no ``(code)`` prefix, exactly as the kernel writes it.

Two things are the caller's, as they are in the kernel's callbacks:

- ``helper_name`` (the kernel's ``cb_call``): names a call the helper table
  cannot (the verifier uses it for kfuncs, whose names live in BTF);
- ``imm_name`` (``cb_imm``): renders a 64-bit immediate (bpftool uses it for
  ``map[id:5]``); without it the value prints as hex, and the address of a map
  or map value is printed as 0 unless ``allow_ptr_leaks`` (the kernel's rule
  for unprivileged logs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..uapi import FUNC_MAX_ID, FuncId
from .insn import Insn, decode
from .opcodes import AluOp, AtomicOp, CallSrc, Class, JmpOp, Mode, PseudoSrc, Size, Source

__all__ = [
    "HelperNameFn",
    "ImmNameFn",
    "disasm",
    "format_insn",
    "format_line",
    "func_id_name",
]

#: Names a call the helper table cannot: returns the name, or None for the default.
HelperNameFn = Callable[[Insn], str | None]
#: Renders the 64-bit immediate of an ``lddw`` (the insn and the value as u64).
ImmNameFn = Callable[[Insn, int], str]

#: What the kernel's printf prints for a NULL ``%s`` (a missing table entry).
_NULL = "(null)"
_LDDW = Class.LD | Mode.IMM | Size.DW
#: The kernel's BPF_ADDR_SPACE_CAST and BPF_ADDR_PERCPU: ``off`` of special movs.
_ADDR_SPACE_CAST = 1
_ADDR_PERCPU = -1
#: ``BPF_NOSPEC``: a kernel-internal ST mode (a speculation barrier it inserts).
_NOSPEC = 0xC0
_SECOND_SLOT = "<second slot of lddw>"

# The kernel's string tables, keyed by the opcode field (bpf_alu_string & co.).
_ALU_OPS = {
    AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=",
    AluOp.OR: "|=", AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=",
    AluOp.NEG: "neg", AluOp.MOD: "%=", AluOp.XOR: "^=", AluOp.MOV: "=",
    AluOp.ARSH: "s>>=", AluOp.END: "endian",
}  # fmt: skip
#: DIV/MOD with ``off == 1`` are the signed forms.
_ALU_SIGNED = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
#: MOV (register source) with ``off`` 8/16/32 sign-extends (movsx).
_MOVSX = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
_LDST = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
#: Sign-extending loads; the kernel's table has no DW entry (no such insn).
_LDSX = {Size.W: "s32", Size.H: "s16", Size.B: "s8"}
_JMP_OPS = {
    JmpOp.JA: "jmp", JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JLT: "<",
    JmpOp.JGE: ">=", JmpOp.JLE: "<=", JmpOp.JSET: "&", JmpOp.JNE: "!=",
    JmpOp.JSGT: "s>", JmpOp.JSLT: "s<", JmpOp.JSGE: "s>=", JmpOp.JSLE: "s<=",
    JmpOp.CALL: "call", JmpOp.EXIT: "exit",
}  # fmt: skip

_MEM = "({sz} *)(r{d} {off:+d})"
#: Atomic operations by ``imm``; ``w`` is "64" for the DW size, else empty.
_ATOMIC = {
    AtomicOp.ADD: "lock *({sz} *)(r{d} {off:+d}) += r{s}",
    AtomicOp.AND: "lock *({sz} *)(r{d} {off:+d}) &= r{s}",
    AtomicOp.OR: "lock *({sz} *)(r{d} {off:+d}) |= r{s}",
    AtomicOp.XOR: "lock *({sz} *)(r{d} {off:+d}) ^= r{s}",
    AtomicOp.FETCH_ADD: "r{s} = atomic{w}_fetch_add(" + _MEM + ", r{s})",
    AtomicOp.FETCH_AND: "r{s} = atomic{w}_fetch_and(" + _MEM + ", r{s})",
    AtomicOp.FETCH_OR: "r{s} = atomic{w}_fetch_or(" + _MEM + ", r{s})",
    AtomicOp.FETCH_XOR: "r{s} = atomic{w}_fetch_xor(" + _MEM + ", r{s})",
    AtomicOp.CMPXCHG: "r0 = atomic{w}_cmpxchg(" + _MEM + ", r0, r{s})",
    AtomicOp.XCHG: "r{s} = atomic{w}_xchg(" + _MEM + ", r{s})",
    # load-acquire reads through src_reg into dst_reg (like LDX).
    AtomicOp.LOAD_ACQ: "r{d} = load_acquire(({sz} *)(r{s} {off:+d}))",
    AtomicOp.STORE_REL: "store_release(" + _MEM + ", r{s})",
}


def func_id_name(func_id: int) -> str:
    """The kernel's name of helper ``func_id`` (``bpf_map_lookup_elem``), or ``unknown``."""
    if 0 <= func_id < FUNC_MAX_ID:
        return "bpf_" + FuncId(func_id).name
    return "unknown"


class _Opts(NamedTuple):
    helper_name: HelperNameFn | None
    imm_name: ImmNameFn | None
    allow_ptr_leaks: bool


class _F(NamedTuple):
    """The fields of a slot, brought into their C ranges (u8, u4, u4, s16, s32)."""

    code: int
    d: int
    s: int
    off: int
    imm: int

    @classmethod
    def of(cls, insn: Insn) -> _F:
        return cls(
            insn.code & 0xFF,
            insn.dst & 0xF,
            insn.src & 0xF,
            (insn.off + 0x8000) % 0x10000 - 0x8000,
            (insn.imm + 0x8000_0000) % 0x1_0000_0000 - 0x8000_0000,
        )

    @property
    def cls(self) -> int:
        return self.code & 0x07

    @property
    def op(self) -> int:
        return self.code & 0xF0

    @property
    def mode(self) -> int:
        return self.code & 0xE0

    @property
    def size(self) -> int:
        return self.code & 0x18

    @property
    def is_x(self) -> bool:
        return self.code & 0x08 == Source.X


def _alu(f: _F, insns: Sequence[Insn], pc: int, opts: _Opts) -> str:
    r = "w" if f.cls == Class.ALU else "r"
    if f.op == AluOp.END:
        if f.cls == Class.ALU64:
            return f"r{f.d} = bswap{f.imm} r{f.d}"
        return f"r{f.d} = {'be' if f.is_x else 'le'}{f.imm} r{f.d}"
    if f.op == AluOp.NEG:
        return f"{r}{f.d} = -{r}{f.d}"
    if f.code == Class.ALU64 | AluOp.MOV | Source.X:
        if f.off == _ADDR_SPACE_CAST:
            imm = f.imm & 0xFFFF_FFFF
            return f"r{f.d} = addr_space_cast(r{f.s}, {imm >> 16}, {imm & 0xFFFF})"
        if f.off == _ADDR_PERCPU:
            return f"r{f.d} = &(void __percpu *)(r{f.s})"
    signed = f.op in _ALU_SIGNED and f.off == 1
    opstr = _ALU_SIGNED[f.op] if signed else _ALU_OPS.get(f.op, _NULL)
    if f.is_x:
        cast = _MOVSX.get(f.off, "") if f.op == AluOp.MOV else ""
        return f"{r}{f.d} {opstr} {cast}{r}{f.s}"
    return f"{r}{f.d} {opstr} {f.imm}"


def _stx(f: _F, insns: Sequence[Insn], pc: int, opts: _Opts) -> str:
    sz = _LDST[Size(f.size)]
    if f.mode == Mode.MEM:
        return f"*({sz} *)(r{f.d} {f.off:+d}) = r{f.s}"
    template = _ATOMIC.get(f.imm) if f.mode == Mode.ATOMIC else None
    if template is None:
        return f"BUG_{f.code:02x}"
    w = "64" if f.size == Size.DW else ""
    return template.format(sz=sz, d=f.d, s=f.s, off=f.off, w=w)


def _st(f: _F, insns: Sequence[Insn], pc: int, opts: _Opts) -> str:
    if f.mode == Mode.MEM:
        return f"*({_LDST[Size(f.size)]} *)(r{f.d} {f.off:+d}) = {f.imm}"
    if f.mode == _NOSPEC:
        return "nospec"
    return f"BUG_st_{f.code:02x}"


def _ldx(f: _F, insns: Sequence[Insn], pc: int, opts: _Opts) -> str:
    if f.mode == Mode.MEM:
        sz = _LDST[Size(f.size)]
    elif f.mode == Mode.MEMSX:
        # DW has no entry: the kernel would read past its table; print it as missing.
        sz = _LDSX.get(Size(f.size), _NULL)
    else:
        return f"BUG_ldx_{f.code:02x}"
    return f"r{f.d} = *({sz} *)(r{f.s} {f.off:+d})"


def _ld(f: _F, insns: Sequence[Insn], pc: int, opts: _Opts) -> str:
    sz = _LDST[Size(f.size)]
    if f.mode == Mode.ABS:
        return f"r0 = *({sz} *)skb[{f.imm}]"
    if f.mode == Mode.IND:
        return f"r0 = *({sz} *)skb[r{f.s} + {f.imm}]"
    if f.code != _LDDW or pc + 1 >= len(insns):
        # A truncated lddw lands here too: the kernel checks the second slot
        # exists before printing, and has no text for one that does not.
        return f"BUG_ld_{f.code:02x}"
    value = ((insns[pc + 1].imm & 0xFFFF_FFFF) << 32) | (f.imm & 0xFFFF_FFFF)
    if f.s in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE) and not opts.allow_ptr_leaks:
        value = 0
    text = opts.imm_name(insns[pc], value) if opts.imm_name else f"{value:#x}"
    return f"r{f.d} = {text}"


def _call(f: _F, insn: Insn, opts: _Opts) -> str:
    if f.s == CallSrc.HELPER and 0 <= f.imm < FUNC_MAX_ID:
        name: str | None = func_id_name(f.imm)
    else:
        name = opts.helper_name(insn) if opts.helper_name else None
    if f.s == CallSrc.PSEUDO_CALL:
        return f"call pc{f.imm:+d}" if name is None else f"call pc{name}"
    if name is None:
        name = "kernel-function" if f.s == CallSrc.KFUNC else "unknown"
    return f"call {name}#{f.imm}"


def _jmp(f: _F, insns: Sequence[Insn], pc: int, opts: _Opts) -> str:
    # The kernel tests these exact codes in this order; the rest are compares.
    if f.op == JmpOp.CALL:
        return _call(f, insns[pc], opts)
    if f.code == Class.JMP | JmpOp.JA:
        return f"goto pc{f.off:+d}"
    if f.code == Class.JMP | JmpOp.JCOND and f.s == 0:
        return f"may_goto pc{f.off:+d}"
    if f.code == Class.JMP32 | JmpOp.JA:
        return f"gotol pc{f.imm:+d}"
    if f.code == Class.JMP | JmpOp.EXIT:
        return "exit"
    r = "w" if f.cls == Class.JMP32 else "r"
    opstr = _JMP_OPS.get(f.op, _NULL)
    rhs = f"{r}{f.s}" if f.is_x else f"{f.imm & 0xFFFF_FFFF:#x}"
    return f"if {r}{f.d} {opstr} {rhs} goto pc{f.off:+d}"


_BY_CLASS: dict[int, Callable[[_F, Sequence[Insn], int, _Opts], str]] = {
    Class.LD: _ld,
    Class.LDX: _ldx,
    Class.ST: _st,
    Class.STX: _stx,
    Class.ALU: _alu,
    Class.JMP: _jmp,
    Class.JMP32: _jmp,
    Class.ALU64: _alu,
}


def _is_second_slot(insns: Sequence[Insn], pc: int) -> bool:
    """Whether slot ``pc`` is the upper half of an lddw.

    Slots pair up from the start of the program, but only runs of lddw opcodes
    matter: the slot before a run is never a first half (its opcode is not
    lddw), so a run always starts fresh, and ``pc`` is a second half exactly
    when an odd number of lddw opcodes directly precede it.
    """
    run = 0
    while pc - run - 1 >= 0 and insns[pc - run - 1].code & 0xFF == _LDDW:
        run += 1
    return run % 2 == 1


def _text(insns: Sequence[Insn], pc: int, opts: _Opts) -> str:
    f = _F.of(insns[pc])
    return _BY_CLASS[f.cls](f, insns, pc, opts)


def _line(insns: Sequence[Insn], pc: int, opts: _Opts) -> str:
    text = _text(insns, pc, opts)
    # The kernel writes its BUG texts without the "(code) " prefix.
    return text if text.startswith("BUG_") else f"({insns[pc].code & 0xFF:02x}) {text}"


def _check_pc(insns: Sequence[Insn], pc: int) -> None:
    if not 0 <= pc < len(insns):
        raise IndexError(f"pc {pc} is outside the program (0..{len(insns) - 1})")


def format_insn(
    insns: Sequence[Insn],
    pc: int,
    *,
    helper_name: HelperNameFn | None = None,
    imm_name: ImmNameFn | None = None,
    allow_ptr_leaks: bool = False,
) -> str:
    """The kernel's text of the instruction at slot ``pc``, e.g. ``r0 = *(u32 *)(r1 +4)``.

    This is what follows ``(code) `` in a verifier log line; for encodings the
    kernel prints as ``BUG_...`` it is that whole text. The whole program is
    passed because an lddw reads its second slot; asked for that second slot
    itself, which has no text of its own, it returns ``<second slot of lddw>``.
    Raises IndexError for a ``pc`` outside the program.
    """
    _check_pc(insns, pc)
    if _is_second_slot(insns, pc):
        return _SECOND_SLOT
    return _text(insns, pc, _Opts(helper_name, imm_name, allow_ptr_leaks))


def format_line(
    insns: Sequence[Insn],
    pc: int,
    *,
    helper_name: HelperNameFn | None = None,
    imm_name: ImmNameFn | None = None,
    allow_ptr_leaks: bool = False,
) -> str:
    """What ``print_bpf_insn`` writes for slot ``pc``: ``(b7) r0 = 1`` or ``BUG_ld_60``.

    The verifier log prefixes it with ``"<pc>: "``; :func:`format_insn` is the
    same without the opcode.
    """
    _check_pc(insns, pc)
    if _is_second_slot(insns, pc):
        return f"({insns[pc].code & 0xFF:02x}) {_SECOND_SLOT}"
    return _line(insns, pc, _Opts(helper_name, imm_name, allow_ptr_leaks))


def _hex(data: bytes) -> str:
    """Bytes as bpftool's ``opcodes`` option shows them: groups of 8, two spaces apart."""
    groups = (data[i : i + 8] for i in range(0, len(data), 8))
    return "  ".join(" ".join(f"{b:02x}" for b in g) for g in groups)


def disasm(
    prog: bytes | bytearray | memoryview | Sequence[Insn],
    *,
    opcodes: bool = False,
    helper_name: HelperNameFn | None = None,
    imm_name: ImmNameFn | None = None,
    allow_ptr_leaks: bool = False,
) -> str:
    """A whole program as the verifier log lists it: ``0: (b7) r0 = 1``, one line each.

    Lines are numbered by slot, so an lddw takes one line and the next line's
    number skips its second slot. With ``opcodes`` each line is followed by the
    instruction's bytes, as ``bpftool prog dump xlated ... opcodes`` prints
    them. ``prog`` may be raw bytes (decoded leniently: any 8-byte slots print,
    as the kernel's printer would show them) or decoded slots. The only error
    is :class:`~pyebpf.errors.InvalidInsn`, for bytes whose length is not a
    multiple of 8 (or, with ``opcodes``, a slot whose fields do not fit).
    """
    insns = decode(prog, strict=False) if isinstance(prog, bytes | bytearray | memoryview) else prog
    opts = _Opts(helper_name, imm_name, allow_ptr_leaks)
    out: list[str] = []
    pc = 0
    n = len(insns)
    while pc < n:
        out.append(f"{pc}: {_line(insns, pc, opts)}")
        width = 2 if insns[pc].code & 0xFF == _LDDW and pc + 1 < n else 1
        if opcodes:
            raw = b"".join(insns[pc + k].pack() for k in range(width))
            out.append("       " + _hex(raw))
        pc += width
    return "".join(line + "\n" for line in out)
