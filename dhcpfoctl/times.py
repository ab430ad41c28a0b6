"""Parsing and formatting of times and durations, for the command line, tables and JSON.

Times on the command line may be ``now``, epoch seconds (``@1764313218``), ISO 8601
(``2026-11-28T07:00:18Z``; without a zone it is local time), or relative to now
(``-2h``, ``+30m``). Durations are ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` or plain seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dhcpfoctl.errors import LocalError
from dhcpfoctl.model import LATEST_TIME, NEVER
from dhcpfoctl.quoting import parse_decimal

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"([0-9]+)([smhdw])")


def parse_duration(text: str) -> int:
    """Seconds in ``text`` (``1h30m``, ``90``); raises :class:`LocalError` when malformed."""
    text = text.strip().lower()
    whole = parse_decimal(text, LATEST_TIME)
    if whole is not None:
        return whole
    parts = _DURATION_PART.findall(text)
    numbers = [parse_decimal(n, LATEST_TIME) for n, _ in parts]
    if not parts or "".join(n + u for n, u in parts) != text or None in numbers:
        raise LocalError(f"invalid duration {text!r} (use e.g. 90s, 15m, 2h, 1d, 1h30m)")
    return sum(n * _UNIT_SECONDS[u] for n, (_, u) in zip(numbers, parts, strict=True))  # type: ignore[operator]


def parse_time(text: str, now: int) -> int:
    """Epoch seconds for a command-line time (see module doc)."""
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("@") and (epoch := parse_decimal(text[1:], LATEST_TIME)) is not None:
        return epoch
    if text[:1] in "+-" and len(text) > 1:
        sign = -1 if text[0] == "-" else 1
        return now + sign * parse_duration(text[1:])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise LocalError(
            f"invalid time {text!r} (use now, @EPOCH, -2h, or ISO 8601 like 2026-11-28T07:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive means local time, as an operator types it
    return int(moment.timestamp())


def format_duration(seconds: int) -> str:
    """The one duration format of every output: ``45s``, ``12m05s``, ``3h05m``, ``2d04h``.

    At most two units, the largest first, rounded down; a zero second unit is left out
    (``12m``, ``3h``, ``1d``). No space inside, so a table never wraps a duration and any
    value printed can be given back as an option (``--window 3h05m``).
    """
    seconds = abs(int(seconds))
    for unit, size, smaller, small_size in _FORMAT_UNITS:
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            part = rest // small_size
            return f"{whole}{unit}{part:02d}{smaller}" if part else f"{whole}{unit}"
    return f"{seconds}s"


#: (unit, its seconds, the next smaller unit, its seconds), largest first.
_FORMAT_UNITS = (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1))


def format_relative(epoch: int, now: int) -> str:
    """``in 3h05m`` / ``12m ago`` / ``now``."""
    delta = epoch - now
    if delta == 0:
        return "now"
    return f"in {format_duration(delta)}" if delta > 0 else f"{format_duration(delta)} ago"


def format_local_time(epoch: int | None, now: int) -> str:
    """Local wall-clock time with a relative hint, for tables; ``never``/``-`` as such."""
    moment, relative = format_local_parts(epoch, now)
    return f"{moment} ({relative})" if relative else moment


def format_local_parts(epoch: int | None, now: int) -> tuple[str, str]:
    """:func:`format_local_time` as its two parts, ``("2026-11-28 07:38:00", "43h ago")``,
    for a narrow table that shows them on a line each (the relative part may be empty)."""
    if epoch is None:
        return "-", ""
    if epoch == NEVER:
        return "never", ""
    try:
        moment = datetime.fromtimestamp(epoch).astimezone()
    except (OverflowError, OSError, ValueError):
        # A server may send any 32- or 64-bit time; past the calendar, the epoch is the date.
        return f"@{epoch}", format_relative(epoch, now)
    return f"{moment:%Y-%m-%d %H:%M:%S}", format_relative(epoch, now)


def iso_utc(epoch: int | None) -> str | None:
    """ISO 8601 UTC for JSON; ``never`` kept as the string ``"never"``."""
    if epoch is None:
        return None
    if epoch == NEVER:
        return "never"
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"@{epoch}"  # past the calendar (see format_local_time): the command-line form
