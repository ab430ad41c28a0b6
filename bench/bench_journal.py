"""Benchmark the lab's lease journal: appends with an fsync per commit, and rewrites.

    python bench/bench_journal.py [--dir DIR] [--seconds 3] [--sizes 10000,100000]

* appends: records/s through :meth:`LeaseJournal.commit` for 1, 10 and 100 records per
  commit (the lab server commits once per loop iteration, so a busy server batches);
* rewrites: time of :meth:`LeaseJournal.rewrite` for databases of each size (write, fsync,
  backup link, rename, directory fsync), median of three;
* opens: time of :meth:`LeaseJournal.open` (strict read, then the start rewrite) on the
  bench's generated dhcpd journal of each size (``bench/generate.py``: records with uid,
  host name and variables, superseded ones included), then on its compacted rewrite.

``--dir`` chooses the file system measured (default: a temporary directory; fsync cost is
the disk's). Each append run lasts about ``--seconds``: measured throughput, no target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import write_leases  # noqa: E402
from dhcpfoctl.lab.journal import LeaseJournal  # noqa: E402
from dhcpfoctl.model import (  # noqa: E402
    BindingState,
    HardwareType,
    Lease,
    LeaseDB,
    LeaseExtras,
    LeaseTable,
    int_to_address,
)

_T0 = 1_795_000_000
_BASE = 0x0A00_0000  # 10.0.0.0


def _lease(n: int, now: int) -> Lease:
    """An active lease as the lab writes one after a DHCPACK in a failover pool."""
    return Lease(
        int_to_address(_BASE + n),
        starts=now,
        ends=now + 600,
        tstp=now + 900,
        tsfp=now,
        atsfp=now,
        cltt=now,
        binding_state=BindingState.ACTIVE,
        next_binding_state=BindingState.EXPIRED,
        rewind_binding_state=BindingState.FREE,
        hardware_type=HardwareType.ETHERNET,
        hardware_address=n.to_bytes(6, "big"),
        extras=LeaseExtras(uid=b"\x01" + n.to_bytes(6, "big"), client_hostname=f"host-{n}"),
    )


def bench_appends(directory: Path, batch: int, seconds: float) -> float:
    path = directory / f"append-{batch}.leases"
    journal, _ = LeaseJournal.open(path, now=_T0)
    records = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for n in range(batch):
            journal.record_lease(_lease((records + n) % 65_536, _T0 + records))
        journal.commit()
        records += batch
    elapsed = time.perf_counter() - start
    journal.close()
    return records / elapsed


def bench_rewrite(directory: Path, size: int) -> float:
    path = directory / f"rewrite-{size}.leases"
    db = LeaseDB(leases=LeaseTable.from_leases(_lease(n, _T0) for n in range(size)))
    journal, _ = LeaseJournal.open(path, now=_T0)
    times = []
    for round_ in range(3):
        start = time.perf_counter()
        journal.rewrite(db, _T0 + 3601 * (round_ + 1))
        times.append(time.perf_counter() - start)
    journal.close()
    return statistics.median(times)


def bench_open(directory: Path, size: int) -> tuple[float, float]:
    path = directory / f"open-{size}.leases"
    write_leases(path, size)
    times = []
    for round_ in range(2):
        start = time.perf_counter()
        journal, _ = LeaseJournal.open(path, now=_T0 + round_)
        times.append(time.perf_counter() - start)
        journal.close()
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        directory = Path(name)
        for batch in (1, 10, 100):
            rate = bench_appends(directory, batch, args.seconds)
            print(f"append, {batch:3d} record(s) per commit: {rate:10.0f} records/s")
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"rewrite of {size:7d} leases: {bench_rewrite(directory, size):6.2f} s")
        for size in (int(s) for s in args.sizes.split(",")):
            journal, compact = bench_open(directory, size)
            print(
                f"open of a {size:7d}-address journal: {journal:6.2f} s,"
                f" of its rewrite: {compact:6.2f} s"
            )


if __name__ == "__main__":
    main()
