"""Where the 6.18 kernel offers the cgroup helpers: tiny programs that call
bpf_get_retval / bpf_set_retval / the sysctl helpers, loaded as each cgroup
program type and expected_attach_type on pyebpf and on the kernel. Both accept,
or both refuse with the same errno and the same verifier message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers._build import KernelBackend, PyBackend, call, exit_, mov
from pyebpf import BpfError
from pyebpf.uapi import AttachType, ProgType

from .harness import STEPS

pytestmark = pytest.mark.kernel

P, A = ProgType, AttachType
CASES = [
    (P.CGROUP_SKB, A.CGROUP_INET_INGRESS), (P.CGROUP_SKB, A.CGROUP_INET_EGRESS),
    (P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE), (P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND),
    (P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT), (P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND),
    (P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG), (P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG),
    (P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME),
    (P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME),
    (P.SOCK_OPS, 0), (P.SOCK_OPS, A.CGROUP_SOCK_OPS),
    (P.CGROUP_DEVICE, 0), (P.CGROUP_DEVICE, A.CGROUP_DEVICE),
    (P.CGROUP_SYSCTL, A.CGROUP_SYSCTL),
    (P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT), (P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT),
    (P.XDP, 0), (P.SOCKET_FILTER, 0), (P.KPROBE, 0), (P.SK_LOOKUP, A.SK_LOOKUP),
]


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PyBackend, KernelBackend]]:
    py, k = PyBackend(), KernelBackend()
    try:
        yield py, k
    finally:
        py.close()
        k.close()


def _load(backend: PyBackend | KernelBackend, func_id: int, ptype: int,
          at: int) -> str | tuple[int, str]:
    try:
        backend.load([mov(1, 0), call(func_id), mov(0, 1), exit_()], ptype,
                     expected_attach_type=at)
        return "ok"
    except BpfError as e:
        return e.errno, str(e.strerror)


@pytest.mark.parametrize("func_id", [186, 187], ids=["get_retval", "set_retval"])
@pytest.mark.parametrize("ptype,at", CASES, ids=lambda v: getattr(v, "name", str(v)))
def test_retval_helpers_offered_alike(pair: tuple[PyBackend, KernelBackend], func_id: int,
                                      ptype: int, at: int) -> None:
    py, k = pair
    theirs, ours = _load(k, func_id, ptype, at), _load(py, func_id, ptype, at)
    STEPS[0] += 1
    if theirs == "ok" or ours == "ok":
        assert ours == theirs
        return
    assert ours[0] == theirs[0]
    assert ours[1] in theirs[1].splitlines()  # the kernel's log holds our message


@pytest.mark.parametrize("func_id", [101, 102, 103, 104])
@pytest.mark.parametrize("ptype,at", [c for c in CASES if c[0] != P.CGROUP_SYSCTL],
                         ids=lambda v: getattr(v, "name", str(v)))
def test_sysctl_helpers_refused_outside_cgroup_sysctl(
        pair: tuple[PyBackend, KernelBackend], func_id: int, ptype: int, at: int) -> None:
    py, k = pair
    theirs, ours = _load(k, func_id, ptype, at), _load(py, func_id, ptype, at)
    STEPS[0] += 1
    assert theirs != "ok" and ours != "ok"
    assert ours[0] == theirs[0]
    assert ours[1] in theirs[1].splitlines()
