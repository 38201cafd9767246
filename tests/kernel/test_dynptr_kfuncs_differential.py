"""The dynptr kfunc programs on pyebpf and on the real kernel.

Every program of tests/data/kfuncs/dynptr_kfuncs.o is loaded on both: the
same verdict, errno and error line; an accepted one is test-run on both with
the same packets (the 64 bytes 0..63, and random ones of other lengths),
giving the same return value and the same packet out. The raw programs of
tests/kfuncs/_dynptr.py (what C can't write: variable-offset writes over a
dynptr, overlapping dynptrs, an unaligned one) are loaded on both too.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfuncs._dynptr import OBJ, RAW, on_kernel, on_pyebpf, raw_on_both
from kfuncs._kprog import kernel_kfunc_id
from pyebpf.elf import load_spec
from pyebpf.uapi import ProgType

pytestmark = pytest.mark.kernel

PROGRAMS = sorted(load_spec(OBJ).programs)


@pytest.fixture(autouse=True)
def _needs_dynptr_kfuncs() -> None:
    if kernel_kfunc_id("bpf_dynptr_slice") is None:
        pytest.skip("no vmlinux BTF with the dynptr kfuncs on this kernel")


@pytest.mark.parametrize("name", PROGRAMS)
def test_same_verdict_retval_and_packet_as_the_kernel(name: str) -> None:
    ours, theirs = on_pyebpf(name), on_kernel(name)
    assert ours == theirs


#: Accepted programs whose results depend on the packet's length and bytes.
_LENGTH_SENSITIVE = ["skb_slice_read", "skb_slice_rdwr_write", "skb_slice_no_buffer",
                     "skb_read_write_helpers", "skb_adjust_clone", "skb_copy_memset",
                     "xdp_slice_clone_adjust", "xdp_read_write", "xdp_copy_memset",
                     "xdp_reinit_unreferenced", "skb_shrunk_under_dynptr",
                     "xdp_shrunk_under_dynptr", "rb_clone_adjust_copy", "dynptr_types_merge",
                     "slices_in_a_loop", "cgroup_skb_is_rdonly"]


@pytest.mark.parametrize("name", _LENGTH_SENSITIVE)
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packet=st.binary(min_size=14, max_size=96))
def test_same_results_on_other_packets(name: str, packet: bytes) -> None:
    assert on_pyebpf(name, packet) == on_kernel(name, packet)


@pytest.mark.parametrize("name", sorted(RAW))
def test_raw_program_same_verdict_as_the_kernel(name: str) -> None:
    ours, theirs = raw_on_both(RAW[name], ProgType.SCHED_CLS)
    assert ours == theirs


#: User ring buffer samples the callbacks see as a const dynptr: 3 bytes is too
#: short for bpf_dynptr_adjust(0, 4) and a 4-byte slice.
SAMPLES = [b"\x05\x06\x07\x08\x09", b"\xc8\x01\x02\x03", b"\x10\x11\x12", bytes(range(40))]


@pytest.mark.parametrize("name", ["user_ringbuf_const_dynptr", "user_ringbuf_rdwr_slice",
                                  "user_ringbuf_write"])
def test_kfuncs_on_a_callbacks_const_dynptr_run_as_on_the_kernel(name: str) -> None:
    from pyebpf import Runtime
    from pyebpf.collection import load_object
    from pyebpf.maps.user_ringbuf import UserRingBufferProducer
    from pyebpf.testing.kernel_prog import KernelCollection, kernel_test_run

    from .test_user_ringbuf_differential import KernelProducer

    kc = KernelCollection.from_spec(load_spec(OBJ), programs=[name])
    try:
        kp = KernelProducer(kc.maps["urb"].fd, 4096)
        for data in SAMPLES:
            pos = kp.reserve(len(data))
            assert pos is not None
            kp.write(pos, data)
            kp.commit(pos, False)
        theirs = kernel_test_run(kc.programs[name], bytes(64)).retval
        kp.close()
    finally:
        kc.close()
    rt = Runtime()
    rt.verifier = "kernel"
    with load_object(load_spec(OBJ), runtime=rt, programs=[name]) as o:
        producer = UserRingBufferProducer(o.maps["urb"])
        for data in SAMPLES:
            producer.push(data)
        ours = o.programs[name].test_run(data=bytes(64)).retval
    assert ours == theirs


@pytest.mark.parametrize("name", ["skb_params_from_packet", "xdp_params_from_packet"])
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.lists(st.integers(0, 72), min_size=6, max_size=6),
       rest=st.binary(min_size=8, max_size=90))
def test_offsets_and_sizes_from_the_packet_give_the_kernels_results(
        name: str, head: list[int], rest: bytes) -> None:
    """adjust/read/memset/copy/write/slice with the packet's first six bytes as
    start, end, offset, memset offset and size, copy offset."""
    packet = bytes(head) + rest
    assert on_pyebpf(name, packet) == on_kernel(name, packet)
