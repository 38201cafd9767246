"""Netfilter programs and links on pyebpf and on the real kernel.

Each scenario runs in a child process that first unshares its network
namespace (netfilter links go on the caller's namespace; the test run's
devices are that namespace's loopback), prints its outcomes as JSON, and runs
again on a fresh pyebpf Runtime here:

- ``link_rules``: bpf_nf_link_attach's checks (pf, hooknum, flags, priority
  ranges, the defrag flag), EBUSY for a taken priority (the defrag hooks'
  included), update EOPNOTSUPP, detach, the link info;
- ``test_runs``: bpf_prog_test_run_nf's ctx_in and data_in rules, and what the
  program sees (state->hook/pf/in/out, skb->len, protocol, data - head, the
  header offsets, skb->dev, the devices' ifindex and name, NULL ones reading 0)
  probed bit by bit through the BTF walk;
- ``ctx_access``: load verdicts for nf_is_valid_access and the return range;
- ``hook_path``: programs on the hooks a UDP datagram to 127.0.0.1 passes
  (LOCAL_OUT, POST_ROUTING, PRE_ROUTING, LOCAL_IN): whether it is refused on
  the way out (sendto's EPERM), lost on the way in, or delivered;
- ``example``: examples/netfilter_telnet.o (CO-RE, bpf_probe_read_kernel, an
  array map) on LOCAL_OUT: which datagrams it refuses, and its count.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from links.scenarios import PyebpfSide, Side  # tests/links (tests/ is on sys.path)
from pyebpf.errors import BpfError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.uapi import AttachType, ProgType

pytestmark = pytest.mark.kernel

_ROOT = Path(__file__).resolve().parents[2]
NF = int(AttachType.NETFILTER)
PT = int(ProgType.NETFILTER)
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
ETH_IP = bytes(6) + bytes(6) + b"\x08\x00"
ETH_IP6 = bytes(12) + b"\x86\xdd"
IPV4 = bytes([0x45, 0]) + struct.pack(">H", 28) + bytes(16)
IPV6 = bytes([0x60]) + bytes(39)


def _errname(e: BpfError) -> str:
    import errno

    return errno.errorcode.get(e.errno or 0, str(e.errno))


def _nf(side: Side, pf: int, hook: int, prio: int, *, nf_flags: int = 0, flags: int = 0,
        prog: str = "accept", keep: str | None = None) -> None:
    side.link_create(prog, 0, NF, keep=keep, flags=flags, netfilter_pf=pf,
                     netfilter_hooknum=hook, netfilter_priority=prio,
                     netfilter_flags=nf_flags)


def link_rules(side: Side) -> list[Any]:
    side.define("accept", PT, "mov %r0, 1\nexit", NF)
    side.define("drop", PT, "mov %r0, 0\nexit", NF)
    side.define("no_eat", PT, "mov %r0, 1\nexit", 0)
    side.define("xdp", int(ProgType.XDP), "mov %r0, 2\nexit")
    _nf(side, 2, 1, 10, flags=1)
    for pf in (0, 1, 7, 12):
        _nf(side, pf, 1, 10)
    for hook in (5, 6, 255):
        _nf(side, 2, hook, 10)
    _nf(side, 10, 5, 10)
    _nf(side, 2, 1, 10, nf_flags=2)
    _nf(side, 2, 1, 10, nf_flags=3)
    for prio in (INT_MIN, INT_MAX):
        _nf(side, 2, 1, prio)
        _nf(side, 10, 4, prio)
    for prio in (-401, -400):
        _nf(side, 2, 1, prio, nf_flags=1)
    _nf(side, 2, 1, INT_MIN + 1, keep="first")
    _nf(side, 2, 1, INT_MAX - 1, keep="last")
    _nf(side, 2, 1, 10, keep="l1")
    _nf(side, 2, 1, 10)
    _nf(side, 2, 1, 10, prog="drop")
    _nf(side, 10, 1, 10, keep="l6")
    _nf(side, 2, 2, 10, keep="fwd")
    _nf(side, 2, 0, -400, keep="pre400")
    _nf(side, 2, 1, -300, nf_flags=1, keep="defrag")  # registers defrag at -400 (0, 3)
    _nf(side, 2, 3, -400)  # LOCAL_OUT: the defrag op's priority
    _nf(side, 2, 1, -400, keep="in400")
    _nf(side, 10, 3, -400, keep="v6out400")  # IPv6 defrag is not enabled
    _nf(side, 10, 1, -399, nf_flags=1, keep="defrag6")
    _nf(side, 10, 0, -400)
    _nf(side, 2, 1, 11, prog="no_eat")
    _nf(side, 2, 1, 11, prog="xdp")
    for name in ("l1", "l6", "defrag", "first"):
        side.info(name, "type", "pf", "hooknum", "priority", "flags")
    side.link_update("l1", "drop")
    side.link_update("l1", "accept")
    side.link_detach("l1")
    side.info("l1", "type", "pf", "hooknum", "priority", "flags")
    side.link_detach("l1")
    side.link_update("l1", "drop")
    _nf(side, 2, 1, 10, keep="l1b")
    side.close(side.fds["defrag"])
    _nf(side, 2, 3, -400, keep="out400")
    side.close(side.fds["defrag6"])
    _nf(side, 10, 0, -400)
    return side.out


#: (name, ctx offset of the struct pointer, assembly computing r0 from r2).
_FIELDS: dict[str, tuple[int, str, int]] = {
    "hook": (0, "ldxb %r0, [%r2+0]", 4),
    "pf": (0, "ldxb %r0, [%r2+1]", 4),
    "len": (8, "ldxw %r0, [%r2+112]", 8),
    "protocol": (8, "ldxh %r0, [%r2+176]", 16),
    "data_off": (8, "ldxdw %r0, [%r2+200]\nldxdw %r3, [%r2+192]\nsub %r0, %r3", 8),
    "network_header": (8, "ldxh %r0, [%r2+180]", 8),
    "mac_header": (8, "ldxh %r0, [%r2+182]", 16),
    "skb_iif": (8, "ldxw %r0, [%r2+144]", 4),
    # through the device pointers (a NULL one reads 0: BPF_PROBE_MEM)
    "in.ifindex": (0, "ldxdw %r3, [%r2+8]\nldxw %r0, [%r3+224]", 4),
    "out.ifindex": (0, "ldxdw %r3, [%r2+16]\nldxw %r0, [%r3+224]", 4),
    "out.name0": (0, "ldxdw %r3, [%r2+16]\nldxb %r0, [%r3+280]", 8),
    "dev.ifindex": (8, "ldxdw %r3, [%r2+16]\nldxw %r0, [%r3+224]", 4),
}
#: Pointer members tested against NULL: (ctx offset, member offset).
_NONNULL: dict[str, tuple[int, int]] = {"in": (0, 8), "out": (0, 16), "net": (0, 32),
                                        "sk": (0, 24), "dev": (8, 16)}


def _probe_text(ctx_off: int, body: str, bit: int) -> str:
    return f"ldxdw %r2, [%r1+{ctx_off}]\n{body}\nrsh %r0, {bit}\nand %r0, 1\nexit"


def _nonnull_text(ctx_off: int, member: int) -> str:
    return (f"ldxdw %r2, [%r1+{ctx_off}]\nmov %r0, 0\nldxdw %r3, [%r2+{member}]\n"
            "jeq %r3, 0, +1\nmov %r0, 1\nexit")


def _eth_hook(pf: int, hook: int) -> bytes:
    return bytes([hook, pf]) + bytes(46)


#: (label, data_in, ctx_in, flags, repeat).
_RUNS: list[tuple[str, bytes, bytes | None, int, int]] = [
    ("default", IPV4, None, 0, 0),
    ("default_ipv6_bytes", IPV6, None, 0, 0),
    ("short", IPV4[:19], None, 0, 0),
    ("too_big", bytes(3713), None, 0, 0),
    ("max", bytes(3712), None, 0, 0),
    ("flags", IPV4, None, 1, 0),
    ("repeat", IPV4, None, 0, 3),
    ("local_in", ETH_IP + IPV4, _eth_hook(2, 1), 0, 0),
    ("pre_v6", ETH_IP6 + IPV6, _eth_hook(10, 0), 0, 0),
    ("pre_v6_short", ETH_IP6 + IPV6[:30], _eth_hook(10, 0), 0, 0),
    ("v6_hook_v4_frame", ETH_IP + IPV4, _eth_hook(10, 1), 0, 0),
    ("v4_hook_v6_frame", ETH_IP6 + IPV6, _eth_hook(2, 1), 0, 0),
    ("other_ethertype", bytes(12) + b"\x88\xb5" + IPV4, _eth_hook(2, 0), 0, 0),
    ("short_frame", ETH_IP + IPV4[:19], _eth_hook(2, 4), 0, 0),
    ("local_out_ctx", IPV4, _eth_hook(2, 3), 0, 0),
    ("local_out_v6", IPV6, _eth_hook(10, 3), 0, 0),
    ("odd_hook", ETH_IP + IPV4, _eth_hook(2, 9), 0, 0),
    ("pf_zero", IPV4, _eth_hook(0, 3), 0, 0),
    ("pf_bridge", IPV4, _eth_hook(7, 3), 0, 0),
    ("in_set", IPV4, bytes([3, 2]) + bytes(6) + b"\x01" + bytes(39), 0, 0),
    ("okfn_set", IPV4, bytes([3, 2]) + bytes(38) + b"\x01" + bytes(7), 0, 0),
    ("padding_set", IPV4, bytes([3, 2, 1]) + bytes(45), 0, 0),
    ("short_ctx", IPV4, bytes([3, 2]), 0, 0),
    ("long_ctx_zero", IPV4, _eth_hook(2, 3) + bytes(8), 0, 0),
    ("long_ctx_nonzero", IPV4, _eth_hook(2, 3) + b"\x01" + bytes(7), 0, 0),
]


def _probes() -> list[tuple[str, str]]:
    out = [(f"{name}.{bit}", _probe_text(ctx_off, body, bit))
           for name, (ctx_off, body, bits) in _FIELDS.items() for bit in range(bits)]
    out += [(f"{name}!=0", _nonnull_text(*where)) for name, where in _NONNULL.items()]
    return out


def nf_test_runs(side: Side, run: Callable[..., Any]) -> list[Any]:
    out: list[Any] = []
    fds = {}
    for name, text in _probes():
        try:
            fds[name] = side.load(PT, encode(asm(text)), NF)
        except BpfError as e:
            out.append([name, "load", _errname(e)])
    for label, data, ctx, flags, repeat in _RUNS:
        row: dict[str, Any] = {}
        for name, fd in fds.items():
            try:
                row[name] = run(fd, data, ctx, flags, repeat)
            except BpfError as e:
                row[name] = _errname(e)
        # every probe gives the same errno when the run is refused: keep one
        values = set(map(str, row.values()))
        if len(values) == 1 and not next(iter(values)).isdigit():
            out.append([label, next(iter(values))])
        else:
            out.append([label, row])
    return out


_ACCESS = {
    "state": "ldxdw %r2, [%r1+0]\nmov %r0, 1\nexit",
    "skb": "ldxdw %r2, [%r1+8]\nmov %r0, 1\nexit",
    "narrow": "ldxw %r2, [%r1+0]\nmov %r0, 1\nexit",
    "narrow_skb": "ldxw %r2, [%r1+12]\nmov %r0, 1\nexit",
    "past_end": "ldxdw %r2, [%r1+16]\nmov %r0, 1\nexit",
    "negative": "ldxdw %r2, [%r1-8]\nmov %r0, 1\nexit",
    "unaligned": "ldxdw %r2, [%r1+4]\nmov %r0, 1\nexit",
    "write_ctx": "mov %r2, 0\nstxdw [%r1+0], %r2\nmov %r0, 1\nexit",
    "write_state": "ldxdw %r2, [%r1+0]\nmov %r3, 1\nstxb [%r2+0], %r3\nmov %r0, 1\nexit",
    "write_skb_mark": "ldxdw %r2, [%r1+8]\nmov %r3, 1\nstxw [%r2+164], %r3\n"
                      "mov %r0, 1\nexit",
    "ret2": "mov %r0, 2\nexit",
    "ret_neg": "mov %r0, -1\nexit",
    "ret_len": "ldxdw %r2, [%r1+8]\nldxw %r0, [%r2+112]\nexit",
    "ret_bit": "ldxdw %r2, [%r1+8]\nldxw %r0, [%r2+112]\nand %r0, 1\nexit",
    "state_ptr_math": "ldxdw %r2, [%r1+0]\nadd %r2, 8\nldxdw %r0, [%r2+0]\nmov %r0, 1\n"
                      "exit",
    "ret_ptr": "ldxdw %r0, [%r1+0]\nexit",
    "helper_ktime": "call 5\nmov %r0, 1\nexit",
    "helper_skb_load_bytes": "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\n"
                             "call 26\nmov %r0, 1\nexit",
    "helper_redirect": "mov %r1, 1\nmov %r2, 0\ncall 23\nmov %r0, 1\nexit",
}


def ctx_access(side: Side) -> list[Any]:
    out = []
    for name, text in _ACCESS.items():
        try:
            fd = side.load(PT, encode(asm(text)), NF)
            side.close(fd)
            out.append([name, "ok"])
        except BpfError as e:
            out.append([name, _errname(e)])
    return out


#: The hooks a locally sent and received IPv4 packet passes, in order.
_LOCAL_PATH = ((3, "out"), (4, "out"), (0, "in"), (1, "in"))
_UDP_PORT = 4789


def _kernel_send(payload: bytes, port: int = _UDP_PORT) -> str:
    """A UDP datagram from 127.0.0.1 to itself: "EPERM" when sendto fails (a drop on
    the way out), "lost" when it never arrives (a drop on the way in), "delivered"."""
    import socket

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", port))
        rx.settimeout(0.2)
        try:
            tx.sendto(payload, ("127.0.0.1", port))
        except OSError as e:
            return _errno_name(e.errno or 0)
        try:
            return "delivered" if rx.recv(2048) == payload else "garbled"
        except TimeoutError:
            return "lost"
    finally:
        rx.close()
        tx.close()


def _errno_name(e: int) -> str:
    import errno

    return errno.errorcode.get(e, str(e))


def _pyebpf_send(side: PyebpfSide) -> Callable[..., str]:
    """The same datagram through pyebpf's hooks of the current namespace: out of lo
    (LOCAL_OUT, POST_ROUTING), back in (PRE_ROUTING, LOCAL_IN)."""
    from pyebpf.links import current_net

    def send(payload: bytes, port: int = _UDP_PORT) -> str:
        net = current_net(side.rt)
        lo = net.device_by_name("lo")
        udp = struct.pack(">HHHH", 40000, port, 8 + len(payload), 0) + payload
        ip = bytes([0x45, 0]) + struct.pack(">H", 20 + len(udp)) + bytes(4) + \
            bytes([64, 17]) + bytes(2) + bytes([127, 0, 0, 1]) * 2 + udp
        for hook, way in _LOCAL_PATH:
            devs = {"in_dev": lo} if way == "in" else {"out_dev": lo}
            mac = bytes(12) + b"\x08\x00" if way == "in" else b""
            if not net.nf_hook(2, hook, ip, mac=mac, **devs).accepted:
                return "EPERM" if way == "out" else "lost"
        return "delivered"

    return send


def hook_path(side: Side, send: Callable[[bytes], str]) -> list[Any]:
    """Programs on the real hooks: what happens to a datagram sent to 127.0.0.1."""
    side.define("accept", PT, "mov %r0, 1\nexit", NF)
    side.define("drop", PT, "mov %r0, 0\nexit", NF)
    # drop a 33-byte packet (a 5-byte UDP payload)
    side.define("drop33", PT, "ldxdw %r2, [%r1+8]\nldxw %r2, [%r2+112]\nmov %r0, 1\n"
                "jne %r2, 33, +1\nmov %r0, 0\nexit", NF)
    # drop at LOCAL_IN only (state->hook), wherever it is attached
    side.define("drop_in", PT, "ldxdw %r2, [%r1+0]\nldxb %r2, [%r2+0]\nmov %r0, 1\n"
                "jne %r2, 1, +1\nmov %r0, 0\nexit", NF)
    # accept only what came in on ifindex 1 (state->in->ifindex; NULL reads 0)
    side.define("from_lo", PT, "ldxdw %r2, [%r1+0]\nldxdw %r2, [%r2+8]\n"
                "ldxw %r2, [%r2+224]\nmov %r0, 0\njne %r2, 1, +1\nmov %r0, 1\nexit", NF)

    def sent(payload: bytes) -> None:
        side.out.append(["send", len(payload), send(payload)])

    sent(b"hello")
    _nf(side, 2, 1, 0, prog="accept", keep="acc")
    sent(b"hello")
    _nf(side, 2, 1, 10, prog="drop", keep="drop_li")
    sent(b"hello")
    side.link_detach("drop_li")
    sent(b"hello")
    _nf(side, 2, 3, 5, prog="drop", keep="drop_lo")
    sent(b"hello")
    side.close(side.fds["drop_lo"])
    _nf(side, 2, 4, 5, prog="drop", keep="drop_post")
    sent(b"hello")
    side.close(side.fds["drop_post"])
    _nf(side, 2, 0, 5, prog="drop33", keep="d33")
    sent(b"hello")
    sent(b"hello!")
    side.close(side.fds["d33"])
    for hook in (3, 4, 0, 1):
        _nf(side, 2, hook, 20, prog="drop_in", keep=f"din{hook}")
    sent(b"x")
    for hook in (3, 4, 0, 1):
        side.close(side.fds[f"din{hook}"])
    _nf(side, 2, 0, 30, prog="from_lo", keep="lo0")
    _nf(side, 2, 3, 30, prog="from_lo", keep="lo3")
    sent(b"x")
    side.close(side.fds["lo3"])
    sent(b"x")
    _nf(side, 10, 1, 0, prog="drop")  # IPv6 hooks don't see IPv4
    sent(b"x")
    return side.out


EXAMPLE = _ROOT / "examples" / "netfilter_telnet.o"
#: Datagrams the example sees at LOCAL_OUT: (destination port, payload).
_EXAMPLE_SENDS = ((23, b"a"), (24, b"b"), (23, b"cc"), (2323, b"d"))


def example_kernel() -> list[Any]:
    """examples/netfilter_telnet.o on the kernel: CO-RE against the running
    kernel's BTF, its map made here, a LOCAL_OUT link, then datagrams."""
    from kfuncs._kprog import _vmlinux
    from pyebpf.attr import LinkCreateAttr, MapCreateAttr, MapElemAttr
    from pyebpf.elf import load_spec
    from pyebpf.isa.insn import Insn, decode
    from pyebpf.testing.kernel import kernel_bpf, kernel_close
    from pyebpf.testing.kernel_prog import kernel_prog_load
    from pyebpf.uapi import Cmd

    vmlinux = _vmlinux()
    assert vmlinux is not None
    spec = load_spec(EXAMPLE, target_btf=vmlinux)
    prog = spec.programs["drop_telnet"]
    m = spec.maps["dropped"]
    mfd = kernel_bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=m.type, key_size=m.key_size,
                                                   value_size=m.value_size,
                                                   max_entries=m.max_entries))
    insns = list(decode(prog.insns))
    for ref in prog.map_refs:
        i = insns[ref.insn]
        insns[ref.insn] = Insn(i.code, i.dst, 1, i.off, mfd)
    fds = [mfd]
    try:
        fds.append(kernel_prog_load(PT, encode(insns), expected_attach_type=NF))
        fds.append(kernel_bpf(Cmd.LINK_CREATE, LinkCreateAttr(
            prog_fd=fds[1], attach_type=NF, netfilter_pf=2, netfilter_hooknum=3,
            netfilter_priority=-100)))
        out: list[Any] = [[port, _kernel_send(payload, port)] for port, payload in
                          _EXAMPLE_SENDS]
        value = kernel_bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=mfd, key=bytes(4)),
                           key_size=4, value_size=8)
        out.append(["dropped", struct.unpack("<Q", bytes(value))[0]])
        return out
    finally:
        for fd in reversed(fds):
            kernel_close(fd)


def example_pyebpf() -> list[Any]:
    from pyebpf import load_object
    from pyebpf.kernel_btf import kernel_btf

    side = PyebpfSide()
    send = _pyebpf_send(side)
    with load_object(EXAMPLE, runtime=side.rt, target_btf=kernel_btf()) as obj:
        obj.programs["drop_telnet"].attach_netfilter(2, 3, -100)
        out: list[Any] = [[port, send(payload, port)] for port, payload in _EXAMPLE_SENDS]
        out.append(["dropped", struct.unpack("<Q", obj.maps["dropped"][0])[0]])
    return out


def _kernel_run(fd: int, data: bytes, ctx: bytes | None, flags: int, repeat: int) -> int:
    from pyebpf.testing.kernel_prog import kernel_test_run

    return kernel_test_run(fd, data, ctx=ctx, flags=flags, repeat=repeat).retval


def _pyebpf_runner(side: PyebpfSide) -> Callable[..., int]:
    from pyebpf.attr import TestRunAttr
    from pyebpf.uapi import Cmd

    def run(fd: int, data: bytes, ctx: bytes | None, flags: int, repeat: int) -> int:
        got = side.bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=data, ctx_in=ctx,
                                                      flags=flags, repeat=repeat))
        return int(got.retval)

    return run


def _scenario(name: str, side: Side, kernel: bool) -> list[Any]:
    if name == "link_rules":
        return link_rules(side)
    if name == "ctx_access":
        return ctx_access(side)
    if name == "example":
        if kernel:
            from kernel.test_links_differential import _ip

            _ip("link", "set", "lo", "up")
            return example_kernel()
        return example_pyebpf()
    if name == "hook_path":
        if kernel:
            from kernel.test_links_differential import _ip

            _ip("link", "set", "lo", "up")
            return hook_path(side, _kernel_send)
        assert isinstance(side, PyebpfSide)
        return hook_path(side, _pyebpf_send(side))
    assert isinstance(side, PyebpfSide) or kernel
    run = _kernel_run if kernel else _pyebpf_runner(side)  # type: ignore[arg-type]
    return nf_test_runs(side, run)


def child_main(name: str) -> None:
    """The child: a network namespace of its own, the scenario, JSON out."""
    from kernel.test_links_differential import KernelSide, _unshare

    try:
        _unshare()
    except OSError as e:
        print(json.dumps({"skip": f"unshare: {e}"}))
        return
    print(json.dumps({"out": _scenario(name, KernelSide(), True)}))


def _on_kernel(name: str) -> list[Any]:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from kernel.test_netfilter_differential import child_main; "
            "child_main(sys.argv[2])")
    proc = subprocess.run([sys.executable, "-c", code, str(_ROOT / "tests"), name],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ),
                          cwd=_ROOT)
    if proc.returncode:
        pytest.fail(f"child failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in got:
        pytest.skip(got["skip"])
    return got["out"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["link_rules", "test_runs", "ctx_access", "hook_path",
                                  "example"])
def test_netfilter_scenario_matches_kernel(name: str) -> None:
    kernel = _on_kernel(name)
    mine = json.loads(json.dumps(_scenario(name, PyebpfSide(), False)))
    if mine != kernel:  # name the first difference, not two walls of JSON
        for i, (a, b) in enumerate(zip(mine, kernel, strict=False)):
            assert a == b, f"step {i}: pyebpf {a} != kernel {b}"
    assert mine == kernel
