"""fentry/fexit/fmod_ret, tp_btf and LSM programs: verified against the kernel
function's BTF prototype, attached to its trampoline (or tracepoint), fired
by calling the simulated function from Python, and test-run as
bpf_prog_test_run_tracing does (net/bpf/test_run.c, kernel/bpf/trampoline.c)."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from pyebpf import Program, load_object
from pyebpf.attr import (
    InfoByFdAttr,
    LinkCreateAttr,
    MapCreateAttr,
    MapElemAttr,
    ProgLoadAttr,
    RawTracepointOpenAttr,
    TestRunAttr,
)
from pyebpf.btf import BtfKind
from pyebpf.errors import ENOTSUPP, BpfError, VerifierError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import KernelObject, kernel_btf
from pyebpf.links.tracing import fire_raw_tracepoint
from pyebpf.progs.tracing_btf import BPF_MAX_TRAMP_LINKS
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, LinkType, MapType, ProgLoadFlags, ProgType

A = AttachType
EXAMPLE = Path(__file__).parents[2] / "examples" / "fentry_trace.o"
RET0 = "mov %r0, 0\nexit"


def btf_id(rt: Runtime, name: str, kind: BtfKind = BtfKind.FUNC) -> int:
    t = rt.btf_vmlinux.btf.find(name, kind)
    assert t is not None, name
    return t.id


def load(rt: Runtime, code: str | bytes, target: str, eat: int = A.TRACE_FENTRY, *,
         prog_type: int = ProgType.TRACING, flags: int = 0, license: str = "GPL",
         attach_btf_id: int | None = None) -> int:
    insns = encode(asm(code)) if isinstance(code, str) else code
    kind = BtfKind.TYPEDEF if eat == A.TRACE_RAW_TP else BtfKind.FUNC
    tid = btf_id(rt, target, kind) if attach_btf_id is None else attach_btf_id
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=prog_type, insns=insns, license=license, expected_attach_type=eat,
        attach_btf_id=tid, prog_flags=flags, log_level=1, log_size=1 << 16), runtime=rt))


def refused(rt: Runtime, *args: object, **kw: object) -> VerifierError:
    with pytest.raises(VerifierError) as e:
        load(rt, *args, **kw)  # type: ignore[arg-type]
    return e.value


def attach(rt: Runtime, fd: int) -> int:
    return int(bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(prog_fd=fd), runtime=rt))


def counter_map(rt: Runtime) -> int:
    return int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                                 value_size=64, max_entries=1), runtime=rt))


def record(map_fd: int, slot: int, ret: int = 0, *, ctx_slot: int | None = None) -> bytes:
    """value[0] += 1; value[slot] = value[0] (the order programs ran in); optionally
    value[slot + 1] = ctx[ctx_slot]; return ``ret``."""
    lddw = struct.pack("<BBhi", 0x18, (2 << 4) | 6, 0, map_fd) + struct.pack("<BBhi", 0, 0, 0, 0)
    body = (f"ldxdw %r2, [%r6+0]\nadd %r2, 1\nstxdw [%r6+0], %r2\n"
            f"stxdw [%r6+{8 * slot}], %r2\n")
    if ctx_slot is not None:
        body += f"ldxdw %r3, [%r1+{8 * ctx_slot}]\nstxdw [%r6+{8 * slot + 8}], %r3\n"
    return lddw + encode(asm(body + f"mov %r0, {ret}\nexit"))


def slots(rt: Runtime, map_fd: int) -> tuple[int, ...]:
    raw = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=map_fd, key=bytes(4)), runtime=rt)
    return struct.unpack("<8q", raw)


# -- firing ---------------------------------------------------------------------------------------
def test_kernel_call_runs_the_body_without_programs() -> None:
    rt = Runtime()
    assert rt.kernel_call("bpf_fentry_test1", 41) == 42
    assert rt.kernel_call("bpf_fentry_test3", 4, 5, 6) == 15
    assert rt.kernel_call("bpf_fentry_test1", -5) == -4


def test_kernel_call_of_an_unknown_function_is_enoent() -> None:
    with pytest.raises(BpfError) as e:
        Runtime().kernel_call("do_sys_open", 1)
    assert e.value.errno == errno.ENOENT
    with pytest.raises(TypeError):
        Runtime().kernel_call("bpf_fentry_test2", 1)


def test_fentry_sees_arguments_and_fexit_the_return_value() -> None:
    rt = Runtime()
    m = counter_map(rt)
    attach(rt, load(rt, record(m, 1, ctx_slot=1), "bpf_fentry_test2"))   # b
    attach(rt, load(rt, record(m, 3, ctx_slot=2), "bpf_fentry_test2", A.TRACE_FEXIT))  # ret
    assert rt.kernel_call("bpf_fentry_test2", 2, 40) == 42
    assert slots(rt, m)[:5] == (2, 1, 40, 2, 42)


def test_programs_run_fentry_then_fmod_ret_then_fexit_newest_first() -> None:
    rt = Runtime()
    m = counter_map(rt)
    attach(rt, load(rt, record(m, 1), "bpf_fentry_test1", A.TRACE_FEXIT))
    attach(rt, load(rt, record(m, 2), "bpf_fentry_test1", A.MODIFY_RETURN))
    attach(rt, load(rt, record(m, 3), "bpf_fentry_test1"))
    attach(rt, load(rt, record(m, 4), "bpf_fentry_test1"))  # attached last: runs first
    assert rt.kernel_call("bpf_fentry_test1", 1) == 2
    assert slots(rt, m)[:5] == (4, 4, 3, 2, 1)


def test_closing_the_link_detaches_the_program() -> None:
    rt = Runtime()
    m = counter_map(rt)
    link = attach(rt, load(rt, record(m, 1), "bpf_fentry_test1"))
    rt.kernel_call("bpf_fentry_test1", 1)
    rt.close(link)
    rt.kernel_call("bpf_fentry_test1", 1)
    assert slots(rt, m)[0] == 1


def test_fmod_ret_nonzero_skips_the_function_and_is_its_result() -> None:
    rt = Runtime()
    m = counter_map(rt)
    attach(rt, load(rt, record(m, 1, ret=-22), "bpf_modify_return_test", A.MODIFY_RETURN))
    attach(rt, load(rt, record(m, 2, ctx_slot=2), "bpf_modify_return_test", A.TRACE_FEXIT))
    b = rt.memory.map(struct.pack("<i", 2), kind="kernel", name="b")
    assert rt.kernel_call("bpf_modify_return_test", 1, b.base) == -22
    assert struct.unpack("<i", bytes(b.buf[:4]))[0] == 2  # the body did not run
    assert slots(rt, m)[3] & 0xFFFF_FFFF == (-22) & 0xFFFF_FFFF  # fexit saw the override


def test_fmod_ret_zero_lets_the_function_run() -> None:
    rt = Runtime()
    attach(rt, load(rt, RET0, "bpf_modify_return_test", A.MODIFY_RETURN))
    b = rt.memory.map(struct.pack("<i", 2), kind="kernel", name="b")
    assert rt.kernel_call("bpf_modify_return_test", 1, b.base) == 4  # *b += 1; a + *b
    assert struct.unpack("<i", bytes(b.buf[:4]))[0] == 3


def test_same_program_twice_on_one_function_is_ebusy_and_may_reattach_later() -> None:
    rt = Runtime()
    fd = load(rt, RET0, "bpf_fentry_test1")
    link = attach(rt, fd)
    with pytest.raises(BpfError) as e:
        attach(rt, fd)
    assert e.value.errno == errno.EBUSY
    rt.close(link)
    attach(rt, fd)


def test_a_trampoline_takes_at_most_38_programs() -> None:
    rt = Runtime()
    for _ in range(BPF_MAX_TRAMP_LINKS):
        attach(rt, load(rt, RET0, "bpf_fentry_test1"))
    with pytest.raises(BpfError) as e:
        attach(rt, load(rt, RET0, "bpf_fentry_test1", A.TRACE_FEXIT))
    assert e.value.errno == errno.E2BIG


def test_link_create_needs_the_expected_attach_type_and_reports_a_tracing_link() -> None:
    rt = Runtime()
    fd = load(rt, RET0, "bpf_fentry_test1", A.TRACE_FEXIT)
    with pytest.raises(BpfError) as e:
        bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd, attach_type=A.TRACE_FENTRY), runtime=rt)
    assert e.value.errno == errno.EINVAL
    link = bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd, attach_type=A.TRACE_FEXIT,
                                                tracing_cookie=7), runtime=rt)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=link), runtime=rt)
    assert info.type == LinkType.TRACING
    assert (info.attach_type, info.target_btf_id, info.cookie) == (
        A.TRACE_FEXIT, btf_id(rt, "bpf_fentry_test1"), 7)
    assert info.target_obj_id == rt.btf_vmlinux.id


def test_program_attach_makes_a_tracing_link() -> None:
    rt = Runtime()
    m = counter_map(rt)
    prog = Program(load(rt, record(m, 1), "bpf_fentry_test1", A.TRACE_FEXIT), rt)
    link = prog.attach(0, A.TRACE_FEXIT)
    rt.kernel_call("bpf_fentry_test1", 1)
    assert link.info().type == LinkType.TRACING
    link.close()
    rt.kernel_call("bpf_fentry_test1", 1)
    assert slots(rt, m)[0] == 1


def test_link_create_with_a_target_fd_is_einval_for_tracing() -> None:
    rt = Runtime()
    fd = load(rt, RET0, "bpf_fentry_test1")
    with pytest.raises(BpfError) as e:
        bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd, attach_type=A.TRACE_FENTRY,
                                            target_fd=fd, target_btf_id=5), runtime=rt)
    assert e.value.errno == errno.EINVAL


# -- the verifier ---------------------------------------------------------------------------------
def test_fmod_ret_on_a_function_outside_the_fmodret_sets_is_not_modifiable() -> None:
    e = refused(Runtime(), RET0, "bpf_fentry_test2", A.MODIFY_RETURN)
    assert e.errno == errno.EINVAL
    assert "bpf_fentry_test2() is not modifiable" in e.log


def test_fentry_on_a_typedef_is_not_a_function() -> None:
    rt = Runtime()
    tid = btf_id(rt, "btf_trace_task_newtask", BtfKind.TYPEDEF)
    e = refused(rt, RET0, "", A.TRACE_FENTRY, attach_btf_id=tid)
    assert f"attach_btf_id {tid} is not a function" in e.log


def test_tp_btf_on_a_function_is_not_a_typedef() -> None:
    rt = Runtime()
    tid = btf_id(rt, "bpf_fentry_test1")
    e = refused(rt, RET0, "", A.TRACE_RAW_TP, attach_btf_id=tid)
    assert f"attach_btf_id {tid} is not a typedef" in e.log


def test_fentry_on_a_function_pyebpf_has_no_code_for_is_enoent() -> None:
    e = refused(Runtime(), RET0, "bpf_iter_task")
    assert e.errno == errno.ENOENT
    assert "The address of function bpf_iter_task cannot be found" in e.log


@pytest.mark.parametrize(("eat", "off", "size", "message"), [
    (A.TRACE_FENTRY, 8, 8, "func 'bpf_fentry_test1' doesn't have 2-th argument"),
    (A.TRACE_FENTRY, 16, 8, "func 'bpf_fentry_test1' doesn't have 3-th argument"),
    (A.TRACE_FEXIT, 16, 8, "func 'bpf_fentry_test1' doesn't have 3-th argument"),
    (A.TRACE_FENTRY, 4, 4, "func 'bpf_fentry_test1' offset 4 is not multiple of 8"),
])
def test_ctx_reads_past_the_arguments_are_refused(eat, off, size, message) -> None:
    ldx = {8: "ldxdw", 4: "ldxw"}[size]
    e = refused(Runtime(), f"{ldx} %r2, [%r1+{off}]\n{RET0}", "bpf_fentry_test1", eat)
    assert e.errno == errno.EACCES
    assert message + f"\ninvalid bpf_context access off={off} size={size}" in e.log


def test_fexit_reads_the_return_value_after_the_arguments() -> None:
    load(Runtime(), f"ldxdw %r2, [%r1+8]\n{RET0}", "bpf_fentry_test1", A.TRACE_FEXIT)


def test_fmod_ret_reads_an_int_return_value_slot() -> None:
    load(Runtime(), f"ldxdw %r2, [%r1+16]\n{RET0}", "bpf_modify_return_test", A.MODIFY_RETURN)


def test_pointer_arguments_must_be_read_whole() -> None:
    e = refused(Runtime(), f"ldxw %r2, [%r1+0]\n{RET0}", "bpf_fentry_test8")
    assert "func 'bpf_fentry_test8' size 4 must be 8" in e.log


def test_ctx_writes_are_refused() -> None:
    e = refused(Runtime(), f"stdw [%r1+0], 1\n{RET0}", "bpf_fentry_test1")
    assert "invalid bpf_context access off=0 size=8" in e.log


def test_struct_pointer_arguments_are_read_through_but_not_written() -> None:
    rt = Runtime()
    load(rt, f"ldxdw %r2, [%r1+0]\nldxdw %r3, [%r2+0]\n{RET0}", "bpf_fentry_test8")
    e = refused(rt, f"ldxdw %r2, [%r1+0]\nstdw [%r2+0], 1\n{RET0}", "bpf_fentry_test8")
    assert e.errno == errno.EACCES


def test_fentry_loads_through_a_null_struct_argument_read_zero() -> None:
    rt = Runtime()
    m = counter_map(rt)
    lddw = struct.pack("<BBhi", 0x18, (2 << 4) | 6, 0, m) + struct.pack("<BBhi", 0, 0, 0, 0)
    code = lddw + encode(asm("stdw [%r6+8], 7\nldxdw %r2, [%r1+0]\nldxdw %r3, [%r2+0]\n"
                             "stxdw [%r6+8], %r3\nmov %r0, 0\nexit"))
    attach(rt, load(rt, code, "bpf_fentry_test7"))  # arg->a: BPF_PROBE_MEM
    assert rt.kernel_call("bpf_fentry_test7", 0) == 0
    assert slots(rt, m)[1] == 0


def test_fentry_and_fexit_must_return_zero_fmod_ret_anything() -> None:
    rt = Runtime()
    e = refused(rt, "mov %r0, 1\nexit", "bpf_fentry_test1")
    assert "should have been in [0, 0]" in e.log
    load(rt, "mov %r0, -12\nexit", "bpf_fentry_test1", A.MODIFY_RETURN)


@pytest.mark.parametrize(("prog_type", "eat", "target", "ok"), [
    (ProgType.TRACING, A.TRACE_FENTRY, "bpf_fentry_test1", True),  # fmodret set, KF_SLEEPABLE
    (ProgType.TRACING, A.TRACE_FENTRY, "bpf_fentry_test2", False),
    (ProgType.TRACING, A.MODIFY_RETURN, "bpf_modify_return_test", False),
    (ProgType.LSM, A.LSM_MAC, "bpf_lsm_file_open", True),
    (ProgType.LSM, A.LSM_MAC, "bpf_lsm_file_free_security", False),
])
def test_sleepable_programs_only_on_sleepable_functions(prog_type, eat, target, ok) -> None:
    rt = Runtime()
    if ok:
        load(rt, RET0, target, eat, prog_type=prog_type, flags=ProgLoadFlags.SLEEPABLE)
        return
    e = refused(rt, RET0, target, eat, prog_type=prog_type, flags=ProgLoadFlags.SLEEPABLE)
    assert f"{target} is not sleepable" in e.log


def test_tracing_needs_a_btf_id() -> None:
    e = refused(Runtime(), RET0, "", A.TRACE_FENTRY, attach_btf_id=0)
    assert "Tracing programs must provide btf_id" in e.log


# -- tp_btf ---------------------------------------------------------------------------------------
def test_tp_btf_reads_trusted_arguments_and_fires_on_its_tracepoint() -> None:
    rt = Runtime()
    m = counter_map(rt)
    lddw = struct.pack("<BBhi", 0x18, (2 << 4) | 6, 0, m) + struct.pack("<BBhi", 0, 0, 0, 0)
    code = lddw + encode(asm("ldxdw %r2, [%r1+0]\nldxw %r3, [%r2+0]\nstxdw [%r6+0], %r3\n"
                             "ldxdw %r3, [%r1+8]\nstxdw [%r6+8], %r3\nmov %r0, 0\nexit"))
    fd = load(rt, code, "btf_trace_task_newtask", A.TRACE_RAW_TP)
    link = bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd, attach_type=A.TRACE_RAW_TP),
               runtime=rt)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=link), runtime=rt)
    assert info.type == LinkType.RAW_TRACEPOINT
    task = KernelObject(rt, "task_struct", pid=1234)
    assert fire_raw_tracepoint(rt, "task_newtask", task.addr, 0x11) == [0]
    assert slots(rt, m)[:2] == (1234, 0x11)


def test_tp_btf_arguments_skip_the_data_pointer() -> None:
    e = refused(Runtime(), f"ldxdw %r2, [%r1+16]\n{RET0}", "btf_trace_task_newtask",
                A.TRACE_RAW_TP)
    assert "func 'task_newtask' doesn't have 3-th argument" in e.log
    e = refused(Runtime(), f"ldxdw %r2, [%r1+24]\n{RET0}", "btf_trace_task_newtask",
                A.TRACE_RAW_TP)
    assert "func 'task_newtask' doesn't have 5-th argument" in e.log


def test_tp_btf_raw_tracepoint_open_takes_no_name() -> None:
    rt = Runtime()
    fd = load(rt, RET0, "btf_trace_task_newtask", A.TRACE_RAW_TP)
    with pytest.raises(BpfError) as e:
        bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(prog_fd=fd, name="task_newtask"),
            runtime=rt)
    assert e.value.errno == errno.EINVAL
    attach(rt, fd)


# -- LSM ------------------------------------------------------------------------------------------
def test_lsm_program_denies_with_its_return_value() -> None:
    rt = Runtime()
    code = "ldxdw %r2, [%r1+0]\nldxw %r3, [%r2+4]\nmov %r0, 0\njset %r3, 1, +1\nexit\n" \
           "mov %r0, -1\nexit"  # f_flags & O_WRONLY: -EPERM
    attach(rt, load(rt, code, "bpf_lsm_file_open", A.LSM_MAC, prog_type=ProgType.LSM))
    assert rt.kernel_call("bpf_lsm_file_open", KernelObject(rt, "file", f_flags=1)) == -1
    assert rt.kernel_call("bpf_lsm_file_open", KernelObject(rt, "file", f_flags=0)) == 0


def test_lsm_return_outside_minus_errno_is_refused() -> None:
    e = refused(Runtime(), "mov %r0, 1\nexit", "bpf_lsm_file_open", A.LSM_MAC,
                prog_type=ProgType.LSM)
    assert "At program exit the register R0 has smin=1 smax=1 should have been in " \
           "[-4095, 0]" in e.log


def test_lsm_may_return_its_return_value_slot() -> None:
    load(Runtime(), "ldxdw %r0, [%r1+8]\nexit", "bpf_lsm_file_open", A.LSM_MAC,
         prog_type=ProgType.LSM)


def test_lsm_on_a_void_hook_runs_after_it_and_may_return_anything() -> None:
    rt = Runtime()
    m = counter_map(rt)
    attach(rt, load(rt, record(m, 1, ret=5), "bpf_lsm_file_free_security", A.LSM_MAC,
                    prog_type=ProgType.LSM))
    assert rt.kernel_call("bpf_lsm_file_free_security", KernelObject(rt, "file")) is None
    assert slots(rt, m)[0] == 1


def test_lsm_bprm_check_security_reads_the_binprm() -> None:
    rt = Runtime()
    # refuse programs run with more than 2 arguments: bprm->argc > 2
    code = "ldxdw %r2, [%r1+0]\nldxw %r3, [%r2+8]\nmov %r0, 0\njsle %r3, 2, +1\n" \
           "mov %r0, -7\nexit"
    attach(rt, load(rt, code, "bpf_lsm_bprm_check_security", A.LSM_MAC,
                    prog_type=ProgType.LSM))
    bprm = KernelObject(rt, "linux_binprm", argc=3)
    assert rt.kernel_call("bpf_lsm_bprm_check_security", bprm) == -7
    bprm.argc = 1
    assert rt.kernel_call("bpf_lsm_bprm_check_security", bprm) == 0


def test_lsm_socket_connect_sees_the_address_and_its_length() -> None:
    rt = Runtime()
    m = counter_map(rt)
    lddw = struct.pack("<BBhi", 0x18, (2 << 4) | 6, 0, m) + struct.pack("<BBhi", 0, 0, 0, 0)
    code = lddw + encode(asm("ldxdw %r2, [%r1+8]\nldxh %r3, [%r2+0]\nstxdw [%r6+0], %r3\n"
                             "ldxdw %r3, [%r1+16]\nstxdw [%r6+8], %r3\nmov %r0, 0\nexit"))
    attach(rt, load(rt, code, "bpf_lsm_socket_connect", A.LSM_MAC, prog_type=ProgType.LSM))
    addr = KernelObject(rt, "sockaddr", sa_family=10)
    assert rt.kernel_call("bpf_lsm_socket_connect", KernelObject(rt, "socket"), addr, 28) == 0
    assert slots(rt, m)[:2] == (10, 28)


def test_lsm_on_a_void_hook_need_not_set_r0() -> None:
    load(Runtime(), "exit", "bpf_lsm_file_free_security", A.LSM_MAC, prog_type=ProgType.LSM)
    e = refused(Runtime(), "exit", "bpf_lsm_file_open", A.LSM_MAC, prog_type=ProgType.LSM)
    assert "R0 !read_ok" in e.log


def test_lsm_only_on_bpf_lsm_hooks_and_gpl() -> None:
    rt = Runtime()
    e = refused(rt, RET0, "bpf_fentry_test1", A.LSM_MAC, prog_type=ProgType.LSM)
    assert "points to wrong type name bpf_fentry_test1" in e.log
    e = refused(rt, RET0, "bpf_lsm_file_open", A.LSM_MAC, prog_type=ProgType.LSM,
                license="Proprietary")
    assert "LSM programs must have a GPL compatible license" in e.log


# -- BPF_PROG_TEST_RUN ----------------------------------------------------------------------------
def _test_run(rt: Runtime, fd: int, **kw: int) -> int:
    return int(bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, **kw), runtime=rt).retval)


def test_fentry_test_run_calls_the_test_functions() -> None:
    rt = Runtime()
    m = counter_map(rt)
    fd = load(rt, record(m, 1, ctx_slot=0), "bpf_fentry_test6")
    assert _test_run(rt, fd) == 0
    assert slots(rt, m)[:3] == (0, 0, 0)  # not attached: nothing ran
    attach(rt, fd)
    assert _test_run(rt, fd) == 0
    assert slots(rt, m)[:3] == (1, 1, 16)  # bpf_fentry_test6(16, ...)


def test_fentry_test_run_is_efault_when_a_test_function_misbehaves() -> None:
    rt = Runtime()
    fd = load(rt, RET0, "bpf_fentry_test1")
    attach(rt, load(rt, "mov %r0, 5\nexit", "bpf_fentry_test1", A.MODIFY_RETURN))
    with pytest.raises(BpfError) as e:
        _test_run(rt, fd)
    assert e.value.errno == errno.EFAULT


def test_fmod_ret_test_run_reports_side_effects_and_returns() -> None:
    rt = Runtime()
    fd = load(rt, "mov %r0, 7\nexit", "bpf_modify_return_test", A.MODIFY_RETURN)
    assert _test_run(rt, fd) == (2 << 16) | (4 + 29)  # nothing attached
    attach(rt, fd)
    assert _test_run(rt, fd) == (1 << 16) | (7 + 29)  # the first call is overridden


@pytest.mark.parametrize(("prog_type", "eat", "target", "err"), [
    (ProgType.TRACING, A.TRACE_RAW_TP, "btf_trace_task_newtask", errno.EFAULT),
    (ProgType.LSM, A.LSM_MAC, "bpf_lsm_file_open", ENOTSUPP),
])
def test_test_run_of_other_kinds(prog_type, eat, target, err) -> None:
    rt = Runtime()
    fd = load(rt, RET0, target, eat, prog_type=prog_type)
    with pytest.raises(BpfError) as e:
        _test_run(rt, fd)
    assert e.value.errno == err


def test_tracing_test_run_takes_no_flags() -> None:
    rt = Runtime()
    with pytest.raises(BpfError) as e:
        _test_run(rt, load(rt, RET0, "bpf_fentry_test1"), flags=1)
    assert e.value.errno == errno.EINVAL


# -- the example ----------------------------------------------------------------------------------
def test_example_fentry_trace_object() -> None:
    rt = Runtime()
    # CO-RE: the object's struct file is resolved against pyebpf's kernel BTF
    coll = load_object(EXAMPLE, runtime=rt, target_btf=kernel_btf())
    for prog in coll.programs.values():
        attach(rt, prog.fd)
    bss = coll.maps[".bss"]

    def get(off: int, fmt: str = "<Q") -> int:
        return int(struct.unpack_from(fmt, bss.lookup(0), off)[0])

    assert rt.kernel_call("bpf_fentry_test1", 41) == 42
    assert (get(0), get(8), get(16)) == (41, 41, 42)  # entry_a, exit_a, exit_ret
    assert (get(40), get(48)) == (1, 2)  # entry1 ran before exit1
    inner = KernelObject(rt, "bpf_fentry_test_t")
    outer = KernelObject(rt, "bpf_fentry_test_t", a=inner.addr)
    assert rt.kernel_call("bpf_fentry_test8", outer) == inner.addr & 0xFFFF_FFFF
    assert get(24) == inner.addr  # test8_a
    value = bytearray(bss.lookup(0))
    struct.pack_into("<i", value, 56, -7)  # modret_value
    struct.pack_into("<i", value, 68, 1)   # deny_writes
    bss.update(0, bytes(value))
    b = rt.memory.map(struct.pack("<i", 2), kind="kernel", name="b")
    assert rt.kernel_call("bpf_modify_return_test", 1, b.base) == -7
    assert get(64, "<i") == -7  # fexit_modret_ret
    assert rt.kernel_call("bpf_lsm_file_open", KernelObject(rt, "file", f_flags=1)) == -1
    assert rt.kernel_call("bpf_lsm_file_open", KernelObject(rt, "file", f_flags=0)) == 0
    assert get(72) == 1  # denied
