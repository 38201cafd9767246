"""Network namespaces: flow dissector and sk_lookup hooks fired from Python.

The attach-rule errno tables are pinned in test_scenarios.py (measured on the
kernel); these tests pin what firing the hooks does and the rules that need
two namespaces."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from pyebpf.attr import LinkDetachAttr, ProgAttachAttr, ProgQueryAttr
from pyebpf.errors import BpfError
from pyebpf.links import Netns, current_net, init_net, set_current_net
from pyebpf.runtime import Runtime
from pyebpf.uapi import AttachType, Cmd, ProgType

A = AttachType
AF_INET = 2
IPPROTO_TCP = 6
#: Writes thoff = nhoff + 20 and ip_proto = 6 into the flow keys, returns BPF_OK.
DISSECT = """ldxdw %r2, [%r1+144]
ldxh %r3, [%r2+0]
add %r3, 20
stxh [%r2+2], %r3
stb [%r2+9], 6
mov %r0, 0
exit"""


def test_dissect_without_a_program_is_none(rt: Runtime) -> None:
    assert init_net(rt).dissect(bytes(60)) is None


def test_dissect_runs_the_linked_program_on_the_frame(rt: Runtime, load: Any,
                                                      link: Any) -> None:
    net = init_net(rt)
    link(load(ProgType.FLOW_DISSECTOR, DISSECT), net.open(), A.FLOW_DISSECTOR)
    frame = bytes(12) + b"\x08\x00" + bytes(46)
    verdict, keys = net.dissect(frame)
    nhoff, thoff = struct.unpack_from("<HH", keys)
    assert (verdict, nhoff, thoff, keys[9], keys[10:12]) == (0, 14, 34, 6, b"\x08\x00")


def test_dissect_clamps_thoff_to_the_frame(rt: Runtime, load: Any, sys_bpf: Any) -> None:
    prog = load(ProgType.FLOW_DISSECTOR, "ldxdw %r2, [%r1+144]\nsth [%r2+2], 999\n"
                "mov %r0, 0\nexit")
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(attach_bpf_fd=prog, attach_type=A.FLOW_DISSECTOR))
    _, keys = init_net(rt).dissect(bytes(40))
    assert struct.unpack_from("<H", keys, 2)[0] == 40


def test_root_namespace_flow_dissector_wins_over_a_childs(rt: Runtime, load: Any,
                                                          sys_bpf: Any) -> None:
    child = Netns(rt, "child")
    set_current_net(rt, child)
    drop = load(ProgType.FLOW_DISSECTOR, "mov %r0, 2\nexit")
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(attach_bpf_fd=drop, attach_type=A.FLOW_DISSECTOR))
    assert child.dissect(bytes(60))[0] == 2
    set_current_net(rt, init_net(rt))
    ok = load(ProgType.FLOW_DISSECTOR, "mov %r0, 0\nexit")
    # flow_dissector_bpf_prog_attach_check: root can't attach while a child has one
    with pytest.raises(BpfError) as exc:
        sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(attach_bpf_fd=ok, attach_type=A.FLOW_DISSECTOR))
    assert exc.value.errno == errno.EEXIST


def test_child_namespace_cannot_attach_while_root_has_a_flow_dissector(
        rt: Runtime, load: Any, link: Any) -> None:
    prog = load(ProgType.FLOW_DISSECTOR, "mov %r0, 0\nexit")
    link(prog, init_net(rt).open(), A.FLOW_DISSECTOR)
    child = Netns(rt, "child")
    with pytest.raises(BpfError) as exc:
        link(prog, child.open(), A.FLOW_DISSECTOR)
    assert exc.value.errno == errno.EEXIST


def _lookup(net: Netns) -> Any:
    return net.sk_lookup(family=AF_INET, protocol=IPPROTO_TCP, local_ip=0x0100007F,
                         local_port=80, remote_ip=0x0200007F, remote_port=4242)


def test_sk_lookup_runs_every_program_in_attach_order(rt: Runtime, load: Any,
                                                      link: Any) -> None:
    net = init_net(rt)
    ns = net.open()
    # the first program reads local_port (offset 60) and returns 1 if it is 80
    link(load(ProgType.SK_LOOKUP, "ldxw %r2, [%r1+60]\nmov %r0, 0\njne %r2, 80, +1\n"
              "mov %r0, 1\nexit", A.SK_LOOKUP), ns, A.SK_LOOKUP)
    link(load(ProgType.SK_LOOKUP, "mov %r0, 1\nexit", A.SK_LOOKUP), ns, A.SK_LOOKUP)
    got = _lookup(net)
    assert (got.verdicts, got.dropped, got.selected_sk) == ((1, 1), False, 0)


def test_sk_lookup_drop_from_any_program_drops(rt: Runtime, load: Any, link: Any) -> None:
    net = init_net(rt)
    ns = net.open()
    link(load(ProgType.SK_LOOKUP, "mov %r0, 0\nexit", A.SK_LOOKUP), ns, A.SK_LOOKUP)
    link(load(ProgType.SK_LOOKUP, "mov %r0, 1\nexit", A.SK_LOOKUP), ns, A.SK_LOOKUP)
    assert _lookup(net).dropped


def test_detached_sk_lookup_link_no_longer_runs(rt: Runtime, load: Any, link: Any,
                                                sys_bpf: Any) -> None:
    net = init_net(rt)
    lfd = link(load(ProgType.SK_LOOKUP, "mov %r0, 0\nexit", A.SK_LOOKUP), net.open(),
               A.SK_LOOKUP)
    sys_bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=lfd))
    assert _lookup(net).verdicts == ()


def test_sk_lookup_allows_64_links_then_e2big(rt: Runtime, load: Any, link: Any) -> None:
    ns = init_net(rt).open()
    prog = load(ProgType.SK_LOOKUP, "mov %r0, 1\nexit", A.SK_LOOKUP)
    for _ in range(64):
        link(prog, ns, A.SK_LOOKUP)
    with pytest.raises(BpfError) as exc:
        link(prog, ns, A.SK_LOOKUP)
    assert exc.value.errno == errno.E2BIG


def test_namespace_going_away_drops_prog_attachments(rt: Runtime, load: Any,
                                                     sys_bpf: Any) -> None:
    child = Netns(rt, "child")
    set_current_net(rt, child)
    prog = load(ProgType.FLOW_DISSECTOR, "mov %r0, 0\nexit")
    prog_obj = rt.fds[prog].obj
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(attach_bpf_fd=prog, attach_type=A.FLOW_DISSECTOR))
    refs = prog_obj.refcnt
    child.exit()
    assert current_net(rt) is init_net(rt)
    assert prog_obj.refcnt == refs - 1
    assert not child.alive


def test_query_of_a_namespace_fd_reports_its_programs(rt: Runtime, load: Any, link: Any,
                                                      sys_bpf: Any) -> None:
    child = Netns(rt, "child")
    prog = load(ProgType.SK_LOOKUP, "mov %r0, 1\nexit", A.SK_LOOKUP)
    link(prog, child.open(), A.SK_LOOKUP)
    got = sys_bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=child.open(),
                                                attach_type=A.SK_LOOKUP))
    assert got.prog_ids == (rt.fds[prog].obj.id,)
    empty = sys_bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=init_net(rt).open(),
                                                  attach_type=A.SK_LOOKUP))
    assert empty.prog_ids == ()


def test_query_into_a_short_array_is_enospc_after_the_copy(rt: Runtime, load: Any,
                                                           link: Any, sys_bpf: Any) -> None:
    ns = init_net(rt).open()
    a = load(ProgType.SK_LOOKUP, "mov %r0, 1\nexit", A.SK_LOOKUP)
    b = load(ProgType.SK_LOOKUP, "mov %r0, 1\nexit", A.SK_LOOKUP)
    link(a, ns, A.SK_LOOKUP)
    link(b, ns, A.SK_LOOKUP)
    ids = bytearray(8)
    with pytest.raises(BpfError) as exc:
        sys_bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=ns, attach_type=A.SK_LOOKUP,
                                              prog_ids=ids, prog_cnt=1))
    assert exc.value.errno == errno.ENOSPC
    assert struct.unpack("<II", ids) == (rt.fds[a].obj.id, 0)
    assert exc.value.result.prog_cnt == 2


# -- the netns rule table (net_namespace.c), one test per rule ----------------------------------
FD, SK = A.FLOW_DISSECTOR, A.SK_LOOKUP


class _Ns:
    """A namespace with loaded programs, and the commands the rules use."""

    def __init__(self, rt: Runtime, load: Any, sys_bpf: Any) -> None:
        from pyebpf.attr import LinkCreateAttr

        self.rt, self.bpf, self.LinkCreateAttr = rt, sys_bpf, LinkCreateAttr
        self.fd1 = load(ProgType.FLOW_DISSECTOR, "mov %r0, 0\nexit")
        self.fd2 = load(ProgType.FLOW_DISSECTOR, "mov %r0, 0\nexit")
        self.sk = load(ProgType.SK_LOOKUP, "mov %r0, 1\nexit", SK)
        self.ns = init_net(rt).open()

    def link(self, prog: int, at: int = FD, **kw: Any) -> int:
        return int(self.bpf(Cmd.LINK_CREATE, self.LinkCreateAttr(
            prog_fd=prog, target_fd=kw.pop("target", self.ns), attach_type=at, **kw)))

    def attach(self, prog: int, at: int = FD, **kw: Any) -> None:
        self.bpf(Cmd.PROG_ATTACH, ProgAttachAttr(attach_bpf_fd=prog, attach_type=at, **kw))

    def detach(self, prog: int, at: int = FD) -> None:
        self.bpf(Cmd.PROG_DETACH, ProgAttachAttr(attach_bpf_fd=prog, attach_type=at))

    def update(self, link: int, prog: int, **kw: Any) -> None:
        from pyebpf.attr import LinkUpdateAttr

        self.bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=prog, **kw))


def _second_flow_dissector_link(n: _Ns) -> None:
    n.link(n.fd1)
    n.link(n.fd2)


def _prog_attach_over_links(n: _Ns) -> None:
    n.link(n.fd1)
    n.attach(n.fd2)


def _link_over_prog_attach(n: _Ns) -> None:
    n.attach(n.fd1)
    n.link(n.fd2)


def _prog_detach_with_links(n: _Ns) -> None:
    n.link(n.fd1)
    n.detach(n.fd1)


def _prog_detach_not_attached(n: _Ns) -> None:
    n.attach(n.fd1)
    n.detach(n.fd2)


def _prog_attach_with_target_fd(n: _Ns) -> None:
    n.attach(n.fd1, target_fd=n.ns)


def _prog_attach_same_prog_twice(n: _Ns) -> None:
    n.attach(n.fd1)
    n.attach(n.fd1)


def _prog_attach_sk_lookup(n: _Ns) -> None:
    n.attach(n.sk, SK)


def _link_flags(n: _Ns) -> None:
    n.link(n.fd1, flags=1)


def _link_target_not_a_netns(n: _Ns) -> None:
    n.link(n.fd1, target=n.fd2)


def _update_detached_link(n: _Ns) -> None:
    lfd = n.link(n.fd1)
    n.bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=lfd))
    n.update(lfd, n.fd2)


def _update_gone_netns_link(n: _Ns) -> None:
    child = Netns(n.rt, "child")
    cfd = child.open()
    lfd = n.link(n.fd1, target=cfd)
    n.rt.close(cfd)
    child.exit()  # no process and no fd left: the namespace goes
    n.update(lfd, n.fd2)


def _update_old_prog_mismatch_before_enolink(n: _Ns) -> None:
    from pyebpf.uapi import AttachFlags

    lfd = n.link(n.fd1)
    n.bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=lfd))
    n.update(lfd, n.fd2, flags=AttachFlags.REPLACE, old_prog_fd=n.fd2)


def _update_other_prog_type(n: _Ns) -> None:
    n.update(n.link(n.fd1), n.sk)


def _sk_lookup_65th_link(n: _Ns) -> None:
    for _ in range(65):
        n.link(n.sk, SK)


NETNS_RULES = [
    (_second_flow_dissector_link, errno.E2BIG),
    (_prog_attach_over_links, errno.EEXIST),
    (_link_over_prog_attach, errno.EEXIST),
    (_prog_detach_with_links, errno.EINVAL),
    (_prog_detach_not_attached, errno.ENOENT),
    (_prog_attach_with_target_fd, errno.EINVAL),
    (_prog_attach_same_prog_twice, errno.EINVAL),
    (_prog_attach_sk_lookup, errno.EINVAL),
    (_link_flags, errno.EINVAL),
    (_link_target_not_a_netns, errno.EINVAL),
    (_update_detached_link, errno.ENOLINK),
    (_update_gone_netns_link, errno.ENOLINK),
    (_update_old_prog_mismatch_before_enolink, errno.EPERM),
    (_update_other_prog_type, errno.EINVAL),
    (_sk_lookup_65th_link, errno.E2BIG),
]


@pytest.mark.parametrize(("rule", "want"), NETNS_RULES,
                         ids=[r.__name__[1:] for r, _ in NETNS_RULES])
def test_netns_rule(rule: Any, want: int, rt: Runtime, load: Any, sys_bpf: Any) -> None:
    with pytest.raises(BpfError) as exc:
        rule(_Ns(rt, load, sys_bpf))
    assert exc.value.errno == want
