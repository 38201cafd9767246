"""Calls and exits: helpers (``check_helper_call``), BPF-to-BPF calls, ``exit``.

Helper arguments are checked against the prototypes of :mod:`pyebpf.helpers`
(the same table the engine runs), the way ``check_func_arg`` does: the
register's type against the argument's compatible types, memory arguments
against the memory they point to, sizes against their bounds. After a call
r1-r5 are unreadable and r0 takes the prototype's return type.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..helpers import func_proto
from ..helpers.proto import ArgType, RetType
from ..isa.disasm import func_id_name
from ..isa.insn import Insn
from ..uapi import AttachType, FuncId, MapFlags, MapType, ProgType
from . import scalar as S
from ._ints import S64_MAX, S64_MIN
from .alloc import KPTR_XCHG_DEST_TYPES, PERCPU_BTF_PTR_TYPES
from .cfg import map_btf_field, subprog_of
from .global_func import check_global_call, check_global_return, subprog_is_global
from .mem import (
    check_map_access,
    check_map_access_type,
    check_mem_access,
    check_mem_region_access,
    check_packet_access,
    check_ptr_off_reg,
    check_stack_access_within_bounds,
    may_access_direct_pkt_data,
    stack_slots_mask,
)
from .precision import mark_chain_precision, mark_chain_precision_stack
from .state import (
    BPF_MAX_VAR_SIZ,
    BPF_REG_SIZE,
    MAX_CALL_FRAMES,
    SRC_OP,
    FuncState,
    RegState,
    SlotType,
)
from .tnum import tnum_in, tnum_is_const, tnum_range, tnum_strn
from .types import (
    MEM_ALIGNED,
    MEM_ALLOC,
    MEM_FIXED_SIZE,
    MEM_PERCPU,
    MEM_RCU,
    MEM_RDONLY,
    MEM_RINGBUF,
    MEM_UNINIT,
    MEM_WRITE,
    OBJ_RELEASE,
    PTR_MAYBE_NULL,
    PTR_TRUSTED,
    RegType,
    base_type,
    reg_type_str,
)

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["check_func_call", "check_helper_call", "check_kfunc_call", "process_exit"]

FUNC_MAX_ID = 212

R = RegType
_MEM_TYPES = (R.PTR_TO_STACK, R.PTR_TO_PACKET, R.PTR_TO_PACKET_META, R.PTR_TO_MAP_KEY,
              R.PTR_TO_MAP_VALUE, R.PTR_TO_MEM, R.PTR_TO_MEM | MEM_RINGBUF, R.PTR_TO_BUF,
              R.PTR_TO_BTF_ID | PTR_TRUSTED)
_SOCK_TYPES = (R.PTR_TO_SOCK_COMMON, R.PTR_TO_SOCKET, R.PTR_TO_TCP_SOCK, R.PTR_TO_XDP_SOCK)
#: compatible_reg_types: which register types each argument base type accepts.
COMPATIBLE: dict[int, tuple[int, ...]] = {
    ArgType.ARG_PTR_TO_MAP_KEY: _MEM_TYPES,
    ArgType.ARG_PTR_TO_MAP_VALUE: _MEM_TYPES,
    ArgType.ARG_CONST_SIZE: (R.SCALAR_VALUE,),
    ArgType.ARG_CONST_SIZE_OR_ZERO: (R.SCALAR_VALUE,),
    ArgType.ARG_CONST_ALLOC_SIZE_OR_ZERO: (R.SCALAR_VALUE,),
    ArgType.ARG_CONST_MAP_PTR: (R.CONST_PTR_TO_MAP,),
    ArgType.ARG_PTR_TO_CTX: (R.PTR_TO_CTX,),
    ArgType.ARG_PTR_TO_SOCK_COMMON: _SOCK_TYPES,
    ArgType.ARG_PTR_TO_BTF_ID_SOCK_COMMON: (*_SOCK_TYPES, R.PTR_TO_BTF_ID,
                                            R.PTR_TO_BTF_ID | PTR_TRUSTED),
    ArgType.ARG_PTR_TO_SOCKET: (R.PTR_TO_SOCKET,),
    ArgType.ARG_PTR_TO_BTF_ID: (R.PTR_TO_BTF_ID, R.PTR_TO_BTF_ID | PTR_TRUSTED,
                                R.PTR_TO_BTF_ID | (1 << 21)),
    ArgType.ARG_PTR_TO_SPIN_LOCK: (R.PTR_TO_MAP_VALUE, R.PTR_TO_BTF_ID | (1 << 19)),
    ArgType.ARG_PTR_TO_MEM: _MEM_TYPES,
    ArgType.ARG_PTR_TO_RINGBUF_MEM: (R.PTR_TO_MEM | MEM_RINGBUF,),
    ArgType.ARG_PTR_TO_FUNC: (R.PTR_TO_FUNC,),
    ArgType.ARG_PTR_TO_STACK: (R.PTR_TO_STACK,),
    ArgType.ARG_PTR_TO_CONST_STR: (R.PTR_TO_MAP_VALUE,),
    ArgType.ARG_PTR_TO_TIMER: (R.PTR_TO_MAP_VALUE,),
    ArgType.ARG_PTR_TO_DYNPTR: (R.PTR_TO_STACK, R.CONST_PTR_TO_DYNPTR),
    ArgType.ARG_KPTR_XCHG_DEST: KPTR_XCHG_DEST_TYPES,
    ArgType.ARG_PTR_TO_PERCPU_BTF_ID: PERCPU_BTF_PTR_TYPES,
}
#: Register types whose fixed and variable offsets a helper may take (check_func_arg_reg_off).
_OFF_OK = {R.PTR_TO_STACK, R.PTR_TO_PACKET, R.PTR_TO_PACKET_META, R.PTR_TO_MAP_KEY,
           R.PTR_TO_MAP_VALUE, R.PTR_TO_MEM, R.PTR_TO_MEM | MEM_RDONLY,
           R.PTR_TO_MEM | MEM_RINGBUF, R.PTR_TO_BUF, R.PTR_TO_BUF | MEM_RDONLY,
           R.PTR_TO_ARENA, R.SCALAR_VALUE}

F = FuncId
#: check_map_func_compatibility, the map's side: which helpers each map type takes.
MAP_FUNCS: dict[int, set[int]] = {
    MapType.PROG_ARRAY: {F.tail_call},
    MapType.PERF_EVENT_ARRAY: {F.perf_event_read, F.perf_event_output, F.skb_output,
                               F.perf_event_read_value, F.xdp_output},
    MapType.RINGBUF: {F.ringbuf_output, F.ringbuf_reserve, F.ringbuf_query,
                      F.ringbuf_reserve_dynptr, F.ringbuf_submit_dynptr,
                      F.ringbuf_discard_dynptr},
    MapType.USER_RINGBUF: {F.user_ringbuf_drain},
    MapType.STACK_TRACE: {F.get_stackid},
    MapType.CGROUP_ARRAY: {F.skb_under_cgroup, F.current_task_under_cgroup},
    MapType.CGROUP_STORAGE: {F.get_local_storage},
    MapType.PERCPU_CGROUP_STORAGE: {F.get_local_storage},
    MapType.DEVMAP: {F.redirect_map, F.map_lookup_elem},
    MapType.DEVMAP_HASH: {F.redirect_map, F.map_lookup_elem},
    MapType.CPUMAP: {F.redirect_map},
    MapType.XSKMAP: {F.redirect_map, F.map_lookup_elem},
    MapType.ARRAY_OF_MAPS: {F.map_lookup_elem},
    MapType.HASH_OF_MAPS: {F.map_lookup_elem},
    MapType.SOCKMAP: {F.sk_redirect_map, F.sock_map_update, F.msg_redirect_map,
                      F.sk_select_reuseport, F.map_lookup_elem, F.map_update_elem,
                      F.map_delete_elem},
    MapType.SOCKHASH: {F.sk_redirect_hash, F.sock_hash_update, F.msg_redirect_hash,
                       F.sk_select_reuseport, F.map_lookup_elem, F.map_update_elem,
                       F.map_delete_elem},
    MapType.REUSEPORT_SOCKARRAY: {F.sk_select_reuseport},
    MapType.QUEUE: {F.map_peek_elem, F.map_pop_elem, F.map_push_elem},
    MapType.STACK: {F.map_peek_elem, F.map_pop_elem, F.map_push_elem},
    MapType.SK_STORAGE: {F.sk_storage_get, F.sk_storage_delete, F.kptr_xchg},
    MapType.INODE_STORAGE: {F.inode_storage_get, F.inode_storage_delete, F.kptr_xchg},
    MapType.TASK_STORAGE: {F.task_storage_get, F.task_storage_delete, F.kptr_xchg},
    MapType.CGRP_STORAGE: {F.cgrp_storage_get, F.cgrp_storage_delete, F.kptr_xchg},
    MapType.BLOOM_FILTER: {F.map_peek_elem, F.map_push_elem},
}
#: ... and the helper's side: which map types each helper takes.
FUNC_MAPS: dict[int, set[int]] = {
    F.tail_call: {MapType.PROG_ARRAY},
    F.perf_event_read: {MapType.PERF_EVENT_ARRAY},
    F.perf_event_output: {MapType.PERF_EVENT_ARRAY},
    F.perf_event_read_value: {MapType.PERF_EVENT_ARRAY},
    F.skb_output: {MapType.PERF_EVENT_ARRAY},
    F.xdp_output: {MapType.PERF_EVENT_ARRAY},
    F.ringbuf_output: {MapType.RINGBUF},
    F.ringbuf_reserve: {MapType.RINGBUF},
    F.ringbuf_query: {MapType.RINGBUF},
    F.ringbuf_reserve_dynptr: {MapType.RINGBUF},
    F.get_stackid: {MapType.STACK_TRACE},
    F.current_task_under_cgroup: {MapType.CGROUP_ARRAY},
    F.skb_under_cgroup: {MapType.CGROUP_ARRAY},
    F.redirect_map: {MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP},
    F.sk_redirect_map: {MapType.SOCKMAP},
    F.msg_redirect_map: {MapType.SOCKMAP},
    F.sock_map_update: {MapType.SOCKMAP},
    F.sk_redirect_hash: {MapType.SOCKHASH},
    F.msg_redirect_hash: {MapType.SOCKHASH},
    F.sock_hash_update: {MapType.SOCKHASH},
    F.get_local_storage: {MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE},
    F.sk_select_reuseport: {MapType.REUSEPORT_SOCKARRAY, MapType.SOCKMAP, MapType.SOCKHASH},
    F.map_pop_elem: {MapType.QUEUE, MapType.STACK},
    F.map_peek_elem: {MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER},
    F.map_push_elem: {MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER},
    F.map_lookup_percpu_elem: {MapType.PERCPU_ARRAY, MapType.PERCPU_HASH,
                               MapType.LRU_PERCPU_HASH},
    F.sk_storage_get: {MapType.SK_STORAGE},
    F.sk_storage_delete: {MapType.SK_STORAGE},
    F.inode_storage_get: {MapType.INODE_STORAGE},
    F.inode_storage_delete: {MapType.INODE_STORAGE},
    F.task_storage_get: {MapType.TASK_STORAGE},
    F.task_storage_delete: {MapType.TASK_STORAGE},
    F.cgrp_storage_get: {MapType.CGRP_STORAGE},
    F.cgrp_storage_delete: {MapType.CGRP_STORAGE},
}
#: Helpers that take a reference the program must release (is_acquire_function).
ACQUIRE = {F.sk_lookup_tcp, F.sk_lookup_udp, F.skc_lookup_tcp, F.ringbuf_reserve,
           F.kptr_xchg}
#: is_ptr_cast_function: the result is the argument seen as another type (same reference).
PTR_CAST = {F.tcp_sock, F.sk_fullsock, F.skc_to_tcp_sock, F.skc_to_tcp6_sock,
            F.skc_to_udp6_sock, F.skc_to_mptcp_sock, F.skc_to_tcp_timewait_sock,
            F.skc_to_tcp_request_sock}
#: Helpers that may move the packet (bpf_helper_changes_pkt_data).
CHANGES_PKT_DATA = {
    F.skb_store_bytes, F.skb_change_head, F.skb_change_tail, F.skb_pull_data,
    F.skb_change_proto, F.skb_vlan_push, F.skb_vlan_pop, F.skb_adjust_room,
    F.xdp_adjust_head, F.xdp_adjust_meta, F.xdp_adjust_tail, F.msg_pull_data,
    F.msg_push_data, F.msg_pop_data, F.l3_csum_replace, F.l4_csum_replace,
    F.lwt_push_encap, F.lwt_seg6_store_bytes, F.lwt_seg6_adjust_srh,
    F.lwt_seg6_action, F.clone_redirect, F.store_hdr_opt,
}


#: Helpers whose map the kernel remembers per call site (record_func_map).
RECORD_MAP = {F.tail_call, F.map_lookup_elem, F.map_update_elem, F.map_delete_elem,
              F.map_push_elem, F.map_pop_elem, F.map_peek_elem, F.for_each_map_elem,
              F.redirect_map, F.map_lookup_percpu_elem}
#: Of those, the ones that change the map (refused on BPF_F_RDONLY_PROG maps).
MAP_WRITERS = {F.map_delete_elem, F.map_update_elem, F.map_push_elem, F.map_pop_elem}
_BPF_F_RDONLY_PROG = 1 << 7


def record_func_map(v: Verifier, meta: dict[str, Any], func_id: int, idx: int) -> None:
    """record_func_map: remember which map each map-helper call site saw.

    A call site reached with two different maps is "poisoned": the kernel
    can't specialise it (inline the lookup, or bound a tail call's index
    against one array). For a map made without CAP_BPF ("unpriv") a poisoned
    tail call is refused after the walk (:func:`check_tail_call_map_ptrs`).
    """
    if func_id not in RECORD_MAP:
        return
    m = meta["map"]
    if m is None:
        v.fail(errno.EFAULT, "verifier bug: expected map for helper call")
    if m.map_flags & _BPF_F_RDONLY_PROG and func_id in MAP_WRITERS:
        v.fail(errno.EACCES, "write into map forbidden")
    unpriv = not getattr(m, "bypass_spec_v1", v.bypass_spec_v1)
    prev = v.map_ptr_state.get(idx)
    if prev is None:
        v.map_ptr_state[idx] = (m, unpriv, False)
    else:
        v.map_ptr_state[idx] = (m, unpriv or prev[1], prev[2] or prev[0] is not m)


def check_tail_call_map_ptrs(v: Verifier) -> None:
    """do_misc_fixups: an unprivileged map's tail call must see one map only
    (its index is masked against that array's size)."""
    for idx in sorted(v.map_ptr_state):
        _m, unpriv, poison = v.map_ptr_state[idx]
        insn = v.insns[idx]
        if insn.imm == F.tail_call and insn.src == 0 and unpriv and poison:
            v.fail(errno.EINVAL, "tail_call abusing map_ptr")


def process_spin_lock(v: Verifier, regno: int, is_lock: bool) -> None:
    """process_spin_lock: bpf_spin_lock/unlock take the map value's lock field.

    One lock at a time; unlock must name the same map value (register id
    and map) that was locked.
    """
    reg = v.cur.regs[regno]
    st = v.cur
    if not tnum_is_const(reg.scalar.var_off):
        v.fail(errno.EINVAL, f"R{regno} doesn't have constant offset. bpf_spin_lock has to be "
               "at the constant offset")
    m = reg.map
    if reg.type != R.PTR_TO_MAP_VALUE or m is None:
        v.fail(errno.EINVAL, "local 'kptr' has no valid bpf_spin_lock")
    name = getattr(m, "name", "")
    if getattr(m, "btf_obj", None) is None:
        v.fail(errno.EINVAL, f"map '{name}' has to have BTF in order to use bpf_spin_lock")
    lock_off = map_btf_field(m, "bpf_spin_lock")
    if lock_off is None:
        v.fail(errno.EINVAL, f"map '{name}' has no valid bpf_spin_lock")
    val = reg.scalar.var_off.value + reg.off
    if lock_off != val:
        v.fail(errno.EINVAL, f"off {val} doesn't point to 'struct bpf_spin_lock' that is at "
               f"{lock_off}")
    if is_lock:
        if st.active_locks:
            v.fail(errno.EINVAL, "Locking two bpf_spin_locks are not allowed")
        st.active_locks += 1
        st.active_lock_id = reg.id
        st.active_lock_ptr = m
        return
    if not st.active_locks:
        v.fail(errno.EINVAL, "bpf_spin_unlock without taking a lock")
    if st.active_lock_id != reg.id or st.active_lock_ptr is not m:
        v.fail(errno.EINVAL, "bpf_spin_unlock of different lock")
    st.active_locks -= 1
    st.active_lock_id = 0
    st.active_lock_ptr = None


def _func_name(func_id: int) -> str:
    return func_id_name(func_id)


def check_helper_call(v: Verifier, insn: Insn, idx: int) -> None:
    func_id = insn.imm
    if func_id < 0 or func_id >= FUNC_MAX_ID:
        v.fail(errno.EINVAL, f"invalid func {_func_name(func_id)}#{func_id}")
    helper = func_proto(func_id, v.prog_type, cap_bpf=v.bpf_capable, cap_perfmon=v.bpf_capable,
                        expected_attach_type=v.prog.expected_attach_type)
    if helper is None:
        v.fail(errno.EINVAL, f"program of this type cannot use helper "
               f"{_func_name(func_id)}#{func_id}")
    proto = helper.proto  # type: ignore[union-attr]
    if not v.prog.gpl_compatible and proto.gpl_only:
        v.fail(errno.EINVAL, "cannot call GPL-restricted function from non-GPL compatible "
               "program")
    if getattr(proto, "might_sleep", False) and not v.prog.prog_flags & 16:
        v.fail(errno.EINVAL, "helper call might sleep in a non-sleepable prog")
    if getattr(proto, "might_sleep", False) and v.cur.active_rcu_lock:
        v.fail(errno.EINVAL, f"sleepable helper {_func_name(func_id)}#{func_id} in "
               "rcu_read_lock region")
    meta: dict[str, Any] = {"func_id": func_id, "map": None, "pkt_access": proto.pkt_access,
                            "raw_mode": False, "access_size": 0, "regno": -1,
                            "release_regno": 0, "ref_obj_id": 0, "mem_size": 0,
                            "const_map_key": -1, "subprogno": None}
    args = list(proto.args) + [0] * (5 - len(proto.args))
    for i in range(5):
        check_func_arg(v, i, meta, proto, args)
    record_func_map(v, meta, func_id, idx)
    if func_id in (F.dynptr_data, F.dynptr_write, F.dynptr_from_mem):
        from .dynptr import dynptr_helper_meta

        dynptr_helper_meta(v, func_id, meta)
    regs = v.cur.regs
    if meta["raw_mode"] and meta["access_size"]:
        for i in range(meta["access_size"]):
            check_mem_access(v, idx, meta["regno"], i, 1, True, -1)
    if func_id == F.kptr_xchg:
        if regs[2].ref_obj_id:  # the new pointer's reference moves into the field
            from .alloc import release_kptr_xchg_arg

            release_kptr_xchg_arg(v, regs[2].ref_obj_id)
    elif meta["release_regno"] and proto.args[meta["release_regno"] - 1] & 0xFF == \
            ArgType.ARG_PTR_TO_DYNPTR:
        from .dynptr import unmark_stack_slots_dynptr

        unmark_stack_slots_dynptr(v, regs[meta["release_regno"]])
    elif meta["release_regno"]:
        _release_reference(v, meta["ref_obj_id"])
    if func_id == F.tail_call:
        check_resource_leak(v, "tail_call")
    elif func_id == F.get_local_storage:
        r2 = regs[2]
        if not (r2.is_const and r2.const_value == 0):
            v.fail(errno.EINVAL, "get_local_storage() doesn't support non-zero flags")
    elif func_id == F.snprintf:
        from .const_str import check_bpf_snprintf_call

        check_bpf_snprintf_call(v)
    elif func_id == F.get_func_ip:
        _check_get_func_ip(v)
    elif func_id in (F.for_each_map_elem, F.loop, F.timer_set_callback, F.find_vma,
                     F.user_ringbuf_drain):
        _push_callback(v, insn, idx, meta)
    for r in range(6):
        regs[r].mark_not_init()
        v.scratch(r)
    r0 = regs[0]
    ret = proto.ret
    base = ret & 0xFF
    flag = ret & ~0xFF
    if base == RetType.RET_INTEGER:
        r0.mark_unknown()
    elif base == RetType.RET_VOID:
        r0.mark_not_init()
    elif base == RetType.RET_PTR_TO_MAP_VALUE:
        m = meta["map"]
        if m is None:
            v.fail(errno.EFAULT, "verifier bug: unexpected null map_ptr")
        if func_id == F.map_lookup_elem and can_elide_value_nullness(m) \
                and 0 <= meta["const_map_key"] < m.max_entries:
            flag &= ~PTR_MAYBE_NULL
        r0.set_ptr(R.PTR_TO_MAP_VALUE | flag)
        r0.map = m
        if not flag & PTR_MAYBE_NULL and map_btf_field(m, "bpf_spin_lock") is not None:
            r0.id = v.new_id()  # unlock must name the value that was locked
    elif base in (RetType.RET_PTR_TO_SOCKET, RetType.RET_PTR_TO_SOCK_COMMON,
                  RetType.RET_PTR_TO_TCP_SOCK):
        t = {RetType.RET_PTR_TO_SOCKET: R.PTR_TO_SOCKET,
             RetType.RET_PTR_TO_SOCK_COMMON: R.PTR_TO_SOCK_COMMON,
             RetType.RET_PTR_TO_TCP_SOCK: R.PTR_TO_TCP_SOCK}[base]
        r0.set_ptr(t | flag)
    elif base == RetType.RET_PTR_TO_MEM:
        r0.set_ptr(R.PTR_TO_MEM | flag)
        r0.mem_size = meta["mem_size"]
    elif base == RetType.RET_PTR_TO_MEM_OR_BTF_ID:
        # The per-CPU argument's struct (MEM_RDONLY doesn't apply to PTR_TO_BTF_ID); an
        # allocated per-CPU object's copy (an RCU argument) is the CPU's own, writable
        # (returns_cpu_specific_alloc_ptr).
        extra, btf_id, alloc = meta["ret_btf"]
        r0.set_ptr(R.PTR_TO_BTF_ID | (MEM_ALLOC | MEM_RCU if alloc else flag & ~MEM_RDONLY))
        r0.btf_id = btf_id
        r0.extra = extra
    elif func_id == F.kptr_xchg:
        from .alloc import kptr_xchg_ret

        kptr_xchg_ret(v, meta, r0)
    else:
        r0.set_ptr(R.PTR_TO_BTF_ID | flag)
        if proto.ret_btf_id:  # the kernel struct it points to (ret_btf_id)
            from ..kernel_btf import kernel_struct_id

            r0.btf_id = kernel_struct_id(proto.ret_btf_id)
    if r0.type & PTR_MAYBE_NULL:
        r0.id = v.new_id()
    if func_id in ACQUIRE or (func_id == F.map_lookup_elem and meta["map"] is not None
                              and meta["map"].map_type in (MapType.SOCKMAP, MapType.SOCKHASH)):
        rid = v.new_id()
        v.cur.refs.append((rid, idx, "ptr"))
        r0.id = rid
        r0.ref_obj_id = rid
    elif func_id in PTR_CAST:
        r0.ref_obj_id = meta["ref_obj_id"]
    elif func_id == F.dynptr_data:  # is_dynptr_ref_function: the slice dies with the dynptr
        r0.ref_obj_id = meta["ref_obj_id"]
        r0.extra = meta["dynptr_id"]
    _refine_retval_range(v, r0, func_id, meta)
    if meta["map"] is not None:
        _check_map_func_compat(v, meta["map"], func_id)
    if func_id in CHANGES_PKT_DATA or meta.get("changes_data"):
        _clear_all_pkt_pointers(v)


def _check_get_func_ip(v: Verifier) -> None:
    """check_get_func_ip: kprobes, and TRACING programs with a trampoline; every
    other type that gets a prototype (tracepoints, raw_tp, LSM ...) is ENOTSUPP."""
    from ..errors import ENOTSUPP

    pt = v.prog_type
    if pt == ProgType.TRACING:
        if v.prog.expected_attach_type not in (AttachType.TRACE_FENTRY,
                                               AttachType.TRACE_FEXIT,
                                               AttachType.MODIFY_RETURN):
            v.fail(ENOTSUPP, "func bpf_get_func_ip#173 supported only for fentry/fexit/"
                   "fmod_ret programs")
        return
    if pt == ProgType.KPROBE:
        return
    v.fail(ENOTSUPP, f"func bpf_get_func_ip#173 not supported for program type {int(pt)}")


def check_max_stack_depth(v: Verifier) -> None:
    """check_max_stack_depth: the frames a call chain nests and the stack they add up to.

    Walks the static call graph from the main program (dead code included, as
    the kernel does), each frame's stack rounded up to 16 bytes (the JIT's
    granularity).
    """
    starts = v.subprog_starts
    insns = v.insns
    nsub = len(starts) - 1
    calls: dict[int, list[int]] = {i: [] for i in range(nsub)}
    for i, insn in enumerate(insns):
        if insn.code == 0x85 and insn.src == 1:
            calls[subprog_of(v, i)].append(subprog_of(v, i + insn.imm + 1))

    def depth_of(sub: int) -> int:
        d = v.subprog_stack_depth.get(sub, 0)
        return (max(d, 1) + 15) // 16 * 16 if d else 0

    def walk(sub: int, frame: int, total: int, path: tuple[int, ...]) -> None:
        total += depth_of(sub)
        if frame >= MAX_CALL_FRAMES:
            v.fail(errno.E2BIG, f"the call stack of {frame} frames is too deep !")
        if total > 512:
            v.fail(errno.EACCES, f"combined stack size of {frame} calls is {total}. Too large")
        for callee in calls[sub]:
            if callee in path:
                continue  # recursion is caught by the walk ("back-edge" or frames)
            walk(callee, frame + 1, total, (*path, callee))

    walk(0, 1, 0, (0,))


MAX_ERRNO = 4095


def _refine_retval_range(v: Verifier, r0: RegState, func_id: int, meta: dict[str, Any]) -> None:
    """do_refine_retval_range: results bounded by a size argument or by the CPU count."""
    if r0.type != R.SCALAR_VALUE:
        return
    s = r0.scalar
    if func_id in (F.get_stack, F.get_task_stack, F.probe_read_str, F.probe_read_kernel_str,
                   F.probe_read_user_str):
        top = meta.get("msize_max", S64_MAX)
        s = S.Scalar(s.var_off, -MAX_ERRNO, top, s.umin, s.umax, -MAX_ERRNO,
                     S.s32(top), s.u32_min, s.u32_max)
    elif func_id == F.get_smp_processor_id:
        top = v.runtime.nr_cpus - 1  # nr_cpu_ids - 1
        s = S.Scalar(s.var_off, 0, top, 0, top, 0, top, 0, top)
    else:
        return
    r0.scalar, _ = S.reg_bounds_sanity_check(S.reg_bounds_sync(s), "retval")


def _check_map_func_compat(v: Verifier, m: Any, func_id: int) -> None:
    mt = int(m.map_type)
    allowed = MAP_FUNCS.get(mt)
    bad = allowed is not None and func_id not in allowed
    maps = FUNC_MAPS.get(func_id)
    if maps is not None and mt not in maps:
        bad = True
    if bad:
        v.fail(errno.EINVAL, f"cannot pass map_type {mt} into func {_func_name(func_id)}"
               f"#{func_id}")
    if func_id == F.tail_call and len(v.subprog_starts) > 2 and not v.bpf_capable:
        v.fail(errno.EINVAL, "mixing of tail_calls and bpf-to-bpf calls is not supported")


def _clear_all_pkt_pointers(v: Verifier) -> None:
    from .dynptr import reg_is_dynptr_slice_pkt

    for frame in v.cur.frames:
        for r in frame.regs:
            if r.type in (R.PTR_TO_PACKET, R.PTR_TO_PACKET_META, R.PTR_TO_PACKET_END) \
                    or reg_is_dynptr_slice_pkt(r):
                r.mark_unknown()
        for slot in frame.stack:
            sp = slot.spilled
            if slot.is_spill and sp is not None and (sp.type in (
                    R.PTR_TO_PACKET, R.PTR_TO_PACKET_META, R.PTR_TO_PACKET_END)
                    or reg_is_dynptr_slice_pkt(sp)):
                sp.mark_unknown()


def _is_null(r: RegState) -> bool:
    return r.type == R.SCALAR_VALUE and r.is_const and r.const_value == 0


def check_func_arg(v: Verifier, arg: int, meta: dict[str, Any], proto: Any,
                   args: list[int]) -> None:
    regno = arg + 1
    regs = v.cur.regs
    reg = regs[regno]
    arg_type = args[arg]
    if arg_type == ArgType.ARG_DONTCARE:
        return
    v.check_reg_arg(regno, SRC_OP)
    if arg_type == ArgType.ARG_ANYTHING:
        if v.is_pointer_value(regno):
            v.fail(errno.EACCES, f"R{regno} leaks addr into helper function")
        return
    base = arg_type & 0xFF
    if reg.type in (R.PTR_TO_PACKET, R.PTR_TO_PACKET_META, R.PTR_TO_PACKET_END) and \
            not (meta["pkt_access"] and may_access_direct_pkt_data(v, False)):
        v.fail(errno.EACCES, "helper access to the packet is not allowed")
    if not (_is_null(reg) and arg_type & PTR_MAYBE_NULL):  # NULL needs no type check
        check_reg_type(v, regno, arg_type, meta)
        if base_type(reg.type) == R.PTR_TO_BTF_ID and meta["func_id"] != F.kptr_xchg:
            from .btf_arg import check_btf_id_arg  # the struct the argument takes

            check_btf_id_arg(v, regno, arg_type, proto.arg_btf_id[arg], meta)
        if reg.type not in _OFF_OK and base_type(reg.type) != R.PTR_TO_BTF_ID:
            check_ptr_off_reg(v, reg, regno)
    if arg_type & OBJ_RELEASE and base == ArgType.ARG_PTR_TO_DYNPTR:
        from .dynptr import check_dynptr_release_arg  # the dynptr may sit at any offset

        check_dynptr_release_arg(v, regno)
        meta["release_regno"] = regno
    elif arg_type & OBJ_RELEASE:
        if not reg.ref_obj_id and not _is_null(reg):
            v.fail(errno.EINVAL, f"R{regno} must be referenced when passed to release function")
        if reg.off:
            v.fail(errno.EINVAL, f"R{regno} must have zero offset when passed to release func")
        meta["release_regno"] = regno
    if reg.ref_obj_id and base != ArgType.ARG_KPTR_XCHG_DEST:
        meta["ref_obj_id"] = reg.ref_obj_id
    if base == ArgType.ARG_CONST_MAP_PTR:
        meta["map"] = reg.map
    elif base == ArgType.ARG_PTR_TO_MAP_KEY:
        m = meta["map"]
        check_helper_mem_access(v, regno, m.key_size, False, False, meta)
        if can_elide_value_nullness(m):
            meta["const_map_key"] = _constant_map_key(v, reg, m.key_size)
    elif base == ArgType.ARG_PTR_TO_MAP_VALUE:
        if arg_type & PTR_MAYBE_NULL and _is_null(reg):
            return
        m = meta["map"]
        meta["raw_mode"] = bool(arg_type & MEM_UNINIT)
        check_helper_mem_access(v, regno, m.value_size, bool(arg_type & MEM_WRITE), False, meta)
    elif base == ArgType.ARG_PTR_TO_FUNC:
        meta["subprogno"] = reg.extra
    elif base == ArgType.ARG_PTR_TO_DYNPTR:
        from .dynptr import process_dynptr_func

        process_dynptr_func(v, regno, v.insn_idx, arg_type)
    elif base == ArgType.ARG_PTR_TO_MEM:
        meta["raw_mode"] = bool(arg_type & MEM_UNINIT)
        if arg_type & MEM_FIXED_SIZE:
            size = proto.arg_size[arg] if getattr(proto, "arg_size", None) else 0
            check_helper_mem_access(v, regno, size, bool(arg_type & MEM_WRITE), False, meta)
            if arg_type & MEM_ALIGNED:
                from .mem import check_ptr_alignment

                check_ptr_alignment(v, reg, 0, size, True)
    elif base in (ArgType.ARG_CONST_SIZE, ArgType.ARG_CONST_SIZE_OR_ZERO):
        write = bool(args[arg - 1] & MEM_WRITE)
        check_mem_size_reg(v, reg, regno, write, base == ArgType.ARG_CONST_SIZE_OR_ZERO, meta)
    elif base == ArgType.ARG_CONST_ALLOC_SIZE_OR_ZERO:
        if not tnum_is_const(reg.scalar.var_off):
            v.fail(errno.EACCES, f"R{regno} is not a known constant'")
        meta["mem_size"] = reg.scalar.var_off.value
        mark_chain_precision(v, regno)
    elif base == ArgType.ARG_PTR_TO_SPIN_LOCK:
        process_spin_lock(v, regno, meta["func_id"] == F.spin_lock)
    elif base == ArgType.ARG_KPTR_XCHG_DEST:
        from .alloc import process_kptr_func

        process_kptr_func(v, regno, meta)
    elif base == ArgType.ARG_PTR_TO_PERCPU_BTF_ID:
        if not reg.btf_id:
            v.fail(errno.EACCES, f"Helper has invalid btf_id in R{regno}")
        meta["ret_btf"] = (reg.extra, reg.btf_id, bool(reg.type & MEM_RCU))
    elif base == ArgType.ARG_PTR_TO_CONST_STR:
        from .const_str import check_reg_const_str

        check_reg_const_str(v, regno)


def can_elide_value_nullness(m: Any) -> bool:
    """A lookup with a constant in-range key can't fail in arrays. Not in an inner
    map's template: the map found at run time may have fewer entries."""
    return m.map_type in (MapType.ARRAY, MapType.PERCPU_ARRAY) \
        and not m.map_flags & MapFlags.INNER_MAP


def _constant_map_key(v: Verifier, reg: RegState, key_size: int) -> int:
    """get_constant_map_key: the key when the stack holds it as a known constant,
    zero bytes or a scalar spilled at exactly the key's size; else -1."""
    if not v.bpf_capable or reg.type != R.PTR_TO_STACK or not tnum_is_const(reg.scalar.var_off):
        return -1
    slot = -(reg.off + reg.scalar.var_off.value) - 1
    spi, off = divmod(slot, BPF_REG_SIZE)
    frame = v.func(reg)
    if not 0 <= spi < len(frame.stack):
        return -1
    stack = frame.stack[spi]
    stype = stack.slot_type
    zero_size = 0
    i = off
    while i >= 0 and stype[i] == SlotType.ZERO:
        zero_size += 1
        i -= 1
    if zero_size >= key_size:
        return 0
    sp = stack.spilled
    if stype[BPF_REG_SIZE - 1] != SlotType.SPILL or sp is None or sp.type != R.SCALAR_VALUE:
        return -1
    spill_size = 0
    i = off
    while i >= 0 and stype[i] == SlotType.SPILL:
        spill_size += 1
        i -= 1
    if spill_size != key_size or not tnum_is_const(sp.scalar.var_off):
        return -1
    mark_chain_precision_stack(v, reg.frameno, spi)  # the lookup relies on this key
    value = sp.scalar.var_off.value
    return value - (1 << 64) if value >> 63 else value  # s64, as the kernel keeps it


def check_reg_type(v: Verifier, regno: int, arg_type: int, meta: dict[str, Any]) -> None:
    reg = v.cur.regs[regno]
    compatible = COMPATIBLE.get(arg_type & 0xFF)
    if compatible is None:
        v.fail(errno.EFAULT, f"verifier bug: unsupported arg type {arg_type}")
        return
    t = reg.type
    if arg_type & MEM_RDONLY:
        t &= ~MEM_RDONLY
    if arg_type & PTR_MAYBE_NULL:
        t &= ~PTR_MAYBE_NULL
    if arg_type & 0xFF == ArgType.ARG_PTR_TO_MEM:  # a dynptr slice is plain memory here
        from .dynptr import DYNPTR_TYPE_FLAG_MASK

        t &= ~DYNPTR_TYPE_FLAG_MASK
    kptr_src = meta.get("func_id") == F.kptr_xchg and regno == 2
    if kptr_src:  # a local kptr's source may be an allocated object
        t &= ~(MEM_ALLOC | MEM_PERCPU)
    if t in compatible:
        if kptr_src:
            from .alloc import map_kptr_match_type

            map_kptr_match_type(v, meta["kptr_field"], reg, regno)
        return
    expected = ", ".join(reg_type_str(x) for x in compatible)
    v.fail(errno.EACCES, f"R{regno} type={reg_type_str(reg.type)} expected={expected}")


def check_helper_mem_access(v: Verifier, regno: int, size: int, write: bool,
                            zero_size_allowed: bool, meta: dict[str, Any] | None) -> None:
    reg = v.cur.regs[regno]
    base = base_type(reg.type)
    if base in (R.PTR_TO_PACKET, R.PTR_TO_PACKET_META):
        check_packet_access(v, regno, reg.off, size, zero_size_allowed)
    elif base == R.PTR_TO_MAP_KEY:
        if write:
            v.fail(errno.EACCES, f"R{regno} cannot write into {reg_type_str(reg.type)}")
        check_mem_region_access(v, regno, reg.off, size, reg.map.key_size, False)
    elif base == R.PTR_TO_MAP_VALUE:
        check_map_access_type(v, regno, reg.off, size, write)
        check_map_access(v, regno, reg.off, size, zero_size_allowed, helper=True)
    elif base == R.PTR_TO_MEM:
        if reg.type & MEM_RDONLY and write:
            v.fail(errno.EACCES, f"R{regno} cannot write into {reg_type_str(reg.type)}")
        check_mem_region_access(v, regno, reg.off, size, reg.mem_size, zero_size_allowed)
    elif base == R.PTR_TO_STACK:
        check_stack_range_initialized(v, regno, reg.off, size, zero_size_allowed, write, meta)
    elif base == R.PTR_TO_BUF:
        from .buf_access import check_buffer_access

        if reg.type & MEM_RDONLY and meta is not None and meta["raw_mode"]:
            v.fail(errno.EACCES, f"R{regno} cannot write into {reg_type_str(reg.type)}")
        check_buffer_access(v, reg, regno, reg.off, size, False)
    elif base == R.PTR_TO_CTX and v.prog_type == ProgType.SYSCALL:
        if size:
            check_mem_access(v, v.insn_idx, regno, size - 1, 1, write, -1)
    else:
        if zero_size_allowed and size == 0 and _is_null(reg):
            return
        v.fail(errno.EACCES, f"R{regno} type={reg_type_str(reg.type)} expected="
               f"{reg_type_str(R.PTR_TO_STACK)}")


def check_stack_range_initialized(v: Verifier, regno: int, off: int, size: int,
                                  zero_size_allowed: bool, write: bool,
                                  meta: dict[str, Any] | None) -> None:
    reg = v.cur.regs[regno]
    state = v.func(reg)
    if size == 0 and not zero_size_allowed:
        v.fail(errno.EACCES, "invalid zero-sized read")
    check_stack_access_within_bounds(v, regno, off, size, write)
    vo = reg.scalar.var_off
    if tnum_is_const(vo):
        min_off = max_off = S.s64(vo.value) + off
    else:
        if not v.bypass_spec_v1:
            v.fail(errno.EACCES, f"R{regno} variable offset stack access prohibited for !root, "
                   f"var_off={tnum_strn(vo)}")
        if meta is not None and meta["raw_mode"]:
            meta = None
        min_off = reg.scalar.smin + off
        max_off = reg.scalar.smax + off
    if meta is not None and meta["raw_mode"]:
        # The helper writes byte by byte (check_helper_call): not into a dynptr.
        for i in range(min_off, max_off + size):
            slot_no = -i - 1
            if slot_no < len(state.stack) * BPF_REG_SIZE and state.stack[
                    slot_no // BPF_REG_SIZE].slot_type[slot_no % BPF_REG_SIZE] == SlotType.DYNPTR:
                v.fail(errno.EACCES, f"potential write to dynptr at off={i} disallowed")
        meta["access_size"] = size
        meta["regno"] = regno
        return
    v.liveness.mark_read(reg.frameno, v.insn_idx, stack_slots_mask(min_off, max_off + size))
    for i in range(min_off, max_off + size):
        slot_no = -i - 1
        spi = slot_no // BPF_REG_SIZE
        if spi >= len(state.stack):
            v.fail(errno.EFAULT, "allocated_stack too small")
        slot = state.stack[spi]
        stype = slot.slot_type[slot_no % BPF_REG_SIZE]
        if stype == SlotType.MISC:
            continue
        if stype == SlotType.ZERO or (stype == SlotType.INVALID and v.allow_uninit_stack):
            if write:
                slot.slot_type[slot_no % BPF_REG_SIZE] = SlotType.MISC
            continue
        if slot.is_spill and slot.spilled is not None and (
                slot.spilled.type == R.SCALAR_VALUE or v.allow_ptr_leaks):
            if write:
                slot.spilled.mark_unknown()
                for j in range(BPF_REG_SIZE):
                    if slot.slot_type[j] == SlotType.SPILL:
                        slot.slot_type[j] = SlotType.MISC
            continue
        if tnum_is_const(vo):
            v.fail(errno.EACCES, f"invalid read from stack R{regno} off {min_off}+{i - min_off} "
                   f"size {size}")
        v.fail(errno.EACCES, f"invalid read from stack R{regno} var_off {tnum_strn(vo)}"
               f"+{i - min_off} size {size}")


def check_mem_size_reg(v: Verifier, reg: RegState, regno: int, write: bool,
                       zero_size_allowed: bool, meta: dict[str, Any]) -> None:
    s = reg.scalar
    meta["msize_max"] = s.umax
    m: dict[str, Any] | None = meta if tnum_is_const(s.var_off) else None
    if s.smin < 0:
        v.fail(errno.EACCES, f"R{regno} min value is negative, either use unsigned or 'var &= "
               "const'")
    if s.umin == 0 and not zero_size_allowed:
        v.fail(errno.EACCES, f"R{regno} invalid zero-sized read: u64=[{s.umin},{s.umax}]")
    if s.umax >= BPF_MAX_VAR_SIZ:
        v.fail(errno.EACCES, f"R{regno} unbounded memory access, use 'var &= const' or 'if (var "
               "< const)'")
    check_helper_mem_access(v, regno - 1, s.umax, write, zero_size_allowed, m)
    mark_chain_precision(v, regno)  # the size's bounds decided the access


def _release_reference(v: Verifier, ref_obj_id: int) -> None:
    st = v.cur
    before = len(st.refs)
    st.refs = [r for r in st.refs if r[0] != ref_obj_id]
    if len(st.refs) == before:
        v.fail(errno.EINVAL, f"verifier internal error: reference {ref_obj_id} not found")
    for r in v.iter_regs(st):
        if r.ref_obj_id == ref_obj_id:
            mark_reg_invalid(v, r)


def mark_reg_invalid(v: Verifier, reg: RegState) -> None:
    """mark_reg_invalid: a released pointer is unreadable for unprivileged
    programs (it must not leak), an unknown scalar otherwise."""
    if v.allow_ptr_leaks:
        reg.mark_unknown()
    else:
        reg.mark_not_init()


def check_resource_leak(v: Verifier, prefix: str, check_lock: bool = True) -> None:
    st = v.cur
    if check_lock and st.active_locks:
        v.fail(errno.EINVAL, f"{prefix} cannot be used inside bpf_spin_lock-ed region")
    if st.frames[st.curframe].frameno:
        return
    if st.refs:
        for rid, insn_idx, _kind in st.refs:
            v.verbose(f"Unreleased reference id={rid} alloc_insn={insn_idx}\n")
        v.fail(errno.EINVAL, f"{prefix} would lead to reference leak")
    if check_lock and st.active_rcu_lock:
        v.fail(errno.EINVAL, f"{prefix} cannot be used inside bpf_rcu_read_lock-ed region")


def _push_callback(v: Verifier, insn: Insn, idx: int, meta: dict[str, Any]) -> None:
    """Callbacks (bpf_loop, for_each_map_elem...) are verified like calls to a subprogram."""
    sub = meta.get("subprogno")
    if sub is None:
        return
    # A callback runs with unknown scalar arguments (approximating each helper's
    # set_*_callback_state), must return a scalar, and may not touch the caller's r0.
    st = v.cur.copy()
    st.branches = 1
    if st.parent is not None:
        st.parent.branches += 1
    caller = st.frames[st.curframe]
    if st.curframe + 1 >= MAX_CALL_FRAMES:
        v.fail(errno.E2BIG, f"the call stack of {st.curframe + 2} frames is too deep")
    callee = FuncState(st.curframe + 1, idx, subprog_of(v, sub))
    for r in range(1, 6):
        callee.regs[r].mark_unknown()
    if meta["func_id"] == F.for_each_map_elem:
        m = meta["map"]
        callee.regs[1].set_ptr(R.CONST_PTR_TO_MAP)
        callee.regs[1].map = m
        callee.regs[2].set_ptr(R.PTR_TO_MAP_KEY)
        callee.regs[2].map = m
        callee.regs[3].set_ptr(R.PTR_TO_MAP_VALUE)
        callee.regs[3].map = m
        callee.regs[4].assign(caller.regs[3])
    elif meta["func_id"] == F.loop:
        callee.regs[2].assign(caller.regs[3])
        for r in (3, 4, 5):
            callee.regs[r].mark_not_init()
    elif meta["func_id"] == F.user_ringbuf_drain:  # set_user_ringbuf_callback_state
        from .dynptr import BpfDynptrType, mark_dynptr_cb_reg

        mark_dynptr_cb_reg(v, callee.regs[1], BpfDynptrType.LOCAL)
        callee.regs[2].assign(caller.regs[3])
        for r in (3, 4, 5):
            callee.regs[r].mark_not_init()
    elif meta["func_id"] == F.timer_set_callback:  # set_timer_callback_state
        m = caller.regs[1].map  # the map whose value holds the timer
        for r, t in ((1, R.CONST_PTR_TO_MAP), (2, R.PTR_TO_MAP_KEY), (3, R.PTR_TO_MAP_VALUE)):
            callee.regs[r].set_ptr(t)
            callee.regs[r].map = m
        for r in (4, 5):
            callee.regs[r].mark_not_init()
    callee.regs[10].set_ptr(R.PTR_TO_STACK)
    callee.regs[10].frameno = st.curframe + 1
    callee.in_callback_fn = True
    # An async (timer) callback must return 0; the others 0 or 1.
    callee.callback_ret_range = (0, 0) if meta["func_id"] == F.timer_set_callback else (0, 1)
    st.frames.append(callee)
    st.curframe += 1
    from .check import _Pending

    v.stack.append(_Pending(st, sub, idx, v.log.end_pos))


def check_kfunc_call(v: Verifier, insn: Insn, idx: int) -> None:
    from .kfuncs import check_kfunc_call as check

    check(v, insn, idx)


def check_func_call(v: Verifier, insn: Insn, idx: int) -> None:
    target = idx + insn.imm + 1
    subprog = subprog_of(v, target)
    if subprog_is_global(v, subprog):
        check_global_call(v, subprog)
        v.insn_idx = idx + 1  # the call is done: on to the next instruction
        return
    st = v.cur
    if st.curframe + 1 >= MAX_CALL_FRAMES:
        v.fail(errno.E2BIG, f"the call stack of {st.curframe + 2} frames is too deep")
    caller = st.frames[st.curframe]
    callee = FuncState(st.curframe + 1, idx, subprog_of(v, target))
    for r in range(1, 6):
        callee.regs[r].assign(caller.regs[r])
    callee.regs[10].set_ptr(R.PTR_TO_STACK)
    callee.regs[10].frameno = st.curframe + 1
    st.frames.append(callee)
    st.curframe += 1
    v.liveness.reset_cur()
    for r in range(6):
        caller.regs[r].mark_not_init()
    v.insn_idx = target
    if v.log.level:
        v.verbose("caller:\n" + _frame_state(v, st, caller.frameno) + "\n")
        v.verbose("callee:\n" + _frame_state(v, st, callee.frameno) + "\n")
    v.mark_verifier_state_scratched()


def _frame_state(v: Verifier, st: Any, frameno: int) -> str:
    return st.frames[frameno].format(all_precise=not v.bpf_capable)


def process_exit(v: Verifier, idx: int) -> bool:
    """BPF_EXIT: leave a subprogram, or end the path (checking r0 and leaks)."""
    st = v.cur
    check_resource_leak(v, "BPF_EXIT instruction in main prog",
                        check_lock=not st.frames[st.curframe].frameno)
    if st.curframe:
        if st.frames[st.curframe].in_callback_fn:
            _check_callback_return(v)
            return True  # a callback's path ends here; its caller went on separately
        _prepare_func_exit(v)
        return False
    check_return_code(v)
    return True


def _check_callback_return(v: Verifier) -> None:
    callee = v.cur.frames[v.cur.curframe]
    r0 = callee.regs[0]
    v.check_reg_arg(0, SRC_OP)
    if r0.type != R.SCALAR_VALUE:
        v.fail(errno.EACCES, "R0 not a scalar value")
    lo, hi = callee.callback_ret_range or (0, 1)
    if not (lo <= r0.scalar.smin and r0.scalar.smax <= hi):
        v.fail(errno.EINVAL, _invalid_scalar(r0, lo, hi, "At callback return", "R0"))
    mark_chain_precision(v, 0)


def _prepare_func_exit(v: Verifier) -> None:
    st = v.cur
    callee = st.frames[st.curframe]
    r0 = callee.regs[0]
    if r0.type == R.PTR_TO_STACK:
        v.fail(errno.EINVAL, "cannot return stack pointer to the caller")
    caller = st.frames[st.curframe - 1]
    v.liveness.update(st)  # the callee's marks reach the call in the caller's chain
    caller.regs[0].assign(r0)
    v.insn_idx = callee.callsite + 1
    if v.log.level:
        unpriv = not v.bpf_capable
        v.verbose("returning from callee:\n" + callee.format(all_precise=unpriv) + "\n")
        v.verbose(f"to caller at {v.insn_idx}:\n" + caller.format(all_precise=unpriv) + "\n")
    st.frames.pop()
    st.curframe -= 1
    v.scratched.clear()
    v.returned_to_caller = True


def _invalid_scalar(reg: RegState, lo: int, hi: int, ctx: str, name: str) -> str:
    s = reg.scalar
    text = f"{ctx} the register {name} has"
    unknown = True
    if s.smin > S64_MIN:
        text += f" smin={s.smin}"
        unknown = False
    if s.smax < S64_MAX:
        text += f" smax={s.smax}"
        unknown = False
    if unknown:
        text += " unknown scalar value"
    return text + f" should have been in [{lo}, {hi}]"


def _retval_range(v: Verifier) -> tuple[int, int] | None:
    pt = v.prog_type
    eat = v.prog.expected_attach_type
    if pt == ProgType.CGROUP_SOCK_ADDR:
        if eat in (AttachType.CGROUP_UDP4_RECVMSG, AttachType.CGROUP_UDP6_RECVMSG,
                   AttachType.CGROUP_UNIX_RECVMSG, AttachType.CGROUP_INET4_GETPEERNAME,
                   AttachType.CGROUP_INET6_GETPEERNAME, AttachType.CGROUP_UNIX_GETPEERNAME,
                   AttachType.CGROUP_INET4_GETSOCKNAME, AttachType.CGROUP_INET6_GETSOCKNAME,
                   AttachType.CGROUP_UNIX_GETSOCKNAME):
            return (1, 1)
        if eat in (AttachType.CGROUP_INET4_BIND, AttachType.CGROUP_INET6_BIND):
            return (0, 3)
        return (0, 1)
    if pt == ProgType.CGROUP_SKB:
        return (0, 3) if eat == AttachType.CGROUP_INET_EGRESS else (0, 1)
    if pt in (ProgType.CGROUP_SOCK, ProgType.SOCK_OPS, ProgType.CGROUP_DEVICE,
              ProgType.CGROUP_SYSCTL, ProgType.CGROUP_SOCKOPT):
        return (0, 1)
    if pt == ProgType.RAW_TRACEPOINT:
        return (0, 0) if eat else None
    if pt == ProgType.TRACING:
        if eat in (AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT):
            return (0, 0)
        if eat == AttachType.TRACE_ITER:
            return (0, 1)
        return None
    if pt == ProgType.SK_LOOKUP:
        return (0, 1)
    if pt == ProgType.NETFILTER:
        return (0, 1)
    return None


def check_return_code(v: Verifier) -> None:
    if v.prog_type == ProgType.STRUCT_OPS and not v.cur.frames[0].subprogno:
        from ..progs.struct_ops import returns_void

        if returns_void(v.prog):  # the member returns void: R0 is not looked at
            return
    if v.prog_type == ProgType.LSM and not v.cur.frames[0].subprogno:
        from ..progs.tracing_btf import lsm_return_unchecked

        if lsm_return_unchecked(v.prog):  # an LSM_MAC program on a void hook
            return
    v.check_reg_arg(0, SRC_OP)
    if v.is_pointer_value(0):
        v.fail(errno.EACCES, "R0 leaks addr as return value")
    if v.cur.frames[0].subprogno:  # a global function verified on its own
        check_global_return(v)
        return
    if v.prog_type == ProgType.LSM:  # ranges by hook, compared as s32
        from ..progs.tracing_btf import check_lsm_return_code

        check_lsm_return_code(v, _invalid_scalar)
        return
    rng = _retval_range(v)
    if rng is None:
        return
    r0 = v.cur.regs[0]
    if r0.type != R.SCALAR_VALUE:
        v.fail(errno.EINVAL, f"At program exit the register R0 is not a known value "
               f"({reg_type_str(r0.type)})")
    lo, hi = rng
    if not (lo <= r0.scalar.smin and r0.scalar.smax <= hi):
        v.fail(errno.EINVAL, _invalid_scalar(r0, lo, hi, "At program exit", "R0"))
    mark_chain_precision(v, 0)  # the range check relied on R0's bounds
    # An egress program that returns 2 or 3 (the congestion-notification bit) on
    # some path may go on egress only (bpf_prog_attach_check_attach_type).
    if (v.prog_type == ProgType.CGROUP_SKB
            and v.prog.expected_attach_type == AttachType.CGROUP_INET_EGRESS
            and tnum_in(tnum_range(2, 3), r0.scalar.var_off)):
        v.prog.enforce_expected_attach_type = True
