"""The link object and the commands every kind shares (kernel/bpf/syscall.c)."""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import Any

import pytest

from pyebpf.attr import (
    GetIdAttr,
    InfoByFdAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    LinkUpdateAttr,
    MapCreateAttr,
    ObjPinAttr,
    UserPtr,
    attr_to_bytes,
)
from pyebpf.errors import BpfError
from pyebpf.links import BPF_LINK_INFO_SIZE, BpfLink, LinkInfo, init_net
from pyebpf.links.base import (
    _LINK_ATTACH_TYPES,
    _LINK_KINDS,
    register_link_attach_type,
    register_link_kind,
    settle_link,
)
from pyebpf.runtime import ObjKind, Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachFlags, AttachType, Cmd, LinkType, MapType, ProgType

XDP_PASS = "mov %r0, 2\nexit"
A = AttachType


def _err(fn: Callable[[], Any]) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return exc.value.errno


def test_link_create_with_closed_prog_fd_is_ebadf(sys_bpf: Any) -> None:
    assert _err(lambda: sys_bpf(Cmd.LINK_CREATE, LinkCreateAttr(
        prog_fd=77, target_fd=1, attach_type=A.XDP))) == errno.EBADF


def test_link_create_with_a_map_fd_as_program_is_einval(sys_bpf: Any) -> None:
    m = sys_bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                              value_size=4, max_entries=1))
    assert _err(lambda: sys_bpf(Cmd.LINK_CREATE, LinkCreateAttr(
        prog_fd=m, target_fd=1, attach_type=A.XDP))) == errno.EINVAL


def test_link_create_attach_type_of_another_prog_type_is_einval(load: Any, link: Any) -> None:
    xdp = load(ProgType.XDP, XDP_PASS)
    assert _err(lambda: link(xdp, 1, A.CGROUP_INET_INGRESS)) == errno.EINVAL


def test_link_create_for_a_type_without_links_is_einval(load: Any, link: Any) -> None:
    prog = load(ProgType.SOCKET_FILTER, "mov %r0, 0\nexit")
    assert _err(lambda: link(prog, 1, A.CGROUP_INET_INGRESS)) == errno.EINVAL


def test_link_create_nonzero_byte_past_last_field_is_einval(rt: Runtime) -> None:
    raw = bytearray(attr_to_bytes(LinkCreateAttr(prog_fd=3, target_fd=1, attach_type=A.XDP)))
    raw[60] = 1  # BPF_LINK_CREATE_LAST_FIELD is uprobe_multi.pid (56..60)
    assert _err(lambda: bpf(Cmd.LINK_CREATE, bytes(raw), runtime=rt)) == errno.EINVAL


def test_link_create_raw_union_decodes_into_every_member() -> None:
    from pyebpf.attr import attr_from_bytes

    raw = attr_to_bytes(LinkCreateAttr(prog_fd=3, target_fd=1, attach_type=A.TCX_INGRESS,
                                       relative_fd=5, expected_revision=9))
    got = attr_from_bytes(Cmd.LINK_CREATE, raw)
    assert (got.relative_fd, got.target_btf_id, got.expected_revision, got.tracing_cookie) \
        == (5, 5, 9, 9)


def test_failed_link_create_still_consumes_an_id(rt: Runtime, load: Any, link: Any) -> None:
    xdp = load(ProgType.XDP, XDP_PASS)
    first = link(xdp, 1, A.XDP)
    assert _err(lambda: link(xdp, 1, A.XDP)) == errno.EBUSY  # bpf_link_prime took id 2
    rt.close(first)
    third = link(xdp, 1, A.XDP)
    assert rt.fds[third].obj.id == 3


def test_failed_link_create_releases_its_program_reference(rt: Runtime, load: Any,
                                                           link: Any) -> None:
    xdp = load(ProgType.XDP, XDP_PASS)
    held = link(xdp, 1, A.XDP)
    prog = rt.fds[xdp].obj
    before = prog.refcnt
    _err(lambda: link(xdp, 1, A.XDP))
    assert prog.refcnt == before
    rt.close(held)
    assert prog.refcnt == before - 1


def test_link_keeps_its_program_after_the_prog_fd_is_closed(rt: Runtime, load: Any,
                                                            link: Any) -> None:
    xdp = load(ProgType.XDP, "mov %r0, 1\nexit")
    lfd = link(xdp, 1, A.XDP)
    pid = rt.fds[xdp].obj.id
    rt.close(xdp)
    assert pid in rt.objects(ObjKind.PROG)
    assert init_net(rt).device(1).receive(bytes(60)).verdict == "drop"
    rt.close(lfd)
    assert pid not in rt.objects(ObjKind.PROG)
    assert init_net(rt).device(1).receive(bytes(60)).verdict == "pass"


def test_closing_the_last_link_reference_detaches_but_a_pin_keeps_it(
        rt: Runtime, load: Any, link: Any, sys_bpf: Any) -> None:
    lfd = link(load(ProgType.XDP, "mov %r0, 1\nexit"), 1, A.XDP)
    sys_bpf(Cmd.OBJ_PIN, ObjPinAttr(pathname="/sys/fs/bpf/xdp_link", bpf_fd=lfd))
    rt.close(lfd)
    lo = init_net(rt).device(1)
    assert lo.receive(bytes(60)).verdict == "drop"
    again = sys_bpf(Cmd.OBJ_GET, ObjPinAttr(pathname="/sys/fs/bpf/xdp_link"))
    assert isinstance(rt.fds[again].obj, BpfLink)
    rt.close(again)
    rt.bpffs.pop("/sys/fs/bpf/xdp_link").release()  # unlink
    assert lo.receive(bytes(60)).verdict == "pass"


def test_link_ids_walk_and_get_fd_by_id(rt: Runtime, load: Any, link: Any,
                                        sys_bpf: Any) -> None:
    lfd = link(load(ProgType.XDP, XDP_PASS), 1, A.XDP)
    lid = rt.fds[lfd].obj.id
    assert sys_bpf(Cmd.LINK_GET_NEXT_ID, GetIdAttr(start_id=0)) == lid
    assert _err(lambda: sys_bpf(Cmd.LINK_GET_NEXT_ID, GetIdAttr(start_id=lid))) == errno.ENOENT
    fd2 = sys_bpf(Cmd.LINK_GET_FD_BY_ID, GetIdAttr(start_id=lid))
    assert rt.fds[fd2].obj is rt.fds[lfd].obj
    assert _err(lambda: sys_bpf(Cmd.LINK_GET_FD_BY_ID, GetIdAttr(start_id=lid + 1))) \
        == errno.ENOENT


def test_link_info_reports_type_id_prog_and_target(rt: Runtime, load: Any, link: Any,
                                                   sys_bpf: Any) -> None:
    xdp = load(ProgType.XDP, XDP_PASS)
    lfd = link(xdp, 1, A.XDP)
    info = sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=lfd))
    assert (info.type, info.id, info.prog_id, info.ifindex) == (
        LinkType.XDP, rt.fds[lfd].obj.id, rt.fds[xdp].obj.id, 1)


def test_link_info_to_user_memory_writes_info_len_bytes(rt: Runtime, load: Any,
                                                        link: Any) -> None:
    lfd = link(load(ProgType.XDP, XDP_PASS), 1, A.XDP)
    region = rt.user_memory.map(bytearray(b"\xaa" * 64), kind="user")
    assert bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=lfd, info_len=8,
                                                    info=UserPtr(region.base)), runtime=rt) == 0
    got = rt.user_memory.read(region.base, 16)
    assert struct.unpack_from("<II", got) == (LinkType.XDP, rt.fds[lfd].obj.id)
    assert got[8:] == b"\xaa" * 8  # only info_len bytes written


def test_link_info_nonzero_bytes_past_the_struct_is_e2big(load: Any, link: Any,
                                                          sys_bpf: Any) -> None:
    lfd = link(load(ProgType.XDP, XDP_PASS), 1, A.XDP)
    buf = bytes(BPF_LINK_INFO_SIZE) + b"\x01"
    assert _err(lambda: sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(
        bpf_fd=lfd, info_len=len(buf), info=buf))) == errno.E2BIG


def test_link_update_bad_flags_is_einval_before_the_fd_is_looked_up(sys_bpf: Any) -> None:
    assert _err(lambda: sys_bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(
        link_fd=77, new_prog_fd=78, flags=AttachFlags.BEFORE))) == errno.EINVAL


def test_link_update_on_a_closed_fd_is_ebadf_and_on_a_prog_fd_einval(load: Any,
                                                                     sys_bpf: Any) -> None:
    xdp = load(ProgType.XDP, XDP_PASS)
    assert _err(lambda: sys_bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(
        link_fd=77, new_prog_fd=xdp))) == errno.EBADF
    assert _err(lambda: sys_bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(
        link_fd=xdp, new_prog_fd=xdp))) == errno.EINVAL


def test_link_update_releases_the_old_program(rt: Runtime, load: Any, link: Any,
                                              sys_bpf: Any) -> None:
    a, b = load(ProgType.XDP, XDP_PASS), load(ProgType.XDP, "mov %r0, 1\nexit")
    lfd = link(a, 1, A.XDP)
    aid = rt.fds[a].obj.id
    rt.close(a)
    sys_bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=lfd, new_prog_fd=b))
    assert aid not in rt.objects(ObjKind.PROG)
    assert init_net(rt).device(1).receive(bytes(60)).verdict == "drop"


def test_link_detach_on_a_kind_without_detach_is_eopnotsupp(rt: Runtime, load: Any,
                                                            sys_bpf: Any) -> None:
    class NoDetach(BpfLink):
        link_type = LinkType.UNSPEC

    xdp = rt.fds[load(ProgType.XDP, XDP_PASS)].obj
    fd = settle_link(rt, NoDetach(rt, xdp, 0))
    assert _err(lambda: sys_bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=fd))) \
        == errno.EOPNOTSUPP
    assert _err(lambda: sys_bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(
        link_fd=fd, new_prog_fd=load(ProgType.XDP, XDP_PASS)))) == errno.EINVAL


def test_registered_link_kind_is_built_by_link_create(rt: Runtime, load: Any,
                                                      link: Any) -> None:
    attached: list[BpfLink] = []

    class Probe(BpfLink):
        link_type = LinkType.SOCKMAP

        def attach(self) -> None:
            attached.append(self)
            super().attach()

    key = (ProgType.SK_MSG, A.SK_MSG_VERDICT)
    previous = _LINK_KINDS.get(key)
    register_link_kind(ProgType.SK_MSG, lambda r, attr, prog: Probe(r, prog, attr.attach_type),
                       attach_type=A.SK_MSG_VERDICT)
    try:
        prog = load(ProgType.SK_MSG, "mov %r0, 1\nexit", A.SK_MSG_VERDICT)
        fd = link(prog, 0, A.SK_MSG_VERDICT)
        assert attached == [rt.fds[fd].obj] and attached[0].attached
        # the attach type is checked against the program first: the kind isn't asked
        assert _err(lambda: link(prog, 0, A.SK_SKB_VERDICT)) == errno.EINVAL
        assert len(attached) == 1
    finally:
        if previous is None:
            del _LINK_KINDS[key]
        else:
            _LINK_KINDS[key] = previous


def test_registered_attach_type_kind_runs_before_any_program_lookup(rt: Runtime,
                                                                    sys_bpf: Any) -> None:
    seen: list[LinkCreateAttr] = []

    def create(r: Runtime, attr: LinkCreateAttr) -> int:
        seen.append(attr)
        return settle_link(r, BpfLink(r, None, attr.attach_type))

    previous = _LINK_ATTACH_TYPES.get(A.STRUCT_OPS)  # pyebpf.links.struct_ops's
    register_link_attach_type(A.STRUCT_OPS, create)
    try:
        fd = sys_bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=1234, attach_type=A.STRUCT_OPS))
        info = sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd))
        assert seen[0].map_fd == 1234 and info.prog_id == 0
    finally:
        del _LINK_ATTACH_TYPES[A.STRUCT_OPS]
        if previous is not None:
            register_link_attach_type(A.STRUCT_OPS, previous)


def test_link_info_pack_unpack_round_trip() -> None:
    info = LinkInfo(type=LinkType.TCX, id=7, prog_id=9, details={"ifindex": 3,
                                                                   "attach_type": 47})
    assert LinkInfo.unpack(info.pack()) == info
