"""The Runtime: the part of the kernel a BPF user talks to.

One Runtime owns what the kernel would: the fd table of the calling process,
the ids of every map/program/link/BTF object, their reference counts, the
address space programs and maps live in, the simulated CPUs, the clock, and an
in-memory bpffs for pinning. ``pyebpf.bpf()`` uses a default Runtime; tests
make their own so that nothing leaks between them.

Object lifetime follows the kernel: every fd, pin, and holder (a program using
a map, a map-in-map slot, a link) owns one reference; when the last goes the
object is freed and its id disappears.
"""

from __future__ import annotations

import enum
import errno
import random
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs

from .clock import Clock
from .errors import BpfError
from .fib import Fib
from .memory import AddressSpace, Region
from .timers import TimerQueue

__all__ = ["BpfObject", "FMode", "File", "ObjKind", "Runtime", "default_runtime"]

#: Kernel idr limit for object ids (idr_alloc_cyclic(..., 1, INT_MAX)).
INT_MAX = 0x7FFF_FFFF
#: Where user memory (the buffers raw attrs point to) is mapped.
USER_BASE = 0x0000_7F00_0000_0000


class ObjKind(enum.Enum):
    MAP = "map"
    PROG = "prog"
    LINK = "link"
    BTF = "btf"
    #: A simulated perf event (pyebpf.maps.perf_event_array.perf_event_open): an fd
    #: that perf event arrays store, not a BPF object (it has no BPF id).
    PERF_EVENT = "perf_event"
    #: Simulated kernel objects BPF attaches to by fd (pyebpf.links): a network
    #: namespace (/proc/self/ns/net) and a cgroup v2 directory. No BPF ids.
    NETNS = "netns"
    CGROUP = "cgroup"
    #: An open BPF iterator (pyebpf.links.iter, BPF_ITER_CREATE): a readable file.
    ITER = "iter"
    #: A simulated lirc device (/dev/lircN, pyebpf.progs.lirc): LIRC_MODE2
    #: programs attach to its fd. No BPF ids.
    LIRC = "lirc"
    #: A simulated socket file (an AF_XDP socket, pyebpf.links.xsk; a socket of
    #: pyebpf.links.inet, what socket maps store by fd): what sockfd_lookup finds.
    #: No BPF ids.
    SOCKET = "socket"


class FMode(enum.IntFlag):
    """What an fd allows (the kernel's FMODE_CAN_READ / FMODE_CAN_WRITE)."""

    READ = 1
    WRITE = 2
    RW = 3


class BpfObject:
    """Something an fd can refer to: a map, program, link or BTF object."""

    kind: ClassVar[ObjKind]

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.id = 0
        self.refcnt = 0

    def hold(self) -> None:
        self.refcnt += 1

    def release(self) -> None:
        """Drop one reference; the last one frees the object."""
        self.refcnt -= 1
        if self.refcnt == 0:
            self.runtime._forget(self)
            self.free()

    def free(self) -> None:
        """Release what the object owns (regions, references to other objects)."""


@attrs.define(eq=False)
class File:
    """An open file description: the object an fd refers to, and its access mode."""

    obj: BpfObject
    mode: FMode = FMode.RW


class Runtime:
    """The simulated kernel behind :func:`pyebpf.bpf`.

    Settings a test may fix: ``nr_cpus`` (simulated possible CPUs), ``cpu``
    (the CPU programs run on), ``clock``, ``seed`` (hash seeds, prandom),
    ``privileged`` (CAP_BPF and friends), ``fd_limit`` (RLIMIT_NOFILE) and
    ``memory_limit`` (bytes maps may allocate before ENOMEM).
    """

    #: The verifier new runtimes use (see pyebpf.prog.VERIFIERS).
    default_verifier = "kernel"

    def __init__(
        self,
        *,
        nr_cpus: int = 4,
        clock: Clock | None = None,
        seed: int = 0,
        privileged: bool = True,
        fd_limit: int = 1024,
        memory_limit: int = 1 << 30,
    ) -> None:
        if nr_cpus < 1:
            raise ValueError("a runtime needs at least one CPU")
        self.nr_cpus = nr_cpus
        self.cpu = 0
        self.clock = clock if clock is not None else Clock()
        self.seed = seed
        self.random = random.Random(seed)
        self.privileged = privileged
        #: The "current" task helpers report (bpf_get_current_pid_tgid/_uid_gid/_comm/
        #: _task) and the NUMA node (bpf_get_numa_node_id): settable by tests.
        self.pid = 4242
        self.tgid = 4242
        #: The current task's pid namespace, as stat(/proc/self/ns/pid) names it
        #: (st_dev, st_ino: the initial namespace's): bpf_get_ns_current_pid_tgid
        #: answers for it alone, with ``pid``/``tgid``.
        self.pidns_dev = 4
        self.pidns_ino = 0xEFFF_FFFC
        self.uid = 0
        self.gid = 0
        self.comm = "pyebpf"
        self.current_task = 0xFFFF_C900_0042_4000
        self.numa_node = 0
        #: The cgroup v2 id of the current task and of an skb's socket
        #: (bpf_get_current_cgroup_id, bpf_skb_cgroup_id: the root cgroup is 1),
        #: and the network namespace's cookie (bpf_get_netns_cookie).
        self.cgroup_id = 1
        self.netns_cookie = 1
        #: The net_cls classid of the current task's cgroup (bpf_get_cgroup_classid).
        self.net_cls_classid = 0
        #: Routes, neighbours and forwarding settings bpf_fib_lookup consults.
        self.fib = Fib()
        #: The bpf_timers programs initialised (fired by advance_clock/run_timers).
        self.timers = TimerQueue()
        #: The last socket cookie handed out (sock_gen_cookie: 1, 2, ... on first use).
        self.last_socket_cookie = 0
        #: Packets programs sent to a device themselves (bpf_clone_redirect), in
        #: order: pyebpf.helpers.packet.Transmit records.
        self.transmitted: list[Any] = []
        #: The call stacks bpf_get_stackid/bpf_get_stack see (innermost first):
        #: instruction addresses of the kernel and of the user part of the current
        #: task's stack; settable by tests.
        self.kernel_stack: list[int] = [0xFFFF_FFFF_8100_0000 + 0x40 * i for i in (7, 5, 3, 1)]
        self.user_stack: list[int] = [0x5555_5555_0000 + 0x20 * i for i in (3, 2, 1)]
        #: What bpf_trace_printk/bpf_trace_vprintk printed, one string per call.
        self.trace_output: list[str] = []
        self.fd_limit = fd_limit
        self.memory_limit = memory_limit
        self.memory_used = 0
        #: Where programs and map values live.
        self.memory = AddressSpace()
        #: The caller's memory: buffers that raw attrs point into.
        self.user_memory = AddressSpace(base=USER_BASE)
        self.fds: dict[int, File] = {}
        self._objects: dict[ObjKind, dict[int, BpfObject]] = {k: {} for k in ObjKind}
        self._next_id: dict[ObjKind, int] = dict.fromkeys(ObjKind, 1)
        #: Pinned objects by path in the simulated bpffs.
        self.bpffs: dict[str, BpfObject] = {}
        #: Map objects by the address programs hold for them (CONST_PTR_TO_MAP).
        self.maps_by_addr: dict[int, BpfObject] = {}
        #: Helper implementations (func_id -> impl) programs call.
        from .helpers import default_helpers

        self.helpers = default_helpers()
        #: Which entry of pyebpf.prog.VERIFIERS PROG_LOAD runs.
        self.verifier = self.default_verifier
        #: Programs running now (nesting depth); regions freed meanwhile wait.
        self.run_depth = 0
        self._deferred_unmaps: list[Region] = []
        #: The kernel's own BTF ("vmlinux", BTF object id 1 as on a real kernel):
        #: the structs pyebpf simulates, named by struct_ops and tracing programs.
        from .kernel_btf import vmlinux_btf_object

        self.btf_vmlinux = vmlinux_btf_object(self)
        #: State of the simulated attach points (pyebpf.links), by family: the
        #: network namespaces, the cgroup hierarchy, tracepoints.
        self.hooks: dict[str, Any] = {}

    # -- ids ---------------------------------------------------------------------
    def register(self, obj: BpfObject) -> None:
        """Give a new object its id (cyclic from 1, as idr_alloc_cyclic does)."""
        table = self._objects[obj.kind]
        nid = self._next_id[obj.kind]
        for _ in range(INT_MAX):
            if nid > INT_MAX:
                nid = 1
            if nid not in table:
                break
            nid += 1
        else:  # pragma: no cover - needs 2**31 live objects
            raise BpfError(errno.ENOSPC, "out of object ids")
        obj.id = nid
        table[nid] = obj
        self._next_id[obj.kind] = nid + 1

    def _forget(self, obj: BpfObject) -> None:
        self._objects[obj.kind].pop(obj.id, None)

    def objects(self, kind: ObjKind) -> dict[int, BpfObject]:
        """Live objects of a kind, by id."""
        return self._objects[kind]

    def next_id(self, kind: ObjKind, start_id: int) -> int:
        """The smallest id above ``start_id`` (ENOENT when there is none)."""
        ids = [i for i in self._objects[kind] if i > start_id]
        if not ids:
            raise BpfError(errno.ENOENT, f"no {kind.value} id after {start_id}")
        return min(ids)

    # -- fds ---------------------------------------------------------------------
    def install_fd(self, obj: BpfObject, mode: FMode = FMode.RW) -> int:
        """Open a new fd on ``obj`` (the lowest free number from 3) holding a reference."""
        fd = 3
        while fd in self.fds:
            fd += 1
        if fd >= self.fd_limit:
            raise BpfError(errno.EMFILE, f"too many open files (limit {self.fd_limit})")
        obj.hold()
        self.fds[fd] = File(obj, mode)
        return fd

    def file(self, fd: int) -> File:
        f = self.fds.get(fd)
        if f is None:
            raise BpfError(errno.EBADF, f"fd {fd} is not open")
        return f

    def close(self, fd: int) -> None:
        """Close an fd; the object goes when its last reference does."""
        f = self.fds.pop(fd, None)
        if f is None:
            raise BpfError(errno.EBADF, f"fd {fd} is not open")
        f.obj.release()

    def close_all(self) -> None:
        for fd in sorted(self.fds):
            self.close(fd)

    def get_object(self, fd: int, kind: ObjKind) -> tuple[BpfObject, File]:
        """The object behind ``fd`` if it is a ``kind`` (EBADF: no fd; EINVAL: other kind)."""
        f = self.file(fd)
        if f.obj.kind is not kind:
            raise BpfError(errno.EINVAL, f"fd {fd} is a {f.obj.kind.value}, not a {kind.value}")
        return f.obj, f

    # -- memory accounting and deferred frees --------------------------------------
    def charge(self, nbytes: int) -> None:
        """Account an allocation; beyond ``memory_limit`` the kernel says ENOMEM."""
        if self.memory_used + nbytes > self.memory_limit:
            raise BpfError(errno.ENOMEM, f"cannot allocate {nbytes} bytes (limit "
                           f"{self.memory_limit}, in use {self.memory_used})")
        self.memory_used += nbytes

    def uncharge(self, nbytes: int) -> None:
        self.memory_used -= nbytes

    def unmap_later(self, region: Region) -> None:
        """Unmap a region once no program is running: a program that looked it up
        may still read it, as the kernel frees only after an RCU grace period."""
        if self.run_depth:
            self._deferred_unmaps.append(region)
        else:
            self.memory.unmap(region)

    def advance_clock(self, ns: int) -> int:
        """Let ``ns`` nanoseconds pass: the clock moves and every BPF timer due by
        then fires (in expiry order). Returns the number of timer callbacks run."""
        return self.timers.advance(self, ns)

    def run_timers(self) -> int:
        """Fire the BPF timers due now (after the clock was moved by hand)."""
        return self.timers.run_due(self)

    def enter_run(self) -> None:
        self.run_depth += 1

    def exit_run(self) -> None:
        self.run_depth -= 1
        if not self.run_depth:
            for region in self._deferred_unmaps:
                self.memory.unmap(region)
            self._deferred_unmaps.clear()

    def iter_objects(self) -> Iterator[BpfObject]:
        for table in self._objects.values():
            yield from table.values()

    def lirc_device(self, **kwargs: Any) -> Any:
        """A simulated IR receiver with its /dev/lircN open read-write (``.fd``):
        LIRC_MODE2 programs attach to it and decode the samples a test feeds
        (see pyebpf.progs.lirc.LircDevice)."""
        from .progs.lirc import LircDevice

        return LircDevice(self, **kwargs)

    def struct_ops(self, type_name: str, name: str | None = None) -> Any:
        """A struct_ops table registered with a simulated subsystem, whose members
        Python calls as the subsystem would: ``rt.struct_ops("tcp_congestion_ops",
        "bpf_cubic").ssthresh(sk)`` (see pyebpf.struct_ops)."""
        from .struct_ops import struct_ops_lookup

        return struct_ops_lookup(self, type_name, name)

    def kernel_call(self, name: str, *args: Any) -> int | None:
        """Call a simulated kernel function as the kernel would, through its BPF
        trampoline: ``rt.kernel_call("bpf_fentry_test1", 1)`` runs the fentry,
        fmod_ret and fexit programs attached to it around its body and returns
        its (possibly overridden) return value (see pyebpf.kernel_funcs)."""
        from .kernel_funcs import kernel_call

        return kernel_call(self, name, *args)


_default: Runtime | None = None


def default_runtime() -> Runtime:
    """The Runtime behind :func:`pyebpf.bpf` when none is given."""
    global _default
    if _default is None:
        _default = Runtime()
    return _default
