"""The integration harness itself: a real pair comes up, and nothing of it outlives a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from dhcpfoctl.model import FailoverState

from .realpair import (
    DHCPD,
    LAB_KEY,
    REGISTRY,
    LabError,
    PairConfig,
    RealPair,
    _trim_torn_tail,
    reap_stale_runs,
)

integration = pytest.mark.integration


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _assert_gone(prefix: str, pids: list[int], workdir: Path | None = None) -> None:
    assert not {ns for ns in _namespaces() if ns.startswith(prefix)}
    assert not [link for link in os.listdir("/sys/class/net") if link.startswith(prefix)]
    assert not [pid for pid in pids if _alive(pid)]
    assert not (REGISTRY / f"{prefix}.owner").exists()
    if workdir is not None:
        assert not workdir.exists()


@integration
def test_pair_reaches_normal_in_its_own_namespaces_and_leaves_nothing(
    require_real_dhcpd: None,
) -> None:
    with RealPair(PairConfig(primary_key=LAB_KEY, mclt=17)) as pair:
        views = {role: pair.omapi_states(role) for role in ("primary", "secondary")}
        assert views["primary"] is not None and views["secondary"] is not None
        assert (views["primary"].local_state, views["primary"].partner_state) == (
            FailoverState.NORMAL,
            FailoverState.NORMAL,
        )
        assert views["secondary"].local_state == FailoverState.NORMAL
        assert (views["primary"].hierarchy, views["secondary"].hierarchy) == (0, 1)
        assert views["secondary"].mclt == 17  # learned from the primary
        pids = []
        for server in (pair.primary, pair.secondary):
            assert server.pid is not None
            pids.append(server.pid)
            assert os.readlink(f"/proc/{server.pid}/exe") == DHCPD
            # dhcpd really runs in the namespace the harness created for it
            assert (
                os.stat(f"/proc/{server.pid}/ns/net").st_ino
                == os.stat(f"/run/netns/{server.namespace}").st_ino
            )
        assert set(pair.namespaces) <= _namespaces()
        assert any("Both servers normal" in line for line in pair.log_lines("primary"))
        prefix, workdir = pair.prefix, pair.workdir
    _assert_gone(prefix, pids, workdir)


@integration
def test_two_pairs_run_side_by_side(make_pair: Callable[[PairConfig], RealPair]) -> None:
    first, second = make_pair(PairConfig()), make_pair(PairConfig(relationship="other"))
    assert first.prefix != second.prefix
    assert first.primary.omapi_host != second.primary.omapi_host
    for pair in (first, second):
        view = pair.omapi_states("secondary")
        assert view is not None and view.local_state == FailoverState.NORMAL


@integration
def test_cleanup_happens_when_the_test_body_is_interrupted(require_real_dhcpd: None) -> None:
    with pytest.raises(KeyboardInterrupt), RealPair() as pair:
        prefix, workdir = pair.prefix, pair.workdir
        pids = [pair.primary.pid or 0, pair.secondary.pid or 0]
        raise KeyboardInterrupt
    _assert_gone(prefix, pids, workdir)


@integration
def test_config_dhcpd_rejects_is_reported_and_cleaned_up(require_real_dhcpd: None) -> None:
    pair = RealPair(PairConfig(failover_extra="no-such-statement 1;"))
    with pytest.raises(LabError, match=r"dhcpd -t rejects .*primary\.conf"), pair:
        pass
    _assert_gone(pair.prefix, [], pair.workdir)


@integration
def test_a_run_killed_without_cleanup_is_reaped_by_the_next(require_real_dhcpd: None) -> None:
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time
                from tests.integration.realpair import RealPair
                pair = RealPair()
                pair.start_pair()
                print(pair.prefix, pair.workdir, pair.primary.pid, pair.secondary.pid, flush=True)
                time.sleep(60)
                """
            ),
        ],
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        prefix, workdir, *pid_texts = owner.stdout.readline().split()
    finally:
        owner.send_signal(signal.SIGKILL)  # no chance to clean up
        owner.wait(10)
    pids = [int(pid) for pid in pid_texts]
    assert all(_alive(pid) for pid in pids)
    assert prefix in reap_stale_runs()
    _assert_gone(prefix, pids, Path(workdir))


@integration
def test_snapshot_freezes_both_servers_at_one_instant(
    normal_pair: RealPair, tmp_path: Path
) -> None:
    before = len(normal_pair.log_entries("primary"))
    snapshot = normal_pair.snapshot(tmp_path)
    for role, files in snapshot.files.items():
        server = normal_pair.server(role)
        assert files.conf.read_text() == server.conf_path.read_text()
        assert "binding state" in files.leases.read_text()
        logged = files.log.read_text().splitlines()
        # everything received before the snapshot is in the copy, nothing after it
        arrived = [e for e in normal_pair.log_entries(role) if e.at <= snapshot.taken_at]
        assert len(logged) == len(arrived)
    assert len(normal_pair.log_entries("primary")) >= before
    view = normal_pair.omapi_states("primary")  # SIGCONT was sent: it still answers
    assert view is not None and view.local_state == FailoverState.NORMAL


def test_torn_last_lease_record_is_cut_off() -> None:
    whole = "authoring-byte-order little-endian;\nlease 10.0.0.1 {\n  binding state free;\n}\n"
    assert _trim_torn_tail(whole) == whole
    assert _trim_torn_tail(whole + "lease 10.0.0.2 {\n  binding st") == whole
    assert _trim_torn_tail(whole + 'server-duid "x";\n') == whole + 'server-duid "x";\n'
    assert _trim_torn_tail("lease 10.0.0.2 {\n") == ""


@integration
def test_profile_describes_the_pair(real_pair: RealPair, tmp_path: Path) -> None:
    from dhcpfoctl.profile import load_profiles

    path = real_pair.write_profile(tmp_path / "config.toml", name="lab")
    assert path.stat().st_mode & 0o077 == 0
    profiles, default, warnings = load_profiles(path)
    assert (default, warnings) == ("lab", [])
    profile = profiles["lab"]
    assert profile.relationships == (real_pair.relationship,)
    by_label = {spec.label: spec for spec in profile.servers}
    for role in ("primary", "secondary"):
        server, spec = real_pair.server(role), by_label[role]
        assert (spec.host, spec.port) == (server.omapi_host, server.omapi_port)
        assert (spec.failover_address, spec.failover_port) == (
            server.failover_address,
            server.failover_port,
        )
        assert spec.key == server.key
        assert spec.config == str(server.conf_path)
