"""Building, loading and opening iterator programs for the tests."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

from pyebpf import Runtime, bpf
from pyebpf.attr import IterCreateAttr, LinkCreateAttr, ProgLoadAttr
from pyebpf.btf import BtfKind
from pyebpf.isa.insn import Insn as I
from pyebpf.kernel_btf import kernel_btf
from pyebpf.kfuncs.iter_num import BTF_ID_DESTROY, BTF_ID_NEW, BTF_ID_NEXT
from pyebpf.uapi import AttachType, Cmd, ProgType

EXAMPLE = Path(__file__).parents[2] / "examples" / "iter_dump.o"
TRACE_ITER = AttachType.TRACE_ITER


def target_id(target: str) -> int:
    t = kernel_btf().find(f"bpf_iter_{target}", BtfKind.FUNC)
    assert t is not None
    return t.id


def load_iter(rt: Runtime, insns: Sequence[I], target: str = "task", prog_flags: int = 0,
              license: str = "GPL") -> int:
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.TRACING, insns=list(insns), license=license,
        expected_attach_type=TRACE_ITER, attach_btf_id=target_id(target),
        prog_flags=prog_flags, log_level=1, log_size=1 << 20), runtime=rt)


def link(rt: Runtime, prog_fd: int, map_fd: int | None = None) -> int:
    info = struct.pack("<I", map_fd) if map_fd is not None else None
    return bpf(Cmd.LINK_CREATE, LinkCreateAttr(
        prog_fd=prog_fd, attach_type=TRACE_ITER, iter_info=info,
        iter_info_len=4 if info is not None else 0), runtime=rt)


def open_iter(rt: Runtime, link_fd: int) -> int:
    return bpf(Cmd.ITER_CREATE, IterCreateAttr(link_fd=link_fd), runtime=rt)


def writer(bytes_per_object: int, *, retval: int = 0, chunk: int = 256) -> list[I]:
    """A task iterator program that seq_writes ``bytes_per_object`` bytes (``chunk``
    at a time from the stack, in a bpf_repeat loop) per task and returns
    ``retval``; nothing for the final NULL call."""
    n = bytes_per_object // chunk
    it = [I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -8)]
    body = [
        I(0x79, 6, 1, 0, 0),                  # r6 = ctx->meta
        I(0x79, 7, 6, 0, 0),                  # r7 = meta->seq
        I(0x79, 8, 1, 8, 0),                  # r8 = ctx->task
        I(0x15, 8, 0, 18, 0),                 # if r8 == 0 goto out
        *it, I(0xB4, 2, 0, 0, 0), I(0xB4, 3, 0, 0, n), I(0x85, 0, 2, 0, BTF_ID_NEW),
        *it, I(0x85, 0, 2, 0, BTF_ID_NEXT),   # loop:
        I(0x15, 0, 0, 6, 0),                  # if r0 == 0 goto done
        I(0xBF, 1, 7, 0, 0), I(0xBF, 2, 10, 0, 0), I(0x07, 2, 0, 0, -8 - chunk),
        I(0xB4, 3, 0, 0, chunk), I(0x85, 0, 0, 0, 127),   # bpf_seq_write
        I(0x05, 0, 0, -10, 0),                # goto loop
        *it, I(0x85, 0, 2, 0, BTF_ID_DESTROY),  # done:
        I(0xB7, 0, 0, 0, retval), I(0x95, 0, 0, 0, 0),    # out:
    ]
    return body


def kernel_read_map_iter(prog_fd: int, map_fd: int, keep: list[int]) -> bytes:
    """On the real kernel: link an iterator program to ``map_fd`` (LINK_CREATE with
    a ``bpf_iter_link_info``), open the iterator (ITER_CREATE) and read it to the
    end. The link and iterator fds go into ``keep`` for the caller to close."""
    import ctypes
    import os

    from pyebpf.testing.kernel import _syscall

    info = ctypes.create_string_buffer(struct.pack("<I", map_fd), 4)
    attr = ctypes.create_string_buffer(struct.pack(
        "<IIIIQI", prog_fd, 0, TRACE_ITER, 0, ctypes.addressof(info), 4), 64)
    lfd, err = _syscall(Cmd.LINK_CREATE, attr, 64)
    assert lfd >= 0, os.strerror(err)
    keep.append(lfd)
    attr = ctypes.create_string_buffer(struct.pack("<II", lfd, 0), 8)
    ifd, err = _syscall(Cmd.ITER_CREATE, attr, 8)
    assert ifd >= 0, os.strerror(err)
    keep.append(ifd)
    text = b""
    while chunk := os.read(ifd, 4096):
        text += chunk
    return text
