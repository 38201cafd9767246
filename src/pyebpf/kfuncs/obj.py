"""Program-allocated objects (kernel/bpf/helpers.c): ``bpf_obj_new_impl``,
``bpf_obj_drop_impl``, ``bpf_percpu_obj_new_impl``, ``bpf_percpu_obj_drop_impl``,
``bpf_refcount_acquire_impl``, and the lifetime of the objects they make.

A program allocates an object of one of its *own* struct types (a type of the
program's BTF: libbpf's ``bpf_obj_new(type)`` macro passes
``bpf_core_type_id_local(type)`` and a NULL meta the kernel fills in). The
verifier types the result ``PTR_TO_BTF_ID | MEM_ALLOC`` with a reference the
program must drop, or move into a map's ``__kptr`` field with
``bpf_kptr_xchg`` (:mod:`pyebpf.helpers.kptr`); the program reads and writes
the object's scalar members directly, as its BTF lays them out
(:mod:`pyebpf.verifier.alloc`).

Each object lives in a region of its own in the runtime's memory
(:class:`AllocObj`, found by address in :func:`objects`). Dropping the last
reference frees it: its own referenced kptrs are released
(``bpf_obj_free_fields``) and the region is unmapped once no program runs
(the kernel frees after an RCU grace period), so a later access faults
instead of reaching anything else. A ``struct bpf_refcount`` member makes the
object shared: ``bpf_refcount_acquire`` adds a reference, each drop removes
one. Maps own the objects stashed in their values: :func:`free_kptr_fields`
releases them when the element is deleted or overwritten and when the map is
freed, as the kernel's ``bpf_obj_free_fields`` does.

New objects are zeroed here (but for a bpf_refcount of 1). The kernel's
allocator may hand a new per-CPU object back with a freed one's bytes, so a
program that reads before it writes sees what pyebpf can't reproduce.

A per-CPU object (``bpf_percpu_obj_new``) is a handle whose address the
program passes to ``bpf_this_cpu_ptr`` / ``bpf_per_cpu_ptr``; the handle
itself maps no bytes (the verifier never lets a program dereference it), each
CPU's copy is a region of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..btf import Btf, BtfKind
from ..errors import BpfError, BpfFault
from ..helpers._util import runtime_of
from ..helpers.proto import RetType
from ..memory import Perm
from . import KF, KfArg, KfArgKind, register_kfunc
from .task import GENERIC_PROG_TYPES

if TYPE_CHECKING:
    from ..engine.interpreter import Vm
    from ..memory import Region
    from ..runtime import Runtime

__all__ = ["AllocObj", "FieldRecord", "free_kptr_fields", "local_record", "obj_drop",
           "obj_new", "objects", "percpu_copy"]

#: BTF ids of the reference 6.18 vmlinux.
BTF_ID_OBJ_NEW = 65214
BTF_ID_OBJ_DROP = 65200
BTF_ID_PERCPU_OBJ_NEW = 65257
BTF_ID_PERCPU_OBJ_DROP = 65255
BTF_ID_REFCOUNT_ACQUIRE = 65496

#: BPF_GLOBAL_PERCPU_MA_MAX_SIZE: the largest per-CPU object bpf_percpu_obj_new makes.
PERCPU_MAX_SIZE = 512

#: The special struct members a program type may hold (btf_parse_fields), by
#: struct name: their size (btf_field_type_size).
SPECIAL_STRUCTS = {"bpf_spin_lock": 4, "bpf_res_spin_lock": 4, "bpf_timer": 16,
                   "bpf_wq": 16, "bpf_list_head": 16, "bpf_list_node": 24,
                   "bpf_rb_root": 16, "bpf_rb_node": 32, "bpf_refcount": 4,
                   "bpf_task_work": 8}
#: The BTF type tags making a pointer member a kptr, and the field's kind.
KPTR_TAGS = {"kptr_untrusted": "unref", "kptr": "ref", "percpu_kptr": "percpu"}


@attrs.frozen
class Field:
    """One special member: its offset and size, the name the verifier's messages use
    (btf_field_type_name: ``kptr``, ``bpf_refcount`` ...), and for a kptr its kind
    (``unref`` / ``ref`` / ``percpu``) and pointee struct."""

    name: str
    off: int
    size: int
    kind: str = ""
    target: str = ""


@attrs.frozen
class FieldRecord:
    """``struct btf_record``: the special members of a struct, in offset order."""

    fields: tuple[Field, ...] = ()

    @property
    def refcount_off(self) -> int:
        """Offset of the ``struct bpf_refcount`` member, -1 without one."""
        return next((f.off for f in self.fields if f.name == "bpf_refcount"), -1)

    @property
    def kptrs(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.name == "kptr")

    def overlapping(self, off: int, size: int) -> Field | None:
        """The special member an access of ``size`` bytes at ``off`` touches."""
        return next((f for f in self.fields if off < f.off + f.size and f.off < off + size),
                    None)


def local_record(btf: Btf, tid: int) -> FieldRecord:
    """btf_parse_fields over a struct of a program's (or map's) BTF."""
    out: list[Field] = []
    _scan(btf, tid, 0, out, 0)
    return FieldRecord(tuple(sorted(out, key=lambda f: f.off)))


def _scan(btf: Btf, tid: int, base: int, out: list[Field], depth: int) -> None:
    t = btf.skip_mods_and_typedefs(tid)
    if t.kind not in (BtfKind.STRUCT, BtfKind.UNION) or depth >= 8:
        return
    for m in t.members:
        if m.bitfield_size or m.bit_offset % 8:
            continue
        off = base + m.bit_offset // 8
        mt = btf.type(m.type)
        if mt.kind is BtfKind.PTR:
            tag = btf.type(mt.type)
            if tag.kind is BtfKind.TYPE_TAG and tag.name in KPTR_TAGS:
                target = btf.skip_mods_and_typedefs(tag.type)
                out.append(Field("kptr", off, 8, KPTR_TAGS[tag.name], target.name))
            continue
        st = btf.skip_mods_and_typedefs(m.type)
        if st.kind is BtfKind.STRUCT and st.name in SPECIAL_STRUCTS:
            out.append(Field(st.name, off, SPECIAL_STRUCTS[st.name]))
        else:
            _scan(btf, m.type, off, out, depth + 1)


@attrs.define(eq=False)
class AllocObj:
    """One object a program allocated: its memory, its type, its references."""

    btf: Btf
    type_id: int
    size: int
    record: FieldRecord
    #: The object's bytes (a per-CPU object: the handle, which maps no bytes).
    region: Region
    #: Per-CPU objects: one region per CPU.
    copies: list[Region] = attrs.field(factory=list)
    #: References held without a bpf_refcount (always 1 until dropped).
    refs: int = 1

    @property
    def addr(self) -> int:
        return self.region.base  # type: ignore[no-any-return]

    @property
    def percpu(self) -> bool:
        return bool(self.copies)


def objects(rt: Runtime) -> dict[int, AllocObj]:
    """The runtime's live allocated objects, by address."""
    return rt.hooks.setdefault("bpf_objs", {})  # type: ignore[no-any-return]


def obj_new(rt: Runtime, btf: Btf, type_id: int, *, percpu: bool = False) -> int:
    """bpf_obj_new / bpf_percpu_obj_new: a zeroed object of the struct ``type_id``
    (bpf_obj_init: a bpf_refcount starts at 1). Returns its address (0: no memory)."""
    size = btf.sizeof(type_id)
    record = local_record(btf, type_id)
    name = btf.type(type_id).name
    try:
        rt.charge(size * (rt.nr_cpus if percpu else 1))
    except BpfError:  # ENOMEM: the allocator failed, the kfunc returns NULL
        return 0
    if percpu:
        handle = rt.memory.map(bytearray(8), kind="percpu_obj", name=name, perms=Perm(0))
        copies = [rt.memory.map(bytearray(size), kind="alloc_obj", name=f"{name}#{cpu}")
                  for cpu in range(rt.nr_cpus)]
        obj = AllocObj(btf, type_id, size, record, handle, copies)
    else:
        obj = AllocObj(btf, type_id, size, record,
                       rt.memory.map(bytearray(size), kind="alloc_obj", name=name))
        off = record.refcount_off
        if off >= 0:
            obj.region.buf[off:off + 4] = (1).to_bytes(4, "little")
    objects(rt)[obj.addr] = obj
    return obj.addr


def _refcount(obj: AllocObj) -> int:
    off = obj.record.refcount_off
    return int.from_bytes(obj.region.buf[off:off + 4], "little")


def _set_refcount(obj: AllocObj, n: int) -> None:
    off = obj.record.refcount_off
    obj.region.buf[off:off + 4] = n.to_bytes(4, "little")


def refcount_acquire(rt: Runtime, addr: int) -> int:
    """__bpf_refcount_acquire: one more reference (refcount_inc_not_zero), or NULL
    when the object is already on its way out."""
    obj = _lookup(rt, addr, "bpf_refcount_acquire_impl")
    n = _refcount(obj)
    if not n:
        return 0
    _set_refcount(obj, n + 1)
    return addr


def obj_drop(rt: Runtime, addr: int) -> None:
    """__bpf_obj_drop_impl: drop one reference; the last one frees the object (its
    kptrs released first) and unmaps its memory."""
    obj = _lookup(rt, addr, "bpf_obj_drop_impl")
    if obj.record.refcount_off >= 0:
        n = _refcount(obj) - 1
        _set_refcount(obj, max(n, 0))
        if n > 0:
            return
    for region in obj.copies or [obj.region]:
        free_kptr_fields(rt, obj.record, region.buf, 0)
    del objects(rt)[addr]
    rt.uncharge(obj.size * (len(obj.copies) or 1))
    for region in [obj.region, *obj.copies]:
        rt.unmap_later(region)


def _lookup(rt: Runtime, addr: int, kfunc: str) -> AllocObj:
    obj = objects(rt).get(addr)
    if obj is None:
        raise BpfFault(f"{kfunc}: {addr:#x} is not an allocated object", addr=addr)
    return obj


def percpu_copy(rt: Runtime, addr: int, cpu: int) -> int | None:
    """The address of CPU ``cpu``'s copy of the per-CPU object at ``addr`` (None when
    ``addr`` is not one, or the CPU doesn't exist)."""
    obj = objects(rt).get(addr)
    if obj is None or not obj.copies or not 0 <= cpu < len(obj.copies):
        return None
    return obj.copies[cpu].base  # type: ignore[no-any-return]


def release_kptr(rt: Runtime, addr: int) -> None:
    """The destructor of a referenced kptr: an allocated object is dropped; the
    simulated kernel's own objects live as long as the runtime."""
    if addr in objects(rt):
        obj_drop(rt, addr)


def free_kptr_fields(rt: Runtime, record: FieldRecord | dict[int, Any], buf: bytearray,
                     base: int) -> None:
    """bpf_obj_free_fields for the kptrs of a value held in ``buf`` at ``base``:
    each referenced (or per-CPU) kptr is taken out (xchg with NULL) and released."""
    if isinstance(record, FieldRecord):
        offsets = [f.off for f in record.kptrs if f.kind in ("ref", "percpu")]
    else:
        offsets = [off for off, (kind, _t) in record.items() if kind in ("ref", "percpu")]
    for off in offsets:
        lo = base + off
        ptr = int.from_bytes(buf[lo:lo + 8], "little")
        if ptr:
            buf[lo:lo + 8] = bytes(8)
            release_kptr(rt, ptr)


def map_free_kptrs(m: Any, buf: bytearray, base: int = 0) -> None:
    """Release the kptrs of one map value (``m``'s value type) held in ``buf``."""
    from ..verifier.mem import map_kptr_fields

    fields = map_kptr_fields(m)
    if fields:
        free_kptr_fields(m.runtime, fields, buf, base)


# -- the kfuncs ------------------------------------------------------------------------------
_TYPE_ID = KfArg(KfArgKind.SCALAR_CONST, "local_type_id__k")
_META = KfArg(KfArgKind.IGNORED, "meta__ign")


def _prog_btf(vm: Vm, kfunc: str) -> Btf:
    btf = getattr(vm.owner, "btf", None)
    if btf is None:
        raise BpfFault(f"{kfunc}: the program has no BTF to take the type from")
    return btf  # type: ignore[no-any-return]


@register_kfunc("bpf_obj_new_impl", BTF_ID_OBJ_NEW, (_TYPE_ID, _META),
                RetType.RET_PTR_TO_BTF_ID, KF.ACQUIRE | KF.RET_NULL,
                prog_types=GENERIC_PROG_TYPES)
def bpf_obj_new_impl(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A new object of the program's struct type ``local_type_id``."""
    return obj_new(runtime_of(vm, "obj_new_impl"), _prog_btf(vm, "bpf_obj_new_impl"),
                   r1 & 0xFFFF_FFFF)


@register_kfunc("bpf_percpu_obj_new_impl", BTF_ID_PERCPU_OBJ_NEW, (_TYPE_ID, _META),
                RetType.RET_PTR_TO_BTF_ID, KF.ACQUIRE | KF.RET_NULL,
                prog_types=GENERIC_PROG_TYPES)
def bpf_percpu_obj_new_impl(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A new per-CPU object (one zeroed copy per CPU) of the program's struct type."""
    return obj_new(runtime_of(vm, "percpu_obj_new_impl"),
                   _prog_btf(vm, "bpf_percpu_obj_new_impl"), r1 & 0xFFFF_FFFF, percpu=True)


@register_kfunc("bpf_obj_drop_impl", BTF_ID_OBJ_DROP,
                (KfArg(KfArgKind.PTR_TO_ALLOC, "p__alloc"), _META), RetType.RET_VOID,
                KF.RELEASE, prog_types=GENERIC_PROG_TYPES)
def bpf_obj_drop_impl(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    """Drop the program's reference on the object (freeing it with the last one)."""
    obj_drop(runtime_of(vm, "obj_drop_impl"), r1)


@register_kfunc("bpf_percpu_obj_drop_impl", BTF_ID_PERCPU_OBJ_DROP,
                (KfArg(KfArgKind.PTR_TO_ALLOC, "p__alloc"), _META), RetType.RET_VOID,
                KF.RELEASE, prog_types=GENERIC_PROG_TYPES)
def bpf_percpu_obj_drop_impl(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> None:
    """Free the per-CPU object."""
    obj_drop(runtime_of(vm, "percpu_obj_drop_impl"), r1)


@register_kfunc("bpf_refcount_acquire_impl", BTF_ID_REFCOUNT_ACQUIRE,
                (KfArg(KfArgKind.PTR_TO_REFCOUNTED_KPTR, "p__refcounted_kptr"), _META),
                RetType.RET_PTR_TO_BTF_ID, KF.ACQUIRE | KF.RET_NULL | KF.RCU,
                prog_types=GENERIC_PROG_TYPES)
def bpf_refcount_acquire_impl(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Another owning reference on a refcounted object (NULL if it is being freed)."""
    return refcount_acquire(runtime_of(vm, "refcount_acquire_impl"), r1)


#: The special kfuncs the verifier types by the program's BTF (special_kfunc_list).
OBJ_NEW_KFUNCS = frozenset({"bpf_obj_new_impl", "bpf_percpu_obj_new_impl"})
OBJ_DROP_KFUNCS = {"bpf_obj_drop_impl": False, "bpf_percpu_obj_drop_impl": True}
