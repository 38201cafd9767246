"""Property tests of pyebpf.testing.strategies: the strategies give what they promise."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf import Program, ProgType, load_object
from pyebpf.isa import AluOp, Class, JmpOp, Mode
from pyebpf.testing.cases import MapCodec, make_runtime, read_maps, seed_maps
from pyebpf.testing.layout import btf_layout
from pyebpf.testing.packets import ETH_HLEN, parse_frame
from pyebpf.testing.strategies import (
    GeneratedProgram,
    ctx_structs,
    frames,
    map_contents,
    packets,
    programs,
    values,
)

FLOWS = Path(__file__).resolve().parent.parent / "data" / "testing" / "flows.o"


# -- packets --------------------------------------------------------------------------------------
@given(frames(versions=(4, 6, 0), protos=(6, 17, 47), broken=False))
def test_well_formed_frames_parse_back_as_specified(frame) -> None:
    spec, parsed = frame.spec, parse_frame(frame.data)
    assert parsed.defects == set()
    if spec.version:
        assert (parsed.version, parsed.proto, parsed.src, parsed.dst, parsed.ttl) == (
            spec.version, spec.proto, spec.src, spec.dst, spec.ttl)
        assert parsed.payload == spec.payload
        if spec.proto in (6, 17):
            assert (parsed.sport, parsed.dport) == (spec.sport, spec.dport)
    else:
        assert parsed.ethertype == spec.ethertype and parsed.payload == spec.payload


@given(frames(versions=(4, 6, 0), broken=True))
def test_broken_frames_carry_exactly_one_defect_the_parser_finds(frame) -> None:
    (defect,) = frame.defects
    assert defect in parse_frame(frame.data).defects


@given(packets(broken=None))
def test_packets_are_frame_bytes(data: bytes) -> None:
    assert isinstance(data, bytes) and len(data) >= 1


# -- ctx structs ----------------------------------------------------------------------------------
@settings(max_examples=30)
@given(ctx_structs(ProgType.SOCKET_FILTER), packets(versions=(4, 6)))
def test_skb_ctx_is_a_valid_test_run_ctx_in(ctx: bytes, packet: bytes) -> None:
    rt = make_runtime()
    prog = Program.load(ProgType.SOCKET_FILTER, b"\xb7\0\0\0\x07\0\0\0\x95\0\0\0\0\0\0\0",
                        runtime=rt)
    assert prog.test_run(packet, ctx=ctx).retval == 7


@settings(max_examples=30)
@given(packets(versions=(4, 6)), st.data())
def test_xdp_ctx_is_a_valid_test_run_ctx_in(packet: bytes, data: st.DataObject) -> None:
    ctx = data.draw(ctx_structs(ProgType.XDP, packet_size=len(packet)))
    meta = int.from_bytes(ctx[0:4], "little")
    assert meta % 4 == 0 and len(packet) - meta >= ETH_HLEN
    prog = Program.load(ProgType.XDP, b"\xb7\0\0\0\x02\0\0\0\x95\0\0\0\0\0\0\0",
                        runtime=make_runtime())
    r = prog.test_run(packet, ctx=ctx)
    assert r.retval == 2 and r.data_out == packet


@given(ctx_structs(ProgType.KPROBE))
def test_ctx_of_a_type_without_test_run_fills_its_table(ctx: bytes) -> None:
    from pyebpf.progs import prog_type_ops

    assert len(ctx) == prog_type_ops(ProgType.KPROBE).ctx.size


@given(ctx_structs(ProgType.RAW_TRACEPOINT))
def test_raw_tracepoint_ctx_is_up_to_twelve_u64_args(ctx: bytes) -> None:
    assert len(ctx) % 8 == 0 and 8 <= len(ctx) <= 96


def test_xdp_ctx_needs_the_packet_size() -> None:
    @given(ctx_structs(ProgType.XDP))
    def draw_one(ctx: bytes) -> None:
        raise AssertionError("drawn without a packet size")

    with pytest.raises(ValueError, match="packet_size"):
        draw_one()


# -- map contents ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flows_spec():
    from pyebpf import load_spec

    return load_spec(FLOWS)


@settings(max_examples=40)
@given(data=st.data())
def test_values_encode_to_the_layout_size_and_decode_back(flows_spec, data) -> None:
    for ms in flows_spec.maps.values():
        for tid in (ms.btf_key_type_id, ms.btf_value_type_id):
            layout = btf_layout(flows_spec.btf, tid)
            v = data.draw(values(layout))
            raw = layout.encode(v)
            assert len(raw) == layout.size
            assert layout.decode(raw) == v


@settings(max_examples=25)
@given(data=st.data())
def test_map_contents_seed_a_map_and_read_back_equal(flows_spec, data) -> None:
    rt = make_runtime()
    coll = load_object(flows_spec, runtime=rt)
    try:
        drawn = {}
        for name in ("flows", "config", "verdicts"):
            ms = flows_spec.maps[name]
            codec = MapCodec.for_spec(ms, flows_spec.btf, rt.nr_cpus)
            drawn[name] = data.draw(map_contents(codec, max_entries=ms.max_entries))
        seed_maps(coll, drawn)
        back = read_maps(coll)
        assert back["flows"] == drawn["flows"]
        for name in ("config", "verdicts"):  # arrays: every slot, zero where not drawn
            zero = back[name].codec.value.zero()
            assert all(back[name][i] == drawn[name].get(i, zero)
                       for i in range(flows_spec.maps[name].max_entries))
    finally:
        coll.close()


# -- programs -------------------------------------------------------------------------------------
PROGRAM_TYPES = st.sampled_from([ProgType.SOCKET_FILTER, ProgType.XDP, ProgType.SCHED_CLS])


@settings(max_examples=60)
@given(PROGRAM_TYPES.flatmap(programs))
def test_generated_programs_pass_pyebpfs_verifier(gp: GeneratedProgram) -> None:
    Program.load(gp.prog_type, list(gp.insns), runtime=make_runtime()).close()


def _functions(insns) -> list[range]:
    """The instruction ranges of the main program and of each called subprogram."""
    starts = {0} | {pc + 1 + i.imm for pc, i in enumerate(insns)
                    if i.code == Class.JMP | JmpOp.CALL and i.src == 1}
    bounds = [*sorted(starts), len(insns)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


@settings(max_examples=60)
@given(PROGRAM_TYPES.flatmap(programs))
def test_generated_programs_jump_only_forward_within_a_function(gp: GeneratedProgram) -> None:
    insns = gp.insns
    for fn in _functions(insns):
        assert insns[fn[-1]].code == Class.JMP | JmpOp.EXIT  # each function ends in exit
        assert all(insns[pc].code != Class.JMP | JmpOp.EXIT for pc in fn[:-1])
        for pc in fn:
            i = insns[pc]
            if i.cls not in (Class.JMP, Class.JMP32) or i.code & 0xF0 in (JmpOp.EXIT,
                                                                          JmpOp.CALL):
                continue
            jump = i.imm if i.code == Class.JMP32 | JmpOp.JA else i.off
            assert jump >= 0 and pc + 1 + jump in fn


@settings(max_examples=60)
@given(PROGRAM_TYPES.flatmap(programs))
def test_generated_calls_are_argumentless_helpers_or_forward_subprograms(
        gp: GeneratedProgram) -> None:
    for i in gp.insns:
        if i.code == Class.JMP | JmpOp.CALL:
            assert (i.src == 0 and i.imm in (8, 42)) or (i.src == 1 and i.imm >= 0)


@settings(max_examples=40)
@given(PROGRAM_TYPES.flatmap(lambda t: programs(t, v4=False)))
def test_programs_without_v4_use_no_v4_instructions(gp: GeneratedProgram) -> None:
    for i in gp.insns:
        assert i.code & 0xE0 != Mode.MEMSX or i.cls not in (Class.LDX,)
        if i.cls in (Class.ALU, Class.ALU64) and i.code & 0xF0 in (AluOp.DIV, AluOp.MOD,
                                                                     AluOp.MOV):
            assert i.off == 0
        assert not (i.cls == Class.ALU64 and i.code & 0xF0 == AluOp.END)


@settings(max_examples=40)
@given(PROGRAM_TYPES.flatmap(programs), packets(versions=(4, 6)))
def test_generated_programs_run_to_exit_on_pyebpf(gp: GeneratedProgram, packet: bytes) -> None:
    prog = Program.load(gp.prog_type, list(gp.insns), runtime=make_runtime())
    r = prog.test_run(packet)
    assert 0 <= r.retval < 1 << 32


@given(programs(ProgType.XDP, ctx=False, packet=False, stack=False))
def test_programs_without_ctx_packet_or_stack_keep_every_register_scalar(
        gp: GeneratedProgram) -> None:
    assert gp.scalars == tuple(range(10)) and gp.stack_slots == 0
    assert not any(i.src == 10 or i.dst == 10 for i in gp.insns)
