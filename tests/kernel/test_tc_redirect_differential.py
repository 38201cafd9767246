"""bpf_redirect_neigh, bpf_redirect_peer and bpf_check_mtu: pyebpf and the kernel
give the same returns and the same ``*mtu_len`` in test runs
(tests/helpers/tc_redirect_scenarios.py). A test run doesn't carry a redirect
out, so where the packet goes is pinned by tests/helpers/test_tc_redirect_helpers.py."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from helpers import tc_redirect_scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from helpers._build import (
    ADD,
    JNE,
    Asm,
    KernelBackend,
    PyBackend,
    alu,
    call,
    exit_,
    lddw,
    ldx,
    mov,
    movr,
    st,
)
from helpers.packet_scenarios import ipv4_udp_packet
from pyebpf import ProgType
from pyebpf.attr import TestRunAttr
from pyebpf.links import Netdev, init_net
from pyebpf.testing.kernel import kernel_bpf
from pyebpf.uapi import Cmd

from .harness import Pair, agree, backend_pair

pytestmark = pytest.mark.kernel
L = len(ipv4_udp_packet())
#: lo (the test run's device): mtu 65536, hard_header_len 14.
DEV_LEN = 65536 + 14


pair = pytest.fixture(scope="module", name="pair")(backend_pair)


def test_redirect_neigh(pair: Pair) -> None:
    agree(pair, S.redirect_neigh, [(1, None, 0, 0), (1, None, 0, 1), (1, None, 0, 1 << 63),
                                  (1, S.REDIR_NEIGH_V4, 20, 0), (1, S.REDIR_NEIGH_V4[:16], 16, 0),
                                  (1, S.REDIR_NEIGH_V4[:4], 4, 0),
                                  (1, S.REDIR_NEIGH_V4 + bytes(4), 24, 0), (99, None, 0, 0),
                                  (1, S.REDIR_NEIGH_V4, 20, 2)])


def test_redirect_peer(pair: Pair) -> None:
    agree(pair, S.redirect_peer, [(1, 0), (1, 1), (99, 0), (2, 4), (0, 0), (1, 1 << 32)])


MTU_CASES = [(0, 0, 0, 0), (1, 0, 0, 0), (99, 0, 0, 0), (0, 0, DEV_LEN - L, 0),
             (0, 0, DEV_LEN - L + 1, 0), (0, 65536, 0, 0), (0, 65537, 0, 0), (0, 0, -100, 0),
             (0, 0, 0, 1), (0, 0, 4, 1), (0, 100, 0, 1), (0, 0, 0, 2), (0, 0, -0x8000_0000, 0),
             (0, 0xFFFF_FFFF, 0, 0), (0, 0xFFFF_FFF0, 100, 0), (0, 0x7FFF_FFFF, 0, 0),
             (0, 0, 0x7FFF_FFFF, 0), (0, 1, -100, 0)]


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP])
def test_check_mtu(pair: Pair, prog_type: ProgType) -> None:
    agree(pair, S.check_mtu, MTU_CASES, prog_type)


def _small_mtu_device() -> tuple[int, int] | None:
    """(ifindex, mtu) of a device of this machine other than lo, if any."""
    for dev in sorted(Path("/sys/class/net").iterdir()):
        if dev.name != "lo":
            return int((dev / "ifindex").read_text()), int((dev / "mtu").read_text())
    return None


def _gso_ctx(gso_size: int, ifindex: int) -> bytes:
    """A __sk_buff for the test run's ctx_in: ifindex (the skb's device) and gso_size."""
    ctx = bytearray(192)
    struct.pack_into("<I", ctx, 40, ifindex)
    struct.pack_into("<I", ctx, 176, gso_size)
    return bytes(ctx)


@pytest.mark.parametrize(("gso_size", "flags", "by_ctx"), [
    (0, 0, False), (0, 1, False), (100, 0, False), (100, 1, False), (1, 1, False),
    (100, 1, True), (0, 0, True)])
def test_check_mtu_of_a_gso_skb_over_a_devices_mtu(gso_size: int, flags: int,
                                                   by_ctx: bool) -> None:
    """A packet bigger than a real device's MTU: FRAG_NEEDED, unless the skb is GSO
    (then SUCCESS, and with BPF_MTU_CHK_SEGS EINVAL: a test-run skb has no
    transport header to measure its segments by). The device is named by the
    helper's ifindex or, ``by_ctx``, is the skb's own (ctx ifindex)."""
    found = _small_mtu_device()
    if found is None:
        pytest.skip("no network device besides lo")
    ifindex, mtu = found
    packet = ipv4_udp_packet(b"x" * (mtu + 100))
    py, k = PyBackend(), KernelBackend()
    try:
        net = init_net(py.rt)
        dev = Netdev(net, "dev0")
        while dev.ifindex < ifindex:  # a device with the same ifindex in pyebpf
            dev = Netdev(net, f"dev{dev.ifindex}")
        dev.mtu = mtu
        p = Asm()
        p(st(4, 10, -4, 0), lddw(2, 0 if by_ctx else ifindex), movr(3, 10), alu(ADD, 3, -4),
          mov(4, 0), lddw(5, flags), call(163))
        p.jmp(JNE, 0, 0, "out")  # on success return *mtu_len, else the error
        p(ldx(4, 0, 10, -4))
        p.label("out")
        p(exit_())
        insns = p.build()
        attr = {"data_in": packet, "ctx_in": _gso_ctx(gso_size, ifindex if by_ctx else 0),
                "repeat": 1}
        kfd, pfd = k.load(insns, ProgType.SCHED_CLS), py.load(insns, ProgType.SCHED_CLS)
        theirs = kernel_bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=kfd, **attr)).retval
        ours = py.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=pfd, **attr)).retval
    finally:
        py.close()
        k.close()
    assert ours == theirs


@pytest.mark.parametrize("off", [-8, -6])
def test_check_mtu_wants_an_aligned_mtu_len(off: int) -> None:
    """*mtu_len is a u32 the helper writes (MEM_WRITE | MEM_ALIGNED): both
    verifiers accept an aligned stack slot and refuse a misaligned one alike."""
    from pyebpf import BpfError

    p = Asm()
    p(st(4, 10, -8, 0), st(4, 10, -4, 0), mov(2, 0), movr(3, 10), alu(ADD, 3, off), mov(4, 0),
      mov(5, 0), call(163), exit_())
    verdicts = []
    for be in (PyBackend(), KernelBackend()):
        try:
            be.close_fd(be.load(p.build(), ProgType.SCHED_CLS))
            verdicts.append("ok")
        except BpfError as e:
            verdicts.append(next(ln.split("] ")[-1] for ln in str(e).splitlines()
                                 if "misaligned" in ln))
        finally:
            be.close()
    assert verdicts[0] == verdicts[1]
