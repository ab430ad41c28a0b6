"""What dhcpfoctl knows of a dhcpd.conf: failover peers, pools and ranges, hosts, OMAPI keys."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from dhcpfoctl.keys import OmapiKey
from dhcpfoctl.model import Role, int_to_address

#: dhcpd's failover port, on both sides unless ``port``/``peer port`` say otherwise.
FAILOVER_PORT: Final = 647

#: Defaults from includes/failover.h and server/confpars.c (dhcpd 4.4), see docs/config-failover.md.
PEER_DEFAULTS: Final[dict[str, int]] = {
    "port": FAILOVER_PORT,
    "peer_port": FAILOVER_PORT,
    "max_response_delay": 20,
    "max_unacked_updates": 100,
    "load_balance_max_seconds": 0,
    "max_lease_misbalance": 15,
    "max_lease_ownership": 10,
    "min_balance": 60,
    "max_balance": 3600,
    "auto_partner_down": 0,
}

#: Parameters for which dhcpd treats 0 as "use the default" (server/failover.c).
ZERO_MEANS_DEFAULT: Final = frozenset(
    {"max_lease_misbalance", "max_lease_ownership", "min_balance", "max_balance"}
)


@dataclass(frozen=True, slots=True)
class FailoverPeerConfig:
    """One ``failover peer "NAME" { … }`` declaration.

    Every numeric parameter holds the value dhcpd will use (its default when the statement is
    absent, or when it is 0 for the four balance parameters); :meth:`is_given` tells whether
    the statement was written. ``mclt``, ``split`` and ``hba`` have no default.
    """

    name: str
    role: Role
    address: str | None
    peer_address: str | None
    port: int = PEER_DEFAULTS["port"]
    peer_port: int = PEER_DEFAULTS["peer_port"]
    max_response_delay: int = PEER_DEFAULTS["max_response_delay"]
    max_unacked_updates: int = PEER_DEFAULTS["max_unacked_updates"]
    mclt: int | None = None
    split: int | None = None
    #: The 32-byte bucket map of ``hba``, as written (bit set = bucket served by the primary).
    hba: bytes | None = None
    load_balance_max_seconds: int = PEER_DEFAULTS["load_balance_max_seconds"]
    max_lease_misbalance: int = PEER_DEFAULTS["max_lease_misbalance"]
    max_lease_ownership: int = PEER_DEFAULTS["max_lease_ownership"]
    min_balance: int = PEER_DEFAULTS["min_balance"]
    max_balance: int = PEER_DEFAULTS["max_balance"]
    auto_partner_down: int = PEER_DEFAULTS["auto_partner_down"]
    #: Names of the fields whose statement was written (``role`` for primary/secondary).
    given: frozenset[str] = frozenset()
    source: str = ""  # FILE:LINE of the declaration
    #: The shared-network it is declared in, ``None`` at top level.
    shared_network: str | None = None

    def is_given(self, parameter: str) -> bool:
        return parameter in self.given

    @property
    def is_primary(self) -> bool:
        return self.role is Role.PRIMARY

    def primary_buckets(self) -> bytes | None:
        """The HBA bitmap the primary uses (``split N`` = buckets 0..N-1), or ``None``."""
        if self.hba is not None:
            return self.hba
        if self.split is None:
            return None
        bits = bytearray(32)
        for bucket in range(self.split):
            bits[bucket // 8] |= 1 << (bucket % 8)
        return bytes(bits)


#: dhcpd's lease times when no statement gives one (includes/dhcpd.h).
DEFAULT_DEFAULT_LEASE_TIME: Final = 43200
DEFAULT_MAX_LEASE_TIME: Final = 86400
DEFAULT_MIN_LEASE_TIME: Final = 0

#: A parameter's value: seconds, a port, a flag, addresses (``option routers``…) or text.
ParameterValue = int | bool | str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Setting:
    """One parameter statement as written: its value and ``FILE:LINE``."""

    value: ParameterValue
    source: str


@dataclass(slots=True)
class Parameters:
    """The parameter statements of one scope (global, shared-network, subnet, pool, group).

    dhcpd evaluates a pool's statements innermost first (pool, subnet, shared-network,
    groups, global); :meth:`lookup` walks the same chain through ``parent``. Statements
    written later in an outer scope still apply, as in dhcpd, because scopes are shared
    objects filled while the file is read.
    """

    parent: Parameters | None = None
    settings: dict[str, Setting] = field(default_factory=dict)

    def lookup(self, name: str) -> Setting | None:
        scope: Parameters | None = self
        while scope is not None:
            found = scope.settings.get(name)
            if found is not None:
                return found
            scope = scope.parent
        return None

    def value(self, name: str, default: ParameterValue | None = None) -> ParameterValue | None:
        found = self.lookup(name)
        return default if found is None else found.value

    def lease_times(self) -> tuple[int, int, int]:
        """(default, max, min) lease time as dhcpd's ack_lease derives them."""
        default = int(self.value("default-lease-time", DEFAULT_DEFAULT_LEASE_TIME))  # type: ignore[arg-type]
        maximum = int(self.value("max-lease-time", DEFAULT_MAX_LEASE_TIME))  # type: ignore[arg-type]
        minimum = int(self.value("min-lease-time", DEFAULT_MIN_LEASE_TIME))  # type: ignore[arg-type]
        return default, maximum, min(minimum, maximum)


@dataclass(frozen=True, slots=True)
class AddressRange:
    first: int
    last: int
    dynamic_bootp: bool
    source: str  # FILE:LINE
    subnet: ipaddress.IPv4Network

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        if self.first == self.last:
            return int_to_address(self.first)
        return f"{int_to_address(self.first)}-{int_to_address(self.last)}"


@dataclass(slots=True)
class Pool:
    """An address pool as dhcpd builds it (explicit ``pool { }`` or a subnet's bare ranges).

    Pools that dhcpd merges (same shared network, same peer, same permits, no statements of
    their own) appear once, with all their ranges and the source of the first declaration.
    """

    failover_peer: str | None
    shared_network: str
    #: The subnet the pool is written in; ``None`` for a pool written in a shared-network.
    subnet: ipaddress.IPv4Network | None
    ranges: list[AddressRange]
    source: str  # FILE:LINE of ``pool`` (or of the first bare ``range``)
    implicit: bool = False
    #: ``allow``/``deny`` statements, normalised; part of dhcpd's merge rule.
    permits: tuple[str, ...] = ()
    has_statements: bool = False
    #: The pool's own parameter statements, chained to its enclosing scopes.
    parameters: Parameters = field(default_factory=Parameters)

    @property
    def size(self) -> int:
        return sum(r.size for r in self.ranges)

    @property
    def label(self) -> str:
        """Short human name: the ranges, comma-separated."""
        return ",".join(str(r) for r in self.ranges)

    def addresses(self) -> Iterator[str]:
        """Every address of the pool, in range order (dhcpd has a lease for each)."""
        for address_range in self.ranges:
            for value in range(address_range.first, address_range.last + 1):
                yield int_to_address(value)


@dataclass(frozen=True, slots=True)
class HostConfig:
    name: str
    hardware: str | None
    fixed_addresses: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class SubnetConfig:
    network: ipaddress.IPv4Network
    shared_network: str
    source: str
    #: The subnet's own parameter statements, chained to its enclosing scopes.
    parameters: Parameters = field(default_factory=Parameters, compare=False)


@dataclass(slots=True)
class Config:
    """Everything :func:`dhcpfoctl.conf.read_config` extracts from a dhcpd.conf."""

    path: str
    failover_peers: dict[str, FailoverPeerConfig] = field(default_factory=dict)
    pools: list[Pool] = field(default_factory=list)
    subnets: list[SubnetConfig] = field(default_factory=list)
    hosts: list[HostConfig] = field(default_factory=list)
    omapi_port: int | None = None
    #: Name of the key named by ``omapi-key`` (its definition is in :attr:`keys`).
    omapi_key: str | None = None
    keys: dict[str, OmapiKey] = field(default_factory=dict)
    #: Suspicious but legal setups, as ``FILE:LINE: message``.
    warnings: list[str] = field(default_factory=list)
    #: Every file read, the main one first (includes in reading order).
    files: list[str] = field(default_factory=list)
    #: Parameter statements of the outer scope (lease times, options, local-port, …).
    parameters: Parameters = field(default_factory=Parameters)

    @property
    def local_port(self) -> int | None:
        port = self.parameters.value("local-port")
        return None if port is None else int(port)

    @property
    def server_identifier(self) -> str | None:
        """The global ``server-identifier`` (scopes may override it per pool)."""
        address = self.parameters.value("server-identifier")
        return None if address is None else str(address)

    @property
    def local_address(self) -> str | None:
        address = self.parameters.value("local-address")
        return None if address is None else str(address)

    def pools_of(self, peer: str) -> list[Pool]:
        return [pool for pool in self.pools if pool.failover_peer == peer]
