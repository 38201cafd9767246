"""One test case of a BPF program: (packet, initial maps) -> (retval, packet, final maps).

This is the shape of test cilium users asked for (cilium/cilium#14990) and
the core of the pytest plugin::

    coll = load_object("flows.o", runtime=make_runtime())
    result = run_case(coll, ethernet(ipv4(udp(b"hi"))),
                      maps={"config": {0: {"drop_proto": 17}}})
    assert result.retval == XDP_DROP
    assert result.maps["flows"][{"saddr": 0x0100000a, "proto": 17, ...}].packets == 1

Map keys and values are written and read through layouts derived from the
map's BTF (:mod:`pyebpf.testing.layout`): structs as mappings or records,
integers as ints, raw bytes always accepted.

A :class:`CaseRunner` made with ``kernel=True`` runs every case on the real
kernel too (a :class:`~pyebpf.testing.kernel_prog.KernelCollection` twin of
each collection, kept for the runner's life so that state carries over
between cases exactly as on the pyebpf side) and raises
:class:`CaseMismatch` on any difference in errno, retval, output packet,
ctx_out or the contents of any map.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from ..collection import Collection
from ..elf.spec import MapSpec
from ..errors import BpfError
from ..objects import Map, Program
from ..runtime import Runtime
from ..uapi import MapType, ProgType
from .layout import Layout, PerCpuLayout, StructLayout, btf_layout, default_layout

__all__ = [
    "DEFAULT_SETTINGS",
    "CaseMismatch",
    "CaseResult",
    "CaseRunner",
    "MapCodec",
    "MapContents",
    "make_runtime",
    "pack_ctx",
    "read_maps",
    "run_case",
    "seed_maps",
]

#: The settings of a deterministic test runtime (every one may be overridden).
DEFAULT_SETTINGS: dict[str, Any] = {
    "nr_cpus": 2,
    "cpu": 0,
    "seed": 0,
    "clock_ns": 1_000_000_000,
    "clock_step_ns": 0,
    "pid": 4242,
    "tgid": 4242,
    "uid": 0,
    "gid": 0,
    "comm": "pyebpf",
    "privileged": True,
    "verifier": "kernel",
}

#: Map types whose contents a syscall can list (GET_NEXT_KEY + LOOKUP) and mean the
#: same on both sides (fd-holding maps give ids, which differ).
READABLE_MAP_TYPES = frozenset({
    MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY,
    MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE,
})
ARRAY_MAP_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
PERCPU_MAP_TYPES = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY,
                              MapType.LRU_PERCPU_HASH})


def make_runtime(**settings: Any) -> Runtime:
    """A Runtime with :data:`DEFAULT_SETTINGS`, overridden by ``settings``: the same
    clock, prandom seed, pid/tgid/uid/gid/comm and CPUs on every run."""
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise TypeError(f"unknown runtime settings: {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(DEFAULT_SETTINGS)})")
    s = {**DEFAULT_SETTINGS, **settings}
    from ..clock import Clock

    rt = Runtime(nr_cpus=s["nr_cpus"], seed=s["seed"], privileged=s["privileged"],
                 clock=Clock(ns=s["clock_ns"], step_ns=s["clock_step_ns"]))
    if not 0 <= s["cpu"] < rt.nr_cpus:
        raise ValueError(f"cpu {s['cpu']} is not one of the runtime's {rt.nr_cpus} CPUs")
    rt.cpu = s["cpu"]
    rt.pid, rt.tgid, rt.uid, rt.gid = s["pid"], s["tgid"], s["uid"], s["gid"]
    rt.comm = s["comm"]
    rt.verifier = s["verifier"]
    return rt


# -- maps as Python values --------------------------------------------------------------------
@attrs.frozen
class MapCodec:
    """A map's key and value layouts (per-CPU values: one slot per CPU)."""

    name: str
    map_type: int
    key: Layout
    value: Layout

    @classmethod
    def for_spec(cls, spec: MapSpec, btf: Any, nr_cpus: int) -> MapCodec:
        key = _layout(btf, spec.btf_key_type_id, spec.key_size)
        value = _layout(btf, spec.btf_value_type_id, spec.value_size)
        if spec.data is not None and btf is not None and not spec.btf_value_type_id:
            value = _datasec_layout(btf, spec) or value
        return cls.make(spec.name, spec.type, key, value, nr_cpus)

    @classmethod
    def for_map(cls, m: Map) -> MapCodec:
        """Without BTF: integers for 1/2/4/8-byte keys and values, else bytes."""
        return cls.make(m.name, m.map_type, default_layout(m.key_size),
                        default_layout(m.value_size), m.runtime.nr_cpus)

    @classmethod
    def make(cls, name: str, map_type: int, key: Layout, value: Layout,
             nr_cpus: int) -> MapCodec:
        if map_type in PERCPU_MAP_TYPES:
            value = PerCpuLayout(value, nr_cpus)
        return cls(name, map_type, key, value)

    def contents(self, items: Mapping[bytes, bytes]) -> MapContents:
        return MapContents(self, dict(items))


def _layout(btf: Any, type_id: int, size: int) -> Layout:
    if btf is not None and type_id:
        lay = btf_layout(btf, type_id)
        if lay.size == size:
            return lay
    return default_layout(size)


def _datasec_layout(btf: Any, spec: MapSpec) -> Layout | None:
    """Global data whose map carries no value type id (.kconfig): the section's
    DATASEC, found by name."""
    from ..btf import BtfKind

    sec = btf.find(spec.section or spec.name, BtfKind.DATASEC)
    if sec is None:
        return None
    lay = btf_layout(btf, sec.id)
    if isinstance(lay, StructLayout) and lay.size != spec.value_size:
        # An extern-only section is sized by the loader, not by the compiler.
        lay = StructLayout(spec.value_size, lay.name, lay.members)
    return lay if lay.size == spec.value_size else None


class MapContents(Mapping[Any, Any]):
    """A map's entries, decoded. Keys may be given in any form the key layout
    encodes (a record, a mapping, a tuple, an int, bytes); equality with another
    mapping, or a list of (key, value) pairs, compares the encoded bytes, so
    ``[({"saddr": 1, ...}, {"packets": 1})]`` equals the decoded contents."""

    def __init__(self, codec: MapCodec, raw: dict[bytes, bytes]) -> None:
        self.codec = codec
        self.raw = raw

    def __getitem__(self, key: Any) -> Any:
        return self.codec.value.decode(self.raw[self.codec.key.encode(key)])

    def __iter__(self) -> Iterator[Any]:
        return (self.codec.key.decode(k) for k in self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, key: object) -> bool:
        try:
            return self.codec.key.encode(key) in self.raw
        except (TypeError, ValueError, KeyError):
            return False

    def _encoded(self, other: Any) -> dict[bytes, bytes]:
        return {self.codec.key.encode(k): self.codec.value.encode(v) for k, v in _pairs(other)}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MapContents):
            return self.raw == other.raw
        if isinstance(other, Mapping | list):
            try:
                return self.raw == self._encoded(other)
            except (TypeError, ValueError, KeyError):
                return False
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(dict(self.items()))


# -- ctx structs --------------------------------------------------------------------------------
def pack_ctx(prog_type: ProgType | int, fields: Mapping[str, int] | bytes | None) -> bytes | None:
    """A ctx struct for ``prog_type`` from field names (``{"mark": 7, "cb": ...}``),
    laid out by the type's ctx table; bytes pass through."""
    if fields is None or isinstance(fields, bytes | bytearray):
        return None if fields is None else bytes(fields)
    from ..progs import prog_type_ops

    ops = prog_type_ops(prog_type)
    if ops is None or ops.ctx is None or not ops.ctx.fields:
        raise ValueError(f"{ProgType(prog_type).name} has no ctx table: pass the ctx as bytes")
    out = bytearray(ops.ctx.size)
    for name, value in fields.items():
        f = ops.ctx[name]
        if isinstance(value, bytes | bytearray | list | tuple):
            raw = b"".join(int(v).to_bytes(4, "little") for v in value) \
                if isinstance(value, list | tuple) else bytes(value)
            if len(raw) > f.size:
                raise ValueError(f"{len(raw)} bytes given for the {f.size}-byte {name}")
            out[f.offset:f.offset + len(raw)] = raw
        else:
            out[f.offset:f.end] = (int(value) & ((1 << (8 * f.size)) - 1)).to_bytes(f.size,
                                                                                 "little")
    return bytes(out)


# -- the two sides ------------------------------------------------------------------------------
@attrs.frozen
class CaseResult:
    """What a case produced."""

    retval: int
    #: The packet as the program left it (data_out), or None without a packet.
    packet: bytes | None
    #: Every readable map of the object by name, decoded by its BTF layout.
    maps: dict[str, MapContents]
    #: ctx_out (bytes), when a ctx was given.
    ctx_out: bytes | None = None
    #: bpf_trace_printk output of the run (pyebpf side).
    printk: tuple[str, ...] = ()


class CaseMismatch(AssertionError):
    """pyebpf and the kernel disagreed on a case."""


def _mismatch(what: str, ours: Any, theirs: Any) -> str:
    a, b = repr(ours), repr(theirs)
    if len(a) < 60 and len(b) < 60:
        return f"{what}: pyebpf {a}, kernel {b}"
    diff = "\n".join(difflib.unified_diff(_lines(ours), _lines(theirs), "pyebpf", "kernel",
                                          lineterm="", n=1))
    return f"{what} differs:\n{diff}"


def _lines(value: Any) -> list[str]:
    if isinstance(value, bytes):
        return [value[i:i + 16].hex(" ") for i in range(0, len(value), 16)]
    if isinstance(value, Mapping):
        return [f"{k!r}: {v!r}" for k, v in value.items()]
    return [repr(value)]


class _PyebpfSide:
    def __init__(self, coll: Collection | None, prog: Program) -> None:
        self.coll = coll
        self.prog = prog

    def maps(self) -> dict[str, Map]:
        return dict(self.coll.maps) if self.coll is not None else {}

    def test_run(self, data: bytes | None, ctx: bytes | None,
                 repeat: int) -> tuple[Any, tuple[str, ...]]:
        r = self.prog.test_run(data, ctx=ctx, repeat=repeat)
        return r, tuple(getattr(r, "printk", ()))


def _pairs(contents: Any) -> Iterable[tuple[Any, Any]]:
    """A map's contents as given: a mapping, or (key, value) pairs (for keys written
    as dicts, which can't be dict keys)."""
    return contents.items() if isinstance(contents, Mapping) else contents


def _items(update: Any, delete: Any, keys: Any, codec: MapCodec,
           max_entries: int, contents: Mapping[Any, Any]) -> None:
    """Make a map hold exactly ``contents`` (arrays: the other slots zeroed)."""
    wanted = {codec.key.encode(k): codec.value.encode(v) for k, v in _pairs(contents)}
    if codec.map_type in ARRAY_MAP_TYPES:
        zero = bytes(codec.value.size)
        for i in range(max_entries):
            k = i.to_bytes(4, "little")
            update(k, wanted.pop(k, zero))
        if wanted:
            raise KeyError(f"map '{codec.name}': indexes past max_entries {max_entries}")
        return
    for k in list(keys()):
        if k not in wanted:
            delete(k)
    for k, v in wanted.items():
        update(k, v)


class CaseRunner:
    """Runs cases; with ``kernel=True`` on the kernel too, comparing everything.

    Kernel twins are made on first use of a collection and live until
    :meth:`close` (the plugin closes them when the test ends)."""

    def __init__(self, *, kernel: bool = False) -> None:
        self.kernel = kernel
        self._twins: dict[int, tuple[Any, Any]] = {}
        #: Cases compared with the kernel so far.
        self.compared = 0

    def close(self) -> None:
        for _, twin in self._twins.values():
            twin.close()
        self._twins.clear()

    def __enter__(self) -> CaseRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, target: Collection | Program, packet: bytes | None = None, *,
            maps: Mapping[str, Mapping[Any, Any]] | None = None,
            ctx: Mapping[str, int] | bytes | None = None, program: str | None = None,
            repeat: int = 0) -> CaseResult:
        """Seed ``maps`` (each named map then holds exactly those entries), run the
        program once with ``packet`` (and ``ctx``: field names or bytes) through
        BPF_PROG_TEST_RUN, and read every readable map back."""
        coll, prog = _resolve(target, program)
        side = _PyebpfSide(coll, prog)
        codecs = self._codecs(coll, prog.runtime.nr_cpus)
        ctx_bytes = pack_ctx(prog.prog_type, ctx)
        maps = dict(maps or {})
        for name in maps:
            if name not in codecs:
                raise KeyError(f"no map '{name}' to seed (maps: {', '.join(codecs) or 'none'})")
        ours = self._run_pyebpf(side, codecs, maps, packet, ctx_bytes, repeat)
        if self.kernel:
            theirs = self._run_kernel(coll, prog, codecs, maps, packet, ctx_bytes, repeat)
            self._compare(ours, theirs)
            self.compared += 1
        if isinstance(ours, BpfError):
            raise ours
        return ours

    # -- pyebpf --------------------------------------------------------------------------
    @staticmethod
    def _codecs(coll: Collection | None, nr_cpus: int) -> dict[str, MapCodec]:
        if coll is None:
            return {}
        out = {}
        for name, m in coll.maps.items():
            if m.map_type not in READABLE_MAP_TYPES:
                continue
            spec = coll.spec.maps.get(name)
            out[name] = MapCodec.for_spec(spec, coll.spec.btf, nr_cpus) if spec is not None \
                else MapCodec.for_map(m)
        return out

    def _run_pyebpf(self, side: _PyebpfSide, codecs: dict[str, MapCodec],
                    maps: dict[str, Mapping[Any, Any]], packet: bytes | None,
                    ctx: bytes | None, repeat: int) -> CaseResult | BpfError:
        live = side.maps()
        for name, contents in maps.items():
            m = live[name]
            _items(m.update, m.delete, m.keys, codecs[name], m.max_entries, contents)
        try:
            r, printk = side.test_run(packet, ctx, repeat)
        except BpfError as e:
            return e
        final = {name: codecs[name].contents(dict(live[name].items())) for name in codecs}
        return CaseResult(retval=r.retval, packet=r.data_out if packet is not None else None,
                          maps=final, ctx_out=r.ctx_out if ctx is not None else None,
                          printk=printk)

    # -- kernel --------------------------------------------------------------------------
    def _twin(self, coll: Collection | None, prog: Program) -> Any:
        from .kernel_prog import KernelCollection

        key = id(coll) if coll is not None else id(prog)
        if key in self._twins:
            return self._twins[key][1]
        if coll is not None:
            twin: Any = KernelCollection.from_spec(coll.spec, programs=list(coll.programs),
                                                   prog_types=_prog_types(coll))
        else:
            twin = _KernelBareProgram(prog)
        # Keep the target alive with its twin: ids of dead objects may be reused.
        self._twins[key] = (coll if coll is not None else prog, twin)
        return twin

    def _run_kernel(self, coll: Collection | None, prog: Program,
                    codecs: dict[str, MapCodec], maps: dict[str, Mapping[Any, Any]],
                    packet: bytes | None, ctx: bytes | None,
                    repeat: int) -> CaseResult | BpfError:
        from .kernel import possible_cpus
        from .kernel_prog import kernel_test_run, on_cpu

        rt = prog.runtime
        if any(c.map_type in PERCPU_MAP_TYPES for c in codecs.values()) \
                and rt.nr_cpus != possible_cpus():
            raise CaseMismatch(f"per-CPU maps can't be compared: the runtime has {rt.nr_cpus} "
                               f"CPUs, the kernel {possible_cpus()} (make_runtime("
                               f"nr_cpus={possible_cpus()}))")
        twin = self._twin(coll, prog)
        with on_cpu(rt.cpu):
            for name, contents in maps.items():
                km = twin.maps[name]
                _items(km.update, km.delete, km.keys, codecs[name],
                       km.spec.max_entries, contents)
            if coll is not None:
                fd = twin.programs[next(n for n, p in coll.programs.items() if p is prog)]
            else:
                fd = twin.fd
            try:
                r = kernel_test_run(fd, packet, ctx=ctx, repeat=repeat)
            except BpfError as e:
                return e
            final = {}
            for name, codec in codecs.items():
                km = twin.maps[name]
                final[name] = codec.contents({k: km.lookup(k) for k in km})
        return CaseResult(retval=r.retval, packet=r.data_out if packet is not None else None,
                          maps=final, ctx_out=r.ctx_out if ctx is not None else None)

    @staticmethod
    def _compare(ours: CaseResult | BpfError, theirs: CaseResult | BpfError) -> None:
        if isinstance(ours, BpfError) or isinstance(theirs, BpfError):
            e1 = ours.errno if isinstance(ours, BpfError) else 0
            e2 = theirs.errno if isinstance(theirs, BpfError) else 0
            if e1 != e2:
                raise CaseMismatch(_mismatch("test-run errno", errno.errorcode.get(e1, e1),
                                             errno.errorcode.get(e2, e2)))
            return
        problems = []
        if ours.retval != theirs.retval:
            problems.append(_mismatch("retval", ours.retval, theirs.retval))
        if ours.packet != theirs.packet:
            problems.append(_mismatch("output packet", ours.packet, theirs.packet))
        if ours.ctx_out is not None and theirs.ctx_out is not None \
                and ours.ctx_out != theirs.ctx_out[:len(ours.ctx_out)]:
            problems.append(_mismatch("ctx_out", ours.ctx_out, theirs.ctx_out))
        for name in ours.maps:
            if ours.maps[name].raw != theirs.maps[name].raw:
                problems.append(_mismatch(f"map '{name}'", ours.maps[name], theirs.maps[name]))
        if problems:
            raise CaseMismatch("pyebpf and the kernel disagree:\n" + "\n".join(problems))


def _prog_types(coll: Collection) -> dict[str, Any]:
    """The types the programs were actually loaded as (a user may have overridden
    the section's), so that the kernel twin loads the same."""
    from ..runtime import ObjKind

    out: dict[str, Any] = {}
    for name, p in coll.programs.items():
        obj, _ = coll.runtime.get_object(p.fd, ObjKind.PROG)
        out[name] = (p.prog_type, getattr(obj, "expected_attach_type", 0))
    return out


class _KernelBareProgram:
    """The kernel twin of a program loaded from instructions (no object, no maps)."""

    def __init__(self, prog: Program) -> None:
        from ..isa import encode
        from ..isa.opcodes import PseudoSrc
        from ..runtime import ObjKind
        from .kernel_prog import kernel_prog_load

        obj, _ = prog.runtime.get_object(prog.fd, ObjKind.PROG)
        insns = obj.orig_insns  # type: ignore[attr-defined]
        if any(i.is_lddw and i.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE) for i in insns):
            raise CaseMismatch("a program using maps must come from an object (a Collection) "
                               "to be run on the kernel too")
        self.maps: dict[str, Any] = {}
        self.fd = kernel_prog_load(prog.prog_type, encode(insns),
                                   license=obj.license or "GPL",  # type: ignore[attr-defined]
                                   expected_attach_type=obj.expected_attach_type,  # type: ignore[attr-defined]
                                   prog_flags=obj.prog_flags)  # type: ignore[attr-defined]

    def close(self) -> None:
        import os

        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _resolve(target: Collection | Program, program: str | None) -> tuple[Collection | None,
                                                                         Program]:
    if isinstance(target, Program):
        return None, target
    if isinstance(target, Collection):
        if program is None:
            if len(target.programs) != 1:
                raise ValueError(f"the object has programs {', '.join(target.programs)}: "
                                 "say which with program=")
            program = next(iter(target.programs))
        try:
            return target, target.programs[program]
        except KeyError:
            raise KeyError(f"no program '{program}' loaded (programs: "
                           f"{', '.join(target.programs)})") from None
    raise TypeError(f"run_case takes a Collection or a Program, not {type(target).__name__}")


def seed_maps(coll: Collection, maps: Mapping[str, Mapping[Any, Any]]) -> None:
    """Make each named map of ``coll`` hold exactly the given entries (keys and
    values in any form their BTF layouts encode; arrays: other slots zeroed)."""
    codecs = CaseRunner._codecs(coll, coll.runtime.nr_cpus)
    for name, contents in maps.items():
        if name not in codecs:
            raise KeyError(f"no readable map '{name}' (maps: {', '.join(codecs) or 'none'})")
        m = coll.maps[name]
        _items(m.update, m.delete, m.keys, codecs[name], m.max_entries, contents)


def read_maps(coll: Collection) -> dict[str, MapContents]:
    """Every readable map of ``coll``, decoded by its BTF layouts."""
    codecs = CaseRunner._codecs(coll, coll.runtime.nr_cpus)
    return {name: codecs[name].contents(dict(coll.maps[name].items())) for name in codecs}


def run_case(target: Collection | Program, packet: bytes | None = None, *,
             maps: Mapping[str, Mapping[Any, Any]] | None = None,
             ctx: Mapping[str, int] | bytes | None = None, program: str | None = None,
             repeat: int = 0) -> CaseResult:
    """Run one case on pyebpf (see :meth:`CaseRunner.run`; the ``run_case`` fixture
    also runs it on the kernel in ``--bpf-kernel`` mode)."""
    return CaseRunner().run(target, packet, maps=maps, ctx=ctx, program=program,
                            repeat=repeat)
