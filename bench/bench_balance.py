"""Cold read + balance against dhcpd-pools, isc-dhcp-leases and the incremental re-read.

    python bench/bench_balance.py [--sizes 10k,100k,1m] [--repeat 5] [--isc-max 100k]
                                  [--json FILE]

For each size (bench/run.py's generated failover journals, created once in bench/data/),
whole processes side by side in one run, the tools taking turns so that the machine's other
load falls on all of them alike; median wall time of ``--repeat`` runs, peak RSS of each
process from GNU time (``run.timed`` says why not from ``wait4()``):

* ``dhcpd-pools -f j`` (2.29, C): read plus per-range counts;
* ``dhcpfoctl balance --json`` with the compiled scanner, and with the pure-Python reader
  (``DHCPFOCTL_PURE_PYTHON=1``); with the compiled scanner also ``--as-of`` the journal's
  newest record ("+24h busy"), so that the 24-hour rate window holds all of its activity;
* up to ``--isc-max``: isc-dhcp-leases reading the file and dhcpfoctl's reader alone
  (``bench/read_one.py``, same harness);
* the incremental re-read after 1 % more records were appended, against the cold read of the
  same process;
* inside one process, the balance computation against the read (``--in-process``);
* the start-up floor: this interpreter doing nothing (``python -c pass``) and ``dhcpfoctl
  --version``, which bound what any Python command can reach on the smallest file.

The active and touched counts of every dhcpfoctl run must equal dhcpd-pools'. Targets
(issue 12): balance at most 1.0x dhcpd-pools' time and 2x its RSS at every size, the reader
at least 20x faster than isc-dhcp-leases, the re-read at most 5 % of the cold read; and the
balance computation at most 10 % of the read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PYTHON, ensure_journal, label, parse_size, timed

HERE = Path(__file__).resolve().parent
DHCPFOCTL = str(Path(PYTHON).with_name("dhcpfoctl"))
TARGETS = {
    "time_vs_pools": 1.0,
    "rss_vs_pools": 2.0,
    "isc_speedup": 20.0,
    "reread": 0.05,
    "balance_vs_read": 0.10,
}


def pools_counts(out: str) -> tuple[int, int]:
    summary = json.loads(out)["summary"]
    return summary["used"], summary["touched"]


def balance_counts(out: str) -> tuple[int, int]:
    pools = [pool["counts"] for pool in json.loads(out)["pools"]]
    touched = ("free", "expired", "released", "abandoned")
    return sum(p["active"] for p in pools), sum(p[s] for p in pools for s in touched)


def run_size(size: int, repeat: int, isc: bool) -> dict[str, object]:
    leases, conf = ensure_journal(size)
    balance = [DHCPFOCTL, "balance", "-c", str(conf), "-l", str(leases), "--json"]
    read_one = [PYTHON, str(HERE / "read_one.py")]
    # As of now the generated journal's activity lies outside the 24h rate window (its
    # records are dated 2025): also as of its newest record, where every one of its new
    # bindings is judged and counted for the endurance.
    busy = [*balance, "--as-of", f"@{newest_starts(leases)}"]
    commands = {
        "dhcpd_pools": (["dhcpd-pools", "-c", str(conf), "-l", str(leases), "-f", "j"], {}),
        "balance": (balance, {}),
        "balance_window": (busy, {}),
        "balance_pure": (balance, {"DHCPFOCTL_PURE_PYTHON": "1"}),
    }
    if isc:
        commands["read"] = ([*read_one, "dhcpfoctl", str(leases), "1"], {})
        commands["isc"] = ([*read_one, "isc", str(leases)], {})
    runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, (command, env) in commands.items():
            runs[name].append(timed_env(command, env))
    row: dict[str, object] = {"size": label(size), "file_mb": round(leases.stat().st_size / 1e6)}
    for name, results in runs.items():
        row[f"{name}_s"] = statistics.median(seconds for seconds, _, _ in results)
        row[f"{name}_mib"] = max(rss for _, rss, _ in results)
    expected = pools_counts(runs["dhcpd_pools"][0][2])
    row["counts_agree"] = all(
        balance_counts(out) == expected
        for name in ("balance", "balance_window", "balance_pure")
        for _, _, out in runs[name]
    )
    _, _, out = timed([*read_one, "incremental", str(leases), str(size)])
    incremental = json.loads(out)
    row["reread_s"] = incremental["incremental_seconds"]
    row["reread_cold_s"] = incremental["cold_seconds"]
    _, _, out = timed([PYTHON, __file__, "--in-process", label(size)])
    row.update(json.loads(out))
    return row


def in_process(size: int) -> dict[str, float]:
    """What ``balance`` does after start-up, in this process: the table read alone, the whole
    of ``checks.inputs.gather`` (config, table, the journal's new bindings for the endurance
    rate, the balance) and the balance computation alone."""
    import time

    from dhcpfoctl.balance import compute_balance
    from dhcpfoctl.checks.inputs import gather
    from dhcpfoctl.conf import read_config
    from dhcpfoctl.leases import read_leases

    leases, conf = ensure_journal(size)
    config = read_config(conf)
    started = time.perf_counter()
    db = read_leases(leases)
    read_s = time.perf_counter() - started
    as_of = max(db.leases.starts)
    started = time.perf_counter()
    gather(str(conf), str(leases), f"@{as_of}", "24h")
    gather_s = time.perf_counter() - started
    started = time.perf_counter()
    compute_balance(config, db, as_of)
    return {
        "in_process_read_s": read_s,
        "in_process_gather_s": gather_s,
        "in_process_balance_s": time.perf_counter() - started,
    }


def start_up(repeat: int) -> dict[str, float]:
    """Median wall time and peak RSS of the interpreter alone and of ``dhcpfoctl --version``."""
    row: dict[str, float] = {}
    for name, command in (
        ("python", [PYTHON, "-c", "pass"]),
        ("version", [DHCPFOCTL, "--version"]),
    ):
        runs = [timed(command) for _ in range(max(repeat, 5))]
        row[f"{name}_s"] = statistics.median(seconds for seconds, _, _ in runs)
        row[f"{name}_mib"] = max(rss for _, rss, _ in runs)
    return row


def install_line() -> str:
    """Where the measured ``dhcpfoctl`` comes from: an editable install pays for its import
    finder at every start (about 10 ms here), a regular one does not."""
    import dhcpfoctl

    site = Path(dhcpfoctl.__file__).resolve().parent.parent
    editable = any(Path(PYTHON).parent.parent.glob("lib/python*/site-packages/__editable__*"))
    return f"dhcpfoctl from {site}" + (" (editable install)" if editable else "")


def newest_starts(leases: Path) -> int:
    """The newest ``starts`` among the journal's last records (appended in time order)."""
    import calendar
    import re

    with leases.open("rb") as file:
        file.seek(max(0, leases.stat().st_size - (1 << 16)))
        tail = file.read()
    stamps = re.findall(rb"starts \d (\d+)/(\d+)/(\d+) (\d+):(\d+):(\d+);", tail)
    return max(calendar.timegm(tuple(map(int, stamp))) for stamp in stamps)


def timed_env(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        return timed(command)
    finally:
        for key, value in saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value


def report(row: dict[str, object]) -> list[str]:
    """Lines for one size, with the ratios and a verdict per target."""
    r = {key: value for key, value in row.items() if isinstance(value, int | float)}
    pools_s, pools_mib = r["dhcpd_pools_s"], r["dhcpd_pools_mib"]
    lines = [
        f"{row['size']} ({row['file_mb']} MB), counts agree with dhcpd-pools: {row['counts_agree']}"
    ]
    lines.append(f"  dhcpd-pools -f j            {pools_s:7.3f} s {pools_mib:6.0f} MiB")
    for name, title in (
        ("balance", "compiled"),
        ("balance_window", "+24h busy"),
        ("balance_pure", "pure Python"),
    ):
        seconds, mib = r[f"{name}_s"], r[f"{name}_mib"]
        verdict = (
            "OK"
            if seconds <= TARGETS["time_vs_pools"] * pools_s
            and mib <= TARGETS["rss_vs_pools"] * pools_mib
            else "over target"
        )
        lines.append(
            f"  balance --json ({title:11}) {seconds:7.3f} s {mib:6.0f} MiB  "
            f"{seconds / pools_s:5.2f}x time, {mib / pools_mib:4.2f}x RSS"
            + (f"  [{verdict}]" if name != "balance_pure" else "")
        )
    if "isc_s" in r:
        speedup = r["isc_s"] / r["read_s"]
        verdict = "OK" if speedup >= TARGETS["isc_speedup"] else "under target"
        lines.append(
            f"  reader alone (read_one.py)  {r['read_s']:7.3f} s {r['read_mib']:6.0f} MiB  "
            f"isc-dhcp-leases {r['isc_s']:.2f} s {r['isc_mib']:.0f} MiB: "
            f"{speedup:.1f}x faster  [{verdict}]"
        )
    share = r["reread_s"] / r["reread_cold_s"]
    verdict = "OK" if share <= TARGETS["reread"] else "over target"
    lines.append(
        f"  re-read after +1 %          {r['reread_s']:7.3f} s         "
        f"{share:.1%} of the cold read ({r['reread_cold_s']:.3f} s)  [{verdict}]"
    )
    read_s, balance_s = r["in_process_read_s"], r["in_process_balance_s"]
    verdict = "OK" if balance_s <= TARGETS["balance_vs_read"] * read_s else "over target"
    lines.append(
        f"  in one process: read {read_s:.3f} s, balance {balance_s:.3f} s "
        f"(+{balance_s / read_s:.1%})  [{verdict}]; read + journal + balance "
        f"{r['in_process_gather_s']:.3f} s"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1m")
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool; the median is kept")
    parser.add_argument("--isc-max", default="100k", help="largest size for isc-dhcp-leases")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--in-process", metavar="SIZE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        print(json.dumps(in_process(parse_size(args.in_process))))
        return
    isc_max = parse_size(args.isc_max) if args.isc_max != "0" else 0
    print(f"lease reader: {reader_line()}; {install_line()}; median of {args.repeat}", flush=True)
    floor = start_up(args.repeat)
    print(
        f"start-up: python -c pass {floor['python_s']:.3f} s {floor['python_mib']:.0f} MiB;"
        f" dhcpfoctl --version {floor['version_s']:.3f} s {floor['version_mib']:.0f} MiB",
        flush=True,
    )
    rows = []
    for size in map(parse_size, args.sizes.split(",")):
        row = run_size(size, args.repeat, isc=0 < size <= isc_max)
        rows.append(row)
        print("\n".join(report(row)), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"start_up": floor, "sizes": rows}, indent=2) + "\n")
    sys.exit(0 if all(row["counts_agree"] for row in rows) else 1)


def reader_line() -> str:
    from dhcpfoctl.leases import active_reader

    return active_reader()


if __name__ == "__main__":
    main()
