"""pyebpf.kernel_funcs: the simulated kernel functions' prototypes in the vmlinux
BTF, their C semantics, and the argument registers programs see."""

from __future__ import annotations

import struct

import pytest

from pyebpf.attr import MapCreateAttr, MapElemAttr, ProgLoadAttr, RawTracepointOpenAttr
from pyebpf.btf import BtfKind
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import KernelObject, kernel_btf
from pyebpf.kernel_funcs import KERNEL_FUNCS, TP_BTF_PROTOS
from pyebpf.links.tracing import RAW_TRACEPOINTS
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, MapType, ProgType


@pytest.mark.parametrize("name", sorted(KERNEL_FUNCS))
def test_every_function_is_a_func_with_named_parameters(name) -> None:
    btf = kernel_btf()
    func = btf.find(name, BtfKind.FUNC)
    assert func is not None
    proto = btf.type(func.type)
    assert [p.name for p in proto.params] == [n for n, _ in KERNEL_FUNCS[name].params]
    assert (proto.type == 0) == (KERNEL_FUNCS[name].ret is None)


def test_test_functions_have_the_kernels_prototypes() -> None:
    btf = kernel_btf()
    proto = btf.type(btf.find("bpf_modify_return_test2", BtfKind.FUNC).type)
    kinds = [btf.skip_mods_and_typedefs(p.type) for p in proto.params]
    assert [(t.kind.name, t.size if t.kind is BtfKind.INT else 8) for t in kinds] == [
        ("INT", 4), ("PTR", 8), ("INT", 2), ("INT", 4), ("PTR", 8), ("INT", 1), ("INT", 4)]


@pytest.mark.parametrize("tp", sorted(TP_BTF_PROTOS))
def test_tp_btf_typedefs_match_the_known_tracepoints(tp) -> None:
    btf = kernel_btf()
    t = btf.find(f"btf_trace_{tp}", BtfKind.TYPEDEF)
    proto = btf.type(btf.type(t.type).type)
    assert proto.kind is BtfKind.FUNC_PROTO
    assert len(proto.params) == 1 + RAW_TRACEPOINTS[tp]  # void *__data first


@pytest.mark.parametrize(("name", "args", "ret"), [
    ("bpf_fentry_test1", (1,), 2),
    ("bpf_fentry_test2", (2, 3), 5),
    ("bpf_fentry_test3", (300, 5, 6), 44 + 5 + 6),  # a char: 300 is 44
    ("bpf_fentry_test4", (7, 8, 9, 10), 34),
    ("bpf_fentry_test5", (11, 12, 13, 14, 15), 65),
    ("bpf_fentry_test6", (16, 17, 18, 19, 20, 21), 111),
    ("bpf_fentry_test6", (16, 17, 0x18000, 19, 20, 21), 16 + 17 - 0x8000 + 19 + 20 + 21),
    ("bpf_fentry_test7", (0,), 0),
    ("bpf_fentry_test1", (0x7FFF_FFFF,), -0x8000_0000),  # int overflow wraps
])
def test_bodies_compute_as_c_does(name, args, ret) -> None:
    assert Runtime().kernel_call(name, *args) == ret


def test_pointer_arguments_are_read_and_written_in_kernel_memory() -> None:
    rt = Runtime()
    inner = KernelObject(rt, "bpf_fentry_test_t")
    outer = KernelObject(rt, "bpf_fentry_test_t", a=inner.addr)
    assert rt.kernel_call("bpf_fentry_test8", outer) == inner.addr & 0xFFFF_FFFF
    u32 = rt.memory.map(struct.pack("<I", 0xDEAD_BEEF), kind="kernel", name="u32")
    assert rt.kernel_call("bpf_fentry_test9", u32.base) == 0xDEAD_BEEF
    b = rt.memory.map(struct.pack("<i", 2), kind="kernel", name="b")
    assert rt.kernel_call("bpf_modify_return_test2", 1, b.base, 3, 4, 5, 6, 7) == 29
    assert struct.unpack("<i", bytes(b.buf[:4]))[0] == 3


def test_void_functions_return_none_and_lsm_hooks_allow_by_default() -> None:
    rt = Runtime()
    assert rt.kernel_call("bpf_fentry_test_sinfo", 0) is None
    assert rt.kernel_call("bpf_lsm_file_open", KernelObject(rt, "file")) == 0


def test_programs_see_int_arguments_zero_extended_from_32_bits() -> None:
    """The caller's register: a 32-bit mov zero-extends (the trampoline saves it whole)."""
    rt = Runtime()
    m = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=32,
                                          max_entries=1), runtime=rt)
    lddw = struct.pack("<BBhi", 0x18, (2 << 4) | 6, 0, m) + struct.pack("<BBhi", 0, 0, 0, 0)
    insns = lddw + encode(asm("ldxdw %r2, [%r1+0]\nstxdw [%r6+0], %r2\n"
                              "ldxdw %r2, [%r1+8]\nstxdw [%r6+8], %r2\nmov %r0, 0\nexit"))
    tid = kernel_btf().find("bpf_fentry_test2", BtfKind.FUNC).id
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.TRACING, insns=insns, license="GPL",
                                         expected_attach_type=AttachType.TRACE_FENTRY,
                                         attach_btf_id=tid), runtime=rt)
    bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(prog_fd=fd), runtime=rt)
    assert rt.kernel_call("bpf_fentry_test2", -1, -1) == -2
    raw = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=m, key=bytes(4)), runtime=rt)
    assert struct.unpack_from("<2Q", raw) == (0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF)


def test_fmodret_and_sleepable_flags_follow_the_kernels_sets() -> None:
    f = KERNEL_FUNCS
    assert {n for n, k in f.items() if k.fmodret} == {
        "bpf_fentry_test1", "bpf_modify_return_test", "bpf_modify_return_test2"}
    assert {n for n, k in f.items() if k.fmodret_sleepable} == {"bpf_fentry_test1"}
    assert all(k.is_lsm_hook == n.startswith("bpf_lsm_") for n, k in f.items())
