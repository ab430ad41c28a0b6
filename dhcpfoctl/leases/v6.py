"""DHCPv6 lease files (``ia-na``, ``ia-ta``, ``ia-pd``), read through isc-dhcp-leases.

DHCPv6 has no failover in dhcpd, so these leases stay outside the v4 model; they are
listed in the same shape (address, state, times, identifiers, variables) by the CLI.
The file is a journal too: the last record for an address or prefix wins.
"""

from __future__ import annotations

import calendar
import gzip
import os
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from isc_dhcp_leases.iscdhcpleases import IscDhcpLeases, _extract_properties, parse_time
from isc_dhcp_leases.iscdhcpleases import Lease6 as IscLease6

from dhcpfoctl.errors import InputFileError
from dhcpfoctl.files import open_regular
from dhcpfoctl.leases.reader import STDIN_NAME
from dhcpfoctl.model import EARLIEST_TIME, LATEST_TIME, NEVER, ReadWarning


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


def read_leases6(
    path: str | os.PathLike[str], warnings: list[ReadWarning] | None = None
) -> list[Lease6]:
    """Current DHCPv6 leases of a file (gzip detected; ``-`` is standard input), in file
    order of last record.

    A record that cannot be read is skipped with a ``FILE:LINE`` entry in ``warnings``, as
    the v4 reader does, and the rest of the file is still read.
    """
    name = os.fspath(path)
    try:
        if name == "-":
            name, data = STDIN_NAME, sys.stdin.buffer.read()
        else:
            with open_regular(name) as raw:
                data = raw.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise InputFileError(name, getattr(exc, "strerror", None) or str(exc)) from None
    text = data.decode("utf-8", "surrogateescape")
    current: dict[str, Lease6] = {}
    line, counted = 1, 0
    for match in IscDhcpLeases.regex_leaseblock6.finditer(text):
        line += text.count("\n", counted, match.start())
        counted = match.start()
        try:
            records = list(_records(match))
        except (KeyError, ValueError, IndexError, OverflowError, OSError, struct.error) as exc:
            # The library's messages quote the record's raw text; the kind of fault is enough.
            if warnings is not None:
                warnings.append(
                    ReadWarning(
                        name,
                        line,
                        f"unreadable ia-{match['type']} record"
                        f" ({type(exc).__name__}); record skipped",
                    )
                )
            continue
        for lease in records:
            current.pop(lease.address, None)  # re-insert: the order is that of the last record
            current[lease.address] = lease
    return list(current.values())


def _records(block: re.Match[str]) -> Iterator[Lease6]:
    """The addresses or prefixes of one ``ia-*`` record (raises on a malformed one)."""
    properties, _, _ = _extract_properties(block["config"])
    cltt = _epoch(parse_time(properties["cltt"]))
    for inner in IscDhcpLeases.regex_iaaddr.finditer(block["config"]):
        properties, options, sets = _extract_properties(inner["config"])
        record = IscLease6(
            inner["ip"], properties, None, block["id"], block["type"], options=options, sets=sets
        )
        prefix = f"/{record.data['prefix_len']}" if "prefix_len" in record.data else ""
        address = record.ip if "/" in record.ip else record.ip + prefix
        yield Lease6(
            address=address,
            kind=f"ia-{record.type}",
            binding_state=record.binding_state,
            iaid=record.iaid,
            duid=record.duid,
            cltt=cltt,
            ends=NEVER if record.end is None else _epoch(record.end),
            preferred_life=record.preferred_life,
            max_life=record.max_life,
            variables=tuple(sorted(record.sets.items())),
        )


def _epoch(moment: object) -> int | None:
    if moment is None:
        return None
    epoch = calendar.timegm(moment.utctimetuple())  # type: ignore[attr-defined]
    if not EARLIEST_TIME <= epoch <= LATEST_TIME:
        raise ValueError("time outside the calendar")
    return epoch
