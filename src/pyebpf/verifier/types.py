"""Register types as the kernel names them (``enum bpf_reg_type`` and its flags).

A type is a base type or-ed with flags, exactly as in include/linux/bpf.h, so
``PTR_TO_MAP_VALUE | PTR_MAYBE_NULL`` is PTR_TO_MAP_VALUE_OR_NULL and the log
spells it ``map_value_or_null`` (:func:`reg_type_str`, the kernel's function
of that name).
"""

from __future__ import annotations

import enum

from ..helpers.proto import TypeFlag

__all__ = [
    "BASE_TYPE_MASK",
    "MEM_RDONLY",
    "MEM_RINGBUF",
    "PTR_MAYBE_NULL",
    "PTR_TRUSTED",
    "PTR_UNTRUSTED",
    "RegType",
    "base_type",
    "reg_type_str",
    "type_may_be_null",
]


class RegType(enum.IntEnum):
    NOT_INIT = 0
    SCALAR_VALUE = 1
    PTR_TO_CTX = 2
    CONST_PTR_TO_MAP = 3
    PTR_TO_MAP_VALUE = 4
    PTR_TO_MAP_KEY = 5
    PTR_TO_STACK = 6
    PTR_TO_PACKET_META = 7
    PTR_TO_PACKET = 8
    PTR_TO_PACKET_END = 9
    PTR_TO_FLOW_KEYS = 10
    PTR_TO_SOCKET = 11
    PTR_TO_SOCK_COMMON = 12
    PTR_TO_TCP_SOCK = 13
    PTR_TO_TP_BUFFER = 14
    PTR_TO_XDP_SOCK = 15
    PTR_TO_BTF_ID = 16
    PTR_TO_MEM = 17
    PTR_TO_ARENA = 18
    PTR_TO_BUF = 19
    PTR_TO_FUNC = 20
    CONST_PTR_TO_DYNPTR = 21


BASE_TYPE_MASK = 0xFF
# Type flags (enum bpf_type_flag) are shared by register, argument and return
# types: one table, in pyebpf.helpers.proto, as plain ints for the hot paths.
PTR_MAYBE_NULL = int(TypeFlag.PTR_MAYBE_NULL)
MEM_RDONLY = int(TypeFlag.MEM_RDONLY)
MEM_RINGBUF = int(TypeFlag.MEM_RINGBUF)
MEM_USER = int(TypeFlag.MEM_USER)
MEM_PERCPU = int(TypeFlag.MEM_PERCPU)
OBJ_RELEASE = int(TypeFlag.OBJ_RELEASE)
PTR_UNTRUSTED = int(TypeFlag.PTR_UNTRUSTED)
MEM_UNINIT = int(TypeFlag.MEM_UNINIT)
MEM_FIXED_SIZE = int(TypeFlag.MEM_FIXED_SIZE)
MEM_ALLOC = int(TypeFlag.MEM_ALLOC)
PTR_TRUSTED = int(TypeFlag.PTR_TRUSTED)
MEM_RCU = int(TypeFlag.MEM_RCU)
MEM_ALIGNED = int(TypeFlag.MEM_ALIGNED)
MEM_WRITE = int(TypeFlag.MEM_WRITE)

_NAMES = {
    RegType.NOT_INIT: "?",
    RegType.SCALAR_VALUE: "scalar",
    RegType.PTR_TO_CTX: "ctx",
    RegType.CONST_PTR_TO_MAP: "map_ptr",
    RegType.PTR_TO_MAP_VALUE: "map_value",
    RegType.PTR_TO_STACK: "fp",
    RegType.PTR_TO_PACKET: "pkt",
    RegType.PTR_TO_PACKET_META: "pkt_meta",
    RegType.PTR_TO_PACKET_END: "pkt_end",
    RegType.PTR_TO_FLOW_KEYS: "flow_keys",
    RegType.PTR_TO_SOCKET: "sock",
    RegType.PTR_TO_SOCK_COMMON: "sock_common",
    RegType.PTR_TO_TCP_SOCK: "tcp_sock",
    RegType.PTR_TO_TP_BUFFER: "tp_buffer",
    RegType.PTR_TO_XDP_SOCK: "xdp_sock",
    RegType.PTR_TO_BTF_ID: "ptr_",
    RegType.PTR_TO_MEM: "mem",
    RegType.PTR_TO_ARENA: "arena",
    RegType.PTR_TO_BUF: "buf",
    RegType.PTR_TO_FUNC: "func",
    RegType.PTR_TO_MAP_KEY: "map_key",
    RegType.CONST_PTR_TO_DYNPTR: "dynptr_ptr",
}
_PREFIXES = (
    (MEM_RDONLY, "rdonly_"),
    (MEM_RINGBUF, "ringbuf_"),
    (MEM_USER, "user_"),
    (MEM_PERCPU, "percpu_"),
    (MEM_RCU, "rcu_"),
    (PTR_UNTRUSTED, "untrusted_"),
    (PTR_TRUSTED, "trusted_"),
)


def base_type(t: int) -> RegType:
    return RegType(t & BASE_TYPE_MASK)


def type_may_be_null(t: int) -> bool:
    return bool(t & PTR_MAYBE_NULL)


def reg_type_str(t: int) -> str:
    """The kernel's ``reg_type_str``: e.g. ``map_value_or_null``, ``rdonly_mem``."""
    base = base_type(t)
    postfix = ""
    if t & PTR_MAYBE_NULL:
        postfix = "or_null_" if base is RegType.PTR_TO_BTF_ID else "_or_null"
    prefix = "".join(p for flag, p in _PREFIXES if t & flag)
    return f"{prefix}{_NAMES[base]}{postfix}"
