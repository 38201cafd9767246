"""netkit device pairs: attach rules (netkit_dev_fetch, bpf_mprog), the default
policy, and transmitting across the pair through the programs.

This kernel is built without CONFIG_NETKIT (``ip link add type netkit`` says
"Unknown device type"), so these rules are pinned from drivers/net/netkit.c
rather than measured; the mprog ordering they share with tcx is measured in
tests/kernel/test_links_differential.py."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf.attr import (
    InfoByFdAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    LinkUpdateAttr,
    ProgAttachAttr,
    ProgLoadAttr,
    ProgQueryAttr,
)
from pyebpf.errors import BpfError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.links import (
    Netdev,
    NetkitAction,
    NetkitDev,
    NetkitMode,
    Netns,
    Socket,
    current_net,
)
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachFlags, AttachType, Cmd, LinkType, ProgType

PRIMARY, PEER = AttachType.NETKIT_PRIMARY, AttachType.NETKIT_PEER
FRAME = bytes(range(60))
#: r0 = skb->ifindex == want ? PASS : DROP.
IFINDEX_IS = "ldxw %r2, [%r1+40]\nmov %r0, 2\njne %r2, {want}, +1\nmov %r0, 0\nexit"


@pytest.fixture
def rt() -> Runtime:
    return Runtime()


@pytest.fixture
def pair(rt: Runtime) -> tuple[NetkitDev, NetkitDev]:
    return NetkitDev.pair(current_net(rt), "nk0", "nk1")


def _load(rt: Runtime, text: str) -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SCHED_CLS,
                                                insns=encode(asm(text)), license="GPL"),
                   runtime=rt))


def _ret(rt: Runtime, value: int) -> int:
    return _load(rt, f"mov %r0, {value}\nexit")


def _link(rt: Runtime, prog: int, ifindex: int, at: int = PRIMARY, **kw: Any) -> int:
    return int(bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=prog, target_fd=ifindex,
                                                   attach_type=at, **kw), runtime=rt))


def _attach(rt: Runtime, prog: int, ifindex: int, at: int = PRIMARY, **kw: Any) -> None:
    bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=ifindex, attach_bpf_fd=prog, attach_type=at,
                                        **kw), runtime=rt)


def _detach(rt: Runtime, prog: int, ifindex: int, at: int = PRIMARY, **kw: Any) -> None:
    bpf(Cmd.PROG_DETACH, ProgAttachAttr(target_fd=ifindex, attach_bpf_fd=prog, attach_type=at,
                                        **kw), runtime=rt)


def _query(rt: Runtime, ifindex: int, at: int = PRIMARY) -> tuple[tuple[int, ...], int]:
    got = bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=ifindex, attach_type=at), runtime=rt)
    return got.prog_ids, got.revision


def _id(rt: Runtime, fd: int) -> int:
    return int(rt.fds[fd].obj.id)


def _err(fn: Any) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return exc.value.errno


# -- the pair -------------------------------------------------------------------------------
def test_pair_registers_the_peer_first(rt: Runtime) -> None:
    primary, peer = NetkitDev.pair(current_net(rt), "nk0", "nk1")
    assert (primary.primary, peer.primary) == (True, False)
    assert peer.ifindex < primary.ifindex and primary.peer is peer and peer.peer is primary
    assert primary.native_xdp is False  # netkit has no ndo_bpf


def test_l3_has_no_hardware_address_and_l2_random_local_ones(rt: Runtime) -> None:
    net = current_net(rt)
    l3, _ = NetkitDev.pair(net, "a0", "a1")
    assert l3.dev_addr == bytes(6) and l3.mode == NetkitMode.L3
    l2, l2peer = NetkitDev.pair(net, "b0", "b1", mode=NetkitMode.L2)
    for dev in (l2, l2peer):
        assert dev.dev_addr[0] & 0x03 == 0x02  # locally administered unicast
    assert l2.dev_addr != l2peer.dev_addr
    assert _err(lambda: NetkitDev.pair(net, "c0", "c1", address=b"\x02" * 6)) == \
        errno.EOPNOTSUPP
    assert _err(lambda: NetkitDev.pair(net, "d0", "d1",
                                       policy=NetkitAction.REDIRECT)) == errno.EINVAL


# -- attach rules ---------------------------------------------------------------------------
def test_dev_fetch_errnos(rt: Runtime, pair: tuple[NetkitDev, NetkitDev]) -> None:
    _primary, peer = pair
    veth, _ = Netdev.veth_pair(current_net(rt), "v0", "v1")
    fd = _ret(rt, 0)
    for op in (_link, _attach):
        assert _err(lambda o=op: o(rt, fd, 999)) == errno.ENODEV
        assert _err(lambda o=op: o(rt, fd, veth.ifindex)) == errno.ENXIO
        assert _err(lambda o=op: o(rt, fd, peer.ifindex)) == errno.EACCES
        assert _err(lambda o=op: o(rt, fd, peer.ifindex, PEER)) == errno.EACCES
    assert _err(lambda: _query(rt, peer.ifindex)) == errno.EACCES
    assert _err(lambda: _detach(rt, fd, veth.ifindex)) == errno.ENXIO


def test_peer_attach_type_goes_on_the_peers_list(rt: Runtime,
                                                 pair: tuple[NetkitDev, NetkitDev]) -> None:
    primary, peer = pair
    a, b = _ret(rt, 0), _ret(rt, 2)
    _attach(rt, a, primary.ifindex, PRIMARY)
    link = _link(rt, b, primary.ifindex, PEER)
    assert _query(rt, primary.ifindex, PRIMARY)[0] == (_id(rt, a),)
    assert _query(rt, primary.ifindex, PEER)[0] == (_id(rt, b),)
    assert [s.prog.id for s in peer.bundle.slots] == [_id(rt, b)]
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=link), runtime=rt)
    assert (info.type, info.details["ifindex"], info.details["attach_type"]) == \
        (LinkType.NETKIT, peer.ifindex, PEER)


def test_mprog_ordering_as_tcx(rt: Runtime, pair: tuple[NetkitDev, NetkitDev]) -> None:
    primary, _ = pair
    a, b, c = _ret(rt, -1), _ret(rt, -1), _ret(rt, -1)
    _attach(rt, a, primary.ifindex)
    _attach(rt, b, primary.ifindex, attach_flags=AttachFlags.BEFORE, relative_fd=a)
    _link(rt, c, primary.ifindex, flags=AttachFlags.AFTER, relative_fd=b)
    assert _query(rt, primary.ifindex) == ((_id(rt, b), _id(rt, c), _id(rt, a)), 4)
    assert _err(lambda: _attach(rt, a, primary.ifindex)) == errno.EEXIST
    assert _err(lambda: _detach(rt, c, primary.ifindex)) == errno.EBUSY  # a link's program
    _detach(rt, b, primary.ifindex)
    assert _query(rt, primary.ifindex)[0] == (_id(rt, c), _id(rt, a))


def test_empty_list_detach_is_enoent_and_query_says_revision_1(
        rt: Runtime, pair: tuple[NetkitDev, NetkitDev]) -> None:
    primary, _ = pair
    fd = _ret(rt, 0)
    assert _err(lambda: _detach(rt, fd, primary.ifindex, expected_revision=7)) == errno.ENOENT
    _attach(rt, fd, primary.ifindex)
    _detach(rt, fd, primary.ifindex)
    assert _query(rt, primary.ifindex) == ((), 1)
    # the bundle's revision lives on in the device (3 after one attach and detach)
    assert _err(lambda: _attach(rt, fd, primary.ifindex, expected_revision=1)) == errno.ESTALE
    _attach(rt, fd, primary.ifindex, expected_revision=3)


def test_replace_and_link_update(rt: Runtime, pair: tuple[NetkitDev, NetkitDev]) -> None:
    primary, _ = pair
    a, b, c = _ret(rt, 0), _ret(rt, 2), _ret(rt, -1)
    _attach(rt, a, primary.ifindex)
    _attach(rt, b, primary.ifindex, attach_flags=AttachFlags.REPLACE, replace_bpf_fd=a)
    assert _query(rt, primary.ifindex)[0] == (_id(rt, b),)
    link = _link(rt, c, primary.ifindex)
    assert _err(lambda: bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=b),
                            runtime=rt)) == errno.EEXIST
    bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=a), runtime=rt)
    assert _query(rt, primary.ifindex)[0] == (_id(rt, b), _id(rt, a))
    bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=link), runtime=rt)
    assert _query(rt, primary.ifindex)[0] == (_id(rt, b),)
    assert _err(lambda: bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=c),
                            runtime=rt)) == errno.ENOLINK


def test_deleting_the_pair_leaves_links_defunct(rt: Runtime,
                                                pair: tuple[NetkitDev, NetkitDev]) -> None:
    primary, peer = pair
    fd = _ret(rt, 0)
    link = _link(rt, fd, primary.ifindex, PEER)
    _attach(rt, _ret(rt, 2), primary.ifindex)
    prog = rt.fds[fd].obj
    primary.unregister()
    assert not peer.registered
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=link), runtime=rt)
    assert info.details["ifindex"] == 0
    rt.close(link)
    rt.close(fd)
    assert prog.refcnt == 0


# -- the data path ----------------------------------------------------------------------------
@pytest.mark.parametrize(("policy", "verdict"), [(NetkitAction.PASS, "pass"),
                                                 (NetkitAction.DROP, "drop")])
def test_no_program_means_the_default_policy(rt: Runtime, policy: NetkitAction,
                                             verdict: str) -> None:
    primary, peer = NetkitDev.pair(current_net(rt), "nk0", "nk1", policy=policy)
    tap = Socket(rt, "packet", dev=peer)
    assert primary.transmit(FRAME).verdict == verdict
    assert tap.queue == ([FRAME] if verdict == "pass" else [])
    assert peer.transmit(FRAME).verdict == "pass"  # the peer's policy is its own


@pytest.mark.parametrize(("rets", "verdict"), [
    ((0,), "pass"), ((2,), "drop"), ((-1,), "pass"), ((1,), "drop"), ((3,), "drop"),
    ((-1, 2), "drop"), ((0, 2), "pass"), ((-1, -1), "pass")])
def test_programs_run_until_one_is_not_next(rt: Runtime, rets: tuple[int, ...],
                                            verdict: str) -> None:
    """NEXT from the last program passes whatever the policy; any value other
    than NEXT, PASS, REDIRECT drops (netkit_xmit's default case)."""
    primary, peer = NetkitDev.pair(current_net(rt), "nk0", "nk1", policy=NetkitAction.DROP)
    for r in rets:
        _attach(rt, _ret(rt, r), primary.ifindex)
    tap = Socket(rt, "packet", dev=peer)
    got = primary.transmit(FRAME)
    assert (got.verdict, len(tap.queue)) == (verdict, 1 if verdict == "pass" else 0)


def test_programs_see_the_peer_as_skb_dev(rt: Runtime, pair: tuple[NetkitDev, NetkitDev]) -> None:
    primary, peer = pair
    _attach(rt, _load(rt, IFINDEX_IS.format(want=peer.ifindex)), primary.ifindex)
    _attach(rt, _load(rt, IFINDEX_IS.format(want=primary.ifindex)), primary.ifindex, PEER)
    assert primary.transmit(FRAME).verdict == "pass"
    assert peer.transmit(FRAME).verdict == "pass"


def test_the_peer_lives_in_another_namespace(rt: Runtime) -> None:
    pod = Netns(rt, "pod")
    primary, peer = NetkitDev.pair(current_net(rt), "nk0", "eth0", peer_net=pod)
    assert pod.device(peer.ifindex) is peer
    assert current_net(rt).device(peer.ifindex) is not peer
    tap = Socket(rt, "packet", dev=peer)
    _attach(rt, _ret(rt, 0), primary.ifindex, PEER)  # attached from the host
    assert primary.transmit(FRAME).verdict == "pass"
    assert tap.queue == [FRAME]
    back = Socket(rt, "packet", dev=primary)
    assert peer.transmit(FRAME[::-1]).verdict == "pass"
    assert back.queue == [FRAME[::-1]]


def test_redirect_goes_out_of_the_target(rt: Runtime, pair: tuple[NetkitDev, NetkitDev]) -> None:
    primary, _peer = pair
    a, b = Netdev.veth_pair(current_net(rt), "v0", "v1")
    tap = Socket(rt, "packet", dev=b)
    _attach(rt, _load(rt, f"mov %r1, {a.ifindex}\nmov %r2, 0\ncall 23\nexit"),
            primary.ifindex)
    got = primary.transmit(FRAME)
    assert (got.verdict, got.redirect_ifindex) == ("redirect", a.ifindex)
    assert tap.queue == [FRAME]


def test_tcx_egress_runs_before_the_netkit_programs(
        rt: Runtime, pair: tuple[NetkitDev, NetkitDev]) -> None:
    primary, _peer = pair
    _attach(rt, _ret(rt, 2), primary.ifindex, AttachType.TCX_EGRESS)
    _attach(rt, _ret(rt, 0), primary.ifindex)
    got = primary.transmit(FRAME)
    assert (got.verdict, got.tc_action) == ("drop", 2)
    assert _query(rt, primary.ifindex, AttachType.TCX_EGRESS)[1] == 2
