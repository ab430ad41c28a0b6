"""OMAPI/TSIG keys, with the secret kept out of every repr, str and traceback.

Neutral ground for ``conf/`` (``key`` stanzas in dhcpd.conf and key files) and ``omapi/``
(signing): it imports neither. Reading a key file is :func:`dhcpfoctl.conf.load_key_file`,
as a key file is dhcpd.conf syntax.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass, field

from dhcpfoctl.errors import LocalError

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


def canonical_algorithm(text: str) -> str:
    """dhcpd's spelling of a key algorithm: lower case, without the trailing dot and the
    ``.SIG-ALG.REG.INT`` suffix that BIND-style key files carry."""
    return text.lower().rstrip(".").removesuffix(".sig-alg.reg.int")


def parse_key(text: str, origin: str = "--key") -> OmapiKey:
    """A key from ``[ALGORITHM:]NAME:SECRET`` (secret base64, as in dhcpd.conf).

    ``origin`` names where the text came from; errors never repeat any field of the text:
    fields swapped by mistake (SECRET:NAME, the secret where the algorithm goes) would
    print the secret, so a message says which field is wrong, not what it holds.
    """
    parts = text.strip().split(":")
    if len(parts) == 2:
        algorithm, (name, secret) = "hmac-md5", parts
    elif len(parts) == 3:
        algorithm, name, secret = parts
    else:
        raise LocalError(f"{origin}: expected [ALGORITHM:]NAME:SECRET ({len(parts)} fields)")
    algorithm = canonical_algorithm(algorithm)
    if algorithm not in ALGORITHMS:
        raise LocalError(
            f"{origin}: the first of three fields is not a key algorithm dhcpd accepts"
            f" ({', '.join(ALGORITHMS)})"
        )
    if not name:
        raise LocalError(f"{origin}: the key name is empty")
    try:
        decoded = base64.b64decode(secret, validate=True)
    except binascii.Error:
        raise LocalError(
            f"{origin}: the secret (the last field) is not valid base64"
            " (fields in the order [ALGORITHM:]NAME:SECRET?)"
        ) from None
    if not decoded:
        raise LocalError(f"{origin}: the secret (the last field) is empty")
    return OmapiKey(name, algorithm, Secret(decoded))


def usable_key(key: OmapiKey, origin: str) -> OmapiKey:
    """``key`` if it can sign OMAPI messages; a :class:`LocalError` naming ``origin`` if its
    algorithm is one dhcpd does not know (a config only warns of such a key: dhcpd reads it
    and fails at its first use, as signing would)."""
    if key.algorithm not in ALGORITHMS:
        raise LocalError(
            # Neither the name nor the algorithm is shown: either may be a misplaced secret.
            f"{origin}: key: unknown algorithm (dhcpd accepts {', '.join(ALGORITHMS)})"
        )
    return key


def readable_by_others(path: str) -> bool:
    """True when group or others may read ``path`` (a secret should be mode 0600/0400)."""
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False
