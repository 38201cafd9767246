"""The verifier's walk on small programs: verdicts and the kernel's messages."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Cmd, MapCreateAttr, MapType, ProgType, Runtime, asm, bpf
from pyebpf.attr import ProgLoadAttr
from pyebpf.errors import VerifierError
from pyebpf.isa import Insn


def _load(rt: Runtime, prog: str | list[Insn], ptype: ProgType = ProgType.SOCKET_FILTER,
          **kw: object) -> int:
    insns = asm(prog) if isinstance(prog, str) else prog
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=insns, license="GPL",
                                           log_level=2, log_size=1 << 24, **kw), runtime=rt)


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime()
    runtime.verifier = "kernel"
    return runtime


def _reject(rt: Runtime, prog: str | list[Insn], **kw: object) -> VerifierError:
    with pytest.raises(VerifierError) as info:
        _load(rt, prog, **kw)
    return info.value


def _map(rt: Runtime, map_type: MapType = MapType.HASH, value_size: int = 8) -> int:
    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=4,
                                             value_size=value_size, max_entries=4), runtime=rt)


def _lookup_prog(fd: int, body: list[Insn]) -> list[Insn]:
    """r0 = bpf_map_lookup_elem(&map, &(u32){0}); then ``body``."""
    return [
        Insn(0x62, 10, 0, -4, 0),  # *(u32 *)(r10 - 4) = 0
        Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),  # r2 = r10 - 4
        Insn(0x18, 1, 1, 0, fd), Insn(0),  # r1 = map
        Insn(0x85, 0, 0, 0, 1),  # call bpf_map_lookup_elem
        *body,
    ]


def test_reading_an_uninitialized_register_is_read_ok_error(rt: Runtime) -> None:
    err = _reject(rt, "mov %r0, %r2\nexit")
    assert err.errno == errno.EACCES
    assert str(err.strerror) == "R2 !read_ok"
    assert "0: (bf) r0 = r2" in err.log


def test_exit_without_setting_r0_is_rejected(rt: Runtime) -> None:
    assert _reject(rt, "exit").strerror == "R0 !read_ok"


def test_writing_the_frame_pointer_is_rejected(rt: Runtime) -> None:
    assert _reject(rt, "mov %r10, 1\nmov %r0, 0\nexit").strerror == "frame pointer is read only"


def test_map_value_must_be_null_checked_before_use(rt: Runtime) -> None:
    fd = _map(rt)
    prog = _lookup_prog(fd, [Insn(0x7A, 0, 0, 0, 1), Insn(0xB7), Insn(0x95)])
    assert _reject(rt, prog).strerror == "R0 invalid mem access 'map_value_or_null'"


def test_null_checked_map_value_access_in_bounds_is_accepted(rt: Runtime) -> None:
    fd = _map(rt)
    prog = _lookup_prog(fd, [Insn(0x15, 0, 0, 1, 0),  # if r0 == 0 goto +1
                             Insn(0x7A, 0, 0, 0, 1),  # *(u64 *)(r0 + 0) = 1
                             Insn(0xB7), Insn(0x95)])
    assert _load(rt, prog) >= 3


def test_map_value_access_past_value_size_is_rejected(rt: Runtime) -> None:
    fd = _map(rt)
    prog = _lookup_prog(fd, [Insn(0x15, 0, 0, 1, 0), Insn(0x7A, 0, 0, 4, 1), Insn(0xB7),
                             Insn(0x95)])
    err = _reject(rt, prog)
    assert "invalid access to map value, value_size=8 off=4 size=8" in err.log
    assert err.strerror == "R0 min value is outside of the allowed memory range"


def test_back_edge_is_rejected_without_privileges() -> None:
    rt = Runtime(privileged=False)
    rt.verifier = "kernel"
    err = _reject(rt, "mov %r0, 0\nlbl:\nadd %r0, 1\njlt %r0, 10, lbl\nexit")
    assert err.strerror == "back-edge from insn 2 to 1"


def test_bounded_loop_is_accepted_with_privileges(rt: Runtime) -> None:
    assert _load(rt, "mov %r0, 0\nlbl:\nadd %r0, 1\njlt %r0, 10, lbl\nexit") >= 3


def test_endless_loop_is_detected(rt: Runtime) -> None:
    err = _reject(rt, "mov %r0, 0\nlbl:\njeq %r0, 0, lbl\nexit")
    assert err.strerror == "infinite loop detected at insn 1"


def test_unknown_helper_id_is_invalid_func(rt: Runtime) -> None:
    assert _reject(rt, "call 1000\nexit").strerror == "invalid func unknown#1000"


def test_stack_read_past_frame_is_rejected(rt: Runtime) -> None:
    err = _reject(rt, "ldxdw %r0, [%r10+0]\nexit")
    assert err.strerror == "invalid read from stack R10 off=0 size=8"


def test_socket_filter_cannot_read_skb_data(rt: Runtime) -> None:
    err = _reject(rt, "ldxw %r0, [%r1+76]\nexit")
    assert err.strerror == "invalid bpf_context access off=76 size=4"


def test_xdp_packet_access_needs_a_bounds_check(rt: Runtime) -> None:
    unchecked = "ldxw %r2, [%r1+0]\nldxb %r0, [%r2+0]\nexit"
    err = _reject(rt, unchecked, ptype=ProgType.XDP)
    assert err.strerror == "R2 offset is outside of the packet"
    checked = ("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r0, 0\nmov %r4, %r2\nadd %r4, 1\n"
               "jgt %r4, %r3, out\nldxb %r0, [%r2+0]\nout:\nexit")
    assert _load(rt, checked, ptype=ProgType.XDP) >= 3


def test_pointer_plus_pointer_is_prohibited(rt: Runtime) -> None:
    err = _reject(rt, "mov %r2, %r10\nadd %r2, %r10\nmov %r0, 0\nexit")
    assert err.strerror == "R2 pointer += pointer prohibited"


def test_division_by_constant_zero_is_rejected(rt: Runtime) -> None:
    assert _reject(rt, "mov %r0, 1\ndiv %r0, 0\nexit").strerror == "div by zero"


def test_log_ends_with_the_processed_line(rt: Runtime) -> None:
    fd = _load(rt, "mov %r0, 0\nexit")
    assert fd.log.splitlines()[-1].startswith("processed 2 insns (limit 1000000)")


def test_smp_processor_id_is_bounded_by_the_cpu_count() -> None:
    rt = Runtime(nr_cpus=4)
    rt.verifier = "kernel"
    fd = _load(rt, "call 8\nexit")
    assert "R0=scalar(smin=smin32=0,smax=umax=smax32=umax32=3,var_off=(0x0; 0x3))" in fd.log
