"""bpf_prog_attach_check_attach_type for CGROUP_SKB: either direction, except an
egress program the verifier marked enforce_expected_attach_type (it returns the
congestion bit), which goes on egress only (EINVAL elsewhere)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf.attr import ProgAttachAttr
from pyebpf.errors import BpfError
from pyebpf.links.cgroup import cgroup_root
from pyebpf.runtime import Runtime
from pyebpf.uapi import AttachType, Cmd, ProgType

INGRESS, EGRESS = AttachType.CGROUP_INET_INGRESS, AttachType.CGROUP_INET_EGRESS
CN_DROP = "mov %r0, 2\nexit"  # drop, with the congestion notification
ALLOW = "mov %r0, 1\nexit"


def _attach(rt: Runtime, sys_bpf: Any, prog: int, attach_type: int) -> None:
    cg = cgroup_root(rt).mkdir_p("t").open()
    sys_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=cg, attach_bpf_fd=prog,
                                            attach_type=attach_type))


def test_congestion_returning_egress_program_on_ingress_is_einval(rt: Runtime, load: Any,
                                                                  sys_bpf: Any) -> None:
    prog = load(ProgType.CGROUP_SKB, CN_DROP, EGRESS)
    with pytest.raises(BpfError) as exc:
        _attach(rt, sys_bpf, prog, INGRESS)
    assert exc.value.errno == errno.EINVAL


def test_congestion_returning_egress_program_goes_on_egress(rt: Runtime, load: Any,
                                                            sys_bpf: Any) -> None:
    _attach(rt, sys_bpf, load(ProgType.CGROUP_SKB, CN_DROP, EGRESS), EGRESS)
    verdict = cgroup_root(rt).mkdir_p("t").run_skb(bytes(40), egress=True)
    assert (verdict.allow, verdict.cn) == (False, True)


def test_plain_egress_program_also_goes_on_ingress(rt: Runtime, load: Any,
                                                   sys_bpf: Any) -> None:
    _attach(rt, sys_bpf, load(ProgType.CGROUP_SKB, ALLOW, EGRESS), INGRESS)


def test_ingress_program_goes_on_egress(rt: Runtime, load: Any, sys_bpf: Any) -> None:
    _attach(rt, sys_bpf, load(ProgType.CGROUP_SKB, ALLOW, INGRESS), EGRESS)
