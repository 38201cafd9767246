"""Ethernet/IPv4/IPv6/TCP/UDP frames as bytes, well-formed or deliberately broken.

A test of a packet-parsing BPF program wants two kinds of input: frames a
real NIC would deliver, and frames an attacker would send (a checksum that
doesn't add up, an IPv4 header length pointing past the end, a frame cut in
the middle of a header). :func:`build_frame` makes both from one description
(:class:`FrameSpec`) so that a test knows exactly which defects a frame
carries; :func:`parse_frame` reads a frame back and reports what it finds
wrong, which is how the strategies' own property tests check the builder.

Everything here is plain Python with no dependency on hypothesis; the
strategies in :mod:`pyebpf.testing.strategies` draw :class:`FrameSpec` values.
Byte order on the wire is big-endian ("network order") throughout.
"""

from __future__ import annotations

import enum
import ipaddress
import struct

import attrs

__all__ = [
    "ETH_HLEN",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "Defect",
    "Frame",
    "FrameSpec",
    "ParsedFrame",
    "build_frame",
    "ethernet",
    "inet_checksum",
    "ipv4",
    "ipv6",
    "parse_frame",
    "tcp",
    "udp",
]

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPV4_MIN_HLEN = 20
IPV6_HLEN = 40
TCP_MIN_HLEN = 20
UDP_HLEN = 8
#: TCP flag bits (byte 13 of the header).
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
IP_DF = 0x4000


class Defect(enum.Enum):
    """A deliberate fault a frame may carry (each one breaks one header rule)."""

    #: The IPv4 header checksum does not add up.
    BAD_IP_CHECKSUM = "bad_ip_checksum"
    #: The TCP/UDP checksum (over the pseudo-header) does not add up.
    BAD_L4_CHECKSUM = "bad_l4_checksum"
    #: The frame ends before its last header does (cut inside a header).
    TRUNCATED = "truncated"
    #: IPv4 ihl below 5 or beyond the bytes present.
    BAD_IHL = "bad_ihl"
    #: IPv4 total length / IPv6 payload length disagrees with the bytes present.
    BAD_IP_LENGTH = "bad_ip_length"
    #: UDP length disagrees with the bytes present.
    BAD_UDP_LENGTH = "bad_udp_length"
    #: TCP data offset below 5 or beyond the bytes present.
    BAD_TCP_DOFF = "bad_tcp_doff"


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ones_sum_ok(data: bytes) -> bool:
    """Whether a header including its checksum field sums to 0xffff (RFC 1071 check)."""
    return inet_checksum(data) == 0


def ethernet(payload: bytes, *, ethertype: int = ETH_P_IP,
             dst: bytes = b"\x02\0\0\0\0\x02", src: bytes = b"\x02\0\0\0\0\x01") -> bytes:
    """An Ethernet II frame (no FCS, as a test run's data_in carries none)."""
    if len(dst) != 6 or len(src) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    return dst + src + struct.pack("!H", ethertype) + payload


def _addr(a: str | bytes | int, version: int) -> bytes:
    size = 4 if version == 4 else 16
    if isinstance(a, bytes):
        if len(a) != size:
            raise ValueError(f"an IPv{version} address is {size} bytes")
        return a
    if isinstance(a, int):
        return a.to_bytes(size, "big")
    return ipaddress.ip_address(a).packed


def _pseudo_v4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def _pseudo_v6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!IxxxB", length, proto)


def ipv4(payload: bytes, *, src: str | bytes | int = "10.0.0.1",
         dst: str | bytes | int = "10.0.0.2", proto: int = IPPROTO_UDP, ttl: int = 64,
         tos: int = 0, ident: int = 0, frag: int = IP_DF, options: bytes = b"",
         ihl: int | None = None, total_length: int | None = None,
         checksum: int | None = None) -> bytes:
    """An IPv4 header followed by ``payload``. ``ihl``/``total_length``/``checksum``
    default to the right values; give them to build a broken header."""
    if len(options) % 4:
        raise ValueError("IPv4 options are a multiple of 4 bytes")
    hlen = IPV4_MIN_HLEN + len(options)
    ihl = hlen // 4 if ihl is None else ihl
    tot = hlen + len(payload) if total_length is None else total_length
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", (4 << 4) | (ihl & 0xF), tos, tot & 0xFFFF,
                                ident, frag, ttl, proto, 0, _addr(src, 4), _addr(dst, 4)))
    hdr += options
    csum = inet_checksum(bytes(hdr)) if checksum is None else checksum
    struct.pack_into("!H", hdr, 10, csum)
    return bytes(hdr) + payload


def ipv6(payload: bytes, *, src: str | bytes | int = "fd00::1",
         dst: str | bytes | int = "fd00::2", next_header: int = IPPROTO_UDP,
         hop_limit: int = 64, traffic_class: int = 0, flow_label: int = 0,
         payload_length: int | None = None) -> bytes:
    """An IPv6 header (no extension headers) followed by ``payload``."""
    plen = len(payload) if payload_length is None else payload_length
    first = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    return struct.pack("!IHBB16s16s", first, plen & 0xFFFF, next_header, hop_limit,
                       _addr(src, 6), _addr(dst, 6)) + payload


def _pseudo(version: int, src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return (_pseudo_v4 if version == 4 else _pseudo_v6)(src, dst, proto, length)


def udp(payload: bytes, *, sport: int = 1234, dport: int = 53, version: int = 4,
        src: str | bytes | int | None = None, dst: str | bytes | int | None = None,
        length: int | None = None, checksum: int | None = None) -> bytes:
    """A UDP datagram. The checksum covers the IPv``version`` pseudo-header of
    ``src``/``dst`` (the defaults of :func:`ipv4`/:func:`ipv6` when None)."""
    s = _addr(src if src is not None else ("10.0.0.1" if version == 4 else "fd00::1"), version)
    d = _addr(dst if dst is not None else ("10.0.0.2" if version == 4 else "fd00::2"), version)
    ulen = UDP_HLEN + len(payload) if length is None else length
    seg = bytearray(struct.pack("!HHHH", sport, dport, ulen & 0xFFFF, 0) + payload)
    if checksum is None:
        csum = inet_checksum(_pseudo(version, s, d, IPPROTO_UDP, len(seg)) + bytes(seg))
        checksum = csum or 0xFFFF  # RFC 768: a computed 0 is sent as all ones
    struct.pack_into("!H", seg, 6, checksum)
    return bytes(seg)


def tcp(payload: bytes, *, sport: int = 1234, dport: int = 80, seq: int = 1, ack: int = 0,
        flags: int = TCP_SYN, window: int = 65535, urgent: int = 0, options: bytes = b"",
        version: int = 4, src: str | bytes | int | None = None,
        dst: str | bytes | int | None = None, doff: int | None = None,
        checksum: int | None = None) -> bytes:
    """A TCP segment, checksummed over the IPv``version`` pseudo-header."""
    if len(options) % 4:
        raise ValueError("TCP options are a multiple of 4 bytes")
    s = _addr(src if src is not None else ("10.0.0.1" if version == 4 else "fd00::1"), version)
    d = _addr(dst if dst is not None else ("10.0.0.2" if version == 4 else "fd00::2"), version)
    doff = (TCP_MIN_HLEN + len(options)) // 4 if doff is None else doff
    seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (doff & 0xF) << 4,
                                flags, window, 0, urgent) + options + payload)
    if checksum is None:
        checksum = inet_checksum(_pseudo(version, s, d, IPPROTO_TCP, len(seg)) + bytes(seg))
    struct.pack_into("!H", seg, 16, checksum)
    return bytes(seg)


@attrs.frozen
class FrameSpec:
    """What a frame should hold, and which defects to put in it."""

    #: 4 or 6 (the ethertype follows); 0: a non-IP frame (ethertype ``ethertype``).
    version: int = 4
    #: IPPROTO_TCP or IPPROTO_UDP; any other number: ``payload`` right after the IP header.
    proto: int = IPPROTO_UDP
    src: bytes = b"\x0a\0\0\x01"
    dst: bytes = b"\x0a\0\0\x02"
    sport: int = 1234
    dport: int = 80
    payload: bytes = b""
    ttl: int = 64
    ip_options: bytes = b""
    tcp_flags: int = TCP_SYN
    tcp_options: bytes = b""
    ethertype: int = 0x88B5  # IEEE local experimental, for non-IP frames
    defects: frozenset[Defect] = frozenset()
    #: TRUNCATED: how many bytes of the complete frame to keep (clamped inside the
    #: last header so that the cut is always visible).
    truncate_to: int = ETH_HLEN + 1


@attrs.frozen
class Frame:
    """A built frame: its bytes and the spec (with its defects) it came from."""

    data: bytes
    spec: FrameSpec

    @property
    def defects(self) -> frozenset[Defect]:
        return self.spec.defects


def _flip(value: int) -> int:
    """A different, still non-zero 16-bit checksum (a UDP checksum of 0 means 'none')."""
    out = value ^ 0x5A5A
    return out if out else 0x1234


def build_frame(spec: FrameSpec) -> Frame:
    """The bytes of ``spec``, with exactly its defects."""
    bad = spec.defects
    if spec.version == 0:
        if bad - {Defect.TRUNCATED}:
            raise ValueError("a non-IP frame can only be truncated")
        data = ethernet(spec.payload, ethertype=spec.ethertype)
        if Defect.TRUNCATED in bad:
            data = data[: min(max(spec.truncate_to, 1), ETH_HLEN - 1)]
        return Frame(data, spec)
    v = spec.version
    if v not in (4, 6):
        raise ValueError(f"IP version {v}")
    if v == 6 and (Defect.BAD_IP_CHECKSUM in bad or Defect.BAD_IHL in bad):
        raise ValueError("IPv6 has no header checksum and no ihl")
    if Defect.BAD_UDP_LENGTH in bad and spec.proto != IPPROTO_UDP:
        raise ValueError("BAD_UDP_LENGTH needs a UDP frame")
    if Defect.BAD_TCP_DOFF in bad and spec.proto != IPPROTO_TCP:
        raise ValueError("BAD_TCP_DOFF needs a TCP frame")
    if Defect.BAD_L4_CHECKSUM in bad and spec.proto not in (IPPROTO_TCP, IPPROTO_UDP):
        raise ValueError("BAD_L4_CHECKSUM needs a TCP or UDP frame")
    src, dst = spec.src, spec.dst
    if spec.proto == IPPROTO_UDP:
        l4 = udp(spec.payload, sport=spec.sport, dport=spec.dport, version=v, src=src, dst=dst)
        if Defect.BAD_UDP_LENGTH in bad:
            # Longer than what is there (or, for an empty payload, below the header size).
            wrong = len(l4) + 1 + len(spec.payload) % 7 if spec.payload else UDP_HLEN - 1
            l4 = udp(spec.payload, sport=spec.sport, dport=spec.dport, version=v, src=src,
                     dst=dst, length=wrong)
    elif spec.proto == IPPROTO_TCP:
        doff = None
        if Defect.BAD_TCP_DOFF in bad:
            # Past the end of the segment when that is possible, else below the minimum.
            seg_len = TCP_MIN_HLEN + len(spec.tcp_options) + len(spec.payload)
            doff = 15 if seg_len < 60 else 4
        l4 = tcp(spec.payload, sport=spec.sport, dport=spec.dport, flags=spec.tcp_flags,
                 options=spec.tcp_options, version=v, src=src, dst=dst, doff=doff)
    else:
        l4 = spec.payload
    if Defect.BAD_L4_CHECKSUM in bad:
        at = 6 if spec.proto == IPPROTO_UDP else 16
        (good,) = struct.unpack_from("!H", l4, at)
        l4 = l4[:at] + struct.pack("!H", _flip(good)) + l4[at + 2:]
    if v == 4:
        hlen = IPV4_MIN_HLEN + len(spec.ip_options)
        ihl = None
        if Defect.BAD_IHL in bad:
            # More header words than the packet holds when possible, else below 5.
            ihl = 15 if hlen + len(l4) < 60 else 4
        tot = None
        if Defect.BAD_IP_LENGTH in bad:
            tot = hlen + len(l4) + 1 + len(l4) % 5
        l3 = ipv4(l4, src=src, dst=dst, proto=spec.proto, ttl=spec.ttl,
                  options=spec.ip_options, ihl=ihl, total_length=tot)
        if Defect.BAD_IP_CHECKSUM in bad:
            (good,) = struct.unpack_from("!H", l3, 10)
            l3 = l3[:10] + struct.pack("!H", _flip(good)) + l3[12:]
        ethertype = ETH_P_IP
    else:
        plen = len(l4) + 1 + len(l4) % 5 if Defect.BAD_IP_LENGTH in bad else None
        l3 = ipv6(l4, src=src, dst=dst, next_header=spec.proto, hop_limit=spec.ttl,
                  payload_length=plen)
        ethertype = ETH_P_IPV6
    data = ethernet(l3, ethertype=ethertype)
    if Defect.TRUNCATED in bad:
        data = data[: _truncation_point(spec, len(data) - len(l4), len(data))]
    return Frame(data, spec)


def _truncation_point(spec: FrameSpec, l4_start: int, total: int) -> int:
    """Where to cut so that a header is incomplete: inside the L4 header when there
    is one, else inside the IP header."""
    if spec.proto == IPPROTO_UDP:
        lo, hi = l4_start + 1, l4_start + UDP_HLEN - 1
    elif spec.proto == IPPROTO_TCP:
        lo, hi = l4_start + 1, l4_start + TCP_MIN_HLEN - 1
    else:
        lo = ETH_HLEN + 1
        hi = ETH_HLEN + (IPV4_MIN_HLEN if spec.version == 4 else IPV6_HLEN) - 1
    return min(max(spec.truncate_to, lo), hi, total - 1)


@attrs.define
class ParsedFrame:
    """What :func:`parse_frame` found: header fields, and every rule broken."""

    ethertype: int = 0
    version: int = 0
    proto: int = -1
    src: bytes = b""
    dst: bytes = b""
    sport: int = -1
    dport: int = -1
    ttl: int = -1
    payload: bytes = b""
    #: Defects found (the same vocabulary as the builder's).
    defects: set[Defect] = attrs.field(factory=set)


def parse_frame(data: bytes) -> ParsedFrame:
    """Parse a frame as a careful receiver would, noting every defect found."""
    p = ParsedFrame()
    if len(data) < ETH_HLEN:
        p.defects.add(Defect.TRUNCATED)
        return p
    (p.ethertype,) = struct.unpack_from("!H", data, 12)
    ip = data[ETH_HLEN:]
    if p.ethertype == ETH_P_IP:
        p.version = 4
        if len(ip) < IPV4_MIN_HLEN:
            p.defects.add(Defect.TRUNCATED)
            return p
        ihl = (ip[0] & 0xF) * 4
        (tot,) = struct.unpack_from("!H", ip, 2)
        p.ttl, p.proto = ip[8], ip[9]
        p.src, p.dst = ip[12:16], ip[16:20]
        if ihl < IPV4_MIN_HLEN or ihl > len(ip):
            p.defects.add(Defect.BAD_IHL)
            return p
        if not _ones_sum_ok(ip[:ihl]):
            p.defects.add(Defect.BAD_IP_CHECKSUM)
        if tot != len(ip):
            p.defects.add(Defect.BAD_IP_LENGTH)
        l4 = ip[ihl:]
        pseudo_len = len(l4)
    elif p.ethertype == ETH_P_IPV6:
        p.version = 6
        if len(ip) < IPV6_HLEN:
            p.defects.add(Defect.TRUNCATED)
            return p
        (plen,) = struct.unpack_from("!H", ip, 4)
        p.proto, p.ttl = ip[6], ip[7]
        p.src, p.dst = ip[8:24], ip[24:40]
        if plen != len(ip) - IPV6_HLEN:
            p.defects.add(Defect.BAD_IP_LENGTH)
        l4 = ip[IPV6_HLEN:]
        pseudo_len = len(l4)
    else:
        p.payload = ip
        return p
    _parse_l4(p, l4, pseudo_len)
    return p


def _parse_l4(p: ParsedFrame, l4: bytes, pseudo_len: int) -> None:
    if p.proto not in (IPPROTO_TCP, IPPROTO_UDP):
        p.payload = l4
        return
    need = UDP_HLEN if p.proto == IPPROTO_UDP else TCP_MIN_HLEN
    if len(l4) < need:
        p.defects.add(Defect.TRUNCATED)
        return
    p.sport, p.dport = struct.unpack_from("!HH", l4, 0)
    if p.proto == IPPROTO_UDP:
        (ulen,) = struct.unpack_from("!H", l4, 4)
        if ulen != len(l4):
            p.defects.add(Defect.BAD_UDP_LENGTH)
        hlen = UDP_HLEN
    else:
        hlen = (l4[12] >> 4) * 4
        if hlen < TCP_MIN_HLEN or hlen > len(l4):
            p.defects.add(Defect.BAD_TCP_DOFF)
            return
    pseudo = _pseudo(p.version, p.src, p.dst, p.proto, pseudo_len)
    if not _ones_sum_ok(pseudo + l4):
        p.defects.add(Defect.BAD_L4_CHECKSUM)
    p.payload = l4[hlen:]
