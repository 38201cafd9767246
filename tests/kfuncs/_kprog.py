"""Loading and test-running raw programs on the real kernel (for differential tests).

kfunc calls carry pyebpf's BTF ids (the reference kernel's); :func:`kernel_load`
maps each to the running kernel's id for the same name, read from
/sys/kernel/btf/vmlinux, so the tests hold on other kernel builds too.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import struct
from collections.abc import Sequence

from pyebpf.btf import Btf, BtfKind
from pyebpf.isa.insn import Insn, encode
from pyebpf.kfuncs import kfunc_by_id
from pyebpf.testing.kernel import _syscall

from ._load import Loaded

PROG_LOAD, PROG_TEST_RUN = 5, 10
VMLINUX = "/sys/kernel/btf/vmlinux"


@functools.cache
def _vmlinux() -> Btf | None:
    try:
        with open(VMLINUX, "rb") as f:
            return Btf.parse(f.read())
    except OSError:
        return None


def kernel_kfunc_id(name: str) -> int | None:
    btf = _vmlinux()
    t = btf.find(name, BtfKind.FUNC) if btf is not None else None
    return t.id if t is not None else None


def to_kernel_ids(insns: Sequence[Insn]) -> list[Insn]:
    out = []
    for insn in insns:
        if insn.code == 0x85 and insn.src == 2 and insn.imm:
            kf = kfunc_by_id(insn.imm)
            kid = kernel_kfunc_id(kf.name) if kf is not None else None
            if kid is not None:
                insn = Insn(insn.code, insn.dst, insn.src, insn.off, kid)
        out.append(insn)
    return out


def _addr(buf: ctypes.Array) -> int:  # type: ignore[type-arg]
    return ctypes.addressof(buf)


def kernel_load(insns: Sequence[Insn], *, prog_type: int = 1, license: str = "GPL",
                log_level: int = 1, run: bool = False, expected_attach_type: int = 0,
                attach_btf_id: int = 0, keep: list[int] | None = None) -> Loaded:
    """Load (and with ``run``, test-run once) on the kernel. With ``keep``, the
    program fd is appended to it and left open (the caller closes it)."""
    raw = encode(to_kernel_ids(insns))
    code = ctypes.create_string_buffer(bytes(raw), len(raw))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(1 << 20)
    attr = bytearray(144)
    struct.pack_into("<IIQQIIQ", attr, 0, prog_type, len(raw) // 8, _addr(code), _addr(lic),
                     log_level, len(log), _addr(log))
    struct.pack_into("<I", attr, 68, expected_attach_type)
    struct.pack_into("<I", attr, 108, attach_btf_id)
    abuf = ctypes.create_string_buffer(bytes(attr), len(attr))
    fd, err = _syscall(PROG_LOAD, abuf, len(attr))
    text = log.value.decode()
    if fd < 0:
        return Loaded(False, err, text)
    try:
        retval = None
        if run:
            data = ctypes.create_string_buffer(bytes(64), 64)
            out = ctypes.create_string_buffer(256)
            a = bytearray(80)
            struct.pack_into("<IIIIQQI", a, 0, fd, 0, 64, 256, _addr(data), _addr(out), 1)
            rbuf = ctypes.create_string_buffer(bytes(a), len(a))
            r, e = _syscall(PROG_TEST_RUN, rbuf, len(a))
            if r < 0:
                raise OSError(e, f"BPF_PROG_TEST_RUN: {_errno.errorcode.get(e, e)}")
            retval = struct.unpack_from("<I", rbuf.raw, 4)[0]
        return Loaded(True, 0, text, retval)
    finally:
        if keep is not None:
            keep.append(fd)
        else:
            os.close(fd)


def kernel_load_spec_program(spec: object, name: str, *, run: bool = True,
                             **load_args: object) -> Loaded:
    """Load one program of an ELF ObjectSpec on the kernel, its global-data maps
    created, filled and frozen as libbpf does (``load_args`` go to kernel_load)."""
    from pyebpf.attr import MapCreateAttr, MapElemAttr, MapFdAttr
    from pyebpf.testing.kernel import kernel_bpf, kernel_close
    from pyebpf.uapi import Cmd

    prog = spec.programs[name]  # type: ignore[attr-defined]
    fds: dict[str, int] = {}
    insns = list(_decode(prog.insns))
    try:
        for ref in prog.map_refs:
            if ref.map not in fds:
                m = spec.maps[ref.map]  # type: ignore[attr-defined]
                fd = kernel_bpf(Cmd.MAP_CREATE, MapCreateAttr(
                    map_type=m.type, key_size=m.key_size, value_size=m.value_size,
                    max_entries=m.max_entries, map_flags=m.flags))
                fds[ref.map] = fd
                if m.data is not None:
                    kernel_bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4),
                                                                value=m.data))
                if m.freeze:
                    kernel_bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd))
            fd = fds[ref.map]
            first, second = insns[ref.insn], insns[ref.insn + 1]
            if ref.kind == "value":
                insns[ref.insn] = Insn(first.code, first.dst, 2, first.off, fd)
                insns[ref.insn + 1] = Insn(second.code, second.dst, second.src, second.off,
                                           ref.offset)
            else:
                insns[ref.insn] = Insn(first.code, first.dst, 1, first.off, fd)
        return kernel_load(insns, prog_type=int(prog.prog_type), license=prog.license,
                           run=run, **load_args)  # type: ignore[arg-type]
    finally:
        for fd in fds.values():
            kernel_close(fd)


def _decode(raw: bytes) -> list[Insn]:
    from pyebpf.isa.insn import decode

    return list(decode(raw))
