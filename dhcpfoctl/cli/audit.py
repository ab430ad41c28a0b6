"""``dhcpfoctl audit``: the balance computation judged against thresholds, for cron and monitors.

Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (unreadable input, invalid config or
thresholds, or a crash: its traceback goes to stderr). The default output is silent when
everything is OK (cron mails only problems) and one line per finding otherwise;
``--format nagios`` prints one status line with perfdata; ``--json`` prints the findings and
the full balance report. The checks and their defaults: :mod:`dhcpfoctl.checks.audit`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from dhcpfoctl.balance import BalanceReport
    from dhcpfoctl.checks.audit import AuditResult, Thresholds

THRESHOLDS_HELP = "TOML file of thresholds (keys as the flags, with _: warn_free = '10%')."


class AuditFormat(StrEnum):
    human = "human"
    nagios = "nagios"
    json = "json"


def audit(
    config: str = typer.Option(
        ..., "--config", "-c", metavar="FILE", help="dhcpd.conf (pools and role)."
    ),
    leases: str = typer.Option(
        ..., "--leases", "-l", metavar="FILE", help="dhcpd.leases of that server."
    ),
    as_of: str = typer.Option("now", "--as-of", help="Evaluate at this time (default now)."),
    thresholds_file: str | None = typer.Option(
        None, "--thresholds", metavar="FILE", help=THRESHOLDS_HELP
    ),
    window: str | None = typer.Option(None, "--window", help="History for rates (24h)."),
    warn_misbalance: float | None = typer.Option(
        None, "--warn-misbalance", min=0, help="% of free-state leases (default: config's)."
    ),
    crit_misbalance: float | None = typer.Option(
        None, "--crit-misbalance", min=0, help="% (default: twice the config's)."
    ),
    warn_free: str | None = typer.Option(None, "--warn-free", help="Own free N or N% (10%)."),
    crit_free: str | None = typer.Option(None, "--crit-free", help="Own free N or N% (0)."),
    warn_endurance: str | None = typer.Option(None, "--warn-endurance", help="e.g. 12h."),
    crit_endurance: str | None = typer.Option(None, "--crit-endurance", help="e.g. 2h."),
    output_format: AuditFormat = typer.Option(
        AuditFormat.human, "--format", "-f", help="human (silent when OK), nagios or json."
    ),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
    no_state: bool = typer.Option(
        False, "--no-state", help="Remember nothing between runs (see README Monitoring)."
    ),
    state_max_age: str = typer.Option(
        "1h", "--state-max-age", metavar="DURATION", help="Ignore remembered data older."
    ),
) -> None:
    """Check pool balance, free leases and endurance against thresholds (exit 0/1/2/3)."""
    from dhcpfoctl.checks import audit as judge
    from dhcpfoctl.checks.history import LeaseFollower
    from dhcpfoctl.checks.inputs import gather
    from dhcpfoctl.cli.output import (
        echo,
        exit_with,
        print_traceback,
        read_leases_with_progress,
        reported_errors,
    )
    from dhcpfoctl.errors import DhcpfoctlError
    from dhcpfoctl.times import parse_duration

    chosen = AuditFormat.json if json_output else output_format
    with reported_errors(monitoring=True):
        try:
            thresholds = judge.resolve_thresholds(
                thresholds_file,
                {
                    "warn_misbalance": warn_misbalance,
                    "crit_misbalance": crit_misbalance,
                    "warn_free": warn_free,
                    "crit_free": crit_free,
                    "warn_endurance": warn_endurance,
                    "crit_endurance": crit_endurance,
                    "window": window,
                },
            )
            follower = LeaseFollower(use_state=True, max_age=parse_duration(state_max_age))
            inputs = gather(
                config,
                leases,
                as_of,
                thresholds.window,
                read_leases=read_leases_with_progress,
                follower=None if no_state else follower,
            )
            result = judge.evaluate(inputs, thresholds)
        except DhcpfoctlError as exc:
            if chosen is AuditFormat.nagios:
                echo(_nagios_unknown(str(exc)))
            raise
        except Exception as exc:
            # A bug, not bad input: keep the traceback for the report, but exit UNKNOWN;
            # Python's own exit status 1 would read as WARNING to a monitor.
            if chosen is AuditFormat.nagios:
                echo(_nagios_unknown(f"internal error: {type(exc).__name__}"))
            print_traceback(exc)
            exit_with(exc, monitoring=True)
    _emit(result, inputs.report, thresholds, chosen)
    exit_with(result.severity)


def _emit(
    result: AuditResult, report: BalanceReport, thresholds: Thresholds, chosen: AuditFormat
) -> None:
    from dhcpfoctl.checks.audit import FreeLimit, Thresholds
    from dhcpfoctl.cli.output import echo, print_json
    from dhcpfoctl.errors import exit_status_for

    severity = result.severity
    if chosen is AuditFormat.json:
        from dhcpfoctl.balance import report_to_json

        print_json(
            {
                "status": severity.name.lower(),
                "exit_status": int(exit_status_for(severity)),
                "findings": [
                    {
                        "severity": f.severity.name.lower(),
                        "code": f.code,
                        "message": f.message,
                        "pool": f.pool,
                        "relationship": f.relationship,
                        "role": f.role,
                    }
                    for f in result.findings
                ],
                "notes": result.notes,
                "thresholds": {
                    name: (str(value) if isinstance(value, FreeLimit) else value)
                    for name, value in (
                        (n, getattr(thresholds, n)) for n in Thresholds.__dataclass_fields__
                    )
                },
                "balance": report_to_json(report),
            }
        )
    elif chosen is AuditFormat.nagios:
        echo(nagios_line(result, report))
    else:
        for finding in result.findings:
            echo(f"{finding.severity.name}: {finding.message}")


def nagios_line(result: AuditResult, report: BalanceReport) -> str:
    """``DHCPFOCTL STATUS - summary | perfdata`` (Nagios plugin guidelines)."""
    severity = result.severity
    if result.findings:
        summary = result.findings[0].message
        if len(result.findings) > 1:
            summary += f" (+{len(result.findings) - 1} more)"
    else:
        summary = f"{len(report.pools)} pools, {len(report.relationships)} failover relationships"
        summary += "".join(f"; {note}" for note in result.notes)
    perfdata = " ".join(str(p) for p in result.perfdata)
    return _nagios_status(severity.name, summary) + (f" | {perfdata}" if perfdata else "")


def _nagios_unknown(summary: str) -> str:
    return _nagios_status("UNKNOWN", summary)


def _nagios_status(status: str, summary: str) -> str:
    # "|" starts the perfdata: a summary quoting a file or a server must not forge any.
    return f"DHCPFOCTL {status} - {summary.replace('|', '/')}"
