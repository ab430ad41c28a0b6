"""``dhcpfoctl compare``: both servers' lease files against each other (the damage check).

Reads the primary's and the secondary's dhcpd.leases (copies fetched from each server do:
README "Comparing both servers' files"), optionally their dhcpd.conf for pools and MCLT,
and reports duplicates, unhealed duplicates, lost leases, ownership conflicts,
disagreements, updates in flight and split brains (:mod:`dhcpfoctl.checks.compare`).

Exit status, as ``audit``: 0 OK (updates in flight included), 1 WARNING, 2 CRITICAL,
3 UNKNOWN (unreadable or invalid input, a usage error, a crash). Formats: human (a line per
finding with what to do, then the pair's states and a summary per pool; ``--quiet``
prints nothing when all is OK, for cron), ``--format nagios`` (one line with perfdata) and
``--json``::

    {"as_of": 1795851720, "as_of_iso": "…", "status": "critical", "exit_status": 2,
     "notes": ["…"], "files": {"primary": "…", "secondary": "…"},
     "reading": {"primary": {"from_start": true, "records": 951}, "secondary": {…}},
     "pair_states": [{"relationship": "lab", "primary": {"my_state": "partner-down",
                      "my_since": "…", "partner_state": "…", "partner_since": "…"},
                      "secondary": {…}}],
     "pools": [{"name": "…", "relationship": "lab", "addresses": 151, "agreeing": 149,
                "findings": {"split-brain": 0, "duplicate": 2, …}}],
     "relationships": [… the same per relationship …],
     "findings": [{"kind": "duplicate", "severity": "critical", "address": "10.99.0.120",
                   "pool": "…", "relationship": "lab", "since": "…", "since_epoch": …,
                   "until": "…", "message": "…", "action": "…",
                   "clients": [{"hardware": "…", "uid": "…", "hostname": "…"}],
                   "records": [{"server": "primary", "state": "active", "client": {…},
                                "starts": "…", "ends": "…", "acknowledged": true}, …]}]}

Each run remembers, per pair of files (``--no-state`` to read both in full), where it
stopped reading and what it folded, so the next one reads only what dhcpd appended.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from dhcpfoctl.checks.compare import CompareReport, Journal
    from dhcpfoctl.model import ReadWarning, Role


class CompareFormat(StrEnum):
    human = "human"
    nagios = "nagios"
    json = "json"


#: State format; a saved journal of another version is read again from the files.
STATE_VERSION = 1
#: A remembered journal older than this is not used (a week of cron silence: start over).
STATE_MAX_AGE = 7 * 86400
#: Both files' folded records may be large on a big pool (about 150 bytes per address).
STATE_MAX_BYTES = 1 << 30


def compare(
    primary_leases: str = typer.Argument(..., metavar="PRIMARY.leases", help="Primary's file."),
    secondary_leases: str = typer.Argument(
        ..., metavar="SECONDARY.leases", help="Secondary's file."
    ),
    primary_config: str | None = typer.Option(
        None, "--primary-config", metavar="FILE", help="Primary's dhcpd.conf (pools, MCLT)."
    ),
    secondary_config: str | None = typer.Option(
        None, "--secondary-config", metavar="FILE", help="Secondary's dhcpd.conf."
    ),
    as_of: str = typer.Option("now", "--as-of", metavar="TIME", help="Judge at this time."),
    output_format: CompareFormat = typer.Option(
        CompareFormat.human, "--format", "-f", help="human, nagios or json."
    ),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Human: nothing when all is OK."),
    use_state: bool = typer.Option(
        True, "--state/--no-state", help="Read only what was appended since the last run."
    ),
    strict: bool = typer.Option(False, "--strict", help="A bad lease record is an error."),
) -> None:
    """Compare the two servers' lease files: duplicates, lost leases, split brain (0/1/2/3)."""
    from dhcpfoctl.checks.compare import compare_journals
    from dhcpfoctl.cli.output import echo, exit_with, reported_errors, warn
    from dhcpfoctl.conf import read_config
    from dhcpfoctl.errors import DhcpfoctlError
    from dhcpfoctl.times import parse_time

    chosen = CompareFormat.json if json_output else output_format
    with reported_errors(monitoring=True):
        try:
            moment = parse_time(as_of, int(time.time()))
            configs = (
                read_config(primary_config) if primary_config else None,
                read_config(secondary_config) if secondary_config else None,
            )
            sides = _Sides(primary_leases, secondary_leases, use_state=use_state, strict=strict)
            report = compare_journals(
                sides.journals[0],
                sides.journals[1],
                as_of=moment,
                configs=configs,
                skipped=sides.skipped,
            )
            sides.save(moment)
        except DhcpfoctlError as exc:
            if chosen is CompareFormat.nagios:
                echo(_nagios_status("UNKNOWN", str(exc)))
            raise
    if sides.save_error:
        warn(sides.save_error)
    _emit(report, sides, chosen, quiet=quiet)
    exit_with(report.worst)


class _Sides:
    """Both files read into journals, through the remembered state when there is one."""

    def __init__(self, primary: str, secondary: str, *, use_state: bool, strict: bool) -> None:
        import os

        from dhcpfoctl.checks.compare import Journal
        from dhcpfoctl.leases.reader import ResumeState, read_lease_history_incremental
        from dhcpfoctl.model import Role
        from dhcpfoctl.state import StateStore

        self.paths = (primary, secondary)
        self.store = (
            StateStore(
                "compare",
                "\0".join(os.path.realpath(path) for path in self.paths),
                version=STATE_VERSION,
                max_bytes=STATE_MAX_BYTES,
            )
            if use_state and "-" not in self.paths
            else None
        )
        saved = self.store.load(time.time(), STATE_MAX_AGE) if self.store else None
        self.journals: list[Journal] = []
        self.resumes: list[ResumeState] = []
        self.reading: dict[str, dict[str, Any]] = {}
        self.skipped: list[ReadWarning] = []
        self.save_error: str | None = None
        for role, path in zip(Role, self.paths, strict=True):
            journal, resume = _restore(saved, role)
            chunk = read_lease_history_incremental(path, resume, strict=strict)
            _refuse_garbage(path, chunk.db, chunk.leases)
            if chunk.from_start or journal is None:
                # A rewritten file (dhcpd's hourly rewrite, a fresh copy) replaces the
                # current records; the tenures already folded stay, as the duplicates they
                # may show are no longer in the file.
                kept = journal
                journal = Journal(role)
                if kept is not None:
                    journal.tenures, journal.states = kept.tenures, kept.states
            journal.fold(chunk.leases, chunk.failover)
            self.journals.append(journal)
            self.resumes.append(chunk.resume)
            # A record cut off at the end is dhcpd caught writing; one the reader kept (dhcpd
            # writes ends before starts after a conflict resolution) is compared as it is.
            self.skipped.extend(
                warning
                for warning in chunk.db.stats.warnings
                if not warning.truncated_tail and not warning.message.endswith("; lease kept")
            )
            self.reading[str(role)] = {
                "file": path,
                "from_start": chunk.from_start,
                "records": len(chunk.leases),
            }

    def save(self, as_of: int) -> None:
        from dhcpfoctl.checks.compare import RETENTION

        if self.store is None:
            return
        document: dict[str, Any] = {}
        for journal, resume in zip(self.journals, self.resumes, strict=True):
            journal.prune(as_of - RETENTION)
            document[str(journal.role)] = {"resume": resume.to_json(), "journal": journal.to_json()}
        self.store.save(document, time.time())
        self.save_error = self.store.save_error


def _restore(saved: dict[str, Any] | None, role: Role) -> tuple[Journal | None, Any]:
    """The remembered journal and resume point of one side, or (None, None)."""
    from dhcpfoctl.checks.compare import Journal
    from dhcpfoctl.leases.reader import ResumeState

    if saved is None:
        return None, None
    try:
        side = saved[str(role)]
        journal = Journal.from_json(side["journal"])
        if journal.role is not role:
            return None, None
        return journal, ResumeState.from_json(side["resume"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None, None  # a state we cannot read is no state: read the files again


def _refuse_garbage(path: str, db: Any, leases: list[Any]) -> None:
    """A file in which not one record could be read is not an empty server."""
    from dhcpfoctl.errors import InputFileError

    warnings = db.stats.warnings
    if warnings and not leases and not db.failover:
        raise InputFileError(
            path,
            f"no lease record could be read ({len(warnings)} unreadable, first: {warnings[0]})",
        )


def _emit(
    report: CompareReport,
    sides: _Sides,
    chosen: CompareFormat,
    *,
    quiet: bool,
) -> None:
    from dhcpfoctl.cli.output import echo, print_json, say
    from dhcpfoctl.errors import CheckResult, exit_status_for

    if chosen is CompareFormat.json:
        data = report.to_json()
        data["exit_status"] = int(exit_status_for(report.worst))
        data["files"] = {role: item["file"] for role, item in sides.reading.items()}
        data["reading"] = {
            role: {"from_start": item["from_start"], "records": item["records"]}
            for role, item in sides.reading.items()
        }
        print_json(data)
        return
    if chosen is CompareFormat.nagios:
        echo(nagios_line(report))
        return
    if quiet and report.worst is CheckResult.OK:
        return
    for line in human_lines(report, int(time.time())):
        say(line)


def human_lines(report: CompareReport, now: int) -> list[str]:
    """The human report: the pair's states, findings (with what to do), the sums."""
    from dhcpfoctl.times import format_local_time

    out = [f"Both servers' files compared at {format_local_time(report.as_of, now)}"]
    for state in report.pair_states:
        out.append(f"failover peer {state.relationship}:")
        for role, record in (("primary", state.primary), ("secondary", state.secondary)):
            if record is None:
                out.append(f"  {role:<9} no state record")
                continue
            out.append(
                f"  {role:<9} {record.my_state.keyword} since"
                f" {format_local_time(record.my_stos, now)}; partner"
                f" {record.partner_state.keyword} since"
                f" {format_local_time(record.partner_stos, now)}"
            )
    for finding in report.findings:
        out.append(f"{finding.severity.name} {finding.kind}: {finding.message}")
        out.append(f"  do: {finding.action}")
    for summary in report.pools:
        counts = ", ".join(f"{n} {kind}" for kind, n in summary.findings.items() if n)
        relationship = f" (failover peer {summary.relationship})" if summary.relationship else ""
        out.append(
            f"pool {summary.name}{relationship}: {summary.addresses} addresses on record,"
            f" {summary.agreeing} agree" + (f"; {counts}" if counts else "")
        )
    out.extend(f"note: {note}" for note in report.notes)
    return out


def nagios_line(report: CompareReport) -> str:
    """``DHCPFOCTL STATUS - summary | perfdata`` (Nagios plugin guidelines)."""
    from dhcpfoctl.checks.audit import Perf
    from dhcpfoctl.checks.compare import KINDS

    totals = dict.fromkeys(KINDS, 0)
    for finding in report.findings:
        totals[finding.kind] += 1
    alarming = [f for f in report.findings if f.severity.rank > 0]
    if alarming:
        summary = alarming[0].message
        if len(alarming) > 1:
            summary += f" (+{len(alarming) - 1} more)"
    else:
        addresses = sum(summary.addresses for summary in report.pools)
        summary = f"both files agree on {addresses} addresses"
        if totals["in-flight"]:
            summary += f" ({totals['in-flight']} updates in flight)"
    perfdata = " ".join(str(Perf(kind, count, minimum=0)) for kind, count in totals.items())
    return _nagios_status(report.worst.name, summary) + f" | {perfdata}"


def _nagios_status(status: str, summary: str) -> str:
    # "|" starts the perfdata: a summary quoting a file or a client must not forge any.
    return f"DHCPFOCTL {status} - {summary.replace('|', '/')}"
