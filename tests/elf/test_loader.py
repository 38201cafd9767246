"""The ELF loader on objects built for these tests (tests/data/elf/src/*.c, rebuilt
by tests/data/elf/build.sh) and on three committed samples."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import pyebpf
from pyebpf import MapFlags, MapType, ProgType, Runtime, load_object, load_spec
from pyebpf.elf import ElfError, internal_map_name
from pyebpf.elf.reader import ElfObject
from pyebpf.uapi import AttachType

DATA = Path(__file__).resolve().parents[1] / "data" / "elf"
VERIFIERS = ["structural", "kernel"]


def obj(name: str) -> Path:
    return DATA / name


@pytest.fixture(params=VERIFIERS)
def rt(request: pytest.FixtureRequest) -> Runtime:
    r = Runtime()
    r.verifier = request.param
    return r


def btf_of(path: Path) -> pyebpf.Btf:
    sec = ElfObject(path.read_bytes()).section(".BTF")
    assert sec is not None
    return pyebpf.Btf.parse(sec.data)


# -- global data and kconfig -------------------------------------------------------------
def test_global_data_spec() -> None:
    spec = load_spec(obj("globals.o"))
    assert spec.license == "Dual BSD/GPL"
    assert list(spec.maps) == [".rodata", ".rodata.cfg", ".bss", ".data", ".kconfig"]
    ro = spec.maps[".rodata"]
    assert (ro.type, ro.key_size, ro.value_size, ro.max_entries) == (MapType.ARRAY, 4, 4, 1)
    assert ro.flags & MapFlags.RDONLY_PROG and ro.freeze
    assert ro.data == struct.pack("<I", 7)
    assert ro.kernel_name == "globals.rodata"
    assert spec.maps[".rodata.cfg"].kernel_name == ".rodata.cfg"  # custom: no object prefix
    assert spec.maps[".bss"].data == bytes(8) and not spec.maps[".bss"].freeze
    assert spec.maps[".data"].data == struct.pack("<Q", 100)
    kc = spec.maps[".kconfig"]
    assert kc.freeze and kc.flags & MapFlags.RDONLY_PROG
    # CONFIG_HZ (weak, unset) then LINUX_KERNEL_VERSION: sorted by alignment, size, name.
    assert kc.data == struct.pack("<iI", 0, (6 << 16) + (18 << 8))
    prog = spec.programs["count_packets"]
    assert prog.prog_type == ProgType.XDP and prog.expected_attach_type == AttachType.XDP
    refs = {(r.map, r.kind, r.offset) for r in prog.map_refs}
    assert (".kconfig", "value", 4) in refs and (".bss", "value", 0) in refs


def test_global_data_loaded(rt: Runtime) -> None:
    spec = load_spec(obj("globals.o"))
    spec.maps[".rodata"].data = struct.pack("<I", 20)  # set a const volatile before loading
    with load_object(spec, runtime=rt) as o:
        p = o.programs["count_packets"]
        assert p.test_run(data=bytes(64)).retval == 2  # XDP_PASS
        assert p.test_run(data=bytes(20)).retval == 1  # XDP_DROP: len == drop_port
        assert o.maps[".bss"][0] == struct.pack("<Q", 2)
        assert o.maps[".data"][0] == struct.pack("<Q", 100 + 3 * 64 + 3 * 20)
        ro = o.maps[".rodata"]
        assert ro.info().map_flags & MapFlags.RDONLY_PROG
        with pytest.raises(pyebpf.BpfError):  # frozen: no writes from user space either
            ro[0] = bytes(4)


def test_kconfig_values(rt: Runtime) -> None:
    with load_object(obj("globals.o"), runtime=rt, kconfig={"CONFIG_HZ": 1000}) as o:
        assert o.programs["count_packets"].test_run(data=bytes(64)).retval == 3  # XDP_TX


def test_internal_map_names() -> None:
    assert internal_map_name("my_object_name", ".rodata") == "my_objec.rodata"
    assert internal_map_name("my_object_name", ".bss") == "my_objec.bss"
    assert internal_map_name("my_object_name", ".kconfig") == "my_obje.kconfig"
    assert internal_map_name("x", ".rodata.abracadabra") == ".rodata.abracad"


# -- BPF-to-BPF calls ------------------------------------------------------------------------
def test_subprograms_appended() -> None:
    spec = load_spec(obj("calls.o"))
    p = spec.programs["use_calls"]
    assert p.subprograms == ["sum_squares", "square"]
    assert p.insn_cnt > p.own_insn_cnt
    assert "square" not in spec.programs  # .text functions are sub-programs here
    calls = [(i, ins) for i, ins in enumerate(p.instructions) if ins.code == 0x85 and ins.src == 1]
    for i, ins in calls:  # every call lands on a function start inside the program
        assert 0 <= i + 1 + ins.imm < p.insn_cnt
    loop = spec.programs["use_loop"]
    assert loop.subprograms == ["add_index"]
    fptr = [ins for ins in loop.instructions if ins.code == 0x18 and ins.src == 4]
    assert len(fptr) == 1  # the callback's address: BPF_PSEUDO_FUNC
    assert p.func_info[0].insn_off == 0 and len(p.func_info) == 3
    assert p.line_info and p.line_info[0].file_name.endswith("calls.c")


def test_calls_run(rt: Runtime) -> None:
    with load_object(obj("calls.o"), runtime=rt) as o:
        assert o.programs["use_calls"].test_run(data=bytes(20)).retval == 18
        assert o.programs["use_loop"].test_run(data=bytes(20)).retval == 10


# -- prog arrays, maps of maps, pinning --------------------------------------------------------
def test_initial_values_spec() -> None:
    spec = load_spec(obj("tailcalls.o"))
    assert spec.maps["jump"].init_slots == {2: "leaf"}
    outer = spec.maps["outer"]
    assert outer.init_slots == {1: "inner_a"}
    assert outer.inner is not None and outer.inner.type == MapType.ARRAY
    assert outer.value_size == 4
    assert spec.maps["shared"].pinning == 1


def test_tail_call_and_map_in_map(rt: Runtime) -> None:
    with load_object(obj("tailcalls.o"), runtime=rt) as o:
        assert o.programs["entry"].test_run(data=bytes(64)).retval == 3  # XDP_TX from leaf
        assert o.maps["inner_a"][0] == struct.pack("<I", 1)
        assert "/sys/fs/bpf/shared" in rt.bpffs


def test_pinned_map_reused() -> None:
    rt = Runtime()
    with load_object(obj("tailcalls.o"), runtime=rt) as a:
        a.maps["shared"][1] = struct.pack("<Q", 99)
        with load_object(obj("tailcalls.o"), runtime=rt) as b:
            assert b.maps["shared"][1] == struct.pack("<Q", 99)


def test_subset_of_programs() -> None:
    rt = Runtime()
    with load_object(obj("tailcalls.o"), runtime=rt, programs=["leaf"], maps="used") as o:
        assert list(o.programs) == ["leaf"]
        assert list(o.maps) == []
    with pytest.raises(KeyError, match="no program 'nope'"):
        load_object(obj("tailcalls.o"), runtime=rt, programs=["nope"])


# -- CO-RE ---------------------------------------------------------------------------------
CORE_LOCAL = 8 + 8 * 100 + 1000 + 24 * 10000 + 5 * 1000000


def test_core_against_own_btf(rt: Runtime) -> None:
    spec = load_spec(obj("core.o"))
    relos = spec.programs["core_prog"].core_relos
    assert [r.kind for r in relos] == ["FIELD_BYTE_OFFSET", "FIELD_BYTE_SIZE", "FIELD_EXISTS",
                                       "TYPE_SIZE", "ENUMVAL_VALUE"]
    assert all(r.ok and r.local_value == r.target_value for r in relos)
    with load_object(spec, runtime=rt) as o:
        assert o.programs["core_prog"].test_run(data=bytes(20)).retval == CORE_LOCAL


def test_core_against_target_btf(rt: Runtime) -> None:
    target = btf_of(obj("core_target.o"))
    with load_object(obj("core.o"), runtime=rt, target_btf=target) as o:
        # second moved to 16, struct grew to 32, GREEN became 7
        want = 16 + 8 * 100 + 1000 + 32 * 10000 + 7 * 1000000
        assert o.programs["core_prog"].test_run(data=bytes(20)).retval == want


def test_core_unsatisfiable_relocation() -> None:
    target = btf_of(obj("core_missing.o"))
    spec = load_spec(obj("core.o"), target_btf=target)
    bad = [r for r in spec.programs["core_prog"].core_relos if not r.ok]
    assert {r.kind for r in bad} == {"FIELD_BYTE_OFFSET", "FIELD_BYTE_SIZE"}
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(pyebpf.VerifierError, match=r"CO-RE relocation failed.*access 0:2"):
        load_object(spec, runtime=rt)


# -- legacy maps and conventions ---------------------------------------------------------------
def test_legacy_maps_section() -> None:
    spec = load_spec(obj("legacy_maps.o"))
    assert spec.btf is None
    assert [m.source for m in spec.maps.values()] == ["legacy"] * 3
    outer = spec.maps["outer"]
    assert outer.inner_map_name == "counters" and outer.value_size == 4
    assert spec.programs["second"].tail_call_slot == ("jmp_table", 1)
    assert spec.programs["first"].prog_type == ProgType.SOCKET_FILTER


def test_legacy_tail_call_convention(rt: Runtime) -> None:
    with load_object(obj("legacy_maps.o"), runtime=rt) as o:
        assert o.programs["first"].test_run(data=bytes(40)).retval == 42
        assert o.maps["counters"][1] == struct.pack("<Q", 1)
    with load_object(obj("legacy_maps.o"), runtime=Runtime(), tail_calls=False) as o:
        assert o.programs["first"].test_run(data=bytes(40)).retval == 1


SAMPLES = DATA / "samples"


@pytest.mark.parametrize("name", ["sockex3_kern.o", "sockex3_btf_kern.o"])
def test_sockex3_tail_calls(name: str, rt: Runtime) -> None:
    """samples/bpf's sockex3: a flow dissector split into tail-called programs."""
    with load_object(SAMPLES / name, runtime=rt) as o:
        assert set(o.maps) == {"jmp_table", "percpu_map", "hash_map"}
        ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
        frame = bytes(12) + b"\x08\x00" + ip + struct.pack(">HH", 1234, 80) + bytes(16)
        # A socket filter's test run starts past the Ethernet header; sockex3 reads
        # an Ethernet header there (as on a raw packet socket).
        o.programs["main_prog"].test_run(data=bytes(12) + b"\x08\x00" + frame)
        ((key, value),) = list(o.maps["hash_map"].items())
        assert key[:8] == bytes([1, 0, 0, 10, 2, 0, 0, 10])  # the flow's addresses
        assert struct.unpack("<Q", value[:8]) == (1,)


def test_sockex1(rt: Runtime) -> None:
    with load_object(SAMPLES / "sockex1_kern.o", runtime=rt) as o:
        assert list(o.programs) == ["bpf_prog1"]
        assert o.programs["bpf_prog1"].prog_type == ProgType.SOCKET_FILTER
        assert o.maps["my_map"].map_type == MapType.ARRAY


# -- errors ------------------------------------------------------------------------------------
def test_unknown_section_needs_a_type() -> None:
    spec = load_spec(SAMPLES / "sockex1_kern.o")
    spec.programs["bpf_prog1"].prog_type = None
    with pytest.raises(ElfError, match="prog_types"):
        load_object(spec, runtime=Runtime())
    with load_object(spec, runtime=Runtime(),
                     prog_types={"bpf_prog1": ProgType.SOCKET_FILTER}) as o:
        assert o.programs["bpf_prog1"].prog_type == ProgType.SOCKET_FILTER


def test_rejection_names_program_and_reason() -> None:
    spec = load_spec(obj("calls.o"))
    p = spec.programs["use_calls"]
    p.insns = p.insns[:8] + struct.pack("<BBhi", 0x61, 0x01, 0, 0) + p.insns[16:]  # r1 = *(r0)
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(pyebpf.VerifierError) as exc:
        load_object(spec, runtime=rt, programs=["use_calls"])
    assert "use_calls" in str(exc.value) and exc.value.log
    assert not rt.fds  # nothing left open


def test_missing_file() -> None:
    with pytest.raises(ElfError) as exc:
        load_spec(DATA / "does-not-exist.o")
    assert exc.value.errno == 2


def test_verifier_message_has_the_source_line() -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(pyebpf.VerifierError) as exc:
        load_object(obj("bad.o"), runtime=rt)
    msg = str(exc.value)
    assert "no_bounds_check" in msg and "bad.c:10" in msg and "data[12]" in msg
    assert exc.value.errno == 13 and "invalid access to packet" in exc.value.log


def test_ksym_externs() -> None:
    spec = load_spec(obj("ksym.o"))
    assert spec.programs["uses_weak_var"].link_error is None  # weak: reads as 0
    # The kfunc resolves by name to its BTF id (a src_reg 2 call)...
    uses_kfunc = spec.programs["uses_kfunc"]
    assert uses_kfunc.link_error is None
    assert uses_kfunc.insns[:8] == bytes([0x85, 0x20, 0, 0]) + (65481).to_bytes(4, "little")
    rt = Runtime()
    with load_object(spec, runtime=rt, programs=["uses_weak_var"]) as o:
        assert o.programs["uses_weak_var"].test_run(data=bytes(20)).retval == 0
    # ... and the verifier sees the RCU section left open, as the kernel would.
    rt.verifier = "kernel"
    with pytest.raises(pyebpf.VerifierError, match="bpf_rcu_read_lock-ed region") as exc:
        load_object(spec, runtime=rt, programs=["uses_kfunc"])
    assert exc.value.errno == 22


def test_iproute2_conventions(rt: Runtime) -> None:
    spec = load_spec(obj("iproute2.o"))
    assert spec.maps["jmp"].elf_id == 1
    tail = spec.programs["tail"]
    assert (tail.prog_type, tail.type_source) == (ProgType.SCHED_CLS, "convention")
    assert tail.tail_call_slot == ("jmp", 0)
    with load_object(spec, runtime=rt) as o:
        assert o.programs["cls_main"].test_run(data=bytes(20)).retval == 7


def test_text_only_object() -> None:
    spec = load_spec(obj("textonly.o"))
    assert {n: (p.prog_type, p.from_text) for n, p in spec.programs.items()} == {
        "first": (None, True), "second": (None, True)}
    with load_object(spec, runtime=Runtime(),
                     prog_types={".text": ProgType.SOCKET_FILTER}) as o:
        assert o.programs["second"].test_run(data=bytes(20)).retval == 2


def test_question_mark_section_is_typed_but_loaded_only_on_request() -> None:
    spec = load_spec(DATA / "optional.o")
    optional = spec.programs["on_request"]
    assert (optional.section, optional.prog_type, optional.autoload) == \
        ("tc", ProgType.SCHED_CLS, False)
    assert spec.programs["always"].autoload
    rt = Runtime()
    assert list(load_object(spec, runtime=rt).programs) == ["always"]
    coll = load_object(spec, runtime=rt, programs=["on_request"])
    assert coll.programs["on_request"].test_run(bytes(64)).retval == 1
