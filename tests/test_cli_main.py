"""The composed command line: version, help, and usage-error exit statuses per command kind."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dhcpfoctl import __version__
from dhcpfoctl.cli.main import app
from dhcpfoctl.errors import ExitStatus

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"dhcpfoctl {__version__}"
    assert result.stdout.splitlines()[1].startswith("lease reader: ")


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--no-such-option"],
        ["status", "--timeout", "abc"],
        ["audit", "--config", "x.conf"],  # --leases missing
    ],
)
def test_usage_error_of_a_monitoring_check_is_unknown(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == ExitStatus.UNKNOWN, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["leases", "--no-such-option", "x"],
        ["balance", "--config", "x.conf"],
        ["partner-down", "--timeout", "abc"],
        ["no-such-command"],
    ],
)
def test_usage_error_of_other_commands_is_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == ExitStatus.USAGE, result.output


def test_help_of_a_check_still_exits_0() -> None:
    result = runner.invoke(app, ["status", "--help"])
    assert result.exit_code == 0
    assert "--server" in result.stdout
