"""Memory instructions: ``check_mem_access`` and everything it dispatches to.

Loads, stores, atomics and the legacy packet loads, checked per pointer type:
the stack (slot tracking, spills and fills), the ctx (the program type's
``is_valid_access``), map values and keys (bounds with variable offsets),
packets (the range proven against ``data_end``), and the rest.
"""

from __future__ import annotations

import contextlib
import errno
from typing import TYPE_CHECKING, Any

from ..errors import ENOTSUPP
from ..isa.insn import Insn
from ..uapi import MapType, ProgType
from . import scalar as S
from ._ints import S64_MIN
from .dynptr import destroy_if_dynptr_stack_slot
from .precision import mark_chain_precision, stack_access_flags
from .state import (
    BPF_MAX_VAR_OFF,
    BPF_REG_SIZE,
    DST_OP,
    DST_OP_NO_MARK,
    MAX_BPF_STACK,
    SRC_OP,
    FuncState,
    RegState,
    SlotType,
)
from .tnum import tnum_add, tnum_const, tnum_is_aligned, tnum_is_const, tnum_strn
from .types import (
    MEM_ALLOC,
    MEM_RDONLY,
    PTR_MAYBE_NULL,
    PTR_UNTRUSTED,
    RegType,
    base_type,
    reg_type_str,
)

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["check_atomic", "check_ld_abs", "check_load", "check_map_access",
           "check_mem_access", "check_store_imm", "check_store_reg"]

READ, WRITE = False, True
SIZES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
_ALIGN_DESC = {
    RegType.PTR_TO_FLOW_KEYS: "flow keys ", RegType.PTR_TO_MAP_KEY: "key ",
    RegType.PTR_TO_MAP_VALUE: "value ", RegType.PTR_TO_CTX: "context ",
    RegType.PTR_TO_STACK: "stack ", RegType.PTR_TO_SOCKET: "sock ",
    RegType.PTR_TO_SOCK_COMMON: "sock_common ", RegType.PTR_TO_TCP_SOCK: "tcp_sock ",
    RegType.PTR_TO_XDP_SOCK: "xdp_sock ",
}
_SPILLABLE = {RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_STACK, RegType.PTR_TO_CTX,
              RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET_END,
              RegType.PTR_TO_FLOW_KEYS, RegType.CONST_PTR_TO_MAP, RegType.PTR_TO_SOCKET,
              RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_XDP_SOCK,
              RegType.PTR_TO_BTF_ID, RegType.PTR_TO_BUF, RegType.PTR_TO_MEM,
              RegType.PTR_TO_FUNC, RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_ARENA}
_SK_TYPES = {RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK,
             RegType.PTR_TO_XDP_SOCK}
_MISMATCH_STRICT = {RegType.PTR_TO_CTX, RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON,
                    RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_XDP_SOCK, RegType.PTR_TO_BTF_ID,
                    RegType.PTR_TO_ARENA}
#: ctx fields whose load yields a pointer, by field name (convert_ctx_access).
CTX_POINTER_FIELDS = {
    "data": RegType.PTR_TO_PACKET,
    "data_end": RegType.PTR_TO_PACKET_END,
    "data_meta": RegType.PTR_TO_PACKET_META,
    "sk": RegType.PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL,
    "flow_keys": RegType.PTR_TO_FLOW_KEYS,
}
#: Program types that may read packets directly, and those that may also write.
_PKT_READ = {ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_SEG6LOCAL, ProgType.SK_REUSEPORT,
             ProgType.FLOW_DISSECTOR, ProgType.CGROUP_SKB}
_PKT_RW = {ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP, ProgType.LWT_XMIT,
           ProgType.SK_SKB, ProgType.SK_MSG}


# -- entry points from do_check ---------------------------------------------------------------
def check_load(v: Verifier, insn: Insn, idx: int) -> None:
    mode = insn.code & 0xE0
    v.check_reg_arg(insn.src, SRC_OP)
    v.check_reg_arg(insn.dst, DST_OP_NO_MARK)
    src_type = v.cur.regs[insn.src].type
    check_mem_access(v, idx, insn.src, insn.off, SIZES[insn.code & 0x18], READ, insn.dst,
                     is_ldsx=mode == 0x80)
    save_aux_ptr_type(v, idx, src_type, allow_trust_mismatch=True)


def check_store_reg(v: Verifier, insn: Insn, idx: int) -> None:
    v.check_reg_arg(insn.src, SRC_OP)
    v.check_reg_arg(insn.dst, SRC_OP)
    dst_type = v.cur.regs[insn.dst].type
    check_mem_access(v, idx, insn.dst, insn.off, SIZES[insn.code & 0x18], WRITE, insn.src)
    save_aux_ptr_type(v, idx, dst_type)


def check_store_imm(v: Verifier, insn: Insn, idx: int) -> None:
    v.check_reg_arg(insn.dst, SRC_OP)
    dst_type = v.cur.regs[insn.dst].type
    check_mem_access(v, idx, insn.dst, insn.off, SIZES[insn.code & 0x18], WRITE, -1, st_imm=insn)
    save_aux_ptr_type(v, idx, dst_type)


def save_aux_ptr_type(v: Verifier, idx: int, t: int, *,
                      allow_trust_mismatch: bool = False) -> None:
    """save_aux_ptr_type: the pointer type an instruction accesses through, the same on
    every path. A load may see a BTF pointer (or untrusted memory) of different
    trust on different paths: the weakest is kept (it decides BPF_PROBE_MEM)."""
    prev = v.aux_ptr_type.get(idx)
    if prev is None:
        v.aux_ptr_type[idx] = t
    elif t != prev and (base_type(t) in _MISMATCH_STRICT or base_type(prev) in _MISMATCH_STRICT):
        mem_or_btf = (RegType.PTR_TO_MEM, RegType.PTR_TO_BTF_ID)
        if not (allow_trust_mismatch and base_type(t) in mem_or_btf
                and base_type(prev) in mem_or_btf):
            v.fail(errno.EINVAL, "same insn cannot be used with different pointers")
        merged = int(RegType.PTR_TO_MEM) if RegType.PTR_TO_MEM in (base_type(t),
                                                                    base_type(prev)) \
            else int(RegType.PTR_TO_BTF_ID)
        v.aux_ptr_type[idx] = merged | ((t | prev) & (PTR_UNTRUSTED | MEM_RDONLY))


#: convert_ctx_accesses: loads through these pointer types become BPF_PROBE_MEM(SX)
#: loads, whose fault (an address that isn't mapped) reads 0 instead of crashing.
#: Compared exactly: a trusted or RCU pointer is always valid, so plain loads.
PROBE_MEM_PTR_TYPES = frozenset({
    int(RegType.PTR_TO_BTF_ID), int(RegType.PTR_TO_BTF_ID) | PTR_UNTRUSTED,
    int(RegType.PTR_TO_BTF_ID) | MEM_ALLOC | PTR_UNTRUSTED,
    int(RegType.PTR_TO_MEM) | MEM_RDONLY | PTR_UNTRUSTED,
})


def probe_mem_insns(v: Verifier) -> frozenset[int]:
    """The loads (BPF_LDX) convert_ctx_accesses turns into BPF_PROBE_MEM/PROBE_MEMSX:
    the instruction indexes the engine runs with a fault-to-zero handler."""
    return frozenset(idx for idx, t in v.aux_ptr_type.items()
                     if t in PROBE_MEM_PTR_TYPES and v.insns[idx].code & 0x07 == 0x01)


def check_atomic(v: Verifier, insn: Insn, idx: int) -> None:
    imm = insn.imm
    size = SIZES[insn.code & 0x18]
    if imm in (0x100, 0x110):
        _check_atomic_load_store(v, insn, idx, imm == 0x100)
        return
    if imm not in (0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1):
        v.fail(errno.EINVAL, f"BPF_ATOMIC uses invalid atomic opcode {imm & 0xFF:02x}")
    if size not in (4, 8):
        v.fail(errno.EINVAL, "invalid atomic operand size")
    v.check_reg_arg(insn.src, SRC_OP)
    v.check_reg_arg(insn.dst, SRC_OP)
    if imm == 0xF1:
        v.check_reg_arg(0, SRC_OP)
        if v.is_pointer_value(0):
            v.fail(errno.EACCES, "R0 leaks addr into mem")
    if v.is_pointer_value(insn.src):
        v.fail(errno.EACCES, f"R{insn.src} leaks addr into mem")
    dreg = v.cur.regs[insn.dst]
    if dreg.type in (RegType.PTR_TO_CTX, RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META,
                     RegType.PTR_TO_PACKET_END, RegType.PTR_TO_FLOW_KEYS) or \
            base_type(dreg.type) in _SK_TYPES:
        v.fail(errno.EACCES, f"BPF_ATOMIC stores into R{insn.dst} {reg_type_str(dreg.type)} "
               "is not allowed")
    load_reg = -1
    if imm & 0x01:
        load_reg = 0 if imm == 0xF1 else insn.src
        v.check_reg_arg(load_reg, DST_OP)
    check_mem_access(v, idx, insn.dst, insn.off, size, READ, -1, strict_once=True)
    if load_reg >= 0:
        check_mem_access(v, idx, insn.dst, insn.off, size, READ, load_reg, strict_once=True)
    check_mem_access(v, idx, insn.dst, insn.off, size, WRITE, -1, strict_once=True)


def _check_atomic_load_store(v: Verifier, insn: Insn, idx: int, load: bool) -> None:
    size = SIZES[insn.code & 0x18]
    if load:
        v.check_reg_arg(insn.src, SRC_OP)
        v.check_reg_arg(insn.dst, DST_OP_NO_MARK)
        check_mem_access(v, idx, insn.src, insn.off, size, READ, insn.dst, strict_once=True)
    else:
        v.check_reg_arg(insn.src, SRC_OP)
        v.check_reg_arg(insn.dst, SRC_OP)
        check_mem_access(v, idx, insn.dst, insn.off, size, WRITE, insn.src, strict_once=True)


def check_ld_abs(v: Verifier, insn: Insn) -> None:
    if v.prog_type not in (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT):
        v.fail(errno.EINVAL, "BPF_LD_[ABS|IND] instructions not allowed for this program type")
    mode = insn.code & 0xE0
    if insn.dst or insn.off or insn.code & 0x18 == 0x18 or (mode == 0x20 and insn.src):
        v.fail(errno.EINVAL, "BPF_LD_[ABS|IND] uses reserved fields")
    v.check_reg_arg(6, SRC_OP)
    from .calls import check_resource_leak

    check_resource_leak(v, "BPF_LD_[ABS|IND]")
    regs = v.cur.regs
    if regs[6].type != RegType.PTR_TO_CTX:
        v.fail(errno.EINVAL, "at the time of BPF_LD_ABS|IND R6 != pointer to skb")
    if mode == 0x40:
        v.check_reg_arg(insn.src, SRC_OP)
    check_ptr_off_reg(v, regs[6], 6)
    for r in range(6):
        regs[r].mark_not_init()
        v.scratch(r)
    regs[0].mark_unknown()
    regs[0].subreg_def = v.insn_idx + 1


# -- check_mem_access ------------------------------------------------------------------------------
def check_mem_access(v: Verifier, idx: int, regno: int, off: int, size: int, write: bool,
                     value_regno: int, *, strict_once: bool = False, is_ldsx: bool = False,
                     st_imm: Insn | None = None) -> None:
    regs = v.cur.regs
    reg = regs[regno]
    check_ptr_alignment(v, reg, off, size, strict_once)
    off += reg.off
    t = reg.type
    base = base_type(t)
    if t == RegType.PTR_TO_MAP_KEY:
        if write:
            v.fail(errno.EACCES, f"write to change key R{regno} not allowed")
        check_mem_region_access(v, regno, off, size, reg.map.key_size, False)
        if value_regno >= 0:
            regs[value_regno].mark_unknown()
    elif base == RegType.PTR_TO_MAP_VALUE and not t & PTR_MAYBE_NULL:
        if write and value_regno >= 0 and v.is_pointer_value(value_regno):
            v.fail(errno.EACCES, f"R{value_regno} leaks addr into map")
        check_map_access_type(v, regno, off, size, write)
        check_map_access(v, regno, off, size, False)
        kptr = (map_kptr_fields(reg.map).get(off + reg.scalar.var_off.value)
                if tnum_is_const(reg.scalar.var_off) else None)
        if kptr is not None:
            check_map_kptr_access(v, idx, value_regno, off + reg.scalar.var_off.value, kptr,
                                  st_imm)
        elif not write and value_regno >= 0:
            m = reg.map
            if tnum_is_const(reg.scalar.var_off) and _map_is_rdonly(m):
                val = _map_direct_read(m, off + reg.scalar.var_off.value, size, is_ldsx)
                regs[value_regno].mark_known(val)
            else:
                regs[value_regno].mark_unknown()
    elif base == RegType.PTR_TO_MEM:
        if t & PTR_MAYBE_NULL:
            v.fail(errno.EACCES, f"R{regno} invalid mem access '{reg_type_str(t)}'")
        rdonly = bool(t & MEM_RDONLY)
        if write and rdonly:
            v.fail(errno.EACCES, f"R{regno} cannot write into {reg_type_str(t)}")
        if write and value_regno >= 0 and v.is_pointer_value(value_regno):
            v.fail(errno.EACCES, f"R{value_regno} leaks addr into mem")
        if not (rdonly and t & PTR_UNTRUSTED):  # untrusted memory is read by probes only
            check_mem_region_access(v, regno, off, size, reg.mem_size, False)
        if value_regno >= 0 and (not write or rdonly):
            regs[value_regno].mark_unknown()
    elif t == RegType.PTR_TO_CTX:
        if write and value_regno >= 0 and v.is_pointer_value(value_regno):
            v.fail(errno.EACCES, f"R{value_regno} leaks addr into ctx")
        check_ptr_off_reg(v, reg, regno)
        loaded = check_ctx_access(v, off, size, write)
        if not write and value_regno >= 0:
            dst = regs[value_regno]
            if base_type(loaded) == RegType.SCALAR_VALUE:
                dst.mark_unknown()
                s32_range = getattr(loaded, "s32_range", None)  # an LSM return value slot
                if s32_range is not None:
                    dst.scalar = S.mark_reg_s32_range(dst.scalar, *s32_range)
            else:
                dst.set_ptr(loaded)
                if loaded & PTR_MAYBE_NULL:
                    dst.id = v.new_id()
                dst.btf_id = getattr(loaded, "btf_id", 0)  # a BTF-typed argument
            dst.type = int(loaded)
    elif t == RegType.PTR_TO_STACK:
        check_stack_access_within_bounds(v, regno, off, size, write)
        if write:
            check_stack_write(v, regno, off, size, value_regno, st_imm)
        else:
            check_stack_read(v, regno, off, size, value_regno)
    elif t in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
        if write and not may_access_direct_pkt_data(v, True):
            v.fail(errno.EACCES, "cannot write into packet")
        if write and value_regno >= 0 and v.is_pointer_value(value_regno):
            v.fail(errno.EACCES, f"R{value_regno} leaks addr into packet")
        check_packet_access(v, regno, off, size, False)
        if not write and value_regno >= 0:
            regs[value_regno].mark_unknown()
    elif t == RegType.PTR_TO_FLOW_KEYS:
        if write and value_regno >= 0 and v.is_pointer_value(value_regno):
            v.fail(errno.EACCES, f"R{value_regno} leaks addr into flow keys")
        if size < 0 or off < 0 or off + size > 56:
            v.fail(errno.EACCES, f"invalid access to flow keys off={off} size={size}")
        if not write and value_regno >= 0:
            regs[value_regno].mark_unknown()
    elif t in _SK_TYPES:
        if write:
            v.fail(errno.EACCES, f"R{regno} cannot write into {reg_type_str(t)}")
        check_sock_access(v, regno, reg, off, size)
        if value_regno >= 0:
            regs[value_regno].mark_unknown()
    elif t == RegType.PTR_TO_TP_BUFFER:
        from .buf_access import check_tp_buffer_access

        check_tp_buffer_access(v, reg, regno, off, size)
        if not write and value_regno >= 0:
            regs[value_regno].mark_unknown()
    elif t == RegType.CONST_PTR_TO_MAP:
        check_ptr_to_map_access(v, regno, reg, off, size, write, value_regno)
    elif base == RegType.PTR_TO_BTF_ID and not t & PTR_MAYBE_NULL:
        from .btf_attach import check_ptr_to_btf_access

        check_ptr_to_btf_access(v, regno, reg, off, size, write, value_regno)
    elif base == RegType.PTR_TO_BUF and not t & PTR_MAYBE_NULL:
        from .buf_access import check_buffer_access

        if write and value_regno >= 0 and v.is_pointer_value(value_regno):
            v.fail(errno.EACCES, f"R{value_regno} leaks addr into buf")
        check_buffer_access(v, reg, regno, off, size, write)
        if value_regno >= 0 and (not write or t & MEM_RDONLY):
            regs[value_regno].mark_unknown()
    else:
        v.fail(errno.EACCES, f"R{regno} invalid mem access '{reg_type_str(t)}'")
    if size < BPF_REG_SIZE and value_regno >= 0 and not write:
        dst = regs[value_regno]
        if dst.type == RegType.SCALAR_VALUE:
            if is_ldsx:
                dst.scalar = S.coerce_reg_to_size_sx(dst.scalar, size)
            else:
                dst.scalar = S.coerce_reg_to_size(dst.scalar, size)


#: The kernel struct behind each map type (its ops' map_btf_id): what a program
#: reading through a map pointer reads.
MAP_STRUCT_NAME: dict[int, str] = {
    **dict.fromkeys((MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY,
                     MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.ARRAY_OF_MAPS),
                    "bpf_array"),
    **dict.fromkeys((MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                     MapType.LRU_PERCPU_HASH, MapType.HASH_OF_MAPS), "bpf_htab"),
    MapType.LPM_TRIE: "lpm_trie",
    MapType.QUEUE: "bpf_queue_stack",
    MapType.STACK: "bpf_queue_stack",
    MapType.RINGBUF: "bpf_ringbuf_map",
    MapType.USER_RINGBUF: "bpf_ringbuf_map",
    MapType.BLOOM_FILTER: "bpf_bloom_filter",
    MapType.STACK_TRACE: "bpf_stack_map",
    MapType.DEVMAP: "bpf_dtab",
    MapType.DEVMAP_HASH: "bpf_dtab",
    MapType.CPUMAP: "bpf_cpu_map",
    MapType.XSKMAP: "xsk_map",
    MapType.SOCKMAP: "bpf_stab",
    MapType.SOCKHASH: "bpf_shtab",
    MapType.REUSEPORT_SOCKARRAY: "reuseport_array",
    MapType.CGROUP_STORAGE: "bpf_cgroup_storage_map",
    MapType.PERCPU_CGROUP_STORAGE: "bpf_cgroup_storage_map",
    **dict.fromkeys((MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
                     MapType.CGRP_STORAGE), "bpf_local_storage_map"),
    MapType.STRUCT_OPS: "bpf_struct_ops_map",
    MapType.ARENA: "bpf_arena",
}
#: The pointer fields that open every one of those structs (struct bpf_map):
#: offset -> the pointed-to struct. Other fields read as scalars.
BPF_MAP_PTR_FIELDS = {0: "bpf_map_ops", 8: "bpf_map"}


def check_ptr_to_map_access(v: Verifier, regno: int, reg: RegState, off: int, size: int,
                            write: bool, value_regno: int) -> None:
    """check_ptr_to_map_access: programs with CAP_PERFMON may read ``struct bpf_map``.

    The kernel walks the map's BTF struct (btf_struct_access); without vmlinux
    BTF this knows the leading pointer fields of struct bpf_map and reads any
    other field as an unknown scalar.
    """
    tname = MAP_STRUCT_NAME.get(reg.map.map_type)
    if tname is None:
        v.fail(ENOTSUPP, f"map_ptr access not supported for map type {reg.map.map_type}")
    if not v.allow_ptr_leaks:
        v.fail(errno.EPERM, f"'struct {tname}' access is allowed only to CAP_PERFMON and "
               "CAP_SYS_ADMIN")
    if off < 0:
        v.fail(errno.EACCES, f"R{regno} is {tname} invalid negative access: off={off}")
    if write:
        v.fail(errno.EACCES, f"only read from {tname} is supported")
    if value_regno >= 0:
        dst = v.cur.regs[value_regno]
        if size == BPF_REG_SIZE and off in BPF_MAP_PTR_FIELDS:
            dst.set_ptr(RegType.PTR_TO_BTF_ID)
        else:
            dst.mark_unknown()


def _map_is_rdonly(m: Any) -> bool:
    """bpf_map_is_rdonly: frozen, and the program may not write (BPF_F_RDONLY_PROG)."""
    return bool(getattr(m, "frozen", False) and m.map_flags & (1 << 7)
                and getattr(m, "direct_value_addr", None) is not None)


def _map_direct_read(m: Any, off: int, size: int, is_ldsx: bool) -> int:
    data = m.runtime.memory.read(m.direct_value_addr() + off, size)
    val = int.from_bytes(data, "little")
    if is_ldsx:
        bits = 8 * size
        val = ((val ^ (1 << (bits - 1))) - (1 << (bits - 1))) & ((1 << 64) - 1)
    return val


def check_ptr_alignment(v: Verifier, reg: RegState, off: int, size: int,
                        strict_once: bool) -> None:
    strict = v.strict_alignment or strict_once
    t = reg.type
    if t in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
        if not strict or size == 1:
            return
        reg_off = tnum_add(reg.scalar.var_off, tnum_const(2 + reg.off + off))
        if not tnum_is_aligned(reg_off, size):
            v.fail(errno.EACCES, f"misaligned packet access off 2+{_var_off_str(reg)}"
                   f"+{reg.off}+{off} size {size}")
        return
    if t == RegType.PTR_TO_ARENA:
        return
    desc = _ALIGN_DESC.get(t, "")
    if t == RegType.PTR_TO_STACK:
        strict = True
    if not strict or size == 1:
        return
    reg_off = tnum_add(reg.scalar.var_off, tnum_const((reg.off + off) & ((1 << 64) - 1)))
    if not tnum_is_aligned(reg_off, size):
        v.fail(errno.EACCES, f"misaligned {desc}access off {_var_off_str(reg)}"
               f"+{reg.off}+{off} size {size}")


def _var_off_str(reg: RegState) -> str:
    """A pointer's variable offset in alignment messages: the number when known."""
    vo = reg.scalar.var_off
    return str(S.s64(vo.value)) if tnum_is_const(vo) else tnum_strn(vo)


def check_ptr_off_reg(v: Verifier, reg: RegState, regno: int, fixed_off_ok: bool = False) -> None:
    name = reg_type_str(reg.type)
    if reg.off < 0:
        v.fail(errno.EACCES, f"negative offset {name} ptr R{regno} off={reg.off} disallowed")
    if not fixed_off_ok and reg.off:
        v.fail(errno.EACCES, f"dereference of modified {name} ptr R{regno} off={reg.off} "
               "disallowed")
    vo = reg.scalar.var_off
    if not tnum_is_const(vo) or vo.value:
        v.fail(errno.EACCES, f"variable {name} access var_off={tnum_strn(vo)} disallowed")


def check_ctx_access(v: Verifier, off: int, size: int, write: bool) -> int:
    """The program type's is_valid_access; the type of what a load gives."""
    ops = v.ops
    loaded: int | None = None
    if ops is not None:
        if ops.is_valid_access is not None:
            loaded = ops.is_valid_access(off, size, write, v.prog)
        elif ops.ctx is not None:
            loaded = _layout_access(ops.ctx, off, size, write)
    note = getattr(loaded, "log", "")  # what btf_ctx_access logs on the way
    if note:
        v.verbose(note + "\n")
    if loaded is None or getattr(loaded, "denied", False):
        v.fail(errno.EACCES, f"invalid bpf_context access off={off} size={size}")
    # remember the offset of the last ctx byte accessed (prog->aux->max_ctx_offset)
    if v.prog.max_ctx_offset < off + size:
        v.prog.max_ctx_offset = off + size
    return loaded  # type: ignore[return-value]


def _layout_access(layout: Any, off: int, size: int, write: bool) -> int | None:
    """A default is_valid_access from a ctx layout: whole or narrower loads of
    readable fields, whole stores of writable ones; pointer fields only whole."""
    if off < 0 or size not in (1, 2, 4, 8):
        return None
    f = layout.field_at(off, size)
    if f is None:
        return None
    if write:
        return RegType.SCALAR_VALUE if f.writable and size == f.size and off == f.offset \
            else None
    if not f.readable:
        return None
    if f.pointer:
        if off != f.offset or size != f.size:
            return None
        return CTX_POINTER_FIELDS.get(f.name, RegType.SCALAR_VALUE)
    if off % size:
        return None
    return RegType.SCALAR_VALUE


def may_access_direct_pkt_data(v: Verifier, write: bool) -> bool:
    pt = v.prog_type
    if pt in _PKT_READ:
        return not write
    if pt in _PKT_RW:
        return True
    return pt == ProgType.CGROUP_SOCKOPT


def prog_may_write_packet(prog_type: int) -> bool:
    """may_access_direct_pkt_data(env, NULL, BPF_WRITE) for a program type: also
    what makes an skb dynptr writable (specialize_kfunc picks
    bpf_dynptr_from_skb_rdonly otherwise)."""
    return prog_type in _PKT_RW or prog_type == ProgType.CGROUP_SOCKOPT


def check_map_access_type(v: Verifier, regno: int, off: int, size: int, write: bool) -> None:
    reg = v.cur.regs[regno]
    m = reg.map
    flags = m.map_flags
    if write and flags & (1 << 7):  # BPF_F_RDONLY_PROG
        v.fail(errno.EACCES, f"write into map forbidden, value_size={m.value_size} off={off} "
               f"size={size}")
    if not write and flags & (1 << 8):  # BPF_F_WRONLY_PROG
        v.fail(errno.EACCES, f"read from map forbidden, value_size={m.value_size} off={off} "
               f"size={size}")


#: Sizes of the special fields a map value may hold (btf_field.size).
BTF_FIELD_SIZE = {"bpf_spin_lock": 4, "bpf_res_spin_lock": 8, "bpf_timer": 16, "bpf_wq": 16}


def check_map_access(v: Verifier, regno: int, off: int, size: int, zero_size_allowed: bool,
                     quiet: bool = False, helper: bool = False) -> None:
    """check_map_access: in the value, and clear of its special fields. A kptr
    field may only be loaded or stored whole, by the program itself."""
    reg = v.cur.regs[regno]
    check_mem_region_access(v, regno, off, size, reg.map.value_size, zero_size_allowed, quiet)
    fields = getattr(reg.map, "btf_fields", None) or {}
    start = off + reg.scalar.smin
    end = off + reg.scalar.umax + size
    for name, lo in fields.items():
        if start < lo + BTF_FIELD_SIZE.get(name, 1) and lo < end:
            v.fail(errno.EACCES, f"{name} cannot be accessed directly by load/store")
    for lo in map_kptr_fields(reg.map):
        if not (start < lo + BPF_REG_SIZE and lo < end):
            continue
        if helper:
            v.fail(errno.EACCES, "kptr cannot be accessed indirectly by helper")
        vo = reg.scalar.var_off
        if not tnum_is_const(vo):
            v.fail(errno.EACCES, "kptr access cannot have variable offset")
        if lo != off + vo.value:
            v.fail(errno.EACCES, f"kptr access misaligned expected={lo} off={off + vo.value}")
        if size != BPF_REG_SIZE:
            v.fail(errno.EACCES, "kptr access size must be BPF_DW")


#: The BTF type tags marking kptr fields (btf_find_kptr), and what each is.
KPTR_TAGS = {"kptr_untrusted": "unref", "kptr": "ref", "percpu_kptr": "percpu"}


def map_kptr_fields(m: Any) -> dict[int, tuple[str, str]]:
    """The map value's kptr fields: offset -> (kind, pointed-to struct name).

    A kptr is a pointer member whose target carries a ``kptr`` /
    ``kptr_untrusted`` / ``percpu_kptr`` type tag (btf_parse_kptr).
    """
    cached = getattr(m, "_verifier_kptr_fields", None)
    if cached is not None:
        return cached
    out: dict[int, tuple[str, str]] = {}
    obj = getattr(m, "btf_obj", None)
    tid = getattr(m, "btf_value_type_id", 0)
    if obj is not None and tid:
        _find_kptrs(obj.btf, tid, 0, out, 0)
    with contextlib.suppress(AttributeError):  # a map with __slots__: recompute next time
        m._verifier_kptr_fields = out
    return out


def _find_kptrs(btf: Any, tid: int, base: int, out: dict[int, tuple[str, str]],
                depth: int) -> None:
    from ..btf import BtfKind

    t = btf.skip_mods_and_typedefs(tid)
    if t.kind not in (BtfKind.STRUCT, BtfKind.UNION) or depth >= 8:
        return
    for mem in t.members:
        if mem.bitfield_size or mem.bit_offset % 8:
            continue
        off = base + mem.bit_offset // 8
        mt = btf.type(mem.type)
        if mt.kind is BtfKind.PTR:
            tag = btf.type(mt.type)
            if tag.kind is BtfKind.TYPE_TAG and tag.name in KPTR_TAGS:
                target = btf.skip_mods_and_typedefs(tag.type)
                out[off] = (KPTR_TAGS[tag.name], target.name)
            continue
        _find_kptrs(btf, mem.type, off, out, depth + 1)


def _map_kptr_match_type(v: Verifier, regno: int, val: RegState, m: Any,
                         field_off: int) -> None:
    """map_kptr_match_type (:mod:`.alloc`): only a pointer to the kptr's own struct."""
    from .alloc import map_kptr_field, map_kptr_match_type

    field = map_kptr_field(m, field_off)
    assert field is not None
    map_kptr_match_type(v, field, val, regno)


def check_map_kptr_access(v: Verifier, idx: int, value_regno: int, field_off: int,
                          kptr: tuple[str, str], st_imm: Insn | None) -> None:
    """check_map_kptr_access: load a kptr (a maybe-NULL pointer to its struct),
    store NULL or a matching pointer into an unreferenced one; referenced kptrs
    change only through bpf_kptr_xchg."""
    insn = v.insns[idx]
    cls = insn.code & 0x07
    if insn.code & 0xE0 != 0x60:
        v.fail(errno.EACCES, "kptr in map can only be accessed using BPF_MEM instruction mode")
    kind, target = kptr
    if cls != 0x01 and kind in ("ref", "percpu"):
        v.fail(errno.EACCES, "store to referenced kptr disallowed")
    if cls == 0x01:
        from .alloc import btf_ld_kptr_type, is_kernel_btf, map_kptr_field

        field = map_kptr_field(v.cur.regs[insn.src].map, field_off)
        assert field is not None
        dst = v.cur.regs[value_regno]
        dst.set_ptr(btf_ld_kptr_type(v, field))
        dst.id = v.new_id()
        dst.btf_id = field[2]
        dst.extra = target if is_kernel_btf(field[1]) else field[1]
    elif cls == 0x02:
        if st_imm is not None and st_imm.imm:
            v.fail(errno.EACCES, f"BPF_ST imm must be 0 when storing to kptr at off={field_off}")
    elif cls == 0x03:
        val = v.cur.regs[value_regno]
        if not (val.is_const and val.const_value == 0):
            _map_kptr_match_type(v, value_regno, val, v.cur.regs[insn.dst].map, field_off)


def _check_mem(v: Verifier, regno: int, off: int, size: int, mem_size: int,
               zero_ok: bool, quiet: bool) -> bool:
    """__check_mem_access: print why an access is outside and return False."""
    size_ok = size > 0 or (size == 0 and zero_ok)
    if off >= 0 and size_ok and off + size <= mem_size:
        return True
    if quiet:
        return False
    reg = v.cur.regs[regno]
    t = reg.type
    if t == RegType.PTR_TO_MAP_KEY:
        v.verbose(f"invalid access to map key, key_size={mem_size} off={off} size={size}\n")
    elif base_type(t) == RegType.PTR_TO_MAP_VALUE:
        v.verbose(f"invalid access to map value, value_size={mem_size} off={off} size={size}\n")
    elif t in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET_END):
        v.verbose(f"invalid access to packet, off={off} size={size}, R{regno}(id={reg.id},"
                  f"off={off},r={mem_size})\n")
    else:
        v.verbose(f"invalid access to memory, mem_size={mem_size} off={off} size={size}\n")
    return False


def check_mem_region_access(v: Verifier, regno: int, off: int, size: int, mem_size: int,
                            zero_size_allowed: bool, quiet: bool = False) -> None:
    reg = v.cur.regs[regno]
    s = reg.scalar
    fail = v.fail if not quiet else _raise_quiet
    if s.smin < 0 and (s.smin == S64_MIN or off + s.smin != _s32(off + s.smin)
                       or s.smin + off < 0):
        fail(errno.EACCES, f"R{regno} min value is negative, either use unsigned index or do a "
             "if (index >=0) check.")
    if not _check_mem(v, regno, s.smin + off, size, mem_size, zero_size_allowed, quiet):
        fail(errno.EACCES, f"R{regno} min value is outside of the allowed memory range")
    if s.umax >= BPF_MAX_VAR_OFF:
        fail(errno.EACCES, f"R{regno} unbounded memory access, make sure to bounds check any "
             "such access")
    if not _check_mem(v, regno, s.umax + off, size, mem_size, zero_size_allowed, quiet):
        fail(errno.EACCES, f"R{regno} max value is outside of the allowed memory range")


def _raise_quiet(err: int, message: str) -> None:
    from .log import VerifierAbort

    raise VerifierAbort(err, message)


def _s32(x: int) -> int:
    x &= 0xFFFF_FFFF
    return x - (1 << 32) if x >> 31 else x


def check_packet_access(v: Verifier, regno: int, off: int, size: int,
                        zero_size_allowed: bool) -> None:
    reg = v.cur.regs[regno]
    if reg.scalar.smin < 0:
        v.fail(errno.EACCES, f"R{regno} min value is negative, either use unsigned index or do a "
               "if (index >=0) check.")
    # a range below 0 (BEYOND_PKT_END: known past the end) is EINVAL, a miss EACCES
    if reg.range < 0:
        v.fail(errno.EINVAL, f"R{regno} offset is outside of the packet")
    if not _check_mem(v, regno, off, size, reg.range, zero_size_allowed, False):
        v.fail(errno.EACCES, f"R{regno} offset is outside of the packet")


#: struct bpf_tcp_sock: its size and the two u64 fields (the rest are u32).
_TCP_SOCK_END = 112
_TCP_SOCK_U64 = (80, 88)


#: ... whose upper halves bpf_tcp_sock_is_valid_access lets a u32 load read (its
#: default case) but bpf_tcp_sock_convert_ctx_access has no rewrite for.
_TCP_SOCK_UNCONVERTED = (84, 92)


def check_ctx_conversions(v: Verifier) -> None:
    """convert_ctx_accesses' failure on a verified load it can't rewrite: a u32
    load of the upper half of bpf_tcp_sock's bytes_received or bytes_acked (the
    pointer's offset is always 0: no arithmetic on a PTR_TO_TCP_SOCK)."""
    for idx in sorted(v.aux_ptr_type):
        insn = v.insns[idx]
        if base_type(v.aux_ptr_type[idx]) == RegType.PTR_TO_TCP_SOCK \
                and insn.code & 0x07 == 0x01 and insn.off in _TCP_SOCK_UNCONVERTED:
            v.fail(errno.EFAULT, "verifier bug: error during ctx access conversion (0)")


def _sock_access_ok(t: int, off: int, size: int) -> bool:
    """bpf_{sock_common,sock,tcp_sock,xdp_sock}_is_valid_access."""
    from ..progs.sock import BPF_SOCK, bpf_sock_is_valid_access

    if t == RegType.PTR_TO_SOCK_COMMON:
        # type, protocol, mark and priority are not in sock_common.
        if BPF_SOCK["type"].offset <= off < BPF_SOCK["priority"].end:
            return False
        return bpf_sock_is_valid_access(off, size, False) is not None
    if t == RegType.PTR_TO_SOCKET:
        return bpf_sock_is_valid_access(off, size, False) is not None
    if t == RegType.PTR_TO_TCP_SOCK:
        if off < 0 or off >= _TCP_SOCK_END or off % size:
            return False
        return size == (8 if off in _TCP_SOCK_U64 else 4)
    if t == RegType.PTR_TO_XDP_SOCK:
        return 0 <= off < 4 and not off % size and size == 4
    return False


def check_sock_access(v: Verifier, regno: int, reg: RegState, off: int, size: int) -> None:
    if reg.scalar.smin < 0:
        v.fail(errno.EACCES, f"R{regno} min value is negative, either use unsigned index or do a "
               "if (index >=0) check.")
    if not _sock_access_ok(reg.type, off, size):
        v.fail(errno.EACCES, f"R{regno} invalid {reg_type_str(reg.type)} access off={off} "
               f"size={size}")


# -- the stack ---------------------------------------------------------------------------------
def check_stack_access_within_bounds(v: Verifier, regno: int, off: int, size: int,
                                     write: bool) -> None:
    reg = v.cur.regs[regno]
    state = v.func(reg)
    extra = " write to" if write else " read from"
    vo = reg.scalar.var_off
    if tnum_is_const(vo):
        min_off = S.s64(vo.value) + off
        max_off = min_off + size
    else:
        if reg.scalar.smax >= BPF_MAX_VAR_OFF or reg.scalar.smin <= -BPF_MAX_VAR_OFF:
            v.fail(errno.EACCES, f"invalid unbounded variable-offset{extra} stack R{regno}")
        min_off = reg.scalar.smin + off
        max_off = reg.scalar.smax + off + size
    min_valid = -MAX_BPF_STACK if (write or v.allow_uninit_stack) else -state.allocated_stack
    # check_stack_slot_within_bounds is EACCES; starting in the stack but running
    # past its top (a helper's size) EINVAL; a negative size EFAULT.
    err = 0
    if min_off < min_valid or min_off > -1:
        err = errno.EACCES
    elif max_off > 0:
        err = errno.EINVAL
    elif size < 0:
        err = errno.EFAULT
    if err:
        if tnum_is_const(vo):
            v.fail(err, f"invalid{extra} stack R{regno} off={off} size={size}")
        v.fail(err, f"invalid variable-offset{extra} stack R{regno} var_off="
               f"{tnum_strn(vo)} off={off} size={size}")
    grow_stack(v, state, -min_off)


def grow_stack(v: Verifier, state: FuncState, size: int) -> None:
    state.grow_stack(size)
    sub = state.subprogno
    aligned = (size + 7) // 8 * 8
    if aligned > v.subprog_stack_depth.get(sub, 0):
        v.subprog_stack_depth[sub] = aligned


def check_stack_access_for_ptr_arithmetic(v: Verifier, regno: int, reg: RegState,
                                          off: int) -> None:
    """For unprivileged programs: a stack pointer must stay a valid stack address.

    ``off`` (fixed offset plus the variable part's value) is the kernel's ``int``.
    """
    off &= 0xFFFF_FFFF
    off = off - (1 << 32) if off >> 31 else off
    vo = reg.scalar.var_off
    if not tnum_is_const(vo):
        v.fail(errno.EACCES, f"R{regno} variable stack access prohibited for !root, var_off="
               f"{tnum_strn(vo)} off={off}")
    if off >= 0 or off < -MAX_BPF_STACK:
        v.fail(errno.EACCES, f"R{regno} stack pointer arithmetic goes out of range, prohibited "
               f"for !root; off={off}")


def stack_slots_mask(lo: int, hi: int) -> int:
    """The slots (bit ``spi``) holding any byte of fp offsets ``[lo, hi)``."""
    mask = 0
    for spi in range((-hi) // BPF_REG_SIZE, (-lo - 1) // BPF_REG_SIZE + 1):
        if spi >= 0:
            mask |= 1 << spi
    return mask


def _slot_index(off: int) -> tuple[int, int]:
    slot = -off - 1
    return slot, slot // BPF_REG_SIZE


def check_stack_write(v: Verifier, regno: int, off: int, size: int, value_regno: int,
                      st_imm: Insn | None) -> None:
    reg = v.cur.regs[regno]
    state = v.func(reg)
    if tnum_is_const(reg.scalar.var_off):
        off += S.s64(reg.scalar.var_off.value)
        _stack_write_fixed(v, state, off, size, value_regno, st_imm)
    else:
        _stack_write_var(v, state, reg, off, size, value_regno, st_imm)


def _save_register_state(v: Verifier, state: FuncState, spi: int, reg: RegState,
                         size: int) -> None:
    slot = state.stack[spi]
    slot.spilled = reg.copy()
    types = slot.slot_type
    for i in range(BPF_REG_SIZE, BPF_REG_SIZE - size, -1):
        types[i - 1] = SlotType.SPILL
    for i in range(BPF_REG_SIZE - size, 0, -1):
        if types[i - 1] not in (SlotType.ZERO, SlotType.INVALID):
            types[i - 1] = SlotType.MISC


def _stack_write_fixed(v: Verifier, state: FuncState, off: int, size: int, value_regno: int,
                       st_imm: Insn | None) -> None:
    slot_no, spi = _slot_index(off)
    stack_slot = state.stack[spi]
    if off % BPF_REG_SIZE == 0 and size == BPF_REG_SIZE:
        # Only a whole slot written ends what an earlier read could see.
        v.liveness.mark_write(state.frameno, 1 << spi)
    if not v.allow_ptr_leaks and stack_slot.is_spill and stack_slot.spilled is not None \
            and stack_slot.spilled.type != RegType.SCALAR_VALUE and size != BPF_REG_SIZE:
        v.fail(errno.EACCES, "attempt to corrupt spilled pointer on stack")
    destroy_if_dynptr_stack_slot(v, state, spi)
    cur = v.cur.frame
    reg = cur.regs[value_regno] if value_regno >= 0 else None
    v.scratch(-(spi + 1))
    if reg is not None and off % BPF_REG_SIZE == 0 and reg.type == RegType.SCALAR_VALUE \
            and v.bpf_capable:
        width = _reg_width(reg)
        fits = width <= 8 * size
        if fits:
            from .alu import assign_scalar_id_before_mov

            assign_scalar_id_before_mov(v, reg)
        _save_register_state(v, state, spi, reg, size)
        v.set_hist(stack_access_flags(state.frameno, spi))  # a register spill
        if not fits:
            stack_slot.spilled.id = 0  # type: ignore[union-attr]
    elif reg is None and off % BPF_REG_SIZE == 0 and st_imm is not None and v.bpf_capable:
        tmp = RegState()
        tmp.mark_known(st_imm.imm)
        _save_register_state(v, state, spi, tmp, size)
    elif reg is not None and base_type(reg.type) in _SPILLABLE:
        if size != BPF_REG_SIZE:
            v.fail(errno.EACCES, "invalid size of register spill")
        if state is not cur and reg.type == RegType.PTR_TO_STACK:
            v.fail(errno.EINVAL, "cannot spill pointers to stack into stack frame of the caller")
        _save_register_state(v, state, spi, reg, size)
        v.set_hist(stack_access_flags(state.frameno, spi))
    else:
        new_type = SlotType.MISC
        if stack_slot.spilled is not None:
            stack_slot.spilled = None
        types = stack_slot.slot_type
        if any(t == SlotType.SPILL for t in types):
            for i in range(BPF_REG_SIZE):
                if types[i] == SlotType.SPILL:
                    types[i] = SlotType.MISC
        if (reg is not None and reg.type == RegType.SCALAR_VALUE and reg.is_const
                and reg.const_value == 0) or (reg is None and st_imm is not None
                                              and st_imm.imm == 0):
            new_type = SlotType.ZERO
        for i in range(size):
            types[(slot_no - i) % BPF_REG_SIZE] = new_type


def _stack_write_var(v: Verifier, state: FuncState, reg: RegState, off: int, size: int,
                     value_regno: int, st_imm: Insn | None) -> None:
    """check_stack_write_var_off: any byte in range may be written.

    Spills in range are scrubbed to misc bytes, except a spilled zero when
    zero is written (it stays); zero bytes stay zero when zero is written.
    """
    min_off = reg.scalar.smin + off
    max_off = reg.scalar.smax + off + size
    value = v.cur.regs[value_regno] if value_regno >= 0 else None
    zero = (value is not None and value.is_const and value.const_value == 0) or (
        value is None and st_imm is not None and st_imm.imm == 0)
    if value is not None and value.is_pointer:
        v.fail(errno.EACCES, "spilled ptr in range of var-offset stack write; insn "
               f"{v.insn_idx}")
    zero_used = False
    for i in range(min_off, max_off):
        destroy_if_dynptr_stack_slot(v, state, _slot_index(i)[1])
    for i in range(min_off, max_off):
        slot_no, spi = _slot_index(i)
        slot = state.stack[spi]
        types = slot.slot_type
        b = slot_no % BPF_REG_SIZE
        v.scratch(-(spi + 1))
        if not v.allow_ptr_leaks and types[b] not in (SlotType.MISC, SlotType.ZERO):
            v.fail(errno.EINVAL, "spilled ptr in range of var-offset stack write; insn "
                   f"{v.insn_idx}, ptr off: {i}")
        spilled = slot.spilled
        if (zero and types[b] == SlotType.SPILL and slot.is_spill and spilled is not None
                and spilled.type == RegType.SCALAR_VALUE and spilled.is_const
                and spilled.const_value == 0):
            zero_used = True
            continue  # a spilled zero overwritten by zero stays a spilled zero
        # scrub_special_slot: the spill (or dynptr/iter) is gone; its bytes are data.
        slot.spilled = None
        if types[BPF_REG_SIZE - 1] in _SPECIAL_SLOTS:
            for j in range(BPF_REG_SIZE):
                if types[j] != SlotType.INVALID:
                    types[j] = SlotType.MISC
        if types[b] == SlotType.INVALID and not v.allow_uninit_stack:
            v.fail(errno.EINVAL, "uninit stack in range of var-offset write prohibited for "
                   f"!root; insn {v.insn_idx}, off: {i}")
        if zero and types[b] == SlotType.ZERO:
            zero_used = True
        else:
            types[b] = SlotType.MISC
    if zero_used:
        mark_chain_precision(v, value_regno)  # the stack stays zero because it was 0


#: Slots whose last byte marks a whole-slot object (is_stack_slot_special).
_SPECIAL_SLOTS = (SlotType.SPILL, SlotType.DYNPTR, SlotType.ITER, SlotType.IRQ_FLAG)


def _reg_width(reg: RegState) -> int:
    """get_reg_width: bits needed for the register's maximum value."""
    return reg.scalar.umax.bit_length() if reg.scalar.umax else 0


def check_stack_read(v: Verifier, regno: int, off: int, size: int, dst_regno: int) -> None:
    reg = v.cur.regs[regno]
    state = v.func(reg)
    vo = reg.scalar.var_off
    if tnum_is_const(vo):
        off += S.s64(vo.value)
        _stack_read_fixed(v, state, off, size, dst_regno)
        return
    # Variable offset: every byte in range must be initialized; the result is unknown.
    min_off = reg.scalar.smin + off
    max_off = reg.scalar.smax + off
    v.liveness.mark_read(state.frameno, v.insn_idx, stack_slots_mask(min_off, max_off + size))
    zeros = True
    for i in range(min_off, max_off + size):
        slot_no, spi = _slot_index(i)
        if spi >= len(state.stack):
            stype = SlotType.INVALID
        else:
            stype = state.stack[spi].slot_type[slot_no % BPF_REG_SIZE]
        if stype == SlotType.ZERO:
            continue
        zeros = False
        if stype in (SlotType.MISC, SlotType.SPILL):
            continue
        if stype == SlotType.INVALID and v.allow_uninit_stack:
            continue
        v.fail(errno.EACCES, f"invalid variable-offset read from stack R{regno} var_off="
               f"{tnum_strn(vo)} off={off} size={size}")
    if dst_regno >= 0:
        if zeros:
            v.cur.regs[dst_regno].mark_known(0)
        else:
            v.cur.regs[dst_regno].mark_unknown()


def _stack_read_fixed(v: Verifier, state: FuncState, off: int, size: int,
                      dst_regno: int) -> None:
    slot_no, spi = _slot_index(off)
    slot = state.stack[spi]
    types = slot.slot_type
    spilled = slot.spilled
    v.scratch(-(spi + 1))
    v.liveness.mark_read(state.frameno, v.insn_idx, 1 << spi)
    regs = v.cur.regs
    if slot.is_spill and spilled is not None:
        spill_size = 1
        i = BPF_REG_SIZE - 1
        while i > 0 and types[i - 1] == SlotType.SPILL:
            spill_size += 1
            i -= 1
        if size != BPF_REG_SIZE or spill_size != BPF_REG_SIZE:
            if spilled.type != RegType.SCALAR_VALUE:
                v.fail(errno.EACCES, "invalid size of register fill")
            if dst_regno < 0:
                return
            if size <= spill_size and _narrow_access_ok(off, size, spill_size):
                v.set_hist(stack_access_flags(state.frameno, spi))  # a fill
                subreg_def = regs[dst_regno].subreg_def
                regs[dst_regno].assign(spilled)
                regs[dst_regno].subreg_def = subreg_def
                if _reg_width(spilled) > size * 8:
                    regs[dst_regno].id = 0
            else:
                spill_cnt = zero_cnt = 0
                for i in range(size):
                    stype = types[(slot_no - i) % BPF_REG_SIZE]
                    if stype == SlotType.SPILL:
                        spill_cnt += 1
                    elif stype == SlotType.ZERO:
                        zero_cnt += 1
                    elif stype != SlotType.MISC and not (
                            stype == SlotType.INVALID and v.allow_uninit_stack):
                        v.fail(errno.EACCES, f"invalid read from stack off {off}+{i} size {size}")
                if (spill_cnt == size and spilled.is_const and spilled.const_value == 0) \
                        or zero_cnt == size:
                    regs[dst_regno].mark_known(0)
                else:
                    regs[dst_regno].mark_unknown()
            return
        if dst_regno >= 0:
            if v.bpf_capable:
                from .alu import assign_scalar_id_before_mov

                assign_scalar_id_before_mov(v, spilled)
            regs[dst_regno].assign(spilled)
            v.set_hist(stack_access_flags(state.frameno, spi))  # a fill
        elif spilled.is_pointer and not v.allow_ptr_leaks:
            v.fail(errno.EACCES, f"leaking pointer from stack off {off}")
        return
    zeros = 0
    for i in range(size):
        stype = types[(slot_no - i) % BPF_REG_SIZE]
        if stype == SlotType.MISC:
            continue
        if stype == SlotType.ZERO:
            zeros += 1
            continue
        if stype == SlotType.INVALID and v.allow_uninit_stack:
            continue
        v.fail(errno.EACCES, f"invalid read from stack off {off}+{i} size {size}")
    if dst_regno >= 0:
        if zeros == size:
            regs[dst_regno].mark_known(0)
        else:
            regs[dst_regno].mark_unknown()


def _narrow_access_ok(off: int, size: int, spill_size: int) -> bool:
    """bpf_stack_narrow_access_ok: on little-endian the narrow fill must start at
    the spill's first byte (the low bits of the spilled value)."""
    return off % BPF_REG_SIZE == 0
