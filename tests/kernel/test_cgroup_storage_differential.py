"""Cgroup storage on pyebpf and on the real kernel: MAP_CREATE over a table of
attributes, the element commands of a map no program is attached with, and
BPF_PROG_TEST_RUN of a cgroup skb program counting in its storage: each test
run gets a fresh storage that its repetitions share, on both sides."""

from __future__ import annotations

import ctypes
import os
import struct

import pytest

from helpers._build import (
    ADD,
    KernelBackend,
    PyBackend,
    alu,
    call,
    exit_,
    ld_map_fd,
    ldx,
    mov,
    movr,
    st,
    stx,
)
from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapType, ProgType
from pyebpf.attr import TestRunAttr
from pyebpf.testing.kernel import _syscall

from .harness import MapPair, info_fields, same_errno

pytestmark = pytest.mark.kernel

T = MapType
CREATE = [
    dict(key_size=16, value_size=8), dict(key_size=8, value_size=8),
    dict(key_size=12, value_size=8), dict(key_size=16, value_size=0),
    dict(key_size=16, value_size=65407), dict(key_size=16, value_size=65408),
    dict(key_size=16, value_size=32768), dict(key_size=16, value_size=32769),
    dict(key_size=16, value_size=8, max_entries=1), dict(key_size=16, value_size=8, map_flags=1),
    dict(key_size=16, value_size=8, map_flags=1 << 7),
    dict(key_size=16, value_size=8, map_flags=3 << 7),
    dict(key_size=16, value_size=8, map_flags=1 << 10),
]


@pytest.mark.parametrize("map_type", [T.CGROUP_STORAGE, T.PERCPU_CGROUP_STORAGE],
                         ids=lambda t: t.name)
def test_create_matches_the_kernel(map_type: MapType) -> None:
    for kw in CREATE:
        with MapPair(MapCreateAttr(map_type=map_type, **kw)) as pair:
            same_errno(*pair.created, f"MAP_CREATE {map_type.name} {kw}")
            if pair.created[0].ok:
                _same_info(pair)


@pytest.mark.parametrize("map_type", [T.CGROUP_STORAGE, T.PERCPU_CGROUP_STORAGE],
                         ids=lambda t: t.name)
@pytest.mark.parametrize("key_size", [16, 8])
def test_element_commands_without_storage_match_the_kernel(map_type: MapType,
                                                           key_size: int) -> None:
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=8)
    with MapPair(attr) as pair:
        vs = 8 * pair.rt.nr_cpus if map_type is T.PERCPU_CGROUP_STORAGE else 8
        key = bytes(key_size)
        for cmd, fields in [
            (Cmd.MAP_LOOKUP_ELEM, dict(key=key)),
            (Cmd.MAP_UPDATE_ELEM, dict(key=key, value=bytes(vs))),
            (Cmd.MAP_UPDATE_ELEM, dict(key=key, value=bytes(vs), flags=1)),
            (Cmd.MAP_UPDATE_ELEM, dict(key=key, value=bytes(vs), flags=2)),
            (Cmd.MAP_UPDATE_ELEM, dict(key=key, value=bytes(vs), flags=3)),
            (Cmd.MAP_DELETE_ELEM, dict(key=key)),
            (Cmd.MAP_GET_NEXT_KEY, dict(key=None)),
            (Cmd.MAP_GET_NEXT_KEY, dict(key=key)),
            (Cmd.MAP_LOOKUP_AND_DELETE_ELEM, dict(key=key)),
        ]:
            py, k = pair.elem(cmd, **fields)
            same_errno(py, k, f"{map_type.name} {cmd.name} {fields}")


def _kernel_test_run(prog_fd: int, data: bytes, repeat: int) -> int:
    """BPF_PROG_TEST_RUN with data_in and repeat on the kernel; the retval."""
    buf = ctypes.create_string_buffer(data, len(data))
    attr = ctypes.create_string_buffer(struct.pack("<IIIIQQI", prog_fd, 0, len(data), 0,
                                                   ctypes.addressof(buf), 0, repeat), 80)
    ret, err = _syscall(Cmd.PROG_TEST_RUN, attr, 80)
    assert ret == 0, os.strerror(err)
    return int(struct.unpack_from("<I", attr.raw, 4)[0])


def _counter(map_fd: int, out_fd: int) -> list:
    """p = bpf_get_local_storage(map, 0); out[0] = ++*(u64 *)p; return 1 (a cgroup skb
    program returns 0 or 1: the count goes out through an array)."""
    return [*ld_map_fd(1, map_fd), mov(2, 0), call(81), ldx(8, 6, 0, 0), alu(ADD, 6, 1),
            stx(8, 0, 6, 0), st(4, 10, -4, 0), *ld_map_fd(1, out_fd), movr(2, 10),
            alu(ADD, 2, -4), movr(3, 10), alu(ADD, 3, -16), stx(8, 10, 6, -16), mov(4, 0),
            call(2), mov(0, 1), exit_()]


@pytest.mark.parametrize("map_type", [T.CGROUP_STORAGE, T.PERCPU_CGROUP_STORAGE],
                         ids=lambda t: t.name)
def test_test_run_storage_matches_the_kernel(map_type: MapType) -> None:
    results = []
    for be in (KernelBackend(), PyBackend()):
        try:
            m = be.map_create(map_type, 16, 8, 0)
            out = be.map_create(MapType.ARRAY, 4, 8, 1)
            prog = be.load(_counter(m, out), ProgType.CGROUP_SKB)
            got = []
            for repeat in (1, 3, 2, 1):
                if isinstance(be, PyBackend):
                    attr = TestRunAttr(prog_fd=prog, data_in=bytes(64), repeat=repeat)
                    retval = be.b(Cmd.PROG_TEST_RUN, attr).retval
                else:
                    retval = _kernel_test_run(prog, bytes(64), repeat)
                assert retval == 1
                got.append(int.from_bytes(be.lookup(out, bytes(4), 8), "little"))
            results.append(got)
        finally:
            if isinstance(be, PyBackend):
                be.close()
            else:
                for fd in be.fds:
                    os.close(fd)
    assert results[1] == results[0] == [1, 3, 2, 1]


def _same_info(pair: MapPair) -> None:
    """OBJ_GET_INFO_BY_FD gives the same bpf_map_info on both sides (ids aside)."""
    py, k = pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
    same_errno(py, k, "OBJ_GET_INFO_BY_FD")
    assert info_fields(py.value) == info_fields(k.value)


@pytest.mark.parametrize("second", [T.CGROUP_STORAGE, T.PERCPU_CGROUP_STORAGE, None],
                         ids=["same-type", "other-type", "same-map"])
def test_one_storage_map_per_type_matches_the_kernel(second: MapType | None) -> None:
    """A program may use one cgroup storage map of each type (EBUSY at load)."""
    outcomes = []
    for be in (KernelBackend(), PyBackend()):
        try:
            first = be.map_create(T.CGROUP_STORAGE, 16, 8, 0)
            other = first if second is None else be.map_create(second, 16, 8, 0)
            prog = [*ld_map_fd(1, first), mov(2, 0), call(81), *ld_map_fd(1, other), mov(2, 0),
                    call(81), mov(0, 1), exit_()]
            try:
                be.load(prog, ProgType.CGROUP_SKB)
                outcomes.append(0)
            except OSError as e:
                outcomes.append(e.errno)
        finally:
            if isinstance(be, PyBackend):
                be.close()
            else:
                for fd in be.fds:
                    os.close(fd)
    assert outcomes[1] == outcomes[0]
