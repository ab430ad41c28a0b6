"""``dhcpfoctl lab``: the commands, human and JSON, on a lab of stand-in servers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.errors import ExitStatus, LocalError
from dhcpfoctl.lab.cluster import Lab, LabOptions, process_alive
from tests.test_lab_cluster import STAND_IN, free_base_port

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["lab", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A lab directory whose servers are the stand-in; always brought down."""
    script = tmp_path / "stand_in_server.py"
    script.write_text(STAND_IN)
    original = Lab.__init__

    def with_stand_in(self: Lab, directory: Path, **kwargs: object) -> None:
        original(self, directory, server_command=(sys.executable, str(script)))

    monkeypatch.setattr(Lab, "__init__", with_stand_in)
    directory = tmp_path / "lab"
    try:
        yield directory
    finally:
        Lab(directory).down(timeout=5)


def test_up_status_cut_heal_kill_start_down_json(lab_dir: Path) -> None:
    base = free_base_port()
    code, out, err = run("up", "--dir", str(lab_dir), "--base-port", str(base), "--json")
    assert code == 0, err
    up = json.loads(out)
    assert up["running"] and up["base_port"] == base
    assert {p["name"]: p["ports"]["omapi"] for p in up["processes"][:2]} == {
        "primary": base + 4,
        "secondary": base + 5,
    }
    assert up["relay"]["mode"] == "pass"

    code, _, err = run("up", "--dir", str(lab_dir), "--base-port", str(base))
    assert code == ExitStatus.REFUSED
    assert err.startswith(f"dhcpfoctl: error: a lab is running in {lab_dir} (pids ")

    code, out, _ = run("cut", "--drop", "--dir", str(lab_dir), "--json")
    assert code == 0 and json.loads(out)["mode"] == "drop"
    code, out, _ = run("cut", "--dir", str(lab_dir))
    assert code == 0 and out.startswith("failover link: cut")
    code, out, _ = run("heal", "--dir", str(lab_dir), "--json")
    assert code == 0 and json.loads(out)["mode"] == "pass"

    code, out, _ = run("kill", "primary", "--signal", "KILL", "--dir", str(lab_dir), "--json")
    assert code == 0
    killed = json.loads(out)
    assert killed["server"] == "primary" and killed["signal"] == "KILL"
    code, out, _ = run("start", "primary", "--dir", str(lab_dir), "--json")
    assert code == 0 and json.loads(out)["pid"] != killed["pid"]

    code, out, _ = run("status", "--dir", str(lab_dir))
    assert code == 0
    assert "primary" in out and "failover link: pass" in out
    pids = [
        p["pid"] for p in json.loads(run("status", "--dir", str(lab_dir), "--json")[1])["processes"]
    ]

    code, out, _ = run("down", "--dir", str(lab_dir), "--json")
    assert code == 0
    assert set(json.loads(out)["stopped"]) == {"primary", "secondary", "relay"}
    assert not any(process_alive(pid) for pid in pids)
    code, out, _ = run("status", "--dir", str(lab_dir), "--json")
    assert json.loads(out)["running"] is False


def test_up_human_output_names_ports_and_profile(lab_dir: Path) -> None:
    base = free_base_port()
    code, out, err = run("up", "--dir", str(lab_dir), "--base-port", str(base))
    assert code == 0, err
    assert f"omapi {base + 4}" in out and f"to_secondary {base + 9}" in out
    assert f"DHCPFOCTL_CONFIG={lab_dir / 'config.toml'}" in out
    assert "dhcpfoctl status --profile lab" in out
    code, out, _ = run("down", "--dir", str(lab_dir))
    assert code == 0 and "relay: stopped" in out


def test_errors_are_one_line_with_the_mapped_status(lab_dir: Path) -> None:
    code, _, err = run("start", "primary", "--dir", str(lab_dir))
    assert code == ExitStatus.INPUT_ERROR
    assert err.count("\n") == 1 and "run `dhcpfoctl lab up` first" in err
    code, _, err = run("cut", "--dir", str(lab_dir))
    assert code == ExitStatus.REMOTE_ERROR and "relay does not answer" in err
    code, _, _ = run("kill", "tertiary", "--dir", str(lab_dir))
    assert code == ExitStatus.USAGE
    code, out, _ = run("down", "--dir", str(lab_dir))
    assert code == 0 and "no lab running" in out


def test_env_points_at_the_profile(tmp_path: Path) -> None:
    code, out, _ = run("env", "--dir", str(tmp_path / "my lab"))
    assert code == 0
    assert out == f"export DHCPFOCTL_CONFIG='{tmp_path / 'my lab' / 'config.toml'}'\n"
    code, out, _ = run("env", "--dir", str(tmp_path), "--json")
    assert json.loads(out) == {"DHCPFOCTL_CONFIG": str(tmp_path / "config.toml")}


def test_cli_defaults_are_the_lab_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[LabOptions] = []

    def fake_up(self: Lab, options: LabOptions, *, timeout: float) -> None:
        seen.append(options)
        raise LocalError("stop here")

    monkeypatch.setattr(Lab, "up", fake_up)
    code, _, _ = run("up")
    assert code == ExitStatus.INPUT_ERROR
    assert seen == [LabOptions()]


def test_lab_commands_are_in_the_completions() -> None:
    bash = (ROOT / "completions" / "dhcpfoctl.bash").read_text()
    probe = (
        f"source {ROOT / 'completions' / 'dhcpfoctl.bash'};"
        " COMP_WORDS=(dhcpfoctl lab kill primary --signal ''); COMP_CWORD=5; _dhcpfoctl;"
        ' printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["TERM", "KILL"]
    assert "--base-port" in bash and "--drop" in bash
    assert ".SS lab up" in (ROOT / "man" / "dhcpfoctl.1").read_text()


def test_clients_json_and_human(lab_dir: Path) -> None:
    base = free_base_port()
    code, _, err = run("up", "--dir", str(lab_dir), "--base-port", str(base))
    assert code == 0, err
    code, out, err = run(
        "clients", "2", "--rate", "20", "--duration", "2", "--dir", str(lab_dir), "--json"
    )
    assert code == 0, err
    stats = json.loads(out)
    assert stats["started"] == 2 and stats["acks"] >= 1
    assert set(stats["latency_ms"]) == {"p50", "p90", "p99"} and "latencies" not in stats
    code, out, err = run("clients", "1", "--duration", "1", "--keep", "--dir", str(lab_dir))
    assert code == 0, err
    assert "clients started" in out and "leases bound" in out


def test_clients_that_get_nothing_exit_remote_error(lab_dir: Path) -> None:
    code, _, err = run("up", "--dir", str(lab_dir), "--base-port", str(free_base_port()))
    assert code == 0, err
    Lab(lab_dir).kill("primary")  # the stand-in's secondary never answers DHCP
    code, out, err = run("clients", "1", "--duration", "1", "--dir", str(lab_dir), "--json")
    assert code == ExitStatus.REMOTE_ERROR
    assert json.loads(out)["acks"] == 0
    assert "no client got a lease" in err


def test_mixed_up_status_cut_down(lab_dir: Path) -> None:
    base = free_base_port()
    args = ("--dir", str(lab_dir), "--base-port", str(base))
    mixed = ("--partner-address", "127.0.0.1:647", "--partner-omapi", "127.0.0.1:7911")
    code, out, err = run("up", *mixed, *args)
    assert code == 0, err
    assert "mixed pair: our secondary (failover 127.0.0.1:" in out
    assert f"failover 127.0.0.1:{base + 7}" in out and "dhcpfoctl status --profile lab" in out
    code, out, _ = run("status", "--dir", str(lab_dir), "--json")
    status = json.loads(out)
    assert status["mode"] == "mixed" and status["partner"]["partner_omapi"] == "127.0.0.1:7911"
    assert [p["name"] for p in status["processes"]] == ["secondary"]
    for command in ("cut", "heal"):
        code, _, err = run(command, "--dir", str(lab_dir))
        assert code == ExitStatus.INPUT_ERROR
        assert err.count("\n") == 1 and "a mixed lab has no relay" in err
    code, _, err = run("kill", "primary", "--dir", str(lab_dir))
    assert code == ExitStatus.INPUT_ERROR and "the primary is the dhcpd at 127.0.0.1:647" in err
    code, out, _ = run("down", "--dir", str(lab_dir))
    assert code == 0 and out == "secondary: stopped\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--partner-address", "dhcp1"), "--partner-address: 'dhcp1' is not HOST:PORT"),
        (("--range", "10.1.0.10-10.1.0.20"), "--range is for a mixed pair only"),
        (
            ("--partner-address", "10.0.0.1:647", "--range", "10.1.0.10-10.1.1.20"),
            "is not inside subnet 10.1.0.0/24 (give --subnet)",
        ),
    ],
)
def test_mixed_refusals_are_one_line(lab_dir: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = run("up", *args, "--dir", str(lab_dir))
    assert code == ExitStatus.INPUT_ERROR
    assert err.count("\n") == 1 and message in err
    assert not (lab_dir / "lab.json").exists()
