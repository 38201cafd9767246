"""Which ELF sections hold programs, and of which type: libbpf's SEC() table.

:data:`SECTION_DEFS` is libbpf's ``section_defs`` (src/libbpf.c, libbpf 1.x),
as data: a section name pattern, the program type, the expected attach type,
and libbpf's flags. Patterns follow libbpf's matching rules
(``sec_def_matches``):

- ``"type/"`` (ends in a slash): the section name must start with it;
- ``"type+"``: exactly ``type`` or ``type/<anything>``;
- anything else: the exact name.

The first matching entry wins. Names libbpf 1.x no longer accepts but older
loaders did (libbpf 0.x's "sloppy" prefixes, samples/bpf's bpf_load.c,
iproute2's tc/ip loaders: ``socket1``, ``xdp_prog``, ``cgroup/sock1``,
``kprobe_foo``...) are matched afterwards by :data:`LEGACY_PREFIXES`, a plain
``startswith`` on the name; such a match carries expected attach type 0, as
those loaders passed. A name matching neither has no program type
(:func:`section_prog_type` returns None) and must be given one by the caller.
"""

from __future__ import annotations

import enum
import re

import attrs

from ..uapi import AttachType, ProgType

__all__ = [
    "LEGACY_PREFIXES",
    "SECTION_DEFS",
    "SecDef",
    "SecFlags",
    "SectionMatch",
    "section_prog_type",
]


class SecFlags(enum.IntFlag):
    """libbpf's ``enum sec_def_flags``."""

    NONE = 0
    EXP_ATTACH_OPT = 1
    ATTACHABLE = 2
    ATTACHABLE_OPT = 3
    ATTACH_BTF = 4
    SLEEPABLE = 8
    XDP_FRAGS = 16
    USDT = 32


@attrs.frozen
class SecDef:
    sec: str
    prog_type: ProgType
    expected_attach_type: int = 0
    flags: SecFlags = SecFlags.NONE

    def matches(self, name: str) -> bool:
        pat = self.sec
        if pat.endswith("/"):
            return name.startswith(pat)
        if pat.endswith("+"):
            base = pat[:-1]
            return name == base or name.startswith(base + "/")
        return name == pat


P = ProgType
A = AttachType
F = SecFlags

#: libbpf 1.x's section_defs, in its order.
SECTION_DEFS: tuple[SecDef, ...] = (
    SecDef("socket", P.SOCKET_FILTER),
    SecDef("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE,
           F.ATTACHABLE),
    SecDef("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, F.ATTACHABLE),
    SecDef("kprobe+", P.KPROBE),
    SecDef("uprobe+", P.KPROBE),
    SecDef("uprobe.s+", P.KPROBE, 0, F.SLEEPABLE),
    SecDef("kretprobe+", P.KPROBE),
    SecDef("uretprobe+", P.KPROBE),
    SecDef("uretprobe.s+", P.KPROBE, 0, F.SLEEPABLE),
    SecDef("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI),
    SecDef("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI),
    SecDef("kprobe.session+", P.KPROBE, A.TRACE_KPROBE_SESSION),
    SecDef("uprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI),
    SecDef("uretprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI),
    SecDef("uprobe.session+", P.KPROBE, A.TRACE_UPROBE_SESSION),
    SecDef("uprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, F.SLEEPABLE),
    SecDef("uretprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, F.SLEEPABLE),
    SecDef("uprobe.session.s+", P.KPROBE, A.TRACE_UPROBE_SESSION, F.SLEEPABLE),
    SecDef("ksyscall+", P.KPROBE),
    SecDef("kretsyscall+", P.KPROBE),
    SecDef("usdt+", P.KPROBE, 0, F.USDT),
    SecDef("usdt.s+", P.KPROBE, 0, F.USDT | F.SLEEPABLE),
    SecDef("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS),  # alias for tcx
    SecDef("tc/egress", P.SCHED_CLS, A.TCX_EGRESS),  # alias for tcx
    SecDef("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS),
    SecDef("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS),
    SecDef("tc", P.SCHED_CLS),  # legacy, use tcx
    SecDef("classifier", P.SCHED_CLS),  # legacy, use tcx
    SecDef("action", P.SCHED_ACT),  # legacy, use tcx
    SecDef("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY),
    SecDef("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER),
    SecDef("tracepoint+", P.TRACEPOINT),
    SecDef("tp+", P.TRACEPOINT),
    SecDef("raw_tracepoint+", P.RAW_TRACEPOINT),
    SecDef("raw_tp+", P.RAW_TRACEPOINT),
    SecDef("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE),
    SecDef("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE),
    SecDef("tp_btf+", P.TRACING, A.TRACE_RAW_TP, F.ATTACH_BTF),
    SecDef("fentry+", P.TRACING, A.TRACE_FENTRY, F.ATTACH_BTF),
    SecDef("fmod_ret+", P.TRACING, A.MODIFY_RETURN, F.ATTACH_BTF),
    SecDef("fexit+", P.TRACING, A.TRACE_FEXIT, F.ATTACH_BTF),
    SecDef("fentry.s+", P.TRACING, A.TRACE_FENTRY, F.ATTACH_BTF | F.SLEEPABLE),
    SecDef("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, F.ATTACH_BTF | F.SLEEPABLE),
    SecDef("fexit.s+", P.TRACING, A.TRACE_FEXIT, F.ATTACH_BTF | F.SLEEPABLE),
    SecDef("freplace+", P.EXT, 0, F.ATTACH_BTF),
    SecDef("lsm+", P.LSM, A.LSM_MAC, F.ATTACH_BTF),
    SecDef("lsm.s+", P.LSM, A.LSM_MAC, F.ATTACH_BTF | F.SLEEPABLE),
    SecDef("lsm_cgroup+", P.LSM, A.LSM_CGROUP, F.ATTACH_BTF),
    SecDef("iter+", P.TRACING, A.TRACE_ITER, F.ATTACH_BTF),
    SecDef("iter.s+", P.TRACING, A.TRACE_ITER, F.ATTACH_BTF | F.SLEEPABLE),
    SecDef("syscall", P.SYSCALL, 0, F.SLEEPABLE),
    SecDef("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, F.XDP_FRAGS),
    SecDef("xdp/devmap", P.XDP, A.XDP_DEVMAP, F.ATTACHABLE),
    SecDef("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, F.XDP_FRAGS),
    SecDef("xdp/cpumap", P.XDP, A.XDP_CPUMAP, F.ATTACHABLE),
    SecDef("xdp.frags", P.XDP, A.XDP, F.XDP_FRAGS),
    SecDef("xdp", P.XDP, A.XDP, F.ATTACHABLE_OPT),
    SecDef("perf_event", P.PERF_EVENT),
    SecDef("lwt_in", P.LWT_IN),
    SecDef("lwt_out", P.LWT_OUT),
    SecDef("lwt_xmit", P.LWT_XMIT),
    SecDef("lwt_seg6local", P.LWT_SEG6LOCAL),
    SecDef("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, F.ATTACHABLE_OPT),
    SecDef("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, F.ATTACHABLE_OPT),
    SecDef("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, F.ATTACHABLE_OPT),
    SecDef("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT, F.ATTACHABLE_OPT),
    SecDef("sk_skb", P.SK_SKB),
    SecDef("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, F.ATTACHABLE_OPT),
    SecDef("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, F.ATTACHABLE_OPT),
    SecDef("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, F.ATTACHABLE_OPT),
    SecDef("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, F.ATTACHABLE_OPT),
    SecDef("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, F.ATTACHABLE_OPT),
    SecDef("cgroup/skb", P.CGROUP_SKB),
    SecDef("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, F.ATTACHABLE),
    SecDef("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, F.ATTACHABLE),
    SecDef("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, F.ATTACHABLE_OPT),
    SecDef("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, F.ATTACHABLE),
    SecDef("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, F.ATTACHABLE),
    SecDef("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, F.ATTACHABLE),
    SecDef("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, F.ATTACHABLE),
    SecDef("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, F.ATTACHABLE),
    SecDef("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, F.ATTACHABLE),
    SecDef("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, F.ATTACHABLE),
    SecDef("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, F.ATTACHABLE),
    SecDef("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, F.ATTACHABLE),
    SecDef("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG, F.ATTACHABLE),
    SecDef("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, F.ATTACHABLE),
    SecDef("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, F.ATTACHABLE),
    SecDef("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG, F.ATTACHABLE),
    SecDef("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME,
           F.ATTACHABLE),
    SecDef("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME,
           F.ATTACHABLE),
    SecDef("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME,
           F.ATTACHABLE),
    SecDef("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME,
           F.ATTACHABLE),
    SecDef("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME,
           F.ATTACHABLE),
    SecDef("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME,
           F.ATTACHABLE),
    SecDef("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, F.ATTACHABLE),
    SecDef("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, F.ATTACHABLE),
    SecDef("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, F.ATTACHABLE),
    SecDef("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, F.ATTACHABLE_OPT),
    SecDef("struct_ops+", P.STRUCT_OPS),
    SecDef("struct_ops.s+", P.STRUCT_OPS, 0, F.SLEEPABLE),
    SecDef("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, F.ATTACHABLE),
    SecDef("netfilter", P.NETFILTER, A.NETFILTER),
)

#: Prefixes older loaders matched with a plain ``startswith`` (libbpf 0.x's
#: SEC_SLOPPY_PFX entries, samples/bpf's bpf_load.c, iproute2), tried in this
#: order after :data:`SECTION_DEFS`. Longer prefixes come first where one
#: prefix is the start of another.
LEGACY_PREFIXES: tuple[tuple[str, ProgType], ...] = (
    ("socket", P.SOCKET_FILTER),
    ("sk_reuseport", P.SK_REUSEPORT),
    ("kretprobe", P.KPROBE),
    ("kprobe", P.KPROBE),
    ("uretprobe", P.KPROBE),
    ("uprobe", P.KPROBE),
    ("classifier", P.SCHED_CLS),
    ("tc", P.SCHED_CLS),
    ("action", P.SCHED_ACT),
    ("tracepoint", P.TRACEPOINT),
    ("raw_tracepoint", P.RAW_TRACEPOINT),
    ("raw_tp", P.RAW_TRACEPOINT),
    ("tp", P.TRACEPOINT),
    ("xdp", P.XDP),
    ("perf_event", P.PERF_EVENT),
    ("lwt_in", P.LWT_IN),
    ("lwt_out", P.LWT_OUT),
    ("lwt_xmit", P.LWT_XMIT),
    ("lwt_seg6local", P.LWT_SEG6LOCAL),
    ("cgroup_skb", P.CGROUP_SKB),
    ("cgroup/skb", P.CGROUP_SKB),
    ("cgroup/sock_addr", P.CGROUP_SOCK_ADDR),
    ("cgroup/sock", P.CGROUP_SOCK),
    ("cgroup/dev", P.CGROUP_DEVICE),
    ("cgroup/sysctl", P.CGROUP_SYSCTL),
    ("sockops", P.SOCK_OPS),
    ("sk_skb", P.SK_SKB),
    ("sk_msg", P.SK_MSG),
    ("lirc_mode2", P.LIRC_MODE2),
    ("flow_dissector", P.FLOW_DISSECTOR),
)

#: iproute2's tail-call convention: a program in section "<map id>/<key>" goes
#: into slot <key> of the program array whose bpf_elf_map id is <map id>.
IPROUTE2_TAIL_CALL = re.compile(r"^(\d+)/(\d+)$")
#: samples/bpf's bpf_load.c convention: "kprobe/<n>", "socket/<n>" (and others)
#: go into slot <n> of the object's program array.
NUMBERED_SECTION = re.compile(r"^([A-Za-z_][\w.]*)/(\d+)$")


@attrs.frozen
class SectionMatch:
    """How a section name was understood."""

    prog_type: ProgType
    expected_attach_type: int
    #: "libbpf" (libbpf 1.x's table) or "legacy" (an older loader's prefix).
    source: str
    sec_def: SecDef | None = None


def section_prog_type(name: str) -> SectionMatch | None:
    """The program type (and expected attach type) a section name stands for."""
    for d in SECTION_DEFS:
        if d.matches(name):
            return SectionMatch(d.prog_type, int(d.expected_attach_type), "libbpf", d)
    for prefix, ptype in LEGACY_PREFIXES:
        if name.startswith(prefix):
            return SectionMatch(ptype, 0, "legacy")
    return None
