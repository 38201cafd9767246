"""BPF_BTF_LOAD, BTF objects, and a program's BTF (func_info) at PROG_LOAD."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import ENOTSUPP, BpfError, Cmd, ProgLoadAttr, ProgType, Runtime, bpf
from pyebpf.attr import BtfLoadAttr, GetIdAttr, InfoByFdAttr, attr_to_bytes
from pyebpf.btf import FuncLinkage
from pyebpf.btf_build import BtfBuilder
from pyebpf.btf_load import BTF_MAX_SIZE, BtfInfo, BtfObject
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import kernel_btf, kernel_type_ids
from pyebpf.runtime import ObjKind


@pytest.fixture
def rt() -> Runtime:
    return Runtime()


def two_funcs() -> bytes:
    """BTF for ``int main(struct __sk_buff *skb)`` and ``int helper(int x)`` (global)."""
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    skb = b.ptr(b.struct("__sk_buff", [("len", b.int_("unsigned int", 4))]))
    b.func("main", b.func_proto(i, [("skb", skb)]))
    b.func("helper", b.func_proto(i, [("x", i)]), FuncLinkage.GLOBAL)
    return b.encode()


def load(rt: Runtime, blob: bytes, **kw: object) -> int:
    return int(bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=blob, **kw), runtime=rt))


def test_load_gives_fd_and_id_findable_by_id(rt: Runtime) -> None:
    fd = load(rt, two_funcs())
    obj = rt.fds[fd].obj
    assert isinstance(obj, BtfObject)
    assert obj.btf.find("helper") is not None
    assert bpf(Cmd.BTF_GET_NEXT_ID, GetIdAttr(start_id=rt.btf_vmlinux.id), runtime=rt) == obj.id
    fd2 = bpf(Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=obj.id), runtime=rt)
    assert rt.fds[fd2].obj is obj


def test_vmlinux_btf_is_id_1_and_kernel_btf(rt: Runtime) -> None:
    fd = bpf(Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=1), runtime=rt)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=rt)
    assert isinstance(info, BtfInfo)
    assert info.kernel_btf and info.name == "vmlinux" and info.id == 1
    assert info.btf_size == len(info.btf)


def test_info_of_user_btf(rt: Runtime) -> None:
    blob = two_funcs()
    fd = load(rt, blob)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=rt)
    assert (info.btf, info.btf_size, info.name, info.kernel_btf) == (blob, len(blob), "", False)


def test_last_close_frees_the_id(rt: Runtime) -> None:
    fd = load(rt, two_funcs())
    bid = rt.fds[fd].obj.id
    rt.close(fd)
    assert bid not in rt.objects(ObjKind.BTF)


@pytest.mark.parametrize(("mutate", "err"), [
    (lambda b: b[:6], errno.EINVAL),  # shorter than the header fields
    (lambda b: b"\xeb\x9f" + b[2:], errno.EINVAL),  # big-endian magic
    (lambda b: b[:2] + b"\x02" + b[3:], ENOTSUPP),  # version 2
    (lambda b: b[:3] + b"\x01" + b[4:], ENOTSUPP),  # flags
    (lambda b: b[:-1] + b"x", errno.EINVAL),  # strings not NUL-terminated
])
def test_malformed_btf_errno_and_nothing_loaded(rt: Runtime, mutate, err: int) -> None:  # type: ignore[no-untyped-def]
    before = dict(rt.objects(ObjKind.BTF))
    with pytest.raises(BpfError) as e:
        load(rt, mutate(two_funcs()))
    assert e.value.errno == err
    assert rt.objects(ObjKind.BTF) == before


def test_log_has_header_types_and_the_error(rt: Runtime) -> None:
    buf = bytearray(4096)
    fd = bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=two_funcs(), btf_log_buf=buf, btf_log_size=4096,
                                       btf_log_level=1), runtime=rt)
    text = buf.split(b"\0", 1)[0].decode()
    assert text.startswith("magic: 0xeb9f\nversion: 1\nflags: 0x0\nhdr_len: 24\n")
    assert "[1] INT int size=4 bits_offset=0 nr_bits=32 encoding=SIGNED\n" in text
    assert "[6] FUNC main type_id=5\n" in text
    assert fd.log == text
    bad = bytearray(two_funcs())
    struct.pack_into("<I", bad, 24 + 4, 0x1F << 24)  # type 1: kind 31
    with pytest.raises(BpfError) as e:
        bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=bytes(bad), btf_log_buf=buf, btf_log_size=4096,
                                      btf_log_level=1), runtime=rt)
    assert e.value.errno == errno.EINVAL
    assert "unknown kind 31" in buf.split(b"\0", 1)[0].decode()


def test_log_attr_rules(rt: Runtime) -> None:
    with pytest.raises(BpfError) as e:  # a buffer without a level
        load(rt, two_funcs(), btf_log_buf=bytearray(64), btf_log_size=64)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(BpfError) as e:  # too small: ENOSPC, nothing loaded
        load(rt, two_funcs(), btf_log_buf=bytearray(16), btf_log_size=16, btf_log_level=1)
    assert e.value.errno == errno.ENOSPC


def test_flags_size_and_privilege(rt: Runtime) -> None:
    with pytest.raises(BpfError) as e:
        load(rt, two_funcs(), btf_flags=2)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(BpfError) as e:
        load(rt, two_funcs(), btf_size=BTF_MAX_SIZE + 1)
    assert e.value.errno == errno.E2BIG
    with pytest.raises(BpfError) as e:
        load(rt, two_funcs(), btf_size=len(two_funcs()) + 1)
    assert e.value.errno == errno.EFAULT
    rt.privileged = False
    with pytest.raises(BpfError) as e:
        load(rt, two_funcs())
    assert e.value.errno == errno.EPERM


def test_raw_attr_form(rt: Runtime) -> None:
    blob = two_funcs()
    addr = rt.user_memory.map(bytearray(blob), kind="user").base
    from pyebpf.attr import UserPtr

    raw = attr_to_bytes(BtfLoadAttr(btf=UserPtr(addr), btf_size=len(blob)))
    fd = bpf(Cmd.BTF_LOAD, raw, runtime=rt)
    assert rt.fds[fd].obj.btf.find("main") is not None


def test_kernel_btf_has_struct_ops_value_types() -> None:
    ids = kernel_type_ids()
    btf = kernel_btf()
    vt = btf.type(ids["struct bpf_struct_ops_tcp_congestion_ops"])
    assert [m.name for m in vt.members] == ["common", "data"]
    assert vt.members[1].bit_offset == 64 * 8 and vt.size % 64 == 0


# -- func_info at PROG_LOAD ------------------------------------------------------------------------
PROG = asm("""
    mov %r1, 3
    call local +2
    add %r0, 1
    exit
    mov %r0, %r1
    exit
""")


def prog_attr(btf_fd: int, records: list[tuple[int, int]], **kw: object) -> ProgLoadAttr:
    fields: dict[str, object] = {"func_info_rec_size": 8, **kw}
    return ProgLoadAttr(prog_type=ProgType.SCHED_CLS, insns=PROG, license="GPL",
                        prog_btf_fd=btf_fd, func_info_cnt=len(records),
                        func_info=b"".join(struct.pack("<II", *r) for r in records),
                        **fields)  # type: ignore[arg-type]


def test_func_info_is_recorded(rt: Runtime) -> None:
    btf_fd = load(rt, two_funcs())
    fd = bpf(Cmd.PROG_LOAD, prog_attr(btf_fd, [(0, 6), (4, 8)]), runtime=rt)
    prog = rt.fds[fd].obj
    assert [(r.insn_off, r.type_id) for r in prog.func_info] == [(0, 6), (4, 8)]
    assert prog.btf.type(8).name == "helper"


@pytest.mark.parametrize(("records", "err", "words"), [
    ([(0, 6)], errno.EINVAL, "number of funcs"),
    ([(1, 6), (4, 8)], errno.EINVAL, "nonzero insn_off"),
    ([(0, 6), (0, 8)], errno.EINVAL, "same or smaller"),
    ([(0, 6), (3, 8)], errno.EINVAL, "doesn't match subprog layout"),
    ([(0, 6), (4, 1)], errno.EINVAL, "invalid type id 1"),
])
def test_bad_func_info(rt: Runtime, records, err: int, words: str) -> None:  # type: ignore[no-untyped-def]
    btf_fd = load(rt, two_funcs())
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_LOAD, prog_attr(btf_fd, records), runtime=rt)
    assert e.value.errno == err and words in str(e.value)


def test_func_info_needs_a_user_btf_fd(rt: Runtime) -> None:
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_LOAD, prog_attr(999, [(0, 6), (4, 8)]), runtime=rt)
    assert e.value.errno == errno.EBADF
    with pytest.raises(BpfError) as e:  # the kernel's own BTF is not a program's
        vmlinux_fd = bpf(Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=1), runtime=rt)
        bpf(Cmd.PROG_LOAD, prog_attr(vmlinux_fd, [(0, 6), (4, 8)]), runtime=rt)
    assert e.value.errno == errno.EACCES
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_LOAD, prog_attr(load(rt, two_funcs()), [(0, 6), (4, 8)],
                                     func_info_rec_size=4), runtime=rt)
    assert e.value.errno == errno.EINVAL


# -- maps with BTF ---------------------------------------------------------------------------------
def value_btf() -> tuple[bytes, dict[str, int]]:
    b = BtfBuilder()
    ids = {"int": b.int_("int", 4, signed=True), "u64": b.int_("unsigned long", 8)}
    lock = b.struct("bpf_spin_lock", [("val", ids["int"])])
    timer = b.struct("bpf_timer", [("a", ids["u64"]), ("b", ids["u64"])], align=8)
    ids["val"] = b.struct("val", [("cnt", ids["int"]), ("lock", lock), ("t", timer)])
    ids["short"] = b.int_("short", 2, signed=True)
    return b.encode(), ids


def create(rt: Runtime, mtype: int, key_size: int, value_size: int, **kw: object) -> int:
    from pyebpf import MapCreateAttr

    return int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=mtype, key_size=key_size,
                                                 value_size=value_size, max_entries=4,
                                                 **kw), runtime=rt))  # type: ignore[arg-type]


def test_map_with_btf_records_special_field_offsets_and_ids(rt: Runtime) -> None:
    from pyebpf import MapInfo, MapType

    blob, ids = value_btf()
    btf_fd = load(rt, blob)
    fd = create(rt, MapType.HASH, 4, 24, btf_fd=btf_fd, btf_key_type_id=ids["int"],
                btf_value_type_id=ids["val"])
    m = rt.fds[fd].obj
    assert m.btf_fields == {"bpf_spin_lock": 4, "bpf_timer": 8}
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd), runtime=rt)
    assert isinstance(info, MapInfo)
    assert (info.btf_id, info.btf_key_type_id, info.btf_value_type_id) == (
        rt.fds[btf_fd].obj.id, ids["int"], ids["val"])
    btf = rt.fds[btf_fd].obj
    rt.close(btf_fd)
    assert btf.id in rt.objects(ObjKind.BTF)  # the map holds it
    rt.close(fd)
    assert btf.id not in rt.objects(ObjKind.BTF)


@pytest.mark.parametrize(("mtype", "key", "value", "err"), [
    ("HASH", "short", "val", errno.EINVAL),  # key size 2 != 4
    ("HASH", "int", "int", errno.EINVAL),  # value size 4 != 24
    ("HASH", None, "val", errno.EINVAL),  # hash maps need a key type
    ("LRU_PERCPU_HASH", "int", "val", errno.EOPNOTSUPP),  # no spin lock here
])
def test_map_btf_mismatch(rt: Runtime, mtype: str, key: str | None, value: str,
                          err: int) -> None:
    from pyebpf import MapType

    blob, ids = value_btf()
    btf_fd = load(rt, blob)
    with pytest.raises(BpfError) as e:
        create(rt, MapType[mtype], 4, 24, btf_fd=btf_fd,
               btf_key_type_id=ids[key] if key else 0, btf_value_type_id=ids[value])
    assert e.value.errno == err


def test_map_btf_fd_must_be_user_btf(rt: Runtime) -> None:
    from pyebpf import MapType

    vmlinux_fd = bpf(Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=1), runtime=rt)
    with pytest.raises(BpfError) as e:
        create(rt, MapType.ARRAY, 4, 4, btf_fd=vmlinux_fd, btf_key_type_id=1,
               btf_value_type_id=1)
    assert e.value.errno == errno.EACCES
    with pytest.raises(BpfError) as e:
        create(rt, MapType.ARRAY, 4, 4, btf_fd=77, btf_key_type_id=1, btf_value_type_id=1)
    assert e.value.errno == errno.EBADF


def test_info_into_user_memory_copies_btf_and_name(rt: Runtime) -> None:
    from pyebpf.attr import UserPtr

    mem = rt.user_memory
    vmlinux = bpf(Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=1), runtime=rt)
    data = rt.btf_vmlinux.data
    btf_buf = mem.map(bytearray(16), kind="user")
    name_buf = mem.map(bytearray(16), kind="user")
    info = mem.map(bytearray(BtfInfo.SIZE), kind="user")
    mem.write(info.base, struct.pack("<QIIQII", btf_buf.base, 16, 0, name_buf.base, 16, 0))
    assert bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=vmlinux, info_len=BtfInfo.SIZE,
                                                    info=UserPtr(info.base)), runtime=rt) == 0
    _, size, bid, _, name_len, kernel = struct.unpack("<QIIQII", mem.read(info.base, 32))
    assert (size, bid, name_len, kernel) == (len(data), 1, len("vmlinux"), 1)
    assert mem.read(btf_buf.base, 16) == data[:16]
    assert mem.read(name_buf.base, 8) == b"vmlinux\0"
    # A name buffer too small: what fits, NUL-terminated, then ENOSPC.
    mem.write(info.base, struct.pack("<QIIQII", 0, 0, 0, name_buf.base, 4, 0))
    with pytest.raises(BpfError) as e:
        bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=vmlinux, info_len=BtfInfo.SIZE,
                                                 info=UserPtr(info.base)), runtime=rt)
    assert e.value.errno == errno.ENOSPC and mem.read(name_buf.base, 4) == b"vml\0"
    mem.write(info.base, struct.pack("<QIIQII", 0, 0, 0, name_buf.base, 0, 0))
    with pytest.raises(BpfError) as e:  # a name pointer without a length
        bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=vmlinux, info_len=BtfInfo.SIZE,
                                                 info=UserPtr(info.base)), runtime=rt)
    assert e.value.errno == errno.EINVAL
