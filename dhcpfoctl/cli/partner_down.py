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
    from dhcpfoctl.model import FailoverState
    from dhcpfoctl.omapi.failover import FailoverInfo
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

        action = _Action(target, targets, options)
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

    def __init__(self, target: FailoverState, targets: Targets, options: dict[str, Any]) -> None:
        from dhcpfoctl.checks.partner_down import partner_failover, pick_servers
        from dhcpfoctl.errors import LocalError

        self.target = target
        self.options = options
        self.timeout: float = options["timeout"]
        self.json = bool(options["json_output"])
        if len(targets.relationships) != 1:
            raise LocalError(
                f"several relationships ({', '.join(targets.relationships)}): pick one with --peer"
            )
        self.relationship = targets.relationships[0]
        self.local, self.partner = pick_servers(targets, len(options["server"]), options["partner"])
        self.partner_failover = partner_failover(
            options["partner_failover"], self.partner, self.local, targets, self.relationship
        )
        #: Whether connect()'s notes (a key fallback) were already shown.
        self._noted = False
        #: The JSON document, once the server's state was read.
        self.result: dict[str, Any] | None = None

    # -- the steps ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from dhcpfoctl.checks import partner_down as policy
        from dhcpfoctl.checks.gather import probe_partner
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
        policy.refuse_unless_allowed(
            self.local.endpoint, self.relationship, before.local_state, self.target
        )
        if self.target == FailoverState.PARTNER_DOWN:
            probe = probe_partner(
                self.partner, self.partner_failover, self.relationship, self.timeout
            )
            result["partner"] = {
                "omapi": probe.omapi,
                "omapi_answers": probe.omapi_answers,
                "failover": probe.failover,
                "failover_port_open": probe.failover_port_open,
                "alive": probe.alive,
                "down_confirmed": probe.down_confirmed,
                "evidence": probe.evidence,
            }
            warning = policy.judge_partner(
                probe, force=bool(self.options["force"]), endpoint=self.local.endpoint
            )
            if warning is None or not warning.forced:  # else the DANGER line quotes them
                for line in probe.evidence:
                    self._say(f"partner check: {line}")
            if warning is not None:
                result["warnings"].append(warning.text)
                self._warn(f"{warning.label}: {warning.text}")
        for line in policy.plan(
            self.local, self.relationship, before, self.target, int(time.time())
        ):
            self._say(line)
        if self.options["dry_run"]:
            self._say("dry run: nothing was changed.")
            return result
        self._confirm()
        self._write()
        result["performed"] = True
        after = self._read()
        result["after"] = {"local_state": after.local_state.keyword, "local_stos": after.local_stos}
        if after.local_state not in policy.reached(self.target):
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
        from dhcpfoctl.checks.partner_down import refuse_if_moved
        from dhcpfoctl.omapi.failover import read_failover, write_local_state

        client, _ = connect(self.local, self.timeout)
        with client:
            # Re-open on this connection: handles are per server, and the state may have
            # moved since the checks; refuse if it left the allowed states meanwhile.
            current = read_failover(client, self.relationship)
            refuse_if_moved(self.local.endpoint, current.local_state, self.target)
            write_local_state(client, current, self.target)

    def _confirm(self) -> None:
        from dhcpfoctl.errors import RefusedError

        if self.options["yes"]:
            return
        # $CI marks automation (pipelines often allocate a pseudo-terminal): a forced state
        # change there must say --yes explicitly, never wait on a prompt nobody answers.
        if not (sys.stdin.isatty() and sys.stderr.isatty()) or os.environ.get("CI"):
            raise RefusedError("not on a terminal: pass --yes to confirm, or --dry-run")
        from dhcpfoctl.cli.output import confirm

        if not confirm(f"Set {self.target.keyword} on {self.local.label}?"):
            raise RefusedError("not confirmed; nothing was changed")

    def _say(self, line: str) -> None:
        """Plan and progress: stdout for humans, stderr when stdout carries JSON."""
        from dhcpfoctl.cli.output import say

        say(line, err=self.json)

    def _warn(self, line: str) -> None:
        from dhcpfoctl.cli.output import say

        say(line, style="bold red", err=True)
