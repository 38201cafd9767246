"""Socket map helpers at load time, on pyebpf and on the real kernel: programs of
each type calling the sockmap/sockhash helpers with the right map, the other
map, or from a program type that doesn't offer them, must be accepted or
rejected alike (with the same errno)."""

from __future__ import annotations

import os

import pytest

from helpers._build import ADD, KernelBackend, PyBackend, alu, call, exit_, ld_map_fd, mov, movr, st
from pyebpf import BpfError, MapType, ProgType

pytestmark = pytest.mark.kernel

T, P = MapType, ProgType
#: (helper id, takes a key pointer, program types to try).
HELPERS = [
    (52, False, (P.SK_SKB, P.SK_MSG)), (72, True, (P.SK_SKB, P.SCHED_CLS)),
    (60, False, (P.SK_MSG, P.SK_SKB)), (71, True, (P.SK_MSG,)),
    (53, True, (P.SOCK_OPS, P.SK_MSG)), (70, True, (P.SOCK_OPS,)),
]


def _prog(func: int, map_fd: int, keyed: bool) -> list:
    key = [st(4, 10, -4, 0), movr(3, 10), alu(ADD, 3, -4)] if keyed else [mov(3, 0)]
    return [*key, *ld_map_fd(2, map_fd), mov(4, 0), call(func), mov(0, 1), exit_()]


def _outcomes(be: KernelBackend | PyBackend) -> list[tuple]:
    out = []
    maps = {t: be.map_create(t, 4, 4, 1) for t in (T.SOCKMAP, T.SOCKHASH)}
    for func, keyed, types in HELPERS:
        for pt in types:
            for mt, fd in maps.items():
                try:
                    be.load(_prog(func, fd, keyed), pt)
                    out.append((func, pt.name, mt.name, 0))
                except BpfError as e:
                    out.append((func, pt.name, mt.name, e.errno))
    return out


def test_sockmap_helper_loads_match_the_kernel() -> None:
    kb, pb = KernelBackend(), PyBackend()
    try:
        assert _outcomes(pb) == _outcomes(kb)
    finally:
        for fd in kb.fds:
            os.close(fd)
        pb.close()
