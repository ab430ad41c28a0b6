"""The lab pair's files and processes, with a stand-in server listening on the same ports.

The stand-in (written to the test's directory, not part of the package) takes the real
server's command line, binds the ports its config names, and exits 0 on SIGTERM.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
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
for flag in ("--config", "--leases", "--log", "--name", "--dhcp-address", "--omapi-address"):
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


# --- mixed pairs: one lab server as the partner of an existing dhcpd --------------------


def _mixed(**changes: object) -> LabOptions:
    return dataclasses.replace(LabOptions(partner_address="127.0.0.1:647"), **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"partner_address": "10.0.0.1"}, "--partner-address: '10.0.0.1' is not HOST:PORT"),
        ({"partner_address": "10.0.0.1:70000"}, "is not HOST:PORT"),
        ({"partner_address": "dhcp1:647"}, "'dhcp1' is not an IPv4 address"),
        ({"partner_address": "0.0.0.0:647"}, "--partner-address must name one address"),
        ({"address": "0.0.0.0:847"}, "--address must name one address"),
        ({"address": "127.0.0.1:647"}, "--address and --partner-address must differ"),
        ({"role": "tertiary"}, "--role must be primary or secondary"),
        ({"address_range": "10.1.0.10"}, "use FIRST-LAST"),
        ({"address_range": "10.1.0.20-10.1.0.10"}, "last address is below the first"),
        ({"address_range": "10.1.0.10-10.1.1.10"}, "not inside subnet 10.1.0.0/24 (give --subnet"),
        (
            {"address_range": "10.1.0.10-10.1.0.20", "subnet": "10.2.0.0/24"},
            "--range 10.1.0.10-10.1.0.20 is not inside subnet 10.2.0.0/24",
        ),
        ({"address_range": "10.1.0.0-10.1.0.20"}, "not inside subnet"),  # the network address
        ({"address_range": "10.1.0.1-10.1.0.9", "subnet": "10.1.0.1/24"}, "host bits set"),
        ({"address_range": "127.1.0.1-127.1.0.9"}, "overlaps 127.0.0.0/8"),
        ({"subnet": "10.1.0.0/24"}, "--subnet needs --range"),
        ({"relationship": "a b"}, "--relationship must be"),
        ({"dhcp_address": "any"}, "--dhcp-address: 'any' is not an IPv4 address"),
        ({"partner_omapi": "10.0.0.1"}, "--partner-omapi: '10.0.0.1' is not HOST:PORT"),
        ({"partner_key_file": "/k"}, "--partner-key-file needs --partner-omapi"),
        (
            {"partner_omapi": "10.0.0.1:7911", "partner_key_file": "/nonexistent/k"},
            "--partner-key-file /nonexistent/k: no such file",
        ),
    ],
)
def test_mixed_options_are_checked(changes: dict[str, object], message: str) -> None:
    with pytest.raises(LocalError) as raised:
        dataclasses.replace(_mixed(), **changes).validate()
    assert message in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("flag", ["--range", "--role", "--address", "--partner-omapi"])
def test_mixed_only_options_need_a_partner(flag: str) -> None:
    field = {
        "--range": ("address_range", "10.1.0.10-10.1.0.20"),
        "--role": ("role", "primary"),
        "--address": ("address", "127.0.0.1:847"),
        "--partner-omapi": ("partner_omapi", "127.0.0.1:7911"),
    }[flag]
    with pytest.raises(LocalError, match=f"{flag} is for a mixed pair only"):
        LabOptions(**{field[0]: field[1]}).validate()  # type: ignore[arg-type]


def test_mixed_pool_defaults() -> None:
    assert _mixed().pool_range() == pool_range(100)
    network, first, last = _mixed(address_range="10.1.2.10 - 10.1.2.20").pool_range()
    assert (str(network), first, last) == ("10.1.2.0/24", "10.1.2.10", "10.1.2.20")
    wide = _mixed(address_range="10.1.2.10-10.1.3.20", subnet="10.1.0.0/16").pool_range()
    assert str(wide[0]) == "10.1.0.0/16"
    assert _mixed().failover_address() == (HOST, LabPorts().failover("secondary"))
    assert _mixed(role="primary").failover_address() == (HOST, LabPorts().failover("primary"))


MIXED_SECONDARY = _mixed(
    partner_address="192.0.2.1:647",
    address="192.0.2.2:847",
    address_range="10.99.0.100-10.99.0.250",
    subnet="10.99.0.0/24",
    relationship="campus",
    dhcp_address="0.0.0.0",
)


@pytest.mark.parametrize(
    "options", [MIXED_SECONDARY, dataclasses.replace(MIXED_SECONDARY, role="primary", mclt=60)]
)
def test_mixed_config_names_the_dhcpd_and_passes_dhcpd_t(
    tmp_path: Path, options: LabOptions
) -> None:
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(render_config(options.role, options, "c2VjcmV0"))
    config = read_config(str(conf))
    peer = config.failover_peers["campus"]
    assert (peer.address, peer.port, peer.peer_address, peer.peer_port) == (
        "192.0.2.2",
        847,
        "192.0.2.1",
        647,
    )
    # a secondary learns MCLT and split from the primary's CONNECT, as dhcpd's must
    assert ("mclt 60;" in conf.read_text()) is (options.role == "primary")
    assert config.server_identifier == "192.0.2.2"  # serving on every address: the known one
    (pool,) = config.pools
    assert [(r.first, r.last) for r in pool.ranges] == [
        (int(ipaddress.IPv4Address("10.99.0.100")), int(ipaddress.IPv4Address("10.99.0.250")))
    ]
    dhcpd = shutil.which("dhcpd") or "/usr/sbin/dhcpd"
    if not Path(dhcpd).exists() and not os.environ.get("CI"):
        pytest.skip("dhcpd not installed")
    result = subprocess.run([dhcpd, "-t", "-cf", str(conf)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_mixed_files_profile_and_mode(tmp_path: Path) -> None:
    key_file = tmp_path / "partner.key"
    key_file.write_text('key omapi_key { algorithm hmac-md5; secret "c2VjcmV0"; }\n')
    key_file.chmod(0o600)
    lab = Lab(tmp_path / "lab")
    options = dataclasses.replace(
        MIXED_SECONDARY,
        base_port=30000,
        omapi_address="0.0.0.0",
        partner_omapi="192.0.2.1:7911",
        partner_key_file=str(key_file),
    )
    lab.write_files(options)
    assert not lab.conf("primary").exists() and lab.conf("secondary").exists()
    assert json.loads(lab.state_file.read_text())["mode"] == "mixed"
    assert lab.options() == options
    profiles, default, warnings = load_profiles(lab.profile)
    assert default == "lab" and warnings == []
    profile = profiles["lab"]
    assert profile.relationships == ("campus",)
    servers = {spec.label: spec for spec in profile.servers}
    ours, theirs = servers["secondary"], servers["primary"]
    assert (ours.host, ours.port, ours.failover_address, ours.failover_port) == (
        HOST,
        30005,
        "192.0.2.2",
        847,
    )
    assert ours.key is not None and ours.leases == str(lab.leases("secondary"))
    assert (theirs.host, theirs.port, theirs.failover_address, theirs.failover_port) == (
        "192.0.2.1",
        7911,
        "192.0.2.1",
        647,
    )
    assert theirs.key is not None and theirs.key.name == "omapi_key" and theirs.leases is None

    lab.write_files(dataclasses.replace(options, partner_omapi=None, partner_key_file=None))
    profiles, _, _ = load_profiles(lab.profile)
    assert [spec.label for spec in profiles["lab"].servers] == ["secondary"]


def test_mixed_lab_refuses_the_relay_and_the_other_role(lab: Lab) -> None:
    lab.write_files(dataclasses.replace(MIXED_SECONDARY, dhcp_address=HOST, address=None))
    for command in (lab.cut, lab.heal):
        with pytest.raises(LocalError, match="a mixed lab has no relay"):
            command()
    for action in (lab.kill, lab.start):
        with pytest.raises(LocalError, match="runs only the secondary; the primary is the dhcpd"):
            action("primary")


def test_mixed_failover_address_not_on_this_host_is_a_clear_error(lab: Lab) -> None:
    # documentation addresses; this host may hold one of them (bounded choice)
    candidates = ("203.0.113.254", "198.51.100.254", "192.0.2.254")
    foreign = next(a for a in candidates if not port_free(free_base_port(), "tcp", a))
    options = _mixed(address=f"{foreign}:847", base_port=free_base_port())
    with pytest.raises(
        LocalError, match=rf"on {foreign} cannot be bound .*choose another --address"
    ):
        lab.up(options)
    assert lab.running() == {}


def test_mixed_lab_with_stand_in_up_status_down(lab: Lab) -> None:
    base = free_base_port()
    status = lab.up(_mixed(base_port=base), timeout=30)
    assert status.mode == "mixed" and status.relay is None
    assert status.partner == {
        "role": "secondary",
        "address": f"{HOST}:{base + 7}",
        "partner_address": "127.0.0.1:647",
    }
    (process,) = status.processes
    assert process.name == "secondary" and process.running
    assert process.ports == {"dhcp": base + 2, "omapi": base + 5, "failover": base + 7}
    assert all(process.listening.values())
    assert set(lab.running()) == {"secondary"}
    assert set(lab.down()) == {"secondary"}
    assert not lab.status().running


def test_two_mixed_labs_pair_on_loopback(tmp_path: Path) -> None:
    """The real lab server on both sides of a mixed pair: each names the other's failover
    address directly (what a dhcpd partner sees), and they reach normal."""
    primary, secondary = Lab(tmp_path / "p"), Lab(tmp_path / "s")
    base_p, base_s = free_base_port(), free_base_port()
    to_p, to_s = f"{HOST}:{base_p + 6}", f"{HOST}:{base_s + 7}"
    try:
        primary.up(
            _mixed(role="primary", partner_address=to_s, base_port=base_p, mclt=10), timeout=60
        )
        secondary.up(_mixed(partner_address=to_p, base_port=base_s), timeout=60)
        seen: tuple[FailoverState | None, ...] = ()
        for _ in range(600):
            seen = (_state(primary, "primary"), _state(secondary, "secondary"))
            if seen == (S.NORMAL, S.NORMAL):
                break
            time.sleep(0.1)
        assert seen == (S.NORMAL, S.NORMAL)
        pids = {**primary.running(), **secondary.running()}
    finally:
        primary.down(timeout=10)
        secondary.down(timeout=10)
    assert not any(process_alive(pid) for pid in pids.values())
