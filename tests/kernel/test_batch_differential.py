"""The batch commands on pyebpf and on the real kernel, with the same random inputs.

Each example creates the same map on both sides (hash maps with BPF_F_ZERO_SEED,
so the kernel's bucket order is pyebpf's), then runs a random sequence of
MAP_UPDATE_BATCH / MAP_DELETE_BATCH / MAP_LOOKUP_BATCH /
MAP_LOOKUP_AND_DELETE_BATCH with random keys (duplicates, missing keys,
out-of-range indices), values, counts (0, too small for a bucket, past the
end, longer than the buffers), in_batch positions (none, the previous
out_batch, arbitrary buckets and keys, past the end), elem_flags and flags.
At every step both sides must give the same errno, the same count written
back, the same keys and values (on success, ENOENT and ENOSPC alike) and the
same out_batch; and after every step the same contents.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyebpf import BpfError, Cmd, MapBatchAttr, MapCreateAttr, MapFlags, MapType, bpf
from pyebpf.errors import ENOTSUPP
from pyebpf.runtime import Runtime
from pyebpf.syscall import BatchResult
from pyebpf.testing.kernel import kernel_bpf, kernel_close, possible_cpus

pytestmark = pytest.mark.kernel

LOOKUP, LOOKUP_AND_DELETE = Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH
UPDATE, DELETE = Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH
HASHES = (MapType.HASH, MapType.PERCPU_HASH)
PERCPU = (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY)
TYPES = (MapType.HASH, MapType.PERCPU_HASH, MapType.ARRAY, MapType.PERCPU_ARRAY)
ELEM_FLAGS = [0] * 8 + [1, 2, 4, 8]
FLAGS = [0] * 6 + [1, 1 << 33]

#: Figures for the report: steps compared, and errnos seen.
STATS: dict[str, int] = {"examples": 0, "steps": 0}


def round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class Side:
    """One side's answer: ok with a result, or an errno with the partial result."""

    def __init__(self, err: int, result: BatchResult | None) -> None:
        self.err = err
        self.result = result

    def __repr__(self) -> str:
        name = "ENOTSUPP" if self.err == ENOTSUPP else errno.errorcode.get(self.err, "ok")
        return f"{name}({self.result})"


def on_py(rt: Runtime, cmd: Cmd, attr: Any) -> Side:
    try:
        return Side(0, bpf(cmd, attr, runtime=rt))
    except BpfError as e:
        return Side(int(e.errno), getattr(e, "partial", None))


def on_kernel(cmd: Cmd, attr: Any, sizes: dict[str, int]) -> Side:
    try:
        return Side(0, kernel_bpf(cmd, attr, **sizes))
    except BpfError as e:
        return Side(int(e.errno), getattr(e, "result", None))


class Pair:
    def __init__(self, attr: MapCreateAttr) -> None:
        self.rt = Runtime(nr_cpus=possible_cpus())
        self.attr = attr
        self.kfd = kernel_bpf(Cmd.MAP_CREATE, attr)
        self.pfd = bpf(Cmd.MAP_CREATE, attr, runtime=self.rt)
        self.sizes = {"key_size": attr.key_size, "value_size": attr.value_size,
                      "map_type": attr.map_type}
        self.vsize = (round_up(attr.value_size, 8) * possible_cpus()
                      if attr.map_type in PERCPU else attr.value_size)
        self.n_buckets = 1 << (attr.max_entries - 1).bit_length()
        self.is_hash = attr.map_type in HASHES

    def close(self) -> None:
        kernel_close(self.kfd)
        self.rt.close(self.pfd)

    def both(self, cmd: Cmd, **fields: Any) -> tuple[Side, Side]:
        py = on_py(self.rt, cmd, MapBatchAttr(map_fd=self.pfd, **fields))
        k = on_kernel(cmd, MapBatchAttr(map_fd=self.kfd, **fields), self.sizes)
        STATS["steps"] += 1
        name = "ENOTSUPP" if k.err == ENOTSUPP else errno.errorcode.get(k.err, "ok")
        STATS[f"{cmd.name}:{name}"] = STATS.get(f"{cmd.name}:{name}", 0) + 1
        return py, k

    def check(self, cmd: Cmd, py: Side, k: Side, what: str) -> None:
        assert py.err == k.err, f"{what}: pyebpf {py!r}, kernel {k!r}"
        if py.result is None or k.result is None:
            assert py.result is k.result is None or py.err == 0, f"{what}: {py!r} / {k!r}"
            return
        assert py.result.count == k.result.count, f"{what}: count pyebpf {py!r}, kernel {k!r}"
        if cmd in (LOOKUP, LOOKUP_AND_DELETE) and py.err in (0, errno.ENOENT, errno.ENOSPC):
            n = py.result.count
            assert py.result.keys[:n * self.attr.key_size] == k.result.keys, what
            assert py.result.values[:n * self.vsize] == k.result.values, what
            if py.result.out_batch is None:  # not written: the kernel's buffer is untouched
                assert not any(k.result.out_batch or b""), f"{what}: {py!r} / {k!r}"
            else:
                assert py.result.out_batch == k.result.out_batch, f"{what}: {py!r} / {k!r}"

    def snapshot_equal(self) -> None:
        """Whole contents, in iteration order, by one big lookup batch on each side."""
        count = self.attr.max_entries + 1
        py, k = self.both(LOOKUP, count=count)
        self.check(LOOKUP, py, k, "snapshot")


def key_bytes(pair: Pair, k: int) -> bytes:
    return k.to_bytes(8, "little")[:pair.attr.key_size]


@st.composite
def create_attrs(draw: st.DrawFn) -> MapCreateAttr:
    mt = draw(st.sampled_from(TYPES), label="map_type")
    is_hash = mt in HASHES
    return MapCreateAttr(
        map_type=mt,
        key_size=draw(st.integers(1, 8), label="key_size") if is_hash else 4,
        value_size=draw(st.integers(1, 12), label="value_size"),
        max_entries=draw(st.integers(1, 12), label="max_entries"),
        map_flags=MapFlags.ZERO_SEED if is_hash else 0)


def step(pair: Pair, data: st.DataObject, last: dict[str, bytes | None]) -> None:
    me = pair.attr.max_entries
    kind = data.draw(st.sampled_from(["update"] * 3 + ["delete", "lookup", "lookup_and_delete",
                                                     "walk"]), label="op")
    elem_flags = data.draw(st.sampled_from(ELEM_FLAGS), label="elem_flags")
    flags = data.draw(st.sampled_from(FLAGS), label="flags")
    key_pool = st.integers(0, 2 * me + 1)
    if kind in ("update", "delete"):
        keys = data.draw(st.lists(key_pool, max_size=me + 2), label="keys")
        kbuf = b"".join(key_bytes(pair, k) for k in keys)
        count = len(keys) + data.draw(st.sampled_from([0] * 8 + [1]), label="extra")
        fields: dict[str, Any] = dict(count=count, keys=kbuf, elem_flags=elem_flags,
                                      flags=flags)
        cmd = UPDATE if kind == "update" else DELETE
        if cmd is UPDATE:
            fields["values"] = data.draw(st.binary(min_size=len(keys) * pair.vsize,
                                                   max_size=len(keys) * pair.vsize),
                                         label="values")
        py, k = pair.both(cmd, **fields)
        pair.check(cmd, py, k, f"{cmd.name} {fields}")
        return
    cmd = LOOKUP_AND_DELETE if kind == "lookup_and_delete" else LOOKUP
    count = data.draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, me, 2 * me, 64]), label="count")
    if kind == "walk":
        in_batch: bytes | None = None
        for _ in range(4 * me + 4):
            py, k = pair.both(LOOKUP, count=max(count, 1), in_batch=in_batch)
            pair.check(LOOKUP, py, k, f"walk from {in_batch!r}")
            if py.err or py.result is None:
                return
            in_batch = py.result.out_batch
        return
    where = data.draw(st.sampled_from(["start", "start", "last", "any"]), label="in_batch")
    if where == "start":
        in_batch = None
    elif where == "last":
        in_batch = last.get("out_batch")
    elif pair.is_hash:
        in_batch = data.draw(st.integers(0, pair.n_buckets + 1)).to_bytes(4, "little")
    else:
        in_batch = data.draw(st.integers(0, me + 1)).to_bytes(4, "little")
    fields = dict(count=count, in_batch=in_batch, elem_flags=elem_flags, flags=flags)
    py, k = pair.both(cmd, **fields)
    pair.check(cmd, py, k, f"{cmd.name} {fields}")
    if py.result is not None and py.result.out_batch is not None:
        last["out_batch"] = py.result.out_batch


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(attr=create_attrs(), data=st.data())
def test_batch_commands_match_the_kernel(attr: MapCreateAttr, data: st.DataObject) -> None:
    pair = Pair(attr)
    try:
        STATS["examples"] += 1
        last: dict[str, bytes | None] = {}
        for _ in range(data.draw(st.integers(1, 8), label="steps")):
            step(pair, data, last)
            pair.snapshot_equal()
    finally:
        pair.close()


@pytest.mark.parametrize("map_type", [MapType.ARRAY, MapType.HASH])
@pytest.mark.parametrize("cmd", [LOOKUP, LOOKUP_AND_DELETE, UPDATE, DELETE])
def test_batch_op_support_and_early_errors_match_the_kernel(map_type: MapType,
                                                           cmd: Cmd) -> None:
    """Which types have which op (ENOTSUPP before anything else), and what an early
    error leaves in count."""
    pair = Pair(MapCreateAttr(map_type=map_type, key_size=4, value_size=8, max_entries=4,
                              map_flags=MapFlags.ZERO_SEED if map_type is MapType.HASH else 0))
    try:
        for fields in (dict(count=3, elem_flags=1), dict(count=3, flags=1), dict(count=0),
                       dict(count=2, keys=bytes(8), values=bytes(16))):
            py, k = pair.both(cmd, **fields)
            pair.check(cmd, py, k, f"{map_type.name} {cmd.name} {fields}")
    finally:
        pair.close()


@pytest.mark.parametrize("map_type", HASHES)
@pytest.mark.parametrize("max_entries", [3, 7, 12, 31, 64])
def test_bucket_walks_of_a_full_hash_map_match_the_kernel(map_type: MapType,
                                                          max_entries: int) -> None:
    """A full map walked with every small count: buckets that don't fit (ENOSPC when
    nothing fits, an early stop otherwise), resumption, and the end."""
    pair = Pair(MapCreateAttr(map_type=map_type, key_size=4, value_size=4,
                              max_entries=max_entries, map_flags=MapFlags.ZERO_SEED))
    try:
        keys = b"".join((k * 7919).to_bytes(4, "little") for k in range(max_entries))
        values = bytes(range(256)) * (max_entries * pair.vsize // 256 + 1)
        py, k = pair.both(UPDATE, count=max_entries, keys=keys,
                          values=values[:max_entries * pair.vsize])
        pair.check(UPDATE, py, k, "fill")
        for count in (1, 2, 3, 5):
            in_batch: bytes | None = None
            for _ in range(4 * max_entries):
                py, k = pair.both(LOOKUP, count=count, in_batch=in_batch)
                pair.check(LOOKUP, py, k, f"count {count} from {in_batch!r}")
                if py.err == errno.ENOSPC:  # skip the big bucket as a user would: larger count
                    py, k = pair.both(LOOKUP, count=count + 8, in_batch=in_batch)
                    pair.check(LOOKUP, py, k, f"count {count + 8} from {in_batch!r}")
                if (py.err or py.result is None) and py.err != errno.ENOSPC:
                    break
                in_batch = py.result.out_batch if py.result else None
        py, k = pair.both(LOOKUP_AND_DELETE, count=2)
        pair.check(LOOKUP_AND_DELETE, py, k, "lookup and delete 2")
        pair.snapshot_equal()
    finally:
        pair.close()
