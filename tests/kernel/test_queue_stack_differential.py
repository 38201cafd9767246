"""Queue and stack maps, pyebpf against the real kernel, step by step.

Random pushes (with every flag, including BPF_EXIST on a full map, which drops
the oldest value), pops, peeks, and the keyed commands that don't apply to
these maps (with NULL and non-NULL keys), with the same result or errno at
every step; every peek and pop compares the value, so the order of values in
the map is compared throughout.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from pyebpf import Cmd, MapCreateAttr, MapType

from .harness import MapPair, Outcome, same, same_errno

pytestmark = pytest.mark.kernel

PUSH_FLAGS = [0, 0, 0, 0, 2, 2, 2, 1, 3, 4, 8, 1 << 32]
LOOKUP_FLAGS = [0, 0, 0, 0, 4, 1, 2]


class QueueStackMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pair: MapPair | None = None
        self.log: list[str] = []

    @initialize(data=st.data())
    def create(self, data: st.DataObject) -> None:
        mtype = data.draw(st.sampled_from([MapType.QUEUE, MapType.STACK]), label="map_type")
        self.vs = data.draw(st.integers(1, 16), label="value_size")
        me = data.draw(st.integers(1, 6), label="max_entries")
        flags = data.draw(st.sampled_from([0, 0, 0, 1 << 3, 1 << 7, 1 << 8]), label="map_flags")
        attr = MapCreateAttr(map_type=mtype, value_size=self.vs, max_entries=me,
                             map_flags=flags)
        self.pair = MapPair(attr)
        same_errno(*self.pair.created, f"MAP_CREATE {attr}")
        assert self.pair.created[0].ok

    def teardown(self) -> None:
        if self.pair is not None:
            self.pair.close()

    def step(self, what: str, result: tuple[Outcome, Outcome]) -> None:
        self.log.append(f"{what} -> {result[0]!r} / {result[1]!r}")
        same(*result, what)

    def draw_key(self, data: st.DataObject) -> bytes | None:
        return data.draw(st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=8)),
                         label="key")

    @rule(data=st.data())
    def push(self, data: st.DataObject) -> None:
        assert self.pair is not None
        value = data.draw(st.binary(min_size=self.vs, max_size=self.vs), label="value")
        flags = data.draw(st.sampled_from(PUSH_FLAGS), label="flags")
        key = data.draw(st.one_of(st.none(), st.none(), st.none(), st.none(),
                                  st.binary(max_size=4)), label="key")
        self.step(f"PUSH {value.hex()} flags={flags:#x} key={key!r}",
                  self.pair.elem(Cmd.MAP_UPDATE_ELEM, key=key, value=value, flags=flags))

    @rule(data=st.data())
    def push_more(self, data: st.DataObject) -> None:
        self.push(data)

    @rule(data=st.data())
    def pop(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        flags = data.draw(st.sampled_from(LOOKUP_FLAGS), label="flags")
        self.step(f"POP key={key!r} flags={flags:#x}",
                  self.pair.elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, key=key, flags=flags))

    @rule(data=st.data())
    def peek(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        flags = data.draw(st.sampled_from(LOOKUP_FLAGS), label="flags")
        self.step(f"PEEK key={key!r} flags={flags:#x}",
                  self.pair.elem(Cmd.MAP_LOOKUP_ELEM, key=key, flags=flags))

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        self.step(f"DELETE key={key!r}", self.pair.elem(Cmd.MAP_DELETE_ELEM, key=key))

    @rule(data=st.data())
    def get_next_key(self, data: st.DataObject) -> None:
        assert self.pair is not None
        key = self.draw_key(data)
        self.step(f"GET_NEXT_KEY key={key!r}", self.pair.elem(Cmd.MAP_GET_NEXT_KEY, key=key))


TestQueueStack = QueueStackMachine.TestCase
TestQueueStack.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
