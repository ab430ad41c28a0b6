"""The watcher's decision core (dhcpfoctl.watch.policy): the table, the conditions, and
hypothesis state machines for the safety properties."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dhcpfoctl.model import FailoverState
from dhcpfoctl.watch.policy import (
    TABLE,
    Act,
    Alert,
    AlertCleared,
    Event,
    Observation,
    Phase,
    ProbeOutcome,
    ProbeResult,
    RelationshipPolicy,
    Resolved,
    ServerReading,
    Thresholds,
    Transition,
    Unanswered,
    Veto,
    WitnessInput,
    restore,
)

S = FailoverState
CI = S.COMMUNICATIONS_INTERRUPTED
LIMITS = Thresholds(interrupted_for=30, stuck_after=60, alive_window=10)


def dead_probes(outcome: ProbeOutcome = ProbeOutcome.REFUSED) -> tuple[ProbeResult, ...]:
    return tuple(
        ProbeResult(name, f"127.0.0.1:{port}", outcome, "test")
        for name, port in (("omapi", 7911), ("failover", 647), ("dhcp", 67))
    )


def evidence(total: int = 3) -> Unanswered:
    return Unanswered(rebinding=1, new=total - 1, since=1000, source="a.leases")


def obs(
    now: float,
    local: S | None = CI,
    *,
    since: float = 1000,
    partner: S | None = None,
    probes: tuple[ProbeResult, ...] = (),
    unanswered: Unanswered | str | None = None,
    witness: WitnessInput | str | None = None,
) -> Observation:
    return Observation(
        now=now,
        servers=(
            ServerReading("a", local, since=since, unacked=0),
            ServerReading(
                "b",
                partner,
                since=900 if partner else None,
                silent=partner is None,
                error=None if partner else "timed out",
            ),
        ),
        probes=probes,
        unanswered=unanswered,
        witness=witness,
    )


def kinds(events: list) -> list[type]:
    return [type(e) for e in events]


def test_every_phase_has_a_row_for_every_observation_event() -> None:
    observed = (Event.CLEAR, Event.INTERRUPTED, Event.EVIDENCE, Event.TAKEN_OVER, Event.UNKNOWN)
    for phase in Phase:
        for event in observed:
            assert (phase, event) in TABLE, (phase, event)
    # outcomes arrive only while an action is out
    assert {e for (p, e) in TABLE if p is Phase.ACTING} == set(Event)


def test_acts_once_after_t_with_every_condition_and_reasons_name_them() -> None:
    policy = RelationshipPolicy("lab", LIMITS)
    dead = dead_probes()
    # before T: nothing but the transition and the waiting
    events = policy.observe(obs(1010, probes=dead, unanswered=evidence()))
    assert not [e for e in events if isinstance(e, Act | Veto)]
    assert policy.phase is Phase.WAITING
    assert policy.next_deadline() == 1020  # the window ends before T
    events = policy.observe(obs(1031, probes=dead, unanswered=evidence()))
    (act,) = [e for e in events if isinstance(e, Act)]
    assert act.local == "a" and act.partner == "b" and act.incident == "a@1000"
    text = "\n".join(act.reasons)
    for word in (
        "communications-interrupted for",
        "probe omapi",
        "probe failover",
        "probe dhcp",
        "silent to every probe",
        "3 client(s)",
        "none configured",
    ):
        assert word in text
    assert policy.phase is Phase.ACTING
    # while out, and after the outcome: never a second action for this incident
    assert not [
        e
        for e in policy.observe(obs(1033, probes=dead, unanswered=evidence()))
        if isinstance(e, Act)
    ]
    policy.outcome(Event.OUTCOME_OK, "verified")
    assert policy.memory.actions_taken == 1
    for now in (1040, 1050):
        assert not [
            e
            for e in policy.observe(obs(now, probes=dead, unanswered=evidence()))
            if isinstance(e, Act)
        ]


def test_each_missing_condition_vetoes_once_with_its_reason() -> None:
    dead = dead_probes()
    cases = {
        "answered": dict(
            probes=(*dead[:2], replace(dead[2], outcome=ProbeOutcome.ANSWERED)),
            unanswered=evidence(),
        ),
        "error": dict(
            probes=(*dead[:2], replace(dead[2], outcome=ProbeOutcome.ERROR)), unanswered=evidence()
        ),
        "not probed": dict(unanswered=evidence()),
        "unanswered clients unknown": dict(probes=dead, unanswered="cannot read a.leases"),
        "0 client(s)": dict(probes=dead, unanswered=evidence(0)),
        "answers OMAPI": dict(probes=dead, unanswered=evidence(), partner=S.NORMAL),
    }
    for needle, kwargs in cases.items():
        policy = RelationshipPolicy("lab", LIMITS)
        for now in (1001, 1020, 1040, 1050):
            events = policy.observe(obs(now, **kwargs))
            assert not [e for e in events if isinstance(e, Act)], needle
        # one veto (once T passed), not one per poll
        policy2 = RelationshipPolicy("lab", LIMITS)
        vetoes = [
            e
            for now in (1001, 1020, 1040, 1050)
            for e in policy2.observe(obs(now, **kwargs))
            if isinstance(e, Veto)
        ]
        assert len(vetoes) == 1 and any(needle in r for r in vetoes[0].reasons), needle


def test_witnesses_when_configured_are_a_fourth_condition() -> None:
    limits = replace(LIMITS, witnesses=True)
    dead = dead_probes(ProbeOutcome.SILENT)
    verdicts = {
        "saw": WitnessInput(True, False, ("ny",), "ny saw it alive 3s ago"),
        "quorum": WitnessInput(True, False, (), "1 of 2 agree dead"),
        "etcd": WitnessInput(False, False, (), "etcd unreachable"),
        "none": "etcd 127.0.0.1:2379: connection refused",
    }
    for name, verdict in verdicts.items():
        policy = RelationshipPolicy("lab", limits)
        for now in (1001, 1020, 1040):
            events = policy.observe(obs(now, probes=dead, unanswered=evidence(), witness=verdict))
            assert not [e for e in events if isinstance(e, Act)], name
    policy = RelationshipPolicy("lab", limits)
    ok = WitnessInput(True, True, (), "2 of 2 agree dead")
    acts = [
        e
        for now in (1001, 1020, 1040)
        for e in policy.observe(obs(now, probes=dead, unanswered=evidence(), witness=ok))
        if isinstance(e, Act)
    ]
    assert len(acts) == 1 and acts[0].witness == "2 of 2 agree dead"


def test_stuck_link_alert_fires_once_and_clears_when_the_link_returns() -> None:
    policy = RelationshipPolicy("lab", LIMITS)
    alive = dead_probes(ProbeOutcome.ANSWERED)
    alerts = []
    for now in (1010, 1059, 1061, 1070, 1080):
        alerts += [
            e
            for e in policy.observe(obs(now, partner=CI, probes=alive))
            if isinstance(e, Alert | Act)
        ]
    assert [a.code for a in alerts] == ["stuck-link"]
    assert "answers" in alerts[0].message and "no partner-down" in alerts[0].message
    events = policy.observe(obs(1090, local=S.NORMAL, partner=S.NORMAL))
    assert [e.code for e in events if isinstance(e, AlertCleared)] == ["stuck-link"]
    assert policy.phase is Phase.IDLE


def test_transitions_carry_the_previous_state_and_its_duration() -> None:
    policy = RelationshipPolicy("lab", LIMITS)
    policy.observe(obs(950, local=S.NORMAL, since=900, partner=S.NORMAL))
    events = policy.observe(obs(1005, local=CI, since=1000))
    moves = {(e.server, e.old, e.new): e for e in events if isinstance(e, Transition)}
    a = moves[("a", "normal", "communications-interrupted")]
    assert a.at == 1000 and a.previous_duration == 100
    b = moves[("b", "normal", "unreachable")]
    assert b.at == 1005 and b.previous_duration == 105


def test_a_failed_action_alerts_and_is_not_retried() -> None:
    policy = RelationshipPolicy("lab", LIMITS)
    dead = dead_probes()
    for now in (1001, 1020):
        policy.observe(obs(now, probes=dead, unanswered=evidence()))
    assert any(
        isinstance(e, Act) for e in policy.observe(obs(1031, probes=dead, unanswered=evidence()))
    )
    events = policy.outcome(Event.OUTCOME_FAILED, "refused: the partner looks alive")
    assert [e.code for e in events if isinstance(e, Alert)] == ["action-failed"]
    assert not any(
        isinstance(e, Act) for e in policy.observe(obs(1040, probes=dead, unanswered=evidence()))
    )
    with pytest.raises(ValueError):
        policy.outcome(Event.CLEAR, "no")


def test_restart_with_an_intent_and_no_outcome_reads_back_first() -> None:
    dead = dead_probes()
    reached = restore(
        "lab",
        LIMITS,
        states={},
        incident="a@1000",
        intent_pending=True,
        acted=False,
        actions_taken=0,
    )
    events = reached.observe(obs(1040, local=S.PARTNER_DOWN, since=1032))
    assert [e.reached for e in events if isinstance(e, Resolved)] == [True]
    assert reached.phase is Phase.DONE and reached.memory.actions_taken == 1

    not_reached = restore(
        "lab",
        LIMITS,
        states={},
        incident="a@1000",
        intent_pending=True,
        acted=False,
        actions_taken=0,
    )
    events = not_reached.observe(obs(1040, probes=dead, unanswered=evidence()))
    assert [e.reached for e in events if isinstance(e, Resolved)] == [False]
    assert not any(isinstance(e, Act) for e in events)  # read back first, act later
    assert not_reached.phase is Phase.WAITING

    acted = restore(
        "lab",
        LIMITS,
        states={},
        incident="a@1000",
        intent_pending=False,
        acted=True,
        actions_taken=1,
    )
    assert not any(
        isinstance(e, Act) for e in acted.observe(obs(1040, probes=dead, unanswered=evidence()))
    )


def test_a_newer_interruption_is_a_new_incident() -> None:
    policy = RelationshipPolicy("lab", LIMITS)
    dead = dead_probes()
    for now in (1001, 1020, 1031):
        policy.observe(obs(now, probes=dead, unanswered=evidence()))
    policy.outcome(Event.OUTCOME_DRY_RUN, "dry run")
    assert policy.phase is Phase.DONE and policy.memory.actions_taken == 0
    acts = [
        e
        for now in (2001, 2020, 2031)
        for e in policy.observe(obs(now, since=2000, probes=dead, unanswered=evidence()))
        if isinstance(e, Act)
    ]
    assert [a.incident for a in acts] == ["a@2000"]


def test_unreadable_servers_alert_and_never_act() -> None:
    policy = RelationshipPolicy("lab", LIMITS)
    events = policy.observe(obs(1040, local=None, probes=dead_probes(), unanswered=evidence()))
    assert [e.code for e in events if isinstance(e, Alert)] == ["unreadable"]
    assert not any(isinstance(e, Act) for e in events)


# -- the safety properties, on random worlds -----------------------------------------------

OUTCOMES = st.sampled_from(list(ProbeOutcome))
DEAD = [ProbeOutcome.REFUSED, ProbeOutcome.SILENT, ProbeOutcome.SILENT]


class World(RuleBasedStateMachine):
    """A local server, its partner and the link; the policy watches, sometimes restarts
    (resumed from its memory, as from the journal), and its actions are performed."""

    @initialize(t=st.integers(5, 30), window=st.integers(0, 20), witnesses=st.booleans())
    def setup(self, t: int, window: int, witnesses: bool) -> None:
        self.limits = Thresholds(
            interrupted_for=t, stuck_after=t * 2, alive_window=window, witnesses=witnesses
        )
        self.policy = RelationshipPolicy("lab", self.limits)
        self.now = 10_000.0
        self.local = S.NORMAL
        self.since = self.now
        self.partner_alive = True
        self.handed_out: set[str] = set()
        self.performed: dict[str, int] = {}
        self.pending: Act | None = None

    @rule(dt=st.integers(0, 60))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule()
    def link_cut(self) -> None:
        if self.local == S.NORMAL:
            self.local, self.since = CI, int(self.now)

    @rule()
    def heal(self) -> None:
        if self.partner_alive and self.local != S.NORMAL:
            self.local, self.since = S.NORMAL, int(self.now)

    @rule()
    def partner_dies(self) -> None:
        self.partner_alive = False
        if self.local == S.NORMAL:
            self.local, self.since = CI, int(self.now)

    @rule()
    def partner_returns(self) -> None:
        self.partner_alive = True

    @rule(reached=st.booleans())
    def restart(self, reached: bool) -> None:
        """The watcher is killed and restarted from what its journal holds; an action
        handed out and not finished may or may not have reached the server."""
        memory = self.policy.memory
        intent = memory.phase is Phase.ACTING
        if intent and reached and self.pending is not None:
            self._perform(self.pending.incident)
        self.pending = None
        self.handed_out.clear()
        self.policy = restore(
            "lab",
            self.limits,
            states=memory.states,
            incident=memory.incident,
            intent_pending=intent,
            acted=memory.phase is Phase.DONE,
            actions_taken=memory.actions_taken,
        )

    def _perform(self, incident: str) -> None:
        if self.local == CI:
            self.local, self.since = S.PARTNER_DOWN, int(self.now)
            self.performed[incident] = self.performed.get(incident, 0) + 1

    @rule(
        dt=st.integers(1, 15),
        noise=st.sampled_from([False, False, False, True]),
        probes=st.lists(OUTCOMES, min_size=0, max_size=3),
        clients=st.sampled_from([1, 2, 0]),
        unknown=st.booleans(),
        witness_dead=st.sampled_from([True, True, False]),
        saw_alive=st.sampled_from([False, False, True]),
        outcome=st.sampled_from(
            [Event.OUTCOME_OK, Event.OUTCOME_FAILED, Event.OUTCOME_DRY_RUN, None]
        ),
    )
    def poll(
        self,
        dt: int,
        noise: bool,
        probes: list[ProbeOutcome],
        clients: int,
        unknown: bool,
        witness_dead: bool,
        saw_alive: bool,
        outcome: Event | None,
    ) -> None:
        self.now += dt  # a poll takes time
        # Mostly the answers of the world as it is; with noise, anything (a flaky probe)
        probes = probes if noise else DEAD
        if self.partner_alive:  # a live partner answers at least one probe, or OMAPI
            probes = [*probes, ProbeOutcome.ANSWERED]
        results = tuple(ProbeResult(f"p{i}", "h:1", o, "random") for i, o in enumerate(probes))
        witness = None
        if self.limits.witnesses:
            witness = WitnessInput(True, witness_dead, ("w",) if saw_alive else (), "random")
        observation = Observation(
            now=self.now,
            servers=(
                ServerReading("a", self.local, since=self.since),
                ServerReading("b", None, error="timed out", silent=True),
            ),
            probes=results,
            unanswered=None if unknown and noise else Unanswered(0, clients, self.since, "x"),
            witness=witness,
        )
        for event in self.policy.observe(observation):
            if not isinstance(event, Act):
                continue
            # never while any probe (or witness) says alive
            assert results, "acted without probing"
            assert all(p.outcome in (ProbeOutcome.REFUSED, ProbeOutcome.SILENT) for p in results)
            assert not (witness is not None and (witness.saw_alive or not witness.dead))
            assert not (unknown and noise) and clients >= 1
            # never before T
            assert self.local == CI and self.now - self.since >= self.limits.interrupted_for
            # never twice for one incident: not handed out twice by one watcher, and never
            # again once a transition was performed (whichever watcher life performed it)
            assert event.incident not in self.handed_out, event.incident
            assert event.incident not in self.performed, event.incident
            self.handed_out.add(event.incident)
            self.pending = event
            if outcome is None:
                return  # killed (or still busy) before the outcome was known
            if outcome is Event.OUTCOME_OK:
                self._perform(event.incident)
            self.policy.outcome(outcome, "random")
            self.pending = None

    @invariant()
    def performed_at_most_once_per_incident(self) -> None:
        assert all(count == 1 for count in getattr(self, "performed", {}).values())


World.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestWorld = World.TestCase


def test_a_probe_silent_while_the_partner_answers_is_flagged_blind() -> None:
    policy = RelationshipPolicy("lab", LIMITS)
    probes = (
        ProbeResult("omapi", "h:7911", ProbeOutcome.ANSWERED, "it is normal"),
        ProbeResult("dhcp", "h:67", ProbeOutcome.SILENT, "no reply"),
    )
    events = policy.observe(obs(1010, partner=CI, probes=probes))
    (alert,) = [e for e in events if isinstance(e, Alert)]
    assert alert.code == "blind-probe" and "dhcp h:67" in alert.message
    assert not [e for e in policy.observe(obs(1020, partner=CI, probes=probes))
                if isinstance(e, Alert)]  # fmt: skip
