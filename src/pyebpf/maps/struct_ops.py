"""BPF_MAP_TYPE_STRUCT_OPS: a table of BPF programs for a kernel subsystem
(kernel/bpf/bpf_struct_ops.c).

The map has one element (key 0) whose value is ``struct bpf_struct_ops_<name>``
from the kernel BTF: a common head (``refcnt``, ``state``) and, cacheline
aligned, the ops struct itself with a program fd in each function-pointer
member the user implements. Updating the element is registering the table:

- the value is checked as the kernel checks it: no bytes in the holes
  between members, a zero head, data members either taken by the
  subsystem's ``init_member`` or zero; each program fd must be a STRUCT_OPS
  program loaded for this struct (``attach_btf_id``) and this member
  (``expected_attach_type`` is the member's index), else EINVAL;
- a map already updated is EBUSY (it can't be updated twice);
- without BPF_F_LINK the subsystem's ``reg`` runs now (state INUSE; the
  registration holds a map reference until MAP_DELETE_ELEM unregisters it);
  with BPF_F_LINK the table is only validated (state READY) and a struct_ops
  link registers it (pyebpf.links.struct_ops).

Reading the element back gives the value with program ids where the fds were,
the state, and the registration's reference count; programs can't look it up.
"""

from __future__ import annotations

import enum
import errno
from typing import TYPE_CHECKING, Any

from ..btf import BtfKind
from ..errors import BpfError
from ..runtime import ObjKind
from ..uapi import MapFlags, MapType, ProgType
from . import register_map
from .base import BpfMap

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..prog import BpfProg
    from ..runtime import Runtime
    from ..struct_ops import StructOpsData, StructOpsType

__all__ = ["StructOpsMap", "StructOpsState"]

#: What the member loop returns for the kernel's reset without an error.
_RESET_QUIETLY = object()
#: Offset of ``data`` in every value type (after the cacheline-aligned common head).
DATA_OFF = 64


class StructOpsState(enum.IntEnum):
    """enum bpf_struct_ops_state."""

    INIT = 0
    INUSE = 1
    TOBEFREE = 2
    READY = 3


def _find_value_type(value_type_id: int) -> StructOpsType | None:
    """bpf_struct_ops_find_value: the struct_ops type whose value type has this id."""
    from ..struct_ops import struct_ops_types

    for st in struct_ops_types().values():
        if st.value_type_id == value_type_id:
            return st
    return None


def _check_zero_holes(btf: Any, t: Any, data: bytes) -> None:
    """check_zero_holes: bytes between and after a struct's members must be zero."""
    prev_end = 0
    for m in t.members:
        off = m.bit_offset // 8
        if off > prev_end and any(data[prev_end:off]):
            raise BpfError(errno.EINVAL, f"non-zero bytes before {t.name}.{m.name}")
        prev_end = off + btf.sizeof(m.type)
    if t.size > prev_end and any(data[prev_end:t.size]):
        raise BpfError(errno.EINVAL, f"non-zero bytes at the end of struct {t.name}")


@register_map(MapType.STRUCT_OPS)
class StructOpsMap(BpfMap):
    map_type = MapType.STRUCT_OPS

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        """bpf_struct_ops_map_alloc_check."""
        if (attr.key_size != 4 or attr.max_entries != 1
                or attr.map_flags & ~int(MapFlags.LINK | MapFlags.VTYPE_BTF_OBJ_FD)
                or not attr.btf_vmlinux_value_type_id):
            raise BpfError(errno.EINVAL, "a struct_ops map has a u32 key, one entry, and "
                           "btf_vmlinux_value_type_id")

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        # bpf_struct_ops_map_alloc.
        if not runtime.privileged:
            raise BpfError(errno.EPERM, "struct_ops maps need CAP_BPF")
        if attr.map_flags & MapFlags.VTYPE_BTF_OBJ_FD:
            # The value type is in a module's BTF; pyebpf's kernel has no modules.
            raise BpfError(errno.EINVAL, "value_type_btf_obj_fd: pyebpf has no module BTF")
        st = _find_value_type(attr.btf_vmlinux_value_type_id)
        if st is None:
            from ..errors import ENOTSUPP

            raise BpfError(ENOTSUPP, f"BTF id {attr.btf_vmlinux_value_type_id} is no "
                           "struct_ops value type")
        if attr.value_size != st.value_type.size:
            raise BpfError(errno.EINVAL, f"value_size must be {st.value_type.size} "
                           f"(struct bpf_struct_ops_{st.name})")
        if attr.map_flags & MapFlags.LINK and not st.supports_link:
            raise BpfError(errno.EOPNOTSUPP, f"{st.name} can't be registered by a link")
        super().__init__(runtime, attr)
        self.st = st
        self.btf_vmlinux_value_type_id = attr.btf_vmlinux_value_type_id
        self.state = StructOpsState.INIT
        #: The value as user space reads it back (program ids in function members).
        self.uvalue = bytearray(self.value_size)
        #: The table the subsystem gets (None until an update succeeded).
        self.kdata: StructOpsData | None = None
        #: References the kernel side holds on the map (registration, a link): the
        #: ``refcnt`` a lookup reports.
        self.kernel_refs = 0
        #: The programs the table holds (a reference each; the kernel's links[i]).
        self._progs: list[BpfProg] = []

    # -- lookups -------------------------------------------------------------------------
    def syscall_lookup(self, key: bytes, flags: int) -> bytes:
        """bpf_struct_ops_map_sys_lookup_elem."""
        if int.from_bytes(key, "little"):
            raise BpfError(errno.ENOENT, "a struct_ops map has only key 0")
        if self.state == StructOpsState.INIT:
            return bytes(self.value_size)
        out = bytearray(self.uvalue)
        out[0:4] = self.kernel_refs.to_bytes(4, "little")
        out[4:8] = int(self.state).to_bytes(4, "little")
        return bytes(out)

    def lookup_elem(self, key: bytes) -> int | None:
        raise BpfError(errno.EINVAL, "programs can't look up struct_ops maps")

    def get_next_key(self, key: bytes | None) -> bytes:
        if key is not None and int.from_bytes(key, "little") == 0:
            raise BpfError(errno.ENOENT, "no key after 0")
        return bytes(4)

    # -- update: registering the table ----------------------------------------------------------
    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        """bpf_struct_ops_map_update_elem."""
        from ..struct_ops import StructOpsData

        if flags:
            raise BpfError(errno.EINVAL, "struct_ops updates take no flags")
        if int.from_bytes(key, "little"):
            raise BpfError(errno.E2BIG, "a struct_ops map has only key 0")
        st = self.st
        btf = st.btf
        t = st.type
        _check_zero_holes(btf, st.value_type, value)
        udata = value[DATA_OFF:DATA_OFF + t.size]
        _check_zero_holes(btf, t, udata)
        if any(value[0:8]):
            raise BpfError(errno.EINVAL, "the value's refcnt and state must be zero")
        if self.state != StructOpsState.INIT:
            raise BpfError(errno.EBUSY, "the struct_ops map was already updated")
        uvalue = bytearray(value)
        kdata = StructOpsData(st, self.runtime, self.name, self.id)
        held: list[BpfProg] = []
        try:
            err = self._init_members(kdata, udata, uvalue, held)
            if err is _RESET_QUIETLY:
                for prog in held:
                    prog.release()
                return
            if isinstance(err, BpfError):
                raise err
            st.validate(kdata)
            if not self.map_flags & MapFlags.LINK:
                st.reg(kdata)
        except BpfError:
            for prog in held:  # reset_unlock: the programs go, nothing was kept
                prog.release()
            raise
        self.uvalue = uvalue
        self.kdata = kdata
        self._progs = held
        if self.map_flags & MapFlags.LINK:
            self.state = StructOpsState.READY
        else:
            self.hold()  # the registration's reference (bpf_map_inc)
            self.kernel_refs += 1
            self.state = StructOpsState.INUSE

    def _init_members(self, kdata: StructOpsData, udata: bytes, uvalue: bytearray,
                      held: list[BpfProg]) -> BpfError | object | None:
        """The member loop. Returns the error that ends it (the kernel's jump to
        reset_unlock), or :data:`_RESET_QUIETLY` for a non-zero ``owner``: the kernel
        then resets the map but returns the ``err`` the previous member left, which
        is not negative, so the update "succeeds" having registered nothing."""
        from ..prog import BpfProg

        st = self.st
        btf = st.btf
        for i, member in enumerate(st.members()):
            moff = member.bit_offset // 8
            mtype = btf.skip_mods_and_typedefs(member.type)
            pointee = btf.skip_mods_and_typedefs(mtype.type) if mtype.kind is BtfKind.PTR \
                else None
            if pointee is not None and pointee.kind is BtfKind.STRUCT and \
                    pointee.name == "module":
                if any(udata[moff:moff + 8]):
                    return _RESET_QUIETLY
                continue
            err = st.init_member(member, kdata, udata)
            if err > 0:
                continue
            if pointee is None or pointee.kind is not BtfKind.FUNC_PROTO:
                msize = btf.sizeof(member.type)
                if any(udata[moff:moff + msize]):
                    return BpfError(errno.EINVAL, f"{st.name}.{member.name} must be zero")
                continue
            prog_fd = int.from_bytes(udata[moff:moff + 4], "little", signed=True)
            if not prog_fd:
                continue
            obj, _ = self.runtime.get_object(prog_fd, ObjKind.PROG)
            assert isinstance(obj, BpfProg)
            if (obj.prog_type != ProgType.STRUCT_OPS or obj.attach_btf_id != st.type_id
                    or obj.expected_attach_type != i):
                return BpfError(errno.EINVAL, f"fd {prog_fd} is not a struct_ops program "
                                f"for {st.name}.{member.name}")
            obj.hold()
            held.append(obj)
            kdata.progs[member.name] = obj
            # The value read back carries the program's id instead of its fd.
            off = DATA_OFF + moff
            uvalue[off:off + 8] = obj.id.to_bytes(8, "little")
        return None

    # -- delete: unregistering ------------------------------------------------------------------
    def delete_elem(self, key: bytes) -> None:
        """bpf_struct_ops_map_delete_elem."""
        if self.map_flags & MapFlags.LINK:
            raise BpfError(errno.EOPNOTSUPP, "a BPF_F_LINK map is unregistered by its link")
        if self.state == StructOpsState.INUSE:
            assert self.kdata is not None
            self.st.unreg(self.kdata)
            self.state = StructOpsState.TOBEFREE
            self.kernel_refs -= 1
            self.release()
            return
        if self.state == StructOpsState.TOBEFREE:
            raise BpfError(errno.EINPROGRESS, "the table is being unregistered")
        raise BpfError(errno.ENOENT, "the table is not registered")

    # -- links (pyebpf.links.struct_ops) ------------------------------------------------------
    @property
    def valid_to_reg(self) -> bool:
        """bpf_struct_ops_valid_to_reg: a BPF_F_LINK map updated and not yet linked."""
        return bool(self.map_flags & MapFlags.LINK) and self.state == StructOpsState.READY

    def free(self) -> None:
        for prog in self._progs:
            prog.release()
        self._progs = []
        super().free()
