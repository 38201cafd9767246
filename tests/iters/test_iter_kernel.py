"""The map element iterator of examples/iter_dump.o on pyebpf and on the real kernel:
same bytes read, same values written back."""

from __future__ import annotations

import os
import struct

import pytest

from kfuncs._kprog import _vmlinux, kernel_load_spec_program
from pyebpf import Runtime, bpf
from pyebpf.attr import MapCreateAttr, MapElemAttr
from pyebpf.btf import BtfKind
from pyebpf.elf import load_spec
from pyebpf.kernel_btf import kernel_btf
from pyebpf.testing.kernel import kernel_bpf, kernel_close
from pyebpf.uapi import AttachType, Cmd, MapType

from ._iter import EXAMPLE, kernel_read_map_iter, link, open_iter

pytestmark = pytest.mark.kernel

ITEMS = {0: 5, 1: 6, 3: 1 << 40, 6: 7}


def _flags(map_type: int) -> int:
    """BPF_F_ZERO_SEED for hash maps: the same bucket order on both sides."""
    return 1 << 6 if map_type == MapType.HASH else 0


def _pyebpf_side(map_type: int) -> tuple[bytes, list[bytes]]:
    from pyebpf.collection import load_object
    from pyebpf.links.iter import iter_read_all

    rt = Runtime()
    rt.verifier = "kernel"
    mfd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=4, value_size=8,
                                            max_entries=8, map_flags=_flags(map_type)),
              runtime=rt)
    for k, v in ITEMS.items():
        bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=mfd, key=struct.pack("<I", k),
                                             value=struct.pack("<Q", v)), runtime=rt)
    with load_object(EXAMPLE, runtime=rt, target_btf=kernel_btf(),
                     programs=["dump_counts"]) as o:
        fd = open_iter(rt, link(rt, o.programs["dump_counts"].fd, mfd))
        text = iter_read_all(rt, fd)
    values = [bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=mfd, key=struct.pack("<I", k)),
                  runtime=rt) for k in sorted(ITEMS)]
    return text, values


def _kernel_side(map_type: int) -> tuple[bytes, list[bytes]]:
    vmlinux = _vmlinux()
    assert vmlinux is not None
    target = vmlinux.find("bpf_iter_bpf_map_elem", BtfKind.FUNC)
    assert target is not None
    mfd = kernel_bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=4,
                                                   value_size=8, max_entries=8,
                                                   map_flags=_flags(map_type)))
    fds: list[int] = []
    try:
        for k, v in ITEMS.items():
            kernel_bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=mfd, key=struct.pack("<I", k),
                                                        value=struct.pack("<Q", v)))
        spec = load_spec(EXAMPLE, target_btf=vmlinux)
        r = kernel_load_spec_program(spec, "dump_counts", run=False,
                                     expected_attach_type=AttachType.TRACE_ITER,
                                     attach_btf_id=target.id, keep=fds)
        assert r.accepted, r.log
        text = kernel_read_map_iter(fds[0], mfd, fds)
        values = [kernel_bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=mfd,
                                                              key=struct.pack("<I", k)))
                  for k in sorted(ITEMS)]
        return text, values
    finally:
        for fd in fds:
            os.close(fd)
        kernel_close(mfd)


@pytest.mark.parametrize("map_type", [MapType.ARRAY, MapType.HASH])
def test_map_elem_iterator_reads_and_writes_as_the_kernel(map_type: int) -> None:
    if _vmlinux() is None:
        pytest.skip("no vmlinux BTF")
    ours = _pyebpf_side(map_type)
    theirs = _kernel_side(map_type)
    assert ours == theirs
