"""``partner-down`` and ``set-state`` safety rules, against fake OMAPI servers."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.model import FailoverState as S
from tests.fake_omapi import LAB_KEY_SECRET, FakeFailover, FakeOmapiServer

KEY = OmapiKey("lab-key", "hmac-md5", Secret(LAB_KEY_SECRET))
KEY_ARG = "lab-key:ZGhjcGZvY3RsLWxhYmtleQ=="


@pytest.fixture(autouse=True)
def no_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DHCPFOCTL_KEY", raising=False)


def dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def writes(fake: FakeOmapiServer) -> list[list[tuple[bytes, bytes]]]:
    return [message.obj for message in fake.received if message.opcode == 3]


def local_server(state: S = S.COMMUNICATIONS_INTERRUPTED, **kw: object) -> FakeOmapiServer:
    failover = FakeFailover(local_state=state, local_stos=int(time.time()) - 300, mclt=30, **kw)  # type: ignore[arg-type]
    return FakeOmapiServer({"lab": failover}, key=KEY)


def test_succeeds_when_partner_is_dead_and_verifies_by_read_back() -> None:
    fake = local_server()
    dead, dead_failover = dead_endpoint(), dead_endpoint()
    with fake:
        code, out, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner", dead, "--partner-failover", dead_failover, "--yes", "--json",
        )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["performed"] is True and doc["after"]["local_state"] == "partner-down"
    assert doc["partner"]["alive"] is False and doc["partner"]["omapi_answers"] is False
    assert doc["partner"]["failover_port_open"] is False
    assert doc["peer_leases_usable_at"] == doc["after"]["local_stos"] + 30
    assert writes(fake) == [[(b"local-state", b"\x00\x00\x00\x04")]]  # 4-byte integer
    # Progress goes to stderr with --json: why the partner counts as down, then the result.
    assert f"partner check: partner OMAPI {dead} does not answer" in err
    assert f"partner check: partner failover port {dead_failover} refuses connections" in err
    assert err.index("verified") < err.index("countdown")
    assert fake.relationships["lab"].local_state == S.PARTNER_DOWN


def test_refuses_while_partner_omapi_answers() -> None:
    fake, partner = local_server(), FakeOmapiServer({"lab": FakeFailover()})
    with fake, partner:
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner", partner.endpoint, "--yes",
        )  # fmt: skip
    assert code == 6 and len(err.strip().splitlines()) == 1  # one line, however long
    assert "refusing partner-down: the partner looks alive" in err
    assert f"partner OMAPI {partner.endpoint} answers: it is normal" in err
    assert writes(fake) == []


def test_refuses_while_partner_failover_port_accepts() -> None:
    fake, listener = local_server(), socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    with fake, listener:
        port = listener.getsockname()[1]
        code, out, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner-failover", f"127.0.0.1:{port}", "--yes", "--json",
        )  # fmt: skip
    assert code == 6 and "accepts TCP connections" in err and writes(fake) == []
    # --json still documents the refusal: the probes and the line of stderr.
    doc = json.loads(out)
    assert doc["performed"] is False and doc["partner"]["failover_port_open"] is True
    assert doc["error"] in err and "refusing partner-down" in doc["error"]


def test_force_overrides_liveness_but_prints_the_danger() -> None:
    fake, partner = local_server(), FakeOmapiServer({"lab": FakeFailover()})
    with fake, partner:
        code, out, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner", partner.endpoint, "--yes", "--force",
        )  # fmt: skip
    assert code == 0, err
    assert "DANGER: --force given although the partner looks alive" in err
    assert "split brain" in err and "verified" in out


def test_refuses_without_any_way_to_check_the_partner() -> None:
    fake = local_server()
    with fake:
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG, "--yes"
        )
    assert code == 6 and "liveness cannot be checked" in err and writes(fake) == []


@pytest.mark.parametrize("state", [S.NORMAL, S.RECOVER, S.POTENTIAL_CONFLICT, S.STARTUP])
def test_refuses_unless_communications_or_resolution_interrupted(state: S) -> None:
    fake = local_server(state)
    with fake:
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner", dead_endpoint(), "--yes", "--force",
        )  # fmt: skip
    assert code == 6
    assert f"is {state.keyword}; partner-down may only be forced from" in err
    assert writes(fake) == []


def test_dry_run_and_unconfirmed_runs_write_nothing() -> None:
    fake = local_server(S.RESOLUTION_INTERRUPTED)
    with fake:
        args = ["partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
                "--partner", dead_endpoint()]  # fmt: skip
        code, out, _ = run(*args, "--dry-run")
        assert code == 0 and "dry run: nothing was changed" in out and "MCLT 30s" in out
        code, _, err = run(*args)  # CliRunner's stdin is not a terminal
        assert code == 6 and "pass --yes" in err
    assert writes(fake) == []


def test_write_accepted_but_state_not_reached_is_a_remote_error() -> None:
    fake = local_server(accept_writes=False)
    with fake:
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner", dead_endpoint(), "--yes",
        )  # fmt: skip
    assert code == 5
    assert "accepted local-state=partner-down but reads back communications-interrupted" in err


def on_a_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run ``dhcpfoctl ARGS`` with a pseudo-terminal as stdin/stdout/stderr; type ``answer``
    at the confirmation prompt. Returns the exit status and everything shown."""
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "dhcpfoctl", *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    shown, answered, deadline = b"", False, time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.2)[0]:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            shown += chunk
            if not answered and b"[y/N]" in shown:
                os.write(master, answer)
                answered = True
        return process.wait(timeout=10), shown.decode(errors="replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(("answer", "code"), [(b"y\n", 0), (b"n\n", 6)])
def test_a_terminal_is_asked_before_writing(answer: bytes, code: int) -> None:
    fake = local_server()
    with fake:
        args = ["partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
                "--partner", dead_endpoint()]  # fmt: skip
        status, shown = on_a_terminal(args, answer)
    assert status == code, shown
    assert f"Set partner-down on {fake.endpoint}? [y/N]" in shown
    if code == 0:
        assert "verified: " in shown and writes(fake) == [[(b"local-state", b"\x00\x00\x00\x04")]]
    else:
        assert "not confirmed; nothing was changed" in shown and writes(fake) == []


def test_already_partner_down_is_a_no_op() -> None:
    fake = local_server(S.PARTNER_DOWN)
    with fake:
        code, out, _ = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG, "--yes"
        )
    assert code == 0 and "already partner-down" in out and writes(fake) == []


def test_wrong_key_unknown_key_and_unknown_peer_are_remote_errors() -> None:
    fake = local_server()
    with fake:
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--yes",
            "--key", "lab-key:d3Jvbmctc2VjcmV0LXh5eg==",
        )  # fmt: skip
        assert code == 5 and "INVALIDKEY" in err and "d3Jvbmct" not in err
        # A key the server does not know: retried unsigned, said before the refusal.
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--yes",
            "--key", "other-key:ZGhjcGZvY3RsLWxhYmtleQ==",
        )  # fmt: skip
        note = err.index(f"note: {fake.endpoint} does not know the key from --key")
        assert code == 5 and note < err.index("NOKEYS") and "an OMAPI key it knows" in err
        assert "ZGhjcGZv" not in err
        code, _, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "nope", "--key", KEY_ARG, "--yes"
        )
        assert code == 5 and "no failover relationship named 'nope'" in err
    assert writes(fake) == []


@pytest.mark.parametrize("state", ["normal", "12", "startup", "conflict-done", "bogus"])
def test_set_state_only_allows_operator_transitions(state: str) -> None:
    code, _, err = run("set-state", state, "--server", "127.0.0.1:1", "--peer", "lab", "--yes")
    assert code == 4 and "only partner-down, shutdown, recover may be set" in err


@pytest.mark.parametrize(("state", "code"), [(S.SHUTDOWN, 0), (S.NORMAL, 6), (S.PARTNER_DOWN, 6)])
def test_set_state_recover_only_leaves_a_forced_shutdown(state: S, code: int) -> None:
    fake = local_server(state)
    with fake:
        result = run(
            "set-state", "recover", "--server", fake.endpoint, "--peer", "lab",
            "--key", KEY_ARG, "--yes",
        )  # fmt: skip
    assert result[0] == code
    expected = [[(b"local-state", b"\x00\x00\x00\x06")]] if code == 0 else []
    assert writes(fake) == expected


def test_set_state_shutdown_from_normal_needs_no_partner_probe() -> None:
    fake = local_server(S.NORMAL)
    with fake:
        code, out, err = run(
            "set-state", "shutdown", "--server", fake.endpoint, "--peer", "lab",
            "--key", KEY_ARG, "--yes",
        )  # fmt: skip
    assert code == 0, err
    assert writes(fake) == [[(b"local-state", b"\x00\x00\x00\x08")]]
    assert "verified" in out


def test_partner_and_failover_address_from_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = local_server()
    with fake:
        profile = tmp_path / "config.toml"
        profile.write_text(
            '[profiles.lab]\nrelationships = ["lab"]\n'
            f'[profiles.lab.servers.primary]\nhost = "127.0.0.1"\nport = {dead_endpoint()[10:]}\n'
            f'failover_address = "127.0.0.1"\nfailover_port = {dead_endpoint()[10:]}\n'
            f'[profiles.lab.servers.secondary]\nhost = "127.0.0.1"\nport = {fake.port}\n'
            f'key = "{KEY_ARG}"\n'
        )
        profile.chmod(0o600)
        monkeypatch.setenv("DHCPFOCTL_CONFIG", str(profile))
        code, out, err = run(
            "partner-down", "--profile", "lab", "--server", "secondary", "--yes", "--json"
        )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["server"] == "secondary" and doc["partner"]["omapi"].startswith("127.0.0.1:")
    assert doc["partner"]["failover"] is not None and doc["partner"]["alive"] is False
    assert "readable by group" not in err


def test_silent_partner_is_not_refused_but_cautioned() -> None:
    fake, silent = local_server(), FakeOmapiServer(behaviour="silent")
    with fake, silent:
        code, out, err = run(
            "partner-down", "--server", fake.endpoint, "--peer", "lab", "--key", KEY_ARG,
            "--partner", silent.endpoint, "--timeout", "0.3", "--yes", "--json",
        )  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc["partner"]["alive"] is False
    assert doc["partner"]["down_confirmed"] is False
    assert "make sure it is down, not only cut off" in doc["warnings"][0]
    assert "caution:" in err


def test_keyed_partner_from_profile_is_read_with_its_own_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = FakeOmapiServer({"lab": FakeFailover(local_state=S.COMMUNICATIONS_INTERRUPTED)})
    partner = FakeOmapiServer({"lab": FakeFailover(hierarchy=1)}, key=KEY)
    with local, partner:
        profile = tmp_path / "config.toml"
        profile.write_text(
            '[profiles.lab]\nrelationships = ["lab"]\n'
            f'[profiles.lab.servers.a]\nhost = "127.0.0.1"\nport = {local.port}\n'
            f'[profiles.lab.servers.b]\nhost = "127.0.0.1"\nport = {partner.port}\n'
            f'key = "{KEY_ARG}"\n'
        )
        profile.chmod(0o600)
        monkeypatch.setenv("DHCPFOCTL_CONFIG", str(profile))
        code, _, err = run("partner-down", "--profile", "lab", "--server", "a", "--yes")
    assert code == 6
    assert f"partner OMAPI {partner.endpoint} answers: it is normal" in err
    assert writes(local) == []


def test_partner_down_is_set_state_with_the_state_fixed() -> None:
    """One definition serves both commands: same options, same defaults, own help."""
    import typer.main

    from dhcpfoctl.cli.main import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="dhcpfoctl")

    def options(name: str) -> list[tuple[tuple[str, ...], str | None, object]]:
        command = root.get_command(ctx, name)
        return [
            (tuple(p.opts), p.help, p.default)
            for p in command.get_params(ctx)
            if p.param_type_name == "option"
        ]

    assert options("partner-down") == options("set-state")
    assert all(help_text for _, help_text, _ in options("partner-down"))
    assert "partner-down" in (root.get_command(ctx, "partner-down").help or "")
