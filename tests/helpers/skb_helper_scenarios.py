"""Scenarios for bpf_skb_change_proto, bpf_skb_ecn_set_ce, bpf_skb_set_tstamp and
bpf_skb_cgroup_classid that run the same on pyebpf and the kernel.

tests/helpers/test_skb_proto_helpers.py pins pyebpf's answers;
tests/kernel/test_skb_proto_differential.py requires the kernel's to be the same.
"""

from __future__ import annotations

from typing import Any

from pyebpf import ProgType

from ._build import AND, Asm, alu, call, exit_, lddw, ldx, movr
from .packet_scenarios import CTX, ipv4_udp_packet, run_helper

Backend = Any
#: htons(ETH_P_IP) / htons(ETH_P_IPV6) as a register holds them.
BE_IP, BE_IPV6 = 0x0008, 0xDD86


def ipv6_udp_packet(payload: bytes = b"hello, ipv6!", tclass: int = 0) -> bytes:
    """Ethernet + IPv6 (traffic class ``tclass``) + UDP (checksum 0) + payload."""
    udp_len = 8 + len(payload)
    first = (6 << 28) | (tclass << 20) | 0x12345
    ip6 = (first.to_bytes(4, "big") + udp_len.to_bytes(2, "big") + bytes([17, 64])
           + bytes(15) + b"\x01" + bytes(15) + b"\x02")
    udp = (1234).to_bytes(2, "big") + (53).to_bytes(2, "big") + udp_len.to_bytes(2, "big") \
        + b"\0\0"
    eth = bytes(6) + bytes(6) + b"\x86\xdd"
    return eth + ip6 + udp + payload


def ipv4_with_tos(tos: int) -> bytes:
    """ipv4_udp_packet with the given TOS byte and a header checksum fixed to match."""
    from pyebpf.helpers.csum import csum_fold, csum_partial

    pkt = bytearray(ipv4_udp_packet())
    pkt[15] = tos
    pkt[24:26] = b"\0\0"
    pkt[24:26] = csum_fold(csum_partial(bytes(pkt[14:34]), 0)).to_bytes(2, "little")
    return bytes(pkt)


def change_proto(be: Backend, cases: list[tuple[int, int]],
                 packet: bytes) -> list[tuple[int, bytes]]:
    """skb_change_proto(ctx, proto, flags) per case: (retval, packet out)."""
    return [run_helper(be, 31, [CTX, proto, flags], packet) for proto, flags in cases]


def ecn_set_ce(be: Backend, packets: list[bytes],
               prog_type: int = ProgType.SCHED_CLS) -> list[tuple[int, bytes]]:
    """skb_ecn_set_ce(ctx) on each packet: (retval, packet out). The retval is
    masked to its one bit, which cgroup skb programs must return."""
    fd = be.load([call(97), alu(AND, 0, 1), exit_()], prog_type)
    try:
        return [be.run_out(fd, pkt) for pkt in packets]
    finally:
        be.close_fd(fd)


#: __sk_buff offsets of tstamp (u64) and tstamp_type (u8).
_TSTAMP, _TSTAMP_TYPE = 152, 180


def set_tstamp(be: Backend, cases: list[tuple[int, int]],
               packet: bytes | None = None) -> list[tuple[int, int, int]]:
    """skb_set_tstamp(ctx, tstamp, type) per case: (retval, the low 32 bits of
    __sk_buff->tstamp after, __sk_buff->tstamp_type after)."""
    pkt = packet if packet is not None else ipv4_udp_packet()
    out = []
    for tstamp, tstamp_type in cases:
        got = []
        for read in (None, (8, _TSTAMP), (1, _TSTAMP_TYPE)):
            p = Asm()
            p(movr(6, 1), lddw(2, tstamp), lddw(3, tstamp_type), call(192))
            if read is not None:
                p(ldx(read[0], 0, 6, read[1]))
            p(exit_())
            fd = be.load(p.build(), ProgType.SCHED_CLS)
            try:
                got.append(be.run_out(fd, pkt)[0])
            finally:
                be.close_fd(fd)
        out.append((got[0] - (1 << 32) if got[0] >> 31 else got[0], got[1], got[2]))
    return out


def cgroup_classid(be: Backend, prog_type: int = ProgType.SCHED_CLS) -> int:
    """skb_cgroup_classid(ctx) in a test run."""
    return run_helper(be, 151, [CTX], ipv4_udp_packet(), prog_type)[0]


#: struct bpf_tunnel_key: tunnel_id 42, remote_ipv4 10.0.0.2, ttl 64.
TUNNEL_KEY = (42).to_bytes(4, "little") + (0x0A000002).to_bytes(4, "little") + bytes(12) \
    + bytes([0, 64]) + bytes(22)


def tunnel_opt(be: Backend, set_key: bool, opts: bytes | None, set_size: int,
               get_size: int) -> tuple[int, int, bytes]:
    """Optionally skb_set_tunnel_key(TUNNEL_KEY) and skb_set_tunnel_opt(opts,
    set_size), then skb_get_tunnel_opt(buf, get_size) into a buffer of 0x5a:
    (set_opt's retval (0 when not called), get_opt's retval, the buffer after).
    A failed set_tunnel_key returns 0x1000 + its retval from the program."""
    from ._build import JEQ, mov, st, stx

    words = []
    for part in range(2 + (get_size + 3) // 4):
        p = Asm()
        p(movr(6, 1), mov(7, 0))
        if set_key:
            for i in range(0, len(TUNNEL_KEY), 4):
                p(st(4, 10, -64 + i, int.from_bytes(TUNNEL_KEY[i:i + 4], "little", signed=True)))
            p(movr(1, 6), movr(2, 10), alu(0x00, 2, -64), mov(3, 44), mov(4, 0), call(21))
            p.jmp(JEQ, 0, 0, "key_ok")
            p(alu(0x00, 0, 0x1000), exit_())
            p.label("key_ok")
        if opts is not None:
            padded = opts.ljust(max(set_size, len(opts), 8), b"\0")
            padded = padded.ljust((len(padded) + 7) // 8 * 8, b"\0")
            for i in range(0, len(padded), 8):
                p(lddw(0, int.from_bytes(padded[i:i + 8], "little")), stx(8, 10, 0, -320 + i))
            p(movr(1, 6), movr(2, 10), alu(0x00, 2, -320), mov(3, set_size), call(30),
              movr(7, 0))
        p(lddw(0, 0x5A5A5A5A5A5A5A5A))
        for i in range(0, (get_size + 7) // 8 * 8, 8):
            p(stx(8, 10, 0, -512 + i))
        p(movr(1, 6), movr(2, 10), alu(0x00, 2, -512), mov(3, get_size), call(29))
        if part == 0:
            p(movr(0, 7))
        elif part >= 2:
            p(ldx(4, 0, 10, -512 + 4 * (part - 2)))
        p(exit_())
        fd = be.load(p.build(), ProgType.SCHED_CLS)
        try:
            words.append(be.run_out(fd, ipv4_udp_packet())[0])
        finally:
            be.close_fd(fd)
    signed = [w - (1 << 32) if w >> 31 else w for w in words[:2]]
    buf = b"".join(w.to_bytes(4, "little") for w in words[2:])[:get_size]
    return signed[0], signed[1], buf


def tunnel_key_flags(be: Backend, opts: bytes | None) -> int:
    """skb_set_tunnel_key(TUNNEL_KEY), optionally skb_set_tunnel_opt(opts), then
    skb_get_tunnel_key(BPF_F_TUNINFO_FLAGS): the tunnel_flags it reports (__be16
    as a u16 load reads it)."""
    from ._build import st

    p = Asm()
    p(movr(6, 1))
    for i in range(0, len(TUNNEL_KEY), 4):
        p(st(4, 10, -64 + i, int.from_bytes(TUNNEL_KEY[i:i + 4], "little", signed=True)))
    p(movr(1, 6), movr(2, 10), alu(0x00, 2, -64), lddw(3, 44), lddw(4, 0), call(21))
    if opts is not None:
        for i in range(0, len(opts), 4):
            p(st(4, 10, -128 + i, int.from_bytes(opts[i:i + 4], "little", signed=True)))
        p(movr(1, 6), movr(2, 10), alu(0x00, 2, -128), lddw(3, len(opts)), call(30))
    p(movr(1, 6), movr(2, 10), alu(0x00, 2, -192), lddw(3, 44), lddw(4, 0x10), call(20),
      ldx(2, 0, 10, -192 + 22), exit_())
    fd = be.load(p.build(), ProgType.SCHED_CLS)
    try:
        return int(be.run_out(fd, ipv4_udp_packet())[0])
    finally:
        be.close_fd(fd)
