"""The ``pyebpf`` command: every verb through ``main(argv)``, on the committed objects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyebpf.cli import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, btf_value, demo_packet, main

ROOT = Path(__file__).resolve().parent.parent
XDP_COUNTER = str(ROOT / "examples" / "xdp_counter.o")
ELF = ROOT / "tests" / "data" / "elf"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str) -> str:
    """Failures print exactly one line and no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- raw programs -------------------------------------------------------------------------------
def test_asm_then_run_hex_program(capsys, tmp_path):
    src = tmp_path / "p.s"
    src.write_text("mov %r0, 1\nadd %r0, %r1\nexit\n")
    status, out, _ = run(capsys, "asm", str(src))
    assert status == EXIT_OK
    hexfile = tmp_path / "p.hex"
    hexfile.write_text(out)
    status, out, _ = run(capsys, "disasm", str(hexfile))
    assert out.splitlines() == ["0: (b7) r0 = 1", "1: (0f) r0 += r1", "2: (95) exit"]


def test_run_raw_program_reads_data_hex_as_memory(capsys, tmp_path):
    src = tmp_path / "p.s"
    src.write_text("ldxb %r0, [%r1+1]\nexit\n")
    status, out, _ = run(capsys, "run", str(src), "--data-hex", "002a")
    assert status == EXIT_OK
    assert out.splitlines()[0] == "r0 = 42 (0x2a)"
    status, out, _ = run(capsys, "run", str(src), "--mem", "0007", "--json")
    assert json.loads(out) == {"retval": 7, "insns_executed": 2}


def test_run_raw_program_with_bad_assembly_is_one_line_error(capsys, tmp_path):
    src = tmp_path / "p.s"
    src.write_text("frobnicate %r0\n")
    status, _, err = run(capsys, "run", str(src))
    assert status == EXIT_REJECTED
    assert one_line_error(err).startswith("pyebpf run: ")


# -- run OBJ.o ----------------------------------------------------------------------------------
def test_run_object_prints_retval_data_out_and_maps(capsys, tmp_path):
    pkt = tmp_path / "pkt.bin"
    pkt.write_bytes(demo_packet(17))
    status, out, _ = run(capsys, "run", XDP_COUNTER, "--data", str(pkt), "--repeat", "3")
    assert status == EXIT_OK
    lines = out.splitlines()
    # the count is the verifier's work, which improves as pruning does: not pinned here
    assert re.search(r"verifier accepted it, \d+ insns processed$", lines[0])
    assert "retval: 2 (XDP_PASS)" in lines
    assert "data_out: 64 bytes (unchanged): " + demo_packet(17).hex() in lines
    # three runs of a UDP packet: counts[17] == 3, 3 * 64 bytes on CPU 0
    assert lines[lines.index("counts: HASH key 4B value 8B max_entries 256") + 1] == "  17: 3"
    assert "  0: [192, 0, 0, 0]" in lines


def test_run_object_json_has_the_result_and_btf_typed_maps(capsys):
    status, out, _ = run(capsys, "run", XDP_COUNTER, "--prog", "xdp_prog",
                         "--data-hex", demo_packet(6).hex(), "--json")
    assert status == EXIT_OK
    rec = json.loads(out)
    assert (rec["retval"], rec["retval_name"], rec["prog_type"]) == (2, "XDP_PASS", "XDP")
    assert rec["data_out"] == demo_packet(6).hex()
    maps = {m["name"]: m for m in rec["maps"]}
    assert maps["counts"]["entries"] == [{"key": 6, "value": 1}]
    assert maps["bytes"]["entries"] == [{"key": 0, "value": [64, 0, 0, 0]}]


def test_run_object_follows_tail_calls_into_other_programs(capsys):
    status, out, _ = run(capsys, "run", str(ELF / "tailcalls.o"), "--program", "entry",
                         "--data-hex", "00" * 64, "--json")
    assert status == EXIT_OK
    rec = json.loads(out)
    assert rec["retval_name"] == "XDP_TX"  # returned by 'leaf', reached through 'jump'
    inner = next(m for m in rec["maps"] if m["name"] == "inner_a")
    assert inner["entries"] == [{"key": 0, "value": 1}]


SAMPLES = ROOT.parent / "shared" / "samples"


@pytest.mark.skipif(not (SAMPLES / "linux" / "tracex4_kern.o").exists(),
                    reason="../shared/samples is absent")
def test_run_object_without_a_test_run_runs_on_the_given_ctx(capsys):
    # kprobe/kmem_cache_free: reads pt_regs->di (offset 104 on x86-64) as the key
    obj = str(SAMPLES / "linux" / "tracex4_kern.o")
    regs = bytearray(168)
    regs[104] = 0x2A
    status, out, _ = run(capsys, "run", obj, "--prog", "bpf_prog1", "--ctx-hex", regs.hex())
    assert status == EXIT_OK
    lines = out.splitlines()
    assert "(section kprobe/kmem_cache_free, KPROBE)" in lines[0]
    assert lines[1:3] == ["retval: 0", "ctx_out: unchanged"]
    status, _, err = run(capsys, "run", obj, "--prog", "bpf_prog1", "--data-hex", "00")
    assert status == EXIT_USAGE
    assert "KPROBE programs take no packet data" in one_line_error(err)


def test_run_object_with_several_programs_needs_prog(capsys):
    status, _, err = run(capsys, "run", str(ELF / "tailcalls.o"))
    assert status == EXIT_USAGE
    assert "choose one with --prog NAME" in one_line_error(err)


def test_run_object_unknown_program_names_the_programs(capsys):
    status, _, err = run(capsys, "run", XDP_COUNTER, "--prog", "nope")
    assert status == EXIT_USAGE
    assert one_line_error(err) == ("pyebpf run: xdp_counter.o: no program 'nope' "
                                   "(programs: xdp_prog)")


def test_run_object_rejected_by_the_verifier_exits_1_with_the_reason(capsys):
    status, _, err = run(capsys, "run", str(ELF / "bad.o"), "--data-hex", "00" * 64)
    assert status == EXIT_REJECTED
    line = one_line_error(err)
    assert "R1 offset is outside of the packet" in line
    assert "bad.c:10" in line


# -- verify -------------------------------------------------------------------------------------
def test_verify_accepts_every_program_of_good_objects(capsys):
    status, out, _ = run(capsys, "verify", XDP_COUNTER, str(ELF / "calls.o"), "-j", "1")
    assert status == EXIT_OK
    lines = out.splitlines()
    assert re.search(r"xdp_prog \(section xdp, XDP\): accepted, \d+ insns processed$", lines[0])
    assert lines[-1] == "3 programs: 3 accepted, 0 rejected"


def test_verify_json_reports_rejection_with_errno_and_source_line(capsys):
    status, out, _ = run(capsys, "verify", str(ELF / "bad.o"), "--json", "-j", "1")
    assert status == EXIT_REJECTED
    rec = json.loads(out)
    assert rec == {
        "object": str(ELF / "bad.o"), "section": "xdp", "program": "no_bounds_check",
        "prog_type": "XDP", "verdict": "rejected", "errno": 13,
        "message": "R1 offset is outside of the packet (insn 1, bad.c:10 "
                   "'return data[12] == 8 ? XDP_PASS : XDP_DROP;')",
        "processed_insns": 2,
    }


def test_verify_on_a_process_pool_keeps_the_order_of_the_arguments(capsys):
    objs = [XDP_COUNTER, str(ELF / "tailcalls.o"), str(ELF / "bad.o"), str(ELF / "calls.o")]
    status, out, _ = run(capsys, "verify", *objs, "--json", "-j", "2")
    assert status == EXIT_REJECTED
    recs = [json.loads(line) for line in out.splitlines()]
    assert [(r["object"], r["program"]) for r in recs] == [
        (XDP_COUNTER, "xdp_prog"), (objs[1], "leaf"), (objs[1], "entry"),
        (objs[2], "no_bounds_check"), (objs[3], "use_calls"), (objs[3], "use_loop")]
    assert [r["verdict"] for r in recs].count("rejected") == 1
    _, serial, _ = run(capsys, "verify", *objs, "--json", "-j", "1")
    assert serial == out


def test_verify_log_level_prints_the_verifier_log(capsys):
    status, out, _ = run(capsys, "verify", XDP_COUNTER, "--log-level", "1", "-j", "1")
    assert status == EXIT_OK
    assert re.search(r"^processed \d+ insns", out, re.MULTILINE)


def test_verify_reports_an_internal_error_per_program_and_goes_on(capsys, monkeypatch):
    import pyebpf.collection

    real = pyebpf.collection.load_object

    def flaky(spec, **kw):
        if spec.name.startswith("calls"):
            raise RuntimeError("boom")
        return real(spec, **kw)

    monkeypatch.setattr(pyebpf.collection, "load_object", flaky)
    status, out, _ = run(capsys, "verify", str(ELF / "calls.o"), XDP_COUNTER, "-j", "1")
    assert status == EXIT_REJECTED
    lines = out.splitlines()
    assert lines[0].endswith("use_calls (section socket, SOCKET_FILTER): error: "
                             "internal error: RuntimeError: boom")
    assert "xdp_prog (section xdp, XDP): accepted" in lines[2]
    assert lines[-1] == "3 programs: 1 accepted, 0 rejected, 2 internal errors"


def test_verify_unreadable_object_exits_2_and_goes_on(capsys, tmp_path):
    status, out, err = run(capsys, "verify", str(tmp_path / "missing.o"), XDP_COUNTER, "-j", "1")
    assert status == EXIT_USAGE
    assert "missing.o: No such file or directory" in one_line_error(err)
    assert "1 programs: 1 accepted, 0 rejected" in out


def test_verify_big_endian_object_is_a_clean_error(capsys):
    status, _, err = run(capsys, "verify", str(ELF / "calls_be.o"))
    assert status == EXIT_USAGE
    assert "big-endian ELF object" in one_line_error(err)


def test_verify_not_an_elf_file_is_a_clean_error(capsys, tmp_path):
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"\x7fELF" + bytes(range(256)) * 3)
    status, _, err = run(capsys, "verify", str(junk))
    assert status == EXIT_USAGE
    assert one_line_error(err).startswith(f"pyebpf verify: {junk}: ")


def test_verify_prog_type_gives_a_type_to_text_functions(capsys):
    obj = str(ELF / "textonly.o")
    status, out, _ = run(capsys, "verify", obj, "-j", "1", "--json")
    assert status == EXIT_REJECTED  # .text says no type: libbpf wouldn't load it either
    assert {json.loads(line)["prog_type"] for line in out.splitlines()} == {None}
    status, out, _ = run(capsys, "verify", obj, "-j", "1", "--json",
                         "--prog-type", "socket_filter", "--prog-type", "second=xdp")
    assert status == EXIT_OK
    recs = {r["program"]: r for r in map(json.loads, out.splitlines())}
    assert (recs["first"]["prog_type"], recs["second"]["prog_type"]) == ("SOCKET_FILTER", "XDP")
    assert {r["verdict"] for r in recs.values()} == {"accepted"}


def test_unknown_prog_type_is_usage_error(capsys):
    status, _, err = run(capsys, "verify", str(ELF / "textonly.o"), "--prog-type", "bogus")
    assert status == EXIT_USAGE
    assert "unknown program type 'bogus'" in one_line_error(err)


# -- prog dump ----------------------------------------------------------------------------------
def test_prog_dump_interleaves_source_lines_from_btf_line_info(capsys):
    status, out, _ = run(capsys, "prog", "dump", XDP_COUNTER)
    assert status == EXIT_OK
    lines = out.splitlines()
    assert lines[0] == "xdp_prog: section xdp, XDP, 47 insns, license GPL"
    i = lines.index("; val = bpf_map_lookup_elem(&counts, &key); @ xdp_counter.c:37")
    assert lines[i + 1] == "  20: (18) r1 = map[counts]"
    assert lines[i + 2] == "  22: (85) call bpf_map_lookup_elem#1"


def test_prog_dump_names_subprograms_and_prints_opcodes(capsys):
    status, out, _ = run(capsys, "prog", "dump", str(ELF / "calls.o"), "--prog", "use_calls",
                         "--opcodes")
    assert status == EXIT_OK
    lines = out.splitlines()
    assert "sum_squares:" in lines
    assert lines[lines.index("   0: (b7) r1 = 3") + 1] == "      b7 01 00 00 03 00 00 00"


def test_prog_dump_without_btf_prints_only_instructions(capsys):
    status, out, _ = run(capsys, "prog", "dump", str(ELF / "iproute2.o"), "--prog", "tail")
    assert status == EXIT_OK
    assert not [ln for ln in out.splitlines() if ln.startswith(";")]
    assert out.splitlines()[-1].endswith("exit")


def test_prog_dump_shows_global_data_references(capsys):
    status, out, _ = run(capsys, "prog", "dump", str(ELF / "globals.o"))
    assert status == EXIT_OK
    assert "map[.rodata][0]+0" in out


# -- map dump -----------------------------------------------------------------------------------
def test_map_dump_formats_global_data_by_its_btf_datasec(capsys):
    status, out, _ = run(capsys, "map", "dump", str(ELF / "globals.o"), "--map", ".data")
    assert status == EXIT_OK
    assert out.splitlines() == [".data: ARRAY key 4B value 8B max_entries 1",
                                '  0: {"bytes_seen": 100}']


def test_map_dump_names_programs_in_program_array_slots(capsys):
    status, out, _ = run(capsys, "map", "dump", str(ELF / "tailcalls.o"), "--json")
    assert status == EXIT_OK
    maps = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert maps["jump"]["entries"] == [{"key": 2, "value": {"prog_id": 1, "name": "leaf"}}]
    assert maps["outer"]["entries"][0]["value"]["name"] == "inner_a"
    assert maps["shared"]["entries"] == []


def test_map_dump_hides_zero_array_slots_and_counts_them(capsys):
    status, out, _ = run(capsys, "map", "dump", str(ELF / "legacy_maps.o"), "--map", "counters")
    assert status == EXIT_OK
    assert out.splitlines()[-1] == "  (4 zero entries not shown)"


def test_map_dump_of_object_without_maps_says_so(capsys):
    status, out, _ = run(capsys, "map", "dump", str(ELF / "bad.o"))
    assert status == EXIT_OK
    assert out.strip() == "bad.o: no maps"


def test_map_dump_unknown_map(capsys):
    status, _, err = run(capsys, "map", "dump", XDP_COUNTER, "--map", "nope")
    assert status == EXIT_USAGE
    assert "no map 'nope' (maps: counts, bytes)" in one_line_error(err)


def test_missing_subcommand_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prog"])
    assert exc.value.code == EXIT_USAGE


# -- formatting ---------------------------------------------------------------------------------
def test_btf_value_decodes_structs_with_their_member_names():
    from pyebpf import load_spec

    spec = load_spec(ELF / "samples" / "sockex3_btf_kern.o")
    ms = spec.maps["hash_map"]
    assert spec.btf is not None
    key = bytes([10, 0, 0, 1, 10, 0, 0, 2, 0x50, 0, 0x1F, 0x90, 6, 0, 0, 0])
    value = btf_value(spec.btf, ms.btf_key_type_id, key)
    assert isinstance(value, dict)
    assert value["src"] == 0x0100000A
    assert value["ip_proto"] == 6
    # the anonymous union's members appear as the struct's own, as C reads them
    assert "" not in value and "(anon)" not in value
    assert len(value) > 3
