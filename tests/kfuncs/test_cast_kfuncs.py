"""bpf_cast_to_kern_ctx / bpf_rdonly_cast, loads through untrusted BTF pointers, and
BPF_PROBE_MEM at run time (a faulting load through such a pointer reads 0).

Expected lines and results are Linux 6.18's for the same bytes (the kernel test
tests/kernel/test_cast_kfuncs_differential.py holds them to the running kernel).
The raw cases take the BTF ids they embed (rdonly_cast's ``btf_id``) as
parameters, since pyebpf's vmlinux numbers its types differently.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf import Runtime, bpf
from pyebpf.attr import MapCreateAttr, MapElemAttr, ProgLoadAttr, TestRunAttr
from pyebpf.collection import load_object
from pyebpf.elf import load_spec
from pyebpf.engine import Vm
from pyebpf.errors import ENOTSUPP, BpfError, BpfFault
from pyebpf.isa.insn import Insn as I
from pyebpf.kernel_btf import kernel_btf, kernel_struct_id, kernel_type_ids
from pyebpf.kfuncs import KF, kfunc_by_name
from pyebpf.kfuncs.cast import BTF_ID_CAST_TO_KERN_CTX, BTF_ID_RDONLY_CAST, KernelStructView
from pyebpf.uapi import AttachType, Cmd, MapType, ProgType

from ._load import Loaded, load

OBJ = Path(__file__).parents[1] / "data" / "kfuncs" / "cast_kfuncs.o"
CAST, RDONLY = I(0x85, 0, 2, 0, BTF_ID_CAST_TO_KERN_CTX), I(0x85, 0, 2, 0, BTF_ID_RDONLY_CAST)
EXIT = I(0x95, 0, 0, 0, 0)
RET0 = [I(0xB7, 0, 0, 0, 0), EXIT]
SCHED_CLS, XDP, KPROBE = ProgType.SCHED_CLS, ProgType.XDP, ProgType.KPROBE


@attrs.frozen
class Ids:
    """The vmlinux BTF ids a case embeds: pyebpf's, or the running kernel's."""

    sk_buff: int
    int_: int
    u64: int


def pyebpf_ids() -> Ids:
    ids = kernel_type_ids()
    return Ids(kernel_struct_id("sk_buff"), ids["int"], ids["u64"])


def rdonly(btf_id: int, obj: list[I] | None = None) -> list[I]:
    """r0 = bpf_rdonly_cast(r1 (or what ``obj`` puts there), btf_id)."""
    return [*(obj or []), I(0xB7, 2, 0, 0, btf_id), RDONLY]


@attrs.frozen
class Case:
    """A program (built from the ids), the kernel's last log line when it rejects
    it (None: accepted) and, for a test-run type, r0 of a run on 64 zero bytes."""

    prog_type: int
    build: Callable[[Ids], list[I]]
    error: Callable[[Ids], str] | None = None
    retval: int | None = None


def _const(line: str) -> Callable[[Ids], str]:
    return lambda ids: line


#: name -> case. tc test runs see a 64-byte skb on lo (ifindex 1), protocol
#: ETH_P_802_2 (0x0004, 1024 as the u16 lies in memory), data 64 bytes past head.
CASES: dict[str, Case] = {
    "kctx_len": Case(SCHED_CLS, lambda ids: [CAST, I(0x61, 0, 0, 112, 0), EXIT], retval=64),
    "kctx_len_socket_filter": Case(ProgType.SOCKET_FILTER, lambda ids: [
        CAST, I(0x61, 0, 0, 112, 0), EXIT], retval=50),
    "kctx_headroom": Case(SCHED_CLS, lambda ids: [
        CAST, I(0x79, 1, 0, 192, 0), I(0x79, 0, 0, 200, 0), I(0x1F, 0, 1, 0, 0), EXIT],
        retval=64),
    "kctx_dev_ifindex": Case(SCHED_CLS, lambda ids: [
        CAST, I(0x79, 1, 0, 16, 0), I(0x61, 0, 1, 224, 0), EXIT], retval=1),
    "kctx_xdp_rxq_queue": Case(XDP, lambda ids: [
        CAST, I(0x79, 1, 0, 32, 0), I(0x61, 0, 1, 8, 0), EXIT], retval=0),
    "kctx_xdp_rxq_dev": Case(XDP, lambda ids: [
        CAST, I(0x79, 1, 0, 32, 0), I(0x79, 1, 1, 0, 0), I(0x61, 0, 1, 224, 0), EXIT],
        retval=1),
    "kctx_xdp_packet_len": Case(XDP, lambda ids: [
        CAST, I(0x79, 1, 0, 8, 0), I(0x79, 0, 0, 0, 0), I(0x1F, 1, 0, 0, 0),
        I(0xBF, 0, 1, 0, 0), EXIT], retval=64),
    "kctx_kprobe_pt_regs": Case(KPROBE, lambda ids: [CAST, I(0x79, 0, 0, 0, 0), EXIT]),
    # the header offsets, tail, end (from head) and truesize of a test run's skb
    **{f"kctx_{field}": Case(SCHED_CLS, lambda ids, o=off, c=code: [
        CAST, I(c, 0, 0, o, 0), EXIT], retval=value)
       for field, off, code, value in (
           ("mac_header", 182, 0x69, 64), ("network_header", 180, 0x69, 78),
           ("transport_header_unset", 178, 0x69, 0xFFFF), ("mac_len", 120, 0x69, 0),
           ("tail", 184, 0x61, 128), ("end", 188, 0x61, 192), ("truesize", 208, 0x61, 768))},
    "kctx_cb_data_end": Case(SCHED_CLS, lambda ids: [  # bpf_skb_data_end in skb->cb
        CAST, I(0x79, 1, 0, 200, 0), I(0x79, 0, 0, 80, 0), I(0x1F, 0, 1, 0, 0), EXIT],
        retval=64),
    "kctx_xdp_frame_sz": Case(XDP, lambda ids: [CAST, I(0x61, 0, 0, 48, 0), EXIT],
                              retval=4096),
    "kctx_xdp_headroom": Case(XDP, lambda ids: [
        CAST, I(0x79, 1, 0, 24, 0), I(0x79, 0, 0, 0, 0), I(0x1F, 0, 1, 0, 0), EXIT],
        retval=256),
    "kctx_xdp_txq_null": Case(XDP, lambda ids: [
        CAST, I(0x79, 1, 0, 40, 0), I(0x79, 1, 1, 0, 0), I(0x61, 0, 1, 224, 0), EXIT],
        retval=0),
    "kctx_cb_scratch": Case(SCHED_CLS, lambda ids: [CAST, I(0x79, 0, 0, 44, 0), EXIT],
                            retval=0),
    "kctx_xdp_frame_sz_flags": Case(XDP, lambda ids: [CAST, I(0x61, 0, 0, 52, 0), EXIT],
                                    retval=0),
    "kctx_write": Case(SCHED_CLS, lambda ids: [CAST, I(0x62, 0, 0, 164, 1), *RET0],
                       _const("only read is supported")),
    "kctx_stack_arg": Case(SCHED_CLS, lambda ids: [
        I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -8), CAST, *RET0],
        _const("arg#0 expected pointer to ctx, but got fp")),
    "kctx_scalar_arg": Case(SCHED_CLS, lambda ids: [I(0xB7, 1, 0, 0, 0), CAST, *RET0],
                            _const("arg#0 expected pointer to ctx, but got scalar")),
    "kctx_modified_ctx": Case(SCHED_CLS, lambda ids: [I(0x07, 1, 0, 0, 8), CAST, *RET0],
                              _const("dereference of modified ctx ptr R1 off=8 disallowed")),
    "kctx_tracepoint_u64": Case(ProgType.TRACEPOINT, lambda ids: [CAST, *RET0],
                                lambda ids: f"kern ctx type id {ids.u64} is not a struct"),
    "kctx_sk_rcu_or_null": Case(SCHED_CLS, lambda ids: [
        CAST, I(0x79, 1, 0, 24, 0), I(0x61, 0, 1, 0, 0), EXIT],
        _const("R1 invalid mem access 'rcu_ptr_or_null_'")),
    "kctx_member_overrun": Case(SCHED_CLS, lambda ids: [CAST, I(0x79, 0, 0, 116, 0), EXIT],
                                _const("access beyond the end of member data_len (mend:120) "
                                       "in struct sk_buff with off 116 size 8")),
    "kctx_ptr_member_partly": Case(SCHED_CLS, lambda ids: [
        CAST, I(0x61, 0, 0, 16, 0), EXIT], _const(
        "cannot access ptr member dev with moff 0 in struct (anon) with off 0 size 4")),
    "rdonly_null_reads_zero": Case(SCHED_CLS, lambda ids: [
        *rdonly(ids.sk_buff, [I(0xB7, 1, 0, 0, 0)]), I(0x61, 0, 0, 112, 0), EXIT], retval=0),
    "rdonly_ctx_is_the_sk_buff": Case(SCHED_CLS, lambda ids: [
        *rdonly(ids.sk_buff), I(0x61, 0, 0, 112, 0), EXIT], retval=64),
    "rdonly_dev_through_union": Case(SCHED_CLS, lambda ids: [
        *rdonly(ids.sk_buff), I(0x79, 1, 0, 16, 0), I(0x61, 0, 1, 224, 0), EXIT], retval=1),
    "rdonly_void_of_sk_buff": Case(SCHED_CLS, lambda ids: [
        *rdonly(ids.sk_buff), I(0xBF, 1, 0, 0, 0), *rdonly(0), I(0x61, 0, 0, 112, 0), EXIT],
        retval=64),
    # (NULL-based: what lies past a kernel object is the kernel's business)
    "rdonly_void_far_read": Case(SCHED_CLS, lambda ids: [
        *rdonly(0, [I(0xB7, 1, 0, 0, 0)]), I(0x79, 0, 0, 4096, 0), EXIT], retval=0),
    "rdonly_void_variable_offset": Case(SCHED_CLS, lambda ids: [
        I(0x61, 6, 1, 0, 0), *rdonly(0, [I(0xB7, 1, 0, 0, 0)]), I(0x0F, 0, 6, 0, 0),
        I(0x71, 0, 0, 0, 0), EXIT], retval=0),
    "rdonly_trusted_or_untrusted_path": Case(SCHED_CLS, lambda ids: [
        I(0xBF, 6, 1, 0, 0), CAST, I(0xBF, 7, 0, 0, 0), I(0xBF, 1, 6, 0, 0),
        *rdonly(ids.sk_buff), I(0x61, 1, 6, 0, 0), I(0x15, 1, 0, 1, 0), I(0xBF, 0, 7, 0, 0),
        I(0x61, 0, 0, 112, 0), EXIT], retval=64),
    "rdonly_write": Case(SCHED_CLS, lambda ids: [
        *rdonly(ids.sk_buff), I(0x62, 0, 0, 112, 1), *RET0], _const("only read is supported")),
    "rdonly_void_write": Case(SCHED_CLS, lambda ids: [*rdonly(0), I(0x7A, 0, 0, 0, 1), *RET0],
                              _const("R0 cannot write into rdonly_untrusted_mem")),
    "rdonly_int": Case(SCHED_CLS, lambda ids: [*rdonly(ids.int_), *RET0], _const(
        "kfunc bpf_rdonly_cast type ID argument must be of a struct or void")),
    "rdonly_unknown_id": Case(SCHED_CLS, lambda ids: [*rdonly(0x7FFF_FFFF), *RET0], _const(
        "Unknown type ID 2147483647 passed to kfunc bpf_rdonly_cast")),
    "rdonly_id_not_constant": Case(SCHED_CLS, lambda ids: [
        I(0x61, 2, 1, 0, 0), RDONLY, *RET0], _const("R2 must be a known constant")),
    "rdonly_negative_offset": Case(SCHED_CLS, lambda ids: [
        *rdonly(ids.sk_buff), I(0x61, 0, 0, -8, 0), EXIT],
        _const("R0 is ptr_sk_buff invalid negative access: off=-8")),
    "rdonly_past_the_struct": Case(SCHED_CLS, lambda ids: [
        *rdonly(ids.sk_buff), I(0x61, 0, 0, 224, 0), EXIT],
        _const("access beyond struct sk_buff at off 224 size 4")),
    "rdonly_void_to_helper": Case(SCHED_CLS, lambda ids: [
        *rdonly(0), I(0xBF, 1, 0, 0, 0), I(0xB7, 2, 0, 0, 4), I(0xB7, 3, 0, 0, 0),
        I(0xB7, 4, 0, 0, 0), I(0xB7, 5, 0, 0, 0), I(0x85, 0, 0, 0, 28), *RET0],
        _const("R1 type=rdonly_untrusted_mem expected=fp, pkt, pkt_meta, map_key, map_value, "
               "mem, ringbuf_mem, buf, trusted_ptr_")),
}

#: Register types the kernel's level-2 log shows for some cases (pyebpf's must too).
STATE_TYPES = {
    "kctx_dev_ifindex": {"trusted_ptr_sk_buff", "untrusted_ptr_net_device"},
    "kctx_xdp_rxq_dev": {"trusted_ptr_xdp_buff", "ptr_xdp_rxq_info", "ptr_net_device"},
    "kctx_xdp_packet_len": {"rdonly_untrusted_mem"},
    "kctx_sk_rcu_or_null": {"rcu_ptr_or_null_sock"},
    "kctx_kprobe_pt_regs": {"trusted_ptr_pt_regs"},
    "rdonly_dev_through_union": {"untrusted_ptr_sk_buff", "untrusted_ptr_net_device"},
}

_TEST_RUN_TYPES = (ProgType.SCHED_CLS, ProgType.XDP, ProgType.SOCKET_FILTER)


def run_case(name: str) -> Loaded:
    c = CASES[name]
    return load(c.build(pyebpf_ids()), prog_type=c.prog_type, log_level=2,
                run=c.prog_type in _TEST_RUN_TYPES)


# -- the table ---------------------------------------------------------------------------------
def test_both_kfuncs_are_common_fastcall_kfuncs_with_the_kernels_ids() -> None:
    cast, rdo = kfunc_by_name("bpf_cast_to_kern_ctx"), kfunc_by_name("bpf_rdonly_cast")
    assert cast is not None and rdo is not None
    assert (cast.btf_id, rdo.btf_id) == (63548, 65486)
    assert cast.flags == rdo.flags == KF.FASTCALL
    assert cast.prog_types is None and rdo.prog_types is None
    assert [a.name for a in rdo.args] == ["obj__ign", "btf_id__k"]


# -- verdicts, messages, results ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_message_and_result(name: str) -> None:
    c = CASES[name]
    got = run_case(name)
    expected = c.error(pyebpf_ids()) if c.error is not None else None
    assert (got.error_line if not got.accepted else None) == expected, got.log
    if expected is None and c.prog_type in _TEST_RUN_TYPES:
        assert got.retval == c.retval


@pytest.mark.parametrize("name", sorted(STATE_TYPES))
def test_log_names_the_pointer_types_as_the_kernel(name: str) -> None:
    log = run_case(name).log
    for t in STATE_TYPES[name]:
        assert f"={t}(" in log, t


def test_rejections_carry_the_kernels_errno() -> None:
    assert run_case("kctx_write").errno == errno.EACCES
    assert run_case("kctx_stack_arg").errno == errno.EINVAL
    assert run_case("kctx_modified_ctx").errno == errno.EACCES
    assert run_case("rdonly_unknown_id").errno == errno.EINVAL
    assert run_case("rdonly_void_write").errno == errno.EACCES


def test_an_unsimulated_kernel_ctx_struct_is_enotsupp() -> None:
    got = load([CAST, *RET0], prog_type=ProgType.CGROUP_SOCK)
    assert not got.accepted and got.errno == ENOTSUPP
    assert got.error_line == ("pyebpf does not simulate struct sock, the kernel ctx of "
                              "CGROUP_SOCK programs (bpf_cast_to_kern_ctx)")


def test_netfilter_kernel_ctx_is_its_bpf_nf_ctx() -> None:
    """NETFILTER's kernel ctx is the uapi one (no view: the same address); the lines
    are Linux 6.18's for these bytes."""
    rt = _kernel_rt()
    buf = bytearray(1 << 16)
    bpf(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.NETFILTER, expected_attach_type=AttachType.NETFILTER,
        insns=[CAST, I(0x79, 1, 0, 0, 0), I(0x71, 0, 1, 0, 0), I(0xB7, 0, 0, 0, 1), EXIT],
        license="GPL", log_level=2, log_size=len(buf), log_buf=buf), runtime=rt)
    log = bytes(buf).split(b"\0", 1)[0].decode()
    assert "0: (85) call bpf_cast_to_kern_ctx#63548       ; R0=trusted_ptr_bpf_nf_ctx()" in log
    assert ("1: (79) r1 = *(u64 *)(r0 +0)          ; R0=trusted_ptr_bpf_nf_ctx() "
            "R1=ptr_nf_hook_state()") in log


def test_kfunc_liveness_uses_the_prototypes_parameter_count() -> None:
    log = run_case("kctx_len").log
    assert "0: .1........ (85) call bpf_cast_to_kern_ctx#63548" in log


# -- BPF_PROBE_MEM -----------------------------------------------------------------------------
def _load_prog(rt: Runtime, insns: list[I], prog_type: int = SCHED_CLS) -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=prog_type, insns=insns,
                                                 license="GPL"), runtime=rt))


def _kernel_rt(verifier: str = "kernel") -> Runtime:
    rt = Runtime()
    rt.verifier = verifier
    return rt


def test_loads_through_untrusted_pointers_are_marked_probe_mem() -> None:
    rt = _kernel_rt()
    prog = rt.fds[_load_prog(rt, CASES["rdonly_null_reads_zero"].build(pyebpf_ids()))].obj
    assert prog.probe_mem_insns == {3}


def test_loads_through_trusted_pointers_stay_plain_loads() -> None:
    rt = _kernel_rt()
    prog = rt.fds[_load_prog(rt, CASES["kctx_len"].build(pyebpf_ids()))].obj
    assert prog.probe_mem_insns == frozenset()


def test_a_load_seen_trusted_and_untrusted_is_a_probe() -> None:
    """save_aux_ptr_type keeps the weaker of the two pointer types."""
    rt = _kernel_rt()
    insns = CASES["rdonly_trusted_or_untrusted_path"].build(pyebpf_ids())
    prog = rt.fds[_load_prog(rt, insns)].obj
    assert prog.probe_mem_insns == {len(insns) - 2}


def test_without_the_verifiers_mark_the_same_load_faults() -> None:
    rt = _kernel_rt("structural")
    fd = _load_prog(rt, CASES["rdonly_null_reads_zero"].build(pyebpf_ids()))
    with pytest.raises(BpfFault):
        bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(64)), runtime=rt)


@attrs.define
class _Owner:
    """What a Vm reads of the loaded program it runs: the verifier's probe marks."""

    probe_mem_insns: frozenset[int]


@pytest.mark.parametrize(("code", "expected"), [
    (0x61, 0),                       # w0 = *(u32 *)(r1 + 0)
    (0x81, 0),                       # r0 = *(s32 *)(r1 + 0) (PROBE_MEMSX)
])
def test_probe_load_of_an_unmapped_address_reads_zero(code: int, expected: int) -> None:
    prog = [I(0xB7, 0, 0, 0, -1), I(code, 0, 1, 0, 0), EXIT]
    vm = Vm(prog, owner=_Owner(frozenset({1})))
    assert vm.run(r1=0xDEAD_0000) == expected


def test_probe_load_reads_mapped_memory_normally_and_sign_extends() -> None:
    vm = Vm([I(0x81, 0, 1, 0, 0), EXIT], owner=_Owner(frozenset({0})))
    assert vm.run(mem=(0xFFFF_FFFE).to_bytes(4, "little")) == (1 << 64) - 2


def test_probe_load_past_the_end_of_a_region_reads_zero() -> None:
    vm = Vm([I(0x79, 0, 1, 0, 0), EXIT], owner=_Owner(frozenset({0})))
    assert vm.run(mem=bytes(range(1, 5))) == 0  # 8 bytes from a 4-byte region


@settings(max_examples=200)
@given(delta=st.integers(-5000, 5000), code=st.sampled_from([0x71, 0x69, 0x61, 0x79, 0x91,
                                                             0x89, 0x81]))
def test_a_probe_load_reads_what_a_load_would_or_zero(delta: int, code: int) -> None:
    """Anywhere around a mapped region: the bytes when the whole load is inside it
    (sign-extended for LDX_MEMSX), 0 otherwise, and never a fault."""
    data = bytes(range(0x80, 0xA0))
    width = {0x71: 1, 0x69: 2, 0x61: 4, 0x79: 8, 0x91: 1, 0x89: 2, 0x81: 4}[code]
    vm = Vm([I(0x07, 1, 0, 0, delta), I(code, 0, 1, 0, 0), EXIT], owner=_Owner(frozenset({1})))
    got = vm.run(mem=data)
    if delta >= 0 and delta + width <= len(data):
        value = int.from_bytes(data[delta:delta + width], "little")
        if code in (0x91, 0x89, 0x81) and value >> (8 * width - 1):
            value = (value - (1 << (8 * width))) & ((1 << 64) - 1)
        assert got == value
    else:
        assert got == 0


def test_an_unmarked_load_of_an_unmapped_address_still_faults() -> None:
    with pytest.raises(BpfFault):
        Vm([I(0x61, 0, 1, 0, 0), EXIT]).run(r1=0xDEAD_0000)


def test_a_tail_call_targets_own_probe_marks_apply() -> None:
    rt = _kernel_rt()
    target = _load_prog(rt, [*CASES["rdonly_null_reads_zero"].build(pyebpf_ids())[:-1],
                             I(0x07, 0, 0, 0, 7), EXIT])
    pa = int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.PROG_ARRAY, key_size=4,
                                               value_size=4, max_entries=1), runtime=rt))
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=pa, key=bytes(4),
                                         value=target.to_bytes(4, "little")), runtime=rt)
    caller = _load_prog(rt, [I(0x18, 2, 1, 0, pa), I(0, 0, 0, 0, 0), I(0xB7, 3, 0, 0, 0),
                             I(0x85, 0, 0, 0, 12), I(0xB7, 0, 0, 0, 99), EXIT])
    r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=caller, data_in=bytes(64)), runtime=rt)
    assert r.retval == 7


# -- the kernel ctx views ----------------------------------------------------------------------
def test_struct_view_reads_fields_live_and_zero_elsewhere() -> None:
    box = {"len": 5}
    view = KernelStructView("sk_buff", [KernelStructView.member("sk_buff", "len",
                                                                lambda: box["len"])])
    assert view.size == 224
    assert view.load(112, 4) == 5
    box["len"] = 0x0102_0304
    assert view.load(113, 2) == 0x0203  # part of a field
    assert view.load(108, 8) == 0x0102_0304 << 32  # a hole, then the field
    with pytest.raises(BpfFault):
        view.store(112, 4, 1)


def test_kernel_ctx_view_is_gone_after_the_run() -> None:
    rt = _kernel_rt()
    fd = _load_prog(rt, CASES["kctx_len"].build(pyebpf_ids()))
    bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(64)), runtime=rt)
    views = rt.hooks["kern_ctx_views"]
    assert views and all(rt.memory.region_at(r.base) is None for _, r in views.values())


def test_kernel_btf_lays_out_the_ctx_structs_at_the_kernels_offsets() -> None:
    btf = kernel_btf()
    skb, xdp = kernel_struct_id("sk_buff"), kernel_struct_id("xdp_buff")
    assert btf.sizeof(skb) == 224 and btf.sizeof(xdp) == 56
    assert [btf.offsetof(skb, m) for m in ("dev", "sk", "cb", "len", "mark", "protocol",
                                           "head", "data")] == [16, 24, 40, 112, 164, 176,
                                                                192, 200]
    assert [btf.offsetof(xdp, m) for m in ("data", "data_end", "rxq", "frame_sz")] == [
        0, 8, 32, 48]
    assert btf.offsetof(kernel_struct_id("net_device"), "ifindex") == 224


# -- C programs (clang-19, CO-RE against pyebpf's vmlinux) -------------------------------------
#: program -> r0 of a test run on 64 zero bytes (the map's value has queue_index 7).
ELF_RESULTS = {"kern_skb_len": 64, "kern_skb_headroom": 64, "kern_skb_dev": 1 * 1000 + 1024,
               "kern_skb_pkt_type": 2,  # PACKET_MULTICAST: ff:ff:ff:ff:ff:ff isn't lo's
               "kern_skb_sees_mark_write": 42, "kern_xdp": 0 * 100000 + 1 * 10000 + 64,
               "rdonly_map_value": 7, "rdonly_null": 7, "rdonly_ctx": 64}
#: program -> the kernel's last log line.
ELF_REJECTS = {"rdonly_write": "only read is supported",
               "kern_skb_write": "only read is supported"}
#: blobs[0]: a struct xdp_rxq_info image with queue_index (offset 8) 7.
BLOB = bytes(8) + (7).to_bytes(4, "little") + bytes(52)


def elf_data(name: str) -> bytes:
    """The packet a program's test run gets: 64 zero bytes, to a broadcast MAC for
    the program reading skb->pkt_type (a bitfield, relocated by CO-RE)."""
    return b"\xff" * 6 + bytes(58) if name == "kern_skb_pkt_type" else bytes(64)


@pytest.mark.parametrize("name", sorted(ELF_RESULTS))
def test_c_program_runs_as_on_the_kernel(name: str) -> None:
    rt = _kernel_rt()
    with load_object(load_spec(OBJ, target_btf=kernel_btf()), runtime=rt,
                     programs=[name]) as o:
        o.maps["blobs"].update(bytes(4), BLOB)
        assert o.programs[name].test_run(data=elf_data(name)).retval == ELF_RESULTS[name]


@pytest.mark.parametrize("name", sorted(ELF_REJECTS))
def test_c_program_writing_through_a_cast_is_rejected(name: str) -> None:
    rt = _kernel_rt()
    with pytest.raises(BpfError) as e:
        load_object(load_spec(OBJ, target_btf=kernel_btf()), runtime=rt, programs=[name])
    assert e.value.errno == errno.EACCES
    lines = [ln for ln in (getattr(e.value, "log", "") or "").strip().split("\n")
             if not ln.startswith("processed ")]
    assert lines and lines[-1] == ELF_REJECTS[name]


def test_traced_and_covered_runs_keep_the_probe_marks() -> None:
    """The recording interpreters (pyebpf.trace, pyebpf.coverage) build from the
    same program, so a NULL untrusted load reads 0 there too."""
    from pyebpf.coverage import collect

    rt = _kernel_rt()
    with load_object(load_spec(OBJ, target_btf=kernel_btf()), runtime=rt,
                     programs=["rdonly_null"]) as o:
        prog = o.programs["rdonly_null"]
        traced = prog.test_run(data=bytes(64), trace=True)
        assert traced.retval == 7 and traced.trace is not None
        with collect() as cov:
            assert prog.test_run(data=bytes(64)).retval == 7
        assert cov is not None
