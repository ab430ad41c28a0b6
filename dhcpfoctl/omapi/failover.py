"""dhcpd's ``failover-state`` and pool objects over OMAPI, typed.

``partner-address`` and ``local-address`` are deliberately not decoded: dhcpd 4.4.3 sends
8 bytes of a memory pointer there (docs/omapi-protocol.md §6.1); addresses come from the config
or profile instead.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from dhcpfoctl.model import FailoverState, Role
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.codec import OmapiObject, u32
from dhcpfoctl.omapi.errors import NotFoundError, ProtocolError

#: The only values ever written to ``local-state``: dhcpd moves to whatever number it is
#: given without validation, and an undefined one (e.g. 12) crashes it.
WRITABLE_STATES: Final = frozenset(FailoverState.__members__.values())


@dataclass(frozen=True, slots=True)
class FailoverInfo:
    """One server's view of one relationship, as its ``failover-state`` object says."""

    name: str
    handle: int
    local_state: FailoverState
    partner_state: FailoverState
    local_stos: int
    partner_stos: int
    #: 0 primary, 1 secondary.
    hierarchy: int
    mclt: int
    max_response_delay: int
    max_outstanding_updates: int
    cur_unacked_updates: int
    load_balance_max_secs: int
    #: 32-byte hash bucket assignment; ``None`` before the secondary first connected.
    load_balance_hba: bytes | None
    local_port: int
    partner_port: int

    @property
    def role(self) -> Role | str:
        """The role ``hierarchy`` says; ``unknown-N`` for a value dhcpd does not define."""
        return {0: Role.PRIMARY, 1: Role.SECONDARY}.get(self.hierarchy, f"unknown-{self.hierarchy}")

    @property
    def primary_buckets(self) -> int | None:
        """How many of the 256 load-balance buckets the primary serves (``split``)."""
        if self.load_balance_hba is None:
            return None
        return sum(bin(byte).count("1") for byte in self.load_balance_hba)

    @classmethod
    def from_object(cls, obj: OmapiObject, endpoint: str) -> FailoverInfo:
        def integer(name: str) -> int:
            value = obj.integer(name)
            if value is None:
                raise ProtocolError(endpoint, f"failover-state reply lacks a 4-byte {name!r}")
            return value

        return cls(
            name=obj.text("name") or "",
            handle=obj.handle,
            local_state=FailoverState(integer("local-state")),
            partner_state=FailoverState(integer("partner-state")),
            local_stos=integer("local-stos"),
            partner_stos=integer("partner-stos"),
            hierarchy=integer("hierarchy"),
            mclt=integer("mclt"),
            max_response_delay=integer("max-response-delay"),
            max_outstanding_updates=integer("max-outstanding-updates"),
            cur_unacked_updates=integer("cur-unacked-updates"),
            load_balance_max_secs=integer("load-balance-max-secs"),
            load_balance_hba=obj.raw("load-balance-hba"),
            local_port=integer("local-port"),
            partner_port=integer("partner-port"),
        )


@dataclass(frozen=True, slots=True)
class PoolCounts:
    """``lease-count``/``free-leases``/``backup-leases`` of the pool holding ``address``."""

    address: str
    lease_count: int
    free_leases: int
    backup_leases: int


def read_failover(client: OmapiClient, name: str) -> FailoverInfo:
    """OPEN the relationship ``name``; NOTFOUND becomes a message naming the peer."""
    try:
        obj = client.open_object("failover-state", [("name", name.encode())])
    except NotFoundError as exc:
        raise NotFoundError(
            exc.host,
            exc.result,
            f"no failover relationship named {name!r} on this server "
            "(check --peer or the profile's relationships)",
        ) from None
    return FailoverInfo.from_object(obj, client.endpoint)


def write_local_state(client: OmapiClient, info: FailoverInfo, state: FailoverState) -> None:
    """Set ``local-state`` as a 4-byte integer; only defined states can be sent."""
    if int(state) not in WRITABLE_STATES:
        raise ValueError(f"refusing to write undefined failover state {int(state)}")
    client.update(
        info.handle,
        [("local-state", u32(int(state)))],
        f"setting {info.name!r} local-state to {state.keyword}",
    )


def read_pool_counts(client: OmapiClient, address: str) -> PoolCounts:
    """Pool counts through the pool handle of the lease for ``address`` (§6.3)."""
    packed = ipaddress.IPv4Address(address).packed
    lease = client.open_object("lease", [("ip-address", packed)])
    handle = lease.integer("pool")
    if handle is None:
        raise ProtocolError(client.endpoint, f"lease {address} has no pool handle")
    pool = client.refresh(handle, f"reading the pool of {address}")
    counts = [pool.integer(name) for name in ("lease-count", "free-leases", "backup-leases")]
    if any(value is None for value in counts):
        raise ProtocolError(client.endpoint, f"pool of {address} lacks lease counts")
    total, free, backup = counts
    assert total is not None and free is not None and backup is not None
    return PoolCounts(address, total, free, backup)
