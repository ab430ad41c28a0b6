"""``dhcpfoctl balance``: golden JSON/CSV, Prometheus textfile, atomic --output, errors."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from typer.testing import CliRunner

from dhcpfoctl.checks.inputs import gather
from dhcpfoctl.cli.balance import balance, print_table

REAL = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
GOLDEN = Path(__file__).parent / "golden" / "balance"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
#: Two minutes after the real primary's last record.
AS_OF = "2026-11-28T07:42:00Z"

app = typer.Typer()
app.command()(balance)
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def real(side: str, *extra: str) -> tuple[int, str, str]:
    return run(
        "-c",
        str(REAL / f"{side}.conf"),
        "-l",
        str(REAL / f"{side}.leases"),
        "--as-of",
        AS_OF,
        *extra,
    )


def check_golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("side", ["primary", "secondary"])
def test_json_golden(side: str) -> None:
    code, out, err = real(side, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    (pool,) = data["pools"]
    assert pool["role"] == side and pool["balance"]["role"] == side
    assert pool["counts"]["total"] == 151
    check_golden(f"real-{side}.json", out.replace(str(REAL), "REAL"))


def test_csv_golden() -> None:
    code, out, _ = real("primary", "--csv")
    assert code == 0
    check_golden("real-primary.csv", out)
    code_f, out_f, _ = real("primary", "--format", "csv")
    assert (code_f, out_f) == (0, out)


def test_prometheus_parses_and_is_labelled() -> None:
    code, out, _ = run(
        "-c",
        str(GOLDEN / "fixture.conf"),
        "-l",
        str(GOLDEN / "critical.leases"),
        "--as-of",
        "2026-11-28T08:00:00Z",
        "--format",
        "prometheus",
    )
    assert code == 0
    families = {f.name: f for f in text_string_to_metric_families(out)}
    assert all(name.startswith("dhcpfoctl_") for name in families)
    leases = {s.labels["state"]: s.value for s in families["dhcpfoctl_pool_leases"].samples}
    assert (leases["free"], leases["backup"], leases["active"]) == (0, 40, 160)
    (sample, *_) = families["dhcpfoctl_pool_addresses"].samples
    assert sample.labels == {
        "relationship": "fx",
        "shared_network": "10.0.0.0/24",
        "pool": "10.0.0.1-10.0.0.200",
    }
    risk = {s.labels["role"]: s.value for s in families["dhcpfoctl_pool_free_risk"].samples}
    assert risk == {"primary": 1, "secondary": 0}
    poolreq = {s.labels["role"]: s.value for s in families["dhcpfoctl_pool_poolreq"].samples}
    assert poolreq == {"primary": 1, "secondary": 0}
    # No new-binding history in a one-off read: no endurance, never a guess from starts.
    assert "dhcpfoctl_endurance_seconds" not in families
    (as_of,) = families["dhcpfoctl_as_of_timestamp_seconds"].samples
    assert as_of.value == 1795852800  # exactly 2026-11-28T08:00:00Z, not 1.79585e+09


def test_output_file_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "dhcpfoctl.prom"
    target.write_text("old\n")
    code, out, _ = real("primary", "--format", "prometheus", "--output", str(target))
    assert (code, out) == (0, "")
    text = target.read_text()
    assert text.startswith("# HELP dhcpfoctl_pool_addresses")
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["dhcpfoctl.prom"]  # no temp file left


def test_output_into_missing_directory_is_one_line(tmp_path: Path) -> None:
    code, out, err = real("primary", "--json", "--output", str(tmp_path / "no" / "x.json"))
    assert code == 4 and out == ""
    assert err.count("\n") == 1 and "cannot write" in err


def test_table_shows_pool_bar_and_endurance() -> None:
    code, out, _ = run(
        "-c",
        str(GOLDEN / "fixture.conf"),
        "-l",
        str(GOLDEN / "warning.leases"),
        "--as-of",
        "2026-11-28T08:00:00Z",
    )
    assert code == 0
    assert "10.0.0.1-200" in out and "█" * 5 + "▒" * 5 in out
    assert "failover peer fx: this server is primary, state normal; free 15, backup 15" in out
    # Endurance needs remembered new bindings (audit, status); a one-off read has none.
    assert "endurance (primary): not enough history: 0s of 10m needed" in out


@pytest.mark.parametrize(("width", "bar"), [(80, True), (60, False)])
def test_narrow_terminal_drops_the_bar_not_the_figures(width: int, bar: bool) -> None:
    inputs = gather(str(GOLDEN / "fixture.conf"), str(GOLDEN / "critical.leases"), AS_OF, "24h")
    console = Console(file=io.StringIO(), width=width, color_system=None)
    print_table(inputs.report, console)
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    header = next(line.split() for line in lines if line.split()[:1] == ["pool"])
    assert header[-3:] == ["lts", "next", "run"]
    assert ("free|bkup" in header) is bar
    (row,) = (line.split() for line in lines if line.lstrip().startswith("10.0.0.1-200"))
    figures = [cell for cell in row if cell.strip("█▒")]
    assert figures[:7] == ["10.0.0.1-200", "fx", "200", "0", "40", "160", "-20"]
    assert all(len(line) <= width for line in lines)


def test_risk_free_flag_flags_sides_at_or_below_it() -> None:
    def risks(*extra: str) -> list[tuple[str, str]]:
        _, out, _ = run(
            "-c", str(GOLDEN / "fixture.conf"), "-l", str(GOLDEN / "warning.leases"),
            "--as-of", "2026-11-28T08:00:00Z", "--json", *extra,
        )  # fmt: skip
        return [(r["role"], r["message"]) for r in json.loads(out)["pools"][0]["risks"]]

    # warning.leases: 15 free, 15 backup.
    assert risks() == risks("--risk-free", "14") == []
    flagged = risks("--risk-free", "15")
    assert [role for role, _ in flagged] == ["primary", "secondary"]
    assert flagged[0][1].startswith("primary has only 15 free leases of its own while its")


def test_starts_is_never_taken_for_new_bindings() -> None:
    """Every active lease of the fixture started within the window; a renewal moves starts
    too, so none of them is counted as a new binding (issue 10)."""
    _, out, _ = run(
        "-c", str(GOLDEN / "fixture.conf"), "-l", str(GOLDEN / "warning.leases"),
        "--as-of", "@1795852800", "--json",
    )  # fmt: skip
    endurance = json.loads(out)["relationships"][0]["endurance"]["primary"]
    assert endurance["bindings"] == 0 and endurance["interrupted"] is None
    assert endurance["reason"] == "not enough history: 0s of 10m needed"


def test_not_enough_history_is_said() -> None:
    code, out, _ = real("primary")
    assert code == 0
    assert "endurance (primary): not enough history" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-l", "missing.leases"], "missing.leases"),
        (["--as-of", "yesterday-ish"], "invalid time"),
        (["--window", "0"], "--window must be longer"),
    ],
)
def test_errors_are_one_line_exit_4(args: list[str], message: str) -> None:
    base = {"-c": str(REAL / "primary.conf"), "-l": str(REAL / "primary.leases")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    code, out, err = run(*(x for kv in base.items() for x in kv))
    assert code == 4 and out == ""
    assert err.startswith("dhcpfoctl: error:") and message in err and err.count("\n") == 1


def test_a_file_of_unreadable_records_is_an_error_not_an_empty_pool() -> None:
    # The config given as the lease file: two "records", neither a lease.
    code, out, err = real("primary", "-l", str(REAL / "primary.conf"))
    assert code == 4 and out == ""
    assert err.startswith(f"dhcpfoctl: error: {REAL / 'primary.conf'}: no lease record could")
    assert err.count("\n") == 1


def test_config_error_names_file_line_column(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text('subnet 10.0.0.0 netmask 255.255.255.0 { pool { failover peer "x"; } }\n')
    code, _, err = run("-c", str(conf), "-l", str(REAL / "primary.leases"))
    assert code == 4
    assert f"{conf}:1:62: failover peer x: not found" in err


def test_config_warnings_go_to_stderr(tmp_path: Path) -> None:
    conf = tmp_path / "lb0.conf"
    conf.write_text(
        (GOLDEN / "fixture.conf").read_text().replace("  load balance max seconds 3;\n", "")
    )
    code, out, err = run("-c", str(conf), "-l", str(GOLDEN / "ok.leases"), "--json")
    assert code == 0 and json.loads(out)["pools"]
    assert err.startswith("dhcpfoctl: warning: ") and "disables load balancing" in err
