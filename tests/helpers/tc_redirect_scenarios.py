"""tc redirect and MTU helper scenarios that run the same on pyebpf and the kernel.

Each loads a small program calling bpf_redirect_neigh, bpf_redirect_peer or
bpf_check_mtu with the arguments given, test-runs it and returns plain data.
tests/helpers/test_tc_redirect_helpers.py pins pyebpf's answers;
tests/kernel/test_tc_redirect_differential.py requires the kernel's to be the
same.
"""

from __future__ import annotations

from typing import Any

from pyebpf import ProgType

from ._build import ADD, Asm, alu, call, exit_, lddw, ldx, movr, s32, st
from .packet_scenarios import ipv4_udp_packet, run_helper

Backend = Any

#: struct bpf_redir_neigh for AF_INET next hop 10.0.0.254.
REDIR_NEIGH_V4 = (2).to_bytes(4, "little") + bytes([10, 0, 0, 254]) + bytes(12)


def redirect_neigh(be: Backend, cases: list[tuple[int, bytes | None, int, int]]) -> list[int]:
    """bpf_redirect_neigh(ifindex, params, plen, flags) per case: the retval."""
    return [run_helper(be, 152, [ifindex, params, plen, flags], ipv4_udp_packet())[0]
            for ifindex, params, plen, flags in cases]


def redirect_peer(be: Backend, cases: list[tuple[int, int]]) -> list[int]:
    """bpf_redirect_peer(ifindex, flags) per case: the retval."""
    return [run_helper(be, 155, [ifindex, flags], ipv4_udp_packet())[0]
            for ifindex, flags in cases]


def check_mtu(be: Backend, cases: list[tuple[int, int, int, int]],
              prog_type: int = ProgType.SCHED_CLS,
              packet: bytes | None = None) -> list[tuple[int, int]]:
    """bpf_check_mtu(ctx, ifindex, &mtu_len, len_diff, flags) per (ifindex,
    mtu_len in, len_diff, flags): (retval, mtu_len after), one run each."""
    pkt = packet if packet is not None else ipv4_udp_packet()
    out = []
    for ifindex, mtu_in, len_diff, flags in cases:
        results = []
        for want_mtu in (False, True):
            p = Asm()
            p(st(4, 10, -8, s32(mtu_in)), lddw(2, ifindex), movr(3, 10),
              alu(ADD, 3, -8), lddw(4, len_diff), lddw(5, flags), call(163))
            if want_mtu:
                p(ldx(4, 0, 10, -8))
            p(exit_())
            fd = be.load(p.build(), prog_type)
            try:
                results.append(be.run_out(fd, pkt)[0])
            finally:
                be.close_fd(fd)
        out.append((s32(results[0]), results[1]))
    return out


__all__ = ["REDIR_NEIGH_V4", "check_mtu", "redirect_neigh", "redirect_peer"]
