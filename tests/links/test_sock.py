"""Socket filters (SO_ATTACH_BPF): the return value is the number of bytes kept."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf.errors import BpfError
from pyebpf.links import Socket
from pyebpf.runtime import ObjKind, Runtime
from pyebpf.uapi import ProgType

FRAME = bytes(12) + b"\x08\x00" + b"\x45" + bytes(19) + bytes(range(26))


def _err(fn: Any) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return exc.value.errno


@pytest.fixture
def filt(load: Any) -> Any:
    return lambda text: load(ProgType.SOCKET_FILTER, text)


def test_without_a_filter_everything_is_received(rt: Runtime) -> None:
    assert Socket(rt).receive(FRAME) == FRAME


def test_filter_returning_zero_drops(rt: Runtime, filt: Any) -> None:
    sock = Socket(rt)
    sock.attach_bpf(filt("mov %r0, 0\nexit"))
    assert sock.receive(FRAME) is None and sock.queue == []


def test_filter_return_value_truncates_the_packet(rt: Runtime, filt: Any) -> None:
    sock = Socket(rt)
    sock.attach_bpf(filt("mov %r0, 20\nexit"))
    assert sock.receive(FRAME) == FRAME[:20]


def test_filter_returning_more_than_the_length_keeps_it_whole(rt: Runtime, filt: Any) -> None:
    sock = Socket(rt)
    sock.attach_bpf(filt("mov %r0, -1\nexit"))
    assert sock.receive(FRAME) == FRAME


def test_packet_socket_filter_sees_the_ethernet_header(rt: Runtime, filt: Any) -> None:
    sock = Socket(rt, "packet")
    # skb->len (offset 0) as the verdict: the whole frame, Ethernet header included
    sock.attach_bpf(filt("ldxw %r0, [%r1+0]\nexit"))
    assert sock.receive(FRAME) == FRAME


def test_inet_socket_filter_sees_the_ip_header_and_keeps_at_least_cap(
        rt: Runtime, filt: Any) -> None:
    sock = Socket(rt, "inet")
    sock.attach_bpf(filt("ldxw %r0, [%r1+0]\nexit"))
    assert sock.receive(FRAME) == FRAME[14:]
    sock.attach_bpf(filt("mov %r6, %r1\nldabsb 0\nexit"))  # the first byte from the IP header: 0x45
    assert sock.receive(FRAME) == FRAME[14:14 + 0x45]


def test_attach_bpf_takes_socket_filter_programs_only(rt: Runtime, load: Any) -> None:
    sock = Socket(rt)
    assert _err(lambda: sock.attach_bpf(load(ProgType.XDP, "mov %r0, 2\nexit"))) \
        == errno.EINVAL
    assert _err(lambda: sock.attach_bpf(999)) == errno.EBADF


def test_detach_without_a_filter_is_enoent(rt: Runtime, filt: Any) -> None:
    sock = Socket(rt)
    assert _err(sock.detach_filter) == errno.ENOENT
    sock.attach_bpf(filt("mov %r0, 0\nexit"))
    sock.detach_filter()
    assert sock.receive(FRAME) == FRAME


def test_locked_filter_cant_be_changed(rt: Runtime, filt: Any) -> None:
    sock = Socket(rt)
    sock.attach_bpf(filt("mov %r0, 0\nexit"))
    sock.lock_filter()
    assert _err(lambda: sock.attach_bpf(filt("mov %r0, 1\nexit"))) == errno.EPERM
    assert _err(sock.detach_filter) == errno.EPERM


def test_socket_holds_its_filter_until_closed(rt: Runtime, filt: Any) -> None:
    sock = Socket(rt)
    fd = filt("mov %r0, 0\nexit")
    pid = rt.fds[fd].obj.id
    sock.attach_bpf(fd)
    rt.close(fd)
    assert sock.receive(FRAME) is None
    sock.close()
    assert pid not in rt.objects(ObjKind.PROG)
