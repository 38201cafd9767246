"""Rules for programs loaded without CAP_BPF/CAP_PERFMON: Spectre v1 masking of
pointer arithmetic (sanitize_ptr_alu), tail calls through one map only,
released pointers and map internals kept from the program."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Cmd, MapCreateAttr, MapType, ProgType, Runtime, bpf
from pyebpf.attr import ProgLoadAttr
from pyebpf.errors import VerifierError
from pyebpf.isa import Insn

EXIT = Insn(0x95)


def _rt(privileged: bool) -> Runtime:
    runtime = Runtime(privileged=privileged)
    runtime.verifier = "kernel"
    return runtime


def _load(rt: Runtime, insns: list[Insn]) -> int:
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insns=insns,
                                           license="GPL", log_level=1, log_size=1 << 20),
               runtime=rt)


def _reject(rt: Runtime, insns: list[Insn]) -> VerifierError:
    with pytest.raises(VerifierError) as info:
        _load(rt, insns)
    return info.value


def _map(rt: Runtime, map_type: MapType = MapType.ARRAY, value_size: int = 48) -> int:
    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=4,
                                             value_size=value_size, max_entries=4), runtime=rt)


def _lookup(fd: int) -> list[Insn]:
    """r0 = bpf_map_lookup_elem(map, &(u32){0}); if r0 == 0 goto exit (at the end)."""
    return [
        Insn(0x62, 10, 0, -4, 0),  # *(u32 *)(r10 - 4) = 0
        Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),  # r2 = r10 - 4
        Insn(0x18, 1, 1, 0, fd), Insn(0),  # r1 = map
        Insn(0x85, 0, 0, 0, 1),  # call bpf_map_lookup_elem
    ]


def _two_offsets_into_one_add(fd: int, second: list[Insn]) -> list[Insn]:
    """Two paths reach ``r1 += r0`` (r0 a map value): r1 = 3, or ``second``."""
    body = [
        Insn(0x15, 0, 0, 7, 0),  # if r0 == 0 goto exit
        Insn(0x71, 4, 0, 0, 0),  # r4 = *(u8 *)(r0 + 0)
        Insn(0x15, 4, 0, len(second) + 1, 1),  # if r4 == 1 goto L3
        *second,
        Insn(0x05, 0, 0, 1, 0),  # goto L4
        Insn(0xB7, 1, 0, 0, 3),  # L3: r1 = 3
        Insn(0x0F, 1, 0),  # L4: r1 += r0
        Insn(0x71, 0, 1, 0, 0),  # r0 = *(u8 *)(r1 + 0)
        Insn(0xB7, 0, 0, 0, 1), EXIT,
    ]
    body[0] = Insn(0x15, 0, 0, len(body) - 3, 0)
    return _lookup(fd) + body


def test_unpriv_pointer_add_needing_two_masks_is_rejected() -> None:
    unknown = [Insn(0xBF, 1, 4), Insn(0x57, 1, 0, 0, 7)]  # r1 = r4 & 7
    rt = _rt(False)
    err = _reject(rt, _two_offsets_into_one_add(_map(rt), unknown))
    assert err.errno == errno.EACCES
    assert err.strerror == ("R1 tried to add from different maps, paths or scalars, "
                            "pointer arithmetic with it prohibited for !root")
    rt = _rt(True)
    assert _load(rt, _two_offsets_into_one_add(_map(rt), unknown)) >= 3


def test_unpriv_pointer_add_with_one_mask_on_every_path_is_accepted() -> None:
    same = [Insn(0xB7, 1, 0, 0, 3)]  # r1 = 3 on both paths
    rt = _rt(False)
    assert _load(rt, _two_offsets_into_one_add(_map(rt), same)) >= 3


def test_unpriv_scalar_plus_map_pointer_is_unsupported_alu() -> None:
    rt = _rt(False)
    fd = _map(rt)
    prog = [Insn(0xB7, 1), Insn(0x18, 0, 1, 0, fd), Insn(0),  # r1 = 0; r0 = map
            Insn(0x0F, 1, 0),  # r1 += r0
            Insn(0xB7, 0), EXIT]
    assert _reject(rt, prog).strerror == ("R0 has pointer with unsupported alu operation, "
                                          "pointer arithmetic with it prohibited for !root")


def test_unpriv_mixed_sign_offset_is_refused_before_the_subtraction_check() -> None:
    rt = _rt(False)
    # r0 = skb->len - 5 has mixed signed bounds; r1 = fp-8; r1 += r0
    prog = [Insn(0x61, 0, 1, 0, 0), Insn(0x07, 0, 0, 0, -5), Insn(0x57, 0, 0, 0, 7),
            Insn(0x07, 0, 0, 0, -3),
            Insn(0xBF, 1, 10), Insn(0x07, 1, 0, 0, -8), Insn(0x0F, 1, 0),
            Insn(0xB7, 0), EXIT]
    assert _reject(rt, prog).strerror == ("R0 has unknown scalar with mixed signed bounds, "
                                          "pointer arithmetic with it prohibited for !root")


def _tail_call_two_maps(fd1: int, fd2: int) -> list[Insn]:
    return [
        Insn(0x61, 6, 1, 0, 0),  # r6 = skb->len
        Insn(0xB7, 3, 0, 0, 0),  # r3 = 0
        Insn(0x15, 6, 0, 3, 0),  # if r6 == 0 goto L
        Insn(0x18, 2, 1, 0, fd1), Insn(0),  # r2 = prog array 1
        Insn(0x05, 0, 0, 2, 0),  # goto call
        Insn(0x18, 2, 1, 0, fd2), Insn(0),  # L: r2 = prog array 2
        Insn(0x85, 0, 0, 0, 12),  # call bpf_tail_call
        Insn(0xB7, 0), EXIT,
    ]


def test_unpriv_tail_call_site_seeing_two_prog_arrays_is_abusing_map_ptr() -> None:
    rt = _rt(False)
    prog = _tail_call_two_maps(_map(rt, MapType.PROG_ARRAY, 4), _map(rt, MapType.PROG_ARRAY, 4))
    err = _reject(rt, prog)
    assert (err.errno, err.strerror) == (errno.EINVAL, "tail_call abusing map_ptr")
    assert err.log.rstrip().splitlines()[-1].startswith("processed ")


def test_priv_tail_call_site_may_see_two_prog_arrays() -> None:
    rt = _rt(True)
    prog = _tail_call_two_maps(_map(rt, MapType.PROG_ARRAY, 4), _map(rt, MapType.PROG_ARRAY, 4))
    assert _load(rt, prog) >= 3


def _released_then_stored(rt: Runtime) -> list[Insn]:
    """Reserve ringbuf memory, keep it in r8, discard it, then store r8 into a map value."""
    array = _map(rt, MapType.ARRAY, 48)
    ringbuf = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.RINGBUF, key_size=0,
                                                value_size=0, max_entries=4096), runtime=rt)
    return [
        *_lookup(array),
        Insn(0x55, 0, 0, 2, 0),  # if r0 != 0 goto +2
        Insn(0xB7, 0), EXIT,
        Insn(0xBF, 9, 0),  # r9 = r0
        Insn(0x18, 1, 1, 0, ringbuf), Insn(0),
        Insn(0xB7, 2, 0, 0, 8), Insn(0xB7, 3),
        Insn(0x85, 0, 0, 0, 131),  # bpf_ringbuf_reserve
        Insn(0x55, 0, 0, 2, 0),  # if r0 != 0 goto +2
        Insn(0xB7, 0), EXIT,
        Insn(0xBF, 8, 0), Insn(0xBF, 1, 8), Insn(0xB7, 2),
        Insn(0x85, 0, 0, 0, 133),  # bpf_ringbuf_discard
        Insn(0x7B, 9, 8, 0, 0),  # *(u64 *)(r9 + 0) = r8
        Insn(0xB7, 0), EXIT,
    ]


def test_released_pointer_is_unreadable_for_unpriv() -> None:
    rt = _rt(False)
    assert _reject(rt, _released_then_stored(rt)).strerror == "R8 !read_ok"


def test_released_pointer_becomes_a_scalar_for_priv() -> None:
    rt = _rt(True)
    assert _load(rt, _released_then_stored(rt)) >= 3


def _map_ptr_load(fd: int, off: int) -> list[Insn]:
    return [Insn(0x18, 1, 1, 0, fd), Insn(0), Insn(0x79, 6, 1, off, 0),  # r6 = *(u64 *)(r1+off)
            Insn(0xB7, 0, 0, 0, 1), EXIT]


def test_priv_may_read_the_ops_field_through_a_map_pointer() -> None:
    rt = _rt(True)
    assert _load(rt, _map_ptr_load(_map(rt), 0)) >= 3


def test_map_pointer_negative_read_is_rejected_with_the_struct_name() -> None:
    rt = _rt(True)
    err = _reject(rt, _map_ptr_load(_map(rt), -8))
    assert err.strerror == "R1 is bpf_array invalid negative access: off=-8"
    rt = _rt(True)
    err = _reject(rt, _map_ptr_load(_map(rt, MapType.HASH, 8), -8))
    assert err.strerror == "R1 is bpf_htab invalid negative access: off=-8"


def test_unpriv_may_not_read_through_a_map_pointer() -> None:
    rt = _rt(False)
    err = _reject(rt, _map_ptr_load(_map(rt), 0))
    assert (err.errno, err.strerror) == (
        errno.EPERM, "'struct bpf_array' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN")


def test_unpriv_variable_stack_pointer_message_prints_a_signed_offset() -> None:
    rt = _rt(False)
    prog = [Insn(0x61, 2, 1, 0, 0), Insn(0x57, 2, 0, 0, 4),  # r2 = skb->len & 4
            Insn(0x07, 2, 0, 0, -8), Insn(0x0F, 2, 10),  # r2 += -8; r2 += r10
            Insn(0xB7, 0), EXIT]
    err = _reject(rt, prog)
    assert err.strerror == ("R2 variable stack access prohibited for !root, "
                            "var_off=(0xfffffffffffffff8; 0x4) off=-8")


def _known_branch() -> list[Insn]:
    """r0 = 1; r1 = 1; r1 <<= 0; if r1 == 1 goto +1 (always); r0 = 2; exit."""
    return [Insn(0x18, 0, 0, 0, 1), Insn(0), Insn(0x18, 1, 0, 0, 1), Insn(0),
            Insn(0x67, 1, 0, 0, 0), Insn(0x15, 1, 0, 1, 1), Insn(0xB7, 0, 0, 0, 2), EXIT]


def _processed(fd: object) -> int:
    return int(str(fd.log).rsplit("processed ", 1)[1].split()[0])  # type: ignore[attr-defined]


def test_unpriv_branch_not_taken_is_checked_under_speculation() -> None:
    """The kernel's counts: 5 instructions for root, 7 unprivileged (the
    fall-through the CPU may mispredict into is walked too)."""
    assert _processed(_load(_rt(True), _known_branch())) == 5
    assert _processed(_load(_rt(False), _known_branch())) == 7


def test_unpriv_speculative_path_error_only_stops_that_path() -> None:
    """A fault reachable only by misprediction (a read through r0 = 0) doesn't
    refuse the program: that instruction gets a speculation barrier."""
    prog = [Insn(0xB7, 1, 0, 0, 1),
            Insn(0x15, 1, 0, 2, 1),  # if r1 == 1 goto +2 (always)
            Insn(0xB7, 2),
            Insn(0x79, 0, 2, 0, 0),  # r0 = *(u64 *)(r2 + 0): only speculatively
            Insn(0xB7, 0), EXIT]
    assert _load(_rt(False), prog) >= 3
