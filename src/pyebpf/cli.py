"""The ``pyebpf`` command.

    pyebpf demo                       load, verify and test-run a small XDP program
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

#: The demo: an XDP program that counts packets per IP protocol in an array map,
#: drops UDP and passes the rest. ``MAP`` stands for the map's fd, patched in.
DEMO_ASM = """\
ldxw %r2, [%r1+0]          # r2 = ctx->data
ldxw %r3, [%r1+4]          # r3 = ctx->data_end
mov %r0, 2                 # XDP_PASS
mov %r4, %r2
add %r4, 34                # Ethernet (14) + IPv4 header (20)
jgt %r4, %r3, out          # too short: pass
ldxb %r5, [%r2+23]         # IPv4 protocol
stxw [%r10-4], %r5         # key = protocol
mov %r2, %r10
add %r2, -4
lddw %r1, MAP
call 1                     # bpf_map_lookup_elem(&counts, &key)
jeq %r0, 0, pass
mov %r1, 1
lock add [%r0+0], %r1      # counts[protocol] += 1
pass:
mov %r0, 2
ldxw %r5, [%r10-4]
jne %r5, 17, out
mov %r0, 1                 # UDP: XDP_DROP
out:
exit
"""


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
    """Create a map, load (verify) an XDP program, test-run it, print what happened."""
    from . import Cmd, Map, MapType, ProgLoadAttr, ProgType, Runtime, TestRunAttr, bpf

    rt = Runtime()
    counts = Map.create(MapType.ARRAY, key_size=4, value_size=8, max_entries=256,
                        name="counts", runtime=rt)
    prog = assemble(DEMO_ASM.replace("MAP", "0"))
    lddw = next(i for i, insn in enumerate(prog) if insn.code == 0x18)
    prog[lddw] = Insn(0x18, prog[lddw].dst, 1, 0, counts.fd)  # src 1: BPF_PSEUDO_MAP_FD
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.XDP, insns=prog, license="GPL",
                                         prog_name="xdp_count", log_level=2,
                                         log_size=1 << 20), runtime=rt)
    print("== program (kernel syntax)")
    print(disasm(prog).rstrip())
    print("\n== verifier log (log_level 2)")
    print(fd.log.rstrip())
    print("\n== test runs (BPF_PROG_TEST_RUN)")
    actions = {1: "XDP_DROP", 2: "XDP_PASS"}
    for name, proto in (("tcp", 6), ("udp", 17), ("tcp", 6), ("icmp", 1)):
        r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=demo_packet(proto)),
                runtime=rt)
        print(f"{name:<5} packet -> r0 = {r.retval} ({actions.get(r.retval, '?')})")
    print("\n== map 'counts' (non-zero entries)")
    for key, value in counts.items():
        n = int.from_bytes(value, "little")
        if n:
            print(f"  protocol {int.from_bytes(key, 'little'):3d}: {n}")
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
    sub.add_parser("demo", help="load, verify and test-run a small XDP program with a map")
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
