"""Helper process for bench/run.py: read one file with one tool, print a JSON summary.

Runs in its own process so that wall time and peak RSS are those of the tool alone.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path


def _peak_rss_mib() -> tuple[float, float]:
    """(this process's peak, its largest child's peak) in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 1024, children / 1024


def dhcpfoctl_cold(path: str, processes: int) -> dict[str, object]:
    from dhcpfoctl.leases import read_leases
    from dhcpfoctl.model import BindingState

    started = time.perf_counter()
    db = read_leases(path, processes=processes)
    elapsed = time.perf_counter() - started
    counts = Counter(BindingState(value).keyword for value in db.leases.state if value)
    return {
        "seconds": elapsed,
        "addresses": len(db.leases),
        "records": db.stats.records,
        "states": dict(counts),
        "warnings": len(db.stats.warnings),
    }


def dhcpfoctl_incremental(path: str, addresses: int) -> dict[str, object]:
    """Cold read, append 1% more records, re-read incrementally; the file is restored."""
    sys.path.insert(0, str(Path(__file__).parent))
    from generate import append_records

    from dhcpfoctl.leases import read_leases_incremental

    size = Path(path).stat().st_size
    started = time.perf_counter()
    db, state = read_leases_incremental(path, None, None)
    cold = time.perf_counter() - started
    records = db.stats.records
    try:
        append_records(Path(path), addresses, max(1, records // 100))
        started = time.perf_counter()
        db, state = read_leases_incremental(path, state, db)
        again = time.perf_counter() - started
    finally:
        with open(path, "r+b") as restore:
            restore.truncate(size)
    return {
        "cold_seconds": cold,
        "incremental_seconds": again,
        "appended_records": db.stats.records - records,
    }


def isc(path: str) -> dict[str, object]:
    from isc_dhcp_leases import IscDhcpLeases

    started = time.perf_counter()
    leases = IscDhcpLeases(path).get(include_backups=True)
    elapsed = time.perf_counter() - started
    # The library keeps every record; apply last-wins per address as a user must.
    current = {lease.ip: lease.binding_state for lease in leases}
    return {
        "seconds": elapsed,
        "records": len(leases),
        "addresses": len(current),
        "states": dict(Counter(current.values())),
    }


def main() -> None:
    tool, path, *rest = sys.argv[1:]
    if tool == "dhcpfoctl":
        result = dhcpfoctl_cold(path, int(rest[0]))
    elif tool == "incremental":
        result = dhcpfoctl_incremental(path, int(rest[0]))
    else:
        result = isc(path)
    result["peak_rss_mib_self"], result["peak_rss_mib_child"] = _peak_rss_mib()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
