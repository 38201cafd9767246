"""bpf_cast_to_kern_ctx / bpf_rdonly_cast on the real kernel and on pyebpf: the same
verdicts, errnos and messages, the same register types in the level-2 log, and
the same test-run results (loads through untrusted pointers included, a NULL one
reading 0). Raw programs embed each side's own BTF ids; the C programs are
relocated (CO-RE) against each side's vmlinux BTF.
"""

from __future__ import annotations

import re

import pytest

from kfuncs._kprog import _vmlinux, kernel_kfunc_id, kernel_load
from kfuncs.test_cast_kfuncs import (
    BLOB,
    CASES,
    ELF_REJECTS,
    ELF_RESULTS,
    OBJ,
    STATE_TYPES,
    Ids,
    elf_data,
    pyebpf_ids,
    run_case,
)
from pyebpf import Runtime
from pyebpf.btf import Btf, BtfKind
from pyebpf.collection import load_object
from pyebpf.elf import load_spec
from pyebpf.errors import BpfError
from pyebpf.kernel_btf import kernel_btf
from pyebpf.testing.kernel_prog import KernelCollection, kernel_test_run
from pyebpf.uapi import ProgType

pytestmark = pytest.mark.kernel

_TEST_RUN_TYPES = (ProgType.SCHED_CLS, ProgType.XDP, ProgType.SOCKET_FILTER)
_REG_TYPE = re.compile(r"\bR\d+=([a-z_][a-z0-9_]*)\(")


def _vmlinux_or_skip() -> Btf:
    btf = _vmlinux()
    if btf is None or kernel_kfunc_id("bpf_rdonly_cast") is None:
        pytest.skip("no vmlinux BTF with bpf_rdonly_cast on this kernel")
    assert btf is not None
    return btf


def kernel_ids() -> Ids:
    btf = _vmlinux_or_skip()
    sk_buff, int_ = btf.find("sk_buff", BtfKind.STRUCT), btf.find("int", BtfKind.INT)
    u64 = btf.find("u64", BtfKind.TYPEDEF)
    assert sk_buff is not None and int_ is not None and u64 is not None
    return Ids(sk_buff.id, int_.id, u64.id)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_verdict_errno_message_and_result(name: str) -> None:
    c = CASES[name]
    kids = kernel_ids()
    mine = run_case(name)
    theirs = kernel_load(c.build(kids), prog_type=c.prog_type, log_level=2,
                         run=c.prog_type in _TEST_RUN_TYPES)
    assert (mine.accepted, mine.errno) == (theirs.accepted, theirs.errno), theirs.log
    if c.error is not None:  # the same line, up to the ids each vmlinux numbers
        assert theirs.error_line == c.error(kids)
        assert mine.error_line == c.error(pyebpf_ids())
    else:
        assert mine.retval == theirs.retval


@pytest.mark.parametrize("name", sorted(STATE_TYPES))
def test_same_register_types_in_the_log(name: str) -> None:
    c = CASES[name]
    theirs = kernel_load(c.build(kernel_ids()), prog_type=c.prog_type, log_level=2)
    mine = run_case(name)
    assert set(_REG_TYPE.findall(mine.log)) == set(_REG_TYPE.findall(theirs.log))


def _kernel_spec() -> object:
    return load_spec(OBJ, target_btf=_vmlinux_or_skip())


@pytest.mark.parametrize("name", sorted(ELF_RESULTS))
def test_c_program_same_result(name: str) -> None:
    with KernelCollection.from_spec(_kernel_spec(), programs=[name]) as kc:  # type: ignore[arg-type]
        kc.maps["blobs"].update(bytes(4), BLOB)
        theirs = kernel_test_run(kc.programs[name], elf_data(name)).retval
    rt = Runtime()
    rt.verifier = "kernel"
    with load_object(load_spec(OBJ, target_btf=kernel_btf()), runtime=rt,
                     programs=[name]) as o:
        o.maps["blobs"].update(bytes(4), BLOB)
        mine = o.programs[name].test_run(data=elf_data(name)).retval
    assert mine == theirs == ELF_RESULTS[name]


def _last_line(err: BpfError) -> str:
    lines = [ln for ln in (getattr(err, "log", "") or "").strip().split("\n")
             if not ln.startswith("processed ")]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("name", sorted(ELF_REJECTS))
def test_c_program_same_rejection(name: str) -> None:
    with pytest.raises(BpfError) as theirs:
        KernelCollection.from_spec(_kernel_spec(), programs=[name])  # type: ignore[arg-type]
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(BpfError) as mine:
        load_object(load_spec(OBJ, target_btf=kernel_btf()), runtime=rt, programs=[name])
    assert mine.value.errno == theirs.value.errno
    assert _last_line(mine.value) == _last_line(theirs.value) == ELF_REJECTS[name]
