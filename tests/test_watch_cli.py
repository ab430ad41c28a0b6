"""``dhcpfoctl watch`` against fake OMAPI servers: acting, dry run, restart, hooks, --show."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.failover.wire import load_balance_hash
from dhcpfoctl.model import FailoverState as S
from dhcpfoctl.watch.history import read_journal
from tests.fake_omapi import FakeFailover, FakeOmapiServer

#: The fake's HBA: the primary serves buckets 0..127, the secondary 128..255.
PARTNER_BUCKETS = range(128, 256)


def dead_endpoint() -> tuple[str, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "127.0.0.1", int(sock.getsockname()[1])


def partner_macs(count: int) -> list[bytes]:
    """Hardware addresses whose clients the partner (the secondary) serves."""
    found = []
    for n in range(1000):
        mac = bytes([2, 0, 0, 0, n >> 8, n & 0xFF])
        if load_balance_hash(mac) in PARTNER_BUCKETS:
            found.append(mac)
        if len(found) == count:
            return found
    raise AssertionError("not enough addresses")


def write_leases(path: Path, since: int, *, before: int = 1, after: int = 2) -> None:
    """``before`` partner clients bound before ``since`` (one renews after it) and ``after``
    bound after it."""
    records = []
    macs = partner_macs(before + after)
    for index, mac in enumerate(macs):
        when = since - 100 if index < before else since + 10
        records.append(
            f"lease 10.99.0.{100 + index} {{\n  starts epoch {when};\n  ends epoch {when + 600};\n"
            f"  cltt epoch {when};\n  binding state active;\n"
            f"  hardware ethernet {mac.hex(':')};\n}}\n"
        )
    # the first client renews here after the interruption began: a rebinding
    records.append(records[0].replace(f"epoch {since - 100}", f"epoch {since + 20}"))
    path.write_text("".join(records))


def profile(tmp_path: Path, local: FakeOmapiServer, partner: tuple[str, int], leases: Path) -> Path:
    path = tmp_path / "config.toml"
    host, port = partner
    path.write_text(
        'default = "pair"\n[profiles.pair]\nrelationships = ["lab"]\n'
        f'[profiles.pair.servers.primary]\nhost = "127.0.0.1"\nport = {local.port}\n'
        f'leases = "{leases}"\n'
        f'[profiles.pair.servers.secondary]\nhost = "{host}"\nport = {port}\n'
        f'failover_address = "{host}"\nfailover_port = {port}\n'
    )
    return path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    since = int(time.time()) - 300
    local = FakeOmapiServer(
        {"lab": FakeFailover(local_state=S.COMMUNICATIONS_INTERRUPTED, local_stos=since, mclt=30)}
    )
    leases = tmp_path / "primary.leases"
    write_leases(leases, since)
    with local:
        config = profile(tmp_path, local, dead_endpoint(), leases)
        monkeypatch.setenv("DHCPFOCTL_CONFIG", str(config))
        monkeypatch.delenv("DHCPFOCTL_KEY", raising=False)
        yield local, tmp_path / "watch.jsonl"


def watch(journal: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        [
            "watch", "--once", "--no-dhcp-probe", "--interrupted-for", "60s",
            "--silent-for", "0s", "--timeout", "0.5", "--retries", "1",
            "--journal", str(journal), *args,
        ],
    )  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def writes(fake: FakeOmapiServer) -> list[list[tuple[bytes, bytes]]]:
    return [message.obj for message in fake.received if message.opcode == 3]


def kinds(journal: Path) -> list[str]:
    return [record["kind"] for record in read_journal(journal)]


def test_acts_once_with_every_condition_and_journals_intent_before_outcome(world) -> None:
    local, journal = world
    _code, out, err = watch(journal, "--act")
    assert local.relationships["lab"].local_state == S.PARTNER_DOWN, out + err
    assert writes(local) == [[(b"local-state", b"\x00\x00\x00\x04")]]
    assert "partner-down on primary" in out and "partner-down performed" in out
    records = list(read_journal(journal))
    decision = next(r for r in records if r["kind"] == "decision")
    assert decision["decision"] == "act"
    assert {p["name"]: p["outcome"] for p in decision["probes"]} == {
        "omapi": "refused",
        "failover": "refused",
    }
    assert decision["unanswered"] == {
        "rebinding": 1, "new": 2, "total": 3, "since": decision["unanswered"]["since"],
        "source": decision["unanswered"]["source"],
    }  # fmt: skip
    order = kinds(journal)
    assert order.index("intent") < order.index("outcome")
    outcome = next(r for r in records if r["kind"] == "outcome")
    assert outcome["result"] == "performed" and outcome["document"]["performed"] is True
    # a second run (cron) sees partner-down: nothing more is written
    watch(journal, "--act")
    assert len(writes(local)) == 1


def test_dry_run_says_what_it_would_do_once(world) -> None:
    local, journal = world
    code, out, _ = watch(journal)
    assert "would force partner-down on primary" in out and writes(local) == []
    assert [r["result"] for r in read_journal(journal) if r["kind"] == "outcome"] == ["dry-run"]
    assert code == 3  # the partner cannot be read: UNKNOWN, as status says
    _, out, _ = watch(journal)
    assert "would force" not in out  # once per incident, across runs


def test_restart_with_an_intent_without_outcome_reads_back_first(world) -> None:
    local, journal = world
    incident = f"primary@{local.relationships['lab'].local_stos}"
    journal.write_text(
        json.dumps({"t": 1, "kind": "intent", "relationship": "lab", "incident": incident})
        + "\n"
        + '{"t": 2, "kind": "outc'  # torn by the kill
    )
    _, out, err = watch(journal, "--act")
    assert writes(local) == [], out + err  # read back before anything
    resolved = [r for r in read_journal(journal) if r["kind"] == "resolved"]
    assert [r["reached"] for r in resolved] == [False]
    # the next poll, with every condition still holding, acts (nothing was performed)
    watch(journal, "--act")
    assert len(writes(local)) == 1

    journal2 = journal.with_name("other.jsonl")
    journal2.write_text(
        json.dumps({"t": 1, "kind": "intent", "relationship": "lab", "incident": "primary@1"})
        + "\n"
    )
    local.relationships["lab"].local_state = S.PARTNER_DOWN
    watch(journal2, "--act")
    assert len(writes(local)) == 1
    assert [r["reached"] for r in read_journal(journal2) if r["kind"] == "resolved"] == [True]


def test_a_partner_that_answers_means_stuck_link_not_partner_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    since = int(time.time()) - 300
    state = S.COMMUNICATIONS_INTERRUPTED
    local = FakeOmapiServer({"lab": FakeFailover(local_state=state, local_stos=since)})
    partner = FakeOmapiServer({"lab": FakeFailover(local_state=state, hierarchy=1)})
    leases = tmp_path / "primary.leases"
    write_leases(leases, since)
    with local, partner:
        config = profile(tmp_path, local, ("127.0.0.1", partner.port), leases)
        monkeypatch.setenv("DHCPFOCTL_CONFIG", str(config))
        code, out, _ = watch(tmp_path / "w.jsonl", "--act", "--stuck-after", "10s")
    assert writes(local) == []
    assert "ALERT stuck-link" in out and "no partner-down" in out
    assert code == 1


def test_hooks_get_the_event_on_stdin_and_their_result_is_journalled(world) -> None:
    _, journal = world
    seen = journal.with_name("hook.json")
    hook = (
        f"{sys.executable} -c \"import sys; open('{seen}', 'a').write(sys.stdin.read() + '\\n')\""
    )
    broken = "/nonexistent/hook"
    watch(journal, "--on-transition", hook, "--on-action", broken, "--act")
    events = [json.loads(line) for line in seen.read_text().splitlines()]
    assert {e["kind"] for e in events} == {"transition"}
    hooks = [r for r in read_journal(journal) if r["kind"] == "hook"]
    assert {h["event"] for h in hooks} == {"transition", "action"}
    assert any(str(h["status"]).startswith("not run") for h in hooks)  # logged, not fatal
    assert all(h["status"] == 0 for h in hooks if h["event"] == "transition")


def test_show_prints_states_with_durations_and_decisions(
    world, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, journal = world
    watch(journal, "--act")
    watch(journal)  # the next poll sees partner-down
    result = CliRunner().invoke(app, ["watch", "--show", "--journal", str(journal)])
    assert result.exit_code == 0
    assert "communications-interrupted" in result.stdout and "partner-down" in result.stdout
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(journal.with_name("absent.toml")))
    result = CliRunner().invoke(app, ["watch", "--show", "--json", "--journal", str(journal)])
    doc = json.loads(result.stdout)
    states = {(s["server"], s["state"]): s for s in doc["states"]}
    assert states[("primary", "communications-interrupted")]["duration"] is not None
    assert states[("primary", "partner-down")]["current"] is True
    assert [d["kind"] for d in doc["decisions"]] == ["decision", "outcome"]


def test_json_lines_and_a_second_watcher_on_the_same_journal_is_refused(world) -> None:
    from dhcpfoctl.watch.history import Journal

    _, journal = world
    code, out, _ = watch(journal, "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["kind"] == "start" and records[-1]["kind"] == "stop"
    with Journal(journal):
        code, _, err = watch(journal)
    assert code == 3 and "another watcher" in err


def test_notify_speaks_to_the_systemd_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dhcpfoctl.watch.service import notify

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notify("READY=1")
        assert sock.recv(64) == b"READY=1"
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    notify("WATCHDOG=1")  # best effort: no error


def test_bad_options_are_one_line_errors(world) -> None:
    _, journal = world
    for args, needle in (
        (("--interrupted-for", "soon"), "--interrupted-for"),
        (("--dhcp-probe-from", "here:67"), "--dhcp-probe-from"),
        (("--on-alert", "'unclosed"), "--on-alert"),
    ):
        result = CliRunner().invoke(app, ["watch", "--once", "--journal", str(journal), *args])
        assert result.exit_code == 3 and needle in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_textfile_metrics_follow_each_poll(world) -> None:
    _, journal = world
    textfile = journal.with_name("watch.prom")
    watch(journal, "--textfile", str(textfile))
    text = textfile.read_text()
    assert "dhcpfoctl_watch_" in text and 'relationship="lab"' in text


def test_sighup_reloads_and_sigterm_stops_cleanly(world) -> None:
    import os
    import signal
    import subprocess

    _, journal = world
    process = subprocess.Popen(
        [sys.executable, "-m", "dhcpfoctl", "watch", "--no-dhcp-probe", "--interval", "0.2",
         "--timeout", "0.5", "--retries", "1", "--journal", str(journal)],
        env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert wait_for(lambda: "transition" in kinds(journal))
        process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload" in kinds(journal))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, err
    assert kinds(journal)[-1] == "stop"


def wait_for(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
