"""A BTF-typed pointer passed to a helper must point at the struct the helper
takes (check_reg_type's PTR_TO_BTF_ID case, kernel/bpf/verifier.c, with
btf_struct_ids_match from kernel/bpf/btf.c).

The struct wanted is the prototype's ``argN_btf_id`` (``bpf_seq_printf``'s
``seq_file``, ``bpf_task_storage_get``'s ``task_struct``) or, for
``ARG_PTR_TO_BTF_ID_SOCK_COMMON``, ``sock_common``. The register's struct
matches when it is that struct or, walking down from the pointer's offset
through the struct found there (a member at that offset, then that member's
first member at offset 0, ...), reaches it: a ``tcp_sock`` is a
``sock_common`` (its ``inet_conn.icsk_inet.__sk_common``), a ``task_struct``
is not ("R1 is of type task_struct but sock_common is expected", EACCES).
Release arguments match strictly (the very struct), bpf_sk_release excepted.

Prototypes pyebpf doesn't give an ``argN_btf_id`` for are not checked.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..btf import Btf, BtfKind
from ..helpers.proto import ArgType, TypeFlag
from ..uapi import FuncId

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["btf_struct_ids_match", "check_btf_id_arg"]

#: Nesting btf_struct_ids_match follows at most (a guard against loops).
_MAX_WALK = 16


def _struct_at(btf: Btf, tid: int, off: int) -> tuple[int, int] | None:
    """btf_struct_walk for a 1-byte access at ``off``: the struct member holding
    it, as (its type id, the offset within it); None when none does."""
    t = btf.skip_mods_and_typedefs(tid)
    if t.kind not in (BtfKind.STRUCT, BtfKind.UNION):
        return None
    for m in t.members:
        start = m.bit_offset // 8
        mt = btf.skip_mods_and_typedefs(m.type)
        if mt.kind in (BtfKind.STRUCT, BtfKind.UNION) and start <= off < start + mt.size:
            return mt.id, off - start
    return None


def btf_struct_ids_match(btf: Btf, tid: int, off: int, want: int, *, strict: bool) -> bool:
    """Whether the object at ``off`` in struct ``tid`` is (or begins with) ``want``."""
    if off == 0 and btf.skip_mods_and_typedefs(tid).id == want:
        return True
    if strict:
        return False
    for _ in range(_MAX_WALK):
        found = _struct_at(btf, tid, off)
        if found is None:
            return False
        tid, off = found
        if off == 0 and tid == want:
            return True
    return False


def check_btf_id_arg(v: Verifier, regno: int, arg_type: int, arg_btf_name: str | None,
                     meta: dict[str, Any]) -> None:
    """The register (a PTR_TO_BTF_ID) points at the struct the argument takes."""
    from ..kernel_btf import kernel_btf

    reg = v.cur.regs[regno]
    if arg_type & 0xFF == ArgType.ARG_PTR_TO_BTF_ID_SOCK_COMMON:
        arg_btf_name = "sock_common"
    if not arg_btf_name or arg_btf_name == "BPF_PTR_POISON" or not reg.btf_id:
        return
    vmlinux = kernel_btf()
    want = vmlinux.find(arg_btf_name, BtfKind.STRUCT)
    if want is None:
        return
    reg_btf = reg.extra if isinstance(reg.extra, Btf) else vmlinux
    strict = bool(arg_type & TypeFlag.OBJ_RELEASE) and meta["func_id"] != FuncId.sk_release
    if reg_btf is vmlinux and btf_struct_ids_match(vmlinux, reg.btf_id, reg.off, want.id,
                                                   strict=strict):
        return
    v.fail(errno.EACCES, f"R{regno} is of type {reg_btf.type(reg.btf_id).name} but "
           f"{arg_btf_name} is expected")
