"""CGROUP_SYSCTL helpers and the sysctl hook (pyebpf.helpers.sysctl): the values the
6.18 kernel gives, pinned without a kernel (tests/kernel/test_cgroup_sysctl_differential.py
runs the same scenarios on both)."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from pyebpf.errors import BpfError
from pyebpf.helpers import func_proto
from pyebpf.helpers.sysctl import SysctlKern, sysctl_name
from pyebpf.isa.asm import asm
from pyebpf.uapi import AttachType, ProgType

from . import sysctl_scenarios as S

CURRENT = b"(none)\n"


@pytest.fixture
def side() -> Iterator[S.PySysctlSide]:
    s = S.PySysctlSide(CURRENT)
    try:
        yield s
    finally:
        s.close()


def test_get_name_is_the_path_under_proc_sys(side: S.PySysctlSide) -> None:
    r0, buf, _ = S.helper_call(side, S.F_GET_NAME, 24, 0)
    assert r0 == 17
    # strscpy stores the word holding the NUL whole: zeros up to offset 23
    assert buf == b"kernel/domainname" + bytes(6) + b"\xaa"


def test_get_name_base_name_flag_is_the_procname(side: S.PySysctlSide) -> None:
    r0, buf, _ = S.helper_call(side, S.F_GET_NAME, 24, 1)
    assert (r0, buf[:16]) == (10, b"domainname" + bytes(6))


def test_get_name_truncates_with_e2big_and_a_nul(side: S.PySysctlSide) -> None:
    r0, buf, _ = S.helper_call(side, S.F_GET_NAME, 9, 0)
    assert (r0, buf) == (-errno.E2BIG, b"kernel/d\0")


@pytest.mark.parametrize(("size", "expect"), [
    (1, (-errno.E2BIG, b"\0")),
    (7, (-errno.E2BIG, b"kernel\0")),   # no room for the "/": the dir, then E2BIG
    (8, (-errno.E2BIG, b"kernel/\0")),
    (18, (17, b"kernel/domainname\0")),
])
def test_name_copy_at_the_edges(size: int, expect: tuple[int, bytes]) -> None:
    buf = bytearray(b"\xaa" * size)
    ret = sysctl_name(SysctlKern(name="kernel/domainname", write=0), buf, 0)
    assert (ret, bytes(buf)) == expect


def test_get_current_value_is_the_handler_text_zero_padded(side: S.PySysctlSide) -> None:
    r0, buf, _ = S.helper_call(side, S.F_GET_CUR, 10)
    assert (r0, buf) == (7, b"(none)\n\0\0\0")


def test_get_current_value_exactly_fitting_is_e2big(side: S.PySysctlSide) -> None:
    r0, buf, _ = S.helper_call(side, S.F_GET_CUR, 7)
    assert (r0, buf) == (-errno.E2BIG, b"(none)\0")


def test_get_current_value_without_a_value_is_einval_and_zeroes() -> None:
    s = S.PySysctlSide(CURRENT)
    try:
        m = s.map(16)
        s.put(m, b"\xaa" * 16)
        s.attach(s.load(S.helper_call_prog(m, S.F_GET_CUR, 8)))
        s.cg.sysctl(S.SYSCTL, current=None)  # the proc_handler failed
        assert s.get(m, 16) == (-errno.EINVAL & (1 << 64) - 1).to_bytes(8, "little") + bytes(8)
    finally:
        s.close()


def test_get_new_value_on_a_read_is_einval_and_zeroes(side: S.PySysctlSide) -> None:
    r0, buf, _ = S.helper_call(side, S.F_GET_NEW, 4)
    assert (r0, buf) == (-errno.EINVAL, bytes(4))


def test_get_new_value_on_a_write_is_what_is_written(side: S.PySysctlSide) -> None:
    r0, buf, _ = S.helper_call(side, S.F_GET_NEW, 6, write=b"abcd")
    assert (r0, buf) == (4, b"abcd\0\0")


def test_set_new_value_replaces_the_value_written(side: S.PySysctlSide) -> None:
    r0, _, outcome = S.helper_call(side, S.F_SET_NEW, 3, write=b"abc", prefill=b"xyz")
    assert (r0, outcome) == (0, (0, b"xyz"))


def test_set_new_value_keeps_nul_bytes() -> None:
    s = S.PySysctlSide(CURRENT)
    try:
        m = s.map(8 + 4)
        s.put(m, bytes(8) + b"x\0yz")
        s.attach(s.load(S.helper_call_prog(m, S.F_SET_NEW, 4)))
        assert s.cg.sysctl(S.SYSCTL, write=True, value=b"abc").value == b"x\0yz"
    finally:
        s.close()


def test_set_new_value_on_a_read_is_einval(side: S.PySysctlSide) -> None:
    r0, _, outcome = S.helper_call(side, S.F_SET_NEW, 3, prefill=b"xyz")
    assert (r0, outcome) == (-errno.EINVAL, (0, b"(none)"))


def test_set_new_value_on_an_empty_write_is_einval(side: S.PySysctlSide) -> None:
    r0, _, _ = S.helper_call(side, S.F_SET_NEW, 3, write=b"", prefill=b"xyz")
    assert r0 == -errno.EINVAL


def test_set_new_value_of_a_page_is_e2big(side: S.PySysctlSide) -> None:
    r0, _, outcome = S.helper_call(side, S.F_SET_NEW, 4096, write=b"abc", prefill=b"q" * 4096)
    assert (r0, outcome) == (-errno.E2BIG, (0, b"abc"))


def test_new_value_is_dropped_when_a_program_denies(side: S.PySysctlSide) -> None:
    _, _, outcome = S.helper_call(side, S.F_SET_NEW, 3, write=b"abc", prefill=b"xyz", ret=0)
    assert outcome == (errno.EPERM, b"(none)")


def test_positive_retval_skips_the_handler(side: S.PySysctlSide) -> None:
    m = side.map(8 + 3)
    side.put(m, bytes(8) + b"xyz")
    side.attach(side.load(S.helper_call_prog(m, S.F_SET_NEW, 3, retval=5)))
    res = side.cg.sysctl(S.SYSCTL, write=True, value=b"abc", current=CURRENT)
    assert (res.retval, res.value) == (5, None)


def test_file_pos_write_moves_the_position(side: S.PySysctlSide) -> None:
    side.attach(side.load(asm("stw [%r1+4], 3\nmov %r0, 1\nexit")))
    res = side.cg.sysctl(S.SYSCTL, write=True, value=b"abc", current=CURRENT, file_pos=0)
    assert (res.retval, res.file_pos, res.value) == (0, 3, b"abc")


def test_sysctl_helpers_are_offered_to_cgroup_sysctl_only() -> None:
    for fid in (S.F_GET_NAME, S.F_GET_CUR, S.F_GET_NEW, S.F_SET_NEW):
        assert func_proto(fid, ProgType.CGROUP_SYSCTL) is not None
        assert func_proto(fid, ProgType.CGROUP_SOCKOPT) is None
        assert func_proto(fid, ProgType.XDP) is None


def test_set_new_value_from_a_non_sysctl_program_is_refused(side: S.PySysctlSide) -> None:
    m = side.map(8 + 3)
    prog = S.helper_call_prog(m, S.F_SET_NEW, 3)
    with pytest.raises(BpfError) as e:
        side.be.load(prog, ProgType.CGROUP_SOCKOPT,
                     expected_attach_type=AttachType.CGROUP_SETSOCKOPT)
    assert e.value.errno == errno.EINVAL
    assert "cannot use helper bpf_sysctl_set_new_value#104" in str(e.value)
