"""examples/iter_num_loops.o: libbpf's bpf_for / bpf_repeat loops, as clang-19 builds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyebpf import Runtime
from pyebpf.collection import load_object
from pyebpf.elf import load_spec

from ._kprog import kernel_kfunc_id, kernel_load_spec_program

OBJ = Path(__file__).parents[2] / "examples" / "iter_num_loops.o"

#: program -> what it returns (n = 10 in .rodata).
#: in_subprogram: triangle(4) + triangle(skb->len & 7), and a socket filter's test run
#: of 64 bytes has skb->len = 64 - ETH_HLEN = 50: 10 + triangle(2) = 13.
EXPECTED = {"sum_squares": 285, "repeat_twice": 20, "sum_table": 136, "empty_range": 0,
            "nested_pairs": 28, "in_subprogram": 13}


def test_loader_resolves_the_ksym_kfuncs_to_btf_ids() -> None:
    spec = load_spec(OBJ)
    prog = spec.programs["repeat_twice"]
    calls = [prog.insns[i:i + 8] for i in range(0, len(prog.insns), 8)
             if prog.insns[i] == 0x85 and prog.insns[i + 1] >> 4 == 2]
    ids = [int.from_bytes(c[4:], "little") for c in calls]
    assert ids == [64242, 64245, 64239]  # new, next, destroy


def test_every_loop_verifies_and_runs() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    with load_object(OBJ, runtime=rt) as o:
        got = {n: p.test_run(data=bytes(64)).retval for n, p in o.programs.items()}
    assert got == EXPECTED


def test_rodata_bound_is_what_the_loop_counts_to() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    spec = load_spec(OBJ)
    spec.maps[".rodata"].data = (3).to_bytes(4, "little") + spec.maps[".rodata"].data[4:]
    with load_object(spec, runtime=rt, programs=["sum_squares", "repeat_twice"]) as o:
        assert o.programs["sum_squares"].test_run(data=bytes(64)).retval == 0 + 1 + 4
        assert o.programs["repeat_twice"].test_run(data=bytes(64)).retval == 6


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kernel_accepts_and_returns_the_same(name: str) -> None:
    if kernel_kfunc_id("bpf_iter_num_new") is None:
        pytest.skip("no vmlinux BTF with bpf_iter_num_new on this kernel")
    r = kernel_load_spec_program(load_spec(OBJ), name)
    assert r.accepted, r.log
    assert r.retval == EXPECTED[name]
