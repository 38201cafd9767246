"""The friendly Link object and Program.attach/attach_xdp (thin layers over bpf())."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Link, Program, init_net
from pyebpf.errors import BpfError
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.runtime import Runtime
from pyebpf.uapi import LinkType, ProgType


def _xdp(rt: Runtime, ret: int) -> Program:
    return Program.load(ProgType.XDP, encode(asm(f"mov %r0, {ret}\nexit")), runtime=rt)


def test_attach_xdp_update_detach_through_the_link_object(rt: Runtime) -> None:
    lo = init_net(rt).device(1)
    drop, pass_ = _xdp(rt, 1), _xdp(rt, 2)
    with drop.attach_xdp(lo) as link:
        info = link.info()
        assert (info.type, info.ifindex, info.prog_id) == (LinkType.XDP, 1, drop.info().id)
        assert lo.receive(bytes(60)).verdict == "drop"
        with pytest.raises(BpfError) as exc:
            link.update(pass_.fd, old_prog_fd=pass_.fd)
        assert exc.value.errno == errno.EPERM
        link.update(pass_.fd, old_prog_fd=drop.fd)
        assert lo.receive(bytes(60)).verdict == "pass"
        link.detach()
        assert link.info().ifindex == 0
    assert link.fd == -1


def test_pinned_link_comes_back_from_its_pin(rt: Runtime) -> None:
    link = _xdp(rt, 1).attach_xdp(1)
    link.pin("/sys/fs/bpf/lnk")
    again = Link.from_pin("/sys/fs/bpf/lnk", runtime=rt)
    assert again.id == link.id
    assert "XDP" in repr(again)
