"""CGROUP_SKB egress congestion bits against the real kernel: an egress program
may return 0..3 (an ingress one 0..1: the load is refused otherwise), and one
that returns 2 or 3 on some path is marked enforce_expected_attach_type by the
verifier, so BPF_PROG_ATTACH / BPF_LINK_CREATE refuse it (EINVAL) on ingress.

The kernel side attaches to a cgroup v2 directory this test creates (no process
runs in it) and removes; the pyebpf side to a cgroup of a fresh Runtime."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, asm, bpf
from pyebpf.attr import LinkCreateAttr, ProgAttachAttr, ProgLoadAttr
from pyebpf.isa import encode
from pyebpf.links.cgroup import cgroup_root
from pyebpf.testing.kernel import kernel_bpf, kernel_close
from pyebpf.testing.kernel_prog import kernel_prog_load
from pyebpf.uapi import AttachType

pytestmark = pytest.mark.kernel

INGRESS, EGRESS = AttachType.CGROUP_INET_INGRESS, AttachType.CGROUP_INET_EGRESS
#: r0 from skb->len: any u32, narrowed by the program's own masks.
LEN = "ldxw %r0, [%r1+0]\n"
PROGRAMS = {
    "ret0": "mov %r0, 0\nexit",
    "ret1": "mov %r0, 1\nexit",
    "ret2": "mov %r0, 2\nexit",
    "ret3": "mov %r0, 3\nexit",
    "ret4": "mov %r0, 4\nexit",
    "len_and_3": LEN + "and %r0, 3\nexit",
    "len_and_1_or_2": LEN + "and %r0, 1\nor %r0, 2\nexit",
    "ret0_or_ret2": LEN + "jeq %r0, 0, +2\nmov %r0, 2\nexit\nmov %r0, 0\nexit",
    "ret1_or_ret3": LEN + "jeq %r0, 0, +2\nmov %r0, 1\nexit\nmov %r0, 3\nexit",
}


class _Side:
    """Load, attach (PROG_ATTACH or LINK_CREATE) and undo, on one bpf()."""

    def __init__(self, call: Callable[[int, Any], Any],
                 load: Callable[[bytes, int], int], close: Callable[[int], None],
                 cgroup_fd: int) -> None:
        self.call, self.load_insns, self.close, self.cgroup_fd = call, load, close, cgroup_fd

    def outcome(self, text: str, eat: int, attach_type: int, how: str) -> str:
        try:
            fd = self.load_insns(encode(asm(text)), eat)
        except BpfError as e:
            return f"load {e.errno}: {e.strerror}"
        try:
            if how == "attach":
                attr = ProgAttachAttr(target_fd=self.cgroup_fd, attach_bpf_fd=fd,
                                      attach_type=attach_type)
                self.call(Cmd.PROG_ATTACH, attr)
                self.call(Cmd.PROG_DETACH, attr)
            else:
                self.close(int(self.call(Cmd.LINK_CREATE, LinkCreateAttr(
                    prog_fd=fd, target_fd=self.cgroup_fd, attach_type=attach_type))))
        except BpfError as e:
            return f"{how} {e.errno}"
        finally:
            self.close(fd)
        return "attached"


def _cgroup2_mount() -> Path | None:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


@pytest.fixture(scope="module")
def kernel_side() -> Iterator[_Side]:
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    path = mount / f"pyebpf-test-{os.getpid()}-cgskb-egress"
    try:
        path.mkdir()
    except OSError as e:
        pytest.skip(f"can't create a cgroup: {e}")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield _Side(kernel_bpf, lambda insns, eat: kernel_prog_load(
            ProgType.CGROUP_SKB, insns, expected_attach_type=eat), kernel_close, fd)
    finally:
        os.close(fd)
        path.rmdir()


def _pyebpf_side() -> _Side:
    rt = Runtime()
    rt.verifier = "kernel"
    return _Side(lambda cmd, attr: bpf(cmd, attr, runtime=rt),
                 lambda insns, eat: int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(
                     prog_type=ProgType.CGROUP_SKB, insns=insns, license="GPL",
                     expected_attach_type=eat), runtime=rt)),
                 rt.close, cgroup_root(rt).mkdir_p("test").open())


@pytest.mark.parametrize("how", ["attach", "link"])
@pytest.mark.parametrize("attach_type", [INGRESS, EGRESS], ids=["on_ingress", "on_egress"])
@pytest.mark.parametrize("eat", [INGRESS, EGRESS], ids=["ingress_prog", "egress_prog"])
@pytest.mark.parametrize("prog", list(PROGRAMS))
def test_cgroup_skb_return_range_and_attach_match_kernel(
        kernel_side: _Side, prog: str, eat: int, attach_type: int, how: str) -> None:
    text = PROGRAMS[prog]
    kernel = kernel_side.outcome(text, eat, attach_type, how)
    assert _pyebpf_side().outcome(text, eat, attach_type, how) == kernel
