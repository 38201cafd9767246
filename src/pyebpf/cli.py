"""The ``pyebpf`` command.

    pyebpf demo                       load, verify and test-run a compiled XDP counter
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


def demo_packet(protocol: int) -> bytes:
    """An Ethernet + IPv4 frame carrying ``protocol``, padded to 64 bytes."""
    eth = bytes(12) + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 50, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return (eth + ip).ljust(64, b"\0")


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
    """Load the compiled XDP counter (ELF), verify it, test-run packets, show the maps."""
    from . import Runtime
    from .collection import load_object
    from .demo import XDP_COUNTER

    rt = Runtime()
    obj = load_object(XDP_COUNTER, runtime=rt, log_level=2)
    prog = obj.programs["xdp_prog"]
    print(f"== {XDP_COUNTER.name}: program {prog.name!r} ({prog.prog_type.name}), "
          f"maps {', '.join(obj.maps)}")
    print("\n== verifier log (log_level 2)")
    print(prog.log.rstrip())
    print("\n== test runs (BPF_PROG_TEST_RUN)")
    actions = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
    for name, proto in (("tcp", 6), ("udp", 17), ("tcp", 6), ("icmp", 1)):
        result = prog.test_run(data=demo_packet(proto))
        print(f"{name:<5} packet -> r0 = {result.retval} ({actions.get(result.retval, '?')})")
    print("\n== map 'counts' (IP protocol -> packets)")
    for key, value in obj.maps["counts"].items():
        print(f"  {int.from_bytes(key, 'little'):3d}: {int.from_bytes(value, 'little')}")
    per_cpu = obj.maps["bytes"][0]
    slots = [int.from_bytes(per_cpu[i:i + 8], "little") for i in range(0, len(per_cpu), 8)]
    print(f"\n== map 'bytes' (per CPU): {slots}")
    obj.close()
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
    sub.add_parser("demo", help="load, verify and test-run a compiled XDP packet counter")
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
