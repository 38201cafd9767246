"""Global functions (tests/data/elf/global_func.o) on pyebpf and on the kernel: the
same verdict, errno and verifier log, line for line at level 1 and at level 2 but
for the kernel's stack-liveness trace lines."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, bpf
from pyebpf.attr import BtfLoadAttr, ProgLoadAttr
from pyebpf.elf.loader import load_spec
from pyebpf.testing.kernel import kernel_bpf
from pyebpf.testing.kernel_prog import kernel_ready_btf

pytestmark = pytest.mark.kernel

OBJ = Path(__file__).parent.parent / "data" / "elf" / "global_func.o"
KERNEL_ONLY = re.compile(r"^(mark_precise: |\(\d+\) |SCC enter|SCC exit)")


def _load(call: Any, btf: bytes, name: str, level: int) -> tuple[str, str]:
    ps = load_spec(OBJ).programs[name]
    btf_fd = int(call(Cmd.BTF_LOAD, BtfLoadAttr(btf=btf, btf_size=len(btf))))
    insns = bytes(ps.insns)
    attr = ProgLoadAttr(
        prog_type=ProgType.SOCKET_FILTER, insns=insns, insn_cnt=len(insns) // 8,
        license="GPL", log_level=level, log_size=1 << 20, prog_btf_fd=btf_fd,
        func_info=b"".join(struct.pack("<II", f.insn_off, f.type_id) for f in ps.func_info),
        func_info_cnt=len(ps.func_info), func_info_rec_size=8)
    try:
        fd = call(Cmd.PROG_LOAD, attr)
        outcome, log = "accepted", fd.log
        if call is kernel_bpf:
            os.close(fd)
    except BpfError as err:
        outcome, log = f"errno {err.errno}", getattr(err, "log", "")
    if call is kernel_bpf:
        os.close(btf_fd)
    return outcome, log


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("name", ["checked", "unchecked", "scalar_for_ctx"])
def test_global_functions_verify_as_on_the_kernel(name: str, level: int) -> None:
    spec = load_spec(OBJ)
    rt = Runtime()
    ours = _load(lambda c, a: bpf(c, a, runtime=rt), spec.btf.raw, name, level)
    kernel = _load(kernel_bpf, kernel_ready_btf(spec.btf), name, level)
    assert ours[0] == kernel[0]
    kernel_lines = [ln for ln in kernel[1].splitlines() if not KERNEL_ONLY.match(ln)]
    assert ours[1].splitlines() == kernel_lines
