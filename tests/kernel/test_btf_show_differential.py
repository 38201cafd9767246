"""bpf_snprintf_btf against the real kernel: the same object rendered as the same
BTF type gives the same text, length and errors.

The type ids differ (the kernel's vmlinux BTF against pyebpf's own), so each
case names a type present in both with the same shape (members, offsets and
member type names, recursively: checked first), and each side loads the
program with its own id. The object's bytes sit in an array map; a socket
filter's test run renders it into another map's value (pre-filled with 0xaa,
so the NUL and what stays untouched show) and returns the helper's result.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from pyebpf import Cmd, MapCreateAttr, MapType, ProgType, Runtime, asm, bpf
from pyebpf.attr import MapElemAttr, ProgLoadAttr, TestRunAttr
from pyebpf.btf import Btf, BtfKind
from pyebpf.helpers.btf_show import BTF_F_COMPACT, BTF_F_NONAME, BTF_F_PTR_RAW, BTF_F_ZERO
from pyebpf.isa import Insn, encode
from pyebpf.kernel_btf import kernel_btf
from pyebpf.testing.kernel import kernel_bpf, kernel_close
from pyebpf.testing.kernel_prog import kernel_prog_load, kernel_test_run

pytestmark = pytest.mark.kernel

DATA_SIZE, OUT_SIZE = 64, 512
C, N, R, Z = BTF_F_COMPACT, BTF_F_NONAME, BTF_F_PTR_RAW, BTF_F_ZERO


def _vmlinux() -> Btf:
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        return Btf.parse(f.read())


def _find(btf: Btf, spec: str) -> int:
    """A type by spelling: "struct list_head", "u32", "char[16]"."""
    if spec == "void *":
        return next(t.id for t in btf if t.kind is BtfKind.PTR and t.type == 0)
    if spec.endswith("]"):
        elem, n = spec[:-1].split("[")
        for t in btf:
            if t.kind is BtfKind.ARRAY and t.array is not None and t.array.nelems == int(n) \
                    and btf.type(t.array.type).name == elem:
                return t.id
        raise LookupError(spec)
    kinds = {"struct": BtfKind.STRUCT, "union": BtfKind.UNION, "enum": BtfKind.ENUM}
    kind, _, name = spec.partition(" ")
    if kind not in kinds:
        kind, name = "", spec
    want = kinds.get(kind)
    found = [t for t in btf.find_all(name) if want is None or t.kind is want]
    if not found:
        raise LookupError(spec)
    return found[0].id


def _shape(btf: Btf, tid: int, depth: int = 0) -> Any:
    """What the rendering depends on: kinds, names, sizes, offsets, encodings."""
    t = btf.type(tid)
    if depth > 6 or t.kind is BtfKind.UNKN:
        return (t.kind,)
    if t.kind is BtfKind.INT:
        return (t.kind, t.name, t.size, t.int_encoding, t.int_bits, t.int_offset)
    if t.kind in (BtfKind.ENUM, BtfKind.ENUM64):
        return (t.kind, t.name, t.size, t.kflag,
                tuple((e.name, e.value & 0xFFFF_FFFF) for e in t.enum_values))
    if t.kind in (BtfKind.STRUCT, BtfKind.UNION):
        return (t.kind, t.name, t.size, tuple(
            (m.name, m.bit_offset, m.bitfield_size, _shape(btf, m.type, depth + 1))
            for m in t.members))
    if t.kind is BtfKind.ARRAY:
        assert t.array is not None
        return (t.kind, t.array.nelems, _shape(btf, t.array.type, depth + 1))
    if t.kind is BtfKind.PTR:
        target = btf.type(t.type)
        return (t.kind, target.kind, target.name)  # only the name shows
    return (t.kind, t.name, _shape(btf, t.type, depth + 1))


def _program(data_fd: int, out_fd: int, type_id: int, flags: int, out_size: int) -> bytes:
    """r0 = bpf_snprintf_btf(out, out_size, &(struct btf_ptr){data, type_id}, 16, flags)."""
    head = [
        Insn(0x62, 10, 0, -4, 0),  # *(u32 *)(r10 - 4) = 0
        Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),
        Insn(0x18, 1, 1, 0, data_fd), Insn(0),
        Insn(0x85, 0, 0, 0, 1),
        Insn(0x55, 0, 0, 2, 0), Insn(0xB7, 0, 0, 0, 0xDEAD), Insn(0x95),
        Insn(0xBF, 6, 0),
        Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),
        Insn(0x18, 1, 1, 0, out_fd), Insn(0),
        Insn(0x85, 0, 0, 0, 1),
        Insn(0x55, 0, 0, 2, 0), Insn(0xB7, 0, 0, 0, 0xDEAD), Insn(0x95),
        Insn(0xBF, 7, 0),
    ]
    body = asm(f"stxdw [%r10-24], %r6\nstw [%r10-16], {type_id}\nstw [%r10-12], 0\n"
               f"mov %r1, %r7\nmov %r2, {out_size}\nmov %r3, %r10\nadd %r3, -24\n"
               f"mov %r4, 16\nmov %r5, {flags}\ncall 149\nexit")
    return encode(head + list(body))


def _render(call: Callable[[int, Any], Any], load: Callable[[bytes], int],
            run: Callable[[int], int], close: Callable[[int], None], type_id: int,
            data: bytes, flags: int, out_size: int) -> tuple[int, bytes]:
    fds = [int(call(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                                  value_size=size, max_entries=1)))
           for size in (DATA_SIZE, OUT_SIZE)]
    try:
        call(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fds[0], key=bytes(4),
                                              value=data.ljust(DATA_SIZE, b"\0")))
        call(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fds[1], key=bytes(4),
                                              value=b"\xaa" * OUT_SIZE))
        prog = load(_program(fds[0], fds[1], type_id, flags, out_size))
        try:
            retval = run(prog)
        finally:
            close(prog)
        out = bytes(call(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fds[1], key=bytes(4))))
    finally:
        for fd in fds:
            close(fd)
    return retval, out


def _kernel(type_id: int, data: bytes, flags: int, out_size: int) -> tuple[int, bytes]:
    return _render(kernel_bpf, lambda insns: kernel_prog_load(ProgType.SOCKET_FILTER, insns),
                   lambda fd: kernel_test_run(fd, bytes(64)).retval, kernel_close,
                   type_id, data, flags, out_size)


def _pyebpf(type_id: int, data: bytes, flags: int, out_size: int) -> tuple[int, bytes]:
    rt = Runtime()
    rt.verifier = "kernel"

    def call(cmd: int, attr: Any) -> Any:
        return bpf(cmd, attr, runtime=rt)

    return _render(call, lambda insns: int(call(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.SOCKET_FILTER, insns=insns, license="GPL"))),
        lambda fd: call(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(64))).retval,
        rt.close, type_id, data, flags, out_size)


S = struct.Struct
CASES: list[tuple[str, bytes]] = [
    ("int", S("<i").pack(1234)), ("int", S("<i").pack(-5)), ("int", bytes(4)),
    ("unsigned int", S("<I").pack(0xFFFF_FFFF)), ("u32", S("<I").pack(7)),
    ("long long unsigned int", S("<Q").pack(1 << 63)), ("s64", S("<q").pack(-2)),
    ("_Bool", b"\x01"), ("char", b"A"), ("char", b"\x07"), ("unsigned char", b"\xff"),
    ("char[16]", b"pyebpf\0junk"), ("char[16]", b"\x01\x02ab"), ("char[16]", bytes(16)),
    ("struct ack_sample", S("<IiI").pack(3, -7, 0)),
    ("struct ack_sample", bytes(12)),
    ("struct list_head", S("<QQ").pack(0xFFFF_8880_1234_5678, 0)),
    ("struct list_head", bytes(16)),
    ("struct bpf_struct_ops_common_value", S("<iI").pack(5, 3)),
    ("struct bpf_struct_ops_common_value", S("<iI").pack(0, 9)),
    ("enum bpf_struct_ops_state", S("<I").pack(1)),
    ("struct prog_test_member", S("<ii").pack(0, 4)),
    ("struct prog_test_member", S("<ii").pack(2, 0)),
    ("struct in6_addr", bytes.fromhex("20010db8000000000000000000000001")),
    ("struct in6_addr", b"abcdefghijklmnop"),
    ("refcount_t", S("<i").pack(1)),
    ("void *", S("<Q").pack(0xFFFF_8880_1234_5678)), ("void *", bytes(8)),
]
FLAGS = [0, C, N, R, Z, C | N, C | Z, C | R | Z, C | N | Z]


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    return _vmlinux()


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize(("spec", "data"), CASES, ids=[f"{s}-{d.hex()[:16]}" for s, d in CASES])
def test_snprintf_btf_text_matches_kernel(vmlinux: Btf, spec: str, data: bytes,
                                          flags: int) -> None:
    ours_btf = kernel_btf()
    kid, pid = _find(vmlinux, spec), _find(ours_btf, spec)
    assert _shape(vmlinux, kid) == _shape(ours_btf, pid), f"{spec} differs in shape"
    if not flags & R and spec in ("struct list_head", "void *") and any(data):
        pytest.skip("a hashed pointer's text depends on the kernel's boot-time key")
    assert _pyebpf(pid, data, flags, OUT_SIZE) == _kernel(kid, data, flags, OUT_SIZE)


@pytest.mark.parametrize("out_size", [1, 5, 17, 18, 19])
def test_snprintf_btf_truncation_matches_kernel(vmlinux: Btf, out_size: int) -> None:
    data = S("<IiI").pack(3, -7, 9)
    kid, pid = _find(vmlinux, "struct ack_sample"), _find(kernel_btf(), "struct ack_sample")
    assert _pyebpf(pid, data, C, out_size) == _kernel(kid, data, C, out_size)


@pytest.mark.parametrize(("type_id", "flags"), [(0, 0), (-1, 0), (1 << 30, 0), (1, 16)],
                         ids=["id0", "negative", "no_such_id", "unknown_flag"])
def test_snprintf_btf_errors_match_kernel(type_id: int, flags: int) -> None:
    data = bytes(8)
    assert _pyebpf(type_id, data, flags, OUT_SIZE) == _kernel(type_id, data, flags, OUT_SIZE)


def test_snprintf_btf_hashes_pointers_unless_raw(vmlinux: Btf) -> None:
    """Without BTF_F_PTR_RAW a pointer prints as a 32-bit hash in 16 hex digits."""
    data = S("<QQ").pack(0xFFFF_8880_1234_5678, 0)
    kid, pid = _find(vmlinux, "struct list_head"), _find(kernel_btf(), "struct list_head")

    def masked(res: tuple[int, bytes]) -> tuple[int, bytes]:
        text = res[1]
        at = text.index(b"0x00000000") + 10
        return res[0], text[:at] + b"????????" + text[at + 8:]

    assert masked(_pyebpf(pid, data, C, OUT_SIZE)) == masked(_kernel(kid, data, C, OUT_SIZE))



@pytest.mark.parametrize("kind", [BtfKind.FUNC, BtfKind.FUNC_PROTO])
def test_kinds_without_a_show_match_kernel(vmlinux: Btf, kind: BtfKind) -> None:
    """btf_df_show: "<unsupported kind:N>" whatever the data (no name shown)."""
    kid = next(t.id for t in vmlinux if t.kind is kind)
    pid = next(t.id for t in kernel_btf() if t.kind is kind)
    assert _pyebpf(pid, bytes(8), C, OUT_SIZE) == _kernel(kid, bytes(8), C, OUT_SIZE)


#: Loads of bpf_snprintf_btf calls: the verifier's view of its arguments.
LOADS = {
    "uninit_str": "stdw [%r10-16], 0\nstdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -64\n"
                  "mov %r2, 32\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 16\nmov %r5, 0\n"
                  "call 149\nmov %r0, 0\nexit",
    "null_str": "stdw [%r10-16], 0\nstdw [%r10-8], 0\nmov %r1, 0\nmov %r2, 0\n"
                "mov %r3, %r10\nadd %r3, -16\nmov %r4, 16\nmov %r5, 0\ncall 149\n"
                "mov %r0, 0\nexit",
    "str_past_stack": "stdw [%r10-16], 0\nstdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\n"
                      "mov %r2, 32\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 16\nmov %r5, 0\n"
                      "call 149\nmov %r0, 0\nexit",
}


@pytest.mark.parametrize("name", list(LOADS))
def test_snprintf_btf_argument_checks_match_kernel(name: str) -> None:
    from pyebpf import BpfError

    insns = encode(asm(LOADS[name]))
    try:
        kernel_close(kernel_prog_load(ProgType.SOCKET_FILTER, insns))
        kernel = "accept"
    except BpfError as e:
        kernel = f"{e.errno}: {e.strerror}"
    rt = Runtime()
    rt.verifier = "kernel"
    try:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insns=insns,
                                        license="GPL"), runtime=rt)
        ours = "accept"
    except BpfError as e:
        ours = f"{e.errno}: {e.strerror}"
    assert ours == kernel
