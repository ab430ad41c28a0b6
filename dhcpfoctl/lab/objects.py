"""dhcpd 4.4's OMAPI objects over the lab's state (an OMAPI server session's object store).

What each object answers, in dhcpd's attribute order and with its refusals, is
docs/omapi-protocol.md §6 (``server/omapi.c``, ``server/failover.c``, ``common/comapi.c``):

* ``failover-state`` (by ``name`` or ``handle``): the attributes of §6.1; ``local-state``
  moves the endpoint to any defined state as dhcpd's ``dhcp_failover_set_state`` does. Two
  deliberate differences from dhcpd 4.4.3: ``partner-address``/``local-address`` carry the
  4-byte IPv4 address (dhcpd sends 8 bytes of a memory pointer), and an undefined state
  value is refused with INVALIDARG (dhcpd writes it to its lease file and exits).
* ``lease`` (by ``handle``, ``ip-address``, ``dhcp-client-identifier``,
  ``hardware-address`` + ``hardware-type``): §6.2; ``state``, ``ends`` and ``flags`` are
  settable (a failover pool's lease goes to the partner through
  :meth:`FailoverEndpoint.update_lease`), other unknown names become lease variables.
* ``pool`` and ``subnet`` handles from a lease: REFRESH gives the lease counts / nothing.
* ``control``: ``state`` = 2 asks for a graceful shutdown (``on_shutdown``).

Handles are allocated on first reference from one server-global table, so they start
where dhcpd's do (an authenticator opened first gets 1). Pure: no I/O, ``now`` passed in.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Hashable, Iterator
from typing import Final

from dhcpfoctl.conf.model import Pool
from dhcpfoctl.failover.connection import FailoverEndpoint
from dhcpfoctl.failover.states import OPERATOR_TRIGGERS
from dhcpfoctl.model import (
    BindingState,
    FailoverState,
    HardwareType,
    Lease,
    LeaseDB,
    LeaseFlag,
    Role,
    address_to_int,
    int_to_address,
)
from dhcpfoctl.omapi.codec import OmapiObject, u32
from dhcpfoctl.omapi.errors import Result
from dhcpfoctl.omapi.server_session import HandleTable, StatusReply

__all__ = ["LabObjects"]

R = Result
#: Object types dhcpd registers without a lookup method (OPEN: "unsearchable object type").
_UNSEARCHABLE: Final = frozenset(
    {
        "failover-link",
        "failover-listener",
        "connection",
        "listener",
        "io",
        "datagram",
        "generic",
        "protocol",
        "protocol-listener",
        "waiter",
        "message",
    }
)
#: dhcpd types the lab has no instances of: lookups find nothing, creation is refused.
_EMPTY_TYPES: Final = frozenset({"host", "group", "class", "subclass", "shared-network"})
#: failover-state attributes dhcpd accepts on update and ignores (only local-state acts).
_FAILOVER_IGNORED: Final = frozenset(
    {
        "name",
        "partner-address",
        "local-address",
        "partner-port",
        "local-port",
        "max-outstanding-updates",
        "mclt",
        "load-balance-max-secs",
        "load-balance-hba",
        "partner-state",
        "partner-stos",
        "local-stos",
        "hierarchy",
        "last-packet-sent",
        "last-timestamp-received",
        "skew",
        "max-response-delay",
        "cur-unacked-updates",
    }
)
#: Lease attributes dhcpd refuses to set, and those it silently leaves unchanged.
_LEASE_REFUSED: Final = {
    "ip-address": R.NOPERM,
    "pool": R.NOPERM,
    "starts": R.NOPERM,
    "subnet": R.INVALIDARG,
}
_LEASE_UNCHANGED: Final = frozenset(
    {
        "dhcp-client-identifier",
        "hostname",
        "client-hostname",
        "host",
        "billing-class",
        "hardware-address",
        "hardware-type",
    }
)
#: dhcpd's in-memory lease flags on the wire (BOOTP_LEASE, RESERVED_LEASE): the only
#: ones an OMAPI client can change that the lab models.
_WIRE_FLAGS: Final = ((LeaseFlag.BOOTP, 0x02), (LeaseFlag.RESERVED, 0x04))
#: The largest binding state OMAPI accepts (FTS_LAST = backup).
_LAST_BINDING_STATE: Final = int(BindingState.BACKUP)
#: control ``state`` value that starts a graceful shutdown (server_shutdown).
_CONTROL_SHUTDOWN: Final = 2
_TIME_MAX: Final = 0x7FFF_FFFF

NOT_FOUND: Final = "no object matches specification"
CANT_UPDATE: Final = "can't update object"

# Handle-table keys of the objects: (type, identity).
_Key = tuple[str, Hashable]


class LabObjects:
    """The lab server's objects (see the module docstring); one per server process."""

    def __init__(
        self,
        endpoints: dict[str, FailoverEndpoint],
        db: LeaseDB,
        pools: list[Pool],
        *,
        on_shutdown: Callable[[float], None],
    ) -> None:
        self.endpoints = endpoints
        self.db = db
        self.pools = pools
        self.on_shutdown = on_shutdown
        self.handles = HandleTable()

    # -- ObjectStore -------------------------------------------------------------------
    def open(
        self,
        type_: str,
        lookup: list[tuple[str, bytes]],
        *,
        create: bool,
        update: bool,
        exclusive: bool,
        now: float,
    ) -> OmapiObject | None:
        finder = {
            "failover-state": self._find_failover,
            "lease": self._find_lease,
            "control": self._find_control,
        }.get(type_)
        if finder is None and type_ in _UNSEARCHABLE:
            raise StatusReply(R.NOTIMPLEMENTED, "unsearchable object type")
        if finder is None and type_ not in _EMPTY_TYPES | {"pool", "subnet"}:
            return None  # not an object type: dhcpd refreshes the header handle instead
        values = dict(lookup)
        try:
            if finder is None:
                # pool and subnet have no lookup keys; host, group, … have no instances.
                raise StatusReply(R.NOKEYS if type_ in ("pool", "subnet") else R.NOTFOUND)
            key = finder(values)
        except StatusReply as exc:
            if exc.result not in (R.NOTFOUND, R.NOKEYS):
                raise StatusReply(exc.result, "object lookup failed") from None
            if exc.result == R.NOTFOUND and not create:
                raise StatusReply(R.NOTFOUND, NOT_FOUND) from None
            # Not found (or no keys) falls through to creation: no lab object can be created.
            raise StatusReply(R.NOTIMPLEMENTED, "can't create new object") from None
        if create and exclusive:
            raise StatusReply(R.EXISTS, "specified object already exists")
        if create or update:
            self._update(key, lookup, 0, now)
        return self._object(key)

    def refresh(self, handle: int, now: float) -> OmapiObject:
        return self._object(self._key(handle))

    def update(self, handle: int, values: list[tuple[str, bytes]], now: float) -> None:
        self._update(self._key(handle), values, handle, now)

    def delete(self, handle: int, now: float) -> None:
        # Every one of these types has a remove method, and each refuses.
        kind = self._key(handle)[0]
        raise StatusReply(R.NOPERM if kind == "control" else R.NOTIMPLEMENTED)

    # -- lookups -----------------------------------------------------------------------
    def _key(self, handle: int) -> _Key:
        key = self.handles.key(handle)
        if not isinstance(key, tuple) or key[0] == "authenticator":
            raise StatusReply(R.NOTFOUND, "no matching handle")
        return key

    def _by_handle(self, values: dict[str, bytes], kind: str) -> _Key | None:
        raw = values.get("handle")
        if raw is None:
            return None
        if len(raw) != 4:
            raise StatusReply(R.INVALIDARG)
        key = self.handles.key(int.from_bytes(raw, "big"))
        if not isinstance(key, tuple):
            raise StatusReply(R.NOTFOUND)
        if key[0] != kind:
            raise StatusReply(R.INVALIDARG)
        return key

    def _find_failover(self, values: dict[str, bytes]) -> _Key:
        found = self._by_handle(values, "failover-state")
        name = values.get("name")
        if name is not None:
            by_name = next((n for n in self.endpoints if n.encode() == name), None)
            if found is not None and found[1] != by_name:
                raise StatusReply(R.KEYCONFLICT)
            if by_name is None:
                raise StatusReply(R.NOTFOUND)
            found = ("failover-state", by_name)
        if found is None:
            raise StatusReply(R.NOKEYS)
        return found

    def _find_control(self, values: dict[str, bytes]) -> _Key:
        # The one control object, also without any key (dhcp_control_lookup).
        return self._by_handle(values, "control") or ("control", None)

    def _find_lease(self, values: dict[str, bytes]) -> _Key:
        # dhcp_lease_lookup: handle, ip-address, client identifier, hardware address; every
        # key given must designate the same lease.
        found = self._by_handle(values, "lease")
        address = values.get("ip-address")
        if address is not None:
            match = (
                self._pool_of(int_to_address(int.from_bytes(address)))
                if len(address) == 4
                else None
            )
            found = self._agree(found, [match[0]] if match else [])
        uid = values.get("dhcp-client-identifier")
        if uid is not None:
            found = self._agree(found, [a for a, lease in self._leases() if lease.uid == uid])
        hardware = values.get("hardware-address")
        if hardware is not None:
            raw_type = values.get("hardware-type", u32(int(HardwareType.ETHERNET)))
            if len(raw_type) != 4 or raw_type[:3] != b"\0\0\0":
                raise StatusReply(R.INVALIDARG)
            htype = raw_type[3]
            matches = [
                a
                for a, lease in self._leases()
                if lease.hardware_address == hardware
                and int(lease.hardware_type or HardwareType.ETHERNET) == htype
            ]
            found = self._agree(found, matches)
        if found is None:
            raise StatusReply(R.NOKEYS)
        return found

    @staticmethod
    def _agree(found: _Key | None, matches: list[str]) -> _Key:
        if not matches:
            raise StatusReply(R.NOTFOUND)
        key: _Key = ("lease", matches[0])
        if found is not None and found != key:
            raise StatusReply(R.KEYCONFLICT)
        if len(matches) > 1:
            raise StatusReply(R.MULTIPLE)
        return key

    def _pool_of(self, address: str) -> tuple[str, int] | None:
        """``(address, pool index)`` when a range of a pool holds ``address``."""
        value = address_to_int(address)
        for index, pool in enumerate(self.pools):
            if any(r.first <= value <= r.last for r in pool.ranges):
                return address, index
        return None

    def _leases(self) -> Iterator[tuple[str, Lease]]:
        """Every stored lease inside a pool (never-used addresses carry no client keys)."""
        for lease in self.db.leases:
            if self._pool_of(lease.address) is not None:
                yield lease.address, lease

    def _lease(self, address: str) -> Lease:
        endpoint = self._endpoint_of(address)
        if endpoint is not None:
            return endpoint.lease(address)
        return self.db.leases.get(address) or Lease(address, binding_state=BindingState.FREE)

    def _endpoint_of(self, address: str) -> FailoverEndpoint | None:
        match = self._pool_of(address)
        peer = self.pools[match[1]].failover_peer if match else None
        return self.endpoints.get(peer) if peer else None

    # -- objects as dhcpd sends them ---------------------------------------------------
    def _object(self, key: _Key) -> OmapiObject:
        handle = self.handles.handle(key)  # the object's own handle first, as dhcpd
        kind, ident = key
        if kind == "failover-state":
            attributes = self._failover_attributes(self.endpoints[str(ident)])
        elif kind == "lease":
            attributes = self._lease_attributes(self._lease(str(ident)))
        elif kind == "pool":
            attributes = self._pool_attributes(self.pools[int(str(ident))])
        elif kind == "control":
            attributes = [("state", u32(0))]
        else:  # a subnet: dhcpd sends no attributes
            attributes = []
        return OmapiObject(handle, tuple(attributes))

    def _failover_attributes(self, endpoint: FailoverEndpoint) -> list[tuple[str, bytes]]:
        peer, machine = endpoint.peer, endpoint.machine
        pairs = [
            ("name", peer.name.encode()),
            ("partner-address", _address(peer.peer_address)),
            ("partner-port", u32(peer.peer_port)),
            ("local-address", _address(peer.address)),
            ("local-port", u32(peer.port)),
            ("max-outstanding-updates", u32(peer.max_unacked_updates)),
            ("mclt", u32(endpoint.mclt)),
            ("load-balance-max-secs", u32(peer.load_balance_max_seconds)),
        ]
        if endpoint.hba is not None:  # omitted until the secondary learnt it
            pairs.append(("load-balance-hba", endpoint.hba))
        pairs += [
            ("partner-state", u32(int(machine.partner))),
            ("local-state", u32(int(machine.own))),
            ("partner-stos", _time(machine.partner_stos)),
            ("local-stos", _time(machine.stos)),
            ("hierarchy", u32(0 if endpoint.role is Role.PRIMARY else 1)),
            # dhcpd never maintains these three.
            ("last-packet-sent", u32(0)),
            ("last-timestamp-received", u32(0)),
            ("skew", u32(0)),
            ("max-response-delay", u32(peer.max_response_delay)),
            ("cur-unacked-updates", u32(endpoint.unacked)),
        ]
        return pairs

    def _lease_attributes(self, lease: Lease) -> list[tuple[str, bytes]]:
        match = self._pool_of(lease.address)
        assert match is not None
        pool = self.pools[match[1]]
        state = lease.binding_state or BindingState.FREE
        pairs = [
            ("state", u32(int(state))),
            ("ip-address", ipaddress.IPv4Address(lease.address).packed),
        ]
        if lease.uid:
            pairs.append(("dhcp-client-identifier", lease.uid))
        if lease.client_hostname is not None:
            pairs.append(("client-hostname", lease.client_hostname.encode()))
        pairs += [
            ("subnet", u32(self.handles.handle(("subnet", str(pool.subnet))))),
            ("pool", u32(self.handles.handle(("pool", match[1])))),
        ]
        if lease.hardware_address:
            pairs.append(("hardware-address", lease.hardware_address))
            htype = lease.hardware_type or HardwareType.ETHERNET
            pairs.append(("hardware-type", u32(int(htype))))
        for name in ("ends", "starts", "tstp", "tsfp", "atsfp", "cltt"):
            pairs.append((name, _time(getattr(lease, name))))
        flags = sum(bit for flag, bit in _WIRE_FLAGS if lease.flags & flag)
        pairs.append(("flags", bytes([flags])))  # dhcpd's one 1-byte attribute
        for name, value in lease.extras.variables:
            pairs.append((name, value if isinstance(value, bytes) else u32(int(value))))
        return pairs

    def _pool_attributes(self, pool: Pool) -> list[tuple[str, bytes]]:
        counts = {BindingState.FREE: 0, BindingState.BACKUP: 0}
        total = 0
        for address in pool.addresses():
            lease = self._lease(address)
            total += 1
            if lease.binding_state in counts and not lease.reserved:
                counts[lease.binding_state] += 1
        return [
            ("lease-count", u32(total)),
            ("free-leases", u32(counts[BindingState.FREE])),
            ("backup-leases", u32(counts[BindingState.BACKUP])),
        ]

    # -- updates -----------------------------------------------------------------------
    def _update(self, key: _Key, values: list[tuple[str, bytes]], handle: int, now: float) -> None:
        kind, ident = key
        try:
            if kind == "failover-state":
                self._update_failover(self.endpoints[str(ident)], values, now)
            elif kind == "lease":
                self._update_lease(str(ident), values, handle, now)
            elif kind == "control":
                self._update_control(values, now)
            elif values:  # pool and subnet take no values
                raise StatusReply(R.NOTFOUND)
        except StatusReply as exc:
            raise StatusReply(exc.result, CANT_UPDATE) from None

    def _update_failover(
        self, endpoint: FailoverEndpoint, values: list[tuple[str, bytes]], now: float
    ) -> None:
        for name, value in values:
            if name == "local-state":
                state = FailoverState(_integer(value))
                if state not in OPERATOR_TRIGGERS:
                    raise StatusReply(R.INVALIDARG)  # dhcpd exits on an undefined state
                endpoint.set_state(state, now)
            elif name not in _FAILOVER_IGNORED:
                raise StatusReply(R.NOTFOUND)

    def _update_control(self, values: list[tuple[str, bytes]], now: float) -> None:
        for name, value in values:
            if name != "state":
                raise StatusReply(R.NOTFOUND)
            if _integer(value) != _CONTROL_SHUTDOWN:
                raise StatusReply(R.INVALIDARG)
            self.on_shutdown(now)

    def _update_lease(
        self, address: str, values: list[tuple[str, bytes]], handle: int, now: float
    ) -> None:
        # Values apply in order; the first failure stops, earlier ones stay applied.
        for name, value in values:
            self._set_lease_value(address, name, value, now)
        # dhcpd's post-update "remote-handle" lands in the lease's variables.
        self._set_variable(address, "remote-handle", handle, now)

    def _set_lease_value(self, address: str, name: str, value: bytes, now: float) -> None:
        lease = self._lease(address)
        if name in _LEASE_REFUSED:
            raise StatusReply(_LEASE_REFUSED[name])
        if name in _LEASE_UNCHANGED:
            return
        if name == "state":
            state = _integer(value)
            if not 1 <= state <= _LAST_BINDING_STATE:
                raise StatusReply(R.INVALIDARG)
            if state != int(lease.binding_state or 0):
                self._store(dataclasses.replace(lease, binding_state=BindingState(state)), now)
        elif name == "ends":
            self._store(dataclasses.replace(lease, ends=_integer(value)), now)
        elif name == "flags":
            wire = value[0] if len(value) == 1 else _integer(value) & 0xFF
            flags = lease.flags & ~(LeaseFlag.BOOTP | LeaseFlag.RESERVED)
            for flag, bit in _WIRE_FLAGS:
                if wire & bit:
                    flags |= flag
            if flags != lease.flags:
                self._store(dataclasses.replace(lease, flags=flags), now)
        else:
            self._set_variable(address, name, value, now)

    def _set_variable(self, address: str, name: str, value: bytes | int, now: float) -> None:
        lease = self._lease(address)
        variables = dict(lease.extras.variables)
        variables[name] = value
        extras = dataclasses.replace(lease.extras, variables=tuple(variables.items()))
        self._store(dataclasses.replace(lease, extras=extras), now)

    def _store(self, lease: Lease, now: float) -> None:
        endpoint = self._endpoint_of(lease.address)
        if endpoint is not None:
            endpoint.update_lease(lease, now)  # stored, and sent to the partner
        else:
            self.db.leases.upsert(lease)


def _integer(value: bytes) -> int:
    """An OMAPI integer as dhcpd reads one: exactly 4 bytes (omapi_get_int_value)."""
    if len(value) != 4:
        raise StatusReply(R.INVALIDARG)
    return int.from_bytes(value, "big")


def _time(value: float | None) -> bytes:
    """A time as dhcpd sends it: 32 bits, 0 when unset, ``never`` as 0x7fffffff."""
    return u32(min(int(value or 0), _TIME_MAX))


def _address(text: str | None) -> bytes:
    """The 4-byte address (dhcpd 4.4.3 sends 8 pointer bytes); 0.0.0.0 for a host name."""
    try:
        return ipaddress.IPv4Address(text or "0.0.0.0").packed
    except ValueError:
        return bytes(4)
