"""CGROUP_SYSCTL programs and the cgroup hook runs they answer, on pyebpf or on the
real kernel (the same scenario on both: tests/kernel/test_cgroup_sysctl_differential.py).

A *side* loads raw instructions, attaches them to a cgroup of its own
(BPF_CGROUP_SYSCTL, ALLOW_MULTI) and makes a task of that cgroup read or write
a sysctl: :class:`PySysctlSide` through :meth:`pyebpf.links.cgroup.Cgroup.sysctl`,
:class:`KernelSysctlSide` with a forked child moved into a fresh cgroup v2
directory that reads or writes ``/proc/sys/kernel/domainname`` in a UTS
namespace of its own (so the machine's own domain name never changes).

An access reports ``(errno or 0, value the sysctl holds afterwards)``; on
pyebpf the value is what the hook hands the sysctl's handler, read back as
``proc_dostring`` stores it (up to a NUL or newline, 64 bytes at most).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from typing import Any

from pyebpf import MapType, ProgType
from pyebpf.attr import ProgAttachAttr
from pyebpf.links import cgroup_root
from pyebpf.uapi import AttachFlags, AttachType, Cmd

from ._build import JEQ, Asm, Insn, KernelBackend, PyBackend, ld_map_fd, mov, movr, st, stx
from ._build import call as call_
from ._build import exit_ as exit_insn

SYSCTL = "kernel/domainname"
#: __NEW_UTS_LEN + 1: the size of the domainname string proc_dostring keeps.
UTS_LEN = 65
CLONE_NEWUTS = 0x04000000
F_GET_NAME, F_GET_CUR, F_GET_NEW, F_SET_NEW = 101, 102, 103, 104
F_GET_RETVAL, F_SET_RETVAL = 186, 187


def s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def helper_call_prog(map_fd: int, func_id: int, size: int, arg4: int | None = None,
                     ret: int = 1, retval: int | None = None) -> list[Insn]:
    """Look up key 0 of ``map_fd``; call ``func_id(ctx, value + 8, size[, arg4])``;
    store r0 at value[0:8]; optionally bpf_set_retval(``retval``); return ``ret``."""
    p = Asm()
    p(movr(6, 1), st(4, 10, -4, 0), *[ld_map_fd(1, map_fd)], movr(2, 10),
      Insn(0x07, 2, 0, 0, -4), call_(1))
    p.jmp(JEQ, 0, 0, "out")
    p(movr(7, 0), movr(1, 6), movr(2, 7), Insn(0x07, 2, 0, 0, 8), mov(3, size))
    if arg4 is not None:
        p(mov(4, arg4))
    p(call_(func_id), stx(8, 7, 0, 0))
    p.label("out")
    if retval is not None:
        p(mov(1, retval), call_(F_SET_RETVAL))
    p(mov(0, ret), exit_insn())
    return p.build()


def retval_prog(map_fd: int, slot: int, ret: int, retval: int | None = None) -> list[Insn]:
    """Store bpf_get_retval() at value[8*slot]; then maybe bpf_set_retval; return ``ret``."""
    p = Asm()
    p(st(4, 10, -4, 0), *[ld_map_fd(1, map_fd)], movr(2, 10), Insn(0x07, 2, 0, 0, -4),
      call_(1))
    p.jmp(JEQ, 0, 0, "out")
    p(movr(7, 0), call_(F_GET_RETVAL), stx(8, 7, 0, 8 * slot))
    p.label("out")
    if retval is not None:
        p(mov(1, retval), call_(F_SET_RETVAL))
    p(mov(0, ret), exit_insn())
    return p.build()


def dostring(value: bytes) -> bytes:
    """What proc_dostring keeps of a written string: up to a NUL or newline,
    UTS_LEN - 1 bytes at most."""
    out = bytearray()
    for c in value:
        if c in (0, 10) or len(out) >= UTS_LEN - 1:
            break
        out.append(c)
    return bytes(out)


class PySysctlSide:
    """pyebpf: a cgroup of a fresh Runtime; the sysctl starts as the machine's."""

    name = "pyebpf"

    def __init__(self, current: bytes) -> None:
        self.be = PyBackend()
        self.cg = cgroup_root(self.be.rt).mkdir("sysctl_test")
        self.current = current  # what the sysctl reads as, "(none)\n"

    def map(self, value_size: int) -> int:
        return self.be.map_create(MapType.ARRAY, 4, value_size, 1)

    def load(self, insns: list[Insn]) -> int:
        return self.be.load(insns, ProgType.CGROUP_SYSCTL,
                            expected_attach_type=AttachType.CGROUP_SYSCTL)

    def attach(self, prog: int) -> None:
        self.be.b(Cmd.PROG_ATTACH, ProgAttachAttr(
            target_fd=self.cg.open(), attach_bpf_fd=prog, attach_type=AttachType.CGROUP_SYSCTL,
            attach_flags=AttachFlags.ALLOW_MULTI))

    def put(self, map_fd: int, value: bytes) -> None:
        self.be.update(map_fd, bytes(4), value)

    def get(self, map_fd: int, size: int) -> bytes:
        return self.be.lookup(map_fd, bytes(4), size)

    def access(self, write: bytes | None) -> tuple[int, bytes]:
        res = self.cg.sysctl(SYSCTL, write=write is not None, value=write or b"",
                             current=self.current)
        err = -res.retval if res.retval < 0 else 0
        held = self.current.rstrip(b"\n")
        if res.value is not None:
            held = dostring(res.value)
        return err, held

    def close(self) -> None:
        self.be.close()


class KernelSysctlSide:
    """The real kernel: a cgroup v2 directory; a forked child in it accesses the
    sysctl in a UTS namespace of its own and reports (errno, value after)."""

    name = "kernel"
    ROOT = "/sys/fs/cgroup/unified"

    def __init__(self) -> None:
        from pyebpf.testing.kernel import kernel_bpf

        self.kbpf = kernel_bpf
        self.be = KernelBackend()
        root = self.ROOT if os.path.isdir(self.ROOT) else "/sys/fs/cgroup"
        self.root = root
        self.path = os.path.join(root, f"pyebpf_sysctl_{os.getpid()}")
        os.mkdir(self.path)
        self.cg_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        self.progs: list[int] = []

    def map(self, value_size: int) -> int:
        return self.be.map_create(MapType.ARRAY, 4, value_size, 1)

    def load(self, insns: list[Insn]) -> int:
        return self.be.load(insns, ProgType.CGROUP_SYSCTL,
                            expected_attach_type=AttachType.CGROUP_SYSCTL)

    def attach(self, prog: int) -> None:
        self.kbpf(Cmd.PROG_ATTACH, ProgAttachAttr(
            target_fd=self.cg_fd, attach_bpf_fd=prog, attach_type=AttachType.CGROUP_SYSCTL,
            attach_flags=AttachFlags.ALLOW_MULTI))
        self.progs.append(prog)

    def put(self, map_fd: int, value: bytes) -> None:
        self.be.update(map_fd, bytes(4), value)

    def get(self, map_fd: int, size: int) -> bytes:
        return self.be.lookup(map_fd, bytes(4), size)

    def access(self, write: bytes | None) -> tuple[int, bytes]:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 0
            try:
                os.close(rfd)
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.unshare(CLONE_NEWUTS):
                    os._exit(90)
                with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                err = 0
                try:
                    fd = os.open(f"/proc/sys/{SYSCTL}", os.O_WRONLY if write is not None
                                 else os.O_RDONLY)
                    try:
                        if write is not None:
                            os.write(fd, write)
                        else:
                            os.read(fd, 256)
                    finally:
                        os.close(fd)
                except OSError as e:
                    err = e.errno or errno.EIO
                with open(os.path.join(self.root, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))  # back out: the read-back runs no program
                with open(f"/proc/sys/{SYSCTL}", "rb") as f:
                    held = f.read().rstrip(b"\n")
                os.write(wfd, bytes([err]) + held)
            except BaseException:
                code = 91
            os._exit(code)
        os.close(wfd)
        data = b""
        while chunk := os.read(rfd, 4096):
            data += chunk
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        return data[0], data[1:]

    def close(self) -> None:
        for prog in self.progs:
            with contextlib.suppress(OSError):
                self.kbpf(Cmd.PROG_DETACH, ProgAttachAttr(
                    target_fd=self.cg_fd, attach_bpf_fd=prog,
                    attach_type=AttachType.CGROUP_SYSCTL))
        os.close(self.cg_fd)
        os.rmdir(self.path)
        self.be.close()


# -- scenarios: each returns plain data, compared between the sides ------------------------------
def helper_call(side: Any, func_id: int, size: int, arg4: int | None = None,
                write: bytes | None = None, prefill: bytes = b"", ret: int = 1,
                retval: int | None = None) -> tuple[int, bytes, tuple[int, bytes]]:
    """One program calls ``func_id`` on a buffer of ``size`` bytes prefilled with
    ``prefill`` (then 0xAA); (its r0 as s64, the buffer after, the access's outcome)."""
    m = side.map(8 + size)
    side.put(m, bytes(8) + (prefill + b"\xaa" * size)[:size])
    side.attach(side.load(helper_call_prog(m, func_id, size, arg4, ret, retval)))
    outcome = side.access(write)
    value = side.get(m, 8 + size)
    r0 = int.from_bytes(value[:8], "little", signed=True)
    return r0, value[8:], outcome


def retval_chain(side: Any, steps: list[tuple[int, int | None]],
                 write: bytes | None = None) -> tuple[list[int], tuple[int, bytes]]:
    """Programs in attach order, each (return value, retval to set or None),
    each recording the bpf_get_retval() it saw; (what they saw, the outcome)."""
    m = side.map(8 * len(steps))
    side.put(m, bytes(8 * len(steps)))
    for i, (ret, retval) in enumerate(steps):
        side.attach(side.load(retval_prog(m, i, ret, retval)))
    outcome = side.access(write)
    value = side.get(m, 8 * len(steps))
    seen = [int.from_bytes(value[8 * i:8 * i + 8], "little", signed=True)
            for i in range(len(steps))]
    return seen, outcome

