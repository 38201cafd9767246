"""Reading an iterator fd: bpf_seq_read's rules, on the task iterator."""

from __future__ import annotations

import errno

import pytest

from pyebpf import Runtime
from pyebpf.errors import BpfError
from pyebpf.links.iter import SEQ_BUF_SIZE, SimTask, iter_read, iter_read_all, set_tasks

from ._iter import link, load_iter, open_iter, writer

TASKS = [SimTask(i, i, f"t{i}") for i in range(1, 6)]


@pytest.fixture
def rt() -> Runtime:
    rt = Runtime()
    rt.verifier = "kernel"
    set_tasks(rt, TASKS)
    return rt


def session(rt: Runtime, per_object: int, retval: int = 0) -> int:
    return open_iter(rt, link(rt, load_iter(rt, writer(per_object, retval=retval))))


def chunks(rt: Runtime, fd: int, size: int) -> list[int]:
    out = []
    while data := iter_read(rt, fd, size):
        out.append(len(data))
    return out


def test_read_fills_until_the_size_asked_then_stops_before_the_next_object(rt: Runtime) -> None:
    # 1 KiB per task, 4 KiB asked: four tasks, then the fifth in the next read.
    assert chunks(rt, session(rt, 1024), 4096) == [4096, 1024]


def test_leftover_buffer_is_returned_before_new_objects(rt: Runtime) -> None:
    # 12.5 KiB per task: each object's output is drained 4 KiB at a time.
    assert chunks(rt, session(rt, 12800), 4096) == [4096, 4096, 4096, 512] * 5


def test_whole_content_is_the_same_whatever_the_read_size(rt: Runtime) -> None:
    sizes = {n: sum(chunks(rt, session(rt, 768), n)) for n in (1, 100, 4096, 1 << 20)}
    assert set(sizes.values()) == {768 * len(TASKS)}


def test_end_of_file_is_sticky(rt: Runtime) -> None:
    fd = session(rt, 256)
    iter_read_all(rt, fd)
    assert iter_read(rt, fd, 4096) == b""
    assert iter_read(rt, fd, 4096) == b""


def test_object_overflowing_an_empty_buffer_is_e2big(rt: Runtime) -> None:
    fd = session(rt, SEQ_BUF_SIZE + 256)
    with pytest.raises(BpfError) as exc:
        iter_read(rt, fd, 4096)
    assert exc.value.errno == errno.E2BIG


def test_overflow_after_other_objects_ends_the_read_before_that_object(rt: Runtime) -> None:
    # 12 KiB per task: two fit in the 32 KiB buffer, the third overflows it and is
    # shown again (alone) by the next read.
    fd = session(rt, 12288)
    first = iter_read(rt, fd, 1 << 20)
    assert len(first) == 2 * 12288
    assert len(iter_read(rt, fd, 1 << 20)) == 2 * 12288
    assert len(iter_read(rt, fd, 1 << 20)) == 12288
    assert iter_read(rt, fd, 1 << 20) == b""


def test_program_asking_to_retry_the_first_object_makes_read_eagain(rt: Runtime) -> None:
    fd = session(rt, 256, retval=1)
    for _ in range(2):  # the same object again: the same answer
        with pytest.raises(BpfError) as exc:
            iter_read(rt, fd, 4096)
        assert exc.value.errno == errno.EAGAIN


def test_sessions_are_independent(rt: Runtime) -> None:
    link_fd = link(rt, load_iter(rt, writer(512)))
    a, b = open_iter(rt, link_fd), open_iter(rt, link_fd)
    assert len(iter_read(rt, a, 1024)) == 1024
    assert len(iter_read_all(rt, b)) == 512 * len(TASKS)
    assert len(iter_read_all(rt, a)) == 512 * (len(TASKS) - 2)
