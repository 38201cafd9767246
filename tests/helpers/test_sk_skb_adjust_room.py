"""bpf_skb_adjust_room in SK_SKB programs is sk_skb_adjust_room (net/core/filter.c):
only mode BPF_ADJ_ROOM_NET and no flags (else -EINVAL), at most 0xfff bytes
(else -EFAULT); it grows the payload by zeroed bytes at its start (skb_cow,
__skb_push) or drops its first bytes (pskb_may_pull, -ENOMEM past the end,
then __skb_pull). Run on pyebpf's simulated TCP sockets in a sockmap."""

from __future__ import annotations

import errno

from helpers._build import SUB, alur, call, ldx, mov, movr
from links.sockmap_progs import (
    SKB_DATA,
    SKB_DATA_END,
    SKB_LEN,
    A,
    Asm,
    PySockets,
    _store,
    attach,
    insert,
    load,
    new_record,
    record,
    ret,
)
from pyebpf import Insn, MapType, ProgType

PAYLOAD = b"0123456789"
BPF_ADJ_ROOM_MAC = 1
BPF_F_ADJ_ROOM_NO_CSUM_RESET = 1 << 5


def adjust_room(rec_fd: int, len_diff: int, mode: int, flags: int) -> list[Insn]:
    """r = bpf_skb_adjust_room(skb, len_diff, mode, flags); record r, skb->len and
    data_end - data (slots 0..2); SK_PASS."""
    p = Asm()
    p(movr(6, 1), mov(2, len_diff), mov(3, mode), mov(4, flags), call(50), movr(7, 0))
    _store(p, rec_fd, 0, 7)
    p(ldx(4, 7, 6, SKB_LEN))
    _store(p, rec_fd, 1, 7)
    p(ldx(4, 7, 6, SKB_DATA_END), ldx(4, 8, 6, SKB_DATA), alur(SUB, 7, 8))
    _store(p, rec_fd, 2, 7)
    p(*ret(1))
    return p.build()


def _run(len_diff: int, mode: int = 0, flags: int = 0,
         udp: bool = False) -> tuple[bytes, int, int, int]:
    """What the receiving socket reads, the helper's return, skb->len and
    data_end - data after it."""
    be = PySockets()
    try:
        rec = new_record(be)
        m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
        attach(be, load(be, adjust_room(rec, len_diff, mode, flags), ProgType.SK_SKB), m,
               A.SK_SKB_VERDICT)
        a, b = be.udp_pair() if udp else be.pair()
        insert(be, m, 0, b)
        be.send(a, PAYLOAD)
        got = be.recv(b)
        r = record(be, rec)
    finally:
        be.close()
    assert isinstance(got, bytes)
    ret0 = r[0] - (1 << 64) if r[0] >> 63 else r[0]
    return got, ret0, r[1], r[2]


def test_grow_puts_zeroed_room_before_the_payload_in_the_head() -> None:
    # the TCP payload is paged (headlen 0): the pushed bytes are all data_end reaches
    assert _run(3) == (b"\0\0\0" + PAYLOAD, 0, 13, 3)


def test_grow_by_0xfff_expands_the_headroom() -> None:
    got, r0, length, linear = _run(0xFFF)
    assert (got, r0, length, linear) == (bytes(0xFFF) + PAYLOAD, 0, 0xFFF + 10, 0xFFF)


def test_shrink_drops_the_payloads_first_bytes_pulling_them_first() -> None:
    assert _run(-4) == (PAYLOAD[4:], 0, 6, 0)


def test_shrink_past_the_end_is_enomem_and_changes_nothing() -> None:
    assert _run(-11) == (PAYLOAD, -errno.ENOMEM, 10, 0)


def test_zero_len_diff_changes_nothing() -> None:
    assert _run(0) == (PAYLOAD, 0, 10, 0)


def test_more_than_0xfff_bytes_is_efault() -> None:
    assert _run(0x1000)[1:3] == (-errno.EFAULT, 10)
    assert _run(-0x1000)[1:3] == (-errno.EFAULT, 10)


def test_mode_other_than_net_is_einval() -> None:
    assert _run(2, mode=BPF_ADJ_ROOM_MAC) == (PAYLOAD, -errno.EINVAL, 10, 0)


def test_any_flag_is_einval() -> None:
    assert _run(-2, flags=BPF_F_ADJ_ROOM_NO_CSUM_RESET) == (PAYLOAD, -errno.EINVAL, 10, 0)


def test_a_datagrams_payload_is_linear_so_data_end_follows_the_room() -> None:
    assert _run(3, udp=True) == (b"\0\0\0" + PAYLOAD, 0, 13, 13)
    assert _run(-4, udp=True) == (PAYLOAD[4:], 0, 6, 6)
