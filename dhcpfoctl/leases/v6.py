"""DHCPv6 lease files (``ia-na``, ``ia-ta``, ``ia-pd``), read through isc-dhcp-leases.

DHCPv6 has no failover in dhcpd, so these leases stay outside the v4 model; they are
listed in the same shape (address, state, times, identifiers, variables) by the CLI.
The file is a journal too: the last record for an address or prefix wins.
"""

from __future__ import annotations

import calendar
import gzip
import os
from dataclasses import dataclass

from dhcpfoctl.errors import InputFileError
from dhcpfoctl.model import NEVER


@dataclass(frozen=True, slots=True)
class Lease6:
    """One IPv6 address or delegated prefix as the last record for it states."""

    address: str  # address, or prefix/length for ia-pd
    kind: str  # "ia-na", "ia-ta" or "ia-pd"
    binding_state: str
    iaid: int
    duid: bytes
    cltt: int | None
    ends: int | None  # NEVER for an infinite lease
    preferred_life: int
    max_life: int
    variables: tuple[tuple[str, str], ...] = ()


def read_leases6(path: str | os.PathLike[str]) -> list[Lease6]:
    """Current DHCPv6 leases of a file (gzip detected), in file order of last record."""
    from isc_dhcp_leases import IscDhcpLeases
    from isc_dhcp_leases import Lease6 as IscLease6

    name = os.fspath(path)
    try:
        with open(name, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        if compressed:
            with gzip.open(name) as unpacked:
                unpacked.read(1)  # fail here, with the file's name, if it is not gzip
        records = IscDhcpLeases(name, gzip=compressed).get(include_backups=True)
    except OSError as exc:
        raise InputFileError(name, exc.strerror or str(exc)) from None
    except (KeyError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InputFileError(name, f"not a readable DHCPv6 lease file ({exc!r})") from None
    current: dict[str, Lease6] = {}
    for record in records:
        if not isinstance(record, IscLease6):
            continue
        prefix = f"/{record.data['prefix_len']}" if "prefix_len" in record.data else ""
        address = record.ip if "/" in record.ip else record.ip + prefix
        current.pop(address, None)  # re-insert so that order is that of the last record
        current[address] = Lease6(
            address=address,
            kind=f"ia-{record.type}",
            binding_state=record.binding_state,
            iaid=record.iaid,
            duid=record.duid,
            cltt=_epoch(record.last_communication),
            ends=NEVER if record.end is None else _epoch(record.end),
            preferred_life=record.preferred_life,
            max_life=record.max_life,
            variables=tuple(sorted(record.sets.items())),
        )
    return list(current.values())


def _epoch(moment: object) -> int | None:
    if moment is None:
        return None
    return calendar.timegm(moment.utctimetuple())  # type: ignore[attr-defined]
