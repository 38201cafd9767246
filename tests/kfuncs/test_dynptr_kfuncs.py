"""The dynptr kfuncs: bpf_dynptr_from_skb/xdp, slice(_rdwr), adjust, is_null,
is_rdonly, size, clone, copy, memset, and the dynptr helpers on packet dynptrs.

Programs are tests/data/kfuncs/dynptr_kfuncs.c as clang-19 builds it; every
expected value, packet byte and error line below is what Linux 6.18 gives for
the same object (tests/kernel/test_dynptr_kfuncs_differential.py checks it
against the running kernel).
"""

from __future__ import annotations

import errno

import pytest

from pyebpf.elf import load_spec
from pyebpf.engine.interpreter import Vm
from pyebpf.kfuncs import KfArgKind, kfunc_allowed, kfunc_by_name
from pyebpf.kfuncs import dynptr as kd
from pyebpf.memory import AddressSpace
from pyebpf.uapi import ProgType
from pyebpf.verifier.dynptr import BpfDynptrType

from ._dynptr import OBJ, PACKET, RAW, on_pyebpf
from ._kprog import kernel_kfunc_id
from ._load import load

E2BIG, EINVAL, ERANGE = errno.E2BIG, errno.EINVAL, errno.ERANGE


def _patched(**at: bytes) -> bytes:
    """The test packet with bytes replaced: ``_patched(o2=b"\\xaa")``."""
    out = bytearray(PACKET)
    for key, data in at.items():
        off = int(key[1:])
        out[off:off + len(data)] = data
    return bytes(out)


#: Accepted programs: (retval, the packet after the run or None when not compared).
RUNS: dict[str, tuple[int, bytes | None]] = {
    "skb_slice_read": (10 * 1000 + 13, PACKET),
    "skb_slice_rdwr_write": (64, _patched(o2=b"\xaa\xbb")),
    "skb_slice_no_buffer": (63, PACKET),
    "skb_slice_past_end_is_null": (1, PACKET),
    "skb_read_write_helpers": (2023, _patched(o5=b"\x07\x08\x09")),
    # The failed reads leave the buffer alone: -E2BIG past the end, -EINVAL for flags,
    # and a write with flags bpf_skb_store_bytes doesn't know: -EINVAL.
    "skb_read_errors": (1_000_000 + E2BIG * 10000 + EINVAL * 100 + EINVAL, PACKET),
    "skb_bad_flags": (EINVAL * 1000 + 100 + 1, PACKET),
    "skb_adjust_clone": (39 * 100000 + 10 * 1000 + 64 * 10 + EINVAL + ERANGE, PACKET),
    "skb_data_is_null": (1, PACKET),
    "skb_copy_memset": (-E2BIG & 0xFFFF_FFFF, _patched(o0=bytes([32, 33, 34, 35]),
                                                      o8=b"\x5a\x5a\x5a")),
    "socket_skb_is_rdonly": (1000 + EINVAL * 10 + 1, None),
    "xdp_slice_clone_adjust": (8, _patched(o2=b"\x07")),
    "xdp_read_write": (EINVAL * 10000 + 0x22 * 100 + 3, _patched(o1=b"\x11\x22")),
    "xdp_copy_memset": (E2BIG, _patched(o0=b"\xee\xee", o4=bytes([40, 41, 42, 43]))),
    "xdp_data_is_null": (1, PACKET),
    "xdp_reinit_unreferenced": (64, PACKET),
    "slice_buffer_uninit": (1, PACKET),
    # A writable slice carries DYNPTR_TYPE_SKB: overwriting the dynptr doesn't
    # reach it (destroy_if_dynptr_stack_slot matches plain PTR_TO_MEM only).
    "slice_of_overwritten_dynptr": (0, PACKET),
    # Ringbuf dynptrs: size 16, writable, bpf_dynptr_write 0, the byte written.
    "rb_slice_write_submit": (16 * 1000 + 0x42, PACKET),
    # A failed reservation (flags: -EINVAL; 8 KiB in a 4 KiB ring: -EINVAL) leaves
    # a NULL dynptr, which is still submitted or discarded.
    "rb_failed_reserve_is_null": (EINVAL * 1000 + EINVAL * 10 + 2, PACKET),
    # The clone is adjusted to [8, 16) of the sample and copied into from the packet;
    # memset covers [0, 8) of the original, and copy + memset return 0 + 0.
    "rb_clone_adjust_copy": (20 * 1000 + 27 * 10 + 1, PACKET),
    "local_from_map_value": (10000 + 1000 + 0x11, PACKET),
    # A bpf_dynptr_slice of a ringbuf dynptr has no reference: submitting the
    # dynptr leaves it readable (as on the kernel).
    "rb_slice_after_submit": (0, PACKET),
    # bpf_dynptr_read past the end: -E2BIG, the buffer left as it was.
    "local_read_error_keeps_buffer": (E2BIG * 100 + 1, PACKET),
    # Kfuncs on a callback's const dynptr (no sample to drain in a test run).
    "user_ringbuf_const_dynptr": (0, PACKET),
    "user_ringbuf_rdwr_slice": (0, PACKET),
    "user_ringbuf_write": (0, PACKET),
    # The skb shrank to 20 bytes under a 64-byte dynptr: reading at 30 fails in
    # bpf_skb_load_bytes (-EFAULT, the buffer zeroed), the slice is NULL.
    "skb_shrunk_under_dynptr": (errno.EFAULT * 10000 + 64, None),
    # The XDP buffer shrank to 44 bytes: reading [42, 46) is -EINVAL; the slice
    # is the buffer, with the 2 bytes the packet still has copied in.
    "xdp_shrunk_under_dynptr": (EINVAL * 100000 + 10000 + 42 * 100 + 9, None),
    "dynptr_in_subprog": (64, PACKET),
    "slice_buffer_in_map_value": (15, PACKET),
    "slice_buffer_in_packet": (7, PACKET),
    "empty_slice_at_the_end": (7, PACKET),
    # A writable packet slice is helper memory (its DYNPTR_TYPE_SKB flag folded
    # away): bpf_skb_load_bytes copies packet bytes 40..55 over bytes 8..23.
    "slice_as_helper_memory": (43, _patched(o8=bytes(range(40, 56)))),
    # CGROUP_SKB may not write packets: its skb dynptrs are read-only.
    "cgroup_skb_is_rdonly": (1, None),
    # Both branches' dynptrs reach the same bpf_dynptr_size (an skb one here).
    "dynptr_types_merge": (64, PACKET),
    # sum of bytes 4i and 4i + 3 for i < 16: 2 * (0 + 4 + ... + 60) + 16 * 3
    "slices_in_a_loop": (1008, PACKET),
    # A tc test run's skb has no metadata: a 0-byte dynptr (reads and writes
    # -E2BIG, the buffer kept, an empty slice is not NULL), writable.
    "skb_meta_is_empty": (10_000_000 + 9 * 1_000_000 + E2BIG * 100 + E2BIG, PACKET),
    "skb_meta_bad_flags": (EINVAL * 10 + 1, PACKET),
    # The differential test's random packets give these their parameters; on
    # 0, 1, 2 ... the clone is [0, 1) and every access past it fails.
    "skb_params_from_packet": (4278613608, PACKET),
    "xdp_params_from_packet": (16353784, PACKET),
    # A global function's const struct bpf_dynptr * is a read-only LOCAL dynptr
    # to its body (the verifier's view; at run time it is the skb dynptr).
    "dynptr_to_global_func": (65, PACKET),
    "global_func_rdwr_slice": (0, PACKET),
}

#: Refused programs: (errno, the verifier's last line).
REFUSED: dict[str, tuple[int, str]] = {
    "slice_unchecked": (errno.EACCES, "R0 invalid mem access 'rdonly_mem_or_null'"),
    "slice_write_rdonly": (errno.EACCES, "R0 cannot write into rdonly_mem"),
    "slice_past_size": (errno.EACCES, "R1 min value is outside of the allowed memory range"),
    "slice_buffer_too_small": (errno.EACCES, "arg#2 arg#3 memory, len pair leads to invalid "
                               "memory access"),
    "slice_size_not_constant": (EINVAL, "R4 must be a known constant"),
    "uninit_dynptr": (EINVAL, "Expected an initialized dynptr as arg #0"),
    "clone_of_uninit": (EINVAL, "Expected an initialized dynptr as arg #0"),
    "rdwr_in_socket_filter": (EINVAL, "the prog does not allow writes to packet data"),
    "slice_after_pull_data": (errno.EACCES, "R7 invalid mem access 'scalar'"),
    "slice_after_dynptr_write": (errno.EACCES, "R6 invalid mem access 'scalar'"),
    "xdp_slice_after_adjust_head": (errno.EACCES, "R7 invalid mem access 'scalar'"),
    "xdp_from_skb": (errno.EACCES, "calling kernel function bpf_dynptr_from_skb is not "
                     "allowed"),
    "skb_from_xdp": (errno.EACCES, "calling kernel function bpf_dynptr_from_xdp is not "
                     "allowed"),
    "dynptr_in_map_value": (EINVAL, "arg#0 expected pointer to stack or const struct "
                            "bpf_dynptr"),
    "dynptr_at_odd_offset": (EINVAL, "Dynptr has to be an uninitialized dynptr"),
    "overwritten_dynptr": (EINVAL, "Expected an initialized dynptr as arg #0"),
    "read_dynptr_bytes": (errno.EACCES, "invalid read from stack off -8+0 size 4"),
    "helper_writes_into_dynptr": (errno.EACCES, "potential write to dynptr at off=-16 "
                                  "disallowed"),
    "rb_leak": (EINVAL, "BPF_EXIT instruction in main prog would lead to reference leak"),
    "rb_overwrite_referenced": (EINVAL, "cannot overwrite referenced dynptr"),
    "rb_submit_uninit": (EINVAL, "arg 1 is an unacquired reference"),
    "rb_submit_skb_dynptr": (EINVAL, "arg 1 is an unacquired reference"),
    "rb_submit_twice": (EINVAL, "arg 1 is an unacquired reference"),
    "rb_submit_local": (EINVAL, "arg 1 is an unacquired reference"),
    "rb_original_after_clone_submit": (EINVAL, "Expected an initialized dynptr as arg #0"),
    "rb_data_after_submit": (errno.EACCES, "R6 invalid mem access 'scalar'"),
    "local_from_stack": (errno.EACCES, "Unsupported reg type fp for bpf_dynptr_from_mem data"),
    "rb_reserve_in_array": (EINVAL, "cannot pass map_type 2 into func "
                            "bpf_ringbuf_reserve_dynptr#198"),
    "user_ringbuf_clone_into_const": (errno.EFAULT, "verifier bug: misconfigured dynptr "
                                      "helper type flags"),
    "user_ringbuf_submit_const": (EINVAL, "cannot release unowned const bpf_dynptr"),
    "from_skb_not_ctx": (EINVAL, "arg#0 expected pointer to ctx, but got fp"),
    "null_dynptr": (EINVAL, "arg#0 expected pointer to stack or const struct bpf_dynptr"),
    "skb_meta_in_socket_filter": (errno.EACCES, "calling kernel function "
                                  "bpf_dynptr_from_skb_meta is not allowed"),
    # bpf_dynptr_write into skb metadata may move the packet, as into the skb.
    "skb_meta_slice_after_write": (errno.EACCES, "R6 invalid mem access 'scalar'"),
    "uninit_dynptr_to_global_func": (EINVAL, "Caller passes invalid args into func#1 "
                                     "('global_size_and_byte')"),
    # A packet slice spilled to the stack dies there too.
    "spilled_slice_after_pull_data": (errno.EACCES, "R1 invalid mem access 'scalar'"),
}

#: Raw SCHED_CLS programs (tests/kfuncs/_dynptr.py RAW): None when accepted.
RAW_REFUSED: dict[str, tuple[int, str] | None] = {
    "var_off_write_destroys": (EINVAL, "Expected an initialized dynptr as arg #0"),
    "second_slot_write_destroys": (EINVAL, "Expected an initialized dynptr as arg #0"),
    "overlapping_init_destroys_both": (EINVAL, "Expected an initialized dynptr as arg #0"),
    "overlapping_init_keeps_new": None,
    "unaligned_dynptr": (EINVAL, "Dynptr has to be an uninitialized dynptr"),
    "dynptr_read_into_itself": (errno.EACCES, "potential write to dynptr at off=-16 disallowed"),
    "size_of_stack_scalar": (EINVAL, "Expected an initialized dynptr as arg #0"),
    "dynptr_over_iter": (EINVAL, "expected an initialized iter_num as arg #0"),
    "iter_over_dynptr": None,
    "dynptr_over_spilled_ctx": None,
}


def test_every_program_of_the_object_has_an_expectation() -> None:
    assert set(load_spec(OBJ).programs) == set(RUNS) | set(REFUSED)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_accepted_program_returns_and_leaves_the_packet_as_the_kernel(name: str) -> None:
    retval, packet = RUNS[name]
    got = on_pyebpf(name)
    assert got.accepted, got.error
    assert got.retval == retval
    if packet is not None:
        assert got.data_out == packet


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_program_fails_with_the_kernels_errno_and_line(name: str) -> None:
    got = on_pyebpf(name)
    assert not got.accepted
    assert (got.errno, got.error) == REFUSED[name]


@pytest.mark.parametrize("name", sorted(RAW_REFUSED))
def test_raw_program_verdict(name: str) -> None:
    got = load(RAW[name], prog_type=ProgType.SCHED_CLS)
    want = RAW_REFUSED[name]
    if want is None:
        assert got.accepted, got.log
    else:
        assert (got.errno, got.error_line) == want


def test_unaligned_dynptr_says_where_it_was() -> None:
    got = load(RAW["unaligned_dynptr"], prog_type=ProgType.SCHED_CLS)
    assert "cannot pass in dynptr at an offset=-12" in got.log


def test_level2_log_shows_the_dynptr_slot_as_the_kernel_prints_it() -> None:
    got = load(RAW["overlapping_init_keeps_new"], prog_type=ProgType.SCHED_CLS, log_level=2)
    assert "fp-16=dynptr_skb(id=2,dynptr_id=1)" in got.log
    assert "fp-24=dynptr_skb(id=3,dynptr_id=1)" in got.log


def test_leaked_ringbuf_dynptr_names_the_reservation() -> None:
    from pyebpf import Runtime
    from pyebpf.collection import load_object
    from pyebpf.errors import VerifierError

    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(VerifierError) as e:
        load_object(load_spec(OBJ), runtime=rt, programs=["rb_leak"])
    # The dynptr took id 1, its reference id 2 (mark_dynptr_stack_regs, then
    # acquire_reference), made by the call at insn 6.
    assert "Unreleased reference id=2 alloc_insn=6" in e.value.log


def _samples(name: str) -> list[bytes]:
    from pyebpf import Runtime
    from pyebpf.collection import load_object
    from pyebpf.maps.ringbuf import RingBufferConsumer

    rt = Runtime()
    rt.verifier = "kernel"
    with load_object(load_spec(OBJ), runtime=rt, programs=[name]) as o:
        o.programs[name].test_run(data=PACKET)
        return list(RingBufferConsumer(o.maps["rb"]).poll())


def test_submitted_ringbuf_dynptr_is_the_sample_user_space_reads() -> None:
    assert _samples("rb_slice_write_submit") == [
        b"\x42" + bytes(7) + (0x01020304).to_bytes(4, "little") + bytes(4)]


def test_submitting_a_clone_commits_the_whole_reservation() -> None:
    # [0, 8) memset to 0x33, [8, 16) the packet's bytes 20..27, the rest untouched.
    assert _samples("rb_clone_adjust_copy") == [b"\x33" * 8 + bytes(range(20, 28)) + bytes(16)]


def test_failed_reservations_commit_nothing() -> None:
    assert _samples("rb_failed_reserve_is_null") == []


# -- the table ----------------------------------------------------------------------------------

def test_loader_resolves_the_ksym_kfuncs_to_the_tables_btf_ids() -> None:
    prog = load_spec(OBJ).programs["skb_adjust_clone"]
    ids = {int.from_bytes(prog.insns[i + 4:i + 8], "little")
           for i in range(0, len(prog.insns), 8)
           if prog.insns[i] == 0x85 and prog.insns[i + 1] >> 4 == 2}
    assert ids == {kd.BTF_ID_FROM_SKB, kd.BTF_ID_CLONE, kd.BTF_ID_ADJUST, kd.BTF_ID_SLICE,
                   kd.BTF_ID_SIZE}


def test_btf_ids_are_those_of_this_machines_vmlinux() -> None:
    if kernel_kfunc_id("bpf_dynptr_slice") is None:
        pytest.skip("no vmlinux BTF with the dynptr kfuncs here")
    for name in ("bpf_dynptr_from_skb", "bpf_dynptr_from_xdp", "bpf_dynptr_from_skb_meta",
                 "bpf_dynptr_slice",
                 "bpf_dynptr_slice_rdwr", "bpf_dynptr_adjust", "bpf_dynptr_is_null",
                 "bpf_dynptr_is_rdonly", "bpf_dynptr_size", "bpf_dynptr_clone",
                 "bpf_dynptr_copy", "bpf_dynptr_memset"):
        kf = kfunc_by_name(name)
        assert kf is not None and kf.btf_id == kernel_kfunc_id(name), name


def test_packet_dynptrs_are_made_only_where_the_kernel_registers_them() -> None:
    skb, xdp = kfunc_by_name("bpf_dynptr_from_skb"), kfunc_by_name("bpf_dynptr_from_xdp")
    assert skb is not None and xdp is not None
    for pt in (ProgType.SCHED_CLS, ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB,
               ProgType.LWT_XMIT, ProgType.NETFILTER, ProgType.TRACING):
        assert kfunc_allowed(skb, pt) and not kfunc_allowed(xdp, pt)
    assert kfunc_allowed(xdp, ProgType.XDP) and not kfunc_allowed(skb, ProgType.XDP)
    assert not kfunc_allowed(skb, ProgType.KPROBE)
    meta = kfunc_by_name("bpf_dynptr_from_skb_meta")
    assert meta is not None and meta.prog_types == {ProgType.SCHED_CLS, ProgType.SCHED_ACT}
    slice_ = kfunc_by_name("bpf_dynptr_slice")
    assert slice_ is not None and slice_.prog_types is None  # a common kfunc
    assert [a.kind for a in slice_.args] == [KfArgKind.PTR_TO_DYNPTR, KfArgKind.SCALAR,
                                             KfArgKind.PTR_TO_MEM_SIZE, KfArgKind.MEM_SIZE]


# -- the run-time side on local memory ----------------------------------------------------------

@pytest.fixture
def vm() -> Vm:
    return Vm([], memory=AddressSpace())


def _local(vm: Vm, content: bytes) -> tuple[int, int]:
    """A LOCAL dynptr over ``content``: (its address, the data's address)."""
    data = vm.memory.map(bytearray(content), kind="test", name="data").base
    ptr = vm.memory.map(bytearray(16), kind="test", name="dynptr").base
    kd.DynptrKern(data, len(content), BpfDynptrType.LOCAL).store(vm, ptr)
    return ptr, data


def test_dynptr_kern_layout_is_the_kernels(vm: Vm) -> None:
    ptr, data = _local(vm, bytes(8))
    kd.DynptrKern(data, 5, BpfDynptrType.XDP, rdonly=True, offset=3).store(vm, ptr)
    raw = vm.memory.read(ptr, 16)
    assert int.from_bytes(raw[8:12], "little") == 5 | 4 << 28 | 1 << 31
    assert int.from_bytes(raw[12:], "little") == 3
    assert kd.DynptrKern.load(vm, ptr) == kd.DynptrKern(data, 5, 4, True, 3)


def test_adjust_moves_the_window_and_checks_its_bounds(vm: Vm) -> None:
    ptr, data = _local(vm, bytes(range(10)))
    assert kd.bpf_dynptr_adjust(vm, ptr, 5, 4, 0, 0) == -EINVAL & (1 << 64) - 1
    assert kd.bpf_dynptr_adjust(vm, ptr, 2, 11, 0, 0) == -ERANGE & (1 << 64) - 1
    assert kd.bpf_dynptr_adjust(vm, ptr, 2, 6, 0, 0) == 0
    assert kd.bpf_dynptr_size(vm, ptr, 0, 0, 0, 0) == 4
    at = kd.bpf_dynptr_slice(vm, ptr, 1, 0, 2, 0)
    assert at == data + 3 and vm.memory.read(at, 2) == b"\x03\x04"
    assert kd.bpf_dynptr_slice(vm, ptr, 3, 0, 2, 0) == 0  # past the adjusted end


def test_clone_of_null_is_null_and_einval(vm: Vm) -> None:
    ptr, _ = _local(vm, bytes(4))
    clone, _ = _local(vm, bytes(4))
    vm.memory.write(ptr, bytes(16))
    assert kd.bpf_dynptr_clone(vm, ptr, clone, 0, 0, 0) == -EINVAL & (1 << 64) - 1
    assert kd.bpf_dynptr_is_null(vm, clone, 0, 0, 0, 0) == 1
    assert kd.bpf_dynptr_size(vm, clone, 0, 0, 0, 0) == -EINVAL & 0xFFFF_FFFF


def test_rdonly_dynptr_refuses_rdwr_slices_writes_and_memset(vm: Vm) -> None:
    ptr, data = _local(vm, bytes(4))
    kd.DynptrKern(data, 4, BpfDynptrType.LOCAL, rdonly=True).store(vm, ptr)
    assert kd.bpf_dynptr_is_rdonly(vm, ptr, 0, 0, 0, 0) == 1
    assert kd.bpf_dynptr_slice_rdwr(vm, ptr, 0, 0, 4, 0) == 0
    assert kd.bpf_dynptr_slice(vm, ptr, 0, 0, 4, 0) == data
    assert kd.bpf_dynptr_memset(vm, ptr, 0, 4, 1, 0) == -EINVAL & (1 << 64) - 1
    assert vm.memory.read(data, 4) == bytes(4)


def test_copy_between_overlapping_windows_moves_like_memmove(vm: Vm) -> None:
    ptr, data = _local(vm, bytes(range(8)))
    assert kd.bpf_dynptr_copy(vm, ptr, 2, ptr, 0, 4) == 0
    assert vm.memory.read(data, 8) == bytes([0, 1, 0, 1, 2, 3, 6, 7])
    assert kd.bpf_dynptr_copy(vm, ptr, 6, ptr, 0, 4) == -E2BIG & (1 << 64) - 1


def test_memset_fills_and_checks_the_range(vm: Vm) -> None:
    ptr, data = _local(vm, bytes(6))
    assert kd.bpf_dynptr_memset(vm, ptr, 1, 3, 0x1FF, 0) == 0  # val is a u8
    assert vm.memory.read(data, 6) == b"\x00\xff\xff\xff\x00\x00"
    assert kd.bpf_dynptr_memset(vm, ptr, 4, 3, 0, 0) == -E2BIG & (1 << 64) - 1
