"""The watcher's journal: one JSON object per line, appended and fsynced, never rewritten.

Record kinds (every record has ``t``, epoch seconds, and ``kind``):

* ``start`` / ``stop``: a watcher began or ended (``watcher``, ``pid``, ``act``);
* ``transition``: ``relationship``, ``server``, ``old`` (null when first seen), ``new``
  (a state keyword, or ``unreachable``), ``at``, ``previous_duration`` (seconds, or null);
* ``decision``: ``relationship``, ``incident``, ``decision`` (``act``, ``would-act`` or
  ``veto``), ``reasons`` (one line each), ``probes`` (every probe result), ``unanswered``,
  ``witness``;
* ``intent`` then ``outcome``: written before and after a forced partner-down
  (``relationship``, ``incident``, ``local``; the outcome's ``result`` is ``performed``,
  ``failed`` or ``dry-run``, with ``detail`` and the executor's ``document``);
* ``resolved``: after a restart, what became of an intent that had no outcome;
* ``silent``: since when the incident's partner has answered nothing (``since``, or null
  when it answered again), so that a restart or ``--once`` keeps the window;
* ``alert`` / ``alert-cleared``: ``relationship``, ``code``, ``message``;
* ``hook``: ``event`` (transition, alert, action), ``command``, ``status``, ``seconds``,
  ``output`` (bounded).

Restart safety: the intent is on disk before the write reaches the server and the outcome
after it, so :func:`resume` can tell a finished action from an interrupted one (an intent
without an outcome: the policy reads the server back before doing anything). A torn last
line (a crash mid-write) and lines that are not ours are skipped, never fatal.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dhcpfoctl.errors import InputFileError, LocalError
from dhcpfoctl.files import open_regular

#: Longest journal line read back; anything longer is not one of ours.
MAX_LINE = 1 << 20


class Journal:
    """The journal file, held open for appending under an exclusive lock: two watchers on
    one journal would each believe they alone act, so the second is refused."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise LocalError(f"{path}: cannot open the journal ({exc.strerror})") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise LocalError(f"{path}: another watcher is using this journal") from None

    def append(self, record: dict[str, Any]) -> None:
        """One line, on disk (fsync) before this returns."""
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str) + "\n"
        os.write(self._fd, line.encode())
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """The records of ``path`` in order; an absent journal has none. Lines that are not a
    JSON object with ``kind`` and ``t`` (a torn last line) are skipped."""
    try:
        handle = open_regular(str(path))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputFileError(str(path), exc.strerror or str(exc)) from None
    with handle:
        for raw in handle:
            if len(raw) > MAX_LINE:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if (
                isinstance(record, dict)
                and isinstance(record.get("kind"), str)
                and isinstance(record.get("t"), int | float)
            ):
                yield record


@dataclass(slots=True)
class Resumed:
    """One relationship's memory as the journal leaves it."""

    states: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    incident: str | None = None
    intent_pending: bool = False
    acted: bool = False
    actions_taken: int = 0
    partner_silent_since: float | None = None


def resume(records: Iterable[dict[str, Any]]) -> dict[str, Resumed]:
    """relationship → what the policy must remember after a restart."""
    found: dict[str, Resumed] = {}
    for record in records:
        name = record.get("relationship")
        if not isinstance(name, str):
            continue
        memory = found.setdefault(name, Resumed())
        kind = record["kind"]
        if kind == "transition":
            at = record.get("at")
            memory.states[str(record.get("server"))] = (
                str(record.get("new")),
                at if isinstance(at, int | float) else None,
            )
        elif kind == "intent":
            memory.incident = record.get("incident")
            memory.intent_pending, memory.acted = True, False
        elif kind == "outcome":
            memory.incident = record.get("incident")
            memory.intent_pending, memory.acted = False, True
            if record.get("result") == "performed":
                memory.actions_taken += 1
        elif kind == "resolved":
            memory.intent_pending = False
            memory.acted = bool(record.get("reached"))
            if memory.acted:
                memory.actions_taken += 1
        elif kind == "incident-over":
            memory.incident, memory.acted = None, False
            memory.partner_silent_since = None
        elif kind == "silent":
            since = record.get("since")
            memory.partner_silent_since = since if isinstance(since, int | float) else None
    return found


@dataclass(frozen=True, slots=True)
class StateSpan:
    """One server's stay in one state, for ``--show``."""

    relationship: str
    server: str
    state: str
    start: float
    duration: float | None  # None: still in it


def spans(records: Iterable[dict[str, Any]]) -> list[StateSpan]:
    """Every state each server was seen in, with how long it lasted, in order."""
    result: list[StateSpan] = []
    open_spans: dict[tuple[str, str], int] = {}
    for record in records:
        if record["kind"] != "transition":
            continue
        key = (str(record.get("relationship")), str(record.get("server")))
        at = record.get("at")
        start = float(at) if isinstance(at, int | float) else float(record["t"])
        if key in open_spans:
            previous = result[open_spans[key]]
            duration = record.get("previous_duration")
            result[open_spans[key]] = StateSpan(
                previous.relationship,
                previous.server,
                previous.state,
                previous.start,
                float(duration) if isinstance(duration, int | float) else None,
            )
        open_spans[key] = len(result)
        result.append(StateSpan(key[0], key[1], str(record.get("new")), start, None))
    return result
