"""SK/TASK/INODE/CGRP_STORAGE: creation needs BTF, fds name the owners, values go
with their owners."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import BpfError, Cmd, MapCreateAttr, MapElemAttr, MapType, Runtime, bpf
from pyebpf.attr import BtfLoadAttr
from pyebpf.btf_build import BtfBuilder
from pyebpf.errors import ENOTSUPP
from pyebpf.maps.cgroup_array import cgroup_open
from pyebpf.maps.local_storage import LocalStorageMap


def _create(rt: Runtime, map_type: MapType, **kw: int) -> int:
    b = BtfBuilder()
    i32, u64 = b.int_("int", 4, signed=True), b.int_("long", 8)
    btf_fd = bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=b.encode()), runtime=rt)
    fields = dict(key_size=4, value_size=8, map_flags=1, btf_fd=btf_fd, btf_key_type_id=i32,
                  btf_value_type_id=u64) | kw
    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, **fields), runtime=rt)


def _errno(rt: Runtime, cmd: Cmd, **kw: object) -> int:
    with pytest.raises(BpfError) as e:
        bpf(cmd, MapElemAttr(**kw), runtime=rt)
    return int(e.value.errno or 0)


@pytest.mark.parametrize("kw", [dict(map_flags=0), dict(btf_key_type_id=0), dict(max_entries=1),
                                dict(map_flags=1 | 1 << 3)])
def test_create_rules(kw: dict) -> None:
    rt = Runtime()
    with pytest.raises(BpfError) as e:
        _create(rt, MapType.TASK_STORAGE, **kw)
    assert e.value.errno == errno.EINVAL


def test_inode_storage_is_keyed_by_the_files_object() -> None:
    rt = Runtime()
    fd = _create(rt, MapType.INODE_STORAGE)
    key = struct.pack("<i", fd)
    assert _errno(rt, Cmd.MAP_LOOKUP_ELEM, map_fd=fd, key=key) == errno.ENOENT
    assert _errno(rt, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=key, value=bytes(8),
                  flags=2) == errno.ENOENT
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key, value=struct.pack("<Q", 5)),
        runtime=rt)
    assert _errno(rt, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=key, value=bytes(8),
                  flags=1) == errno.EEXIST
    assert bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key), runtime=rt) == \
        struct.pack("<Q", 5)
    assert _errno(rt, Cmd.MAP_GET_NEXT_KEY, map_fd=fd, key=key) == ENOTSUPP
    assert _errno(rt, Cmd.MAP_LOOKUP_ELEM, map_fd=fd, key=struct.pack("<i", 999)) == \
        errno.EBADF


def test_cgrp_storage_takes_cgroup_fds_and_task_storage_no_fd() -> None:
    rt = Runtime()
    cg = struct.pack("<i", cgroup_open(rt, 1))
    fd = _create(rt, MapType.CGRP_STORAGE)
    assert _errno(rt, Cmd.MAP_LOOKUP_ELEM, map_fd=fd, key=struct.pack("<i", fd)) == errno.EBADF
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=cg, value=bytes(8)), runtime=rt)
    bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=cg), runtime=rt)
    assert _errno(rt, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=cg) == errno.ENOENT
    task = _create(rt, MapType.TASK_STORAGE)
    assert _errno(rt, Cmd.MAP_LOOKUP_ELEM, map_fd=task, key=cg) == errno.EBADF
    sk = _create(rt, MapType.SK_STORAGE)
    assert _errno(rt, Cmd.MAP_LOOKUP_ELEM, map_fd=sk, key=cg) == errno.ENOTSOCK


def test_a_gone_owners_value_is_freed() -> None:
    rt = Runtime()
    m = rt.fds[_create(rt, MapType.SK_STORAGE)].obj
    assert isinstance(m, LocalStorageMap)
    sock = rt.memory.map(64, kind="sock")
    addr = m.storage_get(sock.base, struct.pack("<Q", 9), create=True)
    assert addr is not None and rt.memory.load(addr, 8) == 9
    assert m.storage_get(sock.base, None, create=False) == addr
    rt.memory.unmap(sock)
    other = rt.memory.map(64, kind="sock")
    m.storage_get(other.base, None, create=True)
    assert sock.base not in m.storages
