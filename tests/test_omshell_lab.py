"""The lab's OMAPI server over real TCP on loopback, queried by real clients.

A test-only thread server accepts on 127.0.0.1, runs one :class:`ServerSession` per
connection over :class:`LabObjects` on a failover pair from tests/failover_harness.py,
and is queried by (a) dhcpfoctl's own client and CLI (``status``, ``set-state``,
``partner-down``), (b) pypureomapi, (c) Debian's ``omshell``, keyed with HMAC-MD5 and
unkeyed. omshell's output is compared with what it printed against a real dhcpd 4.4.3
(tests/data/real-dhcpd-4.4.3/pcap/*.omshell.txt): same attribute names, order and sizes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pypureomapi import Omapi, OmapiErrorNotFound, OmapiMessage
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.lab.objects import LabObjects
from dhcpfoctl.model import BindingState, FailoverState, HardwareType, Lease
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.errors import InvalidKeyError, NoKeysError
from dhcpfoctl.omapi.failover import read_failover, read_pool_counts, write_local_state
from dhcpfoctl.omapi.server_session import ServerSession
from tests.failover_harness import Pair, fresh_pair
from tests.fake_omapi import VECTORS

S = FailoverState
SECRET_B64 = "ZGhjcGZvY3RsLWxhYmtleQ=="
KEY = OmapiKey("lab-key", "hmac-md5", Secret(base64.b64decode(SECRET_B64)))
KEY_ARG = f"lab-key:{SECRET_B64}"
OMSHELL = shutil.which("omshell")
OMSHELL_TIMEOUT = 20.0
MAC = bytes.fromhex("029900010001")


class LabOmapiServer:
    """One connection at a time on 127.0.0.1; every socket call has a timeout."""

    def __init__(self, lab: LabObjects, clock: Callable[[], float], *, keyed: bool = False) -> None:
        self.lab = lab
        self.clock = clock
        self.keys = {KEY.name: KEY} if keyed else {}
        self.required = KEY.name if keyed else None
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def __enter__(self) -> LabOmapiServer:
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()
        assert not self._thread.is_alive()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(0.2)
                self._connection(conn)

    def _connection(self, conn: socket.socket) -> None:
        session = ServerSession(self.lab, keys=self.keys, required_key=self.required)
        conn.sendall(session.data_to_send())
        while not self._stop.is_set() and session.close_reason is None:
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            session.receive_data(data, self.clock())
            conn.sendall(session.data_to_send())


@pytest.fixture
def pair() -> Pair:
    pair = fresh_pair()
    assert pair.settle_normal()
    lease = Lease(
        "10.20.0.11",
        starts=int(pair.now),
        ends=int(pair.now) + 120,
        cltt=int(pair.now),
        binding_state=BindingState.ACTIVE,
        hardware_type=HardwareType.ETHERNET,
        hardware_address=MAC,
    )
    pair.P.update_lease(lease, pair.now)
    assert pair.settle_normal()
    return pair


def interrupted(pair: Pair) -> Pair:
    pair.cut()
    assert pair.run_until(lambda p: p.states == (S.COMMUNICATIONS_INTERRUPTED,) * 2)
    return pair


def serve(pair: Pair, *, keyed: bool = False, secondary: bool = False) -> LabOmapiServer:
    endpoint, config = (
        (pair.S, pair.secondary_config) if secondary else (pair.P, pair.primary_config)
    )
    lab = LabObjects({"lab": endpoint}, endpoint.db, config.pools, on_shutdown=lambda now: None)
    return LabOmapiServer(lab, lambda: pair.now, keyed=keyed)


# -- (a) dhcpfoctl's own client and CLI --------------------------------------------------


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "hmac-md5"])
def test_dhcpfoctl_client_reads_failover_pool_and_sets_partner_down(
    pair: Pair, keyed: bool
) -> None:
    interrupted(pair)
    key = KEY if keyed else None
    with serve(pair, keyed=keyed) as server, OmapiClient("127.0.0.1", server.port, key) as client:
        info = read_failover(client, "lab")
        assert info.local_state is S.COMMUNICATIONS_INTERRUPTED and info.mclt == 30
        counts = read_pool_counts(client, "10.20.0.11")
        assert counts.lease_count == 30
        write_local_state(client, info, S.PARTNER_DOWN)
        assert read_failover(client, "lab").local_state is S.PARTNER_DOWN
        lease = client.open_object("lease", [("hardware-address", MAC)])
        assert lease.integer("state") == BindingState.ACTIVE
    assert pair.P.state is S.PARTNER_DOWN


def test_dhcpfoctl_client_refusals_from_a_keyed_lab(pair: Pair) -> None:
    with serve(pair, keyed=True) as server:
        with pytest.raises(NoKeysError), OmapiClient("127.0.0.1", server.port) as client:
            read_failover(client, "lab")
        wrong = OmapiKey("lab-key", "hmac-md5", Secret(b"wrong"))
        with pytest.raises(InvalidKeyError), OmapiClient("127.0.0.1", server.port, wrong) as c:
            read_failover(c, "lab")


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def no_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DHCPFOCTL_KEY", raising=False)


def dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.usefixtures("no_profiles")
def test_cli_status_then_partner_down_against_the_lab(pair: Pair) -> None:
    with serve(pair, keyed=True) as primary, serve(pair, keyed=True, secondary=True) as second:
        code, out, err = run_cli(
            "status", "--server", primary.endpoint, "--server", second.endpoint,
            "--peer", "lab", "--key", KEY_ARG, "--json",
        )  # fmt: skip
        assert code == 0, err
        assert json.dumps(json.loads(out)).count('"normal"') >= 2
        interrupted(pair)
        code, out, err = run_cli(
            "partner-down", "--server", primary.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner", dead_endpoint(), "--partner-failover", dead_endpoint(), "--yes", "--json",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["after"]["local_state"] == "partner-down"
        # The CLI's own rule, as against dhcpd: shutdown is forced only from normal.
        code, _, err = run_cli(
            "set-state", "shutdown", "--server", second.endpoint, "--peer", "lab",
            "--key", KEY_ARG, "--yes",
        )  # fmt: skip
        assert code == 6 and "only be forced from normal" in err
    assert (pair.P.state, pair.S.state) == (S.PARTNER_DOWN, S.COMMUNICATIONS_INTERRUPTED)


@pytest.mark.usefixtures("no_profiles")
def test_cli_set_state_shutdown_then_recover_against_the_lab(pair: Pair) -> None:
    with serve(pair) as primary:
        for state, expected in (("shutdown", S.SHUTDOWN), ("recover", S.RECOVER)):
            code, out, err = run_cli(
                "set-state", state, "--server", primary.endpoint, "--peer", "lab",
                "--partner", dead_endpoint(), "--partner-failover", dead_endpoint(), "--yes",
            )  # fmt: skip
            assert code == 0, err + out
            assert "verified" in out and pair.P.state is expected


# -- (b) pypureomapi -------------------------------------------------------------------


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "hmac-md5"])
def test_pypureomapi_lookups_and_local_state_update(pair: Pair, keyed: bool) -> None:
    interrupted(pair)
    with serve(pair, keyed=keyed) as server:
        auth = {"username": b"lab-key", "key": SECRET_B64.encode()} if keyed else {}
        omapi = Omapi("127.0.0.1", server.port, timeout=5, **auth)  # type: ignore[arg-type]
        try:
            assert omapi.lookup_mac("10.20.0.11") == "02:99:00:01:00:01"
            state = omapi.lookup_failoverstate("lab", "local-state")
            assert struct.unpack("!I", state)[0] == S.COMMUNICATIONS_INTERRUPTED  # type: ignore[arg-type]
            with pytest.raises(OmapiErrorNotFound):
                omapi.lookup_by_failoverstate(name="nope")
            opened = omapi.query_server(
                OmapiMessage(
                    opcode=1,
                    tid=-1,
                    message=[(b"type", b"failover-state")],
                    obj=[(b"name", b"lab")],
                )
            )
            update = OmapiMessage.update(opened.handle)
            update.obj = [(b"local-state", struct.pack("!I", int(S.PARTNER_DOWN)))]
            reply = omapi.query_server(update)
            assert reply.opcode == 5 and dict(reply.message)[b"result"] == b"\0\0\0\0"
        finally:
            omapi.close()
    assert pair.P.state is S.PARTNER_DOWN


# -- (c) omshell -------------------------------------------------------------------------


def omshell(port: int, body: str, *, key: str | None = None) -> str:
    assert OMSHELL is not None, "omshell (isc-dhcp-client) is not installed"
    lines = ["server 127.0.0.1", f"port {port}"]
    if key:
        lines.append(f"key {key}")
    script = "\n".join([*lines, "connect", body, ""])
    done = subprocess.run(
        [OMSHELL],
        input=script,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # omshell reports connect failures on stderr
        text=True,
        timeout=OMSHELL_TIMEOUT,
        check=False,
    )
    return done.stdout


_ATTRIBUTE = re.compile(r"^([a-z-]+) = (.*)$")


def last_object(output: str) -> list[tuple[str, int]]:
    """(name, value size in bytes) of the object omshell printed last."""
    block = output.rsplit("obj: ", 1)[-1].splitlines()[1:]
    found = []
    for line in block:
        if match := _ATTRIBUTE.match(line):
            value = match.group(2)
            size = len(value) - 2 if value.startswith('"') else value.count(":") + 1
            found.append((match.group(1), size))
    return found


def golden(name: str) -> list[tuple[str, int]]:
    """What omshell printed for the same script against dhcpd 4.4.3 (addresses as 4 bytes)."""
    attributes = last_object((VECTORS / f"{name}.omshell.txt").read_text())
    return [(n, 4 if n.endswith("-address") and s == 8 else s) for n, s in attributes]


OPEN_FAILOVER = 'new failover-state\nset name = "lab"\nopen'


@pytest.mark.parametrize(
    ("keyed", "vector"),
    [(False, "omapi-noauth-open-refresh"), (True, "omapi-md5-open")],
    ids=["unkeyed", "hmac-md5"],
)
def test_omshell_opens_failover_state_like_dhcpd(pair: Pair, keyed: bool, vector: str) -> None:
    with serve(pair, keyed=keyed, secondary=keyed) as server:
        out = omshell(
            server.port, OPEN_FAILOVER + "\nrefresh", key=f"lab-key {SECRET_B64}" if keyed else None
        )
    assert last_object(out) == golden(vector), out
    assert "local-state = 00:00:00:02" in out
    assert f"hierarchy = 00:00:00:0{int(keyed)}" in out


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "hmac-md5"])
def test_omshell_sets_partner_down(pair: Pair, keyed: bool) -> None:
    interrupted(pair)
    key = f"lab-key {SECRET_B64}" if keyed else None
    with serve(pair, keyed=keyed) as server:
        out = omshell(server.port, OPEN_FAILOVER + "\nset local-state = 4\nupdate", key=key)
        assert "local-state = 4" in out and "can't" not in out, out  # omshell's own echo
        after = omshell(server.port, OPEN_FAILOVER, key=key)
    assert "local-state = 00:00:00:04" in after
    assert pair.P.state is S.PARTNER_DOWN


def test_omshell_lease_lookup_like_dhcpd(pair: Pair) -> None:
    with serve(pair) as server:
        out = omshell(server.port, "new lease\nset ip-address = 10.20.0.11\nopen")
    assert last_object(out) == golden("omapi-lease-lookup"), out
    assert "hardware-address = 02:99:00:01:00:01" in out and "state = 00:00:00:02" in out


@pytest.mark.parametrize(
    ("vector", "keyed", "key", "script"),
    [
        (
            "omapi-failover-name-notfound",
            False,
            None,
            'new failover-state\nset name = "nope"\nopen',
        ),
        ("omapi-noauth-to-keyed-server", True, None, OPEN_FAILOVER),
        ("omapi-key-to-unkeyed-server", False, f"lab-key {SECRET_B64}", OPEN_FAILOVER),
        ("omapi-wrong-secret", True, "lab-key d3JvbmcgLXNlY3JldA==", OPEN_FAILOVER),
    ],
)
def test_omshell_refusals_read_as_against_dhcpd(
    pair: Pair, vector: str, keyed: bool, key: str | None, script: str
) -> None:
    with serve(pair, keyed=keyed) as server:
        out = omshell(server.port, script, key=key)
    expected = (VECTORS / f"{vector}.omshell.txt").read_text()
    said = [line for line in expected.splitlines() if "can't" in line or "dhcpctl" in line]
    assert said and all(line.lstrip("> ") in out for line in said), out
