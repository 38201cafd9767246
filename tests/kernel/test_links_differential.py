"""Links and attach rules on pyebpf and on the real kernel: the same errno sequence.

Each scenario of tests/links/scenarios.py runs in a child process that first
calls unshare(CLONE_NEWNET) (and, for cgroups, works in a cgroup v2 directory
it creates and removes), so nothing touches the host's network: the loopback
device of the new namespace is the XDP/tcx target. The child prints the
outcomes as JSON; the same scenario runs on a fresh pyebpf Runtime here.
Skips cleanly where unshare or bpf() is not permitted.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from links.scenarios import (  # tests/links (tests/ is on sys.path)
    CG_DIRS,
    CG_FLAGS,
    CG_PROGS,
    SCENARIOS,
    TCX_FLAGS,
    TCX_PROGS,
    PyebpfSide,
    Side,
    cgroup_ops,
    tcx_ops,
)

pytestmark = pytest.mark.kernel

CLONE_NEWNET = 0x4000_0000
#: perf_event_open's number on x86-64, and its ioctl attaching a program.
NR_PERF_EVENT_OPEN = 298
PERF_EVENT_IOC_SET_BPF = 0x40042408
CLONE_NEWNS = 0x0002_0000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
#: Scenarios that need tracefs (mounted in a private mount namespace).
NEEDS_TRACEFS = {"tracepoint_links"}
#: Scenarios that make devices with iproute2.
NEEDS_IP = {"xdp_veth", "socket_filter", "datapath_veth", "redirect_veth"}
ETH_P_ALL = 3
SO_ATTACH_BPF = 50
SO_DETACH_FILTER = 27
SO_LOCK_FILTER = 44
_ROOT = Path(__file__).resolve().parents[2]


class KernelSide(Side):
    """The kernel's bpf() in this (child) process."""

    def bpf(self, cmd: int, attr: Any) -> Any:
        from pyebpf.testing.kernel import kernel_bpf

        return kernel_bpf(cmd, attr)

    def load(self, prog_type: int, insns: bytes, eat: int) -> int:
        from pyebpf.testing.kernel_prog import kernel_prog_load

        return kernel_prog_load(prog_type, insns, expected_attach_type=eat)

    def netns_fd(self) -> int:
        return os.open("/proc/self/ns/net", os.O_RDONLY)

    def new_netns(self) -> None:
        _unshare()

    def close(self, fd: int) -> None:
        os.close(fd)

    def _raw(self, cmd: int, attr: bytearray) -> None:
        from pyebpf.errors import BpfError
        from pyebpf.testing.kernel import _syscall

        buf = ctypes.create_string_buffer(bytes(attr), len(attr))
        ret, err = _syscall(cmd, buf, len(attr))
        attr[:] = buf.raw
        if err:
            raise BpfError(err, f"kernel: command {cmd} failed")
        del ret

    def link_info(self, fd: int) -> dict[str, int]:
        from pyebpf.links import LinkInfo

        info = ctypes.create_string_buffer(64)
        attr = bytearray(168)
        struct.pack_into("<IIQ", attr, 0, fd, 64, ctypes.addressof(info))
        self._raw(15, attr)
        li = LinkInfo.unpack(info.raw)
        return {"type": li.type, "id": li.id, "prog_id": li.prog_id, **li.details}

    def query(self, target: int, attach_type: int, *, query_flags: int = 0,
              cnt: int = 64) -> tuple[int, list[int], int]:
        ids = (ctypes.c_uint32 * cnt)()
        attr = bytearray(168)
        struct.pack_into("<IIIIQI", attr, 0, target, attach_type, query_flags, 0,
                         ctypes.addressof(ids), cnt)
        self._raw(16, attr)
        got = struct.unpack_from("<I", attr, 24)[0]
        revision = struct.unpack_from("<Q", attr, 56)[0]
        return got, list(ids[:min(got, cnt)]), revision

    def prog_id(self, fd: int) -> int:
        info = ctypes.create_string_buffer(8)
        attr = bytearray(168)
        struct.pack_into("<IIQ", attr, 0, fd, 8, ctypes.addressof(info))
        self._raw(15, attr)
        return int(struct.unpack_from("<I", info.raw, 4)[0])

    def add_veth(self, name: str, peer: str) -> tuple[int, int]:
        _ip("link", "add", name, "type", "veth", "peer", "name", peer)
        # if_nametoindex asks the caller's namespace (/sys/class/net is the host's)
        return socket.if_nametoindex(name), socket.if_nametoindex(peer)

    def del_link(self, name: str) -> None:
        _ip("link", "del", name)

    def sock_new(self) -> Any:
        _ip("link", "set", "lo", "up")
        sk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sk.bind(("lo", 0))
        sk.settimeout(0.3)
        return sk

    def sock_call(self, sock: Any, op: str, prog: str | None = None) -> None:
        from pyebpf.errors import BpfError

        try:
            if op == "attach":
                assert prog is not None
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, self.prog(prog))
            elif op == "detach":
                sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
            else:
                sock.setsockopt(socket.SOL_SOCKET, SO_LOCK_FILTER, 1)
        except OSError as e:
            raise BpfError(e.errno or 0, str(e)) from None

    def sock_rx(self, sock: Any, frame: bytes) -> int | None:
        sock.send(frame)  # the sender's own tap skips it; it comes back as lo's rx
        try:
            return len(sock.recv(65536))
        except TimeoutError:
            return None

    def perf_open(self) -> int:
        return _perf_event_open(1, 2, pid=0, cpu=-1)  # SOFTWARE, PAGE_FAULTS, this task

    def tp_open(self, name: str) -> int:
        tp_id = int(Path(f"/sys/kernel/tracing/events/{name}/id").read_text())
        return _perf_event_open(2, tp_id, pid=-1, cpu=0)  # PERF_TYPE_TRACEPOINT

    def set_bpf(self, event: int, prog: str) -> None:
        from pyebpf.errors import BpfError

        try:
            fcntl.ioctl(event, PERF_EVENT_IOC_SET_BPF, self.prog(prog))
        except OSError as e:
            raise BpfError(e.errno or 0, str(e)) from None

    def tap(self, dev: str) -> Any:
        _ip("link", "set", dev, "up")
        # linkwatch brings the carrier up a moment later (a veth's only with its peer)
        end = time.monotonic() + 0.5
        while time.monotonic() < end and "LOWER_UP" not in subprocess.run(
                ["ip", "-o", "link", "show", "dev", dev], capture_output=True,
                text=True).stdout:
            time.sleep(0.02)
        sk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sk.bind((dev, 0))
        sk.settimeout(0.3)
        return sk

    def send(self, tap: Any, frame: bytes) -> None:
        from pyebpf.errors import BpfError

        try:
            tap.send(frame)
        except OSError as e:
            raise BpfError(e.errno or 0, str(e)) from None

    def recv(self, tap: Any) -> tuple[int, int] | None:
        """The next frame of the test's EtherType (IPv6 autoconfiguration chatter
        on the new devices is skipped)."""
        while True:
            try:
                got = tap.recv(65536)
            except TimeoutError:
                return None
            if got[12:14] == b"\x88\xb5":
                return len(got), got[0]

    def cgroup_fd(self, path: str) -> int:
        full = Path(os.environ["PYEBPF_CGROUP_DIR"]) / path
        full.mkdir(parents=True, exist_ok=True)
        return os.open(full, os.O_RDONLY | os.O_DIRECTORY)


def _perf_event_open(ptype: int, config: int, *, pid: int, cpu: int) -> int:
    attr = bytearray(128)
    struct.pack_into("<IIQQ", attr, 0, ptype, 128, config, 1)  # type, size, config, period
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(NR_PERF_EVENT_OPEN), buf, ctypes.c_int(pid),
                      ctypes.c_int(cpu), ctypes.c_int(-1), ctypes.c_ulong(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "perf_event_open")
    return int(fd)


def _mount_tracefs() -> None:
    """A private mount namespace with tracefs at /sys/kernel/tracing (the host's
    mounts stay as they are)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    if not Path("/sys/kernel/tracing/events").is_dir() and libc.mount(
            b"tracefs", b"/sys/kernel/tracing", b"tracefs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount tracefs")


def _ip(*args: str) -> None:
    """iproute2 (the child runs in its own network namespace)."""
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _unshare() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")


def child_main(name: str) -> None:
    """Entry point of the child process: new netns, run, print JSON."""
    try:
        _unshare()
    except OSError as e:
        print(json.dumps({"skip": f"unshare: {e}"}))
        return
    if name in NEEDS_TRACEFS:
        try:
            _mount_tracefs()
        except OSError as e:
            print(json.dumps({"skip": f"tracefs: {e}"}))
            return
    if name in NEEDS_IP and shutil.which("ip") is None:
        print(json.dumps({"skip": "iproute2's ip is not installed"}))
        return
    if name == "tcx_ops":
        out = tcx_ops(KernelSide(), json.loads(os.environ["PYEBPF_OPS"]))
    elif name == "cgroup_ops":
        out = cgroup_ops(KernelSide(), json.loads(os.environ["PYEBPF_OPS"]))
    else:
        out = SCENARIOS[name](KernelSide())
    print(json.dumps({"out": out}))


def run_on_kernel(name: str, env: dict[str, str] | None = None) -> list[Any]:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from kernel.test_links_differential import child_main; "
            "child_main(sys.argv[2])")
    proc = subprocess.run([sys.executable, "-c", code, str(_ROOT / "tests"), name],
                          capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})},
                          cwd=_ROOT)
    if proc.returncode:
        pytest.fail(f"child failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in got:
        pytest.skip(got["skip"])
    return got["out"]


def _cgroup2_mount() -> Path | None:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def _rmtree_cgroup(path: Path) -> None:
    """cgroup directories go with rmdir, deepest first (their files can't be unlinked)."""
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        sub.rmdir()
    path.rmdir()


@pytest.mark.parametrize("name", [n for n in SCENARIOS if not n.startswith("cgroup")])
def test_scenario_matches_kernel(name: str) -> None:
    kernel = run_on_kernel(name)
    mine = SCENARIOS[name](PyebpfSide())
    assert mine == kernel


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n.startswith("cgroup")])
def test_cgroup_scenario_matches_kernel(name: str) -> None:
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    base = mount / f"pyebpf-test-{os.getpid()}-{name}"
    try:
        base.mkdir()
    except OSError as e:
        pytest.skip(f"can't create a cgroup: {e}")
    try:
        kernel = run_on_kernel(name, {"PYEBPF_CGROUP_DIR": str(base)})
    finally:
        _rmtree_cgroup(base)
    mine = SCENARIOS[name](PyebpfSide())
    assert mine == kernel


@pytest.mark.parametrize(("ifindex", "queue"), [(1, 0), (1, 1), (999, 0), (0, 1)])
def test_xdp_test_run_ingress_ifindex_matches_kernel(ifindex: int, queue: int) -> None:
    """xdp_md.ingress_ifindex of a test run names a device of the caller's namespace
    (the loopback device exists everywhere); the program reads it and the queue."""
    from pyebpf.attr import ProgLoadAttr, TestRunAttr
    from pyebpf.errors import BpfError
    from pyebpf.isa import encode
    from pyebpf.isa.asm import asm
    from pyebpf.runtime import Runtime
    from pyebpf.syscall import bpf
    from pyebpf.testing.kernel import kernel_close
    from pyebpf.testing.kernel_prog import kernel_prog_load, kernel_test_run
    from pyebpf.uapi import Cmd, ProgType

    insns = encode(asm("ldxw %r0, [%r1+12]\nldxw %r2, [%r1+16]\nlsh %r2, 8\nor %r0, %r2\n"
                       "exit"))
    ctx = struct.pack("<6I", 0, 60, 0, ifindex, queue, 0)
    kfd = kernel_prog_load(ProgType.XDP, insns)
    try:
        want: Any = kernel_test_run(kfd, bytes(60), ctx=ctx)
        want = (want.retval, want.ctx_out)
    except BpfError as e:
        want = e.errno
    finally:
        kernel_close(kfd)
    rt = Runtime()
    fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.XDP, insns=insns, license="GPL"),
             runtime=rt)
    try:
        got: Any = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(60),
                                                      ctx_in=ctx), runtime=rt)
        got = (got.retval, got.ctx_out)
    except BpfError as e:
        got = e.errno
    assert got == want


def _tcx_op() -> Any:
    from hypothesis import strategies as st

    prog = st.sampled_from(TCX_PROGS)
    maybe = st.none() | prog
    flags = st.sampled_from(TCX_FLAGS)
    return st.one_of(
        st.tuples(st.just("attach"), prog, flags, maybe, maybe),
        st.tuples(st.just("detach"), maybe, flags, maybe),
        st.tuples(st.just("link"), prog, flags, st.none() | st.integers(0, 3)),
        st.tuples(st.just("unlink"), st.integers(0, 3)),
    ).map(list)


def test_generated_tcx_operations_match_kernel() -> None:
    """Random sequences of tcx attach/detach/link operations (bpf_mprog's
    positions, REPLACE, ids, links) give the kernel's answers and lists."""
    from hypothesis import Phase, given, settings
    from hypothesis import strategies as st

    # each example is a child process in its own namespace: no shrinking (slow)
    @settings(max_examples=20, deadline=None, derandomize=True,
              phases=(Phase.explicit, Phase.reuse, Phase.generate))
    @given(st.lists(_tcx_op(), min_size=1, max_size=8))
    def check(ops: list[list[Any]]) -> None:
        kernel = run_on_kernel("tcx_ops", {"PYEBPF_OPS": json.dumps(ops)})
        assert tcx_ops(PyebpfSide(), json.loads(json.dumps(ops))) == kernel, ops

    check()


def _cgroup_op() -> Any:
    from hypothesis import strategies as st

    d, prog, flags = st.sampled_from(CG_DIRS), st.sampled_from(CG_PROGS), \
        st.sampled_from(CG_FLAGS)
    return st.one_of(
        st.tuples(st.just("attach"), d, prog, flags, st.none() | prog),
        st.tuples(st.just("detach"), d, st.none() | prog),
        st.tuples(st.just("link"), d, prog, st.sampled_from((0, F_PREORDER, F_BEFORE))),
        st.tuples(st.just("unlink"), st.integers(0, 3)),
    ).map(list)


F_PREORDER, F_BEFORE = 1 << 6, 1 << 3


def run_cgroup_ops_on_kernel(ops: list[list[Any]]) -> list[Any]:
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    base = mount / f"pyebpf-test-{os.getpid()}-ops"
    try:
        base.mkdir()
    except OSError as e:
        pytest.skip(f"can't create a cgroup: {e}")
    try:
        return run_on_kernel("cgroup_ops", {"PYEBPF_CGROUP_DIR": str(base),
                                            "PYEBPF_OPS": json.dumps(ops)})
    finally:
        _rmtree_cgroup(base)


def test_generated_cgroup_operations_match_kernel() -> None:
    """Random sequences of cgroup attach/detach/link operations on a three-level
    hierarchy (modes, REPLACE, PREORDER, BEFORE/AFTER, overrides) give the kernel's
    answers, attached lists and effective lists."""
    from hypothesis import Phase, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=20, deadline=None, derandomize=True,
              phases=(Phase.explicit, Phase.reuse, Phase.generate))
    @given(st.lists(_cgroup_op(), min_size=1, max_size=8))
    def check(ops: list[list[Any]]) -> None:
        kernel = run_cgroup_ops_on_kernel(ops)
        assert cgroup_ops(PyebpfSide(), json.loads(json.dumps(ops))) == kernel, ops

    check()
