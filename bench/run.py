"""Benchmark dhcpfoctl's lease reader against dhcpd-pools 2.29 and isc-dhcp-leases.

    python bench/run.py [--sizes 10k,100k,1m] [--isc-max 100k] [--repeat 1]

Generates (once, cached in bench/data/) a failover journal per size with 3 records per
address and a dhcpd.conf with its ranges, then runs each tool as a separate process and
prints wall time (whole process, start-up included), peak RSS and the ratios. The
incremental row is a cold read followed by a re-read after 1% more records were appended.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PYTHON = sys.executable
#: Bytes per address of a generated journal (measured), to check free disk first.
BYTES_PER_ADDRESS = 1100


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def label(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1000}k"


def ensure_journal(size: int) -> tuple[Path, Path]:
    leases = DATA / f"journal-{label(size)}.leases"
    conf = DATA / f"journal-{label(size)}.conf"
    if leases.exists() and conf.exists():
        return leases, conf
    DATA.mkdir(exist_ok=True)
    free = shutil.disk_usage(DATA).free
    if free < 2 * size * BYTES_PER_ADDRESS:
        sys.exit(
            f"bench: not enough free disk in {DATA} for {label(size)} "
            f"({free >> 20} MiB free, need {2 * size * BYTES_PER_ADDRESS >> 20} MiB)"
        )
    print(f"generating {leases.name} …", file=sys.stderr, flush=True)
    partial = leases.with_suffix(".partial")
    subprocess.run(
        [PYTHON, str(HERE / "generate.py"), str(size), str(partial), str(conf)], check=True
    )
    partial.rename(leases)
    return leases, conf


def bench_environment() -> dict[str, str]:
    """The measured commands' environment: this checkout on the path, and bytecode caches
    allowed, as an installed package has them (with PYTHONDONTWRITEBYTECODE set, every run
    would compile every module it imports again)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(HERE.parent)}


#: GNU time, which forks the measured command from its own small process.
GNU_TIME = "/usr/bin/time"


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB of the process and its children, stdout).

    The peak RSS comes from GNU time, not from ``wait4()`` here: Linux starts a child's
    high-water mark at its parent's resident size (the child is spawned with vfork, and
    execve keeps the mark), so ``wait4()`` from this interpreter reported at least its own
    15 MiB for every tool, dhcpd-pools' 2.6 MiB on 10k addresses included. GNU time's own
    process is about 2 MiB, so its report is the command's.
    """
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"bench: {GNU_TIME} (GNU time) is needed for peak RSS: apt-get install time")
    with tempfile.NamedTemporaryFile("r", prefix="bench-rss-") as rss:
        started = time.perf_counter()
        process = subprocess.Popen(
            [GNU_TIME, "-f", "%M", "-o", rss.name, *command],
            stdout=subprocess.PIPE,
            text=True,
            env=bench_environment(),
        )
        assert process.stdout is not None
        out = process.stdout.read()
        process.wait()
        elapsed = time.perf_counter() - started
        if process.returncode != 0:
            sys.exit(f"bench: {' '.join(command)} failed with status {process.returncode}")
        peak_kib = int(rss.read().split()[-1])
    return elapsed, peak_kib / 1024, out


def best_of(repeat: int, command: list[str]) -> tuple[float, float, str]:
    runs = [timed(command) for _ in range(repeat)]
    return min(runs, key=lambda run: run[0])


def dhcpd_pools_counts(text: str) -> dict[str, int]:
    """cur/touch of the "Sum of all ranges" row (its bu double-counts, see the README)."""
    totals = [line for line in text.splitlines() if line.startswith("All networks")]
    if not totals:
        return {}
    fields = totals[-1].split()
    return {"cur": int(fields[3]), "touch": int(fields[5])}


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark lease-file readers.")
    parser.add_argument("--sizes", default="10k,100k,1m")
    parser.add_argument(
        "--isc-max",
        default="100k",
        help="largest size at which to run isc-dhcp-leases (slow: >2 min, "
        "~9 GB at 1m); 0 to skip it",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; best is kept")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    isc_max = parse_size(args.isc_max) if args.isc_max != "0" else 0
    results = []
    print(f"{'size':>5} {'tool':<30} {'wall s':>8} {'peak MiB':>9}  notes")
    for size in map(parse_size, args.sizes.split(",")):
        leases, conf = ensure_journal(size)
        mb = leases.stat().st_size / 1e6
        row: dict[str, object] = {"size": label(size), "file_mb": round(mb, 1)}
        pools_s, pools_rss, pools_out = best_of(
            args.repeat, ["dhcpd-pools", "-c", str(conf), "-l", str(leases)]
        )
        pools = dhcpd_pools_counts(pools_out)
        row.update(dhcpd_pools_s=pools_s, dhcpd_pools_mib=pools_rss)
        print(
            f"{label(size):>5} {'dhcpd-pools 2.29':<30} {pools_s:8.2f} {pools_rss:9.0f}"
            f"  {mb:.0f} MB file"
        )
        ours_s = ours_rss = 0.0
        states: dict[str, int] = {}
        for mode, name in (("1", "1 process (default)"), ("2", "processes=2")):
            seconds, _, out = best_of(
                args.repeat, [PYTHON, str(HERE / "read_one.py"), "dhcpfoctl", str(leases), mode]
            )
            ours = json.loads(out)
            # Peak RSS of each process, added: an upper bound of what both held at once.
            rss = ours["peak_rss_mib_self"] + ours["peak_rss_mib_child"]
            states = ours["states"]
            touch = sum(states.get(s, 0) for s in ("free", "expired", "released", "abandoned"))
            agree = pools == {"cur": states.get("active", 0), "touch": touch}
            row[f"dhcpfoctl_{mode}_s"] = seconds
            row[f"dhcpfoctl_{mode}_mib"] = rss
            row[f"dhcpfoctl_{mode}_parent_mib"] = ours["peak_rss_mib_self"]
            row["counts_agree_with_dhcpd_pools"] = agree
            print(
                f"{'':>5} {'dhcpfoctl ' + name:<30} {seconds:8.2f} {rss:9.0f}"
                f"  {seconds / pools_s:.2f}x dhcpd-pools' time, {rss / pools_rss:.2f}x its RSS;"
                f" {ours['records']} records, {ours['addresses']} addresses;"
                f" active/touched agree with dhcpd-pools: {agree}"
            )
            if mode == "1":
                ours_s, ours_rss = seconds, rss
        if isc_max and size <= isc_max:
            isc_s, isc_rss, isc_out = best_of(
                args.repeat, [PYTHON, str(HERE / "read_one.py"), "isc", str(leases)]
            )
            isc = json.loads(isc_out)
            same = isc["states"] == states
            row.update(isc_s=isc_s, isc_mib=isc_rss, isc_states_agree=same)
            print(
                f"{'':>5} {'isc-dhcp-leases 0.10':<30} {isc_s:8.2f} {isc_rss:9.0f}"
                f"  states agree (last-wins applied): {same}; dhcpfoctl (default) is "
                f"{isc_s / ours_s:.1f}x faster with {isc_rss / ours_rss:.1f}x less RSS"
            )
        _, inc_rss, inc_out = timed(
            [PYTHON, str(HERE / "read_one.py"), "incremental", str(leases), str(size)]
        )
        inc = json.loads(inc_out)
        ratio = inc["incremental_seconds"] / inc["cold_seconds"]
        row.update(
            incremental_s=inc["incremental_seconds"],
            incremental_cold_s=inc["cold_seconds"],
            incremental_ratio=ratio,
        )
        print(
            f"{'':>5} {'dhcpfoctl +1% re-read':<30} {inc['incremental_seconds']:8.3f} "
            f"{inc_rss:9.0f}  {inc['appended_records']} appended records; "
            f"{100 * ratio:.1f}% of the cold read ({inc['cold_seconds']:.2f} s in-process)"
        )
        results.append(row)
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
