"""Local storage helpers.

``bpf_get_local_storage`` (kernel/bpf/helpers.c): the running program's cgroup
storage of the map's type (shared, or this CPU's for PERCPU_CGROUP_STORAGE).

The kernel takes it from the run context (``bpf_cg_run_ctx``): the storage of
the cgroup and attach type the program runs for, or the one BPF_PROG_TEST_RUN
allocated (see :mod:`pyebpf.maps.cgroup_storage`). The pointer is never NULL;
``flags`` must be 0 (the verifier checks it).

``bpf_{sk,task,inode,cgrp}_storage_get(map, owner, value, flags)`` return the
owner's value in the map, NULL for a NULL owner, unknown flags, or no value
without BPF_LOCAL_STORAGE_GET_F_CREATE, which creates it from ``value`` (or
zeroed); ``bpf_*_storage_delete(map, owner)`` is -EINVAL for a NULL owner,
-ENOENT without a value (see :mod:`pyebpf.maps.local_storage`).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfError, BpfFault
from ..uapi import MapType, ProgType
from . import register_helper
from ._util import map_at, neg
from .proto import ArgType, Proto, RetType, btf_ids

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..maps.local_storage import LocalStorageMap

P = ProgType
#: Program types whose get_func_proto offers it (cgroup_common_func_proto; Linux 6.18).
_TYPES = frozenset({P.CGROUP_SKB, P.CGROUP_SOCK, P.SOCK_OPS, P.CGROUP_DEVICE,
                    P.CGROUP_SOCK_ADDR, P.CGROUP_SYSCTL, P.CGROUP_SOCKOPT})


@register_helper(81, "get_local_storage", Proto(RetType.RET_PTR_TO_MAP_VALUE, (
    ArgType.ARG_CONST_MAP_PTR, ArgType.ARG_ANYTHING)), prog_types=_TYPES)
def get_local_storage(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    from ..maps.cgroup_storage import CgroupStorageMap, local_storage

    m = map_at(vm, r1, "get_local_storage")
    if not isinstance(m, CgroupStorageMap):
        raise BpfFault(f"bpf_get_local_storage with a {m.map_type.name} map")
    if vm.owner is None:
        raise BpfFault("bpf_get_local_storage needs a loaded program (its run context)")
    return local_storage(vm.owner, m).addr()


# -- socket, task, inode and cgroup storage ------------------------------------------------
A = ArgType
_SK_GET_TYPES = frozenset({P.SCHED_CLS, P.SCHED_ACT, P.CGROUP_SKB, P.CGROUP_SOCK, P.SOCK_OPS,
                           P.SK_MSG, P.CGROUP_SOCK_ADDR, P.CGROUP_SOCKOPT, P.TRACING, P.LSM})
_SK_DELETE_TYPES = _SK_GET_TYPES - {P.CGROUP_SOCK}


def _storage_map(vm: Vm, addr: int, helper: str, map_type: MapType) -> LocalStorageMap:
    from ..maps.local_storage import LocalStorageMap

    m = map_at(vm, addr, helper)
    if not isinstance(m, LocalStorageMap) or m.map_type is not map_type:
        raise BpfFault(f"bpf_{helper} with a {m.map_type.name} map (it needs a "
                       f"{map_type.name})")
    return m


def _get(vm: Vm, r1: int, owner: int, value: int, flags: int, helper: str,
         map_type: MapType) -> int:
    """bpf_*_storage_get: NULL for no owner or unknown flags; create with F_CREATE."""
    from ..maps.local_storage import BPF_LOCAL_STORAGE_GET_F_CREATE

    m = _storage_map(vm, r1, helper, map_type)
    if not owner or flags & ~BPF_LOCAL_STORAGE_GET_F_CREATE:
        return 0
    init = vm.memory.read(value, m.value_size) if value else None
    addr = m.storage_get(owner, init, bool(flags & BPF_LOCAL_STORAGE_GET_F_CREATE))
    return addr or 0


def _delete(vm: Vm, r1: int, owner: int, helper: str, map_type: MapType) -> int:
    """bpf_*_storage_delete: -EINVAL for no owner, -ENOENT for no value."""
    m = _storage_map(vm, r1, helper, map_type)
    if not owner:
        return neg(errno.EINVAL)
    try:
        m.storage_delete(owner)
    except BpfError as e:
        return neg(e.errno)
    return 0


def _get_proto(owner_arg: int, btf: str | None) -> Proto:
    return Proto(RetType.RET_PTR_TO_MAP_VALUE_OR_NULL, (
        A.ARG_CONST_MAP_PTR, owner_arg, A.ARG_PTR_TO_MAP_VALUE_OR_NULL, A.ARG_ANYTHING),
        arg_btf_id=btf_ids(arg2=btf) if btf else (None,) * 5)


def _delete_proto(owner_arg: int, btf: str | None) -> Proto:
    return Proto(RetType.RET_INTEGER, (A.ARG_CONST_MAP_PTR, owner_arg),
                 arg_btf_id=btf_ids(arg2=btf) if btf else (None,) * 5)


@register_helper(107, "sk_storage_get", _get_proto(A.ARG_PTR_TO_BTF_ID_SOCK_COMMON, None),
                 prog_types=_SK_GET_TYPES)
def sk_storage_get(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _get(vm, r1, r2, r3, r4, "sk_storage_get", MapType.SK_STORAGE)


@register_helper(108, "sk_storage_delete",
                 _delete_proto(A.ARG_PTR_TO_BTF_ID_SOCK_COMMON, None),
                 prog_types=_SK_DELETE_TYPES)
def sk_storage_delete(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _delete(vm, r1, r2, "sk_storage_delete", MapType.SK_STORAGE)


@register_helper(156, "task_storage_get",
                 _get_proto(A.ARG_PTR_TO_BTF_ID_OR_NULL, "task_struct"), tier="cap_bpf")
def task_storage_get(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _get(vm, r1, r2, r3, r4, "task_storage_get", MapType.TASK_STORAGE)


@register_helper(157, "task_storage_delete",
                 _delete_proto(A.ARG_PTR_TO_BTF_ID_OR_NULL, "task_struct"), tier="cap_bpf")
def task_storage_delete(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _delete(vm, r1, r2, "task_storage_delete", MapType.TASK_STORAGE)


@register_helper(145, "inode_storage_get",
                 _get_proto(A.ARG_PTR_TO_BTF_ID_OR_NULL, "inode"), prog_types={P.LSM})
def inode_storage_get(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _get(vm, r1, r2, r3, r4, "inode_storage_get", MapType.INODE_STORAGE)


@register_helper(146, "inode_storage_delete",
                 _delete_proto(A.ARG_PTR_TO_BTF_ID_OR_NULL, "inode"), prog_types={P.LSM})
def inode_storage_delete(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _delete(vm, r1, r2, "inode_storage_delete", MapType.INODE_STORAGE)


@register_helper(210, "cgrp_storage_get",
                 _get_proto(A.ARG_PTR_TO_BTF_ID_OR_NULL, "cgroup"), tier="cap_bpf")
def cgrp_storage_get(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _get(vm, r1, r2, r3, r4, "cgrp_storage_get", MapType.CGRP_STORAGE)


@register_helper(211, "cgrp_storage_delete",
                 _delete_proto(A.ARG_PTR_TO_BTF_ID_OR_NULL, "cgroup"), tier="cap_bpf")
def cgrp_storage_delete(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _delete(vm, r1, r2, "cgrp_storage_delete", MapType.CGRP_STORAGE)
