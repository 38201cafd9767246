"""Bloom filters, pyebpf against the real kernel, step by step.

With BPF_F_ZERO_SEED the kernel's bitset is a pure function of the values
pushed, so every answer must match exactly: present values, absent ones, and
false positives alike. Filters are made small (few bits) so that false
positives are common, with every number of hash functions and value sizes
that take both the jhash2 (multiple of 4) and jhash paths.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from pyebpf import Cmd, MapCreateAttr, MapFlags, MapType

from .harness import MapPair, Outcome, same, same_errno

pytestmark = pytest.mark.kernel

PUSH_FLAGS = [0, 0, 0, 0, 0, 1, 2, 3, 4]


class BloomMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pair: MapPair | None = None
        self.log: list[str] = []
        self.pushed: list[bytes] = []

    @initialize(data=st.data())
    def create(self, data: st.DataObject) -> None:
        self.vs = data.draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 12, 13, 16, 40]),
                            label="value_size")
        me = data.draw(st.sampled_from([1, 1, 2, 3, 5, 10, 30, 100, 1000]), label="max_entries")
        # Few hash functions over few bits: false positives are frequent.
        extra = data.draw(st.sampled_from([1, 1, 2, 2, 3, 0, *range(4, 16)]), label="map_extra")
        attr = MapCreateAttr(map_type=MapType.BLOOM_FILTER, value_size=self.vs,
                             max_entries=me, map_flags=MapFlags.ZERO_SEED, map_extra=extra)
        self.pair = MapPair(attr)
        same_errno(*self.pair.created, f"MAP_CREATE {attr}")
        assert self.pair.created[0].ok

    def teardown(self) -> None:
        if self.pair is not None:
            self.pair.close()

    def step(self, what: str, result: tuple[Outcome, Outcome]) -> None:
        self.log.append(f"{what} -> {result[0]!r} / {result[1]!r}")
        same(*result, what)

    def draw_value(self, data: st.DataObject) -> bytes:
        if self.pushed and data.draw(st.booleans(), label="pushed before?"):
            return data.draw(st.sampled_from(self.pushed), label="value")
        return data.draw(st.binary(min_size=self.vs, max_size=self.vs), label="value")

    @rule(data=st.data())
    def push(self, data: st.DataObject) -> None:
        assert self.pair is not None
        value = self.draw_value(data)
        flags = data.draw(st.sampled_from(PUSH_FLAGS), label="flags")
        self.pushed.append(value)
        self.step(f"PUSH {value.hex()} flags={flags}",
                  self.pair.elem(Cmd.MAP_UPDATE_ELEM, value=value, flags=flags))

    @rule(data=st.data())
    def push_many(self, data: st.DataObject) -> None:
        """Fill the bitset faster: several new values at once."""
        assert self.pair is not None
        for value in data.draw(st.lists(st.binary(min_size=self.vs, max_size=self.vs),
                                        min_size=1, max_size=12), label="values"):
            self.pushed.append(value)
            self.step(f"PUSH {value.hex()}", self.pair.elem(Cmd.MAP_UPDATE_ELEM, value=value))

    @rule(data=st.data())
    def peek(self, data: st.DataObject) -> None:
        assert self.pair is not None
        value = self.draw_value(data)
        flags = data.draw(st.sampled_from([0, 0, 0, 4, 1]), label="flags")
        self.step(f"PEEK {value.hex()} flags={flags}",
                  self.pair.elem(Cmd.MAP_LOOKUP_ELEM, value=value, flags=flags))

    @rule(data=st.data())
    def peek_random(self, data: st.DataObject) -> None:
        """Values never pushed: absent, or false positives (the same ones on both)."""
        assert self.pair is not None
        for value in data.draw(st.lists(st.binary(min_size=self.vs, max_size=self.vs),
                                        min_size=1, max_size=16), label="values"):
            self.step(f"PEEK {value.hex()}", self.pair.elem(Cmd.MAP_LOOKUP_ELEM, value=value))

    @rule(data=st.data())
    def unsupported(self, data: st.DataObject) -> None:
        """Delete, pop, get_next_key, and keyed commands (NULL or not)."""
        assert self.pair is not None
        cmd = data.draw(st.sampled_from([Cmd.MAP_DELETE_ELEM, Cmd.MAP_LOOKUP_AND_DELETE_ELEM,
                                         Cmd.MAP_GET_NEXT_KEY, Cmd.MAP_UPDATE_ELEM,
                                         Cmd.MAP_LOOKUP_ELEM]), label="cmd")
        key = data.draw(st.one_of(st.none(), st.binary(min_size=1, max_size=4)), label="key")
        fields: dict[str, object] = {"key": key}
        if cmd in (Cmd.MAP_UPDATE_ELEM, Cmd.MAP_LOOKUP_ELEM):
            fields["value"] = self.draw_value(data)
        self.step(f"{cmd.name} {fields}", self.pair.elem(cmd, **fields))


TestBloomFilter = BloomMachine.TestCase
TestBloomFilter.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)


#: (max_entries, map_extra, value_size) around the bitset sizing boundaries: with
#: max_entries * nr_hashes = 184 the kernel's ``/ 5 * 7`` gives 252 bits (256), while
#: ``* 7 / 5`` would give 257 (512); 0 hash functions means 5.
SIZING = [(1, 0, 4), (1, 1, 4), (9, 1, 4), (46, 1, 8), (184, 1, 4), (183, 1, 3), (37, 5, 4),
          (36, 5, 4), (36, 0, 5), (37, 0, 4), (93, 2, 12), (1000, 3, 4)]


@pytest.mark.parametrize("me,extra,vs", SIZING)
def test_bloom_sizing_and_hashing_match_kernel(me: int, extra: int, vs: int) -> None:
    """Fill a filter (about 63% of its bits) and probe many absent values: every answer, false
    positives included, depends on the bitset's size and the hash seeds and functions."""
    import random

    rng = random.Random(me * 100 + extra)
    attr = MapCreateAttr(map_type=MapType.BLOOM_FILTER, value_size=vs, max_entries=me,
                         map_flags=MapFlags.ZERO_SEED, map_extra=extra)
    with MapPair(attr) as pair:
        same_errno(*pair.created, "MAP_CREATE")
        k = extra or 5
        bits = pair.rt.fds[pair.py_fd].obj.bitset_mask + 1  # type: ignore[attr-defined]
        for _ in range(max(1, bits // k)):
            value = rng.randbytes(vs)
            same(*pair.elem(Cmd.MAP_UPDATE_ELEM, value=value), "PUSH")
        answers = []
        for _ in range(120):
            value = rng.randbytes(vs)
            py, kern = pair.elem(Cmd.MAP_LOOKUP_ELEM, value=value)
            same(py, kern, f"PEEK {value.hex()}")
            answers.append(py.ok)
        assert any(answers), "no false positive at all: the probe proves little"
