"""SOCK_OPS programs run with run_sock_ops: socket options, callbacks, reply."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import ProgType, Runtime, asm
from pyebpf.helpers.sockopt import SOL_SOCKET, SOL_TCP
from pyebpf.objects import Program
from pyebpf.progs.sock_ops import TcpSock, run_sock_ops

ACTIVE_ESTABLISHED_CB = 4
#: An op called without the socket lock (BPF_SOCK_OPS_TSTAMP_SENDMSG_CB and later).
UNLOCKED_OP = 16


def setsockopt_prog(level: int, optname: int, value: bytes) -> str:
    """reply = bpf_setsockopt(ctx, level, optname, &value, len(value)).

    A sock_ops program returns 0 or 1; results travel in ``reply``."""
    words = [int.from_bytes(value[i:i + 8].ljust(8, b"\0"), "little")
             for i in range(0, len(value), 8)]
    stores = "\n".join(f"lddw %r2, {w}\nstxdw [%r10-{8 * (len(words) - i)}], %r2"
                       for i, w in enumerate(words))
    return f"""mov %r6, %r1
{stores}
mov %r4, %r10
add %r4, -{8 * len(words)}
mov %r2, {level}
mov %r3, {optname}
mov %r5, {len(value)}
call 49
stxw [%r6+4], %r0
mov %r0, 1
exit"""


def run(source: str, op: int = ACTIVE_ESTABLISHED_CB, sk: TcpSock | None = None
        ) -> tuple[int, TcpSock]:
    """Run a program that leaves its result in ``reply``: (reply, the socket)."""
    rt = Runtime()
    prog = Program.load(ProgType.SOCK_OPS, asm(source), runtime=rt)
    retval, kern = run_sock_ops(rt, rt.file(prog.fd).obj, op, sk)
    assert retval == 1
    return kern.reply, kern.sock


def s32(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


@pytest.mark.parametrize(("level", "optname", "value", "stored"), [
    (SOL_TCP, 1, 5, 1),                 # TCP_NODELAY reads back as a bool
    (SOL_TCP, 4, 60, 60),               # TCP_KEEPIDLE
    (SOL_SOCKET, 7, 10_000, 20_000),    # SO_SNDBUF is doubled
    (SOL_SOCKET, 7, 1 << 30, 425_984),  # ... after clamping to wmem_max
    (SOL_SOCKET, 36, 0x42, 0x42),       # SO_MARK
])
def test_setsockopt_stores_the_option(level: int, optname: int, value: int,
                                      stored: int) -> None:
    rc, sk = run(setsockopt_prog(level, optname, struct.pack("<i", value)))
    assert rc == 0 and sk.sockopts[(level, optname)] == stored


@pytest.mark.parametrize(("level", "optname", "value"), [
    (SOL_TCP, 4, 0),          # TCP_KEEPIDLE below 1
    (SOL_TCP, 6, 128),        # TCP_KEEPCNT above 127
    (SOL_TCP, 2, 50),         # TCP_MAXSEG below TCP_MIN_MSS
    (SOL_SOCKET, 99, 1),      # not an option BPF may set
    (7, 1, 1),                # not a level BPF may use
])
def test_setsockopt_rejects_with_einval(level: int, optname: int, value: int) -> None:
    rc, sk = run(setsockopt_prog(level, optname, struct.pack("<i", value)))
    assert s32(rc) == -errno.EINVAL and not sk.sockopts


def test_setsockopt_outside_a_locked_callback_is_eopnotsupp() -> None:
    rc, _ = run(setsockopt_prog(SOL_TCP, 1, struct.pack("<i", 1)), op=UNLOCKED_OP)
    assert s32(rc) == -errno.EOPNOTSUPP


def test_tcp_congestion_set_and_get() -> None:
    rc, sk = run(setsockopt_prog(SOL_TCP, 13, b"reno\0\0\0\0"))
    assert rc == 0 and sk.sockopts[(SOL_TCP, 13)] == b"reno"
    rc, _ = run(setsockopt_prog(SOL_TCP, 13, b"bbr9\0\0\0\0"))
    assert s32(rc) == -errno.ENOENT
    rc, _ = run(setsockopt_prog(SOL_TCP, 13, b"cdg\0\0\0\0\0"))
    assert s32(rc) == -524


def test_getsockopt_reads_back_and_zeroes_on_error() -> None:
    get = """
mov %r1, %r6
mov %r2, 6
mov %r3, {opt}
mov %r4, %r10
add %r4, -8
mov %r5, 4
call 57
jne %r0, 0, +4
ldxw %r0, [%r10-8]
stxw [%r6+4], %r0
mov %r0, 1
exit
add %r0, 0x1000
stxw [%r6+4], %r0
mov %r0, 1
exit"""
    prefix = "mov %r6, %r1\nlddw %r2, 0x5a5a5a5a5a5a5a5a\nstxdw [%r10-8], %r2\n"
    sk = TcpSock()
    sk.sockopts[(SOL_TCP, 4)] = 60
    assert run(prefix + get.format(opt=4), sk=sk)[0] == 60
    assert run(prefix + get.format(opt=5))[0] == 75            # TCP_KEEPINTVL's default
    assert s32(run(prefix + get.format(opt=1001))[0]) == 0x1000 - errno.EINVAL


def test_sock_ops_cb_flags_set_returns_unknown_flags() -> None:
    rc, sk = run("mov %r6, %r1\nmov %r2, 0x85\ncall 59\nstxw [%r6+4], %r0\nmov %r0, 1\nexit")
    assert rc == 0x80 and sk.bpf_sock_ops_cb_flags == 0x05


def test_ctx_reply_and_socket_fields() -> None:
    src = """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+68]
add %r2, %r3
stxw [%r1+4], %r2
mov %r0, 1
exit"""
    rt = Runtime()
    prog = Program.load(ProgType.SOCK_OPS, asm(src), runtime=rt)
    sk = TcpSock(num=8080)
    rc, kern = run_sock_ops(rt, rt.file(prog.fd).obj, ACTIVE_ESTABLISHED_CB, sk)
    assert rc == 1 and kern.reply == ACTIVE_ESTABLISHED_CB + 8080
