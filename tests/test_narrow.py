"""Every table of every command at 80 and 120 columns: nothing needed cut, nothing too wide.

The tables are rendered as the commands render them, into a console of the given width.
Checked for each: no line is wider than the terminal; no cell is cut with "…"; every cell an
operator needs (address, state, times, hardware address, host name, server, countdown,
figures) appears whole on one line; no word is broken in the middle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from dhcpfoctl.cli import output
from dhcpfoctl.model import FailoverState as S
from dhcpfoctl.times import format_duration, format_local_parts
from tests.fake_omapi import FakeFailover, FakeOmapiServer, FakePool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "dhcpfoctl" / "examples"
GOLDEN = Path(__file__).parent / "golden"
WIDTHS = (80, 120)
#: Words a narrow table must never break (the longest states).
WHOLE_WORDS = ("communications-interrupted", "resolution-interrupted", "potential-conflict")


def rendered(width: int, draw: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``draw`` prints on stdout through the output layer, at ``width`` columns."""
    console = output.text_console(width)
    monkeypatch.setattr(output, "stdout_console", lambda: console)
    draw()
    return console.file.getvalue()  # type: ignore[attr-defined]


def check(text: str, width: int, needed: list[str], plain: tuple[str, ...] = ()) -> None:
    """``plain``: lines that are not table lines (one greppable line each, any width)."""
    table_lines = [line for line in text.split("\n") if not line.startswith(plain or "\0")]
    too_wide = [line for line in table_lines if cell_len(line.rstrip()) > width]
    assert not too_wide, f"wider than {width}:\n" + "\n".join(too_wide)
    assert "…" not in text, text
    missing = [cell for cell in needed if not any(cell in line for line in text.split("\n"))]
    assert not missing, f"not whole on one line at {width} columns: {missing}\n{text}"
    for word in WHOLE_WORDS:
        broken = [part for part in _prefixes(word) if _ends_a_line(text, part)]
        assert not broken, f"{word!r} broken at {width} columns:\n{text}"


def _prefixes(word: str) -> Iterator[str]:
    return (word[:n] for n in range(4, len(word)))


def _ends_a_line(text: str, part: str) -> bool:
    return any(line.rstrip().endswith(part) and not line.rstrip().endswith(part + "-")
               for line in text.split("\n")
               if part in line and (part + part[-1]) not in line)  # fmt: skip


# -- leases ---------------------------------------------------------------------------------


def lease_cells(path: Path, now: int) -> list[str]:
    from dhcpfoctl.leases import read_leases

    needed: list[str] = []
    for lease in read_leases(str(path)).leases:
        needed.append(lease.address)
        if lease.binding_state is not None:
            needed.append(lease.binding_state.keyword)
        needed += [part for part in format_local_parts(lease.ends, now) if part]
        if lease.mac:
            needed += output.hardware_lines(lease.mac)
        if lease.client_hostname:
            needed.append(output.literal(lease.client_hostname))
    return needed


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["edge-cases.leases", "primary.leases"])
def test_lease_list(name: str, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from dhcpfoctl.cli.leases import render_table
    from dhcpfoctl.leases import read_leases

    path = GOLDEN / "leases" / name if name.startswith("edge") else EXAMPLES / name
    now = int(time.time())
    leases = list(read_leases(str(path)).leases)
    text = rendered(width, lambda: render_table(leases, now), monkeypatch)
    check(text, width, lease_cells(path, now))


def test_a_20_byte_hardware_address_leaves_the_other_columns_their_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dhcpfoctl.cli.leases import render_table
    from dhcpfoctl.leases import read_leases

    leases = list(read_leases(str(GOLDEN / "leases" / "edge-cases.leases")).leases)
    text = rendered(80, lambda: render_table(leases, int(time.time())), monkeypatch)
    row = next(line for line in text.split("\n") if "10.0.0.21" in line)
    assert "00:01:02:03:04:05:" in row and "active" in row and "never" in row
    header = next(line for line in text.split("\n") if "address" in line)
    assert all(word in header for word in ("state", "ends", "hardware", "hostname"))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "path", [GOLDEN / "leases" / "edge-cases.leases", EXAMPLES / "primary.leases"]
)
def test_lease_summary(path: Path, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from dhcpfoctl.cli.leases import render_summary, summary_to_json, table_state_counts
    from dhcpfoctl.leases import read_leases

    db = read_leases(str(path))
    summary = summary_to_json(db, table_state_counts(db), str(path))
    now = int(time.time())
    text = rendered(width, lambda: render_summary(summary, now), monkeypatch)
    needed = [*summary["states"]]
    for record in summary["failover"]:
        needed += [record["name"], record["my_state"], record["partner_state"]]
        for key in ("my_state_since_epoch", "partner_state_since_epoch"):
            needed += [part for part in format_local_parts(record[key], now) if part]
    check(text, width, needed, plain=(str(path), "hosts:"))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("summary", [False, True])
def test_dhcpv6_tables(summary: bool, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from dhcpfoctl.cli.leases import render_summary6, render_table6, summary6_to_json
    from dhcpfoctl.leases import read_leases6

    path = GOLDEN / "leases" / "dhcpd6.leases"
    leases = list(read_leases6(str(path), []))
    now = int(time.time())
    if summary:
        data = summary6_to_json(leases, str(path), [])
        text = rendered(width, lambda: render_summary6(data), monkeypatch)
        check(text, width, [lease.kind for lease in leases], plain=(str(path),))
        return
    text = rendered(width, lambda: render_table6(leases, now), monkeypatch)
    needed = []
    for lease in leases:
        needed += [lease.address, lease.kind, lease.binding_state]
        needed += [part for part in format_local_parts(lease.ends, now) if part]
    check(text, width, needed)


# -- balance --------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("config", "leases", "as_of"),
    [
        (EXAMPLES / "primary.conf", EXAMPLES / "primary.leases", "2026-11-28T07:50Z"),
        (EXAMPLES / "secondary.conf", EXAMPLES / "secondary.leases", "2026-11-28T07:50Z"),
        (GOLDEN / "balance/fixture.conf", GOLDEN / "balance/critical.leases", "2026-11-28T08:00Z"),
    ],
)
def test_balance_table(
    config: Path, leases: Path, as_of: str, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dhcpfoctl.checks.inputs import gather
    from dhcpfoctl.cli.balance import print_table, short_range

    report = gather(str(config), str(leases), as_of, "24h").report
    text = rendered(width, lambda: print_table(report), monkeypatch)
    needed = []
    for pool in report.pools:
        needed += [short_range(r.first, r.last) for r in pool.pool.ranges]
        needed += [str(pool.counts.total), str(pool.counts.free), str(pool.counts.backup)]
    check(text, width, needed)


# -- status ---------------------------------------------------------------------------------


def status_servers(now: int) -> list[dict[str, FakeFailover]]:
    return [
        {"lab": FakeFailover(local_state=int(S.NORMAL), local_stos=now - 3700, hierarchy=0)},
        {
            "lab": FakeFailover(
                local_state=int(S.COMMUNICATIONS_INTERRUPTED),
                partner_state=int(S.COMMUNICATIONS_INTERRUPTED),
                local_stos=now - 7260,
                hierarchy=0,
            )
        },
        {
            "lab": FakeFailover(
                local_state=int(S.PARTNER_DOWN),
                partner_state=int(S.COMMUNICATIONS_INTERRUPTED),
                local_stos=now - 10,
                hierarchy=1,
            )
        },
        {
            "lab": FakeFailover(
                local_state=int(S.RECOVER_WAIT),
                partner_state=int(S.POTENTIAL_CONFLICT),
                local_stos=now - 100,
                hierarchy=1,
            )
        },
    ]


@pytest.fixture(scope="module")
def status_report() -> Any:
    """Four servers in the states with the longest names and a countdown, one unreachable."""
    from contextlib import ExitStack

    from dhcpfoctl.checks.gather import gather_report
    from dhcpfoctl.conf import read_config
    from dhcpfoctl.profile import ServerSpec, Targets

    now = int(time.time())
    pools = {"10.99.0.100": FakePool(151, 80, 71)}
    with ExitStack() as stack:
        fakes = [
            stack.enter_context(FakeOmapiServer(relationships, pools=pools))
            for relationships in status_servers(now)
        ]
        specs = [ServerSpec(f"dhcp{i}", "127.0.0.1", fake.port) for i, fake in enumerate(fakes)]
        specs.append(ServerSpec("[2001:db8::53]:7911", "127.0.0.1", 9))  # nothing listens
        targets = Targets(
            tuple(specs), ("lab",), config=read_config(str(EXAMPLES / "primary.conf"))
        )
        return gather_report(targets, 1)


@pytest.mark.parametrize("width", WIDTHS)
def test_status_tables(width: int, status_report: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dhcpfoctl.cli.output import _Fitted
    from dhcpfoctl.cli.status import render

    group = render(status_report)
    tables = [part for part in group.renderables if isinstance(part, _Fitted)]
    assert tables

    def draw() -> None:
        for table in tables:
            output.stdout_console().print(table)

    text = rendered(width, draw, monkeypatch)
    now = status_report.now
    needed = []
    for view in status_report.views:
        needed.append(view.server)
        if view.info is None:
            continue
        needed += [view.info.local_state.keyword, view.info.partner_state.keyword]
        if (since := view.time_in_state(now)) is not None:
            needed.append(f"for {format_duration(since)}")
        if view.mclt_ends is not None:
            needed += [part for part in format_local_parts(view.mclt_ends, now) if part]
        needed += ["80 free, 71 backup, 151 total"]
    check(text, width, needed)
    assert "peer leases usable in " in text and "recover-wait ends in " in text


# -- lab ------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_lab_tables(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from dhcpfoctl.cli.lab import _print_stats, _print_status
    from dhcpfoctl.lab.cluster import LabStatus, ProcessStatus
    from dhcpfoctl.lab.population import PopulationStats

    ports = {f"{kind}-{n}": 16700 + i for i, (kind, n) in enumerate(
        [("dhcp", 0), ("omapi", 4), ("failover", 6), ("relay", 8), ("dhcp-relay", 2)])}  # fmt: skip
    processes = [
        ProcessStatus(name, 4_194_304 + i, i != 1, ports, dict.fromkeys(ports, i != 1))
        for i, name in enumerate(("primary", "secondary", "relay"))
    ]
    report = LabStatus("/var/tmp/lab-" + "x" * 60, 16700, processes, None, "lab", True)
    text = rendered(width, lambda: _print_status(report), monkeypatch)
    needed = [f"{label} {port}" for label, port in ports.items()]
    check(text, width, [*needed, "not running", "4194304"], plain=("lab in ",))
    stats = PopulationStats(started=100, acks=99, bound=98, elapsed=10.0, latencies=[0.01])
    text = rendered(width, lambda: _print_stats(stats, 100), monkeypatch)
    check(text, width, ["100/100", "leases bound (DORA or INIT-REBOOT)"])
