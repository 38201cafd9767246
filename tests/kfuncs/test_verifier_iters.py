"""The verifier's kfunc calls and open-coded iterator rules, with the kernel's words.

Expected verdicts and messages are those Linux 6.18 gives for the same bytes
(tests/kfuncs/test_kernel_iters.py checks them against the running kernel).
"""

from __future__ import annotations

import errno

from pyebpf.isa.insn import Insn as I
from pyebpf.uapi import ProgType

from ._load import load
from ._progs import EXIT0, destroy, kcall, new, nxt, repeat, sum_range


def test_destroy_of_uninitialized_iterator_is_refused() -> None:
    r = load([*destroy(), *EXIT0])
    assert (r.accepted, r.errno) == (False, errno.EINVAL)
    assert r.error_line == "expected an initialized iter_num as arg #0"


def test_next_of_uninitialized_iterator_is_refused() -> None:
    r = load([*nxt(), *EXIT0])
    assert r.error_line == "expected an initialized iter_num as arg #0"


def test_new_over_an_active_iterator_is_refused() -> None:
    r = load([*new(), *new(), *destroy(), *EXIT0])
    assert (r.errno, r.error_line) == (errno.EINVAL, "expected uninitialized iter_num as arg #0")


def test_iterator_not_destroyed_is_a_reference_leak() -> None:
    r = load([*new(), *EXIT0])
    assert r.errno == errno.EINVAL
    assert "Unreleased reference id=1 alloc_insn=4" in r.log
    assert r.error_line == "BPF_EXIT instruction in main prog would lead to reference leak"


def test_overwritten_iterator_is_no_longer_initialized() -> None:
    r = load([*new(), I(0x7A, 10, 0, -8, 0), *destroy(), *EXIT0])
    assert r.error_line == "expected an initialized iter_num as arg #0"


def test_iterator_slot_cannot_be_read_as_data() -> None:
    r = load([*new(), I(0x79, 2, 10, -8, 0), *destroy(), *EXIT0])
    assert (r.errno, r.error_line) == (errno.EACCES, "invalid read from stack off -8+0 size 8")


def test_iterator_argument_must_point_to_the_stack() -> None:
    r = load([I(0xB7, 1, 0, 0, 0), kcall(64239), *EXIT0])
    assert r.error_line == "arg#0 expected pointer to an iterator on stack"


def test_iterator_at_unaligned_offset_is_refused() -> None:
    r = load([*new()[:1], I(0x07, 1, 0, 0, -12), *new()[2:], *destroy(), *EXIT0])
    assert "cannot pass in iter at an offset=-12" in r.log
    assert r.error_line == "expected uninitialized iter_num as arg #0"


def test_new_and_destroy_is_accepted_and_log_shows_the_iterator() -> None:
    r = load([*new(), *destroy(), *EXIT0], log_level=2, run=True)
    assert r.accepted and r.retval == 0
    assert ("4: (85) call bpf_iter_num_new#64242   ; R0=scalar() "
            "fp-8=iter_num(ref_id=1,state=active,depth=0) refs=1") in r.log


def test_repeat_loop_converges_as_the_kernel_shows() -> None:
    r = load(repeat(3), log_level=2, run=True)
    assert r.accepted and r.retval == 6
    # The queued "one more element" branch: active, one level deeper, r0 not NULL.
    assert ("from 8 to 9: R0=rdonly_mem(id=2,ref_obj_id=1,sz=4) R6=0xfffffffe R10=fp0 "
            "fp-8=iter_num(ref_id=1,state=active,depth=1) refs=1") in r.log
    # The counter is widened at depth 2, and depth 3 is equivalent to depth 2: pruned.
    assert "fp-8=iter_num(ref_id=1,state=active,depth=2)" in r.log
    assert "R6=scalar() R10=fp0 fp-8=iter_num(ref_id=1,state=active,depth=3)" in r.log
    assert "8: safe" in r.log
    assert "processed 45 insns" in r.log  # as the kernel


def test_drained_path_sees_null_and_the_drained_state() -> None:
    r = load(repeat(3), log_level=2)
    assert ("8: (85) call bpf_iter_num_next#64245          ; R0=0 "
            "fp-8=iter_num(ref_id=1,state=drained,depth=0) refs=1") in r.log


def test_element_pointer_is_readable_memory_of_four_bytes() -> None:
    r = load(sum_range(0, 10), run=True)
    assert r.accepted and r.retval == 45


def test_element_pointer_is_read_only() -> None:
    prog = sum_range(0, 10)
    prog[10] = I(0x62, 0, 0, 0, 1)  # *(u32 *)(r0 + 0) = 1
    r = load(prog)
    assert r.errno == errno.EACCES
    assert r.error_line == "R0 cannot write into rdonly_mem"


def test_element_pointer_must_be_checked_for_null() -> None:
    prog = sum_range(0, 10)
    prog[9] = I(0x15, 6, 0, 3, 12345)  # test the sum instead of r0
    r = load(prog)
    assert r.errno == errno.EACCES
    # The drained path comes first: there r0 is NULL, a scalar 0.
    assert r.error_line == "R0 invalid mem access 'scalar'"


def test_element_pointer_dies_with_the_iterator() -> None:
    # next; destroy; then read through the element pointer kept in r6.
    prog = [*new(), *nxt(), I(0x15, 0, 0, 6, 0), I(0xBF, 6, 0, 0, 0), *destroy(),
            I(0x61, 0, 6, 0, 0), I(0x95, 0, 0, 0, 0), *destroy(), *EXIT0]
    r = load(prog)
    assert not r.accepted
    assert "R6 invalid mem access 'scalar'" in r.error_line


def test_kfunc_id_that_is_not_a_function_is_refused() -> None:
    r = load([kcall(1), *EXIT0])
    assert (r.errno, r.error_line) == (errno.EINVAL, "kernel btf_id 1 is not a function")


def test_kfunc_call_from_non_gpl_program_is_refused() -> None:
    r = load([*new(), *destroy(), *EXIT0], license="MIT")
    assert r.error_line == "cannot call kernel function from non-GPL compatible program"


def test_kfunc_call_with_module_btf_offset_needs_fd_array() -> None:
    r = load([I(0x85, 0, 2, 1, 64239), *EXIT0])
    assert (r.errno, r.error_line) == (errno.EPROTO,
                                       "kfunc offset > 0 without fd_array is invalid")


def test_iterator_kfuncs_are_common_to_program_types() -> None:
    for pt in (ProgType.XDP, ProgType.SCHED_CLS, ProgType.KPROBE):
        assert load(repeat(2), prog_type=pt).accepted, pt


def test_null_kfunc_call_fails_only_when_reached() -> None:
    reached = load([kcall(0), *EXIT0])
    assert (reached.errno, reached.error_line) == (
        errno.EINVAL, "invalid kernel function call not eliminated in verifier pass")
    unreachable = load([I(0xB7, 0, 0, 0, 1), I(0x25, 0, 0, 2, 0), kcall(0), *EXIT0])
    assert unreachable.accepted
