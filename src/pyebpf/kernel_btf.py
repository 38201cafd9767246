"""The kernel's own BTF ("vmlinux") for the kernel pyebpf simulates.

A real kernel describes its structs in ``/sys/kernel/btf/vmlinux``; BPF programs
name them by BTF id (``attach_btf_id`` of struct_ops and tracing programs,
``btf_vmlinux_value_type_id`` of struct_ops maps) and the verifier walks them
when a program reads through a ``PTR_TO_BTF_ID``. pyebpf's kernel has only the
structs it simulates, so its vmlinux BTF is built here, from Python
definitions (:data:`KERNEL_TYPES`): base integer types, the socket structs a
TCP congestion control reads and writes, and for every struct_ops type in
:mod:`pyebpf.struct_ops` the ops struct and its map value type
``bpf_struct_ops_<name>``.

Each Runtime exposes the result as a BTF object with id 1, as on a real kernel
(:func:`vmlinux_btf_object`), and :class:`KernelObject` lays out an instance
of one of these structs in the runtime's memory, which is what a struct_ops
program's ``struct sock *sk`` argument points at.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .btf import Btf, BtfKind
from .btf_build import BtfBuilder
from .errors import BpfError

if TYPE_CHECKING:
    from .btf_load import BtfObject
    from .memory import Region
    from .runtime import Runtime

__all__ = ["KernelObject", "kernel_btf", "kernel_type_ids", "vmlinux_btf_object"]

#: SMP_CACHE_BYTES on x86-64: ``____cacheline_aligned_in_smp``.
CACHELINE = 64
#: include/net/tcp.h.
TCP_CA_NAME_MAX = 16
#: Size of ``icsk_ca_priv`` in u64s (ICSK_CA_PRIV_SIZE is 104 bytes).
ICSK_CA_PRIV_U64 = 13


def _base_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """C integer types and the kernel's typedefs for them."""
    # The kernel's BTF names its ints as DWARF does ("short unsigned int") and gives
    # "char" no encoding (signed char is the SIGNED one); the shorter C spellings
    # stay as keys of the same types.
    for key, name, size, signed in (
            ("_Bool", "_Bool", 1, False), ("char", "char", 1, False),
            ("signed char", "signed char", 1, True), ("unsigned char", "unsigned char", 1, False),
            ("short", "short int", 2, True), ("unsigned short", "short unsigned int", 2, False),
            ("int", "int", 4, True), ("unsigned int", "unsigned int", 4, False),
            ("long", "long int", 8, True), ("unsigned long", "long unsigned int", 8, False),
            ("long long", "long long int", 8, True),
            ("long long unsigned int", "long long unsigned int", 8, False)):
        ids[key] = ids[name] = b.int_(name, size, signed=signed,
                                      encoding=4 if name == "_Bool" else 0)
    for name, target in (("__u8", "unsigned char"), ("__s8", "signed char"),
                         ("__u16", "unsigned short"), ("__s16", "short"),
                         ("__u32", "unsigned int"), ("__s32", "int"),
                         ("__u64", "long long unsigned int"), ("__s64", "long long"),
                         ("u8", "__u8"), ("s8", "__s8"), ("u16", "__u16"), ("s16", "__s16"),
                         ("u32", "__u32"), ("s32", "__s32"), ("u64", "__u64"), ("s64", "__s64"),
                         ("bool", "_Bool"), ("size_t", "unsigned long")):
        ids[name] = b.typedef(name, ids[target])
    ids["void *"] = b.ptr(0)


def _net_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """The socket structs, simplified to the fields pyebpf's TCP stack keeps, with
    the kernel's names and nesting (``tcp_sock`` begins with ``inet_connection_sock``,
    which begins with ``sock``, which begins with ``sock_common``)."""
    u8, u16, u32, u64 = ids["u8"], ids["u16"], ids["u32"], ids["u64"]
    ids["struct sock_common"] = b.struct("sock_common", [
        ("skc_daddr", ids["__u32"]), ("skc_rcv_saddr", ids["__u32"]),
        ("skc_dport", ids["__u16"]), ("skc_num", u16), ("skc_family", ids["unsigned short"]),
        ("skc_state", ids["unsigned char"])])
    ids["struct sock"] = b.struct("sock", [
        ("__sk_common", ids["struct sock_common"]), ("sk_rcvbuf", ids["int"]),
        ("sk_sndbuf", ids["int"]), ("sk_mark", u32), ("sk_pacing_status", u32),
        ("sk_pacing_rate", ids["unsigned long"]), ("sk_max_pacing_rate", ids["unsigned long"])])
    ids["struct inet_connection_sock"] = b.struct("inet_connection_sock", [
        ("icsk_inet", ids["struct sock"]), ("icsk_ca_state", u8), ("icsk_retransmits", u8),
        ("icsk_ca_priv", b.array(u64, ICSK_CA_PRIV_U64))])
    ids["struct tcp_sock"] = b.struct("tcp_sock", [
        ("inet_conn", ids["struct inet_connection_sock"]), ("snd_cwnd", u32),
        ("snd_cwnd_cnt", u32), ("snd_cwnd_clamp", u32), ("snd_ssthresh", u32),
        ("prior_cwnd", u32), ("srtt_us", u32), ("mdev_us", u32), ("packets_out", u32),
        ("retrans_out", u32), ("max_packets_out", u32), ("mss_cache", u32),
        ("delivered", u32), ("lost", u32), ("ecn_flags", u8), ("is_cwnd_limited", u8),
        ("snd_cwnd_stamp", u32), ("app_limited", u32), ("tcp_mstamp", u64)])
    ids["struct ack_sample"] = b.struct("ack_sample", [
        ("pkts_acked", u32), ("rtt_us", ids["s32"]), ("in_flight", u32)])
    ids["struct rate_sample"] = b.struct("rate_sample", [
        ("prior_mstamp", u64), ("prior_delivered", u32), ("delivered", ids["s32"]),
        ("interval_us", ids["long"]), ("rtt_us", ids["long"]), ("losses", ids["int"]),
        ("acked_sacked", u32), ("is_app_limited", ids["bool"])])
    ids["union tcp_cc_info"] = b.struct("tcp_cc_info", [
        ("vegas", b.array(u32, 4)), ("dctcp", b.array(u32, 4))], union=True)
    ids["enum tcp_ca_event"] = b.enum("tcp_ca_event", [
        ("CA_EVENT_TX_START", 0), ("CA_EVENT_CWND_RESTART", 1), ("CA_EVENT_COMPLETE_CWR", 2),
        ("CA_EVENT_LOSS", 3), ("CA_EVENT_ECN_NO_CE", 4), ("CA_EVENT_ECN_IS_CE", 5)])
    ids["struct task_struct"] = b.struct("task_struct", [
        ("pid", ids["int"]), ("tgid", ids["int"]), ("comm", b.array(ids["char"], 16))])
    ids["struct module"] = b.struct("module", [("name", b.array(ids["char"], 56))])
    lh = b.declare()
    lh_ptr = b.ptr(lh)
    ids["struct list_head"] = b.define(lh, "list_head", [("next", lh_ptr), ("prev", lh_ptr)])


def _bpf_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """``struct bpf_struct_ops_common_value`` (the head of every struct_ops map value)."""
    atomic = b.typedef("atomic_t", b.struct("", [("counter", ids["int"])]))
    refcount = b.typedef("refcount_t", b.struct("refcount_struct", [("refs", atomic)]))
    ids["refcount_t"] = refcount
    ids["enum bpf_struct_ops_state"] = b.enum("bpf_struct_ops_state", [
        ("BPF_STRUCT_OPS_STATE_INIT", 0), ("BPF_STRUCT_OPS_STATE_INUSE", 1),
        ("BPF_STRUCT_OPS_STATE_TOBEFREE", 2), ("BPF_STRUCT_OPS_STATE_READY", 3)])
    ids["struct bpf_struct_ops_common_value"] = b.struct("bpf_struct_ops_common_value", [
        ("refcnt", refcount), ("state", ids["enum bpf_struct_ops_state"])])


def _iter_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """BPF iterators' types: seq_file, bpf_iter_meta, bpf_map, the targets' ctx
    structs and ``bpf_iter_<target>`` functions (pyebpf.links.iter)."""
    from .links.iter import add_iter_btf

    add_iter_btf(b, ids)


def _test_run_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """net/bpf/test_run.c's ``struct prog_test_ref_kfunc`` (and the members it nests):
    the kernel's own test object, the type of the ``__kptr`` fields the kernel's
    map_kptr selftests store (it has a destructor, so referenced kptrs may hold it)."""
    ids["struct prog_test_member1"] = m1 = b.struct("prog_test_member1", [("a", ids["int"])])
    ids["struct prog_test_member"] = memb = b.struct("prog_test_member", [
        ("m", m1), ("c", ids["int"])])
    ref = b.declare()
    ids["struct prog_test_ref_kfunc"] = b.define(ref, "prog_test_ref_kfunc", [
        ("a", ids["int"]), ("b", ids["int"]), ("memb", memb), ("next", b.ptr(ref)),
        ("cnt", ids["refcount_t"])])


def _skb_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """``struct sk_buff`` (with ``struct net_device`` and ``struct net``): the members
    pyebpf's packet path fills, at the offsets Linux 6.18 x86-64 has them (224
    bytes), so a program reading ``skb->len`` through a PTR_TO_BTF_ID (netfilter's
    ``ctx->skb``) reads what the kernel's would. The netfilter hook adds
    ``struct nf_hook_state`` and ``struct bpf_nf_ctx`` (pyebpf.links.netfilter)."""
    if "struct sk_buff" in ids:  # another family defined it first: share it
        return
    u16, u32 = ids["u16"], ids["u32"]
    uint, ushort = ids["unsigned int"], ids["unsigned short"]
    ids["struct net"] = b.struct("net", [("ifindex", ids["int"])])
    # Members in offset order: btf_struct_walk stops at the first one past the access.
    ids["struct net_device"] = b.struct("net_device", [
        ("mtu", uint, 448), ("flags", uint, 1408), ("ifindex", ids["int"], 1792),
        ("name", b.array(ids["char"], 16), 2240), ("type", ushort, 4288)], size=2496)
    head_ptr = b.ptr(ids["unsigned char"])
    skb = b.declare()
    skb_ptr = b.ptr(skb)
    # As the kernel nests them: ``dev`` shares an anonymous union with dev_scratch,
    # which is why walking to it from a trusted sk_buff gives an untrusted pointer.
    dev_union = b.struct("", [("dev", b.ptr(ids["struct net_device"])),
                              ("dev_scratch", ids["unsigned long"])], union=True)
    links = b.struct("", [("next", skb_ptr), ("prev", skb_ptr), ("", dev_union)])
    head_union = b.struct("", [("", links), ("list", ids["struct list_head"])], union=True)
    # The headers group (struct_group: a union of an anonymous and a ``headers`` view),
    # pkt_type to mac_header, bitfields first.
    u8 = ids["u8"]
    headers = b.struct("", [*_bits(SKB_FLAG_BITS, u8, 0), *[
        (name, t, 8 * off) for name, t, off in (
            ("tc_index", u16, 4), ("alloc_cpu", u16, 6), ("csum", u32, 8),
            ("priority", u32, 12), ("skb_iif", ids["int"], 16), ("hash", u32, 20),
            ("vlan_proto", ids["__u16"], 24), ("vlan_tci", u16, 26), ("napi_id", uint, 28),
            ("secmark", u32, 32), ("mark", u32, 36), ("inner_protocol", ids["__u16"], 40),
            ("inner_transport_header", u16, 42), ("inner_network_header", u16, 44),
            ("inner_mac_header", u16, 46), ("protocol", ids["__u16"], 48),
            ("transport_header", u16, 50), ("network_header", u16, 52),
            ("mac_header", u16, 54))]], size=56)
    headers_union = b.struct("", [("", headers), ("headers", headers)], size=56, union=True)
    destructor = b.ptr(b.func_proto(0, [("skb", skb_ptr)]))
    ids["struct skb_ext"] = skb_ext = b.struct("skb_ext", [("refcnt", ids["refcount_t"])])
    ids["struct sk_buff"] = b.define(skb, "sk_buff", [
        ("", head_union, 0), ("sk", b.ptr(ids["struct sock"]), 192),
        ("tstamp", ids["s64"], 256), ("cb", b.array(ids["char"], 48), 320),
        ("_skb_refdst", ids["unsigned long"], 704), ("destructor", destructor, 768),
        ("_nfct", ids["unsigned long"], 832), ("len", uint, 896), ("data_len", uint, 928),
        ("mac_len", u16, 960), ("hdr_len", u16, 976), ("queue_mapping", u16, 992),
        *_bits(SKB_CLONED_BITS, u8, 1008), ("active_extensions", u8, 1016),
        ("", headers_union, 1024), ("tail", uint, 1472),
        ("end", uint, 1504),
        ("head", head_ptr, 1536), ("data", head_ptr, 1600), ("truesize", uint, 1664),
        ("users", ids["refcount_t"], 1696), ("extensions", b.ptr(skb_ext), 1728)],
        size=224)


#: sk_buff's bitfields (name, bits), packed from bit 0 as the kernel declares them: the
#: byte holding ``cloned`` ..., and the four bytes from ``pkt_type`` on.
SKB_CLONED_BITS = (("cloned", 1), ("nohdr", 1), ("fclone", 2), ("peeked", 1),
                   ("head_frag", 1), ("pfmemalloc", 1), ("pp_recycle", 1))
SKB_FLAG_BITS = (("pkt_type", 3), ("ignore_df", 1), ("dst_pending_confirm", 1),
                 ("ip_summed", 2), ("ooo_okay", 1), ("tstamp_type", 2), ("tc_at_ingress", 1),
                 ("tc_skip_classify", 1), ("remcsum_offload", 1), ("csum_complete_sw", 1),
                 ("csum_level", 2), ("inner_protocol_type", 1), ("l4_hash", 1), ("sw_hash", 1),
                 ("no_fcs", 1), ("encapsulation", 1), ("encap_hdr_csum", 1), ("csum_valid", 1),
                 ("nf_trace", 1), ("redirected", 1), ("from_ingress", 1), ("nf_skip_egress", 1),
                 ("slow_gro", 1), ("unreadable", 1))


def _bits(fields: tuple[tuple[str, int], ...], base: int,
          start: int) -> list[tuple[str, int, int, int]]:
    """Bitfield members ``(name, type, bit offset, bits)`` packed from bit ``start``."""
    out, bit = [], start
    for name, n in fields:
        out.append((name, base, bit, n))
        bit += n
    return out


def _kern_ctx_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """The other kernel ctx structs bpf_cast_to_kern_ctx returns (bpf_ctx_convert):
    XDP's ``struct xdp_buff`` with its rx/tx queue info, and kprobes' x86-64
    ``struct pt_regs``, at Linux 6.18's offsets (pyebpf.kfuncs.cast fills them)."""
    ulong, u32 = ids["unsigned long"], ids["u32"]
    dev = b.ptr(ids["struct net_device"])
    ids["struct xdp_mem_info"] = mem = b.struct("xdp_mem_info", [("type", u32), ("id", u32)])
    ids["struct xdp_rxq_info"] = rxq = b.struct("xdp_rxq_info", [
        ("dev", dev), ("queue_index", u32), ("reg_state", u32), ("mem", mem),
        ("frag_size", u32)], align=CACHELINE)
    ids["struct xdp_txq_info"] = txq = b.struct("xdp_txq_info", [("dev", dev)])
    void_ptr = ids["void *"]
    frame = b.struct("", [("frame_sz", u32), ("flags", u32)])
    ids["struct xdp_buff"] = b.struct("xdp_buff", [
        ("data", void_ptr), ("data_end", void_ptr), ("data_meta", void_ptr),
        ("data_hard_start", void_ptr), ("rxq", b.ptr(rxq)), ("txq", b.ptr(txq)),
        ("", frame)])
    ids["struct pt_regs"] = b.struct("pt_regs", [(name, ulong) for name in (
        "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
        "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss")])


def _netfilter_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    from .progs.netfilter import add_netfilter_btf

    add_netfilter_btf(b, ids)


def _sock_cast_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """The structs the bpf_skc_to_* casts return (tcp6_sock, udp6_sock, unix_sock,
    the timewait and request mini-sockets, mptcp_sock: pyebpf.helpers.skc)."""
    from .helpers.skc import add_sock_cast_btf

    add_sock_cast_btf(b, ids)


def _kernel_func_types(b: BtfBuilder, ids: dict[str, int]) -> None:
    """The kernel functions fentry/fexit/fmod_ret/LSM programs attach to, and the
    ``btf_trace_<tp>`` typedefs of BTF raw tracepoints (pyebpf.kernel_funcs)."""
    from .kernel_funcs import add_kernel_func_btf

    add_kernel_func_btf(b, ids)


#: Builders of the kernel's types, in order; struct_ops types add theirs after these.
KERNEL_TYPES: tuple[Callable[[BtfBuilder, dict[str, int]], None], ...] = (
    _base_types, _net_types, _bpf_types, _iter_types, _test_run_types, _skb_types,
    _kern_ctx_types, _netfilter_types, _kernel_func_types, _sock_cast_types)


@lru_cache(maxsize=1)
def _build() -> tuple[bytes, dict[str, int]]:
    from .struct_ops import struct_ops_types

    b = BtfBuilder()
    ids: dict[str, int] = {}
    for add in KERNEL_TYPES:
        add(b, ids)
    for st in struct_ops_types().values():
        st.add_btf(b, ids)
        value = b.struct(f"bpf_struct_ops_{st.name}", [
            ("common", ids["struct bpf_struct_ops_common_value"]),
            ("data", ids[f"struct {st.name}"], 8 * CACHELINE)], align=CACHELINE)
        ids[f"struct bpf_struct_ops_{st.name}"] = value
    return b.encode(), ids


def kernel_btf() -> Btf:
    """The parsed vmlinux BTF (built once per process)."""
    return _parsed()


@lru_cache(maxsize=1)
def _parsed() -> Btf:
    return Btf.parse(_build()[0])


def kernel_type_ids() -> dict[str, int]:
    """C spellings (``"struct tcp_sock"``, ``"u32"``) -> BTF id in :func:`kernel_btf`."""
    return dict(_build()[1])


def kernel_struct_id(name: str) -> int:
    """The BTF id of ``struct name`` in the kernel BTF (ENOENT when it has none)."""
    t = kernel_btf().find(name, BtfKind.STRUCT)
    if t is None:
        raise BpfError(errno.ENOENT, f"the kernel has no struct {name}")
    return t.id


def member_span(type_id: int, path: str) -> tuple[int, int]:
    """(byte offset, size) of a member path (``"a.b[2].c"``) of the kernel struct
    ``type_id``: where a KernelObject or a computed view (pyebpf.kfuncs.cast) keeps it."""
    btf = kernel_btf()
    off = btf.offsetof(type_id, path)
    tid = type_id
    for part in path.replace("]", "").split("."):
        name, *idx = part.split("[")
        tid = btf.member(tid, name).type
        for _ in idx:
            arr = btf.skip_mods_and_typedefs(tid)
            assert arr.array is not None
            tid = arr.array.type
    return off, btf.sizeof(tid)


def vmlinux_btf_object(rt: Runtime) -> BtfObject:
    """The runtime's vmlinux BTF object (created with the runtime: id 1)."""
    existing = getattr(rt, "btf_vmlinux", None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    from .btf_load import BtfObject

    obj = BtfObject(rt, kernel_btf(), _build()[0], name="vmlinux", kernel_btf=True)
    rt.register(obj)
    obj.hold()  # the kernel's own reference: vmlinux BTF is never freed
    return obj


class KernelObject:
    """An instance of a kernel struct in the runtime's memory, laid out by the kernel
    BTF: what a ``PTR_TO_BTF_ID`` argument points at. Members are read and written
    by name (``sk.snd_cwnd``, ``obj["inet_conn.icsk_ca_state"]``); ``addr`` is the
    pointer a program receives."""

    def __init__(self, rt: Runtime, struct_name: str, **fields: int) -> None:
        btf = kernel_btf()
        tid = kernel_struct_id(struct_name)
        size = btf.sizeof(tid)
        object.__setattr__(self, "_rt", rt)
        object.__setattr__(self, "_btf", btf)
        object.__setattr__(self, "type_id", tid)
        object.__setattr__(self, "struct_name", struct_name)
        region: Region = rt.memory.map(bytearray(size), kind="kernel", name=struct_name)
        object.__setattr__(self, "region", region)
        for name, value in fields.items():
            self[name] = value

    @property
    def addr(self) -> int:
        return self.region.base  # type: ignore[no-any-return]

    def _locate(self, path: str) -> tuple[int, int]:
        return member_span(self.type_id, path)

    def __getitem__(self, path: str) -> int:
        off, size = self._locate(path)
        return int.from_bytes(self.region.buf[off:off + size], "little")

    def __setitem__(self, path: str, value: int) -> None:
        off, size = self._locate(path)
        self.region.buf[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(
            size, "little")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except BpfError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def free(self) -> None:
        """Unmap the object (programs still running keep it until they end)."""
        self._rt.unmap_later(self.region)

    def __repr__(self) -> str:
        return f"<KernelObject struct {self.struct_name} at {self.addr:#x}>"
