"""Task kfuncs: KF_ACQUIRE / KF_RELEASE / KF_RET_NULL / KF_RCU, and bpf_get_current_task_btf.

Expected lines are Linux 6.18's for the same bytes (a task iterator program);
the ``kernel`` test checks them against the running kernel.
"""

from __future__ import annotations

import pytest

from iters._iter import load_iter
from pyebpf import Runtime, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.btf import BtfKind
from pyebpf.errors import BpfError
from pyebpf.isa.insn import Insn as I
from pyebpf.kernel_btf import kernel_btf, kernel_struct_id
from pyebpf.kfuncs import KF, kfunc_by_name
from pyebpf.kfuncs.task import BTF_ID_ACQUIRE, BTF_ID_FROM_PID, BTF_ID_RELEASE
from pyebpf.links.iter import SimTask, set_tasks
from pyebpf.uapi import AttachType, Cmd, ProgType

X = [I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)]
ACQ, REL = I(0x85, 0, 2, 0, BTF_ID_ACQUIRE), I(0x85, 0, 2, 0, BTF_ID_RELEASE)
CUR = I(0x85, 0, 0, 0, 158)  # bpf_get_current_task_btf
R1_R0, R1_R6 = I(0xBF, 1, 0, 0, 0), I(0xBF, 1, 6, 0, 0)

#: name -> (program, the kernel's error line or None when accepted).
CASES: dict[str, tuple[list[I], str | None]] = {
    "acquire_release": ([CUR, R1_R0, ACQ, I(0x15, 0, 0, 2, 0), R1_R0, REL, *X], None),
    "leak": ([CUR, R1_R0, ACQ, *X],
             "BPF_EXIT instruction in main prog would lead to reference leak"),
    "release_maybe_null": ([CUR, R1_R0, ACQ, R1_R0, REL, *X],
                           "Possibly NULL pointer passed to trusted arg0"),
    "release_unreferenced": ([CUR, R1_R0, REL, *X], "release kernel function "
                             "bpf_task_release expects refcounted PTR_TO_BTF_ID"),
    "acquire_null": ([I(0xB7, 1, 0, 0, 0), ACQ, *X],
                     "Possibly NULL pointer passed to trusted arg0"),
    "acquire_ctx": ([ACQ, *X], "arg#0 pointer type STRUCT task_struct must point to scalar, "
                    "or struct with scalar"),
    "acquire_other_struct": ([I(0x79, 2, 1, 0, 0), I(0x79, 1, 2, 0, 0), ACQ,
                              I(0x15, 0, 0, 2, 0), R1_R0, REL, *X],
                             "kernel function bpf_task_acquire args#0 expected pointer to "
                             "STRUCT task_struct but R1 has a pointer to STRUCT seq_file"),
    "double_release": ([CUR, R1_R0, ACQ, I(0x15, 0, 0, 5, 0), I(0xBF, 6, 0, 0, 0), R1_R0, REL,
                        R1_R6, REL, *X], "arg#0 pointer type STRUCT task_struct must point "
                       "to scalar, or struct with scalar"),
    "use_after_release": ([CUR, R1_R0, ACQ, I(0x15, 0, 0, 5, 0), I(0xBF, 6, 0, 0, 0), R1_R0,
                           REL, I(0x61, 0, 6, 0, 0), I(0x95, 0, 0, 0, 0), *X],
                          "R6 invalid mem access 'scalar'"),
    "read_acquired": ([CUR, R1_R0, ACQ, I(0x15, 0, 0, 6, 0), I(0x61, 6, 0, 0, 0), R1_R0, REL,
                       I(0xBF, 0, 6, 0, 0), I(0x57, 0, 0, 0, 1), I(0x95, 0, 0, 0, 0), *X],
                      None),
    "from_pid": ([I(0xB7, 1, 0, 0, 1), I(0x85, 0, 2, 0, BTF_ID_FROM_PID),
                  I(0x15, 0, 0, 2, 0), R1_R0, REL, *X], None),
    "release_with_offset": ([CUR, R1_R0, ACQ, I(0x15, 0, 0, 3, 0), R1_R0, I(0x07, 1, 0, 0, 8),
                             REL, *X], "R1 must have zero offset when passed to release func "
                            "or trusted arg to kfunc"),
    "acquire_ctx_task": ([I(0x79, 1, 1, 8, 0), I(0x15, 1, 0, 4, 0), ACQ, I(0x15, 0, 0, 2, 0),
                          R1_R0, REL, *X], None),
}


def _error_line(log: str) -> str:
    lines = [ln for ln in log.strip().split("\n") if not ln.startswith("processed ")]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_and_message(name: str) -> None:
    prog, expected = CASES[name]
    rt = Runtime()
    rt.verifier = "kernel"
    try:
        load_iter(rt, prog)
        got = None
    except BpfError as e:
        got = _error_line(getattr(e, "log", ""))
    assert got == expected


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_agrees(name: str) -> None:
    from kfuncs._kprog import _vmlinux, kernel_load

    vmlinux = _vmlinux()
    func = vmlinux.find("bpf_iter_task", BtfKind.FUNC) if vmlinux is not None else None
    if func is None:
        pytest.skip("no vmlinux BTF")
    prog, expected = CASES[name]
    r = kernel_load(prog, prog_type=ProgType.TRACING,
                    expected_attach_type=AttachType.TRACE_ITER, attach_btf_id=func.id)
    assert (None if r.accepted else _error_line(r.log)) == expected


def test_flags_are_the_kernels() -> None:
    acquire, release = kfunc_by_name("bpf_task_acquire"), kfunc_by_name("bpf_task_release")
    assert acquire is not None and release is not None
    assert acquire.flags == KF.ACQUIRE | KF.RCU | KF.RET_NULL
    assert release.flags == KF.RELEASE


def _xdp_run(rt: Runtime, prog: list[I]) -> int:
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.XDP, insns=prog, license="GPL"),
             runtime=rt)
    return bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(64), repeat=1),
               runtime=rt).retval


def test_current_task_btf_reads_the_runtime_pid() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    rt.pid = 31337
    pid_off = kernel_btf().offsetof(kernel_struct_id("task_struct"), "pid")
    assert _xdp_run(rt, [CUR, I(0x61, 0, 0, pid_off, 0), I(0x95, 0, 0, 0, 0)]) == 31337


def test_task_from_pid_finds_the_simulated_task_or_null() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    set_tasks(rt, [SimTask(1, 1, "init"), SimTask(99, 90, "worker")])
    tgid_off = kernel_btf().offsetof(kernel_struct_id("task_struct"), "tgid")

    def tgid_of(pid: int) -> int:
        # t = bpf_task_from_pid(pid); if (!t) return 7777; r = t->tgid; release(t); return r
        return _xdp_run(rt, [I(0xB7, 1, 0, 0, pid), I(0x85, 0, 2, 0, BTF_ID_FROM_PID),
                             I(0x55, 0, 0, 2, 0), I(0xB7, 0, 0, 0, 7777), I(0x95, 0, 0, 0, 0),
                             I(0x61, 6, 0, tgid_off, 0), R1_R0, REL, I(0xBF, 0, 6, 0, 0),
                             I(0x95, 0, 0, 0, 0)])

    assert (tgid_of(99), tgid_of(1), tgid_of(5)) == (90, 1, 7777)


def test_generic_kfuncs_are_not_offered_to_socket_filters() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(BpfError) as exc:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER,
                                        insns=[I(0xB7, 1, 0, 0, 1),
                                               I(0x85, 0, 2, 0, BTF_ID_FROM_PID), *X],
                                        license="GPL", log_level=1, log_size=4096), runtime=rt)
    assert exc.value.errno == 13
    assert "calling kernel function bpf_task_from_pid is not allowed" in exc.value.log
