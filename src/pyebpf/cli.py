"""The ``pyebpf`` command.

    pyebpf demo                       assemble, disassemble and run a small program
    pyebpf asm FILE                   assemble conformance-dialect text to hex bytes
    pyebpf disasm FILE [--opcodes]    print a program (hex or raw bytes) in kernel syntax
    pyebpf run FILE [--mem HEX]       run a program (.data file, assembly, hex or bytes)

Failures print a one-line message on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import BpfError, BpfFault
from .isa import Insn, encode
from .isa.asm import assemble
from .isa.disasm import disasm

#: The demo: sum the bytes of a buffer, the way a packet counter walks a packet.
DEMO_ASM = """\
# r1 = buffer, r2 = its length (the bpf_conformance calling convention)
mov %r0, 0
mov %r3, 0
loop:
jge %r3, %r2, done
mov %r4, %r1
add %r4, %r3
ldxb %r5, [%r4]
add %r0, %r5
add %r3, 1
ja loop
done:
exit
"""
DEMO_MEM = bytes(range(1, 17))


def _load_program(path: str) -> tuple[list[Insn], bytes | None]:
    """Read a program from a .data file, assembly text, a hex dump, or raw bytes."""
    from .conformance import parse_data_file, program_bytes
    from .isa import decode

    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return decode(data), None
    if "-- asm" in text or "-- raw" in text:
        case = parse_data_file(text, name=path)
        return decode(program_bytes(case)), case.mem or None
    compact = "".join(text.split())
    if compact and all(c in "0123456789abcdefABCDEF" for c in compact):
        return decode(bytes.fromhex(compact)), None
    return assemble(text, source=path), None


def _cmd_demo(args: argparse.Namespace) -> int:
    from .engine import Vm

    prog = assemble(DEMO_ASM)
    print("program (kernel syntax):")
    print(disasm(prog).rstrip())
    vm = Vm(prog)
    r0 = vm.run(DEMO_MEM)
    print(f"\ninput: {DEMO_MEM.hex(' ')}")
    print(f"result: r0 = {r0} ({r0:#x}) after {vm.insns_executed} instructions")
    return 0


def _cmd_asm(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    print(encode(assemble(text, source=args.file)).hex())
    return 0


def _cmd_disasm(args: argparse.Namespace) -> int:
    prog, _ = _load_program(args.file)
    print(disasm(prog, opcodes=args.opcodes).rstrip())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .engine import Vm

    prog, mem = _load_program(args.file)
    if args.mem is not None:
        mem = bytes.fromhex(args.mem)
    vm = Vm(prog, budget=args.budget)
    r0 = vm.run(mem)
    print(f"r0 = {r0} ({r0:#x})")
    print(f"{vm.insns_executed} instructions executed")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="pyebpf", description="The Linux BPF subsystem in "
                                     "pure Python.")
    parser.add_argument("--version", action="version", version=f"pyebpf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="assemble, disassemble and run a small program")
    p = sub.add_parser("asm", help="assemble conformance-dialect text to hex")
    p.add_argument("file", help="assembly file, or - for stdin")
    p = sub.add_parser("disasm", help="print a program in the kernel's syntax")
    p.add_argument("file", help=".data, assembly, hex or raw bytes; - for stdin")
    p.add_argument("--opcodes", action="store_true", help="also print the raw bytes")
    p = sub.add_parser("run", help="run a program and print r0")
    p.add_argument("file", help=".data, assembly, hex or raw bytes; - for stdin")
    p.add_argument("--mem", help="input memory as hex (r1 = its address, r2 = its length)")
    p.add_argument("--budget", type=int, default=100_000_000, help="instruction budget")
    return parser


_COMMANDS = {"demo": _cmd_demo, "asm": _cmd_asm, "disasm": _cmd_disasm, "run": _cmd_run}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (BpfError, BpfFault, OSError, ValueError) as exc:
        print(f"pyebpf {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
