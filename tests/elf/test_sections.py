"""Section names to program types: libbpf's SEC() table, then older prefixes."""

from __future__ import annotations

import pytest

from pyebpf.elf import SECTION_DEFS, section_prog_type
from pyebpf.uapi import AttachType as A
from pyebpf.uapi import ProgType as P


@pytest.mark.parametrize("name, ptype, eat, source", [
    ("socket", P.SOCKET_FILTER, 0, "libbpf"),
    ("kprobe/do_sys_open", P.KPROBE, 0, "libbpf"),
    ("kprobe", P.KPROBE, 0, "libbpf"),
    ("kretprobe/tcp_sendmsg", P.KPROBE, 0, "libbpf"),
    ("kprobe.multi/tcp_*", P.KPROBE, A.TRACE_KPROBE_MULTI, "libbpf"),
    ("xdp", P.XDP, A.XDP, "libbpf"),
    ("xdp.frags", P.XDP, A.XDP, "libbpf"),
    ("xdp/devmap", P.XDP, A.XDP_DEVMAP, "libbpf"),
    ("tc", P.SCHED_CLS, 0, "libbpf"),
    ("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS, "libbpf"),
    ("classifier", P.SCHED_CLS, 0, "libbpf"),
    ("action", P.SCHED_ACT, 0, "libbpf"),
    ("tracepoint/syscalls/sys_enter_open", P.TRACEPOINT, 0, "libbpf"),
    ("tp/sched/sched_switch", P.TRACEPOINT, 0, "libbpf"),
    ("raw_tracepoint/sched_switch", P.RAW_TRACEPOINT, 0, "libbpf"),
    ("raw_tp.w/foo", P.RAW_TRACEPOINT_WRITABLE, 0, "libbpf"),
    ("fentry/do_unlinkat", P.TRACING, A.TRACE_FENTRY, "libbpf"),
    ("lsm.s/file_open", P.LSM, A.LSM_MAC, "libbpf"),
    ("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, "libbpf"),
    ("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "libbpf"),
    ("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, "libbpf"),
    ("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, "libbpf"),
    ("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, "libbpf"),
    ("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, "libbpf"),
    ("syscall", P.SYSCALL, 0, "libbpf"),
    ("perf_event", P.PERF_EVENT, 0, "libbpf"),
    # Older loaders' prefixes.
    ("socket1", P.SOCKET_FILTER, 0, "legacy"),
    ("socket_filter", P.SOCKET_FILTER, 0, "legacy"),
    ("xdp_prog", P.XDP, 0, "legacy"),
    ("xdp1", P.XDP, 0, "legacy"),
    ("cgroup/sock1", P.CGROUP_SOCK, 0, "legacy"),
    ("kprobe_foo", P.KPROBE, 0, "legacy"),
    ("tc_mark", P.SCHED_CLS, 0, "legacy"),
])
def test_section_names(name: str, ptype: P, eat: int, source: str) -> None:
    m = section_prog_type(name)
    assert m is not None
    assert (m.prog_type, m.expected_attach_type, m.source) == (ptype, eat, source)


@pytest.mark.parametrize("name", ["test", "filter", "len_hist", "maps", ".text", "1/0"])
def test_unknown_names(name: str) -> None:
    assert section_prog_type(name) is None


def test_plus_and_slash_rules() -> None:
    kprobe = next(d for d in SECTION_DEFS if d.sec == "kprobe+")
    assert kprobe.matches("kprobe") and kprobe.matches("kprobe/x")
    assert not kprobe.matches("kprobex")
    devmap = next(d for d in SECTION_DEFS if d.sec == "xdp/devmap")
    assert devmap.matches("xdp/devmap") and not devmap.matches("xdp/devmap/x")
