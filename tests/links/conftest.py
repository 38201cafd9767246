"""Fixtures for the link and hook tests: a fresh Runtime and a program loader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pyebpf.attr import LinkCreateAttr, ProgLoadAttr
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.runtime import Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import Cmd


@pytest.fixture
def rt() -> Runtime:
    return Runtime()


@pytest.fixture
def sys_bpf(rt: Runtime) -> Callable[[int, Any], Any]:
    """bpf() on the test's runtime."""
    return lambda cmd, attr: bpf(cmd, attr, runtime=rt)


@pytest.fixture
def load(rt: Runtime) -> Callable[..., int]:
    """load(prog_type, "asm text", expected_attach_type=0) -> prog fd."""

    def _load(prog_type: int, text: str, expected_attach_type: int = 0) -> int:
        return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(
            prog_type=prog_type, insns=encode(asm(text)), license="GPL",
            expected_attach_type=expected_attach_type), runtime=rt))

    return _load


@pytest.fixture
def link(rt: Runtime) -> Callable[..., int]:
    """link(prog_fd, target_fd, attach_type, **LinkCreateAttr fields) -> link fd."""

    def _link(prog_fd: int, target_fd: int, attach_type: int, **kw: Any) -> int:
        return int(bpf(Cmd.LINK_CREATE, LinkCreateAttr(
            prog_fd=prog_fd, target_fd=target_fd, attach_type=attach_type, **kw), runtime=rt))

    return _link
