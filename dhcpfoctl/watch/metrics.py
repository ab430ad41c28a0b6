"""Prometheus metrics of a watcher: the last :class:`WatchSnapshot`, as ``dhcpfoctl_watch_*``.

Served over HTTP (:meth:`Metrics.serve`) and/or written for node_exporter's textfile
collector (:meth:`Metrics.write_textfile`). Each scrape renders the last snapshot whole,
through a collector on a private registry, so a pool or server that disappears from the
configuration disappears from the metrics too (set-and-forget gauges would keep it).

prometheus_client is imported here only: the watcher imports this module when metrics are
asked for, so no other command pays for it at start-up. Label values (server labels, pool
and relationship names, state keywords) come from configs and servers: prometheus_client
escapes them in the exposition format.

Metrics (labels ``relationship``, ``server``, ``pool``, ``probe``, ``state``, ``result``):

==============================================  ==============================================
``dhcpfoctl_watch_server_state``                1 for the server's failover state, 0 for every
                                                other (all 0 while it is unreachable)
``dhcpfoctl_watch_server_state_seconds``        time in that state (now - local-stos)
``dhcpfoctl_watch_server_reachable``            1 when its OMAPI answered the last poll
``dhcpfoctl_watch_server_unacked_updates``      updates its partner has not acknowledged
``dhcpfoctl_watch_server_max_unacked_updates``  the limit of those (max-unacked-updates)
``dhcpfoctl_watch_pool_free_leases``            free leases the server owns, per pool
``dhcpfoctl_watch_pool_backup_leases``          backup leases (its partner's), per pool
``dhcpfoctl_watch_endurance_seconds``           how long its free leases last alone
``dhcpfoctl_watch_probe_result``                1 for each partner probe's result
                                                (alive, dead, unknown)
``dhcpfoctl_watch_actions_total``               forced transitions this watcher performed
``dhcpfoctl_watch_alerts_active``               alerts active for the relationship
``dhcpfoctl_watch_last_poll_timestamp_seconds`` when the last poll ended (epoch seconds)
==============================================  ==============================================
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dhcpfoctl.errors import LocalError
from dhcpfoctl.files import replace_atomically
from dhcpfoctl.model import FailoverState

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from dhcpfoctl.watch.model import WatchSnapshot

#: Every state keyword dhcpd 4.4 has, each a sample of ``dhcpfoctl_watch_server_state``.
STATES = tuple(state.keyword for state in FailoverState)
PROBE_RESULTS = {True: "alive", False: "dead", None: "unknown"}
PREFIX = "dhcpfoctl_watch_"


class _SnapshotCollector(Collector):
    """Renders the last snapshot at each collection; nothing before the first one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: WatchSnapshot | None = None

    def set(self, snapshot: WatchSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return
        server_labels = ["relationship", "server"]
        state = GaugeMetricFamily(
            PREFIX + "server_state",
            "1 for the server's failover state, 0 for the others (all 0 when unreachable)",
            labels=[*server_labels, "state"],
        )
        state_seconds = GaugeMetricFamily(
            PREFIX + "server_state_seconds",
            "Seconds since the server entered its failover state",
            labels=server_labels,
        )
        reachable = GaugeMetricFamily(
            PREFIX + "server_reachable",
            "1 when the server's OMAPI answered the last poll",
            labels=server_labels,
        )
        unacked = GaugeMetricFamily(
            PREFIX + "server_unacked_updates",
            "Lease updates sent to the partner and not yet acknowledged",
            labels=server_labels,
        )
        max_unacked = GaugeMetricFamily(
            PREFIX + "server_max_unacked_updates",
            "The server's max-unacked-updates: the limit of unacknowledged updates",
            labels=server_labels,
        )
        free = GaugeMetricFamily(
            PREFIX + "pool_free_leases",
            "Free leases the server owns in the pool",
            labels=[*server_labels, "pool"],
        )
        backup = GaugeMetricFamily(
            PREFIX + "pool_backup_leases",
            "Backup leases in the pool (the partner's to hand out)",
            labels=[*server_labels, "pool"],
        )
        endurance = GaugeMetricFamily(
            PREFIX + "endurance_seconds",
            "How long the server's free leases last in communications-interrupted",
            labels=server_labels,
        )
        probes = GaugeMetricFamily(
            PREFIX + "probe_result",
            "1 for the result (alive, dead, unknown) of each probe of the partner",
            labels=["relationship", "probe", "result"],
        )
        actions = CounterMetricFamily(
            PREFIX + "actions",
            "Forced transitions (partner-down) this watcher performed",
            labels=["relationship"],
        )
        alerts = GaugeMetricFamily(
            PREFIX + "alerts_active",
            "Alerts active for the relationship (stuck link, unreachable server, veto...)",
            labels=["relationship"],
        )
        for rel in snapshot.relationships:
            for server in rel.servers:
                labels = [rel.name, server.label]
                current = server.state if server.reachable else None
                for keyword in (*STATES, *([current] if current and current not in STATES else [])):
                    state.add_metric([*labels, keyword], 1.0 if keyword == current else 0.0)
                if current is not None and server.state_since is not None:
                    state_seconds.add_metric(labels, max(0.0, snapshot.now - server.state_since))
                reachable.add_metric(labels, 1.0 if server.reachable else 0.0)
                if server.unacked_updates is not None:
                    unacked.add_metric(labels, server.unacked_updates)
                if server.max_unacked_updates is not None:
                    max_unacked.add_metric(labels, server.max_unacked_updates)
                for pool, count in sorted(server.free.items()):
                    free.add_metric([*labels, pool], count)
                for pool, count in sorted(server.backup.items()):
                    backup.add_metric([*labels, pool], count)
                seconds = rel.endurance_seconds.get(server.label)
                if seconds is not None:
                    endurance.add_metric(labels, seconds)
            for probe, result in sorted(rel.probes.items()):
                for value, name in PROBE_RESULTS.items():
                    probes.add_metric([rel.name, probe, name], 1.0 if result is value else 0.0)
            actions.add_metric([rel.name], rel.actions_taken)
            alerts.add_metric([rel.name], len(rel.alerts))
        yield from (state, state_seconds, reachable, unacked, max_unacked, free, backup)
        yield from (endurance, probes, actions, alerts)
        last_poll = GaugeMetricFamily(
            PREFIX + "last_poll_timestamp_seconds", "When the watcher's last poll ended"
        )
        last_poll.add_metric([], snapshot.now)
        yield last_poll


class Metrics:
    """The watcher's metrics on a private registry (nothing of the process's default one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _SnapshotCollector()
        self.registry.register(self._collector)

    def update(self, snapshot: WatchSnapshot) -> None:
        """Render ``snapshot`` from now on (both the HTTP endpoint and the next textfile)."""
        self._collector.set(snapshot)

    def render(self) -> bytes:
        """The exposition text of the last snapshot."""
        return generate_latest(self.registry)

    def serve(self, address: str, port: int) -> WSGIServer:
        """Serve ``/metrics`` on ``address``:``port`` in a daemon thread; the server is returned
        (``shutdown()`` stops it; ``server_address`` has the port when 0 was asked)."""
        try:
            server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise LocalError(f"metrics on {address}:{port}: {exc.strerror or exc}") from None
        return server

    def write_textfile(self, path: Path) -> None:
        """Write the metrics for node_exporter's textfile collector, atomically.

        A temporary file in the same directory, fsynced and renamed over ``path``: the
        collector never reads half a file. Mode 0644: node_exporter runs as another user.
        """
        try:
            replace_atomically(path, self.render(), mode=0o644)
        except OSError as exc:
            raise LocalError(f"{path}: cannot write metrics: {exc.strerror or exc}") from None
