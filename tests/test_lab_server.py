"""lab.server's own pieces: the log line of each failover event, the log format, and the
refusals a server gives before it binds anything (one line, documented exit status, no
traceback, nothing on disk changed). Serving is tested end to end elsewhere (the demo,
the cluster and the integration tests run the real server)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from failover_harness import conf_text

from dhcpfoctl.errors import ExitStatus
from dhcpfoctl.failover.connection import (
    LinkDown,
    PartnerStateChanged,
    PoolBalanced,
    PoolResponse,
    StateChanged,
    UpdateRefused,
)
from dhcpfoctl.failover.states import Transition
from dhcpfoctl.failover.wire import RejectReason
from dhcpfoctl.lab.server import EventLog, describe
from dhcpfoctl.model import FailoverState, Role

S = FailoverState


def test_failover_events_are_logged_in_dhcpds_words() -> None:
    move = Transition(time=0.0, old=S.NORMAL, new=S.COMMUNICATIONS_INTERRUPTED, trigger="t")
    assert describe(StateChanged(move), "lab", None) == (
        "failover peer lab: I move from normal to communications-interrupted"
    )
    assert describe(PartnerStateChanged(S.PARTNER_DOWN, False), "lab", S.NORMAL) == (
        "failover peer lab: peer moves from normal to partner-down"
    )
    assert describe(PoolResponse(7), "lab", None) == "pool response: 7 leases"
    assert describe(PoolBalanced("net", 0, False), "lab", None) is None  # nothing moved
    refused = UpdateRefused("10.0.0.1", RejectReason.LESS_CRIT_BIND_INFO, "less", by_us=True)
    assert describe(refused, "lab", None) == "bind update on 10.0.0.1 refused: less"
    assert describe(LinkDown("closed"), "lab", None) == "failover peer lab: disconnected: closed"


def test_log_lines_escape_control_characters_stamped_in_a_file_bare_on_stderr() -> None:
    stamped, bare = io.StringIO(), io.StringIO()
    EventLog("primary", stamped, lambda: 1796016002.25).line("host \x1b[31mx\ny")
    EventLog("primary", bare, lambda: 0.0, stamped=False).lines(["a", "b\r"])
    assert stamped.getvalue() == "2026-11-30T05:20:02.250Z primary host \\x1b[31mx\\ny\n"
    assert bare.getvalue() == "a\nb\\r\n"


def _server(tmp_path: Path, conf: str, *args: str, leases: str = "") -> tuple[int, str, Path]:
    conf_path, leases_path = tmp_path / "dhcpd.conf", tmp_path / "dhcpd.leases"
    conf_path.write_text(conf)
    leases_path.write_text(leases)
    done = subprocess.run(
        [sys.executable, "-m", "dhcpfoctl.lab.server", "--config", str(conf_path),
         "--leases", str(leases_path), "--dhcp-port", "0", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stderr, leases_path


def test_dhcp_on_every_address_needs_a_server_identifier(tmp_path: Path) -> None:
    code, err, _ = _server(tmp_path, conf_text(Role.PRIMARY), "--dhcp-address", "0.0.0.0")
    assert code == ExitStatus.INPUT_ERROR
    assert "needs a `server-identifier`" in err and "Traceback" not in err


def test_two_relationships_are_refused(tmp_path: Path) -> None:
    other = conf_text(Role.PRIMARY, name="other", first="10.21.0.10", last="10.21.0.20")
    conf = conf_text(Role.PRIMARY) + other.replace("subnet 10.20.0.0", "subnet 10.21.0.0")
    code, err, _ = _server(tmp_path, conf)
    assert code == ExitStatus.INPUT_ERROR
    assert "exactly one failover relationship (found 2)" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_a_corrupt_lease_file_is_named_with_its_line_and_left_as_it_was(tmp_path: Path) -> None:
    corrupt = "lease 10.20.0.10 {\n  starts 4 2026/11/30 05:00:00;\n  binding state bogus;\n}\n"
    code, err, leases = _server(tmp_path, conf_text(Role.PRIMARY), leases=corrupt)
    assert code == ExitStatus.INPUT_ERROR
    assert f"{leases}:" in err and "Traceback" not in err
    assert leases.read_text() == corrupt
