"""Console, JSON, error and exit plumbing shared by every command.

Human output goes to stdout through rich, with colour only on a terminal and never when
``NO_COLOR`` is set (rich honours both). Diagnostics go to stderr. ``--json`` output is
plain ``json.dumps`` so that it is byte-stable for scripts and golden tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from dhcpfoctl.errors import CheckResult, DhcpfoctlError, exit_status_for

if TYPE_CHECKING:
    from rich.console import Console

    from dhcpfoctl.model import LeaseDB


@cache
def stdout_console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


@cache
def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout (no rich processing)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def warn(message: str) -> None:
    """One diagnostic line on stderr, prefixed so it is greppable in cron mail."""
    stderr_console().print(
        f"dhcpfoctl: warning: {message}", markup=False, highlight=False, soft_wrap=True
    )


@contextmanager
def byte_progress(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a bar on stderr, or ``None`` off a TTY.

    Readers take it as their ``progress`` argument; the bar disappears when the block ends.
    """
    console = stderr_console()
    if not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        f"[progress.description]{description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def read_leases_with_progress(path: str, *, strict: bool = False) -> LeaseDB:
    """:func:`dhcpfoctl.leases.read_leases` with :func:`byte_progress` drawing the bar."""
    from dhcpfoctl.leases import read_leases

    with byte_progress("reading leases") as progress:
        return read_leases(path, strict=strict, progress=progress)


@contextmanager
def reported_errors(*, monitoring: bool = False) -> Iterator[None]:
    """Turn a :class:`DhcpfoctlError` into one line on stderr and its exit status.

    No traceback is printed for these: they describe the operator's input or the
    server's answer, not a bug.
    """
    try:
        yield
    except DhcpfoctlError as exc:
        stderr_console().print(
            f"dhcpfoctl: error: {exc}", markup=False, highlight=False, soft_wrap=True
        )
        exit_with(exc, monitoring=monitoring)
    except KeyboardInterrupt as exc:
        exit_with(exc)


def exit_with(outcome: BaseException | CheckResult, *, monitoring: bool = False) -> NoReturn:
    """End the command with the status :func:`~dhcpfoctl.errors.exit_status_for` maps
    ``outcome`` to: every command exits here, so no status escapes the documented table."""
    raise typer.Exit(int(exit_status_for(outcome, monitoring=monitoring))) from None
