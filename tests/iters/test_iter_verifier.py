"""The verifier on iterator programs: ctx, kernel structs, buffers, return value.

Each case's expected line is what Linux 6.18 says (None: accepted); the
``kernel`` test checks the same bytes against the running kernel.
"""

from __future__ import annotations

import pytest

from pyebpf import Runtime
from pyebpf.btf import BtfKind
from pyebpf.errors import BpfError
from pyebpf.isa.insn import Insn as I
from pyebpf.uapi import AttachType, ProgType

from ._iter import load_iter

X = [I(0x95, 0, 0, 0, 0)]
R0_0 = I(0xB7, 0, 0, 0, 0)

#: name -> (target, program, the kernel's error line or None when accepted).
CASES: dict[str, tuple[str, list[I], str | None]] = {
    "task_may_be_null": ("task", [I(0x79, 0, 1, 8, 0), I(0x61, 0, 0, 0, 0), *X],
                         "R0 invalid mem access 'trusted_ptr_or_null_'"),
    "return_2": ("task", [I(0xB7, 0, 0, 0, 2), *X],
                 "At program exit the register R0 has smin=2 smax=2 should have been in "
                 "[0, 1]"),
    "return_1": ("task", [I(0xB7, 0, 0, 0, 1), *X], None),
    "ctx_write": ("task", [I(0x7B, 1, 1, 8, 0), R0_0, *X],
                  "invalid bpf_context access off=8 size=8"),
    "ctx_past_args": ("task", [I(0x79, 0, 1, 16, 0), R0_0, *X],
                      "invalid bpf_context access off=16 size=8"),
    "ctx_narrow": ("task", [I(0x61, 0, 1, 8, 0), R0_0, *X],
                   "invalid bpf_context access off=8 size=4"),
    "key_write": ("bpf_map_elem", [I(0x79, 2, 1, 16, 0), I(0x15, 2, 0, 1, 0),
                                   I(0x62, 2, 0, 0, 1), R0_0, *X],
                  "R2 cannot write into rdonly_buf"),
    "key_negative": ("bpf_map_elem", [I(0x79, 2, 1, 16, 0), I(0x15, 2, 0, 1, 0),
                                      I(0x61, 3, 2, -4, 0), R0_0, *X],
                     "R2 invalid rdonly buffer access: off=-4, size=4"),
    "value_read_write": ("bpf_map_elem", [I(0x79, 2, 1, 24, 0), I(0x15, 2, 0, 2, 0),
                                          I(0x79, 3, 2, 0, 0), I(0x7B, 2, 3, 8, 0), R0_0, *X],
                         None),
    "meta_write": ("task", [I(0x79, 2, 1, 0, 0), I(0x7A, 2, 0, 8, 1), R0_0, *X],
                   "only read is supported"),
    "meta_beyond": ("task", [I(0x79, 2, 1, 0, 0), I(0x79, 3, 2, 24, 0), R0_0, *X],
                    "access beyond struct bpf_iter_meta at off 24 size 8"),
    "seq_num": ("task", [I(0x79, 2, 1, 0, 0), I(0x79, 0, 2, 16, 0), I(0x57, 0, 0, 0, 1), *X],
                None),
}


def _error_line(log: str) -> str:
    lines = [ln for ln in log.strip().split("\n") if not ln.startswith("processed ")]
    return lines[-1] if lines else ""


def pyebpf_verdict(target: str, prog: list[I]) -> str | None:
    rt = Runtime()
    rt.verifier = "kernel"
    try:
        load_iter(rt, prog, target)
    except BpfError as e:
        return _error_line(getattr(e, "log", ""))
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_and_message(name: str) -> None:
    target, prog, expected = CASES[name]
    assert pyebpf_verdict(target, prog) == expected


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_agrees(name: str) -> None:
    from kfuncs._kprog import _vmlinux, kernel_load

    vmlinux = _vmlinux()
    if vmlinux is None:
        pytest.skip("no vmlinux BTF")
    target, prog, expected = CASES[name]
    func = vmlinux.find(f"bpf_iter_{target}", BtfKind.FUNC)
    assert func is not None
    r = kernel_load(prog, prog_type=ProgType.TRACING,
                    expected_attach_type=AttachType.TRACE_ITER, attach_btf_id=func.id)
    assert (None if r.accepted else _error_line(r.log)) == expected


def test_sleepable_iterator_is_accepted() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    assert load_iter(rt, [R0_0, *X], prog_flags=16) > 0


def test_iterator_needs_a_known_target() -> None:
    from pyebpf import bpf
    from pyebpf.attr import ProgLoadAttr
    from pyebpf.uapi import Cmd

    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(BpfError) as exc:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.TRACING, insns=[R0_0, *X],
                                        license="GPL", expected_attach_type=AttachType.TRACE_ITER,
                                        log_level=1, log_size=4096), runtime=rt)
    assert exc.value.errno == 22
    assert "Tracing programs must provide btf_id" in getattr(exc.value, "log", "")
