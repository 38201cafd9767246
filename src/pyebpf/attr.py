"""``union bpf_attr``, one record per command group, and its raw byte form.

Python callers build records (``MapCreateAttr(map_type=MapType.HASH, ...)``);
buffers a command reads from are ``bytes`` (a user buffer of that length) or
:class:`UserPtr` (an address in the runtime's user memory, which is what
decoding the kernel's raw ``union bpf_attr`` bytes produces). ``None`` is the
NULL pointer.

Each record carries its raw layout (:data:`LAYOUTS`): field name, offset and
C type, in the kernel's order. The layout's end is the command's
``*_LAST_FIELD``: the kernel's ``CHECK_ATTR`` rejects non-zero bytes past it
with EINVAL, and ``bpf_check_uarg_tail_zero`` rejects a size over a page,
or non-zero bytes beyond the union's size, with E2BIG.
"""

from __future__ import annotations

import errno
import struct
from typing import Any, ClassVar

import attrs

from .errors import BpfError
from .uapi import Cmd

__all__ = [
    "ATTR_UNION_SIZE",
    "LAYOUTS",
    "Buffer",
    "BtfLoadAttr",
    "IterCreateAttr",
    "LOG_BUF_AUTO",
    "GetIdAttr",
    "InfoByFdAttr",
    "LinkCreateAttr",
    "LinkDetachAttr",
    "LinkUpdateAttr",
    "MapBatchAttr",
    "MapCreateAttr",
    "MapElemAttr",
    "MapFdAttr",
    "ObjPinAttr",
    "ProgAttachAttr",
    "ProgLoadAttr",
    "ProgQueryAttr",
    "RawTracepointOpenAttr",
    "TestRunAttr",
    "UserPtr",
    "attr_from_bytes",
    "attr_to_bytes",
    "check_record",
]


def _union_alias(field: str) -> Any:
    """Another name of ``field``: union bpf_attr members sharing its bytes
    (``map_fd`` is ``prog_fd`` in LINK_CREATE, ``target_ifindex`` is ``target_fd``...)."""
    return property(lambda self: getattr(self, field),
                    doc=f"The same bytes as ``{field}`` (a member of the same union).")


#: sizeof(union bpf_attr) on Linux 6.18 (x86-64): PROG_LOAD's signature fields end at 168
#: (measured: a non-zero byte at offset 164 is EINVAL, at 168 E2BIG).
ATTR_UNION_SIZE = 168
PAGE_SIZE = 4096


@attrs.frozen
class UserPtr:
    """A pointer into the runtime's user memory (what raw attr bytes carry)."""

    addr: int


#: A buffer argument: bytes (the caller's buffer), a user pointer, or None (NULL).
Buffer = bytes | bytearray | memoryview | UserPtr | None


@attrs.frozen(kw_only=True)
class MapCreateAttr:
    """BPF_MAP_CREATE."""

    map_type: int
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    map_flags: int = 0
    inner_map_fd: int = 0
    numa_node: int = 0
    map_name: bytes | str = b""
    map_ifindex: int = 0
    btf_fd: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_value_type_id: int = 0
    map_extra: int = 0
    value_type_btf_obj_fd: int = 0
    map_token_fd: int = 0
    #: An exclusive map (6.18): only the program whose SHA-256 is this may use it.
    excl_prog_hash: Buffer = None
    excl_prog_hash_size: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.MAP_CREATE,)


@attrs.frozen(kw_only=True)
class MapElemAttr:
    """BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM, GET_NEXT_KEY, LOOKUP_AND_DELETE_ELEM.

    ``value`` is the value to write (update) or, in raw form, where to write the
    result; for GET_NEXT_KEY the kernel calls the same slot ``next_key``.
    """

    map_fd: int
    key: Buffer = None
    value: Buffer = None
    flags: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (
        Cmd.MAP_LOOKUP_ELEM,
        Cmd.MAP_UPDATE_ELEM,
        Cmd.MAP_DELETE_ELEM,
        Cmd.MAP_GET_NEXT_KEY,
        Cmd.MAP_LOOKUP_AND_DELETE_ELEM,
    )


@attrs.frozen(kw_only=True)
class MapFdAttr:
    """BPF_MAP_FREEZE (only ``map_fd``)."""

    map_fd: int

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.MAP_FREEZE,)


@attrs.frozen(kw_only=True)
class MapBatchAttr:
    """The four BPF_MAP_*_BATCH commands.

    ``keys``/``values`` are ``count`` keys/values laid end to end (values of
    per-CPU maps as in a lookup: ``round_up(value_size, 8)`` per CPU).
    ``in_batch`` is the opaque position a previous lookup batch returned (None
    to start from the beginning).
    """

    map_fd: int
    count: int = 0
    in_batch: Buffer = None
    out_batch: Buffer = None
    keys: Buffer = None
    values: Buffer = None
    elem_flags: int = 0
    flags: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (
        Cmd.MAP_LOOKUP_BATCH,
        Cmd.MAP_LOOKUP_AND_DELETE_BATCH,
        Cmd.MAP_UPDATE_BATCH,
        Cmd.MAP_DELETE_BATCH,
    )


@attrs.frozen(kw_only=True)
class ObjPinAttr:
    """BPF_OBJ_PIN / BPF_OBJ_GET: a path in the runtime's bpffs."""

    pathname: str | bytes | UserPtr
    bpf_fd: int = 0
    file_flags: int = 0
    path_fd: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.OBJ_PIN, Cmd.OBJ_GET)


@attrs.frozen(kw_only=True)
class GetIdAttr:
    """*_GET_NEXT_ID (``start_id``) and *_GET_FD_BY_ID (the same slot is the id)."""

    start_id: int = 0
    next_id: int = 0
    open_flags: int = 0
    fd_by_id_token_fd: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (
        Cmd.PROG_GET_NEXT_ID,
        Cmd.MAP_GET_NEXT_ID,
        Cmd.BTF_GET_NEXT_ID,
        Cmd.LINK_GET_NEXT_ID,
        Cmd.PROG_GET_FD_BY_ID,
        Cmd.MAP_GET_FD_BY_ID,
        Cmd.BTF_GET_FD_BY_ID,
        Cmd.LINK_GET_FD_BY_ID,
    )

    id = _union_alias("start_id")


@attrs.frozen(kw_only=True)
class InfoByFdAttr:
    """BPF_OBJ_GET_INFO_BY_FD. ``info_len`` caps the bytes of info returned."""

    bpf_fd: int
    info_len: int = 0
    info: Buffer = None

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.OBJ_GET_INFO_BY_FD,)


# -- raw layouts ----------------------------------------------------------------
# (field, offset, struct format, kind) in the kernel's order; kind "ptr" makes a
# UserPtr (0 -> None), "name" a NUL-padded char array, "int" a number.
_Layout = tuple[tuple[str, int, str, str], ...]

LAYOUTS: dict[type, _Layout] = {
    MapCreateAttr: (
        ("map_type", 0, "I", "int"),
        ("key_size", 4, "I", "int"),
        ("value_size", 8, "I", "int"),
        ("max_entries", 12, "I", "int"),
        ("map_flags", 16, "I", "int"),
        ("inner_map_fd", 20, "I", "int"),
        ("numa_node", 24, "I", "int"),
        ("map_name", 28, "16s", "name"),
        ("map_ifindex", 44, "I", "int"),
        ("btf_fd", 48, "I", "int"),
        ("btf_key_type_id", 52, "I", "int"),
        ("btf_value_type_id", 56, "I", "int"),
        ("btf_vmlinux_value_type_id", 60, "I", "int"),
        ("map_extra", 64, "Q", "int"),
        ("value_type_btf_obj_fd", 72, "i", "int"),
        ("map_token_fd", 76, "i", "int"),
        ("excl_prog_hash", 80, "Q", "ptr"),
        ("excl_prog_hash_size", 88, "I", "int"),
    ),
    MapElemAttr: (
        ("map_fd", 0, "I", "int"),
        ("key", 8, "Q", "ptr"),
        ("value", 16, "Q", "ptr"),
        ("flags", 24, "Q", "int"),
    ),
    MapFdAttr: (("map_fd", 0, "I", "int"),),
    MapBatchAttr: (
        ("in_batch", 0, "Q", "ptr"),
        ("out_batch", 8, "Q", "ptr"),
        ("keys", 16, "Q", "ptr"),
        ("values", 24, "Q", "ptr"),
        ("count", 32, "I", "int"),
        ("map_fd", 36, "I", "int"),
        ("elem_flags", 40, "Q", "int"),
        ("flags", 48, "Q", "int"),
    ),
    ObjPinAttr: (
        ("pathname", 0, "Q", "ptr"),
        ("bpf_fd", 8, "I", "int"),
        ("file_flags", 12, "I", "int"),
        ("path_fd", 16, "i", "int"),
    ),
    GetIdAttr: (
        ("start_id", 0, "I", "int"),
        ("next_id", 4, "I", "int"),
        ("open_flags", 8, "I", "int"),
        ("fd_by_id_token_fd", 12, "i", "int"),
    ),
    InfoByFdAttr: (
        ("bpf_fd", 0, "I", "int"),
        ("info_len", 4, "I", "int"),
        ("info", 8, "Q", "ptr"),
    ),
}

#: Per command: the record class, and the end of its last field (CHECK_ATTR).
#: Commands whose last field is shorter than the record's layout list it here.
_LAST_FIELD_END: dict[Cmd, int] = {
    Cmd.MAP_FREEZE: 4,  # BPF_MAP_FREEZE_LAST_FIELD map_fd
    Cmd.MAP_GET_NEXT_KEY: 24,  # ...LAST_FIELD next_key
    Cmd.MAP_DELETE_ELEM: 16,  # ...LAST_FIELD key
    Cmd.PROG_GET_NEXT_ID: 8,  # BPF_OBJ_GET_NEXT_ID_LAST_FIELD next_id
    Cmd.MAP_GET_NEXT_ID: 8,
    Cmd.BTF_GET_NEXT_ID: 8,
    Cmd.LINK_GET_NEXT_ID: 8,
    Cmd.PROG_GET_FD_BY_ID: 4,  # prog_id (checked against the 6.18 kernel)
    Cmd.LINK_GET_FD_BY_ID: 4,  # link_id
    Cmd.MAP_GET_FD_BY_ID: 12,  # open_flags
    Cmd.BTF_GET_FD_BY_ID: 16,  # fd_by_id_token_fd
}


def record_class(cmd: Cmd) -> type:
    """The attr record class that ``cmd`` takes."""
    for cls in LAYOUTS:
        if cmd in cls.CMDS:  # type: ignore[attr-defined]
            return cls
    raise BpfError(errno.EINVAL, f"no attr layout for command {cmd!r}")


def last_field_end(cmd: Cmd) -> int:
    """Offset just past the command's last field; bytes after it must be zero."""
    if cmd in _LAST_FIELD_END:
        return _LAST_FIELD_END[cmd]
    layout = LAYOUTS[record_class(cmd)]
    _, off, fmt, _ = layout[-1]
    return off + struct.calcsize("<" + fmt)


def check_uarg_tail_zero(data: bytes, expected_size: int = ATTR_UNION_SIZE) -> bytes:
    """The kernel's ``bpf_check_uarg_tail_zero`` on a raw attr of ``len(data)`` bytes.

    Returns the bytes the kernel would copy (at most the union's size).
    """
    if len(data) > PAGE_SIZE:
        raise BpfError(errno.E2BIG, f"attr size {len(data)} is larger than a page")
    if len(data) > expected_size and any(data[expected_size:]):
        raise BpfError(errno.E2BIG, "non-zero bytes past the end of union bpf_attr")
    return bytes(data[:expected_size]).ljust(expected_size, b"\0")


def attr_from_bytes(cmd: int, data: bytes) -> Any:
    """Decode raw ``union bpf_attr`` bytes (of the caller's size) for ``cmd``.

    Applies the kernel's checks in its order: the tail check over the given
    size (E2BIG), then CHECK_ATTR (EINVAL for non-zero bytes past the command's
    last field).
    """
    try:
        command = Cmd(cmd)
    except ValueError:
        raise BpfError(errno.EINVAL, f"unknown bpf command {cmd}") from None
    buf = check_uarg_tail_zero(data)
    cls = record_class(command)
    end = last_field_end(command)
    if any(buf[end:]):
        raise BpfError(errno.EINVAL, f"non-zero bytes after the last field of {command.name} "
                       f"(offset {end + next(i for i, b in enumerate(buf[end:]) if b)})")
    fields: dict[str, Any] = {}
    for name, off, fmt, kind in LAYOUTS[cls]:
        if off >= end:
            break
        (value,) = struct.unpack_from("<" + fmt, buf, off)
        if kind == "ptr":
            value = UserPtr(value) if value else None
        elif kind == "name":
            value = bytes(value)
        fields[name] = value
    return cls(**fields)


def check_record(cmd: Cmd, attr: Any) -> None:
    """CHECK_ATTR for a record: fields past the command's last field must be zero
    (None for pointers), as they would have to be in the raw union (EINVAL)."""
    end = last_field_end(cmd)
    for name, off, _fmt, kind in LAYOUTS.get(type(attr), ()):
        if off < end:
            continue
        value = getattr(attr, name)
        if kind == "ptr":
            nonzero = value is not None and not (isinstance(value, UserPtr) and not value.addr)
        elif kind == "name":
            nonzero = any(value.encode() if isinstance(value, str) else bytes(value))
        else:
            nonzero = bool(value)
        if nonzero:
            raise BpfError(errno.EINVAL, f"{cmd.name} does not use {name}; it must be zero")


def attr_to_bytes(attr: Any, size: int = ATTR_UNION_SIZE) -> bytes:
    """Encode a record whose buffers are UserPtr/None as raw attr bytes."""
    out = bytearray(size)
    for name, off, fmt, kind in LAYOUTS[type(attr)]:
        value = getattr(attr, name)
        if kind == "ptr":
            if isinstance(value, (bytes, bytearray, memoryview)):
                raise BpfError(errno.EINVAL, f"{name}: raw attrs carry pointers, not bytes")
            value = value.addr if isinstance(value, UserPtr) else 0
        elif kind == "name":
            value = value.encode() if isinstance(value, str) else bytes(value)
        # Zero needs no packing (the union starts zeroed), and skipping it lets the
        # members of a union (LinkCreateAttr's) share bytes without clobbering.
        if value and off + struct.calcsize("<" + fmt) <= size:
            struct.pack_into("<" + fmt, out, off, value)
    return bytes(out)


@attrs.frozen(kw_only=True)
class BtfLoadAttr:
    """BPF_BTF_LOAD: ``btf`` (bytes or UserPtr) of ``btf_size`` bytes (default: its
    length), and the BTF verifier's log in ``btf_log_buf`` as PROG_LOAD's log."""

    btf: Buffer = None
    btf_log_buf: Any = None
    btf_size: int | None = None
    btf_log_size: int = 0
    btf_log_level: int = 0
    btf_log_true_size: int = 0
    btf_flags: int = 0
    btf_token_fd: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.BTF_LOAD,)


LAYOUTS[BtfLoadAttr] = (
    ("btf", 0, "Q", "ptr"),
    ("btf_log_buf", 8, "Q", "ptr"),
    ("btf_size", 16, "I", "int"),
    ("btf_log_size", 20, "I", "int"),
    ("btf_log_level", 24, "I", "int"),
    ("btf_log_true_size", 28, "I", "int"),
    ("btf_flags", 32, "I", "int"),
    ("btf_token_fd", 36, "i", "int"),
)


# -- programs ---------------------------------------------------------------------------
class _LogBufAuto:
    """The default ``log_buf``: pyebpf provides the buffer when ``log_size`` > 0."""

    def __repr__(self) -> str:
        return "LOG_BUF_AUTO"


LOG_BUF_AUTO: Any = _LogBufAuto()


@attrs.frozen(kw_only=True)
class ProgLoadAttr:
    """BPF_PROG_LOAD.

    ``insns`` is bytes, a list of :class:`~pyebpf.isa.Insn`, or a UserPtr (then
    ``insn_cnt`` says how many); ``insn_cnt`` defaults to the length given.
    The log: a bytearray or UserPtr ``log_buf`` of ``log_size`` bytes is filled
    as the kernel fills it. By default (``LOG_BUF_AUTO``) pyebpf provides a
    buffer of ``log_size`` bytes itself, as libbpf does for its callers, and the
    text is on the returned fd's ``.log``. ``log_buf=None`` is the NULL
    pointer: with a non-zero ``log_size`` that is EINVAL, as in the kernel.
    """

    prog_type: int
    insns: Any = None
    insn_cnt: int | None = None
    license: str | bytes | UserPtr | None = ""
    log_level: int = 0
    log_size: int = 0
    log_buf: Any = LOG_BUF_AUTO
    kern_version: int = 0
    prog_flags: int = 0
    prog_name: bytes | str = b""
    prog_ifindex: int = 0
    expected_attach_type: int = 0
    prog_btf_fd: int = 0
    func_info_rec_size: int = 0
    func_info: Buffer = None
    func_info_cnt: int = 0
    line_info_rec_size: int = 0
    line_info: Buffer = None
    line_info_cnt: int = 0
    attach_btf_id: int = 0
    attach_prog_fd: int = 0
    core_relo_cnt: int = 0
    fd_array: Buffer = None
    core_relos: Buffer = None
    core_relo_rec_size: int = 0
    log_true_size: int = 0
    prog_token_fd: int = 0
    fd_array_cnt: int = 0
    signature: Buffer = None
    signature_size: int = 0
    keyring_id: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.PROG_LOAD,)


@attrs.frozen(kw_only=True)
class TestRunAttr:
    """BPF_PROG_TEST_RUN. ``data_in``/``ctx_in`` are bytes (or UserPtr with the
    sizes). Outputs: by default (``LOG_BUF_AUTO``) the result carries the output
    packet and ctx as bytes; a bytearray or UserPtr ``data_out``/``ctx_out`` is
    filled as the kernel fills a user buffer, None is the NULL pointer.
    ``data_size_out`` > 0 caps the packet returned (ENOSPC when it is cut)."""

    __test__ = False  # not a pytest test class

    prog_fd: int
    data_in: Buffer = None
    data_size_in: int | None = None
    data_out: Any = LOG_BUF_AUTO
    data_size_out: int = 0
    repeat: int = 0
    ctx_in: Buffer = None
    ctx_size_in: int | None = None
    ctx_out: Any = LOG_BUF_AUTO
    ctx_size_out: int = 0
    flags: int = 0
    cpu: int = 0
    batch_size: int = 0
    retval: int = 0
    duration: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.PROG_TEST_RUN,)


LAYOUTS[ProgLoadAttr] = (
    ("prog_type", 0, "I", "int"),
    ("insn_cnt", 4, "I", "int"),
    ("insns", 8, "Q", "ptr"),
    ("license", 16, "Q", "ptr"),
    ("log_level", 24, "I", "int"),
    ("log_size", 28, "I", "int"),
    ("log_buf", 32, "Q", "ptr"),
    ("kern_version", 40, "I", "int"),
    ("prog_flags", 44, "I", "int"),
    ("prog_name", 48, "16s", "name"),
    ("prog_ifindex", 64, "I", "int"),
    ("expected_attach_type", 68, "I", "int"),
    ("prog_btf_fd", 72, "I", "int"),
    ("func_info_rec_size", 76, "I", "int"),
    ("func_info", 80, "Q", "ptr"),
    ("func_info_cnt", 88, "I", "int"),
    ("line_info_rec_size", 92, "I", "int"),
    ("line_info", 96, "Q", "ptr"),
    ("line_info_cnt", 104, "I", "int"),
    ("attach_btf_id", 108, "I", "int"),
    ("attach_prog_fd", 112, "I", "int"),
    ("core_relo_cnt", 116, "I", "int"),
    ("fd_array", 120, "Q", "ptr"),
    ("core_relos", 128, "Q", "ptr"),
    ("core_relo_rec_size", 136, "I", "int"),
    ("log_true_size", 140, "I", "int"),
    ("prog_token_fd", 144, "i", "int"),
    ("fd_array_cnt", 148, "I", "int"),
    ("signature", 152, "Q", "ptr"),
    ("signature_size", 160, "I", "int"),
    ("keyring_id", 164, "i", "int"),
)
LAYOUTS[TestRunAttr] = (
    ("prog_fd", 0, "I", "int"),
    ("retval", 4, "I", "int"),
    ("data_size_in", 8, "I", "int"),
    ("data_size_out", 12, "I", "int"),
    ("data_in", 16, "Q", "ptr"),
    ("data_out", 24, "Q", "ptr"),
    ("repeat", 32, "I", "int"),
    ("duration", 36, "I", "int"),
    ("ctx_size_in", 40, "I", "int"),
    ("ctx_size_out", 44, "I", "int"),
    ("ctx_in", 48, "Q", "ptr"),
    ("ctx_out", 56, "Q", "ptr"),
    ("flags", 64, "I", "int"),
    ("cpu", 68, "I", "int"),
    ("batch_size", 72, "I", "int"),
)


# -- links and attachment ------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class LinkCreateAttr:
    """BPF_LINK_CREATE.

    ``prog_fd`` (the kernel's union also calls it ``map_fd``, for struct_ops
    links) and ``target_fd`` (or ``target_ifindex`` for XDP/tcx/netkit links)
    come first. From offset 16 the kernel has a union, one member per link
    kind; here each member is its own field and several share bytes: a link
    kind's handler reads only its own (``relative_fd``/``expected_revision``
    for tcx, netkit and cgroup links; ``bpf_cookie`` for perf-event links;
    ``iter_info``/``iter_info_len`` for iterators; ``target_btf_id``/
    ``tracing_cookie`` for tracing links ...). A raw union decodes into all of
    them at once, as the C union reads.
    """

    prog_fd: int = 0
    target_fd: int = 0
    attach_type: int = 0
    flags: int = 0
    target_btf_id: int = 0
    iter_info: Buffer = None
    iter_info_len: int = 0
    bpf_cookie: int = 0
    kprobe_multi_flags: int = 0
    kprobe_multi_cnt: int = 0
    kprobe_multi_syms: Buffer = None
    kprobe_multi_addrs: Buffer = None
    kprobe_multi_cookies: Buffer = None
    tracing_cookie: int = 0
    netfilter_pf: int = 0
    netfilter_hooknum: int = 0
    netfilter_priority: int = 0
    netfilter_flags: int = 0
    relative_fd: int = 0
    expected_revision: int = 0
    uprobe_multi_path: Buffer = None
    uprobe_multi_offsets: Buffer = None
    uprobe_multi_ref_ctr_offsets: Buffer = None
    uprobe_multi_cookies: Buffer = None
    uprobe_multi_cnt: int = 0
    uprobe_multi_flags: int = 0
    uprobe_multi_pid: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.LINK_CREATE,)

    map_fd = _union_alias("prog_fd")
    target_ifindex = _union_alias("target_fd")
    relative_id = _union_alias("relative_fd")


@attrs.frozen(kw_only=True)
class LinkUpdateAttr:
    """BPF_LINK_UPDATE. ``old_prog_fd`` only with BPF_F_REPLACE; struct_ops links
    read the same slots as ``new_map_fd``/``old_map_fd``."""

    link_fd: int
    new_prog_fd: int = 0
    flags: int = 0
    old_prog_fd: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.LINK_UPDATE,)

    new_map_fd = _union_alias("new_prog_fd")
    old_map_fd = _union_alias("old_prog_fd")


@attrs.frozen(kw_only=True)
class LinkDetachAttr:
    """BPF_LINK_DETACH."""

    link_fd: int

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.LINK_DETACH,)


@attrs.frozen(kw_only=True)
class ProgAttachAttr:
    """BPF_PROG_ATTACH / BPF_PROG_DETACH. ``target_fd`` is a cgroup or netns fd,
    or an ifindex for tcx; ``relative_fd``/``expected_revision`` position an
    mprog (tcx) attachment."""

    target_fd: int = 0
    attach_bpf_fd: int = 0
    attach_type: int = 0
    attach_flags: int = 0
    replace_bpf_fd: int = 0
    relative_fd: int = 0
    expected_revision: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.PROG_ATTACH, Cmd.PROG_DETACH)

    target_ifindex = _union_alias("target_fd")
    relative_id = _union_alias("relative_fd")


@attrs.frozen(kw_only=True)
class ProgQueryAttr:
    """BPF_PROG_QUERY. ``prog_ids`` and friends are output arrays of ``prog_cnt``
    entries (a bytearray or UserPtr is filled as the kernel fills it; None asks
    only for the count, though a Python caller gets the ids in the result
    anyway)."""

    target_fd: int = 0
    attach_type: int = 0
    query_flags: int = 0
    attach_flags: int = 0
    prog_ids: Buffer = None
    prog_cnt: int = 0
    prog_attach_flags: Buffer = None
    link_ids: Buffer = None
    link_attach_flags: Buffer = None
    revision: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.PROG_QUERY,)


@attrs.frozen(kw_only=True)
class RawTracepointOpenAttr:
    """BPF_RAW_TRACEPOINT_OPEN: ``name`` of the tracepoint (None: the program's
    own attach target, for BTF-typed raw_tp programs)."""

    name: str | bytes | UserPtr | None = None
    prog_fd: int = 0
    cookie: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.RAW_TRACEPOINT_OPEN,)


LAYOUTS[LinkCreateAttr] = (
    ("prog_fd", 0, "I", "int"),
    ("target_fd", 4, "I", "int"),
    ("attach_type", 8, "I", "int"),
    ("flags", 12, "I", "int"),
    ("target_btf_id", 16, "I", "int"),
    ("iter_info", 16, "Q", "ptr"),
    ("iter_info_len", 24, "I", "int"),
    ("bpf_cookie", 16, "Q", "int"),
    ("kprobe_multi_flags", 16, "I", "int"),
    ("kprobe_multi_cnt", 20, "I", "int"),
    ("kprobe_multi_syms", 24, "Q", "ptr"),
    ("kprobe_multi_addrs", 32, "Q", "ptr"),
    ("kprobe_multi_cookies", 40, "Q", "ptr"),
    ("tracing_cookie", 24, "Q", "int"),
    ("netfilter_pf", 16, "I", "int"),
    ("netfilter_hooknum", 20, "I", "int"),
    ("netfilter_priority", 24, "i", "int"),
    ("netfilter_flags", 28, "I", "int"),
    ("relative_fd", 16, "I", "int"),
    ("expected_revision", 24, "Q", "int"),
    ("uprobe_multi_path", 16, "Q", "ptr"),
    ("uprobe_multi_offsets", 24, "Q", "ptr"),
    ("uprobe_multi_ref_ctr_offsets", 32, "Q", "ptr"),
    ("uprobe_multi_cookies", 40, "Q", "ptr"),
    ("uprobe_multi_cnt", 48, "I", "int"),
    ("uprobe_multi_flags", 52, "I", "int"),
    ("uprobe_multi_pid", 56, "I", "int"),  # BPF_LINK_CREATE_LAST_FIELD
)
LAYOUTS[LinkUpdateAttr] = (
    ("link_fd", 0, "I", "int"),
    ("new_prog_fd", 4, "I", "int"),
    ("flags", 8, "I", "int"),
    ("old_prog_fd", 12, "I", "int"),
)
LAYOUTS[LinkDetachAttr] = (("link_fd", 0, "I", "int"),)
LAYOUTS[ProgAttachAttr] = (
    ("target_fd", 0, "I", "int"),
    ("attach_bpf_fd", 4, "I", "int"),
    ("attach_type", 8, "I", "int"),
    ("attach_flags", 12, "I", "int"),
    ("replace_bpf_fd", 16, "I", "int"),
    ("relative_fd", 20, "I", "int"),
    ("expected_revision", 24, "Q", "int"),
)
LAYOUTS[ProgQueryAttr] = (
    ("target_fd", 0, "I", "int"),
    ("attach_type", 4, "I", "int"),
    ("query_flags", 8, "I", "int"),
    ("attach_flags", 12, "I", "int"),
    ("prog_ids", 16, "Q", "ptr"),
    ("prog_cnt", 24, "I", "int"),
    ("prog_attach_flags", 32, "Q", "ptr"),
    ("link_ids", 40, "Q", "ptr"),
    ("link_attach_flags", 48, "Q", "ptr"),
    ("revision", 56, "Q", "int"),
)
LAYOUTS[RawTracepointOpenAttr] = (
    ("name", 0, "Q", "ptr"),
    ("prog_fd", 8, "I", "int"),
    ("cookie", 16, "Q", "int"),
)


@attrs.frozen(kw_only=True)
class IterCreateAttr:
    """BPF_ITER_CREATE: a readable fd for a new session of an iterator link
    (``flags`` must be 0)."""

    link_fd: int
    flags: int = 0

    CMDS: ClassVar[tuple[Cmd, ...]] = (Cmd.ITER_CREATE,)


LAYOUTS[IterCreateAttr] = (
    ("link_fd", 0, "I", "int"),
    ("flags", 4, "I", "int"),
)
