"""Regression tests, one per class of disagreement with the 6.18 kernel found on
the dev cases and fixed: each pins the kernel's verdict (and words) on a
minimal program of that class."""

from __future__ import annotations

from typing import Any

import pytest

from pyebpf import AttachType, Cmd, MapCreateAttr, MapType, ProgType, Runtime, bpf
from pyebpf.attr import ProgLoadAttr
from pyebpf.errors import VerifierError
from pyebpf.isa import Insn

EXIT = Insn(0x95)


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime()
    runtime.verifier = "kernel"
    return runtime


def _load(rt: Runtime, insns: list[Insn], ptype: ProgType = ProgType.SOCKET_FILTER,
          **kw: Any) -> Any:
    if ptype == ProgType.SK_LOOKUP:
        kw.setdefault("expected_attach_type", AttachType.SK_LOOKUP)
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=insns, license="GPL",
                                           log_level=2, log_size=1 << 24, **kw), runtime=rt)


def _reject(rt: Runtime, insns: list[Insn], ptype: ProgType = ProgType.SOCKET_FILTER
            ) -> VerifierError:
    with pytest.raises(VerifierError) as info:
        _load(rt, insns, ptype)
    return info.value


def test_var_offset_zero_store_keeps_a_spilled_zero(rt: Runtime) -> None:
    """*(u8 *)(fp + [-32, -16]) = 0 over spilled zeros leaves them zero, so a
    byte read back is the constant 0 (a valid sk_lookup return code)."""
    prog = [
        Insn(0x7A, 10, 0, -16, 0), Insn(0x7A, 10, 0, -24, 0),  # *(u64 *)(fp-16/-24) = 0
        Insn(0x85, 0, 0, 0, 7),  # r0 = bpf_get_prandom_u32()
        Insn(0xB5, 0, 0, 2, 16),  # if r0 <= 16 goto +2
        Insn(0xB7, 0), EXIT,
        Insn(0x17, 0, 0, 0, 32),  # r0 -= 32  (r0 in [-32, -16])
        Insn(0x0F, 0, 10),  # r0 += r10
        Insn(0x72, 0, 0, 0, 0),  # *(u8 *)(r0 + 0) = 0
        Insn(0x71, 0, 10, -20, 0),  # r0 = *(u8 *)(r10 - 20)
        EXIT,
    ]
    log = _load(rt, prog, ProgType.SK_LOOKUP).log
    assert "fp-24=0" in log.splitlines()[-3]


def test_var_offset_store_over_a_spilled_value_makes_it_data(rt: Runtime) -> None:
    """The same write of 1 scrubs the spills: the byte read back is unknown."""
    prog = [
        Insn(0x7A, 10, 0, -16, 0), Insn(0x7A, 10, 0, -24, 0),
        Insn(0x85, 0, 0, 0, 7), Insn(0xB5, 0, 0, 2, 16), Insn(0xB7, 0), EXIT,
        Insn(0x17, 0, 0, 0, 32), Insn(0x0F, 0, 10),
        Insn(0x72, 0, 0, 0, 1),  # *(u8 *)(r0 + 0) = 1
        Insn(0x71, 0, 10, -20, 0), EXIT,
    ]
    err = _reject(rt, prog, ProgType.SK_LOOKUP)
    assert err.strerror.startswith("At program exit the register R0 has smin=0 smax=255")


def _meta_vs_data() -> list[Insn]:
    """XDP: prove data+16 <= data_end (giving data a range), then meta+16 <= data."""
    return [
        Insn(0x61, 2, 1, 8, 0),  # r2 = xdp->data_meta
        Insn(0x61, 3, 1, 0, 0),  # r3 = xdp->data
        Insn(0x61, 4, 1, 4, 0),  # r4 = xdp->data_end
        Insn(0xBF, 5, 3), Insn(0x07, 5, 0, 0, 16),
        Insn(0x2D, 5, 4, 5, 0),  # if r5 > r4 goto exit
        Insn(0xBF, 5, 2), Insn(0x07, 5, 0, 0, 16),
        Insn(0x2D, 5, 3, 2, 0),  # if r5 > r3 goto exit
        Insn(0x71, 0, 2, 0, 0),  # r0 = *(u8 *)(r2 + 0)
        Insn(0xB7, 0), Insn(0xB7, 0), EXIT,
    ]


def test_packet_start_with_a_proven_range_still_bounds_the_metadata(rt: Runtime) -> None:
    assert int(_load(rt, _meta_vs_data(), ProgType.XDP)) >= 3


def test_socket_lookup_may_take_its_tuple_from_the_packet(rt: Runtime) -> None:
    prog = [
        Insn(0x61, 2, 1, 76, 0), Insn(0x61, 3, 1, 80, 0),  # r2 = data; r3 = data_end
        Insn(0xBF, 0, 2), Insn(0x07, 0, 0, 0, 64),
        Insn(0x2D, 0, 3, 8, 0),  # if r2 + 64 > data_end goto exit
        Insn(0xB7, 3, 0, 0, 36), Insn(0xB7, 4), Insn(0xB7, 5),
        Insn(0x85, 0, 0, 0, 84),  # bpf_sk_lookup_tcp(ctx, data, 36, 0, 0)
        Insn(0x15, 0, 0, 2, 0),  # if r0 == 0 goto +2
        Insn(0xBF, 1, 0), Insn(0x85, 0, 0, 0, 86),  # bpf_sk_release(r0)
        Insn(0xB7, 0), EXIT,
    ]
    assert int(_load(rt, prog, ProgType.SCHED_CLS)) >= 3


# -- liveness: what no path reads doesn't keep states apart ---------------------------------------
def _processed(log: str) -> int:
    return int(log.rsplit("processed ", 1)[1].split()[0])


def test_dead_stack_slots_do_not_block_pruning(rt: Runtime) -> None:
    """Six branches store different values into never-read slots: the kernel (and
    we) prune at each join, 44 instructions in all (not 180)."""
    prog = [Insn(0xBF, 2, 10), Insn(0x7B, 2, 1, -8, 0)]  # r2 = fp; *(u64 *)(r2 - 8) = r1
    for k, off in enumerate((-8, -16, -8, -16, -8, -32)):
        prog += [Insn(0x15, 1, 0, 1, k),  # if r1 == k goto +1
                 Insn(0x7A, 2, 0, off, k)]  # *(u64 *)(r2 + off) = k
    prog += [Insn(0xB7, 0), EXIT]
    assert _processed(_load(rt, prog).log) == 44


def test_dead_register_does_not_block_pruning(rt: Runtime) -> None:
    """r0 and r3 differ between the two paths into insn 10, but both are written
    before any read there: the second path is pruned."""
    prog = [
        Insn(0x85, 0, 0, 0, 7),  # r0 = bpf_get_prandom_u32()
        *(Insn(0xB7, r, 0, 0, 1) for r in range(3, 10)),  # r3..r9 = 1
        Insn(0x15, 0, 0, 1, 0),  # 8: if r0 == 0 goto +1
        Insn(0xB7, 3, 0, 0, 2),  # r3 = 2
        Insn(0xB7, 3, 0, 0, 0),  # 10: r3 = 0
        Insn(0xBF, 0, 3), EXIT,
    ]
    assert "from 8 to 10: safe" in _load(rt, prog).log.replace("\n\n", "\n")


# -- BTF special fields: spin locks and timers -------------------------------------------------
def _btf_map(rt: Runtime, value_type_id: int, value_size: int) -> int:
    pytest.importorskip("pyebpf.btf_load")
    from pyebpf.attr import record_class
    from pyebpf.testing.kernel_cases import SHARED_BTF_HEX

    blob = bytes.fromhex(SHARED_BTF_HEX)
    btf_fd = bpf(Cmd.BTF_LOAD, record_class(Cmd.BTF_LOAD)(btf=blob, btf_size=len(blob)),
                 runtime=rt)
    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                             value_size=value_size, max_entries=1,
                                             btf_fd=int(btf_fd), btf_key_type_id=1,
                                             btf_value_type_id=value_type_id), runtime=rt)


def _lookup_into(fd: int, reg: int) -> list[Insn]:
    return [Insn(0x62, 10, 0, -4, 0), Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),
            Insn(0x18, 1, 1, 0, fd), Insn(0), Insn(0x85, 0, 0, 0, 1),
            Insn(0x55, 0, 0, 1, 0), EXIT,  # if r0 != 0 goto +1; exit (r0 = 0)
            Insn(0xBF, reg, 0)]


def test_spin_unlock_of_another_map_value_is_rejected(rt: Runtime) -> None:
    fd = _btf_map(rt, 3, 8)  # struct { int cnt; struct bpf_spin_lock l; }
    prog = [*_lookup_into(fd, 6), *_lookup_into(fd, 7),
            Insn(0xBF, 1, 6), Insn(0x07, 1, 0, 0, 4), Insn(0x85, 0, 0, 0, 93),  # lock r6's
            Insn(0xBF, 1, 7), Insn(0x07, 1, 0, 0, 4), Insn(0x85, 0, 0, 0, 94),  # unlock r7's
            Insn(0xB7, 0), EXIT]
    assert _reject(rt, prog, ProgType.CGROUP_SKB).strerror == "bpf_spin_unlock of different lock"


def test_spin_lock_field_is_not_loadable(rt: Runtime) -> None:
    fd = _btf_map(rt, 3, 8)
    prog = [*_lookup_into(fd, 6), Insn(0x61, 0, 6, 4, 0), EXIT]  # r0 = *(u32 *)(r6 + 4)
    assert _reject(rt, prog, ProgType.CGROUP_SKB).strerror == (
        "bpf_spin_lock cannot be accessed directly by load/store")


def test_tracing_programs_may_not_use_spin_lock_maps(rt: Runtime) -> None:
    fd = _btf_map(rt, 3, 8)
    prog = [Insn(0x18, 1, 1, 0, fd), Insn(0), Insn(0xB7, 0), EXIT]
    assert _reject(rt, prog, ProgType.KPROBE).strerror == (
        "tracing progs cannot use bpf_spin_lock yet")


# -- sockmap lookups acquire a socket -------------------------------------------------------------
def _sockmap_lookup(rt: Runtime, release: bool) -> list[Insn]:
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.SOCKMAP, key_size=4, value_size=4,
                                           max_entries=1), runtime=rt)
    prog = [Insn(0x62, 10, 0, -4, 0), Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),
            Insn(0x18, 1, 1, 0, int(fd)), Insn(0), Insn(0x85, 0, 0, 0, 1)]
    if release:
        prog += [Insn(0x15, 0, 0, 3, 0),  # if r0 == 0 goto exit
                 Insn(0x61, 6, 0, 4, 0),  # r6 = sk->type (a full socket field)
                 Insn(0xBF, 1, 0), Insn(0x85, 0, 0, 0, 86)]  # bpf_sk_release(r0)
    return [*prog, Insn(0xB7, 0), EXIT]


def test_sockmap_lookup_result_must_be_released(rt: Runtime) -> None:
    pytest.importorskip("pyebpf.maps.sockmap")
    err = _reject(rt, _sockmap_lookup(rt, False), ProgType.SK_SKB)
    assert err.strerror == "BPF_EXIT instruction in main prog would lead to reference leak"
    assert "Unreleased reference id=" in err.log


def test_sockmap_lookup_result_is_a_socket(rt: Runtime) -> None:
    pytest.importorskip("pyebpf.maps.sockmap")
    assert int(_load(rt, _sockmap_lookup(rt, True), ProgType.SK_SKB)) >= 3


# -- kptr fields of map values --------------------------------------------------------------------
def _kptr_prog(fd: int, body: list[Insn]) -> list[Insn]:
    """r0 = lookup(map of struct btf_ptr {unref kptr @0; ref kptr @8; ref kptr @16}); body."""
    return [Insn(0x62, 10, 0, -4, 0), Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),
            Insn(0x18, 1, 1, 0, fd), Insn(0), Insn(0x85, 0, 0, 0, 1),
            Insn(0x55, 0, 0, 1, 0), EXIT, *body, Insn(0xB7, 0), EXIT]


@pytest.mark.parametrize(("body", "message"), [
    ([Insn(0x7A, 0, 0, 0, 1)], "BPF_ST imm must be 0 when storing to kptr at off=0"),
    ([Insn(0x07, 0, 0, 0, 7), Insn(0x7A, 0, 0, 0, 0)], "kptr access misaligned expected=0 off=7"),
    ([Insn(0xBF, 1, 0), Insn(0x7B, 0, 1, 8, 0)], "store to referenced kptr disallowed"),
    ([Insn(0x61, 1, 0, 0, 0)], "kptr access size must be BPF_DW"),
])
def test_kptr_fields_take_only_whole_loads_and_null_stores(rt: Runtime, body: list[Insn],
                                                          message: str) -> None:
    fd = _btf_map(rt, 14, 24)
    assert _reject(rt, _kptr_prog(fd, body), ProgType.SCHED_CLS).strerror == message


def test_kptr_field_is_not_for_helpers(rt: Runtime) -> None:
    fd = _btf_map(rt, 14, 24)
    body = [Insn(0x18, 1, 1, 0, fd), Insn(0), Insn(0x07, 0, 0, 0, 2), Insn(0xBF, 2, 0),
            Insn(0x85, 0, 0, 0, 3)]  # bpf_map_delete_elem(map, value + 2)
    assert _reject(rt, _kptr_prog(fd, body), ProgType.SCHED_CLS).strerror == (
        "kptr cannot be accessed indirectly by helper")


def test_kptr_load_is_a_maybe_null_pointer_and_null_store_is_fine(rt: Runtime) -> None:
    fd = _btf_map(rt, 14, 24)
    body = [Insn(0x79, 1, 0, 0, 0),  # r1 = unref kptr
            Insn(0x7A, 0, 0, 0, 0)]  # unref kptr = NULL
    log = _load(rt, _kptr_prog(fd, body), ProgType.SCHED_CLS).log
    assert "R1=untrusted_ptr_or_null_" in log


# -- linked scalars at a constant delta (BPF_ADD_CONST) --------------------------------------------
def _linked_delta_prog() -> list[Insn]:
    return [
        Insn(0x85, 0, 0, 0, 7),  # r0 = bpf_get_prandom_u32()
        Insn(0xBF, 1, 0),  # r1 = r0          (linked)
        Insn(0x07, 1, 0, 0, 4),  # r1 += 4     (r1 = r0 + 4)
        Insn(0x25, 0, 0, 4, 10),  # if r0 > 10 goto out
        Insn(0x25, 1, 0, 1, 14),  # if r1 > 14 goto bad   (never: r1 <= 14)
        Insn(0x05, 0, 0, 2, 0),  # goto out
        Insn(0x79, 0, 10, 8, 0),  # bad: r0 = *(u64 *)(r10 + 8)
        EXIT,
        Insn(0xB7, 0), EXIT,  # out
    ]


def test_bound_learned_for_a_register_reaches_its_copy_plus_constant(rt: Runtime) -> None:
    log = _load(rt, _linked_delta_prog()).log
    assert "R1=scalar(id=1+4" in log


def test_unprivileged_programs_do_not_link_at_a_delta() -> None:
    unpriv = Runtime(privileged=False)
    unpriv.verifier = "kernel"
    err = _reject(unpriv, _linked_delta_prog())
    assert err.strerror == "invalid read from stack R10 off=8 size=8"


def test_kptr_store_needs_a_pointer_to_its_struct_start(rt: Runtime) -> None:
    fd = _btf_map(rt, 14, 24)
    body = [Insn(0x79, 1, 0, 0, 0),  # r1 = unref kptr (maybe NULL)
            Insn(0x55, 1, 0, 1, 0), Insn(0x05, 0, 0, 2, 0),  # if r1 == 0 goto out
            Insn(0x07, 1, 0, 0, 4),  # r1 += 4
            Insn(0x7B, 0, 1, 0, 0)]  # unref kptr = r1
    err = _reject(rt, _kptr_prog(fd, body), ProgType.SCHED_CLS)
    assert err.strerror == (
        "invalid kptr access, R1 type=untrusted_ptr_prog_test_ref_kfunc "
        "expected=ptr_prog_test_ref_kfunc or untrusted_ptr_prog_test_ref_kfunc")


# -- helper availability ------------------------------------------------------------------------
_COARSE = [Insn(0x85, 0, 0, 0, 160), Insn(0xB7, 0), EXIT]  # bpf_ktime_get_coarse_ns()


@pytest.mark.parametrize("ptype", [ProgType.KPROBE, ProgType.PERF_EVENT, ProgType.TRACEPOINT,
                                   ProgType.RAW_TRACEPOINT])
def test_tracing_programs_may_not_read_the_coarse_clock(rt: Runtime, ptype: ProgType) -> None:
    assert _reject(rt, _COARSE, ptype).strerror == (
        "program of this type cannot use helper bpf_ktime_get_coarse_ns#160")


@pytest.mark.parametrize("ptype", [ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.XDP])
def test_other_programs_may_read_the_coarse_clock(rt: Runtime, ptype: ProgType) -> None:
    assert int(_load(rt, _COARSE, ptype)) >= 3


# -- precision: only values that decided something keep states apart ----------------------
def test_infinite_loop_report_shows_the_precise_counter(rt: Runtime) -> None:
    """r0 = 0; goto +0; if r0 < 4 goto -2: the branch is decided by r0, so the
    kernel's "old state" shows it precise: R0=P0."""
    prog = [Insn(0xB7, 0), Insn(0x05, 0, 0, 0, 0), Insn(0xA5, 0, 0, -2, 4), EXIT]
    err = _reject(rt, prog, ProgType.TRACEPOINT)
    assert err.strerror == "infinite loop detected at insn 1"
    assert "old state: R0=P0 R1=ctx() R10=fp0" in err.log


def _stored_either_value(fd: int) -> list[Insn]:
    """r3 is 1 or 2 on two paths, then only stored into a map value."""
    return [
        Insn(0x85, 0, 0, 0, 7), Insn(0xBF, 6, 0),  # r6 = bpf_get_prandom_u32()
        Insn(0x62, 10, 0, -4, 0), Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),
        Insn(0x18, 1, 1, 0, fd), Insn(0), Insn(0x85, 0, 0, 0, 1),
        Insn(0x55, 0, 0, 2, 0), Insn(0xB7, 0), EXIT,  # if r0 == 0: exit
        Insn(0xBF, 7, 0),  # 11: r7 = value
        Insn(0xB7, 3, 0, 0, 1),  # r3 = 1
        Insn(0x15, 6, 0, 1, 0),  # 13: if r6 == 0 goto +1 (a checkpoint here)
        Insn(0xB7, 3, 0, 0, 2),  # r3 = 2
        # enough instructions and jumps for the next checkpoint (is_state_visited)
        *(Insn(0xB7, r, 0, 0, 0) for r in (4, 5, 8, 9, 4, 5)),
        Insn(0x05, 0, 0, 0, 0),  # 21: goto +0 (its target is a prune point)
        Insn(0x7B, 7, 3, 0, 0),  # 22: *(u64 *)(r7 + 0) = r3
        Insn(0xB7, 0), EXIT,
    ]


def test_imprecise_scalar_does_not_block_pruning(rt: Runtime) -> None:
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=8,
                                           max_entries=1), runtime=rt)
    log = _load(rt, _stored_either_value(int(fd))).log
    assert "22: safe" in log  # the path reaching 22 a second time is pruned there


def test_unprivileged_scalars_are_all_precise() -> None:
    unpriv = Runtime(privileged=False)
    unpriv.verifier = "kernel"
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=8,
                                           max_entries=1), runtime=unpriv)
    log = _load(unpriv, _stored_either_value(int(fd))).log
    assert "22: safe" not in log


def _lookup_then_read(map_fd: int, key_store: list[Insn]) -> list[Insn]:
    """Look a key stored by ``key_store`` up and read the value without a NULL check."""
    return [*key_store,
            Insn(0xBF, 2, 10, 0, 0),  # r2 = r10
            Insn(0x07, 2, 0, 0, -8),  # r2 += -8
            Insn(0x18, 1, 1, 0, map_fd), Insn(0, 0, 0, 0, 0),  # r1 = map
            Insn(0x85, 0, 0, 0, 1),  # call bpf_map_lookup_elem
            Insn(0x79, 0, 0, 0, 0),  # r0 = *(u64 *)(r0 + 0)
            EXIT]


@pytest.mark.parametrize(("key_store", "flags", "accepted"), [
    ([Insn(0x62, 10, 0, -8, 1)], 0, True),  # *(u32 *)(r10 - 8) = 1
    ([Insn(0xB7, 3, 0, 0, 1), Insn(0x63, 10, 3, -8, 0)], 0, True),  # 4-byte spill of 1
    # A key spilled at 8 bytes is not a 4-byte constant for get_constant_map_key.
    ([Insn(0xB7, 3, 0, 0, 1), Insn(0x7B, 10, 3, -8, 0)], 0, False),
    # An inner map's template may stand for a smaller map at run time.
    ([Insn(0x62, 10, 0, -8, 1)], 1 << 12, False),
], ids=["st_imm", "spill32", "spill64_is_not_a_key", "inner_map_template"])
def test_array_lookup_with_constant_key_needs_no_null_check_only_as_the_kernel_allows(
        rt: Runtime, key_store: list[Insn], flags: int, accepted: bool) -> None:
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=8,
                                           max_entries=4, map_flags=flags), runtime=rt)
    prog = _lookup_then_read(int(fd), key_store)
    if accepted:
        _load(rt, prog)
    else:
        assert "invalid mem access 'map_value_or_null'" in str(_reject(rt, prog))


def test_unprivileged_log_prints_every_scalar_as_precise() -> None:
    # The kernel's __mark_reg_unknown sets precise = !bpf_capable: its unprivileged
    # logs show P on every scalar (dev case "and/invalid range check").
    unpriv = Runtime(privileged=False)
    prog = [Insn(0xB7, 3, 0, 0, 1),  # r3 = 1
            Insn(0xBF, 4, 10, 0, 0),  # r4 = r10
            Insn(0x0F, 4, 3, 0, 0),  # r4 += r3: refused unprivileged
            Insn(0xB7, 0), EXIT]
    log = _reject(unpriv, prog).log
    assert "0: (b7) r3 = 1                        ; R3=P1" in log
