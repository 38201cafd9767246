"""``struct bpf_testmod_ops``: the kernel selftests' struct_ops test type.

The kernel's selftest module (tools/testing/selftests/bpf/test_kmods/bpf_testmod.c)
registers this small ops struct to exercise the struct_ops machinery itself;
pyebpf has it built in for the same purpose:

- ``test_1(void) -> int``, ``test_2(int a, int b)``, ``test_maybe_null(int dummy,
  struct task_struct *task) -> int``: members BPF may implement (``task`` may
  be NULL: the program must check it);
- ``unsupported_ops``: no CFI stub, so a program for it is ENOTSUPP at load;
- ``data``: an int copied from the map value (init_member handles it).

Registering calls ``test_1()`` and then ``test_2(4, data)`` (bpf_dummy_reg), so
a test sees the programs run at registration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..btf import BtfMember
from . import StructOpsData, StructOpsType, register_struct_ops

if TYPE_CHECKING:
    from ..btf_build import BtfBuilder

__all__ = ["BpfTestmodOps"]


class BpfTestmodOps(StructOpsType):
    name = "bpf_testmod_ops"
    unsupported = frozenset({"unsupported_ops"})
    #: bpf_testmod_test_maybe_null(int dummy, struct task_struct *task__nullable).
    nullable_args: ClassVar[dict[str, frozenset[int]]] = {"test_maybe_null": frozenset({1})}

    def add_btf(self, b: BtfBuilder, ids: dict[str, int]) -> None:
        i = ids["int"]
        task = b.ptr(ids["struct task_struct"])
        ids["struct bpf_testmod_ops"] = b.struct("bpf_testmod_ops", [
            ("test_1", b.ptr(b.func_proto(i, []))),
            ("test_2", b.ptr(b.func_proto(0, [("a", i), ("b", i)]))),
            ("test_maybe_null", b.ptr(b.func_proto(i, [("dummy", i), ("task", task)]))),
            ("unsupported_ops", b.ptr(b.func_proto(i, []))),
            ("data", i),
        ])

    def init_member(self, member: BtfMember, kdata: StructOpsData, udata: bytes) -> int:
        if member.name == "data":
            off = member.bit_offset // 8
            kdata.raw[off:off + 4] = udata[off:off + 4]
            return 1
        return 0

    def reg(self, kdata: StructOpsData) -> None:
        if kdata.has("test_1"):
            kdata.call("test_1")
        if kdata.has("test_2"):
            kdata.call("test_2", 4, kdata.get_int("data"))
        super().reg(kdata)


register_struct_ops(BpfTestmodOps())
