"""The watcher's Prometheus metrics: what a snapshot renders, escaping, HTTP, textfile, start-up."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dhcpfoctl.errors import LocalError
from dhcpfoctl.watch.metrics import STATES, Metrics
from dhcpfoctl.watch.model import RelationshipWatch, ServerWatch, WatchSnapshot

NOW = 1_800_000_000.0


def snapshot(*, pools: tuple[str, ...] = ("lan",), label: str = "dhcp2") -> WatchSnapshot:
    primary = ServerWatch(
        label="dhcp1",
        endpoint="192.0.2.10:7911",
        reachable=True,
        state="communications-interrupted",
        state_since=NOW - 600,
        unacked_updates=10,
        free={pool: 40 for pool in pools},
        backup={pool: 5 for pool in pools},
        max_unacked_updates=10,
    )
    secondary = ServerWatch(label, "192.0.2.11:7911", False, None, None, None)
    rel = RelationshipWatch(
        name="campus",
        servers=[primary, secondary],
        alerts=["dhcp2: unreachable", "stuck link"],
        actions_taken=1,
        probes={"omapi": False, "failover": None, "dhcp": True},
        endurance_seconds={"dhcp1": 7200.0, label: None},
    )
    return WatchSnapshot(now=NOW, relationships=[rel])


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_a_snapshot_renders_every_metric() -> None:
    metrics = Metrics()
    assert metrics.render() == b""  # nothing before the first poll: no invented zeros
    metrics.update(snapshot())
    found = samples(metrics)
    one = {"relationship": "campus", "server": "dhcp1"}
    two = {"relationship": "campus", "server": "dhcp2"}
    states = {
        state: value(found, "dhcpfoctl_watch_server_state", **one, state=state) for state in STATES
    }
    assert states["communications-interrupted"] == 1 and sum(states.values()) == 1
    # Unreachable: every state 0, no time in state, no unacked count, no endurance.
    assert all(value(found, "dhcpfoctl_watch_server_state", **two, state=s) == 0 for s in STATES)
    assert ("dhcpfoctl_watch_server_state_seconds", frozenset(two.items())) not in found
    assert ("dhcpfoctl_watch_endurance_seconds", frozenset(two.items())) not in found
    assert value(found, "dhcpfoctl_watch_server_state_seconds", **one) == 600
    assert value(found, "dhcpfoctl_watch_server_reachable", **one) == 1
    assert value(found, "dhcpfoctl_watch_server_reachable", **two) == 0
    assert value(found, "dhcpfoctl_watch_server_unacked_updates", **one) == 10
    assert value(found, "dhcpfoctl_watch_server_max_unacked_updates", **one) == 10
    assert value(found, "dhcpfoctl_watch_pool_free_leases", **one, pool="lan") == 40
    assert value(found, "dhcpfoctl_watch_pool_backup_leases", **one, pool="lan") == 5
    assert value(found, "dhcpfoctl_watch_endurance_seconds", **one) == 7200
    probe = {"relationship": "campus"}
    assert value(found, "dhcpfoctl_watch_probe_result", **probe, probe="omapi", result="dead") == 1
    assert value(found, "dhcpfoctl_watch_probe_result", **probe, probe="omapi", result="alive") == 0
    assert value(found, "dhcpfoctl_watch_probe_result", **probe, probe="dhcp", result="alive") == 1
    assert (
        value(found, "dhcpfoctl_watch_probe_result", **probe, probe="failover", result="unknown")
        == 1
    )
    assert value(found, "dhcpfoctl_watch_actions_total", **probe) == 1
    assert value(found, "dhcpfoctl_watch_alerts_active", **probe) == 2
    assert value(found, "dhcpfoctl_watch_last_poll_timestamp_seconds") == NOW


def test_what_leaves_the_snapshot_leaves_the_metrics() -> None:
    metrics = Metrics()
    metrics.update(snapshot(pools=("lan", "wifi")))
    assert b'pool="wifi"' in metrics.render()
    metrics.update(snapshot(pools=("lan",)))
    assert b'pool="wifi"' not in metrics.render()


def test_an_unknown_state_keyword_gets_its_own_sample() -> None:
    metrics = Metrics()
    base = snapshot()
    odd = ServerWatch("dhcp1", "x", True, "unknown-13", NOW, 0)
    rel = RelationshipWatch("campus", [odd], [], 0, {}, {})
    metrics.update(WatchSnapshot(base.now, [rel]))
    found = samples(metrics)
    labels = {"relationship": "campus", "server": "dhcp1"}
    assert value(found, "dhcpfoctl_watch_server_state", **labels, state="unknown-13") == 1
    assert value(found, "dhcpfoctl_watch_server_state", **labels, state="normal") == 0


def test_untrusted_label_values_are_escaped() -> None:
    hostile = 'dh"cp\\2\n} 1\nfake_metric 666'
    metrics = Metrics()
    metrics.update(snapshot(pools=(hostile,), label=hostile))
    text = metrics.render().decode()
    assert "\nfake_metric" not in text  # no forged line
    assert 'server="dh\\"cp\\\\2\\n} 1\\nfake_metric 666"' in text
    found = samples(metrics)  # and the parser gets the exact text back
    labels = {"relationship": "campus", "server": hostile}
    assert value(found, "dhcpfoctl_watch_server_reachable", **labels) == 0
    assert (
        value(
            found,
            "dhcpfoctl_watch_pool_free_leases",
            relationship="campus",
            server="dhcp1",
            pool=hostile,
        )
        == 40
    )


def test_serve_answers_on_the_address_given() -> None:
    metrics = Metrics()
    metrics.update(snapshot())
    server = metrics.serve("127.0.0.1", 0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read()
        assert b"dhcpfoctl_watch_last_poll_timestamp_seconds 1.8e+09" in body
        with pytest.raises(LocalError, match=f"^metrics on 127.0.0.1:{port}: "):
            metrics.serve("127.0.0.1", port)  # taken: one line, no traceback
    finally:
        server.shutdown()
        server.server_close()


def test_write_textfile_is_atomic_and_readable_by_the_collector(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.update(snapshot())
    target = tmp_path / "dhcpfoctl.prom"
    target.write_text("old")
    metrics.write_textfile(target)
    assert target.read_bytes() == metrics.render()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["dhcpfoctl.prom"]  # no temporary file left
    with pytest.raises(LocalError, match=r"missing/x\.prom: cannot write metrics"):
        metrics.write_textfile(tmp_path / "missing" / "x.prom")


def test_version_does_not_import_prometheus_client() -> None:
    # Start-up cost: only the watcher's metrics import prometheus_client.
    code = (
        "import sys\n"
        "from dhcpfoctl.__main__ import main\n"
        "sys.argv = ['dhcpfoctl', '--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.splitlines()[-1] == "False"
