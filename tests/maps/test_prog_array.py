"""PROG_ARRAY maps and bpf_tail_call, pinned to Linux 6.18.

The scenarios (tests/helpers/scenarios.py) were checked on the kernel; they run
on both in tests/kernel/test_helpers_differential.py.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import scenarios as S  # tests/helpers (pytest puts tests/ on sys.path)
from helpers._build import PyBackend, call, exit_, ld_map_fd, lddw, mov, u32
from pyebpf import BpfError, BpfFault, Cmd, MapElemAttr, MapType, ProgType
from pyebpf.maps.prog_array import ProgArrayMap
from pyebpf.runtime import ObjKind


@pytest.fixture
def be() -> Iterator[PyBackend]:
    backend = PyBackend()
    yield backend
    backend.close()


# -- tail calls ---------------------------------------------------------------------------------
def test_a_chain_of_34_programs_all_run(be: PyBackend) -> None:
    """The first program and 33 tail calls (MAX_TAIL_CALL_CNT)."""
    assert S.tail_chain(be, 34) == (1, 34)


def test_the_34th_tail_call_falls_through(be: PyBackend) -> None:
    assert S.tail_chain(be, 35) == (1, 34)


def test_out_of_range_index_and_empty_slot_fall_through(be: PyBackend) -> None:
    assert S.tail_call_misses(be) == S.TAIL_CALL_MISSES


def test_a_failed_tail_call_leaves_r0_as_it_was(be: PyBackend) -> None:
    """The verifier makes r0 unreadable after bpf_tail_call; the interpreter keeps it."""
    be.rt.verifier = "structural"  # reading r0 after the call is unverifiable: pin the engine
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 2)
    fd = be.load([mov(0, 7), *ld_map_fd(2, pa), mov(3, 1), call(12), exit_()])
    assert be.run(fd) == 7


def test_tail_call_needs_a_prog_array(be: PyBackend) -> None:
    be.rt.verifier = "structural"  # the verifier refuses this at load; the engine must fault
    arr = be.map_create(MapType.ARRAY, 4, 4, 2)
    fd = be.load([*ld_map_fd(2, arr), mov(3, 0), call(12), mov(0, 0), exit_()])
    with pytest.raises(BpfFault, match="PROG_ARRAY"):
        be.run(fd)


def test_updates_are_visible_to_a_running_chain(be: PyBackend) -> None:
    """A slot filled while the program runs is taken by its next tail call."""
    be.rt.verifier = "structural"  # helper 9999 is a test stand-in the verifier doesn't know
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 2)
    target = be.load([mov(0, 42), exit_()])

    def fill_slot(vm: Any, *regs: int) -> int:
        be.update(pa, u32(1), u32(target))
        return 0

    be.rt.helpers[9999] = fill_slot  # a Python "helper" standing for another CPU's update
    fd = be.load([*ld_map_fd(2, pa), mov(3, 1), call(12),      # empty: falls through
                  call(9999),
                  *ld_map_fd(2, pa), mov(3, 1), call(12),      # now taken
                  mov(0, 1), exit_()])
    assert be.run(fd) == 42


def test_the_u32_index_and_a_chain_through_subprogram_frames(be: PyBackend) -> None:
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 1)
    target = be.load([mov(0, 9), exit_()])
    be.update(pa, u32(0), u32(target))
    fd = be.load([*ld_map_fd(2, pa), *lddw(3, 1 << 32), call(12), mov(0, 1), exit_()])
    assert be.run(fd) == 9


# -- the map --------------------------------------------------------------------------------------
def test_syscall_side_errnos(be: PyBackend) -> None:
    assert S.prog_array_syscalls(be) == S.PROG_ARRAY_SYSCALLS


def test_the_owner_is_fixed_by_the_first_program_loaded_or_stored(be: PyBackend) -> None:
    assert S.prog_array_owner_at_load(be) == S.PROG_ARRAY_OWNER_AT_LOAD


def test_a_failed_load_names_no_program(be: PyBackend) -> None:
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 4)
    be.load([*ld_map_fd(1, pa), mov(0, 0), exit_()], prog_type=ProgType.SOCKET_FILTER)
    before = dict(be.rt.objects(ObjKind.PROG))
    with pytest.raises(BpfError) as info:
        be.load([*ld_map_fd(1, pa), mov(0, 0), exit_()])
    assert info.value.errno == errno.EINVAL
    assert be.rt.objects(ObjKind.PROG) == before
    assert be.rt.fds[pa].obj.refcnt == 2  # the fd and the socket filter


def test_lookup_gives_the_program_id(be: PyBackend) -> None:
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 4)
    fd = be.load([mov(0, 0), exit_()])
    be.update(pa, u32(2), u32(fd))
    assert be.lookup(pa, u32(2), 4) == u32(be.rt.fds[fd].obj.id)


def test_get_next_key_walks_every_index(be: PyBackend) -> None:
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 3)
    keys = [be.b(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=pa, key=k))
            for k in (None, u32(0), u32(1), u32(7))]
    assert keys == [u32(0), u32(1), u32(2), u32(0)]
    with pytest.raises(BpfError) as info:
        be.b(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=pa, key=u32(2)))
    assert info.value.errno == errno.ENOENT


def test_lookup_and_delete_is_not_supported(be: PyBackend) -> None:
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 3)
    with pytest.raises(BpfError) as info:
        be.b(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, MapElemAttr(map_fd=pa, key=u32(0)))
    assert info.value.errno == 524  # ENOTSUPP, as the kernel


def test_the_array_holds_its_programs(be: PyBackend) -> None:
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 2)
    target = be.load([mov(0, 33), exit_()])
    prog = be.rt.fds[target].obj
    be.update(pa, u32(0), u32(target))
    be.close_fd(target)                     # the slot keeps it alive
    assert prog.id in be.rt.objects(ObjKind.PROG)
    caller = be.load([*ld_map_fd(2, pa), mov(3, 0), call(12), mov(0, 1), exit_()])
    assert be.run(caller) == 33
    be.update(pa, u32(0), u32(caller))      # replacing the slot drops the old program
    assert prog.id not in be.rt.objects(ObjKind.PROG)
    arr = be.rt.fds[pa].obj
    assert isinstance(arr, ProgArrayMap)
    assert arr.lookup_prog(0) is be.rt.fds[caller].obj


def test_freeing_the_array_releases_its_programs(be: PyBackend) -> None:
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 2)
    target = be.load([mov(0, 0), exit_()])
    prog = be.rt.fds[target].obj
    be.update(pa, u32(1), u32(target))
    assert prog.refcnt == 2
    be.close_fd(pa)
    assert prog.refcnt == 1
