"""The one lease model shared by every dhcpfoctl command.

Pure data: no I/O, no clock. Times are UTC epoch seconds (``int``); ``None`` means the
field was absent (dhcpd writes no field whose value is 0) and :data:`NEVER` is dhcpd's
``never``. Wire codes are :class:`WireEnum` members, which accept values they do not know
(as dnspython's enums do) so that a newer dhcpd or a corrupt peer cannot crash a reader.

Memory layout. A 1M-address lease file must fit in a few hundred MB, so :class:`LeaseTable`
keeps the current lease of each address in columns (``array``) rather than one Python object
per lease; :class:`Lease` objects are built only when a caller asks for one. The rarely used,
variable-length parts of a lease (uid, hostname, ``set`` variables, options, ``on`` blocks)
live in a per-row slot that is empty for never-used and backup leases.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import operator
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from typing import Any, Final, Self

#: dhcpd's ``never``: sorts after every real time and differs from all of them.
NEVER: Final = 0x7FFF_FFFF_FFFF_FFFF
#: The times a reader keeps: a day inside the calendar's years 1-9999 on either side, so that
#: every one has a date in UTC and in any local time zone (files hold any number: ``epoch N``
#: and a time-zone offset after a date are unbounded).
EARLIEST_TIME: Final = -62135596800 + 86400
LATEST_TIME: Final = 253402300799 - 86400


class WireEnum(enum.IntEnum):
    """IntEnum that synthesises a member for an unknown value instead of raising.

    ``keyword`` is the spelling dhcpd uses in lease files and logs; unknown values are
    spelled ``unknown-N`` so they round-trip through text and JSON.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member

    @property
    def keyword(self) -> str:
        if self._name_.startswith("UNKNOWN_") and self._name_ not in type(self).__members__:
            return f"unknown-{self._value_}"
        return self._name_.lower().replace("_", "-")

    @classmethod
    def from_keyword(cls, word: str) -> Self:
        """Parse the lease-file / log spelling (case-insensitive); raises ``ValueError``."""
        word = word.lower()
        if word.startswith("unknown-") and word[8:].isdigit():
            return cls(int(word[8:]))
        try:
            return cls[word.replace("-", "_").upper()]
        except KeyError:
            raise ValueError(f"unknown {cls.__name__} {word!r}") from None


class BindingState(WireEnum):
    """Lease binding states, with the failover wire numbers (binding-status option).

    RESERVED and BOOTP exist only in lease files of old dhcpd versions (read as ACTIVE plus
    the flag); they have no wire value and dhcpd 4.4 never writes them.
    """

    FREE = 1
    ACTIVE = 2
    EXPIRED = 3
    RELEASED = 4
    ABANDONED = 5
    RESET = 6
    BACKUP = 7
    RESERVED = 8
    BOOTP = 9


class FailoverState(WireEnum):
    """Failover server states; the same numbers on the wire and in OMAPI ``local-state``."""

    UNKNOWN_STATE = 0
    STARTUP = 1
    NORMAL = 2
    COMMUNICATIONS_INTERRUPTED = 3
    PARTNER_DOWN = 4
    POTENTIAL_CONFLICT = 5
    RECOVER = 6
    PAUSED = 7
    SHUTDOWN = 8
    RECOVER_DONE = 9
    RESOLUTION_INTERRUPTED = 10
    CONFLICT_DONE = 11
    RECOVER_WAIT = 254


class Role(enum.StrEnum):
    """A server's role in a failover relationship (``primary;`` / ``secondary;`` in dhcpd.conf)."""

    PRIMARY = "primary"
    SECONDARY = "secondary"

    @property
    def other(self) -> Role:
        return Role.SECONDARY if self is Role.PRIMARY else Role.PRIMARY


class HardwareType(WireEnum):
    """ARP hardware types dhcpd names in ``hardware TYPE …;`` (others: ``unknown-N``)."""

    ETHERNET = 1
    TOKEN_RING = 6
    FDDI = 8
    INFINIBAND = 32


class LeaseFlag(enum.IntFlag):
    """Per-lease flags; RESERVED and BOOTP are also the failover IP-flags bits."""

    RESERVED = 0x01
    BOOTP = 0x02
    #: The legacy ``abandoned;`` statement was present (same meaning as the binding state).
    ABANDONED = 0x04


#: Value of a ``set NAME = VALUE;`` variable: bytes for a quoted string (lossless, may hold
#: any byte), int for ``%N``, bool for ``true``/``false``.
VariableValue = bytes | int | bool


@dataclass(frozen=True, slots=True)
class OnBlock:
    """An ``on EVENTS { … }`` block, kept verbatim (``body`` is the text between braces)."""

    events: str  # "expiry", "release", "commit", "expiry or release", as written
    body: str


@dataclass(frozen=True, slots=True)
class LeaseExtras:
    """The variable-length, mostly absent parts of a lease record."""

    uid: bytes | None = None
    client_hostname: str | None = None
    #: ``billing class "X";`` / ``billing subclass "P" KEY;`` text after ``billing``.
    billing: str | None = None
    variables: tuple[tuple[str, VariableValue], ...] = ()
    #: ``option agent.NAME VALUE;`` as (``agent.NAME``, value bytes).
    options: tuple[tuple[str, bytes], ...] = ()
    on_blocks: tuple[OnBlock, ...] = ()
    #: Statements read but not modelled (e.g. ``class IDENT;``), verbatim without ``;``.
    other: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(
            (
                self.uid is not None,
                self.client_hostname is not None,
                self.billing is not None,
                self.variables,
                self.options,
                self.on_blocks,
                self.other,
            )
        )


EMPTY_EXTRAS: Final = LeaseExtras()


@dataclass(frozen=True, slots=True)
class Lease:
    """One lease record as the file states it (absent fields are ``None``).

    ``binding_state`` is ``None`` when the record has no ``binding state`` line; use
    :meth:`effective_state` for dhcpd's default.
    """

    address: str
    starts: int | None = None
    ends: int | None = None
    tstp: int | None = None
    tsfp: int | None = None
    atsfp: int | None = None
    cltt: int | None = None
    binding_state: BindingState | None = None
    next_binding_state: BindingState | None = None
    rewind_binding_state: BindingState | None = None
    flags: LeaseFlag = LeaseFlag(0)  # noqa: RUF009 -- an immutable int flag value
    hardware_type: HardwareType | None = None
    hardware_address: bytes | None = None
    extras: LeaseExtras = EMPTY_EXTRAS

    # Convenience views of the extras, so callers need not know the storage split.
    @property
    def uid(self) -> bytes | None:
        return self.extras.uid

    @property
    def client_hostname(self) -> str | None:
        return self.extras.client_hostname

    @property
    def reserved(self) -> bool:
        return bool(self.flags & LeaseFlag.RESERVED)

    @property
    def bootp(self) -> bool:
        return bool(self.flags & LeaseFlag.BOOTP)

    @property
    def abandoned(self) -> bool:
        return bool(self.flags & LeaseFlag.ABANDONED) or (
            self.binding_state == BindingState.ABANDONED
        )

    @property
    def mac(self) -> str | None:
        """Hardware address as lower-case colon hex, as dhcpd writes it."""
        if self.hardware_address is None:
            return None
        return self.hardware_address.hex(":")

    def effective_state(self, now: int, *, failover: bool = True) -> BindingState:
        """dhcpd's reading of the record (docs/lease-file.md §7.4, legacy states folded in)."""
        state = self.binding_state
        if state in (BindingState.RESERVED, BindingState.BOOTP):
            return BindingState.ACTIVE
        if state is not None:
            return state
        if self.abandoned:
            return BindingState.ABANDONED
        if (self.ends is not None and self.ends > now) or self.extras.on_blocks:
            return BindingState.ACTIVE
        return BindingState.EXPIRED if failover else BindingState.FREE


@dataclass(frozen=True, slots=True)
class FailoverPeerRecord:
    """The last ``failover peer "NAME" state { … }`` record of one relationship."""

    name: str
    my_state: FailoverState
    #: Time of ``my state … at``; ``None`` when written without ``at`` (dhcpd uses read time).
    my_stos: int | None
    partner_state: FailoverState
    partner_stos: int | None
    #: Written only by a secondary (the MCLT it learned from the primary).
    mclt: int | None = None


@dataclass(frozen=True, slots=True)
class HostRecord:
    """A ``host NAME { … }`` record (OMAPI-created, or a ``deleted;`` rubout), verbatim."""

    name: str
    deleted: bool
    body: str


@dataclass(frozen=True, slots=True)
class OtherRecord:
    """``group``, ``class`` and ``subclass`` records, verbatim (``header`` precedes ``{``)."""

    kind: str
    header: str
    body: str


@dataclass(frozen=True, slots=True)
class ReadWarning:
    """A problem found while reading: ``FILE:LINE: message``."""

    file: str
    line: int
    message: str
    #: The last record was cut off by the end of the file: dhcpd was writing it when the
    #: file was read. Expected now and then on a live server, so checks need not alarm.
    truncated_tail: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(slots=True)
class ReaderStats:
    records: int = 0  # lease records read (superseded ones included)
    superseded: int = 0  # lease records replaced by a later one for the same address
    bytes_read: int = 0
    warnings: list[ReadWarning] = field(default_factory=list)


@functools.lru_cache(maxsize=4096)
def address_to_int(address: str) -> int:
    """A dotted quad as an integer; ``ValueError`` if it is not one. Cached: a server
    converts the same few addresses for every message, and ipaddress parses slowly."""
    return int(ipaddress.IPv4Address(address))


def int_to_address(value: int) -> str:
    if type(value) is int and 0 <= value <= 0xFFFFFFFF:  # without ipaddress's slow path
        return f"{value >> 24}.{value >> 16 & 0xFF}.{value >> 8 & 0xFF}.{value & 0xFF}"
    return str(ipaddress.IPv4Address(value))  # its error for anything else


#: The six lease times, in the order dhcpd writes them (and of LeaseTable's columns).
TIME_FIELDS: Final = ("starts", "ends", "tstp", "tsfp", "atsfp", "cltt")

#: Hardware addresses up to this many bytes live in an integer column; longer ones (rare:
#: InfiniBand GUIDs) in a side table.
_HW_INLINE_MAX: Final = 8
_HW_LONG: Final = 0xFF

#: Raw lease-body text for the extras of one row, decoded on demand (see ``LeaseTable``).
RawExtras = bytes
ExtrasDecoder = Callable[[RawExtras], LeaseExtras]


#: ``ExtrasColumn`` length marks: no extras, or a decoded object kept aside.
_NO_EXTRAS: Final = 0
_EXTRAS_OBJECT: Final = 0xFFFFFFFF
_RAW_TYPES: Final = frozenset((bytes, type(None)))


class ExtrasColumn:
    """The extras column of :class:`LeaseTable`: per row ``None``, raw lease-body text
    (:data:`RawExtras`) or a decoded :class:`LeaseExtras`, as a list of them would hold.

    Raw text, what the reader stores for nearly every row, lies in one buffer with an offset
    and a length per row: one ``bytes`` object per lease costs 33 bytes of header and a
    list slot on top of the text (about 30 MiB of a 1M-address table). A row written again
    leaves its old text behind as garbage, compacted away once it outweighs the live text.
    """

    __slots__ = ("_blob", "_dead", "_lengths", "_objects", "_offsets")

    def __init__(self, items: Iterable[LeaseExtras | RawExtras | None] = ()) -> None:
        self._blob = bytearray()
        self._offsets = array("Q")
        self._lengths = array("I")
        self._objects: dict[int, LeaseExtras] = {}
        self._dead = 0
        self.extend(items)

    def __len__(self) -> int:
        return len(self._lengths)

    def __getitem__(self, row: int) -> LeaseExtras | RawExtras | None:
        length = self._lengths[row]
        if length == _NO_EXTRAS:
            return None
        if length == _EXTRAS_OBJECT:
            return self._objects[row % len(self._lengths)]
        start = self._offsets[row]
        return bytes(memoryview(self._blob)[start : start + length])

    def __iter__(self) -> Iterator[LeaseExtras | RawExtras | None]:
        return map(self.__getitem__, range(len(self._lengths)))

    def append(self, extras: LeaseExtras | RawExtras | None) -> None:
        self._offsets.append(len(self._blob))
        self._lengths.append(self._store(len(self._lengths), extras))

    def extend(self, items: Iterable[LeaseExtras | RawExtras | None]) -> None:
        items = list(items)
        if items and set(map(type, items)) <= _RAW_TYPES:
            # The reader's case, a chunk of raw text or none: C-level passes per chunk.
            texts = [text or b"" for text in items]
            lengths = list(map(len, texts))
            if max(lengths) < _EXTRAS_OBJECT:
                base = len(self._blob)
                self._blob += b"".join(texts)
                self._offsets.extend(accumulate(lengths[:-1], initial=base))
                self._lengths.extend(lengths)
                return
        for extras in items:
            self.append(extras)

    def __setitem__(self, row: int, extras: LeaseExtras | RawExtras | None) -> None:
        # Once per updated row of an incremental read: kept to plain operations.
        lengths = self._lengths
        old = lengths[row]  # IndexError as a list would raise it
        if row < 0:
            row += len(lengths)
        if old == _EXTRAS_OBJECT:
            del self._objects[row]
        else:
            self._dead += old
        blob = self._blob
        self._offsets[row] = len(blob)
        if type(extras) is bytes and len(extras) < _EXTRAS_OBJECT:
            blob += extras
            lengths[row] = len(extras)
        else:
            lengths[row] = self._store(row, extras)
        if self._dead > 1 << 20 and self._dead > len(blob) >> 1:
            self._compact()

    def _store(self, row: int, extras: LeaseExtras | RawExtras | None) -> int:
        """Keep ``extras`` for ``row`` (text at the end of the buffer); its length mark."""
        if not extras:  # None, empty text, empty extras: a later record is a full snapshot
            return _NO_EXTRAS
        if isinstance(extras, bytes) and len(extras) < _EXTRAS_OBJECT:
            self._blob += extras
            return len(extras)
        self._objects[row] = extras  # type: ignore[assignment]
        return _EXTRAS_OBJECT

    def _compact(self) -> None:
        blob = bytearray()
        view = memoryview(self._blob)
        for row, length in enumerate(self._lengths):
            if length not in (_NO_EXTRAS, _EXTRAS_OBJECT):
                start = self._offsets[row]
                self._offsets[row] = len(blob)
                blob += view[start : start + length]
        view.release()
        self._blob, self._dead = blob, 0


#: ``scatter(rows, columns, values)``: ``columns[k][rows[i]] = values[k][i]``.
Scatter = Callable[[Sequence[int], Sequence[Any], Sequence[Sequence[Any]]], None]


def scatter_columns(rows: Sequence[int], columns: Sequence[Any], values: Sequence[Any]) -> None:
    """``columns[k][rows[i]] = values[k][i]`` for every column, in C-level passes."""
    for column, value in zip(columns, values, strict=True):
        deque(map(column.__setitem__, rows, value), 0)


class LeaseTable:
    """Current lease per IPv4 address, stored column-wise (last record written wins).

    Rows are appended in order of first appearance; a later record for an address
    overwrites its row, so memory does not grow with superseded records. Absent times and
    states are stored as 0 and read back as ``None``.

    The address index is a radix of /24 blocks (``array`` of 256 row numbers each) rather
    than a dict of ints: lease files cover dense ranges, and a 1M-entry dict would cost
    about 100 MB on its own. Extras may be stored as the raw text of their statements
    (``bytes``) and are then decoded by :attr:`extras_decoder` only when a lease is built,
    which keeps the reader's hot path free of string unescaping.

    :meth:`rows_of_client` answers from an index by hardware address and client identifier,
    built on first use and then kept current by every single-row write (all of them go
    through :meth:`put_row`); a bulk load drops it, to be rebuilt on the next query.
    Other indexes of the table's contents can :meth:`watch` it the same way.
    """

    __slots__ = (
        "_blocks",
        "_by_client",
        "_extras",
        "_hw",
        "_hw_len",
        "_hw_long",
        "_hw_type",
        "_row_address",
        "_watchers",
        "extras_decoder",
        "flags",
        "next_state",
        "rewind_state",
        "state",
        *TIME_FIELDS,
    )

    def __init__(self) -> None:
        self._blocks: dict[int, array] = {}
        self._row_address = array("I")
        self.starts = array("q")
        self.ends = array("q")
        self.tstp = array("q")
        self.tsfp = array("q")
        self.atsfp = array("q")
        self.cltt = array("q")
        self.state = bytearray()
        self.next_state = bytearray()
        self.rewind_state = bytearray()
        self.flags = bytearray()
        self._hw_type = bytearray()
        self._hw = array("Q")
        self._hw_len = bytearray()
        self._hw_long: dict[int, bytes] = {}
        self._extras = ExtrasColumn()
        self.extras_decoder: ExtrasDecoder | None = None
        self._by_client: _ClientIndex | None = None
        self._watchers: list[Callable[[int | None], None]] = []

    def __len__(self) -> int:
        return len(self._row_address)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str | int):
            return False
        return self.row_of(address) is not None

    def upsert_row(
        self,
        address: int,
        times: tuple[int, int, int, int, int, int],
        state: int,
        next_state: int,
        rewind_state: int,
        flags: int,
        hw_type: int,
        hw: bytes | None,
        extras: LeaseExtras | RawExtras | None,
    ) -> bool:
        """Store one record in column form; returns True when it replaced an earlier one.

        ``times`` are (starts, ends, tstp, tsfp, atsfp, cltt) with 0 for absent; states are
        wire numbers with 0 for absent. ``extras`` may be raw statement text (see class doc).
        """
        if hw is None:
            return self.put_row(
                address, *times, state, next_state, rewind_state, flags, hw_type, 0, 0, extras
            )
        if len(hw) > _HW_INLINE_MAX:
            replaced = self.put_row(
                address,
                *times,
                state,
                next_state,
                rewind_state,
                flags,
                hw_type,
                _HW_LONG,
                0,
                extras,
            )
            row = self.row_of(address)
            self._hw_long[row] = hw  # type: ignore[index]
            if self._by_client is not None:  # put_row left this row out: no hw yet
                self._by_client.add(row, hw, self.extras_at(row).uid)  # type: ignore[arg-type]
            return replaced
        return self.put_row(
            address,
            *times,
            state,
            next_state,
            rewind_state,
            flags,
            hw_type,
            len(hw),
            int.from_bytes(hw),
            extras,
        )

    def put_row(
        self,
        address: int,
        starts: int,
        ends: int,
        tstp: int,
        tsfp: int,
        atsfp: int,
        cltt: int,
        state: int,
        next_state: int,
        rewind_state: int,
        flags: int,
        hw_type: int,
        hw_len: int,
        hw: int,
        extras: LeaseExtras | RawExtras | None,
    ) -> bool:
        """The reader's hot path: :meth:`upsert_row` with the hardware address as an int.

        ``hw_len`` is its length in bytes (0: none); the value is big-endian in ``hw``.
        """
        block = self._blocks.get(address >> 8)
        if block is None:
            block = self._blocks[address >> 8] = array("i", _EMPTY_BLOCK)
        row = block[address & 0xFF]
        if row < 0:
            block[address & 0xFF] = len(self._row_address)
            self._row_address.append(address)
            self.starts.append(starts)
            self.ends.append(ends)
            self.tstp.append(tstp)
            self.tsfp.append(tsfp)
            self.atsfp.append(atsfp)
            self.cltt.append(cltt)
            self.state.append(state)
            self.next_state.append(next_state)
            self.rewind_state.append(rewind_state)
            self.flags.append(flags)
            self._hw_type.append(hw_type)
            self._hw_len.append(hw_len)
            self._hw.append(hw)
            self._extras.append(extras)
            if self._by_client is not None and hw_len != _HW_LONG:
                row = block[address & 0xFF]
                self._by_client.add(row, self.hardware_at(row), self.extras_at(row).uid)
            for watcher in self._watchers:
                watcher(address)
            return False
        if self._by_client is not None:
            self._by_client.discard(row)
        self.starts[row] = starts
        self.ends[row] = ends
        self.tstp[row] = tstp
        self.tsfp[row] = tsfp
        self.atsfp[row] = atsfp
        self.cltt[row] = cltt
        self.state[row] = state
        self.next_state[row] = next_state
        self.rewind_state[row] = rewind_state
        self.flags[row] = flags
        self._hw_type[row] = hw_type
        if self._hw_len[row] == _HW_LONG:
            del self._hw_long[row]
        self._hw_len[row] = hw_len
        self._hw[row] = hw
        self._extras[row] = extras
        if self._by_client is not None and hw_len != _HW_LONG:
            self._by_client.add(row, self.hardware_at(row), self.extras_at(row).uid)
        for watcher in self._watchers:
            watcher(address)
        return True

    def put_columns(
        self,
        addresses: Sequence[int],
        times: Sequence[Sequence[int]],
        states: Sequence[Sequence[int]],
        flags: Sequence[int],
        hw_types: Sequence[int],
        hw_lens: Sequence[int],
        hws: Sequence[int],
        extras: Sequence[LeaseExtras | RawExtras | None],
        *,
        scatter: Scatter | None = None,
    ) -> int:
        """Bulk :meth:`put_row` of records in file order; returns how many were superseded.

        ``times`` holds six columns (starts … cltt) and ``states`` three (binding, next,
        rewind), each as long as ``addresses``. The loops run inside ``map``, so a chunk of
        a lease file costs C calls rather than Python statements per record. ``scatter``
        writes the rows that already exist (:func:`scatter_columns` by default; the lease
        reader passes its compiled equivalent).
        """
        count = len(addresses)
        last = dict(zip(addresses, range(count), strict=True))
        superseded = count - len(last)
        if superseded:
            # Journal semantics inside the batch: only each address's last record counts.
            keep = list(last.values())
            keep.sort()  # first-appearance order is not needed; file order keeps it stable

            def pick(column: Sequence[Any]) -> list[Any]:
                return list(map(column.__getitem__, keep))

            addresses = pick(addresses)
            times = [pick(column) for column in times]
            states = [pick(column) for column in states]
            flags, hw_types, hw_lens, hws, extras = (
                pick(flags),
                pick(hw_types),
                pick(hw_lens),
                pick(hws),
                pick(extras),
            )
        keys = list(map(operator.rshift, addresses, repeat(8)))
        blocks = self._blocks
        for key in set(keys).difference(blocks):
            blocks[key] = array("i", _EMPTY_BLOCK)
        block_of = list(map(blocks.__getitem__, keys))
        low = list(map(operator.and_, addresses, repeat(0xFF)))
        rows = list(map(operator.getitem, block_of, low))
        old = [i for i, row in enumerate(rows) if row >= 0]
        columns = tuple(getattr(self, name) for name in _COLUMNS[1:])
        values = (*times, *states, flags, hw_types, hw_lens, hws, extras)
        if len(old) == len(rows):
            new: list[int] = []
        elif not old:
            new = list(range(len(rows)))
        else:
            new = [i for i, row in enumerate(rows) if row < 0]
        if old:
            old_rows = list(map(rows.__getitem__, old))
            if self._hw_long:
                for row in old_rows:
                    self._hw_long.pop(row, None)
            updates = values
            if len(old) != len(rows):
                updates = tuple(list(map(value.__getitem__, old)) for value in values)
            (scatter or scatter_columns)(old_rows, columns, updates)
        if new:
            if len(new) == len(rows):
                self._append_rows(addresses, block_of, low, values)
            else:
                self._append_rows(
                    list(map(addresses.__getitem__, new)),
                    list(map(block_of.__getitem__, new)),
                    list(map(low.__getitem__, new)),
                    [list(map(value.__getitem__, new)) for value in values],
                )
        self._bulk_changed()
        return superseded + len(old)

    def append_new(
        self,
        addresses: Sequence[int],
        times: Sequence[Sequence[int]],
        states: Sequence[Sequence[int]],
        flags: Sequence[int],
        hw_types: Sequence[int],
        hw_lens: Sequence[int],
        hws: Sequence[int],
        extras: Sequence[LeaseExtras | RawExtras | None],
    ) -> None:
        """:meth:`put_columns` for addresses known to be distinct and not in the table yet
        (a backward reader's winners), without the checks that cost a pass each."""
        keys = list(map(operator.rshift, addresses, repeat(8)))
        blocks = self._blocks
        for key in set(keys).difference(blocks):
            blocks[key] = array("i", _EMPTY_BLOCK)
        self._append_rows(
            addresses,
            list(map(blocks.__getitem__, keys)),
            list(map(operator.and_, addresses, repeat(0xFF))),
            (*times, *states, flags, hw_types, hw_lens, hws, extras),
        )
        self._bulk_changed()

    def _append_rows(
        self,
        addresses: Sequence[int],
        block_of: Sequence[array],
        low: Sequence[int],
        values: Iterable[Sequence[Any]],
    ) -> None:
        """New rows at the end: ``values`` in the order of :data:`_COLUMNS` after the
        address (times, states, flags, hardware type, length, address, extras)."""
        first = len(self._row_address)
        deque(map(operator.setitem, block_of, low, range(first, first + len(addresses))), 0)
        self._row_address.extend(addresses)
        for name, value in zip(_COLUMNS[1:], values, strict=True):
            getattr(self, name).extend(value)

    def watch(self, callback: Callable[[int | None], None]) -> None:
        """Call ``callback(address)`` after each single-row write of the times, states or
        flags of ``address``, and ``callback(None)`` after a bulk load (anything changed)."""
        self._watchers.append(callback)

    def _bulk_changed(self) -> None:
        self._by_client = None
        for watcher in self._watchers:
            watcher(None)

    def block(self, key: int) -> array:
        """The row numbers (-1: none) of the /24 block ``key`` (address >> 8), created
        empty if absent; the same array for the table's lifetime, so callers may cache it
        (the reader looks up rows by the text of an address's first three octets)."""
        found = self._blocks.get(key)
        if found is None:
            found = self._blocks[key] = array("i", _EMPTY_BLOCK)
        return found

    def export_parts(self) -> Iterator[tuple[str, Any]]:
        """The table as (name, column) parts, for :meth:`absorb_parts` in another process.

        Parts can be sent one at a time (pickled), so that neither side ever holds a second
        copy of the whole table.
        """
        yield "blocks", self._blocks
        for name in _COLUMNS:
            yield name, getattr(self, name)
        yield "hw_long", self._hw_long

    def absorb_parts(self, parts: Iterable[tuple[str, Any]]) -> None:
        """Append a table given as :meth:`export_parts` (addresses disjoint from ours).

        Used to merge tables that readers filled in parallel for disjoint address sets.
        """
        base = len(self._row_address)
        try:
            for name, value in parts:
                if name == "blocks":
                    for key, block in value.items():
                        mine = self._blocks.get(key)
                        if mine is None:
                            mine = self._blocks[key] = array("i", _EMPTY_BLOCK)
                        for low, row in enumerate(block):
                            if row >= 0:
                                if mine[low] >= 0:
                                    raise ValueError(
                                        "absorb_parts() needs tables with disjoint addresses"
                                    )
                                mine[low] = base + row
                elif name == "hw_long":
                    self._hw_long.update({base + row: hw for row, hw in value.items()})
                elif name in _COLUMNS:
                    getattr(self, name).extend(value)
                else:
                    raise ValueError(f"unknown lease table part {name!r}")
        finally:
            self._bulk_changed()

    def upsert(self, lease: Lease) -> bool:
        """Store a :class:`Lease` (slow path, for writers of models and tests)."""
        times = tuple(
            0 if (value := getattr(lease, name)) is None else value for name in TIME_FIELDS
        )
        return self.upsert_row(
            address_to_int(lease.address),
            times,  # type: ignore[arg-type]
            int(lease.binding_state or 0),
            int(lease.next_binding_state or 0),
            int(lease.rewind_binding_state or 0),
            int(lease.flags),
            int(lease.hardware_type or 0),
            lease.hardware_address,
            lease.extras,
        )

    def row_of(self, address: str | int) -> int | None:
        if isinstance(address, str):
            address = address_to_int(address)
        block = self._blocks.get(address >> 8)
        if block is None:
            return None
        row = block[address & 0xFF]
        return None if row < 0 else row

    def rows_of_client(self, hardware: bytes, uid: bytes | None) -> set[int]:
        """Rows whose hardware address is ``hardware`` or whose client identifier is ``uid``
        (None: hardware only), from the index (see the class doc)."""
        index = self._by_client
        if index is None:
            index = _ClientIndex()
            for row in range(len(self._row_address)):
                index.add(row, self.hardware_at(row), self.extras_at(row).uid)
            self._by_client = index
        rows = set(index.by_hw.get(hardware, ()))
        if uid is not None:
            rows.update(index.by_uid.get(uid, ()))
        return rows

    def address_int(self, row: int) -> int:
        return self._row_address[row]

    @property
    def addresses(self) -> array:
        """The address column (``array('I')``, one per row), for passes over every row; not
        to be written (the index would no longer match)."""
        return self._row_address

    def hardware_at(self, row: int) -> bytes | None:
        length = self._hw_len[row]
        if length == _HW_LONG:
            return self._hw_long[row]
        return self._hw[row].to_bytes(length) if length else None

    def extras_at(self, row: int) -> LeaseExtras:
        extras = self._extras[row]
        if not extras:  # None, or empty raw text
            return EMPTY_EXTRAS
        if isinstance(extras, bytes):
            if self.extras_decoder is None:
                raise TypeError("raw extras stored without an extras_decoder")
            return self.extras_decoder(extras)
        return extras

    def lease_at(self, row: int) -> Lease:
        """Build the :class:`Lease` stored in ``row``."""

        def opt_time(column: array) -> int | None:
            value = column[row]
            return value or None

        def opt_state(column: bytearray) -> BindingState | None:
            value = column[row]
            return BindingState(value) if value else None

        hw_type = self._hw_type[row]
        return Lease(
            address=int_to_address(self._row_address[row]),
            starts=opt_time(self.starts),
            ends=opt_time(self.ends),
            tstp=opt_time(self.tstp),
            tsfp=opt_time(self.tsfp),
            atsfp=opt_time(self.atsfp),
            cltt=opt_time(self.cltt),
            binding_state=opt_state(self.state),
            next_binding_state=opt_state(self.next_state),
            rewind_binding_state=opt_state(self.rewind_state),
            flags=LeaseFlag(self.flags[row]),
            hardware_type=HardwareType(hw_type) if hw_type else None,
            hardware_address=self.hardware_at(row),
            extras=self.extras_at(row),
        )

    def get(self, address: str | int) -> Lease | None:
        row = self.row_of(address)
        return None if row is None else self.lease_at(row)

    def rows_by_address(self) -> list[int]:
        """Row numbers ordered by address (numerically)."""
        return sorted(range(len(self._row_address)), key=self._row_address.__getitem__)

    def __iter__(self) -> Iterator[Lease]:
        """Leases in address order."""
        for row in self.rows_by_address():
            yield self.lease_at(row)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LeaseTable):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_leases(cls, leases: Iterable[Lease]) -> LeaseTable:
        table = cls()
        for lease in leases:
            table.upsert(lease)
        return table


class _ClientIndex:
    """LeaseTable rows by hardware address and by client identifier (``uid``)."""

    __slots__ = ("by_hw", "by_uid", "keys")

    def __init__(self) -> None:
        self.by_hw: dict[bytes, set[int]] = {}
        self.by_uid: dict[bytes, set[int]] = {}
        #: What each indexed row is filed under, so that discard needs no decoding.
        self.keys: dict[int, tuple[bytes | None, bytes | None]] = {}

    def add(self, row: int, hw: bytes | None, uid: bytes | None) -> None:
        if hw is None and uid is None:
            return
        self.keys[row] = (hw, uid)
        if hw is not None:
            self.by_hw.setdefault(hw, set()).add(row)
        if uid is not None:
            self.by_uid.setdefault(uid, set()).add(row)

    def discard(self, row: int) -> None:
        keys = self.keys.pop(row, None)
        if keys is None:
            return
        for index, key in zip((self.by_hw, self.by_uid), keys, strict=True):
            if key is not None:
                rows = index[key]
                rows.discard(row)
                if not rows:
                    del index[key]


_EMPTY_BLOCK: Final = array("i", [-1]) * 256
#: Per-row storage of LeaseTable, in the order export_parts() sends it.
_COLUMNS: Final = (
    "_row_address",
    *TIME_FIELDS,
    "state",
    "next_state",
    "rewind_state",
    "flags",
    "_hw_type",
    "_hw_len",
    "_hw",
    "_extras",
)
_ABSENT_BLOCK: Final = _EMPTY_BLOCK  # read-only stand-in for a block not yet created


@dataclass(slots=True)
class LeaseDB:
    """Everything a DHCPv4 lease file says, with journal semantics applied."""

    leases: LeaseTable = field(default_factory=LeaseTable)
    #: Last failover state record per relationship name.
    failover: dict[str, FailoverPeerRecord] = field(default_factory=dict)
    #: Last host record per host name (``deleted`` rubouts included).
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    #: Last group/class/subclass record per (kind, header).
    others: dict[tuple[str, str], OtherRecord] = field(default_factory=dict)
    server_duid: bytes | None = None
    #: ``little-endian`` / ``big-endian`` from ``authoring-byte-order``, if present.
    byte_order: str | None = None
    stats: ReaderStats = field(default_factory=ReaderStats)
