"""Sockets inside a named network namespace, made from within the test process.

Python 3.11 has no ``os.setns``; this calls libc's ``setns(fd, CLONE_NEWNET)`` with ctypes.
A network namespace belongs to a thread on Linux, so the switch happens in a short-lived
thread of its own: it opens ``/run/netns/NAME`` (``ip netns add`` creates it; ``/var/run``
is tried too), enters the namespace, creates the socket and ends. The calling thread never
changes namespace. A socket keeps the namespace it was created in for its whole life:
``bind``, ``connect``, ``accept`` and I/O on it work from any thread and go through that
namespace's interfaces, routes and ports (tests/integration/test_external_endpoint_real.py
checks this with the source address and with an address reachable only in the namespace).

* :func:`socket_in_namespace` ``(namespace, family=AF_INET, type=SOCK_STREAM)``
* :func:`listener_in_namespace` ``(namespace, address, port, backlog=1)``: bound, listening
  TCP socket (``SO_REUSEADDR`` set, as dhcpd sets it).
* :func:`connect_in_namespace` ``(namespace, (host, port), timeout=5.0)``: a connected TCP
  socket; its timeout stays ``timeout`` for later I/O.

Needs CAP_SYS_ADMIN (root). Errors: :class:`NamespaceError` (a ``LookupError`` subclass,
:class:`NamespaceNotFound`, when no such namespace exists).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import socket
import threading
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
NETNS_DIRS = (Path("/run/netns"), Path("/var/run/netns"))
#: How long the helper thread may take; it only does a few system calls.
_THREAD_TIMEOUT = 5.0

_libc: ctypes.CDLL | None = None


class NamespaceError(OSError):
    """A socket could not be made in a network namespace (setns or socket failed)."""


class NamespaceNotFound(NamespaceError, LookupError):
    """No network namespace of that name (no /run/netns/NAME)."""


def _setns() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    function = _libc.setns
    function.argtypes = (ctypes.c_int, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


def namespace_path(namespace: str) -> Path:
    """The bind-mounted namespace file of ``namespace``; :class:`NamespaceNotFound` if none."""
    if not namespace or "/" in namespace or namespace in {".", ".."}:
        raise NamespaceNotFound(f"not a network namespace name: {namespace!r}")
    for directory in NETNS_DIRS:
        path = directory / namespace
        if path.exists():
            return path
    raise NamespaceNotFound(
        f"no network namespace {namespace!r} (looked in "
        + ", ".join(str(d) for d in NETNS_DIRS)
        + ")"
    )


def socket_in_namespace(
    namespace: str,
    family: socket.AddressFamily = socket.AF_INET,
    type: socket.SocketKind = socket.SOCK_STREAM,
) -> socket.socket:
    """A new socket that lives in network namespace ``namespace`` (see the module doc)."""
    path = namespace_path(namespace)
    result: list[socket.socket] = []
    failure: list[BaseException] = []

    def make() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            failure.append(NamespaceNotFound(f"network namespace {namespace!r} vanished"))
            return
        except OSError as exc:
            failure.append(NamespaceError(exc.errno, f"cannot open {path}: {exc.strerror}"))
            return
        try:
            if _setns()(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                failure.append(
                    NamespaceError(
                        errno, f"setns({path}, CLONE_NEWNET) failed: {os.strerror(errno)}"
                    )
                )
                return
            result.append(socket.socket(family, type))
        except BaseException as exc:  # handed to the caller
            failure.append(exc)
        finally:
            os.close(fd)

    # This thread ends right after, so its namespace switch never leaks to other code.
    worker = threading.Thread(target=make, name=f"netns-{namespace}", daemon=True)
    worker.start()
    worker.join(_THREAD_TIMEOUT)
    if worker.is_alive():  # not expected: setns and socket do not block
        raise NamespaceError(f"making a socket in {namespace!r} took over {_THREAD_TIMEOUT}s")
    if failure:
        raise failure[0]
    return result[0]


def listener_in_namespace(
    namespace: str, address: str, port: int, backlog: int = 1
) -> socket.socket:
    """A TCP socket in ``namespace`` bound to ``address:port`` and listening."""
    sock = socket_in_namespace(namespace, _family(address), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_in_namespace(
    namespace: str, endpoint: tuple[str, int], timeout: float = 5.0
) -> socket.socket:
    """A TCP socket in ``namespace`` connected to ``endpoint`` (at most ``timeout`` s)."""
    host, port = endpoint
    sock = socket_in_namespace(namespace, _family(host), socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def socket_namespace_inode(sock: socket.socket) -> int | None:
    """The inode of the network namespace ``sock`` lives in (``SIOCGSKNS``), if the kernel
    tells; compare with ``os.stat(namespace_path(name)).st_ino``."""
    siocgskns = 0x894C
    with contextlib.suppress(OSError):
        fd = fcntl.ioctl(sock.fileno(), siocgskns)
        try:
            return os.fstat(fd).st_ino
        finally:
            os.close(fd)
    return None


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET
