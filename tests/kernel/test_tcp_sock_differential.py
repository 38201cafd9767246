"""bpf_tcp_sock in sock_ops programs on a loopback TCP connect, on the 6.18
kernel and on pyebpf's InetSocket pair: for each callback, whether skops->sk
is there, whether bpf_tcp_sock finds a TCP socket behind it, whether its
fields are the ones the ctx shows, what snd_cwnd is, and whether a second
bpf_tcp_sock of the tcp_sock gives it back."""

from __future__ import annotations

import socket

import pytest

from helpers._build import (
    JEQ,
    JNE,
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
from pyebpf import MapType
from pyebpf.attr import ProgAttachAttr
from pyebpf.progs.sock import BPF_SOCK_OPS
from pyebpf.progs.sock_ops import BPF_TCP_SOCK
from pyebpf.uapi import AttachType, Cmd, ProgType

from .harness import STEPS, kernel_cgroup_run

pytestmark = pytest.mark.kernel

BPF_OR, BPF_AND, BPF_LSH = 0x40, 0x50, 0x60
SLOTS = 16
#: (tcp_sock field, the bpf_sock_ops field reading the same tcp_sock member, its bit).
SAME_AS_CTX = (("snd_cwnd", 10), ("srtt_us", 11), ("mss_cache", 12), ("snd_nxt", 13),
               ("rcv_nxt", 14), ("bytes_acked", 15))
SK_BIT, TP_BIT, AGAIN_BIT = 8, 9, 16


def _alu(op: int, dst: int, imm: int) -> Insn:
    return Insn(0x07 | op, dst, 0, 0, imm)


def tcp_sock_log_prog(log: int) -> list[Insn]:
    """log[0] counts the calls; log[n] = op | sk<<8 | tcp_sock<<9 | (each field of
    SAME_AS_CTX equal to the ctx's)<<bit | (bpf_tcp_sock(tp) == tp)<<16 |
    skops->snd_cwnd<<24 (0 without a full socket) | tp->snd_cwnd<<32."""
    p = Asm()
    p(movr(6, 1), st(4, 10, -4, 0), *ld_map_fd(1, log), movr(2, 10), _alu(0, 2, -4), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(ldx(8, 7, 0, 0), movr(8, 7), _alu(0, 8, 1), stx(8, 0, 8, 0), _alu(0, 7, 1))
    p(stx(4, 10, 7, -8), *ld_map_fd(1, log), movr(2, 10), _alu(0, 2, -8), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(movr(9, 0), ldx(4, 8, 6, BPF_SOCK_OPS["op"].offset),
      ldx(4, 2, 6, BPF_SOCK_OPS["snd_cwnd"].offset), _alu(BPF_AND, 2, 0xFF),
      _alu(BPF_LSH, 2, 24), Insn(0x4F, 8, 2),  # r8 |= (skops->snd_cwnd & 0xff) << 24
      ldx(8, 1, 6, BPF_SOCK_OPS["sk"].offset))
    p.jmp(JEQ, 1, 0, "store")
    p(_alu(BPF_OR, 8, 1 << SK_BIT), call(96))
    p.jmp(JEQ, 0, 0, "store")
    p(_alu(BPF_OR, 8, 1 << TP_BIT), movr(7, 0))
    for name, bit in SAME_AS_CTX:
        f, c = BPF_TCP_SOCK[name], BPF_SOCK_OPS[name]
        p(ldx(f.size, 2, 7, f.offset), ldx(c.size, 3, 6, c.offset))
        p.jmpr(JNE, 2, 3, f"differ_{name}")
        p(_alu(BPF_OR, 8, 1 << bit))
        p.label(f"differ_{name}")
    p(ldx(4, 2, 7, BPF_TCP_SOCK["snd_cwnd"].offset), _alu(BPF_LSH, 2, 32),
      Insn(0x4F, 8, 2))  # r8 |= snd_cwnd << 32
    p(movr(1, 7), call(96))
    p.jmpr(JNE, 0, 7, "store")
    p(_alu(BPF_OR, 8, 1 << AGAIN_BIT))
    p.label("store")(stx(8, 9, 8, 0))
    p.label("out")(mov(0, 1), exit_())
    return p.build()


def _records(lookup: object) -> list[int]:
    vals = [int.from_bytes(lookup(i.to_bytes(4, "little")), "little")  # type: ignore[operator]
            for i in range(SLOTS)]
    return vals[1:vals[0] + 1]


def _kernel_log() -> list[int]:
    """Attach to a fresh cgroup; a child of it connects over loopback and exits."""

    def connect() -> None:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            with socket.create_connection(srv.getsockname()):
                conn, _ = srv.accept()
                conn.close()

    k = KernelBackend()
    try:
        log = k.map_create(MapType.ARRAY, 4, 8, SLOTS)
        prog = k.load(tcp_sock_log_prog(log), ProgType.SOCK_OPS,
                      expected_attach_type=AttachType.CGROUP_SOCK_OPS)
        kernel_cgroup_run("tcp_sock", prog, AttachType.CGROUP_SOCK_OPS, connect)
        return _records(lambda key: k.lookup(log, key, 8))
    finally:
        k.close()


def _pyebpf_log() -> list[int]:
    """The same program on pyebpf's connect (links.inet.socket_pair in a cgroup)."""
    from pyebpf.links import cgroup_root
    from pyebpf.links.inet import socket_pair

    py = PyBackend()
    try:
        log = py.map_create(MapType.ARRAY, 4, 8, SLOTS)
        prog = py.load(tcp_sock_log_prog(log), ProgType.SOCK_OPS,
                       expected_attach_type=AttachType.CGROUP_SOCK_OPS)
        cg = cgroup_root(py.rt)
        py.b(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg.open(), attach_bpf_fd=prog,
                                             attach_type=AttachType.CGROUP_SOCK_OPS))
        socket_pair(py.rt, cgroup=cg)
        return _records(lambda key: py.lookup(log, key, 8))
    finally:
        py.close()


def test_tcp_sock_of_each_connect_callback_is_the_kernels() -> None:
    kernel = _kernel_log()
    ours = _pyebpf_log()
    STEPS[0] += 1
    assert [hex(v) for v in ours] == [hex(v) for v in kernel]
    # the full sockets' callbacks found a TCP socket whose fields are the ctx's
    every = sum(1 << b for _, b in SAME_AS_CTX) | 1 << SK_BIT | 1 << TP_BIT | 1 << AGAIN_BIT
    assert any(v & every == every for v in kernel)


def _load_outcome(b: PyBackend | KernelBackend, insns: list[Insn]) -> str:
    from pyebpf import BpfError

    try:
        b.close_fd(b.load(insns, ProgType.SOCK_OPS))
    except BpfError as e:
        msg = next((ln for ln in str(e.strerror).splitlines() if "access" in ln), "")
        # the oracle's messages begin "kernel PROG_LOAD: "
        return f"{e.errno} {msg.removeprefix('kernel PROG_LOAD: ')}".strip()
    return "ok"


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("off", [0, 2, 4, 28, 76, 80, 84, 88, 96, 104, 108, 110, 112])
def test_tcp_sock_loads_are_checked_as_the_kernel_checks_them(off: int, size: int) -> None:
    p = Asm()
    p(ldx(8, 1, 1, BPF_SOCK_OPS["sk"].offset))
    p.jmp(JEQ, 1, 0, "out")
    p(call(96))
    p.jmp(JEQ, 0, 0, "out")
    p(ldx(size, 2, 0, off))
    p.label("out")(mov(0, 1), exit_())
    py, k = PyBackend(), KernelBackend()
    try:
        ours, theirs = _load_outcome(py, p.build()), _load_outcome(k, p.build())
    finally:
        py.close()
        k.close()
    STEPS[0] += 1
    assert ours == theirs


# -- cgroup sockopt: bpf_tcp_sock(ctx->sk) in a getsockopt hook -------------------------------
def sockopt_log_prog(log: int) -> list[Insn]:
    """log[0] counts the calls; log[n] = tcp_sock found | tp->snd_cwnd<<8 |
    tp->srtt_us<<24 | tp->mss_cache<<32."""
    from pyebpf.progs.cgroup import BPF_SOCKOPT

    p = Asm()
    p(movr(6, 1), st(4, 10, -4, 0), *ld_map_fd(1, log), movr(2, 10), _alu(0, 2, -4), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(ldx(8, 7, 0, 0), movr(8, 7), _alu(0, 8, 1), stx(8, 0, 8, 0), _alu(0, 7, 1))
    p(stx(4, 10, 7, -8), *ld_map_fd(1, log), movr(2, 10), _alu(0, 2, -8), call(1))
    p.jmp(JEQ, 0, 0, "out")
    p(movr(9, 0), mov(8, 0), ldx(8, 1, 6, BPF_SOCKOPT["sk"].offset), call(96))
    p.jmp(JEQ, 0, 0, "store")
    p(mov(8, 1))
    for name, shift in (("snd_cwnd", 8), ("srtt_us", 24), ("mss_cache", 32)):
        f = BPF_TCP_SOCK[name]
        p(ldx(4, 2, 0, f.offset), _alu(BPF_LSH, 2, shift), Insn(0x4F, 8, 2))
    p.label("store")(stx(8, 9, 8, 0))
    p.label("out")(mov(0, 1), exit_())
    return p.build()


def _kernel_sockopt_log() -> list[int]:
    """A child of a fresh cgroup calls getsockopt(SO_MARK) on a fresh TCP socket,
    then on a UDP one."""

    def getsockopt_both() -> None:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.getsockopt(socket.SOL_SOCKET, 36)  # SO_MARK

    k = KernelBackend()
    try:
        log = k.map_create(MapType.ARRAY, 4, 8, SLOTS)
        prog = k.load(sockopt_log_prog(log), ProgType.CGROUP_SOCKOPT,
                      expected_attach_type=AttachType.CGROUP_GETSOCKOPT)
        kernel_cgroup_run("tcp_sockopt", prog, AttachType.CGROUP_GETSOCKOPT, getsockopt_both)
        return _records(lambda key: k.lookup(log, key, 8))
    finally:
        k.close()


def _pyebpf_sockopt_log() -> list[int]:
    from pyebpf.links import cgroup_root
    from pyebpf.links.inet import InetSocket

    py = PyBackend()
    try:
        log = py.map_create(MapType.ARRAY, 4, 8, SLOTS)
        prog = py.load(sockopt_log_prog(log), ProgType.CGROUP_SOCKOPT,
                       expected_attach_type=AttachType.CGROUP_GETSOCKOPT)
        cg = cgroup_root(py.rt)
        py.b(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg.open(), attach_bpf_fd=prog,
                                             attach_type=AttachType.CGROUP_GETSOCKOPT))
        for proto in ("tcp", "udp"):
            s = InetSocket(py.rt, proto)
            cg.run(AttachType.CGROUP_GETSOCKOPT, sk=s.sk_addr, level=1, optname=36, optlen=4)
        return _records(lambda key: py.lookup(log, key, 8))
    finally:
        py.close()


def test_tcp_sock_in_a_getsockopt_hook_is_the_kernels() -> None:
    kernel = _kernel_sockopt_log()
    ours = _pyebpf_sockopt_log()
    STEPS[0] += 1
    assert [hex(v) for v in ours] == [hex(v) for v in kernel]
    assert len(kernel) == 2 and kernel[0] & 1 and not kernel[1]  # TCP found, UDP NULL
