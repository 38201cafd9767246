"""Socket program types that aren't skb-based: CGROUP_SOCK, CGROUP_SOCK_ADDR,
SOCK_OPS, SK_MSG, SK_LOOKUP, SK_REUSEPORT.

Each registers the uapi ctx struct (``bpf_sock``, ``bpf_sock_addr``,
``bpf_sock_ops``, ``sk_msg_md``, ``bpf_sk_lookup``, ``sk_reuseport_md``) as a
:class:`~.ctx.CtxLayout`, the kernel's ``*_is_valid_access`` for it (net/core/
filter.c, Linux 6.18), the expected_attach_type rules of
``bpf_prog_load_check_attach`` (with ``bpf_prog_load_fixup_attach_type``: a
CGROUP_SOCK program loaded with 0 is a BPF_CGROUP_INET_SOCK_CREATE one, an
SK_REUSEPORT one a BPF_SK_REUSEPORT_SELECT one), and the return range of
``check_return_code``.

Only SK_LOOKUP has a kernel test run (bpf_prog_test_run_sk_lookup): no
packet, a mandatory ``struct bpf_sk_lookup`` ctx_in describing the lookup, the
result folded as BPF_PROG_SK_LOOKUP_RUN_ARRAY does (SK_DROP only when the
program dropped and selected no socket), ``cookie`` of the selected socket in
ctx_out (pyebpf has no sockets to select: always 0). The others are ENOTSUPP.

:func:`bpf_sock_is_valid_access` is also the rule for loads through a
PTR_TO_SOCKET of any program type.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import attrs

from ..attr import LOG_BUF_AUTO
from ..errors import BpfError
from ..uapi import AttachType, ProgType
from . import ProgTypeOps, register_prog_type
from .access import SCALAR, layout, narrow_access_ok, wide_access_ok
from .ctx import CtxLayout, map_ctx
from .testrun import check_test_attr, ctx_finish, ctx_init, run_repeat, test_finish

if TYPE_CHECKING:
    from ..attr import TestRunAttr
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["BPF_SK_LOOKUP", "BPF_SOCK", "BPF_SOCK_ADDR", "BPF_SOCK_OPS", "SK_MSG_MD",
           "SK_REUSEPORT_MD", "bpf_sock_is_valid_access"]

# RegType values (pyebpf.verifier.types), spelled here to keep progs free of the verifier.
PTR_TO_PACKET = 8
PTR_TO_PACKET_END = 9
PTR_TO_SOCKET = 11
PTR_TO_SOCK_COMMON = 12
PTR_MAYBE_NULL = 1 << 8

_A4 = {"align": 4}
_PTR = {"pointer": True}

BPF_SOCK = layout("bpf_sock", [
    ("bound_dev_if", 4), ("family", 4), ("type", 4), ("protocol", 4), ("mark", 4),
    ("priority", 4), ("src_ip4", 4), ("src_ip6", 16, _A4), ("src_port", 4),
    ("dst_port", 2), ("", 2), ("dst_ip4", 4), ("dst_ip6", 16, _A4), ("state", 4),
    ("rx_queue_mapping", 4),
])

BPF_SOCK_ADDR = layout("bpf_sock_addr", [
    ("user_family", 4), ("user_ip4", 4, {"writable": True}),
    ("user_ip6", 16, {"align": 4, "writable": True}), ("user_port", 4, {"writable": True}),
    ("family", 4), ("type", 4), ("protocol", 4), ("msg_src_ip4", 4, {"writable": True}),
    ("msg_src_ip6", 16, {"align": 4, "writable": True}), ("sk", 8, _PTR),
])

BPF_SOCK_OPS = layout("bpf_sock_ops", [
    ("op", 4), ("reply", 4, {"writable": True}), ("args1", 4), ("args2", 4), ("args3", 4),
    ("family", 4), ("remote_ip4", 4), ("local_ip4", 4), ("remote_ip6", 16, _A4),
    ("local_ip6", 16, _A4), ("remote_port", 4), ("local_port", 4), ("is_fullsock", 4),
    ("snd_cwnd", 4), ("srtt_us", 4), ("bpf_sock_ops_cb_flags", 4), ("state", 4),
    ("rtt_min", 4), ("snd_ssthresh", 4), ("rcv_nxt", 4), ("snd_nxt", 4), ("snd_una", 4),
    ("mss_cache", 4), ("ecn_flags", 4), ("rate_delivered", 4), ("rate_interval_us", 4),
    ("packets_out", 4), ("retrans_out", 4), ("total_retrans", 4), ("segs_in", 4),
    ("data_segs_in", 4), ("segs_out", 4), ("data_segs_out", 4), ("lost_out", 4),
    ("sacked_out", 4), ("sk_txhash", 4, {"writable": True}), ("bytes_received", 8),
    ("bytes_acked", 8), ("sk", 8, _PTR), ("skb_data", 8, _PTR), ("skb_data_end", 8, _PTR),
    ("skb_len", 4), ("skb_tcp_flags", 4), ("skb_hwtstamp", 8),
])

SK_MSG_MD = layout("sk_msg_md", [
    ("data", 8, _PTR), ("data_end", 8, _PTR), ("family", 4), ("remote_ip4", 4),
    ("local_ip4", 4), ("remote_ip6", 16, _A4), ("local_ip6", 16, _A4), ("remote_port", 4),
    ("local_port", 4), ("size", 4), ("sk", 8, _PTR),
])

#: ``remote_port`` is a __be16 followed by 16 bits of padding; a 4-byte load of it is
#: allowed (the kernel loads the 16-bit port), so it is one 4-byte field here whose
#: upper half reads as zero, as the padding does.
BPF_SK_LOOKUP = layout("bpf_sk_lookup", [
    ("sk", 8, _PTR), ("family", 4), ("protocol", 4), ("remote_ip4", 4),
    ("remote_ip6", 16, _A4), ("remote_port", 4), ("local_ip4", 4), ("local_ip6", 16, _A4),
    ("local_port", 4), ("ingress_ifindex", 4),
])

SK_REUSEPORT_MD = layout("sk_reuseport_md", [
    ("data", 8, _PTR), ("data_end", 8, _PTR), ("len", 4), ("eth_protocol", 4),
    ("ip_protocol", 4), ("bind_inany", 4), ("hash", 4), ("sk", 8, _PTR),
    ("migrating_sk", 8, _PTR),
])


def _in(layout_: CtxLayout, name: str, off: int) -> bool:
    f = layout_[name]
    return f.offset <= off < f.end


def _off(layout_: CtxLayout, name: str) -> int:
    return layout_[name].offset


# -- bpf_sock (CGROUP_SOCK ctx, and PTR_TO_SOCKET loads) ----------------------------------------
_SOCK_NARROW = ("state", "family", "type", "protocol", "src_port", "rx_queue_mapping")
_SOCK_NARROW_RANGES = ("src_ip4", "src_ip6", "dst_ip4", "dst_ip6")


def bpf_sock_is_valid_access(off: int, size: int, write: bool, prog: Any = None) -> int | None:
    """bpf_sock_is_valid_access (the access check only; writes are the caller's rule)."""
    if off < 0 or off >= BPF_SOCK.size or off % size:
        return None
    if any(off == _off(BPF_SOCK, n) for n in _SOCK_NARROW) or any(
            _in(BPF_SOCK, n, off) for n in _SOCK_NARROW_RANGES):
        return SCALAR if narrow_access_ok(off, size, 4) else None
    if _in(BPF_SOCK, "dst_port", off):
        field_size = 4 if size == 4 else 2
        return SCALAR if narrow_access_ok(off, size, field_size) else None
    if BPF_SOCK["dst_port"].end <= off < _off(BPF_SOCK, "dst_ip4"):
        return None
    return SCALAR if size == 4 else None


def _cgroup_sock_attach(prog: Any) -> int:
    eat = getattr(prog, "expected_attach_type", 0)
    return eat or AttachType.CGROUP_INET_SOCK_CREATE  # bpf_prog_load_fixup_attach_type


def sock_filter_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """sock_filter_is_valid_access: bpf_sock plus __sock_filter_check_attach_type."""
    if bpf_sock_is_valid_access(off, size, write) is None:
        return None
    eat = _cgroup_sock_attach(prog)
    if off in (_off(BPF_SOCK, "bound_dev_if"), _off(BPF_SOCK, "mark"),
               _off(BPF_SOCK, "priority")):
        ok = eat in (AttachType.CGROUP_INET_SOCK_CREATE, AttachType.CGROUP_INET_SOCK_RELEASE)
        return SCALAR if ok else None
    if _in(BPF_SOCK, "src_ip4", off):
        ok = eat == AttachType.CGROUP_INET4_POST_BIND
    elif _in(BPF_SOCK, "src_ip6", off):
        ok = eat == AttachType.CGROUP_INET6_POST_BIND
    elif _in(BPF_SOCK, "src_port", off):
        ok = eat in (AttachType.CGROUP_INET4_POST_BIND, AttachType.CGROUP_INET6_POST_BIND)
    else:
        ok = True
    return SCALAR if ok and not write else None


def _check_attach_cgroup_sock(attr: Any) -> None:
    if attr.expected_attach_type not in (0, AttachType.CGROUP_INET_SOCK_CREATE,
                                         AttachType.CGROUP_INET_SOCK_RELEASE,
                                         AttachType.CGROUP_INET4_POST_BIND,
                                         AttachType.CGROUP_INET6_POST_BIND):
        raise BpfError(errno.EINVAL, f"expected_attach_type {attr.expected_attach_type} is "
                       "not valid for CGROUP_SOCK programs")


# -- bpf_sock_addr ---------------------------------------------------------------------------
_INET4 = (AttachType.CGROUP_INET4_BIND, AttachType.CGROUP_INET4_CONNECT,
          AttachType.CGROUP_INET4_GETPEERNAME, AttachType.CGROUP_INET4_GETSOCKNAME,
          AttachType.CGROUP_UDP4_SENDMSG, AttachType.CGROUP_UDP4_RECVMSG)
_INET6 = (AttachType.CGROUP_INET6_BIND, AttachType.CGROUP_INET6_CONNECT,
          AttachType.CGROUP_INET6_GETPEERNAME, AttachType.CGROUP_INET6_GETSOCKNAME,
          AttachType.CGROUP_UDP6_SENDMSG, AttachType.CGROUP_UDP6_RECVMSG)
SOCK_ADDR_ATTACH_TYPES = (*_INET4, *_INET6, AttachType.CGROUP_UNIX_CONNECT,
                          AttachType.CGROUP_UNIX_SENDMSG, AttachType.CGROUP_UNIX_RECVMSG,
                          AttachType.CGROUP_UNIX_GETPEERNAME,
                          AttachType.CGROUP_UNIX_GETSOCKNAME)


def sock_addr_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """sock_addr_is_valid_access."""
    L = BPF_SOCK_ADDR
    if off < 0 or off >= L.size or off % size:
        return None
    eat = getattr(prog, "expected_attach_type", 0)
    if _in(L, "user_ip4", off) and eat not in _INET4:
        return None
    if _in(L, "user_ip6", off) and eat not in _INET6:
        return None
    if _in(L, "msg_src_ip4", off) and eat != AttachType.CGROUP_UDP4_SENDMSG:
        return None
    if _in(L, "msg_src_ip6", off) and eat != AttachType.CGROUP_UDP6_SENDMSG:
        return None
    if any(_in(L, n, off) for n in ("user_ip4", "user_ip6", "msg_src_ip4", "msg_src_ip6",
                                    "user_port")):
        for wide in ("user_ip6", "msg_src_ip6"):
            f = L[wide]
            if wide_access_ok(off, size, f.offset, f.end):
                return SCALAR
        if write:
            return SCALAR if size == 4 else None
        return SCALAR if narrow_access_ok(off, size, 4) else None
    if off == _off(L, "sk"):
        return PTR_TO_SOCKET if not write and size == 8 else None
    return SCALAR if not write and size == 4 else None


def _check_attach_sock_addr(attr: Any) -> None:
    if attr.expected_attach_type not in SOCK_ADDR_ATTACH_TYPES:
        raise BpfError(errno.EINVAL, f"expected_attach_type {attr.expected_attach_type} is "
                       "not valid for CGROUP_SOCK_ADDR programs")


# -- bpf_sock_ops ------------------------------------------------------------------------------
def sock_ops_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """sock_ops_is_valid_access."""
    L = BPF_SOCK_OPS
    if off < 0 or off >= L.size or off % size:
        return None
    if write:
        if off in (_off(L, "reply"), _off(L, "sk_txhash")):
            return SCALAR if size == 4 else None
        return None
    if _off(L, "bytes_received") <= off < L["bytes_acked"].end:
        return SCALAR if size == 8 else None
    if off == _off(L, "sk"):
        return PTR_TO_SOCKET | PTR_MAYBE_NULL if size == 8 else None
    if off == _off(L, "skb_data"):
        return PTR_TO_PACKET if size == 8 else None
    if off == _off(L, "skb_data_end"):
        return PTR_TO_PACKET_END if size == 8 else None
    if off == _off(L, "skb_tcp_flags"):
        return SCALAR if narrow_access_ok(off, size, 4) else None
    if off == _off(L, "skb_hwtstamp"):
        return SCALAR if size == 8 else None
    return SCALAR if size == 4 else None


# -- sk_msg_md ---------------------------------------------------------------------------------
def sk_msg_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """sk_msg_is_valid_access."""
    L = SK_MSG_MD
    if write or off < 0 or off >= L.size or off % size:
        return None
    for name, rtype in (("data", PTR_TO_PACKET), ("data_end", PTR_TO_PACKET_END),
                        ("sk", PTR_TO_SOCKET)):
        if off == _off(L, name):
            return rtype if size == 8 else None
    if any(_in(L, n, off) for n in ("family", "remote_ip4", "local_ip4", "remote_ip6",
                                    "local_ip6", "remote_port", "local_port", "size")):
        return SCALAR if size == 4 else None
    return None


# -- bpf_sk_lookup --------------------------------------------------------------------------------
def sk_lookup_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """sk_lookup_is_valid_access."""
    L = BPF_SK_LOOKUP
    if off < 0 or off >= L.size or off % size or write:
        return None
    if off == 0:
        return PTR_TO_SOCKET | PTR_MAYBE_NULL if size == 8 else None
    if any(_in(L, n, off) for n in ("family", "protocol", "remote_ip4", "local_ip4",
                                    "remote_ip6", "local_ip6", "local_port",
                                    "ingress_ifindex")):
        return SCALAR if narrow_access_ok(off, size, 4) else None
    port = _off(L, "remote_port")
    if off == port and size == 4:
        return SCALAR  # 4-byte access to the 2-byte field, for backward compatibility
    if port <= off < port + 2:
        return SCALAR if narrow_access_ok(off, size, 2) else None
    if port + 2 <= off < port + 4:  # the zero padding
        return SCALAR if narrow_access_ok(off, size, 2) else None
    return None


def _check_attach_sk_lookup(attr: Any) -> None:
    if attr.expected_attach_type != AttachType.SK_LOOKUP:
        raise BpfError(errno.EINVAL, "SK_LOOKUP programs need expected_attach_type "
                       "BPF_SK_LOOKUP")


AF_INET = 2
AF_INET6 = 10
SK_DROP = 0
SK_PASS = 1


@attrs.define
class SkLookupKern:
    """struct bpf_sk_lookup_kern as the program's loads see it."""

    family: int = 0
    protocol: int = 0
    remote_ip4: int = 0
    remote_ip6: bytes = bytes(16)
    remote_port: int = 0
    local_ip4: int = 0
    local_ip6: bytes = bytes(16)
    local_port: int = 0
    ingress_ifindex: int = 0
    sk: int = 0  # the selected socket (none: pyebpf has no sockets)


def _u32(buf: bytes | bytearray, off: int) -> int:
    return int.from_bytes(buf[off:off + 4], "little")


def _given(buf: Any) -> bool:
    return buf is not None and buf is not LOG_BUF_AUTO


def sk_lookup_test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    """bpf_prog_test_run_sk_lookup."""
    from ..prog import TestRunResult

    check_test_attr(attr)
    if attr.flags or attr.cpu or attr.batch_size:
        raise BpfError(errno.EINVAL, "SK_LOOKUP test runs take no flags, cpu or batch_size")
    if _given(attr.data_in) or attr.data_size_in or _given(attr.data_out) \
            or attr.data_size_out:
        raise BpfError(errno.EINVAL, "SK_LOOKUP test runs take no packet")
    L = BPF_SK_LOOKUP
    user = ctx_init(rt, attr, L.size)
    if user is None:
        raise BpfError(errno.EINVAL, "SK_LOOKUP test runs need a struct bpf_sk_lookup ctx_in")
    if int.from_bytes(user[0:8], "little"):
        raise BpfError(errno.EINVAL, "ctx_in.sk must be 0")
    if any(user[L["local_port"].end:]):
        raise BpfError(errno.EINVAL, "ctx_in must be zero past local_port")
    if _u32(user, _off(L, "local_port")) > 0xFFFF:
        raise BpfError(errno.ERANGE, "local_port is over 65535")
    kern = SkLookupKern(
        family=_u32(user, _off(L, "family")) & 0xFFFF,
        protocol=_u32(user, _off(L, "protocol")) & 0xFFFF,
        remote_port=int.from_bytes(user[36:38], "little"),
        local_port=_u32(user, _off(L, "local_port")),
    )
    if kern.family == AF_INET:
        kern.local_ip4 = _u32(user, _off(L, "local_ip4"))
        kern.remote_ip4 = _u32(user, _off(L, "remote_ip4"))
    elif kern.family == AF_INET6:
        kern.local_ip6 = bytes(user[44:60])
        kern.remote_ip6 = bytes(user[20:36])
    else:
        raise BpfError(errno.EAFNOSUPPORT, f"family {kern.family} is not AF_INET/AF_INET6")
    region = map_ctx(rt.memory, L, kern)
    try:
        r0, duration = run_repeat(rt, prog, region.base, attr.repeat)
    finally:
        rt.memory.unmap(region)
    retval = SK_PASS if r0 != SK_DROP or kern.sk else SK_DROP
    user[0:8] = bytes(8)  # cookie of the selected socket: none
    result = TestRunResult(retval=retval, duration=duration)
    result = test_finish(rt, attrs.evolve(attr, data_out=None), result)
    ctx_bytes, ctx_size = ctx_finish(rt, attr, bytes(user))
    return attrs.evolve(result, ctx_out=ctx_bytes, ctx_size_out=ctx_size)


# -- sk_reuseport_md ------------------------------------------------------------------------------
def sk_reuseport_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """sk_reuseport_is_valid_access."""
    L = SK_REUSEPORT_MD
    if off < 0 or off >= L.size or off % size or write:
        return None
    for name, rtype in (("data", PTR_TO_PACKET), ("data_end", PTR_TO_PACKET_END),
                        ("sk", PTR_TO_SOCKET),
                        ("migrating_sk", PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL)):
        if off == _off(L, name):
            return rtype if size == 8 else None
    if off == _off(L, "hash"):
        return SCALAR if size == 4 else None
    if _in(L, "eth_protocol", off) and size < 2:  # sizeof(skb->protocol)
        return None
    if any(_in(L, n, off) for n in ("eth_protocol", "ip_protocol", "bind_inany", "len")):
        return SCALAR if narrow_access_ok(off, size, 4) else None
    return None


def _check_attach_sk_reuseport(attr: Any) -> None:
    if attr.expected_attach_type not in (0, AttachType.SK_REUSEPORT_SELECT,
                                         AttachType.SK_REUSEPORT_SELECT_OR_MIGRATE):
        raise BpfError(errno.EINVAL, f"expected_attach_type {attr.expected_attach_type} is "
                       "not valid for SK_REUSEPORT programs")


register_prog_type(ProgTypeOps(ProgType.CGROUP_SOCK, ctx=BPF_SOCK,
                               check_attach=_check_attach_cgroup_sock,
                               is_valid_access=sock_filter_is_valid_access,
                               retval_range=(0, 1)))
# The return range of CGROUP_SOCK_ADDR depends on the attach type: [1, 1] for the
# recvmsg/getpeername/getsockname hooks, [0, 3] for bind, [0, 1] otherwise.
register_prog_type(ProgTypeOps(ProgType.CGROUP_SOCK_ADDR, ctx=BPF_SOCK_ADDR,
                               check_attach=_check_attach_sock_addr,
                               is_valid_access=sock_addr_is_valid_access,
                               retval_range=(0, 1)))
register_prog_type(ProgTypeOps(ProgType.SOCK_OPS, ctx=BPF_SOCK_OPS,
                               is_valid_access=sock_ops_is_valid_access,
                               retval_range=(0, 1)))
register_prog_type(ProgTypeOps(ProgType.SK_MSG, ctx=SK_MSG_MD,
                               is_valid_access=sk_msg_is_valid_access))
register_prog_type(ProgTypeOps(ProgType.SK_LOOKUP, ctx=BPF_SK_LOOKUP,
                               test_run=sk_lookup_test_run,
                               check_attach=_check_attach_sk_lookup,
                               is_valid_access=sk_lookup_is_valid_access,
                               retval_range=(SK_DROP, SK_PASS)))
register_prog_type(ProgTypeOps(ProgType.SK_REUSEPORT, ctx=SK_REUSEPORT_MD,
                               check_attach=_check_attach_sk_reuseport,
                               is_valid_access=sk_reuseport_is_valid_access))
