"""Socket map hooks on pyebpf's simulated sockets and on the real kernel's TCP
sockets over loopback: the errno sequences of PROG_ATTACH / DETACH / QUERY /
LINK_CREATE on socket maps, socket insertion, and what arrives on which
socket when SK_MSG and SK_SKB programs pass, drop, redirect (ingress and
egress), apply, cork, push/pop/pull a message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from links.sockmap_progs import (
    BPF_F_INGRESS,
    SLOT_LINEAR,
    SLOT_LOCAL_PORT,
    SLOT_REMOTE_PORT,
    SLOT_RET,
    SLOT_RUNS,
    SLOT_SIZE,
    A,
    KernelSockets,
    PySockets,
    attach,
    detach,
    hash_redirect,
    insert,
    link_create,
    link_detach,
    link_update,
    load,
    msg_addresses,
    msg_apply_redirect_then_pass,
    msg_apply_then_drop,
    msg_cork,
    msg_edit,
    msg_pull,
    msg_record,
    msg_sock_fields,
    new_record,
    parser_const,
    query,
    record,
    redirect,
    ret,
    skb_len,
    skb_overwrite,
    skb_record,
    skb_trim,
)
from pyebpf import Insn, MapType, ProgType

pytestmark = pytest.mark.kernel

P = ProgType
Scenario = Callable[[Any], list[Any]]


def _both(scenario: Scenario) -> tuple[list[Any], list[Any]]:
    outs = []
    for cls in (PySockets, KernelSockets):
        be = cls()
        try:
            outs.append(scenario(be))
        finally:
            be.close()
    return outs[0], outs[1]


def attach_rules(be: Any) -> list[Any]:
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 4)
    arr = be.be.map_create(MapType.ARRAY, 4, 4, 4)
    msg = load(be, ret(1), P.SK_MSG)
    skb = load(be, ret(1), P.SK_SKB)
    parser = load(be, skb_len(), P.SK_SKB)
    out: list[Any] = [
        attach(be, msg, m, A.SK_MSG_VERDICT), attach(be, msg, m, A.SK_MSG_VERDICT),
        attach(be, msg, m, A.SK_MSG_VERDICT, flags=1), attach(be, msg, arr, A.SK_MSG_VERDICT),
        attach(be, skb, m, A.SK_MSG_VERDICT), attach(be, skb, m, A.SK_SKB_STREAM_VERDICT),
        attach(be, skb, m, A.SK_SKB_VERDICT), attach(be, parser, m, A.SK_SKB_STREAM_PARSER)]
    out += [query(be, m, at) for at in (A.SK_MSG_VERDICT, A.SK_SKB_STREAM_PARSER,
                                        A.SK_SKB_STREAM_VERDICT, A.SK_SKB_VERDICT)]
    out += [detach(be, msg, m, A.SK_SKB_STREAM_VERDICT),
            detach(be, parser, m, A.SK_SKB_STREAM_VERDICT),
            detach(be, skb, m, A.SK_SKB_STREAM_VERDICT),
            detach(be, skb, m, A.SK_SKB_STREAM_VERDICT), query(be, m, A.SK_SKB_VERDICT),
            attach(be, skb, m, A.SK_SKB_VERDICT), query(be, m, A.SK_SKB_STREAM_VERDICT),
            query(be, arr, A.SK_MSG_VERDICT)]
    # links
    lfd = link_create(be, msg, m, A.SK_MSG_VERDICT)
    out += [lfd > 0, detach(be, msg, m, A.SK_MSG_VERDICT),
            link_create(be, msg, m, A.SK_MSG_VERDICT), attach(be, msg, m, A.SK_MSG_VERDICT),
            query(be, m, A.SK_MSG_VERDICT), link_create(be, msg, arr, A.SK_MSG_VERDICT),
            link_create(be, msg, m, A.SK_MSG_VERDICT, flags=1),
            link_create(be, msg, m, A.SK_SKB_VERDICT),
            link_create(be, skb, m, A.SK_SKB_STREAM_VERDICT)]
    return out


def insert_rules(be: Any) -> list[Any]:
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 2)
    h = be.be.map_create(MapType.SOCKHASH, 4, 4, 1)
    msg = load(be, ret(1), P.SK_MSG)
    a, b = be.pair()
    lst, fresh = be.listener(), be.unconnected()
    out: list[Any] = [insert(be, m, 0, a), insert(be, m, 0, b, flags=1),
                      insert(be, m, 1, b, flags=2), insert(be, m, 2, b), insert(be, m, 1, lst),
                      insert(be, m, 1, fresh), insert(be, m, 1, a, flags=4),
                      insert(be, h, 0, a), insert(be, h, 1, b), insert(be, h, 0, b)]
    # a program attached now reaches sockets inserted from now on; a socket that
    # already has an SK_MSG program can't take another map's
    out += [attach(be, msg, m, A.SK_MSG_VERDICT), insert(be, m, 1, b),
            insert(be, m, 1, b), attach(be, msg, h, A.SK_MSG_VERDICT), insert(be, h, 0, b)]
    return out


def _msg_setup(be: Any, prog: Callable[[int, int], list[Any]]) -> tuple[Any, ...]:
    """Sockets a->b and c->d; a (key 0) and c (key 1) in a sockmap whose SK_MSG
    program is prog(map_fd, record_fd)."""
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 2)
    rec = new_record(be)
    fd = load(be, prog(m, rec), P.SK_MSG)
    attach(be, fd, m, A.SK_MSG_VERDICT)
    a, b = be.pair()
    c, d = be.pair()
    insert(be, m, 0, a)
    insert(be, m, 1, c)
    return a, b, c, d, rec


def _arrivals(be: Any, *socks: Any) -> list[bytes]:
    return [be.recv(s) for s in socks]


def msg_pass_and_drop(be: Any) -> list[Any]:
    out: list[Any] = []
    for verdict in (1, 0, 7):
        a, b, c, d, rec = _msg_setup(be, lambda m, r, v=verdict: msg_record(r, v))
        out += [be.send(a, b"hello world"), _arrivals(be, a, b, c, d)]
        r = record(be, rec)
        out += [r[SLOT_SIZE], r[SLOT_LINEAR], r[SLOT_RUNS]]
        # a drop sticks: the next send drops without a run (psock->eval stays SK_DROP)
        out += [be.send(a, b"again"), _arrivals(be, b), record(be, rec)[SLOT_RUNS]]
        out += [be.send(b, b"back"), _arrivals(be, a)]  # b is not in the map
    return out


def msg_redirects(be: Any) -> list[Any]:
    out: list[Any] = []
    for key, flags in ((1, BPF_F_INGRESS), (1, 0), (0, BPF_F_INGRESS), (0, 0), (3, 0), (1, 2)):
        a, b, c, d, _ = _msg_setup(be, lambda m, r, k=key, f=flags: redirect(60, m, k, f))
        out += [be.send(a, b"redirect me"), _arrivals(be, a, b, c, d)]
    return out


def msg_apply_bytes(be: Any) -> list[Any]:
    a, b, _, _, rec = _msg_setup(be, lambda m, r: msg_apply_then_drop(r, 3))
    out: list[Any] = [be.send(a, b"0123456789"), _arrivals(be, b),
                      record(be, rec)[SLOT_RUNS]]
    # a redirect covering the first 4 bytes, then a pass for the rest
    for flags in (BPF_F_INGRESS, 0):
        a, b, c, d, rec = _msg_setup(be, lambda m, r, f=flags:
                                     msg_apply_redirect_then_pass(r, m, 4, 1, f))
        out += [be.send(a, b"0123456789"), _arrivals(be, b, c, d), record(be, rec)[SLOT_RUNS],
                be.send(a, b"abc"), _arrivals(be, b, c, d), record(be, rec)[SLOT_RUNS]]
    return out


def msg_cork_bytes(be: Any) -> list[Any]:
    a, b, _, _, rec = _msg_setup(be, lambda m, r: msg_cork(r, 8))
    out: list[Any] = [be.send(a, b"abcde"), _arrivals(be, b), record(be, rec)[SLOT_SIZE]]
    out += [be.send(a, b"fghij"), _arrivals(be, b), record(be, rec)[SLOT_SIZE]]
    return out


def msg_push_pop_pull(be: Any) -> list[Any]:
    out: list[Any] = []
    for func, start, length in ((91, 2, 3), (91, 0, 10), (91, 0, 11), (91, 9, 1), (91, 10, 0),
                                (90, 0, 4), (90, 5, 2), (90, 10, 3), (90, 11, 1)):
        a, b, _, _, rec = _msg_setup(be, lambda m, r, f=func, s=start, n=length:
                                     msg_edit(r, f, s, n))
        sent = be.send(a, b"0123456789")
        got = be.recv(b)
        r = record(be, rec)
        # pushed bytes are uninitialised on the kernel: compare lengths, and pops exactly
        out += [sent, len(got) if func == 90 else got, r[SLOT_RET], r[SLOT_SIZE],
                r[SLOT_LINEAR]]
    for start, end in ((0, 10), (2, 5), (0, 11), (5, 5), (10, 12)):
        a, b, _, _, rec = _msg_setup(be, lambda m, r, s=start, e=end: msg_pull(r, s, e))
        out += [be.send(a, b"0123456789"), be.recv(b), record(be, rec)[SLOT_RET],
                record(be, rec)[SLOT_LINEAR]]
    return out


def _skb_setup(be: Any, verdict: list[Any], parser: bool, at: int) -> tuple[Any, ...]:
    """a->b, c->d; b (key 0) and c (key 1) in a sockmap with the SK_SKB programs."""
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 2)
    vfd = load(be, verdict if not callable(verdict) else verdict(m), P.SK_SKB)
    if parser:
        attach(be, load(be, skb_len(), P.SK_SKB), m, A.SK_SKB_STREAM_PARSER)
    attach(be, vfd, m, at)
    a, b = be.pair()
    c, d = be.pair()
    insert(be, m, 0, b)
    insert(be, m, 1, c)
    return a, b, c, d


def skb_verdicts(be: Any) -> list[Any]:
    out: list[Any] = []
    progs: list[Any] = [ret(1), ret(0), lambda m: redirect(52, m, 1, BPF_F_INGRESS),
                        lambda m: redirect(52, m, 1, 0), lambda m: redirect(52, m, 3, 0)]
    for parser, at in ((False, A.SK_SKB_STREAM_VERDICT), (False, A.SK_SKB_VERDICT),
                       (True, A.SK_SKB_STREAM_VERDICT)):
        for prog in progs:
            a, b, c, d = _skb_setup(be, prog, parser, at)
            out += [be.send(a, b"stream data"), _arrivals(be, b, c, d)]
    return out


def link_rules(be: Any) -> list[Any]:
    m = be.be.map_create(MapType.SOCKHASH, 4, 4, 4)
    msg1, msg2 = load(be, ret(1), P.SK_MSG), load(be, ret(0), P.SK_MSG)
    skb = load(be, ret(1), P.SK_SKB)
    lfd = link_create(be, msg1, m, A.SK_MSG_VERDICT)
    info = be.link_info(lfd)
    out: list[Any] = [info["type"], info["map_id"] == be.map_id(m), info["attach_type"]]
    out += [link_update(be, lfd, msg2), query(be, m, A.SK_MSG_VERDICT),
            link_update(be, lfd, skb), link_update(be, lfd, msg1, old_fd=msg1),
            link_update(be, lfd, msg1, old_fd=msg2), link_detach(be, lfd),
            be.link_info(lfd)["map_id"], query(be, m, A.SK_MSG_VERDICT),
            link_update(be, lfd, msg1), link_update(be, lfd, skb),
            attach(be, msg1, m, A.SK_MSG_VERDICT), link_detach(be, lfd)]
    be.close_fd(lfd)
    l2 = link_create(be, skb, m, A.SK_SKB_VERDICT)
    out += [query(be, m, A.SK_SKB_VERDICT), attach(be, skb, m, A.SK_SKB_STREAM_VERDICT)]
    be.close_fd(l2)
    out += [query(be, m, A.SK_SKB_VERDICT), attach(be, skb, m, A.SK_SKB_STREAM_VERDICT)]
    return out


def map_contents(be: Any) -> list[Any]:
    """Cookies, lookups and deletes of sockets in a map; a closed socket leaves it."""
    m8 = be.be.map_create(MapType.SOCKMAP, 4, 8, 2)
    m4 = be.be.map_create(MapType.SOCKMAP, 4, 4, 2)
    a, b = be.pair()
    out: list[Any] = [insert(be, m8, 0, a, value_size=8), insert(be, m4, 0, a)]
    cookie = be.be.lookup(m8, bytes(4), 8)
    out += [int.from_bytes(cookie, "little") > 0, be.be.lookup(m8, bytes(4), 8) == cookie]
    out += [_err(be.be.lookup, m4, bytes(4), 4), _err(be.be.lookup, m8, b"\1\0\0\0", 8)]
    out += [_err(be.be.delete, m8, b"\1\0\0\0"), _err(be.be.delete, m8, b"\5\0\0\0"),
            insert(be, m8, 1, b, value_size=8), _err(be.be.delete, m8, b"\1\0\0\0"),
            _err(be.be.delete, m8, b"\1\0\0\0")]
    be.close_sock(a)
    out += [_err(be.be.lookup, m8, bytes(4), 8), _err(be.be.delete, m4, bytes(4))]
    return out


def _err(fn: Callable[..., Any], *args: Any) -> int:
    from pyebpf import BpfError

    try:
        fn(*args)
        return 0
    except BpfError as e:
        return e.errno


def msg_ctx_fields(be: Any) -> list[Any]:
    """sk_msg_md's local_port (host order) and remote_port (network order << 16)."""
    a, b, _, _, rec = _msg_setup(be, lambda m, r: msg_record(r))
    be.send(a, b"x")
    be.recv(b)
    r = record(be, rec)
    local, remote = be.ports(a)
    return [r[SLOT_LOCAL_PORT] == local,
            r[SLOT_REMOTE_PORT] == int.from_bytes(remote.to_bytes(2, "big"), "little") << 16]


def msg_addresses_v4_v6(be: Any) -> list[Any]:
    """sk_msg_md's family and addresses on IPv4 and IPv6 loopback sockets."""
    import socket

    out: list[Any] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
        rec = new_record(be)
        attach(be, load(be, msg_addresses(rec), P.SK_MSG), m, A.SK_MSG_VERDICT)
        a, b = be.pair(family)
        out += [insert(be, m, 0, a), be.send(a, b"addr"), be.recv(b), record(be, rec)[:5]]
        # the accept()ed side
        out += [insert(be, m, 0, b), be.send(b, b"back"), be.recv(a), record(be, rec)[:5]]
    return out


def msg_sock_view(be: Any) -> list[Any]:
    """struct bpf_sock through sk_msg_md->sk: src_port host order, dst_port network."""
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
    rec = new_record(be)
    attach(be, load(be, msg_sock_fields(rec), P.SK_MSG), m, A.SK_MSG_VERDICT)
    a, b = be.pair()
    out: list[Any] = [insert(be, m, 0, a), be.send(a, b"sk"), be.recv(b)]
    r = record(be, rec)
    local, remote = be.ports(a)
    return [*out, r[0], r[1], r[2], r[3] == local,
            r[4] == int.from_bytes(remote.to_bytes(2, "big"), "little"), r[5]]


def attach_after_insert(be: Any) -> list[Any]:
    """A program attached after the socket went in doesn't reach it; re-inserting does."""
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 2)
    a, b = be.pair()
    out: list[Any] = [insert(be, m, 0, a), attach(be, load(be, ret(0), P.SK_MSG), m,
                                                  A.SK_MSG_VERDICT)]
    out += [be.send(a, b"first"), be.recv(b), insert(be, m, 1, a), be.send(a, b"second"),
            be.recv(b)]
    return out


def stream_parser_lengths(be: Any) -> list[Any]:
    """A parser saying every message is 4 bytes: the verdict sees whole 4-byte
    messages; what is left waits for the rest."""
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
    attach(be, load(be, parser_const(4), P.SK_SKB), m, A.SK_SKB_STREAM_PARSER)
    attach(be, load(be, ret(1), P.SK_SKB), m, A.SK_SKB_STREAM_VERDICT)
    a, b = be.pair()
    insert(be, m, 0, b)
    return [be.send(a, b"0123456789"), be.recv(b), be.send(a, b"ab"), be.recv(b)]


def stream_parser_errors(be: Any) -> list[Any]:
    """A parser failing (negative return) stops and gives the socket its error
    (SO_ERROR, not recv()); one returning 0 holds everything back."""
    out: list[Any] = []
    for parser in (ret(-71), ret(0)):
        m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
        attach(be, load(be, parser, P.SK_SKB), m, A.SK_SKB_STREAM_PARSER)
        attach(be, load(be, ret(1), P.SK_SKB), m, A.SK_SKB_STREAM_VERDICT)
        a, b = be.pair()
        insert(be, m, 0, b)
        out += [be.send(a, b"bad"), be.recv(b), be.so_error(b), be.so_error(b),
                be.send(a, b"more"), be.recv(b)]
    return out


def skb_ctx_and_helpers(be: Any) -> list[Any]:
    """What an SK_SKB verdict reads in __sk_buff, and bytes it changes with helpers."""
    rec = new_record(be)
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
    attach(be, load(be, skb_record(rec), P.SK_SKB), m, A.SK_SKB_VERDICT)
    a, b = be.pair()
    insert(be, m, 0, b)
    out: list[Any] = [be.send(a, b"seven b"), be.recv(b)]
    r = record(be, rec)
    local, remote = be.ports(b)
    out += [r[0], r[1], r[2] == local,
            r[3] == int.from_bytes(remote.to_bytes(2, "big"), "little") << 16, r[4],
            r[5] == int.from_bytes(bytes([127, 0, 0, 1]), "little")]
    for pull in (0, 4, 7, 8):
        rec = new_record(be)
        m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
        attach(be, load(be, skb_record(rec, pull), P.SK_SKB), m, A.SK_SKB_VERDICT)
        a, b = be.pair()
        insert(be, m, 0, b)
        out += [be.send(a, b"seven b"), be.recv(b)]
        r = record(be, rec)
        out += [r[1], r[6]]
    rec = new_record(be)
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
    attach(be, load(be, skb_len(), P.SK_SKB), m, A.SK_SKB_STREAM_PARSER)
    attach(be, load(be, skb_record(rec), P.SK_SKB), m, A.SK_SKB_STREAM_VERDICT)
    a, b = be.pair()
    insert(be, m, 0, b)
    out += [be.send(a, b"parsed"), be.recv(b), record(be, rec)[:2]]
    for prog in (skb_trim(3), skb_overwrite(ord("#"))):
        m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
        attach(be, load(be, prog, P.SK_SKB), m, A.SK_SKB_STREAM_VERDICT)
        a, b = be.pair()
        insert(be, m, 0, b)
        out += [be.send(a, b"changed"), be.recv(b)]
    return out


def udp_sockets(be: Any) -> list[Any]:
    """UDP: a bound socket goes in a map (an unbound one is EOPNOTSUPP); no SK_MSG
    on send; an skb verdict on each datagram, what it passes read as a stream;
    redirects need a connected target."""
    out: list[Any] = []
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 4)
    attach(be, load(be, ret(0), P.SK_MSG), m, A.SK_MSG_VERDICT)
    a, b = be.udp_pair()
    out += [insert(be, m, 0, be.udp_unconnected()), insert(be, m, 0, be.udp_unconnected(True)),
            insert(be, m, 1, a), be.send(a, b"dgram"), be.recv(b)]
    for verdict in (ret(1), ret(0), lambda m: redirect(52, m, 1, BPF_F_INGRESS),
                    lambda m: redirect(52, m, 0, BPF_F_INGRESS)):
        m = be.be.map_create(MapType.SOCKMAP, 4, 4, 4)
        prog = verdict(m) if callable(verdict) else verdict
        attach(be, load(be, prog, P.SK_SKB), m, A.SK_SKB_VERDICT)
        a, b = be.udp_pair()
        c, d = be.udp_pair()
        out += [insert(be, m, 0, be.udp_unconnected(True)), insert(be, m, 2, b),
                insert(be, m, 1, c), be.send(a, b"one"), be.send(a, b"two"),
                [be.recv(s) for s in (b, c, d)]]
    # what the verdict reads: a datagram's payload is in the head (TCP's is paged)
    rec = new_record(be)
    m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
    attach(be, load(be, skb_record(rec), P.SK_SKB), m, A.SK_SKB_VERDICT)
    a, b = be.udp_pair()
    out += [insert(be, m, 0, b), be.send(a, b"datagram"), be.recv(b)]
    r = record(be, rec)
    local, remote = be.ports(b)
    out += [r[0], r[1], r[2] == local,
            r[3] == int.from_bytes(remote.to_bytes(2, "big"), "little") << 16, r[4], r[5]]
    return out


def redirects_to_udp(be: Any) -> list[Any]:
    """A TCP socket's sk_msg may redirect into a UDP socket's ingress queue but not
    out of it (SK_DROP); an sk_skb verdict may do both."""
    out: list[Any] = []
    for func, ptype, at in ((60, P.SK_MSG, A.SK_MSG_VERDICT), (52, P.SK_SKB, A.SK_SKB_VERDICT)):
        for flags in (0, BPF_F_INGRESS):
            m = be.be.map_create(MapType.SOCKMAP, 4, 4, 2)
            attach(be, load(be, redirect(func, m, 1, flags), ptype), m, at)
            a, b = be.pair()
            c, d = be.udp_pair()
            out += [insert(be, m, 0, a if ptype == P.SK_MSG else b), insert(be, m, 1, c),
                    be.send(a, b"to udp"), [be.recv(s) for s in (b, c, d)]]
    return out


def hash_redirects(be: Any) -> list[Any]:
    """bpf_msg_redirect_hash / bpf_sk_redirect_hash with a key on the stack."""
    out: list[Any] = []
    for func, ptype in ((71, P.SK_MSG), (72, P.SK_SKB)):
        h = be.be.map_create(MapType.SOCKHASH, 4, 4, 4)
        for key, flags in ((7, BPF_F_INGRESS), (7, 0), (8, 0)):
            prog = load(be, hash_redirect(func, h, key, flags), ptype)
            a, b = be.pair()
            c, d = be.pair()
            sender, target = (a, a) if ptype == P.SK_MSG else (a, b)
            at = A.SK_MSG_VERDICT if ptype == P.SK_MSG else A.SK_SKB_VERDICT
            m_fd = h
            attach(be, prog, m_fd, at)
            insert(be, m_fd, 1, target)
            insert(be, m_fd, 7, c)
            out += [be.send(sender, b"hashed"), _arrivals(be, a, b, c, d)]
            detach(be, prog, m_fd, at)
            be.be.delete(m_fd, (1).to_bytes(4, "little"))
            be.be.delete(m_fd, (7).to_bytes(4, "little"))
    return out


SCENARIOS = [attach_rules, insert_rules, msg_pass_and_drop, msg_redirects, msg_apply_bytes,
             msg_cork_bytes, msg_push_pop_pull, skb_verdicts, link_rules, map_contents,
             msg_ctx_fields, msg_addresses_v4_v6, msg_sock_view, attach_after_insert,
             stream_parser_lengths, stream_parser_errors, skb_ctx_and_helpers, udp_sockets,
             redirects_to_udp, hash_redirects]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_sockmap_hooks_match_the_kernel(scenario: Scenario) -> None:
    py, kernel = _both(scenario)
    assert py == kernel


# -- bpf_sock_map_update from sock_ops: a cgroup's program on a real connect ------------------
SO_COOKIE = 57
#: The sock_ops callbacks the program acts on: TCP_CONNECT_CB, ACTIVE_ / PASSIVE_ESTABLISHED_CB.
OPS = (3, 4, 5)


def _sock_ops_prog(map_fd: int, rec_fd: int) -> list[Any]:
    """For the ops in OPS: rec[op] = bpf_sock_map_update(skops, map, &op, BPF_ANY)."""
    from helpers._build import JEQ, Asm, call, ld_map_fd, ldx, mov, movr, st, stx
    from links.sockmap_progs import alu

    p = Asm()
    p(movr(6, 1), ldx(4, 7, 6, 0))
    for op in OPS:
        p.jmp(JEQ, 7, op, "do")
    p.ja("out")
    p.label("do")(stx(4, 10, 7, -4), movr(1, 6), *ld_map_fd(2, map_fd), movr(3, 10),
                  alu(0x00, 3, -4), mov(4, 0), call(53), movr(8, 0))
    p(stx(4, 10, 7, -8), *ld_map_fd(1, rec_fd), movr(2, 10), alu(0x00, 2, -8), call(1))
    p.jmp(JEQ, 0, 0, "out")(stx(8, 0, 8, 0))
    p.jmp(0x50, 7, 4, "out")  # the client's ACTIVE_ESTABLISHED_CB: its ports too
    for slot, off in ((6, 64), (7, 68)):  # remote_port, local_port
        p(ldx(4, 8, 6, off), st(4, 10, -8, slot), *ld_map_fd(1, rec_fd), movr(2, 10),
          alu(0x00, 2, -8), call(1))
        p.jmp(JEQ, 0, 0, "out")(stx(8, 0, 8, 0))
    p.label("out")(*ret(1))
    return p.build()


def _sock_ops_result(be: Any, m: int, rec: int, cookies: tuple[int, int],
                     ports: tuple[int, int]) -> list[Any]:
    r = record(be, rec)
    out: list[Any] = [r[op] - (1 << 64) if r[op] >> 63 else r[op] for op in OPS]
    local, remote = ports
    out += [r[6] == int.from_bytes(remote.to_bytes(2, "big"), "little") << 16, r[7] == local]
    for op, cookie in ((4, cookies[0]), (5, cookies[1])):
        out.append(int.from_bytes(be.be.lookup(m, op.to_bytes(4, "little"), 8), "little")
                   == cookie)
    from pyebpf import BpfError

    try:
        be.be.lookup(m, (3).to_bytes(4, "little"), 8)
        out.append(0)
    except BpfError as e:
        out.append(e.errno)
    return out


def sock_ops_child(cgroup_dir: str) -> None:
    """In a child process: join ``cgroup_dir``, attach the sock_ops program there,
    connect over loopback, print what the program did as JSON."""
    import json
    import os
    import socket as so

    from pyebpf.attr import ProgAttachAttr
    from pyebpf.testing.kernel import kernel_bpf
    from pyebpf.uapi import AttachType, Cmd

    with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    be = KernelSockets()
    m = be.be.map_create(MapType.SOCKMAP, 4, 8, 8)
    rec = new_record(be)
    prog = load(be, _sock_ops_prog(m, rec), P.SOCK_OPS)
    kernel_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg, attach_bpf_fd=prog,
                                               attach_type=AttachType.CGROUP_SOCK_OPS))
    a, b = be.pair()
    cookies = (int.from_bytes(a.getsockopt(so.SOL_SOCKET, SO_COOKIE, 8), "little"),
               int.from_bytes(b.getsockopt(so.SOL_SOCKET, SO_COOKIE, 8), "little"))
    print(json.dumps(_sock_ops_result(be, m, rec, cookies, be.ports(a))))
    be.close()


def sock_ops_on_pyebpf() -> list[Any]:
    from pyebpf.progs.sock_ops import run_sock_ops

    be = PySockets()
    try:
        m = be.be.map_create(MapType.SOCKMAP, 4, 8, 8)
        rec = new_record(be)
        prog = be.be.rt.file(load(be, _sock_ops_prog(m, rec), P.SOCK_OPS)).obj
        a, b = be.pair()
        for op, sk in ((3, a), (4, a), (5, b)):  # tcp_connect, then each side established
            run_sock_ops(be.be.rt, prog, op, sk=sk.sock)
        return _sock_ops_result(be, m, rec, (a.cookie(), b.cookie()), be.ports(a))
    finally:
        be.close()


def _ops_log_prog(log_fd: int) -> list[Any]:
    """Log each call: log[0] counts, log[n] = op | local_port << 16 | state << 40."""
    from helpers._build import JEQ, Asm, call, ld_map_fd, ldx, movr, st, stx
    from links.sockmap_progs import alu

    p = Asm()
    p(movr(6, 1), st(4, 10, -4, 0), *ld_map_fd(1, log_fd), movr(2, 10), alu(0, 2, -4), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(ldx(8, 7, 0, 0), movr(8, 7), alu(0, 8, 1), stx(8, 0, 8, 0), alu(0, 7, 1))
    p(stx(4, 10, 7, -8), *ld_map_fd(1, log_fd), movr(2, 10), alu(0, 2, -8), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(ldx(4, 8, 6, 0), ldx(4, 9, 6, 68), alu(0x60, 9, 16), Insn(0x4F, 8, 9),  # op | port
      ldx(4, 9, 6, 88), alu(0x60, 9, 32), alu(0x60, 9, 8), Insn(0x4F, 8, 9),  # | state
      stx(8, 0, 8, 0))
    p.label("out")(*ret(1))
    return p.build()


def _ops_log(be: Any, log: int, ports: dict[int, str]) -> list[Any]:
    vals = [int.from_bytes(be.be.lookup(log, i.to_bytes(4, "little"), 8), "little")
            for i in range(16)]
    return [[v & 0xFFFF, ports.get(v >> 16 & 0xFFFF, "?"), v >> 40]
            for v in vals[1:vals[0] + 1]]


def sock_ops_sequence_child(cgroup_dir: str) -> None:
    """In a child process in ``cgroup_dir``: the sock_ops callbacks of a connect."""
    import json
    import os

    from pyebpf.attr import ProgAttachAttr
    from pyebpf.testing.kernel import kernel_bpf
    from pyebpf.uapi import AttachType, Cmd

    with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    be = KernelSockets()
    log = be.be.map_create(MapType.ARRAY, 4, 8, 16)
    prog = load(be, _ops_log_prog(log), P.SOCK_OPS)
    kernel_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg, attach_bpf_fd=prog,
                                               attach_type=AttachType.CGROUP_SOCK_OPS))
    a, b = be.pair()
    print(json.dumps(_ops_log(be, log, {be.ports(a)[0]: "client", be.ports(b)[0]: "server"})))
    be.close()


def sock_ops_sequence_on_pyebpf() -> list[Any]:
    from pyebpf.attr import ProgAttachAttr
    from pyebpf.links import cgroup_root
    from pyebpf.links.inet import socket_pair
    from pyebpf.uapi import AttachType, Cmd

    be = PySockets()
    try:
        log = be.be.map_create(MapType.ARRAY, 4, 8, 16)
        cg = cgroup_root(be.be.rt)
        be.bpf(Cmd.PROG_ATTACH, ProgAttachAttr(
            target_fd=cg.open(), attach_bpf_fd=load(be, _ops_log_prog(log), P.SOCK_OPS),
            attach_type=AttachType.CGROUP_SOCK_OPS))
        a, b = socket_pair(be.be.rt, cgroup=cg)
        return _ops_log(be, log, {be.ports(a)[0]: "client", be.ports(b)[0]: "server"})
    finally:
        be.close()


def _in_cgroup_child(child: str) -> Any:
    """Run ``child(cgroup_dir)`` of this module in a child process placed in a fresh
    cgroup v2 directory (so its sock_ops programs see only its sockets); its JSON."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    mount = next((Path(f[1]) for f in mounts if len(f) > 2 and f[2] == "cgroup2"), None)
    if mount is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    base = mount / f"pyebpf-sockmap-{os.getpid()}"
    try:
        base.mkdir()
    except OSError as e:
        pytest.skip(f"can't create a cgroup: {e}")
    tests = Path(__file__).resolve().parents[1]
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            f"from kernel.test_sockmap_hooks_differential import {child}; "
            f"{child}(sys.argv[2])")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(tests), str(base)],
                              capture_output=True, text=True, timeout=120)
    finally:
        base.rmdir()
    if proc.returncode:
        pytest.fail(f"child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sock_ops_inserts_sockets_as_the_kernel_does() -> None:
    assert sock_ops_on_pyebpf() == _in_cgroup_child("sock_ops_child")


def test_a_connect_calls_the_sock_ops_callbacks_the_kernel_calls() -> None:
    assert sock_ops_sequence_on_pyebpf() == _in_cgroup_child("sock_ops_sequence_child")
