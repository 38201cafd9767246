"""Explaining verifier rejections (pyebpf.explain): the path, and a counterexample."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from pyebpf import Map, MapType, ProgType, Runtime, VerifierError, load_object
from pyebpf.explain import explain, explain_load
from pyebpf.isa.asm import assemble

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

BOUNDS_OFF_BY_ONE = """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 34
mov %r0, 2
jgt %r4, %r3, +1
ldxb %r0, [%r2+34]
exit
"""


def map_program(text: str, m: Map, slot: int) -> list:  # type: ignore[type-arg]
    """Assemble ``text``, whose lddw at ``slot`` names map ``m`` by fd."""
    insns = assemble(text.format(fd=m.fd))
    insns[slot] = attrs.evolve(insns[slot], src=1)  # BPF_PSEUDO_MAP_FD
    return insns


def test_packet_read_without_a_bounds_check_gets_a_short_packet() -> None:
    e = explain_load(ProgType.XDP, "ldxw %r2, [%r1+0]\nldxb %r0, [%r2+20]\nexit",
                     runtime=Runtime())
    assert e is not None and e.insn_idx == 1
    assert [p.idx for p in e.path] == [0, 1]
    assert (2, "pkt(r=0)") in e.path[1].regs
    cx = e.counterexample
    assert cx is not None and cx.kind == "packet out of bounds" and cx.demonstrated
    assert cx.data is not None and len(cx.data) <= 20


def test_off_by_one_bounds_check_is_driven_to_the_exact_length() -> None:
    e = explain_load(ProgType.XDP, BOUNDS_OFF_BY_ONE, runtime=Runtime())
    assert e is not None
    assert [p.branch for p in e.path if p.branch is not None] == [False]
    cx = e.counterexample
    assert cx is not None and cx.kind == "packet out of bounds"
    assert cx.data is not None and len(cx.data) == 34  # passes the check, reads byte 34
    assert "data_end+0" in cx.detail
    assert [s.pc for s in cx.trace][-2:] == [6, 7]  # pyebpf's tailroom hides the overrun


def test_null_map_value_dereference_is_shown_with_the_map_contents() -> None:
    rt = Runtime()
    m = Map.create(MapType.HASH, key_size=4, value_size=8, max_entries=4, name="counts",
                   runtime=rt)
    m[1] = bytes(8)
    insns = map_program("""
mov %r1, 0
stxw [%r10-4], %r1
mov %r2, %r10
add %r2, -4
lddw %r1, {fd}
call 1
ldxdw %r0, [%r0+0]
exit
""", m, 4)
    e = explain_load(ProgType.XDP, insns, runtime=rt)
    assert e is not None and "map_value_or_null" in e.message
    cx = e.counterexample
    assert cx is not None and cx.kind == "NULL dereference"
    assert cx.maps == {"counts": {(1).to_bytes(4, "little"): bytes(8)}}  # key 0 is absent
    assert dict(m.items()) == {(1).to_bytes(4, "little"): bytes(8)}  # left as it was


def test_null_check_taken_the_other_way_fills_the_map() -> None:
    """The verifier fears the value's second half (off 8, value_size 8): the run must
    find the key, so the search fills the map with the key the program looked up."""
    rt = Runtime()
    m = Map.create(MapType.HASH, key_size=4, value_size=8, max_entries=4, name="m", runtime=rt)
    insns = map_program("""
mov %r1, 7
stxw [%r10-4], %r1
mov %r2, %r10
add %r2, -4
lddw %r1, {fd}
call 1
jeq %r0, 0, +1
ldxdw %r0, [%r0+8]
exit
""", m, 4)
    e = explain_load(ProgType.XDP, insns, runtime=rt)
    assert e is not None and e.insn_idx == 8
    cx = e.counterexample
    assert cx is not None and cx.maps == {"m": {(7).to_bytes(4, "little"): bytes(8)}}
    assert cx.kind == "map value out of bounds"
    assert "offset 8 of a value of map m (8 bytes): 8 past its end" in cx.detail
    assert "(the interpreter faults: invalid read of 8 bytes" in cx.detail
    assert len(m) == 0


def test_uninitialised_stack_read_unprivileged() -> None:
    e = explain_load(ProgType.SOCKET_FILTER, "ldxdw %r0, [%r10-8]\nexit",
                     runtime=Runtime(privileged=False))
    assert e is not None and e.message.startswith("invalid read from stack")
    cx = e.counterexample
    assert cx is not None and cx.kind == "uninitialised stack read"
    assert "fp-8" in cx.detail


def test_uninitialised_stack_passed_to_a_helper() -> None:
    rt = Runtime(privileged=False)
    m = Map.create(MapType.HASH, key_size=4, value_size=8, max_entries=4, runtime=rt)
    insns = map_program("mov %r2, %r10\nadd %r2, -4\nlddw %r1, {fd}\ncall 1\n"
                        "mov %r0, 0\nexit", m, 2)
    e = explain_load(ProgType.SOCKET_FILTER, insns, runtime=rt)
    assert e is not None and e.counterexample is not None
    assert e.counterexample.kind == "uninitialised stack read"
    assert "passes r2" in e.counterexample.detail


def test_uninitialised_register() -> None:
    e = explain_load(ProgType.SOCKET_FILTER, "mov %r0, 0\nadd %r0, %r2\nexit",
                     runtime=Runtime(privileged=False))
    assert e is not None and e.message == "R2 !read_ok"
    assert e.counterexample is not None and e.counterexample.kind == "uninitialised register"


def test_explain_an_object_that_fails_to_load() -> None:
    with pytest.raises(VerifierError) as exc:
        load_object(EXAMPLES / "xdp_buggy.o", runtime=Runtime())
    e = exc.value.explain()  # the method on the error
    assert e.prog_name == "xdp_buggy"
    assert e.location().endswith("xdp_buggy.c:28 'return ip->protocol == IPPROTO_UDP ? "
                                 "XDP_DROP : XDP_PASS;'")
    cx = e.counterexample
    assert cx is not None and cx.kind == "packet out of bounds"
    assert cx.data is not None and cx.data[12:14] == b"\x08\x00"  # an IPv4 frame
    assert len(cx.data) < 24  # too short for ip->protocol
    text = str(e)
    assert "Path to it" in text and "[not taken]" in text and "Counterexample" in text


def test_accepted_program_is_not_explained() -> None:
    assert explain_load(ProgType.XDP, "mov %r0, 2\nexit", runtime=Runtime()) is None


def test_search_can_be_skipped() -> None:
    e = explain_load(ProgType.XDP, BOUNDS_OFF_BY_ONE, runtime=Runtime(), counterexample=False)
    assert e is not None and e.counterexample is None and len(e.path) == 7


def test_explain_needs_a_load_context() -> None:
    with pytest.raises(ValueError, match="no load context"):
        explain(VerifierError(13, "made up"))


def test_off_by_one_index_into_a_map_value_is_driven_to_the_bound() -> None:
    """The check lets index 9 through; only 9 reads past the 16-byte value."""
    rt = Runtime()
    m = Map.create(MapType.ARRAY, key_size=4, value_size=16, max_entries=1, name="vals",
                   runtime=rt)
    insns = map_program("""
mov %r6, %r1
mov %r1, 0
stxw [%r10-4], %r1
mov %r2, %r10
add %r2, -4
lddw %r1, {fd}
call 1
jeq %r0, 0, +9
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 1
jgt %r4, %r3, +4
ldxb %r4, [%r2+0]
jgt %r4, 9, +2
add %r0, %r4
ldxdw %r0, [%r0+0]
exit
""", m, 5)
    e = explain_load(ProgType.XDP, insns, runtime=rt)
    assert e is not None and e.insn_idx == 17
    cx = e.counterexample
    assert cx is not None and cx.kind == "map value out of bounds"
    assert cx.data is not None and cx.data[0] == 9
    assert "offset 9 of a value of map vals (16 bytes): 1 past its end" in cx.detail


def test_an_infinite_loop_runs_out_of_budget_without_the_verifier() -> None:
    e = explain_load(ProgType.XDP, "mov %r0, 0\njeq %r0, 0, -1\nexit", runtime=Runtime())
    assert e is not None and e.message == "infinite loop detected at insn 1"
    assert e.insn_idx == 1 and all(p.branch for p in e.path[1:-1])
    cx = e.counterexample
    assert cx is not None and cx.kind == "no termination"


def test_a_rejection_before_the_walk_has_no_path() -> None:
    e = explain_load(ProgType.XDP, "mov %r0, 0\nexit\nmov %r0, 1\nexit", runtime=Runtime())
    assert e is not None and e.message == "unreachable insn 2"
    assert e.path == [] and e.insn_idx is None and e.counterexample is None
    assert "before the walk" in e.note


def test_a_byte_the_program_computes_with_is_searched_exhaustively() -> None:
    e = explain_load(ProgType.XDP, """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 1
jgt %r4, %r3, +6
ldxb %r5, [%r2+0]
mul %r5, 3
add %r5, 7
jne %r5, 100, +2
ldxb %r0, [%r2+40]
exit
mov %r0, 2
exit
""", runtime=Runtime())
    assert e is not None and e.counterexample is not None
    assert e.counterexample.kind == "packet out of bounds"
    assert e.counterexample.data is not None and e.counterexample.data[0] * 3 + 7 == 100


# -- against the kernel ---------------------------------------------------------------------
def _kernel() -> bool:
    from pyebpf.testing.kernel import kernel_available

    return kernel_available()


def _kernel_path(log: str) -> list[int]:
    """The instruction indices of a level-1 kernel log: the path that failed."""
    import re

    return [int(m.group(1)) for m in re.finditer(r"^(\d+): \([0-9a-f]{2}\)", log, re.M)]


@pytest.mark.kernel
@pytest.mark.skipif(not _kernel(), reason="the kernel's bpf() is not available here")
@pytest.mark.parametrize("text", [
    "ldxw %r2, [%r1+0]\nldxb %r0, [%r2+20]\nexit",
    BOUNDS_OFF_BY_ONE,
    "mov %r0, 0\njeq %r0, 0, -1\nexit",
], ids=["unchecked", "off-by-one", "infinite-loop"])
def test_the_path_is_the_one_the_kernel_logs(text: str) -> None:
    from pyebpf.isa.insn import encode
    from pyebpf.testing.kernel_prog import kernel_prog_load

    insns = assemble(text)
    with pytest.raises(VerifierError) as kernel:
        kernel_prog_load(ProgType.XDP, encode(insns))
    e = explain_load(ProgType.XDP, insns, runtime=Runtime(), counterexample=False)
    assert e is not None
    kpath = _kernel_path(kernel.value.log)
    assert [p.idx for p in e.path][-len(kpath):] == kpath


@pytest.mark.kernel
@pytest.mark.skipif(not _kernel(), reason="the kernel's bpf() is not available here")
def test_the_kernel_rejects_the_buggy_example_on_the_same_path() -> None:
    from pyebpf.elf import load_spec
    from pyebpf.testing.kernel_prog import KernelCollection

    with pytest.raises(VerifierError) as kernel:
        KernelCollection.from_spec(load_spec(EXAMPLES / "xdp_buggy.o")).close()
    with pytest.raises(VerifierError) as ours:
        load_object(EXAMPLES / "xdp_buggy.o", runtime=Runtime())
    e = ours.value.explain(counterexample=False)
    assert [p.idx for p in e.path] == _kernel_path(kernel.value.log)
