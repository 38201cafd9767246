"""The real kernel's ``bpf()`` as a test oracle.

:func:`kernel_bpf` takes the same attr records as :func:`pyebpf.bpf` and gives
back the same shapes (an fd, the bytes read, a :class:`~pyebpf.syscall.BatchResult`,
a :class:`~pyebpf.syscall.MapInfo`, 0), raising
:class:`~pyebpf.errors.BpfError` with the kernel's errno, so a differential
test can run one record on both and compare::

    from pyebpf.testing.kernel import kernel_available, kernel_bpf, kernel_close

    if kernel_available():
        fd = kernel_bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.HASH, key_size=4,
                                                      value_size=8, max_entries=4))
        try:
            kernel_bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=b"\\0" * 4))
        finally:
            kernel_close(fd)

How records become the raw ``union bpf_attr``:

- Input buffers given as ``bytes`` are copied to the very end of a mapped page
  followed by an inaccessible one, so a kernel reading past them faults and
  says EFAULT, as pyebpf does for a buffer shorter than what it reads.
- ``None`` is the NULL pointer; a :class:`~pyebpf.attr.UserPtr` is passed as
  the raw address it holds (the caller's business: use 0, or an address that is
  invalid in both worlds).
- Output slots (the value of a lookup, the next key, the keys/values/out_batch
  of a lookup batch) are allocated by this module at the size the kernel
  writes, ending at a guard page; ``bytes`` given there are ignored, as pyebpf
  ignores them (a bloom filter's lookup value is an input). The sizes come from
  the map (queried with OBJ_GET_INFO_BY_FD) unless ``key_size=``/``value_size=``/
  ``map_type=`` are given. Per-CPU values are ``round_up(value_size, 8)`` per
  possible CPU (:func:`possible_cpus`).
- OBJ_GET_INFO_BY_FD's ``info``: ``bytes`` are the caller's struct (a buffer of
  exactly that length, which the kernel reads and then writes ``info_len``
  bytes of); None is a zeroed struct of ``info_len`` bytes (0: the whole
  struct, and ``info_len`` is passed as its size). The MapInfo returned is that
  buffer afterwards.
- A failing batch command's BpfError carries ``partial``: the BatchResult the
  kernel wrote back before failing (the count, and a lookup's elements).

Kernel fds are real fds of this process: close every one you create
(:func:`kernel_close`, :func:`kernel_map`, or :class:`KernelFds`).
``PYEBPF_NO_KERNEL=1`` makes :func:`kernel_available` say no.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import functools
import os
import platform
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..attr import (
    ATTR_UNION_SIZE,
    LAYOUTS,
    LOG_BUF_AUTO,
    BtfLoadAttr,
    InfoByFdAttr,
    MapBatchAttr,
    MapCreateAttr,
    MapElemAttr,
    ObjPinAttr,
    ProgLoadAttr,
    TestRunAttr,
    UserPtr,
    record_class,
)
from ..errors import ENOTSUPP, BpfError, VerifierError
from ..syscall import BatchResult, MapInfo
from ..uapi import Cmd, MapType

__all__ = [
    "KernelFds",
    "kernel_available",
    "kernel_bpf",
    "kernel_bpf_raw",
    "kernel_close",
    "kernel_map",
    "kernel_map_info",
    "possible_cpus",
]

#: __NR_bpf per architecture.
_NR_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "ppc64le": 361,
           "s390x": 351, "i686": 357, "i386": 357, "armv7l": 386, "loongarch64": 280}
PAGE_SIZE = 4096
_PROT_NONE, _PROT_RW = 0, 3
_MAP_PRIVATE_ANON = 0x02 | 0x20
#: sizeof(struct bpf_map_info) on Linux 6.18.
MAP_INFO_SIZE = MapInfo.SIZE

_PERCPU_TYPES = {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
                 MapType.PERCPU_CGROUP_STORAGE}
#: Map types whose batch position (in_batch/out_batch) is a u32 bucket index.
_HTAB_TYPES = {MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
               MapType.HASH_OF_MAPS}


# -- libc -------------------------------------------------------------------------------
@functools.cache
def _libc() -> Any:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def _nr_bpf() -> int:
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        raise OSError(_errno.ENOSYS, f"no bpf() syscall number known for {platform.machine()}")
    return nr


def kernel_bpf_raw(cmd: int, attr_bytes: bytes, size: int | None = None) -> tuple[int, int]:
    """bpf(cmd, attr_bytes, size) on the real kernel: ``(return value, errno)``.

    ``size`` defaults to ``len(attr_bytes)``; the buffer handed over always holds
    at least ``size`` bytes (zero-padded). ``errno`` is 0 on success.
    """
    size = len(attr_bytes) if size is None else size
    data = bytes(attr_bytes).ljust(size, b"\0")
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    return _syscall(cmd, buf, size)


def _syscall(cmd: int, buf: Any, size: int) -> tuple[int, int]:
    libc = _libc()
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(_nr_bpf()), ctypes.c_long(cmd), buf,
                       ctypes.c_long(size))
    if ret < 0:
        return int(ret), ctypes.get_errno()
    return int(ret), 0


def kernel_close(fd: int) -> None:
    """Close a kernel fd."""
    os.close(fd)


@functools.cache
def kernel_available() -> bool:
    """Whether bpf() works here: creating (and closing) a tiny array map succeeds.

    ``PYEBPF_NO_KERNEL=1`` in the environment says no, to run a suite as it would
    run where bpf() is not permitted."""
    if os.environ.get("PYEBPF_NO_KERNEL") or platform.system() != "Linux":
        return False
    try:
        attr = struct.pack("<IIII", int(MapType.ARRAY), 4, 4, 1).ljust(ATTR_UNION_SIZE, b"\0")
        fd, _ = kernel_bpf_raw(Cmd.MAP_CREATE, attr)
    except (OSError, AttributeError):
        return False
    if fd < 0:
        return False
    os.close(fd)
    return True


@functools.cache
def possible_cpus() -> int:
    """num_possible_cpus(): the CPUs listed in /sys/devices/system/cpu/possible."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


# -- user memory: buffers that end at a guard page ------------------------------------
class _UserMemory:
    """Buffers handed to the kernel, each ending right before an inaccessible page."""

    def __init__(self) -> None:
        self._maps: list[tuple[int, int]] = []
        self._keep: list[Any] = []

    def buffer(self, size: int, data: bytes = b"") -> int:
        """Map ``size`` bytes (holding ``data`` at its start) right before a guard page."""
        libc = _libc()
        pages = (size + PAGE_SIZE - 1) // PAGE_SIZE
        total = (pages + 1) * PAGE_SIZE
        base = libc.mmap(None, total, _PROT_RW, _MAP_PRIVATE_ANON, -1, 0)
        if base is None or base == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), "mmap failed")
        self._maps.append((base, total))
        if libc.mprotect(base + pages * PAGE_SIZE, PAGE_SIZE, _PROT_NONE) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")
        addr = base + pages * PAGE_SIZE - size
        if data:
            ctypes.memmove(addr, data, len(data))
        return addr

    def read(self, addr: int, size: int) -> bytes:
        return ctypes.string_at(addr, size) if size else b""

    def close(self) -> None:
        libc = _libc()
        for base, total in self._maps:
            libc.munmap(base, total)
        self._maps.clear()


def _input(mem: _UserMemory, value: Any) -> int:
    """The pointer for an input buffer."""
    if value is None:
        return 0
    if isinstance(value, UserPtr):
        return value.addr
    data = bytes(value)
    return mem.buffer(len(data), data)


def _cstring(mem: _UserMemory, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, UserPtr):
        return value.addr
    data = value.encode() if isinstance(value, str) else bytes(value)
    return mem.buffer(len(data) + 1, data + b"\0")


# -- map facts the kernel needs for output sizes ----------------------------------------
def kernel_map_info(fd: int) -> MapInfo:
    """OBJ_GET_INFO_BY_FD on a kernel map fd."""
    info = kernel_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd))
    assert isinstance(info, MapInfo)
    return info


def _map_facts(fd: int, key_size: int | None, value_size: int | None,
               map_type: int | None) -> tuple[int, int, int]:
    """(map_type, key_size, syscall value size) of a kernel map fd (0s when it is no map)."""
    if key_size is None or value_size is None or map_type is None:
        try:
            info = kernel_map_info(fd)
        except BpfError:
            info = None
        if info is not None:
            key_size = info.key_size if key_size is None else key_size
            value_size = info.value_size if value_size is None else value_size
            map_type = info.type if map_type is None else map_type
    ks = key_size or 0
    vs = value_size or 0
    mt = map_type or 0
    if mt in _PERCPU_TYPES:
        vs = (vs + 7) // 8 * 8 * possible_cpus()
    return mt, ks, vs


# -- the oracle ----------------------------------------------------------------------------
def _encode(attr: Any, ptrs: dict[str, int], mem: _UserMemory) -> bytearray:
    out = bytearray(ATTR_UNION_SIZE)
    for name, off, fmt, kind in LAYOUTS[type(attr)]:
        value = getattr(attr, name)
        if kind == "ptr":
            value = ptrs[name] if name in ptrs else _input(mem, value)
        elif kind == "name":
            value = value.encode() if isinstance(value, str) else bytes(value)
        if value:  # zero needs no packing: union members sharing bytes don't clobber
            struct.pack_into("<" + fmt, out, off, value)
    return out


def _fail(cmd: Cmd, err: int) -> BpfError:
    name = "ENOTSUPP" if err == ENOTSUPP else _errno.errorcode.get(err, str(err))
    return BpfError(err, f"kernel: {cmd.name} failed with {name}")


def kernel_bpf(cmd: int, attr: Any, *, key_size: int | None = None,
               value_size: int | None = None, map_type: int | None = None) -> Any:
    """Run ``cmd`` with the attr record ``attr`` on the real kernel.

    Returns what :func:`pyebpf.bpf` returns for the same call; raises BpfError
    with the kernel's errno. ``key_size``/``value_size``/``map_type`` spare the
    OBJ_GET_INFO_BY_FD query that sizes output buffers (``value_size`` as at
    creation; per-CPU expansion is applied here).
    """
    command = Cmd(cmd)
    want = record_class(command)
    if not isinstance(attr, want):
        raise TypeError(f"{command.name} takes a {want.__name__}, not {type(attr).__name__}")
    mem = _UserMemory()
    try:
        return _run(command, attr, mem, key_size, value_size, map_type)
    finally:
        mem.close()


def _run(cmd: Cmd, attr: Any, mem: _UserMemory, key_size: int | None,
         value_size: int | None, map_type: int | None) -> Any:
    ptrs: dict[str, int] = {}
    outs: dict[str, tuple[int, int]] = {}  # name -> (addr, size)

    def out(name: str, size: int) -> None:
        given = getattr(attr, name)
        if isinstance(given, UserPtr):
            ptrs[name] = given.addr
            return
        addr = mem.buffer(size)
        ptrs[name] = addr
        outs[name] = (addr, size)

    def out_buffer(name: str, given: Any, size: int) -> None:
        """An output buffer as pyebpf takes one: AUTO (provided here), a bytearray
        (filled back), a UserPtr, or None (the NULL pointer)."""
        if given is None:
            ptrs[name] = 0
        elif isinstance(given, UserPtr):
            ptrs[name] = given.addr
        else:
            if isinstance(given, bytearray):
                size = len(given)
            ptrs[name] = mem.buffer(size)
            outs[name] = (ptrs[name], size)

    mt = ks = vs = 0
    if isinstance(attr, BtfLoadAttr) and attr.btf_size is None:
        # As pyebpf takes it: the size defaults to the blob's length.
        size = 0 if attr.btf is None or isinstance(attr.btf, UserPtr) else len(bytes(attr.btf))
        attr = _replace(attr, btf_size=size)
    if isinstance(attr, ProgLoadAttr):
        insns = attr.insns
        if isinstance(insns, list | tuple):
            from ..isa.insn import encode

            insns = encode(insns)
        ptrs["insns"] = _input(mem, insns)
        if attr.insn_cnt == 0 and isinstance(insns, bytes | bytearray):
            attr = _replace(attr, insn_cnt=len(insns) // 8)
        ptrs["license"] = _cstring(mem, attr.license)
        log_given = None if (attr.log_buf is LOG_BUF_AUTO and not attr.log_size) else attr.log_buf
        out_buffer("log_buf", log_given, attr.log_size)
    elif isinstance(attr, TestRunAttr):
        for name in ("data_in", "ctx_in"):
            given = getattr(attr, name)
            ptrs[name] = _input(mem, given)
            size_name = name.replace("_in", "_size_in")
            if getattr(attr, size_name) is None:
                attr = _replace(attr, **{size_name: 0 if given is None or isinstance(
                    given, UserPtr) else len(bytes(given))})
        # Without data_size_out the kernel copies the whole output: room for the
        # largest packet a test run can make (the page it runs in).
        if attr.data_out is LOG_BUF_AUTO and attr.data_in is None:
            # Nothing went in, nothing comes out (raw_tp and syscall test runs
            # refuse a data_out buffer: EINVAL).
            attr = _replace(attr, data_out=None)
        out_buffer("data_out", attr.data_out, attr.data_size_out or 2 * PAGE_SIZE)
        if attr.ctx_out is LOG_BUF_AUTO:
            # As pyebpf's AUTO: the ctx comes back when one went in.
            if attr.ctx_in is None:
                attr = _replace(attr, ctx_out=None)
            else:  # AUTO returns the whole ctx, whatever ctx_size_out says
                attr = _replace(attr, ctx_size_out=PAGE_SIZE)
        out_buffer("ctx_out", attr.ctx_out, attr.ctx_size_out)
    elif isinstance(attr, MapElemAttr):
        ptrs["key"] = _input(mem, attr.key)
        if cmd in (Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_GET_NEXT_KEY, Cmd.MAP_LOOKUP_AND_DELETE_ELEM):
            mt, ks, vs = _map_facts(attr.map_fd, key_size, value_size, map_type)
            if cmd is Cmd.MAP_LOOKUP_ELEM and mt == MapType.BLOOM_FILTER:
                ptrs["value"] = _input(mem, attr.value)
            else:
                out("value", ks if cmd is Cmd.MAP_GET_NEXT_KEY else vs)
        else:
            ptrs["value"] = _input(mem, attr.value)
    elif isinstance(attr, MapBatchAttr):
        mt, ks, vs = _map_facts(attr.map_fd, key_size, value_size, map_type)
        ptrs["in_batch"] = _input(mem, attr.in_batch)
        if cmd in (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH):
            out("out_batch", 4 if mt in _HTAB_TYPES else max(ks, 1))
            out("keys", attr.count * ks)
            out("values", attr.count * vs)
        else:
            ptrs["out_batch"] = _input(mem, attr.out_batch)
            ptrs["keys"] = _input(mem, attr.keys)
            ptrs["values"] = _input(mem, attr.values)
    elif isinstance(attr, ObjPinAttr):
        ptrs["pathname"] = _cstring(mem, attr.pathname)
    elif isinstance(attr, InfoByFdAttr):
        # As pyebpf takes it: bytes are the caller's struct (a buffer of that length);
        # None is a zeroed struct of info_len bytes (0: the whole struct).
        if isinstance(attr.info, UserPtr):
            ptrs["info"] = attr.info.addr
        else:
            given = b"" if attr.info is None else bytes(attr.info)
            size = len(given) if attr.info is not None else max(attr.info_len, MAP_INFO_SIZE)
            addr = mem.buffer(size, given)
            ptrs["info"] = addr
            outs["info"] = (addr, size)
            if attr.info is None and not attr.info_len:
                attr = _replace(attr, info_len=MAP_INFO_SIZE)
    raw = _encode(attr, ptrs, mem)
    buf = ctypes.create_string_buffer(bytes(raw), len(raw))
    ret, err = _syscall(cmd, buf, len(raw))
    raw_after = buf.raw
    if isinstance(attr, ProgLoadAttr):
        return _load_result(attr, raw_after, outs, mem, ret, err)
    if isinstance(attr, TestRunAttr):
        _fill_back(attr, outs, mem)
    if err:
        e = _fail(cmd, err)
        if isinstance(attr, TestRunAttr) and err == _errno.ENOSPC:
            # What was run and cut, as pyebpf's ENOSPC carries it.
            e.result = _test_run_result(attr, raw_after, outs, mem)  # type: ignore[attr-defined]
        if isinstance(attr, MapBatchAttr):
            # What the kernel wrote back before failing (count, and for lookups the
            # elements done): ``partial``, as pyebpf's batch errors carry it
            # (``result`` is the same object, for older callers).
            partial = _batch_result(cmd, attr, raw_after, outs, mem, mt, ks, vs)
            e.partial = e.result = partial  # type: ignore[attr-defined]
        raise e
    if cmd in (Cmd.MAP_CREATE, Cmd.OBJ_GET) or cmd.name.endswith("_GET_FD_BY_ID"):
        return ret
    if cmd.name.endswith("_GET_NEXT_ID"):
        return struct.unpack_from("<I", raw_after, 4)[0]
    if isinstance(attr, MapElemAttr):
        if "value" in outs:
            addr, size = outs["value"]
            return mem.read(addr, size)
        return ret
    if isinstance(attr, MapBatchAttr):
        return _batch_result(cmd, attr, raw_after, outs, mem, mt, ks, vs)
    if isinstance(attr, TestRunAttr):
        return _test_run_result(attr, raw_after, outs, mem)
    if isinstance(attr, InfoByFdAttr):
        if "info" not in outs:
            return ret
        addr, size = outs["info"]
        return MapInfo.unpack(mem.read(addr, min(size, MAP_INFO_SIZE)))
    return ret


def _load_result(attr: ProgLoadAttr, raw_after: bytes, outs: dict[str, tuple[int, int]],
                 mem: _UserMemory, ret: int, err: int) -> Any:
    """PROG_LOAD as pyebpf returns it: a LoadedFd carrying the log, or a
    VerifierError carrying it."""
    from ..prog import LoadedFd

    text = ""
    if "log_buf" in outs:
        data = mem.read(*outs["log_buf"])
        if isinstance(attr.log_buf, bytearray):
            attr.log_buf[:] = data
        text = data.split(b"\0", 1)[0].decode(errors="replace")
    true_size = struct.unpack_from("<I", raw_after, 140)[0]
    if err:
        name = "ENOTSUPP" if err == ENOTSUPP else _errno.errorcode.get(err, str(err))
        raise VerifierError(err, f"kernel: PROG_LOAD failed with {name}", text)
    return LoadedFd(ret, text, true_size)


def _fill_back(attr: TestRunAttr, outs: dict[str, tuple[int, int]], mem: _UserMemory) -> None:
    """Copy the kernel's output into the caller's bytearrays."""
    for name in ("data_out", "ctx_out"):
        given = getattr(attr, name)
        if isinstance(given, bytearray) and name in outs:
            given[:] = mem.read(*outs[name])


def _test_run_result(attr: TestRunAttr, raw_after: bytes, outs: dict[str, tuple[int, int]],
                     mem: _UserMemory) -> Any:
    """PROG_TEST_RUN as pyebpf returns it (a TestRunResult)."""
    from ..prog import TestRunResult

    retval, _, data_size_out = struct.unpack_from("<III", raw_after, 4)
    duration, _, ctx_size_out = struct.unpack_from("<III", raw_after, 36)
    data_out = ctx_out = None
    if "data_out" in outs and not isinstance(attr.data_out, bytearray):
        data_out = mem.read(outs["data_out"][0], min(data_size_out, outs["data_out"][1]))
    if "ctx_out" in outs:
        ctx_out = mem.read(outs["ctx_out"][0], min(ctx_size_out, outs["ctx_out"][1]))
    return TestRunResult(retval=retval, duration=duration, data_out=data_out,
                         data_size_out=data_size_out, ctx_out=ctx_out,
                         ctx_size_out=ctx_size_out)


def _replace(attr: Any, **changes: Any) -> Any:
    import attrs

    return attrs.evolve(attr, **changes)


def _batch_result(cmd: Cmd, attr: MapBatchAttr, raw_after: bytes,
                  outs: dict[str, tuple[int, int]], mem: _UserMemory,
                  mt: int, ks: int, vs: int) -> BatchResult:
    count = struct.unpack_from("<I", raw_after, 32)[0]
    if cmd not in (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH):
        return BatchResult(count=count)
    n = min(count, attr.count)
    keys = values = b""
    out_batch = None
    if "keys" in outs:
        keys = mem.read(outs["keys"][0], n * ks)
    if "values" in outs:
        values = mem.read(outs["values"][0], n * vs)
    if "out_batch" in outs:
        out_batch = mem.read(*outs["out_batch"])
    return BatchResult(count=count, keys=keys, values=values, out_batch=out_batch)


class KernelFds:
    """Kernel fds to close together: ``with KernelFds() as fds: fd = fds.add(...)``."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def add(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def close(self, fd: int | None = None) -> None:
        """Close one tracked fd, or all of them."""
        if fd is not None:
            self.fds.remove(fd)
            os.close(fd)
            return
        while self.fds:
            os.close(self.fds.pop())

    def __enter__(self) -> KernelFds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def kernel_map(attr: MapCreateAttr) -> Iterator[int]:
    """A kernel map for the duration of a ``with`` block."""
    fd = kernel_bpf(Cmd.MAP_CREATE, attr)
    try:
        yield fd
    finally:
        os.close(fd)

