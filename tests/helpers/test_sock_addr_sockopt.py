"""bpf_setsockopt / bpf_getsockopt in sock_addr programs
(bpf_sock_addr_{set,get}sockopt): they act on the socket the hook runs for,
the ``sk`` a Cgroup.run was given."""

from __future__ import annotations

import errno

import pytest

from pyebpf import ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgAttachAttr
from pyebpf.errors import BpfFault
from pyebpf.helpers import func_proto
from pyebpf.helpers.sockopt import SOL_SOCKET, SOL_TCP
from pyebpf.links import cgroup_root
from pyebpf.links.inet import InetSocket
from pyebpf.objects import Program
from pyebpf.uapi import AttachType, Cmd

A = AttachType
SO_MARK, SO_SNDBUF, TCP_NODELAY = 36, 7, 1
#: Every sock_addr attach type of 6.18 (sock_addr_func_proto offers both to all).
SOCK_ADDR_ATTACH_TYPES = (
    A.CGROUP_INET4_BIND, A.CGROUP_INET6_BIND, A.CGROUP_INET4_CONNECT, A.CGROUP_INET6_CONNECT,
    A.CGROUP_UDP4_SENDMSG, A.CGROUP_UDP6_SENDMSG, A.CGROUP_UDP4_RECVMSG,
    A.CGROUP_UDP6_RECVMSG, A.CGROUP_INET4_GETPEERNAME, A.CGROUP_INET6_GETPEERNAME,
    A.CGROUP_INET4_GETSOCKNAME, A.CGROUP_INET6_GETSOCKNAME, A.CGROUP_UNIX_CONNECT,
    A.CGROUP_UNIX_SENDMSG, A.CGROUP_UNIX_RECVMSG, A.CGROUP_UNIX_GETPEERNAME,
    A.CGROUP_UNIX_GETSOCKNAME)


def _connect4(rt: Runtime, sock: InetSocket | None, level: int, optname: int,
              value: int) -> tuple[int, int]:
    """A connect4 program does setsockopt(level, optname, value), then getsockopt
    of it; (the set's return, the value read back) as ctx->user_ip4/user_port."""
    src = f"""mov %r6, %r1
stw [%r10-8], {value}
mov %r1, %r6
mov %r2, {level}
mov %r3, {optname}
mov %r4, %r10
add %r4, -8
mov %r5, 4
call 49
stxw [%r6+4], %r0
stw [%r10-8], 0
mov %r1, %r6
mov %r2, {level}
mov %r3, {optname}
mov %r4, %r10
add %r4, -8
mov %r5, 4
call 57
ldxw %r2, [%r10-8]
stxw [%r6+24], %r2
mov %r0, 1
exit"""
    prog = Program.load(ProgType.CGROUP_SOCK_ADDR, asm(src), runtime=rt,
                        expected_attach_type=A.CGROUP_INET4_CONNECT)
    cg = cgroup_root(rt)
    bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg.open(), attach_bpf_fd=prog.fd,
                                        attach_type=A.CGROUP_INET4_CONNECT), runtime=rt)
    fields = {} if sock is None else {"sk": sock.sk_addr, "protocol": sock.sock.protocol}
    got = cg.run(A.CGROUP_INET4_CONNECT, user_family=2, **fields)
    return got.ctx["user_ip4"], got.ctx["user_port"]


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_setsockopt_sets_the_hooks_socket_option(proto: str) -> None:
    rt = Runtime()
    sock = InetSocket(rt, proto)
    assert _connect4(rt, sock, SOL_SOCKET, SO_MARK, 0x42) == (0, 0x42)
    assert sock.sock.sockopts[(SOL_SOCKET, SO_MARK)] == 0x42


def test_sndbuf_is_doubled_as_on_any_socket() -> None:
    rt = Runtime()
    sock = InetSocket(rt, "udp")
    assert _connect4(rt, sock, SOL_SOCKET, SO_SNDBUF, 10_000) == (0, 20_000)


def test_sol_tcp_on_a_udp_socket_is_einval() -> None:
    rt = Runtime()
    ret, _ = _connect4(rt, InetSocket(rt, "udp"), SOL_TCP, TCP_NODELAY, 1)
    assert ret == -errno.EINVAL & 0xFFFF_FFFF


def test_sol_tcp_on_a_tcp_socket_is_set() -> None:
    rt = Runtime()
    sock = InetSocket(rt, "tcp")
    assert _connect4(rt, sock, SOL_TCP, TCP_NODELAY, 5) == (0, 1)


def test_a_run_without_a_socket_faults() -> None:
    with pytest.raises(BpfFault, match="no socket behind its sk"):
        _connect4(Runtime(), None, SOL_SOCKET, SO_MARK, 1)


@pytest.mark.parametrize("func_id", [49, 57])
@pytest.mark.parametrize("eat", SOCK_ADDR_ATTACH_TYPES, ids=lambda t: t.name)
def test_offered_to_every_sock_addr_attach_type(func_id: int, eat: AttachType) -> None:
    assert func_proto(func_id, ProgType.CGROUP_SOCK_ADDR, expected_attach_type=eat) is not None
