"""Program types outside skb/XDP: ctx layouts, access rules, attach rules, test runs.

Layout sizes are the uapi structs' (checked with the C compiler against the
headers, plus 6.2's ``bpf_sock_ops.skb_hwtstamp``); test-run behaviours marked
"6.18" were measured on the real kernel.
"""

from __future__ import annotations

import errno
import struct

import pytest

import pyebpf.prog  # noqa: F401  (registers PROG_LOAD / PROG_TEST_RUN)
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.errors import ENOTSUPP, BpfError
from pyebpf.progs import prog_type_ops
from pyebpf.progs.cgroup import (
    BPF_CGROUP_DEV_CTX,
    BPF_SOCKOPT,
    BPF_SYSCTL,
    cg_sockopt_is_valid_access,
    cgroup_dev_is_valid_access,
    sysctl_is_valid_access,
)
from pyebpf.progs.sock import (
    BPF_SK_LOOKUP,
    BPF_SOCK,
    BPF_SOCK_ADDR,
    BPF_SOCK_OPS,
    SK_MSG_MD,
    SK_REUSEPORT_MD,
    bpf_sock_is_valid_access,
    sk_lookup_is_valid_access,
    sk_msg_is_valid_access,
    sk_reuseport_is_valid_access,
    sock_addr_is_valid_access,
    sock_filter_is_valid_access,
    sock_ops_is_valid_access,
)
from pyebpf.progs.tracing import (
    BPF_PERF_EVENT_DATA,
    PT_REGS,
    kprobe_is_valid_access,
    pe_is_valid_access,
    raw_tp_is_valid_access,
    raw_tp_writable_is_valid_access,
    tp_is_valid_access,
)
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, ProgLoadFlags, ProgType

SCALAR = 1


class P:
    """Stands for a loaded program where an access check reads expected_attach_type."""

    def __init__(self, eat: int = 0) -> None:
        self.expected_attach_type = eat


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


EXIT = _insn(0x95)


def _mov_r0(v: int) -> bytes:
    return _insn(0xB7, 0, 0, 0, v)


def _load(rt: Runtime, prog_type: ProgType, insns: bytes, eat: int = 0, flags: int = 0) -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=prog_type, insns=insns,
                                               license="GPL", expected_attach_type=eat,
                                               prog_flags=flags), runtime=rt))


# -- layouts ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("layout", "size"), [
    (PT_REGS, 168), (BPF_PERF_EVENT_DATA, 184), (BPF_SOCK, 80), (BPF_SOCK_ADDR, 72),
    (BPF_SOCK_OPS, 224), (SK_MSG_MD, 80), (BPF_SK_LOOKUP, 72), (SK_REUSEPORT_MD, 56),
    (BPF_SYSCTL, 8), (BPF_CGROUP_DEV_CTX, 12), (BPF_SOCKOPT, 40),
])
def test_layout_sizes(layout, size) -> None:
    assert layout.size == size


@pytest.mark.parametrize(("layout", "field", "offset"), [
    (PT_REGS, "di", 112), (PT_REGS, "ip", 128), (PT_REGS, "ss", 160),
    (BPF_PERF_EVENT_DATA, "sample_period", 168), (BPF_PERF_EVENT_DATA, "addr", 176),
    (BPF_SOCK, "dst_port", 48), (BPF_SOCK, "dst_ip4", 52), (BPF_SOCK, "rx_queue_mapping", 76),
    (BPF_SOCK_ADDR, "user_port", 24), (BPF_SOCK_ADDR, "msg_src_ip6", 44),
    (BPF_SOCK_ADDR, "sk", 64),
    (BPF_SOCK_OPS, "sk_txhash", 164), (BPF_SOCK_OPS, "bytes_received", 168),
    (BPF_SOCK_OPS, "sk", 184), (BPF_SOCK_OPS, "skb_tcp_flags", 212),
    (BPF_SOCK_OPS, "skb_hwtstamp", 216),
    (SK_MSG_MD, "size", 68), (SK_MSG_MD, "sk", 72),
    (BPF_SK_LOOKUP, "remote_port", 36), (BPF_SK_LOOKUP, "local_ip4", 40),
    (BPF_SK_LOOKUP, "ingress_ifindex", 64),
    (SK_REUSEPORT_MD, "hash", 32), (SK_REUSEPORT_MD, "sk", 40),
    (SK_REUSEPORT_MD, "migrating_sk", 48),
    (BPF_SOCKOPT, "level", 24), (BPF_SOCKOPT, "retval", 36),
])
def test_field_offsets(layout, field, offset) -> None:
    assert layout[field].offset == offset


# -- access rules ------------------------------------------------------------------------------
def test_tracing_access_rules() -> None:
    assert kprobe_is_valid_access(112, 8, False, P()) == SCALAR
    assert kprobe_is_valid_access(112, 4, False, P()) == SCALAR
    assert kprobe_is_valid_access(112, 8, True, P()) is None
    assert kprobe_is_valid_access(164, 8, False, P()) is None  # past the end / misaligned
    assert tp_is_valid_access(0, 8, False, P()) is None  # common fields
    assert tp_is_valid_access(8184, 8, False, P()) == SCALAR  # 6.18: 8192 is the limit
    assert tp_is_valid_access(8192, 8, False, P()) is None
    assert pe_is_valid_access(0, 4, False, P()) is None  # regs: whole longs only
    assert pe_is_valid_access(168, 4, False, P()) == SCALAR  # sample_period: narrow ok
    assert pe_is_valid_access(176, 8, False, P()) == SCALAR
    assert raw_tp_is_valid_access(88, 8, False, P()) == SCALAR
    assert raw_tp_is_valid_access(96, 8, False, P()) is None
    assert raw_tp_writable_is_valid_access(0, 8, False, P()) == 14  # PTR_TO_TP_BUFFER


def test_cgroup_sock_rules_follow_the_attach_type() -> None:
    mark = BPF_SOCK["mark"].offset
    assert sock_filter_is_valid_access(mark, 4, True, P(0)) == SCALAR  # 0 = SOCK_CREATE
    assert sock_filter_is_valid_access(mark, 4, True, P(AttachType.CGROUP_INET4_POST_BIND)) \
        is None
    ip4 = BPF_SOCK["src_ip4"].offset
    assert sock_filter_is_valid_access(ip4, 4, False, P(AttachType.CGROUP_INET4_POST_BIND)) \
        == SCALAR
    assert sock_filter_is_valid_access(ip4, 4, True, P(AttachType.CGROUP_INET4_POST_BIND)) \
        is None
    assert sock_filter_is_valid_access(ip4, 4, False, P(0)) is None
    fam = BPF_SOCK["family"].offset
    assert sock_filter_is_valid_access(fam, 4, False, P()) == SCALAR
    assert sock_filter_is_valid_access(fam, 4, True, P()) is None
    assert bpf_sock_is_valid_access(48, 4, False) == SCALAR  # dst_port, word (compat)
    assert bpf_sock_is_valid_access(49, 1, False) == SCALAR
    assert bpf_sock_is_valid_access(50, 2, False) is None  # the padding


def test_sock_addr_rules() -> None:
    udp6 = P(AttachType.CGROUP_UDP6_SENDMSG)
    assert sock_addr_is_valid_access(4, 4, False, udp6) is None  # user_ip4 is not for v6
    assert sock_addr_is_valid_access(8, 8, True, udp6) == SCALAR  # wide store to user_ip6
    assert sock_addr_is_valid_access(8, 2, True, udp6) is None
    assert sock_addr_is_valid_access(8, 1, False, udp6) == SCALAR
    assert sock_addr_is_valid_access(48, 8, False, udp6) == SCALAR  # msg_src_ip6[1..2]
    assert sock_addr_is_valid_access(44, 8, False, udp6) is None  # not 8-aligned
    assert sock_addr_is_valid_access(28, 4, True, udp6) is None  # family: read only
    assert sock_addr_is_valid_access(64, 8, False, udp6) == 11  # PTR_TO_SOCKET


def test_sock_ops_sk_msg_reuseport_lookup_rules() -> None:
    assert sock_ops_is_valid_access(4, 4, True, P()) == SCALAR  # reply
    assert sock_ops_is_valid_access(8, 4, True, P()) is None
    assert sock_ops_is_valid_access(184, 8, False, P()) == 11 | 1 << 8  # sock_or_null
    assert sock_ops_is_valid_access(192, 8, False, P()) == 8  # pkt
    assert sk_msg_is_valid_access(0, 8, False, P()) == 8
    assert sk_msg_is_valid_access(0, 4, False, P()) is None
    assert sk_msg_is_valid_access(68, 4, False, P()) == SCALAR
    assert sk_reuseport_is_valid_access(20, 1, False, P()) is None  # eth_protocol: >= 2
    assert sk_reuseport_is_valid_access(20, 2, False, P()) == SCALAR
    assert sk_reuseport_is_valid_access(32, 2, False, P()) is None  # hash: 4 only
    assert sk_lookup_is_valid_access(0, 8, False, P()) == 11 | 1 << 8
    assert sk_lookup_is_valid_access(36, 4, False, P()) == SCALAR  # remote_port as u32
    assert sk_lookup_is_valid_access(38, 2, False, P()) == SCALAR  # the zero padding
    assert sk_lookup_is_valid_access(8, 4, True, P()) is None


def test_cgroup_rules() -> None:
    assert sysctl_is_valid_access(0, 1, False, P()) == SCALAR
    assert sysctl_is_valid_access(0, 4, True, P()) is None
    assert sysctl_is_valid_access(4, 4, True, P()) == SCALAR
    assert sysctl_is_valid_access(4, 2, True, P()) is None
    assert cgroup_dev_is_valid_access(0, 2, False, P()) == SCALAR
    assert cgroup_dev_is_valid_access(4, 2, False, P()) is None
    get, set_ = P(AttachType.CGROUP_GETSOCKOPT), P(AttachType.CGROUP_SETSOCKOPT)
    assert cg_sockopt_is_valid_access(36, 4, True, get) == SCALAR
    assert cg_sockopt_is_valid_access(36, 4, True, set_) is None
    assert cg_sockopt_is_valid_access(24, 4, True, set_) == SCALAR
    assert cg_sockopt_is_valid_access(8, 8, False, get) == 8


# -- loading --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("prog_type", "eat"), [
    (ProgType.KPROBE, 0), (ProgType.TRACEPOINT, 0), (ProgType.PERF_EVENT, 0),
    (ProgType.RAW_TRACEPOINT, 0), (ProgType.CGROUP_SOCK, 0),
    (ProgType.CGROUP_SOCK, AttachType.CGROUP_INET6_POST_BIND),
    (ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP6_SENDMSG), (ProgType.SOCK_OPS, 0),
    (ProgType.SK_MSG, 0), (ProgType.SK_LOOKUP, AttachType.SK_LOOKUP),
    (ProgType.SK_REUSEPORT, 0), (ProgType.CGROUP_SYSCTL, 0), (ProgType.CGROUP_DEVICE, 0),
    (ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_SETSOCKOPT), (ProgType.SYSCALL, 0),
])
def test_loads(prog_type, eat) -> None:
    rt = Runtime()
    # SYSCALL programs must be sleepable (BPF_F_SLEEPABLE), as the 6.18 verifier says.
    flags = ProgLoadFlags.SLEEPABLE if prog_type == ProgType.SYSCALL else 0
    assert _load(rt, prog_type, _mov_r0(0) + EXIT, eat, flags) >= 3
    assert prog_type_ops(prog_type) is not None


@pytest.mark.parametrize(("prog_type", "eat"), [
    (ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_INGRESS + 1),
    (ProgType.CGROUP_SOCK_ADDR, 0), (ProgType.SK_LOOKUP, 0), (ProgType.CGROUP_SOCKOPT, 0),
    (ProgType.SK_REUSEPORT, AttachType.SK_LOOKUP), (ProgType.SYSCALL, AttachType.SK_LOOKUP),
])
def test_bad_expected_attach_type_is_einval(prog_type, eat) -> None:
    with pytest.raises(BpfError) as e:
        _load(Runtime(), prog_type, _mov_r0(0) + EXIT, eat)
    assert e.value.errno == errno.EINVAL


@pytest.mark.parametrize("prog_type", [ProgType.KPROBE, ProgType.TRACEPOINT,
                                       ProgType.PERF_EVENT, ProgType.SOCK_OPS, ProgType.SK_MSG,
                                       ProgType.CGROUP_DEVICE, ProgType.CGROUP_SYSCTL])
def test_no_test_run_is_enotsupp(prog_type) -> None:
    rt = Runtime()
    fd = _load(rt, prog_type, _mov_r0(0) + EXIT)
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(64)), runtime=rt)
    assert e.value.errno == ENOTSUPP


# -- test runs (6.18 behaviours) --------------------------------------------------------------
def test_raw_tp_test_run_reads_args() -> None:
    rt = Runtime()
    fd = _load(rt, ProgType.RAW_TRACEPOINT, _insn(0x79, 0, 1, 8) + EXIT)  # r0 = args[1]
    args = struct.pack("<QQ", 5, 77)
    r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_out=None, ctx_out=None,
                                           ctx_in=args), runtime=rt)
    assert r.retval == 77
    # Unknown flag bits are not checked (6.18); a cpu needs BPF_F_TEST_RUN_ON_CPU.
    r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_out=None, ctx_out=None,
                                           ctx_in=args, flags=2), runtime=rt)
    assert r.retval == 77
    for bad in ({"cpu": 1}, {"repeat": 2}, {"data_in": bytes(64)}):
        with pytest.raises(BpfError) as e:
            bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_out=None, ctx_out=None,
                                               ctx_in=args, **bad), runtime=rt)
        assert e.value.errno == errno.EINVAL
    r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_out=None, ctx_out=None,
                                           ctx_in=args, cpu=1, flags=1), runtime=rt)
    assert r.retval == 77


def _sk_lookup_ctx(family: int = 2, lport: int = 80, ifindex: int = 0, sk: int = 0) -> bytes:
    return struct.pack("<QIII16sHHI16sII", sk, family, 6, 0x0100007F, bytes(16), 0x5000, 0,
                       0x0200007F, bytes(16), lport, ifindex)


def _sk_lookup_run(rt: Runtime, fd: int, ctx: bytes | None) -> object:
    return bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_out=None, ctx_in=ctx,
                                              ctx_out=bytearray(72) if ctx else None,
                                              ctx_size_out=72 if ctx else 0), runtime=rt)


@pytest.mark.parametrize(("off", "code", "want"), [
    (8, 0x61, 1), (36, 0x61, 1), (36, 0x69, 1), (38, 0x69, 0), (60, 0x61, 1), (64, 0x61, 0),
])
def test_sk_lookup_fields(off, code, want) -> None:
    """6.18: family, remote_port (u32 or u16), local_port read non-zero; padding and
    ingress_ifindex read 0 in a test run."""
    rt = Runtime()
    prog = (_insn(code, 2, 1, off) + _mov_r0(1) + _insn(0x55, 2, 0, 1, 0) + _mov_r0(0)
            + EXIT)
    fd = _load(rt, ProgType.SK_LOOKUP, prog, AttachType.SK_LOOKUP)
    assert _sk_lookup_run(rt, fd, _sk_lookup_ctx()).retval == want


def test_sk_lookup_test_run_rules() -> None:
    rt = Runtime()
    drop = _load(rt, ProgType.SK_LOOKUP, _mov_r0(0) + EXIT, AttachType.SK_LOOKUP)
    accept = _load(rt, ProgType.SK_LOOKUP, _mov_r0(1) + EXIT, AttachType.SK_LOOKUP)
    r = _sk_lookup_run(rt, drop, _sk_lookup_ctx())
    assert r.retval == 0 and r.ctx_out == _sk_lookup_ctx() + bytes(4)
    assert _sk_lookup_run(rt, accept, _sk_lookup_ctx()).retval == 1
    assert _sk_lookup_run(rt, drop, _sk_lookup_ctx(family=0x10002)).retval == 0  # (u16)family
    for ctx, err in ((None, errno.EINVAL), (_sk_lookup_ctx(ifindex=1), errno.EINVAL),
                     (_sk_lookup_ctx(family=1), errno.EAFNOSUPPORT),
                     (_sk_lookup_ctx(lport=70000), errno.ERANGE),
                     (_sk_lookup_ctx(sk=5), errno.EINVAL)):
        with pytest.raises(BpfError) as e:
            _sk_lookup_run(rt, drop, ctx)
        assert e.value.errno == err
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=drop, data_in=bytes(64), data_out=None,
                                           ctx_in=_sk_lookup_ctx()), runtime=rt)
    assert e.value.errno == errno.EINVAL
    # A short ctx_in is zero-padded.
    r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=accept, data_out=None, ctx_out=None,
                                           ctx_in=_sk_lookup_ctx()[:40]), runtime=rt)
    assert r.retval == 1


def test_syscall_test_run_writes_ctx_back() -> None:
    rt = Runtime()
    # r0 = *(u32 *)ctx + 1; *(u32 *)(ctx + 4) = r0 (6.18: 41 -> retval 42, ctx 41, 42)
    prog = _insn(0x61, 0, 1, 0) + _insn(0x07, 0, 0, 0, 1) + _insn(0x63, 1, 0, 4) + EXIT
    fd = _load(rt, ProgType.SYSCALL, prog, flags=16)
    ctx = bytearray(struct.pack("<II", 41, 0))
    r = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_out=None, ctx_out=None,
                                           ctx_in=ctx), runtime=rt)
    assert r.retval == 42
    assert bytes(ctx) == struct.pack("<II", 41, 42)
    with pytest.raises(BpfError) as e:
        bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_out=None, ctx_out=None,
                                           ctx_in=bytes(ctx), repeat=2), runtime=rt)
    assert e.value.errno == errno.EINVAL
