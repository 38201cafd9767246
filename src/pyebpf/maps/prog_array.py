"""Program arrays: PROG_ARRAY, the table bpf_tail_call jumps through (kernel/bpf/arraymap.c).

Creation (``fd_array_map_alloc_check``, then the array checks): value_size
must be 4 (a program fd in, a program id out) and key_size 4; the program-side
access flags BPF_F_RDONLY_PROG/WRONLY_PROG, BPF_F_MMAPABLE and the other
non-array flags are EINVAL.

MAP_UPDATE_ELEM (``bpf_fd_array_map_update_elem``, ``prog_fd_array_get_ptr``)
checks, in the kernel's order: flags other than BPF_ANY (EINVAL), the index
(E2BIG), then the u32 fd in the value: not open EBADF, not a program EINVAL,
an EXT program EINVAL, a program incompatible with the map's owner EINVAL.
The slot then holds a reference on the program (closing its last fd keeps it
alive while stored); replacing or deleting the element drops it.

The owner (``__bpf_prog_map_compatible``, kernel/bpf/core.c): the first
program that is stored in the map, or that is loaded using it (PROG_LOAD runs
:func:`bpf_check_tail_call` on every program, as ``bpf_prog_select_runtime``
does), fixes the map's owner: program type, JIT state, ``xdp_has_frags``,
``sleepable``, ``expected_attach_type`` (program arrays only) and, for
tracing/LSM/EXT/struct_ops programs, the attach target. Every later program
must match it, for updates and loads alike (EINVAL); the owner stays when the
map is emptied. Checked on Linux 6.18: an XDP program with
expected_attach_type BPF_XDP can't join one loaded with 0, SCHED_CLS and
SCHED_ACT don't mix, a frags-aware XDP program doesn't join plain ones.

MAP_LOOKUP_ELEM returns the program's id (u32); an empty slot or an index out
of range is ENOENT. MAP_DELETE_ELEM: E2BIG past the end, ENOENT for an empty
slot. GET_NEXT_KEY walks every index as for arrays. Lookup-and-delete is
ENOTSUPP and batches are not supported (the kernel's ops have none).

Not modelled: the kernel also empties a program array when its last user
reference (fd or pin) goes away while programs still hold the map
(``prog_array_map_clear`` on ``map_release_uref``); here the slots stay until
the map itself is freed.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import BpfError
from ..uapi import BPF_ANY, MapType, ProgLoadFlags, ProgType
from . import register_map
from .base import BpfMap
from .fd_array import FdArraySlots

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["MapOwner", "ProgArrayMap", "bpf_check_tail_call", "prog_map_compatible"]

#: Map types that hold programs (``map_type_contains_progs``); pyebpf has PROG_ARRAY.
_CONTAINS_PROGS = frozenset({MapType.PROG_ARRAY, MapType.DEVMAP, MapType.CPUMAP})
#: Program types whose attach target (attach_func_proto) must match the owner's.
_ATTACH_TARGET_TYPES = frozenset({ProgType.TRACING, ProgType.LSM, ProgType.EXT,
                                  ProgType.STRUCT_OPS})


def _index(key: bytes) -> int:
    return int.from_bytes(key[:4], "little")


@attrs.frozen
class MapOwner:
    """``struct bpf_map_owner``: what every program in (or using) the map must share."""

    type: int
    jited: bool
    xdp_has_frags: bool
    sleepable: bool
    expected_attach_type: int
    attach_target: Any

    @classmethod
    def of(cls, prog: Any) -> MapOwner:
        flags = getattr(prog, "prog_flags", 0)
        return cls(
            type=int(getattr(prog, "dst_prog_type", None) or prog.prog_type),  # resolve_prog_type
            jited=bool(getattr(prog, "jited", True)),
            xdp_has_frags=bool(flags & ProgLoadFlags.XDP_HAS_FRAGS),
            sleepable=bool(flags & ProgLoadFlags.SLEEPABLE),
            expected_attach_type=int(getattr(prog, "expected_attach_type", 0) or 0),
            attach_target=(getattr(prog, "attach_btf_id", 0), getattr(prog, "attach_prog_id", 0)),
        )


def _prog_map_compatible(m: BpfMap, prog: Any) -> bool:
    """__bpf_prog_map_compatible: claim the map if it has no owner, else compare."""
    if getattr(prog, "kprobe_override", False):
        return False
    mine = MapOwner.of(prog)
    owner: MapOwner | None = getattr(m, "owner", None)
    if owner is None:
        m.owner = mine  # type: ignore[attr-defined]
        return True
    ok = (owner.type == mine.type and owner.jited == mine.jited
          and owner.xdp_has_frags == mine.xdp_has_frags and owner.sleepable == mine.sleepable)
    if ok and m.map_type is MapType.PROG_ARRAY:
        ok = owner.expected_attach_type == mine.expected_attach_type
    if ok and owner.attach_target != mine.attach_target and mine.type in _ATTACH_TARGET_TYPES:
        ok = False
    return ok


def prog_map_compatible(m: BpfMap, prog: Any) -> bool:
    """bpf_prog_map_compatible: dev-bound programs never go into program maps."""
    if getattr(prog, "dev_bound", False):
        return False
    return _prog_map_compatible(m, prog)


def bpf_check_tail_call(prog: Any) -> None:
    """At load (bpf_prog_select_runtime): every program map the program uses must
    accept it as its owner would (EINVAL otherwise); an unowned map becomes its."""
    for m in getattr(prog, "used_maps", ()):
        if m.map_type in _CONTAINS_PROGS and not _prog_map_compatible(m, prog):
            raise BpfError(errno.EINVAL, f"the program does not match the owner of "
                           f"{m.map_type.name} map {m.id} ({m.owner})")  # type: ignore[attr-defined]


@register_map(MapType.PROG_ARRAY)
class ProgArrayMap(FdArraySlots, BpfMap):
    """BPF_MAP_TYPE_PROG_ARRAY: slots of programs, empty at creation."""

    percpu = False

    stores = ("program array", "program")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        super().__init__(runtime, attr)
        #: The owner (None until the first program is stored or loaded with the map).
        self.owner: MapOwner | None = None

    def lookup_prog(self, index: int) -> Any:
        """The program in slot ``index`` (None: empty or out of range)."""
        return self.slots.get(index)

    # -- program side --------------------------------------------------------------
    def lookup_elem(self, key: bytes) -> int | None:
        # fd_array_map_lookup_elem: ERR_PTR(-EOPNOTSUPP) (the verifier forbids the call).
        raise BpfError(errno.EOPNOTSUPP, "program arrays can't be looked up by a program")

    # -- syscall side ------------------------------------------------------------------
    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        """bpf_fd_array_map_lookup_elem: the program's id."""
        prog = self.slots.get(_index(key))
        if prog is None:
            raise BpfError(errno.ENOENT, "no program at this index")
        return int(prog.id).to_bytes(4, "little")

    def syscall_update(self, key: bytes, value: bytes, flags: int) -> None:
        """bpf_fd_array_map_update_elem with prog_fd_array_get_ptr."""
        from ..prog import BpfProg

        if flags != BPF_ANY:
            raise BpfError(errno.EINVAL, "program array updates take only BPF_ANY")
        index = _index(key)
        if index >= self.max_entries:
            raise BpfError(errno.E2BIG, f"index {index} is past max_entries {self.max_entries}")
        ufd = _index(value)
        f = self.runtime.fds.get(ufd)
        if f is None:
            raise BpfError(errno.EBADF, f"fd {ufd} is not open")
        prog = f.obj
        if not isinstance(prog, BpfProg):
            raise BpfError(errno.EINVAL, f"fd {ufd} is not a program")
        if prog.prog_type is ProgType.EXT or not prog_map_compatible(self, prog):
            raise BpfError(errno.EINVAL, f"program {prog.id} ({prog.prog_type.name}) does not "
                           f"match the program array's owner ({self.owner})")
        self._store_slot(index, prog)

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, "program arrays are updated with program fds from "
                       "user space")

