"""dhcpd.leases syntax: tokens, values, dates, and the full statement parser.

This is the complete (slow) path: every top-level statement dhcpd 4.4 reads, with
comments anywhere, any whitespace, quoted strings with escapes, ``epoch N`` and ``never``
dates, legacy statements and ``on`` blocks. The reader's fast path (``reader.py``) handles
the canonical layout dhcpd writes and hands everything else to :func:`parse_statement`.

Works on ``bytes`` so that no byte of the input is lost to a text decoding.
"""

from __future__ import annotations

import datetime
import operator
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Final

from dhcpfoctl.model import (
    EARLIEST_TIME,
    LATEST_TIME,
    NEVER,
    TIME_FIELDS,
    BindingState,
    FailoverPeerRecord,
    FailoverState,
    HardwareType,
    HostRecord,
    Lease,
    LeaseExtras,
    LeaseFlag,
    OnBlock,
    OtherRecord,
    VariableValue,
    int_to_address,
)
from dhcpfoctl.quoting import parse_decimal, unescape

#: One token: whitespace and comments are separate tokens so that positions stay exact.
_TOKEN: Final = re.compile(
    rb'(?P<ws>[ \t\r\f\v]+|\n|#[^\n]*)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>[{};,=])'
    rb'|(?P<word>[^\s{};,="#]+)',
    re.S,
)
_DATE: Final = re.compile(rb"(\d{1,4})/(\d{1,2})/(\d{1,2})")
_CLOCK: Final = re.compile(rb"(\d{1,2}):(\d{1,2}):(\d{1,2})")
_HEX_BYTES: Final = re.compile(rb"[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2})*")
_IPV4: Final = re.compile(rb"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")

#: Year from which dhcpd reads a date as ``never`` (its time_t is 32-bit in the file).
_NEVER_YEAR: Final = 2038
#: The mclt is a 32-bit count of seconds on the failover wire; a ``set`` number is bounded
#: to 64 bits so that no lease file can make one of any length.
_MAX_U32: Final = 2**32 - 1
_MAX_SET_NUMBER: Final = 2**64 - 1
#: The hardware type is the first byte of dhcpd's hardware address (``htype``).
_MAX_HARDWARE_TYPE: Final = 255
_STATE_KEYWORDS: Final = {"binding": 0, "next": 1, "rewind": 2}
#: Legacy ``binding state`` values that mean active plus a flag.
_LEGACY_STATE_FLAGS: Final = {
    BindingState.RESERVED: LeaseFlag.RESERVED,
    BindingState.BOOTP: LeaseFlag.BOOTP,
}
#: ``hardware`` type words dhcpd accepts besides ``unknown-N``.
_HARDWARE_SYNONYMS: Final = {"tokenring": "token-ring"}
#: Variables written without ``set … =`` by old dhcpd versions.
_LEGACY_VARIABLES: Final = ("ddns-fwd-name", "ddns-rev-name")


class Incomplete(Exception):
    """The statement runs past the end of the available bytes."""


class SyntaxProblem(Exception):
    """A statement is malformed; ``pos`` is where, ``message`` what."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def colon_hex(data: bytes) -> str:
    return data.hex(":")


_minute_starts: dict[bytes, int | None] = {}
#: Day 0 of the epoch (``date.toordinal``): calendar.timegm's arithmetic without importing
#: calendar (~1.3 ms at start-up; datetime is imported by the command line anyway).
_EPOCH_DAY: Final = datetime.date(1970, 1, 1).toordinal()
_SECONDS: Final = {b"%02d" % n: n for n in range(61)}


def parse_date(text: bytes) -> int | None:
    """Epoch seconds of a date as dhcpd writes it (without ``;``), or None if malformed.

    Forms: ``W YYYY/MM/DD HH:MM:SS [±offset]`` (UTC), ``epoch N``, ``never``.
    """
    if len(text) == 21 and text[18:19] == b":":
        # The common form: the minute's start is cached, the seconds looked up.
        second = _SECONDS.get(text[19:])
        start = _minute_starts.get(text[:18], -1)
        if start == -1:
            if len(_minute_starts) > 1 << 20:
                _minute_starts.clear()
            start = _minute_starts[text[:18]] = _parse_full_date(text[:18] + b":00")
        if start is None or second is None:
            return None
        return NEVER if start == NEVER else start + second
    return _parse_full_date(text)


def parse_dates(texts: Iterable[bytes]) -> dict[bytes, int] | None:
    """:func:`parse_date` of many dates (the reader's batches); None if one is malformed.

    The common form is computed in C-level passes (minute start from the cache plus the
    seconds), one Python step per distinct minute rather than per distinct date.
    """
    texts = list(texts)
    minutes = _minute_starts
    heads = list(map(operator.getitem, texts, repeat(slice(0, 18))))
    for head in set(heads).difference(minutes):
        if len(minutes) > 1 << 20:
            minutes.clear()
        minutes[head] = _parse_full_date(head + b":00")
    starts = list(map(minutes.get, heads))
    seconds = list(map(_SECONDS.get, map(operator.getitem, texts, repeat(slice(19, None)))))
    colons = set(map(operator.getitem, texts, repeat(slice(18, 19))))
    if None in starts or None in seconds or NEVER in starts or colons - {b":"}:
        # Some other form (epoch N, never, an offset) or a malformed date: one by one.
        parsed = {}
        for text in texts:
            value = parse_date(text)
            if value is None:
                return None
            parsed[text] = value
        return parsed
    return dict(zip(texts, map(operator.add, starts, seconds), strict=True))  # type: ignore[arg-type]


def _parse_full_date(text: bytes) -> int | None:
    parts = text.split()
    if not parts:
        return None
    if parts[0] == b"never" and len(parts) == 1:
        return NEVER
    if parts[0] == b"epoch":
        epoch = parse_decimal(parts[1], LATEST_TIME) if len(parts) == 2 else None
        return None if epoch is None else _within_calendar(epoch)
    if len(parts) not in (3, 4) or not parts[0].isdigit():
        return None
    date = _DATE.fullmatch(parts[1])
    clock = _CLOCK.fullmatch(parts[2])
    if date is None or clock is None:
        return None
    year, month, day = (int(x) for x in date.groups())
    hour, minute, second = (int(x) for x in clock.groups())
    if year < 100:  # two-digit years, as dhcpd reads them
        year += 1900 if year >= 70 else 2000
    if not (1 <= month <= 12 and hour < 24 and minute < 60 and second < 61):
        return None
    # dhcpd counts days past the month's end into the next month (February 31 is March 3);
    # such a date is no date dhcpd wrote, so it is refused rather than moved.
    try:
        days = datetime.date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:  # (year is 100-9999 and month 1-12 here: only the day can be wrong)
        return None
    if year >= _NEVER_YEAR:
        return NEVER
    offset = 0
    if len(parts) == 4:
        sign = -1 if parts[3][:1] == b"-" else 1
        digits = parts[3][1:] if parts[3][:1] in (b"-", b"+") else parts[3]
        magnitude = parse_decimal(digits, LATEST_TIME)
        if magnitude is None:
            return None
        offset = sign * magnitude
    return _within_calendar(((days * 24 + hour) * 60 + minute) * 60 + second + offset)


def _within_calendar(epoch: int) -> int | None:
    """``epoch``, or None when it is outside the times the model keeps (see LATEST_TIME)."""
    return epoch if EARLIEST_TIME <= epoch <= LATEST_TIME else None


def format_date(epoch: int) -> str:
    """The date form dhcpd 4.4 writes (UTC, ``never`` for :data:`NEVER`)."""
    if epoch == NEVER:
        return "never"
    import time

    return time.strftime("%w %Y/%m/%d %H:%M:%S", time.gmtime(epoch))


def parse_hex_bytes(text: bytes) -> bytes | None:
    """``01:2:ab`` → bytes (dhcpd accepts one- or two-digit octets), None if not hex."""
    if _HEX_BYTES.fullmatch(text) is None:
        return None
    return bytes(int(part, 16) for part in text.split(b":"))


def parse_ipv4(text: bytes) -> int | None:
    match = _IPV4.fullmatch(text)
    if match is None:
        return None
    value = 0
    for part in match.groups():
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


def decode_text(data: bytes) -> str:
    """Bytes of a host name or verbatim block as str, losslessly (re-encodable)."""
    return data.decode("utf-8", "surrogateescape")


def encode_text(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class Tokens:
    """A cursor over the tokens of ``buf[pos:end]``; raises :class:`Incomplete` at ``end``."""

    __slots__ = ("buf", "end", "pos", "tok_start")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end
        self.tok_start = pos

    def skip_space(self) -> bool:
        """Skip whitespace and comments; False at the end of the bytes."""
        buf, end = self.buf, self.end
        while self.pos < end:
            match = _TOKEN.match(buf, self.pos, end)
            if match is None or match.lastgroup != "ws":
                return True
            if match.end() == end and buf[match.start() : match.start() + 1] == b"#":
                # A comment cut by the end of the bytes may continue beyond them.
                return False
            self.pos = match.end()
        return False

    def next(self) -> tuple[str, bytes]:
        """(kind, text) of the next token: kind is ``str``, ``punct`` or ``word``."""
        if not self.skip_space():
            raise Incomplete
        match = _TOKEN.match(self.buf, self.pos, self.end)
        self.tok_start = self.pos
        if match is None:
            if self.buf[self.pos : self.pos + 1] == b'"':
                # An unterminated string: more bytes may close it, else it is corrupt.
                raise Incomplete
            raise SyntaxProblem(self.pos, "unreadable character")
        if match.end() == self.end and match.lastgroup == "word":
            raise Incomplete  # the word may continue beyond the available bytes
        self.pos = match.end()
        text = match.group()
        kind = match.lastgroup or ""
        return kind, text[1:-1] if kind == "str" else text

    def word(self, what: str) -> bytes:
        kind, text = self.next()
        if kind != "word":
            raise SyntaxProblem(self.tok_start, f"expected {what}, found {_show(text)}")
        return text

    def expect(self, punct: bytes) -> None:
        kind, text = self.next()
        if kind != "punct" or text != punct:
            raise SyntaxProblem(self.tok_start, f"expected '{punct.decode()}', found {_show(text)}")

    def words_until_semicolon(self) -> list[tuple[str, bytes]]:
        found = []
        while True:
            kind, text = self.next()
            if kind == "punct" and text == b";":
                return found
            if kind == "punct" and text in (b"{", b"}"):
                raise SyntaxProblem(self.tok_start, f"expected ';', found {_show(text)}")
            found.append((kind, text))

    def block(self) -> bytes:
        """After ``{``: the verbatim text up to the matching ``}`` (which is consumed)."""
        start = self.pos
        depth = 1
        while True:
            kind, text = self.next()
            if kind == "punct" and text == b"{":
                depth += 1
            elif kind == "punct" and text == b"}":
                depth -= 1
                if depth == 0:
                    return self.buf[start : self.tok_start]


def _show(text: bytes) -> str:
    return repr(text.decode("utf-8", "replace")[:40])


# Results of parse_statement --------------------------------------------------------------


@dataclass(slots=True)
class LeaseRow:
    """A lease record in the column form of :meth:`LeaseTable.upsert_row`."""

    address: int
    times: list[int]
    states: list[int]
    flags: int
    hw_type: int
    hw: bytes | None
    extras: LeaseExtras

    def to_lease(self) -> Lease:
        starts, ends, tstp, tsfp, atsfp, cltt = (value or None for value in self.times)
        state, next_state, rewind = (
            BindingState(value) if value else None for value in self.states
        )
        return Lease(
            address=int_to_address(self.address),
            starts=starts,
            ends=ends,
            tstp=tstp,
            tsfp=tsfp,
            atsfp=atsfp,
            cltt=cltt,
            binding_state=state,
            next_binding_state=next_state,
            rewind_binding_state=rewind,
            flags=LeaseFlag(self.flags),
            hardware_type=HardwareType(self.hw_type) if self.hw_type else None,
            hardware_address=self.hw,
            extras=self.extras,
        )


@dataclass(frozen=True, slots=True)
class ScalarStatement:
    """``server-duid`` or ``authoring-byte-order``."""

    keyword: str
    value: bytes


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """A record this reader does not model (DHCPv6 IAs in a v4 file); ``note`` says why."""

    note: str


Statement = (
    LeaseRow | FailoverPeerRecord | HostRecord | OtherRecord | ScalarStatement | SkippedRecord
)


def parse_statement(tokens: Tokens) -> Statement:
    """Parse one top-level statement; raises :class:`Incomplete` or :class:`SyntaxProblem`."""
    kind, keyword = tokens.next()
    start = tokens.tok_start
    word = keyword.lower()
    if kind != "word":
        raise SyntaxProblem(start, f"expected a lease-file statement, found {_show(keyword)}")
    if word == b"lease":
        return _parse_lease(tokens)
    if word == b"failover":
        return _parse_failover(tokens)
    if word == b"host":
        return _parse_host(tokens)
    if word in (b"group", b"class", b"subclass"):
        return _parse_other(tokens, word.decode())
    if word == b"server-duid":
        values = tokens.words_until_semicolon()
        if len(values) != 1:
            raise SyntaxProblem(start, "server-duid expects one value")
        return ScalarStatement("server-duid", _value_bytes(values[0], start, "server-duid"))
    if word == b"authoring-byte-order":
        values = tokens.words_until_semicolon()
        if len(values) != 1 or values[0][1] not in (b"little-endian", b"big-endian"):
            raise SyntaxProblem(start, "authoring-byte-order must be little-endian or big-endian")
        return ScalarStatement("authoring-byte-order", values[0][1])
    if word in (b"ia-na", b"ia-ta", b"ia-pd"):
        while tokens.next() != ("punct", b"{"):
            pass
        tokens.block()
        return SkippedRecord(f"DHCPv6 {word.decode()} record ignored in a DHCPv4 lease file")
    raise SyntaxProblem(start, f"unknown statement {_show(keyword)}")


def _value_bytes(token: tuple[str, bytes], pos: int, what: str) -> bytes:
    kind, text = token
    if kind == "str":
        return unescape(text)
    value = parse_hex_bytes(text) if kind == "word" else None
    if value is None:
        raise SyntaxProblem(pos, f"{what}: expected a quoted string or colon-hex bytes")
    return value


def _parse_lease(tokens: Tokens) -> LeaseRow:
    start = tokens.tok_start
    address_text = tokens.word("an IPv4 address")
    address = parse_ipv4(address_text)
    if address is None:
        raise SyntaxProblem(tokens.tok_start, f"bad IPv4 address {_show(address_text)}")
    tokens.expect(b"{")
    row = LeaseRow(address, [0] * 6, [0, 0, 0], 0, 0, None, LeaseExtras())
    fields = _ExtrasBuilder()
    while True:
        kind, text = tokens.next()
        if kind == "punct" and text == b"}":
            break
        if kind == "punct" and text == b";":
            continue  # an empty statement, as dhcpd tolerates
        if kind != "word":
            raise SyntaxProblem(
                tokens.tok_start, f"expected a lease statement, found {_show(text)}"
            )
        _lease_statement(tokens, text.lower(), row, fields)
    if row.flags & LeaseFlag.ABANDONED and row.states[0]:
        # dhcpd reads "abandoned;" as a second binding state ("Too many abandoned
        # parameters") and drops the lease.
        raise SyntaxProblem(
            start, "'abandoned;' together with 'binding state' (dhcpd drops this lease)"
        )
    row.extras = fields.build()
    return row


class _ExtrasBuilder:
    __slots__ = ("billing", "hostname", "on_blocks", "options", "other", "uid", "variables")

    def __init__(self) -> None:
        self.uid: bytes | None = None
        self.hostname: str | None = None
        self.billing: str | None = None
        self.variables: dict[str, VariableValue] = {}
        self.options: dict[str, bytes] = {}
        self.on_blocks: list[OnBlock] = []
        self.other: list[str] = []

    def build(self) -> LeaseExtras:
        return LeaseExtras(
            uid=self.uid,
            client_hostname=self.hostname,
            billing=self.billing,
            variables=tuple(self.variables.items()),
            options=tuple(self.options.items()),
            on_blocks=tuple(self.on_blocks),
            other=tuple(self.other),
        )


def _lease_statement(tokens: Tokens, word: bytes, row: LeaseRow, fields: _ExtrasBuilder) -> None:
    start = tokens.tok_start
    keyword = word.decode("ascii", "replace")
    if keyword in TIME_FIELDS:
        words = tokens.words_until_semicolon()
        value = parse_date(b" ".join(text for _, text in words))
        if value is None or any(kind != "word" for kind, _ in words):
            raise SyntaxProblem(
                start,
                f"{keyword}: bad date (expected 'W YYYY/MM/DD HH:MM:SS', 'epoch N' or 'never')",
            )
        row.times[TIME_FIELDS.index(keyword)] = value
    elif keyword in _STATE_KEYWORDS:
        words = [text for _, text in tokens.words_until_semicolon()]
        expected = [b"state"] if keyword == "binding" else [b"binding", b"state"]
        if len(words) != len(expected) + 1 or [w.lower() for w in words[:-1]] != expected:
            raise SyntaxProblem(start, f"expected '{keyword} {b' '.join(expected).decode()} S;'")
        try:
            state = BindingState.from_keyword(words[-1].decode("ascii", "replace"))
        except ValueError:
            raise SyntaxProblem(start, f"unknown binding state {_show(words[-1])}") from None
        if keyword == "binding" and state in _LEGACY_STATE_FLAGS:
            row.flags |= _LEGACY_STATE_FLAGS[state]
            state = BindingState.ACTIVE
        row.states[_STATE_KEYWORDS[keyword]] = int(state)
    elif keyword in ("reserved", "dynamic-bootp", "abandoned"):
        if tokens.words_until_semicolon():
            raise SyntaxProblem(start, f"{keyword} takes no value")
        flag = {
            "reserved": LeaseFlag.RESERVED,
            "dynamic-bootp": LeaseFlag.BOOTP,
            "abandoned": LeaseFlag.ABANDONED,
        }[keyword]
        row.flags |= flag
    elif keyword == "bootp":
        raise SyntaxProblem(
            start,
            "'bootp;' is rejected by dhcpd (the statement is "
            "'dynamic-bootp;'); lease dropped as dhcpd would",
        )
    elif keyword == "hardware":
        words = tokens.words_until_semicolon()
        if len(words) != 2 or any(kind != "word" for kind, _ in words):
            raise SyntaxProblem(start, "expected 'hardware TYPE XX:XX:…;'")
        type_word = words[0][1].decode("ascii", "replace").lower()
        try:
            row.hw_type = int(
                HardwareType.from_keyword(_HARDWARE_SYNONYMS.get(type_word, type_word))
            )
        except ValueError:
            raise SyntaxProblem(start, f"unknown hardware type {type_word!r}") from None
        if row.hw_type > _MAX_HARDWARE_TYPE:
            raise SyntaxProblem(start, f"hardware type {row.hw_type} is not a byte (0-255)")
        row.hw = parse_hex_bytes(words[1][1])
        if row.hw is None:
            raise SyntaxProblem(start, f"bad hardware address {_show(words[1][1])}")
    elif keyword == "uid":
        fields.uid = _single_value(tokens, start, "uid")
    elif keyword == "client-hostname":
        words = tokens.words_until_semicolon()
        if len(words) != 1 or words[0][0] not in ("str", "word"):
            raise SyntaxProblem(start, "expected 'client-hostname \"NAME\";'")
        kind, text = words[0]
        fields.hostname = decode_text(unescape(text) if kind == "str" else text)
    elif keyword == "billing":
        words = tokens.words_until_semicolon()
        if not words or words[0][1] not in (b"class", b"subclass"):
            raise SyntaxProblem(start, "expected 'billing class \"NAME\";'")
        fields.billing = decode_text(tokens.buf[start + len(b"billing") : tokens.tok_start]).strip()
    elif keyword == "class":
        tokens.words_until_semicolon()
        fields.other.append(decode_text(tokens.buf[start : tokens.tok_start]).strip())
    elif keyword == "set":
        _set_statement(tokens, start, fields)
    elif keyword in _LEGACY_VARIABLES:
        fields.variables[keyword] = _single_value(tokens, start, keyword)
    elif keyword in ("option", "supersede"):
        name = tokens.word("an agent option name").decode("ascii", "replace")
        if not name.lower().startswith("agent."):
            raise SyntaxProblem(start, f"agent option expected, found {name!r}")
        fields.options[name] = _single_value(tokens, start, name)
    elif keyword == "on":
        events = []
        while True:
            kind, text = tokens.next()
            if kind == "punct" and text == b"{":
                break
            if kind != "word":
                raise SyntaxProblem(start, "expected 'on EVENT [or EVENT] {'")
            events.append(text.decode("ascii", "replace"))
        fields.on_blocks.append(OnBlock(" ".join(events), decode_text(tokens.block())))
    else:
        raise SyntaxProblem(start, f"unknown lease statement {keyword!r} (dhcpd drops the lease)")


def _single_value(tokens: Tokens, start: int, what: str) -> bytes:
    words = tokens.words_until_semicolon()
    if len(words) != 1:
        raise SyntaxProblem(start, f"{what}: expected one value")
    return _value_bytes(words[0], start, what)


def _set_statement(tokens: Tokens, start: int, fields: _ExtrasBuilder) -> None:
    name = tokens.word("a variable name").decode("ascii", "replace")
    tokens.expect(b"=")
    words = tokens.words_until_semicolon()
    if len(words) != 1:
        raise SyntaxProblem(start, f"set {name}: expected one value")
    kind, text = words[0]
    value: VariableValue
    if kind == "str":
        value = unescape(text)
    elif text in (b"true", b"false"):
        value = text == b"true"
    elif text.startswith(b"%") and (number := parse_decimal(text[1:], _MAX_SET_NUMBER)) is not None:
        value = number
    else:
        # dhcpd 4.4 reads no other form (not even colon hex): "expecting a constant value".
        raise SyntaxProblem(
            start, f"set {name}: expected a quoted string, %N (N up to 2^64-1), true or false"
        )
    fields.variables[name] = value


def _parse_failover(tokens: Tokens) -> FailoverPeerRecord:
    start = tokens.tok_start
    if tokens.word("'peer'").lower() != b"peer":
        raise SyntaxProblem(start, "expected 'failover peer \"NAME\" state {'")
    kind, name = tokens.next()
    if kind not in ("str", "word"):
        raise SyntaxProblem(start, "expected the failover peer name")
    if tokens.word("'state'").lower() != b"state":
        raise SyntaxProblem(start, "expected 'failover peer \"NAME\" state {'")
    tokens.expect(b"{")
    found: dict[str, tuple[FailoverState, int | None]] = {}
    mclt: int | None = None
    while True:
        kind, text = tokens.next()
        if kind == "punct" and text == b"}":
            break
        at = tokens.tok_start
        word = text.lower()
        if word in (b"my", b"partner"):
            if tokens.word("'state'").lower() != b"state":
                raise SyntaxProblem(at, "expecting state setting ('my state' / 'partner state')")
            words = tokens.words_until_semicolon()
            if not words:
                raise SyntaxProblem(at, "missing failover state")
            try:
                state = FailoverState.from_keyword(words[0][1].decode("ascii", "replace"))
            except ValueError:
                raise SyntaxProblem(at, f"unknown failover state {_show(words[0][1])}") from None
            stos = None
            if len(words) > 1:
                if words[1][1].lower() != b"at":
                    raise SyntaxProblem(at, "expected 'at DATE' after the failover state")
                stos = parse_date(b" ".join(text for _, text in words[2:]))
                if stos is None:
                    raise SyntaxProblem(at, "bad date after 'at'")
            found[word.decode()] = (state, stos)
        elif word == b"mclt":
            words = tokens.words_until_semicolon()
            mclt = parse_decimal(words[0][1], _MAX_U32) if len(words) == 1 else None
            if mclt is None:
                raise SyntaxProblem(at, "mclt expects a number of seconds (up to 2^32-1)")
        else:
            raise SyntaxProblem(at, f"expecting state setting, found {_show(text)}")
    if "my" not in found or "partner" not in found:
        raise SyntaxProblem(start, "failover state record lacks 'my state' or 'partner state'")
    return FailoverPeerRecord(
        name=decode_text(unescape(name) if kind == "str" else name),
        my_state=found["my"][0],
        my_stos=found["my"][1],
        partner_state=found["partner"][0],
        partner_stos=found["partner"][1],
        mclt=mclt,
    )


def _parse_host(tokens: Tokens) -> HostRecord:
    kind, name = tokens.next()
    if kind not in ("str", "word"):
        raise SyntaxProblem(tokens.tok_start, "expected a host name")
    tokens.expect(b"{")
    body = tokens.block()
    inner = Tokens(body, 0, len(body))
    deleted = False
    try:
        while inner.skip_space():
            kind_inner, text = inner.next()
            if kind_inner == "word" and text.lower() == b"deleted":
                deleted = True
                break
            if kind_inner == "punct" and text == b"{":
                inner.block()
    except Incomplete:
        pass  # a block's inner statements need not end in ';' the way we scan them
    host_name = decode_text(unescape(name) if kind == "str" else name)
    return HostRecord(host_name, deleted, decode_text(body))


def _parse_other(tokens: Tokens, kind_word: str) -> OtherRecord:
    header_start = tokens.pos
    while True:
        kind, text = tokens.next()
        if kind == "punct" and text == b"{":
            break
        if kind == "punct":
            raise SyntaxProblem(tokens.tok_start, f"expected '{{' in {kind_word} record")
    header = decode_text(tokens.buf[header_start : tokens.tok_start]).strip()
    return OtherRecord(kind_word, header, decode_text(tokens.block()))


#: Shorthand for the statement starts that fill most stored lease bodies, one control byte
#: each (see :func:`pack_lease_bodies`): a 1M-address journal keeps ~45 MB less this way.
_PACKED_STARTS: Final = (
    (b";\n  option agent.", b"\x01"),
    (b";\n  client-hostname ", b"\x02"),
    (b";\n  set ", b"\x03"),
    (b";\n  uid ", b"\x04"),
)
#: The control bytes of the packed form, each searched for with ``in`` (memchr: measured
#: 5x faster than one character-class regex search over a batch).
_PACKED_BYTES: Final = tuple(short for _, short in _PACKED_STARTS)


def pack_lease_bodies(bodies: Sequence[bytes]) -> list[bytes]:
    """Shorten raw lease-body texts for storage; :func:`decode_lease_body` reads both forms.

    Each non-empty text gets a leading ``;\n`` so that every statement starts the same way,
    then the common starts become single control bytes. The batch is packed as one joined
    text (one ``replace`` per start instead of one per body). Texts are left alone when
    any of them holds such a byte already (only possible in hand-made files: dhcpd escapes
    them).
    """
    packed = list(bodies)
    present = list(compress(range(len(packed)), packed))
    if not present:
        return packed
    text = b";\n" + b"\x00;\n".join(map(packed.__getitem__, present))
    # NUL separates the bodies while packing: a body must not hold one either.
    if text.count(b"\x00") != len(present) - 1 or any(map(text.__contains__, _PACKED_BYTES)):
        return packed
    for long, short in _PACKED_STARTS:
        text = text.replace(long, short)
    deque(map(packed.__setitem__, present, text.split(b"\x00")), 0)
    return packed


def decode_lease_body(raw: bytes) -> LeaseExtras:
    """Extras from the raw (or packed) text of lease-body statements, the reader's deferred
    part. The reader stores only statements its fast path has already validated, so this
    does not fail on what it is given.
    """
    if raw[:1] in _PACKED_BYTES:
        for long, short in _PACKED_STARTS:
            raw = raw.replace(short, long)
        raw = raw[2:]
    tokens = Tokens(raw, 0, len(raw))
    row = LeaseRow(0, [0] * 6, [0, 0, 0], 0, 0, None, LeaseExtras())
    fields = _ExtrasBuilder()
    while tokens.skip_space():
        _, word = tokens.next()
        _lease_statement(tokens, word.lower(), row, fields)
    return fields.build()
