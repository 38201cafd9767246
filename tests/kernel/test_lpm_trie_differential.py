"""LPM tries, pyebpf against the real kernel, step by step.

Random prefixes drawn around a few base addresses (so that they nest, split and
share intermediate nodes), updated, looked up (longest-prefix match), deleted
and walked with the same flags on both sides: the same result or errno at every
step, and after every step the same get_next_key walk (the kernel's post-order,
which only matches if the trie has the kernel's very shape) with the same values.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pyebpf import Cmd, MapCreateAttr, MapElemAttr, MapFlags, MapType

from .harness import MapPair, Outcome, on_kernel, on_pyebpf, same, same_errno

pytestmark = pytest.mark.kernel

UPDATE_FLAGS = [0, 0, 0, 0, 1, 1, 2, 2, 3, 4]


def lpm_key(prefixlen: int, data: bytes) -> bytes:
    return prefixlen.to_bytes(4, "little") + data


class LpmMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pair: MapPair | None = None
        self.log: list[str] = []

    @initialize(data=st.data())
    def create(self, data: st.DataObject) -> None:
        self.ds = data.draw(st.sampled_from([1, 1, 2, 2, 3, 4, 4, 5, 8, 9, 16]), label="data_size")
        self.vs = data.draw(st.integers(1, 12), label="value_size")
        self.me = data.draw(st.sampled_from([1, 2, 3, 5, 8, 16, 64]), label="max_entries")
        attr = MapCreateAttr(map_type=MapType.LPM_TRIE, key_size=4 + self.ds,
                             value_size=self.vs, max_entries=self.me,
                             map_flags=MapFlags.NO_PREALLOC)
        self.pair = MapPair(attr)
        py, k = self.pair.created
        same_errno(py, k, f"MAP_CREATE {attr}")
        assert py.ok
        self.bases = data.draw(st.lists(st.binary(min_size=self.ds, max_size=self.ds),
                                        min_size=1, max_size=3), label="bases")
        self.maxlen = self.ds * 8
        #: Keys updated so far: deletes and lookups often hit exactly these.
        self.used: list[bytes] = []

    def teardown(self) -> None:
        if self.pair is not None:
            self.pair.close()

    # -- arguments ----------------------------------------------------------------------
    def draw_key(self, data: st.DataObject) -> bytes:
        kind = data.draw(st.sampled_from(["present", "present", "used", "new", "new"]),
                         label="key kind")
        present = self.present()
        if kind == "present" and present:
            return data.draw(st.sampled_from(present), label="key")
        if kind in ("present", "used") and self.used:
            return data.draw(st.sampled_from(self.used), label="key")
        base = data.draw(st.sampled_from(self.bases), label="base")
        bits = int.from_bytes(base, "big")
        for flip in data.draw(st.lists(st.integers(0, self.maxlen - 1), max_size=2),
                              label="flipped bits"):
            bits ^= 1 << (self.maxlen - 1 - flip)
        # Prefix lengths: mostly valid, sometimes past the data, rarely absurd.
        plen = data.draw(st.one_of(st.integers(0, self.maxlen), st.integers(0, self.maxlen),
                                   st.integers(0, self.maxlen),
                                   st.sampled_from([self.maxlen + 1, 0xFFFF_FFFF])),
                         label="prefixlen")
        return lpm_key(plen, bits.to_bytes(self.ds, "big"))

    def present(self) -> list[bytes]:
        """The keys in the trie now (pyebpf's walk; the invariant checks it is the kernel's)."""
        assert self.pair is not None and self.pair.py_fd is not None
        return list(self.pair.rt.fds[self.pair.py_fd].obj.iter_keys())  # type: ignore[attr-defined]

    def step(self, what: str, result: tuple[Outcome, Outcome]) -> None:
        self.log.append(f"{what} -> {result[0]!r} / {result[1]!r}")
        same(*result, what)

    # -- rules ---------------------------------------------------------------------------
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        value = data.draw(st.binary(min_size=self.vs, max_size=self.vs), label="value")
        flags = data.draw(st.sampled_from(UPDATE_FLAGS), label="flags")
        if key not in self.used:
            self.used.append(key)
        self.step(f"UPDATE {key.hex()} flags={flags}",
                  self.pair.elem(Cmd.MAP_UPDATE_ELEM, key=key, value=value, flags=flags))

    @rule(data=st.data())
    def update_more(self, data: st.DataObject) -> None:
        """Updates build the trie: twice as likely as any other rule."""
        self.update(data)

    @rule(data=st.data())
    def lookup(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        self.step(f"LOOKUP {key.hex()}", self.pair.elem(Cmd.MAP_LOOKUP_ELEM, key=key))

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        self.step(f"DELETE {key.hex()}", self.pair.elem(Cmd.MAP_DELETE_ELEM, key=key))

    @rule(data=st.data())
    def get_next_key(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = data.draw(st.one_of(st.none(), st.builds(self.draw_key, st.just(data))),
                        label="key")
        self.step(f"GET_NEXT_KEY {key!r}", self.pair.elem(Cmd.MAP_GET_NEXT_KEY, key=key))

    @rule(data=st.data())
    def lookup_and_delete(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        self.step(f"LOOKUP_AND_DELETE {key.hex()}",
                  self.pair.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, key=key))

    # -- the whole trie, in the kernel's order ---------------------------------------------
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
        assert py == k, f"walks differ after {self.log[-2:]}:\n py {py}\n  k {k}"


TestLpmTrie = LpmMachine.TestCase
TestLpmTrie.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)


def _ip(text: str) -> str:
    """``"192.168.1.0/24"`` -> ``"24:c0a80100"`` (the scenario op argument)."""
    addr, _, plen = text.partition("/")
    return f"{plen}:{bytes(int(x) for x in addr.split('.')).hex()}"


#: Scripted sequences over IPv4 keys (what, ops). Ops: ``u``/``l``/``d``/``n`` (update,
#: lookup, delete, get_next_key) followed by ``prefixlen:hexdata``; ``u`` may end in
#: ``f<flags>``; ``n-`` is get_next_key with a NULL key.
LPM_SCENARIOS = [
    ("the kernel's documented example", [
        "u" + _ip("192.168.0.0/16"), "u" + _ip("192.168.0.0/24"), "u" + _ip("192.168.128.0/24"),
        "u" + _ip("192.168.1.0/24"), "l" + _ip("192.168.1.1/32"), "l" + _ip("192.168.0.0/23"),
        "l" + _ip("192.168.2.1/32"), "l" + _ip("10.0.0.1/32"), "n-", "n" + _ip("192.168.1.0/24"),
        "n" + _ip("192.168.0.0/16"), "n" + _ip("192.168.0.0/23"), "n" + _ip("1.2.3.4/33")]),
    ("deleting a node with two children leaves an intermediate node", [
        "u" + _ip("10.0.0.0/8"), "u" + _ip("10.0.0.0/16"), "u" + _ip("10.128.0.0/16"),
        "d" + _ip("10.0.0.0/8"), "l" + _ip("10.1.2.3/32"), "l" + _ip("10.0.2.3/32"),
        "u" + _ip("10.0.0.0/8") + "f2", "d" + _ip("10.0.0.0/8"), "u" + _ip("10.0.0.0/8") + "f1",
        "l" + _ip("10.1.2.3/32"), "d" + _ip("10.128.0.0/16"), "l" + _ip("10.128.2.3/32")]),
    ("a leaf under an intermediate node takes it along", [
        "u" + _ip("10.0.0.0/16"), "u" + _ip("10.1.0.0/16"), "u" + _ip("10.2.0.0/16"),
        "d" + _ip("10.1.0.0/16"), "d" + _ip("10.0.0.0/16"), "u" + _ip("10.3.0.0/16"),
        "d" + _ip("10.2.0.0/16"), "d" + _ip("10.3.0.0/16"), "n-"]),
    ("an intermediate node is a match for no lookup", [
        "u" + _ip("10.0.0.0/8"), "u" + _ip("10.0.0.0/24"), "u" + _ip("10.0.1.0/24"),
        "l" + _ip("10.0.0.0/23"), "l" + _ip("10.0.0.0/22"), "u" + _ip("10.0.0.0/23") + "f2",
        "u" + _ip("10.0.0.0/23") + "f1", "l" + _ip("10.0.0.0/23")]),
    ("bits past the prefix length are kept", [
        "u" + _ip("10.1.2.3/8"), "n-", "u" + _ip("10.9.9.9/8"), "n-", "l" + _ip("10.200.0.0/9"),
        "d" + _ip("10.7.7.7/8"), "n-"]),
    ("full tries refuse new prefixes, not replacements", [
        "u" + _ip("1.0.0.0/8"), "u" + _ip("2.0.0.0/8"), "u" + _ip("3.0.0.0/8"),
        "u" + _ip("1.0.0.0/8"), "u" + _ip("1.0.0.0/16"), "u" + _ip("4.0.0.0/8"),
        "u" + _ip("1.0.0.0/16") + "f1", "d" + _ip("2.0.0.0/8"), "u" + _ip("4.0.0.0/8"),
        "u" + _ip("0.0.0.0/0"), "u" + _ip("3.0.0.0/8") + "f2", "l" + _ip("9.9.9.9/32")]),
]


@pytest.mark.parametrize("what,ops", LPM_SCENARIOS, ids=[s[0] for s in LPM_SCENARIOS])
def test_lpm_scenario_matches_kernel(what: str, ops: list[str]) -> None:
    attr = MapCreateAttr(map_type=MapType.LPM_TRIE, key_size=8, value_size=4, max_entries=4,
                         map_flags=MapFlags.NO_PREALLOC)
    with MapPair(attr) as pair:
        same_errno(*pair.created, what)
        rt = pair.rt
        for i, op in enumerate(ops):
            kind, arg = op[0], op[1:]
            key = None
            flags = 0
            if arg != "-":
                spec, _, fl = arg.partition("f")
                plen, _, hexdata = spec.partition(":")
                key = lpm_key(int(plen), bytes.fromhex(hexdata))
                flags = int(fl or 0)
            if kind == "u":
                r = pair.elem(Cmd.MAP_UPDATE_ELEM, key=key, value=i.to_bytes(4, "little"),
                              flags=flags)
            elif kind == "l":
                r = pair.elem(Cmd.MAP_LOOKUP_ELEM, key=key)
            elif kind == "d":
                r = pair.elem(Cmd.MAP_DELETE_ELEM, key=key)
            else:
                r = pair.elem(Cmd.MAP_GET_NEXT_KEY, key=key)
            same(*r, f"{what}: {op}")
            walk = []
            for run, fd in ((lambda c, a: on_pyebpf(rt, c, a), pair.py_fd),
                            (lambda c, a: on_kernel(c, a, **pair.sizes), pair.k_fd)):
                keys: list[bytes] = []
                k: bytes | None = None
                while (r := run(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=k))).ok:
                    k = r.value
                    keys.append(k)
                walk.append(keys)
            assert walk[0] == walk[1], f"{what}: after {op}: py {walk[0]} kernel {walk[1]}"
