"""BPF_BTF_LOAD against the real kernel: the same blobs, well formed and broken, the
same errno; and what OBJ_GET_INFO_BY_FD says of the kernel's own BTF's name."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from pyebpf import BpfError, Cmd, Runtime, bpf
from pyebpf.attr import BtfLoadAttr
from pyebpf.btf import FuncLinkage
from pyebpf.btf_build import BtfBuilder
from pyebpf.testing.kernel import kernel_bpf, kernel_close

from .harness import STEPS

pytestmark = pytest.mark.kernel


def blob() -> bytes:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    s = b.struct("pair", [("a", i), ("b", b.ptr(i))])
    b.func("f", b.func_proto(i, [("p", b.ptr(s))]), FuncLinkage.GLOBAL)
    return b.encode()


def _set(data: bytes, off: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, off, value)
    return bytes(out)


#: name -> the blob handed over.
CASES: dict[str, Callable[[], bytes]] = {
    "valid": blob,
    "short": lambda: blob()[:6],
    "empty": lambda: b"",
    "big_endian_magic": lambda: b"\xeb\x9f" + blob()[2:],
    "bad_magic": lambda: _set(blob(), 0, "<H", 0x1234),
    "version_2": lambda: _set(blob(), 2, "<B", 2),
    "flags": lambda: _set(blob(), 3, "<B", 1),
    "hdr_extra_nonzero": lambda: _set(blob()[:24] + b"\0\0\0\x01" + blob()[24:], 4, "<I", 28),
    "hdr_extra_zero": lambda: _set(blob()[:24] + bytes(4) + blob()[24:], 4, "<I", 28),
    "hdr_len_short": lambda: _set(blob(), 4, "<I", 16),
    "hdr_len_past_end": lambda: _set(blob(), 4, "<I", 1 << 20),
    "type_off_unaligned": lambda: _set(blob(), 8, "<I", 2),
    "str_not_nul_terminated": lambda: blob()[:-1] + b"x",
    "unknown_kind": lambda: _set(blob(), 24 + 4, "<I", 0x1F << 24),
    "missing_type_ref": lambda: _set(blob(), 24 + 16 + 8, "<I", 999),  # the PTR's target
    "name_off_past_strings": lambda: _set(blob(), 24, "<I", 1 << 16),
}


@pytest.mark.parametrize("case", list(CASES))
def test_btf_load_errno(case: str) -> None:
    data = CASES[case]()
    rt = Runtime()
    results = []
    for call, close in ((kernel_bpf, kernel_close),
                        (lambda c, a: bpf(c, a, runtime=rt), rt.close)):
        try:
            fd = int(call(Cmd.BTF_LOAD, BtfLoadAttr(btf=data or None, btf_size=len(data))))
        except BpfError as e:
            results.append(e.errno)
        else:
            close(fd)
            results.append(0)
    assert results[0] == results[1], f"kernel errno {results[0]}, pyebpf errno {results[1]}"
    STEPS[0] += 1
