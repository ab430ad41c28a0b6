"""``dhcpfoctl leases``: filters, output formats and exit statuses (CliRunner)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from tests.leases_helpers import GOLDEN, REAL

runner = CliRunner()
PRIMARY = str(REAL / "primary.leases")
EDGE = str(GOLDEN / "edge-cases.leases")


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["leases", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def run_json(*args: str) -> object:
    status, out, err = run(*args, "--json")
    assert status == 0, err
    return json.loads(out)


def test_table_lists_the_current_lease_of_each_address() -> None:
    status, out, err = run(PRIMARY)
    assert status == 0, err
    assert "151 leases" in out
    assert "10.99.0.250" in out and "\x1b[" not in out  # no colour off a terminal


def test_json_gives_every_field_of_a_lease() -> None:
    (lease,) = run_json(EDGE, "--ip", "10.0.0.10")  # type: ignore[misc]
    assert lease["address"] == "10.0.0.10"
    assert lease["starts"] == "2026-11-28T07:00:18Z"
    assert lease["starts_epoch"] == 1795849218
    assert lease["binding_state"] == "active"
    assert lease["rewind_binding_state"] == "free"
    assert lease["hardware"] == {"type": "ethernet", "address": "02:00:00:00:00:01"}
    assert lease["uid"] == "01:02:00:00:00:00:01"
    assert lease["flags"] == ["reserved", "bootp"]
    assert lease["billing"] == 'class "gold"'
    assert lease["variables"] == {
        "ddns-fwd-name": "host.example.",
        "counter": 42,
        "flag": True,
        "off": False,
        "blob": {"hex": "01:02:ff"},
    }
    assert lease["options"] == {
        "agent.circuit-id": "port 7",
        "agent.remote-id": {"hex": "00:01:02:03:04:05"},
    }
    assert lease["on_blocks"][0] == {"events": "expiry", "body": '\n    set z = "1";\n  '}
    (never,) = run_json(EDGE, "--ip", "10.0.0.11")  # type: ignore[misc]
    assert (never["ends"], never["ends_epoch"]) == ("never", None)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--state", "active"], 80),
        (["--state", "backup,free"], 71),
        (["--ip", "10.99.0.160/28"], 16),
        (["--mac", "02:99:00:01:00:0"], 15),
    ],
)
def test_filters(args: list[str], expected: int) -> None:
    leases = run_json(PRIMARY, *args)
    assert isinstance(leases, list)
    assert len(leases) == expected


def test_expiry_filters_split_the_leases_at_a_time() -> None:
    everything = run_json(PRIMARY, "--state", "active")
    ends = sorted(lease["ends_epoch"] for lease in everything)  # type: ignore[union-attr]
    middle = ends[len(ends) // 2]
    before = run_json(PRIMARY, "--state", "active", "--expired-before", f"@{middle}")
    after = run_json(PRIMARY, "--state", "active", "--expired-after", f"@{middle}")
    also_after = run_json(PRIMARY, "--state", "active", "--after", f"@{middle}")
    assert after == also_after
    assert len(before) == sum(end < middle for end in ends) > 0  # type: ignore[arg-type]
    assert len(after) == sum(end > middle for end in ends) > 0  # type: ignore[arg-type]
    assert all(lease["ends_epoch"] < middle for lease in before)  # type: ignore[union-attr]


def test_filters_select_what_they_say() -> None:
    for lease in run_json(PRIMARY, "--mac", "02:99:00:01:00:0"):  # type: ignore[union-attr]
        assert lease["hardware"]["address"].startswith("02:99:00:01:00:0")
    for lease in run_json(PRIMARY, "--expired-before", "@1795851500"):  # type: ignore[union-attr]
        assert lease["ends_epoch"] < 1795851500
    hosts = run_json(EDGE, "--hostname", "LAB*")
    assert [lease["address"] for lease in hosts] == ["10.0.0.10"]  # type: ignore[index]


def test_all_records_lists_superseded_records_in_file_order() -> None:
    records = run_json(PRIMARY, "--all-records")
    assert isinstance(records, list) and len(records) == 951
    same_address = [r["binding_state"] for r in records if r["address"] == "10.99.0.175"]
    assert same_address[0] == "free" and len(same_address) == 11


def test_csv_has_a_header_and_one_row_per_lease() -> None:
    status, out, _ = run(PRIMARY, "--csv", "--state", "active")
    assert status == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["address", "binding_state", "next_binding_state"]
    assert len(rows) == 81
    assert {row[1] for row in rows[1:]} == {"active"}


def test_summary_counts_states_and_shows_failover_records() -> None:
    summary = run_json(PRIMARY, "--summary")
    assert isinstance(summary, dict)
    assert summary["states"] == {"active": 80, "backup": 38, "free": 33}
    assert summary["records"] == 951 and summary["superseded_records"] == 800
    assert summary["failover"][0]["name"] == "lab"
    assert summary["failover"][0]["my_state"] == "normal"
    status, out, _ = run(PRIMARY, "--summary")
    assert status == 0 and "binding states" in out and "lab" in out


def test_stdin_is_read_with_a_dash() -> None:
    status, out, err = run("-", "--summary", "--json", stdin=(REAL / "primary.leases").read_bytes())
    assert status == 0, err
    assert json.loads(out)["addresses"] == 151


def test_corrupt_records_are_warned_about_and_skipped() -> None:
    status, out, err = run(EDGE, "--json")
    assert status == 0
    assert f"dhcpfoctl: warning: {EDGE}:117: starts: bad date" in err
    assert len(json.loads(out)) == 10


def test_strict_corrupt_input_is_one_line_and_exit_4() -> None:
    status, out, err = run(EDGE, "--strict")
    assert status == 4
    assert out == ""
    assert err.strip().splitlines() == [
        f"dhcpfoctl: error: {EDGE}:117: starts: bad date (expected 'W YYYY/MM/DD HH:MM:SS',"
        " 'epoch N' or 'never')"
    ]
    assert "Traceback" not in err


def test_missing_file_is_exit_4_without_traceback() -> None:
    status, _, err = run("/nonexistent/dhcpd.leases")
    assert status == 4
    assert err.strip() == "dhcpfoctl: error: /nonexistent/dhcpd.leases: No such file or directory"


@pytest.mark.parametrize(
    "args",
    [
        ["--state", "sleeping"],
        ["--ip", "10.99.0.300/24"],
        ["--mac", "zz"],
        ["--expired-before", "yesterday-ish"],
        ["--json", "--csv"],
        ["--no-such-option"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    status, _, err = run(PRIMARY, *args)
    assert status == 2
    assert "Traceback" not in err


def test_dhcpv6_files_are_detected_and_listed() -> None:
    leases = run_json(str(GOLDEN / "dhcpd6.leases"))
    assert isinstance(leases, list)
    assert [(lease["address"], lease["type"], lease["binding_state"]) for lease in leases] == [
        ("2001:db8:0:1::200", "ia-ta", "expired"),
        ("2001:db8:100::/56", "ia-pd", "active"),
        ("2001:db8:0:1::100", "ia-na", "released"),  # the later record for it wins
    ]
    assert leases[2]["iaid"] == 1
    assert leases[2]["duid"] == "00:03:00:01:02:99:00:01:00:01"
    assert leases[1]["variables"] == {"ddns-fwd-name": "pd.example."}
    active = run_json(str(GOLDEN / "dhcpd6.leases"), "--state", "active")
    assert [lease["address"] for lease in active] == ["2001:db8:100::/56"]  # type: ignore[index]
    status, out, _ = run(str(GOLDEN / "dhcpd6.leases"))
    assert status == 0 and "3 DHCPv6 leases" in out
