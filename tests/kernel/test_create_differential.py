"""MAP_CREATE on pyebpf and on the kernel: the same errno, or both succeed with
the same bpf_map_info.

Random types (hash, array, their per-CPU variants, unknown numbers), sizes around
every limit the kernel checks, random flag bits, NUMA nodes, names of random
bytes, BTF ids, offload ifindexes, map_extra and exclusive-program hashes.
Sizes are drawn so that a map which is created stays small on both sides (no
multi-gigabyte allocation is ever attempted).
"""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pyebpf import Cmd, InfoByFdAttr, MapCreateAttr, MapFlags, MapType

from .harness import BAD_FD, MapPair, info_fields, same_errno

pytestmark = pytest.mark.kernel

KNOWN = [MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY]
UNKNOWN = [0, 34, 35, 200, 1000, 0xFFFF_FFFF]
#: Flag bits the kernel knows (token fd aside, drawn separately) and a few it doesn't.
FLAG_BITS = [int(f) for f in MapFlags if f is not MapFlags.TOKEN_FD] + [1 << 19, 1 << 31]
#: Sizes near the limits: KMALLOC_MAX_SIZE (4 MiB) less sizeof(htab_elem), the
#: per-CPU unit (32 KiB), INT_MAX.
BIG_SIZES = [4096, 32 << 10, (32 << 10) - 7, (32 << 10) + 1, (1 << 22) - 48, (1 << 22) - 49,
             (1 << 22) - 50, 1 << 22, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]
#: max_entries past what a hash map can have buckets for (E2BIG before allocating).
HUGE_ENTRIES = [(1 << 28) + 1, 1 << 31, (1 << 31) + 1, 0xFFFF_FFFF]


VALID_FLAGS = {
    MapType.HASH: [0, MapFlags.ZERO_SEED, MapFlags.NO_PREALLOC, MapFlags.RDONLY,
                   MapFlags.WRONLY_PROG, MapFlags.RDONLY_PROG | MapFlags.WRONLY],
    MapType.ARRAY: [0, MapFlags.MMAPABLE, MapFlags.INNER_MAP, MapFlags.RDONLY_PROG,
                    MapFlags.WRONLY],
}
VALID_FLAGS[MapType.PERCPU_HASH] = VALID_FLAGS[MapType.HASH]
VALID_FLAGS[MapType.PERCPU_ARRAY] = [0, MapFlags.RDONLY, MapFlags.WRONLY_PROG]
NAMES = [b"", b"map", b"a.b_c9", b"x" * 15, b"x" * 16, b"a-b", b"a b", b"caf\xe9", b"\xd7",
         b"\xf7", b"\xff\xc0", b"ok\0junk", b"\x80"]


@st.composite
def create_attrs(draw: st.DrawFn) -> MapCreateAttr:
    """A valid map, then up to three things made wrong (or odd)."""
    map_type = draw(st.sampled_from(KNOWN))
    is_array = map_type in (MapType.ARRAY, MapType.PERCPU_ARRAY)
    f: dict = {
        "map_type": map_type,
        "key_size": 4 if is_array else draw(st.integers(1, 20)),
        "value_size": draw(st.integers(1, 40)),
        "max_entries": draw(st.integers(1, 64)),
        "map_flags": int(draw(st.sampled_from(VALID_FLAGS[map_type]))),
        "map_name": draw(st.sampled_from([b"", b"map", b"m.a_p9"])),
    }
    changes = draw(st.lists(st.sampled_from([
        "type", "key_size", "value_size", "max_entries", "flags", "numa", "name", "btf",
        "ifindex", "extra", "excl", "token", "inner"]), max_size=3))
    for change in changes:
        if change == "type":
            f["map_type"] = draw(st.sampled_from(KNOWN + UNKNOWN))
        elif change == "key_size":
            f["key_size"] = draw(st.one_of(st.integers(0, 20), st.sampled_from(BIG_SIZES)))
        elif change == "value_size":
            f["value_size"] = draw(st.one_of(st.integers(0, 40), st.sampled_from(BIG_SIZES)))
        elif change == "max_entries":
            f["max_entries"] = draw(st.one_of(st.integers(0, 8), st.just(1024),
                                              st.sampled_from(HUGE_ENTRIES)))
        elif change == "flags":
            f["map_flags"] |= draw(st.sampled_from(FLAG_BITS))
        elif change == "numa":
            f["map_flags"] |= draw(st.sampled_from([0, int(MapFlags.NUMA_NODE)]))
            f["numa_node"] = draw(st.sampled_from([0, 1, 5, 0xFFFF_FFFF]))
        elif change == "name":
            f["map_name"] = draw(st.one_of(st.sampled_from(NAMES), st.binary(max_size=16)))
        elif change == "btf":
            ids = draw(st.sampled_from([(1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1), (1, 1, 1),
                                        (0, 0, 0)]))
            f.update(btf_fd=BAD_FD, btf_key_type_id=ids[0], btf_value_type_id=ids[1],
                     btf_vmlinux_value_type_id=ids[2])
        elif change == "ifindex":
            f["map_ifindex"] = draw(st.sampled_from([1, 9999]))
        elif change == "extra":
            f["map_extra"] = draw(st.sampled_from([1, 1 << 40]))
        elif change == "excl":
            h, n = draw(st.sampled_from([(None, 32), (bytes(32), 32), (bytes(32), 16),
                                         (bytes(31), 32), (b"\x01" * 40, 32)]))
            f.update(excl_prog_hash=h, excl_prog_hash_size=n)
        elif change == "token":  # a token fd open on neither side: EBADF, if it gets there
            f["map_flags"] |= int(MapFlags.TOKEN_FD)
            f["map_token_fd"] = BAD_FD
        elif change == "inner":
            f["inner_map_fd"] = BAD_FD
    # Whatever gets created must stay small on both sides.
    if f["key_size"] + f["value_size"] > 4096 and f["max_entries"] > 2:
        f["max_entries"] = 2
    if f["map_type"] in (MapType.ARRAY, MapType.PERCPU_ARRAY) and f["max_entries"] > 1024:
        f["max_entries"] = 1024
    return MapCreateAttr(**f)


@settings(max_examples=400, deadline=None)
@given(attr=create_attrs())
def test_map_create_matches_kernel(attr: MapCreateAttr) -> None:
    with MapPair(attr) as pair:
        py, k = pair.created
        same_errno(py, k, f"MAP_CREATE {attr}")
        event(f"MAP_CREATE -> {py!r}" if not py.ok else "MAP_CREATE -> ok")
        if py.ok:
            info = pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
            same_errno(*info, "OBJ_GET_INFO_BY_FD")
            assert info_fields(info[0].value) == info_fields(info[1].value), attr


@pytest.mark.parametrize("name", [bytes([b]) for b in range(1, 256)])
def test_every_name_byte_matches_kernel(name: bytes) -> None:
    """bpf_obj_name_cpy's isalnum() is the kernel's Latin-1 one."""
    attr = MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1,
                         map_name=name)
    with MapPair(attr) as pair:
        same_errno(*pair.created, f"MAP_CREATE name={name!r}")
        if pair.created[0].ok:
            info = pair.run(Cmd.OBJ_GET_INFO_BY_FD, lambda fd: InfoByFdAttr(bpf_fd=fd))
            assert info[0].value.name == info[1].value.name
