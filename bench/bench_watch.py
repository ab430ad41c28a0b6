"""Acceptance trials of ``dhcpfoctl watch`` on a lab pair: N of each kind, then the table.

    .venv/bin/python bench/bench_watch.py --trials 50 [--kinds death,partition,restart]
        [--json results.json]

Each trial (see ``tests/watch_trials.py``) starts a real watcher with ``--act`` on a lab
pair with DHCP clients, then kills a server (``death``: partner-down expected within
T + 10 s), cuts the failover link (``partition``: no partner-down, a stuck-link alert), or
kills and restarts the watcher mid-incident (``restart``: exactly one partner-down). Runs on
loopback, unprivileged; the lab is torn down at the end whatever happens.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_lab_cluster import free_base_port
from tests.watch_trials import T, Trial, lab_pair, run_trial, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="trials of each kind")
    parser.add_argument("--kinds", default="death,partition,restart")
    parser.add_argument("--json", type=Path, help="write every trial and the table here")
    args = parser.parse_args()
    # A stop (SIGTERM) unwinds like an error: the watcher, the clients and the lab go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    kinds = [k for k in args.kinds.split(",") if k]
    trials: list[Trial] = []
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-watch-") as work,
        lab_pair(Path(work) / "lab", free_base_port()) as lab,
    ):
        for index in range(args.trials):
            for kind in kinds:  # interleaved: a drift of the machine hits every kind
                trial = run_trial(lab, kind, index, Path(work))
                trials.append(trial)
                print(
                    f"{kind:<9} #{index:<3} acted={trial.acted} "
                    f"time_to_act={trial.time_to_act} stuck_alert={trial.stuck_alert} "
                    f"ok={trial.ok} {' '.join(trial.notes)}",
                    flush=True,
                )
    rows = table(trials)
    print(f"\nT = {T} s, {time.monotonic() - started:.0f} s in all")
    print("| trials | kind | acted | time to act min / median / max (s) | false actions | ok |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['trials']} | {row['kind']} | {row['acted']} | "
            f"{row['time_to_act_min']} / {row['time_to_act_median']} / {row['time_to_act_max']}"
            f" | {row['false_actions']} | {row['ok']}/{row['trials']} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"T": T, "table": rows, "trials": [t.__dict__ for t in trials]}, indent=1)
        )
    return 0 if all(t.ok for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
