"""The bpf_skc_to_* socket casts against the real kernel: which program types are
offered them (the verdict and message of a load passing a scalar, which the
offered helper refuses by argument type and a withheld one by name), and what
they return in a tc test run (the test-run socket is bpf_dummy_proto's: NULL)."""

from __future__ import annotations

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.helpers.skc import SKC_CASTS
from pyebpf.isa import encode
from pyebpf.testing.kernel import kernel_close
from pyebpf.testing.kernel_prog import kernel_prog_load, kernel_test_run
from pyebpf.uapi import AttachType

pytestmark = pytest.mark.kernel

P = ProgType
BPF_F_SLEEPABLE = 1 << 4
#: (program type, expected_attach_type, prog_flags) of the loads compared.
PROG_TYPES = [
    (P.SOCKET_FILTER, 0, 0), (P.SCHED_CLS, 0, 0), (P.XDP, 0, 0), (P.CGROUP_SKB, 0, 0),
    (P.SOCK_OPS, 0, 0), (P.SK_SKB, 0, 0), (P.SK_MSG, 0, 0), (P.FLOW_DISSECTOR, 0, 0),
    (P.LWT_IN, 0, 0), (P.LWT_XMIT, 0, 0), (P.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT, 0),
    (P.SK_LOOKUP, AttachType.SK_LOOKUP, 0), (P.CGROUP_SOCK, 0, 0), (P.SK_REUSEPORT, 0, 0),
    (P.CGROUP_SYSCTL, 0, 0), (P.CGROUP_DEVICE, 0, 0), (P.KPROBE, 0, 0), (P.TRACEPOINT, 0, 0),
    (P.RAW_TRACEPOINT, 0, 0), (P.PERF_EVENT, 0, 0), (P.SYSCALL, 0, BPF_F_SLEEPABLE),
    (P.CGROUP_SOCKOPT, AttachType.CGROUP_GETSOCKOPT, 0), (P.LWT_OUT, 0, 0),
    (P.LWT_SEG6LOCAL, 0, 0), (P.SCHED_ACT, 0, 0), (P.NETFILTER, AttachType.NETFILTER, 0),
]
IPV4 = bytes(12) + b"\x08\x00" + bytes.fromhex("4500001c000000004011") + bytes(14)
IPV6 = bytes(12) + b"\x86\xdd" + bytes.fromhex("6000000000003b40") + bytes(32)


def _pyebpf_runtime() -> Runtime:
    rt = Runtime()
    rt.verifier = "kernel"
    return rt


@pytest.mark.parametrize("cast", SKC_CASTS, ids=lambda c: c.name)
@pytest.mark.parametrize(("ptype", "eat", "flags"), PROG_TYPES,
                         ids=[t[0].name for t in PROG_TYPES])
def test_cast_availability_matches_kernel(cast: object, ptype: ProgType, eat: int,
                                          flags: int) -> None:
    insns = encode(asm(f"mov %r1, 0\ncall {cast.func_id}\nmov %r0, 0\nexit"))  # type: ignore[attr-defined]
    try:
        kernel_close(kernel_prog_load(ptype, insns, expected_attach_type=eat, prog_flags=flags))
        kernel = "accept"
    except BpfError as e:
        kernel = f"{e.errno}: {e.strerror}"
    try:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=insns, license="GPL",
                                        expected_attach_type=eat, prog_flags=flags),
            runtime=_pyebpf_runtime())
        ours = "accept"
    except BpfError as e:
        ours = f"{e.errno}: {e.strerror}"
    assert ours == kernel


@pytest.mark.parametrize("packet", [IPV4, IPV6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("cast", SKC_CASTS, ids=lambda c: c.name)
def test_cast_of_the_test_run_socket_matches_kernel(cast: object, packet: bytes) -> None:
    """r0 = 2 without skb->sk, else 1 when the cast gives a pointer, 0 for NULL."""
    insns = encode(asm(
        "ldxdw %r1, [%r1+168]\njne %r1, 0, +2\nmov %r0, 2\nexit\n"
        f"call {cast.func_id}\njeq %r0, 0, +2\nmov %r0, 1\nexit\nmov %r0, 0\nexit"))  # type: ignore[attr-defined]
    kfd = kernel_prog_load(P.SCHED_CLS, insns)
    try:
        kernel = kernel_test_run(kfd, packet).retval
    finally:
        kernel_close(kfd)
    rt = _pyebpf_runtime()
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=P.SCHED_CLS, insns=insns, license="GPL"),
             runtime=rt)
    ours = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=packet), runtime=rt).retval
    assert ours == kernel


#: BTF-typed pointers passed to the casts: the struct must be (or begin with)
#: sock_common (btf_struct_ids_match). (program type, prog_flags, program)
BTF_ARGS = {
    "task_struct_to_tcp_sock": (P.SYSCALL, BPF_F_SLEEPABLE,
                                "call 158\nmov %r1, %r0\ncall 137\nmov %r0, 0\nexit"),
    "task_struct_to_unix_sock": (P.SYSCALL, BPF_F_SLEEPABLE,
                                 "call 158\nmov %r1, %r0\ncall 178\nmov %r0, 0\nexit"),
    "task_struct_to_mptcp_sock": (P.SYSCALL, BPF_F_SLEEPABLE,
                                  "call 158\nmov %r1, %r0\ncall 196\nmov %r0, 0\nexit"),
    "tcp_sock_to_tcp6_sock": (P.SCHED_CLS, 0,
                              "ldxdw %r1, [%r1+168]\njeq %r1, 0, +4\ncall 137\njeq %r0, 0, +2\n"
                              "mov %r1, %r0\ncall 136\nmov %r0, 0\nexit"),
    "tcp_sock_plus_8_to_tcp_sock": (P.SCHED_CLS, 0,
                                    "ldxdw %r1, [%r1+168]\njeq %r1, 0, +5\ncall 137\n"
                                    "jeq %r0, 0, +3\nmov %r1, %r0\nadd %r1, 8\ncall 137\n"
                                    "mov %r0, 0\nexit"),
}


@pytest.mark.parametrize("name", list(BTF_ARGS))
def test_btf_typed_argument_struct_matches_kernel(name: str) -> None:
    ptype, flags, text = BTF_ARGS[name]
    insns = encode(asm(text))
    try:
        kernel_close(kernel_prog_load(ptype, insns, prog_flags=flags))
        kernel = "accept"
    except BpfError as e:
        kernel = f"{e.errno}: {e.strerror}"
    try:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=insns, license="GPL",
                                        prog_flags=flags), runtime=_pyebpf_runtime())
        ours = "accept"
    except BpfError as e:
        ours = f"{e.errno}: {e.strerror}"
    assert ours == kernel
