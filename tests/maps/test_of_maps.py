"""ARRAY_OF_MAPS and HASH_OF_MAPS (map_in_map.c, arraymap.c's fd arrays, hashtab.c)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, MapBatchAttr, MapCreateAttr, MapElemAttr, MapType, bpf
from pyebpf.attr import GetIdAttr
from pyebpf.errors import ENOTSUPP
from pyebpf.maps import map_class
from pyebpf.maps.of_maps import ArrayOfMaps, HashOfMaps
from pyebpf.runtime import ObjKind, Runtime
from pyebpf.uapi import BPF_EXIST, BPF_NOEXIST, MapFlags

AOM, HOM = MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def call(rt: Runtime, cmd: Cmd, attr: Any) -> Any:
    return bpf(cmd, attr, runtime=rt)


def create(rt: Runtime, map_type: MapType, key_size: int = 4, value_size: int = 8,
           max_entries: int = 4, map_flags: int = 0, inner_map_fd: int = 0) -> int:
    return call(rt, Cmd.MAP_CREATE, MapCreateAttr(
        map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
        map_flags=map_flags, inner_map_fd=inner_map_fd))


def err(rt: Runtime, cmd: Cmd, attr: Any) -> int:
    with pytest.raises(BpfError) as info:
        call(rt, cmd, attr)
    return int(info.value.errno)


def u32(i: int) -> bytes:
    return i.to_bytes(4, "little")


def put(rt: Runtime, outer: int, key: int, inner_fd: int, flags: int = 0) -> None:
    call(rt, Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=outer, key=u32(key), value=u32(inner_fd),
                                              flags=flags))


def put_err(rt: Runtime, outer: int, key: int, inner_fd: int, flags: int = 0) -> int:
    return err(rt, Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=outer, key=u32(key),
                                                    value=u32(inner_fd), flags=flags))


def get(rt: Runtime, outer: int, key: int) -> int:
    return int.from_bytes(call(rt, Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=outer,
                                                                     key=u32(key))), "little")


def map_id(rt: Runtime, fd: int) -> int:
    return rt.fds[fd].obj.id


def alive(rt: Runtime, mid: int) -> bool:
    return mid in rt.objects(ObjKind.MAP)


# -- creation: the template ----------------------------------------------------------------
@pytest.mark.parametrize("outer", [AOM, HOM])
def test_create_needs_an_open_inner_map_fd(rt: Runtime, outer: MapType) -> None:
    assert err(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=outer, key_size=4, value_size=4,
                                                 max_entries=4, inner_map_fd=77)) == errno.EBADF


@pytest.mark.parametrize("outer", [AOM, HOM])
def test_create_refuses_a_map_of_maps_as_template(rt: Runtime, outer: MapType) -> None:
    arr = create(rt, MapType.ARRAY)
    nested = create(rt, AOM, value_size=4, inner_map_fd=arr)
    assert err(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=outer, key_size=4, value_size=4,
                                                 max_entries=4, inner_map_fd=nested)
               ) == errno.EINVAL


@pytest.mark.skipif(map_class(MapType.PROG_ARRAY) is None, reason="no PROG_ARRAY yet")
def test_create_refuses_a_prog_array_template_with_enotsupp(rt: Runtime) -> None:
    pa = create(rt, MapType.PROG_ARRAY, value_size=4)
    assert err(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=AOM, key_size=4, value_size=4,
                                                 max_entries=4, inner_map_fd=pa)) == ENOTSUPP


@pytest.mark.parametrize("outer", [AOM, HOM])
def test_outer_value_size_must_be_4(rt: Runtime, outer: MapType) -> None:
    arr = create(rt, MapType.ARRAY)
    assert err(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=outer, key_size=4, value_size=8,
                                                 max_entries=4, inner_map_fd=arr)
               ) == errno.EINVAL
    # ...checked before the template fd.
    assert err(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=outer, key_size=4, value_size=8,
                                                 max_entries=4, inner_map_fd=77)
               ) == errno.EINVAL


def test_array_of_maps_refuses_program_access_flags_but_hash_of_maps_takes_them(
        rt: Runtime) -> None:
    arr = create(rt, MapType.ARRAY)
    for flag in (MapFlags.RDONLY_PROG, MapFlags.WRONLY_PROG, MapFlags.INNER_MAP,
                 MapFlags.MMAPABLE):
        assert err(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=AOM, key_size=4, value_size=4,
                                                     max_entries=4, map_flags=flag,
                                                     inner_map_fd=arr)) == errno.EINVAL
    create(rt, HOM, value_size=4, map_flags=MapFlags.RDONLY_PROG, inner_map_fd=arr)


def test_hash_of_maps_takes_other_key_sizes_array_of_maps_does_not(rt: Runtime) -> None:
    arr = create(rt, MapType.ARRAY)
    create(rt, HOM, key_size=8, value_size=4, inner_map_fd=arr)
    assert err(rt, Cmd.MAP_CREATE, MapCreateAttr(map_type=AOM, key_size=8, value_size=4,
                                                 max_entries=4, inner_map_fd=arr)
               ) == errno.EINVAL


def test_template_fd_may_be_closed_after_creation(rt: Runtime) -> None:
    arr = create(rt, MapType.ARRAY)
    outer = create(rt, AOM, value_size=4, inner_map_fd=arr)
    rt.close(arr)
    inner = create(rt, MapType.ARRAY)
    put(rt, outer, 0, inner)
    assert get(rt, outer, 0) == map_id(rt, inner)


# -- update: the template match --------------------------------------------------------------
def test_array_template_needs_the_same_max_entries_unless_inner_map_flag(rt: Runtime) -> None:
    outer = create(rt, AOM, value_size=4, inner_map_fd=create(rt, MapType.ARRAY))
    assert put_err(rt, outer, 0, create(rt, MapType.ARRAY, max_entries=8)) == errno.EINVAL
    dyn = create(rt, AOM, value_size=4, inner_map_fd=create(
        rt, MapType.ARRAY, map_flags=MapFlags.INNER_MAP))
    put(rt, dyn, 0, create(rt, MapType.ARRAY, max_entries=8, map_flags=MapFlags.INNER_MAP))
    # ...but the flags themselves must match.
    assert put_err(rt, dyn, 1, create(rt, MapType.ARRAY, max_entries=8)) == errno.EINVAL


def test_hash_template_ignores_max_entries_but_not_flags(rt: Runtime) -> None:
    outer = create(rt, HOM, value_size=4, inner_map_fd=create(rt, MapType.HASH))
    put(rt, outer, 0, create(rt, MapType.HASH, max_entries=64))
    assert put_err(rt, outer, 1, create(rt, MapType.HASH,
                                        map_flags=MapFlags.NO_PREALLOC)) == errno.EINVAL


def test_template_match_ignores_the_fd_only_rdonly_wronly_flags(rt: Runtime) -> None:
    outer = create(rt, AOM, value_size=4, inner_map_fd=create(rt, MapType.ARRAY))
    put(rt, outer, 0, create(rt, MapType.ARRAY, map_flags=MapFlags.RDONLY))


@pytest.mark.parametrize("field", ["map_type", "key_size", "value_size"])
def test_template_mismatch_is_einval(rt: Runtime, field: str) -> None:
    outer = create(rt, HOM, value_size=4, inner_map_fd=create(rt, MapType.HASH))
    other = {"map_type": dict(map_type=MapType.PERCPU_HASH), "key_size": dict(key_size=8),
             "value_size": dict(value_size=16)}[field]
    args: dict[str, Any] = {"map_type": MapType.HASH, **other}
    assert put_err(rt, outer, 0, create(rt, **args)) == errno.EINVAL


def test_update_with_a_closed_fd_is_ebadf(rt: Runtime) -> None:
    outer = create(rt, AOM, value_size=4, inner_map_fd=create(rt, MapType.ARRAY))
    assert put_err(rt, outer, 0, 99) == errno.EBADF


def test_array_of_maps_update_checks_flags_then_index_then_fd(rt: Runtime) -> None:
    outer = create(rt, AOM, value_size=4, inner_map_fd=create(rt, MapType.ARRAY))
    for flags in (BPF_NOEXIST, BPF_EXIST, 3):
        assert put_err(rt, outer, 4, 99, flags) == errno.EINVAL
    assert put_err(rt, outer, 4, 99) == errno.E2BIG


def test_hash_of_maps_update_checks_fd_then_hash_rules(rt: Runtime) -> None:
    template = create(rt, MapType.HASH)
    outer = create(rt, HOM, value_size=4, max_entries=2, inner_map_fd=template)
    put(rt, outer, 1, template)
    assert put_err(rt, outer, 1, 99, BPF_NOEXIST) == errno.EBADF
    assert put_err(rt, outer, 1, template, BPF_NOEXIST) == errno.EEXIST
    assert put_err(rt, outer, 2, template, BPF_EXIST) == errno.ENOENT
    assert put_err(rt, outer, 2, template, 3) == errno.EINVAL
    put(rt, outer, 2, template)
    assert put_err(rt, outer, 3, template) == errno.E2BIG


# -- lookup, delete, iteration ---------------------------------------------------------------
def test_lookup_gives_the_inner_map_id_and_enoent_for_empty(rt: Runtime) -> None:
    inner = create(rt, MapType.ARRAY)
    outer = create(rt, AOM, value_size=4, inner_map_fd=inner)
    put(rt, outer, 2, inner)
    assert get(rt, outer, 2) == map_id(rt, inner)
    for key in (0, 4, 1000):
        assert err(rt, Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=outer, key=u32(key))
                   ) == errno.ENOENT


def test_array_of_maps_delete_empties_a_slot(rt: Runtime) -> None:
    inner = create(rt, MapType.ARRAY)
    outer = create(rt, AOM, value_size=4, inner_map_fd=inner)
    put(rt, outer, 1, inner)
    call(rt, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=outer, key=u32(1)))
    assert err(rt, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=outer, key=u32(1))) == errno.ENOENT
    assert err(rt, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=outer, key=u32(4))) == errno.E2BIG


def test_get_next_key_walks_every_array_index_and_the_hash_keys(rt: Runtime) -> None:
    inner = create(rt, MapType.HASH)
    aom = create(rt, AOM, value_size=4, max_entries=3, inner_map_fd=inner)
    assert [k for k in rt.fds[aom].obj.iter_keys()] == [u32(0), u32(1), u32(2)]
    hom = create(rt, HOM, value_size=4, inner_map_fd=inner)
    put(rt, hom, 7, inner)
    put(rt, hom, 9, inner)
    assert set(rt.fds[hom].obj.iter_keys()) == {u32(7), u32(9)}


def test_maps_of_maps_have_no_lookup_and_delete(rt: Runtime) -> None:
    inner = create(rt, MapType.HASH)
    hom = create(rt, HOM, value_size=4, inner_map_fd=inner)
    put(rt, hom, 1, inner)
    assert err(rt, Cmd.MAP_LOOKUP_AND_DELETE_ELEM, MapElemAttr(map_fd=hom, key=u32(1))
               ) == ENOTSUPP


# -- references ----------------------------------------------------------------------------------
@pytest.mark.parametrize("outer_type", [AOM, HOM])
def test_a_stored_inner_map_outlives_its_fd_until_deleted(rt: Runtime,
                                                          outer_type: MapType) -> None:
    inner = create(rt, MapType.ARRAY)
    outer = create(rt, outer_type, value_size=4, inner_map_fd=inner)
    mid = map_id(rt, inner)
    put(rt, outer, 0, inner)
    rt.close(inner)
    assert alive(rt, mid)
    assert get(rt, outer, 0) == mid
    fd = call(rt, Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=mid))
    rt.close(fd)
    call(rt, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=outer, key=u32(0)))
    assert not alive(rt, mid)
    assert err(rt, Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=mid)) == errno.ENOENT


@pytest.mark.parametrize("outer_type", [AOM, HOM])
def test_replacing_an_inner_map_releases_the_old_one(rt: Runtime, outer_type: MapType) -> None:
    template = create(rt, MapType.ARRAY)
    outer = create(rt, outer_type, value_size=4, inner_map_fd=template)
    a, b = create(rt, MapType.ARRAY), create(rt, MapType.ARRAY)
    ida, idb = map_id(rt, a), map_id(rt, b)
    put(rt, outer, 0, a)
    rt.close(a)
    put(rt, outer, 0, b)
    assert not alive(rt, ida) and alive(rt, idb)
    # Re-storing the same map keeps it.
    put(rt, outer, 0, b)
    rt.close(b)
    assert alive(rt, idb)


@pytest.mark.parametrize("outer_type", [AOM, HOM])
def test_freeing_the_outer_map_releases_its_inner_maps(rt: Runtime, outer_type: MapType) -> None:
    inner = create(rt, MapType.ARRAY)
    outer = create(rt, outer_type, value_size=4, inner_map_fd=inner)
    mid = map_id(rt, inner)
    put(rt, outer, 0, inner)
    put(rt, outer, 1, inner)
    rt.close(inner)
    rt.close(outer)
    assert not alive(rt, mid)


def test_a_failed_update_takes_no_reference(rt: Runtime) -> None:
    template = create(rt, MapType.HASH)
    outer = create(rt, HOM, value_size=4, max_entries=1, inner_map_fd=template)
    put(rt, outer, 0, template)
    inner = create(rt, MapType.HASH)
    mid = map_id(rt, inner)
    assert put_err(rt, outer, 1, inner) == errno.E2BIG
    rt.close(inner)
    assert not alive(rt, mid)


# -- program side ----------------------------------------------------------------------------------
@pytest.mark.parametrize("outer_type", [AOM, HOM])
def test_program_lookup_gives_the_inner_map_pointer(rt: Runtime, outer_type: MapType) -> None:
    inner = create(rt, MapType.ARRAY)
    outer = create(rt, outer_type, value_size=4, inner_map_fd=inner)
    put(rt, outer, 3, inner)
    m = rt.fds[outer].obj
    assert isinstance(m, (ArrayOfMaps, HashOfMaps))
    inner_obj = rt.fds[inner].obj
    assert m.lookup_inner(u32(3)) is inner_obj
    addr = m.lookup_elem(u32(3))
    assert addr == inner_obj.addr and rt.maps_by_addr[addr] is inner_obj
    assert m.lookup_elem(u32(2)) is None


# -- batches ------------------------------------------------------------------------------------
def test_array_of_maps_lookup_batch_skips_empty_slots(rt: Runtime) -> None:
    inner = create(rt, MapType.ARRAY)
    outer = create(rt, AOM, value_size=4, max_entries=4, inner_map_fd=inner)
    put(rt, outer, 1, inner)
    put(rt, outer, 3, inner)
    res = call(rt, Cmd.MAP_LOOKUP_BATCH, MapBatchAttr(map_fd=outer, count=2))
    assert res.keys == u32(1) + u32(3)
    assert res.values == u32(map_id(rt, inner)) * 2
    assert res.out_batch == u32(3)


def test_map_of_maps_update_batch_takes_fds(rt: Runtime) -> None:
    inner = create(rt, MapType.HASH)
    outer = create(rt, HOM, value_size=4, max_entries=4, inner_map_fd=inner)
    with pytest.raises(BpfError) as info:
        call(rt, Cmd.MAP_UPDATE_BATCH, MapBatchAttr(
            map_fd=outer, count=3, keys=u32(1) + u32(2) + u32(3),
            values=u32(inner) * 2 + u32(99)))
    assert info.value.errno == errno.EBADF
    assert info.value.partial.count == 2  # type: ignore[attr-defined]
    assert get(rt, outer, 2) == map_id(rt, inner)


def test_hash_of_maps_lookup_and_delete_batch_releases_the_inner_maps(rt: Runtime) -> None:
    inner = create(rt, MapType.HASH)
    outer = create(rt, HOM, value_size=4, max_entries=4, inner_map_fd=inner)
    mid = map_id(rt, inner)
    put(rt, outer, 1, inner)
    put(rt, outer, 2, inner)
    rt.close(inner)
    with pytest.raises(BpfError) as info:
        call(rt, Cmd.MAP_LOOKUP_AND_DELETE_BATCH, MapBatchAttr(map_fd=outer, count=8))
    assert info.value.errno == errno.ENOENT
    assert info.value.partial.values == u32(mid) * 2  # type: ignore[attr-defined]
    assert not alive(rt, mid)
