"""OBJ_GET_INFO_BY_FD on pyebpf and on the kernel, with the caller's struct of
random length and contents: the same errno, or the same bpf_map_info (the id
aside), fields the kernel doesn't set included.

The ``hash`` pointer in the struct is either NULL or an address unmapped on both
sides (page 0), so that a hash written out faults alike and nothing is written
anywhere real.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapFdAttr, MapType

from .harness import MapPair, info_fields, same_errno

pytestmark = pytest.mark.kernel

MAPS = [
    MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=8, max_entries=4,
                  map_name=b"h"),
    MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=5, max_entries=3,
                  map_name=b"a"),
    MapCreateAttr(map_type=MapType.PERCPU_ARRAY, key_size=4, value_size=8, max_entries=2),
]


@st.composite
def info_structs(draw: st.DrawFn) -> tuple[bytes | None, int]:
    info_len = draw(st.one_of(st.integers(0, 130), st.sampled_from([104, 4096, 4097])))
    if draw(st.integers(0, 3)) == 0:
        return None, info_len
    size = draw(st.one_of(st.just(info_len), st.integers(0, 140)))
    data = bytearray(draw(st.binary(min_size=size, max_size=size)))
    if len(data) > 88:  # hash (u64 at 88) and hash_size (u32 at 96): controlled values
        data[88:min(len(data), 104)] = bytes(min(len(data), 104) - 88)
        tail = struct.pack("<QI", draw(st.sampled_from([0, 0, 0x10])),
                           draw(st.sampled_from([0, 0, 16, 32])))
        end = min(len(data), 100)
        data[88:end] = tail[:end - 88]
    return bytes(data), info_len


@settings(max_examples=300, deadline=None)
@given(which=st.sampled_from(range(len(MAPS))), frozen=st.booleans(), case=info_structs())
def test_map_info_matches_kernel(which: int, frozen: bool, case: tuple[bytes | None, int]) -> None:
    info, info_len = case
    with MapPair(MAPS[which]) as pair:
        assert pair.created[0].ok and pair.created[1].ok
        if frozen:
            same_errno(*pair.run(Cmd.MAP_FREEZE, lambda fd: MapFdAttr(map_fd=fd)), "FREEZE")
        py, k = pair.run(Cmd.OBJ_GET_INFO_BY_FD,
                         lambda fd: InfoByFdAttr(bpf_fd=fd, info_len=info_len, info=info))
        event(f"OBJ_GET_INFO_BY_FD -> {k!r:.9}")
        same_errno(py, k, f"OBJ_GET_INFO_BY_FD info_len={info_len} info={info!r}")
        if py.ok:
            assert info_fields(py.value) == info_fields(k.value), (info_len, info)
