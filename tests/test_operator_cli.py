"""The operator-facing behaviours of issue 14: formats, input errors, profiles, durations."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.errors import ExitStatus, InputFileError
from dhcpfoctl.model import FailoverState as S
from dhcpfoctl.times import format_duration, parse_duration
from tests.fake_omapi import FakeFailover, FakeOmapiServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "dhcpfoctl" / "examples"
V6 = Path(__file__).parent / "golden" / "leases" / "dhcpd6.leases"
PRIMARY = ["-c", str(EXAMPLES / "primary.conf"), "-l", str(EXAMPLES / "primary.leases")]
AS_OF = ["--as-of", "2026-11-28T07:50Z"]


@pytest.fixture(autouse=True)
def no_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DHCPFOCTL_KEY", raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- durations ------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**9))
def test_every_duration_printed_is_accepted_back(seconds: int) -> None:
    text = format_duration(seconds)
    assert " " not in text
    largest = next(char for char in text if char.isalpha())
    # Two units, rounded down: the value less at most one of the second unit.
    precision = {"d": 3600, "h": 60, "m": 1, "s": 1}[largest]
    assert 0 <= seconds - parse_duration(text) < precision


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (3660, "1h01m"),
     (86400, "1d"), (90061, "1d01h")],
)  # fmt: skip
def test_duration_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


# -- leases ---------------------------------------------------------------------------------


def test_a_file_without_lease_records_is_an_input_error() -> None:
    code, out, err = run("leases", str(EXAMPLES / "primary.conf"))
    assert code == ExitStatus.INPUT_ERROR and out == ""
    assert "primary.conf: no lease record could be read" in err and "Traceback" not in err


def test_dhcpv6_summary_counts_per_type_and_state() -> None:
    code, out, _ = run("leases", "--summary", "--json", str(V6))
    assert code == 0
    data = json.loads(out)
    assert data["addresses"] == 3
    assert data["counts"] == {
        "ia-na": {"released": 1},
        "ia-pd": {"active": 1},
        "ia-ta": {"expired": 1},
    }
    code, out, _ = run("leases", "--summary", str(V6))
    assert code == 0 and "3 DHCPv6 leases" in out and "ia-pd" in out


@pytest.mark.parametrize("prefix", ["2:99", "0299", "02:999", "02::99", "zz", ""])
def test_mac_prefix_not_as_the_output_writes_it_is_refused(prefix: str) -> None:
    code, _, err = run("leases", "--mac", prefix, str(EXAMPLES / "primary.leases"))
    assert code == ExitStatus.USAGE and "not a MAC prefix" in err


def test_mac_prefix_matches() -> None:
    leases = str(EXAMPLES / "primary.leases")
    code, out, _ = run("leases", "--json", "--mac", "02-99:00:01:00:1", leases)
    macs = {lease["hardware"]["address"] for lease in json.loads(out)}
    assert code == 0 and macs
    assert all(mac.startswith("02:99:00:01:00:1") for mac in macs)


# -- balance and audit ----------------------------------------------------------------------


def test_as_of_before_the_first_record_says_so() -> None:
    code, _, err = run("balance", *PRIMARY, "--as-of", "2026-11-28T07:00Z")
    assert code == 0
    assert "is not after the oldest lease record" in err


def test_human_is_the_format_name_and_table_its_alias() -> None:
    human = run("balance", *PRIMARY, *AS_OF, "--format", "human", "-o", "/dev/stdout")
    table = run("balance", *PRIMARY, *AS_OF, "--format", "table", "-o", "/dev/stdout")
    assert human[0] == 0 and human == table
    code, _, err = run("balance", *PRIMARY, "--format", "nagios")
    assert code == ExitStatus.USAGE and "'human'" in err and "'table'" not in err


def test_audit_prometheus_is_balance_metrics_plus_its_status(tmp_path: Path) -> None:
    target = tmp_path / "dhcpfoctl.prom"
    code, out, _ = run("audit", *PRIMARY, *AS_OF, "--format", "prometheus", "-o", str(target))
    assert code == 2 and out == ""
    text = target.read_text()
    assert "dhcpfoctl_audit_status{} 2" in text
    assert 'dhcpfoctl_audit_findings{severity="critical"} 2' in text
    balance = run("balance", *PRIMARY, *AS_OF, "--format", "prometheus")[1]
    assert text.startswith(balance)  # the same renderer, then the audit's samples


def test_audit_prometheus_when_the_audit_cannot_be_made() -> None:
    code, out, err = run(
        "audit",
        "-c",
        str(EXAMPLES / "primary.conf"),
        "-l",
        str(EXAMPLES / "primary.conf"),
        "-f",
        "prometheus",
    )
    assert code == ExitStatus.UNKNOWN and "no lease record" in err
    assert "dhcpfoctl_audit_status{} 3" in out and "dhcpfoctl_pool" not in out


# -- status ---------------------------------------------------------------------------------


def test_status_nagios_line() -> None:
    now = int(time.time())
    primary = FakeFailover(local_stos=now - 60, hierarchy=0)
    secondary = FakeFailover(
        local_state=int(S.PARTNER_DOWN), local_stos=now - 10, hierarchy=1, mclt=600
    )
    with FakeOmapiServer({"lab": primary}) as p, FakeOmapiServer({"lab": secondary}) as s:
        code, out, _ = run(
            "status", "-s", p.endpoint, "-s", s.endpoint, "--peer", "lab", "-f", "nagios"
        )
    assert code == ExitStatus.CRITICAL
    assert out.count("\n") == 1 and out.startswith("DHCPFOCTL CRITICAL - ")
    summary, perfdata = out.rstrip("\n").split(" | ")
    assert "split-brain" in summary
    assert f"'{s.endpoint} lab mclt remaining'=" in perfdata
    assert f"'{p.endpoint} lab unacked'=0;5;9;0;10" in perfdata


def test_status_nagios_unknown_when_nothing_could_be_asked() -> None:
    code, out, _ = run("status", "-f", "nagios")
    assert code == ExitStatus.UNKNOWN and out.startswith("DHCPFOCTL UNKNOWN - no server given")
    code, _, _ = run("status", "-s", "127.0.0.1", "-f", "nagios", "--watch")
    assert code == ExitStatus.UNKNOWN  # a usage error of a check


# -- profiles -------------------------------------------------------------------------------


def _profile(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"[profiles.p.servers.a]\n{server}\n")
    return path


@pytest.mark.parametrize(
    ("server", "endpoint"),
    [('host = "127.0.0.1:7912"', "127.0.0.1:7912"), ('host = "[::1]:7913"', "[::1]:7913"),
     ('host = "::1"', "[::1]:7911"), ('host = "h"\nport = 7000', "h:7000"),
     ('host = "h:7000"\nport = 7000', "h:7000")],
)  # fmt: skip
def test_profile_host_takes_a_port(tmp_path: Path, server: str, endpoint: str) -> None:
    from dhcpfoctl.profile import load_profiles

    profiles, _, _ = load_profiles(_profile(tmp_path, server))
    assert profiles["p"].servers[0].endpoint == endpoint


@pytest.mark.parametrize(
    "server", ['host = "h:7000"\nport = 7001', 'host = "h:x"', 'host = "[::1"']
)
def test_profile_bad_host_port_is_an_input_error(tmp_path: Path, server: str) -> None:
    from dhcpfoctl.profile import load_profiles

    with pytest.raises(InputFileError, match=r"profiles\.p\.servers\.a"):
        load_profiles(_profile(tmp_path, server))


# -- help -----------------------------------------------------------------------------------


def test_top_level_help_shows_whole_descriptions() -> None:
    for args in (["--help"], ["lab", "--help"]):
        result = CliRunner().invoke(app, args, terminal_width=80)
        commands = result.stdout.split("Commands:")[1]
        assert "..." not in commands and "." in commands
    assert "(exit 0/1/2/3)" in CliRunner().invoke(app, ["--help"], terminal_width=80).stdout
