"""bpf_seq_printf_btf in a map element iterator (examples/iter_btf_show.o): every
element rendered as the kernel struct it holds, under the flags its key gives;
on pyebpf, and the same bytes read from the real kernel."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyebpf import Runtime, bpf
from pyebpf.attr import MapCreateAttr, MapElemAttr
from pyebpf.btf import BtfKind
from pyebpf.elf import load_spec
from pyebpf.kernel_btf import kernel_btf
from pyebpf.testing.kernel import kernel_available, kernel_bpf, kernel_close
from pyebpf.uapi import AttachType, Cmd, MapType

from ._iter import kernel_read_map_iter, link, open_iter

EXAMPLE = Path(__file__).parents[2] / "examples" / "iter_btf_show.o"
#: key -> (pkts_acked, rtt_us, in_flight); the key's low 4 bits are the BTF_F_* flags.
SAMPLES = {0: (1, -2, 3), 1: (1, -2, 3), 2: (0, 5, 0), 3: (7, 0, 0), 8: (0, 0, 0),
           9: (0, 0, 0), 11: (4, 4, 4), 16: (0, 0, 0), 17: (2, 0, 9)}
MAX = 20


def _fill(update: Callable[[int, Any], Any], mfd: int) -> None:
    for key in range(MAX):
        value = struct.pack("<IiI", *SAMPLES.get(key, (0, 0, 0)))
        update(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=mfd, key=struct.pack("<I", key),
                                                value=value))


def _pyebpf_text() -> bytes:
    from pyebpf.collection import load_object
    from pyebpf.links.iter import iter_read_all

    rt = Runtime()
    rt.verifier = "kernel"
    mfd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                            value_size=12, max_entries=MAX), runtime=rt)
    _fill(lambda cmd, attr: bpf(cmd, attr, runtime=rt), mfd)
    with load_object(EXAMPLE, runtime=rt, target_btf=kernel_btf(),
                     programs=["show_samples"]) as o:
        fd = open_iter(rt, link(rt, o.programs["show_samples"].fd, mfd))
        return iter_read_all(rt, fd)


def test_iterator_renders_each_element_under_its_keys_flags() -> None:
    lines = _pyebpf_text().decode().split(" -> 0\n")
    assert lines[0] == ("(struct ack_sample){\n .pkts_acked = (u32)1,\n"
                        " .rtt_us = (s32)-2,\n .in_flight = (u32)3,\n}\n")
    assert lines[1] == ("(struct ack_sample){.pkts_acked = (u32)1,.rtt_us = (s32)-2,"
                        ".in_flight = (u32)3,}")
    assert lines[2] == "{\n 5,\n}\n"  # NONAME, zeros left out
    assert lines[9] == ("(struct ack_sample){.pkts_acked = (u32)0,.rtt_us = (s32)0,"
                        ".in_flight = (u32)0,}")  # COMPACT | ZERO
    assert lines[11] == "{4,4,4,}"  # COMPACT | NONAME | ZERO
    assert lines[16] == "(struct ack_sample){\n}\n"


@pytest.mark.kernel
def test_iterator_text_matches_kernel() -> None:
    from kfuncs._kprog import _vmlinux, kernel_load_spec_program

    if not kernel_available():
        pytest.skip("the kernel's bpf() is not available here")
    vmlinux = _vmlinux()
    assert vmlinux is not None
    target = vmlinux.find("bpf_iter_bpf_map_elem", BtfKind.FUNC)
    assert target is not None
    mfd = kernel_bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                                   value_size=12, max_entries=MAX))
    fds: list[int] = []
    try:
        _fill(kernel_bpf, mfd)
        spec = load_spec(EXAMPLE, target_btf=vmlinux)
        r = kernel_load_spec_program(spec, "show_samples", run=False,
                                     expected_attach_type=AttachType.TRACE_ITER,
                                     attach_btf_id=target.id, keep=fds)
        assert r.accepted, r.log
        text = kernel_read_map_iter(fds[0], mfd, fds)
    finally:
        for fd in fds:
            os.close(fd)
        kernel_close(mfd)
    assert _pyebpf_text() == text
