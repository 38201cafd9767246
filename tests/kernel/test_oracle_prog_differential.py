"""PROG_LOAD and PROG_TEST_RUN through the kernel oracle (``testing.kernel.kernel_bpf``)
take the same attr records as :func:`pyebpf.bpf` and answer in the same shape: a
``LoadedFd`` with the log, a ``TestRunResult``, or a BpfError with the errno.

Each case runs one tc program on both sides with one choice of output buffers
(pyebpf-provided, the caller's bytearray, NULL, caps that cut) and compares
everything the result carries.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, ProgType, VerifierError, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.isa.asm import assemble
from pyebpf.runtime import Runtime
from pyebpf.testing.kernel import kernel_bpf

pytestmark = pytest.mark.kernel

#: r0 = skb->len; then the first packet byte is set to 0xab.
SOURCE = """
ldxw %r0, [%r1+0]
ldxw %r2, [%r1+76]
ldxw %r3, [%r1+80]
mov %r4, %r2
add %r4, 1
jgt %r4, %r3, exit
stb [%r2+0], 0xab
exit
"""
SKB_CTX_SIZE = 192

CASES: dict[str, dict[str, Any]] = {
    "auto_outputs": {},
    "auto_data_capped_is_enospc": {"data_size_out": 10},
    "auto_data_room_enough": {"data_size_out": 100},
    "caller_data_buffer": {"data_out": bytearray(128), "data_size_out": 128},
    "caller_data_buffer_too_small": {"data_out": bytearray(10), "data_size_out": 10},
    "null_data_out": {"data_out": None},
    "ctx_in_auto_ctx_out": {"ctx_in": bytes(SKB_CTX_SIZE)},
    "ctx_in_caller_ctx_out_too_small": {"ctx_in": bytes(SKB_CTX_SIZE),
                                        "ctx_out": bytearray(10), "ctx_size_out": 10},
    "ctx_out_without_size_is_einval": {"ctx_in": bytes(SKB_CTX_SIZE),
                                       "ctx_out": bytearray(10)},
    "ctx_out_only": {"ctx_out": bytearray(SKB_CTX_SIZE), "ctx_size_out": SKB_CTX_SIZE},
}


def _outcome(call: Any, attr: TestRunAttr) -> tuple[Any, ...]:
    try:
        r = call(Cmd.PROG_TEST_RUN, attr)
    except BpfError as e:
        partial = getattr(e, "result", None)
        cut = None if partial is None else (partial.data_out, partial.data_size_out)
        return ("error", e.errno, cut)
    return ("ok", r.retval, r.data_out, r.data_size_out, r.ctx_out, r.ctx_size_out)


def _copy(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: bytearray(v) if isinstance(v, bytearray) else v for k, v in kw.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_test_run_outputs_match_the_kernel(case: str) -> None:
    insns = assemble(SOURCE)
    load = ProgLoadAttr(prog_type=ProgType.SCHED_CLS, insns=insns, insn_cnt=len(insns),
                        license="GPL")
    rt = Runtime()

    def ours_bpf(cmd: int, attr: Any) -> Any:
        return bpf(cmd, attr, runtime=rt)

    ours_fd = ours_bpf(Cmd.PROG_LOAD, load)
    kernel_fd = kernel_bpf(Cmd.PROG_LOAD, load)
    try:
        packet = bytes(range(64))
        ours_kw, kernel_kw = _copy(CASES[case]), _copy(CASES[case])
        ours = _outcome(ours_bpf, TestRunAttr(prog_fd=ours_fd, data_in=packet, **ours_kw))
        kernel = _outcome(kernel_bpf, TestRunAttr(prog_fd=kernel_fd, data_in=packet,
                                                  **kernel_kw))
        assert ours == kernel
        # The caller's buffers were filled the same way.
        assert ours_kw == kernel_kw
    finally:
        os.close(kernel_fd)


def test_load_log_and_rejection_come_back_as_pyebpf_gives_them() -> None:
    good = assemble("mov %r0, 0\nexit")
    bad = assemble("exit")
    for insns, ok in ((good, True), (bad, False)):
        attr = ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insns=insns,
                            insn_cnt=len(insns), license="GPL", log_level=1, log_size=4096)
        if ok:
            fd = kernel_bpf(Cmd.PROG_LOAD, attr)
            ours = bpf(Cmd.PROG_LOAD, attr)
            os.close(fd)
            assert fd.log.startswith("processed 2 insns")
            assert ours.log.startswith("processed 2 insns")
        else:
            with pytest.raises(VerifierError) as kernel_err:
                kernel_bpf(Cmd.PROG_LOAD, attr)
            with pytest.raises(VerifierError) as ours_err:
                bpf(Cmd.PROG_LOAD, attr)
            assert kernel_err.value.errno == ours_err.value.errno
            assert "R0 !read_ok" in kernel_err.value.log
            assert "R0 !read_ok" in ours_err.value.log
