"""BPF iterators (kernel/bpf/bpf_iter.c): ``SEC("iter/...")`` programs, iterator links,
and the readable fd whose content the program writes.

An iterator program is a TRACING program with expected_attach_type
BPF_TRACE_ITER whose attach_btf_id names the kernel function
``bpf_iter_<target>`` (in pyebpf's kernel BTF, :mod:`pyebpf.kernel_btf`).
BPF_LINK_CREATE makes an iterator link (the target's ``attach_target`` checks
``iter_info``: the map of a ``bpf_map_elem`` iterator); BPF_ITER_CREATE opens
a *session* on it: an fd whose ``read()`` (:func:`iter_read`, or
:meth:`IterSession.read`) runs the program once per object, each run
appending to the session's seq_file with ``bpf_seq_printf`` /
``bpf_seq_write``. :func:`iter_read` follows ``bpf_seq_read``:

- the seq_file buffer is 8 pages; a read first returns what is left of it,
  else fills it afresh, one object after another, until it holds at least the
  bytes asked for (or the objects end);
- ``meta->seq_num`` counts the objects shown in this session (an object the
  program skips by returning 1 doesn't count, and is shown again next read);
- after the last object the program runs once more with a NULL object
  (``meta->seq_num`` of the last one), unless the buffer overflowed then: that
  final run is retried at the next read;
- an object whose output overflows an empty buffer fails the read with E2BIG;
  an overflow after other objects ends this read before that object, which
  comes first in the next one; 0 bytes means the end.

Targets (:data:`ITER_TARGETS`): ``task`` (the runtime's simulated tasks, see
:func:`set_tasks`), ``bpf_map`` (every map, by id) and ``bpf_map_elem`` (the
elements of the map given at link creation, HASH/ARRAY and their per-CPU and
LRU kinds; key read only, value writable, per-CPU values as one buffer).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..attr import IterCreateAttr, LinkCreateAttr, UserPtr
from ..errors import BpfError
from ..runtime import BpfObject, FMode, ObjKind, Runtime
from ..syscall import check_zeroed_user, copy_from_user, register_command
from ..uapi import AttachType, Cmd, LinkType, MapType, ProgType
from .base import BpfLink, link_get, register_link_kind

if TYPE_CHECKING:
    from ..btf_build import BtfBuilder
    from ..maps.base import BpfMap
    from ..memory import Region
    from ..prog import BpfProg

__all__ = [
    "ITER_TARGETS",
    "IterFile",
    "IterLink",
    "IterSession",
    "IterTarget",
    "SimTask",
    "add_iter_btf",
    "all_tasks",
    "iter_create",
    "iter_read",
    "seq_session_at",
    "set_tasks",
]

PAGE_SIZE = 4096
#: bpf_seq_read's buffer: PAGE_SIZE << 3.
SEQ_BUF_SIZE = PAGE_SIZE << 3
#: The most objects one read() shows (kernel/bpf/bpf_iter.c).
MAX_ITER_OBJECTS = 1_000_000
#: sizeof(union bpf_iter_link_info).
ITER_LINK_INFO_SIZE = 16
BPF_ITER_FUNC_PREFIX = "bpf_iter_"

# Register types (enum bpf_reg_type and flags), as the verifier reads ctx fields.
_PTR_TO_BTF_ID, _PTR_TO_BUF = 16, 19
_PTR_MAYBE_NULL, _MEM_RDONLY, _PTR_TRUSTED = 1 << 8, 1 << 9, 1 << 20


@attrs.frozen
class CtxArg:
    """One field of a target's ctx struct (``bpf_iter__<target>``): what a load of it
    gives (the target's ``ctx_arg_info``), and the kernel struct it points to."""

    name: str
    offset: int
    reg_type: int
    struct: str = ""


@attrs.frozen
class IterTarget:
    """One ``bpf_iter_reg``: the target's name, its ctx, and how objects are found."""

    name: str
    ctx_args: tuple[CtxArg, ...]
    #: (session, index) -> the ctx field values of the index-th object, or None past
    #: the end; the values of the final NULL call come from ``stop_values``.
    get: Callable[[IterSession, int], list[int] | None]
    stop_values: Callable[[IterSession], list[int]]
    #: attach_target: check iter_info at link creation (may set link state).
    attach_target: Callable[[IterLink, bytes], None] | None = None

    @property
    def ctx_size(self) -> int:
        return 8 * (1 + len(self.ctx_args))

    def ctx_access(self, off: int, size: int, write: bool) -> CtxField | None:
        """btf_ctx_access for this target: 8-byte reads of the pointer fields."""
        if write or size != 8 or off % 8:
            return None
        if off == 0:
            return CtxField(_PTR_TO_BTF_ID | _PTR_TRUSTED, "bpf_iter_meta")
        for a in self.ctx_args:
            if a.offset == off:
                return CtxField(a.reg_type, a.struct)
        return None


class CtxField(int):
    """A ctx load's register type that also names the kernel struct it points to
    (the register's btf_id, resolved in the kernel BTF)."""

    struct: str

    def __new__(cls, reg_type: int, struct: str = "") -> CtxField:
        obj = super().__new__(cls, reg_type)
        obj.struct = struct
        return obj

    @property
    def btf_id(self) -> int:
        if not self.struct:
            return 0
        from ..kernel_btf import kernel_struct_id

        return kernel_struct_id(self.struct)


# -- the kernel BTF of iterators ----------------------------------------------------------
def add_iter_btf(b: BtfBuilder, ids: dict[str, int]) -> None:
    """The kernel types iterator programs see: ``struct seq_file``, ``struct
    bpf_iter_meta``, ``struct bpf_map``, each target's ctx struct
    ``bpf_iter__<target>`` and its function ``bpf_iter_<target>`` (what
    attach_btf_id names)."""
    u32, u64 = ids["u32"], ids["u64"]
    ids["struct seq_file"] = b.struct("seq_file", [
        ("buf", ids["void *"]), ("size", ids["size_t"]), ("from", ids["size_t"]),
        ("count", ids["size_t"]), ("index", ids["long long"])])
    seq_ptr = b.ptr(ids["struct seq_file"])
    ids["struct bpf_iter_meta"] = b.struct("bpf_iter_meta", [
        ("seq", seq_ptr), ("session_id", u64), ("seq_num", u64)])
    ids["struct bpf_map"] = b.struct("bpf_map", [
        ("ops", ids["void *"]), ("inner_map_meta", ids["void *"]), ("map_type", u32),
        ("key_size", u32), ("value_size", u32), ("max_entries", u32), ("map_extra", u64),
        ("map_flags", u32), ("id", u32), ("name", b.array(ids["char"], 16))])
    meta_ptr = b.ptr(ids["struct bpf_iter_meta"])
    for target in ITER_TARGETS.values():
        fields = [("meta", meta_ptr)]
        params = [("meta", meta_ptr)]
        for a in target.ctx_args:
            t = b.ptr(ids[f"struct {a.struct}"]) if a.struct else ids["void *"]
            fields.append((a.name, t))
            params.append((a.name, t))
        ids[f"struct bpf_iter__{target.name}"] = b.struct(f"bpf_iter__{target.name}", fields)
        ids[f"func {BPF_ITER_FUNC_PREFIX}{target.name}"] = b.func(
            f"{BPF_ITER_FUNC_PREFIX}{target.name}", b.func_proto(ids["int"], params))


def target_of_btf_id(btf_id: int) -> IterTarget | None:
    """The target whose ``bpf_iter_<name>`` function has this id in the kernel BTF."""
    from ..btf import BtfKind
    from ..kernel_btf import kernel_btf

    btf = kernel_btf()
    try:
        t = btf.type(btf_id)
    except BpfError:
        return None
    if t.kind is not BtfKind.FUNC or not t.name.startswith(BPF_ITER_FUNC_PREFIX):
        return None
    return ITER_TARGETS.get(t.name[len(BPF_ITER_FUNC_PREFIX):])


# -- simulated tasks ---------------------------------------------------------------------
@attrs.frozen
class SimTask:
    """A task the ``task`` iterator walks (one thread: pid is its tid)."""

    pid: int
    tgid: int
    comm: str


def set_tasks(rt: Runtime, tasks: Sequence[SimTask]) -> None:
    """Replace the runtime's simulated task list (default: the current task alone,
    from the runtime's pid/tgid/comm settings)."""
    rt.hooks["iter_tasks"] = list(tasks)


def all_tasks(rt: Runtime) -> list[SimTask]:
    """The runtime's simulated tasks, in pid order."""
    tasks = rt.hooks.get("iter_tasks")
    if tasks is None:
        tasks = [SimTask(rt.pid, rt.tgid, rt.comm)]
    return sorted(tasks, key=lambda t: t.pid)


# -- the seq_file session ---------------------------------------------------------------
_SESSION_IDS: dict[Runtime, int] = {}


class IterSession(BpfObject):
    """An open iterator fd (``struct bpf_iter_priv_data`` and its seq_file)."""

    kind = ObjKind.ITER

    def __init__(self, rt: Runtime, link: IterLink) -> None:
        super().__init__(rt)
        self.link = link
        link.hold()
        assert link.prog is not None
        self.prog: BpfProg = link.prog
        self.prog.hold()
        sid = _SESSION_IDS.get(rt, 0) + 1
        _SESSION_IDS[rt] = sid
        self.session_id = sid
        self.seq_num = 0
        self.done_stop = False
        #: seq->buf / count / from / index.
        self.buf = bytearray(SEQ_BUF_SIZE)
        self.size = SEQ_BUF_SIZE
        self.count = 0
        self.from_ = 0
        self.index = 0
        from ..kernel_btf import kernel_btf, kernel_struct_id

        seq_size = kernel_btf().sizeof(kernel_struct_id("seq_file"))
        self.seq_region: Region = rt.memory.map(bytearray(seq_size), kind="kernel",
                                                name="seq_file")
        self.meta_region: Region = rt.memory.map(bytearray(24), kind="kernel",
                                                 name="bpf_iter_meta")
        self.ctx_region: Region = rt.memory.map(bytearray(link.target.ctx_size), kind="ctx",
                                                name=f"bpf_iter__{link.target.name}")
        #: Regions made for the objects of the current read (keys, task structs...).
        self.scratch: list[Any] = []
        rt.hooks.setdefault("iter_seq", {})[self.seq_region.base] = self

    # -- seq_file writes (what bpf_seq_printf / bpf_seq_write do) ----------------------
    @property
    def overflowed(self) -> bool:
        return self.count == self.size

    def seq_write(self, data: bytes) -> bool:
        """seq_write: append ``data`` if it fits (strictly), else mark the overflow."""
        if self.count + len(data) < self.size:
            self.buf[self.count:self.count + len(data)] = data
            self.count += len(data)
            return True
        self.count = self.size
        return False

    # -- seq_operations --------------------------------------------------------------------
    def _show(self, values: list[int] | None, in_stop: bool) -> int:
        """Run the program on one object (None: the final NULL call); its r0 as
        show()'s result: 0, or -EAGAIN when the program asks for a retry (1)."""
        if in_stop and self.done_stop:
            return 0
        rt = self.runtime
        mem = rt.memory
        mem.write(self.meta_region.base, struct.pack("<QQQ", self.seq_region.base,
                                                     self.session_id, self.seq_num))
        target = self.link.target
        if values is None:
            values = target.stop_values(self)
        mem.write(self.ctx_region.base, struct.pack(
            f"<{1 + len(values)}Q", self.meta_region.base, *values))
        r0 = self.prog.run(self.ctx_region.base)
        return 0 if r0 & 0xFFFF_FFFF == 0 else -errno.EAGAIN

    def _release_scratch(self) -> None:
        for obj in self.scratch:
            obj.free() if hasattr(obj, "free") else self.runtime.unmap_later(obj)
        self.scratch.clear()

    def read(self, size: int) -> bytes:
        """bpf_seq_read: up to ``size`` bytes; b"" at the end. Raises BpfError (E2BIG:
        one object's output overflows the buffer; EAGAIN: the program asked to
        retry the first object of a read, or too many objects)."""
        try:
            return self._read(size)
        finally:
            self._release_scratch()

    def _read(self, size: int) -> bytes:
        if self.count:
            n = min(self.count, size)
            out = bytes(self.buf[self.from_:self.from_ + n])
            self.count -= n
            self.from_ += n
            return out
        self.from_ = 0
        target = self.link.target
        num_objs = 0
        p = target.get(self, self.index)
        if p is not None:
            err = self._show(p, False)
            if err < 0 or self.overflowed:
                self.count = 0
                raise BpfError(-err if err else errno.E2BIG,
                               "the first object's output overflows the seq_file buffer"
                               if not err else "the program asked to retry the object")
            while True:
                num_objs += 1
                offs = self.count
                self.index += 1
                p = target.get(self, self.index)
                if p is None:
                    break
                self.seq_num += 1
                if self.count >= size:
                    break
                if num_objs >= MAX_ITER_OBJECTS:
                    if offs == 0:
                        raise BpfError(errno.EAGAIN, "too many objects in one read")
                    break
                err = self._show(p, False)
                if err < 0 or self.overflowed:
                    self.count = offs
                    if offs == 0:
                        raise BpfError(-err if err else errno.E2BIG,
                                       "one object's output overflows the seq_file buffer")
                    break
        if p is None:
            offs = self.count
            self._show(None, True)
            if not self.overflowed:
                self.done_stop = True
            else:
                self.count = offs
                if offs == 0:
                    raise BpfError(errno.E2BIG, "the final call's output overflows the "
                                   "seq_file buffer")
        n = min(self.count, size)
        out = bytes(self.buf[:n])
        self.count -= n
        self.from_ = n
        return out

    def free(self) -> None:
        rt = self.runtime
        rt.hooks.get("iter_seq", {}).pop(self.seq_region.base, None)
        self._release_scratch()
        for region in (self.seq_region, self.meta_region, self.ctx_region):
            rt.unmap_later(region)
        self.prog.release()
        self.link.release()


def seq_session_at(rt: Runtime, addr: int) -> IterSession | None:
    """The session whose ``struct seq_file`` is at ``addr`` (what bpf_seq_* receive)."""
    sessions: dict[int, IterSession] = rt.hooks.get("iter_seq", {})
    return sessions.get(addr)


# -- targets ----------------------------------------------------------------------------
def _task_get(s: IterSession, index: int) -> list[int] | None:
    from ..kfuncs.task import task_object

    tasks = all_tasks(s.runtime)
    if index >= len(tasks):
        return None
    t = tasks[index]
    return [task_object(s.runtime, t.pid, t.tgid, t.comm)]


def _map_object(s: IterSession, m: BpfMap) -> int:
    """A ``struct bpf_map`` describing ``m`` (read-only data for the program)."""
    from ..kernel_btf import KernelObject

    obj = KernelObject(s.runtime, "bpf_map", map_type=int(m.map_type), key_size=m.key_size,
                       value_size=m.value_size, max_entries=m.max_entries,
                       map_extra=m.map_extra, map_flags=m.map_flags, id=m.id)
    off = obj._btf.offsetof(obj.type_id, "name")
    obj.region.buf[off:off + 16] = m.name.encode("latin-1")[:15].ljust(16, b"\0")
    s.scratch.append(obj)
    return int(obj.addr)


def _map_get(s: IterSession, index: int) -> list[int] | None:
    maps = sorted(s.runtime.objects(ObjKind.MAP).items())
    if index >= len(maps):
        return None
    return [_map_object(s, maps[index][1])]  # type: ignore[arg-type]


_PERCPU_MAPS = (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH, MapType.PERCPU_ARRAY)
_ELEM_MAPS = (MapType.HASH, MapType.LRU_HASH, MapType.ARRAY, *_PERCPU_MAPS)


def _map_elem_get(s: IterSession, index: int) -> list[int] | None:
    m = s.link.map
    assert m is not None
    keys = list(m.iter_keys())
    if index >= len(keys):
        return None
    key = keys[index]
    mem = s.runtime.memory
    from ..memory import Perm

    key_region = mem.map(bytearray(key), kind="kernel", name="iter_key", perms=Perm.R)
    s.scratch.append(key_region)
    if m.map_type in _PERCPU_MAPS:
        value_region = mem.map(bytearray(m.syscall_lookup(key, 0)), kind="kernel",
                               name="iter_percpu_value")
        s.scratch.append(value_region)
        value = value_region.base
    else:
        addr = m.lookup_elem(key)
        if addr is None:  # deleted meanwhile
            return _map_elem_get(s, index + 1)
        value = addr
    return [_map_object(s, m), key_region.base, value]


def _map_elem_stop(s: IterSession) -> list[int]:
    assert s.link.map is not None
    return [_map_object(s, s.link.map), 0, 0]


def _attach_map(link: IterLink, info: bytes) -> None:
    """bpf_iter_attach_map: the map of a bpf_map_elem iterator, and the program's
    key/value accesses against its sizes."""
    (map_fd,) = struct.unpack_from("<I", info.ljust(4, b"\0"))
    if not map_fd:
        raise BpfError(errno.EBADF, "a bpf_map_elem iterator needs iter_info.map.map_fd")
    from ..maps.base import BpfMap

    obj, _ = link.runtime.get_object(map_fd, ObjKind.MAP)
    assert isinstance(obj, BpfMap)
    if obj.map_type not in _ELEM_MAPS:
        raise BpfError(errno.EINVAL, f"{obj.map_type.name} maps have no element iterator")
    value_size = obj.value_size
    if obj.map_type in _PERCPU_MAPS:
        value_size = (value_size + 7) // 8 * 8 * link.runtime.nr_cpus
    prog = link.prog
    if getattr(prog, "max_rdonly_access", 0) > obj.key_size or \
            getattr(prog, "max_rdwr_access", 0) > value_size:
        raise BpfError(errno.EACCES, "the program reads past the map's key or value")
    obj.hold()
    link.map = obj


ITER_TARGETS: dict[str, IterTarget] = {
    "task": IterTarget("task", (CtxArg("task", 8, _PTR_TO_BTF_ID | _PTR_MAYBE_NULL
                                       | _PTR_TRUSTED, "task_struct"),),
                       _task_get, lambda s: [0]),
    "bpf_map": IterTarget("bpf_map", (CtxArg("map", 8, _PTR_TO_BTF_ID | _PTR_MAYBE_NULL,
                                             "bpf_map"),),
                          _map_get, lambda s: [0]),
    "bpf_map_elem": IterTarget("bpf_map_elem", (
        CtxArg("map", 8, _PTR_TO_BTF_ID | _PTR_TRUSTED, "bpf_map"),
        CtxArg("key", 16, _PTR_TO_BUF | _PTR_MAYBE_NULL | _MEM_RDONLY),
        CtxArg("value", 24, _PTR_TO_BUF | _PTR_MAYBE_NULL)),
        _map_elem_get, _map_elem_stop, _attach_map),
}


# -- links -----------------------------------------------------------------------------
class IterLink(BpfLink):
    """An iterator link (BPF_LINK_TYPE_ITER): a program on a target, ready to be read."""

    link_type = LinkType.ITER
    supports_update = True

    def __init__(self, rt: Runtime, prog: BpfProg, attach_type: int,
                 target: IterTarget) -> None:
        super().__init__(rt, prog, attach_type)
        self.target = target
        self.map: BpfMap | None = None
        #: union bpf_iter_link_info as given (its first ITER_LINK_INFO_SIZE bytes).
        self.iter_info = b""

    def attach(self) -> None:
        """The target's attach_target (after the link got its id, as in the kernel)."""
        if self.target.attach_target is not None:
            self.target.attach_target(self, self.iter_info)
        super().attach()

    def check_update_prog(self, new: BpfProg) -> None:
        """bpf_iter_link_replace: same attach target (attach_btf_id)."""
        assert self.prog is not None
        if new.prog_type != self.prog.prog_type or \
                new.expected_attach_type != self.prog.expected_attach_type or \
                new.attach_btf_id != self.prog.attach_btf_id:
            raise BpfError(errno.EINVAL, "the new program iterates another target")

    def fill_info(self, info: dict[str, int]) -> None:
        info["target_name_len"] = len(self.target.name) + 1
        if self.map is not None:
            info["map_id"] = self.map.id

    def free(self) -> None:
        if self.map is not None:
            self.map.release()
            self.map = None
        super().free()


def iter_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> IterLink:
    """bpf_iter_link_attach."""
    if attr.target_fd or attr.flags:
        raise BpfError(errno.EINVAL, "iterator links take no target_fd or flags")
    info_ptr = attr.iter_info
    has_ptr = info_ptr is not None and not (isinstance(info_ptr, UserPtr) and not info_ptr.addr)
    if has_ptr != bool(attr.iter_info_len):
        raise BpfError(errno.EINVAL, "iter_info and iter_info_len go together")
    info = b""
    if has_ptr:
        n = attr.iter_info_len
        if n > ITER_LINK_INFO_SIZE:
            check_zeroed_user(rt, info_ptr, ITER_LINK_INFO_SIZE, n)
        info = bytes(copy_from_user(rt, info_ptr, min(n, ITER_LINK_INFO_SIZE)))
    target = target_of_btf_id(prog.attach_btf_id)
    if target is None:
        raise BpfError(errno.ENOENT, f"no iterator target has attach_btf_id "
                       f"{prog.attach_btf_id}")
    if prog.prog_flags & 16 and target.name not in ("task", "bpf_map", "bpf_map_elem"):
        raise BpfError(errno.EINVAL, "sleepable programs need a resched-able iterator")
    link = IterLink(rt, prog, attr.attach_type, target)
    link.iter_info = info
    return link


def iter_create(rt: Runtime, attr: IterCreateAttr) -> int:
    """BPF_ITER_CREATE: a new session's fd (read only)."""
    if attr.flags:
        raise BpfError(errno.EINVAL, "BPF_ITER_CREATE takes no flags")
    link = link_get(rt, attr.link_fd)
    if not isinstance(link, IterLink):
        raise BpfError(errno.EINVAL, f"link fd {attr.link_fd} is not an iterator link")
    session = IterSession(rt, link)
    return rt.install_fd(session, FMode.READ)


def iter_read(rt: Runtime, fd: int, size: int = PAGE_SIZE) -> bytes:
    """read(2) on an iterator fd: up to ``size`` bytes, b"" at the end (os.read's
    contract). Errors are BpfError with the errno read() would give."""
    f = rt.file(fd)
    if not isinstance(f.obj, IterSession):
        raise BpfError(errno.EINVAL, f"fd {fd} is not an iterator")
    return f.obj.read(size)


def iter_read_all(rt: Runtime, fd: int, chunk: int = PAGE_SIZE) -> bytes:
    """Read an iterator fd to its end."""
    out = bytearray()
    while True:
        data = iter_read(rt, fd, chunk)
        if not data:
            return bytes(out)
        out += data


class IterFile:
    """A session of an iterator link as a file: ``read()`` (everything to the end, or
    ``size`` bytes as read(2) would give), ``close()``; a context manager.

    ``IterFile(link_fd, runtime=rt)`` makes the session (BPF_ITER_CREATE).
    """

    def __init__(self, link_fd: int, *, runtime: Runtime | None = None) -> None:
        from ..runtime import default_runtime
        from ..syscall import bpf

        self.runtime = runtime if runtime is not None else default_runtime()
        self.fd = int(bpf(Cmd.ITER_CREATE, IterCreateAttr(link_fd=int(link_fd)),
                          runtime=self.runtime))

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return iter_read_all(self.runtime, self.fd)
        return iter_read(self.runtime, self.fd, size)

    def close(self) -> None:
        if self.fd >= 0:
            self.runtime.close(self.fd)
            self.fd = -1

    def __enter__(self) -> IterFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


register_link_kind(ProgType.TRACING, iter_link_create, attach_type=AttachType.TRACE_ITER)
register_command(Cmd.ITER_CREATE, iter_create)
