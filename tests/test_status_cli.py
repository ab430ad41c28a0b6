"""``dhcpfoctl status`` end to end against fake OMAPI servers (CliRunner)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.model import FailoverState as S
from tests.fake_omapi import LAB_KEY_SECRET, FakeFailover, FakeOmapiServer, FakePool

KEY = OmapiKey("lab-key", "hmac-md5", Secret(LAB_KEY_SECRET))
KEY_ARG = "lab-key:ZGhjcGZvY3RsLWxhYmtleQ=="
DATA = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"


@pytest.fixture(autouse=True)
def no_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the developer's own config.toml or key from the environment."""
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DHCPFOCTL_KEY", raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["status", *args])
    return result.exit_code, result.stdout, result.stderr


def pair_servers(
    primary: FakeFailover, secondary: FakeFailover, **secondary_kw: object
) -> tuple[FakeOmapiServer, FakeOmapiServer]:
    primary.hierarchy, secondary.hierarchy = 0, 1
    return (
        FakeOmapiServer({"lab": primary}),
        FakeOmapiServer({"lab": secondary}, key=KEY, **secondary_kw),  # type: ignore[arg-type]
    )


def test_normal_pair_is_ok_with_one_keyed_server() -> None:
    now = int(time.time())
    p, s = pair_servers(FakeFailover(local_stos=now - 60), FakeFailover(local_stos=now - 60))
    with p, s:
        code, out, err = run(
            "--server", p.endpoint, "--server", s.endpoint, "--peer", "lab", "--key", KEY_ARG
        )
    assert code == 0, err
    assert "health: OK" in out and out.count("normal") >= 4
    assert "ZGhjcGZvY3Rs" not in out + err


def test_json_shape_for_communications_interrupted() -> None:
    now = int(time.time())
    p, s = pair_servers(
        FakeFailover(local_state=S.COMMUNICATIONS_INTERRUPTED, local_stos=now - 125),
        FakeFailover(local_state=S.COMMUNICATIONS_INTERRUPTED, local_stos=now - 120),
    )
    with p, s:
        code, out, _ = run(
            "--server", p.endpoint, "--server", s.endpoint, "--peer", "lab",
            "--key", KEY_ARG, "--json",
        )  # fmt: skip
    doc = json.loads(out)
    assert code == 1 and doc["health"] == "warning" and doc["exit_status"] == 1
    assert [v["role"] for v in doc["views"]] == ["primary", "secondary"]
    primary = doc["views"][0]
    assert primary["local_state"] == "communications-interrupted"
    assert primary["local_state_code"] == 3
    assert 125 <= primary["communications_interrupted_for"] <= 130
    assert primary["load_balance_primary_buckets"] == 128
    assert [f["code"] for f in doc["findings"]] == ["communications-interrupted"] * 2
    assert doc["servers"][0]["notes"] == ["does not know the key from --key; queried unsigned"]
    assert doc["servers"][1]["signed"] is True


def test_partner_down_countdown_and_pool_counts_from_config(tmp_path: Path) -> None:
    now = int(time.time())
    config = tmp_path / "dhcpd.conf"
    config.write_text((DATA / "primary.conf").read_text())
    p = FakeOmapiServer(
        {"lab": FakeFailover(local_state=S.PARTNER_DOWN, local_stos=now - 10, mclt=30)},
        pools={"10.99.0.100": FakePool(151, 80, 71)},
    )
    with p:
        code, out, _ = run("--server", p.endpoint, "--config", str(config), "--json")
    doc = json.loads(out)
    view = doc["views"][0]
    assert doc["relationships"] == ["lab"]  # read from the config's failover peer
    assert view["mclt_ends"] == now - 10 + 30 and 0 < view["mclt_remaining"] <= 20
    assert view["pools"] == [
        {"address": "10.99.0.100", "lease_count": 151, "free_leases": 80, "backup_leases": 71}
    ]
    assert code == 1 and doc["findings"][0]["code"] == "partner-down"


def test_unreachable_server_is_unknown_and_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    p = FakeOmapiServer({"lab": FakeFailover()})
    with p:
        code, out, _ = run("--server", p.endpoint, "--server", dead, "--peer", "lab", "--json")
    doc = json.loads(out)
    assert code == 3 and doc["health"] == "unknown"
    assert doc["servers"][1]["reachable"] is False
    assert doc["servers"][1]["error"].startswith(f"{dead}: cannot connect")


def test_wrong_key_is_unknown_with_a_clear_line() -> None:
    s = FakeOmapiServer({"lab": FakeFailover()}, key=KEY)
    with s:
        code, out, _ = run(
            "--server", s.endpoint, "--peer", "lab", "--key", "lab-key:d3Jvbmctc2VjcmV0LXh5eg=="
        )
    assert code == 3
    assert f"{s.endpoint}: opening failover-state name='lab' failed with INVALIDKEY" in out
    assert "d3Jvbmct" not in out


def test_unknown_relationship_is_unknown() -> None:
    p = FakeOmapiServer({"lab": FakeFailover()})
    with p:
        code, out, _ = run("--server", p.endpoint, "--peer", "nope", "--json")
    doc = json.loads(out)
    assert code == 3 and doc["findings"][0]["code"] == "relationship-error"
    assert "no failover relationship named 'nope'" in doc["findings"][0]["message"]


def test_missing_relationship_name_says_how_to_give_it() -> None:
    code, _, err = run("--server", "127.0.0.1:1")
    assert code == 3 and "give --peer NAME" in err and len(err.strip().splitlines()) >= 1


def test_bad_key_text_is_an_error_before_any_connection() -> None:
    code, _, err = run("--server", "127.0.0.1:1", "--peer", "lab", "--key", "lab-key:***")
    assert code == 3 and "not valid base64" in err and "***" not in err


def test_profile_with_per_server_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = int(time.time())
    p, s = pair_servers(FakeFailover(local_stos=now), FakeFailover(local_stos=now))
    key_file = tmp_path / "omapi.key"
    key_file.write_text('key lab-key { algorithm hmac-md5; secret "ZGhjcGZvY3RsLWxhYmtleQ=="; }\n')
    key_file.chmod(0o644)
    with p, s:
        profile = tmp_path / "config.toml"
        profile.write_text(
            'default = "lab"\n[profiles.lab]\nrelationships = ["lab"]\n'
            f'[profiles.lab.servers.dhcp1]\nhost = "127.0.0.1"\nport = {p.port}\n'
            f'[profiles.lab.servers.dhcp2]\nhost = "127.0.0.1"\nport = {s.port}\n'
            f'key_file = "{key_file}"\n'
        )
        monkeypatch.setenv("DHCPFOCTL_CONFIG", str(profile))
        code, out, err = run("--json")
    doc = json.loads(out)
    assert code == 0, err
    assert doc["profile"] == "lab" and [v["server"] for v in doc["views"]] == ["dhcp1", "dhcp2"]
    assert [srv["signed"] for srv in doc["servers"]] == [False, True]
    assert "readable by group/others" in err


def test_watch_count_emits_one_json_document_per_poll() -> None:
    p = FakeOmapiServer({"lab": FakeFailover()})
    with p:
        code, out, _ = run(
            "--server", p.endpoint, "--peer", "lab", "--watch", "--count", "2",
            "--interval", "0.2", "--json",
        )  # fmt: skip
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 2 and code == 0


def test_watch_highlights_transitions() -> None:
    failover = FakeFailover()
    p = FakeOmapiServer({"lab": failover})
    with p:
        from dhcpfoctl.checks.gather import gather_report
        from dhcpfoctl.cli.status import _transitions, render
        from dhcpfoctl.profile import ServerSpec, Targets

        targets = Targets((ServerSpec("dhcp1", "127.0.0.1", p.port),), ("lab",))
        previous: dict[tuple[str, str], str] = {}
        log: list[str] = []
        assert _transitions(gather_report(targets, 2), previous, log) == set()
        failover.local_state = S.COMMUNICATIONS_INTERRUPTED
        report = gather_report(targets, 2)
        changed = _transitions(report, previous, log)
    assert changed == {("dhcp1", "lab")}
    assert log[-1].endswith("dhcp1 lab: normal → communications-interrupted")
    from rich.console import Console

    console = Console(record=True, width=120, color_system=None)
    console.print(render(report, changed, log))
    assert "transitions:" in console.export_text()


def test_narrow_terminal_folds_values_instead_of_cutting_them() -> None:
    from rich.console import Console

    from dhcpfoctl.checks.gather import gather_report
    from dhcpfoctl.cli.status import render
    from dhcpfoctl.profile import ServerSpec, Targets

    # The widest state leaves the details column narrower than its longest word.
    p = FakeOmapiServer({"lab": FakeFailover(local_state=S.COMMUNICATIONS_INTERRUPTED)})
    with p:
        report = gather_report(Targets((ServerSpec("dhcp1", "127.0.0.1", p.port),), ("lab",)), 2)
    console = Console(record=True, width=60, color_system=None)
    console.print(render(report))
    assert "…" not in console.export_text()


def test_watch_off_a_terminal_prints_every_poll() -> None:
    p = FakeOmapiServer({"lab": FakeFailover(local_stos=int(time.time()) - 60)})
    with p:
        code, out, _ = run(
            "--server", p.endpoint, "--peer", "lab", "--count", "2", "--interval", "0.2"
        )
    assert code == 0 and out.count("health: OK") == 2


def test_commands_are_registered() -> None:
    import typer.main

    names = set(typer.main.get_command(app).list_commands(None))  # type: ignore[arg-type]
    assert {"status", "partner-down", "set-state"} <= names


def test_no_color_and_no_secret_in_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHCPFOCTL_KEY", KEY_ARG)
    monkeypatch.setenv("NO_COLOR", "1")
    s = FakeOmapiServer({"lab": FakeFailover()}, key=KEY)
    with s:
        code, out, err = run("--server", s.endpoint, "--peer", "lab")
    assert code == 0 and "\x1b[" not in out and KEY_ARG.split(":")[1] not in out + err
    assert os.environ["NO_COLOR"] == "1"


def test_endurance_from_the_profile_lease_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = FakeOmapiServer({"lab": FakeFailover(local_state=S.COMMUNICATIONS_INTERRUPTED)})
    with p:
        profile = tmp_path / "config.toml"
        profile.write_text(
            '[profiles.lab]\nrelationships = ["lab"]\n'
            f'[profiles.lab.servers.primary]\nhost = "127.0.0.1"\nport = {p.port}\n'
            f'config = "{DATA / "primary.conf"}"\nleases = "{DATA / "primary.leases"}"\n'
        )
        monkeypatch.setenv("DHCPFOCTL_CONFIG", str(profile))
        code, out, err = run("--profile", "lab", "--json")
    view = json.loads(out)["views"][0]
    assert code == 1, err
    assert view["endurance"]["leases"] == str(DATA / "primary.leases")
    estimate = view["endurance"]
    # Either an estimate, or the balance module's reason why there is none, or no new
    # binding at all in the window (the journal's are days old): never a guess.
    no_drain = estimate["rate_per_hour"] == 0 and estimate["reason"] is None
    assert (estimate["seconds"] is None) == (estimate["reason"] is not None or no_drain)
    assert view["pools"] == []  # the fake holds no lease for the pool's first address


def test_watch_follows_the_lease_file_instead_of_rereading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During an outage --watch polls every few seconds: a 1M-address file must not be read
    in full each time (about 11 s); after the first poll only appended bytes are read."""
    from dhcpfoctl.leases import reader

    full_reads: list[str] = []
    read_all = reader._read_all

    def counting_read_all(path: object, **options: object) -> object:
        full_reads.append(str(path))
        return read_all(path, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(reader, "_read_all", counting_read_all)
    leases = tmp_path / "dhcpd.leases"
    leases.write_bytes((DATA / "primary.leases").read_bytes())
    p = FakeOmapiServer({"lab": FakeFailover(local_state=S.COMMUNICATIONS_INTERRUPTED)})
    with p:
        profile = tmp_path / "config.toml"
        profile.write_text(
            '[profiles.lab]\nrelationships = ["lab"]\n'
            f'[profiles.lab.servers.primary]\nhost = "127.0.0.1"\nport = {p.port}\n'
            f'config = "{DATA / "primary.conf"}"\nleases = "{leases}"\n'
        )
        monkeypatch.setenv("DHCPFOCTL_CONFIG", str(profile))
        code, out, _ = run("--profile", "lab", "--json", "--count", "3", "--interval", "0.2")
    documents = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and len(documents) == 3
    assert all(doc["views"][0]["endurance"]["leases"] == str(leases) for doc in documents)
    assert full_reads == [str(leases)]


def test_json_error_document_when_nothing_could_be_asked() -> None:
    code, out, err = run("--server", "127.0.0.1:1", "--json")
    doc = json.loads(out)
    assert code == 3 and doc["health"] == "unknown" and doc["views"] == []
    assert doc["findings"][0]["code"] == "error" and "give --peer NAME" in err


def test_human_output_shows_countdown_and_unreachable_server() -> None:
    now = int(time.time())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    p = FakeOmapiServer(
        {"lab": FakeFailover(local_state=S.PARTNER_DOWN, local_stos=now - 5, mclt=3600)}
    )
    with p:
        code, out, _ = run("--server", p.endpoint, "--server", dead, "--peer", "lab")
    assert code == 3
    assert re.search(r"health: UNKNOWN at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out)
    assert "peer leases usable" in out and p.endpoint in out
    # The reason is said once, as a finding line, not again inside the table.
    assert out.count(f"{dead}: cannot connect") == 1 and "no answer (see below)" in out
    assert f"UNKNOWN: {dead}: cannot connect" in out
    assert re.search(r"WARNING: 127\.0\.0\.1:\d+: partner-down for \ds", out)


@pytest.mark.parametrize(
    ("behaviour", "cell"),
    [
        ("garbage", "unusable answer (see below)"),
        ("bad-startup", "unusable answer (see below)"),
        ("silent", "no answer (see below)"),
    ],
)
def test_table_tells_a_silent_server_from_one_that_answered_garbage(
    behaviour: str, cell: str
) -> None:
    with FakeOmapiServer({}, behaviour=behaviour) as server:
        code, out, _ = run("--server", server.endpoint, "--peer", "lab", "--timeout", "0.5")
    assert code == 3
    assert cell in out
    assert f"UNKNOWN: {server.endpoint}: " in out  # what it answered, said once below
