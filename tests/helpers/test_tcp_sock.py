"""bpf_tcp_sock (96) in sock_ops and cgroup sockopt programs: a full TCP socket
as a struct bpf_tcp_sock read live from the socket, NULL for any other."""

from __future__ import annotations

import errno

import pytest

from pyebpf import BpfError, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgAttachAttr
from pyebpf.links import cgroup_root
from pyebpf.links.inet import InetSocket
from pyebpf.objects import Program
from pyebpf.progs.cgroup import BPF_SOCKOPT
from pyebpf.progs.sock import BPF_SOCK_OPS
from pyebpf.progs.sock_ops import BPF_TCP_SOCK, TcpSock, run_sock_ops
from pyebpf.uapi import AttachType, Cmd

ACTIVE_ESTABLISHED_CB = 4
RWND_INIT = 2
TCP_NEW_SYN_RECV = 12
SK, REPLY = BPF_SOCK_OPS["sk"].offset, BPF_SOCK_OPS["reply"].offset


def _sock_ops(body: str, sk: TcpSock, op: int = ACTIVE_ESTABLISHED_CB) -> int:
    """Run ``body`` with r0 = bpf_tcp_sock(skops->sk) (r6 the ctx; skops->sk NULL
    goes to ``out``); the reply it leaves."""
    rt = Runtime()
    src = f"""mov %r6, %r1
mov %r7, 0
stxw [%r6+{REPLY}], %r7
ldxdw %r1, [%r6+{SK}]
jeq %r1, 0, out
call 96
{body}
out:
mov %r0, 1
exit"""
    prog = Program.load(ProgType.SOCK_OPS, asm(src), runtime=rt)
    rc, kern = run_sock_ops(rt, rt.file(prog.fd).obj, op, sk)
    assert rc == 1
    return kern.reply


@pytest.mark.parametrize("field", ["snd_cwnd", "srtt_us", "mss_cache", "snd_nxt",
                                   "bytes_acked", "icsk_retransmits"])
def test_tcp_sock_fields_are_the_sockets(field: str) -> None:
    f = BPF_TCP_SOCK[field]
    sk = TcpSock(snd_cwnd=33, srtt_us=800, mss_cache=1448)
    # the fields a model socket doesn't keep read as 0
    expected = {"snd_cwnd": 33, "srtt_us": 800, "mss_cache": 1448}.get(field, 0)
    load = "ldxdw" if f.size == 8 else "ldxw"
    reply = _sock_ops(f"jeq %r0, 0, out\n{load} %r2, [%r0+{f.offset}]\n"
                      f"stxw [%r6+{REPLY}], %r2", sk)
    assert reply == expected


def test_tcp_sock_is_null_for_a_socket_that_is_not_tcp() -> None:
    sk = TcpSock(protocol=17, type=2)  # a UDP socket's fields
    assert _sock_ops(f"mov %r2, 1\njeq %r0, 0, null\nmov %r2, 2\nnull:\n"
                     f"stxw [%r6+{REPLY}], %r2", sk) == 1


def test_request_sock_callbacks_have_no_sk() -> None:
    # tcp_call_bpf on a request sock: is_fullsock 0, so skops->sk reads NULL
    # and bpf_tcp_sock is never reached.
    sk = TcpSock(state=TCP_NEW_SYN_RECV)
    src = f"""ldxw %r2, [%r1+{BPF_SOCK_OPS['is_fullsock'].offset}]
ldxdw %r3, [%r1+{SK}]
jeq %r3, 0, nosk
add %r2, 2
nosk:
stxw [%r1+{REPLY}], %r2
mov %r0, 1
exit"""
    rt = Runtime()
    prog = Program.load(ProgType.SOCK_OPS, asm(src), runtime=rt)
    _, kern = run_sock_ops(rt, rt.file(prog.fd).obj, RWND_INIT, sk)
    assert kern.reply == 0


def test_tcp_sock_of_a_tcp_sock_is_the_same_view() -> None:
    body = f"""jeq %r0, 0, out
mov %r8, %r0
mov %r1, %r0
call 96
mov %r2, 1
jne %r0, %r8, differ
mov %r2, 2
differ:
stxw [%r6+{REPLY}], %r2"""
    assert _sock_ops(body, TcpSock()) == 2


def test_tcp_sock_reads_follow_the_socket() -> None:
    # a load reads the socket as it is then: bpf_setsockopt(TCP_BPF_SNDCWND_CLAMP)
    # doesn't move snd_cwnd, but the model's fields are read at each load
    sk = TcpSock(snd_cwnd=7)
    body = f"""jeq %r0, 0, out
ldxw %r2, [%r0+0]
stxw [%r6+{REPLY}], %r2"""
    assert _sock_ops(body, sk) == 7
    sk.snd_cwnd = 12
    assert _sock_ops(body, sk) == 12


def test_skc_to_tcp_sock_of_a_tcp_sock_view_finds_the_socket() -> None:
    body = f"""jeq %r0, 0, out
mov %r1, %r0
call 137
mov %r2, 1
jeq %r0, 0, null
mov %r2, 2
null:
stxw [%r6+{REPLY}], %r2"""
    assert _sock_ops(body, TcpSock()) == 2


@pytest.mark.parametrize(("off", "size"), [(0, 1), (2, 2), (80, 4), (112, 4), (4, 8)])
def test_narrow_or_out_of_struct_tcp_sock_loads_are_eacces(off: int, size: int) -> None:
    op = {1: "ldxb", 2: "ldxh", 4: "ldxw", 8: "ldxdw"}[size]
    src = f"""ldxdw %r1, [%r1+{SK}]
jeq %r1, 0, out
call 96
jeq %r0, 0, out
{op} %r2, [%r0+{off}]
out:
mov %r0, 1
exit"""
    with pytest.raises(BpfError) as info:
        Program.load(ProgType.SOCK_OPS, asm(src), runtime=Runtime())
    assert info.value.errno == errno.EACCES
    assert f"invalid tcp_sock access off={off} size={size}" in str(info.value)


def _sockopt_optlen(proto: str) -> int:
    """A getsockopt program sets optlen = bpf_tcp_sock(ctx->sk)->snd_cwnd (or 1000
    when NULL), run on an InetSocket of ``proto``."""
    rt = Runtime()
    optlen = BPF_SOCKOPT["optlen"].offset
    src = f"""mov %r6, %r1
ldxdw %r1, [%r6+0]
call 96
mov %r2, 1000
jeq %r0, 0, store
ldxw %r2, [%r0+0]
store:
stxw [%r6+{optlen}], %r2
mov %r0, 1
exit"""
    prog = Program.load(ProgType.CGROUP_SOCKOPT, asm(src), runtime=rt,
                        expected_attach_type=AttachType.CGROUP_GETSOCKOPT)
    cg = cgroup_root(rt)
    bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg.open(), attach_bpf_fd=prog.fd,
                                        attach_type=AttachType.CGROUP_GETSOCKOPT), runtime=rt)
    sock = InetSocket(rt, proto)
    if proto == "tcp":
        sock.sock.snd_cwnd = 21
    verdict = cg.run(AttachType.CGROUP_GETSOCKOPT, sk=sock.sk_addr)
    return int(verdict.ctx["optlen"])


def test_sockopt_tcp_sock_of_a_tcp_socket() -> None:
    assert _sockopt_optlen("tcp") == 21


def test_sockopt_tcp_sock_of_a_udp_socket_is_null() -> None:
    assert _sockopt_optlen("udp") == 1000


def test_request_sock_callbacks_read_tcp_fields_as_zero() -> None:
    # SOCK_OPS_GET_FIELD: the tcp_sock fields of the ctx need a full socket;
    # the sock_common ones (state) don't
    sk = TcpSock(state=TCP_NEW_SYN_RECV, snd_cwnd=10)
    src = f"""ldxw %r2, [%r1+{BPF_SOCK_OPS['snd_cwnd'].offset}]
ldxw %r3, [%r1+{BPF_SOCK_OPS['state'].offset}]
lsh %r3, 8
or %r2, %r3
stxw [%r1+{REPLY}], %r2
mov %r0, 1
exit"""
    rt = Runtime()
    prog = Program.load(ProgType.SOCK_OPS, asm(src), runtime=rt)
    _, kern = run_sock_ops(rt, rt.file(prog.fd).obj, RWND_INIT, sk)
    assert kern.reply == TCP_NEW_SYN_RECV << 8


@pytest.mark.parametrize("off", [84, 92])
def test_u32_load_of_a_u64_fields_upper_half_fails_ctx_conversion(off: int) -> None:
    # bpf_tcp_sock_is_valid_access allows it, bpf_tcp_sock_convert_ctx_access
    # has no rewrite: convert_ctx_accesses fails the load (EFAULT)
    src = f"""ldxdw %r1, [%r1+{SK}]
jeq %r1, 0, out
call 96
jeq %r0, 0, out
ldxw %r2, [%r0+{off}]
out:
mov %r0, 1
exit"""
    with pytest.raises(BpfError) as info:
        Program.load(ProgType.SOCK_OPS, asm(src), runtime=Runtime())
    assert info.value.errno == errno.EFAULT
    assert "error during ctx access conversion" in str(info.value)
