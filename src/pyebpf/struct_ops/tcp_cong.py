"""``struct tcp_congestion_ops``: TCP congestion control in BPF (net/ipv4/bpf_tcp_ca.c).

The subsystem side as the kernel has it:

- ``init_member``: ``flags`` must be within TCP_CONG_MASK, ``name`` must be a
  valid object name (bpf_obj_name_cpy > 0); every other data member must be 0.
- ``get_info`` can't be implemented in BPF (ENOTSUPP when a program is loaded
  for it: "attach to unsupported member").
- ``validate`` (tcp_validate_congestion_control): ``ssthresh``, ``undo_cwnd``
  and one of ``cong_avoid``/``cong_control`` are required (EINVAL).
- ``reg`` (tcp_register_congestion_control): a name already registered is
  EEXIST; the kernel's built-in "reno" and "cubic" are always there.
- ``update`` (tcp_update_congestion_control): the new table must carry the
  name of the one it replaces (EINVAL).
- Programs get ``struct sock *`` arguments as ``tcp_sock`` pointers
  (bpf_tcp_ca_is_valid_access promotes them) and may write only a few
  ``tcp_sock`` fields (bpf_tcp_ca_btf_struct_access).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..btf import Btf, BtfMember
from ..errors import BpfError
from ..syscall import obj_name_cpy
from . import StructOpsData, StructOpsType, register_struct_ops

if TYPE_CHECKING:
    from ..btf_build import BtfBuilder
    from ..runtime import Runtime

__all__ = ["BUILTIN_CONGESTION_CONTROLS", "TCP_CONG_MASK", "TcpCongestionOps"]

#: include/net/tcp.h: TCP_CONG_NON_RESTRICTED | TCP_CONG_NEEDS_ECN | TCP_CONG_NEEDS_ACCECN.
TCP_CONG_MASK = 0x1 | 0x2 | 0x4
#: Congestion controls every kernel has (built in, not BPF).
BUILTIN_CONGESTION_CONTROLS = ("reno", "cubic")
#: tcp_sock fields a congestion control program may write (bpf_tcp_ca_btf_struct_access):
#: (member path in struct tcp_sock).
WRITABLE_TCP_SOCK = ("inet_conn.icsk_inet.sk_pacing_rate",
                     "inet_conn.icsk_inet.sk_pacing_status", "inet_conn.icsk_ca_priv",
                     "snd_cwnd", "snd_cwnd_cnt", "snd_cwnd_stamp", "snd_ssthresh",
                     "ecn_flags", "app_limited")


class TcpCongestionOps(StructOpsType):
    name = "tcp_congestion_ops"
    unsupported = frozenset({"get_info"})

    def add_btf(self, b: BtfBuilder, ids: dict[str, int]) -> None:
        sk = b.ptr(ids["struct sock"])
        u32, void = ids["u32"], 0

        def fn(ret: int, *params: tuple[str, int]) -> int:
            return b.ptr(b.func_proto(ret, [("sk", sk), *params]))

        ids["struct tcp_congestion_ops"] = b.struct("tcp_congestion_ops", [
            ("ssthresh", fn(u32)),
            ("cong_avoid", fn(void, ("ack", u32), ("acked", u32))),
            ("set_state", fn(void, ("new_state", ids["u8"]))),
            ("cwnd_event", fn(void, ("ev", ids["enum tcp_ca_event"]))),
            ("in_ack_event", fn(void, ("flags", u32))),
            ("pkts_acked", fn(void, ("sample", b.ptr(b.const(ids["struct ack_sample"]))))),
            ("min_tso_segs", fn(u32)),
            ("cong_control", fn(void, ("ack", u32), ("flag", ids["int"]),
                                ("rs", b.ptr(b.const(ids["struct rate_sample"]))))),
            ("undo_cwnd", fn(u32)),
            ("sndbuf_expand", fn(u32)),
            ("get_info", fn(ids["size_t"], ("ext", u32), ("attr", b.ptr(ids["int"])),
                            ("info", b.ptr(ids["union tcp_cc_info"])))),
            ("name", b.array(ids["char"], 16)),
            ("owner", b.ptr(ids["struct module"])),
            ("list", ids["struct list_head"]),
            ("key", u32),
            ("flags", u32),
            ("init", fn(void)),
            ("release", fn(void)),
        ], align=64)

    # -- verifier -----------------------------------------------------------------------
    def ctx_arg_btf_id(self, arg_struct_id: int) -> int:
        from ..kernel_btf import kernel_struct_id

        if arg_struct_id == kernel_struct_id("sock"):
            return kernel_struct_id("tcp_sock")
        return arg_struct_id

    def btf_struct_access(self, struct_id: int, off: int, size: int) -> str | None:
        from ..kernel_btf import kernel_struct_id

        if struct_id != kernel_struct_id("tcp_sock"):
            return "only read is supported"
        btf = self.btf
        for path in WRITABLE_TCP_SOCK:
            start = btf.offsetof(struct_id, path)
            end = start + _member_size(btf, struct_id, path)
            if start <= off < end if path.endswith("icsk_ca_priv") else off == start:
                if off + size > end:
                    return (f"write access at off {off} with size {size} beyond the member "
                            f"of tcp_sock ended at {end}")
                return None
        return f"no write support to tcp_sock at off {off}"

    # -- subsystem ----------------------------------------------------------------------
    def init_member(self, member: BtfMember, kdata: StructOpsData, udata: bytes) -> int:
        off = member.bit_offset // 8
        if member.name == "flags":
            flags = int.from_bytes(udata[off:off + 4], "little")
            if flags & ~TCP_CONG_MASK:
                raise BpfError(errno.EINVAL, f"tcp_congestion_ops flags {flags:#x} outside "
                               f"TCP_CONG_MASK {TCP_CONG_MASK:#x}")
            kdata.raw[off:off + 4] = udata[off:off + 4]
            return 1
        if member.name == "name":
            raw = udata[off:off + 16]
            name = obj_name_cpy(raw)  # EINVAL for bad characters / no NUL
            if not name:
                raise BpfError(errno.EINVAL, "a congestion control needs a name")
            kdata.raw[off:off + 16] = raw
            return 1
        return 0

    def validate(self, kdata: StructOpsData) -> None:
        if not (kdata.has("ssthresh") and kdata.has("undo_cwnd")
                and (kdata.has("cong_avoid") or kdata.has("cong_control"))):
            raise BpfError(errno.EINVAL, f"{kdata.key} does not implement required ops")

    def reg(self, kdata: StructOpsData) -> None:
        self.validate(kdata)
        if kdata.key in BUILTIN_CONGESTION_CONTROLS or kdata.key in self._registry(
                kdata.runtime):
            raise BpfError(errno.EEXIST, f"{kdata.key} already registered or non-unique key")
        super().reg(kdata)

    def update(self, new: StructOpsData, old: StructOpsData) -> None:
        self.validate(new)
        existing = self._registry(new.runtime).get(old.key)
        if existing is None or new.key != old.key:
            raise BpfError(errno.EINVAL, f"{new.key} not registered or non-unique key")
        if existing is not old:
            raise BpfError(errno.EINVAL, "invalid old congestion control algorithm to replace")
        self.unreg(old)
        super().reg(new)

    def available(self, rt: Runtime) -> list[str]:
        """net.ipv4.tcp_available_congestion_control: built-in ones, then BPF ones."""
        return [*BUILTIN_CONGESTION_CONTROLS, *self._registry(rt)]


def _member_size(btf: Btf, struct_id: int, path: str) -> int:
    tid = struct_id
    for part in path.split("."):
        tid = btf.member(tid, part).type
    return btf.sizeof(tid)


register_struct_ops(TcpCongestionOps())
