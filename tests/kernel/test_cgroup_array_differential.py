"""Cgroup arrays on pyebpf and on the real kernel: MAP_CREATE and the element
commands fail alike; bpf_current_task_under_cgroup, run from an XDP program,
answers alike for the cgroup v2 root (1: every task is under it), a new child
cgroup the test process is not in (0), an empty slot (-EAGAIN) and an index
past the end (-E2BIG)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers._build import KernelBackend, PyBackend, call, exit_, ld_map_fd, mov
from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapElemAttr, MapType, ProgType
from pyebpf.maps.cgroup_array import CGROUP_ROOT_ID, SimpleCgroup, cgroup_open

from .harness import BAD_FD, MapPair, info_fields, same_errno

pytestmark = pytest.mark.kernel


def _cgroup2_root() -> Path | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    return None


CREATE = [
    dict(key_size=4, value_size=4, max_entries=4),
    dict(key_size=4, value_size=8, max_entries=4),
    dict(key_size=2, value_size=4, max_entries=4),
    dict(key_size=4, value_size=4, max_entries=0),
    dict(key_size=4, value_size=4, max_entries=4, map_flags=1 << 8),
    dict(key_size=4, value_size=4, max_entries=4, map_flags=1 << 11),
    dict(key_size=4, value_size=4, max_entries=4, map_flags=1 << 4),
]


@pytest.mark.parametrize("kw", CREATE, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_create_matches_the_kernel(kw: dict) -> None:
    with MapPair(MapCreateAttr(map_type=MapType.CGROUP_ARRAY, **kw)) as pair:
        same_errno(*pair.created, f"MAP_CREATE {kw}")
        if pair.created[0].ok:
            _same_info(pair)


def _u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def test_element_commands_match_the_kernel() -> None:
    attr = MapCreateAttr(map_type=MapType.CGROUP_ARRAY, key_size=4, value_size=4, max_entries=2)
    with MapPair(attr) as pair:
        for cmd, fields in [
            (Cmd.MAP_LOOKUP_ELEM, dict(key=_u32(0))),
            (Cmd.MAP_DELETE_ELEM, dict(key=_u32(0))),
            (Cmd.MAP_DELETE_ELEM, dict(key=_u32(2))),
            (Cmd.MAP_UPDATE_ELEM, dict(key=_u32(0), value=_u32(BAD_FD))),
            (Cmd.MAP_UPDATE_ELEM, dict(key=_u32(5), value=_u32(BAD_FD))),
            (Cmd.MAP_UPDATE_ELEM, dict(key=_u32(0), value=_u32(BAD_FD), flags=2)),
            (Cmd.MAP_LOOKUP_AND_DELETE_ELEM, dict(key=_u32(0))),
            (Cmd.MAP_GET_NEXT_KEY, dict(key=_u32(0))),
            (Cmd.MAP_GET_NEXT_KEY, dict(key=_u32(1))),
        ]:
            py, k = pair.elem(cmd, **fields)
            same_errno(py, k, f"{cmd.name} {fields}")
        # The map's own fd is no cgroup: EBADF on both.
        py, k = pair.run(Cmd.MAP_UPDATE_ELEM, lambda fd: MapElemAttr(
            map_fd=fd, key=_u32(0), value=_u32(fd)))
        same_errno(py, k, "MAP_UPDATE_ELEM with a map fd")


def _prog(map_fd: int, index: int) -> list:
    return [*ld_map_fd(1, map_fd), mov(2, index), call(37), exit_()]


def test_current_task_under_cgroup_matches_the_kernel(tmp_path: Path) -> None:
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    child = root / f"pyebpf_diff_{os.getpid()}"
    child.mkdir()
    kb, pb = KernelBackend(), PyBackend()
    k_fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY), os.open(child, os.O_RDONLY
                                                                  | os.O_DIRECTORY)]
    try:
        k_map = kb.map_create(MapType.CGROUP_ARRAY, 4, 4, 3)
        p_map = pb.map_create(MapType.CGROUP_ARRAY, 4, 4, 3)
        p_root = cgroup_open(pb.rt, CGROUP_ROOT_ID)
        root_obj = pb.rt.fds[p_root].obj
        assert isinstance(root_obj, SimpleCgroup)
        p_fds = [p_root, cgroup_open(pb.rt, 4242, parent=root_obj)]
        for i in range(2):
            kb.update(k_map, _u32(i), _u32(k_fds[i]))
            pb.update(p_map, _u32(i), _u32(p_fds[i]))
        for index in (0, 1, 2, 3, 0x7FFF_FFFF):
            k = kb.run(kb.load(_prog(k_map, index), ProgType.XDP))
            p = pb.run(pb.load(_prog(p_map, index), ProgType.XDP))
            assert p == k, f"index {index}: pyebpf {p:#x}, kernel {k:#x}"
            # bpf_skb_under_cgroup(skb, map, index) from tc: the test-run skb's socket.
            skb_prog = [mov(3, index), *ld_map_fd(2, k_map), call(33), exit_()]
            k = kb.run(kb.load(skb_prog, ProgType.SCHED_CLS), bytes(64))
            skb_prog = [mov(3, index), *ld_map_fd(2, p_map), call(33), exit_()]
            p = pb.run(pb.load(skb_prog, ProgType.SCHED_CLS), bytes(64))
            assert p == k, f"skb, index {index}: pyebpf {p:#x}, kernel {k:#x}"
    finally:
        for fd in k_fds + kb.fds:
            os.close(fd)
        pb.close()
        child.rmdir()


def _same_info(pair: MapPair) -> None:
    """OBJ_GET_INFO_BY_FD gives the same bpf_map_info on both sides (ids aside)."""
    py, k = pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
    same_errno(py, k, "OBJ_GET_INFO_BY_FD")
    assert info_fields(py.value) == info_fields(k.value)
