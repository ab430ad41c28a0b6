"""What a check remembers between runs: one small JSON document per key.

``audit`` in cron and ``status`` from a monitoring system run again and again on the same
lease file; a :class:`StateStore` lets a run pick up where the previous one stopped (the
incremental reader's resume point, a rate history, the last observations). The state is a
cache, never a source of truth:

* it lives in :func:`state_dir` (``$XDG_STATE_HOME/dhcpfoctl``, else
  ``~/.local/state/dhcpfoctl``), one file per (name, key), the key (e.g. a lease file's
  realpath) hashed into the file name; deleting any of it at any time only costs history;
* :meth:`StateStore.load` trusts nothing it cannot check: an absent, unreadable, corrupt,
  oversized, other-version, other-key, future-dated or older-than-``max_age`` document is
  ``None``, and nothing it reads raises;
* :meth:`StateStore.save` replaces the document atomically (temporary file, fsync, rename,
  fsync of the directory) under an exclusive ``flock`` on a sibling lock file, so two runs
  saving at once leave one of their two documents, never a mix. A failure to save never
  raises: the run's result stands, and :attr:`StateStore.save_error` says why for the
  caller to warn.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from dhcpfoctl.files import replace_atomically

#: Largest document :meth:`StateStore.load` reads by default; anything bigger is not ours.
#: The largest rate history, a lease file's active clients, takes about 2.5 MB per million
#: addresses.
MAX_BYTES: Final = 64 << 20
#: A document dated this far after ``now`` comes from a clock that was stepped back (or a
#: forged file): its ages cannot be trusted.
FUTURE_SLACK: Final = 60.0

_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/dhcpfoctl``, or ``~/.local/state/dhcpfoctl`` (not created here)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME", "")
    # The XDG spec: a relative value is invalid and must be ignored.
    if not base or not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".local", "state")
    return Path(base) / "dhcpfoctl"


class StateStore:
    """One remembered JSON document for ``name`` (what remembers: ``audit``, ``status``…)
    and ``key`` (what it is about: a lease file's realpath).

    ``version`` is the caller's schema version: a document saved under another one is not
    loaded, so a changed layout starts over instead of being misread.
    """

    def __init__(
        self,
        name: str,
        key: str,
        *,
        directory: Path | None = None,
        version: int = 1,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"state name {name!r}: lower-case letters, digits, - and _ only")
        self.name = name
        self.key = key
        self.version = version
        #: ``compare`` keeps both lease files' folded contents: more than a rate history.
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else state_dir()
        # hashlib loads OpenSSL (~3.7 MiB, ~3 ms): only for a store actually opened.
        import hashlib

        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        self.path = self.directory / f"{name}-{digest}.json"
        self.lock_path = self.directory / f"{name}-{digest}.lock"
        #: Why the last :meth:`save` failed (one line), or ``None`` when it succeeded.
        self.save_error: str | None = None

    def load(self, now: float, max_age: float) -> dict[str, Any] | None:
        """The saved document if it can be trusted at ``now``, else ``None`` (never raises
        on what the file holds). The document carries ``saved_at`` and ``version``."""
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(self.max_bytes + 1)
        except (OSError, ValueError):
            return None
        if len(raw) > self.max_bytes:
            return None
        try:
            document = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return None
        if not isinstance(document, dict):
            return None
        saved_at = document.get("saved_at")
        if (
            document.get("version") != self.version
            or document.get("key") != self.key
            or isinstance(saved_at, bool)
            or not isinstance(saved_at, int | float)
            or not math.isfinite(saved_at)
        ):
            return None
        age = now - saved_at
        if age > max_age or age < -FUTURE_SLACK:
            return None
        return document

    def save(self, data: Mapping[str, Any], now: float) -> None:
        """Replace the document with ``data`` plus ``saved_at``/``version``/``key``.

        Never raises for the file system (a full disk, a read-only home, a directory that
        cannot be created): :attr:`save_error` is set instead. ``data`` must be JSON-able
        without NaN or infinities (a programming error otherwise: ``ValueError``/``TypeError``).
        """
        document = {**data, "saved_at": now, "version": self.version, "key": self.key}
        payload = json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
        try:
            self._write(payload)
        except OSError as exc:
            self.save_error = f"cannot save state {self.path}: {exc.strerror or exc}"
        else:
            self.save_error = None

    def _write(self, payload: bytes) -> None:
        with self._locked():
            replace_atomically(self.path, payload)
            _fsync_directory(self.directory)

    def _locked(self) -> _Lock:
        # 0700: the state names lease files and holds client counts; it is nobody else's.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _Lock(self.lock_path)


class _Lock:
    """An exclusive ``flock`` on ``path`` for the duration of a ``with`` block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # closing releases the lock


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-finite number {token} in state")
