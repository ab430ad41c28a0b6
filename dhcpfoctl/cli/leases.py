"""``dhcpfoctl leases``: list, filter and summarise a dhcpd lease file.

Gathering (read, filter) is separate from rendering (rich table, JSON, CSV); the renderers
take plain data. Heavy imports happen inside the command body.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ipaddress import IPv4Network, IPv6Network

    from dhcpfoctl.leases.v6 import Lease6
    from dhcpfoctl.model import FailoverPeerRecord, Lease, LeaseDB

#: Files larger than this get a progress bar (on a terminal).
PROGRESS_THRESHOLD = 50 << 20
# CSV columns around the six times (model.TIME_FIELDS, imported lazily with the model).
_CSV_COLUMNS_BEFORE_TIMES = (
    "address",
    "binding_state",
    "next_binding_state",
    "rewind_binding_state",
)
_CSV_COLUMNS_AFTER_TIMES = (
    "hardware_type",
    "hardware_address",
    "uid",
    "client_hostname",
    "flags",
)


@dataclass(frozen=True, slots=True)
class Filters:
    """What the operator asked to see; ``None`` means "no restriction"."""

    states: frozenset[str] | None = None
    network: IPv4Network | IPv6Network | None = None
    mac_prefix: str | None = None
    hostname_glob: str | None = None
    ends_before: int | None = None
    ends_after: int | None = None

    def accepts(self, lease: Lease) -> bool:
        import fnmatch
        import ipaddress

        if self.states is not None:
            state = lease.binding_state.keyword if lease.binding_state is not None else "none"
            if state not in self.states:
                return False
        if self.network is not None and ipaddress.ip_address(lease.address) not in self.network:
            return False
        if self.mac_prefix is not None and not (lease.mac or "").startswith(self.mac_prefix):
            return False
        if self.hostname_glob is not None and not fnmatch.fnmatchcase(
            (lease.client_hostname or "").lower(), self.hostname_glob.lower()
        ):
            return False
        if self.ends_before is not None and not (
            lease.ends is not None and lease.ends < self.ends_before
        ):
            return False
        return self.ends_after is None or (lease.ends is not None and lease.ends > self.ends_after)


def parse_filters(
    state: str | None,
    ip: str | None,
    mac: str | None,
    hostname: str | None,
    expired_before: str | None,
    expired_after: str | None,
    now: int,
) -> Filters:
    """Validate the filter options; raises :class:`typer.BadParameter` (exit status 2)."""
    import ipaddress

    from dhcpfoctl.errors import LocalError
    from dhcpfoctl.model import BindingState
    from dhcpfoctl.times import parse_time

    states = None
    if state is not None:
        states = frozenset(word.strip().lower() for word in state.split(",") if word.strip())
        known = {member.keyword for member in BindingState}
        unknown = sorted(states - known)
        if unknown:
            raise typer.BadParameter(
                f"unknown state {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                param_hint="--state",
            )
    network = None
    if ip is not None:
        try:
            network = ipaddress.ip_network(ip, strict=False)
        except ValueError:
            raise typer.BadParameter(f"not an address or CIDR: {ip!r}", param_hint="--ip") from None
    mac_prefix = None
    if mac is not None:
        import re

        mac_prefix = mac.strip().lower().replace("-", ":")
        # As the output writes them: two hex digits per byte, colon-separated; "2:99" or
        # "0299" would silently match nothing.
        if not re.fullmatch(r"(?:[0-9a-f]{2}:)*[0-9a-f]{0,2}", mac_prefix) or not mac_prefix:
            raise typer.BadParameter(
                f"not a MAC prefix: {mac!r} (two hex digits per byte, colon-separated,"
                " e.g. 02:99: or 02:99:0a)",
                param_hint="--mac",
            )

    def when(text: str | None, option: str) -> int | None:
        if text is None:
            return None
        try:
            return parse_time(text, now)
        except LocalError as exc:
            raise typer.BadParameter(str(exc), param_hint=option) from None

    return Filters(
        states=states,
        network=network,
        mac_prefix=mac_prefix,
        hostname_glob=hostname,
        ends_before=when(expired_before, "--expired-before"),
        ends_after=when(expired_after, "--expired-after"),
    )


# JSON / CSV shapes -----------------------------------------------------------------------


def _bytes_json(data: bytes) -> str | dict[str, str]:
    """Printable ASCII as a string, anything else as ``{"hex": "01:02"}``."""
    if all(0x20 <= byte < 0x7F for byte in data):
        return data.decode("ascii")
    return {"hex": data.hex(":")}


def _epoch_json(epoch: int | None) -> int | None:
    from dhcpfoctl.model import NEVER

    return None if epoch is None or epoch == NEVER else epoch


def lease_to_json(lease: Lease) -> dict[str, Any]:
    """Every field of a lease: times as ISO UTC plus epoch, uid as hex, extras in full."""
    from dhcpfoctl.model import LeaseFlag
    from dhcpfoctl.times import iso_utc

    extras = lease.extras
    data: dict[str, Any] = {"address": lease.address}
    for name, value in (
        ("binding_state", lease.binding_state),
        ("next_binding_state", lease.next_binding_state),
        ("rewind_binding_state", lease.rewind_binding_state),
    ):
        data[name] = value.keyword if value is not None else None
    from dhcpfoctl.model import TIME_FIELDS

    for name in TIME_FIELDS:
        value = getattr(lease, name)
        data[name] = iso_utc(value)
        data[f"{name}_epoch"] = _epoch_json(value)
    data["hardware"] = (
        None
        if lease.hardware_address is None
        else {
            "type": lease.hardware_type.keyword if lease.hardware_type is not None else None,
            "address": lease.mac,
        }
    )
    data["uid"] = extras.uid.hex(":") if extras.uid is not None else None
    data["client_hostname"] = extras.client_hostname
    data["billing"] = extras.billing
    data["flags"] = [flag.name.lower() for flag in LeaseFlag if lease.flags & flag]
    data["variables"] = {
        name: _bytes_json(value) if isinstance(value, bytes) else value
        for name, value in extras.variables
    }
    data["options"] = {name: _bytes_json(value) for name, value in extras.options}
    data["on_blocks"] = [{"events": b.events, "body": b.body} for b in extras.on_blocks]
    data["other_statements"] = list(extras.other)
    return data


def failover_to_json(record: FailoverPeerRecord) -> dict[str, Any]:
    from dhcpfoctl.times import iso_utc

    return {
        "name": record.name,
        "my_state": record.my_state.keyword,
        "my_state_since": iso_utc(record.my_stos),
        "my_state_since_epoch": _epoch_json(record.my_stos),
        "partner_state": record.partner_state.keyword,
        "partner_state_since": iso_utc(record.partner_stos),
        "partner_state_since_epoch": _epoch_json(record.partner_stos),
        "mclt": record.mclt,
    }


def lease6_to_json(lease: Lease6) -> dict[str, Any]:
    from dhcpfoctl.times import iso_utc

    return {
        "address": lease.address,
        "type": lease.kind,
        "binding_state": lease.binding_state,
        "iaid": lease.iaid,
        "duid": lease.duid.hex(":"),
        "cltt": iso_utc(lease.cltt),
        "cltt_epoch": _epoch_json(lease.cltt),
        "ends": iso_utc(lease.ends),
        "ends_epoch": _epoch_json(lease.ends),
        "preferred_life": lease.preferred_life,
        "max_life": lease.max_life,
        "variables": dict(lease.variables),
    }


def summary_to_json(db: LeaseDB, states: dict[str, int], path: str) -> dict[str, Any]:
    hosts = list(db.hosts.values())
    return {
        "file": path,
        "records": db.stats.records,
        "superseded_records": db.stats.superseded,
        "bytes": db.stats.bytes_read,
        "addresses": sum(states.values()),
        "states": states,
        "failover": [failover_to_json(record) for record in db.failover.values()],
        "hosts": {
            "present": sum(not h.deleted for h in hosts),
            "deleted": sum(h.deleted for h in hosts),
        },
        "server_duid": db.server_duid.hex(":") if db.server_duid is not None else None,
        "authoring_byte_order": db.byte_order,
        "warnings": [str(warning) for warning in db.stats.warnings],
    }


def summary6_to_json(leases: list[Lease6], path: str, problems: list[Any]) -> dict[str, Any]:
    """A DHCPv6 file's summary: current leases per type (ia-na, ia-ta, ia-pd) and state."""
    counts: dict[str, dict[str, int]] = {}
    for (kind, state), n in sorted(Counter((x.kind, x.binding_state) for x in leases).items()):
        counts.setdefault(kind, {})[state] = n
    return {
        "file": path,
        "addresses": len(leases),
        "counts": counts,
        "warnings": [str(problem) for problem in problems],
    }


def state_counts(leases: Iterable[Lease]) -> dict[str, int]:
    counts = Counter(
        lease.binding_state.keyword if lease.binding_state is not None else "none"
        for lease in leases
    )
    return dict(sorted(counts.items()))


def table_state_counts(db: LeaseDB) -> dict[str, int]:
    """:func:`state_counts` of every current lease, from the state column (no Lease objects)."""
    from dhcpfoctl.model import BindingState

    counts = Counter(db.leases.state)
    named = {BindingState(value).keyword if value else "none": n for value, n in counts.items()}
    return dict(sorted(named.items()))


def csv_rows(leases: Iterable[Lease]) -> Iterator[list[str]]:
    from dhcpfoctl.model import TIME_FIELDS
    from dhcpfoctl.times import iso_utc

    yield [*_CSV_COLUMNS_BEFORE_TIMES, *TIME_FIELDS, *_CSV_COLUMNS_AFTER_TIMES]
    for lease in leases:
        data = lease_to_json(lease)
        hardware = data["hardware"] or {}
        yield [
            lease.address,
            data["binding_state"] or "",
            data["next_binding_state"] or "",
            data["rewind_binding_state"] or "",
            *(iso_utc(getattr(lease, name)) or "" for name in TIME_FIELDS),
            hardware.get("type") or "",
            hardware.get("address") or "",
            data["uid"] or "",
            data["client_hostname"] or "",
            " ".join(data["flags"]),
        ]


# Human output --------------------------------------------------------------------------


def render_table(leases: list[Lease], now: int) -> None:
    from dhcpfoctl.cli.output import fit_table, stdout_console

    stdout_console().print(
        fit_table(
            (lambda c=c, p=p: _lease_table(leases, now, c, p) for c, p in (*LAYOUTS, (2, 0))),
        )
    )


#: (compact, padding) of the tables, widest first (see :func:`dhcpfoctl.cli.output.fit_table`).
LAYOUTS = ((0, 1), (1, 1), (1, 0))


def _lease_table(leases: list[Lease], now: int, compact: int, padding: int) -> Any:
    """The lease list; ``compact`` 1 stacks the flags and the next state under the state and
    the relative time under the date and wraps long hardware addresses, 2 also lets host
    names fold (the last resort: a host name longer than what is left)."""
    from rich import box
    from rich.table import Table

    from dhcpfoctl.cli.output import hardware_lines, lines
    from dhcpfoctl.times import format_local_parts

    table = Table(
        title=f"{len(leases)} leases",
        title_justify="left",
        box=box.HEAVY_HEAD if not compact else box.SIMPLE_HEAD,
        pad_edge=not compact,
        padding=(0, padding),
    )
    table.add_column("address", no_wrap=True)
    table.add_column("state" if not compact else "state/next", no_wrap=True)
    if not compact:
        table.add_column("next", no_wrap=True)
    table.add_column("ends", no_wrap=True)
    table.add_column("hardware", no_wrap=True)
    table.add_column("hostname", no_wrap=compact < 2, overflow="fold")
    for lease in leases:
        state = lease.binding_state.keyword if lease.binding_state is not None else "-"
        flags = ", ".join(flag.name.lower() for flag in type(lease.flags) if lease.flags & flag)
        following = lease.next_binding_state.keyword if lease.next_binding_state else ""
        moment, relative = format_local_parts(lease.ends, now)
        if compact:
            state_cell = lines(
                state,
                *(f"({flag})" for flag in flags.split(", ") if flag),
                *([f"→ {following}"] if following else []),
            )
            ends_cell = lines(moment, *([relative] if relative else []))
            hardware = lines(*hardware_lines(lease.mac)) if lease.mac else ""
            cells = [state_cell, ends_cell, hardware]
        else:
            cells = [
                state + (f" ({flags})" if flags else ""),
                following,
                f"{moment} ({relative})" if relative else moment,
                lease.mac or "",
            ]
        table.add_row(lease.address, *cells, lease.client_hostname or "")
    return table


def render_summary(summary: dict[str, Any], now: int) -> None:
    from rich.table import Table

    from dhcpfoctl.cli.output import fit_table, say, stdout_console

    console = stdout_console()
    say(
        f"{summary['file']}: {summary['records']} lease records, "
        f"{summary['superseded_records']} superseded, {summary['addresses']} addresses"
    )
    states = Table(title="binding states", title_justify="left")
    states.add_column("state", no_wrap=True)
    states.add_column("leases", justify="right", no_wrap=True)
    for state, count in summary["states"].items():
        states.add_row(state, str(count))
    console.print(states)
    if summary["failover"]:
        records = summary["failover"]
        console.print(
            fit_table((lambda c=c, p=p: _failover_table(records, now, c, p) for c, p in LAYOUTS))
        )
    hosts = summary["hosts"]
    if hosts["present"] or hosts["deleted"]:
        say(f"hosts: {hosts['present']} present, {hosts['deleted']} deleted")


def _failover_table(records: list[dict[str, Any]], now: int, compact: int, padding: int) -> Any:
    """The failover state records; ``compact``: each state with its time below it."""
    from rich import box
    from rich.table import Table

    from dhcpfoctl.cli.output import lines
    from dhcpfoctl.times import format_duration, format_local_parts, format_local_time

    table = Table(
        title="failover state records (last per relationship)",
        title_justify="left",
        box=box.HEAVY_HEAD if not compact else box.SIMPLE_HEAD,
        pad_edge=not compact,
        padding=(0, padding),
    )
    table.add_column("relationship", no_wrap=True)
    for who in ("my", "partner"):
        table.add_column(f"{who} state" + (" since" if compact else ""), no_wrap=True)
        if not compact:
            table.add_column("since", no_wrap=True)
    table.add_column("mclt", no_wrap=True)
    for record in records:
        cells: list[Any] = [record["name"]]
        for who in ("my", "partner"):
            state, since = record[f"{who}_state"], record[f"{who}_state_since_epoch"]
            if compact:
                moment, relative = format_local_parts(since, now)
                cells.append(lines(state, moment, *([relative] if relative else [])))
            else:
                cells += [state, format_local_time(since, now)]
        cells.append("" if record["mclt"] is None else format_duration(record["mclt"]))
        table.add_row(*cells)
    return table


def render_summary6(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from dhcpfoctl.cli.output import say, stdout_console

    say(f"{summary['file']}: {summary['addresses']} DHCPv6 leases and prefixes")
    table = Table(title="by type and binding state", title_justify="left")
    table.add_column("type", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("leases", justify="right")
    for row in _summary6_rows(summary):
        table.add_row(*row)
    stdout_console().print(table)


def _summary6_rows(summary: dict[str, Any]) -> list[list[str]]:
    return [
        [kind, state, str(n)]
        for kind, states in summary["counts"].items()
        for state, n in states.items()
    ]


def render_table6(leases: list[Lease6], now: int) -> None:
    from rich import box
    from rich.table import Table

    from dhcpfoctl.cli.output import fit_table, hardware_lines, lines, stdout_console
    from dhcpfoctl.times import format_local_parts, format_local_time

    def build(compact: int, padding: int) -> Any:
        table = Table(
            title=f"{len(leases)} DHCPv6 leases",
            title_justify="left",
            box=box.HEAVY_HEAD if not compact else box.SIMPLE_HEAD,
            pad_edge=not compact,
            padding=(0, padding),
        )
        for column in ("address", "type", "state", "ends", "iaid", "duid"):
            table.add_column(column, no_wrap=True)
        for lease in leases:
            moment, relative = format_local_parts(lease.ends, now)
            duid = lease.duid.hex(":")
            table.add_row(
                lease.address,
                lease.kind,
                lease.binding_state,
                lines(moment, relative) if compact else format_local_time(lease.ends, now),
                str(lease.iaid),
                lines(*hardware_lines(duid, 6 if compact else 10)) if duid else "",
            )
        return table

    console = stdout_console()
    console.print(fit_table((lambda c=c, p=p: build(c, p) for c, p in LAYOUTS)))


def _looks_like_v6(path: str) -> bool:
    """True for a DHCPv6 lease file: IA records and no v4 ``lease`` record in its head."""
    import gzip
    import re

    if path == "-":
        return False
    from dhcpfoctl.errors import InputFileError
    from dhcpfoctl.files import open_regular

    try:
        with open_regular(path) as raw:
            head = raw.read(1 << 16)
            if head[:2] == b"\x1f\x8b":
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw) as unpacked:
                    head = unpacked.read(1 << 16)
    except (InputFileError, OSError, EOFError):
        return False  # the v4 reader reports the problem with the file's name
    has_ia = re.search(rb"^ia-(?:na|ta|pd) ", head, re.M) is not None
    return has_ia and re.search(rb"^lease ", head, re.M) is None


def _read_v4(path: str, strict: bool) -> LeaseDB:
    import os

    from dhcpfoctl.cli.output import read_leases_with_progress
    from dhcpfoctl.leases import read_leases

    try:
        size = os.stat(path).st_size if path != "-" else 0
    except OSError:
        size = 0  # read_leases reports the missing file
    if size > PROGRESS_THRESHOLD:
        return read_leases_with_progress(path, strict=strict)
    return read_leases(path, strict=strict)


def leases(
    file: str = typer.Argument(
        ..., metavar="FILE", help="dhcpd.leases file; '-' reads stdin; gzip detected."
    ),
    state: str | None = typer.Option(
        None,
        "--state",
        metavar="STATES",
        help="Only these binding states, comma-separated, of: free, backup, active, expired,"
        " released, abandoned, reset, reserved, bootp.",
    ),
    ip: str | None = typer.Option(
        None, "--ip", metavar="CIDR", help="Only addresses in this CIDR."
    ),
    mac: str | None = typer.Option(
        None,
        "--mac",
        metavar="PREFIX",
        help="Only hardware addresses starting so: hex bytes, colon-separated (02:99:).",
    ),
    hostname: str | None = typer.Option(
        None,
        "--hostname",
        metavar="GLOB",
        help="Only client-hostnames matching this glob (case-insensitive).",
    ),
    expired_before: str | None = typer.Option(
        None,
        "--expired-before",
        metavar="TIME",
        help="Only leases whose ends is before TIME (now, @EPOCH, -2h, ISO 8601).",
    ),
    expired_after: str | None = typer.Option(
        None,
        "--expired-after",
        "--after",
        metavar="TIME",
        help="Only leases whose ends is after TIME.",
    ),
    all_records: bool = typer.Option(
        False,
        "--all-records",
        help="Every lease record in file order, superseded ones included (slower).",
    ),
    summary: bool = typer.Option(
        False, "--summary", help="Counts per binding state and the failover state records."
    ),
    json_output: bool = typer.Option(False, "--json", help="JSON with every field."),
    csv_output: bool = typer.Option(False, "--csv", help="CSV, one row per lease."),
    strict: bool = typer.Option(False, "--strict", help="Any bad record is a fatal error."),
    v6: bool = typer.Option(
        False, "-6", "--v6", help="Read a DHCPv6 lease file (detected automatically)."
    ),
) -> None:
    """List the current lease of each address (the last record wins), or summarise."""
    from dhcpfoctl.checks.inputs import require_lease_records
    from dhcpfoctl.cli.output import print_json, reported_errors, warn, write_csv

    if json_output and csv_output:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--json/--csv")
    now = int(time.time())
    filters = parse_filters(state, ip, mac, hostname, expired_before, expired_after, now)
    with reported_errors():
        if v6 or _looks_like_v6(file):
            _leases6(file, filters, summary, json_output, csv_output, now)
            return
        if all_records:
            from dhcpfoctl.leases.reader import read_lease_history

            db, history = read_lease_history(file, strict=strict)
            require_lease_records(db, file, len(history))
            selected = [lease for lease in history if filters.accepts(lease)]
            quick = False
        else:
            db = _read_v4(file, strict)
            require_lease_records(db, file, len(db.leases))
            # An unfiltered summary counts straight from the columns: no Lease per address.
            quick = summary and filters == Filters()
            selected = [] if quick else [lease for lease in db.leases if filters.accepts(lease)]
        for warning in db.stats.warnings[:20]:
            warn(str(warning))
        if len(db.stats.warnings) > 20:
            warn(f"… and {len(db.stats.warnings) - 20} more problems in {file}")
        if summary:
            counts = table_state_counts(db) if quick else state_counts(selected)
            data = summary_to_json(db, counts, file)
            if json_output:
                print_json(data)
            elif csv_output:
                write_csv([["state", "leases"], *([k, str(v)] for k, v in data["states"].items())])
            else:
                render_summary(data, now)
        elif json_output:
            print_json([lease_to_json(lease) for lease in selected])
        elif csv_output:
            write_csv(csv_rows(selected))
        else:
            render_table(selected, now)


def _leases6(
    file: str, filters: Filters, summary: bool, json_output: bool, csv_output: bool, now: int
) -> None:
    import ipaddress

    from dhcpfoctl.cli.output import print_json, write_csv
    from dhcpfoctl.leases import read_leases6

    if filters.mac_prefix is not None or filters.hostname_glob is not None:
        raise typer.BadParameter(
            "DHCPv6 leases have no MAC or client-hostname to filter on",
            param_hint="--mac/--hostname",
        )
    from dhcpfoctl.cli.output import warn
    from dhcpfoctl.model import ReadWarning

    problems: list[ReadWarning] = []
    current = read_leases6(file, problems)
    for problem in problems:
        warn(str(problem))
    selected = []
    for lease in current:
        if filters.states is not None and lease.binding_state not in filters.states:
            continue
        if filters.network is not None and (
            ipaddress.ip_network(lease.address, strict=False).network_address not in filters.network
        ):
            continue
        if filters.ends_before is not None and not (
            lease.ends is not None and lease.ends < filters.ends_before
        ):
            continue
        if filters.ends_after is not None and not (
            lease.ends is not None and lease.ends > filters.ends_after
        ):
            continue
        selected.append(lease)
    if summary:
        data = summary6_to_json(selected, file, problems)
        if json_output:
            print_json(data)
        elif csv_output:
            write_csv([["type", "state", "leases"], *_summary6_rows(data)])
        else:
            render_summary6(data)
    elif json_output:
        print_json([lease6_to_json(lease) for lease in selected])
    elif csv_output:
        rows = [lease6_to_json(lease) for lease in selected]
        columns = [
            "address",
            "type",
            "binding_state",
            "iaid",
            "duid",
            "cltt",
            "ends",
            "preferred_life",
            "max_life",
        ]
        write_csv(
            [
                columns,
                *([str(row[c] if row[c] is not None else "") for c in columns] for row in rows),
            ]
        )
    else:
        render_table6(selected, now)
