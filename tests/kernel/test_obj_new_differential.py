"""Allocated objects and kptrs on pyebpf and on the real kernel: the same clang object
(tests/data/kfuncs/obj_new.c) loaded with its BTF on both sides (the kernel's
maps and programs through KernelCollection, which hands the kernel the BTF as
libbpf would), compared for verdict, errno and the verifier's reason, and for
sequences of runs (allocate, stash in a map, take out, drop) the return
values and what user space reads back from the maps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pyebpf import Runtime, load_object
from pyebpf.attr import ProgLoadAttr
from pyebpf.btf import Btf, BtfKind
from pyebpf.elf.loader import load_spec
from pyebpf.errors import BpfError, VerifierError
from pyebpf.isa.insn import Insn as I
from pyebpf.isa.insn import encode
from pyebpf.kfuncs.obj import BTF_ID_OBJ_DROP, BTF_ID_OBJ_NEW, BTF_ID_REFCOUNT_ACQUIRE
from pyebpf.syscall import bpf
from pyebpf.testing.kernel_prog import KernelCollection, kernel_prog_load, kernel_test_run
from pyebpf.uapi import Cmd, ProgType

from .harness import STEPS

pytestmark = pytest.mark.kernel

OBJ = Path(__file__).parents[1] / "data" / "kfuncs" / "obj_new.o"
SPEC = load_spec(OBJ)
ZERO_KEY = bytes(4)


def _kernel_kfunc_id(name: str) -> int | None:
    try:
        with open("/sys/kernel/btf/vmlinux", "rb") as f:
            t = Btf.parse(f.read()).find(name, BtfKind.FUNC)
    except OSError:
        return None
    return t.id if t is not None else None


@pytest.fixture(autouse=True, scope="module")
def _same_kfunc_ids() -> None:
    """The object's kfunc calls carry the reference kernel's BTF ids."""
    if _kernel_kfunc_id("bpf_obj_new_impl") != BTF_ID_OBJ_NEW:
        pytest.skip("this kernel's vmlinux numbers bpf_obj_new_impl differently")


def _ours(names: list[str]) -> tuple[str | None, int, str]:
    rt = Runtime()
    rt.verifier = "kernel"
    try:
        load_object(SPEC, runtime=rt, programs=names).close()
    except VerifierError as e:
        return "reject", e.errno, e.log
    return "accept", 0, ""


def _kernels(names: list[str]) -> tuple[str | None, int, str]:
    try:
        KernelCollection.from_spec(SPEC, programs=names).close()
    except VerifierError as e:
        return "reject", e.errno, e.strerror or ""
    except BpfError as e:
        return "error", e.errno, str(e)
    return "accept", 0, ""


def _reason(log: str) -> str:
    lines = [ln for ln in log.strip().splitlines()
             if ln.strip() and not ln.startswith(("processed ", "verification time"))]
    return lines[-1].strip() if lines else ""


@pytest.mark.parametrize("name", sorted(SPEC.programs))
def test_verdict_errno_and_reason_agree(name: str) -> None:
    kv, kerr, kreason = _kernels([name])
    ov, oerr, olog = _ours([name])
    STEPS[0] += 1
    assert (ov, oerr) == (kv, kerr), (olog[-500:], kreason)
    if kv == "reject":
        assert _reason(olog) == kreason


@contextmanager
def _both(names: list[str]) -> Iterator[tuple[object, KernelCollection]]:
    rt = Runtime()
    rt.verifier = "kernel"
    with load_object(SPEC, runtime=rt, programs=names) as ours, \
            KernelCollection.from_spec(SPEC, programs=names) as theirs:
        yield ours, theirs


def _step(ours: object, theirs: KernelCollection, name: str) -> None:
    mine = ours.programs[name].test_run(data=bytes(64)).retval  # type: ignore[attr-defined]
    kernel = kernel_test_run(theirs.programs[name], bytes(64)).retval
    STEPS[0] += 1
    assert mine == kernel, name


@pytest.mark.parametrize("sequence", [
    ["stash_in_array", "peek_array", "stash_in_array", "unstash_from_array",
     "unstash_from_array", "peek_array"],
    ["stash_in_hash", "stash_in_hash", "unstash_from_hash", "unstash_from_hash"],
    ["new_write_drop", "refcounted", "percpu_stash", "percpu_stash", "box_in_box"],
])
def test_run_sequences_return_the_same(sequence: list[str]) -> None:
    with _both(sorted(set(sequence))) as (ours, theirs):
        for name in sequence:
            _step(ours, theirs, name)


def test_user_update_releases_the_stashed_object_on_both() -> None:
    names = ["stash_in_array", "unstash_from_array"]
    with _both(names) as (ours, theirs):
        _step(ours, theirs, "stash_in_array")
        mine = ours.maps["stash_array"].lookup(ZERO_KEY)  # type: ignore[attr-defined]
        STEPS[0] += 1
        assert mine == theirs.maps["stash_array"].lookup(ZERO_KEY)  # the kptr reads as 0
        value = b"\x11" * 24  # user bytes over the kptr fields are not taken
        ours.maps["stash_array"].update(ZERO_KEY, value)  # type: ignore[attr-defined]
        theirs.maps["stash_array"].update(ZERO_KEY, value)
        mine = ours.maps["stash_array"].lookup(ZERO_KEY)  # type: ignore[attr-defined]
        kernel = theirs.maps["stash_array"].lookup(ZERO_KEY)
        STEPS[0] += 1
        assert mine == kernel
        _step(ours, theirs, "unstash_from_array")


# -- hand-written programs without BTF -------------------------------------------------------
EXIT0 = [I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)]


def _kcall(btf_id: int) -> I:
    return I(0x85, 0, 2, 0, btf_id)


RAW = {
    "drop_ctx": [I(0xB7, 2, 0, 0, 0), _kcall(BTF_ID_OBJ_DROP), *EXIT0],
    "drop_scalar": [I(0xB7, 1, 0, 0, 5), I(0xB7, 2, 0, 0, 0), _kcall(BTF_ID_OBJ_DROP), *EXIT0],
    "refcount_acquire_ctx": [I(0xB7, 2, 0, 0, 0), _kcall(BTF_ID_REFCOUNT_ACQUIRE), *EXIT0],
    "obj_new_variable_type": [I(0x61, 1, 1, 0, 0), I(0xB7, 2, 0, 0, 0),
                              _kcall(BTF_ID_OBJ_NEW), *EXIT0],
    "obj_new_without_btf": [I(0xB7, 1, 0, 0, 1), I(0xB7, 2, 0, 0, 0), _kcall(BTF_ID_OBJ_NEW),
                            *EXIT0],
}


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.SOCKET_FILTER])
@pytest.mark.parametrize("name", sorted(RAW))
def test_raw_program_verdicts_agree(name: str, prog_type: ProgType) -> None:
    insns = encode(RAW[name])
    try:
        kernel_fd = kernel_prog_load(prog_type, insns)
    except VerifierError as e:
        kernel = ("reject", e.errno, e.strerror)
    else:
        import os

        os.close(kernel_fd)
        kernel = ("accept", 0, "")
    rt = Runtime()
    rt.verifier = "kernel"
    try:
        bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=prog_type, insns=insns, license="GPL"),
            runtime=rt)
    except VerifierError as e:
        ours = ("reject", e.errno, e.strerror)
    else:
        ours = ("accept", 0, "")
    STEPS[0] += 1
    assert ours == kernel
