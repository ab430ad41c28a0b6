"""Audit judging: the balance report against thresholds (pure, for ``dhcpfoctl audit``).

Checks and their defaults (flags override a ``--thresholds`` TOML file, which overrides the
defaults):

* misbalance, per failover pool: ``|lts|`` against T x percent, with dhcpd's rounding;
  warning above the peer's ``max-lease-misbalance`` (the limit of dhcpd's IMBALANCED line,
  judged before the next run rather than after it), critical above twice that (where
  dhcpd's timer sends POOLREQ);
* own free leases, per pool and server: warning at or below 10 % of the pool, critical at
  0 (with the peer holding some, clients get "peer holds all free leases"); ``N`` or ``N%``;
* endurance in communications-interrupted, per relationship and server, at the rate of
  new bindings remembered between runs (:mod:`dhcpfoctl.checks.history`): warning below
  12h, critical below 2h (no finding while there is not enough history to estimate: a
  note says how much is missing);
* dhcpd.conf warnings (e.g. ``load balance max seconds 0``) and skipped lease records:
  warning (not a last record cut off because dhcpd was still writing it).

A critical limit looser than the warning one, both set by the operator, is refused.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any, Final

from dhcpfoctl.balance import (
    PoolReport,
    RelationshipReport,
    percent_of,
    plain_number,
    server_role,
)
from dhcpfoctl.checks.inputs import Inputs
from dhcpfoctl.errors import CheckResult, InputFileError, LocalError, worst_of
from dhcpfoctl.model import Role
from dhcpfoctl.times import format_duration, parse_duration


@dataclass(frozen=True, slots=True)
class FreeLimit:
    """A free-lease threshold: an absolute count or a percentage of the pool's size."""

    value: float
    percent: bool

    @classmethod
    def parse(cls, text: str | int, origin: str) -> FreeLimit:
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
    severity: CheckResult
    code: str  # misbalance, free, endurance, config, leases
    message: str
    pool: str | None = None
    relationship: str | None = None
    role: Role | None = None


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
    #: What is not a finding but worth saying (no endurance estimate yet, state notes).
    notes: list[str] = field(default_factory=list)

    @property
    def severity(self) -> CheckResult:
        return worst_of(f.severity for f in self.findings)


def _below(limit: float) -> str:
    """Nagios range alerting when the value falls below ``limit``."""
    return f"{plain_number(limit)}:"


def _at_most(limit: float) -> str:
    """Nagios range alerting when a count is at or below ``limit``."""
    return f"{math.floor(limit) + 1}:"


def evaluate(inputs: Inputs, thresholds: Thresholds) -> AuditResult:
    """Judge the balance report (pure: the report already fixes the time)."""
    result = AuditResult(notes=list(inputs.notes))
    for warning in inputs.config.warnings:
        result.findings.append(Finding(CheckResult.WARNING, "config", warning))
    for skipped in inputs.db.stats.warnings:
        # A record cut off at the end is dhcpd caught mid-write, not damage: mailing it
        # from cron every few runs would teach operators to ignore the audit.
        if skipped.truncated_tail:
            continue
        result.findings.append(Finding(CheckResult.WARNING, "leases", f"skipped: {skipped}"))
    for pool in inputs.report.pools:
        _judge_free(pool, inputs, thresholds, result)
        _judge_misbalance(pool, inputs, thresholds, result)
    for rel in inputs.report.relationships:
        _judge_endurance(rel, thresholds, result)
    result.findings.sort(key=lambda f: -f.severity.rank)
    return result


def _grade(critical: bool, warning: bool) -> CheckResult | None:
    if critical:
        return CheckResult.CRITICAL
    return CheckResult.WARNING if warning else None


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
    # Without failover one set of free leases, with no side (None).
    sides: tuple[Role | None, ...] = tuple(Role) if rel in inputs.config.failover_peers else (None,)
    for side in sides:
        own = counts.own_free(side) if side else counts.free
        others = counts.peer_free(side) if side else 0
        label = f"{name} {side} free" if side else f"{name} free"
        result.perfdata.append(
            Perf(label, own, "", _at_most(warn), _at_most(crit), 0, counts.total)
        )
        # At 0 with the peer holding some, clients get dhcpd's "peer holds all free leases".
        severity = _grade(own <= crit, own <= warn)
        if severity is None:
            continue
        who = f"the {side}'s own free leases" if side else "free leases"
        detail = f"; the peer holds {others}" if others else ""
        result.findings.append(
            Finding(
                severity,
                "free",
                f"pool {name}: {who}: {own} of {counts.total}{detail}",
                pool=pool.pool.label,
                relationship=rel,
                role=side,
            )
        )


def _judge_misbalance(
    pool: PoolReport, inputs: Inputs, thresholds: Thresholds, result: AuditResult
) -> None:
    """|lts| against dhcpd's own integer thresholds for the given percentages."""
    rel = pool.pool.failover_peer
    peer = inputs.config.failover_peers.get(rel or "")
    view = pool.view(server_role(inputs.report, rel) or Role.PRIMARY)
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
        (crit_limit, crit_pct) if severity is CheckResult.CRITICAL else (warn_limit, warn_pct)
    )
    short = Role.PRIMARY if view.free < view.backup else Role.SECONDARY
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
    # Both roles share one history: a reason given for both is said once.
    reasons = dict.fromkeys(value.reason for value in rel.endurance.values() if value.reason)
    result.notes += [f"failover peer {rel.name}: endurance: {reason}" for reason in reasons]
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
            if severity is CheckResult.CRITICAL
            else thresholds.warn_endurance
        )
        result.findings.append(
            Finding(
                severity,
                "endurance",
                f"failover peer {rel.name}: the {role}'s own free leases last"
                f" {_duration(value.interrupted)} if communications are interrupted"
                f" (< {_duration(limit)}; {value.rate_per_hour:.1f} new bindings/h over"
                f" {_duration(value.window)})",
                relationship=rel.name,
                role=role,
            )
        )


def _duration(seconds: int) -> str:
    return format_duration(seconds)


def resolve_thresholds(path: str | None, flags: dict[str, Any]) -> Thresholds:
    """The defaults, overridden by the TOML file ``path``, overridden by ``flags`` (command-line
    values as typed, ``None`` when not given); refused when a critical limit the operator
    set is looser than its warning one."""
    settings = load_thresholds(path) if path else {}
    for name, value in flags.items():
        if value is None:
            continue
        if name in _FREES:
            value = FreeLimit.parse(value, f"--{name.replace('_', '-')}")
        elif name in _DURATIONS:
            value = parse_duration(value)
        settings[name] = value
    thresholds = replace(Thresholds(), **settings)
    thresholds.check(settings)
    return thresholds
