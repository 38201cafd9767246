"""Loading and running the programs of tests/data/kfuncs/dynptr_kfuncs.o on pyebpf
and on the real kernel: one :class:`Outcome` per program, compared field by field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs

from pyebpf import Runtime
from pyebpf.collection import load_object
from pyebpf.elf import load_spec
from pyebpf.errors import BpfError, VerifierError
from pyebpf.isa.insn import Insn
from pyebpf.kfuncs.dynptr import BTF_ID_FROM_SKB, BTF_ID_SIZE

from ._kprog import kernel_load
from ._load import load
from ._progs import destroy as iter_destroy
from ._progs import new as iter_new

OBJ = Path(__file__).parents[1] / "data" / "kfuncs" / "dynptr_kfuncs.o"
#: Every test run's packet: the bytes 0, 1, 2 ... 63.
PACKET = bytes(range(64))
_STATS = ("processed ", "verification time", "stack depth")


def error_line(log: str) -> str:
    """The verifier's reason: the last line that is not a statistics line."""
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith(_STATS)]
    return lines[-1] if lines else ""


@attrs.frozen
class Outcome:
    accepted: bool
    errno: int = 0
    error: str = ""
    retval: int | None = None
    data_out: bytes | None = None


def on_pyebpf(name: str, packet: bytes = PACKET) -> Outcome:
    """Load ``name`` alone with pyebpf's kernel-like verifier and test-run it once."""
    rt = Runtime()
    rt.verifier = "kernel"
    try:
        with load_object(load_spec(OBJ), runtime=rt, programs=[name]) as o:
            r = o.programs[name].test_run(data=packet)
            return Outcome(True, retval=r.retval, data_out=bytes(r.data_out))
    except VerifierError as e:
        return Outcome(False, e.errno, error_line(e.log))


def on_kernel(name: str, packet: bytes = PACKET) -> Outcome:
    """The same on the running kernel (its kfunc ids looked up by name)."""
    from pyebpf.testing.kernel_prog import KernelCollection, kernel_test_run

    try:
        kc = KernelCollection.from_spec(load_spec(OBJ), programs=[name])
    except VerifierError as e:
        return Outcome(False, e.errno, error_line(e.log))
    except BpfError as e:
        return Outcome(False, e.errno or 0, str(e))
    try:
        r = kernel_test_run(kc.programs[name], packet)
        return Outcome(True, retval=r.retval, data_out=r.data_out)
    finally:
        kc.close()


def raw_on_both(insns: Sequence[Insn], prog_type: int) -> tuple[Outcome, Outcome]:
    """A raw program loaded (not run) by pyebpf and by the kernel."""
    ours = load(insns, prog_type=prog_type)
    theirs = kernel_load(insns, prog_type=prog_type)
    return (Outcome(ours.accepted, ours.errno, error_line(ours.log) if not ours.accepted else ""),
            Outcome(theirs.accepted, theirs.errno,
                    error_line(theirs.log) if not theirs.accepted else ""))


# -- raw programs: what C can't say -------------------------------------------------------------

def _kcall(btf_id: int) -> Insn:
    return Insn(0x85, 0, 2, 0, btf_id)


def _fp(reg: int, off: int) -> list[Insn]:
    return [Insn(0xBF, reg, 10, 0, 0), Insn(0x07, reg, 0, 0, off)]


def from_skb(off: int) -> list[Insn]:
    """bpf_dynptr_from_skb(ctx (kept in r6), 0, fp + off)."""
    return [Insn(0xBF, 1, 6, 0, 0), Insn(0xB7, 2, 0, 0, 0), *_fp(3, off), _kcall(BTF_ID_FROM_SKB)]


def size_of(off: int) -> list[Insn]:
    """r0 = bpf_dynptr_size(fp + off)."""
    return [*_fp(1, off), _kcall(BTF_ID_SIZE)]


_EXIT = [Insn(0x95, 0, 0, 0, 0)]
_CTX = [Insn(0xBF, 6, 1, 0, 0)]

#: name -> instructions of a SCHED_CLS program.
RAW: dict[str, list[Insn]] = {
    # A byte written at fp-16 + (skb->len & 8): either slot of the dynptr may change.
    "var_off_write_destroys": [*_CTX, *from_skb(-16), Insn(0x61, 7, 6, 0, 0),
                               Insn(0x57, 7, 0, 0, 8), *_fp(8, -16), Insn(0x0F, 8, 7, 0, 0),
                               Insn(0x72, 8, 0, 0, 0), *size_of(-16), *_EXIT],
    "second_slot_write_destroys": [*_CTX, *from_skb(-16), Insn(0x7A, 10, 0, -8, 0),
                                   *size_of(-16), *_EXIT],
    # d1 at fp-32, d2 at fp-16; a dynptr made at fp-24 ends both.
    "overlapping_init_destroys_both": [*_CTX, *from_skb(-32), *from_skb(-16), *from_skb(-24),
                                       *size_of(-32), *_EXIT],
    "overlapping_init_keeps_new": [*_CTX, *from_skb(-32), *from_skb(-16), *from_skb(-24),
                                   *size_of(-24), *_EXIT],
    "unaligned_dynptr": [*_CTX, *from_skb(-12), Insn(0xB7, 0, 0, 0, 0), *_EXIT],
    "dynptr_read_into_itself": [*_CTX, *from_skb(-16), *_fp(1, -16), Insn(0xB7, 2, 0, 0, 8),
                                *_fp(3, -16), Insn(0xB7, 4, 0, 0, 0), Insn(0xB7, 5, 0, 0, 0),
                                Insn(0x85, 0, 0, 0, 201), *_EXIT],
    "size_of_stack_scalar": [Insn(0x7A, 10, 0, -16, 0), Insn(0x7A, 10, 0, -8, 0),
                             *size_of(-16), *_EXIT],
    # A numeric iterator at fp-8 overwritten by a dynptr at fp-16, and back.
    "dynptr_over_iter": [*_CTX, *iter_new(), *from_skb(-16), *iter_destroy(), *size_of(-16),
                         *_EXIT],
    "iter_over_dynptr": [*_CTX, *from_skb(-16), *iter_new(), *iter_destroy(),
                         Insn(0xB7, 0, 0, 0, 0), *_EXIT],
    "dynptr_over_spilled_ctx": [*_CTX, Insn(0x7B, 10, 6, -16, 0), *from_skb(-16), *size_of(-16),
                                *_EXIT],
}
