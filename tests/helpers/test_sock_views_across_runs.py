"""A socket's views made by bpf_tcp_sock and the bpf_skc_to_* casts last one
program run; a socket mapped for longer (an InetSocket's struct bpf_sock, what
a sockmap lookup or skb->sk of its segments gives) gets fresh ones in the next
run rather than the addresses of unmapped ones."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pyebpf import Runtime
from pyebpf.helpers import helper_table
from pyebpf.links.inet import InetSocket

TCP_SOCK, SKC_TO_TCP_SOCK = 96, 137


@pytest.mark.parametrize("func_id", [TCP_SOCK, SKC_TO_TCP_SOCK])
def test_each_run_gets_a_mapped_view_of_a_long_lived_socket(func_id: int) -> None:
    rt = Runtime()
    sock = InetSocket(rt, "tcp")
    vm = SimpleNamespace(memory=rt.memory, runtime=rt)
    impl = helper_table()[func_id].impl
    for _ in range(2):
        rt.enter_run()
        try:
            addr = impl(vm, sock.sk_addr, 0, 0, 0, 0)
            first = impl(vm, sock.sk_addr, 0, 0, 0, 0)
            assert addr == first != 0  # the same view within a run
            assert rt.memory.region_at(addr) is not None
        finally:
            rt.exit_run()
        assert rt.memory.region_at(addr) is None  # gone once the run ended
