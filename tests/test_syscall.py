"""bpf() itself: fds, ids, freezing, pinning, info, attr decoding, MAP_CREATE checks.

Each test is named after the kernel behaviour it pins; the errnos were measured
on Linux 6.18 (tests/kernel compares them live). Map-family rules are in
tests/maps.
"""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import (
    BPF_ANY,
    BpfError,
    Cmd,
    GetIdAttr,
    InfoByFdAttr,
    MapCreateAttr,
    MapElemAttr,
    MapFdAttr,
    MapFlags,
    MapInfo,
    MapType,
    ObjPinAttr,
    Runtime,
    UserPtr,
    bpf,
)
from pyebpf.attr import ATTR_UNION_SIZE, attr_to_bytes
from pyebpf.runtime import BpfObject, ObjKind


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def create(rt: Runtime, *, map_type: int = MapType.HASH, key_size: int = 4,
           value_size: int = 4, max_entries: int = 4, map_flags: int = 0,
           **kw: object) -> int:
    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=key_size,
                                             value_size=value_size, max_entries=max_entries,
                                             map_flags=map_flags, **kw), runtime=rt)


def update(rt: Runtime, fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
    return bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key, value=value, flags=flags),
               runtime=rt)


def lookup(rt: Runtime, fd: int, key: bytes) -> bytes:
    return bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key), runtime=rt)


def info(rt: Runtime, fd: int) -> MapInfo:
    return bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=rt)


def freeze(rt: Runtime, fd: int) -> int:
    return bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd), runtime=rt)


def raises(err: int, fn, *args, **kw) -> BpfError:  # type: ignore[no-untyped-def]
    with pytest.raises(BpfError) as exc:
        fn(*args, **kw)
    assert exc.value.errno == err, f"expected {errno.errorcode.get(err, err)}, got {exc.value}"
    assert str(exc.value)  # every failure says why
    return exc.value


K1, V1 = b"\x01\0\0\0", b"aaaa"


class FakeProg(BpfObject):
    """A non-map object, to hand a map command the wrong kind of fd."""

    kind = ObjKind.PROG


def prog_fd(rt: Runtime) -> int:
    obj = FakeProg(rt)
    rt.register(obj)
    return rt.install_fd(obj)


# -- fds ------------------------------------------------------------------------------------------
def test_fds_start_at_3(rt: Runtime) -> None:
    assert create(rt) == 3
    assert create(rt) == 4


def test_fd_reuse_is_lowest_first(rt: Runtime) -> None:
    fds = [create(rt) for _ in range(4)]
    assert fds == [3, 4, 5, 6]
    rt.close(5)
    rt.close(4)
    assert create(rt) == 4
    assert create(rt) == 5
    assert create(rt) == 7


def test_close_then_use_is_ebadf(rt: Runtime) -> None:
    fd = create(rt)
    rt.close(fd)
    raises(errno.EBADF, lookup, rt, fd, K1)
    raises(errno.EBADF, update, rt, fd, K1, V1)
    raises(errno.EBADF, freeze, rt, fd)
    raises(errno.EBADF, rt.close, fd)


def test_wrong_kind_fd_is_einval(rt: Runtime) -> None:
    fd = prog_fd(rt)
    raises(errno.EINVAL, lookup, rt, fd, K1)
    raises(errno.EINVAL, update, rt, fd, K1, V1)
    raises(errno.EINVAL, freeze, rt, fd)
    raises(errno.EINVAL, bpf, Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd), runtime=rt)
    raises(errno.EINVAL, info, rt, fd)


def test_closing_the_last_fd_frees_the_map_and_its_id(rt: Runtime) -> None:
    fd = create(rt)
    map_id = info(rt, fd).id
    rt.close(fd)
    raises(errno.ENOENT, bpf, Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=map_id), runtime=rt)


# -- freeze ---------------------------------------------------------------------------------------
def test_freeze_then_update_is_eperm(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, K1, V1)
    freeze(rt, fd)
    raises(errno.EPERM, update, rt, fd, K1, b"bbbb")
    raises(errno.EPERM, bpf, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=K1), runtime=rt)
    raises(errno.EPERM, bpf, Cmd.MAP_LOOKUP_AND_DELETE_ELEM, MapElemAttr(map_fd=fd, key=K1),
           runtime=rt)
    assert lookup(rt, fd, K1) == V1


def test_freeze_twice_is_eperm(rt: Runtime) -> None:
    """The issue text says EBUSY; Linux 6.18 says EPERM: a frozen map's fds have lost
    write access (map_get_sys_perms) before the 'already frozen' check is reached."""
    fd = create(rt)
    freeze(rt, fd)
    raises(errno.EPERM, freeze, rt, fd)


def test_freeze_through_a_read_only_fd_is_eperm(rt: Runtime) -> None:
    fd = create(rt, map_flags=MapFlags.RDONLY)
    raises(errno.EPERM, freeze, rt, fd)


def test_freeze_takes_only_map_fd(rt: Runtime) -> None:
    fd = create(rt)
    raw = struct.pack("<II", fd, 1).ljust(ATTR_UNION_SIZE, b"\0")
    raises(errno.EINVAL, bpf, Cmd.MAP_FREEZE, raw, runtime=rt)


def test_read_only_and_write_only_fds(rt: Runtime) -> None:
    ro = create(rt, map_flags=MapFlags.RDONLY)
    raises(errno.EPERM, update, rt, ro, K1, V1)
    raises(errno.ENOENT, lookup, rt, ro, K1)
    wo = create(rt, map_flags=MapFlags.WRONLY)
    update(rt, wo, K1, V1)
    raises(errno.EPERM, lookup, rt, wo, K1)
    raises(errno.EINVAL, create, rt, map_flags=MapFlags.RDONLY | MapFlags.WRONLY)


# -- ids ------------------------------------------------------------------------------------------
def test_get_next_id_walks_ids_in_order(rt: Runtime) -> None:
    fds = [create(rt) for _ in range(3)]
    ids = [info(rt, fd).id for fd in fds]
    seen, cur = [], 0
    while True:
        try:
            cur = bpf(Cmd.MAP_GET_NEXT_ID, GetIdAttr(start_id=cur), runtime=rt)
        except BpfError as e:
            assert e.errno == errno.ENOENT
            break
        seen.append(cur)
    assert seen == sorted(ids)


def test_get_next_id_ignores_next_id_on_input(rt: Runtime) -> None:
    """next_id is the output slot: the 6.18 kernel doesn't look at what it holds."""
    fd = create(rt)
    assert bpf(Cmd.MAP_GET_NEXT_ID, GetIdAttr(start_id=0, next_id=77), runtime=rt) == \
        info(rt, fd).id


def test_get_next_id_start_at_int_max_is_einval(rt: Runtime) -> None:
    raises(errno.EINVAL, bpf, Cmd.MAP_GET_NEXT_ID, GetIdAttr(start_id=0x7FFF_FFFF), runtime=rt)


def test_get_next_id_fields_past_next_id_are_einval(rt: Runtime) -> None:
    raises(errno.EINVAL, bpf, Cmd.MAP_GET_NEXT_ID, GetIdAttr(start_id=0, open_flags=1),
           runtime=rt)


def test_get_next_id_needs_cap_sys_admin() -> None:
    rt = Runtime(privileged=False)
    raises(errno.EPERM, bpf, Cmd.MAP_GET_NEXT_ID, GetIdAttr(start_id=0), runtime=rt)


def test_get_fd_by_id_opens_the_same_map(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, K1, V1)
    fd2 = bpf(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=info(rt, fd).id), runtime=rt)
    assert fd2 != fd
    assert lookup(rt, fd2, K1) == V1


def test_get_fd_by_id_of_a_missing_id_is_enoent(rt: Runtime) -> None:
    raises(errno.ENOENT, bpf, Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=12345), runtime=rt)
    raises(errno.ENOENT, bpf, Cmd.PROG_GET_FD_BY_ID, GetIdAttr(start_id=12345), runtime=rt)


def test_get_fd_by_id_open_flags_make_a_read_only_fd(rt: Runtime) -> None:
    fd = create(rt)
    ro = bpf(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=info(rt, fd).id,
                                             open_flags=MapFlags.RDONLY), runtime=rt)
    raises(errno.EPERM, update, rt, ro, K1, V1)
    raises(errno.EINVAL, bpf, Cmd.MAP_GET_FD_BY_ID,
           GetIdAttr(start_id=info(rt, fd).id, open_flags=1 << 20), runtime=rt)


def test_map_get_fd_by_id_ignores_next_id(rt: Runtime) -> None:
    raises(errno.ENOENT, bpf, Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=999, next_id=1),
           runtime=rt)


def test_prog_get_fd_by_id_takes_only_the_id(rt: Runtime) -> None:
    raises(errno.EINVAL, bpf, Cmd.PROG_GET_FD_BY_ID, GetIdAttr(start_id=999, next_id=1),
           runtime=rt)


def test_btf_get_fd_by_id_takes_only_the_token_flag(rt: Runtime) -> None:
    raises(errno.ENOENT, bpf, Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=999, next_id=1),
           runtime=rt)
    raises(errno.EINVAL, bpf, Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=999, open_flags=1),
           runtime=rt)
    raises(errno.EBADF, bpf, Cmd.BTF_GET_FD_BY_ID,
           GetIdAttr(start_id=999, open_flags=MapFlags.TOKEN_FD, fd_by_id_token_fd=77),
           runtime=rt)


# -- pinning --------------------------------------------------------------------------------------
def pin(rt: Runtime, fd: int, path: str, **kw: object) -> int:
    return bpf(Cmd.OBJ_PIN, ObjPinAttr(pathname=path, bpf_fd=fd, **kw), runtime=rt)


def get(rt: Runtime, path: str | None, **kw: object) -> int:
    return bpf(Cmd.OBJ_GET, ObjPinAttr(pathname=path, **kw), runtime=rt)  # type: ignore[arg-type]


def test_pin_then_get_opens_the_same_map(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, K1, V1)
    pin(rt, fd, "/sys/fs/bpf/m")
    fd2 = get(rt, "/sys/fs/bpf/m")
    assert lookup(rt, fd2, K1) == V1


def test_pin_on_an_existing_path_is_eexist(rt: Runtime) -> None:
    fd = create(rt)
    pin(rt, fd, "/sys/fs/bpf/m")
    raises(errno.EEXIST, pin, rt, fd, "/sys/fs/bpf/m")


def test_get_of_a_missing_path_is_enoent(rt: Runtime) -> None:
    raises(errno.ENOENT, get, rt, "/sys/fs/bpf/nothing")


def test_pin_outside_bpffs_is_eperm(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.EPERM, pin, rt, fd, "/tmp/m")


def test_pin_in_a_missing_directory_is_enoent(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.ENOENT, pin, rt, fd, "/sys/fs/bpf/no/such/dir")


def test_pinned_map_outlives_its_fds(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, K1, V1)
    map_id = info(rt, fd).id
    pin(rt, fd, "/sys/fs/bpf/m")
    rt.close(fd)
    assert bpf(Cmd.MAP_GET_NEXT_ID, GetIdAttr(start_id=0), runtime=rt) == map_id
    fd2 = get(rt, "/sys/fs/bpf/m")
    assert lookup(rt, fd2, K1) == V1


def test_pin_a_bad_fd_is_einval(rt: Runtime) -> None:
    """bpf_fd_probe_obj tries map, prog and link, then says EINVAL (not EBADF)."""
    raises(errno.EINVAL, pin, rt, 99, "/sys/fs/bpf/m")
    raises(errno.EINVAL, pin, rt, 99, None)


def test_pin_and_get_with_a_null_path_are_efault(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.EFAULT, pin, rt, fd, None)
    raises(errno.EFAULT, get, rt, None)


def test_pin_file_flags_other_than_path_fd_are_einval(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.EINVAL, pin, rt, fd, "/sys/fs/bpf/m", file_flags=MapFlags.RDONLY)
    pin(rt, fd, "/sys/fs/bpf/m", file_flags=MapFlags.PATH_FD, path_fd=-100)  # AT_FDCWD


def test_path_fd_without_the_path_fd_flag_is_einval(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.EINVAL, pin, rt, fd, "/sys/fs/bpf/m", path_fd=5)
    raises(errno.EINVAL, get, rt, "/sys/fs/bpf/m", path_fd=5)


def test_relative_path_from_a_non_directory_fd_is_enotdir(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.ENOTDIR, pin, rt, fd, "m", file_flags=MapFlags.PATH_FD, path_fd=fd)
    raises(errno.EBADF, pin, rt, fd, "m", file_flags=MapFlags.PATH_FD, path_fd=99)
    pin(rt, fd, "/sys/fs/bpf/m", file_flags=MapFlags.PATH_FD, path_fd=99)  # absolute: ignored


def test_get_with_bpf_fd_or_bad_flags_is_einval(rt: Runtime) -> None:
    fd = create(rt)
    pin(rt, fd, "/sys/fs/bpf/m")
    raises(errno.EINVAL, get, rt, "/sys/fs/bpf/m", bpf_fd=fd)
    raises(errno.EINVAL, get, rt, "/sys/fs/bpf/m", file_flags=1 << 20)
    raises(errno.EINVAL, get, rt, "/sys/fs/bpf/m", file_flags=MapFlags.RDONLY | MapFlags.WRONLY)
    ro = get(rt, "/sys/fs/bpf/m", file_flags=MapFlags.RDONLY)
    raises(errno.EPERM, update, rt, ro, K1, V1)


# -- OBJ_GET_INFO_BY_FD ---------------------------------------------------------------------------
def test_info_fields(rt: Runtime) -> None:
    fd = create(rt, map_type=MapType.PERCPU_HASH, key_size=8, value_size=12, max_entries=7,
                map_flags=MapFlags.NO_PREALLOC, map_name=b"my_map.1")
    i = info(rt, fd)
    assert (i.type, i.key_size, i.value_size, i.max_entries, i.map_flags, i.name) == (
        MapType.PERCPU_HASH, 8, 12, 7, MapFlags.NO_PREALLOC, "my_map.1")
    assert i.id > 0 and i.map_extra == 0 and i.hash == 0 and i.hash_size == 0


def test_info_struct_is_104_bytes(rt: Runtime) -> None:
    """struct bpf_map_info in 6.18: map_extra at 80, then hash (u64) and hash_size."""
    assert MapInfo.SIZE == 104
    packed = MapInfo(type=1, id=2, key_size=3, value_size=4, max_entries=5, map_flags=6,
                     name="n", map_extra=7).pack()
    assert struct.unpack_from("<Q", packed, 80)[0] == 7
    assert MapInfo.unpack(packed).map_extra == 7


def test_info_of_a_closed_fd_is_ebadfd(rt: Runtime) -> None:
    """Not EBADF: bpf_obj_get_info_by_fd says EBADFD."""
    raises(errno.EBADFD, info, rt, 42)


def test_info_to_user_memory_writes_info_len_bytes(rt: Runtime) -> None:
    fd = create(rt)
    buf = rt.user_memory.map(bytearray(b"\xaa" * 104), kind="user")
    assert bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd, info_len=8,
                                                    info=UserPtr(buf.base)), runtime=rt) == 0
    assert struct.unpack_from("<II", buf.buf) == (MapType.HASH, info(rt, fd).id)
    assert bytes(buf.buf[8:]) == b"\xaa" * 96


def test_info_fields_the_kernel_does_not_set_keep_the_callers_bytes(rt: Runtime) -> None:
    """Measured on 6.18: ifindex, netns and btf ids come back as the caller wrote them."""
    fd = create(rt)
    given = bytearray(b"\xaa" * 88) + bytes(16)
    i = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd, info_len=104, info=bytes(given)),
            runtime=rt)
    assert i.type == MapType.HASH and i.key_size == 4 and i.map_flags == 0 and i.name == ""
    assert i.ifindex == 0xAAAA_AAAA and i.btf_id == 0xAAAA_AAAA
    assert i.netns_dev == 0xAAAA_AAAA_AAAA_AAAA
    assert i.btf_vmlinux_value_type_id == 0 and i.map_extra == 0


def test_info_with_a_non_zero_tail_past_the_struct_is_e2big(rt: Runtime) -> None:
    fd = create(rt)
    raises(errno.E2BIG, bpf, Cmd.OBJ_GET_INFO_BY_FD,
           InfoByFdAttr(bpf_fd=fd, info_len=120, info=bytes(110) + b"\x01" + bytes(9)),
           runtime=rt)
    assert bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd, info_len=120, info=bytes(120)),
               runtime=rt).key_size == 4
    raises(errno.E2BIG, bpf, Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd, info_len=4097),
           runtime=rt)


def test_info_tail_non_zero_byte_before_a_fault_is_e2big(rt: Runtime) -> None:
    """check_zeroed_user scans in order: a non-zero byte it meets first is E2BIG, an
    unreadable byte it meets first is EFAULT."""
    fd = create(rt)
    raises(errno.E2BIG, bpf, Cmd.OBJ_GET_INFO_BY_FD,
           InfoByFdAttr(bpf_fd=fd, info_len=4096, info=bytes(104) + b"\x01"), runtime=rt)
    raises(errno.EFAULT, bpf, Cmd.OBJ_GET_INFO_BY_FD,
           InfoByFdAttr(bpf_fd=fd, info_len=4096, info=bytes(105)), runtime=rt)


def test_info_with_a_raw_null_buffer_is_efault(rt: Runtime) -> None:
    fd = create(rt)
    raw = struct.pack("<II", fd, 104).ljust(ATTR_UNION_SIZE, b"\0")
    raises(errno.EFAULT, bpf, Cmd.OBJ_GET_INFO_BY_FD, raw, runtime=rt)


# -- raw attrs ------------------------------------------------------------------------------------
def test_unknown_command_is_einval(rt: Runtime) -> None:
    raises(errno.EINVAL, bpf, 1000, bytes(ATTR_UNION_SIZE), runtime=rt)


def test_size_is_checked_before_the_command(rt: Runtime) -> None:
    """__sys_bpf runs bpf_check_uarg_tail_zero first: E2BIG even for an unknown command."""
    raises(errno.E2BIG, bpf, 1000, bytes(4097), runtime=rt)
    raises(errno.E2BIG, bpf, 1000, bytes(ATTR_UNION_SIZE) + b"\x01", runtime=rt)


def test_union_bpf_attr_is_168_bytes(rt: Runtime) -> None:
    """6.18: a non-zero byte at 167 is CHECK_ATTR's EINVAL, at 168 the tail's E2BIG."""
    assert ATTR_UNION_SIZE == 168
    fd = create(rt)
    raw = bytearray(struct.pack("<I", fd).ljust(4096, b"\0"))
    raw[167] = 1
    raises(errno.EINVAL, bpf, Cmd.MAP_FREEZE, bytes(raw), runtime=rt)
    raw[167], raw[168] = 0, 1
    raises(errno.E2BIG, bpf, Cmd.MAP_FREEZE, bytes(raw), runtime=rt)
    raw[168] = 0
    assert bpf(Cmd.MAP_FREEZE, bytes(raw), runtime=rt) == 0


def test_bytes_past_the_last_field_are_einval(rt: Runtime) -> None:
    fd = create(rt)
    raw = bytearray(attr_to_bytes(MapElemAttr(map_fd=fd)))
    raw[16] = 1  # DELETE's last field is key: value is past it
    raises(errno.EINVAL, bpf, Cmd.MAP_DELETE_ELEM, bytes(raw), runtime=rt)


def test_record_fields_past_the_last_field_are_einval(rt: Runtime) -> None:
    """A record is checked as its raw form would be (CHECK_ATTR)."""
    fd = create(rt)
    update(rt, fd, K1, V1)
    raises(errno.EINVAL, bpf, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=K1, value=V1),
           runtime=rt)
    raises(errno.EINVAL, bpf, Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=K1, flags=1),
           runtime=rt)
    assert lookup(rt, fd, K1) == V1


def test_short_raw_attr_is_zero_extended(rt: Runtime) -> None:
    fd = create(rt)
    assert bpf(Cmd.MAP_FREEZE, struct.pack("<I", fd), runtime=rt) == 0


def test_raw_lookup_with_a_null_value_pointer_is_efault(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, K1, V1)
    key = rt.user_memory.map(bytearray(K1), kind="user")
    raw = struct.pack("<IIQQQ", fd, 0, key.base, 0, 0)
    raises(errno.EFAULT, bpf, Cmd.MAP_LOOKUP_ELEM, raw, runtime=rt)


def test_raw_lookup_writes_the_value_to_user_memory(rt: Runtime) -> None:
    fd = create(rt)
    update(rt, fd, K1, V1)
    key = rt.user_memory.map(bytearray(K1), kind="user")
    out = rt.user_memory.map(bytearray(4), kind="user")
    raw = struct.pack("<IIQQQ", fd, 0, key.base, out.base, 0)
    assert bpf(Cmd.MAP_LOOKUP_ELEM, raw, runtime=rt) == 0
    assert bytes(out.buf) == V1


# -- MAP_CREATE -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [b"a-b", b"a b", b"x" * 16, b"\xd7", b"\xf7", b"\x80", b"\xbf"])
def test_map_create_bad_name_is_einval(rt: Runtime, name: bytes) -> None:
    raises(errno.EINVAL, create, rt, map_name=name)


def test_map_create_name_with_dash_is_einval(rt: Runtime) -> None:
    raises(errno.EINVAL, create, rt, map_name="my-map")


def test_map_create_name_takes_latin1_letters(rt: Runtime) -> None:
    """The kernel's isalnum() is Latin-1's: 0xC0-0xFF are letters (but for 0xD7, 0xF7)."""
    fd = create(rt, map_name=b"caf\xe9\xc0\xff")
    assert info(rt, fd).name == "caf\xe9\xc0\xff"
    assert info(rt, fd).pack()[24:30] == b"caf\xe9\xc0\xff"


def test_map_create_name_stops_at_nul(rt: Runtime) -> None:
    fd = create(rt, map_name=b"ok\0-junk")
    assert info(rt, fd).name == "ok"


@pytest.mark.parametrize("map_type", [0, 34, 200, 0xFFFF_FFFF])
def test_map_create_unknown_type_is_einval(rt: Runtime, map_type: int) -> None:
    raises(errno.EINVAL, create, rt, map_type=map_type)


def test_map_create_map_extra_is_einval_for_hash(rt: Runtime) -> None:
    raises(errno.EINVAL, create, rt, map_extra=1)


def test_map_create_numa_node(rt: Runtime) -> None:
    create(rt, map_flags=MapFlags.NUMA_NODE, numa_node=0)
    create(rt, map_flags=MapFlags.NUMA_NODE, numa_node=0xFFFF_FFFF)  # NUMA_NO_NODE
    create(rt, numa_node=5)  # ignored without the flag
    raises(errno.EINVAL, create, rt, map_flags=MapFlags.NUMA_NODE, numa_node=1)


def test_map_create_btf_ids_need_a_btf_fd(rt: Runtime) -> None:
    raises(errno.EINVAL, create, rt, btf_key_type_id=1)  # key without value
    raises(errno.EINVAL, create, rt, btf_vmlinux_value_type_id=1)  # not struct_ops
    raises(errno.EBADF, create, rt, btf_fd=99, btf_key_type_id=1, btf_value_type_id=1)
    create(rt, btf_fd=99)  # no type ids: the fd is not looked at


def test_map_create_btf_id_errors_come_before_size_errors(rt: Runtime) -> None:
    raises(errno.EINVAL, create, rt, key_size=1 << 22, btf_key_type_id=1)


def test_map_create_token_flag_needs_a_token_fd(rt: Runtime) -> None:
    raises(errno.EBADF, create, rt, map_flags=MapFlags.TOKEN_FD, map_token_fd=99)
    fd = create(rt)
    raises(errno.EINVAL, create, rt, map_flags=MapFlags.TOKEN_FD, map_token_fd=fd)
    create(rt, map_token_fd=99)  # without the flag, the fd is ignored


def test_map_create_offload(rt: Runtime) -> None:
    raises(errno.EOPNOTSUPP, create, rt, map_ifindex=1)  # loopback: no offload
    raises(errno.EINVAL, create, rt, map_ifindex=9999)  # no such device
    raises(errno.EINVAL, create, rt, map_type=MapType.PERCPU_HASH, map_ifindex=1)


def test_map_create_exclusive_program_hash(rt: Runtime) -> None:
    create(rt, excl_prog_hash=bytes(32), excl_prog_hash_size=32)
    raises(errno.EINVAL, create, rt, excl_prog_hash=bytes(32), excl_prog_hash_size=16)
    raises(errno.EINVAL, create, rt, excl_prog_hash_size=32)
    raises(errno.EFAULT, create, rt, excl_prog_hash=bytes(31), excl_prog_hash_size=32)
    raises(errno.EINVAL, create, rt, map_name=b"a-b", excl_prog_hash=bytes(31),
           excl_prog_hash_size=32)


def test_failed_map_create_leaves_no_fd_and_no_id(rt: Runtime) -> None:
    with pytest.raises(BpfError):
        create(rt, excl_prog_hash_size=32)
    raises(errno.ENOENT, bpf, Cmd.MAP_GET_NEXT_ID, GetIdAttr(start_id=0), runtime=rt)
    assert create(rt) == 3
