"""XDP redirects carried out, on pyebpf and on the real kernel: BPF_PROG_TEST_RUN
with BPF_F_TEST_XDP_LIVE_FRAMES on veth pairs.

Each case builds three veth pairs (a, b), (c, d), (e, f); b, d and f run
native XDP programs counting the test's frames in slots 0, 1, 2 of an array
(f only where the case says so), a runs a tc ingress program counting in slot
3 (what XDP_PASS and CPU map passes bring up the stack), device and CPU map
programs in 4 and 6 (or record an ifindex in 5 and 7). A live-frames test
run of the case's program with ``ingress_ifindex`` a then sends ``REPEAT``
copies of a frame: XDP_TX, bpf_redirect, device maps (with entry programs,
broadcasts, missing keys), CPU maps (pass, drop, redirect from the CPU map
program, a ring that overflows). The counters afterwards (an ifindex a
program recorded is given by device name) must be the same on both.

The kernel side runs in a child process in a new network namespace with IPv6
off (no autoconfiguration traffic); it skips cleanly where unshare, iproute2
or bpf() are not available.
"""

from __future__ import annotations

import ctypes
import errno
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

from links.xdp_programs import (
    EGRESS_IFINDEX,
    FRAME,
    INGRESS_IFINDEX,
    XDP_DROP,
    XDP_PASS,
    XDP_TX,
    count,
    count_then_redirect_map,
    redirect,
    redirect_map,
    ret,
)
from pyebpf.attr import LinkCreateAttr, MapCreateAttr, MapElemAttr, TestRunAttr
from pyebpf.errors import BpfError
from pyebpf.isa import encode
from pyebpf.uapi import AttachType, Cmd, MapType, ProgType, TestRunFlags

pytestmark = pytest.mark.kernel

A = AttachType
T = MapType
CLONE_NEWNET = 0x4000_0000
#: AF_XDP (include/uapi/linux/if_xdp.h, linux/socket.h).
AF_XDP, SOL_XDP = 44, 283
XDP_MMAP_OFFSETS, XDP_RX_RING, XDP_UMEM_REG, XDP_UMEM_FILL_RING = 1, 2, 4, 5
XDP_UMEM_COMPLETION_RING, XDP_STATISTICS = 6, 7
XDP_COPY = 1 << 1
XDP_UMEM_PGOFF_FILL_RING = 0x1_0000_0000
REPEAT = 5
SLOTS = 8
#: Slots where programs record an ifindex (xdp_md fields) instead of counting.
RECORD_SLOTS = (5, 7)
BROADCAST, EXCLUDE_INGRESS = 1 << 3, 1 << 4
DEVS = ("a", "b", "c", "d", "e", "f")
_ROOT = Path(__file__).resolve().parents[2]


class Side:
    """What a case needs of pyebpf or of the kernel."""

    def bpf(self, cmd: int, attr: Any, **kw: Any) -> Any:
        raise NotImplementedError

    def veth(self, a: str, b: str, queues: int = 1) -> tuple[int, int]:
        raise NotImplementedError

    def xsk(self, dev: str, queue: int, fill: int, rx_size: int) -> tuple[int, Any]:
        """An AF_XDP socket with ``fill`` chunks in its fill ring, bound to queue
        ``queue`` of ``dev``: (its fd, a function giving (frames on the rx ring,
        XDP_STATISTICS' rx_dropped, rx_ring_full, rx_fill_ring_empty_descs))."""
        raise NotImplementedError

    def settle(self) -> None:
        """Let deferred work (NAPI of the veth peers, CPU map kthreads) finish."""


class PyebpfSide(Side):
    def __init__(self) -> None:
        from pyebpf.links import init_net
        from pyebpf.runtime import Runtime

        self.rt = Runtime()
        self.net = init_net(self.rt)

    def bpf(self, cmd: int, attr: Any, **kw: Any) -> Any:
        from pyebpf.syscall import bpf

        return bpf(cmd, attr, runtime=self.rt)

    def veth(self, a: str, b: str, queues: int = 1) -> tuple[int, int]:
        from pyebpf.links import Netdev

        da, db = Netdev.veth_pair(self.net, a, b)
        da.num_queues = db.num_queues = queues
        return da.ifindex, db.ifindex

    def xsk(self, dev: str, queue: int, fill: int, rx_size: int) -> tuple[int, Any]:
        from pyebpf.links.xsk import XskSocket

        xs = XskSocket(self.rt, rx_size=rx_size, fill_size=fill)
        xs.bind(self.net.device_by_name(dev), queue)
        st = xs.stats
        return xs.fd, lambda: [len(xs.rx), st.rx_dropped, st.rx_ring_full,
                               st.rx_fill_ring_empty_descs]


class KernelSide(Side):
    def bpf(self, cmd: int, attr: Any, **kw: Any) -> Any:
        from pyebpf.testing.kernel import kernel_bpf

        return kernel_bpf(cmd, attr, **kw)

    def veth(self, a: str, b: str, queues: int = 1) -> tuple[int, int]:
        q = ["numtxqueues", str(queues), "numrxqueues", str(queues)]
        subprocess.run(["ip", "link", "add", "name", a, *q, "type", "veth", "peer", "name", b,
                        *q], check=True, capture_output=True, timeout=30)
        for dev in (a, b):
            subprocess.run(["ip", "link", "set", "dev", dev, "up"], check=True, capture_output=True,
                           timeout=30)
        return socket.if_nametoindex(a), socket.if_nametoindex(b)

    def settle(self) -> None:
        time.sleep(0.3)

    def xsk(self, dev: str, queue: int, fill: int, rx_size: int) -> tuple[int, Any]:
        """socket(AF_XDP), XDP_UMEM_REG (4096-byte chunks), the rings, the fill ring
        populated, bind(XDP_COPY)."""
        import mmap

        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.socket(AF_XDP, socket.SOCK_RAW, 0)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "socket(AF_XDP)")
        umem = mmap.mmap(-1, fill * 4096)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(umem))
        self._keep = [*getattr(self, "_keep", []), umem]

        def sockopt(opt: int, value: bytes) -> None:
            buf = ctypes.create_string_buffer(value, len(value))
            if libc.setsockopt(fd, SOL_XDP, opt, buf, len(value)) != 0:
                raise OSError(ctypes.get_errno(), f"setsockopt {opt}")

        def getopt(opt: int, size: int) -> bytes:
            buf = ctypes.create_string_buffer(size)
            n = ctypes.c_uint32(size)
            if libc.getsockopt(fd, SOL_XDP, opt, buf, ctypes.byref(n)) != 0:
                raise OSError(ctypes.get_errno(), f"getsockopt {opt}")
            return buf.raw

        sockopt(XDP_UMEM_REG, struct.pack("<QQIIII", addr, fill * 4096, 4096, 0, 0, 0))
        sockopt(XDP_UMEM_FILL_RING, struct.pack("<I", fill))
        sockopt(XDP_UMEM_COMPLETION_RING, struct.pack("<I", fill))
        sockopt(XDP_RX_RING, struct.pack("<I", rx_size))
        off = struct.unpack("<16Q", getopt(XDP_MMAP_OFFSETS, 128))
        rx_prod, fr_prod, fr_desc = off[0], off[8], off[10]
        fr = mmap.mmap(fd, fr_desc + fill * 8, offset=XDP_UMEM_PGOFF_FILL_RING)
        for i in range(fill):
            struct.pack_into("<Q", fr, fr_desc + 8 * i, i * 4096)
        struct.pack_into("<I", fr, fr_prod, fill)
        rx = mmap.mmap(fd, off[2] + rx_size * 16, offset=0)
        self._keep += [fr, rx]
        sa = struct.pack("<HHIII", AF_XDP, XDP_COPY, socket.if_nametoindex(dev), queue, 0)
        if libc.bind(fd, ctypes.create_string_buffer(sa, len(sa)), len(sa)) != 0:
            err = ctypes.get_errno()
            raise BpfError(err, "bind(AF_XDP)")

        def read() -> list[int]:
            st = struct.unpack("<6Q", getopt(XDP_STATISTICS, 48))
            return [struct.unpack_from("<I", rx, rx_prod)[0], st[0], st[3], st[4]]

        return fd, read


class Case:
    """One live-frames run on fresh devices, maps and counters."""

    def __init__(self, side: Side, peers: str = "bdf", queues: int = 1) -> None:
        self.side = side
        self.ifindex: dict[str, int] = {}
        for x, y in (("a", "b"), ("c", "d"), ("e", "f")):
            self.ifindex[x], self.ifindex[y] = side.veth(x, y, queues)
        self.counters = self.map(T.ARRAY, 8, SLOTS)
        for slot, dev in enumerate("bdf"):
            if dev in peers:
                self.xdp(dev, count(self.counters, slot, XDP_DROP))
        self.side.bpf(Cmd.LINK_CREATE, LinkCreateAttr(
            prog_fd=self.load(count(self.counters, 3, 0, skb=True), ProgType.SCHED_CLS),
            target_fd=self.ifindex["a"], attach_type=A.TCX_INGRESS))

    def map(self, map_type: int, value_size: int, max_entries: int) -> int:
        return int(self.side.bpf(Cmd.MAP_CREATE, MapCreateAttr(
            map_type=map_type, key_size=4, value_size=value_size, max_entries=max_entries)))

    def put(self, fd: int, key: int, *fields: int) -> None:
        self.side.bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(
            map_fd=fd, key=struct.pack("<I", key), value=struct.pack(f"<{len(fields)}I", *fields)))

    def load(self, insns: list[Any], prog_type: int = ProgType.XDP, eat: int = 0) -> int:
        from pyebpf.attr import ProgLoadAttr

        raw = encode(insns)
        return int(self.side.bpf(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=prog_type, insns=raw, insn_cnt=len(raw) // 8, license="GPL",
            expected_attach_type=eat)))

    def xdp(self, dev: str, insns: list[Any]) -> None:
        self.side.bpf(Cmd.LINK_CREATE, LinkCreateAttr(
            prog_fd=self.load(insns), target_fd=self.ifindex[dev], attach_type=A.XDP))

    def live(self, insns: list[Any], repeat: int = REPEAT, batch_size: int = 0,
             data: bytes = FRAME) -> str | None:
        """The live-frames run from a's first rx queue: None, or the errno's name."""
        ctx = struct.pack("<6I", 0, len(data), 0, self.ifindex["a"], 0, 0)
        try:
            self.side.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(
                prog_fd=self.load(insns), data_in=data, ctx_in=ctx, data_out=None,
                ctx_out=None, repeat=repeat, batch_size=batch_size,
                flags=TestRunFlags.XDP_LIVE_FRAMES))
        except BpfError as e:
            return errno.errorcode.get(e.errno or 0, str(e.errno))
        return None

    def counts(self) -> list[Any]:
        """The counters; one equal to a device's ifindex (recorded by a program) is
        that device's name."""
        self.side.settle()
        names = {v: k for k, v in self.ifindex.items()}
        out: list[Any] = []
        for slot in range(SLOTS):
            got = self.side.bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(
                map_fd=self.counters, key=struct.pack("<I", slot)), key_size=4, value_size=8,
                map_type=T.ARRAY)
            v = int.from_bytes(bytes(got), "little")
            out.append(names.get(v, v) if slot in RECORD_SLOTS else v)
        return out


def _devmap(c: Case, map_type: int, entries: dict[int, str], prog: list[Any] | None = None
            ) -> int:
    dm = c.map(map_type, 8 if prog is not None else 4, 8)
    pfd = c.load(prog, eat=A.XDP_DEVMAP) if prog is not None else 0
    for key, dev in entries.items():
        c.put(dm, key, c.ifindex[dev], *((pfd,) if prog is not None else ()))
    return dm


def _cpumap(c: Case, prog: list[Any] | None, qsize: int = 64) -> int:
    cm = c.map(T.CPUMAP, 8, 1)
    c.put(cm, 0, qsize, c.load(prog, eat=A.XDP_CPUMAP) if prog is not None else 0)
    return cm


#: AF_XDP cases: (queue bound, fill ring chunks, rx ring size, frames sent).
XSK_CASES = {
    "xsk_delivers": (0, 8, 8, 5),
    "xsk_rx_ring_full": (0, 8, 4, 6),
    "xsk_fill_ring_empty": (0, 2, 8, 5),
    "xsk_other_queue": (1, 8, 8, 5),
    "xsk_queue_out_of_range": (2, 8, 8, 1),
}


def _run_xsk(side: Side, name: str) -> Any:
    queue, fill, rx_size, frames = XSK_CASES[name]
    c = Case(side, queues=2)
    try:
        fd, read = side.xsk("a", queue, fill, rx_size)
    except BpfError as e:
        return [errno.errorcode.get(e.errno or 0, "?")]
    xm = c.map(T.XSKMAP, 4, 4)
    c.put(xm, 0, fd)
    err = c.live(redirect_map(xm, 0), repeat=frames)
    return [err, read(), c.counts()]


def _run(side: Side, name: str) -> Any:
    if name in XSK_CASES:
        return _run_xsk(side, name)
    peers = "bd" if name.endswith("_f_without_xdp") else \
        "df" if name.endswith("_b_without_xdp") else "bdf"
    c = Case(side, peers)
    n = c.counters
    if name in ("tx", "tx_b_without_xdp"):
        err = c.live(ret(XDP_TX))
    elif name in ("live_largest_frame", "live_frame_too_big"):
        size = 4096 - 256 - 320 - 112 + (name == "live_frame_too_big")
        err = c.live(ret(XDP_PASS), data=FRAME + bytes(size - len(FRAME)))
    elif name in ("devmap_mtu_fits", "devmap_mtu_exceeded", "broadcast_mtu_exceeded"):
        size = 1500 + 14 + 4 + (name != "devmap_mtu_fits")
        flags = BROADCAST if name.startswith("broadcast") else 0
        err = c.live(redirect_map(_devmap(c, T.DEVMAP, {0: "c", 1: "e"}), 0, flags),
                     data=FRAME + bytes(size - len(FRAME)))
    elif name == "pass_batched":
        err = c.live(ret(XDP_PASS), repeat=70, batch_size=8)
    elif name == "pass":
        err = c.live(ret(XDP_PASS))
    elif name == "redirect_ifindex":
        err = c.live(redirect(c.ifindex["c"]))
    elif name == "redirect_ifindex_lo":
        err = c.live(redirect(1))
    elif name == "redirect_ifindex_missing":
        err = c.live(redirect(4000))
    elif name in ("devmap", "devmap_f_without_xdp"):
        err = c.live(redirect_map(_devmap(c, T.DEVMAP, {0: "e"}), 0))
    elif name == "devmap_hash":
        err = c.live(redirect_map(_devmap(c, T.DEVMAP_HASH, {1000: "c"}), 1000))
    elif name == "devmap_missing_key_pass":
        err = c.live(redirect_map(_devmap(c, T.DEVMAP, {0: "c"}), 3, XDP_PASS))
    elif name == "devmap_prog_pass":
        err = c.live(redirect_map(_devmap(c, T.DEVMAP, {0: "c"}, count(n, 4, XDP_PASS)), 0))
    elif name == "devmap_prog_drop":
        err = c.live(redirect_map(_devmap(c, T.DEVMAP, {0: "c"}, count(n, 4, XDP_DROP)), 0))
    elif name == "devmap_prog_tx":
        err = c.live(redirect_map(_devmap(c, T.DEVMAP, {0: "c"}, count(n, 4, XDP_TX)), 0))
    elif name == "devmap_prog_egress":
        err = c.live(redirect_map(_devmap(c, T.DEVMAP, {0: "c"}, count(
            n, 5, XDP_PASS, record=EGRESS_IFINDEX)), 0))
    elif name == "devmap_prog_ingress":
        err = c.live(redirect_map(_devmap(c, T.DEVMAP, {0: "c"}, count(
            n, 5, XDP_PASS, record=INGRESS_IFINDEX)), 0))
    elif name.startswith("broadcast"):
        mt = T.DEVMAP_HASH if "hash" in name else T.DEVMAP
        flags = BROADCAST | (EXCLUDE_INGRESS if "exclude" in name else 0)
        err = c.live(redirect_map(_devmap(c, mt, {1: "a", 2: "c", 7: "e"}), 0, flags))
    elif name == "one_device_two_programs_broadcast":
        # one bulk queue per target device: its program is the first entry's
        dm = c.map(T.DEVMAP, 8, 4)
        c.put(dm, 0, c.ifindex["c"], c.load(count(n, 4, XDP_PASS), eat=A.XDP_DEVMAP))
        c.put(dm, 1, c.ifindex["c"], c.load(count(n, 6, XDP_PASS), eat=A.XDP_DEVMAP))
        err = c.live(redirect_map(dm, 0, BROADCAST))
    elif name == "cpumap_pass":
        err = c.live(redirect_map(_cpumap(c, count(n, 6, XDP_PASS)), 0))
    elif name == "cpumap_drop":
        err = c.live(redirect_map(_cpumap(c, count(n, 6, XDP_DROP)), 0))
    elif name == "cpumap_no_prog":
        err = c.live(redirect_map(_cpumap(c, None), 0))
    elif name == "cpumap_prog_ingress":
        err = c.live(redirect_map(_cpumap(c, count(n, 7, XDP_DROP, record=INGRESS_IFINDEX)),
                                  0))
    elif name == "cpumap_redirect":
        dm = _devmap(c, T.DEVMAP, {0: "c"})
        err = c.live(redirect_map(_cpumap(c, count_then_redirect_map(n, 6, dm, 0)), 0))
    elif name == "cpumap_ring_overflow":
        err = c.live(redirect_map(_cpumap(c, count(n, 6, XDP_DROP), qsize=8), 0), repeat=20)
    elif name == "batch_too_big":
        err = c.live(ret(XDP_PASS), batch_size=257)
    else:
        raise ValueError(name)
    return [err, c.counts()]


CASES = ["tx", "tx_b_without_xdp", "live_largest_frame", "live_frame_too_big", "devmap_mtu_fits",
         "devmap_mtu_exceeded", "broadcast_mtu_exceeded", "pass",
         "pass_batched", "redirect_ifindex", "redirect_ifindex_lo", "redirect_ifindex_missing",
         "devmap", "devmap_f_without_xdp", "devmap_hash", "devmap_missing_key_pass",
         "devmap_prog_pass", "devmap_prog_drop", "devmap_prog_tx", "devmap_prog_egress",
         "devmap_prog_ingress", "broadcast", "broadcast_exclude", "broadcast_hash_exclude",
         "broadcast_f_without_xdp", "one_device_two_programs_broadcast", "cpumap_pass",
         "cpumap_drop", "cpumap_no_prog", "cpumap_prog_ingress", "cpumap_redirect",
         "cpumap_ring_overflow", "batch_too_big",
         *XSK_CASES]


def child_main(names: list[str]) -> None:
    """In the child: a new network namespace per case, the cases' results as JSON."""
    libc = ctypes.CDLL(None, use_errno=True)
    if shutil.which("ip") is None:
        print(json.dumps({"skip": "iproute2's ip is not installed"}))
        return
    out = {}
    for name in names:
        if libc.unshare(CLONE_NEWNET) != 0:
            print(json.dumps({"skip": f"unshare: {os.strerror(ctypes.get_errno())}"}))
            return
        for conf in ("all", "default"):
            p = Path(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6")
            if p.exists():
                p.write_text("1")
        out[name] = _run(KernelSide(), name)
    print(json.dumps({"out": out}))


@pytest.fixture(scope="module")
def kernel_results() -> dict[str, Any]:
    from pyebpf.testing.kernel import kernel_available

    if not kernel_available():
        pytest.skip("bpf() is not permitted here")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from kernel.test_xdp_redirect_maps_differential import child_main; "
            "child_main(sys.argv[2:])")
    proc = subprocess.run([sys.executable, "-c", code, str(_ROOT / "tests"), *CASES],
                          capture_output=True, text=True, timeout=300, cwd=_ROOT)
    if proc.returncode:
        pytest.fail(f"child failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in got:
        pytest.skip(got["skip"])
    return dict(got["out"])


@pytest.mark.parametrize("name", CASES)
def test_live_frames_redirect_matches_the_kernel(kernel_results: dict[str, Any],
                                                 name: str) -> None:
    assert _run(PyebpfSide(), name) == kernel_results[name]
