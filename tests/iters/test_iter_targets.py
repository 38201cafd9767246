"""The bpf_map iterator target, iterator link info, and who may load iterators."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import Runtime, bpf
from pyebpf.attr import MapCreateAttr
from pyebpf.errors import BpfError
from pyebpf.isa.insn import Insn as I
from pyebpf.kernel_btf import kernel_btf, kernel_struct_id
from pyebpf.links.iter import iter_read_all
from pyebpf.runtime import ObjKind
from pyebpf.uapi import Cmd, LinkType, MapType

from ._iter import link, load_iter, open_iter


def map_ids_program() -> list[I]:
    """seq_write(meta->seq, &map->id, 4) for each map; nothing for the NULL call."""
    id_off = kernel_btf().offsetof(kernel_struct_id("bpf_map"), "id")
    return [
        I(0x79, 6, 1, 0, 0),            # r6 = ctx->meta
        I(0x79, 7, 6, 0, 0),            # r7 = meta->seq
        I(0x79, 2, 1, 8, 0),            # r2 = ctx->map
        I(0x15, 2, 0, 7, 0),            # if !map goto out
        I(0x61, 3, 2, id_off, 0),       # w3 = map->id
        I(0x63, 10, 3, -4, 0),          # *(u32 *)(r10 - 4) = w3
        I(0xBF, 1, 7, 0, 0), I(0xBF, 2, 10, 0, 0), I(0x07, 2, 0, 0, -4),
        I(0xB7, 3, 0, 0, 4), I(0x85, 0, 0, 0, 127),
        I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0),   # out
    ]


@pytest.fixture
def rt() -> Runtime:
    rt = Runtime()
    rt.verifier = "kernel"
    return rt


def test_bpf_map_iterator_walks_every_map_by_id(rt: Runtime) -> None:
    fds = [bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=4,
                                             max_entries=1), runtime=rt) for _ in range(3)]
    ids = sorted(rt.get_object(fd, ObjKind.MAP)[0].id for fd in fds)
    session = open_iter(rt, link(rt, load_iter(rt, map_ids_program(), "bpf_map")))
    data = iter_read_all(rt, session)
    assert list(struct.unpack(f"<{len(data) // 4}I", data)) == ids


def test_iterator_link_info_names_the_target_and_the_map(rt: Runtime) -> None:
    from pyebpf.links.iter import IterLink

    prog = load_iter(rt, [I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)], "bpf_map_elem")
    mfd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=8,
                                            max_entries=4), runtime=rt)
    lfd = link(rt, prog, mfd)
    obj, _ = rt.get_object(lfd, ObjKind.LINK)
    assert isinstance(obj, IterLink)
    info = obj.info()
    assert info.type == LinkType.ITER
    assert info.target_name_len == len("bpf_map_elem") + 1
    assert info.map_id == rt.get_object(mfd, ObjKind.MAP)[0].id


def test_iterator_programs_need_privileges() -> None:
    rt = Runtime(privileged=False)
    with pytest.raises(BpfError) as exc:
        load_iter(rt, [I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)])
    assert exc.value.errno == errno.EPERM
