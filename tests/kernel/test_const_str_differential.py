"""Constant strings and bpf_snprintf's format at load, against the real kernel:
check_reg_const_str (a read-only, frozen single-element array, a constant
offset, a NUL before the value ends) and check_bpf_snprintf_call (the format
checked for data_len / 8 arguments: "Invalid format string"). Each program
loads on both; the verdict, errno and reason must be the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, MapCreateAttr, MapType, ProgType, Runtime, bpf
from pyebpf.attr import MapElemAttr, MapFdAttr, ProgLoadAttr
from pyebpf.isa import Insn, encode
from pyebpf.testing.kernel import kernel_bpf, kernel_close
from pyebpf.testing.kernel_prog import kernel_prog_load

pytestmark = pytest.mark.kernel

RDONLY_PROG = 1 << 7
VALUE_SIZE = 32


def _map(call: Callable[[int, Any], Any], text: bytes, *, map_type: int = MapType.ARRAY,
         entries: int = 1, flags: int = RDONLY_PROG, freeze: bool = True) -> int:
    fd = int(call(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=4,
                                                value_size=VALUE_SIZE, max_entries=entries,
                                                map_flags=flags)))
    for key in range(entries):
        call(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key.to_bytes(4, "little"),
                                              value=text.ljust(VALUE_SIZE, b"\0")[:VALUE_SIZE]))
    if freeze:
        call(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd))
    return fd


def _snprintf(fmt: list[Insn], data_len: int) -> list[Insn]:
    """bpf_snprintf(NULL, 0, <r3 from fmt>, &(u64[2]){0}, data_len)."""
    return [
        Insn(0x7A, 10, 0, -8, 0), Insn(0x7A, 10, 0, -16, 0),  # *(u64 *)(r10 - 8/16) = 0
        *fmt,
        Insn(0xB7, 1, 0, 0, 0), Insn(0xB7, 2, 0, 0, 0),
        Insn(0xBF, 4, 10), Insn(0x07, 4, 0, 0, -16), Insn(0xB7, 5, 0, 0, data_len),
        Insn(0x85, 0, 0, 0, 165), Insn(0xB7, 0, 0, 0, 0), Insn(0x95),
    ]


def _direct(fd: int, off: int = 0) -> list[Insn]:
    """r3 = &value + off (BPF_PSEUDO_MAP_VALUE)."""
    return [Insn(0x18, 3, 2, 0, fd), Insn(0, 0, 0, 0, off)]


def _looked_up(fd: int, key: int = 0, variable: bool = False) -> list[Insn]:
    """r3 = bpf_map_lookup_elem(map, &key) (NULL: exit), plus (skb->len & 1) if
    variable (r1 is still the ctx when this runs)."""
    out = [
        Insn(0xBF, 6, 1),
        Insn(0x62, 10, 0, -20, key), Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -20),
        Insn(0x18, 1, 1, 0, fd), Insn(0), Insn(0x85, 0, 0, 0, 1),
        Insn(0x55, 0, 0, 2, 0), Insn(0xB7, 0, 0, 0, 0), Insn(0x95),
        Insn(0xBF, 3, 0),
    ]
    if variable:
        out += [Insn(0x61, 1, 6, 0, 0), Insn(0x57, 1, 0, 0, 1), Insn(0x0F, 3, 1)]
    return out


#: name -> (map options, program builder(fd), data_len)
CASES: dict[str, tuple[dict[str, Any], Callable[[int], list[Insn]], int]] = {
    "valid": ({"text": b"%d and %s"}, _direct, 16),
    "valid_offset": ({"text": b"xx%llx"}, lambda fd: _direct(fd, 2), 8),
    "too_few_args": ({"text": b"%d %d"}, _direct, 8),
    "bad_conversion": ({"text": b"%q"}, _direct, 8),
    "precision": ({"text": b"%.2d"}, _direct, 8),
    "control_byte": ({"text": b"a\x01b"}, _direct, 0),
    "percent_percent": ({"text": b"100%%"}, _direct, 0),
    "data_len_not_u64s": ({"text": b"%d"}, _direct, 12),
    "not_terminated": ({"text": b"x" * VALUE_SIZE}, _direct, 0),
    "not_frozen": ({"text": b"%d", "freeze": False}, _direct, 8),
    "writable": ({"text": b"%d", "flags": 0}, _direct, 8),
    "two_entries": ({"text": b"%d", "entries": 2}, _looked_up, 8),
    "variable_offset": ({"text": b"%d"}, lambda fd: _looked_up(fd, variable=True), 8),
    "hash_map": ({"text": b"%d", "map_type": MapType.HASH}, _looked_up, 8),
    "lookup_one_entry": ({"text": b"%u"}, _looked_up, 8),
}


def _outcome(call: Callable[[int, Any], Any], load: Callable[[bytes], int],
             close: Callable[[int], None], name: str) -> str:
    options, build, data_len = CASES[name]
    fd = _map(call, **options)
    try:
        prog = load(encode(_snprintf(build(fd), data_len)))
        close(prog)
        return "accept"
    except BpfError as e:
        return f"{e.errno}: {e.strerror}"
    finally:
        close(fd)


@pytest.mark.parametrize("name", list(CASES))
def test_const_str_and_format_checks_match_kernel(name: str) -> None:
    kernel = _outcome(kernel_bpf, lambda insns: kernel_prog_load(ProgType.SOCKET_FILTER, insns),
                      kernel_close, name)
    rt = Runtime()
    rt.verifier = "kernel"

    def call(cmd: int, attr: Any) -> Any:
        return bpf(cmd, attr, runtime=rt)

    ours = _outcome(call, lambda insns: int(call(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.SOCKET_FILTER, insns=insns, license="GPL"))), rt.close, name)
    if name == "data_len_not_u64s":  # the kernel logs nothing: only the errno compares
        ours, kernel = ours.split(":")[0], kernel.split(":")[0]
    assert ours == kernel
