"""A server's dhcpd.conf and dhcpd.leases read into its balance report (``balance``, ``audit``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dhcpfoctl.balance import BUCKET, FROM_JOURNAL, BalanceReport, compute_balance, journal_history
from dhcpfoctl.conf import Config, read_config
from dhcpfoctl.errors import InputFileError, LocalError
from dhcpfoctl.leases.transitions import WindowRequest
from dhcpfoctl.model import LeaseDB
from dhcpfoctl.times import parse_duration, parse_time

if TYPE_CHECKING:
    from dhcpfoctl.checks.history import LeaseFollower


@dataclass(frozen=True, slots=True)
class Inputs:
    config: Config
    db: LeaseDB
    report: BalanceReport
    #: About the remembered state (started over, ignored, not saved), one line each.
    notes: tuple[str, ...] = ()


def gather(
    config_path: str,
    leases_path: str,
    as_of: str,
    window: str,
    risk_free: int = 0,
    read_leases: Callable[..., LeaseDB] | None = None,
    follower: LeaseFollower | None = None,
) -> Inputs:
    """Read both files and compute the report; ``read_leases`` reads the lease file
    (:func:`dhcpfoctl.leases.read_leases` by default, whose ``window`` it takes too; the
    CLI's draws a progress bar).

    ``follower`` adds the new bindings dhcpd appended since the last run to the lease
    file's remembered history, the endurance's source. Only for an audit of now: the
    history is about the present, and a file on standard input cannot be followed.
    Without it (``balance``, ``--as-of``, ``--no-state``) the history is the lease file's
    own journal up to ``as_of`` (:func:`dhcpfoctl.balance.journal_history`).
    """
    if read_leases is None:
        from dhcpfoctl.leases import read_leases

    now = int(time.time())
    moment = parse_time(as_of, now)
    span = parse_duration(window)
    if span <= 0:
        raise LocalError("--window must be longer than 0 seconds")
    config = read_config(config_path)
    if follower is not None and moment == now and leases_path != "-":
        followed = follower.read(leases_path, config, now)
        history, notes, source = followed.history, tuple(followed.notes), followed.source
        db = follower.whole(leases_path, read_leases)
    else:
        notes, source = (), FROM_JOURNAL
        if leases_path == "-":
            db = read_leases(leases_path)
            history = None  # standard input is read once: no journal to count from
        else:
            # One pass over the file gives the table and the new bindings of its journal
            # that the rate over the window can count.
            window = WindowRequest(moment - span - BUCKET)
            db = read_leases(leases_path, window=window)
            assert window.found is not None  # filled by the read
            history, _ = journal_history(config, window.found, moment, span)
    require_lease_records(db, leases_path, len(db.leases))
    report = compute_balance(
        config,
        db,
        moment,
        window=span,
        risk_free=risk_free,
        history=history,
        history_source=source,
    )
    return Inputs(config, db, report, notes)


def require_lease_records(db: LeaseDB, path: str, records: int) -> None:
    """Refuse a file of which nothing but unreadable records was read (``records`` leases
    were): not a lease file at all (garbage, a dhcpd.conf). Counting it as empty would show
    a plausible, invented picture (every address a never-used free lease, or "0 leases")."""
    if db.stats.warnings and not records:
        raise InputFileError(
            path,
            f"no lease record could be read ({len(db.stats.warnings)} unreadable, first:"
            f" {db.stats.warnings[0]})",
        )


def as_of_before_history(inputs: Inputs, as_of: str, path: str) -> str | None:
    """A warning when ``--as-of`` lies before every lease record of the file: the counts
    are then the file's as it is now, not as it was at that moment."""
    # A generator, not a list: a list of a 1M-address file's starts costs 36 MiB.
    oldest = min((t for t in inputs.db.leases.starts if t > 0), default=None)
    if oldest is None or inputs.report.as_of >= oldest:
        return None
    return (
        f"--as-of {as_of} is not after the oldest lease record of {path}: no history to estimate"
        " from, and every address counts in the state of its last record; give the file as"
        " it was then (a backup, or dhcpd.leases~)"
    )
