"""XSKMAP: without AF_XDP sockets, every update fails as sockfd_lookup does."""

from __future__ import annotations

import errno

import pytest

from helpers._build import PyBackend
from pyebpf import BpfError, Cmd, MapElemAttr, MapType, bpf


def _k(i: int) -> bytes:
    return i.to_bytes(4, "little")


def _err(be: PyBackend, cmd: Cmd, **kw: object) -> int:
    with pytest.raises(BpfError) as e:
        bpf(cmd, MapElemAttr(**kw), runtime=be.rt)
    return int(e.value.errno or 0)


def test_update_lookup_delete_errnos() -> None:
    be = PyBackend()
    fd = be.map_create(MapType.XSKMAP, 4, 4, 2)
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0), value=_k(fd)) == errno.ENOTSOCK
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0), value=_k(999)) == errno.EBADF
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(2), value=_k(fd)) == errno.E2BIG
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0), value=_k(fd),
                flags=3) == errno.EINVAL
    assert _err(be, Cmd.MAP_LOOKUP_ELEM, map_fd=fd, key=_k(0)) == errno.EOPNOTSUPP
    assert _err(be, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=_k(2)) == errno.EINVAL
    be.delete(fd, _k(1))
