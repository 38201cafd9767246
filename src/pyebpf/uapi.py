"""The kernel's user-visible numbering (include/uapi/linux/bpf.h, Linux 6.18).

Programs, ELF objects and ``bpf()`` attributes carry these numbers, not names,
so every layer (decoder, disassembler, verifier, helpers, loader, syscall) must
agree on them exactly; they are kept here once, spelled as the kernel spells
them.

Generated from include/uapi/linux/bpf.h of Linux 6.18 by hand-port (plus the
few numbers bpf.h borrows from include/uapi/linux/bpf_common.h,
include/uapi/linux/pkt_cls.h and include/linux/bpf.h, each marked where it is
defined); the numbers are checked by tests/test_uapi.py, partly against the
machine's own (older) ``<linux/bpf.h>``. Only what the headers define is here:
no invented limits. Enumerators that appeared after 6.18 are deliberately left
out (for example ``BPF_PROG_ASSOC_STRUCT_OPS``, ``BPF_MAP_TYPE_INSN_ARRAY``,
``BPF_F_RB_OVERWRITE``, ``BPF_F_CPU``): a 6.18 kernel rejects them, and so do we.

Naming: :class:`FuncId` is ``enum bpf_func_id``: the helper ids of
``___BPF_FUNC_MAPPER``. Members keep the kernel's lower-case names without the
``BPF_FUNC_`` prefix (``FuncId.map_lookup_elem`` is ``BPF_FUNC_map_lookup_elem``)
so that a name found in kernel sources, logs or selftests can be looked up as
is. The list has been frozen at 211 since Linux 6.2 (new functionality comes as
kfuncs, which have BTF ids instead).

Every other enum keeps the kernel's upper-case names with the enum's common
prefix dropped (``Cmd.PROG_LOAD`` is ``BPF_PROG_LOAD``, ``MapType.HASH`` is
``BPF_MAP_TYPE_HASH``, ``MapFlags.NO_PREALLOC`` is ``BPF_F_NO_PREALLOC``), so
the kernel name is always ``prefix + member.name``. Where the kernel gives one
number two names, the name the kernel declares first is the canonical one (the
one ``.name`` reports) and the other is a Python alias.

Sets of independent bits (``BPF_F_*``) are :class:`enum.IntFlag` so that a
whole ``flags`` word from an attribute can be held, combined and tested; the
syscall layer still has to reject unknown bits itself (an IntFlag happily
carries bits that have no name), because the kernel answers those with
``-EINVAL``.
"""

from __future__ import annotations

import enum

__all__ = [
    "BPF_ANY",
    "BPF_BUILD_ID_SIZE",
    "BPF_COMPLEXITY_LIMIT_INSNS",
    "BPF_EXIST",
    "BPF_F_LOCK",
    "BPF_F_QUERY_EFFECTIVE",
    "BPF_MAXINSNS",
    "BPF_NOEXIST",
    "BPF_OBJ_NAME_LEN",
    "BPF_RB_AVAIL_DATA",
    "BPF_RB_CONS_POS",
    "BPF_RB_FORCE_WAKEUP",
    "BPF_RB_NO_WAKEUP",
    "BPF_RB_PROD_POS",
    "BPF_RB_RING_SIZE",
    "BPF_RINGBUF_BUSY_BIT",
    "BPF_RINGBUF_DISCARD_BIT",
    "BPF_RINGBUF_HDR_SZ",
    "BPF_STREAM_STDERR",
    "BPF_STREAM_STDOUT",
    "BPF_TAG_SIZE",
    "FUNC_MAX_ID",
    "AttachFlags",
    "AttachType",
    "Cmd",
    "FuncId",
    "LinkType",
    "MapFlags",
    "MapType",
    "ProgLoadFlags",
    "ProgType",
    "RetCode",
    "StackBuildIdStatus",
    "StatsType",
    "TcAct",
    "TestRunFlags",
    "UpdateMode",
    "XdpAction",
]


class FuncId(enum.IntEnum):
    """A helper id (``BPF_FUNC_<name>``); the value goes in ``imm`` of a call."""

    unspec = 0
    map_lookup_elem = 1
    map_update_elem = 2
    map_delete_elem = 3
    probe_read = 4
    ktime_get_ns = 5
    trace_printk = 6
    get_prandom_u32 = 7
    get_smp_processor_id = 8
    skb_store_bytes = 9
    l3_csum_replace = 10
    l4_csum_replace = 11
    tail_call = 12
    clone_redirect = 13
    get_current_pid_tgid = 14
    get_current_uid_gid = 15
    get_current_comm = 16
    get_cgroup_classid = 17
    skb_vlan_push = 18
    skb_vlan_pop = 19
    skb_get_tunnel_key = 20
    skb_set_tunnel_key = 21
    perf_event_read = 22
    redirect = 23
    get_route_realm = 24
    perf_event_output = 25
    skb_load_bytes = 26
    get_stackid = 27
    csum_diff = 28
    skb_get_tunnel_opt = 29
    skb_set_tunnel_opt = 30
    skb_change_proto = 31
    skb_change_type = 32
    skb_under_cgroup = 33
    get_hash_recalc = 34
    get_current_task = 35
    probe_write_user = 36
    current_task_under_cgroup = 37
    skb_change_tail = 38
    skb_pull_data = 39
    csum_update = 40
    set_hash_invalid = 41
    get_numa_node_id = 42
    skb_change_head = 43
    xdp_adjust_head = 44
    probe_read_str = 45
    get_socket_cookie = 46
    get_socket_uid = 47
    set_hash = 48
    setsockopt = 49
    skb_adjust_room = 50
    redirect_map = 51
    sk_redirect_map = 52
    sock_map_update = 53
    xdp_adjust_meta = 54
    perf_event_read_value = 55
    perf_prog_read_value = 56
    getsockopt = 57
    override_return = 58
    sock_ops_cb_flags_set = 59
    msg_redirect_map = 60
    msg_apply_bytes = 61
    msg_cork_bytes = 62
    msg_pull_data = 63
    bind = 64
    xdp_adjust_tail = 65
    skb_get_xfrm_state = 66
    get_stack = 67
    skb_load_bytes_relative = 68
    fib_lookup = 69
    sock_hash_update = 70
    msg_redirect_hash = 71
    sk_redirect_hash = 72
    lwt_push_encap = 73
    lwt_seg6_store_bytes = 74
    lwt_seg6_adjust_srh = 75
    lwt_seg6_action = 76
    rc_repeat = 77
    rc_keydown = 78
    skb_cgroup_id = 79
    get_current_cgroup_id = 80
    get_local_storage = 81
    sk_select_reuseport = 82
    skb_ancestor_cgroup_id = 83
    sk_lookup_tcp = 84
    sk_lookup_udp = 85
    sk_release = 86
    map_push_elem = 87
    map_pop_elem = 88
    map_peek_elem = 89
    msg_push_data = 90
    msg_pop_data = 91
    rc_pointer_rel = 92
    spin_lock = 93
    spin_unlock = 94
    sk_fullsock = 95
    tcp_sock = 96
    skb_ecn_set_ce = 97
    get_listener_sock = 98
    skc_lookup_tcp = 99
    tcp_check_syncookie = 100
    sysctl_get_name = 101
    sysctl_get_current_value = 102
    sysctl_get_new_value = 103
    sysctl_set_new_value = 104
    strtol = 105
    strtoul = 106
    sk_storage_get = 107
    sk_storage_delete = 108
    send_signal = 109
    tcp_gen_syncookie = 110
    skb_output = 111
    probe_read_user = 112
    probe_read_kernel = 113
    probe_read_user_str = 114
    probe_read_kernel_str = 115
    tcp_send_ack = 116
    send_signal_thread = 117
    jiffies64 = 118
    read_branch_records = 119
    get_ns_current_pid_tgid = 120
    xdp_output = 121
    get_netns_cookie = 122
    get_current_ancestor_cgroup_id = 123
    sk_assign = 124
    ktime_get_boot_ns = 125
    seq_printf = 126
    seq_write = 127
    sk_cgroup_id = 128
    sk_ancestor_cgroup_id = 129
    ringbuf_output = 130
    ringbuf_reserve = 131
    ringbuf_submit = 132
    ringbuf_discard = 133
    ringbuf_query = 134
    csum_level = 135
    skc_to_tcp6_sock = 136
    skc_to_tcp_sock = 137
    skc_to_tcp_timewait_sock = 138
    skc_to_tcp_request_sock = 139
    skc_to_udp6_sock = 140
    get_task_stack = 141
    load_hdr_opt = 142
    store_hdr_opt = 143
    reserve_hdr_opt = 144
    inode_storage_get = 145
    inode_storage_delete = 146
    d_path = 147
    copy_from_user = 148
    snprintf_btf = 149
    seq_printf_btf = 150
    skb_cgroup_classid = 151
    redirect_neigh = 152
    per_cpu_ptr = 153
    this_cpu_ptr = 154
    redirect_peer = 155
    task_storage_get = 156
    task_storage_delete = 157
    get_current_task_btf = 158
    bprm_opts_set = 159
    ktime_get_coarse_ns = 160
    ima_inode_hash = 161
    sock_from_file = 162
    check_mtu = 163
    for_each_map_elem = 164
    snprintf = 165
    sys_bpf = 166
    btf_find_by_name_kind = 167
    sys_close = 168
    timer_init = 169
    timer_set_callback = 170
    timer_start = 171
    timer_cancel = 172
    get_func_ip = 173
    get_attach_cookie = 174
    task_pt_regs = 175
    get_branch_snapshot = 176
    trace_vprintk = 177
    skc_to_unix_sock = 178
    kallsyms_lookup_name = 179
    find_vma = 180
    loop = 181
    strncmp = 182
    get_func_arg = 183
    get_func_ret = 184
    get_func_arg_cnt = 185
    get_retval = 186
    set_retval = 187
    xdp_get_buff_len = 188
    xdp_load_bytes = 189
    xdp_store_bytes = 190
    copy_from_user_task = 191
    skb_set_tstamp = 192
    ima_file_hash = 193
    kptr_xchg = 194
    map_lookup_percpu_elem = 195
    skc_to_mptcp_sock = 196
    dynptr_from_mem = 197
    ringbuf_reserve_dynptr = 198
    ringbuf_submit_dynptr = 199
    ringbuf_discard_dynptr = 200
    dynptr_read = 201
    dynptr_write = 202
    dynptr_data = 203
    tcp_raw_gen_syncookie_ipv4 = 204
    tcp_raw_gen_syncookie_ipv6 = 205
    tcp_raw_check_syncookie_ipv4 = 206
    tcp_raw_check_syncookie_ipv6 = 207
    ktime_get_tai_ns = 208
    user_ringbuf_drain = 209
    cgrp_storage_get = 210
    cgrp_storage_delete = 211


#: ``__BPF_FUNC_MAX_ID``: one past the highest helper id.
FUNC_MAX_ID = len(FuncId)

# --------------------------------------------------------------------------
# bpf(2) commands and object kinds
# --------------------------------------------------------------------------


class Cmd(enum.IntEnum):
    """``enum bpf_cmd``: the first argument of ``bpf(2)``.

    Numbered implicitly in the kernel, so the order is the ABI; 6.18 ends at
    ``BPF_PROG_STREAM_READ_BY_FD`` (added in 6.17).
    """

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    #: ``BPF_PROG_RUN = BPF_PROG_TEST_RUN``: the newer name, same command.
    PROG_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ENABLE_STATS = 32
    ITER_CREATE = 33
    LINK_DETACH = 34
    PROG_BIND_MAP = 35
    TOKEN_CREATE = 36
    PROG_STREAM_READ_BY_FD = 37


class MapType(enum.IntEnum):
    """``enum bpf_map_type``: ``map_type`` of ``BPF_MAP_CREATE``.

    The kernel declares ``BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED`` (19) and
    ``BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE_DEPRECATED`` (21) as the enumerators
    and the un-suffixed names as aliases of them (the maps still work; cgroup
    local storage, ``CGRP_STORAGE``, is their replacement). The same order is
    kept here, so ``MapType(19).name`` is ``"CGROUP_STORAGE_DEPRECATED"`` and
    ``MapType.CGROUP_STORAGE`` is the same member.
    """

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE_DEPRECATED = 19
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE_DEPRECATED = 21
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31
    CGRP_STORAGE = 32
    ARENA = 33


class ProgType(enum.IntEnum):
    """``enum bpf_prog_type``: ``prog_type`` of ``BPF_PROG_LOAD``.

    It decides the context a program gets, the helpers it may call and what
    its return value means, so the verifier keys most of its rules on it.
    """

    UNSPEC = 0
    SOCKET_FILTER = 1
    KPROBE = 2
    SCHED_CLS = 3
    SCHED_ACT = 4
    TRACEPOINT = 5
    XDP = 6
    PERF_EVENT = 7
    CGROUP_SKB = 8
    CGROUP_SOCK = 9
    LWT_IN = 10
    LWT_OUT = 11
    LWT_XMIT = 12
    SOCK_OPS = 13
    SK_SKB = 14
    CGROUP_DEVICE = 15
    SK_MSG = 16
    RAW_TRACEPOINT = 17
    CGROUP_SOCK_ADDR = 18
    LWT_SEG6LOCAL = 19
    LIRC_MODE2 = 20
    SK_REUSEPORT = 21
    FLOW_DISSECTOR = 22
    CGROUP_SYSCTL = 23
    RAW_TRACEPOINT_WRITABLE = 24
    CGROUP_SOCKOPT = 25
    TRACING = 26
    STRUCT_OPS = 27
    EXT = 28
    LSM = 29
    SK_LOOKUP = 30
    SYSCALL = 31
    NETFILTER = 32


class AttachType(enum.IntEnum):
    """``enum bpf_attach_type``: where a program is (or expects to be) attached.

    Used both as ``expected_attach_type`` at load time, which narrows the
    context and helpers within a program type, and as ``attach_type`` of
    ``BPF_PROG_ATTACH``/``BPF_LINK_CREATE``/``BPF_PROG_QUERY``.
    """

    CGROUP_INET_INGRESS = 0
    CGROUP_INET_EGRESS = 1
    CGROUP_INET_SOCK_CREATE = 2
    CGROUP_SOCK_OPS = 3
    SK_SKB_STREAM_PARSER = 4
    SK_SKB_STREAM_VERDICT = 5
    CGROUP_DEVICE = 6
    SK_MSG_VERDICT = 7
    CGROUP_INET4_BIND = 8
    CGROUP_INET6_BIND = 9
    CGROUP_INET4_CONNECT = 10
    CGROUP_INET6_CONNECT = 11
    CGROUP_INET4_POST_BIND = 12
    CGROUP_INET6_POST_BIND = 13
    CGROUP_UDP4_SENDMSG = 14
    CGROUP_UDP6_SENDMSG = 15
    LIRC_MODE2 = 16
    FLOW_DISSECTOR = 17
    CGROUP_SYSCTL = 18
    CGROUP_UDP4_RECVMSG = 19
    CGROUP_UDP6_RECVMSG = 20
    CGROUP_GETSOCKOPT = 21
    CGROUP_SETSOCKOPT = 22
    TRACE_RAW_TP = 23
    TRACE_FENTRY = 24
    TRACE_FEXIT = 25
    MODIFY_RETURN = 26
    LSM_MAC = 27
    TRACE_ITER = 28
    CGROUP_INET4_GETPEERNAME = 29
    CGROUP_INET6_GETPEERNAME = 30
    CGROUP_INET4_GETSOCKNAME = 31
    CGROUP_INET6_GETSOCKNAME = 32
    XDP_DEVMAP = 33
    CGROUP_INET_SOCK_RELEASE = 34
    XDP_CPUMAP = 35
    SK_LOOKUP = 36
    XDP = 37
    SK_SKB_VERDICT = 38
    SK_REUSEPORT_SELECT = 39
    SK_REUSEPORT_SELECT_OR_MIGRATE = 40
    PERF_EVENT = 41
    TRACE_KPROBE_MULTI = 42
    LSM_CGROUP = 43
    STRUCT_OPS = 44
    NETFILTER = 45
    TCX_INGRESS = 46
    TCX_EGRESS = 47
    TRACE_UPROBE_MULTI = 48
    CGROUP_UNIX_CONNECT = 49
    CGROUP_UNIX_SENDMSG = 50
    CGROUP_UNIX_RECVMSG = 51
    CGROUP_UNIX_GETPEERNAME = 52
    CGROUP_UNIX_GETSOCKNAME = 53
    NETKIT_PRIMARY = 54
    NETKIT_PEER = 55
    TRACE_KPROBE_SESSION = 56
    TRACE_UPROBE_SESSION = 57


class LinkType(enum.IntEnum):
    """``enum bpf_link_type``: the kind of a BPF link (``bpf_link_info.type``)."""

    UNSPEC = 0
    RAW_TRACEPOINT = 1
    TRACING = 2
    CGROUP = 3
    ITER = 4
    NETNS = 5
    XDP = 6
    PERF_EVENT = 7
    KPROBE_MULTI = 8
    STRUCT_OPS = 9
    NETFILTER = 10
    TCX = 11
    UPROBE_MULTI = 12
    NETKIT = 13
    SOCKMAP = 14


class StatsType(enum.IntEnum):
    """``enum bpf_stats_type``: ``type`` of ``BPF_ENABLE_STATS``."""

    #: Count ``run_time_ns`` and ``run_cnt`` of every program.
    RUN_TIME = 0


class StackBuildIdStatus(enum.IntEnum):
    """``enum bpf_stack_build_id_status``: ``status`` of a stack-map build-id entry."""

    #: An unused slot: marks the end of a trace for user space.
    EMPTY = 0
    #: ``build_id`` and ``offset`` are valid.
    VALID = 1
    #: No build id could be found; ``ip`` holds the raw address.
    IP = 2


# --------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------


class UpdateMode(enum.IntEnum):
    """The low two bits of a map update's ``flags`` (``BPF_ANY``/``NOEXIST``/``EXIST``).

    The kernel defines these together with ``BPF_F_LOCK`` in one anonymous
    enum, but they are not bits: ``ANY``/``NOEXIST``/``EXIST`` are mutually
    exclusive values of a mode (3 is invalid), while ``BPF_F_LOCK`` (4) is a
    separate bit that may be or-ed with any of them. So the mode is an enum
    and the lock bit a plain constant (:data:`BPF_F_LOCK`); a caller splits a
    flags word as ``UpdateMode(flags & 3)`` and ``flags & BPF_F_LOCK``. Batch
    commands reuse the same encoding in ``elem_flags``.
    """

    #: Create the element or overwrite an existing one.
    ANY = 0
    #: Create only; ``-EEXIST`` if the key is present.
    NOEXIST = 1
    #: Overwrite only; ``-ENOENT`` if the key is absent.
    EXIST = 2


#: ``BPF_ANY``: create new element or update existing.
BPF_ANY = 0
#: ``BPF_NOEXIST``: create new element only if it did not exist.
BPF_NOEXIST = 1
#: ``BPF_EXIST``: update existing element only.
BPF_EXIST = 2
#: ``BPF_F_LOCK``: copy the value under the map value's ``bpf_spin_lock``
#: (lookup and update); a bit, combinable with the update mode.
BPF_F_LOCK = 4


class MapFlags(enum.IntFlag):
    """``map_flags`` of ``BPF_MAP_CREATE`` (the anonymous ``BPF_F_*`` enum).

    Some of these bits are also used elsewhere by the kernel with the same
    value: ``RDONLY``/``WRONLY`` in ``file_flags``/``open_flags`` of
    ``BPF_OBJ_GET`` and ``*_GET_FD_BY_ID``, ``PATH_FD`` in ``file_flags`` of
    ``BPF_OBJ_PIN``/``BPF_OBJ_GET``, ``TOKEN_FD`` in ``prog_flags`` and
    ``btf_flags``, ``LINK`` as an attach flag (see :class:`AttachFlags`).
    """

    NO_PREALLOC = 1 << 0
    #: LRU hash maps: one LRU list per CPU instead of a common one.
    NO_COMMON_LRU = 1 << 1
    #: ``numa_node`` of the attributes is meaningful.
    NUMA_NODE = 1 << 2
    #: Syscall side may only read (``RDONLY``) or only write (``WRONLY``).
    RDONLY = 1 << 3
    WRONLY = 1 << 4
    #: Stack trace maps store build id + offset instead of raw addresses.
    STACK_BUILD_ID = 1 << 5
    #: Zero hash seed (testing only: makes bucket order reproducible).
    ZERO_SEED = 1 << 6
    #: Program side may only read (``RDONLY_PROG``) or only write (``WRONLY_PROG``).
    RDONLY_PROG = 1 << 7
    WRONLY_PROG = 1 << 8
    #: Socket storage: clone the element to a newly accepted socket.
    CLONE = 1 << 9
    #: The map's data may be ``mmap()``-ed (arrays, arena, ringbuf-like).
    MMAPABLE = 1 << 10
    #: Perf event array: keep elements when the creating fd is closed.
    PRESERVE_ELEMS = 1 << 11
    #: Usable as an inner map with a differing ``max_entries``.
    INNER_MAP = 1 << 12
    #: Struct_ops map registered/unregistered through a bpf_link.
    LINK = 1 << 13
    #: ``path_fd`` of ``BPF_OBJ_PIN``/``BPF_OBJ_GET`` is meaningful.
    PATH_FD = 1 << 14
    #: ``value_type_btf_obj_fd`` is meaningful.
    VTYPE_BTF_OBJ_FD = 1 << 15
    #: A BPF token fd is passed in the command's ``*_token_fd`` field.
    TOKEN_FD = 1 << 16
    #: Arena: a user-space fault sends SIGSEGV instead of allocating a page.
    SEGV_ON_FAULT = 1 << 17
    #: Arena: do not translate kernel arena pointers to user pointers.
    NO_USER_CONV = 1 << 18


class ProgLoadFlags(enum.IntFlag):
    """``prog_flags`` of ``BPF_PROG_LOAD`` (the ``BPF_F_*`` defines for it)."""

    #: Check alignment as if the CPU required it (NET_IP_ALIGN = 2).
    STRICT_ALIGNMENT = 1 << 0
    #: Skip alignment checks entirely (testing).
    ANY_ALIGNMENT = 1 << 1
    #: Randomise the upper 32 bits the verifier proved dead (testing).
    TEST_RND_HI32 = 1 << 2
    #: Checkpoint verifier states far more often (testing; undefined behaviour).
    TEST_STATE_FREQ = 1 << 3
    #: The program may sleep: restricts maps and helpers accordingly.
    SLEEPABLE = 1 << 4
    #: XDP program understands multi-buffer (fragmented) frames.
    XDP_HAS_FRAGS = 1 << 5
    #: XDP program is bound to ``prog_ifindex`` to use device metadata kfuncs.
    XDP_DEV_BOUND_ONLY = 1 << 6
    #: Check register bounds invariants after every step (testing).
    TEST_REG_INVARIANTS = 1 << 7
    #: ``prog_token_fd`` is meaningful. The kernel defines this bit in the
    #: map-create enum (``BPF_F_TOKEN_FD``) and accepts it in ``prog_flags``.
    TOKEN_FD = 1 << 16


class AttachFlags(enum.IntFlag):
    """``attach_flags`` of ``BPF_PROG_ATTACH`` and ``flags`` of ``BPF_LINK_CREATE``.

    ``ALLOW_OVERRIDE``/``ALLOW_MULTI`` are the cgroup inheritance modes (none
    of them: exclusive); ``REPLACE``/``BEFORE``/``AFTER``/``ID``/``LINK`` are the
    generic (mprog) positioning flags; ``PREORDER`` (6.15) runs a cgroup
    program before its descendants' ones. ``BPF_F_LINK`` is defined by the
    kernel as the map-create bit of the same name (``1 << 13``).
    """

    ALLOW_OVERRIDE = 1 << 0
    ALLOW_MULTI = 1 << 1
    REPLACE = 1 << 2
    BEFORE = 1 << 3
    AFTER = 1 << 4
    ID = 1 << 5
    PREORDER = 1 << 6
    LINK = 1 << 13


class TestRunFlags(enum.IntFlag):
    """``flags`` of ``BPF_PROG_TEST_RUN``."""

    __test__ = False  # not a pytest test class, despite the name

    #: Run on the CPU given in ``test.cpu``.
    RUN_ON_CPU = 1 << 0
    #: XDP: really transmit/redirect the frames after the run.
    XDP_LIVE_FRAMES = 1 << 1
    #: skb: set CHECKSUM_COMPLETE on the input and check it afterwards.
    SKB_CHECKSUM_COMPLETE = 1 << 2


#: ``BPF_F_QUERY_EFFECTIVE`` (``query_flags`` of ``BPF_PROG_QUERY``): list the
#: programs that will run, including those inherited from ancestor cgroups.
BPF_F_QUERY_EFFECTIVE = 1 << 0


# --------------------------------------------------------------------------
# Program return codes
# --------------------------------------------------------------------------


class XdpAction(enum.IntEnum):
    """``enum xdp_action``: what an XDP program's return value asks for."""

    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


class TcAct(enum.IntEnum):
    """``TC_ACT_*`` (include/uapi/linux/pkt_cls.h): tc (SCHED_CLS/ACT) verdicts.

    Defines, not an enum, in the kernel; ``TC_ACT_UNSPEC`` is -1 (use the
    qdisc's default), hence a signed enum. ``TC_ACT_VALUE_MAX`` is
    ``TC_ACT_TRAP``; the ``TC_ACT_EXT`` opcodes (JUMP, GOTO_CHAIN) are for
    classic tc actions and not meaningful as a BPF return value.
    """

    UNSPEC = -1
    OK = 0
    RECLASSIFY = 1
    SHOT = 2
    PIPE = 3
    STOLEN = 4
    QUEUED = 5
    REPEAT = 6
    REDIRECT = 7
    TRAP = 8


class RetCode(enum.IntEnum):
    """``enum bpf_ret_code``: generic return codes (LWT and flow dissector programs).

    Binary compatible with the ``TC_ACT_*`` of the same meaning (``OK``,
    ``DROP`` = ``TC_ACT_SHOT``, ``REDIRECT``); values above 127 are specific
    to one program type.
    """

    OK = 0
    DROP = 2
    REDIRECT = 7
    #: LWT_IN/LWT_XMIT: the skb was modified and must be routed again.
    LWT_REROUTE = 128
    #: FLOW_DISSECTOR: fall back to the kernel's own dissector.
    FLOW_DISSECTOR_CONTINUE = 129


# --------------------------------------------------------------------------
# Ring buffer
# --------------------------------------------------------------------------

#: ``bpf_ringbuf_output/submit/discard`` flags: do not wake the consumer ...
BPF_RB_NO_WAKEUP = 1 << 0
#: ... or wake it unconditionally (default: wake if it has caught up).
BPF_RB_FORCE_WAKEUP = 1 << 1

#: ``bpf_ringbuf_query`` selectors: bytes not yet consumed,
BPF_RB_AVAIL_DATA = 0
#: the ring's data size,
BPF_RB_RING_SIZE = 1
#: the consumer position,
BPF_RB_CONS_POS = 2
#: the producer position (positions are free-running byte counters).
BPF_RB_PROD_POS = 3

#: Set in a record header's length word while the record is reserved but not
#: yet submitted; the consumer must stop there.
BPF_RINGBUF_BUSY_BIT = 1 << 31
#: Set in a record header's length word when the record was discarded; the
#: consumer skips it.
BPF_RINGBUF_DISCARD_BIT = 1 << 30
#: Size of a record header (u32 length + busy/discard bits, u32 page offset).
BPF_RINGBUF_HDR_SZ = 8


# --------------------------------------------------------------------------
# Sizes and limits
# --------------------------------------------------------------------------

#: ``BPF_OBJ_NAME_LEN``: size of ``map_name``/``prog_name`` including the NUL.
BPF_OBJ_NAME_LEN = 16
#: ``BPF_TAG_SIZE``: bytes of a program tag (``bpf_prog_info.tag``).
BPF_TAG_SIZE = 8
#: ``BPF_BUILD_ID_SIZE``: bytes of a build id in a stack-map entry.
BPF_BUILD_ID_SIZE = 20
#: ``BPF_MAXINSNS`` (include/uapi/linux/bpf_common.h): the historical program
#: size limit, still the limit for loaders without CAP_BPF (``BPF_PROG_LOAD``
#: allows up to :data:`BPF_COMPLEXITY_LIMIT_INSNS` otherwise).
BPF_MAXINSNS = 4096
#: ``BPF_COMPLEXITY_LIMIT_INSNS`` (include/linux/bpf.h, kernel-internal): the
#: most instructions a privileged program may have, and the verifier's budget
#: of processed instructions.
BPF_COMPLEXITY_LIMIT_INSNS = 1_000_000

#: Stream ids of ``BPF_PROG_STREAM_READ_BY_FD`` (6.17): a program's stdout ...
BPF_STREAM_STDOUT = 1
#: ... and stderr (where the kernel also reports faults of the program).
BPF_STREAM_STDERR = 2
