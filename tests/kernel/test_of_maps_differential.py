"""ARRAY_OF_MAPS and HASH_OF_MAPS on pyebpf and on the real kernel.

Hypothesis draws a template (inner) map spec, an outer map spec (type, key
size, value size, max_entries, flags) and creates both on each side, comparing
the errno; then a few candidate inner maps (the template's spec, or one field
changed: max_entries, flags, value_size, key_size, type) and a random sequence
of MAP_UPDATE_ELEM (with candidate fds, closed fds, and flags), MAP_LOOKUP_ELEM,
MAP_DELETE_ELEM, MAP_GET_NEXT_KEY, batch lookups and updates, closing
candidate fds, and MAP_GET_FD_BY_ID on the candidates' ids (is the inner map
still alive: held by the outer map, or gone?). Ids differ between the two
worlds, so the ids the outer map gives back are translated to candidate
numbers before comparing.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyebpf import BpfError, Cmd, MapBatchAttr, MapCreateAttr, MapElemAttr, MapFlags, MapType, bpf
from pyebpf.attr import GetIdAttr
from pyebpf.errors import ENOTSUPP
from pyebpf.runtime import Runtime
from pyebpf.testing.kernel import kernel_bpf, kernel_close, kernel_map_info, possible_cpus

pytestmark = pytest.mark.kernel

AOM, HOM = MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS
#: An fd open on neither side.
BAD_FD = 0x7FFF_FFF0
STATS: dict[str, int] = {"examples": 0, "steps": 0}

#: Template specs: (map_type, key_size, value_size, max_entries, map_flags, map_extra).
TEMPLATES = [
    (MapType.ARRAY, 4, 8, 4, 0, 0),
    (MapType.ARRAY, 4, 8, 4, MapFlags.INNER_MAP, 0),
    (MapType.ARRAY, 4, 8, 4, MapFlags.RDONLY, 0),
    (MapType.PERCPU_ARRAY, 4, 8, 4, 0, 0),
    (MapType.HASH, 4, 8, 4, 0, 0),
    (MapType.HASH, 8, 4, 16, MapFlags.NO_PREALLOC, 0),
    (MapType.PERCPU_HASH, 4, 8, 4, 0, 0),
    (MapType.LRU_HASH, 4, 8, 4, 0, 0),
    (MapType.LPM_TRIE, 8, 4, 4, MapFlags.NO_PREALLOC, 0),
    (MapType.QUEUE, 0, 4, 4, 0, 0),
    (MapType.STACK, 0, 4, 4, 0, 0),
    (MapType.BLOOM_FILTER, 0, 4, 4, 0, 0),
    (MapType.RINGBUF, 0, 0, 4096, 0, 0),
]
#: How a candidate inner map differs from the template.
CHANGES = ["same", "same", "same", "max_entries", "inner_map_flag", "rdonly", "no_prealloc",
           "value_size", "key_size", "other_type"]
_OTHER_TYPE = {MapType.ARRAY: MapType.PERCPU_ARRAY, MapType.PERCPU_ARRAY: MapType.ARRAY,
               MapType.HASH: MapType.LRU_HASH, MapType.LRU_HASH: MapType.HASH,
               MapType.PERCPU_HASH: MapType.HASH, MapType.QUEUE: MapType.STACK,
               MapType.STACK: MapType.QUEUE, MapType.LPM_TRIE: MapType.HASH,
               MapType.BLOOM_FILTER: MapType.QUEUE, MapType.RINGBUF: MapType.RINGBUF}


def errname(e: int) -> str:
    return "ENOTSUPP" if e == ENOTSUPP else errno.errorcode.get(e, "ok")


def spec_attr(spec: tuple[Any, ...], inner_map_fd: int = 0) -> MapCreateAttr:
    mt, ks, vs, me, flags, extra = spec
    return MapCreateAttr(map_type=mt, key_size=ks, value_size=vs, max_entries=me,
                         map_flags=flags, map_extra=extra, inner_map_fd=inner_map_fd)


def changed(spec: tuple[Any, ...], change: str) -> tuple[Any, ...]:
    mt, ks, vs, me, flags, extra = spec
    if change == "max_entries":
        me = me * 2
    elif change == "inner_map_flag":
        flags ^= MapFlags.INNER_MAP
    elif change == "rdonly":
        flags ^= MapFlags.RDONLY
    elif change == "no_prealloc":
        flags ^= MapFlags.NO_PREALLOC
    elif change == "value_size" and vs:
        vs += 4
    elif change == "key_size" and ks:
        ks += 4
    elif change == "other_type":
        mt = _OTHER_TYPE[mt]
    return (mt, ks, vs, me, flags, extra)


class Worlds:
    """The same objects on pyebpf and on the kernel (fds per side)."""

    def __init__(self) -> None:
        self.rt = Runtime(nr_cpus=possible_cpus())
        self.kfds: list[int] = []

    def create(self, attr_py: MapCreateAttr, attr_k: MapCreateAttr) -> tuple[Any, Any]:
        py = self.py(Cmd.MAP_CREATE, attr_py)
        k = self.k(Cmd.MAP_CREATE, attr_k)
        if isinstance(k, int) and not isinstance(k, bool):
            self.kfds.append(k)
        return py, k

    def py(self, cmd: Cmd, attr: Any) -> Any:
        try:
            return bpf(cmd, attr, runtime=self.rt)
        except BpfError as e:
            return e

    def k(self, cmd: Cmd, attr: Any, **sizes: Any) -> Any:
        try:
            return kernel_bpf(cmd, attr, **sizes)
        except BpfError as e:
            return e

    def close_k(self, fd: int) -> None:
        if fd in self.kfds:
            self.kfds.remove(fd)
            kernel_close(fd)

    def close(self) -> None:
        for fd in reversed(self.kfds):
            kernel_close(fd)
        self.kfds.clear()
        self.rt.close_all()


def err_of(x: Any) -> int:
    return int(x.errno) if isinstance(x, BpfError) else 0


def same_errno(py: Any, k: Any, what: str) -> None:
    STATS["steps"] += 1
    name = f"{what.split()[0]}:{errname(err_of(k))}"
    STATS[name] = STATS.get(name, 0) + 1
    assert err_of(py) == err_of(k), f"{what}: pyebpf {py!r}, kernel {k!r}"


@st.composite
def outer_attrs(draw: st.DrawFn) -> dict[str, Any]:
    mt = draw(st.sampled_from([AOM, HOM]), label="outer type")
    flag_pool = [0] * 12 + [MapFlags.RDONLY_PROG, MapFlags.NO_PREALLOC, MapFlags.INNER_MAP,
                           MapFlags.MMAPABLE, MapFlags.RDONLY, MapFlags.WRONLY_PROG]
    flags = draw(st.sampled_from(flag_pool), label="outer flags")
    if mt is HOM:
        flags |= MapFlags.ZERO_SEED  # the kernel's bucket order, for batch lookups
    return dict(map_type=mt,
                key_size=draw(st.sampled_from([4] * 6 + [8, 2]), label="outer key_size"),
                value_size=draw(st.sampled_from([4] * 8 + [8, 0]), label="outer value_size"),
                max_entries=draw(st.sampled_from([1, 2, 3, 4, 4, 5, 0]), label="outer max"),
                map_flags=flags)


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(template=st.sampled_from(TEMPLATES), template_fd=st.sampled_from(["map"] * 8 + ["bad"]),
       outer=outer_attrs(), changes=st.lists(st.sampled_from(CHANGES), min_size=1, max_size=4),
       data=st.data())
def test_maps_of_maps_match_the_kernel(template: tuple[Any, ...], template_fd: str,
                                       outer: dict[str, Any], changes: list[str],
                                       data: st.DataObject) -> None:
    w = Worlds()
    STATS["examples"] += 1
    try:
        tpy, tk = w.create(spec_attr(template), spec_attr(template))
        same_errno(tpy, tk, f"template {template}")
        if isinstance(tk, BpfError):
            return
        if template_fd == "bad":
            tpy = tk = BAD_FD
        py, k = w.create(MapCreateAttr(inner_map_fd=tpy, **outer),
                         MapCreateAttr(inner_map_fd=tk, **outer))
        same_errno(py, k, f"outer {outer} over {template} ({template_fd})")
        if isinstance(k, BpfError):
            return
        run_ops(w, py, k, outer, template, (tpy, tk), changes, data)
    finally:
        w.close()


def run_ops(w: Worlds, opy: int, ok: int, outer: dict[str, Any], template: tuple[Any, ...],
            tfds: tuple[int, int], changes: list[str], data: st.DataObject) -> None:
    # Candidates: index -> (py fd, kernel fd, py id, kernel id); the template is #0.
    cands: list[tuple[int, int, int, int]] = []

    def add(fpy: int, fk: int) -> None:
        cands.append((fpy, fk, w.rt.fds[fpy].obj.id, kernel_map_info(fk).id))

    add(*tfds)
    for change in changes:
        spec = changed(template, change)
        cpy, ck = w.create(spec_attr(spec), spec_attr(spec))
        same_errno(cpy, ck, f"candidate {spec}")
        if not isinstance(ck, BpfError):
            add(cpy, ck)
    closed: set[int] = set()
    ks, me, is_array = outer["key_size"], outer["max_entries"], outer["map_type"] is AOM

    def key(i: int) -> bytes:
        return i.to_bytes(8, "little")[:ks]

    def to_cand(value: bytes, side: int) -> list[int]:
        ids = [int.from_bytes(value[i:i + 4], "little") for i in range(0, len(value), 4)]
        by_id = {c[2 + side]: n for n, c in enumerate(cands)}
        return [by_id.get(i, -1) for i in ids]

    def elem(cmd: Cmd, **fields: Any) -> tuple[Any, Any]:
        py = w.py(cmd, MapElemAttr(map_fd=opy, **fields))
        k = w.k(cmd, MapElemAttr(map_fd=ok, **fields), key_size=ks, value_size=4,
                map_type=outer["map_type"])
        return py, k

    keys = st.integers(0, (me + 1) if is_array else 2 * me + 1)
    for _ in range(data.draw(st.integers(1, 12), label="ops")):
        op = data.draw(st.sampled_from(["update"] * 4 + ["lookup"] * 3 + [
            "delete", "next", "batch_lookup", "batch_update", "close", "close", "alive",
            "alive"]), label="op")
        if op == "update":
            n = data.draw(st.sampled_from([0, 0, 0, *range(-1, len(cands))]), label="candidate")
            flags = data.draw(st.sampled_from([0] * 6 + [1, 2, 3, 4]), label="flags")
            kk = key(data.draw(keys, label="key"))
            vpy = (cands[n][0] if n >= 0 else BAD_FD).to_bytes(4, "little")
            vk = (cands[n][1] if n >= 0 else BAD_FD).to_bytes(4, "little")
            py = w.py(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=opy, key=kk, value=vpy,
                                                        flags=flags))
            k = w.k(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=ok, key=kk, value=vk, flags=flags))
            same_errno(py, k, f"update {kk!r} with candidate {n} flags {flags}")
        elif op == "lookup":
            kk = key(data.draw(keys, label="key"))
            py, k = elem(Cmd.MAP_LOOKUP_ELEM, key=kk)
            same_errno(py, k, f"lookup {kk!r}")
            if not isinstance(k, BpfError):
                assert to_cand(py, 0) == to_cand(k, 1), f"lookup {kk!r}: {py!r} / {k!r}"
        elif op == "delete":
            kk = key(data.draw(keys, label="key"))
            py, k = elem(Cmd.MAP_DELETE_ELEM, key=kk)
            same_errno(py, k, f"delete {kk!r}")
        elif op == "next":
            kk = data.draw(st.one_of(st.none(), keys.map(key)), label="key")
            py, k = elem(Cmd.MAP_GET_NEXT_KEY, key=kk)
            same_errno(py, k, f"next after {kk!r}")
            if not is_array and not isinstance(k, BpfError):
                assert py == k
        elif op == "batch_lookup":
            count = data.draw(st.sampled_from([1, 2, me, 2 * me + 2]), label="count")
            py = w.py(Cmd.MAP_LOOKUP_BATCH, MapBatchAttr(map_fd=opy, count=count))
            k = w.k(Cmd.MAP_LOOKUP_BATCH, MapBatchAttr(map_fd=ok, count=count), key_size=ks,
                    value_size=4, map_type=outer["map_type"])
            same_errno(py, k, f"batch lookup {count}")
            rpy = getattr(py, "partial", py)
            rk = getattr(k, "result", k)
            if err_of(k) in (0, errno.ENOENT, errno.ENOSPC):
                assert rpy.count == rk.count
                assert rpy.keys == rk.keys
                assert to_cand(rpy.values, 0) == to_cand(rk.values, 1)
        elif op == "batch_update":
            ns = data.draw(st.lists(st.integers(-1, len(cands) - 1), max_size=3), label="cands")
            kb = b"".join(key(data.draw(keys)) for _ in ns)
            vpy = b"".join((cands[n][0] if n >= 0 else BAD_FD).to_bytes(4, "little")
                           for n in ns)
            vk = b"".join((cands[n][1] if n >= 0 else BAD_FD).to_bytes(4, "little")
                          for n in ns)
            py = w.py(Cmd.MAP_UPDATE_BATCH, MapBatchAttr(map_fd=opy, count=len(ns), keys=kb,
                                                         values=vpy))
            k = w.k(Cmd.MAP_UPDATE_BATCH, MapBatchAttr(map_fd=ok, count=len(ns), keys=kb,
                                                       values=vk), key_size=ks, value_size=4,
                    map_type=outer["map_type"])
            same_errno(py, k, f"batch update {ns}")
            if isinstance(k, BpfError):
                assert py.partial.count == k.result.count
        elif op == "close":
            n = data.draw(st.integers(0, len(cands) - 1), label="close")
            if n not in closed:
                closed.add(n)
                w.rt.close(cands[n][0])
                w.close_k(cands[n][1])
        else:  # alive: is candidate n's map still there (held by the outer map)?
            n = data.draw(st.integers(0, len(cands) - 1), label="alive")
            py = w.py(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=cands[n][2]))
            k = w.k(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=cands[n][3]))
            same_errno(py, k, f"alive: candidate {n} (closed: {n in closed})")
            if not isinstance(py, BpfError):
                w.rt.close(py)
            if not isinstance(k, BpfError):
                kernel_close(k)


@pytest.mark.parametrize("outer_type", [AOM, HOM])
def test_inner_map_lifetime_matches_the_kernel(outer_type: MapType) -> None:
    """An inner map outlives its fd while stored; deleting or replacing it frees it."""
    w = Worlds()
    try:
        spec = (MapType.ARRAY, 4, 8, 4, 0, 0)
        t = w.create(spec_attr(spec), spec_attr(spec))
        outer = dict(map_type=outer_type, key_size=4, value_size=4, max_entries=4)
        opy, ok = w.create(MapCreateAttr(inner_map_fd=t[0], **outer),
                           MapCreateAttr(inner_map_fd=t[1], **outer))
        a = w.create(spec_attr(spec), spec_attr(spec))
        b = w.create(spec_attr(spec), spec_attr(spec))
        ids = {name: (w.rt.fds[fds[0]].obj.id, kernel_map_info(fds[1]).id)
               for name, fds in (("a", a), ("b", b))}

        def update(key: int, fds: tuple[int, int]) -> None:
            py = w.py(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=opy, key=key.to_bytes(4, "little"),
                                                       value=fds[0].to_bytes(4, "little")))
            k = w.k(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=ok, key=key.to_bytes(4, "little"),
                                                     value=fds[1].to_bytes(4, "little")))
            same_errno(py, k, "update")

        def alive(name: str, expect: bool) -> None:
            py = w.py(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=ids[name][0]))
            k = w.k(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=ids[name][1]))
            same_errno(py, k, f"alive: {name}")
            assert (not isinstance(k, BpfError)) == expect
            if not isinstance(py, BpfError):
                w.rt.close(py)
            if not isinstance(k, BpfError):
                kernel_close(k)

        update(0, a)
        update(1, a)
        w.rt.close(a[0])
        w.close_k(a[1])
        alive("a", True)
        py, k = (w.py(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=opy, key=bytes(4))),
                 w.k(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=ok, key=bytes(4))))
        same_errno(py, k, "delete 0")
        alive("a", True)  # still in slot 1
        update(1, b)  # replaces the last reference to a
        alive("a", False)
        w.rt.close(b[0])
        w.close_k(b[1])
        alive("b", True)
    finally:
        w.close()


@pytest.mark.parametrize("template", [*TEMPLATES, (AOM, 4, 4, 4, 0, 0)])
@pytest.mark.parametrize("outer_type", [AOM, HOM])
def test_every_template_type_and_change_matches_the_kernel(template: tuple[Any, ...],
                                                           outer_type: MapType) -> None:
    """Each template type (a map of maps too), and each one-field change of it as an
    inner map: the same create and update errno on both sides."""
    w = Worlds()
    try:
        if template[0] is AOM:
            inner = (MapType.ARRAY, 4, 8, 4, 0, 0)
            i = w.create(spec_attr(inner), spec_attr(inner))
            t = w.create(spec_attr(template, i[0]), spec_attr(template, i[1]))
        else:
            t = w.create(spec_attr(template), spec_attr(template))
        outer = dict(map_type=outer_type, key_size=4, value_size=4, max_entries=8)
        opy, ok = w.create(MapCreateAttr(inner_map_fd=t[0], **outer),
                           MapCreateAttr(inner_map_fd=t[1], **outer))
        same_errno(opy, ok, f"outer over {template}")
        if isinstance(ok, BpfError):
            return
        for n, change in enumerate(sorted(set(CHANGES))):
            spec = changed(template, change)
            c = w.create(spec_attr(spec), spec_attr(spec))
            same_errno(*c, f"candidate {spec}")
            if isinstance(c[1], BpfError):
                continue
            key = n.to_bytes(4, "little")
            py = w.py(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=opy, key=key,
                                                       value=c[0].to_bytes(4, "little")))
            k = w.k(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=ok, key=key,
                                                     value=c[1].to_bytes(4, "little")))
            same_errno(py, k, f"update with {change}: {spec} over template {template}")
    finally:
        w.close()
