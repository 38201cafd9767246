"""QUEUE and STACK maps: push/pop/peek and every errno, by behaviour.

Errnos pinned here are the Linux 6.18 kernel's (tests/kernel compares them live).
"""

from __future__ import annotations

import errno

import pytest

from pyebpf import BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, MapFlags, MapType, Runtime
from pyebpf.errors import ENOTSUPP

from ._mapops import (
    create,
    create_errno,
    delete,
    fails,
    lookup,
    lookup_and_delete,
    map_obj,
    next_key,
    update,
)


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def new(rt: Runtime, mtype: int = MapType.QUEUE, max_entries: int = 3, value_size: int = 4,
        **kw: object) -> int:
    return create(rt, mtype, value_size=value_size, max_entries=max_entries, **kw)


def push(rt: Runtime, fd: int, value: bytes, flags: int = BPF_ANY) -> None:
    update(rt, fd, None, value, flags)


def pop(rt: Runtime, fd: int) -> bytes:
    return lookup_and_delete(rt, fd, None)


def peek(rt: Runtime, fd: int) -> bytes:
    return lookup(rt, fd, None)


def drain(rt: Runtime, fd: int) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(pop(rt, fd))
        except OSError as e:
            assert e.errno == errno.ENOENT
            return out


# -- order ---------------------------------------------------------------------------------
def test_queue_pops_oldest_first(rt: Runtime) -> None:
    fd = new(rt)
    for v in (b"aaaa", b"bbbb", b"cccc"):
        push(rt, fd, v)
    assert drain(rt, fd) == [b"aaaa", b"bbbb", b"cccc"]


def test_stack_pops_newest_first(rt: Runtime) -> None:
    fd = new(rt, MapType.STACK)
    for v in (b"aaaa", b"bbbb", b"cccc"):
        push(rt, fd, v)
    assert drain(rt, fd) == [b"cccc", b"bbbb", b"aaaa"]


@pytest.mark.parametrize("mtype,expect", [(MapType.QUEUE, b"aaaa"), (MapType.STACK, b"bbbb")])
def test_peek_returns_what_pop_would_without_removing(rt: Runtime, mtype: int,
                                                      expect: bytes) -> None:
    fd = new(rt, mtype)
    push(rt, fd, b"aaaa")
    push(rt, fd, b"bbbb")
    assert peek(rt, fd) == expect
    assert peek(rt, fd) == expect
    assert pop(rt, fd) == expect


# -- full and empty -------------------------------------------------------------------------
@pytest.mark.parametrize("mtype", [MapType.QUEUE, MapType.STACK])
def test_queue_push_when_full_is_e2big(rt: Runtime, mtype: int) -> None:
    fd = new(rt, mtype, max_entries=2)
    push(rt, fd, b"aaaa")
    push(rt, fd, b"bbbb")
    fails(errno.E2BIG, push, rt, fd, b"cccc")
    assert sorted(drain(rt, fd)) == [b"aaaa", b"bbbb"], "a failed push changes nothing"


def test_queue_push_exist_when_full_drops_oldest(rt: Runtime) -> None:
    fd = new(rt, max_entries=2)
    for v in (b"aaaa", b"bbbb"):
        push(rt, fd, v)
    push(rt, fd, b"cccc", BPF_EXIST)
    assert drain(rt, fd) == [b"bbbb", b"cccc"]


def test_stack_push_exist_when_full_drops_the_bottom(rt: Runtime) -> None:
    fd = new(rt, MapType.STACK, max_entries=2)
    for v in (b"aaaa", b"bbbb"):
        push(rt, fd, v)
    push(rt, fd, b"cccc", BPF_EXIST)
    assert drain(rt, fd) == [b"cccc", b"bbbb"]


def test_push_exist_when_not_full_just_pushes(rt: Runtime) -> None:
    fd = new(rt)
    push(rt, fd, b"aaaa", BPF_EXIST)
    push(rt, fd, b"bbbb", BPF_EXIST)
    assert drain(rt, fd) == [b"aaaa", b"bbbb"]


@pytest.mark.parametrize("mtype", [MapType.QUEUE, MapType.STACK])
def test_pop_and_peek_of_empty_map_are_enoent(rt: Runtime, mtype: int) -> None:
    fd = new(rt, mtype)
    fails(errno.ENOENT, pop, rt, fd)
    fails(errno.ENOENT, peek, rt, fd)
    push(rt, fd, b"aaaa")
    pop(rt, fd)
    fails(errno.ENOENT, pop, rt, fd)


def test_the_ring_wraps_around(rt: Runtime) -> None:
    fd = new(rt, max_entries=3)
    seen = []
    for i in range(10):
        push(rt, fd, bytes([i]) * 4)
        if i >= 2:
            seen.append(pop(rt, fd))
    assert seen + drain(rt, fd) == [bytes([i]) * 4 for i in range(10)]


# -- flags ------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [BPF_NOEXIST, 3, BPF_F_LOCK, 8, 1 << 32])
def test_push_with_noexist_or_unknown_flags_is_einval(rt: Runtime, flags: int) -> None:
    fd = new(rt)
    fails(errno.EINVAL, push, rt, fd, b"aaaa", flags)
    fails(errno.ENOENT, peek, rt, fd)


@pytest.mark.parametrize("flags", [BPF_F_LOCK, 1, 2])
def test_pop_takes_no_flags(rt: Runtime, flags: int) -> None:
    fd = new(rt)
    push(rt, fd, b"aaaa")
    fails(errno.EINVAL, lookup_and_delete, rt, fd, None, flags)
    assert pop(rt, fd) == b"aaaa"


def test_peek_with_f_lock_is_einval(rt: Runtime) -> None:
    fd = new(rt)
    push(rt, fd, b"aaaa")
    fails(errno.EINVAL, lookup, rt, fd, None, BPF_F_LOCK)


# -- the keyed commands --------------------------------------------------------------------------
def test_a_key_is_einval_everywhere(rt: Runtime) -> None:
    fd = new(rt)
    push(rt, fd, b"aaaa")
    fails(errno.EINVAL, update, rt, fd, b"\0\0\0\0", b"bbbb")
    fails(errno.EINVAL, lookup, rt, fd, b"\0")
    fails(errno.EINVAL, lookup_and_delete, rt, fd, b"\0")
    fails(errno.EINVAL, delete, rt, fd, b"\0")
    assert pop(rt, fd) == b"aaaa"


def test_delete_and_get_next_key_are_einval(rt: Runtime) -> None:
    fd = new(rt, MapType.STACK)
    fails(errno.EINVAL, delete, rt, fd, None)
    fails(errno.EINVAL, next_key, rt, fd, None)


# -- creation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,err", [
    ({"key_size": 4}, errno.EINVAL),
    ({"value_size": 0}, errno.EINVAL),
    ({"max_entries": 0}, errno.EINVAL),
    ({"map_flags": MapFlags.NO_PREALLOC}, errno.EINVAL),
    ({"map_flags": MapFlags.ZERO_SEED}, errno.EINVAL),
    ({"map_flags": MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG}, errno.EINVAL),
    ({"map_extra": 1}, errno.EINVAL),
    ({"value_size": (1 << 22) + 1}, errno.E2BIG),
    ({"value_size": (1 << 22) + 1, "key_size": 4}, errno.EINVAL),
])
def test_create_validation(rt: Runtime, kw: dict[str, int], err: int) -> None:
    args = {"value_size": 4, "max_entries": 4, **kw}
    assert create_errno(rt, MapType.QUEUE, **args) == err
    assert create_errno(rt, MapType.STACK, **args) == err


def test_create_accepts_access_flags(rt: Runtime) -> None:
    new(rt, map_flags=MapFlags.RDONLY_PROG)
    new(rt, MapType.STACK, map_flags=MapFlags.WRONLY_PROG)


def test_a_huge_queue_is_enomem() -> None:
    rt = Runtime(nr_cpus=1, memory_limit=1 << 20)
    assert create_errno(rt, MapType.QUEUE, value_size=1024, max_entries=2048) == errno.ENOMEM


# -- the program side -----------------------------------------------------------------------------
def test_program_side_push_pop_peek(rt: Runtime) -> None:
    fd = new(rt, max_entries=2)
    m = map_obj(rt, fd)
    m.push_elem(b"aaaa", BPF_ANY)
    m.push_elem(b"bbbb", BPF_ANY)
    with pytest.raises(OSError) as e:
        m.push_elem(b"cccc", BPF_ANY)
    assert e.value.errno == errno.E2BIG
    assert m.peek_elem() == b"aaaa"
    assert m.pop_elem() == b"aaaa"
    assert m.lookup_elem(b"") is None
    assert pop(rt, fd) == b"bbbb"


def test_lookup_and_delete_is_pop_not_enotsupp(rt: Runtime) -> None:
    """LOOKUP_AND_DELETE pops (ENOENT when empty), not the ENOTSUPP of most maps."""
    fd = new(rt)
    with pytest.raises(OSError) as e:
        lookup_and_delete(rt, fd, None)
    assert e.value.errno == errno.ENOENT != ENOTSUPP
