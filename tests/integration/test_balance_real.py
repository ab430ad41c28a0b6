"""``balance --json`` against what a real dhcpd 4.4.3 failover pair logs about its pools.

A pair is started on a 40-address pool with a fast balance timer (``max-balance 4;
min-balance 2;``, docs/pool-balance.md §5). Comparisons:

* Seeded imbalance: both lease files start with 5 FREE and 35 BACKUP never-used leases.
  Our prediction from those files for the secondary (lts 15: gives 15 BACKUP leases away)
  must equal the secondary's first logged ``balancing``/``balanced`` pair, and the
  primary's first logged run must be the short side's (negative lts).
* POOLREQ: the primary's file says 5 FREE / 35 BACKUP, the secondary's 20 / 20; the
  primary's timer run must log exactly the predicted line with "(requesting peer
  rebalance!)", and the secondary must answer that it has nothing to give.
* IMBALANCED: 30 used FREE / 10 BACKUP with max-lease-ownership above
  max-lease-misbalance: pass 2 stops at hold, and the predicted IMBALANCED line must be
  the one logged.
* Steady state: snapshot both servers' files (servers stopped for the copy), compute
  ``balance --json`` on the snapshot, and compare the predicted lines with the next run
  each server logs after the snapshot.

And the reader's pools (merging, bare ranges) against the lease-count a lone dhcpd reports
for each pool over OMAPI.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dhcpfoctl.cli.balance import balance
from dhcpfoctl.conf import read_config
from dhcpfoctl.model import int_to_address

from .realpair import ROLES, LogLine, PairConfig, RealPair, Role

pytestmark = pytest.mark.integration

RANGE = ("10.99.0.100", "10.99.0.139")
FAST_TIMER = "max-balance 4; min-balance 2;"
#: dhcpd's lines without the pool pointer (a heap address that differs per run).
_POOL_LINE = re.compile(r"((?:balancing|balanced|IMBALANCED) pool) [0-9a-f]+ (.*)$")

app = typer.Typer()
app.command()(balance)


def seeded_leases(path: Path, free: int, backup: int, *, used: bool = False) -> Path:
    """A lease file for RANGE; ``used``: the FREE leases had clients (an ``ends`` in the past,
    no client identity left, so dhcpd's affinity pass cannot move them)."""
    first = int(RANGE[0].rsplit(".", 1)[1])
    records = [
        'failover peer "lab" state {\n  my state normal at 6 2026/11/28 07:00:00;\n'
        "  partner state normal at 6 2026/11/28 07:00:00;\n}\n"
    ]
    for i in range(free + backup):
        state = "free" if i < free else "backup"
        ends = "  ends 6 2026/11/28 06:00:00;\n" if used and state == "free" else ""
        records.append(f"lease 10.99.0.{first + i} {{\n{ends}  binding state {state};\n}}\n")
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


def test_poolreq_on_timer_run_matches_dhcpd(
    make_pair: Callable[[PairConfig], RealPair], tmp_path: Path
) -> None:
    """The primary's files say 5 FREE / 35 BACKUP, the secondary's 20 / 20: the primary is
    short in its own view, so its timer runs request a rebalance (POOLREQ), which the
    secondary, balanced in its view, cannot answer with leases."""
    short = seeded_leases(tmp_path / "short.leases", free=5, backup=35)
    even = seeded_leases(tmp_path / "even.leases", free=20, backup=20)
    pair = make_pair(
        PairConfig(
            pool_ranges=(RANGE,),
            failover_extra=FAST_TIMER,
            primary_leases=short,
            secondary_leases=even,
        )
    )
    view = predict(pair.primary.conf_path, short, time.time())["balance"]
    assert (view["lts"], view["panic"], view["poolreq"]) == (-15, -12, True)
    assert view["log"].endswith("lts -15  max-own (+/-)4  (requesting peer rebalance!)")

    def timer_run() -> tuple[str, str] | None:
        lines = [text for _, text in pool_lines(pair.log_entries("primary"))]
        for first, second in itertools.pairwise(lines):
            if first.endswith("(requesting peer rebalance!)"):
                return first, second
        return None

    logged = pair.wait_for(timer_run, timeout=30, what="a POOLREQ timer run on the primary")
    assert logged == (view["log"], view["next_run"]["min"]["log"])
    secondary = predict(pair.secondary.conf_path, even, time.time())["balance"]
    assert secondary["lts"] == 0 and secondary["next_run"]["min"]["moved"] == 0
    pair.wait_for(
        lambda: any("answering negatively" in line for line in pair.log_lines("secondary")),
        timeout=15,
        what="the secondary to answer the POOLREQ with no leases",
    )


def test_used_leases_stop_at_hold_and_log_imbalanced(
    make_pair: Callable[[PairConfig], RealPair], tmp_path: Path
) -> None:
    """30 used FREE / 10 BACKUP with ownership 30 % above misbalance 5 %: the primary's
    lts 10 is within hold 12, so it moves nothing and logs IMBALANCED (lts 10 > 2)."""
    leases = seeded_leases(tmp_path / "used.leases", free=30, backup=10, used=True)
    pair = make_pair(
        PairConfig(
            pool_ranges=(RANGE,),
            failover_extra=FAST_TIMER + " max-lease-ownership 30; max-lease-misbalance 5;",
            primary_leases=leases,
            secondary_leases=leases,
        )
    )
    view = predict(pair.primary.conf_path, leases, time.time())["balance"]
    assert (view["lts"], view["hold"], view["thresh"]) == (10, 12, 2)
    outcome = view["next_run"]["min"]
    assert (outcome["moved"], outcome["imbalanced"]) == (0, True)
    assert outcome["log"].startswith("IMBALANCED pool")
    assert next_run(pair, "primary", 0.0) == (view["log"], outcome["log"])


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


# -- pools as dhcpd builds them (merging, bare ranges) ---------------------------------

#: Bare ranges, merged pools, statements, permits; dhcpd 4.4.3 put 10.0.0.80-82 into the
#: "deny unknown-clients" pool (peer p), which the reader reproduces and warns about.
MERGE_CONFIGS = {
    "mixed": """
  pool { failover peer "p"; range 10.0.0.10 10.0.0.19; }
  pool { failover peer "p"; range 10.0.0.20 10.0.0.24; }
  pool { failover peer "p"; max-lease-time 300; range 10.0.0.30 10.0.0.32; }
  pool { failover peer "p"; deny unknown-clients; range 10.0.0.40 10.0.0.41; }
  pool { failover peer "p"; deny unknown-clients; range 10.0.0.50 10.0.0.56; }
  range 10.0.0.60 10.0.0.60;
  pool { range 10.0.0.70 10.0.0.71; }
  range 10.0.0.80 10.0.0.82;
""",
    "bare-first": """
  range 10.0.0.60 10.0.0.60;
  pool { range 10.0.0.70 10.0.0.71; }
  range 10.0.0.80 10.0.0.82;
  pool { failover peer "p"; deny unknown-clients; range 10.0.0.40 10.0.0.41; }
  pool { failover peer "p"; range 10.0.0.10 10.0.0.19; }
""",
}

_COUNT_POOLS = """
import json, sys
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.failover import read_pool_counts
client = OmapiClient("127.0.0.1", 7911, timeout=3)
client.connect()
print(json.dumps({a: read_pool_counts(client, a).lease_count for a in sys.argv[1:]}))
client.close()
"""


class LoneDhcpd:
    """One dhcpd (OMAPI on its loopback, no partner) in a network namespace of our own."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.namespace = f"dfo-pools-{os.getpid()}"
        self.process: subprocess.Popen[bytes] | None = None

    def open(self) -> None:
        self._ip("netns", "add", self.namespace)
        self._ip("-n", self.namespace, "link", "set", "lo", "up")
        # dhcpd needs an interface on the subnet; a veth pair kept inside the namespace.
        self._ip("-n", self.namespace, "link", "add", "lan0", "type", "veth", "peer", "lan1")
        self._ip("-n", self.namespace, "addr", "add", "10.0.0.1/24", "dev", "lan0")
        self._ip("-n", self.namespace, "link", "set", "lan0", "up")

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True)

    def start(self, pools: str) -> Path:
        conf = self.workdir / "dhcpd.conf"
        conf.write_text(
            "omapi-port 7911;\n"
            'failover peer "p" { primary; address 10.0.0.1; peer address 10.0.0.2; mclt 60;'
            " split 128; load balance max seconds 3; }\n"
            f"subnet 10.0.0.0 netmask 255.255.255.0 {{{pools}}}\n"
        )
        leases, log_path = self.workdir / "dhcpd.leases", self.workdir / "dhcpd.log"
        leases.touch()
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.namespace,
                    "/usr/sbin/dhcpd",
                    "-4",
                    "-f",
                    "-d",
                    "-cf",
                    str(conf),
                    "-lf",
                    str(leases),
                    "-pf",
                    str(self.workdir / "dhcpd.pid"),
                    "lan0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while b"Server starting service." not in log_path.read_bytes():
            assert self.process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "dhcpd did not start within 15 s"
            time.sleep(0.1)
        return conf

    def lease_counts(self, addresses: list[str]) -> dict[str, int]:
        """OMAPI lease-count of the pool holding each address."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c", _COUNT_POOLS, *addresses],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return json.loads(result.stdout)

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", self.namespace], check=False, timeout=10)


@pytest.fixture
def lone_dhcpd(require_real_dhcpd: None, tmp_path: Path) -> Iterator[LoneDhcpd]:
    server = LoneDhcpd(tmp_path)
    try:
        server.open()
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("name", sorted(MERGE_CONFIGS))
def test_pools_as_dhcpd_builds_them(name: str, lone_dhcpd: LoneDhcpd) -> None:
    """Each pool's size equals the lease-count dhcpd reports for it over OMAPI."""
    config = read_config(lone_dhcpd.start(MERGE_CONFIGS[name]))
    firsts = {int_to_address(r.first): pool.size for pool in config.pools for r in pool.ranges}
    assert lone_dhcpd.lease_counts(list(firsts)) == firsts
    assert len(config.warnings) == (name == "mixed")
