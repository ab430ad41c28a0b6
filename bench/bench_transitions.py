"""Benchmark new-binding counting from a lease file's own journal (``journal_bindings``).

    python bench/bench_transitions.py [--sizes 10k,100k,1m] [--repeat 3]

For each generated journal ``bench/data/journal-SIZE.leases`` (``bench/generate.py``; three
records per address), the median time of :func:`read_lease_journal` (every record's
columns) and of :func:`journal_bindings` (the judging), with the compiled scanner and with
the pure-Python path (``DHCPFOCTL_PURE_PYTHON=1``), each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"


def _one(path: str) -> None:
    from dhcpfoctl.leases.reader import read_lease_journal
    from dhcpfoctl.leases.transitions import journal_bindings

    start = time.perf_counter()
    _, journal = read_lease_journal(path)
    read = time.perf_counter()
    found = journal_bindings(journal)
    judged = time.perf_counter()
    figures = {
        "records": len(journal),
        "bindings": len(found.bindings),
        "read": read - start,
        "judge": judged - read,
    }
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1m")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args.one)
        return
    for size in args.sizes.split(","):
        path = DATA / f"journal-{size}.leases"
        for mode, pure in (("compiled", ""), ("pure", "1")):
            env = {**os.environ, "DHCPFOCTL_PURE_PYTHON": pure}
            runs = [
                json.loads(
                    subprocess.run(
                        [sys.executable, __file__, "--one", str(path)],
                        env=env,
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                for _ in range(args.repeat)
            ]
            read = statistics.median(r["read"] for r in runs)
            judge = statistics.median(r["judge"] for r in runs)
            records = runs[0]["records"]
            print(
                f"{size:>5} {mode:8} {records:>8} records {runs[0]['bindings']:>8} new bindings"
                f"  read {read:6.2f} s  judge {judge:6.2f} s"
                f"  ({(read + judge) / records * 1e6:.2f} µs/record)"
            )


if __name__ == "__main__":
    main()
