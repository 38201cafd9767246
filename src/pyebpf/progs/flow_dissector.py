"""FLOW_DISSECTOR programs (net/core/flow_dissector.c, net/bpf/test_run.c).

The program sees a ``struct __sk_buff`` of which only ``data``, ``data_end``
(4-byte loads) and ``flow_keys`` (an 8-byte load: a PTR_TO_FLOW_KEYS) are
readable; the kernel rewrites them to the fields of ``struct
bpf_flow_dissector`` (flow_dissector_convert_ctx_access). The program writes
its result into ``struct bpf_flow_keys`` and returns BPF_OK, BPF_DROP or
BPF_FLOW_DISSECTOR_CONTINUE.

:func:`bpf_flow_dissect` is the kernel's function of that name (keys
initialised, the program run, ``nhoff``/``thoff`` clamped into the packet):
both BPF_PROG_TEST_RUN (bpf_prog_test_run_flow_dissector: data_out is the
flow keys, ctx_in/ctx_out a bpf_flow_keys of which only ``flags`` may be set)
and the netns hook (pyebpf.links.netns) run programs through it.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

import attrs

from ..errors import BpfError
from ..memory import PAGE_SHIFT, AddressSpace
from ..uapi import ProgType
from . import ProgTypeOps, register_prog_type
from .access import layout
from .skb import SK_BUFF_SIZE, SkbCtxDevice, SkBuff, _layout, skb_is_valid_access
from .testrun import (
    ETH_HLEN,
    PAGE_SIZE,
    check_test_attr,
    ctx_finish,
    ctx_init,
    data_in,
    test_finish,
)

if TYPE_CHECKING:
    from ..attr import TestRunAttr
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["BPF_FLOW_KEYS", "FlowDissector", "bpf_flow_dissect", "flow_dissector_from_ctx"]

#: struct bpf_flow_keys (56 bytes).
BPF_FLOW_KEYS = layout("bpf_flow_keys", [
    ("nhoff", 2), ("thoff", 2), ("addr_proto", 2), ("is_frag", 1), ("is_first_frag", 1),
    ("is_encap", 1), ("ip_proto", 1), ("n_proto", 2), ("sport", 2), ("dport", 2),
    ("ipv4_src", 4), ("ipv4_dst", 4), ("ipv6_tail", 24), ("flags", 4), ("flow_label", 4),
])
FLOW_KEYS_SIZE = BPF_FLOW_KEYS.size
_NHOFF = struct.Struct("<H")
_FLAGS_OFF = BPF_FLOW_KEYS["flags"].offset
_N_PROTO_OFF = BPF_FLOW_KEYS["n_proto"].offset
_THOFF_OFF = BPF_FLOW_KEYS["thoff"].offset


@attrs.define
class FlowDissector:
    """struct bpf_flow_dissector: what the program's ctx loads read. Attribute
    names are those the __sk_buff layout of FLOW_DISSECTOR reads from."""

    data: int
    cb_data_end: int
    flow_keys: int
    cb_data_meta: int = 0
    #: The sk_buff being dissected (__skb_flow_dissect's ctx.skb), which
    #: bpf_flow_dissector_load_bytes reads at offsets from its data; None when
    #: only bytes are dissected (a test run, eth_get_headlen).
    skb: SkBuff | None = None


def flow_dissector_from_ctx(memory: AddressSpace, addr: int) -> FlowDissector | None:
    """The FlowDissector behind a ctx pointer a helper got, or None."""
    entry = memory.devices.get((addr & ((1 << 64) - 1)) >> PAGE_SHIFT)
    obj = getattr(entry[2], "obj", None) if entry is not None else None
    return obj if isinstance(obj, FlowDissector) else None


def bpf_flow_dissect(rt: Runtime, prog: BpfProg, packet: bytes, *, proto: int,
                     nhoff: int, flags: int = 0,
                     skb: SkBuff | None = None) -> tuple[int, bytes]:
    """Run a flow dissector on ``packet`` (bytes from the start of the frame; the
    network header at ``nhoff``, ``proto`` the __be16 EtherType as it lies in
    memory). ``skb``, when the packet is one's linear data, is what
    bpf_skb_load_bytes reads. Returns (r0, the struct bpf_flow_keys bytes)."""
    hlen = len(packet)
    keys = bytearray(FLOW_KEYS_SIZE)
    _NHOFF.pack_into(keys, 0, nhoff)
    _NHOFF.pack_into(keys, _THOFF_OFF, nhoff)
    keys[_N_PROTO_OFF:_N_PROTO_OFF + 2] = proto.to_bytes(2, "little")
    keys[_FLAGS_OFF:_FLAGS_OFF + 4] = flags.to_bytes(4, "little")
    data_region = rt.memory.map(bytearray(packet), kind="packet", name="flow_dissector")
    keys_region = rt.memory.map(keys, kind="flow_keys", name="bpf_flow_keys")
    ctx = FlowDissector(data=data_region.base, cb_data_end=data_region.base + hlen,
                        flow_keys=keys_region.base, skb=skb)
    device = SkbCtxDevice(_layout(ProgType.FLOW_DISSECTOR), ctx, ProgType.FLOW_DISSECTOR)
    ctx_region = rt.memory.map_device(device, SK_BUFF_SIZE, kind="ctx", name="__sk_buff")
    try:
        r0 = prog.run(ctx_region.base)
    finally:
        rt.memory.unmap(ctx_region)
        rt.unmap_later(data_region)
        rt.unmap_later(keys_region)
    # flow_keys->nhoff = clamp(nhoff, nhoff, hlen); thoff = clamp(thoff, nhoff', hlen).
    new_nhoff = min(max(_NHOFF.unpack_from(keys, 0)[0], nhoff), hlen)
    new_thoff = min(max(_NHOFF.unpack_from(keys, _THOFF_OFF)[0], new_nhoff), hlen)
    _NHOFF.pack_into(keys, 0, new_nhoff)
    _NHOFF.pack_into(keys, _THOFF_OFF, new_thoff)
    return r0 & 0xFFFF_FFFF, bytes(keys)


def _test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    """bpf_prog_test_run_flow_dissector."""
    from ..prog import TestRunResult

    check_test_attr(attr)
    if attr.flags or attr.cpu or attr.batch_size:
        raise BpfError(errno.EINVAL, "flow dissector test runs take no flags, cpu or batch_size")
    packet = data_in(rt, attr)
    if len(packet) < ETH_HLEN or len(packet) > PAGE_SIZE:
        raise BpfError(errno.EINVAL, f"packet of {len(packet)} bytes: flow dissector test "
                       f"runs take {ETH_HLEN}..{PAGE_SIZE}")
    user = ctx_init(rt, attr, FLOW_KEYS_SIZE)
    flags = 0
    if user is not None:
        if any(user[:_FLAGS_OFF]) or any(user[_FLAGS_OFF + 4:]):
            raise BpfError(errno.EINVAL, "ctx_in may set only bpf_flow_keys.flags")
        flags = int.from_bytes(user[_FLAGS_OFF:_FLAGS_OFF + 4], "little")
    proto = int.from_bytes(packet[12:14], "little")
    repeat = max(attr.repeat, 1)
    start = rt.clock.ns
    r0, keys = 0, b""
    for _ in range(repeat):
        r0, keys = bpf_flow_dissect(rt, prog, packet, proto=proto, nhoff=ETH_HLEN, flags=flags)
    duration = (rt.clock.ns - start) // repeat
    result = test_finish(rt, attr, TestRunResult(retval=r0, duration=duration, data_out=keys))
    ctx_bytes, ctx_size = ctx_finish(rt, attr, bytes(user) if user is not None else None)
    return attrs.evolve(result, ctx_out=ctx_bytes, ctx_size_out=ctx_size)


register_prog_type(ProgTypeOps(ProgType.FLOW_DISSECTOR, ctx=_layout(ProgType.FLOW_DISSECTOR),
                               test_run=_test_run, is_valid_access=skb_is_valid_access))
