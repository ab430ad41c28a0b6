"""``balance --json`` against what a real dhcpd 4.4.3 failover pair logs about its pools.

A pair is started on a 40-address pool with a fast balance timer (``max-balance 4;
min-balance 2;``, pool-balance.md §5). Two comparisons:

* Seeded imbalance: both lease files start with 5 FREE and 35 BACKUP never-used leases.
  Our prediction from those files for the secondary (lts 15: gives 15 BACKUP leases away)
  must equal the secondary's first logged ``balancing``/``balanced`` pair, and the
  primary's first logged run must be the short side's (negative lts).
* Steady state: snapshot both servers' files (servers stopped for the copy), compute
  ``balance --json`` on the snapshot, and compare the predicted lines with the next run
  each server logs after the snapshot.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dhcpfoctl.cli.balance import balance

from .realpair import ROLES, LogLine, PairConfig, RealPair, Role

pytestmark = pytest.mark.integration

RANGE = ("10.99.0.100", "10.99.0.139")
FAST_TIMER = "max-balance 4; min-balance 2;"
#: dhcpd's lines without the pool pointer (a heap address that differs per run).
_POOL_LINE = re.compile(r"((?:balancing|balanced|IMBALANCED) pool) [0-9a-f]+ (.*)$")

app = typer.Typer()
app.command()(balance)


def seeded_leases(path: Path, free: int, backup: int) -> Path:
    first = int(RANGE[0].rsplit(".", 1)[1])
    records = [
        'failover peer "lab" state {\n  my state normal at 6 2026/11/28 07:00:00;\n'
        "  partner state normal at 6 2026/11/28 07:00:00;\n}\n"
    ]
    for i in range(free + backup):
        state = "free" if i < free else "backup"
        records.append(f"lease 10.99.0.{first + i} {{\n  binding state {state};\n}}\n")
    path.write_text("".join(records))
    return path


def pool_lines(entries: list[LogLine], after: float = 0.0) -> list[tuple[float, str]]:
    """(arrival time, line without pointer) of every balance log line after ``after``."""
    found = []
    for entry in entries:
        match = _POOL_LINE.search(entry.text)
        if match and entry.at > after:
            found.append((entry.at, f"{match[1]} {match[2]}".rstrip()))
    return found


def predict(conf: Path, leases: Path, as_of: float) -> dict:
    result = CliRunner().invoke(
        app, ["-c", str(conf), "-l", str(leases), "--as-of", f"@{int(as_of)}", "--json"]
    )
    assert result.exit_code == 0, result.output
    (pool,) = json.loads(result.stdout)["pools"]
    return pool


def next_run(pair: RealPair, role: Role, after: float) -> tuple[str, str]:
    """The first complete balancing/balanced pair ``role`` logs after ``after``."""

    def pair_logged() -> tuple[str, str] | None:
        lines = [text for _, text in pool_lines(pair.log_entries(role), after)]
        for first, second in itertools.pairwise(lines):
            if first.startswith("balancing") and not second.startswith("balancing"):
                return first, second
        return None

    return pair.wait_for(pair_logged, timeout=30, what=f"a balance run on the {role}")


def test_seeded_imbalance_matches_dhcpd(
    make_pair: Callable[[PairConfig], RealPair], tmp_path: Path
) -> None:
    leases = seeded_leases(tmp_path / "seed.leases", free=5, backup=35)
    pair = make_pair(
        PairConfig(
            pool_ranges=(RANGE,),
            failover_extra=FAST_TIMER,
            primary_leases=leases,
            secondary_leases=leases,
        )
    )
    secondary = predict(pair.secondary.conf_path, leases, time.time())
    view = secondary["balance_by_role"]["secondary"]
    assert (view["lts"], view["thresh"], view["hold"], view["panic"]) == (15, 6, 4, -12)
    logged = next_run(pair, "secondary", 0.0)
    assert logged == (view["log"], view["next_run"]["min"]["log"])
    assert view["exact"]
    # The primary is the short side: its start-up run ("entering normal") moves nothing and,
    # unlike a timer run, does not request a rebalance although lts < panic.
    primary = predict(pair.primary.conf_path, leases, time.time())["balance"]
    assert (primary["lts"], primary["poolreq"], primary["next_run"]["min"]["moved"]) == (
        -15,
        True,
        0,
    )
    expected = (
        primary["log"].removesuffix("  (requesting peer rebalance!)"),
        primary["next_run"]["min"]["log"],
    )
    first = next_run(pair, "primary", 0.0)
    # Unless the secondary's 15 updates reached the primary before its first run.
    assert first == expected or "free 20  backup 20  lts 0" in first[0]


def test_steady_state_prediction_matches_next_logged_run(
    make_pair: Callable[[PairConfig], RealPair], tmp_path: Path
) -> None:
    pair = make_pair(PairConfig(pool_ranges=(RANGE,), failover_extra=FAST_TIMER))
    # Let the start-up runs hand out the never-used leases (primary: 40 free → 20/20).
    pair.wait_for(
        lambda: any(
            "free 20  backup 20" in t for _, t in pool_lines(pair.log_entries("secondary"))
        ),
        timeout=30,
        what="the secondary to see the 20/20 split",
    )
    snap = pair.snapshot(tmp_path / "snap")
    for role in ROLES:
        files = snap.files[role]
        pool = predict(files.conf, files.leases, snap.taken_at)
        view = pool["balance"]
        assert pool["role"] == role
        assert (pool["counts"]["free"], pool["counts"]["backup"]) == (20, 20)
        logged = next_run(pair, role, snap.taken_at)
        assert logged == (view["log"], view["next_run"]["min"]["log"]), role
