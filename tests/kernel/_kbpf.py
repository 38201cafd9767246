"""Kernel-side helpers for the map differential tests that the attr-record oracle
(:mod:`pyebpf.testing.kernel`) doesn't cover: a BPF program that looks a key up
(so an LRU element gets its ref bit exactly as a program's bpf_map_lookup_elem
sets it).
"""

from __future__ import annotations

import ctypes
import os
import struct

from pyebpf.testing.kernel import kernel_bpf_raw

__all__ = ["ProgLookup"]

PROG_LOAD = 5
PROG_TEST_RUN = 10
PROG_TYPE_XDP = 6


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _addr(buf: ctypes.Array) -> int:  # type: ignore[type-arg]
    return ctypes.addressof(buf)


class ProgLookup:
    """An XDP program calling bpf_map_lookup_elem(map, key) with the key taken from
    the packet, run with BPF_PROG_TEST_RUN. ``key_size`` must be a multiple of 4
    and at most 64."""

    def __init__(self, map_fd: int, key_size: int) -> None:
        assert key_size % 4 == 0 and 0 < key_size <= 64
        self.key_size = key_size
        ks = key_size
        body = b""
        for off in range(0, ks, 4):
            body += _insn(0x61, 5, 2, off)            # r5 = *(u32 *)(r2 + off)
            body += _insn(0x63, 10, 5, -ks + off)     # *(u32 *)(r10 - ks + off) = r5
        body += _insn(0x18, 1, 1, 0, map_fd) + _insn(0)  # r1 = map (BPF_PSEUDO_MAP_FD)
        body += _insn(0xBF, 2, 10)                    # r2 = r10
        body += _insn(0x07, 2, 0, 0, -ks)             # r2 += -ks
        body += _insn(0x85, 0, 0, 0, 1)               # call bpf_map_lookup_elem
        prog = (_insn(0x61, 2, 1, 0)                  # r2 = ctx->data
                + _insn(0x61, 3, 1, 4)                # r3 = ctx->data_end
                + _insn(0xBF, 4, 2)                   # r4 = r2
                + _insn(0x07, 4, 0, 0, ks)            # r4 += ks
                + _insn(0x2D, 4, 3, len(body) // 8)   # if r4 > r3 goto out
                + body
                + _insn(0xB7, 0, 0, 0, 2)             # out: r0 = XDP_PASS
                + _insn(0x95))                        # exit
        insns = ctypes.create_string_buffer(prog, len(prog))
        lic = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(1 << 16)
        attr = struct.pack("<IIQQIIQ", PROG_TYPE_XDP, len(prog) // 8, _addr(insns),
                           _addr(lic), 1, len(log), _addr(log))
        fd, err = kernel_bpf_raw(PROG_LOAD, attr.ljust(160, b"\0"))
        if err:
            raise OSError(err, f"the lookup program was rejected: {log.value.decode()}")
        self.fd = fd

    def __call__(self, key: bytes) -> None:
        data = bytes(key).ljust(64, b"\0")
        dbuf = ctypes.create_string_buffer(data, len(data))
        obuf = ctypes.create_string_buffer(len(data) + 512)
        attr = struct.pack("<IIIIQQII", self.fd, 0, len(data), len(obuf), _addr(dbuf),
                           _addr(obuf), 1, 0)
        _, err = kernel_bpf_raw(PROG_TEST_RUN, attr.ljust(160, b"\0"))
        if err:
            raise OSError(err, "BPF_PROG_TEST_RUN of the lookup program failed")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
