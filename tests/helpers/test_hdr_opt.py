"""TCP header options from sock_ops programs (pyebpf.helpers.hdr_opt): reserving
space, storing options, loading them from the segment or the SYN."""

from __future__ import annotations

import errno

import pytest

from pyebpf import ProgType, Runtime, asm
from pyebpf.errors import BpfError
from pyebpf.helpers.hdr_opt import (
    BPF_LOAD_HDR_OPT_TCP_SYN,
    BPF_SOCK_OPS_HDR_OPT_LEN_CB,
    BPF_SOCK_OPS_PARSE_HDR_OPT_CB,
    BPF_SOCK_OPS_WRITE_HDR_OPT_CB,
    hdr_opt_len,
    run_with_segment,
    search_tcp_opt,
    write_hdr_opt,
)
from pyebpf.objects import Program
from pyebpf.progs.sock import BPF_SOCK_OPS
from pyebpf.progs.sock_ops import TcpSock, run_sock_ops

REPLY = BPF_SOCK_OPS["reply"].offset
TXHASH = BPF_SOCK_OPS["sk_txhash"].offset
ACTIVE_ESTABLISHED_CB = 4
EXP = bytes([254, 6, 0xEB, 0x9F, 0x01, 0x02])  # RFC 6994 experimental option, magic eb9f
MSS = bytes([2, 4, 0x05, 0xB4])


def tcp_header(options: bytes, flags: int = 0x10) -> bytes:
    """A TCP header carrying ``options`` (padded with EOL to 4 bytes)."""
    options = options + bytes(-len(options) % 4)
    doff = (20 + len(options)) // 4
    return bytes(12) + bytes([doff << 4, flags]) + bytes(6) + options


def _load(rt: Runtime, text: str) -> object:
    prog = Program.load(ProgType.SOCK_OPS, asm(text), runtime=rt)
    return rt.file(prog.fd).obj


def _stack(data: bytes) -> str:
    """Store ``data`` (up to 8 bytes) at fp-8."""
    return f"lddw %r2, {int.from_bytes(data.ljust(8, bytes(1)), 'little')}\n" \
        "stxdw [%r10-8], %r2\n"


def reserve_prog(size: int) -> str:
    return (f"mov %r6, %r1\nmov %r2, {size}\nmov %r3, 0\ncall 144\n"
            f"stxw [%r6+{REPLY}], %r0\nmov %r0, 1\nexit")


def store_prog(opt: bytes, size: int | None = None, ret: int = 1) -> str:
    return (f"mov %r6, %r1\n{_stack(opt)}mov %r1, %r6\nmov %r2, %r10\nadd %r2, -8\n"
            f"mov %r3, {size or len(opt)}\nmov %r4, 0\ncall 143\n"
            f"stxw [%r6+{REPLY}], %r0\nmov %r0, {ret}\nexit")


def load_prog(search: bytes, flags: int = 0) -> str:
    """reply = bpf_load_hdr_opt(ctx, fp-8 (8 bytes, holding ``search``), 8, flags);
    sk_txhash = the buffer's first 4 bytes afterwards."""
    return (f"mov %r6, %r1\n{_stack(search)}mov %r1, %r6\nmov %r2, %r10\nadd %r2, -8\n"
            f"mov %r3, 8\nmov %r4, {flags}\ncall 142\nstxw [%r6+{REPLY}], %r0\n"
            f"ldxw %r2, [%r10-8]\nstxw [%r6+{TXHASH}], %r2\nmov %r0, 1\nexit")


def s32(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


# -- reserve ---------------------------------------------------------------------------------
def test_reserve_rounds_the_space_up_to_four_bytes() -> None:
    rt = Runtime()
    assert hdr_opt_len(rt, _load(rt, reserve_prog(6)), TcpSock(), remaining=20) == 8


def test_reserve_more_than_remains_is_enospc() -> None:
    rt = Runtime()
    _, kern = run_sock_ops(rt, _load(rt, reserve_prog(24)), BPF_SOCK_OPS_HDR_OPT_LEN_CB)
    assert s32(kern.reply) == -errno.ENOSPC


@pytest.mark.parametrize(("size", "op", "err"), [
    (1, BPF_SOCK_OPS_HDR_OPT_LEN_CB, errno.EINVAL),
    (4, ACTIVE_ESTABLISHED_CB, errno.EPERM),
    (4, BPF_SOCK_OPS_WRITE_HDR_OPT_CB, errno.EPERM),
])
def test_reserve_refusals(size: int, op: int, err: int) -> None:
    rt = Runtime()
    _, kern = run_sock_ops(rt, _load(rt, reserve_prog(size)), op)
    assert s32(kern.reply) == -err


def test_reserve_by_a_program_returning_zero_reserves_nothing() -> None:
    rt = Runtime()
    text = reserve_prog(8).replace("mov %r0, 1\nexit", "mov %r0, 0\nexit")
    assert hdr_opt_len(rt, _load(rt, text), TcpSock(), remaining=20) == 0


# -- store -----------------------------------------------------------------------------------
def test_store_appends_the_option_and_pads_with_nops() -> None:
    rt = Runtime()
    header = tcp_header(MSS + bytes(8))  # 8 bytes reserved for BPF at the end
    out = write_hdr_opt(rt, _load(rt, store_prog(EXP)), TcpSock(), header, 8)
    assert out[20:] == MSS + EXP + b"\x01\x01"


def test_store_of_a_kind_already_there_is_eexist() -> None:
    rt = Runtime()
    prog = _load(rt, store_prog(MSS))
    out = write_hdr_opt(rt, prog, TcpSock(), tcp_header(MSS + bytes(4)), 4)
    assert out[24:] == b"\x01" * 4


def test_store_from_a_program_returning_zero_writes_nops() -> None:
    rt = Runtime()
    out = write_hdr_opt(rt, _load(rt, store_prog(EXP, ret=0)), TcpSock(),
                        tcp_header(bytes(8)), 8)
    assert out[20:] == b"\x01" * 8


@pytest.mark.parametrize(("opt", "size", "err"), [
    (EXP, 8, 0),                               # the length comes from opt[1]
    (bytes([254, 3, 0xEB]), None, errno.EINVAL),   # experimental: at least 4 bytes
    (bytes([1, 2]), None, errno.EINVAL),           # NOP
    (bytes([30, 9]) + bytes(6), None, errno.EINVAL),  # opt[1] past len
    (bytes([30, 8]) + bytes(6), None, errno.ENOSPC),  # past the reserved 6 bytes
])
def test_store_checks(opt: bytes, size: int | None, err: int) -> None:
    rt = Runtime()
    from pyebpf.helpers.hdr_opt import BPF_SOCK_OPS_WRITE_HDR_OPT_CB as OP
    from pyebpf.progs.sock_ops import SockOpsKern

    kern = SockOpsKern(sock=TcpSock(), op=OP, skb=bytearray(tcp_header(bytes(8))), skb_end=20,
                       remaining_opt_len=6)
    _, kern = run_sock_ops(rt, _load(rt, store_prog(opt, size)), OP, kern=kern)
    assert s32(kern.reply) == -err


def test_store_outside_write_hdr_opt_is_eperm() -> None:
    rt = Runtime()
    _, kern = run_sock_ops(rt, _load(rt, store_prog(EXP)), BPF_SOCK_OPS_HDR_OPT_LEN_CB)
    assert s32(kern.reply) == -errno.EPERM


# -- load ------------------------------------------------------------------------------------
def _parse(search: bytes, header: bytes, flags: int = 0, syn: bytes | None = None,
           op: int = BPF_SOCK_OPS_PARSE_HDR_OPT_CB) -> tuple[int, bytes]:
    rt = Runtime()
    _, kern = run_with_segment(rt, _load(rt, load_prog(search, flags)), op, TcpSock(), header,
                               syn=syn)
    return s32(kern.reply), kern.sk_txhash.to_bytes(4, "little")


def test_load_finds_an_option_by_kind() -> None:
    assert _parse(bytes([2, 0]), tcp_header(b"\x01\x01" + MSS)) == (4, MSS)


def test_load_finds_an_experimental_option_by_magic() -> None:
    header = tcp_header(bytes([254, 4, 0x12, 0x34]) + EXP)
    assert _parse(bytes([254, 4, 0xEB, 0x9F]), header) == (6, EXP[:4])


def test_load_stops_at_eol() -> None:
    assert _parse(bytes([2, 0]), tcp_header(b"\x00\x00" + MSS))[0] == -errno.ENOMSG


def test_load_of_a_truncated_option_is_efault() -> None:
    assert _parse(bytes([2, 0]), tcp_header(bytes([8, 12, 0, 0])))[0] == -errno.EFAULT


@pytest.mark.parametrize(("search", "flags"), [
    (bytes([1, 0]), 0),            # NOP
    (bytes([2, 4]), 0),            # a length for a plain kind
    (bytes([254, 5]), 0),          # a magic of neither 2 nor 4 bytes
    (bytes([2, 0]), 2),            # unknown flag
])
def test_load_refuses_bad_searches(search: bytes, flags: int) -> None:
    assert _parse(search, tcp_header(MSS), flags)[0] == -errno.EINVAL


def test_load_from_the_syn() -> None:
    syn = tcp_header(MSS, flags=0x02)
    assert _parse(bytes([2, 0]), tcp_header(b""), BPF_LOAD_HDR_OPT_TCP_SYN, syn) == (4, MSS)
    assert _parse(bytes([2, 0]), tcp_header(b""), BPF_LOAD_HDR_OPT_TCP_SYN)[0] == -errno.ENOENT


def test_load_without_a_segment_is_eperm() -> None:
    rt = Runtime()
    _, kern = run_sock_ops(rt, _load(rt, load_prog(bytes([2, 0]))), ACTIVE_ESTABLISHED_CB)
    assert s32(kern.reply) == -errno.EPERM


def test_program_reads_the_segment_through_skb_data() -> None:
    rt = Runtime()
    text = ("ldxdw %r2, [%r1+{d}]\nldxdw %r3, [%r1+{e}]\nmov %r4, %r2\nadd %r4, 21\n"
            "jgt %r4, %r3, +2\nldxb %r0, [%r2+20]\nstxw [%r1+{r}], %r0\nmov %r0, 1\nexit"
            ).format(d=BPF_SOCK_OPS["skb_data"].offset, e=BPF_SOCK_OPS["skb_data_end"].offset,
                     r=REPLY)
    _, kern = run_with_segment(rt, _load(rt, text), BPF_SOCK_OPS_PARSE_HDR_OPT_CB, TcpSock(),
                               tcp_header(MSS))
    assert (kern.reply, kern.skb_tcp_flags, kern.skb_len) == (2, 0x10, 24)


def test_search_skips_nops() -> None:
    assert search_tcp_opt(b"\x01\x01" + MSS, 2, b"") == (2, False)


def test_hdr_opt_helpers_are_sock_ops_only() -> None:
    rt = Runtime()
    with pytest.raises(BpfError) as e:
        Program.load(ProgType.CGROUP_SOCK, asm("mov %r2, 4\nmov %r3, 0\ncall 144\nexit"),
                     runtime=rt)
    assert "cannot use helper bpf_reserve_hdr_opt#144" in str(e.value)


def test_duplicate_store_is_eexist_when_room_remains_else_enospc() -> None:
    rt = Runtime()
    twice = store_prog(EXP).replace(f"stxw [%r6+{REPLY}], %r0\n",
                                    "mov %r1, %r6\nmov %r2, %r10\nadd %r2, -8\nmov %r3, 6\n"
                                    f"mov %r4, 0\ncall 143\nstxw [%r6+{REPLY}], %r0\n")
    prog = _load(rt, twice)
    from pyebpf.progs.sock_ops import SockOpsKern

    for room, err in ((12, errno.EEXIST), (8, errno.ENOSPC)):
        kern = SockOpsKern(sock=TcpSock(), op=BPF_SOCK_OPS_WRITE_HDR_OPT_CB,
                           skb=bytearray(tcp_header(bytes(room))), skb_end=20,
                           remaining_opt_len=room)
        _, kern = run_sock_ops(rt, prog, BPF_SOCK_OPS_WRITE_HDR_OPT_CB, kern=kern)
        assert s32(kern.reply) == -err
