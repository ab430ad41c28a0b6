"""The safety policy of forced failover transitions (``partner-down``, ``set-state``).

Which states may be forced and from where, whom to ask whether the partner lives, whether
its answers allow partner-down (refused while it looks alive, unless forced), the plan shown
before acting, and which read-back proves the state was reached. Pure, except that
:func:`partner_failover` may read the dhcpd.conf that declares the peer; the probe itself is
:func:`dhcpfoctl.checks.gather.probe_partner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from dhcpfoctl.errors import LocalError, RefusedError
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi import OMAPI_PORT, format_endpoint
from dhcpfoctl.omapi.failover import FailoverInfo
from dhcpfoctl.profile import ServerSpec, Targets, parse_endpoint
from dhcpfoctl.times import format_duration, format_local_time

#: Target state → the local states from which an operator may force it.
#:
#: partner-down is the documented administrative transition; shutdown (from normal only,
#: where the partner hears it and takes over in partner-down) is the planned-maintenance
#: one, and recover (from shutdown only) its way back: dhcpd 4.4.3 persists a forced
#: shutdown across restarts and leaves it by no other means. Nothing else is ever written.
TRANSITIONS: Final[dict[FailoverState, frozenset[FailoverState]]] = {
    FailoverState.PARTNER_DOWN: frozenset(
        {FailoverState.COMMUNICATIONS_INTERRUPTED, FailoverState.RESOLUTION_INTERRUPTED}
    ),
    FailoverState.SHUTDOWN: frozenset({FailoverState.NORMAL}),
    FailoverState.RECOVER: frozenset({FailoverState.SHUTDOWN}),
}


def target_state(name: str) -> FailoverState:
    """The state ``name`` if an operator may force it (see :data:`TRANSITIONS`)."""
    try:
        target = FailoverState.from_keyword(name)
    except ValueError:
        pass  # not a state at all: refused below like one that may not be forced
    else:
        if target in TRANSITIONS:
            return target
    allowed = ", ".join(s.keyword for s in TRANSITIONS)
    raise LocalError(f"cannot force state {name!r}: only {allowed} may be set")


def refuse_unless_allowed(
    endpoint: str, relationship: str, state: FailoverState, target: FailoverState
) -> None:
    """Refuse forcing ``target`` from the local ``state`` unless :data:`TRANSITIONS` allows."""
    allowed_from = TRANSITIONS[target]
    if state not in allowed_from:
        allowed = " or ".join(s.keyword for s in sorted(allowed_from))
        raise RefusedError(
            f"{endpoint}: {relationship!r} is {state.keyword}; "
            f"{target.keyword} may only be forced from {allowed}"
        )


def refuse_if_moved(endpoint: str, state: FailoverState, target: FailoverState) -> None:
    """Refuse the write when the state left the allowed ones since the checks."""
    if state not in TRANSITIONS[target]:
        raise RefusedError(
            f"{endpoint}: state changed to {state.keyword} while checking; nothing written"
        )


def reached(target: FailoverState) -> frozenset[FailoverState]:
    """States whose read-back proves ``target`` was entered.

    recover is left on its own within moments (to recover-wait, recover-done, normal), so
    any of those counts; partner-down and shutdown stay until something else happens.
    """
    if target == FailoverState.RECOVER:
        return frozenset(
            {
                FailoverState.RECOVER,
                FailoverState.RECOVER_WAIT,
                FailoverState.RECOVER_DONE,
                FailoverState.NORMAL,
            }
        )
    return frozenset({target})


# -- the partner ------------------------------------------------------------------------


def pick_servers(
    targets: Targets, servers_given: int, partner: str | None
) -> tuple[ServerSpec, ServerSpec | None]:
    """The server to change and its partner's OMAPI (``--partner``, else the profile's
    other server, else unknown). ``servers_given`` counts the ``--server`` options."""
    servers = list(targets.servers)
    if servers_given > 1:
        raise LocalError("give exactly one --server (the server to change)")
    if len(servers) == 1:
        local = servers[0]
    else:
        labels = ", ".join(spec.label for spec in servers)
        raise LocalError(f"which server should change? give --server (one of: {labels})")
    if partner:
        host, port = parse_endpoint(partner, OMAPI_PORT, "--partner")
        return local, ServerSpec(label=format_endpoint(host, port), host=host, port=port)
    others = [s for s in targets.profile_servers if s.endpoint != local.endpoint]
    return local, others[0] if len(others) == 1 else None


def partner_failover(
    given: str | None,
    partner: ServerSpec | None,
    local: ServerSpec,
    targets: Targets,
    relationship: str,
) -> tuple[str, int] | None:
    """Where the partner's failover port listens: ``--partner-failover``, the profile's
    ``failover_address``, or ``peer address``/``peer port`` of the dhcpd.conf."""
    # The config reader is heavy and status, which shares checks.gather, needs it rarely.
    from dhcpfoctl.conf import PEER_DEFAULTS, read_config

    default_port = PEER_DEFAULTS["peer_port"]
    if given:
        return parse_endpoint(given, default_port, "--partner-failover")
    if partner is not None and partner.failover_address:
        return partner.failover_address, (partner.failover_port or default_port)
    config = targets.config
    if config is None and local.config:
        config = read_config(local.config)
    declared = config.failover_peers.get(relationship) if config is not None else None
    if declared is not None and declared.peer_address:
        return declared.peer_address, declared.peer_port
    return None


@dataclass
class PartnerProbe:
    """What was learnt about the partner's liveness from here."""

    omapi: str | None = None
    omapi_answers: bool | None = None
    #: The partner's host reset the OMAPI connection: up, but no dhcpd listening.
    omapi_refused: bool = False
    omapi_state: str | None = None
    failover: str | None = None
    failover_port_open: bool | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return bool(self.omapi_answers or self.failover_port_open)

    @property
    def down_confirmed(self) -> bool:
        """A port refused us: positive evidence that dhcpd is not running there, as
        opposed to silence, which a partner that is only cut off from us also gives."""
        return self.omapi_refused or self.failover_port_open is False

    @property
    def checked(self) -> bool:
        return self.omapi is not None or self.failover is not None


def danger(probe: PartnerProbe) -> str | None:
    """Why partner-down would be dangerous now, or ``None`` when the partner looks dead."""
    if not probe.checked:
        return (
            "the partner's liveness cannot be checked (give --partner HOST[:PORT] and/or "
            "--partner-failover HOST[:PORT], a profile, or --config with `peer address`)"
        )
    if probe.alive:
        return (
            "the partner looks alive ("
            + "; ".join(e for e in probe.evidence if "answers" in e or "accepts" in e)
            + "): a partner cut off from this server may still be serving clients, and both "
            "would then hand out the same addresses (split brain)"
        )
    return None


@dataclass(frozen=True, slots=True)
class PartnerWarning:
    """Why going ahead with partner-down deserves a warning."""

    text: str
    #: Forced past a partner that looks alive; otherwise only silence, no refusal, was seen.
    forced: bool

    @property
    def label(self) -> str:
        return "DANGER" if self.forced else "caution"


def judge_partner(probe: PartnerProbe, *, force: bool, endpoint: str) -> PartnerWarning | None:
    """Refuse partner-down while the partner may be alive (unless ``force``); otherwise the
    warning to give, or ``None`` when a port refused us (the partner is confirmed down)."""
    if reason := danger(probe):
        if not force:
            raise RefusedError(f"{endpoint}: refusing partner-down: {reason}")
        return PartnerWarning(f"--force given although {reason}", forced=True)
    if not probe.down_confirmed:
        return PartnerWarning(
            "the partner did not answer at all from here (no connection refused): "
            "make sure it is down, not only cut off from this host, or it may still "
            "serve clients",
            forced=False,
        )
    return None


# -- the plan ---------------------------------------------------------------------------


def plan(
    local: ServerSpec, relationship: str, before: FailoverInfo, target: FailoverState, now: int
) -> list[str]:
    """What forcing ``target`` will do, as lines for the operator to confirm."""
    # What the label does not already say (a --server label is the endpoint itself).
    about = ", ".join(part for part in (local.endpoint, before.role) if part != local.label)
    lines = [
        f"{local.label} ({about}), relationship {relationship!r}: "
        f"{before.local_state.keyword} -> {target.keyword}",
    ]
    if target == FailoverState.PARTNER_DOWN:
        lines += [
            "it will answer every client and renew the partner's clients at once;",
            f"from {format_local_time(now + before.mclt, now)}"
            f" (now + MCLT {format_duration(before.mclt)}) it "
            "also hands out the partner's free leases and every expired or released one;",
            "a lease the partner granted is reusable once it ends: at the latest MCLT after "
            "the end this server last heard of (the partner never extends one further).",
            "Make sure the partner really is down (or cut off from every client) until it "
            "returns and recovers: otherwise both hand out the same addresses.",
        ]
    elif target == FailoverState.SHUTDOWN:
        lines += [
            "it will stop serving DHCP; its partner, on hearing shutdown, moves to "
            "partner-down and serves everyone.",
            "It stays in shutdown, even across a dhcpd restart, until "
            "`dhcpfoctl set-state recover` brings it back.",
        ]
    else:
        lines += [
            "it will resynchronise with its partner (recover, recover-wait up to MCLT "
            f"{format_duration(before.mclt)}, recover-done) and serve again once both are normal.",
        ]
    return lines
