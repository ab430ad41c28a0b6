"""contrib/: the Prometheus rules (promtool), the Alertmanager example (amtool), systemd units.

promtool and amtool come with Debian's ``prometheus`` and ``prometheus-alertmanager``,
systemd-analyze with ``systemd``; without them these tests skip, except under ``CI=true``,
where they fail. The unit tests of the keys need no tool.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from prometheus_client.parser import text_string_to_metric_families

from dhcpfoctl.cli.main import app
from dhcpfoctl.watch.metrics import Metrics
from dhcpfoctl.watch.model import RelationshipWatch, ServerWatch, WatchSnapshot

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
PROMETHEUS = CONTRIB / "prometheus"
SYSTEMD = CONTRIB / "systemd"
UNITS = ("dhcpfoctl-watch.service", "dhcpfoctl-audit.service", "dhcpfoctl-audit.timer")


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is missing (Debian package {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def run(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules() -> None:
    result = run(tool("promtool", "prometheus"), "check", "rules", "dhcpfoctl.rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    result = run(tool("promtool", "prometheus"), "test", "rules", "dhcpfoctl.rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = (PROMETHEUS / "dhcpfoctl.rules.yml").read_text()
    tests = (PROMETHEUS / "dhcpfoctl.rules.test.yml").read_text()
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", rules, re.MULTILINE))
    tested = set(re.findall(r"^\s*alertname: (\w+)$", tests, re.MULTILINE))
    assert len(alerts) == 13
    assert alerts == tested


def _full_snapshot() -> WatchSnapshot:
    server = ServerWatch(
        "dhcp1", "192.0.2.10:7911", True, "normal", 0.0, 0, {"lan": 1}, {"lan": 1}, 10
    )
    rel = RelationshipWatch("campus", [server], ["x"], 0, {"omapi": True}, {"dhcp1": 1.0})
    return WatchSnapshot(now=1.0, relationships=[rel])


def test_every_metric_the_rules_name_is_exported() -> None:
    metrics = Metrics()
    metrics.update(_full_snapshot())
    exported = {
        sample.name
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }
    named = set()
    for path in PROMETHEUS.glob("*.yml"):
        named |= set(re.findall(r"\bdhcpfoctl_watch_\w+", path.read_text()))
    assert len(named) >= 10
    assert named <= exported, f"not exported: {sorted(named - exported)}"


def test_the_alertmanager_example_is_valid_and_pages_on_critical() -> None:
    amtool = tool("amtool", "prometheus-alertmanager")
    config = "alertmanager.example.yml"
    result = run(amtool, "check-config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    routes = {
        "critical": "dhcp-oncall",
        "warning": "dhcp-team",
    }
    for severity, receiver in routes.items():
        result = run(
            amtool, "config", "routes", "test", f"--config.file={config}",
            "alertname=DhcpfoctlPartnerDown", f"severity={severity}",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.split() == [receiver]


# --- systemd units ---------------------------------------------------------------------


def unit_keys(name: str) -> dict[str, list[tuple[str, str]]]:
    """Section → [(key, value)] of a unit file, in order (systemd repeats keys)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (SYSTEMD / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None and key == key.strip(), f"{name}: bad line {line!r}"
        current.append((key, value))
    return sections


def values(name: str, section: str, key: str) -> list[str]:
    return [v for k, v in unit_keys(name)[section] if k == key]


def test_the_watch_unit_is_a_notify_service_without_root() -> None:
    name = "dhcpfoctl-watch.service"
    expected = {
        "Type": ["notify"],
        "Restart": ["on-failure"],
        "DynamicUser": ["yes"],
        "StateDirectory": ["dhcpfoctl"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "AmbientCapabilities": ["CAP_NET_BIND_SERVICE"],
        "CapabilityBoundingSet": ["CAP_NET_BIND_SERVICE"],
    }
    for key, value in expected.items():
        assert values(name, "Service", key) == value, key
    assert "XDG_STATE_HOME=%S" in values(name, "Service", "Environment")
    # The sockets it needs stay allowed: OMAPI, failover, etcd, metrics, NOTIFY_SOCKET.
    families = set(values(name, "Service", "RestrictAddressFamilies")[0].split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert not values(name, "Service", "PrivateNetwork")
    assert not values(name, "Service", "IPAddressDeny")


def test_the_audit_timer_runs_the_audit_service() -> None:
    assert values("dhcpfoctl-audit.service", "Service", "Type") == ["oneshot"]
    assert values("dhcpfoctl-audit.service", "Service", "DynamicUser") == ["yes"]
    assert values("dhcpfoctl-audit.timer", "Timer", "OnCalendar") == ["*:0/10"]
    assert values("dhcpfoctl-audit.timer", "Install", "WantedBy") == ["timers.target"]


@pytest.fixture
def units_here(tmp_path: Path) -> Iterator[Path]:
    """The units with ExecStart pointing at this environment's dhcpfoctl (verify checks it)."""
    executable = Path(sys.executable).parent / "dhcpfoctl"
    assert executable.exists()
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace("/usr/local/bin/dhcpfoctl", str(executable))
        (tmp_path / name).write_text(text)
    yield tmp_path


def test_systemd_analyze_verify_finds_nothing(units_here: Path) -> None:
    verify = tool("systemd-analyze", "systemd")
    result = subprocess.run(
        [verify, "verify", "--man=no", *(f"./{name}" for name in UNITS)],
        cwd=units_here, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # Unknown keys and bad values are only warnings (exit 0): none may be printed.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def parse_invocation(command_line: str) -> dict[str, object]:
    """The parameters ``dhcpfoctl`` would run with: parsed by the CLI itself, not run."""
    program, *args = shlex.split(command_line)
    assert program == "/usr/local/bin/dhcpfoctl"
    group = typer.main.get_command(app)
    context = group.make_context("dhcpfoctl", list(args))
    name, command, rest = group.resolve_command(context, list(args))
    assert command is not None, f"no command {name}"
    return command.make_context(name, rest, parent=context).params


def test_the_audit_unit_runs_a_valid_audit() -> None:
    (exec_start,) = values("dhcpfoctl-audit.service", "Service", "ExecStart")
    params = parse_invocation(exec_start)
    assert params["config"] == "/etc/dhcp/dhcpd.conf"
    assert params["output_format"] == "nagios"


def test_the_watch_unit_runs_a_valid_watch() -> None:
    # Skips only on a branch without the watch command (before the merge of its branch).
    if "watch" not in typer.main.get_command(app).list_commands(None):  # type: ignore[arg-type]
        pytest.skip("the watch command is not there yet")
    (exec_start,) = values("dhcpfoctl-watch.service", "Service", "ExecStart")
    params = parse_invocation(exec_start)
    assert params["profile"] == "campus"
    assert params["metrics_listen"] == "127.0.0.1:9967"
