"""The failover link between the lab's two servers, through a TCP relay the lab controls.

One process forwards each listening port to its target (a server's failover port) on
127.0.0.1. Modes:

- ``pass``: bytes flow both ways.
- ``cut``: existing links are reset and new connections accepted then reset at once, so a
  dhcpd-style peer notices the partner is gone immediately (its connect or read fails).
- ``drop``: TCP connections stay open but every byte is discarded both ways; new
  connections are accepted and held without reaching the target. Only the peers'
  max-response-delay can notice, as with a silently lossy network.
- ``heal``: back to ``pass``; links held or silenced during ``drop`` are reset so that the
  peers reconnect cleanly rather than resume a stream with a hole in it.

Control: a unix socket taking one line command per connection (``cut``, ``drop``, ``heal``,
``status``) and answering one JSON line (mode and counters).

    python -m dhcpfoctl.lab.relay --control SOCK --forward LISTEN:TARGET [--forward …]

The decisions live in :class:`RelayCore` and its one table; :func:`serve` is the thin
selectors loop around it. Exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from dhcpfoctl.times import iso_utc

HOST = "127.0.0.1"
#: Bytes buffered per direction of a link; a full buffer stops reading from its source.
BUFFER_LIMIT = 256 * 1024
_CONTROL_LINE_LIMIT = 256


class Mode(Enum):
    PASS = "pass"
    CUT = "cut"
    DROP = "drop"


class Event(Enum):
    ACCEPT = "accept"  # a peer connected to a listening port
    DATA = "data"  # bytes arrived on a link, from either side
    CLOSED = "closed"  # one side of a link closed its connection (EOF)
    CUT = "cut"  # control commands
    DROP = "drop"
    HEAL = "heal"


class Action(Enum):
    CONNECT = "connect"  # ACCEPT: open the link to the target
    REFUSE = "refuse"  # ACCEPT: reset the new connection at once
    HOLD = "hold"  # ACCEPT: keep it open, never reach the target; CLOSED: keep the other
    # side open and silent (a lossy network would not deliver the FIN either)
    FINISH = "finish"  # CLOSED: deliver what is buffered, then close the other side too
    FORWARD = "forward"  # DATA: pass the bytes on
    DISCARD = "discard"  # DATA: drop the bytes
    KEEP = "keep"  # command: existing links stay as they are
    RESET_ALL = "reset-all"  # command: reset every existing link


#: (mode, event) -> (next mode, action). The whole behaviour of the relay.
TABLE: dict[tuple[Mode, Event], tuple[Mode, Action]] = {
    (Mode.PASS, Event.ACCEPT): (Mode.PASS, Action.CONNECT),
    (Mode.PASS, Event.DATA): (Mode.PASS, Action.FORWARD),
    (Mode.PASS, Event.CLOSED): (Mode.PASS, Action.FINISH),
    (Mode.PASS, Event.CUT): (Mode.CUT, Action.RESET_ALL),
    (Mode.PASS, Event.DROP): (Mode.DROP, Action.KEEP),
    (Mode.PASS, Event.HEAL): (Mode.PASS, Action.KEEP),
    (Mode.CUT, Event.ACCEPT): (Mode.CUT, Action.REFUSE),
    # No link survives a cut; bytes racing the reset are not delivered.
    (Mode.CUT, Event.DATA): (Mode.CUT, Action.DISCARD),
    (Mode.CUT, Event.CLOSED): (Mode.CUT, Action.FINISH),
    (Mode.CUT, Event.CUT): (Mode.CUT, Action.KEEP),
    (Mode.CUT, Event.DROP): (Mode.DROP, Action.KEEP),
    (Mode.CUT, Event.HEAL): (Mode.PASS, Action.KEEP),
    (Mode.DROP, Event.ACCEPT): (Mode.DROP, Action.HOLD),
    (Mode.DROP, Event.DATA): (Mode.DROP, Action.DISCARD),
    (Mode.DROP, Event.CLOSED): (Mode.DROP, Action.HOLD),
    (Mode.DROP, Event.CUT): (Mode.CUT, Action.RESET_ALL),
    (Mode.DROP, Event.DROP): (Mode.DROP, Action.KEEP),
    (Mode.DROP, Event.HEAL): (Mode.PASS, Action.RESET_ALL),
}

_COMMANDS = {"cut": Event.CUT, "drop": Event.DROP, "heal": Event.HEAL}


@dataclass
class RelayCore:
    """The relay's mode and counters; every decision is a lookup in :data:`TABLE`."""

    mode: Mode = Mode.PASS
    accepted: int = 0
    refused: int = 0
    resets: int = 0
    #: Connections a peer or a target closed (EOF), whatever was done with the other side.
    closes: int = 0
    bytes_forwarded: int = 0
    bytes_discarded: int = 0

    def _step(self, event: Event) -> Action:
        self.mode, action = TABLE[(self.mode, event)]
        return action

    def accept(self) -> Action:
        action = self._step(Event.ACCEPT)
        if action is Action.REFUSE:
            self.refused += 1
        else:
            self.accepted += 1
        return action

    def data(self, size: int) -> Action:
        action = self._step(Event.DATA)
        if action is Action.FORWARD:
            self.bytes_forwarded += size
        else:
            self.bytes_discarded += size
        return action

    def closed(self) -> Action:
        self.closes += 1
        return self._step(Event.CLOSED)

    def command(self, line: str) -> Action | None:
        """Apply a control command (``cut``/``drop``/``heal``); None for ``status``.

        Raises :class:`ValueError` for anything else.
        """
        word = line.strip().lower()
        if word == "status":
            return None
        if word not in _COMMANDS:
            raise ValueError(f"unknown command {word[:40]!r} (cut, drop, heal, status)")
        return self._step(_COMMANDS[word])

    def snapshot(self, links: int) -> dict[str, object]:
        return {
            "mode": self.mode.value,
            "links": links,
            "accepted": self.accepted,
            "refused": self.refused,
            "resets": self.resets,
            "closes": self.closes,
            "bytes_forwarded": self.bytes_forwarded,
            "bytes_discarded": self.bytes_discarded,
        }


# --- I/O: a thin selectors loop ------------------------------------------------------


@dataclass(eq=False)
class _Link:
    """One accepted connection and, unless held, its connection to the target; a side
    that closed while the link was silent is None."""

    down: socket.socket | None
    up: socket.socket | None
    #: Bytes waiting to be written to ``up`` (from ``down``) and to ``down`` (from ``up``).
    to_up: bytearray = field(default_factory=bytearray)
    to_down: bytearray = field(default_factory=bytearray)
    connecting: bool = False


def log(text: str) -> None:
    """One line on stderr (the lab sends it to relay.log), stamped like the servers' logs."""
    sys.stderr.write(f"{iso_utc(int(time.time()))} relay {text}\n")
    sys.stderr.flush()


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0): the peer sees the connection reset, not a clean EOF."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Relay:
    def __init__(self, forwards: Sequence[tuple[int, int]], control: Path) -> None:
        self.core = RelayCore()
        self.selector = selectors.DefaultSelector()
        self.links: set[_Link] = set()
        self.targets: dict[socket.socket, int] = {}
        for listen_port, target_port in forwards:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, listen_port))
            listener.listen(16)
            listener.setblocking(False)
            self.targets[listener] = target_port
            self.selector.register(listener, selectors.EVENT_READ, ("listen", listener))
        # The socket appears at its path only once it listens (bound under a temporary
        # name no longer than its own, then renamed): whoever waits for the path may connect
        # at once.
        control.unlink(missing_ok=True)
        pending = control.with_suffix(".new")
        pending.unlink(missing_ok=True)
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control.bind(str(pending))
        os.chmod(pending, 0o600)
        self.control.listen(4)
        os.replace(pending, control)
        self.control.setblocking(False)
        self.selector.register(self.control, selectors.EVENT_READ, ("control", None))
        self.control_lines: dict[socket.socket, bytearray] = {}

    # -- links

    def _accept(self, listener: socket.socket) -> None:
        try:
            down, _ = listener.accept()
        except OSError:
            return
        action = self.core.accept()
        if action is Action.REFUSE:
            _reset(down)
            return
        down.setblocking(False)
        up: socket.socket | None = None
        link = _Link(down=down, up=None)
        if action is Action.CONNECT:
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.setblocking(False)
            code = up.connect_ex((HOST, self.targets[listener]))
            if code not in (0, errno.EINPROGRESS):
                up.close()
                _reset(down)  # target down: the peer sees what it would see directly
                return
            link.up, link.connecting = up, code != 0
        self.links.add(link)
        self._update(link)

    def _update(self, link: _Link) -> None:
        """(Re)register both sockets for what they can do now: bounded buffers decide."""
        if link.down is not None:
            down_events = selectors.EVENT_WRITE if link.to_down else 0
            if len(link.to_up) < BUFFER_LIMIT:
                down_events |= selectors.EVENT_READ
            self._register(link.down, down_events, link)
        if link.up is not None:
            if link.connecting:
                up_events = selectors.EVENT_WRITE
            else:
                up_events = selectors.EVENT_WRITE if link.to_up else 0
                if len(link.to_down) < BUFFER_LIMIT:
                    up_events |= selectors.EVENT_READ
            self._register(link.up, up_events, link)

    def _register(self, sock: socket.socket, events: int, link: _Link) -> None:
        try:
            key = self.selector.get_key(sock)
        except KeyError:
            if events:
                self.selector.register(sock, events, ("link", link))
            return
        if not events:
            self.selector.unregister(sock)
        elif key.events != events:
            self.selector.modify(sock, events, ("link", link))

    def _close(self, link: _Link, *, graceful: bool = False) -> None:
        """Reset both sides, or (``graceful``) hand each what is buffered for it, best
        effort, and close with a FIN, as the end of a direct connection would."""
        for sock, pending in ((link.down, link.to_down), (link.up, link.to_up)):
            if sock is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)
            if not graceful:
                _reset(sock)
                continue
            if pending and not (sock is link.up and link.connecting):
                with contextlib.suppress(OSError):
                    sock.send(pending)
            sock.close()
        self.links.discard(link)

    def _forget(self, link: _Link, sock: socket.socket) -> None:
        """Drop the side ``sock`` of a silent link; the other side stays open."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)
        sock.close()
        if sock is link.up:
            link.up = None
        else:
            link.down = None
        if link.up is None and link.down is None:
            self.links.discard(link)

    def _reset_all(self) -> None:
        for link in list(self.links):
            self._close(link)
            self.core.resets += 1

    def _on_link(self, link: _Link, sock: socket.socket, mask: int) -> None:
        is_up = sock is link.up
        if is_up and link.connecting:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._close(link)
                return
            link.connecting = False
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._close(link)
                return
            if data == b"":
                if self.core.closed() is Action.FINISH:
                    self._close(link, graceful=True)
                else:
                    self._forget(link, sock)
                    if link in self.links:
                        self._update(link)
                return
            if data and self.core.data(len(data)) is Action.FORWARD:
                (link.to_down if is_up else link.to_up).extend(data)
        if mask & selectors.EVENT_WRITE:
            buffer = link.to_down if not is_up else link.to_up
            if buffer:
                try:
                    sent = sock.send(buffer)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self._close(link)
                    return
                del buffer[:sent]
        if link in self.links:
            self._update(link)

    # -- control

    def _accept_control(self) -> None:
        try:
            conn, _ = self.control.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.control_lines[conn] = bytearray()
        self.selector.register(conn, selectors.EVENT_READ, ("command", conn))

    def _on_command(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(_CONTROL_LINE_LIMIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        line = self.control_lines[conn]
        line.extend(data)
        if data and b"\n" not in line and len(line) < _CONTROL_LINE_LIMIT:
            return
        self.selector.unregister(conn)
        del self.control_lines[conn]
        text = line.split(b"\n", 1)[0].decode("ascii", "replace")
        try:
            before, links = self.core.mode, len(self.links)
            if self.core.command(text) is Action.RESET_ALL:
                self._reset_all()
            if self.core.mode is not before:
                reset = f", {links} link(s) reset" if not self.links and links else ""
                log(f"failover link {before.value} -> {self.core.mode.value}{reset}")
            reply: dict[str, object] = self.core.snapshot(len(self.links))
        except ValueError as exc:
            reply = {"error": str(exc)}
        try:
            conn.setblocking(True)
            conn.settimeout(2.0)  # a tiny reply on a unix socket; never stall the relay long
            conn.sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            pass
        conn.close()

    # -- loop

    def serve(self) -> None:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.selector.register(wake_r, selectors.EVENT_READ, ("wake", None))
        log("forwarding " + ", ".join(f"{port} -> {target}" for port, target in self._forwards()))
        while not stopping:
            for key, mask in self.selector.select():
                kind, obj = key.data
                if kind == "listen":
                    self._accept(obj)
                elif kind == "control":
                    self._accept_control()
                elif kind == "command":
                    self._on_command(obj)
                elif kind == "link" and obj in self.links:
                    self._on_link(obj, key.fileobj, mask)  # type: ignore[arg-type]
                elif kind == "wake":
                    wake_r.recv(64)
        self._reset_all()
        for listener in self.targets:
            listener.close()
        self.control.close()
        log("stopped")

    def _forwards(self) -> list[tuple[int, int]]:
        return [(listener.getsockname()[1], target) for listener, target in self.targets.items()]


def _forward(text: str) -> tuple[int, int]:
    listen, _, target = text.partition(":")
    if not (listen.isdigit() and target.isdigit()):
        raise argparse.ArgumentTypeError(f"expected LISTEN_PORT:TARGET_PORT, got {text!r}")
    return int(listen), int(target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dhcpfoctl.lab.relay", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--control", required=True, type=Path, help="unix control socket")
    parser.add_argument(
        "--forward", required=True, action="append", type=_forward, metavar="LISTEN:TARGET"
    )
    args = parser.parse_args(argv)
    try:
        relay = Relay(args.forward, args.control)
    except OSError as exc:
        parser.exit(1, f"relay: cannot listen: {exc.strerror}\n")
    relay.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
