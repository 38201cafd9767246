"""The batch commands, rule by rule (kernel/bpf/syscall.c, hashtab.c)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, MapBatchAttr, MapCreateAttr, MapElemAttr, MapType, bpf
from pyebpf.attr import UserPtr, attr_to_bytes
from pyebpf.errors import ENOTSUPP
from pyebpf.maps.jhash import htab_map_hash
from pyebpf.runtime import Runtime
from pyebpf.syscall import BatchResult
from pyebpf.uapi import MapFlags

LOOKUP, LOOKUP_AND_DELETE = Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH
UPDATE, DELETE = Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def call(rt: Runtime, cmd: Cmd, attr: Any) -> Any:
    return bpf(cmd, attr, runtime=rt)


def create(rt: Runtime, map_type: MapType, key_size: int = 4, value_size: int = 8,
           max_entries: int = 8, map_flags: int = 0) -> int:
    return call(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=key_size,
                                                  value_size=value_size,
                                                  max_entries=max_entries, map_flags=map_flags))


def u32(i: int) -> bytes:
    return i.to_bytes(4, "little")


def u64(i: int) -> bytes:
    return i.to_bytes(8, "little")


def fill(rt: Runtime, fd: int, n: int) -> None:
    res = call(rt, UPDATE, MapBatchAttr(map_fd=fd, count=n,
                                        keys=b"".join(u32(i) for i in range(n)),
                                        values=b"".join(u64(i * 10) for i in range(n))))
    assert res.count == n


def batch_err(rt: Runtime, cmd: Cmd, attr: MapBatchAttr) -> BpfError:
    with pytest.raises(BpfError) as info:
        call(rt, cmd, attr)
    assert isinstance(info.value.partial, BatchResult)  # type: ignore[attr-defined]
    return info.value


def zero_seed_hash(rt: Runtime, n: int = 6, max_entries: int = 8) -> int:
    fd = create(rt, MapType.HASH, max_entries=max_entries, map_flags=MapFlags.ZERO_SEED)
    fill(rt, fd, n)
    return fd


def the_map(rt: Runtime, fd: int) -> Any:
    return rt.fds[fd].obj


def bucket_order(rt: Runtime, fd: int) -> list[bytes]:
    m = the_map(rt, fd)
    return [k for b in m.nonempty for k in m.buckets[b]]


# -- hash maps: bucket batches -----------------------------------------------------------------
def test_hash_lookup_batch_reads_whole_map_then_says_enoent_with_elements(rt: Runtime) -> None:
    fd = zero_seed_hash(rt)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=100))
    assert e.errno == errno.ENOENT
    p = e.partial  # type: ignore[attr-defined]
    assert p.count == 6
    keys = [p.keys[i:i + 4] for i in range(0, 24, 4)]
    assert keys == bucket_order(rt, fd)
    assert [int.from_bytes(p.values[i:i + 8], "little") for i in range(0, 48, 8)] == [
        int.from_bytes(k, "little") * 10 for k in keys]
    assert p.out_batch == u32(8)  # n_buckets: the end


def test_hash_lookup_batch_resumes_from_out_batch_bucket_index(rt: Runtime) -> None:
    fd = zero_seed_hash(rt)
    seen: list[bytes] = []
    in_batch = None
    while True:
        try:
            res = call(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=2, in_batch=in_batch))
        except BpfError as e:
            assert e.errno == errno.ENOENT
            res = e.partial  # type: ignore[attr-defined]
            seen += [res.keys[i:i + 4] for i in range(0, len(res.keys), 4)]
            break
        assert 1 <= res.count <= 2
        seen += [res.keys[i:i + 4] for i in range(0, len(res.keys), 4)]
        in_batch = res.out_batch
        assert len(in_batch) == 4
    assert seen == bucket_order(rt, fd)


def test_hash_lookup_batch_stops_before_a_bucket_that_does_not_fit(rt: Runtime) -> None:
    fd = create(rt, MapType.HASH, max_entries=4, map_flags=MapFlags.ZERO_SEED)
    # Two keys of one bucket (jhash with seed 0, as the kernel's), and one before it.
    by_bucket: dict[int, list[int]] = {}
    for k in range(64):
        by_bucket.setdefault(htab_map_hash(u32(k), 0) & 3, []).append(k)
    full = next(b for b in range(1, 4) if len(by_bucket[b]) >= 2)
    keys = [*by_bucket[full][:2], by_bucket[0][0]]
    call(rt, UPDATE, MapBatchAttr(map_fd=fd, count=3, keys=b"".join(u32(k) for k in keys),
                                  values=bytes(24)))
    m = the_map(rt, fd)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=1, in_batch=u32(full)))
    assert e.errno == errno.ENOSPC
    assert e.partial.count == 0 and e.partial.out_batch == u32(full)  # type: ignore[attr-defined]
    # With something copied already, the batch just ends early (success).
    before = [b for b in m.nonempty if b < full]
    if before and len(m.buckets[before[-1]]) == 1:
        res = call(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=2, in_batch=u32(before[-1])))
        assert res.count == 1 and res.out_batch == u32(full)


def test_hash_lookup_batch_in_batch_past_last_bucket_is_enoent_without_out_batch(
        rt: Runtime) -> None:
    fd = zero_seed_hash(rt)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=4, in_batch=u32(8)))
    assert e.errno == errno.ENOENT
    assert e.partial == BatchResult(0)  # type: ignore[attr-defined]


def test_hash_lookup_batch_skips_empty_buckets_to_the_end(rt: Runtime) -> None:
    fd = create(rt, MapType.HASH, max_entries=8, map_flags=MapFlags.ZERO_SEED)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=4, in_batch=u32(3)))
    assert e.errno == errno.ENOENT
    assert e.partial == BatchResult(0, out_batch=u32(8))  # type: ignore[attr-defined]


def test_hash_lookup_batch_rejects_nonzero_flags(rt: Runtime) -> None:
    fd = zero_seed_hash(rt)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=3, flags=1))
    assert e.errno == errno.EINVAL
    assert e.partial.count == 3  # type: ignore[attr-defined]  # not written back


@pytest.mark.parametrize("elem_flags", [1, 2, 3, 4, 8, 1 << 40])
def test_batch_elem_flags_other_than_an_unusable_lock_are_einval(rt: Runtime,
                                                               elem_flags: int) -> None:
    fd = zero_seed_hash(rt)
    for cmd in (LOOKUP, LOOKUP_AND_DELETE, UPDATE, DELETE):
        e = batch_err(rt, cmd, MapBatchAttr(map_fd=fd, count=2, keys=u32(0) + u32(1),
                                            values=bytes(16), elem_flags=elem_flags))
        assert e.errno == errno.EINVAL
        assert e.partial.count == 2  # type: ignore[attr-defined]
    assert len(the_map(rt, fd).elems) == 6


def test_batch_count_zero_does_nothing(rt: Runtime) -> None:
    fd = zero_seed_hash(rt)
    for cmd in (LOOKUP, LOOKUP_AND_DELETE, UPDATE, DELETE):
        assert call(rt, cmd, MapBatchAttr(map_fd=fd, count=0)) == BatchResult(0)
    assert len(the_map(rt, fd).elems) == 6


def test_hash_lookup_and_delete_batch_removes_what_it_returns(rt: Runtime) -> None:
    fd = zero_seed_hash(rt)
    res = call(rt, LOOKUP_AND_DELETE, MapBatchAttr(map_fd=fd, count=3))
    got = {res.keys[i:i + 4] for i in range(0, len(res.keys), 4)}
    assert got and got.isdisjoint(the_map(rt, fd).elems)
    assert len(the_map(rt, fd).elems) == 6 - res.count


def test_percpu_hash_batch_values_hold_every_cpu_rounded_to_8(rt: Runtime) -> None:
    fd = create(rt, MapType.PERCPU_HASH, value_size=4, max_entries=4,
                map_flags=MapFlags.ZERO_SEED)
    value = b"\1\2\3\4" + bytes(4) + b"\5\6\7\x08" + bytes(4)
    call(rt, UPDATE, MapBatchAttr(map_fd=fd, count=1, keys=u32(7), values=value))
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=1))
    assert e.partial.values == value  # type: ignore[attr-defined]


def test_update_batch_ignores_flags_but_hash_lookup_does_not(rt: Runtime) -> None:
    fd = create(rt, MapType.HASH, max_entries=4)
    res = call(rt, UPDATE, MapBatchAttr(map_fd=fd, count=1, keys=u32(1), values=u64(2),
                                        flags=1))
    assert res.count == 1
    assert call(rt, DELETE, MapBatchAttr(map_fd=fd, count=1, keys=u32(1), flags=7)).count == 1


def test_update_batch_stops_at_the_first_failure_with_the_count_done(rt: Runtime) -> None:
    fd = create(rt, MapType.HASH, max_entries=2)
    e = batch_err(rt, UPDATE, MapBatchAttr(map_fd=fd, count=3,
                                           keys=u32(1) + u32(2) + u32(3), values=bytes(24)))
    assert e.errno == errno.E2BIG
    assert e.partial == BatchResult(2)  # type: ignore[attr-defined]


def test_update_batch_short_buffers_fault_at_the_missing_element(rt: Runtime) -> None:
    fd = create(rt, MapType.HASH, max_entries=8)
    e = batch_err(rt, UPDATE, MapBatchAttr(map_fd=fd, count=3, keys=u32(1) + u32(2),
                                           values=bytes(24)))
    assert e.errno == errno.EFAULT and e.partial.count == 2  # type: ignore[attr-defined]
    e = batch_err(rt, UPDATE, MapBatchAttr(map_fd=fd, count=2, keys=u32(5) + u32(6),
                                           values=bytes(8)))
    assert e.errno == errno.EFAULT and e.partial.count == 1  # type: ignore[attr-defined]


def test_delete_batch_stops_at_a_missing_key(rt: Runtime) -> None:
    fd = zero_seed_hash(rt)
    e = batch_err(rt, DELETE, MapBatchAttr(map_fd=fd, count=3, keys=u32(0) + u32(42) + u32(1)))
    assert e.errno == errno.ENOENT
    assert e.partial.count == 1  # type: ignore[attr-defined]
    assert u32(1) in the_map(rt, fd).elems and u32(0) not in the_map(rt, fd).elems


# -- arrays: the generic walk --------------------------------------------------------------------
def test_array_lookup_batch_walks_get_next_key_and_returns_the_last_key(rt: Runtime) -> None:
    fd = create(rt, MapType.ARRAY, max_entries=4)
    fill(rt, fd, 4)
    res = call(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=2))
    assert res == BatchResult(2, u32(0) + u32(1), u64(0) + u64(10), u32(1))
    res = call(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=2, in_batch=res.out_batch))
    assert res.keys == u32(2) + u32(3) and res.out_batch == u32(3)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=2, in_batch=res.out_batch))
    assert e.errno == errno.ENOENT and e.partial == BatchResult(0)  # type: ignore[attr-defined]


def test_array_lookup_batch_past_the_end_is_enoent_with_the_elements(rt: Runtime) -> None:
    fd = create(rt, MapType.ARRAY, max_entries=4)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=5, in_batch=u32(1)))
    assert e.errno == errno.ENOENT
    assert e.partial.count == 2 and e.partial.out_batch == u32(3)  # type: ignore[attr-defined]


def test_array_lookup_batch_in_batch_out_of_range_starts_over(rt: Runtime) -> None:
    fd = create(rt, MapType.ARRAY, max_entries=4)
    res = call(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=2, in_batch=u32(100)))
    assert res.keys == u32(0) + u32(1)


def test_array_lookup_batch_ignores_flags(rt: Runtime) -> None:
    fd = create(rt, MapType.ARRAY, max_entries=4)
    assert call(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=1, flags=1)).count == 1


def test_percpu_array_batch_round_trips_every_cpu(rt: Runtime) -> None:
    fd = create(rt, MapType.PERCPU_ARRAY, value_size=3, max_entries=2)
    values = b"abc\0\0\0\0\0def\0\0\0\0\0" + b"ghi\0\0\0\0\0jkl\0\0\0\0\0"
    call(rt, UPDATE, MapBatchAttr(map_fd=fd, count=2, keys=u32(0) + u32(1), values=values))
    res = call(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=2))
    assert res.values == values


@pytest.mark.parametrize("cmd", [LOOKUP_AND_DELETE, DELETE])
def test_array_has_no_delete_batches(rt: Runtime, cmd: Cmd) -> None:
    fd = create(rt, MapType.ARRAY, max_entries=4)
    e = batch_err(rt, cmd, MapBatchAttr(map_fd=fd, count=1, keys=u32(0), elem_flags=1))
    assert e.errno == ENOTSUPP  # before the elem_flags check


def test_array_update_batch_out_of_range_index_is_e2big_with_count(rt: Runtime) -> None:
    fd = create(rt, MapType.ARRAY, max_entries=4)
    e = batch_err(rt, UPDATE, MapBatchAttr(map_fd=fd, count=3, keys=u32(3) + u32(4) + u32(0),
                                           values=bytes(24)))
    assert e.errno == errno.E2BIG and e.partial.count == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("map_type", [MapType.RINGBUF, MapType.QUEUE])
def test_maps_without_batch_ops_say_enotsupp(rt: Runtime, map_type: MapType) -> None:
    if map_type is MapType.RINGBUF:
        fd = create(rt, map_type, key_size=0, value_size=0, max_entries=4096)
    else:
        fd = create(rt, map_type, key_size=0, value_size=4, max_entries=4)
    for cmd in (LOOKUP, LOOKUP_AND_DELETE, UPDATE, DELETE):
        assert batch_err(rt, cmd, MapBatchAttr(map_fd=fd, count=1)).errno == ENOTSUPP


# -- permissions ------------------------------------------------------------------------------
def test_batch_permissions_follow_the_fd_mode(rt: Runtime) -> None:
    ro = create(rt, MapType.HASH, map_flags=MapFlags.RDONLY)
    wo = create(rt, MapType.HASH, map_flags=MapFlags.WRONLY)
    assert batch_err(rt, LOOKUP, MapBatchAttr(map_fd=ro, count=1)).errno == errno.ENOENT
    for cmd in (LOOKUP_AND_DELETE, UPDATE, DELETE):
        assert batch_err(rt, cmd, MapBatchAttr(map_fd=ro, count=1)).errno == errno.EPERM
    for cmd in (LOOKUP, LOOKUP_AND_DELETE):
        assert batch_err(rt, cmd, MapBatchAttr(map_fd=wo, count=1)).errno == errno.EPERM
    assert call(rt, UPDATE, MapBatchAttr(map_fd=wo, count=1, keys=u32(1),
                                         values=u64(1))).count == 1


def test_frozen_map_refuses_write_batches_before_the_missing_op(rt: Runtime) -> None:
    fd = create(rt, MapType.ARRAY, max_entries=4)
    from pyebpf.attr import MapFdAttr

    call(rt, Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd))
    assert batch_err(rt, UPDATE, MapBatchAttr(map_fd=fd, count=1)).errno == errno.EPERM
    assert batch_err(rt, DELETE, MapBatchAttr(map_fd=fd, count=1)).errno == errno.EPERM
    assert call(rt, LOOKUP, MapBatchAttr(map_fd=fd, count=1)).count == 1


def test_batch_on_a_closed_fd_is_ebadf(rt: Runtime) -> None:
    with pytest.raises(BpfError) as info:
        call(rt, LOOKUP, MapBatchAttr(map_fd=99, count=1))
    assert info.value.errno == errno.EBADF


# -- raw attrs: user memory --------------------------------------------------------------------
def user_buf(rt: Runtime, data: bytes | int) -> UserPtr:
    region = rt.user_memory.map(data, kind="user")
    return UserPtr(region.base)


def test_raw_lookup_batch_writes_keys_values_and_out_batch_to_user_memory(rt: Runtime) -> None:
    fd = create(rt, MapType.ARRAY, max_entries=4)
    fill(rt, fd, 4)
    keys, values, out = user_buf(rt, 16), user_buf(rt, 32), user_buf(rt, 4)
    raw = attr_to_bytes(MapBatchAttr(map_fd=fd, count=3, keys=keys, values=values,
                                     out_batch=out))
    res = call(rt, LOOKUP, raw)
    assert res.count == 3
    assert rt.user_memory.read(keys.addr, 12) == u32(0) + u32(1) + u32(2)
    assert rt.user_memory.read(values.addr, 24) == u64(0) + u64(10) + u64(20)
    assert rt.user_memory.read(out.addr, 4) == u32(2)


def test_raw_lookup_batch_with_null_out_batch_faults_after_writing_count(rt: Runtime) -> None:
    arr = create(rt, MapType.ARRAY, max_entries=4)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=arr, count=1, keys=user_buf(rt, 4),
                                           values=user_buf(rt, 8)))
    assert e.errno == errno.EFAULT and e.partial.count == 1  # type: ignore[attr-defined]
    h = zero_seed_hash(rt)
    e = batch_err(rt, LOOKUP, MapBatchAttr(map_fd=h, count=64, keys=user_buf(rt, 256),
                                           values=user_buf(rt, 512)))
    # hashtab.c writes out_batch before count: the count stays 0.
    assert e.errno == errno.EFAULT and e.partial.count == 0  # type: ignore[attr-defined]


def test_raw_update_batch_reads_user_memory(rt: Runtime) -> None:
    fd = create(rt, MapType.HASH, max_entries=4)
    keys = user_buf(rt, u32(3) + u32(4))
    values = user_buf(rt, u64(30) + u64(40))
    res = call(rt, UPDATE, attr_to_bytes(MapBatchAttr(map_fd=fd, count=2, keys=keys,
                                                      values=values)))
    assert res.count == 2
    got = call(rt, Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=u32(4)))
    assert got == u64(40)
