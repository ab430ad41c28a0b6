"""The lab server's dhcpd.leases: an append-only journal with fsync and periodic rewrites.

As dhcpd 4.4 (server/db.c): every change is appended as a complete record, and the records
buffered during one loop iteration are written and fsynced by :meth:`LeaseJournal.commit`
before any DHCPACK or BNDACK leaves. At start and then, when something was written, once per
rewrite period the whole database is written to ``FILE.<unix time>``, fsynced, the previous
``FILE~`` removed, ``FILE`` hard-linked to ``FILE~`` and the new file renamed over ``FILE``
(``new_lease_file``). ``FILE`` therefore always exists and holds every committed record,
whatever step a crash interrupts. Beyond dhcpd, the directory is fsynced after the rename
(else a power cut could bring back the old file without the records committed since) and a
failed append is cut off again (else the next append would follow a broken record).

Records come from :mod:`dhcpfoctl.leases.writer` and files are read by
:func:`dhcpfoctl.leases.read_leases`, so the journal is what ``leases``/``balance`` read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import Final

from dhcpfoctl.errors import InputFileError, LocalError
from dhcpfoctl.leases import read_leases
from dhcpfoctl.leases.writer import format_failover, format_lease, write_leases
from dhcpfoctl.model import FailoverPeerRecord, Lease, LeaseDB

#: dhcpd's LEASE_REWRITE_PERIOD (seconds).
LEASE_REWRITE_PERIOD: Final = 3600.0
#: Mode of a lease file created from nothing (dhcpd's, before the umask).
_NEW_FILE_MODE: Final = 0o664
_ENCODING: Final = "utf-8"
#: Lease text is bytes held in str by surrogate escapes (see leases.syntax.encode_text).
_ERRORS: Final = "surrogateescape"


class LeaseJournal:
    """The lease file of one server; single-threaded (the server's loop owns it)."""

    def __init__(self, path: Path, *, rewrite_period: float) -> None:
        # Use open(): a journal only exists on a file that was read and rewritten.
        self.path = path
        self.rewrite_period = rewrite_period
        self._fd: int | None = None
        self._pending: list[str] = []
        #: The last state record of each relationship: rewrites write these even when the
        #: caller's database still holds an older one (leases live in the shared LeaseDB,
        #: failover states only in the endpoints).
        self._failover: dict[str, FailoverPeerRecord] = {}
        self._written = 0  # records committed since the last rewrite (dhcpd's ``count``)
        self._rewritten_at = 0.0

    @classmethod
    def open(
        cls, path: Path, *, now: float, rewrite_period: float = LEASE_REWRITE_PERIOD
    ) -> tuple[LeaseJournal, LeaseDB]:
        """Read ``path`` (absent: an empty database) and rewrite it as dhcpd does at start.

        A cut-off last record (a crash while appending) is dropped; any other problem raises
        the reader's ``FILE:LINE`` error before anything on disk is touched.
        """
        db = _read(path)
        journal = cls(path, rewrite_period=rewrite_period)
        journal.rewrite(db, now)
        return journal, db

    def record_lease(self, lease: Lease) -> None:
        """Buffer the complete current form of ``lease`` (written by :meth:`commit`)."""
        self._pending.append(format_lease(lease))

    def record_failover(self, record: FailoverPeerRecord) -> None:
        """Buffer a failover state record (dhcpd writes the saved state, never startup)."""
        self._pending.append(format_failover(record))
        self._failover[record.name] = record

    def commit(self) -> None:
        """Append the buffered records and fsync: they survive a crash once this returns."""
        if not self._pending:
            return
        fd = self._journal_fd()
        data = "".join(self._pending).encode(_ENCODING, _ERRORS)
        start = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            # Cut the partial append off so that the next one follows a complete record;
            # the records stay buffered for the next commit.
            try:
                os.ftruncate(fd, start)
                os.lseek(fd, start, os.SEEK_SET)
            except OSError:
                pass  # the reader drops a cut-off last record anyway
            raise _write_error(self.path, "cannot append to", exc) from None
        self._written += len(self._pending)
        self._pending.clear()

    def rewrite_due(self, now: float) -> bool:
        """dhcpd's test after each commit: records written and the period passed."""
        return self._written > 0 and now - self._rewritten_at > self.rewrite_period

    def rewrite(self, db: LeaseDB, now: float) -> None:
        """Replace the file by ``db`` (which must hold every buffered lease change) and the
        last recorded failover states, keeping the previous generation as ``FILE~``. On
        failure the old file stays the journal."""
        self.commit()  # as dhcpd: buffered records are durable even if the rewrite fails
        path = self.path
        temporary = path.with_name(f"{path.name}.{int(now)}")
        backup = path.with_name(f"{path.name}~")
        # dhcpd always writes its own byte order; a value read from the file is kept, since
        # the text it qualifies is kept verbatim.
        db = dataclasses.replace(
            db,
            failover={**db.failover, **self._failover},
            byte_order=db.byte_order or f"{sys.byteorder}-endian",
        )
        try:
            fd = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _NEW_FILE_MODE
            )
        except OSError as exc:
            raise _write_error(temporary, "cannot create", exc) from None
        try:
            _keep_owner_and_mode(fd, path)
            with open(  # a text stream on our fd, left open (closefd=False)
                fd, "w", encoding=_ENCODING, errors=_ERRORS, buffering=1 << 20, closefd=False
            ) as out:
                write_leases(db, out)
            os.fsync(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(backup)
            with contextlib.suppress(FileNotFoundError):  # a new file has no previous one
                os.link(path, backup)
            os.rename(temporary, path)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise _write_error(path, "cannot rewrite", exc) from None
        old, self._fd = self._fd, fd
        if old is not None:
            os.close(old)
        self._written = 0
        self._rewritten_at = now
        try:
            _fsync_directory(path.parent)
        except OSError as exc:
            raise _write_error(path.parent, "cannot sync the directory of", exc) from None

    def close(self) -> None:
        """Commit what is buffered and close the file (idempotent)."""
        if self._fd is None:
            return
        try:
            self.commit()
        finally:
            os.close(self._fd)
            self._fd = None

    def _journal_fd(self) -> int:
        if self._fd is None:
            raise LocalError(f"{self.path}: the lease journal is closed")
        return self._fd


def _read(path: Path) -> LeaseDB:
    """The database in ``path``; only a cut-off last record is tolerated."""
    if not path.exists():
        return LeaseDB()
    # Strict reads forwards and parses every record, superseded ones included: nothing
    # corrupt may be lost by the rewrite that follows.
    try:
        return read_leases(path, strict=True)
    except InputFileError as exc:
        db = read_leases(path)
        problems = db.stats.warnings
        if (
            len(problems) == 1
            and problems[0].truncated_tail
            and exc.location == f"{problems[0].file}:{problems[0].line}"
        ):
            return db
        raise


def _keep_owner_and_mode(fd: int, path: Path) -> None:
    """Give the new file the mode and owner of the one it replaces, as dhcpd's PARANOIA
    build does for the owner (its new files are 0664 less the umask, like ours)."""
    try:
        old = os.stat(path)
    except FileNotFoundError:
        return
    os.fchmod(fd, old.st_mode & 0o7777)
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        os.fchown(fd, old.st_uid, old.st_gid)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, what: str, exc: OSError) -> LocalError:
    return LocalError(f"{path}: {what} the lease file: {exc.strerror or exc}")
