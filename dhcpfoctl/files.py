"""Opening the files dhcpfoctl reads (lease files, configs, includes, key files), and
replacing the files it writes (state, metrics, the lab's files) atomically.

Only regular files are read: a FIFO without a writer would block the open forever, and a
device such as ``/dev/zero`` never ends, so a reader would grow its buffers without bound.
Standard input (``-`` where a command takes it) is the way to feed a stream.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from dhcpfoctl.errors import InputFileError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: str) -> BinaryIO:
    """``path`` opened for binary reading: OSError if it cannot be opened (the caller words
    it), :class:`InputFileError` at ``path`` if it is not a regular file."""
    if "\0" in path:
        # The OS cannot name such a file; open() would raise ValueError, not OSError.
        raise InputFileError(path.replace("\0", "\\0"), "a file name cannot contain a NUL")
    # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise InputFileError(path, f"{kind}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def replace_atomically(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same directory, created with
    mode 0600 (nothing is ever readable before ``mode`` is set), fsynced, given ``mode`` and
    renamed over ``path``. A reader sees the old file or the new one, never half of one.
    ``OSError`` for the caller to word; the temporary file is removed on failure."""
    import tempfile  # (and random): only for a file written, not at every start-up

    target = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode != 0o600:
            os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
