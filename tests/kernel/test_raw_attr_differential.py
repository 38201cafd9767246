"""Raw ``union bpf_attr`` bytes of random sizes with random tails, on pyebpf
(``bpf(cmd, raw_bytes)``) and on the kernel (``bpf(cmd, buf, size)``): the same
errno (or both succeed).

Each command starts from a record whose fds are open on neither side (EBADF) and
whose pointers are NULL, so that every answer means the same on both sides;
then bytes past the command's last field (CHECK_ATTR: EINVAL), past the
union's end (E2BIG unless zero) and past a page (E2BIG) are made non-zero, and
the size given is anything from a truncated prefix to more than a page.
"""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pyebpf import (
    BpfError,
    Cmd,
    GetIdAttr,
    InfoByFdAttr,
    MapBatchAttr,
    MapCreateAttr,
    MapElemAttr,
    MapFdAttr,
    MapType,
    ObjPinAttr,
    bpf,
)
from pyebpf.attr import ATTR_UNION_SIZE, attr_to_bytes, last_field_end
from pyebpf.testing.kernel import kernel_bpf_raw, kernel_close

from .harness import BAD_FD, Outcome, new_runtime, same_errno

pytestmark = pytest.mark.kernel

#: An id no object has on either side.
BAD_ID = 0x7FFF_FFF0

BASES = {
    Cmd.MAP_CREATE: MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=4,
                                  max_entries=1, inner_map_fd=BAD_FD, btf_fd=BAD_FD,
                                  value_type_btf_obj_fd=BAD_FD, map_token_fd=BAD_FD),
    Cmd.MAP_LOOKUP_ELEM: MapElemAttr(map_fd=BAD_FD),
    Cmd.MAP_UPDATE_ELEM: MapElemAttr(map_fd=BAD_FD),
    Cmd.MAP_DELETE_ELEM: MapElemAttr(map_fd=BAD_FD),
    Cmd.MAP_GET_NEXT_KEY: MapElemAttr(map_fd=BAD_FD),
    Cmd.MAP_LOOKUP_AND_DELETE_ELEM: MapElemAttr(map_fd=BAD_FD),
    Cmd.MAP_FREEZE: MapFdAttr(map_fd=BAD_FD),
    Cmd.OBJ_PIN: ObjPinAttr(pathname=None, bpf_fd=BAD_FD),  # type: ignore[arg-type]
    Cmd.OBJ_GET: ObjPinAttr(pathname=None),  # type: ignore[arg-type]
    Cmd.MAP_GET_NEXT_ID: GetIdAttr(start_id=BAD_ID),  # global ids: other processes have maps
    Cmd.PROG_GET_NEXT_ID: GetIdAttr(start_id=BAD_ID),
    Cmd.MAP_GET_FD_BY_ID: GetIdAttr(start_id=BAD_ID),
    Cmd.PROG_GET_FD_BY_ID: GetIdAttr(start_id=BAD_ID),
    Cmd.LINK_GET_FD_BY_ID: GetIdAttr(start_id=BAD_ID),
    Cmd.BTF_GET_FD_BY_ID: GetIdAttr(start_id=BAD_ID),
    Cmd.OBJ_GET_INFO_BY_FD: InfoByFdAttr(bpf_fd=BAD_FD),
    Cmd.MAP_LOOKUP_BATCH: MapBatchAttr(map_fd=BAD_FD),
    Cmd.MAP_LOOKUP_AND_DELETE_BATCH: MapBatchAttr(map_fd=BAD_FD),
    Cmd.MAP_UPDATE_BATCH: MapBatchAttr(map_fd=BAD_FD),
    Cmd.MAP_DELETE_BATCH: MapBatchAttr(map_fd=BAD_FD),
}
#: The shortest size that keeps every fd and id the command looks at whole: a
#: truncated fd becomes 0, stdin on the kernel's side, and a truncated id may exist.
MIN_SIZE = {Cmd.OBJ_PIN: 12, Cmd.MAP_LOOKUP_BATCH: 40, Cmd.MAP_LOOKUP_AND_DELETE_BATCH: 40,
            Cmd.MAP_UPDATE_BATCH: 40, Cmd.MAP_DELETE_BATCH: 40, Cmd.MAP_CREATE: 0}
#: Command numbers the 6.18 kernel doesn't have.
UNKNOWN_CMDS = [38, 39, 64, 1000, 0xFFFF, 0x7FFF_FFFF]


@st.composite
def raw_attrs(draw: st.DrawFn) -> tuple[int, bytes]:
    cmd = draw(st.sampled_from(list(BASES) * 3 + UNKNOWN_CMDS))
    if cmd in BASES:
        base = attr_to_bytes(BASES[cmd])
        end = last_field_end(Cmd(cmd))
    else:
        base, end = bytes(ATTR_UNION_SIZE), 0
    low = min(MIN_SIZE.get(cmd, 4), end)
    size = draw(st.one_of(
        st.integers(low, ATTR_UNION_SIZE + 40),
        st.sampled_from([max(end, low), ATTR_UNION_SIZE - 1, ATTR_UNION_SIZE, ATTR_UNION_SIZE + 1,
                         4095, 4096, 4097, 8192])), label="size")
    data = bytearray(base[:size].ljust(size, b"\0"))
    if size > end:
        for off, byte in draw(st.lists(st.tuples(st.integers(end, size - 1),
                                                 st.integers(1, 255)), max_size=3),
                              label="non-zero tail bytes"):
            data[off] = byte
    return cmd, bytes(data)


def _pyebpf(rt, cmd: int, data: bytes) -> Outcome:  # type: ignore[no-untyped-def]
    try:
        return Outcome(bpf(cmd, data, runtime=rt))
    except BpfError as e:
        return Outcome(err=e.errno)


@settings(max_examples=600, deadline=None)
@given(case=raw_attrs())
def test_raw_attr_errno_matches_kernel(case: tuple[int, bytes]) -> None:
    cmd, data = case
    rt = new_runtime()
    ret, err = kernel_bpf_raw(cmd, data)
    k = Outcome(ret) if not err else Outcome(err=err)
    py = _pyebpf(rt, cmd, data)
    try:
        name = Cmd(cmd).name if cmd in Cmd._value2member_map_ else str(cmd)
        event(f"{name} -> {k!r}")
        same_errno(py, k, f"bpf({name}, {data.hex()} [{len(data)} bytes])")
    finally:
        if cmd == Cmd.MAP_CREATE and not err:
            kernel_close(ret)
        rt.close_all()
