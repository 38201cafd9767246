"""Socket map hooks on simulated sockets: inserting sockets into SOCKMAP and
SOCKHASH, attaching SK_MSG / SK_SKB programs (PROG_ATTACH and sockmap links),
and what the programs do to data sent and received (pyebpf.links.sockmap)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest

from helpers._build import ADD, JEQ, JGT, Asm, call, ld_map_fd, ldx, mov, movr, st, stx
from links.sockmap_progs import (
    BPF_F_INGRESS,
    MSG_DATA,
    MSG_DATA_END,
    SLOT_LINEAR,
    SLOT_RET,
    SLOT_RUNS,
    SLOT_SIZE,
    A,
    PySockets,
    alu,
    attach,
    detach,
    hash_redirect,
    insert,
    link_create,
    link_detach,
    link_update,
    load,
    msg_apply_then_drop,
    msg_cork,
    msg_edit,
    msg_pull,
    msg_record,
    new_record,
    parser_const,
    query,
    record,
    redirect,
    ret,
    skb_len,
)
from pyebpf import BpfError, Insn, MapType, ProgType
from pyebpf.links import InetSocket, TcpState, socket_pair
from pyebpf.links.sock import Socket
from pyebpf.uapi import LinkType

P = ProgType
U64 = 1 << 64


@pytest.fixture
def be() -> Iterator[PySockets]:
    b = PySockets()
    yield b
    b.close()


def sockmap(be: PySockets, n: int = 4, value_size: int = 4) -> int:
    return int(be.be.map_create(MapType.SOCKMAP, 4, value_size, n))


def obj(be: PySockets, fd: int) -> Any:
    return be.be.rt.file(fd).obj


def key(i: int) -> bytes:
    return i.to_bytes(4, "little")


def msg_setup(be: PySockets, prog: list[Insn]) -> tuple[int, InetSocket, InetSocket,
                                                         InetSocket, InetSocket]:
    """A sockmap with ``prog`` as its SK_MSG program; a->b at key 0, c->d at key 1."""
    m = sockmap(be)
    assert attach(be, load(be, prog, P.SK_MSG), m, A.SK_MSG_VERDICT) == 0
    a, b = be.pair()
    c, d = be.pair()
    assert insert(be, m, 0, a) == 0
    assert insert(be, m, 1, c) == 0
    return m, a, b, c, d


def skb_setup(be: PySockets, verdict: list[Insn] | Any, *, parser: list[Insn] | None = None,
              at: int = A.SK_SKB_STREAM_VERDICT) -> tuple[int, InetSocket, InetSocket,
                                                         InetSocket, InetSocket]:
    """A sockmap with SK_SKB programs; a->b with b at key 0, c->d with c at key 1."""
    m = sockmap(be)
    if parser is not None:
        assert attach(be, load(be, parser, P.SK_SKB), m, A.SK_SKB_STREAM_PARSER) == 0
    prog = verdict(m) if callable(verdict) else verdict
    assert attach(be, load(be, prog, P.SK_SKB), m, at) == 0
    a, b = be.pair()
    c, d = be.pair()
    assert insert(be, m, 0, b) == 0
    assert insert(be, m, 1, c) == 0
    return m, a, b, c, d


# -- simulated sockets -----------------------------------------------------------------------
def test_socket_pair_is_established_both_ways_with_crossed_addresses(be: PySockets) -> None:
    a, b = be.pair()
    assert a.state == b.state == TcpState.ESTABLISHED
    assert a.remote == b.local and b.remote == a.local
    assert a.local[0] == "127.0.0.1" and a.local[1] != b.local[1]


def test_plain_sockets_carry_bytes_to_the_peer(be: PySockets) -> None:
    a, b = be.pair()
    assert a.send(b"hello") == 5
    assert b.recv(3) == b"hel" and b.recv() == b"lo" and b.recv() == b""


def test_udp_pair_keeps_datagram_boundaries(be: PySockets) -> None:
    a, b = socket_pair(be.be.rt, "udp")
    a.send(b"one")
    a.send(b"two")
    assert (b.recv(), b.recv(), b.recv()) == (b"one", b"two", b"")


def test_ipv6_pair_uses_the_v6_loopback(be: PySockets) -> None:
    a, b = socket_pair(be.be.rt, family=10)
    assert a.local[0] == "::1" and a.remote == b.local


def test_send_on_an_unconnected_tcp_socket_is_epipe(be: PySockets) -> None:
    with pytest.raises(BpfError) as e:
        be.unconnected().send(b"x")
    assert e.value.errno == errno.EPIPE


def test_cookie_is_handed_out_once_on_first_use(be: PySockets) -> None:
    a, b = be.pair()
    first = a.cookie()
    assert first > 0 and a.cookie() == first and b.cookie() == first + 1


# -- inserting sockets -------------------------------------------------------------------------
def test_insert_then_lookup_gives_the_socket_cookie(be: PySockets) -> None:
    m = sockmap(be, value_size=8)
    a, _ = be.pair()
    assert insert(be, m, 0, a, value_size=8) == 0
    assert be.be.lookup(m, key(0), 8) == a.cookie().to_bytes(8, "little")


def test_insert_unconnected_tcp_socket_is_eopnotsupp(be: PySockets) -> None:
    m = sockmap(be)
    assert insert(be, m, 0, be.unconnected()) == errno.EOPNOTSUPP
    assert obj(be, m).sks == {}


def test_insert_listening_socket_is_allowed(be: PySockets) -> None:
    m = sockmap(be)
    lst = be.listener()
    assert insert(be, m, 0, lst) == 0
    assert obj(be, m).sock_at(key(0)) is lst


def test_insert_packet_socket_is_eopnotsupp_and_map_fd_enotsock(be: PySockets) -> None:
    m = sockmap(be)
    pkt = Socket(be.be.rt)
    fd = pkt.open()
    assert be.be.rt.fds[fd].obj is pkt
    assert insert(be, m, 0, pkt) == errno.EOPNOTSUPP
    with pytest.raises(BpfError) as e:
        be.be.update(m, key(0), m.to_bytes(4, "little"))
    assert e.value.errno == errno.ENOTSOCK


def test_insert_bound_udp_socket_is_allowed_unbound_eopnotsupp(be: PySockets) -> None:
    m = sockmap(be)
    assert insert(be, m, 0, be.udp_unconnected()) == errno.EOPNOTSUPP
    assert insert(be, m, 0, be.udp_unconnected(bound=True)) == 0


def test_insert_noexist_on_a_filled_slot_is_eexist_and_changes_nothing(be: PySockets) -> None:
    m = sockmap(be)
    a, b = be.pair()
    assert insert(be, m, 0, a) == 0
    assert insert(be, m, 0, b, flags=1) == errno.EEXIST
    assert obj(be, m).sock_at(key(0)) is a and b.psock is None


def test_insert_past_the_end_is_e2big(be: PySockets) -> None:
    m = sockmap(be, n=2)
    a, _ = be.pair()
    assert insert(be, m, 2, a) == errno.E2BIG


def test_replacing_a_socket_lets_the_old_one_go(be: PySockets) -> None:
    m = sockmap(be)
    a, b = be.pair()
    insert(be, m, 0, a)
    assert insert(be, m, 0, b) == 0
    assert a.psock is None and b.psock is not None


def test_full_sockhash_is_e2big(be: PySockets) -> None:
    h = be.be.map_create(MapType.SOCKHASH, 4, 4, 1)
    a, b = be.pair()
    assert insert(be, h, 0, a) == 0
    assert insert(be, h, 1, b) == errno.E2BIG
    assert insert(be, h, 0, b) == 0  # replacing needs no room


def test_sockhash_get_next_key_walks_every_key(be: PySockets) -> None:
    h = be.be.map_create(MapType.SOCKHASH, 4, 4, 8)
    socks = [s for _ in range(3) for s in be.pair()]
    for i, s in enumerate(socks):
        insert(be, h, 10 + i, s)
    keys = list(obj(be, h).iter_keys())
    assert sorted(int.from_bytes(k, "little") for k in keys) == list(range(10, 16))


def test_closing_a_socket_takes_it_out_of_every_map(be: PySockets) -> None:
    m, h = sockmap(be), be.be.map_create(MapType.SOCKHASH, 4, 4, 4)
    a, _ = be.pair()
    insert(be, m, 0, a)
    insert(be, h, 5, a)
    be.close_sock(a)
    assert obj(be, m).sks == {} and obj(be, h).count == 0


def test_deleting_the_last_element_drops_the_psock(be: PySockets) -> None:
    m, a, b, _, _ = msg_setup(be, ret(0))
    be.be.delete(m, key(0))
    assert a.psock is None
    assert a.send(b"free") == 4 and b.recv() == b"free"  # no verdict any more


def test_closing_the_map_releases_its_sockets_and_programs(be: PySockets) -> None:
    m = sockmap(be)
    pfd = load(be, ret(1), P.SK_MSG)
    prog = obj(be, pfd)
    attach(be, pfd, m, A.SK_MSG_VERDICT)
    a, _ = be.pair()
    insert(be, m, 0, a)
    assert prog.refcnt == 3  # fd, map slot, psock
    be.be.rt.close(m)
    assert a.psock is None and prog.refcnt == 1


def test_a_socket_with_an_sk_msg_program_cant_take_another_ebusy(be: PySockets) -> None:
    m1, m2 = sockmap(be), sockmap(be)
    pfd = load(be, ret(1), P.SK_MSG)
    attach(be, pfd, m1, A.SK_MSG_VERDICT)
    attach(be, pfd, m2, A.SK_MSG_VERDICT)
    a, _ = be.pair()
    assert insert(be, m1, 0, a) == 0
    assert insert(be, m2, 0, a) == errno.EBUSY
    assert insert(be, m1, 1, a) == errno.EBUSY  # even the same map
    assert obj(be, m2).sks == {}


# -- attaching programs ---------------------------------------------------------------------
def test_prog_attach_replaces_the_slots_program_silently(be: PySockets) -> None:
    m = sockmap(be)
    p1, p2 = load(be, ret(1), P.SK_MSG), load(be, ret(0), P.SK_MSG)
    assert attach(be, p1, m, A.SK_MSG_VERDICT) == 0
    assert attach(be, p2, m, A.SK_MSG_VERDICT) == 0
    assert obj(be, m).progs.msg_parser is obj(be, p2)
    assert obj(be, p1).refcnt == 1


def test_stream_verdict_and_skb_verdict_exclude_each_other(be: PySockets) -> None:
    m = sockmap(be)
    p = load(be, ret(1), P.SK_SKB)
    assert attach(be, p, m, A.SK_SKB_STREAM_VERDICT) == 0
    assert attach(be, p, m, A.SK_SKB_VERDICT) == errno.EBUSY
    assert query(be, m, A.SK_SKB_VERDICT) == (errno.EBUSY, -1)


def test_attach_to_a_map_of_another_type_is_eopnotsupp(be: PySockets) -> None:
    arr = be.be.map_create(MapType.ARRAY, 4, 4, 1)
    assert attach(be, load(be, ret(1), P.SK_MSG), arr, A.SK_MSG_VERDICT) == errno.EOPNOTSUPP


def test_attach_flags_are_einval(be: PySockets) -> None:
    assert attach(be, load(be, ret(1), P.SK_MSG), sockmap(be), A.SK_MSG_VERDICT,
                  flags=1) == errno.EINVAL


def test_detach_of_another_program_is_enoent(be: PySockets) -> None:
    m = sockmap(be)
    p1, p2 = load(be, ret(1), P.SK_SKB), load(be, ret(0), P.SK_SKB)
    attach(be, p1, m, A.SK_SKB_VERDICT)
    assert detach(be, p2, m, A.SK_SKB_VERDICT) == errno.ENOENT
    assert detach(be, p1, m, A.SK_SKB_VERDICT) == 0
    assert detach(be, p1, m, A.SK_SKB_VERDICT) == errno.ENOENT


def test_detach_with_a_program_of_the_other_type_is_einval(be: PySockets) -> None:
    m = sockmap(be)
    assert detach(be, load(be, ret(1), P.SK_MSG), m, A.SK_SKB_VERDICT) == errno.EINVAL


def test_query_reports_the_slots_program(be: PySockets) -> None:
    m = sockmap(be)
    p = load(be, ret(1), P.SK_MSG)
    assert query(be, m, A.SK_MSG_VERDICT) == (0, 0)
    attach(be, p, m, A.SK_MSG_VERDICT)
    assert query(be, m, A.SK_MSG_VERDICT) == (0, 1)


def test_query_takes_no_query_flags(be: PySockets) -> None:
    from pyebpf.attr import ProgQueryAttr
    from pyebpf.uapi import Cmd

    with pytest.raises(BpfError) as e:
        be.bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=sockmap(be),
                                             attach_type=A.SK_MSG_VERDICT, query_flags=1))
    assert e.value.errno == errno.EINVAL


def test_a_program_attached_after_insertion_does_not_reach_the_socket(be: PySockets) -> None:
    m = sockmap(be)
    a, b = be.pair()
    insert(be, m, 0, a)
    attach(be, load(be, ret(0), P.SK_MSG), m, A.SK_MSG_VERDICT)
    assert a.send(b"still free") == 10 and b.recv() == b"still free"


# -- sockmap links ---------------------------------------------------------------------------
def test_link_info_reports_the_map_and_attach_type(be: PySockets) -> None:
    m = sockmap(be)
    lfd = link_create(be, load(be, ret(1), P.SK_MSG), m, A.SK_MSG_VERDICT)
    assert be.link_info(lfd) == {"type": LinkType.SOCKMAP, "map_id": be.map_id(m),
                                 "attach_type": A.SK_MSG_VERDICT}


def test_a_link_holds_its_slot_against_prog_attach_and_detach(be: PySockets) -> None:
    m = sockmap(be)
    p = load(be, ret(1), P.SK_MSG)
    link_create(be, p, m, A.SK_MSG_VERDICT)
    assert attach(be, p, m, A.SK_MSG_VERDICT) == errno.EBUSY
    assert detach(be, p, m, A.SK_MSG_VERDICT) == errno.EBUSY
    assert link_create(be, p, m, A.SK_MSG_VERDICT) == -errno.EBUSY


def test_link_update_swaps_the_slots_program(be: PySockets) -> None:
    m = sockmap(be)
    p1, p2 = load(be, ret(1), P.SK_MSG), load(be, ret(0), P.SK_MSG)
    lfd = link_create(be, p1, m, A.SK_MSG_VERDICT)
    assert link_update(be, lfd, p2, old_fd=p2) == errno.EPERM
    assert link_update(be, lfd, load(be, ret(1), P.SK_SKB)) == errno.EINVAL
    assert link_update(be, lfd, p2, old_fd=p1) == 0
    assert obj(be, m).progs.msg_parser is obj(be, p2) is obj(be, lfd).prog


def test_a_detached_link_updates_enolink_and_frees_the_slot(be: PySockets) -> None:
    m = sockmap(be)
    p = load(be, ret(1), P.SK_MSG)
    lfd = link_create(be, p, m, A.SK_MSG_VERDICT)
    assert link_detach(be, lfd) == 0
    assert be.link_info(lfd)["map_id"] == 0
    assert link_update(be, lfd, p) == errno.ENOLINK
    assert attach(be, p, m, A.SK_MSG_VERDICT) == 0


def test_closing_the_link_empties_the_slot_and_releases_the_map(be: PySockets) -> None:
    m = sockmap(be)
    mobj = obj(be, m)
    lfd = link_create(be, load(be, ret(1), P.SK_SKB), m, A.SK_SKB_VERDICT)
    assert mobj.refcnt == 2
    be.close_fd(lfd)
    assert mobj.progs.skb_verdict is None and mobj.refcnt == 1


def test_link_create_on_a_map_of_another_type_is_einval(be: PySockets) -> None:
    arr = be.be.map_create(MapType.ARRAY, 4, 4, 1)
    assert link_create(be, load(be, ret(1), P.SK_MSG), arr, A.SK_MSG_VERDICT) == -errno.EINVAL


def test_a_refused_link_gives_its_map_reference_back(be: PySockets) -> None:
    m = sockmap(be)
    p = load(be, ret(1), P.SK_SKB)
    attach(be, p, m, A.SK_SKB_STREAM_VERDICT)
    assert link_create(be, p, m, A.SK_SKB_VERDICT) == -errno.EBUSY
    assert obj(be, m).refcnt == 1


# -- SK_MSG on send ----------------------------------------------------------------------------
def test_sk_pass_delivers_the_message_to_the_peer(be: PySockets) -> None:
    _, a, b, _, _ = msg_setup(be, ret(1))
    assert a.send(b"hello") == 5 and b.recv() == b"hello"


def test_sk_drop_fails_the_send_with_eacces(be: PySockets) -> None:
    _, a, b, _, _ = msg_setup(be, ret(0))
    with pytest.raises(BpfError) as e:
        a.send(b"hello")
    assert e.value.errno == errno.EACCES and b.recv() == b""


def test_a_verdict_other_than_pass_drops(be: PySockets) -> None:
    _, a, _, _, _ = msg_setup(be, ret(7))
    assert be.send(a, b"x") == -errno.EACCES


def test_the_program_sees_the_message_size_and_bytes(be: PySockets) -> None:
    rec = new_record(be)
    _, a, b, _, _ = msg_setup(be, msg_record(rec))
    a.send(b"0123456789")
    r = record(be, rec)
    assert (r[SLOT_SIZE], r[SLOT_LINEAR], r[SLOT_RUNS]) == (10, 10, 1)
    assert b.recv() == b"0123456789"


def test_the_program_can_rewrite_the_message(be: PySockets) -> None:
    p = Asm()
    p(ldx(8, 2, 1, MSG_DATA), ldx(8, 3, 1, MSG_DATA_END), movr(4, 2),
      Insn(0x07, 4, 0, 0, 1))  # r4 = data + 1
    p.jmpr(JGT, 4, 3, "out")
    p(st(1, 2, 0, ord("J")))
    p.label("out")(*ret(1))
    _, a, b, _, _ = msg_setup(be, p.build())
    a.send(b"hello")
    assert b.recv() == b"Jello"


def _msg_redirect_setup(be: PySockets, k: int, flags: int) -> tuple[InetSocket, ...]:
    """A sockmap whose SK_MSG program redirects to its own key ``k``; a (key 0) -> b,
    c (key 1) -> d."""
    m = sockmap(be)
    attach(be, load(be, redirect(60, m, k, flags), P.SK_MSG), m, A.SK_MSG_VERDICT)
    a, b = be.pair()
    c, d = be.pair()
    insert(be, m, 0, a)
    insert(be, m, 1, c)
    return a, b, c, d


def test_redirect_ingress_queues_on_the_target_socket(be: PySockets) -> None:
    a, b, c, d = _msg_redirect_setup(be, 1, BPF_F_INGRESS)
    assert a.send(b"to c") == 4
    assert (b.recv(), c.recv(), d.recv()) == (b"", b"to c", b"")


def test_redirect_egress_sends_out_of_the_target(be: PySockets) -> None:
    a, b, c, d = _msg_redirect_setup(be, 1, 0)
    assert a.send(b"via c") == 5
    assert (b.recv(), c.recv(), d.recv()) == (b"", b"", b"via c")


def test_redirect_to_an_empty_slot_or_with_bad_flags_drops(be: PySockets) -> None:
    for k, flags in ((3, 0), (1, 2)):
        a, _, _, _ = _msg_redirect_setup(be, k, flags)
        assert be.send(a, b"x") == -errno.EACCES


def test_redirect_to_a_listening_socket_drops(be: PySockets) -> None:
    m = sockmap(be)
    attach(be, load(be, redirect(60, m, 1, BPF_F_INGRESS), P.SK_MSG), m, A.SK_MSG_VERDICT)
    a, _ = be.pair()
    insert(be, m, 0, a)
    insert(be, m, 1, be.listener())
    assert be.send(a, b"x") == -errno.EACCES


def test_msg_redirect_out_of_a_udp_socket_drops_into_it_works(be: PySockets) -> None:
    for flags, sent, got in ((0, -errno.EACCES, (b"", b"")), (BPF_F_INGRESS, 3, (b"udp", b""))):
        m = sockmap(be)
        attach(be, load(be, redirect(60, m, 1, flags), P.SK_MSG), m, A.SK_MSG_VERDICT)
        a, _ = be.pair()
        c, d = be.udp_pair()
        insert(be, m, 0, a)
        insert(be, m, 1, c)
        assert be.send(a, b"udp") == sent and (c.recv(), d.recv()) == got


def test_msg_redirect_hash_finds_the_socket_by_key(be: PySockets) -> None:
    h = be.be.map_create(MapType.SOCKHASH, 4, 4, 4)
    attach(be, load(be, hash_redirect(71, h, 7, BPF_F_INGRESS), P.SK_MSG), h,
           A.SK_MSG_VERDICT)
    a, b = be.pair()
    c, _ = be.pair()
    insert(be, h, 1, a)
    insert(be, h, 7, c)
    a.send(b"hashed")
    assert (b.recv(), c.recv()) == (b"", b"hashed")


def test_apply_bytes_limits_the_verdict_then_the_program_runs_again(be: PySockets) -> None:
    rec = new_record(be)
    _, a, b, _, _ = msg_setup(be, msg_apply_then_drop(rec, 3))
    # the first 3 bytes pass; the second run drops (msg->apply_bytes is still 3)
    assert a.send(b"0123456789") == 7
    assert b.recv() == b"012" and record(be, rec)[SLOT_RUNS] == 2


def test_a_drop_verdict_sticks_for_the_following_sends(be: PySockets) -> None:
    rec = new_record(be)
    _, a, _, _, _ = msg_setup(be, msg_apply_then_drop(rec, 3))
    a.send(b"0123456789")
    assert be.send(a, b"again") == -errno.EACCES
    assert record(be, rec)[SLOT_RUNS] == 2  # no third run


def test_cork_bytes_holds_data_back_until_enough_came(be: PySockets) -> None:
    rec = new_record(be)
    _, a, b, _, _ = msg_setup(be, msg_cork(rec, 8))
    assert a.send(b"abcde") == 5 and b.recv() == b""
    assert a.send(b"fghij") == 5 and b.recv() == b"abcdefghij"
    assert record(be, rec)[SLOT_SIZE] == 10


@pytest.mark.parametrize(("start", "length", "rc", "got"), [
    (2, 3, 0, b"0156789"), (9, 1, 0, b"012345678"), (0, 11, -errno.EINVAL, b"0123456789"),
    (10, 1, -errno.EINVAL, b"0123456789"), (12, 0, 0, b"0123456789")])
def test_pop_data_removes_bytes(be: PySockets, start: int, length: int, rc: int,
                                got: bytes) -> None:
    rec = new_record(be)
    _, a, b, _, _ = msg_setup(be, msg_edit(rec, 91, start, length))
    a.send(b"0123456789")
    assert b.recv() == got and record(be, rec)[SLOT_RET] == rc % U64


@pytest.mark.parametrize(("start", "length", "rc", "size", "linear"), [
    (0, 4, 0, 14, 4), (5, 2, 0, 12, 5), (10, 3, 0, 13, 10), (11, 1, -errno.EINVAL, 10, 10)])
def test_push_data_inserts_bytes(be: PySockets, start: int, length: int, rc: int, size: int,
                                 linear: int) -> None:
    rec = new_record(be)
    _, a, b, _, _ = msg_setup(be, msg_edit(rec, 90, start, length))
    a.send(b"0123456789")
    r = record(be, rec)
    assert (r[SLOT_RET], r[SLOT_SIZE], r[SLOT_LINEAR]) == (rc % U64, size, linear)
    got = b.recv()
    assert len(got) == size and got.replace(b"\0", b"") == b"0123456789"


def test_pull_data_points_data_at_the_range(be: PySockets) -> None:
    rec = new_record(be)
    _, a, _, _, _ = msg_setup(be, msg_pull(rec, 2, 5))
    a.send(b"0123456789")
    assert record(be, rec)[SLOT_LINEAR] == 3
    for start, end in ((5, 5), (0, 11)):
        rec = new_record(be)
        _, a, _, _, _ = msg_setup(be, msg_pull(rec, start, end))
        a.send(b"0123456789")
        assert record(be, rec)[SLOT_RET] == -errno.EINVAL % U64


def test_pull_data_joins_elements_push_data_split(be: PySockets) -> None:
    p = Asm()
    p(movr(6, 1), mov(2, 5), mov(3, 2), mov(4, 0), call(90),  # split at 5
      movr(1, 6), mov(2, 0), mov(3, 12), mov(4, 0), call(63))  # pull it all
    p(ldx(8, 2, 6, MSG_DATA), ldx(8, 3, 6, MSG_DATA_END), Insn(0x1F, 3, 2))
    p.jmp(0x50, 3, 12, "drop")(*ret(1)).label("drop")(*ret(0))  # JNE
    _, a, b, _, _ = msg_setup(be, p.build())
    assert a.send(b"0123456789") == 10
    assert b.recv() == b"01234\0\x0056789"


def test_udp_sockets_have_no_send_verdict(be: PySockets) -> None:
    m = sockmap(be)
    attach(be, load(be, ret(0), P.SK_MSG), m, A.SK_MSG_VERDICT)
    a, b = socket_pair(be.be.rt, "udp")
    insert(be, m, 0, a)
    assert a.send(b"dgram") == 5 and b.recv() == b"dgram"


# -- SK_SKB on receive ------------------------------------------------------------------------
def test_verdict_pass_queues_on_the_receiving_socket(be: PySockets) -> None:
    _, a, b, _, _ = skb_setup(be, ret(1))
    a.send(b"data")
    assert b.recv() == b"data" and b.rx == []


def test_verdict_drop_discards_what_arrived(be: PySockets) -> None:
    _, a, b, _, _ = skb_setup(be, ret(0), at=A.SK_SKB_VERDICT)
    a.send(b"data")
    assert b.recv() == b""


def test_verdict_redirect_ingress_and_egress(be: PySockets) -> None:
    _, a, b, c, d = skb_setup(be, lambda m: redirect(52, m, 1, BPF_F_INGRESS))
    a.send(b"in")
    assert (b.recv(), c.recv(), d.recv()) == (b"", b"in", b"")
    _, a, b, c, d = skb_setup(be, lambda m: redirect(52, m, 1, 0))
    a.send(b"out")
    assert (b.recv(), c.recv(), d.recv()) == (b"", b"", b"out")


def test_verdict_redirect_to_an_empty_slot_drops(be: PySockets) -> None:
    _, a, b, c, d = skb_setup(be, lambda m: redirect(52, m, 3, 0))
    a.send(b"lost")
    assert (b.recv(), c.recv(), d.recv()) == (b"", b"", b"")


def test_sk_redirect_hash_finds_the_socket_by_key(be: PySockets) -> None:
    h = be.be.map_create(MapType.SOCKHASH, 4, 4, 4)
    attach(be, load(be, hash_redirect(72, h, 7, BPF_F_INGRESS), P.SK_SKB), h,
           A.SK_SKB_VERDICT)
    a, b = be.pair()
    c, _ = be.pair()
    insert(be, h, 1, b)
    insert(be, h, 7, c)
    a.send(b"hashed")
    assert (b.recv(), c.recv()) == (b"", b"hashed")


def test_the_verdict_sees_the_payload_length(be: PySockets) -> None:
    p = Asm()
    p(ldx(4, 2, 1, 0))  # skb->len
    p.jmp(0x50, 2, 5, "drop")(*ret(1)).label("drop")(*ret(0))
    _, a, b, _, _ = skb_setup(be, p.build())
    a.send(b"12345")
    a.send(b"123456")
    assert b.recv() == b"12345"


def test_stream_parser_cuts_the_stream_into_messages(be: PySockets) -> None:
    _, a, b, _, _ = skb_setup(be, ret(1), parser=parser_const(4))
    a.send(b"0123456789")
    assert b.recv() == b"01234567"
    a.send(b"ab")
    assert b.recv() == b"89ab"


def test_stream_parser_returning_the_skb_length_passes_everything(be: PySockets) -> None:
    _, a, b, _, _ = skb_setup(be, ret(1), parser=skb_len())
    a.send(b"whole")
    assert b.recv() == b"whole"


def test_stream_parser_error_becomes_the_sockets_error_and_stops_it(be: PySockets) -> None:
    _, a, b, _, _ = skb_setup(be, ret(1), parser=ret(-errno.EPROTO))
    a.send(b"bad")
    assert b.recv() == b""
    assert b.so_error() == errno.EPROTO and b.so_error() == 0
    a.send(b"later")
    assert b.recv() == b"" and b.psock.rx_mode == "stopped"


def test_a_parser_without_a_verdict_leaves_data_in_the_receive_queue(be: PySockets) -> None:
    m = sockmap(be)
    attach(be, load(be, skb_len(), P.SK_SKB), m, A.SK_SKB_STREAM_PARSER)
    a, b = be.pair()
    insert(be, m, 0, b)
    a.send(b"plain")
    assert b.recv() == b"plain"


def test_udp_skb_verdict_passes_datagrams_to_a_stream_queue(be: PySockets) -> None:
    m = sockmap(be)
    attach(be, load(be, ret(1), P.SK_SKB), m, A.SK_SKB_VERDICT)
    a, b = socket_pair(be.be.rt, "udp")
    insert(be, m, 0, b)
    a.send(b"d1")
    a.send(b"d2")
    assert b.recv(3) == b"d1d" and b.recv() == b"2"  # the psock queue reads as a stream


def test_msg_and_skb_verdicts_combine_on_one_path(be: PySockets) -> None:
    m = sockmap(be)
    attach(be, load(be, ret(1), P.SK_MSG), m, A.SK_MSG_VERDICT)
    attach(be, load(be, ret(1), P.SK_SKB), m, A.SK_SKB_VERDICT)
    a, b = be.pair()
    insert(be, m, 0, a)
    insert(be, m, 1, b)
    a.send(b"both")
    assert b.recv() == b"both" and b.psock.ingress_msg == []


# -- bpf_sock_map_update / bpf_sock_hash_update from sock_ops ---------------------------------
def _sock_ops_update(be: PySockets, func: int, map_fd: int, k: int,
                     flags: int = 0) -> tuple[Any, int]:
    """A SOCK_OPS program storing bpf_sock_{map,hash}_update(skops, map, &k, flags)
    in a record map (slot SLOT_RET) and returning 1; (the program, the record)."""
    from links.sockmap_progs import _store

    rec = new_record(be)
    p = Asm()
    p(st(4, 10, -8, k), movr(3, 10), Insn(0x07, 3, 0, 0, -8))
    p(*ld_map_fd(2, map_fd), mov(4, flags), call(func), movr(7, 0))
    _store(p, rec, SLOT_RET, 7)
    p(*ret(1))
    return obj(be, load(be, p.build(), P.SOCK_OPS)), rec


def _run_ops(be: PySockets, prog: Any, rec: int, op: int, sk: Any = None) -> int:
    """run_sock_ops for ``op``: what the helper returned (as a signed int)."""
    from pyebpf.progs.sock_ops import run_sock_ops

    assert run_sock_ops(be.be.rt, prog, op, sk=sk)[0] == 1
    got = record(be, rec)[SLOT_RET]
    return got - U64 if got >> 63 else got


def test_sock_ops_established_callback_inserts_the_socket(be: PySockets) -> None:
    m = sockmap(be)
    prog, rec = _sock_ops_update(be, 53, m, 2)
    a, _ = be.pair()
    assert _run_ops(be, prog, rec, 4, a.sock) == 0  # ACTIVE_ESTABLISHED_CB
    assert obj(be, m).sock_at(key(2)) is a and a.psock is not None


def test_sock_ops_other_callbacks_and_foreign_sockets_are_eopnotsupp(be: PySockets) -> None:
    m = sockmap(be)
    prog, rec = _sock_ops_update(be, 53, m, 0)
    a, _ = be.pair()
    assert _run_ops(be, prog, rec, 3, a.sock) == -errno.EOPNOTSUPP  # TCP_CONNECT_CB
    assert _run_ops(be, prog, rec, 4) == -errno.EOPNOTSUPP  # a socket of its own
    assert obj(be, m).sks == {}


def test_sock_ops_update_reports_the_maps_errors(be: PySockets) -> None:
    m = sockmap(be, n=2)
    past, rec1 = _sock_ops_update(be, 53, m, 5)
    noexist, rec2 = _sock_ops_update(be, 53, m, 0, flags=1)
    a, b = be.pair()
    assert _run_ops(be, past, rec1, 5, a.sock) == -errno.E2BIG
    assert _run_ops(be, noexist, rec2, 5, a.sock) == 0
    assert _run_ops(be, noexist, rec2, 5, b.sock) == -errno.EEXIST


def test_sock_hash_update_from_the_listen_callback(be: PySockets) -> None:
    h = be.be.map_create(MapType.SOCKHASH, 4, 4, 4)
    prog, rec = _sock_ops_update(be, 70, h, 9)
    lst = be.listener()
    assert _run_ops(be, prog, rec, 11, lst.sock) == 0  # TCP_LISTEN_CB
    assert obj(be, h).sock_at(key(9)) is lst


def test_sockets_sock_ops_put_in_a_map_redirect_to_each_other(be: PySockets) -> None:
    """The classic pattern: sock_ops fills the map, SK_MSG redirects between its sockets."""
    m = sockmap(be)
    attach(be, load(be, redirect(60, m, 1, BPF_F_INGRESS), P.SK_MSG), m, A.SK_MSG_VERDICT)
    a, b = be.pair()
    c, d = be.pair()
    for k, s in ((0, a), (1, c)):
        prog, rec = _sock_ops_update(be, 53, m, k)
        assert _run_ops(be, prog, rec, 4, s.sock) == 0
    a.send(b"shortcut")
    assert (b.recv(), c.recv(), d.recv()) == (b"", b"shortcut", b"")


# -- an object built by clang (examples/sockmap_shortcut.c) ------------------------------------
def test_sockmap_shortcut_example_redirects_and_drops() -> None:
    """sock_ops (on a cgroup) fills the hash as connections establish; sk_msg
    sends each message straight into the peer's ingress queue; the stream
    verdict drops messages starting with '!' that arrive over TCP."""
    from pathlib import Path

    from pyebpf import load_object
    from pyebpf.links import cgroup_root
    from pyebpf.runtime import Runtime

    rt = Runtime()
    obj_file = Path(__file__).resolve().parents[2] / "examples" / "sockmap_shortcut.o"
    coll = load_object(obj_file, runtime=rt)
    socks, counters = coll.maps["socks"], coll.maps["counters"]
    coll.programs["shortcut"].attach(socks.fd, A.SK_MSG_VERDICT)
    coll.programs["drop_bang"].attach(socks.fd, A.SK_SKB_STREAM_VERDICT)
    cg = cgroup_root(rt)
    coll.programs["add_established"].attach(cg.open(), A.CGROUP_SOCK_OPS)
    a, b = socket_pair(rt, cgroup=cg)  # both ends go in the hash
    c, d = socket_pair(rt)  # outside the cgroup: only d goes in, by hand
    d_key = d.local[1].to_bytes(4, "little") + d.remote[1].to_bytes(4, "little")
    socks.update(d_key, d.open().to_bytes(8, "little"))
    keys = list(socks.keys())  # Map.keys(): GET_NEXT_KEY, not a dict
    assert sorted(int.from_bytes(k[:4], "little") for k in keys) == \
        sorted(s.local[1] for s in (a, b, d))
    assert a.send(b"hello") == 5 and b.recv() == b"hello"
    assert b.psock.ingress_msg == [] and b.rx == []
    c.send(b"!bang")
    c.send(b"fine")
    assert d.recv() == b"fine"

    def counter(i: int) -> int:
        return int.from_bytes(counters.lookup(i.to_bytes(4, "little")), "little")

    assert (counter(0), counter(1)) == (1, 1)


def test_socket_pair_in_a_cgroup_runs_its_sock_ops_callbacks(be: PySockets) -> None:
    from pyebpf.links import cgroup_root
    from pyebpf.links.inet import CONNECT_SOCK_OPS

    rec = new_record(be)
    p = Asm()  # rec[skops->op] += 1 for every callback
    p(ldx(4, 6, 1, 0), stx(4, 10, 6, -4), *ld_map_fd(1, rec), movr(2, 10), alu(ADD, 2, -4),
      call(1))
    p.jmp(JEQ, 0, 0, "out")(ldx(8, 1, 0, 0), alu(ADD, 1, 1), stx(8, 0, 1, 0))
    p.label("out")(*ret(1))
    cg = cgroup_root(be.be.rt)
    attach(be, load(be, p.build(), P.SOCK_OPS), cg.open(), A.CGROUP_SOCK_OPS)
    socket_pair(be.be.rt, cgroup=cg)
    counts = record(be, rec)
    for op in {op for _, op, _ in CONNECT_SOCK_OPS if op < len(counts)}:
        assert counts[op] == sum(1 for _, o, _ in CONNECT_SOCK_OPS if o == op)
    socket_pair(be.be.rt, "udp", cgroup=cg)  # UDP has no sock_ops
    assert record(be, rec) == counts
