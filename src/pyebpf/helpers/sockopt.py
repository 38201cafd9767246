"""Socket options from sock_ops and sock_addr programs: ``bpf_setsockopt``,
``bpf_getsockopt`` and ``bpf_sock_ops_cb_flags_set``.

The kernel lets a BPF program set a fixed list of options (net/core/filter.c
``sol_socket_sockopt``, ``sol_tcp_sockopt``, ``sol_ip_sockopt``,
``sol_ipv6_sockopt``), each with the length and value checks of the socket
layer (``sk_setsockopt``, ``do_tcp_setsockopt``). :data:`SOCKOPTS` is that
list as data: for each (level, optname) the value check and what a get
reports. Values are kept on the socket model (``sockopts`` of a
:class:`~pyebpf.progs.sock_ops.TcpSock` or a UDP :class:`~pyebpf.progs.skb.Sock`),
so a test reads back what its program configured. A sock_addr hook's options
are those of the socket its run stands for (the ``sk`` it was given:
``InetSocket.sk_addr``).

Where the kernel derives a stored value (SO_SNDBUF/SO_RCVBUF are doubled and
clamped to the sysctl maximum; TCP_NODELAY reads back as 0 or 1) the same
transform is applied. Options the kernel answers from live connection state
(a get of TCP_MAXSEG returns the current MSS) report the socket model's
field (``mss_cache``).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ..errors import BpfFault
from ..uapi import ProgType
from . import register_helper
from ._util import M32, check_writable, ctx_object, neg
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..progs.sock_ops import SockOpsKern, TcpSock

A = ArgType
ENOTSUPP = 524
SOL_IP, SOL_SOCKET, SOL_TCP, SOL_IPV6 = 0, 1, 6, 41
IPPROTO_TCP = 6
INT_MAX = 0x7FFF_FFFF
#: net.core.wmem_max / rmem_max defaults, and SOCK_MIN_SNDBUF / SOCK_MIN_RCVBUF.
WMEM_MAX = RMEM_MAX = 212992
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304
TCP_MIN_MSS, MAX_TCP_WINDOW = 88, 32767
MAX_TCP_KEEPIDLE = MAX_TCP_KEEPINTVL = 32767
MAX_TCP_KEEPCNT = MAX_TCP_SYNCNT = 127
BPF_SOCK_OPS_ALL_CB_FLAGS = 0x7F
#: Congestion control algorithms a socket may switch to ("cdg" is refused).
TCP_CONGESTION_ALGORITHMS = ("cubic", "reno")
TCP_CA_NAME_MAX = 16
TCP_CONGESTION = 13
#: The states of the mini-sockets that aren't full sockets (sk_fullsock).
TCP_TIME_WAIT, TCP_NEW_SYN_RECV = 6, 12


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


@attrs.frozen
class SockOpt:
    """One option: whether ``val`` is acceptable (an errno if not), what is
    stored for it, and what a get reports back."""

    check: Callable[[int], int] = lambda val: 0
    store: Callable[[int], int] = lambda val: val
    settable: bool = True
    gettable: bool = True


def _range(lo: int, hi: int) -> Callable[[int], int]:
    return lambda val: 0 if lo <= val <= hi else errno.EINVAL


def _maxseg(val: int) -> int:
    return errno.EINVAL if val and not TCP_MIN_MSS <= val <= MAX_TCP_WINDOW else 0


_BOOL = SockOpt(store=lambda val: int(bool(val)))

#: (level, optname) -> SockOpt: every option a BPF program may set or get.
SOCKOPTS: dict[tuple[int, int], SockOpt] = {
    (SOL_SOCKET, 2): _BOOL,                                         # SO_REUSEADDR
    (SOL_SOCKET, 7): SockOpt(store=lambda v: max(min(v & M32, WMEM_MAX) * 2,
                                                 SOCK_MIN_SNDBUF)),  # SO_SNDBUF
    (SOL_SOCKET, 8): SockOpt(store=lambda v: max(min(v & M32, RMEM_MAX) * 2,
                                                 SOCK_MIN_RCVBUF)),  # SO_RCVBUF
    (SOL_SOCKET, 9): _BOOL,                                         # SO_KEEPALIVE
    (SOL_SOCKET, 12): SockOpt(),                                    # SO_PRIORITY
    (SOL_SOCKET, 15): _BOOL,                                        # SO_REUSEPORT
    (SOL_SOCKET, 18): SockOpt(store=lambda v: (INT_MAX if v < 0 else v) or 1),  # SO_RCVLOWAT
    (SOL_SOCKET, 36): SockOpt(),                                    # SO_MARK
    (SOL_SOCKET, 47): SockOpt(),                                    # SO_MAX_PACING_RATE
    (SOL_SOCKET, 74): SockOpt(check=_range(-1, 1)),                 # SO_TXREHASH
    (SOL_TCP, 1): _BOOL,                                            # TCP_NODELAY
    (SOL_TCP, 2): SockOpt(check=_maxseg),                           # TCP_MAXSEG
    (SOL_TCP, 4): SockOpt(check=_range(1, MAX_TCP_KEEPIDLE)),       # TCP_KEEPIDLE
    (SOL_TCP, 5): SockOpt(check=_range(1, MAX_TCP_KEEPINTVL)),      # TCP_KEEPINTVL
    (SOL_TCP, 6): SockOpt(check=_range(1, MAX_TCP_KEEPCNT)),        # TCP_KEEPCNT
    (SOL_TCP, 7): SockOpt(check=_range(1, MAX_TCP_SYNCNT)),         # TCP_SYNCNT
    (SOL_TCP, 10): SockOpt(check=_range(0, INT_MAX)),               # TCP_WINDOW_CLAMP
    (SOL_TCP, 16): SockOpt(check=_range(0, 1)),                     # TCP_THIN_LINEAR_TIMEOUTS
    (SOL_TCP, 18): SockOpt(check=_range(0, INT_MAX)),               # TCP_USER_TIMEOUT
    (SOL_TCP, 25): SockOpt(),                                       # TCP_NOTSENT_LOWAT
    (SOL_TCP, 27): SockOpt(check=_range(0, 1)),                     # TCP_SAVE_SYN
    (SOL_TCP, 1001): SockOpt(check=_range(1, INT_MAX), gettable=False),   # TCP_BPF_IW
    (SOL_TCP, 1002): SockOpt(check=_range(1, INT_MAX), gettable=False),   # ..._SNDCWND_CLAMP
    (SOL_TCP, 1008): SockOpt(check=lambda v: errno.EINVAL if v & ~BPF_SOCK_OPS_ALL_CB_FLAGS
                             else 0),                               # TCP_BPF_SOCK_OPS_CB_FLAGS
    (SOL_IP, 1): SockOpt(store=lambda v: v & 0xFF),                 # IP_TOS
    (SOL_IPV6, 67): SockOpt(check=_range(-1, 0xFF)),                # IPV6_TCLASS
    (SOL_IPV6, 70): _BOOL,                                          # IPV6_AUTOFLOWLABEL
}
#: What a get reports for an option never set (the socket's defaults).
DEFAULTS = {(SOL_SOCKET, 7): 16384, (SOL_SOCKET, 8): 131072, (SOL_SOCKET, 18): 1,
            (SOL_TCP, 4): 7200, (SOL_TCP, 5): 75, (SOL_TCP, 6): 9, (SOL_TCP, 7): 6,
            (SOL_IPV6, 67): 0}


def _sock_ops(vm: Vm, ctx: int) -> SockOpsKern:
    from ..progs.sock_ops import SockOpsKern

    return ctx_object(vm, ctx, SockOpsKern, "bpf_sock_ops")


def _ctx_sock(vm: Vm, ctx: int) -> tuple[TcpSock, bool]:
    """The socket a bpf_{set,get}sockopt call acts on and whether it may: a
    sock_ops ctx's socket (only in the callbacks that hold its lock), or the
    socket behind a sock_addr ctx's ``sk`` (bpf_sock_addr_{set,get}sockopt:
    every sock_addr hook runs with its socket, locked where it must be)."""
    from ..progs.sock_ops import SockOpsKern
    from .skc import noted_sock, sock_facts_at

    obj = ctx_object(vm, ctx, object, "bpf_sock_ops or bpf_sock_addr")
    if isinstance(obj, SockOpsKern):
        return obj.sock, _locked(obj)
    addr = int(getattr(obj, "sk", 0))
    found = sock_facts_at(vm, addr) if addr else None
    sock = noted_sock(found[0]) if found is not None else None
    if sock is None:
        raise BpfFault(f"bpf_sock_addr ctx {ctx:#x} has no socket behind its sk "
                       f"({addr:#x}): run the hook with sk= a socket's sk_addr", addr=ctx)
    return sock, True


def _locked(kern: SockOpsKern) -> bool:
    from ..progs.sock_ops import BPF_SOCK_OPS_WRITE_HDR_OPT_CB

    return kern.op <= BPF_SOCK_OPS_WRITE_HDR_OPT_CB


def _congestion(sk: TcpSock, optval: bytes, optlen: int, getopt: bool) -> tuple[int, bytes]:
    if optlen < 2:
        return errno.EINVAL, b""
    current = sk.sockopts.get((SOL_TCP, TCP_CONGESTION), b"cubic")
    assert isinstance(current, bytes)
    if getopt:
        n = min(optlen - 1, TCP_CA_NAME_MAX)
        return 0, current[:n].ljust(n, b"\0") + b"\0"
    name = optval[:min(TCP_CA_NAME_MAX - 1, optlen)].split(b"\0", 1)[0]
    if optlen >= 3 and optval[:optlen].startswith(b"cdg"):
        return ENOTSUPP, b""
    if name.decode("latin-1") not in TCP_CONGESTION_ALGORITHMS:
        return errno.ENOENT, b""
    sk.sockopts[(SOL_TCP, TCP_CONGESTION)] = name
    return 0, b""


def sockopt(sk: TcpSock, level: int, optname: int, optval: bytes, optlen: int,
            getopt: bool) -> tuple[int, bytes]:
    """__bpf_setsockopt / _bpf_getsockopt on ``sk``: (errno or 0, bytes a get
    returns). ``sk`` may be any socket model (a UDP progs.skb.Sock): SOL_TCP,
    whose options touch the TCP state, is refused first to all but TCP."""
    if sk.state in (TCP_TIME_WAIT, TCP_NEW_SYN_RECV):  # !sk_fullsock
        return errno.EINVAL, b""
    if level == SOL_TCP and sk.protocol != IPPROTO_TCP:
        return errno.EINVAL, b""
    if (level, optname) == (SOL_TCP, TCP_CONGESTION):
        return _congestion(sk, optval, optlen, getopt)
    opt = SOCKOPTS.get((level, optname))
    if opt is None or optlen != 4 or not (opt.gettable if getopt else opt.settable):
        return errno.EINVAL, b""
    if getopt:
        value = sk.sockopts.get((level, optname), DEFAULTS.get((level, optname), 0))
        if (level, optname) == (SOL_TCP, 2):  # TCP_MAXSEG: the current MSS
            value = sk.mss_cache
        return 0, struct.pack("<i", _s32(int(value)))  # type: ignore[arg-type]
    val = struct.unpack("<i", optval[:4])[0]
    err = opt.check(val)
    if err:
        return err, b""
    sk.sockopts[(level, optname)] = opt.store(val)
    if (level, optname) == (SOL_TCP, 1008):
        sk.bpf_sock_ops_cb_flags = val
    elif (level, optname) == (SOL_TCP, 1001):
        sk.snd_cwnd = val
    return 0, b""


_SET = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING,
                                   A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE))
_GET = Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING, A.ARG_ANYTHING,
                                   A.ARG_PTR_TO_UNINIT_MEM, A.ARG_CONST_SIZE))


#: bpf_sock_ops_{set,get}sockopt_proto and bpf_sock_addr_{set,get}sockopt_proto
#: (the same prototypes; sock_addr_func_proto offers them to every sock_addr
#: attach type of 6.18: bind, connect, sendmsg, recvmsg, getpeername, getsockname).
_SOCKOPT_TYPES = {ProgType.SOCK_OPS, ProgType.CGROUP_SOCK_ADDR}


@register_helper(49, "setsockopt", _SET, prog_types=_SOCKOPT_TYPES)
def setsockopt(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    sock, locked = _ctx_sock(vm, r1)
    optlen = _s32(r5)
    if not locked:
        return neg(errno.EOPNOTSUPP)
    optval = vm.memory.read(r4, optlen) if optlen > 0 else b""
    err, _ = sockopt(sock, _s32(r2), _s32(r3), optval, optlen, getopt=False)
    return neg(err) if err else 0


@register_helper(57, "getsockopt", _GET, prog_types=_SOCKOPT_TYPES)
def getsockopt(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Read an option into ``optval``; on error ``optval`` is zeroed."""
    sock, locked = _ctx_sock(vm, r1)
    optlen = _s32(r5)
    check_writable(vm.memory, r4, max(optlen, 0))
    if not locked:
        return neg(errno.EOPNOTSUPP)
    err, out = sockopt(sock, _s32(r2), _s32(r3), b"", optlen, getopt=True)
    vm.memory.write(r4, out.ljust(max(optlen, 0), b"\0")[:max(optlen, 0)])
    return neg(err) if err else 0


@register_helper(59, "sock_ops_cb_flags_set",
                 Proto(RetType.RET_INTEGER, (A.ARG_PTR_TO_CTX, A.ARG_ANYTHING)),
                 prog_types={ProgType.SOCK_OPS})
def sock_ops_cb_flags_set(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Ask for the callbacks in ``argval``; returns the flags it didn't know."""
    kern = _sock_ops(vm, r1)
    if not _locked(kern):
        return neg(errno.EOPNOTSUPP)
    argval = _s32(r2)
    kern.sock.bpf_sock_ops_cb_flags = argval & BPF_SOCK_OPS_ALL_CB_FLAGS
    return (argval & ~BPF_SOCK_OPS_ALL_CB_FLAGS) & ((1 << 64) - 1)

