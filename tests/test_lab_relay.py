"""The lab's failover-link relay: the mode table, and the real process on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhcpfoctl.lab.relay import TABLE, Action, Event, Mode, RelayCore


def test_table_is_total() -> None:
    assert set(TABLE) == {(mode, event) for mode in Mode for event in Event}


@given(st.lists(st.sampled_from(["cut", "drop", "heal"]), max_size=20))
def test_heal_always_passes_again(commands: list[str]) -> None:
    core = RelayCore()
    for word in commands:
        core.command(word)
    core.command("heal")
    assert core.mode is Mode.PASS
    assert core.accept() is Action.CONNECT
    assert core.data(5) is Action.FORWARD


def test_modes_decide_accept_and_data() -> None:
    core = RelayCore()
    assert core.command("cut") is Action.RESET_ALL
    assert core.accept() is Action.REFUSE
    assert core.command("drop") is Action.KEEP
    assert core.accept() is Action.HOLD
    assert core.data(7) is Action.DISCARD
    assert core.command("heal") is Action.RESET_ALL  # silenced links are not resumed
    assert core.snapshot(0) == {
        "mode": "pass",
        "links": 0,
        "accepted": 1,
        "refused": 1,
        "resets": 0,
        "closes": 0,
        "bytes_forwarded": 0,
        "bytes_discarded": 7,
    }


def test_unknown_command_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown command"):
        RelayCore().command("explode")
    assert RelayCore().command("status") is None


# --- the process ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def control(path: Path, command: str) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return json.loads(data)  # type: ignore[no-any-return]


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[int, socket.socket, Path]]:
    """A relay forwarding a free port to an echo-less target listener we accept on."""
    target = socket.socket()
    target.bind(("127.0.0.1", 0))
    target.listen(8)
    target.settimeout(5)
    listen_port = _free_port()
    sock_path = tmp_path / "relay.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dhcpfoctl.lab.relay",
            "--control",
            str(sock_path),
            "--forward",
            f"{listen_port}:{target.getsockname()[1]}",
        ]
    )
    try:
        for _ in range(200):
            if sock_path.exists():
                break
            time.sleep(0.05)
        assert control(sock_path, "status")["mode"] == "pass"
        yield listen_port, target, sock_path
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        target.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return data


def _closed(sock: socket.socket) -> bool:
    """True once the peer closed or reset (bounded wait)."""
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _refused(port: int) -> bool:
    """A new connection is reset: during connect, or at once after the kernel accepted it."""
    try:
        late = _connect(port)
    except (ConnectionResetError, ConnectionRefusedError):
        return True
    with late:
        return _closed(late)


def test_pass_cut_heal(relay: tuple[int, socket.socket, Path]) -> None:
    port, target, sock_path = relay
    client = _connect(port)
    server, _ = target.accept()
    client.sendall(b"hello")
    assert _recv_exact(server, 5) == b"hello"
    server.sendall(b"back")
    assert _recv_exact(client, 4) == b"back"

    assert control(sock_path, "cut")["mode"] == "cut"
    assert _closed(client)
    assert _closed(server)
    assert _refused(port)
    status = control(sock_path, "status")
    assert status["refused"] == 1 and status["links"] == 0

    assert control(sock_path, "heal")["mode"] == "pass"
    client = _connect(port)
    server, _ = target.accept()
    client.sendall(b"again")
    assert _recv_exact(server, 5) == b"again"
    client.close()
    server.close()


def test_drop_keeps_the_connection_silent_then_heal_resets_it(
    relay: tuple[int, socket.socket, Path],
) -> None:
    port, target, sock_path = relay
    client = _connect(port)
    server, _ = target.accept()
    assert control(sock_path, "drop")["mode"] == "drop"
    client.sendall(b"lost")
    server.sendall(b"lost too")
    # Once the relay has counted both writes as discarded, neither side may hold a byte.
    for _ in range(200):
        if control(sock_path, "status")["bytes_discarded"] == 12:
            break
        time.sleep(0.05)
    assert control(sock_path, "status")["bytes_discarded"] == 12
    for sock in (client, server):
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # open, and nothing arrived
            sock.recv(16)
        sock.setblocking(True)
    held = _connect(port)  # accepted and held: the target never sees it
    for _ in range(200):
        if control(sock_path, "status")["links"] == 2:
            break
        time.sleep(0.05)
    assert control(sock_path, "status")["links"] == 2

    assert control(sock_path, "heal")["mode"] == "pass"
    assert _closed(client)
    assert _closed(server)
    assert _closed(held)
    client = _connect(port)
    server, _ = target.accept()
    server.sendall(b"ok")
    assert _recv_exact(client, 2) == b"ok"


def test_unknown_control_command_answers_an_error(
    relay: tuple[int, socket.socket, Path],
) -> None:
    _, _, sock_path = relay
    assert "unknown command" in str(control(sock_path, "explode")["error"])
    assert control(sock_path, "status")["mode"] == "pass"


def test_a_close_passes_after_the_data_in_pass_mode(
    relay: tuple[int, socket.socket, Path],
) -> None:
    port, target, _ = relay
    client = _connect(port)
    server, _ = target.accept()
    server.sendall(b"last words")
    server.close()
    assert _recv_exact(client, 10) == b"last words"
    assert client.recv(1) == b""  # a clean FIN, not a reset
    client.close()


def test_a_close_is_not_delivered_while_dropping(relay: tuple[int, socket.socket, Path]) -> None:
    port, target, sock_path = relay
    client = _connect(port)
    server, _ = target.accept()
    assert control(sock_path, "drop")["mode"] == "drop"
    server.close()
    for _ in range(200):
        if control(sock_path, "status")["closes"] == 1:
            break
        time.sleep(0.05)
    assert control(sock_path, "status")["closes"] == 1
    client.setblocking(False)
    with pytest.raises(BlockingIOError):  # no EOF: the partner's silence is all it sees
        client.recv(1)
    client.setblocking(True)
    assert control(sock_path, "heal")["resets"] == 1
    assert _closed(client)
