"""bpf_get_func_ip and bpf_get_attach_cookie in kprobe, tracepoint and perf_event
programs (pyebpf.helpers.trampoline, pyebpf.helpers.kprobe), and check_get_func_ip."""

from __future__ import annotations

import errno

import pytest

from pyebpf import BpfError, Cmd, ProgType, Runtime, bpf
from pyebpf.attr import LinkCreateAttr, ProgLoadAttr
from pyebpf.helpers.kprobe import ksym_addr
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.links import fire_kprobe, fire_tracepoint, open_kprobe, open_tracepoint
from pyebpf.links.tracing import perf_event_overflow
from pyebpf.maps.perf_event_array import perf_event_open
from pyebpf.uapi import AttachType

FUNC_IP = "call 173\nexit"
COOKIE = "call 174\nexit"


def _load(rt: Runtime, ptype: int, text: str, license: str = "GPL") -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ptype, insns=encode(asm(text)),
                                               license=license), runtime=rt))


def _link(rt: Runtime, prog: int, event: int, cookie: int = 0) -> None:
    bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=prog, target_fd=event,
                                        attach_type=AttachType.PERF_EVENT, bpf_cookie=cookie),
        runtime=rt)


def test_kprobe_func_ip_is_the_probed_function_address() -> None:
    rt = Runtime()
    _link(rt, _load(rt, ProgType.KPROBE, FUNC_IP), open_kprobe(rt, "bpf_fentry_test1"))
    addr = ksym_addr("bpf_fentry_test1")
    assert addr is not None
    assert fire_kprobe(rt, "bpf_fentry_test1") == [addr]


def test_kprobe_func_ip_of_a_function_pyebpf_lacks_is_zero() -> None:
    rt = Runtime()
    _link(rt, _load(rt, ProgType.KPROBE, FUNC_IP), open_kprobe(rt, "no_such_function"))
    assert fire_kprobe(rt, "no_such_function") == [0]


def test_kprobe_cookie_is_the_links() -> None:
    rt = Runtime()
    ev = open_kprobe(rt, "do_sys_openat2")
    _link(rt, _load(rt, ProgType.KPROBE, COOKIE), ev, cookie=0xC0FFEE)
    assert fire_kprobe(rt, "do_sys_openat2") == [0xC0FFEE]


def test_tracepoint_cookie_is_the_links() -> None:
    rt = Runtime()
    ev = open_tracepoint(rt, "syscalls/sys_enter_openat")
    _link(rt, _load(rt, ProgType.TRACEPOINT, COOKIE), ev, cookie=7)
    assert fire_tracepoint(rt, "syscalls/sys_enter_openat", bytes(16)) == [7]


def test_perf_event_cookie_is_the_links() -> None:
    rt = Runtime()
    ev = perf_event_open(rt)
    _link(rt, _load(rt, ProgType.PERF_EVENT, COOKIE), ev, cookie=0x5EED)
    assert perf_event_overflow(rt, ev) == 0x5EED


@pytest.mark.parametrize("ptype", [ProgType.TRACEPOINT, ProgType.RAW_TRACEPOINT,
                                   ProgType.PERF_EVENT])
def test_func_ip_without_a_kprobe_or_trampoline_is_enotsupp(ptype: int) -> None:
    with pytest.raises(BpfError) as e:
        _load(Runtime(), ptype, FUNC_IP)
    assert e.value.errno == 524
    assert f"func bpf_get_func_ip#173 not supported for program type {int(ptype)}" \
        in str(e.value)


def test_func_ip_is_gpl_only() -> None:
    with pytest.raises(BpfError) as e:
        _load(Runtime(), ProgType.KPROBE, FUNC_IP, license="MIT")
    assert e.value.errno == errno.EINVAL
    assert "cannot call GPL-restricted function" in str(e.value)
