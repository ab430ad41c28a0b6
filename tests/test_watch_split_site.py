"""The split site on a lab pair with etcd witnesses (the issue's Chicago / New York case).

The primary is Chicago, the secondary New York; the failover link between the cities is
cut (``lab cut``): both servers are alive, both serve. The Chicago watcher cannot reach New
York at all (its profile points at ports where nothing listens: the city link is down for
it too) and sees its own server serving New York's hash buckets: every condition a watcher
alone could check holds. A witness watcher that reaches New York publishes it alive through
etcd and vetoes: no partner-down. With only a witness that also finds New York dead (and
the quorum met), Chicago acts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from dhcpfoctl.lab.cluster import CLIENT_GIADDR, HOST, Lab, LabPorts
from dhcpfoctl.lab.population import run_population
from dhcpfoctl.watch.history import read_journal
from tests.test_lab_cluster import free_base_port
from tests.test_witness import etcd  # noqa: F401  (the fixture: a real etcd on loopback)
from tests.watch_trials import T, clients, lab_pair, wait_normal


@contextmanager
def chicago_clients(lab: Lab) -> Iterator[None]:
    """New clients in Chicago: their broadcasts reach the Chicago server only."""
    stop = threading.Event()
    port = LabPorts(lab.options().base_port).dhcp("primary")
    thread = threading.Thread(
        target=run_population,
        args=([(HOST, port)],),
        kwargs={"clients": 40, "rate": 4.0, "duration": 120.0, "giaddr": CLIENT_GIADDR,
                "release_at_end": False, "seed": 7, "until": stop.is_set},
        daemon=True,
    )  # fmt: skip
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def cut_off_profile(lab: Lab, path: Path) -> Path:
    """The lab's profile with New York's OMAPI and failover ports where nothing listens."""
    text = lab.profile.read_text()
    head, _, secondary = text.partition("[profiles.lab.servers.secondary]")
    secondary = re.sub(r"\nport = \d+", "\nport = 9", secondary)
    secondary = re.sub(r"\nfailover_port = \d+", "\nfailover_port = 9", secondary)
    path.write_text(head + "[profiles.lab.servers.secondary]" + secondary)
    return path


def start(profile: Path, journal: Path, etcd: str, prefix: str, name: str, *extra: str):  # noqa: F811
    return subprocess.Popen(
        [sys.executable, "-m", "dhcpfoctl", "watch", "--interval", "1",
         "--interrupted-for", f"{T}s", "--silent-for", "2s", "--timeout", "0.5",
         "--retries", "1", "--no-dhcp-probe", "--journal", str(journal),
         "--witness", etcd, "--witness-prefix", prefix, "--watcher-id", name,
         "--quorum", "1", *extra],
        env=dict(os.environ, DHCPFOCTL_CONFIG=str(profile)),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(15)


def decisions(journal: Path) -> list[dict]:
    return [r for r in read_journal(journal) if r["kind"] in ("decision", "outcome")]


def wait(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_witness_that_reaches_new_york_vetoes_and_a_dead_quorum_allows(
    etcd: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with (
        lab_pair(tmp_path / "lab", free_base_port()) as lab,
        clients(lab),
        ExitStack() as stack,
    ):
        chicago_view = cut_off_profile(lab, tmp_path / "chicago.toml")
        time.sleep(2)
        lab.cut()
        stack.enter_context(chicago_clients(lab))
        # 1. a witness in New York sees it alive: Chicago must not act
        journal = tmp_path / "chicago-1.jsonl"
        chicago = start(chicago_view, journal, etcd, "/split/1", "chicago", "--act")
        new_york = start(lab.profile, tmp_path / "ny.jsonl", etcd, "/split/1", "new-york")

        def witness_only() -> list[dict]:
            # a veto whose one reason is the witness: every condition a lone watcher
            # checks (T, probes dead, silence window, clients unanswered) held
            return [
                r
                for r in decisions(journal)
                if r.get("decision") == "veto" and len(r["reasons"]) == 1
            ]

        try:
            wait(lambda: bool(witness_only()), T + 20)
            time.sleep(3)  # past T and the window: still nothing
            records = decisions(journal)
            assert not [r for r in records if r["kind"] == "outcome"], records
            (reason,) = witness_only()[0]["reasons"]
            assert "witnesses saw the partner alive" in reason and "new-york" in reason
        finally:
            stop(chicago, new_york)
        assert lab.pid("secondary") is not None  # New York alive and serving all along

        # 2. the witness quorum also says New York is dead: Chicago acts, once
        journal = tmp_path / "chicago-2.jsonl"
        london_view = cut_off_profile(lab, tmp_path / "london.toml")
        chicago = start(chicago_view, journal, etcd, "/split/2", "chicago", "--act")
        london = start(london_view, tmp_path / "london.jsonl", etcd, "/split/2", "london")
        try:
            wait(lambda: any(r["kind"] == "outcome" for r in decisions(journal)), T + 15)
            (outcome,) = [r for r in decisions(journal) if r["kind"] == "outcome"]
            assert outcome["result"] == "performed", outcome
            act = next(r for r in decisions(journal) if r.get("decision") == "act")
            assert "1 of 1 reporting witnesses say dead" in act["witness"]
        finally:
            stop(chicago, london)
        lab.heal()
        wait_normal(lab)
