"""Verifier speed: processed instructions per second on the shared bench programs.

    python benchmarks/verifier.py [--json] [DIR]

Loads each ``*_small`` program of ``../shared/bench`` (or DIR) as an XDP program
with pyebpf's verifier and prints the verdict, the processed instruction count
and the rate. The kernel processes 1.7-3.4 M insns/s on these (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pyebpf import Cmd, ProgLoadAttr, ProgType, Runtime, bpf
from pyebpf.conformance import load_data_file, program_bytes
from pyebpf.errors import BpfError

DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"


def measure(path: Path) -> dict[str, Any]:
    rt = Runtime()
    rt.verifier = "kernel"
    attr = ProgLoadAttr(prog_type=ProgType.XDP, insns=program_bytes(load_data_file(path)),
                        license="GPL")
    t0 = time.perf_counter()
    try:
        fd = bpf(Cmd.PROG_LOAD, attr, runtime=rt)
        verdict = "accept"
        processed = rt.fds[fd].obj.verified_insns
    except BpfError as err:
        verdict = f"reject: {err.strerror}"
        processed = 0
    seconds = time.perf_counter() - t0
    return {"program": path.stem, "verdict": verdict, "processed_insns": processed,
            "seconds": round(seconds, 3),
            "kinsns_per_s": round(processed / seconds / 1e3, 1) if processed else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    files = sorted(args.dir.glob("*_small.data"))
    if not files:
        print(f"no *_small.data programs in {args.dir}", file=sys.stderr)
        return 1
    for path in files:
        row = measure(path)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{row['program']:<16} {row['verdict']:<40.40} {row['processed_insns']:>8} insns "
                  f"{row['seconds']:7.2f} s {row['kinsns_per_s']:8.1f} K insns/s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
