"""Model → dhcpd.leases text in the form dhcpd 4.4 writes at a rewrite.

Order as in dhcpd's rewrite: header, ``authoring-byte-order``, class/subclass/group
records, hosts, failover state records, ``server-duid``, then one record per lease.
Fields that the model holds as absent are not written (dhcpd omits zero fields too), so
reading the output gives back the same model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from dhcpfoctl import __version__
from dhcpfoctl.leases.syntax import colon_hex, encode_text, format_date
from dhcpfoctl.model import (
    TIME_FIELDS,
    FailoverPeerRecord,
    Lease,
    LeaseDB,
    LeaseFlag,
    VariableValue,
)
from dhcpfoctl.quoting import quote


def write_leases(db: LeaseDB, out: TextIO) -> None:
    """Write ``db`` as a complete lease file to ``out``."""
    out.write("# The format of this file is documented in the dhcpd.leases(5) manual page.\n")
    out.write(f"# This lease file was written by dhcpfoctl {__version__}\n\n")
    if db.byte_order is not None:
        out.write("# authoring-byte-order entry is generated, DO NOT DELETE\n")
        out.write(f"authoring-byte-order {db.byte_order};\n\n")
    for other in db.others.values():
        out.write(f"{other.kind} {other.header} {{{other.body}}}\n")
    for host in db.hosts.values():
        out.write(f"host {_name(host.name)} {{{host.body}}}\n")
    for record in db.failover.values():
        out.write(format_failover(record))
    if db.server_duid is not None:
        out.write(f"server-duid {quote(db.server_duid)};\n\n")
    for lease in db.leases:
        out.write(format_lease(lease))


def _name(name: str) -> str:
    """A host name as dhcpd writes it: bare when it is a plain identifier, else quoted."""
    if name and all(ch.isalnum() or ch in "-_." for ch in name):
        return name
    return quote(encode_text(name))


def format_failover(record: FailoverPeerRecord) -> str:
    def state_line(who: str, state: object, stos: int | None) -> str:
        keyword = state.keyword  # type: ignore[attr-defined]
        at = "" if stos is None else f" at {format_date(stos)}"
        return f"\n  {who} state {keyword}{at};"

    text = f"\nfailover peer {quote(encode_text(record.name))} state {{"
    text += state_line("my", record.my_state, record.my_stos)
    text += state_line("partner", record.partner_state, record.partner_stos)
    if record.mclt is not None:
        text += f"\n  mclt {record.mclt};"
    return text + "\n}\n"


def format_lease(lease: Lease) -> str:
    return f"lease {lease.address} {{" + "".join(_lease_lines(lease)) + "\n}\n"


def _lease_lines(lease: Lease) -> Iterator[str]:
    for name in TIME_FIELDS:
        value = getattr(lease, name)
        if value is not None:
            yield f"\n  {name} {format_date(value)};"
    if lease.binding_state is not None:
        yield f"\n  binding state {lease.binding_state.keyword};"
    if lease.next_binding_state is not None:
        yield f"\n  next binding state {lease.next_binding_state.keyword};"
    if lease.rewind_binding_state is not None:
        yield f"\n  rewind binding state {lease.rewind_binding_state.keyword};"
    if lease.flags & LeaseFlag.RESERVED:
        yield "\n  reserved;"
    if lease.flags & LeaseFlag.BOOTP:
        yield "\n  dynamic-bootp;"
    if lease.flags & LeaseFlag.ABANDONED:
        yield "\n  abandoned;"
    extras = lease.extras
    if extras.billing is not None:
        yield f"\n  billing {extras.billing};"
    if lease.hardware_address is not None:
        hw_type = lease.hardware_type.keyword if lease.hardware_type is not None else "ethernet"
        yield f"\n  hardware {hw_type} {colon_hex(lease.hardware_address)};"
    if extras.uid is not None:
        yield f"\n  uid {quote(extras.uid)};"
    for name, value in extras.variables:
        yield f"\n  set {name} = {_variable(value)};"
    for name, data in extras.options:
        yield f"\n  option {name} {_option_value(data)};"
    if extras.client_hostname is not None:
        yield f"\n  client-hostname {quote(encode_text(extras.client_hostname))};"
    for statement in extras.other:
        yield f"\n  {statement};"
    for block in extras.on_blocks:
        yield f"\n  on {block.events} {{{block.body}}}"


def _variable(value: VariableValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"%{value}"
    return quote(value)


def _option_value(data: bytes) -> str:
    # As dhcpd's pretty_print_option: a printable value quoted, anything else colon hex.
    if data and all(0x20 <= byte < 0x7F for byte in data):
        return quote(data)
    return colon_hex(data) if data else '""'
