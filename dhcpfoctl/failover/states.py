"""The failover server state machine of dhcpd 4.4, as ONE table.

Theory of operation
===================

Each server of a failover relationship is in one *own state* and keeps a view of its
*partner's state*. dhcpd 4.4.3 (``server/failover.c``: ``dhcp_failover_set_state``,
``dhcp_failover_peer_state_changed``, ``dhcp_failover_state_transition``,
``dhcp_failover_startup``, ``dhcp_failover_process_update_done``) moves the own state on
these triggers, and only on these:

* the partner reports a new state in a STATE message (keyed by the partner's new state);
* the link goes down: TCP closed, the partner silent for max-response-delay, or the 15 s
  startup timer ran out (:attr:`Trigger.LINK_DOWN`);
* the partner finished answering our UPDREQ/UPDREQALL (:attr:`Trigger.UPDDONE`);
* the MCLT wait of recover-wait ended (:attr:`Trigger.MCLT_PASSED`);
* the ``auto-partner-down`` timer of communications-interrupted fired;
* an operator set the local state over OMAPI (:attr:`Trigger.OPERATOR_PARTNER_DOWN` …).

:data:`TABLE` maps ``(own state, trigger)`` to a :class:`Rule`: what to do and where to go.
A pair that is not in the table is a protocol error with a safe outcome (as in h2): the
state stays, and the machine records a :class:`Transition` whose ``error`` says so.
Conditions that dhcpd evaluates inside a transition (the MCLT wait, the role) are named
:class:`Guard` values in the rule, not code, so the table stays data.

The startup phase is not a row of its own: a server starts in STARTUP remembering its
persisted (*saved*) state, sends that saved state with the STARTUP flag, and the first
STATE from the partner is judged against the saved state (``Rule.in_startup`` overrides the
destination where dhcpd does; actions marked ``after_startup`` are dropped); if the rule did
not move, the server moves to the saved state. If the startup timer fires first the
link-down rule is applied to the saved state.

STOS ("start time of state") becomes ``now`` on every own transition except into
recover-wait, into startup and out of startup (``dhcp_failover_set_state``).

Every transition goes through :meth:`StateMachine._move`, which appends to
:attr:`StateMachine.history`: the one place to log and observe transitions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from dhcpfoctl.model import FailoverState, Role

S = FailoverState

__all__ = [
    "ENTRY_ACTIONS",
    "OPERATOR_TRIGGERS",
    "SERVING_STATES",
    "TABLE",
    "Action",
    "Guard",
    "Rule",
    "StateMachine",
    "Transition",
    "Trigger",
]


class Trigger(enum.Enum):
    """A trigger that is not a partner state (those are keyed by the FailoverState itself)."""

    LINK_DOWN = "link-down"
    UPDDONE = "updates-done"
    MCLT_PASSED = "mclt-passed"
    AUTO_PARTNER_DOWN = "auto-partner-down"
    # An operator's local-state over OMAPI: one trigger per defined state, as dhcpd's
    # dhcp_failover_state_set_value moves to any of them (see OPERATOR_TRIGGERS).
    OPERATOR_UNKNOWN_STATE = "operator: unknown-state"
    OPERATOR_STARTUP = "operator: startup"
    OPERATOR_NORMAL = "operator: normal"
    OPERATOR_COMMUNICATIONS_INTERRUPTED = "operator: communications-interrupted"
    OPERATOR_PARTNER_DOWN = "operator: partner-down"
    OPERATOR_POTENTIAL_CONFLICT = "operator: potential-conflict"
    OPERATOR_RECOVER = "operator: recover"
    OPERATOR_PAUSED = "operator: paused"
    OPERATOR_SHUTDOWN = "operator: shutdown"
    OPERATOR_RECOVER_DONE = "operator: recover-done"
    OPERATOR_RESOLUTION_INTERRUPTED = "operator: resolution-interrupted"
    OPERATOR_CONFLICT_DONE = "operator: conflict-done"
    OPERATOR_RECOVER_WAIT = "operator: recover-wait"
    #: The partner sent a state value dhcpd does not know.
    PARTNER_STATE_INVALID = "partner state invalid"


#: The operator trigger that moves a server to each defined state.
OPERATOR_TRIGGERS: Final[dict[FailoverState, Trigger]] = {
    state: Trigger[f"OPERATOR_{state.name}"] for state in FailoverState
}


class Action(enum.Enum):
    """Work the connection does for the machine (the machine itself does no I/O)."""

    SEND_UPDREQALL = "send UPDREQALL"
    SEND_UPDREQ = "send UPDREQ"
    #: Queue every lease the partner has not acknowledged and every expired one, send them.
    SEND_PENDING_UPDATES = "send pending updates"
    POOL_BALANCE = "run pool balance"
    #: Updates still waiting for a BNDACK go back to the update queue (re-sent later).
    REQUEUE_UNACKED = "requeue unacknowledged updates"
    #: Expired/released/reset leases get tsfp = STOS + MCLT (reusable MCLT after now).
    EXPIRED_TSFP_MCLT = "start MCLT on expired leases"


class Guard(enum.Enum):
    """A condition dhcpd checks inside a transition (evaluated by :class:`StateMachine`)."""

    #: own STOS + MCLT is in the future and the partner is neither recover nor recover-done.
    MCLT_WAIT = "MCLT not yet passed since our STOS, partner not recovering"
    IS_PRIMARY = "this server is the primary"
    #: The partner's previous state was potential-conflict.
    PEER_WAS_POTENTIAL_CONFLICT = "partner came from potential-conflict"
    PEER_CONFLICT_DONE = "partner is in conflict-done"


@dataclass(frozen=True, slots=True)
class Rule:
    """``(own state, trigger)`` → actions and the next state.

    ``next`` is ``None`` to stay. With a ``guard``, ``next`` applies when the guard holds
    and ``otherwise`` when it does not (``actions`` run in both cases unless
    ``guard_actions`` is set, in which case the actions run only when the guard holds).
    """

    next: FailoverState | None = None
    actions: tuple[Action, ...] = ()
    guard: Guard | None = None
    otherwise: FailoverState | None = None
    guard_actions: bool = False
    #: Destination instead of ``next`` while the server is still in its startup phase.
    in_startup: FailoverState | None = None
    #: Actions dhcpd skips while in startup (it is not "really" in the saved state yet).
    after_startup: bool = False
    #: Why dhcpd does this; shown in the transition history.
    why: str = ""
    #: Move even into the current state (new STOS, STATE sent, timers restarted), as
    #: dhcp_failover_set_state does when an operator sets the state the server is in.
    reenter: bool = False


STAY: Final = Rule()

#: States in which a server answers DHCP clients (§8.1 of docs/failover-protocol.md).
SERVING_STATES: Final = frozenset({S.NORMAL, S.COMMUNICATIONS_INTERRUPTED, S.PARTNER_DOWN})

_ANY_STATE: Final = tuple(s for s in S if s is not S.STARTUP)


def _rows(own: FailoverState, rule: Rule, *triggers: FailoverState | Trigger) -> dict:
    return {(own, trigger): rule for trigger in triggers}


def _operator_rows() -> dict:
    # dhcpd's OMAPI accepts any local-state an operator writes (server/failover.c
    # dhcp_failover_state_set_value calls dhcp_failover_set_state without checks); the
    # safety checks live in dhcpfoctl's partner-down command, not in the server.
    # Every defined state can be set, startup included (the server then waits for the
    # partner again, remembering the state it left).
    rows: dict = {}
    for own in _ANY_STATE:
        for target, trigger in OPERATOR_TRIGGERS.items():
            rows[(own, trigger)] = Rule(target, why="operator", reenter=True)
        # dhcp_failover_peer_state_changed: "Invalid state" from the peer → shutdown.
        rows[(own, Trigger.PARTNER_STATE_INVALID)] = Rule(
            S.SHUTDOWN, why="the partner sent a state value that does not exist"
        )
    return rows


_ILLEGAL = Rule(S.SHUTDOWN, why="illegal partner state for ours: dhcpd shuts the relationship")
_CONFLICT = Rule(S.POTENTIAL_CONFLICT, why="both may have served: resolve conflicts")
_TAKE_OVER = Rule(S.PARTNER_DOWN, why="partner is shutting down or recovering")

#: THE table: ``(own state, partner's new state | trigger)`` → :class:`Rule`.
#: Partner-state rows follow dhcp_failover_peer_state_changed; LINK_DOWN follows
#: dhcp_failover_state_transition("disconnect"); UPDDONE follows
#: dhcp_failover_process_update_done (all in server/failover.c, dhcpd 4.4.3).
TABLE: Final[dict[tuple[FailoverState, FailoverState | Trigger], Rule]] = {
    # -- normal ------------------------------------------------------------------------
    **_rows(S.NORMAL, Rule(actions=(Action.POOL_BALANCE,), after_startup=True), S.NORMAL),
    **_rows(
        S.NORMAL,
        Rule(S.POTENTIAL_CONFLICT, in_startup=S.RECOVER, why="partner took over"),
        S.PARTNER_DOWN,
    ),
    **_rows(S.NORMAL, _ILLEGAL, S.POTENTIAL_CONFLICT, S.RESOLUTION_INTERRUPTED, S.CONFLICT_DONE),
    **_rows(S.NORMAL, _TAKE_OVER, S.RECOVER, S.SHUTDOWN),
    **_rows(S.NORMAL, Rule(S.COMMUNICATIONS_INTERRUPTED, why="partner paused"), S.PAUSED),
    **_rows(
        S.NORMAL,
        STAY,
        S.UNKNOWN_STATE,
        S.STARTUP,
        S.COMMUNICATIONS_INTERRUPTED,
        S.RECOVER_DONE,
        S.RECOVER_WAIT,
    ),
    (S.NORMAL, Trigger.LINK_DOWN): Rule(S.COMMUNICATIONS_INTERRUPTED, why="link lost"),
    # -- recover -----------------------------------------------------------------------
    **_rows(
        S.RECOVER,
        Rule(actions=(Action.SEND_UPDREQALL,), after_startup=True),
        S.RECOVER,
        S.PARTNER_DOWN,
        S.COMMUNICATIONS_INTERRUPTED,
    ),
    **_rows(
        S.RECOVER,
        _CONFLICT,
        S.POTENTIAL_CONFLICT,
        S.RESOLUTION_INTERRUPTED,
        S.CONFLICT_DONE,
        S.NORMAL,
    ),
    **_rows(S.RECOVER, _TAKE_OVER, S.SHUTDOWN),
    **_rows(S.RECOVER, STAY, S.RECOVER_DONE, S.RECOVER_WAIT, S.STARTUP, S.PAUSED, S.UNKNOWN_STATE),
    (S.RECOVER, Trigger.LINK_DOWN): STAY,
    (S.RECOVER, Trigger.UPDDONE): Rule(
        S.RECOVER_WAIT,
        guard=Guard.MCLT_WAIT,
        otherwise=S.RECOVER_DONE,
        why="partner sent all its leases",
    ),
    # -- recover-wait: only its timer moves it -----------------------------------------
    **_rows(S.RECOVER_WAIT, STAY, *S),
    (S.RECOVER_WAIT, Trigger.LINK_DOWN): STAY,
    (S.RECOVER_WAIT, Trigger.UPDDONE): STAY,
    (S.RECOVER_WAIT, Trigger.MCLT_PASSED): Rule(S.RECOVER_DONE, why="MCLT has passed"),
    # -- recover-done ------------------------------------------------------------------
    **_rows(S.RECOVER_DONE, Rule(S.NORMAL, why="recovery complete"), S.NORMAL, S.RECOVER_DONE),
    **_rows(S.RECOVER_DONE, _TAKE_OVER, S.SHUTDOWN),
    **_rows(
        S.RECOVER_DONE,
        STAY,
        S.UNKNOWN_STATE,
        S.STARTUP,
        S.COMMUNICATIONS_INTERRUPTED,
        S.PARTNER_DOWN,
        S.POTENTIAL_CONFLICT,
        S.RECOVER,
        S.PAUSED,
        S.RESOLUTION_INTERRUPTED,
        S.CONFLICT_DONE,
        S.RECOVER_WAIT,
    ),
    (S.RECOVER_DONE, Trigger.LINK_DOWN): STAY,
    (S.RECOVER_DONE, Trigger.UPDDONE): STAY,
    # -- potential-conflict ------------------------------------------------------------
    **_rows(S.POTENTIAL_CONFLICT, _ILLEGAL, S.NORMAL),
    **_rows(
        S.POTENTIAL_CONFLICT,
        Rule(
            actions=(Action.SEND_UPDREQ,),
            guard=Guard.PEER_WAS_POTENTIAL_CONFLICT,
            guard_actions=True,
            why="primary has resolved its side",
        ),
        S.CONFLICT_DONE,
    ),
    **_rows(S.POTENTIAL_CONFLICT, Rule(S.RECOVER, why="partner recovers"), S.RECOVER),
    **_rows(S.POTENTIAL_CONFLICT, _TAKE_OVER, S.SHUTDOWN),
    **_rows(
        S.POTENTIAL_CONFLICT,
        STAY,
        S.UNKNOWN_STATE,
        S.STARTUP,
        S.COMMUNICATIONS_INTERRUPTED,
        S.PARTNER_DOWN,
        S.POTENTIAL_CONFLICT,
        S.PAUSED,
        S.RECOVER_DONE,
        S.RESOLUTION_INTERRUPTED,
        S.RECOVER_WAIT,
    ),
    (S.POTENTIAL_CONFLICT, Trigger.LINK_DOWN): Rule(S.RESOLUTION_INTERRUPTED, why="link lost"),
    # The primary finishes first (conflict-done); the secondary follows the primary's
    # conflict-done into normal (dhcp_failover_process_update_done).
    (S.POTENTIAL_CONFLICT, Trigger.UPDDONE): Rule(
        S.CONFLICT_DONE, guard=Guard.IS_PRIMARY, otherwise=None, why="conflicts resolved"
    ),
    # -- conflict-done -----------------------------------------------------------------
    **_rows(S.CONFLICT_DONE, Rule(S.NORMAL, why="partner resolved too"), S.NORMAL),
    # dhcpd follows the partner into shutdown here (conflict_done: "case normal: case
    # shut_down: dhcp_failover_set_state(state, new_state)"), not into partner-down.
    **_rows(S.CONFLICT_DONE, Rule(S.SHUTDOWN, why="partner shut down"), S.SHUTDOWN),
    **_rows(S.CONFLICT_DONE, STAY, S.POTENTIAL_CONFLICT, S.RESOLUTION_INTERRUPTED),
    (S.CONFLICT_DONE, Trigger.LINK_DOWN): Rule(actions=(Action.REQUEUE_UNACKED,)),
    (S.CONFLICT_DONE, Trigger.UPDDONE): STAY,
    # -- resolution-interrupted --------------------------------------------------------
    **_rows(S.RESOLUTION_INTERRUPTED, _TAKE_OVER, S.SHUTDOWN),
    **_rows(S.RESOLUTION_INTERRUPTED, STAY, S.PAUSED, S.UNKNOWN_STATE, S.STARTUP),
    **_rows(
        S.RESOLUTION_INTERRUPTED,
        _CONFLICT,
        *(s for s in S if s not in (S.SHUTDOWN, S.PAUSED, S.UNKNOWN_STATE, S.STARTUP)),
    ),
    (S.RESOLUTION_INTERRUPTED, Trigger.LINK_DOWN): STAY,
    # -- partner-down ------------------------------------------------------------------
    **_rows(S.PARTNER_DOWN, STAY, S.RECOVER, S.RECOVER_WAIT, S.STARTUP, S.UNKNOWN_STATE),
    **_rows(S.PARTNER_DOWN, Rule(S.NORMAL, why="partner recovered"), S.RECOVER_DONE),
    **_rows(
        S.PARTNER_DOWN,
        _CONFLICT,
        S.NORMAL,
        S.POTENTIAL_CONFLICT,
        S.PARTNER_DOWN,
        S.COMMUNICATIONS_INTERRUPTED,
        S.RESOLUTION_INTERRUPTED,
        S.CONFLICT_DONE,
    ),
    **_rows(S.PARTNER_DOWN, STAY, S.SHUTDOWN, S.PAUSED),
    (S.PARTNER_DOWN, Trigger.LINK_DOWN): STAY,
    # -- communications-interrupted ----------------------------------------------------
    **_rows(S.COMMUNICATIONS_INTERRUPTED, _TAKE_OVER, S.RECOVER, S.SHUTDOWN),
    **_rows(
        S.COMMUNICATIONS_INTERRUPTED,
        Rule(S.NORMAL, actions=(Action.SEND_PENDING_UPDATES,), why="link restored"),
        S.NORMAL,
        S.COMMUNICATIONS_INTERRUPTED,
        S.RECOVER_DONE,
        S.RECOVER_WAIT,
    ),
    **_rows(
        S.COMMUNICATIONS_INTERRUPTED,
        _CONFLICT,
        S.POTENTIAL_CONFLICT,
        S.PARTNER_DOWN,
        S.RESOLUTION_INTERRUPTED,
        S.CONFLICT_DONE,
    ),
    **_rows(S.COMMUNICATIONS_INTERRUPTED, STAY, S.STARTUP, S.PAUSED, S.UNKNOWN_STATE),
    (S.COMMUNICATIONS_INTERRUPTED, Trigger.LINK_DOWN): STAY,
    (S.COMMUNICATIONS_INTERRUPTED, Trigger.AUTO_PARTNER_DOWN): Rule(
        S.PARTNER_DOWN, why="auto-partner-down timer"
    ),
    # -- shutdown, paused, unknown-state: no automatic transition ----------------------
    **_rows(S.SHUTDOWN, STAY, *S, Trigger.LINK_DOWN, Trigger.UPDDONE),
    **_rows(S.PAUSED, STAY, *S, Trigger.LINK_DOWN, Trigger.UPDDONE),
    **_rows(S.UNKNOWN_STATE, STAY, *S, Trigger.UPDDONE),
    (S.UNKNOWN_STATE, Trigger.LINK_DOWN): Rule(S.RESOLUTION_INTERRUPTED, why="link lost"),
    **_operator_rows(),
}

#: Triggers that end the startup phase with a move of their own.
_ENDS_STARTUP: Final = frozenset({*OPERATOR_TRIGGERS.values(), Trigger.PARTNER_STATE_INVALID})

#: What a server does on entering a state (dhcp_failover_set_state), besides sending STATE.
ENTRY_ACTIONS: Final[dict[FailoverState, tuple[Action, ...]]] = {
    S.NORMAL: (Action.POOL_BALANCE, Action.SEND_PENDING_UPDATES),
    S.RECOVER: (Action.SEND_UPDREQALL,),
    S.PARTNER_DOWN: (Action.EXPIRED_TSFP_MCLT,),
}

#: Leaving these states sends unacknowledged updates back to the queue.
_REQUEUE_ON_LEAVING: Final = frozenset({S.NORMAL, S.POTENTIAL_CONFLICT, S.PARTNER_DOWN})

#: States in which a repeated partner state is ignored (dhcp_failover_peer_state_changed).
_REPEAT_IGNORED: Final = frozenset(
    {S.NORMAL, S.POTENTIAL_CONFLICT, S.RECOVER_DONE, S.SHUTDOWN, S.PAUSED, S.RECOVER_WAIT}
)


@dataclass(frozen=True, slots=True)
class Transition:
    """One entry of the history: a move, or a trigger the table does not know."""

    time: float
    old: FailoverState
    new: FailoverState
    trigger: str
    why: str = ""
    #: Set when ``(old, trigger)`` is not in the table: nothing was changed.
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"{self.old.keyword}: {self.error}"
        return f"I move from {self.old.keyword} to {self.new.keyword} ({self.trigger}: {self.why})"


@dataclass
class StateMachine:
    """One relationship's own and partner state; pure (``now`` is always passed in).

    Returns :class:`Action` lists; ``state_changed`` tells the connection to send STATE.
    """

    role: Role
    mclt: int
    own: FailoverState
    stos: float
    partner: FailoverState = S.UNKNOWN_STATE
    partner_stos: float = 0.0
    #: ``auto-partner-down`` seconds (0: off).
    auto_partner_down: int = 0
    #: The persisted state while in STARTUP; ``None`` otherwise.
    saved: FailoverState | None = None
    history: list[Transition] = field(default_factory=list)
    #: Deadlines (``now`` values) of the machine's own timers.
    mclt_deadline: float | None = None
    auto_partner_down_deadline: float | None = None
    #: Set by every own move; the connection clears it after sending STATE.
    state_changed: bool = False
    _previous_partner: FailoverState = S.UNKNOWN_STATE

    # -- what the rest of the server asks --------------------------------------------
    @property
    def in_startup(self) -> bool:
        return self.own is S.STARTUP

    @property
    def reported_state(self) -> FailoverState:
        """The state sent in STATE and persisted: the saved state during startup."""
        return self.saved if self.saved is not None else self.own

    def serving(self) -> bool:
        """Whether this server answers DHCP clients now (§8.1)."""
        if self.own not in SERVING_STATES:
            return False
        return self.partner not in (
            S.PARTNER_DOWN,
            S.POTENTIAL_CONFLICT,
            S.CONFLICT_DONE,
            S.RESOLUTION_INTERRUPTED,
        )

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.mclt_deadline, self.auto_partner_down_deadline) if d]
        return min(deadlines) if deadlines else None

    # -- triggers --------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Enter the startup phase remembering the persisted state (STOS unchanged)."""
        self._move(S.STARTUP, now, "process start", "startup phase", keep_stos=True)

    def handle_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.mclt_deadline is not None and now >= self.mclt_deadline:
            self.mclt_deadline = None
            actions += self.fire(Trigger.MCLT_PASSED, now)
        if self.auto_partner_down_deadline is not None and now >= self.auto_partner_down_deadline:
            self.auto_partner_down_deadline = None
            actions += self.fire(Trigger.AUTO_PARTNER_DOWN, now)
        return actions

    def fire(self, trigger: Trigger, now: float) -> list[Action]:
        """A trigger other than a partner state (link down, UPDDONE, timers, operator)."""
        if self.in_startup:
            assert self.saved is not None
            if trigger is Trigger.LINK_DOWN:
                # dhcpd: "disconnect" in startup applies the rule to the saved state and
                # leaves startup for the result.
                rule = TABLE[(self.saved, trigger)]
                target, _ = self._resolve(rule, now)
                return self._leave_startup(target or self.saved, now, trigger.value, rule.why)
            if trigger not in _ENDS_STARTUP:
                return []
            # An operator's state ends the startup phase like any other own move: recorded
            # and sent as STATE even when it equals the saved state, STOS kept (dhcpd's
            # dhcp_failover_set_state from startup; server/failover.c).
            rule = TABLE[(self.saved, trigger)]
            target, actions = self._resolve(rule, now)
            return actions + self._leave_startup(target or self.saved, now, trigger.value, rule.why)
        rule = TABLE.get((self.own, trigger))
        if rule is None:
            return self._unknown(trigger.value, now)
        return self._apply(rule, trigger.value, now)

    def partner_state(
        self, state: FailoverState, now: float, *, startup_flag: bool
    ) -> list[Action]:
        """The partner sent STATE ``state`` (with or without the STARTUP flag)."""
        repeated = state == self.partner
        own = self.saved if self.in_startup else self.own
        assert own is not None
        if repeated and self.in_startup:
            # dhcp_failover_peer_state_changed: a repeated partner state in startup goes
            # straight to the saved state (resolution-interrupted: potential-conflict) and
            # returns before the state matrix (server/failover.c, "case startup").
            target = S.POTENTIAL_CONFLICT if own is S.RESOLUTION_INTERRUPTED else own
            return self._leave_startup(target, now, f"partner {state.keyword}", "repeated")
        if repeated and not self.in_startup and own in _REPEAT_IGNORED:
            return []
        if not repeated:
            self._previous_partner = self.partner
            self.partner = state
            self.partner_stos = now
        if own is S.PARTNER_DOWN and startup_flag:
            # A partner still starting up reports its saved state: not news. dhcpd checks
            # this on the saved state too, then leaves startup for it (server/failover.c,
            # dhcp_failover_peer_state_changed: "case partner_down: if (startupp) break;").
            if self.in_startup:
                return self._leave_startup(own, now, f"partner {state.keyword}", "")
            return []
        rule = TABLE.get((own, state))
        if rule is None:
            return self._unknown(f"partner {state.keyword}", now)
        trigger = f"partner {state.keyword}"
        if self.in_startup:
            target, actions = self._resolve(rule, now)
            target = rule.in_startup or target
            if rule.after_startup:
                actions = []
            return actions + self._leave_startup(
                target or own, now, trigger, rule.why or "partner answered"
            )
        return self._apply(rule, trigger, now)

    # -- internals -------------------------------------------------------------------
    def _guard(self, guard: Guard, now: float) -> bool:
        if guard is Guard.MCLT_WAIT:
            return self.stos + self.mclt > now and self.partner not in (
                S.RECOVER,
                S.RECOVER_DONE,
            )
        if guard is Guard.IS_PRIMARY:
            return self.role is Role.PRIMARY
        if guard is Guard.PEER_WAS_POTENTIAL_CONFLICT:
            return self._previous_partner is S.POTENTIAL_CONFLICT
        return self.partner is S.CONFLICT_DONE

    def _resolve(self, rule: Rule, now: float) -> tuple[FailoverState | None, list[Action]]:
        """The rule's destination and actions once its guard is evaluated."""
        if rule.guard is None or self._guard(rule.guard, now):
            return rule.next, list(rule.actions)
        return rule.otherwise, [] if rule.guard_actions else list(rule.actions)

    def _apply(self, rule: Rule, trigger: str, now: float) -> list[Action]:
        target, actions = self._resolve(rule, now)
        target = self._special_cases(trigger, target)
        if target is None or (target is self.own and not rule.reenter):
            return actions
        return actions + self._move(target, now, trigger, rule.why)

    def _special_cases(self, trigger: str, target: FailoverState | None) -> FailoverState | None:
        # UPDDONE in potential-conflict: the secondary follows a primary that already
        # reached conflict-done into normal; a primary whose secondary claims conflict-done
        # is in an illegal pair and shuts down (dhcp_failover_process_update_done).
        if trigger == Trigger.UPDDONE.value and self.own is S.POTENTIAL_CONFLICT:
            if self.role is Role.SECONDARY:
                return S.NORMAL if self.partner is S.CONFLICT_DONE else None
            return S.SHUTDOWN if self.partner is S.CONFLICT_DONE else S.CONFLICT_DONE
        return target

    def _leave_startup(
        self, target: FailoverState, now: float, trigger: str, why: str
    ) -> list[Action]:
        if target is not S.STARTUP:  # an operator's startup keeps the state it remembers
            self.saved = None
        return self._move(target, now, trigger, why, keep_stos=True)

    def _unknown(self, trigger: str, now: float) -> list[Action]:
        own = self.reported_state
        error = f"no transition for {trigger} in {own.keyword}; state kept"
        self.history.append(Transition(now, self.own, self.own, trigger, error=error))
        return []

    def _move(
        self,
        target: FailoverState,
        now: float,
        trigger: str,
        why: str,
        *,
        keep_stos: bool = False,
    ) -> list[Action]:
        old = self.own
        self.history.append(Transition(now, old, target, trigger, why))
        self.own = target
        self.state_changed = True
        if target is S.STARTUP and old is not S.STARTUP:
            self.saved = old  # what startup returns to (dhcp_failover_set_state)
        if not keep_stos and target not in (S.RECOVER_WAIT, S.STARTUP):
            self.stos = now
        self.auto_partner_down_deadline = None
        self.mclt_deadline = None
        actions: list[Action] = []
        if old in _REQUEUE_ON_LEAVING:
            actions.append(Action.REQUEUE_UNACKED)
        if target is S.STARTUP:
            return actions
        actions += ENTRY_ACTIONS.get(target, ())
        if target is S.POTENTIAL_CONFLICT and (
            self.role is Role.PRIMARY or self.partner is S.CONFLICT_DONE
        ):
            actions.append(Action.SEND_UPDREQ)
        if target is S.COMMUNICATIONS_INTERRUPTED and self.auto_partner_down > 0:
            self.auto_partner_down_deadline = now + self.auto_partner_down
        if target is S.RECOVER_WAIT:
            if self.stos + self.mclt > now:
                self.mclt_deadline = self.stos + self.mclt
            else:
                actions += self.fire(Trigger.MCLT_PASSED, now)
        return actions
