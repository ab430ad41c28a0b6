"""Do both servers of a failover pair tell the same story? (pure, for ``dhcpfoctl compare``)

Input: each server's lease journal, folded into a :class:`Journal` (the last record of each
address, the tenures of every client the journal ever showed on it, the failover state
records in order), the time to judge at and, optionally, the dhcpd.conf of either server
(pools, relationships, MCLT). Output: a :class:`CompareReport` of findings per address,
summed per pool and per relationship. No I/O, no clock.

What is judged (docs/failover-protocol.md §7.2-§8.6, docs/lease-file.md §3-§5):

* an address two different clients (client identifier, else hardware address) held at
  overlapping times, from the tenures of both journals: a *duplicate* while both files
  still say so, *unhealed* once the files agree on one of them (dhcpd's conflict
  resolution), the loser keeping the address until its lease ends or it renews;
* the current records of both sides, address by address: an update not yet acknowledged
  (``tstp`` past ``atsfp``) younger than MCLT explains a difference (*in-flight*); an
  acknowledged record the other side has no trace of is a *lost* lease; the primary's
  ``free`` against the secondary's ``backup`` is an *ownership* conflict (each may
  allocate it); anything else is a *disagreement*;
* the failover state records of both files: both in partner-down at once, or one in
  partner-down while the other acknowledged clients, is a *split brain*.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from dhcpfoctl.conf import Config
from dhcpfoctl.conf.model import Pool
from dhcpfoctl.errors import CheckResult, worst_of
from dhcpfoctl.model import (
    NEVER,
    BindingState,
    FailoverPeerRecord,
    FailoverState,
    HardwareType,
    Lease,
    LeaseDB,
    LeaseExtras,
    ReadWarning,
    Role,
    address_to_int,
    int_to_address,
)
from dhcpfoctl.times import format_duration, iso_utc

#: Tenures and state records that ended this long before the time judged are dropped from
#: a saved journal: a duplicate is reported for a day after it ended, then forgotten.
RETENTION: Final = 86400
#: MCLT assumed when neither a config nor the secondary's state record gives one.
DEFAULT_MCLT: Final = 3600
#: The pool name of every address when no dhcpd.conf is given.
ALL_ADDRESSES: Final = "all addresses"

#: States in which a server answers clients (docs/failover-protocol.md §8).
_SERVING: Final = frozenset(
    {
        FailoverState.NORMAL,
        FailoverState.COMMUNICATIONS_INTERRUPTED,
        FailoverState.PARTNER_DOWN,
        FailoverState.CONFLICT_DONE,
    }
)
_RETURNING: Final = frozenset({BindingState.EXPIRED, BindingState.RELEASED, BindingState.RESET})
#: Binding states of a lease held by a client (legacy ``reserved``/``bootp`` read as active).
_HELD: Final = frozenset({BindingState.ACTIVE, BindingState.RESERVED, BindingState.BOOTP})

#: Finding kinds, most urgent first (the order of the report).
KINDS: Final = (
    "split-brain",
    "duplicate",
    "unhealed",
    "lost",
    "ownership",
    "disagreement",
    "in-flight",
    "skipped",
)


# --- clients and tenures -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client:
    """Who a record names: dhcpd tells clients apart by client identifier, else hardware."""

    hardware: bytes | None
    uid: bytes | None
    hostname: str | None = None

    @classmethod
    def of(cls, lease: Lease) -> Client | None:
        if lease.hardware_address is None and lease.uid is None:
            return None
        return cls(lease.hardware_address, lease.uid, lease.client_hostname)

    def same(self, other: Client) -> bool:
        if self.uid is not None and other.uid is not None:
            return self.uid == other.uid
        if self.hardware is not None and other.hardware is not None:
            return self.hardware == other.hardware
        return True  # nothing to tell them apart: not evidence of two clients

    @property
    def key(self) -> str:
        """A stable identity for sorting and grouping."""
        return (self.uid or b"").hex() + "/" + (self.hardware or b"").hex()

    def describe(self) -> str:
        parts = []
        if self.hardware is not None:
            parts.append(self.hardware.hex(":"))
        if self.uid is not None:
            parts.append("uid " + self.uid.hex(":"))
        if self.hostname:
            parts.append(f'"{self.hostname}"')
        return " ".join(parts) or "unknown client"

    def to_json(self) -> dict[str, Any]:
        return {
            "hardware": self.hardware.hex(":") if self.hardware is not None else None,
            "uid": self.uid.hex(":") if self.uid is not None else None,
            "hostname": self.hostname,
        }


@dataclass(slots=True)
class Tenure:
    """A client's hold on an address according to one journal: [starts, ends)."""

    client: Client
    starts: int
    ends: int
    role: Role
    #: First and last time this server acknowledged the client itself (``cltt``: dhcpd
    #: does not store the CLTT of a partner's update), ``None`` if it never did.
    first_ack: int | None = None
    last_ack: int | None = None

    def acked_within(self, start: int, end: int) -> bool:
        if self.first_ack is None or self.last_ack is None:
            return False
        return self.first_ack <= end and start <= self.last_ack

    def overlaps(self, other: Tenure) -> bool:
        return self.starts < other.ends and other.starts < self.ends


# --- one server's journal ---------------------------------------------------------------


@dataclass(slots=True)
class Journal:
    """One server's lease file folded for comparison; JSON-serialisable for cron runs."""

    role: Role
    current: dict[int, Lease] = field(default_factory=dict)
    tenures: dict[int, list[Tenure]] = field(default_factory=dict)
    #: Failover state records in file order, consecutive repeats dropped.
    states: list[FailoverPeerRecord] = field(default_factory=list)

    @classmethod
    def from_db(cls, role: Role, db: LeaseDB, history: Iterable[Lease] | None = None) -> Journal:
        """A journal from a read file; ``history`` (every record in file order) adds the
        tenures of superseded records."""
        journal = cls(role)
        if history is not None:
            journal.fold(history, ())
        for lease in db.leases:
            journal.current[address_to_int(lease.address)] = lease
            if history is None:
                journal._add_tenure(address_to_int(lease.address), lease)
        journal.fold_states(db.failover.values())
        return journal

    def fold(self, leases: Iterable[Lease], failover: Iterable[FailoverPeerRecord]) -> None:
        """Apply records in file order (what dhcpd appended since the last fold)."""
        for lease in leases:
            address = address_to_int(lease.address)
            self.current[address] = lease
            self._add_tenure(address, lease)
        self.fold_states(failover)

    def fold_states(self, records: Iterable[FailoverPeerRecord]) -> None:
        for record in records:
            if not self.states or self.states[-1] != record:
                self.states.append(record)

    def _add_tenure(self, address: int, lease: Lease) -> None:
        client = Client.of(lease)
        state = lease.binding_state
        if state in _HELD or (state is None and lease.ends is not None and not lease.abandoned):
            if client is None or lease.starts is None or lease.ends is None:
                return
            held = self.tenures.setdefault(address, [])
            last = held[-1] if held else None
            if last is not None and last.client.same(client) and lease.starts <= last.ends:
                last.ends = max(last.ends, lease.ends)  # a renewal continues the tenure
                last.client = client  # the latest host name
            else:
                last = Tenure(client, lease.starts, lease.ends, self.role)
                held.append(last)
            if lease.cltt is not None:
                last.first_ack = min(last.first_ack or lease.cltt, lease.cltt)
                last.last_ack = max(last.last_ack or lease.cltt, lease.cltt)
            return
        # Any other state ends every hold on the address when it took effect: a release sets
        # ends to the release time, and the partner records it as free with that end.
        until = lease.ends if lease.ends is not None else lease.starts
        if until is None:
            return
        for tenure in self.tenures.get(address, ()):
            if tenure.starts <= until < tenure.ends:
                tenure.ends = until

    def last_state(self, relationship: str) -> FailoverPeerRecord | None:
        for record in reversed(self.states):
            if record.name == relationship:
                return record
        return None

    def relationships(self) -> list[str]:
        return sorted({record.name for record in self.states})

    def prune(self, before: int) -> None:
        """Forget tenures that ended before ``before`` and state records superseded then."""
        for address in list(self.tenures):
            kept = [t for t in self.tenures[address] if t.ends >= before]
            if kept:
                self.tenures[address] = kept
            else:
                del self.tenures[address]
        # A state record counts until the next one of its relationship replaced it.
        replaced_at: list[int | None] = []
        following: dict[str, int | None] = {}
        for record in reversed(self.states):
            replaced_at.append(following.get(record.name, NEVER))
            following[record.name] = record.my_stos
        replaced_at.reverse()
        self.states = [
            record
            for record, until in zip(self.states, replaced_at, strict=True)
            if until is None or until >= before
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "role": str(self.role),
            "current": [_lease_to_json(lease) for lease in self.current.values()],
            "tenures": [
                [address, [_tenure_to_json(t) for t in held]]
                for address, held in self.tenures.items()
            ],
            "states": [_state_to_json(record) for record in self.states],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Journal:
        """Raises ``KeyError``/``TypeError``/``ValueError`` on anything unexpected."""
        journal = cls(Role(data["role"]))
        for item in data["current"]:
            lease = _lease_from_json(item)
            journal.current[address_to_int(lease.address)] = lease
        for address, held in data["tenures"]:
            journal.tenures[int(address)] = [_tenure_from_json(t, journal.role) for t in held]
        journal.states = [_state_from_json(item) for item in data["states"]]
        return journal


_LEASE_TIMES: Final = ("starts", "ends", "tstp", "tsfp", "atsfp", "cltt")


def _lease_to_json(lease: Lease) -> list[Any]:
    return [
        lease.address,
        *(getattr(lease, name) for name in _LEASE_TIMES),
        int(lease.binding_state) if lease.binding_state is not None else None,
        int(lease.hardware_type) if lease.hardware_type is not None else None,
        lease.hardware_address.hex() if lease.hardware_address is not None else None,
        lease.uid.hex() if lease.uid is not None else None,
        lease.client_hostname,
    ]


def _lease_from_json(item: list[Any]) -> Lease:
    address, *times, state, hw_type, hardware, uid, hostname = item
    if len(times) != len(_LEASE_TIMES) or not all(t is None or type(t) is int for t in times):
        raise ValueError("bad lease times")
    address_to_int(address)
    return Lease(
        address,
        *times,
        binding_state=BindingState(state) if state is not None else None,
        hardware_type=HardwareType(hw_type) if hw_type is not None else None,
        hardware_address=bytes.fromhex(hardware) if hardware is not None else None,
        extras=LeaseExtras(
            uid=bytes.fromhex(uid) if uid is not None else None,
            client_hostname=str(hostname) if hostname is not None else None,
        ),
    )


def _tenure_to_json(tenure: Tenure) -> list[Any]:
    client = tenure.client
    return [
        client.hardware.hex() if client.hardware is not None else None,
        client.uid.hex() if client.uid is not None else None,
        client.hostname,
        tenure.starts,
        tenure.ends,
        tenure.first_ack,
        tenure.last_ack,
    ]


def _tenure_from_json(item: list[Any], role: Role) -> Tenure:
    hardware, uid, hostname, starts, ends, first_ack, last_ack = item
    client = Client(
        bytes.fromhex(hardware) if hardware is not None else None,
        bytes.fromhex(uid) if uid is not None else None,
        str(hostname) if hostname is not None else None,
    )
    acks = [None if ack is None else int(ack) for ack in (first_ack, last_ack)]
    return Tenure(client, int(starts), int(ends), role, *acks)


def _state_to_json(record: FailoverPeerRecord) -> list[Any]:
    return [
        record.name,
        int(record.my_state),
        record.my_stos,
        int(record.partner_state),
        record.partner_stos,
        record.mclt,
    ]


def _state_from_json(item: list[Any]) -> FailoverPeerRecord:
    name, mine, my_stos, partner, partner_stos, mclt = item
    return FailoverPeerRecord(
        str(name),
        FailoverState(int(mine)),
        None if my_stos is None else int(my_stos),
        FailoverState(int(partner)),
        None if partner_stos is None else int(partner_stos),
        None if mclt is None else int(mclt),
    )


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One side's record of an address, as a finding shows it."""

    role: Role
    state: str
    client: Client | None
    starts: int | None
    ends: int | None
    acknowledged: bool | None  # None: no failover bookkeeping in the record

    def to_json(self) -> dict[str, Any]:
        return {
            "server": str(self.role),
            "state": self.state,
            "client": self.client.to_json() if self.client else None,
            "starts": iso_utc(self.starts),
            "ends": iso_utc(self.ends),
            "acknowledged": self.acknowledged,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # one of KINDS
    severity: CheckResult
    message: str
    action: str
    address: str | None = None
    pool: str | None = None
    relationship: str | None = None
    since: int | None = None
    until: int | None = None
    #: The clients involved, most recent holder first where it matters.
    clients: tuple[Client, ...] = ()
    records: tuple[Record, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity.name.lower(),
            "address": self.address,
            "pool": self.pool,
            "relationship": self.relationship,
            "since": iso_utc(self.since),
            "since_epoch": self.since,
            "until": iso_utc(self.until),
            "message": self.message,
            "action": self.action,
            "clients": [client.to_json() for client in self.clients],
            "records": [record.to_json() for record in self.records],
        }


@dataclass(slots=True)
class Summary:
    """Counts for one pool or one relationship."""

    name: str
    relationship: str | None
    addresses: int = 0  # addresses with a record on either side
    agreeing: int = 0
    findings: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "relationship": self.relationship,
            "addresses": self.addresses,
            "agreeing": self.agreeing,
            "findings": dict(self.findings),
        }


@dataclass(frozen=True, slots=True)
class PairState:
    """Both servers' last failover state records of one relationship, side by side."""

    relationship: str
    primary: FailoverPeerRecord | None
    secondary: FailoverPeerRecord | None

    def to_json(self) -> dict[str, Any]:
        def side(record: FailoverPeerRecord | None) -> dict[str, Any] | None:
            if record is None:
                return None
            return {
                "my_state": record.my_state.keyword,
                "my_since": iso_utc(record.my_stos),
                "partner_state": record.partner_state.keyword,
                "partner_since": iso_utc(record.partner_stos),
            }

        return {
            "relationship": self.relationship,
            "primary": side(self.primary),
            "secondary": side(self.secondary),
        }


@dataclass(slots=True)
class CompareReport:
    as_of: int
    findings: list[Finding]
    pools: list[Summary]
    relationships: list[Summary]
    pair_states: list[PairState]
    notes: list[str]

    @property
    def worst(self) -> CheckResult:
        return worst_of(finding.severity for finding in self.findings)

    def by_address(self) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = {}
        for finding in self.findings:
            if finding.address is not None:
                grouped.setdefault(finding.address, []).append(finding)
        return grouped

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "as_of_iso": iso_utc(self.as_of),
            "status": self.worst.name.lower(),
            "notes": list(self.notes),
            "pair_states": [state.to_json() for state in self.pair_states],
            "pools": [summary.to_json() for summary in self.pools],
            "relationships": [summary.to_json() for summary in self.relationships],
            "findings": [finding.to_json() for finding in self.findings],
        }


# --- where an address belongs -----------------------------------------------------------


class _Pools:
    """Address → (pool name, relationship) from the configs (the primary's first)."""

    def __init__(self, configs: Iterable[Config | None], fallback_relationship: str | None):
        spans: dict[tuple[int, int], Pool] = {}
        for config in configs:
            if config is None:
                continue
            for pool in config.pools:
                for span in pool.ranges:
                    spans.setdefault((span.first, span.last), pool)
        self._spans = sorted(spans.items())
        self._firsts = [first for (first, _), _ in self._spans]
        self.configured = bool(self._spans)
        self.fallback = fallback_relationship

    def of(self, address: int) -> tuple[str, str | None]:
        index = bisect.bisect_right(self._firsts, address) - 1
        if index >= 0:
            (_, last), pool = self._spans[index]
            if address <= last:
                return f"{pool.shared_network} {pool.label}", pool.failover_peer
        if self.configured:
            return "outside every pool", None
        return ALL_ADDRESSES, self.fallback

    def names(self) -> Iterator[tuple[str, str | None]]:
        seen = set()
        for _, pool in self._spans:
            name = f"{pool.shared_network} {pool.label}"
            if name not in seen:
                seen.add(name)
                yield name, pool.failover_peer


# --- the comparison ---------------------------------------------------------------------


def compare_pair(
    primary: LeaseDB,
    secondary: LeaseDB,
    *,
    as_of: int,
    config: Config | None,
    history: tuple[list[Lease], list[Lease]] | None,
    secondary_config: Config | None = None,
) -> CompareReport:
    """Compare two read lease files (``history``: each file's records in file order, for
    the tenures of superseded records; ``None``: only the current records count)."""
    return compare_journals(
        Journal.from_db(Role.PRIMARY, primary, history[0] if history else None),
        Journal.from_db(Role.SECONDARY, secondary, history[1] if history else None),
        as_of=as_of,
        configs=(config, secondary_config),
    )


def compare_journals(
    primary: Journal,
    secondary: Journal,
    *,
    as_of: int,
    configs: tuple[Config | None, Config | None] = (None, None),
    skipped: Sequence[ReadWarning] = (),
) -> CompareReport:
    """The comparison itself (pure). ``primary`` is the journal read as the primary's
    file; ``skipped``: the records the reader could not read (each a WARNING)."""
    relationships = sorted(set(primary.relationships()) | set(secondary.relationships()))
    for config in configs:
        if config is not None:
            relationships = sorted(set(relationships) | set(config.failover_peers))
    fallback = relationships[0] if len(relationships) == 1 else None
    pools = _Pools(configs, fallback)
    given = _given_mclts(configs, primary, secondary)
    mclts: dict[str | None, int] = {name: given.get(name, DEFAULT_MCLT) for name in relationships}
    mclts[None] = min(mclts.values(), default=DEFAULT_MCLT)  # an address outside every pool
    notes = []
    if not pools.configured:
        notes.append(
            "no dhcpd.conf given: every address is summed as one pool"
            f" ({ALL_ADDRESSES}); give the servers' dhcpd.conf for per-pool figures"
        )
    for name in relationships:
        if name not in given:
            notes.append(
                f"MCLT of {name} unknown (no primary config, no secondary state record):"
                f" {format_duration(DEFAULT_MCLT)} assumed"
            )
    judge = _Judge(primary, secondary, as_of, pools, mclts)
    findings = judge.split_brains(relationships) + judge.addresses()
    findings.extend(
        Finding(
            "skipped",
            CheckResult.WARNING,
            f"record skipped: {warning}",
            "look at that record: what it held is missing from this comparison",
        )
        for warning in skipped
    )
    findings.sort(key=_order)
    return CompareReport(
        as_of,
        findings,
        judge.pool_summaries(findings),
        judge.relationship_summaries(findings, relationships),
        [
            PairState(name, primary.last_state(name), secondary.last_state(name))
            for name in relationships
        ],
        notes,
    )


def _order(finding: Finding) -> tuple[int, int, int]:
    address = address_to_int(finding.address) if finding.address else -1
    return (-finding.severity.rank, KINDS.index(finding.kind), address)


def _given_mclts(
    configs: tuple[Config | None, Config | None], *journals: Journal
) -> dict[str, int]:
    found: dict[str, int] = {}
    for journal in journals:
        for record in journal.states:
            if record.mclt is not None:
                found[record.name] = record.mclt
    for config in configs:
        if config is not None:
            for name, peer in config.failover_peers.items():
                if peer.mclt is not None:
                    found[name] = peer.mclt
    return found


def _kind(lease: Lease | None, as_of: int) -> BindingState:
    """dhcpd's reading of a record; no record is the never-used free lease."""
    if lease is None:
        return BindingState.FREE
    return lease.effective_state(as_of)


def _acknowledged(lease: Lease | None) -> bool | None:
    """Whether the partner acknowledged this version (``atsfp`` caught up with ``tstp``)."""
    if lease is None or (lease.tstp is None and lease.atsfp is None):
        return None
    if lease.atsfp is None:
        return False
    return lease.tstp is None or lease.atsfp >= lease.tstp


def _changed_at(lease: Lease | None) -> int | None:
    if lease is None:
        return None
    return lease.starts if lease.starts is not None else lease.cltt


def _record(role: Role, lease: Lease | None, as_of: int) -> Record:
    if lease is None:
        return Record(role, "no record", None, None, None, None)
    return Record(
        role,
        _kind(lease, as_of).keyword,
        Client.of(lease),
        lease.starts,
        lease.ends,
        _acknowledged(lease),
    )


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "an unknown time"
    if epoch == NEVER:
        return "never"
    return iso_utc(epoch) or "?"


class _Judge:
    def __init__(
        self,
        primary: Journal,
        secondary: Journal,
        as_of: int,
        pools: _Pools,
        mclts: dict[str | None, int],
    ) -> None:
        self.sides = {Role.PRIMARY: primary, Role.SECONDARY: secondary}
        self.as_of = as_of
        self.pools = pools
        self.mclts = mclts
        self.addresses_seen: set[int] = set(primary.current) | set(secondary.current)
        self.agreeing: set[int] = set()

    # --- split brain from the state records ---------------------------------------------

    def split_brains(self, relationships: list[str]) -> list[Finding]:
        findings = []
        for name in relationships:
            timelines = {role: _timeline(journal, name) for role, journal in self.sides.items()}
            for start, end, states in _overlaps(timelines, self.as_of):
                if end < self.as_of - RETENTION:
                    continue  # long over: forgotten, as a remembered journal forgets it
                down = [
                    role for role, state in states.items() if state is FailoverState.PARTNER_DOWN
                ]
                if not down:
                    continue
                other = {role: state for role, state in states.items() if role not in down}
                current = end >= self.as_of
                served = not other or self._served(next(iter(other)), start, end)
                if not served and not current:
                    continue  # the other side's record was stale: it was down, as assumed
                words = " and ".join(
                    f"the {role} {state.keyword}" for role, state in sorted(states.items())
                )
                if not served:
                    # Nothing shows the other side serving yet; its record says it may.
                    alive = next(iter(other))
                    findings.append(
                        Finding(
                            "split-brain",
                            CheckResult.WARNING,
                            f"failover peer {name}: possible split brain since {_when(start)}:"
                            f" {words}; the {alive}'s file shows no client served since, which"
                            " is right only if it is down",
                            f"make sure the {alive} is really down (dhcpfoctl status); if it"
                            f" runs, heal the failover link or stop it now",
                            relationship=name,
                            since=start,
                        )
                    )
                    continue
                findings.append(
                    Finding(
                        "split-brain",
                        CheckResult.CRITICAL if current else CheckResult.WARNING,
                        f"failover peer {name}: split brain"
                        f" {'since' if current else 'from'} {_when(start)}"
                        + ("" if current else f" to {_when(end)}")
                        + f": {words}"
                        + ("" if not other else f", and the {next(iter(other))} served clients"),
                        (
                            "bring one server back under the other's control now (heal the"
                            " failover link, or stop the server that should not serve), then"
                            " compare again and kick every duplicate listed"
                            if current
                            else "check the duplicates and unhealed addresses listed for"
                            " that time; nothing to undo in the states"
                        ),
                        relationship=name,
                        since=start,
                        until=None if current else end,
                    )
                )
        return findings

    def _served(self, role: Role, start: int, end: int) -> bool:
        """Whether ``role`` acknowledged a client (its own ACK: a ``cltt``) in [start, end]."""
        return any(
            tenure.acked_within(start, end)
            for held in self.sides[role].tenures.values()
            for tenure in held
        )

    # --- addresses ----------------------------------------------------------------------

    def addresses(self) -> list[Finding]:
        findings = []
        primary, secondary = self.sides[Role.PRIMARY], self.sides[Role.SECONDARY]
        overlapping = set(primary.tenures) | set(secondary.tenures)
        for address in sorted(self.addresses_seen | overlapping):
            found = self._overlaps(address)
            current = self._current(
                address, skip_duplicate=any(f.kind == "duplicate" for f in found)
            )
            found.extend(current)
            if not found and address in self.addresses_seen:
                self.agreeing.add(address)
            findings.extend(found)
        return findings

    def _apart(self, role: Role, relationship: str | None) -> FailoverPeerRecord | None:
        """``role``'s last state record when it says the pair is not in touch (updates
        queue until it is), else ``None``."""
        journal = self.sides[role]
        names = [relationship] if relationship else journal.relationships()
        for name in names:
            record = journal.last_state(name)
            if record is not None and record.my_state is not FailoverState.NORMAL:
                return record
        return None

    def _where(self, address: int) -> tuple[str, str | None]:
        return self.pools.of(address)

    def _overlaps(self, address: int) -> list[Finding]:
        """Two clients on one address at overlapping times, from both journals' tenures."""
        tenures = [
            tenure for journal in self.sides.values() for tenure in journal.tenures.get(address, ())
        ]
        if len(tenures) < 2:
            return []
        # Per client, the union of what either journal says.
        clients: list[tuple[Client, list[Tenure]]] = []
        for tenure in sorted(tenures, key=lambda t: (t.starts, t.ends, t.client.key)):
            for client, held in clients:
                if client.same(tenure.client):
                    held.append(tenure)
                    break
            else:
                clients.append((tenure.client, [tenure]))
        if len(clients) < 2:
            return []
        pairs = []
        for i, (first, first_held) in enumerate(clients):
            for second, second_held in clients[i + 1 :]:
                hits = [(a, b) for a in first_held for b in second_held if a.overlaps(b)]
                if hits:
                    pairs.append((first, second, first_held, second_held, hits))
        if not pairs:
            return []
        p_lease = self.sides[Role.PRIMARY].current.get(address)
        s_lease = self.sides[Role.SECONDARY].current.get(address)
        holders = [
            (role, Client.of(lease))
            for role, lease in ((Role.PRIMARY, p_lease), (Role.SECONDARY, s_lease))
            if lease is not None and _kind(lease, self.as_of) is BindingState.ACTIVE
        ]
        pool, relationship = self._where(address)
        records = (
            _record(Role.PRIMARY, p_lease, self.as_of),
            _record(Role.SECONDARY, s_lease, self.as_of),
        )
        text = int_to_address(address)
        findings = []
        for first, second, first_held, second_held, hits in pairs:
            since = min(max(a.starts, b.starts) for a, b in hits)
            end_first = max(t.ends for t in first_held)
            end_second = max(t.ends for t in second_held)
            if min(end_first, end_second) < self.as_of - RETENTION:
                continue  # long over: forgotten, as a remembered journal forgets it
            on_record = {
                role: client
                for role, client in holders
                if client is not None and (client.same(first) or client.same(second))
            }
            # Which client came later (on a tie, a stable order, whichever file is which).
            later, earlier = (
                (second, first)
                if (min(t.starts for t in second_held), second.key)
                >= (min(t.starts for t in first_held), first.key)
                else (first, second)
            )
            ends = {first.key: end_first, second.key: end_second}
            both_held = len(on_record) == 2 and not on_record[Role.PRIMARY].same(
                on_record[Role.SECONDARY]
            )
            if both_held:
                in_use = min(end_first, end_second) > self.as_of
                where = {client.key: role for role, client in on_record.items()}
                findings.append(
                    Finding(
                        "duplicate",
                        CheckResult.CRITICAL if in_use else CheckResult.WARNING,
                        f"{text} ({pool}) {'is' if in_use else 'was'} leased to two clients:"
                        f" {first.describe()} by the {where.get(first.key, '?')} until"
                        f" {_when(end_first)}, {second.describe()} by the"
                        f" {where.get(second.key, '?')} until {_when(end_second)}"
                        f" (overlapping since {_when(since)})",
                        f"kick {later.describe()} (it got the address later, from the"
                        f" {where.get(later.key, '?')}): make it release or reboot its link;"
                        f" then check {text} answers a single MAC (arping -D) and compare"
                        " again after the pair is healed",
                        address=text,
                        pool=pool,
                        relationship=relationship,
                        since=since,
                        until=min(end_first, end_second),
                        clients=(later, earlier),
                        records=records,
                    )
                )
                continue
            winner = next(iter(on_record.values()), None)
            if winner is not None and winner.same(first):
                loser = second
            elif winner is not None:
                loser = first
            else:
                loser = later
            loser_end = ends[loser.key]
            still = loser_end > self.as_of
            held_by = (
                f"now on record for {winner.describe()}"
                if winner is not None
                else "no client on record now"
            )
            findings.append(
                Finding(
                    "unhealed",
                    CheckResult.CRITICAL if still else CheckResult.WARNING,
                    f"{text} ({pool}) was leased to {first.describe()} and"
                    f" {second.describe()} at overlapping times since {_when(since)};"
                    f" {held_by}; {loser.describe()}"
                    + (
                        f" may still use it until {_when(loser_end)}"
                        if still
                        else f" held it until {_when(loser_end)}"
                    ),
                    (
                        f"kick {loser.describe()} now (make it release or renew: it will be"
                        f" refused {text} and take another); then check {text} answers a"
                        " single MAC (arping -D)"
                        if still
                        else f"nothing to kick any more; check the traffic of {text}"
                        f" between {_when(since)} and {_when(loser_end)} if it matters"
                    ),
                    address=text,
                    pool=pool,
                    relationship=relationship,
                    since=since,
                    until=loser_end,
                    clients=(loser, winner) if winner is not None else (first, second),
                    records=records,
                )
            )
        return findings

    def _current(self, address: int, *, skip_duplicate: bool) -> list[Finding]:
        """The two current records of an address against each other."""
        p_lease = self.sides[Role.PRIMARY].current.get(address)
        s_lease = self.sides[Role.SECONDARY].current.get(address)
        p_kind, s_kind = _kind(p_lease, self.as_of), _kind(s_lease, self.as_of)
        p_client = Client.of(p_lease) if p_lease is not None else None
        s_client = Client.of(s_lease) if s_lease is not None else None
        if p_kind is s_kind and p_kind is not BindingState.ACTIVE:
            return []
        if p_kind is BindingState.ACTIVE and s_kind is BindingState.ACTIVE:
            if p_client is None or s_client is None or p_client.same(s_client):
                return []
            if skip_duplicate:
                return []  # reported as a duplicate from the tenures
        if p_kind in _RETURNING and s_kind in _RETURNING:
            return []
        pool, relationship = self._where(address)
        mclt = self.mclts.get(relationship, self.mclts[None])
        text = int_to_address(address)
        records = (
            _record(Role.PRIMARY, p_lease, self.as_of),
            _record(Role.SECONDARY, s_lease, self.as_of),
        )
        leases = {Role.PRIMARY: p_lease, Role.SECONDARY: s_lease}

        def finding(
            kind: str,
            severity: CheckResult,
            message: str,
            action: str,
            since: int | None,
            clients: tuple[Client, ...] = (),
        ) -> Finding:
            return Finding(
                kind,
                severity,
                message,
                action,
                address=text,
                pool=pool,
                relationship=relationship,
                since=since,
                clients=clients,
                records=records,
            )

        states = (
            f"the primary says {_describe(p_lease, p_kind)},"
            f" the secondary {_describe(s_lease, s_kind)}"
        )
        pending = [role for role, lease in leases.items() if _acknowledged(lease) is False]
        if pending:
            role = max(pending, key=lambda r: _changed_at(leases[r]) or 0)
            changed = _changed_at(leases[role])
            age = None if changed is None else self.as_of - changed
            apart = self._apart(role, relationship)
            if apart is not None:
                return [
                    finding(
                        "in-flight",
                        CheckResult.OK,
                        f"{text} ({pool}): {states}; the {role}'s update of {_when(changed)}"
                        f" waits for the link: the {role} is {apart.my_state.keyword} since"
                        f" {_when(apart.my_stos)}",
                        "none here: it is sent when the pair reconnects (see the pair's"
                        " state above)",
                        changed,
                    )
                ]
            if age is not None and age <= mclt:
                return [
                    finding(
                        "in-flight",
                        CheckResult.OK,
                        f"{text} ({pool}): {states}; the {role}'s update of"
                        f" {_when(changed)} is not acknowledged yet ({format_duration(max(age, 0))}"
                        f" old, within MCLT {format_duration(mclt)})",
                        "none: expected while the update is in flight; compare again after"
                        f" {format_duration(mclt)} if it stays",
                        changed,
                    )
                ]
            return [
                finding(
                    "disagreement",
                    CheckResult.WARNING,
                    f"{text} ({pool}): {states}; the {role}'s update of {_when(changed)}"
                    f" was never acknowledged"
                    + (
                        f" ({format_duration(age)} ago, beyond MCLT {format_duration(mclt)})"
                        if age is not None
                        else ""
                    ),
                    f"check the failover link and unacked updates (dhcpfoctl status); if the"
                    f" pair is normal and {text} stays different, restart the {role.other}"
                    " so that it recovers the leases from its partner",
                    changed,
                )
            ]
        if p_kind is BindingState.FREE and s_kind is BindingState.BACKUP:
            since = max((_changed_at(lease) or 0 for lease in leases.values()), default=0) or None
            return [
                finding(
                    "ownership",
                    CheckResult.WARNING,
                    f"{text} ({pool}): both servers may allocate it (free on the primary,"
                    " backup on the secondary)",
                    f"before it is handed out twice: check the pair is normal (dhcpfoctl"
                    f" status); if {text} stays so, restart the secondary so that it"
                    " recovers (it takes the primary's view)",
                    since,
                )
            ]
        # Which side holds the newer record, and did its partner acknowledge it?
        kinds = {Role.PRIMARY: p_kind, Role.SECONDARY: s_kind}
        # On equal times the binding is the news (a state change keeps ``starts``).
        newer = max(
            leases,
            key=lambda r: (_changed_at(leases[r]) or -1, kinds[r] is BindingState.ACTIVE),
        )
        older = newer.other
        newer_lease, newer_kind = leases[newer], kinds[newer]
        changed = _changed_at(newer_lease)
        newer_client = Client.of(newer_lease) if newer_lease is not None else None
        if (
            newer_kind is BindingState.ACTIVE
            and _acknowledged(newer_lease)
            and newer_client is not None
        ):
            in_use = newer_lease is not None and (newer_lease.ends or 0) > self.as_of
            return [
                finding(
                    "lost",
                    CheckResult.CRITICAL if in_use else CheckResult.WARNING,
                    f"{text} ({pool}): the {newer} leased it to {newer_client.describe()}"
                    f" at {_when(changed)} until"
                    f" {_when(newer_lease.ends if newer_lease else None)},"
                    f" acknowledged by its partner, but the {older} has no record of it"
                    f" (it says {_describe(leases[older], kinds[older])})",
                    f"the {older} may hand {text} to another client: restart the {older} so"
                    " that it recovers from its partner, and check whether its lease file was"
                    " replaced (a restored backup, a lost disk write)",
                    changed,
                    (newer_client,),
                )
            ]
        return [
            finding(
                "disagreement",
                CheckResult.WARNING,
                f"{text} ({pool}): {states}; no update in flight explains it",
                f"check the failover link (dhcpfoctl status); if the pair is normal and {text}"
                f" stays different, restart the {older} so that it recovers from the {newer}",
                changed,
            )
        ]

    # --- summaries ----------------------------------------------------------------------

    def pool_summaries(self, findings: list[Finding]) -> list[Summary]:
        summaries: dict[str, Summary] = {
            name: Summary(name, relationship) for name, relationship in self.pools.names()
        }
        for address in self.addresses_seen:
            name, relationship = self._where(address)
            summary = summaries.setdefault(name, Summary(name, relationship))
            summary.addresses += 1
            summary.agreeing += address in self.agreeing
        for finding in findings:
            if finding.pool is not None:
                summaries.setdefault(finding.pool, Summary(finding.pool, finding.relationship))
                summaries[finding.pool].findings[finding.kind] += 1
        return list(summaries.values())

    def relationship_summaries(
        self, findings: list[Finding], relationships: list[str]
    ) -> list[Summary]:
        summaries = {name: Summary(name, name) for name in relationships}
        for address in self.addresses_seen:
            _, relationship = self._where(address)
            if relationship is None:
                continue
            summary = summaries.setdefault(relationship, Summary(relationship, relationship))
            summary.addresses += 1
            summary.agreeing += address in self.agreeing
        for finding in findings:
            if finding.relationship is not None:
                summary = summaries.setdefault(
                    finding.relationship, Summary(finding.relationship, finding.relationship)
                )
                summary.findings[finding.kind] += 1
        return list(summaries.values())


def _describe(lease: Lease | None, kind: BindingState) -> str:
    if lease is None:
        return "no record"
    client = Client.of(lease)
    if kind is BindingState.ACTIVE and client is not None:
        return f"active for {client.describe()}"
    return kind.keyword


def _timeline(journal: Journal, name: str) -> list[tuple[int, FailoverState]]:
    """(since, own state) of one server, from its state records in order."""
    timeline: list[tuple[int, FailoverState]] = []
    for record in journal.states:
        if record.name != name or record.my_stos is None:
            continue
        if timeline and timeline[-1][1] is record.my_state:
            continue
        timeline.append((record.my_stos, record.my_state))
    return timeline


def _overlaps(
    timelines: dict[Role, list[tuple[int, FailoverState]]], as_of: int
) -> list[tuple[int, int, dict[Role, FailoverState]]]:
    """Maximal intervals in which both servers' states stay the same and are both serving,
    with at least one in partner-down; the last one runs to ``as_of``."""
    if not all(timelines.values()):
        return []
    moments = sorted({when for timeline in timelines.values() for when, _ in timeline})
    intervals: list[tuple[int, int, dict[Role, FailoverState]]] = []
    for index, start in enumerate(moments):
        end = moments[index + 1] if index + 1 < len(moments) else max(as_of, start)
        states = {}
        for role, timeline in timelines.items():
            before = [state for when, state in timeline if when <= start]
            if before:
                states[role] = before[-1]
        if len(states) < 2 or not all(state in _SERVING for state in states.values()):
            continue
        if FailoverState.PARTNER_DOWN not in states.values():
            continue
        if intervals and intervals[-1][1] == start and intervals[-1][2] == states:
            intervals[-1] = (intervals[-1][0], end, states)
        else:
            intervals.append((start, end, states))
    return intervals
