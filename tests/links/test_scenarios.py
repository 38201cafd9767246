"""The attach-rule scenarios on pyebpf give what Linux 6.18 gave (measured by
tests/kernel/test_links_differential.py in a fresh network namespace)."""

from __future__ import annotations

from typing import Any

import pytest

from .scenarios import SCENARIOS, PyebpfSide

#: What the kernel answered, step by step.
EXPECTED: dict[str, list[Any]] = {
    "tracepoint_links": [
        'ok', {'cookie': 3, 'name_len': 13, 'perf_event_type': 5}, 'EEXIST', 'EEXIST',
        'EINVAL', 'EINVAL', 'ok', 'EEXIST', 'ok', 'EEXIST', 'EEXIST', 'ok', 'ENOTSUP'
    ],
    "perf_event_links": [
        'ok', {'config': 2, 'cookie': 9, 'event_type': 1, 'perf_event_type': 6}, 'EEXIST',
        'EEXIST', 'ENOTSUP', 'EINVAL', 'EINVAL', 'EINVAL', 'EBADF', 'EBADF', 'EINVAL', 'ok',
        {'cookie': 0, 'perf_event_type': 6}
    ],
    "redirect_veth": [
        [3, 2, 5, 4], 'ok', 'ok', ['got', None], ['got', [60, 255]], ['got', [60, 255]], 'ok',
        'ok', ['got', None], ['got', [60, 255]], ['got', None], 'ok', 'ok', ['got', None],
        ['got', None], 'ok', 'ok', 'ok', ['got', None], ['got', None], ['got', [60, 255]],
        'ok', 'ok', 'ok', ['got', None], 'ok', 'ok', ['got', None], ['got', [60, 255]]
    ],
    "tcx_positions": [
        'ok', 'ok', ['query', 1, ['tc2'], 3], 'ENOENT', 'ERANGE', 'EINVAL', 'ok', 'EBUSY',
        ['query', 2, ['tc2', 'tc1'], 4], 'ok', ['query', 3, ['tc2', 'tc1', 'tc4'], 5], 'EBUSY',
        ['query', 3, ['tc2', 'tc1', 'tc4'], 5], 'ok', ['query', 2, ['tc2', 'tc1'], 6], 'ok',
        ['query', 1, ['tc1'], 7], 'EBUSY', 'ENOENT', ['query', 1, ['tc1'], 7], 'ENOENT',
        'EINVAL', 'ENOENT'
    ],
    "datapath_veth": [
        'ok', ['got', [60, 255]], 'ok', 'ok', ['got', [60, 17]], 'ok', 'ok', ['got', None],
        'ok', 'ok', ['got', [60, 255]], 'ok', 'ok', ['got', None], ['got', None], 'ok', 'ok',
        ['got', None], ['got', [60, 255]], 'ok', 'ok', 'ok', 'ENOBUFS', ['got', None], 'ok',
        'ok', ['got', [60, 255]]
    ],
    "socket_filter": [
        ['rx', 60], 'ok', ['rx', 20], 'ok', ['rx', 60], 'ok', ['rx', None], 'EINVAL', 'ok',
        'ENOENT', ['rx', 60], 'ok', 'ok', 'EPERM', 'EPERM', ['rx', 20]
    ],
    "xdp_veth": [
        [3, 2], 'ok', 'EEXIST', 'EBUSY', 'EINVAL', 'ok', 'EEXIST', 'ok', 'ok', {'ifindex': 0},
        {'ifindex': 0}, {'attach_type': 47, 'ifindex': 0}, 'ENOLINK', 'ENOLINK', 'ok', 'ok',
        'ENODEV'
    ],
    "attach_dispatch": [
        'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EBADF', 'EINVAL', 'EINVAL',
        'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'ENOENT', 'EINVAL', 'EINVAL', 'EINVAL', 'ok',
        {'ifindex': 1}, 'EBADF', 'EINVAL'
    ],
    "raw_tracepoint": [
        'ok', {'cookie': 7, 'tp_name_len': 13, 'type': 1}, 'ok', 'ok', 'ENOENT', 'EFAULT',
        'EINVAL', 'ENOTSUP', 'EINVAL'
    ],
    "netns_flow_dissector": [
        'ok', 'E2BIG', 'EEXIST', 'EINVAL', 'EINVAL', ['query', 1, ['fd1'], 0], 'ok', 'EPERM',
        'EINVAL', 'EINVAL', 'EINVAL', ['query', 1, ['fd2'], 0], {'attach_type': 17}, 'ok',
        {'netns_ino': 0}, 'ENOLINK', 'ok', 'ok', 'EINVAL', 'EEXIST', 'ok',
        ['query', 1, ['fd2'], 0], 'ENOENT', 'ok', 'ENOENT', 'EINVAL', 'EINVAL', 'EINVAL',
        'EBADF', 'EINVAL', 'EINVAL', 'EINVAL', 'ok', ['query', 0, [], 0]
    ],
    "netns_sk_lookup": [
        'ok', 'ok', 'ok', ['query', 3, ['sk1', 'sk2', 'sk1'], 0], 'EINVAL', 'EINVAL', 'ok',
        'EINVAL', ['query', 3, ['sk1', 'sk1', 'sk1'], 0], 'ok',
        ['query', 2, ['sk1', 'sk1'], 0], {'attach_type': 36, 'netns_ino': 0}
    ],
    "netns_gone": [
        'ok', 'ok', {'netns_ino': 0}, {'netns_ino': 0}, 'ENOLINK', 'EPERM', 'ok', 'ok',
        ['query', 1, ['fd2'], 0]
    ],
    "xdp_lo": [
        'ok', {'ifindex': 1}, 'EBUSY', 'EEXIST', 'ENOTSUP', 'EINVAL', 'EINVAL', 'EINVAL',
        'EINVAL', 'ok', 'ok', 'EINVAL', 'EPERM', 'ok', 'ok', {'ifindex': 0}, 'ENOLINK', 'ok',
        'EEXIST', 'ENOTSUP', 'ok', {'ifindex': 1}
    ],
    "tcx_lo": [
        ['query', 0, [], 1], 'ok', 'EEXIST', 'ok', 'ok',
        ['query', 3, ['tc3', 'tc1', 'tc2'], 4], 'ESTALE', 'EINVAL', 'EINVAL', 'ENOENT',
        'EINVAL', 'ENODEV', 'EBUSY', 'ok', 'ENOENT', 'EEXIST', 'ok', 'EPERM', 'ok',
        ['query', 3, ['tc3', 'tc2', 'tc4'], 7], {'attach_type': 46, 'ifindex': 1}, 'ok',
        {'ifindex': 0}, 'ENOLINK', ['query', 2, ['tc3', 'tc2'], 8], 'EINVAL', 'ok',
        ['query', 0, [], 1], 'ENOENT', 'ENODEV', 'EINVAL'
    ],
    "cgroup_rules": [
        'ok', 'EPERM', 'ok', ['query', 1, ['ing2'], 3], 'EPERM', 'EINVAL', 'EINVAL', 'ok',
        'ENOENT', 'ok', 'ok', 'EPERM', ['query', 1, ['ing2'], 0], ['query', 1, ['ing2'], 0],
        'ok', 'ok', 'ok', 'ok', 'EINVAL', 'ok', ['query', 3, ['ing3', 'ing1', 'ing2'], 0],
        ['query', 3, ['ing3', 'ing1', 'ing2'], 0], 'EINVAL', 'ok', ['query', 1, ['ing1'], 5],
        'EINVAL', 'ENOENT', 'ok', 'EINVAL', 'ok', 'ok', 'EINVAL', 'EPERM',
        ['query', 3, ['ing1', 'ing3', 'ing2'], 8], 'ENOENT', {'attach_type': 0}, 'ok',
        {'cgroup_id': 0}, 'ENOLINK', ['query', 2, ['ing1', 'ing2'], 9], 'ESTALE', 'ok',
        'EBADF', 'EBADF', 'EBADF', ['query', 1, ['ing1'], 10]
    ],
    "cgroup_order": [
        'ok', 'ok', 'ok', ['query', 3, ['ing3', 'ing2', 'ing1'], 4], 'ok', 'ok',
        ['query', 3, ['ing2', 'ing3', 'ing1'], 6], 'ok', 'EINVAL', 'ENOENT', 'ENOENT',
        'ENOENT', 'EINVAL', 'ok', 'ok', ['query', 4, ['ing3', 'ing2', 'ing1', 'ing1'], 0],
        'ok', 'ok', ['query', 4, ['ing3', 'ing1', 'ing2', 'ing1'], 0]
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_gives_the_kernels_errno_sequence(name: str) -> None:
    assert SCENARIOS[name](PyebpfSide()) == EXPECTED[name]
