"""Benchmark new-binding counting from a lease file's own journal (``journal_bindings``).

    python bench/bench_transitions.py [--sizes 10k,100k,1m] [--repeat 3]

For each generated journal ``bench/data/journal-SIZE.leases`` (``bench/generate.py``; three
records per address), the median time of :func:`read_lease_journal` (every record's
columns) and of :func:`journal_bindings` (the judging), and of the one pass that
``balance`` makes (``read_leases(window=...)``: the table, and every record judged as it is
read, here with a window that wants every binding), with the compiled scanner and with the
pure-Python path (``DHCPFOCTL_PURE_PYTHON=1``), each in a fresh process.
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
    from dhcpfoctl.leases.reader import read_lease_journal, read_leases
    from dhcpfoctl.leases.transitions import WindowRequest, journal_bindings

    start = time.perf_counter()
    _, journal = read_lease_journal(path)
    read = time.perf_counter()
    found = journal_bindings(journal)
    judged = time.perf_counter()
    del journal
    window = WindowRequest(-1)  # every binding (all begin after 1970)
    read_leases(path, window=window)
    assert window.found is not None and window.found.bindings == found.bindings
    figures = {
        "records": found.records,
        "bindings": len(found.bindings),
        "read": read - start,
        "judge": judged - read,
        "one_pass": time.perf_counter() - judged,
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
            one_pass = statistics.median(r["one_pass"] for r in runs)
            records = runs[0]["records"]
            print(
                f"{size:>5} {mode:8} {records:>8} records {runs[0]['bindings']:>8} new bindings"
                f"  read {read:6.2f} s  judge {judge:6.2f} s"
                f"  ({(read + judge) / records * 1e6:.2f} µs/record)"
                f"  one pass, table included {one_pass:6.2f} s"
            )


if __name__ == "__main__":
    main()
