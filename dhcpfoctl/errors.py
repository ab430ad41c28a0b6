"""One exception family for dhcpfoctl, and the one place that maps it to exit statuses.

Errors are split by *who* is at fault, as h11 does: a :class:`LocalError` is the operator's
or the configuration's (a file that cannot be read, a corrupt lease file, an unknown peer
name, a bad key), a :class:`RemoteError` is the server's or the network's (unreachable,
authentication refused, garbage on the socket). The CLI catches :class:`DhcpfoctlError`
once, prints ``str(exc)`` as a single line and exits with :func:`exit_status_for`.

Messages never contain key material: exceptions are built from names and locations only.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Documented exit statuses (README "Exit status", man page EXIT STATUS).

    0-3 follow the monitoring-plugin convention used by ``audit`` and ``status``.
    Commands that are not checks use 0 for success and the codes from 4 up for failures.
    """

    OK = 0
    WARNING = 1
    CRITICAL = 2
    #: Also click's status for a command-line usage error (unknown option, bad value),
    #: except in the monitoring checks, where a usage error is UNKNOWN (cli/main.py).
    USAGE = 2
    UNKNOWN = 3
    #: Input unreadable or invalid: a lease or config file, a key file, a profile.
    INPUT_ERROR = 4
    #: The server or peer failed us: unreachable, timeout, refused authentication, garbage.
    REMOTE_ERROR = 5
    #: A safety check refused the requested action (e.g. partner-down while the peer lives).
    REFUSED = 6
    INTERRUPTED = 130


class DhcpfoctlError(Exception):
    """Base of every error dhcpfoctl reports to the operator."""

    exit_status: ExitStatus = ExitStatus.INPUT_ERROR


class LocalError(DhcpfoctlError):
    """The operator's input or configuration is wrong (a file, an option, a key, a name)."""

    exit_status = ExitStatus.INPUT_ERROR


class InputFileError(LocalError):
    """A file could not be read or parsed. ``location`` is ``FILE`` or ``FILE:LINE[:COL]``."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class RefusedError(LocalError):
    """A safety check refused an action; the message says why and how to override."""

    exit_status = ExitStatus.REFUSED


class RemoteError(DhcpfoctlError):
    """A server or peer failed: unreachable, timed out, refused us, or spoke garbage.

    ``host`` names the endpoint (``HOST:PORT``) so that the one-line message says where.
    """

    exit_status = ExitStatus.REMOTE_ERROR

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.message = message


def exit_status_for(exc: BaseException, *, monitoring: bool = False) -> ExitStatus:
    """The exit status for ``exc``.

    ``monitoring`` commands (``audit``, ``status``) report every failure to find out as
    UNKNOWN (3), so that a monitor never mistakes "could not check" for OK or CRITICAL.
    """
    if isinstance(exc, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    if monitoring and isinstance(exc, DhcpfoctlError) and not isinstance(exc, RefusedError):
        return ExitStatus.UNKNOWN
    if isinstance(exc, DhcpfoctlError):
        return exc.exit_status
    return ExitStatus.UNKNOWN if monitoring else ExitStatus.INPUT_ERROR
