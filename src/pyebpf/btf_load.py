"""BTF objects: BPF_BTF_LOAD, their info, and the BTF a program is loaded with.

``bpf(BPF_BTF_LOAD)`` (kernel/bpf/btf.c ``btf_new_fd``/``btf_parse``) copies a
``.BTF`` blob in, checks it, and gives back an fd on a BTF object with an id
(BTF_GET_FD_BY_ID / BTF_GET_NEXT_ID find it; OBJ_GET_INFO_BY_FD describes it
as ``struct bpf_btf_info``). The checking is :meth:`pyebpf.btf.Btf.parse`'s;
its errors are the kernel's errno (EINVAL, E2BIG for a blob over 16 MiB) and,
when a log buffer is given, the BTF verifier's log says what was read and
where it stopped, in the kernel's format (the header fields, then one line
per type).

PROG_LOAD's ``prog_btf_fd`` and ``func_info`` are checked here too
(:func:`load_prog_btf`, the kernel's check_btf_info/check_btf_func): the
records must match the program's subprograms one for one, start at
instruction 0, ascend, and name FUNC types. The program keeps the BTF and the
records; program extensions (``freplace``) find their target's global
functions through them.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

import attrs

from .attr import BtfLoadAttr, InfoByFdAttr, UserPtr
from .btf import _HDR, BTF_MAX_TYPE, Btf, BtfError, BtfKind, BtfType, FuncLinkage
from .errors import ENOTSUPP, BpfError
from .runtime import BpfObject, ObjKind, Runtime
from .syscall import _copy_out, check_zeroed_user, copy_from_user, register_command
from .uapi import Cmd, MapFlags, MapType, ProgType

if TYPE_CHECKING:
    from .attr import ProgLoadAttr
    from .prog import BpfProg

__all__ = ["BTF_MAX_SIZE", "BtfInfo", "BtfObject", "FuncInfoRecord", "btf_get_by_fd",
           "btf_load", "load_prog_btf"]

PAGE_SIZE = 4096
#: kernel/bpf/btf.c: the largest BTF blob BPF_BTF_LOAD takes.
BTF_MAX_SIZE = 16 * 1024 * 1024
#: include/linux/bpf.h: the smallest and largest func_info record sizes.
MIN_BPF_FUNCINFO_SIZE = 8
MAX_FUNCINFO_REC_SIZE = 252


@attrs.frozen
class BtfInfo:
    """struct bpf_btf_info, with the BTF's bytes (what ``info.btf`` would receive)."""

    id: int
    btf_size: int
    name: str
    kernel_btf: bool
    btf: bytes = attrs.field(repr=False)

    _FORMAT = struct.Struct("<QIIQII")
    SIZE = _FORMAT.size


class BtfObject(BpfObject):
    """A loaded BTF: the parsed types and the bytes they came from."""

    kind = ObjKind.BTF

    def __init__(self, runtime: Runtime, btf: Btf, data: bytes, *, name: str = "",
                 kernel_btf: bool = False) -> None:
        super().__init__(runtime)
        self.btf = btf
        self.data = data
        self.name = name
        self.kernel_btf = kernel_btf

    def info(self) -> BtfInfo:
        return BtfInfo(id=self.id, btf_size=len(self.data), name=self.name,
                       kernel_btf=self.kernel_btf, btf=self.data)

    def get_info_by_fd(self, attr: InfoByFdAttr) -> BtfInfo | int:
        """btf_get_info_by_fd. A Python caller (``info`` None) gets a BtfInfo with the
        BTF's bytes. The caller's struct (a UserPtr) comes in first: its ``btf``
        pointer receives up to ``btf_size`` bytes of the BTF, its ``name`` pointer
        the name (ENOSPC, after writing what fits, when ``name_len`` is too
        small); the struct goes back with the true sizes."""
        if attr.info is None:
            return self.info()
        rt = self.runtime
        size = BtfInfo.SIZE
        info_len = attr.info_len
        if info_len > PAGE_SIZE:
            raise BpfError(errno.E2BIG, f"info_len {info_len} is larger than a page")
        if info_len > size and not check_zeroed_user(rt, _offset(attr.info, size),
                                                      info_len - size):
            raise BpfError(errno.E2BIG, "non-zero bytes past the end of struct bpf_btf_info")
        n = min(info_len, size)
        given = copy_from_user(rt, attr.info, n).ljust(size, b"\0")
        ubtf, ubtf_size, _, uname, uname_len, _ = BtfInfo._FORMAT.unpack(given)
        copy = min(len(self.data), ubtf_size)
        if copy:
            _copy_out(rt, UserPtr(ubtf), self.data[:copy])
        if bool(uname) != bool(uname_len):
            raise BpfError(errno.EINVAL, "name and name_len come together")
        name = self.name.encode()
        short = False
        if uname:
            if uname_len >= len(name) + 1:
                _copy_out(rt, UserPtr(uname), name + b"\0")
            else:
                _copy_out(rt, UserPtr(uname), name[:uname_len - 1] + b"\0")
                short = True
        out = BtfInfo._FORMAT.pack(ubtf, len(self.data), self.id, uname, len(name),
                                   int(self.kernel_btf))[:n]
        if isinstance(attr.info, UserPtr):
            _copy_out(rt, attr.info, out)
        if short:
            raise BpfError(errno.ENOSPC, f"name_len {uname_len} is too small for the name")
        if isinstance(attr.info, UserPtr):
            return 0
        return attrs.evolve(self.info(), btf=self.data[:copy])

    def __repr__(self) -> str:
        return f"<BtfObject id={self.id} {len(self.btf) - 1} types {self.name or '(user)'}>"


def _offset(buf: Any, off: int) -> Any:
    if isinstance(buf, UserPtr):
        return UserPtr(buf.addr + off)
    return None if buf is None else bytes(buf)[off:]


def btf_get_by_fd(rt: Runtime, fd: int) -> BtfObject:
    """btf_get_by_fd: EBADF when ``fd`` is not open, EINVAL when it is no BTF."""
    obj, _ = rt.get_object(fd, ObjKind.BTF)
    assert isinstance(obj, BtfObject)
    return obj


# -- the BTF verifier's log --------------------------------------------------------------
def _type_details(btf: Btf, t: BtfType) -> str:
    """btf_kind_operations.log_details of each kind, as the kernel prints them."""
    k = t.kind
    if k is BtfKind.INT:
        enc = {1: "SIGNED", 2: "CHAR", 4: "BOOL"}.get(t.int_encoding, "(none)")
        return (f"size={t.size} bits_offset={t.int_offset} nr_bits={t.int_bits} "
                f"encoding={enc}")
    if k in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64):
        return f"size={t.size} vlen={t.vlen}"
    if k is BtfKind.ARRAY and t.array is not None:
        return (f"type_id={t.array.type} index_type_id={t.array.index_type} "
                f"nr_elems={t.array.nelems}")
    if k is BtfKind.FUNC_PROTO:
        args = ", ".join(f"{p.type} {p.name or '(anon)'}" for p in t.params) or "void"
        return f"return={t.type} args=({args})"
    if k is BtfKind.FWD:
        return "union" if t.kflag else "struct"
    if k is BtfKind.DATASEC:
        return f"size={t.size} vlen={t.vlen}"
    if k is BtfKind.FLOAT:
        return f"size={t.size}"
    if k is BtfKind.VAR:
        return f"type_id={t.type} linkage={t.linkage}"
    if k is BtfKind.DECL_TAG:
        return f"type={t.type} component_idx={t.component_idx}"
    return f"type_id={t.type}"


def _log_types(btf: Btf) -> str:
    out = []
    for t in btf:
        out.append(f"[{t.id}] {t.kind.name} {t.name or '(anon)'} {_type_details(btf, t)}\n")
        for m in t.members:
            extra = f" bitfield_size={m.bitfield_size}" if t.kflag else ""
            out.append(f"\t{m.name or '(anon)'} type_id={m.type} bits_offset={m.bit_offset}"
                       f"{extra}\n")
        for e in t.enum_values:
            out.append(f"\t{e.name} val={e.value}\n")
    return "".join(out)


def _log_header(data: bytes) -> str:
    if len(data) < _HDR.size:
        return ""
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = \
        _HDR.unpack_from(data, 0)
    return (f"magic: {magic:#x}\nversion: {version}\nflags: {flags:#x}\nhdr_len: {hdr_len}\n"
            f"type_off: {type_off}\ntype_len: {type_len}\nstr_off: {str_off}\n"
            f"str_len: {str_len}\nbtf_total_size: {len(data)}\n")


# -- BPF_BTF_LOAD ------------------------------------------------------------------------
def btf_load(rt: Runtime, attr: BtfLoadAttr) -> int:
    """bpf_btf_load + btf_new_fd. Returns the fd (a LoadedFd carrying the log)."""
    from .prog import LoadedFd, VerifierLog, vlog_attr_valid

    if attr.btf_flags & ~int(MapFlags.TOKEN_FD):
        raise BpfError(errno.EINVAL, f"invalid btf_flags {attr.btf_flags:#x}")
    if attr.btf_flags & MapFlags.TOKEN_FD:
        rt.file(attr.btf_token_fd)  # EBADF; pyebpf has no BPF tokens
        raise BpfError(errno.EINVAL, f"fd {attr.btf_token_fd} is not a BPF token")
    if not rt.privileged:
        raise BpfError(errno.EPERM, "BPF_BTF_LOAD needs CAP_BPF")
    size = attr.btf_size
    if size is None:
        size = len(attr.btf) if isinstance(attr.btf, bytes | bytearray | memoryview) else 0
    if size > BTF_MAX_SIZE:
        raise BpfError(errno.E2BIG, f"btf_size {size} is over {BTF_MAX_SIZE}")
    has_buf = attr.btf_log_buf is not None
    if not vlog_attr_valid(attr.btf_log_level, has_buf, attr.btf_log_size):
        raise BpfError(errno.EINVAL, "invalid btf_log_level, btf_log_size and btf_log_buf")
    log = VerifierLog(attr.btf_log_level, attr.btf_log_size)
    data = copy_from_user(rt, attr.btf, size)
    log.write(_log_header(data))
    try:
        if len(data) < 8:
            raise BtfError("hdr_len not found")
        btf = Btf.parse(data)
    except BtfError as err:
        log.write(err.strerror + "\n")
        _deliver(rt, attr, log)
        raise
    log.write(_log_types(btf))
    _, true_size = _deliver(rt, attr, log)
    if log.truncated:
        raise BpfError(errno.ENOSPC, "BTF log buffer too small")
    obj = BtfObject(rt, btf, data)
    rt.register(obj)
    return LoadedFd(rt.install_fd(obj), log.text, true_size)


def _deliver(rt: Runtime, attr: BtfLoadAttr, log: Any) -> tuple[bytes, int]:
    out, true_size = log.finish()
    if isinstance(attr.btf_log_buf, UserPtr) and out:
        _copy_out(rt, attr.btf_log_buf, out)
    elif isinstance(attr.btf_log_buf, bytearray) and out:
        attr.btf_log_buf[:len(out)] = out
    return out, true_size


register_command(Cmd.BTF_LOAD, btf_load)


# -- a program's BTF ---------------------------------------------------------------------
@attrs.frozen
class FuncInfoRecord:
    """struct bpf_func_info: the first instruction of a subprogram, its FUNC type id."""

    insn_off: int
    type_id: int


def subprog_starts(insns: list[Any]) -> list[int]:
    """The first instruction of every subprogram: 0 and the targets of BPF-to-BPF
    calls and of ``ld_imm64`` function pointers (add_subprog_and_kfunc)."""
    starts = {0}
    i = 0
    while i < len(insns):
        insn = insns[i]
        if insn.code == 0x85 and insn.src == 1:
            starts.add(i + insn.imm + 1)
        elif insn.code == 0x18:
            if insn.src == 4:  # BPF_PSEUDO_FUNC
                starts.add(i + insn.imm + 1)
            i += 1
        i += 1
    return sorted(starts)


#: Program types that attach by BTF id (bpf_prog_load_check_attach).
_BTF_ATTACH_TYPES = frozenset({ProgType.TRACING, ProgType.LSM, ProgType.STRUCT_OPS,
                               ProgType.EXT})


def prog_load_btf(rt: Runtime, prog: BpfProg, attr: ProgLoadAttr) -> None:
    """What bpf_prog_load does with attach_prog_fd / attach_btf_id (the target program
    or the kernel BTF, then bpf_prog_load_check_attach), and bpf_check's
    check_btf_info. The program holds its target program until it is freed."""
    dst_prog: BpfProg | None = None
    attach_btf: BtfObject | None = None
    if attr.attach_prog_fd:
        f = rt.fds.get(attr.attach_prog_fd)
        if f is not None and f.obj.kind is ObjKind.PROG:
            dst_prog = f.obj  # type: ignore[assignment]
        else:  # attach_btf_obj_fd shares the field: a kernel BTF fd
            if f is None or f.obj.kind is not ObjKind.BTF:
                raise BpfError(errno.EINVAL, f"attach_prog_fd {attr.attach_prog_fd} is "
                               "neither a program nor a BTF")
            attach_btf = f.obj  # type: ignore[assignment]
            assert attach_btf is not None
            if not attach_btf.kernel_btf:
                raise BpfError(ENOTSUPP, "attach_btf_obj_fd must be a kernel BTF")
    elif attr.attach_btf_id:
        attach_btf = rt.btf_vmlinux  # type: ignore[attr-defined]
    btf_id = attr.attach_btf_id
    if btf_id and (btf_id > BTF_MAX_TYPE or (attach_btf is None and dst_prog is None)
                   or attr.prog_type not in _BTF_ATTACH_TYPES):
        raise BpfError(errno.EINVAL, f"attach_btf_id {btf_id} is not valid here")
    if attach_btf is not None and (not btf_id or dst_prog is not None):
        raise BpfError(errno.EINVAL, "an attach BTF needs an attach_btf_id")
    if dst_prog is not None and attr.prog_type not in (ProgType.TRACING, ProgType.EXT):
        raise BpfError(errno.EINVAL, "only tracing and extension programs attach to programs")
    load_prog_btf(rt, prog, attr)
    prog.attach_btf = attach_btf.btf if attach_btf is not None else None
    if dst_prog is not None:
        dst_prog.hold()
        prog.dst_prog = dst_prog


def load_prog_btf(rt: Runtime, prog: BpfProg, attr: ProgLoadAttr) -> None:
    """check_btf_info: take the program's BTF and func_info. Without func_info or
    line_info records the kernel ignores ``prog_btf_fd`` altogether."""
    if not attr.func_info_cnt and not attr.line_info_cnt:
        return
    obj = btf_get_by_fd(rt, attr.prog_btf_fd)
    if obj.kernel_btf:
        raise BpfError(errno.EACCES, "kernel BTF can't be a program's BTF")
    if attr.func_info_cnt:
        prog.func_info = _check_func_info(rt, prog, obj.btf, attr)
    prog.btf = obj.btf


def _check_func_info(rt: Runtime, prog: BpfProg, btf: Btf,
                     attr: ProgLoadAttr) -> list[FuncInfoRecord]:
    """check_btf_func_early (the records themselves), then check_btf_func (against the
    program's subprograms)."""
    n = attr.func_info_cnt
    rec = attr.func_info_rec_size
    if rec < MIN_BPF_FUNCINFO_SIZE or rec > MAX_FUNCINFO_REC_SIZE or rec % 4:
        raise BpfError(errno.EINVAL, f"invalid func info rec size {rec}")
    raw = copy_from_user(rt, attr.func_info, n * rec)
    out: list[FuncInfoRecord] = []
    for i in range(n):
        rec_bytes = raw[i * rec:(i + 1) * rec]
        if any(rec_bytes[MIN_BPF_FUNCINFO_SIZE:]):
            raise BpfError(errno.E2BIG, "nonzero tailing record in func info")
        insn_off, type_id = struct.unpack_from("<II", rec_bytes)
        if i == 0 and insn_off:
            raise BpfError(errno.EINVAL, f"nonzero insn_off {insn_off} for the first func "
                           "info record")
        if i and insn_off <= out[-1].insn_off:
            raise BpfError(errno.EINVAL, f"same or smaller insn offset ({insn_off}) than "
                           f"previous func info record ({out[-1].insn_off})")
        t = btf.types[type_id] if 0 < type_id < len(btf.types) else None
        if t is None or t.kind is not BtfKind.FUNC:
            raise BpfError(errno.EINVAL, f"invalid type id {type_id} in func info")
        out.append(FuncInfoRecord(insn_off, type_id))
    starts = subprog_starts(prog.orig_insns)
    if n != len(starts):
        raise BpfError(errno.EINVAL, "number of funcs in func_info doesn't match number of "
                       "subprogs")
    for r, start in zip(out, starts, strict=True):
        if r.insn_off != start:
            raise BpfError(errno.EINVAL, "func_info BTF section doesn't match subprog layout "
                           "in BPF program")
    return out


def func_is_global(btf: Btf, type_id: int) -> bool:
    return btf.type(type_id).linkage == FuncLinkage.GLOBAL


# -- maps with BTF ---------------------------------------------------------------------------
#: Special value fields (btf_parse_fields) by struct name, and the map types allowed to
#: hold each (map_check_btf's switch; anything else is EOPNOTSUPP).
SPECIAL_FIELDS: dict[str, frozenset[MapType]] = {
    "bpf_spin_lock": frozenset({MapType.HASH, MapType.ARRAY, MapType.CGROUP_STORAGE,
                                MapType.SK_STORAGE, MapType.INODE_STORAGE,
                                MapType.TASK_STORAGE, MapType.CGRP_STORAGE}),
    "bpf_res_spin_lock": frozenset({MapType.HASH, MapType.ARRAY, MapType.CGROUP_STORAGE,
                                    MapType.SK_STORAGE, MapType.INODE_STORAGE,
                                    MapType.TASK_STORAGE, MapType.CGRP_STORAGE}),
    "bpf_timer": frozenset({MapType.HASH, MapType.LRU_HASH, MapType.ARRAY}),
    "bpf_wq": frozenset({MapType.HASH, MapType.LRU_HASH, MapType.ARRAY}),
}
#: Map types whose ops say "no BTF here" (map_check_no_btf: ENOTSUPP).
_NO_BTF_MAPS = frozenset({MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY,
                          MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.STACK_TRACE,
                          MapType.SOCKMAP, MapType.SOCKHASH, MapType.DEVMAP,
                          MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP,
                          MapType.REUSEPORT_SOCKARRAY, MapType.QUEUE, MapType.STACK,
                          MapType.RINGBUF, MapType.USER_RINGBUF})
#: Keyless map types whose map_check_btf accepts a void key.
_KEYLESS_OK = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.BLOOM_FILTER})


def _special_fields(btf: Btf, tid: int, base: int, out: dict[str, int], depth: int = 0) -> None:
    t = btf.skip_mods_and_typedefs(tid)
    if t.kind is BtfKind.STRUCT and t.name in SPECIAL_FIELDS:
        if t.name in out:
            raise BpfError(errno.E2BIG, f"more than one {t.name} in a map value")
        out[t.name] = base
        return
    if t.kind in (BtfKind.STRUCT, BtfKind.UNION) and depth < 8:
        for m in t.members:
            if not m.bitfield_size and m.bit_offset % 8 == 0:
                _special_fields(btf, m.type, base + m.bit_offset // 8, out, depth + 1)
    elif t.kind is BtfKind.DATASEC:
        for s in t.secinfos:
            _special_fields(btf, s.type, base + s.offset, out, depth + 1)


def _type_size(btf: Btf, tid: int) -> int | None:
    """btf_type_id_size: the size of a sized type (after modifiers), else None."""
    try:
        t = btf.skip_mods_and_typedefs(tid)
        if t.kind in (BtfKind.UNKN, BtfKind.FUNC, BtfKind.FUNC_PROTO, BtfKind.FWD):
            return None
        return btf.sizeof(tid)
    except BtfError:
        return None


def map_check_btf(rt: Runtime, m: Any, attr: Any) -> None:
    """map_create's BTF part and map_check_btf: the types must describe the key and
    value (sizes equal), special fields (bpf_spin_lock, bpf_timer...) must be allowed
    in the map type; their offsets are kept on the map as ``btf_fields`` (name ->
    offset) for the verifier. The map holds a reference on the BTF object."""
    obj = btf_get_by_fd(rt, attr.btf_fd)
    if obj.kernel_btf:
        raise BpfError(errno.EACCES, "a map's BTF can't be the kernel's")
    btf = obj.btf
    fields: dict[str, int] = {}
    if attr.btf_value_type_id:
        mtype = MapType(attr.map_type)
        if attr.btf_key_type_id:
            if _type_size(btf, attr.btf_key_type_id) != m.key_size:
                raise BpfError(errno.EINVAL, "btf_key_type_id's size is not key_size")
        elif mtype not in _KEYLESS_OK and mtype not in _NO_BTF_MAPS:
            raise BpfError(errno.EINVAL, "this map type needs a key type")
        if _type_size(btf, attr.btf_value_type_id) != m.value_size:
            raise BpfError(errno.EINVAL, "btf_value_type_id's size is not value_size")
        _special_fields(btf, attr.btf_value_type_id, 0, fields)
        if fields:
            if attr.map_flags & (MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG):
                raise BpfError(errno.EACCES, "special fields in a RDONLY/WRONLY_PROG map")
            for name in fields:
                if mtype not in SPECIAL_FIELDS[name]:
                    raise BpfError(errno.EOPNOTSUPP, f"{mtype.name} maps can't hold {name}")
        if mtype in _NO_BTF_MAPS:
            raise BpfError(ENOTSUPP, f"{mtype.name} maps take no BTF")
        _map_type_check_btf(btf, mtype, m, attr)
    obj.hold()
    m.btf_obj = obj
    m.btf_id = obj.id
    m.btf_key_type_id = attr.btf_key_type_id
    m.btf_value_type_id = attr.btf_value_type_id
    m.btf_fields = fields


def _map_type_check_btf(btf: Btf, mtype: MapType, m: Any, attr: Any) -> None:
    """The map types' own map_check_btf (arrays: a u32 key or a one-element DATASEC;
    bloom filters: no key; LPM tries: a struct key)."""
    key = btf.skip_mods_and_typedefs(attr.btf_key_type_id) if attr.btf_key_type_id else None
    if mtype in (MapType.ARRAY, MapType.PERCPU_ARRAY):
        if key is None:
            value = btf.skip_mods_and_typedefs(attr.btf_value_type_id)
            if mtype != MapType.ARRAY or m.max_entries != 1 or value.kind is not \
                    BtfKind.DATASEC:
                raise BpfError(errno.EINVAL, "a keyless array is a one-element DATASEC")
        elif key.kind is not BtfKind.INT or key.int_bits != 32 or key.int_offset:
            raise BpfError(errno.EINVAL, "an array's key type must be a 32-bit int")
    elif mtype == MapType.BLOOM_FILTER and key is not None:
        raise BpfError(errno.EINVAL, "bloom filters have no key type")
    elif mtype == MapType.LPM_TRIE and (key is None or key.kind is not BtfKind.STRUCT):
        raise BpfError(errno.EINVAL, "an LPM trie's key type must be a struct")
