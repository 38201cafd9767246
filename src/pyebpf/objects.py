"""Friendly objects over ``bpf()``: every method is one or more bpf() commands.

``Map`` is a dict-like view of a map fd. It adds no semantics of its own:
``m[k] = v`` is MAP_UPDATE_ELEM with BPF_ANY, ``m[k]`` is MAP_LOOKUP_ELEM,
iteration is MAP_GET_NEXT_KEY, so a user sees exactly the kernel's errno
(``KeyError`` for ENOENT, as a dict would) and the same behaviour through
either door.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

from .attr import InfoByFdAttr, MapCreateAttr, MapElemAttr, MapFdAttr, ObjPinAttr
from .errors import BpfError
from .runtime import Runtime, default_runtime
from .syscall import MapInfo, bpf
from .uapi import BPF_ANY, Cmd, MapType

__all__ = ["KeyNotFound", "Map"]

Key = bytes | bytearray | memoryview | int


class KeyNotFound(BpfError, KeyError):
    """ENOENT from a lookup or delete: both a BpfError and the KeyError a mapping raises."""

    def __str__(self) -> str:
        return BpfError.__str__(self)


class Map:
    """A map fd with a mapping interface. Keys may be bytes, or ints for
    integer-keyed maps (encoded little-endian in ``key_size`` bytes)."""

    def __init__(self, fd: int, runtime: Runtime | None = None) -> None:
        self.runtime = runtime if runtime is not None else default_runtime()
        self.fd = fd
        info = self.info()
        self.map_type = MapType(info.type)
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.name = info.name

    @classmethod
    def create(cls, map_type: MapType | int, *, key_size: int = 0, value_size: int = 0,
               max_entries: int = 0, map_flags: int = 0, name: str = "",
               runtime: Runtime | None = None, **extra: Any) -> Map:
        """MAP_CREATE, then wrap the new fd."""
        rt = runtime if runtime is not None else default_runtime()
        attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                             max_entries=max_entries, map_flags=map_flags, map_name=name,
                             **extra)
        return cls(bpf(Cmd.MAP_CREATE, attr, runtime=rt), rt)

    @classmethod
    def from_pin(cls, path: str, *, flags: int = 0, runtime: Runtime | None = None) -> Map:
        rt = runtime if runtime is not None else default_runtime()
        return cls(bpf(Cmd.OBJ_GET, ObjPinAttr(pathname=path, file_flags=flags), runtime=rt), rt)

    # -- plumbing ------------------------------------------------------------------------
    def _bpf(self, cmd: Cmd, attr: Any) -> Any:
        return bpf(cmd, attr, runtime=self.runtime)

    def _key(self, key: Key) -> bytes:
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little")
        return bytes(key)

    @property
    def value_bytes(self) -> int:
        """Bytes of a value as the syscall sees it (per-CPU maps: all CPUs' slots)."""
        from .syscall import _map_from_fd

        return _map_from_fd(self.runtime, self.fd)[0].syscall_value_size

    # -- mapping interface --------------------------------------------------------------
    def lookup(self, key: Key, flags: int = 0) -> bytes:
        return self._bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=self.fd, key=self._key(key),
                                                          flags=flags))

    def update(self, key: Key, value: bytes, flags: int = BPF_ANY) -> None:
        self._bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=self.fd, key=self._key(key),
                                                   value=bytes(value), flags=flags))

    def delete(self, key: Key) -> None:
        self._bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=self.fd, key=self._key(key)))

    def lookup_and_delete(self, key: Key | None = None, flags: int = 0) -> bytes:
        k = None if key is None else self._key(key)
        return self._bpf(Cmd.MAP_LOOKUP_AND_DELETE_ELEM,
                         MapElemAttr(map_fd=self.fd, key=k, flags=flags))

    def push(self, value: bytes, flags: int = BPF_ANY) -> None:
        """Queue/stack maps: MAP_UPDATE_ELEM with a NULL key."""
        self._bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=self.fd, value=bytes(value),
                                                   flags=flags))

    def pop(self) -> bytes:
        return self.lookup_and_delete(None)

    def peek(self) -> bytes:
        return self._bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=self.fd))

    def next_key(self, key: Key | None) -> bytes | None:
        """The key after ``key`` (the first for None), or None at the end."""
        k = None if key is None else self._key(key)
        try:
            return self._bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=self.fd, key=k))
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def __getitem__(self, key: Key) -> bytes:
        try:
            return self.lookup(key)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                raise KeyNotFound(errno.ENOENT, e.strerror or "no such key") from None
            raise

    def __setitem__(self, key: Key, value: bytes) -> None:
        self.update(key, value)

    def __delitem__(self, key: Key) -> None:
        try:
            self.delete(key)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                raise KeyNotFound(errno.ENOENT, e.strerror or "no such key") from None
            raise

    def __contains__(self, key: object) -> bool:
        try:
            self.lookup(key)  # type: ignore[arg-type]
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    def get(self, key: Key, default: bytes | None = None) -> bytes | None:
        try:
            return self[key]
        except KeyNotFound:
            return default

    def keys(self) -> Iterator[bytes]:
        key = self.next_key(None)
        while key is not None:
            yield key
            key = self.next_key(key)

    __iter__ = keys

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in self.keys():
            try:
                yield key, self.lookup(key)
            except BpfError as e:
                if e.errno != errno.ENOENT:  # deleted meanwhile: skip, as bpftool does
                    raise

    def values(self) -> Iterator[bytes]:
        for _, value in self.items():
            yield value

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    # -- object commands -------------------------------------------------------------------
    def info(self) -> MapInfo:
        return self._bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=self.fd))

    def freeze(self) -> None:
        self._bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=self.fd))

    def pin(self, path: str) -> None:
        self._bpf(Cmd.OBJ_PIN, ObjPinAttr(pathname=path, bpf_fd=self.fd))

    def close(self) -> None:
        if self.fd >= 0:
            self.runtime.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Map fd={self.fd} {self.map_type.name} {self.name!r} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries}>")
