"""Benchmark ``balance``: the computation's cost on top of reading the lease file.

    python bench/bench_balance.py [--size 1m] [--repeat 3]

Uses bench/run.py's generated failover journal (created once in bench/data/). Reads the
config and the journal, then times ``compute_balance`` over the result; both best of
``--repeat`` runs in this process. The target: balance adds at most 10 % to the read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ensure_journal, label, parse_size

from dhcpfoctl.balance import compute_balance
from dhcpfoctl.conf import read_config
from dhcpfoctl.leases import read_leases

TARGET = 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1m", help="addresses: 10k, 100k, 1m")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = parse_size(args.size)
    leases, conf = ensure_journal(size)
    config = read_config(conf)

    read_times = []
    db = None
    for _ in range(args.repeat):
        db = None  # let the previous table go before reading again
        started = time.perf_counter()
        db = read_leases(leases)
        read_times.append(time.perf_counter() - started)
    assert db is not None
    as_of = max(db.leases.starts)

    balance_times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        report = compute_balance(config, db, as_of)
        balance_times.append(time.perf_counter() - started)

    counted = sum(pool.counts.total for pool in report.pools)
    if counted != size:
        sys.exit(f"bench: the ranges hold {counted} addresses, expected {size}")
    read_s, balance_s = min(read_times), min(balance_times)
    ratio = balance_s / read_s
    print(f"journal-{label(size)}: {len(db.leases)} addresses, {len(report.pools)} pools")
    print(f"read     {read_s:8.2f} s  (best of {args.repeat})")
    print(f"balance  {balance_s:8.2f} s  (best of {args.repeat})")
    verdict = "OK" if ratio <= TARGET else "OVER TARGET"
    print(f"balance adds {ratio:.1%} to the read (target <= {TARGET:.0%}): {verdict}")
    sys.exit(0 if ratio <= TARGET else 1)


if __name__ == "__main__":
    main()
