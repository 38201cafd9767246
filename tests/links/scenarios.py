"""Attach-rule scenarios run on pyebpf and (tests/kernel) on the real kernel.

A scenario is a function of a :class:`Side`, the backend: pyebpf's bpf() on
a Runtime, or the kernel's bpf() inside a fresh network namespace. It returns
the outcome of each step: "ok", an errno name, or a value normalised so that
both sides can be compared (program ids become the scenario's names for the
programs, fds don't appear). The unit tests pin the outcomes the kernel gave
(``EXPECTED``); the differential test checks the kernel still gives them.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any

from pyebpf.attr import (
    InfoByFdAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    LinkUpdateAttr,
    ProgAttachAttr,
    ProgQueryAttr,
    RawTracepointOpenAttr,
)
from pyebpf.errors import ENOTSUPP, BpfError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.uapi import AttachFlags, AttachType, Cmd, ProgType

A = AttachType
F = AttachFlags
BAD_FD = 9999
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4
XDP_FLAGS_HW_MODE = 8
XDP_FLAGS_REPLACE = 16

#: name -> (program type, expected attach type, instructions).
PROGS: dict[str, tuple[int, int, str]] = {
    "fd1": (ProgType.FLOW_DISSECTOR, 0, "mov %r0, 0\nexit"),
    "fd2": (ProgType.FLOW_DISSECTOR, 0, "mov %r0, 2\nexit"),
    "sk1": (ProgType.SK_LOOKUP, A.SK_LOOKUP, "mov %r0, 1\nexit"),
    "sk2": (ProgType.SK_LOOKUP, A.SK_LOOKUP, "mov %r0, 0\nexit"),
    "xdp1": (ProgType.XDP, 0, "mov %r0, 2\nexit"),
    "xdp2": (ProgType.XDP, 0, "mov %r0, 1\nexit"),
    "tc1": (ProgType.SCHED_CLS, 0, "mov %r0, -1\nexit"),
    "tc2": (ProgType.SCHED_CLS, 0, "mov %r0, 0\nexit"),
    "tc3": (ProgType.SCHED_CLS, 0, "mov %r0, 2\nexit"),
    "tc4": (ProgType.SCHED_CLS, 0, "mov %r0, 7\nexit"),
    "ing1": (ProgType.CGROUP_SKB, A.CGROUP_INET_INGRESS, "mov %r0, 1\nexit"),
    "ing2": (ProgType.CGROUP_SKB, A.CGROUP_INET_INGRESS, "mov %r0, 0\nexit"),
    "ing3": (ProgType.CGROUP_SKB, A.CGROUP_INET_INGRESS, "mov %r0, 1\nexit"),
    "raw1": (ProgType.RAW_TRACEPOINT, 0, "mov %r0, 0\nexit"),
    "sf_trunc": (ProgType.SOCKET_FILTER, 0, "mov %r0, 20\nexit"),
    "sf_len": (ProgType.SOCKET_FILTER, 0, "ldxw %r0, [%r1+0]\nexit"),
    "sf_drop": (ProgType.SOCKET_FILTER, 0, "mov %r0, 0\nexit"),
    "xdp_mark": (ProgType.XDP, 0, "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\n"
                 "add %r4, 1\njgt %r4, %r3, +1\nstb [%r2+0], 0x11\nmov %r0, 2\nexit"),
    "xdp_tx": (ProgType.XDP, 0, "mov %r0, 3\nexit"),
    "pe1": (ProgType.PERF_EVENT, 0, "mov %r0, 0\nexit"),
    "pe2": (ProgType.PERF_EVENT, 0, "mov %r0, 0\nexit"),
    "kp1": (ProgType.KPROBE, 0, "mov %r0, 0\nexit"),
    "tp1": (ProgType.TRACEPOINT, 0, "mov %r0, 0\nexit"),
    "tp2": (ProgType.TRACEPOINT, 0, "mov %r0, 0\nexit"),
    "tp3": (ProgType.TRACEPOINT, 0, "mov %r0, 0\nexit"),
    "raw2": (ProgType.RAW_TRACEPOINT, 0, "mov %r0, 0\nexit"),
}


def errname(e: int) -> str:
    return "ENOTSUPP" if e == ENOTSUPP else errno.errorcode.get(e, str(e))


class Side:
    """One backend. Subclasses provide the primitives; the helpers below are shared."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}
        self.out: list[Any] = []
        self.defined: dict[str, tuple[int, int, str]] = {}

    # primitives
    def bpf(self, cmd: int, attr: Any) -> Any:
        raise NotImplementedError

    def load(self, prog_type: int, insns: bytes, eat: int) -> int:
        raise NotImplementedError

    def netns_fd(self) -> int:
        raise NotImplementedError

    def new_netns(self) -> None:
        raise NotImplementedError

    def close(self, fd: int) -> None:
        raise NotImplementedError

    def link_info(self, fd: int) -> dict[str, int]:
        raise NotImplementedError

    def query(self, target: int, attach_type: int, *, query_flags: int = 0,
              cnt: int = 64) -> tuple[int, list[int], int]:
        """(prog_cnt, ids, revision)."""
        raise NotImplementedError

    def prog_id(self, fd: int) -> int:
        raise NotImplementedError

    def cgroup_fd(self, path: str) -> int:
        raise NotImplementedError

    def add_veth(self, name: str, peer: str) -> tuple[int, int]:
        """A veth pair in the current namespace: the two ifindexes."""
        raise NotImplementedError

    def del_link(self, name: str) -> None:
        """Remove a device (both ends of a veth)."""
        raise NotImplementedError

    def sock_new(self) -> Any:
        """An AF_PACKET SOCK_RAW socket on the loopback device."""
        raise NotImplementedError

    def sock_call(self, sock: Any, op: str, prog: str | None = None) -> None:
        """setsockopt: "attach" (SO_ATTACH_BPF), "detach" (SO_DETACH_FILTER), "lock"."""
        raise NotImplementedError

    def sock_rx(self, sock: Any, frame: bytes) -> int | None:
        """Send ``frame`` out of lo; the bytes the socket got of it (None: nothing)."""
        raise NotImplementedError

    def tap(self, dev: str) -> Any:
        """A packet socket bound to device ``dev`` (it also sends from there)."""
        raise NotImplementedError

    def send(self, tap: Any, frame: bytes) -> None:
        raise NotImplementedError

    def recv(self, tap: Any) -> tuple[int, int] | None:
        """(length, first byte) of the next test frame the tap got, or None."""
        raise NotImplementedError

    def got(self, tap: Any) -> None:
        frame = self.recv(tap)
        self.out.append(["got", None if frame is None else list(frame)])

    def sent(self, tap: Any, frame: bytes) -> None:
        self.step(lambda: self.send(tap, frame))

    def tp_open(self, name: str) -> int:
        """perf_event_open(PERF_TYPE_TRACEPOINT) on tracepoint "category/name", CPU 0."""
        raise NotImplementedError

    def set_bpf(self, event: int, prog: str) -> None:
        """ioctl(event, PERF_EVENT_IOC_SET_BPF, prog)."""
        raise NotImplementedError

    def perf_open(self) -> int:
        """perf_event_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS) on this task
        (the clock events move to PMUs of their own, whose type numbers vary)."""
        raise NotImplementedError

    def sock_op(self, sock: Any, op: str, prog: str | None = None) -> None:
        self.step(lambda: self.sock_call(sock, op, prog))

    def rx(self, sock: Any, frame: bytes) -> None:
        self.out.append(["rx", self.sock_rx(sock, frame)])

    # shared
    def prog(self, name: str) -> int:
        if name not in self.fds:
            pt, eat, text = self.defined.get(name) or PROGS[name]
            self.fds[name] = self.load(pt, encode(asm(text)), eat)
        return self.fds[name]

    def define(self, name: str, prog_type: int, text: str, eat: int = 0) -> None:
        """A program of the scenario's own (its text may depend on ifindexes)."""
        self.defined[name] = (prog_type, eat, text)

    def step(self, fn: Callable[[], Any], *, keep: str | None = None) -> Any:
        """Run one call; record "ok" (or the value ``fn`` gives, if not an int
        fd) or the errno name; ``keep`` names the fd it returns."""
        try:
            value = fn()
        except BpfError as e:
            self.out.append(errname(e.errno))
            return None
        if keep is not None:
            self.fds[keep] = int(value)
            self.out.append("ok")
        elif isinstance(value, (list, tuple, dict, str)):
            self.out.append(value)
        else:
            self.out.append("ok")
        return value

    def names(self, ids: list[int]) -> list[str]:
        by_id = {self.prog_id(fd): name for name, fd in self.fds.items()
                 if name in PROGS or name in self.defined}
        return [by_id.get(i, f"?{i}") for i in ids]

    def record_query(self, target: int, attach_type: int, **kw: Any) -> None:
        try:
            cnt, ids, rev = self.query(target, attach_type, **kw)
        except BpfError as e:
            self.out.append(errname(e.errno))
            return
        self.out.append(["query", cnt, self.names(ids), rev])

    def link_create(self, prog: str, target: int, attach_type: int, keep: str | None = None,
                    **kw: Any) -> None:
        self.step(lambda: self.bpf(Cmd.LINK_CREATE, LinkCreateAttr(
            prog_fd=self.prog(prog), target_fd=target, attach_type=attach_type, **kw)),
            keep=keep)

    def link_update(self, link: str, new: str, *, old: str | None = None, flags: int = 0) -> None:
        self.step(lambda: self.bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(
            link_fd=self.fds[link], new_prog_fd=self.prog(new), flags=flags,
            old_prog_fd=self.prog(old) if old else 0)))

    def link_detach(self, link: str) -> None:
        self.step(lambda: self.bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=self.fds[link])))

    def prog_attach(self, prog: str, attach_type: int, target: int = 0, **kw: Any) -> None:
        self.step(lambda: self.bpf(Cmd.PROG_ATTACH, ProgAttachAttr(
            target_fd=target, attach_bpf_fd=self.prog(prog), attach_type=attach_type, **kw)))

    def prog_detach(self, prog: str | None, attach_type: int, target: int = 0,
                    **kw: Any) -> None:
        self.step(lambda: self.bpf(Cmd.PROG_DETACH, ProgAttachAttr(
            target_fd=target, attach_bpf_fd=self.prog(prog) if prog else 0,
            attach_type=attach_type, **kw)))

    def raw_tp_open(self, prog: str, name: bytes | None, keep: str | None = None,
                    cookie: int = 0) -> None:
        self.step(lambda: self.bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointOpenAttr(
            name=name, prog_fd=self.prog(prog), cookie=cookie)), keep=keep)

    def info(self, link: str, *fields: str) -> None:
        got = self.link_info(self.fds[link])
        self.out.append({f: got[f] for f in fields})

    def wait_info(self, link: str, field: str, value: int, timeout: float = 5.0) -> None:
        """Poll (the kernel frees namespaces from a workqueue) until the field has
        the value; record what it ended as."""
        end = time.monotonic() + timeout
        got = self.link_info(self.fds[link])[field]
        while got != value and time.monotonic() < end:
            time.sleep(0.05)
            got = self.link_info(self.fds[link])[field]
        self.out.append({field: got})


def _info(side: Side, fd: int) -> Any:
    return side.bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd))


# -- scenarios --------------------------------------------------------------------------------
def netns_flow_dissector(s: Side) -> list[Any]:
    ns = s.netns_fd()
    FD = A.FLOW_DISSECTOR
    s.link_create("fd1", ns, FD, keep="L1")
    s.link_create("fd2", ns, FD)                      # one link per hook: E2BIG
    s.prog_attach("fd1", FD)                          # links exclude PROG_ATTACH: EEXIST
    s.prog_attach("fd1", FD, target=ns)               # target_fd must be 0: EINVAL
    s.prog_detach("fd1", FD)                          # links present: EINVAL
    s.record_query(ns, FD)
    s.link_update("L1", "fd2")
    s.link_update("L1", "fd1", old="fd1", flags=F.REPLACE)   # old mismatch: EPERM
    s.link_update("L1", "fd1", flags=F.ALLOW_MULTI)          # bad flags: EINVAL
    s.link_update("L1", "xdp1")                               # other prog type: EINVAL
    s.link_update("L1", "fd1", old="fd2")                     # old without REPLACE: EINVAL
    s.record_query(ns, FD)
    s.info("L1", "attach_type")
    s.link_detach("L1")
    s.info("L1", "netns_ino")
    s.link_update("L1", "fd1")                                # defunct: ENOLINK
    s.link_detach("L1")                                       # again: fine
    s.prog_attach("fd1", FD)
    s.prog_attach("fd1", FD)                                  # the same again: EINVAL
    s.link_create("fd2", ns, FD)                              # prog attached: EEXIST
    s.prog_attach("fd2", FD)                                  # replaces
    s.record_query(ns, FD)
    s.prog_detach("fd1", FD)                                  # not attached: ENOENT
    s.prog_detach("fd2", FD)
    s.prog_detach("fd2", FD)                                  # ENOENT
    s.prog_attach("fd1", FD, attach_flags=F.ALLOW_MULTI)      # EINVAL
    s.link_create("fd1", ns, FD, flags=1)                     # EINVAL
    s.link_create("fd1", s.prog("fd2"), FD)                   # not a netns fd: EINVAL
    s.link_create("fd1", BAD_FD, FD)                          # EBADF
    s.link_create("fd1", ns, A.SK_LOOKUP)                     # attach type: EINVAL
    s.record_query(ns, FD, query_flags=1)                     # EINVAL
    s.record_query(ns, A.CGROUP_INET_INGRESS + 200)           # EINVAL
    s.link_create("fd1", ns, FD, keep="L2")
    s.close(s.fds.pop("L2"))
    s.record_query(ns, FD)                                    # closing the link detached it
    return s.out


def netns_sk_lookup(s: Side) -> list[Any]:
    ns = s.netns_fd()
    SK = A.SK_LOOKUP
    s.link_create("sk1", ns, SK, keep="L1")
    s.link_create("sk2", ns, SK, keep="L2")
    s.link_create("sk1", ns, SK, keep="L3")                   # the same program twice: fine
    s.record_query(ns, SK)
    s.prog_attach("sk1", SK)                                  # link-only hook: EINVAL
    s.prog_detach("sk1", SK)                                  # EINVAL
    s.link_update("L2", "sk1")
    s.link_update("L2", "fd1")                                # other type: EINVAL
    s.record_query(ns, SK)
    s.link_detach("L1")
    s.record_query(ns, SK)
    s.info("L1", "netns_ino", "attach_type")
    return s.out


def netns_gone(s: Side) -> list[Any]:
    ns = s.netns_fd()
    s.link_create("fd1", ns, A.FLOW_DISSECTOR, keep="L1")
    s.link_create("sk1", ns, A.SK_LOOKUP, keep="L2")
    s.new_netns()   # the process leaves; the fd is the namespace's last reference
    s.close(ns)
    s.wait_info("L1", "netns_ino", 0)
    s.wait_info("L2", "netns_ino", 0)
    s.link_update("L1", "fd2")                                # ENOLINK
    s.link_update("L1", "fd2", old="fd2", flags=F.REPLACE)    # EPERM comes first
    s.link_detach("L1")
    ns2 = s.netns_fd()
    s.link_create("fd2", ns2, A.FLOW_DISSECTOR, keep="L3")
    s.record_query(ns2, A.FLOW_DISSECTOR)
    return s.out


def xdp_lo(s: Side) -> list[Any]:
    lo = 1
    s.link_create("xdp1", lo, A.XDP, keep="X1")
    s.info("X1", "ifindex")
    s.link_create("xdp2", lo, A.XDP)                          # EBUSY
    s.link_create("xdp2", lo, A.XDP, flags=XDP_FLAGS_DRV_MODE)  # generic active: EEXIST
    s.link_create("xdp2", lo, A.XDP, flags=XDP_FLAGS_HW_MODE)   # no offload: EOPNOTSUPP
    s.link_create("xdp2", lo, A.XDP, flags=XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE)  # EINVAL
    s.link_create("xdp2", lo, A.XDP, flags=XDP_FLAGS_REPLACE)  # link: modes only: EINVAL
    s.link_create("xdp2", 999, A.XDP)                         # no device: EINVAL
    s.link_create("xdp2", lo, A.TCX_INGRESS)                  # attach type: EINVAL
    s.link_update("X1", "xdp2")
    s.link_update("X1", "xdp2")                               # the same: no-op
    s.link_update("X1", "tc1")                                # EINVAL
    s.link_update("X1", "xdp1", old="xdp1", flags=F.REPLACE)  # EPERM
    s.link_update("X1", "xdp1", old="xdp2", flags=F.REPLACE)
    s.link_detach("X1")
    s.info("X1", "ifindex")
    s.link_update("X1", "xdp2")                               # ENOLINK
    s.link_create("xdp2", lo, A.XDP, flags=XDP_FLAGS_SKB_MODE, keep="X2")
    s.link_create("xdp1", lo, A.XDP, flags=XDP_FLAGS_DRV_MODE)  # EEXIST
    s.close(s.fds.pop("X2"))
    s.link_create("xdp2", lo, A.XDP, flags=XDP_FLAGS_DRV_MODE)  # lo has no driver XDP
    s.link_create("xdp2", lo, A.XDP, keep="X3")
    s.info("X3", "ifindex")
    return s.out


def tcx_lo(s: Side) -> list[Any]:
    lo = 1
    ING = A.TCX_INGRESS
    s.record_query(lo, ING)                                   # nothing: count 0, revision 1
    s.link_create("tc1", lo, ING, keep="T1")
    s.link_create("tc1", lo, ING)                             # already there: EEXIST
    s.prog_attach("tc2", ING, lo)
    s.prog_attach("tc3", ING, lo, attach_flags=F.BEFORE, relative_fd=s.prog("tc1"))
    s.record_query(lo, ING)
    s.prog_attach("tc4", ING, lo, expected_revision=2)        # ESTALE
    s.prog_attach("tc4", ING, lo, attach_flags=F.ALLOW_MULTI)  # EINVAL
    s.prog_attach("tc4", ING, lo, attach_flags=F.AFTER, relative_fd=s.prog("xdp1"))  # EINVAL
    s.prog_attach("tc4", ING, lo, attach_flags=F.AFTER, relative_fd=s.prog("tc4"))  # ENOENT
    s.prog_attach("tc4", ING, lo, relative_fd=s.prog("tc1"))  # relative without flag: EINVAL
    s.prog_attach("tc4", ING, 999)                            # ENODEV
    s.prog_detach("tc1", ING, lo)                             # a link's: EBUSY
    s.prog_detach("tc2", ING, lo)
    s.prog_detach("tc2", ING, lo)                             # ENOENT
    s.link_update("T1", "tc3")                                # on the hook already: EEXIST
    s.link_update("T1", "tc4")
    s.link_update("T1", "tc2", old="tc1", flags=F.REPLACE)    # EPERM
    s.link_create("tc2", lo, ING, keep="T2", flags=F.BEFORE | F.LINK,
                  relative_fd=s.fds["T1"])
    s.record_query(lo, ING)
    s.info("T1", "ifindex", "attach_type")
    s.link_detach("T1")
    s.info("T1", "ifindex")
    s.link_update("T1", "tc1")                                # ENOLINK
    s.record_query(lo, ING)
    s.prog_detach("tc3", ING, lo, attach_flags=F.REPLACE)     # EINVAL
    s.prog_detach("tc3", ING, lo)
    s.close(s.fds.pop("T2"))
    s.record_query(lo, ING)                                   # freed: revision 1 again
    s.prog_detach("tc3", ING, lo)                             # ENOENT
    s.link_create("tc1", 999, ING)                            # ENODEV
    s.record_query(lo, A.TCX_EGRESS, query_flags=1)           # EINVAL
    return s.out


def raw_tracepoint(s: Side) -> list[Any]:
    s.raw_tp_open("raw1", b"sched_switch\0", keep="R1", cookie=7)
    s.info("R1", "type", "tp_name_len", "cookie")
    s.raw_tp_open("raw2", b"sched_switch\0", keep="R2")     # many links per tracepoint
    s.raw_tp_open("raw1", b"sched_switch\0")                # the same program again: fine
    s.raw_tp_open("raw1", b"no_such_tracepoint\0")          # ENOENT
    s.raw_tp_open("raw1", None)                              # EFAULT
    s.raw_tp_open("xdp1", b"sched_switch\0")                # EINVAL
    s.link_detach("R1")                                      # no detach: EOPNOTSUPP
    s.link_update("R1", "raw2")                              # no update: EINVAL
    s.close(s.fds.pop("R1"))
    return s.out


def attach_dispatch(s: Side) -> list[Any]:
    """bpf_prog_attach / bpf_prog_detach / bpf_prog_query / link_create dispatch."""
    lo = 1
    s.prog_attach("xdp1", A.XDP, lo)                              # no PROG_ATTACH: EINVAL
    s.prog_attach("xdp1", 200, lo)                                # unknown: EINVAL
    s.prog_attach("tc1", A.TCX_INGRESS, lo, attach_flags=F.ALLOW_OVERRIDE)  # EINVAL
    s.prog_attach("fd1", A.FLOW_DISSECTOR, relative_fd=3)         # EINVAL
    s.prog_attach("fd1", A.FLOW_DISSECTOR, attach_flags=F.BEFORE)  # EINVAL
    s.step(lambda: s.bpf(Cmd.PROG_ATTACH, ProgAttachAttr(
        attach_bpf_fd=BAD_FD, attach_type=A.FLOW_DISSECTOR)))    # EBADF
    s.prog_attach("xdp1", A.FLOW_DISSECTOR)                       # wrong type: EINVAL
    s.prog_detach(None, 200)                                      # EINVAL
    s.prog_detach("tc1", A.TCX_INGRESS, lo, attach_flags=F.ALLOW_MULTI)   # EINVAL
    s.prog_detach("fd1", A.FLOW_DISSECTOR, attach_flags=1)        # EINVAL
    s.prog_detach("fd1", A.FLOW_DISSECTOR, expected_revision=1)   # EINVAL
    s.prog_detach("xdp1", A.TCX_INGRESS, lo)                      # wrong type: EINVAL
    s.prog_detach(None, A.TCX_INGRESS, lo)                        # nothing attached: ENOENT
    s.record_query(lo, A.XDP)                                     # EINVAL
    s.record_query(lo, A.TCX_INGRESS, query_flags=2)              # EINVAL
    s.link_create("tc1", lo, A.XDP)                               # SCHED_CLS on XDP: EINVAL
    s.link_create("xdp1", lo, A.XDP, flags=F.ALLOW_MULTI, keep="X")  # XDP: SKB_MODE
    s.info("X", "ifindex")
    s.link_create("ing1", lo, A.CGROUP_INET_INGRESS)              # lo isn't a cgroup: EBADF
    s.link_create("sk1", s.netns_fd(), A.FLOW_DISSECTOR)          # EINVAL
    return s.out


def xdp_veth(s: Side) -> list[Any]:
    """A device with native XDP, and devices going away under links."""
    a, b = s.add_veth("veth0", "veth1")
    s.out.append([a, b])
    s.link_create("xdp1", a, A.XDP, keep="X1")                    # native by default
    s.link_create("xdp2", a, A.XDP, flags=XDP_FLAGS_SKB_MODE)     # drv active: EEXIST
    s.link_create("xdp2", a, A.XDP, flags=XDP_FLAGS_DRV_MODE)     # EBUSY
    s.link_create("xdp2", a, A.XDP, flags=XDP_FLAGS_HW_MODE)      # no offload: EOPNOTSUPP
    s.link_create("xdp2", b, A.XDP, flags=XDP_FLAGS_SKB_MODE, keep="X2")
    s.link_create("xdp1", b, A.XDP, flags=XDP_FLAGS_DRV_MODE)     # generic active: EEXIST
    s.link_create("tc1", b, A.TCX_EGRESS, keep="T1")
    s.prog_attach("tc2", A.TCX_INGRESS, a)
    s.del_link("veth0")                                           # both ends go
    s.info("X1", "ifindex")
    s.info("X2", "ifindex")
    s.info("T1", "ifindex", "attach_type")
    s.link_update("X1", "xdp2")                                   # ENOLINK
    s.link_update("T1", "tc3")                                    # ENOLINK
    s.link_detach("X1")
    s.link_detach("T1")
    s.record_query(a, A.TCX_INGRESS)                              # no device: ENODEV
    return s.out


#: A frame of a local experimental EtherType (no protocol handler takes it).
FRAME = b"\xff" * 6 + bytes(6) + b"\x88\xb5" + bytes(range(46))


def socket_filter(s: Side) -> list[Any]:
    sk = s.sock_new()
    s.rx(sk, FRAME)                                               # no filter: all 60 bytes
    s.sock_op(sk, "attach", "sf_trunc")
    s.rx(sk, FRAME)                                               # the filter keeps 20
    s.sock_op(sk, "attach", "sf_len")
    s.rx(sk, FRAME)                                               # skb->len from the MAC header
    s.sock_op(sk, "attach", "sf_drop")
    s.rx(sk, FRAME)                                               # dropped
    s.sock_op(sk, "attach", "xdp1")                               # EINVAL
    s.sock_op(sk, "detach")
    s.sock_op(sk, "detach")                                       # ENOENT
    s.rx(sk, FRAME)
    s.sock_op(sk, "attach", "sf_trunc")
    s.sock_op(sk, "lock")
    s.sock_op(sk, "attach", "sf_drop")                            # EPERM
    s.sock_op(sk, "detach")                                       # EPERM
    s.rx(sk, FRAME)
    return s.out


def datapath_veth(s: Side) -> list[Any]:
    """Frames through a veth pair: XDP on the receiving end, tcx egress on the sender."""
    a, b = s.add_veth("veth0", "veth1")
    ta, tb = s.tap("veth0"), s.tap("veth1")
    s.sent(ta, FRAME)
    s.got(tb)                                                     # as sent
    s.link_create("xdp_mark", b, A.XDP, keep="X")
    s.sent(ta, FRAME)
    s.got(tb)                                                     # first byte rewritten
    s.link_update("X", "xdp2")                                    # XDP_DROP
    s.sent(ta, FRAME)
    s.got(tb)
    s.link_update("X", "xdp1")                                    # XDP_PASS
    s.sent(ta, FRAME)
    s.got(tb)
    s.link_update("X", "xdp_tx")                                  # XDP_TX: back to veth0
    s.sent(ta, FRAME)
    s.got(tb)
    s.got(ta)                                                     # veth0 has no XDP: lost
    s.link_create("xdp1", a, A.XDP, keep="XA")
    s.sent(ta, FRAME)
    s.got(tb)
    s.got(ta)                                                     # now it comes back
    s.link_detach("XA")
    s.link_detach("X")
    s.link_create("tc3", a, A.TCX_EGRESS, keep="T")               # TCX_DROP on the way out
    s.sent(ta, FRAME)
    s.got(tb)
    s.link_update("T", "tc1")                                     # TCX_NEXT: goes out
    s.sent(ta, FRAME)
    s.got(tb)
    return s.out


def tcx_positions(s: Side) -> list[Any]:
    """bpf_mprog: REPLACE, detaching by position, relative ids."""
    lo, ING = 1, A.TCX_INGRESS
    s.prog_attach("tc1", ING, lo)
    s.prog_attach("tc2", ING, lo, attach_flags=F.REPLACE, replace_bpf_fd=s.prog("tc1"))
    s.record_query(lo, ING)
    s.prog_attach("tc3", ING, lo, attach_flags=F.REPLACE, replace_bpf_fd=s.prog("tc1"))
    s.prog_attach("tc3", ING, lo, attach_flags=F.REPLACE | F.BEFORE,
                  replace_bpf_fd=s.prog("tc2"))                   # ERANGE
    s.prog_attach("tc3", ING, lo, attach_flags=F.REPLACE, replace_bpf_fd=s.prog("xdp1"))
    s.link_create("tc1", lo, ING, keep="T1")
    s.prog_attach("tc3", ING, lo, attach_flags=F.REPLACE, replace_bpf_fd=s.prog("tc1"))
    s.record_query(lo, ING)
    s.prog_attach("tc4", ING, lo, attach_flags=F.AFTER)
    s.record_query(lo, ING)
    s.prog_detach(None, ING, lo, attach_flags=F.BEFORE, relative_fd=s.prog("tc4"))
    s.record_query(lo, ING)
    s.prog_detach(None, ING, lo, attach_flags=F.AFTER)
    s.record_query(lo, ING)
    s.prog_detach(None, ING, lo, attach_flags=F.BEFORE)
    s.record_query(lo, ING)
    s.prog_detach(None, ING, lo)                                  # the last: a link's, EBUSY
    s.prog_attach("tc4", ING, lo, attach_flags=F.BEFORE | F.AFTER,
                  relative_fd=s.prog("tc2"))                      # tc2 is gone: ENOENT
    s.record_query(lo, ING)
    s.link_create("tc4", lo, ING, flags=F.REPLACE)                # link: no REPLACE
    s.link_create("tc3", lo, ING, flags=F.LINK)                   # LINK without fd: EINVAL
    s.link_create("tc3", lo, ING, flags=F.AFTER | F.LINK | F.ID, relative_fd=99999)
    return s.out


def redirect_veth(s: Side) -> list[Any]:
    """bpf_redirect from tc egress and from XDP, between two veth pairs."""
    a, b = s.add_veth("veth0", "veth1")
    c, d = s.add_veth("veth2", "veth3")
    s.out.append([a, b, c, d])
    ta, tb, tc, td = s.tap("veth0"), s.tap("veth1"), s.tap("veth2"), s.tap("veth3")
    call = "mov %r1, {}\nmov %r2, {}\ncall 23\nexit"
    s.define("to_c", ProgType.SCHED_CLS, call.format(c, 0))
    s.define("into_c", ProgType.SCHED_CLS, call.format(c, 1))
    s.define("to_none", ProgType.SCHED_CLS, call.format(99, 0))
    s.define("xdp_to_c", ProgType.XDP, call.format(c, 0))
    s.link_create("to_c", a, A.TCX_EGRESS, keep="T")               # out of veth2
    s.sent(ta, FRAME)
    s.got(tb)
    s.got(tc)                                                     # veth2's tap: outgoing copy
    s.got(td)                                                     # arrives at veth3
    s.link_update("T", "into_c")                                  # BPF_F_INGRESS: into veth2
    s.sent(ta, FRAME)
    s.got(tb)
    s.got(tc)
    s.got(td)
    s.link_update("T", "to_none")                                 # nowhere: lost
    s.sent(ta, FRAME)
    s.got(tb)
    s.got(td)
    s.link_detach("T")
    s.link_create("xdp_to_c", b, A.XDP, flags=XDP_FLAGS_SKB_MODE, keep="X")  # generic
    s.sent(ta, FRAME)
    s.got(tb)
    s.got(tc)                                                     # generic_xdp_tx: no taps
    s.got(td)
    s.link_detach("X")
    s.link_create("xdp_to_c", b, A.XDP, keep="X2")                # native: ndo_xdp_xmit
    s.sent(ta, FRAME)
    s.got(td)                                                     # veth3 runs no XDP: lost
    s.link_create("xdp1", d, A.XDP, keep="XD")
    s.sent(ta, FRAME)
    s.got(tc)
    s.got(td)
    return s.out


def perf_event_links(s: Side) -> list[Any]:
    """bpf_perf_link_attach on a software event (perf_event_set_bpf_handler)."""
    PE = A.PERF_EVENT
    ev = s.perf_open()
    s.link_create("pe1", ev, PE, keep="L", bpf_cookie=9)
    s.info("L", "perf_event_type", "event_type", "config", "cookie")
    s.link_create("pe2", ev, PE)                                  # occupied: EEXIST
    s.link_create("kp1", ev, PE)                                  # EEXIST comes first
    s.link_detach("L")                                            # no detach: EOPNOTSUPP
    s.link_update("L", "pe2")                                     # no update: EINVAL
    s.close(s.fds.pop("L"))
    s.link_create("kp1", ev, PE)                                  # a kprobe program: EINVAL
    s.link_create("pe2", ev, PE, flags=1)                         # EINVAL
    s.link_create("pe2", BAD_FD, PE)                              # EBADF
    s.link_create("pe2", s.prog("pe1"), PE)                       # not a perf event: EBADF
    s.link_create("pe2", ev, A.XDP)                               # attach type: EINVAL
    s.link_create("pe2", ev, PE, keep="L2")
    s.info("L2", "perf_event_type", "cookie")
    return s.out


def tracepoint_links(s: Side) -> list[Any]:
    """perf_event_set_bpf_prog on tracepoint events: one program per event, the
    trace event's array shared by every perf event on it."""
    PE = A.PERF_EVENT
    ev1, ev2, ev3 = (s.tp_open("sched/sched_switch") for _ in range(3))
    s.link_create("tp1", ev1, PE, keep="L1", bpf_cookie=3)
    s.info("L1", "perf_event_type", "name_len", "cookie")
    s.link_create("tp1", ev2, PE)                                 # on the tracepoint: EEXIST
    s.link_create("tp2", ev1, PE)                                 # event taken: EEXIST
    s.link_create("kp1", ev1, PE)                                 # type first: EINVAL
    s.link_create("pe1", ev2, PE)                                 # EINVAL
    s.link_create("tp2", ev2, PE, keep="L2")
    s.step(lambda: s.set_bpf(ev3, "tp2"))                         # in the array: EEXIST
    s.step(lambda: s.set_bpf(ev3, "tp3"))
    s.step(lambda: s.set_bpf(ev3, "tp1"))                         # event taken: EEXIST
    s.close(s.fds.pop("L1"))
    s.link_create("tp1", ev2, PE)                                 # ev2 still taken: EEXIST
    s.link_create("tp1", ev1, PE, keep="L3")                      # ev1 free again
    s.link_detach("L3")                                           # EOPNOTSUPP
    return s.out


#: Programs and flags the generated tcx operations draw from.
TCX_PROGS = ("tc1", "tc2", "tc3", "tc4")
TCX_FLAGS = (0, F.BEFORE, F.AFTER, F.REPLACE, F.BEFORE | F.AFTER, F.BEFORE | F.ID,
             F.AFTER | F.LINK, F.REPLACE | F.BEFORE)


def tcx_ops(s: Side, ops: list[list[Any]]) -> list[Any]:
    """Run generated operations on lo's tcx ingress hook: ["attach", prog, flags,
    relative prog or None, replaced prog or None], ["detach", prog or None, flags,
    relative prog or None], ["link", prog, flags, relative link index or None],
    ["unlink", link index], and a query after each step."""
    lo, ING = 1, A.TCX_INGRESS
    links: list[str] = []

    def rel(flags: int, name: str | None) -> int:
        """The relative fd or id: of a program, or with BPF_F_LINK of one of the
        links made so far (the one the program's number picks)."""
        if name is None:
            return 0
        if flags & F.LINK:
            live = [k for k in links if k]
            if not live:
                return 0
            link = live[TCX_PROGS.index(name) % len(live)] if name in TCX_PROGS else name
            return s.prog_id(s.fds[link]) if flags & F.ID else s.fds[link]
        return s.prog_id(s.prog(name)) if flags & F.ID else s.prog(name)

    for op in ops:
        kind = op[0]
        if kind == "attach":
            _, prog, flags, relative, replaced = op
            # no program to replace: an fd open on neither side (fd 0 is the
            # kernel process's stdin, EINVAL there, but pyebpf's fds start at 3)
            s.prog_attach(prog, ING, lo, attach_flags=flags, relative_fd=rel(flags, relative),
                          replace_bpf_fd=s.prog(replaced) if replaced else BAD_FD)
        elif kind == "detach":
            _, prog, flags, relative = op
            s.prog_detach(prog, ING, lo, attach_flags=flags, relative_fd=rel(flags, relative))
        elif kind == "link":
            _, prog, flags, li = op
            target = links[li % len(links)] if li is not None and links else None
            name = f"K{len(links)}"
            # a link as the relative one only with BPF_F_LINK: ids of one kind read
            # as the other differ between the two sides
            s.link_create(prog, lo, ING, keep=name, flags=flags,
                          relative_fd=rel(flags, target) if target and flags & F.LINK else 0)
            if name in s.fds:
                links.append(name)
            else:
                links.append("")  # keeps indexes stable; never used as a target
        elif kind == "unlink" and links and links[op[1] % len(links)]:
            name = links[op[1] % len(links)]
            s.link_detach(name)
        s.record_query(lo, ING)
    return s.out


#: What the generated cgroup operations draw from.
CG_DIRS = ("p", "p/c", "p/c/g")
CG_PROGS = ("ing1", "ing2", "ing3")
CG_FLAGS = (0, F.ALLOW_OVERRIDE, F.ALLOW_MULTI, F.ALLOW_MULTI | F.REPLACE,
            F.ALLOW_MULTI | F.PREORDER, F.ALLOW_MULTI | F.BEFORE, F.ALLOW_MULTI | F.AFTER,
            F.ALLOW_OVERRIDE | F.ALLOW_MULTI, F.REPLACE)


def cgroup_ops(s: Side, ops: list[list[Any]]) -> list[Any]:
    """Generated operations on a three-level cgroup hierarchy's ingress hook:
    ["attach", dir, prog, flags, replaced prog or None], ["detach", dir, prog or
    None], ["link", dir, prog, flags], ["unlink", link index]; after each, the
    attached list of the directory and the effective list of the deepest one."""
    ING = A.CGROUP_INET_INGRESS
    fds = {d: s.cgroup_fd(d) for d in CG_DIRS}
    links: list[str] = []
    for op in ops:
        kind, d = op[0], op[1] if len(op) > 1 else CG_DIRS[0]
        if kind == "attach":
            _, d, prog, flags, replaced = op
            s.prog_attach(prog, ING, fds[d], attach_flags=flags,
                          replace_bpf_fd=s.prog(replaced) if replaced else BAD_FD)
        elif kind == "detach":
            _, d, prog = op
            s.prog_detach(prog, ING, fds[d])
        elif kind == "link":
            _, d, prog, flags = op
            name = f"K{len(links)}"
            s.link_create(prog, fds[d], ING, keep=name, flags=flags)
            links.append(name if name in s.fds else "")
        elif kind == "unlink":
            live = [k for k in links if k]
            d = CG_DIRS[0]
            if live:
                s.link_detach(live[op[1] % len(live)])
        s.record_query(fds[d], ING)
        s.record_query(fds[CG_DIRS[-1]], ING, query_flags=1)
    return s.out


SCENARIOS: dict[str, Callable[[Side], list[Any]]] = {
    "tracepoint_links": tracepoint_links,
    "perf_event_links": perf_event_links,
    "redirect_veth": redirect_veth,
    "tcx_positions": tcx_positions,
    "datapath_veth": datapath_veth,
    "socket_filter": socket_filter,
    "xdp_veth": xdp_veth,
    "attach_dispatch": attach_dispatch,
    "raw_tracepoint": raw_tracepoint,
    "netns_flow_dissector": netns_flow_dissector,
    "netns_sk_lookup": netns_sk_lookup,
    "netns_gone": netns_gone,
    "xdp_lo": xdp_lo,
    "tcx_lo": tcx_lo,
}


class PyebpfSide(Side):
    """pyebpf's bpf() on its own Runtime."""

    def __init__(self) -> None:
        super().__init__()
        from pyebpf.runtime import Runtime

        self.rt = Runtime()

    def bpf(self, cmd: int, attr: Any) -> Any:
        from pyebpf.syscall import bpf

        return bpf(cmd, attr, runtime=self.rt)

    def load(self, prog_type: int, insns: bytes, eat: int) -> int:
        from pyebpf.attr import ProgLoadAttr

        return int(self.bpf(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=prog_type, insns=insns, license="GPL", expected_attach_type=eat)))

    def netns_fd(self) -> int:
        from pyebpf.links import current_net

        return current_net(self.rt).open()

    def new_netns(self) -> None:
        from pyebpf.links import Netns, current_net, set_current_net

        old = current_net(self.rt)
        set_current_net(self.rt, Netns(self.rt))
        old.exit()

    def close(self, fd: int) -> None:
        self.rt.close(fd)

    def link_info(self, fd: int) -> dict[str, int]:
        info = _info(self, fd)
        return {"type": info.type, "id": info.id, "prog_id": info.prog_id, **info.details}

    def query(self, target: int, attach_type: int, *, query_flags: int = 0,
              cnt: int = 64) -> tuple[int, list[int], int]:
        r = self.bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=target, attach_type=attach_type,
                                                   query_flags=query_flags, prog_cnt=cnt))
        return r.prog_cnt, list(r.prog_ids), r.revision

    def prog_id(self, fd: int) -> int:
        return self.rt.fds[fd].obj.id

    def cgroup_fd(self, path: str) -> int:
        from pyebpf.links.cgroup import cgroup_root

        return cgroup_root(self.rt).mkdir_p(path).open()

    def add_veth(self, name: str, peer: str) -> tuple[int, int]:
        from pyebpf.links import Netdev, current_net

        a, b = Netdev.veth_pair(current_net(self.rt), name, peer)
        return a.ifindex, b.ifindex

    def sock_new(self) -> Any:
        from pyebpf.links import Socket

        return Socket(self.rt, "packet")

    def sock_call(self, sock: Any, op: str, prog: str | None = None) -> None:
        if op == "attach":
            assert prog is not None
            sock.attach_bpf(self.prog(prog))
        elif op == "detach":
            sock.detach_filter()
        else:
            sock.lock_filter()

    def sock_rx(self, sock: Any, frame: bytes) -> int | None:
        got = sock.receive(frame)
        return None if got is None else len(got)

    def tp_open(self, name: str) -> int:
        from pyebpf.links.tracing import open_tracepoint

        return open_tracepoint(self.rt, name)

    def set_bpf(self, event: int, prog: str) -> None:
        from pyebpf.links.tracing import perf_event_set_bpf

        perf_event_set_bpf(self.rt, event, self.prog(prog))

    def perf_open(self) -> int:
        from pyebpf.maps.perf_event_array import PerfEventAttr, perf_event_open

        return perf_event_open(self.rt, PerfEventAttr(type=1, config=2, sample_type=0),
                               cpu=-1, pid=0)

    def tap(self, dev: str) -> Any:
        from pyebpf.links import Socket, current_net

        return Socket(self.rt, "packet", dev=current_net(self.rt).device_by_name(dev))

    def send(self, tap: Any, frame: bytes) -> None:
        tap.send(frame)

    def recv(self, tap: Any) -> tuple[int, int] | None:
        if not tap.queue:
            return None
        got = tap.queue.pop(0)
        return len(got), got[0]

    def del_link(self, name: str) -> None:
        from pyebpf.links import current_net

        dev = current_net(self.rt).device_by_name(name)
        assert dev is not None
        dev.unregister()


def cgroup_rules(s: Side) -> list[Any]:
    ING = A.CGROUP_INET_INGRESS
    p, c, g = s.cgroup_fd("p"), s.cgroup_fd("p/c"), s.cgroup_fd("p/c/g")
    s.prog_attach("ing1", ING, p)
    s.prog_attach("ing2", ING, c)                                 # parent exclusive: EPERM
    s.prog_attach("ing2", ING, p)                                 # replaces
    s.record_query(p, ING)
    s.prog_attach("ing1", ING, p, attach_flags=F.ALLOW_MULTI)     # other mode: EPERM
    s.prog_attach("ing1", ING, p, attach_flags=F.ALLOW_MULTI | F.ALLOW_OVERRIDE)  # EINVAL
    s.prog_attach("ing1", ING, p, attach_flags=F.REPLACE)         # REPLACE w/o MULTI: EINVAL
    s.prog_detach("ing1", ING, p)                                 # legacy: detaches ing2
    s.prog_detach("ing1", ING, p)                                 # ENOENT
    s.prog_attach("ing1", ING, p, attach_flags=F.ALLOW_OVERRIDE)
    s.prog_attach("ing2", ING, c)                                 # overridable parent: fine
    s.prog_attach("ing3", ING, g)                                 # exclusive parent: EPERM
    s.record_query(g, ING, query_flags=1)                         # effective: c's only
    s.record_query(c, ING, query_flags=1)
    s.prog_detach("ing2", ING, c)
    s.prog_detach("ing1", ING, p)
    s.prog_attach("ing1", ING, p, attach_flags=F.ALLOW_MULTI)
    s.prog_attach("ing2", ING, p, attach_flags=F.ALLOW_MULTI)
    s.prog_attach("ing1", ING, p, attach_flags=F.ALLOW_MULTI)     # twice: EINVAL
    s.prog_attach("ing3", ING, c, attach_flags=F.ALLOW_MULTI)
    s.record_query(c, ING, query_flags=1)                         # own first, then parent's
    s.record_query(g, ING, query_flags=1)
    s.prog_attach("ing3", ING, c, attach_flags=F.ALLOW_MULTI | F.REPLACE,
                  replace_bpf_fd=s.prog("ing1"))                  # not in c: ENOENT
    s.prog_attach("ing1", ING, c, attach_flags=F.ALLOW_MULTI | F.REPLACE,
                  replace_bpf_fd=s.prog("ing3"))
    s.record_query(c, ING)
    s.prog_detach(None, ING, c)                                   # MULTI needs the prog: EINVAL
    s.prog_detach("ing2", ING, c)                                 # ENOENT
    s.link_create("ing2", c, ING, keep="L1")
    s.link_create("ing2", c, ING, flags=F.ALLOW_MULTI)            # EINVAL
    s.link_create("ing2", c, ING, keep="L2")                      # same prog, other link: fine
    s.link_update("L1", "ing3")
    s.link_update("L1", "xdp1")                                   # EINVAL
    s.link_update("L1", "ing1", old="ing2", flags=F.REPLACE)      # EPERM
    s.record_query(c, ING)
    s.prog_detach("ing3", ING, c)                                 # a link's program: ENOENT
    s.info("L1", "attach_type")
    s.link_detach("L1")
    s.info("L1", "cgroup_id")
    s.link_update("L1", "ing1")                                   # ENOLINK
    s.record_query(c, ING)
    s.prog_attach("ing3", ING, c, attach_flags=F.ALLOW_MULTI, expected_revision=1)  # ESTALE
    s.prog_attach("ing1", A.CGROUP_INET_EGRESS, c)                # expected ingress: EINVAL
    s.prog_attach("ing1", ING, s.prog("xdp1"))                    # not a cgroup: EBADF
    s.prog_attach("ing1", ING, BAD_FD)                            # EBADF
    s.link_create("ing1", BAD_FD, ING)                            # EBADF
    s.close(s.fds.pop("L2"))
    s.record_query(c, ING)
    return s.out


SCENARIOS["cgroup_rules"] = cgroup_rules


def cgroup_order(s: Side) -> list[Any]:
    ING = A.CGROUP_INET_INGRESS
    M = F.ALLOW_MULTI
    p, c = s.cgroup_fd("p"), s.cgroup_fd("p/c")
    s.prog_attach("ing1", ING, c, attach_flags=M)
    s.prog_attach("ing2", ING, c, attach_flags=M | F.BEFORE, relative_fd=s.prog("ing1"))
    s.prog_attach("ing3", ING, c, attach_flags=M | F.BEFORE)
    s.record_query(c, ING)
    s.prog_detach("ing3", ING, c)
    s.prog_attach("ing3", ING, c, attach_flags=M | F.AFTER, relative_fd=s.prog("ing2"))
    s.record_query(c, ING)
    s.prog_detach("ing3", ING, c)
    s.prog_attach("ing3", ING, c, attach_flags=M, relative_fd=s.prog("ing2"))   # no flag
    s.prog_attach("ing3", ING, c, attach_flags=M | F.AFTER, relative_fd=s.prog("xdp1"))
    s.prog_attach("ing3", ING, c, attach_flags=M | F.AFTER | F.ID, relative_fd=99999)
    s.prog_attach("ing3", ING, p, attach_flags=M | F.AFTER, relative_fd=s.prog("ing1"))
    s.prog_attach("ing3", ING, c, attach_flags=M | F.REPLACE | F.BEFORE,
                  replace_bpf_fd=s.prog("ing1"))
    s.prog_attach("ing1", ING, p, attach_flags=M)
    s.prog_attach("ing3", ING, p, attach_flags=M | F.PREORDER)
    s.record_query(c, ING, query_flags=1)
    s.prog_detach("ing1", ING, c)
    s.prog_attach("ing1", ING, c, attach_flags=M | F.PREORDER)
    s.record_query(c, ING, query_flags=1)
    return s.out


SCENARIOS["cgroup_order"] = cgroup_order
