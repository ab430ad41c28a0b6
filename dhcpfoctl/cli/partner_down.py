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
from typing import TYPE_CHECKING, Any

import typer

from dhcpfoctl.cli.options import (
    ConfigFile,
    Key,
    KeyFile,
    KeyName,
    Peers,
    Profile,
    Timeout,
    with_argument_fixed,
)
from dhcpfoctl.omapi import OMAPI_TIMEOUT

if TYPE_CHECKING:
    from dhcpfoctl.checks.force import ForcedTransition
    from dhcpfoctl.model import FailoverState
    from dhcpfoctl.profile import Targets

LOCAL_HELP = "The server to change: HOST[:PORT], or a server label of the profile."
PARTNER_HELP = "The partner's OMAPI HOST[:PORT] (default: the profile's other server)."
PARTNER_FAILOVER_HELP = (
    "The partner's failover HOST[:PORT] (default: profile failover_address, or `peer address`"
    " / `peer port` in --config)."
)
FORCE_HELP = "Act even when the partner looks alive (split-brain risk: read the warning)."


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
    timeout: Timeout = OMAPI_TIMEOUT,
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
    from dhcpfoctl.checks.partner_down import target_state
    from dhcpfoctl.cli.output import reported_errors, warn
    from dhcpfoctl.errors import LocalError
    from dhcpfoctl.profile import KeyOptions, resolve_targets

    with reported_errors():
        target = target_state(state_name)
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

        action = _action(target, targets, options)
        try:
            result = action.run()
        except DhcpfoctlError as exc:
            # A script is given the checks that led to a refusal, not only the stderr line.
            if options["json_output"] and action.result is not None:
                print_json(action.result | {"error": str(exc)})
            raise
        if options["json_output"]:
            print_json(result)


def _action(target: FailoverState, targets: Targets, options: dict[str, Any]) -> ForcedTransition:
    """The executor of :mod:`dhcpfoctl.checks.force` with this command's servers and lines."""
    from dhcpfoctl.checks.force import ForceCallbacks, ForcedTransition, ForceRequest
    from dhcpfoctl.checks.partner_down import partner_failover, pick_servers
    from dhcpfoctl.cli.output import say
    from dhcpfoctl.errors import LocalError

    if len(targets.relationships) != 1:
        raise LocalError(
            f"several relationships ({', '.join(targets.relationships)}): pick one with --peer"
        )
    relationship = targets.relationships[0]
    local, partner = pick_servers(targets, len(options["server"]), options["partner"])
    request = ForceRequest(
        target=target,
        local=local,
        relationship=relationship,
        partner=partner,
        partner_failover=partner_failover(
            options["partner_failover"], partner, local, targets, relationship
        ),
        timeout=options["timeout"],
        force=bool(options["force"]),
        dry_run=bool(options["dry_run"]),
    )
    json_output = bool(options["json_output"])
    return ForcedTransition(
        request,
        ForceCallbacks(
            # Plan and progress: stdout for humans, stderr when stdout carries JSON.
            say=lambda line: say(line, err=json_output),
            warn=lambda line: say(line, style="bold red", err=True),
            confirm=lambda question: _confirm(question, yes=bool(options["yes"])),
        ),
    )


def _confirm(question: str, *, yes: bool) -> bool:
    if yes:
        return True
    from dhcpfoctl.errors import RefusedError

    # $CI marks automation (pipelines often allocate a pseudo-terminal): a forced state
    # change there must say --yes explicitly, never wait on a prompt nobody answers.
    if not (sys.stdin.isatty() and sys.stderr.isatty()) or os.environ.get("CI"):
        raise RefusedError("not on a terminal: pass --yes to confirm, or --dry-run")
    from dhcpfoctl.cli.output import confirm

    return confirm(question)
