"""One exception family for dhcpfoctl, and the one place that maps it to exit statuses.

Errors are split by *who* is at fault, as h11 does: a :class:`LocalError` is the operator's
or the configuration's (a file that cannot be read, a corrupt lease file, an unknown peer
name, a bad key), a :class:`RemoteError` is the server's or the network's (unreachable,
authentication refused, garbage on the socket). The CLI catches :class:`DhcpfoctlError`
once, prints ``str(exc)`` as a single line and exits with :func:`exit_status_for`.

Checks (``status``, ``audit`` and each of their findings) report a :class:`CheckResult`;
:func:`exit_status_for` is the one mapping of results and errors to exit statuses, and
``cli/output.py``'s ``exit_with`` the one exit.

Messages never contain key material: exceptions are built from names and locations only.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class CheckResult(IntEnum):
    """The outcome of a check or of one finding; the value is the monitoring-plugin code.

    "Worse than" follows Nagios: OK < WARNING < UNKNOWN < CRITICAL (:attr:`rank`). A
    CRITICAL finding outweighs not knowing something else: one unreachable server must not
    hide the other's split-brain risk. The values (and so comparisons of the enum itself)
    do not follow that order; aggregate with :func:`worst_of` and sort by :attr:`rank`.
    """

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def rank(self) -> int:
        """Position in the "worse than" order (higher is worse)."""
        return _RANK[self]


_RANK = {CheckResult.OK: 0, CheckResult.WARNING: 1, CheckResult.UNKNOWN: 2, CheckResult.CRITICAL: 3}


def worst_of(results: Iterable[CheckResult]) -> CheckResult:
    """The worst of ``results`` in the :class:`CheckResult` order; OK when there are none."""
    return max(results, key=lambda result: result.rank, default=CheckResult.OK)


class ExitStatus(IntEnum):
    """Documented exit statuses (README "Exit status", man page EXIT STATUS).

    0-3 are a check's :class:`CheckResult` (``audit``, ``status``). Commands that are not
    checks use 0 for success and the codes from 4 up for failures.
    """

    OK = CheckResult.OK.value
    WARNING = CheckResult.WARNING.value
    CRITICAL = CheckResult.CRITICAL.value
    #: Also click's status for a command-line usage error (unknown option, bad value),
    #: except in the monitoring checks, where a usage error is UNKNOWN (cli/main.py).
    USAGE = 2
    UNKNOWN = CheckResult.UNKNOWN.value
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


def exit_status_for(
    outcome: BaseException | CheckResult, *, monitoring: bool = False
) -> ExitStatus:
    """The exit status for a check's result or for an error that ended a command.

    A :class:`CheckResult` exits with its own code. ``monitoring`` commands (``audit``,
    ``status``) report every failure to find out as UNKNOWN (3) — bad input, a server that
    failed, a crash, a command-line usage error — so that a monitor never mistakes "could
    not check" for OK or CRITICAL; only a refusal and an interrupt keep their status.
    """
    if isinstance(outcome, CheckResult):
        return ExitStatus(outcome.value)
    if isinstance(outcome, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    if monitoring and not isinstance(outcome, RefusedError):
        return ExitStatus.UNKNOWN
    if isinstance(outcome, DhcpfoctlError):
        return outcome.exit_status
    return ExitStatus.INPUT_ERROR
