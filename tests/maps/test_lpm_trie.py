"""LPM_TRIE maps: longest-prefix match, the kernel's trie shape and walk order, errnos.

Orders and errnos pinned here are the Linux 6.18 kernel's (tests/kernel runs
the same sequences on it).
"""

from __future__ import annotations

import errno

import pytest

from pyebpf import BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, MapFlags, MapType, Runtime
from pyebpf.errors import ENOTSUPP
from pyebpf.maps.lpm_trie import lpm_key

from ._mapops import (
    create,
    create_errno,
    delete,
    fails,
    keys,
    lookup,
    lookup_and_delete,
    map_obj,
    next_key,
    update,
)


@pytest.fixture
def rt() -> Runtime:
    return Runtime(nr_cpus=2)


def ip(text: str) -> bytes:
    """``"192.168.0.0/16"`` as a key of a 4-byte-data trie."""
    addr, _, plen = text.partition("/")
    return lpm_key(int(plen or 32), bytes(int(x) for x in addr.split(".")))


def show(key: bytes) -> str:
    return ".".join(str(b) for b in key[4:]) + f"/{int.from_bytes(key[:4], 'little')}"


def new(rt: Runtime, max_entries: int = 16, key_size: int = 8, value_size: int = 4,
        map_flags: int = MapFlags.NO_PREALLOC) -> int:
    return create(rt, MapType.LPM_TRIE, key_size=key_size, value_size=value_size,
                  max_entries=max_entries, map_flags=map_flags)


def put(rt: Runtime, fd: int, *prefixes: str, flags: int = 0) -> None:
    for p in prefixes:
        update(rt, fd, ip(p), int(p.partition("/")[2]).to_bytes(4, "little"), flags)


def match(rt: Runtime, fd: int, addr: str) -> int | None:
    """The prefix length of the value found for ``addr`` (None: ENOENT)."""
    try:
        return int.from_bytes(lookup(rt, fd, ip(addr)), "little")
    except OSError as e:
        assert e.errno == errno.ENOENT
        return None


def walk(rt: Runtime, fd: int) -> list[str]:
    return [show(key) for key in keys(rt, fd)]


DOC = ("192.168.0.0/16", "192.168.0.0/24", "192.168.128.0/24", "192.168.1.0/24")


# -- lookup ----------------------------------------------------------------------------------
def test_lpm_lookup_returns_longest_prefix(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24")
    assert match(rt, fd, "10.1.2.3") == 24
    assert match(rt, fd, "10.1.3.3") == 16
    assert match(rt, fd, "10.2.3.4") == 8
    assert match(rt, fd, "11.0.0.0") is None


def test_lpm_lookup_key_prefixlen_limits_the_match(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/8", "10.1.0.0/16")
    assert match(rt, fd, "10.1.0.0/12") == 8
    assert match(rt, fd, "10.1.0.0/16") == 16
    assert match(rt, fd, "10.1.0.0/7") is None


def test_lpm_intermediate_nodes_match_nothing(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, *DOC)
    assert match(rt, fd, "192.168.0.0/23") == 16  # the /23 is an intermediate node
    assert match(rt, fd, "192.168.1.77") == 24


def test_lpm_lookup_of_prefixlen_over_max_is_enoent(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "0.0.0.0/0")
    fails(errno.ENOENT, lookup, rt, fd, lpm_key(33, bytes(4)))
    assert match(rt, fd, "1.2.3.4") == 0


def test_lpm_program_lookup_gives_the_value_address(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/8")
    m = map_obj(rt, fd)
    addr = m.lookup_elem(ip("10.9.9.9"))
    assert rt.memory.read(addr, 4) == (8).to_bytes(4, "little")
    rt.memory.write(addr, b"\1\2\3\4")
    assert lookup(rt, fd, ip("10.0.0.0/8")) == b"\1\2\3\4"
    assert m.lookup_elem(ip("11.0.0.0")) is None


# -- the walk -------------------------------------------------------------------------------------
def test_lpm_get_next_key_is_post_order(rt: Runtime) -> None:
    """The kernel's documented example: more specific prefixes first."""
    fd = new(rt)
    put(rt, fd, *DOC)
    assert walk(rt, fd) == ["192.168.0.0/24", "192.168.1.0/24", "192.168.128.0/24",
                            "192.168.0.0/16"]


def test_lpm_get_next_key_of_a_missing_key_restarts(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, *DOC)
    first = ip("192.168.0.0/24")
    assert next_key(rt, fd, None) == first
    assert next_key(rt, fd, ip("192.168.0.0/23")) == first  # intermediate: not a key
    assert next_key(rt, fd, ip("1.1.1.1/8")) == first
    assert next_key(rt, fd, lpm_key(33, bytes(4))) == first
    assert next_key(rt, fd, ip("192.168.1.0/24")) == ip("192.168.128.0/24")


def test_lpm_get_next_key_after_the_last_or_on_empty_is_enoent(rt: Runtime) -> None:
    fd = new(rt)
    fails(errno.ENOENT, next_key, rt, fd, None)
    put(rt, fd, *DOC)
    fails(errno.ENOENT, next_key, rt, fd, ip("192.168.0.0/16"))


def test_lpm_keeps_the_bits_past_the_prefix(rt: Runtime) -> None:
    """A node stores its key's data verbatim; get_next_key gives it back."""
    fd = new(rt)
    put(rt, fd, "10.1.2.3/8")
    assert walk(rt, fd) == ["10.1.2.3/8"]
    put(rt, fd, "10.9.9.9/8")  # the same prefix: replaced, with the new key's bytes
    assert walk(rt, fd) == ["10.9.9.9/8"]
    delete(rt, fd, ip("10.7.7.7/8"))
    assert walk(rt, fd) == []


# -- update -------------------------------------------------------------------------------------
def test_lpm_update_flags_are_modes(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/8")
    fails(errno.EEXIST, update, rt, fd, ip("10.0.0.0/8"), b"xxxx", BPF_NOEXIST)
    fails(errno.ENOENT, update, rt, fd, ip("10.0.0.0/9"), b"xxxx", BPF_EXIST)
    update(rt, fd, ip("10.0.0.0/8"), b"yyyy", BPF_EXIST)
    update(rt, fd, ip("11.0.0.0/8"), b"zzzz", BPF_NOEXIST)
    assert lookup(rt, fd, ip("10.0.0.0/8")) == b"yyyy"
    for flags in (3, BPF_F_LOCK, 8, 1 << 32):
        fails(errno.EINVAL, update, rt, fd, ip("12.0.0.0/8"), b"xxxx", flags)
    assert walk(rt, fd) == ["10.0.0.0/8", "11.0.0.0/8"]


def test_lpm_an_intermediate_node_is_a_missing_prefix_for_flags(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/24", "10.0.1.0/24")  # creates the intermediate 10.0.0.0/23
    fails(errno.ENOENT, update, rt, fd, ip("10.0.0.0/23"), b"xxxx", BPF_EXIST)
    update(rt, fd, ip("10.0.0.0/23"), b"xxxx", BPF_NOEXIST)
    assert walk(rt, fd) == ["10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/23"]


def test_lpm_update_of_prefixlen_over_max_is_einval(rt: Runtime) -> None:
    fd = new(rt)
    fails(errno.EINVAL, update, rt, fd, lpm_key(33, bytes(4)), b"xxxx")
    fails(errno.EINVAL, delete, rt, fd, lpm_key(33, bytes(4)))


def test_lpm_full_trie_is_enospc_but_replaces(rt: Runtime) -> None:
    fd = new(rt, max_entries=2)
    put(rt, fd, "1.0.0.0/8", "2.0.0.0/8")
    fails(errno.ENOSPC, update, rt, fd, ip("3.0.0.0/8"), b"xxxx")
    fails(errno.ENOSPC, update, rt, fd, ip("1.0.0.0/16"), b"xxxx")
    update(rt, fd, ip("1.0.0.0/8"), b"new.")
    assert lookup(rt, fd, ip("1.2.3.4")) == b"new."
    assert walk(rt, fd) == ["1.0.0.0/8", "2.0.0.0/8"]


def test_lpm_the_default_route_matches_everything(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "0.0.0.0/0", "128.0.0.0/1")
    assert match(rt, fd, "1.2.3.4") == 0
    assert match(rt, fd, "200.2.3.4") == 1
    assert walk(rt, fd) == ["128.0.0.0/1", "0.0.0.0/0"]


# -- delete ----------------------------------------------------------------------------------------
def test_lpm_delete_is_exact(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/8")
    fails(errno.ENOENT, delete, rt, fd, ip("10.0.0.0/9"))
    fails(errno.ENOENT, delete, rt, fd, ip("10.0.0.0/7"))
    delete(rt, fd, ip("10.0.0.0/8"))
    assert match(rt, fd, "10.1.1.1") is None
    fails(errno.ENOENT, delete, rt, fd, ip("10.0.0.0/8"))


def test_lpm_deleting_an_intermediate_node_is_enoent(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, *DOC)
    fails(errno.ENOENT, delete, rt, fd, ip("192.168.0.0/23"))


def test_lpm_deleting_a_node_with_two_children_keeps_them(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/8", "10.0.0.0/16", "10.128.0.0/16")
    delete(rt, fd, ip("10.0.0.0/8"))
    assert walk(rt, fd) == ["10.0.0.0/16", "10.128.0.0/16"]
    assert match(rt, fd, "10.1.2.3") is None
    assert match(rt, fd, "10.128.2.3") == 16


def test_lpm_deleting_a_leaf_removes_its_intermediate_parent(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16")
    delete(rt, fd, ip("10.1.0.0/16"))
    delete(rt, fd, ip("10.0.0.0/16"))
    assert walk(rt, fd) == ["10.2.0.0/16"]
    m = map_obj(rt, fd)
    assert m.root is not None and not m.root.im and m.root.child == [None, None]


def test_lpm_lookup_and_delete_is_enotsupp(rt: Runtime) -> None:
    fd = new(rt)
    put(rt, fd, "10.0.0.0/8")
    fails(ENOTSUPP, lookup_and_delete, rt, fd, ip("10.0.0.0/8"))
    assert walk(rt, fd) == ["10.0.0.0/8"]


# -- other key sizes ------------------------------------------------------------------------------
def test_lpm_one_byte_and_ipv6_sized_keys(rt: Runtime) -> None:
    fd = new(rt, key_size=5)
    update(rt, fd, lpm_key(4, b"\xa0"), b"aaaa")
    update(rt, fd, lpm_key(8, b"\xab"), b"bbbb")
    assert lookup(rt, fd, lpm_key(8, b"\xaf")) == b"aaaa"
    assert lookup(rt, fd, lpm_key(8, b"\xab")) == b"bbbb"
    fd6 = new(rt, key_size=20)
    net = bytes.fromhex("20010db8") + bytes(12)
    update(rt, fd6, lpm_key(32, net), b"v6v6")
    assert lookup(rt, fd6, lpm_key(128, net[:15] + b"\x01")) == b"v6v6"


# -- creation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,err", [
    ({"map_flags": 0}, errno.EINVAL),  # BPF_F_NO_PREALLOC is required
    ({"map_flags": MapFlags.NO_PREALLOC | MapFlags.ZERO_SEED}, errno.EINVAL),
    ({"map_flags": MapFlags.NO_PREALLOC | MapFlags.NO_COMMON_LRU}, errno.EINVAL),
    ({"map_flags": MapFlags.NO_PREALLOC | MapFlags.MMAPABLE}, errno.EINVAL),
    ({"key_size": 4}, errno.EINVAL),
    ({"key_size": 261}, errno.EINVAL),
    ({"value_size": 0}, errno.EINVAL),
    ({"value_size": (1 << 22) - 256 - 24 + 1}, errno.EINVAL),
    ({"max_entries": 0}, errno.EINVAL),
    ({"map_extra": 1}, errno.EINVAL),
])
def test_lpm_create_validation(rt: Runtime, kw: dict[str, int], err: int) -> None:
    args = {"key_size": 8, "value_size": 4, "max_entries": 4,
            "map_flags": MapFlags.NO_PREALLOC, **kw}
    assert create_errno(rt, MapType.LPM_TRIE, **args) == err


@pytest.mark.parametrize("kw", [{"key_size": 5}, {"key_size": 260},
                                {"value_size": (1 << 22) - 256 - 24},
                                {"max_entries": 0xFFFF_FFFF},
                                {"map_flags": MapFlags.NO_PREALLOC | MapFlags.RDONLY_PROG}])
def test_lpm_create_accepts_the_limits(rt: Runtime, kw: dict[str, int]) -> None:
    args = {"key_size": 8, "value_size": 4, "max_entries": 4,
            "map_flags": MapFlags.NO_PREALLOC, **kw}
    create(rt, MapType.LPM_TRIE, **args)


def test_lpm_failed_updates_change_nothing(rt: Runtime) -> None:
    fd = new(rt, max_entries=3)
    put(rt, fd, *DOC[:3])
    before = walk(rt, fd)
    for key, flags in ((ip("192.168.1.0/24"), 0), (ip("192.168.0.0/24"), BPF_NOEXIST),
                       (ip("9.0.0.0/8"), BPF_EXIST), (lpm_key(40, bytes(4)), 0)):
        with pytest.raises(OSError):
            update(rt, fd, key, b"xxxx", flags)
    assert walk(rt, fd) == before
    assert map_obj(rt, fd).n_entries == 3
