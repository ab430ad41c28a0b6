"""The boundaries issue 10 found unpinned: each test fails when the code is broken by one
small step (a ``<`` for a ``<=``, a dropped re-check, an ignored variable).

Partner-down is driven through the CLI (fake OMAPI servers), so these tests hold whichever
module runs the forced transition.
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from dhcpfoctl.balance import Counts, balance_view
from dhcpfoctl.checks.gather import tcp_port_open
from dhcpfoctl.cli.main import app
from dhcpfoctl.conf import FailoverPeerConfig
from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.leases import read_leases_incremental
from dhcpfoctl.model import FailoverState as S
from dhcpfoctl.model import Role
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.errors import TimedOutError
from tests.fake_omapi import LAB_KEY_SECRET, FakeFailover, FakeOmapiServer

KEY = OmapiKey("lab-key", "hmac-md5", Secret(LAB_KEY_SECRET))
KEY_ARG = "lab-key:ZGhjcGZvY3RsLWxhYmtleQ=="
DATA = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"


@pytest.fixture(autouse=True)
def no_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DHCPFOCTL_KEY", raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def cut_off(**kw: object) -> FakeOmapiServer:
    failover = FakeFailover(
        local_state=S.COMMUNICATIONS_INTERRUPTED,
        local_stos=int(time.time()) - 300,
        mclt=30,
        **kw,  # type: ignore[arg-type]
    )
    return FakeOmapiServer({"lab": failover}, key=KEY)


def writes(fake: FakeOmapiServer) -> list[object]:
    return [message.obj for message in fake.received if message.opcode == 3]


# -- dhcpd's balance arithmetic at its exact thresholds (docs/pool-balance.md §1, §3) -----


PEER = FailoverPeerConfig("p", Role.PRIMARY, "10.0.0.1", "10.0.0.2", mclt=60, split=128)


@pytest.mark.parametrize(("free", "backup", "poolreq"), [(8, 32, False), (7, 33, True)])
def test_poolreq_only_below_the_panic_level(free: int, backup: int, poolreq: bool) -> None:
    # T = 40: thresh (40·15+50)/100 = 6, panic -12; lts = (8-32)/2 = -12 = panic: no POOLREQ
    # (dhcpd: lts < panic); (7-33)/2 = -13 sends one.
    view = balance_view(Counts(total=40, free=free, backup=backup), PEER, Role.PRIMARY, 0)
    assert (view.panic, view.lts, view.poolreq) == (-12, (free - backup) // 2, poolreq)


@pytest.mark.parametrize(("misbalance", "imbalanced"), [(10, False), (9, True)])
def test_imbalanced_only_above_the_threshold(misbalance: int, imbalanced: bool) -> None:
    # T = 100 used free-state leases, F = 80: lts 30; pass 2 gives used leases down to
    # hold = 10. With max-lease-misbalance 10 the level ends equal to thresh (balanced),
    # with 9 above it (IMBALANCED): dhcpd tests lts > thresh.
    peer = FailoverPeerConfig(
        "p", Role.PRIMARY, None, None, max_lease_misbalance=misbalance, max_lease_ownership=10
    )
    counts = Counts(total=100, free=80, backup=20, free_never_used=0)
    view = balance_view(counts, peer, Role.PRIMARY, 0)
    # next_min: no lease of the queue hashes to the peer (pass 2 alone).
    assert (view.hold, view.thresh, view.next_min.lts) == (10, misbalance, 10)
    assert view.next_min.imbalanced is imbalanced
    word = "IMBALANCED" if imbalanced else "balanced"
    assert view.balanced_line("net", view.next_min).startswith(f"{word} pool net ")


# -- partner-down's safety checks, through the CLI ---------------------------------------


@pytest.mark.parametrize("behaviour", ["bad-startup", "garbage"])
def test_a_partner_omapi_that_answers_with_an_error_counts_as_alive(behaviour: str) -> None:
    """Something answered on the partner's OMAPI port: a dhcpd (or something) lives there, so
    partner-down is refused even though no state could be read."""
    fake, partner = cut_off(), FakeOmapiServer({}, behaviour=behaviour)
    with fake, partner:
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner", partner.endpoint, "--partner-failover", dead_endpoint(), "--yes",
        )  # fmt: skip
    assert code == 6, err
    assert "refusing partner-down: the partner looks alive" in err
    assert f"partner OMAPI {partner.endpoint} answers (but: " in err
    assert writes(fake) == []


class _MovesBeforeTheWrite(FakeOmapiServer):
    """The local server leaves communications-interrupted between the checks and the write
    (its partner came back): it answers the connection that writes in ``normal``."""

    def _handle(self, conn: socket.socket) -> None:
        if self.connections >= 2:
            self.relationships["lab"].local_state = S.NORMAL
        super()._handle(conn)


def test_the_local_state_is_checked_again_on_the_write_connection() -> None:
    failover = FakeFailover(
        local_state=S.COMMUNICATIONS_INTERRUPTED, local_stos=int(time.time()) - 300, mclt=30
    )
    fake = _MovesBeforeTheWrite({"lab": failover})
    with fake:
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab",
            "--partner", dead_endpoint(), "--partner-failover", dead_endpoint(), "--yes",
        )  # fmt: skip
    assert fake.connections >= 2
    assert code == 6, err
    assert "state changed to normal while checking; nothing written" in err
    assert writes(fake) == []


def test_the_partner_probe_uses_peer_address_from_dhcpd_conf(tmp_path: Path) -> None:
    """Without --partner-failover or a profile, the dhcpd.conf's ``peer address``/``peer
    port`` say where the partner's failover port is: a listening one is a live partner."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        conf = tmp_path / "dhcpd.conf"
        conf.write_text(
            'failover peer "lab" { primary; address 127.0.0.1; port 1;'
            f" peer address 127.0.0.1; peer port {port}; mclt 30; split 128;"
            " load balance max seconds 3; }\n"
            "subnet 10.0.0.0 netmask 255.255.255.0 {\n"
            '  pool { failover peer "lab"; range 10.0.0.10 10.0.0.20; }\n}\n'
        )
        fake = cut_off()
        with fake:
            code, out, err = run(
                "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
                "--config", str(conf), "--yes", "--json",
            )  # fmt: skip
    assert code == 6, err
    assert json.loads(out)["partner"]["failover"] == f"127.0.0.1:{port}"
    assert f"partner failover port 127.0.0.1:{port} accepts TCP connections" in err
    assert writes(fake) == []


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run dhcpfoctl with a pseudo-terminal as stdin/stdout/stderr, answering nothing."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "dhcpfoctl", *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    shown, deadline = b"", time.monotonic() + 30
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    shown += os.read(master, 4096)
                except OSError:
                    break
        return process.wait(timeout=10), shown.decode(errors="replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_ci_suppresses_the_prompt_even_on_a_terminal() -> None:
    """Pipelines often allocate a pseudo-terminal: with $CI set nothing is asked (a prompt
    would hang the job) and, without --yes, nothing is written."""
    fake = cut_off()
    env = {**os.environ, "CI": "true"}
    with fake:
        code, shown = _on_a_terminal(
            ["partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
             "--partner", dead_endpoint(), "--partner-failover", dead_endpoint()],
            env,
        )  # fmt: skip
    assert code == 6, shown
    assert "[y/N]" not in shown
    assert "not on a terminal: pass --yes to confirm, or --dry-run" in shown
    assert writes(fake) == []


# -- status: a critical finding outranks not knowing something else ---------------------


def test_critical_outranks_unknown_in_status() -> None:
    """One server unreachable (UNKNOWN) must not hide the other's CRITICAL state: the exit
    status is 2, as the Nagios plugin guidelines order them (OK, WARNING, UNKNOWN, CRITICAL
    from least to most urgent), whatever order the code uses."""
    now = int(time.time())
    stuck = FakeFailover(local_state=S.RESOLUTION_INTERRUPTED, local_stos=now - 60)
    with FakeOmapiServer({"lab": stuck}) as server:
        code, out, _ = run(
            "status", "--server", server.endpoint, "--server", dead_endpoint(),
            "--peer", "lab", "--json",
        )  # fmt: skip
    doc = json.loads(out)
    assert {f["health"] for f in doc["findings"]} >= {"unknown", "critical"}
    assert (code, doc["health"], doc["exit_status"]) == (2, "critical", 2)


# -- the rest issue 10 lists as untested -------------------------------------------------


def test_a_file_replaced_by_another_with_the_same_tail_is_read_again(tmp_path: Path) -> None:
    """Same size, same last bytes, new inode: only the inode tells the files apart, and a
    resume would miss the changed records before the saved offset."""
    path = tmp_path / "dhcpd.leases"
    record = "lease 10.0.0.{} {{\n  binding state {};\n}}\n"
    path.write_text(record.format(1, "active") + record.format(2, "free"))
    db, resume = read_leases_incremental(path, None, None)
    replacement = tmp_path / "new.leases"
    replacement.write_text(record.format(1, "backup") + record.format(2, "free"))
    assert replacement.stat().st_size == resume.size
    replacement.rename(path)
    assert path.stat().st_ino != resume.inode
    db, _ = read_leases_incremental(path, resume, db)
    assert db.leases.get("10.0.0.1").binding_state.keyword == "backup"  # type: ignore[union-attr]


def test_the_commands_never_modify_their_input(tmp_path: Path) -> None:
    conf, leases = tmp_path / "dhcpd.conf", tmp_path / "dhcpd.leases"
    conf.write_bytes((DATA / "primary.conf").read_bytes())
    leases.write_bytes((DATA / "primary.leases").read_bytes())
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (conf, leases)}
    for args in (
        ["leases", str(leases)],
        ["balance", "-c", str(conf), "-l", str(leases), "--json"],
        ["audit", "-c", str(conf), "-l", str(leases)],
        ["audit", "-c", str(conf), "-l", str(leases), "--json"],  # the second reads its state
    ):
        code, _, err = run(*args)
        assert code in (0, 1), (args, err)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (conf, leases)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dhcpd.conf", "dhcpd.leases"]


def test_the_progress_bar_is_drawn_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dhcpfoctl.cli import output

    screen = io.StringIO()
    # The output layer asks rich only when stderr may be a terminal (here: rich's own
    # variable says so), otherwise it knows there is no bar to draw without importing rich.
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setattr(
        output, "stderr_console", lambda: Console(file=screen, force_terminal=True, width=100)
    )
    db = output.read_leases_with_progress(str(DATA / "primary.leases"))
    assert len(db.leases) > 0
    shown = screen.getvalue()
    assert "reading leases" in shown and "━" in shown
    size_kb = (DATA / "primary.leases").stat().st_size / 1000
    assert f"{size_kb:.1f}/{size_kb:.1f} kB" in shown  # it reached the end
    monkeypatch.setattr(
        output, "stderr_console", lambda: Console(file=io.StringIO(), force_terminal=False)
    )
    with output.byte_progress("reading leases") as progress:
        assert progress is None
    monkeypatch.delenv("TTY_COMPATIBLE")
    monkeypatch.setattr(output, "stderr_console", lambda: pytest.fail("rich asked off a terminal"))
    with output.byte_progress("reading leases") as progress:
        assert progress is None


def test_a_tcp_connect_timeout_is_no_answer_not_a_refusal() -> None:
    """A listener whose accept queue is full drops new SYNs: the connect times out, which
    says nothing about the partner (None), unlike a refusal (False)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        host, port = listener.getsockname()
        fillers = []
        try:
            for _ in range(8):  # bounded: the queue holds one or two on Linux
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex((host, port))
                fillers.append(filler)
            started = time.monotonic()
            assert tcp_port_open(host, port, 0.3) is None
            assert time.monotonic() - started < 2
            with pytest.raises(TimedOutError, match=r"no TCP connection within 0\.3s"):
                OmapiClient(host, port, None, timeout=0.3).connect()
        finally:
            for filler in fillers:
                filler.close()


def test_a_server_that_closes_cleanly_is_reported_not_crashed() -> None:
    """A server that reads the client's startup and then closes (FIN, nothing unread, so no
    reset): one line saying so, exit UNKNOWN, no traceback."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                received = b""
                while len(received) < 8:  # the 8-byte OMAPI startup
                    chunk = conn.recv(8 - len(received))
                    if not chunk:
                        break
                    received += chunk

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        code, out, err = run("status", "--server", endpoint, "--peer", "lab", "--json")
        server.join(10)
    doc = json.loads(out)
    assert code == 3 and doc["health"] == "unknown"
    (finding,) = doc["findings"]
    assert finding["code"] == "unreachable"
    assert finding["message"] == f"{endpoint}: OMAPI startup: server closed the connection"
    assert "Traceback" not in err


def test_an_accepted_connection_is_a_live_port() -> None:
    with FakeOmapiServer({}, behaviour="close") as server:
        host, port = server.endpoint.rsplit(":", 1)
        assert tcp_port_open(host, int(port), 1.0) is True


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o600, False)])
def test_key_file_readable_by_others_is_warned_through_the_cli(
    tmp_path: Path, mode: int, warned: bool
) -> None:
    key_file = tmp_path / "omapi.key"
    key_file.write_text('key lab-key { algorithm hmac-md5; secret "ZGhjcGZvY3RsLWxhYmtleQ=="; }\n')
    key_file.chmod(mode)
    with FakeOmapiServer({"lab": FakeFailover(local_stos=int(time.time()))}, key=KEY) as server:
        code, _, err = run(
            "status", "--server", server.endpoint, "--peer", "lab", "--key-file", str(key_file)
        )
    assert code == 0, err
    assert (f"key file {key_file} is readable by group/others" in err) is warned
    assert "ZGhjcGZvY3Rs" not in err
