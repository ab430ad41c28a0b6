"""New bindings followed across runs: the memory behind ``audit``'s and ``status``'s endurance.

One document per lease file (:class:`~dhcpfoctl.state.StateStore` ``"leases"``, keyed by the
file's realpath) holds where the last read stopped (:class:`~dhcpfoctl.leases.ResumeState`),
who holds each active address (:class:`~dhcpfoctl.leases.transitions.Holders`) and the rate
history (:class:`~dhcpfoctl.balance.RateHistory`). Each run reads only what dhcpd appended,
judges those records against the holders, and adds the new bindings to the history.

When the file cannot be resumed:

* a new inode (dhcpd's rewrite: a compacted copy renamed over the file) is read in full and
  compared with the holders: unchanged addresses yield nothing, so the compacted records
  are not counted again; changes dated before the previous run are not counted either
  (they were seen, or belong to a file we never followed);
* the same inode shrunk or changed before the resume point (not something dhcpd does):
  everything starts over, and the run says so;
* no state, a state older than ``max_age`` or one that cannot be trusted: the file's own
  journal (:func:`~dhcpfoctl.leases.transitions.journal_bindings`: the transitions dhcpd
  appended since its last rewrite) seeds the holders and the history, which then starts
  when the journal's does.

Runs that remember nothing (``balance``, ``audit --as-of``, ``--no-state``) take their
history from the journal alone: :func:`dhcpfoctl.balance.journal_history`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from dhcpfoctl.balance import (
    BUCKET,
    FROM_JOURNAL,
    HISTORY_KEEP,
    RateHistory,
    journal_history,
    record_bindings,
)
from dhcpfoctl.conf import Config
from dhcpfoctl.leases import ResumeState, read_leases_incremental
from dhcpfoctl.leases.transitions import (
    Holders,
    Journal,
    journal_bindings,
    table_bindings,
)
from dhcpfoctl.model import LeaseDB
from dhcpfoctl.state import StateStore
from dhcpfoctl.times import format_duration

#: Default of ``--state-max-age``: older remembered data is ignored, not trusted.
DEFAULT_MAX_AGE: Final = 3600
STATE_NAME: Final = "leases"
STATE_VERSION: Final = 1
#: Where a history came from, as the output says it (FROM_JOURNAL: see balance.py).
FROM_STATE: Final = "new bindings remembered between runs"
#: A rewrite's changes dated this long before the previous run still count (clock steps).
_REWRITE_SLACK: Final = 60


@dataclass
class Followed:
    """What one run learnt about a lease file."""

    history: RateHistory
    #: New bindings found in this run (in a pool of the config).
    new_bindings: int
    #: One line each about the state: started over, ignored, could not be saved.
    notes: list[str] = field(default_factory=list)
    #: Where the history came from (:data:`FROM_JOURNAL` on a first run, else the state).
    source: str = FROM_STATE


@dataclass
class _Memory:
    resume: ResumeState
    holders: Holders
    history: RateHistory
    last_run: int

    def to_json(self) -> dict[str, Any]:
        return {
            "resume": self.resume.to_json(),
            "holders": base64.b64encode(self.holders.to_bytes()).decode(),
            "history": self.history.to_json(),
            "last_run": self.last_run,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Memory:
        """``ValueError`` for anything not written by :meth:`to_json`."""
        try:
            holders = Holders.from_bytes(base64.b64decode(data["holders"], validate=True))
            last_run = data["last_run"]
            if type(last_run) is not int:
                raise ValueError("last_run is not an integer")
            return cls(
                ResumeState.from_json(data["resume"]),
                holders,
                RateHistory.from_json(data["history"]),
                last_run,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a lease-file state: {exc}") from None


class LeaseFollower:
    """Follows lease files across polls (in memory) and runs (through the state).

    ``use_state=False`` (``--no-state``) keeps everything in memory only: a single run then
    has no history, a ``--watch`` builds one as it polls.
    """

    def __init__(self, *, use_state: bool = True, max_age: float = DEFAULT_MAX_AGE) -> None:
        self.use_state = use_state
        self.max_age = max_age
        self._memory: dict[str, _Memory] = {}
        #: Whole files read in this process, kept current with what each poll appends.
        self._whole: dict[str, LeaseDB] = {}

    def whole(self, path: str, read: Callable[[str], LeaseDB] | None = None) -> LeaseDB:
        """The whole of ``path`` as of the last :meth:`read`: kept from a full read in this
        process, else read in full now (``read``: the reader, e.g. with a progress bar)."""
        key = os.path.realpath(path)
        db = self._whole.get(key)
        if db is None:
            if read is None:
                from dhcpfoctl.leases import read_leases as read
            db = self._whole[key] = read(path)
        return db

    def read(self, path: str, config: Config, now: int) -> Followed:
        """Read what was appended to ``path`` since the last time and count new bindings."""
        key = os.path.realpath(path)
        notes: list[str] = []
        store = StateStore(STATE_NAME, key, version=STATE_VERSION) if self.use_state else None
        memory = self._memory.get(key)
        if memory is None and store is not None:
            memory = self._load(store, now, notes)
        appended = LeaseDB()
        # A first run reads the file in full: its journal seeds the history, from that pass.
        journal = Journal() if memory is None else None
        db, resume = read_leases_incremental(
            path, None if memory is None else memory.resume, appended, journal=journal
        )
        # The reader fills the database it is given only when it resumes; a full read
        # returns a new one.
        full = db is not appended
        if full:
            self._whole[key] = db
        elif key in self._whole:
            _merge(self._whole[key], db)
        added = 0
        source = FROM_STATE
        if memory is None:
            # A first run: the journal's transitions since dhcpd's last rewrite seed it.
            assert journal is not None  # filled by that full read
            memory, added = _seeded(journal, config, resume, now)
            source = FROM_JOURNAL
        elif full and not _same_file(memory.resume, resume):
            notes.append(
                f"{path} changed before the point the last run read to"
                " (not dhcpd's own rewrite): new-binding history started over"
            )
            memory = _Memory(resume, Holders.from_table(db.leases), RateHistory(since=now), now)
        else:
            bindings = table_bindings(db.leases, memory.holders)
            if full:
                # dhcpd's rewrite: only real changes since the previous run count.
                oldest = memory.last_run - _REWRITE_SLACK
                bindings = (b for b in bindings if b.at > oldest)
            added = record_bindings(memory.history, config, bindings, now)
            memory.resume, memory.last_run = resume, now
        memory.history.prune(now)
        self._memory[key] = memory
        if store is not None:
            store.save(memory.to_json(), now)
            if store.save_error:
                notes.append(store.save_error)
        return Followed(memory.history, added, notes, source)

    def _load(self, store: StateStore, now: int, notes: list[str]) -> _Memory | None:
        document = store.load(now, self.max_age)
        if document is None:
            if store.path.exists():
                notes.append(
                    f"state {store.path} is older than {format_duration(int(self.max_age))}"
                    " or unusable: ignored, new-binding history starts now"
                )
            return None
        try:
            return _Memory.from_json(document)
        except ValueError:
            notes.append(f"state {store.path} is unusable: ignored, history starts now")
            return None


def _seeded(journal: Journal, config: Config, resume: ResumeState, now: int) -> tuple[_Memory, int]:
    """A first run's memory: holders and history from the file's journal."""
    found = journal_bindings(journal, after=now - HISTORY_KEEP - BUCKET)
    history, added = journal_history(config, found, now)
    return _Memory(resume, found.holders, history, now), added


def _merge(whole: LeaseDB, appended: LeaseDB) -> None:
    """Bring ``whole`` up to date with the records appended after it (later ones win)."""
    table = appended.leases
    for row in range(len(table)):
        whole.leases.upsert(table.lease_at(row))
    whole.failover.update(appended.failover)
    whole.hosts.update(appended.hosts)


def _same_file(before: ResumeState, after: ResumeState) -> bool:
    """A full read of a file that is not the one followed in place: dhcpd's rewrite (a new
    inode) or a compressed file (never resumable), as opposed to one that shrank or whose
    bytes before the resume point changed."""
    return after.inode != before.inode or before.offset < 0
