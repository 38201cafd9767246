"""BPF_PROG_TYPE_EXT: loading an extension for a global function, and freplace links."""

from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import BpfError, Cmd, ProgLoadAttr, ProgType, Runtime, TestRunAttr, bpf
from pyebpf.attr import BtfLoadAttr, LinkCreateAttr
from pyebpf.btf import FuncLinkage
from pyebpf.btf_build import BtfBuilder
from pyebpf.isa.asm import asm
from pyebpf.progs.ext import replaced_functions
from pyebpf.uapi import LinkType

# The target: main(skb) { return helper(skb, 5); }  helper(skb, x) { return x; }
TARGET = asm("""
    mov %r2, 5
    call local +1
    exit
    mov %r0, %r2
    exit
""")
# The extension of helper: return skb->len + x.
EXT = asm("""
    ldxw %r0, [%r1]
    add %r0, %r2
    exit
""")


def func_btf(*funcs: tuple[str, str, FuncLinkage]) -> tuple[bytes, dict[str, int]]:
    """BTF with ``int f(struct __sk_buff *skb, int x)``-like functions: each entry is
    (name, signature kind, linkage) where the kind is "main" (skb only), "helper"
    (skb, int), "u64" (skb, u64), "ptr_int" (skb, int *)."""
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    u64 = b.int_("unsigned long long", 8)
    skb = b.ptr(b.struct("__sk_buff", [("len", b.int_("unsigned int", 4))]))
    protos = {"main": b.func_proto(i, [("skb", skb)]),
              "helper": b.func_proto(i, [("skb", skb), ("x", i)]),
              "u64": b.func_proto(i, [("skb", skb), ("x", u64)]),
              "ptr_int": b.func_proto(i, [("skb", skb), ("x", b.ptr(i))])}
    ids = {name: b.func(name, protos[kind], linkage) for name, kind, linkage in funcs}
    return b.encode(), ids


G = FuncLinkage.GLOBAL
S = FuncLinkage.STATIC


def load_btf(rt: Runtime, blob: bytes) -> int:
    return int(bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=blob), runtime=rt))


def func_info(*records: tuple[int, int]) -> dict[str, object]:
    return {"func_info": b"".join(struct.pack("<II", *r) for r in records),
            "func_info_rec_size": 8, "func_info_cnt": len(records)}


class Setup:
    def __init__(self, helper_linkage: FuncLinkage = G) -> None:
        self.rt = Runtime()
        blob, self.tids = func_btf(("main", "main", G), ("helper", "helper", helper_linkage))
        self.target = int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=ProgType.SCHED_CLS, insns=TARGET, license="GPL",
            prog_btf_fd=load_btf(self.rt, blob),
            **func_info((0, self.tids["main"]), (3, self.tids["helper"]))), runtime=self.rt))

    def load_ext(self, kind: str = "helper", linkage: FuncLinkage = G, *,
                 attach_btf_id: int | None = None, insns: object = EXT,
                 **kw: object) -> int:
        blob, ids = func_btf(("helper_ext", kind, linkage))
        fields: dict[str, object] = {
            "attach_prog_fd": self.target,
            "attach_btf_id": self.tids["helper"] if attach_btf_id is None else attach_btf_id,
            "prog_btf_fd": load_btf(self.rt, blob), **func_info((0, ids["helper_ext"])), **kw}
        return bpf(Cmd.PROG_LOAD, ProgLoadAttr(  # type: ignore[no-any-return]
            prog_type=ProgType.EXT, insns=insns, license="GPL", log_size=1 << 16,
            **{"log_level": 1, **fields}), runtime=self.rt)  # type: ignore[arg-type]

    def run_target(self) -> int:
        r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=self.target, data_in=bytes(60)),
                runtime=self.rt)
        return int(r.retval)

    def link(self, ext_fd: int, **kw: object) -> int:
        return int(bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=ext_fd, **kw),
                       runtime=self.rt))  # type: ignore[arg-type]


@pytest.fixture
def s() -> Setup:
    return Setup()


def test_freplace_link_runs_the_extension_instead_of_the_function(s: Setup) -> None:
    ext = s.load_ext()
    assert s.run_target() == 5
    link = s.link(ext)
    assert s.run_target() == 60 + 5  # skb->len + x
    assert list(replaced_functions(s.rt.fds[s.target].obj)) == [3]
    s.rt.close(link)
    assert s.run_target() == 5


def test_link_info_is_a_tracing_link_naming_the_target(s: Setup) -> None:
    link = s.link(s.load_ext())
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, __import__("pyebpf").InfoByFdAttr(bpf_fd=link),
               runtime=s.rt)
    assert info.type == LinkType.TRACING
    assert info.target_obj_id == s.rt.fds[s.target].obj.id
    assert info.target_btf_id == s.tids["helper"]


def test_extension_is_verified_with_ctx_and_scalar_args(s: Setup) -> None:
    fd = s.load_ext(log_level=2)  # level 1 keeps only the statistics of a passing load
    assert "Validating helper_ext() func#0..." in fd.log  # type: ignore[attr-defined]
    with pytest.raises(BpfError) as e:  # r2 is a scalar: no dereference
        s.load_ext(insns=asm("ldxw %r0, [%r2]\nexit"))
    assert e.value.errno == errno.EACCES


def test_one_extension_per_function_is_ebusy(s: Setup) -> None:
    s.link(s.load_ext())
    with pytest.raises(BpfError) as e:
        s.link(s.load_ext())
    assert e.value.errno == errno.EBUSY


def test_second_attach_needs_a_target(s: Setup) -> None:
    ext = s.load_ext()
    s.rt.close(s.link(ext))
    with pytest.raises(BpfError) as e:
        s.link(ext)
    assert e.value.errno == errno.EINVAL
    link = s.link(ext, target_fd=s.target, target_btf_id=s.tids["helper"])
    assert s.run_target() == 65
    s.rt.close(link)


def test_target_btf_id_without_target_fd_is_einval(s: Setup) -> None:
    with pytest.raises(BpfError) as e:
        s.link(s.load_ext(), target_btf_id=s.tids["helper"])
    assert e.value.errno == errno.EINVAL


def test_replacing_the_main_function(s: Setup) -> None:
    blob, ids = func_btf(("main_ext", "main", G))
    ext = int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.EXT, insns=asm("mov %r0, 7\nexit"), license="GPL",
        attach_prog_fd=s.target, attach_btf_id=s.tids["main"],
        prog_btf_fd=load_btf(s.rt, blob), **func_info((0, ids["main_ext"]))),
        runtime=s.rt))  # type: ignore[arg-type]
    s.link(ext)
    assert s.run_target() == 7


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"kind": "main"}, "has 1 args while helper() has 2 args"),
    ({"kind": "u64"}, "arg1 in helper_ext() has size 8 while helper() has 4"),
    ({"kind": "ptr_int"}, "arg1 in helper_ext() is PTR while helper() has INT"),
    ({"linkage": S}, "helper_ext() is not a global function"),
    ({"attach_btf_id": 1}, "Subprog int doesn't exist"),
    ({"attach_btf_id": 999}, "attach_btf_id 999 is invalid"),
])
def test_incompatible_extension_is_einval(s: Setup, kwargs: dict[str, object],
                                          words: str) -> None:
    with pytest.raises(BpfError) as e:
        s.load_ext(**kwargs)  # type: ignore[arg-type]
    assert e.value.errno == errno.EINVAL
    assert words in (getattr(e.value, "log", "") or "") + str(e.value)


def test_static_target_function_cannot_be_replaced() -> None:
    s = Setup(helper_linkage=S)
    with pytest.raises(BpfError) as e:
        s.load_ext()
    assert e.value.errno == errno.EINVAL and "Cannot replace static functions" in e.value.log


def test_extension_of_an_extension_is_refused(s: Setup) -> None:
    ext = s.load_ext()
    blob, ids = func_btf(("e2", "helper", G))
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=ProgType.EXT, insns=EXT, license="GPL", attach_prog_fd=ext,
            attach_btf_id=ids["e2"], prog_btf_fd=load_btf(s.rt, blob),
            log_level=1, log_size=4096, **func_info((0, ids["e2"]))),
            runtime=s.rt)  # type: ignore[arg-type]
    # The extension's own func_info names it: the ids are the extension BTF's.
    assert e.value.errno == errno.EINVAL


def test_extension_needs_btf_and_no_expected_attach_type(s: Setup) -> None:
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.EXT, insns=EXT, license="GPL",
                                        attach_prog_fd=s.target,
                                        attach_btf_id=s.tids["helper"], log_level=1,
                                        log_size=4096), runtime=s.rt)
    assert e.value.errno == errno.EINVAL and "Program extension requires BTF" in e.value.log
    with pytest.raises(BpfError) as e:
        s.load_ext(expected_attach_type=1)
    assert e.value.errno == errno.EINVAL


def test_target_stays_alive_while_the_extension_holds_it(s: Setup) -> None:
    target = s.rt.fds[s.target].obj
    ext = s.load_ext()
    s.rt.close(s.target)
    assert target.refcnt == 1  # the extension's load-time reference
    link = s.link(ext)
    s.rt.close(ext)
    assert target.refcnt == 1  # now the link's
    s.rt.close(link)
    assert target.refcnt == 0


def test_raw_tracepoint_open_attaches_to_the_load_time_target(s: Setup) -> None:
    from pyebpf.attr import RawTracepointOpenAttr

    ext = s.load_ext()
    with pytest.raises(BpfError) as e:  # an extension's attach point is its BTF id
        bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(prog_fd=ext, name="x"),
            runtime=s.rt)
    assert e.value.errno == errno.EINVAL
    link = bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(prog_fd=ext), runtime=s.rt)
    assert s.run_target() == 65
    s.rt.close(link)
    assert s.run_target() == 5


def test_every_interpreter_of_the_target_sees_the_replacement(s: Setup) -> None:
    """A second Vm of the target (as trace and coverage make) shares its table."""
    from pyebpf import Vm

    target = s.rt.fds[s.target].obj
    other = Vm(target.insns, memory=s.rt.memory, runtime=s.rt, owner=target)
    ctx = s.rt.memory.map(bytearray(192), kind="ctx", name="fake_skb")
    ctx.buf[0:4] = (100).to_bytes(4, "little")  # skb->len as the extension reads it
    assert other.run(r1=ctx.base) == 5
    link = s.link(s.load_ext())
    assert other.run(r1=ctx.base) == 105
    s.rt.close(link)
    assert other.run(r1=ctx.base) == 5


def test_bare_vm_replace_function() -> None:
    from pyebpf import Vm

    vm = Vm(TARGET)
    vm.replace_function(3, asm("mov %r0, 42\nexit"))
    assert vm.run() == 42
    vm.replace_function(3, None)
    assert vm.run() == 5
