"""CGROUP_STORAGE / PERCPU_CGROUP_STORAGE: linked storages on the syscall side, and
the storage a test run gives bpf_get_local_storage."""

from __future__ import annotations

import errno
import struct

import pytest

from helpers._build import ADD, PyBackend, alu, call, exit_, ld_map_fd, ldx, mov, stx
from pyebpf import BpfError, Cmd, MapElemAttr, MapType, ProgType, bpf
from pyebpf.attr import TestRunAttr
from pyebpf.maps.cgroup_storage import CgroupStorageMap
from pyebpf.uapi import AttachType

from ._mapops import create_errno


def _map(be: PyBackend, map_type: MapType, key_size: int = 16) -> tuple[int, CgroupStorageMap]:
    fd = be.map_create(map_type, key_size, 8, 0)
    m = be.rt.fds[fd].obj
    assert isinstance(m, CgroupStorageMap)
    return fd, m


def test_max_entries_must_be_zero() -> None:
    be = PyBackend()
    assert create_errno(be.rt, MapType.CGROUP_STORAGE, key_size=16, value_size=8,
                        max_entries=1) == errno.EINVAL
    assert create_errno(be.rt, MapType.PERCPU_CGROUP_STORAGE, key_size=16,
                        value_size=32769) == errno.E2BIG


def test_linked_storages_are_elements() -> None:
    be = PyBackend()
    fd, m = _map(be, MapType.CGROUP_STORAGE)
    m.link(7, AttachType.CGROUP_INET_INGRESS)
    m.link(9, AttachType.CGROUP_INET_EGRESS)
    key7 = struct.pack("<QI4x", 7, AttachType.CGROUP_INET_INGRESS)
    key9 = struct.pack("<QI4x", 9, AttachType.CGROUP_INET_EGRESS)
    assert bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=None), runtime=be.rt) == key7
    assert bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=key7), runtime=be.rt) == key9
    be.update(fd, key9, struct.pack("<Q", 42), flags=2)
    assert be.lookup(fd, key9, 8) == struct.pack("<Q", 42)
    with pytest.raises(BpfError) as e:
        be.update(fd, key9, bytes(8), flags=1)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(BpfError) as e:
        be.delete(fd, key9)
    assert e.value.errno == errno.EINVAL
    m.unlink(9, AttachType.CGROUP_INET_EGRESS)
    with pytest.raises(BpfError) as e:
        be.lookup(fd, key9, 8)
    assert e.value.errno == errno.ENOENT


def test_percpu_storage_values_are_per_cpu() -> None:
    be = PyBackend(nr_cpus=3)
    fd, m = _map(be, MapType.PERCPU_CGROUP_STORAGE, key_size=8)
    m.link(5, 0)
    key = struct.pack("<Q", 5)
    be.update(fd, key, struct.pack("<3Q", 1, 2, 3))
    assert be.lookup(fd, key, 8) == struct.pack("<3Q", 1, 2, 3)


def _counter(map_fd: int) -> list:
    """++*(u64 *)bpf_get_local_storage(map, 0); return 1."""
    return [*ld_map_fd(1, map_fd), mov(2, 0), call(81), ldx(8, 1, 0, 0), alu(ADD, 1, 1),
            stx(8, 0, 1, 0), mov(0, 1), exit_()]


@pytest.mark.parametrize("map_type", [MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE])
def test_each_test_run_gets_a_fresh_unlinked_storage(map_type: MapType) -> None:
    be = PyBackend()
    fd, m = _map(be, map_type)
    prog_fd = be.load(_counter(fd), ProgType.CGROUP_SKB)
    prog = be.rt.fds[prog_fd].obj
    be.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog_fd, data_in=bytes(64), repeat=4))
    assert not m.storages and getattr(prog, "cgroup_storage", None) is None
    # Outside a test run the program keeps one storage of its own.
    region_addr = prog.run(0) and prog.cgroup_storage[m.percpu].addr()
    prog.run(0)
    assert be.rt.memory.load(region_addr, 8) == 2
