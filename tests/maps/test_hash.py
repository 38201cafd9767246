"""HASH and PERCPU_HASH through bpf(): every errno rule, by behaviour.

Orders and errnos pinned here were measured on the Linux 6.18 kernel (the
differential tests in tests/kernel compare them live).
"""

from __future__ import annotations

import errno

import pytest

from pyebpf import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_NOEXIST,
    BpfError,
    Cmd,
    InfoByFdAttr,
    MapCreateAttr,
    MapElemAttr,
    MapFlags,
    MapType,
    Runtime,
    bpf,
)
from pyebpf.errors import ENOTSUPP


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def create(rt: Runtime, *, map_type: int = MapType.HASH, key_size: int = 4,
           value_size: int = 4, max_entries: int = 4,
           map_flags: int = MapFlags.ZERO_SEED, **kw: object) -> int:
    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=key_size,
                                             value_size=value_size, max_entries=max_entries,
                                             map_flags=map_flags, **kw), runtime=rt)


def k(i: int, size: int = 4) -> bytes:
    return i.to_bytes(size, "little")


def update(rt: Runtime, fd: int, key: bytes | None, value: bytes | None,
           flags: int = BPF_ANY) -> int:
    return bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key, value=value, flags=flags),
               runtime=rt)


def lookup(rt: Runtime, fd: int, key: bytes | None, flags: int = 0) -> bytes:
    return bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key, flags=flags), runtime=rt)


def delete(rt: Runtime, fd: int, key: bytes | None) -> int:
    return bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=key), runtime=rt)


def next_key(rt: Runtime, fd: int, key: bytes | None) -> bytes:
    return bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=key), runtime=rt)


def lookup_and_delete(rt: Runtime, fd: int, key: bytes | None, flags: int = 0) -> bytes:
    return bpf(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, MapElemAttr(map_fd=fd, key=key, flags=flags),
               runtime=rt)


def keys(rt: Runtime, fd: int) -> list[bytes]:
    out: list[bytes] = []
    key = None
    while True:
        try:
            key = next_key(rt, fd, key)
        except BpfError as e:
            assert e.errno == errno.ENOENT
            return out
        out.append(key)


def contents(rt: Runtime, fd: int) -> list[tuple[bytes, bytes]]:
    return [(key, lookup(rt, fd, key)) for key in keys(rt, fd)]


def raises(err: int, fn, *args, **kw) -> BpfError:  # type: ignore[no-untyped-def]
    with pytest.raises(BpfError) as info:
        fn(*args, **kw)
    assert info.value.errno == err, f"expected {errno.errorcode.get(err, err)}, got {info.value}"
    return info.value


# -- update modes ------------------------------------------------------------------------------
def test_update_any_creates_then_overwrites(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    update(rt, fd, k(1), b"bbbb")
    assert lookup(rt, fd, k(1)) == b"bbbb"


def test_update_noexist_on_missing_key_creates(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa", BPF_NOEXIST)
    assert lookup(rt, fd, k(1)) == b"aaaa"


def test_update_noexist_on_existing_key_is_eexist(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    raises(errno.EEXIST, update, rt, fd, k(1), b"bbbb", BPF_NOEXIST)
    assert lookup(rt, fd, k(1)) == b"aaaa"


def test_update_exist_on_missing_key_is_enoent(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.ENOENT, update, rt, fd, k(1), b"aaaa", BPF_EXIST)
    assert keys(rt, fd) == []


def test_update_exist_on_existing_key_overwrites(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    update(rt, fd, k(1), b"bbbb", BPF_EXIST)
    assert lookup(rt, fd, k(1)) == b"bbbb"


@pytest.mark.parametrize("flags", [3, 7])
def test_update_flags_are_modes_not_bits(rt: Runtime, flags: int) -> None:
    """NOEXIST|EXIST (3) is no mode: EINVAL, not "both"."""
    fd = create(rt)
    raises(errno.EINVAL, update, rt, fd, k(1), b"aaaa", flags)


@pytest.mark.parametrize("flags", [8, 16, 1 << 32, 1 << 63])
def test_update_unknown_flag_bits_are_einval(rt: Runtime, flags: int) -> None:
    fd = create(rt)
    raises(errno.EINVAL, update, rt, fd, k(1), b"aaaa", flags)


@pytest.mark.parametrize("flags", [BPF_F_LOCK, BPF_F_LOCK | BPF_EXIST])
def test_update_f_lock_without_spin_lock_is_einval(rt: Runtime, flags: int) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    raises(errno.EINVAL, update, rt, fd, k(1), b"bbbb", flags)


# -- fullness -------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [MapFlags.ZERO_SEED, MapFlags.NO_PREALLOC])
def test_full_map_new_key_is_e2big(rt: Runtime, flags: int) -> None:
    fd = create(rt, max_entries=2, map_flags=flags)
    update(rt, fd, k(1), b"aaaa")
    update(rt, fd, k(2), b"bbbb")
    raises(errno.E2BIG, update, rt, fd, k(3), b"cccc")
    raises(errno.E2BIG, update, rt, fd, k(3), b"cccc", BPF_NOEXIST)


def test_full_map_existing_key_can_be_updated(rt: Runtime) -> None:
    fd = create(rt, max_entries=1)
    update(rt, fd, k(1), b"aaaa")
    update(rt, fd, k(1), b"bbbb")
    update(rt, fd, k(1), b"cccc", BPF_EXIST)
    assert lookup(rt, fd, k(1)) == b"cccc"


def test_full_map_exist_on_missing_key_is_enoent_not_e2big(rt: Runtime) -> None:
    fd = create(rt, max_entries=1)
    update(rt, fd, k(1), b"aaaa")
    raises(errno.ENOENT, update, rt, fd, k(2), b"bbbb", BPF_EXIST)


def test_delete_makes_room_in_a_full_map(rt: Runtime) -> None:
    fd = create(rt, max_entries=1)
    update(rt, fd, k(1), b"aaaa")
    delete(rt, fd, k(1))
    update(rt, fd, k(2), b"bbbb")
    assert contents(rt, fd) == [(k(2), b"bbbb")]


# -- lookup, delete, lookup-and-delete ------------------------------------------------------
def test_lookup_missing_key_is_enoent(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.ENOENT, lookup, rt, fd, k(9))


@pytest.mark.parametrize("flags", [1, 2, 8, 1 << 40])
def test_lookup_flags_other_than_f_lock_are_einval(rt: Runtime, flags: int) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    raises(errno.EINVAL, lookup, rt, fd, k(1), flags)


def test_lookup_f_lock_without_spin_lock_is_einval(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    raises(errno.EINVAL, lookup, rt, fd, k(1), BPF_F_LOCK)


def test_lookup_flags_are_checked_before_the_fd(rt: Runtime) -> None:
    raises(errno.EINVAL, lookup, rt, 999, k(1), 1)
    raises(errno.EBADF, lookup, rt, 999, k(1), 0)


def test_delete_missing_key_is_enoent(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.ENOENT, delete, rt, fd, k(1))


def test_delete_removes_the_key(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    update(rt, fd, k(2), b"bbbb")
    delete(rt, fd, k(1))
    assert contents(rt, fd) == [(k(2), b"bbbb")]


def test_lookup_and_delete_returns_the_value_and_removes_it(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    assert lookup_and_delete(rt, fd, k(1)) == b"aaaa"
    raises(errno.ENOENT, lookup, rt, fd, k(1))


def test_lookup_and_delete_missing_key_is_enoent(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.ENOENT, lookup_and_delete, rt, fd, k(1))


@pytest.mark.parametrize("flags", [BPF_F_LOCK, 1, 8])
def test_lookup_and_delete_with_flags_is_einval(rt: Runtime, flags: int) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    raises(errno.EINVAL, lookup_and_delete, rt, fd, k(1), flags)
    assert lookup(rt, fd, k(1)) == b"aaaa"


# -- buffers of the wrong length --------------------------------------------------------------
@pytest.mark.parametrize("key", [None, b"", b"\x01\x00\x00"])
def test_short_or_null_key_is_efault(rt: Runtime, key: bytes | None) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    for fn, args in ((lookup, ()), (delete, ()), (update, (b"bbbb",)),
                     (lookup_and_delete, ())):
        raises(errno.EFAULT, fn, rt, fd, key, *args)
    assert contents(rt, fd) == [(k(1), b"aaaa")]


def test_longer_key_uses_its_first_key_size_bytes(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1) + b"junk", b"aaaa")
    assert lookup(rt, fd, k(1)) == b"aaaa"


@pytest.mark.parametrize("value", [None, b"", b"aaa"])
def test_short_or_null_value_is_efault(rt: Runtime, value: bytes | None) -> None:
    fd = create(rt)
    raises(errno.EFAULT, update, rt, fd, k(1), value)
    assert keys(rt, fd) == []


def test_longer_value_stores_its_first_value_size_bytes(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaaXXXX")
    assert lookup(rt, fd, k(1)) == b"aaaa"


# -- get_next_key ---------------------------------------------------------------------------------
def test_get_next_key_null_returns_the_first_key(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    assert next_key(rt, fd, None) == k(1)


def test_get_next_key_missing_key_returns_the_first_key(rt: Runtime) -> None:
    fd = create(rt, max_entries=8)
    for i in range(8):
        update(rt, fd, k(i), b"vvvv")
    first = next_key(rt, fd, None)
    assert next_key(rt, fd, k(100)) == first


def test_get_next_key_last_key_is_enoent(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    update(rt, fd, k(2), b"bbbb")
    last = keys(rt, fd)[-1]
    raises(errno.ENOENT, next_key, rt, fd, last)


def test_get_next_key_on_an_empty_map_is_enoent(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.ENOENT, next_key, rt, fd, None)
    raises(errno.ENOENT, next_key, rt, fd, k(5))


def test_get_next_key_short_key_is_efault(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    raises(errno.EFAULT, next_key, rt, fd, b"\x01")


def test_get_next_key_takes_no_flags(rt: Runtime) -> None:
    """GET_NEXT_KEY's last field is next_key: flags past it are CHECK_ATTR's EINVAL."""
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    raises(errno.EINVAL, bpf, Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=None, flags=1),
           runtime=rt)


def test_zero_seed_iteration_order_is_the_kernels(rt: Runtime) -> None:
    """Measured on 6.18: HASH key 4, max_entries 8, BPF_F_ZERO_SEED, keys 0..7 inserted."""
    fd = create(rt, max_entries=8)
    for i in range(8):
        update(rt, fd, k(i), b"vvvv")
    assert keys(rt, fd) == [k(i) for i in (0, 4, 7, 2, 1, 6, 5, 3)]


def test_zero_seed_order_for_odd_key_sizes_is_the_kernels(rt: Runtime) -> None:
    fd = create(rt, key_size=3, max_entries=4)
    for key in (b"abc", b"xyz", b"\0\0\0", b"\xff\xff\xff"):
        update(rt, fd, key, b"vvvv")
    assert keys(rt, fd) == [b"xyz", b"abc", b"\xff\xff\xff", b"\0\0\0"]


def test_updating_an_existing_key_moves_it_to_its_buckets_head(rt: Runtime) -> None:
    """Keys 1 and 3 share a bucket (max_entries 4, zero seed): measured on 6.18."""
    fd = create(rt, max_entries=4)
    for i in (1, 2, 3, 4):
        update(rt, fd, k(i), b"vvvv")
    assert keys(rt, fd) == [k(i) for i in (4, 2, 3, 1)]
    update(rt, fd, k(1), b"wwww")
    assert keys(rt, fd) == [k(i) for i in (4, 2, 1, 3)]
    update(rt, fd, k(3), b"wwww", BPF_EXIST)
    assert keys(rt, fd) == [k(i) for i in (4, 2, 3, 1)]


# -- per-CPU values -----------------------------------------------------------------------------
def test_percpu_lookup_returns_a_rounded_slot_per_cpu(rt: Runtime) -> None:
    fd = create(rt, map_type=MapType.PERCPU_HASH, value_size=5)
    value = b"cpu0a\0\0\0cpu1b\0\0\0"
    update(rt, fd, k(1), value)
    assert lookup(rt, fd, k(1)) == value


def test_percpu_update_needs_every_cpus_slot(rt: Runtime) -> None:
    fd = create(rt, map_type=MapType.PERCPU_HASH, value_size=5)
    raises(errno.EFAULT, update, rt, fd, k(1), b"x" * 15)
    update(rt, fd, k(1), b"x" * 16)


def test_percpu_padding_bytes_are_kept(rt: Runtime) -> None:
    """copy_map_value_long copies whole 8-byte-rounded slots, padding included."""
    fd = create(rt, map_type=MapType.PERCPU_HASH, value_size=5)
    value = bytes(range(1, 17))
    update(rt, fd, k(1), value)
    assert lookup(rt, fd, k(1)) == value
    update(rt, fd, k(1), bytes(range(101, 117)), BPF_EXIST)
    assert lookup(rt, fd, k(1)) == bytes(range(101, 117))


def test_percpu_lookup_and_delete_returns_every_cpu(rt: Runtime) -> None:
    fd = create(rt, map_type=MapType.PERCPU_HASH, value_size=8)
    update(rt, fd, k(1), b"A" * 8 + b"B" * 8)
    assert lookup_and_delete(rt, fd, k(1)) == b"A" * 8 + b"B" * 8
    assert keys(rt, fd) == []


# -- a failed call changes nothing --------------------------------------------------------------
def test_failed_update_leaves_map_unchanged(rt: Runtime) -> None:
    fd = create(rt, max_entries=2)
    update(rt, fd, k(1), b"aaaa")
    update(rt, fd, k(2), b"bbbb")
    before = contents(rt, fd)
    for args in ((k(1), b"xxxx", BPF_NOEXIST), (k(3), b"xxxx", BPF_EXIST),
                 (k(3), b"xxxx", BPF_ANY), (k(1), b"xxxx", 3), (k(1), b"xxxx", BPF_F_LOCK),
                 (k(1), b"xx", BPF_ANY), (b"\x01", b"xxxx", BPF_ANY), (k(1), None, BPF_ANY)):
        with pytest.raises(BpfError):
            update(rt, fd, *args)
        assert contents(rt, fd) == before, args


def test_failed_delete_and_lookup_and_delete_leave_map_unchanged(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    before = contents(rt, fd)
    for fn, args in ((delete, (k(2),)), (delete, (b"\x01",)), (lookup_and_delete, (k(2),)),
                     (lookup_and_delete, (k(1), BPF_F_LOCK)), (lookup_and_delete, (None,))):
        with pytest.raises(BpfError):
            fn(rt, fd, *args)
        assert contents(rt, fd) == before


# -- MAP_CREATE validation ------------------------------------------------------------------------
@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.PERCPU_HASH])
@pytest.mark.parametrize(("field", "value"), [("key_size", 0), ("value_size", 0),
                                              ("max_entries", 0)])
def test_create_zero_sizes_are_einval(rt: Runtime, map_type: int, field: str, value: int) -> None:
    raises(errno.EINVAL, create, rt, map_type=map_type, **{field: value})


def test_create_key_plus_value_too_big_is_e2big(rt: Runtime) -> None:
    """key_size + value_size must stay below KMALLOC_MAX_SIZE - sizeof(htab_elem)."""
    raises(errno.E2BIG, create, rt, key_size=(1 << 22) - 48 - 4, value_size=4, max_entries=1)
    create(rt, key_size=(1 << 22) - 48 - 5, value_size=4, max_entries=1,
           map_flags=MapFlags.NO_PREALLOC)


def test_create_percpu_value_over_32k_is_e2big(rt: Runtime) -> None:
    raises(errno.E2BIG, create, rt, map_type=MapType.PERCPU_HASH, value_size=(32 << 10) + 1)
    create(rt, map_type=MapType.PERCPU_HASH, value_size=32 << 10, max_entries=1)


@pytest.mark.parametrize("max_entries", [(1 << 28) + 1, (1 << 31) + 1, 0xFFFF_FFFF])
def test_create_too_many_buckets_is_e2big(rt: Runtime, max_entries: int) -> None:
    raises(errno.E2BIG, create, rt, max_entries=max_entries)


@pytest.mark.parametrize("flags", [MapFlags.MMAPABLE, MapFlags.INNER_MAP, 1 << 19, 1 << 31,
                                   MapFlags.NO_COMMON_LRU,
                                   MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG])
def test_create_flags_a_hash_map_does_not_take_are_einval(rt: Runtime, flags: int) -> None:
    raises(errno.EINVAL, create, rt, map_flags=flags)


def test_create_numa_node_on_a_percpu_hash_is_einval_unless_minus_one(rt: Runtime) -> None:
    raises(errno.EINVAL, create, rt, map_type=MapType.PERCPU_HASH,
           map_flags=MapFlags.NUMA_NODE, numa_node=0)
    create(rt, map_type=MapType.PERCPU_HASH, map_flags=MapFlags.NUMA_NODE,
           numa_node=0xFFFF_FFFF)


def test_create_zero_seed_needs_cap_sys_admin() -> None:
    rt = Runtime(privileged=False)
    raises(errno.EPERM, create, rt, map_flags=MapFlags.ZERO_SEED)
    create(rt, map_flags=0)


def test_create_rdonly_flag_is_the_fds_not_the_maps(rt: Runtime) -> None:
    fd = create(rt, map_flags=MapFlags.RDONLY | MapFlags.ZERO_SEED)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=rt)
    assert info.map_flags == MapFlags.ZERO_SEED
    raises(errno.EPERM, update, rt, fd, k(1), b"aaaa")


def test_hash_maps_have_no_enotsupp_surprises(rt: Runtime) -> None:
    """Every element command is supported by hash maps (no ENOTSUPP)."""
    fd = create(rt)
    update(rt, fd, k(1), b"aaaa")
    for fn in (lookup, next_key, lookup_and_delete):
        try:
            fn(rt, fd, k(1))
        except BpfError as e:  # pragma: no cover - would be a regression
            assert e.errno != ENOTSUPP
