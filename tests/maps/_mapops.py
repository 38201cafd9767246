"""Small bpf() wrappers shared by the LRU, LPM trie, queue/stack and bloom filter tests."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, MapCreateAttr, MapElemAttr, Runtime, bpf


def create(rt: Runtime, map_type: int, **kw: Any) -> int:
    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, **kw), runtime=rt)


def create_errno(rt: Runtime, map_type: int, **kw: Any) -> int:
    """The errno MAP_CREATE fails with (the test fails if it succeeds)."""
    with pytest.raises(BpfError) as e:
        create(rt, map_type, **kw)
    assert e.value.errno is not None
    return e.value.errno


def k(i: int, size: int = 4) -> bytes:
    return i.to_bytes(size, "little")


def update(rt: Runtime, fd: int, key: bytes | None, value: bytes | None, flags: int = 0) -> Any:
    return bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key, value=value, flags=flags),
               runtime=rt)


def lookup(rt: Runtime, fd: int, key: bytes | None, flags: int = 0,
           value: bytes | None = None) -> Any:
    return bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key, value=value, flags=flags),
               runtime=rt)


def delete(rt: Runtime, fd: int, key: bytes | None) -> Any:
    return bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=key), runtime=rt)


def next_key(rt: Runtime, fd: int, key: bytes | None) -> Any:
    return bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=key), runtime=rt)


def lookup_and_delete(rt: Runtime, fd: int, key: bytes | None, flags: int = 0) -> Any:
    return bpf(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, MapElemAttr(map_fd=fd, key=key, flags=flags),
               runtime=rt)


def fails(err: int, fn: Any, *args: Any, **kw: Any) -> None:
    """``fn(*args)`` raises BpfError with ``err``."""
    with pytest.raises(BpfError) as e:
        fn(*args, **kw)
    assert e.value.errno == err, f"{e.value} instead of errno {errno.errorcode.get(err, err)}"


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


def map_obj(rt: Runtime, fd: int) -> Any:
    """The map object behind an fd (for the program-side ops)."""
    return rt.fds[fd].obj
