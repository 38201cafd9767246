"""BPF_PROG_TYPE_NETFILTER: programs on a netfilter hook (net/netfilter/nf_bpf_link.c).

The context is ``struct bpf_nf_ctx { const struct nf_hook_state *state; struct
sk_buff *skb; }``. Unlike the ``__sk_buff`` types, nothing is rewritten: the
two members are 8-byte, read-only loads that give trusted PTR_TO_BTF_ID
pointers to the kernel's own structs (nf_is_valid_access), which the program
then reads through the BTF walk (``state->hook``, ``skb->len``; reads only,
and only for CAP_PERFMON callers). Programs return NF_DROP (0) or NF_ACCEPT
(1) (check_return_code), and get ``bpf_base_func_proto``'s helpers.

Each run builds, in the runtime's memory, the objects those pointers reach
(:class:`NfHookCall`): an ``nf_hook_state`` (hook, pf, the in/out devices,
the namespace) and an ``sk_buff`` whose ``head``/``data`` point at the packet
buffer (NET_SKB_PAD of headroom, the packet, room for skb_shared_info), with
``len``, ``protocol``, ``mac_header``/``network_header`` as the stack leaves
them at that hook: ``data`` at the network header.

BPF_PROG_TEST_RUN is bpf_prog_test_run_nf: ``ctx_in`` is a ``struct
nf_hook_state`` whose only non-zero members may be ``hook`` and ``pf`` (IPv4
or IPv6); the default is IPv4 LOCAL_OUT. ``data_in`` is the IP packet for
LOCAL_OUT and an Ethernet frame (whose EtherType must match ``pf``) for the
other hooks. Only ``retval`` and ``duration`` come back: no data or ctx out.
"""

from __future__ import annotations

import enum
import errno
import struct
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..uapi import AttachType, ProgType
from . import ProgTypeOps, attach_types_only, register_prog_type
from .access import layout
from .testrun import ETH_HLEN, PAGE_SIZE, check_test_attr, ctx_init, data_in, run_repeat

if TYPE_CHECKING:
    from ..attr import TestRunAttr
    from ..btf_build import BtfBuilder
    from ..kernel_btf import KernelObject
    from ..memory import Region
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["BPF_NF_CTX", "NF_ACCEPT", "NF_DROP", "NFPROTO_IPV4", "NFPROTO_IPV6", "NfHookCall",
           "NfInetHook", "add_netfilter_btf", "nf_is_valid_access"]

class NfInetHook(enum.IntEnum):
    """enum nf_inet_hooks (NF_INET_NUMHOOKS is 5; INGRESS is not a BPF hook)."""

    PRE_ROUTING = 0
    LOCAL_IN = 1
    FORWARD = 2
    LOCAL_OUT = 3
    POST_ROUTING = 4


NF_INET_NUMHOOKS = 5
#: NFPROTO_* (include/uapi/linux/netfilter.h): the families a BPF hook may use.
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10
#: The two verdicts a netfilter program may return.
NF_DROP = 0
NF_ACCEPT = 1
#: sizeof(struct nf_hook_state) on x86-64: hook, pf, then five pointers.
NF_HOOK_STATE_SIZE = 48
#: NET_SKB_PAD + NET_IP_ALIGN and SKB_DATA_ALIGN(sizeof(struct skb_shared_info)), x86-64.
NF_SKB_HEADROOM = 64
NF_SKB_TAILROOM = 320
#: ~0U as a u16: a header offset the stack has not set.
HEADER_UNSET = 0xFFFF
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPV4_HLEN = 20
IPV6_HLEN = 40

BPF_NF_CTX = layout("bpf_nf_ctx", [("state", 8, {"pointer": True}),
                                   ("skb", 8, {"pointer": True})])


def add_netfilter_btf(b: BtfBuilder, ids: dict[str, int]) -> None:
    """``struct nf_hook_state`` and ``struct bpf_nf_ctx`` for the kernel BTF."""
    ptr = b.ptr
    ids["struct nf_hook_state"] = b.struct("nf_hook_state", [
        ("hook", ids["u8"]), ("pf", ids["u8"]), ("in", ptr(ids["struct net_device"])),
        ("out", ptr(ids["struct net_device"])), ("sk", ptr(ids["struct sock"])),
        ("net", ptr(ids["struct net"])), ("okfn", ids["void *"])])
    ids["struct bpf_nf_ctx"] = b.struct("bpf_nf_ctx", [
        ("state", ptr(b.const(ids["struct nf_hook_state"]))),
        ("skb", ptr(ids["struct sk_buff"]))])


def nf_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """nf_is_valid_access: 8-byte reads of ``state`` and ``skb`` (at their start),
    each a trusted PTR_TO_BTF_ID of its struct; anything else (a write, a
    narrower or misaligned load, past the 16 bytes) is an invalid ctx access."""
    from ..kernel_btf import kernel_struct_id
    from ..verifier.btf_attach import BtfPtr
    from ..verifier.types import PTR_TRUSTED, RegType

    if off < 0 or off >= BPF_NF_CTX.size or write:
        return None
    f = BPF_NF_CTX.field_at(off, 1)
    if f is None or off != f.offset or size != f.size:
        return None
    struct_name = "sk_buff" if f.name == "skb" else "nf_hook_state"
    return BtfPtr(int(RegType.PTR_TO_BTF_ID) | PTR_TRUSTED, kernel_struct_id(struct_name))


def _dev_name(name: str) -> int:
    return int.from_bytes(name.encode()[:15].ljust(16, b"\0"), "little")


class NfHookCall:
    """One call of a netfilter hook as ``nf_hook_run_bpf`` makes it: the kernel
    objects (``nf_hook_state``, ``sk_buff``, the devices, the namespace) and the
    16-byte ``bpf_nf_ctx`` pointing at them, mapped until :meth:`free`.

    ``buf`` is what the skb holds from its network or link-layer header on;
    ``data_off`` is how far into it ``skb->data`` (the network header) lies: the
    link-layer header a received packet keeps in front (``mac_header``).
    ``net_ifindex`` None leaves ``state->net`` NULL and ``network_header`` False
    leaves the offset 0, as the test run's hand-made state and skb have them."""

    def __init__(self, rt: Runtime, *, pf: int, hook: int, buf: bytes, data_off: int,
                 protocol: int, in_dev: Any = None, out_dev: Any = None, skb_dev: Any = None,
                 net_ifindex: int | None = None, network_header: bool = True) -> None:
        self.rt = rt
        self.objects: list[KernelObject] = []
        self.regions: list[Region] = []
        data = bytearray(NF_SKB_HEADROOM + len(buf) + NF_SKB_TAILROOM)
        data[NF_SKB_HEADROOM:NF_SKB_HEADROOM + len(buf)] = buf
        head = rt.memory.map(data, kind="packet", name="skb")
        self.regions.append(head)
        state = self._object("nf_hook_state", hook=hook, pf=pf)
        if net_ifindex is not None:
            state["net"] = self._object("net", ifindex=net_ifindex).addr
        devices: dict[int, int] = {}  # one net_device object per device
        for member, dev in (("in", in_dev), ("out", out_dev), ("dev", skb_dev)):
            if dev is not None and id(dev) not in devices:
                devices[id(dev)] = self._object("net_device", ifindex=dev.ifindex,
                                                name=_dev_name(dev.name)).addr
            if dev is not None and member != "dev":
                state[member] = devices[id(dev)]
        network = NF_SKB_HEADROOM + data_off
        tail = NF_SKB_HEADROOM + len(buf)
        skb = self._object(
            "sk_buff", len=len(buf) - data_off, protocol=int.from_bytes(
                protocol.to_bytes(2, "big"), "little"),
            mac_header=NF_SKB_HEADROOM if data_off else HEADER_UNSET,
            network_header=network if network_header else 0,
            transport_header=HEADER_UNSET, tail=tail,
            end=len(data) - NF_SKB_TAILROOM, head=head.base, data=head.base + network,
            truesize=len(data), skb_iif=in_dev.ifindex if in_dev is not None else 0,
            dev=devices[id(skb_dev)] if skb_dev is not None else 0)
        self.state = state
        self.skb = skb
        ctx = rt.memory.map(bytearray(struct.pack("<QQ", state.addr, skb.addr)), kind="ctx",
                            name="bpf_nf_ctx")
        self.regions.append(ctx)
        self.ctx_addr = ctx.base

    def _object(self, struct_name: str, **fields: int) -> KernelObject:
        from ..kernel_btf import KernelObject

        obj = KernelObject(self.rt, struct_name, **fields)
        self.objects.append(obj)
        return obj

    def run(self, prog: BpfProg) -> int:
        """nf_hook_run_bpf: the program's verdict (r0 as u32)."""
        return prog.run(self.ctx_addr) & 0xFFFF_FFFF

    def free(self) -> None:
        for obj in self.objects:
            obj.free()
        for region in self.regions:
            self.rt.unmap_later(region)
        self.objects.clear()
        self.regions.clear()


def _eth_type(frame: bytes) -> int:
    """eth_type_trans's protocol for an EtherType field (802.3 lengths are not IP)."""
    return int.from_bytes(frame[12:14], "big")


def nf_test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    """bpf_prog_test_run_nf, check by check."""
    from ..links.netns import current_net
    from ..prog import TestRunResult

    check_test_attr(attr)
    if attr.flags or attr.cpu or attr.batch_size:
        raise BpfError(errno.EINVAL, "netfilter test runs take no flags, cpu or batch_size")
    size = attr.data_size_in if attr.data_size_in is not None else (
        len(attr.data_in) if isinstance(attr.data_in, bytes | bytearray) else 0)
    if size < IPV4_HLEN:
        raise BpfError(errno.EINVAL, f"data_size_in {size} is shorter than an IP header")
    if size > PAGE_SIZE - NF_SKB_HEADROOM - NF_SKB_TAILROOM:  # bpf_test_init
        raise BpfError(errno.EINVAL, f"data_size_in {size} does not fit a page with "
                       "head- and tailroom")
    packet = data_in(rt, attr)
    user = ctx_init(rt, attr, NF_HOOK_STATE_SIZE)
    net = current_net(rt)
    lo = net.device_by_name("lo")
    pf, hook = NFPROTO_IPV4, int(NfInetHook.LOCAL_OUT)
    out_dev = skb_dev = None
    if user is not None:  # verify_and_copy_hook_state
        if any(user[8:NF_HOOK_STATE_SIZE]):
            raise BpfError(errno.EINVAL, "ctx_in may set only nf_hook_state's hook and pf")
        if user[1] not in (NFPROTO_IPV4, NFPROTO_IPV6):
            raise BpfError(errno.EINVAL, f"pf {user[1]} is neither NFPROTO_IPV4 nor "
                           "NFPROTO_IPV6")
        # The kernel picks the devices by the *default* hook (LOCAL_OUT), before it
        # copies the caller's hook: only ``out`` is ever set.
        out_dev = lo
        pf, hook = user[1], user[0]
    data_off = 0
    if hook != NfInetHook.LOCAL_OUT:
        if size < ETH_HLEN + IPV4_HLEN:
            raise BpfError(errno.EINVAL, "a received packet needs an Ethernet and an IP header")
        proto = _eth_type(packet)
        if proto == ETH_P_IP:
            if pf != NFPROTO_IPV4:
                raise BpfError(errno.EINVAL, "an IPv4 frame for an IPv6 hook")
        elif proto == ETH_P_IPV6:
            if size < ETH_HLEN + IPV6_HLEN:
                raise BpfError(errno.EINVAL, "an IPv6 frame shorter than its IP header")
            if pf != NFPROTO_IPV6:
                raise BpfError(errno.EINVAL, "an IPv6 frame for an IPv4 hook")
        else:
            raise BpfError(errno.EPROTO, f"EtherType {proto:#06x} is neither IPv4 nor IPv6")
        data_off = ETH_HLEN
        skb_dev = lo  # eth_type_trans(skb, net->loopback_dev)
    else:
        proto = ETH_P_IP if pf == NFPROTO_IPV4 else ETH_P_IPV6  # nfproto_eth
    call = NfHookCall(rt, pf=pf, hook=hook, buf=packet, data_off=data_off, protocol=proto,
                      out_dev=out_dev, skb_dev=skb_dev,
                      network_header=hook != NfInetHook.LOCAL_OUT)  # skb_reset_network_header
    try:
        retval, duration = run_repeat(rt, prog, call.ctx_addr, attr.repeat)
    finally:
        call.free()
    return TestRunResult(retval=retval, duration=duration)


register_prog_type(ProgTypeOps(ProgType.NETFILTER, ctx=BPF_NF_CTX, test_run=nf_test_run,
                               check_attach=attach_types_only(AttachType.NETFILTER),
                               is_valid_access=nf_is_valid_access, retval_range=(0, 1)))
