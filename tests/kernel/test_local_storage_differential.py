"""Socket, task, inode and cgroup storage on pyebpf and on the real kernel.

MAP_CREATE (with the same BTF loaded on both sides) over a table of
attributes, then the element commands with fds of every kind in the key
(the map's own fd, a closed fd, a cgroup v2 directory) and every update
flag: the same errno, the same values, step by step.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

import attrs
import pytest

from helpers._build import (
    ADD,
    AND,
    JEQ,
    JNE,
    LSH,
    OR,
    Asm,
    KernelBackend,
    PyBackend,
    alu,
    alur,
    call,
    exit_,
    ld_map_fd,
    ldx,
    mov,
    movr,
    stx,
)
from pyebpf import Cmd, MapCreateAttr, MapElemAttr, MapType, ProgType, Runtime, bpf
from pyebpf.attr import BtfLoadAttr, TestRunAttr
from pyebpf.btf_build import BtfBuilder
from pyebpf.maps.cgroup_array import cgroup_open
from pyebpf.testing.kernel import _syscall, kernel_bpf, kernel_bpf_raw

from .harness import BAD_FD, MapPair, on_kernel, on_pyebpf, same, same_errno

pytestmark = pytest.mark.kernel

T = MapType
TYPES = [T.SK_STORAGE, T.TASK_STORAGE, T.INODE_STORAGE, T.CGRP_STORAGE]


def _btf() -> tuple[bytes, int, int, int]:
    b = BtfBuilder()
    i32 = b.int_("int", 4, signed=True)
    u64 = b.int_("long", 8)
    st = b.struct("val", [("a", u64)])
    return b.encode(), i32, u64, st


class Btfs:
    """The same BTF loaded on pyebpf and on the kernel."""

    def __init__(self, rt: Runtime) -> None:
        blob, self.i32, self.u64, self.st = _btf()
        self.py_fd = bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=blob), runtime=rt)
        buf = ctypes.create_string_buffer(blob, len(blob))
        self.k_fd, err = kernel_bpf_raw(Cmd.BTF_LOAD, struct.pack(
            "<QQIII", ctypes.addressof(buf), 0, len(blob), 0, 0).ljust(160, b"\0"))
        assert err == 0, os.strerror(err)


class BtfMapPair(MapPair):
    """A MapPair whose attr differs per side in btf_fd only."""

    def __init__(self, rt: Runtime, btfs: Btfs, map_type: MapType, **kw: int) -> None:
        fields = dict(key_size=4, value_size=8, map_flags=1, btf_key_type_id=btfs.i32,
                      btf_value_type_id=btfs.u64) | kw
        self.rt = rt
        self.attr = MapCreateAttr(map_type=map_type, btf_fd=btfs.py_fd, **fields)
        py = on_pyebpf(rt, Cmd.MAP_CREATE, self.attr)
        k = on_kernel(Cmd.MAP_CREATE, attrs.evolve(self.attr, btf_fd=btfs.k_fd))
        self.py_fd = py.value if py.ok else None
        self.k_fd = k.value if k.ok else None
        self.created = (py, k)
        self.sizes = {"key_size": fields["key_size"], "value_size": fields["value_size"],
                      "map_type": map_type}


CREATE = [
    {}, dict(map_flags=0), dict(map_flags=1 | 1 << 9), dict(map_flags=1 | 1 << 3),
    dict(max_entries=1), dict(key_size=8), dict(btf_key_type_id=0),
    dict(value_size=65536), dict(value_size=0),
]


@pytest.mark.parametrize("map_type", TYPES, ids=lambda t: t.name)
def test_create_matches_the_kernel(map_type: MapType) -> None:
    rt = Runtime()
    btfs = Btfs(rt)
    try:
        for kw in CREATE:
            with BtfMapPair(rt, btfs, map_type, **kw) as pair:
                same_errno(*pair.created, f"MAP_CREATE {map_type.name} {kw}")
    finally:
        os.close(btfs.k_fd)


def _cgroup2_root() -> Path | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    return None


@pytest.mark.parametrize("map_type", TYPES, ids=lambda t: t.name)
def test_element_commands_match_the_kernel(map_type: MapType) -> None:
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    rt = Runtime()
    btfs = Btfs(rt)
    k_cg = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    p_cg = cgroup_open(rt, 1)
    try:
        with BtfMapPair(rt, btfs, map_type) as pair:
            assert pair.py_fd is not None and pair.k_fd is not None
            for owner in ("map", "bad", "cgroup"):
                def key(fd: int, owner: str = owner) -> bytes:
                    mine = fd == pair.py_fd
                    v = {"map": fd, "bad": BAD_FD, "cgroup": p_cg if mine else k_cg}[owner]
                    return struct.pack("<i", v)

                steps = [("lookup", 0), ("update", 2), ("update", 9), ("update", 0),
                         ("lookup", 0), ("update", 1), ("update", 2), ("delete", 0),
                         ("delete", 0), ("update", 1), ("next", 0)]
                for n, (op, flags) in enumerate(steps):
                    value = struct.pack("<Q", 0x1111 * (n + 1))
                    cmd = {"lookup": Cmd.MAP_LOOKUP_ELEM, "update": Cmd.MAP_UPDATE_ELEM,
                           "delete": Cmd.MAP_DELETE_ELEM, "next": Cmd.MAP_GET_NEXT_KEY}[op]

                    def make(fd: int, op: str = op, flags: int = flags,
                             value: bytes = value) -> MapElemAttr:
                        if op == "update":
                            return MapElemAttr(map_fd=fd, key=key(fd), value=value,
                                               flags=flags)
                        return MapElemAttr(map_fd=fd, key=key(fd))

                    py, k = pair.run(cmd, make)
                    check = same if op == "lookup" else same_errno
                    check(py, k, f"{map_type.name} {owner} {op} flags={flags}")
    finally:
        os.close(k_cg)
        os.close(btfs.k_fd)


def _sk_storage_prog(map_fd: int) -> list:
    """tc: n = ++*bpf_sk_storage_get(map, skb->sk, NULL, F_CREATE); then delete it twice
    at the 3rd run: r0 = n | delete results << 8 (100: no sk, 200: NULL storage)."""
    a = Asm()
    a(ldx(8, 6, 1, 168))
    a.jmp(JEQ, 6, 0, "nosk")
    a(*ld_map_fd(1, map_fd), movr(2, 6), mov(3, 0), mov(4, 1), call(107))
    a.jmp(JEQ, 0, 0, "null")
    a(ldx(8, 7, 0, 0), alu(ADD, 7, 1), stx(8, 0, 7, 0))
    a.jmp(JNE, 7, 3, "out")
    a(*ld_map_fd(1, map_fd), movr(2, 6), call(108), alu(AND, 0, 0xFF), alu(LSH, 0, 8),
      alur(OR, 7, 0), *ld_map_fd(1, map_fd), movr(2, 6), call(108), alu(AND, 0, 0xFF),
      alu(LSH, 0, 16), alur(OR, 7, 0))
    a.label("out")
    a(movr(0, 7), exit_())
    a.label("nosk")
    a(mov(0, 100), exit_())
    a.label("null")
    a(mov(0, 200), exit_())
    return a.build()


def test_sk_storage_helpers_match_the_kernel() -> None:
    """A test run's socket is new per BPF_PROG_TEST_RUN: its storage counts the
    repetitions of one command, then starts again."""
    results = []
    for be in (KernelBackend(), PyBackend()):
        rt = be.rt if isinstance(be, PyBackend) else Runtime()
        btfs = Btfs(rt)
        btf_fd = btfs.py_fd if isinstance(be, PyBackend) else btfs.k_fd
        try:
            attr = MapCreateAttr(map_type=T.SK_STORAGE, key_size=4, value_size=8, map_flags=1,
                                 btf_fd=btf_fd, btf_key_type_id=btfs.i32,
                                 btf_value_type_id=btfs.u64)
            if isinstance(be, PyBackend):
                m = bpf(Cmd.MAP_CREATE, attr, runtime=rt)
            else:
                m = be._keep(kernel_bpf(Cmd.MAP_CREATE, attr))
            prog = be.load(_sk_storage_prog(m), ProgType.SCHED_CLS)
            results.append([_test_run(be, prog, repeat) for repeat in (1, 2, 3, 1)])
        finally:
            os.close(btfs.k_fd)
            if isinstance(be, PyBackend):
                be.close()
            else:
                for fd in be.fds:
                    os.close(fd)
    assert results[1] == results[0]


def _test_run(be: KernelBackend | PyBackend, prog_fd: int, repeat: int) -> int:
    data = bytes(14) + bytes([0x45]) + bytes(49)
    if isinstance(be, PyBackend):
        return int(be.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog_fd, data_in=data,
                                                        repeat=repeat)).retval)
    buf = ctypes.create_string_buffer(data, len(data))
    attr = ctypes.create_string_buffer(struct.pack("<IIIIQQI", prog_fd, 0, len(data), 0,
                                                   ctypes.addressof(buf), 0, repeat), 80)
    ret, err = _syscall(Cmd.PROG_TEST_RUN, attr, 80)
    assert ret == 0, os.strerror(err)
    return int(struct.unpack_from("<I", attr.raw, 4)[0])
