"""XDP and tc programs the redirect tests load on pyebpf and on the kernel alike.

Counting programs add one to slot ``slot`` of an ARRAY of u64 counters for
every frame of the tests' EtherType (0x88b5, IEEE local experimental), so the
kernel's own traffic on fresh devices (IPv6 autoconfiguration) is not counted.
"""

from __future__ import annotations

from helpers._build import (
    ADD,
    JEQ,
    JGT,
    JNE,
    Asm,
    alu,
    call,
    exit_,
    ld_map_fd,
    lddw,
    ldx,
    mov,
    movr,
    st,
    stx,
)
from pyebpf import Insn

ETH_P_TEST = 0x88B5
#: The tests' frame: broadcast destination, a source, EtherType 0x88b5, payload.
FRAME = b"\xff" * 6 + bytes([2, 0, 0, 0, 0, 0x42]) + ETH_P_TEST.to_bytes(2, "big") + \
    bytes(range(46))
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
#: Offsets of data/data_end in xdp_md and __sk_buff.
_XDP_DATA, _SKB_DATA = 0, 76
#: xdp_md.ingress_ifindex / rx_queue_index / egress_ifindex.
INGRESS_IFINDEX, RX_QUEUE_INDEX, EGRESS_IFINDEX = 12, 16, 20


def ret(action: int) -> list[Insn]:
    return [mov(0, action), exit_()]


def redirect_map(map_fd: int, key: int, flags: int = 0) -> list[Insn]:
    """return bpf_redirect_map(map, key, flags)."""
    return [*ld_map_fd(1, map_fd), mov(2, key), *lddw(3, flags), call(51), exit_()]


def redirect(ifindex: int) -> list[Insn]:
    """return bpf_redirect(ifindex, 0)."""
    return [mov(1, ifindex), mov(2, 0), call(23), exit_()]


def _bump(counters_fd: int, slot: int, a: Asm, value_reg: int | None = None) -> None:
    """counters[slot] += 1 (or = value_reg's value, saved in r7)."""
    a(st(4, 10, -4, slot), *ld_map_fd(1, counters_fd), movr(2, 10), alu(ADD, 2, -4), call(1))
    a.jmp(JEQ, 0, 0, "out")
    if value_reg is None:
        a(ldx(8, 1, 0, 0), alu(ADD, 1, 1), stx(8, 0, 1, 0))
    else:
        a(stx(8, 0, 7, 0))


def count(counters_fd: int, slot: int, verdict: int, *, skb: bool = False,
          record: int | None = None) -> list[Insn]:
    """Count frames of the test EtherType in ``slot``, then return ``verdict``.
    ``record``: store that xdp_md field (an offset) in the slot instead of counting."""
    data = _SKB_DATA if skb else _XDP_DATA
    a = Asm()
    if record is not None:
        a(ldx(4, 7, 1, record))
    a(ldx(4, 2, 1, data), ldx(4, 3, 1, data + 4), movr(4, 2), alu(ADD, 4, 14))
    a.jmpr(JGT, 4, 3, "out")
    a(ldx(2, 4, 2, 12))
    a.jmp(JNE, 4, int.from_bytes(ETH_P_TEST.to_bytes(2, "big"), "little"), "out")
    _bump(counters_fd, slot, a, 7 if record is not None else None)
    a.label("out")
    a(*ret(verdict))
    return a.build()


def count_then_redirect_map(counters_fd: int, slot: int, map_fd: int, key: int,
                            flags: int = 0) -> list[Insn]:
    """Count the frame in ``slot``, then return bpf_redirect_map(map, key, flags)."""
    a = Asm()
    _bump(counters_fd, slot, a)
    a.label("out")
    a(*redirect_map(map_fd, key, flags))
    return a.build()


def xsk_queue_id(map_fd: int, key: int) -> list[Insn]:
    """return lookup(xskmap, key)->queue_id, or 99 for NULL (PTR_TO_XDP_SOCK)."""
    a = Asm()
    a(st(4, 10, -4, key), *ld_map_fd(1, map_fd), movr(2, 10), alu(ADD, 2, -4), call(1),
      movr(1, 0), mov(0, 99))
    a.jmp(JEQ, 1, 0, "out")
    a(ldx(4, 0, 1, 0))
    a.label("out")
    a(exit_())
    return a.build()
