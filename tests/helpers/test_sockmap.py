"""Socket map helpers: with no sockets in the maps, redirects drop and updates
from sock_ops are EOPNOTSUPP (SK_SKB/SK_MSG/SOCK_OPS have no test run: the
helpers are called directly on a loaded program's Vm)."""

from __future__ import annotations

import errno

import pytest

from helpers._build import PyBackend, exit_, mov
from pyebpf import BpfFault, MapType, ProgType
from pyebpf.helpers.sockmap import (
    SK_DROP,
    msg_redirect_hash,
    sk_redirect_map,
    sock_hash_update,
    sock_map_update,
)

M64 = (1 << 64) - 1


@pytest.fixture
def setup() -> tuple:
    be = PyBackend()
    vm = be.rt.fds[be.load([mov(0, 0), exit_()], ProgType.XDP)].obj.vm()
    maps = {t: be.rt.fds[be.map_create(t, 4, 4, 2)].obj for t in (MapType.SOCKMAP,
                                                                   MapType.SOCKHASH)}
    key = be.rt.memory.map(4, kind="stack")
    return vm, maps, key.base


def test_redirects_find_no_socket(setup: tuple) -> None:
    vm, maps, key = setup
    assert sk_redirect_map(vm, 0, maps[MapType.SOCKMAP].addr, 0, 0, 0) == SK_DROP
    assert msg_redirect_hash(vm, 0, maps[MapType.SOCKHASH].addr, key, 1, 0) == SK_DROP


def test_sock_ops_updates_are_eopnotsupp(setup: tuple) -> None:
    vm, maps, key = setup
    assert sock_map_update(vm, 0, maps[MapType.SOCKMAP].addr, key, 0, 0) == \
        -errno.EOPNOTSUPP & M64
    assert sock_hash_update(vm, 0, maps[MapType.SOCKHASH].addr, key, 0, 0) == \
        -errno.EOPNOTSUPP & M64


def test_the_wrong_map_faults(setup: tuple) -> None:
    vm, maps, _ = setup
    with pytest.raises(BpfFault):
        sk_redirect_map(vm, 0, maps[MapType.SOCKHASH].addr, 0, 0, 0)
