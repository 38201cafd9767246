"""Map speed: lookups/s and updates/s for hash and array maps.

    python benchmarks/maps.py [--json] [-n N]

Measured three ways: through ``bpf()`` with attr records, through the friendly
``Map`` (the same commands underneath), and from a BPF program (the
interpreter calling ``bpf_map_lookup_elem``/``bpf_map_update_elem`` in a loop).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from pyebpf import (
    Cmd,
    Map,
    MapElemAttr,
    MapType,
    ProgLoadAttr,
    ProgType,
    Runtime,
    TestRunAttr,
    bpf,
)
from pyebpf.isa import Insn


def _rate(n: int, fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def _program(fd: int, n: int, update: bool) -> list[Insn]:
    """for (i = 0; i < n; i++) lookup(&map, &(i % 64)) or update(&map, &key, &val, 0)."""
    body = [
        Insn(0xB7, 6, 0, 0, 0),                 # r6 = 0 (i)
        Insn(0x7A, 10, 0, -16, 0),              # *(u64 *)(r10 - 16) = 0 (value)
        # loop:
        Insn(0xBF, 1, 6), Insn(0x57, 1, 0, 0, 63),  # r1 = i & 63
        Insn(0x63, 10, 1, -4, 0),               # *(u32 *)(r10 - 4) = r1 (key)
        Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4),  # r2 = &key
        Insn(0x18, 1, 1, 0, fd), Insn(0),       # r1 = map
    ]
    if update:
        body += [Insn(0xBF, 3, 10), Insn(0x07, 3, 0, 0, -16), Insn(0xB7, 4, 0, 0, 0),
                 Insn(0x85, 0, 0, 0, 2)]        # bpf_map_update_elem(map, &key, &val, 0)
    else:
        body += [Insn(0x85, 0, 0, 0, 1)]        # bpf_map_lookup_elem(map, &key)
    body += [Insn(0x07, 6, 0, 0, 1)]            # i++
    back = 2 - (len(body) + 1)
    body += [Insn(0xA5, 6, 0, back, n),         # if i < n goto loop
             Insn(0xB7, 0, 0, 0, 0), Insn(0x95)]
    return body


def measure(map_type: MapType, n: int) -> dict[str, Any]:
    rt = Runtime()
    rt.verifier = "structural"  # the program loops n times: measure the engine, not the verifier
    m = Map.create(map_type, key_size=4, value_size=8, max_entries=64, runtime=rt)
    keys = [(i % 64).to_bytes(4, "little") for i in range(n)]
    value = bytes(8)
    row: dict[str, Any] = {"map": map_type.name, "n": n}

    def bpf_update() -> None:
        for k in keys:
            bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=m.fd, key=k, value=value), runtime=rt)

    def bpf_lookup() -> None:
        for k in keys:
            bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=m.fd, key=k), runtime=rt)

    def map_update() -> None:
        for k in keys:
            m[k] = value

    def map_lookup() -> None:
        for k in keys:
            m[k]

    row["bpf_updates_per_s"] = round(_rate(n, bpf_update))
    row["bpf_lookups_per_s"] = round(_rate(n, bpf_lookup))
    row["map_updates_per_s"] = round(_rate(n, map_update))
    row["map_lookups_per_s"] = round(_rate(n, map_lookup))
    for name, update in (("prog_updates_per_s", True), ("prog_lookups_per_s", False)):
        fd = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.XDP,
                                             insns=_program(m.fd, n, update), license="GPL"),
                 runtime=rt)
        row[name] = round(_rate(n, lambda fd=fd: bpf(
            Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd, data_in=bytes(64)), runtime=rt)))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000, help="operations per measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for map_type in (MapType.HASH, MapType.ARRAY):
        row = measure(map_type, args.n)
        if args.json:
            print(json.dumps(row), flush=True)
            continue
        print(f"{row['map']:<6} bpf(): {row['bpf_lookups_per_s']:>9,} lookups/s "
              f"{row['bpf_updates_per_s']:>9,} updates/s | Map: {row['map_lookups_per_s']:>9,} "
              f"lookups/s {row['map_updates_per_s']:>9,} updates/s | program: "
              f"{row['prog_lookups_per_s']:>9,} lookups/s {row['prog_updates_per_s']:>9,} "
              "updates/s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
