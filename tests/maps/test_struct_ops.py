"""BPF_MAP_TYPE_STRUCT_OPS: creation, the update that registers a table, lookup, delete."""

from __future__ import annotations

import errno
import struct

import pytest

from progs._struct_ops import (
    TCP,
    TESTMOD,
    create_map,
    load_struct_ops,
    lookup,
    ssthresh_prog,
    tcp_cc,
    undo_cwnd_prog,
    update,
    user_btf,
    value,
)
from pyebpf import ENOTSUPP, BpfError, Cmd, MapCreateAttr, MapElemAttr, MapType, Runtime, bpf
from pyebpf.maps.struct_ops import DATA_OFF, StructOpsState
from pyebpf.runtime import ObjKind
from pyebpf.struct_ops import struct_ops_type
from pyebpf.uapi import MapFlags

#: Where tcp_congestion_ops.key is in the map value (a data member init_member leaves).
_KEY = DATA_OFF + struct_ops_type(TCP).btf.offsetof(struct_ops_type(TCP).type_id,  # type: ignore[union-attr]
                                                    "key")


@pytest.fixture
def rt() -> Runtime:
    return Runtime()


def errno_of(fn, *args, **kw) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(BpfError) as e:
        fn(*args, **kw)
    return e.value.errno


# -- MAP_CREATE ------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "err"), [
    ({"key_size": 8}, errno.EINVAL),
    ({"max_entries": 2}, errno.EINVAL),
    ({"map_flags": int(MapFlags.NO_PREALLOC)}, errno.EINVAL),
    ({"value_size": 8}, errno.EINVAL),
    ({"btf_vmlinux_value_type_id": 1}, ENOTSUPP),  # "int" is no struct_ops value type
])
def test_create_checks(rt: Runtime, change: dict[str, int], err: int) -> None:
    assert errno_of(create_map, rt, TCP, **change) == err


def test_create_without_value_type_id_is_einval(rt: Runtime) -> None:
    attr = MapCreateAttr(map_type=MapType.STRUCT_OPS, key_size=4, value_size=256,
                         max_entries=1)
    assert errno_of(bpf, Cmd.MAP_CREATE, attr, runtime=rt) == errno.EINVAL


def test_create_needs_cap_bpf(rt: Runtime) -> None:
    btf_fd = user_btf(rt)
    rt.privileged = False
    assert errno_of(create_map, rt, TCP, btf_fd=btf_fd) == errno.EPERM


def test_create_needs_a_user_btf_fd(rt: Runtime) -> None:
    assert errno_of(create_map, rt, TCP, btf_fd=99) == errno.EBADF


def test_info_reports_the_value_type(rt: Runtime) -> None:
    from pyebpf import InfoByFdAttr

    fd = create_map(rt, TCP)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=rt)
    assert info.btf_vmlinux_value_type_id == struct_ops_type(TCP).value_type_id  # type: ignore[union-attr]


# -- lookup / next key before an update ----------------------------------------------------------
def test_lookup_before_update_is_all_zero(rt: Runtime) -> None:
    fd = create_map(rt, TCP)
    assert lookup(rt, fd) == bytes(256)
    assert errno_of(lookup, rt, fd, 1) == errno.ENOENT


def test_next_key(rt: Runtime) -> None:
    fd = create_map(rt, TCP)
    nk = bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=None), runtime=rt)
    assert nk == bytes(4)
    assert errno_of(bpf, Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=bytes(4)),
                    runtime=rt) == errno.ENOENT


def test_freeze_is_enotsupp(rt: Runtime) -> None:
    from pyebpf import MapFdAttr

    fd = create_map(rt, TCP)
    assert errno_of(bpf, Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd), runtime=rt) == ENOTSUPP


# -- update: registering -----------------------------------------------------------------------
def test_update_registers_and_lookup_shows_ids_state_refcnt(rt: Runtime) -> None:
    fd, progs = tcp_cc(rt)
    raw = lookup(rt, fd)
    refcnt, state = struct.unpack_from("<II", raw)
    assert (refcnt, state) == (1, StructOpsState.INUSE)
    st = struct_ops_type(TCP)
    assert st is not None
    for member, prog_fd in progs.items():
        off = DATA_OFF + st.btf.offsetof(st.type_id, member)
        assert struct.unpack_from("<Q", raw, off)[0] == rt.fds[prog_fd].obj.id
    assert "pyebpf_cc" in st.registered(rt)


def test_update_twice_is_ebusy(rt: Runtime) -> None:
    fd, progs = tcp_cc(rt)
    assert errno_of(update, rt, fd, value(TCP, progs, name=b"other")) == errno.EBUSY


def test_delete_unregisters_then_map_is_spent(rt: Runtime) -> None:
    fd, progs = tcp_cc(rt)
    st = struct_ops_type(TCP)
    assert st is not None
    bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4)), runtime=rt)
    assert "pyebpf_cc" not in st.registered(rt)
    assert struct.unpack_from("<II", lookup(rt, fd)) == (0, StructOpsState.TOBEFREE)
    assert errno_of(bpf, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4)),
                    runtime=rt) == errno.EINPROGRESS
    assert errno_of(update, rt, fd, value(TCP, progs, name=b"again")) == errno.EBUSY


def test_delete_before_update_is_enoent(rt: Runtime) -> None:
    fd = create_map(rt, TCP)
    assert errno_of(bpf, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4)),
                    runtime=rt) == errno.ENOENT


def test_registration_keeps_the_map_and_programs_alive(rt: Runtime) -> None:
    fd, progs = tcp_cc(rt)
    m = rt.fds[fd].obj
    prog_objs = [rt.fds[p].obj for p in progs.values()]
    for p in [fd, *progs.values()]:
        rt.close(p)
    assert m.id in rt.objects(ObjKind.MAP)
    assert rt.struct_ops(TCP, "pyebpf_cc").progs["ssthresh"] is prog_objs[0]
    m.delete_elem(bytes(4))  # unregistering drops the last reference
    assert m.id not in rt.objects(ObjKind.MAP)
    assert all(p.id not in rt.objects(ObjKind.PROG) for p in prog_objs)


def _progs(rt: Runtime) -> dict[str, int]:
    """The three required members (cong_avoid does nothing)."""
    from pyebpf.isa.asm import asm

    return {"ssthresh": int(load_struct_ops(rt, TCP, "ssthresh", ssthresh_prog())),
            "undo_cwnd": int(load_struct_ops(rt, TCP, "undo_cwnd", undo_cwnd_prog())),
            "cong_avoid": int(load_struct_ops(rt, TCP, "cong_avoid", asm("exit")))}


@pytest.mark.parametrize(("mutate", "err"), [
    (lambda v, p: (v, 1), errno.EINVAL),  # flags
    (lambda v, p: (v[:4] + b"\x01" + v[5:], 0), errno.EINVAL),  # state set
    (lambda v, p: (b"\x01" + v[1:], 0), errno.EINVAL),  # refcnt set
    (lambda v, p: (v[:12] + b"\x01" + v[13:], 0), errno.EINVAL),  # a hole in the head
    (lambda v, p: (v[:_KEY] + b"\x01" + v[_KEY + 1:], 0), errno.EINVAL),  # key is not taken
])
def test_bad_values_are_refused_and_change_nothing(rt: Runtime, mutate, err: int) -> None:  # type: ignore[no-untyped-def]
    fd = create_map(rt, TCP)
    progs = _progs(rt)
    good = value(TCP, progs, name=b"cc_x")
    bad, flags = mutate(good, progs)
    assert errno_of(update, rt, fd, bad, flags=flags) == err
    assert lookup(rt, fd) == bytes(256)
    update(rt, fd, good)  # still INIT: a good value goes in
    assert struct.unpack_from("<I", lookup(rt, fd), 4)[0] == StructOpsState.INUSE


def test_key_other_than_zero_is_e2big(rt: Runtime) -> None:
    fd = create_map(rt, TCP)
    assert errno_of(update, rt, fd, value(TCP, _progs(rt), name=b"k"), key=1) == errno.E2BIG


def test_missing_required_ops_is_einval(rt: Runtime) -> None:
    fd = create_map(rt, TCP)
    progs = _progs(rt)
    del progs["undo_cwnd"]
    assert errno_of(update, rt, fd, value(TCP, progs, name=b"incomplete")) == errno.EINVAL
    assert lookup(rt, fd) == bytes(256)


@pytest.mark.parametrize("name", [b"cubic", b"reno"])
def test_builtin_name_is_eexist(rt: Runtime, name: bytes) -> None:
    fd = create_map(rt, TCP)
    assert errno_of(update, rt, fd, value(TCP, _progs(rt), name=name)) == errno.EEXIST


def test_same_name_twice_is_eexist(rt: Runtime) -> None:
    tcp_cc(rt, "dup")
    assert errno_of(tcp_cc, rt, "dup") == errno.EEXIST


@pytest.mark.parametrize(("data", "err"), [
    ({"name": b""}, errno.EINVAL),
    ({"name": b"bad name!"}, errno.EINVAL),
    ({"name": b"x", "flags": 0x100}, errno.EINVAL),
])
def test_init_member_rules(rt: Runtime, data: dict[str, bytes | int], err: int) -> None:
    fd = create_map(rt, TCP)
    assert errno_of(update, rt, fd, value(TCP, _progs(rt), **data)) == err


def test_prog_for_another_member_is_einval(rt: Runtime) -> None:
    fd = create_map(rt, TCP)
    progs = _progs(rt)
    progs["ssthresh"], progs["undo_cwnd"] = progs["undo_cwnd"], progs["ssthresh"]
    assert errno_of(update, rt, fd, value(TCP, progs, name=b"swap")) == errno.EINVAL


def test_prog_fd_that_is_no_program(rt: Runtime) -> None:
    fd = create_map(rt, TCP)
    progs = _progs(rt)
    progs["ssthresh"] = fd  # the map itself
    assert errno_of(update, rt, fd, value(TCP, progs, name=b"m")) == errno.EINVAL
    progs["ssthresh"] = 999
    assert errno_of(update, rt, fd, value(TCP, progs, name=b"m")) == errno.EBADF


def test_failed_update_drops_the_program_references(rt: Runtime) -> None:
    fd = create_map(rt, TCP)
    progs = _progs(rt)
    before = {p: rt.fds[p].obj.refcnt for p in progs.values()}
    errno_of(update, rt, fd, value(TCP, progs, name=b"cubic"))
    assert {p: rt.fds[p].obj.refcnt for p in progs.values()} == before


def test_non_null_owner_resets_without_an_error(rt: Runtime) -> None:
    """The kernel jumps to its reset path with a non-negative err: nothing registered."""
    fd = create_map(rt, TCP)
    update(rt, fd, value(TCP, _progs(rt), name=b"owned", owner=0xFFFF))
    assert lookup(rt, fd) == bytes(256)


# -- BPF_F_LINK maps ---------------------------------------------------------------------------
def test_link_map_update_is_ready_and_unregistered(rt: Runtime) -> None:
    fd, _ = tcp_cc(rt, "linked", link=True)
    assert struct.unpack_from("<II", lookup(rt, fd)) == (0, StructOpsState.READY)
    assert "linked" not in struct_ops_type(TCP).registered(rt)  # type: ignore[union-attr]
    assert errno_of(bpf, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4)),
                    runtime=rt) == errno.EOPNOTSUPP


def test_link_map_still_validates(rt: Runtime) -> None:
    assert errno_of(tcp_cc, rt, "noavoid", link=True, with_cong_avoid=False) == errno.EINVAL


# -- bpf_testmod_ops ---------------------------------------------------------------------------
def test_testmod_data_member_is_copied(rt: Runtime) -> None:
    from pyebpf.isa.asm import asm

    prog = int(load_struct_ops(rt, TESTMOD, "test_1", asm("mov %r0, 3\nexit")))
    fd = create_map(rt, TESTMOD, name="tm")
    update(rt, fd, value(TESTMOD, {"test_1": prog}, data=77))
    tm = rt.struct_ops(TESTMOD, "tm")
    assert tm.get_int("data") == 77 and tm.test_1() == 3
