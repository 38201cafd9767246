"""LRU hash maps, pyebpf against the real kernel, step by step.

The kernel's LRU is deterministic for a single caller pinned to one CPU: which
element an update evicts depends only on the lists' state, the CPU the call
runs on, and the ref bits that program lookups set. So these tests pin the
process (moving it between CPUs as a rule), look keys up from a real BPF
program on the kernel side (an XDP program run with BPF_PROG_TEST_RUN) and with
``lookup_elem`` (the program-side op) on the pyebpf side, and require the same
answer at every step and the very same contents, in the same get_next_key
order (BPF_F_ZERO_SEED), after every step: eviction choices included.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapElemAttr, MapFlags, MapType
from pyebpf.testing.kernel import possible_cpus

from ._kbpf import ProgLookup
from .harness import MapPair, Outcome, info_fields, on_kernel, on_pyebpf, same, same_errno

pytestmark = pytest.mark.kernel

UPDATE_FLAGS = [0, 0, 0, 0, 1, 1, 2, 2, 3, 4]


def round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class LruMachine(RuleBasedStateMachine):
    """One LRU map on both sides, driven from (possibly) several CPUs."""

    def __init__(self) -> None:
        super().__init__()
        self.pair: MapPair | None = None
        self.prog: ProgLookup | None = None
        self.saved_affinity = os.sched_getaffinity(0)
        self.log: list[str] = []

    @initialize(data=st.data())
    def create(self, data: st.DataObject) -> None:
        mtype = data.draw(st.sampled_from([MapType.LRU_HASH, MapType.LRU_PERCPU_HASH]),
                          label="map_type")
        flags = MapFlags.ZERO_SEED
        if data.draw(st.booleans(), label="no_common_lru"):
            flags |= MapFlags.NO_COMMON_LRU
        ks = data.draw(st.sampled_from([4, 8]), label="key_size")
        vs = data.draw(st.integers(1, 12), label="value_size")
        me = data.draw(st.sampled_from([1, 2, 3, 4, 5, 6, 8, 10, 16, 33]), label="max_entries")
        attr = MapCreateAttr(map_type=mtype, key_size=ks, value_size=vs, max_entries=me,
                             map_flags=flags)
        self.ncpus = possible_cpus()
        self.cpu = 0
        self._set_cpu(0)
        self.pair = MapPair(attr)
        py, k = self.pair.created
        same_errno(py, k, f"MAP_CREATE {attr}")
        assert py.ok
        self.prog = ProgLookup(self.pair.k_fd, ks)
        self.ks, self.vs = ks, vs
        self.percpu = mtype is MapType.LRU_PERCPU_HASH
        pool_size = data.draw(st.integers(me + 1, me + 8), label="pool size")
        self.pool = [i.to_bytes(ks, "little") for i in range(1, pool_size + 1)]
        # OBJ_GET_INFO_BY_FD: max_entries is rounded to the CPUs for BPF_F_NO_COMMON_LRU.
        info = self.pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
        same_errno(*info, "OBJ_GET_INFO_BY_FD")
        assert info_fields(info[0].value) == info_fields(info[1].value)
        self.me = info[0].value.max_entries

    def teardown(self) -> None:
        if self.prog is not None:
            self.prog.close()
        if self.pair is not None:
            self.pair.close()
        os.sched_setaffinity(0, self.saved_affinity)

    def _set_cpu(self, cpu: int) -> None:
        os.sched_setaffinity(0, {cpu})
        self.cpu = cpu
        if self.pair is not None:
            self.pair.rt.cpu = cpu

    # -- arguments ----------------------------------------------------------------------
    def draw_key(self, data: st.DataObject) -> bytes:
        return data.draw(st.sampled_from(self.pool), label="key")

    def draw_value(self, data: st.DataObject) -> bytes:
        v = data.draw(st.binary(min_size=self.vs, max_size=self.vs), label="value")
        if not self.percpu:
            return v
        # Per-CPU: one value per CPU, zero-padded to 8 bytes each.
        slot = round_up(self.vs, 8)
        return b"".join((v[c:] + v[:c]).ljust(slot, b"\0") for c in range(self.ncpus))

    def step(self, what: str, result: tuple[Outcome, Outcome]) -> None:
        self.log.append(f"{what} -> {result[0]!r} / {result[1]!r}")
        same(*result, what)

    # -- operations ----------------------------------------------------------------------
    def update(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key, value = self.draw_key(data), self.draw_value(data)
        flags = data.draw(st.sampled_from(UPDATE_FLAGS), label="flags")
        self.step(f"cpu{self.cpu} UPDATE {key.hex()} flags={flags}",
                  self.pair.elem(Cmd.MAP_UPDATE_ELEM, key=key, value=value, flags=flags))

    def lookup(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        self.step(f"LOOKUP {key.hex()}", self.pair.elem(Cmd.MAP_LOOKUP_ELEM, key=key))

    def prog_lookup(self, data: st.DataObject) -> None:
        """A program's lookup: sets the element's ref bit on both sides."""
        assert self.pair is not None and self.prog is not None
        key = self.draw_key(data)
        m = self.pair.rt.fds[self.pair.py_fd].obj
        m.lookup_elem(key)  # type: ignore[attr-defined]
        self.prog(key)
        self.log.append(f"PROG_LOOKUP {key.hex()}")

    def delete(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        self.step(f"DELETE {key.hex()}", self.pair.elem(Cmd.MAP_DELETE_ELEM, key=key))

    def lookup_and_delete(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        self.step(f"LOOKUP_AND_DELETE {key.hex()}",
                  self.pair.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, key=key))

    def get_next_key(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = data.draw(st.one_of(st.none(), st.sampled_from(self.pool)), label="key")
        self.step(f"GET_NEXT_KEY {key!r}", self.pair.elem(Cmd.MAP_GET_NEXT_KEY, key=key))

    def switch_cpu(self, data: st.DataObject) -> None:
        cpu = data.draw(st.integers(0, self.ncpus - 1), label="cpu")
        self._set_cpu(cpu)
        self.log.append(f"CPU {cpu}")

    #: Updates and program lookups drive eviction; the rest checks and perturbs.
    OPS = (["update"] * 6 + ["prog_lookup"] * 4 + ["lookup", "delete", "lookup_and_delete",
                                                    "get_next_key", "switch_cpu"])

    @rule(data=st.data())
    def op(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self.OPS), label="op")
        getattr(self, name)(data)

    # -- the whole map, in order, after every step ------------------------------------------
    def contents(self, run: Any, fd: int) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        key: bytes | None = None
        for _ in range(self.me + 1):
            r = run(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=key))
            if not r.ok:
                assert r.err == 2, r
                return out
            key = r.value
            v = run(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key))
            assert v.ok, v
            out.append((key, v.value))
        raise AssertionError(f"more than max_entries keys: {out}")

    @invariant()
    def same_contents(self) -> None:
        if self.pair is None or self.pair.py_fd is None:
            return
        rt = self.pair.rt
        py = self.contents(lambda c, a: on_pyebpf(rt, c, a), self.pair.py_fd)
        k = self.contents(lambda c, a: on_kernel(c, a, **self.pair.sizes), self.pair.k_fd)
        if py != k:
            m = rt.fds[self.pair.py_fd].obj
            raise AssertionError(
                f"contents differ after {self.log[-3:]}:\n py {[x[0].hex() for x in py]}\n"
                f"  k {[x[0].hex() for x in k]}\n lists {m.lru_state.lists()}")


TestLru = LruMachine.TestCase
TestLru.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


#: Scripted sequences for the paths random sequences reach rarely: (what, map type,
#: max_entries, map_flags, ops). Ops: ``u<key>[f<flags>]`` update, ``l<key>`` a
#: program's lookup, ``s<key>`` a syscall lookup, ``d<key>`` delete, ``x<key>``
#: lookup-and-delete, ``c<cpu>`` move to a CPU.
SCENARIOS = [
    ("program lookups keep keys", MapType.LRU_HASH, 4, 0, "u1 u2 u3 u4 l1 l2 u5 u6 u7 u8"),
    ("updating an existing key evicts another", MapType.LRU_HASH, 2, 0, "u2 u4 u4"),
    ("a failing NOEXIST update still evicts", MapType.LRU_HASH, 2, 0, "u3f1 u4 u4f1"),
    ("BPF_EXIST fails after evicting its own key", MapType.LRU_HASH, 2, 0, "u3 u4 u3f2"),
    ("LRU_PERCPU_HASH takes no node for BPF_EXIST", MapType.LRU_PERCPU_HASH, 2, 0,
     "u3 u4 u3f2 u3f2 u5 u3f2"),
    ("stealing from another CPU's lists", MapType.LRU_HASH, 1, 0,
     "u1 c1 u2 c0 u3 d3 c1 u4 c0 u5 l5 c1 u6"),
    ("stealing with pending ref bits", MapType.LRU_HASH, 3, 0,
     "u1 l1 c1 u2 u3 c0 u4 l4 u5 c1 u6 u7 c0 u8"),
    ("per-CPU lists evict only their own", MapType.LRU_HASH, 4, MapFlags.NO_COMMON_LRU,
     "u1 u2 c1 u3 u4 u5 c0 u6 l6 u7 u8"),
    ("per-CPU rotation pointer", MapType.LRU_PERCPU_HASH, 16, MapFlags.NO_COMMON_LRU,
     "u12f1 u21f1 u7 u22 u10 u14 u25 u13 u15f1 u16 u5 u3 u10f2 u20f1"),
    ("per-CPU active rotation scans 4", MapType.LRU_PERCPU_HASH, 16, MapFlags.NO_COMMON_LRU,
     "u13 u4 u7 u8 u11 l11 u13f2 u14 l8 l4 u16 l14 u1 u2 u13 u1 u18 u11"),
    ("per-CPU shrink scans 4", MapType.LRU_HASH, 16, MapFlags.NO_COMMON_LRU,
     "u3 u15 u17f1 u4f1 u20 u7 u18 u13 l20 l15 u20"),
    ("least recently used first", MapType.LRU_HASH, 4, 0, "u1 u2 u3 u4 u5 u6 u7"),
    ("syscall lookups set no ref bit", MapType.LRU_HASH, 4, 0, "u1 u2 u3 u4 s1 s2 u5 u6 u7 u8"),
    ("deleted nodes are reused first", MapType.LRU_HASH, 4, 0, "u1 u2 u3 u4 d2 u5 x5 u6"),
    ("bad flags evict nothing", MapType.LRU_HASH, 1, 0, "u1 u2f3 u2f4 u2f6"),
    ("bad flags evict nothing (per-CPU)", MapType.LRU_PERCPU_HASH, 1, 0, "u1 u2f3 u2f4"),
    ("per-CPU values, program lookups", MapType.LRU_PERCPU_HASH, 4, 0,
     "u1 u2 u3 u4 l1 c1 l2 u5 u6 c0 u7 u8 s1 s2"),
    ("a big common LRU (target_free 8)", MapType.LRU_HASH, 33, 0,
     " ".join([f"u{i}" for i in range(1, 40)] + [f"l{i}" for i in range(20, 30)]
              + [f"u{i}" for i in range(40, 80)] + ["c1"] + [f"u{i}" for i in range(80, 90)])),
]


@pytest.mark.parametrize("what,mtype,me,flags,ops", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_lru_scenario_matches_kernel(what: str, mtype: MapType, me: int, flags: int,
                                     ops: str) -> None:
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    attr = MapCreateAttr(map_type=mtype, key_size=4, value_size=8, max_entries=me,
                         map_flags=flags | MapFlags.ZERO_SEED)
    pair = MapPair(attr)
    prog = None
    try:
        py, k = pair.created
        same_errno(py, k, what)
        prog = ProgLookup(pair.k_fd, 4)
        m = pair.rt.fds[pair.py_fd].obj
        vsize = m.syscall_value_size  # type: ignore[attr-defined]
        rt = pair.rt

        def walk(run: Any, fd: int) -> list[bytes]:
            out: list[bytes] = []
            key = None
            while True:
                r = run(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=key))
                if not r.ok:
                    return out
                key = r.value
                out.append(key)

        for op in ops.split():
            kind, arg = op[0], op[1:]
            if kind == "c":
                os.sched_setaffinity(0, {int(arg)})
                rt.cpu = int(arg)
                continue
            num, _, fl = arg.partition("f")
            key = int(num).to_bytes(4, "little")
            if kind == "u":
                value = bytes([int(num)]) * vsize
                same(*pair.elem(Cmd.MAP_UPDATE_ELEM, key=key, value=value, flags=int(fl or 0)),
                     f"{what}: {op}")
            elif kind == "d":
                same(*pair.elem(Cmd.MAP_DELETE_ELEM, key=key), f"{what}: {op}")
            elif kind == "s":
                same(*pair.elem(Cmd.MAP_LOOKUP_ELEM, key=key), f"{what}: {op}")
            elif kind == "x":
                same(*pair.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, key=key), f"{what}: {op}")
            elif kind == "l":
                m.lookup_elem(key)  # type: ignore[attr-defined]
                prog(key)
            py_keys = walk(lambda c, a: on_pyebpf(rt, c, a), pair.py_fd)
            k_keys = walk(lambda c, a: on_kernel(c, a, **pair.sizes), pair.k_fd)
            assert py_keys == k_keys, f"{what}: after {op}: py {py_keys} kernel {k_keys}"
    finally:
        if prog is not None:
            prog.close()
        pair.close()
        os.sched_setaffinity(0, saved)
