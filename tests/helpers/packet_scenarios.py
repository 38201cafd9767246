"""Packet and checksum helper scenarios that run the same on pyebpf and the kernel.

Each scenario loads a small program calling one helper with the arguments
given (``CTX`` for the program's ctx, bytes for a buffer on the stack, ints
as 64-bit immediates), test-runs it on a packet and returns the signed retval
and the packet out. tests/helpers/test_packet_helpers.py pins pyebpf's answers;
tests/kernel/test_packet_helpers_differential.py requires the kernel's to be
the same.
"""

from __future__ import annotations

from typing import Any

from pyebpf import Insn, ProgType

from ._build import ADD, Asm, alu, call, exit_, lddw, mov, movr, s32, stx

Backend = Any
CTX = object()


def helper_call(func_id: int, args: list[Any]) -> list[Insn]:
    """r6 = ctx; stack buffers for bytes args; r1..r5 = args; call; exit with r0."""
    p = Asm()
    p(movr(6, 1))
    sp = 0
    where: list[int] = []
    for a in args:
        if isinstance(a, bytes | bytearray):
            sp -= (len(a) + 7) // 8 * 8
            padded = bytes(a).ljust((len(a) + 7) // 8 * 8, b"\0")
            for i in range(0, len(padded), 8):
                p(lddw(0, int.from_bytes(padded[i:i + 8], "little")), stx(8, 10, 0, sp + i))
            where.append(sp)
        else:
            where.append(0)
    for reg, (a, off) in enumerate(zip(args, where, strict=True), start=1):
        if a is CTX:
            p(movr(reg, 6))
        elif isinstance(a, bytes | bytearray):
            p(movr(reg, 10), alu(ADD, reg, off))
        elif a is None:
            p(mov(reg, 0))
        else:
            p(lddw(reg, a))
    p(call(func_id), exit_())
    return p.build()


def run_helper(be: Backend, func_id: int, args: list[Any], packet: bytes,
               prog_type: int = ProgType.SCHED_CLS) -> tuple[int, bytes]:
    """(signed retval, data_out) of one helper call in a test run."""
    fd = be.load(helper_call(func_id, args), prog_type)
    try:
        retval, out = be.run_out(fd, packet)
    finally:
        be.close_fd(fd)
    return s32(retval), out


def csum_diff(be: Backend, cases: list[tuple[bytes, bytes, int]]) -> list[int]:
    """bpf_csum_diff(from, len, to, len, seed) for each case (empty bytes: NULL, 0)."""
    out = []
    for frm, to, seed in cases:
        args = [frm or None, len(frm), to or None, len(to), seed]
        out.append(run_helper(be, 28, args, bytes(64), ProgType.XDP)[0])
    return out


def ipv4_udp_packet(payload: bytes = b"hello, checksum!") -> bytes:
    """Ethernet + IPv4 (valid header checksum) + UDP (valid checksum) + payload."""
    from pyebpf.helpers.csum import csum_fold, csum_partial

    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    udp_len = 8 + len(payload)
    ip = bytearray(b"\x45\x00" + (20 + udp_len).to_bytes(2, "big") + b"\x12\x34\x40\x00\x40\x11"
                   + b"\0\0" + src + dst)
    ip[10:12] = csum_fold(csum_partial(ip, 0)).to_bytes(2, "little")
    udp = bytearray((1234).to_bytes(2, "big") + (53).to_bytes(2, "big")
                    + udp_len.to_bytes(2, "big") + b"\0\0" + payload)
    pseudo = src + dst + b"\x00\x11" + udp_len.to_bytes(2, "big")
    udp[6:8] = csum_fold(csum_partial(pseudo + udp, 0)).to_bytes(2, "little")
    return bytes(12) + b"\x08\x00" + bytes(ip) + bytes(udp)


def csum_replace(be: Backend, func_id: int, cases: list[tuple[int, int, int, int]],
                 packet: bytes | None = None) -> list[tuple[int, bytes]]:
    """l3/l4_csum_replace(skb, offset, from, to, flags) per case, on a UDP packet."""
    pkt = packet if packet is not None else ipv4_udp_packet()
    return [run_helper(be, func_id, [CTX, off, frm, to, flags], pkt)
            for off, frm, to, flags in cases]


def csum_level(be: Backend, levels: list[int]) -> list[int]:
    return [run_helper(be, 135, [CTX, lvl], ipv4_udp_packet())[0] for lvl in levels]


def csum_update(be: Backend, values: list[int]) -> list[int]:
    return [run_helper(be, 40, [CTX, v], ipv4_udp_packet())[0] for v in values]


def store_bytes(be: Backend, cases: list[tuple[int, bytes, int]]) -> list[tuple[int, bytes]]:
    """bpf_skb_store_bytes(skb, offset, data, len, flags) per case."""
    pkt = ipv4_udp_packet()
    return [run_helper(be, 9, [CTX, off, data, len(data), flags], pkt)
            for off, data, flags in cases]


def pull_data(be: Backend, lengths: list[int]) -> list[int]:
    return [run_helper(be, 39, [CTX, n], ipv4_udp_packet())[0] for n in lengths]


def change_tail(be: Backend, cases: list[tuple[int, int]],
                prog_type: int = ProgType.SCHED_CLS) -> list[tuple[int, bytes]]:
    """bpf_skb_change_tail(skb, len, flags) per case."""
    return [run_helper(be, 38, [CTX, n, flags], ipv4_udp_packet(), prog_type)
            for n, flags in cases]


def change_head(be: Backend, cases: list[tuple[int, int]],
                prog_type: int = ProgType.SCHED_CLS) -> list[tuple[int, bytes]]:
    """bpf_skb_change_head(skb, head_room, flags) per case."""
    return [run_helper(be, 43, [CTX, n, flags], ipv4_udp_packet(), prog_type)
            for n, flags in cases]


# __sk_buff offsets read back after VLAN operations.
_PROTOCOL, _VLAN_PRESENT, _VLAN_TCI, _VLAN_PROTO = 16, 20, 24, 28


def vlan_ops(be: Backend, ops: list[tuple[int, int] | None], packet: bytes,
             ) -> tuple[int, int, bytes]:
    """Run skb_vlan_push(proto, tci) (a tuple) / skb_vlan_pop (None) in order.

    Returns (vlan_tci | vlan_present << 16 | (any op failed) << 17,
    protocol | vlan_proto << 16, packet out)."""
    from ._build import JEQ, LSH, OR, alur, ldx

    outs = []
    for what in ("tags", "protos"):
        p = Asm()
        p(movr(6, 1), mov(7, 0))
        for i, op in enumerate(ops):
            if op is None:
                p(movr(1, 6), call(19))
            else:
                p(movr(1, 6), lddw(2, op[0]), lddw(3, op[1]), call(18))
            p.jmp(JEQ, 0, 0, f"ok{i}")
            p(mov(7, 1))
            p.label(f"ok{i}")
        if what == "tags":
            p(ldx(4, 0, 6, _VLAN_TCI), ldx(4, 1, 6, _VLAN_PRESENT), alu(LSH, 1, 16),
              alur(OR, 0, 1), alu(LSH, 7, 17), alur(OR, 0, 7), exit_())
        else:
            p(ldx(4, 0, 6, _PROTOCOL), ldx(4, 1, 6, _VLAN_PROTO), alu(LSH, 1, 16),
              alur(OR, 0, 1), exit_())
        fd = be.load(p.build(), ProgType.SCHED_CLS)
        try:
            outs.append(be.run_out(fd, packet))
        finally:
            be.close_fd(fd)
    (tags, out), (protos, _) = outs
    return tags, protos, out


def xdp_adjust(be: Backend, ops: list[tuple[int, int]], packet: bytes) -> tuple[int, bytes]:
    """Call xdp_adjust_head (44) / _meta (54) / _tail (65) with offsets in order.

    Returns (bitmask of failed ops | (data_end - data) << 8, packet out)."""
    from ._build import JEQ, LSH, OR, SUB, alur, ldx

    p = Asm()
    p(movr(6, 1), mov(7, 0))
    for i, (func, off) in enumerate(ops):
        p(movr(1, 6), mov(2, off), call(func))
        p.jmp(JEQ, 0, 0, f"ok{i}")
        p(alu(OR, 7, 1 << i))
        p.label(f"ok{i}")
    p(ldx(4, 2, 6, 0), ldx(4, 3, 6, 4), alur(SUB, 3, 2), alu(LSH, 3, 8), movr(0, 7),
      alur(OR, 0, 3), exit_())
    fd = be.load(p.build(), ProgType.XDP)
    try:
        return be.run_out(fd, packet)
    finally:
        be.close_fd(fd)


def redirect(be: Backend, prog_type: int, cases: list[tuple[int, int]]) -> list[int]:
    """bpf_redirect(ifindex, flags) per case: the retval (the action)."""
    return [run_helper(be, 23, [ifindex, flags], ipv4_udp_packet(), prog_type)[0]
            for ifindex, flags in cases]


def skb_queries(be: Backend, func_ids: list[int], prog_type: int = ProgType.SCHED_CLS,
                packet: bytes | None = None) -> list[int]:
    """Helpers taking only the ctx (get_route_realm, skb_cgroup_id ...): their retvals."""
    pkt = packet if packet is not None else ipv4_udp_packet()
    return [run_helper(be, f, [CTX], pkt, prog_type)[0] for f in func_ids]


def hash_ops(be: Backend, set_to: int | None, invalidate: bool) -> int:
    """set_hash(set_to) and/or set_hash_invalid, then get_hash_recalc: the hash."""
    p = Asm()
    p(movr(6, 1))
    if set_to is not None:
        p(movr(1, 6), lddw(2, set_to), call(48))
    if invalidate:
        p(movr(1, 6), call(41))
    p(movr(1, 6), call(34), exit_())
    fd = be.load(p.build(), ProgType.SCHED_CLS)
    try:
        return be.run_out(fd, ipv4_udp_packet())[0]
    finally:
        be.close_fd(fd)


def change_type(be: Backend, types: list[int]) -> list[int]:
    return [run_helper(be, 32, [CTX, t], ipv4_udp_packet())[0] for t in types]


def load_bytes_relative(be: Backend, cases: list[tuple[int, int, int]],
                        prog_type: int = ProgType.SCHED_CLS) -> list[tuple[int, bytes]]:
    """skb_load_bytes_relative(skb, offset, buf, len, start) per (offset, len, start):
    (retval, the first 8 bytes of the buffer after)."""
    from ._build import ldx

    out = []
    for offset, length, start in cases:
        p = Asm()
        p(movr(6, 1), lddw(0, 0x5A5A5A5A5A5A5A5A))
        for i in range(0, 16, 8):
            p(stx(8, 10, 0, -16 + i))
        p(movr(1, 6), mov(2, offset), movr(3, 10), alu(ADD, 3, -16), mov(4, length),
          mov(5, start), call(68), movr(7, 0))
        # A retval has 32 bits: one run each for the rc and the buffer's two u32s.
        p(ldx(4, 1, 10, -16), ldx(4, 2, 10, -12))
        fd_insns = p.build()
        results = []
        for part in range(3):
            q = Asm()
            q(*fd_insns)
            q(movr(0, {0: 7, 1: 1, 2: 2}[part]), exit_())
            fd = be.load(q.build(), prog_type)
            try:
                results.append(be.run_out(fd, ipv4_udp_packet())[0])
            finally:
                be.close_fd(fd)
        buf = results[1].to_bytes(4, "little") + results[2].to_bytes(4, "little")
        out.append((s32(results[0]), buf))
    return out


def xdp_bytes(be: Backend, func_id: int, cases: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    """xdp_load_bytes / xdp_store_bytes(ctx, offset, buf, len) with an 8-byte
    buffer of 0x41s: (retval, packet out)."""
    return [run_helper(be, func_id, [CTX, offset, b"A" * 8, length], ipv4_udp_packet(),
                       ProgType.XDP) for offset, length in cases]


def tunnel_key(be: Backend, set_args: tuple[bytes, int] | None,
               get_args: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    """Optionally skb_set_tunnel_key(key, flags), then skb_get_tunnel_key(buf, size,
    flags) for each (size, flags): (retval, the buffer's bytes after), read back
    four bytes per run."""
    from ._build import JEQ, ldx

    out = []
    for size, flags in get_args:
        words = []
        for word in range(-1, (size + 3) // 4):
            p = Asm()
            p(movr(6, 1))
            if set_args is not None:
                key, sflags = set_args
                padded = key.ljust((len(key) + 7) // 8 * 8, b"\0")
                for i in range(0, len(padded), 8):
                    p(lddw(0, int.from_bytes(padded[i:i + 8], "little")),
                      stx(8, 10, 0, -128 + i))
                p(movr(1, 6), movr(2, 10), alu(ADD, 2, -128), mov(3, len(key)),
                  lddw(4, sflags), call(21))
                p.jmp(JEQ, 0, 0, "set_ok")
                p(alu(ADD, 0, 0x1000), exit_())
                p.label("set_ok")
            p(lddw(0, 0x5A5A5A5A5A5A5A5A))
            for i in range(0, 48, 8):
                p(stx(8, 10, 0, -64 + i))
            p(movr(1, 6), movr(2, 10), alu(ADD, 2, -64), mov(3, size), lddw(4, flags),
              call(20))
            if word >= 0:
                p(ldx(4, 0, 10, -64 + 4 * word))
            p(exit_())
            fd = be.load(p.build(), ProgType.SCHED_CLS)
            try:
                words.append(be.run_out(fd, ipv4_udp_packet())[0])
            finally:
                be.close_fd(fd)
        buf = b"".join(w.to_bytes(4, "little") for w in words[1:])[:size]
        out.append((s32(words[0]), buf))
    return out


def clone_redirect(be: Backend, cases: list[tuple[int, int]],
                   prog_type: int = ProgType.SCHED_CLS) -> list[tuple[int, bytes]]:
    return [run_helper(be, 13, [CTX, ifindex, flags], ipv4_udp_packet(), prog_type)
            for ifindex, flags in cases]


def adjust_room(be: Backend, cases: list[tuple[int, int, int]],
                packet: bytes | None = None) -> list[tuple[int, bytes]]:
    """bpf_skb_adjust_room(skb, len_diff, mode, flags) per case."""
    pkt = packet if packet is not None else ipv4_udp_packet()
    return [run_helper(be, 50, [CTX, diff & 0xFFFF_FFFF, mode, flags], pkt)
            for diff, mode, flags in cases]


def adjust_room_then(be: Backend, first: tuple[int, int, int], func_id: int,
                     args: list[int]) -> tuple[int, bytes]:
    """skb_adjust_room(first), then another helper on the same skb: its retval
    (0x1000 + the first's if the first failed) and the packet out."""
    from ._build import JEQ

    p = Asm()
    diff, mode, flags = first
    p(movr(6, 1), movr(1, 6), lddw(2, diff & 0xFFFF_FFFF), mov(3, mode), lddw(4, flags),
      call(50))
    p.jmp(JEQ, 0, 0, "ok")
    p(alu(ADD, 0, 0x1000), exit_())
    p.label("ok")
    p(movr(1, 6))
    for reg, a in enumerate(args, start=2):
        p(lddw(reg, a))
    p(call(func_id), exit_())
    fd = be.load(p.build(), ProgType.SCHED_CLS)
    try:
        retval, out = be.run_out(fd, ipv4_udp_packet())
    finally:
        be.close_fd(fd)
    return s32(retval), out


def cgroup_classid(be: Backend, prog_type: int, r1_zero: bool) -> int | str:
    """get_cgroup_classid with r1 = ctx or 0: the retval, or 'EACCES' for a rejected load."""
    from pyebpf import BpfError

    insns = ([mov(1, 0)] if r1_zero else []) + [call(17), exit_()]
    try:
        fd = be.load(insns, prog_type)
    except BpfError as e:
        return f"errno {e.errno}"
    try:
        return be.run_out(fd, ipv4_udp_packet())[0]
    finally:
        be.close_fd(fd)


def listener_sock(be: Backend) -> int:
    """bpf_get_listener_sock(skb->sk): 7 without a socket, 1 for NULL, 2 for a listener."""
    from ._build import JNE, ldx

    p = Asm()
    p(ldx(8, 1, 1, 168))  # skb->sk
    p.jmp(JNE, 1, 0, "have")
    p(mov(0, 7), exit_())
    p.label("have")
    p(call(98))
    p.jmp(JNE, 0, 0, "listen")
    p(mov(0, 1), exit_())
    p.label("listen")
    p(mov(0, 2), exit_())
    fd = be.load(p.build(), ProgType.SCHED_CLS)
    try:
        return be.run_out(fd, ipv4_udp_packet())[0]
    finally:
        be.close_fd(fd)


def fib_params(family: int = 2, ifindex: int = 1, dst: bytes = bytes([10, 1, 2, 3]),
               tot_len: int = 0, tbid: int = 0) -> bytes:
    """A struct bpf_fib_lookup to look up (64 bytes)."""
    import struct

    p = bytearray(64)
    p[0] = family
    struct.pack_into("<HI", p, 6, tot_len, ifindex)
    p[32:32 + len(dst)] = dst
    struct.pack_into("<I", p, 48, tbid)
    return bytes(p)


def fib_lookup(be: Backend, params: bytes, flags: int, plen: int = 64,
               prog_type: int = ProgType.XDP) -> tuple[int, bytes]:
    """bpf_fib_lookup(ctx, &params, plen, flags): (retval, params after), the
    params read back four bytes per run."""
    from ._build import ldx

    out = []
    for word in range(-1, 16):
        p = Asm()
        p(movr(6, 1))
        for i in range(0, 64, 8):
            p(lddw(0, int.from_bytes(params[i:i + 8], "little")), stx(8, 10, 0, -64 + i))
        p(movr(1, 6), movr(2, 10), alu(ADD, 2, -64), mov(3, plen), lddw(4, flags), call(69))
        if word >= 0:
            p(ldx(4, 0, 10, -64 + 4 * word))
        p(exit_())
        fd = be.load(p.build(), prog_type)
        try:
            out.append(be.run_out(fd, ipv4_udp_packet())[0])
        finally:
            be.close_fd(fd)
    return s32(out[0]), b"".join(w.to_bytes(4, "little") for w in out[1:])
