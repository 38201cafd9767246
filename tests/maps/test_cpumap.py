"""CPUMAP: queue sizes per CPU, programs for BPF_XDP_CPUMAP, the kernel's errnos."""

from __future__ import annotations

import errno
import struct

import pytest

from helpers._build import PyBackend, exit_, mov
from pyebpf import BpfError, Cmd, MapElemAttr, MapType, ProgType, bpf
from pyebpf.maps.cpumap import NR_CPUS
from pyebpf.uapi import AttachType

from ._mapops import create_errno


def _k(i: int) -> bytes:
    return i.to_bytes(4, "little")


@pytest.fixture
def be() -> PyBackend:
    return PyBackend(nr_cpus=2)


def _err(be: PyBackend, cmd: Cmd, **kw: object) -> int:
    with pytest.raises(BpfError) as e:
        bpf(cmd, MapElemAttr(**kw), runtime=be.rt)
    return int(e.value.errno or 0)


def test_create_limits(be: PyBackend) -> None:
    assert create_errno(be.rt, MapType.CPUMAP, key_size=4, value_size=4,
                        max_entries=NR_CPUS + 1) == errno.E2BIG
    assert create_errno(be.rt, MapType.CPUMAP, key_size=4, value_size=4, max_entries=1,
                        map_flags=1 << 3) == errno.EINVAL


def test_update_checks_in_the_kernels_order(be: PyBackend) -> None:
    fd = be.map_create(MapType.CPUMAP, 4, 8, 4)
    v = lambda q, prog=0: struct.pack("<Ii", q, prog)  # noqa: E731
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0), value=v(1), flags=4) == \
        errno.EINVAL
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(4), value=v(1)) == errno.E2BIG
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0), value=v(1), flags=1) == \
        errno.EEXIST
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0), value=v(16385)) == \
        errno.EOVERFLOW
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(2), value=v(1)) == errno.ENODEV
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0), value=v(1, fd)) == errno.ENOMEM
    prog = be.load([mov(0, 2), exit_()], ProgType.XDP,
                   expected_attach_type=AttachType.XDP_CPUMAP)
    be.update(fd, _k(1), v(128, prog))
    assert be.lookup(fd, _k(1), 8) == struct.pack("<II", 128, be.rt.fds[prog].obj.id)
    be.update(fd, _k(1), v(0))  # qsize 0: the slot empties
    assert _err(be, Cmd.MAP_LOOKUP_ELEM, map_fd=fd, key=_k(1)) == errno.ENOENT
    assert _err(be, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=_k(4)) == errno.EINVAL
