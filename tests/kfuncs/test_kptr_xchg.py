"""bpf_kptr_xchg: allocated objects stashed in map ``__kptr`` fields, and the map's
ownership of them (tests/data/kfuncs/obj_new.c; the kernel agrees:
tests/kernel/test_obj_new_differential.py)."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from pyebpf import Runtime
from pyebpf.collection import Collection, load_object
from pyebpf.errors import VerifierError
from pyebpf.helpers import func_proto
from pyebpf.kfuncs.obj import objects
from pyebpf.uapi import FuncId, ProgType

OBJ = Path(__file__).parents[1] / "data" / "kfuncs" / "obj_new.o"
#: A tc test run of 64 bytes: skb->len counts the Ethernet header too.
SKB_LEN = 64
ZERO_KEY = bytes(4)
EMPTY_VALUE = bytes(24)


def _open(*names: str) -> tuple[Runtime, Collection]:
    rt = Runtime()
    rt.verifier = "kernel"
    return rt, load_object(OBJ, runtime=rt, programs=list(names))


def _run(c: Collection, name: str) -> int:
    return int(c.programs[name].test_run(data=bytes(64)).retval)


def test_stash_then_take_out_of_an_array() -> None:
    rt, c = _open("stash_in_array", "unstash_from_array")
    with c:
        assert _run(c, "stash_in_array") == 0
        assert len(objects(rt)) == 1  # owned by the map now
        assert _run(c, "unstash_from_array") == SKB_LEN  # taken out, read, dropped
        assert not objects(rt)
        assert _run(c, "unstash_from_array") == 100  # the field is empty again


def test_second_stash_gets_the_old_object_back_and_drops_it() -> None:
    rt, c = _open("stash_in_array")
    with c:
        assert _run(c, "stash_in_array") == 0
        assert _run(c, "stash_in_array") == 3
        assert len(objects(rt)) == 1


def test_stashed_object_is_read_in_place_through_the_loaded_kptr() -> None:
    _rt, c = _open("stash_in_array", "peek_array")
    with c:
        assert _run(c, "peek_array") == 100
        _run(c, "stash_in_array")
        assert _run(c, "peek_array") == SKB_LEN


def test_user_space_never_sees_or_sets_the_kptr_and_an_update_frees_it() -> None:
    rt, c = _open("stash_in_array", "unstash_from_array")
    with c:
        _run(c, "stash_in_array")
        m = c.maps["stash_array"]
        assert m.lookup(ZERO_KEY) == EMPTY_VALUE  # the object's address doesn't leak out
        (obj,) = objects(rt).values()
        forged = struct.pack("<Q", obj.addr) + bytes(16)
        m.update(ZERO_KEY, forged)  # bpf_obj_free_fields: the stashed object goes
        assert not objects(rt)
        assert m.lookup(ZERO_KEY) == EMPTY_VALUE  # and the forged pointer was not kept
        assert _run(c, "unstash_from_array") == 100


def test_hash_delete_frees_the_stashed_object() -> None:
    rt, c = _open("stash_in_hash", "unstash_from_hash")
    with c:
        assert _run(c, "stash_in_hash") == 0
        assert len(objects(rt)) == 1
        c.maps["stash_hash"].delete(ZERO_KEY)
        assert not objects(rt)


def test_hash_stash_survives_until_taken_out() -> None:
    rt, c = _open("stash_in_hash", "unstash_from_hash")
    with c:
        _run(c, "stash_in_hash")
        assert _run(c, "unstash_from_hash") == SKB_LEN
        assert not objects(rt)


def test_freeing_the_map_frees_what_it_holds() -> None:
    rt, c = _open("stash_in_array")
    with c:
        _run(c, "stash_in_array")
        assert len(objects(rt)) == 1
    assert not objects(rt)
    assert not [r for r in rt.memory.regions() if r.kind == "alloc_obj"]


def test_kernel_objects_kptr_is_taken_out_and_released_with_its_kfunc() -> None:
    _rt, c = _open("take_kernel_object")
    with c:
        assert _run(c, "take_kernel_object") == 100  # nothing can put one there


@pytest.mark.parametrize(("name", "err", "message"), [
    ("release_maybe_null", errno.EACCES, "Possibly NULL pointer passed to trusted arg0"),
    ("leak_kernel_object", errno.EINVAL,
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("store_to_kptr", errno.EACCES, "store to referenced kptr disallowed"),
    ("xchg_unreferenced", errno.EACCES, "off=8 kptr isn't referenced kptr"),
    ("xchg_wrong_type", errno.EACCES,
     "invalid kptr access, R2 type=ptr_obj_counted expected=ptr_obj_node"),
])
def test_kptr_misuse_is_rejected(name: str, err: int, message: str) -> None:
    rt = Runtime()
    rt.verifier = "kernel"
    with pytest.raises(VerifierError) as exc:
        load_object(OBJ, runtime=rt, programs=[name])
    assert exc.value.errno == err and message in str(exc.value)


def test_kptr_helpers_need_cap_bpf() -> None:
    for fid in (FuncId.kptr_xchg, FuncId.this_cpu_ptr, FuncId.per_cpu_ptr):
        assert func_proto(fid, ProgType.SOCKET_FILTER) is not None
        assert func_proto(fid, ProgType.SOCKET_FILTER, cap_bpf=False) is None
