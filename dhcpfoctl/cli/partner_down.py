"""``dhcpfoctl partner-down`` and ``dhcpfoctl set-state``: forced failover transitions, safely.

partner-down tells the server it talks to that its partner is really down, so that it
serves every client and, MCLT later, the partner's free leases. Done while the partner
still serves clients it is a split brain: both hand out the same addresses. So it refuses
unless the local server is in communications-interrupted (or resolution-interrupted) and
the partner looks dead — its OMAPI does not answer and its failover port does not accept a
TCP connection from here — unless ``--force`` (which still prints the danger). It shows the
plan, asks on a terminal (``--yes`` for scripts, ``--dry-run`` to stop there), writes
``local-state`` = 4 as a 4-byte integer, re-opens the object on a new connection to verify
the state reached, and prints the countdown (local-stos + MCLT).

JSON (``--json``)::

    {"action": "partner-down", "server": "…", "endpoint": "10.98.0.6:7911",
     "relationship": "lab", "role": "secondary", "dry_run": false, "forced": false,
     "performed": true,
     "before": {"local_state": "communications-interrupted", "local_stos": 1795851365,
                "partner_state": "normal"},
     "after": {"local_state": "partner-down", "local_stos": 1795851400},   # null if not done
     "partner": {"omapi": "10.98.0.2:7911", "omapi_answers": false,
                 "failover": "10.99.1.1:647", "failover_port_open": null,  # null: no answer
                 "alive": false,
                 "down_confirmed": true,   # a port refused us (silence alone proves nothing)
                 "evidence": ["…one line per probe…"]},
     # warnings: e.g. the caution printed when the partner gave only silence
     "mclt": 30, "peer_leases_usable_at": 1795851430, "peer_leases_usable_at_iso": "…",
     "warnings": [],
     "error": null}   # or the line of a refusal/failure that came after the state was
                      # read (the exit status says which); failures before print no JSON
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from dhcpfoctl.cli.options import (
    DEFAULT_TIMEOUT,
    ConfigFile,
    Key,
    KeyFile,
    KeyName,
    Peers,
    Profile,
    Timeout,
    with_argument_fixed,
)

if TYPE_CHECKING:
    from dhcpfoctl.model import FailoverState
    from dhcpfoctl.omapi.failover import FailoverInfo
    from dhcpfoctl.profile import ServerSpec, Targets

LOCAL_HELP = "The server to change: HOST[:PORT], or a server label of the profile."
PARTNER_HELP = "The partner's OMAPI HOST[:PORT] (default: the profile's other server)."
PARTNER_FAILOVER_HELP = (
    "The partner's failover HOST[:PORT] (default: profile failover_address, or `peer address`"
    " / `peer port` in --config)."
)
FORCE_HELP = "Act even when the partner looks alive (split-brain risk: read the warning)."


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


def _transitions() -> dict[FailoverState, frozenset[FailoverState]]:
    """Target state → the local states from which an operator may force it.

    partner-down is the documented administrative transition; shutdown (from normal only,
    where the partner hears it and takes over in partner-down) is the planned-maintenance
    one, and recover (from shutdown only) its way back: dhcpd 4.4.3 persists a forced
    shutdown across restarts and leaves it by no other means. Nothing else is ever written.
    """
    from dhcpfoctl.model import FailoverState as S

    return {
        S.PARTNER_DOWN: frozenset({S.COMMUNICATIONS_INTERRUPTED, S.RESOLUTION_INTERRUPTED}),
        S.SHUTDOWN: frozenset({S.NORMAL}),
        S.RECOVER: frozenset({S.SHUTDOWN}),
    }


def set_state(
    state: str = typer.Argument(
        ...,
        metavar="STATE",
        help="partner-down; shutdown (from normal); recover (from shutdown).",
    ),
    server: list[str] | None = typer.Option(
        None, "--server", "-s", metavar="HOST[:PORT]", help=LOCAL_HELP
    ),
    partner: str | None = typer.Option(None, "--partner", metavar="HOST[:PORT]", help=PARTNER_HELP),
    partner_failover: str | None = typer.Option(
        None, "--partner-failover", metavar="HOST[:PORT]", help=PARTNER_FAILOVER_HELP
    ),
    profile: Profile = None,
    peer: Peers = None,
    config: ConfigFile = None,
    key: Key = None,
    key_file: KeyFile = None,
    key_name: KeyName = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and stop."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Force a failover state an operator may legitimately force, verified by read-back."""
    options = locals()
    options["server"] = server or []
    options["peer"] = peer or []
    _run(options.pop("state"), options)


partner_down = with_argument_fixed(
    set_state,
    "state",
    "partner-down",
    doc="Put a server into partner-down after its partner failed, with safety checks.",
)


def _run(state_name: str, options: dict[str, Any]) -> None:
    from dhcpfoctl.cli.output import reported_errors, warn
    from dhcpfoctl.errors import LocalError
    from dhcpfoctl.model import FailoverState
    from dhcpfoctl.profile import KeyOptions, resolve_targets

    with reported_errors():
        transitions = _transitions()
        try:
            target = FailoverState.from_keyword(state_name)
        except ValueError:
            target = None
        if target not in transitions:
            allowed = ", ".join(s.keyword for s in transitions)
            raise LocalError(f"cannot force state {state_name!r}: only {allowed} may be set")
        assert target is not None
        servers = options["server"]
        if len(servers) != 1 and not options["profile"]:
            raise LocalError("give exactly one --server (the server to change)")
        targets = resolve_targets(
            servers=servers,
            profile_name=options["profile"],
            peers=options["peer"],
            config_path=options["config"],
            # pop: the typed secret is not kept in the options the action holds on to
            keys=KeyOptions(options.pop("key"), options["key_file"], options["key_name"]),
        )
        for message in targets.warnings:
            warn(message)
        from dhcpfoctl.cli.output import print_json
        from dhcpfoctl.errors import DhcpfoctlError

        action = _Action(target, transitions[target], targets, options)
        try:
            result = action.run()
        except DhcpfoctlError as exc:
            # A script is given the checks that led to a refusal, not only the stderr line.
            if options["json_output"] and action.result is not None:
                print_json(action.result | {"error": str(exc)})
            raise
        if options["json_output"]:
            print_json(result)


class _Action:
    """One forced transition: checks, plan, confirmation, write, read-back."""

    def __init__(
        self,
        target: FailoverState,
        allowed_from: frozenset[FailoverState],
        targets: Targets,
        options: dict[str, Any],
    ) -> None:
        from dhcpfoctl.errors import LocalError

        self.target = target
        self.allowed_from = allowed_from
        self.options = options
        self.timeout: float = options["timeout"]
        self.json = bool(options["json_output"])
        if len(targets.relationships) != 1:
            raise LocalError(
                f"several relationships ({', '.join(targets.relationships)}): pick one with --peer"
            )
        self.relationship = targets.relationships[0]
        self.local, self.partner = self._pick_servers(targets)
        self.partner_failover = self._partner_failover(targets)
        #: Whether connect()'s notes (a key fallback) were already shown.
        self._noted = False
        #: The JSON document, once the server's state was read.
        self.result: dict[str, Any] | None = None

    def _pick_servers(self, targets: Targets) -> tuple[ServerSpec, ServerSpec | None]:
        from dhcpfoctl.errors import LocalError
        from dhcpfoctl.omapi import format_endpoint
        from dhcpfoctl.profile import DEFAULT_OMAPI_PORT, ServerSpec, parse_endpoint

        servers = list(targets.servers)
        if len(self.options["server"]) > 1:
            raise LocalError("give exactly one --server (the server to change)")
        if len(servers) == 1:
            local = servers[0]
        else:
            labels = ", ".join(spec.label for spec in servers)
            raise LocalError(f"which server should change? give --server (one of: {labels})")
        partner: ServerSpec | None = None
        if self.options["partner"]:
            host, port = parse_endpoint(self.options["partner"], DEFAULT_OMAPI_PORT, "--partner")
            partner = ServerSpec(label=format_endpoint(host, port), host=host, port=port)
        else:
            others = [s for s in targets.profile_servers if s.endpoint != local.endpoint]
            partner = others[0] if len(others) == 1 else None
        return local, partner

    def _partner_failover(self, targets: Targets) -> tuple[str, int] | None:
        from dhcpfoctl.profile import DEFAULT_FAILOVER_PORT, parse_endpoint

        if text := self.options["partner_failover"]:
            return parse_endpoint(text, DEFAULT_FAILOVER_PORT, "--partner-failover")
        if self.partner is not None and self.partner.failover_address:
            return self.partner.failover_address, (
                self.partner.failover_port or DEFAULT_FAILOVER_PORT
            )
        config = targets.config
        if config is None and self.local.config:
            from dhcpfoctl.conf import read_config

            config = read_config(self.local.config)
        declared = config.failover_peers.get(self.relationship) if config is not None else None
        if declared is not None and declared.peer_address:
            return declared.peer_address, declared.peer_port
        return None

    # -- the steps ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from dhcpfoctl.errors import RefusedError
        from dhcpfoctl.model import FailoverState
        from dhcpfoctl.times import iso_utc

        before = self._read()
        result: dict[str, Any] = {
            "action": self.target.keyword,
            "server": self.local.label,
            "endpoint": self.local.endpoint,
            "relationship": self.relationship,
            "role": before.role,
            "dry_run": bool(self.options["dry_run"]),
            "forced": bool(self.options["force"]),
            "performed": False,
            "before": {
                "local_state": before.local_state.keyword,
                "local_stos": before.local_stos,
                "partner_state": before.partner_state.keyword,
            },
            "after": None,
            "partner": None,
            "mclt": before.mclt,
            "peer_leases_usable_at": None,
            "peer_leases_usable_at_iso": None,
            "warnings": [],
            "error": None,
        }
        self.result = result
        if before.local_state == self.target:
            self._say(
                f"{self.local.label} is already {self.target.keyword} for {self.relationship!r}"
                f" (since {iso_utc(before.local_stos)}); nothing to do."
            )
            self._fill_countdown(result, before)
            return result
        if before.local_state not in self.allowed_from:
            allowed = " or ".join(s.keyword for s in sorted(self.allowed_from))
            raise RefusedError(
                f"{self.local.endpoint}: {self.relationship!r} is {before.local_state.keyword}; "
                f"{self.target.keyword} may only be forced from {allowed}"
            )
        warnings: list[str] = result["warnings"]
        if self.target == FailoverState.PARTNER_DOWN:
            probe = self._probe_partner()
            result["partner"] = {
                "omapi": probe.omapi,
                "omapi_answers": probe.omapi_answers,
                "failover": probe.failover,
                "failover_port_open": probe.failover_port_open,
                "alive": probe.alive,
                "down_confirmed": probe.down_confirmed,
                "evidence": probe.evidence,
            }
            danger = _danger(probe)
            if danger is None:  # otherwise the refusal or DANGER line quotes the evidence
                for line in probe.evidence:
                    self._say(f"partner check: {line}")
            if danger:
                if not self.options["force"]:
                    raise RefusedError(f"{self.local.endpoint}: refusing partner-down: {danger}")
                warnings.append(f"--force given although {danger}")
                self._warn(f"DANGER: --force given although {danger}")
            elif not probe.down_confirmed:
                silent = (
                    "the partner did not answer at all from here (no connection refused): "
                    "make sure it is down, not only cut off from this host, or it may still "
                    "serve clients"
                )
                warnings.append(silent)
                self._warn(f"caution: {silent}")
        self._show_plan(before)
        if self.options["dry_run"]:
            self._say("dry run: nothing was changed.")
            return result
        self._confirm()
        self._write()
        result["performed"] = True
        after = self._read()
        result["after"] = {"local_state": after.local_state.keyword, "local_stos": after.local_stos}
        if after.local_state not in _reached(self.target):
            from dhcpfoctl.errors import RemoteError

            raise RemoteError(
                self.local.endpoint,
                f"the server accepted local-state={self.target.keyword} but reads back "
                f"{after.local_state.keyword}",
            )
        self._say(
            f"verified: {self.local.label} is now {after.local_state.keyword} for "
            f"{self.relationship!r} (read back on a new connection)."
        )
        self._fill_countdown(result, after)
        return result

    def _fill_countdown(self, result: dict[str, Any], info: FailoverInfo) -> None:
        from dhcpfoctl.model import FailoverState
        from dhcpfoctl.times import format_local_time, iso_utc

        if info.local_state != FailoverState.PARTNER_DOWN:
            return
        usable = info.local_stos + info.mclt
        result["peer_leases_usable_at"] = usable
        result["peer_leases_usable_at_iso"] = iso_utc(usable)
        self._say(
            f"countdown: the partner's free leases become usable "
            f"{format_local_time(usable, int(time.time()))} (local-stos + MCLT {info.mclt}s)."
        )

    def _read(self) -> FailoverInfo:
        from dhcpfoctl.checks.gather import connect
        from dhcpfoctl.omapi.failover import read_failover

        client, notes = connect(self.local, self.timeout)
        # Said before any refusal that follows (e.g. NOKEYS after an unknown key).
        for note in notes if not self._noted else ():
            self._warn(f"note: {self.local.label} {note}")
        self._noted = True
        with client:
            return read_failover(client, self.relationship)

    def _write(self) -> None:
        from dhcpfoctl.checks.gather import connect
        from dhcpfoctl.omapi.failover import read_failover, write_local_state

        client, _ = connect(self.local, self.timeout)
        with client:
            # Re-open on this connection: handles are per server, and the state may have
            # moved since the checks; refuse if it left the allowed states meanwhile.
            current = read_failover(client, self.relationship)
            if current.local_state not in self.allowed_from:
                from dhcpfoctl.errors import RefusedError

                raise RefusedError(
                    f"{self.local.endpoint}: state changed to {current.local_state.keyword} "
                    "while checking; nothing written"
                )
            write_local_state(client, current, self.target)

    def _probe_partner(self) -> PartnerProbe:
        from dhcpfoctl.checks.gather import connect, tcp_port_open
        from dhcpfoctl.errors import DhcpfoctlError
        from dhcpfoctl.omapi import format_endpoint
        from dhcpfoctl.omapi.client import OmapiClient
        from dhcpfoctl.omapi.errors import (
            ConnectionRefusedByHostError,
            TimedOutError,
            UnreachableError,
        )
        from dhcpfoctl.omapi.failover import read_failover

        probe = PartnerProbe()
        if self.partner is not None:
            partner = self.partner
            probe.omapi = partner.endpoint
            try:
                # The startup exchange alone proves a dhcpd runs there; no key needed.
                with OmapiClient(partner.host, partner.port, None, timeout=self.timeout):
                    pass
            except (UnreachableError, TimedOutError) as exc:
                probe.omapi_answers = False
                probe.omapi_refused = isinstance(exc, ConnectionRefusedByHostError)
                probe.evidence.append(
                    f"partner OMAPI {probe.omapi} does not answer ({exc.message})"
                )
            except DhcpfoctlError as exc:
                probe.omapi_answers = True
                probe.evidence.append(f"partner OMAPI {probe.omapi} answers (but: {exc.message})")
            else:
                probe.omapi_answers = True
                try:  # its state, for the operator; with its own key when the profile has one
                    client, _ = connect(partner, self.timeout)
                    with client:
                        probe.omapi_state = read_failover(
                            client, self.relationship
                        ).local_state.keyword
                    probe.evidence.append(
                        f"partner OMAPI {probe.omapi} answers: it is {probe.omapi_state}"
                    )
                except DhcpfoctlError:
                    probe.evidence.append(f"partner OMAPI {probe.omapi} answers")
        if self.partner_failover is not None:
            host, port = self.partner_failover
            probe.failover = format_endpoint(host, port)
            probe.failover_port_open = tcp_port_open(host, port, self.timeout)
            verdict = {
                True: "accepts TCP connections: its dhcpd is running",
                False: "refuses connections: no dhcpd listening there",
                None: "does not answer from here",
            }[probe.failover_port_open]
            probe.evidence.append(f"partner failover port {probe.failover} {verdict}")
        return probe

    def _show_plan(self, before: FailoverInfo) -> None:
        from dhcpfoctl.model import FailoverState
        from dhcpfoctl.times import format_local_time

        now = int(time.time())
        # What the label does not already say (a --server label is the endpoint itself).
        about = ", ".join(
            part for part in (self.local.endpoint, before.role) if part != self.local.label
        )
        lines = [
            f"{self.local.label} ({about}), relationship {self.relationship!r}: "
            f"{before.local_state.keyword} -> {self.target.keyword}",
        ]
        if self.target == FailoverState.PARTNER_DOWN:
            lines += [
                "it will answer every client and renew the partner's clients at once;",
                f"from {format_local_time(now + before.mclt, now)} (now + MCLT {before.mclt}s) it "
                "also hands out the partner's free leases and every expired or released one;",
                "a lease the partner granted is reusable once it ends: at the latest MCLT after "
                "the end this server last heard of (the partner never extends one further).",
                "Make sure the partner really is down (or cut off from every client) until it "
                "returns and recovers: otherwise both hand out the same addresses.",
            ]
        elif self.target == FailoverState.SHUTDOWN:
            lines += [
                "it will stop serving DHCP; its partner, on hearing shutdown, moves to "
                "partner-down and serves everyone.",
                "It stays in shutdown, even across a dhcpd restart, until "
                "`dhcpfoctl set-state recover` brings it back.",
            ]
        else:
            lines += [
                "it will resynchronise with its partner (recover, recover-wait up to MCLT "
                f"{before.mclt}s, recover-done) and serve again once both are normal.",
            ]
        for line in lines:
            self._say(line)

    def _confirm(self) -> None:
        from dhcpfoctl.errors import RefusedError

        if self.options["yes"]:
            return
        # $CI marks automation (pipelines often allocate a pseudo-terminal): a forced state
        # change there must say --yes explicitly, never wait on a prompt nobody answers.
        if not (sys.stdin.isatty() and sys.stderr.isatty()) or os.environ.get("CI"):
            raise RefusedError("not on a terminal: pass --yes to confirm, or --dry-run")
        if not typer.confirm(f"Set {self.target.keyword} on {self.local.label}?", err=True):
            raise RefusedError("not confirmed; nothing was changed")

    def _say(self, line: str) -> None:
        """Plan and progress: stdout for humans, stderr when stdout carries JSON."""
        from dhcpfoctl.cli.output import stderr_console, stdout_console

        console = stderr_console() if self.json else stdout_console()
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _warn(self, line: str) -> None:
        from dhcpfoctl.cli.output import stderr_console

        stderr_console().print(
            line, style="bold red", markup=False, highlight=False, soft_wrap=True
        )


def _reached(target: FailoverState) -> frozenset[FailoverState]:
    """States whose read-back proves ``target`` was entered.

    recover is left on its own within moments (to recover-wait, recover-done, normal), so
    any of those counts; partner-down and shutdown stay until something else happens.
    """
    from dhcpfoctl.model import FailoverState as S

    if target == S.RECOVER:
        return frozenset({S.RECOVER, S.RECOVER_WAIT, S.RECOVER_DONE, S.NORMAL})
    return frozenset({target})


def _danger(probe: PartnerProbe) -> str | None:
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
