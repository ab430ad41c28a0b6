"""The watcher's snapshot after each poll: what metrics and ``--json`` render.

Plain data, no behaviour: the service fills it, :mod:`dhcpfoctl.watch.metrics` renders it.
Fields may be added; none is ever renamed (dashboards and alert rules name them).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ServerWatch:
    """One server of a relationship as the last poll saw it."""

    label: str
    endpoint: str
    #: Its OMAPI answered the last poll.
    reachable: bool
    #: Its failover state keyword (``None`` when unreachable).
    state: str | None
    #: When it entered that state (local-stos, epoch seconds), ``None`` when not known.
    state_since: float | None
    unacked_updates: int | None
    #: Pool name → free leases it owns, and → backup leases (its partner's to hand out).
    free: dict[str, int] = field(default_factory=dict)
    backup: dict[str, int] = field(default_factory=dict)
    #: Its max-unacked-updates (OMAPI max-outstanding-updates): the limit unacked updates hit.
    max_unacked_updates: int | None = None


@dataclass(frozen=True, slots=True)
class RelationshipWatch:
    """One failover relationship: both servers, what is wrong, what was done."""

    name: str
    servers: list[ServerWatch]
    #: One line per active alert (stuck link, unreachable server, a veto…).
    alerts: list[str]
    #: Forced transitions this watcher performed for the relationship (since its journal began).
    actions_taken: int
    #: Probe name (``omapi``, ``failover``, ``dhcp``) → True alive, False dead, None unknown.
    probes: dict[str, bool | None]
    #: Server label → endurance in communications-interrupted, seconds (None: no estimate).
    endurance_seconds: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class WatchSnapshot:
    """Everything watched, at ``now`` (epoch seconds)."""

    now: float
    relationships: list[RelationshipWatch]
