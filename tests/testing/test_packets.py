"""pyebpf.testing.packets: frames built to order, and read back."""

from __future__ import annotations

import struct

import pytest

from pyebpf.testing.packets import (
    ETH_HLEN,
    ETH_P_IP,
    ETH_P_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Defect,
    FrameSpec,
    build_frame,
    ethernet,
    inet_checksum,
    ipv4,
    ipv6,
    parse_frame,
    tcp,
    udp,
)

V6_SRC, V6_DST = bytes(15) + b"\x01", bytes(15) + b"\x02"


def test_inet_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2, its complement 220d.
    assert inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_ipv4_header_checksum_of_a_known_header() -> None:
    # The classic example header (Wikipedia "IPv4 header checksum"): checksum b861.
    hdr = ipv4(b"", src="192.168.0.1", dst="192.168.0.199", proto=IPPROTO_UDP, ttl=64,
               ident=0, total_length=0x73)
    assert struct.unpack_from("!H", hdr, 10)[0] == 0xB861


def test_udp_checksum_covers_the_ipv4_pseudo_header() -> None:
    seg = udp(b"abc", sport=1, dport=2, src="10.0.0.1", dst="10.0.0.2")
    pseudo = bytes([10, 0, 0, 1, 10, 0, 0, 2, 0, IPPROTO_UDP]) + struct.pack("!H", len(seg))
    assert inet_checksum(pseudo + seg) == 0


def test_tcp_checksum_covers_the_ipv6_pseudo_header() -> None:
    seg = tcp(b"data", version=6, src=V6_SRC, dst=V6_DST)
    pseudo = V6_SRC + V6_DST + struct.pack("!I3xB", len(seg), IPPROTO_TCP)
    assert inet_checksum(pseudo + seg) == 0


def test_ethernet_frame_layout() -> None:
    frame = ethernet(b"xyz", ethertype=ETH_P_IPV6, dst=b"\xff" * 6, src=b"\x02" * 6)
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == b"\x02" * 6
    assert frame[12:14] == b"\x86\xdd" and frame[14:] == b"xyz"


def test_ipv6_payload_length_and_next_header() -> None:
    hdr = ipv6(b"1234", next_header=IPPROTO_TCP, hop_limit=7)
    assert hdr[0] >> 4 == 6
    assert struct.unpack_from("!H", hdr, 4)[0] == 4 and hdr[6] == IPPROTO_TCP and hdr[7] == 7


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("proto", [IPPROTO_TCP, IPPROTO_UDP, 47])
def test_well_formed_frames_parse_back_without_defects(version: int, proto: int) -> None:
    src, dst = (b"\x0a\0\0\x01", b"\x0a\0\0\x02") if version == 4 else (V6_SRC, V6_DST)
    spec = FrameSpec(version=version, proto=proto, src=src, dst=dst, sport=7, dport=9,
                     payload=b"hello", ttl=33)
    parsed = parse_frame(build_frame(spec).data)
    assert parsed.defects == set()
    assert (parsed.ethertype, parsed.version) == ((ETH_P_IP, 4) if version == 4
                                                 else (ETH_P_IPV6, 6))
    assert (parsed.proto, parsed.src, parsed.dst, parsed.ttl) == (proto, src, dst, 33)
    assert parsed.payload == b"hello"
    if proto != 47:
        assert (parsed.sport, parsed.dport) == (7, 9)


@pytest.mark.parametrize("defect", list(Defect))
@pytest.mark.parametrize("version", [4, 6])
def test_each_defect_is_found_by_the_parser(defect: Defect, version: int) -> None:
    proto = IPPROTO_TCP if defect is Defect.BAD_TCP_DOFF else IPPROTO_UDP
    if version == 6 and defect in (Defect.BAD_IP_CHECKSUM, Defect.BAD_IHL):
        with pytest.raises(ValueError, match="IPv6 has no"):
            build_frame(FrameSpec(version=6, proto=proto, defects=frozenset({defect})))
        return
    src, dst = (b"\x0a\0\0\x01", b"\x0a\0\0\x02") if version == 4 else (V6_SRC, V6_DST)
    frame = build_frame(FrameSpec(version=version, proto=proto, src=src, dst=dst,
                                  payload=b"some payload", defects=frozenset({defect})))
    assert defect in parse_frame(frame.data).defects


def test_truncated_non_ip_frame_is_shorter_than_an_ethernet_header() -> None:
    frame = build_frame(FrameSpec(version=0, payload=b"abc", truncate_to=200,
                                  defects=frozenset({Defect.TRUNCATED})))
    assert len(frame.data) < ETH_HLEN
    assert parse_frame(frame.data).defects == {Defect.TRUNCATED}


def test_defect_that_does_not_fit_the_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="BAD_TCP_DOFF needs a TCP frame"):
        build_frame(FrameSpec(proto=IPPROTO_UDP, defects=frozenset({Defect.BAD_TCP_DOFF})))
