"""The four batch commands: MAP_LOOKUP_BATCH, MAP_LOOKUP_AND_DELETE_BATCH,
MAP_UPDATE_BATCH and MAP_DELETE_BATCH (kernel/bpf/syscall.c and hashtab.c).

:func:`map_batch` is ``bpf_map_do_batch`` after the fd lookup: the access
check (lookups need a readable fd, the other three a writable one, a frozen
map is not writable: EPERM), then the map type's batch op, or ENOTSUPP when
the type has none (:data:`BATCH_OPS`, the 6.18 ops tables):

- hash maps (HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH, HASH_OF_MAPS):
  lookup and lookup-and-delete walk whole *buckets* (hashtab.c's
  ``__htab_map_lookup_and_delete_batch``): ``in_batch``/``out_batch`` are a
  u32 bucket index; a bucket that doesn't fit in what is left of ``count``
  ends the batch before it (ENOSPC if nothing was copied yet); running off the
  last bucket is ENOENT, with the elements copied so far and ``out_batch`` =
  n_buckets. ``flags`` must be 0 (EINVAL). Update and delete are generic.
- arrays (ARRAY, PERCPU_ARRAY, ARRAY_OF_MAPS): generic lookup (a walk with
  ``get_next_key`` from the key in ``in_batch``; ``out_batch`` is the last key
  visited, written only when something was copied; the end is ENOENT) and
  generic update; no delete or lookup-and-delete batch (ENOTSUPP). Empty
  slots of an array of maps are skipped.
- LPM_TRIE: generic lookup, update and delete.

Every op rejects ``elem_flags`` other than BPF_F_LOCK, and BPF_F_LOCK on a
value without a ``bpf_spin_lock`` (EINVAL). So batch updates are always
BPF_ANY: the kernel passes ``elem_flags`` as the update flags. Only the hash
lookups check ``flags``; the generic ops ignore it, as the kernel does.
``count == 0`` does nothing and succeeds. Update and delete stop at the first
failing element; the count says how many succeeded.

What the caller observes on failure
-----------------------------------
The kernel writes ``count`` (and for lookups ``out_batch``) back into the
caller's attr even when the command fails, and ENOENT at the end of a lookup
batch comes with valid elements. A :class:`~pyebpf.errors.BpfError` raised
here therefore carries ``partial``: a :class:`~pyebpf.syscall.BatchResult`
with the ``count`` the caller's attr holds afterwards (unchanged for errors
found before the kernel first writes it; 0 after it zeroes it; else the
elements done), the keys and values of those ``count`` elements (a lookup),
and ``out_batch`` when the kernel wrote it (else None)::

    try:
        res = bpf(Cmd.MAP_LOOKUP_BATCH, MapBatchAttr(map_fd=fd, count=64))
    except BpfError as e:
        if e.errno != errno.ENOENT:
            raise
        res = e.partial          # the last elements, and the end of the map

Buffers: in the Python form, ``keys``/``values`` of update and delete are
bytes (``count`` elements end to end, per-CPU values ``round_up(value_size,
8)`` per CPU); a lookup returns its keys, values and ``out_batch`` in the
result. ``in_batch`` is bytes or None (start). In the raw form (any buffer a
:class:`~pyebpf.attr.UserPtr`), results are also written to user memory, and
a NULL output pointer faults (EFAULT) where the kernel's ``copy_to_user``
would; a call whose pointers are all NULL is taken as the Python form.
"""

from __future__ import annotations

import bisect
import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..attr import Buffer, MapBatchAttr, UserPtr
from ..errors import ENOTSUPP, BpfError, BpfFault
from ..runtime import FMode
from ..syscall import BatchResult, copy_from_user
from ..uapi import BPF_F_LOCK, Cmd, MapType

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .base import BpfMap

__all__ = ["BATCH_OPS", "map_batch"]


# -- user buffers ---------------------------------------------------------------------------
def _read_elem(rt: Runtime, buf: Buffer, index: int, size: int) -> bytes:
    """Element ``index`` of ``size`` bytes from an input array (EFAULT past its end)."""
    if isinstance(buf, UserPtr):
        return copy_from_user(rt, UserPtr(buf.addr + index * size), size)
    if buf is None:
        raise BpfError(errno.EFAULT, "NULL pointer where a buffer was needed")
    data = bytes(memoryview(buf)[index * size:(index + 1) * size])
    if len(data) < size:
        raise BpfError(errno.EFAULT, f"buffer too short for element {index} ({size} bytes each)")
    return data


class _Out:
    """An output array: collected for the Python caller, and written to user memory
    for a UserPtr (a NULL pointer faults in the raw form, as copy_to_user does)."""

    def __init__(self, rt: Runtime, dst: Buffer, raw: bool) -> None:
        self.rt = rt
        self.dst = dst
        self.raw = raw
        self.chunks: list[bytes] = []

    def put(self, offset: int, data: bytes) -> None:
        if data:
            _copy_to_user(self.rt, self.dst, offset, data, self.raw)
        self.chunks.append(data)

    def value(self) -> bytes:
        return b"".join(self.chunks)


def _copy_to_user(rt: Runtime, dst: Buffer, offset: int, data: bytes, raw: bool) -> None:
    if isinstance(dst, UserPtr):
        try:
            rt.user_memory.write(dst.addr + offset, data)
        except BpfFault as fault:
            raise BpfError(errno.EFAULT, f"bad user address: {fault.message}") from None
    elif dst is None and raw:
        raise BpfError(errno.EFAULT, "NULL pointer where a result is written")


def _fail(err: BpfError, count: int, keys: bytes = b"", values: bytes = b"",
          out_batch: bytes | None = None) -> BpfError:
    """Attach what the caller observes after a failed batch (see the module doc)."""
    err.partial = BatchResult(count, keys, values, out_batch)  # type: ignore[attr-defined]
    return err


def _check_elem_flags(m: BpfMap, elem_flags: int) -> None:
    if elem_flags & ~BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"invalid elem_flags {elem_flags:#x} (only BPF_F_LOCK)")
    if elem_flags & BPF_F_LOCK and not getattr(m, "has_spin_lock", False):
        raise BpfError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the value")


# -- generic ops (syscall.c) -------------------------------------------------------------------
def generic_lookup_batch(rt: Runtime, m: BpfMap, attr: MapBatchAttr, raw: bool) -> BatchResult:
    """generic_map_lookup_batch: a get_next_key walk from the key in ``in_batch``."""
    _check_elem_flags(m, attr.elem_flags)
    value_size = m.syscall_value_size
    max_count = attr.count
    if not max_count:
        return BatchResult(0)
    # From here the kernel has written count = 0.
    keys, values = _Out(rt, attr.keys, raw), _Out(rt, attr.values, raw)
    prev: bytes | None = None
    if attr.in_batch is not None:
        try:
            prev = copy_from_user(rt, attr.in_batch, m.key_size)
        except BpfError as e:
            raise _fail(e, 0) from None
    cp = 0
    end: BpfError | None = None
    while cp < max_count:
        try:
            key = m.get_next_key(prev)
        except BpfError as e:
            end = e
            break
        try:
            value = m.syscall_lookup(key, attr.elem_flags)
        except BpfError as e:
            if e.errno != errno.ENOENT:
                raise _fail(e, 0) from None
            prev = key  # deleted meanwhile, or an empty fd slot: skipped
            continue
        try:
            keys.put(cp * m.key_size, key)
            values.put(cp * value_size, value)
        except BpfError as e:
            raise _fail(e, 0) from None
        cp += 1
        prev = key
    # count is written, then out_batch (the last key visited) if anything was copied.
    out_batch = prev if cp else None
    if out_batch is not None:
        try:
            _copy_to_user(rt, attr.out_batch, 0, out_batch, raw)
        except BpfError as e:
            raise _fail(e, cp, keys.value(), values.value()) from None
    result = BatchResult(cp, keys.value(), values.value(), out_batch)
    if end is not None:
        raise _fail(end, cp, result.keys, result.values, out_batch)
    return result


def generic_update_batch(rt: Runtime, m: BpfMap, attr: MapBatchAttr, raw: bool) -> BatchResult:
    """generic_map_update_batch: element by element, stopping at the first failure."""
    _check_elem_flags(m, attr.elem_flags)
    value_size = m.syscall_value_size
    max_count = attr.count
    if not max_count:
        return BatchResult(0)
    cp = 0
    try:
        while cp < max_count:
            key = _read_elem(rt, attr.keys, cp, m.key_size)
            value = _read_elem(rt, attr.values, cp, value_size)
            m.syscall_update(key, value, attr.elem_flags)
            cp += 1
    except BpfError as e:
        raise _fail(e, cp) from None
    return BatchResult(cp)


def generic_delete_batch(rt: Runtime, m: BpfMap, attr: MapBatchAttr, raw: bool) -> BatchResult:
    """generic_map_delete_batch: element by element, stopping at the first failure."""
    _check_elem_flags(m, attr.elem_flags)
    max_count = attr.count
    if not max_count:
        return BatchResult(0)
    cp = 0
    try:
        while cp < max_count:
            m.delete_elem(_read_elem(rt, attr.keys, cp, m.key_size))
            cp += 1
    except BpfError as e:
        raise _fail(e, cp) from None
    return BatchResult(cp)


# -- hash tables (hashtab.c) ----------------------------------------------------------------
def _htab_batch(rt: Runtime, m: BpfMap, attr: MapBatchAttr, raw: bool,
                do_delete: bool) -> BatchResult:
    """__htab_map_lookup_and_delete_batch: whole buckets at a time."""
    _check_elem_flags(m, attr.elem_flags)
    if attr.flags:
        raise BpfError(errno.EINVAL, f"invalid batch flags {attr.flags:#x}")
    max_count = attr.count
    if not max_count:
        return BatchResult(0)
    # count = 0 written from here on.
    batch = 0
    if attr.in_batch is not None:
        try:
            batch = int.from_bytes(copy_from_user(rt, attr.in_batch, 4), "little")
        except BpfError as e:
            raise _fail(e, 0) from None
    n_buckets: int = m.n_buckets  # type: ignore[attr-defined]
    if batch >= n_buckets:
        raise _fail(BpfError(errno.ENOENT, f"bucket {batch} is past the last one"), 0)
    buckets: dict[int, list[bytes]] = m.buckets  # type: ignore[attr-defined]
    nonempty: list[int] = m.nonempty  # type: ignore[attr-defined]
    key_size, value_size = m.key_size, m.syscall_value_size
    keys, values = _Out(rt, attr.keys, raw), _Out(rt, attr.values, raw)
    total = 0
    ret: BpfError | None = None
    while True:
        i = bisect.bisect_left(nonempty, batch)
        if i == len(nonempty):  # only empty buckets left: past the end
            batch = n_buckets
            ret = BpfError(errno.ENOENT, "no more elements")
            break
        batch = nonempty[i]
        chain = list(buckets[batch])
        if len(chain) > max_count - total:
            if total == 0:
                ret = BpfError(errno.ENOSPC, f"bucket {batch} holds {len(chain)} elements, "
                               f"more than count ({max_count})")
            break
        bucket_values = [m.syscall_lookup(key, attr.elem_flags) for key in chain]
        if do_delete:  # freed after the bucket is unlocked, last element first
            for key in reversed(chain):
                m.delete_elem(key)
        try:
            keys.put(total * key_size, b"".join(chain))
            values.put(total * value_size, b"".join(bucket_values))
        except BpfError as e:  # goto out: neither out_batch nor count written
            raise _fail(e, 0) from None
        total += len(chain)
        batch += 1
        if batch >= n_buckets:
            ret = BpfError(errno.ENOENT, "no more elements")
            break
    out_batch = batch.to_bytes(4, "little")
    try:  # out_batch is written first, then count
        _copy_to_user(rt, attr.out_batch, 0, out_batch, raw)
    except BpfError as e:
        raise _fail(e, 0) from None
    result = BatchResult(total, keys.value(), values.value(), out_batch)
    if ret is not None:
        raise _fail(ret, total, result.keys, result.values, out_batch)
    return result


def htab_lookup_batch(rt: Runtime, m: BpfMap, attr: MapBatchAttr, raw: bool) -> BatchResult:
    return _htab_batch(rt, m, attr, raw, do_delete=False)


def htab_lookup_and_delete_batch(rt: Runtime, m: BpfMap, attr: MapBatchAttr,
                                 raw: bool) -> BatchResult:
    return _htab_batch(rt, m, attr, raw, do_delete=True)


# -- the ops tables -------------------------------------------------------------------------
_BatchOp = Callable[["Runtime", "BpfMap", MapBatchAttr, bool], BatchResult]

_HTAB_OPS: dict[Cmd, _BatchOp] = {
    Cmd.MAP_LOOKUP_BATCH: htab_lookup_batch,
    Cmd.MAP_LOOKUP_AND_DELETE_BATCH: htab_lookup_and_delete_batch,
    Cmd.MAP_UPDATE_BATCH: generic_update_batch,
    Cmd.MAP_DELETE_BATCH: generic_delete_batch,
}
_ARRAY_OPS: dict[Cmd, _BatchOp] = {
    Cmd.MAP_LOOKUP_BATCH: generic_lookup_batch,
    Cmd.MAP_UPDATE_BATCH: generic_update_batch,
}
_TRIE_OPS: dict[Cmd, _BatchOp] = {
    Cmd.MAP_LOOKUP_BATCH: generic_lookup_batch,
    Cmd.MAP_UPDATE_BATCH: generic_update_batch,
    Cmd.MAP_DELETE_BATCH: generic_delete_batch,
}

#: MapType -> the batch ops its ``bpf_map_ops`` has in Linux 6.18 (checked against
#: the live kernel); a command missing here is ENOTSUPP. A new map family with
#: batch ops adds its type here.
BATCH_OPS: dict[MapType, dict[Cmd, _BatchOp]] = {
    MapType.HASH: _HTAB_OPS,
    MapType.PERCPU_HASH: _HTAB_OPS,
    MapType.LRU_HASH: _HTAB_OPS,
    MapType.LRU_PERCPU_HASH: _HTAB_OPS,
    MapType.HASH_OF_MAPS: _HTAB_OPS,
    MapType.ARRAY: _ARRAY_OPS,
    MapType.PERCPU_ARRAY: _ARRAY_OPS,
    MapType.ARRAY_OF_MAPS: _ARRAY_OPS,
    MapType.LPM_TRIE: _TRIE_OPS,
}


def map_batch(rt: Runtime, m: BpfMap, mode: FMode, attr: MapBatchAttr, cmd: Cmd) -> BatchResult:
    """bpf_map_do_batch after the fd lookup: permissions, then the type's op."""
    try:
        has_read = cmd in (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH)
        has_write = cmd != Cmd.MAP_LOOKUP_BATCH
        if has_read and not mode & FMode.READ:
            raise BpfError(errno.EPERM, "the map fd does not allow reading")
        if has_write and not mode & FMode.WRITE:
            raise BpfError(errno.EPERM, "the map fd does not allow writing")
        op = BATCH_OPS.get(m.map_type, {}).get(cmd)
        if op is None:
            raise BpfError(ENOTSUPP, f"{m.map_type.name} maps have no {cmd.name}")
        raw = any(isinstance(b, UserPtr) for b in (attr.in_batch, attr.out_batch, attr.keys,
                                                   attr.values))
        return op(rt, m, attr, raw)
    except BpfError as e:
        if not hasattr(e, "partial"):  # failed before the kernel wrote count back
            _fail(e, attr.count)
        raise
