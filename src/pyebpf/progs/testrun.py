"""What every BPF_PROG_TEST_RUN shares (net/bpf/test_run.c).

``bpf_test_init`` (copy data_in into a buffer with head- and tailroom),
``bpf_ctx_init`` / ``bpf_ctx_finish`` (the optional ctx_in/ctx_out struct),
``bpf_test_run`` (repeat, the average duration) and ``bpf_test_finish``
(data_out, truncated with ENOSPC when it doesn't fit). A result that ends in
ENOSPC is still delivered: the BpfError carries it as ``.result``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..attr import LOG_BUF_AUTO, TestRunAttr, UserPtr
from ..errors import BpfError
from ..syscall import _copy_out, copy_from_user

if TYPE_CHECKING:
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["ETH_HLEN", "PAGE_SIZE", "check_test_attr", "ctx_finish", "ctx_init", "data_in",
           "run_repeat", "test_finish"]

ETH_HLEN = 14
PAGE_SIZE = 4096


def _given(buf: Any) -> bool:
    """Whether a caller passed a buffer (AUTO counts as given: pyebpf provides one)."""
    return buf is not None


def check_test_attr(attr: TestRunAttr) -> None:
    """bpf_prog_test_run's own checks: ctx sizes and pointers come together."""
    ctx_in_size = attr.ctx_size_in if attr.ctx_size_in is not None else (
        len(attr.ctx_in) if isinstance(attr.ctx_in, bytes | bytearray) else 0)
    if bool(ctx_in_size) != _given(attr.ctx_in):
        raise BpfError(errno.EINVAL, "ctx_size_in and ctx_in must be given together")
    out_given = _given(attr.ctx_out) and attr.ctx_out is not LOG_BUF_AUTO
    if attr.ctx_out is LOG_BUF_AUTO:
        return
    if bool(attr.ctx_size_out) != out_given:
        raise BpfError(errno.EINVAL, "ctx_size_out and ctx_out must be given together")


def data_in(rt: Runtime, attr: TestRunAttr) -> bytes:
    """The packet bytes the caller passed (data_size_in of them)."""
    size = attr.data_size_in
    if size is None:
        size = len(attr.data_in) if isinstance(attr.data_in, bytes | bytearray) else 0
    return copy_from_user(rt, attr.data_in, size) if size else b""


def ctx_init(rt: Runtime, attr: TestRunAttr, max_size: int) -> bytearray | None:
    """bpf_ctx_init: None when neither ctx_in nor ctx_out is given; else the
    ctx_in bytes (zero-padded to ``max_size``); a longer ctx_in must be zero past
    ``max_size`` (E2BIG)."""
    if attr.ctx_in is None and attr.ctx_out in (None, LOG_BUF_AUTO):
        return None
    data = bytearray(max_size)
    if attr.ctx_in is not None:
        size = attr.ctx_size_in if attr.ctx_size_in is not None else len(attr.ctx_in)
        raw = copy_from_user(rt, attr.ctx_in, size)
        if len(raw) > max_size and any(raw[max_size:]):
            raise BpfError(errno.E2BIG, f"ctx_in has non-zero bytes past the {max_size}-byte "
                           "ctx struct")
        data[: min(size, max_size)] = raw[:max_size]
    return data


def run_repeat(rt: Runtime, prog: BpfProg, ctx_addr: int, repeat: int) -> tuple[int, int]:
    """bpf_test_run: run ``repeat`` times (0 means once); (r0 as u32, mean ns per run)."""
    from ..maps.cgroup_storage import test_run_storages

    repeat = max(repeat, 1)
    start = rt.clock.ns
    r0 = 0
    with test_run_storages(prog):  # the cgroup storages the run gets (bpf_test_run)
        for _ in range(repeat):
            r0 = prog.run(ctx_addr)
    duration = (rt.clock.ns - start) // repeat
    return r0 & 0xFFFF_FFFF, duration


def test_finish(rt: Runtime, attr: TestRunAttr, result: TestRunResult) -> TestRunResult:
    """bpf_test_finish: deliver data_out (cut to data_size_out: ENOSPC) and the result."""
    data = result.data_out or b""
    size = len(data)
    copy = data
    err = 0
    if attr.data_size_out and size > attr.data_size_out:
        copy = data[: attr.data_size_out]
        err = errno.ENOSPC
    out: bytes | None = None
    if isinstance(attr.data_out, UserPtr):
        _copy_out(rt, attr.data_out, copy)
    elif isinstance(attr.data_out, bytearray):
        attr.data_out[: len(copy)] = copy
    elif attr.data_out is LOG_BUF_AUTO or attr.data_size_out:
        out = copy
    from ..prog import TestRunResult

    final = TestRunResult(retval=result.retval, duration=result.duration, data_out=out,
                          data_size_out=size, ctx_out=result.ctx_out,
                          ctx_size_out=result.ctx_size_out)
    if err:
        exc = BpfError(err, f"data_out needs {size} bytes, data_size_out is {attr.data_size_out}")
        exc.result = final  # type: ignore[attr-defined]
        raise exc
    return final


def ctx_finish(rt: Runtime, attr: TestRunAttr, ctx: bytes | None) -> tuple[bytes | None, int]:
    """bpf_ctx_finish: the ctx bytes to return (cut to ctx_size_out: ENOSPC)."""
    if ctx is None or attr.ctx_out is None:
        return None, 0
    size = len(ctx)
    if attr.ctx_out is LOG_BUF_AUTO:
        return bytes(ctx), size
    copy = ctx[: attr.ctx_size_out] if size > attr.ctx_size_out else ctx
    if isinstance(attr.ctx_out, UserPtr):
        _copy_out(rt, attr.ctx_out, bytes(copy))
    elif isinstance(attr.ctx_out, bytearray):
        attr.ctx_out[: len(copy)] = copy
    if size > attr.ctx_size_out:
        raise BpfError(errno.ENOSPC, f"ctx_out needs {size} bytes, ctx_size_out is "
                       f"{attr.ctx_size_out}")
    return bytes(copy), size
