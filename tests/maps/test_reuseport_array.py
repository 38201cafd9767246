"""REUSEPORT_SOCKARRAY: creation and the errnos of an array that holds no sockets;
bpf_sk_select_reuseport finds no socket."""

from __future__ import annotations

import errno

import pytest

from helpers._build import PyBackend
from pyebpf import BpfError, Cmd, MapElemAttr, MapType, bpf
from pyebpf.helpers.reuseport import sk_select_reuseport

from ._mapops import create_errno


def _k(i: int) -> bytes:
    return i.to_bytes(4, "little")


def _err(be: PyBackend, cmd: Cmd, **kw: object) -> int:
    with pytest.raises(BpfError) as e:
        bpf(cmd, MapElemAttr(**kw), runtime=be.rt)
    return int(e.value.errno or 0)


def test_value_is_a_u32_or_u64_socket_fd() -> None:
    be = PyBackend()
    assert create_errno(be.rt, MapType.REUSEPORT_SOCKARRAY, key_size=4, value_size=2,
                        max_entries=1) == errno.EINVAL
    be.map_create(MapType.REUSEPORT_SOCKARRAY, 4, 4, 1, map_flags=1 << 7)


def test_element_errnos() -> None:
    be = PyBackend()
    fd = be.map_create(MapType.REUSEPORT_SOCKARRAY, 4, 8, 2)
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0),
                value=(fd).to_bytes(8, "little"), flags=4) == errno.EINVAL
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(2),
                value=(fd).to_bytes(8, "little")) == errno.E2BIG
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0),
                value=(1 << 40).to_bytes(8, "little")) == errno.EINVAL
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0),
                value=(fd).to_bytes(8, "little")) == errno.ENOTSOCK
    assert _err(be, Cmd.MAP_LOOKUP_ELEM, map_fd=fd, key=_k(0)) == errno.ENOENT
    assert _err(be, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=_k(0)) == errno.ENOENT
    assert _err(be, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=_k(2)) == errno.E2BIG


def test_select_reuseport_finds_no_socket() -> None:
    be = PyBackend()
    fd = be.map_create(MapType.REUSEPORT_SOCKARRAY, 4, 8, 2)
    m = be.rt.fds[fd].obj
    key = be.rt.memory.map(bytearray(4), kind="stack")
    vm = type("FakeVm", (), {"runtime": be.rt, "memory": be.rt.memory})()
    assert sk_select_reuseport(vm, 0, m.addr, key.base, 0, 0) == -errno.ENOENT & (2**64 - 1)
