"""Unverified programs may pass the packet and checksum helpers anything: the
helpers answer with an errno or a BpfFault, never a Python exception, and the
runtime stays usable (issue: a program, even unverified, can fault but never
escape its memory)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from pyebpf import BpfError, BpfFault, ProgType

from . import packet_scenarios as S
from ._build import PyBackend

#: Helper ids of helpers/csum.py, packet.py, tunnel.py and the skb/xdp ones of skb.py.
SKB_HELPERS = [9, 10, 11, 13, 17, 18, 19, 20, 21, 23, 24, 28, 32, 34, 38, 39, 40, 41, 43, 46,
               47, 48, 50, 68, 79, 98, 122, 135]
XDP_HELPERS = [23, 28, 44, 54, 65, 188, 189, 190]

values = st.one_of(st.sampled_from([0, 1, 4, 14, 0xFFFF, 0xFFFF_FFFF, (1 << 64) - 1,
                                    -4 & ((1 << 64) - 1), 0x8000_0000]),
                   st.integers(0, (1 << 64) - 1))
args = st.one_of(st.just(S.CTX), st.binary(min_size=1, max_size=48), values)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_unverified_calls_fault_or_return(data: st.DataObject) -> None:
    xdp = data.draw(st.booleans())
    func_id = data.draw(st.sampled_from(XDP_HELPERS if xdp else SKB_HELPERS))
    call_args = data.draw(st.lists(args, min_size=5, max_size=5))
    be = PyBackend()
    be.rt.verifier = "structural"
    try:
        with contextlib.suppress(BpfFault, BpfError):
            S.run_helper(be, func_id, call_args, S.ipv4_udp_packet(),
                         ProgType.XDP if xdp else ProgType.SCHED_CLS)
        # the runtime still runs a program afterwards
        assert S.run_helper(be, 28, [None, 0, None, 0, 7], S.ipv4_udp_packet(),
                            ProgType.XDP)[0] == 7
    finally:
        be.close()
