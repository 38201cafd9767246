"""Cgroups: effective programs and cgroup_skb verdicts fired from Python.

The attach/detach/query errno table is pinned in test_scenarios.py (measured on
a cgroup v2 directory of the kernel); these tests pin the effective-array
computation and the run semantics."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf.attr import InfoByFdAttr, LinkDetachAttr, ProgAttachAttr, ProgQueryAttr
from pyebpf.errors import BpfError
from pyebpf.links import cgroup_root
from pyebpf.runtime import Runtime
from pyebpf.uapi import AttachFlags, AttachType, Cmd, LinkType, ProgType

A = AttachType
F = AttachFlags
ING, EGR = A.CGROUP_INET_INGRESS, A.CGROUP_INET_EGRESS
IPV4 = bytes(12) + b"\x08\x00" + b"\x45" + bytes(19) + bytes(26)


def _attach(sys_bpf: Any, cg_fd: int, prog: int, at: int = ING, flags: int = 0) -> None:
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg_fd, attach_bpf_fd=prog,
                                            attach_type=at, attach_flags=flags))


@pytest.fixture
def skb_prog(load: Any) -> Any:
    return lambda ret, at=ING: load(ProgType.CGROUP_SKB, f"mov %r0, {ret}\nexit", at)


def test_all_programs_must_allow_for_the_packet_to_pass(rt: Runtime, sys_bpf: Any,
                                                        skb_prog: Any) -> None:
    cg = cgroup_root(rt).mkdir("a")
    fd = cg.open()
    _attach(sys_bpf, fd, skb_prog(1), flags=F.ALLOW_MULTI)
    assert cg.run_skb(IPV4).allow
    _attach(sys_bpf, fd, skb_prog(0), flags=F.ALLOW_MULTI)
    _attach(sys_bpf, fd, skb_prog(1), flags=F.ALLOW_MULTI)
    got = cg.run_skb(IPV4)
    assert (got.allow, got.verdicts) == (False, (1, 0, 1))  # every program ran


def test_parent_multi_programs_apply_to_children(rt: Runtime, sys_bpf: Any,
                                                 skb_prog: Any) -> None:
    parent = cgroup_root(rt).mkdir("p")
    child = parent.mkdir("c")
    _attach(sys_bpf, parent.open(), skb_prog(0), flags=F.ALLOW_MULTI)
    _attach(sys_bpf, child.open(), skb_prog(1), flags=F.ALLOW_MULTI)
    got = child.run_skb(IPV4)
    assert (got.allow, got.verdicts) == (False, (1, 0))  # own first, then the parent's


def test_child_program_overrides_an_overridable_parent(rt: Runtime, sys_bpf: Any,
                                                       skb_prog: Any) -> None:
    parent = cgroup_root(rt).mkdir("p")
    child = parent.mkdir("c")
    _attach(sys_bpf, parent.open(), skb_prog(0), flags=F.ALLOW_OVERRIDE)
    assert not child.run_skb(IPV4).allow  # inherited
    _attach(sys_bpf, child.open(), skb_prog(1))
    assert child.run_skb(IPV4).verdicts == (1,)


def test_preorder_programs_run_first_outermost_cgroup_first(rt: Runtime, sys_bpf: Any,
                                                            load: Any) -> None:
    parent = cgroup_root(rt).mkdir("p")
    child = parent.mkdir("c")
    progs = {}
    for name, ret in (("p_pre", 1), ("p", 1), ("c_pre", 1), ("c", 1)):
        progs[name] = load(ProgType.CGROUP_SKB, f"mov %r0, {ret}\nexit", ING)
    _attach(sys_bpf, parent.open(), progs["p"], flags=F.ALLOW_MULTI)
    _attach(sys_bpf, parent.open(), progs["p_pre"], flags=F.ALLOW_MULTI | F.PREORDER)
    _attach(sys_bpf, child.open(), progs["c"], flags=F.ALLOW_MULTI)
    _attach(sys_bpf, child.open(), progs["c_pre"], flags=F.ALLOW_MULTI | F.PREORDER)
    ids = {rt.fds[fd].obj.id: name for name, fd in progs.items()}
    got = sys_bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=child.open(), attach_type=ING,
                                                query_flags=1))
    assert [ids[i] for i in got.prog_ids] == ["p_pre", "c_pre", "c", "p"]


def test_egress_bit_one_asks_for_congestion_notification(rt: Runtime, sys_bpf: Any,
                                                         skb_prog: Any) -> None:
    cg = cgroup_root(rt).mkdir("a")
    _attach(sys_bpf, cg.open(), skb_prog(3, EGR), at=EGR, flags=F.ALLOW_MULTI)
    got = cg.run_skb(IPV4, egress=True)
    assert (got.allow, got.cn) == (True, True)


def test_cgroup_skb_program_sees_the_packet_from_the_ip_header(rt: Runtime, sys_bpf: Any,
                                                               load: Any) -> None:
    cg = cgroup_root(rt).mkdir("a")
    # allow only if the first byte at data is 0x45 (version/IHL of the IPv4 header)
    prog = load(ProgType.CGROUP_SKB, "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\nmov %r0, 0\n"
                "mov %r4, %r2\nadd %r4, 1\njgt %r4, %r3, +3\nldxb %r5, [%r2+0]\n"
                "jne %r5, 0x45, +1\nmov %r0, 1\nexit", ING)
    _attach(sys_bpf, cg.open(), prog)
    assert cg.run_skb(IPV4).allow


def test_cgroup_link_runs_and_reports_its_cgroup(rt: Runtime, sys_bpf: Any, link: Any,
                                                 skb_prog: Any) -> None:
    cg = cgroup_root(rt).mkdir("a")
    lfd = link(skb_prog(0), cg.open(), ING)
    assert not cg.run_skb(IPV4).allow
    info = sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=lfd))
    assert (info.type, info.cgroup_id, info.attach_type) == (LinkType.CGROUP, cg.cgroup_id,
                                                             ING)
    sys_bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=lfd))
    assert cg.run_skb(IPV4).verdicts == ()


def test_rmdir_leaves_links_defunct_and_releases_programs(rt: Runtime, sys_bpf: Any,
                                                          link: Any, skb_prog: Any) -> None:
    cg = cgroup_root(rt).mkdir("a")
    fd = cg.open()
    lfd = link(skb_prog(1), fd, ING)
    prog = skb_prog(1)
    _attach(sys_bpf, fd, prog, flags=F.ALLOW_MULTI)
    refs = rt.fds[prog].obj.refcnt
    cg.rmdir()
    assert rt.fds[prog].obj.refcnt == refs - 1
    assert sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=lfd)).cgroup_id == 0
    with pytest.raises(BpfError) as exc:
        cg.open()
    assert exc.value.errno == errno.ENOENT


def test_cgroup_hook_holds_64_programs_then_e2big(rt: Runtime, sys_bpf: Any,
                                                  skb_prog: Any) -> None:
    fd = cgroup_root(rt).mkdir("a").open()
    for _ in range(64):
        _attach(sys_bpf, fd, skb_prog(1), flags=F.ALLOW_MULTI)
    with pytest.raises(BpfError) as exc:
        _attach(sys_bpf, fd, skb_prog(1), flags=F.ALLOW_MULTI)
    assert exc.value.errno == errno.E2BIG


def test_before_and_after_position_programs_in_the_list(rt: Runtime, sys_bpf: Any,
                                                        skb_prog: Any) -> None:
    fd = cgroup_root(rt).mkdir("a").open()
    a, b, c = skb_prog(1), skb_prog(1), skb_prog(1)
    _attach(sys_bpf, fd, a, flags=F.ALLOW_MULTI)
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=fd, attach_bpf_fd=b, attach_type=ING,
                                            attach_flags=F.ALLOW_MULTI | F.BEFORE,
                                            relative_fd=a))
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=fd, attach_bpf_fd=c, attach_type=ING,
                                            attach_flags=F.ALLOW_MULTI | F.BEFORE))
    got = sys_bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=fd, attach_type=ING))
    names = {rt.fds[x].obj.id: n for n, x in (("a", a), ("b", b), ("c", c))}
    assert [names[i] for i in got.prog_ids] == ["c", "b", "a"]


def test_sock_create_hook_denies_when_a_program_returns_zero(rt: Runtime, sys_bpf: Any,
                                                             load: Any) -> None:
    cg = cgroup_root(rt).mkdir("a")
    # deny AF_INET6 (family at offset 4 of struct bpf_sock)
    prog = load(ProgType.CGROUP_SOCK, "ldxw %r2, [%r1+4]\nmov %r0, 1\njne %r2, 10, +1\n"
                "mov %r0, 0\nexit", A.CGROUP_INET_SOCK_CREATE)
    _attach(sys_bpf, cg.open(), prog, at=A.CGROUP_INET_SOCK_CREATE)
    assert cg.run(A.CGROUP_INET_SOCK_CREATE, family=2, type=1, protocol=6).allow
    got = cg.run(A.CGROUP_INET_SOCK_CREATE, family=10)
    assert (got.allow, got.verdicts) == (False, (0,))


def test_sock_create_hook_writes_are_in_the_result(rt: Runtime, sys_bpf: Any,
                                                   load: Any) -> None:
    cg = cgroup_root(rt).mkdir("a")
    prog = load(ProgType.CGROUP_SOCK, "stw [%r1+16], 42\nmov %r0, 1\nexit",  # sk->mark
                A.CGROUP_INET_SOCK_CREATE)
    _attach(sys_bpf, cg.open(), prog, at=A.CGROUP_INET_SOCK_CREATE)
    assert cg.run(A.CGROUP_INET_SOCK_CREATE, family=2).ctx["mark"] == 42


def test_connect4_hook_rewrites_the_destination(rt: Runtime, sys_bpf: Any,
                                                load: Any) -> None:
    cg = cgroup_root(rt).mkdir("a")
    prog = load(ProgType.CGROUP_SOCK_ADDR, "stw [%r1+24], 0x5000\nmov %r0, 1\nexit",
                A.CGROUP_INET4_CONNECT)  # user_port = htons(80)
    _attach(sys_bpf, cg.open(), prog, at=A.CGROUP_INET4_CONNECT)
    got = cg.run(A.CGROUP_INET4_CONNECT, user_family=2, user_ip4=0x0100007F,
                 user_port=0x901F)
    assert (got.allow, got.ctx["user_port"]) == (True, 0x5000)


def test_sock_hook_socket_cookie_is_one_per_socket(rt: Runtime, sys_bpf: Any,
                                                   load: Any) -> None:
    # bpf_get_socket_cookie_sock: the cookie of the socket being created, the same
    # on every call; each new socket gets the next one (sock_gen_cookie).
    cg = cgroup_root(rt).mkdir("a")
    prog = load(ProgType.CGROUP_SOCK, """
        mov %r6, %r1
        call 46
        mov %r7, %r0
        mov %r1, %r6
        call 46
        mov %r2, 0
        jne %r0, %r7, +1
        mov %r2, %r0
        stxw [%r6+16], %r2
        mov %r0, 1
        exit""", A.CGROUP_INET_SOCK_CREATE)
    _attach(sys_bpf, cg.open(), prog, at=A.CGROUP_INET_SOCK_CREATE)
    first = cg.run(A.CGROUP_INET_SOCK_CREATE, family=2).ctx["mark"]
    second = cg.run(A.CGROUP_INET_SOCK_CREATE, family=2).ctx["mark"]
    assert first > 0 and second == first + 1
