"""NETFILTER programs and links: the ctx, the test run, the link rules and the hook
chain (results pinned from tests/kernel/test_netfilter_differential.py)."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from pyebpf.attr import (
    InfoByFdAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    LinkUpdateAttr,
    ProgLoadAttr,
    TestRunAttr,
)
from pyebpf.errors import BpfError, VerifierError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.links import Netdev, Netns, current_net, set_current_net
from pyebpf.links.netfilter import BPF_F_NETFILTER_IP_DEFRAG
from pyebpf.progs.netfilter import BPF_NF_CTX, NF_ACCEPT, NF_DROP, NFPROTO_IPV4, NFPROTO_IPV6
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, LinkType, ProgType

IPV4 = bytes([0x45, 0]) + struct.pack(">H", 28) + bytes(24)
ETH_IP = bytes(12) + b"\x08\x00"
ETH_IP6 = bytes(12) + b"\x86\xdd"
LOCAL_IN, FORWARD, LOCAL_OUT, PRE_ROUTING = 1, 2, 3, 0


@pytest.fixture
def rt() -> Runtime:
    return Runtime()


def _load(rt: Runtime, text: str, eat: int = AttachType.NETFILTER) -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.NETFILTER,
                                                insns=encode(asm(text)), license="GPL",
                                                expected_attach_type=eat), runtime=rt))


def _field(rt: Runtime, ctx_off: int, load: str, data: bytes = IPV4,
           ctx: bytes | None = None) -> int:
    """A field of the state (ctx_off 0) or skb (8), read bit by bit: the verifier
    allows only 0 and 1 as results, so the run is repeated for 16 bits."""
    value = 0
    for bit in range(16):
        fd = _load(rt, f"ldxdw %r2, [%r1+{ctx_off}]\n{load}\nrsh %r0, {bit}\nand %r0, 1\nexit")
        got = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=data, ctx_in=ctx),
                  runtime=rt)
        value |= got.retval << bit
        rt.close(fd)
    return value


def _run(rt: Runtime, fd: int, data: bytes = IPV4, ctx: bytes | None = None, **kw: Any) -> int:
    return int(bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=data, ctx_in=ctx, **kw),
                   runtime=rt).retval)


def _errno(fn: Any) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return exc.value.errno


# -- the program type ------------------------------------------------------------------------
def test_ctx_is_two_pointers_of_16_bytes() -> None:
    assert BPF_NF_CTX.size == 16
    assert [(f.name, f.offset) for f in BPF_NF_CTX.fields] == [("state", 0), ("skb", 8)]


def test_load_needs_expected_attach_type_netfilter(rt: Runtime) -> None:
    assert _errno(lambda: _load(rt, "mov %r0, 1\nexit", eat=0)) == errno.EINVAL


def test_load_needs_privileges() -> None:
    assert _errno(lambda: _load(Runtime(privileged=False), "mov %r0, 1\nexit")) == errno.EPERM


@pytest.mark.parametrize("text", [
    "ldxw %r2, [%r1+0]", "ldxdw %r2, [%r1+4]", "ldxdw %r2, [%r1+16]",
    "mov %r2, 0\nstxdw [%r1+0], %r2"])
def test_ctx_allows_only_8_byte_reads_of_the_two_pointers(rt: Runtime, text: str) -> None:
    with pytest.raises(VerifierError) as exc:
        _load(rt, f"{text}\nmov %r0, 1\nexit")
    assert exc.value.errno == errno.EACCES
    assert "invalid bpf_context access" in str(exc.value)


def test_state_is_read_only_through_the_btf_walk(rt: Runtime) -> None:
    with pytest.raises(VerifierError) as exc:
        _load(rt, "ldxdw %r2, [%r1+0]\nmov %r3, 1\nstxb [%r2+0], %r3\nmov %r0, 1\nexit")
    assert exc.value.errno == errno.EACCES


@pytest.mark.parametrize("ret", ["mov %r0, 2", "mov %r0, -1",
                                 "ldxdw %r2, [%r1+8]\nldxw %r0, [%r2+112]"])
def test_return_value_is_nf_drop_or_nf_accept(rt: Runtime, ret: str) -> None:
    with pytest.raises(VerifierError) as exc:
        _load(rt, f"{ret}\nexit")
    assert exc.value.errno == errno.EINVAL


def test_base_helpers_only(rt: Runtime) -> None:
    _load(rt, "call 5\nmov %r0, 1\nexit")  # bpf_ktime_get_ns
    with pytest.raises(VerifierError):  # bpf_skb_load_bytes is not for netfilter
        _load(rt, "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\ncall 26\n"
                  "mov %r0, 1\nexit")


# -- BPF_PROG_TEST_RUN ------------------------------------------------------------------------
def test_default_test_run_is_ipv4_local_out_on_the_ip_packet(rt: Runtime) -> None:
    assert _field(rt, 0, "ldxb %r0, [%r2+0]") == LOCAL_OUT
    assert _field(rt, 0, "ldxb %r0, [%r2+1]") == NFPROTO_IPV4
    assert _field(rt, 8, "ldxw %r0, [%r2+112]") == len(IPV4)
    assert _field(rt, 8, "ldxh %r0, [%r2+176]") == 0x0008  # htons(ETH_P_IP)


def test_received_hooks_get_an_ethernet_frame_pulled_to_the_ip_header(rt: Runtime) -> None:
    ctx = bytes([LOCAL_IN, NFPROTO_IPV4]) + bytes(46)
    data = ETH_IP + IPV4
    assert _field(rt, 8, "ldxw %r0, [%r2+112]", data, ctx) == len(IPV4)
    assert _field(rt, 8, "ldxh %r0, [%r2+182]", data, ctx) == 64  # mac_header
    assert _field(rt, 8, "ldxh %r0, [%r2+180]", data, ctx) == 64 + 14  # network_header
    assert _field(rt, 8, "ldxdw %r0, [%r2+200]\nldxdw %r3, [%r2+192]\nsub %r0, %r3",
                  data, ctx) == 64 + 14


def test_local_out_test_run_leaves_the_header_offsets_unset(rt: Runtime) -> None:
    assert _field(rt, 8, "ldxh %r0, [%r2+182]") == 0xFFFF
    assert _field(rt, 8, "ldxh %r0, [%r2+180]") == 0


def test_ctx_in_sets_only_the_out_device(rt: Runtime) -> None:
    def nonnull(ctx_off: int, member: int, ctx: bytes | None) -> int:
        fd = _load(rt, f"ldxdw %r2, [%r1+{ctx_off}]\nmov %r0, 0\nldxdw %r3, [%r2+{member}]\n"
                       "jeq %r3, 0, +1\nmov %r0, 1\nexit")
        data = IPV4 if ctx is None or ctx[0] == LOCAL_OUT else ETH_IP + IPV4
        return _run(rt, fd, data, ctx)

    local_in = bytes([LOCAL_IN, NFPROTO_IPV4]) + bytes(46)
    # the kernel picks the devices by the default hook (LOCAL_OUT), whatever ctx_in says
    assert [nonnull(0, 8, local_in), nonnull(0, 16, local_in)] == [0, 1]
    assert [nonnull(0, 8, None), nonnull(0, 16, None)] == [0, 0]
    assert nonnull(0, 32, local_in) == 0  # state->net
    assert nonnull(8, 16, local_in) == 1 and nonnull(8, 16, None) == 0  # skb->dev


@pytest.mark.parametrize(("data", "ctx", "want"), [
    (IPV4[:19], None, errno.EINVAL),
    (bytes(3713), None, errno.EINVAL),
    (IPV4, bytes([LOCAL_OUT, 0]) + bytes(46), errno.EINVAL),
    (IPV4, bytes([LOCAL_OUT, 7]) + bytes(46), errno.EINVAL),
    (IPV4, bytes([LOCAL_OUT, NFPROTO_IPV4]) + bytes(6) + b"\x01" + bytes(39), errno.EINVAL),
    (IPV4, bytes([LOCAL_OUT, NFPROTO_IPV4]) + bytes(46) + b"\x01", errno.E2BIG),
    (ETH_IP + IPV4, bytes([LOCAL_IN, NFPROTO_IPV6]) + bytes(46), errno.EINVAL),
    (ETH_IP6 + bytes(40), bytes([LOCAL_IN, NFPROTO_IPV4]) + bytes(46), errno.EINVAL),
    (ETH_IP6 + bytes(30), bytes([PRE_ROUTING, NFPROTO_IPV6]) + bytes(46), errno.EINVAL),
    (bytes(12) + b"\x88\xb5" + IPV4, bytes([PRE_ROUTING, NFPROTO_IPV4]) + bytes(46),
     errno.EPROTO),
    (ETH_IP + IPV4[:19], bytes([FORWARD, NFPROTO_IPV4]) + bytes(46), errno.EINVAL),
])
def test_test_run_refusals(rt: Runtime, data: bytes, ctx: bytes | None, want: int) -> None:
    fd = _load(rt, "mov %r0, 1\nexit")
    assert _errno(lambda: _run(rt, fd, data, ctx)) == want


def test_test_run_takes_no_flags_but_repeats(rt: Runtime) -> None:
    fd = _load(rt, "mov %r0, 1\nexit")
    assert _errno(lambda: _run(rt, fd, flags=1)) == errno.EINVAL
    assert _run(rt, fd, repeat=3) == 1
    got = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=IPV4), runtime=rt)
    assert (got.data_out, got.data_size_out, got.ctx_out) == (None, 0, None)


def test_a_hook_number_past_the_inet_hooks_is_copied_as_given(rt: Runtime) -> None:
    ctx = bytes([9, NFPROTO_IPV4]) + bytes(46)
    assert _field(rt, 0, "ldxb %r0, [%r2+0]", ETH_IP + IPV4, ctx) == 9


# -- links ----------------------------------------------------------------------------------
def _link(rt: Runtime, fd: int, pf: int = NFPROTO_IPV4, hook: int = LOCAL_IN, prio: int = 10,
          nf_flags: int = 0, flags: int = 0) -> int:
    return int(bpf(Cmd.LINK_CREATE, LinkCreateAttr(
        prog_fd=fd, attach_type=AttachType.NETFILTER, flags=flags, netfilter_pf=pf,
        netfilter_hooknum=hook, netfilter_priority=prio, netfilter_flags=nf_flags),
        runtime=rt))


@pytest.mark.parametrize(("kw", "want"), [
    ({"flags": 1}, errno.EINVAL),
    ({"pf": 0}, errno.EAFNOSUPPORT),
    ({"pf": 7}, errno.EAFNOSUPPORT),
    ({"hook": 5}, errno.EPROTO),
    ({"nf_flags": 2}, errno.EOPNOTSUPP),
    ({"prio": -(1 << 31)}, errno.ERANGE),
    ({"prio": (1 << 31) - 1}, errno.ERANGE),
    ({"prio": -400, "nf_flags": BPF_F_NETFILTER_IP_DEFRAG}, errno.ERANGE),
])
def test_link_create_refusals(rt: Runtime, kw: dict[str, int], want: int) -> None:
    fd = _load(rt, "mov %r0, 1\nexit")
    assert _errno(lambda: _link(rt, fd, **kw)) == want


def test_a_bpf_hook_op_needs_a_priority_of_its_own(rt: Runtime) -> None:
    a, b = _load(rt, "mov %r0, 1\nexit"), _load(rt, "mov %r0, 0\nexit")
    _link(rt, a)
    assert _errno(lambda: _link(rt, b)) == errno.EBUSY
    _link(rt, b, pf=NFPROTO_IPV6)  # another family, another chain
    _link(rt, b, hook=FORWARD)


def test_a_hook_holds_1024_ops(rt: Runtime) -> None:
    rt.fd_limit = 4096
    fd = _load(rt, "mov %r0, 1\nexit")
    for prio in range(1024):
        _link(rt, fd, prio=prio)
    assert _errno(lambda: _link(rt, fd, prio=5000)) == errno.E2BIG
    _link(rt, fd, hook=FORWARD, prio=5000)


def test_the_defrag_flag_enables_defrag_ops_that_take_their_priority(rt: Runtime) -> None:
    fd = _load(rt, "mov %r0, 1\nexit")
    defrag = _link(rt, fd, prio=-300, nf_flags=BPF_F_NETFILTER_IP_DEFRAG)
    for hook in (PRE_ROUTING, LOCAL_OUT):  # nf_defrag_ipv4's hooks
        assert _errno(lambda h=hook: _link(rt, fd, hook=h, prio=-400)) == errno.EBUSY
    _link(rt, fd, hook=LOCAL_IN, prio=-400)
    _link(rt, fd, pf=NFPROTO_IPV6, hook=LOCAL_OUT, prio=-400)
    rt.close(defrag)  # the last user: the defrag ops go
    _link(rt, fd, hook=LOCAL_OUT, prio=-400)


def test_link_info_update_and_detach(rt: Runtime) -> None:
    fd = _load(rt, "mov %r0, 1\nexit")
    other = _load(rt, "mov %r0, 0\nexit")
    link = _link(rt, fd, pf=NFPROTO_IPV6, hook=FORWARD, prio=-7,
                 nf_flags=BPF_F_NETFILTER_IP_DEFRAG)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=link), runtime=rt)
    assert info.type == LinkType.NETFILTER
    assert dict(info.details) == {"pf": NFPROTO_IPV6, "hooknum": FORWARD, "priority": -7,
                                  "flags": BPF_F_NETFILTER_IP_DEFRAG}
    assert _errno(lambda: bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link, new_prog_fd=other),
                              runtime=rt)) == errno.EOPNOTSUPP
    bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=link), runtime=rt)
    bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=link), runtime=rt)
    info = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=link), runtime=rt)
    assert info.details["priority"] == -7  # a detached link still says where it was
    assert not current_net(rt).nf_hooks
    _link(rt, fd, pf=NFPROTO_IPV6, hook=FORWARD, prio=-7)


# -- the hook chain ---------------------------------------------------------------------------
def test_hooks_run_in_priority_order_until_a_drop(rt: Runtime) -> None:
    net = current_net(rt)
    accept, drop = _load(rt, "mov %r0, 1\nexit"), _load(rt, "mov %r0, 0\nexit")
    late = _load(rt, "mov %r0, 1\nexit")
    _link(rt, late, prio=100)
    _link(rt, accept, prio=-50)
    assert net.nf_hook(NFPROTO_IPV4, LOCAL_IN, IPV4).verdicts == (NF_ACCEPT, NF_ACCEPT)
    ids = [rt.fds[fd].obj.id for fd in (accept, drop, late)]
    _link(rt, drop, prio=0)
    result = net.nf_hook(NFPROTO_IPV4, LOCAL_IN, IPV4)
    assert (result.verdict, result.prog_ids, result.accepted) == (NF_DROP, tuple(ids[:2]),
                                                                  False)
    assert net.nf_hook(NFPROTO_IPV4, LOCAL_OUT, IPV4).accepted  # no ops there


def test_programs_see_the_hook_the_family_and_the_packet(rt: Runtime) -> None:
    net = current_net(rt)
    # accept IPv6 FORWARD packets of exactly 40 bytes only
    fd = _load(rt, "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r0, 0\n"
                   "ldxb %r4, [%r2+0]\njne %r4, 2, +5\nldxb %r4, [%r2+1]\njne %r4, 10, +3\n"
                   "ldxw %r4, [%r3+112]\njne %r4, 40, +1\nmov %r0, 1\nexit")
    _link(rt, fd, pf=NFPROTO_IPV6, hook=FORWARD)
    assert net.nf_hook(NFPROTO_IPV6, FORWARD, bytes(40)).accepted
    assert not net.nf_hook(NFPROTO_IPV6, FORWARD, bytes(41)).accepted


def test_programs_read_the_devices_through_the_state(rt: Runtime) -> None:
    net = current_net(rt)
    eth0 = Netdev(net, "eth0")
    # accept when state->in->ifindex is eth0's (net_device.ifindex is at 224)
    fd = _load(rt, f"ldxdw %r2, [%r1+0]\nldxdw %r2, [%r2+8]\nmov %r0, 0\njeq %r2, 0, +3\n"
                   f"ldxw %r3, [%r2+224]\njne %r3, {eth0.ifindex}, +1\nmov %r0, 1\nexit")
    _link(rt, fd, hook=PRE_ROUTING)
    assert net.nf_hook(NFPROTO_IPV4, PRE_ROUTING, IPV4, mac=ETH_IP, in_dev=eth0).accepted
    assert not net.nf_hook(NFPROTO_IPV4, PRE_ROUTING, IPV4).accepted


def test_links_belong_to_the_callers_namespace_and_hold_it(rt: Runtime) -> None:
    fd = _load(rt, "mov %r0, 0\nexit")
    child = Netns(rt, "child")
    home = current_net(rt)
    set_current_net(rt, child)
    link = _link(rt, fd)
    set_current_net(rt, home)
    assert home.nf_hook(NFPROTO_IPV4, LOCAL_IN, IPV4).accepted
    assert not child.nf_hook(NFPROTO_IPV4, LOCAL_IN, IPV4).accepted
    child.exit()
    assert child.alive  # the link keeps its namespace
    rt.close(link)
    assert not child.alive


# -- a program built by clang ---------------------------------------------------------------
def test_example_drops_telnet_on_the_hook_and_counts(rt: Runtime) -> None:
    """examples/netfilter_telnet.c: CO-RE reads of ctx->state->pf, skb->len and
    skb->data against the kernel BTF, bpf_probe_read_kernel of the IP header."""
    from pathlib import Path

    from pyebpf import load_object
    from pyebpf.kernel_btf import kernel_btf

    example = Path(__file__).resolve().parents[2] / "examples" / "netfilter_telnet.o"

    def packet(proto: int, port: int) -> bytes:
        return (bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto]) + bytes(10)
                + struct.pack(">HH", 40000, port) + bytes(16))

    net = current_net(rt)
    with load_object(example, runtime=rt, target_btf=kernel_btf()) as obj:
        prog = obj.programs["drop_telnet"]
        link = prog.attach_netfilter(NFPROTO_IPV4, LOCAL_OUT, -100)
        verdicts = [net.nf_hook(NFPROTO_IPV4, LOCAL_OUT, packet(proto, port)).verdict
                    for proto, port in ((6, 23), (17, 23), (6, 80), (1, 23), (6, 23))]
        assert verdicts == [NF_DROP, NF_DROP, NF_ACCEPT, NF_ACCEPT, NF_DROP]
        assert struct.unpack("<Q", obj.maps["dropped"][0])[0] == 3
        assert net.nf_hook(NFPROTO_IPV6, LOCAL_OUT, bytes(60)).accepted  # no IPv6 link
        assert link.info().details["priority"] == -100


def test_an_extension_of_a_netfilter_function_gets_the_ctx(rt: Runtime) -> None:
    """bpf_ctx_convert's ctx type for NETFILTER is struct bpf_nf_ctx: an extension
    whose argument has that type reads ctx->skb as the program does."""
    from pyebpf.attr import BtfLoadAttr
    from pyebpf.btf import FuncLinkage
    from pyebpf.btf_build import BtfBuilder

    def btf(*names: str) -> tuple[int, dict[str, int]]:
        b = BtfBuilder()
        i = b.int_("int", 4, signed=True)
        ctx = b.ptr(b.struct("bpf_nf_ctx", [("state", b.ptr(0)), ("skb", b.ptr(0))]))
        protos = {"main": b.func_proto(i, [("ctx", ctx)]),
                  "helper": b.func_proto(i, [("ctx", ctx), ("x", i)])}
        ids = {n: b.func(n, protos["main" if n == "main" else "helper"], FuncLinkage.GLOBAL)
               for n in names}
        return int(bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=b.encode()), runtime=rt)), ids

    def info(*recs: tuple[int, int]) -> dict[str, Any]:
        return {"func_info": b"".join(struct.pack("<II", *r) for r in recs),
                "func_info_rec_size": 8, "func_info_cnt": len(recs)}

    btf_fd, tids = btf("main", "helper")
    # main(ctx) { return helper(ctx, 1) & 1; }  helper(ctx, x) { return x; }
    target = int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.NETFILTER, expected_attach_type=AttachType.NETFILTER,
        insns=encode(asm("mov %r2, 1\ncall local +2\nand %r0, 1\nexit\nmov %r0, %r2\nexit")),
        license="GPL", prog_btf_fd=btf_fd, **info((0, tids["main"]), (4, tids["helper"]))),
        runtime=rt))
    ext_btf, ext_ids = btf("helper_ext")
    # helper_ext(ctx, x) { return ctx->skb->len & 1; } (verified as NETFILTER: 0 or 1)
    ext = int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.EXT, insns=encode(asm("ldxdw %r3, [%r1+8]\nldxw %r0, [%r3+112]\n"
                                                 "and %r0, 1\nexit")),
        license="GPL", attach_prog_fd=target, attach_btf_id=tids["helper"],
        prog_btf_fd=ext_btf, **info((0, ext_ids["helper_ext"]))), runtime=rt))
    assert [_run(rt, target, bytes(n)) for n in (20, 21)] == [1, 1]
    bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=ext), runtime=rt)
    assert [_run(rt, target, bytes(n)) for n in (20, 21)] == [0, 1]
