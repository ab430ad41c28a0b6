"""failover.states: the one table and the StateMachine that applies it (no I/O, no clock).

The rows checked one by one are those of docs/failover-protocol.md §8 (the reference), all
from dhcpd 4.4.3 server/failover.c: dhcp_failover_peer_state_changed,
dhcp_failover_state_transition("disconnect"), dhcp_failover_process_update_done,
dhcp_failover_set_state (STOS rule, entry actions) and dhcp_failover_startup_timeout.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dhcpfoctl.failover.states import (
    ENTRY_ACTIONS,
    OPERATOR_TRIGGERS,
    TABLE,
    Action,
    StateMachine,
    Transition,
    Trigger,
)
from dhcpfoctl.model import FailoverState, Role

S = FailoverState
T0 = 1_800_000_000.0
MCLT = 30

#: dhcpd's conflict-done has no transition for these partner states: it calls log_fatal
#: ("Invalid attempt to move from X to Y while local state is conflict-done") and the
#: process exits. The table leaves them out on purpose: the machine keeps its state and
#: records an error Transition (the closest a library gets to log_fatal).
CONFLICT_DONE_FATAL = frozenset(
    (S.CONFLICT_DONE, partner)
    for partner in S
    if partner not in (S.NORMAL, S.SHUTDOWN, S.POTENTIAL_CONFLICT, S.RESOLUTION_INTERRUPTED)
)

OWN_STATES = [s for s in S if s is not S.STARTUP]
OPERATOR = tuple(OPERATOR_TRIGGERS.values())
#: Triggers that end the startup phase with a move of their own.
ENDS_STARTUP = (*OPERATOR, Trigger.PARTNER_STATE_INVALID)


def machine(
    own: FailoverState,
    *,
    role: Role = Role.PRIMARY,
    partner: FailoverState = S.UNKNOWN_STATE,
    stos: float = T0,
    startup: bool = False,
    now: float | None = None,
    auto_partner_down: int = 0,
) -> StateMachine:
    m = StateMachine(
        role=role,
        mclt=MCLT,
        own=own,
        stos=stos,
        partner=partner,
        auto_partner_down=auto_partner_down,
    )
    if startup:
        m.start(stos if now is None else now)
    return m


def moves(m: StateMachine) -> list[tuple[FailoverState, FailoverState]]:
    return [(t.old, t.new) for t in m.history if t.error is None]


# -- the table as data ------------------------------------------------------------------


def test_every_rule_targets_a_real_state() -> None:
    for key, rule in TABLE.items():
        for target in (rule.next, rule.otherwise, rule.in_startup):
            assert target is None or target in S.__members__.values(), key
            if target is S.STARTUP:
                assert key[1] is Trigger.OPERATOR_STARTUP, f"{key}: only an operator enters startup"
        assert key[0] is not S.STARTUP, f"{key}: startup is judged on the saved state"


def test_every_state_pair_outside_startup_is_in_the_table() -> None:
    missing = {(own, partner) for own in OWN_STATES for partner in S if (own, partner) not in TABLE}
    assert missing == CONFLICT_DONE_FATAL


def test_link_down_has_a_row_for_every_state() -> None:
    # dhcp_failover_state_transition("disconnect") handles every state (log_fatal otherwise)
    assert all((own, Trigger.LINK_DOWN) in TABLE for own in OWN_STATES)


@pytest.mark.parametrize("own", sorted(CONFLICT_DONE_FATAL), ids=lambda k: k[1].keyword)
def test_conflict_done_fatal_pairs_keep_the_state_and_record_an_error(own) -> None:
    m = machine(S.CONFLICT_DONE, partner=S.POTENTIAL_CONFLICT)
    m.partner_state(own[1], T0 + 1, startup_flag=False)
    assert m.own is S.CONFLICT_DONE
    assert m.history[-1].error and "conflict-done" in m.history[-1].error


# -- any trigger on any machine ---------------------------------------------------------

ANY_TRIGGER = st.one_of(st.sampled_from(list(S)), st.sampled_from(list(Trigger)))


def _allowed_targets(
    own: FailoverState,
    trigger: FailoverState | Trigger,
    role: Role,
    partner_before: FailoverState,
    in_startup: bool,
) -> set[FailoverState]:
    """Where a move may go: the rule's next/otherwise/in_startup, or a documented case."""
    rule = TABLE.get((own, trigger))
    allowed: set[FailoverState] = set()
    if rule is not None:
        allowed |= {t for t in (rule.next, rule.otherwise, rule.in_startup) if t is not None}
    if in_startup:
        allowed.add(own)  # leaving startup for the saved state
        if own is S.RESOLUTION_INTERRUPTED:
            allowed.add(S.POTENTIAL_CONFLICT)  # saved r-i with a repeated partner state
    if trigger is Trigger.UPDDONE and own is S.POTENTIAL_CONFLICT:
        allowed |= {S.NORMAL, S.SHUTDOWN}  # dhcp_failover_process_update_done
    if S.RECOVER_WAIT in allowed:
        allowed.add(S.RECOVER_DONE)  # recover-wait with the MCLT already passed
    return allowed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    own=st.sampled_from(OWN_STATES),
    trigger=ANY_TRIGGER,
    role=st.sampled_from(list(Role)),
    partner=st.sampled_from(list(S)),
    in_startup=st.booleans(),
    startup_flag=st.booleans(),
    stos_ago=st.integers(0, 3 * MCLT),
    now_offset=st.floats(0, 1000, allow_nan=False),
)
def test_any_trigger_on_a_fresh_machine(
    own, trigger, role, partner, in_startup, startup_flag, stos_ago, now_offset
) -> None:
    now = T0 + now_offset
    m = machine(own, role=role, partner=partner, stos=now - stos_ago, startup=in_startup, now=now)
    seen = len(m.history)
    if isinstance(trigger, Trigger):
        actions = m.fire(trigger, now)
    else:
        actions = m.partner_state(trigger, now, startup_flag=startup_flag)
    assert all(isinstance(a, Action) for a in actions)
    new = m.history[seen:]
    errors = [t for t in new if t.error]
    done = [t for t in new if not t.error]
    key = (own, trigger)
    ignored_in_startup = in_startup and isinstance(trigger, Trigger) and trigger not in ENDS_STARTUP
    if ignored_in_startup and trigger is not Trigger.LINK_DOWN:
        assert not new and m.own is S.STARTUP  # only link-down, operator, invalid state
        return
    if key not in TABLE and not (in_startup and trigger == partner):
        # A pair the table does not know: nothing changes, one error is recorded.
        assert m.own is (S.STARTUP if in_startup else own)
        assert len(errors) == 1 and not done
        assert errors[0].old is m.own and errors[0].new is m.own
        return
    assert not errors
    allowed = _allowed_targets(own, trigger, role, partner, in_startup)
    for step in done:
        # Only an operator's local-state moves a server (back) into startup.
        assert step.new is not S.STARTUP or trigger is Trigger.OPERATOR_STARTUP
        assert step.new in allowed or (step.old is S.RECOVER_WAIT and step.new is S.RECOVER_DONE)
    if in_startup and (isinstance(trigger, FailoverState) or trigger is Trigger.LINK_DOWN):
        assert not m.in_startup and m.saved is None, "the first STATE / link-down ends startup"
    if not done:
        assert m.own is (S.STARTUP if in_startup else own)


# -- rows of the reference, one by one --------------------------------------------------


def test_normal_partner_down_is_potential_conflict() -> None:
    m = machine(S.NORMAL, partner=S.NORMAL)
    actions = m.partner_state(S.PARTNER_DOWN, T0 + 5, startup_flag=False)
    assert m.own is S.POTENTIAL_CONFLICT
    assert Action.SEND_UPDREQ in actions  # the primary asks first (§8.4)
    assert Action.REQUEUE_UNACKED in actions  # leaving normal rescinds the ack queue


def test_normal_partner_down_in_startup_is_recover() -> None:
    m = machine(S.NORMAL, partner=S.NORMAL, startup=True)
    actions = m.partner_state(S.PARTNER_DOWN, T0 + 5, startup_flag=False)
    assert moves(m) == [(S.NORMAL, S.STARTUP), (S.STARTUP, S.RECOVER)]
    assert Action.SEND_UPDREQALL in actions  # recover's entry action
    assert m.stos == T0  # out of startup: STOS kept


def test_communications_interrupted_partner_normal_sends_pending_updates() -> None:
    m = machine(S.COMMUNICATIONS_INTERRUPTED, partner=S.NORMAL)
    actions = m.partner_state(S.NORMAL, T0 + 5, startup_flag=False)  # repeated: processed
    assert m.own is S.NORMAL
    assert Action.SEND_PENDING_UPDATES in actions
    assert Action.POOL_BALANCE in actions  # normal's entry action


@pytest.mark.parametrize(
    ("stos_ago", "partner", "expected"),
    [
        (5, S.PARTNER_DOWN, S.RECOVER_WAIT),  # MCLT not passed, partner not recovering
        (5, S.RECOVER, S.RECOVER_DONE),  # a fresh pair, both in recover: no wait
        (5, S.RECOVER_DONE, S.RECOVER_DONE),
        (MCLT + 1, S.PARTNER_DOWN, S.RECOVER_DONE),  # STOS + MCLT already passed
    ],
)
def test_recover_updates_done(stos_ago, partner, expected) -> None:
    now = T0 + 100
    m = machine(S.RECOVER, partner=partner, stos=now - stos_ago)
    m.fire(Trigger.UPDDONE, now)
    assert m.own is expected
    if expected is S.RECOVER_WAIT:
        assert m.stos == now - stos_ago, "STOS is kept on entering recover-wait"
        assert m.next_deadline() == m.stos + MCLT


def test_recover_wait_timer_moves_to_recover_done() -> None:
    now = T0 + 100
    m = machine(S.RECOVER, partner=S.PARTNER_DOWN, stos=now - 10)
    m.fire(Trigger.UPDDONE, now)
    deadline = m.next_deadline()
    assert m.own is S.RECOVER_WAIT and deadline == now + MCLT - 10
    assert m.handle_timer(deadline - 1) == [] and m.own is S.RECOVER_WAIT
    m.handle_timer(deadline)
    assert m.own is S.RECOVER_DONE
    assert m.stos == deadline  # an ordinary move: STOS is now
    assert m.next_deadline() is None


def test_recover_wait_ignores_partner_states_and_link_down() -> None:
    m = machine(S.RECOVER_WAIT, partner=S.PARTNER_DOWN)
    for trigger in [*S, Trigger.LINK_DOWN, Trigger.UPDDONE]:
        if isinstance(trigger, Trigger):
            m.fire(trigger, T0 + 1)
        else:
            m.partner_state(trigger, T0 + 1, startup_flag=False)
        assert m.own is S.RECOVER_WAIT
    assert not [t for t in m.history if t.error]


def test_stos_rule() -> None:
    m = machine(S.NORMAL, partner=S.NORMAL, stos=T0)
    m.start(T0 + 10)  # into startup: kept
    assert m.stos == T0
    m.partner_state(S.NORMAL, T0 + 20, startup_flag=True)  # out of startup: kept
    assert (m.own, m.stos) == (S.NORMAL, T0)
    m.fire(Trigger.LINK_DOWN, T0 + 30)  # an ordinary move: now
    assert (m.own, m.stos) == (S.COMMUNICATIONS_INTERRUPTED, T0 + 30)
    m.fire(Trigger.OPERATOR_RECOVER, T0 + 40)
    assert (m.own, m.stos) == (S.RECOVER, T0 + 40)
    m.partner = S.PARTNER_DOWN
    m.fire(Trigger.UPDDONE, T0 + 50)  # into recover-wait: kept
    assert (m.own, m.stos) == (S.RECOVER_WAIT, T0 + 40)


def test_auto_partner_down_timer() -> None:
    m = machine(S.NORMAL, partner=S.NORMAL, auto_partner_down=300)
    m.fire(Trigger.LINK_DOWN, T0 + 10)
    assert m.own is S.COMMUNICATIONS_INTERRUPTED
    assert m.next_deadline() == T0 + 310
    m.handle_timer(T0 + 309)
    assert m.own is S.COMMUNICATIONS_INTERRUPTED
    actions = m.handle_timer(T0 + 310)
    assert m.own is S.PARTNER_DOWN
    assert Action.EXPIRED_TSFP_MCLT in actions
    assert m.next_deadline() is None


def test_auto_partner_down_is_cancelled_by_any_state_change() -> None:
    m = machine(S.NORMAL, partner=S.NORMAL, auto_partner_down=300)
    m.fire(Trigger.LINK_DOWN, T0)
    m.partner_state(S.NORMAL, T0 + 5, startup_flag=False)
    assert m.own is S.NORMAL and m.next_deadline() is None


def test_auto_partner_down_off_by_default() -> None:
    m = machine(S.NORMAL, partner=S.NORMAL)
    m.fire(Trigger.LINK_DOWN, T0)
    assert m.next_deadline() is None


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        (S.NORMAL, S.COMMUNICATIONS_INTERRUPTED),
        (S.POTENTIAL_CONFLICT, S.RESOLUTION_INTERRUPTED),
        (S.UNKNOWN_STATE, S.RESOLUTION_INTERRUPTED),
        (S.CONFLICT_DONE, S.CONFLICT_DONE),
        (S.COMMUNICATIONS_INTERRUPTED, S.COMMUNICATIONS_INTERRUPTED),
        (S.PARTNER_DOWN, S.PARTNER_DOWN),
        (S.RECOVER, S.RECOVER),
        (S.RECOVER_WAIT, S.RECOVER_WAIT),
        (S.RECOVER_DONE, S.RECOVER_DONE),
        (S.RESOLUTION_INTERRUPTED, S.RESOLUTION_INTERRUPTED),
        (S.SHUTDOWN, S.SHUTDOWN),
        (S.PAUSED, S.PAUSED),
    ],
)
@pytest.mark.parametrize("startup", [False, True])
def test_link_down_rule(own, expected, startup) -> None:
    m = machine(own, partner=S.NORMAL, startup=startup, now=T0 + 5)
    actions = m.fire(Trigger.LINK_DOWN, T0 + 10)
    assert m.own is expected
    assert not m.in_startup
    if own is S.CONFLICT_DONE and not startup:
        # (In startup the machine drops the rule's actions; harmless: the endpoint re-queues
        # every unacknowledged update on connection_lost anyway.)
        assert Action.REQUEUE_UNACKED in actions
    if startup:
        assert m.stos == T0, "leaving startup keeps STOS even when the rule moves"


def test_startup_timer_is_the_link_down_rule_on_the_saved_state() -> None:
    # The endpoint fires LINK_DOWN when its 15 s startup timer runs out
    # (dhcp_failover_startup_timeout calls the "disconnect" transition).
    m = machine(S.NORMAL, partner=S.NORMAL, startup=True)
    assert m.in_startup and m.reported_state is S.NORMAL
    m.fire(Trigger.LINK_DOWN, T0 + 15)
    assert moves(m)[-1] == (S.STARTUP, S.COMMUNICATIONS_INTERRUPTED)


def test_startup_ignores_updates_done_and_timers() -> None:
    m = machine(S.RECOVER, partner=S.UNKNOWN_STATE, startup=True)
    assert m.fire(Trigger.UPDDONE, T0 + 1) == []
    assert m.in_startup and m.saved is S.RECOVER


def test_potential_conflict_updates_done_primary_goes_to_conflict_done() -> None:
    m = machine(S.POTENTIAL_CONFLICT, role=Role.PRIMARY, partner=S.POTENTIAL_CONFLICT)
    m.fire(Trigger.UPDDONE, T0 + 1)
    assert m.own is S.CONFLICT_DONE


def test_potential_conflict_updates_done_primary_with_partner_conflict_done_shuts_down() -> None:
    m = machine(S.POTENTIAL_CONFLICT, role=Role.PRIMARY, partner=S.CONFLICT_DONE)
    m.fire(Trigger.UPDDONE, T0 + 1)
    assert m.own is S.SHUTDOWN  # "Secondary is in conflict_done … this is illegal."


@pytest.mark.parametrize(
    ("partner", "expected"),
    [(S.CONFLICT_DONE, S.NORMAL), (S.POTENTIAL_CONFLICT, S.POTENTIAL_CONFLICT)],
)
def test_potential_conflict_updates_done_secondary(partner, expected) -> None:
    m = machine(S.POTENTIAL_CONFLICT, role=Role.SECONDARY, partner=partner)
    m.fire(Trigger.UPDDONE, T0 + 1)
    assert m.own is expected


def test_secondary_asks_for_updates_when_the_primary_reaches_conflict_done() -> None:
    m = machine(S.POTENTIAL_CONFLICT, role=Role.SECONDARY, partner=S.POTENTIAL_CONFLICT)
    actions = m.partner_state(S.CONFLICT_DONE, T0 + 1, startup_flag=False)
    assert actions == [Action.SEND_UPDREQ] and m.own is S.POTENTIAL_CONFLICT
    # Not when the partner did not come from potential-conflict.
    m = machine(S.POTENTIAL_CONFLICT, role=Role.SECONDARY, partner=S.RECOVER)
    assert m.partner_state(S.CONFLICT_DONE, T0 + 1, startup_flag=False) == []


def test_secondary_entering_potential_conflict_asks_only_after_the_primary() -> None:
    m = machine(S.NORMAL, role=Role.SECONDARY, partner=S.NORMAL)
    actions = m.partner_state(S.PARTNER_DOWN, T0 + 1, startup_flag=False)
    assert m.own is S.POTENTIAL_CONFLICT and Action.SEND_UPDREQ not in actions


@pytest.mark.parametrize(
    ("own", "partner", "expected"),
    [
        (S.CONFLICT_DONE, S.NORMAL, S.NORMAL),
        (S.RECOVER_DONE, S.NORMAL, S.NORMAL),
        (S.RECOVER_DONE, S.RECOVER_DONE, S.NORMAL),
        (S.PARTNER_DOWN, S.RECOVER_DONE, S.NORMAL),
        (S.PARTNER_DOWN, S.NORMAL, S.POTENTIAL_CONFLICT),
        (S.PARTNER_DOWN, S.RECOVER, S.PARTNER_DOWN),
        (S.COMMUNICATIONS_INTERRUPTED, S.RECOVER, S.PARTNER_DOWN),
        (S.COMMUNICATIONS_INTERRUPTED, S.PARTNER_DOWN, S.POTENTIAL_CONFLICT),
        (S.NORMAL, S.SHUTDOWN, S.PARTNER_DOWN),
        (S.NORMAL, S.PAUSED, S.COMMUNICATIONS_INTERRUPTED),
        (S.NORMAL, S.CONFLICT_DONE, S.SHUTDOWN),
        (S.POTENTIAL_CONFLICT, S.NORMAL, S.SHUTDOWN),
        (S.POTENTIAL_CONFLICT, S.RECOVER, S.RECOVER),
        (S.RECOVER, S.NORMAL, S.POTENTIAL_CONFLICT),
        (S.RESOLUTION_INTERRUPTED, S.RECOVER, S.POTENTIAL_CONFLICT),
        (S.RESOLUTION_INTERRUPTED, S.SHUTDOWN, S.PARTNER_DOWN),
        (S.UNKNOWN_STATE, S.NORMAL, S.UNKNOWN_STATE),
    ],
)
def test_partner_state_rows(own, partner, expected) -> None:
    m = machine(own, partner=S.UNKNOWN_STATE)
    m.partner_state(partner, T0 + 1, startup_flag=False)
    assert m.own is expected


def test_conflict_done_follows_a_partner_into_shutdown() -> None:
    # dhcp_failover_peer_state_changed, conflict_done: "case normal: case shut_down:
    # dhcp_failover_set_state(state, new_state)" -- the same state as the partner.
    m = machine(S.CONFLICT_DONE, partner=S.POTENTIAL_CONFLICT)
    m.partner_state(S.SHUTDOWN, T0 + 1, startup_flag=False)
    assert m.own is S.SHUTDOWN


def test_repeated_partner_state_is_ignored_where_dhcpd_ignores_it() -> None:
    m = machine(S.RECOVER_DONE, partner=S.PARTNER_DOWN)
    m.partner_stos = 7.0
    assert m.partner_state(S.PARTNER_DOWN, T0, startup_flag=False) == []
    assert m.partner_stos == 7.0  # not even recorded


def test_partner_down_ignores_a_partner_in_startup() -> None:
    m = machine(S.PARTNER_DOWN, partner=S.COMMUNICATIONS_INTERRUPTED)
    m.partner_state(S.NORMAL, T0 + 1, startup_flag=True)
    assert m.own is S.PARTNER_DOWN
    m.partner_state(S.NORMAL, T0 + 2, startup_flag=False)
    assert m.own is S.POTENTIAL_CONFLICT


def test_partner_down_in_startup_ignores_a_partner_in_startup() -> None:
    # dhcpd checks the partner's STARTUP flag for "partner_down" judged on the saved state
    # too (me.state == startup ? saved_state : me.state), then leaves startup for the saved
    # state: partner-down, not potential-conflict.
    m = machine(S.PARTNER_DOWN, partner=S.COMMUNICATIONS_INTERRUPTED, startup=True)
    m.partner_state(S.NORMAL, T0 + 1, startup_flag=True)
    assert moves(m)[-1] == (S.STARTUP, S.PARTNER_DOWN)


@pytest.mark.parametrize(
    ("saved", "partner", "expected"),
    [
        (S.NORMAL, S.PARTNER_DOWN, S.NORMAL),
        (S.COMMUNICATIONS_INTERRUPTED, S.NORMAL, S.COMMUNICATIONS_INTERRUPTED),
        (S.RESOLUTION_INTERRUPTED, S.POTENTIAL_CONFLICT, S.POTENTIAL_CONFLICT),
        (S.RECOVER, S.RECOVER, S.RECOVER),
    ],
)
def test_startup_with_a_repeated_partner_state_goes_to_the_saved_state(
    saved, partner, expected
) -> None:
    # dhcp_failover_peer_state_changed: a repeated partner state while in startup goes
    # straight to the saved state (resolution-interrupted: potential-conflict) and returns
    # before the state matrix.
    m = machine(saved, partner=partner, startup=True)
    m.partner_state(partner, T0 + 1, startup_flag=True)
    assert m.own is expected and not m.in_startup


def test_operator_state_ends_startup() -> None:
    m = machine(S.RECOVER, startup=True)
    m.fire(Trigger.OPERATOR_PARTNER_DOWN, T0 + 1)
    assert m.own is S.PARTNER_DOWN and m.saved is None
    assert moves(m)[-1] == (S.STARTUP, S.PARTNER_DOWN)
    assert m.stos == T0  # dhcp_failover_set_state: out of startup keeps STOS


def test_operator_state_equal_to_the_saved_state_still_leaves_startup_visibly() -> None:
    m = machine(S.SHUTDOWN, startup=True)
    m.state_changed = False
    m.fire(Trigger.OPERATOR_SHUTDOWN, T0 + 1)
    assert moves(m)[-1] == (S.STARTUP, S.SHUTDOWN)
    assert m.state_changed, "the partner must get STATE without the STARTUP flag"


def test_entry_actions() -> None:
    assert Action.SEND_UPDREQALL in ENTRY_ACTIONS[S.RECOVER]
    assert Action.POOL_BALANCE in ENTRY_ACTIONS[S.NORMAL]
    assert Action.EXPIRED_TSFP_MCLT in ENTRY_ACTIONS[S.PARTNER_DOWN]


def test_unknown_trigger_records_an_error() -> None:
    m = machine(S.NORMAL, partner=S.NORMAL)
    assert m.fire(Trigger.MCLT_PASSED, T0) == []
    assert m.own is S.NORMAL
    assert isinstance(m.history[-1], Transition) and m.history[-1].error
    assert "normal" in m.history[-1].describe()


# -- an operator's local-state: every defined state, as dhcpd's OMAPI sets it ----------


@pytest.mark.parametrize("target", list(S), ids=lambda s: s.keyword)
@pytest.mark.parametrize("own", OWN_STATES, ids=lambda s: s.keyword)
def test_operator_moves_to_any_defined_state(own: FailoverState, target: FailoverState) -> None:
    m = machine(own, stos=T0 - 10 * MCLT)
    m.fire(OPERATOR_TRIGGERS[target], T0)
    # recover-wait with the MCLT long passed goes on to recover-done at once (dhcpd too).
    expected = S.RECOVER_DONE if target is S.RECOVER_WAIT else target
    assert m.own is expected
    assert moves(m)[0] == (own, target)  # even into the state it is in, as dhcpd
    if target is S.STARTUP:
        assert m.saved is own and m.stos == T0 - 10 * MCLT  # startup keeps STOS
        assert m.reported_state is own


def test_operator_startup_remembers_the_state_and_the_partner_ends_it() -> None:
    m = machine(S.COMMUNICATIONS_INTERRUPTED, partner=S.UNKNOWN_STATE)
    m.fire(Trigger.OPERATOR_STARTUP, T0 + 1)
    assert (m.own, m.saved) == (S.STARTUP, S.COMMUNICATIONS_INTERRUPTED)
    m.fire(Trigger.OPERATOR_STARTUP, T0 + 2)  # again: still startup, same saved state
    assert (m.own, m.saved) == (S.STARTUP, S.COMMUNICATIONS_INTERRUPTED)
    m.partner_state(S.NORMAL, T0 + 3, startup_flag=False)
    assert m.own is S.NORMAL and m.saved is None


def test_operator_state_in_startup_leaves_startup_for_it() -> None:
    m = machine(S.NORMAL, startup=True)
    m.fire(Trigger.OPERATOR_PAUSED, T0 + 1)
    assert m.own is S.PAUSED and m.saved is None


def test_operator_setting_the_current_state_restarts_its_stos() -> None:
    # dhcp_failover_set_state: partner-down set again restarts the MCLT countdown.
    m = machine(S.PARTNER_DOWN, stos=T0)
    m.fire(Trigger.OPERATOR_PARTNER_DOWN, T0 + 100)
    assert m.own is S.PARTNER_DOWN and m.stos == T0 + 100 and m.state_changed
