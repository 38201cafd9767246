"""BLOOM_FILTER maps: push/peek, sizing, hashing and every errno, by behaviour.

Known answers (bit indices, false positives) were measured on the Linux 6.18
kernel with BPF_F_ZERO_SEED; tests/kernel compares them live.
"""

from __future__ import annotations

import errno

import pytest

from pyebpf import BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, MapFlags, MapType, Runtime
from pyebpf.errors import ENOTSUPP
from pyebpf.maps.bloom_filter import bloom_bitset_size

from ._mapops import (
    create,
    create_errno,
    delete,
    fails,
    k,
    lookup,
    lookup_and_delete,
    map_obj,
    next_key,
    update,
)

U32_MAX = 0xFFFF_FFFF


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def new(rt: Runtime, value_size: int = 4, max_entries: int = 100, map_extra: int = 0,
        map_flags: int = MapFlags.ZERO_SEED) -> int:
    return create(rt, MapType.BLOOM_FILTER, value_size=value_size, max_entries=max_entries,
                  map_extra=map_extra, map_flags=map_flags)


def push(rt: Runtime, fd: int, value: bytes, flags: int = BPF_ANY) -> None:
    update(rt, fd, None, value, flags)


def present(rt: Runtime, fd: int, value: bytes) -> bool:
    try:
        lookup(rt, fd, None, value=value)
    except OSError as e:
        assert e.errno == errno.ENOENT
        return False
    return True


# -- push and peek ------------------------------------------------------------------------
def test_bloom_finds_every_pushed_value(rt: Runtime) -> None:
    fd = new(rt)
    values = [k(i * 7919) for i in range(50)]
    for v in values:
        push(rt, fd, v)
    assert all(present(rt, fd, v) for v in values)


def test_bloom_peek_of_an_absent_value_is_enoent(rt: Runtime) -> None:
    fd = new(rt)
    fails(errno.ENOENT, lookup, rt, fd, None, value=k(1))
    push(rt, fd, k(1))
    fails(errno.ENOENT, lookup, rt, fd, None, value=k(2))


def test_bloom_false_positives_are_the_kernels(rt: Runtime) -> None:
    """One hash over 64 bits: after pushing 01020304, the kernel also says yes for 97
    and 136 and for no value below 97."""
    fd = new(rt, max_entries=1, map_extra=1)
    push(rt, fd, bytes([1, 2, 3, 4]))
    positives = [i for i in range(2, 137) if present(rt, fd, k(i))]
    assert positives == [97, 136]


def test_bloom_bit_indices_are_the_kernels(rt: Runtime) -> None:
    """jhash2 for 4-byte values, jhash for 3-byte ones, seeds 0..n-1 (kernel-measured)."""
    m4 = map_obj(rt, new(rt, value_size=4, max_entries=1, map_extra=1))
    assert m4.bit_indices(bytes([1, 2, 3, 4])) == [29]
    m3 = map_obj(rt, new(rt, value_size=3, max_entries=1))
    assert m3.bit_indices(bytes([1, 2, 3])) == [43, 53, 48, 18, 1]
    m8 = map_obj(rt, new(rt, value_size=8, max_entries=10, map_extra=3))
    assert m8.bit_indices(bytes(range(1, 9))) == [25, 37, 28]


def test_bloom_default_is_five_hash_functions(rt: Runtime) -> None:
    assert map_obj(rt, new(rt)).nr_hash_funcs == 5
    assert map_obj(rt, new(rt, map_extra=3)).nr_hash_funcs == 3
    assert map_obj(rt, new(rt, map_extra=15)).nr_hash_funcs == 15


@pytest.mark.parametrize("me,hashes,nbytes,mask", [
    (1, 5, 8, 63),                 # 1*5/5*7 = 7 bits -> at least BITS_PER_LONG
    (10, 5, 16, 127),              # 70 bits > 64: rounds up to 128
    (184, 1, 32, 255),             # 184/5*7 = 252 -> 256 (not 184*7/5 = 257 -> 512)
    (1000, 3, 1024, 8191),         # 600*7 = 4200 -> 8192
    (306783378, 5, 1 << 28, (1 << 31) - 1),  # 2147483646 bits: 2**31, not yet the cap
    (306783380, 5, 1 << 29, U32_MAX),        # 2147483650 bits > 2**31: the cap
    (1 << 30, 5, 1 << 29, U32_MAX),        # > 2**31 bits: 2**32 bits, mask U32_MAX
    (U32_MAX, 2, 1 << 29, U32_MAX),        # max_entries * nr_hashes overflows a u32
])
def test_bloom_bitset_size_is_the_kernels(me: int, hashes: int, nbytes: int, mask: int) -> None:
    assert bloom_bitset_size(me, hashes) == (nbytes, mask)


def test_bloom_zero_seed_is_the_same_everywhere() -> None:
    a, b = Runtime(seed=1), Runtime(seed=2)
    ma, mb = map_obj(a, new(a)), map_obj(b, new(b))
    assert ma.bit_indices(k(42)) == mb.bit_indices(k(42))


def test_bloom_random_seed_comes_from_the_runtime_seed() -> None:
    a, b, c = Runtime(seed=1), Runtime(seed=1), Runtime(seed=2)
    seeds = [map_obj(r, new(r, map_flags=0)).hash_seed for r in (a, b, c)]
    assert seeds[0] == seeds[1] != seeds[2]


# -- what a bloom filter can't do --------------------------------------------------------------
@pytest.mark.parametrize("flags", [BPF_NOEXIST, BPF_EXIST, 3, BPF_F_LOCK, 1 << 32])
def test_bloom_push_with_flags_is_einval(rt: Runtime, flags: int) -> None:
    fd = new(rt)
    fails(errno.EINVAL, push, rt, fd, k(1), flags)
    assert not present(rt, fd, k(1))


def test_bloom_delete_and_get_next_key_are_eopnotsupp(rt: Runtime) -> None:
    fd = new(rt)
    push(rt, fd, k(1))
    fails(errno.EOPNOTSUPP, delete, rt, fd, None)
    fails(errno.EOPNOTSUPP, next_key, rt, fd, None)
    assert present(rt, fd, k(1))


def test_bloom_pop_is_enotsupp(rt: Runtime) -> None:
    fd = new(rt)
    push(rt, fd, k(1))
    fails(ENOTSUPP, lookup_and_delete, rt, fd, None)


def test_bloom_keys_are_einval(rt: Runtime) -> None:
    fd = new(rt)
    fails(errno.EINVAL, update, rt, fd, k(0), k(1))
    fails(errno.EINVAL, lookup, rt, fd, k(0), value=k(1))
    fails(errno.EINVAL, delete, rt, fd, k(0))


def test_bloom_lookup_with_f_lock_is_einval(rt: Runtime) -> None:
    fd = new(rt)
    push(rt, fd, k(1))
    fails(errno.EINVAL, lookup, rt, fd, None, BPF_F_LOCK, value=k(1))


# -- creation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,err", [
    ({"key_size": 4}, errno.EINVAL),
    ({"value_size": 0}, errno.EINVAL),
    ({"max_entries": 0}, errno.EINVAL),
    ({"map_extra": 16}, errno.EINVAL),
    ({"map_extra": 1 << 40}, errno.EINVAL),
    ({"map_flags": MapFlags.NO_PREALLOC}, errno.EINVAL),
    ({"map_flags": MapFlags.NO_COMMON_LRU}, errno.EINVAL),
    ({"map_flags": MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG}, errno.EINVAL),
    ({"value_size": (1 << 22) + 1}, errno.E2BIG),
    ({"value_size": (1 << 22) + 1, "key_size": 4}, errno.E2BIG),  # alloc_check runs first
])
def test_bloom_create_validation(rt: Runtime, kw: dict[str, int], err: int) -> None:
    args = {"value_size": 4, "max_entries": 4, **kw}
    assert create_errno(rt, MapType.BLOOM_FILTER, **args) == err


def test_bloom_create_accepts_its_flags(rt: Runtime) -> None:
    new(rt, map_flags=MapFlags.ZERO_SEED | MapFlags.RDONLY_PROG | MapFlags.NUMA_NODE)


def test_bloom_bitset_counts_against_memory() -> None:
    rt = Runtime(nr_cpus=1, memory_limit=1 << 20)
    assert create_errno(rt, MapType.BLOOM_FILTER, value_size=4,
                        max_entries=1 << 24) == errno.ENOMEM


# -- the program side ------------------------------------------------------------------------------
def test_program_side_push_and_peek(rt: Runtime) -> None:
    fd = new(rt)
    m = map_obj(rt, fd)
    m.push_elem(k(5), BPF_ANY)
    assert m.peek_elem(k(5)) == k(5)
    with pytest.raises(OSError) as e:
        m.peek_elem(k(6))
    assert e.value.errno == errno.ENOENT
    with pytest.raises(OSError) as e:
        m.pop_elem()
    assert e.value.errno == errno.EOPNOTSUPP
    assert present(rt, fd, k(5))
