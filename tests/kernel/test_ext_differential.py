"""Program extensions (freplace) against the real kernel: the same target program and
extensions on both sides; load and attach errnos, and what the target returns
before, during and after the replacement."""

from __future__ import annotations

import ctypes
import errno
import functools
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, ProgLoadAttr, ProgType, Runtime, TestRunAttr, bpf
from pyebpf.attr import BtfLoadAttr, LinkCreateAttr
from pyebpf.btf import FuncLinkage
from pyebpf.btf_build import BtfBuilder
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.testing.kernel import _syscall, kernel_bpf, kernel_close

from .harness import STEPS

pytestmark = pytest.mark.kernel

# main(skb) { return helper(skb, 5); }  helper(skb, x) { return x; }
TARGET = encode(asm("mov %r2, 5\ncall local +1\nexit\nmov %r0, %r2\nexit"))
# helper's replacement: skb->len + x.
EXT = encode(asm("ldxw %r0, [%r1]\nadd %r0, %r2\nexit"))
G, S = FuncLinkage.GLOBAL, FuncLinkage.STATIC


def func_btf(*funcs: tuple[str, str, FuncLinkage]) -> tuple[bytes, dict[str, int]]:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    u64 = b.int_("unsigned long long", 8)
    skb = b.ptr(b.struct("__sk_buff", [("len", b.int_("unsigned int", 4))]))
    protos = {"main": b.func_proto(i, [("skb", skb)]),
              "helper": b.func_proto(i, [("skb", skb), ("x", i)]),
              "u64": b.func_proto(i, [("skb", skb), ("x", u64)]),
              "ptr_int": b.func_proto(i, [("skb", skb), ("x", b.ptr(i))])}
    ids = {name: b.func(name, protos[kind], linkage) for name, kind, linkage in funcs}
    return b.encode(), ids


class Side:
    def __init__(self, name: str, call: Callable[[int, Any], Any],
                 close: Callable[[int], None], run: Callable[[int], int]) -> None:
        self.name, self._call, self._close, self.run = name, call, close, run
        self.fds: list[int] = []

    def call(self, cmd: int, attr: Any) -> tuple[int, int]:
        try:
            r = int(self._call(cmd, attr))
        except BpfError as e:
            return e.errno, -1
        self.fds.append(r)
        return 0, r

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        self._close(fd)

    def btf(self, blob: bytes) -> int:
        err, fd = self.call(Cmd.BTF_LOAD, BtfLoadAttr(btf=blob, btf_size=len(blob)))
        assert not err
        return fd

    def load(self, prog_type: int, insns: bytes, funcs: list[tuple[int, int]], btf_fd: int,
             **kw: Any) -> tuple[int, int]:
        recs = b"".join(struct.pack("<II", *r) for r in funcs)
        return self.call(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=prog_type, insns=insns, insn_cnt=len(insns) // 8, license=b"GPL\0",
            log_buf=None, prog_btf_fd=btf_fd, func_info=recs, func_info_rec_size=8,
            func_info_cnt=len(funcs), **kw))

    def target(self, helper: FuncLinkage = G) -> tuple[int, dict[str, int]]:
        blob, ids = func_btf(("main", "main", G), ("helper", "helper", helper))
        err, fd = self.load(ProgType.SCHED_CLS, TARGET, [(0, ids["main"]), (3, ids["helper"])],
                            self.btf(blob))
        assert not err
        return fd, ids

    def ext(self, target: int, attach_btf_id: int, kind: str = "helper",
            linkage: FuncLinkage = G, insns: bytes = EXT) -> tuple[int, int]:
        blob, ids = func_btf(("helper_ext", kind, linkage))
        return self.load(ProgType.EXT, insns, [(0, ids["helper_ext"])], self.btf(blob),
                         attach_prog_fd=target, attach_btf_id=attach_btf_id)

    def link(self, ext: int, **kw: Any) -> tuple[int, int]:
        return self.call(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=ext, **kw))


def _kernel_run(fd: int) -> int:
    data = ctypes.create_string_buffer(bytes(60), 60)
    attr = ctypes.create_string_buffer(struct.pack(
        "<IIIIQQII", fd, 0, 60, 0, ctypes.addressof(data), 0, 1, 0).ljust(168, b"\0"), 168)
    _, err = _syscall(Cmd.PROG_TEST_RUN, attr, 168)
    if err:
        raise BpfError(err, "kernel PROG_TEST_RUN")
    return int(struct.unpack_from("<I", attr.raw, 4)[0])


@functools.cache
def kernel_takes_extensions() -> bool:
    """Whether this kernel lets us load an extension at all (it may say EPERM: a
    missing capability, an LSM); the comparisons need it to."""
    k = Side("kernel", kernel_bpf, kernel_close, _kernel_run)
    try:
        tgt, ids = k.target()
        return k.ext(tgt, ids["helper"])[0] != errno.EPERM
    finally:
        for fd in reversed(list(k.fds)):
            k.close(fd)


@pytest.fixture
def sides() -> Iterator[list[Side]]:
    if not kernel_takes_extensions():
        pytest.skip("this kernel refuses to load program extensions here (EPERM)")
    rt = Runtime()

    def py_run(fd: int) -> int:
        return int(bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(60)),
                       runtime=rt).retval)

    out = [Side("kernel", kernel_bpf, kernel_close, _kernel_run),
           Side("pyebpf", lambda c, a: bpf(c, a, runtime=rt), rt.close, py_run)]
    yield out
    for s in out:
        for fd in reversed(list(s.fds)):
            s.close(fd)


def both(sides: list[Side], step: Callable[[Side], Any]) -> list[Any]:
    got = [step(s) for s in sides]
    errs = [g[0] if isinstance(g, tuple) else g for g in got]
    assert errs[0] == errs[1], f"kernel {got[0]}, pyebpf {got[1]}"
    STEPS[0] += 1
    return got


@pytest.mark.parametrize(("kind", "linkage", "btf_id"), [
    ("helper", G, "helper"), ("main", G, "helper"), ("u64", G, "helper"),
    ("ptr_int", G, "helper"), ("helper", S, "helper"), ("helper", G, 1), ("helper", G, 999),
])
def test_ext_load_errno(sides: list[Side], kind: str, linkage: FuncLinkage,
                        btf_id: str | int) -> None:
    def step(s: Side) -> tuple[int, int]:
        tgt, ids = s.target()
        return s.ext(tgt, ids[btf_id] if isinstance(btf_id, str) else btf_id, kind, linkage)

    both(sides, step)


def test_static_target_and_recursive_extension(sides: list[Side]) -> None:
    def static(s: Side) -> tuple[int, int]:
        tgt, ids = s.target(helper=S)
        return s.ext(tgt, ids["helper"])

    both(sides, static)

    def recursive(s: Side) -> tuple[int, int]:
        tgt, ids = s.target()
        err, ext = s.ext(tgt, ids["helper"])
        assert not err
        _, eids = func_btf(("helper_ext", "helper", G))
        return s.ext(ext, eids["helper_ext"])

    both(sides, recursive)


def test_freplace_sequence(sides: list[Side]) -> None:
    state: dict[str, dict[str, Any]] = {s.name: {} for s in sides}

    def setup(s: Side) -> int:
        tgt, ids = s.target()
        state[s.name].update(tgt=tgt, ids=ids)
        state[s.name]["ext"] = s.ext(tgt, ids["helper"])[1]
        state[s.name]["ext2"] = s.ext(tgt, ids["helper"])[1]
        return s.run(tgt)

    assert both(sides, setup) == [5, 5]

    def link(s: Side) -> tuple[int, int]:
        err, fd = s.link(state[s.name]["ext"])
        state[s.name]["link"] = fd
        return err, fd

    both(sides, link)
    assert both(sides, lambda s: s.run(state[s.name]["tgt"])) == [65, 65]
    both(sides, lambda s: s.link(state[s.name]["ext2"]))  # EBUSY: one extension per function
    both(sides, lambda s: s.link(state[s.name]["ext"], target_btf_id=1))  # btf id without fd
    both(sides, lambda s: (s.close(state[s.name]["link"]), 0)[1])
    assert both(sides, lambda s: s.run(state[s.name]["tgt"])) == [5, 5]
    both(sides, lambda s: s.link(state[s.name]["ext"]))  # its load-time target is spent
    both(sides, lambda s: s.link(state[s.name]["ext"], target_fd=state[s.name]["tgt"],
                                 target_btf_id=state[s.name]["ids"]["helper"]))
    assert both(sides, lambda s: s.run(state[s.name]["tgt"])) == [65, 65]
