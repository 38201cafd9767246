"""bpf_get_func_arg / bpf_get_func_ret / bpf_get_func_arg_cnt: what a trampoline's
programs read below their ctx (the argument count) and in it."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf.attr import MapCreateAttr, MapElemAttr, ProgLoadAttr, RawTracepointOpenAttr
from pyebpf.btf import BtfKind
from pyebpf.errors import VerifierError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, MapType, ProgType

A = AttachType
EINVAL = -errno.EINVAL & 0xFFFF_FFFF_FFFF_FFFF
EOPNOTSUPP = -errno.EOPNOTSUPP & 0xFFFF_FFFF_FFFF_FFFF


def _results_map(rt: Runtime) -> int:
    return int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                                 value_size=64, max_entries=1), runtime=rt))


def _program(map_fd: int, arg: int) -> bytes:
    """value = {arg_cnt, get_func_arg(arg) result, the arg, get_func_ret result, ret}."""
    lddw = struct.pack("<BBhi", 0x18, (2 << 4) | 7, 0, map_fd) + struct.pack("<BBhi", 0, 0, 0, 0)
    return lddw + encode(asm(f"""
        mov %r6, %r1
        call 185
        stxdw [%r7+0], %r0
        mov %r1, %r6
        mov %r2, {arg}
        mov %r3, %r10
        add %r3, -8
        call 183
        stxdw [%r7+8], %r0
        ldxdw %r0, [%r10-8]
        stxdw [%r7+16], %r0
        mov %r1, %r6
        mov %r2, %r10
        add %r2, -16
        call 184
        stxdw [%r7+24], %r0
        ldxdw %r0, [%r10-16]
        stxdw [%r7+32], %r0
        mov %r0, 0
        exit"""))


def _run(eat: int, func: str, arg: int, *call_args: int,
         prog_type: int = ProgType.TRACING) -> tuple[int, ...]:
    rt = Runtime()
    m = _results_map(rt)
    tid = rt.btf_vmlinux.btf.find(func, BtfKind.FUNC).id
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=prog_type, insns=_program(m, arg),
                                         license="GPL", expected_attach_type=eat,
                                         attach_btf_id=tid), runtime=rt)
    bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(prog_fd=fd), runtime=rt)
    rt.kernel_call(func, *call_args)
    raw = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=m, key=bytes(4)), runtime=rt)
    return struct.unpack_from("<5Q", raw)


def test_fexit_reads_arguments_count_and_return_value() -> None:
    assert _run(A.TRACE_FEXIT, "bpf_fentry_test2", 1, 2, 40) == (2, 0, 40, 0, 42)


def test_argument_past_the_last_is_einval() -> None:
    cnt, err, _, _, _ = _run(A.TRACE_FEXIT, "bpf_fentry_test2", 2, 2, 40)
    assert (cnt, err) == (2, EINVAL)


def test_fentry_has_no_return_value() -> None:
    assert _run(A.TRACE_FENTRY, "bpf_fentry_test1", 0, 7)[:4] == (1, 0, 7, EOPNOTSUPP)


def test_lsm_reads_the_return_value_slot() -> None:
    assert _run(A.LSM_MAC, "bpf_lsm_socket_connect", 2, 0, 0, 16,
                prog_type=ProgType.LSM) == (3, 0, 16, 0, 0)


def test_not_offered_to_other_program_types() -> None:
    rt = Runtime()
    with pytest.raises(VerifierError) as e:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.KPROBE, insns=encode(asm(
            "call 185\nmov %r0, 0\nexit")), license="GPL"), runtime=rt)
    assert e.value.errno == errno.EINVAL
    assert "program of this type cannot use helper bpf_get_func_arg_cnt#185" in str(e.value)


def _ip_and_cookie_program(map_fd: int) -> bytes:
    lddw = struct.pack("<BBhi", 0x18, (2 << 4) | 7, 0, map_fd) + struct.pack("<BBhi", 0, 0, 0, 0)
    return lddw + encode(asm("""
        mov %r6, %r1
        call 173
        stxdw [%r7+0], %r0
        mov %r1, %r6
        call 174
        stxdw [%r7+8], %r0
        mov %r0, 0
        exit"""))


def test_func_ip_is_the_function_address_and_cookie_the_links() -> None:
    from pyebpf.attr import LinkCreateAttr
    from pyebpf.progs.tracing_btf import func_ip

    rt = Runtime()
    m = _results_map(rt)
    tid = rt.btf_vmlinux.btf.find("bpf_fentry_test1", BtfKind.FUNC).id
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.TRACING, license="GPL",
                                         insns=_ip_and_cookie_program(m),
                                         expected_attach_type=A.TRACE_FENTRY,
                                         attach_btf_id=tid), runtime=rt)
    bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fd, attach_type=A.TRACE_FENTRY,
                                        tracing_cookie=0xC00C1E), runtime=rt)
    rt.kernel_call("bpf_fentry_test1", 1)
    raw = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=m, key=bytes(4)), runtime=rt)
    assert struct.unpack_from("<2Q", raw) == (func_ip(tid), 0xC00C1E)


def test_tp_btf_program_reads_its_raw_tracepoint_cookie() -> None:
    from pyebpf.links.tracing import fire_raw_tracepoint

    rt = Runtime()
    m = _results_map(rt)
    lddw = struct.pack("<BBhi", 0x18, (2 << 4) | 7, 0, m) + struct.pack("<BBhi", 0, 0, 0, 0)
    insns = lddw + encode(asm("call 174\nstxdw [%r7+8], %r0\nmov %r0, 0\nexit"))
    tid = rt.btf_vmlinux.btf.find("btf_trace_task_newtask", BtfKind.TYPEDEF).id
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.TRACING, license="GPL", insns=insns,
                                         expected_attach_type=A.TRACE_RAW_TP,
                                         attach_btf_id=tid), runtime=rt)
    bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(prog_fd=fd, cookie=99), runtime=rt)
    fire_raw_tracepoint(rt, "task_newtask", 0, 0)
    raw = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=m, key=bytes(4)), runtime=rt)
    assert struct.unpack_from("<Q", raw, 8)[0] == 99
