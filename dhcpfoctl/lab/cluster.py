"""The lab pair's files and processes in one directory.

A lab directory (default ``$XDG_STATE_HOME/dhcpfoctl/lab``) holds, for each of
``primary`` and ``secondary``: ``ROLE.conf`` (dhcpd.conf syntax, accepted by ``dhcpd -t``,
0600 as it holds the OMAPI key), ``ROLE.leases``, ``ROLE.log`` and ``ROLE.pid``; and
``relay.pid``/``relay.log``/``relay.sock`` for the failover-link relay, ``lab.lock`` (one
lab command at a time), ``lab.json`` (the options and ports of the last ``up``) and
``config.toml``, a dhcpfoctl profile file naming the pair as profile ``lab`` (use it with
``DHCPFOCTL_CONFIG=DIR/config.toml``, or ``eval "$(dhcpfoctl lab env)"``; the user's own
config file is never touched, so a lab cannot shadow or clobber a production profile).

Every port derives from one base port (:class:`LabPorts`). Each server's failover
``peer port`` is the relay's port that forwards to the other server, so the relay sits on
the link both ways and :meth:`Lab.cut` / :meth:`Lab.heal` control it.

Processes run in their own session (a Ctrl-C at the terminal leaves the lab up) and are
only ever signalled by the pid in their pid file after ``/proc/PID/cmdline`` shows that
the pid is still the process this lab started (it names this lab's files).

A *mixed* lab (``LabOptions.partner_address`` set) is one lab server, ``ROLE``, as the
failover partner of an existing dhcpd: one config whose ``failover peer`` names that dhcpd's
address and port directly (no relay: the link is the network's, not the lab's), and a
profile with our server and, when given, the partner's OMAPI endpoint.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dhcpfoctl.errors import LocalError, RefusedError, RemoteError
from dhcpfoctl.files import replace_atomically
from dhcpfoctl.lab.population import PopulationStats, run_population

ROLES = ("primary", "secondary")
PROCESSES = (*ROLES, "relay")
HOST = "127.0.0.1"
RELATIONSHIP = "lab"
KEY_NAME = "lab-key"
KEY_ALGORITHM = "hmac-sha256"
DEFAULT_BASE_PORT = 16700
#: Ports used from the base port on (see :class:`LabPorts`).
PORT_SPAN = 10
POOL_START = ipaddress.IPv4Address("10.99.0.100")
#: The relay-agent address the lab's clients give (every one is its own relay on
#: loopback): inside the lab subnet, so the servers choose its pool; they answer the UDP
#: source of a relayed request, never giaddr.
CLIENT_GIADDR = "10.99.0.1"
#: Each server's DHCP server identifier: in the lab subnet (so that clients without a relay
#: find it) and distinct, so that a client's REQUEST names the one server that offered.
SERVER_IDS = {"primary": "10.99.0.2", "secondary": "10.99.0.3"}
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


def default_lab_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dhcpfoctl" / "lab"


@dataclass(frozen=True, slots=True)
class LabPorts:
    """Every port of the lab, from ``base``:

    ====== ==================================================================
    base+0 primary DHCP (udp; its clients answer on base+1, as dhcpd's -p)
    base+2 secondary DHCP (udp; clients on base+3)
    base+4 primary OMAPI            base+5 secondary OMAPI
    base+6 primary failover         base+7 secondary failover
    base+8 relay to the primary     base+9 relay to the secondary
    ====== ==================================================================
    """

    base: int = DEFAULT_BASE_PORT

    def dhcp(self, role: str) -> int:
        return self.base + 2 * ROLES.index(role)

    def omapi(self, role: str) -> int:
        return self.base + 4 + ROLES.index(role)

    def failover(self, role: str) -> int:
        return self.base + 6 + ROLES.index(role)

    def relay_to(self, role: str) -> int:
        """The relay port forwarding to ``role``'s failover port (the other's peer port)."""
        return self.base + 8 + ROLES.index(role)

    def server_ports(self, role: str) -> list[tuple[int, str, str]]:
        """(port, protocol, what) for the ports the server ``role`` binds."""
        return [
            (self.dhcp(role), "udp", f"{role} DHCP"),
            (self.omapi(role), "tcp", f"{role} OMAPI"),
            (self.failover(role), "tcp", f"{role} failover"),
        ]

    def relay_ports(self) -> list[tuple[int, str, str]]:
        return [(self.relay_to(role), "tcp", f"relay to {role}") for role in ROLES]

    def listening(self) -> list[tuple[int, str, str]]:
        """(port, protocol, what) for every port the lab's processes bind."""
        ports = self.relay_ports()
        for role in ROLES:
            ports += self.server_ports(role)
        return sorted(ports)

    def of(self, role: str) -> dict[str, int]:
        return {
            "dhcp": self.dhcp(role),
            "omapi": self.omapi(role),
            "failover": self.failover(role),
            "peer_port": self.relay_to(_other(role)),
        }


def _other(role: str) -> str:
    return ROLES[1 - ROLES.index(role)]


@dataclass(frozen=True, slots=True)
class LabOptions:
    """What ``lab up`` configures; short times by default, so that a lab moves quickly.

    With ``partner_address`` set the lab is mixed (see the module docstring): ``role`` is
    our server's, ``address`` our failover ``HOST:PORT`` (the dhcpd's ``peer address`` and
    ``peer port``; default 127.0.0.1 and the base failover port), ``address_range``
    (``FIRST-LAST``) and ``subnet`` the dhcpd's pool (default the lab's ``pool``), and
    ``partner_omapi``/``partner_key_file`` the dhcpd's OMAPI for the profile. ``mclt`` and
    ``split`` matter for a primary only: a secondary learns both from the CONNECT.
    """

    pool: int = 100
    mclt: int = 30
    split: int = 128
    max_response_delay: int = 10
    max_unacked_updates: int = 10
    load_balance_max_seconds: int = 3
    min_balance: int = 60
    max_balance: int = 3600
    default_lease_time: int = 300
    max_lease_time: int = 600
    base_port: int = DEFAULT_BASE_PORT
    partner_address: str | None = None
    role: str = "secondary"
    address: str | None = None
    address_range: str | None = None
    subnet: str | None = None
    relationship: str = RELATIONSHIP
    dhcp_address: str = HOST
    omapi_address: str = HOST
    partner_omapi: str | None = None
    partner_key_file: str | None = None

    @property
    def mixed(self) -> bool:
        return self.partner_address is not None

    def validate(self) -> None:
        if not 1024 <= self.base_port <= 65535 - PORT_SPAN:
            raise LocalError(f"--base-port must be within 1024..{65535 - PORT_SPAN}")
        if not 0 <= self.split <= 256:
            raise LocalError("--split must be within 0..256 (dhcpd's range)")
        if self.pool < 1:
            raise LocalError("--pool must be at least 1")
        if self.max_lease_time < self.default_lease_time:
            raise LocalError("max-lease-time must not be below default-lease-time")
        if self.mixed:
            self._validate_mixed()
        else:
            self._refuse_mixed_only()
        self.pool_range()

    def _refuse_mixed_only(self) -> None:
        defaults = LabOptions()
        for name, flag in _MIXED_ONLY.items():
            if getattr(self, name) != getattr(defaults, name):
                raise LocalError(f"{flag} is for a mixed pair only (with --partner-address)")

    def _validate_mixed(self) -> None:
        if self.role not in ROLES:
            raise LocalError(f"--role must be primary or secondary, not {self.role!r}")
        partner = parse_host_port(str(self.partner_address), "--partner-address")
        ours = self.failover_address()
        for flag, (host, _) in (("--partner-address", partner), ("--address", ours)):
            if ipaddress.IPv4Address(host).is_unspecified:
                raise LocalError(f"{flag} must name one address, not {host}")
        if partner == ours:
            raise LocalError("--address and --partner-address must differ")
        if not _NAME_OK(self.relationship):
            raise LocalError("--relationship must be letters, digits, '.', '_' or '-'")
        _ipv4(self.dhcp_address, "--dhcp-address")
        _ipv4(self.omapi_address, "--omapi-address")
        if self.partner_omapi is not None:
            parse_host_port(self.partner_omapi, "--partner-omapi")
        if self.partner_key_file is not None:
            if self.partner_omapi is None:
                raise LocalError("--partner-key-file needs --partner-omapi")
            if not Path(self.partner_key_file).is_file():
                raise LocalError(f"--partner-key-file {self.partner_key_file}: no such file")

    def failover_address(self) -> tuple[str, int]:
        """Our failover listen address and port (mixed: ``--address``)."""
        if self.address is None:
            return HOST, LabPorts(self.base_port).failover(self.role)
        return parse_host_port(self.address, "--address")

    def pool_range(self) -> tuple[ipaddress.IPv4Network, str, str]:
        """The subnet and first/last address of the failover pool."""
        if self.address_range is None and self.subnet is None:
            return pool_range(self.pool)
        if self.address_range is None:
            raise LocalError("--subnet needs --range FIRST-LAST (the pool, as the dhcpd has it)")
        first, sep, last = self.address_range.partition("-")
        if not sep:
            raise LocalError(f"--range {self.address_range!r}: use FIRST-LAST")
        low = _ipv4(first.strip(), "--range")
        high = _ipv4(last.strip(), "--range")
        if high < low:
            raise LocalError(f"--range {self.address_range}: the last address is below the first")
        if self.subnet is None:
            network = ipaddress.IPv4Network(f"{low}/24", strict=False)
        else:
            try:
                network = ipaddress.IPv4Network(self.subnet)
            except ValueError as exc:
                raise LocalError(f"--subnet {self.subnet!r}: {exc}") from None
        if network.overlaps(LOOPBACK):
            raise LocalError(f"--subnet {network} overlaps 127.0.0.0/8 (the lab's own)")
        inside = (network.network_address, network.broadcast_address)
        if not (inside[0] < low and high < inside[1]):
            hint = "" if self.subnet else " (give --subnet)"
            raise LocalError(f"--range {low}-{high} is not inside subnet {network}{hint}")
        return network, str(low), str(high)


#: Options of a mixed pair only, and their flags (a plain lab refuses them).
_MIXED_ONLY = {
    "role": "--role",
    "address": "--address",
    "address_range": "--range",
    "subnet": "--subnet",
    "dhcp_address": "--dhcp-address",
    "omapi_address": "--omapi-address",
    "partner_omapi": "--partner-omapi",
    "partner_key_file": "--partner-key-file",
    "relationship": "--relationship",
}
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_NAME_OK = re.compile(r"[A-Za-z0-9._-]{1,64}").fullmatch


def _ipv4(text: str, flag: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise LocalError(f"{flag}: {text!r} is not an IPv4 address") from None


def parse_host_port(text: str, flag: str) -> tuple[str, int]:
    """``A.B.C.D:PORT`` (failover addresses are IPv4 literals in dhcpd.conf here)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise LocalError(f"{flag}: {text!r} is not HOST:PORT (e.g. 192.0.2.1:647)")
    return str(_ipv4(host, flag)), int(port)


def pool_range(size: int) -> tuple[ipaddress.IPv4Network, str, str]:
    """The lab subnet and first/last address of a pool of ``size`` from 10.99.0.100:
    10.99.0.0/24 while it fits, else 10.99.0.0/16."""
    for prefix in (24, 16):
        network = ipaddress.IPv4Network(f"10.99.0.0/{prefix}")
        last = POOL_START + size - 1
        if last < network.broadcast_address:
            return network, str(POOL_START), str(last)
    largest = int(network.broadcast_address) - int(POOL_START)
    raise LocalError(f"--pool {size} does not fit in 10.99.0.0/16 (at most {largest})")


def render_config(role: str, options: LabOptions, secret: str) -> str:
    """``role``'s dhcpd.conf: one failover peer, one pool, the OMAPI key. In a lab pair the
    peer port is the relay's; in a mixed pair it is the dhcpd's own."""
    ports = LabPorts(options.base_port)
    network, first, last = options.pool_range()
    primary_only = (
        f"  mclt {options.mclt};\n  split {options.split};\n" if role == "primary" else ""
    )
    name = options.relationship
    if options.mixed:
        (host, port), (peer_host, peer_port) = (
            options.failover_address(),
            parse_host_port(str(options.partner_address), "--partner-address"),
        )
        peer = "  # the existing dhcpd (a mixed pair: no relay on this link)\n"
        # dhcpd uses an address of its own; a lab serving on every address uses the one
        # its partner knows it by.
        dhcp = ipaddress.IPv4Address(options.dhcp_address)
        server_id = host if dhcp.is_unspecified else str(dhcp)
    else:
        host, port = HOST, ports.failover(role)
        peer_host, peer_port = HOST, ports.relay_to(_other(role))
        peer = f"  # the relay's port forwarding to the {_other(role)} (lab cut/heal act there)\n"
        server_id = SERVER_IDS[role]
    return (
        f"# dhcpfoctl lab: the {role} (written by `dhcpfoctl lab up`, rewritten at each up)\n"
        "authoritative;\n"
        "ddns-update-style none;\n"
        f"local-port {ports.dhcp(role)};\n"
        f"omapi-port {ports.omapi(role)};\n"
        f'key {KEY_NAME} {{ algorithm {KEY_ALGORITHM}; secret "{secret}"; }}\n'
        f"omapi-key {KEY_NAME};\n"
        f"default-lease-time {options.default_lease_time};\n"
        f"max-lease-time {options.max_lease_time};\n"
        "\n"
        f'failover peer "{name}" {{\n'
        f"  {role};\n"
        f"  address {host};\n"
        f"  port {port};\n"
        f"  peer address {peer_host};\n"
        f"{peer}"
        f"  peer port {peer_port};\n"
        f"  max-response-delay {options.max_response_delay};\n"
        f"  max-unacked-updates {options.max_unacked_updates};\n"
        f"  load balance max seconds {options.load_balance_max_seconds};\n"
        f"{primary_only}"
        f"  min-balance {options.min_balance};\n"
        f"  max-balance {options.max_balance};\n"
        "}\n"
        "\n"
        f"server-identifier {server_id};\n"
        "\n"
        "# Clients and relays on loopback (perfdhcp -l 127.0.0.1) reach the lab's network too.\n"
        f"shared-network {name} {{\n"
        "  subnet 127.0.0.0 netmask 255.0.0.0 { }\n"
        f"  subnet {network.network_address} netmask {network.netmask} {{\n"
        f"    option subnet-mask {network.netmask};\n"
        "    pool {\n"
        f'      failover peer "{name}";\n'
        f"      range {first} {last};\n"
        "    }\n"
        "  }\n"
        "}\n"
    )


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


@dataclass(slots=True)
class ProcessStatus:
    name: str
    pid: int | None
    running: bool
    ports: dict[str, int] = field(default_factory=dict)
    #: port -> listening now (read from /proc/net, without touching the process).
    listening: dict[str, bool] = field(default_factory=dict)
    #: Where each port is bound ("127.0.0.1" throughout a lab pair).
    addresses: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class LabStatus:
    directory: str
    base_port: int | None
    processes: list[ProcessStatus]
    relay: dict[str, object] | None
    profile: str
    configured: bool
    #: "pair" (two lab servers and the relay) or "mixed" (one, partner of a dhcpd).
    mode: str = "pair"
    #: A mixed lab's role, its failover address and the partner's (``HOST:PORT``).
    partner: dict[str, str] | None = None

    @property
    def running(self) -> bool:
        return any(process.running for process in self.processes)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["running"] = self.running
        return data


def process_alive(pid: int) -> bool:
    """A process with a live thread. A killed process's leader is a zombie until reaped,
    and may be one while its other threads still exit and hold its sockets open: every
    thread must be a zombie before its ports are free."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child (tests, `lab up` itself)
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for thread in threads:
        try:
            stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
            return True
    return False


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _bound_sockets(protocol: str) -> set[tuple[str, int]]:
    """(address, port) bound, from /proc/net/{tcp,udp} (LISTEN for tcp)."""
    bound: set[tuple[str, int]] = set()
    try:
        lines = Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]
    except OSError:
        return bound
    for line in lines:
        fields = line.split()
        address, port = fields[1].split(":")
        if protocol == "udp" or fields[3] == "0A":
            # the kernel prints the address as a host-order integer in hex
            dotted = socket.inet_ntoa(struct.pack("=I", int(address, 16)))
            bound.add((dotted, int(port, 16)))
    return bound


def _is_bound(bound: set[tuple[str, int]], address: str, port: int) -> bool:
    return (address, port) in bound or ("0.0.0.0", port) in bound


def _bind_problem(port: int, protocol: str, host: str) -> str | None:
    """Why ``host:port`` cannot be bound now (None: it can)."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (
                "is in use"
                if exc.errno == errno.EADDRINUSE
                else f"cannot be bound ({exc.strerror})"
            )
    return None


def port_free(port: int, protocol: str, host: str = HOST) -> bool:
    return _bind_problem(port, protocol, host) is None


def _reachable(address: str) -> str:
    """Where to connect to a socket bound on ``address`` (any address: loopback)."""
    return HOST if ipaddress.IPv4Address(address).is_unspecified else address


def _accepts(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class Lab:
    """One lab directory: write its files, start, stop and inspect its processes.

    ``server_command`` and ``relay_command`` are the argv prefixes the processes start
    with (the server gets ``--config C --leases L --log LOG --name ROLE`` appended).
    """

    def __init__(
        self,
        directory: Path,
        *,
        server_command: Sequence[str] = (sys.executable, "-m", "dhcpfoctl.lab.server"),
        relay_command: Sequence[str] = (sys.executable, "-m", "dhcpfoctl.lab.relay"),
    ) -> None:
        self.directory = directory
        self.server_command = tuple(server_command)
        self.relay_command = tuple(relay_command)

    # -- paths

    def conf(self, role: str) -> Path:
        return self.directory / f"{role}.conf"

    def leases(self, role: str) -> Path:
        return self.directory / f"{role}.leases"

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.directory / f"{name}.pid"

    @property
    def control(self) -> Path:
        return self.directory / "relay.sock"

    @property
    def profile(self) -> Path:
        return self.directory / "config.toml"

    @property
    def state_file(self) -> Path:
        return self.directory / "lab.json"

    # -- files

    @staticmethod
    def _check_role(role: str, options: LabOptions | None) -> None:
        if role not in ROLES:
            raise LocalError(f"unknown server {role!r} (primary or secondary)")
        if options is not None and options.mixed and role != options.role:
            raise LocalError(
                f"this mixed lab runs only the {options.role}; the {role} is the dhcpd at"
                f" {options.partner_address}"
            )

    @staticmethod
    def roles(options: LabOptions) -> tuple[str, ...]:
        """The lab's own servers: both, or a mixed lab's one."""
        return (options.role,) if options.mixed else ROLES

    def options(self) -> LabOptions:
        """The options of the last ``up`` (from ``lab.json``)."""
        try:
            data = json.loads(self.state_file.read_text())
            return LabOptions(**data["options"])
        except FileNotFoundError:
            raise LocalError(f"no lab in {self.directory}: run `dhcpfoctl lab up` first") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise LocalError(f"{self.state_file}: unreadable lab state ({exc})") from None

    def write_files(self, options: LabOptions) -> None:
        """Both configs, the profile and ``lab.json``; a fresh random key each time.
        Lease files are created empty when absent and otherwise kept (a restart resumes)."""
        options.validate()
        if len(str(self.control)) > _UNIX_PATH_MAX:
            raise LocalError(f"lab directory path too long for a unix socket: {self.directory}")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = base64.b64encode(secrets.token_bytes(32)).decode()
        for role in self.roles(options):
            _write_private(self.conf(role), render_config(role, options, secret))
            self.leases(role).touch(mode=0o600, exist_ok=True)
        _write_private(self.profile, self._profile_text(options, secret))
        state = {"mode": "mixed" if options.mixed else "pair", "options": asdict(options)}
        _write_private(self.state_file, json.dumps(state, indent=2) + "\n")

    def _profile_text(self, options: LabOptions, secret: str) -> str:
        ports = LabPorts(options.base_port)
        lines = [
            f"# dhcpfoctl profile for the lab in {self.directory}; use it with",
            f"#   DHCPFOCTL_CONFIG={self.profile} dhcpfoctl status",
            'default = "lab"',
            "",
            "[profiles.lab]",
            f"relationships = [{_toml_string(options.relationship)}]",
        ]
        for role in self.roles(options):
            failover_host, failover_port = (
                options.failover_address() if options.mixed else (HOST, ports.failover(role))
            )
            lines += [
                "",
                f"[profiles.lab.servers.{role}]",
                f"host = {_toml_string(_reachable(options.omapi_address))}",
                f"port = {ports.omapi(role)}",
                f'key = "{KEY_ALGORITHM}:{KEY_NAME}:{secret}"',
                f"failover_address = {_toml_string(failover_host)}",
                f"failover_port = {failover_port}",
                f"config = {_toml_string(str(self.conf(role)))}",
                f"leases = {_toml_string(str(self.leases(role)))}",
            ]
        if options.partner_omapi is not None:
            # The dhcpd partner: its OMAPI (and key, if given); its files are not ours.
            host, port = parse_host_port(options.partner_omapi, "--partner-omapi")
            peer_host, peer_port = parse_host_port(str(options.partner_address), "")
            lines += [
                "",
                f"[profiles.lab.servers.{_other(options.role)}]",
                f"host = {_toml_string(host)}",
                f"port = {port}",
                f"failover_address = {_toml_string(peer_host)}",
                f"failover_port = {peer_port}",
            ]
            if options.partner_key_file is not None:
                key_file = str(Path(options.partner_key_file).resolve())
                lines.append(f"key_file = {_toml_string(key_file)}")
        return "\n".join(lines) + "\n"

    # -- processes

    def _marker(self, name: str) -> str:
        """The argument that proves a pid is this lab's process ``name``."""
        return str(self.control if name == "relay" else self.conf(name))

    def pid(self, name: str) -> int | None:
        """The pid of this lab's running process ``name``, else None."""
        try:
            pid = int(self.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        if pid <= 0 or not process_alive(pid) or self._marker(name) not in _cmdline(pid):
            return None
        return pid

    def running(self) -> dict[str, int]:
        return {name: pid for name in PROCESSES if (pid := self.pid(name)) is not None}

    def _spawn(self, name: str, argv: list[str]) -> int:
        with open(self.log(name), "ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C at the terminal does not reach the lab
                close_fds=True,
            )
        self.pid_file(name).write_text(f"{process.pid}\n")
        return process.pid

    def _spawn_server(self, role: str, options: LabOptions) -> int:
        argv = [
            *self.server_command,
            "--config",
            str(self.conf(role)),
            "--leases",
            str(self.leases(role)),
            "--log",
            str(self.log(role)),
            "--name",
            role,  # log lines say which server wrote them
        ]
        if options.mixed:
            argv += ["--dhcp-address", options.dhcp_address]
            argv += ["--omapi-address", options.omapi_address]
        return self._spawn(role, argv)

    @staticmethod
    def _server_ports(options: LabOptions, role: str) -> list[tuple[str, int, str, str]]:
        """(address, port, protocol, what) for the ports the server ``role`` binds."""
        ports = LabPorts(options.base_port)
        if not options.mixed:
            return [
                (HOST, port, protocol, what) for port, protocol, what in ports.server_ports(role)
            ]
        host, port = options.failover_address()
        return [
            (options.dhcp_address, ports.dhcp(role), "udp", f"{role} DHCP"),
            (options.omapi_address, ports.omapi(role), "tcp", f"{role} OMAPI"),
            (host, port, "tcp", f"{role} failover"),
        ]

    def _spawn_relay(self, ports: LabPorts) -> int:
        argv = [*self.relay_command, "--control", str(self.control)]
        for role in ROLES:
            argv += ["--forward", f"{ports.relay_to(role)}:{ports.failover(role)}"]
        return self._spawn("relay", argv)

    def _check_ports(self, options: LabOptions, ports: Sequence[tuple[str, int, str, str]]) -> None:
        for host, port, protocol, what in ports:
            if problem := _bind_problem(port, protocol, host):
                flag = "--address" if options.mixed and what.endswith("failover") else "--base-port"
                raise LocalError(
                    f"port {port}/{protocol} ({what}) on {host} {problem}; choose another {flag}"
                )

    def _wait_ready(self, name: str, pid: int, ready: Callable[[], bool], deadline: float) -> None:
        """Poll (bounded) until ``ready()`` holds; fail at once if the process died."""
        while True:
            if not process_alive(pid):
                raise RemoteError(name, f"exited during startup; see {self.log(name)}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise RemoteError(name, f"not ready in time; see {self.log(name)}")
            time.sleep(0.05)

    def up(self, options: LabOptions, *, timeout: float = 20.0) -> LabStatus:
        """Write the files and start relay, primary and secondary; wait until each OMAPI
        port accepts. Refuses while any process of this lab runs."""
        options.validate()
        with self._exclusive():
            return self._up(options, timeout)

    def _up(self, options: LabOptions, timeout: float) -> LabStatus:
        if running := self.running():
            pids = ", ".join(f"{name} {pid}" for name, pid in running.items())
            raise RefusedError(
                f"a lab is running in {self.directory} (pids {pids}); run `dhcpfoctl lab down`"
                " first"
            )
        ports = LabPorts(options.base_port)
        roles = self.roles(options)
        wanted = [] if options.mixed else [(HOST, *port) for port in ports.relay_ports()]
        for role in roles:
            wanted += self._server_ports(options, role)
        self._check_ports(options, wanted)
        self.write_files(options)
        deadline = time.monotonic() + timeout
        omapi_host = _reachable(options.omapi_address)
        try:
            if not options.mixed:
                pid = self._spawn_relay(ports)
                self._wait_ready("relay", pid, self._relay_answers, deadline)
            pids = {role: self._spawn_server(role, options) for role in roles}
            for role in roles:
                port = ports.omapi(role)
                self._wait_ready(
                    role, pids[role], lambda port=port: _accepts(port, omapi_host), deadline
                )
        except BaseException:
            self._stop_all(timeout=5.0)
            raise
        return self.status()

    def start(self, role: str, *, timeout: float = 20.0) -> int:
        """Start one server of a lab that is up (e.g. after :meth:`kill`)."""
        options = self.options()
        self._check_role(role, options)
        if (pid := self.pid(role)) is not None:
            raise RefusedError(f"the {role} is already running (pid {pid})")
        ports = LabPorts(options.base_port)
        with self._exclusive():
            self._check_ports(options, self._server_ports(options, role))
            pid = self._spawn_server(role, options)
            port, host = ports.omapi(role), _reachable(options.omapi_address)
            try:
                self._wait_ready(
                    role, pid, lambda: _accepts(port, host), time.monotonic() + timeout
                )
            except BaseException:
                self._stop({role: pid}, timeout=5.0)
                raise
        return pid

    def kill(self, role: str, signum: int = signal.SIGTERM, *, timeout: float = 10.0) -> int:
        """Send ``signum`` to one server and wait (bounded) until it is gone, so that a
        ``start`` right after finds it stopped (the pid file stays; ``start`` reuses it)."""
        self._check_role(role, self.options() if self.state_file.exists() else None)
        pid = self.pid(role)
        if pid is None:
            raise LocalError(f"the {role} of {self.directory} is not running")
        os.kill(pid, signum)
        if not _wait_gone(pid, time.monotonic() + timeout):
            name = signal.Signals(signum).name
            raise RemoteError(role, f"still running {timeout:g} s after {name} (pid {pid})")
        return pid

    def down(self, *, timeout: float = 10.0) -> dict[str, str]:
        """SIGTERM every process of this lab, SIGKILL what outlives ``timeout``; remove
        the pid files (and the control socket) and nothing else. Returns name -> outcome."""
        if not self.directory.is_dir():
            return {}
        with self._exclusive():
            return self._stop_all(timeout)

    def _stop_all(self, timeout: float) -> dict[str, str]:
        outcome = self._stop(self.running(), timeout=timeout)
        for name in PROCESSES:  # stale ones too (a process that died on its own)
            self.pid_file(name).unlink(missing_ok=True)
        self.control.unlink(missing_ok=True)
        return outcome

    def _stop(self, pids: dict[str, int], *, timeout: float) -> dict[str, str]:
        """TERM ``pids``, KILL those alive after ``timeout``; their pid files go."""
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        outcome = {name: "stopped" for name in pids}
        for name, pid in pids.items():
            if not _wait_gone(pid, time.monotonic() + timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, time.monotonic() + 5.0)
                outcome[name] = "killed"
        for name in pids:
            self.pid_file(name).unlink(missing_ok=True)
        return outcome

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One lab command at a time changes this directory's processes (two concurrent
        ``up`` would both find it free)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / "lab.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RefusedError(
                    f"another `dhcpfoctl lab` command is changing {self.directory}"
                ) from None
            yield
        finally:
            os.close(fd)

    def clients(
        self,
        count: int,
        *,
        rate: float,
        duration: float,
        release: bool = True,
        seed: int = 0,
        progress: Callable[[PopulationStats], None] | None = None,
        until: Callable[[], bool] | None = None,
    ) -> PopulationStats:
        """Run ``count`` DHCP clients against both servers (each message goes to both, as
        a broadcast reaches both servers of a pair) for ``duration`` seconds, or until
        ``until()`` holds."""
        options = self.options()
        ports = LabPorts(options.base_port)
        roles = self.roles(options)
        if not any(self.pid(role) for role in roles):
            raise LocalError(f"no lab server is running in {self.directory}")
        # The clients relay from inside the pool's subnet, so that the server picks it.
        network = options.pool_range()[0]
        giaddr = str(network.network_address + 1) if options.mixed else CLIENT_GIADDR
        host = _reachable(options.dhcp_address)
        return run_population(
            [(host, ports.dhcp(role)) for role in roles],
            clients=count,
            rate=rate,
            duration=duration,
            giaddr=giaddr,
            release_at_end=release,
            seed=seed,
            progress=progress,
            until=until,
        )

    # -- relay

    def _relay_answers(self) -> bool:
        try:
            self.relay("status")
        except RemoteError:
            return False
        return True

    def relay(self, command: str) -> dict[str, object]:
        """Send one control command to the relay; its JSON answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5.0)
                sock.connect(str(self.control))
                sock.sendall(command.encode() + b"\n")
                data = b""
                while len(data) < 65536 and (chunk := sock.recv(4096)):
                    data += chunk
            answer = json.loads(data)
        except (OSError, ValueError):
            raise RemoteError(str(self.control), "the lab's relay does not answer") from None
        if not isinstance(answer, dict) or "error" in answer:
            raise RemoteError(str(self.control), "the relay refused the command")
        return answer

    def _no_relay_in_mixed(self, command: str) -> None:
        if self.state_file.exists() and (options := self.options()).mixed:
            raise LocalError(
                f"a mixed lab has no relay: `lab {command}` cannot act on the link to the dhcpd"
                f" at {options.partner_address} (stop our {options.role} with `lab kill`,"
                " or cut the link in the network)"
            )

    def cut(self, *, drop: bool = False) -> dict[str, object]:
        self._no_relay_in_mixed("cut")
        return self.relay("drop" if drop else "cut")

    def heal(self) -> dict[str, object]:
        self._no_relay_in_mixed("heal")
        return self.relay("heal")

    # -- status

    def status(self) -> LabStatus:
        configured = self.state_file.exists()
        options = self.options() if configured else None
        ports = LabPorts(options.base_port) if options is not None else None
        bound = {"tcp": _bound_sockets("tcp"), "udp": _bound_sockets("udp")}
        names = self.roles(options) if options is not None and options.mixed else PROCESSES
        processes: list[ProcessStatus] = []
        for name in names:
            where: list[tuple[str, str, int, str]] = []  # label, address, port, protocol
            if options is not None and ports is not None:
                if name == "relay":
                    where = [(f"to_{role}", HOST, ports.relay_to(role), "tcp") for role in ROLES]
                else:
                    labels = ("dhcp", "omapi", "failover")
                    for label, (host, port, protocol, _) in zip(
                        labels, self._server_ports(options, name), strict=True
                    ):
                        where.append((label, host, port, protocol))
            pid = self.pid(name)
            processes.append(
                ProcessStatus(
                    name,
                    pid,
                    pid is not None,
                    ports={label: port for label, _, port, _ in where},
                    listening={
                        label: _is_bound(bound[protocol], host, port)
                        for label, host, port, protocol in where
                    },
                    addresses={label: host for label, host, _, _ in where},
                )
            )
        relay = None
        if processes[-1].name == "relay" and processes[-1].running:
            with contextlib.suppress(RemoteError):
                relay = self.relay("status")
        partner = None
        if options is not None and options.mixed:
            host, port = options.failover_address()
            partner = {
                "role": options.role,
                "address": f"{host}:{port}",
                "partner_address": str(options.partner_address),
            }
            if options.partner_omapi is not None:
                partner["partner_omapi"] = options.partner_omapi
        return LabStatus(
            directory=str(self.directory),
            base_port=ports.base if ports else None,
            processes=processes,
            relay=relay,
            profile=str(self.profile),
            configured=configured,
            mode="mixed" if partner is not None else "pair",
            partner=partner,
        )


def _wait_gone(pid: int, deadline: float) -> bool:
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (it may hold a key)."""
    replace_atomically(path, text.encode("utf-8"))
