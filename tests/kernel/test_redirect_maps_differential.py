"""Device, CPU, AF_XDP socket, socket and reuseport maps on pyebpf and on the
real kernel.

MAP_CREATE must fail (or succeed) alike over a table of attributes per type,
OBJ_GET_INFO must report the same flags (device maps gain
BPF_F_RDONLY_PROG), a sequence of element commands (updates with the
loopback device, a missing device, programs and non-socket fds, bad flags,
keys past the end) must give the same errno and the same values at every
step, and XDP programs calling bpf_redirect_map must return the same action
for present and missing keys and for every flag bit.
"""

from __future__ import annotations

import os
import struct

import pytest

from helpers._build import KernelBackend, PyBackend, call, exit_, ld_map_fd, lddw, mov
from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapElemAttr, MapType, ProgType
from pyebpf.testing.kernel import possible_cpus

from .harness import BAD_FD, MapPair, same, same_errno

pytestmark = pytest.mark.kernel

T = MapType
_BASE = dict(key_size=4, value_size=4, max_entries=4)
_VARIANTS = [
    {}, dict(value_size=8), dict(value_size=12), dict(key_size=8), dict(key_size=2),
    dict(max_entries=0), dict(map_flags=1), dict(map_flags=1 << 3), dict(map_flags=1 << 4),
    dict(map_flags=1 << 7), dict(map_flags=1 << 2), dict(max_entries=256),
    dict(max_entries=257), dict(key_size=512), dict(key_size=513),
]
#: Sizes the hashes refuse before allocating anything (the others would allocate GBs).
_HUGE = [dict(max_entries=(1 << 28) + 1), dict(max_entries=(1 << 31) + 1)]
TYPES = [T.DEVMAP, T.DEVMAP_HASH, T.CPUMAP, T.XSKMAP, T.SOCKMAP, T.SOCKHASH,
         T.REUSEPORT_SOCKARRAY]


@pytest.mark.parametrize("map_type", TYPES, ids=lambda t: t.name)
def test_create_and_info_match_the_kernel(map_type: MapType) -> None:
    for kw in _VARIANTS + (_HUGE if map_type in (T.SOCKHASH, T.DEVMAP_HASH) else []):
        attr = MapCreateAttr(map_type=map_type, **(_BASE | kw))
        with MapPair(attr) as pair:
            py, k = pair.created
            same_errno(py, k, f"MAP_CREATE {map_type.name} {kw}")
            if py.ok:
                pi, ki = pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
                assert pi.value.map_flags == ki.value.map_flags, kw


#: A value or key is a tuple of u32/s32 fields; a field may name the map's own fd on
#: each side ("MAP": an open fd that is no socket, device or program) or the number
#: of possible CPUs ("NCPU": the first CPU that doesn't exist).
Field = int | str


def _encode(fields: tuple[Field, ...] | None, fd: int) -> bytes | None:
    if fields is None:
        return None
    out = b""
    for f in fields:
        v = fd if f == "MAP" else possible_cpus() if f == "NCPU" else int(f)
        out += struct.pack("<i" if v < 0 else "<I", v)
    return out


#: (map type, value_size, steps): (op, key, value, flags) for updates, (op, key) else.
SEQUENCES: list[tuple[MapType, int, list[tuple]]] = [
    (T.DEVMAP, 4, [
        ("update", (0,), (1,), 0), ("lookup", (0,)), ("update", (1,), (9999,), 0),
        ("update", (1,), (1,), 1), ("update", (4,), (1,), 0), ("update", (1,), (1,), 8),
        ("update", (2,), (0,), 0), ("lookup", (2,)), ("lookup", (9,)),
        ("delete", (3,)), ("delete", (4,)), ("delete", (0,)), ("lookup", (0,)),
        ("next", None), ("next", (3,)), ("update", (0,), (1,), 2), ("lookup", (0,)),
    ]),
    (T.DEVMAP, 8, [
        ("update", (0,), (1, 0), 0), ("lookup", (0,)), ("update", (0,), (0, 5), 0),
        ("update", (1,), (1, BAD_FD), 0), ("update", (1,), (1, -3), 0),
        ("lookup", (1,)), ("update", (2,), (1, "MAP"), 0), ("lookup", (2,)),
    ]),
    (T.DEVMAP_HASH, 4, [
        ("update", (5,), (1,), 0), ("update", (1,), (1,), 0), ("update", (9,), (1,), 0),
        ("update", (13,), (1,), 0), ("update", (77,), (1,), 0), ("update", (5,), (1,), 1),
        ("update", (5,), (1,), 2), ("update", (3,), (0,), 0), ("update", (3,), (9999,), 0),
        ("next", None), ("next", (1,)), ("next", (5,)), ("next", (9,)), ("next", (13,)),
        ("next", (500,)), ("lookup", (13,)), ("lookup", (2,)), ("delete", (2,)),
        ("delete", (13,)), ("next", (9,)), ("update", (6,), (1,), 4), ("next", None),
    ]),
    (T.CPUMAP, 8, [
        ("update", (0,), (16, 0), 0), ("lookup", (0,)), ("update", (0,), (16385, 0), 0),
        ("update", (1,), (64, BAD_FD), 0), ("update", (1,), (64, "MAP"), 0),
        ("update", (1,), (64, -1), 0), ("lookup", (1,)), ("update", (0,), (0, 0), 0),
        ("lookup", (0,)), ("update", (0,), (8, 0), 1), ("update", (0,), (8, 0), 5),
        ("update", (4,), (8, 0), 0), ("delete", (4,)), ("delete", (1,)), ("lookup", (1,)),
        ("next", None), ("next", (3,)), ("update", ("NCPU",), (8, 0), 0),
    ]),
    (T.XSKMAP, 4, [
        ("update", (0,), (BAD_FD,), 0), ("update", (0,), ("MAP",), 0),
        ("update", (0,), ("MAP",), 9), ("update", (4,), ("MAP",), 0), ("lookup", (0,)),
        ("delete", (0,)), ("delete", (4,)), ("next", None), ("next", (3,)),
    ]),
    (T.SOCKMAP, 8, [
        ("update", (0,), ("MAP", 0), 0), ("update", (0,), (BAD_FD, 0), 0),
        ("update", (0,), (3, 1), 0), ("lookup", (0,)), ("lookup", (9,)),
        ("delete", (0,)), ("delete", (9,)), ("next", (2,)), ("next", (3,)),
    ]),
    (T.SOCKMAP, 4, [("lookup", (0,)), ("update", (0,), ("MAP",), 0)]),
    (T.REUSEPORT_SOCKARRAY, 8, [
        ("update", (0,), ("MAP", 0), 0), ("update", (0,), (BAD_FD, 0), 0),
        ("update", (0,), (3, 1), 0), ("update", (4,), ("MAP", 0), 0),
        ("update", (0,), ("MAP", 0), 4), ("lookup", (0,)), ("delete", (0,)),
        ("delete", (4,)), ("next", None), ("next", (3,)),
    ]),
    (T.REUSEPORT_SOCKARRAY, 4, [("lookup", (0,)), ("update", (0,), (-1,), 0)]),
    (T.SOCKHASH, 8, [
        ("update", (0,), ("MAP", 0), 0), ("lookup", (0,)), ("delete", (0,)),
        ("next", None), ("next", (1,)),
    ]),
]
_CMDS = {"update": Cmd.MAP_UPDATE_ELEM, "lookup": Cmd.MAP_LOOKUP_ELEM,
         "delete": Cmd.MAP_DELETE_ELEM, "next": Cmd.MAP_GET_NEXT_KEY}


@pytest.mark.parametrize(("map_type", "vs", "steps"), SEQUENCES,
                         ids=[f"{t.name}-{vs}" for t, vs, _ in SEQUENCES])
def test_element_commands_match_the_kernel(map_type: MapType, vs: int, steps: list) -> None:
    attr = MapCreateAttr(map_type=map_type, key_size=4, value_size=vs, max_entries=4)
    with MapPair(attr) as pair:
        for step in steps:
            op, key, *rest = step

            def make(fd: int, op: str = op, key: tuple | None = key,
                     rest: list = rest) -> MapElemAttr:
                if op == "update":
                    return MapElemAttr(map_fd=fd, key=_encode(key, fd),
                                       value=_encode(rest[0], fd), flags=rest[1])
                return MapElemAttr(map_fd=fd, key=_encode(key, fd))

            py, k = pair.run(_CMDS[op], make)
            check = same if op in ("lookup", "next") else same_errno
            check(py, k, f"{map_type.name} value_size {vs}: {step}")


def _redirect_prog(map_fd: int, key: int, flags: int) -> list:
    return [*ld_map_fd(1, map_fd), mov(2, key), *lddw(3, flags), call(51), exit_()]


FLAGS = [0, 1, 2, 3, 4, 8, 16, 8 | 2, 16 | 1, 32, 1 << 40]


@pytest.mark.parametrize("map_type", [T.DEVMAP, T.DEVMAP_HASH, T.CPUMAP, T.XSKMAP],
                         ids=lambda t: t.name)
def test_redirect_map_actions_match_the_kernel(map_type: MapType) -> None:
    vs = 4
    value = _k(1) if map_type is not T.CPUMAP else _k(32)
    results = []
    for be in (KernelBackend(), PyBackend(nr_cpus=possible_cpus())):
        try:
            m = be.map_create(map_type, 4, vs, 4)
            if map_type is not T.XSKMAP:
                be.update(m, _k(1), value)
            got = []
            for key in (0, 1, 3, 7):
                for flags in FLAGS:
                    fd = be.load(_redirect_prog(m, key, flags), ProgType.XDP)
                    got.append((key, flags, be.run(fd)))
            results.append(got)
        finally:
            if isinstance(be, PyBackend):
                be.close()
            else:
                for fd in be.fds:
                    os.close(fd)
    assert results[1] == results[0]


def _k(i: int) -> bytes:
    return i.to_bytes(4, "little")
