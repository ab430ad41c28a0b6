"""``dhcpfoctl audit``: the balance computation judged against thresholds, for cron and monitors.

Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (unreadable input, invalid config or
thresholds, or a crash: its traceback goes to stderr). The default output is silent when
everything is OK (cron mails only problems) and one line per finding otherwise;
``--format nagios`` prints one status line with perfdata; ``--json`` prints the findings and
the full balance report.

Checks and their defaults (flags override a ``--thresholds`` TOML file, which overrides the
defaults):

* misbalance, per failover pool: ``|lts|`` against T x percent, with dhcpd's rounding;
  warning above the peer's ``max-lease-misbalance`` (the limit of dhcpd's IMBALANCED line,
  judged before the next run rather than after it), critical above twice that (where
  dhcpd's timer sends POOLREQ);
* own free leases, per pool and server: warning at or below 10 % of the pool, critical at
  0 (with the peer holding some, clients get "peer holds all free leases"); ``N`` or ``N%``;
* endurance in communications-interrupted, per relationship and server: warning below
  12h, critical below 2h (no finding while there is not enough history to estimate);
* dhcpd.conf warnings (e.g. ``load balance max seconds 0``) and skipped lease records:
  warning (not a last record cut off because dhcpd was still writing it).

A critical limit looser than the warning one, both set by the operator, is refused (UNKNOWN).
"""

from __future__ import annotations

import math
import tomllib
import traceback
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any, Final

import typer

from dhcpfoctl.cli.balance import plain_number

if TYPE_CHECKING:
    from collections.abc import Collection

    from dhcpfoctl.balance import BalanceReport, PoolReport, RelationshipReport
    from dhcpfoctl.cli.balance import Inputs

THRESHOLDS_HELP = "TOML file of thresholds (keys as the flags, with _: warn_free = '10%')."


class Severity(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class AuditFormat(StrEnum):
    human = "human"
    nagios = "nagios"
    json = "json"


@dataclass(frozen=True, slots=True)
class FreeLimit:
    """A free-lease threshold: an absolute count or a percentage of the pool's size."""

    value: float
    percent: bool

    @classmethod
    def parse(cls, text: str | int, origin: str) -> FreeLimit:
        from dhcpfoctl.errors import LocalError

        raw = str(text).strip()
        percent = raw.endswith("%")
        number = raw.removesuffix("%").strip()
        try:
            value = float(number)
        except ValueError:
            raise LocalError(
                f"{origin}: invalid free-lease threshold {raw!r} (use 5 or 10%)"
            ) from None
        if value < 0 or (percent and value > 100):
            raise LocalError(f"{origin}: free-lease threshold {raw!r} out of range")
        return cls(value, percent)

    def count(self, size: int) -> float:
        return size * self.value / 100 if self.percent else self.value

    def __str__(self) -> str:
        return plain_number(self.value) + ("%" if self.percent else "")


@dataclass(frozen=True, slots=True)
class Thresholds:
    #: Percentages; ``None``: derived per pool from its peer's max-lease-misbalance.
    warn_misbalance: float | None = None
    crit_misbalance: float | None = None
    warn_free: FreeLimit = FreeLimit(10, percent=True)
    crit_free: FreeLimit = FreeLimit(0, percent=False)
    warn_endurance: int = 12 * 3600
    crit_endurance: int = 2 * 3600
    window: str = "24h"

    def check(self, given: Collection[str]) -> None:
        """Refuse a critical limit looser than its warning one when the operator set both
        (``given``): every warning would be reported as critical, which is never meant.
        A default paired with one setting is left alone, so ``--warn-endurance 1h`` alone
        still works (anything below the default 2h is critical)."""
        from dhcpfoctl.errors import LocalError

        def both(check: str) -> bool:
            return {f"warn_{check}", f"crit_{check}"} <= set(given)

        looser = []
        warn_mis, crit_mis = self.warn_misbalance, self.crit_misbalance
        if warn_mis is not None and crit_mis is not None and crit_mis < warn_mis:
            looser.append(
                f"crit-misbalance {plain_number(crit_mis)}%"
                f" is below warn-misbalance {plain_number(warn_mis)}%"
            )
        # A percentage and a count compare only once the pool's size is known: not here.
        same_unit = self.crit_free.percent == self.warn_free.percent
        if both("free") and same_unit and self.crit_free.value > self.warn_free.value:
            looser.append(f"crit-free {self.crit_free} is above warn-free {self.warn_free}")
        if both("endurance") and self.crit_endurance > self.warn_endurance:
            looser.append(
                f"crit-endurance {_duration(self.crit_endurance)}"
                f" is longer than warn-endurance {_duration(self.warn_endurance)}"
            )
        if looser:
            raise LocalError("critical threshold looser than the warning one: " + "; ".join(looser))


_DURATIONS: Final = ("warn_endurance", "crit_endurance")
_PERCENTS: Final = ("warn_misbalance", "crit_misbalance")
_FREES: Final = ("warn_free", "crit_free")


def load_thresholds(path: str) -> dict[str, Any]:
    """The settings of a thresholds TOML file, validated and converted."""
    from dhcpfoctl.errors import InputFileError, LocalError

    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(path, f"invalid TOML: {exc}") from None
    unknown = set(table) - set(Thresholds.__dataclass_fields__)
    if unknown:
        raise InputFileError(path, f"unknown setting(s) {', '.join(sorted(unknown))}")
    try:
        return {name: _convert(name, value, path) for name, value in table.items()}
    except LocalError as exc:
        raise InputFileError(path, str(exc)) from None


def _convert(name: str, value: object, origin: str) -> Any:
    from dhcpfoctl.errors import LocalError
    from dhcpfoctl.times import parse_duration

    if name in _FREES and isinstance(value, str | int | float):
        return FreeLimit.parse(value if isinstance(value, str) else f"{value}", origin)
    if name in _DURATIONS and isinstance(value, str | int):
        return parse_duration(str(value))
    if name in _PERCENTS and isinstance(value, str | int | float) and not isinstance(value, bool):
        # As on the command line a bare number; "20%" too, as warn_free is written that way.
        try:
            percent = float(str(value).strip().removesuffix("%"))
        except ValueError:
            percent = -1.0
        if percent < 0:
            raise LocalError(f"{name}: invalid percentage {value!r} (use 20 or '20%')")
        return percent
    if name == "window" and isinstance(value, str):
        parse_duration(value)
        return value
    raise LocalError(f"{name}: invalid value {value!r}")


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str  # misbalance, free, endurance, config, leases
    message: str
    pool: str | None = None
    relationship: str | None = None
    role: str | None = None


@dataclass(slots=True)
class Perf:
    """One Nagios perfdata item; ``warn``/``crit`` are Nagios ranges (``20:`` = below 20)."""

    label: str
    value: float
    unit: str = ""
    warn: str = ""
    crit: str = ""
    minimum: float | None = None
    maximum: float | None = None

    def __str__(self) -> str:
        def num(x: float | None) -> str:
            return "" if x is None else plain_number(x)

        label = self.label.replace("'", "_")
        fields = [self.warn, self.crit, num(self.minimum), num(self.maximum)]
        return f"'{label}'={plain_number(self.value)}{self.unit};" + ";".join(fields).rstrip(";")


@dataclass(slots=True)
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    perfdata: list[Perf] = field(default_factory=list)

    @property
    def severity(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)


def _below(limit: float) -> str:
    """Nagios range alerting when the value falls below ``limit``."""
    return f"{plain_number(limit)}:"


def _at_most(limit: float) -> str:
    """Nagios range alerting when a count is at or below ``limit``."""
    return f"{math.floor(limit) + 1}:"


def evaluate(inputs: Inputs, thresholds: Thresholds) -> AuditResult:
    """Judge the balance report (pure: the report already fixes the time)."""
    result = AuditResult()
    for warning in inputs.config.warnings:
        result.findings.append(Finding(Severity.WARNING, "config", warning))
    for skipped in inputs.db.stats.warnings:
        # A record cut off at the end is dhcpd caught mid-write, not damage: mailing it
        # from cron every few runs would teach operators to ignore the audit.
        if skipped.truncated_tail:
            continue
        result.findings.append(Finding(Severity.WARNING, "leases", f"skipped: {skipped}"))
    for pool in inputs.report.pools:
        _judge_free(pool, inputs, thresholds, result)
        _judge_misbalance(pool, inputs, thresholds, result)
    for rel in inputs.report.relationships:
        _judge_endurance(rel, thresholds, result)
    result.findings.sort(key=lambda f: -f.severity)
    return result


def _grade(critical: bool, warning: bool) -> Severity | None:
    if critical:
        return Severity.CRITICAL
    return Severity.WARNING if warning else None


def _pool_name(pool: PoolReport) -> str:
    return f"{pool.pool.shared_network} {pool.pool.label}"


def _judge_free(
    pool: PoolReport, inputs: Inputs, thresholds: Thresholds, result: AuditResult
) -> None:
    """Each server's own free leases (a pool without failover: its free leases)."""
    counts = pool.counts
    name, rel = _pool_name(pool), pool.pool.failover_peer
    warn = thresholds.warn_free.count(counts.total)
    crit = thresholds.crit_free.count(counts.total)
    failover = rel in inputs.config.failover_peers
    for side in ("primary", "secondary") if failover else ("free",):
        own = counts.own_free(side) if failover else counts.free
        others = counts.peer_free(side) if failover else 0
        label = f"{name} {side} free" if failover else f"{name} free"
        result.perfdata.append(
            Perf(label, own, "", _at_most(warn), _at_most(crit), 0, counts.total)
        )
        # At 0 with the peer holding some, clients get dhcpd's "peer holds all free leases".
        severity = _grade(own <= crit, own <= warn)
        if severity is None:
            continue
        who = f"the {side}'s own free leases" if failover else "free leases"
        detail = f"; the peer holds {others}" if others else ""
        result.findings.append(
            Finding(
                severity,
                "free",
                f"pool {name}: {who}: {own} of {counts.total}{detail}",
                pool=pool.pool.label,
                relationship=rel,
                role=side if failover else None,
            )
        )


def _judge_misbalance(
    pool: PoolReport, inputs: Inputs, thresholds: Thresholds, result: AuditResult
) -> None:
    """|lts| against dhcpd's own integer thresholds for the given percentages."""
    from dhcpfoctl.balance import percent_of
    from dhcpfoctl.cli.balance import server_role

    rel = pool.pool.failover_peer
    peer = inputs.config.failover_peers.get(rel or "")
    view = pool.view(server_role(inputs.report, rel) or "primary")
    if peer is None or view is None or view.free + view.backup == 0:
        return
    total = view.free + view.backup
    warn_pct = thresholds.warn_misbalance
    warn_pct = peer.max_lease_misbalance if warn_pct is None else warn_pct
    crit_pct = thresholds.crit_misbalance
    crit_pct = 2 * peer.max_lease_misbalance if crit_pct is None else crit_pct
    skew = abs(view.lts)
    name = _pool_name(pool)
    result.perfdata.append(
        Perf(
            f"{name} misbalance",
            round(100 * skew / total, 1),
            "%",
            plain_number(warn_pct),
            plain_number(crit_pct),
            0,
            50,
        )
    )
    crit_limit = percent_of(total, crit_pct)
    warn_limit = percent_of(total, warn_pct)
    severity = _grade(skew > crit_limit, skew > warn_limit)
    if severity is None:
        return
    limit, percent = (
        (crit_limit, crit_pct) if severity is Severity.CRITICAL else (warn_limit, warn_pct)
    )
    short = "primary" if view.free < view.backup else "secondary"
    result.findings.append(
        Finding(
            severity,
            "misbalance",
            f"pool {name}: free {view.free} vs backup {view.backup} (lts {view.lts},"
            f" limit {limit} = {plain_number(percent)}% of {total}); the {short} is short",
            pool=pool.pool.label,
            relationship=rel,
        )
    )


def _judge_endurance(rel: RelationshipReport, thresholds: Thresholds, result: AuditResult) -> None:
    """Each server's endurance in communications-interrupted (none without history)."""
    for role, value in rel.endurance.items():
        if value.interrupted is None or value.rate_per_hour is None:
            continue
        result.perfdata.append(
            Perf(
                f"{rel.name} {role} endurance",
                value.interrupted,
                "s",
                _below(thresholds.warn_endurance),
                _below(thresholds.crit_endurance),
                0,
            )
        )
        severity = _grade(
            value.interrupted < thresholds.crit_endurance,
            value.interrupted < thresholds.warn_endurance,
        )
        if severity is None:
            continue
        limit = (
            thresholds.crit_endurance
            if severity is Severity.CRITICAL
            else thresholds.warn_endurance
        )
        result.findings.append(
            Finding(
                severity,
                "endurance",
                f"failover peer {rel.name}: the {role}'s own free leases last"
                f" {_duration(value.interrupted)} if communications are interrupted"
                f" (< {_duration(limit)}; {value.rate_per_hour:.1f} bindings/h over"
                f" {_duration(value.window)})",
                relationship=rel.name,
                role=role,
            )
        )


def _duration(seconds: int) -> str:
    from dhcpfoctl.times import format_duration

    return format_duration(seconds)


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
) -> None:
    """Check pool balance, free leases and endurance against thresholds (exit 0/1/2/3)."""
    from dhcpfoctl.cli.balance import gather
    from dhcpfoctl.cli.output import reported_errors
    from dhcpfoctl.errors import DhcpfoctlError
    from dhcpfoctl.times import parse_duration

    chosen = AuditFormat.json if json_output else output_format
    with reported_errors(monitoring=True):
        try:
            settings = load_thresholds(thresholds_file) if thresholds_file else {}
            flags: dict[str, Any] = {
                "warn_misbalance": warn_misbalance,
                "crit_misbalance": crit_misbalance,
                "window": window,
            }
            for name, text in (("warn_free", warn_free), ("crit_free", crit_free)):
                if text is not None:
                    flags[name] = FreeLimit.parse(text, f"--{name.replace('_', '-')}")
            for name, text in (
                ("warn_endurance", warn_endurance),
                ("crit_endurance", crit_endurance),
            ):
                if text is not None:
                    flags[name] = parse_duration(text)
            settings.update({k: v for k, v in flags.items() if v is not None})
            thresholds = replace(Thresholds(), **settings)
            thresholds.check(settings)
            inputs = gather(config, leases, as_of, thresholds.window)
            result = evaluate(inputs, thresholds)
        except DhcpfoctlError as exc:
            if chosen is AuditFormat.nagios:
                typer.echo(f"DHCPFOCTL UNKNOWN - {exc}")
            raise
        except Exception as exc:
            # A bug, not bad input: keep the traceback for the report, but exit UNKNOWN;
            # Python's own exit status 1 would read as WARNING to a monitor.
            if chosen is AuditFormat.nagios:
                typer.echo(f"DHCPFOCTL UNKNOWN - internal error: {type(exc).__name__}")
            traceback.print_exc()
            raise typer.Exit(int(Severity.UNKNOWN)) from None
    _emit(result, inputs.report, thresholds, chosen)
    raise typer.Exit(int(result.severity))


def _emit(
    result: AuditResult, report: BalanceReport, thresholds: Thresholds, chosen: AuditFormat
) -> None:
    from dhcpfoctl.cli.output import print_json

    severity = result.severity
    if chosen is AuditFormat.json:
        from dhcpfoctl.cli.balance import report_to_json

        print_json(
            {
                "status": severity.name.lower(),
                "exit_status": int(severity),
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
        typer.echo(nagios_line(result, report))
    else:
        for finding in result.findings:
            typer.echo(f"{finding.severity.name}: {finding.message}")


def nagios_line(result: AuditResult, report: BalanceReport) -> str:
    """``DHCPFOCTL STATUS - summary | perfdata`` (Nagios plugin guidelines)."""
    severity = result.severity
    if result.findings:
        summary = result.findings[0].message
        if len(result.findings) > 1:
            summary += f" (+{len(result.findings) - 1} more)"
    else:
        summary = f"{len(report.pools)} pools, {len(report.relationships)} failover relationships"
    perfdata = " ".join(str(p) for p in result.perfdata)
    summary = summary.replace("|", "/")  # "|" starts the perfdata
    return f"DHCPFOCTL {severity.name} - {summary}" + (f" | {perfdata}" if perfdata else "")
