"""The TCP header-option helpers (bpf_load/store/reserve_hdr_opt) and the sysctl
helpers as the 6.18 verifier sees them, on pyebpf and on the kernel: which
program types get them, and which buffers they may write (load_hdr_opt,
sysctl_get_name and the sysctl value getters write theirs: MEM_WRITE, so a
read-only map value is refused; store_hdr_opt and sysctl_set_new_value only
read theirs)."""

from __future__ import annotations

from collections.abc import Iterator

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
    mov,
    movr,
    st,
)
from pyebpf import BpfError, MapType
from pyebpf.uapi import AttachType, ProgType

from .harness import STEPS

pytestmark = pytest.mark.kernel

P, A = ProgType, AttachType
#: BPF_F_RDONLY_PROG: the program may only read the map.
BPF_F_RDONLY_PROG = 0x80
HOME = {142: (P.SOCK_OPS, 0), 143: (P.SOCK_OPS, 0), 144: (P.SOCK_OPS, 0),
        101: (P.CGROUP_SYSCTL, A.CGROUP_SYSCTL), 102: (P.CGROUP_SYSCTL, A.CGROUP_SYSCTL),
        103: (P.CGROUP_SYSCTL, A.CGROUP_SYSCTL), 104: (P.CGROUP_SYSCTL, A.CGROUP_SYSCTL)}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PyBackend, KernelBackend]]:
    py, k = PyBackend(), KernelBackend()
    try:
        yield py, k
    finally:
        py.close()
        k.close()


def _outcome(backend: PyBackend | KernelBackend, insns: list[Insn], ptype: int,
             at: int) -> str | tuple[int, str]:
    try:
        backend.load(insns, ptype, expected_attach_type=at)
        return "ok"
    except BpfError as e:
        return e.errno, str(e.strerror)


def _same(pair: tuple[PyBackend, KernelBackend], build: object, ptype: int, at: int) -> None:
    py, k = pair
    theirs = _outcome(k, build(k), ptype, at)  # type: ignore[operator]
    ours = _outcome(py, build(py), ptype, at)  # type: ignore[operator]
    STEPS[0] += 1
    if "ok" in (theirs, ours):
        assert ours == theirs
        return
    assert ours[0] == theirs[0]
    assert ours[1] in theirs[1].splitlines()


@pytest.mark.parametrize("func_id", sorted(HOME))
def test_buffer_on_a_read_only_map_value(pair: tuple[PyBackend, KernelBackend],
                                         func_id: int) -> None:
    def build(b: PyBackend | KernelBackend) -> list[Insn]:
        m = b.map_create(MapType.ARRAY, 4, 16, 1, map_flags=BPF_F_RDONLY_PROG)
        p = Asm()
        p(movr(6, 1), st(4, 10, -4, 0), ld_map_fd(1, m), movr(2, 10),
          Insn(0x07, 2, 0, 0, -4), call(1))
        p.jmp(JEQ, 0, 0, "out")
        if func_id == 144:  # reserve_hdr_opt(ctx, len, flags): no buffer
            p(movr(1, 6), mov(2, 8), mov(3, 0), call(func_id))
        else:
            p(movr(2, 0), movr(1, 6), mov(3, 8), mov(4, 0), call(func_id))
        p.label("out")
        p(mov(0, 1), exit_())
        return p.build()

    _same(pair, build, *HOME[func_id])


@pytest.mark.parametrize("func_id", [142, 143, 144])
@pytest.mark.parametrize("ptype,at", [
    (P.SOCK_OPS, 0), (P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE), (P.SCHED_CLS, 0),
    (P.XDP, 0), (P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT), (P.SK_MSG, 0),
], ids=lambda v: getattr(v, "name", str(v)))
def test_hdr_opt_helpers_offered_alike(pair: tuple[PyBackend, KernelBackend], func_id: int,
                                       ptype: int, at: int) -> None:
    def build(b: PyBackend | KernelBackend) -> list[Insn]:
        # reserve_hdr_opt(ctx, 4, 0); the others get a stack buffer of 8 bytes
        if func_id == 144:
            return [mov(2, 4), mov(3, 0), call(func_id), mov(0, 1), exit_()]
        return [st(8, 10, -8, 0x0202), movr(2, 10), Insn(0x07, 2, 0, 0, -8), mov(3, 8),
                mov(4, 0), call(func_id), mov(0, 1), exit_()]

    _same(pair, build, ptype, at)


# -- options on real segments -----------------------------------------------------------------
def _kernel_tcp_record() -> tuple[int, int, bytes, int, int]:
    """Attach the program to a fresh cgroup; a child of that cgroup opens a loopback
    TCP connection, sends data both ways and closes; the map's record."""
    import socket

    from helpers import hdr_opt_scenarios as H

    from .harness import kernel_cgroup_run

    def connect_and_talk() -> None:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            with socket.create_connection(srv.getsockname()) as cli:
                conn, _ = srv.accept()
                with conn:
                    cli.sendall(b"ping")
                    conn.recv(4)
                    conn.sendall(b"pong")
                    cli.recv(4)

    k = KernelBackend()
    try:
        m = k.map_create(MapType.ARRAY, 4, 8 * H.SLOTS, 1)
        prog = k.load(H.hdr_opt_prog(m), P.SOCK_OPS, expected_attach_type=A.CGROUP_SOCK_OPS)
        kernel_cgroup_run("hdr_opt", prog, A.CGROUP_SOCK_OPS, connect_and_talk)
        return H.record(k.lookup(m, bytes(4), 8 * H.SLOTS))
    finally:
        k.close()


def _pyebpf_tcp_record() -> tuple[int, int, bytes, int, int]:
    """The same program through pyebpf's callbacks: established, then one data
    segment written by one end (HDR_OPT_LEN_CB, WRITE_HDR_OPT_CB) and parsed
    by the other (PARSE_HDR_OPT_CB)."""
    from helpers import hdr_opt_scenarios as H
    from pyebpf.helpers.hdr_opt import BPF_SOCK_OPS_PARSE_HDR_OPT_CB as PARSE
    from pyebpf.helpers.hdr_opt import hdr_opt_len, run_with_segment, write_hdr_opt
    from pyebpf.progs.sock_ops import TcpSock, run_sock_ops

    py = PyBackend()
    try:
        m = py.map_create(MapType.ARRAY, 4, 8 * H.SLOTS, 1)
        fd = py.load(H.hdr_opt_prog(m), P.SOCK_OPS, expected_attach_type=A.CGROUP_SOCK_OPS)
        prog = py.rt.fds[fd].obj
        client, server = TcpSock(), TcpSock()
        run_sock_ops(py.rt, prog, H.ACTIVE_ESTABLISHED_CB, client)
        run_sock_ops(py.rt, prog, H.PASSIVE_ESTABLISHED_CB, server)
        # a data segment with the timestamp option the kernel writes (12 bytes)
        tstamp = bytes([1, 1, 8, 10]) + bytes(8)
        room = hdr_opt_len(py.rt, prog, client, remaining=40 - len(tstamp))
        doff = (20 + len(tstamp) + room) // 4
        header = bytes(12) + bytes([doff << 4, 0x18]) + bytes(6) + tstamp + bytes(room)
        sent = write_hdr_opt(py.rt, prog, client, header, room, payload_len=4)
        run_with_segment(py.rt, prog, PARSE, server, sent + b"ping")
        return H.record(py.lookup(m, bytes(4), 8 * H.SLOTS))
    finally:
        py.close()


def test_options_written_and_parsed_on_tcp_segments() -> None:
    import errno

    from helpers import hdr_opt_scenarios as H

    kernel = _kernel_tcp_record()
    ours = _pyebpf_tcp_record()
    STEPS[0] += 1
    assert ours == kernel, f"pyebpf {ours!r} != kernel {kernel!r}"
    assert kernel == (0, 6, H.EXP_OPT + bytes(2), 0, -errno.EEXIST)
