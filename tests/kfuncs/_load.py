"""Loading a list of instructions with pyebpf's verifier: verdict, errno, log."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from pyebpf import Runtime, bpf
from pyebpf.attr import ProgLoadAttr, TestRunAttr
from pyebpf.errors import BpfError
from pyebpf.isa.insn import Insn
from pyebpf.uapi import Cmd, ProgType


@attrs.frozen
class Loaded:
    accepted: bool
    errno: int
    log: str
    retval: int | None = None

    @property
    def error_line(self) -> str:
        """The line stating the reason: the last one before the statistics line."""
        lines = [ln for ln in self.log.strip().split("\n") if not ln.startswith("processed ")]
        return lines[-1] if lines else ""


def load(insns: Sequence[Insn], *, prog_type: int = ProgType.SOCKET_FILTER, license: str = "GPL",
         log_level: int = 1, run: bool = False, prog_flags: int = 0) -> Loaded:
    rt = Runtime()
    rt.verifier = "kernel"
    buf = bytearray(1 << 20)
    try:
        fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=prog_type, insns=list(insns),
                                             license=license, log_level=log_level,
                                             log_size=len(buf), log_buf=buf,
                                             prog_flags=prog_flags), runtime=rt)
    except BpfError as e:
        return Loaded(False, e.errno, bytes(buf).split(b"\0", 1)[0].decode())
    retval = None
    if run:
        retval = bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(64), repeat=1),
                     runtime=rt).retval
    return Loaded(True, 0, bytes(buf).split(b"\0", 1)[0].decode(), retval)
