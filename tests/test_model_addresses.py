"""The fast address conversions answer exactly as ipaddress does, refusals included."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhcpfoctl.failover import wire
from dhcpfoctl.lab.dhcp import encode_address
from dhcpfoctl.model import address_to_int, int_to_address

#: Dotted quads, near-misses (leading zeros, big octets, spaces, other digits) and any text.
texts = st.one_of(
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t))),
    st.lists(st.sampled_from(["0", "00", "01", "255", "256", " 1", "1 ", "٣", "", "1.2"])).map(
        ".".join
    ),
    st.text(max_size=20),
)


def outcome(convert: Callable[[Any], object], value: object) -> object:
    """The result, or the type of the ValueError raised."""
    try:
        return convert(value)
    except ValueError as error:
        return type(error)


@settings(max_examples=500)
@given(texts)
def test_address_to_int_and_encode_address_are_ipaddress(text: str) -> None:
    expected = outcome(lambda t: int(ipaddress.IPv4Address(t)), text)
    assert outcome(address_to_int, text) == expected
    assert outcome(address_to_int, text) == expected  # the cached answer too
    packed = outcome(lambda t: ipaddress.IPv4Address(t).packed, text)
    assert outcome(encode_address, text) == packed


@given(st.one_of(st.integers(-(2**33), 2**33), st.booleans()))
def test_int_to_address_is_ipaddress(value: int) -> None:
    assert outcome(int_to_address, value) == outcome(lambda v: str(ipaddress.IPv4Address(v)), value)


@pytest.mark.parametrize("text", ["10.0.0.1", "10.0.0.256", "010.0.0.1", "10.0.0"])
def test_wire_encodes_an_address_as_ipaddress_parses_it(text: str) -> None:
    encode = functools.partial(wire._encode_value, "x", wire.OptionCode.ASSIGNED_IP_ADDRESS)
    expected = outcome(lambda t: ipaddress.IPv4Address(t).packed, text)
    assert outcome(encode, text) == (expected if isinstance(expected, bytes) else wire.EncodeError)
