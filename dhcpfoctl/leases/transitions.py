"""New bindings: the lease-record transitions that consume a server's free leases.

What runs a server out of its own free leases while it cannot talk to its partner is the
rate of *new bindings*, not of lease records: a real dhcpd writes a fresh record (``starts``
moved) at every renewal by the same client. A record is a new binding when it makes its
address ``active``:

* from any other state (free, backup, expired, released, abandoned, reset, or an address
  with no record: a never-used free lease, which a rewrite does not write), or
* for another client than the one that held it (hardware address or uid differ).

A renewal (active, same client) costs nothing. What "held it" means is kept in
:class:`Holders`: for each address whose last record is active, a 32-bit fingerprint of its
client (16 bits of the hardware address's CRC, 16 of the uid's; 0 = unknown, which matches
anything). That memory is what lets a later run judge only what dhcpd appended; there the
hardware address alone tells clients apart (see :func:`table_bindings`).

Which server made the binding, from one server's own file (docs/lease-file.md §3,
docs/failover-protocol.md §7.1-7.2), checked on the captured dhcpd 4.4.3 journals:

* a record this server wrote as it answered the client has ``cltt`` = ``starts`` (dhcpd
  stamps both with the time of the DHCPACK), and while its BNDUPD is not yet acknowledged
  it also carries ``rewind binding state`` = the state the partner still knows (``free`` on a
  primary, ``backup`` on a secondary: the lease it consumed);
* a record written on receiving the partner's BNDUPD has ``starts`` = the partner's STOS but
  keeps this server's old ``cltt`` (dhcpd does not store a BNDUPD's CLTT) or none, and never a
  rewind state (an accepted update sets it to the new state).

So a new binding is this server's when its record has a rewind state other than ``active`` or
``cltt`` equal to ``starts``, and its partner's otherwise.

A lease file is itself a journal (:func:`journal_bindings`): dhcpd's rewrite (at start-up and
hourly) writes one record per lease, so the first record of each address is that snapshot,
and every later one is a transition appended since. That is the history a run has when it
remembers none (a first run, ``balance``, ``audit --as-of``).
"""

from __future__ import annotations

import gc
import operator
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from typing import Final, NamedTuple

from dhcpfoctl.model import BindingState, Lease, LeaseTable, address_to_int

_ACTIVE: Final = int(BindingState.ACTIVE)
#: Legacy states dhcpd reads as active (plus a flag).
_ACTIVE_STATES: Final = frozenset({_ACTIVE, int(BindingState.RESERVED), int(BindingState.BOOTP)})
_HALF: Final = 0xFFFF
_EXPIRED: Final = int(BindingState.EXPIRED)
#: bytes.translate tables: a state byte to 1 when it is active (legacy forms included),
#: and a 0/1 mask inverted.
_ACTIVE_TABLE: Final = bytes(int(n in _ACTIVE_STATES) for n in range(256))
_NOT_TABLE: Final = bytes([1, 0]) + bytes(254)


class NewBinding(NamedTuple):
    """One address bound to a new client (a tuple: a large journal makes millions)."""

    address: int
    #: When the binding began: the record's ``starts`` (0 when the record has none).
    at: int
    #: Made by the server whose lease file this is (else by its failover partner).
    local: bool


def fingerprint(hardware: bytes | None, uid: bytes | None) -> int:
    """A client's 32-bit fingerprint: hardware address and uid, 16 bits each (0: absent)."""
    hw = (zlib.crc32(hardware) & _HALF or 1) if hardware else 0
    client_id = (zlib.crc32(uid) & _HALF or 1) if uid else 0
    return hw << 16 | client_id


def same_client(a: int, b: int) -> bool:
    """Whether two fingerprints can be the same client: each known half must agree."""
    hw_a, hw_b, id_a, id_b = a >> 16, b >> 16, a & _HALF, b & _HALF
    if hw_a and hw_b and hw_a != hw_b:
        return False
    return not (id_a and id_b and id_a != id_b)


def made_locally(starts: int, cltt: int, rewind: int) -> bool:
    """The record is this server's own answer to the client (see the module doc)."""
    return (rewind != 0 and rewind not in _ACTIVE_STATES) or (cltt != 0 and cltt == starts)


class Holders:
    """The client of every address whose last record is active (see the module doc)."""

    __slots__ = ("clients",)

    def __init__(self, clients: dict[int, int] | None = None) -> None:
        self.clients: dict[int, int] = {} if clients is None else clients

    def __len__(self) -> int:
        return len(self.clients)

    def observe(self, address: int, active: bool, client: int) -> bool:
        """Record the address's new last record; whether it is a new binding."""
        if not active:
            self.clients.pop(address, None)
            return False
        held = self.clients.get(address)
        self.clients[address] = client if held is None or client else held
        return held is None or not same_client(held, client)

    @classmethod
    def from_table(cls, table: LeaseTable) -> Holders:
        """The baseline: the holders of a whole file's current leases (nothing is new).

        By hardware address only: decoding every record's uid would cost several times the
        read of a large file; the uid half stays unknown (matching any) until the holder's
        next record."""
        hardware = table.hardware_at
        holders = cls()
        holders.clients = {
            table.address_int(row): fingerprint(hardware(row), None)
            for row, state in enumerate(table.state)
            if state in _ACTIVE_STATES
        }
        return holders

    def to_bytes(self) -> bytes:
        """Compact form for a state file: sorted addresses delta-coded, then fingerprints."""
        addresses = sorted(self.clients)
        deltas = array("I", map(operator.sub, addresses, [0, *addresses[:-1]]))
        clients = array("I", map(self.clients.__getitem__, addresses))
        header = len(addresses).to_bytes(4, "big")
        return zlib.compress(header + deltas.tobytes() + clients.tobytes(), 1)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Holders:
        """Inverse of :meth:`to_bytes`; ``ValueError`` on anything else."""
        try:
            raw = zlib.decompress(blob)
        except zlib.error as exc:
            raise ValueError(f"not a holders blob: {exc}") from None
        count = int.from_bytes(raw[:4], "big")
        if len(raw) != 4 + 8 * count:
            raise ValueError("not a holders blob: wrong length")
        deltas, clients = array("I"), array("I")
        deltas.frombytes(raw[4 : 4 + 4 * count])
        clients.frombytes(raw[4 + 4 * count :])
        return cls(dict(zip(accumulate(deltas), clients, strict=True)))


def new_bindings(records: Iterable[Lease], holders: Holders) -> Iterator[NewBinding]:
    """The new bindings among ``records`` (in file order), updating ``holders``."""
    for lease in records:
        address = address_to_int(lease.address)
        # Without a ``binding state`` line dhcpd judges by ``ends``; the record's own
        # ``starts``/``ends`` are the best "now" it offers for that.
        state = lease.effective_state(lease.starts or 0)
        active = state == BindingState.ACTIVE
        client = fingerprint(lease.hardware_address, lease.uid)
        if holders.observe(address, active, client):
            starts, cltt = lease.starts or 0, lease.cltt or 0
            rewind = int(lease.rewind_binding_state or 0)
            yield NewBinding(address, starts, made_locally(starts, cltt, rewind))


def table_bindings(table: LeaseTable, holders: Holders) -> Iterator[NewBinding]:
    """The new bindings among the rows of ``table`` (one record per address, e.g. what was
    appended since the last read), updating ``holders``.

    Between two reads an address may have changed hands more than once; only its last
    record is judged, so a free → active → free → active sequence inside one interval
    counts once (polls shorter than a lease time make that rare). Clients are told apart by
    hardware address here (dhcpd requires one on every active lease): decoding each
    record's uid would cost more than reading it.
    """
    for row in range(len(table)):
        state = table.state[row]
        if state == 0:  # no ``binding state`` line: dhcpd's reading of it
            state = int(table.lease_at(row).effective_state(table.starts[row]))
        active = state in _ACTIVE_STATES
        client = fingerprint(table.hardware_at(row), None) if active else 0
        address = table.address_int(row)
        if holders.observe(address, active, client):
            starts = table.starts[row]
            local = made_locally(starts, table.cltt[row], table.rewind_state[row])
            yield NewBinding(address, starts, local)


@dataclass(slots=True)
class Journal:
    """Every lease record of a file in file order, as the columns transitions need
    (filled by :func:`dhcpfoctl.leases.read_lease_journal`).

    ``state`` is the recorded binding state (0: no ``binding state`` line, judged by
    ``ends`` as dhcpd does); ``client`` the hardware-address :func:`fingerprint` (0: none).
    """

    address: array = field(default_factory=lambda: array("I"))
    state: array = field(default_factory=lambda: array("B"))
    rewind: array = field(default_factory=lambda: array("B"))
    starts: array = field(default_factory=lambda: array("q"))
    ends: array = field(default_factory=lambda: array("q"))
    cltt: array = field(default_factory=lambda: array("q"))
    client: array = field(default_factory=lambda: array("I"))

    def __len__(self) -> int:
        return len(self.address)

    def extend(self, other: Journal) -> None:
        """Append another journal's records (the records that follow in the file)."""
        for name in _JOURNAL_FIELDS:
            getattr(self, name).extend(getattr(other, name))

    def extend_reversed(self, other: Journal) -> None:
        """Append another journal's records last first (``other`` is turned round)."""
        other.reverse()
        self.extend(other)

    def reverse(self) -> None:
        """Turn the records round, in place."""
        for name in _JOURNAL_FIELDS:
            getattr(self, name).reverse()

    def verdict_columns(self) -> tuple[array, bytes, bytes, array, array]:
        """(addresses, active, made locally, starts, clients): what the compiled scanner's
        ``Judge`` is fed of each record (0/1 bytes for the flags)."""
        active = _effective_states(self).translate(_ACTIVE_TABLE)
        local = bytes(map(made_locally, self.starts, self.cltt, self.rewind))
        return self.address, active, local, self.starts, self.client

    def extend_raw(self, *columns: bytes) -> None:
        """Append the compiled scanner's journal columns (native-endian bytes, in the
        order of the fields)."""
        for name, column in zip(_JOURNAL_FIELDS, columns, strict=True):
            getattr(self, name).frombytes(column)


_JOURNAL_FIELDS: Final = ("address", "state", "rewind", "starts", "ends", "cltt", "client")


def _effective_states(journal: Journal) -> bytearray:
    """The state column, records without a ``binding state`` line read as dhcpd reads
    them (by ``ends``; the full parser's records carry their reading already)."""
    states = bytearray(journal.state)
    row = states.find(0)
    while row >= 0:
        states[row] = _ACTIVE if journal.ends[row] > journal.starts[row] else _EXPIRED
        row = states.find(0, row + 1)
    return states


def _first_records(addresses: array) -> bytes:
    """1 at the first record of each address (the rewrite's snapshot), else 0."""
    from dhcpfoctl.leases import compiled_scanner

    module = compiled_scanner()
    if module is not None:
        return bytes(module.first_records(addresses))
    count = len(addresses)
    mask = bytearray(count)
    # Walking backwards, an address's last assignment is its first row.
    for row in dict(zip(reversed(addresses), range(count - 1, -1, -1), strict=True)).values():
        mask[row] = 1
    return bytes(mask)


@dataclass(slots=True)
class JournalBindings:
    """What a journal records since dhcpd's last rewrite (see :func:`journal_bindings`)."""

    #: The new bindings among the appended records, in file order.
    bindings: Sequence[NewBinding]
    #: When the journal's history starts (``None``: no appended binding or renewal).
    since: int | None
    #: The holders after the last record (a follower's baseline).
    holders: Holders
    #: Records read, and how many of them were appended after the snapshot.
    records: int = 0
    appended: int = 0


def journal_bindings(
    journal: Journal,
    holders: Holders | None = None,
    *,
    after: int | None = None,
    keep_holders: bool = True,
) -> JournalBindings:
    """The new bindings a lease file records since dhcpd's last rewrite.

    The first record of each address is the rewrite's snapshot: it primes ``holders`` and
    counts nothing; every later record is judged as :func:`table_bindings` judges one
    (clients told apart by hardware address).

    The history starts at the earliest ``starts`` among the appended *active* records (new
    bindings and renewals: dhcpd stamps them when it answers, or with the partner's STOS).
    The rewrite itself is earlier, but its time is not in the file; appended free, expired
    or released records carry the ``starts`` of the binding that ended, which may be long
    before the rewrite. Taking the first appended binding or renewal makes the span at most
    the true one: the rate is then at least the true one, and the endurance a lower bound
    (the safe side). Never-used addresses have no snapshot record, so their first binding
    reads as snapshot and is not counted (a rewrite writes every lease dhcpd created; on a
    dhcpd that has run once every pool address has one).

    ``after``: only the bindings that began after this time are wanted (a rate's window):
    the records before the first appended binding or renewal that began later only move
    the holders, which then take each address's last record there in bulk.

    ``keep_holders=False``: the holders of the addresses with no record judged are not
    wanted (a stateless run keeps only the bindings), and are not worked out.
    """
    holders = Holders() if holders is None else holders
    observe, held_by = holders.observe, holders.clients.get
    addresses, clients, starts_column = journal.address, journal.client, journal.starts
    count = len(addresses)
    active = _effective_states(journal).translate(_ACTIVE_TABLE)
    firsts = _first_records(addresses)
    appended_active = _and(firsts.translate(_NOT_TABLE), active)
    since = min(filter(None, compress(starts_column, appended_active)), default=None)
    # Records before ``cut`` are not judged one by one: each address's snapshot record and
    # its last one there prime the holders. Addresses are independent of each other, and an
    # address's records keep their order, so that changes nothing.
    cut = 0
    if after is not None and count:
        if max(starts_column) <= after:  # the whole journal is older: one cheap pass
            cut = count
        else:
            wanted = map(operator.and_, appended_active, map(after.__lt__, starts_column))
            cut = next(compress(range(count), wanted), count)
    appended = count - firsts.count(1)
    if cut == count and not keep_holders:  # nothing judged, no holder wanted
        return JournalBindings([], since, holders, count, appended)
    if cut:
        prefix = addresses[:cut]
        prefix.reverse()
        lasts = _first_records(prefix)[::-1] + bytes(count - cut)
        primes = _or(lasts, _and(firsts, bytes(cut) + b"\x01" * (count - cut)))
    else:
        primes = firsts
    primed = _or(primes, _prefix(cut, count))
    judged = primed.translate(_NOT_TABLE)
    if cut and not keep_holders:
        # Only the addresses with a record judged need their holder at the cut.
        needed = set(addresses[cut:])
        wanted = bytes(map(needed.__contains__, addresses))
        primes, primed = _and(primes, wanted), _and(primed, wanted)
    primes_active = _and(primes, active)
    if holders.clients or 0 in compress(clients, primes_active):
        # A record without a hardware address keeps the earlier holder: in file order.
        for address, is_active, client in compress(
            zip(addresses, active, clients, strict=True), primed
        ):
            observe(address, bool(is_active), client if is_active else 0)
    else:  # the same in bulk: one record per address
        holders.clients.update(compress(zip(addresses, clients, strict=True), primes_active))
    bindings: list[NewBinding] = []
    found = bindings.append
    later = compress(
        zip(addresses, active, starts_column, journal.cltt, journal.rewind, clients, strict=True),
        judged,
    )
    # The hot loop of a large journal (two appended records per address and more): a
    # renewal by the holder, the common case, is settled by one dict lookup; the collector
    # is paused meanwhile, as the many NewBinding tuples would trigger full collections in
    # vain.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for address, is_active, starts, cltt, rewind, client in later:
            if is_active:
                if held_by(address) == client:
                    continue  # a renewal
                if observe(address, True, client):
                    found(NewBinding(address, starts, made_locally(starts, cltt, rewind)))
            else:
                observe(address, False, 0)
    finally:
        if collecting:
            gc.enable()
    return JournalBindings(bindings, since, holders, count, appended)


@dataclass(slots=True)
class WindowRequest:
    """Asks a read (``read_leases(window=...)``) for the new bindings that a rate over a
    window starting at ``after`` can count (:func:`window_bindings`); the read fills
    ``found``."""

    after: int
    found: JournalBindings | None = None


def window_bindings(journal: Journal, after: int) -> JournalBindings:
    """What :func:`journal_bindings` finds with ``after`` that a rate over a window starting
    there can count (:func:`dhcpfoctl.balance.journal_history` with the same start):
    the bindings that began after it, and those with no start (which it counts when the
    history starts later). The others began before the window's start, where the history
    does too. Holders are not worked out.

    The compiled scanner's ``Judge`` finds the same while a file is read backwards, without
    keeping the journal (``read_leases(window=...)``): this is its pure-Python form, and the
    oracle of the differential tests."""
    found = journal_bindings(journal, after=after, keep_holders=False)
    found.bindings = [b for b in found.bindings if b.at > after or b.at == 0]
    return found


def judged(result: tuple[tuple[bytes, bytes, bytes], int | None, int, int]) -> JournalBindings:
    """The compiled ``Judge``'s result as :func:`window_bindings` gives it."""
    (addresses, starts, local), since, records, appended = result
    bindings = BindingColumns(array("I", addresses), array("q", starts), local)
    return JournalBindings(bindings, since, Holders(), records, appended)


class BindingColumns(Sequence[NewBinding]):
    """New bindings kept as three columns, 13 bytes each where a list of tuples takes about
    90 (a window over a busy 1M-address journal holds millions); a :class:`NewBinding` is
    built only when one is looked at. Equal to any sequence of the same bindings."""

    __slots__ = ("_addresses", "_local", "_starts")

    def __init__(self, addresses: array, starts: array, local: bytes) -> None:
        self._addresses, self._starts, self._local = addresses, starts, local

    def __len__(self) -> int:
        return len(self._addresses)

    def __getitem__(self, index: int) -> NewBinding:  # type: ignore[override]
        return NewBinding(self._addresses[index], self._starts[index], bool(self._local[index]))

    def __iter__(self) -> Iterator[NewBinding]:
        return map(NewBinding, self._addresses, self._starts, map(bool, self._local))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(map(operator.eq, self, other))

    __hash__ = None  # type: ignore[assignment]


def _and(a: bytes, b: bytes) -> bytes:
    """Two 0/1 masks of one length, and-ed (in C, through integers)."""
    return (int.from_bytes(a) & int.from_bytes(b)).to_bytes(len(a))


def _or(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a) | int.from_bytes(b)).to_bytes(len(a))


def _prefix(cut: int, count: int) -> bytes:
    """The mask of the first ``cut`` of ``count`` records."""
    return b"\x01" * cut + bytes(count - cut)
