"""Global functions are verified once, from their BTF prototype (tests/data/elf/
global_func.o, src/global_func.c): what the kernel 6.18 says of each program,
checked line for line against it in tests/kernel/test_global_func_differential.py."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, VerifierError, bpf
from pyebpf.attr import BtfLoadAttr, ProgLoadAttr
from pyebpf.elf.loader import load_spec

OBJ = Path(__file__).parent.parent / "data" / "elf" / "global_func.o"


def load(name: str, log_level: int = 1, runtime: Runtime | None = None) -> Any:
    """PROG_LOAD of one program of global_func.o with its BTF and func_info."""
    spec = load_spec(OBJ)
    ps = spec.programs[name]
    rt = runtime or Runtime()
    btf_fd = bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=spec.btf.raw), runtime=rt)
    insns = bytes(ps.insns)
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.SOCKET_FILTER, insns=insns, insn_cnt=len(insns) // 8,
        license="GPL", log_level=log_level, log_size=1 << 20, prog_btf_fd=int(btf_fd),
        func_info=b"".join(struct.pack("<II", f.insn_off, f.type_id) for f in ps.func_info),
        func_info_cnt=len(ps.func_info), func_info_rec_size=8), runtime=rt)


def test_passing_program_logs_each_global_function_found_safe() -> None:
    log = load("checked").log
    assert log.splitlines() == [
        "Func#3 ('twice') is safe for any args that match its prototype",
        "processed 28 insns (limit 1000000) max_states_per_insn 0 total_states 3 "
        "peak_states 3 mark_read 0"]


def test_global_function_is_verified_with_a_maybe_null_pointer_argument() -> None:
    with pytest.raises(VerifierError) as err:
        load("unchecked")
    assert err.value.errno == 13
    assert err.value.log.splitlines()[:4] == [
        "Validating pair_sum_unchecked() func#1...",
        "7: R1=mem_or_null(id=1,sz=8) R10=fp0",
        "7: (61) r2 = *(u32 *)(r1 +0)",
        "R1 invalid mem access 'mem_or_null'"]


def test_call_with_a_scalar_for_the_ctx_argument_is_refused_at_the_call() -> None:
    with pytest.raises(VerifierError) as err:
        load("scalar_for_ctx")
    assert err.value.errno == 22
    assert str(err.value) == "[EINVAL] Caller passes invalid args into func#2 ('skb_len')"
    lines = err.value.log.splitlines()
    assert "Func#1 ('twice') is global and assumed valid." in lines
    assert lines[lines.index("Caller passes invalid args into func#2 ('skb_len')") - 1] == \
        "arg#0 expects pointer to ctx"


def test_global_function_result_is_an_unknown_scalar_at_level_2() -> None:
    log = load("checked", log_level=2).log
    # The caller's view of twice(5): R0 unknown, whatever the body returns.
    assert "13: (85) call pc+12\nFunc#3 ('twice') is global and assumed valid.\n" \
        "14: R0=scalar()\n" in log
    assert "Validating twice() func#3...\n26: R1=scalar() R10=fp0\n" in log


def test_passing_program_runs_with_the_global_functions() -> None:
    rt = Runtime()
    fd = load("checked", runtime=rt)
    from pyebpf.attr import TestRunAttr

    res = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=int(fd), data_in=bytes(64)), runtime=rt)
    assert res.retval == 7 + 50 + 10  # skb->len: the 64 bytes less the Ethernet header


def test_without_func_info_every_function_is_verified_inline() -> None:
    spec = load_spec(OBJ)
    insns = bytes(spec.programs["unchecked"].insns)
    # No BTF: no linkage known, so the callee is checked with the caller's pointer.
    try:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insns=insns,
                                        insn_cnt=len(insns) // 8, license="GPL"),
            runtime=Runtime())
    except BpfError as e:  # pragma: no cover - a failure shows the log
        raise AssertionError(getattr(e, "log", str(e))) from e
