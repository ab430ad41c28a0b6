"""The watcher's decision core for one failover relationship, sans-IO.

Theory of operation
===================

Each poll the service hands :meth:`RelationshipPolicy.observe` an :class:`Observation`:
both servers' OMAPI readings at ``now`` and, when a server is in
communications-interrupted (the *local* server of an incident; its partner the *partner*),
what the service learnt about that partner: every probe's outcome (OMAPI, failover port,
DHCP), the unanswered-clients evidence from the local lease journal, and the witnesses'
verdict (or that none are configured). The policy answers with events (:class:`Transition`,
:class:`Alert`, :class:`AlertCleared`, :class:`Veto`, :class:`Act`) and a next deadline; the
service performs an :class:`Act` (or, in dry-run, only reports it) and feeds the outcome
back with :meth:`RelationshipPolicy.outcome`.

Automatic partner-down needs ALL of (the issue's four conditions, plus a window):

1. the local server has been in communications-interrupted for at least
   ``interrupted_for`` (T), measured from its own ``local-stos``;
2. every probe of the partner failed (refused or silent after its retries), and the
   partner's OMAPI gave nothing in the poll either;
3. the local lease journal shows at least ``min_unanswered`` clients of the partner's hash
   buckets served here since the interruption began (see :mod:`dhcpfoctl.watch.probes`);
4. when witnesses are configured: their verdict is "dead" (reachable, quorum agrees, none
   saw the partner alive within the window);

and the partner has not answered anything (probe or OMAPI) for ``alive_window`` seconds as
seen by this watcher. Anything else is doubt: no action, and a :class:`Veto` naming why
once T has passed (an unknown probe, an unreadable server or lease file, etcd unreachable,
a witness that saw the partner alive, no evidence yet).

The phases and what moves them are ONE table, :data:`TABLE`, keyed by (phase, event); the
event of an observation is derived by :func:`classify`. A pair missing from the table is a
bug with a safe outcome: the phase stays and an alert says so. One incident (keyed by the
local server and its ``local-stos`` of communications-interrupted) gets at most one action:
after :attr:`Event.EVIDENCE` the phase is ACTING, then DONE whatever the outcome, and DONE
only ends when the incident does (no server left in communications-interrupted or
partner-down, or a newer interruption).

Transitions of each server's state and the stuck-link alert (a server in
communications-interrupted for ``stuck_after`` while its partner answers) are recorded
whatever the phase: they are observations, not decisions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from dhcpfoctl.checks.health import STOS_NOT_SET_ON_ENTRY
from dhcpfoctl.model import FailoverState
from dhcpfoctl.times import format_duration

S = FailoverState
#: The default stuck-link threshold, in max-response-delays (dhcpd leaves normal after one).
STUCK_DELAYS: Final = 3
#: The stuck-link threshold when neither is known.
STUCK_DEFAULT: Final = 60.0
#: local-stos is whole seconds, truncated: the state may have begun up to this much later.
STOS_RESOLUTION: Final = 1.0
#: Where the incident's action leaves the local server; seeing it ends the waiting.
TAKEN_OVER: Final = S.PARTNER_DOWN


# -- inputs ---------------------------------------------------------------------------


class ProbeOutcome(enum.StrEnum):
    """What one probe of the partner gave, after its retries."""

    ANSWERED = "answered"  # the partner (or its host's dhcpd) answered: alive
    REFUSED = "refused"  # its host said nothing listens there: dead
    SILENT = "silent"  # no answer at all: dead, or cut off from here
    ERROR = "error"  # the probe could not be made (local failure): unknown


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str  # omapi | failover | dhcp
    target: str  # HOST:PORT probed
    outcome: ProbeOutcome
    detail: str
    attempts: int = 1

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "target": self.target,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class ServerReading:
    """One server's failover-state for the relationship as the poll read it."""

    label: str
    state: FailoverState | None  # None: could not be read
    since: float | None = None  # local-stos
    unacked: int | None = None
    error: str | None = None
    #: The read failed by silence (unreachable, timed out) rather than by an answer.
    silent: bool = False
    max_response_delay: int | None = None

    @property
    def answered(self) -> bool:
        """Something answered: a state, or an error the server itself sent (a key refused)."""
        return self.state is not None or (self.error is not None and not self.silent)


@dataclass(frozen=True, slots=True)
class Unanswered:
    """Clients of the partner's hash buckets the local server served since ``since``."""

    #: Clients that held a lease before the interruption and renewed it here (their
    #: server did not answer their renewal, so they broadcast).
    rebinding: int
    #: Clients bound here for the first time since the interruption.
    new: int
    since: float
    source: str

    @property
    def total(self) -> int:
        return self.rebinding + self.new

    def to_json(self) -> dict[str, object]:
        return {
            "rebinding": self.rebinding,
            "new": self.new,
            "total": self.total,
            "since": self.since,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class WitnessInput:
    """The witnesses' verdict on the partner (see :mod:`dhcpfoctl.watch.witness`)."""

    reachable: bool
    dead: bool
    saw_alive: tuple[str, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class Observation:
    now: float
    servers: tuple[ServerReading, ...]
    #: Probes of the incident's partner (empty when none were made this poll).
    probes: tuple[ProbeResult, ...] = ()
    #: The local lease journal's evidence, or one line saying why there is none.
    unanswered: Unanswered | str | None = None
    #: ``None``: no witnesses configured; else their verdict, or a line why there is none.
    witness: WitnessInput | str | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    interrupted_for: float  # T
    #: None: :data:`STUCK_DELAYS` times the local server's max-response-delay.
    stuck_after: float | None
    #: The partner must have been silent to every probe for this long, as seen from here.
    alive_window: float
    min_unanswered: int = 1
    witnesses: bool = False


def incident_pair(servers: Sequence[ServerReading]) -> tuple[int, int] | None:
    """(local, partner) indexes of the incident: the server in communications-interrupted
    (else one in partner-down, the aftermath of an incident), or ``None``.

    The service probes the partner it names; both in communications-interrupted means both
    answer, which the policy sees as the partner alive whichever is picked.
    """
    if len(servers) != 2:
        return None
    for wanted in (S.COMMUNICATIONS_INTERRUPTED, TAKEN_OVER):
        for index, reading in enumerate(servers):
            if reading.state == wanted:
                return index, 1 - index
    return None


# -- outputs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """A server's state changed (``unreachable`` is a state here too)."""

    relationship: str
    server: str
    old: str | None  # None: first seen
    new: str
    at: float
    #: How long ``old`` lasted (None when its start is unknown).
    previous_duration: float | None


@dataclass(frozen=True, slots=True)
class Alert:
    relationship: str
    code: str  # stuck-link | unreadable | action-failed | table
    message: str


@dataclass(frozen=True, slots=True)
class AlertCleared:
    relationship: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Veto:
    """T has passed but something forbids acting; ``reasons``, one line each."""

    relationship: str
    incident: str
    reasons: tuple[str, ...]
    probes: tuple[ProbeResult, ...] = ()


@dataclass(frozen=True, slots=True)
class Act:
    """Every condition holds: force partner-down on ``local`` (the service decides whether
    this is ``--act`` or a dry run)."""

    relationship: str
    incident: str
    local: str
    partner: str
    #: One line per condition, each saying why it holds.
    reasons: tuple[str, ...]
    probes: tuple[ProbeResult, ...]
    unanswered: Unanswered
    witness: str | None


@dataclass(frozen=True, slots=True)
class Resolved:
    """What became of an action whose outcome the journal lacked (a restart mid-action),
    judged from a fresh reading of the local server."""

    relationship: str
    incident: str
    reached: bool
    detail: str


@dataclass(frozen=True, slots=True)
class IncidentOver:
    """No server is in communications-interrupted or partner-down any more."""

    relationship: str
    incident: str


Event_ = Transition | Alert | AlertCleared | Veto | Act | Resolved | IncidentOver


# -- the table ------------------------------------------------------------------------


class Phase(enum.StrEnum):
    IDLE = "idle"  # no incident
    WAITING = "waiting"  # an incident, not every condition met
    ACTING = "acting"  # the action was handed out, its outcome not back yet
    DONE = "done"  # this incident's one action (or would-act) is spent, or not needed
    UNCERTAIN = "uncertain"  # restarted with an intent and no outcome: read back first


class Event(enum.StrEnum):
    CLEAR = "clear"  # no server in communications-interrupted or partner-down
    INTERRUPTED = "interrupted"  # an incident, some condition missing
    EVIDENCE = "evidence"  # every condition holds
    TAKEN_OVER = "taken-over"  # the local server is in partner-down
    UNKNOWN = "unknown"  # the servers cannot be read: nothing can be judged
    OUTCOME_OK = "outcome-ok"  # performed and read back
    OUTCOME_FAILED = "outcome-failed"  # refused or failed: nothing (provably) changed
    OUTCOME_DRY_RUN = "outcome-dry-run"  # reported as would-act, not performed


class Do(enum.Enum):
    """What a row does besides moving."""

    NOTHING = "nothing"
    START = "start the incident"
    END = "end the incident"
    VETO = "report why not (once per reason set)"
    ACT = "hand out the action"
    RECORD_DONE = "the action is spent"
    ALERT_FAILED = "alert: the action failed"
    TAKEN_BY_OTHER = "note: the local server was taken over without this watcher"
    RESOLVE_REACHED = "the pending action reached its state"
    RESOLVE_NOT_REACHED = "the pending action did not reach its state"
    ALERT_UNREADABLE = "alert: cannot read the servers"


@dataclass(frozen=True, slots=True)
class Row:
    next: Phase
    do: Do = Do.NOTHING
    why: str = ""


P, E = Phase, Event

#: THE table: ``(phase, event)`` → :class:`Row`.
TABLE: Final[dict[tuple[Phase, Event], Row]] = {
    # -- idle: nothing going on -----------------------------------------------------------
    (P.IDLE, E.CLEAR): Row(P.IDLE),
    (P.IDLE, E.INTERRUPTED): Row(P.WAITING, Do.START, "communications-interrupted seen"),
    # A watcher started mid-incident acts at once only if everything already holds,
    # the alive window included (which it must have observed itself).
    (P.IDLE, E.EVIDENCE): Row(P.ACTING, Do.ACT, "every condition holds"),
    (P.IDLE, E.TAKEN_OVER): Row(P.DONE, Do.TAKEN_BY_OTHER, "already partner-down"),
    (P.IDLE, E.UNKNOWN): Row(P.IDLE, Do.ALERT_UNREADABLE),
    # -- waiting: an incident, not (yet) every condition ----------------------------------
    (P.WAITING, E.CLEAR): Row(P.IDLE, Do.END, "the incident is over"),
    (P.WAITING, E.INTERRUPTED): Row(P.WAITING, Do.VETO),
    (P.WAITING, E.EVIDENCE): Row(P.ACTING, Do.ACT, "every condition holds"),
    (P.WAITING, E.TAKEN_OVER): Row(P.DONE, Do.TAKEN_BY_OTHER, "someone else forced it"),
    (P.WAITING, E.UNKNOWN): Row(P.WAITING, Do.ALERT_UNREADABLE),
    # -- acting: the one action is out; observations change nothing until it returns ------
    (P.ACTING, E.OUTCOME_OK): Row(P.DONE, Do.RECORD_DONE),
    (P.ACTING, E.OUTCOME_FAILED): Row(P.DONE, Do.ALERT_FAILED, "never retried for an incident"),
    (P.ACTING, E.OUTCOME_DRY_RUN): Row(P.DONE, why="dry run: reported once per incident"),
    (P.ACTING, E.CLEAR): Row(P.ACTING),
    (P.ACTING, E.INTERRUPTED): Row(P.ACTING),
    (P.ACTING, E.EVIDENCE): Row(P.ACTING),
    (P.ACTING, E.TAKEN_OVER): Row(P.ACTING),
    (P.ACTING, E.UNKNOWN): Row(P.ACTING),
    # -- done: one action per incident, until the incident ends ---------------------------
    (P.DONE, E.CLEAR): Row(P.IDLE, Do.END, "the incident is over"),
    (P.DONE, E.INTERRUPTED): Row(P.DONE),
    (P.DONE, E.EVIDENCE): Row(P.DONE, why="this incident's action is spent"),
    (P.DONE, E.TAKEN_OVER): Row(P.DONE),
    (P.DONE, E.UNKNOWN): Row(P.DONE, Do.ALERT_UNREADABLE),
    # -- uncertain: an intent without outcome in the journal: the reading decides ---------
    (P.UNCERTAIN, E.TAKEN_OVER): Row(P.DONE, Do.RESOLVE_REACHED, "read back: partner-down"),
    (P.UNCERTAIN, E.INTERRUPTED): Row(P.WAITING, Do.RESOLVE_NOT_REACHED, "read back: not"),
    (P.UNCERTAIN, E.EVIDENCE): Row(P.WAITING, Do.RESOLVE_NOT_REACHED, "read back: not"),
    (P.UNCERTAIN, E.CLEAR): Row(P.IDLE, Do.RESOLVE_NOT_REACHED, "the incident is over"),
    (P.UNCERTAIN, E.UNKNOWN): Row(P.UNCERTAIN, Do.ALERT_UNREADABLE, "cannot read back yet"),
}


# -- classification -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Judgement:
    """An observation's event, with the lines that explain it."""

    event: Event
    incident: str | None = None
    local: str | None = None
    partner: str | None = None
    #: Why acting is not allowed (empty for EVIDENCE).
    doubts: tuple[str, ...] = ()
    #: Why each condition holds (complete for EVIDENCE).
    reasons: tuple[str, ...] = ()
    #: condition 1 holds (T passed): doubts are then worth a veto.
    due: bool = False
    #: Alive as this watcher or a witness saw it.
    partner_alive: bool = False
    #: Something answered this watcher's own probes or poll (the silence window's input).
    answered_here: bool = False


def classify(
    obs: Observation,
    limits: Thresholds,
    partner_silent_since: float | None,
) -> Judgement:
    """The event of ``obs``. ``partner_silent_since``: since when this watcher has seen the
    incident's partner answer nothing (None: it answered in the last poll, or never
    observed)."""
    if not any(reading.state is not None for reading in obs.servers):
        return Judgement(Event.UNKNOWN, doubts=("no server of the relationship could be read",))
    pair = incident_pair(obs.servers)
    if pair is None:
        return Judgement(Event.CLEAR)
    local, partner = obs.servers[pair[0]], obs.servers[pair[1]]
    assert local.state is not None
    incident = f"{local.label}@{int(local.since or 0)}"
    base = {"incident": incident, "local": local.label, "partner": partner.label}
    if local.state == TAKEN_OVER:
        return Judgement(Event.TAKEN_OVER, **base)
    doubts: list[str] = []
    reasons: list[str] = []
    alive = partner.answered or any(p.outcome is ProbeOutcome.ANSWERED for p in obs.probes)
    answered_here = alive

    # 1. long enough in communications-interrupted
    since = local.since
    if since is None or since > obs.now + 1:
        doubts.append(f"{local.label}'s local-stos is unusable ({since}): cannot time it")
        due = False
    else:
        lasted = obs.now - since
        due = lasted >= limits.interrupted_for + STOS_RESOLUTION
        line = (
            f"{local.label} communications-interrupted for {format_duration(int(lasted))}"
            f" (T = {format_duration(int(limits.interrupted_for))})"
        )
        (reasons if due else doubts).append(line)

    # 2. every probe failed, and OMAPI said nothing in the poll
    if partner.answered:
        said = partner.state.keyword if partner.state is not None else partner.error
        doubts.append(f"partner {partner.label} answers OMAPI ({said})")
    if not obs.probes:
        doubts.append(f"partner {partner.label} not probed")
    for probe in obs.probes:
        line = f"probe {probe.name} {probe.target}: {probe.outcome.value} ({probe.detail})"
        if probe.outcome in (ProbeOutcome.REFUSED, ProbeOutcome.SILENT):
            reasons.append(line)
        else:
            doubts.append(line)
    if partner_silent_since is None:
        if not alive:
            doubts.append(f"partner {partner.label} not yet observed silent")
    else:
        quiet = obs.now - partner_silent_since
        line = (
            f"partner {partner.label} silent to every probe for {format_duration(int(quiet))}"
            f" (window {format_duration(int(limits.alive_window))})"
        )
        (reasons if quiet >= limits.alive_window else doubts).append(line)

    # 3. clients of the partner served here
    evidence = obs.unanswered
    if not isinstance(evidence, Unanswered):
        doubts.append(f"unanswered clients unknown: {evidence or 'no lease journal read'}")
    else:
        line = (
            f"{evidence.total} client(s) of the partner's buckets served here since the"
            f" interruption ({evidence.rebinding} rebinding, {evidence.new} new;"
            f" {evidence.source}; at least {limits.min_unanswered} needed)"
        )
        (reasons if evidence.total >= limits.min_unanswered else doubts).append(line)

    # 4. witnesses
    witness = obs.witness
    if limits.witnesses:
        if not isinstance(witness, WitnessInput):
            doubts.append(f"witnesses: no verdict ({witness or 'not asked'})")
        elif witness.saw_alive:
            alive = True
            doubts.append(f"witnesses saw the partner alive: {witness.summary}")
        elif not (witness.reachable and witness.dead):
            doubts.append(f"witnesses: {witness.summary}")
        else:
            reasons.append(f"witnesses: {witness.summary}")
    else:
        reasons.append("witnesses: none configured")

    event = Event.INTERRUPTED if doubts else Event.EVIDENCE
    return Judgement(
        event,
        **base,
        doubts=tuple(doubts),
        reasons=tuple(reasons),
        due=due,
        partner_alive=alive,
        answered_here=answered_here,
    )


# -- the policy -----------------------------------------------------------------------


@dataclass(slots=True)
class Memory:
    """What the policy keeps between polls (and the journal restores after a restart)."""

    phase: Phase = Phase.IDLE
    incident: str | None = None
    #: server label → (state keyword or "unreachable", since when).
    states: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    partner_silent_since: float | None = None
    last_veto: tuple[str, ...] = ()
    alerts: dict[str, str] = field(default_factory=dict)
    actions_taken: int = 0


class RelationshipPolicy:
    """The decisions for one relationship (see the module docstring)."""

    def __init__(self, relationship: str, limits: Thresholds, memory: Memory | None = None) -> None:
        self.relationship = relationship
        self.limits = limits
        self.memory = memory if memory is not None else Memory()
        self._deadline: float | None = None

    @property
    def phase(self) -> Phase:
        return self.memory.phase

    def next_deadline(self) -> float | None:
        """When a condition may next come true without anything changing (T reached, the
        window passed), for the service to poll then at the latest."""
        return self._deadline

    def observe(self, obs: Observation) -> list[Event_]:
        events: list[Event_] = self._transitions(obs)
        judgement = classify(obs, self.limits, self.memory.partner_silent_since)
        self._track_partner(obs, judgement)
        # Re-classify with the updated silence start: the first silent poll counts.
        judgement = classify(obs, self.limits, self.memory.partner_silent_since)
        if (
            self.memory.phase in (Phase.WAITING, Phase.DONE)
            and judgement.incident is not None
            and self.memory.incident is not None
            and judgement.incident != self.memory.incident
            and judgement.event is not Event.TAKEN_OVER
        ):
            # A newer interruption without a clear poll between: the old incident is over.
            events += self._step(Judgement(Event.CLEAR), obs)
        events += self._stuck_link(obs, judgement)
        events += self._blind_probes(obs, judgement)
        events += self._step(judgement, obs)
        self._deadline = self._compute_deadline(obs, judgement)
        return events

    def outcome(self, event: Event, detail: str) -> list[Event_]:
        """The result of the :class:`Act` handed out: ``OUTCOME_OK``, ``OUTCOME_FAILED`` or
        ``OUTCOME_DRY_RUN``."""
        if event not in (Event.OUTCOME_OK, Event.OUTCOME_FAILED, Event.OUTCOME_DRY_RUN):
            raise ValueError(f"{event} is not an outcome")
        return self._step(Judgement(event, incident=self.memory.incident, doubts=(detail,)), None)

    # -- internals

    def _step(self, judgement: Judgement, obs: Observation | None) -> list[Event_]:
        memory = self.memory
        row = TABLE.get((memory.phase, judgement.event))
        if row is None:
            return [
                Alert(
                    self.relationship,
                    "table",
                    f"no rule for ({memory.phase.value}, {judgement.event.value}); nothing done",
                )
            ]
        events: list[Event_ | None] = []
        do = row.do
        if do is Do.START:
            memory.incident = judgement.incident
            memory.last_veto = ()
        elif do is Do.END:
            events.append(IncidentOver(self.relationship, str(memory.incident)))
            memory.incident = None
            memory.last_veto = ()
            memory.partner_silent_since = None
            events += self._clear_alerts()
        elif do is Do.VETO:
            if judgement.due and judgement.doubts != memory.last_veto:
                memory.last_veto = judgement.doubts
                probes = obs.probes if obs is not None else ()
                events.append(
                    Veto(self.relationship, str(judgement.incident), judgement.doubts, probes)
                )
        elif do is Do.ACT:
            assert obs is not None and isinstance(obs.unanswered, Unanswered)
            memory.incident = judgement.incident
            witness = obs.witness.summary if isinstance(obs.witness, WitnessInput) else None
            events.append(
                Act(
                    self.relationship,
                    str(judgement.incident),
                    str(judgement.local),
                    str(judgement.partner),
                    judgement.reasons,
                    obs.probes,
                    obs.unanswered,
                    witness,
                )
            )
        elif do is Do.RECORD_DONE:
            memory.actions_taken += 1
        elif do is Do.ALERT_FAILED:
            events.append(
                self._alert(
                    "action-failed",
                    f"automatic partner-down failed ({'; '.join(judgement.doubts)}); not retried"
                    " for this incident: act by hand",
                )
            )
        elif do is Do.TAKEN_BY_OTHER:
            memory.incident = judgement.incident
        elif do in (Do.RESOLVE_REACHED, Do.RESOLVE_NOT_REACHED):
            reached = do is Do.RESOLVE_REACHED
            if reached:
                memory.actions_taken += 1
            events.append(Resolved(self.relationship, str(memory.incident), reached, row.why))
            if do is Do.RESOLVE_NOT_REACHED and row.next is Phase.IDLE:
                memory.incident = None
        elif do is Do.ALERT_UNREADABLE:
            events.append(self._alert("unreadable", "; ".join(judgement.doubts)))
        if do is not Do.ALERT_UNREADABLE and judgement.event is not Event.UNKNOWN:
            events += self._clear_alerts(("unreadable",))
        memory.phase = row.next
        return [e for e in events if e is not None]

    def _alert(self, code: str, message: str) -> Alert | None:
        """The alert, unless one of its code is already active (an alert fires once, not
        once per poll; its cleared event ends it)."""
        if code in self.memory.alerts:
            return None
        self.memory.alerts[code] = message
        return Alert(self.relationship, code, message)

    def _clear_alerts(self, codes: Sequence[str] | None = None) -> list[Event_]:
        cleared: list[Event_] = []
        for code in list(self.memory.alerts):
            if codes is None or code in codes:
                message = self.memory.alerts.pop(code)
                cleared.append(AlertCleared(self.relationship, code, message))
        return cleared

    def _transitions(self, obs: Observation) -> list[Event_]:
        events: list[Event_] = []
        for reading in obs.servers:
            new = reading.state.keyword if reading.state is not None else "unreachable"
            entered = obs.now
            if reading.state is not None and reading.state not in STOS_NOT_SET_ON_ENTRY:
                entered = reading.since if reading.since is not None else obs.now
            old = self.memory.states.get(reading.label)
            if old is not None and old[0] == new:
                continue
            at = entered
            duration = None if old is None or old[1] is None else max(0.0, at - old[1])
            self.memory.states[reading.label] = (new, at)
            events.append(
                Transition(self.relationship, reading.label, old[0] if old else None, new, at,
                           duration)
            )  # fmt: skip
        return events

    def _track_partner(self, obs: Observation, judgement: Judgement) -> None:
        if judgement.event not in (Event.INTERRUPTED, Event.EVIDENCE):
            if judgement.event is Event.CLEAR:
                self.memory.partner_silent_since = None
            return
        probed = bool(obs.probes) and all(
            p.outcome in (ProbeOutcome.REFUSED, ProbeOutcome.SILENT) for p in obs.probes
        )
        if judgement.answered_here or not probed:
            self.memory.partner_silent_since = None
        elif self.memory.partner_silent_since is None:
            self.memory.partner_silent_since = obs.now

    def _stuck_link(self, obs: Observation, judgement: Judgement) -> list[Event_]:
        pair = incident_pair(obs.servers)
        stuck = (
            pair is not None
            and judgement.event in (Event.INTERRUPTED, Event.EVIDENCE)
            and judgement.partner_alive
        )
        if stuck and pair is not None:
            local = obs.servers[pair[0]]
            lasted = obs.now - (local.since or obs.now)
            if lasted >= self._stuck_after(local):
                alert = self._alert(
                    "stuck-link",
                    f"{local.label} has been communications-interrupted for"
                    f" {format_duration(int(lasted))} while its partner"
                    f" {obs.servers[pair[1]].label} answers: the failover link is down,"
                    " not the partner (no partner-down; check the link, or restart it)",
                )
                return [alert] if alert is not None else []
            return []
        if "stuck-link" in self.memory.alerts and judgement.event is not Event.UNKNOWN:
            return self._clear_alerts(("stuck-link",))
        return []

    def _blind_probes(self, obs: Observation, judgement: Judgement) -> list[Event_]:
        """A probe silent while another shows the partner alive cannot see it at all (a
        wrong port, a ciaddr the partner ignores): it would look dead when it dies too."""
        if not judgement.answered_here:
            return []
        blind = [p for p in obs.probes if p.outcome is ProbeOutcome.SILENT]
        if not blind:
            return []
        names = ", ".join(f"{p.name} {p.target}" for p in blind)
        alert = self._alert(
            "blind-probe",
            f"probe(s) {names} get no answer from a partner that answers otherwise: check"
            " their addresses and ports (a blind probe proves nothing when the partner dies)",
        )
        return [alert] if alert is not None else []

    def _stuck_after(self, local: ServerReading) -> float:
        if self.limits.stuck_after is not None:
            return self.limits.stuck_after
        if local.max_response_delay:
            return float(STUCK_DELAYS * local.max_response_delay)
        return STUCK_DEFAULT

    def _compute_deadline(self, obs: Observation, judgement: Judgement) -> float | None:
        pair = incident_pair(obs.servers)
        if pair is None or judgement.event is not Event.INTERRUPTED:
            return None
        local = obs.servers[pair[0]]
        candidates = []
        if local.since is not None:
            candidates += [
                local.since + self.limits.interrupted_for + STOS_RESOLUTION,
                local.since + self._stuck_after(local),
            ]
        if self.memory.partner_silent_since is not None:
            candidates.append(self.memory.partner_silent_since + self.limits.alive_window)
        future = [t for t in candidates if t > obs.now]
        return min(future) if future else None


def restore(
    relationship: str,
    limits: Thresholds,
    *,
    states: Mapping[str, tuple[str, float | None]],
    incident: str | None,
    intent_pending: bool,
    acted: bool,
    actions_taken: int,
    partner_silent_since: float | None = None,
) -> RelationshipPolicy:
    """A policy resumed from the journal: the last states seen, the incident acted on (or
    an intent whose outcome is missing: UNCERTAIN until a reading decides)."""
    phase = Phase.IDLE
    if intent_pending:
        phase = Phase.UNCERTAIN
    elif acted:
        phase = Phase.DONE
    memory = Memory(
        phase=phase,
        incident=incident if phase is not Phase.IDLE else None,
        states=dict(states),
        actions_taken=actions_taken,
        partner_silent_since=partner_silent_since if phase is not Phase.IDLE else None,
    )
    return RelationshipPolicy(relationship, limits, memory)
