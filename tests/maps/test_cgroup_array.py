"""CGROUP_ARRAY: cgroup fds in slots, and the helpers asking "is it under that cgroup?"."""

from __future__ import annotations

import errno

import pytest

from helpers._build import PyBackend, call, exit_, ld_map_fd, mov
from pyebpf import BpfError, Cmd, MapElemAttr, MapType, ProgType, bpf
from pyebpf.errors import ENOTSUPP
from pyebpf.maps.cgroup_array import CGROUP_ROOT_ID, cgroup_open

U32 = 0xFFFF_FFFF


def _u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


@pytest.fixture
def be() -> PyBackend:
    return PyBackend()


def _setup(be: PyBackend) -> tuple[int, int, int]:
    """A 3-slot array with the root in slot 0 and a child of it in slot 1."""
    m = be.map_create(MapType.CGROUP_ARRAY, 4, 4, 3)
    root = cgroup_open(be.rt, CGROUP_ROOT_ID)
    child = cgroup_open(be.rt, 100, parent=be.rt.fds[root].obj)
    be.update(m, _u32(0), _u32(root))
    be.update(m, _u32(1), _u32(child))
    return m, root, child


def _task_prog(m: int, index: int) -> list:
    return [*ld_map_fd(1, m), mov(2, index), call(37), exit_()]


def test_current_task_under_cgroup_follows_the_current_cgroup(be: PyBackend) -> None:
    m, _, _ = _setup(be)
    results = [be.run(be.load(_task_prog(m, i))) for i in range(4)]
    assert results == [1, 0, -errno.EAGAIN & U32, -errno.E2BIG & U32]
    be.rt.cgroup_id = 100  # the task moves into the child
    assert [be.run(be.load(_task_prog(m, i))) for i in range(2)] == [1, 1]


def test_skb_under_cgroup_uses_the_skbs_socket(be: PyBackend) -> None:
    m, _, _ = _setup(be)
    # The test-run skb's socket is charged to the current task's cgroup (the root).
    got = [be.run(be.load([mov(3, i), *ld_map_fd(2, m), call(33), exit_()], ProgType.SCHED_CLS),
                  bytes(64)) for i in range(4)]
    assert got == [1, 0, -errno.EAGAIN & U32, -errno.E2BIG & U32]


def test_syscall_side_errnos(be: PyBackend) -> None:
    m, root, _ = _setup(be)

    def err(cmd: Cmd, **kw: object) -> int:
        with pytest.raises(BpfError) as e:
            bpf(cmd, MapElemAttr(map_fd=m, **kw), runtime=be.rt)
        return int(e.value.errno or 0)

    assert err(Cmd.MAP_LOOKUP_ELEM, key=_u32(0)) == ENOTSUPP
    assert err(Cmd.MAP_UPDATE_ELEM, key=_u32(2), value=_u32(m)) == errno.EBADF
    assert err(Cmd.MAP_UPDATE_ELEM, key=_u32(3), value=_u32(root)) == errno.E2BIG
    assert err(Cmd.MAP_UPDATE_ELEM, key=_u32(2), value=_u32(root), flags=1) == errno.EINVAL
    assert err(Cmd.MAP_DELETE_ELEM, key=_u32(2)) == errno.ENOENT
    be.rt.close(root)  # the slot keeps the cgroup
    assert be.run(be.load(_task_prog(m, 0))) == 1
