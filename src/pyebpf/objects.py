"""Friendly objects over ``bpf()``: every method is one or more bpf() commands.

``Program`` wraps a program fd (load, test-run, run, pin).

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

import attrs

from .attr import (
    InfoByFdAttr,
    MapCreateAttr,
    MapElemAttr,
    MapFdAttr,
    ObjPinAttr,
    ProgLoadAttr,
    TestRunAttr,
)
from .errors import BpfError
from .prog import TestRunResult
from .runtime import Runtime, default_runtime
from .syscall import MapInfo, bpf
from .uapi import BPF_ANY, Cmd, MapType, ProgType

__all__ = ["KeyNotFound", "Map", "Program"]

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

    def _repr_html_(self) -> str:
        from .views import map_html

        return map_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        from .views import map_text

        p.text(repr(self) if cycle else map_text(self))


class Program:
    """A loaded program fd: run it, test-run it, pin it.

    ``test_run`` is BPF_PROG_TEST_RUN, exactly as the kernel offers it for the
    program's type. ``run`` runs it once for any type: through PROG_TEST_RUN
    where the type has one, else directly, with ``ctx`` as the bytes of the
    type's ctx struct (what a kprobe or tracepoint would be handed).
    """

    def __init__(self, fd: int, runtime: Runtime | None = None, *, name: str | None = None,
                 spec: Any = None, log: str = "") -> None:
        self.runtime = runtime if runtime is not None else default_runtime()
        self.fd = fd
        info = self.info()
        self.prog_type = ProgType(info.type)
        #: The kernel's name (at most 15 characters) unless a longer one is given.
        self.name = name if name is not None else info.name
        #: The ProgramSpec it was loaded from (None for a bare fd).
        self.spec = spec
        #: The verifier log of the load, when one was asked for.
        self.log = log if log else getattr(fd, "log", "")

    @classmethod
    def load(cls, prog_type: ProgType | int, insns: Any, *, license: str = "GPL",
             name: str = "", expected_attach_type: int = 0, prog_flags: int = 0,
             log_level: int = 0, log_size: int = 0, runtime: Runtime | None = None,
             **extra: Any) -> Program:
        """PROG_LOAD, then wrap the new fd (``insns``: bytes or a list of Insn)."""
        rt = runtime if runtime is not None else default_runtime()
        if log_level and not log_size:
            log_size = 1 << 24
        attr = ProgLoadAttr(prog_type=int(prog_type), insns=insns, license=license,
                            prog_name=name, expected_attach_type=expected_attach_type,
                            prog_flags=prog_flags, log_level=log_level, log_size=log_size,
                            **extra)
        fd = bpf(Cmd.PROG_LOAD, attr, runtime=rt)
        return cls(fd, rt, log=getattr(fd, "log", ""))

    def info(self) -> Any:
        return bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=self.fd), runtime=self.runtime)

    def test_run(self, data: bytes | None = None, *, ctx: bytes | None = None,
                 repeat: int = 0, flags: int = 0, cpu: int = 0,
                 data_size_out: int = 0, trace: bool = False) -> TestRunResult:
        """BPF_PROG_TEST_RUN: ``data`` is the packet (data_in), ``ctx`` the ctx struct
        (ctx_in). Returns the kernel's result: retval, data_out, ctx_out, duration,
        and what bpf_trace_printk printed (``printk``). With ``trace``, the run is
        recorded (:mod:`pyebpf.trace`) into the result's ``trace`` (the first run
        when ``repeat`` asks for several)."""
        attr = TestRunAttr(prog_fd=self.fd, data_in=None if data is None else bytes(data),
                           ctx_in=None if ctx is None else bytes(ctx), repeat=repeat,
                           flags=flags, cpu=cpu, data_size_out=data_size_out)
        printed = len(self.runtime.trace_output)
        if trace:
            from .trace import traced

            with traced(self) as log:
                result = bpf(Cmd.PROG_TEST_RUN, attr, runtime=self.runtime)
            result = attrs.evolve(result, trace=log.first)
        else:
            result = bpf(Cmd.PROG_TEST_RUN, attr, runtime=self.runtime)
        return attrs.evolve(result, printk=tuple(self.runtime.trace_output[printed:]))

    def run(self, ctx: bytes | bytearray | None = None, *, data: bytes | None = None,
            trace: bool = False) -> Any:
        """Run once and return r0. Types the kernel can test-run go through
        PROG_TEST_RUN (``data`` and ``ctx`` as there); others run directly with
        ``ctx`` (zero-filled to the type's ctx size) as their context; a given
        bytearray receives the ctx as the program left it. With ``trace``, the
        run's :class:`pyebpf.trace.Trace` is returned instead (r0: its ``retval``)."""
        if trace:
            from .trace import traced

            with traced(self) as log:
                self.run(ctx, data=data)
            assert log.first is not None
            return log.first
        from .progs import prog_type_ops

        ops = prog_type_ops(self.prog_type)
        if ops is not None and ops.test_run is not None:
            return self.test_run(data, ctx=None if ctx is None else bytes(ctx)).retval
        if data is not None:
            raise BpfError(errno.EINVAL, f"{self.prog_type.name} programs take no packet data")
        from .prog import BpfProg
        from .runtime import ObjKind

        prog, _ = self.runtime.get_object(self.fd, ObjKind.PROG)
        assert isinstance(prog, BpfProg)
        size = ops.ctx.size if ops is not None and ops.ctx is not None else 0
        buf = bytearray(ctx if ctx is not None else b"")
        if len(buf) < size:
            buf.extend(bytes(size - len(buf)))
        region = self.runtime.memory.map(buf, kind="ctx", name=f"{self.prog_type.name}_ctx")
        try:
            r0 = prog.run(region.base)
        finally:
            self.runtime.unmap_later(region)
        if isinstance(ctx, bytearray):
            ctx[:] = buf[: len(ctx)]
        return r0

    def pin(self, path: str) -> None:
        bpf(Cmd.OBJ_PIN, ObjPinAttr(pathname=path, bpf_fd=self.fd), runtime=self.runtime)

    def attach(self, target_fd: int, attach_type: int, **fields: Any) -> Any:
        """BPF_LINK_CREATE of this program: a :class:`pyebpf.links.Link`."""
        from .links.link import Link

        return Link.create(self.fd, target_fd, attach_type, runtime=self.runtime, **fields)

    def attach_iter(self, map: Any = None) -> Any:
        """An iterator link for this ``SEC("iter/...")`` program (``map``: the Map or
        map fd a ``bpf_map_elem`` iterator walks); read it with
        ``pyebpf.links.iter.IterFile(link.fd, runtime=...)``."""
        import struct

        from .uapi import AttachType

        if map is None:
            return self.attach(0, AttachType.TRACE_ITER)
        info = struct.pack("<I", int(getattr(map, "fd", map)))
        return self.attach(0, AttachType.TRACE_ITER, iter_info=info, iter_info_len=len(info))

    def attach_xdp(self, dev: Any, *, flags: int = 0) -> Any:
        """An XDP link on ``dev`` (a pyebpf.links.Netdev or an ifindex)."""
        from .uapi import AttachType

        return self.attach(getattr(dev, "ifindex", dev), AttachType.XDP, flags=flags)

    def attach_netfilter(self, pf: int, hooknum: int, priority: int, *,
                         flags: int = 0) -> Any:
        """A netfilter link in the current namespace: family ``pf`` (NFPROTO_IPV4 2,
        NFPROTO_IPV6 10), hook ``hooknum`` (NF_INET_PRE_ROUTING 0 .. POST_ROUTING 4),
        ``priority``, ``flags`` (BPF_F_NETFILTER_IP_DEFRAG); fire it with
        ``pyebpf.links.current_net(rt).nf_hook(pf, hooknum, packet)``."""
        from .uapi import AttachType

        return self.attach(0, AttachType.NETFILTER, netfilter_pf=pf, netfilter_hooknum=hooknum,
                           netfilter_priority=priority, netfilter_flags=flags)

    def close(self) -> None:
        if self.fd >= 0:
            self.runtime.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Program fd={self.fd} {self.prog_type.name} {self.name!r}>"

    def _repr_html_(self) -> str:
        from .views import program_html

        return program_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        from .views import program_text

        p.text(repr(self) if cycle else program_text(self))
