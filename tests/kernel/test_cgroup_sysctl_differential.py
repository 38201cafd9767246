"""CGROUP_SYSCTL helpers and cgroup retvals on pyebpf and on the real kernel.

The kernel side attaches the programs to a fresh cgroup v2 directory and makes
a forked child of that cgroup read or write ``/proc/sys/kernel/domainname`` in
a UTS namespace of its own (tests/helpers/sysctl_scenarios.py); pyebpf fires
the same access with :meth:`Cgroup.sysctl`. Both must report the same helper
results, the same bytes in the program's buffers, the same errno for the
access and the same value in the sysctl afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from helpers import sysctl_scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from pyebpf.errors import BpfError

from .harness import STEPS

pytestmark = pytest.mark.kernel

F_NAME, F_CUR, F_NEW, F_SET = S.F_GET_NAME, S.F_GET_CUR, S.F_GET_NEW, S.F_SET_NEW


def _cgroup_v2() -> bool:
    return any(os.path.isfile(os.path.join(r, "cgroup.procs"))
               for r in (S.KernelSysctlSide.ROOT, "/sys/fs/cgroup"))


def same(scenario: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    if not _cgroup_v2():
        pytest.skip("no cgroup v2 hierarchy to attach sysctl programs to")
    with open(f"/proc/sys/{S.SYSCTL}", "rb") as f:
        current = f.read()
    got = []
    for make in (S.KernelSysctlSide, lambda: S.PySysctlSide(current)):
        side = make()
        try:
            got.append(scenario(side, *args, **kw))
        except BpfError as e:  # a load refused on both sides is also an answer
            got.append(("BpfError", e.errno))
        finally:
            side.close()
    STEPS[0] += 1
    kernel, ours = got
    assert ours == kernel, f"pyebpf {ours!r} != kernel {kernel!r}"
    return kernel


# -- bpf_sysctl_get_name: every buffer size around the name, both flags ------------------------
@pytest.mark.parametrize("size", [1, 2, 6, 7, 8, 9, 15, 16, 17, 18, 24, 40])
@pytest.mark.parametrize("flags", [0, 1, 2], ids=["full", "base_name", "unknown_flag"])
def test_get_name(size: int, flags: int) -> None:
    same(S.helper_call, F_NAME, size, flags)


# -- current and new values ----------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 6, 7, 8, 16])
def test_get_current_value(size: int) -> None:
    same(S.helper_call, F_CUR, size)


@pytest.mark.parametrize("size", [1, 3, 4, 5, 16])
@pytest.mark.parametrize("write", [None, b"abcd"], ids=["read", "write"])
def test_get_new_value(size: int, write: bytes | None) -> None:
    same(S.helper_call, F_NEW, size, write=write)


@pytest.mark.parametrize("case", [
    dict(size=3, prefill=b"xyz"),                       # replaces the value
    dict(size=8, prefill=b"ab\0cdefg"),                 # a NUL in the new value
    dict(size=4, prefill=b"xyz\n"),
    dict(size=3, prefill=b"xyz", ret=0),                # denied: EPERM, nothing applied
    dict(size=3, prefill=b"xyz", retval=1),             # positive retval: no handler
    dict(size=3, prefill=b"xyz", retval=-13),           # EACCES
    dict(size=4095, prefill=b"q" * 4095),               # the largest new value
    dict(size=4096, prefill=b"q" * 4096),               # E2BIG
    dict(size=3, prefill=b"xyz", write=None),           # a read: EINVAL
], ids=lambda c: ",".join(f"{k}={v!r}"[:24] for k, v in c.items()))
def test_set_new_value(case: dict[str, Any]) -> None:
    kw = {"write": b"abc", **case}
    size = kw.pop("size")
    same(S.helper_call, F_SET, size, **kw)


# -- retval through the program array ------------------------------------------------------------
@pytest.mark.parametrize("steps", [
    [(1, None), (1, None)],
    [(0, None), (1, None)],                 # the second program sees -EPERM
    [(0, None), (1, 0)],                    # ... and clears it: the write goes through
    [(1, -13)],                             # EACCES though the program allowed it
    [(0, -13), (1, None)],                  # an error retval survives a 0
    [(0, -2000000)],                        # not an errno: a 0 turns it into -EPERM
    [(1, 7), (1, None)],                    # positive retval: the write "returns" 7
], ids=str)
@pytest.mark.parametrize("write", [None, b"zz"], ids=["read", "write"])
def test_retval_chain(steps: list[tuple[int, int | None]], write: bytes | None) -> None:
    same(S.retval_chain, steps, write)
