"""``dhcpfoctl audit``: the balance computation judged against thresholds, for cron and monitors.

Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (unreadable input, invalid config or
thresholds, or a crash: its traceback goes to stderr). The default output is silent when
everything is OK (cron mails only problems) and one line per finding otherwise;
``--format nagios`` prints one status line with perfdata; ``--json`` prints the findings and
the full balance report. The checks and their defaults: :mod:`dhcpfoctl.checks.audit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from dhcpfoctl.cli.options import NoState, StateMaxAge, format_option

if TYPE_CHECKING:
    from dhcpfoctl.balance import BalanceReport
    from dhcpfoctl.checks.audit import AuditResult, Thresholds
    from dhcpfoctl.cli.prometheus import Sample

THRESHOLDS_HELP = "TOML file of thresholds (keys as the flags, with _: warn_free = '10%')."


class AuditFormat(StrEnum):
    human = "human"
    nagios = "nagios"
    json = "json"
    prometheus = "prometheus"


def audit(
    config: str = typer.Option(
        ..., "--config", "-c", metavar="FILE", help="dhcpd.conf (pools and role)."
    ),
    leases: str = typer.Option(
        ..., "--leases", "-l", metavar="FILE", help="dhcpd.leases of that server."
    ),
    as_of: str = typer.Option(
        "now",
        "--as-of",
        metavar="TIME",
        help="Evaluate at this time: now, @EPOCH, ISO 8601, -2h.",
    ),
    thresholds_file: str | None = typer.Option(
        None, "--thresholds", metavar="FILE", help=THRESHOLDS_HELP
    ),
    window: str | None = typer.Option(
        None, "--window", metavar="DURATION", help="History for the rates.  [default: 24h]"
    ),
    warn_misbalance: float | None = typer.Option(
        None,
        "--warn-misbalance",
        min=0,
        metavar="PERCENT",
        help="% of free-state leases.  [default: the peer's max-lease-misbalance]",
    ),
    crit_misbalance: float | None = typer.Option(
        None,
        "--crit-misbalance",
        min=0,
        metavar="PERCENT",
        help="% of free-state leases.  [default: twice --warn-misbalance's default]",
    ),
    warn_free: str | None = typer.Option(
        None, "--warn-free", metavar="N|N%", help="Own free leases.  [default: 10%]"
    ),
    crit_free: str | None = typer.Option(
        None, "--crit-free", metavar="N|N%", help="Own free leases.  [default: 0]"
    ),
    warn_endurance: str | None = typer.Option(
        None,
        "--warn-endurance",
        metavar="DURATION",
        help="Endurance if communications-interrupted.  [default: 12h]",
    ),
    crit_endurance: str | None = typer.Option(
        None, "--crit-endurance", metavar="DURATION", help="As --warn-endurance.  [default: 2h]"
    ),
    output_format: AuditFormat = format_option(
        AuditFormat,
        "human: one line per finding, nothing when OK; nagios: one status line with"
        " perfdata; prometheus: balance's metrics plus dhcpfoctl_audit_status.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="Write to FILE (atomically: temp file, then rename), e.g. for node-exporter.",
    ),
    no_state: NoState = False,
    state_max_age: StateMaxAge = "1h",
) -> None:
    """Check pool balance, free leases and endurance against thresholds (exit 0/1/2/3)."""
    from dhcpfoctl.checks import audit as judge
    from dhcpfoctl.checks.history import LeaseFollower
    from dhcpfoctl.checks.inputs import as_of_before_history, gather
    from dhcpfoctl.cli.output import (
        exit_with,
        print_traceback,
        read_leases_with_progress,
        reported_errors,
        warn,
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
            _emit_unknown(chosen, str(exc), output)
            raise
        except Exception as exc:
            # A bug, not bad input: keep the traceback for the report, but exit UNKNOWN;
            # Python's own exit status 1 would read as WARNING to a monitor.
            _emit_unknown(chosen, f"internal error: {type(exc).__name__}", output)
            print_traceback(exc)
            exit_with(exc, monitoring=True)
        if warning := as_of_before_history(inputs, as_of, leases):
            warn(warning)
        _emit(result, inputs.report, thresholds, chosen, output)
    exit_with(result.severity)


def _emit(
    result: AuditResult,
    report: BalanceReport,
    thresholds: Thresholds,
    chosen: AuditFormat,
    output: str | None,
) -> None:
    from dhcpfoctl.checks.audit import FreeLimit, Thresholds
    from dhcpfoctl.cli.output import json_text
    from dhcpfoctl.errors import exit_status_for

    severity = result.severity
    if chosen is AuditFormat.json:
        from dhcpfoctl.balance import report_to_json

        text = json_text(
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
    elif chosen is AuditFormat.prometheus:
        from dhcpfoctl.cli.prometheus import report_to_prometheus

        text = report_to_prometheus(report, _status_samples(result))
    elif chosen is AuditFormat.nagios:
        text = _one_per_line([nagios_line(result, report)])
    else:
        text = _one_per_line(f"{f.severity.name}: {f.message}" for f in result.findings)
    _write(text, output)


def _one_per_line(messages: Iterable[str]) -> str:
    """Each message one literal line: a message quoting a file name cannot add a line."""
    from dhcpfoctl.cli.output import literal

    return "".join(literal(message) + "\n" for message in messages)


def _write(text: str, output: str | None) -> None:
    from dhcpfoctl.cli.output import emit_text, write_atomically

    if output is not None:
        write_atomically(output, text)
    elif text:
        emit_text(text)


def _status_samples(result: AuditResult | None) -> list[Sample]:
    """``dhcpfoctl_audit_status`` (the exit status: 0 OK … 3 UNKNOWN) and the findings per
    severity; ``None``: the audit could not be made (UNKNOWN, no balance metrics)."""
    from dhcpfoctl.errors import CheckResult, exit_status_for

    severity = CheckResult.UNKNOWN if result is None else result.severity
    samples: list[Sample] = [
        (
            "audit_status",
            "The audit's result as its exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            {},
            int(exit_status_for(severity)),
        )
    ]
    for level in (CheckResult.WARNING, CheckResult.CRITICAL):
        found = 0 if result is None else sum(f.severity is level for f in result.findings)
        samples.append(
            (
                "audit_findings",
                "Findings of the audit by severity.",
                {"severity": level.name.lower()},
                found,
            )
        )
    return samples


def _emit_unknown(chosen: AuditFormat, summary: str, output: str | None) -> None:
    """What a monitor reads when the audit could not be made (the error goes to stderr)."""
    if chosen is AuditFormat.nagios:
        _write(_one_per_line([_nagios_unknown(summary)]), output)
    elif chosen is AuditFormat.prometheus:
        from dhcpfoctl.cli.prometheus import render_samples

        _write(render_samples(_status_samples(None)), output)


def nagios_line(result: AuditResult, report: BalanceReport) -> str:
    """``DHCPFOCTL STATUS - summary | perfdata`` (Nagios plugin guidelines)."""
    from dhcpfoctl.cli.output import nagios_status_line

    if result.findings:
        summary = result.findings[0].message
        if len(result.findings) > 1:
            summary += f" (+{len(result.findings) - 1} more)"
    else:
        summary = f"{len(report.pools)} pools, {len(report.relationships)} failover relationships"
        summary += "".join(f"; {note}" for note in result.notes)
    return nagios_status_line(result.severity.name, summary, result.perfdata)


def _nagios_unknown(summary: str) -> str:
    from dhcpfoctl.cli.output import nagios_status_line

    return nagios_status_line("UNKNOWN", summary)
