"""Objects that are not BPF objects, or are damaged: only pyebpf's errors come out."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf import BpfError, Runtime, load_object, load_spec
from pyebpf.elf import ElfError

DATA = Path(__file__).resolve().parents[1] / "data" / "elf"
GOOD = (DATA / "legacy_maps.o").read_bytes()
OBJECTS = {name: (DATA / name).read_bytes()
           for name in ("globals.o", "calls.o", "tailcalls.o", "legacy_maps.o", "core.o")}


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


@pytest.mark.parametrize("data, match", [
    (b"", "not an ELF"),
    (b"\x7fELF", "not an ELF"),
    (b"MZ" + bytes(100), "not an ELF"),
    (patched(GOOD, 4, "B", 1), "64-bit"),
    (patched(GOOD, 5, "B", 2), "big-endian"),
    (patched(GOOD, 18, "<H", 62), "EM_BPF"),  # EM_X86_64
    (patched(GOOD, 16, "<H", 2), "relocatable"),  # ET_EXEC
    (GOOD[:40], "truncated ELF header"),
    (GOOD[:200], "truncated"),
    (patched(GOOD, 58, "<H", 40), "section header size"),
])
def test_not_a_bpf_object(data: bytes, match: str) -> None:
    with pytest.raises(ElfError, match=match) as exc:
        load_spec(data)
    assert exc.value.errno == 22


def test_big_endian_object_from_clang() -> None:
    """clang -target bpfeb: refused with a hint, not misread."""
    with pytest.raises(ElfError, match="big-endian"):
        load_spec(DATA / "calls_be.o")


def test_old_llvm_em_none_is_accepted() -> None:
    spec = load_spec(patched(GOOD, 18, "<H", 0))
    assert set(spec.programs) == {"first", "second"}


def test_every_truncation() -> None:
    for n in range(0, len(GOOD), 7):
        with pytest.raises(BpfError):
            load_spec(GOOD[:n])


def test_no_symbol_table() -> None:
    # Rename .symtab's type to PROGBITS: there is no symbol table any more.
    b = bytearray(GOOD)
    (shoff,) = struct.unpack_from("<Q", b, 40)
    (shnum,) = struct.unpack_from("<H", b, 60)
    for i in range(shnum):
        if struct.unpack_from("<I", b, shoff + 64 * i + 4)[0] == 2:  # SHT_SYMTAB
            struct.pack_into("<I", b, shoff + 64 * i + 4, 1)
    with pytest.raises(ElfError, match="symbol table") as exc:
        load_spec(bytes(b))
    assert exc.value.errno == 2


@settings(max_examples=150)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    with pytest.raises(BpfError):
        load_spec(data)


@settings(max_examples=150)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    with contextlib.suppress(BpfError):
        load_spec(GOOD[:64] + tail)


@settings(max_examples=200)
@given(name=st.sampled_from(sorted(OBJECTS)),
       flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                      min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_mutated_objects(name: str, flips: list[tuple[int, int]], cut: int | None) -> None:
    """Flipped bytes and truncations: parsing, then loading (structural verifier,
    small memory limit), raise only BpfError."""
    b = bytearray(OBJECTS[name])
    for pos, val in flips:
        b[pos % len(b)] = val
    if cut is not None:
        del b[cut % (len(b) + 1):]
    try:
        spec = load_spec(bytes(b))
    except BpfError:
        return
    rt = Runtime(memory_limit=1 << 22)
    with contextlib.suppress(BpfError):
        load_object(spec, runtime=rt, verifier="structural").close()
