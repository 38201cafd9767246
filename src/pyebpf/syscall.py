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
    check_record,
    check_uarg_tail_zero,
    record_class,
)
from .errors import ENOTSUPP, BpfError, BpfFault
from .maps import map_class
from .maps.base import BpfMap
from .runtime import BpfObject, FMode, ObjKind, Runtime, default_runtime
from .uapi import BPF_F_LOCK, Cmd, MapFlags, MapType

__all__ = ["BatchResult", "MapInfo", "bpf", "check_zeroed_user", "copy_from_user"]

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
#: Plain ints: ``~`` of an IntFlag keeps only the defined bits, so unknown bits
#: would slip through a ``flags & ~MASK`` test.
BPF_OBJ_FLAG_MASK = int(MapFlags.RDONLY | MapFlags.WRONLY)
BPFFS_ROOT = "/sys/fs/bpf"
SHA256_DIGEST_SIZE = 32
AT_FDCWD = -100
PAGE_SIZE = 4096
#: The loopback device every network namespace has.
_LOOPBACK_IFINDEX = 1


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


def check_zeroed_user(rt: Runtime, buf: Buffer, size: int) -> bool:
    """lib/usercopy.c check_zeroed_user: whether ``size`` bytes are all zero. It scans
    in order, so a non-zero byte before the first unreadable one answers False (the
    caller's E2BIG) where a fault first would be EFAULT."""
    try:
        return not any(copy_from_user(rt, buf, size))
    except BpfError:
        if isinstance(buf, UserPtr):
            prefix = bytearray()
            for i in range(size):
                try:
                    prefix += rt.user_memory.read(buf.addr + i, 1)
                except BpfFault:
                    break
        else:
            prefix = bytearray(b"" if buf is None else bytes(buf)[:size])
        if any(prefix):
            return False
        raise


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


#: Bytes the kernel's isalnum() accepts (lib/ctype.c is Latin-1: 0xC0-0xFF are
#: letters, except the multiplication and division signs 0xD7 and 0xF7), plus '_', '.'.
_NAME_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_."
    + bytes(b for b in range(0xC0, 0x100) if b not in (0xD7, 0xF7)))


def obj_name_cpy(name: bytes | str) -> str:
    """bpf_obj_name_cpy: alphanumerics, '_' and '.', NUL-terminated within 16 bytes.

    The name is returned as ``str`` decoded as Latin-1 (one character per byte), which
    is how :class:`MapInfo` gives names back; ``str`` input is encoded as UTF-8."""
    raw = name.encode() if isinstance(name, str) else bytes(name)
    raw = raw[:16] if len(raw) >= 16 else raw + b"\0"
    for i, b in enumerate(raw):
        if b == 0:
            return raw[:i].decode("latin-1")
        if b not in _NAME_BYTES:
            raise BpfError(errno.EINVAL, f"invalid character {bytes([b])!r} in object name")
    raise BpfError(errno.EINVAL, "object name is not NUL-terminated within 16 bytes")


# -- MAP_CREATE ----------------------------------------------------------------------
def map_create(rt: Runtime, attr: MapCreateAttr) -> int:
    # The kernel's order (map_create in kernel/bpf/syscall.c). BPF_F_TOKEN_FD is noted
    # and cleared first, so per-type flag checks don't trip on it.
    token_flag = bool(attr.map_flags & MapFlags.TOKEN_FD)
    if token_flag:
        attr = attrs.evolve(attr, map_flags=attr.map_flags & ~int(MapFlags.TOKEN_FD))
    if attr.btf_vmlinux_value_type_id:
        if (attr.map_type != MapType.STRUCT_OPS or attr.btf_key_type_id
                or attr.btf_value_type_id):
            raise BpfError(errno.EINVAL, "btf_vmlinux_value_type_id is for struct_ops maps, "
                           "without key/value type ids")
    elif attr.btf_key_type_id and not attr.btf_value_type_id:
        raise BpfError(errno.EINVAL, "btf_key_type_id without btf_value_type_id")
    if attr.map_type not in (MapType.BLOOM_FILTER, MapType.ARENA) and attr.map_extra:
        raise BpfError(errno.EINVAL, "map_extra is only for bloom filters and arenas")
    mode = file_mode(attr.map_flags)
    # bpf_map_attr_numa_node: without BPF_F_NUMA_NODE, or with node -1
    # (NUMA_NO_NODE), any node will do; the runtime has one node, 0.
    if attr.map_flags & MapFlags.NUMA_NODE and attr.numa_node not in (0, 0xFFFF_FFFF):
        raise BpfError(errno.EINVAL, f"NUMA node {attr.numa_node} is not online")
    cls = map_class(attr.map_type)
    if cls is None:
        raise BpfError(errno.EINVAL, f"unknown or unsupported map type {attr.map_type}")
    cls.alloc_check(attr, rt)
    if token_flag:
        # bpf_token_get_from_fd: pyebpf has no BPF tokens, so the fd is never one.
        rt.file(attr.map_token_fd)
        raise BpfError(errno.EINVAL, f"fd {attr.map_token_fd} is not a BPF token")
    mtype = MapType(attr.map_type)
    if not rt.privileged and mtype not in _UNPRIV_MAP_TYPES:
        raise BpfError(errno.EPERM, f"creating a {mtype.name} map needs CAP_BPF")
    if attr.map_ifindex:
        # bpf_map_offload_map_alloc: only hash and array maps; the runtime's one
        # network device is the loopback (ifindex 1), which offloads nothing.
        if not rt.privileged:
            raise BpfError(errno.EPERM, "device offload needs CAP_SYS_ADMIN")
        if mtype not in (MapType.HASH, MapType.ARRAY):
            raise BpfError(errno.EINVAL, "only hash and array maps can be offloaded")
        if attr.map_ifindex != _LOOPBACK_IFINDEX:
            raise BpfError(errno.EINVAL, f"no network device with ifindex {attr.map_ifindex}")
        raise BpfError(errno.EOPNOTSUPP, "the device does not offload BPF maps")
    m = cls(rt, attr)
    try:
        m.name = obj_name_cpy(attr.map_name)
        if attr.btf_key_type_id or attr.btf_value_type_id or attr.btf_vmlinux_value_type_id:
            from .btf_load import map_check_btf

            map_check_btf(rt, m, attr)  # key/value types, special fields; holds the BTF
        if attr.excl_prog_hash is not None:
            if attr.excl_prog_hash_size != SHA256_DIGEST_SIZE:
                raise BpfError(errno.EINVAL, "excl_prog_hash_size must be 32 (SHA-256)")
            m.excl_prog_sha = copy_from_user(rt, attr.excl_prog_hash, SHA256_DIGEST_SIZE)
        elif attr.excl_prog_hash_size:
            raise BpfError(errno.EINVAL, "excl_prog_hash_size without excl_prog_hash")
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
    # A keyless map gets the NULL key, as the kernel's map_delete_elem op does
    # (queue/stack: EINVAL, bloom filter: EOPNOTSUPP, ring buffer: ENOTSUPP).
    m.delete_elem(key)  # type: ignore[arg-type]
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
    # A frozen map's fds have lost write access (map_get_sys_perms), so freezing
    # twice is EPERM, as on the kernel; EBUSY is for a map with writers active.
    _need(mode, FMode.WRITE, "writing")
    if m.frozen or getattr(m, "write_active", 0):
        raise BpfError(errno.EBUSY, "the map is already frozen or has active writers")
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
def _path(rt: Runtime, pathname: str | bytes | UserPtr | None) -> str:
    if pathname is None:
        raise BpfError(errno.EFAULT, "NULL pathname")
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


def _check_path_fd(attr: ObjPinAttr) -> None:
    """path_fd has to come with BPF_F_PATH_FD (EINVAL)."""
    if not attr.file_flags & MapFlags.PATH_FD and attr.path_fd:
        raise BpfError(errno.EINVAL, "path_fd without BPF_F_PATH_FD")


def _resolve(rt: Runtime, attr: ObjPinAttr, path: str) -> str:
    """A relative path is looked up from path_fd (BPF_F_PATH_FD) or the cwd; pyebpf's
    fds are BPF objects, never directories. An absolute path ignores path_fd."""
    if path.startswith("/") or not attr.file_flags & MapFlags.PATH_FD \
            or attr.path_fd == AT_FDCWD:
        return path
    rt.file(attr.path_fd)  # EBADF
    raise BpfError(errno.ENOTDIR, f"fd {attr.path_fd} is not a directory")


def obj_pin(rt: Runtime, attr: ObjPinAttr) -> int:
    if attr.file_flags & ~int(MapFlags.PATH_FD):
        raise BpfError(errno.EINVAL, "OBJ_PIN takes only BPF_F_PATH_FD in file_flags")
    _check_path_fd(attr)
    # bpf_fd_probe_obj: a map, a program or a link; anything else (no fd at all
    # included) is EINVAL.
    f = rt.fds.get(attr.bpf_fd)
    if f is None or f.obj.kind not in (ObjKind.MAP, ObjKind.PROG, ObjKind.LINK):
        raise BpfError(errno.EINVAL, f"fd {attr.bpf_fd} is no map, program or link")
    path = _resolve(rt, attr, _path(rt, attr.pathname))
    _check_bpffs(path)
    if path in rt.bpffs:
        raise BpfError(errno.EEXIST, f"{path} exists")
    f.obj.hold()
    rt.bpffs[path] = f.obj
    return 0


def obj_get(rt: Runtime, attr: ObjPinAttr) -> int:
    if attr.bpf_fd or attr.file_flags & ~(BPF_OBJ_FLAG_MASK | int(MapFlags.PATH_FD)):
        raise BpfError(errno.EINVAL, "OBJ_GET takes no bpf_fd, and only RDONLY/WRONLY/PATH_FD")
    _check_path_fd(attr)
    mode = file_mode(attr.file_flags)
    path = _resolve(rt, attr, _path(rt, attr.pathname))
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
    # next_id is the output (its input value is ignored); fields past it are CHECK_ATTR's.
    if attr.start_id >= 0x7FFF_FFFF:
        raise BpfError(errno.EINVAL, f"start_id {attr.start_id} is not below INT_MAX")
    _admin(rt)
    return rt.next_id(_ID_KIND[cmd], attr.start_id)


def get_fd_by_id(rt: Runtime, attr: GetIdAttr, cmd: Cmd) -> int:
    # PROG/LINK end at the id (CHECK_ATTR covers the rest); MAP takes open_flags (the
    # next_id between is ignored); BTF takes BPF_F_TOKEN_FD and a token fd.
    kind = _ID_KIND[cmd]
    if kind is ObjKind.MAP and attr.open_flags & ~BPF_OBJ_FLAG_MASK:
        raise BpfError(errno.EINVAL, f"invalid open_flags {attr.open_flags:#x}")
    if kind is ObjKind.BTF:
        if attr.open_flags & ~int(MapFlags.TOKEN_FD):
            raise BpfError(errno.EINVAL, f"invalid open_flags {attr.open_flags:#x}")
        if attr.open_flags & MapFlags.TOKEN_FD:
            rt.file(attr.fd_by_id_token_fd)  # EBADF; pyebpf has no BPF tokens:
            raise BpfError(errno.EINVAL, f"fd {attr.fd_by_id_token_fd} is not a BPF token")
    _admin(rt)
    mode = file_mode(attr.open_flags) if kind is ObjKind.MAP else FMode.RW
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
    hash: int = 0
    hash_size: int = 0

    #: The 6.18 layout: 104 bytes (map_extra at 80, then the u64 ``hash`` pointer and
    #: the u32 ``hash_size``, padded to 8).
    _FORMAT = struct.Struct("<6I16s2IQQ4IQQI4x")
    SIZE = _FORMAT.size

    @classmethod
    def unpack(cls, raw: bytes) -> MapInfo:
        """From the struct's bytes (shorter input is zero-extended)."""
        raw = bytes(raw[:cls.SIZE]).ljust(cls.SIZE, b"\0")
        (mtype, mid, ks, vs, me, flags, name, ifindex, vt, ns_dev, ns_ino, btf_id, bk, bv,
         bvm, extra, hash_, hash_size) = cls._FORMAT.unpack(raw)
        return cls(type=mtype, id=mid, key_size=ks, value_size=vs, max_entries=me,
                   map_flags=flags, name=name.split(b"\0", 1)[0].decode("latin-1"),
                   ifindex=ifindex, btf_vmlinux_value_type_id=vt, netns_dev=ns_dev,
                   netns_ino=ns_ino, btf_id=btf_id, btf_key_type_id=bk, btf_value_type_id=bv,
                   btf_vmlinux_id=bvm, map_extra=extra, hash=hash_, hash_size=hash_size)

    def pack(self) -> bytes:
        return self._FORMAT.pack(
            self.type, self.id, self.key_size, self.value_size, self.max_entries,
            self.map_flags, self.name.encode("latin-1"), self.ifindex,
            self.btf_vmlinux_value_type_id, self.netns_dev, self.netns_ino, self.btf_id,
            self.btf_key_type_id, self.btf_value_type_id, self.btf_vmlinux_id, self.map_extra,
            self.hash, self.hash_size)


def map_info(m: BpfMap) -> MapInfo:
    return MapInfo(type=int(m.map_type), id=m.id, key_size=m.key_size,
                   value_size=m.value_size, max_entries=m.max_entries,
                   map_flags=m.map_flags, name=m.name, map_extra=m.map_extra)


def obj_get_info_by_fd(rt: Runtime, attr: InfoByFdAttr) -> Any:
    f = rt.fds.get(attr.bpf_fd)
    if f is None:
        raise BpfError(errno.EBADFD, f"fd {attr.bpf_fd} is not open")
    obj: BpfObject = f.obj
    by_fd = getattr(obj, "get_info_by_fd", None)  # objects that read the caller's struct
    if by_fd is not None:
        return by_fd(attr)
    if not isinstance(obj, BpfMap):
        info_fn = getattr(obj, "info", None)
        if info_fn is None:
            raise BpfError(errno.EINVAL, "no info for this kind of object")
        return info_fn()
    return _map_get_info(rt, obj, attr)


def _user_offset(buf: Buffer, off: int) -> Buffer:
    if isinstance(buf, UserPtr):
        return UserPtr(buf.addr + off)
    return None if buf is None else bytes(buf)[off:]


def _map_get_info(rt: Runtime, m: BpfMap, attr: InfoByFdAttr) -> MapInfo | int:
    """bpf_map_get_info_by_fd. The caller's struct comes in first (fields the kernel
    doesn't set keep what the caller put there, and ``hash``/``hash_size`` ask for
    the map's SHA-256); ``info_len`` bytes of it go back out.

    For a Python caller ``info`` is None (pyebpf provides a zeroed struct; then
    ``info_len`` 0 means all of it) or bytes (the caller's struct), and the result
    is returned as a MapInfo; a UserPtr gets the bytes written to user memory, as
    the kernel does, and 0 (raw attrs with a NULL ``info`` get EFAULT)."""
    to_user = isinstance(attr.info, UserPtr)
    python_caller = attr.info is None  # pyebpf provides a zeroed struct
    info_len = attr.info_len or (MapInfo.SIZE if python_caller else 0)
    # bpf_check_uarg_tail_zero(uinfo, sizeof(info), info_len)
    if info_len > PAGE_SIZE:
        raise BpfError(errno.E2BIG, f"info_len {info_len} is larger than a page")
    if info_len > MapInfo.SIZE and not python_caller and not check_zeroed_user(
            rt, _user_offset(attr.info, MapInfo.SIZE), info_len - MapInfo.SIZE):
        raise BpfError(errno.E2BIG, "non-zero bytes past the end of struct bpf_map_info")
    n = min(info_len, MapInfo.SIZE)
    user = bytes(n) if python_caller else copy_from_user(rt, attr.info, n)
    given = MapInfo.unpack(user)
    info = attrs.evolve(given, type=int(m.map_type), id=m.id, key_size=m.key_size,
                        value_size=m.value_size, max_entries=m.max_entries,
                        map_flags=m.map_flags, name=m.name, map_extra=m.map_extra,
                        btf_vmlinux_value_type_id=getattr(m, "btf_vmlinux_value_type_id", 0))
    if getattr(m, "btf_obj", None) is not None:  # the kernel sets these only if map->btf
        info = attrs.evolve(info, btf_id=m.btf_id, btf_key_type_id=m.btf_key_type_id,  # type: ignore[attr-defined]
                            btf_value_type_id=m.btf_value_type_id)  # type: ignore[attr-defined]
    if given.hash:
        get_hash = getattr(m, "map_get_hash", None)
        if get_hash is None:
            raise BpfError(errno.EINVAL, f"{m.map_type.name} maps have no hash")
        if given.hash_size != SHA256_DIGEST_SIZE:
            raise BpfError(errno.EINVAL, "hash_size must be 32 (SHA-256)")
        if not m.frozen:
            raise BpfError(errno.EPERM, "only a frozen map has a hash")
        _copy_out(rt, UserPtr(given.hash), get_hash())
    elif given.hash_size:
        raise BpfError(errno.EINVAL, "hash_size without a hash buffer")
    out = info.pack()[:n]
    if to_user:
        _copy_out(rt, attr.info, out)
        return 0
    rest = b"" if attr.info is None else bytes(attr.info)[n:]  # the caller's own bytes
    return MapInfo.unpack(out + rest)


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


#: Output buffers of commands: None in a record means "return it to me".
_RAW_OUTPUTS = {Cmd.MAP_LOOKUP_ELEM: "value", Cmd.MAP_GET_NEXT_KEY: "value",
                Cmd.MAP_LOOKUP_AND_DELETE_ELEM: "value", Cmd.OBJ_GET_INFO_BY_FD: "info"}


def bpf(cmd: int, attr: Any, *, runtime: Runtime | None = None) -> Any:
    """The bpf() system call: run ``cmd`` with ``attr`` on ``runtime`` (default: the
    process-wide one). ``attr`` is the command's record, or the raw bytes of a
    ``union bpf_attr`` (of the size the caller would pass). Raises BpfError."""
    rt = runtime if runtime is not None else default_runtime()
    raw = isinstance(attr, (bytes, bytearray, memoryview))
    if raw:
        # __sys_bpf checks the attr's size and tail before it looks at the command.
        check_uarg_tail_zero(bytes(attr))
    try:
        command = Cmd(cmd)
    except ValueError:
        raise BpfError(errno.EINVAL, f"unknown bpf command {cmd}") from None
    if raw:
        attr = attr_from_bytes(command, bytes(attr))
        out_field = _RAW_OUTPUTS.get(command)
        if out_field is not None and getattr(attr, out_field) is None:
            # A raw NULL output pointer is written through, and faults (EFAULT), where
            # a record's None asks pyebpf to return the result instead.
            attr = attrs.evolve(attr, **{out_field: UserPtr(0)})
    else:
        want = record_class(command) if command in _HANDLERS or command in _HANDLERS_WITH_CMD \
            else None
        if want is not None and not isinstance(attr, want):
            raise BpfError(errno.EINVAL, f"{command.name} takes a {want.__name__}, not "
                           f"{type(attr).__name__}")
        if want is not None:
            check_record(command, attr)  # CHECK_ATTR, as the raw form would get it
    if command in _HANDLERS_WITH_CMD:
        return _HANDLERS_WITH_CMD[command](rt, attr, command)
    handler = _HANDLERS.get(command)
    if handler is None:
        raise BpfError(errno.EINVAL, f"{command.name} is not implemented by pyebpf yet")
    return handler(rt, attr)
