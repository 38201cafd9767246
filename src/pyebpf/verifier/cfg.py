"""The passes before the walk: subprograms, pseudo-ldimm64, and the CFG check.

kernel/bpf/verifier.c runs, before ``do_check``: ``add_subprog_and_kfunc``
(every BPF-to-BPF call or callback reference starts a subprogram),
``check_subprogs`` (jumps stay in their subprogram, which ends in exit or a
jump), ``resolve_pseudo_ldimm64`` (map fds become maps; unknown opcodes are
refused) and ``check_cfg`` (a depth-first search that refuses back-edges for
unprivileged programs, unreachable instructions and jumps into an lddw, and
marks prune points). Each keeps the kernel's message.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import ENOTSUPP
from ..isa.insn import Insn
from ..isa.opcodes import OPCODES
from .state import BPF_MAX_VAR_OFF

if TYPE_CHECKING:
    from .check import Verifier

__all__ = ["add_subprogs", "check_cfg", "check_subprogs", "resolve_pseudo_ldimm64"]

BPF_JMP, BPF_JMP32 = 0x05, 0x06
BPF_CALL, BPF_EXIT, BPF_JA = 0x80, 0x90, 0x00
BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_FUNC = 1, 2, 4
DISCOVERED, EXPLORED, FALLTHROUGH, BRANCH = 0x10, 0x20, 1, 2
DONE_EXPLORING, KEEP_EXPLORING = 0, 1


def is_ldimm64(insn: Insn) -> bool:
    return insn.code == 0x18


def pseudo_call(insn: Insn) -> bool:
    return insn.code == 0x85 and insn.src == BPF_PSEUDO_CALL


def pseudo_func(insn: Insn) -> bool:
    return insn.code == 0x18 and insn.src == BPF_PSEUDO_FUNC


def pseudo_kfunc_call(insn: Insn) -> bool:
    return insn.code == 0x85 and insn.src == BPF_PSEUDO_KFUNC_CALL


def add_subprogs(v: Verifier) -> None:
    """add_subprog_and_kfunc: subprogram starts, sorted, with the end sentinel."""
    insns = v.insns
    n = len(insns)
    starts = {0}
    for i, insn in enumerate(insns):
        if not (pseudo_func(insn) or pseudo_call(insn) or pseudo_kfunc_call(insn)):
            continue
        if not v.bpf_capable:
            v.fail(
                errno.EPERM,
                "loading/calling other bpf or kernel functions are allowed "
                "for CAP_BPF and CAP_SYS_ADMIN",
            )
        if pseudo_kfunc_call(insn):
            v.kfunc_calls.append(i)
            continue
        target = i + insn.imm + 1
        if target < 0 or target >= n:
            v.fail(errno.EINVAL, "call to invalid destination")
        starts.add(target)
    v.subprog_starts = [*sorted(starts), n]
    if v.log.level & 2:
        for i, start in enumerate(v.subprog_starts[:-1]):
            v.verbose(f"func#{i} @{start}\n")


def subprog_of(v: Verifier, insn_idx: int) -> int:
    import bisect

    return bisect.bisect_right(v.subprog_starts, insn_idx) - 1


def check_subprogs(v: Verifier) -> None:
    """Every jump stays inside its subprogram; each ends in exit or a jump."""
    insns = v.insns
    starts = v.subprog_starts
    cur = 0
    start, end = starts[0], starts[1]
    for i, insn in enumerate(insns):
        code = insn.code
        cls = code & 0x07
        if cls in (BPF_JMP, BPF_JMP32) and (code & 0xF0) not in (BPF_EXIT, BPF_CALL):
            off = i + (insn.imm if code == (BPF_JMP32 | BPF_JA) else insn.off) + 1
            if off < start or off >= end:
                v.fail(errno.EINVAL, f"jump out of range from insn {i} to {off}")
        if i == end - 1:
            if code not in (BPF_JMP | BPF_EXIT, BPF_JMP32 | BPF_JA, BPF_JMP | BPF_JA):
                v.fail(errno.EINVAL, "last insn is not an exit or jmp")
            cur += 1
            if cur < len(starts) - 1:
                start, end = end, starts[cur + 1]


def _in_insntable(code: int) -> bool:
    """bpf_opcode_in_insntable: the kernel's opcode table (callx excluded)."""
    spec = OPCODES.get(code)
    return spec is not None and spec.in_kernel


def resolve_pseudo_ldimm64(v: Verifier) -> None:
    """Check every slot's opcode and resolve lddw map references (by fd)."""
    insns = v.insns
    n = len(insns)
    rt = v.runtime
    i = 0
    while i < n:
        insn = insns[i]
        code = insn.code
        if code & 0x07 == 0x01 and ((code & 0xE0) not in (0x60, 0x80) or insn.imm != 0):
            v.fail(errno.EINVAL, "BPF_LDX uses reserved fields")
        if code == 0x18:
            nxt = insns[i + 1] if i + 1 < n else None
            if nxt is None or nxt.code or nxt.dst or nxt.src or nxt.off:
                v.fail(errno.EINVAL, "invalid bpf_ld_imm64 insn")
            src = insn.src
            if src == 0 or src == BPF_PSEUDO_FUNC:
                i += 2
                continue
            if src == 3:  # BPF_PSEUDO_BTF_ID: ksyms need vmlinux BTF
                v.fail(
                    errno.EINVAL,
                    "kernel is missing BTF, make sure CONFIG_DEBUG_INFO_BTF=y "
                    "is specified in Kconfig.",
                )
            if not (src in (2, 6) or (src in (1, 5) and nxt.imm == 0)):
                v.fail(errno.EINVAL, "unrecognized bpf_ld_imm64 insn")
            if src in (5, 6):
                v.fail(errno.EPROTO, "fd_idx without fd_array is invalid")
            fd = insn.imm & 0xFFFF_FFFF
            f = rt.fds.get(fd)
            from ..maps.base import BpfMap

            if f is None or not isinstance(f.obj, BpfMap):
                err = errno.EBADF if f is None else errno.EINVAL
                v.fail(err, f"fd {insn.imm} is not pointing to valid bpf_map")
            m = f.obj
            check_map_prog_compatibility(v, m)
            off = 0
            if src == 2:
                off = nxt.imm & 0xFFFF_FFFF
                if off >= BPF_MAX_VAR_OFF:
                    v.fail(errno.EINVAL, f"direct value offset of {off} is not allowed")
                direct = getattr(m, "direct_value_addr", None)
                if direct is None:
                    v.fail(errno.EINVAL, "no direct value access support for this map type")
                err = _direct_value_error(m, off)
                if err:
                    v.fail(
                        err,
                        f"invalid access to map value pointer, value_size={m.value_size} off={off}",
                    )
            v.ld_imm64[i] = (m, off, src)
            v.use_map(m)
            # As the kernel does here, the slots now hold the address (the log shows it).
            addr = m.addr if src in (1, 5) else m.direct_value_addr() + off
            insns[i] = Insn(insn.code, insn.dst, insn.src, insn.off, _s32(addr))
            insns[i + 1] = Insn(nxt.code, nxt.dst, nxt.src, nxt.off, _s32(addr >> 32))
            i += 2
            continue
        if not _in_insntable(code):
            v.fail(errno.EINVAL, f"unknown opcode {code:02x}")
        i += 1


#: is_tracing_prog_type: programs that may run in any context (NMI included).
_TRACING_PROG_TYPES = frozenset((2, 5, 7, 17, 24))  # kprobe, tracepoint, perf_event, raw_tp(_w)


def map_btf_field(m: Any, name: str) -> int | None:
    """The offset of a special BTF field (``bpf_spin_lock``, ``bpf_timer``...) in
    the map's value, or None (no BTF, or no such field)."""
    fields = getattr(m, "btf_fields", None)
    return fields.get(name) if fields else None


def check_map_prog_compatibility(v: Verifier, m: Any) -> None:
    """check_map_prog_compatibility: maps a program of this type may not use."""
    pt = int(v.prog_type)
    has_lock = (map_btf_field(m, "bpf_spin_lock") is not None
                or map_btf_field(m, "bpf_res_spin_lock") is not None)
    if has_lock:
        if pt == 1:
            v.fail(errno.EINVAL, "socket filter progs cannot use bpf_spin_lock yet")
        if pt in _TRACING_PROG_TYPES:
            v.fail(errno.EINVAL, "tracing progs cannot use bpf_spin_lock yet")
    if map_btf_field(m, "bpf_timer") is not None and pt in _TRACING_PROG_TYPES:
        v.fail(errno.EINVAL, "tracing progs cannot use bpf_timer yet")


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def _direct_value_error(m: Any, off: int) -> int:
    """array_map_direct_value_addr's errno for ``off`` (0 when fine)."""
    if m.max_entries != 1:
        return ENOTSUPP
    if off >= m.value_size:
        return errno.EINVAL
    return 0


def check_cfg(v: Verifier) -> None:
    """Depth-first search over the instruction graph (the kernel's check_cfg)."""
    insns = v.insns
    n = len(insns)
    state = [0] * n
    stack = [0]
    state[0] = DISCOVERED
    prune = v.prune_points
    bpf_capable = v.bpf_capable

    def push(t: int, w: int, e: int) -> int:
        if e == FALLTHROUGH and state[t] >= (DISCOVERED | FALLTHROUGH):
            return DONE_EXPLORING
        if e == BRANCH and state[t] >= (DISCOVERED | BRANCH):
            return DONE_EXPLORING
        if w < 0 or w >= n:
            v.fail(errno.EINVAL, f"jump out of range from insn {t} to {w}")
        if e == BRANCH:
            prune.add(w)
        if state[w] == 0:
            state[t] = DISCOVERED | e
            state[w] = DISCOVERED
            stack.append(w)
            return KEEP_EXPLORING
        if (state[w] & 0xF0) == DISCOVERED:
            if bpf_capable:
                return DONE_EXPLORING
            v.fail(errno.EINVAL, f"back-edge from insn {t} to {w}")
        state[t] = DISCOVERED | e
        return DONE_EXPLORING

    def visit(t: int) -> int:
        insn = insns[t]
        code = insn.code
        if pseudo_func(insn):
            return visit_call(t, True)
        cls = code & 0x07
        if cls not in (BPF_JMP, BPF_JMP32):
            return push(t, t + (2 if code == 0x18 else 1), FALLTHROUGH)
        op = code & 0xF0
        if op == BPF_EXIT:
            return DONE_EXPLORING
        if op == BPF_CALL:
            return visit_call(t, insn.src == BPF_PSEUDO_CALL)
        if op == BPF_JA:
            off = insn.off if cls == BPF_JMP else insn.imm
            ret = push(t, t + off + 1, FALLTHROUGH)
            if ret:
                return ret
            prune.add(t + off + 1)
            return ret
        prune.add(t)
        ret = push(t, t + 1, FALLTHROUGH)
        if ret:
            return ret
        return push(t, t + insn.off + 1, BRANCH)

    def visit_call(t: int, visit_callee: bool) -> int:
        size = 2 if insns[t].code == 0x18 else 1
        ret = push(t, t + size, FALLTHROUGH)
        if ret:
            return ret
        prune.add(t + size)
        if visit_callee:
            prune.add(t)
            ret = push(t, t + insns[t].imm + 1, BRANCH)
        return ret

    while stack:
        t = stack[-1]
        if visit(t) == DONE_EXPLORING:
            state[t] = EXPLORED
            stack.pop()
    i = 0
    while i < n:
        if state[i] != EXPLORED:
            v.fail(errno.EINVAL, f"unreachable insn {i}")
        if insns[i].code == 0x18:
            if i + 1 < n and state[i + 1] != 0:
                v.fail(errno.EINVAL, f"jump into the middle of ldimm64 insn {i}")
            i += 2
        else:
            i += 1


def compute_scc(insns: list[Insn]) -> list[int]:
    """compute_scc: the strongly connected component of every instruction (0 for
    none), numbered from 1 in the order Tarjan's algorithm completes them, over
    all instructions in index order; only loops count (two or more instructions,
    or one jumping to itself)."""
    from .liveness import insn_successors

    n = len(insns)
    pre = [0] * n
    low = [0] * n
    on_stack = [False] * n
    scc = [0] * n
    stack: list[int] = []
    counter = 0
    next_scc = 1
    for root in range(n):
        if pre[root]:
            continue
        # (vertex, its successors, the next successor to look at): recursion as data
        dfs: list[tuple[int, tuple[int, ...], int]] = []
        counter += 1
        pre[root] = low[root] = counter
        stack.append(root)
        on_stack[root] = True
        dfs.append((root, tuple(s for s in insn_successors(insns, root) if s < n), 0))
        while dfs:
            w, succ, k = dfs[-1]
            if k < len(succ):
                dfs[-1] = (w, succ, k + 1)
                t = succ[k]
                if not pre[t]:
                    counter += 1
                    pre[t] = low[t] = counter
                    stack.append(t)
                    on_stack[t] = True
                    dfs.append((t, tuple(s for s in insn_successors(insns, t) if s < n), 0))
                elif on_stack[t]:
                    low[w] = min(low[w], pre[t])
                continue
            dfs.pop()
            if dfs:
                parent = dfs[-1][0]
                low[parent] = min(low[parent], low[w])
            if low[w] != pre[w]:
                continue
            loop = stack[-1] != w or w in succ
            while True:
                t = stack.pop()
                on_stack[t] = False
                if loop:
                    scc[t] = next_scc
                if t == w:
                    break
            if loop:
                next_scc += 1
    return scc


def print_live_regs(v: Verifier, live_before: list[int]) -> None:
    """compute_live_registers' level-2 table: per instruction, its loop (SCC), the
    registers r0-r9 live before it, and the instruction."""
    from ..isa.disasm import format_insn

    insns = v.insns
    scc = compute_scc(insns)
    v.verbose("Live regs before insn:\n")
    i = 0
    while i < len(insns):
        regs = "".join(str(r) if live_before[i] >> r & 1 else "." for r in range(10))
        loop = f"{scc[i]:3d} " if scc[i] else "    "
        text = format_insn(insns, i, **v.disasm_opts())
        v.verbose(f"{loop}{i:3d}: {regs} ({insns[i].code:02x}) {text}\n")
        i += 2 if is_ldimm64(insns[i]) else 1
