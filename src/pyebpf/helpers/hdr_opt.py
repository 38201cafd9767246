"""TCP header options from sock_ops programs: ``bpf_load_hdr_opt``,
``bpf_store_hdr_opt`` and ``bpf_reserve_hdr_opt`` (net/core/filter.c, Linux 6.18),
and the TCP stack's callbacks that run them.

A sock_ops program that set BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG takes part in
writing every segment's TCP options in two steps (net/ipv4/tcp_output.c):

- BPF_SOCK_OPS_HDR_OPT_LEN_CB (:func:`hdr_opt_len`): the program reserves
  option space with ``bpf_reserve_hdr_opt(ctx, len, 0)`` out of what the
  kernel's own options left (``remaining_opt_len``); the total is rounded up
  to 4 bytes. A program that returns 0 reserves nothing.
- BPF_SOCK_OPS_WRITE_HDR_OPT_CB (:func:`write_hdr_opt`): the segment's header
  is built with the reserved space at its end, and the program appends
  options there with ``bpf_store_hdr_opt(ctx, opt, len, 0)`` (one option,
  ``opt[1]`` bytes long; -EEXIST if the header already carries that kind, or
  that experimental kind with the same 2-byte magic); space it leaves unused
  is filled with NOPs.

And it reads options with ``bpf_load_hdr_opt(ctx, buf, len, flags)``: ``buf``
names the option (kind, and for the experimental kinds 254 and 253 a length
of 4 or 6 with a 2- or 4-byte magic; other kinds a length of 0); the option
found, its whole length or -ENOSPC with the first ``len`` bytes, is copied
into ``buf``. From the segment of the callback (PARSE_HDR_OPT_CB, the
ESTABLISHED callbacks, WRITE_HDR_OPT_CB: :func:`run_with_segment`) or, with
BPF_LOAD_HDR_OPT_TCP_SYN, from the SYN's header (-ENOENT if none was kept).
A truncated option (length past the end, or below 2) is -EFAULT, as
tcp_parse_options gives up on it; an EOL ends the search (-ENOMSG).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..uapi import ProgType
from . import register_helper
from ._util import ctx_object, neg
from .proto import ArgType as A
from .proto import Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..prog import BpfProg
    from ..progs.sock_ops import SockOpsKern, TcpSock
    from ..runtime import Runtime

__all__ = ["BPF_LOAD_HDR_OPT_TCP_SYN", "hdr_opt_len", "run_with_segment", "search_tcp_opt",
           "write_hdr_opt"]

BPF_LOAD_HDR_OPT_TCP_SYN = 1
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_EXP = 0, 1, 254
#: The other experimental kind (RFC 4727).
TCPOPT_EXP2 = 253
#: sizeof(struct tcphdr): options start after it.
TCPHDR_LEN = 20
BPF_SOCK_OPS_PARSE_HDR_OPT_CB = 13
BPF_SOCK_OPS_HDR_OPT_LEN_CB = 14
BPF_SOCK_OPS_WRITE_HDR_OPT_CB = 15


def search_tcp_opt(opts: bytes, kind: int, magic: bytes) -> tuple[int, bool]:
    """bpf_search_tcp_opt over ``opts`` (the bytes after the fixed header): (the
    offset of the option found, or a negative errno; whether an EOL ended the
    search)."""
    op = 0
    end = len(opts)
    while op < end:
        k = opts[op]
        if k == TCPOPT_EOL:
            return -errno.ENOMSG, True
        if k == TCPOPT_NOP:
            op += 1
            continue
        if end - op < 2 or end - op < opts[op + 1] or opts[op + 1] < 2:
            return -errno.EFAULT, False  # tcp_parse_options bails here too
        kind_len = opts[op + 1]
        if k == kind:
            if not magic:
                return op, False
            if len(magic) > kind_len - 2:
                return -errno.ENOMSG, False
            if opts[op + 2:op + 2 + len(magic)] == magic:
                return op, False
        op += kind_len
    return -errno.ENOMSG, False


def _kern(vm: Vm, ctx: int) -> SockOpsKern:
    from ..progs.sock_ops import SockOpsKern

    return ctx_object(vm, ctx, SockOpsKern, "bpf_sock_ops")


def _tcp_hdrlen(hdr: bytes) -> int:
    return (hdr[12] >> 4) * 4 if len(hdr) > 12 else len(hdr)


@register_helper(142, "load_hdr_opt", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_MEM | TypeFlag.MEM_WRITE, A.ARG_CONST_SIZE,
    A.ARG_ANYTHING)),
    prog_types={ProgType.SOCK_OPS})
def load_hdr_opt(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    kern = _kern(vm, r1)
    size = r3
    if size < 2 or r4 & ~BPF_LOAD_HDR_OPT_TCP_SYN:
        return neg(errno.EINVAL)
    search = vm.memory.read(r2, size)
    kind, search_len = search[0], search[1]
    if search_len > size or kind in (TCPOPT_NOP, TCPOPT_EOL):
        return neg(errno.EINVAL)
    if kind in (TCPOPT_EXP, TCPOPT_EXP2):
        if search_len not in (4, 6):  # a 16- or 32-bit magic
            return neg(errno.EINVAL)
        magic = search[2:search_len]
    elif search_len:
        return neg(errno.EINVAL)
    else:
        magic = b""
    if r4 & BPF_LOAD_HDR_OPT_TCP_SYN:
        if kern.syn is None:  # bpf_sock_ops_get_syn: no syn_skb, no saved SYN
            return neg(errno.ENOENT)
        opts = kern.syn[TCPHDR_LEN:_tcp_hdrlen(kern.syn)]
    else:
        if kern.skb is None or kern.op == BPF_SOCK_OPS_HDR_OPT_LEN_CB:
            return neg(errno.EPERM)
        opts = bytes(kern.skb[TCPHDR_LEN:kern.skb_end])
    at, _ = search_tcp_opt(opts, kind, magic)
    if at < 0:
        return neg(-at)
    copy_len = opts[at + 1]
    ret = copy_len
    if copy_len > size:
        ret, copy_len = -errno.ENOSPC, size
    vm.memory.write(r2, opts[at:at + copy_len])
    return neg(-ret) if ret < 0 else ret


@register_helper(143, "store_hdr_opt", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE,
    A.ARG_ANYTHING)), prog_types={ProgType.SOCK_OPS})
def store_hdr_opt(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    kern = _kern(vm, r1)
    if kern.op != BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
        return neg(errno.EPERM)
    if r3 < 2 or r4:
        return neg(errno.EINVAL)
    new = vm.memory.read(r2, r3)
    kind, kind_len = new[0], new[1]
    if kind_len > r3 or kind in (TCPOPT_NOP, TCPOPT_EOL):
        return neg(errno.EINVAL)
    if kind_len > kern.remaining_opt_len:
        return neg(errno.ENOSPC)
    magic = b""
    if kind in (TCPOPT_EXP, TCPOPT_EXP2):
        if kind_len < 4:
            return neg(errno.EINVAL)
        magic = new[2:4]  # duplicates are matched on a 2-byte magic (RFC 6994)
    assert kern.skb is not None  # WRITE_HDR_OPT_CB always has its segment
    at, eol = search_tcp_opt(bytes(kern.skb[TCPHDR_LEN:kern.skb_end]), kind, magic)
    if at >= 0:
        return neg(errno.EEXIST)
    if at != -errno.ENOMSG:
        return neg(-at)
    if eol:  # the options were ended: no more may be written
        return neg(errno.ENOSPC)
    kern.skb[kern.skb_end:kern.skb_end + kind_len] = new[:kind_len]
    kern.remaining_opt_len -= kind_len
    kern.skb_end += kind_len
    return 0


@register_helper(144, "reserve_hdr_opt", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING)), prog_types={ProgType.SOCK_OPS})
def reserve_hdr_opt(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    kern = _kern(vm, r1)
    if kern.op != BPF_SOCK_OPS_HDR_OPT_LEN_CB:
        return neg(errno.EPERM)
    size = r2 & 0xFFFF_FFFF
    if r3 or size < 2:
        return neg(errno.EINVAL)
    if size > kern.remaining_opt_len:
        return neg(errno.ENOSPC)
    kern.remaining_opt_len -= size
    return 0


# -- the TCP stack's side ---------------------------------------------------------------------
def run_with_segment(rt: Runtime, prog: BpfProg, op: int, sk: TcpSock, segment: bytes, *,
                     payload_len: int = 0, syn: bytes | None = None,
                     args: tuple[int, int, int, int] = (0, 0, 0, 0)) -> tuple[int, SockOpsKern]:
    """A callback with a received or sent segment (bpf_skops_init_skb with
    tcp_hdrlen: PARSE_HDR_OPT_CB, the ESTABLISHED callbacks): the program sees
    the whole TCP header. ``segment`` starts at the TCP header."""
    from ..progs.sock_ops import SockOpsKern, run_sock_ops

    hdr = bytearray(segment[:_tcp_hdrlen(segment)])
    kern = SockOpsKern(sock=sk, op=op, args=list(args), skb=hdr, skb_end=len(hdr),
                       skb_payload_len=payload_len + len(segment) - len(hdr), syn=syn)
    return run_sock_ops(rt, prog, op, kern=kern)


def hdr_opt_len(rt: Runtime, prog: BpfProg, sk: TcpSock, remaining: int, *,
                segment: bytes | None = None, syn: bytes | None = None,
                args: tuple[int, int, int, int] = (0, 0, 0, 0)) -> int:
    """bpf_skops_hdr_opt_len: run HDR_OPT_LEN_CB with ``remaining`` bytes of
    option space; the space the program reserved, rounded up to 4 bytes (0 if
    it reserved none or returned 0). The segment, if any, is visible to
    nothing but skb_len/skb_tcp_flags (its data_end is its data)."""
    from ..progs.sock_ops import SockOpsKern, run_sock_ops

    kern = SockOpsKern(sock=sk, op=BPF_SOCK_OPS_HDR_OPT_LEN_CB, args=list(args),
                       skb=bytearray(segment) if segment is not None else None,
                       remaining_opt_len=remaining, syn=syn)
    retval, kern = run_sock_ops(rt, prog, BPF_SOCK_OPS_HDR_OPT_LEN_CB, kern=kern)
    if not retval or kern.remaining_opt_len == remaining:
        return 0
    return (remaining - kern.remaining_opt_len + 3) & ~3


def write_hdr_opt(rt: Runtime, prog: BpfProg, sk: TcpSock, header: bytes, max_opt_len: int,
                  *, syn: bytes | None = None, payload_len: int = 0,
                  args: tuple[int, int, int, int] = (0, 0, 0, 0)) -> bytes:
    """bpf_skops_write_hdr_opt: ``header`` is the TCP header being sent, whose
    last ``max_opt_len`` bytes are the space reserved for BPF options; run
    WRITE_HDR_OPT_CB and return the header with what the program stored there
    and NOPs after it (all NOPs if the program returned 0)."""
    from ..progs.sock_ops import SockOpsKern, run_sock_ops

    first_opt_off = len(header) - max_opt_len
    hdr = bytearray(header[:first_opt_off]) + bytes(max_opt_len)
    kern = SockOpsKern(sock=sk, op=BPF_SOCK_OPS_WRITE_HDR_OPT_CB, args=list(args), skb=hdr,
                       skb_end=first_opt_off, skb_payload_len=payload_len,
                       remaining_opt_len=max_opt_len, syn=syn)
    retval, kern = run_sock_ops(rt, prog, BPF_SOCK_OPS_WRITE_HDR_OPT_CB, kern=kern)
    written = max_opt_len - kern.remaining_opt_len if retval else 0
    out = bytearray(kern.skb if kern.skb is not None else hdr)
    out[first_opt_off + written:] = bytes([TCPOPT_NOP]) * (max_opt_len - written)
    return bytes(out)
