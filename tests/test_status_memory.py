"""What ``dhcpfoctl status`` remembers (issue 10): a full unacked-updates window warns only
when it stays full, and endurance in communications-interrupted comes from the new bindings
followed across runs, reading only what dhcpd appended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.model import FailoverState as S
from tests.fake_omapi import FakeFailover, FakeOmapiServer, FakePool

DATA = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
T = 1_795_852_800


@pytest.fixture(autouse=True)
def no_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DHCPFOCTL_KEY", raising=False)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The time status sees, moved by the test (sockets keep their own timeouts)."""
    now = [T]
    monkeypatch.setattr("time.time", lambda: float(now[0]))
    return now


def status(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, ["status", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def unacked(doc: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(f["health"], f["code"]) for f in doc["findings"] if f["code"] == "unacked-updates"]


def test_a_full_window_in_one_run_is_a_note_across_runs_a_warning(clock: list[int]) -> None:
    full = FakeFailover(local_stos=T - 600, cur_unacked_updates=10)
    with FakeOmapiServer({"lab": full}) as server:
        args = ("--server", server.endpoint, "--peer", "lab")
        code, doc = status(*args)
        assert (code, unacked(doc)) == (0, [("ok", "unacked-updates")])
        clock[0] += 29
        code, doc = status(*args)
        assert (code, unacked(doc)) == (0, [("ok", "unacked-updates")])
        clock[0] += 1  # 30 s full, over three runs
        code, doc = status(*args)
        assert (code, unacked(doc)) == (1, [("warning", "unacked-updates")])
        assert "has stayed so for 30s" in doc["findings"][0]["message"]
        # Without the state every run is a single sample.
        code, doc = status(*args, "--no-state")
        assert (code, unacked(doc)) == (0, [("ok", "unacked-updates")])
        # The window emptied once: the next full sample starts again.
        full.cur_unacked_updates = 3
        clock[0] += 10
        assert status(*args)[0] == 0
        full.cur_unacked_updates = 10
        clock[0] += 60
        code, doc = status(*args)
        assert (code, unacked(doc)) == (0, [("ok", "unacked-updates")])


def test_remembered_observations_older_than_the_max_age_are_ignored(clock: list[int]) -> None:
    full = FakeFailover(local_stos=T - 600, cur_unacked_updates=10)
    with FakeOmapiServer({"lab": full}) as server:
        args = ("--server", server.endpoint, "--peer", "lab", "--state-max-age", "1m")
        status(*args)
        clock[0] += 61
        code, doc = status(*args)
        assert (code, unacked(doc)) == (0, [("ok", "unacked-updates")])
        clock[0] += 40
        assert status(*args)[0] == 1


def test_watch_warns_when_the_window_stays_full_across_polls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = iter(range(T, T + 1000, 20))  # each reading of the clock: 20 s later
    monkeypatch.setattr("time.time", lambda: float(next(ticks)))
    full = FakeFailover(local_stos=T - 600, cur_unacked_updates=10)
    with FakeOmapiServer({"lab": full}) as server:
        result = CliRunner().invoke(
            app,
            ["status", "--json", "--server", server.endpoint, "--peer", "lab", "--no-state",
             "--count", "2", "--interval", "0.2", "--unacked-for", "10s"],
        )  # fmt: skip
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert unacked(first) == [("ok", "unacked-updates")]
    assert result.exit_code == 1 and unacked(second) == [("warning", "unacked-updates")]


def _profile(tmp_path: Path, port: int, leases: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tmp_path / "config.toml"
    profile.write_text(
        '[profiles.lab]\nrelationships = ["lab"]\n'
        f'[profiles.lab.servers.primary]\nhost = "127.0.0.1"\nport = {port}\n'
        f'config = "{DATA / "primary.conf"}"\nleases = "{leases}"\n'
    )
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(profile))


def _active(address: str, when: int, mac: str) -> str:
    from datetime import UTC, datetime

    def date(epoch: int) -> str:
        moment = datetime.fromtimestamp(epoch, UTC)
        return f"{(moment.weekday() + 1) % 7} {moment:%Y/%m/%d %H:%M:%S}"

    return (
        f"lease {address} {{\n  starts {date(when)};\n  ends {date(when + 120)};\n"
        f"  cltt {date(when)};\n  binding state active;\n  rewind binding state free;\n"
        f"  hardware ethernet {mac};\n}}\n"
    )


def test_endurance_across_runs_reads_only_what_was_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: list[int]
) -> None:
    """status once a minute from a monitor: the first run reads the file, later ones only
    what dhcpd appended; the endurance uses the new bindings counted in between and the
    server's own free leases from OMAPI."""
    from dhcpfoctl.leases import read_leases, reader, write_leases

    leases = tmp_path / "dhcpd.leases"
    # As dhcpd's rewrite leaves it (one record per lease): no journal history to start from.
    with leases.open("w") as out:
        write_leases(read_leases(DATA / "primary.leases"), out)
    full_reads: list[str] = []
    read_all = reader._read_all

    def counting_read_all(path: object, **options: object) -> object:
        full_reads.append(str(path))
        return read_all(path, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(reader, "_read_all", counting_read_all)
    cut = FakeFailover(local_state=S.COMMUNICATIONS_INTERRUPTED, local_stos=T - 60)
    with FakeOmapiServer({"lab": cut}, pools={"10.99.0.100": FakePool(151, 60, 71)}) as server:
        _profile(tmp_path, server.port, leases, monkeypatch)
        code, doc = status("--profile", "lab")
        endurance = doc["views"][0]["endurance"]
        assert code == 1
        assert endurance["reason"] == "not enough history: 0s of 10m needed"
        assert endurance["seconds"] is None
        # 30 new clients on free leases over the next 15 minutes, one run a minute.
        free = [f"10.99.0.{n}" for n in range(220, 250)]
        for minute in range(15):
            clock[0] += 60
            with leases.open("a") as handle:
                for address in free[2 * minute : 2 * minute + 2]:
                    handle.write(_active(address, clock[0] - 30, f"02:aa:00:00:00:{address[-2:]}"))
            code, doc = status("--profile", "lab")
        endurance = doc["views"][0]["endurance"]
    assert full_reads == [str(leases)]
    assert endurance["rate_per_hour"] == 120 and endurance["window"] == 900
    assert endurance["seconds"] == 30 * 60  # 60 own free leases (OMAPI) at 120/h
