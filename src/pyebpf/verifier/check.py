"""The walk: ``do_check`` and the per-instruction checks of kernel/bpf/verifier.c.

:class:`Verifier` follows ``bpf_check``: the passes of :mod:`.cfg`, then a
depth-first exploration of paths from the first instruction. At a
conditional jump whose outcome isn't known the other branch's state is
pushed on a stack; a path ends at the top-level ``exit`` (or when pruned: its
state is equivalent to one already explored at a prune point), and the next
pending state is popped. Every check reports in the kernel's words through
:meth:`Verifier.fail`; the log at level 1 and 2 is written as the kernel
writes it (instruction lines, state annotations, the level-1 reset of
finished paths, the statistics line).

What this first version covers, and what it leaves to the next: see
docs/verifier.md.
"""

from __future__ import annotations

import errno
from typing import Any

from ..isa.disasm import format_insn
from ..isa.insn import Insn
from ..uapi import BPF_COMPLEXITY_LIMIT_INSNS, AttachType, MapType, ProgType
from . import scalar as S
from .alu import check_alu_op
from .branch import check_cond_jmp_op
from .calls import (
    check_func_call,
    check_helper_call,
    check_kfunc_call,
    check_max_stack_depth,
    check_tail_call_map_ptrs,
    process_exit,
)
from .cfg import (
    add_subprogs,
    check_cfg,
    check_subprogs,
    print_live_regs,
    resolve_pseudo_ldimm64,
)
from .global_func import do_check_subprogs, global_entry_state
from .iters import iter_active_depths_differ, iter_loop_converged
from .kfuncs import add_kfunc_calls, fixup_kfunc_calls, kfunc_call_name
from .liveness import StackLiveness, clean_verifier_state, compute_live_registers
from .log import VerifierAbort
from .mem import (
    check_atomic,
    check_ctx_conversions,
    check_ld_abs,
    check_load,
    check_store_imm,
    check_store_reg,
)
from .precision import mark_all_scalars_imprecise, propagate_precision
from .prune import states_equal
from .state import (
    BPF_REG_FP,
    DST_OP,
    MAX_BPF_REG,
    SRC_OP,
    FuncState,
    RegState,
    VerifierState,
)
from .types import (
    RegType,
)

__all__ = ["Verifier"]

BPF_COMPLEXITY_LIMIT_JMP_SEQ = 8192
#: mark_verifier_state_scratched: every register and every stack slot (``-(spi + 1)``).
ALL_SCRATCHED = frozenset(range(MAX_BPF_REG)) | frozenset(-(spi + 1) for spi in range(64))


class _Pending:
    """A pushed branch: its state and where it starts (push_stack's elem)."""

    __slots__ = ("insn_idx", "log_pos", "prev_insn_idx", "state")

    def __init__(self, state: VerifierState, insn_idx: int, prev: int, log_pos: int) -> None:
        self.state = state
        self.insn_idx = insn_idx
        self.prev_insn_idx = prev
        self.log_pos = log_pos


class Verifier:
    """One run of the verifier over one program (the kernel's bpf_verifier_env)."""

    def __init__(self, runtime: Any, prog: Any, log: Any) -> None:
        from ..progs import prog_type_ops

        self.runtime = runtime
        self.prog = prog
        self.log = log
        self.insns: list[Insn] = list(prog.orig_insns)
        self.prog_type = ProgType(prog.prog_type)
        self.ops = prog_type_ops(prog.prog_type)
        priv = runtime.privileged
        self.bpf_capable = priv
        self.allow_ptr_leaks = priv
        self.bypass_spec_v1 = priv
        self.allow_uninit_stack = priv
        flags = prog.prog_flags
        self.strict_alignment = bool(flags & 1) and not flags & 2
        self.subprog_starts: list[int] = [0, len(self.insns)]
        self.kfunc_calls: list[int] = []
        #: Instructions where a checkpoint is always stored (iterator _next() calls).
        self.force_checkpoints: set[int] = set()
        #: Reached kfunc calls with imm 0 (refused after the walk, as fixup_kfunc_call does).
        self.reached_null_kfunc_calls: set[int] = set()
        self.ld_imm64: dict[int, tuple[Any, int, int]] = {}
        self.used_maps: list[Any] = []
        self.prune_points: set[int] = set()
        self.explored: dict[int, list[VerifierState]] = {}
        #: Explored states per insn by their states_maybe_looping key, for loop detection.
        self.looping: dict[int, dict[tuple[object, ...], list[VerifierState]]] = {}
        #: Explored states whose every path is done: what pruning compares with.
        self.finished: dict[int, list[VerifierState]] = {}
        self.jmps_processed = 0
        self.prev_jmps_processed = 0
        self.prev_insn_processed = 0
        self.insn_processed = 0
        self.total_states = 0
        #: States in the explored lists now (evicted ones leave): peak_states' measure.
        self.explored_states_size = 0
        self.peak_states = 0
        self.max_states_per_insn = 0
        self.id_gen = 0
        self.aux_ptr_type: dict[int, int] = {}
        #: insn_aux_data.map_ptr_state: call site -> (map, unpriv, poisoned).
        self.map_ptr_state: dict[int, tuple[Any, bool, bool]] = {}
        #: insn_aux_data.alu_state/alu_limit of pointer arithmetic (Spectre v1 masking).
        self.alu_sanitation: dict[int, tuple[int, int]] = {}
        #: insn_aux_data.nospec: speculative paths stop here (a barrier is emitted).
        self.nospec: set[int] = set()
        #: env->explore_alu_limits: a variable pointer offset was masked, so
        #: pruning compares scalars exactly (other paths may need other masks).
        self.explore_alu_limits = False
        self.stack: list[_Pending] = []
        self.cur: VerifierState = VerifierState()
        self.insn_idx = 0
        self.prev_insn_idx = -1
        self.scratched: set[int] = set()
        #: A subprogram just returned: the next instruction's log starts with the state.
        self.returned_to_caller = False
        self.prev_log_pos = 0
        self.prev_insn_print_pos = 0
        self.subprog_stack_depth: dict[int, int] = {}
        #: insn_aux_data.live_regs_before: registers possibly read from each insn on.
        self.live_regs_before: list[int] = []
        self.liveness = StackLiveness(self)
        #: Global subprograms a path called (verified on their own after the main
        #: program) and their prototypes' argument kinds (btf_prepare_func_args).
        self.global_called: set[int] = set()
        self.global_args: dict[int, list[Any]] = {}

    # -- reporting ---------------------------------------------------------------
    def verbose(self, text: str) -> None:
        self.log.write(text)

    def fail(self, err: int, message: str) -> None:
        self.log.write(message + "\n")
        raise VerifierAbort(err, message)

    def use_map(self, m: Any) -> None:
        if m not in self.used_maps:
            # __add_used_map / bpf_cgroup_storage_assign: one storage map per type.
            if m.map_type in (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE) and any(
                    u.map_type is m.map_type for u in self.used_maps):
                self.fail(errno.EBUSY, "only one cgroup storage of each type is allowed")
            self.used_maps.append(m)

    def new_id(self) -> int:
        self.id_gen += 1
        return self.id_gen

    # -- bpf_check ---------------------------------------------------------------------
    def run(self) -> None:
        # Every outcome past this point ends with the statistics line, the early
        # rejections too (bpf_check's skip_full_check).
        try:
            add_subprogs(self)
            add_kfunc_calls(self)
            check_subprogs(self)
            resolve_pseudo_ldimm64(self)
            check_cfg(self)
            self.live_regs_before = compute_live_registers(self)
            if self.log.level & 2:
                print_live_regs(self, self.live_regs_before)
            self.check_attach_btf_id()
            self.do_check_main()
            do_check_subprogs(self)
            check_max_stack_depth(self)
            check_ctx_conversions(self)
            fixup_kfunc_calls(self)
            check_tail_call_map_ptrs(self)
        finally:
            self.print_stats()

    def check_attach_btf_id(self) -> None:
        """The sleepable rules of check_attach_btf_id (the BTF attach part needs vmlinux BTF)."""
        sleepable = bool(self.prog.prog_flags & 16)
        if self.prog_type == ProgType.SYSCALL:
            if not sleepable:
                self.fail(errno.EINVAL, "Syscall programs can only be sleepable")
            return
        if sleepable and not _can_be_sleepable(self.prog_type, self.prog.expected_attach_type):
            self.fail(errno.EINVAL, "Only fentry/fexit/fmod_ret, lsm, iter, uprobe, and "
                      "struct_ops programs can be sleepable")
        if self.prog_type in (ProgType.TRACING, ProgType.LSM):
            from ..progs.tracing_btf import check_tracing_btf_id

            check_tracing_btf_id(self)  # the kernel function / tracepoint / iterator target
        if self.prog_type in (ProgType.STRUCT_OPS, ProgType.EXT):
            from .btf_attach import check_attach_btf_id

            check_attach_btf_id(self)  # the member / target function; EXT's type

    def print_stats(self) -> None:
        if self.log.level & 4:
            depths = "+".join(str(self.subprog_stack_depth.get(i, 0))
                              for i in range(len(self.subprog_starts) - 1))
            self.verbose(f"verification time 0 usec\nstack depth {depths}\n")
        self.verbose(f"processed {self.insn_processed} insns (limit "
                     f"{BPF_COMPLEXITY_LIMIT_INSNS}) max_states_per_insn "
                     f"{self.max_states_per_insn} total_states {self.total_states} "
                     f"peak_states {self.peak_states} mark_read 0\n")

    def init_state(self) -> VerifierState:
        st = VerifierState()
        frame = FuncState(0, -1, 0)
        frame.regs[1].set_ptr(RegType.PTR_TO_CTX)
        fp = frame.regs[BPF_REG_FP]
        fp.set_ptr(RegType.PTR_TO_STACK)
        fp.frameno = 0
        if self.prog.prog_type == ProgType.EXT:
            from .global_func import init_arg_regs

            init_arg_regs(self, frame, 0)  # r1-r5 from the function's BTF prototype
        st.frames = [frame]
        st.branches = 1
        return st

    def do_check_main(self) -> None:
        self.do_check_common(0)

    def do_check_common(self, subprog: int) -> None:
        """One walk: the main program, or a global function on its own."""
        if subprog:
            self.explored.clear()  # free_states: each walk prunes against its own states
            self.looping.clear()
            self.finished.clear()  # (explored_states_size counts on: peak_states is the kernel's)
            self.cur = global_entry_state(self, subprog)
        else:
            self.cur = self.init_state()
        self.insn_idx = self.subprog_starts[subprog]
        self.prev_insn_idx = -1
        self.mark_verifier_state_scratched()  # the log opens with the entry state
        self.do_check()
        if not self.log.level & 2:  # a passing walk keeps no log at level 1
            self.log.reset(0)

    # -- the loop ------------------------------------------------------------------------
    def do_check(self) -> None:
        insns = self.insns
        n = len(insns)
        do_print_state = False
        level = self.log.level
        liveness = self.liveness
        while True:
            idx = self.insn_idx
            if idx >= n or idx < 0:
                self.fail(errno.EFAULT, f"invalid insn idx {idx} insn_cnt {n}")
            insn = insns[idx]
            self.insn_processed += 1
            if self.insn_processed > BPF_COMPLEXITY_LIMIT_INSNS:
                self.fail(errno.E2BIG, f"BPF program is too large. Processed "
                          f"{self.insn_processed} insn")
            self.cur.insn_idx = idx
            if idx in self.prune_points and self.is_state_visited(idx):
                if level:
                    if do_print_state:
                        self.verbose(f"\nfrom {self.prev_insn_idx} to {idx}"
                                     f"{_spec(self.cur)}: safe\n")
                    else:
                        self.verbose(f"{idx}: safe\n")
                if self.finish_path():
                    return
                do_print_state = True
                continue
            if level & 2 and do_print_state:
                self.verbose(f"\nfrom {self.prev_insn_idx} to {idx}{_spec(self.cur)}:")
                self.verbose(self.cur.format(all_precise=not self.bpf_capable) + "\n")
                do_print_state = False
            if level:
                if self.scratched:
                    self.print_insn_state()
                self.prev_log_pos = self.log.end_pos
                text = f"{idx}: ({insn.code:02x}) {format_insn(insns, idx, **self.disasm_opts())}\n"
                self.verbose(text)
                self.prev_insn_print_pos = self.log.end_pos - self.prev_log_pos
                self.prev_log_pos = self.log.end_pos
            self.prev_insn_idx = idx
            speculative = self.cur.speculative
            if speculative and idx in self.nospec:
                # A speculative path stops where a barrier would be (nospec).
                if self.finish_path():
                    return
                do_print_state = True
                continue
            # Only stores, atomics and calls write the stack; other instructions'
            # (empty) write marks could never change a must_write set.
            writes = insn.code & 0x06 == 0x02 or insn.code == 0x85
            if writes:
                liveness.reset_write_marks(idx)
            # The history entry (precision backtracking); checks may add flags.
            cur_st = self.cur
            cur_st.hist = (cur_st.hist, idx, cur_st.curframe, 0, ())
            try:
                ended = self.do_insn(insn, idx)
            except VerifierAbort as abort:
                if not (speculative and abort.errno in _NOSPEC_RECOVERABLE):
                    raise
                # error_recoverable_with_nospec: under speculation this insn gets
                # a barrier instead; the path ends, the program isn't refused.
                self.nospec.add(idx)
                self.alu_sanitation.pop(idx, None)
                ended = True
            if writes:
                liveness.commit_write_marks()
            if ended:
                if self.finish_path():
                    return
                do_print_state = True
            elif self.returned_to_caller:  # prepare_func_exit: "from <exit> to <call+1>"
                self.returned_to_caller = False
                do_print_state = True

    def disasm_opts(self) -> dict[str, Any]:
        return {"allow_ptr_leaks": self.allow_ptr_leaks, "helper_name": kfunc_call_name}

    def print_insn_state(self, idx: int | None = None) -> None:
        """print_insn_state: annotate the last insn line with what changed."""
        if self.prev_log_pos and self.prev_log_pos == self.log.end_pos:
            self.log.reset(self.prev_log_pos - 1)
            pad = _vlog_alignment(self.prev_insn_print_pos)
            self.verbose(" " * pad + ";")
        else:
            self.verbose(f"{self.insn_idx if idx is None else idx}:")
        self.verbose(self.cur.format(self.scratched, print_all=False,
                                     all_precise=not self.bpf_capable) + "\n")
        self.scratched.clear()

    def set_hist(self, flags: int = 0, linked: tuple[Any, ...] = ()) -> None:
        """Note on the current instruction's history entry a stack spill/fill
        (``flags``) or the registers a conditional jump linked (``linked``)."""
        h = self.cur.hist
        if h is not None:
            self.cur.hist = (h[0], h[1], h[2], flags or h[3], linked or h[4])

    def scratch(self, regno: int) -> None:
        self.scratched.add(regno)

    def finish_path(self) -> bool:
        """process_bpf_exit: end this path; pop the next one. True when none is left."""
        self.update_branch_counts(self.cur)
        self.liveness.update(self.cur)
        if not self.stack:
            return True
        elem = self.stack.pop()
        if not self.log.level & 2:
            self.log.reset(elem.log_pos)
        self.cur = elem.state
        self.insn_idx = elem.insn_idx
        self.prev_insn_idx = elem.prev_insn_idx
        self.mark_verifier_state_scratched()  # the popped path's log starts with its state
        return False

    def mark_verifier_state_scratched(self) -> None:
        """Every register and stack slot counts as changed: the next instruction's
        log line is preceded by the whole state."""
        self.scratched = set(ALL_SCRATCHED)

    def update_branch_counts(self, st: VerifierState | None) -> None:
        """A path ended: its states' pending branches drop; finished explored
        states become usable for pruning."""
        while st is not None:
            st.branches -= 1
            if st.branches:
                break
            if st.fp is not None:
                self.finished.setdefault(st.insn_idx, []).append(st)
            st = st.parent

    def push_stack(self, insn_idx: int, prev_insn_idx: int) -> VerifierState:
        other = self.cur.copy()
        other.branches = 1
        if other.parent is not None:
            other.parent.branches += 1
        self.stack.append(_Pending(other, insn_idx, prev_insn_idx, self.log.end_pos))
        if len(self.stack) > BPF_COMPLEXITY_LIMIT_JMP_SEQ:
            self.fail(errno.E2BIG, f"The sequence of {len(self.stack)} jumps is too complex.")
        return other

    # -- pruning ---------------------------------------------------------------------------
    def is_state_visited(self, idx: int) -> bool:
        """is_state_visited: prune if an explored, finished state here covers this one.

        States still on the current path (``branches`` > 0) are only compared
        exactly, to detect a loop that can't make progress; they are found by
        fingerprint. New states are stored with the kernel's heuristic: only
        after 2 jumps and 8 instructions since the last one (in a loop: 20 jumps
        or 100 instructions), which keeps long bounded loops cheap.
        """
        cur = self.cur
        force = idx in self.force_checkpoints
        add_new_state = force or (self.jmps_processed - self.prev_jmps_processed >= 2
                                  and self.insn_processed - self.prev_insn_processed >= 8)
        self.clean_live_states(idx, cur)
        lst = self.explored.setdefault(idx, [])
        looping = self.looping.setdefault(idx, {})
        fp = None
        if looping:
            fp = cur.loop_key()
            for old in looping.get(fp, ()):
                if old.branches and old.may_goto_depth == cur.may_goto_depth \
                        and states_equal(self, old, cur, exact=True) \
                        and not iter_active_depths_differ(old, cur):
                    self.verbose(f"infinite loop detected at insn {idx}\n")
                    self.verbose("cur state:" + cur.format(all_precise=not self.bpf_capable) + "\n")
                    self.verbose("old state:" + old.format(all_precise=not self.bpf_capable) + "\n")
                    raise VerifierAbort(errno.EINVAL, f"infinite loop detected at insn {idx}")
            # In a loop (the last state stored here is still on this path) add
            # states sparingly: iterations differ and rarely help pruning.
            if not force and lst and lst[-1].branches and (
                    self.jmps_processed - self.prev_jmps_processed < 20
                    and self.insn_processed - self.prev_insn_processed < 100):
                add_new_state = False
        if force and iter_loop_converged(self, idx):
            return True
        # Newest first, as the kernel's list: a finished state that covers this
        # one prunes it; every state passed over counts a miss, and one that
        # keeps missing (3 times its hits + 3; 64 at a loop checkpoint still on
        # the path) is dropped: it is unlikely to ever prune.
        pruned = False
        evict: list[VerifierState] = []
        for old in reversed(lst):
            if not old.branches and states_equal(self, old, cur, exact=False):
                old.hit_cnt += 1
                # What old needed precise, the pruned path's checkpoints need too.
                propagate_precision(self, old, cur)
                pruned = True
                break
            if add_new_state:
                old.miss_cnt += 1
            n = 64 if force and old.branches else 3
            if old.miss_cnt > old.hit_cnt * n + n:
                evict.append(old)
        for old in evict:
            self.evict_state(idx, old)
        if pruned:
            return True
        # states_cnt: the states compared here before this one joins them.
        self.max_states_per_insn = max(self.max_states_per_insn, len(lst))
        if not add_new_state:
            return False
        if self.bpf_capable:
            mark_all_scalars_imprecise(cur)  # precision is earned again below here
        new = cur.copy()
        new.branches = cur.branches
        new.parent = cur.parent
        new.insn_idx = idx
        new.fp = fp if fp is not None else cur.loop_key()
        cur.parent = new
        cur.first_insn_idx = idx
        cur.hist = None
        lst.append(new)
        looping.setdefault(new.fp, []).append(new)
        self.prev_jmps_processed = self.jmps_processed
        self.prev_insn_processed = self.insn_processed
        self.total_states += 1
        self.explored_states_size += 1
        self.peak_states = max(self.peak_states, self.explored_states_size)
        return False

    def evict_state(self, idx: int, old: VerifierState) -> None:
        """Drop an explored state from the lists at ``idx`` (it stays a parent)."""
        self.explored[idx].remove(old)
        fin = self.finished.get(idx)
        if fin is not None and old in fin:
            fin.remove(old)
        same = self.looping.get(idx, {}).get(old.fp)
        if same is not None and old in same:
            same.remove(old)
        old.fp = None  # not an explored state any more: never joins `finished`
        self.explored_states_size -= 1

    def clean_live_states(self, idx: int, cur: VerifierState) -> None:
        """clean_live_states: finished states here (same call chain) have complete
        liveness marks: forget what no path from them reads."""
        for st in self.finished.get(idx, ()):
            if st.cleaned or st.curframe != cur.curframe:
                continue
            if any(a.callsite != b.callsite for a, b in zip(st.frames, cur.frames,
                                                            strict=False)):
                continue
            clean_verifier_state(self, st)

    # -- registers ---------------------------------------------------------------------------
    def check_reg_arg(self, regno: int, t: int) -> RegState:
        if regno >= MAX_BPF_REG:
            self.fail(errno.EINVAL, f"R{regno} is invalid")
        reg = self.cur.regs[regno]
        self.scratch(regno)
        if t == SRC_OP:
            if reg.type == RegType.NOT_INIT:
                self.fail(errno.EACCES, f"R{regno} !read_ok")
            return reg
        if regno == BPF_REG_FP:
            self.fail(errno.EACCES, "frame pointer is read only")
        if t == DST_OP:
            reg.mark_unknown()
        return reg

    def is_pointer_value(self, regno: int) -> bool:
        """is_pointer_value: a pointer that unprivileged programs must not leak."""
        if self.allow_ptr_leaks:
            return False
        return self.cur.regs[regno].is_pointer

    # -- one instruction ---------------------------------------------------------------------
    def do_insn(self, insn: Insn, idx: int) -> bool:
        """Check and apply one instruction; True when the path ends here."""
        cls = insn.code & 0x07
        if cls in (0x04, 0x07):
            check_alu_op(self, insn)
            self.insn_idx += 1
        elif cls == 0x01:
            check_load(self, insn, idx)
            self.insn_idx += 1
        elif cls == 0x03:
            if insn.code & 0xE0 == 0xC0:
                check_atomic(self, insn, idx)
            elif insn.code & 0xE0 == 0x60 and not insn.imm:
                check_store_reg(self, insn, idx)
            else:
                self.fail(errno.EINVAL, "BPF_STX uses reserved fields")
            self.insn_idx += 1
        elif cls == 0x02:
            if insn.code & 0xE0 != 0x60 or insn.src:
                self.fail(errno.EINVAL, "BPF_ST uses reserved fields")
            check_store_imm(self, insn, idx)
            self.insn_idx += 1
        elif cls in (0x05, 0x06):
            return self.do_jmp(insn, idx, cls)
        elif cls == 0x00:
            mode = insn.code & 0xE0
            if mode in (0x20, 0x40):
                check_ld_abs(self, insn)
                self.insn_idx += 1
            elif mode == 0x00:
                self.check_ld_imm(insn, idx)
                self.insn_idx += 2
            else:
                self.fail(errno.EINVAL, "invalid BPF_LD mode")
        else:  # pragma: no cover - all eight classes are handled
            self.fail(errno.EINVAL, f"unknown insn class {cls}")
        return False

    def do_jmp(self, insn: Insn, idx: int, cls: int) -> bool:
        op = insn.code & 0xF0
        self.jmps_processed += 1
        if op == 0x80:  # BPF_CALL
            if (insn.code & 0x08 or (insn.src != 2 and insn.off != 0)
                    or insn.src not in (0, 1, 2) or insn.dst != 0 or cls == 0x06):
                self.fail(errno.EINVAL, "BPF_CALL uses reserved fields")
            if self.cur.active_locks and insn.src != 2 and not (
                    insn.src == 0 and insn.imm == 94):
                self.fail(errno.EINVAL, "function calls are not allowed while holding a lock")
            if insn.src == 1:
                check_func_call(self, insn, idx)
            elif insn.src == 2:
                check_kfunc_call(self, insn, idx)
            else:
                check_helper_call(self, insn, idx)
                self.insn_idx += 1
            return False
        if op == 0x00:  # BPF_JA
            if (insn.code & 0x08 or insn.src or insn.dst or (cls == 0x05 and insn.imm)
                    or (cls == 0x06 and insn.off)):
                self.fail(errno.EINVAL, "BPF_JA uses reserved fields")
            self.insn_idx += (insn.off if cls == 0x05 else insn.imm) + 1
            return False
        if op == 0x90:  # BPF_EXIT
            if insn.code & 0x08 or insn.imm or insn.src or insn.dst or cls == 0x06:
                self.fail(errno.EINVAL, "BPF_EXIT uses reserved fields")
            return process_exit(self, idx)
        check_cond_jmp_op(self, insn, idx)
        return False

    def check_ld_imm(self, insn: Insn, idx: int) -> None:
        """check_ld_imm: lddw of a constant, a map, a map value or a subprogram."""
        if insn.off != 0:
            self.fail(errno.EINVAL, "BPF_LD_IMM64 uses reserved fields")
        dst = self.check_reg_arg(insn.dst, DST_OP)
        nxt = self.insns[idx + 1]
        src = insn.src
        if src == 0:
            dst.mark_known((insn.imm & 0xFFFF_FFFF) | ((nxt.imm & 0xFFFF_FFFF) << 32))
            return
        dst.mark_not_init()
        if src == 4:  # BPF_PSEUDO_FUNC
            dst.type = RegType.PTR_TO_FUNC
            dst.scalar = S.mark_reg_known(0)
            dst.extra = idx + insn.imm + 1
            return
        m, off, kind = self.ld_imm64[idx]
        if kind in (1, 5):
            dst.set_ptr(RegType.CONST_PTR_TO_MAP)
        else:
            # No MEM_RDONLY even for a frozen BPF_F_RDONLY_PROG map: the kernel
            # refuses writes by the map's flags (check_map_access_type), and the
            # register stays a plain map_value (helpers take it at any offset).
            dst.set_ptr(RegType.PTR_TO_MAP_VALUE, off)
        dst.map = m

    # -- helpers for submodules ----------------------------------------------------------------
    def mark_reg_unknown(self, regno: int) -> None:
        self.cur.regs[regno].mark_unknown()

    def func(self, reg: RegState) -> FuncState:
        """The frame a PTR_TO_STACK register points into."""
        return self.cur.frames[reg.frameno]

    def iter_regs(self, st: VerifierState | None = None) -> Any:
        """Every register and spilled register of every frame (bpf_for_each_reg_in_vstate)."""
        st = st or self.cur
        for frame in st.frames:
            yield from frame.regs
            for slot in frame.stack:
                if slot.is_spill and slot.spilled is not None:
                    yield slot.spilled


def _can_be_sleepable(prog_type: int, expected_attach_type: int) -> bool:
    """can_be_sleepable: fentry/fexit/fmod_ret/iter tracing, LSM, uprobes, struct_ops."""
    if prog_type == ProgType.TRACING:
        return expected_attach_type in (AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT,
                                        AttachType.MODIFY_RETURN, AttachType.TRACE_ITER)
    return prog_type in (ProgType.LSM, ProgType.KPROBE, ProgType.STRUCT_OPS)


#: Errors a speculative path survives (error_recoverable_with_nospec).
_NOSPEC_RECOVERABLE = (errno.EPERM, errno.EACCES, errno.EINVAL)


def _spec(st: VerifierState) -> str:
    return " (speculative execution)" if st.speculative else ""


def push_speculative(v: Verifier, next_idx: int, cur_idx: int, insn: Insn | None) -> None:
    """sanitize_speculative_path: an unprivileged program is also checked along
    the path the CPU may mispredict into; the compared registers are unknown there."""
    branch = v.push_stack(next_idx, cur_idx)
    branch.speculative = True
    if insn is not None:
        regs = branch.regs
        regs[insn.dst].mark_unknown()
        if insn.code & 0x08:
            regs[insn.src].mark_unknown()


def _vlog_alignment(pos: int) -> int:
    """vlog_alignment: pad the state annotation to a tab stop (40, then 8s)."""
    target = max(pos + 4, 40)
    target = (target + 7) // 8 * 8
    return target - pos - 1
