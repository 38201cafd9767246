"""Programs that run on an ``sk_buff``: ``struct __sk_buff``, its access rules, test-run.

SOCKET_FILTER, SCHED_CLS, SCHED_ACT, CGROUP_SKB, LWT_IN, LWT_OUT, LWT_XMIT,
LWT_SEG6LOCAL and SK_SKB all see the same user-visible struct (``struct
__sk_buff``, 192 bytes on Linux 6.18) but each may touch different parts of
it: the kernel's ``*_is_valid_access`` functions of net/core/filter.c decide,
per program type, which fields a load or store may reach and at which sizes.
:func:`skb_access` is that decision as data, read both by the verifier (is the
access allowed, what register type does the load yield) and at run time by
:class:`SkbCtxDevice` (an unverified program's forbidden access faults).

A :class:`SkBuff` stands for the kernel's ``struct sk_buff`` (and the parts of
``skb_shared_info``, ``qdisc_skb_cb`` and the socket the ctx rewrite reaches):
a ctx load is answered from it as ``bpf_convert_ctx_access`` would, e.g.
``skb->data`` is the packet's 64-bit address, ``remote_port`` is ``skc_dport``
shifted left by 16, ``pkt_type`` is three bits.

``BPF_PROG_TEST_RUN`` follows net/bpf/test_run.c ``bpf_prog_test_run_skb`` as
Linux 6.18 behaves (checked against the live kernel): the packet is pulled past
its Ethernet header by ``eth_type_trans`` on the loopback device (whose address
and broadcast address are all zeros, so ``ff:ff:ff:ff:ff:ff`` is MULTICAST,
not BROADCAST), SCHED_CLS/SCHED_ACT see it from the Ethernet header again, the
others from the network header; IPv4/IPv6 packets too short for their IP header
are EINVAL; after the run an l3 program's packet gets a zeroed Ethernet header
pushed back before it is copied out. LWT_SEG6LOCAL and SK_SKB have no test-run
in 6.18 (ENOTSUPP).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import BpfError, BpfFault
from ..memory import PAGE_SHIFT, AddressSpace, Perm, Region
from ..uapi import AttachType, ProgType
from . import ProgTypeOps, attach_types_only, register_prog_type
from .ctx import CtxDevice, CtxField, CtxLayout
from .testrun import (
    ETH_HLEN,
    PAGE_SIZE,
    check_test_attr,
    ctx_finish,
    ctx_init,
    data_in,
    run_repeat,
    test_finish,
)

if TYPE_CHECKING:
    from ..attr import TestRunAttr
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = [
    "BPF_SOCK_SIZE",
    "LOOPBACK",
    "SKB_PROG_TYPES",
    "SK_BUFF",
    "SK_BUFF_SIZE",
    "NetDevice",
    "SkAccess",
    "SkBuff",
    "SkbCtxDevice",
    "Sock",
    "build_skb",
    "skb_access",
    "skb_access_ok",
    "skb_ctx_layout",
    "skb_from_ctx",
    "skb_is_valid_access",
]

SK_BUFF_SIZE = 192
#: NET_SKB_PAD + NET_IP_ALIGN on x86-64 (max(32, L1_CACHE_BYTES) + 0).
SKB_HEADROOM = 64
#: SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64.
SKB_TAILROOM = 320
SMP_CACHE_BYTES = 64
#: Largest packet bpf_prog_test_run_skb takes: PAGE_SIZE - headroom - tailroom.
MAX_TEST_DATA = PAGE_SIZE - SKB_HEADROOM - SKB_TAILROOM
NO_QUEUE_MAPPING = 0xFFFF
GSO_MAX_SEGS = 65535
GSO_LEGACY_MAX_SIZE = 65536
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_802_3 = 0x0001
ETH_P_802_2 = 0x0004
ETH_P_802_3_MIN = 0x0600
AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 10
TCP_CLOSE = 7
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3

# -- struct __sk_buff ------------------------------------------------------------------------

#: Every field of the uapi struct on Linux 6.18 (offsets checked against the
#: kernel's BTF). ``attr`` names the SkBuff attribute a load reads / a store sets.
_FIELDS = (
    CtxField("len", 0, 4),
    CtxField("pkt_type", 4, 4),
    CtxField("mark", 8, 4),
    CtxField("queue_mapping", 12, 4),
    CtxField("protocol", 16, 4),
    CtxField("vlan_present", 20, 4),
    CtxField("vlan_tci", 24, 4),
    CtxField("vlan_proto", 28, 4),
    CtxField("priority", 32, 4),
    CtxField("ingress_ifindex", 36, 4, attr="skb_iif"),
    CtxField("ifindex", 40, 4),
    CtxField("tc_index", 44, 4),
    CtxField("cb", 48, 20),
    CtxField("hash", 68, 4),
    CtxField("tc_classid", 72, 4),
    CtxField("data", 76, 4, pointer=True),
    CtxField("data_end", 80, 4, pointer=True),
    CtxField("napi_id", 84, 4),
    CtxField("family", 88, 4),
    CtxField("remote_ip4", 92, 4),
    CtxField("local_ip4", 96, 4),
    CtxField("remote_ip6", 100, 16),
    CtxField("local_ip6", 116, 16),
    CtxField("remote_port", 132, 4),
    CtxField("local_port", 136, 4),
    CtxField("data_meta", 140, 4, pointer=True),
    CtxField("flow_keys", 144, 8, pointer=True),
    CtxField("tstamp", 152, 8),
    CtxField("wire_len", 160, 4, attr="pkt_len"),
    CtxField("gso_segs", 164, 4),
    CtxField("sk", 168, 8, pointer=True, attr="sk_addr"),
    CtxField("gso_size", 176, 4),
    CtxField("tstamp_type", 180, 1),
    CtxField("hwtstamp", 184, 8),
)
_BY_NAME = {f.name: f for f in _FIELDS}

#: The struct as the kernel declares it, all fields marked readable and the
#: fields some skb program type may write marked writable. The per-type
#: truth is :func:`skb_access` (and :func:`skb_ctx_layout`).
SK_BUFF = CtxLayout("__sk_buff", SK_BUFF_SIZE, [
    attrs.evolve(f, writable=f.name in ("mark", "queue_mapping", "priority", "tc_index", "cb",
                                        "tc_classid", "tstamp"))
    for f in _FIELDS
])


def _r(name: str) -> range:
    """bpf_ctx_range(struct __sk_buff, name): the offsets inside the field."""
    f = _BY_NAME[name]
    return range(f.offset, f.end)


def _till(first: str, last: str) -> range:
    """bpf_ctx_range_till(struct __sk_buff, first, last)."""
    return range(_BY_NAME[first].offset, _BY_NAME[last].end)


_CB = _r("cb")
_TC_CLASSID, _DATA, _DATA_META, _DATA_END = _r("tc_classid"), _r("data"), _r("data_meta"), \
    _r("data_end")
_SOCK_FIELDS = _till("family", "local_port")
_TSTAMP, _WIRE_LEN, _HWTSTAMP = _r("tstamp"), _r("wire_len"), _r("hwtstamp")
_FLOW_KEYS = _r("flow_keys")
_MARK, _PRIORITY, _TC_INDEX, _QUEUE_MAPPING = _r("mark"), _r("priority"), _r("tc_index"), \
    _r("queue_mapping")
_U32_ONLY = (set(_till("remote_ip6", "local_ip6")) | set(_r("remote_ip4")) | set(_r("local_ip4"))
             | set(_DATA) | set(_DATA_META) | set(_DATA_END))
#: bpf_ctx_range_ptr(struct __sk_buff, sk): the whole 8 bytes.
_SK = _r("sk")
_TSTAMP_TYPE_OFF = _BY_NAME["tstamp_type"].offset


@attrs.frozen
class SkAccess:
    """What an allowed ctx access is (the kernel's ``bpf_insn_access_aux``).

    ``reg_type``: what a load yields, in the verifier log's spelling (``"pkt"``,
    ``"pkt_end"``, ``"pkt_meta"``, ``"sock_common_or_null"``, ``"flow_keys"``),
    None for a scalar. ``field_size``: the ctx field size a narrow load is
    widened to (``bpf_ctx_record_field_size``), 0 when the access is not narrowable.
    """

    reg_type: str | None = None
    field_size: int = 0


_SCALAR = SkAccess()


def _bpf_skb_is_valid_access(off: int, size: int, write: bool,
                             reg_type: str | None) -> SkAccess | None:
    """bpf_skb_is_valid_access: the rules every __sk_buff program type shares."""
    if off < 0 or off >= SK_BUFF_SIZE:
        return None
    if off % size:
        return None
    if off in _CB:
        if off + size > _CB.stop:
            return None
    elif off in _U32_ONLY:
        if size != 4:
            return None
    elif off in _FLOW_KEYS:
        return None
    elif off in _HWTSTAMP:
        if write or size != 8:
            return None
    elif off in _TSTAMP:
        if size != 8:
            return None
    elif off in _SK:
        if write or size != 8:
            return None
        return SkAccess("sock_common_or_null")
    elif off == _TSTAMP_TYPE_OFF:
        return None
    elif _TSTAMP_TYPE_OFF < off < _HWTSTAMP.start:
        return None  # explicit padding
    elif write:
        if size != 4:
            return None
    else:
        # Narrow loads of a u32 field (bpf_ctx_narrow_access_ok).
        if size > 4:
            return None
        return SkAccess(reg_type, 4)
    return SkAccess(reg_type) if reg_type else _SCALAR


def _sk_filter(off: int, size: int, write: bool, capable: bool) -> SkAccess | None:
    """sk_filter_is_valid_access (SOCKET_FILTER)."""
    if (off in _TC_CLASSID or off in _DATA or off in _DATA_META or off in _DATA_END
            or off in _SOCK_FIELDS or off in _TSTAMP or off in _WIRE_LEN or off in _HWTSTAMP):
        return None
    if write and off not in _CB:
        return None
    return _bpf_skb_is_valid_access(off, size, write, None)


def _cg_skb(off: int, size: int, write: bool, capable: bool) -> SkAccess | None:
    """cg_skb_is_valid_access (CGROUP_SKB). ``capable``: bpf_capable()."""
    if off in _TC_CLASSID or off in _DATA_META or off in _WIRE_LEN:
        return None
    if (off in _DATA or off in _DATA_END) and not capable:
        return None
    if write:
        if off in _TSTAMP:
            if not capable:
                return None
        elif not (off in _MARK or off in _PRIORITY or off in _CB):
            return None
    return _bpf_skb_is_valid_access(off, size, write, _packet_reg(off, meta=False))


def _lwt(off: int, size: int, write: bool, capable: bool) -> SkAccess | None:
    """lwt_is_valid_access (LWT_IN, LWT_OUT, LWT_XMIT, LWT_SEG6LOCAL)."""
    if (off in _TC_CLASSID or off in _SOCK_FIELDS or off in _DATA_META or off in _TSTAMP
            or off in _WIRE_LEN or off in _HWTSTAMP):
        return None
    if write and not (off in _MARK or off in _PRIORITY or off in _CB):
        return None
    return _bpf_skb_is_valid_access(off, size, write, _packet_reg(off, meta=False))


def _tc_cls_act(off: int, size: int, write: bool, capable: bool) -> SkAccess | None:
    """tc_cls_act_is_valid_access (SCHED_CLS, SCHED_ACT)."""
    if write and not (off in _MARK or off in _TC_INDEX or off in _PRIORITY or off in _TC_CLASSID
                      or off in _CB or off in _TSTAMP or off in _QUEUE_MAPPING):
        return None
    if off in _SOCK_FIELDS:
        return None
    if off == _TSTAMP_TYPE_OFF:
        # Returns before the shared checks: a 1-byte load is all that is allowed.
        return _SCALAR if size == 1 else None
    return _bpf_skb_is_valid_access(off, size, write, _packet_reg(off, meta=True))


def _sk_skb(off: int, size: int, write: bool, capable: bool) -> SkAccess | None:
    """sk_skb_is_valid_access (SK_SKB)."""
    if (off in _TC_CLASSID or off in _DATA_META or off in _TSTAMP or off in _WIRE_LEN
            or off in _HWTSTAMP):
        return None
    if write and not (off in _TC_INDEX or off in _PRIORITY):
        return None
    if off in _MARK:
        return None
    return _bpf_skb_is_valid_access(off, size, write, _packet_reg(off, meta=False))


def _flow_dissector(off: int, size: int, write: bool, capable: bool) -> SkAccess | None:
    """flow_dissector_is_valid_access (FLOW_DISSECTOR reads __sk_buff too)."""
    if off < 0 or off >= SK_BUFF_SIZE or write or off % size:
        return None
    if off in _DATA:
        return SkAccess("pkt") if size == 4 else None
    if off in _DATA_END:
        return SkAccess("pkt_end") if size == 4 else None
    if off in _FLOW_KEYS:
        return SkAccess("flow_keys") if size == 8 else None
    return None


def _packet_reg(off: int, *, meta: bool) -> str | None:
    if off in _DATA:
        return "pkt"
    if off in _DATA_END:
        return "pkt_end"
    if meta and off in _DATA_META:
        return "pkt_meta"
    return None


_RULES = {
    ProgType.SOCKET_FILTER: _sk_filter,
    ProgType.SCHED_CLS: _tc_cls_act,
    ProgType.SCHED_ACT: _tc_cls_act,
    ProgType.CGROUP_SKB: _cg_skb,
    ProgType.LWT_IN: _lwt,
    ProgType.LWT_OUT: _lwt,
    ProgType.LWT_XMIT: _lwt,
    ProgType.LWT_SEG6LOCAL: _lwt,
    ProgType.SK_SKB: _sk_skb,
    ProgType.FLOW_DISSECTOR: _flow_dissector,
}
#: The program types whose ctx is a ``struct __sk_buff``.
SKB_PROG_TYPES = frozenset(_RULES)


def skb_access(prog_type: int, off: int, size: int, write: bool, *,
               capable: bool = True) -> SkAccess | None:
    """The kernel's ``is_valid_access`` of ``prog_type`` for an access of ``size``
    bytes (1, 2, 4 or 8) at ``off`` into ``struct __sk_buff``: None when the
    verifier rejects it ("invalid bpf_context access"), else what it yields.
    ``capable`` is bpf_capable() (CGROUP_SKB's packet pointers and tstamp writes)."""
    rule = _RULES.get(ProgType(prog_type))
    if rule is None or size not in (1, 2, 4, 8):
        return None
    return rule(off, size, write, capable)


def skb_access_ok(prog_type: int, off: int, size: int, write: bool, *,
                  capable: bool = True) -> bool:
    """Whether ``prog_type``'s is_valid_access allows the access (see :func:`skb_access`)."""
    return skb_access(prog_type, off, size, write, capable=capable) is not None


def skb_ctx_layout(prog_type: int, *, capable: bool = True) -> CtxLayout:
    """``struct __sk_buff`` as ``prog_type`` sees it: a field is readable (writable)
    when some access into it is allowed; :func:`skb_access` has the exact sizes."""
    fields = []
    for f in _FIELDS:
        offs = range(f.offset, f.end)
        readable = any(skb_access_ok(prog_type, o, s, False, capable=capable)
                       for o in offs for s in (1, 2, 4, 8))
        writable = any(skb_access_ok(prog_type, o, s, True, capable=capable)
                       for o in offs for s in (1, 2, 4, 8))
        attr = f.attr
        if f.name == "data_end":
            attr = "headlen_end" if prog_type == ProgType.SK_SKB else "cb_data_end"
        elif f.name == "data_meta":
            attr = "cb_data_meta"
        fields.append(attrs.evolve(f, readable=readable, writable=writable, attr=attr))
    return CtxLayout("__sk_buff", SK_BUFF_SIZE, fields)


# -- the simulated kernel objects ----------------------------------------------------------------

@attrs.define(eq=False)
class NetDevice:
    """A net_device as the test-run sees it: ifindex and link-layer addresses."""

    ifindex: int
    name: str
    dev_addr: bytes = bytes(6)
    broadcast: bytes = bytes(6)
    #: dev->mtu (the loopback's 65536; bpf_check_mtu reads it).
    mtu: int = 65536


#: The network namespace's loopback device: both addresses all zeros (as
#: ``ip link show lo`` says), which decides pkt_type in eth_type_trans.
LOOPBACK = NetDevice(1, "lo")

#: struct bpf_sock (what a PTR_TO_SOCK_COMMON load reads): 80 bytes.
BPF_SOCK_SIZE = 80


@attrs.define(eq=False)
class Sock:
    """The test-run's dummy socket (sk_alloc(AF_UNSPEC) + sock_init_data(NULL)),
    with the addresses bpf_prog_test_run_skb copies from the IP header.

    Addresses are kept as the bytes in network order; ports as the kernel keeps
    them (``dport`` network order, ``num`` host order)."""

    family: int = AF_UNSPEC
    daddr: bytes = bytes(4)
    rcv_saddr: bytes = bytes(4)
    v6_daddr: bytes = bytes(16)
    v6_rcv_saddr: bytes = bytes(16)
    dport: int = 0
    num: int = 0
    type: int = 0
    protocol: int = 0
    mark: int = 0
    priority: int = 0
    bound_dev_if: int = 0
    state: int = TCP_CLOSE
    rx_queue_mapping: int = -1
    #: sk_uid (0: sock_init_data without a socket), and the cookie
    #: sock_gen_cookie hands out on first use (0: none yet).
    uid: int = 0
    cookie: int = 0
    #: (level, optname) -> value, for every option a program's bpf_setsockopt
    #: (or a test) set (pyebpf.helpers.sockopt).
    sockopts: dict[tuple[int, int], int | bytes] = attrs.Factory(dict)

    def bpf_sock(self) -> bytes:
        """The socket as ``struct bpf_sock`` (bpf_sock_convert_ctx_access's view)."""
        out = bytearray(BPF_SOCK_SIZE)
        for off, value in ((0, self.bound_dev_if), (4, self.family), (8, self.type),
                           (12, self.protocol), (16, self.mark), (20, self.priority),
                           (44, self.num), (72, self.state)):
            out[off:off + 4] = (value & 0xFFFF_FFFF).to_bytes(4, "little")
        out[24:28] = self.rcv_saddr
        out[28:44] = self.v6_rcv_saddr
        out[48:50] = self.dport.to_bytes(2, "big")
        out[52:56] = self.daddr
        out[56:72] = self.v6_daddr
        out[76:80] = (self.rx_queue_mapping & 0xFFFF_FFFF).to_bytes(4, "little")
        return bytes(out)


@attrs.define(eq=False)
class SkBuff:
    """The kernel's ``struct sk_buff`` as far as ``struct __sk_buff`` reaches it.

    ``buf`` is the whole data buffer (``skb->head`` .. end of skb_shared_info),
    mapped at ``base``; ``data_off`` is ``skb->data - skb->head``; the packet is
    ``buf[data_off:data_off + len]``. Its last ``data_len`` bytes count as paged
    (past the head, out of data_end's reach until pulled): 0 except for the TCP
    payload SK_SKB programs see (pyebpf.links.sockmap), which is all paged.
    Attribute names follow the kernel's; the properties below are the ctx
    fields a program reads, converted as bpf_convert_ctx_access converts them.
    """

    buf: bytearray
    base: int
    data_off: int
    len: int
    end_off: int
    data_len: int = 0
    mac_off: int = 0
    network_off: int = 0
    #: skb->protocol as it lies in memory (__be16), i.e. what a u16 load reads.
    protocol: int = 0
    pkt_type: int = PACKET_HOST
    mark: int = 0
    priority: int = 0
    queue_mapping_: int = 0
    vlan_present: int = 0
    vlan_tci: int = 0
    vlan_proto: int = 0
    skb_iif: int = 0
    dev: NetDevice | None = None
    tc_index_: int = 0
    #: qdisc_skb_cb: pkt_len, tc_classid and the 20 bytes of data that are __sk_buff->cb.
    pkt_len: int = 0
    tc_classid_: int = 0
    cb: bytearray = attrs.Factory(lambda: bytearray(20))
    #: bpf_skb_data_end (the rest of skb->cb): set by bpf_compute_data_pointers.
    cb_data_meta: int = 0
    cb_data_end: int = 0
    hash: int = 0
    napi_id: int = 0
    sk: Sock | None = None
    #: Where ``sk`` is mapped (its struct bpf_sock view), 0 for no socket.
    sk_addr: int = 0
    tstamp: int = 0
    tstamp_type: int = 0
    #: skb_shared_info fields.
    gso_segs_: int = 0
    gso_size_: int = 0
    hwtstamp: int = 0
    #: Checksum state: CHECKSUM_NONE (0) for a test-run skb, the sum for
    #: CHECKSUM_COMPLETE, the level for CHECKSUM_UNNECESSARY.
    ip_summed: int = 0
    csum: int = 0
    csum_level: int = 0
    #: skb->hash is a software / an L4 hash (else: not computed yet).
    sw_hash: int = 0
    l4_hash: int = 0
    #: Tunnel metadata set by bpf_skb_set_tunnel_key (helpers.tunnel.TunnelInfo).
    tunnel: Any = None
    #: Set once bpf_skb_adjust_room pushed an outer header (inner headers below).
    encapsulation: int = 0
    inner_mac_off: int = 0
    inner_network_off: int = 0
    inner_protocol: int = 0
    #: Regions this skb mapped (the data buffer, the socket), for unmapping.
    regions: list[Region] = attrs.Factory(list)

    # -- pointers -----------------------------------------------------------------------------
    @property
    def head(self) -> int:
        return self.base

    @property
    def data(self) -> int:
        return self.base + self.data_off

    @property
    def headlen(self) -> int:
        return max(0, self.len - self.data_len)

    @property
    def headlen_end(self) -> int:
        """skb->data + skb_headlen(skb): SK_SKB's data_end, computed on every load."""
        return self.data + self.headlen

    @property
    def headroom(self) -> int:
        return self.data_off

    def compute_data_pointers(self) -> None:
        """bpf_compute_data_pointers: data_meta = data - metadata length (0), data_end."""
        self.cb_data_meta = self.data
        self.cb_data_end = self.data + self.headlen

    def packet(self) -> bytes:
        """The packet bytes from skb->data (skb->len of them)."""
        return bytes(self.buf[self.data_off:self.data_off + self.len])

    def pull(self, n: int) -> None:
        """__skb_pull: move data forward by ``n`` bytes."""
        self.data_off += n
        self.len -= n

    def push(self, n: int) -> None:
        """__skb_push: move data back by ``n`` bytes."""
        self.data_off -= n
        self.len += n

    # -- ctx fields ---------------------------------------------------------------------------
    @property
    def ifindex(self) -> int:
        return self.dev.ifindex if self.dev is not None else 0

    @property
    def queue_mapping(self) -> int:
        return self.queue_mapping_

    @queue_mapping.setter
    def queue_mapping(self, value: int) -> None:
        # if (src >= NO_QUEUE_MAPPING) skip; else *(u16 *)&skb->queue_mapping = src
        if value < NO_QUEUE_MAPPING:
            self.queue_mapping_ = value & 0xFFFF

    @property
    def tc_index(self) -> int:
        return self.tc_index_

    @tc_index.setter
    def tc_index(self, value: int) -> None:
        self.tc_index_ = value & 0xFFFF

    @property
    def tc_classid(self) -> int:
        return self.tc_classid_

    @tc_classid.setter
    def tc_classid(self, value: int) -> None:
        self.tc_classid_ = value & 0xFFFF

    @property
    def gso_segs(self) -> int:
        return self.gso_segs_

    @property
    def gso_size(self) -> int:
        return self.gso_size_

    def _sk(self) -> Sock:
        if self.sk is None:
            raise BpfFault("__sk_buff socket field read with no skb->sk")
        return self.sk

    @property
    def family(self) -> int:
        return self._sk().family & 0xFFFF

    @property
    def remote_ip4(self) -> int:
        return int.from_bytes(self._sk().daddr, "little")

    @property
    def local_ip4(self) -> int:
        return int.from_bytes(self._sk().rcv_saddr, "little")

    @property
    def remote_ip6(self) -> bytes:
        return self._sk().v6_daddr

    @property
    def local_ip6(self) -> bytes:
        return self._sk().v6_rcv_saddr

    @property
    def remote_port(self) -> int:
        # u16 load of skc_dport (network order), then `w <<= 16` on little endian.
        return (int.from_bytes(self._sk().dport.to_bytes(2, "big"), "little") << 16) & 0xFFFF_FFFF

    @property
    def local_port(self) -> int:
        return self._sk().num & 0xFFFF

    @property
    def flow_keys(self) -> int:
        raise BpfFault("__sk_buff->flow_keys exists only for flow dissector programs")


#: Base offsets of LD_ABS/LD_IND loads relative to the network / MAC header.
SKF_NET_OFF, SKF_LL_OFF = -0x100000, -0x200000


class _SkbBytes:
    """What LD_ABS/LD_IND read (vm.skb_data): the live bytes from skb->data, so
    a packet rewritten by the program or moved by a helper is seen as it is now."""

    __slots__ = ("skb",)

    def __init__(self, skb: SkBuff) -> None:
        self.skb = skb

    def __len__(self) -> int:
        return self.skb.headlen

    def load_negative(self, k: int, size: int) -> bytes | None:
        """``size`` bytes at a negative LD_ABS/LD_IND offset: ``SKF_NET_OFF + n`` is
        n bytes past the network header, ``SKF_LL_OFF + n`` past the MAC header;
        None (the load fails) outside the packet."""
        skb = self.skb
        if k >= SKF_NET_OFF:
            at = skb.network_off + k - SKF_NET_OFF
        elif k >= SKF_LL_OFF:
            at = skb.mac_off + k - SKF_LL_OFF
        else:
            return None
        if at < 0 or at + size > skb.data_off + skb.len:
            return None
        return bytes(skb.buf[at:at + size])

    def __getitem__(self, key: int | slice) -> Any:
        skb = self.skb
        if isinstance(key, slice):
            start, stop, _ = key.indices(skb.headlen)
            return skb.buf[skb.data_off + start:skb.data_off + max(start, stop)]
        if not -skb.headlen <= key < skb.headlen:
            raise IndexError(key)
        return skb.buf[skb.data_off + key % skb.headlen]


class SkbCtxDevice(CtxDevice):
    """The ``struct __sk_buff`` of one program type: loads and stores answered by
    an :class:`SkBuff`, and only those the type's is_valid_access allows."""

    def __init__(self, layout: CtxLayout, obj: SkBuff, prog_type: int, *,
                 capable: bool = True) -> None:
        super().__init__(layout, obj)
        self.prog_type = prog_type
        self._allowed = _allowed_set(ProgType(prog_type), capable)

    def load(self, off: int, size: int) -> int:
        if (off, size, False) not in self._allowed:
            raise BpfFault(f"invalid bpf_context access off={off} size={size} "
                           f"({ProgType(self.prog_type).name} __sk_buff read)")
        return super().load(off, size)

    def store(self, off: int, size: int, value: int) -> None:
        if (off, size, True) not in self._allowed:
            raise BpfFault(f"invalid bpf_context access off={off} size={size} "
                           f"({ProgType(self.prog_type).name} __sk_buff write)")
        super().store(off, size, value)


_ALLOWED: dict[tuple[ProgType, bool], frozenset[tuple[int, int, bool]]] = {}
_LAYOUTS: dict[tuple[ProgType, bool], CtxLayout] = {}


def _allowed_set(prog_type: ProgType, capable: bool) -> frozenset[tuple[int, int, bool]]:
    key = (prog_type, capable)
    got = _ALLOWED.get(key)
    if got is None:
        got = frozenset((off, size, write) for off in range(SK_BUFF_SIZE) for size in (1, 2, 4, 8)
                        for write in (False, True)
                        if skb_access_ok(prog_type, off, size, write, capable=capable))
        _ALLOWED[key] = got
    return got


def _layout(prog_type: ProgType, capable: bool = True) -> CtxLayout:
    key = (prog_type, capable)
    got = _LAYOUTS.get(key)
    if got is None:
        got = _LAYOUTS[key] = skb_ctx_layout(prog_type, capable=capable)
    return got


def try_make_writable(skb: SkBuff, write_len: int) -> int:
    """bpf_try_make_writable: 0 when the first ``write_len`` bytes from skb->data
    are in the (never shared) packet, pulled into the head if they were paged,
    else -ENOMEM (pskb_may_pull fails); the data pointers are recomputed either way."""
    err = 0 if write_len <= skb.len else -errno.ENOMEM
    if not err and write_len > skb.headlen:
        skb.data_len = skb.len - write_len  # __pskb_pull_tail
    skb.compute_data_pointers()
    return err


def skb_from_ctx(memory: AddressSpace, addr: int) -> SkBuff | None:
    """The SkBuff behind a ctx pointer (for helpers given ``r1 = skb``), or None."""
    entry = memory.devices.get((addr & ((1 << 64) - 1)) >> PAGE_SHIFT)
    if entry is None:
        return None
    device = entry[2]
    obj = getattr(device, "obj", None)
    return obj if isinstance(obj, SkBuff) else None


# -- building an skb (what bpf_prog_test_run_skb does before the run) ---------------------------

def _kmalloc_size(n: int) -> int:
    """The size kmalloc really gives for ``n`` bytes (its size classes)."""
    for cls in (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192):
        if n <= cls:
            return cls
    return -(-n // PAGE_SIZE) * PAGE_SIZE


def _data_align(n: int) -> int:
    return -(-n // SMP_CACHE_BYTES) * SMP_CACHE_BYTES


def is_l2(prog_type: int) -> bool:
    """Whether the program sees the packet from its Ethernet header (tc programs)."""
    return prog_type in (ProgType.SCHED_CLS, ProgType.SCHED_ACT)


def eth_type_trans(skb: SkBuff, dev: NetDevice) -> int:
    """eth_type_trans: set dev, mac header and pkt_type, pull the Ethernet header,
    return the protocol (__be16 as it lies in memory)."""
    skb.dev = dev
    skb.mac_off = skb.data_off
    eth = bytes(skb.buf[skb.data_off:skb.data_off + ETH_HLEN])
    skb.pull(ETH_HLEN)
    dest = eth[0:6]
    if dest != dev.dev_addr:
        if dest[0] & 1:
            skb.pkt_type = PACKET_BROADCAST if dest == dev.broadcast else PACKET_MULTICAST
        else:
            skb.pkt_type = PACKET_OTHERHOST
    proto = int.from_bytes(eth[12:14], "big")
    if proto >= ETH_P_802_3_MIN:
        return _be16(proto)
    # Novell's raw 802.3 (IPX): 0xFFFF where an 802.2 LLC header would begin.
    if skb.len >= 2 and skb.buf[skb.data_off:skb.data_off + 2] == b"\xff\xff":
        return _be16(ETH_P_802_3)
    return _be16(ETH_P_802_2)


def _be16(host: int) -> int:
    """htons as a little-endian machine stores it: what a u16 load of the field reads."""
    return int.from_bytes(host.to_bytes(2, "big"), "little")


def _netdev(rt: Runtime, ifindex: int) -> NetDevice | None:
    """dev_get_by_index in the runtime's namespace (``rt.netdevs`` if it has one)."""
    devs = getattr(rt, "netdevs", None)
    if devs is None:
        return LOOPBACK if ifindex == LOOPBACK.ifindex else None
    return devs.get(ifindex)


def build_skb(rt: Runtime, packet: bytes, prog_type: int, *,
              dev: NetDevice | None = None) -> SkBuff:
    """The skb bpf_prog_test_run_skb builds around ``packet`` for ``prog_type``,
    up to (not including) applying ctx_in: buffer with NET_SKB_PAD of headroom,
    eth_type_trans on ``dev`` (the loopback device by default), the socket's
    family and addresses from the IP header, the Ethernet header pushed back for
    tc programs, data pointers computed. Its regions are mapped in ``rt.memory``;
    unmap them with :func:`release_skb`. Raises EINVAL for an IPv4/IPv6 packet
    shorter than its IP header (as Linux 6.18 does)."""
    size = len(packet)
    total = _kmalloc_size(SKB_HEADROOM + _data_align(size) + SKB_TAILROOM)
    buf = bytearray(total)
    buf[SKB_HEADROOM:SKB_HEADROOM + size] = packet
    region = rt.memory.map(buf, kind="packet", name="skb")
    skb = SkBuff(buf=buf, base=region.base, data_off=SKB_HEADROOM, len=size,
                 end_off=total - SKB_TAILROOM)
    skb.regions.append(region)
    skb.sk = Sock()
    skb.protocol = eth_type_trans(skb, dev or LOOPBACK)
    skb.network_off = skb.data_off
    sk = skb.sk
    proto = _be16(skb.protocol)
    if proto == ETH_P_IP:
        sk.family = AF_INET
        if skb.headlen < 20:
            release_skb(rt, skb)
            raise BpfError(errno.EINVAL, f"IPv4 packet with {skb.headlen} bytes after the "
                           "Ethernet header, shorter than an IP header")
        ip = skb.buf[skb.network_off:skb.network_off + 20]
        sk.rcv_saddr, sk.daddr = bytes(ip[12:16]), bytes(ip[16:20])
    elif proto == ETH_P_IPV6:
        sk.family = AF_INET6
        if skb.headlen < 40:
            release_skb(rt, skb)
            raise BpfError(errno.EINVAL, f"IPv6 packet with {skb.headlen} bytes after the "
                           "Ethernet header, shorter than an IPv6 header")
        ip = skb.buf[skb.network_off:skb.network_off + 40]
        sk.v6_rcv_saddr, sk.v6_daddr = bytes(ip[8:24]), bytes(ip[24:40])
    if is_l2(prog_type):
        skb.push(ETH_HLEN)
    skb.compute_data_pointers()
    sk_region = rt.memory.map(bytearray(sk.bpf_sock()), kind="sock", name="sk",
                              perms=Perm.R)
    skb.regions.append(sk_region)
    skb.sk_addr = sk_region.base
    return skb


def release_skb(rt: Runtime, skb: SkBuff) -> None:
    for region in skb.regions:
        rt.unmap_later(region)
    skb.regions.clear()


# -- ctx_in / ctx_out (convert___skb_to_skb / convert_skb_to___skb) ----------------------------

#: The __sk_buff fields a ctx_in may set (every other byte must be zero).
CTX_IN_FIELDS = ("mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp", "wire_len",
                 "gso_segs", "gso_size", "hwtstamp")
_CTX_IN_ALLOWED = frozenset(b for name in CTX_IN_FIELDS for b in _r(name))


def _u(ctx: bytes | bytearray, name: str) -> int:
    f = _BY_NAME[name]
    return int.from_bytes(ctx[f.offset:f.end], "little")


def _put(ctx: bytearray, name: str, value: int) -> None:
    f = _BY_NAME[name]
    ctx[f.offset:f.end] = (value & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")


def convert_ctx_to_skb(skb: SkBuff, ctx: bytes | bytearray | None) -> None:
    """convert___skb_to_skb: apply a caller's __sk_buff (EINVAL on a non-zero byte
    outside the allowed fields, a wire_len below skb->len or above 64 KiB, or
    gso_segs above GSO_MAX_SEGS)."""
    if ctx is None:
        return
    for b, value in enumerate(ctx[:SK_BUFF_SIZE]):
        if value and b not in _CTX_IN_ALLOWED:
            field = next((f.name for f in _FIELDS if f.offset <= b < f.end), "padding")
            raise BpfError(errno.EINVAL, f"ctx_in sets __sk_buff byte {b} ({field}), which "
                           "a test run doesn't take")
    skb.mark = _u(ctx, "mark")
    skb.priority = _u(ctx, "priority")
    skb.skb_iif = _u(ctx, "ingress_ifindex")
    skb.tstamp = _u(ctx, "tstamp")
    skb.cb[:] = ctx[_CB.start:_CB.stop]
    wire_len = _u(ctx, "wire_len")
    if wire_len == 0:
        skb.pkt_len = skb.len
    else:
        if wire_len < skb.len or wire_len > GSO_LEGACY_MAX_SIZE:
            raise BpfError(errno.EINVAL, f"ctx_in wire_len {wire_len} is below the packet's "
                           f"length {skb.len} or above {GSO_LEGACY_MAX_SIZE}")
        skb.pkt_len = wire_len
    gso_segs = _u(ctx, "gso_segs")
    if gso_segs > GSO_MAX_SEGS:
        raise BpfError(errno.EINVAL, f"ctx_in gso_segs {gso_segs} is above {GSO_MAX_SEGS}")
    skb.gso_segs_ = gso_segs
    skb.gso_size_ = _u(ctx, "gso_size") & 0xFFFF  # skb_shared_info's gso_size is a u16
    skb.hwtstamp = _u(ctx, "hwtstamp")


def convert_skb_to_ctx(skb: SkBuff, ctx: bytearray | None) -> None:
    """convert_skb_to___skb: write back what a test run reports (in place: every
    other byte of ctx_out is what ctx_in had, e.g. gso_size untruncated)."""
    if ctx is None:
        return
    _put(ctx, "mark", skb.mark)
    _put(ctx, "priority", skb.priority)
    _put(ctx, "ingress_ifindex", skb.skb_iif)
    _put(ctx, "ifindex", skb.ifindex)
    _put(ctx, "tstamp", skb.tstamp)
    ctx[_CB.start:_CB.stop] = skb.cb
    _put(ctx, "wire_len", skb.pkt_len)
    _put(ctx, "gso_segs", skb.gso_segs_)
    _put(ctx, "hwtstamp", skb.hwtstamp)


# -- BPF_PROG_TEST_RUN -------------------------------------------------------------------------

def _data_size(attr: TestRunAttr) -> int:
    if attr.data_size_in is not None:
        return attr.data_size_in
    if isinstance(attr.data_in, bytes | bytearray | memoryview):
        return len(attr.data_in)
    return 0


def run_on_skb(rt: Runtime, prog: BpfProg, skb: SkBuff, repeat: int = 1) -> tuple[int, int]:
    """Run ``prog`` on ``skb`` (its ``struct __sk_buff`` mapped as the program's
    type sees it, LD_ABS reading the live packet): (r0 as u32, mean ns per run).
    The test run and the simulated hooks (pyebpf.links) both run skb programs here."""
    prog_type = prog.prog_type
    device = SkbCtxDevice(_layout(prog_type, rt.privileged), skb, prog_type,
                          capable=rt.privileged)
    ctx_region = rt.memory.map_device(device, SK_BUFF_SIZE, kind="ctx", name="__sk_buff")
    vm = prog.vm()
    saved = vm.skb_data
    vm.skb_data = _SkbBytes(skb)
    try:
        return run_repeat(rt, prog, ctx_region.base, repeat)
    finally:
        vm.skb_data = saved
        rt.memory.unmap(ctx_region)


def _test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    """bpf_prog_test_run_skb."""
    from ..prog import TestRunResult

    check_test_attr(attr)
    if attr.flags or attr.cpu or attr.batch_size:
        raise BpfError(errno.EINVAL, "skb test runs take no flags, cpu or batch_size")
    size = _data_size(attr)
    if size < ETH_HLEN or size > MAX_TEST_DATA:
        raise BpfError(errno.EINVAL, f"packet of {size} bytes: skb test runs take "
                       f"{ETH_HLEN}..{MAX_TEST_DATA}")
    packet = data_in(rt, attr)
    ctx = ctx_init(rt, attr, SK_BUFF_SIZE)
    dev = LOOPBACK
    if ctx is not None and _u(ctx, "ifindex") > 1:
        found = _netdev(rt, _u(ctx, "ifindex"))
        if found is None:
            raise BpfError(errno.ENODEV, f"no device with ifindex {_u(ctx, 'ifindex')}")
        dev = found
    prog_type = prog.prog_type
    skb = build_skb(rt, packet, prog_type, dev=dev)
    try:
        convert_ctx_to_skb(skb, ctx)
        retval, duration = run_on_skb(rt, prog, skb, attr.repeat)
        # An l3 program's packet gets a zeroed Ethernet header pushed back
        # (memset(__skb_push(skb, hh_len), 0, hh_len)) before it is copied out.
        out = skb.packet() if is_l2(prog_type) else bytes(ETH_HLEN) + skb.packet()
        convert_skb_to_ctx(skb, ctx)
    finally:
        release_skb(rt, skb)
    # bpf_test_finish first (ENOSPC there: ctx_out is not written), then bpf_ctx_finish.
    result = test_finish(rt, attr, TestRunResult(retval=retval, duration=duration, data_out=out))
    try:
        ctx_bytes, ctx_size = ctx_finish(rt, attr, bytes(ctx) if ctx is not None else None)
    except BpfError as exc:
        if exc.errno == errno.ENOSPC:
            exc.result = attrs.evolve(result, ctx_size_out=SK_BUFF_SIZE)  # type: ignore[attr-defined]
        raise
    return attrs.evolve(result, ctx_out=ctx_bytes, ctx_size_out=ctx_size)


_TEST_RUN_TYPES = (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT,
                   ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT)
#: __sk_buff program types without a test-run in Linux 6.18 (ENOTSUPP).
_NO_TEST_RUN_TYPES = (ProgType.LWT_SEG6LOCAL, ProgType.SK_SKB)


#: SkAccess.reg_type -> the kernel's enum bpf_reg_type value (with PTR_MAYBE_NULL).
_REG_TYPE_IDS = {None: 1, "pkt_meta": 7, "pkt": 8, "pkt_end": 9, "flow_keys": 10,
                 "sock_common_or_null": 12 | 1 << 8}


def skb_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """ProgTypeOps.is_valid_access for the __sk_buff types: the register type a
    load yields (SCALAR_VALUE = 1, PTR_TO_PACKET...), None if the access is invalid."""
    runtime = getattr(prog, "runtime", None)
    capable = getattr(runtime, "privileged", True)
    got = skb_access(prog.prog_type, off, size, write, capable=capable)
    return None if got is None else _REG_TYPE_IDS[got.reg_type]


def _register(types: Iterable[ProgType], test_run: Any) -> None:
    optional = attrs.fields_dict(ProgTypeOps)
    for t in types:
        kwargs: dict[str, Any] = {}
        if t == ProgType.CGROUP_SKB:
            kwargs["check_attach"] = _cg_skb_attach
        if "is_valid_access" in optional:
            kwargs["is_valid_access"] = skb_is_valid_access
        register_prog_type(ProgTypeOps(t, ctx=_layout(t), test_run=test_run, **kwargs))


#: CGROUP_SKB must say which direction it expects (bpf_prog_load_check_attach).
_cg_skb_attach = attach_types_only(AttachType.CGROUP_INET_INGRESS, AttachType.CGROUP_INET_EGRESS)

_register(_TEST_RUN_TYPES, _test_run)
_register(_NO_TEST_RUN_TYPES, None)
