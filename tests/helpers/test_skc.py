"""The bpf_skc_to_* socket casts: where they are offered, what the verifier makes
of their result (a maybe-NULL pointer to the kernel struct), and what they return
at run time (the socket's kernel object when its kind matches, else NULL)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf import Cmd, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.engine.interpreter import Vm
from pyebpf.errors import VerifierError
from pyebpf.helpers import func_proto
from pyebpf.helpers.skc import SKC_CASTS
from pyebpf.kernel_btf import KernelObject, kernel_btf, kernel_struct_id
from pyebpf.progs.sock_ops import TcpSock, run_sock_ops
from pyebpf.uapi import FuncId

P = ProgType
F = FuncId
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
TCP_ESTABLISHED, TCP_TIME_WAIT, TCP_NEW_SYN_RECV = 1, 6, 12
#: r1 = skb->sk; NULL: return 2; else r0 = bpf_skc_to_<id>(sk) != NULL.
SKB_CAST = ("ldxdw %r1, [%r1+168]\njne %r1, 0, +2\nmov %r0, 2\nexit\ncall {id}\n"
            "jeq %r0, 0, +2\nmov %r0, 1\nexit\nmov %r0, 0\nexit")
IPV4_PACKET = bytes(12) + b"\x08\x00" + bytes.fromhex("4500001c000000004011") + bytes(14)


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime()
    runtime.verifier = "kernel"
    return runtime


def _load(rt: Runtime, text: str, ptype: ProgType = P.SCHED_CLS) -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=asm(text), license="GPL",
                                               log_level=1, log_size=1 << 20), runtime=rt))


@pytest.mark.parametrize("cast", SKC_CASTS, ids=lambda c: c.name)
def test_casts_are_offered_to_tracing_programs_outright(cast: Any) -> None:
    for ptype in (P.TRACING, P.LSM, P.SYSCALL):
        assert func_proto(cast.func_id, ptype, cap_bpf=True, cap_perfmon=False) is not None


@pytest.mark.parametrize("cast", SKC_CASTS, ids=lambda c: c.name)
def test_networking_programs_need_cap_perfmon(cast: Any) -> None:
    for ptype in (P.SOCKET_FILTER, P.CGROUP_SKB, P.SCHED_CLS, P.XDP, P.SOCK_OPS, P.SK_LOOKUP):
        assert func_proto(cast.func_id, ptype) is not None
        assert func_proto(cast.func_id, ptype, cap_bpf=False, cap_perfmon=False) is None


@pytest.mark.parametrize("ptype", [P.KPROBE, P.TRACEPOINT, P.CGROUP_SOCK, P.SK_REUSEPORT,
                                   P.CGROUP_DEVICE, P.STRUCT_OPS])
def test_programs_on_plain_base_protos_dont_get_the_casts(ptype: ProgType) -> None:
    assert func_proto(F.skc_to_tcp_sock, ptype) is None


@pytest.mark.parametrize("cast", SKC_CASTS, ids=lambda c: c.name)
def test_result_is_a_maybe_null_pointer_to_the_kernel_struct(cast: Any) -> None:
    proto = func_proto(cast.func_id, P.TRACING)
    assert proto is not None
    assert proto.proto.ret_btf_id == cast.struct
    assert kernel_struct_id(cast.struct) > 0


def test_unchecked_result_is_ptr_or_null(rt: Runtime) -> None:
    with pytest.raises(VerifierError) as exc:
        _load(rt, "ldxdw %r1, [%r1+168]\njne %r1, 0, +2\nmov %r0, 0\nexit\n"
              f"call {F.skc_to_tcp_sock}\nldxw %r0, [%r0+160]\nexit")
    assert exc.value.errno == errno.EACCES
    assert exc.value.strerror == "R0 invalid mem access 'ptr_or_null_'"
    assert "R0=ptr_or_null_tcp_sock(id=2)" in exc.value.log


def test_checked_result_reads_the_struct_fields(rt: Runtime) -> None:
    _load(rt, "ldxdw %r1, [%r1+168]\njne %r1, 0, +2\nmov %r0, 0\nexit\n"
          f"call {F.skc_to_tcp_sock}\njne %r0, 0, +2\nmov %r0, 0\nexit\n"
          "ldxw %r0, [%r0+160]\nexit")


def test_cast_needs_a_socket_argument(rt: Runtime) -> None:
    with pytest.raises(VerifierError) as exc:
        _load(rt, f"mov %r1, 0\ncall {F.skc_to_tcp_sock}\nmov %r0, 0\nexit")
    assert exc.value.strerror.startswith("R1 type=scalar expected=sock_common, sock, tcp_sock")


@pytest.mark.parametrize("cast", SKC_CASTS, ids=lambda c: c.name)
def test_test_run_dummy_socket_is_no_kind_of_socket(rt: Runtime, cast: Any) -> None:
    """bpf_prog_test_run_skb's socket has bpf_dummy_proto and protocol 0."""
    fd = _load(rt, SKB_CAST.format(id=cast.func_id))
    res = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=IPV4_PACKET), runtime=rt)
    assert res.retval == 0


def _sock_ops(rt: Runtime, body: str, sk: TcpSock) -> int:
    """A sock_ops program: r1 = skops->sk (NULL: 99), then ``body`` (which may not
    touch r9) computes r0 with the cast; the result comes back in skops->reply."""
    fd = _load(rt, "mov %r9, %r1\nldxdw %r1, [%r1+184]\nmov %r0, 99\njeq %r1, 0, +"
               f"{len(asm(body))}\n{body}\nstxw [%r9+4], %r0\nmov %r0, 1\nexit", P.SOCK_OPS)
    _, kern = run_sock_ops(rt, rt.fds[fd].obj, 4, sk)
    return kern.reply


def test_sock_ops_tcp_socket_casts_to_tcp_sock_with_its_fields(rt: Runtime) -> None:
    sk = TcpSock()
    sk.snd_cwnd, sk.srtt_us = 33, 4000
    body = (f"call {F.skc_to_tcp_sock}\njeq %r0, 0, +3\n"
            "ldxw %r1, [%r0+160]\nldxw %r0, [%r0+180]\nadd %r0, %r1")
    assert _sock_ops(rt, body, sk) == 4033


def test_two_casts_of_one_socket_give_the_same_object(rt: Runtime) -> None:
    body = (f"mov %r6, %r1\ncall {F.skc_to_tcp_sock}\nmov %r7, %r0\nmov %r1, %r6\n"
            f"call {F.skc_to_tcp_sock}\nmov %r1, %r0\nmov %r0, 0\njne %r1, %r7, +1\n"
            "mov %r0, 1")
    assert _sock_ops(rt, body, TcpSock()) == 1


@pytest.mark.parametrize(("family", "func_id", "matches"), [
    (AF_INET, F.skc_to_tcp6_sock, False), (AF_INET6, F.skc_to_tcp6_sock, True),
    (AF_INET6, F.skc_to_tcp_sock, True), (AF_INET, F.skc_to_udp6_sock, False),
    (AF_INET, F.skc_to_unix_sock, False), (AF_INET, F.skc_to_tcp_timewait_sock, False),
    (AF_INET, F.skc_to_mptcp_sock, False)])
def test_sock_ops_socket_casts_by_kind(rt: Runtime, family: int, func_id: int,
                                      matches: bool) -> None:
    sk = TcpSock()
    sk.family = family
    body = f"call {func_id}\njeq %r0, 0, +1\nmov %r0, 1"
    assert _sock_ops(rt, body, sk) == int(matches)


def _cast(rt: Runtime, func_id: int, addr: int) -> int:
    from pyebpf.helpers import HELPERS

    vm = Vm(asm("mov %r0, 0\nexit"), runtime=rt, memory=rt.memory, clock=rt.clock,
            helpers=rt.helpers)
    return HELPERS[func_id].impl(vm, addr, 0, 0, 0, 0) or 0


def _object(rt: Runtime, struct: str, family: int, state: int = TCP_ESTABLISHED) -> KernelObject:
    obj = KernelObject(rt, struct)
    common = kernel_struct_id("sock_common")
    btf = kernel_btf()
    fam, st = btf.offsetof(common, "skc_family"), btf.offsetof(common, "skc_state")
    obj.region.buf[fam:fam + 2] = family.to_bytes(2, "little")
    obj.region.buf[st] = state
    return obj


@pytest.mark.parametrize(("struct", "family", "state", "func_id", "matches"), [
    ("tcp_sock", AF_INET, TCP_ESTABLISHED, F.skc_to_tcp_sock, True),
    ("tcp6_sock", AF_INET6, TCP_ESTABLISHED, F.skc_to_tcp_sock, True),
    ("tcp6_sock", AF_INET6, TCP_ESTABLISHED, F.skc_to_tcp6_sock, True),
    ("tcp_sock", AF_INET, TCP_ESTABLISHED, F.skc_to_tcp6_sock, False),
    ("tcp_timewait_sock", AF_INET, TCP_TIME_WAIT, F.skc_to_tcp_timewait_sock, True),
    ("tcp_timewait_sock", AF_INET, TCP_TIME_WAIT, F.skc_to_tcp_sock, False),
    ("tcp_request_sock", AF_INET6, TCP_NEW_SYN_RECV, F.skc_to_tcp_request_sock, True),
    ("udp6_sock", AF_INET6, TCP_ESTABLISHED, F.skc_to_udp6_sock, True),
    ("udp6_sock", AF_INET6, TCP_ESTABLISHED, F.skc_to_tcp_sock, False),
    ("unix_sock", AF_UNIX, TCP_ESTABLISHED, F.skc_to_unix_sock, True),
    ("unix_sock", AF_INET, TCP_ESTABLISHED, F.skc_to_unix_sock, False),
    ("sock", AF_UNIX, TCP_ESTABLISHED, F.skc_to_unix_sock, False),
])
def test_kernel_object_socket_casts_to_itself_when_its_kind_matches(
        rt: Runtime, struct: str, family: int, state: int, func_id: int,
        matches: bool) -> None:
    obj = _object(rt, struct, family, state)
    assert _cast(rt, func_id, obj.addr) == (obj.addr if matches else 0)


def test_pointer_to_no_socket_casts_to_null(rt: Runtime) -> None:
    task = KernelObject(rt, "task_struct")
    assert _cast(rt, F.skc_to_tcp_sock, task.addr) == 0
    assert _cast(rt, F.skc_to_tcp_sock, 0) == 0
