"""Interpreter speed on the shared benchmark programs.

    python benchmarks/interp.py [--json] [--small-only] [--baseline] [DIR]

Runs every ``*.data`` program in ``../shared/bench`` (or DIR), both sizes, and
prints per program the instructions executed, the seconds taken and M insns/s,
and whether r0 matched the file's expected result. ``--json`` prints one JSON
object per program instead: ``{"program", "insns", "seconds", "minsns_per_s",
"result_ok"}``. ``--baseline`` also times the plain dict-of-functions
interpreter in ``naive_interp.py`` on the same program and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pyebpf.conformance import load_data_file, program_bytes
from pyebpf.engine import Vm

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE.parent.parent / "shared" / "bench"


def _best_of(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(path: Path, repeat: int, baseline: Any = None) -> dict[str, Any]:
    """Run one program ``repeat`` times (best time kept), and the baseline if given."""
    case = load_data_file(path)
    prog = program_bytes(case)
    vm = Vm(prog)
    results: list[int] = []
    seconds = _best_of(lambda: results.append(vm.run(case.mem or None)), repeat)
    insns = vm.insns_executed
    row: dict[str, Any] = {
        "program": path.stem,
        "insns": insns,
        "seconds": round(seconds, 4),
        "minsns_per_s": round(insns / seconds / 1e6, 2),
        "result_ok": results[-1] == case.result,
    }
    if baseline is not None:
        base_s = _best_of(lambda: baseline.run(prog, case.mem), repeat)
        row["baseline_minsns_per_s"] = round(insns / base_s / 1e6, 2)
        row["speedup"] = round(base_s / seconds, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--json", action="store_true", help="one JSON object per program")
    ap.add_argument("--small-only", action="store_true", help="only the *_small programs")
    ap.add_argument("--baseline", action="store_true", help="also time the naive interpreter")
    ap.add_argument("--repeat", type=int, default=1, help="runs per program (best is kept)")
    args = ap.parse_args(argv)
    files = sorted(args.dir.glob("*.data"))
    if args.small_only:
        files = [f for f in files if f.stem.endswith("_small")]
    if not files:
        print(f"no benchmark programs in {args.dir}", file=sys.stderr)
        return 1
    naive_interp = None
    if args.baseline:
        sys.path.insert(0, str(HERE))
        import naive_interp
    for path in files:
        row = measure(path, args.repeat, naive_interp if args.baseline else None)
        if args.json:
            print(json.dumps(row), flush=True)
            continue
        extra = ""
        if args.baseline:
            extra = f"  baseline {row['baseline_minsns_per_s']:6.2f} M/s  x{row['speedup']:.2f}"
        print(f"{row['program']:<16} {row['insns']:>10,} insns {row['seconds']:8.3f} s "
              f"{row['minsns_per_s']:7.2f} M insns/s  "
              f"{'ok' if row['result_ok'] else 'WRONG RESULT'}{extra}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
