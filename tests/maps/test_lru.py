"""LRU_HASH and LRU_PERCPU_HASH: eviction as the kernel's bpf_lru_list decides it.

Every sequence here was run on the Linux 6.18 kernel (2 possible CPUs, the
caller pinned to a CPU, BPF_F_ZERO_SEED) with the same outcome;
tests/kernel/test_lru_differential.py replays them and random ones live.
"""

from __future__ import annotations

import errno

import pytest

from pyebpf import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_NOEXIST,
    Cmd,
    InfoByFdAttr,
    MapFlags,
    MapType,
    Runtime,
    bpf,
)
from pyebpf.errors import ENOTSUPP

from ._mapops import (
    create,
    create_errno,
    delete,
    fails,
    k,
    keys,
    lookup,
    lookup_and_delete,
    map_obj,
    update,
)

ZS = MapFlags.ZERO_SEED


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def new(rt: Runtime, max_entries: int, mtype: int = MapType.LRU_HASH, flags: int = 0,
        value_size: int = 8) -> int:
    return create(rt, mtype, key_size=4, value_size=value_size, max_entries=max_entries,
                  map_flags=flags | ZS)


def put(rt: Runtime, fd: int, *ids: int, flags: int = BPF_ANY) -> None:
    size = map_obj(rt, fd).syscall_value_size
    for i in ids:
        update(rt, fd, k(i), bytes([i]) * size, flags)


def touch(rt: Runtime, fd: int, *ids: int) -> None:
    """A program's lookup (bpf_map_lookup_elem): sets the ref bit."""
    for i in ids:
        map_obj(rt, fd).lookup_elem(k(i))


def present(rt: Runtime, fd: int) -> list[int]:
    return sorted(int.from_bytes(key, "little") for key in keys(rt, fd))


# -- eviction ----------------------------------------------------------------------------
@pytest.mark.parametrize("mtype", [MapType.LRU_HASH, MapType.LRU_PERCPU_HASH])
@pytest.mark.parametrize("flags", [0, MapFlags.NO_COMMON_LRU])
def test_lru_full_update_evicts_instead_of_e2big(rt: Runtime, mtype: int, flags: int) -> None:
    fd = new(rt, 4, mtype, flags)
    put(rt, fd, *range(1, 30))
    got = present(rt, fd)
    assert 0 < len(got) <= 4 and 29 in got


def test_lru_evicts_the_least_recently_used(rt: Runtime) -> None:
    fd = new(rt, 4)
    put(rt, fd, 1, 2, 3, 4)
    put(rt, fd, 5)
    assert present(rt, fd) == [2, 3, 4, 5]
    put(rt, fd, 6, 7)
    assert present(rt, fd) == [4, 5, 6, 7]


def test_lru_program_lookups_protect_from_eviction(rt: Runtime) -> None:
    fd = new(rt, 4)
    put(rt, fd, 1, 2, 3, 4)
    touch(rt, fd, 1, 2)
    put(rt, fd, 5, 6, 7, 8)
    assert present(rt, fd) == [1, 2, 7, 8]


def test_lru_syscall_lookups_do_not_protect(rt: Runtime) -> None:
    """MAP_LOOKUP_ELEM is htab_lru_map_lookup_elem_sys: no ref bit, so that walking
    a map from user space does not change what gets evicted."""
    fd = new(rt, 4)
    put(rt, fd, 1, 2, 3, 4)
    lookup(rt, fd, k(1))
    lookup(rt, fd, k(2))
    put(rt, fd, 5, 6, 7, 8)
    assert present(rt, fd) == [5, 6, 7, 8]


def test_lru_update_of_an_existing_key_can_evict_another(rt: Runtime) -> None:
    """The kernel takes a fresh node before it looks for the key (Linux 6.18)."""
    fd = new(rt, 2)
    put(rt, fd, 2, 4)
    put(rt, fd, 4)
    assert present(rt, fd) == [4]


def test_lru_a_failing_noexist_update_still_evicts(rt: Runtime) -> None:
    fd = new(rt, 2)
    put(rt, fd, 3, 4)
    fails(errno.EEXIST, put, rt, fd, 4, flags=BPF_NOEXIST)
    assert present(rt, fd) == [4]


def test_lru_exist_update_fails_after_evicting_its_own_key(rt: Runtime) -> None:
    fd = new(rt, 2)
    put(rt, fd, 3, 4)
    fails(errno.ENOENT, put, rt, fd, 3, flags=BPF_EXIST)
    assert present(rt, fd) == [4]


def test_lru_percpu_exist_update_takes_no_node(rt: Runtime) -> None:
    """LRU_PERCPU_HASH updates values in place and pops no node for BPF_EXIST; the
    update sets the ref bit, so the next eviction spares the key."""
    fd = new(rt, 2, MapType.LRU_PERCPU_HASH)
    put(rt, fd, 3, 4)
    put(rt, fd, 3, flags=BPF_EXIST)
    put(rt, fd, 3, flags=BPF_EXIST)
    assert present(rt, fd) == [3, 4]
    put(rt, fd, 5)
    assert present(rt, fd) == [3, 5]


def test_lru_deleted_nodes_are_reused_first(rt: Runtime) -> None:
    fd = new(rt, 4)
    put(rt, fd, 1, 2, 3, 4)
    delete(rt, fd, k(2))
    put(rt, fd, 5)
    assert present(rt, fd) == [1, 3, 4, 5]
    assert lookup_and_delete(rt, fd, k(5)) == bytes([5]) * 8
    put(rt, fd, 6)
    assert present(rt, fd) == [1, 3, 4, 6]


# -- CPUs --------------------------------------------------------------------------------------
def test_lru_steals_from_another_cpus_lists(rt: Runtime) -> None:
    """With one node, a CPU whose lists are empty takes it from another CPU's."""
    fd = new(rt, 1)
    put(rt, fd, 1)
    rt.cpu = 1
    put(rt, fd, 2)
    assert present(rt, fd) == [2]
    rt.cpu = 0
    put(rt, fd, 3)
    delete(rt, fd, k(3))
    rt.cpu = 1
    put(rt, fd, 4)
    rt.cpu = 0
    put(rt, fd, 5)
    assert present(rt, fd) == [5]


def test_lru_no_common_lru_cpus_evict_only_their_own(rt: Runtime) -> None:
    """Each CPU has max_entries / nr_cpus nodes and frees up to 4 at a time."""
    fd = new(rt, 4, flags=MapFlags.NO_COMMON_LRU)
    put(rt, fd, 1, 2)
    rt.cpu = 1
    put(rt, fd, 3, 4, 5)
    assert present(rt, fd) == [1, 2, 5]
    rt.cpu = 0
    put(rt, fd, 6)
    assert present(rt, fd) == [5, 6]


def test_lru_no_common_lru_rounds_max_entries_to_the_cpus(rt: Runtime) -> None:
    rt4 = Runtime(nr_cpus=4)
    for r, asked, got in ((rt, 3, 4), (rt4, 5, 8), (rt4, 8, 8), (rt, 1, 2)):
        fd = new(r, asked, flags=MapFlags.NO_COMMON_LRU)
        info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=r)
        assert info.max_entries == got
    fd = new(rt, 3)
    assert bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=rt).max_entries == 3


def test_lru_common_lists_move_target_free_nodes_at_a_time(rt: Runtime) -> None:
    """target_free = clamp(max_entries / nr_cpus / 2, 1, 128): 8 here, so the first
    update moves 8 free nodes to the CPU's local list; new elements wait on the
    CPU's pending list until the next refill flushes them to the inactive list."""
    fd = new(rt, 33)
    lru = map_obj(rt, fd).lru_state
    assert lru.target_free == 8
    put(rt, fd, *range(1, 9))
    lists = lru.lists()
    assert len(lists["pending0"]) == 8 and lists["inactive"] == []
    put(rt, fd, 9)
    lists = lru.lists()
    assert lists["pending0"] == [k(9)] and len(lists["inactive"]) == 8
    assert lru.local[0].free == 7 and lru.lru_list.free == 33 - 16


# -- values --------------------------------------------------------------------------------------
def test_lru_percpu_values_are_per_cpu(rt: Runtime) -> None:
    fd = new(rt, 4, MapType.LRU_PERCPU_HASH, value_size=4)
    update(rt, fd, k(1), b"AAAA\0\0\0\0BBBB\0\0\0\0")
    assert lookup(rt, fd, k(1)) == b"AAAA\0\0\0\0BBBB\0\0\0\0"
    m = map_obj(rt, fd)
    rt.cpu = 1
    assert rt.memory.read(m.lookup_elem(k(1)), 4) == b"BBBB"
    m.update_elem(k(2), b"CCCC", BPF_ANY)  # a program's update: other CPUs zeroed
    assert lookup(rt, fd, k(2)) == bytes(8) + b"CCCC\0\0\0\0"


def test_lru_program_lookup_gives_the_value_address(rt: Runtime) -> None:
    fd = new(rt, 4)
    put(rt, fd, 1)
    addr = map_obj(rt, fd).lookup_elem(k(1))
    rt.memory.write(addr, b"12345678")
    assert lookup(rt, fd, k(1)) == b"12345678"
    assert map_obj(rt, fd).lookup_elem(k(2)) is None


# -- flags and creation ----------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [3, BPF_F_LOCK, BPF_F_LOCK | BPF_EXIST, 8, 1 << 32])
@pytest.mark.parametrize("mtype", [MapType.LRU_HASH, MapType.LRU_PERCPU_HASH])
def test_lru_unknown_update_flags_are_einval(rt: Runtime, mtype: int, flags: int) -> None:
    fd = new(rt, 1, mtype)
    put(rt, fd, 1)
    fails(errno.EINVAL, put, rt, fd, 2, flags=flags)
    assert present(rt, fd) == [1], "nothing evicted: flags are checked first"


def test_lru_flag_modes_on_a_map_with_room(rt: Runtime) -> None:
    fd = new(rt, 8)
    put(rt, fd, 1)
    fails(errno.EEXIST, put, rt, fd, 1, flags=BPF_NOEXIST)
    fails(errno.ENOENT, put, rt, fd, 2, flags=BPF_EXIST)
    put(rt, fd, 1, flags=BPF_EXIST)
    assert present(rt, fd) == [1]
    fails(errno.ENOENT, delete, rt, fd, k(2))


@pytest.mark.parametrize("mtype", [MapType.LRU_HASH, MapType.LRU_PERCPU_HASH])
@pytest.mark.parametrize("kw,err", [
    ({"map_flags": MapFlags.NO_PREALLOC}, ENOTSUPP),
    ({"map_flags": MapFlags.NO_COMMON_LRU | MapFlags.NUMA_NODE}, errno.EINVAL),
    ({"map_flags": MapFlags.MMAPABLE}, errno.EINVAL),
    ({"key_size": 0}, errno.EINVAL),
    ({"value_size": 0}, errno.EINVAL),
    ({"max_entries": 0}, errno.EINVAL),
    ({"max_entries": (1 << 31) + 1}, errno.E2BIG),
    ({"max_entries": 0xFFFF_FFFF, "map_flags": MapFlags.NO_COMMON_LRU}, errno.E2BIG),
])
def test_lru_create_validation(rt: Runtime, mtype: int, kw: dict[str, int], err: int) -> None:
    args = {"key_size": 4, "value_size": 4, "max_entries": 4, **kw}
    assert create_errno(rt, mtype, **args) == err


def test_lru_percpu_numa_node_is_einval_only_for_percpu_values(rt: Runtime) -> None:
    create(rt, MapType.LRU_HASH, key_size=4, value_size=4, max_entries=4,
           map_flags=MapFlags.NUMA_NODE)
    assert create_errno(rt, MapType.LRU_PERCPU_HASH, key_size=4, value_size=4, max_entries=4,
                        map_flags=MapFlags.NUMA_NODE) == errno.EINVAL


def test_no_common_lru_is_only_for_lru_maps(rt: Runtime) -> None:
    assert create_errno(rt, MapType.HASH, key_size=4, value_size=4, max_entries=4,
                        map_flags=MapFlags.NO_COMMON_LRU) == errno.EINVAL


# -- the model on more CPUs than the test machine has (read from bpf_lru_list.c) --------------
def test_lru_steal_goes_round_robin_over_cpus() -> None:
    """Each CPU in turn finds the one node on the previous CPU's pending list, after
    trying the CPUs from its own next_steal on; next_steal is left after the victim."""
    rt = Runtime(nr_cpus=4)
    fd = new(rt, 1)
    for cpu in (0, 1, 2, 3, 0):
        rt.cpu = cpu
        put(rt, fd, cpu + 10)
        assert present(rt, fd) == [cpu + 10]
    lru = map_obj(rt, fd).lru_state
    assert [loc.next_steal for loc in lru.local] == [0, 1, 2, 3]
