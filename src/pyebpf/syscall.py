"""``bpf(cmd, attr)``: the multiplexor, one handler per command (kernel/bpf/syscall.c).

Each handler checks its arguments in the kernel's order, so that when several
things are wrong the caller gets the same errno the kernel gives. Buffers a
command reads are copied in first (a too-short buffer or a bad user pointer is
EFAULT, as a fault in ``copy_from_user`` is); results are returned to the
Python caller, or written to user memory when the attr carries a
:class:`~pyebpf.attr.UserPtr`.

Return values: the new fd (MAP_CREATE, OBJ_GET, *_GET_FD_BY_ID), the next id
(*_GET_NEXT_ID), the bytes read (MAP_LOOKUP_ELEM, GET_NEXT_KEY,
LOOKUP_AND_DELETE), a record (batches, OBJ_GET_INFO_BY_FD), else 0.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import Any

import attrs

from .attr import (
    Buffer,
    GetIdAttr,
    InfoByFdAttr,
    MapBatchAttr,
    MapCreateAttr,
    MapElemAttr,
    MapFdAttr,
    ObjPinAttr,
    UserPtr,
    attr_from_bytes,
    record_class,
)
from .errors import ENOTSUPP, BpfError, BpfFault
from .maps import map_class
from .maps.base import BpfMap
from .runtime import BpfObject, FMode, ObjKind, Runtime, default_runtime
from .uapi import BPF_F_LOCK, Cmd, MapFlags, MapType

__all__ = ["BatchResult", "MapInfo", "bpf", "copy_from_user"]

#: Map types whose lookup-and-delete command exists (others: ENOTSUPP).
_LOOKUP_AND_DELETE_TYPES = {MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                            MapType.LRU_PERCPU_HASH, MapType.STACK_TRACE}
_QUEUE_TYPES = {MapType.QUEUE, MapType.STACK}
#: Types an unprivileged user may create (map_create's permission switch).
_UNPRIV_MAP_TYPES = {
    MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY,
    MapType.CGROUP_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH, MapType.PERCPU_HASH,
    MapType.HASH_OF_MAPS, MapType.RINGBUF, MapType.USER_RINGBUF, MapType.CGROUP_STORAGE,
    MapType.PERCPU_CGROUP_STORAGE,
}
_NET_ADMIN_MAP_TYPES = {MapType.SOCKMAP, MapType.SOCKHASH, MapType.DEVMAP,
                        MapType.DEVMAP_HASH, MapType.XSKMAP}
BPF_OBJ_FLAG_MASK = MapFlags.RDONLY | MapFlags.WRONLY
BPFFS_ROOT = "/sys/fs/bpf"


# -- user memory ------------------------------------------------------------------------
def copy_from_user(rt: Runtime, buf: Buffer, size: int) -> bytes:
    """Read ``size`` bytes from a caller's buffer, as copy_from_user: EFAULT on a
    NULL pointer, a bad address, or a buffer shorter than ``size``."""
    if size == 0:
        return b""
    if buf is None:
        raise BpfError(errno.EFAULT, "NULL pointer where a buffer was needed")
    if isinstance(buf, UserPtr):
        try:
            return rt.user_memory.read(buf.addr, size)
        except BpfFault as fault:
            raise BpfError(errno.EFAULT, f"bad user address: {fault.message}") from None
    data = bytes(buf)
    if len(data) < size:
        raise BpfError(errno.EFAULT, f"buffer of {len(data)} bytes where {size} are read")
    return data[:size]


def _copy_out(rt: Runtime, dst: Buffer, data: bytes) -> bytes | int:
    """Deliver a result: into user memory for a UserPtr (returning 0), else as bytes."""
    if isinstance(dst, UserPtr):
        try:
            rt.user_memory.write(dst.addr, data)
        except BpfFault as fault:
            raise BpfError(errno.EFAULT, f"bad user address: {fault.message}") from None
        return 0
    return data


def _copy_key(rt: Runtime, m: BpfMap, ukey: Buffer) -> bytes | None:
    """__bpf_copy_key: a map without keys takes only a NULL key (else EINVAL)."""
    if m.key_size:
        return copy_from_user(rt, ukey, m.key_size)
    if ukey is not None:
        raise BpfError(errno.EINVAL, "this map has no keys; key must be NULL")
    return None


def _map_from_fd(rt: Runtime, fd: int) -> tuple[BpfMap, FMode]:
    obj, f = rt.get_object(fd, ObjKind.MAP)
    assert isinstance(obj, BpfMap)
    mode = f.mode
    if obj.frozen:
        mode &= ~FMode.WRITE
    return obj, mode


def _need(mode: FMode, want: FMode, what: str) -> None:
    if (mode & want) != want:
        raise BpfError(errno.EPERM, f"the map fd does not allow {what}")


def file_mode(flags: int) -> FMode:
    """bpf_get_file_flag: RDONLY/WRONLY choose the fd's mode; both at once is EINVAL."""
    if flags & MapFlags.RDONLY and flags & MapFlags.WRONLY:
        raise BpfError(errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY together")
    if flags & MapFlags.RDONLY:
        return FMode.READ
    if flags & MapFlags.WRONLY:
        return FMode.WRITE
    return FMode.RW


def obj_name_cpy(name: bytes | str) -> str:
    """bpf_obj_name_cpy: letters, digits, '_' and '.', NUL-terminated within 16 bytes."""
    raw = name.encode() if isinstance(name, str) else bytes(name)
    raw = raw[:16] if len(raw) >= 16 else raw + b"\0"
    out = []
    for b in raw:
        if b == 0:
            return "".join(out)
        c = chr(b)
        if not (c.isascii() and (c.isalnum() or c in "_.")):
            raise BpfError(errno.EINVAL, f"invalid character {c!r} in object name")
        out.append(c)
    raise BpfError(errno.EINVAL, "object name is not NUL-terminated within 16 bytes")


# -- MAP_CREATE ----------------------------------------------------------------------
def map_create(rt: Runtime, attr: MapCreateAttr) -> int:
    if attr.map_type not in (MapType.BLOOM_FILTER, MapType.ARENA) and attr.map_extra:
        raise BpfError(errno.EINVAL, "map_extra is only for bloom filters and arenas")
    mode = file_mode(attr.map_flags)
    if attr.map_flags & MapFlags.NUMA_NODE and attr.numa_node != 0:
        raise BpfError(errno.EINVAL, f"NUMA node {attr.numa_node} is not online")
    cls = map_class(attr.map_type)
    if cls is None:
        raise BpfError(errno.EINVAL, f"unknown or unsupported map type {attr.map_type}")
    cls.alloc_check(attr, rt)
    if attr.map_ifindex:
        raise BpfError(errno.EOPNOTSUPP, "device offload is not supported")
    mtype = MapType(attr.map_type)
    if not rt.privileged and mtype not in _UNPRIV_MAP_TYPES:
        raise BpfError(errno.EPERM, f"creating a {mtype.name} map needs CAP_BPF")
    if attr.btf_key_type_id or attr.btf_value_type_id or attr.btf_vmlinux_value_type_id:
        # Until BTF objects exist, type ids can only be wrong.
        raise BpfError(errno.EINVAL, "map BTF type ids need a BTF object (not supported yet)")
    m = cls(rt, attr)
    try:
        m.name = obj_name_cpy(attr.map_name)
    except BpfError:
        m.free()
        raise
    rt.register(m)
    try:
        return rt.install_fd(m, mode)
    except BpfError:
        m.refcnt = 1
        m.release()
        raise


# -- element commands --------------------------------------------------------------------
def map_lookup_elem(rt: Runtime, attr: MapElemAttr) -> bytes | int:
    if attr.flags & ~BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"invalid lookup flags {attr.flags:#x}")
    m, mode = _map_from_fd(rt, attr.map_fd)
    _need(mode, FMode.READ, "reading")
    if attr.flags & BPF_F_LOCK:
        raise BpfError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the value")
    key = _copy_key(rt, m, attr.key)
    if m.map_type is MapType.BLOOM_FILTER:
        value = copy_from_user(rt, attr.value, m.syscall_value_size)
        m.syscall_peek_value(value)  # type: ignore[attr-defined]
        return 0
    value = m.syscall_lookup(key, attr.flags) if key is not None else m.peek_elem()
    return _copy_out(rt, attr.value, value)


def map_update_elem(rt: Runtime, attr: MapElemAttr) -> int:
    m, mode = _map_from_fd(rt, attr.map_fd)
    _need(mode, FMode.WRITE, "writing")
    if attr.flags & BPF_F_LOCK and not getattr(m, "has_spin_lock", False):
        raise BpfError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the value")
    key = _copy_key(rt, m, attr.key)
    value = copy_from_user(rt, attr.value, m.syscall_value_size)
    if key is None:
        m.push_elem(value, attr.flags)
    else:
        m.syscall_update(key, value, attr.flags)
    return 0


def map_delete_elem(rt: Runtime, attr: MapElemAttr) -> int:
    m, mode = _map_from_fd(rt, attr.map_fd)
    _need(mode, FMode.WRITE, "writing")
    key = _copy_key(rt, m, attr.key)
    if key is None:
        raise BpfError(errno.EINVAL, "this map has no keys to delete")
    m.delete_elem(key)
    return 0


def map_get_next_key(rt: Runtime, attr: MapElemAttr) -> bytes | int:
    m, mode = _map_from_fd(rt, attr.map_fd)
    _need(mode, FMode.READ, "reading")
    key = _copy_key(rt, m, attr.key) if attr.key is not None else None
    return _copy_out(rt, attr.value, m.get_next_key(key))


def map_lookup_and_delete_elem(rt: Runtime, attr: MapElemAttr) -> bytes | int:
    if attr.flags & ~BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"invalid flags {attr.flags:#x}")
    m, mode = _map_from_fd(rt, attr.map_fd)
    _need(mode, FMode.RW, "reading and writing")
    if attr.flags and m.map_type in _QUEUE_TYPES:
        raise BpfError(errno.EINVAL, "queue and stack maps take no flags here")
    if attr.flags & BPF_F_LOCK and not getattr(m, "has_spin_lock", False):
        raise BpfError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the value")
    key = _copy_key(rt, m, attr.key)
    if m.map_type in _QUEUE_TYPES:
        value = m.pop_elem()
    elif m.map_type in _LOOKUP_AND_DELETE_TYPES:
        value = m.syscall_lookup_and_delete(key, attr.flags)
    else:
        raise BpfError(ENOTSUPP, f"{m.map_type.name} maps have no lookup-and-delete")
    return _copy_out(rt, attr.value, value)


def map_freeze(rt: Runtime, attr: MapFdAttr) -> int:
    m, mode = _map_from_fd(rt, attr.map_fd)
    if m.map_type is MapType.STRUCT_OPS or getattr(m, "has_special_fields", False):
        raise BpfError(ENOTSUPP, "this map can't be frozen")
    if m.frozen:
        raise BpfError(errno.EBUSY, "the map is already frozen")
    _need(mode, FMode.WRITE, "writing")
    m.frozen = True
    return 0


# -- batches ------------------------------------------------------------------------------
@attrs.frozen
class BatchResult:
    """What a batch command gives back: the elements handled and where to resume."""

    count: int
    keys: bytes = b""
    values: bytes = b""
    out_batch: bytes | None = None


def _batch(rt: Runtime, attr: MapBatchAttr, cmd: Cmd) -> BatchResult:
    from .maps.batch import map_batch

    m, mode = _map_from_fd(rt, attr.map_fd)
    return map_batch(rt, m, mode, attr, cmd)


# -- pinning ---------------------------------------------------------------------------------
def _path(rt: Runtime, pathname: str | bytes | UserPtr) -> str:
    if isinstance(pathname, UserPtr):
        raw = b""
        addr = pathname.addr
        while True:
            chunk = copy_from_user(rt, UserPtr(addr), 1)
            if chunk == b"\0":
                break
            raw += chunk
            addr += 1
            if len(raw) > 4096:
                raise BpfError(errno.ENAMETOOLONG, "path too long")
        pathname = raw
    path = pathname.decode() if isinstance(pathname, bytes) else pathname
    if not path:
        raise BpfError(errno.ENOENT, "empty path")
    return path


def _check_bpffs(path: str) -> None:
    if not path.startswith(BPFFS_ROOT + "/"):
        raise BpfError(errno.EPERM, f"{path} is not on a bpf filesystem ({BPFFS_ROOT})")
    parent = path[: path.rindex("/")]
    if parent != BPFFS_ROOT:
        raise BpfError(errno.ENOENT, f"no directory {parent} in the bpf filesystem")


def obj_pin(rt: Runtime, attr: ObjPinAttr) -> int:
    if attr.file_flags:
        raise BpfError(errno.EINVAL, "OBJ_PIN takes no file_flags")
    f = rt.file(attr.bpf_fd)
    path = _path(rt, attr.pathname)
    _check_bpffs(path)
    if path in rt.bpffs:
        raise BpfError(errno.EEXIST, f"{path} exists")
    f.obj.hold()
    rt.bpffs[path] = f.obj
    return 0


def obj_get(rt: Runtime, attr: ObjPinAttr) -> int:
    if attr.bpf_fd or attr.file_flags & ~BPF_OBJ_FLAG_MASK:
        raise BpfError(errno.EINVAL, "OBJ_GET takes no bpf_fd and only RDONLY/WRONLY")
    mode = file_mode(attr.file_flags)
    path = _path(rt, attr.pathname)
    obj = rt.bpffs.get(path)
    if obj is None:
        raise BpfError(errno.ENOENT, f"nothing pinned at {path}")
    return rt.install_fd(obj, mode)


# -- ids ------------------------------------------------------------------------------------------
_ID_KIND = {
    Cmd.PROG_GET_NEXT_ID: ObjKind.PROG,
    Cmd.MAP_GET_NEXT_ID: ObjKind.MAP,
    Cmd.BTF_GET_NEXT_ID: ObjKind.BTF,
    Cmd.LINK_GET_NEXT_ID: ObjKind.LINK,
    Cmd.PROG_GET_FD_BY_ID: ObjKind.PROG,
    Cmd.MAP_GET_FD_BY_ID: ObjKind.MAP,
    Cmd.BTF_GET_FD_BY_ID: ObjKind.BTF,
    Cmd.LINK_GET_FD_BY_ID: ObjKind.LINK,
}


def _admin(rt: Runtime) -> None:
    if not rt.privileged:
        raise BpfError(errno.EPERM, "needs CAP_SYS_ADMIN")


def get_next_id(rt: Runtime, attr: GetIdAttr, cmd: Cmd) -> int:
    if attr.next_id or attr.open_flags or attr.fd_by_id_token_fd or attr.start_id >= 0x7FFF_FFFF:
        raise BpfError(errno.EINVAL, "invalid start_id or non-zero fields")
    _admin(rt)
    return rt.next_id(_ID_KIND[cmd], attr.start_id)


def get_fd_by_id(rt: Runtime, attr: GetIdAttr, cmd: Cmd) -> int:
    kind = _ID_KIND[cmd]
    if kind is ObjKind.MAP:
        if attr.open_flags & ~BPF_OBJ_FLAG_MASK:
            raise BpfError(errno.EINVAL, "invalid open_flags")
    elif attr.next_id or attr.open_flags:
        raise BpfError(errno.EINVAL, "non-zero fields after the id")
    _admin(rt)
    mode = file_mode(attr.open_flags)
    obj = rt.objects(kind).get(attr.start_id)
    if obj is None:
        raise BpfError(errno.ENOENT, f"no {kind.value} with id {attr.start_id}")
    return rt.install_fd(obj, mode)


# -- info ------------------------------------------------------------------------------------------
@attrs.frozen
class MapInfo:
    """struct bpf_map_info."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    ifindex: int = 0
    btf_vmlinux_value_type_id: int = 0
    netns_dev: int = 0
    netns_ino: int = 0
    btf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_id: int = 0
    map_extra: int = 0

    _FORMAT = struct.Struct("<6I16s2IQQ4I4xQ")

    def pack(self) -> bytes:
        return self._FORMAT.pack(
            self.type, self.id, self.key_size, self.value_size, self.max_entries,
            self.map_flags, self.name.encode(), self.ifindex, self.btf_vmlinux_value_type_id,
            self.netns_dev, self.netns_ino, self.btf_id, self.btf_key_type_id,
            self.btf_value_type_id, self.btf_vmlinux_id, self.map_extra)


def map_info(m: BpfMap) -> MapInfo:
    return MapInfo(type=int(m.map_type), id=m.id, key_size=m.key_size,
                   value_size=m.value_size, max_entries=m.max_entries,
                   map_flags=m.map_flags, name=m.name, map_extra=m.map_extra)


def obj_get_info_by_fd(rt: Runtime, attr: InfoByFdAttr) -> Any:
    f = rt.fds.get(attr.bpf_fd)
    if f is None:
        raise BpfError(errno.EBADFD, f"fd {attr.bpf_fd} is not open")
    obj: BpfObject = f.obj
    if not isinstance(obj, BpfMap):
        info_fn = getattr(obj, "info", None)
        if info_fn is None:
            raise BpfError(errno.EINVAL, "no info for this kind of object")
        return info_fn()
    info = map_info(obj)
    if isinstance(attr.info, UserPtr):
        raw = info.pack()
        size = min(attr.info_len, len(raw))
        _copy_out(rt, attr.info, raw[:size])
        return 0
    return info


# -- the multiplexor ------------------------------------------------------------------------------
_HANDLERS: dict[Cmd, Callable[..., Any]] = {
    Cmd.MAP_CREATE: map_create,
    Cmd.MAP_LOOKUP_ELEM: map_lookup_elem,
    Cmd.MAP_UPDATE_ELEM: map_update_elem,
    Cmd.MAP_DELETE_ELEM: map_delete_elem,
    Cmd.MAP_GET_NEXT_KEY: map_get_next_key,
    Cmd.MAP_LOOKUP_AND_DELETE_ELEM: map_lookup_and_delete_elem,
    Cmd.MAP_FREEZE: map_freeze,
    Cmd.OBJ_PIN: obj_pin,
    Cmd.OBJ_GET: obj_get,
    Cmd.OBJ_GET_INFO_BY_FD: obj_get_info_by_fd,
}
_HANDLERS_WITH_CMD: dict[Cmd, Callable[..., Any]] = {
    **dict.fromkeys((Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH,
                     Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH), _batch),
    **dict.fromkeys((Cmd.PROG_GET_NEXT_ID, Cmd.MAP_GET_NEXT_ID, Cmd.BTF_GET_NEXT_ID,
                     Cmd.LINK_GET_NEXT_ID), get_next_id),
    **dict.fromkeys((Cmd.PROG_GET_FD_BY_ID, Cmd.MAP_GET_FD_BY_ID, Cmd.BTF_GET_FD_BY_ID,
                     Cmd.LINK_GET_FD_BY_ID), get_fd_by_id),
}


def register_command(cmd: Cmd, handler: Callable[..., Any]) -> None:
    """Add the handler of a command implemented elsewhere (programs, links, BTF)."""
    _HANDLERS[cmd] = handler


def bpf(cmd: int, attr: Any, *, runtime: Runtime | None = None) -> Any:
    """The bpf() system call: run ``cmd`` with ``attr`` on ``runtime`` (default: the
    process-wide one). ``attr`` is the command's record, or the raw bytes of a
    ``union bpf_attr`` (of the size the caller would pass). Raises BpfError."""
    rt = runtime if runtime is not None else default_runtime()
    try:
        command = Cmd(cmd)
    except ValueError:
        raise BpfError(errno.EINVAL, f"unknown bpf command {cmd}") from None
    if isinstance(attr, (bytes, bytearray, memoryview)):
        attr = attr_from_bytes(command, bytes(attr))
    else:
        want = record_class(command) if command in _HANDLERS or command in _HANDLERS_WITH_CMD \
            else None
        if want is not None and not isinstance(attr, want):
            raise BpfError(errno.EINVAL, f"{command.name} takes a {want.__name__}, not "
                           f"{type(attr).__name__}")
    if command in _HANDLERS_WITH_CMD:
        return _HANDLERS_WITH_CMD[command](rt, attr, command)
    handler = _HANDLERS.get(command)
    if handler is None:
        raise BpfError(errno.EINVAL, f"{command.name} is not implemented by pyebpf yet")
    return handler(rt, attr)
