"""Programs: BPF_PROG_LOAD, the program object, and BPF_PROG_TEST_RUN's dispatch.

Loading follows the kernel's ``bpf_prog_load`` and the start of ``bpf_check``:
attr checks in the kernel's order, the license, the log buffer rules, the
instruction copy, then the verifier. Map references in 64-bit immediate loads
are resolved as ``resolve_pseudo_ldimm64`` does: the fd is replaced by the
map's address (what the verifier's rewrite puts there), and the program holds
a reference on every map it uses.

The verifier is pluggable (:data:`VERIFIERS`): until the full verifier lands,
the default runs the structural checks (decodable instructions, map fds,
jumps inside the program, ending in exit or a jump) and says so in the log.
"""

from __future__ import annotations

import errno
import hashlib
import struct
from collections.abc import Callable
from typing import Any

import attrs

from .attr import LOG_BUF_AUTO, ProgLoadAttr, TestRunAttr, UserPtr
from .errors import BpfError, BpfFault, VerifierError
from .isa.insn import INSN_SIZE, Insn, decode, encode
from .isa.opcodes import PseudoSrc
from .maps.base import BpfMap
from .runtime import BpfObject, ObjKind, Runtime
from .syscall import _copy_out, copy_from_user, obj_name_cpy, register_command
from .uapi import (
    BPF_COMPLEXITY_LIMIT_INSNS,
    BPF_MAXINSNS,
    AttachType,
    Cmd,
    ProgLoadFlags,
    ProgType,
)

__all__ = ["BpfProg", "LoadedFd", "ProgInfo", "TestRunResult", "VERIFIERS", "prog_load"]

#: License strings that make gpl_only helpers available (license_is_gpl_compatible).
GPL_COMPATIBLE = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL",
                            "Dual MIT/GPL", "Dual MPL/GPL"})
BPF_LOG_LEVEL = 1 | 2
BPF_LOG_STATS = 4
BPF_LOG_FIXED = 8
BPF_LOG_MASK = BPF_LOG_LEVEL | BPF_LOG_STATS | BPF_LOG_FIXED
BPF_LOG_MIN_ALIGNMENT = 8
#: Program flags the kernel accepts (bpf_prog_load's mask in 6.18).
PROG_LOAD_FLAG_MASK = (
    ProgLoadFlags.STRICT_ALIGNMENT | ProgLoadFlags.ANY_ALIGNMENT | ProgLoadFlags.TEST_RND_HI32
    | ProgLoadFlags.TEST_STATE_FREQ | ProgLoadFlags.SLEEPABLE | ProgLoadFlags.XDP_HAS_FRAGS
    | ProgLoadFlags.XDP_DEV_BOUND_ONLY | ProgLoadFlags.TEST_REG_INVARIANTS
    | ProgLoadFlags.TOKEN_FD
)
#: Types an unprivileged user may load.
UNPRIV_PROG_TYPES = {ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB}


class LoadedFd(int):
    """The fd PROG_LOAD returns, carrying the verifier log the load produced."""

    log: str
    log_true_size: int

    def __new__(cls, fd: int, log: str = "", log_true_size: int = 0) -> LoadedFd:
        obj = super().__new__(cls, fd)
        obj.log = log
        obj.log_true_size = log_true_size
        return obj

    def _repr_html_(self) -> str:
        from .views import loaded_log_html

        return loaded_log_html(self)


class VerifierLog:
    """The kernel's verifier log buffer: levels, rotation-free fixed mode, truncation."""

    def __init__(self, level: int, size: int) -> None:
        self.level = level
        self.size = size
        self.parts: list[str] = []
        self.end_pos = 0

    def write(self, text: str) -> None:
        if self.level:
            self.parts.append(text)
            self.end_pos += len(text)

    def reset(self, pos: int) -> None:
        """bpf_vlog_reset: forget everything written after ``pos``.

        Drops whole pieces from the end and trims the last one kept, so the
        verifier's per-instruction rewinds cost what they remove, not the log's size.
        """
        if pos >= self.end_pos:
            return
        parts = self.parts
        end = self.end_pos
        while parts and end - len(parts[-1]) >= pos:
            end -= len(parts.pop())
        if end > pos:
            last = parts.pop()
            parts.append(last[:len(last) - (end - pos)])
        self.end_pos = pos

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def finish(self) -> tuple[bytes, int]:
        """The bytes the user buffer receives (NUL-terminated, cut to fit) and the
        true size (what a big enough buffer would need, NUL included)."""
        raw = self.text.encode()
        true_size = len(raw) + 1 if raw else 0
        if not self.size:
            return b"", true_size
        if self.level & BPF_LOG_FIXED or len(raw) < self.size:
            kept = raw[: self.size - 1]
        else:
            # Rotating log (the default since 6.4): keep the tail that fits.
            kept = raw[len(raw) - (self.size - 1):]
        return kept + b"\0", true_size

    @property
    def truncated(self) -> bool:
        return bool(self.size) and len(self.text.encode()) + 1 > self.size


def vlog_attr_valid(level: int, has_buf: bool, size: int) -> bool:
    """bpf_verifier_log_attr_valid."""
    if has_buf != bool(size):
        return False
    if has_buf and level == 0:
        return False
    if level & ~BPF_LOG_MASK:
        return False
    return size <= 0xFFFF_FFFF >> 2


@attrs.frozen
class ProgInfo:
    """struct bpf_prog_info (the fields pyebpf knows)."""

    type: int
    id: int
    tag: bytes
    jited_prog_len: int
    xlated_prog_len: int
    load_time: int
    created_by_uid: int
    nr_map_ids: int
    map_ids: tuple[int, ...]
    name: str
    gpl_compatible: bool
    verified_insns: int


@attrs.frozen
class TestRunResult:
    """What PROG_TEST_RUN reports: r0 (u32), output data/ctx, average ns per run."""

    __test__ = False

    retval: int
    duration: int
    data_out: bytes | None = None
    data_size_out: int = 0
    ctx_out: bytes | None = None
    ctx_size_out: int = 0
    #: What bpf_trace_printk printed during this test run (filled by objects.Program).
    printk: tuple[str, ...] = ()
    #: The pyebpf.trace.Trace of the run, when ``trace=True`` asked for one.
    trace: Any = attrs.field(default=None, eq=False, repr=False)


#: Callables ``(prog) -> Vm | None`` consulted by :meth:`BpfProg.vm` before its own
#: interpreter (see pyebpf.trace.traced and pyebpf.coverage.collect).
VM_HOOKS: list[Callable[[BpfProg], Any]] = []


class BpfProg(BpfObject):
    """A loaded program: its instructions as rewritten at load, and what it holds."""

    kind = ObjKind.PROG

    def __init__(self, runtime: Runtime, attr: ProgLoadAttr, insns: list[Insn],
                 license_: str) -> None:
        super().__init__(runtime)
        self.prog_type = ProgType(attr.prog_type)
        self.expected_attach_type = attr.expected_attach_type
        self.prog_flags = attr.prog_flags
        self.orig_insns = insns
        self.insns = list(insns)
        #: The loads the verifier made BPF_PROBE_MEM (through untrusted or plain BTF
        #: pointers): the engine runs them so that a fault reads 0.
        self.probe_mem_insns: frozenset[int] = frozenset()
        self.license = license_
        self.gpl_compatible = license_ in GPL_COMPATIBLE
        self.name = ""
        self.used_maps: list[BpfMap] = []
        self.load_time = runtime.clock.ns
        self.verified_insns = 0
        #: prog->aux->max_ctx_offset and max_tp_access: the furthest ctx byte and
        #: writable-tracepoint-buffer byte the verifier saw the program reach; test
        #: runs and raw tracepoint attaches refuse (EINVAL) a ctx smaller than that.
        self.max_ctx_offset = 0
        self.max_tp_access = 0
        #: prog->enforce_expected_attach_type: set by the verifier when a CGROUP_SKB
        #: egress program may return 2 or 3; it then attaches as egress only.
        self.enforce_expected_attach_type = False
        #: BTF line info (LineInfo records, insn_off in slots) and the path of the
        #: object it came from: how traces, coverage and views name source lines.
        self.line_info: list[Any] = []
        self.obj_path: str | None = None
        #: The program's BTF and func_info records (pyebpf.btf_load.load_prog_btf),
        #: and what it attaches to by BTF: attach_btf_id in ``attach_btf`` (vmlinux)
        #: or in ``dst_prog``'s BTF (extensions), the FUNC_PROTO it implements.
        self.btf: Any = None
        self.func_info: list[Any] = []
        self.attach_btf_id = attr.attach_btf_id
        self.attach_btf: Any = None
        self.dst_prog: BpfProg | None = None
        self.attach_func_proto: Any = None
        #: Functions of this program extensions replace now: start pc -> the
        #: extension's instructions (pyebpf.progs.ext; every Vm of it reads this).
        self.replaced_functions: dict[int, Any] = {}
        self._vm: Any = None

    @property
    def tag(self) -> bytes:
        """bpf_prog_calc_tag: SHA-1 of the instructions with map references zeroed."""
        raw = bytearray(encode(self.orig_insns))
        for i, insn in enumerate(self.orig_insns):
            if insn.code == 0x18 and insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
                struct.pack_into("<i", raw, i * INSN_SIZE + 4, 0)
                struct.pack_into("<i", raw, (i + 1) * INSN_SIZE + 4, 0)
        return hashlib.sha1(raw).digest()[:8]

    def vm(self) -> Any:
        """The interpreter instance for this program (built once, reused per run).

        A hook in :data:`VM_HOOKS` may supply another (pyebpf.trace's recording
        interpreter, pyebpf.coverage's counting one); the list is empty unless a
        trace or coverage collection is active, so the default path pays nothing."""
        for hook in VM_HOOKS:
            other = hook(self)
            if other is not None:
                return other
        if self._vm is None:
            from .engine import Vm
            from .kfuncs import default_kfuncs

            rt = self.runtime
            self._vm = Vm(self.insns, helpers=rt.helpers, kfuncs=default_kfuncs(),
                          memory=rt.memory, clock=rt.clock, runtime=rt, owner=self)
        return self._vm

    def run(self, ctx_addr: int, *, budget: int | None = None) -> int:
        """Run once with r1 = ctx_addr; return r0 (u64). Regions freed meanwhile wait."""
        rt = self.runtime
        vm = self.vm()
        rt.enter_run()
        try:
            return vm.run(r1=ctx_addr, budget=budget)
        finally:
            rt.exit_run()

    def info(self) -> ProgInfo:
        return ProgInfo(type=int(self.prog_type), id=self.id, tag=self.tag, jited_prog_len=0,
                        xlated_prog_len=len(self.insns) * INSN_SIZE, load_time=self.load_time,
                        created_by_uid=0, nr_map_ids=len(self.used_maps),
                        map_ids=tuple(m.id for m in self.used_maps), name=self.name,
                        gpl_compatible=self.gpl_compatible,
                        verified_insns=self.verified_insns)

    def free(self) -> None:
        for m in self.used_maps:
            m.release()
        self.used_maps.clear()
        if self.dst_prog is not None:
            self.dst_prog.release()
            self.dst_prog = None


# -- load ------------------------------------------------------------------------------------
def _insn_count(attr: ProgLoadAttr) -> int:
    if attr.insn_cnt is not None:
        return attr.insn_cnt
    if isinstance(attr.insns, list | tuple):
        return len(attr.insns)
    if isinstance(attr.insns, bytes | bytearray | memoryview):
        return len(attr.insns) // INSN_SIZE
    return 0


def _license(rt: Runtime, lic: Any) -> str:
    if lic is None:
        raise BpfError(errno.EFAULT, "license is a NULL pointer")
    if isinstance(lic, UserPtr):
        out = bytearray()
        while len(out) < 127:
            (b,) = copy_from_user(rt, UserPtr(lic.addr + len(out)), 1)
            if b == 0:
                break
            out.append(b)
        lic = bytes(out)
    text = lic.decode("latin-1") if isinstance(lic, bytes) else lic
    return text.split("\0", 1)[0][:127]


def _structural(rt: Runtime, prog: BpfProg, log: VerifierLog) -> None:
    from .verifier import structural

    structural(rt, prog, log)


def _kernel_verifier(rt: Runtime, prog: BpfProg, log: VerifierLog) -> None:
    from .verifier import verify

    verify(rt, prog, log)


#: The verifier used by PROG_LOAD: (runtime, prog, log) -> None, raising on
#: rejection. "kernel" is pyebpf's port of the kernel's verifier (the default);
#: "structural" only checks what the interpreter needs (runs unverified code).
VERIFIERS: dict[str, Callable[[Runtime, BpfProg, VerifierLog], None]] = {
    "kernel": _kernel_verifier,
    "structural": _structural,
}


#: bpf_prog_load_fixup_attach_type: the attach type an unset one means.
_DEFAULT_ATTACH = {ProgType.CGROUP_SOCK: AttachType.CGROUP_INET_SOCK_CREATE,
                   ProgType.SK_REUSEPORT: AttachType.SK_REUSEPORT_SELECT}


def _fixup_attach_type(attr: ProgLoadAttr) -> ProgLoadAttr:
    default = _DEFAULT_ATTACH.get(attr.prog_type)  # type: ignore[call-overload]
    if default is not None and not attr.expected_attach_type:
        return attrs.evolve(attr, expected_attach_type=int(default))
    return attr


def prog_load(rt: Runtime, attr: ProgLoadAttr) -> LoadedFd:
    if attr.prog_flags & ~PROG_LOAD_FLAG_MASK:
        raise BpfError(errno.EINVAL, f"invalid prog_flags {attr.prog_flags:#x}")
    cnt = _insn_count(attr)
    limit = BPF_COMPLEXITY_LIMIT_INSNS if rt.privileged else BPF_MAXINSNS
    if cnt == 0 or cnt > limit:
        raise BpfError(errno.E2BIG, f"insn_cnt {cnt} is 0 or over the limit {limit}")
    if not rt.privileged and attr.prog_type not in UNPRIV_PROG_TYPES:
        raise BpfError(errno.EPERM, "this program type needs CAP_BPF")
    from .progs import prog_type_ops

    attr = _fixup_attach_type(attr)
    ops = prog_type_ops(attr.prog_type)
    if ops is not None:
        ops.check_attach(attr)
    # Copy the instructions and the license from the caller.
    insns = attr.insns
    if isinstance(insns, list | tuple):
        insns = encode(insns)
    raw = copy_from_user(rt, insns, cnt * INSN_SIZE)
    license_ = _license(rt, attr.license)
    if ops is None:
        raise BpfError(errno.EINVAL, f"unknown or unsupported program type {attr.prog_type}")
    # The log (bpf_check's first step). AUTO: pyebpf provides the buffer.
    auto = attr.log_buf is LOG_BUF_AUTO
    has_buf = attr.log_size > 0 if auto else attr.log_buf is not None
    if not vlog_attr_valid(attr.log_level, has_buf, attr.log_size):
        raise BpfError(errno.EINVAL, "invalid log_level, log_size and log_buf combination")
    log = VerifierLog(attr.log_level, attr.log_size)
    prog = BpfProg(rt, attr, decode(raw, strict=False), license_)
    try:
        prog.name = obj_name_cpy(attr.prog_name)
        from .btf_load import prog_load_btf

        prog_load_btf(rt, prog, attr)  # attach target by BTF; check_btf_info
        VERIFIERS[rt.verifier](rt, prog, log)
    except BpfError as err:
        prog.free()
        _deliver_log(rt, attr, log)
        if isinstance(err, VerifierError):
            err.log = log.text
            # What pyebpf.explain needs to walk the verifier's path again.
            err.load_attr, err.runtime = attr, rt  # type: ignore[attr-defined]
        raise
    _, true_size = _deliver_log(rt, attr, log)
    if log.truncated:
        prog.free()
        raise VerifierError(errno.ENOSPC, "verifier log buffer too small", log.text)
    try:  # bpf_prog_select_runtime: program arrays the program uses must accept it
        from .maps.prog_array import bpf_check_tail_call

        bpf_check_tail_call(prog)
    except BpfError:
        prog.free()
        raise
    rt.register(prog)
    fd = rt.install_fd(prog)
    return LoadedFd(fd, log.text, true_size)


def _deliver_log(rt: Runtime, attr: ProgLoadAttr, log: VerifierLog) -> tuple[bytes, int]:
    data, true_size = log.finish()
    if isinstance(attr.log_buf, UserPtr) and data:
        _copy_out(rt, attr.log_buf, data)
    elif isinstance(attr.log_buf, bytearray) and data:
        attr.log_buf[: len(data)] = data
    return data, true_size


# -- test run ------------------------------------------------------------------------------------
def prog_test_run(rt: Runtime, attr: TestRunAttr) -> TestRunResult:
    obj, _ = rt.get_object(attr.prog_fd, ObjKind.PROG)
    assert isinstance(obj, BpfProg)
    from .progs import prog_type_ops

    ops = prog_type_ops(obj.prog_type)
    if ops is None or ops.test_run is None:
        from .errors import ENOTSUPP

        raise BpfError(ENOTSUPP, f"{obj.prog_type.name} programs can't be test-run")
    try:
        return ops.test_run(rt, obj, attr)
    except BpfFault:
        raise


register_command(Cmd.PROG_LOAD, prog_load)
register_command(Cmd.PROG_TEST_RUN, prog_test_run)
