"""Shared test set-up.

Under ``CI=true`` (set by ``.ci/run``) no test may pass by skipping: a skip there (a tool
such as dhcpd-pools, dhcpd, groff or perfdhcp missing, not root, not a git checkout) is
reported as a failure, so that CI never goes green without running everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own state directory: what a check remembers between runs
    (dhcpfoctl.state) never comes from, nor goes to, the user's home or another test."""
    directory = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(directory))
    return directory


@pytest.fixture(autouse=True)
def _fresh_consoles() -> Iterator[None]:
    """A command's consoles are made once per process (the terminal's width is read then);
    in tests each CliRunner invocation is its own "process", with its own COLUMNS, so no
    test may inherit a console (and a width) from the one before it."""
    from dhcpfoctl.cli.output import stderr_console, stdout_console

    stdout_console.cache_clear()
    stderr_console.cache_clear()
    yield
    stdout_console.cache_clear()
    stderr_console.cache_clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may skip: {reason}"
