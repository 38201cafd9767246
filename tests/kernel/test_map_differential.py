"""pyebpf against the real kernel, command by command.

Hypothesis state machines create the same map on pyebpf and on the kernel and
apply the same random sequence of element commands, with keys and values of the
right and the wrong length, NULL buffers, and valid and invalid flags, and
require the same result or the same errno at every step, and the same contents
after every step. With BPF_F_ZERO_SEED a hash map's bucket order is the
kernel's, so iteration order must match exactly; without it, only the set of
keys can.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pyebpf import Cmd, MapCreateAttr, MapElemAttr, MapFdAttr, MapFlags, MapType
from pyebpf.testing.kernel import possible_cpus

from .harness import BAD_FD, MapPair, Outcome, on_kernel, on_pyebpf, same, same_errno

pytestmark = pytest.mark.kernel

#: Update flags: the three modes, BPF_F_LOCK (no spin lock here: EINVAL), and junk.
UPDATE_FLAGS = [0] * 6 + [1] * 3 + [2] * 3 + [3, 4, 5, 6, 7, 8, 16, 1 << 32, 1 << 63]
#: Lookup / lookup-and-delete flags: only BPF_F_LOCK is known.
LOOKUP_FLAGS = [0, 0, 0, 0, 4, 1, 2, 3, 8, 1 << 40]

_HASHES = (MapType.HASH, MapType.PERCPU_HASH)
_PERCPU = (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY)


def round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class MapMachine(RuleBasedStateMachine):
    """One map on both sides; subclasses choose the type and the seed."""

    map_type: ClassVar[MapType]
    zero_seed: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.pair: MapPair | None = None

    # -- setup -------------------------------------------------------------------
    @initialize(data=st.data())
    def create(self, data: st.DataObject) -> None:
        is_hash = self.map_type in _HASHES
        ks = data.draw(st.integers(1, 16), label="key_size") if is_hash else 4
        vs = data.draw(st.integers(1, 16), label="value_size")
        me = data.draw(st.integers(1, 8), label="max_entries")
        flags = 0
        if is_hash:
            if self.zero_seed:
                flags |= MapFlags.ZERO_SEED
            if data.draw(st.booleans(), label="no_prealloc"):
                flags |= MapFlags.NO_PREALLOC
        name = data.draw(st.sampled_from([b"", b"diff", b"m.a_p9"]), label="name")
        attr = MapCreateAttr(map_type=self.map_type, key_size=ks, value_size=vs,
                             max_entries=me, map_flags=flags, map_name=name)
        self.pair = MapPair(attr)
        py, k = self.pair.created
        same_errno(py, k, f"MAP_CREATE {attr}")
        assert py.ok, f"the machine's own map must be valid: {py!r}"
        self.ks, self.vs, self.me = ks, vs, me
        self.sys_vs = round_up(vs, 8) * possible_cpus() if self.map_type in _PERCPU else vs
        if is_hash:
            self.pool = data.draw(st.lists(st.binary(min_size=ks, max_size=ks), unique=True,
                                           min_size=me + 1, max_size=me + 4), label="keys")
        else:
            idx = [*range(me + 2), 0xFFFF_FFFF, 1 << 31]
            self.pool = [i.to_bytes(4, "little") for i in idx]
        self.log: list[str] = []

    def teardown(self) -> None:
        if self.pair is not None:
            self.pair.close()

    # -- drawing arguments ----------------------------------------------------------
    def draw_key(self, data: st.DataObject, *, null: bool = True) -> bytes | None:
        kinds = ["pool"] * 12 + ["random", "short", "long"] + (["null"] if null else [])
        kind = data.draw(st.sampled_from(kinds), label="key kind")
        if kind == "pool":
            return data.draw(st.sampled_from(self.pool), label="key")
        if kind == "random":
            return data.draw(st.binary(min_size=self.ks, max_size=self.ks), label="key")
        if kind == "short":
            return data.draw(st.binary(max_size=self.ks - 1), label="key")
        if kind == "long":
            base = data.draw(st.sampled_from(self.pool), label="key")
            return base + data.draw(st.binary(min_size=1, max_size=8), label="key tail")
        return None

    def draw_value(self, data: st.DataObject) -> bytes | None:
        kind = data.draw(st.sampled_from(["exact"] * 12 + ["short", "long", "null"]),
                         label="value kind")
        n = self.sys_vs
        if kind == "exact":
            return data.draw(st.binary(min_size=n, max_size=n), label="value")
        if kind == "short":
            return data.draw(st.binary(max_size=n - 1), label="value")
        if kind == "long":
            return data.draw(st.binary(min_size=n + 1, max_size=n + 9), label="value")
        return None

    def step(self, what: str, result: tuple[Outcome, Outcome], *, values: bool = True) -> None:
        self.log.append(f"{what} -> {result[0]!r} / {result[1]!r}")
        event(f"{what.split()[0]} -> {result[1]!r:.9}")
        (same if values else same_errno)(*result, what)

    # -- rules ------------------------------------------------------------------------
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        value = self.draw_value(data)
        flags = data.draw(st.sampled_from(UPDATE_FLAGS), label="flags")
        r = self.pair.elem(Cmd.MAP_UPDATE_ELEM, key=key, value=value, flags=flags)
        self.step(f"UPDATE key={key!r} value={value!r} flags={flags:#x}", r)

    @rule(data=st.data())
    def fill(self, data: st.DataObject) -> None:
        """A well-formed update, so that maps fill up (E2BIG) and iterate non-trivially."""
        assert self.pair is not None
        key = data.draw(st.sampled_from(self.pool), label="key")
        value = data.draw(st.binary(min_size=self.sys_vs, max_size=self.sys_vs), label="value")
        flags = data.draw(st.sampled_from([0, 0, 1, 2]), label="flags")
        r = self.pair.elem(Cmd.MAP_UPDATE_ELEM, key=key, value=value, flags=flags)
        self.step(f"UPDATE key={key!r} value={value!r} flags={flags:#x}", r)

    @rule(data=st.data())
    def lookup(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        flags = data.draw(st.sampled_from(LOOKUP_FLAGS), label="flags")
        r = self.pair.elem(Cmd.MAP_LOOKUP_ELEM, key=key, flags=flags)
        self.step(f"LOOKUP key={key!r} flags={flags:#x}", r)

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        r = self.pair.elem(Cmd.MAP_DELETE_ELEM, key=key)
        self.step(f"DELETE key={key!r}", r)

    @rule(data=st.data())
    def get_next_key(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        r = self.pair.elem(Cmd.MAP_GET_NEXT_KEY, key=key)
        what = f"GET_NEXT_KEY key={key!r}"
        if self.zero_seed or self.map_type not in _HASHES:
            self.step(what, r)
            return
        # A random seed: which key comes next is the seed's choice. A NULL or short key
        # still fails or succeeds alike; any key returned must be one of the map's.
        if key is None or len(key) < self.ks:
            self.step(what, r, values=False)
        else:
            self.log.append(f"{what} -> {r[0]!r} / {r[1]!r} (not compared)")
        for side, contents in ((r[0], self.py_contents()), (r[1], self.k_contents())):
            assert side.ok or side.err in (2, 14), f"{what}: {side!r}"
            if side.ok:
                assert side.value in contents, f"{what}: {side.value!r} is not in the map"

    @rule(data=st.data())
    def lookup_and_delete(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        flags = data.draw(st.sampled_from(LOOKUP_FLAGS), label="flags")
        r = self.pair.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, key=key, flags=flags)
        self.step(f"LOOKUP_AND_DELETE key={key!r} flags={flags:#x}", r)

    @rule(data=st.data())
    def freeze(self, data: st.DataObject) -> None:
        assert self.pair is not None
        if data.draw(st.integers(0, 9), label="freeze?") == 0:
            r = self.pair.run(Cmd.MAP_FREEZE, lambda fd: MapFdAttr(map_fd=fd))
            self.step("FREEZE", r)
        else:
            r = self.pair.run(Cmd.MAP_FREEZE, lambda fd: MapFdAttr(map_fd=BAD_FD))
            self.step("FREEZE bad fd", r)

    @rule(data=st.data())
    def bad_fd(self, data: st.DataObject) -> None:
        """A command on an fd open on neither side (EBADF), unless the flags fail first."""
        assert self.pair is not None
        cmd = data.draw(st.sampled_from([Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM,
                                         Cmd.MAP_DELETE_ELEM, Cmd.MAP_GET_NEXT_KEY,
                                         Cmd.MAP_LOOKUP_AND_DELETE_ELEM]), label="cmd")
        key = self.draw_key(data)
        flags = data.draw(st.sampled_from(UPDATE_FLAGS), label="flags")
        fields: dict[str, Any] = {"key": key}
        if cmd in (Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_LOOKUP_AND_DELETE_ELEM):
            fields["flags"] = flags
        if cmd is Cmd.MAP_UPDATE_ELEM:
            fields["value"] = self.draw_value(data)
        r = self.pair.run(cmd, lambda fd: MapElemAttr(map_fd=BAD_FD, **fields))
        self.step(f"{cmd.name} on a bad fd {fields}", r)

    # -- the whole map must agree after every step ---------------------------------------
    def contents(self, side: str) -> list[tuple[bytes, bytes]]:
        assert self.pair is not None
        fd = self.pair.py_fd if side == "py" else self.pair.k_fd
        run = self._py if side == "py" else self._k
        out: list[tuple[bytes, bytes]] = []
        key: bytes | None = None
        for _ in range(self.me + 1):
            r = run(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=key))
            if not r.ok:
                assert r.err == 2, f"{side} GET_NEXT_KEY while walking: {r!r}"
                return out
            key = r.value
            v = run(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key))
            assert v.ok, f"{side} LOOKUP of a key GET_NEXT_KEY gave: {v!r}"
            out.append((key, v.value))
        raise AssertionError(f"{side}: more than max_entries keys: {out}")

    def _py(self, cmd: Cmd, attr: Any) -> Outcome:
        assert self.pair is not None
        return on_pyebpf(self.pair.rt, cmd, attr)

    def _k(self, cmd: Cmd, attr: Any) -> Outcome:
        assert self.pair is not None
        return on_kernel(cmd, attr, **self.pair.sizes)

    def py_contents(self) -> dict[bytes, bytes]:
        return dict(self.contents("py"))

    def k_contents(self) -> dict[bytes, bytes]:
        return dict(self.contents("k"))

    @invariant()
    def same_contents(self) -> None:
        if self.pair is None or self.pair.py_fd is None:
            return
        py, k = self.contents("py"), self.contents("k")
        if self.zero_seed or self.map_type not in _HASHES:
            assert py == k, f"contents differ after {self.log[-1:]}:\n py {py}\n  k {k}"
        else:
            assert dict(py) == dict(k), f"contents differ after {self.log[-1:]}"


_SETTINGS = settings(max_examples=60, stateful_step_count=30, deadline=None)


class HashZeroSeed(MapMachine):
    map_type = MapType.HASH


class HashRandomSeed(MapMachine):
    map_type = MapType.HASH
    zero_seed = False


class PercpuHash(MapMachine):
    map_type = MapType.PERCPU_HASH


class Array(MapMachine):
    map_type = MapType.ARRAY


class PercpuArray(MapMachine):
    map_type = MapType.PERCPU_ARRAY


TestHashZeroSeed = HashZeroSeed.TestCase
TestHashZeroSeed.settings = _SETTINGS
TestHashRandomSeed = HashRandomSeed.TestCase
TestHashRandomSeed.settings = _SETTINGS
TestPercpuHash = PercpuHash.TestCase
TestPercpuHash.settings = _SETTINGS
TestArray = Array.TestCase
TestArray.settings = _SETTINGS
TestPercpuArray = PercpuArray.TestCase
TestPercpuArray.settings = _SETTINGS
