"""bpf_setsockopt / bpf_getsockopt in sock_addr programs on the 6.18 kernel and
on pyebpf: which attach types are offered them, and what they do to the socket
of a real connect() (a TCP and a UDP socket over loopback, through a
cgroup/connect4 program) against pyebpf's hook run for an InetSocket."""

from __future__ import annotations

import os
import socket

import pytest

from helpers._build import (
    JEQ,
    Asm,
    Insn,
    KernelBackend,
    PyBackend,
    call,
    exit_,
    ld_map_fd,
    ldx,
    mov,
    movr,
    st,
    stx,
)
from pyebpf import BpfError, MapType
from pyebpf.attr import ProgAttachAttr
from pyebpf.progs.sock import BPF_SOCK_ADDR
from pyebpf.uapi import AttachType, Cmd, ProgType

from .harness import STEPS, kernel_cgroup_run

pytestmark = pytest.mark.kernel

A = AttachType
SOL_SOCKET, SOL_TCP = 1, 6
SO_MARK, SO_SNDBUF, TCP_NODELAY = 36, 7, 1
BPF_OR, BPF_AND, BPF_LSH, BPF_NEG = 0x40, 0x50, 0x60, 0x80
SLOTS = 8
SOCK_ADDR_ATTACH_TYPES = (
    A.CGROUP_INET4_BIND, A.CGROUP_INET6_BIND, A.CGROUP_INET4_CONNECT, A.CGROUP_INET6_CONNECT,
    A.CGROUP_UDP4_SENDMSG, A.CGROUP_UDP6_SENDMSG, A.CGROUP_UDP4_RECVMSG,
    A.CGROUP_UDP6_RECVMSG, A.CGROUP_INET4_GETPEERNAME, A.CGROUP_INET6_GETPEERNAME,
    A.CGROUP_INET4_GETSOCKNAME, A.CGROUP_INET6_GETSOCKNAME, A.CGROUP_UNIX_CONNECT,
    A.CGROUP_UNIX_SENDMSG, A.CGROUP_UNIX_RECVMSG, A.CGROUP_UNIX_GETPEERNAME,
    A.CGROUP_UNIX_GETSOCKNAME)


def _alu(op: int, dst: int, imm: int) -> Insn:
    return Insn(0x07 | op, dst, 0, 0, imm)


def _loads(b: PyBackend | KernelBackend, insns: list[Insn], eat: int) -> str:
    try:
        fd = b.load(insns, ProgType.CGROUP_SOCK_ADDR, expected_attach_type=eat)
    except BpfError as e:
        return f"{e.errno}"
    b.close_fd(fd)
    return "ok"


@pytest.mark.parametrize("func_id", [49, 57])
@pytest.mark.parametrize("eat", SOCK_ADDR_ATTACH_TYPES, ids=lambda t: t.name)
def test_sockopt_helpers_offered_per_attach_type(func_id: int, eat: int) -> None:
    # bind hooks return 0..3, the rest 0..1: return 1
    insns = [st(4, 10, -8, 1), mov(2, SOL_SOCKET), mov(3, SO_MARK), movr(4, 10),
             _alu(0, 4, -8), mov(5, 4), call(func_id), mov(0, 1), exit_()]
    py, k = PyBackend(), KernelBackend()
    try:
        ours, theirs = _loads(py, insns, eat), _loads(k, insns, eat)
    finally:
        py.close()
        k.close()
    STEPS[0] += 1
    assert ours == theirs == "ok"


def _set(level: int, optname: int, value: int) -> list[Insn]:
    """r0 = bpf_setsockopt(ctx=r6, level, optname, &value, 4)."""
    return [st(4, 10, -16, value), movr(1, 6), mov(2, level), mov(3, optname), movr(4, 10),
            _alu(0, 4, -16), mov(5, 4), call(49)]


def _get(level: int, optname: int) -> list[Insn]:
    """r0 = the 4 bytes bpf_getsockopt(ctx=r6, level, optname, buf, 4) left."""
    return [st(4, 10, -16, 0), movr(1, 6), mov(2, level), mov(3, optname), movr(4, 10),
            _alu(0, 4, -16), mov(5, 4), call(57), ldx(4, 0, 10, -16)]


def connect4_prog(log: int) -> list[Insn]:
    """log[0] counts the calls; log[n] = -setsockopt(SO_MARK, 0x42) | -setsockopt(
    SOL_TCP, TCP_NODELAY, 1)<<8 | getsockopt(SO_MARK)<<16 | ctx->protocol<<24 |
    getsockopt(SO_SNDBUF) after setsockopt(SO_SNDBUF, 10000)<<32."""
    p = Asm()
    p(movr(6, 1), st(4, 10, -4, 0), *ld_map_fd(1, log), movr(2, 10), _alu(0, 2, -4), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(ldx(8, 7, 0, 0), movr(8, 7), _alu(0, 8, 1), stx(8, 0, 8, 0), _alu(0, 7, 1))
    p(stx(4, 10, 7, -8), *ld_map_fd(1, log), movr(2, 10), _alu(0, 2, -8), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(movr(9, 0), ldx(4, 8, 6, BPF_SOCK_ADDR["protocol"].offset), _alu(BPF_LSH, 8, 24))
    p(*_set(SOL_SOCKET, SO_MARK, 0x42), Insn(0x87, 0), _alu(BPF_AND, 0, 0xFF),
      Insn(0x4F, 8, 0))
    p(*_set(SOL_TCP, TCP_NODELAY, 1), Insn(0x87, 0), _alu(BPF_AND, 0, 0xFF),
      _alu(BPF_LSH, 0, 8), Insn(0x4F, 8, 0))
    p(*_get(SOL_SOCKET, SO_MARK), _alu(BPF_AND, 0, 0xFF), _alu(BPF_LSH, 0, 16),
      Insn(0x4F, 8, 0))
    p(*_set(SOL_SOCKET, SO_SNDBUF, 10_000), *_get(SOL_SOCKET, SO_SNDBUF),
      _alu(BPF_LSH, 0, 32), Insn(0x4F, 8, 0))
    p(stx(8, 9, 8, 0))
    p.label("out")(mov(0, 1), exit_())
    return p.build()


def _records(lookup: object) -> list[int]:
    vals = [int.from_bytes(lookup(i.to_bytes(4, "little")), "little")  # type: ignore[operator]
            for i in range(SLOTS)]
    return vals[1:vals[0] + 1]


def _kernel_log() -> tuple[list[int], list[int]]:
    """The log of a TCP and a UDP connect() from a child of a fresh cgroup, and the
    marks the two sockets ended with."""
    rd, wr = os.pipe()

    def connect_both() -> None:
        marks = []
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.connect(srv.getsockname())
                    marks.append(s.getsockopt(socket.SOL_SOCKET, SO_MARK))
        os.write(wr, bytes(marks))

    k = KernelBackend()
    try:
        log = k.map_create(MapType.ARRAY, 4, 8, SLOTS)
        prog = k.load(connect4_prog(log), ProgType.CGROUP_SOCK_ADDR,
                      expected_attach_type=A.CGROUP_INET4_CONNECT)
        kernel_cgroup_run("sa_sockopt", prog, A.CGROUP_INET4_CONNECT, connect_both)
        marks = list(os.read(rd, 16))
        return _records(lambda key: k.lookup(log, key, 8)), marks
    finally:
        os.close(rd)
        os.close(wr)
        k.close()


def _pyebpf_log() -> tuple[list[int], list[int]]:
    """The same program run by pyebpf's connect4 hook for a TCP and a UDP InetSocket."""
    from pyebpf.links import cgroup_root
    from pyebpf.links.inet import InetSocket

    py = PyBackend()
    try:
        log = py.map_create(MapType.ARRAY, 4, 8, SLOTS)
        prog = py.load(connect4_prog(log), ProgType.CGROUP_SOCK_ADDR,
                       expected_attach_type=A.CGROUP_INET4_CONNECT)
        cg = cgroup_root(py.rt)
        py.b(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg.open(), attach_bpf_fd=prog,
                                             attach_type=A.CGROUP_INET4_CONNECT))
        marks = []
        for proto in ("tcp", "udp"):
            s = InetSocket(py.rt, proto)
            s.bind("127.0.0.1")
            cg.run(A.CGROUP_INET4_CONNECT, sk=s.sk_addr, user_family=2, family=2,
                   type=s.sock.type, protocol=s.sock.protocol)
            marks.append(int(s.sock.sockopts.get((SOL_SOCKET, SO_MARK), 0)))
        return _records(lambda key: py.lookup(log, key, 8)), marks
    finally:
        py.close()


def test_sockopts_of_a_connect4_hook_are_the_kernels() -> None:
    kernel = _kernel_log()
    ours = _pyebpf_log()
    STEPS[0] += 1
    assert ([hex(v) for v in ours[0]], ours[1]) == ([hex(v) for v in kernel[0]], kernel[1])
    assert kernel[1] == [0x42, 0x42]  # the options stayed on the sockets
