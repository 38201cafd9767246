"""What load_object gives PROG_LOAD and BTF_LOAD from an object's BTF, as libbpf
does: the program's BTF with func_info/line_info, and a BTF the kernel accepts
(tests/data/kfuncs/obj_new.o, whose kfunc externs and maps need both)."""

from __future__ import annotations

import struct
from pathlib import Path

from pyebpf import Runtime
from pyebpf.btf import Btf, BtfKind, FuncLinkage
from pyebpf.collection import (
    FUNC_INFO_REC_SIZE,
    LINE_INFO_REC_SIZE,
    kernel_ready_btf,
    load_object,
    prog_btf_attrs,
)
from pyebpf.elf import load_spec
from pyebpf.runtime import ObjKind

OBJ = Path(__file__).parent / "data" / "kfuncs" / "obj_new.o"


def test_ksym_functions_become_global_and_the_ksyms_section_dummy_ints() -> None:
    spec = load_spec(OBJ)
    assert spec.btf is not None
    btf = Btf.parse(kernel_ready_btf(spec.btf))
    new = btf.find("bpf_obj_new_impl", BtfKind.FUNC)
    assert new is not None and new.linkage == FuncLinkage.GLOBAL
    assert all(p.name for p in btf.type(new.type).params)  # unnamed params get a name
    ksyms = btf.find(".ksyms", BtfKind.DATASEC)
    assert ksyms is not None and ksyms.size == 4 * len(ksyms.secinfos)
    dummy = btf.type(ksyms.secinfos[0].type)
    assert dummy.kind is BtfKind.VAR and dummy.name == "dummy_ksym"
    assert [v.offset for v in ksyms.secinfos] == [4 * i for i in range(len(ksyms.secinfos))]


def test_datasecs_carry_their_section_sizes() -> None:
    spec = load_spec(OBJ)
    assert spec.btf is not None
    maps = Btf.parse(kernel_ready_btf(spec.btf)).find(".maps", BtfKind.DATASEC)
    assert maps is not None and len(maps.secinfos) == 3
    offsets = [v.offset for v in maps.secinfos]
    assert offsets == sorted(set(offsets))  # each map at its symbol's offset, not all at 0
    last = maps.secinfos[-1]
    assert maps.size == last.offset + last.size


def test_prog_btf_attrs_pack_the_programs_func_and_line_info() -> None:
    ps = load_spec(OBJ).programs["new_write_drop"]
    attrs_ = prog_btf_attrs(ps, 7)
    assert attrs_["prog_btf_fd"] == 7
    assert attrs_["func_info_cnt"] == len(ps.func_info)
    assert attrs_["func_info_rec_size"] == FUNC_INFO_REC_SIZE
    assert struct.unpack_from("<II", attrs_["func_info"]) == (0, ps.func_info[0].type_id)
    assert attrs_["line_info_rec_size"] == LINE_INFO_REC_SIZE
    assert len(attrs_["line_info"]) == LINE_INFO_REC_SIZE * len(ps.line_info)
    assert prog_btf_attrs(ps, None) == {}


def test_loaded_program_has_its_btf() -> None:
    rt = Runtime()
    with load_object(OBJ, runtime=rt, programs=["new_write_drop"]) as o:
        prog, _ = rt.get_object(o.programs["new_write_drop"].fd, ObjKind.PROG)
        assert prog.btf is not None  # type: ignore[attr-defined]
        assert prog.btf.find("obj_node", BtfKind.STRUCT) is not None  # type: ignore[attr-defined]
