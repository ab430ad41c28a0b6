"""``dhcpfoctl status``: both servers' failover states, countdowns and warnings, as a check.

Servers come from ``--server HOST[:PORT]`` (repeat for the pair) and/or ``--profile``;
relationship names from ``--peer``, the profile, or ``--config`` dhcpd.conf. Exit status
is the health: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a server unreachable, a key refused,
a relationship unknown; also any error before the servers could be asked).

JSON (``--json``; with ``--watch`` one such document per line per poll)::

    {
      "now": 1795851400,                     # epoch seconds; every *_iso field is UTC ISO 8601
      "now_iso": "2026-11-28T08:30:00Z",
      "health": "warning",                   # ok | warning | critical | unknown
      "exit_status": 1,
      "profile": null,                       # profile name when one was used
      "relationships": ["lab"],
      "servers": [                           # one per server queried, in the order given
        {"label": "10.98.0.2:7911", "endpoint": "10.98.0.2:7911", "reachable": true,
         "signed": false, "error": null, "notes": []}
      ],
      "views": [                             # one per (server, relationship)
        {"server": "10.98.0.2:7911", "endpoint": "10.98.0.2:7911", "relationship": "lab",
         "reachable": true, "error": null,   # error: one line when this view is unknown
         "role": "primary",                  # from hierarchy: primary | secondary
         "local_state": "communications-interrupted", "local_state_code": 3,
         "partner_state": "normal", "partner_state_code": 2,
         "local_stos": 1795851365, "local_stos_iso": "…",
         "time_in_state": 35,                # null in startup and recover-wait, which dhcpd
                                             # enters without setting local-stos
         "partner_stos": 1795851355, "partner_stos_iso": "…",
         "communications_interrupted_for": 35,   # null unless in communications-interrupted
         "mclt": 30,
         "mclt_ends": null, "mclt_ends_iso": null,   # local-stos + MCLT in partner-down
         "mclt_remaining": null,                     # (peer's leases usable) / recover-wait
         "max_response_delay": 10,
         "unacked_updates": 0, "max_unacked_updates": 10,
         "load_balance_max_seconds": 3, "load_balance_primary_buckets": 128,
         "endurance": null,          # in communications-interrupted, when the profile names
                                     # this server's readable leases (+ config) file:
                                     # {"seconds": 7200 | null, "rate_per_hour": 12.5,
                                     #  "window": 86400, "leases": "…", "reason": null | "…"}
                                     # rate: new bindings remembered between runs (README
                                     # Monitoring) over "window" seconds of that history
         "pools": [{"address": "10.99.0.100", "lease_count": 151,
                    "free_leases": 70, "backup_leases": 71}]}
      ],
      "findings": [                          # what the operator should know, worst first;
                                             # "ok" ones are notes (a single full sample of
                                             # the unacked-updates window)
        {"health": "warning", "code": "communications-interrupted",
         "server": "10.98.0.2:7911", "relationship": "lab", "message": "…"}
      ]
    }

When the command line, profile or config is unusable (nothing could be asked), ``--json``
still prints this shape: empty servers/views and one finding with code ``error``.

Finding codes: error, unreachable, relationship-error, communications-interrupted, partner-down,
split-brain-risk, recover-wait, not-serving, transition, no-service, disagreement,
same-role, unacked-updates. Times of an unreachable view are null.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

from dhcpfoctl.cli.options import (
    ConfigFile,
    Key,
    KeyFile,
    KeyName,
    NoState,
    Peers,
    Profile,
    StateMaxAge,
    StatusFormat,
    Timeout,
    format_option,
)
from dhcpfoctl.omapi import OMAPI_PORT, OMAPI_TIMEOUT

if TYPE_CHECKING:
    from rich.console import RenderableType

    from dhcpfoctl.checks.health import ServerView, StatusReport
    from dhcpfoctl.errors import CheckResult
    from dhcpfoctl.profile import Targets

SERVER_HELP = f"OMAPI server HOST[:PORT] (default port {OMAPI_PORT}); repeat for both servers."


def status(
    server: list[str] | None = typer.Option(
        None, "--server", "-s", metavar="HOST[:PORT]", help=SERVER_HELP
    ),
    profile: Profile = None,
    peer: Peers = None,
    config: ConfigFile = None,
    key: Key = None,
    key_file: KeyFile = None,
    key_name: KeyName = None,
    timeout: Timeout = OMAPI_TIMEOUT,
    output_format: StatusFormat = format_option(
        StatusFormat,
        "human: a table per relationship and the findings; nagios: one line (health,"
        " summary, perfdata); json: every field (shape in the docs).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
    watch: bool = typer.Option(
        False, "--watch", "-w", help="Redraw every --interval seconds until Ctrl-C."
    ),
    interval: float = typer.Option(
        2.0, "--interval", min=0.2, metavar="SECONDS", help="Seconds between polls."
    ),
    count: int | None = typer.Option(
        None, "--count", min=1, metavar="N", help="Stop after N polls."
    ),
    no_state: NoState = False,
    state_max_age: StateMaxAge = "1h",
    unacked_for: str = typer.Option(
        "30s", "--unacked-for", metavar="DURATION", help="Warn when the window stays full."
    ),
) -> None:
    """Show both servers' failover state, countdowns and warnings (exit 0/1/2/3)."""
    from dhcpfoctl.cli.output import echo, exit_with, nagios_status_line, reported_errors, warn
    from dhcpfoctl.errors import DhcpfoctlError, LocalError
    from dhcpfoctl.profile import KeyOptions, resolve_targets
    from dhcpfoctl.times import parse_duration

    nagios = output_format is StatusFormat.nagios and not json_output
    json_output = json_output or output_format is StatusFormat.json
    with reported_errors(monitoring=True):
        try:
            if nagios and (watch or count is not None):
                raise LocalError("--format nagios is one check: a monitor polls by itself")
            memory = _Memory(
                not no_state, parse_duration(state_max_age), parse_duration(unacked_for)
            )
            targets = resolve_targets(
                servers=server or [],
                profile_name=profile,
                peers=peer or [],
                config_path=config,
                keys=KeyOptions(key=key, key_file=key_file, key_name=key_name),
            )
        except DhcpfoctlError as exc:
            if json_output:  # a monitor reading JSON gets a document, not an empty stdout
                _emit_error_json(exc)
            elif nagios:
                echo(nagios_status_line("UNKNOWN", str(exc)))
            raise
        for message in targets.warnings:
            warn(message)
        if watch or count is not None:
            health = _watch(targets, timeout, interval, count, json_output, memory)
        else:
            report = memory.poll(targets, timeout)
            if nagios:
                echo(status_nagios_line(report))
            else:
                _emit(report, targets, json_output)
            health = report.health
    exit_with(health)


class _Memory:
    """What status remembers: across the polls of ``--watch`` in memory, and across runs in
    the state directory (unless ``--no-state``): each followed lease file's new bindings
    (:mod:`dhcpfoctl.checks.history`) and since when each unacked-updates window is full."""

    def __init__(self, use_state: bool, max_age: int, unacked_for: int) -> None:
        self.use_state = use_state
        self.max_age = max_age
        self.unacked_for = unacked_for
        self.follower: Any = None
        self.unacked: dict[str, int] | None = None

    def poll(self, targets: Targets, timeout: float) -> StatusReport:
        from dhcpfoctl.checks.gather import gather_report
        from dhcpfoctl.cli.output import warn
        from dhcpfoctl.state import StateStore

        store = StateStore("status", _targets_key(targets)) if self.use_state else None
        if self.unacked is None:
            self.unacked = _load_unacked(store, self.max_age)
        if self.follower is None and any(spec.leases for spec in targets.servers):
            from dhcpfoctl.checks.history import LeaseFollower

            self.follower = LeaseFollower(use_state=self.use_state, max_age=self.max_age)
        report = gather_report(
            targets, timeout, self.follower, self.unacked, unacked_for=self.unacked_for
        )
        if store is not None:
            store.save({"unacked": self.unacked}, report.now)
            if store.save_error:
                warn(store.save_error)
        return report


def _targets_key(targets: Targets) -> str:
    """The unacked-updates memory is about these servers and relationships."""
    return "\n".join(
        [*(spec.endpoint for spec in targets.servers), "", *sorted(targets.relationships)]
    )


def _load_unacked(store: Any, max_age: int) -> dict[str, int]:
    document = None if store is None else store.load(time.time(), max_age)
    unacked = document.get("unacked") if document else None
    if not isinstance(unacked, dict):
        return {}
    return {str(key): value for key, value in unacked.items() if type(value) is int and value >= 0}


def _emit_error_json(exc: Exception) -> None:
    from dhcpfoctl.cli.output import print_json
    from dhcpfoctl.errors import exit_status_for
    from dhcpfoctl.times import iso_utc

    now = int(time.time())
    print_json(
        {
            "now": now,
            "now_iso": iso_utc(now),
            "health": "unknown",
            "exit_status": int(exit_status_for(exc, monitoring=True)),
            "profile": None,
            "relationships": [],
            "servers": [],
            "views": [],
            "findings": [
                {
                    "health": "unknown",
                    "code": "error",
                    "server": None,
                    "relationship": None,
                    "message": str(exc),
                }
            ],
        }
    )


def _emit(report: StatusReport, targets: Targets, json_output: bool) -> None:
    from dhcpfoctl.cli.output import print_json, stdout_console

    if json_output:
        print_json(report_json(report, targets))
    else:
        # Findings are one greppable line each, however narrow the terminal.
        stdout_console().print(render(report), soft_wrap=True)


def _watch(
    targets: Targets,
    timeout: float,
    interval: float,
    count: int | None,
    json_output: bool,
    memory: _Memory,
) -> CheckResult:
    """Poll until Ctrl-C or ``count`` polls; returns the last health."""
    from rich.live import Live

    from dhcpfoctl.cli.output import print_json, stdout_console
    from dhcpfoctl.errors import CheckResult

    # ``memory`` follows the lease files (a poll costs what dhcpd appended, not a full read
    # of a large file) and the unacked-updates windows from poll to poll.
    previous: dict[tuple[str, str], str] = {}
    transitions: list[str] = []
    health = CheckResult.UNKNOWN
    polls = 0
    live: Live | None = None
    console = stdout_console()
    try:
        # Off a terminal (a pipe, a log file) Live would show nothing until the end: each
        # poll is printed in turn instead.
        if not json_output and console.is_terminal:
            live = Live(console=console, auto_refresh=False, transient=False)
            live.start()
        while count is None or polls < count:
            started = time.monotonic()
            report = memory.poll(targets, timeout)
            health = report.health
            polls += 1
            changed = _transitions(report, previous, transitions)
            if json_output:
                print_json(report_json(report, targets), indent=None)
            elif live is not None:
                live.update(render(report, changed, transitions[-8:]), refresh=True)
            else:
                console.print(render(report, changed, transitions[-8:]), soft_wrap=True)
            if count is not None and polls >= count:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends; report the last health seen
    finally:
        if live is not None:
            live.stop()
    return health


def _transitions(
    report: StatusReport, previous: dict[tuple[str, str], str], log: list[str]
) -> set[tuple[str, str]]:
    """(server, relationship) whose local state changed since the last poll; logs them."""
    from dhcpfoctl.times import iso_utc

    changed: set[tuple[str, str]] = set()
    for view in report.views:
        where = (view.server, view.relationship)
        state = view.info.local_state.keyword if view.info else "unreachable"
        before = previous.get(where)
        if before is not None and before != state:
            changed.add(where)
            log.append(
                f"{iso_utc(report.now)} {view.server} {view.relationship}: {before} → {state}"
            )
        previous[where] = state
    return changed


def _view_json(view: ServerView, now: int) -> dict[str, Any]:
    from dhcpfoctl.model import FailoverState
    from dhcpfoctl.times import iso_utc

    base: dict[str, Any] = {
        "server": view.server,
        "endpoint": view.endpoint,
        "relationship": view.relationship,
        "reachable": view.reachable,
        "error": view.error,
    }
    info = view.info
    if info is None:
        return base
    ends = view.mclt_ends
    comms = (
        view.time_in_state(now)
        if info.local_state == FailoverState.COMMUNICATIONS_INTERRUPTED
        else None
    )
    return base | {
        "role": info.role,
        "local_state": info.local_state.keyword,
        "local_state_code": int(info.local_state),
        "partner_state": info.partner_state.keyword,
        "partner_state_code": int(info.partner_state),
        "local_stos": info.local_stos,
        "local_stos_iso": iso_utc(info.local_stos),
        "time_in_state": view.time_in_state(now),
        "partner_stos": info.partner_stos,
        "partner_stos_iso": iso_utc(info.partner_stos),
        "communications_interrupted_for": comms,
        "mclt": info.mclt,
        "mclt_ends": ends,
        "mclt_ends_iso": iso_utc(ends),
        "mclt_remaining": None if ends is None else max(0, ends - now),
        "max_response_delay": info.max_response_delay,
        "unacked_updates": info.cur_unacked_updates,
        "max_unacked_updates": info.max_outstanding_updates,
        "load_balance_max_seconds": info.load_balance_max_secs,
        "load_balance_primary_buckets": info.primary_buckets,
        "endurance": None
        if view.endurance is None
        else {
            "seconds": view.endurance.seconds,
            "rate_per_hour": view.endurance.rate_per_hour,
            "window": view.endurance.window,
            "leases": view.endurance.leases,
            "reason": view.endurance.reason,
        },
        "pools": [
            {
                "address": pool.address,
                "lease_count": pool.lease_count,
                "free_leases": pool.free_leases,
                "backup_leases": pool.backup_leases,
            }
            for pool in view.pools
        ],
    }


def report_json(report: StatusReport, targets: Targets) -> dict[str, Any]:
    from dhcpfoctl.errors import exit_status_for
    from dhcpfoctl.times import iso_utc

    findings = sorted(report.findings, key=lambda f: -f.health.rank)
    return {
        "now": report.now,
        "now_iso": iso_utc(report.now),
        "health": report.health.name.lower(),
        "exit_status": int(exit_status_for(report.health)),
        "profile": targets.profile,
        "relationships": list(targets.relationships),
        "servers": [
            {
                "label": answer.label,
                "endpoint": answer.endpoint,
                "reachable": answer.error is None,
                "signed": answer.signed,
                "error": answer.error,
                "notes": list(answer.notes),
            }
            for answer in report.servers
        ],
        "views": [_view_json(view, report.now) for view in report.views],
        "findings": [
            {
                "health": finding.health.name.lower(),
                "code": finding.code,
                "server": finding.server,
                "relationship": finding.relationship,
                "message": finding.message,
            }
            for finding in findings
        ],
    }


_HEALTH_STYLE = {0: "green", 1: "yellow", 2: "bold red", 3: "magenta"}
_STATE_STYLE = {
    "normal": "green",
    "communications-interrupted": "yellow",
    "partner-down": "bold yellow",
    "recover-wait": "cyan",
}


def render(
    report: StatusReport,
    changed: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
    transitions: list[str] | None = None,
) -> RenderableType:
    """A compact table per report, the findings, and (when watching) recent transitions."""
    from rich.console import Group

    from dhcpfoctl.cli.output import fit_table, styled
    from dhcpfoctl.times import iso_utc

    now = report.now
    tables: list[RenderableType] = [
        # Narrow terminals get the partner's state under the server's own, then no padding:
        # a state, a time or a countdown is never cut or broken mid-word.
        fit_table(
            (
                lambda n=name, c=compact, p=padding: _relationship_table(report, n, changed, c, p)
                for compact, padding in ((0, 1), (1, 1), (1, 0), (2, 0))
            ),
        )
        for name in dict.fromkeys(view.relationship for view in report.views)
    ]
    parts: list[RenderableType] = [
        # The time tells a --watch reader that the screen is live.
        styled(
            ("health: ", "bold"),
            (report.health.name, _HEALTH_STYLE[report.health]),
            f" at {iso_utc(now)}",
        ),
        *tables,
    ]
    for finding in sorted(report.findings, key=lambda f: -f.health.rank):
        parts.append(
            styled((f"{finding.health.name}: {finding.message}", _HEALTH_STYLE[finding.health]))
        )
    for answer in report.servers:
        for note in answer.notes:
            parts.append(styled((f"note: {answer.label} {note}", "dim")))
    if transitions:
        parts.append(styled(("transitions:", "bold")))
        parts += [styled(line) for line in transitions]
    return Group(*parts)


def _relationship_table(
    report: StatusReport,
    name: str,
    changed: set[tuple[str, str]] | frozenset[tuple[str, str]],
    compact: int,
    padding: int,
) -> RenderableType:
    """One relationship's servers; ``compact`` 1: the partner's state in the state column
    and a line per setting, 2: the server above its state, in one column."""
    from rich import box
    from rich.table import Table

    from dhcpfoctl.cli.output import lines, styled
    from dhcpfoctl.times import format_duration, format_local_parts

    now = report.now
    table = Table(
        title=f"failover peer {name!r}",
        title_justify="left",
        pad_edge=False,
        padding=(0, padding),
        box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
    )
    if compact < 2:
        table.add_column("server", no_wrap=True)
    table.add_column(
        "server / state" if compact > 1 else "state",
        no_wrap=True,
    )
    if not compact:
        table.add_column("partner seen as", no_wrap=True)
    # Each detail is a short phrase of its own: the last column wraps between them.
    table.add_column("details", no_wrap=not compact)
    for view in (v for v in report.views if v.relationship == name):
        info = view.info
        if info is None:
            # The reason is the finding printed below the table; one line keeps it compact,
            # but tells silence from an answer that was garbage, a refusal or NOTFOUND.
            silent = view.server_failed and view.server_silent
            unknown = styled(("unknown", "magenta"))
            table.add_row(
                *(
                    (lines(_server_cell(view.server, view.endpoint, None), unknown),)
                    if compact > 1
                    else (_server_cell(view.server, view.endpoint, None), unknown)
                ),
                *(() if compact else ("-",)),
                styled(
                    (
                        "no answer (see below)" if silent else "unusable answer (see below)",
                        "magenta",
                    )
                ),
            )
            continue
        state = info.local_state.keyword
        style = _STATE_STYLE.get(state, "red")
        if (view.server, view.relationship) in changed:
            style += " reverse"
        details: list[str] = []
        if view.mclt_ends is not None:
            # The countdown first, as a duration: it is what the operator waits for.
            label = "peer leases usable" if state == "partner-down" else "recover-wait ends"
            moment, relative = format_local_parts(view.mclt_ends, now)
            details += [f"{label} {relative}", f"  at {moment}"]
        settings = [
            [
                f"mclt {format_duration(info.mclt)}",
                f"unacked {info.cur_unacked_updates}/{info.max_outstanding_updates}",
                f"max-response-delay {format_duration(info.max_response_delay)}",
            ],
            [
                f"load balance max {format_duration(info.load_balance_max_secs)}",
                f"primary serves {info.primary_buckets}/256 buckets"
                if info.primary_buckets is not None
                else "no hba yet",
            ],
        ]
        # Wide: a line per group; narrow: a line per setting, so none is broken.
        details += [
            phrase for group in settings for phrase in (group if compact else [", ".join(group)])
        ]
        for p in view.pools:
            counts = f"{p.free_leases} free, {p.backup_leases} backup, {p.lease_count} total"
            details += (
                [f"pool of {p.address}:", f"  {counts}"]
                if compact
                else [f"pool of {p.address}: {counts}"]
            )
        since = view.time_in_state(now)
        partner = info.partner_state.keyword
        state_cell = lines(
            (state, style),
            *(() if since is None else (f"for {format_duration(since)}",)),
            *(_partner_lines(partner) if compact else ()),
        )
        server_cell = _server_cell(view.server, view.endpoint, info.role)
        table.add_row(
            *((lines(server_cell, state_cell),) if compact > 1 else (server_cell, state_cell)),
            *(() if compact else (partner,)),
            lines(*details),
        )
    return table


def _partner_lines(partner: str) -> tuple[str, ...]:
    """The partner's state under the server's own, no wider than the longest state."""
    line = f"partner: {partner}"
    return (
        (line,) if len(line) <= len("communications-interrupted") else ("partner:", f"  {partner}")
    )


def _server_cell(label: str, endpoint: str, role: str | None) -> RenderableType:
    """The label, then what it does not already say: role and OMAPI endpoint."""
    from dhcpfoctl.cli.output import lines

    return lines(*dict.fromkeys(part for part in (label, role, endpoint) if part))


def status_nagios_line(report: StatusReport) -> str:
    """``DHCPFOCTL HEALTH - summary | perfdata``: the worst finding (or each relationship's
    states), then per server and relationship: seconds in its state, unacked updates (warn
    at half the window, critical when full), the MCLT countdown, and each pool's free and
    backup leases."""
    from dhcpfoctl.checks.audit import Perf
    from dhcpfoctl.cli.output import nagios_status_line

    findings = sorted(report.findings, key=lambda f: -f.health.rank)
    if findings:
        summary = findings[0].message + (f" (+{len(findings) - 1} more)" if findings[1:] else "")
    else:
        summary = (
            ", ".join(
                f"{view.server} {view.relationship}: {view.info.local_state.keyword}"
                for view in report.views
                if view.info is not None
            )
            or "no server answered"
        )
    perfdata: list[Perf] = []
    for view in report.views:
        info = view.info
        if info is None:
            continue
        where = f"{view.server} {view.relationship}"
        if (since := view.time_in_state(report.now)) is not None:
            perfdata.append(Perf(f"{where} in state", since, "s", minimum=0))
        window = info.max_outstanding_updates
        perfdata.append(
            Perf(
                f"{where} unacked",
                info.cur_unacked_updates,
                warn=str(window // 2) if window else "",
                crit=str(window - 1) if window else "",
                minimum=0,
                maximum=window or None,
            )
        )
        if (ends := view.mclt_ends) is not None:
            perfdata.append(
                Perf(f"{where} mclt remaining", max(0, ends - report.now), "s", minimum=0)
            )
        for pool in view.pools:
            for kind, value in (("free", pool.free_leases), ("backup", pool.backup_leases)):
                perfdata.append(
                    Perf(
                        f"{where} {pool.address} {kind}", value, minimum=0, maximum=pool.lease_count
                    )
                )
    return nagios_status_line(report.health.name, summary, perfdata)
