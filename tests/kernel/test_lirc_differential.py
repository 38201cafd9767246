"""LIRC_MODE2 load verdicts on pyebpf and on the real kernel.

The kernel offers the program type only when built with CONFIG_BPF_LIRC_MODE2
(which needs the rc core); where it is not, its PROG_LOAD of the type is EINVAL
and this test skips. Attaching needs a real /dev/lircN, so only the verifier's
side is compared: the ctx access rule, the helper list, GPL-only helpers.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from pyebpf.attr import ProgLoadAttr
from pyebpf.errors import BpfError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, ProgType

pytestmark = pytest.mark.kernel

PT, LIRC = int(ProgType.LIRC_MODE2), int(AttachType.LIRC_MODE2)

CASES = {
    "read_sample": ("ldxw %r0, [%r1+0]\nexit", "GPL"),
    "read_byte": ("ldxb %r0, [%r1+0]\nexit", "GPL"),
    "read_u64": ("ldxdw %r0, [%r1+0]\nexit", "GPL"),
    "read_past": ("ldxw %r0, [%r1+4]\nexit", "GPL"),
    "write": ("mov %r2, 0\nstxw [%r1+0], %r2\nmov %r0, 0\nexit", "GPL"),
    "rc_repeat": ("call 77\nmov %r0, 0\nexit", "GPL"),
    "rc_repeat_mit": ("call 77\nmov %r0, 0\nexit", "MIT"),
    "rc_keydown": ("mov %r2, 1\nmov %r3, 2\nmov %r4, 0\ncall 78\nexit", "GPL"),
    "rc_pointer_rel": ("mov %r2, 1\nmov %r3, 2\ncall 92\nexit", "GPL"),
    "rc_no_ctx": ("mov %r1, 0\ncall 77\nexit", "GPL"),
    "ktime": ("call 5\nexit", "GPL"),
    "boot_ns": ("call 125\nexit", "GPL"),
    "prandom": ("call 7\nexit", "GPL"),
    "smp_id": ("call 8\nexit", "GPL"),
    "pid_tgid": ("call 14\nexit", "GPL"),
    "coarse_ns": ("call 160\nexit", "GPL"),
    "jiffies": ("call 118\nexit", "GPL"),
    "ret_any": ("mov %r0, -5\nexit", "GPL"),
}


def _verdict(load: Callable[[str, str], None], text: str, lic: str) -> str:
    try:
        load(text, lic)
        return "ok"
    except BpfError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))


def test_lirc_mode2_load_verdicts_match_kernel() -> None:
    from pyebpf.testing.kernel import kernel_close
    from pyebpf.testing.kernel_prog import kernel_prog_load

    def kload(text: str, lic: str) -> None:
        kernel_close(kernel_prog_load(PT, encode(asm(text)), license=lic,
                                      expected_attach_type=LIRC))

    if _verdict(kload, "mov %r0, 0\nexit", "GPL") != "ok":
        pytest.skip("the kernel has no BPF_PROG_TYPE_LIRC_MODE2 (CONFIG_BPF_LIRC_MODE2)")
    rt = Runtime()

    def pload(text: str, lic: str) -> None:
        rt.close(int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=PT, insns=encode(asm(text)), license=lic, expected_attach_type=LIRC),
            runtime=rt)))

    mine = {name: _verdict(pload, *case) for name, case in CASES.items()}
    kernel = {name: _verdict(kload, *case) for name, case in CASES.items()}
    assert mine == kernel
