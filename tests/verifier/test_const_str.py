"""check_reg_const_str and check_bpf_snprintf_call: bpf_snprintf's format is a
NUL-terminated string in a frozen read-only single-element array, checked at
load for the number of u64 arguments data_len holds."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf import Cmd, MapCreateAttr, MapType, ProgType, Runtime, bpf
from pyebpf.attr import MapElemAttr, MapFdAttr, ProgLoadAttr
from pyebpf.errors import VerifierError
from pyebpf.isa import Insn

RDONLY_PROG = 1 << 7


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime()
    runtime.verifier = "kernel"
    return runtime


def _fmt_map(rt: Runtime, text: bytes, *, flags: int = RDONLY_PROG, freeze: bool = True) -> int:
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=16,
                                           max_entries=1, map_flags=flags), runtime=rt)
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4), value=text.ljust(16, b"\0")),
        runtime=rt)
    if freeze:
        bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=fd), runtime=rt)
    return fd


def _load(rt: Runtime, fd: int, data_len: int) -> int:
    """bpf_snprintf(NULL, 0, &fmt, &(u64[2]){0}, data_len)."""
    insns = [
        Insn(0x7A, 10, 0, -8, 0), Insn(0x7A, 10, 0, -16, 0),
        Insn(0x18, 3, 2, 0, fd), Insn(0, 0, 0, 0, 0),
        Insn(0xB7, 1, 0, 0, 0), Insn(0xB7, 2, 0, 0, 0),
        Insn(0xBF, 4, 10), Insn(0x07, 4, 0, 0, -16), Insn(0xB7, 5, 0, 0, data_len),
        Insn(0x85, 0, 0, 0, 165), Insn(0xB7, 0, 0, 0, 0), Insn(0x95),
    ]
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insns=insns,
                                               license="GPL", log_level=1, log_size=1 << 16),
                   runtime=rt))


def _reject(rt: Runtime, fd: int, data_len: int) -> VerifierError:
    with pytest.raises(VerifierError) as exc:
        _load(rt, fd, data_len)
    return exc.value


def test_format_with_as_many_conversions_as_arguments_loads(rt: Runtime) -> None:
    _load(rt, _fmt_map(rt, b"%d and %s"), 16)


@pytest.mark.parametrize(("text", "data_len"), [
    (b"%d %d", 8), (b"%q", 8), (b"%.2d", 8), (b"tab\x01", 0), (b"%d", 0)])
def test_bad_format_is_invalid_format_string_at_load(rt: Runtime, text: bytes,
                                                      data_len: int) -> None:
    err = _reject(rt, _fmt_map(rt, text), data_len)
    assert (err.errno, err.strerror) == (errno.EINVAL, "Invalid format string")
    assert err.log.splitlines()[-2] == "Invalid format string"


def test_data_len_not_a_multiple_of_8_is_einval_with_nothing_logged(rt: Runtime) -> None:
    err = _reject(rt, _fmt_map(rt, b"%d"), 12)
    assert err.errno == errno.EINVAL
    assert "call bpf_snprintf#165" in err.log.splitlines()[-2]


def test_unterminated_string_is_refused(rt: Runtime) -> None:
    err = _reject(rt, _fmt_map(rt, b"x" * 16), 0)
    assert (err.errno, err.strerror) == (errno.EINVAL, "string is not zero-terminated")


@pytest.mark.parametrize("kw", [{"freeze": False}, {"flags": 0}])
def test_string_in_a_writable_map_is_refused(rt: Runtime, kw: dict[str, Any]) -> None:
    err = _reject(rt, _fmt_map(rt, b"%d", **kw), 8)
    assert (err.errno, err.strerror) == (errno.EACCES, "R3 does not point to a readonly map'")
