"""The pytest plugin (pyebpf.testing.plugin), exercised in inner pytest sessions."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from pyebpf.testing.kernel import kernel_available

pytest_plugins = ["pytester"]

DATA = Path(__file__).resolve().parent.parent / "data" / "testing"
needs_kernel = pytest.mark.skipif(not kernel_available(),
                                  reason="the kernel's bpf() is not available here")


@pytest.fixture
def objects(pytester: pytest.Pytester) -> pytest.Pytester:
    """An inner test directory holding the test objects."""
    for name in ("flows.o", "rejected.o"):
        shutil.copy(DATA / name, pytester.path / name)
    return pytester


def test_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--bpf-kernel*differential mode*"])
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.bpf_kernel:*", "@pytest.mark.bpf_runtime(*"])


def test_bpf_runtime_is_fresh_and_deterministic_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pyebpf import Map, MapType

        SEEN = []

        @pytest.mark.parametrize("n", [1, 2])
        def test_same_start(bpf_runtime, n):
            assert bpf_runtime.fds == {}
            assert (bpf_runtime.nr_cpus, bpf_runtime.cpu, bpf_runtime.pid) == (2, 0, 4242)
            assert bpf_runtime.clock.ns == 1_000_000_000
            SEEN.append([bpf_runtime.random.getrandbits(32) for _ in range(3)])
            Map.create(MapType.ARRAY, key_size=4, value_size=4, max_entries=1,
                       runtime=bpf_runtime)

        def test_prandom_sequence_repeats():
            assert len(SEEN) == 2 and SEEN[0] == SEEN[1]

        @pytest.mark.bpf_runtime(seed=7, nr_cpus=4, cpu=3, pid=1, comm="init",
                                 clock_ns=5, clock_step_ns=10)
        def test_marker_settings(bpf_runtime):
            assert (bpf_runtime.seed, bpf_runtime.nr_cpus, bpf_runtime.cpu) == (7, 4, 3)
            assert (bpf_runtime.pid, bpf_runtime.comm) == (1, "init")
            assert [bpf_runtime.clock.monotonic_ns() for _ in range(2)] == [5, 15]
    """)
    pytester.runpytest().assert_outcomes(passed=4)


def test_bpf_runtime_marker_with_unknown_setting_is_a_usage_error(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.bpf_runtime(cpus=3)
        def test_it(bpf_runtime):
            pass
    """)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*unknown runtime settings: cpus*"])
    assert result.ret != 0


def test_load_bpf_object_loads_beside_the_test_and_closes_after(objects: pytest.Pytester) -> None:
    objects.makepyfile("""
        KEPT = []

        def test_load(load_bpf_object, bpf_runtime):
            coll = load_bpf_object("flows.o")
            assert sorted(coll.maps) == ["config", "flows", "verdicts"]
            assert coll.runtime is bpf_runtime
            KEPT.append(coll)

        def test_closed_after_the_test():
            (coll,) = KEPT
            assert coll.programs["xdp_flows"].fd == -1
            assert all(m.fd == -1 for m in coll.maps.values())
    """)
    objects.runpytest().assert_outcomes(passed=2)


def test_run_case_seeds_struct_maps_and_reads_them_back(objects: pytest.Pytester) -> None:
    objects.makepyfile("""
        from pyebpf.testing.packets import ethernet, ipv4, udp

        XDP_DROP, XDP_PASS = 1, 2
        FRAME = ethernet(ipv4(udp(b"payload", sport=1000, dport=53), ttl=64))

        def test_drop_by_config(load_bpf_object, run_case):
            coll = load_bpf_object("flows.o")
            r = run_case(coll, FRAME, maps={"config": {0: {"drop_proto": 17}}})
            assert r.retval == XDP_DROP
            assert r.packet == FRAME
            (key,) = r.maps["flows"]
            assert (key.sport, key.dport, key.proto) == (1000, 53, 17)
            assert r.maps["flows"][key].packets == 1
            assert r.maps["flows"][key] == {"packets": 1, "bytes": len(FRAME),
                                            "last_len": len(FRAME), "last_ttl": 64}
            assert r.maps["verdicts"][1] == (1, 0)

        def test_seeded_flow_counts_on(load_bpf_object, run_case):
            coll = load_bpf_object("flows.o")
            key = {"saddr": 0x0100000A, "daddr": 0x0200000A, "sport": 1000, "dport": 53,
                   "proto": 17}
            r = run_case(coll, FRAME, maps={"flows": [(key, {"packets": 41})],
                                            "config": {0: {"rewrite_ttl": 9}}})
            assert r.retval == XDP_PASS
            assert r.packet[14 + 8] == 9  # the TTL byte was rewritten
            assert r.maps["flows"] == [(key, {"packets": 42, "bytes": len(FRAME),
                                              "last_len": len(FRAME), "last_ttl": 9})]
            as_tuple = (0x0100000A, 0x0200000A, 1000, 53, 17)
            assert r.maps["flows"][as_tuple].last_ttl == 9
    """)
    objects.runpytest().assert_outcomes(passed=2)


def test_assert_rejected_fixture_shows_the_log_around_the_failing_insn(
        objects: pytest.Pytester) -> None:
    objects.makepyfile("""
        from pyebpf import ProgType

        def test_rejected(assert_rejected):
            r = assert_rejected("rejected.o", program="xdp_unchecked",
                                match="outside of the packet")
            assert r.insn == 1

        def test_wrong_expectation(assert_rejected):
            assert_rejected("mov %r0, 0\\nmov %r1, 0\\nldxw %r0, [%r1+0]\\nexit",
                            "R7 !read_ok", prog_type=ProgType.XDP)

        def test_accepted(assert_rejected):
            assert_rejected("mov %r0, 2\\nexit", prog_type=ProgType.XDP)
    """)
    result = objects.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*no match for 'R7 !read_ok'*",
        "*>> 2: (61) r0 = *(u32 *)(r1 +0)*",
        "*R1 invalid mem access 'scalar'*",
        "*the verifier accepted the program (2 insns)*",
    ])


DIFFERENTIAL = """
    import pytest
    from pyebpf import Program, ProgType, asm
    from pyebpf.testing.packets import ethernet, ipv4, tcp

    FRAME = ethernet(ipv4(tcp(b"x", dport=443), proto=6))

    @pytest.mark.bpf_kernel
    def test_flows_agree(load_bpf_object, run_case, bpf_runtime):
        coll = load_bpf_object("flows.o")
        run_case(coll, FRAME, maps={"config": {0: {"drop_proto": 6, "rewrite_ttl": 3}}})
        r = run_case(coll, FRAME)
        assert r.retval == 1

    @pytest.mark.bpf_kernel
    def test_rejection_agrees(assert_rejected):
        r = assert_rejected("rejected.o", program="xdp_unchecked", match="outside of the packet")
        assert r.kernel is not None or not {kernel}

    @pytest.mark.bpf_kernel
    def test_clock_differs(bpf_runtime, run_case):
        prog = Program.load(ProgType.XDP, asm("call 5\\nexit"), runtime=bpf_runtime)
        run_case(prog, FRAME)

    def test_unmarked_stays_on_pyebpf(bpf_runtime, run_case):
        prog = Program.load(ProgType.XDP, asm("call 5\\nexit"), runtime=bpf_runtime)
        assert run_case(prog, FRAME).retval == 1_000_000_000
"""


@needs_kernel
def test_bpf_kernel_mode_fails_on_any_difference(objects: pytest.Pytester) -> None:
    objects.makepyfile(DIFFERENTIAL.replace("{kernel}", "True"))
    result = objects.runpytest("--bpf-kernel")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "pyebpf: --bpf-kernel: bpf_kernel tests also run on the kernel",
        "*test_clock_differs*",
        "*CaseMismatch: pyebpf and the kernel disagree:*",
        "*retval: pyebpf 1000000000, kernel *",
    ])


def test_bpf_kernel_mode_without_a_kernel_runs_on_pyebpf_only(
        objects: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    objects.makepyfile(DIFFERENTIAL.replace("{kernel}", "False"))
    monkeypatch.setenv("PYEBPF_NO_KERNEL", "1")  # kernel_available() is cached: a new process
    result = objects.runpytest_subprocess("--bpf-kernel", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*bpf() is not available here; bpf_kernel tests run on "
                                 "pyebpf only*"])


def test_without_the_option_marked_tests_run_on_pyebpf_only(objects: pytest.Pytester) -> None:
    objects.makepyfile(DIFFERENTIAL.replace("{kernel}", "False"))
    objects.runpytest().assert_outcomes(passed=4)


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is absent")
def test_under_xdist_each_worker_has_its_own_runtimes(objects: pytest.Pytester) -> None:
    objects.makepyfile("""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_fresh(load_bpf_object, run_case, bpf_runtime, n):
            assert bpf_runtime.fds == {}
            coll = load_bpf_object("flows.o")
            frame = bytes(12) + b"\\x86\\xdd" + bytes(40)  # not IPv4: passed, not counted
            r = run_case(coll, frame)
            assert r.retval == 2
            assert r.maps["flows"] == {} and r.maps["verdicts"][0] == (0, 0)
            assert os.environ["PYTEST_XDIST_WORKER"] in ("gw0", "gw1")
    """)
    result = objects.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
