"""examples/iter_dump.o: a task iterator and a map element iterator, from C."""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

import pytest

from pyebpf import Runtime, bpf
from pyebpf.attr import IterCreateAttr, LinkCreateAttr, MapCreateAttr, MapElemAttr
from pyebpf.collection import Collection, load_object
from pyebpf.errors import BpfError
from pyebpf.kernel_btf import kernel_btf
from pyebpf.links.iter import SimTask, iter_read, iter_read_all, set_tasks
from pyebpf.uapi import AttachType, Cmd, MapType, ProgType

from ._iter import EXAMPLE, link, open_iter


@pytest.fixture
def rt() -> Runtime:
    rt = Runtime()
    rt.verifier = "kernel"
    return rt


@pytest.fixture
def obj(rt: Runtime) -> Iterator[Collection]:
    # CO-RE relocations against the kernel's BTF, as libbpf does against vmlinux.
    with load_object(EXAMPLE, runtime=rt, target_btf=kernel_btf()) as o:
        yield o


def make_map(rt: Runtime, map_type: int, items: dict[int, int], value_size: int = 8) -> int:
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=4,
                                           value_size=value_size, max_entries=8), runtime=rt)
    for k, v in items.items():
        bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=struct.pack("<I", k),
                                             value=struct.pack("<Q", v)), runtime=rt)
    return fd


def test_section_names_give_tracing_iter_programs(obj: Collection) -> None:
    prog = obj.programs["dump_tasks"]
    assert prog.spec.prog_type == ProgType.TRACING
    assert prog.spec.expected_attach_type == AttachType.TRACE_ITER


def test_default_task_list_is_the_runtime_current_task(rt: Runtime, obj: Collection) -> None:
    rt.pid, rt.tgid, rt.comm = 77, 70, "pytest"
    fd = open_iter(rt, link(rt, obj.programs["dump_tasks"].fd))
    assert iter_read_all(rt, fd).decode() == ("  PID  TGID COMM\n"
                                              "   77    70 pytest\n"
                                              "1 tasks\n")


def test_tasks_in_pid_order_with_header_and_null_footer(rt: Runtime, obj: Collection) -> None:
    set_tasks(rt, [SimTask(300, 300, "sshd"), SimTask(1, 1, "init"), SimTask(2, 2, "kthreadd")])
    fd = open_iter(rt, link(rt, obj.programs["dump_tasks"].fd))
    assert iter_read_all(rt, fd).decode().splitlines() == [
        "  PID  TGID COMM", "    1     1 init", "    2     2 kthreadd",
        "  300   300 sshd", "3 tasks"]


def test_map_elements_are_shown_and_values_written_back(rt: Runtime, obj: Collection) -> None:
    mfd = make_map(rt, MapType.ARRAY, {0: 5, 1: 6, 2: 7})
    fd = open_iter(rt, link(rt, obj.programs["dump_counts"].fd, mfd))
    text = iter_read_all(rt, fd)
    assert text == b"".join(b"%d: %d\n" % (k, v) + struct.pack("<I", k)
                            for k, v in ((0, 5), (1, 6), (2, 7))) + b"".join(
        b"%d: 0\n" % k + struct.pack("<I", k) for k in range(3, 8))
    values = [bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=mfd, key=struct.pack("<I", k)),
                  runtime=rt) for k in range(3)]
    assert [struct.unpack("<Q", v)[0] for v in values] == [10, 12, 14]


def test_hash_map_elements_follow_get_next_key_order(rt: Runtime, obj: Collection) -> None:
    mfd = make_map(rt, MapType.HASH, {3: 30, 1: 10, 2: 20})
    order = []
    key = None
    while True:
        try:
            key = bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=mfd, key=key), runtime=rt)
        except BpfError:
            break
        order.append(struct.unpack("<I", key)[0])
    fd = open_iter(rt, link(rt, obj.programs["dump_counts"].fd, mfd))
    lines = [ln for ln in iter_read_all(rt, fd).split(b"\n") if b": " in ln]
    assert [int(ln.split(b":")[0][-1:]) for ln in lines] == order


def test_map_elem_link_needs_a_map(rt: Runtime, obj: Collection) -> None:
    with pytest.raises(BpfError) as exc:
        link(rt, obj.programs["dump_counts"].fd)
    assert exc.value.errno == errno.EBADF


def test_map_elem_link_refuses_other_map_types(rt: Runtime, obj: Collection) -> None:
    qfd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.QUEUE, value_size=8,
                                            max_entries=4), runtime=rt)
    with pytest.raises(BpfError) as exc:
        link(rt, obj.programs["dump_counts"].fd, qfd)
    assert exc.value.errno == errno.EINVAL


def test_map_elem_link_refuses_a_value_smaller_than_the_program_reads(
        rt: Runtime, obj: Collection) -> None:
    mfd = make_map(rt, MapType.ARRAY, {}, value_size=4)  # the program reads 8 bytes
    with pytest.raises(BpfError) as exc:
        link(rt, obj.programs["dump_counts"].fd, mfd)
    assert exc.value.errno == errno.EACCES


def test_iter_info_pointer_and_length_go_together(rt: Runtime, obj: Collection) -> None:
    with pytest.raises(BpfError) as exc:
        bpf(Cmd.LINK_CREATE, LinkCreateAttr(prog_fd=obj.programs["dump_counts"].fd,
                                            attach_type=AttachType.TRACE_ITER,
                                            iter_info=struct.pack("<I", 1)), runtime=rt)
    assert exc.value.errno == errno.EINVAL


def test_iter_create_flags_must_be_zero(rt: Runtime, obj: Collection) -> None:
    lfd = link(rt, obj.programs["dump_tasks"].fd)
    with pytest.raises(BpfError) as exc:
        bpf(Cmd.ITER_CREATE, IterCreateAttr(link_fd=lfd, flags=1), runtime=rt)
    assert exc.value.errno == errno.EINVAL


def test_iter_create_needs_a_link(rt: Runtime, obj: Collection) -> None:
    with pytest.raises(BpfError) as exc:
        bpf(Cmd.ITER_CREATE, IterCreateAttr(link_fd=obj.programs["dump_tasks"].fd), runtime=rt)
    assert exc.value.errno == errno.EINVAL


def test_session_keeps_the_link_and_program_alive(rt: Runtime, obj: Collection) -> None:
    lfd = link(rt, obj.programs["dump_tasks"].fd)
    fd = open_iter(rt, lfd)
    rt.close(lfd)
    assert iter_read(rt, fd, 4096).startswith(b"  PID")


def test_friendly_layer_attach_iter_and_read_as_a_file(rt: Runtime, obj: Collection) -> None:
    from pyebpf.links.iter import IterFile

    set_tasks(rt, [SimTask(5, 5, "five")])
    link_ = obj.programs["dump_tasks"].attach_iter()
    with IterFile(link_.fd, runtime=rt) as f:
        assert f.read(6) == b"  PID "
        assert f.read() == b" TGID COMM\n    5     5 five\n1 tasks\n"
        assert f.read() == b""
    mfd = make_map(rt, MapType.ARRAY, {0: 1})
    with IterFile(obj.programs["dump_counts"].attach_iter(mfd).fd, runtime=rt) as f:
        assert f.read().startswith(b"0: 1\n")
