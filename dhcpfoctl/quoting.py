"""dhcpd's quoted strings: escape decoding and its quotify, for every file dhcpd writes or reads.

dhcpd reads dhcpd.conf and dhcpd.leases with one lexer (common/conflex.c), so both of our
readers decode escapes with the one grammar here: the lease reader to bytes (:func:`unescape`),
the config reader, which works on decoded text, to characters (:func:`unescape_text`).
"""

from __future__ import annotations

import re
from typing import Final

#: One escape: octal (up to 3 digits), ``x`` and up to 2 hex digits, or any other character.
_ESCAPE_PATTERN: Final = r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))"
_ESCAPE: Final = re.compile(_ESCAPE_PATTERN.encode(), re.S)
_ESCAPE_TEXT: Final = re.compile(_ESCAPE_PATTERN, re.S)
_SIMPLE_ESCAPES: Final = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "e": "\x1b"}
_SIMPLE_ESCAPE_BYTES: Final = {k.encode(): v.encode() for k, v in _SIMPLE_ESCAPES.items()}


def parse_decimal(text: str | bytes, maximum: int) -> int | None:
    """The value of a number of ASCII digits that is at most ``maximum``, else None.

    ``str.isdigit`` also admits other scripts' digits and superscripts (``²``), which dhcpd
    does not read as numbers, and ``int`` refuses strings beyond Python's digit limit with a
    ValueError: every number read from a file goes through here instead.
    """
    digits = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not digits.isdigit() or len(digits.lstrip(b"0")) > len(str(maximum)):
        return None
    value = int(digits)
    return value if value <= maximum else None


def _escaped_char(octal: str | None, hexa: str | None, other: str | None) -> str:
    """The character an escape stands for (a byte value, as its Latin-1 character)."""
    if octal is not None:
        return chr(int(octal, 8) & 0xFF)
    if hexa is not None:
        return chr(int(hexa, 16))
    assert other is not None  # the pattern's third branch
    return _SIMPLE_ESCAPES.get(other, other)


def _escaped_byte(match: re.Match[bytes]) -> bytes:
    # Bytes-native twin of _escaped_char: uids of a large file go through here, and a
    # round trip through Latin-1 text doubled the cost (3.5 -> 7 us for a 7-byte uid).
    octal, hexa, other = match.groups()
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))
    if hexa is not None:
        return bytes((int(hexa, 16),))
    return _SIMPLE_ESCAPE_BYTES.get(other, other)


def unescape(quoted: bytes) -> bytes:
    """The bytes of a quoted string's body (quotes already removed)."""
    if b"\\" not in quoted:
        return quoted
    return _ESCAPE.sub(_escaped_byte, quoted)


def unescape_text(quoted: str) -> str:
    """:func:`unescape` for text already decoded: an escape gives the character of its value."""
    if "\\" not in quoted:
        return quoted
    return _ESCAPE_TEXT.sub(lambda match: _escaped_char(*match.groups()), quoted)


def quote(data: bytes) -> str:
    """dhcpd's quotify: printable ASCII kept, ``"`` and ``\\`` escaped, others ``\\ooo``."""
    out = []
    for byte in data:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def printable(text: str) -> str:
    """``text`` safe for one line of a log or terminal: each non-printable character (line
    breaks, escape sequences, format characters) written as its Python escape.

    A byte that was not UTF-8 (kept by ``surrogateescape`` as U+DC80-U+DCFF) is written
    ``\\xNN``: the byte it stands for, where writing the surrogate itself would fail on a
    strict UTF-8 stream."""
    if text.isprintable():
        return text
    return "".join(_printable_char(char) for char in text)


def _printable_char(char: str) -> str:
    if char.isprintable():
        return char
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char.encode("unicode_escape").decode("ascii")
