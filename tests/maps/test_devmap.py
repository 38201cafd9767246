"""DEVMAP / DEVMAP_HASH: entries, programs in entries, lookups, bpf_redirect_map."""

from __future__ import annotations

import errno
import struct

import pytest

from helpers._build import (
    ADD,
    JEQ,
    Asm,
    PyBackend,
    alu,
    call,
    exit_,
    ld_map_fd,
    lddw,
    ldx,
    mov,
    movr,
    st,
)
from pyebpf import BpfError, Cmd, InfoByFdAttr, MapElemAttr, MapType, ProgType, bpf
from pyebpf.uapi import AttachType

U32 = 0xFFFF_FFFF
XDP_REDIRECT = 4


def _k(i: int) -> bytes:
    return i.to_bytes(4, "little")


@pytest.fixture
def be() -> PyBackend:
    return PyBackend()


def _err(be: PyBackend, cmd: Cmd, **kw: object) -> int:
    with pytest.raises(BpfError) as e:
        bpf(cmd, MapElemAttr(**kw), runtime=be.rt)
    return int(e.value.errno or 0)


def test_device_maps_are_read_only_to_programs(be: PyBackend) -> None:
    for t in (MapType.DEVMAP, MapType.DEVMAP_HASH):
        fd = be.map_create(t, 4, 4, 4)
        info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=be.rt)
        assert info.map_flags == 1 << 7


def test_devmap_entries_need_an_existing_device(be: PyBackend) -> None:
    fd = be.map_create(MapType.DEVMAP, 4, 4, 4)
    be.update(fd, _k(0), _k(1))  # the loopback device
    assert be.lookup(fd, _k(0), 4) == _k(1)
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(1), value=_k(77)) == errno.EINVAL
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(1), value=_k(1),
                flags=1) == errno.EEXIST
    be.update(fd, _k(0), _k(0))  # ifindex 0 empties the slot
    assert _err(be, Cmd.MAP_LOOKUP_ELEM, map_fd=fd, key=_k(0)) == errno.ENOENT
    be.delete(fd, _k(2))  # deleting an empty slot is fine
    assert _err(be, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=_k(4)) == errno.EINVAL


def test_devmap_entry_program_must_be_loaded_for_xdp_devmap(be: PyBackend) -> None:
    fd = be.map_create(MapType.DEVMAP, 4, 8, 2)
    plain = be.load([mov(0, 2), exit_()], ProgType.XDP)
    devmap = be.load([mov(0, 2), exit_()], ProgType.XDP,
                     expected_attach_type=AttachType.XDP_DEVMAP)
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(0),
                value=struct.pack("<Ii", 1, plain)) == errno.EINVAL
    be.update(fd, _k(0), struct.pack("<Ii", 1, devmap))
    prog_id = be.rt.fds[devmap].obj.id
    assert be.lookup(fd, _k(0), 8) == struct.pack("<II", 1, prog_id)


def test_devmap_hash_walks_buckets_newest_first(be: PyBackend) -> None:
    fd = be.map_create(MapType.DEVMAP_HASH, 4, 4, 4)
    for key in (5, 1, 9, 13):
        be.update(fd, _k(key), _k(1))
    keys, key = [], None
    while True:
        try:
            key = bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=key), runtime=be.rt)
        except BpfError:
            break
        keys.append(int.from_bytes(key, "little"))
    assert keys == [13, 9, 1, 5]  # 4 buckets: 5, 1, 9, 13 all go to bucket 1
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(2), value=_k(1)) == errno.E2BIG
    assert _err(be, Cmd.MAP_UPDATE_ELEM, map_fd=fd, key=_k(2), value=_k(0)) == errno.EINVAL
    assert _err(be, Cmd.MAP_DELETE_ELEM, map_fd=fd, key=_k(2)) == errno.ENOENT


def _redirect(map_fd: int, key: int, flags: int) -> list:
    return [*ld_map_fd(1, map_fd), mov(2, key), *lddw(3, flags), call(51), exit_()]


@pytest.mark.parametrize(("key", "flags", "want"), [
    (0, 0, XDP_REDIRECT), (1, 0, 0), (1, 2, 2), (1, 3, 3), (1, 8, XDP_REDIRECT), (0, 16, 4),
    (0, 32, 0), (1, 1 << 33, 0),
])
def test_redirect_map_returns_the_action(be: PyBackend, key: int, flags: int,
                                         want: int) -> None:
    fd = be.map_create(MapType.DEVMAP, 4, 4, 4)
    be.update(fd, _k(0), _k(1))
    prog = be.load(_redirect(fd, key, flags), ProgType.XDP)
    assert be.run(prog) == want
    vm = be.rt.fds[prog].obj.vm()
    if want == XDP_REDIRECT:
        assert vm.redirect_map == (be.rt.fds[fd].obj.id, MapType.DEVMAP)
        assert vm.redirect_info.tgt_index == key


def test_programs_read_the_devmap_value(be: PyBackend) -> None:
    """r0 = lookup(devmap, 2)->ifindex, or -1 for NULL."""
    fd = be.map_create(MapType.DEVMAP, 4, 4, 4)
    be.update(fd, _k(2), _k(1))
    a = Asm()
    a(st(4, 10, -4, 2), *ld_map_fd(1, fd), movr(2, 10), alu(ADD, 2, -4), call(1),
      movr(7, 0), mov(0, -1))
    a.jmp(JEQ, 7, 0, "out")
    a(ldx(4, 0, 7, 0))
    a.label("out")
    a(exit_())
    assert be.run(be.load(a.build(), ProgType.XDP)) == 1
