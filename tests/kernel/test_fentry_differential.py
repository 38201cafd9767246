"""BTF-attached tracing programs on pyebpf and on the real kernel: the same clang
object (examples/fentry_trace.o, CO-RE-relocated against each side's own
vmlinux BTF) and the same hand-written programs, each side given its own
vmlinux id for ``attach_btf_id``.

Compared: verdicts, errnos and the verifier's reason for tp_btf programs (ctx
access through the tracepoint's prototype), RAW_TRACEPOINT_OPEN / LINK_CREATE
and BPF_PROG_TEST_RUN errnos, what the example's tp_btf program records when
the tracepoint fires (a fork on the kernel, fire_raw_tracepoint here), and
for fentry/fexit/fmod_ret/LSM programs the test-run retvals and global data.
Some kernels refuse trampoline programs outright (EPERM at PROG_LOAD, before
the verifier: a sandbox policy); those comparisons skip there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from pyebpf import load_object
from pyebpf.attr import (
    InfoByFdAttr,
    LinkCreateAttr,
    ProgLoadAttr,
    RawTracepointOpenAttr,
    TestRunAttr,
    UserPtr,
)
from pyebpf.btf import Btf, BtfKind
from pyebpf.collection import patch_map_refs, program_type
from pyebpf.elf.loader import load_spec
from pyebpf.errors import BpfError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import kernel_btf
from pyebpf.links.tracing import fire_raw_tracepoint
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.testing.kernel import kernel_bpf, kernel_close
from pyebpf.testing.kernel_prog import KernelCollection, kernel_test_run
from pyebpf.uapi import AttachType, Cmd, ProgLoadFlags, ProgType

from .harness import STEPS

pytestmark = pytest.mark.kernel

A = AttachType
EXAMPLE = Path(__file__).parents[2] / "examples" / "fentry_trace.o"
LOG_SIZE = 1 << 16
RET0 = "mov %r0, 0\nexit"
#: .bss offsets of the example's globals (llvm-objdump -t examples/fentry_trace.o).
BSS = {"entry_a": 0, "exit_a": 8, "exit_ret": 16, "calls": 32, "modret_value": 56,
       "fexit_modret_ret": 64, "parent_tgid": 80, "newtasks": 88, "child_pid": 96,
       "child_flags": 104}


@cache
def vmlinux() -> Btf:
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        return Btf.parse(f.read())


def kernel_id(name: str, kind: BtfKind = BtfKind.FUNC) -> int:
    t = vmlinux().find(name, kind)
    if t is None:
        pytest.skip(f"this kernel's BTF has no {name}")
    return t.id


def pyebpf_id(name: str, kind: BtfKind = BtfKind.FUNC) -> int:
    t = kernel_btf().find(name, kind)
    assert t is not None, name
    return t.id


def _mask(log: str) -> str:
    """A log with btf ids masked (each side names its own)."""
    return re.sub(r"btf_id \d+|attach_btf_id \d+", "<id>", log)


def _reason(log: str) -> str:
    """The verifier's reason: its last lines before the statistics, btf ids masked."""
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith(
        ("processed ", "verification time", "stack depth"))]
    return _mask("\n".join(lines[-2:]))


@dataclass
class Loaded:
    errno: int
    fd: int
    reason: str
    #: The whole log, btf ids masked.
    log: str = ""


class Side:
    """One bpf() implementation: PROG_LOAD with a log, attach, test run, close."""

    def __init__(self, kernel: bool) -> None:
        self.kernel = kernel
        self.rt = Runtime()
        self.fds: list[int] = []

    def btf_id(self, name: str, kind: BtfKind = BtfKind.FUNC) -> int:
        return kernel_id(name, kind) if self.kernel else pyebpf_id(name, kind)

    def call(self, cmd: int, attr: Any) -> Any:
        if self.kernel:
            return kernel_bpf(cmd, attr)
        return bpf(cmd, attr, runtime=self.rt)

    def load(self, insns: bytes, eat: int, target: str, *, prog_type: int = ProgType.TRACING,
             flags: int = 0, kind: BtfKind | None = None, level: int = 1) -> Loaded:
        kind = kind or (BtfKind.TYPEDEF if eat == A.TRACE_RAW_TP else BtfKind.FUNC)
        buf = ctypes.create_string_buffer(LOG_SIZE)
        log_buf = {"log_buf": UserPtr(ctypes.addressof(buf))} if self.kernel else {}
        attr = ProgLoadAttr(prog_type=prog_type, insns=insns, insn_cnt=len(insns) // 8,
                            license=b"GPL\0", expected_attach_type=eat,
                            attach_btf_id=self.btf_id(target, kind), prog_flags=flags,
                            log_level=level, log_size=LOG_SIZE, **log_buf)
        try:
            out = self.call(Cmd.PROG_LOAD, attr)
        except BpfError as e:
            log = buf.value.decode() if self.kernel else getattr(e, "log", "")
            return Loaded(e.errno or 0, -1, _reason(log), _mask(log))
        fd = int(out)
        self.fds.append(fd)
        return Loaded(0, fd, "", _mask(buf.value.decode() if self.kernel else out.log))

    def attempt(self, cmd: int, attr: Any) -> tuple[int, Any]:
        try:
            out = self.call(cmd, attr)
        except BpfError as e:
            return e.errno or 0, None
        if isinstance(out, int):
            self.fds.append(out)
        return 0, out

    def test_run(self, fd: int, flags: int = 0) -> tuple[int, int]:
        try:
            if self.kernel:
                return 0, kernel_test_run(fd, None, flags=flags).retval
            return 0, int(self.call(Cmd.PROG_TEST_RUN, TestRunAttr(
                prog_fd=fd, flags=flags)).retval)
        except BpfError as e:
            return e.errno or 0, 0

    def close(self) -> None:
        for fd in reversed(self.fds):
            if self.kernel:
                kernel_close(fd)
            else:
                self.rt.close(fd)
        self.fds.clear()


@pytest.fixture
def sides() -> Iterator[tuple[Side, Side]]:
    k, p = Side(True), Side(False)
    try:
        yield k, p
    finally:
        k.close()
        p.close()


@cache
def trampolines_allowed() -> bool:
    """Whether this kernel lets us load a fentry program at all (some sandboxes say
    EPERM before the verifier runs)."""
    k = Side(True)
    try:
        return k.load(encode(asm(RET0)), A.TRACE_FENTRY, "bpf_fentry_test1").errno != \
            errno.EPERM
    finally:
        k.close()


def need_trampolines() -> None:
    if not trampolines_allowed():
        pytest.skip("this kernel refuses fentry/fexit/fmod_ret/LSM programs here (EPERM)")


# -- tp_btf: the verifier ---------------------------------------------------------------------
TP_BTF_CASES = [
    ("task_newtask", "ldxdw %r2, [%r1+0]\nldxw %r0, [%r2+0]\n" + RET0),  # task->pid
    ("task_newtask", "ldxdw %r2, [%r1+8]\n" + RET0),  # clone_flags
    ("task_newtask", "ldxw %r2, [%r1+8]\n" + RET0),   # narrow read of a u64
    ("task_newtask", "ldxdw %r2, [%r1+16]\n" + RET0),  # past the arguments
    ("task_newtask", "ldxdw %r2, [%r1+24]\n" + RET0),  # past the return slot too
    ("task_newtask", "ldxw %r2, [%r1+0]\n" + RET0),    # a pointer, narrow
    ("task_newtask", "ldxw %r2, [%r1+4]\n" + RET0),    # not a multiple of 8
    ("task_newtask", "ldxdw %r2, [%r1+4]\n" + RET0),   # misaligned
    ("task_newtask", "stdw [%r1+0], 1\n" + RET0),       # a write
    ("task_newtask", "ldxdw %r2, [%r1+0]\nstw [%r2+0], 1\n" + RET0),  # write via BTF ptr
    ("task_newtask", "mov %r0, 1\nexit"),                # any return value
    ("sched_switch", "ldxdw %r2, [%r1+16]\nldxw %r0, [%r2+0]\nldxdw %r3, [%r1+24]\n" + RET0),
    ("sched_switch", "ldxdw %r2, [%r1+0]\n" + RET0),    # bool preempt
    ("sched_switch", "ldxw %r2, [%r1+24]\n" + RET0),    # unsigned int prev_state
    ("sched_switch", "ldxdw %r2, [%r1+32]\n" + RET0),
    ("sched_process_fork", "ldxdw %r2, [%r1+8]\nldxw %r0, [%r2+0]\n" + RET0),
    ("sched_wakeup", "ldxdw %r2, [%r1+8]\n" + RET0),
]


@pytest.mark.parametrize(("tp", "code"), TP_BTF_CASES)
def test_tp_btf_verdicts_agree(sides, tp, code) -> None:
    k, p = sides
    insns = encode(asm(code))
    got = [s.load(insns, A.TRACE_RAW_TP, f"btf_trace_{tp}") for s in (k, p)]
    STEPS[0] += 1
    assert (got[1].errno, got[1].reason) == (got[0].errno, got[0].reason)


@pytest.mark.parametrize(("tp", "code"), TP_BTF_CASES)
def test_tp_btf_level2_logs_agree(sides, tp, code) -> None:
    """The whole verifier log at level 2: states, the btf_ctx_access lines."""
    k, p = sides
    insns = encode(asm(code))
    got = [s.load(insns, A.TRACE_RAW_TP, f"btf_trace_{tp}", level=2) for s in (k, p)]
    STEPS[0] += 1
    assert got[1].log == got[0].log


@pytest.mark.parametrize(("eat", "target", "kind", "flags"), [
    (A.TRACE_RAW_TP, "bpf_fentry_test1", BtfKind.FUNC, 0),          # not a typedef
    (A.TRACE_RAW_TP, "btf_trace_task_newtask", BtfKind.TYPEDEF,
     ProgLoadFlags.SLEEPABLE),                                        # tp_btf can't sleep
    (A.TRACE_ITER, "btf_trace_task_newtask", BtfKind.TYPEDEF, 0),   # not a function
])
def test_attach_target_refusals_agree(sides, eat, target, kind, flags) -> None:
    k, p = sides
    insns = encode(asm(RET0))
    got = [s.load(insns, eat, target, kind=kind, flags=flags) for s in (k, p)]
    STEPS[0] += 1
    assert got[0].errno == errno.EINVAL
    assert (got[1].errno, got[1].reason) == (got[0].errno, got[0].reason)


def test_tp_btf_attach_and_test_run_agree(sides) -> None:
    k, p = sides
    results = []
    for s in (k, p):
        fd = s.load(encode(asm(RET0)), A.TRACE_RAW_TP, "btf_trace_task_newtask").fd
        named = s.attempt(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(
            prog_fd=fd, name=b"task_newtask\0"))[0]
        wrong = s.attempt(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd,
                                                          attach_type=A.TRACE_FENTRY))[0]
        err, link = s.attempt(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd,
                                                              attach_type=A.TRACE_RAW_TP))
        info = s.call(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=link))
        raw = s.attempt(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(prog_fd=fd))[0]
        results.append((named, wrong, err, info.type, raw, s.test_run(fd), s.test_run(fd, 1)))
    STEPS[0] += 1
    assert results[1] == results[0]
    assert results[0][5] == (errno.EFAULT, 0)


def test_iter_test_run_is_efault_on_both(sides) -> None:
    got = []
    for s in sides:
        fd = s.load(encode(asm(RET0)), A.TRACE_ITER, "bpf_iter_task").fd
        got.append(s.test_run(fd))
    STEPS[0] += 1
    assert got[1] == got[0] == (errno.EFAULT, 0)


# -- the example object -------------------------------------------------------------------------
class Example:
    """examples/fentry_trace.o on one side: its .bss and programs loaded by name."""

    def __init__(self, side: Side) -> None:
        self.side = side
        if side.kernel:
            self.spec = load_spec(EXAMPLE, target_btf=vmlinux())
            self.kc = KernelCollection.from_spec(self.spec, programs=[])
        else:
            self.coll = load_object(EXAMPLE, runtime=side.rt, target_btf=kernel_btf(),
                                    programs=[])
            self.spec = self.coll.spec

    def bss_fd(self) -> int:
        return self.kc.maps[".bss"].fd if self.side.kernel else self.coll.maps[".bss"].fd

    def bss(self) -> bytes:
        if self.side.kernel:
            return self.kc.maps[".bss"].lookup(bytes(4))
        return self.coll.maps[".bss"].lookup(0)

    def set(self, name: str, value: int, fmt: str = "<I") -> None:
        raw = bytearray(self.bss())
        struct.pack_into(fmt, raw, BSS[name], value)
        if self.side.kernel:
            self.kc.maps[".bss"].update(bytes(4), bytes(raw))
        else:
            self.coll.maps[".bss"].update(0, bytes(raw))

    def get(self, name: str, fmt: str = "<Q") -> int:
        return int(struct.unpack_from(fmt, self.bss(), BSS[name])[0])

    def load(self, name: str) -> Loaded:
        ps = self.spec.program(name)
        ptype, eat = program_type(ps, {})
        prefix = {A.TRACE_RAW_TP: "btf_trace_", A.LSM_MAC: "bpf_lsm_"}.get(eat, "")
        insns = patch_map_refs(ps, {".bss": self.bss_fd()})
        return self.side.load(insns, eat, prefix + ps.attach_to, prog_type=int(ptype),
                              flags=ps.prog_flags)

    def close(self) -> None:
        if self.side.kernel:
            self.kc.close()
        else:
            self.coll.close()


@pytest.fixture
def examples(sides) -> Iterator[tuple[Example, Example]]:
    got = (Example(sides[0]), Example(sides[1]))
    try:
        yield got
    finally:
        for e in got:
            e.close()


def test_tp_btf_program_records_the_same_fork(examples) -> None:
    """The kernel's task_newtask fires when this process forks; pyebpf's fires with
    the child's pid and the clone flags the kernel saw: the programs agree."""
    kx, px = examples
    tgid = os.getpid()
    for ex in examples:
        assert ex.load("newtask").errno == 0
        ex.set("parent_tgid", tgid)
        ex.side.attempt(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(
            prog_fd=ex.side.fds[-1]))
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    assert kx.get("newtasks") >= 1 and kx.get("child_pid") == child
    px.side.rt.tgid = tgid
    task = __import__("pyebpf.kernel_btf", fromlist=["KernelObject"]).KernelObject(
        px.side.rt, "task_struct", pid=child)
    fire_raw_tracepoint(px.side.rt, "task_newtask", task.addr, kx.get("child_flags"))
    STEPS[0] += 1
    assert [px.get(n) for n in ("newtasks", "child_pid", "child_flags")] == \
        [1, child, kx.get("child_flags")]


FENTRY_PROGS = ("entry1", "exit1", "modret", "modret_exit")


def test_fentry_programs_test_run_the_same(examples) -> None:
    need_trampolines()
    results = []
    for ex in examples:
        fds = {n: ex.load(n) for n in FENTRY_PROGS}
        assert all(x.errno == 0 for x in fds.values()), fds
        for x in fds.values():
            assert ex.side.attempt(Cmd.RAW_TRACEPOINT_OPEN,
                                   RawTracepointOpenAttr(prog_fd=x.fd))[0] == 0
        runs = [ex.side.test_run(fds["entry1"].fd), ex.side.test_run(fds["modret"].fd)]
        ex.set("modret_value", 2**32 - 9)  # fmod_ret returns -9 from now on
        runs += [ex.side.test_run(fds["modret"].fd), ex.side.test_run(fds["exit1"].fd)]
        results.append((runs, [ex.get(n) for n in ("entry_a", "exit_a", "exit_ret", "calls")],
                        ex.get("fexit_modret_ret", "<i")))
    STEPS[0] += 1
    assert results[1] == results[0]


@pytest.mark.parametrize(("prog_type", "eat", "target", "code"), [
    (ProgType.TRACING, A.MODIFY_RETURN, "bpf_fentry_test2", RET0),  # not modifiable
    (ProgType.TRACING, A.TRACE_FENTRY, "bpf_fentry_test1", "mov %r0, 1\nexit"),
    (ProgType.TRACING, A.TRACE_FENTRY, "bpf_fentry_test1", "ldxdw %r2, [%r1+8]\n" + RET0),
    (ProgType.TRACING, A.TRACE_FEXIT, "bpf_fentry_test1", "ldxdw %r2, [%r1+8]\n" + RET0),
    (ProgType.TRACING, A.TRACE_FENTRY, "bpf_fentry_test8", "ldxw %r2, [%r1+0]\n" + RET0),
    (ProgType.LSM, A.LSM_MAC, "bpf_lsm_file_open", "mov %r0, 1\nexit"),  # LSM: 0 or -errno
    (ProgType.LSM, A.LSM_MAC, "bpf_lsm_file_open", "ldxdw %r0, [%r1+8]\nexit"),
    (ProgType.LSM, A.LSM_MAC, "bpf_fentry_test1", RET0),  # not an LSM hook
])
def test_trampoline_program_verdicts_agree(sides, prog_type, eat, target, code) -> None:
    need_trampolines()
    k, p = sides
    insns = encode(asm(code))
    got = [s.load(insns, eat, target, prog_type=prog_type) for s in (k, p)]
    STEPS[0] += 1
    assert (got[1].errno, got[1].reason) == (got[0].errno, got[0].reason)
