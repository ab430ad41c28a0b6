"""Opening the files dhcpfoctl reads (lease files, configs, includes, key files).

Only regular files are read: a FIFO without a writer would block the open forever, and a
device such as ``/dev/zero`` never ends, so a reader would grow its buffers without bound.
Standard input (``-`` where a command takes it) is the way to feed a stream.
"""

from __future__ import annotations

import os
import stat
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
