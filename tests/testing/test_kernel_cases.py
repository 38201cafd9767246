"""pyebpf.testing.kernel_cases: the verifier-cases adapter (maps, fixups, runs).

The data-driven test runs ``verify_case`` over ``../shared/verifier-cases/
dev.jsonl`` (skipped when that folder is absent) and holds the test-run retval
match rate, measured as the scorer measures it, to the level reached.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from pyebpf.attr import MapElemAttr
from pyebpf.errors import BpfError
from pyebpf.maps.base import BpfMap
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.testing.kernel_cases import (
    NR_CPUS,
    SHARED_BTF_HEX,
    create_fixup_maps,
    patch_insns,
    verify_case,
)
from pyebpf.uapi import Cmd, MapType, ProgType

PROJECT = Path(__file__).resolve().parents[2]
CASES = (PROJECT / ".." / "shared" / "verifier-cases").resolve()
MAPS_JSON = CASES / "maps.json"
DEV = CASES / "dev.jsonl"

#: The retval match rate reached on dev.jsonl (percent of the runs the scorer counts).
#: Raise it when pyebpf gets better; a drop below it is a regression.
RETVAL_MATCH_FLOOR = 95.4

#: What score.py hands a candidate (its INPUT_FIELDS).
INPUT_FIELDS = ("id", "name", "source_file", "prog_type", "prog_type_id",
                "expected_attach_type", "expected_attach_type_id", "kfunc",
                "attach_btf_name", "prog_flags", "insns", "insn_count", "fixups",
                "map_specs", "kfunc_fixups", "func_info", "btf", "runs_count",
                "fill_helper")


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> str:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm).hex()


EXIT = _insn(0x95)


def _mov_r0(v: int) -> str:
    return _insn(0xB7, 0, 0, 0, v)


def _lddw_map(dst: int) -> list[str]:
    """``r<dst> = map[fd 0]`` (BPF_PSEUDO_MAP_FD, imm to be patched)."""
    return [_insn(0x18, dst, 1, 0, 0), _insn(0x00)]


def _case(insns: list[str], *, prog_type: ProgType = ProgType.SOCKET_FILTER,
          fixups: dict[str, list[int]] | None = None, runs: int = 1,
          **extra: Any) -> dict[str, Any]:
    specs = {}
    if fixups:
        kinds = json.loads(MAPS_JSON.read_text())["fixup_kinds"] if MAPS_JSON.exists() else {}
        specs = {k: kinds[k] if k in kinds else _FALLBACK_SPECS[k] for k in fixups}
    case = {
        "id": "unit/test", "name": "test", "source_file": "unit.c",
        "prog_type": f"BPF_PROG_TYPE_{prog_type.name}", "prog_type_id": int(prog_type),
        "expected_attach_type": None, "expected_attach_type_id": 0, "kfunc": None,
        "attach_btf_name": None, "prog_flags": 0, "insns": insns, "insn_count": len(insns),
        "fixups": fixups or {}, "map_specs": specs, "kfunc_fixups": [], "func_info": [],
        "btf": None, "runs_count": runs, "fill_helper": None,
        "runs": [{"data": "00" * 64} for _ in range(runs)], "unpriv": False,
    }
    case.update(extra)
    return case


#: maps.json's entries for the kinds the unit tests use (when ../shared is absent).
_FALLBACK_SPECS: dict[str, dict[str, Any]] = {
    "map_hash_8b": {"map_type": "BPF_MAP_TYPE_HASH", "key_size": 8, "value_size": 8,
                    "max_entries": 1, "map_flags": 1},
    "map_array_48b": {
        "map_type": "BPF_MAP_TYPE_ARRAY", "key_size": 4, "value_size": 48, "max_entries": 1,
        "map_flags": 0,
        "init": {"key": 0, "value_hex": "1c" + "00" * 27 + "12efcdab" + "00" * 16}},
    "map_in_map": {"map_type": "BPF_MAP_TYPE_ARRAY_OF_MAPS", "key_size": 4, "value_size": 4,
                   "max_entries": 1, "map_flags": 0,
                   "inner_map": {"map_type": "BPF_MAP_TYPE_ARRAY", "key_size": 4,
                                 "value_size": 4, "max_entries": 1}},
    "prog1": {"map_type": "BPF_MAP_TYPE_PROG_ARRAY", "key_size": 4, "value_size": 4,
              "max_entries": 4, "map_flags": 0,
              "contents": {"0": "prog: r0 = 42; exit",
                           "1": "prog: r3 = 1; r2 = <this map>; call bpf_tail_call; "
                                "r0 = 41; exit",
                           "2": "prog: r0 = 24; exit"}},
    "map_spin_lock": {"map_type": "BPF_MAP_TYPE_ARRAY", "key_size": 4, "value_size": 8,
                      "max_entries": 1, "map_flags": 0, "btf": "shared_btf",
                      "btf_key_type_id": 1, "btf_value_type_id": 3},
}


def _map(rt: Runtime, fd: int) -> BpfMap:
    obj = rt.fds[fd].obj
    assert isinstance(obj, BpfMap)
    return obj


# -- fixups -----------------------------------------------------------------------------------
def test_patch_insns_writes_imm_of_the_slot() -> None:
    raw = bytearray(bytes.fromhex("".join([*_lddw_map(1), EXIT])))
    patch_insns(raw, 0, 7)
    assert struct.unpack_from("<i", raw, 4)[0] == 7
    assert raw[0] == 0x18 and raw[1] == 0x11  # opcode and regs untouched
    assert raw[8:] == bytes.fromhex(_insn(0x00) + EXIT)
    patch_insns(raw, 2, 0xFFFF_FFFF)  # u32 values wrap to s32
    assert struct.unpack_from("<i", raw, 20)[0] == -1


def test_fixup_kinds_share_one_map_and_patch_every_index() -> None:
    insns = _lddw_map(1) + _lddw_map(2) + [_mov_r0(0), EXIT]
    case = _case(insns, fixups={"map_hash_8b": [0, 2]})
    rt = Runtime()
    maps = create_fixup_maps(rt, case)
    assert list(maps.fds) == ["map_hash_8b"]
    m = _map(rt, maps.fds["map_hash_8b"])
    assert (m.map_type, m.key_size, m.value_size, m.max_entries, m.map_flags) == (
        MapType.HASH, 8, 8, 1, 1)
    ans = verify_case(case)
    assert ans["verdict"] == "accept", ans["message"]


def test_init_writes_element_zero() -> None:
    case = _case([*_lddw_map(1), _mov_r0(0), EXIT], fixups={"map_array_48b": [0]})
    rt = Runtime()
    maps = create_fixup_maps(rt, case)
    value = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=maps.fds["map_array_48b"],
                                                 key=bytes(4)), runtime=rt)
    assert len(value) == 48
    assert struct.unpack_from("<I", value, 0)[0] == 28  # struct test_val.index
    assert struct.unpack_from("<I", value, 4 + 6 * 4)[0] == 0xABCDEF12  # foo[6]


def test_map_in_map_has_an_array_template_and_no_element() -> None:
    case = _case([*_lddw_map(1), _mov_r0(0), EXIT], fixups={"map_in_map": [0]})
    rt = Runtime()
    maps = create_fixup_maps(rt, case)
    outer = _map(rt, maps.fds["map_in_map"])
    assert outer.map_type is MapType.ARRAY_OF_MAPS
    assert len(rt.fds) == 1  # the inner map's fd was closed, as the selftest does


def test_prog_array_holds_three_programs_of_the_test_type() -> None:
    case = _case([*_lddw_map(1), _mov_r0(0), EXIT], fixups={"prog1": [0]},
                 prog_type=ProgType.SCHED_CLS)
    rt = Runtime()
    try:
        maps = create_fixup_maps(rt, case)
    except BpfError as err:
        pytest.skip(f"program arrays not available yet: {err}")
    fd = maps.fds["prog1"]
    assert _map(rt, fd).map_type is MapType.PROG_ARRAY
    assert len(rt.fds) == 1  # only the map's fd: the array holds the programs
    progs = [p for p in rt.iter_objects() if p.kind.value == "prog"]
    assert len(progs) == 3
    assert {p.prog_type for p in progs} == {ProgType.SCHED_CLS}  # type: ignore[attr-defined]


def test_btf_kinds_are_created_with_or_without_btf() -> None:
    case = _case([*_lddw_map(1), _mov_r0(0), EXIT], fixups={"map_spin_lock": [0]})
    rt = Runtime()
    maps = create_fixup_maps(rt, case)
    m = _map(rt, maps.fds["map_spin_lock"])
    assert (m.key_size, m.value_size) == (4, 8)
    if maps.btf_fd is None:
        assert any("without BTF" in n for n in maps.notes)


def test_missing_map_spec_is_a_reject_not_a_crash() -> None:
    case = _case([*_lddw_map(1), _mov_r0(0), EXIT], fixups={"map_hash_8b": [0]})
    case["map_specs"] = {}
    ans = verify_case(case)
    assert ans["verdict"] == "reject"
    assert "map_specs" in ans["message"]


# -- verify_case ---------------------------------------------------------------------------------
def test_accept_and_run_a_socket_filter() -> None:
    ans = verify_case(_case([_mov_r0(7), EXIT], runs=2))
    assert ans["verdict"] == "accept", ans["message"]
    assert ans["retvals"] == [7, 7], ans.get("run_notes")


def test_retval_is_u32() -> None:
    ans = verify_case(_case([_mov_r0(-1), EXIT], prog_type=ProgType.XDP))
    assert ans["retvals"] == [0xFFFF_FFFF], ans.get("run_notes")


def test_types_without_test_run_give_none() -> None:
    ans = verify_case(_case([_mov_r0(0), EXIT], prog_type=ProgType.TRACEPOINT))
    assert ans["verdict"] == "accept", ans["message"]
    assert ans["retvals"] == [None]
    assert "ENOTSUPP" in ans["run_notes"][0]


def test_runs_count_negative_means_no_run() -> None:
    ans = verify_case(_case([_mov_r0(3), EXIT], runs_count=-1))
    assert ans["retvals"] == [None]


def test_unprivileged_load_of_a_privileged_type_is_eperm() -> None:
    ans = verify_case(_case([_mov_r0(0), EXIT], prog_type=ProgType.XDP, unpriv=True))
    assert ans["verdict"] == "reject"
    assert "EPERM" in ans["message"]


def test_unprivileged_socket_filter_runs() -> None:
    ans = verify_case(_case([_mov_r0(5), EXIT], unpriv=True))
    assert ans["verdict"] == "accept", ans["message"]
    assert ans["retvals"] == [5]


def test_a_looping_program_stops_at_the_budget() -> None:
    ans = verify_case(_case([_insn(0x05, off=-1), EXIT]))  # goto -1 (self)
    # The structural checks accept it; a full verifier rejects it (back-edge). Either
    # way the run ends, with no retval.
    assert ans["retvals"] == [None]


@pytest.mark.parametrize("bad", [
    {},
    {"insns": ["zz"]},
    {"insns": [EXIT], "runs": [{"nodata": 1}]},
    {"insns": [EXIT], "fixups": {"nokind": [0]}, "map_specs": {"nokind": {}}},
    {"insns": [EXIT], "prog_type_id": 999},
])
def test_bad_input_never_raises(bad: dict[str, Any]) -> None:
    ans = verify_case(bad)
    assert ans["verdict"] in ("accept", "reject")
    assert isinstance(ans["message"], str)
    assert isinstance(ans["retvals"], list)


def test_nr_cpus_is_fixed() -> None:
    assert NR_CPUS >= 1


def test_shared_btf_is_maps_json_blob() -> None:
    if not MAPS_JSON.exists():
        pytest.skip(f"maps.json not found at {MAPS_JSON}")
    assert json.loads(MAPS_JSON.read_text())["shared_btf_hex"] == SHARED_BTF_HEX


# -- the corpus ---------------------------------------------------------------------------------
def _load_dev() -> list[dict[str, Any]]:
    if not DEV.exists():
        pytest.skip(f"verifier cases not found at {DEV}")
    return [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]


def test_dev_retval_match_does_not_regress() -> None:
    """The scorer's "test-run retval match" on every dev case, held to the floor."""
    cases = _load_dev()
    n = ok = 0
    misses = []
    for c in cases:
        inp = {k: c.get(k) for k in INPUT_FIELDS}
        inp["runs"] = [{"data": r["data"]} for r in c.get("runs", [])]
        inp["unpriv"] = False
        ans = verify_case(inp)
        assert ans["verdict"] in ("accept", "reject")
        kruns = c.get("kernel_runs")
        if c["kernel_verdict"] != "accept" or not kruns or (c.get("runs_count") or 0) < 0:
            continue
        for i, (run, kr) in enumerate(zip(c["runs"], kruns, strict=False)):
            if not run.get("check", True) or kr.get("errno") or kr.get("retval") is None:
                continue
            n += 1
            mine = ans["retvals"][i] if i < len(ans["retvals"]) else None
            if mine is not None and mine & 0xFFFF_FFFF == kr["retval"] & 0xFFFF_FFFF:
                ok += 1
            else:
                misses.append(c["id"])
    rate = 100.0 * ok / n
    assert rate >= RETVAL_MATCH_FLOOR, (
        f"retval match {rate:.2f}% ({ok}/{n}) fell below {RETVAL_MATCH_FLOOR}%; "
        f"misses: {misses[:20]}")
