"""bpf_get_retval / bpf_set_retval and bpf_prog_run_array_cg's retval (pyebpf.helpers
.cgroup_retval), on the cgroup hooks fired from Python."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from pyebpf.errors import BpfError
from pyebpf.helpers import func_proto
from pyebpf.helpers.cgroup_retval import NO_RETVAL_ATTACH_TYPES, is_err_value
from pyebpf.isa.asm import asm
from pyebpf.links import cgroup_root
from pyebpf.uapi import AttachFlags, AttachType, Cmd, ProgType

from . import sysctl_scenarios as S
from ._build import PyBackend

A = AttachType
GET, SET = S.F_GET_RETVAL, S.F_SET_RETVAL


@pytest.fixture
def side() -> Iterator[S.PySysctlSide]:
    s = S.PySysctlSide(b"(none)\n")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def py() -> Iterator[PyBackend]:
    b = PyBackend()
    try:
        yield b
    finally:
        b.close()


def _attach(py: PyBackend, text: str, ptype: int, at: int) -> object:
    from pyebpf.attr import ProgAttachAttr

    cg = cgroup_root(py.rt).mkdir_p("t")
    fd = py.load(asm(text), ptype, expected_attach_type=at)
    py.b(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg.open(), attach_bpf_fd=fd,
                                         attach_type=at, attach_flags=AttachFlags.ALLOW_MULTI))
    return cg


def test_a_zero_makes_the_next_program_see_eperm(side: S.PySysctlSide) -> None:
    seen, outcome = S.retval_chain(side, [(0, None), (1, None)])
    assert (seen, outcome) == ([0, -errno.EPERM], (errno.EPERM, b"(none)"))


def test_set_retval_zero_clears_an_earlier_denial(side: S.PySysctlSide) -> None:
    seen, outcome = S.retval_chain(side, [(0, None), (1, 0)], write=b"ok")
    assert (seen, outcome) == ([0, -errno.EPERM], (0, b"ok"))


def test_an_errno_retval_fails_the_hook_though_the_program_allowed(
        side: S.PySysctlSide) -> None:
    _, outcome = S.retval_chain(side, [(1, -errno.EACCES)], write=b"no")
    assert outcome == (errno.EACCES, b"(none)")


def test_an_errno_retval_survives_a_later_zero(side: S.PySysctlSide) -> None:
    seen, outcome = S.retval_chain(side, [(0, -errno.EACCES), (0, None)])
    assert (seen, outcome[0]) == ([0, -errno.EACCES], errno.EACCES)


def test_a_retval_that_is_no_errno_becomes_eperm_on_a_zero(side: S.PySysctlSide) -> None:
    seen, outcome = S.retval_chain(side, [(0, -2000000), (1, None)])
    assert (seen, outcome[0]) == ([0, -errno.EPERM], errno.EPERM)
    assert not is_err_value(-2000000) and is_err_value(-4095) and not is_err_value(-4096)


def test_sock_create_hook_returns_the_set_retval(py: PyBackend) -> None:
    cg = _attach(py, f"mov %r1, {-errno.EAFNOSUPPORT}\ncall {SET}\nmov %r0, 1\nexit",
                 ProgType.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE)
    got = cg.run(A.CGROUP_INET_SOCK_CREATE, family=2)  # type: ignore[attr-defined]
    assert (got.allow, got.retval, got.verdicts) == (False, -errno.EAFNOSUPPORT, (1,))


def test_getsockopt_ctx_retval_is_the_run_ctx_retval(py: PyBackend) -> None:
    # copies ctx->retval (the kernel getsockopt's -ENOPROTOOPT) to ctx->optlen,
    # then clears it with bpf_set_retval(0)
    text = (f"mov %r6, %r1\nldxw %r7, [%r6+36]\nstxw [%r6+32], %r7\nmov %r1, 0\n"
            f"call {SET}\nmov %r0, 1\nexit")
    cg = _attach(py, text, ProgType.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT)
    got = cg.run(A.CGROUP_GETSOCKOPT, retval=-errno.ENOPROTOOPT)  # type: ignore[attr-defined]
    assert (got.allow, got.retval, got.ctx["retval"]) == (True, 0, 0)
    assert got.ctx["optlen"] == -errno.ENOPROTOOPT & 0xFFFF_FFFF


def test_getsockopt_ctx_retval_store_sets_the_retval(py: PyBackend) -> None:
    text = f"stw [%r1+36], {-errno.EINVAL}\ncall {GET}\nmov %r0, 1\nexit"
    cg = _attach(py, text, ProgType.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT)
    got = cg.run(A.CGROUP_GETSOCKOPT)  # type: ignore[attr-defined]
    assert (got.allow, got.retval) == (False, -errno.EINVAL)


def test_bind_hook_collects_return_flags(py: PyBackend) -> None:
    cg = _attach(py, "mov %r0, 3\nexit", ProgType.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND)
    got = cg.run(A.CGROUP_INET4_BIND, user_family=2)  # type: ignore[attr-defined]
    assert (got.allow, got.flags, got.verdicts) == (True, 1, (3,))


@pytest.mark.parametrize("ptype,at", [
    (ProgType.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE),
    (ProgType.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT),
    (ProgType.CGROUP_DEVICE, A.CGROUP_DEVICE),
    (ProgType.CGROUP_SYSCTL, A.CGROUP_SYSCTL),
    (ProgType.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT),
    (ProgType.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT),
])
def test_retval_helpers_offered_to_cgroup_hooks_that_return_an_errno(ptype: int,
                                                                     at: int) -> None:
    for fid in (GET, SET):
        assert func_proto(fid, ptype, expected_attach_type=at) is not None


@pytest.mark.parametrize("ptype,at", [
    (ProgType.CGROUP_SKB, A.CGROUP_INET_INGRESS),
    (ProgType.CGROUP_SKB, A.CGROUP_INET_EGRESS),
    (ProgType.SOCK_OPS, A.CGROUP_SOCK_OPS),
    (ProgType.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG),
    (ProgType.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME),
    (ProgType.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME),
    (ProgType.CGROUP_DEVICE, 0),  # expected_attach_type 0 is CGROUP_INET_INGRESS
    (ProgType.XDP, 0),
])
def test_retval_helpers_refused_where_the_kernel_refuses(ptype: int, at: int,
                                                         py: PyBackend) -> None:
    assert at in NO_RETVAL_ATTACH_TYPES or ptype == ProgType.XDP
    with pytest.raises(BpfError) as e:
        py.load(asm(f"call {GET}\nmov %r0, 1\nexit"), ptype, expected_attach_type=at)
    assert e.value.errno == errno.EINVAL
    assert "cannot use helper bpf_get_retval#186" in str(e.value)


def test_lsm_programs_get_them_as_lsm_cgroup_only() -> None:
    for fid in (GET, SET):
        assert func_proto(fid, ProgType.LSM, expected_attach_type=A.LSM_CGROUP) is not None
        assert func_proto(fid, ProgType.LSM, expected_attach_type=A.LSM_MAC) is None
