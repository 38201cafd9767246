"""Scenarios for the cgroup-id helpers (bpf_get_current_ancestor_cgroup_id,
bpf_skb_ancestor_cgroup_id, bpf_sk_cgroup_id, bpf_sk_ancestor_cgroup_id) and
bpf_get_ns_current_pid_tgid that run the same on pyebpf and the kernel.

tests/helpers/test_cgroup_id_helpers.py pins pyebpf's answers;
tests/kernel/test_cgroup_id_differential.py requires the kernel's to be the
same (with the pyebpf runtime set to the test process's cgroup, pids and pid
namespace).
"""

from __future__ import annotations

from typing import Any

from pyebpf import MapType, ProgType

from ._build import JEQ, JNE, Asm, alu, call, exit_, ld_map_fd, lddw, ldx, mov, movr, st, stx
from .packet_scenarios import CTX, ipv4_udp_packet, run_helper

Backend = Any


def _u64(lo: int, hi: int) -> int:
    return lo | hi << 32


def current_ancestor(be: Backend, levels: list[int],
                     prog_type: int = ProgType.SCHED_CLS) -> list[int]:
    """get_current_ancestor_cgroup_id(level) per level: the id (two runs per
    level for its two halves)."""
    out = []
    for level in levels:
        halves = []
        for shift in (0, 32):
            p = Asm()
            p(lddw(1, level), call(123), alu(0x70, 0, shift), exit_())  # r0 >>= shift
            fd = be.load(p.build(), prog_type)
            try:
                halves.append(be.run_out(fd, ipv4_udp_packet())[0])
            finally:
                be.close_fd(fd)
        out.append(_u64(*halves))
    return out


def skb_ancestor(be: Backend, levels: list[int]) -> list[int]:
    """skb_ancestor_cgroup_id(ctx, level) per level in a tc test run (low 32 bits)."""
    return [run_helper(be, 83, [CTX, level], ipv4_udp_packet())[0] & 0xFFFF_FFFF
            for level in levels]


def cgroup_skb_ids(be: Backend, levels: list[int]) -> list[int]:
    """In one CGROUP_SKB test run: skb_cgroup_id, skb_ancestor_cgroup_id(level),
    sk_cgroup_id(skb->sk) and sk_ancestor_cgroup_id(skb->sk, level) for each
    level, stored in an array map (cgroup skb programs return only 0 or 1)."""
    n = 3 + 2 * len(levels)
    fd_map = be.map_create(MapType.ARRAY, 4, 8, n)
    try:
        p = Asm()
        p(movr(6, 1), ldx(8, 7, 6, 168))  # r7 = skb->sk
        p.jmp(JNE, 7, 0, "have_sk")
        p(mov(0, 0), exit_())
        p.label("have_sk")
        slot = 0

        def store(tag: str) -> None:
            nonlocal slot
            p(stx(8, 10, 0, -16), st(4, 10, -4, slot), ld_map_fd(1, fd_map), movr(2, 10),
              alu(0x00, 2, -4), call(1))
            p.jmp(JEQ, 0, 0, f"miss_{tag}")
            p(ldx(8, 1, 10, -16), stx(8, 0, 1, 0))
            p.label(f"miss_{tag}")
            slot += 1

        p(movr(1, 6), call(79))
        store("skb")
        p(movr(1, 7), call(128))
        store("sk")
        for i, level in enumerate(levels):
            p(movr(1, 6), lddw(2, level), call(83))
            store(f"skb_anc{i}")
            p(movr(1, 7), lddw(2, level), call(129))
            store(f"sk_anc{i}")
        p(mov(0, 1), exit_())
        fd = be.load(p.build(), ProgType.CGROUP_SKB)
        try:
            be.run_out(fd, ipv4_udp_packet()[14:])
        finally:
            be.close_fd(fd)
        return [int.from_bytes(be.lookup(fd_map, i.to_bytes(4, "little"), 8), "little")
                for i in range(slot)]
    finally:
        be.close_fd(fd_map)


def ns_pid_tgid(be: Backend, cases: list[tuple[int, int, int]],
                prog_type: int = ProgType.SCHED_CLS) -> list[tuple[int, int, int]]:
    """get_ns_current_pid_tgid(dev, ino, &info, size) per case, into 16 bytes of
    0x5a: (retval, info.pid, info.tgid) (the u32s at the buffer's start after)."""
    out = []
    for dev, ino, size in cases:
        got = []
        for part in range(3):
            p = Asm()
            p(lddw(0, 0x5A5A5A5A5A5A5A5A), stx(8, 10, 0, -16), stx(8, 10, 0, -8),
              lddw(1, dev), lddw(2, ino), movr(3, 10), alu(0x00, 3, -16), mov(4, size),
              call(120))
            if part:
                p(ldx(4, 0, 10, -16 + 4 * (part - 1)))
            p(exit_())
            fd = be.load(p.build(), prog_type)
            try:
                got.append(be.run_out(fd, ipv4_udp_packet())[0])
            finally:
                be.close_fd(fd)
        out.append((got[0] - (1 << 32) if got[0] >> 31 else got[0], got[1], got[2]))
    return out
