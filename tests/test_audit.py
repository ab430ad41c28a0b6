"""``dhcpfoctl audit``: every exit status, silence when OK, nagios line, JSON, thresholds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dhcpfoctl.checks import audit as audit_module
from dhcpfoctl.checks.audit import FreeLimit, Perf
from dhcpfoctl.cli.audit import audit

GOLDEN = Path(__file__).parent / "golden" / "balance"
AS_OF = "2026-11-28T08:00:00Z"
AS_OF_EPOCH = 1_795_852_800
#: New bindings per day remembered for each fixture (its endurance: own free / rate).
PER_DAY = {"ok.leases": 40, "warning.leases": 170, "critical.leases": 170}

app = typer.Typer()
app.command()(audit)
runner = CliRunner()

#: Nagios plugin output: status, summary, then perfdata items 'label'=value[uom];w;c;min;max.
_NAGIOS = re.compile(r"^DHCPFOCTL (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+(?: \| (.+))?$")
_PERF = re.compile(r"'[^']+'=-?[\d.]+(?:s|%)?(?:;[\d.:@~-]*){0,4}")


def run(leases: str, *extra: str, conf: str = "fixture.conf") -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["-c", str(GOLDEN / conf), "-l", str(GOLDEN / leases), "--as-of", AS_OF, *extra]
    )
    return result.exit_code, result.stdout, result.stderr


def remember(monkeypatch: pytest.MonkeyPatch, leases: str, per_day: int | None = None) -> None:
    """Make the audit of ``leases`` at AS_OF find a day of remembered new bindings, as if
    it had run from cron since then (the state a run of the day before left)."""
    import os

    from dhcpfoctl.balance import RateHistory
    from dhcpfoctl.checks.history import STATE_NAME, STATE_VERSION, LeaseFollower
    from dhcpfoctl.conf import read_config
    from dhcpfoctl.state import StateStore

    monkeypatch.setattr("time.time", lambda: float(AS_OF_EPOCH))
    path = str(GOLDEN / leases)
    day_before = AS_OF_EPOCH - 86400
    LeaseFollower().read(path, read_config(GOLDEN / "fixture.conf"), day_before)
    store = StateStore(STATE_NAME, os.path.realpath(path), version=STATE_VERSION)
    document = store.load(day_before, 60)
    assert document is not None
    history = RateHistory.from_json(document["history"])
    for i in range(PER_DAY[leases] if per_day is None else per_day):
        history.add("10.0.0.1-10.0.0.200", "primary", day_before + 60 + 500 * i, AS_OF_EPOCH)  # type: ignore[arg-type]
    document["history"] = history.to_json()
    store.save(document, AS_OF_EPOCH - 60)


def test_ok_is_silent() -> None:
    assert run("ok.leases") == (0, "", "")


def test_a_record_dhcpd_was_still_writing_is_not_a_finding(tmp_path: Path) -> None:
    """cron reading the file mid-write must not mail; a corrupt record still warns."""
    ok = (GOLDEN / "ok.leases").read_text()
    mid_write = tmp_path / "mid-write.leases"
    mid_write.write_text(ok + "lease 10.0.0.250 {\n  starts 6 2026/11/28 07:59:00;\n  ends 6")
    assert run(str(mid_write)) == (0, "", "")
    corrupt = tmp_path / "corrupt.leases"
    corrupt.write_text(ok + "lease 10.0.0.250 {\n  starts sometime;\n}\n")
    code, out, _ = run(str(corrupt))
    assert code == 1
    assert "skipped: " in out and "corrupt.leases:" in out


def test_warning_lists_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    remember(monkeypatch, "warning.leases")
    code, out, err = run("warning.leases")
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == (
        "WARNING: pool 10.0.0.0/24 10.0.0.1-10.0.0.200: the primary's own free leases:"
        " 15 of 200; the peer holds 15"
    )
    assert len(lines) == 4 and all(line.startswith("WARNING: ") for line in lines)
    assert any("last 2h07m if communications are interrupted" in line for line in lines)


def test_critical_peer_holds_all_free_leases() -> None:
    code, out, _ = run("critical.leases")
    assert code == 2
    assert out.startswith(
        "CRITICAL: pool 10.0.0.0/24 10.0.0.1-10.0.0.200: the primary's own free leases:"
        " 0 of 200; the peer holds 40\n"
    )
    assert "free 0 vs backup 40 (lts -20, limit 12 = 30% of 40); the primary is short" in out


def test_unknown_on_unreadable_input() -> None:
    code, out, err = run("absent.leases")
    assert code == 3 and out == ""
    assert err.startswith("dhcpfoctl: error:") and err.count("\n") == 1


def test_unknown_on_a_lease_file_without_one_readable_record() -> None:
    code, out, err = run("fixture.conf", "-f", "nagios")
    assert code == 3 and out.startswith("DHCPFOCTL UNKNOWN - ")
    assert "fixture.conf: no lease record could be read" in out and err.count("\n") == 1


def test_a_bug_is_unknown_not_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(audit_module, "evaluate", broken)
    code, out, err = run("ok.leases", "-f", "nagios")
    assert code == 3  # Python's default 1 would be WARNING
    assert out == "DHCPFOCTL UNKNOWN - internal error: ZeroDivisionError\n"
    assert "Traceback" in err and "ZeroDivisionError: division by zero" in err


def test_unknown_on_config_error(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text('failover peer "fx" { primary; peer address 10.0.0.2; split 128; }\n')
    code, out, err = run("ok.leases", "-f", "nagios", conf=str(conf))
    assert code == 3
    assert out == f"DHCPFOCTL UNKNOWN - {conf}:1:65: primary failover server must have mclt.\n"
    assert "must have mclt" in err


@pytest.mark.parametrize(
    ("leases", "status"), [("ok.leases", 0), ("warning.leases", 1), ("critical.leases", 2)]
)
def test_nagios_line(leases: str, status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    remember(monkeypatch, leases)
    code, out, _ = run(leases, "--format", "nagios")
    assert code == status
    assert out.count("\n") == 1
    match = _NAGIOS.match(out.rstrip("\n"))
    assert match, out
    assert match[1] == ("OK", "WARNING", "CRITICAL")[status]
    items = re.findall(r"'[^']+'=\S+", match[2])
    assert len(items) == 5 and all(_PERF.fullmatch(item) for item in items)
    assert "'10.0.0.0/24 10.0.0.1-10.0.0.200 primary free'=" in match[2]


def test_nagios_ok_summary_and_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    remember(monkeypatch, "ok.leases")
    _, out, _ = run("ok.leases", "-f", "nagios")
    assert out.startswith("DHCPFOCTL OK - 1 pools, 1 failover relationships | ")
    assert "'fx primary endurance'=172800s;43200:;7200:;0" in out
    assert "'10.0.0.0/24 10.0.0.1-10.0.0.200 primary free'=80;21:;1:;0;200" in out


def test_json(monkeypatch: pytest.MonkeyPatch) -> None:
    remember(monkeypatch, "critical.leases")
    code, out, _ = run("critical.leases", "--json")
    data = json.loads(out)
    assert code == 2 and (data["status"], data["exit_status"]) == ("critical", 2)
    codes = [(f["severity"], f["code"], f["role"]) for f in data["findings"]]
    assert codes == [
        ("critical", "free", "primary"),
        ("critical", "misbalance", None),
        ("critical", "endurance", "primary"),
        ("warning", "endurance", "secondary"),
    ]
    assert data["thresholds"]["warn_free"] == "10%"
    assert data["balance"]["pools"][0]["counts"]["backup"] == 40


def test_flags_override_thresholds_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remember(monkeypatch, "ok.leases")
    profile = tmp_path / "audit.toml"
    profile.write_text('warn_free = "50%"\ncrit_free = 1\nwarn_endurance = "3d"\n')
    code, out, _ = run("ok.leases", "--thresholds", str(profile))
    assert code == 1
    assert "the primary's own free leases: 80 of 200" in out
    assert "last 2d if communications are interrupted (< 3d" in out
    assert run(
        "ok.leases", "--thresholds", str(profile), "--warn-free", "5", "--warn-endurance", "1h"
    ) == (0, "", "")


def test_misbalance_thresholds_from_flags() -> None:
    # warning.leases: 15 free vs 15 backup is balanced whatever the percentages.
    code, out, _ = run("critical.leases", "--crit-misbalance", "60", "--warn-misbalance", "40")
    assert code == 2
    assert "limit 16 = 40% of 40" in out


def test_misbalance_percent_written_like_warn_free(tmp_path: Path) -> None:
    profile = tmp_path / "audit.toml"
    profile.write_text('warn_misbalance = "40%"\ncrit_misbalance = 60\n')
    code, out, _ = run("critical.leases", "--thresholds", str(profile))
    assert code == 2 and "limit 16 = 40% of 40" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--warn-misbalance", "30", "--crit-misbalance", "20"], "crit-misbalance 20%"),
        (["--warn-free", "5", "--crit-free", "8"], "crit-free 8 is above warn-free 5"),
        (["--crit-free", "20%", "--warn-free", "10%"], "crit-free 20% is above warn-free 10%"),
        (
            ["--warn-endurance", "1h", "--crit-endurance", "2h"],
            "crit-endurance 2h is longer than warn-endurance 1h",
        ),
    ],
)
def test_critical_looser_than_warning_is_unknown(flags: list[str], message: str) -> None:
    code, out, err = run("ok.leases", "-f", "nagios", *flags)
    assert code == 3 and out.startswith("DHCPFOCTL UNKNOWN - critical threshold looser")
    assert message in err and err.count("\n") == 1


def test_misbalance_defaults_follow_the_configs_max_lease_misbalance(tmp_path: Path) -> None:
    conf = tmp_path / "misbal.conf"
    conf.write_text(
        (GOLDEN / "fixture.conf")
        .read_text()
        .replace("  split 128;\n", "  split 128;\n  max-lease-misbalance 25;\n")
    )
    # critical.leases: free 0, backup 40, lts -20; limits 25 % -> 10, 50 % -> 20.
    code, out, _ = run("critical.leases", "-f", "nagios", conf=str(conf))
    assert code == 2 and "'10.0.0.0/24 10.0.0.1-10.0.0.200 misbalance'=50%;25;50;0;50" in out
    _, out, _ = run("critical.leases", conf=str(conf))
    assert "WARNING: pool 10.0.0.0/24 10.0.0.1-10.0.0.200: free 0 vs backup 40 (lts -20," in out
    assert "limit 10 = 25% of 40" in out  # lts 20 is not above the critical 20
    _, out, _ = run("critical.leases", "--crit-misbalance", "45", conf=str(conf))
    assert "CRITICAL: pool 10.0.0.0/24 10.0.0.1-10.0.0.200: free 0 vs backup 40" in out
    assert "limit 18 = 45% of 40" in out


def test_pool_without_failover_is_judged_on_its_free_leases(tmp_path: Path) -> None:
    conf = tmp_path / "plain.conf"
    conf.write_text("subnet 10.0.0.0 netmask 255.255.255.0 { range 10.0.0.1 10.0.0.200; }\n")
    code, out, _ = run("ok.leases", "-f", "nagios", conf=str(conf))
    assert code == 0
    assert out.endswith("| '10.0.0.0/24 10.0.0.1-10.0.0.200 free'=80;21:;1:;0;200\n")


def test_config_warning_is_a_warning(tmp_path: Path) -> None:
    conf = tmp_path / "lb0.conf"
    conf.write_text(
        (GOLDEN / "fixture.conf").read_text().replace("  load balance max seconds 3;\n", "")
    )
    code, out, _ = run("ok.leases", conf=str(conf))
    assert code == 1
    assert "load balance max seconds is not set (default 0), which disables load balancing" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("warn_free = [", "invalid TOML"),
        ("warn_fre = 3", "unknown setting(s) warn_fre"),
        ('warn_endurance = "soon"', "invalid duration"),
        ('crit_free = "200%"', "out of range"),
        ('warn_misbalance = "lots"', "invalid percentage 'lots'"),
        ("crit_misbalance = -5", "invalid percentage -5"),
    ],
)
def test_bad_thresholds_file_is_unknown(tmp_path: Path, content: str, message: str) -> None:
    profile = tmp_path / "audit.toml"
    profile.write_text(content + "\n")
    code, _, err = run("ok.leases", "--thresholds", str(profile))
    assert code == 3 and message in err and str(profile) in err


def test_free_limit_and_perf_formatting() -> None:
    assert FreeLimit.parse("10%", "x").count(250) == 25
    assert FreeLimit.parse(7, "x").count(250) == 7
    assert str(Perf("a'b", 1.5, "s", "1:", "", 0)) == "'a_b'=1.5s;1:;;0"
    # Large values in full: ``:g`` would give 2.592e+06, which Nagios parsers reject.
    month = FreeLimit.parse("2592000", "x")
    assert str(Perf("e", 2592001, "s", f"{month}:", "", 0, 1048576)) == (
        "'e'=2592001s;2592000:;;0;1048576"
    )


# -- endurance from new bindings remembered between runs (issue 10) ----------------------


def test_without_history_no_endurance_finding_and_a_note_says_why() -> None:
    code, out, _ = run("warning.leases", "-f", "nagios")
    assert code == 1
    assert "endurance" not in out.split(" | ")[1]
    code, out, _ = run("ok.leases", "-f", "nagios")
    assert code == 0
    assert out.startswith(
        "DHCPFOCTL OK - 1 pools, 1 failover relationships; failover peer fx: endurance:"
        " not enough history: 0s of 10m needed | "
    )


def _record(address: str, when: int, mac: str, *, state: str = "active") -> str:
    from datetime import UTC, datetime

    def date(epoch: int) -> str:
        moment = datetime.fromtimestamp(epoch, UTC)
        return f"{(moment.weekday() + 1) % 7} {moment:%Y/%m/%d %H:%M:%S}"

    return (
        f"lease {address} {{\n  starts {date(when)};\n  ends {date(when + 3600)};\n"
        f"  cltt {date(when)};\n  binding state {state};\n"
        f"  hardware ethernet {mac};\n}}\n"
    )


def test_cron_runs_count_new_bindings_not_renewals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stable population renewing costs nothing; new clients are counted once each, from
    what dhcpd appended between two runs (the state keeps the rest)."""
    leases = tmp_path / "dhcpd.leases"
    leases.write_text((GOLDEN / "warning.leases").read_text())
    clock = [AS_OF_EPOCH - 3600]
    monkeypatch.setattr("time.time", lambda: float(clock[0]))

    def audit_json() -> dict:  # type: ignore[type-arg]
        result = runner.invoke(
            app, ["-c", str(GOLDEN / "fixture.conf"), "-l", str(leases), "--json"]
        )
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    first = audit_json()
    assert first["notes"] == ["failover peer fx: endurance: not enough history: 0s of 10m needed"]
    from dhcpfoctl.leases import read_leases

    holders = [lease for lease in read_leases(leases).leases if lease.hardware_address][:10]
    renewals = "".join(
        _record(lease.address, clock[0] + 300, lease.hardware_address.hex(":"))  # type: ignore[union-attr]
        for lease in holders
    )
    # 20 new clients on free leases (10.0.0.1-15 are free, 16-30 backup in this fixture).
    arrivals = "".join(
        _record(f"10.0.0.{n}", clock[0] + 600, f"02:00:00:00:01:{n:02x}") for n in range(1, 21)
    )
    with leases.open("a") as handle:
        handle.write(renewals + arrivals)
    clock[0] += 1200
    second = audit_json()
    endurance = second["balance"]["relationships"][0]["endurance"]["primary"]
    # The first run read the fixture as the baseline; renewals by the holders cost nothing.
    assert endurance["bindings"] == 20
    assert endurance["window"] == 1200
    assert endurance["rate_per_hour"] == 60
    with leases.open("a") as handle:
        handle.write(renewals)
    clock[0] += 60
    third = audit_json()
    assert third["balance"]["relationships"][0]["endurance"]["primary"]["bindings"] == 20


def test_dhcpd_rewrite_does_not_count_the_compacted_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leases = tmp_path / "dhcpd.leases"
    text = (GOLDEN / "warning.leases").read_text()
    leases.write_text(text)
    clock = [AS_OF_EPOCH - 3600]
    monkeypatch.setattr("time.time", lambda: float(clock[0]))
    args = ["-c", str(GOLDEN / "fixture.conf"), "-l", str(leases), "--json"]
    runner.invoke(app, args)
    # dhcpd's rewrite: a compacted copy with one change since, renamed over the file.
    rewritten = tmp_path / "dhcpd.leases.new"
    rewritten.write_text(text + _record("10.0.0.1", clock[0] + 60, "02:00:00:00:09:01"))
    rewritten.rename(leases)
    clock[0] += 900
    data = json.loads(runner.invoke(app, args).stdout)
    assert data["balance"]["relationships"][0]["endurance"]["primary"]["bindings"] == 1
    assert not any("started over" in note for note in data["notes"])


def test_a_file_changed_in_place_starts_over_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leases = tmp_path / "dhcpd.leases"
    text = (GOLDEN / "warning.leases").read_text()
    leases.write_text(text)
    clock = [AS_OF_EPOCH - 3600]
    monkeypatch.setattr("time.time", lambda: float(clock[0]))
    args = ["-c", str(GOLDEN / "fixture.conf"), "-l", str(leases), "--json"]
    runner.invoke(app, args)
    with leases.open("r+") as handle:  # same inode, shorter: not what dhcpd does
        handle.truncate(len(text) // 2)
    clock[0] += 900
    data = json.loads(runner.invoke(app, args).stdout)
    assert any("new-binding history started over" in note for note in data["notes"])


def test_stale_or_disabled_state_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remember(monkeypatch, "ok.leases")
    code, out, _ = run("ok.leases", "-f", "nagios", "--no-state")
    assert code == 0 and "not enough history: 0s" in out
    code, out, _ = run("ok.leases", "-f", "nagios", "--state-max-age", "30s")
    assert code == 0 and "older than 30s or unusable: ignored" in out
    # The state it ignored is gone: the history started again with that run.
    code, out, _ = run("ok.leases", "-f", "nagios")
    assert code == 0 and "not enough history: 0s" in out and "ignored" not in out


def test_a_state_that_cannot_be_saved_is_a_note_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    monkeypatch.setattr("time.time", lambda: float(AS_OF_EPOCH))
    code, out, _ = run("ok.leases", "--json")
    assert code == 0
    (note,) = [n for n in json.loads(out)["notes"] if n.startswith("cannot save state ")]
    assert str(blocker) in note


@pytest.mark.parametrize(
    ("per_day", "status", "limit"),
    [
        (160, 0, None),  # 80 own free at 160/day: exactly 12h, the warning limit: fine
        (161, 1, "< 12h"),
        (960, 1, "< 12h"),  # exactly 2h, the critical limit: only a warning
        (961, 2, "< 2h"),
    ],
)
def test_endurance_limits_are_strict(
    monkeypatch: pytest.MonkeyPatch, per_day: int, status: int, limit: str | None
) -> None:
    remember(monkeypatch, "ok.leases", per_day)
    code, out, _ = run("ok.leases", "--json", "--warn-free", "0", "--crit-free", "0")
    data = json.loads(out)
    assert code == status
    found = [f for f in data["findings"] if f["code"] == "endurance"]
    if limit is None:
        assert found == []
        return
    primary = found[0]
    assert (primary["relationship"], primary["role"], primary["pool"]) == ("fx", "primary", None)
    assert f"if communications are interrupted ({limit};" in primary["message"]


def test_config_warnings_and_skipped_records_have_their_codes(tmp_path: Path) -> None:
    conf = tmp_path / "warn.conf"
    conf.write_text(
        (GOLDEN / "fixture.conf")
        .read_text()
        .replace("load balance max seconds 3;", "load balance max seconds 0;")
    )
    corrupt = tmp_path / "corrupt.leases"
    corrupt.write_text(
        (GOLDEN / "ok.leases").read_text() + "lease 10.0.0.250 {\n  starts sometime;\n}\n"
    )
    code, out, _ = run(str(corrupt), "--json", conf=str(conf))
    codes = [f["code"] for f in json.loads(out)["findings"]]
    assert code == 1 and codes.count("config") == 1 and codes.count("leases") == 1
