"""struct_ops against the real kernel: tcp_congestion_ops, errno for errno.

The same scenario runs on both sides, each with its own kernel BTF (the real
``/sys/kernel/btf/vmlinux``, pyebpf's simulated one): the ids, sizes and
offsets differ, so values and attrs are built by name on each side, and what
is compared is the outcome of every step (success, or the errno). The real
kernel's congestion controls are touched only under names no one else uses
(``pyebpf_dt<pid>_...``), and every registration is undone at the end.
"""

from __future__ import annotations

import errno
import functools
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyebpf import (
    BpfError,
    Cmd,
    MapCreateAttr,
    MapElemAttr,
    MapType,
    ProgLoadAttr,
    ProgType,
    Runtime,
    bpf,
)
from pyebpf.attr import BtfLoadAttr, LinkCreateAttr, LinkUpdateAttr
from pyebpf.btf import Btf, BtfKind
from pyebpf.btf_build import BtfBuilder
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import kernel_btf
from pyebpf.testing.kernel import kernel_bpf, kernel_close
from pyebpf.uapi import AttachType, MapFlags

from .harness import STEPS

pytestmark = pytest.mark.kernel

VMLINUX = "/sys/kernel/btf/vmlinux"
PREFIX = f"pdt{os.getpid() % 100000}"
DATA_OFF = 64


class Side:
    """One bpf(): the kernel's or pyebpf's, with that side's vmlinux BTF."""

    def __init__(self, name: str, call: Callable[[int, Any], Any], btf: Btf,
                 close: Callable[[int], None]) -> None:
        self.name = name
        self._call = call
        self.btf = btf
        self._close = close
        self.fds: list[int] = []
        st = btf.find("tcp_congestion_ops", BtfKind.STRUCT)
        vt = btf.find("bpf_struct_ops_tcp_congestion_ops", BtfKind.STRUCT)
        assert st is not None and vt is not None
        self.st, self.vt = st, vt
        self.user_btf = self.must(Cmd.BTF_LOAD, BtfLoadAttr(btf=_tiny_btf(),
                                                            btf_size=len(_tiny_btf())))

    def call(self, cmd: int, attr: Any) -> tuple[int, Any]:
        """(0, result) or (errno, None)."""
        try:
            r = self._call(cmd, attr)
        except BpfError as e:
            return e.errno, None
        if cmd in (Cmd.MAP_CREATE, Cmd.PROG_LOAD, Cmd.BTF_LOAD, Cmd.LINK_CREATE):
            self.fds.append(int(r))
        return 0, r

    def must(self, cmd: int, attr: Any) -> Any:
        err, r = self.call(cmd, attr)
        assert not err, f"{self.name}: {Cmd(cmd).name} failed with {errno.errorcode.get(err, err)}"
        return r

    def member(self, name: str) -> tuple[int, int]:
        """(index, byte offset) of a tcp_congestion_ops member."""
        for i, m in enumerate(self.st.members):
            if m.name == name:
                return i, m.bit_offset // 8
        raise KeyError(name)

    def close_all(self) -> None:
        for fd in reversed(self.fds):
            self._close(fd)
        self.fds.clear()


def _tiny_btf() -> bytes:
    b = BtfBuilder()
    b.int_("int", 4, signed=True)
    return b.encode()


@functools.cache
def real_vmlinux() -> Btf:
    """The running kernel's BTF (parsed once: it is several megabytes)."""
    with open(VMLINUX, "rb") as f:
        return Btf.parse(f.read())


@pytest.fixture
def sides() -> Iterator[list[Side]]:
    rt = Runtime()
    out = [Side("kernel", kernel_bpf, real_vmlinux(), kernel_close),
           Side("pyebpf", lambda c, a: bpf(c, a, runtime=rt), kernel_btf(), rt.close)]
    yield out
    for s in out:
        s.close_all()


def prog(side: Side, member: str, insns: str = "mov %r0, 2\nexit", *, idx: int | None = None,
         license: bytes = b"GPL\0", btf_id: int | None = None) -> tuple[int, Any]:
    raw = encode(asm(insns))
    return side.call(Cmd.PROG_LOAD, ProgLoadAttr(
        prog_type=ProgType.STRUCT_OPS, insns=raw, insn_cnt=len(raw) // 8, license=license,
        log_buf=None, expected_attach_type=side.member(member)[0] if idx is None else idx,
        attach_btf_id=side.st.id if btf_id is None else btf_id))


def create(side: Side, **change: Any) -> tuple[int, Any]:
    fields: dict[str, Any] = {
        "key_size": 4, "value_size": side.vt.size, "max_entries": 1,
        "btf_vmlinux_value_type_id": side.vt.id, "btf_fd": side.user_btf, **change}
    return side.call(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.STRUCT_OPS, **fields))


def required(side: Side) -> dict[str, int]:
    return {"ssthresh": side.must(Cmd.PROG_LOAD, _attr(side, "ssthresh")),
            "cong_avoid": side.must(Cmd.PROG_LOAD, _attr(side, "cong_avoid", "exit")),
            "undo_cwnd": side.must(Cmd.PROG_LOAD, _attr(side, "undo_cwnd"))}


def _attr(side: Side, member: str, insns: str = "mov %r0, 2\nexit") -> ProgLoadAttr:
    raw = encode(asm(insns))
    return ProgLoadAttr(prog_type=ProgType.STRUCT_OPS, insns=raw, insn_cnt=len(raw) // 8,
                        license=b"GPL\0", log_buf=None,
                        expected_attach_type=side.member(member)[0], attach_btf_id=side.st.id)


def value(side: Side, progs: dict[str, int], *, name: bytes, raw: dict[str, bytes] | None = None,
          head: bytes = b"") -> bytes:
    out = bytearray(side.vt.size)
    out[:len(head)] = head
    for member, fd in progs.items():
        struct.pack_into("<Q", out, DATA_OFF + side.member(member)[1], fd)
    off = DATA_OFF + side.member("name")[1]
    out[off:off + len(name)] = name
    for member, data in (raw or {}).items():
        off = DATA_OFF + side.member(member)[1]
        out[off:off + len(data)] = data
    return bytes(out)


def update(side: Side, fd: int, val: bytes, *, key: int = 0, flags: int = 0) -> tuple[int, Any]:
    return side.call(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key.to_bytes(4, "little"),
                                                      value=val, flags=flags))


def delete(side: Side, fd: int) -> tuple[int, Any]:
    return side.call(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4)))


def both(sides: list[Side], step: Callable[[Side], tuple[int, Any]]) -> list[int]:
    errs = [step(s)[0] for s in sides]
    assert errs[0] == errs[1], f"kernel errno {errs[0]}, pyebpf errno {errs[1]}"
    STEPS[0] += 1  # counted in the session's summary (conftest)
    return errs


# -- program loads ------------------------------------------------------------------------------
@pytest.mark.parametrize(("member", "kw"), [
    ("ssthresh", {}),
    ("cong_avoid", {"insns": "exit"}),  # a void member: R0 is not looked at
    ("ssthresh", {"insns": "exit"}),  # R0 !read_ok
    ("get_info", {}),  # no BPF implementation allowed (ENOTSUPP)
    ("ssthresh", {"idx": 99}),
    ("name", {}),  # not a function pointer
    ("ssthresh", {"license": b"MIT\0"}),
    ("ssthresh", {"btf_id": 0}),
    ("ssthresh", {"insns": "ldxdw %r0, [%r1+8]\nexit"}),  # ssthresh has one argument
    ("ssthresh", {"insns": "ldxdw %r2, [%r1]\nldxw %r0, [%r2+0]\nexit"}),  # read the sock
    ("cong_avoid", {"insns": "ldxdw %r2, [%r1]\nstw [%r2+0], 1\nexit"}),  # write sock_common
])
def test_prog_load_errno(sides: list[Side], member: str, kw: dict[str, Any]) -> None:
    both(sides, lambda s: prog(s, member, **kw))


def test_prog_load_with_an_id_that_is_no_struct_ops(sides: list[Side]) -> None:
    both(sides, lambda s: prog(s, "ssthresh", btf_id=1))


# -- map creation -------------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {}, {"key_size": 8}, {"max_entries": 2}, {"value_size": 8},
    {"map_flags": int(MapFlags.LINK)}, {"map_flags": int(MapFlags.NO_PREALLOC)},
    {"btf_vmlinux_value_type_id": 1}, {"btf_vmlinux_value_type_id": 0},
])
def test_map_create_errno(sides: list[Side], change: dict[str, int]) -> None:
    both(sides, lambda s: create(s, **change))


# -- registering by update ----------------------------------------------------------------------
def test_register_lookup_delete_sequence(sides: list[Side]) -> None:
    name = f"{PREFIX}_a".encode()
    fds = {s.name: create(s)[1] for s in sides}
    progs = {s.name: required(s) for s in sides}
    both(sides, lambda s: update(s, fds[s.name], value(s, progs[s.name], name=name)))
    states = []
    for s in sides:
        raw = s.must(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fds[s.name], key=bytes(4)))
        states.append(struct.unpack_from("<II", raw))
    assert states[0] == states[1] == (1, 1)  # refcnt 1 (the registration), INUSE
    both(sides, lambda s: update(s, fds[s.name], value(s, progs[s.name], name=name)))  # EBUSY
    both(sides, lambda s: delete(s, fds[s.name]))
    both(sides, lambda s: delete(s, fds[s.name]))  # EINPROGRESS
    both(sides, lambda s: update(s, fds[s.name], value(s, progs[s.name], name=name)))


@pytest.mark.parametrize("case", [
    "no_undo", "cubic", "reno", "flags_bad", "flags_4", "key_member", "state", "refcnt",
    "hole", "update_flags", "key_1", "wrong_member", "empty_name", "bad_name", "owner",
])
def test_update_errno(sides: list[Side], case: str) -> None:
    name = f"{PREFIX}_{case}"[:15].encode()

    def step(s: Side) -> tuple[int, Any]:
        err, fd = create(s)
        assert not err
        progs = required(s)
        kw: dict[str, Any] = {}
        key = flags = 0
        nm = name
        if case == "no_undo":
            del progs["undo_cwnd"]
        elif case in ("cubic", "reno"):
            nm = case.encode()
        elif case == "flags_bad":
            kw["raw"] = {"flags": struct.pack("<I", 0x100)}
        elif case == "flags_4":
            kw["raw"] = {"flags": struct.pack("<I", 4)}
        elif case == "key_member":
            kw["raw"] = {"key": struct.pack("<I", 1)}
        elif case == "state":
            kw["head"] = struct.pack("<II", 0, 1)
        elif case == "refcnt":
            kw["head"] = struct.pack("<II", 1, 0)
        elif case == "hole":
            kw["head"] = bytes(12) + b"\x01"
        elif case == "update_flags":
            flags = 1
        elif case == "key_1":
            key = 1
        elif case == "wrong_member":
            progs["ssthresh"], progs["undo_cwnd"] = progs["undo_cwnd"], progs["ssthresh"]
        elif case == "empty_name":
            nm = b""
        elif case == "bad_name":
            nm = b"bad name"
        elif case == "owner":
            kw["raw"] = {"owner": struct.pack("<Q", 0xFFFF)}
        result = update(s, fd, value(s, progs, name=nm, **kw), key=key, flags=flags)
        registered = delete(s, fd)[0] == 0  # undo a registration that went through
        if case == "owner":  # the kernel resets the map yet reports no error
            assert not registered
        return result

    both(sides, step)


# -- BPF_F_LINK maps and struct_ops links ---------------------------------------------------------
def test_link_sequence(sides: list[Side]) -> None:
    name = f"{PREFIX}_l".encode()
    fds: dict[str, dict[str, int]] = {s.name: {} for s in sides}

    def link_map(s: Side, key: str, nm: bytes) -> tuple[int, Any]:
        err, fd = create(s, map_flags=int(MapFlags.LINK))
        assert not err
        fds[s.name][key] = fd
        return update(s, fd, value(s, required(s), name=nm))

    def link(s: Side, key: str) -> tuple[int, Any]:
        err, r = s.call(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=fds[s.name][key],
                                                        attach_type=AttachType.STRUCT_OPS))
        if not err:
            fds[s.name]["link"] = r
        return err, r

    both(sides, lambda s: link_map(s, "a", name))
    both(sides, lambda s: delete(s, fds[s.name]["a"]))  # EOPNOTSUPP
    both(sides, lambda s: link(s, "a"))
    both(sides, lambda s: s.call(Cmd.LINK_CREATE, LinkCreateAttr(
        prog_fd=fds[s.name]["a"], attach_type=AttachType.STRUCT_OPS)))  # EEXIST
    both(sides, lambda s: link_map(s, "b", f"{PREFIX}_m".encode()))
    both(sides, lambda s: s.call(Cmd.LINK_UPDATE, LinkUpdateAttr(
        link_fd=fds[s.name]["link"], new_prog_fd=fds[s.name]["b"])))  # another name: EINVAL
    both(sides, lambda s: link_map(s, "c", name))
    both(sides, lambda s: s.call(Cmd.LINK_UPDATE, LinkUpdateAttr(
        link_fd=fds[s.name]["link"], new_prog_fd=fds[s.name]["c"])))
    legacy = {s.name: create(s)[1] for s in sides}
    both(sides, lambda s: s.call(Cmd.LINK_CREATE, LinkCreateAttr(
        prog_fd=legacy[s.name], attach_type=AttachType.STRUCT_OPS)))  # not a link map
