"""A real ISC dhcpd 4.4 failover pair in network namespaces, for integration tests.

Quick start::

    from .realpair import PairConfig, RealPair, LAB_KEY

    with RealPair(PairConfig(secondary_key=LAB_KEY)) as pair:   # up and normal/normal
        pair.omapi_states("primary").local_state       # FailoverState.NORMAL (via omshell)
        pair.cut_link()                                 # only the failover link goes down
        pair.wait_states(primary=FailoverState.COMMUNICATIONS_INTERRUPTED, timeout=30)
        pair.heal_link()
    # everything is gone here: dhcpd processes, namespaces, veths, temporary files

In tests use the fixtures of conftest.py instead: ``real_pair`` (one per session),
``normal_pair`` (that one, normal/normal before and after the test), ``make_pair(config)``
(a pair of one's own), ``run_cli`` (the real command against ``real_pair``) and
``require_real_dhcpd`` (skip, or fail when ``CI=true``, without root/dhcpd).

Timings with the defaults (mclt 10, max-response-delay 4) on a 2-core machine: up 0.6 s;
cut to both communications-interrupted about 4 s; heal to normal/normal 2-5 s; a partner
restarted within MCLT of a partner-down reaches normal after its recover-wait, about 10 s.

Topology (everything is created per run; ``P`` is a unique prefix such as ``dfo3a9c1``)::

    root netns                     netns P-p (primary)              netns P-s (secondary)
    P-pm 10.98.K.1/30 ==veth==     mg0 10.98.K.2/30  OMAPI :7911
    P-sm 10.98.K.5/30 ==veth========================================= mg0 10.98.K.6/30
                                   fo0 10.98.K.9/30 ===== veth ===== fo0 10.98.K.10/30
                                       failover :647                    failover :847
                                   eth0 10.99.0.1/24                eth0 10.99.0.2/24
    netns P-lan: bridge br0 ---------- + ------------------------------- +

``K`` is a /24 of 10.98.0.0/16 that no address or route of the root namespace touches
(chosen under a lock, so parallel runs never collide); those root-namespace addresses
exist only on this run's two management veths. The root namespace also routes each
server's failover address through its management veth, so that a tool probing "does the
partner's failover port answer?" reaches the real listener and never leaves the machine.
The LAN (pool subnet) exists only inside the namespaces.

Configuration: :class:`PairConfig` (all fields have defaults; times are small so that
transitions are fast). ``primary_key``/``secondary_key`` put ``omapi-key`` on that server
(``None``: OMAPI without authentication). ``failover_extra`` is inserted verbatim into both
servers' ``failover peer`` blocks (e.g. ``"max-balance 20; min-balance 5;"``);
``primary_leases``/``secondary_leases`` seed the lease files (copied; default empty).

Per server (``pair.primary``, ``pair.secondary``, ``pair.server("primary")``), a
:class:`Server`: ``role``, ``namespace``, ``conf_path``, ``leases_path``, ``log_path``,
``pid`` (``None`` when stopped), ``omapi_host``, ``omapi_port``, ``omapi_endpoint``
(``"HOST:PORT"``), ``key`` (:class:`~dhcpfoctl.keys.OmapiKey` or ``None``),
``failover_address``, ``failover_port``, ``lan_address``, ``external``. The pair: ``relationship``,
``config``, ``workdir``, ``prefix``, ``namespaces``, ``root_links``, ``lan_namespace``.

Operations (``which`` is ``"primary"`` or ``"secondary"``):

* ``start(which)``, ``stop(which, sig=SIGTERM)``, ``kill(which, sig=SIGKILL)``,
  ``restart(which)``, ``is_running(which)``: one dhcpd, by PID.
* ``cut_link()`` / ``heal_link()``: the failover veth only (``fo0`` down/up in the primary's
  namespace); OMAPI and the LAN stay up. ``isolate(which)``: the server's management veth
  down (silence from the root namespace, dhcpd still running); ``silence_omapi(which)``:
  only its OMAPI silent (policy routing). ``heal_all()`` undoes all of these;
  ``disturbed`` says whether any is in place.
* ``omapi_states(which)``: the ``failover-state`` object read with omshell (independent of
  the code under test) as :class:`FailoverView`, or ``None`` if the server does not answer.
  ``omshell(which, lines)`` runs any omshell session; ``omapi_set_local_state`` forces a state.
* ``wait_for(predicate, timeout, what=...)``: polls, bounded in count and time, and returns
  the first truthy value or raises :class:`LabTimeout`. ``wait_states(primary=...,
  secondary=..., timeout=...)`` waits for local states (``None`` = any).
* ``log_lines(which)``: dhcpd's log lines so far (text); ``log_entries(which)`` with times.
  The log files prefix every line with its UTC arrival time (``dhcpd -d`` has none).
* ``snapshot(dest)``: conf, leases and log of both servers at one instant: the servers are
  SIGSTOPped while their files are copied, a torn last lease record is cut off, and
  :class:`Snapshot` records ``taken_at`` (epoch seconds).
* ``RunCli(profile_path, no_profile_path)("status", "--json")`` runs the real ``dhcpfoctl``
  command as a subprocess against such a profile (``profile=False``: with none);
  ``.json(*args)`` returns (exit status, parsed ``--json`` output);
  ``.status_says_normal()`` is a ``wait_for`` predicate.
* ``write_profile(path, name="lab")``: a dhcpfoctl ``config.toml`` for this pair (default
  profile ``name``; servers labelled ``primary``/``secondary``); point ``DHCPFOCTL_CONFIG``
  at it.

External role (our own failover endpoint against ONE real dhcpd):
``PairConfig(external="secondary")`` (or ``"primary"``) builds the same network and writes
and checks the same dhcpd.conf for that role (read it with ``dhcpfoctl.conf.read_config``),
but never starts a dhcpd for it: ``start_pair`` starts only the other server and waits for
nothing (``wait_normal`` is ignored), ``start``/``restart``/``omshell``/``omapi_states``/
``wait_states`` on it raise :class:`ExternalRoleError`; ``stop``/``kill`` are no-ops and
``is_running`` is false. ``pair.external`` is its :class:`Server` (``Server.external`` is
true), or ``None``. The test's endpoint lives in that server's namespace, made with
tests/integration/netns.py (ctypes ``setns`` in a short-lived thread; the test's threads
never change namespace)::

    with RealPair(PairConfig(external="secondary")) as pair:   # only the primary runs
        listener = pair.external_listener()  # secondary's failover address:port, its netns
        conn = pair.external_connect(timeout=5)  # from its netns to the primary's port
        sock = socket_in_namespace(pair.secondary.namespace)  # anything else (netns.py)

Lab role (dhcpfoctl's lab server against ONE real dhcpd): ``PairConfig(lab="secondary")``
runs ``python -m dhcpfoctl.lab.server`` for that role on the same dhcpd.conf, in the same
namespace, with OMAPI on every address as dhcpd has it; every operation (start, stop, kill,
omshell, wait_states, log_lines, snapshot, cut_link) works on it as on a dhcpd. Its log
lines are the lab server's, dhcpd's wording for failover transitions. ``lab="both"`` (or
``lab=ROLES``) runs both roles as lab servers: a lab-lab pair on the same network. A lab
role's dhcpd.conf also says ``server-identifier`` (its LAN address): the lab server binds
DHCP to 0.0.0.0:67 and, unlike dhcpd, cannot tell which interface a broadcast came in on.

Clients on the LAN: ``add_lan_host(name, address=None, mac=None)`` makes a namespace
``PREFIX-NAME`` whose ``eth0`` is a port of the LAN bridge (an address in CIDR form for a
relay or a load generator; none for a DHCP client such as dhclient). It goes with the
pair, like every ``PREFIX-*`` namespace.

What the real dhcpd 4.4.3 does there: a primary connects (again 5 s after a refusal) and
sends CONNECT first on every link, made or accepted; a secondary also connects out but never
speaks first; either drops a link that saw no startup message after 15 s ("failover: link
startup timeout"). A connection from an address other than the peer's failover address (e.g.
from the root namespace) is logged ("failover: listener: no matching state") and dropped.
Making and accepting failover connections is not logged. The sockets are the caller's to
close; the namespaces go with the pair.

Cleanup always happens (``__exit__``, also on exceptions and KeyboardInterrupt): dhcpd is
stopped by PID, anything left inside our namespaces is killed, namespaces and veths are
deleted. A run that died without cleaning up (SIGKILL) is reaped by the next ``RealPair``
start: every run registers itself under ``/run/dhcpfoctl-realpair/`` with its owner PID.

Prerequisites (:func:`missing_prerequisites`): root, ``ip``, ``/usr/sbin/dhcpd``,
``omshell``, and no AppArmor profile confining dhcpd to /var/lib/dhcp.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import ipaddress
import json
import math
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self, TypeVar

from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.model import FailoverState

from .netns import connect_in_namespace, listener_in_namespace

Role = Literal["primary", "secondary"]
ROLES: tuple[Role, Role] = ("primary", "secondary")

DHCPD = "/usr/sbin/dhcpd"
OMAPI_PORT = 7911
PRIMARY_FAILOVER_PORT = 647
SECONDARY_FAILOVER_PORT = 847
LAN_NETWORK = ipaddress.IPv4Network("10.99.0.0/24")
#: Per-run /24s for the management and failover links are carved out of this.
MANAGEMENT_SUPERNET = ipaddress.IPv4Network("10.98.0.0/16")
REGISTRY = Path("/run/dhcpfoctl-realpair")

#: The key of the lab recipe (shared captures and vectors are signed with it).
LAB_KEY = OmapiKey("lab-key", "hmac-md5", Secret(b"dhcpfoctl-labkey"))

_T = TypeVar("_T")
_NO_IPV6 = " ".join(
    f"echo 1 > /proc/sys/net/ipv6/conf/{scope}/disable_ipv6;" for scope in ("default", "all")
)
#: Routing table and rule preference used by silence_omapi inside a server's namespace.
_SILENCE_TABLE = 97
#: Route types `ip route` prints before the destination.
_ROUTE_TYPES = frozenset(
    {
        "local",
        "broadcast",
        "unreachable",
        "blackhole",
        "prohibit",
        "throw",
        "unicast",
        "multicast",
        "anycast",
        "nat",
    }
)


class LabError(RuntimeError):
    """The harness could not do what was asked (a command failed, dhcpd did not start)."""


class LabTimeout(LabError):
    """:meth:`RealPair.wait_for` gave up; the message says what was awaited and last seen."""


class ExternalRoleError(LabError):
    """The operation needs a real dhcpd, but that role is external (no dhcpd runs there)."""


@dataclass(frozen=True)
class PairConfig:
    """What the two dhcpd.conf files say; times are small so that transitions are fast."""

    relationship: str = "lab"
    mclt: int = 10
    max_response_delay: int = 4
    max_unacked_updates: int = 10
    load_balance_max_seconds: int = 3
    split: int = 128
    #: Address ranges of the one failover pool; all inside 10.99.0.0/24.
    pool_ranges: tuple[tuple[str, str], ...] = (("10.99.0.100", "10.99.0.250"),)
    default_lease_time: int = 120
    max_lease_time: int = 120
    #: Statements added to both servers' ``failover peer`` block, verbatim.
    failover_extra: str = ""
    primary_key: OmapiKey | None = None
    secondary_key: OmapiKey | None = None
    primary_leases: Path | None = None
    secondary_leases: Path | None = None
    #: Seconds to wait for normal/normal when the pair starts.
    up_timeout: float = 60.0
    #: A role whose dhcpd is never started: its namespace, links and dhcpd.conf are there,
    #: but the test drives its own failover endpoint in that namespace (see the module doc).
    external: Role | None = None
    #: The role(s) served by dhcpfoctl's lab server (``python -m dhcpfoctl.lab.server``)
    #: instead of dhcpd, on the same dhcpd.conf, namespace and addresses: one role for a
    #: mixed pair, ``ROLES`` (or ``"both"``) for a lab-lab pair.
    lab: Role | tuple[Role, ...] | Literal["both"] | None = None

    @property
    def lab_roles(self) -> frozenset[Role]:
        """The roles run by the lab server (``lab`` normalised)."""
        if self.lab is None:
            return frozenset()
        if self.lab == "both":
            return frozenset(ROLES)
        if isinstance(self.lab, tuple):
            return frozenset(self.lab)
        return frozenset({self.lab})


class FailoverView(NamedTuple):
    """The integer attributes of a ``failover-state`` object, as omshell read them."""

    local_state: FailoverState
    partner_state: FailoverState
    local_stos: int
    partner_stos: int
    mclt: int
    hierarchy: int
    max_response_delay: int
    cur_unacked_updates: int


class LogLine(NamedTuple):
    at: float  # epoch seconds when the harness received the line
    text: str


@dataclass(frozen=True)
class SnapshotFiles:
    conf: Path
    leases: Path
    log: Path


@dataclass(frozen=True)
class Snapshot:
    taken_at: float
    files: dict[Role, SnapshotFiles]


@dataclass
class Server:
    role: Role
    namespace: str
    conf_path: Path
    leases_path: Path
    log_path: Path
    pid_path: Path
    omapi_host: str
    omapi_port: int
    key: OmapiKey | None
    failover_address: str
    failover_port: int
    lan_address: str
    #: No dhcpd is ever started for it (``PairConfig.external``).
    external: bool = False
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pump: _LogPump | None = field(default=None, repr=False)
    _log: list[LogLine] = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int | None:
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def omapi_endpoint(self) -> str:
        return f"{self.omapi_host}:{self.omapi_port}"


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run a pair (empty when everything is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    for tool, package in (("ip", "iproute2"), ("omshell", "isc-dhcp-server")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} ({package})")
    if not os.access(DHCPD, os.X_OK):
        missing.append(f"{DHCPD} (isc-dhcp-server)")
    profiles = Path("/sys/kernel/security/apparmor/profiles")
    with contextlib.suppress(OSError):
        if re.search(r"dhcpd \(enforce\)", profiles.read_text()):
            missing.append(
                "an unconfined dhcpd: AppArmor enforces usr.sbin.dhcpd, which forbids lease "
                "files outside /var/lib/dhcp (aa-complain /usr/sbin/dhcpd)"
            )
    return missing


def _run(
    *args: str, check: bool = True, timeout: float = 20, stdin_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, input=stdin_text, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a live owner apart from a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _netns_pids(namespace: str) -> list[int]:
    out = _run("ip", "netns", "pids", namespace, check=False).stdout
    return [int(word) for word in out.split()]


def _remove_network(prefix: str) -> list[str]:
    """Kill what lives in ``prefix``'s namespaces and delete them; returns problems seen."""
    problems = []
    listed = _run("ip", "netns", "list", check=False).stdout.splitlines()
    existing = {line.split()[0] for line in listed if line.strip()}
    # The servers' and the LAN's namespaces, and any host added with add_lan_host.
    for namespace in sorted(n for n in existing if n.startswith(f"{prefix}-")):
        # Everything in a namespace this harness created was started by this harness.
        for pid in _netns_pids(namespace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        result = _run("ip", "netns", "del", namespace, check=False)
        if result.returncode != 0:
            problems.append(f"ip netns del {namespace}: {result.stderr.strip()}")
    for link in (f"{prefix}-pm", f"{prefix}-sm"):
        # Deleting the namespace removes the peer end and with it this end; this is a backstop.
        if Path(f"/sys/class/net/{link}").exists():
            _run("ip", "link", "del", link, check=False)
    return problems


def reap_stale_runs() -> list[str]:
    """Remove the namespaces, veths and own workdirs of runs whose owner process is gone.

    Returns the prefixes reaped.
    """
    reaped: list[str] = []
    if not REGISTRY.is_dir():
        return reaped
    for marker in REGISTRY.glob("*.owner"):
        try:
            pid_text, start_time, *workdir = marker.read_text().split()
        except (OSError, ValueError):
            continue
        if _process_start_time(int(pid_text)) == start_time:
            continue  # still owned by a live run
        _remove_network(marker.stem)
        if workdir:
            shutil.rmtree(workdir[0], ignore_errors=True)
        marker.unlink(missing_ok=True)
        reaped.append(marker.stem)
    return reaped


def _free_management_net() -> ipaddress.IPv4Network:
    """A /24 of MANAGEMENT_SUPERNET that overlaps no root-namespace address or route."""
    used: list[ipaddress.IPv4Network] = []
    for line in _run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
        words = line.split()
        used.append(ipaddress.IPv4Interface(words[words.index("inet") + 1]).network)
    for line in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        words = line.split()
        target = words[1] if words[0] in _ROUTE_TYPES else words[0]
        if target != "default" and re.match(r"\d+\.\d+\.\d+\.\d+", target):
            used.append(ipaddress.IPv4Network(target, strict=False))
    # Skip 10.98.0.0/24: the hand-run shell lab recipe (outside this repository) uses it.
    for candidate in list(MANAGEMENT_SUPERNET.subnets(new_prefix=24))[1:]:
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise LabError(f"no free /24 left in {MANAGEMENT_SUPERNET} for the management veths")


def _trim_torn_tail(text: str) -> str:
    """Cut off a lease record that dhcpd had only partly written (open brace, no close)."""
    end = text.rfind("\n}\n")
    tail = text[end + 3 :] if end >= 0 else text
    if "{" in tail or (tail and not tail.endswith("\n")):
        return text[: end + 3] if end >= 0 else ""
    return text


class _LogPump:
    """Copies dhcpd's stderr into the log file and memory, stamping each line on arrival.

    Every read happens under ``lock``, so whoever holds the lock and finds the pipe empty
    knows that all bytes written so far are in the file (see :meth:`drain`).
    """

    def __init__(self, fd: int, log_path: Path, sink: list[LogLine]) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self._log_path = log_path
        self._sink = sink
        self._partial = b""
        self._eof = False
        self._thread = threading.Thread(target=self._loop, name=f"dhcpd-log-{fd}", daemon=True)
        self._thread.start()

    def _pending(self) -> int:
        return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]

    def _read_once(self) -> None:
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self._eof = True
            chunk = b"\n" if self._partial else b""
        now = time.time()
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        if not lines:
            return
        stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
        with self._log_path.open("a", encoding="utf-8") as log:
            for raw in lines:
                text = raw.decode("utf-8", "replace")
                self._sink.append(LogLine(now, text))
                log.write(f"{stamp} {text}\n")

    def _loop(self) -> None:
        while not self._eof:
            readable, _, _ = select.select([self.fd], [], [], 0.5)
            if readable:
                with self.lock:
                    self._read_once()

    def drain(self) -> None:
        """With ``lock`` held: consume everything already in the pipe."""
        while not self._eof and self._pending() > 0:
            self._read_once()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if not self._thread.is_alive():
            os.close(self.fd)


class RealPair:
    """Two dhcpd 4.4 failover peers in fresh network namespaces; see the module docstring."""

    def __init__(self, config: PairConfig | None = None, workdir: Path | None = None) -> None:
        self.config = config or PairConfig()
        for first, last in self.config.pool_ranges:
            for address in (first, last):
                if ipaddress.IPv4Address(address) not in LAN_NETWORK:
                    raise ValueError(f"pool address {address} is outside {LAN_NETWORK}")
        if self.config.external is not None and self.config.external not in ROLES:
            raise ValueError(
                f"external must be one of {ROLES} or None, not {self.config.external!r}"
            )
        if not self.config.lab_roles <= set(ROLES):
            raise ValueError(
                f"lab must name roles of {ROLES} or be 'both', not {self.config.lab!r}"
            )
        self.relationship = self.config.relationship
        self.prefix = "dfo" + secrets.token_hex(3)[:5]
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(f"/tmp/{self.prefix}")
        self.lan_namespace = f"{self.prefix}-lan"
        self.namespaces = (f"{self.prefix}-p", f"{self.prefix}-s", self.lan_namespace)
        self.root_links = (f"{self.prefix}-pm", f"{self.prefix}-sm")
        self._net: ipaddress.IPv4Network | None = None
        self._servers: dict[Role, Server] = {}
        self._link_cut = False
        self._isolated: set[Role] = set()
        self._silenced: set[Role] = set()
        self._closed = False

    # ---- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start_pair()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        problems = self.close()
        if problems and exc is None:
            raise LabError("cleanup incomplete: " + "; ".join(problems))

    def start_pair(self, *, wait_normal: bool = True) -> None:
        """Build the network, write configs, start both servers, wait for normal/normal.

        With ``config.external`` set, only the other role's dhcpd is started and nothing is
        awaited (``wait_normal`` is ignored): the test drives the external endpoint.
        """
        missing = missing_prerequisites()
        if missing:
            raise LabError("cannot run a real dhcpd pair, missing: " + ", ".join(missing))
        REGISTRY.mkdir(parents=True, exist_ok=True)
        reap_stale_runs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (REGISTRY / "alloc.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # address choice and veth creation as one step
            owner = REGISTRY / f"{self.prefix}.owner"
            own_workdir = str(self.workdir) if self._own_workdir else ""
            owner.write_text(f"{os.getpid()} {_process_start_time(os.getpid())} {own_workdir}\n")
            self._net = _free_management_net()
            self._servers = {role: self._describe(role) for role in ROLES}
            self._build_network()
        for server in self._servers.values():
            self._write_conf(server)
            seed = (
                self.config.primary_leases
                if server.role == "primary"
                else (self.config.secondary_leases)
            )
            if seed is not None:
                shutil.copyfile(seed, server.leases_path)
            else:
                server.leases_path.touch()
        for role in ROLES:
            if role != self.config.external:
                self.start(role)
        if wait_normal and self.config.external is None:
            self.wait_states(
                primary=FailoverState.NORMAL,
                secondary=FailoverState.NORMAL,
                timeout=self.config.up_timeout,
            )

    def close(self) -> list[str]:
        """Stop everything this pair started and delete its network; idempotent.

        Returns the problems met (each step is attempted even if an earlier one failed).
        """
        if self._closed:
            return []
        self._closed = True
        problems = []
        for role, server in self._servers.items():
            try:
                self._stop_process(server, signal.SIGTERM, timeout=5)
            except Exception as exc:  # cleanup must go on whatever happened
                problems.append(f"stopping {role}: {exc}")
        problems += _remove_network(self.prefix)
        (REGISTRY / f"{self.prefix}.owner").unlink(missing_ok=True)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    # ---- description -------------------------------------------------------------------

    def _describe(self, role: Role) -> Server:
        assert self._net is not None
        hosts = list(self._net.hosts())  # .1 .2 | .5 .6 | .9 .10 are the three /30s
        is_primary = role == "primary"
        return Server(
            role=role,
            namespace=f"{self.prefix}-{role[0]}",
            conf_path=self.workdir / f"{role}.conf",
            leases_path=self.workdir / f"{role}.leases",
            log_path=self.workdir / f"{role}.log",
            pid_path=self.workdir / f"{role}.pid",
            omapi_host=str(hosts[1] if is_primary else hosts[5]),
            omapi_port=OMAPI_PORT,
            key=self.config.primary_key if is_primary else self.config.secondary_key,
            failover_address=str(hosts[8] if is_primary else hosts[9]),
            failover_port=PRIMARY_FAILOVER_PORT if is_primary else SECONDARY_FAILOVER_PORT,
            lan_address=str(LAN_NETWORK[1] if is_primary else LAN_NETWORK[2]),
            external=role == self.config.external,
        )

    @property
    def primary(self) -> Server:
        return self._servers["primary"]

    @property
    def secondary(self) -> Server:
        return self._servers["secondary"]

    def server(self, which: Role) -> Server:
        return self._servers[which]

    def partner(self, which: Role) -> Server:
        return self._servers["secondary" if which == "primary" else "primary"]

    @property
    def external(self) -> Server | None:
        """The server of ``config.external`` (no dhcpd; the test's endpoint), or ``None``."""
        role = self.config.external
        return None if role is None else self._servers[role]

    def _real(self, which: Role, doing: str) -> Server:
        server = self.server(which)
        if server.external:
            raise ExternalRoleError(
                f"cannot {doing}: {which} is external in this pair (no dhcpd runs in "
                f"{server.namespace}; the test drives that endpoint itself)"
            )
        return server

    def _external_server(self) -> Server:
        server = self.external
        if server is None:
            raise LabError("this pair has no external role (PairConfig(external=...))")
        return server

    # ---- the external endpoint's sockets (tests/integration/netns.py) ------------------

    def external_listener(self, backlog: int = 1) -> socket.socket:
        """A TCP socket listening where the external server's dhcpd would listen: in its
        namespace, on its failover address and port. The caller closes it."""
        server = self._external_server()
        return listener_in_namespace(
            server.namespace, server.failover_address, server.failover_port, backlog
        )

    def external_connect(self, timeout: float = 5.0) -> socket.socket:
        """A TCP socket from the external server's namespace, connected to the real
        partner's failover address and port (source: the external's failover address).
        The caller closes it; its timeout stays ``timeout``."""
        server = self._external_server()
        peer = self.partner(server.role)
        return connect_in_namespace(
            server.namespace, (peer.failover_address, peer.failover_port), timeout
        )

    # ---- network -----------------------------------------------------------------------

    def _build_network(self) -> None:
        assert self._net is not None
        hosts = list(self._net.hosts())
        p, s = self.primary, self.secondary
        for namespace in self.namespaces:
            _run("ip", "netns", "add", namespace)
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
            # No IPv6 chatter (RS, MLD, DAD) on our links. Best effort: a kernel may lack
            # IPv6, and /proc/sys/net seen from inside is the namespace's own.
            _run("ip", "netns", "exec", namespace, "sh", "-c", _NO_IPV6, check=False)
        lan = self.lan_namespace
        _run(
            "ip",
            "-n",
            lan,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        )
        _run("ip", "-n", lan, "link", "set", "br0", "up")
        for server in (p, s):
            leg = f"{server.role[0]}-lan"
            _run(
                "ip",
                "link",
                "add",
                leg,
                "netns",
                lan,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                server.namespace,
            )
            _run("ip", "-n", lan, "link", "set", leg, "master", "br0", "up")
            _run(
                "ip",
                "-n",
                server.namespace,
                "addr",
                "add",
                f"{server.lan_address}/{LAN_NETWORK.prefixlen}",
                "dev",
                "eth0",
            )
            _run("ip", "-n", server.namespace, "link", "set", "eth0", "up")
        _run(
            "ip",
            "link",
            "add",
            "fo0",
            "netns",
            p.namespace,
            "type",
            "veth",
            "peer",
            "name",
            "fo0",
            "netns",
            s.namespace,
        )
        for server in (p, s):
            _run(
                "ip",
                "-n",
                server.namespace,
                "addr",
                "add",
                f"{server.failover_address}/30",
                "dev",
                "fo0",
            )
            _run("ip", "-n", server.namespace, "link", "set", "fo0", "up")
        for server, link, root_address in (
            (p, self.root_links[0], hosts[0]),
            (s, self.root_links[1], hosts[4]),
        ):
            _run(
                "ip",
                "link",
                "add",
                link,
                "type",
                "veth",
                "peer",
                "name",
                "mg0",
                "netns",
                server.namespace,
            )
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6").write_text("1")
            _run("ip", "addr", "add", f"{root_address}/30", "dev", link)
            _run("ip", "link", "set", link, "up")
            _run(
                "ip", "-n", server.namespace, "addr", "add", f"{server.omapi_host}/30", "dev", "mg0"
            )
            _run("ip", "-n", server.namespace, "link", "set", "mg0", "up")
            _run(
                "ip",
                "route",
                "add",
                f"{server.failover_address}/32",
                "via",
                server.omapi_host,
                "dev",
                link,
            )

    def add_lan_host(self, name: str, address: str | None = None, mac: str | None = None) -> str:
        """A namespace ``PREFIX-NAME`` with ``eth0`` on the pair's LAN bridge; its name.

        ``address`` (CIDR, e.g. ``"10.99.0.3/24"``) is configured if given (a relay, a
        load generator); without it the host is a bare DHCP client. ``mac`` sets eth0's
        hardware address. It goes with the pair (every ``PREFIX-*`` namespace does).
        """
        namespace = f"{self.prefix}-{name}"
        leg = f"h-{name}"[:15]
        _run("ip", "netns", "add", namespace)
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        _run("ip", "netns", "exec", namespace, "sh", "-c", _NO_IPV6, check=False)
        _run("ip", "link", "add", leg, "netns", self.lan_namespace, "type", "veth",
             "peer", "name", "eth0", "netns", namespace)  # fmt: skip
        _run("ip", "-n", self.lan_namespace, "link", "set", leg, "master", "br0", "up")
        if mac is not None:
            _run("ip", "-n", namespace, "link", "set", "eth0", "address", mac)
        if address is not None:
            _run("ip", "-n", namespace, "addr", "add", address, "dev", "eth0")
        _run("ip", "-n", namespace, "link", "set", "eth0", "up")
        return namespace

    def cut_link(self) -> None:
        """Take the failover veth down (primary's end); OMAPI and the LAN stay up."""
        _run("ip", "-n", self.primary.namespace, "link", "set", "fo0", "down")
        self._link_cut = True

    def heal_link(self) -> None:
        _run("ip", "-n", self.primary.namespace, "link", "set", "fo0", "up")
        self._link_cut = False

    @property
    def link_is_cut(self) -> bool:
        return self._link_cut

    def isolate(self, which: Role) -> None:
        """Take ``which``'s management veth down: from the root namespace its OMAPI and its
        failover port meet silence (no reset), while its dhcpd keeps running."""
        _run("ip", "-n", self.server(which).namespace, "link", "set", "mg0", "down")
        self._isolated.add(which)

    def silence_omapi(self, which: Role) -> None:
        """Let ``which``'s OMAPI meet silence from the root namespace while its failover port
        still answers there.

        Replies sourced from the OMAPI address (the failover port has its own) are routed
        into a blackhole by a policy rule inside the server's namespace: no nftables needed.
        """
        server = self.server(which)
        table = str(_SILENCE_TABLE)
        _run("ip", "-n", server.namespace, "route", "add", "blackhole", "default", "table", table)
        _run("ip", "-n", server.namespace, "rule", "add", "from", server.omapi_host,
             "lookup", table, "pref", table)  # fmt: skip
        self._silenced.add(which)

    @property
    def disturbed(self) -> bool:
        """Whether a cut, an isolation or a silenced OMAPI is in place."""
        return self._link_cut or bool(self._isolated or self._silenced)

    def heal_all(self) -> None:
        """Undo :meth:`cut_link`, :meth:`isolate` and :meth:`silence_omapi`."""
        if self._link_cut:
            self.heal_link()
        for which in sorted(self._isolated):
            _run("ip", "-n", self.server(which).namespace, "link", "set", "mg0", "up")
        self._isolated.clear()
        for which in sorted(self._silenced):
            namespace, table = self.server(which).namespace, str(_SILENCE_TABLE)
            _run("ip", "-n", namespace, "rule", "del", "pref", table)
            _run("ip", "-n", namespace, "route", "flush", "table", table)
        self._silenced.clear()

    # ---- configuration -----------------------------------------------------------------

    def conf_text(self, which: Role) -> str:
        """The dhcpd.conf this harness writes for ``which``."""
        cfg = self.config
        server, peer = self.server(which), self.partner(which)
        lines = [
            f"# {which} of failover pair {self.prefix} (tests/integration/realpair.py)",
            "authoritative;",
            "ddns-update-style none;",
            "ping-check false;",
            f"default-lease-time {cfg.default_lease_time};",
            f"max-lease-time {cfg.max_lease_time};",
            f"omapi-port {server.omapi_port};",
        ]
        if which in cfg.lab_roles:
            # The lab server binds 0.0.0.0 and cannot tell which interface a broadcast came
            # in on, as dhcpd can: its LAN address is its identifier and locates the subnet.
            lines.append(f"server-identifier {server.lan_address};")
        if server.key is not None:
            secret = base64.b64encode(server.key.secret.reveal()).decode()
            lines += [
                f"key {server.key.name} {{",
                f"  algorithm {server.key.algorithm};",
                f'  secret "{secret}";',
                "}",
                f"omapi-key {server.key.name};",
            ]
        lines += [
            "",
            f'failover peer "{self.relationship}" {{',
            f"  {which};",
            f"  address {server.failover_address};",
            f"  port {server.failover_port};",
            f"  peer address {peer.failover_address};",
            f"  peer port {peer.failover_port};",
            f"  max-response-delay {cfg.max_response_delay};",
            f"  max-unacked-updates {cfg.max_unacked_updates};",
            f"  load balance max seconds {cfg.load_balance_max_seconds};",
        ]
        if which == "primary":  # dhcpd refuses split on a secondary; mclt comes from primary
            lines += [f"  mclt {cfg.mclt};", f"  split {cfg.split};"]
        if cfg.failover_extra:
            lines.append(f"  {cfg.failover_extra}")
        lines += [
            "}",
            "",
            f"subnet {LAN_NETWORK.network_address} netmask {LAN_NETWORK.netmask} {{",
            f"  option subnet-mask {LAN_NETWORK.netmask};",
            "  pool {",
            f'    failover peer "{self.relationship}";',
            *(f"    range {first} {last};" for first, last in cfg.pool_ranges),
            "  }",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def _write_conf(self, server: Server) -> None:
        server.conf_path.touch(mode=0o600)  # it may hold the OMAPI key's secret
        server.conf_path.write_text(self.conf_text(server.role))
        check = _run(DHCPD, "-4", "-t", "-q", "-cf", str(server.conf_path), check=False)
        if check.returncode != 0:
            raise LabError(f"dhcpd -t rejects {server.conf_path}:\n{check.stderr.strip()}")

    # ---- processes ---------------------------------------------------------------------

    def is_running(self, which: Role) -> bool:
        return self.server(which).pid is not None

    def start(self, which: Role, timeout: float = 10) -> int:
        """Start ``which``'s dhcpd; returns its PID once it logged "Server starting service"."""
        server = self._real(which, "start its dhcpd")
        if server.pid is not None:
            raise LabError(f"{which} dhcpd is already running (pid {server.pid})")
        server.pid_path.unlink(missing_ok=True)  # dhcpd refuses a pid file naming a live pid
        server.leases_path.touch()
        seen = len(server._log)
        read_end, write_end = os.pipe()
        # `ip netns exec` execs the server in place, so the child's PID is the server's.
        if which in self.config.lab_roles:
            command = [
                sys.executable,
                "-m",
                "dhcpfoctl.lab.server",
                "--config",
                str(server.conf_path),
                "--leases",
                str(server.leases_path),
                "--dhcp-address",
                "0.0.0.0",
                "--dhcp-port",
                "67",
                "--omapi-address",
                "0.0.0.0",
                "--name",
                which,
            ]
            ready = "ready:"
        else:
            command = [
                DHCPD,
                "-4",
                "-f",
                "-d",
                "-cf",
                str(server.conf_path),
                "-lf",
                str(server.leases_path),
                "-pf",
                str(server.pid_path),
                "eth0",
            ]
            ready = "Server starting service"
        process = subprocess.Popen(
            ["ip", "netns", "exec", server.namespace, *command],
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=write_end,
            start_new_session=True,  # a Ctrl-C on the terminal reaches us, not dhcpd
        )
        os.close(write_end)
        server._process = process
        server._pump = _LogPump(read_end, server.log_path, server._log)

        def started() -> bool:
            if process.poll() is not None:
                tail = "\n".join(line.text for line in server._log[seen:][-15:])
                raise LabError(f"{which} exited {process.returncode} at start:\n{tail}")
            return any(ready in line.text for line in server._log[seen:])

        self.wait_for(started, timeout, what=f"{which} dhcpd to start")
        return process.pid

    def stop(self, which: Role, sig: signal.Signals = signal.SIGTERM, timeout: float = 10) -> None:
        """Signal ``which``'s dhcpd by PID and wait for it (SIGKILL after ``timeout``)."""
        self._stop_process(self.server(which), sig, timeout)

    def kill(self, which: Role, sig: signal.Signals = signal.SIGKILL) -> None:
        self._stop_process(self.server(which), sig, timeout=10)

    def restart(self, which: Role) -> int:
        self._real(which, "restart its dhcpd")
        self.stop(which)
        return self.start(which)

    @staticmethod
    def _stop_process(server: Server, sig: signal.Signals, timeout: float) -> None:
        process = server._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            _signal_if_alive(process.pid, signal.SIGCONT)  # in case a snapshot left it stopped
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if server._pump is not None:
            server._pump.join(timeout=5)
        server._process = None
        server._pump = None
        server.pid_path.unlink(missing_ok=True)

    # ---- OMAPI (omshell, independent of dhcpfoctl's own client) ------------------------

    def omshell(self, which: Role, lines: Sequence[str], timeout: float = 5) -> str:
        """Run omshell against ``which`` (connect and key lines are added); its output."""
        server = self._real(which, "talk OMAPI to it")
        script = [f"server {server.omapi_host}", f"port {server.omapi_port}"]
        if server.key is not None:
            if server.key.algorithm != "hmac-md5":
                script.append(f"key-algorithm {server.key.algorithm}")
            secret = base64.b64encode(server.key.secret.reveal()).decode()
            script.append(f"key {server.key.name} {secret}")
        script += ["connect", *lines]
        try:
            result = subprocess.run(
                ["omshell"],
                input="\n".join(script) + "\n",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return ""
        return result.stdout + result.stderr

    def _open_failover_state(self) -> list[str]:
        return ["new failover-state", f'set name = "{self.relationship}"', "open"]

    def omapi_states(self, which: Role, timeout: float = 5) -> FailoverView | None:
        """``which``'s failover-state over OMAPI, or ``None`` if it does not answer."""
        output = self.omshell(which, self._open_failover_state(), timeout)
        values: dict[str, int] = {}
        for match in re.finditer(r"^([a-z-]+) = ((?:[0-9a-f]{2}:){3}[0-9a-f]{2})$", output, re.M):
            values[match[1]] = int(match[2].replace(":", ""), 16)
        if "local-state" not in values:
            return None
        return FailoverView(
            local_state=FailoverState(values["local-state"]),
            partner_state=FailoverState(values["partner-state"]),
            local_stos=values["local-stos"],
            partner_stos=values["partner-stos"],
            mclt=values["mclt"],
            hierarchy=values["hierarchy"],
            max_response_delay=values["max-response-delay"],
            cur_unacked_updates=values["cur-unacked-updates"],
        )

    def omapi_set_local_state(self, which: Role, state: FailoverState) -> None:
        """Force ``which``'s local-state with omshell (verify with :meth:`omapi_states`)."""
        output = self.omshell(
            which, [*self._open_failover_state(), f"set local-state = {int(state)}", "update"]
        )
        if "can't" in output or "dhcpctl_connect" in output:
            raise LabError(f"omshell could not set {which} local-state: {output.strip()}")

    # ---- waiting -----------------------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[], _T],
        timeout: float,
        *,
        interval: float = 0.25,
        what: str = "condition",
        describe: Callable[[], object] | None = None,
    ) -> _T:
        """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` passes.

        At most ``timeout / interval + 1`` polls. On timeout :class:`LabTimeout` names
        ``what`` and, if given, ``describe()`` (e.g. the states last seen).
        """
        deadline = time.monotonic() + timeout
        for _ in range(math.ceil(timeout / interval) + 1):
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                break
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        seen = f"; last seen: {describe()}" if describe is not None else ""
        raise LabTimeout(f"timed out after {timeout:g}s waiting for {what}{seen}")

    def wait_states(
        self,
        *,
        primary: FailoverState | None = None,
        secondary: FailoverState | None = None,
        timeout: float = 60,
    ) -> dict[Role, FailoverView | None]:
        """Wait until each given server's local-state is the one wanted; the views seen."""
        asked: tuple[tuple[Role, FailoverState | None], ...] = (
            ("primary", primary),
            ("secondary", secondary),
        )
        wanted = {role: state for role, state in asked if state is not None}
        for role in wanted:
            self._real(role, "wait for its failover state")
        seen: dict[Role, FailoverView | None] = {}

        def reached() -> bool:
            seen.update({role: self.omapi_states(role) for role in wanted})
            return all(
                view is not None and view.local_state == wanted[role] for role, view in seen.items()
            )

        def describe() -> str:
            return ", ".join(
                f"{role}={'unreachable' if view is None else view.local_state.keyword}"
                for role, view in seen.items()
            )

        wants = ", ".join(f"{role}={state.keyword}" for role, state in wanted.items())
        self.wait_for(reached, timeout, interval=0.3, what=wants, describe=describe)
        return seen

    # ---- logs and snapshots ------------------------------------------------------------

    def log_entries(self, which: Role) -> list[LogLine]:
        """Every line ``which``'s dhcpd logged (over restarts), with arrival times."""
        return list(self.server(which)._log)

    def log_lines(self, which: Role) -> list[str]:
        return [line.text for line in self.server(which)._log]

    def snapshot(self, dest: Path) -> Snapshot:
        """Copy conf, leases and log of both servers as of one instant into ``dest``.

        Running servers are SIGSTOPped for the few milliseconds of the copy, their log pipes
        drained first, so the leases and logs describe the same moment (``taken_at``).
        """
        dest.mkdir(parents=True, exist_ok=True)
        running = [s for s in self._servers.values() if s.pid is not None]
        with contextlib.ExitStack() as stack:
            for server in running:
                pid = server.pid or 0
                os.kill(pid, signal.SIGSTOP)
                stack.callback(_signal_if_alive, pid, signal.SIGCONT)
            self._wait_stopped(running)
            for server in running:
                assert server._pump is not None
                stack.enter_context(server._pump.lock)
                server._pump.drain()
            taken_at = time.time()
            files = {}
            for role, server in self._servers.items():
                copied = SnapshotFiles(
                    conf=dest / server.conf_path.name,
                    leases=dest / server.leases_path.name,
                    log=dest / server.log_path.name,
                )
                shutil.copyfile(server.conf_path, copied.conf)
                copied.leases.write_text(_trim_torn_tail(server.leases_path.read_text()))
                if server.log_path.exists():
                    shutil.copyfile(server.log_path, copied.log)
                else:
                    copied.log.touch()
                files[role] = copied
        return Snapshot(taken_at=taken_at, files=files)

    # ---- dhcpfoctl profile -------------------------------------------------------------

    def write_profile(self, path: Path, name: str = "lab") -> Path:
        """Write a dhcpfoctl ``config.toml`` (format: dhcpfoctl/profile.py) for this pair.

        Profile ``name`` is the default; its servers are labelled ``primary`` and
        ``secondary`` with OMAPI endpoint, inline key (if any), failover address and port,
        and their dhcpd.conf and leases paths. The file is mode 0600 (it may hold a secret).
        """
        lines = [f"default = {json.dumps(name)}", "", f"[profiles.{name}]"]
        lines.append(f"relationships = [{json.dumps(self.relationship)}]")
        for server in self._servers.values():
            lines += [
                "",
                f"[profiles.{name}.servers.{server.role}]",
                f"host = {json.dumps(server.omapi_host)}",
                f"port = {server.omapi_port}",
                f"failover_address = {json.dumps(server.failover_address)}",
                f"failover_port = {server.failover_port}",
                f"config = {json.dumps(str(server.conf_path))}",
                f"leases = {json.dumps(str(server.leases_path))}",
            ]
            if server.key is not None:
                secret = base64.b64encode(server.key.secret.reveal()).decode()
                key_text = f"{server.key.algorithm}:{server.key.name}:{secret}"
                lines.append(f"key = {json.dumps(key_text)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text("\n".join(lines) + "\n")
        return path

    def _wait_stopped(self, servers: list[Server]) -> None:
        def all_stopped() -> bool:
            return all(_process_state(s.pid or 0) in {"T", None} for s in servers)

        self.wait_for(all_stopped, 2, interval=0.005, what="dhcpd to stop for the snapshot")


def _signal_if_alive(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _process_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


#: The command under test, as an operator runs it (a fresh interpreter per call).
CLI = (sys.executable, "-m", "dhcpfoctl")


class RunCli:
    """Runs ``dhcpfoctl`` with a clean environment: no colour, wide, no inherited key."""

    def __init__(self, profile_path: Path, no_profile_path: Path) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("DHCPFOCTL_")}
        base.update(NO_COLOR="1", COLUMNS="200", TERM="dumb")
        self._env = {
            True: {**base, "DHCPFOCTL_CONFIG": str(profile_path)},
            False: {**base, "DHCPFOCTL_CONFIG": str(no_profile_path)},
        }

    def __call__(self, *args: str, profile: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env=self._env[profile],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def json(self, *args: str, profile: bool = True) -> tuple[int, Any]:
        """Exit status and parsed stdout of ``dhcpfoctl ARGS --json``."""
        result = self(*args, "--json", profile=profile)
        try:
            return result.returncode, json.loads(result.stdout)
        except json.JSONDecodeError:
            raise LabError(
                f"dhcpfoctl {' '.join(args)} --json exited {result.returncode} without JSON: "
                f"{result.stderr.strip()}"
            ) from None

    def status_says_normal(self) -> bool:
        """``dhcpfoctl status`` exits OK and every view is normal/normal."""
        code, document = self.json("status")
        states = {
            (view.get("local_state"), view.get("partner_state")) for view in document["views"]
        }
        return code == 0 and states == {("normal", "normal")}


def perfdhcp_counts(output: str) -> dict[str, tuple[int, int]]:
    """(sent, received) per exchange ("DISCOVER-OFFER", "REQUEST-ACK") of perfdhcp's report."""
    counts: dict[str, list[int]] = {}
    section = ""
    for line in output.splitlines():
        if line.startswith("***Statistics for: "):
            section = line.removeprefix("***Statistics for: ").strip("*")
            counts[section] = [0, 0]
        elif section and line.startswith(("sent packets: ", "received packets: ")):
            counts[section][0 if line.startswith("sent") else 1] = int(line.split(":")[1])
    return {name: (sent, received) for name, (sent, received) in counts.items()}
