"""Stack trace maps on pyebpf and on the real kernel: MAP_CREATE and the element
commands of an empty map fail (or succeed) alike; bpf_get_stackid's error
paths, run from a raw tracepoint program, return the same errno."""

from __future__ import annotations

import ctypes
import os
import struct

import pytest

from helpers._build import KernelBackend, PyBackend, call, exit_, ld_map_fd, lddw
from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapType, ProgType
from pyebpf.attr import TestRunAttr
from pyebpf.testing.kernel import _syscall

from .harness import MapPair, info_fields, same_errno

pytestmark = pytest.mark.kernel

CREATE = [
    dict(key_size=4, value_size=8, max_entries=4),
    dict(key_size=4, value_size=4, max_entries=4),
    dict(key_size=4, value_size=12, max_entries=4),
    dict(key_size=8, value_size=8, max_entries=4),
    dict(key_size=4, value_size=8, max_entries=0),
    dict(key_size=4, value_size=127 * 8, max_entries=4),
    dict(key_size=4, value_size=128 * 8, max_entries=4),
    dict(key_size=4, value_size=32, max_entries=4, map_flags=1 << 5),
    dict(key_size=4, value_size=48, max_entries=4, map_flags=1 << 5),
    dict(key_size=4, value_size=128 * 32, max_entries=4, map_flags=1 << 5),
    dict(key_size=4, value_size=8, max_entries=4, map_flags=1 << 3),
    dict(key_size=4, value_size=8, max_entries=4, map_flags=1 << 7),
    dict(key_size=4, value_size=8, max_entries=4, map_flags=1),
    dict(key_size=4, value_size=8, max_entries=(1 << 31) + 1),
]


@pytest.mark.parametrize("kw", CREATE, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_create_matches_the_kernel(kw: dict) -> None:
    with MapPair(MapCreateAttr(map_type=MapType.STACK_TRACE, **kw)) as pair:
        py, k = pair.created
        same_errno(py, k, f"MAP_CREATE {kw}")
        if py.ok:
            _same_info(pair)


def _u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


@pytest.mark.parametrize("max_entries", [1, 3, 4])
def test_element_commands_on_an_empty_map_match_the_kernel(max_entries: int) -> None:
    attr = MapCreateAttr(map_type=MapType.STACK_TRACE, key_size=4, value_size=16,
                         max_entries=max_entries)
    with MapPair(attr) as pair:
        for cmd, fields in [
            (Cmd.MAP_LOOKUP_ELEM, dict(key=_u32(0))),
            (Cmd.MAP_LOOKUP_ELEM, dict(key=_u32(100))),
            (Cmd.MAP_UPDATE_ELEM, dict(key=_u32(0), value=bytes(16))),
            (Cmd.MAP_DELETE_ELEM, dict(key=_u32(0))),
            (Cmd.MAP_DELETE_ELEM, dict(key=_u32(3))),
            (Cmd.MAP_DELETE_ELEM, dict(key=_u32(4))),
            (Cmd.MAP_GET_NEXT_KEY, dict(key=None)),
            (Cmd.MAP_GET_NEXT_KEY, dict(key=_u32(7))),
            (Cmd.MAP_LOOKUP_AND_DELETE_ELEM, dict(key=_u32(0))),
        ]:
            py, k = pair.elem(cmd, **fields)
            same_errno(py, k, f"{cmd.name} {fields}")


def _raw_tp_run(backend: PyBackend | KernelBackend, fd: int) -> int:
    """BPF_PROG_TEST_RUN of a raw tracepoint program without args; its retval."""
    if isinstance(backend, PyBackend):
        return int(backend.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd)).retval)
    buf = ctypes.create_string_buffer(struct.pack("<I", fd), 80)
    ret, err = _syscall(Cmd.PROG_TEST_RUN, buf, 80)
    assert ret == 0, os.strerror(err)
    return int(struct.unpack_from("<I", buf.raw, 4)[0])


def _close(be: PyBackend | KernelBackend) -> None:
    if isinstance(be, PyBackend):
        be.close()
        return
    for fd in be.fds:
        os.close(fd)
    be.fds.clear()


@pytest.mark.parametrize("flags", [1 << 11, 1 << 40, 255, 0xFF | 1 << 8, 1 << 12])
def test_get_stackid_errors_match_the_kernel(flags: int) -> None:
    """Unknown flags: -EINVAL; skipping more frames than the stack has: -EFAULT."""
    rets = []
    for be in (KernelBackend(), PyBackend()):
        try:
            m = be.map_create(MapType.STACK_TRACE, 4, 8 * 4, 8)
            prog = be.load([*ld_map_fd(2, m), *lddw(3, flags), call(27), exit_()],
                           ProgType.RAW_TRACEPOINT)
            rets.append(_raw_tp_run(be, prog))
        finally:
            _close(be)
    assert rets[0] == rets[1]


def _same_info(pair: MapPair) -> None:
    """OBJ_GET_INFO_BY_FD gives the same bpf_map_info on both sides (ids aside)."""
    py, k = pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
    same_errno(py, k, "OBJ_GET_INFO_BY_FD")
    assert info_fields(py.value) == info_fields(k.value)
