"""The prototype vocabulary and the helper table the verifier reads."""

from __future__ import annotations

import pytest

from pyebpf import FuncId, ProgType
from pyebpf.helpers import HELPERS, Helper, func_proto, helper_table, register_helper
from pyebpf.helpers.proto import (
    ArgType,
    Proto,
    RetType,
    TypeFlag,
    arg_type_str,
    base_type,
    ret_type_str,
    type_flag,
    type_may_be_null,
)


def test_values_are_linux_6_18s() -> None:
    # Read from the running kernel's BTF (enum bpf_arg_type / bpf_return_type / bpf_type_flag).
    assert ArgType.ARG_PTR_TO_DYNPTR == 23
    assert ArgType.ARG_PTR_TO_UNINIT_MEM == 67141636
    assert ArgType.ARG_PTR_TO_FIXED_SIZE_MEM == 262148
    assert ArgType.ARG_PTR_TO_STACK_OR_NULL == 275
    assert RetType.RET_PTR_TO_RINGBUF_MEM_OR_NULL == 1286
    assert RetType.RET_PTR_TO_BTF_ID_TRUSTED == 1048584
    assert TypeFlag.MEM_WRITE == 1 << 26
    assert TypeFlag.DYNPTR_TYPE_SKB_META == 1 << 27


def test_type_arithmetic() -> None:
    t = ArgType.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY | TypeFlag.PTR_MAYBE_NULL
    assert base_type(t) == ArgType.ARG_PTR_TO_MEM
    assert type_flag(t) == TypeFlag.MEM_RDONLY | TypeFlag.PTR_MAYBE_NULL
    assert type_may_be_null(t)
    assert not type_may_be_null(ArgType.ARG_PTR_TO_MEM)


@pytest.mark.parametrize(("t", "text"), [
    (ArgType.ARG_ANYTHING, "ARG_ANYTHING"),
    (ArgType.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, "ARG_PTR_TO_MEM | MEM_RDONLY"),
    (ArgType.ARG_PTR_TO_MAP_VALUE | TypeFlag.PTR_MAYBE_NULL, "ARG_PTR_TO_MAP_VALUE_OR_NULL"),
    (ArgType.ARG_PTR_TO_UNINIT_MEM | TypeFlag.MEM_ALIGNED,
     "ARG_PTR_TO_UNINIT_MEM | MEM_ALIGNED"),
])
def test_arg_type_str(t: int, text: str) -> None:
    assert arg_type_str(t) == text


def test_ret_type_str() -> None:
    assert ret_type_str(RetType.RET_PTR_TO_MAP_VALUE_OR_NULL) == "RET_PTR_TO_MAP_VALUE_OR_NULL"
    assert ret_type_str(RetType.RET_PTR_TO_MEM | TypeFlag.MEM_RDONLY) == \
        "RET_PTR_TO_MEM | MEM_RDONLY"


def test_proto_record() -> None:
    p = Proto(RetType.RET_INTEGER, (ArgType.ARG_CONST_MAP_PTR, ArgType.ARG_ANYTHING))
    assert p.nargs == 2
    assert p.arg_types[2:] == (ArgType.ARG_DONTCARE,) * 3
    with pytest.raises(ValueError):
        Proto(args=(ArgType.ARG_ANYTHING,) * 6)


def test_every_helper_is_named_as_the_kernel_names_it() -> None:
    table = helper_table()
    assert len(table) >= 40
    for func_id, helper in table.items():
        assert isinstance(helper, Helper)
        assert FuncId(func_id).name == helper.name
        assert helper.kernel_name == f"bpf_{helper.name}"
        assert helper.proto.nargs <= 5


@pytest.mark.parametrize(("func_id", "ret", "args", "gpl"), [
    (1, RetType.RET_PTR_TO_MAP_VALUE_OR_NULL,
     (ArgType.ARG_CONST_MAP_PTR, ArgType.ARG_PTR_TO_MAP_KEY), False),
    (12, RetType.RET_VOID,
     (ArgType.ARG_PTR_TO_CTX, ArgType.ARG_CONST_MAP_PTR, ArgType.ARG_ANYTHING), False),
    (6, RetType.RET_INTEGER, (ArgType.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY,
                              ArgType.ARG_CONST_SIZE), True),
    (88, RetType.RET_INTEGER, (ArgType.ARG_CONST_MAP_PTR, ArgType.ARG_PTR_TO_MAP_VALUE
                               | TypeFlag.MEM_UNINIT | TypeFlag.MEM_WRITE), False),
    (113, RetType.RET_INTEGER, (ArgType.ARG_PTR_TO_UNINIT_MEM, ArgType.ARG_CONST_SIZE_OR_ZERO,
                                ArgType.ARG_ANYTHING), True),
    (131, RetType.RET_PTR_TO_RINGBUF_MEM_OR_NULL,
     (ArgType.ARG_CONST_MAP_PTR, ArgType.ARG_CONST_ALLOC_SIZE_OR_ZERO, ArgType.ARG_ANYTHING),
     False),
    (5, RetType.RET_INTEGER, (), False),
])
def test_prototypes(func_id: int, ret: int, args: tuple[int, ...], gpl: bool) -> None:
    proto = helper_table()[func_id].proto
    assert (proto.ret, proto.args, proto.gpl_only) == (ret, args, gpl)


def test_strtol_has_a_fixed_size_aligned_result() -> None:
    proto = helper_table()[105].proto
    assert proto.args[3] == (ArgType.ARG_PTR_TO_FIXED_SIZE_MEM | TypeFlag.MEM_UNINIT
                             | TypeFlag.MEM_WRITE | TypeFlag.MEM_ALIGNED)
    assert proto.arg_size == (0, 0, 0, 8, 0)


def test_spin_lock_btf_id_marker() -> None:
    assert helper_table()[93].proto.arg_btf_id[0] == "BPF_PTR_POISON"


def test_func_proto_tiers() -> None:
    xdp, kprobe = ProgType.XDP, ProgType.KPROBE
    assert func_proto(1, xdp) is HELPERS[1]
    assert func_proto(1, xdp, cap_bpf=False) is HELPERS[1]         # base: everyone
    assert func_proto(93, xdp, cap_bpf=False) is None              # spin_lock: CAP_BPF
    assert func_proto(6, xdp, cap_perfmon=False) is None           # trace_printk: PERFMON
    assert func_proto(6, xdp) is HELPERS[6]
    assert func_proto(16, xdp, cap_perfmon=False) is None          # get_current_comm:
    assert func_proto(16, xdp) is HELPERS[16]                      # PERFMON in 6.18
    assert func_proto(16, kprobe) is HELPERS[16]
    assert func_proto(16, ProgType.CGROUP_SOCK_ADDR) is HELPERS[16]
    assert func_proto(4, xdp) is None                              # probe_read: tracing only
    assert func_proto(4, kprobe) is HELPERS[4]
    assert func_proto(9999, xdp) is None


def test_register_helper_keeps_the_two_argument_form() -> None:
    @register_helper(9876, "test_only")
    def impl(vm: object, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        return 1

    try:
        h = HELPERS[9876]
        assert (h.name, h.proto, h.tier) == ("test_only", Proto(), None)
        assert func_proto(9876, ProgType.XDP) is None
    finally:
        del HELPERS[9876]


def test_time_helpers_have_prototypes() -> None:
    for func_id in (5, 125, 160, 118):
        assert helper_table()[func_id].proto == Proto(RetType.RET_INTEGER)
