"""Constructed lease-file pairs for ``dhcpfoctl compare``, one per finding.

Each scenario is written as dhcpd 4.4 writes its journal (records appended in order, the
last one per address wins) into ``tests/data/compare/NAME/{primary,secondary}.leases``;
``tests/test_compare.py`` compares ``compare``'s report on them with the golden
``expected.json`` beside them. ``python tests/compare_pairs.py`` rewrites the files (then
review the diff). Times are relative to :data:`T0`, the ``--as-of`` of every scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dhcpfoctl.leases.syntax import format_date
from dhcpfoctl.model import Lease


def read_lease_history_text(text: str) -> list[Lease]:
    """The lease records of a lease-file text, in order (through a temporary file)."""
    import tempfile

    from dhcpfoctl.leases.reader import read_lease_history

    with tempfile.NamedTemporaryFile("w", suffix=".leases") as handle:
        handle.write(text)
        handle.flush()
        return read_lease_history(handle.name)[1]


DATA = Path(__file__).parent / "data" / "compare"
#: 2026-11-28 07:40:00 UTC, the time every constructed scenario is judged at.
T0 = 1795851600
MCLT = 30

HEADER = (
    "# The format of this file is documented in the dhcpd.leases(5) manual page.\n"
    "# This lease file was written by isc-dhcp-4.4.3-P1\n\n"
    "authoring-byte-order little-endian;\n\n"
)


@dataclass(frozen=True)
class L:
    """A lease record; times relative to T0; ``acked``: atsfp = tstp."""

    address: str
    state: str
    starts: int | None = None
    ends: int | None = None
    mac: str | None = None
    hostname: str | None = None
    own: bool = True  # this server acknowledged the client itself (writes cltt)
    tstp: int | None = None
    acked: bool = True

    def lease(self) -> Lease:
        """The record as the reader gives it back."""
        (lease,) = read_lease_history_text(self.text())
        return lease

    def text(self) -> str:
        lines = [f"lease {self.address} {{"]
        if self.starts is not None:
            lines.append(f"  starts {format_date(T0 + self.starts)};")
        if self.ends is not None:
            lines.append(f"  ends {format_date(T0 + self.ends)};")
        if self.tstp is not None:
            lines.append(f"  tstp {format_date(T0 + self.tstp)};")
            if self.acked:
                lines.append(f"  tsfp {format_date(T0 + self.tstp)};")
                lines.append(f"  atsfp {format_date(T0 + self.tstp)};")
        if self.own and self.state == "active" and self.starts is not None:
            lines.append(f"  cltt {format_date(T0 + self.starts)};")
        lines.append(f"  binding state {self.state};")
        if self.state == "active":
            lines.append("  next binding state expired;")
        if self.mac is not None:
            lines.append(f"  hardware ethernet {self.mac};")
        if self.hostname is not None:
            lines.append(f'  client-hostname "{self.hostname}";')
        lines.append("}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class S:
    """A failover state record; ``at`` relative to T0."""

    mine: str
    at: int
    partner: str
    partner_at: int
    secondary: bool = False

    def text(self) -> str:
        mclt = f"  mclt {MCLT};\n" if self.secondary else ""
        return (
            f'\nfailover peer "lab" state {{\n'
            f"  my state {self.mine} at {format_date(T0 + self.at)};\n"
            f"  partner state {self.partner} at {format_date(T0 + self.partner_at)};\n"
            f"{mclt}}}\n"
        )


A = "02:99:00:0a:00:01"
B = "02:99:00:0b:00:02"
C = "02:99:00:0c:00:03"


def _normal(secondary: bool) -> list[L | S]:
    return [S("normal", -3600, "normal", -3600, secondary)]


SCENARIOS: dict[str, tuple[list[L | S], list[L | S]]] = {
    # Both in partner-down, each handed 10.99.0.120 to its own client.
    "duplicate": (
        [
            S("normal", -3600, "normal", -3600),
            S("communications-interrupted", -600, "normal", -3600),
            S("partner-down", -300, "normal", -3600),
            L("10.99.0.120", "active", -100, 20, A, "alpha", tstp=80, acked=False),
        ],
        [
            S("normal", -3600, "normal", -3600, True),
            S("communications-interrupted", -600, "normal", -3600, True),
            S("partner-down", -290, "normal", -3600, True),
            L("10.99.0.120", "active", -60, 60, B, "bravo", tstp=120, acked=False),
        ],
    ),
    # Conflict resolution kept bravo on both; alpha keeps using .121 until its lease ends,
    # and on .122 the loser's lease has already ended.
    "unhealed": (
        [
            *_normal(False),
            L("10.99.0.121", "active", -200, 100, A, "alpha", tstp=200),
            L("10.99.0.121", "active", -150, 150, B, "bravo", own=False, tstp=250),
            L("10.99.0.122", "active", -300, -50, C, tstp=0),
            L("10.99.0.122", "active", -100, 200, B, own=False, tstp=300),
        ],
        [
            *_normal(True),
            L("10.99.0.121", "active", -150, 150, B, "bravo", tstp=250),
            L("10.99.0.122", "active", -100, 200, B, tstp=300),
        ],
    ),
    # The primary's acknowledged lease of .125 is unknown to the secondary.
    "lost": (
        [*_normal(False), L("10.99.0.125", "active", -100, 500, C, "charlie", tstp=600)],
        [*_normal(True)],
    ),
    # Free on the primary (its own) and backup on the secondary (its own), both acknowledged.
    "ownership": (
        [*_normal(False), L("10.99.0.130", "free", -1000, tstp=-1000)],
        [*_normal(True), L("10.99.0.130", "backup", -1000, tstp=-1000)],
    ),
    # .140: an update never acknowledged, far beyond MCLT; .141: one a few seconds old.
    "disagreement-in-flight": (
        [
            *_normal(False),
            L("10.99.0.140", "active", -1000, 500, A, tstp=600, acked=False),
            L("10.99.0.141", "active", -5, 25, B, tstp=100, acked=False),
        ],
        [*_normal(True), L("10.99.0.140", "free", -2000, tstp=-2000)],
    ),
    # The primary went to partner-down while the secondary, cut off, still served.
    "split-brain": (
        [
            S("normal", -3600, "normal", -3600),
            S("communications-interrupted", -400, "normal", -3600),
            S("partner-down", -200, "normal", -3600),
        ],
        [
            S("normal", -3600, "normal", -3600, True),
            S("communications-interrupted", -390, "normal", -3600, True),
            L("10.99.0.150", "active", -100, 20, A, "alpha", tstp=80, acked=False),
        ],
    ),
    # The primary just went to partner-down; the secondary's file says it was cut off, not
    # down, but shows no client served since: a warning until it does.
    "possible-split-brain": (
        [
            S("normal", -3600, "normal", -3600),
            S("communications-interrupted", -400, "normal", -3600),
            S("partner-down", -20, "normal", -3600),
        ],
        [
            S("normal", -3600, "normal", -3600, True),
            S("communications-interrupted", -390, "normal", -3600, True),
        ],
    ),
    # The same mistake an hour ago, healed since: reported with its times, as a warning.
    "past-split-brain": (
        [
            S("normal", -7200, "normal", -7200),
            S("communications-interrupted", -3000, "normal", -7200),
            S("partner-down", -2900, "normal", -7200),
            S("normal", -2500, "normal", -2500),
            L("10.99.0.160", "active", -2800, -2680, B, own=False, tstp=-2600),
            L("10.99.0.160", "expired", -2800, -2680, B, own=False, tstp=-2600),
        ],
        [
            S("normal", -7200, "normal", -7200, True),
            S("communications-interrupted", -3000, "normal", -7200, True),
            L("10.99.0.160", "active", -2800, -2680, B, tstp=-2600),
            S("normal", -2500, "normal", -2500, True),
            L("10.99.0.160", "expired", -2800, -2680, B, tstp=-2600),
        ],
    ),
}


def write(name: str, data: Path = DATA) -> Path:
    primary, secondary = SCENARIOS[name]
    folder = data / name
    folder.mkdir(parents=True, exist_ok=True)
    for role, records in (("primary", primary), ("secondary", secondary)):
        text = HEADER + "".join(record.text() for record in records)
        (folder / f"{role}.leases").write_text(text)
    return folder


if __name__ == "__main__":
    for scenario in SCENARIOS:
        print(write(scenario))
