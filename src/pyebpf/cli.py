"""The ``pyebpf`` command.

    pyebpf demo                       load, verify and test-run a compiled XDP counter
    pyebpf asm FILE                   assemble conformance-dialect text to hex bytes
    pyebpf disasm FILE [--opcodes]    print a program (hex or raw bytes) in kernel syntax
    pyebpf run FILE [--mem HEX]       run a program (.data file, assembly, hex or bytes)
    pyebpf run OBJ.o [--prog NAME] [--data FILE | --data-hex HEX] [--repeat N] [--json]
                                      load an ELF object, test-run a program, show the maps
    pyebpf verify OBJ.o... [--json] [--log-level N] [-j JOBS]
                                      verify every program of many objects, on all cores
    pyebpf prog dump OBJ.o [--prog NAME] [--opcodes]
                                      kernel-syntax disassembly with the C source lines
    pyebpf map dump OBJ.o [--map NAME] [--json]
                                      the maps after load, formatted by their BTF types

Exit status (as issue 7 fixes it): 0 success (every program accepted), 1 a
program was rejected or a run failed, 2 bad usage or an unreadable or
malformed file. Failures print one line on stderr, never a traceback (set
``PYEBPF_TRACEBACK=1`` to see one for an internal error).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BpfError, BpfFault
from .isa import Insn, encode
from .isa.asm import assemble
from .isa.disasm import disasm

if TYPE_CHECKING:
    from .btf import Btf
    from .collection import Collection
    from .elf.spec import MapSpec, ObjectSpec, ProgramSpec
    from .objects import Map

#: Exit statuses.
EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2

ELF_MAGIC = b"\x7fELF"


class CliError(Exception):
    """A failure the user can fix (a missing program name, an unreadable file):
    printed as one line, with exit status ``status``."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def demo_packet(protocol: int) -> bytes:
    """An Ethernet + IPv4 frame carrying ``protocol``, padded to 64 bytes."""
    eth = bytes(12) + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 50, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return (eth + ip).ljust(64, b"\0")


def _read(path: str) -> bytes:
    """A file's bytes (``-``: stdin), or a CliError naming the path and the reason."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"{path}: {e.strerror or e}") from None


def _load_program(path: str) -> tuple[list[Insn], bytes | None]:
    """Read a program from a .data file, assembly text, a hex dump, or raw bytes."""
    from .conformance import parse_data_file, program_bytes
    from .isa import decode

    data = _read(path)
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


def _is_elf(path: str) -> bool:
    if path == "-":
        return False
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError as e:
        raise CliError(f"{path}: {e.strerror or e}") from None


# -- objects ----------------------------------------------------------------------------------
def _spec(path: str) -> ObjectSpec:
    """Parse an object file (ElfError for a malformed one, CliError for an unreadable one)."""
    from .btf import BtfError
    from .elf import ElfError, load_spec

    try:
        return load_spec(_read(path), name=os.path.basename(path))
    except (ElfError, BtfError) as e:
        raise CliError(f"{path}: {e}") from None


def _pick_programs(spec: ObjectSpec, name: str | None, *, one: bool = False) -> list[str]:
    """The programs a verb acts on: ``name``, or all of them (``one``: the only one)."""
    if name is not None:
        if name not in spec.programs:
            raise CliError(f"{spec.name}: no program '{name}' (programs: "
                           f"{', '.join(spec.programs) or 'none'})")
        return [name]
    if not spec.programs:
        raise CliError(f"{spec.name}: the object has no programs")
    if one and len(spec.programs) > 1:
        raise CliError(f"{spec.name} has {len(spec.programs)} programs "
                       f"({', '.join(spec.programs)}): choose one with --prog NAME")
    return list(spec.programs)


def _type_name(ps: ProgramSpec) -> str:
    return ps.prog_type.name if ps.prog_type is not None else "unknown type"


def _load_error_reason(ps: ProgramSpec, err: BpfError) -> str:
    """The loader's message without the "program 'x' (section): " it starts with."""
    msg = err.strerror or str(err)
    for prefix in (f"program '{ps.name}' ({ps.section}): ", f"program '{ps.name}': "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


_PROCESSED = re.compile(r"^processed (\d+) insns", re.MULTILINE)


def _processed_insns(log: str) -> int | None:
    """The "processed N insns" figure of a verifier log (None without one)."""
    found = _PROCESSED.findall(log)
    return int(found[-1]) if found else None


def _prog_types(spec: ObjectSpec, given: Sequence[str] | None) -> dict[str, int]:
    """``--prog-type [NAME=]TYPE`` options as load_object's ``prog_types``: TYPE for the
    program NAME, or without a name for every program whose section doesn't say."""
    from .uapi import ProgType

    out: dict[str, int] = {}
    default = None
    for item in given or ():
        name, _, tname = item.rpartition("=")
        try:
            ptype = ProgType[tname.strip().upper()]
        except KeyError:
            raise CliError(f"--prog-type: unknown program type {tname!r} (one of "
                           f"{', '.join(t.name.lower() for t in ProgType if t)})") from None
        if name:
            out[name] = int(ptype)
        else:
            default = int(ptype)
    if default is not None:
        for n, ps in spec.programs.items():
            if ps.prog_type is None:
                out.setdefault(n, default)
    return out


def _retval_name(ps_type: Any, retval: int) -> str:
    """XDP_PASS, TC_ACT_OK...: the meaning of a return value for the program's type."""
    from .uapi import ProgType, TcAct, XdpAction

    if ps_type == ProgType.XDP and retval in XdpAction._value2member_map_:
        return f"XDP_{XdpAction(retval).name}"
    if ps_type in (ProgType.SCHED_CLS, ProgType.SCHED_ACT):
        signed = retval - (1 << 32) if retval & 0x8000_0000 else retval
        if signed in TcAct._value2member_map_:
            return f"TC_ACT_{TcAct(signed).name}"
    return ""


# -- BTF-typed formatting -----------------------------------------------------------------------
def btf_value(btf: Btf, tid: int, data: bytes, depth: int = 0) -> Any:
    """``data`` decoded as BTF type ``tid``: ints, enum names, lists, dicts, strings.

    The data-structure form of what ``bpftool map dump`` prints as "formatted":
    JSON-serializable, so ``--json`` and the text output show the same thing.
    """
    from .btf import BTF_INT_BOOL, BTF_INT_CHAR, BtfKind

    t = btf.skip_mods_and_typedefs(tid)
    k = t.kind
    if depth > 16:
        return data.hex()
    if k is BtfKind.INT:
        if t.int_encoding & BTF_INT_BOOL:
            return any(data[: t.size])
        v = int.from_bytes(data[: t.size], "little", signed=t.is_signed)
        if t.int_bits < t.size * 8 and not t.int_offset:
            v &= (1 << t.int_bits) - 1
        return v
    if k in (BtfKind.ENUM, BtfKind.ENUM64):
        v = int.from_bytes(data[: t.size], "little", signed=t.is_signed)
        return next((e.name for e in t.enum_values if e.value == v), v)
    if k is BtfKind.PTR:
        return f"{int.from_bytes(data[:8], 'little'):#x}"
    if k is BtfKind.FLOAT and t.size in (4, 8):
        return struct.unpack("<f" if t.size == 4 else "<d", data[: t.size])[0]
    if k is BtfKind.ARRAY and t.array is not None:
        esz = btf.sizeof(t.array.type)
        elem = btf.skip_mods_and_typedefs(t.array.type)
        if elem.kind is BtfKind.INT and elem.size == 1 and (
                elem.int_encoding & BTF_INT_CHAR or elem.name == "char"):
            return data[: t.array.nelems].split(b"\0", 1)[0].decode("latin-1")
        return [btf_value(btf, t.array.type, data[i * esz:(i + 1) * esz], depth + 1)
                for i in range(t.array.nelems)]
    if k in (BtfKind.STRUCT, BtfKind.UNION):
        out: dict[str, Any] = {}
        for m in t.members:
            name = m.name or "(anon)"
            if m.bitfield_size or m.bit_offset % 8:
                raw = int.from_bytes(data, "little")
                size = m.bitfield_size or btf.sizeof(m.type) * 8
                out[name] = (raw >> m.bit_offset) & ((1 << size) - 1)
            else:
                off = m.bit_offset // 8
                v = btf_value(btf, m.type, data[off:off + btf.sizeof(m.type)], depth + 1)
                if not m.name and isinstance(v, dict):
                    out.update(v)  # an anonymous struct/union: its members are the parent's
                else:
                    out[name] = v
        return out
    if k is BtfKind.DATASEC:
        out = {}
        for si in t.secinfos:
            var = btf.type(si.type)
            out[var.name] = btf_value(btf, var.type, data[si.offset:si.offset + si.size],
                                      depth + 1)
        return out
    return data.hex()


def _plain(data: bytes) -> Any:
    """Bytes without a type: a little-endian integer for 1/2/4/8 bytes, else hex."""
    if len(data) in (1, 2, 4, 8):
        return int.from_bytes(data, "little")
    return data.hex()


#: Maps of fds whose lookups from user space give an id: what the id names.
_FD_VALUES = {"PROG_ARRAY": "prog_id", "ARRAY_OF_MAPS": "map_id", "HASH_OF_MAPS": "map_id",
              "CGROUP_ARRAY": "cgroup_id", "PERF_EVENT_ARRAY": "perf_event_id"}


def _map_rows(m: Map, ms: MapSpec | None, btf: Btf | None,
              names: dict[tuple[str, int], str]) -> Iterator[tuple[Any, Any]]:
    """(key, value) of every element, formatted; per-CPU values as a list per CPU.
    ``names``: the object's own names of ("prog_id" | "map_id", id)."""
    from .uapi import MapType

    def fmt(tid: int, raw: bytes) -> Any:
        return btf_value(btf, tid, raw) if btf is not None and tid else _plain(raw)

    fd_kind = _FD_VALUES.get(m.map_type.name)
    if fd_kind is not None:  # user space reads the id of the program or map in a slot
        for key, value in m.items():
            ident = int.from_bytes(value[:4], "little")
            shown = {fd_kind: ident}
            if (fd_kind, ident) in names:
                shown["name"] = names[fd_kind, ident]
            yield _plain(key), shown
        return
    key_tid = ms.btf_key_type_id if ms is not None else 0
    value_tid = ms.btf_value_type_id if ms is not None else 0
    per_cpu = m.map_type in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY,
                             MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE)
    slot = (m.value_size + 7) // 8 * 8
    for key, value in m.items():
        if per_cpu:
            shown: Any = [fmt(value_tid, value[i:i + m.value_size])
                          for i in range(0, len(value), slot)]
        else:
            shown = fmt(value_tid, value)
        yield fmt(key_tid, key), shown


_ARRAYS = ("ARRAY", "PERCPU_ARRAY", "PROG_ARRAY", "ARRAY_OF_MAPS", "CGROUP_ARRAY",
           "PERF_EVENT_ARRAY")


def _dump_map(name: str, m: Map, ms: MapSpec | None, btf: Btf | None,
              names: dict[tuple[str, int], str]) -> dict[str, Any]:
    """One map as a record: its attributes and its elements (zero-valued array slots of
    arrays with more than one slot left out and counted, as they say nothing)."""
    from .uapi import MapType

    rec: dict[str, Any] = {"name": name, "type": m.map_type.name, "key_size": m.key_size,
                           "value_size": m.value_size, "max_entries": m.max_entries}
    entries: list[dict[str, Any]] = []
    hidden = 0
    if m.map_type in (MapType.QUEUE, MapType.STACK, MapType.RINGBUF, MapType.BLOOM_FILTER,
                      MapType.USER_RINGBUF):
        rec["entries"] = None
        rec["note"] = "elements are not listable (no keys)"
        return rec
    try:
        for key, value in _map_rows(m, ms, btf, names):
            if m.map_type.name in _ARRAYS and m.max_entries > 1 and _is_zero(value):
                hidden += 1
                continue
            entries.append({"key": key, "value": value})
    except BpfError as e:
        rec["note"] = f"can't be read from user space: {e}"
    rec["entries"] = entries
    if hidden:
        rec["zero_entries_hidden"] = hidden
    return rec


def _is_zero(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_zero(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_zero(v) for v in value)
    if isinstance(value, str):
        return value.strip("0x") == "" or value == ""
    return not value


def _print_map(rec: dict[str, Any]) -> None:
    print(f"{rec['name']}: {rec['type']} key {rec['key_size']}B value {rec['value_size']}B "
          f"max_entries {rec['max_entries']}")
    if rec.get("note"):
        print(f"  ({rec['note']})")
    for e in rec["entries"] or ():
        print(f"  {_show(e['key'])}: {_show(e['value'])}")
    if rec.get("zero_entries_hidden"):
        print(f"  ({rec['zero_entries_hidden']} zero entries not shown)")
    if rec["entries"] == [] and not rec.get("zero_entries_hidden") and not rec.get("note"):
        print("  (empty)")


def _show(v: Any) -> str:
    return v if isinstance(v, str) and not v[:1].isdigit() else json.dumps(v)


def _maps_of(coll: Collection) -> list[dict[str, Any]]:
    spec = coll.spec
    names = {("prog_id", p.info().id): n for n, p in coll.programs.items()}
    names.update({("map_id", m.info().id): n for n, m in coll.maps.items()})
    return [_dump_map(name, m, spec.maps.get(name), spec.btf, names)
            for name, m in coll.maps.items()]


# -- verbs --------------------------------------------------------------------------------------
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
    text = sys.stdin.read() if args.file == "-" else _read(args.file).decode()
    print(encode(assemble(text, source=args.file)).hex())
    return 0


def _cmd_disasm(args: argparse.Namespace) -> int:
    prog, _ = _load_program(args.file)
    print(disasm(prog, opcodes=args.opcodes).rstrip())
    return 0


def _hex_arg(value: str, option: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise CliError(f"{option}: not hex: {value!r}") from None


def _input_data(args: argparse.Namespace, file_opt: str, hex_opt: str) -> bytes | None:
    """The bytes given by ``--X FILE`` or ``--X-hex HEX`` (at most one of them)."""
    path, hexs = getattr(args, file_opt), getattr(args, hex_opt)
    hex_flag = "--" + hex_opt.replace("_", "-")
    if path is not None and hexs is not None:
        raise CliError(f"--{file_opt} and {hex_flag} exclude each other")
    if path is not None:
        return _read(path)
    return _hex_arg(hexs, hex_flag) if hexs is not None else None


def _cmd_run(args: argparse.Namespace) -> int:
    if _is_elf(args.file):
        return _run_object(args)
    from .engine import Vm

    prog, mem = _load_program(args.file)
    given = _input_data(args, "data", "data_hex")
    if args.mem is not None:
        if given is not None:
            raise CliError("--mem and --data/--data-hex exclude each other")
        given = _hex_arg(args.mem, "--mem")
    if given is not None:
        mem = given
    vm = Vm(prog, budget=args.budget)
    r0 = vm.run(mem)
    if args.json:
        print(json.dumps({"retval": r0, "insns_executed": vm.insns_executed}))
    else:
        print(f"r0 = {r0} ({r0:#x})")
        print(f"{vm.insns_executed} instructions executed")
    return 0


def _run_object(args: argparse.Namespace) -> int:
    """Load every program of the object (so tail calls find their targets), test-run one."""
    from .collection import load_object
    from .progs import prog_type_ops
    from .runtime import Runtime

    if args.mem is not None:
        raise CliError("--mem is for raw programs; an object takes --data or --data-hex")
    spec = _spec(args.file)
    name = _pick_programs(spec, args.prog, one=True)[0]
    data = _input_data(args, "data", "data_hex")
    ctx = _input_data(args, "ctx", "ctx_hex")
    coll = load_object(spec, runtime=Runtime(), log_level=1,
                       prog_types=_prog_types(spec, args.prog_type))
    with coll:
        prog = coll.programs[name]
        ops = prog_type_ops(prog.prog_type)
        processed = prog.info().verified_insns
        rec: dict[str, Any] = {"object": args.file, "program": name,
                               "section": spec.programs[name].section,
                               "prog_type": prog.prog_type.name,
                               "processed_insns": processed}
        if ops is not None and ops.test_run is not None:
            res = prog.test_run(data, ctx=ctx, repeat=args.repeat)
            rec.update(retval=res.retval, retval_name=_retval_name(prog.prog_type, res.retval),
                       data_out=None if res.data_out is None else res.data_out.hex(),
                       ctx_out=None if res.ctx_out is None else res.ctx_out.hex(),
                       duration_ns=res.duration)
        else:
            if data is not None:
                raise CliError(f"{prog.prog_type.name} programs take no packet data; "
                               f"give the ctx struct with --ctx or --ctx-hex")
            buf = bytearray(ctx or b"")
            retval = prog.run(buf)
            rec.update(retval=retval, retval_name="", data_out=None,
                       ctx_out=bytes(buf).hex() if ctx else None, duration_ns=None)
        rec["maps"] = _maps_of(coll)
    if args.json:
        print(json.dumps(rec))
        return EXIT_OK
    print(f"{args.file}: program '{name}' (section {rec['section']}, {rec['prog_type']}): "
          f"verifier accepted it, {processed} insns processed")
    meaning = f" ({rec['retval_name']})" if rec["retval_name"] else ""
    print(f"retval: {rec['retval']}{meaning}")
    if rec["data_out"] is not None:
        same = " (unchanged)" if data is not None and rec["data_out"] == data.hex() else ""
        print(f"data_out: {len(rec['data_out']) // 2} bytes{same}: {rec['data_out']}")
    if rec["ctx_out"]:
        same_ctx = ctx is not None and rec["ctx_out"] == ctx.hex()
        print("ctx_out: unchanged" if same_ctx else f"ctx_out: {rec['ctx_out']}")
    if args.repeat > 1 and rec["duration_ns"] is not None:
        print(f"duration: {rec['duration_ns']} ns per run ({args.repeat} runs)")
    for m in rec["maps"]:
        _print_map(m)
    return EXIT_OK


@lru_cache(maxsize=64)
def _cached_spec(path: str) -> ObjectSpec:
    return _spec(path)


def verify_program(path: str, program: str, log_level: int = 0,
                   prog_types: dict[str, int] | None = None) -> dict[str, Any]:
    """Load one program of an object into a fresh runtime (with the maps it uses) and
    say what the verifier made of it: the record ``pyebpf verify --json`` prints.

    A top-level function so that a process pool can run it.
    """
    from .collection import load_object
    from .runtime import Runtime
    from .uapi import ProgType

    spec = _cached_spec(path)
    ps = spec.programs[program]
    ptype = (prog_types or {}).get(program)
    shown = ProgType(ptype) if ptype is not None else ps.prog_type
    rec: dict[str, Any] = {"object": path, "section": ps.section, "program": program,
                           "prog_type": shown.name if shown is not None else None,
                           "verdict": "accepted", "errno": 0, "message": "",
                           "processed_insns": None}
    try:
        with load_object(spec, runtime=Runtime(), programs=[program], maps="used",
                         tail_calls=False, log_level=log_level,
                         prog_types=prog_types) as coll:
            prog = coll.programs[program]
            rec["processed_insns"] = prog.info().verified_insns
            log = prog.log
    except BpfError as e:
        log = getattr(e, "log", "") or ""
        rec.update(verdict="rejected", errno=e.errno or 0, message=_load_error_reason(ps, e),
                   processed_insns=_processed_insns(log))
    except Exception as e:  # a bug in pyebpf: report it for this program, go on with others
        if os.environ.get("PYEBPF_TRACEBACK"):
            raise
        log = ""
        rec.update(verdict="error", message=f"internal error: {type(e).__name__}: {e}")
    if log_level:
        rec["log"] = log
    return rec


def _verify_all(tasks: list[tuple[str, str, dict[str, int]]], log_level: int,
                jobs: int) -> Iterator[dict[str, Any]]:
    """verify_program over the tasks, in order; on a process pool when jobs > 1."""
    if jobs <= 1 or len(tasks) <= 1:
        for path, program, types in tasks:
            yield verify_program(path, program, log_level, types)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        futures = [pool.submit(verify_program, path, program, log_level, types)
                   for path, program, types in tasks]
        for f in futures:
            yield f.result()


def _cmd_verify(args: argparse.Namespace) -> int:
    status = EXIT_OK
    tasks: list[tuple[str, str, dict[str, int]]] = []
    for path in args.objects:
        try:
            spec = _cached_spec(path)
        except CliError as e:
            print(f"pyebpf verify: {e}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        if not spec.programs:
            print(f"pyebpf verify: {path}: no programs", file=sys.stderr)
        types = _prog_types(spec, args.prog_type)
        tasks.extend((path, name, types) for name in spec.programs)
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    counts = {"accepted": 0, "rejected": 0, "error": 0}
    for rec in _verify_all(tasks, args.log_level, jobs):
        counts[rec["verdict"]] += 1
        if rec["verdict"] != "accepted":
            status = max(status, EXIT_REJECTED)
        if args.json:
            print(json.dumps(rec))
            continue
        head = (f"{rec['object']}: {rec['program']} (section {rec['section']}, "
                f"{rec['prog_type'] or 'unknown type'}): {rec['verdict']}")
        n = rec["processed_insns"]
        insns = f"{n} insns processed" if n is not None else "not verified"
        if rec["verdict"] == "accepted":
            print(f"{head}, {insns}")
        elif rec["verdict"] == "error":
            print(f"{head}: {rec['message']}")
        else:
            import errno as _errno

            name = _errno.errorcode.get(rec["errno"], str(rec["errno"]))
            print(f"{head} ({name}, {insns}): {rec['message']}")
        if args.log_level and rec.get("log"):
            print(rec["log"].rstrip())
    if not args.json:
        errors = f", {counts['error']} internal errors" if counts["error"] else ""
        print(f"{sum(counts.values())} programs: {counts['accepted']} accepted, "
              f"{counts['rejected']} rejected{errors}")
    return status


def _imm_namer(ps: ProgramSpec, pc: int) -> Callable[[Insn, int], str]:
    """Names the map a 64-bit immediate load at ``pc`` refers to (as bpftool's map[id:N])."""
    refs = {r.insn: r for r in ps.map_refs}

    def name(insn: Insn, value: int) -> str:
        ref = refs.get(pc)
        if ref is None:
            return f"{value:#x}"
        if ref.kind == "value":
            return f"map[{ref.map}][0]+{ref.offset}"
        return f"map[{ref.map}]"
    return name


def _cmd_prog_dump(args: argparse.Namespace) -> int:
    from .isa.disasm import format_line

    spec = _spec(args.file)
    for i, name in enumerate(_pick_programs(spec, args.prog)):
        ps = spec.programs[name]
        insns = ps.instructions
        if i:
            print()
        print(f"{name}: section {ps.section}, {_type_name(ps)}, {ps.insn_cnt} insns"
              + (f", license {ps.license}" if ps.license else ""))
        lines: dict[int, list[str]] = {}
        last = None
        for li in sorted(ps.line_info, key=lambda li: li.insn_off):
            # One source line often covers several runs of instructions: show it once
            # per run, as a reader follows the code, not once per line_info record.
            where = f"{os.path.basename(li.file_name)}:{li.line_num}"
            if li.line.strip() and where != last:
                lines.setdefault(li.insn_off, []).append(f"; {li.line.strip()} @ {where}")
            last = where
        funcs: dict[int, str] = {}
        if spec.btf is not None:
            for fi in ps.func_info:
                funcs[fi.insn_off] = spec.btf.type(fi.type_id).name
        pc = 0
        while pc < len(insns):
            if pc in funcs and pc:
                print(f"{funcs[pc]}:")
            for text in lines.get(pc, ()):
                print(text)
            print(f"{pc:4d}: {format_line(insns, pc, imm_name=_imm_namer(ps, pc))}")
            width = 2 if insns[pc].code & 0xFF == 0x18 and pc + 1 < len(insns) else 1
            if args.opcodes:
                raw = b"".join(insns[pc + k].pack() for k in range(width))
                print("      " + " ".join(f"{b:02x}" for b in raw))
            pc += width
    return EXIT_OK


def _cmd_map_dump(args: argparse.Namespace) -> int:
    from .collection import load_object
    from .runtime import Runtime

    spec = _spec(args.file)
    if args.map is not None and args.map not in spec.maps:
        raise CliError(f"{spec.name}: no map '{args.map}' (maps: "
                       f"{', '.join(spec.maps) or 'none'})")
    if not spec.maps:
        print(f"{spec.name}: no maps")
        return EXIT_OK
    try:  # with the programs, so that program arrays hold their initial slots
        coll = load_object(spec, runtime=Runtime())
    except BpfError as e:
        # Creating maps needs no program: an object whose programs don't load
        # still shows its maps.
        print(f"pyebpf map dump: programs not loaded ({e}); maps shown without them",
              file=sys.stderr)
        coll = load_object(spec, runtime=Runtime(), programs=[])
    with coll:
        recs = [r for r in _maps_of(coll) if args.map is None or r["name"] == args.map]
    if args.json:
        for r in recs:
            print(json.dumps(r))
        return EXIT_OK
    for r in recs:
        _print_map(r)
    return EXIT_OK


PROG_TYPE_HELP = ("the program type (socket_filter, xdp, sched_cls...) of programs whose "
                  "section name doesn't give one, such as .text functions; NAME=TYPE for one "
                  "program (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="pyebpf", description="The Linux BPF subsystem in pure Python.",
        epilog="Exit status: 0 success, 1 a program was rejected or failed, "
               "2 bad usage or an unreadable file.")
    parser.add_argument("--version", action="version", version=f"pyebpf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="load, verify and test-run a compiled XDP packet counter")
    p = sub.add_parser("asm", help="assemble conformance-dialect text to hex")
    p.add_argument("file", help="assembly file, or - for stdin")
    p = sub.add_parser("disasm", help="print a program in the kernel's syntax")
    p.add_argument("file", help=".data, assembly, hex or raw bytes; - for stdin")
    p.add_argument("--opcodes", action="store_true", help="also print the raw bytes")

    p = sub.add_parser(
        "run", help="run a raw program, or test-run a program of an ELF object",
        description="FILE is an ELF object (clang -target bpf): its maps are created, "
        "its programs loaded and verified, and one program test-run "
        "(BPF_PROG_TEST_RUN) on --data; the result and the maps are printed. "
        "Otherwise FILE is a raw program (.data, assembly, hex or bytes) run in the VM "
        "with r1 = the memory's address and r2 = its length.")
    p.add_argument("file", help="ELF object, or .data, assembly, hex or raw bytes (- stdin)")
    p.add_argument("--prog", "--program", dest="prog", metavar="NAME",
                   help="the program to run (needed when the object has several)")
    p.add_argument("--data", metavar="FILE", help="input packet (data_in) from a file")
    p.add_argument("--data-hex", metavar="HEX", help="input packet (data_in) as hex")
    p.add_argument("--ctx", metavar="FILE", help="ctx struct (ctx_in) from a file")
    p.add_argument("--ctx-hex", metavar="HEX", help="ctx struct (ctx_in) as hex")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run N times (the kernel's repeat; maps see every run)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--prog-type", action="append", metavar="[NAME=]TYPE",
                   help=PROG_TYPE_HELP)
    p.add_argument("--mem", metavar="HEX",
                   help="raw programs: input memory as hex (the same as --data-hex)")
    p.add_argument("--budget", type=int, default=100_000_000,
                   help="raw programs: instruction budget")

    p = sub.add_parser(
        "verify", help="load and verify every program of one or more objects",
        description="Each program is loaded alone into a fresh runtime, with the maps "
        "it uses; the programs are spread over JOBS processes.")
    p.add_argument("objects", nargs="+", metavar="OBJ", help="ELF objects")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per program: object, section, program, prog_type, "
                        "verdict, errno, message, processed_insns")
    p.add_argument("--log-level", type=int, default=0, metavar="N",
                   help="print the verifier log at this level (1 or 2)")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="JOBS",
                   help="worker processes (default: the number of CPUs; 1: no pool)")
    p.add_argument("--prog-type", action="append", metavar="[NAME=]TYPE",
                   help=PROG_TYPE_HELP)

    p = sub.add_parser("prog", help="show the programs of an object")
    psub = p.add_subparsers(dest="prog_command", required=True, metavar="SUBCOMMAND")
    d = psub.add_parser("dump", help="kernel-syntax disassembly with the C source lines "
                        "(from BTF line info)")
    d.add_argument("file", metavar="OBJ", help="ELF object")
    d.add_argument("--prog", "--program", dest="prog", metavar="NAME",
                   help="only this program")
    d.add_argument("--opcodes", action="store_true", help="also print the raw bytes")

    p = sub.add_parser("map", help="show the maps of an object")
    msub = p.add_subparsers(dest="map_command", required=True, metavar="SUBCOMMAND")
    d = msub.add_parser("dump", help="the maps as loading the object creates them, "
                        "formatted by their BTF types")
    d.add_argument("file", metavar="OBJ", help="ELF object")
    d.add_argument("--map", metavar="NAME", help="only this map")
    d.add_argument("--json", action="store_true", help="one JSON object per map")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _cmd_demo, "asm": _cmd_asm, "disasm": _cmd_disasm, "run": _cmd_run,
    "verify": _cmd_verify, "prog dump": _cmd_prog_dump, "map dump": _cmd_map_dump,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verb = args.command
    sub = getattr(args, f"{verb}_command", None)
    if sub:
        verb = f"{verb} {sub}"
    try:
        return _COMMANDS[verb](args)
    except CliError as e:
        print(f"pyebpf {verb}: {e}", file=sys.stderr)
        return e.status
    except UnicodeDecodeError as e:
        print(f"pyebpf {verb}: not a text file: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (BpfError, BpfFault, ValueError) as e:
        # A rejected program, a failed run, or (raw programs) bad assembly text.
        print(f"pyebpf {verb}: {e}", file=sys.stderr)
        return EXIT_REJECTED
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_REJECTED
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # an internal error: one line, unless asked for the traceback
        if os.environ.get("PYEBPF_TRACEBACK"):
            raise
        print(f"pyebpf {verb}: internal error: {type(e).__name__}: {e} "
              f"(PYEBPF_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return EXIT_REJECTED


if __name__ == "__main__":
    raise SystemExit(main())
