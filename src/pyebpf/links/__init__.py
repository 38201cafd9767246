"""bpf_link objects and the simulated attach points a test fires from Python.

:mod:`.base` has the link object and the commands every kind shares
(BPF_LINK_CREATE/UPDATE/DETACH, PROG_ATTACH/DETACH/QUERY dispatch, link info);
the other modules are the hooks: network namespaces (flow dissector, sk_lookup),
network devices (XDP, tcx), cgroups, tracing (kprobe, tracepoint, raw
tracepoint, perf events) and sockets (socket filters).
"""

from __future__ import annotations

from ..progs.lirc import LircDevice
from .base import (
    BPF_LINK_INFO_SIZE,
    BpfLink,
    LinkInfo,
    ProgQueryResult,
    register_link_attach_type,
    register_link_kind,
    register_prog_attach,
    register_prog_query,
    settle_link,
)
from .cgroup import Cgroup, CgroupLink, CgroupSkbVerdict, CgroupVerdict, cgroup_root
from .inet import InetSocket, TcpState, socket_pair
from .iter import IterLink, IterSession, iter_read
from .link import Link
from .netdev import MprogEntry, Netdev, RxResult, TcxLink, XdpFlags, XdpLink
from .netfilter import NetfilterLink, NfResult
from .netkit import NetkitAction, NetkitDev, NetkitLink, NetkitMode
from .netns import Netns, NetnsLink, current_net, init_net, set_current_net
from .sock import Socket
from .sockmap import Psock, SockMapLink
from .struct_ops import StructOpsLink
from .tracing import (
    PerfLink,
    RawTracepointLink,
    fire_kprobe,
    fire_raw_tracepoint,
    fire_tracepoint,
    open_kprobe,
    open_tracepoint,
    perf_event_overflow,
    perf_event_set_bpf,
    register_tracepoint,
)
from .xsk import XskSocket

__all__ = [
    "BPF_LINK_INFO_SIZE",
    "BpfLink",
    "Cgroup",
    "CgroupLink",
    "CgroupSkbVerdict",
    "CgroupVerdict",
    "IterLink",
    "InetSocket",
    "IterSession",
    "Link",
    "LinkInfo",
    "LircDevice",
    "MprogEntry",
    "Netdev",
    "NetfilterLink",
    "NetkitAction",
    "NetkitDev",
    "NetkitLink",
    "NetkitMode",
    "Netns",
    "NetnsLink",
    "NfResult",
    "PerfLink",
    "Psock",
    "ProgQueryResult",
    "RawTracepointLink",
    "RxResult",
    "SockMapLink",
    "Socket",
    "TcpState",
    "TcxLink",
    "XdpFlags",
    "XdpLink",
    "XskSocket",
    "cgroup_root",
    "current_net",
    "fire_kprobe",
    "fire_raw_tracepoint",
    "fire_tracepoint",
    "init_net",
    "open_kprobe",
    "open_tracepoint",
    "perf_event_overflow",
    "perf_event_set_bpf",
    "register_tracepoint",
    "iter_read",
    "register_link_attach_type",
    "register_link_kind",
    "register_prog_attach",
    "register_prog_query",
    "set_current_net",
    "socket_pair",
    "settle_link",
    "StructOpsLink",
]
