"""Verifier speed: processed instructions per second on the shared bench programs
and on the largest programs of the shared samples.

    python benchmarks/verifier.py [--json] [--samples N] [DIR]

Loads each ``*_small`` program of ``../shared/bench`` (or DIR) as an XDP program
with pyebpf's verifier and prints the verdict, the processed instruction count
and the rate. The kernel processes 1.7-3.4 M insns/s on these (bench/README.md).
Then the N (default 3) samples the kernel needed the most instructions for,
loaded as ``load_object`` loads them (twice: the second load is timed, the
verifier alone, without the ELF loader, maps or BTF), beside the kernel's own
rate from the samples' labels.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyebpf import Cmd, ProgLoadAttr, ProgType, Runtime, bpf
from pyebpf.conformance import load_data_file, program_bytes
from pyebpf.errors import BpfError

DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"
SAMPLES = DEFAULT_DIR.parent / "samples"


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


@contextlib.contextmanager
def _verifier_timed() -> Iterator[list[float]]:
    """Time spent in the verifier itself (not the ELF loader, maps or BTF) while
    the block runs: [seconds], filled on exit."""
    from pyebpf.prog import VERIFIERS

    spent = [0.0]
    original = VERIFIERS["kernel"]

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args)
        finally:
            spent[0] += time.perf_counter() - t0

    VERIFIERS["kernel"] = timed
    try:
        yield spent
    finally:
        VERIFIERS["kernel"] = original


def measure_samples(n: int) -> list[dict[str, Any]]:
    """The ``n`` accepted samples with the most processed instructions on the kernel."""
    from pyebpf import AttachType, load_object

    labels = SAMPLES / "kernel_labels.jsonl"
    if not labels.exists():
        return []
    rows = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
    rows = sorted((r for r in rows if r.get("result") == "accepted" and r.get("processed_insns")
                   and r.get("verification_time_usec")), key=lambda r: -r["processed_insns"])
    out = []
    for r in rows[:n]:
        eat = r.get("expected_attach_type")
        types = {r["name"]: (ProgType[r["prog_type"]], AttachType[eat[4:]] if eat else 0)}
        seconds = 0.0
        for _ in range(2):  # the first load also imports what the program uses first
            rt = Runtime()
            with _verifier_timed() as spent:
                coll = load_object(SAMPLES / r["object"], runtime=rt, programs=[r["name"]],
                                   prog_types=types, maps="used")
            seconds = spent[0]
            processed = rt.fds[coll.programs[r["name"]].fd].obj.verified_insns
            coll.close()
        out.append({"program": f"{r['object']}:{r['name']}", "processed_insns": processed,
                    "seconds": round(seconds, 3),
                    "kinsns_per_s": round(processed / seconds / 1e3, 1),
                    "kernel_processed_insns": r["processed_insns"],
                    "kernel_kinsns_per_s": round(
                        r["processed_insns"] / r["verification_time_usec"] * 1e3, 1)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--samples", type=int, default=3, metavar="N",
                    help="also the N largest shared samples (0: none)")
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
    for row in measure_samples(args.samples):
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{row['program']:<56.56} {row['processed_insns']:>8} insns "
                  f"{row['seconds']:7.2f} s {row['kinsns_per_s']:8.1f} K insns/s "
                  f"(kernel {row['kernel_kinsns_per_s']:.0f} K insns/s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
