"""The helper table: one entry per kernel helper id, read by engine and verifier.

Each :class:`Helper` joins what the verifier needs (its :class:`~.proto.Proto`:
argument and return types, ``gpl_only``...; and where the kernel offers it)
with what the engine runs (its implementation), so a helper is added in one
place and both readers agree.

A helper implementation is called as ``impl(vm, r1, r2, r3, r4, r5)`` with the
argument registers as unsigned 64-bit integers and the running :class:`Vm` (its
memory, clock, tail-call counter, its ``runtime`` with maps and settings). It
returns the new r0, or ``None`` to leave r0 as it was (what the kernel's
interpreter does for a failed tail call). Errors are returned as the kernel's
helpers return them, negative errno values; a run-time fault (a bad pointer
an unverified program passed) raises :class:`~pyebpf.errors.BpfFault`.

Helper families live in submodules that register into :data:`HELPERS` when
imported; :func:`default_helpers` imports them all.

Where a helper is available (the kernel's per-program-type ``get_func_proto``)
is recorded as data: :attr:`Helper.tier` says where ``bpf_base_func_proto``
offers it (``"base"`` for every program, ``"cap_bpf"`` behind CAP_BPF,
``"perfmon"`` behind CAP_PERFMON), :attr:`Helper.prog_types` which program
types offer it from their own table. :func:`func_proto` answers the question
the verifier asks ("may this program call this helper?") from those records;
it covers the helpers pyebpf implements, with the kernel's structure but not
every special case of every program type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._families import import_families
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

__all__ = [
    "CLOSED_TABLES",
    "HELPERS",
    "TIERS",
    "ArgType",
    "Helper",
    "HelperImpl",
    "Proto",
    "RetType",
    "TypeFlag",
    "default_helpers",
    "func_proto",
    "register_helper",
]

HelperImpl = Callable[["Vm", int, int, int, int, int], "int | None"]

#: The tiers of ``bpf_base_func_proto``, from least to most privileged.
TIERS = ("base", "cap_bpf", "perfmon")


@attrs.frozen
class Helper:
    """A helper: its identity, prototype, availability and implementation."""

    func_id: int
    name: str
    impl: HelperImpl
    #: The kernel's ``bpf_func_proto`` (argument/return types, gpl_only...).
    proto: Proto = attrs.field(factory=Proto)
    #: Where ``bpf_base_func_proto`` offers it: "base", "cap_bpf", "perfmon"; or
    #: None when only the program types in :attr:`prog_types` offer it.
    tier: str | None = None
    #: Program types (ProgType values) whose own ``get_func_proto`` offers it.
    prog_types: frozenset[int] = frozenset()
    #: Program types whose table offers a prototype of their own for the same id
    #: (bpf_get_cgroup_classid takes the skb in tc programs, nothing elsewhere).
    type_protos: Mapping[int, Proto] = attrs.field(factory=dict)
    #: Program types whose table offers it behind CAP_PERFMON only (the socket
    #: casts of ``bpf_sk_base_func_proto``, net/core/filter.c).
    perfmon_types: frozenset[int] = frozenset()
    #: expected_attach_types whose programs don't get it even where the program
    #: type offers it (cgroup_common_func_proto refuses bpf_get_retval to sock_ops,
    #: recvmsg, getpeername/getsockname and cgroup_skb programs).
    denied_attach_types: frozenset[int] = frozenset()

    @property
    def kernel_name(self) -> str:
        """The name the verifier log uses: ``bpf_map_lookup_elem``."""
        return f"bpf_{self.name}"


#: func_id -> Helper, filled by the helper modules as they are imported.
HELPERS: dict[int, Helper] = {}
#: Program types whose get_func_proto is a closed list that never falls back to
#: ``bpf_base_func_proto`` (lirc_mode2_func_proto): every helper id it offers; the
#: others' tiers still apply (trace_printk's CAP_PERFMON).
CLOSED_TABLES: dict[int, frozenset[int]] = {}


def register_helper(
    func_id: int,
    name: str,
    proto: Proto | None = None,
    *,
    tier: str | None = None,
    prog_types: Iterable[int] = (),
    type_protos: Mapping[int, Proto] | None = None,
    perfmon_types: Iterable[int] = (),
    denied_attach_types: Iterable[int] = (),
) -> Callable[[HelperImpl], HelperImpl]:
    """Decorator adding an implementation to :data:`HELPERS` under ``func_id``.

    ``register_helper(5, "ktime_get_ns")`` still works (a RET_INTEGER, no-argument
    prototype, offered nowhere); helpers the verifier should know give ``proto``
    and where they are offered (``tier``, ``prog_types``).
    """
    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, not {tier!r}")

    def deco(impl: HelperImpl) -> HelperImpl:
        own = {int(t): p for t, p in (type_protos or {}).items()}
        HELPERS[func_id] = Helper(func_id, name, impl, proto if proto is not None else Proto(),
                                  tier, frozenset(int(t) for t in prog_types) | set(own), own,
                                  frozenset(int(t) for t in perfmon_types),
                                  frozenset(int(t) for t in denied_attach_types))
        return impl

    return deco


_FAMILIES = ("time", "maps", "misc", "printf", "ringbuf", "skb", "csum", "packet", "tunnel",
             "sockopt", "fib", "timer", "perf_event", "stack", "cgroup_array", "redirect_map",
             "seq", "local_storage", "dynptr", "user_ringbuf", "task", "reuseport", "sockmap",
             "kptr", "rc", "skc", "sk_msg", "btf_show", "trampoline", "sysctl",
             "cgroup_retval", "hdr_opt", "signal", "syscall_prog", "task_regs")


def _load() -> None:
    import_families(__name__, _FAMILIES)


def default_helpers() -> dict[int, Any]:
    """``func_id -> impl`` for every helper pyebpf implements."""
    _load()
    return {h.func_id: h.impl for h in HELPERS.values()}


def helper_table() -> dict[int, Helper]:
    """Every helper pyebpf implements, with its prototype (``func_id -> Helper``)."""
    _load()
    return dict(HELPERS)


def func_proto(func_id: int, prog_type: int, *, cap_bpf: bool = True,
               cap_perfmon: bool = True,
               expected_attach_type: int | None = None) -> Helper | None:
    """The helper a program of ``prog_type`` gets for ``func_id``, or None.

    None is the kernel's ``get_func_proto`` returning NULL, which the verifier
    reports as ``unknown func bpf_<name>#<id>``. A program type's own table
    comes first (:attr:`Helper.prog_types`), then ``bpf_base_func_proto`` with
    its capability tiers.
    """
    _load()
    helper = HELPERS.get(func_id)
    if helper is None:
        return None
    if expected_attach_type is not None and \
            int(expected_attach_type) in helper.denied_attach_types:
        return None
    own = helper.type_protos.get(int(prog_type))
    if own is not None:
        return attrs.evolve(helper, proto=own)
    closed = CLOSED_TABLES.get(int(prog_type))
    if closed is not None and func_id not in closed:
        return None
    if int(prog_type) in helper.prog_types:
        return helper
    if int(prog_type) in helper.perfmon_types:
        return helper if cap_perfmon else None
    if helper.tier == "base":
        return helper
    if helper.tier == "cap_bpf":
        return helper if cap_bpf else None
    if helper.tier == "perfmon":
        return helper if cap_bpf and cap_perfmon else None
    return None
