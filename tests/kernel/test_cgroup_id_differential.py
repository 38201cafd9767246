"""The cgroup-id helpers and bpf_get_ns_current_pid_tgid: pyebpf and the kernel
give the same answers (tests/helpers/cgroup_id_scenarios.py).

The kernel answers for the test process: its cgroup (the ancestors are those
of /proc/self/cgroup's v2 path, each dir's inode its id), its pid and tgid, its
pid namespace (stat /proc/self/ns/pid). The pyebpf runtime is set to the same."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import cgroup_id_scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from helpers._build import KernelBackend, PyBackend
from pyebpf import ProgType
from pyebpf.maps.cgroup_array import cgroup_open
from pyebpf.testing.kernel import possible_cpus

from .harness import Pair, agree

pytestmark = pytest.mark.kernel
CGROUP2 = Path("/sys/fs/cgroup")


def _own_cgroup_chain() -> list[int]:
    """The ids (inode numbers) of the test process's cgroup v2 directory and its
    ancestors, root first."""
    line = next(ln for ln in Path("/proc/self/cgroup").read_text().splitlines()
                if ln.startswith("0::"))
    path, chain = CGROUP2, [CGROUP2.stat().st_ino]
    for part in [p for p in line[3:].split("/") if p]:
        path = path / part
        chain.append(path.stat().st_ino)
    return chain


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    py, k = PyBackend(nr_cpus=possible_cpus()), KernelBackend()
    rt = py.rt
    rt.pid, rt.tgid = threading.get_native_id(), os.getpid()
    ns = os.stat("/proc/self/ns/pid")
    rt.pidns_dev, rt.pidns_ino = ns.st_dev, ns.st_ino
    chain = _own_cgroup_chain()
    parent = None
    for cid in chain[1:]:  # the root (id 1) is known to every runtime
        fd = cgroup_open(rt, cid, parent)
        parent = rt.fds[fd].obj
    rt.cgroup_id = chain[-1]
    try:
        yield py, k
    finally:
        py.close()
        k.close()


LEVELS = [-1, 0, 1, 2, 3, 0x7FFF_FFFF, 1 << 32, (1 << 64) - 1]


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.XDP,
                                       ProgType.SOCKET_FILTER])
def test_current_ancestor_cgroup_id(pair: Pair, prog_type: ProgType) -> None:
    agree(pair, S.current_ancestor, LEVELS, prog_type)


def test_skb_ancestor_cgroup_id(pair: Pair) -> None:
    agree(pair, S.skb_ancestor, LEVELS)


def test_cgroup_skb_socket_ids(pair: Pair) -> None:
    agree(pair, S.cgroup_skb_ids, LEVELS[:5])


def test_ns_current_pid_tgid(pair: Pair) -> None:
    ns = os.stat("/proc/self/ns/pid")
    dev, ino = ns.st_dev, ns.st_ino
    agree(pair, S.ns_pid_tgid, [(dev, ino, 8), (dev, ino, 16), (dev, ino, 4), (dev + 1, ino, 8),
                               (dev, ino + 1, 8), (dev | 1 << 32, ino, 8), (0, 0, 8)])
    agree(pair, S.ns_pid_tgid, [(dev, ino, 8), (0, ino, 8)], ProgType.XDP)
