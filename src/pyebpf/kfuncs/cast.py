"""``bpf_cast_to_kern_ctx`` and ``bpf_rdonly_cast`` (kernel/bpf/helpers.c).

Two common kfuncs (every program type; KF_FASTCALL) that change only what the
verifier believes a pointer is; the kernel inlines both as ``r0 = r1``:

- ``bpf_cast_to_kern_ctx(ctx)`` gives a trusted PTR_TO_BTF_ID of the kernel's
  own ctx struct (``struct sk_buff`` behind a ``__sk_buff``, ``struct
  xdp_buff`` behind an ``xdp_md``: bpf_ctx_convert), which a program may read
  member by member as BTF describes it;
- ``bpf_rdonly_cast(obj, btf_id)`` gives an *untrusted* pointer to the vmlinux
  struct ``btf_id`` (any value may be cast), or, for id 0, untyped read-only
  memory. Loads through it are BPF_PROBE_MEM: one that faults reads 0.

The verifier side is pyebpf.verifier.btf_attach (get_kern_ctx_btf_id,
mark_cast_ret). In the kernel the uapi ctx and the kernel ctx are one address;
pyebpf keeps the uapi ctx as a device answering ``__sk_buff`` offsets, so the
cast returns the address of a second view of the same object, laid out as the
kernel struct (:class:`KernelStructView`, the offsets of Linux 6.18 x86-64)
and computed from the live SkBuff/XdpBuff at every load, so it sees what the
packet is now. A ctx whose kernel struct is the uapi one (``pt_regs``,
``bpf_nf_ctx``) and any other pointer are returned unchanged. Views live until
the end of the program run that made them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import BpfFault
from ..helpers._util import runtime_of
from ..helpers.proto import RetType
from ..memory import PAGE_SHIFT
from . import KF, KfArg, KfArgKind, register_kfunc

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..memory import Region
    from ..progs.skb import SkBuff
    from ..progs.xdp import XdpBuff
    from ..runtime import Runtime

__all__ = ["BTF_ID_CAST_TO_KERN_CTX", "BTF_ID_RDONLY_CAST", "KERN_CTX_STRUCTS",
           "KernelStructView", "kern_ctx_addr"]

#: BTF ids of the reference 6.18 vmlinux.
BTF_ID_CAST_TO_KERN_CTX = 63548
BTF_ID_RDONLY_CAST = 65486

#: skb->transport_header / mac_header when unset ((typeof(header))~0U).
HEADER_UNSET = 0xFFFF
#: What SKB_TRUESIZE adds to the data buffer: SKB_DATA_ALIGN(sizeof(struct sk_buff)).
SKB_STRUCT_TRUESIZE = 256
_M64 = (1 << 64) - 1

Getter = Callable[[], int]


class KernelStructView:
    """A kernel struct whose bytes are computed at every load (a memory Device).

    ``fields`` are ``(offset, size, getter)``: the member's place (see
    :meth:`member`) and a function reading its value from the Python object
    standing for the kernel's. Bytes no field covers read as 0 (members pyebpf
    does not simulate). Stores fault: the verifier lets no program write here."""

    def __init__(self, struct_name: str, fields: Iterable[tuple[int, int, Getter]]) -> None:
        from ..kernel_btf import kernel_btf, kernel_struct_id

        self.struct_name = struct_name
        self.size = kernel_btf().sizeof(kernel_struct_id(struct_name))
        self.fields = tuple(fields)

    @staticmethod
    def member(struct_name: str, path: str, getter: Getter, *, delta: int = 0,
               size: int = 0) -> tuple[int, int, Getter]:
        """A field for member ``path`` (``size`` bytes at ``delta`` into it, when
        only part of the member is filled, as for the pieces of ``cb``)."""
        from ..kernel_btf import kernel_struct_id, member_span

        off, msize = member_span(kernel_struct_id(struct_name), path)
        return off + delta, size or msize, getter

    @staticmethod
    def bitfields(struct_name: str, size: int,
                  getters: dict[str, Getter]) -> tuple[int, int, Getter]:
        """A field for ``size`` bytes of bitfield members (those in ``getters``; the
        others read 0), starting at the byte of the first of them."""
        from ..kernel_btf import kernel_btf, kernel_struct_id

        btf, tid = kernel_btf(), kernel_struct_id(struct_name)
        spans = {name: btf.member(tid, name) for name in getters}
        first = min(m.bit_offset for m in spans.values()) // 8

        def packed() -> int:
            value = 0
            for name, m in spans.items():
                mask = (1 << m.bitfield_size) - 1
                value |= (getters[name]() & mask) << (m.bit_offset - 8 * first)
            return value

        return first, size, packed

    def load(self, off: int, size: int) -> int:
        out = bytearray(size)
        for foff, fsize, get in self.fields:
            lo, hi = max(off, foff), min(off + size, foff + fsize)
            if lo < hi:
                raw = (get() & ((1 << (8 * fsize)) - 1)).to_bytes(fsize, "little")
                out[lo - off:hi - off] = raw[lo - foff:hi - foff]
        return int.from_bytes(out, "little")

    def store(self, off: int, size: int, value: int) -> None:
        raise BpfFault(f"write of {size} bytes at offset {off} into struct "
                       f"{self.struct_name}, which programs only read")


# -- the kernel ctx views --------------------------------------------------------------------------
def _net_device(rt: Runtime, ifindex: int) -> int:
    """The address of the ``struct net_device`` of device ``ifindex`` (made on first use)."""
    from ..kernel_btf import KernelObject
    from ..progs.skb import _netdev

    objects: dict[int, KernelObject] = rt.hooks.setdefault("kern_net_devices", {})
    obj = objects.get(ifindex)
    if obj is None:
        dev = _netdev(rt, ifindex)
        name = dev.name if dev is not None else ""
        obj = KernelObject(rt, "net_device", ifindex=ifindex,
                           name=int.from_bytes(name.encode()[:15], "little"))
        objects[ifindex] = obj
    return int(obj.addr)


def _xdp_rxq_info(rt: Runtime, ifindex: int, queue: int) -> int:
    """The address of the ``struct xdp_rxq_info`` of a device's rx queue."""
    from ..kernel_btf import KernelObject

    objects: dict[tuple[int, int], KernelObject] = rt.hooks.setdefault("kern_xdp_rxqs", {})
    obj = objects.get((ifindex, queue))
    if obj is None:
        obj = KernelObject(rt, "xdp_rxq_info", dev=_net_device(rt, ifindex) if ifindex else 0,
                           queue_index=queue, reg_state=1)  # REG_STATE_REGISTERED
        objects[(ifindex, queue)] = obj
    return int(obj.addr)


def _sock(rt: Runtime, skb: SkBuff, regions: list[Region]) -> int:
    """skb->sk: the test run's socket as pyebpf's ``struct sock`` (0 without one)."""
    from ..kernel_btf import KernelObject

    sk = skb.sk
    if sk is None:
        return 0
    obj = KernelObject(rt, "sock", **{
        "__sk_common.skc_family": sk.family, "__sk_common.skc_state": sk.state,
        "__sk_common.skc_daddr": int.from_bytes(sk.daddr, "little"),
        "__sk_common.skc_rcv_saddr": int.from_bytes(sk.rcv_saddr, "little"),
        "__sk_common.skc_dport": int.from_bytes(sk.dport.to_bytes(2, "big"), "little"),
        "__sk_common.skc_num": sk.num, "sk_mark": sk.mark})
    regions.append(obj.region)
    return int(obj.addr)


def _sk_buff_view(rt: Runtime, skb: SkBuff, regions: list[Region]) -> KernelStructView:
    """``struct sk_buff`` over a SkBuff (bpf_convert_ctx_access reads the same). The
    test run never sets mac_len (it reads 0, as on the kernel)."""
    m = KernelStructView.member
    sk_addr = _sock(rt, skb, regions)

    def dev() -> int:
        return _net_device(rt, skb.dev.ifindex) if skb.dev is not None else 0

    def cb_data() -> int:
        return int.from_bytes(skb.cb[:20], "little")

    fields = [
        m("sk_buff", "dev", dev), m("sk_buff", "sk", lambda: sk_addr),
        m("sk_buff", "tstamp", lambda: skb.tstamp),
        # skb->cb: struct qdisc_skb_cb, then bpf_skb_data_end's data_meta, data_end
        m("sk_buff", "cb", lambda: skb.pkt_len, size=4),
        m("sk_buff", "cb", lambda: skb.tc_classid_, delta=6, size=2),
        m("sk_buff", "cb", cb_data, delta=8, size=20),
        m("sk_buff", "cb", lambda: skb.cb_data_meta, delta=32, size=8),
        m("sk_buff", "cb", lambda: skb.cb_data_end, delta=40, size=8),
        m("sk_buff", "len", lambda: skb.len), m("sk_buff", "data_len", lambda: skb.data_len),
        m("sk_buff", "queue_mapping", lambda: skb.queue_mapping_),
        KernelStructView.bitfields("sk_buff", 4, {
            "pkt_type": lambda: skb.pkt_type, "ip_summed": lambda: skb.ip_summed,
            "tstamp_type": lambda: skb.tstamp_type, "csum_level": lambda: skb.csum_level,
            "l4_hash": lambda: skb.l4_hash, "sw_hash": lambda: skb.sw_hash,
            "encapsulation": lambda: skb.encapsulation}),
        m("sk_buff", "tc_index", lambda: skb.tc_index_),
        m("sk_buff", "alloc_cpu", lambda: rt.cpu),  # allocated on the CPU running the test
        m("sk_buff", "csum", lambda: skb.csum),
        m("sk_buff", "inner_protocol", lambda: skb.inner_protocol),
        m("sk_buff", "inner_network_header", lambda: skb.inner_network_off),
        m("sk_buff", "inner_mac_header", lambda: skb.inner_mac_off),
        m("sk_buff", "users", lambda: 1),  # refcount_t: the test run's one reference
        m("sk_buff", "priority", lambda: skb.priority),
        m("sk_buff", "skb_iif", lambda: skb.skb_iif), m("sk_buff", "hash", lambda: skb.hash),
        m("sk_buff", "vlan_proto", lambda: skb.vlan_proto),
        m("sk_buff", "vlan_tci", lambda: skb.vlan_tci),
        m("sk_buff", "napi_id", lambda: skb.napi_id), m("sk_buff", "mark", lambda: skb.mark),
        m("sk_buff", "protocol", lambda: skb.protocol),
        m("sk_buff", "transport_header", lambda: HEADER_UNSET),
        m("sk_buff", "network_header", lambda: skb.network_off),
        m("sk_buff", "mac_header", lambda: skb.mac_off),
        m("sk_buff", "tail", lambda: skb.data_off + skb.headlen),
        m("sk_buff", "end", lambda: skb.end_off), m("sk_buff", "head", lambda: skb.head),
        m("sk_buff", "data", lambda: skb.data),
        m("sk_buff", "truesize", lambda: len(skb.buf) + SKB_STRUCT_TRUESIZE),
    ]
    return KernelStructView("sk_buff", fields)


def _xdp_buff_view(rt: Runtime, xdp: XdpBuff, regions: list[Region]) -> KernelStructView:
    """``struct xdp_buff`` over an XdpBuff: the packet pointers, the rx queue it
    arrived on, and frame_sz (the whole frame, up to the shared-info tailroom)."""
    from ..progs.xdp import XDP_TAILROOM

    m = KernelStructView.member
    fields = [
        m("xdp_buff", "data", lambda: xdp.data), m("xdp_buff", "data_end", lambda: xdp.data_end),
        m("xdp_buff", "data_meta", lambda: xdp.data_meta),
        m("xdp_buff", "data_hard_start", lambda: xdp.data_hard_start),
        m("xdp_buff", "rxq", lambda: _xdp_rxq_info(rt, xdp.ingress_ifindex,
                                                   xdp.rx_queue_index)),
        m("xdp_buff", "frame_sz", lambda: xdp.frame_end + XDP_TAILROOM - xdp.data_hard_start),
    ]
    return KernelStructView("xdp_buff", fields)


def _view_for(rt: Runtime, obj: Any, regions: list[Region]) -> KernelStructView | None:
    from ..progs.skb import SkBuff
    from ..progs.xdp import XdpBuff

    if isinstance(obj, SkBuff):
        return _sk_buff_view(rt, obj, regions)
    if isinstance(obj, XdpBuff):
        return _xdp_buff_view(rt, obj, regions)
    return None


#: The kernel ctx structs bpf_cast_to_kern_ctx may return in pyebpf: those it
#: builds a view of, and those the uapi ctx already is (same layout, same address).
KERN_CTX_STRUCTS = frozenset({"sk_buff", "xdp_buff", "pt_regs", "bpf_nf_ctx"})


def kern_ctx_addr(vm: Vm, addr: int) -> int:
    """Where the kernel struct behind the ctx at ``addr`` is (the same offset into
    it); any address that isn't a ctx with a kernel view is returned as it is."""
    rt = runtime_of(vm, "cast_to_kern_ctx")
    memory = rt.memory
    addr &= _M64
    entry = memory.devices.get(addr >> PAGE_SHIFT)
    if entry is None:
        return addr
    base, _, device = entry
    views: dict[int, tuple[Any, Region]] = rt.hooks.setdefault("kern_ctx_views", {})
    cached = views.get(id(device))
    if cached is not None and cached[0] is device and memory.region_at(cached[1].base) \
            is cached[1]:
        return cached[1].base + (addr - base)
    for key, (_, old) in list(views.items()):  # forget views whose run has ended
        if memory.region_at(old.base) is not old:
            del views[key]
    regions: list[Region] = []
    view = _view_for(rt, getattr(device, "obj", None), regions)
    if view is None:
        return addr
    region = memory.map_device(view, view.size, kind="kernel", name=view.struct_name)
    regions.append(region)
    for r in regions:  # gone when the run that cast ends (the ctx goes with it)
        rt.unmap_later(r)
    views[id(device)] = (device, region)
    return int(region.base + (addr - base))


@register_kfunc("bpf_cast_to_kern_ctx", BTF_ID_CAST_TO_KERN_CTX,
                (KfArg(KfArgKind.PTR_TO_CTX, "obj"),), RetType.RET_PTR_TO_BTF_ID, KF.FASTCALL)
def bpf_cast_to_kern_ctx(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The kernel ctx behind the program's ctx (the verifier typed it)."""
    return kern_ctx_addr(vm, r1)


@register_kfunc("bpf_rdonly_cast", BTF_ID_RDONLY_CAST,
                (KfArg(KfArgKind.IGNORED, "obj__ign"), KfArg(KfArgKind.SCALAR_CONST, "btf_id__k")),
                RetType.RET_PTR_TO_BTF_ID, KF.FASTCALL)
def bpf_rdonly_cast(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``obj`` itself (a ctx pointer: its kernel struct, which is what the kernel's
    ctx pointer points at); the verifier made every load through it a probe."""
    return kern_ctx_addr(vm, r1)
