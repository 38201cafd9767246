"""Map helpers: lookup/update/delete, push/pop/peek, per-CPU lookup, for_each, tail calls.

Each is the kernel's one-line wrapper around the map's ops table
(kernel/bpf/helpers.c): the map comes from the program's CONST_PTR_TO_MAP
register (``Runtime.maps_by_addr``), keys and values are read from and written
to the program's memory, and a failing op is returned as the negative errno
(-ENOENT, -EEXIST, -E2BIG, -EINVAL ...), never raised.

``bpf_for_each_map_elem`` (kernel/bpf/bpf_iter.c and the maps'
``map_for_each_callback``) calls the program's callback through
:meth:`~pyebpf.engine.interpreter.Vm.call_function` for each element in the
kernel's order: array index order, hash bucket order (each bucket's chain from
its head), stopping after a callback that returns non-zero; it returns how
many elements were visited. As the kernel's walk, a hash walk saves the next
element before calling back, so an element deleted by the callback just before
its turn is still visited (its value stays readable until the run ends).

``bpf_tail_call`` (the interpreter's JMP_TAIL_CALL): an index (u32) past
max_entries falls through; otherwise :meth:`Vm.tail_call` applies the
counter (MAX_TAIL_CALL_CNT) and jumps to the program in the slot, read at the
time of the call, so updates are visible to running chains at once.
"""

from __future__ import annotations

import bisect
import errno
from typing import TYPE_CHECKING

from ..errors import BpfError, BpfFault
from ..memory import Perm
from ..uapi import MapType
from . import register_helper
from ._util import M32, check_writable, map_at, neg, runtime_of
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..maps.base import BpfMap

A = ArgType
_MAP_VALUE_OUT = A.ARG_PTR_TO_MAP_VALUE | TypeFlag.MEM_UNINIT | TypeFlag.MEM_WRITE

_PERCPU_TYPES = frozenset({MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH})


def _key(vm: Vm, m: BpfMap, addr: int) -> bytes:
    return vm.memory.read(addr, m.key_size)


@register_helper(1, "map_lookup_elem", Proto(RetType.RET_PTR_TO_MAP_VALUE_OR_NULL,
                 (A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_MAP_KEY), pkt_access=True), tier="base")
def map_lookup_elem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = map_at(vm, r1, "map_lookup_elem")
    key = _key(vm, m, r2)
    try:
        addr = m.lookup_elem(key)
    except BpfError:
        return 0  # a lookup the map doesn't support (the verifier rejects those calls)
    return 0 if addr is None else addr


@register_helper(2, "map_update_elem", Proto(RetType.RET_INTEGER,
                 (A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_MAP_KEY, A.ARG_PTR_TO_MAP_VALUE,
                  A.ARG_ANYTHING), pkt_access=True), tier="base")
def map_update_elem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = map_at(vm, r1, "map_update_elem")
    key = _key(vm, m, r2)
    value = vm.memory.read(r3, m.value_size)
    try:
        m.update_elem(key, value, r4)
    except BpfError as e:
        return neg(e.errno)
    return 0


@register_helper(3, "map_delete_elem", Proto(RetType.RET_INTEGER,
                 (A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_MAP_KEY), pkt_access=True), tier="base")
def map_delete_elem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = map_at(vm, r1, "map_delete_elem")
    key = _key(vm, m, r2)
    try:
        m.delete_elem(key)
    except BpfError as e:
        return neg(e.errno)
    return 0


@register_helper(87, "map_push_elem", Proto(RetType.RET_INTEGER,
                 (A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_MAP_VALUE, A.ARG_ANYTHING), pkt_access=True),
                 tier="base")
def map_push_elem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = map_at(vm, r1, "map_push_elem")
    value = vm.memory.read(r2, m.value_size)
    try:
        m.push_elem(value, r3)
    except BpfError as e:
        return neg(e.errno)
    return 0


def _pop_or_peek(vm: Vm, r1: int, r2: int, name: str, pop: bool) -> int:
    m = map_at(vm, r1, name)
    if m.map_type is MapType.BLOOM_FILTER:
        # bloom_map_peek_elem tests the value the program gives (pop: EOPNOTSUPP).
        value = vm.memory.read(r2, m.value_size)
        try:
            if pop:
                m.pop_elem()
            else:
                m.peek_elem(value)  # type: ignore[call-arg]
        except BpfError as e:
            return neg(e.errno)
        return 0
    check_writable(vm.memory, r2, m.value_size)
    try:
        value = m.pop_elem() if pop else m.peek_elem()
    except BpfError as e:
        return neg(e.errno)
    vm.memory.write(r2, value[: m.value_size])
    return 0


@register_helper(88, "map_pop_elem", Proto(RetType.RET_INTEGER,
                 (A.ARG_CONST_MAP_PTR, _MAP_VALUE_OUT)), tier="base")
def map_pop_elem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _pop_or_peek(vm, r1, r2, "map_pop_elem", pop=True)


@register_helper(89, "map_peek_elem", Proto(RetType.RET_INTEGER,
                 (A.ARG_CONST_MAP_PTR, _MAP_VALUE_OUT)), tier="base")
def map_peek_elem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _pop_or_peek(vm, r1, r2, "map_peek_elem", pop=False)


@register_helper(195, "map_lookup_percpu_elem", Proto(RetType.RET_PTR_TO_MAP_VALUE_OR_NULL,
                 (A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_MAP_KEY, A.ARG_ANYTHING), pkt_access=True),
                 tier="base")
def map_lookup_percpu_elem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The value of ``key`` on CPU ``cpu`` (u32); NULL past the last possible CPU."""
    m = map_at(vm, r1, "map_lookup_percpu_elem")
    if m.map_type not in _PERCPU_TYPES:
        raise BpfFault(f"bpf_map_lookup_percpu_elem on a {m.map_type.name} map (only per-CPU "
                       "maps have map_lookup_percpu_elem)")
    key = _key(vm, m, r2)
    rt = m.runtime
    cpu = r3 & M32
    if cpu >= rt.nr_cpus:
        return 0
    saved, rt.cpu = rt.cpu, cpu
    try:
        addr = m.lookup_elem(key)
    finally:
        rt.cpu = saved
    return 0 if addr is None else addr


# -- bpf_for_each_map_elem ------------------------------------------------------------------
def _for_each_array(vm: Vm, m: BpfMap, fn: int, ctx: int, key_addr: int,
                    key_buf: bytearray) -> int:
    cpu = m.runtime.cpu if m.map_type is MapType.PERCPU_ARRAY else 0
    num = 0
    for i in range(m.max_entries):
        value = m._addr(i, cpu)  # type: ignore[attr-defined]
        num += 1
        key_buf[:4] = i.to_bytes(4, "little")
        if vm.call_function(fn, m.addr, key_addr, value, ctx, 0):
            break
    return num


def _for_each_hash(vm: Vm, m: BpfMap, fn: int, ctx: int, key_addr: int,
                   key_buf: bytearray) -> int:
    h = m  # a HashMap (or LRU): buckets of keys, elems by key
    cpu = m.runtime.cpu if getattr(m, "percpu", False) else 0
    num = 0
    bucket = -1
    while True:
        nonempty = h.nonempty  # type: ignore[attr-defined]
        i = bisect.bisect_right(nonempty, bucket)
        if i == len(nonempty):
            return num
        bucket = nonempty[i]
        chain = h.buckets.get(bucket) or []  # type: ignore[attr-defined]
        cur = h.elems.get(chain[0]) if chain else None  # type: ignore[attr-defined]
        while cur is not None:
            # hlist_nulls_for_each_entry_safe: the next element is taken before the callback.
            live = h.buckets.get(bucket) or []  # type: ignore[attr-defined]
            nxt = None
            if cur.key in live and h.elems.get(cur.key) is cur:  # type: ignore[attr-defined]
                j = live.index(cur.key) + 1
                if j < len(live):
                    nxt = h.elems.get(live[j])  # type: ignore[attr-defined]
            num += 1
            key_buf[:] = cur.key
            if vm.call_function(fn, m.addr, key_addr, cur.regions[cpu].base, ctx, 0):
                return num
            cur = nxt


@register_helper(164, "for_each_map_elem", Proto(RetType.RET_INTEGER,
                 (A.ARG_CONST_MAP_PTR, A.ARG_PTR_TO_FUNC, A.ARG_PTR_TO_STACK_OR_NULL,
                  A.ARG_ANYTHING)), tier="cap_bpf")
def for_each_map_elem(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Call ``callback(map, key, value, ctx)`` per element; return the number visited."""
    from ..maps.array import ArrayMap
    from ..maps.hash import HashMap

    m = map_at(vm, r1, "for_each_map_elem")
    if isinstance(m, ArrayMap):
        walk = _for_each_array
    elif isinstance(m, HashMap) and m.map_type in (MapType.HASH, MapType.PERCPU_HASH,
                                                    MapType.LRU_HASH, MapType.LRU_PERCPU_HASH):
        walk = _for_each_hash
    else:
        raise BpfFault(f"bpf_for_each_map_elem on a {m.map_type.name} map (it has no "
                       "map_for_each_callback)")
    if r4:
        return neg(errno.EINVAL)
    # The key the callback gets: the kernel passes a pointer into the element (hash)
    # or to a local u32 (array); here a read-only region holding the key bytes.
    mem = vm.memory
    key_region = mem.map(bytearray(m.key_size), kind="map_key", name=f"for_each {m.name}",
                         perms=Perm.R)
    try:
        return walk(vm, m, r2, r3, key_region.base, key_region.buf)
    finally:
        mem.unmap(key_region)


# -- bpf_tail_call ----------------------------------------------------------------------------
@register_helper(12, "tail_call", Proto(RetType.RET_VOID,
                 (A.ARG_PTR_TO_CTX, A.ARG_CONST_MAP_PTR, A.ARG_ANYTHING)), tier="base")
def tail_call(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    """Jump to the program in slot ``r3`` of the prog array ``r2``; on failure fall through
    with r0 unchanged."""
    from ..maps.prog_array import ProgArrayMap

    runtime_of(vm, "tail_call")
    m = map_at(vm, r2, "tail_call")
    if not isinstance(m, ProgArrayMap):
        raise BpfFault(f"bpf_tail_call with a {m.map_type.name} map (it needs a PROG_ARRAY)")
    index = r3 & M32
    if index >= m.max_entries:
        return None
    target = m.slots.get(index)
    vm.tail_call(target.insns if target is not None else None)
    return None
