"""Judge a failover pair from its OMAPI answers: a pure function of (answers, now).

:func:`evaluate` turns what each server said (or the error it gave) into a
:class:`StatusReport`: per server and relationship the states, times and counters, the
findings an operator needs (communications-interrupted and for how long, disagreement,
split-brain risk, recover-wait end, unreachable servers) and their worst
:class:`~dhcpfoctl.errors.CheckResult`. Rendering lives in ``cli/status.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from dhcpfoctl.errors import CheckResult, worst_of
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi.failover import FailoverInfo, PoolCounts
from dhcpfoctl.times import format_duration, format_relative, iso_utc

#: States in which dhcpd answers DHCP clients (docs/failover-protocol.md §8.1).
SERVING: Final = frozenset(
    {
        FailoverState.NORMAL,
        FailoverState.COMMUNICATIONS_INTERRUPTED,
        FailoverState.PARTNER_DOWN,
    }
)
#: States in which the two servers cannot be talking to each other.
NOT_TALKING: Final = frozenset(
    {
        FailoverState.COMMUNICATIONS_INTERRUPTED,
        FailoverState.PARTNER_DOWN,
        FailoverState.RESOLUTION_INTERRUPTED,
    }
)
#: States dhcpd enters without setting local-stos (docs/failover-protocol.md §8.5, STOS rule):
#: there now - local-stos is not the time spent in them.
STOS_NOT_SET_ON_ENTRY: Final = frozenset({FailoverState.STARTUP, FailoverState.RECOVER_WAIT})
#: Seconds the unacked-updates window must stay full before it is a warning: a bulk update
#: (start-up, recover, a burst of clients) fills it for a moment on a healthy pair.
UNACKED_FOR: Final = 30


@dataclass(frozen=True, slots=True)
class EnduranceEstimate:
    """How long a server's own free leases last while it cannot talk to its partner.

    Estimated from its lease file (see ``dhcpfoctl balance``); ``seconds`` is ``None`` when
    there is no estimate, and ``reason`` says why.
    """

    seconds: int | None
    rate_per_hour: float | None
    window: int
    leases: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ServerAnswer:
    """What querying one server produced (see :mod:`dhcpfoctl.checks.gather`)."""

    label: str
    endpoint: str
    #: relationship name → its failover-state.
    failover: dict[str, FailoverInfo] = field(default_factory=dict)
    #: relationship name → the pools OMAPI could count.
    pools: dict[str, tuple[PoolCounts, ...]] = field(default_factory=dict)
    #: One line when the server could not be queried at all (unreachable, key refused…).
    error: str | None = None
    #: ``error`` is the server's silence (unreachable, timed out), not something it sent.
    silent: bool = False
    #: relationship name → one line, when only that relationship failed (e.g. NOTFOUND).
    relationship_errors: dict[str, str] = field(default_factory=dict)
    signed: bool = False
    notes: tuple[str, ...] = ()
    #: relationship name → endurance from this server's lease file, when readable here.
    endurance: dict[str, EnduranceEstimate] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finding:
    health: CheckResult
    code: str
    message: str
    server: str | None = None
    relationship: str | None = None


@dataclass(frozen=True, slots=True)
class ServerView:
    """One server's view of one relationship, with derived times."""

    server: str
    endpoint: str
    relationship: str
    info: FailoverInfo | None
    error: str | None
    pools: tuple[PoolCounts, ...] = ()
    signed: bool = False
    #: The whole server could not be queried (reported once, not per relationship).
    server_failed: bool = False
    #: The server failed by not answering (see :attr:`ServerAnswer.silent`).
    server_silent: bool = False
    endurance: EnduranceEstimate | None = None

    @property
    def reachable(self) -> bool:
        return self.info is not None

    def time_in_state(self, now: int) -> int | None:
        """now - local-stos; ``None`` when unreachable or local-stos predates the state."""
        if self.info is None or self.info.local_state in STOS_NOT_SET_ON_ENTRY:
            return None
        return max(0, now - self.info.local_stos)

    @property
    def mclt_ends(self) -> int | None:
        """local-stos + MCLT in partner-down (peer's leases usable) and recover-wait (end)."""
        if self.info is None or self.info.local_state not in (
            FailoverState.PARTNER_DOWN,
            FailoverState.RECOVER_WAIT,
        ):
            return None
        return self.info.local_stos + self.info.mclt


@dataclass(frozen=True, slots=True)
class StatusReport:
    now: int
    views: tuple[ServerView, ...]
    findings: tuple[Finding, ...]
    health: CheckResult
    servers: tuple[ServerAnswer, ...] = ()


def unacked_key(server: str, relationship: str) -> str:
    """The key of one (server, relationship) in an unacked-updates memory."""
    return f"{server} {relationship}"


def track_unacked(
    answers: Sequence[ServerAnswer], previous: Mapping[str, int], now: int
) -> dict[str, int]:
    """Since when each (server, relationship) has had its unacked-updates window full, over
    this observation and ``previous`` (the result for the previous observations); one that
    is not full now, or did not answer, is dropped: the window emptied, or nothing is known."""
    since = {}
    for answer in answers:
        for name, info in answer.failover.items():
            if answer.error is None and _window_full(info):
                key = unacked_key(answer.label, name)
                since[key] = min(previous.get(key, now), now)
    return since


def _window_full(info: FailoverInfo) -> bool:
    return bool(info.max_outstanding_updates) and (
        info.cur_unacked_updates >= info.max_outstanding_updates
    )


def evaluate(
    answers: Sequence[ServerAnswer],
    relationships: Sequence[str],
    now: int,
    *,
    unacked_since: Mapping[str, int] | None = None,
    unacked_for: int = UNACKED_FOR,
) -> StatusReport:
    """The report for ``answers`` at time ``now`` (pure: same input, same report).

    ``unacked_since``: :func:`track_unacked` over this and earlier observations (polls of
    ``--watch``, or runs through the state); a full unacked-updates window is a warning only
    once it has stayed full for ``unacked_for`` seconds, else a note (health OK).
    """
    findings: list[Finding] = []
    views: list[ServerView] = []
    for answer in answers:
        if answer.error is not None:
            findings.append(
                Finding(CheckResult.UNKNOWN, "unreachable", answer.error, server=answer.label)
            )
    for name in relationships:
        pair = [_view(answer, name) for answer in answers]
        views += pair
        findings += _judge_relationship(name, pair, now, unacked_since or {}, unacked_for)
    health = worst_of(f.health for f in findings)
    return StatusReport(now, tuple(views), tuple(findings), health, tuple(answers))


def _view(answer: ServerAnswer, name: str) -> ServerView:
    error = answer.error or answer.relationship_errors.get(name)
    info = None if answer.error else answer.failover.get(name)
    if info is None and error is None:
        error = f"{answer.endpoint}: no answer for relationship {name!r}"
    return ServerView(
        server=answer.label,
        endpoint=answer.endpoint,
        relationship=name,
        info=info,
        error=error,
        pools=answer.pools.get(name, ()),
        signed=answer.signed,
        server_failed=answer.error is not None,
        server_silent=answer.silent,
        endurance=answer.endurance.get(name),
    )


def _judge_relationship(
    name: str, pair: list[ServerView], now: int, unacked_since: Mapping[str, int], unacked_for: int
) -> list[Finding]:
    findings: list[Finding] = []

    def add(health: CheckResult, code: str, message: str, view: ServerView | None = None) -> None:
        findings.append(
            Finding(health, code, message, view.server if view else None, relationship=name)
        )

    for view in pair:
        if view.info is None:
            # A whole-server failure is reported once, in evaluate(); this one is only
            # about this relationship (e.g. NOTFOUND for its name).
            if not view.server_failed and view.error:
                add(CheckResult.UNKNOWN, "relationship-error", view.error, view)
            continue
        findings += _judge_state(name, view, pair, now)
        info = view.info
        if _window_full(info):
            full = (
                f"{view.server}: {info.cur_unacked_updates} unacked updates, the limit "
                f"(max-unacked-updates {info.max_outstanding_updates}) is reached"
            )
            since = unacked_since.get(unacked_key(view.server, name), now)
            if since < now and now - since >= unacked_for:
                add(
                    CheckResult.WARNING,
                    "unacked-updates",
                    f"{full} and has stayed so for {format_duration(now - since)}"
                    " (the partner is not acknowledging updates)",
                    view,
                )
            else:
                # One full sample is a bulk update in progress, normal for a moment.
                add(
                    CheckResult.OK,
                    "unacked-updates",
                    f"{full} (normal during a bulk update; a warning if it stays full for"
                    f" {format_duration(unacked_for)})",
                    view,
                )

    alive = [view for view in pair if view.info is not None]
    # With no answer at all (unknown name, both unreachable) nothing is known: UNKNOWN, not
    # CRITICAL; the per-server findings already say why.
    if len(pair) >= 2 and alive and not any(view.info.local_state in SERVING for view in alive):  # type: ignore[union-attr]
        add(CheckResult.CRITICAL, "no-service", f"no server of {name!r} is known to serve DHCP")
    if len(alive) == 2:
        findings += _judge_pair(name, alive[0], alive[1], now)
    return findings


def _judge_state(name: str, view: ServerView, pair: list[ServerView], now: int) -> list[Finding]:
    info = view.info
    assert info is not None
    state = info.local_state
    since = view.time_in_state(now)
    # " for 5m 10s", or nothing where dhcpd does not record when the state began.
    lasting = "" if since is None else f" for {format_duration(since)}"
    who = view.server

    def finding(health: CheckResult, code: str, message: str) -> Finding:
        return Finding(health, code, message, who, name)

    if state == FailoverState.NORMAL:
        return []
    if state == FailoverState.COMMUNICATIONS_INTERRUPTED:
        health, endurance = _endurance_text(view.endurance)
        # A partner whose OMAPI answers here is not down: partner-down would refuse, and
        # forcing it is the split brain.
        if any(v is not view and v.info is not None for v in pair):
            advice = "its partner answers here, so it is not down: restore the failover link"
        else:
            advice = "if the partner is really down, consider `dhcpfoctl partner-down`"
        return [
            finding(
                health,
                "communications-interrupted",
                f"{who}: communications-interrupted{lasting}: serving only its "
                f"own free leases, no load balancing{endurance}; {advice}",
            )
        ]
    if state == FailoverState.PARTNER_DOWN:
        others = [v for v in pair if v is not view and v.info is not None]
        serving_other = [v for v in others if v.info.local_state in SERVING]  # type: ignore[union-attr]
        ends = info.local_stos + info.mclt
        usable = (
            f"the partner's free leases usable {_relative(ends, now)}"
            if ends > now
            else "the partner's free leases are usable"
        )
        if serving_other:
            other = serving_other[0]
            return [
                finding(
                    CheckResult.CRITICAL,
                    "split-brain-risk",
                    f"{who} is in partner-down while {other.server} is reachable and "
                    f"{other.info.local_state.keyword}: both may hand out the same "  # type: ignore[union-attr]
                    f"addresses (split-brain risk); stop dhcpd on {other.server} or restore "
                    "their failover link",
                )
            ]
        return [
            finding(
                CheckResult.WARNING,
                "partner-down",
                f"{who}: partner-down{lasting}; {usable}",
            )
        ]
    if state == FailoverState.RECOVER_WAIT:
        ends = info.local_stos + info.mclt
        return [
            finding(
                CheckResult.WARNING,
                "recover-wait",
                f"{who}: recover-wait, not serving until {_relative(ends, now)} "
                f"(local-stos + MCLT {format_duration(info.mclt)})",
            )
        ]
    if state in (FailoverState.RESOLUTION_INTERRUPTED, FailoverState.UNKNOWN_STATE) or (
        state.name.startswith("UNKNOWN_")
    ):
        return [
            finding(
                CheckResult.CRITICAL,
                "not-serving",
                f"{who}: {state.keyword}{lasting}: not serving DHCP; "
                "it needs the partner back (or an operator decision)",
            )
        ]
    if state in (FailoverState.SHUTDOWN, FailoverState.PAUSED):
        why = "stopped administratively; its partner should be in partner-down"
    else:
        why = "resynchronising with its partner"
    return [
        finding(
            CheckResult.WARNING,
            "transition",
            f"{who}: {state.keyword}{lasting}: not serving DHCP ({why})",
        )
    ]


def _judge_pair(name: str, a: ServerView, b: ServerView, now: int) -> list[Finding]:
    findings: list[Finding] = []
    ai, bi = a.info, b.info
    assert ai is not None and bi is not None
    if ai.hierarchy == bi.hierarchy:
        findings.append(
            Finding(
                CheckResult.CRITICAL,
                "same-role",
                f"{a.server} and {b.server} are both {ai.role} for {name!r}: is one "
                "server listed twice?",
                relationship=name,
            )
        )
        return findings
    if ai.local_state in NOT_TALKING and bi.local_state in NOT_TALKING:
        return findings  # neither can know the other's state; the state findings say enough
    for viewer, viewed in ((a, b), (b, a)):
        vi, di = viewer.info, viewed.info
        assert vi is not None and di is not None
        # A state change reaches the partner within max-response-delay; younger ones may
        # simply be in flight.
        recent = now - di.local_stos <= max(vi.max_response_delay, di.max_response_delay)
        if vi.partner_state != di.local_state and not recent:
            findings.append(
                Finding(
                    CheckResult.WARNING,
                    "disagreement",
                    f"{viewer.server} believes {viewed.server} is "
                    f"{vi.partner_state.keyword}, but {viewed.server} says "
                    f"{di.local_state.keyword}",
                    viewer.server,
                    name,
                )
            )
    return findings


def _endurance_text(estimate: EnduranceEstimate | None) -> tuple[CheckResult, str]:
    """Result and message fragment for the endurance of a cut-off server."""
    if estimate is None:
        return CheckResult.WARNING, ""
    if estimate.seconds is None:
        # The reason may carry its own parentheses; a colon keeps them from nesting.
        return CheckResult.WARNING, f"; endurance unknown: {estimate.reason or 'no drain'}"
    if estimate.seconds == 0:
        return CheckResult.CRITICAL, "; it has NO free leases of its own left for new clients"
    rate = f"{estimate.rate_per_hour:.1f}" if estimate.rate_per_hour is not None else "?"
    return CheckResult.WARNING, (
        f"; its own free leases last about {format_duration(estimate.seconds)} at "
        f"{rate} new clients/h (from {estimate.leases}, last {format_duration(estimate.window)})"
    )


def _relative(epoch: int, now: int) -> str:
    return f"{iso_utc(epoch)} ({format_relative(epoch, now)})"
