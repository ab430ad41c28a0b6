"""The watcher's loop: poll, probe, decide, act (or say what it would do), journal, hooks.

Each poll asks both servers of every relationship over OMAPI (:func:`query_all`, bounded by
the timeout), and for a relationship with a server in communications-interrupted probes
the partner (:mod:`dhcpfoctl.watch.probes`), reads the unanswered-clients evidence from the
local server's lease journal, and asks the witnesses; the relationship's
:class:`~dhcpfoctl.watch.policy.RelationshipPolicy` decides. An :class:`Act` runs the same
executor as ``dhcpfoctl partner-down`` (:mod:`dhcpfoctl.checks.force`: preconditions, its
own partner probe, re-check on the write connection, write, read-back), with the intent
journalled before and the outcome after. Without ``act`` it is reported as ``would-act``.

Signals: SIGHUP re-reads the profile and config (targets), SIGTERM and SIGINT stop after
the current poll. :func:`notify` speaks systemd's notify protocol (READY=1 after the first
poll, RELOADING=1, STOPPING=1, WATCHDOG=1 after each poll).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dhcpfoctl.checks.force import ForceCallbacks, ForcedTransition, ForceRequest
from dhcpfoctl.checks.gather import add_endurance, pool_addresses, query_all
from dhcpfoctl.checks.health import ServerAnswer, evaluate, track_unacked
from dhcpfoctl.checks.history import LeaseFollower
from dhcpfoctl.checks.partner_down import partner_failover
from dhcpfoctl.errors import CheckResult, DhcpfoctlError, LocalError, RemoteError, worst_of
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi import format_endpoint
from dhcpfoctl.profile import ServerSpec, Targets
from dhcpfoctl.watch import policy as pol
from dhcpfoctl.watch.history import Journal, Resumed
from dhcpfoctl.watch.model import RelationshipWatch, ServerWatch, WatchSnapshot
from dhcpfoctl.watch.probes import (
    DhcpProbe,
    UnansweredClients,
    probe_dhcp,
    probe_omapi_and_failover,
)

#: Longest hook output kept in the journal.
HOOK_OUTPUT_MAX = 4096
#: How each alert code weighs in ``--once``'s exit status.
ALERT_HEALTH = {
    "stuck-link": CheckResult.WARNING,
    "unreadable": CheckResult.UNKNOWN,
    "action-failed": CheckResult.CRITICAL,
    "table": CheckResult.CRITICAL,
}


def notify(message: str) -> None:
    """Send ``message`` (e.g. ``READY=1``) to systemd's ``$NOTIFY_SOCKET``; nothing when
    unset. Best effort: a notification that cannot be sent is not the watcher's failure."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):  # an abstract socket
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(message.encode())
    except OSError:
        pass


@dataclass(frozen=True, slots=True)
class Hooks:
    """A command (argv) per event kind; the event's JSON goes to its standard input."""

    transition: tuple[str, ...] | None = None
    alert: tuple[str, ...] | None = None
    action: tuple[str, ...] | None = None
    timeout: float = 10.0


def run_hook(argv: Sequence[str], event: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one hook; what it did, for the journal (never raises)."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            list(argv),
            input=json.dumps(event, ensure_ascii=True).encode(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        status: int | str = done.returncode
        output = done.stdout
    except subprocess.TimeoutExpired as exc:
        status, output = f"killed after {timeout:g} s", exc.stdout or b""
    except OSError as exc:
        status, output = f"not run: {exc.strerror or exc}", b""
    return {
        "command": list(argv),
        "status": status,
        "seconds": round(time.monotonic() - started, 3),
        "output": output[:HOOK_OUTPUT_MAX].decode("utf-8", "backslashreplace"),
    }


@dataclass(frozen=True, slots=True)
class DhcpProbeSettings:
    """The DHCP probe: this host's address and reply port, the ciaddr (default: that
    address); the partner's port comes from its dhcpd.conf ``local-port`` (else 67)."""

    bind: tuple[str, int]
    ciaddr: str | None = None
    timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class WitnessSettings:
    board: Any  # dhcpfoctl.watch.witness.WitnessBoard
    quorum: int
    window: float
    claim_ttl: int = 3600


@dataclass(frozen=True, slots=True)
class WatchSettings:
    limits: pol.Thresholds
    interval: float = 2.0
    timeout: float = 2.0
    act: bool = False
    retries: int = 3
    dhcp: DhcpProbeSettings | None = None
    hooks: Hooks = field(default_factory=Hooks)
    witness: WitnessSettings | None = None


@dataclass(slots=True)
class _Pair:
    """One relationship's two servers and what is followed for each."""

    name: str
    servers: tuple[ServerSpec, ServerSpec]
    evidence: dict[str, UnansweredClients]


class Watcher:
    """Polls ``targets()`` (called again on reload) and acts on ``settings``.

    ``emit`` receives every journal record as it is written (the command renders them);
    ``metrics`` (a :class:`dhcpfoctl.watch.metrics.Metrics`) gets a snapshot per poll.
    """

    def __init__(
        self,
        targets: Callable[[], Targets],
        settings: WatchSettings,
        journal: Journal,
        emit: Callable[[dict[str, Any]], None],
        *,
        resumed: dict[str, Resumed] | None = None,
        metrics: Any = None,
        textfile: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._targets_factory = targets
        self.settings = settings
        self.journal = journal
        self.emit = emit
        self.metrics = metrics
        self.textfile = textfile
        self.clock = clock
        self._resumed = resumed or {}
        self.policies: dict[str, pol.RelationshipPolicy] = {}
        self.health = CheckResult.OK
        self._lock = threading.Lock()
        self._hooks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hook")
        self._probe_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe")
        #: The lease files' new-binding history, remembered across polls and restarts
        #: (the state directory, as status does), and since when each unacked-updates
        #: window has been full: a window full in one poll only is no warning.
        self._followers = LeaseFollower()
        self._unacked: dict[str, int] = {}
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        #: (relationship, server) → when this watcher last saw it alive (for witnesses).
        self._last_alive: dict[tuple[str, str], float] = {}
        self._load()

    # -- targets

    def _load(self) -> None:
        self.targets = self._targets_factory()
        servers = self.targets.profile_servers or self.targets.servers
        if len(servers) != 2:
            labels = ", ".join(s.label for s in servers) or "none"
            raise LocalError(f"watch needs the two servers of a pair, not {labels}")
        self.servers = (servers[0], servers[1])
        previous = getattr(self, "pairs", {})
        self.pairs: dict[str, _Pair] = {}
        for name in self.targets.relationships:
            old = previous.get(name)
            evidence = {
                spec.label: old.evidence[spec.label]
                if old is not None and spec.label in old.evidence
                else UnansweredClients(spec.leases)
                for spec in servers
                if spec.leases
            }
            self.pairs[name] = _Pair(name, self.servers, evidence)
            if name not in self.policies:
                memory = self._resumed.get(name)
                limits = self.settings.limits
                self.policies[name] = (
                    pol.restore(
                        name,
                        limits,
                        states=memory.states,
                        incident=memory.incident,
                        intent_pending=memory.intent_pending,
                        acted=memory.acted,
                        actions_taken=memory.actions_taken,
                        partner_silent_since=memory.partner_silent_since,
                    )
                    if memory is not None
                    else pol.RelationshipPolicy(name, limits)
                )

    # -- the loop

    def run(self, *, once: bool = False) -> CheckResult:
        self._record({"kind": "start", "pid": os.getpid(), "act": self.settings.act})
        try:
            self.poll()
            notify("READY=1")
            while not once and not self.stop_event.is_set():
                if self.reload_event.is_set():
                    self.reload_event.clear()
                    notify("RELOADING=1")
                    try:
                        self._load()
                        self._record({"kind": "reload"})
                    except DhcpfoctlError as exc:  # keep watching with what worked
                        self._record({"kind": "reload", "error": str(exc)})
                    notify("READY=1")
                self.stop_event.wait(self._sleep_time())
                if not self.stop_event.is_set() and not self.reload_event.is_set():
                    self.poll()
        finally:
            notify("STOPPING=1")
            self._hooks.shutdown(wait=True)
            self._probe_pool.shutdown(wait=True)
            self._record({"kind": "stop"})
        return self.health

    def _sleep_time(self) -> float:
        now = self.clock()
        wake = now + self.settings.interval
        for policy in self.policies.values():
            deadline = policy.next_deadline()
            if deadline is not None:
                wake = min(wake, deadline + 0.05)
        return max(0.05, wake - now)

    def poll(self) -> None:
        targets, servers = self.targets, self.servers
        answers = query_all(servers, targets.relationships, pool_addresses(targets), self._timeout)
        now = self.clock()
        answers = add_endurance(answers, servers, targets.config, int(now), self._followers)
        self._unacked = track_unacked(answers, self._unacked, int(now))
        report = evaluate(answers, targets.relationships, int(now), unacked_since=self._unacked)
        snapshots = []
        for pair in self.pairs.values():
            snapshots.append(self._poll_pair(pair, answers, now))
        alert_health = [
            ALERT_HEALTH.get(code, CheckResult.WARNING)
            for policy in self.policies.values()
            for code in policy.memory.alerts
        ]
        self.health = worst_of([report.health, *alert_health])
        self._publish_snapshot(WatchSnapshot(now=now, relationships=snapshots))
        notify("WATCHDOG=1")

    @property
    def _timeout(self) -> float:
        return self.settings.timeout

    def _poll_pair(
        self, pair: _Pair, answers: Sequence[ServerAnswer], now: float
    ) -> RelationshipWatch:
        readings = tuple(_reading(answer, pair.name) for answer in answers)
        policy = self.policies[pair.name]
        indexes = pol.incident_pair(readings)
        probes: tuple[pol.ProbeResult, ...] = ()
        evidence: pol.Unanswered | str | None = None
        witness: pol.WitnessInput | str | None = None
        if (
            indexes is not None
            and readings[indexes[0]].state == FailoverState.COMMUNICATIONS_INTERRUPTED
        ):
            local, partner = pair.servers[indexes[0]], pair.servers[indexes[1]]
            probes = self._probe(pair, local, partner)
            info = answers[indexes[0]].failover.get(pair.name)
            follower = pair.evidence.get(local.label)
            if follower is None:
                evidence = f"no lease file of {local.label} in the profile (`leases`)"
            elif info is not None:
                evidence = follower.evidence(
                    float(info.local_stos), info.load_balance_hba, info.hierarchy == 0
                )
            witness = self._witness(pair.name, partner, probes, readings[indexes[1]], now)
        elif self.settings.witness is not None:
            for index, spec in enumerate(pair.servers):  # others may need our view of it
                self._publish_witness(pair.name, spec, readings[index].answered, now)
        # Judged at the end of the probing, which takes time when the partner is silent.
        now = self.clock()
        observation = pol.Observation(now, readings, probes, evidence, witness)
        silent_before = policy.memory.partner_silent_since
        events = policy.observe(observation)
        if policy.memory.partner_silent_since != silent_before:
            self._record(
                {
                    "kind": "silent",
                    "relationship": pair.name,
                    "incident": policy.memory.incident,
                    "since": policy.memory.partner_silent_since,
                }
            )
        for event in events:
            self._handle(pair, event)
        return self._relationship_watch(pair, answers, probes, policy)

    def _probe(
        self, pair: _Pair, local: ServerSpec, partner: ServerSpec
    ) -> tuple[pol.ProbeResult, ...]:
        try:
            failover = partner_failover(None, partner, local, self.targets, pair.name)
        except DhcpfoctlError as exc:
            failover = None
            error = pol.ProbeResult("failover", "?", pol.ProbeOutcome.ERROR, str(exc))
        else:
            error = None
        # The DHCP probe runs beside the others: a silent partner costs their longest, not
        # their sum.
        dhcp = None
        if self.settings.dhcp is not None:
            dhcp = self._probe_pool.submit(self._probe_dhcp, partner, failover)
        results = list(
            probe_omapi_and_failover(
                partner, failover, pair.name, self._timeout, self.settings.retries
            )
        )
        if error is not None:
            results.append(error)
        elif failover is None:
            results.append(
                pol.ProbeResult(
                    "failover",
                    "?",
                    pol.ProbeOutcome.ERROR,
                    "the partner's failover address is unknown (profile failover_address)",
                )
            )
        if dhcp is not None:
            results.append(dhcp.result())
        return tuple(results)

    def _probe_dhcp(self, partner: ServerSpec, failover: tuple[str, int] | None) -> pol.ProbeResult:
        settings = self.settings.dhcp
        assert settings is not None
        host = partner.failover_address or (failover[0] if failover else partner.host)
        port = 67
        if partner.config:
            try:
                from dhcpfoctl.conf import read_config

                port = read_config(partner.config).local_port or 67
            except DhcpfoctlError as exc:
                target = format_endpoint(host, port)
                return pol.ProbeResult("dhcp", target, pol.ProbeOutcome.ERROR, str(exc))
        bind_host, bind_port = settings.bind
        if bind_host in ("", "0.0.0.0"):
            try:
                bind_host = _route_source(host)
            except OSError as exc:
                why = f"no route to {host}: {exc.strerror or exc}"
                return pol.ProbeResult("dhcp", f"{host}:{port}", pol.ProbeOutcome.ERROR, why)
        probe = DhcpProbe(
            target=(host, port),
            bind=(bind_host, bind_port),
            ciaddr=settings.ciaddr or bind_host,
            timeout=settings.timeout,
            retries=self.settings.retries,
        )
        return probe_dhcp(probe)

    def _witness(
        self,
        relationship: str,
        partner: ServerSpec,
        probes: Sequence[pol.ProbeResult],
        reading: pol.ServerReading,
        now: float,
    ) -> pol.WitnessInput | str | None:
        settings = self.settings.witness
        if settings is None:
            return None
        alive = reading.answered or any(p.outcome is pol.ProbeOutcome.ANSWERED for p in probes)
        unknown = any(p.outcome is pol.ProbeOutcome.ERROR for p in probes)
        self._publish_witness(relationship, partner, None if unknown and not alive else alive, now)
        verdict = settings.board.verdict(
            relationship, partner.label, now, settings.window, settings.quorum
        )
        return pol.WitnessInput(
            verdict.reachable, verdict.dead, tuple(verdict.saw_alive), verdict.summary
        )

    def _publish_witness(
        self, relationship: str, server: ServerSpec, alive: bool | None, now: float
    ) -> None:
        from dhcpfoctl.watch.witness import WitnessObservation

        settings = self.settings.witness
        assert settings is not None
        key = (relationship, server.label)
        if alive:
            self._last_alive[key] = now
        try:
            settings.board.publish(
                WitnessObservation(
                    settings.board.watcher_id,
                    relationship,
                    server.label,
                    alive,
                    self._last_alive.get(key),
                    now,
                )
            )
        except RemoteError as exc:
            # Others then lack our view; our own verdict will say etcd is unreachable.
            self._record({"kind": "witness-error", "relationship": relationship, "error": str(exc)})

    # -- events

    def _handle(self, pair: _Pair, event: pol.Event_) -> None:
        if isinstance(event, pol.Transition):
            record = {
                "kind": "transition",
                "relationship": event.relationship,
                "server": event.server,
                "old": event.old,
                "new": event.new,
                "at": event.at,
                "previous_duration": event.previous_duration,
            }
            self._record(record, hook=self.settings.hooks.transition, hook_kind="transition")
        elif isinstance(event, pol.Alert | pol.AlertCleared):
            kind = "alert" if isinstance(event, pol.Alert) else "alert-cleared"
            record = {
                "kind": kind,
                "relationship": event.relationship,
                "code": event.code,
                "message": event.message,
            }
            hook = self.settings.hooks.alert if kind == "alert" else None
            self._record(record, hook=hook, hook_kind="alert")
        elif isinstance(event, pol.Veto):
            record = {
                "kind": "decision",
                "decision": "veto",
                "relationship": event.relationship,
                "incident": event.incident,
                "reasons": list(event.reasons),
                "probes": [p.to_json() for p in event.probes],
            }
            self._record(record, hook=self.settings.hooks.alert, hook_kind="alert")
        elif isinstance(event, pol.Resolved):
            self._record(
                {
                    "kind": "resolved",
                    "relationship": event.relationship,
                    "incident": event.incident,
                    "reached": event.reached,
                    "detail": event.detail,
                }
            )
        elif isinstance(event, pol.IncidentOver):
            self._record(
                {
                    "kind": "incident-over",
                    "relationship": event.relationship,
                    "incident": event.incident,
                }
            )
        elif isinstance(event, pol.Act):
            self._act(pair, event)

    def _act(self, pair: _Pair, act: pol.Act) -> None:
        policy = self.policies[pair.name]
        decision = {
            "kind": "decision",
            "decision": "act" if self.settings.act else "would-act",
            "relationship": act.relationship,
            "incident": act.incident,
            "local": act.local,
            "partner": act.partner,
            "reasons": list(act.reasons),
            "probes": [p.to_json() for p in act.probes],
            "unanswered": act.unanswered.to_json(),
            "witness": act.witness,
        }
        self._record(decision)
        base = {"relationship": act.relationship, "incident": act.incident, "local": act.local}
        if not self.settings.act:
            self._record({"kind": "outcome", **base, "result": "dry-run", "detail": "dry run"})
            for event in policy.outcome(pol.Event.OUTCOME_DRY_RUN, "dry run"):
                self._handle(pair, event)
            return
        local = next(s for s in pair.servers if s.label == act.local)
        partner = next(s for s in pair.servers if s.label == act.partner)
        ok, detail, document, lines = self._force(pair, act, local, partner)
        outcome = {
            "kind": "outcome",
            **base,
            "result": "performed" if ok else "failed",
            "detail": detail,
            "lines": lines,
            "document": document,
        }
        self._record(outcome, hook=self.settings.hooks.action, hook_kind="action")
        event = pol.Event.OUTCOME_OK if ok else pol.Event.OUTCOME_FAILED
        for follow in policy.outcome(event, detail):
            self._handle(pair, follow)

    def _force(
        self, pair: _Pair, act: pol.Act, local: ServerSpec, partner: ServerSpec
    ) -> tuple[bool, str, dict[str, Any] | None, list[str]]:
        lines: list[str] = []
        witness = self.settings.witness
        if witness is not None:
            try:
                claimed = witness.board.claim_action(pair.name, act.incident, witness.claim_ttl)
            except RemoteError as exc:
                return False, f"cannot claim the action in etcd: {exc}", None, lines
            if not claimed:
                return False, "another watcher holds the claim for this incident", None, lines
        try:
            failover = partner_failover(None, partner, local, self.targets, pair.name)
        except DhcpfoctlError as exc:
            return False, str(exc), None, lines
        request = ForceRequest(
            target=FailoverState.PARTNER_DOWN,
            local=local,
            relationship=pair.name,
            partner=partner,
            partner_failover=failover,
            timeout=self._timeout,
        )

        def confirm(question: str) -> bool:
            # The last step before the write: the intent must be on disk first, so that a
            # restart finds it and reads the server back instead of acting again.
            self._record(
                {
                    "kind": "intent",
                    "relationship": pair.name,
                    "incident": act.incident,
                    "local": local.label,
                    "action": "partner-down",
                }
            )
            return True

        executor = ForcedTransition(request, ForceCallbacks(lines.append, lines.append, confirm))
        try:
            document = executor.run()
        except DhcpfoctlError as exc:
            return False, str(exc), executor.result, lines
        after = (document.get("after") or {}).get("local_state")
        if document.get("performed"):
            return True, f"{local.label} is now {after} (read back)", document, lines
        return True, lines[-1] if lines else "nothing to do", document, lines

    # -- records, hooks, metrics

    def _record(
        self,
        record: dict[str, Any],
        *,
        hook: tuple[str, ...] | None = None,
        hook_kind: str | None = None,
    ) -> None:
        record = {"t": round(self.clock(), 3), **record}
        with self._lock:
            self.journal.append(record)
        self.emit(record)
        if hook is not None and hook_kind is not None:
            self._hooks.submit(self._run_hook, hook_kind, hook, record)

    def _run_hook(self, kind: str, argv: tuple[str, ...], event: dict[str, Any]) -> None:
        result = run_hook(argv, event, self.settings.hooks.timeout)
        self._record({"kind": "hook", "event": kind, **result})

    def _relationship_watch(
        self,
        pair: _Pair,
        answers: Sequence[ServerAnswer],
        probes: Sequence[pol.ProbeResult],
        policy: pol.RelationshipPolicy,
    ) -> RelationshipWatch:
        servers = []
        endurance: dict[str, float | None] = {}
        for answer in answers:
            info = answer.failover.get(pair.name)
            pools = answer.pools.get(pair.name, ())
            servers.append(
                ServerWatch(
                    label=answer.label,
                    endpoint=answer.endpoint,
                    reachable=info is not None,
                    state=info.local_state.keyword if info is not None else None,
                    state_since=float(info.local_stos) if info is not None else None,
                    unacked_updates=info.cur_unacked_updates if info is not None else None,
                    free={p.address: p.free_leases for p in pools},
                    backup={p.address: p.backup_leases for p in pools},
                    max_unacked_updates=info.max_outstanding_updates if info else None,
                )
            )
            estimate = answer.endurance.get(pair.name)
            endurance[answer.label] = (
                float(estimate.seconds) if estimate and estimate.seconds is not None else None
            )
        outcome = {
            pol.ProbeOutcome.ANSWERED: True,
            pol.ProbeOutcome.REFUSED: False,
            pol.ProbeOutcome.SILENT: False,
        }
        return RelationshipWatch(
            name=pair.name,
            servers=servers,
            alerts=list(policy.memory.alerts.values()),
            actions_taken=policy.memory.actions_taken,
            probes={p.name: outcome.get(p.outcome) for p in probes},
            endurance_seconds=endurance,
        )

    def _publish_snapshot(self, snapshot: WatchSnapshot) -> None:
        self.snapshot = snapshot
        if self.metrics is None:
            return
        self.metrics.update(snapshot)
        if self.textfile is not None:
            try:
                self.metrics.write_textfile(self.textfile)
            except DhcpfoctlError as exc:
                self._record({"kind": "metrics-error", "error": str(exc)})


def _reading(answer: ServerAnswer, relationship: str) -> pol.ServerReading:
    info = answer.failover.get(relationship)
    if info is None:
        error = answer.error or answer.relationship_errors.get(relationship) or "no answer"
        return pol.ServerReading(answer.label, None, error=error, silent=answer.silent)
    return pol.ServerReading(
        answer.label,
        info.local_state,
        since=float(info.local_stos),
        unacked=info.cur_unacked_updates,
        max_response_delay=info.max_response_delay,
    )


def _route_source(host: str) -> str:
    """This host's address on the route to ``host`` (the DHCP probe's ciaddr and giaddr);
    ``OSError`` when there is none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, 67))  # UDP: nothing is sent
        return str(sock.getsockname()[0])
