"""The cgroup-id helpers answer from the runtime's cgroup (``cgroup_id``) and
the hierarchy it is in; bpf_get_ns_current_pid_tgid from its pid namespace
settings (the kernel's answers: tests/kernel/test_cgroup_id_differential.py)."""

from __future__ import annotations

import pytest

from helpers import cgroup_id_scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from helpers._build import PyBackend
from pyebpf.helpers import func_proto
from pyebpf.links.cgroup import cgroup_root
from pyebpf.maps.cgroup_array import cgroup_ancestors, cgroup_open
from pyebpf.uapi import ProgType

P = ProgType


@pytest.fixture
def nested(py: PyBackend) -> list[int]:
    """The runtime's task in /a/b/c: the ids root first."""
    root = cgroup_root(py.rt)
    c = root.mkdir_p("a/b/c")
    chain = [cg.cgroup_id for cg in reversed(c.ancestors())]
    py.rt.cgroup_id = c.cgroup_id
    return chain


def test_root_cgroup_has_only_level_0(py: PyBackend) -> None:
    assert S.current_ancestor(py, [-1, 0, 1]) == [0, 1, 0]
    assert S.skb_ancestor(py, [-1, 0, 1]) == [0, 1, 0]


def test_current_ancestor_walks_the_hierarchy(py: PyBackend, nested: list[int]) -> None:
    assert len(nested) == 4
    assert S.current_ancestor(py, [0, 1, 2, 3, 4, -1]) == [*nested, 0, 0]


def test_skb_and_sk_ancestors_are_those_of_the_sockets_cgroup(py: PyBackend,
                                                               nested: list[int]) -> None:
    assert S.skb_ancestor(py, [0, 1, 2, 3, 4]) == [*nested, 0]
    # skb_cgroup_id, sk_cgroup_id, then (skb, sk) ancestors per level
    assert S.cgroup_skb_ids(py, [1, 3, 4]) == [nested[3], nested[3], nested[1], nested[1],
                                                nested[3], nested[3], 0, 0]


def test_ancestors_of_cgroups_known_through_fds(py: PyBackend) -> None:
    rt = py.rt
    a = rt.fds[cgroup_open(rt, 100)].obj
    cgroup_open(rt, 200, a)
    assert cgroup_ancestors(rt, 200) == [1, 100, 200]
    assert cgroup_ancestors(rt, 300) == [1, 300]  # known nowhere: a child of the root
    rt.cgroup_id = 200
    assert S.current_ancestor(py, [0, 1, 2, 3]) == [1, 100, 200, 0]


def test_ns_pid_tgid_for_the_runtimes_namespace_only(py: PyBackend) -> None:
    rt = py.rt
    rt.pid, rt.tgid = 7, 5
    dev, ino = rt.pidns_dev, rt.pidns_ino
    assert S.ns_pid_tgid(py, [(dev, ino, 8)]) == [(0, 7, 5)]
    # another namespace, a dev wider than dev_t, a size other than 8: EINVAL, zeroed
    assert S.ns_pid_tgid(py, [(dev, ino + 1, 8), (dev + 1, ino, 8), (dev | 1 << 32, ino, 8),
                              (dev, ino, 16)]) == [(-22, 0, 0)] * 4
    assert S.ns_pid_tgid(py, [(dev, ino, 4)]) == [(-22, 0, 0x5A5A5A5A)]


@pytest.mark.parametrize(("func_id", "types"), [
    (83, {P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB}), (128, {P.CGROUP_SKB}),
    (129, {P.CGROUP_SKB})])
def test_socket_cgroup_helpers_offered_where_the_kernel_offers_them(func_id: int,
                                                                    types: set[int]) -> None:
    for prog_type in (P.SOCKET_FILTER, P.SCHED_CLS, P.SCHED_ACT, P.XDP, P.CGROUP_SKB,
                      P.CGROUP_SOCK, P.SK_SKB, P.KPROBE):
        assert (func_proto(func_id, prog_type) is not None) == (prog_type in types)


def test_current_task_helpers_tiers() -> None:
    # get_current_ancestor_cgroup_id needs CAP_BPF; get_ns_current_pid_tgid is for all
    assert func_proto(123, P.SOCKET_FILTER, cap_bpf=False) is None
    assert func_proto(123, P.SOCKET_FILTER) is not None
    assert func_proto(120, P.SOCKET_FILTER, cap_bpf=False, cap_perfmon=False) is not None
