"""SOCKMAP / SOCKHASH: creation rules and the errnos of maps that hold no sockets."""

from __future__ import annotations

import errno

import pytest

from helpers._build import PyBackend
from pyebpf import BpfError, Cmd, MapElemAttr, MapType, bpf

from ._mapops import create_errno


def _k(i: int) -> bytes:
    return i.to_bytes(4, "little")


def _err(be: PyBackend, cmd: Cmd, **kw: object) -> int:
    with pytest.raises(BpfError) as e:
        bpf(cmd, MapElemAttr(**kw), runtime=be.rt)
    return int(e.value.errno or 0)


def test_sockhash_key_size_limit_is_e2big() -> None:
    be = PyBackend()
    assert create_errno(be.rt, MapType.SOCKHASH, key_size=513, value_size=4,
                        max_entries=1) == errno.E2BIG
    be.map_create(MapType.SOCKHASH, 512, 4, 1)


@pytest.mark.parametrize(("map_type", "delete_errno"), [(MapType.SOCKMAP, errno.EINVAL),
                                                        (MapType.SOCKHASH, errno.ENOENT)])
def test_empty_socket_map_errnos(map_type: MapType, delete_errno: int) -> None:
    be = PyBackend()
    fd4 = be.map_create(map_type, 4, 4, 2)
    fd8 = be.map_create(map_type, 4, 8, 2)
    assert _err(be, Cmd.MAP_LOOKUP_ELEM, map_fd=fd4, key=_k(0)) == errno.ENOSPC
    assert _err(be, Cmd.MAP_LOOKUP_ELEM, map_fd=fd8, key=_k(0)) == errno.ENOENT
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd8, key=_k(0),
                value=(1 << 31).to_bytes(8, "little")) == errno.EINVAL
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd4, key=_k(0), value=_k(fd4)) == \
        errno.ENOTSOCK
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd4, key=_k(0), value=_k(99)) == errno.EBADF
    assert _err(be, Cmd.MAP_DELETE_ELEM, map_fd=fd4, key=_k(0)) == delete_errno
