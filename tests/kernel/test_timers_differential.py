"""examples/timer_count.o on the kernel and on pyebpf: what fires after the program
arms its timer, and after user space overwrites the element holding it.

The kernel's timers fire in real time (the test sleeps well past the 3 ms the
example's three firings take); pyebpf's when its clock is moved."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from pyebpf import Runtime, load_object
from pyebpf.elf.loader import load_spec
from pyebpf.testing.kernel_prog import KernelCollection, kernel_test_run

pytestmark = pytest.mark.kernel

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "timer_count.o"
KEY = struct.pack("<I", 0)
WAIT_S = 0.05


def _fired(value: bytes) -> int:
    return int(struct.unpack_from("<Q", value, 16)[0])


@pytest.mark.parametrize("overwrite", [False, True], ids=["armed", "element_overwritten"])
def test_timer_firings_match_the_kernel(overwrite: bool) -> None:
    rt = Runtime()
    ours = load_object(EXAMPLE, runtime=rt)
    with KernelCollection.from_spec(load_spec(EXAMPLE)) as theirs:
        steps: list[tuple[int, int]] = []
        for _ in range(2):
            assert ours.programs["arm"].test_run(bytes(64)).retval == \
                kernel_test_run(theirs.programs["arm"], bytes(64)).retval
            if overwrite:
                ours.maps["timers"][0] = bytes(24)
                theirs.maps["timers"].update(KEY, bytes(24))
            rt.advance_clock(int(WAIT_S * 1e9))
            time.sleep(WAIT_S)
            steps.append((_fired(ours.maps["timers"][0]),
                          _fired(theirs.maps["timers"].lookup(KEY))))
        for mine, kernel in steps:
            assert mine == kernel
    ours.close()
