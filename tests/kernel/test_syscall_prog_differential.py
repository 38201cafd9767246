"""SYSCALL-program helpers on pyebpf and on the kernel: the same programs
(tests/helpers/syscall_prog_scenarios.py) test-run on both. Results that name
kernel objects differ by nature (fd numbers, vmlinux BTF ids, kallsyms
addresses: pyebpf has its own vmlinux), so those compare as "a valid one";
errnos, zeroed outputs and test-run retvals compare exactly."""

from __future__ import annotations

import ctypes
import errno
import struct

import pytest

from helpers import syscall_prog_scenarios as S
from helpers._build import KernelBackend, PyBackend
from pyebpf import BpfError, Cmd, MapType, ProgType
from pyebpf.attr import TestRunAttr
from pyebpf.btf import BtfKind
from pyebpf.isa.asm import asm
from pyebpf.testing.kernel import _syscall

from .harness import STEPS

pytestmark = pytest.mark.kernel

SLEEPABLE = 1 << 4


def _kernel_run(fd: int, ctx: bytes) -> tuple[int, bytes]:
    """PROG_TEST_RUN of a SYSCALL program with ctx_in only; (retval, ctx after)."""
    buf = ctypes.create_string_buffer(ctx, len(ctx))
    attr = bytearray(80)
    struct.pack_into("<I", attr, 0, fd)
    struct.pack_into("<IxxxxQ", attr, 40, len(ctx), ctypes.addressof(buf))
    raw = ctypes.create_string_buffer(bytes(attr), len(attr))
    _, err = _syscall(Cmd.PROG_TEST_RUN, raw, len(attr))
    assert not err, err
    return struct.unpack_from("<I", raw.raw, 4)[0], buf.raw


def _both(text: str, ctx_size: int, prep: object = None,
          after: object = None) -> list[tuple[int, bytes]]:
    """Run on the kernel and on pyebpf: [(r0 the program stored, the rest of its ctx)].
    ``prep(side)`` gives the text's format fields; ``after(side)`` inspects the side
    before it is closed."""
    out = []
    k, py = KernelBackend(), PyBackend()
    try:
        for side in (k, py):
            fill = prep(side) if prep is not None else {}  # type: ignore[operator]
            fd = side.load(asm(text.format(**fill)), ProgType.SYSCALL, prog_flags=SLEEPABLE)
            if side is k:
                _, ctx = _kernel_run(fd, bytes(ctx_size))
            else:
                buf = bytearray(ctx_size)
                py.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, ctx_in=buf))
                ctx = bytes(buf)
            out.append((struct.unpack_from("<q", ctx)[0], ctx[8:]))
            if after is not None:
                after(side)  # type: ignore[operator]
    finally:
        k.close()
        py.close()
    STEPS[0] += 1
    return out


@pytest.mark.parametrize(("name", "kind", "flags", "size"), [
    (b"task_struct\0", BtfKind.STRUCT, 0, None),
    (b"void\0", BtfKind.STRUCT, 0, None),
    (b"task_struct\0", 0, 0, None),
    (b"task_struct\0", BtfKind.UNION, 0, None),
    (b"no_such_type_xyz\0", BtfKind.STRUCT, 0, None),
    (b"task_struct\0", BtfKind.STRUCT, 1, None),
    (b"task_struct\0", BtfKind.STRUCT, 0, 11),
    (b"\0", BtfKind.STRUCT, 0, None),
], ids=str)
def test_btf_find_by_name_kind(name: bytes, kind: int, flags: int, size: int | None) -> None:
    text = S.lookup_text(167, name, kind, f"mov %r4, {flags}\n", size)
    (kr0, _), (pr0, _) = _both(text.replace("{", "{{").replace("}", "}}"), 16)
    assert (kr0 > 0) == (pr0 > 0)
    if kr0 <= 0:
        assert pr0 == kr0


@pytest.mark.parametrize(("name", "flags"), [
    (b"bpf_fentry_test1\0", 0), (b"no_such_function_xyz\0", 0), (b"bpf_fentry_test1\0", 1),
    (b"bpf_fentry_test1", 0), (b"\0", 0),
], ids=str)
def test_kallsyms_lookup_name(name: bytes, flags: int) -> None:
    text = S.lookup_text(179, name, flags, "mov %r4, %r10\nadd %r4, -72\n")
    (kr0, kres), (pr0, pres) = _both(text.replace("{", "{{").replace("}", "}}"), 16)
    assert pr0 == kr0
    kaddr, paddr = struct.unpack_from("<Q", kres)[0], struct.unpack_from("<Q", pres)[0]
    assert (kaddr == 0) == (paddr == 0)
    if kaddr:
        assert kaddr >> 47 == paddr >> 47 == (1 << 17) - 1  # kernel text addresses


@pytest.mark.parametrize("cmd", [Cmd.MAP_LOOKUP_ELEM, Cmd.OBJ_PIN, Cmd.PROG_ATTACH,
                                 Cmd.MAP_GET_NEXT_KEY])
def test_sys_bpf_refuses_other_commands(cmd: int) -> None:
    text, size = S.sys_bpf_text(cmd, bytes(32))
    (kr0, _), (pr0, _) = _both(text.replace("{", "{{").replace("}", "}}"), size)
    assert pr0 == kr0 == -errno.EINVAL


@pytest.mark.parametrize(("value_size", "ok"), [(8, True), (0, False)])
def test_sys_bpf_map_create(value_size: int, ok: bool) -> None:
    attr = struct.pack("<IIII", MapType.ARRAY, 4, value_size, 2)
    text, size = S.sys_bpf_text(Cmd.MAP_CREATE, attr)
    (kr0, _), (pr0, _) = _both(text.replace("{", "{{").replace("}", "}}"), size)
    assert (kr0 > 0, pr0 > 0) == (ok, ok)
    if not ok:
        assert pr0 == kr0


def test_sys_bpf_test_run_is_refused_alike() -> None:
    """A program's bpf_sys_bpf doesn't test-run (kern_sys_bpf does, for loaders run
    by the kernel itself)."""
    def prep(side: PyBackend | KernelBackend) -> dict[str, int]:
        return {"inner": side.load(asm("mov %r0, 42\nexit"), ProgType.SYSCALL,
                                   prog_flags=SLEEPABLE)}

    text, size = S.sys_bpf_text(Cmd.PROG_TEST_RUN, bytes(80), "mov %r2, {inner}\n"
                                "stxw [%r10-80], %r2\n")
    text = text.replace("{", "{{").replace("}", "}}").replace("{{inner}}", "{inner}")
    (kr0, _), (pr0, _) = _both(text, size, prep)
    assert pr0 == kr0 == -errno.EINVAL


def test_sys_close_of_a_bad_fd() -> None:
    text = "mov %r6, %r1\nmov %r1, 100000\ncall 168\nstxdw [%r6+0], %r0\nmov %r0, 0\nexit"
    (kr0, _), (pr0, _) = _both(text.replace("{", "{{").replace("}", "}}"), 8)
    assert pr0 == kr0 == -errno.EBADF


def test_sys_bpf_is_refused_without_bpf_f_sleepable_alike() -> None:
    text, _ = S.sys_bpf_text(Cmd.MAP_CREATE, bytes(16))
    got = []
    for side in (KernelBackend(), PyBackend()):
        try:
            side.load(asm(text), ProgType.SYSCALL)
            got.append("ok")
        except BpfError as e:
            got.append(e.errno)
        finally:
            side.close()
    assert got[0] == got[1]


@pytest.mark.parametrize(("key", "flags"), [(1, 0), (5, 0), (1, 1)],
                         ids=["in_range", "past_max_entries", "noexist_flag"])
def test_sys_bpf_update_reads_key_and_value_from_program_memory(key: int, flags: int) -> None:
    """MAP_UPDATE_ELEM whose attr, key and value are on the program's stack: the same
    result and, after it, the same map contents on both."""
    maps: dict[str, int] = {}

    def prep(side: PyBackend | KernelBackend) -> dict[str, int]:
        maps[side.name] = side.map_create(MapType.ARRAY, 4, 8, 2)
        return {"map_fd": maps[side.name]}

    setup = (f"mov %r2, {key}\nstxdw [%r10-80], %r2\nlddw %r2, 0xBEEF\n"
             "stxdw [%r10-72], %r2\nmov %r2, %r10\nadd %r2, -80\nstxdw [%r10-24], %r2\n"
             "mov %r2, %r10\nadd %r2, -72\nstxdw [%r10-16], %r2\n"
             "mov %r2, {map_fd}\nstxw [%r10-32], %r2\n")
    attr = struct.pack("<I4xQQQ", 0, 0, 0, flags)
    text, size = S.sys_bpf_text(Cmd.MAP_UPDATE_ELEM, attr, "@SETUP@")
    text = text.replace("{", "{{").replace("}", "}}").replace("@SETUP@", setup)
    values = {}

    def after(side: PyBackend | KernelBackend) -> None:
        values[side.name] = side.lookup(maps[side.name], struct.pack("<I", 1), 8)

    (kr0, _), (pr0, _) = _both(text, size, prep, after)
    assert pr0 == kr0
    assert values["pyebpf"] == values["kernel"]
