"""bpf_obj_new / bpf_obj_drop / bpf_refcount_acquire / bpf_percpu_obj_new
(tests/data/kfuncs/obj_new.c, clang-19; the kernel agrees:
tests/kernel/test_obj_new_differential.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pyebpf import Runtime
from pyebpf.btf import Btf
from pyebpf.btf_build import BtfBuilder
from pyebpf.collection import load_object
from pyebpf.errors import BpfFault, VerifierError
from pyebpf.isa.insn import Insn as I
from pyebpf.kfuncs import kfunc_by_name
from pyebpf.kfuncs.obj import (
    BTF_ID_OBJ_DROP,
    BTF_ID_OBJ_NEW,
    BTF_ID_REFCOUNT_ACQUIRE,
    local_record,
    obj_drop,
    obj_new,
    objects,
    percpu_copy,
    refcount_acquire,
)
from pyebpf.uapi import ProgType

from ._load import load

OBJ = Path(__file__).parents[1] / "data" / "kfuncs" / "obj_new.o"


def _rt() -> Runtime:
    rt = Runtime()
    rt.verifier = "kernel"
    return rt


def _run(name: str, rt: Runtime | None = None) -> int:
    rt = rt or _rt()
    with load_object(OBJ, runtime=rt, programs=[name]) as o:
        return int(o.programs[name].test_run(data=bytes(64)).retval)


def _alloc_regions(rt: Runtime) -> list[object]:
    return [r for r in rt.memory.regions() if r.kind == "alloc_obj"]


def _reject(name: str) -> VerifierError:
    with pytest.raises(VerifierError) as exc:
        load_object(OBJ, runtime=_rt(), programs=[name])
    return exc.value


# -- accepted programs, run ---------------------------------------------------------------------
def test_new_object_is_written_read_and_dropped() -> None:
    rt = _rt()
    assert _run("new_write_drop", rt) == 42
    assert not objects(rt) and not _alloc_regions(rt)  # freed, and unmapped after the run


def test_refcount_acquire_keeps_the_object_until_the_last_drop() -> None:
    rt = _rt()
    assert _run("refcounted", rt) == 5
    assert not objects(rt)


def test_dropping_an_object_drops_the_one_in_its_kptr() -> None:
    rt = _rt()
    assert _run("box_in_box", rt) == 4
    assert not objects(rt)


def test_percpu_object_counts_in_this_cpus_copy_and_stays_in_the_map() -> None:
    rt = _rt()
    with load_object(OBJ, runtime=rt, programs=["percpu_stash"]) as o:
        prog = o.programs["percpu_stash"]
        assert prog.test_run(data=bytes(64)).retval == 7
        (obj,) = objects(rt).values()
        assert obj.percpu and len(obj.copies) == rt.nr_cpus
        # A second run swaps a fresh object in and drops the old one.
        assert prog.test_run(data=bytes(64)).retval == 7
        (obj2,) = objects(rt).values()
        assert obj2 is not obj
    assert not objects(rt)  # the map held it; freeing the map dropped it


# -- rejected programs ------------------------------------------------------------------
def test_leaked_object_is_an_unreleased_reference() -> None:
    err = _reject("leak")
    assert err.errno == errno.EINVAL
    assert "BPF_EXIT instruction in main prog would lead to reference leak" in str(err)
    assert "Unreleased reference id=" in err.log


def test_object_use_after_drop_is_rejected() -> None:
    err = _reject("use_after_drop")
    assert err.errno == errno.EACCES and "invalid mem access 'scalar'" in str(err)


def test_drop_of_a_maybe_null_object_is_rejected() -> None:
    err = _reject("drop_maybe_null")
    assert err.errno == errno.EACCES
    assert "Possibly NULL pointer passed to trusted arg0" in str(err)


@pytest.mark.parametrize(("name", "err", "message"), [
    ("read_past_object", errno.EACCES, "access beyond struct obj_node at off 16 size 8"),
    ("touch_refcount", errno.EACCES, "direct access to bpf_refcount is disallowed"),
    ("acquire_uncounted", errno.EFAULT, "verifier bug: Couldn't find btf_record"),
    ("percpu_direct", errno.EACCES, "R0 is ptr_obj_pcpu access percpu memory: off=0"),
    ("drop_twice", errno.EINVAL, "R1 must be referenced or trusted"),
    ("drop_percpu_with_obj_drop", errno.EINVAL, "arg#0 expected for bpf_percpu_obj_drop_impl()"),
    ("percpu_with_pointer", errno.EINVAL,
     "bpf_percpu_obj_new type ID argument must be of a struct of scalars"),
    ("new_of_a_long", errno.EINVAL,
     "bpf_obj_new/bpf_percpu_obj_new type ID argument must be of a struct"),
])
def test_object_misuse_is_rejected_with_the_kernels_reason(name: str, err: int,
                                                           message: str) -> None:
    e = _reject(name)
    assert e.errno == err and message in str(e)


# -- the verifier on raw instructions -------------------------------------------------------------
def _obj_new(type_id_insn: I) -> list[I]:
    return [type_id_insn, I(0xB7, 2, 0, 0, 0), I(0x85, 0, 2, 0, BTF_ID_OBJ_NEW)]


def test_obj_new_without_program_btf_is_refused() -> None:
    r = load([*_obj_new(I(0xB7, 1, 0, 0, 1)), I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)],
             prog_type=ProgType.SCHED_CLS)
    assert not r.accepted and r.errno == errno.EINVAL
    assert r.error_line == "bpf_obj_new/bpf_percpu_obj_new requires prog BTF"


def test_obj_new_type_id_must_be_a_known_constant() -> None:
    insns = [I(0x61, 1, 1, 0, 0), *_obj_new(I(0xBF, 1, 1, 0, 0)), I(0xB7, 0, 0, 0, 0),
             I(0x95, 0, 0, 0, 0)]
    r = load(insns, prog_type=ProgType.SCHED_CLS)
    assert not r.accepted and r.error_line == "R1 must be a known constant"


def test_obj_drop_of_an_untrusted_pointer_is_refused() -> None:
    insns = [I(0xB7, 2, 0, 0, 0), I(0x85, 0, 2, 0, BTF_ID_OBJ_DROP), I(0xB7, 0, 0, 0, 0),
             I(0x95, 0, 0, 0, 0)]
    r = load(insns, prog_type=ProgType.SCHED_CLS)  # r1 is the ctx
    assert not r.accepted and r.errno == errno.EINVAL
    assert r.error_line == "R1 must be referenced or trusted"


def test_refcount_acquire_needs_an_allocated_object() -> None:
    insns = [I(0xB7, 2, 0, 0, 0), I(0x85, 0, 2, 0, BTF_ID_REFCOUNT_ACQUIRE),
             I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)]
    r = load(insns, prog_type=ProgType.SCHED_CLS)
    assert not r.accepted and r.error_line == "arg#0 is neither owning or non-owning ref"


def test_obj_new_is_not_offered_to_socket_filters() -> None:
    r = load([*_obj_new(I(0xB7, 1, 0, 0, 1)), I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)])
    assert not r.accepted and r.errno == errno.EACCES
    assert r.error_line == "calling kernel function bpf_obj_new_impl is not allowed"


def test_kfunc_table_has_the_reference_kernels_ids() -> None:
    assert kfunc_by_name("bpf_obj_new_impl").btf_id == 65214  # type: ignore[union-attr]
    assert kfunc_by_name("bpf_refcount_acquire_impl").btf_id == 65496  # type: ignore[union-attr]


# -- the runtime model ------------------------------------------------------------------
def _local_btf() -> tuple[Btf, int, int]:
    b = BtfBuilder()
    long_ = b.int_("long", 8, signed=True)
    u32 = b.int_("unsigned int", 4)
    plain = b.struct("plain", [("a", long_), ("b", long_)])
    refc = b.struct("bpf_refcount", [("__opaque", b.array(u32, 1))])
    counted = b.struct("counted", [("ref", refc), ("val", long_)])
    return Btf.parse(b.encode()), plain, counted


def test_freed_object_faults_instead_of_reaching_other_memory() -> None:
    rt = Runtime()
    btf, plain, _ = _local_btf()
    addr = obj_new(rt, btf, plain)
    rt.memory.store(addr + 8, 8, 99)
    assert rt.memory.load(addr + 8, 8) == 99
    obj_drop(rt, addr)
    with pytest.raises(BpfFault):
        rt.memory.load(addr + 8, 8)
    with pytest.raises(BpfFault):
        obj_drop(rt, addr)  # a double free is a fault, not a crash


def test_refcounted_object_starts_at_one_and_frees_at_zero() -> None:
    rt = Runtime()
    btf, _, counted = _local_btf()
    assert local_record(btf, counted).refcount_off == 0
    addr = obj_new(rt, btf, counted)
    assert rt.memory.load(addr, 4) == 1
    assert refcount_acquire(rt, addr) == addr
    assert rt.memory.load(addr, 4) == 2
    obj_drop(rt, addr)
    assert addr in objects(rt)
    obj_drop(rt, addr)
    assert addr not in objects(rt)


def test_percpu_object_has_one_copy_per_cpu_and_no_bytes_of_its_own() -> None:
    rt = Runtime()
    btf, plain, _ = _local_btf()
    addr = obj_new(rt, btf, plain, percpu=True)
    copies = {percpu_copy(rt, addr, cpu) for cpu in range(rt.nr_cpus)}
    assert len(copies) == rt.nr_cpus and None not in copies
    assert percpu_copy(rt, addr, rt.nr_cpus) is None
    with pytest.raises(BpfFault):
        rt.memory.load(addr, 8)  # the handle itself is not memory
    obj_drop(rt, addr)
    assert not objects(rt)
