"""Building and running test programs: the kernel's BPF_* instruction macros, a
label-resolving builder, and one-call wrappers for PROG_LOAD / PROG_TEST_RUN /
maps on a given Runtime (or on the real kernel, via the same attr records)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyebpf.prog  # noqa: F401  (registers PROG_LOAD and PROG_TEST_RUN)
from pyebpf import Insn, MapCreateAttr, MapElemAttr, MapType, ProgType, Runtime, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.uapi import Cmd

# -- instruction macros (include/linux/filter.h) -------------------------------------------
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0)
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0)
SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}


def mov(dst: int, imm: int) -> Insn:
    return Insn(0xB7, dst, 0, 0, imm)


def movr(dst: int, src: int) -> Insn:
    return Insn(0xBF, dst, src)


def alu(op: int, dst: int, imm: int) -> Insn:
    return Insn(0x07 | op, dst, 0, 0, imm)


def alur(op: int, dst: int, src: int) -> Insn:
    return Insn(0x0F | op, dst, src)


def ldx(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(0x61 | SIZES[size], dst, src, off)


def stx(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(0x63 | SIZES[size], dst, src, off)


def st(size: int, dst: int, off: int, imm: int) -> Insn:
    return Insn(0x62 | SIZES[size], dst, 0, off, imm)


def lddw(dst: int, imm: int, src: int = 0) -> list[Insn]:
    imm &= (1 << 64) - 1
    lo, hi = imm & 0xFFFF_FFFF, imm >> 32
    s32 = lambda v: v - (1 << 32) if v >> 31 else v  # noqa: E731
    return [Insn(0x18, dst, src, 0, s32(lo)), Insn(0, 0, 0, 0, s32(hi))]


def ld_map_fd(dst: int, fd: int) -> list[Insn]:
    return lddw(dst, fd, src=1)


def call(func_id: int) -> Insn:
    return Insn(0x85, 0, 0, 0, func_id)


def exit_() -> Insn:
    return Insn(0x95)


class Asm:
    """A program with labels: ``p.jmp(JEQ, 0, 0, "out")`` ... ``p.label("out")``."""

    def __init__(self) -> None:
        self.insns: list[Insn] = []
        self.labels: dict[str, int] = {}
        self.fixups: list[tuple[int, str, str]] = []

    def __call__(self, *items: Insn | list[Insn]) -> Asm:
        for item in items:
            if isinstance(item, list):
                self.insns.extend(item)
            else:
                self.insns.append(item)
        return self

    def label(self, name: str) -> Asm:
        self.labels[name] = len(self.insns)
        return self

    def jmp(self, op: int, dst: int, imm: int, target: str) -> Asm:
        self.fixups.append((len(self.insns), target, "off"))
        self.insns.append(Insn(0x05 | op, dst, 0, 0, imm))
        return self

    def jmpr(self, op: int, dst: int, src: int, target: str) -> Asm:
        self.fixups.append((len(self.insns), target, "off"))
        self.insns.append(Insn(0x0D | op, dst, src))
        return self

    def ja(self, target: str) -> Asm:
        return self.jmp(JA, 0, 0, target)

    def call_local(self, target: str) -> Asm:
        self.fixups.append((len(self.insns), target, "imm"))
        self.insns.append(Insn(0x85, 0, 1, 0, 0))
        return self

    def ld_func(self, dst: int, target: str) -> Asm:
        """lddw dst, <function> (BPF_PSEUDO_FUNC)."""
        self.fixups.append((len(self.insns), target, "imm"))
        self.insns.extend([Insn(0x18, dst, 4, 0, 0), Insn(0)])
        return self

    def build(self) -> list[Insn]:
        out = list(self.insns)
        for pc, target, field in self.fixups:
            delta = self.labels[target] - pc - 1
            i = out[pc]
            out[pc] = Insn(i.code, i.dst, i.src, delta if field == "off" else i.off,
                           delta if field == "imm" else i.imm)
        return out


# -- running ----------------------------------------------------------------------------------
Bpf = Callable[..., Any]


def on(rt: Runtime) -> Bpf:
    """bpf() bound to a runtime."""

    def call_bpf(cmd: int, attr: Any) -> Any:
        return bpf(cmd, attr, runtime=rt)

    return call_bpf


def load(b: Bpf, insns: list[Insn], prog_type: int = ProgType.XDP, license: str = "GPL",
         **kw: Any) -> int:
    attr = ProgLoadAttr(prog_type=prog_type, insns=insns, license=license, **kw)
    return int(b(Cmd.PROG_LOAD, attr))


def run(b: Bpf, fd: int, data: bytes = bytes(64)) -> int:
    """XDP (or skb) test run; the u32 retval."""
    return int(b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=data, repeat=1)).retval)


def map_create(b: Bpf, map_type: int, key_size: int, value_size: int, max_entries: int,
               map_flags: int = 0) -> int:
    return int(b(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=key_size,
                                               value_size=value_size, max_entries=max_entries,
                                               map_flags=map_flags)))


def u32(v: int) -> bytes:
    return (v & 0xFFFF_FFFF).to_bytes(4, "little")


def update(b: Bpf, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
    b(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key, value=value, flags=flags))


def lookup(b: Bpf, fd: int, key: bytes) -> bytes:
    return bytes(b(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key)))




# -- backends: the same scenario on pyebpf and on the real kernel -------------------------------
class PyBackend:
    """pyebpf on a fresh Runtime."""

    name = "pyebpf"

    def __init__(self, **runtime_kw: Any) -> None:
        self.rt = Runtime(**runtime_kw)
        self.b = on(self.rt)
        self.nr_cpus = self.rt.nr_cpus

    def map_create(self, map_type: int, key_size: int, value_size: int, max_entries: int,
                   map_flags: int = 0) -> int:
        return map_create(self.b, map_type, key_size, value_size, max_entries, map_flags)

    def update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        update(self.b, fd, key, value, flags)

    def lookup(self, fd: int, key: bytes, value_size: int) -> bytes:
        return lookup(self.b, fd, key)

    def delete(self, fd: int, key: bytes) -> None:
        self.b(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=key))

    def freeze(self, fd: int) -> None:
        from pyebpf import MapFdAttr

        self.b(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd))

    def load(self, insns: list[Insn], prog_type: int = ProgType.XDP, license: str = "GPL",
             prog_flags: int = 0, expected_attach_type: int = 0,
             funcs: list[tuple[int, str, int]] | None = None) -> int:
        return load(self.b, insns, prog_type, license, prog_flags=prog_flags,
                    expected_attach_type=expected_attach_type)

    def run(self, fd: int, data: bytes = bytes(64)) -> int:
        return run(self.b, fd, data)

    def run_out(self, fd: int, data: bytes = bytes(64)) -> tuple[int, bytes]:
        """Test-run; (u32 retval, data_out)."""
        r = self.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=data, repeat=1))
        return int(r.retval), bytes(r.data_out)

    def close_fd(self, fd: int) -> None:
        self.rt.close(fd)

    def close(self) -> None:
        self.rt.close_all()


class KernelBackend:
    """The real kernel's bpf() (root on Linux); fds are real and closed by close()."""

    name = "kernel"

    def __init__(self) -> None:
        from pyebpf.testing.kernel import possible_cpus

        self.fds: list[int] = []
        self.nr_cpus = possible_cpus()

    def _keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def map_create(self, map_type: int, key_size: int, value_size: int, max_entries: int,
                   map_flags: int = 0) -> int:
        from pyebpf.testing.kernel import kernel_bpf

        return self._keep(kernel_bpf(Cmd.MAP_CREATE, MapCreateAttr(
            map_type=map_type, key_size=key_size, value_size=value_size,
            max_entries=max_entries, map_flags=map_flags)))

    def update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        from pyebpf.testing.kernel import kernel_bpf

        kernel_bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key, value=value,
                                                     flags=flags))

    def lookup(self, fd: int, key: bytes, value_size: int) -> bytes:
        from pyebpf.testing.kernel import kernel_bpf

        return bytes(kernel_bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key),
                                key_size=len(key), value_size=value_size,
                                map_type=MapType.ARRAY))

    def delete(self, fd: int, key: bytes) -> None:
        from pyebpf.testing.kernel import kernel_bpf

        kernel_bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=key))

    def freeze(self, fd: int) -> None:
        from pyebpf import MapFdAttr
        from pyebpf.testing.kernel import kernel_bpf

        kernel_bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd))

    def load(self, insns: list[Insn], prog_type: int = ProgType.XDP, license: str = "GPL",
             prog_flags: int = 0, expected_attach_type: int = 0,
             funcs: list[tuple[int, str, int]] | None = None) -> int:
        """PROG_LOAD; ``funcs`` = [(insn_off, name, linkage)] adds the BTF func_info
        the kernel needs for callbacks (linkage 0: static, 1: global)."""
        import ctypes
        import struct

        from pyebpf import BpfError, encode
        from pyebpf.testing.kernel import kernel_bpf_raw

        raw = encode(insns)
        keep: list[Any] = []

        def buf(data: bytes) -> int:
            b = ctypes.create_string_buffer(data, max(len(data), 1))
            keep.append(b)
            return ctypes.addressof(b)

        log = ctypes.create_string_buffer(1 << 20)
        attr = bytearray(160)
        struct.pack_into("<IIQQIIQII", attr, 0, prog_type, len(raw) // 8, buf(raw),
                         buf(license.encode() + b"\0"), 1, len(log), ctypes.addressof(log), 0,
                         prog_flags)
        struct.pack_into("<I", attr, 68, expected_attach_type)
        btf_fd = -1
        if funcs:
            btf_fd = self._btf(funcs)
            recs = b"".join(struct.pack("<II", off, 3 + i) for i, (off, _, _) in enumerate(funcs))
            struct.pack_into("<IIQI", attr, 72, btf_fd, 8, buf(recs), len(funcs))
        fd, err = kernel_bpf_raw(5, bytes(attr))
        if btf_fd >= 0:
            import os

            os.close(btf_fd)
        if err:
            raise BpfError(err, "kernel PROG_LOAD: " + log.value.decode()[-600:])
        return self._keep(fd)

    @staticmethod
    def _btf(funcs: list[tuple[int, str, int]]) -> int:
        """A BTF object: int, one FUNC_PROTO (int f(void)) and a FUNC per entry."""
        import ctypes
        import struct

        from pyebpf import BpfError
        from pyebpf.testing.kernel import kernel_bpf_raw

        strings = b"\0int\0"
        types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)
        types += struct.pack("<III", 0, 13 << 24, 1)  # FUNC_PROTO, no params, returns int
        for _, name, linkage in funcs:
            off = len(strings)
            strings += name.encode() + b"\0"
            types += struct.pack("<III", off, (12 << 24) | linkage, 2)
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
        blob = hdr + types + strings
        b = ctypes.create_string_buffer(blob, len(blob))
        log = ctypes.create_string_buffer(65536)
        attr = struct.pack("<QQIII", ctypes.addressof(b), ctypes.addressof(log), len(blob),
                           len(log), 1).ljust(160, b"\0")
        fd, err = kernel_bpf_raw(18, attr)
        if err:
            raise BpfError(err, "kernel BTF_LOAD: " + log.value.decode())
        return fd

    def run(self, fd: int, data: bytes = bytes(64)) -> int:
        import ctypes
        import struct

        from pyebpf import BpfError
        from pyebpf.testing.kernel import _syscall

        d = ctypes.create_string_buffer(data, len(data))
        o = ctypes.create_string_buffer(len(data) + 20000)
        attr = ctypes.create_string_buffer(struct.pack(
            "<IIIIQQII", fd, 0, len(data), len(o), ctypes.addressof(d), ctypes.addressof(o), 1,
            0).ljust(160, b"\0"), 160)
        _, err = _syscall(10, attr, 160)
        if err:
            raise BpfError(err, "kernel PROG_TEST_RUN")
        self.last_out = o.raw[:struct.unpack_from("<I", attr.raw, 12)[0]]
        return int(struct.unpack_from("<I", attr.raw, 4)[0])

    def run_out(self, fd: int, data: bytes = bytes(64)) -> tuple[int, bytes]:
        """Test-run; (u32 retval, data_out)."""
        retval = self.run(fd, data)
        return retval, self.last_out

    def close_fd(self, fd: int) -> None:
        import os

        self.fds.remove(fd)
        os.close(fd)

    def close(self) -> None:
        import os

        while self.fds:
            os.close(self.fds.pop())


def get_value(p: Asm, map_fd: int, into: int, key: int = 0, tag: str = "v") -> Asm:
    """``into = &map[key]`` (u32 key), returning 0xdead from the program when absent.
    Clobbers r0-r5 and the stack slot at r10-4."""
    p(st(4, 10, -4, key), movr(2, 10), alu(ADD, 2, -4), ld_map_fd(1, map_fd), call(1))
    p.jmp(JNE, 0, 0, f"have_{tag}")
    p(mov(0, 0xDEAD), exit_())
    p.label(f"have_{tag}")
    return p(movr(into, 0))


def s32(v: int) -> int:
    """A test-run retval (u32) as the signed int a C program would see."""
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def u64s(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data) - 7, 8)]
