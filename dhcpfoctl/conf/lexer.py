"""Tokenizer for dhcpd.conf, with FILE:LINE:COLUMN for every token.

dhcpd's own lexer (common/conflex.c) splits IP addresses and MACs at ``.`` and ``:``; we
keep such runs together as one word (``10.99.0.1``, ``ff:00:…``) because the reader only
needs them whole. Strings are decoded by :func:`dhcpfoctl.quoting.unescape_text`, with the
escapes of the lease reader (dhcpd reads both files with one lexer). ``#`` starts a comment outside
strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

from dhcpfoctl.errors import InputFileError
from dhcpfoctl.quoting import unescape_text


class Kind(Enum):
    WORD = auto()
    STRING = auto()
    PUNCT = auto()
    EOF = auto()


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    file: str
    line: int
    column: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def is_word(self, *words: str) -> bool:
        return self.kind is Kind.WORD and self.text.lower() in words

    def is_punct(self, char: str) -> bool:
        return self.kind is Kind.PUNCT and self.text == char

    def describe(self) -> str:
        if self.kind is Kind.EOF:
            return "end of file"
        if self.kind is Kind.STRING:
            return f'"{self.text}"'
        return repr(self.text)


_PUNCT: Final = frozenset("{};,=()!&|+~")
_WORD_STOP: Final = frozenset(' \t\r\n\f\v{};,="#()!&|+~')
#: A string body up to (not including) its closing quote; escapes are decoded by quoting.py.
_STRING_BODY: Final = re.compile(r'(?:[^"\\]|\\.)*', re.S)


def tokenize(text: str, file: str) -> list[Token]:
    """All tokens of ``text`` followed by one EOF token; raises on an unterminated string."""
    tokens: list[Token] = []
    pos = 0
    line = 1
    line_start = 0
    end = len(text)
    while pos < end:
        char = text[pos]
        if char == "\n":
            pos += 1
            line += 1
            line_start = pos
            continue
        if char.isspace():
            pos += 1
            continue
        if char == "#":
            newline = text.find("\n", pos)
            pos = end if newline < 0 else newline
            continue
        column = pos - line_start + 1
        if char == '"':
            value, pos, lines = _read_string(text, pos + 1, file, line, column)
            if lines:
                line += lines
                line_start = text.rfind("\n", 0, pos) + 1
            tokens.append(Token(Kind.STRING, value, file, line - lines, column))
            continue
        if char in _PUNCT:
            tokens.append(Token(Kind.PUNCT, char, file, line, column))
            pos += 1
            continue
        start = pos
        while pos < end and text[pos] not in _WORD_STOP:
            pos += 1
        tokens.append(Token(Kind.WORD, text[start:pos], file, line, column))
    tokens.append(Token(Kind.EOF, "", file, line, pos - line_start + 1))
    return tokens


def _read_string(text: str, pos: int, file: str, line: int, column: int) -> tuple[str, int, int]:
    """Decode a string body starting after its opening quote.

    Returns (value, position after the closing quote, newlines crossed).
    """
    body = _STRING_BODY.match(text, pos)
    assert body is not None  # the pattern also matches an empty body
    if text[body.end() : body.end() + 1] != '"':
        raise InputFileError(f"{file}:{line}:{column}", "unterminated string")
    raw = body.group()
    return unescape_text(raw), body.end() + 1, raw.count("\n")
