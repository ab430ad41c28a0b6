"""The lab pair's files and processes, with a stand-in server listening on the same ports.

The stand-in (written to the test's directory, not part of the package) takes the real
server's command line, binds the ports its config names, and exits 0 on SIGTERM.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhcpfoctl.conf import read_config
from dhcpfoctl.errors import DhcpfoctlError, LocalError, RefusedError, RemoteError
from dhcpfoctl.lab.cluster import (
    HOST,
    KEY_NAME,
    PORT_SPAN,
    RELATIONSHIP,
    ROLES,
    Lab,
    LabOptions,
    LabPorts,
    default_lab_dir,
    pool_range,
    port_free,
    process_alive,
    render_config,
)
from dhcpfoctl.model import FailoverState
from dhcpfoctl.model import FailoverState as S
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.failover import read_failover
from dhcpfoctl.profile import load_profiles

STAND_IN = """
import argparse, re, select, signal, socket, sys
from dhcpfoctl.lab.dhcp import MessageType, decode, encode, encode_address, encode_u32, reply
parser = argparse.ArgumentParser()
for flag in ("--config", "--leases", "--log", "--name"):
    parser.add_argument(flag)
args = parser.parse_args()
text = open(args.config).read()
def number(pattern):
    return int(re.search(pattern, text, re.M).group(1))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", number(r"^local-port (\\d+);")))
listeners = []
for port in (number(r"^omapi-port (\\d+);"), number(r"^  port (\\d+);")):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8)
    listeners.append(sock)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
open(args.log, "a").write("stand-in up\\n")
# Only the primary answers DHCP: one offer and one ACK per client, an address per MAC.
answers = {MessageType.DISCOVER: MessageType.OFFER, MessageType.REQUEST: MessageType.ACK}
addresses = {}
while True:
    if not select.select([udp], [], [], 0.5)[0]:
        continue
    data, source = udp.recvfrom(4096)
    request = decode(data)
    answer = answers.get(request.message_type)
    if "  primary;" not in text or answer is None:
        continue
    address = addresses.setdefault(request.chaddr, f"10.99.0.{100 + len(addresses)}")
    options = {54: encode_address("127.0.0.1"), 51: encode_u32(300)}
    udp.sendto(encode(reply(request, answer, yiaddr=address, options=options)), source)
"""


def free_base_port() -> int:
    """A base port whose whole span is free now (bounded tries)."""
    for _ in range(50):
        base = random.randrange(20000, 60000, PORT_SPAN)
        ports = LabPorts(base)
        if all(port_free(port, proto) for port, proto, _ in ports.listening()):
            return base
    raise AssertionError("no free port span found")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    script = tmp_path / "stand_in_server.py"
    script.write_text(STAND_IN)
    lab = Lab(tmp_path / "lab", server_command=(sys.executable, str(script)))
    try:
        yield lab
    finally:
        lab.down(timeout=5)


def test_ports_derive_from_the_base() -> None:
    ports = LabPorts(16700)
    numbers = [port for port, _, _ in ports.listening()]
    assert len(set(numbers)) == len(numbers) == 8
    assert all(16700 <= port < 16700 + PORT_SPAN for port in numbers)
    # each server's peer port is the relay port that forwards to the other
    assert ports.of("primary")["peer_port"] == ports.relay_to("secondary")


def test_pool_sizes() -> None:
    assert pool_range(151)[1:] == ("10.99.0.100", "10.99.0.250")
    assert str(pool_range(155)[0]) == "10.99.0.0/24"
    assert str(pool_range(1000)[0]) == "10.99.0.0/16"
    with pytest.raises(LocalError, match="does not fit"):
        pool_range(70000)


def test_default_dir_follows_xdg_state_home() -> None:
    assert default_lab_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/dhcpfoctl/lab")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("pool", [100, 1000])
def test_configs_pass_dhcpd_t(tmp_path: Path, role: str, pool: int) -> None:
    dhcpd = shutil.which("dhcpd") or "/usr/sbin/dhcpd"
    if not Path(dhcpd).exists() and not os.environ.get("CI"):
        pytest.skip("dhcpd not installed")
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(render_config(role, LabOptions(pool=pool, mclt=60, split=200), "c2VjcmV0"))
    result = subprocess.run([dhcpd, "-t", "-cf", str(conf)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_files_and_profile(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    lab.write_files(LabOptions(base_port=30000))
    for path in (lab.conf("primary"), lab.conf("secondary"), lab.profile):
        assert path.stat().st_mode & 0o777 == 0o600
    profiles, default, warnings = load_profiles(lab.profile)
    assert default == "lab" and warnings == []
    servers = {spec.label: spec for spec in profiles["lab"].servers}
    assert servers["primary"].port == 30004 and servers["secondary"].port == 30005
    assert servers["primary"].key is not None
    assert profiles["lab"].relationships == ("lab",)
    assert lab.options().base_port == 30000


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(LocalError, match="--split"):
        Lab(tmp_path).up(LabOptions(split=300))
    with pytest.raises(LocalError, match="--base-port"):
        Lab(tmp_path).up(LabOptions(base_port=80))
    with pytest.raises(LocalError, match="lab up"):
        Lab(tmp_path / "none").start("primary")


def test_up_status_kill_start_cut_heal_down(lab: Lab) -> None:
    base = free_base_port()
    status = lab.up(LabOptions(base_port=base), timeout=30)
    assert status.running and status.base_port == base
    assert all(process.running for process in status.processes)
    assert all(all(process.listening.values()) for process in status.processes)
    assert status.relay is not None and status.relay["mode"] == "pass"
    pids = lab.running()
    assert set(pids) == {"primary", "secondary", "relay"}

    with pytest.raises(RefusedError, match=f"a lab is running in {lab.directory}"):
        lab.up(LabOptions(base_port=base))

    killed = lab.kill("secondary", signal.SIGKILL)  # returns once it is gone
    assert killed == pids["secondary"] and not process_alive(killed)
    assert lab.pid("secondary") is None
    with pytest.raises(LocalError, match="not running"):
        lab.kill("secondary")
    new_pid = lab.start("secondary", timeout=30)
    assert lab.pid("secondary") == new_pid != killed
    with pytest.raises(RefusedError, match="already running"):
        lab.start("secondary")

    assert lab.cut()["mode"] == "cut"
    assert lab.cut(drop=True)["mode"] == "drop"
    assert lab.heal()["mode"] == "pass"
    assert lab.status().relay["mode"] == "pass"  # type: ignore[index]

    pids = lab.running()
    outcome = lab.down()
    assert set(outcome) == {"primary", "secondary", "relay"}
    assert not any(process_alive(pid) for pid in pids.values())
    assert all(port_free(port, proto) for port, proto, _ in LabPorts(base).listening())
    assert not any(lab.pid_file(name).exists() for name in pids)
    assert lab.conf("primary").exists() and lab.leases("primary").exists()
    assert not lab.status().running


def test_port_in_use_is_a_clear_error(lab: Lab) -> None:
    base = free_base_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 4))
        taken.listen(1)
        with pytest.raises(LocalError, match=f"port {base + 4}/tcp \\(primary OMAPI\\)"):
            lab.up(LabOptions(base_port=base))
    assert lab.running() == {}


def test_server_dying_at_startup_leaves_nothing(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab", server_command=(sys.executable, "-c", "raise SystemExit(3)"))
    with pytest.raises(RemoteError, match="exited during startup"):
        lab.up(LabOptions(base_port=free_base_port()), timeout=30)
    assert lab.running() == {}


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    lab.write_files(LabOptions())
    lab.pid_file("primary").write_text(f"{os.getpid()}\n")  # alive, but not our server
    assert lab.pid("primary") is None
    assert lab.down() == {}
    assert not lab.pid_file("primary").exists()


def test_down_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "stubborn_server.py"
    script.write_text(
        STAND_IN.replace(
            "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))",
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
        )
    )
    lab = Lab(tmp_path / "lab", server_command=(sys.executable, str(script)))
    try:
        lab.up(LabOptions(base_port=free_base_port()), timeout=30)
        with pytest.raises(RemoteError, match=r"still running 0\.5 s after SIGTERM"):
            lab.kill("primary", timeout=0.5)
        pids = lab.running()
        outcome = lab.down(timeout=0.5)
        assert outcome == {"primary": "killed", "secondary": "killed", "relay": "stopped"}
        assert not any(process_alive(pid) for pid in pids.values())
    finally:
        lab.down(timeout=0.5)


def test_one_lab_command_at_a_time(lab: Lab) -> None:
    with lab._exclusive(), pytest.raises(RefusedError, match="another `dhcpfoctl lab` command"):
        lab.up(LabOptions(base_port=free_base_port()))
    assert lab.running() == {}


def test_clients_get_leases_from_the_lab(lab: Lab) -> None:
    with pytest.raises(LocalError, match="lab up"):
        lab.clients(3, rate=10, duration=1)
    lab.up(LabOptions(base_port=free_base_port()), timeout=30)
    stats = lab.clients(3, rate=20, duration=3)
    assert stats.started == 3
    assert stats.acks >= 1 and stats.naks == 0
    stopped = lab.clients(3, rate=20, duration=600, until=lambda: True)  # ends at once
    assert stopped.acks == 0
    lab.kill("primary")
    lab.kill("secondary")
    with pytest.raises(LocalError, match="no lab server is running"):
        lab.clients(3, rate=10, duration=1)


# --- the real lab server ---------------------------------------------------------------


def _state(lab: Lab, role: str) -> FailoverState | None:
    """``role``'s local failover state over OMAPI, None while it does not answer."""
    key = read_config(str(lab.conf(role))).keys[KEY_NAME]
    port = LabPorts(lab.options().base_port).omapi(role)
    try:
        with OmapiClient(HOST, port, key, timeout=2.0) as client:
            return read_failover(client, RELATIONSHIP).local_state
    except DhcpfoctlError:
        return None


def _wait_states(lab: Lab, primary: FailoverState, secondary: FailoverState) -> None:
    """Bounded poll (the failover link needs a few exchanges) until both states hold."""
    seen: tuple[FailoverState | None, ...] = ()
    for _ in range(600):
        seen = (_state(lab, "primary"), _state(lab, "secondary"))
        if seen == (primary, secondary):
            return
        time.sleep(0.1)
    raise AssertionError(f"states {seen}, wanted {primary.keyword}/{secondary.keyword}")


def test_real_pair_through_the_relay(tmp_path: Path) -> None:
    """The real lab server: normal through the relay, cut or drop -> both interrupted,
    heal -> normal, a killed secondary restarts from its files, down leaves nothing."""
    lab = Lab(tmp_path / "lab")
    base = free_base_port()
    try:
        lab.up(LabOptions(base_port=base, mclt=10, pool=40, max_response_delay=3), timeout=60)
        _wait_states(lab, S.NORMAL, S.NORMAL)
        assert lab.status().relay["bytes_forwarded"] > 0  # type: ignore[index]

        lab.cut()
        _wait_states(lab, S.COMMUNICATIONS_INTERRUPTED, S.COMMUNICATIONS_INTERRUPTED)
        lab.heal()
        _wait_states(lab, S.NORMAL, S.NORMAL)
        lab.cut(drop=True)  # silence: only max-response-delay (3 s) notices
        _wait_states(lab, S.COMMUNICATIONS_INTERRUPTED, S.COMMUNICATIONS_INTERRUPTED)
        assert lab.status().relay["bytes_discarded"] > 0  # type: ignore[index]
        lab.heal()
        _wait_states(lab, S.NORMAL, S.NORMAL)

        lab.kill("secondary", signal.SIGKILL)
        lab.start("secondary", timeout=60)
        _wait_states(lab, S.NORMAL, S.NORMAL)
        pids = lab.running()
    finally:
        lab.down(timeout=10)
    assert not any(process_alive(pid) for pid in pids.values())
    assert all(port_free(port, proto) for port, proto, _ in LabPorts(base).listening())
