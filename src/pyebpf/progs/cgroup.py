"""Cgroup program types without a packet: CGROUP_SYSCTL, CGROUP_DEVICE, CGROUP_SOCKOPT.

The ctx structs ``bpf_sysctl``, ``bpf_cgroup_dev_ctx`` and ``bpf_sockopt``
with the kernel's access checks (kernel/bpf/cgroup.c, Linux 6.18), the
expected_attach_type rule (sockopt programs are SETSOCKOPT or GETSOCKOPT
ones), and the [0, 1] return range of ``check_return_code``. None of them can
be test-run in the kernel (ENOTSUPP).
"""

from __future__ import annotations

import errno
from typing import Any

from ..errors import BpfError
from ..uapi import AttachType, ProgType
from . import ProgTypeOps, register_prog_type
from .access import SCALAR, layout, narrow_access_ok

__all__ = ["BPF_CGROUP_DEV_CTX", "BPF_SOCKOPT", "BPF_SYSCTL"]

PTR_TO_PACKET = 8
PTR_TO_PACKET_END = 9
PTR_TO_SOCKET = 11

BPF_SYSCTL = layout("bpf_sysctl", [("write", 4), ("file_pos", 4, {"writable": True})])
BPF_CGROUP_DEV_CTX = layout("bpf_cgroup_dev_ctx", [("access_type", 4), ("major", 4),
                                                   ("minor", 4)])
BPF_SOCKOPT = layout("bpf_sockopt", [
    ("sk", 8, {"pointer": True}), ("optval", 8, {"pointer": True}),
    ("optval_end", 8, {"pointer": True}), ("level", 4, {"writable": True}),
    ("optname", 4, {"writable": True}), ("optlen", 4, {"writable": True}),
    ("retval", 4, {"writable": True}),
])


def sysctl_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """sysctl_is_valid_access."""
    if off < 0 or off + size > BPF_SYSCTL.size or off % size:
        return None
    if off < 4:  # write
        return SCALAR if not write and narrow_access_ok(off, size, 4) else None
    if write:  # file_pos
        return SCALAR if size == 4 else None
    return SCALAR if narrow_access_ok(off, size, 4) else None


def cgroup_dev_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """cgroup_dev_is_valid_access."""
    if write or off < 0 or off + size > BPF_CGROUP_DEV_CTX.size or off % size:
        return None
    if off < 4:  # access_type
        return SCALAR if narrow_access_ok(off, size, 4) else None
    return SCALAR if size == 4 else None


def cg_sockopt_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """cg_sockopt_is_valid_access."""
    L = BPF_SOCKOPT
    if off < 0 or off >= L.size or off % size:
        return None
    eat = getattr(prog, "expected_attach_type", 0)
    if write:
        if off == L["retval"].offset:
            return SCALAR if size == 4 and eat == AttachType.CGROUP_GETSOCKOPT else None
        if off in (L["optname"].offset, L["level"].offset):
            return SCALAR if size == 4 and eat == AttachType.CGROUP_SETSOCKOPT else None
        if off == L["optlen"].offset:
            return SCALAR if size == 4 else None
        return None
    for name, rtype in (("sk", PTR_TO_SOCKET), ("optval", PTR_TO_PACKET),
                        ("optval_end", PTR_TO_PACKET_END)):
        if off == L[name].offset:
            return rtype if size == 8 else None
    if off == L["retval"].offset:
        return SCALAR if size == 4 and eat == AttachType.CGROUP_GETSOCKOPT else None
    return SCALAR if size == 4 else None


def _check_attach_sockopt(attr: Any) -> None:
    if attr.expected_attach_type not in (AttachType.CGROUP_SETSOCKOPT,
                                         AttachType.CGROUP_GETSOCKOPT):
        raise BpfError(errno.EINVAL, f"expected_attach_type {attr.expected_attach_type} is "
                       "not valid for CGROUP_SOCKOPT programs")


register_prog_type(ProgTypeOps(ProgType.CGROUP_SYSCTL, ctx=BPF_SYSCTL,
                               is_valid_access=sysctl_is_valid_access, retval_range=(0, 1)))
register_prog_type(ProgTypeOps(ProgType.CGROUP_DEVICE, ctx=BPF_CGROUP_DEV_CTX,
                               is_valid_access=cgroup_dev_is_valid_access,
                               retval_range=(0, 1)))
register_prog_type(ProgTypeOps(ProgType.CGROUP_SOCKOPT, ctx=BPF_SOCKOPT,
                               check_attach=_check_attach_sockopt,
                               is_valid_access=cg_sockopt_is_valid_access,
                               retval_range=(0, 1)))
