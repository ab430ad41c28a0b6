"""``dhcpfoctl balance``: per-pool free/backup balance, dhcpd's arithmetic, endurance.

Reads a dhcpd.conf and a dhcpd.leases (no server needed) and shows, per pool and summed
per shared network and per failover relationship, the counts by state, what dhcpd's next
balance run would log and move, the "peer holds all free leases" risk, and how long each
server's own free leases last. Formats: a table (default), ``--json``, ``--csv`` and the
Prometheus textfile format (``--format prometheus``, with ``--output FILE`` written
atomically for node-exporter's textfile collector).

JSON (``--json``)::

    {
      "as_of": 1795851720, "as_of_iso": "2026-11-28T07:42:00Z",
      "window": 86400,                 # seconds of history asked for (--window)
      "history": 0,                    # seconds of new-binding history
      "history_source": "…",           # where it came from (the journal, the state)
      "outside_ranges": 0,             # lease records in no range of the config
      "relationships": [{"name": "lab", "role": "primary",     # this server's role
                         "my_state": "normal", "partner_state": "normal",
                         "counts": {…}, "pools": ["10.99.0.100-10.99.0.250"],
                         "endurance": {"primary": {…}, "secondary": {…}}}],
      "shared_networks": [{"name": "10.99.0.0/24", "counts": {…}}],
      "pools": [{"name": "10.99.0.100-10.99.0.250", "shared_network": "10.99.0.0/24",
                 "subnet": "10.99.0.0/24", "failover_peer": "lab", "source": "FILE:LINE",
                 "counts": {…}, "ranges": [{"range": "…", …counts}],
                 "role": "primary", "balance": {…this role's view…},
                 "balance_by_role": {"primary": {…}, "secondary": {…}},
                 "risks": [{"role": "secondary", "message": "…"}]}]
    }

``counts``: total, free (F, never-recorded addresses included), backup (B), active, expired,
released, abandoned, reset, reserved, unrecorded, active_ended, free_never_used,
backup_never_used, oldest_free_ends, oldest_backup_ends, returns. A balance view:
role, total, free, backup, lts, thresh, hold, panic, poolreq, imbalanced, exact,
next_run_in, ``log`` (the next ``balancing pool`` line, timer run) and ``next_run`` ``min``
/ ``max`` (moved, free, backup, lts, imbalanced, ``log``: the ``balanced`` line). An
endurance: window, bindings (new ones), returns, rate_per_hour, net_per_hour, normal,
interrupted (seconds or null), enough_history, reason, bindings_by_server.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from dhcpfoctl.cli.options import format_option
from dhcpfoctl.cli.prometheus import BALANCE_STATES

if TYPE_CHECKING:
    from dhcpfoctl.balance import BalanceReport, Counts, PoolReport

CONFIG_HELP = "dhcpd.conf of the server whose lease file is read (gives pools and its role)."
LEASES_HELP = "dhcpd.leases of that server (- for stdin; .gz accepted)."
AS_OF_HELP = "Evaluate at this time: now, @EPOCH, ISO 8601, -2h (default now)."
WINDOW_HELP = "History used for the allocation rate (endurance), e.g. 24h, 6h, 7d."
RISK_HELP = "Flag a side whose own free leases are at or below N while its peer has some."


class Format(StrEnum):
    human = "human"  # formerly "table", still accepted (cli.options.FORMAT_ALIASES)
    json = "json"
    csv = "csv"
    prometheus = "prometheus"


def balance(
    config: str = typer.Option(..., "--config", "-c", metavar="FILE", help=CONFIG_HELP),
    leases: str = typer.Option(..., "--leases", "-l", metavar="FILE", help=LEASES_HELP),
    as_of: str = typer.Option("now", "--as-of", metavar="TIME", help=AS_OF_HELP),
    window: str = typer.Option("24h", "--window", metavar="DURATION", help=WINDOW_HELP),
    risk_free: int = typer.Option(0, "--risk-free", min=0, metavar="N", help=RISK_HELP),
    output_format: Format = format_option(
        Format, "human: a table per pool; csv: a row per range, pool, network, relationship."
    ),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
    csv_output: bool = typer.Option(False, "--csv", help="Same as --format csv."),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="Write to FILE (atomically: temp file, then rename), e.g. for node-exporter.",
    ),
) -> None:
    """Per-pool free/backup balance, dhcpd's balance arithmetic and endurance."""
    from dhcpfoctl.balance import report_to_json
    from dhcpfoctl.checks.inputs import as_of_before_history, gather
    from dhcpfoctl.cli.output import (
        emit_text,
        read_leases_with_progress,
        reported_errors,
        warn,
        write_atomically,
    )
    from dhcpfoctl.cli.prometheus import report_to_prometheus

    chosen = Format.json if json_output else Format.csv if csv_output else output_format
    with reported_errors():
        inputs = gather(config, leases, as_of, window, risk_free, read_leases_with_progress)
        for message in inputs.config.warnings:
            warn(message)
        if skipped := len(inputs.db.stats.warnings):
            warn(
                f"{leases}: {skipped} unreadable lease records skipped (first: "
                f"{inputs.db.stats.warnings[0]})"
            )
        report = inputs.report
        if warning := as_of_before_history(inputs, as_of, leases):
            warn(warning)
        if chosen is Format.human and output is None:
            print_table(report)
            return
        render = {
            Format.json: lambda r: _dumps(report_to_json(r)),
            Format.csv: report_to_csv,
            Format.prometheus: report_to_prometheus,
            Format.human: _table_text,
        }[chosen]
        text = render(report)
        if output is None:
            emit_text(text)
        else:
            write_atomically(output, text)


def _dumps(data: Any) -> str:
    from dhcpfoctl.cli.output import json_text

    return json_text(data)


# -- CSV -------------------------------------------------------------------------------

CSV_COLUMNS = (
    "level",
    "name",
    "relationship",
    "shared_network",
    "total",
    *BALANCE_STATES,
    "reserved",
    "unrecorded",
    "role",
    "lts",
    "thresh",
    "hold",
    "panic",
    "poolreq",
    "moves_min",
    "moves_max",
    "imbalanced",
    "risk",
)


def report_to_csv(report: BalanceReport) -> str:
    """One row per range, pool, shared network and relationship (``level`` says which)."""
    from dhcpfoctl.balance import server_role
    from dhcpfoctl.cli.output import csv_text

    rows: list[list[object]] = [list(CSV_COLUMNS)]

    def row(
        level: str,
        name: str,
        rel: str | None,
        net: str | None,
        counts: Counts,
        pool: PoolReport | None = None,
    ) -> None:
        role = server_role(report, rel)
        view = pool.view(role) if pool is not None and role else None
        balance_cells: list[object] = [""] * 9
        if view is not None:
            balance_cells = [
                view.lts,
                view.thresh,
                view.hold,
                view.panic,
                int(view.poolreq),
                view.next_min.moved,
                view.next_max.moved,
                int(view.imbalanced),
                "; ".join(pool.risks.values()) if pool else "",
            ]
        rows.append(
            [
                level,
                name,
                rel or "",
                net or "",
                counts.total,
                *(getattr(counts, s) for s in BALANCE_STATES),
                counts.reserved,
                counts.unrecorded,
                role or "",
                *balance_cells,
            ]
        )

    for pool in report.pools:
        rel, net = pool.pool.failover_peer, pool.pool.shared_network
        for label, counts in pool.ranges:
            row("range", label, rel, net, counts)
        row("pool", pool.pool.label, rel, net, pool.counts, pool)
    for group in report.shared_networks:
        row("shared-network", group.name, None, group.name, group.counts)
    for rel_report in report.relationships:
        row("relationship", rel_report.name, rel_report.name, None, rel_report.counts)
    return csv_text(rows)


# -- table -----------------------------------------------------------------------------

BAR_WIDTH = 10


def split_bar(free: int, backup: int) -> Any:
    """Free (primary) vs backup (secondary) share as a fixed-width bar."""
    from dhcpfoctl.cli.output import styled

    total = free + backup
    if total == 0:
        return styled(("·" * BAR_WIDTH, "dim"))
    left = round(BAR_WIDTH * free / total)
    return styled(("█" * left, "green"), ("▒" * (BAR_WIDTH - left), "blue"))


def short_range(first: int, last: int) -> str:
    """``10.20.0.10-19`` when both ends share the first three octets."""
    from dhcpfoctl.model import int_to_address

    low = int_to_address(first)
    if first == last:
        return low
    if first >> 8 == last >> 8:
        return f"{low}-{last & 0xFF}"
    return f"{low}-{int_to_address(last)}"


def _table_text(report: BalanceReport) -> str:
    from dhcpfoctl.cli.output import text_console

    console = text_console(160)
    print_table(report, console)
    return console.file.getvalue()  # type: ignore[attr-defined]


def print_table(report: BalanceReport, console: Any = None) -> None:
    from dhcpfoctl.cli.output import fit_table, print_wrapped, stdout_console
    from dhcpfoctl.times import format_duration

    console = console or stdout_console()
    # On a narrow terminal rich would squeeze every column into ellipses: drop the bar
    # first (it repeats the free and backup figures), then the spacing, never a figure.
    console.print(
        fit_table(
            (
                lambda bar=bar, pad=pad: _pool_table(report, with_bar=bar, padding=pad)
                for bar, pad in ((True, 1), (False, 1), (False, 0))
            ),
        )
    )
    for rel in report.relationships:
        role = rel.peer.role if rel.peer else "?"
        state = rel.my_state.keyword if rel.my_state is not None else "unknown"
        print_wrapped(
            console,
            f"failover peer {rel.name}: this server is {role}, state {state};"
            f" free {rel.counts.free}, backup {rel.counts.backup}",
        )
        for who, value in rel.endurance.items():
            if value.interrupted is None:
                print_wrapped(
                    console, f"endurance ({who}): {value.reason or 'no drain'}", indent="  "
                )
                continue
            normal = format_duration(value.normal) if value.normal is not None else "no drain"
            interrupted = format_duration(value.interrupted or 0)
            print_wrapped(
                console,
                f"endurance ({who}): {interrupted} if communications-interrupted,"
                f" {normal} in normal ({value.rate_per_hour:.1f} new bindings/h over"
                f" {format_duration(value.window)})",
                indent="  ",
            )
    if report.relationships and report.history_source:
        print_wrapped(
            console,
            f"new-binding history: {format_duration(report.history)} from {report.history_source}",
        )
    for pool in report.pools:
        for message in pool.risks.values():
            print_wrapped(console, f"RISK {pool.pool.label}: {message}", style="bold red")


def _pool_table(report: BalanceReport, *, with_bar: bool, padding: int) -> Any:
    from rich import box
    from rich.table import Table

    from dhcpfoctl.balance import server_role
    from dhcpfoctl.cli.output import lines, styled
    from dhcpfoctl.times import format_local_time

    table = Table(
        title=f"Pools at {format_local_time(report.as_of, int(time.time()))}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, padding),
        collapse_padding=True,
    )
    table.add_column("pool", no_wrap=True)
    table.add_column("peer", no_wrap=True)
    for header in ("size", "free", "backup", "active"):
        table.add_column(header, justify="right", min_width=len(header))
    if with_bar:
        table.add_column("free|bkup", no_wrap=True)
    table.add_column("lts", justify="right", min_width=3)
    table.add_column("next run", overflow="fold", min_width=8)
    network = None
    for pool in report.pools:
        if pool.pool.shared_network != network:
            network = pool.pool.shared_network
            table.add_row(styled((network, "bold")))
        counts = pool.counts
        role = server_role(report, pool.pool.failover_peer)
        view = pool.view(role) if role else None
        lts = next_run = ""
        if view is not None:
            lts = f"{view.lts}"
            moved = (
                f"{view.next_min.moved}"
                if view.exact
                else f"{view.next_min.moved}-{view.next_max.moved}"
            )
            next_run = moved
            if view.poolreq:
                next_run += ", POOLREQ"
            if view.imbalanced:
                next_run += ", IMBALANCED"
        bar = split_bar(counts.free, counts.backup) if pool.pool.failover_peer else ""
        table.add_row(
            lines(*(short_range(r.first, r.last) for r in pool.pool.ranges)),
            pool.pool.failover_peer or "-",
            str(counts.total),
            str(counts.free),
            str(counts.backup),
            str(counts.active),
            *([bar] if with_bar else []),
            lts,
            next_run,
        )
    return table
