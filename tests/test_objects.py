"""The objects API: Program, Collection and load_object over bpf()."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import pyebpf
from pyebpf import Collection, Program, ProgType, Runtime, asm, load_object, load_spec

DATA = Path(__file__).resolve().parent / "data" / "elf"


def test_program_load_and_test_run() -> None:
    rt = Runtime()
    with Program.load(ProgType.XDP, asm("mov %r0, 2\nexit"), name="pass",
                      runtime=rt) as p:
        assert p.prog_type == ProgType.XDP and p.name == "pass"
        r = p.test_run(data=bytes(20), repeat=3)
        assert r.retval == 2 and r.data_out == bytes(20)
        assert p.run(data=bytes(20)) == 2
        assert "pass" in repr(p)
    assert p.fd == -1 and not rt.fds


def test_run_without_a_kernel_test_run() -> None:
    """kprobes have no PROG_TEST_RUN (ENOTSUPP); run() hands them a pt_regs."""
    rt = Runtime()
    p = Program.load(ProgType.KPROBE, asm("ldxdw %r0, [%r1+112]\nexit"), runtime=rt)
    with pytest.raises(pyebpf.BpfError) as exc:
        p.test_run(ctx=bytes(168))
    assert exc.value.errno == pyebpf.ENOTSUPP
    regs = bytearray(168)
    struct.pack_into("<Q", regs, 112, 0xDEADBEEF)  # rdi: the first argument
    assert p.run(regs) == 0xDEADBEEF
    assert p.run() == 0  # a zeroed pt_regs
    with pytest.raises(pyebpf.BpfError):
        p.run(data=b"packet")


def test_run_writes_back_the_ctx() -> None:
    rt = Runtime()
    rt.verifier = "structural"  # the kernel's verifier forbids writing a kprobe's pt_regs
    p = Program.load(ProgType.KPROBE, asm("mov %r2, 7\nstxdw [%r1+112], %r2\nmov %r0, 0\nexit"),
                     runtime=rt)
    regs = bytearray(168)
    p.run(regs)
    assert struct.unpack_from("<Q", regs, 112) == (7,)


def test_program_pin_and_log() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    p = Program.load(ProgType.SOCKET_FILTER, asm("mov %r0, 0\nexit"), runtime=rt, log_level=1)
    assert "processed" in p.log
    p.pin("/sys/fs/bpf/p")
    assert "/sys/fs/bpf/p" in rt.bpffs


def test_collection_lifetime() -> None:
    rt = Runtime()
    with load_object(DATA / "tailcalls.o", runtime=rt) as coll:
        assert isinstance(coll, Collection)
        assert set(coll.programs) == {"leaf", "entry"}
        assert coll.programs["entry"].spec is coll.spec.programs["entry"]
        assert coll.maps["outer"].name == "outer"
        assert "tailcalls" in repr(coll)
    assert not rt.fds  # every map and program fd closed (pinned maps stay in bpffs)
    assert "/sys/fs/bpf/shared" in rt.bpffs


def test_failed_load_leaves_nothing_open() -> None:
    rt = Runtime()
    spec = load_spec(DATA / "globals.o")
    prog = spec.programs["count_packets"]
    prog.insns = prog.insns[:-8]  # no exit at the end
    with pytest.raises(pyebpf.VerifierError, match=r"count_packets.*\(xdp\)"):
        load_object(spec, runtime=rt)
    assert not rt.fds and not rt.objects(pyebpf.runtime.ObjKind.MAP)


def test_spec_is_reusable() -> None:
    spec = load_spec(DATA / "calls.o")
    a = spec.load(runtime=Runtime())
    b = spec.load(runtime=Runtime(), verifier="kernel")
    assert a.programs["use_calls"].run(data=bytes(20)) == b.programs["use_calls"].run(
        data=bytes(20)) == 18


def test_load_object_from_bytes() -> None:
    rt = Runtime()
    with load_object((DATA / "calls.o").read_bytes(), runtime=rt) as coll:
        assert coll.spec.path is None and coll.spec.name == "obj"
    with load_object((DATA / "globals.o").read_bytes(), runtime=rt, name="g") as coll:
        assert coll.maps[".rodata"].info().name == "g.rodata"


def test_verifier_choice_is_restored() -> None:
    rt = Runtime()
    before = rt.verifier
    load_object(DATA / "calls.o", runtime=rt, verifier="kernel").close()
    assert rt.verifier == before
    with pytest.raises(ValueError, match="unknown verifier"):
        load_object(DATA / "calls.o", runtime=rt, verifier="nope")


def test_default_runtime() -> None:
    with load_object(DATA / "calls.o") as coll:
        assert coll.runtime is pyebpf.default_runtime()
