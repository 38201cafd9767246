"""LIRC_MODE2 programs: the u32 sample ctx, the rc helpers, attach/detach/query on a
simulated lirc device, and decoding what a test feeds it."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyebpf.attr import ProgAttachAttr, ProgLoadAttr, ProgQueryAttr, TestRunAttr
from pyebpf.errors import ENOTSUPP, BpfError, VerifierError
from pyebpf.helpers import func_proto
from pyebpf.isa import encode
from pyebpf.isa.asm import asm
from pyebpf.progs.lirc import BPF_MAX_PROGS, LircMode2, RcDriverType, RcEvent
from pyebpf.runtime import FMode, Runtime
from pyebpf.syscall import bpf
from pyebpf.uapi import AttachType, Cmd, FuncId, ProgType

LIRC = AttachType.LIRC_MODE2
#: A decoder: a pulse longer than 2000us is a keydown of protocol 0x11 with the
#: pulse length as scancode, a space reports a pointer move (dx = -value, dy = 3),
#: a timeout a repeat. The sample's mode is its top byte.
DECODER = """
ldxw %r6, [%r1+0]
mov %r7, %r6
rsh %r7, 24
mov %r8, %r6
and %r8, 0xffffff
jne %r7, 1, +6
jle %r8, 2000, +14
mov %r2, 0x11
mov %r3, %r8
mov %r4, 1
call 78
ja +10
jne %r7, 0, +5
mov %r2, 0
sub %r2, %r8
mov %r3, 3
call 92
ja +4
jne %r7, 3, +3
call 77
ja +1
mov %r0, 0
mov %r0, 0
exit
"""


@pytest.fixture
def rt() -> Runtime:
    return Runtime()


def _load(rt: Runtime, text: str, license: str = "GPL") -> int:
    return int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.LIRC_MODE2,
                                                insns=encode(asm(text)), license=license,
                                                expected_attach_type=LIRC), runtime=rt))


def _attach(rt: Runtime, dev_fd: int, fd: int, **kw: Any) -> None:
    bpf(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=dev_fd, attach_bpf_fd=fd, attach_type=LIRC,
                                        **kw), runtime=rt)


def _detach(rt: Runtime, dev_fd: int, fd: int, **kw: Any) -> None:
    bpf(Cmd.PROG_DETACH, ProgAttachAttr(target_fd=dev_fd, attach_bpf_fd=fd, attach_type=LIRC,
                                        **kw), runtime=rt)


def _query(rt: Runtime, dev_fd: int, **kw: Any) -> Any:
    return bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=dev_fd, attach_type=LIRC, **kw),
               runtime=rt)


def _errno(fn: Any) -> int:
    with pytest.raises(BpfError) as exc:
        fn()
    return exc.value.errno


# -- the program type ---------------------------------------------------------------------
def test_ctx_is_one_u32_sample(rt: Runtime) -> None:
    _load(rt, "ldxw %r0, [%r1+0]\nexit")
    for text in ("ldxb %r0, [%r1+0]", "ldxdw %r0, [%r1+0]", "ldxw %r0, [%r1+4]",
                 "mov %r2, 1\nstxw [%r1+0], %r2"):
        with pytest.raises(VerifierError) as exc:
            _load(rt, f"{text}\nmov %r0, 0\nexit")
        assert exc.value.errno == errno.EACCES


def test_any_return_value_is_allowed(rt: Runtime) -> None:
    _load(rt, "mov %r0, -7\nexit")


def test_helpers_are_lirc_mode2_func_protos_closed_list() -> None:
    pt = ProgType.LIRC_MODE2
    offered = {f for f in FuncId if func_proto(f, pt) is not None}
    assert {FuncId.rc_repeat, FuncId.rc_keydown, FuncId.rc_pointer_rel,
            FuncId.map_lookup_elem, FuncId.tail_call, FuncId.ktime_get_boot_ns,
            FuncId.trace_printk} <= offered
    # bpf_base_func_proto's others are not offered
    assert func_proto(FuncId.get_smp_processor_id, pt) is None
    assert func_proto(FuncId.ringbuf_output, pt) is None
    assert func_proto(FuncId.ktime_get_coarse_ns, pt) is None
    assert func_proto(FuncId.trace_printk, pt, cap_perfmon=False) is None
    # and the rc helpers are for LIRC_MODE2 only
    assert func_proto(FuncId.rc_keydown, ProgType.SCHED_CLS) is None


def test_rc_helpers_are_gpl_only(rt: Runtime) -> None:
    with pytest.raises(VerifierError) as exc:
        _load(rt, "call 77\nmov %r0, 0\nexit", license="MIT")
    assert "GPL" in str(exc.value)


def test_rc_helpers_take_the_ctx(rt: Runtime) -> None:
    with pytest.raises(VerifierError):
        _load(rt, "mov %r1, 0\ncall 77\nmov %r0, 0\nexit")


def test_there_is_no_test_run(rt: Runtime) -> None:
    fd = _load(rt, "mov %r0, 0\nexit")
    assert _errno(lambda: bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(4)),
                              runtime=rt)) == ENOTSUPP


# -- attach / detach / query ----------------------------------------------------------------
def test_attach_query_detach(rt: Runtime) -> None:
    dev = rt.lirc_device()
    a, b = _load(rt, "mov %r0, 0\nexit"), _load(rt, "mov %r0, 1\nexit")
    _attach(rt, dev.fd, a)
    _attach(rt, dev.fd, b)
    ids = tuple(rt.fds[fd].obj.id for fd in (a, b))
    got = _query(rt, dev.fd)
    assert (got.prog_ids, got.attach_flags) == (ids, 0)
    assert _errno(lambda: _attach(rt, dev.fd, a)) == errno.EEXIST
    _detach(rt, dev.fd, a)
    assert _errno(lambda: _detach(rt, dev.fd, a)) == errno.ENOENT
    assert _query(rt, dev.fd).prog_ids == ids[1:]


def test_attached_programs_outlive_their_fds(rt: Runtime) -> None:
    dev = rt.lirc_device()
    fd = _load(rt, DECODER)
    _attach(rt, dev.fd, fd)
    prog_id = rt.fds[fd].obj.id
    rt.close(fd)
    assert _query(rt, dev.fd).prog_ids == (prog_id,)
    dev.pulse(2500)
    assert dev.events == [RcEvent("keydown", protocol=0x11, scancode=2500, toggle=1)]


def test_at_most_64_programs(rt: Runtime) -> None:
    dev = rt.lirc_device()
    for _ in range(BPF_MAX_PROGS):
        _attach(rt, dev.fd, _load(rt, "mov %r0, 0\nexit"))
    assert _errno(lambda: _attach(rt, dev.fd, _load(rt, "mov %r0, 0\nexit"))) == errno.E2BIG


@pytest.mark.parametrize("call", ["attach", "detach"])
def test_attach_rules(rt: Runtime, call: str) -> None:
    fd = _load(rt, "mov %r0, 0\nexit")
    op = _attach if call == "attach" else _detach
    dev = rt.lirc_device()
    if call == "detach":
        _attach(rt, dev.fd, fd)
    assert _errno(lambda: op(rt, dev.fd, fd, attach_flags=1)) == errno.EINVAL
    assert _errno(lambda: op(rt, 99, fd)) == errno.EBADF
    assert _errno(lambda: op(rt, fd, fd)) == errno.EINVAL  # not a lirc fd
    assert _errno(lambda: op(rt, dev.open(FMode.READ), fd)) == errno.EPERM
    scancode = rt.lirc_device(driver_type=RcDriverType.SCANCODE)
    assert _errno(lambda: op(rt, scancode.fd, fd)) == errno.EINVAL


def test_detach_names_a_lirc_program(rt: Runtime) -> None:
    dev = rt.lirc_device()
    xdp = int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.XDP,
                                               insns=encode(asm("mov %r0, 2\nexit")),
                                               license="GPL"), runtime=rt))
    assert _errno(lambda: _detach(rt, dev.fd, xdp)) == errno.EINVAL
    assert _errno(lambda: _detach(rt, dev.fd, 0)) == errno.EBADF


def test_query_rules(rt: Runtime) -> None:
    dev = rt.lirc_device()
    assert _query(rt, dev.open(FMode.READ)).prog_ids == ()  # reading is enough
    assert _errno(lambda: _query(rt, dev.fd, query_flags=1)) == errno.EINVAL
    raw_tx = rt.lirc_device(driver_type=RcDriverType.IR_RAW_TX)
    assert _errno(lambda: _query(rt, raw_tx.fd)) == errno.EINVAL


def test_query_copies_every_id_whatever_prog_cnt_says(rt: Runtime) -> None:
    dev = rt.lirc_device()
    fds = [_load(rt, "mov %r0, 0\nexit") for _ in range(3)]
    for fd in fds:
        _attach(rt, dev.fd, fd)
    buf = bytearray(12)
    got = _query(rt, dev.fd, prog_ids=buf, prog_cnt=1)  # no ENOSPC, as the kernel
    assert got.prog_cnt == 3
    assert [int.from_bytes(buf[i:i + 4], "little") for i in (0, 4, 8)] == list(got.prog_ids)


def test_an_unregistered_device_is_enodev(rt: Runtime) -> None:
    dev = rt.lirc_device()
    fd = _load(rt, "mov %r0, 0\nexit")
    _attach(rt, dev.fd, fd)
    prog = rt.fds[fd].obj
    refs = prog.refcnt
    dev.unregister()
    assert prog.refcnt == refs - 1  # lirc_bpf_free put it
    assert _errno(lambda: _attach(rt, dev.fd, fd)) == errno.ENODEV
    rt.close(dev.fd)


# -- decoding --------------------------------------------------------------------------------
def test_programs_run_on_every_sample_and_report_events(rt: Runtime) -> None:
    dev = rt.lirc_device()
    _attach(rt, dev.fd, _load(rt, DECODER))
    dev.send([9000, 40, 560])
    dev.timeout(12000)
    dev.frequency(38000)
    assert dev.events == [RcEvent("keydown", protocol=0x11, scancode=9000, toggle=1),
                          RcEvent("pointer_rel", rel_x=-40, rel_y=3), RcEvent("repeat")]
    assert dev.sample == LircMode2.FREQUENCY | 38000


def test_every_program_runs_in_attach_order(rt: Runtime) -> None:
    dev = rt.lirc_device()
    first = _load(rt, "mov %r2, 1\nmov %r3, 1\nmov %r4, 0\ncall 78\nmov %r0, 0\nexit")
    second = _load(rt, "mov %r2, 2\nmov %r3, 2\nmov %r4, 0\ncall 78\nmov %r0, 0\nexit")
    _attach(rt, dev.fd, second)
    _attach(rt, dev.fd, first)
    dev.pulse(100)
    assert [e.protocol for e in dev.events] == [2, 1]


def test_overflow_sample_is_the_mask(rt: Runtime) -> None:
    dev = rt.lirc_device()
    _attach(rt, dev.fd, _load(rt, "mov %r0, 0\nexit"))
    dev.overflow()
    assert dev.sample == 0x04FF_FFFF
    dev.pulse(1 << 25)  # values are cut to 24 bits
    assert dev.sample == LircMode2.PULSE


def test_programs_may_keep_state_in_maps(rt: Runtime) -> None:
    from helpers._build import ld_map_fd  # tests/ is on sys.path
    from pyebpf.attr import MapCreateAttr, MapElemAttr
    from pyebpf.uapi import MapType

    dev = rt.lirc_device()
    m = int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                              value_size=8, max_entries=1), runtime=rt))
    # count the samples in an array map
    insns = [*asm("mov %r2, 0\nstxw [%r10-4], %r2"), *ld_map_fd(1, m),
             *asm("mov %r2, %r10\nadd %r2, -4\ncall 1\njeq %r0, 0, +2\nmov %r1, 1\n"
                  "lock add [%r0+0], %r1\nmov %r0, 0\nexit")]
    fd = int(bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.LIRC_MODE2,
                                              insns=encode(insns), license="GPL"), runtime=rt))
    _attach(rt, dev.fd, fd)
    dev.send([100, 200, 300])
    value = bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=m, key=bytes(4)), runtime=rt)
    assert int.from_bytes(bytes(value), "little") == 3
