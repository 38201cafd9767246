"""Helpers of SYSCALL programs (pyebpf.helpers.syscall_prog): bpf() from a program,
closing fds, vmlinux BTF and kallsyms lookups."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import Cmd, MapType, ProgType, Runtime, bpf
from pyebpf.attr import MapCreateAttr, MapElemAttr, ProgLoadAttr, TestRunAttr
from pyebpf.btf import BtfKind
from pyebpf.helpers import func_proto
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import kernel_btf
from pyebpf.progs.tracing_btf import func_ip

from . import syscall_prog_scenarios as S

SLEEPABLE = 1 << 4
SYS_BPF, BTF_FIND, SYS_CLOSE, KALLSYMS = 166, 167, 168, 179


def _load(rt: Runtime, text: str, flags: int = SLEEPABLE) -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SYSCALL,
                                               insns=encode(asm(text)), license="GPL",
                                               prog_flags=flags), runtime=rt))


def _run(rt: Runtime, fd: int, ctx: bytes) -> tuple[int, bytes]:
    buf = bytearray(ctx)
    r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, ctx_in=buf), runtime=rt)
    retval = r.retval - (1 << 32) if r.retval >> 31 else r.retval
    return retval, bytes(buf)


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


# -- bpf_sys_bpf -------------------------------------------------------------------------------
def _sys_bpf(rt: Runtime, cmd: int, attr: bytes, setup: str = "") -> tuple[int, bytes]:
    """(bpf_sys_bpf's r0, the attr afterwards) for a program building ``attr``."""
    text, size = S.sys_bpf_text(cmd, attr, setup)
    _, out = _run(rt, _load(rt, text), bytes(size))
    return _s64(struct.unpack_from("<Q", out)[0]), out[8:]


def test_sys_bpf_map_create_gives_the_program_an_fd() -> None:
    rt = Runtime()
    attr = struct.pack("<IIII", MapType.ARRAY, 4, 8, 2)
    fd, _ = _sys_bpf(rt, Cmd.MAP_CREATE, attr)
    assert fd > 0 and rt.fds[fd].obj.max_entries == 2


def test_sys_bpf_update_reads_key_and_value_from_the_program_memory() -> None:
    rt = Runtime()
    map_fd = int(bpf(Cmd.MAP_CREATE, MapCreateAttr(
        map_type=MapType.ARRAY, key_size=4, value_size=8, max_entries=2), runtime=rt))
    # fp-80: key (1); fp-72: value; fp-64..-32: the attr {map_fd, key, value, flags}
    setup = ("mov %r2, 1\nstxdw [%r10-80], %r2\nlddw %r2, 0xBEEF\nstxdw [%r10-72], %r2\n"
             "mov %r2, %r10\nadd %r2, -80\nstxdw [%r10-24], %r2\n"
             "mov %r2, %r10\nadd %r2, -72\nstxdw [%r10-16], %r2\n")
    attr = struct.pack("<I4xQQQ", map_fd, 0, 0, 0)
    result, _ = _sys_bpf(rt, Cmd.MAP_UPDATE_ELEM, attr, setup)
    assert result == 0
    value = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=map_fd, key=struct.pack("<I", 1)),
                runtime=rt)
    assert bytes(value) == struct.pack("<Q", 0xBEEF)


@pytest.mark.parametrize("cmd", [Cmd.MAP_LOOKUP_ELEM, Cmd.OBJ_PIN, Cmd.PROG_ATTACH,
                                 Cmd.PROG_TEST_RUN])
def test_sys_bpf_refuses_other_commands(cmd: int) -> None:
    assert _sys_bpf(Runtime(), cmd, bytes(32))[0] == -errno.EINVAL


def test_sys_bpf_returns_the_commands_errno() -> None:
    attr = struct.pack("<IIII", MapType.ARRAY, 4, 0, 2)  # value_size 0
    assert _sys_bpf(Runtime(), Cmd.MAP_CREATE, attr)[0] == -errno.EINVAL


def test_sys_bpf_needs_cap_perfmon() -> None:
    assert func_proto(SYS_BPF, ProgType.SYSCALL) is not None
    assert func_proto(SYS_BPF, ProgType.SYSCALL, cap_perfmon=False) is None
    assert func_proto(SYS_CLOSE, ProgType.SYSCALL, cap_perfmon=False) is not None


# -- bpf_sys_close -----------------------------------------------------------------------------
def test_sys_close_closes_the_fd_then_ebadf() -> None:
    rt = Runtime()
    map_fd = int(bpf(Cmd.MAP_CREATE, MapCreateAttr(
        map_type=MapType.ARRAY, key_size=4, value_size=8, max_entries=2), runtime=rt))
    prog = _load(rt, f"mov %r1, {map_fd}\ncall 168\nexit")
    assert _run(rt, prog, b"")[0] == 0
    assert map_fd not in rt.fds
    assert _run(rt, prog, b"")[0] == -errno.EBADF


# -- name lookups ------------------------------------------------------------------------------
def _lookup(func: int, name: bytes, arg3: int, arg4: str, size: int | None = None) -> bytes:
    rt = Runtime()
    _, out = _run(rt, _load(rt, S.lookup_text(func, name, arg3, arg4, size)), bytes(16))
    return out


def _find(name: bytes, kind: int, flags: int = 0, size: int | None = None) -> int:
    out = _lookup(BTF_FIND, name, kind, f"mov %r4, {flags}\n", size)
    return _s64(struct.unpack_from("<Q", out)[0])


def test_btf_find_by_name_kind_finds_vmlinux_types() -> None:
    want = kernel_btf().find("task_struct", BtfKind.STRUCT)
    assert want is not None
    assert _find(b"task_struct\0", BtfKind.STRUCT) == want.id


@pytest.mark.parametrize(("name", "kind", "flags", "size", "expect"), [
    (b"void\0", BtfKind.STRUCT, 0, None, -errno.ENOENT),  # no void: checked on 6.18
    (b"task_struct\0", 0, 0, None, -errno.ENOENT),
    (b"task_struct\0", BtfKind.UNION, 0, None, -errno.ENOENT),
    (b"no_such_type\0", BtfKind.STRUCT, 0, None, -errno.ENOENT),
    (b"task_struct\0", BtfKind.STRUCT, 1, None, -errno.EINVAL),
    (b"task_struct\0", BtfKind.STRUCT, 0, 11, -errno.EINVAL),  # not NUL-terminated
    (b"\0", BtfKind.STRUCT, 0, None, -errno.EINVAL),           # name_sz 1
])
def test_btf_find_by_name_kind_rules(name: bytes, kind: int, flags: int, size: int | None,
                                     expect: int) -> None:
    assert _find(name, kind, flags, size) == expect


def _kallsyms(name: bytes, flags: int = 0) -> tuple[int, int]:
    out = _lookup(KALLSYMS, name, flags, "mov %r4, %r10\nadd %r4, -72\n")
    return _s64(struct.unpack_from("<Q", out)[0]), struct.unpack_from("<Q", out, 8)[0]


def test_kallsyms_lookup_name_is_the_traced_function_address() -> None:
    func = kernel_btf().find("bpf_fentry_test1", BtfKind.FUNC)
    assert func is not None
    assert _kallsyms(b"bpf_fentry_test1\0") == (0, func_ip(func.id))


@pytest.mark.parametrize(("name", "flags", "expect"), [
    (b"no_such_function\0", 0, -errno.ENOENT),
    (b"bpf_fentry_test1\0", 1, -errno.EINVAL),
    (b"bpf_fentry_test1", 0, -errno.EINVAL),
])
def test_kallsyms_lookup_name_failures_zero_the_result(name: bytes, flags: int,
                                                       expect: int) -> None:
    assert _kallsyms(name, flags) == (expect, 0)
