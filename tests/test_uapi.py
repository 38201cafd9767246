"""The kernel numbers in :mod:`pyebpf.uapi`.

Two kinds of check: numbers pinned by hand from the Linux 6.18
include/uapi/linux/bpf.h (so a slip in the port shows up as a named
difference), and a data-driven comparison with the machine's own
``<linux/bpf.h>`` / ``<linux/pkt_cls.h>``, when installed. Those headers are
older than 6.18 (6.1 on the development machine), so they cover a subset: every
enumerator they have must exist here with the same value, and everything here
that they define must agree with them. What is newer than the installed header
is covered by the pinned numbers only.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

import pytest

from pyebpf import uapi
from pyebpf.uapi import (
    AttachFlags,
    AttachType,
    Cmd,
    LinkType,
    MapFlags,
    MapType,
    ProgLoadFlags,
    ProgType,
    RetCode,
    StackBuildIdStatus,
    StatsType,
    TcAct,
    TestRunFlags,
    UpdateMode,
    XdpAction,
)

BPF_H = Path("/usr/include/linux/bpf.h")
PKT_CLS_H = Path("/usr/include/linux/pkt_cls.h")
BPF_COMMON_H = Path("/usr/include/linux/bpf_common.h")


# --------------------------------------------------------------------------
# Pinned numbers (Linux 6.18)
# --------------------------------------------------------------------------

PINNED: list[tuple[enum.Enum, int]] = [
    # enum bpf_cmd
    (Cmd.MAP_CREATE, 0),
    (Cmd.MAP_LOOKUP_ELEM, 1),
    (Cmd.MAP_UPDATE_ELEM, 2),
    (Cmd.MAP_DELETE_ELEM, 3),
    (Cmd.MAP_GET_NEXT_KEY, 4),
    (Cmd.PROG_LOAD, 5),
    (Cmd.OBJ_PIN, 6),
    (Cmd.OBJ_GET, 7),
    (Cmd.PROG_ATTACH, 8),
    (Cmd.PROG_DETACH, 9),
    (Cmd.PROG_TEST_RUN, 10),
    (Cmd.PROG_RUN, 10),
    (Cmd.PROG_GET_NEXT_ID, 11),
    (Cmd.OBJ_GET_INFO_BY_FD, 15),
    (Cmd.PROG_QUERY, 16),
    (Cmd.RAW_TRACEPOINT_OPEN, 17),
    (Cmd.BTF_LOAD, 18),
    (Cmd.TASK_FD_QUERY, 20),
    (Cmd.MAP_LOOKUP_AND_DELETE_ELEM, 21),
    (Cmd.MAP_FREEZE, 22),
    (Cmd.MAP_LOOKUP_BATCH, 24),
    (Cmd.MAP_DELETE_BATCH, 27),
    (Cmd.LINK_CREATE, 28),
    (Cmd.LINK_UPDATE, 29),
    (Cmd.ENABLE_STATS, 32),
    (Cmd.ITER_CREATE, 33),
    (Cmd.LINK_DETACH, 34),
    (Cmd.PROG_BIND_MAP, 35),
    (Cmd.TOKEN_CREATE, 36),
    (Cmd.PROG_STREAM_READ_BY_FD, 37),
    # enum bpf_map_type
    (MapType.UNSPEC, 0),
    (MapType.HASH, 1),
    (MapType.ARRAY, 2),
    (MapType.PROG_ARRAY, 3),
    (MapType.PERF_EVENT_ARRAY, 4),
    (MapType.PERCPU_HASH, 5),
    (MapType.PERCPU_ARRAY, 6),
    (MapType.STACK_TRACE, 7),
    (MapType.LRU_HASH, 9),
    (MapType.LRU_PERCPU_HASH, 10),
    (MapType.LPM_TRIE, 11),
    (MapType.ARRAY_OF_MAPS, 12),
    (MapType.HASH_OF_MAPS, 13),
    (MapType.DEVMAP, 14),
    (MapType.SOCKHASH, 18),
    (MapType.CGROUP_STORAGE_DEPRECATED, 19),
    (MapType.CGROUP_STORAGE, 19),
    (MapType.PERCPU_CGROUP_STORAGE, 21),
    (MapType.QUEUE, 22),
    (MapType.STACK, 23),
    (MapType.STRUCT_OPS, 26),
    (MapType.RINGBUF, 27),
    (MapType.BLOOM_FILTER, 30),
    (MapType.USER_RINGBUF, 31),
    (MapType.CGRP_STORAGE, 32),
    (MapType.ARENA, 33),
    # enum bpf_prog_type
    (ProgType.UNSPEC, 0),
    (ProgType.SOCKET_FILTER, 1),
    (ProgType.KPROBE, 2),
    (ProgType.SCHED_CLS, 3),
    (ProgType.SCHED_ACT, 4),
    (ProgType.TRACEPOINT, 5),
    (ProgType.XDP, 6),
    (ProgType.PERF_EVENT, 7),
    (ProgType.CGROUP_SKB, 8),
    (ProgType.SK_SKB, 14),
    (ProgType.RAW_TRACEPOINT, 17),
    (ProgType.FLOW_DISSECTOR, 22),
    (ProgType.TRACING, 26),
    (ProgType.STRUCT_OPS, 27),
    (ProgType.EXT, 28),
    (ProgType.LSM, 29),
    (ProgType.SK_LOOKUP, 30),
    (ProgType.SYSCALL, 31),
    (ProgType.NETFILTER, 32),
    # enum bpf_attach_type
    (AttachType.CGROUP_INET_INGRESS, 0),
    (AttachType.CGROUP_INET_EGRESS, 1),
    (AttachType.CGROUP_DEVICE, 6),
    (AttachType.CGROUP_INET4_BIND, 8),
    (AttachType.FLOW_DISSECTOR, 17),
    (AttachType.TRACE_RAW_TP, 23),
    (AttachType.TRACE_FENTRY, 24),
    (AttachType.TRACE_FEXIT, 25),
    (AttachType.MODIFY_RETURN, 26),
    (AttachType.LSM_MAC, 27),
    (AttachType.TRACE_ITER, 28),
    (AttachType.XDP, 37),
    (AttachType.PERF_EVENT, 41),
    (AttachType.TRACE_KPROBE_MULTI, 42),
    (AttachType.STRUCT_OPS, 44),
    (AttachType.NETFILTER, 45),
    (AttachType.TCX_INGRESS, 46),
    (AttachType.TCX_EGRESS, 47),
    (AttachType.TRACE_UPROBE_MULTI, 48),
    (AttachType.CGROUP_UNIX_CONNECT, 49),
    (AttachType.CGROUP_UNIX_GETSOCKNAME, 53),
    (AttachType.NETKIT_PRIMARY, 54),
    (AttachType.NETKIT_PEER, 55),
    (AttachType.TRACE_KPROBE_SESSION, 56),
    (AttachType.TRACE_UPROBE_SESSION, 57),
    # enum bpf_link_type
    (LinkType.UNSPEC, 0),
    (LinkType.RAW_TRACEPOINT, 1),
    (LinkType.TRACING, 2),
    (LinkType.CGROUP, 3),
    (LinkType.ITER, 4),
    (LinkType.NETNS, 5),
    (LinkType.XDP, 6),
    (LinkType.PERF_EVENT, 7),
    (LinkType.KPROBE_MULTI, 8),
    (LinkType.STRUCT_OPS, 9),
    (LinkType.NETFILTER, 10),
    (LinkType.TCX, 11),
    (LinkType.UPROBE_MULTI, 12),
    (LinkType.NETKIT, 13),
    (LinkType.SOCKMAP, 14),
    # map update flags
    (UpdateMode.ANY, 0),
    (UpdateMode.NOEXIST, 1),
    (UpdateMode.EXIST, 2),
    # map create flags
    (MapFlags.NO_PREALLOC, 0x1),
    (MapFlags.NO_COMMON_LRU, 0x2),
    (MapFlags.NUMA_NODE, 0x4),
    (MapFlags.RDONLY, 0x8),
    (MapFlags.WRONLY, 0x10),
    (MapFlags.STACK_BUILD_ID, 0x20),
    (MapFlags.ZERO_SEED, 0x40),
    (MapFlags.RDONLY_PROG, 0x80),
    (MapFlags.WRONLY_PROG, 0x100),
    (MapFlags.CLONE, 0x200),
    (MapFlags.MMAPABLE, 0x400),
    (MapFlags.PRESERVE_ELEMS, 0x800),
    (MapFlags.INNER_MAP, 0x1000),
    (MapFlags.LINK, 0x2000),
    (MapFlags.PATH_FD, 0x4000),
    (MapFlags.VTYPE_BTF_OBJ_FD, 0x8000),
    (MapFlags.TOKEN_FD, 0x10000),
    (MapFlags.SEGV_ON_FAULT, 0x20000),
    (MapFlags.NO_USER_CONV, 0x40000),
    # prog load flags
    (ProgLoadFlags.STRICT_ALIGNMENT, 1),
    (ProgLoadFlags.ANY_ALIGNMENT, 2),
    (ProgLoadFlags.TEST_RND_HI32, 4),
    (ProgLoadFlags.TEST_STATE_FREQ, 8),
    (ProgLoadFlags.SLEEPABLE, 16),
    (ProgLoadFlags.XDP_HAS_FRAGS, 32),
    (ProgLoadFlags.XDP_DEV_BOUND_ONLY, 64),
    (ProgLoadFlags.TEST_REG_INVARIANTS, 128),
    (ProgLoadFlags.TOKEN_FD, 1 << 16),
    # attach flags
    (AttachFlags.ALLOW_OVERRIDE, 1),
    (AttachFlags.ALLOW_MULTI, 2),
    (AttachFlags.REPLACE, 4),
    (AttachFlags.BEFORE, 8),
    (AttachFlags.AFTER, 16),
    (AttachFlags.ID, 32),
    (AttachFlags.PREORDER, 64),
    (AttachFlags.LINK, 1 << 13),
    # test run flags
    (TestRunFlags.RUN_ON_CPU, 1),
    (TestRunFlags.XDP_LIVE_FRAMES, 2),
    (TestRunFlags.SKB_CHECKSUM_COMPLETE, 4),
    # misc enums
    (StatsType.RUN_TIME, 0),
    (StackBuildIdStatus.EMPTY, 0),
    (StackBuildIdStatus.VALID, 1),
    (StackBuildIdStatus.IP, 2),
    # return codes
    (XdpAction.ABORTED, 0),
    (XdpAction.DROP, 1),
    (XdpAction.PASS, 2),
    (XdpAction.TX, 3),
    (XdpAction.REDIRECT, 4),
    (TcAct.UNSPEC, -1),
    (TcAct.OK, 0),
    (TcAct.RECLASSIFY, 1),
    (TcAct.SHOT, 2),
    (TcAct.PIPE, 3),
    (TcAct.STOLEN, 4),
    (TcAct.QUEUED, 5),
    (TcAct.REPEAT, 6),
    (TcAct.REDIRECT, 7),
    (TcAct.TRAP, 8),
    (RetCode.OK, 0),
    (RetCode.DROP, 2),
    (RetCode.REDIRECT, 7),
    (RetCode.LWT_REROUTE, 128),
    (RetCode.FLOW_DISSECTOR_CONTINUE, 129),
]


@pytest.mark.parametrize(
    ("member", "value"), PINNED, ids=[f"{type(m).__name__}.{m.name}" for m, _ in PINNED]
)
def test_pinned(member: enum.Enum, value: int) -> None:
    assert int(member) == value


PINNED_CONSTANTS = {
    "BPF_ANY": 0,
    "BPF_NOEXIST": 1,
    "BPF_EXIST": 2,
    "BPF_F_LOCK": 4,
    "BPF_F_QUERY_EFFECTIVE": 1,
    "BPF_OBJ_NAME_LEN": 16,
    "BPF_TAG_SIZE": 8,
    "BPF_BUILD_ID_SIZE": 20,
    "BPF_MAXINSNS": 4096,
    "BPF_COMPLEXITY_LIMIT_INSNS": 1_000_000,
    "BPF_RB_NO_WAKEUP": 1,
    "BPF_RB_FORCE_WAKEUP": 2,
    "BPF_RB_AVAIL_DATA": 0,
    "BPF_RB_RING_SIZE": 1,
    "BPF_RB_CONS_POS": 2,
    "BPF_RB_PROD_POS": 3,
    "BPF_RINGBUF_BUSY_BIT": 0x8000_0000,
    "BPF_RINGBUF_DISCARD_BIT": 0x4000_0000,
    "BPF_RINGBUF_HDR_SZ": 8,
    "BPF_STREAM_STDOUT": 1,
    "BPF_STREAM_STDERR": 2,
    "FUNC_MAX_ID": 212,
}


@pytest.mark.parametrize(("name", "value"), PINNED_CONSTANTS.items())
def test_pinned_constants(name: str, value: int) -> None:
    assert getattr(uapi, name) == value


def test_all_constants_pinned() -> None:
    """Every public int constant has a pinned value (keeps this file complete)."""
    ints = {n for n in uapi.__all__ if isinstance(getattr(uapi, n), int)}
    assert ints == set(PINNED_CONSTANTS)


def test_dense_enums_end_where_6_18_ends() -> None:
    """Implicitly numbered kernel enums: no gaps, and nothing after 6.18's last member."""
    last = {
        Cmd: Cmd.PROG_STREAM_READ_BY_FD,
        MapType: MapType.ARENA,
        ProgType: ProgType.NETFILTER,
        AttachType: AttachType.TRACE_UPROBE_SESSION,
        LinkType: LinkType.SOCKMAP,
    }
    for cls, top in last.items():
        assert sorted(int(m) for m in cls) == list(range(int(top) + 1)), cls.__name__
    # __MAX_BPF_*: what the syscall layer bounds-checks against.
    assert len(Cmd) == 38
    assert len(MapType) == 34
    assert len(ProgType) == 33
    assert len(AttachType) == 58
    assert len(LinkType) == 15


def test_aliases() -> None:
    """The kernel's second names for one number are aliases; its first name is canonical."""
    assert Cmd.PROG_RUN is Cmd.PROG_TEST_RUN
    assert Cmd(10).name == "PROG_TEST_RUN"
    assert MapType.CGROUP_STORAGE is MapType.CGROUP_STORAGE_DEPRECATED
    assert MapType(19).name == "CGROUP_STORAGE_DEPRECATED"
    assert MapType.PERCPU_CGROUP_STORAGE is MapType.PERCPU_CGROUP_STORAGE_DEPRECATED
    assert MapType(21).name == "PERCPU_CGROUP_STORAGE_DEPRECATED"


def test_update_mode_and_lock_bit() -> None:
    assert tuple(UpdateMode) == (uapi.BPF_ANY, uapi.BPF_NOEXIST, uapi.BPF_EXIST)
    flags = uapi.BPF_EXIST | uapi.BPF_F_LOCK
    assert UpdateMode(flags & 3) is UpdateMode.EXIST
    assert flags & uapi.BPF_F_LOCK
    # the lock bit is disjoint from every mode
    assert all(not (m & uapi.BPF_F_LOCK) for m in UpdateMode)


def test_flag_members_are_single_bits() -> None:
    for cls in (MapFlags, ProgLoadFlags, AttachFlags, TestRunFlags):
        for m in cls:
            assert m.value and m.value & (m.value - 1) == 0, (cls.__name__, m.name)
        values = [m.value for m in cls]
        assert len(values) == len(set(values)), cls.__name__


def test_shared_bits_agree() -> None:
    """Bits the kernel defines once and uses in several flag words."""
    assert AttachFlags.LINK == MapFlags.LINK
    assert ProgLoadFlags.TOKEN_FD == MapFlags.TOKEN_FD


def test_all_is_complete() -> None:
    public = {
        n
        for n, v in vars(uapi).items()
        # "@py_builtins"/"@pytest_ar": pytest rewrites the asserts of the whole
        # package that provides a pytest11 plugin, pyebpf included.
        if not n.startswith(("_", "@"))
        and getattr(v, "__module__", uapi.__name__) == uapi.__name__
        and n not in {"annotations", "enum"}
    }
    assert set(uapi.__all__) == public
    assert len(uapi.__all__) == len(set(uapi.__all__))


# --------------------------------------------------------------------------
# Data-driven check against the installed (older) kernel headers
# --------------------------------------------------------------------------

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_ENUM = re.compile(r"\benum\s*(\w*)\s*\{(.*?)\}", re.S)
_DEFINE = re.compile(r"^#define\s+(\w+)\s+(.+?)\s*$", re.M)
_INT_SUFFIX = re.compile(r"\b(0x[0-9a-fA-F]+|\d+)[uUlL]+\b")
_SAFE_EXPR = re.compile(r"^[\w\s()<>|&+\-~]*$")


def _eval(expr: str, known: dict[str, int]) -> int | None:
    """A C integer constant expression over known names, or None if it is not one."""
    expr = _INT_SUFFIX.sub(r"\1", expr.strip())
    if not expr or not _SAFE_EXPR.match(expr):
        return None
    names = set(re.findall(r"\b[A-Za-z_]\w*\b", expr))
    if not names <= known.keys():
        return None
    try:
        value = eval(expr, {"__builtins__": {}}, {n: known[n] for n in names})
    except Exception:  # a macro with arguments or something else not a constant
        return None
    return value if isinstance(value, int) else None


def _parse_header(path: Path) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """All integer constants of a header, and the members of each named enum.

    Enumerators follow C's rule (an implicit value is the previous one + 1);
    ``#define``s are taken when their body evaluates to an integer.
    """
    text = _COMMENT.sub(" ", path.read_text())
    consts: dict[str, int] = {}
    enums: dict[str, dict[str, int]] = {}
    for m in _ENUM.finditer(text):
        tag, body = m.group(1), m.group(2)
        members: dict[str, int] = {}
        nxt = 0
        for item in body.split(","):
            item = item.strip()
            if not item or item.startswith("#"):
                continue
            name, _, expr = item.partition("=")
            name = name.strip()
            if not re.fullmatch(r"[A-Za-z_]\w*", name):
                break  # not a plain enum body (e.g. a macro-generated one)
            if expr:
                value = _eval(expr, consts)
                if value is None:
                    break
            else:
                value = nxt
            members[name] = value
            consts[name] = value
            nxt = value + 1
        if tag:
            enums[tag] = members
    for name, body in _DEFINE.findall(text):
        value = _eval(body, consts)
        if value is not None:
            consts.setdefault(name, value)
    return consts, enums


# (our enum, kernel enum tag or None, the prefix our member names dropped)
_ENUM_PREFIXES: list[tuple[type[enum.Enum], str | None, str]] = [
    (Cmd, "bpf_cmd", "BPF_"),
    (MapType, "bpf_map_type", "BPF_MAP_TYPE_"),
    (ProgType, "bpf_prog_type", "BPF_PROG_TYPE_"),
    (AttachType, "bpf_attach_type", "BPF_"),
    (LinkType, "bpf_link_type", "BPF_LINK_TYPE_"),
    (StatsType, "bpf_stats_type", "BPF_STATS_"),
    (StackBuildIdStatus, "bpf_stack_build_id_status", "BPF_STACK_BUILD_ID_"),
    (XdpAction, "xdp_action", "XDP_"),
    (RetCode, "bpf_ret_code", "BPF_"),
    (UpdateMode, None, "BPF_"),
    (MapFlags, None, "BPF_F_"),
    (ProgLoadFlags, None, "BPF_F_"),
    (AttachFlags, None, "BPF_F_"),
    (TestRunFlags, None, "BPF_F_TEST_"),
]


@pytest.fixture(scope="module")
def bpf_h() -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    if not BPF_H.is_file():
        pytest.skip(f"{BPF_H} not installed")
    return _parse_header(BPF_H)


def test_header_parser_sees_the_header(bpf_h) -> None:
    """Guard against the data-driven tests passing vacuously."""
    consts, enums = bpf_h
    for tag in ("bpf_cmd", "bpf_map_type", "bpf_prog_type", "bpf_attach_type", "xdp_action"):
        assert len(enums.get(tag, {})) >= 5, tag
    assert consts["BPF_MAP_TYPE_HASH"] == 1
    assert consts["BPF_F_ALLOW_MULTI"] == 2
    assert consts["BPF_F_INNER_MAP"] == 1 << 12


@pytest.mark.parametrize(
    ("cls", "tag", "prefix"), _ENUM_PREFIXES, ids=[c.__name__ for c, _, _ in _ENUM_PREFIXES]
)
def test_matches_installed_bpf_h(bpf_h, cls, tag, prefix) -> None:
    consts, enums = bpf_h
    # Every enumerator of the header's enum is here, with its value.
    if tag is not None:
        # __MAX_* counters (plain MAX_BPF_LINK_TYPE in older headers) are not members.
        theirs = {n: v for n, v in enums[tag].items() if not n.startswith(("__", "MAX_"))}
        assert theirs, tag
        for name, value in theirs.items():
            assert name.startswith(prefix), name
            ours = cls.__members__.get(name[len(prefix) :])
            assert ours is not None, f"{name} missing from {cls.__name__}"
            assert int(ours) == value, name
    # Every member here that the header defines has the header's value.
    checked = 0
    for member_name, member in cls.__members__.items():
        kernel_name = prefix + member_name
        if kernel_name in consts:
            assert int(member) == consts[kernel_name], kernel_name
            checked += 1
    assert checked, f"nothing of {cls.__name__} found in {BPF_H}"


def test_constants_match_installed_headers(bpf_h) -> None:
    consts, _ = bpf_h
    if BPF_COMMON_H.is_file():
        consts = {**_parse_header(BPF_COMMON_H)[0], **consts}
    checked = 0
    for name in uapi.__all__:
        if name.startswith("BPF_") and name in consts:
            assert getattr(uapi, name) == consts[name], name
            checked += 1
    assert checked >= 15
    # BPF_FUNC_* are generated by a macro the parser does not expand; the count
    # of the mapper's entries still gives __BPF_FUNC_MAX_ID.
    text = BPF_H.read_text()
    mapper = re.findall(r"FN\((\w+), (\d+), ##ctx\)", text)
    if mapper:
        for name, value in mapper:
            assert int(uapi.FuncId[name]) == int(value), name
        assert len(mapper) == uapi.FUNC_MAX_ID


def test_tc_act_matches_installed_pkt_cls_h() -> None:
    if not PKT_CLS_H.is_file():
        pytest.skip(f"{PKT_CLS_H} not installed")
    consts, _ = _parse_header(PKT_CLS_H)
    for member_name, member in TcAct.__members__.items():
        assert consts["TC_ACT_" + member_name] == int(member), member_name
    assert consts["TC_ACT_VALUE_MAX"] == TcAct.TRAP
