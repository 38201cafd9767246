"""XDP: xdp_md access rules and the test run's frame."""

from __future__ import annotations

import errno

import pytest

from pyebpf import AttachType, BpfError, ProgType, Runtime, VerifierError, asm
from pyebpf.objects import Program


def load(text: str, attach: int = 0) -> Program:
    return Program.load(ProgType.XDP, asm(text), runtime=Runtime(),
                        expected_attach_type=attach)


def test_egress_ifindex_is_readable_only_by_devmap_programs() -> None:
    with pytest.raises(VerifierError, match="invalid bpf_context access"):
        load("ldxw %r0, [%r1+20]\nexit")
    prog = load("ldxw %r0, [%r1+20]\nexit", AttachType.XDP_DEVMAP)
    with pytest.raises(BpfError) as exc:  # bpf_prog_test_run_xdp refuses devmap programs
        prog.run(data=bytes(60))
    assert exc.value.errno == errno.EINVAL


@pytest.mark.parametrize("text", ["ldxh %r0, [%r1+12]\nexit", "stw [%r1+12], 1\nmov %r0, 2\nexit"])
def test_xdp_md_takes_aligned_u32_reads_only(text: str) -> None:
    with pytest.raises(VerifierError, match="invalid bpf_context access"):
        load(text)


def test_a_test_run_arrives_on_the_loopback() -> None:
    assert load("ldxw %r0, [%r1+12]\nexit").run(data=bytes(60)) == 1


@pytest.mark.parametrize(("size", "meta", "ok"), [(22, 8, True), (21, 8, False),
                                                 (300, 216, True), (300, 220, False),
                                                 (300, 6, False)])
def test_ctx_in_metadata_limits(size: int, meta: int, ok: bool) -> None:
    prog = load("mov %r0, 2\nexit")
    ctx = meta.to_bytes(4, "little") + size.to_bytes(4, "little") + bytes(16)
    if ok:
        assert prog.test_run(bytes(size), ctx=ctx).retval == 2
    else:
        with pytest.raises(BpfError) as refused:
            prog.test_run(bytes(size), ctx=ctx)
        assert refused.value.errno == errno.EINVAL
