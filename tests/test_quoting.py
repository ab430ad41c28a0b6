"""dhcpd's string escapes: one grammar for the config (text) and lease-file (bytes) readers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dhcpfoctl.quoting import printable, quote, unescape, unescape_text

#: Bodies made of the pieces dhcpd's strings contain: plain characters and every escape form.
_PIECES = st.one_of(
    st.characters(codec="latin-1", exclude_characters='\\"'),
    st.sampled_from(["\\t", "\\n", "\\r", "\\b", "\\e", '\\"', "\\\\", "\\q"]),
    st.integers(0, 0o777).map(lambda n: f"\\{n:o}"),
    st.integers(0, 255).map(lambda n: f"\\x{n:x}"),
)


@given(st.lists(_PIECES, max_size=20).map("".join))
def test_text_and_bytes_decoders_agree(body: str) -> None:
    assert unescape(body.encode("latin-1")) == unescape_text(body).encode("latin-1")


@given(st.binary(max_size=40))
def test_quote_then_unescape_is_identity(data: bytes) -> None:
    assert unescape(quote(data)[1:-1].encode("ascii")) == data


def test_escape_values() -> None:
    assert unescape(rb"\001\x41\e\t\q\"\\") == b'\x01A\x1b\tq"\\'
    assert unescape(rb"\777") == b"\xff"  # dhcpd keeps the low byte
    assert unescape_text(r"\200") == "\x80"


@given(st.text())
def test_printable_gives_one_printable_line_and_keeps_printable_text(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable()
    if text.isprintable():
        assert shown == text


def test_printable_escapes_a_forged_line_and_an_escape_sequence() -> None:
    assert printable("ok\nCRITICAL \x1b[31m") == "ok\\nCRITICAL \\x1b[31m"
