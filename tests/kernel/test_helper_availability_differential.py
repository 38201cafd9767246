"""Which helpers each program type is offered, on pyebpf and on the real kernel.

For every helper pyebpf has and every program type that loads without a BTF
attach target (tracing, LSM, struct_ops and extensions need one), a program
calling the helper (r1 the ctx, r2-r5 zero) is loaded on both sides with a GPL
license. Whether the verifier found a prototype for the helper (the kernel's
``get_func_proto``) must agree: the load fails with "cannot use helper" /
"unknown func" on both or on neither. What happens to the arguments afterwards
is the business of the helpers' own tests.
"""

from __future__ import annotations

import os

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, bpf
from pyebpf.attr import ProgLoadAttr
from pyebpf.helpers import default_helpers
from pyebpf.isa import Insn
from pyebpf.testing.kernel import kernel_bpf
from pyebpf.uapi import AttachType, FuncId

pytestmark = pytest.mark.kernel

P, A = ProgType, AttachType
#: Program types that load without an attach target, with the expected attach
#: type their load needs.
TYPES: dict[ProgType, int] = {
    P.SOCKET_FILTER: 0, P.KPROBE: 0, P.SCHED_CLS: 0, P.SCHED_ACT: 0, P.TRACEPOINT: 0,
    P.XDP: 0, P.PERF_EVENT: 0, P.CGROUP_SKB: 0, P.CGROUP_SOCK: A.CGROUP_INET_SOCK_CREATE,
    P.LWT_IN: 0, P.LWT_OUT: 0, P.LWT_XMIT: 0, P.SOCK_OPS: 0, P.SK_SKB: 0,
    P.CGROUP_DEVICE: 0, P.SK_MSG: 0, P.RAW_TRACEPOINT: 0,
    P.CGROUP_SOCK_ADDR: A.CGROUP_INET4_CONNECT, P.LWT_SEG6LOCAL: 0, P.SK_REUSEPORT: 0,
    P.FLOW_DISSECTOR: 0, P.CGROUP_SYSCTL: 0, P.RAW_TRACEPOINT_WRITABLE: 0,
    P.CGROUP_SOCKOPT: A.CGROUP_GETSOCKOPT, P.SK_LOOKUP: A.SK_LOOKUP,
    P.NETFILTER: A.NETFILTER,
}
NOT_OFFERED = ("cannot use helper", "unknown func", "invalid func")
#: Helpers the kernel offers these types that pyebpf doesn't yet, for want of the
#: simulated state they act on; each closes when its run time exists (then this
#: test fails until the entry goes).
KNOWN_GAPS: dict[ProgType, set[str]] = {
    # bpf_get_socket_ptr_cookie / sk_reuseport_load_bytes_relative: the reuseport
    # ctx has no socket or skb model behind it yet.
    P.SK_REUSEPORT: {"get_socket_cookie", "skb_load_bytes_relative"},
}


def _offered(call: object, ptype: ProgType, eat: int, func: int) -> bool:
    insns = [*(Insn(0xB7, r, 0, 0, 0) for r in range(2, 6)), Insn(0x85, 0, 0, 0, func),
             Insn(0xB7, 0, 0, 0, 0), Insn(0x95)]
    attr = ProgLoadAttr(prog_type=ptype, expected_attach_type=eat, insns=insns,
                        insn_cnt=len(insns), license="GPL", log_level=1, log_size=1 << 16)
    try:
        fd = call(Cmd.PROG_LOAD, attr)  # type: ignore[operator]
    except BpfError as err:
        log = getattr(err, "log", "") or str(err)
        return not any(m in log for m in NOT_OFFERED)
    if call is kernel_bpf:
        os.close(fd)
    return True


@pytest.mark.parametrize("ptype", sorted(TYPES, key=int), ids=lambda t: t.name)
def test_helpers_offered_to_the_program_type_are_the_kernels(ptype: ProgType) -> None:
    rt = Runtime()
    have = default_helpers()
    eat = TYPES[ptype]
    wrong = []
    for f in FuncId:
        if not f.value or f.value not in have:
            continue
        ours = _offered(lambda c, a: bpf(c, a, runtime=rt), ptype, eat, f.value)
        kernel = _offered(kernel_bpf, ptype, eat, f.value)
        if ours != kernel:
            wrong.append(f"{f.name}: pyebpf {'offers' if ours else 'refuses'}, "
                         f"the kernel {'offers' if kernel else 'refuses'}")
    known = {f"{name}: pyebpf refuses, the kernel offers"
             for name in KNOWN_GAPS.get(ptype, ())}
    assert set(wrong) == known, "\n".join(sorted(set(wrong) ^ known))
