"""Maps own the objects their values' referenced ``__kptr`` fields hold (the
kernel's bpf_obj_free_fields): an element deleted, overwritten or freed with
its map releases them; user space reads the fields as NULL and can't set them.
A program puts objects there with bpf_kptr_xchg (tests/kfuncs/test_kptr_xchg.py);
here the field is written directly, as that helper does."""

from __future__ import annotations

import pytest

from pyebpf import Cmd, MapCreateAttr, MapElemAttr, MapType, Runtime, bpf
from pyebpf.attr import BtfLoadAttr
from pyebpf.btf import Btf, BtfKind
from pyebpf.btf_build import BtfBuilder
from pyebpf.kfuncs.obj import obj_new, objects
from pyebpf.maps.local_storage import LocalStorageMap
from pyebpf.runtime import ObjKind

KEY = bytes(4)
VALUE_SIZE = 16


def _btf() -> tuple[bytes, int, int, int]:
    """int key; struct value { struct item __kptr *item; long n; }; struct item."""
    b = BtfBuilder()
    i32, long_ = b.int_("int", 4, signed=True), b.int_("long", 8, signed=True)
    item = b.struct("kptr_item", [("a", long_)])
    tag = b.raw_type("kptr", BtfKind.TYPE_TAG, 0, item)
    value = b.struct("value", [("item", b.ptr(tag)), ("n", long_)])
    return b.encode(), i32, value, item


def _map(rt: Runtime, map_type: MapType, **kw: int) -> tuple[int, object, Btf, int]:
    blob, key_t, value_t, item = _btf()
    btf_fd = bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=blob), runtime=rt)
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(
        map_type=map_type, key_size=4, value_size=VALUE_SIZE, btf_fd=btf_fd,
        btf_key_type_id=key_t, btf_value_type_id=value_t, **kw), runtime=rt)
    m, _ = rt.get_object(fd, ObjKind.MAP)
    return fd, m, Btf.parse(blob), item


def _stash(rt: Runtime, value_addr: int, btf: Btf, item: int) -> int:
    """What bpf_kptr_xchg(&value->item, obj) leaves behind."""
    addr = obj_new(rt, btf, item)
    rt.memory.store(value_addr, 8, addr)
    return addr


def _update(rt: Runtime, fd: int, value: bytes) -> None:
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=KEY, value=value), runtime=rt)


def _lookup(rt: Runtime, fd: int) -> bytes:
    return bytes(bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=KEY), runtime=rt))


@pytest.mark.parametrize("map_type", [MapType.ARRAY, MapType.HASH, MapType.LRU_HASH])
def test_overwriting_the_value_releases_the_object_and_ignores_user_pointers(
        map_type: MapType) -> None:
    rt = Runtime()
    fd, m, btf, item = _map(rt, map_type, max_entries=2)
    _update(rt, fd, bytes(VALUE_SIZE))
    addr = _stash(rt, m.lookup_elem(KEY), btf, item)  # type: ignore[attr-defined]
    assert _lookup(rt, fd) == bytes(VALUE_SIZE)  # the field reads as NULL
    forged = addr.to_bytes(8, "little") + (5).to_bytes(8, "little")
    _update(rt, fd, forged)
    assert not objects(rt)
    assert _lookup(rt, fd) == bytes(8) + (5).to_bytes(8, "little")


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.LRU_HASH])
def test_deleting_the_element_releases_the_object(map_type: MapType) -> None:
    rt = Runtime()
    fd, m, btf, item = _map(rt, map_type, max_entries=2)
    _update(rt, fd, bytes(VALUE_SIZE))
    _stash(rt, m.lookup_elem(KEY), btf, item)  # type: ignore[attr-defined]
    bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=KEY), runtime=rt)
    assert not objects(rt)


@pytest.mark.parametrize("map_type", [MapType.ARRAY, MapType.HASH])
def test_freeing_the_map_releases_every_object(map_type: MapType) -> None:
    rt = Runtime()
    fd, m, btf, item = _map(rt, map_type, max_entries=2)
    _update(rt, fd, bytes(VALUE_SIZE))
    _stash(rt, m.lookup_elem(KEY), btf, item)  # type: ignore[attr-defined]
    rt.close(fd)
    assert not objects(rt)


def test_local_storage_value_owns_its_objects() -> None:
    rt = Runtime()
    fd, m, btf, item = _map(rt, MapType.TASK_STORAGE, map_flags=1, max_entries=0)
    assert isinstance(m, LocalStorageMap)
    owner, other = object(), object()
    _stash(rt, m.storage_get(owner, None, True), btf, item)  # type: ignore[arg-type]
    m.storage_update(owner, bytes(VALUE_SIZE), 0)
    assert not objects(rt)
    _stash(rt, m.storage_get(owner, None, True), btf, item)  # type: ignore[arg-type]
    m.storage_delete(owner)
    assert not objects(rt)
    _stash(rt, m.storage_get(other, None, True), btf, item)  # type: ignore[arg-type]
    rt.close(fd)
    assert not objects(rt)
