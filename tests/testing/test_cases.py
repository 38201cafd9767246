"""pyebpf.testing.cases: (packet, initial maps) -> (retval, packet, final maps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyebpf import Map, MapType, Program, ProgType, asm, load_object
from pyebpf.testing.cases import (
    CaseMismatch,
    CaseRunner,
    make_runtime,
    pack_ctx,
    read_maps,
    run_case,
    seed_maps,
)
from pyebpf.testing.kernel import kernel_available, possible_cpus
from pyebpf.testing.packets import ethernet, ipv4, udp

DATA = Path(__file__).resolve().parent.parent / "data"
FLOWS = DATA / "testing" / "flows.o"
GLOBALS = DATA / "elf" / "globals.o"
FRAME = ethernet(ipv4(udp(b"hello", sport=5, dport=6)))
XDP_DROP, XDP_PASS = 1, 2
needs_kernel = pytest.mark.skipif(not kernel_available(),
                                  reason="the kernel's bpf() is not available here")


@pytest.fixture
def flows():
    coll = load_object(FLOWS, runtime=make_runtime())
    yield coll
    coll.close()


def test_make_runtime_applies_every_setting() -> None:
    rt = make_runtime(nr_cpus=3, cpu=2, seed=9, clock_ns=10, clock_step_ns=1, pid=7, tgid=8,
                      uid=1, gid=2, comm="x", privileged=False, verifier="structural")
    assert (rt.nr_cpus, rt.cpu, rt.seed, rt.pid, rt.tgid, rt.uid, rt.gid, rt.comm) == (
        3, 2, 9, 7, 8, 1, 2, "x")
    assert (rt.privileged, rt.verifier, rt.clock.ns, rt.clock.step_ns) == (
        False, "structural", 10, 1)


def test_make_runtime_rejects_unknown_settings_and_a_cpu_out_of_range() -> None:
    with pytest.raises(TypeError, match="unknown runtime settings: cpus"):
        make_runtime(cpus=2)
    with pytest.raises(ValueError, match="cpu 2 is not one of the runtime's 2 CPUs"):
        make_runtime(cpu=2)


def test_same_settings_give_the_same_prandom_and_clock() -> None:
    prog = "call 7\nmov %r6, %r0\ncall 5\nadd %r0, %r6\nexit"
    a, b = (Program.load(ProgType.XDP, asm(prog), runtime=make_runtime()) for _ in range(2))
    assert run_case(a, FRAME).retval == run_case(b, FRAME).retval


def test_run_case_of_an_object_seeds_runs_and_reads_back(flows) -> None:
    r = run_case(flows, FRAME, maps={"config": {0: {"drop_proto": 17}}})
    assert r.retval == XDP_DROP and r.packet == FRAME
    assert r.maps["verdicts"] == {0: (0, 0), 1: (1, 0)}
    (key,) = r.maps["flows"]
    assert (key.sport, key.dport, key.proto) == (5, 6, 17)


def test_seeding_makes_a_hash_map_hold_exactly_the_given_entries(flows) -> None:
    run_case(flows, FRAME)
    stale = {"saddr": 1, "proto": 99}
    seed_maps(flows, {"flows": [(stale, {"packets": 5})]})
    assert read_maps(flows)["flows"] == [(stale, {"packets": 5})]


def test_seeding_an_array_zeroes_the_slots_not_given(flows) -> None:
    seed_maps(flows, {"verdicts": {1: [3, 4]}})
    seed_maps(flows, {"verdicts": {0: 7}})
    assert read_maps(flows)["verdicts"] == {0: (7, 7), 1: (0, 0)}


def test_seeding_an_unknown_map_names_the_maps(flows) -> None:
    with pytest.raises(KeyError, match="no map 'flow' to seed"):
        run_case(flows, FRAME, maps={"flow": {}})


def test_global_data_reads_as_records_of_its_variables() -> None:
    coll = load_object(GLOBALS, runtime=make_runtime())
    try:
        r = run_case(coll, FRAME, maps={".bss": {0: {"packets": 41}}})
        assert r.maps[".bss"][0].packets == 42
        assert r.maps[".data"][0].bytes_seen == 100 + 3 * len(FRAME)
        assert r.maps[".rodata"][0].drop_port == 7
    finally:
        coll.close()


def test_a_program_without_maps_runs_alone() -> None:
    prog = Program.load(ProgType.SOCKET_FILTER, asm("mov %r0, 5\nexit"), runtime=make_runtime())
    r = run_case(prog, FRAME)
    # An l3 program's packet comes back with a zeroed Ethernet header (as on Linux).
    assert (r.retval, r.packet, r.maps) == (5, bytes(14) + FRAME[14:], {})


def test_run_case_takes_a_collection_or_a_program(flows) -> None:
    with pytest.raises(TypeError, match="takes a Collection or a Program"):
        run_case(flows.maps["flows"], FRAME)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no program 'xdp' loaded"):
        run_case(flows, FRAME, program="xdp")


def test_pack_ctx_lays_fields_out_by_the_ctx_table() -> None:
    from pyebpf.progs.skb import SK_BUFF

    ctx = pack_ctx(ProgType.SOCKET_FILTER, {"mark": 7, "cb": [1, 2, 3, 4, 5]})
    assert ctx is not None and len(ctx) == SK_BUFF.size
    assert int.from_bytes(ctx[SK_BUFF["mark"].offset:][:4], "little") == 7
    assert ctx[SK_BUFF["cb"].offset:][:8] == b"\x01\0\0\0\x02\0\0\0"


def test_ctx_round_trips_through_a_test_run() -> None:
    prog = Program.load(ProgType.SOCKET_FILTER, asm("ldxw %r0, [%r1+8]\nexit"),
                        runtime=make_runtime())
    r = run_case(prog, FRAME, ctx={"mark": 77})
    assert r.retval == 77 and r.ctx_out is not None


def test_map_created_without_btf_reads_as_integers() -> None:
    from pyebpf.testing.cases import MapCodec

    rt = make_runtime()
    m = Map.create(MapType.HASH, key_size=4, value_size=8, max_entries=4, runtime=rt)
    m[3] = (9).to_bytes(8, "little")
    assert MapCodec.for_map(m).contents(dict(m.items())) == {3: 9}


@needs_kernel
def test_kernel_twin_keeps_state_across_cases(flows) -> None:
    flows.runtime.nr_cpus = possible_cpus()
    with CaseRunner(kernel=True) as runner:
        for n in (1, 2, 3):
            r = runner.run(flows, FRAME)
            assert next(iter(r.maps["flows"].values())).packets == n
        assert runner.compared == 3


@needs_kernel
def test_a_difference_in_map_contents_is_a_mismatch() -> None:
    spec_prog = "call 5\nexit"  # the kernel's clock is not pyebpf's fixed clock
    prog = Program.load(ProgType.XDP, asm(spec_prog), runtime=make_runtime())
    with CaseRunner(kernel=True) as runner, pytest.raises(CaseMismatch, match="retval"):
        runner.run(prog, FRAME)
