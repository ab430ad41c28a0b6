"""The one output layer: consoles, JSON, CSV, plain lines, errors and the single exit.

Human output goes to stdout through rich, with colour only on a terminal and never when
``NO_COLOR`` is set (rich honours both). Diagnostics go to stderr. ``--json`` output is
plain ``json.dumps`` so that it is byte-stable for scripts and golden tests. rich is
imported only for what needs it (a table, colour, a progress bar on a terminal): a line
said off a terminal, JSON, CSV and text documents are written without it (start-up cost).

Everything printed is made of text from outside — client hostnames from a lease file,
names from a config, what an OMAPI server says, the command line — so nothing printed is
ever interpreted: the consoles take no rich markup, emoji codes or highlighting, every
plain string is shown on one line with its non-printable characters escaped
(:func:`~dhcpfoctl.quoting.printable`: a newline cannot forge an output line, an escape
sequence cannot reach the terminal, a byte that is not UTF-8 is shown as ``\\xNN``), and
multi-line or styled output is built only with :func:`lines` and :func:`styled`, which
escape each part. Commands print only through this module (tests/test_output_safety.py
checks the command modules for any other way out).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from dhcpfoctl.errors import CheckResult, DhcpfoctlError, exit_status_for
from dhcpfoctl.quoting import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from dhcpfoctl.leases.transitions import WindowRequest
    from dhcpfoctl.model import LeaseDB

#: A part of :func:`styled`: text, or (text, rich style).
Part = str | tuple[str, str]


def literal(value: object) -> str:
    """``value`` as one line of literal text: every non-printable character escaped."""
    return printable(str(value))


def literal_lines(text: str) -> str:
    """:func:`literal` for text whose line breaks are meant (a rendered document)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def styled(*parts: Part) -> Text:
    """One line of rich text from literal parts: each part escaped, styles from our code."""
    from rich.text import Text

    return Text.assemble(
        *(
            (literal(part[0]), part[1]) if isinstance(part, tuple) else literal(part)
            for part in parts
        )
    )


def lines(*parts: Part | Text) -> Text:
    """Several lines in one cell or block: each part one line (escaped, see :func:`styled`)."""
    from rich.text import Text

    rendered = [part if isinstance(part, Text) else styled(part) for part in parts]
    return Text("\n").join(rendered)


@cache
def _literal_console_class() -> type[Console]:
    # Built on first use: rich is imported only by commands that print with it.
    from rich.console import Console

    class LiteralConsole(Console):
        """A console that interprets nothing of what it prints (see the module's doc)."""

        def render_str(self, text: str, **options: Any) -> Text:
            # Whatever a caller asks for: a string from outside is never markup, emoji
            # codes or highlighted, and is one line.
            options.update(markup=False, emoji=False, highlight=False, highlighter=None)
            return super().render_str(literal(text), **options)

        def _render_buffer(self, buffer: Iterable[Any]) -> str:
            # The last line of defence, on every segment written (a rich Text built
            # elsewhere, a renderable of rich's own): a control character in text is shown
            # escaped. Control segments (cursor moves of a live display) are rich's own.
            from rich.segment import Segment

            return super()._render_buffer(
                segment
                if segment.control or segment.text.isprintable()
                else Segment(literal_lines(segment.text), segment.style, segment.control)
                for segment in buffer
            )

    return LiteralConsole


def _console(**options: Any) -> Console:
    return _literal_console_class()(markup=False, emoji=False, highlight=False, **options)


@cache
def stdout_console() -> Console:
    return _console(soft_wrap=False)


@cache
def stderr_console() -> Console:
    return _console(stderr=True)


def text_console(width: int) -> Console:
    """A console rendering into a string (``console.file.getvalue()``), without colour."""
    import io

    return _console(file=io.StringIO(), width=width, color_system=None)


#: Measuring width for a table's natural size (rich clamps measurements to this).
UNBOUNDED_WIDTH = 10_000


def fit_table(layouts: Iterable[Callable[[], Any]]) -> Any:
    """A renderable showing the first table of ``layouts`` (ever more compact builders)
    whose natural width fits where it is printed, else the last one.

    rich squeezes a table wider than the terminal by cutting cells short with "…" or
    breaking words anywhere (``communications-|interrupted``); each command instead offers
    layouts that stack, wrap or drop what is least needed, so an address, a state, a time
    or a hardware address is always shown whole. The choice is made when it is printed,
    with the width of that console (a ``--watch`` redraw follows a resized terminal).
    """
    return _Fitted(tuple(layouts))


class _Fitted:
    def __init__(self, layouts: tuple[Callable[[], Any], ...]) -> None:
        self.layouts = layouts

    def _choose(self, console: Console, width: int) -> Any:
        unbounded = console.options.update_width(UNBOUNDED_WIDTH)
        table = None
        for build in self.layouts:
            table = build()
            if console.measure(table, options=unbounded).maximum <= width:
                break
        return table

    def __rich_console__(self, console: Console, options: Any) -> Iterator[Any]:
        # A soft-wrapped print (status's findings) offers unbounded width: the terminal's
        # width still bounds the table.
        yield self._choose(console, min(options.max_width, console.width))

    def __rich_measure__(self, console: Console, options: Any) -> Any:
        from rich.measure import Measurement

        table = self._choose(console, min(options.max_width, console.width))
        return Measurement.get(console, options, table)


def hardware_lines(mac: str, per_line: int = 6) -> list[str]:
    """A hardware address as lines of ``per_line`` bytes (a 20-byte InfiniBand address
    would otherwise take the whole width); a line ending in ":" continues."""
    octets = mac.split(":")
    chunks = [octets[i : i + per_line] for i in range(0, len(octets), per_line)] or [[]]
    return [
        ":".join(chunk) + (":" if i < len(chunks) - 1 else "") for i, chunk in enumerate(chunks)
    ]


def print_wrapped(
    console: Console, text: str, *, indent: str = "", style: str | None = None
) -> None:
    """``text`` wrapped at word boundaries to the console's width, its first line indented
    by ``indent`` and every following line two spaces deeper, so a wrapped line reads as
    the continuation it is (rich would start it at column 0)."""
    import textwrap

    for line in textwrap.wrap(
        literal(text),
        width=max(console.width, 20),
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    ):
        console.print(line, style=style, soft_wrap=True)


def _off_terminal(stream: Any) -> bool:
    """Whether rich's console would certainly see no terminal on ``stream``, known without
    importing rich: not a TTY, and neither of the variables by which rich overrides that
    (``TTY_COMPATIBLE``, ``FORCE_COLOR``) is set. False when unsure: rich decides."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return isatty is None or not isatty()
    except ValueError:  # a closed stream: rich says "no terminal" too
        return True


def say(message: str, *, style: str | None = None, err: bool = False) -> None:
    """One literal line on stdout (``err``: stderr), however narrow the terminal."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # closed when the process started: rich writes nowhere too
        return
    if _off_terminal(stream):
        # What rich prints there, without importing it: no style without a terminal, and
        # a soft-wrapped line as it is.
        stream.write(literal(message) + "\n")
        stream.flush()
        return
    console = stderr_console() if err else stdout_console()
    console.print(message, style=style, soft_wrap=True)


def nagios_status_line(status: str, summary: str, perfdata: Iterable[object] = ()) -> str:
    """``DHCPFOCTL STATUS - summary | perfdata``, the one-line monitoring format (Nagios
    plugin guidelines) of ``audit`` and ``status``."""
    # "|" starts the perfdata: a summary quoting a file or a server must not forge any.
    line = f"DHCPFOCTL {status} - {summary.replace('|', '/')}"
    rendered = " ".join(str(item) for item in perfdata)
    return line + (f" | {rendered}" if rendered else "")


def echo(line: str) -> None:
    """One literal line on stdout without rich (Nagios lines, shell snippets)."""
    typer.echo(literal(line))


def emit_text(text: str) -> None:
    """A rendered document (JSON, CSV, Prometheus, a table) on stdout, as it is: only line
    breaks are kept, any other control character is escaped."""
    sys.stdout.write(literal_lines(text))


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and a rename.

    A reader (node-exporter) sees either the old or the new file, never a half-written one.
    The text is a rendered document: as on stdout, only its line breaks are kept raw.
    """
    from dhcpfoctl.errors import InputFileError
    from dhcpfoctl.files import replace_atomically

    try:
        # 0644: textfile collectors run as another user.
        replace_atomically(path, literal_lines(text).encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise InputFileError(path, f"cannot write: {exc.strerror}") from None


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """CSV of ``rows``, each cell literal (one line, escaped): a value cannot add a row."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([literal(cell) for cell in row] for row in rows)
    return buffer.getvalue()


def write_csv(rows: Iterable[Iterable[object]]) -> None:
    emit_text(csv_text(rows))


def confirm(question: str) -> bool:
    """Ask on stderr; the question quotes names from outside, so it is literal."""
    return typer.confirm(literal(question), err=True)


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as JSON: ASCII only, so no character of a value reaches a terminal raw."""
    return json.dumps(data, indent=indent, sort_keys=False, default=str, ensure_ascii=True) + "\n"


def print_json(data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON to stdout (no rich processing); ``indent=None``: one line."""
    sys.stdout.write(json_text(data, indent=indent))
    sys.stdout.flush()


def warn(message: str) -> None:
    """One diagnostic line on stderr, prefixed so it is greppable in cron mail."""
    say(f"dhcpfoctl: warning: {message}", err=True)


@contextmanager
def byte_progress(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a bar on stderr, or ``None`` off a TTY.

    Readers take it as their ``progress`` argument; the bar disappears when the block ends.
    """
    if _off_terminal(sys.stderr) or not (console := stderr_console()).is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
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


def read_leases_with_progress(
    path: str, *, strict: bool = False, window: WindowRequest | None = None
) -> LeaseDB:
    """:func:`dhcpfoctl.leases.read_leases` with :func:`byte_progress` drawing the bar."""
    from dhcpfoctl.leases import read_leases

    with byte_progress("reading leases") as progress:
        return read_leases(path, strict=strict, progress=progress, window=window)


@contextmanager
def reported_errors(*, monitoring: bool = False) -> Iterator[None]:
    """Turn a :class:`DhcpfoctlError` into one line on stderr and its exit status.

    No traceback is printed for these: they describe the operator's input or the
    server's answer, not a bug.
    """
    try:
        yield
    except DhcpfoctlError as exc:
        say(f"dhcpfoctl: error: {exc}", err=True)
        exit_with(exc, monitoring=monitoring)
    except KeyboardInterrupt as exc:
        exit_with(exc)


def print_traceback(exc: BaseException) -> None:
    """``exc``'s traceback on stderr: a bug report, whose exception message may quote input,
    so that message is one literal line and the stack's lines are literal too."""
    import traceback

    stack = "".join(traceback.format_tb(exc.__traceback__))
    message = "".join(traceback.format_exception_only(exc)).rstrip("\n")
    sys.stderr.write(
        f"Traceback (most recent call last):\n{literal_lines(stack)}{literal(message)}\n"
    )


def exit_after_crash(exc: Exception) -> NoReturn:
    """End the process after a bug escaped its command (the entry point's last resort).

    The report goes through this layer rather than typer's own console, as its message may
    quote a lease file or a server; the status is still one from the documented table.
    Outside a command, typer's ``Exit`` would not be turned into a status: exit directly.
    """
    print_traceback(exc)
    raise SystemExit(int(exit_status_for(exc))) from None


@contextmanager
def literal_usage_errors() -> Iterator[None]:
    """Make the message of a command-line usage error literal before click prints it.

    click quotes the operator's words back (``No such option: …``, an extra argument),
    and those may come from anywhere a script took them. (click's errors carry
    ``message`` and ``exit_code``; typer vendors click privately, so the attributes are
    what we rely on, as cli/main.py's CheckCommand does.)
    """
    try:
        yield
    except Exception as exc:
        if isinstance(getattr(exc, "message", None), str) and hasattr(exc, "exit_code"):
            exc.message = literal(exc.message)  # type: ignore[attr-defined]
        raise


def exit_with(outcome: BaseException | CheckResult, *, monitoring: bool = False) -> NoReturn:
    """End the command with the status :func:`~dhcpfoctl.errors.exit_status_for` maps
    ``outcome`` to: every command exits here, so no status escapes the documented table."""
    raise typer.Exit(int(exit_status_for(outcome, monitoring=monitoring))) from None
