"""OMAPI/TSIG keys, with the secret kept out of every repr, str and traceback."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Algorithms dhcpd 4.4 accepts in ``key { algorithm …; }`` (omapip/isclib.c).
ALGORITHMS = (
    "hmac-md5",
    "hmac-sha1",
    "hmac-sha224",
    "hmac-sha256",
    "hmac-sha384",
    "hmac-sha512",
)


class Secret:
    """Key material. ``repr``/``str`` never show it; call :meth:`reveal` where it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class OmapiKey:
    """A named key: ``name`` and ``algorithm`` as dhcpd.conf spells them (lower case)."""

    name: str
    algorithm: str
    #: The decoded secret (dhcpd.conf holds it base64-encoded).
    secret: Secret = field(repr=False)
