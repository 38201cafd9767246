"""STACK_TRACE maps: stack ids from bpf_get_stackid, the syscall side, bpf_get_stack."""

from __future__ import annotations

import errno
import struct

import pytest

from helpers._build import ADD, PyBackend, alu, call, exit_, ld_map_fd, lddw, mov, movr
from pyebpf import BpfError, Cmd, MapElemAttr, MapType, ProgType, bpf
from pyebpf.attr import TestRunAttr
from pyebpf.maps.stack_trace import (
    BPF_F_FAST_STACK_CMP,
    BPF_F_REUSE_STACKID,
    BPF_F_USER_STACK,
    StackTraceMap,
)

U32 = 0xFFFF_FFFF


def _stackid_prog(map_fd: int, flags: int) -> list:
    return [*ld_map_fd(2, map_fd), *lddw(3, flags), call(27), exit_()]


def _run(be: PyBackend, fd: int) -> int:
    return int(be.b(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd)).retval)


@pytest.fixture
def be() -> PyBackend:
    return PyBackend(nr_cpus=2)


def _map(be: PyBackend, depth: int = 4, max_entries: int = 8, flags: int = 0) -> int:
    return be.map_create(MapType.STACK_TRACE, 4, 8 * depth if not flags else 32 * depth,
                         max_entries, flags)


def test_same_stack_same_id_and_lookup_gives_the_addresses(be: PyBackend) -> None:
    fd = _map(be)
    prog = be.load(_stackid_prog(fd, 0), ProgType.RAW_TRACEPOINT)
    sid = _run(be, prog)
    assert sid < 8 and _run(be, prog) == sid
    value = bytes(bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=sid.to_bytes(4, "little")),
                      runtime=be.rt))
    assert list(struct.unpack("<4Q", value)) == be.rt.kernel_stack[:4]


def test_skip_and_truncation_to_the_value_size(be: PyBackend) -> None:
    be.rt.kernel_stack = [0x1000 + i for i in range(10)]
    fd = _map(be, depth=3)
    sid = _run(be, be.load(_stackid_prog(fd, 2), ProgType.RAW_TRACEPOINT))
    m = be.rt.fds[fd].obj
    assert isinstance(m, StackTraceMap)
    # max_depth = 3 + skip: the first 5 frames, 2 skipped.
    assert m.buckets[sid][1] == (0x1002, 0x1003, 0x1004)


def test_a_colliding_stack_is_eexist_unless_reuse(be: PyBackend) -> None:
    fd = _map(be, max_entries=1)  # one bucket: every stack collides
    m = be.rt.fds[fd].obj
    prog = be.load(_stackid_prog(fd, 0), ProgType.RAW_TRACEPOINT)
    user = be.load(_stackid_prog(fd, BPF_F_USER_STACK), ProgType.RAW_TRACEPOINT)
    reuse = be.load(_stackid_prog(fd, BPF_F_USER_STACK | BPF_F_REUSE_STACKID),
                    ProgType.RAW_TRACEPOINT)
    assert _run(be, prog) == 0
    # The one element is taken: even a replacement finds no free element.
    assert _run(be, user) == -errno.EEXIST & U32
    assert _run(be, reuse) == -errno.ENOMEM & U32
    bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=bytes(4)), runtime=be.rt)
    assert _run(be, reuse) == 0
    assert m.buckets[0][1] == tuple(be.rt.user_stack)


def test_fast_cmp_trusts_an_equal_hash(be: PyBackend) -> None:
    fd = _map(be)
    prog = be.load(_stackid_prog(fd, BPF_F_FAST_STACK_CMP), ProgType.RAW_TRACEPOINT)
    assert _run(be, prog) == _run(be, prog)


def test_syscall_side(be: PyBackend) -> None:
    fd = _map(be, max_entries=3)
    sid = _run(be, be.load(_stackid_prog(fd, 0), ProgType.RAW_TRACEPOINT))

    def err(cmd: Cmd, **kw: object) -> int:
        with pytest.raises(BpfError) as e:
            bpf(cmd, MapElemAttr(map_fd=fd, **kw), runtime=be.rt)
        return int(e.value.errno or 0)

    key = sid.to_bytes(4, "little")
    assert bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=None), runtime=be.rt) == key
    assert err(Cmd.MAP_GET_NEXT_KEY, key=key) == errno.ENOENT
    assert err(Cmd.MAP_UPDATE_ELEM, key=key, value=bytes(32)) == errno.EINVAL
    assert err(Cmd.MAP_DELETE_ELEM, key=(4).to_bytes(4, "little")) == errno.E2BIG
    value = bpf(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, MapElemAttr(map_fd=fd, key=key), runtime=be.rt)
    assert len(value) == 32
    assert err(Cmd.MAP_LOOKUP_ELEM, key=key) == errno.ENOENT


def test_build_id_maps_hold_ip_fallback_entries(be: PyBackend) -> None:
    fd = _map(be, depth=2, flags=1 << 5)
    sid = _run(be, be.load(_stackid_prog(fd, 0), ProgType.RAW_TRACEPOINT))
    value = bytes(bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=sid.to_bytes(4, "little")),
                      runtime=be.rt))
    status, _, ip = struct.unpack_from("<i20sQ", value, 0)
    assert (status, ip) == (2, be.rt.kernel_stack[0])


def _get_stack_prog(size: int, flags: int) -> list:
    """r0 = bpf_get_stack(ctx, fp - 64, size, flags) (the default stack is 4 deep)."""
    return [movr(2, 10), alu(ADD, 2, -64), mov(3, size), *lddw(4, flags), call(67), exit_()]


@pytest.mark.parametrize(("size", "flags", "want"), [
    (64, 0, 4 * 8), (16, 0, 16), (16, 1, 16), (64, 4, 0), (64, 5, -errno.EFAULT),
    (12, 0, -errno.EINVAL), (64, 1 << 11, -errno.EINVAL), (64, 1 << 12, -errno.EINVAL),
    (64, BPF_F_USER_STACK | 1 << 11, 64), (48, BPF_F_USER_STACK | 1 << 11, -errno.EINVAL),
])
def test_get_stack_returns_the_bytes_copied(be: PyBackend, size: int, flags: int,
                                            want: int) -> None:
    prog = be.load(_get_stack_prog(size, flags), ProgType.RAW_TRACEPOINT)
    assert _run(be, prog) == want & U32


def test_get_task_stack_of_the_current_task_is_its_stack(be: PyBackend) -> None:
    """bpf_get_task_stack(task, buf, 64, flags), called as a helper (TRACING programs,
    which offer it, have no test run)."""
    from pyebpf.helpers.stack import get_task_stack

    vm = be.rt.fds[be.load([mov(0, 0), exit_()], ProgType.XDP)].obj.vm()
    buf = be.rt.memory.map(64, kind="stack")
    assert get_task_stack(vm, be.rt.current_task, buf.base, 64, 0, 0) == 32
    assert struct.unpack_from("<4Q", buf.buf) == tuple(be.rt.kernel_stack)
    # Another task: no kernel stack known (0 bytes), no user stack walk (-EOPNOTSUPP).
    assert get_task_stack(vm, 0x1234000, buf.base, 64, 0, 0) == 0
    assert get_task_stack(vm, 0x1234000, buf.base, 64, BPF_F_USER_STACK, 0) == \
        -errno.EOPNOTSUPP & (2**64 - 1)
