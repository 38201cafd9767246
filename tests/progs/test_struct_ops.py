"""BPF_PROG_TYPE_STRUCT_OPS: loading for a member, ctx and kernel-struct access, calls
from the simulated subsystem, and struct_ops links."""

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
    tcp_off,
    update,
    value,
)
from pyebpf import (
    ENOTSUPP,
    BpfError,
    Cmd,
    Insn,
    MapCreateAttr,
    MapElemAttr,
    MapType,
    Runtime,
    TestRunAttr,
    VerifierError,
    bpf,
)
from pyebpf.attr import LinkCreateAttr, LinkDetachAttr, LinkUpdateAttr
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import KernelObject
from pyebpf.maps.struct_ops import StructOpsState
from pyebpf.struct_ops import struct_ops_type
from pyebpf.uapi import AttachFlags, AttachType, LinkType


@pytest.fixture
def rt() -> Runtime:
    return Runtime()


def load_err(rt: Runtime, *args: object, **kw: object) -> VerifierError | BpfError:
    with pytest.raises(BpfError) as e:
        load_struct_ops(rt, *args, log=True, **kw)  # type: ignore[arg-type]
    return e.value


# -- loading for a member ----------------------------------------------------------------------
def test_load_records_the_member(rt: Runtime) -> None:
    fd = load_struct_ops(rt, TCP, "ssthresh", ssthresh_prog())
    prog = rt.fds[fd].obj
    assert prog.attach_member == "ssthresh"
    assert prog.struct_ops_type is struct_ops_type(TCP)


@pytest.mark.parametrize(("kw", "err", "words"), [
    ({"member": "get_info"}, ENOTSUPP,
     "attach to unsupported member get_info of struct tcp_congestion_ops"),
    ({"member": "ssthresh", "member_idx": 99}, errno.EINVAL,
     "attach to invalid member idx 99 of struct tcp_congestion_ops"),
    ({"member": "name"}, errno.EINVAL,
     "attach to invalid member name(@idx 11) of struct tcp_congestion_ops"),
    ({"member": "ssthresh", "attach_btf_id": 1}, ENOTSUPP,
     "attach_btf_id 1 is not a supported struct"),
    ({"member": "ssthresh", "license": "MIT"}, errno.EINVAL,
     "struct ops programs must have a GPL compatible license"),
])
def test_load_refusals(rt: Runtime, kw: dict[str, object], err: int, words: str) -> None:
    member = kw.pop("member")
    e = load_err(rt, TCP, member, asm("mov %r0, 0\nexit"), **kw)
    assert e.errno == err
    assert words in (getattr(e, "log", "") or "")


def test_load_without_attach_btf_id_is_enotsupp(rt: Runtime) -> None:
    e = load_err(rt, TCP, "ssthresh", ssthresh_prog(), attach_btf_id=0)
    assert e.errno == ENOTSUPP


def test_testmod_unsupported_member(rt: Runtime) -> None:
    e = load_err(rt, TESTMOD, "unsupported_ops", asm("mov %r0, 0\nexit"))
    assert e.errno == ENOTSUPP


# -- the verifier's view of args and kernel structs -----------------------------------------------
def test_arg_past_the_member_prototype_is_invalid(rt: Runtime) -> None:
    # ssthresh(struct sock *sk) has one argument: ctx[1] is not there.
    e = load_err(rt, TCP, "ssthresh", asm("ldxdw %r0, [%r1+8]\nexit"))
    assert e.errno == errno.EACCES and "invalid bpf_context access off=8" in e.log


def test_ctx_is_read_only(rt: Runtime) -> None:
    e = load_err(rt, TCP, "ssthresh", asm("stdw [%r1], 0\nmov %r0, 0\nexit"))
    assert e.errno == errno.EACCES


def test_write_to_a_writable_tcp_sock_field(rt: Runtime) -> None:
    load_struct_ops(rt, TCP, "cong_avoid", asm(f"""
        ldxdw %r2, [%r1]
        stw [%r2+{tcp_off('snd_ssthresh')}], 7
        exit
    """))


@pytest.mark.parametrize(("path", "size", "words"), [
    ("srtt_us", 4, "no write support to tcp_sock at off"),
    ("snd_cwnd", 8, "beyond the member of tcp_sock ended at"),
])
def test_write_to_other_tcp_sock_fields_is_eacces(rt: Runtime, path: str, size: int,
                                                  words: str) -> None:
    op = {4: "stw", 8: "stdw"}[size]
    e = load_err(rt, TCP, "cong_avoid", asm(f"""
        ldxdw %r2, [%r1]
        {op} [%r2+{tcp_off(path)}], 7
        exit
    """))
    assert e.errno == errno.EACCES and words in e.log


def test_read_beyond_the_struct_is_eacces(rt: Runtime) -> None:
    e = load_err(rt, TCP, "undo_cwnd", asm("""
        ldxdw %r2, [%r1]
        ldxw %r0, [%r2+4096]
        exit
    """))
    assert e.errno == errno.EACCES and "access beyond struct tcp_sock" in e.log


def test_nullable_task_argument_must_be_checked(rt: Runtime) -> None:
    e = load_err(rt, TESTMOD, "test_maybe_null", asm("""
        ldxdw %r2, [%r1+8]
        ldxw %r0, [%r2]
        exit
    """))
    assert e.errno == errno.EACCES and "invalid mem access 'trusted_ptr_or_null_'" in e.log
    load_struct_ops(rt, TESTMOD, "test_maybe_null", asm("""
        ldxdw %r2, [%r1+8]
        mov %r0, 0
        jeq %r2, 0, +1
        ldxw %r0, [%r2]
        exit
    """))


def test_void_member_needs_no_r0(rt: Runtime) -> None:
    load_struct_ops(rt, TCP, "cong_avoid", asm("exit"))
    e = load_err(rt, TCP, "ssthresh", asm("exit"))
    assert e.errno == errno.EACCES and "R0 !read_ok" in e.log


def test_test_run_is_eopnotsupp(rt: Runtime) -> None:
    fd = load_struct_ops(rt, TCP, "ssthresh", ssthresh_prog())
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd), runtime=rt)
    assert e.value.errno == errno.EOPNOTSUPP


# -- the subsystem calls members ---------------------------------------------------------------
def test_subsystem_calls_members_with_kernel_objects(rt: Runtime) -> None:
    tcp_cc(rt, "cubic_like")
    cc = rt.struct_ops(TCP, "cubic_like")
    sk = KernelObject(rt, "tcp_sock", snd_cwnd=10)
    assert cc.ssthresh(sk) == 5
    assert cc.cong_avoid(sk, 1, 4) is None
    assert sk.snd_cwnd == 14
    assert cc.undo_cwnd(sk) == 14
    sk.snd_cwnd = 2
    assert cc.ssthresh(sk) == 2
    assert struct_ops_type(TCP).available(rt)[-1] == "cubic_like"  # type: ignore[union-attr]


def test_calling_an_unimplemented_member_is_enoent(rt: Runtime) -> None:
    tcp_cc(rt, "partial")
    with pytest.raises(BpfError) as e:
        rt.struct_ops(TCP, "partial").cwnd_event(KernelObject(rt, "tcp_sock"), 0)
    assert e.value.errno == errno.ENOENT


def test_lookup_of_unregistered_is_enoent(rt: Runtime) -> None:
    with pytest.raises(BpfError) as e:
        rt.struct_ops(TCP, "nope")
    assert e.value.errno == errno.ENOENT


def _array(rt: Runtime) -> int:
    return int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                                 value_size=8, max_entries=1), runtime=rt))


def test_testmod_reg_calls_test_1_and_test_2(rt: Runtime) -> None:
    """bpf_dummy_reg: test_1(), then test_2(4, data); test_2 stores a * 1000 + b."""
    arr = _array(rt)
    test_2 = [
        *asm("""
            ldxdw %r6, [%r1]
            ldxdw %r7, [%r1+8]
            mul %r6, 1000
            add %r6, %r7
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
        """),
        Insn(0x18, 1, 1, 0, arr), Insn(0, 0, 0, 0, 0),  # r1 = map
        *asm("""
            call 1
            jeq %r0, 0, +1
            stxdw [%r0], %r6
            exit
        """),
    ]
    fds = {"test_1": load_struct_ops(rt, TESTMOD, "test_1", asm("mov %r0, 0\nexit")),
           "test_2": load_struct_ops(rt, TESTMOD, "test_2", test_2)}
    fd = create_map(rt, TESTMOD, name="tm")
    update(rt, fd, value(TESTMOD, {k: int(v) for k, v in fds.items()}, data=21))
    out = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=arr, key=bytes(4)), runtime=rt)
    assert struct.unpack("<q", out)[0] == 4 * 1000 + 21


# -- struct_ops links ---------------------------------------------------------------------------
def link_create(rt: Runtime, map_fd: int) -> int:
    return int(bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=map_fd,
                                                   attach_type=AttachType.STRUCT_OPS),
                   runtime=rt))


def test_link_registers_and_close_unregisters(rt: Runtime) -> None:
    fd, _ = tcp_cc(rt, "via_link", link=True)
    link = link_create(rt, fd)
    assert rt.struct_ops(TCP, "via_link").ssthresh(KernelObject(rt, "tcp_sock",
                                                                snd_cwnd=40)) == 20
    assert struct.unpack_from("<II", lookup(rt, fd)) == (1, StructOpsState.READY)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, __import__("pyebpf").InfoByFdAttr(bpf_fd=link),
               runtime=rt)
    assert info.type == LinkType.STRUCT_OPS and info.map_id == rt.fds[fd].obj.id
    rt.close(link)
    assert "via_link" not in struct_ops_type(TCP).registered(rt)  # type: ignore[union-attr]


def test_link_detach_unregisters_and_leaves_a_defunct_link(rt: Runtime) -> None:
    fd, _ = tcp_cc(rt, "det", link=True)
    link = link_create(rt, fd)
    bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=link), runtime=rt)
    assert "det" not in struct_ops_type(TCP).registered(rt)  # type: ignore[union-attr]
    fd2, _ = tcp_cc(rt, "det", link=True)
    with pytest.raises(BpfError) as e:
        bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=fd2), runtime=rt)
    assert e.value.errno == errno.ENOLINK


def test_link_needs_a_ready_link_map(rt: Runtime) -> None:
    legacy, _ = tcp_cc(rt, "legacy")
    empty = create_map(rt, TCP, link=True)
    for fd in (legacy, empty):
        with pytest.raises(BpfError) as e:
            link_create(rt, fd)
        assert e.value.errno == errno.EINVAL


def test_second_link_on_same_name_is_eexist(rt: Runtime) -> None:
    fd, _ = tcp_cc(rt, "twice", link=True)
    link_create(rt, fd)
    with pytest.raises(BpfError) as e:
        link_create(rt, fd)
    assert e.value.errno == errno.EEXIST


def test_link_update_swaps_the_table(rt: Runtime) -> None:
    fd1, _ = tcp_cc(rt, "swap", link=True)
    link = link_create(rt, fd1)
    fd2 = create_map(rt, TCP, link=True)
    half = load_struct_ops(rt, TCP, "ssthresh", asm("mov %r0, 99\nexit"))
    progs2 = {"ssthresh": int(half),
              "undo_cwnd": int(load_struct_ops(rt, TCP, "undo_cwnd", asm("mov %r0, 1\nexit"))),
              "cong_avoid": int(load_struct_ops(rt, TCP, "cong_avoid", asm("exit")))}
    update(rt, fd2, value(TCP, progs2, name=b"swap"))
    with pytest.raises(BpfError) as e:  # BPF_F_REPLACE with the wrong old map
        bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=fd2, old_prog_fd=fd2,
                                            flags=AttachFlags.REPLACE), runtime=rt)
    assert e.value.errno == errno.EPERM
    bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=fd2, old_prog_fd=fd1,
                                        flags=AttachFlags.REPLACE), runtime=rt)
    assert rt.struct_ops(TCP, "swap").ssthresh(KernelObject(rt, "tcp_sock")) == 99
    assert struct.unpack_from("<I", lookup(rt, fd1))[0] == 0  # the old map's reference went


def test_link_update_to_another_name_is_einval(rt: Runtime) -> None:
    fd1, _ = tcp_cc(rt, "first", link=True)
    link = link_create(rt, fd1)
    fd2, _ = tcp_cc(rt, "second", link=True)
    with pytest.raises(BpfError) as e:
        bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=fd2), runtime=rt)
    assert e.value.errno == errno.EINVAL
    assert rt.struct_ops(TCP, "first") is not None


def test_link_update_to_another_struct_is_einval(rt: Runtime) -> None:
    fd1, _ = tcp_cc(rt, "kind", link=True)
    link = link_create(rt, fd1)
    tm = create_map(rt, TESTMOD, link=True)
    update(rt, tm, value(TESTMOD, {}))
    with pytest.raises(BpfError) as e:
        bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=tm), runtime=rt)
    assert e.value.errno == errno.EINVAL


# -- from an ELF object (examples/struct_ops_cc.c) ------------------------------------------------
EXAMPLE = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / \
    "struct_ops_cc.o"


def test_example_object_registers_a_congestion_control(rt: Runtime) -> None:
    from pyebpf import load_object
    from pyebpf.kernel_btf import kernel_btf

    coll = load_object(EXAMPLE, runtime=rt, target_btf=kernel_btf())
    ms = coll.spec.maps["pyebpf_cc"]
    assert ms.type == MapType.STRUCT_OPS and ms.struct_ops.progs == {
        "ssthresh": "cc_ssthresh", "cong_avoid": "cc_cong_avoid",
        "undo_cwnd": "cc_undo_cwnd", "init": "cc_init"}
    with pytest.raises(BpfError):  # not attached yet
        rt.struct_ops(TCP, "pyebpf_cc")
    link = coll.attach_struct_ops("pyebpf_cc")
    assert link is not None
    cc = rt.struct_ops(TCP, "pyebpf_cc")
    sk = KernelObject(rt, "tcp_sock", snd_cwnd=10)
    assert cc.init(sk) is None and sk.snd_ssthresh == 0x7FFF_FFFF
    for _ in range(3):  # slow start: +acked per call
        cc.cong_avoid(sk, 0, 2)
    assert sk.snd_cwnd == 16
    sk.snd_ssthresh = cc.ssthresh(sk)
    assert sk.snd_ssthresh == 8
    for _ in range(4):  # congestion avoidance: +1 per window acked (16 segments)
        cc.cong_avoid(sk, 0, 4)
    assert (sk.snd_cwnd, sk.snd_cwnd_cnt) == (17, 0)
    assert cc.undo_cwnd(sk) == 17
    calls = {int.from_bytes(k, "little"): int.from_bytes(v, "little")
             for k, v in coll.maps["calls"].items()}
    assert calls == {0: 1, 1: 7, 2: 1}
    rt.close(link)
    with pytest.raises(BpfError):
        rt.struct_ops(TCP, "pyebpf_cc")
