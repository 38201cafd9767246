"""The committed examples load and run (examples/*.o, rebuilt by examples/build.sh)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pyebpf import Runtime, load_object

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("verifier", ["structural", "kernel"])
def test_xdp_counter(verifier: str) -> None:
    rt = Runtime()
    with load_object(EXAMPLES / "xdp_counter.o", runtime=rt, verifier=verifier) as obj:
        prog = obj.programs["xdp_prog"]
        udp = bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17]) + bytes(18)
        arp = bytes(12) + b"\x08\x06" + bytes(28)
        for pkt in (udp, udp, arp):
            assert prog.test_run(data=pkt).retval == 2  # XDP_PASS
        counts = {int.from_bytes(k, "little"): struct.unpack("<Q", v)[0]
                  for k, v in obj.maps["counts"].items()}
        assert counts == {17: 2, 256: 1}
        per_cpu = obj.maps["bytes"][0]  # one 8-byte slot per CPU
        assert struct.unpack_from("<Q", per_cpu, 0)[0] == 2 * len(udp) + len(arp)
