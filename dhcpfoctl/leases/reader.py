"""Reader of dhcpd.leases (DHCPv4) into the lease model.

Two directions, two parsing paths. A regular file is read from its end (``_BackwardReader``):
the first record met for an address is its current one, so superseded records are only
located (one cheap regex), not parsed. Streams (stdin, gzip), strict reads and incremental
resumes read forwards (``_Reader``). Either way, records in the canonical layout dhcpd writes
are parsed by one compiled regex per batch (every field of every record in one C call) and
stored column-wise with ``map``-driven bulk operations; everything else (comments, odd
whitespace, ``on`` blocks, legacy forms, errors, non-lease records) goes through the full
parser in :mod:`syntax`, which reports problems as ``FILE:LINE``. Memory holds only the
current lease of each address.

Where the compiled scanner (``_scan.c``) is built it takes the place of the regexes: the same
record split, the same canonical layout, one pass in C; every record it does not fully
understand is handed to the same Python fallback, record by record, in file order (forwards)
or last first (backwards), so the result is the pure-Python reader's. ``DHCPFOCTL_PURE_PYTHON=1``
forces the pure-Python path, which stays the oracle of the differential tests.
"""

from __future__ import annotations

import gzip
import io
import operator
import os
import pickle
import re
import stat
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, filterfalse, repeat
from typing import Any, BinaryIO, Final

from dhcpfoctl.errors import InputFileError
from dhcpfoctl.files import open_regular
from dhcpfoctl.leases import compiled_scanner, syntax
from dhcpfoctl.leases.transitions import (
    Journal,
    JournalBindings,
    WindowRequest,
    fingerprint,
    judged,
    window_bindings,
)
from dhcpfoctl.model import (
    EARLIEST_TIME,
    LATEST_TIME,
    NEVER,
    BindingState,
    FailoverPeerRecord,
    HardwareType,
    HostRecord,
    Lease,
    LeaseDB,
    LeaseTable,
    OtherRecord,
    ReadWarning,
)

Progress = Callable[[int, int], None]

CHUNK_SIZE: Final = 1 << 20
#: How every message names the lease file read from standard input (given as ``-``).
STDIN_NAME: Final = "<stdin>"
_GZIP_MAGIC: Final = b"\x1f\x8b"

#: A date in a fixed-width field (``W YYYY/MM/DD HH:MM:SS``: ``.{21}`` is one fast loop in
#: the regex engine), or ``never``, or ``epoch N`` with dhcpd's trailing comment. Whatever the
#: 21 characters hold is checked by the date parser before use.
_DATE: Final = rb"(.{21}|never|epoch [0-9]+);(?: #[^\n]*+|)\n"
#: Unrolled (runs of plain bytes, then one escape) rather than a per-byte alternation: the
#: regex engine then walks a string in one tight loop. The possessive quantifiers (``*+``)
#: here and below never give back what the next item could not match anyway (same
#: language), and save the engine its backtracking bookkeeping: measured 25% faster.
_STRING: Final = rb'"[^"\\\n]*+(?:\\[^\n][^"\\\n]*+)*+"'
_HEXSEQ: Final = rb"[0-9a-fA-F]{1,2}+(?::[0-9a-fA-F]{1,2}+)*+"
#: Lease-body lines the fast path stores as raw text (decoded when a Lease is built). Each
#: alternative admits only text that :func:`syntax.decode_lease_body` reads without error
#: (a ``%N`` of 19 digits always fits its bound; longer ones take the full parser).
_EXTRA_LINE: Final = (
    rb"  (?:uid (?:" + _STRING + rb"|" + _HEXSEQ + rb")"
    rb"|client-hostname "
    + _STRING
    + rb"|set [A-Za-z0-9_-]++ = (?:"
    + _STRING
    + rb"|%[0-9]{1,19}+|true|false)"
    rb"|option agent\.[A-Za-z0-9_-]++ (?:" + _STRING + rb"|" + _HEXSEQ + rb")"
    rb");\n"
)
_ADDRESS_PREFIX: Final = rb"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
_LAST_OCTET: Final = rb"25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9]"
#: The lines of dhcpd 4.4's write_lease() from the dates to the hardware address. Optional
#: lines are ``(?:…|)`` rather than ``(?:…)?``: the same language, measured 15% faster in
#: CPython's regex engine.
_TIMES_AND_STATES: Final = (
    rb"(?:  starts " + _DATE + rb"|)"
    rb"(?:  ends " + _DATE + rb"|)"
    rb"(?:  tstp " + _DATE + rb"|)"
    rb"(?:  tsfp " + _DATE + rb"|)"
    rb"(?:  atsfp " + _DATE + rb"|)"
    rb"(?:  cltt " + _DATE + rb"|)"
    rb"(?:  binding state ([a-z-]++);\n|)"
    rb"(?:  next binding state ([a-z-]++);\n|)"
    rb"(?:  rewind binding state ([a-z-]++);\n|)"
)
_HARDWARE: Final = rb"(?:  hardware ([a-z-]+[0-9]*) ((?:[0-9a-f]{2}:){0,7}[0-9a-f]{2});\n|)"
#: One canonical lease record, every field a group (the forward read's record-by-record path).
_CANONICAL_LEASE: Final = re.compile(
    rb"lease ("
    + _ADDRESS_PREFIX
    + rb")\.("
    + _LAST_OCTET
    + rb") \{\n"
    + _TIMES_AND_STATES
    + rb"(  reserved;\n|)(  dynamic-bootp;\n|)"
    + _HARDWARE
    + rb"((?:"
    + _EXTRA_LINE
    + rb")*)\}\n"
)
#: Canonical records in a run of joined record texts, for ``findall`` (measured 1.6x faster
#: than ``split``). A match may start only where a record does (at the start, or after the
#: ``\n}\n`` that ends every record text and occurs nowhere else in one), so as many
#: matches as records means that every record matched whole. Fewer groups than
#: :data:`_CANONICAL_LEASE` (each costs a bytes object per record): the address is known
#: from the record split, both flag lines are one group, and the body lines after the
#: hardware address are captured as they are and checked by :data:`_EXTRA_LINES` per batch.
_CANONICAL_RUN: Final = re.compile(
    rb"(?:\A|(?<=\n\}\n))lease "
    + _ADDRESS_PREFIX
    + rb"\.(?:"
    + _LAST_OCTET
    + rb") \{\n"
    + _TIMES_AND_STATES
    + rb"((?:  reserved;\n|)(?:  dynamic-bootp;\n|))"
    + _HARDWARE
    + rb"((?:  [^\n]*+\n)*+)\}\n"
)
_EXTRA_LINES: Final = re.compile(rb"(?:" + _EXTRA_LINE + rb")*+")
#: LeaseFlag value of each text of the flags group of :data:`_CANONICAL_RUN`.
_FLAG_LINES: Final = {
    b"": 0,
    b"  reserved;\n": 1,
    b"  dynamic-bootp;\n": 2,
    b"  reserved;\n  dynamic-bootp;\n": 3,
}
#: A backward read's first pass: each dhcpd-shaped lease record with its address (the
#: closing brace is the first at the start of a line), without field captures, so superseded records
#: cost little.
_LEASE_RECORD: Final = re.compile(
    rb"(lease ([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9]) \{\n"
    rb"[^}]*+(?:(?<!\n)\}[^}]*+)*+(?<=\n)\}\n)"
)
#: Where a backward read may cut the file: after a top-level ``}`` that is followed (past
#: blank and comment lines) by the start of a top-level statement.
_SAFE_CUT: Final = re.compile(
    rb"\n\}\n(?=(?:[ \t]*(?:#[^\n]*)?\n)*(?:lease|failover|host|group|class|subclass"
    rb"|server-duid|authoring-byte-order|ia-na|ia-ta|ia-pd)[ \t])"
)
#: Where to pick up after a bad record: the next line that starts a top-level statement.
_RESYNC: Final = re.compile(
    rb"^(?:lease|failover|host|group|class|subclass|server-duid|authoring-byte-order"
    rb"|ia-na|ia-ta|ia-pd)[ \t]",
    re.M,
)
#: States that the fast path stores directly (legacy ``reserved``/``bootp`` take the slow
#: path, which folds them into active plus a flag).
_STATES: Final[dict[bytes, int]] = {
    state.keyword.encode(): int(state)
    for state in BindingState
    if state not in (BindingState.RESERVED, BindingState.BOOTP)
}
_STATES[b""] = 0  # an absent field
_HW_TYPES: Final[dict[bytes, int]] = {
    member.keyword.encode(): int(member) for member in HardwareType
}
_HW_TYPES[b""] = 0
#: Value of every last-octet text the address patterns admit (leading zeros included): a
#: dict lookup costs less than int() on bytes.
_OCTETS: Final = {**{b"%02d" % n: n for n in range(100)}, **{b"%d" % n: n for n in range(256)}}
#: Length in bytes of a canonical colon-hex hardware address, by its length in characters.
_HW_LENGTHS: Final = {0: 0, **{3 * n - 1: n for n in range(1, 9)}}
#: Bound on the date cache, cleared when full: a chunk spans little journal time, so a small
#: cache stays hot.
_DATE_CACHE_MAX: Final = 1 << 13


@dataclass(slots=True)
class _Split:
    """The lease records and the gaps between them in ``buf[lo:hi]`` (``_LEASE_RECORD``).

    ``bounds``: gap ``i`` starts at ``[2 * i]``, record ``i`` at ``[2 * i + 1]`` and ends at
    ``[2 * i + 2]`` (the last gap, number ``count``, ends at ``hi``); ``marks``: the gaps that
    hold more than whitespace. The pure-Python path also keeps each record's text and
    address texts; the compiled one its raw ``bounds`` (int64 bytes).
    """

    bounds: Sequence[int]
    marks: list[int]
    count: int
    raw: bytes = b""
    texts: list[bytes] = field(default_factory=list)
    prefixes: list[bytes] = field(default_factory=list)
    lasts: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ResumeState:
    """Where a previous read of a file stopped (see :func:`read_leases_incremental`).

    ``offset`` is just past the last complete record; ``line`` is the line number there;
    ``tail`` holds the bytes just before ``offset``, to detect a file rewritten in place.
    """

    inode: int
    size: int
    offset: int
    line: int
    tail: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "inode": self.inode,
            "size": self.size,
            "offset": self.offset,
            "line": self.line,
            "tail": self.tail.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ResumeState:
        try:
            return cls(
                int(data["inode"]),
                int(data["size"]),  # type: ignore[call-overload]
                int(data["offset"]),
                int(data["line"]),  # type: ignore[call-overload]
                bytes.fromhex(str(data["tail"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a saved resume state: {exc}") from None


_TAIL_BYTES: Final = 64
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


class _StopFeed(Exception):
    """The rest of the buffer waits for more bytes; ``pos`` is where to resume."""

    def __init__(self, pos: int) -> None:
        self.pos = pos


class _Reader:
    """One pass over a byte stream into a :class:`LeaseDB` (see module doc)."""

    def __init__(
        self,
        db: LeaseDB,
        name: str,
        *,
        strict: bool,
        line: int = 1,
        share: tuple[int, int] = (0, 1),
    ) -> None:
        self.db = db
        self.name = name
        self.strict = strict
        self.line = line  # line number at the start of the current buffer
        # Absent fields are b"" (findall, match.groups(b"")): 0.
        self.dates: dict[bytes, int] = {b"": 0}
        #: Value and /24 block of each address prefix text met (see :meth:`_learn_prefixes`).
        self.prefixes: dict[bytes, int] = {}
        self.blocks: dict[bytes, array | None] = {}
        #: (index, count): this reader keeps the leases whose /24 block number modulo count
        #: is index, so that several processes can share a file (see _BackwardReader).
        self.share = share
        self.resyncing = False
        db.leases.extras_decoder = syntax.decode_lease_body
        module = compiled_scanner()
        #: Writes of existing rows in C (LeaseTable.put_columns' scatter).
        self.scatter = None if module is None else module.scatter
        self.scanner = (
            None
            if module is None
            else module.Scanner(
                db.leases.block,
                *share,
                _STATES,
                _HW_TYPES,
                syntax._PACKED_STARTS,
                NEVER,
                EARLIEST_TIME,
                LATEST_TIME,
            )
        )

    # Reporting -------------------------------------------------------------------------

    def _line_at(self, buf: bytes, pos: int) -> int:
        return self.line + buf.count(b"\n", 0, pos)

    def _problem(
        self,
        buf: bytes,
        pos: int,
        message: str,
        consequence: str = "",
        *,
        truncated_tail: bool = False,
        fatal: bool = True,
    ) -> None:
        """Report a problem at ``buf[pos]``: fatal when strict (unless not ``fatal``: a record
        dhcpd keeps), else a warning that also says what the reader did (``consequence``)."""
        line = self._line_at(buf, pos)
        if self.strict and fatal:
            raise InputFileError(f"{self.name}:{line}", message)
        text = f"{message}; {consequence}" if consequence else message
        self.db.stats.warnings.append(ReadWarning(self.name, line, text, truncated_tail))

    # Parsing ---------------------------------------------------------------------------

    def feed(self, buf: bytes, end: int, *, final: bool) -> int:
        """Parse the complete records of ``buf[:end]``; returns where parsing stopped.

        Everything before the returned position is consumed; the caller keeps the rest
        and prepends it to the next chunk.
        """
        pos = 0
        if self.resyncing:
            found = _RESYNC.search(buf, 0, end)
            if found is None:
                return end if final else max(0, end - 64)  # keep a possibly cut keyword
            pos = found.start()
            self.resyncing = False
        # The record split gives the buffer as gaps and whole lease records, so every gap's
        # offset is known exactly (for FILE:LINE and for resuming).
        split = self._split(buf, pos, end)
        last = split.count
        tail_blank = not split.marks or split.marks[-1] != last
        first = 0
        try:
            for index in [*split.marks, last] if tail_blank else split.marks:
                if index > first:
                    self._records(buf, split, first, index)
                start = split.bounds[2 * index]
                if index != last:
                    stop = split.bounds[2 * index + 1]
                    self._gap(buf, start, stop, stop, final=True, truncated=False)
                elif not tail_blank:
                    self._gap(buf, start, end, end, final=final, truncated=final)
                first = index
        except _StopFeed as stop:
            return stop.pos
        return end

    def _split(self, buf: bytes, lo: int, hi: int) -> _Split:
        if self.scanner is not None:
            raw, marks = self.scanner.split(buf, lo, hi)
            bounds = memoryview(raw).cast("q")
            return _Split(bounds, marks, (len(bounds) - 1) // 2, raw)
        pieces = _LEASE_RECORD.split(buf[lo:hi] if lo or hi != len(buf) else buf)
        gaps, texts = pieces[::4], pieces[1::4]
        # Gaps between dhcpd's records are empty: find the others in C, then judge them.
        marks = [index for index in compress(range(len(gaps)), gaps) if not gaps[index].isspace()]
        return _Split(
            _offsets(gaps, texts, lo), marks, len(texts), b"", texts, pieces[2::4], pieces[3::4]
        )

    def _records(self, buf: bytes, split: _Split, first: int, stop: int) -> None:
        """Store lease records ``first … stop - 1`` of a record split, in file order."""
        bounds = split.bounds
        if self.scanner is not None:
            while first < stop:
                found, barrier, superseded = self.scanner.forward(buf, split.raw, first, stop)
                self.db.stats.records += superseded
                self.db.stats.superseded += superseded
                if found is not None:
                    self._put(*_columns_of(found))
                if barrier >= stop:
                    return
                # Not in dhcpd's layout, or a value the full parser must judge.
                self._feed_matches(buf, bounds[2 * barrier + 1], bounds[2 * barrier + 2])
                first = barrier + 1
            return
        addresses = self._addresses(split.prefixes[first:stop], split.lasts[first:stop])
        columns = _canonical_columns(split.texts[first:stop])
        if addresses is None or columns is None or not self._batch(columns, addresses):
            # Not all in dhcpd's layout, or a value the full parser must judge: record by
            # record, at their offsets in the file.
            for index in range(first, stop):
                self._feed_matches(buf, bounds[2 * index + 1], bounds[2 * index + 2])

    def _batch(
        self, columns: list[tuple[bytes, ...]], addresses: list[int], *, known_new: bool = False
    ) -> bool:
        """Store canonical records given as field columns (see :func:`_canonical_columns`)
        and their ``addresses``; ``known_new``: distinct and not yet in the table (a
        backward read's winners).

        Returns False, storing nothing, when a value needs the full parser (a bad date, an
        unknown state, a body line outside the canonical forms); the caller then takes the
        records one at a time.
        """
        *time_columns, state, next_state, rewind, flag_lines, hw_type, hw, extras = columns
        if not self._cached(time_columns, (state, next_state, rewind), hw_type) or (
            _EXTRA_LINES.fullmatch(b"".join(extras)) is None
        ):
            return False
        dates = self.dates
        times = [list(map(dates.__getitem__, column)) for column in time_columns]
        if any(map(_ends_before_starts, times[0], times[1])):
            return False  # the full parser warns of each such record
        states = [list(map(_STATES.__getitem__, column)) for column in (state, next_state, rewind)]
        if any(flag_lines):
            flags = bytes(map(_FLAG_LINES.__getitem__, flag_lines))
        else:
            flags = bytes(len(addresses))
        hw_types = list(map(_HW_TYPES.__getitem__, hw_type))
        hw_lens = list(map(_HW_LENGTHS.__getitem__, map(len, hw)))
        # b"0" + hex digits: an absent address (b"") reads as 0 without a Python branch.
        hws = list(
            map(
                int,
                map(
                    operator.add, repeat(b"0"), map(bytes.translate, hw, repeat(None), repeat(b":"))
                ),
                repeat(16),
            )
        )
        values = (times, states, flags, hw_types, hw_lens, hws, syntax.pack_lease_bodies(extras))
        self._put(addresses, values, known_new=known_new)
        return True

    def _put(
        self,
        addresses: Sequence[int],
        values: tuple[Sequence[Any], ...],
        *,
        known_new: bool = False,
    ) -> None:
        """Store records given as columns (``LeaseTable.put_columns``' after the addresses)."""
        self.db.stats.records += len(addresses)
        if known_new:
            self.db.leases.append_new(addresses, *values)
        else:
            self.db.stats.superseded += self.db.leases.put_columns(
                addresses, *values, scatter=self.scatter
            )

    def _addresses(self, prefixes: Sequence[bytes], lasts: Sequence[bytes]) -> list[int] | None:
        """Integer addresses from the record split's address texts; None if a prefix is not
        a valid ``A.B.C``."""
        unknown = set(prefixes).difference(self.prefixes)
        if unknown and not self._learn_prefixes(unknown):
            return None
        return list(
            map(
                operator.or_,
                map(self.prefixes.__getitem__, prefixes),
                map(_OCTETS.__getitem__, lasts),
            )
        )

    def _learn_prefixes(self, texts: Iterable[bytes]) -> bool:
        """Cache the value and this reader's /24 block (None: another process's share) of
        address prefixes; False if one is not a valid ``A.B.C``."""
        index, count = self.share
        for text in texts:
            value = syntax.parse_ipv4(text + b".0")
            if value is None:
                return False
            self.prefixes[text] = value
            key = value >> 8
            self.blocks[text] = self.db.leases.block(key) if key % count == index else None
        return True

    def _cached(
        self,
        time_columns: list[tuple[bytes, ...]],
        state_columns: tuple[tuple[bytes, ...], ...],
        hw_type: Sequence[bytes],
    ) -> bool:
        """Fill the date cache for a batch; False if a value needs the full parser."""
        if len(self.dates) > _DATE_CACHE_MAX:
            self.dates.clear()
            self.dates[b""] = 0
        # Only the misses are collected: most dates of a batch are in the cache already.
        missing = set(filterfalse(self.dates.__contains__, chain.from_iterable(time_columns)))
        parsed = syntax.parse_dates(missing)
        if parsed is None:
            return False
        self.dates.update(parsed)
        return all(set(column) <= _STATES.keys() for column in state_columns) and (
            set(hw_type) <= _HW_TYPES.keys()
        )

    def _feed_matches(self, buf: bytes, pos: int, end: int) -> None:
        """Record by record over ``buf[pos:end]``: canonical records whose values are all
        cached take the fast path, the others the full parser (which reports problems)."""
        put = self.db.leases.put_row
        dget = self.dates.get
        sget = _STATES.get
        prefixes = self.prefixes
        stats = self.db.stats
        while pos < end:
            for match in _CANONICAL_LEASE.finditer(buf, pos, end):
                start = match.start()
                if start != pos:
                    pos = self._gap(buf, pos, start, end, final=True, truncated=False)
                    if pos != start:
                        # The full parser's statement covered this match: what the regex
                        # found there is not a record start.
                        break
                (
                    prefix,
                    last,
                    starts,
                    ends,
                    tstp,
                    tsfp,
                    atsfp,
                    cltt,
                    state,
                    next_state,
                    rewind,
                    reserved,
                    bootp,
                    hw_type,
                    hw,
                    extras,
                ) = match.groups(b"")
                base = prefixes.get(prefix)
                times = tuple(map(dget, (starts, ends, tstp, tsfp, atsfp, cltt)))
                states = tuple(map(sget, (state, next_state, rewind)))
                if (
                    base is None
                    or None in times
                    or None in states
                    or hw_type not in _HW_TYPES  # the full parser names the unknown type
                    or _ends_before_starts(times[0], times[1])  # the full parser warns
                ):
                    pos = self._gap(buf, start, match.end(), end, final=True, truncated=False)
                    if pos != match.end():
                        break
                    continue
                stats.records += 1
                stats.superseded += put(
                    base | int(last),
                    *times,
                    *states,  # type: ignore[misc]
                    bool(reserved) | bool(bootp) << 1,
                    _HW_TYPES[hw_type],
                    _HW_LENGTHS[len(hw)],
                    int(b"0" + hw.replace(b":", b""), 16),
                    extras,
                )
                pos = match.end()
            else:
                if pos < end:
                    pos = self._gap(buf, pos, end, end, final=True, truncated=False)
                break

    def _gap(
        self, buf: bytes, pos: int, stop: int, end: int, *, final: bool, truncated: bool
    ) -> int:
        """Parse statements with the full parser from ``pos`` until reaching ``stop``.

        Statements may run on up to ``end``. Returns the position reached (``stop``, or
        beyond it when a statement spanned it); raises :class:`_StopFeed` when the rest of
        the buffer must wait for more bytes.
        """
        while pos < stop:
            tokens = syntax.Tokens(buf, pos, end)
            if not tokens.skip_space():
                if final:
                    return end
                raise _StopFeed(pos)
            pos = tokens.pos
            if pos >= stop:
                return pos
            try:
                statement = syntax.parse_statement(tokens)
            except syntax.Incomplete:
                # An unclosed record followed by another record is corrupt, not truncated.
                found = _RESYNC.search(buf, pos + 1, end)
                if found is not None:
                    self._problem(buf, pos, "record not terminated", "skipped")
                    pos = found.start()
                    continue
                if not final:
                    raise _StopFeed(pos) from None
                if truncated:
                    self._truncated(pos)
                    self._problem(
                        buf,
                        pos,
                        "truncated record at end of file (dhcpd may have been writing it)",
                        "ignored",
                        truncated_tail=True,
                    )
                else:
                    self._problem(buf, pos, "record not terminated", "skipped")
                return end
            except syntax.SyntaxProblem as problem:
                self._problem(buf, problem.pos, problem.message, "record skipped")
                found = _RESYNC.search(buf, pos + 1, end)
                if found is None:
                    if final:
                        return end
                    self.resyncing = True
                    raise _StopFeed(end) from None
                pos = found.start()
                continue
            if isinstance(statement, syntax.SkippedRecord):
                self._problem(buf, pos, statement.note)
            elif isinstance(statement, syntax.LeaseRow) and _ends_before_starts(
                statement.times[0], statement.times[1]
            ):
                # dhcpd keeps such a lease (its times come from a clock that jumped, or a
                # hand edit); its durations are then negative, so the operator hears of it.
                self._problem(buf, pos, "ends before starts", "lease kept", fatal=False)
            self._store(statement)
            pos = tokens.pos
        return pos

    def _truncated(self, pos: int) -> None:
        """Hook: the record at ``pos`` is cut off by the end of the file."""

    def _store(self, statement: syntax.Statement) -> None:
        db = self.db
        if isinstance(statement, syntax.LeaseRow):
            db.stats.records += 1
            db.stats.superseded += db.leases.upsert_row(
                statement.address,
                tuple(statement.times),  # type: ignore[arg-type]
                *statement.states,
                statement.flags,
                statement.hw_type,
                statement.hw,
                statement.extras,
            )
        elif isinstance(statement, FailoverPeerRecord):
            db.failover[statement.name] = statement
        elif isinstance(statement, HostRecord):
            db.hosts[statement.name] = statement
        elif isinstance(statement, OtherRecord):
            db.others[(statement.kind, statement.header)] = statement
        elif isinstance(statement, syntax.ScalarStatement):
            if statement.keyword == "server-duid":
                db.server_duid = statement.value
            else:
                db.byte_order = statement.value.decode()
        # SkippedRecord: nothing to keep (its note was reported when it was found).


class _BackwardReader(_Reader):
    """Reads a regular file from its end, so that only each address's last record is parsed.

    Journal semantics become "first seen wins". A cheap first regex finds every
    dhcpd-shaped lease record and its address (no field captures); only records whose
    address is not yet in the table go through the field-extracting regex. Superseded
    records therefore cost one regex step and a few C-level lookups. Problems are located
    by byte offset and numbered by line once the pass is over.
    """

    def __init__(
        self,
        db: LeaseDB,
        name: str,
        raw: BinaryIO,
        *,
        strict: bool,
        share: tuple[int, int] = (0, 1),
        journal: bool = False,
        window: int | None = None,
        count_lines: bool = False,
    ) -> None:
        # Index 0 of the share also keeps the other records (failover, hosts, …).
        super().__init__(db, name, strict=strict, share=share)
        self.raw = raw
        self.offset = 0  # absolute offset of the current buffer's first byte
        self.problems: list[tuple[int, str, bool, bool]] = []
        self.collected: list[syntax.Statement] | None = None
        self.truncated_at: int | None = None
        #: ``count_lines``: newlines in the bytes read (the regions partition the file), for
        #: the line number a resumable read ends at (a plain read needs none).
        self.newlines: int | None = 0 if count_lines else None
        #: ``journal``: every lease record also goes, in file order, to a journal
        #: (:func:`read_leases`' ``journal``), from the same reads and record splits. It is
        #: gathered piece by piece, last piece first, each reversed onto ``backwards``
        #: (the journal last record first), which is turned round once at the end.
        #: ``window`` (:func:`read_leases`' ``window``): the compiled scanner's ``judge``
        #: takes the records instead, as they are read, and no journal is kept.
        wanted = journal or window is not None
        self.collector = _JournalReader(LeaseDB(), name) if wanted else None
        module = compiled_scanner()
        self.judge = (
            # Record times are int64: a start beyond that range compares alike clamped.
            module.Judge(max(_INT64_MIN, min(window, _INT64_MAX)), int(BindingState.ACTIVE))
            if module is not None and window is not None
            else None
        )
        self.backwards = Journal()
        #: False once a gap between records had a problem (but a truncated last record):
        #: the forward read resynchronises after one differently (across its chunks), so
        #: only it tells what it then reads.
        self.journal_exact = True

    def read(self, size: int, progress: Progress | None) -> None:
        end = stop = size  # [end, stop) was read but is left for the next (earlier) chunk
        at_eof = True
        while end > 0:
            start = max(0, end - CHUNK_SIZE)
            self.raw.seek(start)
            # The leftover is read again with the chunk: one copy, not a read plus a join.
            buf = self.raw.read(stop - start)
            if len(buf) != stop - start:
                raise OSError("the file shrank while being read")
            cut = 0
            if start > 0:
                found = _SAFE_CUT.search(buf)
                if found is None:
                    end = start  # no record boundary yet: read further back
                    continue
                cut = found.end()
            self.offset = start
            self._region(buf, cut, at_eof=at_eof)
            if self.newlines is not None:
                self.newlines += buf.count(b"\n", cut)
            at_eof = False
            end, stop = start, start + cut
            if progress is not None:
                progress(size - start, size)
        self._number_problems()

    # Problems by offset ----------------------------------------------------------------

    def _problem(
        self,
        buf: bytes,
        pos: int,
        message: str,
        consequence: str = "",
        *,
        truncated_tail: bool = False,
        fatal: bool = True,
    ) -> None:
        fatal = fatal and self.strict
        if consequence and not fatal:
            message = f"{message}; {consequence}"
        self.problems.append((self.offset + pos, message, truncated_tail, fatal))
        if fatal:
            self._number_problems()

    def _number_problems(self) -> None:
        """Turn offsets into line numbers with one forward pass (only when needed)."""
        if not self.problems:
            return
        self.problems.sort()
        line, done = 1, 0
        self.raw.seek(0)
        for offset, message, truncated_tail, fatal in self.problems:
            while done < offset:
                chunk = self.raw.read(min(CHUNK_SIZE, offset - done))
                if not chunk:
                    break
                line += chunk.count(b"\n")
                done += len(chunk)
            if fatal:
                raise InputFileError(f"{self.name}:{line}", message)
            self.db.stats.warnings.append(ReadWarning(self.name, line, message, truncated_tail))
        self.problems.clear()

    # Records, last first ---------------------------------------------------------------

    def _store(self, statement: syntax.Statement) -> None:
        if self.collected is not None:
            self.collected.append(statement)
            return
        db = self.db
        index, count = self.share
        if isinstance(statement, syntax.LeaseRow):
            if (statement.address >> 8) % count != index:
                return  # another process's lease
            if statement.address in db.leases:
                db.stats.records += 1
                db.stats.superseded += 1
                return
        elif index != 0:
            return
        elif isinstance(statement, FailoverPeerRecord):
            db.failover.setdefault(statement.name, statement)
            return
        elif isinstance(statement, HostRecord):
            db.hosts.setdefault(statement.name, statement)
            return
        elif isinstance(statement, OtherRecord):
            db.others.setdefault((statement.kind, statement.header), statement)
            return
        elif isinstance(statement, syntax.ScalarStatement):
            if statement.keyword == "server-duid" and db.server_duid is not None:
                return
            if statement.keyword != "server-duid" and db.byte_order is not None:
                return
        super()._store(statement)

    def _region(self, buf: bytes, lo: int, *, at_eof: bool) -> None:
        """Process ``buf[lo:]`` (complete records) from its end to its start."""
        split = self._split(buf, lo, len(buf))
        last = split.count
        marks = split.marks
        if at_eof and (not marks or marks[-1] != last):
            marks.append(last)  # the file's tail: check it for a truncated record
        segment_end = last  # records [mark, segment_end) lie between two marks
        for mark in reversed(marks):
            if mark < segment_end:
                self._winners(buf, split, mark, segment_end)
            gap_pos = split.bounds[2 * mark]
            gap_end = split.bounds[2 * mark + 1] if mark < last else len(buf)
            problems = len(self.problems)
            collected = self._gap_backward(buf, gap_pos, gap_end, at_eof=at_eof and mark == last)
            if self.collector is not None:
                # A record cut off by the end of the file is one the forward read meets
                # the same way; any other problem makes the journal the forward read's.
                resyncs = [p for p in self.problems[problems:] if not p[2]]
                self.journal_exact = self.journal_exact and not resyncs
                self._gathered(self.collector.stored(collected))
            segment_end = mark
        if segment_end > 0:
            self._winners(buf, split, 0, segment_end)

    def _gap_backward(
        self, buf: bytes, pos: int, stop: int, *, at_eof: bool
    ) -> list[syntax.Statement]:
        """Parse a gap forwards, then apply its statements last first; returns them."""
        self.collected = []
        try:
            self._gap(buf, pos, stop, stop, final=True, truncated=at_eof)
        finally:
            collected, self.collected = self.collected, None
        for statement in reversed(collected):
            self._store(statement)
        return collected

    def _gathered(self, piece: Journal) -> None:
        """Records read through the full parser (in file order), earlier in the file than
        every record gathered so far."""
        if self.judge is not None:
            self.judge.feed(*piece.verdict_columns())
        else:
            self.backwards.extend_reversed(piece)

    def window_of(self, after: int) -> JournalBindings | None:
        """:func:`window_bindings` of what was gathered (``window=after``), or None when
        only a forward read can tell it (see :meth:`journal_of`)."""
        if not self.journal_exact:
            return None
        if self.judge is not None:
            return judged(self.judge.result())
        journal = self.journal_of()
        return None if journal is None else window_bindings(journal, after)

    def journal_of(self) -> Journal | None:
        """The journal gathered (``journal=True``), or None when only a forward read can
        tell it (a gap with a problem)."""
        if not self.journal_exact:
            return None
        journal, self.backwards = self.backwards, Journal()
        journal.reverse()
        return journal

    def _truncated(self, pos: int) -> None:
        self.truncated_at = self.offset + pos

    def _winners(self, buf: bytes, split: _Split, first: int, stop: int) -> None:
        """Store records ``first … stop - 1`` whose address has no later record.

        The "already seen?" test runs on every record, superseded ones included, so it uses
        the address text as split: its /24 block is looked up by the text of the first
        three octets and the row by the last one, in C-level passes. Only the new
        addresses are then converted to integers. Whatever the batch cannot take is read
        record by record (:meth:`_last_first`), as the compiled scanner does.
        """
        if self.scanner is not None and self.collector is not None:
            self._winners_and_journal(buf, split, first, stop)
            return
        if self.collector is not None:
            self._gathered(self.collector.piece(buf, split, first, stop))
        if self.scanner is not None:
            while stop > first:
                found, barrier, superseded = self.scanner.backward(buf, split.raw, first, stop)
                self.db.stats.records += superseded
                self.db.stats.superseded += superseded
                if found is not None:
                    addresses, values = _columns_of(found)
                    self._put(addresses, values, known_new=True)
                if barrier < first:
                    return
                # Not in dhcpd's layout, or a value the full parser must judge.
                record_end = split.bounds[2 * barrier + 2]
                self._gap_backward(buf, split.bounds[2 * barrier + 1], record_end, at_eof=False)
                stop = barrier
            return
        prefix_column = split.prefixes[first:stop]
        blocks = self.blocks
        unknown = set(prefix_column).difference(blocks)
        if unknown and not self._learn_prefixes(unknown):
            self._last_first(buf, split, first, stop)
            return
        block_column = list(map(blocks.__getitem__, prefix_column))
        low_column = list(map(_OCTETS.__getitem__, split.lasts[first:stop]))
        indexes: Iterable[int] = range(first, stop)
        if self.share[1] > 1:
            mine = list(map(operator.is_not, block_column, repeat(None)))
            indexes = list(compress(indexes, mine))
            prefix_column = list(compress(prefix_column, mine))
            block_column = list(compress(block_column, mine))
            low_column = list(compress(low_column, mine))
        unseen = list(map(operator.lt, map(operator.getitem, block_column, low_column), repeat(0)))
        keep = list(compress(indexes, unseen))
        addresses = list(
            map(
                operator.or_,
                map(self.prefixes.__getitem__, compress(prefix_column, unseen)),
                compress(low_column, unseen),
            )
        )
        last_of = dict(zip(addresses, keep, strict=True))
        if len(last_of) < len(keep):
            # An address twice in this stretch: its later record wins.
            pairs = sorted(zip(last_of.values(), last_of, strict=True))
            keep = [index for index, _ in pairs]
            addresses = [address for _, address in pairs]
        if keep:
            columns = _canonical_columns(list(map(split.texts.__getitem__, keep)))
            if columns is None or not self._batch(columns, addresses, known_new=True):
                # Some winner is not in dhcpd's canonical shape or holds a value the full
                # parser must judge (which may skip it, and then an earlier record wins).
                self._last_first(buf, split, first, stop)
                return
        superseded = len(block_column) - len(keep)
        self.db.stats.records += superseded
        self.db.stats.superseded += superseded

    def _winners_and_journal(self, buf: bytes, split: _Split, first: int, stop: int) -> None:
        """:meth:`_winners` through the compiled scanner, every record also parsed, in the
        same call, into the journal (last first: ``backwards``) or the ``judge``."""
        assert self.scanner is not None and self.collector is not None
        bounds = split.bounds
        sink = True if self.judge is None else self.judge
        while stop > first:
            found, barrier, superseded, journal, done = self.scanner.backward(
                buf, split.raw, first, stop, sink
            )
            self.db.stats.records += superseded
            self.db.stats.superseded += superseded
            if found is not None:
                addresses, values = _columns_of(found)
                self._put(addresses, values, known_new=True)
            if journal is not None:
                self.backwards.extend_raw(*journal)
            if barrier < first:
                return
            # Not in dhcpd's layout, or a value the full parser must judge: the table's
            # record (if it is not superseded) and the journal's through the full parser.
            start, end = bounds[2 * barrier + 1], bounds[2 * barrier + 2]
            if done:
                self._gathered(self.collector.parsed(buf, start, end))
            else:
                collected = self._gap_backward(buf, start, end, at_eof=False)
                self._gathered(self.collector.stored(collected))
            stop = barrier

    def _last_first(self, buf: bytes, split: _Split, first: int, stop: int) -> None:
        """Records ``stop - 1`` down to ``first`` one at a time: one whose address already
        has a row is superseded (not parsed), any other goes through the full parser."""
        stats = self.db.stats
        blocks = self.blocks
        for index in range(stop - 1, first - 1, -1):
            prefix = split.prefixes[index]
            if prefix in blocks or self._learn_prefixes((prefix,)):
                block = blocks[prefix]
                if block is None:
                    continue  # another process's share
                if block[_OCTETS[split.lasts[index]]] >= 0:
                    stats.records += 1
                    stats.superseded += 1
                    continue
            record_end = split.bounds[2 * index + 2]
            self._gap_backward(buf, split.bounds[2 * index + 1], record_end, at_eof=False)


def _columns_of(found: tuple[Any, ...]) -> tuple[array, tuple[Sequence[Any], ...]]:
    """The compiled scanner's columns (bytes) as the table takes them: the addresses and
    the values of ``LeaseTable.put_columns`` after them."""
    addresses, times, states, flags, hw_types, hw_lens, hws, extras = found
    return array("I", addresses), (
        [array("q", column) for column in times],
        states,
        flags,
        hw_types,
        hw_lens,
        array("Q", hws),
        extras,
    )


def _ends_before_starts(starts: int | None, ends: int | None) -> bool:
    """Both times given (0: absent) and the lease ends before it starts."""
    return bool(starts and ends and ends < starts)


def _canonical_columns(texts: list[bytes]) -> list[tuple[bytes, ...]] | None:
    """Field columns (``b""`` where absent) of lease record texts from a record split, or
    None unless every one of them is in the canonical layout."""
    found = _CANONICAL_RUN.findall(b"".join(texts))
    if not found or len(found) != len(texts):
        return None
    return list(zip(*found, strict=True))


def _offsets(gaps: list[bytes], texts: list[bytes], lo: int) -> list[int]:
    """Buffer offsets in a split(): gap ``i`` starts at ``[2 * i]``, record ``i`` at
    ``[2 * i + 1]``."""
    lengths = [n for pair in zip(map(len, gaps), map(len, texts), strict=False) for n in pair]
    return list(accumulate(lengths, initial=lo))


class _HistoryReader(_Reader):
    """Every lease record in file order, through the full parser (``--all-records``)."""

    def __init__(self, db: LeaseDB, name: str, *, strict: bool, line: int = 1) -> None:
        super().__init__(db, name, strict=strict, line=line)
        self.history: list[Lease] = []
        self.failover_history: list[FailoverPeerRecord] = []

    def feed(self, buf: bytes, end: int, *, final: bool) -> int:
        try:
            return self._gap(buf, 0, end, end, final=final, truncated=final)
        except _StopFeed as stop:
            return stop.pos

    def _store(self, statement: syntax.Statement) -> None:
        super()._store(statement)
        if isinstance(statement, syntax.LeaseRow):
            self.history.append(statement.to_lease())
        elif isinstance(statement, FailoverPeerRecord):
            self.failover_history.append(statement)


class _JournalReader(_Reader):
    """Every lease record in file order into a :class:`Journal` (nothing else is kept):
    the compiled scanner's journal columns, or the regex batches (pure Python), take
    dhcpd's own layout; whatever they cannot take goes through the full parser."""

    def __init__(self, db: LeaseDB, name: str) -> None:
        super().__init__(db, name, strict=False)
        self.journal = Journal()

    def _records(self, buf: bytes, split: _Split, first: int, stop: int) -> None:
        if self.scanner is None:
            super()._records(buf, split, first, stop)  # batches through _put, else _store
            return
        bounds, journal = split.bounds, self.journal
        while first < stop:
            found, barrier = self.scanner.journal(buf, split.raw, first, stop)
            if found is not None:
                journal.extend_raw(*found)
                self.db.stats.records += len(found[0]) // 4  # the address column: u32
            if barrier >= stop:
                return
            self._feed_matches(buf, bounds[2 * barrier + 1], bounds[2 * barrier + 2])
            first = barrier + 1

    def piece(self, buf: bytes, split: _Split, first: int, stop: int) -> Journal:
        """The journal of records ``first … stop - 1`` of a record split made elsewhere."""
        self.journal = Journal()
        self._records(buf, split, first, stop)
        return self.journal

    def parsed(self, buf: bytes, start: int, end: int) -> Journal:
        """The journal of the record ``buf[start:end]`` through the full parser (its
        problems are not reported: they are the table's reader's to report, or not)."""
        self.journal = Journal()
        self._feed_matches(buf, start, end)
        return self.journal

    def stored(self, statements: Iterable[syntax.Statement]) -> Journal:
        """The journal of statements the full parser read elsewhere (in file order)."""
        self.journal = Journal()
        for statement in statements:
            self._store(statement)
        return self.journal

    def _put(
        self,
        addresses: Sequence[int],
        values: tuple[Sequence[Any], ...],
        *,
        known_new: bool = False,
    ) -> None:
        times, states, _flags, _types, hw_lens, hws, _extras = values
        journal = self.journal
        journal.address.extend(addresses)
        journal.state.extend(states[0])
        journal.rewind.extend(states[2])
        journal.starts.extend(times[0])
        journal.ends.extend(times[1])
        journal.cltt.extend(times[5])
        journal.client.extend(map(_hardware_fingerprint, hws, hw_lens))
        self.db.stats.records += len(addresses)

    def _feed_matches(self, buf: bytes, pos: int, end: int) -> None:
        # Rare (not dhcpd's layout, or a value to judge): the full parser, through _store.
        self._gap(buf, pos, end, end, final=True, truncated=False)

    def _store(self, statement: syntax.Statement) -> None:
        if not isinstance(statement, syntax.LeaseRow):
            return
        journal = self.journal
        starts, ends, *_, cltt = statement.times
        state = statement.states[0] or int(statement.to_lease().effective_state(starts))
        journal.address.append(statement.address)
        journal.state.append(state)
        journal.rewind.append(statement.states[2])
        journal.starts.append(starts)
        journal.ends.append(ends)
        journal.cltt.append(cltt)
        journal.client.append(fingerprint(statement.hw, None))
        self.db.stats.records += 1


def _hardware_fingerprint(value: int, length: int) -> int:
    return fingerprint(value.to_bytes(length), None) if length else 0


def read_lease_journal(path: str | os.PathLike[str]) -> tuple[LeaseDB, Journal]:
    """Every lease record of a file in file order as :class:`Journal` columns (superseded
    records included: the transitions since dhcpd's last rewrite), and a db that holds only
    the read's statistics and warnings. The compiled scanner's journal mode, else the regex
    batches (``DHCPFOCTL_PURE_PYTHON=1``), take dhcpd's own layout, the full parser the rest."""
    raw, name, size = _open(path)
    try:
        stream, position = _maybe_gunzip(raw)
        reader = _JournalReader(LeaseDB(), name)
        _pump(reader, stream, progress=None, total=size, position=position)
        return reader.db, reader.journal
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def read_lease_history(
    path: str | os.PathLike[str], *, strict: bool = False
) -> tuple[LeaseDB, list[Lease]]:
    """Every lease record of a file in order (superseded ones included), and the db."""
    raw, name, size = _open(path)
    try:
        stream, position = _maybe_gunzip(raw)
        reader = _HistoryReader(LeaseDB(), name, strict=strict)
        _pump(reader, stream, progress=None, total=size, position=position)
        return _sort_records(reader.db), reader.history
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


@dataclass(frozen=True, slots=True)
class HistoryChunk:
    """What :func:`read_lease_history_incremental` read: the records in file order."""

    db: LeaseDB  # the chunk's records with journal semantics (and its warnings)
    leases: list[Lease]
    failover: list[FailoverPeerRecord]
    resume: ResumeState
    #: Read from the start (no usable ``resume``): the chunk is the whole file.
    from_start: bool


def read_lease_history_incremental(
    path: str | os.PathLike[str], resume: ResumeState | None, *, strict: bool = False
) -> HistoryChunk:
    """Every record appended since ``resume`` (every record of the file when it cannot be
    resumed: see :func:`read_leases_incremental` for when), in file order."""
    name = os.fspath(path)
    if name == "-":
        raise InputFileError(STDIN_NAME, "incremental reading needs a file, not standard input")
    try:
        info = os.stat(name)
    except OSError as exc:
        raise InputFileError(name, exc.strerror or str(exc)) from None
    from_start = resume is None or not _can_resume(name, info, resume)
    raw, name, size = _open(name)
    try:
        stream, position = _maybe_gunzip(raw)
        start, line = (0, 1) if from_start or resume is None else (resume.offset, resume.line)
        reader = _HistoryReader(LeaseDB(), name, strict=strict, line=line)
        if start:
            stream.seek(start)
        offset, line, tail = _pump(
            reader, stream, progress=None, total=size, position=position, start_offset=start
        )
    finally:
        raw.close()
    if not from_start and resume is not None:
        tail = (resume.tail + tail)[-_TAIL_BYTES:] if offset != resume.offset else resume.tail
    if stream is not position:
        offset = -1  # gzip: never resumable
    return HistoryChunk(
        _sort_records(reader.db),
        reader.history,
        reader.failover_history,
        ResumeState(info.st_ino, info.st_size, offset, line, tail),
        from_start,
    )


def _open(path: str | os.PathLike[str]) -> tuple[BinaryIO, str, int]:
    """(binary stream, display name, total size for progress) for a path or ``-``."""
    name = os.fspath(path)
    if name == "-":
        return sys.stdin.buffer, STDIN_NAME, 0
    try:
        raw = open_regular(name)
    except OSError as exc:
        raise InputFileError(name, exc.strerror or str(exc)) from None
    size = os.fstat(raw.fileno()).st_size
    return raw, name, size


def _maybe_gunzip(stream: BinaryIO) -> tuple[BinaryIO, BinaryIO]:
    """(stream to parse, stream whose position measures progress)."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered), buffered  # type: ignore[return-value]
    return buffered, buffered


def _pump(
    reader: _Reader,
    stream: BinaryIO,
    *,
    progress: Progress | None,
    total: int,
    position: BinaryIO,
    start_offset: int = 0,
) -> tuple[int, int, bytes]:
    """Feed ``stream`` to ``reader``; returns (offset after the last complete record,
    line number there, bytes just before it)."""
    carry = b""
    consumed = start_offset  # absolute offset of carry[0]
    last_tail = b""
    while True:
        try:
            chunk = stream.read(CHUNK_SIZE)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputFileError(reader.name, f"read failed: {exc}") from None
        final = not chunk
        buf = carry + chunk if carry else chunk
        if final:
            end = len(buf)
        else:
            end = buf.rfind(b"\n}\n") + 3
            if end < 3:
                carry = buf  # no record end yet: read more
                continue
        stop = reader.feed(buf, end, final=final)
        if stop > 0:
            last_tail = (last_tail + buf[max(0, stop - _TAIL_BYTES) : stop])[-_TAIL_BYTES:]
        reader.line += buf.count(b"\n", 0, stop)
        consumed += stop
        reader.db.stats.bytes_read += stop
        carry = buf[stop:]
        if progress is not None:
            try:
                done = position.tell() if total else consumed
            except OSError:
                done = consumed
            progress(done, total)
        if final:
            # Offset of the last complete record: an incomplete tail stays for next time.
            return consumed - len(carry) if carry else consumed, reader.line, last_tail


def read_leases(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    progress: Progress | None = None,
    processes: int = 1,
    journal: Journal | None = None,
    window: WindowRequest | None = None,
) -> LeaseDB:
    """Read a DHCPv4 lease file (``-`` for stdin, gzip detected by its magic bytes).

    Non-strict: each bad record is reported in ``db.stats.warnings`` and skipped; strict:
    the first one raises :class:`InputFileError` naming ``FILE:LINE``.

    A regular file is read from its end so that superseded lease records are only
    located, not parsed: problems inside a superseded lease record are therefore reported
    only by ``strict`` reads (which read forwards and parse everything) and by
    :func:`read_lease_history`. ``processes=2`` shares a regular file with a forked
    child (POSIX): measured 7.7 s instead of 10.7 s on a 1 GB journal, but with 1.7 times
    the memory (3.3 times dhcpd-pools') and a second CPU taken from the dhcpd that usually
    runs on the same machine, hence not the default.

    ``journal``: also append every lease record of the file to it, in file order
    (superseded ones included: what :func:`read_lease_journal` reads), from the same pass
    over the file when it is read backwards. ``window``: fill its ``found`` with what
    :func:`~dhcpfoctl.leases.transitions.window_bindings` finds in that journal; the
    compiled scanner works it out as it reads, without keeping the journal. One or the
    other.
    """
    db, _ = _read_all(
        path,
        strict=strict,
        progress=progress,
        processes=processes,
        journal=journal,
        window=window,
    )
    return db


def _read_all(
    path: str | os.PathLike[str],
    *,
    strict: bool,
    progress: Progress | None,
    resumable: bool = False,
    processes: int = 1,
    journal: Journal | None = None,
    window: WindowRequest | None = None,
) -> tuple[LeaseDB, tuple[int, int, bytes, bool]]:
    """Read a whole file: backwards when it is a regular uncompressed file (fast), else
    as a stream. Returns the db and (offset, line, tail, compressed) for a ResumeState;
    ``journal``, ``window``: see :func:`read_leases`."""
    if journal is not None and window is not None:
        raise ValueError("a journal or a window, not both")
    raw, name, size = _open(path)
    try:
        stream, position = _maybe_gunzip(raw)
        db = LeaseDB()
        seekable = raw is not sys.stdin.buffer and stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
        # Strict mode reads forwards so that the error it stops at is the file's first.
        if seekable and stream is position and not strict:
            try:
                backward = _read_backward(
                    db,
                    name,
                    stream,
                    size,
                    progress,
                    processes,
                    journal=journal is not None,
                    window=None if window is None else window.after,
                    count_lines=resumable,
                )
                db.stats.bytes_read = size
                truncated_at = backward.truncated_at
                offset = size if truncated_at is None else truncated_at
                line, tail = (
                    (0, b"")
                    if backward.newlines is None
                    else _position_info(stream, size, offset, backward.newlines)
                )
            except OSError as exc:
                raise InputFileError(name, f"read failed: {exc}") from None
            _fill_requests(name, journal, window, backward)
            return _sort_records(db), (offset, line, tail, False)
        reader = _Reader(db, name, strict=strict)
        offset, line, tail = _pump(reader, stream, progress=progress, total=size, position=position)
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
    _fill_requests(name, journal, window, None)
    return _sort_records(db), (offset, line, tail, stream is not position)


def _fill_requests(
    name: str,
    journal: Journal | None,
    window: WindowRequest | None,
    backward: _BackwardReader | None,
) -> None:
    """Fill ``journal`` or ``window`` from what the backward read gathered, else (a
    stream, or a gap the forward read resynchronises in differently) from a forward
    journal read of its own."""
    if journal is None and window is None:
        return
    if backward is None and name == STDIN_NAME:
        raise InputFileError(name, "a journal needs a file, not standard input")
    if journal is not None:
        gathered = None if backward is None else backward.journal_of()
        journal.extend(read_lease_journal(name)[1] if gathered is None else gathered)
    if window is not None:
        found = None if backward is None else backward.window_of(window.after)
        if found is None:
            found = window_bindings(read_lease_journal(name)[1], window.after)
        window.found = found


def _read_backward(
    db: LeaseDB,
    name: str,
    stream: BinaryIO,
    size: int,
    progress: Progress | None,
    processes: int,
    *,
    journal: bool = False,
    window: int | None = None,
    count_lines: bool = False,
) -> _BackwardReader:
    """Fill ``db`` from a regular file read backwards; returns the reader (its truncated
    tail's offset, its journal: see :class:`_BackwardReader`).

    With ``processes=2`` (POSIX) the file is shared with a forked child: each process keeps
    the leases of half of the /24 blocks (disjoint, so the merge is an append) and the child
    streams its table back, pickled column by column, through a pipe.
    """
    if processes < 2 or not hasattr(os, "fork"):
        reader = _BackwardReader(
            db, name, stream, strict=False, journal=journal, window=window, count_lines=count_lines
        )
        reader.read(size, progress)
        return reader
    receive, send = os.pipe()
    child = os.fork()
    if child == 0:  # the child: the odd /24 blocks
        os.close(receive)
        status = 0
        try:
            with open(name, "rb") as own, os.fdopen(send, "wb") as out:
                part = LeaseDB()
                _BackwardReader(part, name, own, strict=False, share=(1, 2)).read(size, None)
                # Column by column, then the rest (stats and warnings) with an empty table.
                for piece in part.leases.export_parts():
                    pickle.dump(piece, out, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.dump(None, out)
                part.leases = LeaseTable()
                pickle.dump(part, out, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # anything: the parent reports the failure
            status = 1
        finally:
            os._exit(status)
    os.close(send)
    incoming = os.fdopen(receive, "rb")
    try:
        reader = _BackwardReader(
            db,
            name,
            stream,
            strict=False,
            share=(0, 2),
            journal=journal,
            window=window,
            count_lines=count_lines,
        )
        reader.read(size, progress)
        try:
            db.leases.absorb_parts(iter(lambda: pickle.load(incoming), None))
            part = pickle.load(incoming)
        except (EOFError, pickle.UnpicklingError):
            part = None
    finally:
        incoming.close()  # first: a child still writing gets EPIPE instead of blocking
        _, status = os.waitpid(child, 0)
    if status != 0 or not isinstance(part, LeaseDB):
        raise InputFileError(name, "the second reading process failed")
    db.stats.records += part.stats.records
    db.stats.superseded += part.stats.superseded
    # Both processes read every non-lease record, so both saw its problems: keep one.
    merged = dict.fromkeys(db.stats.warnings + part.stats.warnings)
    db.stats.warnings = sorted(merged, key=lambda warning: warning.line)
    return reader


def _sort_records(db: LeaseDB) -> LeaseDB:
    """Failover, host and other records ordered by name, whichever direction was read."""
    db.failover = dict(sorted(db.failover.items()))
    db.hosts = dict(sorted(db.hosts.items()))
    db.others = dict(sorted(db.others.items()))
    return db


def _position_info(stream: BinaryIO, size: int, offset: int, newlines: int) -> tuple[int, bytes]:
    """(line number at ``offset``, the bytes just before it) in a file of ``size`` bytes
    holding ``newlines`` (counted as it was read): only the bytes after ``offset`` (a
    truncated tail) are read again."""
    stream.seek(offset)
    after = stream.read(size - offset).count(b"\n") if offset < size else 0
    stream.seek(max(0, offset - _TAIL_BYTES))
    return 1 + newlines - after, stream.read(offset - max(0, offset - _TAIL_BYTES))


def read_leases_incremental(
    path: str | os.PathLike[str],
    resume: ResumeState | None,
    db: LeaseDB | None,
    *,
    strict: bool = False,
    journal: Journal | None = None,
) -> tuple[LeaseDB, ResumeState]:
    """Read only what was appended since ``resume``, into ``db`` (updated in place).

    A full read happens when there is no previous state or database, when the file is a
    different one (new inode, as after dhcpd's rewrite), shrank, or its bytes before the
    saved offset changed, and for gzip files (which are never appended to).

    ``journal``: a full read also appends every lease record of the file to it (see
    :func:`read_leases`); a resumed read leaves it as it is.
    """
    name = os.fspath(path)
    if name == "-":
        raise InputFileError(STDIN_NAME, "incremental reading needs a file, not standard input")
    try:
        info = os.stat(name)
    except OSError as exc:
        raise InputFileError(name, exc.strerror or str(exc)) from None
    if db is not None and resume is not None and _can_resume(name, info, resume):
        with open(name, "rb") as raw:
            raw.seek(resume.offset)
            reader = _Reader(db, name, strict=strict, line=resume.line)
            offset, line, tail = _pump(
                reader, raw, progress=None, total=0, position=raw, start_offset=resume.offset
            )
        tail = (resume.tail + tail)[-_TAIL_BYTES:] if offset != resume.offset else resume.tail
        return _sort_records(db), ResumeState(info.st_ino, info.st_size, offset, line, tail)
    fresh, (offset, line, tail, compressed) = _read_all(
        name, strict=strict, progress=None, resumable=True, journal=journal
    )
    if compressed:
        offset = -1  # never resumable: the next call reads the file again
    return fresh, ResumeState(info.st_ino, info.st_size, offset, line, tail)


def _can_resume(name: str, info: os.stat_result, resume: ResumeState) -> bool:
    if resume.offset < 0 or info.st_ino != resume.inode or info.st_size < resume.size:
        return False
    if resume.offset > info.st_size:
        return False
    try:
        with open(name, "rb") as raw:
            start = resume.offset - len(resume.tail)
            raw.seek(start)
            return raw.read(len(resume.tail)) == resume.tail
    except OSError:
        return False
