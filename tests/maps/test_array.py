"""ARRAY and PERCPU_ARRAY through bpf(): every errno rule, by behaviour.

Errnos pinned here were measured on the Linux 6.18 kernel (tests/kernel
compares them live).
"""

from __future__ import annotations

import errno
import hashlib
import struct

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
    MapFdAttr,
    MapFlags,
    MapType,
    Runtime,
    UserPtr,
    bpf,
)
from pyebpf.errors import ENOTSUPP

from .test_hash import (
    contents,
    delete,
    k,
    keys,
    lookup,
    lookup_and_delete,
    next_key,
    raises,
    update,
)


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def create(rt: Runtime, *, map_type: int = MapType.ARRAY, key_size: int = 4,
           value_size: int = 4, max_entries: int = 4, map_flags: int = 0,
           **kw: object) -> int:
    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=key_size,
                                             value_size=value_size, max_entries=max_entries,
                                             map_flags=map_flags, **kw), runtime=rt)


ARRAYS = [MapType.ARRAY, MapType.PERCPU_ARRAY]


# -- creation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("map_type", ARRAYS)
@pytest.mark.parametrize("key_size", [0, 1, 3, 8])
def test_array_key_size_must_be_4(rt: Runtime, map_type: int, key_size: int) -> None:
    raises(errno.EINVAL, create, rt, map_type=map_type, key_size=key_size)


@pytest.mark.parametrize("map_type", ARRAYS)
@pytest.mark.parametrize(("field", "value"), [("value_size", 0), ("max_entries", 0)])
def test_array_zero_sizes_are_einval(rt: Runtime, map_type: int, field: str, value: int) -> None:
    raises(errno.EINVAL, create, rt, map_type=map_type, **{field: value})


def test_array_value_size_over_int_max_is_e2big(rt: Runtime) -> None:
    raises(errno.E2BIG, create, rt, value_size=0x8000_0000)


def test_percpu_array_value_over_32k_is_e2big(rt: Runtime) -> None:
    raises(errno.E2BIG, create, rt, map_type=MapType.PERCPU_ARRAY, value_size=(32 << 10) + 1)
    create(rt, map_type=MapType.PERCPU_ARRAY, value_size=32 << 10, max_entries=1)


def test_array_mmapable_and_inner_map_are_for_plain_arrays(rt: Runtime) -> None:
    create(rt, map_flags=MapFlags.MMAPABLE)
    create(rt, map_flags=MapFlags.INNER_MAP)
    raises(errno.EINVAL, create, rt, map_type=MapType.PERCPU_ARRAY, map_flags=MapFlags.MMAPABLE)
    raises(errno.EINVAL, create, rt, map_type=MapType.PERCPU_ARRAY,
           map_flags=MapFlags.INNER_MAP)


@pytest.mark.parametrize("flags", [MapFlags.PRESERVE_ELEMS, MapFlags.NO_PREALLOC,
                                   MapFlags.ZERO_SEED, 1 << 19, 1 << 31,
                                   MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG])
def test_array_flags_it_does_not_take_are_einval(rt: Runtime, flags: int) -> None:
    """Unknown bits too: a mask built from an IntFlag once let them through."""
    raises(errno.EINVAL, create, rt, map_flags=flags)


def test_percpu_array_numa_node_is_einval_unless_minus_one(rt: Runtime) -> None:
    raises(errno.EINVAL, create, rt, map_type=MapType.PERCPU_ARRAY,
           map_flags=MapFlags.NUMA_NODE, numa_node=0)
    create(rt, map_type=MapType.PERCPU_ARRAY, map_flags=MapFlags.NUMA_NODE,
           numa_node=0xFFFF_FFFF)
    create(rt, map_flags=MapFlags.NUMA_NODE, numa_node=0)


# -- elements -------------------------------------------------------------------------------------
@pytest.mark.parametrize("map_type", ARRAYS)
def test_array_elements_exist_zeroed_from_the_start(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type, value_size=3, max_entries=3)
    size = 3 if map_type == MapType.ARRAY else 8 * 2
    assert contents(rt, fd) == [(k(i), bytes(size)) for i in range(3)]


@pytest.mark.parametrize("map_type", ARRAYS)
def test_array_update_noexist_is_eexist(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type, value_size=8)
    raises(errno.EEXIST, update, rt, fd, k(0), bytes(16), BPF_NOEXIST)


@pytest.mark.parametrize("flags", [BPF_ANY, BPF_EXIST])
def test_array_update_any_and_exist_overwrite(rt: Runtime, flags: int) -> None:
    fd = create(rt)
    update(rt, fd, k(2), b"abcd", flags)
    assert lookup(rt, fd, k(2)) == b"abcd"


@pytest.mark.parametrize("map_type", ARRAYS)
@pytest.mark.parametrize("index", [4, 5, 1 << 31, 0xFFFF_FFFF])
def test_array_index_out_of_range_update_is_e2big(rt: Runtime, map_type: int, index: int) -> None:
    fd = create(rt, map_type=map_type, value_size=8)
    raises(errno.E2BIG, update, rt, fd, k(index), bytes(16))


@pytest.mark.parametrize("map_type", ARRAYS)
def test_array_out_of_range_is_checked_before_noexist(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type, value_size=8)
    raises(errno.E2BIG, update, rt, fd, k(4), bytes(16), BPF_NOEXIST)


@pytest.mark.parametrize("map_type", ARRAYS)
def test_array_index_out_of_range_lookup_is_enoent(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type)
    raises(errno.ENOENT, lookup, rt, fd, k(4))


@pytest.mark.parametrize("map_type", ARRAYS)
@pytest.mark.parametrize("flags", [3, 8, BPF_F_LOCK, BPF_F_LOCK | BPF_EXIST, 1 << 32])
def test_array_invalid_update_flags_are_einval(rt: Runtime, map_type: int, flags: int) -> None:
    fd = create(rt, map_type=map_type, value_size=8)
    raises(errno.EINVAL, update, rt, fd, k(0), bytes(16), flags)


@pytest.mark.parametrize("map_type", ARRAYS)
def test_array_delete_is_einval(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type)
    raises(errno.EINVAL, delete, rt, fd, k(0))
    raises(errno.EINVAL, delete, rt, fd, k(99))


@pytest.mark.parametrize("map_type", ARRAYS)
def test_array_lookup_and_delete_is_enotsupp(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type)
    raises(ENOTSUPP, lookup_and_delete, rt, fd, k(0))


def test_array_lookup_and_delete_copies_the_key_first(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.EFAULT, lookup_and_delete, rt, fd, b"\x00")


# -- get_next_key ---------------------------------------------------------------------------------
@pytest.mark.parametrize("map_type", ARRAYS)
def test_array_get_next_key_walks_every_index(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type)
    assert keys(rt, fd) == [k(i) for i in range(4)]


@pytest.mark.parametrize("key", [None, k(4), k(0xFFFF_FFFF)])
def test_array_get_next_key_missing_or_null_key_returns_index_0(rt: Runtime,
                                                                key: bytes | None) -> None:
    fd = create(rt)
    assert next_key(rt, fd, key) == k(0)


def test_array_get_next_key_last_index_is_enoent(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.ENOENT, next_key, rt, fd, k(3))
    assert next_key(rt, fd, k(2)) == k(3)


# -- per-CPU --------------------------------------------------------------------------------------
def test_percpu_array_padding_bytes_are_kept(rt: Runtime) -> None:
    """bpf_percpu_array_update copies whole 8-byte-rounded slots (copy_map_value_long)."""
    fd = create(rt, map_type=MapType.PERCPU_ARRAY, value_size=3)
    value = bytes(range(1, 17))
    update(rt, fd, k(1), value)
    assert lookup(rt, fd, k(1)) == value


def test_percpu_array_update_needs_every_cpus_slot(rt: Runtime) -> None:
    fd = create(rt, map_type=MapType.PERCPU_ARRAY, value_size=3)
    raises(errno.EFAULT, update, rt, fd, k(1), bytes(15))


# -- failed calls change nothing ---------------------------------------------------------------
@pytest.mark.parametrize("map_type", ARRAYS)
def test_failed_update_leaves_array_unchanged(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type, value_size=8)
    update(rt, fd, k(1), b"A" * 16)
    before = contents(rt, fd)
    for args in ((k(1), b"B" * 16, BPF_NOEXIST), (k(9), b"B" * 16, BPF_ANY),
                 (k(1), b"B" * 16, 3), (k(1), b"B" * 7, BPF_ANY), (b"\x01", b"B" * 16, 0)):
        with pytest.raises(BpfError):
            update(rt, fd, *args)
        assert contents(rt, fd) == before, args
    with pytest.raises(BpfError):
        delete(rt, fd, k(1))
    assert contents(rt, fd) == before


# -- the map hash (OBJ_GET_INFO_BY_FD info.hash, 6.18) --------------------------------------------
def _info_with_hash(rt: Runtime, fd: int, hash_size: int = 32) -> tuple[int, bytes]:
    out = rt.user_memory.map(32, kind="user")
    info = rt.user_memory.map(bytearray(104), kind="user")
    struct.pack_into("<QI", info.buf, 88, out.base, hash_size)
    ret = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd, info_len=104,
                                                   info=UserPtr(info.base)), runtime=rt)
    return ret, bytes(out.buf)


def test_frozen_array_hash_is_sha256_of_its_values(rt: Runtime) -> None:
    fd = create(rt, value_size=5, max_entries=3)
    update(rt, fd, k(1), b"abcde")
    bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd), runtime=rt)
    ret, digest = _info_with_hash(rt, fd)
    assert ret == 0
    # Measured on 6.18: the elem_size * max_entries value area, padding included.
    assert digest.hex() == "7a7309948c34954eaea34764ca947fbf500bf4d473f6093315232e61876bc64d"
    assert digest == hashlib.sha256(bytes(8) + b"abcde" + bytes(11)).digest()


def test_array_hash_needs_a_frozen_map(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.EPERM, _info_with_hash, rt, fd)


def test_array_hash_size_must_be_32(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.EINVAL, _info_with_hash, rt, fd, 16)


@pytest.mark.parametrize("map_type", [MapType.PERCPU_ARRAY, MapType.HASH])
def test_only_plain_arrays_have_a_hash(rt: Runtime, map_type: int) -> None:
    fd = create(rt, map_type=map_type, key_size=4)
    bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd), runtime=rt)
    raises(errno.EINVAL, _info_with_hash, rt, fd)
