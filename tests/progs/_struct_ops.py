"""Building struct_ops programs and maps for the struct_ops tests (maps/ and progs/)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pyebpf import Cmd, Insn, MapCreateAttr, MapElemAttr, MapType, ProgLoadAttr, ProgType, bpf
from pyebpf.attr import BtfLoadAttr
from pyebpf.btf_build import BtfBuilder
from pyebpf.isa.asm import asm
from pyebpf.kernel_btf import kernel_btf, kernel_struct_id
from pyebpf.maps.struct_ops import DATA_OFF
from pyebpf.runtime import Runtime
from pyebpf.struct_ops import struct_ops_type
from pyebpf.uapi import MapFlags

TCP = "tcp_congestion_ops"
TESTMOD = "bpf_testmod_ops"


def tcp_off(path: str) -> int:
    return kernel_btf().offsetof(kernel_struct_id("tcp_sock"), path)


def ssthresh_prog() -> list[Insn]:
    """u32 ssthresh(struct sock *sk) { return max(tcp_sk(sk)->snd_cwnd >> 1, 2); }"""
    return asm(f"""
        ldxdw %r2, [%r1]
        ldxw %r0, [%r2+{tcp_off('snd_cwnd')}]
        rsh %r0, 1
        jge %r0, 2, +1
        mov %r0, 2
        exit
    """)


def cong_avoid_prog() -> list[Insn]:
    """void cong_avoid(struct sock *sk, u32 ack, u32 acked) { tp->snd_cwnd += acked; }"""
    off = tcp_off("snd_cwnd")
    return asm(f"""
        ldxdw %r2, [%r1]
        ldxdw %r3, [%r1+16]
        ldxw %r4, [%r2+{off}]
        add %r4, %r3
        stxw [%r2+{off}], %r4
        exit
    """)


def undo_cwnd_prog() -> list[Insn]:
    """u32 undo_cwnd(struct sock *sk) { return tp->snd_cwnd; }"""
    return asm(f"""
        ldxdw %r2, [%r1]
        ldxw %r0, [%r2+{tcp_off('snd_cwnd')}]
        exit
    """)


def load_struct_ops(rt: Runtime, type_name: str, member: str, insns: Sequence[Insn], *,
                    license: str = "GPL", member_idx: int | None = None,
                    attach_btf_id: int | None = None, log: bool = False) -> int:
    st = struct_ops_type(type_name)
    assert st is not None
    idx = st.member_index(member) if member_idx is None else member_idx
    extra: dict[str, object] = {"log_level": 1, "log_size": 1 << 16} if log else {}
    return bpf(Cmd.PROG_LOAD, ProgLoadAttr(  # type: ignore[no-any-return]
        prog_type=ProgType.STRUCT_OPS, insns=list(insns), license=license,
        expected_attach_type=idx,
        attach_btf_id=st.type_id if attach_btf_id is None else attach_btf_id,
        **extra), runtime=rt)  # type: ignore[arg-type]


def user_btf(rt: Runtime) -> int:
    """Some program BTF: a struct_ops map needs a (user) btf_fd, as libbpf passes."""
    b = BtfBuilder()
    b.int_("int", 4, signed=True)
    return int(bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=b.encode()), runtime=rt))


def create_map(rt: Runtime, type_name: str, *, link: bool = False, name: str = "ops",
               **kw: object) -> int:
    st = struct_ops_type(type_name)
    assert st is not None
    fields: dict[str, object] = {
        "key_size": 4, "value_size": st.value_type.size, "max_entries": 1,
        "map_flags": int(MapFlags.LINK) if link else 0,
        "btf_vmlinux_value_type_id": st.value_type_id, "btf_fd": user_btf(rt),
        "map_name": name, **kw}
    return int(bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.STRUCT_OPS, **fields),
                   runtime=rt))  # type: ignore[arg-type]


def value(type_name: str, progs: dict[str, int], **data: bytes | int) -> bytes:
    """The map value: program fds in function members, raw bytes or ints elsewhere."""
    st = struct_ops_type(type_name)
    assert st is not None
    out = bytearray(st.value_type.size)
    btf = st.btf
    for name, fd in progs.items():
        off = DATA_OFF + btf.offsetof(st.type_id, name)
        struct.pack_into("<Q", out, off, fd)
    for name, v in data.items():
        off = DATA_OFF + btf.offsetof(st.type_id, name)
        raw = v if isinstance(v, bytes) else v.to_bytes(
            btf.sizeof(btf.member(st.type_id, name).type), "little")
        out[off:off + len(raw)] = raw
    return bytes(out)


def update(rt: Runtime, map_fd: int, val: bytes, *, key: int = 0, flags: int = 0) -> None:
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=map_fd, key=key.to_bytes(4, "little"),
                                         value=val, flags=flags), runtime=rt)


def lookup(rt: Runtime, map_fd: int, key: int = 0) -> bytes:
    return bytes(bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=map_fd,
                                                      key=key.to_bytes(4, "little")),
                     runtime=rt))


def tcp_cc(rt: Runtime, name: str = "pyebpf_cc", *, link: bool = False,
           with_cong_avoid: bool = True) -> tuple[int, dict[str, int]]:
    """A congestion control map updated with ssthresh/cong_avoid/undo_cwnd programs."""
    progs = {"ssthresh": int(load_struct_ops(rt, TCP, "ssthresh", ssthresh_prog())),
             "undo_cwnd": int(load_struct_ops(rt, TCP, "undo_cwnd", undo_cwnd_prog()))}
    if with_cong_avoid:
        progs["cong_avoid"] = int(load_struct_ops(rt, TCP, "cong_avoid", cong_avoid_prog()))
    fd = create_map(rt, TCP, link=link, name=name[:15])
    update(rt, fd, value(TCP, progs, name=name.encode()))
    return fd, progs
