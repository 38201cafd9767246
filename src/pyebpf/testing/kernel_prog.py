"""Programs and whole objects on the real kernel, for differential tests.

:mod:`pyebpf.testing.kernel` runs map commands on the kernel; this module adds
what a program needs: :func:`kernel_prog_load` (PROG_LOAD, retried with a log
on failure as libbpf does, raising :class:`~pyebpf.errors.VerifierError`
with the kernel's log), :func:`kernel_test_run` (PROG_TEST_RUN with the
packet and ctx buffers), and :class:`KernelCollection`, the kernel twin of
:class:`pyebpf.Collection`: the maps of an :class:`~pyebpf.elf.ObjectSpec`
created with the same MAP_CREATE records, global data written and frozen,
programs loaded with the kernel's map fds patched in, and program-array and
map-in-map slots filled by the same conventions. Nothing is pinned on the
kernel side, so a test leaves no trace in /sys/fs/bpf.

Kernel fds are real fds of the test process: close what you create
(``KernelCollection`` is a context manager).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from ..attr import BtfLoadAttr, MapElemAttr, MapFdAttr, ProgLoadAttr, UserPtr
from ..collection import (
    kernel_ready_btf,
    map_create_attr,
    patch_map_refs,
    prog_btf_attrs,
    program_type,
)
from ..elf.loader import kernel_object_name
from ..elf.spec import MapSpec, ObjectSpec, ProgramSpec
from ..errors import BpfError, VerifierError
from ..uapi import Cmd, MapType
from .kernel import _syscall, kernel_bpf

__all__ = ["KernelCollection", "KernelRun", "kernel_prog_load", "kernel_test_run",
           "on_cpu"]

#: The kernel log buffer for a failed load (libbpf retries with 16 MiB; programs
#: under test are small).
LOG_SIZE = 1 << 22
#: Room for a packet to grow in a test run (bpf_xdp_adjust_tail, skb_change_tail).
DATA_OUT_SLACK = 4096
#: The largest ctx_out a test run may write (struct __sk_buff is 192 bytes).
CTX_OUT_SIZE = 1024


def kernel_prog_load(prog_type: int, insns: bytes, *, license: str = "GPL",
                     expected_attach_type: int = 0, prog_flags: int = 0,
                     name: str = "", kern_version: int = 0,
                     btf: dict[str, Any] | None = None) -> int:
    """PROG_LOAD on the kernel; the fd, or VerifierError/BpfError with the kernel's
    errno (and, for a verifier rejection, its log at level 1). ``btf`` adds the
    program's BTF fields (``prog_btf_fd``, func_info, line_info:
    :func:`pyebpf.collection.prog_btf_attrs`)."""
    attr = ProgLoadAttr(prog_type=int(prog_type), insns=bytes(insns),
                        insn_cnt=len(insns) // 8, license=license.encode() + b"\0",
                        expected_attach_type=expected_attach_type, prog_flags=prog_flags,
                        prog_name=name.encode()[:15], kern_version=kern_version,
                        log_buf=None, **(btf or {}))
    try:
        return int(kernel_bpf(Cmd.PROG_LOAD, attr))
    except BpfError as first:
        log_buf = ctypes.create_string_buffer(LOG_SIZE)
        retry = attrs.evolve(attr, log_level=1, log_size=LOG_SIZE,
                             log_buf=UserPtr(ctypes.addressof(log_buf)))
        try:
            return int(kernel_bpf(Cmd.PROG_LOAD, retry))  # accepted when logging: keep it
        except BpfError as e:
            log = log_buf.value.decode(errors="replace")
            reason = _last_reason(log) or (first.strerror or "")
            if log:
                raise VerifierError(e.errno or errno.EINVAL, reason, log) from None
            raise BpfError(e.errno or errno.EINVAL, f"kernel: {reason}") from None


def _last_reason(log: str) -> str:
    """The verifier's reason: the last log line that is not a statistics line."""
    for line in reversed(log.splitlines()):
        if line.strip() and not line.startswith(("processed ", "verification time",
                                                 "stack depth", "Validating")):
            return line.strip()
    return ""


@attrs.frozen
class KernelRun:
    """What one kernel test run reported (as :class:`pyebpf.TestRunResult`)."""

    retval: int
    data_out: bytes
    data_size_out: int
    ctx_out: bytes | None
    duration: int = 0


def kernel_test_run(prog_fd: int, data: bytes | None, *, ctx: bytes | None = None,
                    ctx_out: bool = False, repeat: int = 0, flags: int = 0,
                    cpu: int = 0) -> KernelRun:
    """PROG_TEST_RUN on the kernel (BpfError with its errno on failure)."""
    data = b"" if data is None else bytes(data)
    keep: list[Any] = []

    def buf(content: bytes, size: int) -> int:
        b = ctypes.create_string_buffer(content, max(size, len(content), 1))
        keep.append(b)
        return ctypes.addressof(b)

    out_size = len(data) + DATA_OUT_SLACK
    out_buf = ctypes.create_string_buffer(out_size)
    attr = bytearray(80)
    struct.pack_into("<IIIIQQII", attr, 0, prog_fd, 0, len(data), out_size,
                     buf(data, len(data)) if data else 0, ctypes.addressof(out_buf), repeat, 0)
    if ctx is not None:
        struct.pack_into("<IxxxxQ", attr, 40, len(ctx), buf(ctx, len(ctx)))
    ctx_buf = None
    if ctx_out or ctx is not None:
        ctx_buf = ctypes.create_string_buffer(CTX_OUT_SIZE)
        keep.append(ctx_buf)
        struct.pack_into("<I", attr, 44, CTX_OUT_SIZE)
        struct.pack_into("<Q", attr, 56, ctypes.addressof(ctx_buf))
    struct.pack_into("<II", attr, 64, flags, cpu)
    raw = ctypes.create_string_buffer(bytes(attr), len(attr))
    _, err = _syscall(Cmd.PROG_TEST_RUN, raw, len(raw))
    if err:
        raise BpfError(err, f"kernel: PROG_TEST_RUN failed with {errno.errorcode.get(err, err)}")
    retval, _, size_out = struct.unpack_from("<III", raw.raw, 4)
    duration = struct.unpack_from("<I", raw.raw, 36)[0]
    ctx_size_out = struct.unpack_from("<I", raw.raw, 44)[0]
    return KernelRun(retval=retval, data_out=out_buf.raw[:size_out], data_size_out=size_out,
                     ctx_out=ctx_buf.raw[:ctx_size_out] if ctx_buf is not None else None,
                     duration=duration)


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run the body on one CPU: the kernel's test runs and per-CPU map slots use the
    CPU the calling thread is on, pyebpf's the runtime's ``cpu``."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


class KernelMap:
    """A kernel map created from a MapSpec: its fd and sizes."""

    def __init__(self, fd: int, spec: MapSpec) -> None:
        self.fd = fd
        self.spec = spec
        self.name = spec.name

    def _sizes(self) -> dict[str, int]:
        return {"key_size": self.spec.key_size, "value_size": self.spec.value_size,
                "map_type": self.spec.type}

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        kernel_bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=self.fd, key=key, value=value,
                                                    flags=flags), **self._sizes())

    def lookup(self, key: bytes) -> bytes:
        return bytes(kernel_bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=self.fd, key=key),
                                **self._sizes()))

    def delete(self, key: bytes) -> None:
        kernel_bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=self.fd, key=key), **self._sizes())

    def keys(self) -> Iterator[bytes]:
        key: bytes | None = None
        while True:
            try:
                key = bytes(kernel_bpf(Cmd.MAP_GET_NEXT_KEY,
                                       MapElemAttr(map_fd=self.fd, key=key), **self._sizes()))
            except BpfError as e:
                if e.errno == errno.ENOENT:
                    return
                raise
            yield key

    __iter__ = keys


class KernelCollection:
    """The maps and programs of an ObjectSpec, created on the real kernel."""

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self.maps: dict[str, KernelMap] = {}
        self.programs: dict[str, int] = {}
        self._extra_fds: list[int] = []
        #: The object's BTF loaded on the kernel (None: not yet tried; -1: refused).
        self._btf_fd: int | None = None

    def btf_fd(self) -> int | None:
        """The object's BTF on the kernel, loaded once as libbpf does (None when the
        object has none or the kernel refuses it)."""
        if self._btf_fd is None:
            self._btf_fd = -1
            if self.spec.btf is not None:
                try:
                    raw = kernel_ready_btf(self.spec.btf)
                    self._btf_fd = int(kernel_bpf(Cmd.BTF_LOAD,
                                                  BtfLoadAttr(btf=raw, btf_size=len(raw))))
                except BpfError:
                    self._btf_fd = -1
        return self._btf_fd if self._btf_fd >= 0 else None

    @classmethod
    def from_spec(cls, spec: ObjectSpec, *, programs: Iterable[str] | None = None,
                  prog_types: dict[str, Any] | None = None,
                  tail_calls: bool = True) -> KernelCollection:
        """Create every map and load ``programs`` (default: all) on the kernel."""
        kc = cls(spec)
        try:
            for name in spec.maps:
                kc._create(name, set())
            wanted = list(spec.programs) if programs is None else list(programs)
            for n in wanted:
                kc.programs[n] = kc._load(spec.program(n), prog_types or {})
            kc._fill_slots(tail_calls)
        except BaseException:
            kc.close()
            raise
        return kc

    def _create(self, name: str, creating: set[str]) -> KernelMap:
        if name in self.maps:
            return self.maps[name]
        if name in creating:
            raise BpfError(errno.ELOOP, f"map '{name}': inner map definitions form a loop")
        creating.add(name)
        ms = self.spec.maps[name]
        inner_fd = 0
        if ms.inner_map_name is not None:
            inner_fd = self._create(ms.inner_map_name, creating).fd
        template = None
        if ms.inner is not None:
            template = self._create_fd(ms.inner, 0)
            inner_fd = template
        try:
            fd = self._create_fd(ms, inner_fd, self.btf_fd())
        finally:
            if template is not None:
                os.close(template)
        km = KernelMap(fd, ms)
        self.maps[name] = km
        if ms.data is not None:
            km.update(bytes(4), ms.data)
            if ms.freeze:
                kernel_bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd))
        return km

    @staticmethod
    def _create_fd(ms: MapSpec, inner_fd: int, btf_fd: int | None = None) -> int:
        """MAP_CREATE with the value's BTF types when there are any (kptr, timer and
        spin-lock fields need them), again without when the kernel refuses them, as
        libbpf does."""
        attr = map_create_attr(ms, inner_fd)
        if btf_fd is not None and ms.btf_value_type_id:
            try:
                return int(kernel_bpf(Cmd.MAP_CREATE, attrs.evolve(
                    attr, btf_fd=btf_fd, btf_key_type_id=ms.btf_key_type_id,
                    btf_value_type_id=ms.btf_value_type_id)))
            except BpfError:
                pass
        try:
            return int(kernel_bpf(Cmd.MAP_CREATE, attr))
        except BpfError as e:
            raise BpfError(e.errno or errno.EINVAL,
                           f"kernel: {ms.describe()}: create failed") from None

    def _load(self, ps: ProgramSpec, prog_types: dict[str, Any]) -> int:
        ptype, eat = program_type(ps, prog_types)
        if ptype is None:
            raise BpfError(errno.EINVAL, f"program '{ps.name}': unknown program type")
        insns = patch_map_refs(ps, {name: km.fd for name, km in self.maps.items()})
        load = functools.partial(kernel_prog_load, int(ptype), insns, license=ps.license or "GPL",
                                 expected_attach_type=eat, prog_flags=ps.prog_flags,
                                 name=kernel_object_name(ps.name),
                                 kern_version=ps.kern_version)
        btf = prog_btf_attrs(ps, self.btf_fd())
        if not btf:
            return load()
        try:  # with the program's BTF, as libbpf loads it (pyebpf's load_object too)
            return load(btf=btf)
        except VerifierError:
            raise
        except BpfError:
            return load()

    def _fill_slots(self, tail_calls: bool) -> None:
        for ms in self.spec.maps.values():
            for slot, target in sorted(ms.init_slots.items()):
                if ms.type == MapType.PROG_ARRAY:
                    if target not in self.programs:
                        continue
                    fd = self.programs[target]
                else:
                    fd = self.maps[target].fd
                self.maps[ms.name].update(slot.to_bytes(ms.key_size or 4, "little"),
                                          struct.pack("<I", fd))
        if not tail_calls:
            return
        for name, fd in self.programs.items():
            slot = self.spec.programs[name].tail_call_slot
            if slot is not None and slot[0] in self.maps:
                ms = self.spec.maps[slot[0]]
                self.maps[ms.name].update(slot[1].to_bytes(ms.key_size or 4, "little"),
                                          struct.pack("<I", fd))

    def close(self) -> None:
        for fd in self.programs.values():
            os.close(fd)
        self.programs.clear()
        for km in self.maps.values():
            os.close(km.fd)
        self.maps.clear()
        if self._btf_fd is not None and self._btf_fd >= 0:
            os.close(self._btf_fd)
        self._btf_fd = None

    def __enter__(self) -> KernelCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
