"""The helpers of the perf event, stack, cgroup, device, socket, storage and user
ring buffer maps, at load time on pyebpf and on the real kernel: offered or
not to each program type, GPL-only or not. A tiny program calling the helper
(with a map of the type it takes in its map argument, zeros elsewhere) is
loaded with a GPL and a proprietary license; both sides must accept or reject
it with the same errno."""

from __future__ import annotations

import os

import pytest

from helpers._build import KernelBackend, PyBackend, call, exit_, ld_map_fd, mov
from pyebpf import BpfError, MapType, ProgType

pytestmark = pytest.mark.kernel

T, P = MapType, ProgType
#: helper id -> (argument register holding the map, map type); None: no map argument.
HELPERS: dict[int, tuple[int, MapType] | None] = {
    22: (1, T.PERF_EVENT_ARRAY), 25: (2, T.PERF_EVENT_ARRAY), 55: (1, T.PERF_EVENT_ARRAY),
    27: (2, T.STACK_TRACE), 67: None, 33: (2, T.CGROUP_ARRAY), 37: (1, T.CGROUP_ARRAY),
    51: (1, T.DEVMAP), 81: (1, T.CGROUP_STORAGE), 209: (1, T.USER_RINGBUF),
    52: (2, T.SOCKMAP), 72: (2, T.SOCKHASH), 53: (2, T.SOCKMAP), 82: (2, T.SOCKMAP),
}
TYPES = [P.SOCKET_FILTER, P.SCHED_CLS, P.XDP, P.CGROUP_SKB, P.KPROBE, P.TRACEPOINT,
         P.SK_SKB, P.SOCK_OPS, P.SK_REUSEPORT, P.RAW_TRACEPOINT, P.LWT_IN]
_MAPS = {T.PERF_EVENT_ARRAY: (4, 4, 2), T.STACK_TRACE: (4, 8, 2), T.CGROUP_ARRAY: (4, 4, 2),
         T.DEVMAP: (4, 4, 2), T.CGROUP_STORAGE: (16, 8, 0), T.USER_RINGBUF: (0, 0, 4096),
         T.SOCKMAP: (4, 4, 2), T.SOCKHASH: (4, 4, 2)}


def _outcomes(be: KernelBackend | PyBackend, func: int, license: str) -> list[int]:
    maps = {t: be.map_create(t, *_MAPS[t]) for t in _MAPS}
    out = []
    for pt in TYPES:
        prog = [mov(r, 0) for r in range(1, 6)]
        arg = HELPERS[func]
        if arg is not None:
            prog += ld_map_fd(arg[0], maps[arg[1]])
        prog += [call(func), mov(0, 0), exit_()]
        try:
            be.load(prog, pt, license=license)
            out.append(0)
        except BpfError as e:
            out.append(e.errno or -1)
    return out


@pytest.mark.parametrize("license", ["GPL", "Proprietary"])
@pytest.mark.parametrize("func", sorted(HELPERS))
def test_helper_availability_matches_the_kernel(func: int, license: str) -> None:
    kb, pb = KernelBackend(), PyBackend()
    try:
        got = _outcomes(pb, func, license)
        want = _outcomes(kb, func, license)
        diffs = [(pt.name, g, w) for pt, g, w in zip(TYPES, got, want, strict=True) if g != w]
        assert not diffs, f"helper {func}: (type, pyebpf, kernel) {diffs}"
    finally:
        for fd in kb.fds:
            os.close(fd)
        pb.close()
