"""Random valid programs on pyebpf and on the real kernel: same verdict, retval, packet.

Programs come from :func:`pyebpf.testing.strategies.programs` (straight-line
ALU/JMP/stack code with forward if/else blocks, helper and BPF-to-BPF calls,
LD_ABS/LD_IND; XDP and SCHED_CLS programs also read and write the packet
behind a data_end check), packets from
:func:`~pyebpf.testing.strategies.packets` (well-formed or with one defect),
and ctx_in from :func:`~pyebpf.testing.strategies.ctx_structs`. Each is loaded
on both sides (both verifiers must accept it) and test-run through
BPF_PROG_TEST_RUN on CPU 0 by :class:`~pyebpf.testing.cases.CaseRunner`, which
compares the errno, retval, output packet and ctx_out.

Disagreements found this way are pinned below as named regression tests; the
generator leaves out what they cover (``ctx_exclude``) so that the random
tests keep looking for new ones.
"""

from __future__ import annotations

import errno
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf import BpfError, Program, ProgType, VerifierError, asm, disasm
from pyebpf.testing.cases import CaseRunner, make_runtime
from pyebpf.testing.kernel import possible_cpus
from pyebpf.testing.kernel_prog import kernel_prog_load
from pyebpf.testing.packets import ETH_HLEN, ethernet, ipv4, udp
from pyebpf.testing.strategies import GeneratedProgram, ctx_structs, packets, programs

pytestmark = pytest.mark.kernel

#: Examples per program type: the file must stay well under 20 s on a loaded machine.
EXAMPLES = 60
#: ctx fields left out of random XDP programs (none: egress_ifindex is never
#: generated, it is readable only by devmap programs).
XDP_EXCLUDED_CTX: tuple[str, ...] = ()


def _run_both(gp: GeneratedProgram, packet: bytes, ctx: bytes | None) -> None:
    """Load on both sides (both must accept) and compare one test run."""
    listing = disasm(list(gp.insns))
    try:
        kfd = kernel_prog_load(gp.prog_type, b"".join(i.pack() for i in gp.insns))
    except VerifierError as e:
        pytest.fail(f"the kernel rejected a generated program: {e}\n{listing}\n{e.log}")
    os.close(kfd)
    rt = make_runtime(nr_cpus=possible_cpus())
    try:
        prog = Program.load(gp.prog_type, list(gp.insns), runtime=rt)
    except VerifierError as e:
        pytest.fail(f"pyebpf rejected a program the kernel accepts: {e}\n{listing}\n{e.log}")
    with CaseRunner(kernel=True) as runner:
        try:
            runner.run(prog, packet, ctx=ctx)
        except BpfError:
            pass  # the same errno on both sides (a short frame): compared by the runner
        except AssertionError as e:
            raise AssertionError(f"{e}\nprogram:\n{listing}\npacket: {packet.hex()}\n"
                                 f"ctx_in: {ctx.hex() if ctx else None}") from None


@settings(max_examples=EXAMPLES)
@given(programs(ProgType.XDP, ctx_exclude=XDP_EXCLUDED_CTX),
       packets(broken=None, versions=(4, 6, 0)), st.booleans(), st.data())
def test_random_xdp_programs_agree_with_the_kernel(gp: GeneratedProgram, packet: bytes,
                                                   with_ctx: bool, data: st.DataObject) -> None:
    ctx = data.draw(ctx_structs(ProgType.XDP, packet_size=len(packet))) \
        if with_ctx and len(packet) >= ETH_HLEN else None
    _run_both(gp, packet, ctx)


@settings(max_examples=EXAMPLES)
@given(programs(ProgType.SOCKET_FILTER), packets(broken=None, versions=(4, 6, 0)),
       st.booleans(), st.data())
def test_random_socket_filter_programs_agree_with_the_kernel(
        gp: GeneratedProgram, packet: bytes, with_ctx: bool, data: st.DataObject) -> None:
    ctx = data.draw(ctx_structs(ProgType.SOCKET_FILTER)) if with_ctx else None
    _run_both(gp, packet, ctx)


@settings(max_examples=EXAMPLES)
@given(programs(ProgType.SCHED_CLS), packets(broken=None, versions=(4, 6)), st.booleans(),
       st.data())
def test_random_sched_cls_programs_agree_with_the_kernel(
        gp: GeneratedProgram, packet: bytes, with_ctx: bool, data: st.DataObject) -> None:
    ctx = data.draw(ctx_structs(ProgType.SCHED_CLS)) if with_ctx else None
    _run_both(gp, packet, ctx)


# -- disagreements found, pinned -------------------------------------------------------------------
FRAME = ethernet(ipv4(udp(b"payload")))


def _case(prog_type: ProgType, text: str, packet: bytes = FRAME,
          ctx: dict[str, int] | None = None) -> None:
    rt = make_runtime(nr_cpus=possible_cpus())
    prog = Program.load(prog_type, asm(text), runtime=rt)
    with CaseRunner(kernel=True) as runner:
        runner.run(prog, packet, ctx=ctx)


def test_xdp_test_run_ingress_ifindex_is_the_loopback() -> None:
    _case(ProgType.XDP, "ldxw %r0, [%r1+12]\nexit")


@pytest.mark.parametrize(("size", "meta", "ok"), [(20, 8, False), (22, 8, True),
                                                 (300, 216, True), (300, 220, False)])
def test_xdp_ctx_in_metadata_must_leave_an_ethernet_header_and_an_xdp_frame(
        size: int, meta: int, ok: bool) -> None:
    """Both sides accept or both refuse (EINVAL) the same ctx_in."""
    packet = bytes(i & 0xFF for i in range(size))
    if ok:
        _case(ProgType.XDP, "mov %r0, 2\nexit", packet, ctx={"data": meta, "data_end": size})
        return
    with pytest.raises(BpfError) as refused:
        _case(ProgType.XDP, "mov %r0, 2\nexit", packet, ctx={"data": meta, "data_end": size})
    assert refused.value.errno == errno.EINVAL


def test_xdp_egress_ifindex_is_only_for_devmap_programs() -> None:
    from pyebpf.testing.rejection import assert_rejected

    assert_rejected("ldxw %r0, [%r1+20]\nexit", "invalid bpf_context access",
                    prog_type=ProgType.XDP, kernel=True)
